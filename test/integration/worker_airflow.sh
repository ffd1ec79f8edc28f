#!/usr/bin/env bash
# Airflow dispatch against an Airflow-shaped receiver: trigger with the task as
# conf and dag_run_id dataflow-<run id>, poll queued -> running -> success
# (chunk ready) or failed (chunk failed), Airflow 3 (api v2) with a bearer token
# from /auth/token, and a trigger interrupted before its result was recorded
# being retried after a restart of the duty and adopted on 409, not duplicated;
# and a trigger Airflow accepted whose answer hangs past the timeout being sent
# again with the same dag_run_id and adopted: one DAG run, one run.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh
. test/integration/worker_common.bash

wt_setup "dataflow.poll_interval = 300"
wt_start_receiver
wt_sql "SELECT dataflow.create_dataset('raw', 'int')" >/dev/null
wt_sql "SELECT dataflow.create_connection('af1', 'airflow', '$WT_URL', auth => 'basic', username => 'admin',
                                          secret => 'pw', api_version => 1)" >/dev/null
wt_sql "SELECT dataflow.create_connection('af2', 'airflow', '$WT_URL/', auth => 'basic', username => 'admin',
                                          secret => 'pw', api_version => 2)" >/dev/null
job() { # job NAME CONNECTION DAG
    wt_sql "SELECT dataflow.create_dataset('out_$1', 'int')" >/dev/null
    wt_sql "SELECT dataflow.create_job('$1', 'out_$1', dispatch => 'airflow', connection => '$2', target => '$3',
                                       max_attempts => 1)" >/dev/null
    wt_sql "SELECT dataflow.add_input('$1', 'raw')" >/dev/null
    wt_sql "SELECT dataflow.expect('out_$1', '1')" >/dev/null
}
status() { wt_sql "SELECT c.status FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
                    WHERE d.name = 'out_$1' AND c.key = '1'"; }
job v1ok af1 etl
job v1fail af1 fails
job v2ok af2 etl2

wt_sql "SELECT dataflow.register('raw', '1')" >/dev/null
wt_wait "v1 success" 20 "SELECT status = 'ready' FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
                         WHERE d.name = 'out_v1ok'"
wt_wait "v1 failure" 20 "SELECT status = 'failed' FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
                         WHERE d.name = 'out_v1fail'"
wt_wait "v2 success" 20 "SELECT status = 'ready' FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
                         WHERE d.name = 'out_v2ok'"
wt_sql "SELECT bool_and(r.external_id = 'dataflow-' || r.id) FROM dataflow.run r" | grep -qx t \
    || wt_fail "external ids are not dataflow-<run id>"
wt_sql "SELECT r.info->>'airflow_state' FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id
         WHERE j.name = 'v1ok'" | grep -qx success || wt_fail "run info lacks the Airflow state"
python3 - "$WT_DIR/requests.jsonl" <<'PY' || wt_fail "Airflow requests"
import base64, json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
trig = [r for r in rows if r["method"] == "POST" and r["path"] == "/api/v1/dags/etl/dagRuns"]
assert len(trig) == 1, trig
body = json.loads(trig[0]["body"])
assert body["dag_run_id"].startswith("dataflow-") and body["conf"]["job"] == "v1ok" and body["conf"]["token"], body
assert trig[0]["headers"]["authorization"] == "Basic " + base64.b64encode(b"admin:pw").decode()
polls = [r for r in rows if r["method"] == "GET" and r["path"].startswith("/api/v1/dags/etl/dagRuns/dataflow-")]
assert len(polls) >= 3, polls
v2 = [r for r in rows if r["path"].startswith("/api/v2/")]
assert v2 and all(r["headers"].get("authorization") == "Bearer tok-admin" for r in v2), v2[:1]
assert "logical_date" in json.loads([r for r in v2 if r["method"] == "POST"][0]["body"])
assert any(r["path"] == "/auth/token" for r in rows)
PY

# Adoption: the worker is off while a run is leased and its DAG run created in
# Airflow (as if the trigger's response was lost); once back it triggers again,
# gets 409, adopts the run and polls it to success.
wt_sql "ALTER SYSTEM SET dataflow.enabled = off" >/dev/null
wt_sql "SELECT pg_reload_conf()" >/dev/null
wt_wait "the worker to idle" 10 "SELECT query LIKE '%disabled%' FROM pg_stat_activity
                                 WHERE backend_type = 'pg_dataflow worker'"
job adopt af1 adopt
rid=$(wt_sql "SELECT run_id FROM dataflow._worker_claim('adopt', 1)")
[ -n "$rid" ] || wt_fail "could not lease the adopt job"
curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    -d "{\"dag_run_id\": \"dataflow-$rid\"}" "$WT_URL/api/v1/dags/adopt/dagRuns" | grep -qx 200 \
    || wt_fail "could not pre-create the DAG run"
wt_sql "ALTER SYSTEM SET dataflow.enabled = on" >/dev/null
wt_sql "SELECT pg_reload_conf()" >/dev/null
wt_wait "the adopted run to succeed" 20 "SELECT status = 'ready' FROM dataflow.chunk c JOIN dataflow.dataset d
                                         ON d.id = c.dataset_id WHERE d.name = 'out_adopt'"
python3 - "$WT_DIR/requests.jsonl" "$rid" <<'PY' || wt_fail "adoption"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
posts = [r for r in rows if r["method"] == "POST" and r["path"] == "/api/v1/dags/adopt/dagRuns"]
assert len(posts) == 2, posts   # ours (pre-created) and the worker's, answered 409
assert all(json.loads(p["body"])["dag_run_id"] == "dataflow-" + sys.argv[2] for p in posts)
PY
[ "$(wt_sql "SELECT count(*) FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id WHERE j.name = 'adopt'")" = 1 ] \
    || wt_fail "adoption started a second run"

# Accept, then hang past the timeout (dataflow.http_timeout = 2 s): the DAG run
# exists, the worker does not know; it triggers the same dag_run_id again, gets
# 409 and adopts it. max_attempts 2: the old code failed the run and started a
# second DAG run under a new run id.
wt_sql "SELECT dataflow.create_dataset('out_hang', 'int')" >/dev/null
wt_sql "SELECT dataflow.create_job('hang', 'out_hang', dispatch => 'airflow', connection => 'af1', target => 'hang',
                                   max_attempts => 2, backoff_min => '1 second', backoff_max => '1 second')" >/dev/null
wt_sql "SELECT dataflow.add_input('hang', 'raw')" >/dev/null
wt_sql "SELECT dataflow.expect('out_hang', '1')" >/dev/null
wt_wait "the hung trigger's DAG run to be adopted and succeed" 30 "SELECT status = 'ready' FROM dataflow.chunk c
    JOIN dataflow.dataset d ON d.id = c.dataset_id WHERE d.name = 'out_hang'"
python3 - "$WT_DIR/requests.jsonl" <<'PY' || wt_fail "a hung trigger started a second DAG run"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
posts = [r for r in rows if r["method"] == "POST" and r["path"] == "/api/v1/dags/hang/dagRuns"]
ids = {json.loads(p["body"])["dag_run_id"] for p in posts}
assert len(posts) >= 2 and len(ids) == 1, (len(posts), ids)
PY
[ "$(wt_sql "SELECT count(*) FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id WHERE j.name = 'hang'")" = 1 ] \
    || wt_fail "the hung trigger started a second run"

grep -E "PANIC|TRAP|terminated by signal" "$WT_DIR/server.log" && wt_fail "server log shows a crash"
echo "ok: airflow dispatch"
