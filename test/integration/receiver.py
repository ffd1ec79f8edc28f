#!/usr/bin/env python3
"""HTTP receiver for the worker's integration tests (python3 stdlib only).

    receiver.py PORTFILE LOGFILE [SECRETFILE]

Listens on 127.0.0.1 (a free port, written to PORTFILE once listening) and
appends one JSON line per request to LOGFILE:
{"t", "method", "path", "headers", "body", "verified"}; "verified" is whether
the Standard Webhooks signature checks out against the whsec_ secret read from
SECRETFILE at each request (null while there is none).

Paths:
  /hook/ok            200                 /hook/fail     500
  /hook/hang          sleeps 30 s         /hook/flaky    500 for the first 2 requests, then 200
  /hook/slow          answers after 1.5 s (200)
  /dispatch/succeed   200 {"status":"succeeded","row_count":7,"checksum":"c1","info":{"via":"http"}}
  /dispatch/fail      200 {"status":"failed","error":"bad input","retry":false}
  /dispatch/accept    202                 /dispatch/error  500 "kaboom"
  Airflow-shaped (v1 and v2; token from POST /auth/token):
  POST /api/v{1,2}/dags/{dag}/dagRuns         200 new, 409 when dag_run_id exists
  GET  /api/v{1,2}/dags/{dag}/dagRuns/{id}    queued, running, then success
                                              (dag "fails": failed) after 2 polls; dag
                                              "waits": running for ever (it reports back
                                              through the callback listener instead)
  PRECREATE file: a dag_run_id listed in env RECEIVER_PRECREATE exists already.
  /dispatch/gated     waits (at most 30 s) until a file "gate" exists next to PORTFILE,
                      then answers like /dispatch/succeed
  /dispatch/once      an engine that honours Idempotency-Key: a new key (or none) starts
                      an engine run, then the answer hangs 30 s (past the worker's
                      timeout) and is 202; a key seen before answers 409 at once
  Airflow dag "hang": a new dag_run_id creates the DAG run, then the answer hangs 30 s
                      (the DAG run exists; 409 for it from then on)
  PATCH /api/v{1,2}/dags/{dag}/dagRuns/{id}  {"state": "failed"}: 200 and the DAG run is
                      failed from then on (polls answer failed); 404 for an unknown run
  Airflow dags "long*": running until a PATCH stops them (then failed)
  Airflow dag "slowpoll": a poll answers success after 1 s (a result in flight while the
                      chunk is cancelled)
  /cancel/ok          200 {"status":"cancelling"}   /cancel/error  500 "kaboom"
  /cancel/missing     404 {"detail":"no such run"}
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORTFILE, LOGFILE = sys.argv[1], sys.argv[2]
SECRETFILE = sys.argv[3] if len(sys.argv) > 3 else None
LOCK = threading.Lock()
COUNTS = {}
DAG_RUNS = {}  # (dag, id) -> polls so far
STOPPED = set()  # (dag, id) set to failed by a PATCH
KEYS = set()  # Idempotency-Keys /dispatch/once has started engine runs for
for rid in filter(None, os.environ.get("RECEIVER_PRECREATE", "").split(",")):
    dag, _, run = rid.partition("/")
    DAG_RUNS[(dag, run)] = 0


def verify(headers, body):
    try:
        secret = open(SECRETFILE).read().strip()
    except (TypeError, OSError):
        return None
    if not secret:
        return None
    key = base64.b64decode(secret.split("_", 1)[1])
    msg = "%s.%s.%s" % (headers.get("webhook-id"), headers.get("webhook-timestamp"), body)
    want = "v1," + base64.b64encode(hmac.new(key, msg.encode(), hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(want, s) for s in headers.get("webhook-signature", "").split())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms stalls

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", ctype="application/json"):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def record(self, body):
        headers = {k.lower(): v for k, v in self.headers.items()}
        line = {"t": time.time(), "method": self.command, "path": self.path, "headers": headers,
                "body": body, "verified": verify(headers, body) if self.path.startswith("/hook") else None}
        with LOCK:
            with open(LOGFILE, "a") as f:
                f.write(json.dumps(line) + "\n")
            COUNTS[self.path] = COUNTS.get(self.path, 0) + 1
            return COUNTS[self.path]

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace") if n else ""
        count = self.record(body)
        p = self.path
        if p == "/hook/ok":
            return self.reply(200, "ok", "text/plain")
        if p == "/hook/fail":
            return self.reply(500, "receiver down", "text/plain")
        if p == "/hook/hang":
            time.sleep(30)
            return self.reply(200, "late", "text/plain")
        if p == "/hook/slow":
            time.sleep(1.5)
            return self.reply(200, "ok", "text/plain")
        if p == "/hook/flaky":
            return self.reply(500 if count <= 2 else 200, "flaky", "text/plain")
        if p == "/dispatch/succeed":
            return self.reply(200, {"status": "succeeded", "row_count": 7, "checksum": "c1", "info": {"via": "http"}})
        if p == "/dispatch/fail":
            return self.reply(200, {"status": "failed", "error": "bad input", "retry": False})
        if p == "/dispatch/accept":
            return self.reply(202, {"status": "accepted"})
        if p == "/dispatch/error":
            return self.reply(500, "kaboom", "text/plain")
        if p == "/cancel/ok":
            return self.reply(200, {"status": "cancelling"})
        if p == "/cancel/error":
            return self.reply(500, "kaboom", "text/plain")
        if p == "/cancel/missing":
            return self.reply(404, {"detail": "no such run"})
        if p == "/dispatch/gated":
            gate = os.path.join(os.path.dirname(os.path.abspath(PORTFILE)), "gate")
            for _ in range(300):
                if os.path.exists(gate):
                    break
                time.sleep(0.1)
            return self.reply(200, {"status": "succeeded", "row_count": 7, "checksum": "c1", "info": {"via": "http"}})
        if p == "/dispatch/once":
            key = self.headers.get("Idempotency-Key")
            with LOCK:
                seen = key is not None and key in KEYS
                if key is not None:
                    KEYS.add(key)
            if seen:
                return self.reply(409, {"detail": "already accepted", "idempotency_key": key})
            time.sleep(30)
            return self.reply(202, {"status": "accepted"})
        if p == "/auth/token" and self.command == "POST":
            return self.reply(201, {"access_token": "tok-" + json.loads(body)["username"]})
        parts = p.strip("/").split("/")
        if len(parts) >= 5 and parts[0] == "api" and parts[2] == "dags" and parts[4] == "dagRuns":
            if parts[1] == "v2" and self.headers.get("Authorization") != "Bearer tok-admin":
                return self.reply(401, {"detail": "unauthorized"})
            dag = parts[3]
            if self.command == "POST" and len(parts) == 5:
                run = json.loads(body)["dag_run_id"]
                with LOCK:
                    if (dag, run) in DAG_RUNS:
                        return self.reply(409, {"detail": "DAGRun already exists"})
                    DAG_RUNS[(dag, run)] = 0
                if dag == "hang":
                    time.sleep(30)
                return self.reply(200, {"dag_run_id": run, "state": "queued"})
            if self.command == "PATCH" and len(parts) == 6:
                run = parts[5]
                with LOCK:
                    if (dag, run) not in DAG_RUNS:
                        return self.reply(404, {"detail": "DAGRun not found"})
                    STOPPED.add((dag, run))
                return self.reply(200, {"dag_run_id": run, "state": json.loads(body)["state"]})
            if self.command == "GET" and len(parts) == 6:
                run = parts[5]
                with LOCK:
                    if (dag, run) not in DAG_RUNS:
                        return self.reply(404, {"detail": "not found"})
                    DAG_RUNS[(dag, run)] += 1
                    polls = DAG_RUNS[(dag, run)]
                    stopped = (dag, run) in STOPPED
                if dag.startswith("long"):  # runs until stopped
                    return self.reply(200, {"dag_run_id": run, "state": "failed" if stopped else "running"})
                if dag == "slowpoll":
                    time.sleep(1)
                    return self.reply(200, {"dag_run_id": run, "state": "success"})
                state = "failed" if stopped else "queued" if polls == 1 else "running" if polls == 2 or dag == "waits" else \
                    ("failed" if dag == "fails" else "success")
                return self.reply(200, {"dag_run_id": run, "state": state})
        return self.reply(404, {"detail": "no route " + p})

    do_GET = handle_any
    do_POST = handle_any
    do_PATCH = handle_any


class Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default 5 drops SYNs under 64 parallel connects


def main():
    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    tmp = PORTFILE + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, PORTFILE)
    server.serve_forever()


if __name__ == "__main__":
    main()
