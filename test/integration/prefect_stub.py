#!/usr/bin/env python3
"""A Prefect-API-shaped server for the worker's integration tests (python3 stdlib only).

    prefect_stub.py PORTFILE LOGFILE

Listens on 127.0.0.1 (a free port, written to PORTFILE once listening) and appends one
JSON line per request to LOGFILE as it arrives: {"t", "method", "path", "headers", "body"}.
Exits after 20 minutes whatever happens (a test that forgets it cannot leave it running).

Two API roots with the same resources:
  /api                                   a self-hosted server: no auth
  /api/accounts/acc/workspaces/ws        Prefect Cloud-like: 401 unless
                                         "Authorization: Bearer pnu_stub_key"

Deployments of flow "etl" (id 00000000-0000-4000-8000-00000000000N, N as listed):
  1 ok         the flow run goes SCHEDULED (created) -> PENDING -> RUNNING -> COMPLETED,
               one step per GET of the flow run
  2 fails      ... RUNNING -> FAILED (message "boom")
  3 crashes    ... RUNNING -> CRASHED (message "worker lost")
  4 cancelled  ... RUNNING -> CANCELLED
  5 held       stays RUNNING until a file "release-<flow run id>" exists next to PORTFILE,
               then COMPLETED: a flow run that holds a lock while it works; while a file
               "delay-<flow run id>" exists, the answers to its GETs wait 5 s (logged
               first as a line {"method": "DELAYED", "path", "state"})
  6 hang-once  the first create_flow_run of an idempotency key makes the flow run, then
               its answer hangs 30 s (past the worker's timeout); then like "ok"
  7 slow       create_flow_run makes the flow run, then holds its answer until a file
               "answer-slow" exists next to PORTFILE (at most 25 s); then like "held"
  8 echo       create_flow_run answers 409 quoting every string parameter, as Prefect's
               validation errors quote parameter values ("Failure reason: 'v' is not one
               of [...]"), the longest last, padded so that it straddles a 300-byte cut
  9 squatted   create_flow_run answers 200 with a COMPLETED flow run another install
               made under that key: its parameters name run 999999 of job "elsewhere"

  GET  .../deployments/name/{flow}/{deployment}   the deployment, 404 if unknown
  POST .../deployments/{id}/create_flow_run       201 with a new flow run; 200 with the
                                                  same flow run for an idempotency_key
                                                  seen before (per deployment)
  GET  .../flow_runs/{id}                         the flow run (its state advances)
  POST .../flow_runs/{id}/set_state               {"state": {"type": "CANCELLING"}}:
                                                  CANCELLING, then CANCELLED at the next GET
"""
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORTFILE, LOGFILE = sys.argv[1], sys.argv[2]
DIR = os.path.dirname(os.path.abspath(PORTFILE))
ROOTS = {"/api": None, "/api/accounts/acc/workspaces/ws": "Bearer pnu_stub_key"}
NAMES = ["ok", "fails", "crashes", "cancelled", "held", "hang-once", "slow", "echo", "squatted"]
DEPLOYMENTS = {"00000000-0000-4000-8000-%012d" % (i + 1): n for i, n in enumerate(NAMES)}
FINAL = {"ok": ("COMPLETED", "Completed", None), "fails": ("FAILED", "Failed", "boom"),
         "crashes": ("CRASHED", "Crashed", "worker lost"), "cancelled": ("CANCELLED", "Cancelled", None),
         "held": ("COMPLETED", "Completed", None), "hang-once": ("COMPLETED", "Completed", None),
         "slow": ("COMPLETED", "Completed", None), "echo": ("COMPLETED", "Completed", None),
         "squatted": ("COMPLETED", "Completed", None)}
