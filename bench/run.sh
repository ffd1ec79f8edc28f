#!/usr/bin/env bash
# pg_dataflow against its baselines and peers, in ONE throwaway cluster and one run,
# so every ratio compares figures measured minutes apart on the same machine.
#   bench/run.sh            (make bench runs it)   env: BENCH_JOBS (default 50000), BENCH_OUT (table file),
#                           BENCH_CHANGE_CHUNKS (output chunks of the change scenario, default 100000)
# Each scenario is bounded in count and in time; the cluster is stopped on exit.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib.sh
JOBS=${BENCH_JOBS:-20000}
BUDGET=${BENCH_BUDGET:-570}   # seconds for the whole run: later scenarios shrink their time limit or are skipped
CLIENTS=8
PER=$((JOBS / CLIENTS))
OUT=${BENCH_OUT:-}
T_START=$(date +%s)

tmp=$(df_tmpdir)
cleanup() { df_cluster_stop "$tmp"; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
# Same settings for every system: fsync and synchronous_commit on (defaults), autovacuum on.
df_cluster_start "$tmp" "shared_buffers = '512MB'" "max_wal_size = '4GB'" "max_connections = 200" \
    "dataflow.naptime = 1000" "dataflow.http_allow = '127.0.0.1/32'" \
    "shared_preload_libraries = 'pg_dataflow,pg_stat_statements'" "pg_stat_statements.track = top" || exit 1
export PGDATABASE=postgres
q()  { df_as_user psql -X -q -v ON_ERROR_STOP=1 -At -d "${DB:-postgres}" "$@"; }
pgb() { df_as_user pgbench -n "$@" "${DB:-postgres}"; }
now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN{printf "%.0f", n/(b-a)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "" || b == "" || b == 0) print "-"; else printf "%.2fx", a/b }'; }
tps() { sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | head -1 | awk '{printf "%.0f", $1}'; }
log() { printf '[%4ds] %s\n' $(( $(date +%s) - T_START )) "$*" >&2; }
declare -A R   # results by name
# seconds a scenario may take: what is left of the budget after reserving $1, at most $2
left() { local l=$(( BUDGET - ($(date +%s) - T_START) - $1 )); [ $l -gt $2 ] && l=$2; echo $l; }
# settle: before a latency measurement, flush what the previous scenario left dirty and
# let autovacuum and the disk go quiet, the same for every system measured
settle() { q -c "CHECKPOINT" >/dev/null; sleep 2; }

# ---------------------------------------------------------------- cost windows
# cost_window NAME SCRIPT [pgbench args...]: COST_CYCLES cycles of SCRIPT by ONE client, after a
# CHECKPOINT and a warm-up of 200 cycles (the window's full-page images are those of pages it
# touches first; no checkpoint falls inside it), with autovacuum off cluster-wide (no other
# writer in the window). Per cycle: R[NAME_rec] WAL records, R[NAME_bytes] WAL bytes and
# R[NAME_fpi] full-page images (pg_stat_wal deltas), R[NAME_ms] server time (sum of
# pg_stat_statements total_exec_time of the script's top-level statements, track = top: the
# functions' bodies and triggers included, the commits not). pg_waldump --stats=record of the
# window goes to $tmp/waldump_NAME.txt.
COST_CYCLES=${BENCH_COST_CYCLES:-2000}
autovac() { q -c "ALTER SYSTEM SET autovacuum = $1" -c "SELECT pg_reload_conf()" >/dev/null
            [ "$1" = off ] || return 0
            for _ in $(seq 1 120); do   # the running workers finish their table first
                [ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")" = 0 ] && return 0
                sleep 0.5; done; }
