#!/usr/bin/env bash
# Cancel reaches the engine (issue 15 item 3; docs/engines.md, "Cancel"). Against the
# Airflow-shaped receiver: a DAG run in flight (api v1 with basic auth, v2 with the
# bearer token from /auth/token) cancelled with dataflow.cancel gets PATCH state=failed
# under its dag_run_id; the run is cancelled at once; the event log has who cancelled and
# what the engine answered; the cancelled run is no longer polled, a poll answer in
# flight at the cancel is not recorded (the stop waits for it), and a late complete
# through the callback listener is refused with 409 (55000 in SQL): the chunk stays
# cancelled. http jobs: a cancel_endpoint gets a POST with the run's token as bearer; a
# job without one gets nothing and the event says so; a 500 is retried a bounded number
# of times with backoff, a 404 is final. pause_job(cancel_running => true) of a job with
# two running runs stops both.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh
. test/integration/worker_common.bash

LPORT=$(df_free_port $((30000 + RANDOM % 20000)))
LADDR="127.0.0.1:$LPORT"
# naptime 10 s: every wake-up and stop retry below must come from the cancel's wake and
# the worker's own retry times, not from the naptime poll
wt_setup "dataflow.poll_interval = 300" "dataflow.callback_listen = '$LADDR'" \
    "dataflow.callback_role = 'df_callback'" "dataflow.naptime = 10000"
wt_sql "CREATE ROLE df_callback LOGIN; GRANT dataflow_worker TO df_callback" >/dev/null
wt_start_receiver
REQ=$WT_DIR/requests.jsonl

wt_sql "SELECT dataflow.create_dataset('raw', 'int')" >/dev/null
wt_sql "SELECT dataflow.create_connection('af1', 'airflow', '$WT_URL', auth => 'basic', username => 'admin',
                                          secret => 'pw', api_version => 1)" >/dev/null
wt_sql "SELECT dataflow.create_connection('af2', 'airflow', '$WT_URL/', auth => 'basic', username => 'admin',
                                          secret => 'pw', api_version => 2)" >/dev/null
