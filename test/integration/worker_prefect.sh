#!/usr/bin/env bash
# Prefect dispatch against a Prefect-API-shaped stub (test/integration/prefect_stub.py;
# docs/engines.md, "Prefect"):
# - a deployment "takes a lock": the chunk is running while its flow run is RUNNING, and
#   is released (ready) by polling once the flow run completes, exactly once; a late
#   callback of that run then gets 409;
# - a second chunk (name-form target, Cloud-style bearer API key) is released by the
#   engine through the callback listener while a poll that finds COMPLETED is in flight:
#   the poll's result is dropped, one completion event;
# - failed, crashed (retried: a new flow run under a new idempotency key) and cancelled
#   (not retried) flow runs, a deployment name Prefect does not know, a wrong API key;
# - a flow run set to CANCELLING through set_state (as cancel() does) ends CANCELLED;
# - a create_flow_run whose answer hangs past the timeout is sent again with the same
#   idempotency key and adopted: one flow run, one run.
# Issue 15 review:
# - the idempotency key is dataflow-<install id>-<chunk>-v<version>-r<run id>, and a flow
#   run whose parameters name another run (another install sharing the Prefect) is not
#   adopted: the run fails, the chunk is not completed by someone else's flow run;
# - a cancel while create_flow_run is in flight still reaches Prefect: set_state
#   CANCELLING once the create answers, engine_stop 'stopped';
# - a secret param that Prefect's 409 quotes (a straddling one too) shows in no run,
#   event, delivery or log line a reader or the server log sees.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh
. test/integration/worker_common.bash

LPORT=$(df_free_port $((30000 + RANDOM % 20000)))
wt_setup "dataflow.poll_interval = 300" "dataflow.callback_listen = '127.0.0.1:$LPORT'" \
    "dataflow.callback_role = 'df_callback'" "dataflow.callback_url = 'http://127.0.0.1:$LPORT'"
wt_sql "CREATE ROLE df_callback LOGIN; GRANT dataflow_worker TO df_callback" >/dev/null

STUB_PID=
stub_cleanup() { [ -n "$STUB_PID" ] && kill "$STUB_PID" 2>/dev/null; wt_cleanup; }
trap stub_cleanup EXIT
python3 "$ROOT/test/integration/prefect_stub.py" "$WT_DIR/stub.port" "$WT_DIR/prefect.jsonl" \
    >>"$WT_DIR/stub.out" 2>&1 &
STUB_PID=$!
for ((i = 0; i < 100; i++)); do [ -s "$WT_DIR/stub.port" ] && break; sleep 0.1; done
[ -s "$WT_DIR/stub.port" ] || wt_fail "the Prefect stub did not start"
API="http://127.0.0.1:$(cat "$WT_DIR/stub.port")/api"
dep() { printf '00000000-0000-4000-8000-%012d' "$1"; }  # the stub's deployment ids

wt_sql "SELECT dataflow.create_dataset('raw', 'int')" >/dev/null
wt_sql "SELECT dataflow.create_connection('pf', 'prefect', '$API', timeout => '2 seconds')" >/dev/null
wt_sql "SELECT dataflow.create_connection('pfcloud', 'prefect', '$API/accounts/acc/workspaces/ws/',
                                          auth => 'bearer', secret => 'pnu_stub_key')" >/dev/null
wt_sql "SELECT dataflow.create_connection('pfbadkey', 'prefect', '$API/accounts/acc/workspaces/ws',
                                          auth => 'bearer', secret => 'pnu_wrong_key')" >/dev/null
