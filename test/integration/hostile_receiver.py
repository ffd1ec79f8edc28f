#!/usr/bin/env python3
"""Hostile HTTP endpoints for the worker's integration tests (python3 stdlib only).

    hostile_receiver.py http   PORTFILE LOGFILE [--host 127.0.0.1] [--lifetime S]
    hostile_receiver.py canary PORTFILE LOGFILE [--lifetime S]

Loopback only. Every loop is bounded: the process exits after --lifetime seconds
(default 600) or 20,000 connections, a connection is held at most --max-hold
seconds (default 120), headers are read up to 64 kB and bodies up to 1 MB.

http: PORTFILE receives {"http": PORT, "stall": PORT}. "stall" is a listener whose
accept queue is kept full, so a connection attempt to it never completes (connect
timeout). LOGFILE gets one JSON line per event:
  {"event": "request", "t", "path", "headers", "body"}   a request was read
  {"event": "closed", "t", "path", "query", "held"}        a held connection ended
                                                           (peer closed or gave up)
Paths (query parameters after ?):
  /ok                       200 "ok"
  /status/CODE              CODE; ra=RAW sets Retry-After to RAW, ra_in=N to an HTTP-date
                            N seconds ahead (ra_form=imf|rfc850|asctime); body=TEXT is the
                            body (default "hostile status"), hex=HEX raw body bytes
  /redirect/CODE?to=URL     CODE with Location: URL
  /reset                    reads the request, then resets the connection (RST)
  /reset-mid                sends half a status line, then resets
  /hang                     reads the request, never answers
  /trickle                  200 headers announcing 4 kB, then 1 body byte per second
  /trickle-head             the status line at 1 byte per second
  /big, /big-chunked        200 with a 10 MB body (Content-Length / chunked)
  /dispatch/ok              200 {"status": "succeeded", "row_count": 1}
  /dispatch/answer          200 with an engine answer: kind=ok (succeeded), nul (\u0000 in a
                            string of info), nulfield (\u0000 in location), badutf8 (bytes
                            that are not UTF-8 in a string), deep (info nested 5,000,000
                            levels: a 10 MB answer); gate=N holds every answer until N
                            requests with that gate arrived (at most 15 s), so they are
                            answered together and the worker records them in one pass
  /auth/token               201 {"access_token": "tok\\r\\nX-Injected: 1"} (header injection)
  anything else             404

canary: listens on 127.0.0.1:PORT and, when IPv6 works, [::1]:PORT (the same PORT;
PORTFILE receives {"port": PORT, "v6": true|false}). Every accepted connection is
logged as {"event": "canary", "t", "peer", "local", "first"} and closed. The test
counts these lines: a canary must see none.
"""
import email.utils
import json
import os
import select
import socket
import struct
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

MAX_CONNS = 20000
BIG = 10 * 1024 * 1024
LOCK = threading.Lock()
GATES = {}  # gate name -> [requests arrived, threading.Condition]
DEEP = 5 * 1024 * 1024
ANSWERS = {
    "ok": b'{"status": "succeeded", "row_count": 1, "info": {"lane": "good"}}',
    "nul": b'{"status": "succeeded", "row_count": 1, "info": {"note": "a\\u0000b"}}',
    "nulfield": b'{"status": "succeeded", "row_count": 1, "location": "s3://x/\\u0000/y"}',
    "badutf8": b'{"status": "succeeded", "row_count": 1, "info": {"note": "\xff\xfe\xc3\x28"}}',
    "deep": b'{"status": "succeeded", "row_count": 1, "info": {"deep": ' + b"[" * DEEP + b"]" * DEEP + b"}}",
}


def args():
    mode, portfile, logfile = sys.argv[1:4]
    opts = {"--host": "127.0.0.1", "--lifetime": "600", "--max-hold": "120"}
    rest = sys.argv[4:]
    for i in range(0, len(rest) - 1, 2):
        opts[rest[i]] = rest[i + 1]
    return mode, portfile, logfile, opts


MODE, PORTFILE, LOGFILE, OPTS = args()
DEADLINE = time.time() + float(OPTS["--lifetime"])
MAX_HOLD = float(OPTS["--max-hold"])


def log(entry):
    entry["t"] = time.time()
    with LOCK:
        with open(LOGFILE, "a") as f:
            f.write(json.dumps(entry) + "\n")


def write_portfile(content):
    tmp = PORTFILE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(content, f)
    os.rename(tmp, PORTFILE)


def read_request(conn):
    """(method, target, headers, body) or None; bounded in size and time."""
    conn.settimeout(10)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk or len(data) > 65536:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target = lines[0].split(" ")[:2]
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        want = min(int(headers.get("content-length") or 0), 1 << 20)
        while len(body) < want:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        return method, target, headers, body.decode("utf-8", "replace")
    except (OSError, ValueError):
        return None


def send(conn, data):
    try:
        conn.sendall(data)
        return True
    except OSError:
        return False


def reply(conn, code, body=b"", extra=()):
    if isinstance(body, str):
        body = body.encode()
    head = "HTTP/1.1 %d X\r\nContent-Length: %d\r\nConnection: close\r\n" % (code, len(body))
    for k, v in extra:
        head += "%s: %s\r\n" % (k, v)
    send(conn, head.encode() + b"\r\n" + body)


def reset(conn):
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def hold(conn, path, query, started, trickle=None):
    """Keeps the connection until the peer closes it (or MAX_HOLD), sending one byte
    of `trickle` per second when given. Logs how long it was held."""
    end = min(started + MAX_HOLD, DEADLINE)
    next_byte = time.time()
    i = 0
    while time.time() < end:
        if trickle is not None and time.time() >= next_byte:
            if not send(conn, trickle[i % len(trickle):i % len(trickle) + 1]):
                break
            i += 1
            next_byte += 1.0
        wait = max(0.0, min(0.2, end - time.time()))
        try:
            readable, _, _ = select.select([conn], [], [], wait)
            if readable and not conn.recv(4096):
                break
        except OSError:
            break
    log({"event": "closed", "path": path, "query": query, "held": time.time() - started})


