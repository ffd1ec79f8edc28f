#!/usr/bin/env bash
# Worker benchmark (issue 6, scenario 2d), on a throwaway cluster with a local receiver:
#   (a) latency from the commit of dataflow.register() to the webhook request arriving,
#       p50/p99/max over N events sent one transaction at a time, 5 ms apart;
#   (b) deliveries per second with 64 requests in flight, for M events committed at once:
#       M / (commit of the register transaction -> the last delivery recorded), plus the
#       receiver-side rate (first -> last request), CPU seconds of the worker and the
#       receiver, and how many cores the whole machine kept busy meanwhile;
#   (c) latency from the commit of dataflow.register() to the http dispatch request of
#       the chunk it made queued, over K chunks registered 10 ms apart (K=0 skips it).
# Latency is request arrival minus the event's transaction start (register call and
# commit included), both read on the machine's wall clock.
#   bench/worker_bench.sh [N=1000] [M=5000] [K=N]
# The receiver is bench/peers/receiver.js (Node's built-in http, keep-alive, timestamps
# kept in memory and written out on SIGUSR2); WORKER_BENCH_RECEIVER=python uses the
# integration tests' stdlib receiver instead, to compare (it appends a log line per request
# and costs about twice the CPU per request). WORKER_BENCH_SQL=FILE runs FILE (psql, as superuser)
# right after CREATE EXTENSION: a way to measure a change of the extension's SQL without
# installing anything.
# bench/run.sh reads the first "p50/p99/max ... ms" (that of (a)) and "in flight: X
# deliveries/s" from this output: keep (a) printed first.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib.sh
. test/integration/worker_common.bash
N=${1:-1000}; M=${2:-5000}; K=${3:-$N}
RECEIVER=${WORKER_BENCH_RECEIVER:-node}

wt_setup "dataflow.http_concurrency = 64" "dataflow.http_timeout = 30000" "dataflow.naptime = 1000"
if [ -n "${WORKER_BENCH_SQL:-}" ]; then
    df_as_user psql -X -q -v ON_ERROR_STOP=1 -d postgres -f "$WORKER_BENCH_SQL" >/dev/null \
        || wt_fail "WORKER_BENCH_SQL=$WORKER_BENCH_SQL failed"
fi

LOG=$WT_DIR/requests.jsonl
if [ "$RECEIVER" = python ]; then
    wt_start_receiver   # appends to $LOG itself
    snapshot() { :; }
else
    command -v node >/dev/null || wt_fail "node is not installed (WORKER_BENCH_RECEIVER=python runs without it)"
    rm -f "$WT_DIR/port"
    node "$ROOT/bench/peers/receiver.js" "$WT_DIR/port" "$LOG" "$WT_DIR/secret" 900 \
        >>"$WT_DIR/receiver.out" 2>&1 &
    WT_RECEIVER_PID=$!   # wt_cleanup stops it
    for ((i = 0; i < 100; i++)); do [ -s "$WT_DIR/port" ] && break; sleep 0.1; done
    [ -s "$WT_DIR/port" ] || wt_fail "receiver did not start: $(cat "$WT_DIR/receiver.out")"
    WT_URL="http://127.0.0.1:$(cat "$WT_DIR/port")"
    # snapshot: the receiver writes every request so far to $LOG (atomically)
    snapshot() {
        rm -f "$LOG"; kill -USR2 "$WT_RECEIVER_PID"
        for ((i = 0; i < 100; i++)); do [ -s "$LOG" ] && return 0; sleep 0.05; done
        wt_fail "receiver did not write $LOG"
    }
fi

wt_sql "SELECT dataflow.subscribe('bench', '$WT_URL/hook/ok', '{lat,thr}')" > "$WT_DIR/secret"
wt_sql "SELECT dataflow.create_dataset('lat', 'int')" >/dev/null
wt_sql "SELECT dataflow.create_dataset('thr', 'int')" >/dev/null

# wait_sql SECONDS SQL: one session polls SQL every 20 ms (a psql per poll would cost
# CPU that the worker needs on a small machine); fails after SECONDS.
wait_sql() {
    df_as_user psql -X -qAt -v ON_ERROR_STOP=1 -d postgres -c "DO \$\$ BEGIN
      FOR i IN 1 .. $1 * 50 LOOP
        IF ($2) THEN RETURN; END IF;
        COMMIT; PERFORM pg_sleep(0.02);
      END LOOP;
      RAISE EXCEPTION 'timed out after $1 s';
    END \$\$" >/dev/null 2>&1
}

# ---- (a) one event per transaction, spaced so that each is measured alone.
for ((i = 1; i <= N; i++)); do
    echo "SELECT dataflow.register('lat', '$i');"
    echo "SELECT pg_sleep(0.005);"
done > "$WT_DIR/lat.sql"
df_as_user psql -X -q -d postgres -f "$WT_DIR/lat.sql" >/dev/null || wt_fail "latency load"
wait_sql 120 "NOT EXISTS (SELECT FROM dataflow.delivery WHERE status = 'pending')" \
    || wt_fail "latency deliveries did not finish"
