#!/usr/bin/env bash
# Hostile clients against the callback listener (docs/worker.md, "Callback listener"),
# with 64 honest ones among them (test/integration/listener_hostile.py): slow-loris
# headers and bodies, 10 MB bodies (declared and chunked), malformed and 100,000-level
# nested JSON, 10,000 random tokens, a flood of 200 connections from one address (held
# back by dataflow.callback_max_connections_per_ip, left at its default of 32); the
# dispatch worker is terminated during the load.
# Every honest heartbeat and complete is answered 200, every attack gets its answer
# (401, 400, 413) or is cut off within dataflow.callback_timeout, the listener's peak RSS
# grows by less than 64 MB, and nothing but the honest completions changes the database.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh
. test/integration/worker_common.bash

LPORT=$(df_free_port $((30000 + RANDOM % 20000)))
ADDR="127.0.0.1:$LPORT"
wt_setup "dataflow.callback_listen = '$ADDR'" "dataflow.callback_role = 'df_callback'" \
    "dataflow.callback_timeout = 3000" "dataflow.callback_max_connections = 256"
wt_sql "CREATE ROLE df_callback LOGIN; GRANT dataflow_worker TO df_callback" >/dev/null
N=640
wt_sql "SELECT dataflow.create_dataset('out', 'int');
        SELECT dataflow.create_job('j', output => 'out', lease_for => '1 hour');
        SELECT dataflow.expect('out', '1', '$((N + 20))')" >/dev/null
# the honest tokens in key order (line k completes key k with row_count k), then 20 leases
# nobody reports on (they must stay as they are)
wt_sql "SELECT token FROM dataflow.lease('j', 'engine', $N) ORDER BY key::integer" > "$WT_DIR/tokens"
wt_sql "SELECT count(*) FROM dataflow.lease('j', 'bystander', 20)" >/dev/null
[ "$(wc -l < "$WT_DIR/tokens")" -eq "$N" ] || wt_fail "could not lease $N chunks"
for ((i = 0; i < 150; i++)); do
    out=$(python3 "$ROOT/test/integration/callback_client.py" "$ADDR" /v1/runs/heartbeat)
    [ "${out:0:3}" = 401 ] && break
    sleep 0.1
done
[ "${out:0:3}" = 401 ] || wt_fail "the listener did not start serving"
LPID=$(wt_sql "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_dataflow listener'")
WPID=$(wt_worker_pid)
before_events=$(wt_sql "SELECT coalesce(max(id), 0) FROM dataflow.event")
bystanders=$(wt_sql "SELECT md5(string_agg(r::text, ',' ORDER BY r.id)) FROM dataflow.run r WHERE worker = 'bystander'")
others=$(wt_sql "SELECT md5(string_agg(c::text, ',' ORDER BY c.id)) FROM dataflow.chunk c
                  WHERE NOT EXISTS (SELECT FROM dataflow.run r WHERE r.chunk_id = c.id AND r.worker = 'engine')")

# SIGTERM, not SIGKILL: a SIGKILLed backend makes the postmaster reset shared memory and
# end every backend, the listener included; a terminated worker exits and is restarted.
start=$(date +%s)
result=$(python3 "$ROOT/test/integration/listener_hostile.py" "$ADDR" "$WT_DIR/tokens" "$LPID" \
    "psql -X -qAt -d postgres -c 'SELECT pg_terminate_backend($WPID)' >/dev/null")
echo "driver: $result ($(( $(date +%s) - start )) s)"
get() { python3 -c "import json,sys; print(json.loads(sys.argv[1])$1)" "$result"; }
[ "$(get '["honest_ok"]')" -eq $((2 * N)) ] || wt_fail "honest requests not all served: $(get '["honest_bad"]')"
echo "ok: all $((2 * N)) honest requests answered 200"
[ "$(get '["wrong_401"]')" -eq 10000 ] || wt_fail "wrong tokens: $(get '["wrong_other"]')"
echo "ok: 10,000 wrong tokens answered 401"
[ "$(get '["malformed_400"]')" -eq 200 ] || wt_fail "malformed bodies: $(get '["malformed_other"]')"
echo "ok: 200 malformed and deeply nested bodies answered 400"
# a declared 10 MB body is answered 413 at once and the connection closed: the client,
# still sending, may see the reset before it reads the answer
bad_big=$(get '["big_other"]')
[ "$(( $(get '["big_413"]') ))" -ge 1 ] && python3 -c "import sys,ast; d=ast.literal_eval(sys.argv[1]); sys.exit(any(k not in ('ConnectionResetError','BrokenPipeError') for k in d))" "$bad_big" \
    || wt_fail "10 MB bodies: 413 x $(get '["big_413"]'), others $bad_big"
echo "ok: 10 MB bodies refused (413 x $(get '["big_413"]'), resets: $bad_big)"
[ "$(get '["loris_cut"]')" -eq 30 ] || wt_fail "slow clients not cut off: $(get '["loris_open"]') of 30 stayed open for 12 s"
echo "ok: 30 slow-loris connections (headers, bodies) cut off"
[ "$(get '["flood_refused"]')" -gt 0 ] || wt_fail "the flood from one address was never refused: $result"
echo "ok: a flood of 200 connections from one address: $(get '["flood_refused"]') refused at once, $(get '["flood_held"]') held and cut off later"
growth=$(( $(get '["rss_kb_peak"]') - $(get '["rss_kb_before"]') ))
[ "$growth" -lt 65536 ] || wt_fail "the listener's peak RSS grew by $growth kB"
echo "ok: the listener's peak RSS grew by $growth kB (< 64 MB)"
[ "$(get '["killed"]')" = True ] && [ "$(wt_worker_pid)" != "$WPID" ] || wt_fail "the dispatch worker was not terminated"
echo "ok: the dispatch worker was terminated during the load"

# nothing but the honest completions changed
[ "$(wt_sql "SELECT count(*) FILTER (WHERE c.status = 'ready' AND c.row_count = c.key::bigint) FROM dataflow.chunk c
             JOIN dataflow.run r ON r.chunk_id = c.id AND r.worker = 'engine' AND r.status = 'succeeded'")" -eq "$N" ] \
    || wt_fail "not every honest chunk is ready with its row count"
[ "$(wt_sql "SELECT count(*) FILTER (WHERE to_status = 'ready') || ' ' || count(*) FROM dataflow.event WHERE id > $before_events")" = "$N $N" ] \
    || wt_fail "events other than the honest completions: $(wt_sql "SELECT to_status, count(*) FROM dataflow.event WHERE id > $before_events GROUP BY 1")"
[ "$(wt_sql "SELECT md5(string_agg(r::text, ',' ORDER BY r.id)) FROM dataflow.run r WHERE worker = 'bystander'")" = "$bystanders" ] \
    || wt_fail "the bystanders' runs changed"
[ "$(wt_sql "SELECT md5(string_agg(c::text, ',' ORDER BY c.id)) FROM dataflow.chunk c
              WHERE NOT EXISTS (SELECT FROM dataflow.run r WHERE r.chunk_id = c.id AND r.worker = 'engine')")" = "$others" ] \
    || wt_fail "chunks other than the honest ones changed"
echo "ok: nothing else changed ($N ready events, bystanders and other chunks as they were)"
! grep -q -f "$WT_DIR/tokens" "$WT_DIR/server.log" || wt_fail "a token appears in the server log"
echo "PASS listener_hostile"
