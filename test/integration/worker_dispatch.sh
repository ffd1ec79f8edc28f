#!/usr/bin/env bash
# http dispatch end to end against a local receiver: a terminal success
# completes the chunk with the engine's row count, a terminal failure fails it,
# 202 leaves the run to the engine (which completes it over SQL), a 500, a
# receiver that hangs past the timeout, a refused connection and a destination
# refused by dataflow.http_allow are retryable failures with clear errors.
# Every send carries an Idempotency-Key (dataflow-<run id>): a failure that
# leaves open whether the engine took the request (a timeout after sending) is
# resent with the same key and token, and an engine that answers 409 for a key
# it has seen is adopted: one engine run, not two. A definite failure (500 with
# a body) is retried as a new run with a new key.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh
. test/integration/worker_common.bash

wt_setup "dataflow.naptime = 60000"
wt_start_receiver
port=$(cat "$WT_DIR/port")
wt_sql "SELECT dataflow.create_dataset('raw', 'int')" >/dev/null
wt_sql "SELECT dataflow.create_connection('recv', 'http', '$WT_URL')" >/dev/null
job() { # job NAME ENDPOINT|connection:TARGET [extra create_job args]
    local name=$1 where=$2; shift 2
    wt_sql "SELECT dataflow.create_dataset('out_$name', 'int')" >/dev/null
    if [[ $where == connection:* ]]; then
        where="connection => 'recv', target => '${where#connection:}'"
    else
        where="endpoint => '$where'"
    fi
    wt_sql "SELECT dataflow.create_job('$name', 'out_$name', dispatch => 'http', $where, max_attempts => 2,
                                       backoff_min => '1 second', backoff_max => '1 second' ${1:+, $1})" >/dev/null
    wt_sql "SELECT dataflow.add_input('$name', 'raw')" >/dev/null
    wt_sql "SELECT dataflow.expect('out_$name', '1', '2')" >/dev/null
}
job ok "$WT_URL/dispatch/succeed"
job bad connection:/dispatch/fail
job accept connection:dispatch/accept
job err "$WT_URL/dispatch/error"
job hang "$WT_URL/hook/hang" "lease_for => '6 seconds'"
job once "$WT_URL/dispatch/once"
job refused "http://127.0.0.1:1/nothing"
job policy "http://127.0.0.2:$port/dispatch/succeed"

