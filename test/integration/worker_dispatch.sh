#!/usr/bin/env bash
# http dispatch end to end against a local receiver: a terminal success
# completes the chunk with the engine's row count, a terminal failure fails it,
# 202 leaves the run to the engine (which completes it over SQL), a 500, a
# receiver that hangs past the timeout, a refused connection and a destination
# refused by dataflow.http_allow are retryable failures with clear errors.
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
job hang "$WT_URL/hook/hang"
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

grep -E "PANIC|TRAP|terminated by signal" "$WT_DIR/server.log" && wt_fail "server log shows a crash"
echo "ok: http dispatch"
