#!/usr/bin/env bash
# The callback listener (docs/worker.md, "Callback listener"): engines report heartbeat,
# complete and fail over HTTP with the run's token as a bearer token. Each answer is
# checked (200 with the chunk's new status, 401, 409, 400 with the SQL function's
# message, 413, 503 on a lock held past dataflow.callback_lock_timeout) and every refused
# request must leave every table of schema dataflow as it was (fingerprinted; the dispatch
# worker is disabled, so nothing else writes them meanwhile). The
# listener stops serving when its role gains more than dataflow_worker, and resumes.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh
. test/integration/worker_common.bash

LPORT=$(df_free_port $((30000 + RANDOM % 20000)))
ADDR="127.0.0.1:$LPORT"
wt_setup "dataflow.callback_listen = '$ADDR'" "dataflow.callback_role = 'df_callback'" \
    "dataflow.callback_lock_timeout = 500" "dataflow.callback_max_body = 4096" \
    "dataflow.enabled = off"
wt_sql "CREATE ROLE df_callback LOGIN; GRANT dataflow_worker TO df_callback" >/dev/null

post() {  # post PATH TOKEN BODY [extra client args] -> "STATUS BODY"
    local path=$1 token=$2 body=$3; shift 3
    if [ -n "$token" ]; then
        python3 "$ROOT/test/integration/callback_client.py" "$ADDR" "$path" --token "$token" --body "$body" "$@"
    else
        python3 "$ROOT/test/integration/callback_client.py" "$ADDR" "$path" --body "$body" "$@"
    fi
}
expect() {  # expect WHAT ACTUAL EXPECTED-GLOB
    # shellcheck disable=SC2053
    [[ $2 == $3 ]] || wt_fail "$1: got '$2', expected '$3'"
    echo "ok: $1"
}

# the listener connects once the role exists (it is restarted after bgw_restart_time)
for ((i = 0; i < 150; i++)); do
    [ "$(post /v1/runs/heartbeat "" "" | cut -c1-3)" = 401 ] && break
    sleep 0.1
done
[ "$i" -lt 150 ] || wt_fail "the listener did not start serving on $ADDR"
[ "$(wt_sql "SELECT usename FROM pg_stat_activity WHERE backend_type = 'pg_dataflow listener'")" = df_callback ] \
    || wt_fail "the listener does not run as df_callback"

wt_sql "CREATE FUNCTION public.fp() RETURNS text LANGUAGE plpgsql AS \$\$
DECLARE t regclass; acc text := ''; h text;
BEGIN
  FOR t IN SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'dataflow' AND c.relkind IN ('r', 'p') ORDER BY c.relname LOOP
    EXECUTE format('SELECT md5(coalesce(string_agg(x::text, %L ORDER BY x::text), %L)) FROM %s x', E'\n', '', t)
      INTO h;
    acc := acc || t::text || ':' || h || ';';
  END LOOP;
  RETURN md5(acc);
END \$\$" >/dev/null
wt_sql "SELECT dataflow.create_dataset('out', 'int');
        SELECT dataflow.create_job('j', output => 'out', max_attempts => 5, backoff_min => '1 hour',
                                   backoff_max => '1 hour', lease_for => '1 hour');
        SELECT dataflow.expect('out', '1', '20')" >/dev/null
lease() {  # lease [LEASE_FOR] -> token
    wt_sql "SELECT token FROM dataflow.lease('j', 'engine', 1, ${1:-NULL})"
}
runstatus() { wt_sql "SELECT status FROM dataflow.run WHERE token = '$1'"; }
chunkstatus() {
    wt_sql "SELECT c.status FROM dataflow.chunk c JOIN dataflow.run r ON r.chunk_id = c.id WHERE r.token = '$1'"
}
unchanged() {  # unchanged WHAT EXPECTED-STATUS-GLOB PATH TOKEN BODY [args]: refused, tables as they were
    local what=$1 want=$2; shift 2
    local before after out
    before=$(wt_sql "SELECT public.fp()")
    out=$(post "$@")
    after=$(wt_sql "SELECT public.fp()")
    expect "$what" "$out" "$want"
    [ "$before" = "$after" ] || wt_fail "$what changed the dataflow tables"
}

# --- 200: heartbeat, complete, fail
T1=$(lease)
out=$(post /v1/runs/heartbeat "$T1" '{"extend_by": 600}')
expect "heartbeat answers running and the new deadline" "$out" '200 {"deadline":"20*","status":"running"}'
[ "$(wt_sql "SELECT heartbeat_at IS NOT NULL AND deadline BETWEEN now() + interval '590 s' AND now() + interval '610 s'
             FROM dataflow.run WHERE token = '$T1'")" = t ] || wt_fail "the heartbeat did not move the deadline"
