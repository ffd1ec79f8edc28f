#!/usr/bin/env bash
# The portal story (issue 15): a portal-like client registers an uploaded file and expects
# its load; the load is an Airflow job whose DAG gets, in its conf, the resource (the
# input's location), the callback {url, token} of the callback listener and the portal's
# API key, set by the admin as a secret param. The "DAG" (the Airflow-shaped stub keeps
# it running) reports back through the listener (POST /v1/runs/complete with the bearer
# token); the chunk is ready and the portal's webhook subscription gets chunk.ready. An
# http job's task carries the secret too. Then the key is looked for everywhere else: every
# view as the reader, operator and worker roles, explain() and blockers(), the event log,
# the webhook payloads (stored and received), what the worker keeps of its tasks, and the
# server log at log_min_messages = debug1. It is only in what the engines received.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh
. test/integration/worker_common.bash

KEY=pk-LIVE-5b7e1c9d3a
LPORT=$(df_free_port $((30000 + RANDOM % 20000)))
wt_setup "dataflow.callback_listen = '127.0.0.1:$LPORT'" "dataflow.callback_role = 'df_callback'" \
    "dataflow.callback_url = 'http://127.0.0.1:$LPORT'" "dataflow.poll_interval = 300" \
    "log_min_messages = debug1"
wt_start_receiver
wt_sql "CREATE ROLE df_callback LOGIN; GRANT dataflow_worker TO df_callback;
        CREATE ROLE portal_client LOGIN; GRANT dataflow_worker, dataflow_operator TO portal_client" >/dev/null