wt_sql "SELECT dataflow.create_connection('pfslow', 'prefect', '$API', timeout => '30 seconds')" >/dev/null
job() { # job NAME CONNECTION TARGET MAX_ATTEMPTS
    wt_sql "SELECT dataflow.create_dataset('out_$1', 'int')" >/dev/null
    wt_sql "SELECT dataflow.create_job('$1', 'out_$1', dispatch => 'prefect', connection => '$2', target => '$3',
                                       params => '{\"org\": \"acme\", \"full\": true}', max_attempts => $4,
                                       backoff_min => '1 second', backoff_max => '1 second')" >/dev/null
    wt_sql "SELECT dataflow.add_input('$1', 'raw')" >/dev/null
    wt_sql "SELECT dataflow.expect('out_$1', '1')" >/dev/null
}
status() { wt_sql "SELECT status FROM dataflow.chunks WHERE dataset = 'out_$1' AND key = '1'"; }
wait_status() { wt_wait "$1 $2" "$3" "SELECT status = '$2' FROM dataflow.chunks WHERE dataset = 'out_$1' AND key = '1'"; }
run_sql() { wt_sql "SELECT $2 FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id WHERE j.name = '$1' ORDER BY r.id"; }
ready_events() { wt_sql "SELECT count(*) FROM dataflow.event e JOIN dataflow.dataset d ON d.id = e.dataset_id
                          WHERE d.name = 'out_$1' AND e.to_status = 'ready'"; }
gets() { # how many GETs of flow run $1 the stub got (a line the stub is still writing is skipped)
    python3 - "$WT_DIR/prefect.jsonl" "$1" <<'PY'
import json, sys
n = 0
for line in open(sys.argv[1]):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    n += r["method"] == "GET" and r["path"].endswith("/flow_runs/" + sys.argv[2])
print(n)
PY
}
callback() { # callback PATH TOKEN BODY: "<status> <body>" of the listener's answer
    local out i
    for ((i = 0; i < 100; i++)); do
        out=$(python3 "$ROOT/test/integration/callback_client.py" "127.0.0.1:$LPORT" "$1" --token "$2" --body "$3")
        [ "${out:0:3}" != 000 ] && break
        sleep 0.1
    done
    echo "$out"
}

job lock pf "$(dep 5)" 3          # held: RUNNING until released
job cb pfcloud 'etl/held' 3       # name form, bearer
job fails pf 'etl/fails' 1
job crashes pf "$(dep 3)" 2
job cancelled pf 'etl/cancelled' 3
job nowhere pf 'etl/nope' 1
job hang pf "$(dep 6)" 2
job badkey pfbadkey "$(dep 1)" 1
job stopme pf "$(dep 5)" 3        # held, then cancelled through set_state (as cancel() will)
job killme pf "$(dep 5)" 3        # held, then dataflow.cancel(): the worker sends set_state
job squat pf "$(dep 9)" 1         # the key is taken by another install's flow run
wt_sql "SELECT dataflow.register('raw', '1')" >/dev/null

# ---- the lock: running while the flow run is RUNNING, released by polling
wt_wait "the lock's flow run" 20 "SELECT external_id IS NOT NULL FROM dataflow.run r JOIN dataflow.job j
                                  ON j.id = r.job_id WHERE j.name = 'lock'"
lock_fr=$(run_sql lock r.external_id)
for ((i = 0; i < 200; i++)); do [ "$(gets "$lock_fr")" -ge 5 ] && break; sleep 0.1; done
[ "$(gets "$lock_fr")" -ge 5 ] || wt_fail "the lock's flow run is not polled"
[ "$(status lock)" = running ] || wt_fail "the lock's chunk is $(status lock) while its flow run runs"
[ "$(run_sql lock "r.info->'prefect'->>'state'")" = RUNNING ] || wt_fail "run info: $(run_sql lock r.info)"
touch "$WT_DIR/release-$lock_fr"
wait_status lock ready 20
[ "$(ready_events lock)" = 1 ] || wt_fail "lock: $(ready_events lock) completion events"
[ "$(run_sql lock "r.status || ' ' || (r.info->'prefect'->>'flow_run_id' = r.external_id) || ' ' ||
                   (r.info->'prefect'->>'state')")" = "succeeded true COMPLETED" ] \
    || wt_fail "lock run: $(run_sql lock "r.status || r.info::text")"
echo "ok: a flow run holds its chunk running, polling releases it once"
lock_token=$(run_sql lock r.token)
out=$(callback /v1/runs/complete "$lock_token" '{"row_count": 5}')
[ "${out:0:3}" = 409 ] || wt_fail "a late callback after polling completed the run: $out"
[ "$(ready_events lock)" = 1 ] || wt_fail "the late callback added an event"
echo "ok: a callback after polling completed the run gets 409"

# what create_flow_run carried: job params at the top level, the task as "dataflow"
python3 - "$WT_DIR/prefect.jsonl" "$(dep 5)" "$LPORT" "$lock_token" "$(wt_sql "SELECT id FROM dataflow.install")" \
    "$(run_sql lock r.chunk_id)" "$(run_sql lock r.id)" <<'PY' || wt_fail "create_flow_run request"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
install, chunk, run = sys.argv[5:8]
mine = [r for r in rows if r["method"] == "POST" and r["path"] == "/api/deployments/%s/create_flow_run" % sys.argv[2]
        and json.loads(r["body"])["parameters"]["dataflow"]["job"] == "lock"]
assert len(mine) == 1, mine
b = json.loads(mine[0]["body"])
p = b["parameters"]
assert p["org"] == "acme" and p["full"] is True, p
assert p["dataflow"]["job"] == "lock" and p["dataflow"]["key"] == "1" and p["dataflow"]["token"] == sys.argv[4], p
assert p["dataflow"]["callback"] == {"url": "http://127.0.0.1:" + sys.argv[3], "token": sys.argv[4]}, p
assert b["idempotency_key"] == "dataflow-%s-%s-v1-r%s" % (install, chunk, run), (b["idempotency_key"], install, chunk, run)
assert "authorization" not in mine[0]["headers"], mine[0]["headers"]
PY

# ---- the callback first, while a poll that finds COMPLETED is in flight
wt_wait "the cb flow run" 20 "SELECT external_id IS NOT NULL FROM dataflow.run r JOIN dataflow.job j
                              ON j.id = r.job_id WHERE j.name = 'cb'"
cb_fr=$(run_sql cb r.external_id)
cb_token=$(run_sql cb r.token)
for ((i = 0; i < 200; i++)); do [ "$(gets "$cb_fr")" -ge 3 ] && break; sleep 0.1; done
touch "$WT_DIR/delay-$cb_fr" "$WT_DIR/release-$cb_fr"
delayed_completed() { # the stub holds the answer COMPLETED to a poll of flow run $1
    python3 - "$WT_DIR/prefect.jsonl" "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if r["method"] == "DELAYED" and r["path"].endswith("/flow_runs/" + sys.argv[2]) and r["state"] == "COMPLETED":
        print("yes")
        break
PY
}
for ((i = 0; i < 200; i++)); do [ "$(delayed_completed "$cb_fr")" = yes ] && break; sleep 0.05; done
[ "$(delayed_completed "$cb_fr")" = yes ] || wt_fail "no poll of the cb flow run after its release"
out=$(callback /v1/runs/complete "$cb_token" '{"row_count": 11, "info": {"via": "callback"}}')
[ "$out" = '200 {"status":"ready"}' ] || wt_fail "complete through the callback listener: $out"
sleep 6  # the poll's answer (COMPLETED, 5 s late) is recorded after the callback's
[ "$(status cb)" = ready ] || wt_fail "cb chunk: $(status cb)"
[ "$(ready_events cb)" = 1 ] || wt_fail "cb: $(ready_events cb) completion events"
[ "$(wt_sql "SELECT row_count FROM dataflow.chunks WHERE dataset = 'out_cb' AND key = '1'")" = 11 ] \
    || wt_fail "the late poll overwrote the callback's result"
run_id=$(run_sql cb r.id)
grep -q "result not recorded: .*(run $run_id, SQLSTATE 55000)" "$WT_DIR/server.log" \
    || wt_fail "the poll's late COMPLETED was not dropped as a dead lease"
rm -f "$WT_DIR/delay-$cb_fr"
python3 - "$WT_DIR/prefect.jsonl" <<'PY' || wt_fail "name-form target / bearer requests"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
cloud = [r for r in rows if r["path"].startswith("/api/accounts/acc/workspaces/ws/") and r["method"] != "DELAYED"]
ok = [r for r in cloud if r["headers"].get("authorization") == "Bearer pnu_stub_key"]
assert all(r["headers"].get("authorization") in ("Bearer pnu_stub_key", "Bearer pnu_wrong_key") for r in cloud), cloud[:1]
assert [r for r in ok if r["path"].endswith("/deployments/name/etl/held")], "no lookup by name"
assert [r for r in ok if r["method"] == "GET" and "/flow_runs/" in r["path"]], "no poll with the API key"
PY
echo "ok: the callback wins over a poll in flight, once; name-form target and bearer API key"

# ---- failed, crashed, cancelled, unknown deployment
wait_status fails failed 20
run_sql fails r.error | grep -q "Failed: boom" || wt_fail "fails: error $(run_sql fails r.error)"
[ "$(run_sql fails "r.info->'prefect'->>'state'")" = FAILED ] || wt_fail "fails: info $(run_sql fails r.info)"
wait_status crashes failed 30
[ "$(run_sql crashes "count(*) OVER ()" | head -1)" = 2 ] || wt_fail "crashes: not retried once"
run_sql crashes r.error | grep -q "worker lost" || wt_fail "crashes: error $(run_sql crashes r.error)"
python3 - "$WT_DIR/prefect.jsonl" "$(dep 3)" <<'PY' || wt_fail "crashes: the retry did not get a new flow run"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = [json.loads(r["body"])["idempotency_key"] for r in rows
        if r["method"] == "POST" and r["path"] == "/api/deployments/%s/create_flow_run" % sys.argv[2]]
# each attempt its own key: the chunk and version, then the run
assert len(keys) == 2 and keys[0] != keys[1] and keys[0].rsplit("-r", 1)[0] == keys[1].rsplit("-r", 1)[0], keys
PY
wait_status cancelled failed 20
[ "$(run_sql cancelled "count(*) OVER ()" | head -1)" = 1 ] || wt_fail "cancelled: retried"
run_sql cancelled r.error | grep -q "not retried: cancelled in Prefect" || wt_fail "cancelled: $(run_sql cancelled r.error)"
wait_status nowhere failed 20
run_sql nowhere r.error | grep -q 'deployment "etl/nope" not found' || wt_fail "nowhere: $(run_sql nowhere r.error)"
wait_status badkey failed 20
run_sql badkey r.error | grep -q "HTTP 401.*check the connection's API key" || wt_fail "badkey: $(run_sql badkey r.error)"
echo "ok: failed, crashed (retried with a new flow run), cancelled (not retried), unknown deployment, wrong API key"

# ---- a flow run set to CANCELLING (POST set_state, as dataflow.cancel() does): the
# chunk keeps running while it is CANCELLING, then CANCELLED ends it without retry
wt_wait "the stopme flow run" 20 "SELECT external_id IS NOT NULL FROM dataflow.run r JOIN dataflow.job j
                                  ON j.id = r.job_id WHERE j.name = 'stopme'"
stop_fr=$(run_sql stopme r.external_id)
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
       -d '{"state": {"type": "CANCELLING"}}' "$API/flow_runs/$stop_fr/set_state")