wal_snap() { q -F ' ' -c "SELECT pg_current_wal_insert_lsn(), wal_records, wal_fpi, wal_bytes FROM pg_stat_wal"; }
waldump() { df_as_user pg_waldump -p "$tmp/data/pg_wal" -s "$1" -e "$2" "${@:3}" 2>/dev/null; }
cost_window() {
    local name=$1 script=$2 l0 r0 f0 b0 l1 r1 f1 b1 ms; shift 2
    autovac off
    q -c "CHECKPOINT" >/dev/null
    pgb -c 1 -t 200 "$@" -f "$script" >/dev/null 2>&1
    sleep 1   # a backend flushes its WAL statistics when it exits
    q -c "SELECT pg_stat_statements_reset()" >/dev/null
    read -r l0 r0 f0 b0 <<<"$(wal_snap)"
    pgb -c 1 -t "$COST_CYCLES" "$@" -f "$script" >"$tmp/cost_$name.log" 2>&1
    sleep 1
    read -r l1 r1 f1 b1 <<<"$(wal_snap)"
    ms=$(q -c "SELECT sum(total_exec_time) FROM pg_stat_statements
                WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                  AND toplevel AND query NOT LIKE '%pg_stat%'")
    autovac on
    R[${name}_rec]=$(awk -v a="$r0" -v b="$r1" -v n="$COST_CYCLES" 'BEGIN{printf "%.1f", (b-a)/n}')
    R[${name}_bytes]=$(awk -v a="$b0" -v b="$b1" -v n="$COST_CYCLES" 'BEGIN{printf "%.0f", (b-a)/n}')
    R[${name}_fpi]=$(awk -v a="$f0" -v b="$f1" -v n="$COST_CYCLES" 'BEGIN{printf "%.2f", (b-a)/n}')
    R[${name}_ms]=$(awk -v a="$ms" -v n="$COST_CYCLES" 'BEGIN{printf "%.3f", a/n}')
    waldump "$l0" "$l1" --stats=record | awk 'NR > 2 && $2 > 0' | sort -k2,2nr | head -25 >"$tmp/waldump_$name.txt"
    R[${name}_fpib]=$(awk -v c="$COST_CYCLES" '$1 == "Total" { printf "%.0f", $5 / c }' "$tmp/waldump_$name.txt")
    # and by relation: records per cycle of each (record type, relation), first block reference
    waldump "$l0" "$l1" | sed -n 's/^rmgr: \([A-Za-z0-9]*\) .*desc: \([A-Z_+0-9]*\).*blkref #0: rel [0-9]*\/[0-9]*\/\([0-9]*\).*/\1\/\2 \3/p' \
        | sort | uniq -c | sort -k1,1nr | head -30 | while read -r n t fn; do
            printf '%6.2f  %-22s %s\n' "$(awk -v n="$n" -v c="$COST_CYCLES" 'BEGIN{print n/c}')" "$t" \
                "$(q -c "SELECT coalesce(pg_filenode_relation(0, $fn)::regclass::text, 'filenode $fn')")"
        done >"$tmp/walrel_$name.txt"
}

# ---------------------------------------------------------------- baselines
log "baselines: 1-row UPDATE, INSERT with/without pg_notify, raw SKIP LOCKED queue"
q -f bench/queue_baseline.sql >/dev/null
R[update]=$(pgb -c $CLIENTS -j 2 -T 8 -f bench/pgbench_update.sql 2>/dev/null | tps)
R[insert]=$(pgb -c $CLIENTS -j 2 -T 5 -f bench/pgbench_insert.sql 2>/dev/null | tps)
R[insert_notify]=$(pgb -c $CLIENTS -j 2 -T 5 -f bench/pgbench_insert_notify.sql 2>/dev/null | tps)
raw_queue() { # raw_queue SCRIPT PER_CLIENT_TXNS -> jobs/s
    q -c "TRUNCATE bench_queue" -c "INSERT INTO bench_queue (payload) SELECT '{}' FROM generate_series(1, $JOBS)" -c "VACUUM ANALYZE bench_queue" >/dev/null
    local t0 t1 done
    t0=$(now); pgb -c $CLIENTS -j 2 -t "$2" -f "$1" >/dev/null 2>&1; t1=$(now)
    done=$(q -c "SELECT count(*) FROM bench_queue WHERE status = 'done'")
    rate "$done" "$t0" "$t1"
}
R[raw1]=$(raw_queue bench/pgbench_queue1.sql $PER)
R[raw10]=$(raw_queue bench/pgbench_queue10.sql $((PER / 10 + 1)))
log "cost per cycle: raw queue, 1 job per claim, 1 client, $COST_CYCLES cycles"
q -c "CREATE EXTENSION pg_stat_statements" -c "TRUNCATE bench_queue" \
  -c "INSERT INTO bench_queue (payload) SELECT '{}' FROM generate_series(1, $COST_CYCLES + 400)" -c "VACUUM ANALYZE bench_queue" >/dev/null
cost_window raw bench/pgbench_queue1.sql

# ---------------------------------------------------------------- peers (npm)
node_env() { df_as_user env PGHOST="$PGHOST" PGPORT="$PGPORT" PGUSER=postgres PGDATABASE="$1" "${@:2}"; }
jfield() { python3 -c "import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); v=round(d['$1'], ${2:-0}); print(int(v) if ${2:-0} == 0 else v)" 2>/dev/null; }
if [ -d bench/peers/node_modules/graphile-worker ] && [ -d bench/peers/node_modules/pg-boss ]; then
    for db in gw gwb gwl pb pbl; do q -c "CREATE DATABASE $db" >/dev/null; done
    log "graphile-worker defaults ($JOBS jobs)"
    R[gw]=$(cd bench/peers && node_env gw timeout 300 node graphile.js throughput "$JOBS" | jfield jobs_per_s)
    log "graphile-worker local queue 10 + batched completion"
    R[gwb]=$(cd bench/peers && node_env gwb timeout 300 node graphile.js throughput "$JOBS" batched | jfield jobs_per_s)
    log "graphile-worker enqueue->start latency (1000 jobs, 10 ms apart)"
    settle
    gl=$(cd bench/peers && node_env gwl timeout 120 node graphile.js latency 1000 10)
    R[gw_p50]=$(jfield p50_ms 1 <<<"$gl"); R[gw_p99]=$(jfield p99_ms 1 <<<"$gl")
    log "pg-boss batch 100 ($JOBS jobs)"
    R[pb]=$(cd bench/peers && node_env pb timeout 300 node pgboss.js throughput "$JOBS" | jfield jobs_per_s)
    log "pg-boss batch 100, a full batch fetches again at once ($JOBS jobs)"
    q -c "DROP DATABASE pb WITH (FORCE)" -c "CREATE DATABASE pb" >/dev/null
    R[pbr]=$(cd bench/peers && node_env pb timeout 300 node pgboss.js throughput "$JOBS" refetch | jfield jobs_per_s)
    log "pg-boss send->handler latency (300 jobs, 10 ms apart)"
    settle
    pl=$(cd bench/peers && node_env pbl timeout 60 node pgboss.js latency 300 10)
    R[pb_p50]=$(jfield p50_ms 1 <<<"$pl"); R[pb_p99]=$(jfield p99_ms 1 <<<"$pl")
    for db in gw gwb gwl pb pbl; do q -c "DROP DATABASE $db WITH (FORCE)" >/dev/null; done
else
    log "peers not installed: run (cd bench/peers && npm ci)"
fi

# ---------------------------------------------------------------- 2d: dispatch latency
# The worker runs in the database "postgres": an http job there, a node receiver on 127.0.0.1.
if [ -d bench/peers/node_modules/pg ]; then
    log "pg_dataflow register commit -> http dispatch request (1000 chunks, 10 ms apart)"
    q -c "CREATE EXTENSION pg_dataflow" >/dev/null
    settle
    dl=$(cd bench/peers && node_env postgres timeout 90 node dispatch.js 1000 10)
    R[dp_p50]=$(jfield p50_ms 1 <<<"$dl"); R[dp_p99]=$(jfield p99_ms 1 <<<"$dl"); R[dp_max]=$(jfield max_ms 1 <<<"$dl")
    q -c "DROP EXTENSION pg_dataflow CASCADE" >/dev/null 2>&1
fi

# ---------------------------------------------------------------- 2a + 2e: lease/complete
# A chain src -> a -> b -> c -> d (same mapping): every completion makes the next
# stage's chunk queued. 2a: stage a with max_chunks 1, stage b with max_chunks 10 and
# complete_many() (the batched completion graphile's batched mode also uses);
# stages c and d (max_chunks 10) bring the total to 4 x JOBS cycles for 2e.
log "pg_dataflow: setting up $JOBS-key 5-stage chain"
q -c "CREATE DATABASE df" >/dev/null
DB=df q -c "CREATE EXTENSION pg_dataflow" -c "
SELECT dataflow.create_dataset(d, 'int') FROM unnest('{src,a,b,c,d}'::text[]) d;
SELECT dataflow.create_job('j' || o, output => o), dataflow.add_input('j' || o, i)
  FROM (VALUES ('a','src'), ('b','a'), ('c','b'), ('d','c')) v(o, i);" >/dev/null
t0=$(now); DB=df q -c "SELECT dataflow.expect('d', '1', '$JOBS')" >/dev/null; t1=$(now)
R[expect_chain]=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')
# register the sources 1,000 per transaction
t0=$(now)
DB=df q -c "DO \$\$ BEGIN FOR i IN 0 .. ($JOBS - 1) / 1000 LOOP
  PERFORM dataflow.register('src', g::text) FROM generate_series(i * 1000 + 1, least($JOBS, i * 1000 + 1000)) g;
  COMMIT; END LOOP; END \$\$" >/dev/null
t1=$(now); R[register]=$(rate "$JOBS" "$t0" "$t1")
DB=df q -c "VACUUM ANALYZE" >/dev/null
df_cycle() { # df_cycle JOB SCRIPT PER_CLIENT_TXNS -> jobs/s
    local t0 t1 done
    t0=$(now); DB=df pgb -c $CLIENTS -j 2 -t "$3" -D job="$1" -f "$2" >"$tmp/pgbench_$1.log" 2>&1; t1=$(now)
    done=$(DB=df q -c "SELECT count(*) FROM dataflow.chunk c JOIN dataflow.job j ON j.output_id = c.dataset_id
                        WHERE j.name = '$1' AND c.status = 'ready'")
    rate "$done" "$t0" "$t1"
}
log "pg_dataflow lease+complete, max_chunks 1"
R[df1]=$(df_cycle ja bench/pgbench_df1.sql $PER)
log "pg_dataflow lease+complete, max_chunks 10"
R[df10]=$(df_cycle jb bench/pgbench_df10.sql $((PER / 10 + 1)))
log "pg_dataflow: 2 more stages for the size scenario (max_chunks 10; the first completes each chunk with complete())"
R[dfc]=$(df_cycle jc bench/pgbench_df10_each.sql $((PER / 10 + 1)))   # complete() per chunk
R[dfd]=$(df_cycle jd bench/pgbench_df10.sql $((PER / 10 + 1)))
R[cycles]=$(DB=df q -c "SELECT count(*) FROM dataflow.run WHERE status = 'succeeded'")
DB=df q -F ' ' -c "SELECT c.relname, pg_size_pretty(pg_relation_size(c.oid)) AS heap,
         pg_size_pretty(pg_indexes_size(c.oid)) AS indexes, s.n_live_tup, s.n_dead_tup, s.autovacuum_count
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_stat_user_tables s ON s.relid = c.oid
   WHERE n.nspname = 'dataflow' AND c.relkind = 'r' AND pg_total_relation_size(c.oid) > 65536
   ORDER BY pg_total_relation_size(c.oid) DESC" >"$tmp/sizes.txt"
R[size_total]=$(DB=df q -c "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_class c
                             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'dataflow' AND c.relkind = 'r'")
R[size_per_cycle]=$(DB=df q -c "SELECT round(sum(pg_total_relation_size(c.oid)) / ${R[cycles]:-1}.0) FROM pg_class c
                             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'dataflow' AND c.relkind = 'r'")

# ---------------------------------------------------------------- cost per single-chunk cycle
# In the same database, after the 2e cycles (tables at their size): a job jk with its own
# sources and, like 2a's stage a, one consumer (jk2, same mapping), so that every complete()
# also makes the consumer's chunk queued; leased + completed by one client (pgbench_df1.sql),
# as cost_window above.
log "cost per cycle: pg_dataflow max_chunks 1, 1 client, $COST_CYCLES cycles; heartbeats"
NK=$((COST_CYCLES + 200 + 100))
DB=df q -c "CREATE EXTENSION pg_stat_statements" -c "
SELECT dataflow.create_dataset(d, 'int') FROM unnest('{ksrc,k,k2}'::text[]) d;
SELECT dataflow.create_job('jk', output => 'k'), dataflow.add_input('jk', 'ksrc');
SELECT dataflow.create_job('jk2', output => 'k2'), dataflow.add_input('jk2', 'k');
SELECT count(*) FROM dataflow.expect('k2', '1', '$NK');" >/dev/null
DB=df q -c "DO \$\$ BEGIN FOR i IN 0 .. ($NK - 1) / 1000 LOOP
  PERFORM dataflow.register('ksrc', g::text) FROM generate_series(i * 1000 + 1, least($NK, i * 1000 + 1000)) g;
  COMMIT; END LOOP; END \$\$" -c "VACUUM ANALYZE" >/dev/null
DB=df cost_window df1 bench/pgbench_df1.sql -D job=jk
# Heartbeats: 20 leased runs, 5 heartbeats each, one transaction per heartbeat as a worker
# sends them, autovacuum off. Index entries written: the Btree insert records pg_waldump finds
# in that window; and, per transaction, dataflow.run's HOT updates among its updates
# (pg_stat_get_xact_tuples_*, differences inside the transaction: the backend's pending
# counts may still hold earlier transactions'; kept in a temp table, which writes no WAL).
DB=df q -c "SELECT token FROM dataflow.lease('jk', 'hb', 20)" >"$tmp/hb_tokens"
R[hb_n]=$(( $(wc -l <"$tmp/hb_tokens") * 5 ))
hx="pg_stat_get_xact_tuples_hot_updated('dataflow.run'::regclass)"; ux="pg_stat_get_xact_tuples_updated('dataflow.run'::regclass)"
{ echo "CREATE TEMP TABLE hbc (h bigint, u bigint);"
  echo 'SELECT pg_current_wal_insert_lsn() AS l0 \gset'
  for _ in 1 2 3 4 5; do while read -r t; do
      printf '%s\n' "BEGIN;" "SELECT $hx AS h0, $ux AS u0 \\gset" "SELECT dataflow.heartbeat('$t');" \
                    "INSERT INTO hbc SELECT $hx - :h0, $ux - :u0;" "COMMIT;"
  done <"$tmp/hb_tokens"; done
  echo "SELECT :'l0', pg_current_wal_insert_lsn(), sum(h), sum(u) FROM hbc;"; } >"$tmp/hb.sql"
autovac off
read -r l0 l1 hh hu <<<"$(DB=df q -F ' ' -f "$tmp/hb.sql" | tail -1)"
autovac on
R[hb_hot]="$hh/$hu"
waldump "$l0" "$l1" >"$tmp/waldump_hb.txt"
# counted only if the window holds the heartbeats' own heap updates (an empty dump is no zero)
if [ "$(grep -c 'rmgr: Heap .*desc: \(HOT_\)\?UPDATE' "$tmp/waldump_hb.txt")" -ge "${R[hb_n]}" ]; then
    R[hb_btree]=$(grep -c 'rmgr: Btree .*desc: INSERT' "$tmp/waldump_hb.txt")
fi
R[hb_idx]=$(awk -v b="${R[hb_btree]:-}" -v n="${R[hb_n]:-0}" 'BEGIN{ if (b == "" || n == 0) print ""; else printf "%.2f", b/n }')
q -c "DROP DATABASE df WITH (FORCE)" >/dev/null

# ---------------------------------------------------------------- 2b: propagation
# up1 -> f1 (same: fan-out 1), up24 -> f24 (window -23..0: fan-out 24). Time of
# complete() of one upstream chunk (server side, one transaction each, median of 200),
# at ~10k chunks and after adding ~1M more chunks (a 2-stage filler flow).
log "propagation at 10k and 1M chunks"
q -c "CREATE DATABASE prop" >/dev/null
K=1600
DB=prop q -c "CREATE EXTENSION pg_dataflow" -c "
SELECT dataflow.create_dataset(d, 'int') FROM unnest('{s1,up1,f1,s24,up24,f24,fill_src,fill}'::text[]) d;
SELECT dataflow.create_job('jup1', output => 'up1'), dataflow.add_input('jup1', 's1');
SELECT dataflow.create_job('jf1', output => 'f1'), dataflow.add_input('jf1', 'up1');
SELECT dataflow.create_job('jup24', output => 'up24'), dataflow.add_input('jup24', 's24');
SELECT dataflow.create_job('jf24', output => 'f24'), dataflow.add_input('jf24', 'up24', mapping => 'window', lo => -23, hi => 0);
SELECT dataflow.create_job('jfill', output => 'fill'), dataflow.add_input('jfill', 'fill_src');
SELECT dataflow.expect('f1', '1', '$K'), dataflow.expect('f24', '24', '$((K + 23))');" >/dev/null
DB=prop q -c "DO \$\$ BEGIN FOR i IN 0 .. $((K + 23)) / 500 LOOP
  PERFORM dataflow.register('s1', g::text) FROM generate_series(i * 500 + 1, least($K, i * 500 + 500)) g;
  PERFORM dataflow.register('s24', g::text) FROM generate_series(i * 500 + 1, least($((K + 23)), i * 500 + 500)) g;
  COMMIT; END LOOP; END \$\$" >/dev/null
prop_ms() { # prop_ms JOB -> "median p90" of complete() in ms over 200 leases
    DB=prop q -c "VACUUM ANALYZE" >/dev/null
    DB=prop q 2>&1 -c "DO \$\$ DECLARE t uuid; t0 timestamptz; d double precision[] := '{}'; BEGIN
      FOR i IN 1 .. 200 LOOP
        SELECT token INTO t FROM dataflow.lease('$1', 'bench'); COMMIT;
        EXIT WHEN t IS NULL;
        t0 := clock_timestamp(); PERFORM dataflow.complete(t);
        d := d || extract(epoch FROM clock_timestamp() - t0)::double precision * 1000; COMMIT;
      END LOOP;
      RAISE NOTICE 'RESULT % %', (SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY x)::numeric, 3) FROM unnest(d) x),
                                (SELECT round(percentile_cont(0.9) WITHIN GROUP (ORDER BY x)::numeric, 3) FROM unnest(d) x);
    END \$\$" | sed -n 's/.*RESULT //p'
}
R[chunks_small]=$(DB=prop q -c "SELECT count(*) FROM dataflow.chunk")
read -r R[p1_10k] R[p1_10k_p90] <<<"$(prop_ms jup1)"
read -r R[p24_10k] R[p24_10k_p90] <<<"$(prop_ms jup24)"
# ~1M more chunks: fill_src ready, fill waiting on it, one dep edge each (bulk SQL, not a scenario).
DB=prop q -c "
INSERT INTO dataflow.chunk (dataset_id, key, ord, status, available_at, location)
SELECT (SELECT id FROM dataflow.dataset WHERE name = 'fill_src'), g::text, g, 'ready', now(), 's3://fill/' || g FROM generate_series(1, 500000) g;
INSERT INTO dataflow.chunk (dataset_id, key, ord, status, unmet)
SELECT (SELECT id FROM dataflow.dataset WHERE name = 'fill'), g::text, g, 'waiting', 1 FROM generate_series(1, 500000) g;
INSERT INTO dataflow.dep (input, consumer, need)
SELECT s.id, f.id, 1 FROM dataflow.chunk s JOIN dataflow.chunk f ON f.key = s.key
 WHERE s.dataset_id = (SELECT id FROM dataflow.dataset WHERE name = 'fill_src')
   AND f.dataset_id = (SELECT id FROM dataflow.dataset WHERE name = 'fill');" >/dev/null
R[chunks_big]=$(DB=prop q -c "SELECT count(*) FROM dataflow.chunk")
read -r R[p1_1m] R[p1_1m_p90] <<<"$(prop_ms jup1)"
read -r R[p24_1m] R[p24_1m_p90] <<<"$(prop_ms jup24)"
q -c "DROP DATABASE prop WITH (FORCE)" >/dev/null

# ---------------------------------------------------------------- change of a live flow
# bench/change_flow.sh in this cluster (database cf): alter_input of a flow of
# BENCH_CHANGE_CHUNKS output chunks, against a plain set-based INSERT ... SELECT (and
# DELETE) of the same edge rows into a table shaped like dataflow.dep, in the same database.
CF_N=${BENCH_CHANGE_CHUNKS:-100000}
lim=$(left 300 180)
log "change of a live flow of $CF_N output chunks (bench/change_flow.sh, $lim s limit)"
if [ "$lim" -ge 30 ]; then
    cout=$(CHANGE_FLOW_DB=cf CHANGE_FLOW_CHUNKS=$CF_N timeout "$lim" bash bench/change_flow.sh 2>&1); crc=$?
else cout=""; crc=124; fi
cf() { sed -n "s/^$1 *\([0-9.]*\)\( s\)\{0,1\}\$/\1/p" <<<"$cout" | head -1; }
R[cf_chunks]=$(sed -n 's/^change of a flow of \([0-9]*\) output chunks.*/\1/p' <<<"$cout")
R[cf_add]=$(cf 'add_input (new input, placeholders + edges)')
R[cf_widen]=$(cf 'alter_input same -> window -6..0 (+6 edges each)')
R[cf_narrow]=$(cf 'alter_input window -6..0 -> -2..0 (-4 edges each)')
R[cf_drop]=$(cf 'drop_input')
R[cf_unmet]=$(cf 'unmet mismatches after (0 expected)')
R[cf_rows]=$(cf 'baseline edge rows (6 per output chunk)')
R[cf_base_ins]=$(cf 'baseline: plain INSERT ... SELECT of those edge rows')
R[cf_base_del]=$(cf 'baseline: plain DELETE of 4 edge rows per output chunk')
[ $crc -eq 0 ] || R[cf_note]="change_flow.sh exit $crc (124: stopped at its $lim s limit or skipped by the ${BUDGET} s budget): $(tail -1 <<<"$cout" | cut -c1-150)"
df_cluster_stop "$tmp"

# ---------------------------------------------------------------- 2c: 1M expect + views
lim=$(left 40 240)
log "1M-chunk expect and views (bench/views_1m.sh, $lim s limit)"
if [ "$lim" -ge 60 ]; then vout=$(timeout "$lim" bash bench/views_1m.sh 2>&1); vrc=$?; else vout=""; vrc=124; fi
R[expect_1m]=$(sed -n 's/^expect() of the backfill *\([0-9.]*\) s$/\1/p' <<<"$vout")
R[chunks_1m]=$(sed -n 's/^chunks created by one expect() *\([0-9]*\)$/\1/p' <<<"$vout")
for v in datasets jobs progress gaps deletable; do
    R[view_$v]=$(sed -n "s/^view dataflow.$v *\([0-9.]*\) ms$/\1/p" <<<"$vout")
done
[ $vrc -eq 0 ] || R[views_note]="views_1m.sh exit $vrc (124: stopped at its $lim s limit or skipped by the ${BUDGET} s budget)"

# ---------------------------------------------------------------- 2d: background worker
lim=$(left 5 150)
log "background worker: bench/worker_bench.sh ($lim s limit)"
if [ -f bench/worker_bench.sh ] && [ "$lim" -ge 20 ]; then
    wout=$(timeout "$lim" bash bench/worker_bench.sh 1000 5000 2>&1); wrc=$?
    R[wk_p50]=$(sed -n 's/.*p50 \([0-9.]*\) ms.*/\1/p' <<<"$wout" | head -1)
    R[wk_p99]=$(sed -n 's/.*p99 \([0-9.]*\) ms.*/\1/p' <<<"$wout" | head -1)
    R[wk_max]=$(sed -n 's/.*max \([0-9.]*\) ms.*/\1/p' <<<"$wout" | head -1)
    R[wk_dps]=$(sed -n 's/.*in flight: \([0-9.]*\) deliveries\/s.*/\1/p' <<<"$wout" | head -1)
    [ $wrc -eq 0 ] || R[wk_note]="worker_bench.sh exit $wrc: $(tail -2 <<<"$wout" | tr '\n' ' ' | cut -c1-150)"
fi

# ---------------------------------------------------------------- table
v() { local x=${R[$1]:-}; [ -n "$x" ] && echo "$x" || echo "not measured"; }
target() { # target VALUE OP LIMIT -> holds/FAILS
    awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN{ if (a == "" || b == "") { print "?"; exit }
      ok = (op == ">=") ? (a >= b) : (a <= b); print ok ? "holds" : "FAILS" }'
}
r_df1_raw=$(ratio "${R[df1]:-}" "${R[raw1]:-}"); r_df1_gw=$(ratio "${R[df1]:-}" "${R[gw]:-}")
r_df10_raw=$(ratio "${R[df10]:-}" "${R[raw10]:-}"); r_df10_gwb=$(ratio "${R[df10]:-}" "${R[gwb]:-}")
hb_target() { # 0 index entries in the waldump window, and every update of the one transaction HOT
    awk -v i="${R[hb_idx]:-}" -v hu="${R[hb_hot]:-}" 'BEGIN{ n = split(hu, p, "/"); if (i == "" || n != 2) { print "?"; exit }
      print (i + 0 == 0 && p[1] == p[2]) ? "holds" : "FAILS" }'
}
r_p1=$(ratio "${R[p1_1m]:-}" "${R[p1_10k]:-}"); r_p24=$(ratio "${R[p24_1m]:-}" "${R[p24_10k]:-}")
{
echo "pg_dataflow benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, PostgreSQL $(q -c 'SHOW server_version' 2>/dev/null || $PG_BINDIR/postgres --version | awk '{print $3}'),"
echo "one throwaway cluster, fsync on, synchronous_commit on, $CLIENTS clients, $JOBS jobs per queue scenario"
echo
echo "| scenario | figure | ratio | target |"
echo "|---|---|---|---|"
echo "| 1-row UPDATE per transaction (physical limit) | $(v update) txn/s | 1.00x | |"
echo "| 1-row INSERT without / with pg_notify trigger | $(v insert) / $(v insert_notify) txn/s | $(ratio "${R[insert]:-}" "${R[insert_notify]:-}") faster without | no NOTIFY on lease/complete: holds (none in the SQL) |"
echo "| raw SKIP LOCKED queue, 1 job per claim (2 txn/job) | $(v raw1) jobs/s | $(ratio "${R[raw1]:-}" "${R[update]:-}") of UPDATE limit | |"
echo "| raw SKIP LOCKED queue, 10 jobs per claim | $(v raw10) jobs/s | | |"
echo "| graphile-worker 0.17, defaults, concurrency 8 | $(v gw) jobs/s | | |"
echo "| graphile-worker, local queue 10 + batched completion | $(v gwb) jobs/s | | |"
echo "| graphile-worker enqueue->start latency (1000 jobs) | p50 $(v gw_p50) ms, p99 $(v gw_p99) ms | | |"
echo "| pg-boss 10, work() batch 100, 0.5 s polling, 8 workers | $(v pb) jobs/s | | |"
echo "| pg-boss, batch 100, a full batch fetches again at once (notifyWorker), 8 workers | $(v pbr) jobs/s | $(ratio "${R[pbr]:-}" "${R[pb]:-}") of batch 100 polling | |"
echo "| pg-boss send->handler latency (300 jobs) | p50 $(v pb_p50) ms, p99 $(v pb_p99) ms | | |"
echo "| **2a** pg_dataflow lease+complete, max_chunks 1 | $(v df1) chunks/s | $r_df1_raw of raw-1, $r_df1_gw of graphile | >=0.8x raw: $(target "${r_df1_raw%x}" '>=' 0.8); >=1.2x graphile: $(target "${r_df1_gw%x}" '>=' 1.2) |"
echo "| **2a** pg_dataflow lease+complete, max_chunks 10 | $(v df10) chunks/s | $r_df10_raw of raw-10, $r_df10_gwb of graphile batched | >=0.6x raw: $(target "${r_df10_raw%x}" '>=' 0.6); >=1.3x graphile: $(target "${r_df10_gwb%x}" '>=' 1.3) |"
echo "| **cost** WAL per single-chunk cycle (pg_stat_wal, 1 client, $COST_CYCLES cycles) | $(v df1_rec) records, $(v df1_bytes) bytes ($(v df1_fpi) FPIs, $(v df1_fpib) bytes of them) | raw-1: $(v raw_rec) records, $(v raw_bytes) bytes ($(v raw_fpi) FPIs, $(v raw_fpib) bytes) | <=16 records: $(target "${R[df1_rec]:-}" '<=' 16); <=1600 bytes: $(target "${R[df1_bytes]:-}" '<=' 1600) |"
echo "| **cost** server time per single-chunk cycle (pg_stat_statements exec time of lease + complete, track = top) | $(v df1_ms) ms | raw-1: $(v raw_ms) ms | <=0.25 ms: $(target "${R[df1_ms]:-}" '<=' 0.25) |"
echo "| **cost** index entries written per heartbeat (pg_waldump Btree inserts, $(v hb_n) heartbeats, 1 txn each) | $(v hb_idx) ($(v hb_btree) in all); HOT updates of dataflow.run: $(v hb_hot) | | 0: $(hb_target) |"
echo "| **2a** (info) max_chunks 10, each chunk completed by its own complete() call | $(v dfc) chunks/s | $(ratio "${R[dfc]:-}" "${R[gwb]:-}") of graphile batched | |"
echo "| **2b** complete() with fan-out 1, $(v chunks_small) vs $(v chunks_big) chunks (median) | $(v p1_10k) ms vs $(v p1_1m) ms | $r_p1 | <=1.3x: $(target "${r_p1%x}" '<=' 1.3) |"
echo "| **2b** complete() with fan-out 24, $(v chunks_small) vs $(v chunks_big) chunks (median) | $(v p24_10k) ms vs $(v p24_1m) ms | $r_p24 | <=1.3x: $(target "${r_p24%x}" '<=' 1.3) |"
echo "| **change** alter_input of a $(v cf_chunks)-chunk flow, same -> window -6..0 ($(v cf_rows) edges inserted, one transaction) | $(v cf_widen) s | $(ratio "${R[cf_widen]:-}" "${R[cf_base_ins]:-}") of a plain INSERT ... SELECT of those edge rows ($(v cf_base_ins) s) | <60 s: $(target "${R[cf_widen]:-}" '<=' 60) |"
echo "| **change** alter_input, window -6..0 -> -2..0 (4 edges per chunk deleted) | $(v cf_narrow) s | $(ratio "${R[cf_narrow]:-}" "${R[cf_base_del]:-}") of a plain DELETE of those edge rows ($(v cf_base_del) s) | <60 s: $(target "${R[cf_narrow]:-}" '<=' 60) |"
echo "| **change** (info) add_input of an input with no chunks (placeholders + edges) / drop_input; unmet mismatches after | $(v cf_add) s / $(v cf_drop) s; $(v cf_unmet) | | 0 mismatches: $(target "${R[cf_unmet]:-}" '<=' 0) |"
[ -n "${R[cf_note]:-}" ] && echo "| **change** note | ${R[cf_note]} | | |"
echo "| **2c** expect() of a $(v chunks_1m)-chunk 3-stage backfill | $(v expect_1m) s | | <60 s: $(target "${R[expect_1m]:-}" '<=' 60) |"
for vw in datasets jobs progress; do
echo "| **2c** view dataflow.$vw at that size | $(v view_$vw) ms | | <50 ms: $(target "${R[view_$vw]:-}" '<=' 50) |"
done
for vw in gaps deletable; do
echo "| **2c** view dataflow.$vw at that size | $(v view_$vw) ms | | |"
done
[ -n "${R[views_note]:-}" ] && echo "| **2c** note | ${R[views_note]} | | |"
echo "| **2d** register commit -> webhook request (worker, 1000 events) | p50 $(v wk_p50) ms, p99 $(v wk_p99) ms, max $(v wk_max) ms | p99 $(ratio "${R[wk_p99]:-}" "${R[gw_p99]:-}") of graphile p99 | <=1x graphile p99: $(target "$(ratio "${R[wk_p99]:-}" "${R[gw_p99]:-}" | tr -d x)" '<=' 1) |"
echo "| **2d** register commit -> http dispatch request (worker, 1000 chunks, 10 ms apart) | p50 $(v dp_p50) ms, p99 $(v dp_p99) ms, max $(v dp_max) ms | p99 $(ratio "${R[dp_p99]:-}" "${R[gw_p99]:-}") of graphile p99 | <=1x graphile p99: $(target "$(ratio "${R[dp_p99]:-}" "${R[gw_p99]:-}" | tr -d x)" '<=' 1) |"
echo "| **2d** webhook deliveries/s, 64 in flight | $(v wk_dps) /s | | >=2000/s: $(target "${R[wk_dps]:-}" '>=' 2000) |"
[ -n "${R[wk_note]:-}" ] && echo "| **2d** note | ${R[wk_note]} | | |"
echo "| **2e** after $(v cycles) lease/complete cycles, autovacuum on | $(v size_total) in dataflow tables, $(v size_per_cycle) bytes/cycle | | |"
echo "| setup: expect() of the 5-stage chain ($((JOBS * 5)) chunks) | $(v expect_chain) s | | |"
echo "| setup: register() of sources, 1,000 per transaction | $(v register) /s | | |"
echo
echo "cost windows, pg_waldump --stats=record (type, records, %, record bytes, %, FPI bytes, %, combined, %):"
for w in raw df1; do echo "  $w ($COST_CYCLES cycles):"; sed 's/^/    /' "$tmp/waldump_$w.txt" 2>/dev/null; done
echo
echo "cost windows, WAL records per cycle by record type and relation (pg_waldump, first block reference):"
for w in raw df1; do echo "  $w:"; sed 's/^/    /' "$tmp/walrel_$w.txt" 2>/dev/null; done
echo
echo "2e sizes (table heap indexes live dead autovacuums):"
sed 's/^/    /' "$tmp/sizes.txt" 2>/dev/null
echo
echo "total bench time: $(( $(date +%s) - T_START )) s"
} | tee ${OUT:+"$OUT"}