# ---- the admin defines the flow; the API key is a secret param ------------------------
hook_secret=$(wt_sql "SELECT dataflow.create_dataset('uploads', 'text');
        SELECT dataflow.create_dataset('loaded', 'text', location => 'postgres://portal/datastore/{key}');
        SELECT dataflow.create_connection('airflow', 'airflow', '$WT_URL', auth => 'basic', username => 'admin',
                                          secret => 'pw', api_version => 1);
        SELECT dataflow.create_job('portal_load', output => 'loaded', dispatch => 'airflow',
                                   connection => 'airflow', target => 'waits', lease_for => '1 hour',
                                   params => '{\"portal_url\": \"https://portal.example\"}',
                                   secret_params => '{\"portal_api_key\": \"$KEY\"}');
        SELECT dataflow.add_input('portal_load', 'uploads');
        SELECT dataflow.subscribe('portal', '$WT_URL/hook/ok', datasets => '{loaded}')" | tail -1)
[[ $hook_secret == whsec_* ]] || wt_fail "subscribe returned no secret: $hook_secret"
echo "$hook_secret" > "$WT_DIR/secret"
[ "$(wt_sql "SELECT secret_params FROM dataflow.jobs WHERE job = 'portal_load'")" = '{"portal_api_key": "********"}' ] \
    || wt_fail "the jobs view does not mask the secret param"

# ---- the portal registers a file and asks for its load --------------------------------
df_as_user psql -X -tAq -v ON_ERROR_STOP=1 -d postgres -c "SET ROLE portal_client" \
    -c "SELECT dataflow.expect('loaded', 'res-42')" \
    -c "SELECT dataflow.register('uploads', 'res-42', 's3://portal/resources/res-42/data.csv', checksum => 'md5:9a0b')" \
    >/dev/null || wt_fail "the portal could not register its file"
for ((i = 0; i < 300; i++)); do [ "$(wt_requests /api/v1/dags/waits/dagRuns)" -ge 1 ] && break; sleep 0.1; done
[ "$(wt_requests /api/v1/dags/waits/dagRuns)" -ge 1 ] || wt_fail "the DAG was not triggered"
token=$(wt_sql "SELECT r.token FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id WHERE j.name = 'portal_load'")
python3 - "$WT_DIR/requests.jsonl" "$token" "$LPORT" "$KEY" <<'PY' || wt_fail "the DAG conf"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
trig = [r for r in rows if r["method"] == "POST" and r["path"] == "/api/v1/dags/waits/dagRuns"]
assert len(trig) == 1, trig
conf = json.loads(trig[0]["body"])["conf"]
assert conf["key"] == "res-42" and conf["dataset"] == "loaded", conf
assert [i["location"] for i in conf["inputs"]] == ["s3://portal/resources/res-42/data.csv"], conf["inputs"]
assert conf["callback"] == {"url": "http://127.0.0.1:" + sys.argv[3], "token": sys.argv[2]}, conf["callback"]
assert conf["params"] == {"portal_url": "https://portal.example", "portal_api_key": sys.argv[4]}, conf["params"]
assert conf["output_location"] == "postgres://portal/datastore/res-42", conf
PY
[ "$(wt_sql "SELECT count(*) || ' ' || count(*) FILTER (WHERE x::text LIKE '%$KEY%') FROM dataflow._dispatch x")" = "1 0" ] \
    || wt_fail "what the worker keeps of the live Airflow task holds the key (or nothing is kept)"
echo "ok: the DAG conf has the resource, the callback {url, token} and the portal API key"

# ---- the DAG reports back through the callback listener -------------------------------
for ((i = 0; i < 150; i++)); do
    out=$(python3 "$ROOT/test/integration/callback_client.py" "127.0.0.1:$LPORT" /v1/runs/complete \
          --token "$token" --body '{"row_count": 1200, "checksum": "md5:77ef", "info": {"dag": "waits"}}')
    [ "${out:0:3}" != 000 ] && break
    sleep 0.1
done
[ "$out" = '200 {"status":"ready"}' ] || wt_fail "complete through the callback listener: $out"
[ "$(wt_sql "SELECT status || ' ' || row_count || ' ' || location FROM dataflow.chunks
              WHERE dataset = 'loaded' AND key = 'res-42'")" = "ready 1200 postgres://portal/datastore/res-42" ] \
    || wt_fail "the chunk is not ready with the DAG's result"
wt_wait "the portal's webhook for the ready chunk" 20 "SELECT count(*) = 1 FROM dataflow.delivery d
    WHERE d.payload ->> 'type' = 'chunk.ready' AND d.status = 'delivered'"
python3 - "$WT_DIR/requests.jsonl" <<'PY' || wt_fail "the portal's webhook"
import json, sys
hooks = [json.loads(l) for l in open(sys.argv[1]) if '"/hook/ok"' in l]
ready = [h for h in hooks if json.loads(h["body"])["type"] == "chunk.ready"]
assert len(ready) == 1 and ready[0]["verified"] is True, ready
assert json.loads(ready[0]["body"])["data"]["key"] == "res-42"
PY
echo "ok: the DAG completed the chunk through the callback; the portal got chunk.ready"

# ---- an http job's task carries the secret params too ---------------------------------
wt_sql "SELECT dataflow.create_dataset('previews', 'text');
        SELECT dataflow.create_job('portal_preview', output => 'previews', dispatch => 'http',
                                   endpoint => '$WT_URL/dispatch/accept', lease_for => '1 hour',
                                   secret_params => '{\"portal_api_key\": \"$KEY\"}');
        SELECT dataflow.add_input('portal_preview', 'uploads');
        SELECT dataflow.expect('previews', 'res-42')" >/dev/null
for ((i = 0; i < 300; i++)); do [ "$(wt_requests /dispatch/accept)" -ge 1 ] && break; sleep 0.1; done
[ "$(wt_requests /dispatch/accept)" -ge 1 ] || wt_fail "the http task was not sent"
python3 - "$WT_DIR/requests.jsonl" "$KEY" <<'PY' || wt_fail "the http task"
import json, sys
task = [json.loads(json.loads(l)["body"]) for l in open(sys.argv[1]) if '"/dispatch/accept"' in l][0]
assert task["params"] == {"portal_api_key": sys.argv[2]}, task["params"]
assert task["inputs"][0]["location"] == "s3://portal/resources/res-42/data.csv" and task["callback"]["token"]
PY
ptoken=$(wt_sql "SELECT r.token FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id WHERE j.name = 'portal_preview'")
out=$(python3 "$ROOT/test/integration/callback_client.py" "127.0.0.1:$LPORT" /v1/runs/fail \
      --token "$ptoken" --body '{"error": "preview renderer down", "retry": false}')
[ "${out:0:3}" = 200 ] || wt_fail "fail through the callback listener: $out"
echo "ok: the http task carries the secret param"

# ---- the key appears nowhere else -----------------------------------------------------
views_sql="SELECT count(*) || ' ' || coalesce(string_agg(c.relname, ',') FILTER (WHERE
             query_to_xml(format('SELECT 1 FROM dataflow.%I x WHERE row_to_json(x)::text LIKE %L',
                                 c.relname, '%$KEY%'), false, true, '')::text <> ''), '-')
             FROM pg_class c
            WHERE c.relnamespace = 'dataflow'::regnamespace AND c.relkind = 'v'
              AND has_table_privilege(c.oid, 'SELECT')"