[ "$code" = 201 ] || wt_fail "set_state CANCELLING: HTTP $code"
wait_status stopme failed 20
[ "$(run_sql stopme "count(*) OVER ()" | head -1)" = 1 ] || wt_fail "stopme: retried"
[ "$(run_sql stopme "r.info->'prefect'->>'state'")" = CANCELLED ] || wt_fail "stopme: $(run_sql stopme r.info)"
echo "ok: a flow run set to CANCELLING ends CANCELLED, the chunk failed and not retried"

# ---- dataflow.cancel() of a chunk whose flow run runs: the worker tells Prefect
# (POST set_state CANCELLING), the event log records the answer, and the CANCELLED the
# next poll finds changes nothing: the chunk stays cancelled, its run is not retried
wt_wait "the killme flow run" 20 "SELECT external_id IS NOT NULL FROM dataflow.run r JOIN dataflow.job j
                                  ON j.id = r.job_id WHERE j.name = 'killme'"
kill_fr=$(run_sql killme r.external_id)
wt_sql "SELECT dataflow.cancel('out_killme', '1')" >/dev/null
wt_wait "the engine_stop event of killme" 20 "SELECT count(*) > 0 FROM dataflow.event e JOIN dataflow.dataset d ON d.id = e.dataset_id
    WHERE d.name = 'out_killme' AND e.to_status = 'engine_stop' AND e.detail->'engine_stop'->>'outcome' = 'stopped'"
