#!/usr/bin/env python3
"""Hostile clients against the callback listener, with honest ones among them (stdlib only).

    listener_hostile.py HOST:PORT TOKENS_FILE LISTENER_PID KILL_CMD

TOKENS_FILE holds one honest token a line. Honest clients (64 threads) heartbeat and then
complete each token with row_count = its line number. Meanwhile: slow-loris headers and
bodies, 10 MB bodies (declared and chunked), malformed and 100,000-level nested JSON,
10,000 random (wrong) tokens, and a flood of 200 connections trickling their headers from one
address (the per-address limit, dataflow.callback_max_connections_per_ip, must keep it from
taking the slots the others need). Every kind of client has its own source address on the
loopback (127.0.0.2 ... ; the honest ones share 127.0.1.1 - .4, 16 threads each), so the
per-address limit applies to each kind as it would to a host. KILL_CMD is run once the honest load is under way (it ends
the dispatch worker). Prints one JSON line of results; exit status 0 always (the shell
judges)."""
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
import uuid

ADDR, TOKENS_FILE, PID, KILL_CMD = sys.argv[1:5]
HOST, PORT = ADDR.rsplit(":", 1)
PORT = int(PORT)
TOKENS = [t.strip() for t in open(TOKENS_FILE) if t.strip()]
LOCK = threading.Lock()
R = {"honest_ok": 0, "honest_bad": [], "wrong_401": 0, "wrong_other": {}, "malformed_400": 0,
     "malformed_other": {}, "big_413": 0, "big_other": {}, "loris_cut": 0, "loris_open": 0,
     "rss_kb_before": 0, "rss_kb_peak": 0, "killed": False, "flood_held": 0, "flood_refused": 0}
SRC = {"loris": "127.0.0.3", "big": "127.0.0.4", "malformed": "127.0.0.5", "wrong": "127.0.0.6",
       "flood": "127.0.0.2"}


def connect(kind):
    return http.client.HTTPConnection(HOST, PORT, timeout=30, source_address=(SRC[kind], 0))


def rss(field):
    for line in open("/proc/%s/status" % PID):
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def bump(key, sub=None):
    with LOCK:
        if sub is None:
            R[key] += 1
        else:
            R[key][sub] = R[key].get(sub, 0) + 1


def post(conn, path, token, body, headers=None):
    h = {"Content-Type": "application/json", "Authorization": "Bearer " + token}
    if headers:
        h.update(headers)
    conn.request("POST", path, body=body, headers=h)
    r = conn.getresponse()
    return r.status, r.read()


def honest(tokens, src):
    conn = http.client.HTTPConnection(HOST, PORT, timeout=30, source_address=(src, 0))
    for n, tok in tokens:
        for path, body, want in (("/v1/runs/heartbeat", b'{"extend_by": 3600}', b'"running"'),
                                 ("/v1/runs/complete", b'{"row_count": %d}' % n, b'{"status":"ready"}')):
            try:
                st, out = post(conn, path, tok, body)
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conn = http.client.HTTPConnection(HOST, PORT, timeout=30, source_address=(src, 0))
                st, out = 0, repr(e).encode()
            if st == 200 and want in out:
                bump("honest_ok")
            else:
                with LOCK:
                    R["honest_bad"].append("%s %d %s" % (path, st, out[:120].decode("utf-8", "replace")))
    conn.close()


def wrong_tokens(n):
    conn = connect("wrong")
    for _ in range(n):
        try:
            st, _ = post(conn, "/v1/runs/complete", str(uuid.uuid4()), b'{"row_count": 1}')
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = connect("wrong")
            st = 0
        if st == 401:
            bump("wrong_401")
        else:
            bump("wrong_other", str(st))
    conn.close()


def malformed(n):
    deep = b'{"info": ' + b"[" * 100000 + b"]" * 100000 + b"}"
    bodies = [b"{", b'{"row_count": }', b"\xff\xfe", b'{"row_count": 1, "info": {"a": "\\u0000"}}',
              deep, b"[" * 100000, b'{"info": ' + b'{"a":' * 50000 + b"1" + b"}" * 50000 + b"}"]
    conn = connect("malformed")
    for i in range(n):
        try:
            st, _ = post(conn, "/v1/runs/complete", TOKENS[i % len(TOKENS)], bodies[i % len(bodies)])
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = connect("malformed")
            st = 0
        if st == 400:
            bump("malformed_400")
        else:
            bump("malformed_other", str(st))
    conn.close()