STEPS = [("SCHEDULED", "Scheduled"), ("PENDING", "Pending"), ("RUNNING", "Running")]
LOCK = threading.Lock()
LOG_FD = os.open(LOGFILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
RUNS = {}  # flow run id -> {"deployment", "step", "parameters", "key", "state"}
KEYS = {}  # (deployment id, idempotency key) -> flow run id


def state_of(run):
    t, n, m = run["state"]
    return {"type": t, "name": n, "message": m}


def flow_run_doc(fid, run):
    st = state_of(run)
    return {"id": fid, "name": "stub-" + fid[:8], "deployment_id": run["deployment"],
            "parameters": run["parameters"], "idempotency_key": run["key"], "state": st,
            "state_type": st["type"], "state_name": st["name"]}


def advance(fid, run):
    """One GET of the flow run: the next state of its deployment's story."""
    name = DEPLOYMENTS[run["deployment"]]
    if run["state"][0] == "CANCELLING":
        run["state"] = ("CANCELLED", "Cancelled", "cancelled on request")
        return
    if run["state"][0] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
        return
    run["step"] += 1
    if run["step"] < len(STEPS):
        run["state"] = STEPS[run["step"]] + (None,)
    elif name in ("held", "slow") and not os.path.exists(os.path.join(DIR, "release-" + fid)):
        run["state"] = ("RUNNING", "Running", None)
    else:
        run["state"] = FINAL[name]


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
        return status

    def record(self, body):
        line = {"t": time.time(), "method": self.command, "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
        data = (json.dumps(line) + "\n").encode()
        with LOCK:
            os.write(LOG_FD, data)  # one write of the whole line: readers never see half of it

    def note(self, what, state):
        line = {"t": time.time(), "method": what, "path": self.path, "headers": {}, "body": "", "state": state}
        data = (json.dumps(line) + "\n").encode()
        with LOCK:
            os.write(LOG_FD, data)

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(n, 1 << 20)).decode("utf-8", "replace") if n else ""
        self.record(body)  # on arrival: a test sees a request whose answer is still to come
        self.route(body)

    def route(self, body):
        root = max((r for r in ROOTS if self.path.startswith(r + "/")), key=len, default=None)
        if root is None:
            return self.reply(404, {"detail": "Not Found"})
        want = ROOTS[root]
        if want is not None and self.headers.get("Authorization") != want:
            return self.reply(401, {"detail": "Unauthorized"})
        parts = self.path[len(root) + 1:].split("/")
        if self.command == "GET" and len(parts) == 4 and parts[:2] == ["deployments", "name"]:
            from urllib.parse import unquote
            flow, dep = unquote(parts[2]), unquote(parts[3])
            for did, name in DEPLOYMENTS.items():
                if flow == "etl" and dep == name:
                    return self.reply(200, {"id": did, "name": name, "flow_id": "flow-etl"})
            return self.reply(404, {"detail": "Deployment not found"})
        if self.command == "POST" and len(parts) == 3 and parts[0] == "deployments" and parts[2] == "create_flow_run":
            did = parts[1]
            if did not in DEPLOYMENTS:
                return self.reply(404, {"detail": "Deployment not found"})
            try:
                req = json.loads(body)
            except ValueError:
                return self.reply(422, {"detail": "malformed body"})
            key = req.get("idempotency_key")
            params = req.get("parameters") or {}
            if DEPLOYMENTS[did] == "echo":
                leaves = []
                def walk(v):
                    if isinstance(v, str):
                        leaves.append(v)
                    elif isinstance(v, dict):
                        for x in v.values():
                            walk(x)
                    elif isinstance(v, list):
                        for x in v:
                            walk(x)
                walk({k: v for k, v in params.items() if k != "dataflow"})
                leaves.sort(key=len)
                quoted = ", ".join("'%s'" % v for v in leaves)
                detail = "Error creating flow run: Validation failed. Failure reason: %s is not one of ['a', 'b']" % quoted
                # the longest value starts 290 bytes into the detail: the worker's 300-byte
                # excerpt of it cuts that value in two
                pad = max(0, 290 - detail.rindex("'" + leaves[-1]) - 1) if leaves else 0
                return self.reply(409, {"detail": "x" * pad + detail})
            if DEPLOYMENTS[did] == "squatted":
                fid = str(uuid.uuid4())
                with LOCK:
                    RUNS[fid] = {"deployment": did, "step": 3, "key": key, "state": FINAL["squatted"],
                                 "parameters": {"dataflow": {"run_id": 999999, "job": "elsewhere"}}}
                    doc = flow_run_doc(fid, RUNS[fid])
                return self.reply(200, doc)
            with LOCK:
                fid = KEYS.get((did, key)) if key else None
                if fid is not None:
                    return self.reply(200, flow_run_doc(fid, RUNS[fid]))
                fid = str(uuid.uuid4())
                RUNS[fid] = {"deployment": did, "step": 0, "parameters": req.get("parameters") or {},
                             "key": key, "state": ("SCHEDULED", "Scheduled", None)}
                if key:
                    KEYS[(did, key)] = fid
                doc = flow_run_doc(fid, RUNS[fid])
            if DEPLOYMENTS[did] == "hang-once":
                time.sleep(30)
            if DEPLOYMENTS[did] == "slow":
                for _ in range(250):
                    if os.path.exists(os.path.join(DIR, "answer-slow")):
                        break
                    time.sleep(0.1)
            return self.reply(201, doc)
        if len(parts) >= 2 and parts[0] == "flow_runs":
            fid = parts[1]
            with LOCK:
                run = RUNS.get(fid)
                if run is None:
                    return self.reply(404, {"detail": "Flow run not found"})
                if self.command == "GET" and len(parts) == 2:
                    advance(fid, run)
                    doc = flow_run_doc(fid, run)
            if self.command == "GET" and len(parts) == 2:
                # "delay-<flow run id>" next to PORTFILE: the answer waits 5 s (a poll in
                # flight while the engine reports through the callback listener), and a
                # line {"method": "DELAYED", "path", "state"} in the log says so first
                if os.path.exists(os.path.join(DIR, "delay-" + fid)):
                    self.note("DELAYED", doc["state"]["type"])
                    time.sleep(5)
                return self.reply(200, doc)
            with LOCK:
                if self.command == "POST" and len(parts) == 3 and parts[2] == "set_state":
                    try:
                        st = json.loads(body)["state"]["type"]
                    except (ValueError, KeyError, TypeError):
                        return self.reply(422, {"detail": "state.type required"})
                    if run["state"][0] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                        return self.reply(200, {"status": "REJECT", "state": state_of(run)})
                    run["state"] = (st, st.capitalize(), None)
                    return self.reply(201, {"status": "ACCEPT", "state": state_of(run)})
        return self.reply(404, {"detail": "no route " + self.path})

    do_GET = handle_any
    do_POST = handle_any


class Server(ThreadingHTTPServer):
    request_queue_size = 64
    daemon_threads = True


def main():
    server = Server(("127.0.0.1", 0), Handler)
    tmp = PORTFILE + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, PORTFILE)
    threading.Timer(1200, os._exit, (0,)).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