chunk() { wt_sql "SELECT status || '|' || coalesce(row_count::text, '') || '|' || coalesce(error, '')
                    FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
                   WHERE d.name = 'out_$1' AND c.key = '$2'"; }

# Inputs arrive: every consumer is queued and the worker (naptime 60 s) is woken.
start=$(date +%s.%N)
wt_sql "SELECT dataflow.register('raw', '1'); SELECT dataflow.register('raw', '2')" >/dev/null
wt_wait "the http success" 5 "SELECT count(*) = 2 FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
                             WHERE d.name = 'out_ok' AND c.status = 'ready'"
echo "dispatched and completed after $(echo "$(date +%s.%N) - $start" | bc)s (naptime 60s)"
[ "$(chunk ok 1)" = "ready|7|" ] || wt_fail "ok chunk: $(chunk ok 1)"
wt_sql "SELECT r.info->>'via' = 'http' AND r.checksum = 'c1' AND r.worker = 'bgworker'
          FROM dataflow.run r JOIN dataflow.chunk c ON c.id = r.chunk_id JOIN dataflow.dataset d ON d.id = c.dataset_id
         WHERE d.name = 'out_ok' AND c.key = '1'" | grep -qx t || wt_fail "run of ok chunk lacks the engine's result"
python3 - "$WT_DIR/requests.jsonl" <<'PY' || wt_fail "task document"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"/dispatch/succeed"' in l]
task = json.loads(rows[0]["body"])
for f in ("run_id", "token", "job", "dataset", "key", "version", "attempt", "output_location", "inputs", "params", "deadline"):
    assert f in task, f
assert task["job"] == "ok" and task["inputs"][0]["dataset"] == "raw", task
PY

wt_wait "the terminal failure" 5 "SELECT count(*) = 2 FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
                                 WHERE d.name = 'out_bad' AND c.status = 'failed'"
[ "$(chunk bad 1)" = "failed||bad input" ] || wt_fail "bad chunk: $(chunk bad 1)"

# 202: the run stays live until the engine reports over SQL.
wt_wait "the accepted runs" 5 "SELECT count(*) = 2 FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
                               WHERE d.name = 'out_accept' AND c.status = 'running'"
token=$(python3 -c "
import json,sys
rows=[json.loads(l) for l in open('$WT_DIR/requests.jsonl') if '\"/dispatch/accept\"' in l]
print(json.loads(rows[0]['body'])['token'])")
wt_sql "SELECT dataflow.complete('$token', row_count => 11)" >/dev/null
wt_sql "SELECT count(*) = 1 FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
         WHERE d.name = 'out_accept' AND c.status = 'ready' AND c.row_count = 11" | grep -qx t \
    || wt_fail "engine completion of an accepted run"

# Retryable failures: two attempts each (max_attempts 2, 1 s backoff), then failed with the reason.
wt_wait "500s to be retried and fail" 15 "SELECT count(*) = 2 FROM dataflow.chunk c JOIN dataflow.dataset d
                                          ON d.id = c.dataset_id WHERE d.name = 'out_err' AND c.status = 'failed'"
[[ $(chunk err 1) == "failed||HTTP 500: kaboom" ]] || wt_fail "err chunk: $(chunk err 1)"
[ "$(wt_requests /dispatch/error)" = 4 ] || wt_fail "expected 4 requests to /dispatch/error, got $(wt_requests /dispatch/error)"
python3 - "$WT_DIR/requests.jsonl" <<'PY' || wt_fail "definite failures must be retried as new runs with new keys"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
err = [r for r in rows if r["path"] == "/dispatch/error"]
keys = [r["headers"].get("idempotency-key") for r in err]
runs = [json.loads(r["body"])["run_id"] for r in err]
assert len(set(keys)) == 4 and keys == ["dataflow-%d" % i for i in runs], (keys, runs)
PY
wt_wait "refused connections to fail" 15 "SELECT count(*) = 2 FROM dataflow.chunk c JOIN dataflow.dataset d
                                          ON d.id = c.dataset_id WHERE d.name = 'out_refused' AND c.status = 'failed'"
[[ $(chunk refused 1) == failed* ]] && [[ $(chunk refused 1) == *onnect* ]] || wt_fail "refused chunk: $(chunk refused 1)"
wt_wait "the policy refusal" 15 "SELECT count(*) = 2 FROM dataflow.chunk c JOIN dataflow.dataset d
                                 ON d.id = c.dataset_id WHERE d.name = 'out_policy' AND c.status = 'failed'"
[[ $(chunk policy 1) == *"not listed in dataflow.http_allow"* ]] || wt_fail "policy chunk: $(chunk policy 1)"
[ "$(wt_requests /dispatch/succeed)" = 2 ] || wt_fail "a refused destination was reached"
wt_wait "hung requests to time out" 20 "SELECT count(*) = 2 FROM dataflow.chunk c JOIN dataflow.dataset d
                                        ON d.id = c.dataset_id WHERE d.name = 'out_hang' AND c.status = 'failed'"
[[ $(chunk hang 1) == *"imed out"* ]] || wt_fail "hang chunk: $(chunk hang 1)"
python3 - "$WT_DIR/requests.jsonl" <<'PY' || wt_fail "a timed-out run must be resent with its own key and token"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by_run = {}
for r in rows:
    if r["path"] == "/hook/hang" and r["method"] == "POST" and r["body"].startswith("{\"attempt\""):
        t = json.loads(r["body"])
        by_run.setdefault(t["run_id"], []).append((r["headers"].get("idempotency-key"), t["token"]))
assert len(by_run) == 4, by_run                       # 2 chunks x 2 attempts (runs)
assert any(len(v) >= 2 for v in by_run.values()), by_run  # resent within its lease
for rid, sends in by_run.items():
    assert all(s == ("dataflow-%d" % rid, sends[0][1]) for s in sends), (rid, sends)
PY

# Accept, then hang past the timeout: the engine took the first send of each run
# (and answers 409 for its key from then on); the worker resends, adopts, and the
# engine reports over SQL with the token of that first send. One engine run each.
wt_wait "the hung-but-accepted runs to be adopted" 20 \
    "SELECT count(*) = 2 FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
      WHERE d.name = 'out_once' AND c.status = 'running'" 
for ((i = 0; i < 200; i++)); do
    python3 - "$WT_DIR/requests.jsonl" <<'PY' && break
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"/dispatch/once"' in l]
sys.exit(0 if len(rows) >= 4 else 1)
PY
    sleep 0.1
done
grep -q "(409): adopted" "$WT_DIR/server.log" || wt_fail "no run was adopted after a 409"
tokens=$(python3 - "$WT_DIR/requests.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"/dispatch/once"' in l]
keys = [r["headers"].get("idempotency-key") for r in rows]
engine_runs = len(set(keys)) + keys.count(None) - (1 if None in keys else 0)
assert engine_runs == 2, ("engine runs started", engine_runs, keys)
first = {}
for r in rows:
    first.setdefault(r["headers"].get("idempotency-key"), json.loads(r["body"])["token"])
print(" ".join(first.values()))
PY
) || wt_fail "the hung-but-accepted sends started more than one engine run per chunk"
for t in $tokens; do wt_sql "SELECT dataflow.complete('$t', row_count => 3)" >/dev/null; done
wt_sql "SELECT count(*) = 2 FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
         WHERE d.name = 'out_once' AND c.status = 'ready'" | grep -qx t || wt_fail "adopted runs did not complete"
[ "$(wt_sql "SELECT count(*) FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id WHERE j.name = 'once'")" = 2 ] \
    || wt_fail "an ambiguous failure started a second run"

grep -E "PANIC|TRAP|terminated by signal" "$WT_DIR/server.log" && wt_fail "server log shows a crash"
echo "ok: http dispatch"
