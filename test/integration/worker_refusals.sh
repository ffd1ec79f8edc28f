#!/usr/bin/env bash
# Refused requests must not stall the worker. With dataflow.naptime = 60 s (so a
# stall shows) and a small window, checks that
#   1. deliveries refused before they start (a URL curl cannot parse) are all tried at
#      once, not a window's worth per wake-up (the worker wakes at least every second
#      for its Airflow scan), and their retry comes after the schedule's 5 s;
#   2. a delivery refused by the address policy (127.0.0.2, not in dataflow.http_allow)
#      is retried after 5 s;
#   3. while one subscription holds its share of the window (requests that hang until
#      dataflow.http_timeout, with a window that is not a multiple of 4) the others'
#      deliveries flow, and a failed one is retried after 5 s, not when the hanging
#      requests time out.
# Loopback only; about 40 s.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh
. test/integration/worker_common.bash
. test/integration/hostile_common.bash

# log_min_messages = debug1: the worker's trace of its passes, printed when a wait fails
wt_setup "dataflow.naptime = 60000" "dataflow.http_concurrency = 4" "dataflow.http_timeout = 20000" \
    "log_min_messages = debug1"
trap hs_cleanup EXIT
hs_start rx http
RX="http://127.0.0.1:$(hs_port rx http)"

dataset() { wt_sql "SELECT dataflow.create_dataset('$1', 'int')" >/dev/null; }
sub() { wt_sql "SELECT dataflow.subscribe('$1', '$2', datasets => '{$3}')" >/dev/null; }
register_keys() { wt_sql "SELECT count(dataflow.register('$1', k::text)) FROM generate_series($2, $3) k" >/dev/null; }
# retry_gaps SUBSCRIPTION: min and max seconds between attempts 1 and 2 of its deliveries
retry_gaps() {
    wt_sql "SELECT round(min(g), 2) || ' ' || round(max(g), 2) FROM (
              SELECT extract(epoch FROM a2.at - a1.at) AS g
                FROM dataflow.deliveries d
                JOIN dataflow.delivery_attempt a1 ON a1.delivery_id = d.id AND a1.attempt = 1
                JOIN dataflow.delivery_attempt a2 ON a2.delivery_id = d.id AND a2.attempt = 2
               WHERE d.subscription = '$1') x"
}
deliveries() { wt_sql "SELECT string_agg(status || ':' || attempts, ',' ORDER BY id) FROM dataflow.deliveries WHERE subscription = '$1'"; }

# ---- 1. refused before they start: 12 deliveries, window 4 (its share: 3) ------------------
dataset ev1
sub badport "http://127.0.0.1:99999/hook" ev1
t0=$(date +%s.%N)
register_keys ev1 1 12
for ((i = 0; i < 10; i++)); do
    [ "$(wt_sql "SELECT count(*) FROM dataflow.deliveries WHERE subscription = 'badport' AND attempts >= 1")" = 12 ] && break
    sleep 0.1
done
t1=$(echo "$(date +%s.%N) - $t0" | bc)
[ "$i" -lt 10 ] || wt_fail "refused deliveries stalled: after 1 s only $(deliveries badport) (window 4)"
wt_sql "SELECT bool_and(last_error LIKE 'request not sent: %') FROM dataflow.deliveries WHERE subscription = 'badport'" \
    | grep -qx t || wt_fail "refusal not recorded as such: $(wt_sql "SELECT DISTINCT last_error FROM dataflow.deliveries WHERE subscription = 'badport'")"
# (an intermittent failure here in full runs: on timeout, say what the worker was doing)
if ! (wt_wait "the retries of the refused deliveries" 20 \
        "SELECT count(*) = 12 FROM dataflow.deliveries WHERE subscription = 'badport' AND attempts >= 2"); then
    echo "--- diagnostics: deliveries, the worker's activity, due work" >&2
    wt_sql "SELECT string_agg(id || ':' || status || ':' || attempts || ':' || coalesce(next_attempt_at::text, '-'), ' ' ORDER BY id)
              FROM dataflow.delivery" >&2
    wt_sql "SELECT now(), query, state, wait_event FROM pg_stat_activity WHERE backend_type = 'pg_dataflow worker'" >&2
    wt_sql "SELECT dataflow._worker_next_due()" >&2
    echo "--- the worker's trace (tail)" >&2
    grep "pg_dataflow worker: " "$WT_DIR/server.log" | tail -80 >&2
    wt_fail "the retries of the refused deliveries did not come (see above)"
