#!/usr/bin/env python3
"""Webhook receiver and http engine for the crash tests (python3 stdlib only).

    crash_receiver.py PORTFILE LOGFILE SECRETFILE

Listens on 127.0.0.1 (a free port, written to PORTFILE once listening) and
appends one tab-separated line per request to LOGFILE, flushed before it
answers (the receiver itself is never killed; the tests crash Postgres and the
background worker only):

  hook  <time>  <path>  <webhook-id>  <verified 1|0>  <dataset>  <key>  <event_id>
  task  <time>  <run_id>  <dataset>  <key>  <version>  <attempt>  <sync|async>
  abort <time>  hook|task  <webhook-id|run_id>

Each request waits a random 0..RECEIVER_DELAY_MS ms (default 20) first, so
requests are in flight when a crash comes. If the sender has gone by then (its
connection is closed: the worker was killed), the request is dropped unprocessed
and logged as "abort", as a server that cancels work on client disconnect
would: nothing but a new request from the restarted worker can then deliver it,
so at-least-once is tested, not only the absence of loss in flight.

Paths:
  POST /hook/<anything>  a webhook: the Standard Webhooks signature is checked
                         against the whsec_ secret in SECRETFILE; answers 200
  POST /engine           an http dispatch (the task document): an even run_id
                         is finished synchronously (200 {"status":"succeeded"}),
                         an odd one is accepted (202) and completed later over
                         SQL with its token (dataflow.complete), as an engine
                         that reports back would
Completions are batched every 0.1 s through psql (env RECEIVER_PSQL, the
connection from the PG* environment), one autocommitted statement per token.
A batch whose psql lost its connection (exit code 2: Postgres restarting) is
sent again; a token that was already completed or whose lease ended gets
SQLSTATE 55000, which psql logs to LOGFILE.completer.err and the test counts.

Faults, to show the tests can fail: RECEIVER_DROP_EVERY=N does not log a
webhook whose delivery number is a multiple of N (it still answers 200);
RECEIVER_LOSE_EVERY=N never completes an accepted run whose id is a multiple
of N (its lease expires and the chunk is dispatched again).
"""
import base64
import hashlib
import hmac
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORTFILE, LOGFILE, SECRETFILE = sys.argv[1], sys.argv[2], sys.argv[3]
DELAY_MS = int(os.environ.get("RECEIVER_DELAY_MS", "20"))
DROP_EVERY = int(os.environ.get("RECEIVER_DROP_EVERY", "0"))
LOSE_EVERY = int(os.environ.get("RECEIVER_LOSE_EVERY", "0"))
PSQL = os.environ.get("RECEIVER_PSQL", "psql")

LOG_LOCK = threading.Lock()
LOG = open(LOGFILE, "a", encoding="utf-8")
QUEUE_LOCK = threading.Lock()
QUEUE = []  # [token, tries] to complete
MAX_TRIES = 300  # a batch is retried every 0.3 s at most: 90 s of Postgres being down
SECRET_KEY = None


def log(*fields):
    line = "\t".join(str(f) for f in fields) + "\n"
    with LOG_LOCK:
        LOG.write(line)
        LOG.flush()


def secret_key():
    global SECRET_KEY
    if SECRET_KEY is None:
        try:
            secret = open(SECRETFILE).read().strip()
        except OSError:
            return None
        if secret.startswith("whsec_"):
            SECRET_KEY = base64.b64decode(secret[len("whsec_"):])
    return SECRET_KEY


def verified(headers, body):
    key = secret_key()
    if key is None:
        return 0
    msg = "%s.%s.%s" % (headers.get("webhook-id"), headers.get("webhook-timestamp"), body)
    want = "v1," + base64.b64encode(hmac.new(key, msg.encode(), hashlib.sha256).digest()).decode()
    return int(any(hmac.compare_digest(want, s) for s in headers.get("webhook-signature", "").split()))


def clean(value):
    return str(value).replace("\t", " ").replace("\n", " ")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def client_gone(self):
        """True when the sender closed or reset its connection (nothing else is sent while it waits)."""
        sock = self.connection
        try:
            sock.setblocking(False)
            return sock.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True
        finally:
            try:
                sock.setblocking(True)
            except OSError:
                pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n).decode("utf-8", "replace") if n else ""
        if DELAY_MS:
            time.sleep(random.uniform(0, DELAY_MS) / 1000.0)
        now = "%.6f" % time.time()
        if self.client_gone():
            what = "hook" if self.path.startswith("/hook/") else "task"
            ident = self.headers.get("webhook-id", "") if what == "hook" else ""
            if what == "task":
                try:
                    ident = str(int(json.loads(raw)["run_id"]))
                except (ValueError, KeyError, TypeError):
                    pass
            log("abort", now, what, clean(ident))
            self.close_connection = True
            return
        if self.path.startswith("/hook/"):
            headers = {k.lower(): v for k, v in self.headers.items()}
            wid = headers.get("webhook-id", "")
            try:
                data = json.loads(raw)["data"]
            except (ValueError, KeyError, TypeError):
                data = {}
            number = wid[4:] if wid.startswith("msg_") else ""
            if not (DROP_EVERY and number.isdigit() and int(number) % DROP_EVERY == 0):
                log("hook", now, clean(self.path), clean(wid), verified(headers, raw),
                    clean(data.get("dataset")), clean(data.get("key")), clean(data.get("event_id")))
            return self.reply(200, {"ok": True})
        if self.path == "/engine":
            try:
                task = json.loads(raw)
                run_id = int(task["run_id"])
            except (ValueError, KeyError, TypeError):
                return self.reply(400, {"status": "failed", "error": "not a task"})
            sync = run_id % 2 == 0
            log("task", now, run_id, clean(task.get("dataset")), clean(task.get("key")),
                clean(task.get("version")), clean(task.get("attempt")), "sync" if sync else "async")
            if sync:
                return self.reply(200, {"status": "succeeded", "row_count": 1,
                                        "checksum": "k%s" % task.get("key")})
            if not (LOSE_EVERY and run_id % LOSE_EVERY == 0):
                with QUEUE_LOCK:
                    QUEUE.append([str(task["token"]), 0])
            return self.reply(202, {"status": "accepted"})
        return self.reply(404, {"detail": "no route " + self.path})


class Server(ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True


def completer():
    err = open(LOGFILE + ".completer.err", "a", encoding="utf-8")
    while True:
        time.sleep(0.1)
        with QUEUE_LOCK:
            batch = QUEUE[:]
            del QUEUE[:]
        if not batch:
            continue
        script = "".join("SELECT dataflow.complete('%s'::uuid, row_count => 1);\n" % t for t, _ in batch)
        try:
            rc = subprocess.run([PSQL, "-X", "-q", "-At", "-v", "VERBOSITY=sqlstate", "-d", "postgres",
                                 "-o", "/dev/null"], input=script, text=True, stdout=subprocess.DEVNULL,
                                stderr=err, timeout=60).returncode
        except subprocess.TimeoutExpired:
            rc = 2
        if rc != 0:  # connection refused or lost mid-batch: send the whole batch again
            again = [[t, n + 1] for t, n in batch if n + 1 < MAX_TRIES]
            for t, n in batch:
                if n + 1 >= MAX_TRIES:
                    log("gaveup", "%.6f" % time.time(), t)
            with QUEUE_LOCK:
                QUEUE[:0] = again
            time.sleep(0.2)


def main():
    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=completer, daemon=True).start()
    tmp = PORTFILE + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, PORTFILE)
    server.serve_forever()


if __name__ == "__main__":
    main()
