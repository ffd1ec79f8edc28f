#!/usr/bin/env bash
# Nothing is lost when the worker dies or Postgres restarts mid-delivery:
# deliveries to a slow receiver are in flight when (1) the worker is terminated
# (it comes back after bgw_restart_time), (2) the worker is SIGKILLed (the
# postmaster restarts every backend) and (3) Postgres is stopped in immediate
# mode and started again. In the end every event has been delivered (at least
# once) and the receiver saw every webhook-id; a receiver that refused
# connections while down gets everything once it is back.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh
. test/integration/worker_common.bash

wt_setup "dataflow.http_concurrency = 4"
wt_start_receiver
secret=$(wt_sql "SELECT dataflow.subscribe('slow', '$WT_URL/hook/slow')")
echo "$secret" > "$WT_DIR/secret"
wt_sql "SELECT dataflow.create_dataset('src', 'int')" >/dev/null
register() { wt_sql "SELECT count(dataflow.register('src', k::text)) FROM generate_series($1, $2) k" >/dev/null; }
in_flight() { # waits until some deliveries are done and some pending
    wt_wait "deliveries under way" 20 "SELECT count(*) FILTER (WHERE status = 'delivered') > $1
                                        AND count(*) FILTER (WHERE status = 'pending') > 0 FROM dataflow.delivery"
}

register 1 20
in_flight 0
pid=$(wt_worker_pid)
wt_sql "SELECT pg_terminate_backend($pid)" >/dev/null
echo "terminated worker $pid mid-delivery"
wt_wait "a new worker" 30 "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_dataflow worker'
                             AND pid <> $pid"

register 21 40
done_before=$(wt_sql "SELECT count(*) FROM dataflow.delivery WHERE status = 'delivered'")
in_flight "$done_before"
pid=$(wt_worker_pid)
kill -9 "$pid"
echo "killed worker $pid with SIGKILL mid-delivery"
wt_wait "the cluster and a new worker" 60 "SELECT count(*) = 1 FROM pg_stat_activity
                                             WHERE backend_type = 'pg_dataflow worker' AND pid <> $pid"

register 41 60
done_before=$(wt_sql "SELECT count(*) FROM dataflow.delivery WHERE status = 'delivered'")
in_flight "$done_before"
df_as_user pg_ctl -D "$WT_DIR/data" -m immediate -w stop >/dev/null || wt_fail "immediate stop"
echo "stopped Postgres in immediate mode mid-delivery"
df_as_user pg_ctl -D "$WT_DIR/data" -l "$WT_DIR/server.log" -w -t 60 start >/dev/null || wt_fail "restart"

# The receiver goes away for a while: connections are refused, deliveries are
# retried (5 s later) and all arrive once it is back.
kill "$WT_RECEIVER_PID"; WT_RECEIVER_PID=
register 61 65
wt_wait "failed attempts while the receiver is down" 30 \
    "SELECT count(*) > 0 FROM dataflow.delivery WHERE last_error IS NOT NULL AND last_http_status IS NULL"
port=$(cat "$WT_DIR/port")
python3 "$ROOT/test/integration/receiver.py" "$WT_DIR/port2" "$WT_DIR/requests.jsonl" "$WT_DIR/secret" \
    >>"$WT_DIR/receiver.out" 2>&1 &
WT_RECEIVER_PID=$!
for ((i = 0; i < 100; i++)); do [ -s "$WT_DIR/port2" ] && break; sleep 0.1; done
wt_sql "UPDATE dataflow.subscription SET url = 'http://127.0.0.1:$(cat "$WT_DIR/port2")/hook/slow'" >/dev/null
wt_sql "UPDATE dataflow.delivery SET next_attempt_at = now() WHERE status = 'pending'" >/dev/null

events=$(wt_sql "SELECT count(*) FROM dataflow.event")
wt_wait "every event delivered" 120 "SELECT count(*) = $events AND bool_and(status = 'delivered')
                                      FROM dataflow.delivery"
wt_sql "SELECT 'msg_' || id FROM dataflow.delivery" > "$WT_DIR/want"
python3 - "$WT_DIR/requests.jsonl" "$WT_DIR/want" <<'PY' || wt_fail "receiver did not see every delivery"
import json, sys
ids = {json.loads(l)["headers"].get("webhook-id") for l in open(sys.argv[1])}
want = set(open(sys.argv[2]).read().split())
missing = want - ids
assert not missing, "missing: %s" % sorted(missing)[:10]
bad = [l for l in open(sys.argv[1]) if json.loads(l)["verified"] is False]
assert not bad, bad[:1]
print("received all", len(want), "webhook-ids; requests:", sum(1 for _ in open(sys.argv[1])))
PY
echo "ok: crash and restart"