out=$(post /v1/runs/complete "$T1" '{"row_count": 42, "checksum": "c1", "location": "s3://b/1", "info": {"by": "http", "n": 123456789012345678901234567890, "x": 0.1000000000000000055511}}')
expect "complete answers ready" "$out" '200 {"status":"ready"}'
[ "$(wt_sql "SELECT r.status || ' ' || c.status || ' ' || c.row_count || ' ' || c.checksum || ' ' || c.location || ' ' || (c.info->>'by')
             FROM dataflow.run r JOIN dataflow.chunk c ON c.id = r.chunk_id WHERE r.token = '$T1'")" = \
  "succeeded ready 42 c1 s3://b/1 http" ] || wt_fail "complete did not record the result"
# info's numbers as jsonb reads them from the body, as a SQL call would keep them
[ "$(wt_sql "SELECT (c.info->'n')::text || ' ' || (c.info->'x')::text FROM dataflow.run r JOIN dataflow.chunk c ON c.id = r.chunk_id
             WHERE r.token = '$T1'")" = "123456789012345678901234567890 0.1000000000000000055511" ] \
    || wt_fail "info's numbers were rewritten: $(wt_sql "SELECT c.info FROM dataflow.chunk c JOIN dataflow.run r ON r.chunk_id = c.id WHERE r.token = '$T1'")"
[ "$(wt_sql "SELECT count(*) FROM dataflow.event e JOIN dataflow.run r ON r.id = e.run_id
             WHERE r.token = '$T1' AND e.from_status = 'running' AND e.to_status = 'ready' AND e.actor = 'engine'")" = 1 ] \
    || wt_fail "no ready event for the completed chunk"

T2=$(lease)
out=$(post /v1/runs/fail "$T2" '{"error": "boom"}')
expect "fail with retry answers queued" "$out" '200 {"status":"queued"}'
[ "$(wt_sql "SELECT r.status || ' ' || r.error || ' ' || c.error FROM dataflow.run r JOIN dataflow.chunk c ON c.id = r.chunk_id
             WHERE r.token = '$T2'")" = "failed boom boom" ] || wt_fail "fail did not record the error"
T3=$(lease)
out=$(post /v1/runs/fail "$T3" '{"error": "slow down", "retry_after": 120}')
expect "fail with retry_after answers queued" "$out" '200 {"status":"queued"}'
[ "$(wt_sql "SELECT abs(extract(epoch FROM c.not_before - r.finished_at) - 120) < 0.01
             FROM dataflow.run r JOIN dataflow.chunk c ON c.id = r.chunk_id WHERE r.token = '$T3'")" = t ] \
    || wt_fail "retry_after did not set the next attempt to exactly 120 s after the failure"
T4=$(lease)
out=$(post /v1/runs/fail "$T4" '{"error": "bad input", "retry": false}')
expect "fail without retry answers failed" "$out" '200 {"status":"failed"}'

# --- 409: repeated, expired, superseded
unchanged "a second complete is 409" '409 {"error":"run * already succeeded at *; nothing to do","sqlstate":"55000"}' \
    /v1/runs/complete "$T1" '{}'
unchanged "a heartbeat of a failed run is 409" '409 {"error":"run * already failed at *; nothing to do","sqlstate":"55000"}' \
    /v1/runs/heartbeat "$T2" ''
T5=$(lease "interval '0.2 s'")
sleep 0.4
unchanged "a complete after the deadline is 409" '409 {"error":"lease of run * expired at *; its result will not be used","sqlstate":"55000"}' \
    /v1/runs/complete "$T5" '{"row_count": 1}'
T6=$(lease)
wt_sql "SELECT dataflow.resubmit('out', (SELECT c.key FROM dataflow.chunk c JOIN dataflow.run r ON r.chunk_id = c.id WHERE r.token = '$T6'))" >/dev/null
out=$(post /v1/runs/heartbeat "$T6" '')
expect "a heartbeat of a run superseded while it works answers superseded" "$out" '200 {"deadline":"20*","status":"superseded"}'
out=$(post /v1/runs/complete "$T6" '{"row_count": 1}')
expect "complete of a run superseded while it worked answers superseded" "$out" '200 {"status":"superseded"}'
unchanged "a complete of a superseded, ended run is 409" '409 {"error":"run * was superseded and ended at *; its result will not be used","sqlstate":"55000"}' \
    /v1/runs/complete "$T6" '{"row_count": 1}'

# --- 401: no token, another scheme, a token no lease has, a token that is no UUID
T7=$(lease)
unchanged "no Authorization is 401" '401 {"error":"no token: send Authorization: Bearer <the run'"'"'s token>","sqlstate":"42704"}' \
    /v1/runs/complete "" '{}'