python3 - "$WT_DIR/prefect.jsonl" "$kill_fr" <<'PY' || wt_fail "killme: no set_state CANCELLING reached the stub"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
hit = [r for r in rows if r["method"] == "POST" and r["path"].endswith("/flow_runs/%s/set_state" % sys.argv[2])
       and json.loads(r["body"])["state"]["type"] == "CANCELLING"]
assert hit, [r["path"] for r in rows if "set_state" in r["path"]]
PY
sleep 3   # polls come and go: the CANCELLED flow run must not change the chunk
[ "$(status killme)" = cancelled ] || wt_fail "killme: the chunk is $(status killme) after the cancel"
[ "$(run_sql killme "count(*) OVER ()" | head -1)" = 1 ] || wt_fail "killme: retried after the cancel"
[ "$(run_sql killme r.status)" = cancelled ] || wt_fail "killme: run $(run_sql killme r.status)"
echo "ok: dataflow.cancel() of a Prefect run sends set_state CANCELLING; the chunk stays cancelled"

# ---- a create whose answer hangs past the timeout (2 s): sent again, adopted
wait_status hang ready 40
[ "$(run_sql hang "count(*) OVER ()" | head -1)" = 1 ] || wt_fail "hang: a second run"
python3 - "$WT_DIR/prefect.jsonl" "$(dep 6)" "$(run_sql hang r.external_id)" <<'PY' || wt_fail "hang: not adopted"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = [json.loads(r["body"])["idempotency_key"] for r in rows
        if r["method"] == "POST" and r["path"] == "/api/deployments/%s/create_flow_run" % sys.argv[2]]