airflow_job() { # NAME CONNECTION DAG KEYS
    wt_sql "SELECT dataflow.create_dataset('out_$1', 'int')" >/dev/null
    wt_sql "SELECT dataflow.create_job('$1', 'out_$1', dispatch => 'airflow', connection => '$2', target => '$3',
                                       max_attempts => 1)" >/dev/null
    wt_sql "SELECT dataflow.add_input('$1', 'raw')" >/dev/null
    wt_sql "SELECT dataflow.expect('out_$1', '1', '$4')" >/dev/null
}
http_job() { # NAME CANCEL_PATH (empty: no cancel_endpoint)
    local cancel=NULL
    [ -n "$2" ] && cancel="'$WT_URL$2'"
    wt_sql "SELECT dataflow.create_dataset('out_$1', 'int')" >/dev/null
    wt_sql "SELECT dataflow.create_job('$1', 'out_$1', dispatch => 'http', endpoint => '$WT_URL/dispatch/accept',
                                       cancel_endpoint => $cancel, max_attempts => 1)" >/dev/null
    wt_sql "SELECT dataflow.add_input('$1', 'raw')" >/dev/null
    wt_sql "SELECT dataflow.expect('out_$1', '1')" >/dev/null
}
run_of() { wt_sql "SELECT r.id FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id
                    WHERE j.name = '$1' ORDER BY r.id LIMIT 1 OFFSET ${2:-0}"; }
token_of() { wt_sql "SELECT token FROM dataflow.run WHERE id = $1"; }
chunk_of() { wt_sql "SELECT c.status FROM dataflow.chunk c JOIN dataflow.run r ON r.chunk_id = c.id WHERE r.id = $1"; }
stop_of() { wt_sql "SELECT coalesce(outcome, 'pending') || ' ' || attempts FROM dataflow.engine_stop WHERE run_id = $1"; }
cancel_as_operator() { # DATASET KEY
    wt_sql "SET ROLE dataflow_operator; SELECT dataflow.cancel('$1', '$2')" >/dev/null
}

airflow_job av1 af1 long1 1
airflow_job av2 af2 long2 1
airflow_job pj af1 long3 2
http_job hok /cancel/ok
http_job hbare ""
http_job herr /cancel/error
http_job hgone /cancel/missing
wt_sql "SELECT dataflow.register('raw', '1'); SELECT dataflow.register('raw', '2')" >/dev/null
wt_wait "every run to be triggered or accepted" 20 "SELECT count(*) = 8 FROM dataflow.run WHERE status = 'running'"
wt_wait "the Airflow triggers to be acknowledged" 20 \
    "SELECT count(*) = 4 FROM dataflow._dispatch WHERE triggered"
for j in hok hbare herr hgone; do
    wt_wait "the http dispatch of $j" 10 "SELECT count(*) = 1 FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id
                                          WHERE j.name = '$j' AND r.status = 'running'"
done
sleep 0.5   # the 202s are back: nothing of the dispatch is in flight

# --- Airflow v1 and v2: PATCH state=failed with the trigger's dag_run_id and auth
RV1=$(run_of av1); RV2=$(run_of av2)
TV1=$(token_of "$RV1")
cancel_as_operator out_av1 1
cancel_as_operator out_av2 1
[ "$(chunk_of "$RV1")/$(wt_sql "SELECT status FROM dataflow.run WHERE id = $RV1")" = cancelled/cancelled ] \
    || wt_fail "the cancel did not end the run at once"
wt_wait "the Airflow stops" 15 "SELECT count(*) = 2 FROM dataflow.engine_stop WHERE run_id IN ($RV1, $RV2)
                                                     AND outcome = 'stopped'"
python3 - "$REQ" "$RV1" "$RV2" <<'PY' || wt_fail "Airflow stop requests"
import base64, json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
v1 = [r for r in rows if r["method"] == "PATCH" and r["path"] == "/api/v1/dags/long1/dagRuns/dataflow-" + sys.argv[2]]
v2 = [r for r in rows if r["method"] == "PATCH" and r["path"] == "/api/v2/dags/long2/dagRuns/dataflow-" + sys.argv[3]]
assert len(v1) == 1 and len(v2) == 1, (v1, v2)
assert json.loads(v1[0]["body"]) == {"state": "failed"} and json.loads(v2[0]["body"]) == {"state": "failed"}
assert v1[0]["headers"]["authorization"] == "Basic " + base64.b64encode(b"admin:pw").decode(), v1[0]["headers"]
assert v2[0]["headers"]["authorization"] == "Bearer tok-admin", v2[0]["headers"]
PY
echo "ok: Airflow v1 and v2 DAG runs PATCHed to failed with their dag_run_id and auth"
[ "$(wt_sql "SELECT e.actor FROM dataflow.event e WHERE e.run_id = $RV1 AND e.to_status = 'cancelled'")" = dataflow_operator ] \
    || wt_fail "the cancel event does not name who cancelled"
wt_sql "SELECT e.actor, e.detail->'engine_stop'->>'kind', e.detail->'engine_stop'->>'outcome',
               e.detail->'engine_stop'->>'status', e.detail->'engine_stop'->>'requested_by',
               e.detail->'engine_stop'->>'answer' LIKE '%failed%'
          FROM dataflow.event e WHERE e.run_id = $RV1 AND e.to_status = 'engine_stop'" \
    | grep -qx 'bgworker|airflow|stopped|200|dataflow_operator|t' || wt_fail "the engine_stop event of the v1 run"
echo "ok: the event log has who cancelled and what Airflow answered"

# no more polls of the cancelled runs; the old token is refused over SQL and the listener
polls() { python3 - "$REQ" "$1" <<'PY'
import json, sys
print(sum(1 for l in open(sys.argv[1]) if json.loads(l)["method"] == "GET" and json.loads(l)["path"].endswith("/" + sys.argv[2])))
PY
}
before=$(polls "dataflow-$RV1"); sleep 1.5; after=$(polls "dataflow-$RV1")
[ "$before" = "$after" ] || wt_fail "the cancelled DAG run is still polled ($before -> $after)"
echo "ok: the cancelled DAG run is no longer polled"
out=$(df_as_user psql -X -tAq -d postgres -v VERBOSITY=verbose -c "SELECT dataflow.complete('$TV1')" 2>&1)
[[ $out == *55000* ]] || wt_fail "a late complete in SQL: $out"
out=$(df_as_user psql -X -tAq -d postgres -v VERBOSITY=verbose \
      -c "SELECT dataflow._worker_record('$TV1', 'succeeded', 1, NULL, '{}', NULL, NULL, true, NULL)" 2>&1)
[[ $out == *55000* ]] || wt_fail "a late Airflow success recorded by the worker: $out"
for ((i = 0; i < 150; i++)); do
    [ "$(python3 "$ROOT/test/integration/callback_client.py" "$LADDR" /v1/runs/heartbeat --body '' | cut -c1-3)" = 401 ] && break
    sleep 0.1
done
out=$(python3 "$ROOT/test/integration/callback_client.py" "$LADDR" /v1/runs/complete --token "$TV1" --body '{"row_count": 5}')
[ "${out:0:3}" = 409 ] || wt_fail "a late complete through the listener answered: $out"
out=$(python3 "$ROOT/test/integration/callback_client.py" "$LADDR" /v1/runs/heartbeat --token "$TV1" --body '{}')
[ "${out:0:3}" = 409 ] || wt_fail "a late heartbeat through the listener answered: $out"
[ "$(chunk_of "$RV1")" = cancelled ] || wt_fail "a late completion changed the cancelled chunk"
echo "ok: late completions are refused (55000 in SQL, 409 from the listener), the chunk stays cancelled"

# --- a poll answer in flight at the cancel (slowpoll answers success after 1 s)
airflow_job slow af1 slowpoll 1
wt_wait "the slow run to be triggered" 10 "SELECT count(*) = 1 FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id
                                           WHERE j.name = 'slow'"
RS=$(run_of slow)
for ((i = 0; i < 100; i++)); do [ "$(polls "dataflow-$RS")" -ge 1 ] && break; sleep 0.05; done
[ "$(polls "dataflow-$RS")" -ge 1 ] || wt_fail "the slow DAG run was never polled"
cancel_as_operator out_slow 1
wt_wait "the slow run's stop" 15 "SELECT outcome = 'stopped' FROM dataflow.engine_stop WHERE run_id = $RS"
[ "$(chunk_of "$RS")/$(wt_sql "SELECT status FROM dataflow.run WHERE id = $RS")" = cancelled/cancelled ] \
    || wt_fail "a poll success that arrived after the cancel was recorded"
grep -q "result not recorded: .*run $RS, SQLSTATE 55000" "$WT_DIR/server.log" \
    || wt_fail "the late poll success was not refused as a lost lease"
python3 - "$REQ" "$RS" <<'PY' || wt_fail "the stop overtook the poll in flight"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
path = "/api/v1/dags/slowpoll/dagRuns/dataflow-" + sys.argv[2]
get = min(r["t"] for r in rows if r["method"] == "GET" and r["path"] == path)
patch = [r["t"] for r in rows if r["method"] == "PATCH" and r["path"] == path]
assert len(patch) == 1 and patch[0] >= get + 0.9, (get, patch)
PY
echo "ok: a poll success in flight at the cancel is refused, and the stop is sent after it"

# --- http: cancel_endpoint with the token; none; 500 retried and given up; 404 final
RH=$(run_of hok); RB=$(run_of hbare); RE=$(run_of herr); RG=$(run_of hgone)
TH=$(token_of "$RH")
t0=$(date +%s.%N)
for d in out_hok out_hbare out_herr out_hgone; do cancel_as_operator $d 1; done
wt_wait "the http stops to finish" 30 "SELECT count(*) = 4 FROM dataflow.engine_stop
                                       WHERE run_id IN ($RH, $RB, $RE, $RG) AND done_at IS NOT NULL"
t1=$(date +%s.%N)
[ "$(stop_of "$RH")" = "stopped 1" ] || wt_fail "cancel_endpoint stop: $(stop_of "$RH")"
[ "$(stop_of "$RB")" = "nothing_to_send 0" ] || wt_fail "no cancel_endpoint: $(stop_of "$RB")"
[ "$(stop_of "$RE")" = "gave_up 4" ] || wt_fail "a 500 engine: $(stop_of "$RE")"
[ "$(stop_of "$RG")" = "refused 1" ] || wt_fail "a 404 engine: $(stop_of "$RG")"
python3 - "$REQ" "$RH" "$TH" "$t0" "$t1" <<'PY' || wt_fail "http stop requests"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
run, token, t0, t1 = int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
ok = [r for r in rows if r["path"] == "/cancel/ok"]
assert len(ok) == 1 and ok[0]["method"] == "POST", ok
assert ok[0]["headers"]["authorization"] == "Bearer " + token, ok[0]["headers"]
body = json.loads(ok[0]["body"])
assert body == {"run_id": run, "job": "hok", "dataset": "out_hok", "key": "1", "version": 1, "reason": "cancel"}, body
err = sorted(r["t"] for r in rows if r["path"] == "/cancel/error")
assert len(err) == 4, err                                   # kStopMaxAttempts, then given up
gaps = [b - a for a, b in zip(err, err[1:])]
assert all(w - 0.3 <= g <= w + 1.5 for g, w in zip(gaps, [1, 2, 4])), gaps   # 1 s, 2 s, 4 s backoff
assert len([r for r in rows if r["path"] == "/cancel/missing"]) == 1   # 404 is final
assert not [r for r in rows if r["path"].startswith("/cancel/") and r["t"] < t0]
print("  500 retried at gaps %s s; all stops done %.1f s after the cancels" % ([round(g, 1) for g in gaps], t1 - t0))
PY
wt_sql "SELECT string_agg(e.detail->'engine_stop'->>'outcome' || ':' || coalesce(e.detail->'engine_stop'->>'status', '-'),
                          ',' ORDER BY e.id)
          FROM dataflow.event e WHERE e.run_id = $RE AND e.to_status = 'engine_stop'" \
    | grep -qx 'retry:500,retry:500,retry:500,gave_up:500' || wt_fail "the 500 engine's events"