unchanged "Basic is 401" '401 {"error":"the Authorization header is not Bearer <the run'"'"'s token>","sqlstate":"42704"}' \
    /v1/runs/complete "" '{}' --auth "Basic $T7"
unchanged "an unknown token is 401" '401 {"error":"no lease has this token","sqlstate":"42704"}' \
    /v1/runs/complete 0f8fad5b-d9cb-469f-a165-70867728950e '{}'
unchanged "a token that is no UUID is 401" '401 {*"sqlstate":"42704"}' \
    /v1/runs/complete "' OR true --" '{}'
unchanged "the token in the query string is 400" '400 {"error":"the callback URL takes no query string*","sqlstate":"22023"}' \
    "/v1/runs/complete?token=$T7" "" '{}'
unchanged "an unknown path is 404" '404 {"error":"no such callback*"}' /v1/runs/finish "$T7" '{}'

# --- 400: malformed JSON, wrong types, the SQL functions' checks
unchanged "malformed JSON is 400" '400 {"error":"body is not valid JSON","sqlstate":"22P02"}' \
    /v1/runs/complete "$T7" '{"row_count": 1'
unchanged "a string row_count is 400" '400 {"error":"row_count must be an integer","sqlstate":"22023"}' \
    /v1/runs/complete "$T7" '{"row_count": "1"}'
unchanged "a negative row_count is 400 with complete()'s message" '400 {"error":"row_count must be >= 0","sqlstate":"22023"}' \
    /v1/runs/complete "$T7" '{"row_count": -1}'
unchanged "an info that is no object is 400" '400 {"error":"info must be a JSON object","sqlstate":"22023"}' \
    /v1/runs/complete "$T7" '{"info": [1]}'
unchanged "fail without error is 400" '400 {"error":"error and retry must not be NULL","sqlstate":"22004"}' \
    /v1/runs/fail "$T7" '{}'
unchanged "a heartbeat extend_by of 0 is 400" '400 {"error":"extend_by must be positive","sqlstate":"22023"}' \
    /v1/runs/heartbeat "$T7" '{"extend_by": 0}'
unchanged "deep nesting is 400" '400 {"error":"body is not valid JSON for PostgreSQL: arrays and objects nested deeper than 64 levels","sqlstate":"22P02"}' \
    /v1/runs/complete "$T7" "{\"info\": $(printf '[%.0s' {1..1000})}"
# a value only PostgreSQL checks: a checksum too long for the index? no: a location
# PostgreSQL refuses is not possible from valid JSON; the class 22 path is shown by
# extend_by far beyond an interval
unchanged "an interval PostgreSQL refuses is 400" '400 {*"sqlstate":"22*"}' \
    /v1/runs/heartbeat "$T7" '{"extend_by": 1e300}'

# --- 413: declared and chunked bodies over dataflow.callback_max_body
unchanged "a body over callback_max_body is 413" '413 {"error":"the body is larger than dataflow.callback_max_body (4096 bytes)","sqlstate":"54000"}' \
    /v1/runs/complete "$T7" '' --body-size 5000
unchanged "a chunked body over callback_max_body is 413" '413 {"error":"the body is larger than dataflow.callback_max_body (4096 bytes)","sqlstate":"54000"}' \
    /v1/runs/complete "$T7" '' --body-size 100000 --chunked
out=$(post /v1/runs/heartbeat "$T7" '' --body-size 3000 --chunked)
expect "a chunked body under the limit is read (an unknown field then)" "$out" '400 {"error":"unknown field ?"checksum?" in a heartbeat body","sqlstate":"22023"}'

# --- 503: the chunk locked by another session beyond the lock timeout
mkfifo "$WT_DIR/hold"
df_as_user psql -X -q -d postgres -c "BEGIN" \
    -c "SELECT 1 FROM dataflow.chunk c JOIN dataflow.run r ON r.chunk_id = c.id WHERE r.token = '$T7' FOR UPDATE OF c" \
    -c "SELECT pg_sleep(30)" >/dev/null 2>&1 &
HOLDER=$!
wt_wait "the chunk lock to be held" 10 \
    "SELECT count(*) = 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'"
unchanged "a lock held past callback_lock_timeout is 503" '503 {"error":"canceling statement due to lock timeout","sqlstate":"55P03"}' \
    /v1/runs/complete "$T7" '{"row_count": 7}'
# a SIGTERM while a request waits for that lock: the listener answers it and exits
# cleanly (exit code 1, restarted), never aborting with the connection suspended
wt_sql "ALTER SYSTEM SET dataflow.callback_lock_timeout = 20000" >/dev/null
wt_sql "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
post /v1/runs/complete "$T7" '{"row_count": 7}' > "$WT_DIR/during_term" &
CLIENT=$!
wt_wait "the request to wait for the lock" 10 \
    "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_dataflow listener' AND wait_event_type = 'Lock'"