fi
read -r gmin gmax <<<"$(retry_gaps badport)"
hs_between "$gmin" 4.9 7 "shortest gap to the retry of a refused delivery (s)"
hs_between "$gmax" 4.9 7 "longest gap to the retry of a refused delivery (s)"
echo "refused at start: 12 deliveries tried within ${t1}s (window 4), retried after ${gmin}..${gmax}s"
wt_sql "SELECT dataflow.unsubscribe('badport')" >/dev/null

# ---- 2. refused by the address policy ---------------------------------------------------------
dataset ev2
sub policy "http://127.0.0.2:9/hook" ev2
register_keys ev2 1 2
wt_wait "the retries of the deliveries the policy refused" 20 \
    "SELECT count(*) = 2 FROM dataflow.deliveries WHERE subscription = 'policy' AND attempts >= 2"
wt_sql "SELECT bool_and(last_error LIKE '%refused: destination 127.0.0.2%') FROM dataflow.deliveries WHERE subscription = 'policy'" \
    | grep -qx t || wt_fail "policy refusal: $(wt_sql "SELECT DISTINCT last_error FROM dataflow.deliveries WHERE subscription = 'policy'")"
read -r gmin gmax <<<"$(retry_gaps policy)"
hs_between "$gmin" 4.9 7 "shortest gap to the retry of a refused destination (s)"
hs_between "$gmax" 4.9 7 "longest gap to the retry of a refused destination (s)"
echo "refused by the address policy: retried after ${gmin}..${gmax}s"
wt_sql "SELECT dataflow.unsubscribe('policy')" >/dev/null

# ---- 3. one subscription at its share of a window of 6, the others keep going ---------------
wt_sql "ALTER SYSTEM SET dataflow.http_concurrency = 6"; wt_sql "SELECT pg_reload_conf()" >/dev/null; sleep 1
dataset hang_ev; dataset flaky_ev; dataset ok_ev
sub hang "$RX/hang?who=share" hang_ev
sub flaky "$RX/status/500?who=flaky" flaky_ev
sub fine "$RX/ok?who=fine" ok_ev
# One transaction, claimed in this order: 6 for hang (5 sent: its share), then the others.
wt_sql "SELECT count(dataflow.register('hang_ev', k::text)) FROM generate_series(1, 6) k;
        SELECT dataflow.register('flaky_ev', '1'); SELECT count(dataflow.register('ok_ev', k::text)) FROM generate_series(1, 4) k" >/dev/null
wt_wait "the other subscriptions' deliveries while 5 requests hang" 3 \
    "SELECT count(*) = 4 FROM dataflow.deliveries WHERE subscription = 'fine' AND status = 'delivered'"
open=$(hs_eval rx "sum((e['event'] == 'request') - (e['event'] == 'closed') for e in log if e['path'] == '/hang')")
[ "$open" = 5 ] || wt_fail "$open requests hang, want 5 (three quarters of a window of 6, rounded up)"
wt_wait "the retry of the failed delivery while 5 requests hang" 8 \
    "SELECT attempts >= 2 FROM dataflow.deliveries WHERE subscription = 'flaky'"
read -r gmin gmax <<<"$(retry_gaps flaky)"
hs_between "$gmin" 4.9 7 "gap to the retry of the failed delivery while the window is held (s)"
echo "share held (5 of 6 hang): 4 deliveries of another subscription delivered, a failed one retried after ${gmin}s"

[ "$(wt_worker_pid)" != "" ] || wt_fail "the worker is gone"
grep -E "PANIC|TRAP|terminated by signal" "$WT_DIR/server.log" && wt_fail "server log shows a crash"
echo "ok: refused requests do not stall the worker"
