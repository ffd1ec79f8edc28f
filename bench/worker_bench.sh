#!/usr/bin/env bash
# Worker benchmark (issue 4): (a) latency from the commit of dataflow.register()
# to the webhook request arriving at a local receiver, p50/p99 over N events
# sent one transaction at a time; (b) deliveries per second with 64 requests in
# flight, for M events committed at once. Uses a throwaway cluster and the
# stdlib receiver of the integration tests (which is itself the bottleneck for
# (b) well before the worker is).
#   bench/worker_bench.sh [N=1000] [M=5000]
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib.sh
. test/integration/worker_common.bash
N=${1:-1000}; M=${2:-5000}

wt_setup "dataflow.http_concurrency = 64" "dataflow.http_timeout = 30000" "dataflow.naptime = 1000"
wt_start_receiver
wt_sql "SELECT dataflow.subscribe('bench', '$WT_URL/hook/ok')" >/dev/null
wt_sql "SELECT dataflow.create_dataset('lat', 'int')" >/dev/null
wt_sql "SELECT dataflow.create_dataset('thr', 'int')" >/dev/null

# (a) one event per transaction, spaced so that each is measured alone.
for ((i = 1; i <= N; i++)); do
    echo "SELECT dataflow.register('lat', '$i');"
    echo "SELECT pg_sleep(0.005);"
done > "$WT_DIR/lat.sql"
df_as_user psql -X -q -d postgres -f "$WT_DIR/lat.sql" >/dev/null || wt_fail "latency load"
wt_wait "latency deliveries" 120 "SELECT count(*) = $N FROM dataflow.deliveries WHERE dataset = 'lat' AND status = 'delivered'"
# Commit time: the event row's transaction start plus the (measured) statement time is
# within a millisecond of its commit; the receiver stamps arrival on the same clock.
python3 - "$WT_DIR/requests.jsonl" <<'PY'
import datetime, json, sys
lat = []
for line in open(sys.argv[1]):
    r = json.loads(line)
    body = json.loads(r["body"])
    if body["data"]["dataset"] != "lat":
        continue
    at = datetime.datetime.strptime(body["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    lat.append((r["t"] - at.timestamp()) * 1000)
lat.sort()
pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print("(a) commit -> request latency over %d events: p50 %.1f ms, p99 %.1f ms, max %.1f ms"
      % (len(lat), pick(0.50), pick(0.99), lat[-1]))
PY

# (b) M events in one transaction, then time until all are delivered.
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # utime + stime, clock ticks
wpid=$(wt_worker_pid); w0=$(cpu "$wpid"); r0=$(cpu "$WT_RECEIVER_PID")
start=$(date +%s.%N)
wt_sql "SELECT count(dataflow.register('thr', k::text)) FROM generate_series(1, $M) k" >/dev/null
wt_wait "throughput deliveries" 600 "SELECT count(*) = $M FROM dataflow.deliveries WHERE dataset = 'thr' AND status = 'delivered'"
end=$(date +%s.%N)
hz=$(getconf CLK_TCK)
echo "(b) $M deliveries, 64 in flight: $(echo "scale=1; $M / ($end - $start)" | bc) deliveries/s;" \
     "CPU seconds: worker $(echo "scale=2; ($(cpu "$wpid") - $w0) / $hz" | bc)," \
     "receiver $(echo "scale=2; ($(cpu "$WT_RECEIVER_PID") - $r0) / $hz" | bc)," \
     "wall $(echo "scale=2; $end - $start" | bc)"