def big(chunked):
    body = b'{"checksum": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    conn = connect("big")
    try:
        if chunked:
            def gen():
                for i in range(0, len(body), 65536):
                    yield body[i:i + 65536]
            conn.request("POST", "/v1/runs/complete", body=gen(), encode_chunked=True,
                         headers={"Authorization": "Bearer " + TOKENS[0]})
        else:
            conn.request("POST", "/v1/runs/complete", body=body,
                         headers={"Authorization": "Bearer " + TOKENS[0]})
        st = conn.getresponse().status
    except (OSError, http.client.HTTPException) as e:
        st = type(e).__name__  # the server may close while a declared-too-large body is sent
    conn.close()
    if st == 413:
        bump("big_413")
    else:
        bump("big_other", str(st))


def loris(kind, seconds):
    """Trickles headers (or a body) one byte every half second; counts whether the
    listener cut the connection before `seconds`."""
    s = socket.create_connection((HOST, PORT), timeout=5, source_address=(SRC["loris"], 0))
    start = time.time()
    if kind == "body":
        s.sendall(("POST /v1/runs/complete HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "Content-Length: 100000\r\n\r\n" % TOKENS[0]).encode())
        drip = b"{" + b" " * 100000
    else:
        drip = b"POST /v1/runs/complete HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100000
    i = 0
    try:
        while time.time() - start < seconds:
            s.sendall(drip[i:i + 1])
            i += 1
            time.sleep(0.5)
        bump("loris_open")
    except OSError:
        bump("loris_cut")
    s.close()


def flood(n, seconds):
    """Opens n connections from one address and keeps trickling their headers for
    `seconds`, reconnecting what is cut: counts the connections the listener took (their
    first bytes were read, they were cut only later) and those it refused at once."""
    socks = []
    end = time.time() + seconds
    while time.time() < end:
        while len(socks) < n and time.time() < end:
            try:
                c = socket.create_connection((HOST, PORT), timeout=2, source_address=(SRC["flood"], 0))
                c.sendall(b"POST /v1/runs/complete HTTP/1.1\r\nHost: x\r\n")
                socks.append([c, time.time()])
            except OSError:
                bump("flood_refused")
                break
        time.sleep(0.2)
        keep = []
        for c, t in socks:
            try:
                c.sendall(b"X-Slow: a\r\n")
                # a refused connection is closed by the server at once: the peer's FIN/RST
                c.setblocking(False)
                try:
                    gone = c.recv(1) == b""
                except BlockingIOError:
                    gone = False
                c.setblocking(True)
                if gone:
                    raise OSError("closed")
                keep.append([c, t])
            except OSError:
                bump("flood_held" if time.time() - t > 1.0 else "flood_refused")
                c.close()
        socks = keep
    for c, t in socks:
        c.close()


def main():
    R["rss_kb_before"] = rss("VmRSS:")
    threads = []
    for k in range(20):
        threads.append(threading.Thread(target=loris, args=("headers", 12)))
    for k in range(10):
        threads.append(threading.Thread(target=loris, args=("body", 12)))
    for chunked in (False, False, False, False, True, True):
        threads.append(threading.Thread(target=big, args=(chunked,)))
    for k in range(4):
        threads.append(threading.Thread(target=malformed, args=(50,)))
    for k in range(16):
        threads.append(threading.Thread(target=wrong_tokens, args=(625,)))  # 10,000
    threads.append(threading.Thread(target=flood, args=(200, 8)))
    numbered = list(enumerate(TOKENS, 1))
    honest_threads = [threading.Thread(target=honest, args=(numbered[k::64], "127.0.1.%d" % (1 + k % 4)))
                      for k in range(64)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    for t in honest_threads:
        t.start()
    time.sleep(0.5)
    subprocess.run(KILL_CMD, shell=True, check=False)
    R["killed"] = True
    for t in honest_threads + threads:
        t.join()
    R["rss_kb_peak"] = rss("VmHWM:")
    R["honest_bad"] = R["honest_bad"][:5]
    print(json.dumps(R))


main()