wt_sql "SELECT e.detail->'engine_stop'->>'answer' FROM dataflow.event e WHERE e.run_id = $RB AND e.to_status = 'engine_stop'" \
    | grep -q "no cancel_endpoint" || wt_fail "the event does not say that nothing was sent"
[ "$(wt_sql "SELECT count(*) FROM dataflow.event e, dataflow.run r
              WHERE strpos(e.detail::text, r.token::text) > 0 OR strpos(e.detail::text, 'pw') > 0
                 OR strpos(e.detail::text, 'tok-admin') > 0")" = 0 ] || wt_fail "a token or secret in the event log"
echo "ok: http stops: POST with the token, nothing without cancel_endpoint, 500 retried 4 times with backoff, 404 final; no secret in any event"

# --- pause_job(cancel_running => true): both running runs stopped
RP1=$(run_of pj 0); RP2=$(run_of pj 1)
wt_sql "SET ROLE dataflow_operator; SELECT dataflow.pause_job('pj', cancel_running => true)" >/dev/null
wt_wait "both stops of the paused job" 15 "SELECT count(*) = 2 FROM dataflow.engine_stop
                                           WHERE run_id IN ($RP1, $RP2) AND outcome = 'stopped'"
[ "$(wt_sql "SELECT string_agg(r.status || '/' || c.status, ',') FROM dataflow.run r
              JOIN dataflow.chunk c ON c.id = r.chunk_id WHERE r.id IN ($RP1, $RP2)")" = "cancelled/cancelled,cancelled/cancelled" ] \
    || wt_fail "pause_job did not cancel both runs"
[ "$(wt_requests "/api/v1/dags/long3/dagRuns/dataflow-$RP1")" -ge 1 ] && \
[ "$(wt_requests "/api/v1/dags/long3/dagRuns/dataflow-$RP2")" -ge 1 ] || wt_fail "pause_job's stops were not sent"
python3 - "$REQ" "$RP1" "$RP2" <<'PY' || wt_fail "pause_job's PATCHes"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for run in sys.argv[2:]:
    p = [r for r in rows if r["method"] == "PATCH" and r["path"] == "/api/v1/dags/long3/dagRuns/dataflow-" + run]
    assert len(p) == 1, (run, p)
PY
[ "$(wt_sql "SELECT paused FROM dataflow.job WHERE name = 'pj'")" = t ] || wt_fail "the job is not paused"
echo "ok: pause_job(cancel_running => true) stopped both running DAG runs"

grep -E "PANIC|TRAP|terminated by signal" "$WT_DIR/server.log" && wt_fail "server log shows a crash"
echo "ok: worker cancel"