questions_sql="SELECT count(*) FILTER (WHERE x::text LIKE '%$KEY%')
                 FROM (SELECT row_to_json(e)::text AS x FROM dataflow.explain('loaded', 'res-42') e
                       UNION ALL SELECT row_to_json(b)::text FROM dataflow.blockers('previews', 'res-42') b
                       UNION ALL SELECT dataflow.graph_dot()) q"
for role in dataflow_reader dataflow_operator dataflow_worker; do
    got=$(wt_sql "SET ROLE $role; $views_sql")
    [ "${got%% *}" -ge 10 ] || wt_fail "$role: only ${got%% *} views searched"
    [ "${got#* }" = - ] || wt_fail "$role: the key shows in the views ${got#* }"
    [ "$(wt_sql "SET ROLE $role; $questions_sql")" = 0 ] || wt_fail "$role: the key shows in explain/blockers/graph_dot"
    err=$(df_as_user psql -X -tAq -d postgres -c "SET ROLE $role" -c "SELECT * FROM dataflow.job_secret" 2>&1)
    [[ $err == *"permission denied"* ]] || wt_fail "$role reads dataflow.job_secret: $err"
done
echo "ok: no view, explain, blockers or graph_dot shows the key to the reader, operator or worker roles (${got%% *} views each)"
[ "$(wt_sql "SELECT count(*) FROM dataflow.event e WHERE e::text LIKE '%$KEY%'")" = 0 ] \
    || wt_fail "the key is in the event log"
[ "$(wt_sql "SELECT count(*) FROM dataflow.delivery d WHERE d.payload::text LIKE '%$KEY%'")" = 0 ] \
    || wt_fail "the key is in a webhook payload"
[ "$(wt_sql "SELECT count(*) FROM dataflow.run r WHERE r::text LIKE '%$KEY%'")
   $(wt_sql "SELECT count(*) FROM dataflow._dispatch x WHERE x::text LIKE '%$KEY%'")" = "0
   0" ] || wt_fail "the key is in the runs or in what the worker keeps of its tasks"
python3 - "$WT_DIR/requests.jsonl" "$KEY" <<'PY' || wt_fail "the key reached a receiver it should not"
import json, sys
seen = sorted({(r["method"], r["path"]) for r in map(json.loads, open(sys.argv[1])) if sys.argv[2] in json.dumps(r)})
assert seen == [("POST", "/api/v1/dags/waits/dagRuns"), ("POST", "/dispatch/accept")], seen
PY
grep -q "pg_dataflow worker: pass:" "$WT_DIR/server.log" || wt_fail "the server log has no debug1 lines of the worker"
grep -n -- "$KEY" "$WT_DIR/server.log" && wt_fail "the key is in the server log"
echo "ok: the key is in no event, webhook payload, run, kept task or server log line (debug1); only the engines got it"
grep -E "PANIC|TRAP|terminated by signal" "$WT_DIR/server.log" && wt_fail "server log shows a crash"
echo "PASS engine_portal"
