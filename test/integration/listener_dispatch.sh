#!/usr/bin/env bash
# Tasks carry callback {url, token} while dataflow.callback_url is set (docs/worker.md,
# "Callback listener"): the dispatch worker POSTs an http job's task to a receiver that
# answers 202; the task names the listener's base URL (trailing slash dropped) and the
# run's token, and the "engine" completes the run through that URL. With the setting
# cleared (a reload), the next task carries no callback.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh
. test/integration/worker_common.bash

LPORT=$(df_free_port $((30000 + RANDOM % 20000)))
wt_setup "dataflow.callback_listen = '127.0.0.1:$LPORT'" "dataflow.callback_role = 'df_callback'" \
    "dataflow.callback_url = 'http://127.0.0.1:$LPORT/'"
wt_start_receiver
wt_sql "CREATE ROLE df_callback LOGIN; GRANT dataflow_worker TO df_callback" >/dev/null

last_task() {  # the body of the receiver's last /dispatch/accept request, field $1 (python expr)
    python3 - "$WT_DIR/requests.jsonl" "$1" <<'PY'
import json, sys
body = None
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["path"] == "/dispatch/accept":
        body = r["body"]
task = json.loads(body) if isinstance(body, str) else body
print(eval(sys.argv[2], {"task": task}))
PY
}

wt_sql "SELECT dataflow.create_dataset('out', 'int');
        SELECT dataflow.create_job('j', output => 'out', dispatch => 'http',
                                   endpoint => '$WT_URL/dispatch/accept', lease_for => '1 hour');
        SELECT dataflow.expect('out', '1')" >/dev/null
for ((i = 0; i < 300; i++)); do [ "$(wt_requests /dispatch/accept)" -ge 1 ] && break; sleep 0.1; done
[ "$(wt_requests /dispatch/accept)" -ge 1 ] || wt_fail "the task was not dispatched"
token=$(wt_sql "SELECT token FROM dataflow.run ORDER BY id DESC LIMIT 1")
url=$(last_task 'task["callback"]["url"]')
[ "$url" = "http://127.0.0.1:$LPORT" ] || wt_fail "task callback url: '$url'"
[ "$(last_task 'task["callback"]["token"]')" = "$token" ] || wt_fail "the task's callback token is not the run's"
echo "ok: the task carries callback {url, token}"

# the engine reports through it (the listener connects once the role exists)
for ((i = 0; i < 150; i++)); do
    out=$(python3 "$ROOT/test/integration/callback_client.py" "127.0.0.1:$LPORT" /v1/runs/complete \
          --token "$token" --body '{"row_count": 3}')
    [ "${out:0:3}" != 000 ] && break
    sleep 0.1
done
[ "$out" = '200 {"status":"ready"}' ] || wt_fail "complete through the callback url: $out"
[ "$(wt_sql "SELECT status || ' ' || row_count FROM dataflow.chunks WHERE dataset = 'out' AND key = '1'")" = "ready 3" ] \
    || wt_fail "the chunk was not completed through the callback"
echo "ok: the engine completes the run through the callback url"

wt_sql "ALTER SYSTEM SET dataflow.callback_url = ''" >/dev/null
wt_sql "SELECT pg_reload_conf()" >/dev/null
sleep 1
wt_sql "SELECT dataflow.expect('out', '2')" >/dev/null
for ((i = 0; i < 300; i++)); do [ "$(wt_requests /dispatch/accept)" -ge 2 ] && break; sleep 0.1; done
[ "$(wt_requests /dispatch/accept)" -ge 2 ] || wt_fail "the second task was not dispatched"
[ "$(last_task '"callback" in task')" = False ] || wt_fail "a task sent without dataflow.callback_url carries a callback"
echo "ok: without dataflow.callback_url the task carries no callback"
echo "PASS listener_dispatch"