assert len(keys) >= 2 and len(set(keys)) == 1, keys
polled = {r["path"].rsplit("/", 1)[1] for r in rows if r["method"] == "GET" and "/flow_runs/" in r["path"]}
assert sys.argv[3] in polled, (sys.argv[3], polled)
PY
grep -q "Prefect create_flow_run outcome unknown" "$WT_DIR/server.log" || wt_fail "hang: no ambiguous create logged"
echo "ok: an ambiguous create_flow_run is sent again with its key and adopted"

# ---- a job's secret params reach the flow run's parameters (top level and the task's
# params), and nothing of the extension shows them
wt_sql "SELECT dataflow.create_dataset('out_sec', 'int');
        SELECT dataflow.create_job('sec', 'out_sec', dispatch => 'prefect', connection => 'pf', target => '$(dep 1)',
                                   params => '{\"org\": \"acme\"}', secret_params => '{\"portal_api_key\": \"pk-SECRET-9\"}');
        SELECT dataflow.add_input('sec', 'raw');
        SELECT dataflow.expect('out_sec', '1')" >/dev/null
wait_status sec ready 30
python3 - "$WT_DIR/prefect.jsonl" "$(dep 1)" <<'PY' || wt_fail "sec: the secret param is not in the flow run's parameters"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
bodies = [json.loads(r["body"]) for r in rows
          if r["method"] == "POST" and r["path"] == "/api/deployments/%s/create_flow_run" % sys.argv[2]]