def gate(name, n):
    """Waits until n requests passed the gate called name (bounded: 15 s)."""
    with LOCK:
        entry = GATES.setdefault(name, [0, threading.Condition(LOCK)])
        entry[0] += 1
        entry[1].notify_all()
        end = time.time() + 15
        while entry[0] < n and time.time() < end:
            entry[1].wait(max(0.0, end - time.time()))


def http_date(at, form):
    if form == "rfc850":
        return time.strftime("%A, %d-%b-%y %H:%M:%S GMT", time.gmtime(at))
    if form == "asctime":
        return time.asctime(time.gmtime(at))
    return email.utils.formatdate(at, usegmt=True)


def serve(conn):
    started = time.time()
    req = read_request(conn)
    if req is None:
        conn.close()
        return
    method, target, headers, body = req
    url = urlsplit(target)
    path, q = url.path, {k: v[0] for k, v in parse_qs(url.query).items()}
    log({"event": "request", "method": method, "path": path, "query": url.query,
         "headers": headers, "body": body[:2000]})
    try:
        if path == "/ok":
            reply(conn, 200, "ok")
        elif path.startswith("/status/"):
            extra = []
            if "ra" in q:
                extra.append(("Retry-After", q["ra"]))
            if "ra_in" in q:
                at = time.time() + float(q["ra_in"])
                extra.append(("Retry-After", http_date(at, q.get("ra_form", "imf"))))
            body = bytes.fromhex(q["hex"]) if "hex" in q else q.get("body", "hostile status")
            reply(conn, int(path.split("/")[2]), body, extra)
        elif path.startswith("/redirect/"):
            reply(conn, int(path.split("/")[2]), "", [("Location", q.get("to", "/ok"))])
        elif path == "/reset":
            reset(conn)
            return
        elif path == "/reset-mid":
            send(conn, b"HTTP/1.1 2")
            time.sleep(0.05)
            reset(conn)
            return
        elif path == "/hang":
            hold(conn, path, url.query, started)
        elif path == "/trickle":
            if send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n"):
                hold(conn, path, url.query, started, trickle=b"x")
        elif path == "/trickle-head":
            hold(conn, path, url.query, started, trickle=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        elif path in ("/big", "/big-chunked"):
            chunked = path == "/big-chunked"
            head = b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
            head += b"Transfer-Encoding: chunked\r\n\r\n" if chunked else \
                b"Content-Length: %d\r\n\r\n" % BIG
            block = b"b" * 65536
            ok = send(conn, head)
            for _ in range(BIG // len(block)):
                if not ok:
                    break
                ok = send(conn, (b"10000\r\n" + block + b"\r\n") if chunked else block)
            if ok and chunked:
                send(conn, b"0\r\n\r\n")
        elif path == "/dispatch/ok":
            reply(conn, 200, json.dumps({"status": "succeeded", "row_count": 1}))
        elif path == "/dispatch/answer":
            if "gate" in q:
                gate(q["gate"], int(q.get("n", "1")))
            reply(conn, 200, ANSWERS.get(q.get("kind", "ok"), ANSWERS["ok"]))
        elif path == "/auth/token":
            reply(conn, 201, json.dumps({"access_token": "tok\r\nX-Injected: 1"}))
        else:
            reply(conn, 404, "no route")
    finally:
        try:
            conn.close()
        except OSError:
            pass


def stall_listener(host):
    """A listener whose accept queue is full: further SYNs are dropped."""
    s = socket.socket()
    s.bind((host, 0))
    s.listen(0)
    fillers = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(s.getsockname())
        except BlockingIOError:
            pass
        fillers.append(c)
    return s, fillers


def run_http():
    host = OPTS["--host"]
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, 0))
    srv.listen(512)
    stall, fillers = stall_listener(host)
    write_portfile({"http": srv.getsockname()[1], "stall": stall.getsockname()[1]})
    conns = 0
    while time.time() < DEADLINE and conns < MAX_CONNS:
        readable, _, _ = select.select([srv], [], [], 0.5)
        if not readable:
            continue
        conn, _ = srv.accept()
        conns += 1
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def run_canary():
    socks = []
    v6 = False
    for _ in range(20):
        s4 = socket.socket()
        s4.bind(("127.0.0.1", 0))
        port = s4.getsockname()[1]
        try:
            s6 = socket.socket(socket.AF_INET6)
            s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s6.bind(("::1", port))
            socks, v6 = [s4, s6], True
            break
        except OSError:
            s4.close()
    if not socks:  # no IPv6 loopback: IPv4 only
        s4 = socket.socket()
        s4.bind(("127.0.0.1", 0))
        socks = [s4]
    for s in socks:
        s.listen(128)
    write_portfile({"port": socks[0].getsockname()[1], "v6": v6})
    conns = 0
    while time.time() < DEADLINE and conns < MAX_CONNS:
        readable, _, _ = select.select(socks, [], [], 0.5)
        for s in readable:
            conn, peer = s.accept()
            conns += 1
            conn.settimeout(0.5)
            try:
                first = conn.recv(200).decode("latin-1")
            except OSError:
                first = ""
            log({"event": "canary", "peer": str(peer), "local": str(conn.getsockname()), "first": first})
            conn.close()


if __name__ == "__main__":
    run_canary() if MODE == "canary" else run_http()