snapshot
python3 - "$LOG" <<'PY'
import datetime, json, sys
lat, verified = [], None
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "summary" in r:
        verified = r["summary"]
        continue
    if not r["path"].startswith("/hook"):
        continue
    body = json.loads(r["body"])
    if body["data"]["dataset"] != "lat":
        continue
    at = datetime.datetime.strptime(body["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    lat.append((r["t"] - at.timestamp()) * 1000)
lat.sort()
if lat:
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    print("(a) commit -> webhook request latency over %d events: p50 %.1f ms, p99 %.1f ms, max %.1f ms"
          % (len(lat), pick(0.50), pick(0.99), lat[-1]))
if verified and verified.get("unverified"):
    print("    WARNING: %d requests with a bad signature" % verified["unverified"])
PY

# ---- (c) http dispatch: a chunk of an http job becomes queued when its input is registered.
if [ "$K" -gt 0 ]; then
    wt_sql "SELECT dataflow.create_dataset('dsrc', 'int'), dataflow.create_dataset('dout', 'int')" >/dev/null
    wt_sql "SELECT dataflow.create_job('djob', output => 'dout', dispatch => 'http', endpoint => '$WT_URL/dispatch/succeed')" >/dev/null
    wt_sql "SELECT dataflow.add_input('djob', 'dsrc')" >/dev/null
    wt_sql "SELECT dataflow.expect('dout', '1', '$K')" >/dev/null
    for ((i = 1; i <= K; i++)); do
        echo "SELECT dataflow.register('dsrc', '$i');"
        echo "SELECT pg_sleep(0.01);"
    done > "$WT_DIR/dispatch.sql"
    df_as_user psql -X -q -d postgres -f "$WT_DIR/dispatch.sql" >/dev/null || wt_fail "dispatch load"
    wait_sql 60 "(SELECT count(*) FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
                   WHERE d.name = 'dout' AND c.status = 'ready') = $K" || wt_fail "dispatched chunks did not finish"
    # the queued event of each chunk: its transaction start is the register's
    wt_sql "COPY (SELECT e.key, extract(epoch FROM min(e.at)) FROM dataflow.event e JOIN dataflow.dataset d
                   ON d.id = e.dataset_id WHERE d.name = 'dout' AND e.to_status = 'queued' GROUP BY e.key)
            TO STDOUT" > "$WT_DIR/queued.tsv"
    snapshot
    python3 - "$LOG" "$WT_DIR/queued.tsv" <<'PY'
import json, sys
queued = {}
for line in open(sys.argv[2]):
    k, at = line.split("\t")
    queued[k] = float(at)
lat = []
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("path", "").startswith("/dispatch"):
        k = json.loads(r["body"]).get("key")
        if k in queued:
            lat.append((r["t"] - queued.pop(k)) * 1000)
lat.sort()
if lat:
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    print("(c) commit -> http dispatch request latency over %d chunks: p50 %.1f ms, p99 %.1f ms, max %.1f ms"
          % (len(lat), pick(0.50), pick(0.99), lat[-1]))
PY
fi

# ---- (b) M events in one transaction, then time until all are recorded as delivered.
cpu() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }   # utime + stime, clock ticks
busy() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8}' /proc/stat; }  # busy total
wpid=$(wt_worker_pid)
w0=$(cpu "$wpid"); r0=$(cpu "$WT_RECEIVER_PID")
t0=$(date +%s.%N)
# clock_timestamp() at the end of the statement: the commit follows within a millisecond
tc=$(wt_sql "SELECT count(dataflow.register('thr', k::text)), extract(epoch FROM clock_timestamp()) FROM generate_series(1, $M) k" | cut -d'|' -f2)
m0=$(busy)
wait_sql 600 "NOT EXISTS (SELECT FROM dataflow.delivery WHERE status = 'pending')" || wt_fail "throughput deliveries did not finish"
m1=$(busy)
w1=$(cpu "$wpid"); r1=$(cpu "$WT_RECEIVER_PID")
t1=$(date +%s.%N)
n=$(wt_sql "SELECT count(*) FROM dataflow.deliveries WHERE dataset = 'thr' AND status = 'delivered'")
[ "$n" = "$M" ] || wt_fail "$n of $M throughput deliveries delivered"
tf=$(wt_sql "SELECT extract(epoch FROM max(finished_at)) FROM dataflow.delivery")
snapshot
hz=$(getconf CLK_TCK)
cores=$(awk -v a="$m0" -v b="$m1" -v n="$(nproc)" 'BEGIN{split(a, x, " "); split(b, y, " ");
    print (y[2] > x[2]) ? n * (y[1] - x[1]) / (y[2] - x[2]) : 0}')
python3 - "$LOG" "$M" "$t0" "$tc" "$tf" "$t1" "$hz" "$((w1 - w0))" "$((r1 - r0))" "$cores" "$(nproc)" <<'PY'
import json, sys
log, m, t0, tc, tf, t1, hz, w, r, cores, ncpu = sys.argv[1:]
m, t0, tc, tf, t1, hz = int(m), float(t0), float(tc), float(tf), float(t1), int(hz)
ts, summary = [], {}
for line in open(log):
    x = json.loads(line)
    if "summary" in x:
        summary = x["summary"]
    elif x.get("path", "").startswith("/hook") and '"dataset": "thr"' in x["body"]:
        ts.append(x["t"])
ts.sort()
span = ts[-1] - ts[0] if len(ts) > 1 else 0
print("(b) %d deliveries, 64 in flight: %.1f deliveries/s (commit -> last recorded %.3f s); "
      "receiver: %d requests, first -> last %.1f/s, commit -> first %.1f ms; register %.2f s; "
      "CPU seconds: worker %.2f, receiver %.2f; machine busy %.2f of %s cores; wall %.2f s"
      % (m, m / (tf - tc), tf - tc, len(ts), (len(ts) - 1) / span if span else 0, (ts[0] - tc) * 1000,
         tc - t0, int(w) / hz, int(r) / hz, float(cores), ncpu, t1 - t0))
if summary:
    print("    receiver since start: %d requests on %d TCP connections; signatures: %s verified, %s bad"
          % (summary["requests"], summary["connections"], summary["verified"], summary["unverified"]))
    if summary.get("unverified"):
        print("    WARNING: requests with a bad signature")
PY