p = [b["parameters"] for b in bodies if b["parameters"].get("portal_api_key")]
assert p and p[-1]["portal_api_key"] == "pk-SECRET-9" and p[-1]["org"] == "acme", bodies
assert p[-1]["dataflow"]["params"]["portal_api_key"] == "pk-SECRET-9", p[-1]
PY
[ "$(wt_sql "SELECT count(*) FROM dataflow.jobs WHERE secret_params::text LIKE '%pk-SECRET%'")
   $(wt_sql "SELECT count(*) FROM dataflow.event WHERE detail::text LIKE '%pk-SECRET%'")
   $(wt_sql "SELECT count(*) FROM dataflow._dispatch WHERE task::text LIKE '%pk-SECRET%'")" = "0
   0
   0" ] || wt_fail "sec: the secret shows in the jobs view, an event or a kept task"
! grep -q "pk-SECRET" "$WT_DIR/server.log" || wt_fail "sec: the secret is in the server log"
echo "ok: a job's secret params reach the Prefect flow run's parameters, and no view, event, kept task or log line"

# ---- a key another install's flow run holds: not adopted, the chunk fails (before, the
# squatter's COMPLETED flow run completed it with no work done)
wait_status squat failed 20
run_sql squat r.error | grep -q 'not adopted' || wt_fail "squat: $(run_sql squat r.error)"
[ -z "$(run_sql squat r.external_id)" ] || wt_fail "squat: the foreign flow run became the run's external_id"
[ "$(run_sql squat r.status)" = failed ] || wt_fail "squat: run $(run_sql squat r.status)"
echo "ok: a flow run whose parameters name another install's run is not adopted"

# ---- a cancel while create_flow_run is in flight: the create's answer, recorded after
# the cancel, stores the flow run id, and the stop reaches Prefect (before: the answer
# was refused as a dead lease, the stop found no flow run id and was 'refused')
slow_creates() {
    python3 - "$WT_DIR/prefect.jsonl" "$(dep 7)" <<'PY'
import json, sys
n = 0
for line in open(sys.argv[1]):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    n += r["method"] == "POST" and r["path"] == "/api/deployments/%s/create_flow_run" % sys.argv[2]
print(n)
PY
}
job slowcancel pfslow "$(dep 7)" 3  # its create_flow_run's answer waits for answer-slow
for ((i = 0; i < 200; i++)); do [ "$(slow_creates)" -ge 1 ] && break; sleep 0.1; done
[ "$(slow_creates)" -ge 1 ] || wt_fail "slowcancel: no create_flow_run reached the stub"
wt_sql "SELECT dataflow.cancel('out_slowcancel', '1')" >/dev/null
sleep 1   # the stop is due while the create is unanswered
touch "$WT_DIR/answer-slow"
wt_wait "the engine_stop of slowcancel" 30 "SELECT count(*) > 0 FROM dataflow.event e JOIN dataflow.dataset d ON d.id = e.dataset_id
    WHERE d.name = 'out_slowcancel' AND e.to_status = 'engine_stop' AND e.detail->'engine_stop'->>'outcome' IN ('stopped', 'refused', 'gave_up')"
outcome=$(wt_sql "SELECT outcome FROM dataflow.engine_stop s JOIN dataflow.run r ON r.id = s.run_id JOIN dataflow.job j ON j.id = r.job_id
                  WHERE j.name = 'slowcancel'")
[ "$outcome" = stopped ] || wt_fail "slowcancel: engine_stop $outcome: $(wt_sql "SELECT detail FROM dataflow.event WHERE to_status = 'engine_stop' ORDER BY id")"
slow_fr=$(run_sql slowcancel r.external_id)
[ -n "$slow_fr" ] || wt_fail "slowcancel: no flow run id stored"
python3 - "$WT_DIR/prefect.jsonl" "$slow_fr" <<'PY' || wt_fail "slowcancel: no set_state CANCELLING reached the stub"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert [r for r in rows if r["method"] == "POST" and r["path"].endswith("/flow_runs/%s/set_state" % sys.argv[2])
        and json.loads(r["body"])["state"]["type"] == "CANCELLING"], sys.argv[2]
PY
[ "$(status slowcancel)" = cancelled ] || wt_fail "slowcancel: the chunk is $(status slowcancel)"
echo "ok: a cancel while create_flow_run is in flight reaches Prefect once the create answers"

# ---- secret params quoted back by Prefect (a 409 naming parameter values, the longest
# straddling the error excerpt's cut; a short one quoted): masked before anything is kept
DEADPORT=$(df_free_port $((30000 + RANDOM % 20000)))
wt_sql "SELECT dataflow.create_dataset('out_echo', 'int');
        SELECT dataflow.create_job('echo', 'out_echo', dispatch => 'prefect', connection => 'pf', target => '$(dep 8)',
                                   params => '{\"org\": \"acme\"}', max_attempts => 1,
                                   secret_params => '{\"portal_api_key\": \"pk-ECHO-SECRET-0123456789abcdefghij\",
                                                      \"nested\": {\"pw\": [\"hunter2hunter2\"]}, \"pin\": \"q7z\"}');
        SELECT dataflow.subscribe('echo_hook', 'http://127.0.0.1:$DEADPORT/hook', datasets => '{out_echo}');
        SELECT dataflow.add_input('echo', 'raw');
        SELECT dataflow.expect('out_echo', '1')" >/dev/null
wait_status echo failed 20
run_sql echo r.error | grep -q "HTTP 409 (flow run refused).*Failure reason: .\[redacted\]" \
    || wt_fail "echo: the 409 is not recorded (masked): $(run_sql echo r.error)"
wt_wait "the echo deliveries" 20 "SELECT count(*) > 0 FROM dataflow.delivery d JOIN dataflow.event e ON e.id = d.event_id
                                  JOIN dataflow.dataset s ON s.id = e.dataset_id WHERE s.name = 'out_echo' AND e.to_status = 'failed'"
seen=$(wt_sql "SET ROLE dataflow_reader;
               SELECT concat_ws(' ', (SELECT string_agg(x::text, ' ') FROM dataflow.runs x),
                                     (SELECT string_agg(x::text, ' ') FROM dataflow.events x),
                                     (SELECT string_agg(x::text, ' ') FROM dataflow.deliveries x),
                                     (SELECT string_agg(x::text, ' ') FROM dataflow.chunks x),
                                     (SELECT string_agg(x::text, ' ') FROM dataflow.jobs x))")
kept=$(wt_sql "SELECT concat_ws(' ', (SELECT string_agg(x::text, ' ') FROM dataflow.run x),
                                     (SELECT string_agg(x::text, ' ') FROM dataflow.event x),
                                     (SELECT string_agg(x::text, ' ') FROM dataflow.delivery x),
                                     (SELECT string_agg(x::text, ' ') FROM dataflow.engine_stop x))")
echo "$seen" | grep -q "\[redacted\]" || wt_fail "echo: the reader does not see the masked error"
for needle in "pk-E" "SECRET-0123" "hunter2" "'q7z'" '"q7z"'; do
    ! echo "$seen" | grep -qF -- "$needle" || wt_fail "echo: a reader sees $needle"
    ! echo "$kept" | grep -qF -- "$needle" || wt_fail "echo: a run, event, delivery payload or stop keeps $needle"
    ! grep -qF -- "$needle" "$WT_DIR/server.log" || wt_fail "echo: the server log has $needle"
done
echo "ok: secret params quoted in Prefect's errors are masked in runs, events, deliveries and the log"

grep -q "pnu_stub_key\|pnu_wrong_key" "$WT_DIR/server.log" && wt_fail "an API key is in the server log"
[ "$(wt_sql "SELECT count(*) FROM dataflow.run WHERE error LIKE '%pnu_%' OR info::text LIKE '%pnu_%'")" = 0 ] \
    || wt_fail "an API key is in a run's error or info"
grep -E "PANIC|TRAP|terminated by signal" "$WT_DIR/server.log" && wt_fail "server log shows a crash"
echo "PASS worker_prefect"