LPID=$(wt_sql "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_dataflow listener'")
wt_sql "SELECT pg_terminate_backend($LPID)" >/dev/null
wait "$CLIENT"
out=$(cat "$WT_DIR/during_term")
[[ $out == "503 "* || $out == "000 "* ]] || wt_fail "the request in flight at the SIGTERM: $out"
for ((i = 0; i < 50; i++)); do
    grep -q "background worker \"pg_dataflow listener\" (PID $LPID) exited with exit code 1" "$WT_DIR/server.log" && break
    sleep 0.1
done
[ "$i" -lt 50 ] || wt_fail "the listener did not exit cleanly on SIGTERM: $(grep "PID $LPID" "$WT_DIR/server.log" | tail -2)"
echo "ok: a SIGTERM during a request's transaction ends the listener cleanly ($out)"
wt_sql "ALTER SYSTEM RESET dataflow.callback_lock_timeout" >/dev/null
wt_sql "SELECT pg_reload_conf()" >/dev/null
for ((i = 0; i < 150; i++)); do
    [ "$(post /v1/runs/heartbeat "" "" | cut -c1-3)" = 401 ] && break
    sleep 0.1
done
[ "$i" -lt 150 ] || wt_fail "the listener did not come back after the SIGTERM"
kill "$HOLDER" 2>/dev/null
wt_sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'" >/dev/null
wait "$HOLDER" 2>/dev/null
out=$(post /v1/runs/complete "$T7" '{"row_count": 7}')
expect "the same complete once the lock is gone" "$out" '200 {"status":"ready"}'
[ "$(chunkstatus "$T7") $(runstatus "$T7")" = "ready succeeded" ] || wt_fail "the retried complete did not land"

# --- a cancel between requests (pg_cancel_backend) is ignored: same process, still serving
# (it ended the listener through an uncaught 57014 before, and then used a destroyed server)
LPID=$(wt_sql "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_dataflow listener'")
wt_sql "SELECT pg_cancel_backend($LPID)" >/dev/null
sleep 1.5
expect "a request after a cancel" "$(post /v1/runs/heartbeat "" "")" '401 *'
[ "$(wt_sql "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_dataflow listener'")" = "$LPID" ] \
    || wt_fail "the listener did not survive a pg_cancel_backend"
grep -q "pg_dataflow listener: a cancel request between callbacks is ignored" "$WT_DIR/server.log" \
    || wt_fail "the ignored cancel is not logged"
echo "ok: pg_cancel_backend between requests is logged and ignored"
# 401 and 405 say how to authenticate and which method (WWW-Authenticate, Allow)
hdrs=$(curl -s -o /dev/null -D - -X POST "http://$ADDR/v1/runs/heartbeat")
grep -qi '^WWW-Authenticate: Bearer' <<<"$hdrs" || wt_fail "401 without WWW-Authenticate: $hdrs"
hdrs=$(curl -s -o /dev/null -D - "http://$ADDR/v1/runs/heartbeat")
grep -qi '^Allow: POST' <<<"$hdrs" || wt_fail "405 without Allow: $hdrs"
echo "ok: 401 carries WWW-Authenticate: Bearer, 405 Allow: POST"

# --- the role: more than dataflow_worker stops the listener, until it is taken back
wt_sql "GRANT dataflow_operator TO df_callback; SELECT pg_reload_conf()" >/dev/null
for ((i = 0; i < 100; i++)); do
    [ "$(post /v1/runs/heartbeat "" "" | cut -c1-3)" = 000 ] && break
    sleep 0.1
done
[ "$i" -lt 100 ] || wt_fail "the listener kept serving with a role that is a member of dataflow_operator"
for ((i = 0; i < 50; i++)); do
    grep -q 'pg_dataflow listener: not serving: role "df_callback" (dataflow.callback_role) may not run callbacks: it is also a member of dataflow_operator' \
        "$WT_DIR/server.log" && break
    sleep 0.1
done
[ "$i" -lt 50 ] || wt_fail "no log line says why the listener stopped serving"
echo "ok: a role with dataflow_operator stops the listener, and the log says why"
wt_sql "REVOKE dataflow_operator FROM df_callback; SELECT pg_reload_conf()" >/dev/null
for ((i = 0; i < 150; i++)); do
    [ "$(post /v1/runs/heartbeat "" "" | cut -c1-3)" = 401 ] && break
    sleep 0.1
done
[ "$i" -lt 150 ] || wt_fail "the listener did not resume serving once the role was fixed"
echo "ok: the listener resumes once the role holds dataflow_worker only"
! grep -q -- "$T1\|$T7" "$WT_DIR/server.log" || wt_fail "a token appears in the server log"
echo "ok: no token in the server log"
echo "PASS listener"
