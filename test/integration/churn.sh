#!/usr/bin/env bash
# Churn and bloat (issue 7, item 8).
# 1,000 chunks recycled at a steady rate: a producer resubmits the oldest ready
# chunks (RATE per second; each resubmit is a new version to produce) and
# prunes history older than 30 s every 5 s; 3 consumers lease and complete in
# separate transactions, timing every lease (chaos/churn.sql). For the middle
# third of the run a session holds a snapshot open (REPEATABLE READ, idle in
# transaction), so vacuum can remove nothing. Reported: p50/p99/max lease time
# before/during/after, the queued backlog and the dataflow tables' total size
# (heap + indexes + toast) at intervals, and how long the backlog takes to
# drain. Pass: p99 lease time in each phase under CHURN_P99_MS; consumers
# produce >= 90% of what the producer offered; the backlog is back under 2 s of
# work within a sixth of the run after the snapshot ends and empty at the end;
# total size grows < CHURN_GROWTH_PCT % over the last third.
# Short form (default, CI): 60 s. Full (DF_FULL=1): CHURN_SECONDS, default
# 600 (make chaos; 1800 for the 30-minute form).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. scripts/lib.sh
. test/integration/chaos/lib.bash

mode=$(rt_mode)
if [ "$mode" = full ]; then d_def=600; else d_def=60; fi
D=${CHURN_SECONDS:-$d_def}
RATE=${CHURN_RATE:-60}
CONSUMERS=3
K=1000
P99_LIMIT=${CHURN_P99_MS:-250}
GROWTH_LIMIT=${CHURN_GROWTH_PCT:-20}
third=$((D / 3))
echo "churn ($mode): ${D}s at $RATE chunks/s over $K chunks, $CONSUMERS consumers, snapshot held ${third}s..$((2 * third))s"

rt_setup "dataflow.enabled = off" "autovacuum_naptime = 5s" "log_autovacuum_min_duration = -1"
rt_psql -v ON_ERROR_STOP=1 -f - <test/integration/chaos/churn.sql >/dev/null || { echo "FAIL: churn.sql"; exit 1; }
rt_sql "
SELECT dataflow.create_dataset('src', 'int'), dataflow.create_dataset('out', 'int');
SELECT dataflow.create_job('j', output => 'out', lease_for => '1 minute', backoff_min => '0', backoff_max => '0');
SELECT dataflow.add_input('j', 'src');
SELECT dataflow.expect('out', '1', '$K');
SELECT count(dataflow.register('src', g::text)) FROM generate_series(1, $K) g;
SELECT count(dataflow.complete(t.token)) FROM dataflow.lease('j', 'setup', 1000) t;" >/dev/null
rt_sql "VACUUM ANALYZE" >/dev/null

# Consumers: psql sessions fed by a generator; \timing gives each statement's
# round trip, the marker L tags the lease's, C the complete's, and a server
# timestamp every 50 iterations places them in time.
consumer() { # NAME SECONDS
    local i end=$(($(date +%s) + $2))
    echo '\timing on'
    for ((i = 0; i < 100000000; i++)); do
        if ((i % 50 == 0)); then
            [ "$(date +%s)" -ge "$end" ] && break
            echo "SELECT 'T', extract(epoch FROM clock_timestamp());"
        fi
        echo '\echo L'
        echo "SELECT count(*) > 0 AS got, max(token::text) AS tok FROM dataflow.lease('j', '$1') \\gset"
        echo '\if :got'
        echo '\echo C'
        echo "SELECT dataflow.complete(:'tok', 1, 'ck');"
        echo '\else'
        echo 'SELECT pg_sleep(0.01);'
        echo '\endif'
    done
}
# Producer: every 0.1 s resubmit the RATE/10 oldest ready chunks (one
# statement, one transaction); every 5 s prune history older than 30 s. psql
# paces itself (pg_sleep until the next tick) and statements past the end do
# nothing, so a generator running ahead of a slow session cannot overrun.
producer() { # RATE START_EPOCH END_EPOCH
    local i n=$(($1 / 10 > 0 ? $1 / 10 : 1)) ticks
    ticks=$(awk -v a="$2" -v b="$3" 'BEGIN { printf "%d", (b - a) * 10 }')
    for ((i = 0; i < ticks; i++)); do
        echo "SELECT pg_sleep(greatest(0, $2 + $i * 0.1 - extract(epoch FROM clock_timestamp())));"
        echo "SELECT 'N', count(*) FROM (SELECT c.key FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
               WHERE d.name = 'out' AND c.status = 'ready' AND clock_timestamp() < to_timestamp($3)
               ORDER BY c.updated_at LIMIT $n) k, LATERAL dataflow.resubmit('out', k.key) r;"
        ((i % 50 == 49)) && echo "SELECT dataflow.prune('30 seconds');"
    done
}
t0=$(rt_sql "SELECT extract(epoch FROM clock_timestamp())")
for ((i = 0; i < CONSUMERS; i++)); do
    rt_bg bash -c "$(declare -f consumer df_as_user); PG_BINDIR='$PG_BINDIR' DF_USER='$DF_USER'; \
        consumer c$i $D | df_as_user psql -X -q -At -d postgres" >"$RT_DIR/c$i.out" 2>"$RT_DIR/c$i.err"
    cons[$i]=$RT_BG_PID
done
rt_bg bash -c "$(declare -f producer df_as_user); PG_BINDIR='$PG_BINDIR' DF_USER='$DF_USER'; \
    producer $RATE $t0 $(awk -v a="$t0" -v d="$D" 'BEGIN { printf "%.3f", a + d }') \
    | df_as_user psql -X -q -At -d postgres" >"$RT_DIR/producer.out" 2>"$RT_DIR/producer.err"
prod=$RT_BG_PID

step=$(awk -v d="$D" 'BEGIN { s = d / 30; if (s < 1) s = 1; printf "%.1f", s }')
snap_started=0; snap_ended=0; t_release=
while :; do
    el=$(awk -v t0="$t0" -v now="$(date +%s.%N)" 'BEGIN { printf "%d", now - t0 }')
    [ "$el" -ge "$D" ] && break
    if [ $snap_started = 0 ] && [ "$el" -ge "$third" ]; then
        snap_started=1
        hold=$third
        rt_bg bash -c "$(declare -f df_as_user); PG_BINDIR='$PG_BINDIR' DF_USER='$DF_USER'; \
            { echo 'BEGIN ISOLATION LEVEL REPEATABLE READ;'; echo 'SELECT 1;'; sleep $hold; echo 'COMMIT;'; } \
            | df_as_user psql -X -q -d postgres >/dev/null"
        snap=$RT_BG_PID
        echo "snapshot held from ${el}s"
    fi
    if [ $snap_started = 1 ] && [ $snap_ended = 0 ] && ! kill -0 "$snap" 2>/dev/null; then
        snap_ended=1; t_release=$(rt_sql "SELECT extract(epoch FROM clock_timestamp())"); echo "snapshot released at ${el}s"
    fi
    rt_sql "CALL churn.sample()" >/dev/null
    sleep "$step"
done
for p in "${cons[@]}" "$prod"; do
    for ((i = 0; i < 120; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
done
[ -z "$t_release" ] && t_release=$(rt_sql "SELECT extract(epoch FROM clock_timestamp())")
rt_sql "CALL churn.sample()" >/dev/null
for ((i = 0; i < CONSUMERS; i++)); do
    awk -v w="c$i" '/^T\|/ { split($0, a, "|"); now = a[2] } /^L$/ { m = "L" } /^C$/ { m = "C" }
                   /^Time: / { if (m == "L" && now != "") print w "\t" now "\t" $2; if (m == "C") nc++; m = "" }
                   END { print nc + 0 > "/dev/stderr" }' "$RT_DIR/c$i.out" 2>>"$RT_DIR/completed" >"$RT_DIR/lat$i.tsv"
    rt_psql -c "\copy churn.lat (worker, at_epoch, ms) FROM pstdin" <"$RT_DIR/lat$i.tsv" >/dev/null
done
# Final drain: lease and complete what is still queued (bounded).
drain_start=$(date +%s.%N)
for ((i = 0; i < 60; i++)); do
    left=$(rt_sql "SELECT count(dataflow.complete(t.token)) FROM dataflow.lease('j', 'drain', 1000) t;
                   SELECT count(*) FROM dataflow.chunk WHERE status IN ('queued', 'running')" | tail -1)
    [ "$left" -eq 0 ] && break
    sleep 0.5
done
drain_s=$(awk -v a="$drain_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

# ---- figures and checks ---------------------------------------------------
rt_sql "
SELECT rpad(phase, 9) || ': ' || count(*) || ' lease calls (' || round(count(*) / $third.0) || '/s), p50 ' || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2)
       || ' ms, p99 ' || round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2)
       || ' ms, max ' || round(max(ms)::numeric, 1) || ' ms'
  FROM (SELECT CASE WHEN at < to_timestamp($t0 + $third) THEN '1 before' WHEN at < to_timestamp($t0 + 2 * $third)
                    THEN '2 during' ELSE '3 after' END AS phase, ms FROM churn.lat) x
 GROUP BY phase ORDER BY phase"
echo "samples (s: queued backlog, total size of dataflow tables; biggest: chunk/event/run):"
rt_sql "
SELECT round(extract(epoch FROM at) - $t0) || 's: backlog ' || backlog || ', '
       || pg_size_pretty(bytes) || ' (chunk ' || pg_size_pretty((detail -> 'chunk' ->> 'bytes')::bigint)
       || ', event ' || pg_size_pretty((detail -> 'event' ->> 'bytes')::bigint)
       || ', run ' || pg_size_pretty((detail -> 'run' ->> 'bytes')::bigint)
       || '; dead tuples chunk ' || (detail -> 'chunk' ->> 'dead') || ')'
  FROM (SELECT *, row_number() OVER (ORDER BY at) AS rn, count(*) OVER () AS n FROM churn.sample) s
 WHERE rn % greatest(n / 10, 1) = 0 OR rn = n OR rn = 1 ORDER BY at" | sed 's/^/  /'

for ph in "1 before" "2 during" "3 after"; do
    p99=$(rt_sql "SELECT round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2) FROM churn.lat
                   WHERE CASE WHEN at < to_timestamp($t0 + $third) THEN '1 before' WHEN at < to_timestamp($t0 + 2 * $third)
                              THEN '2 during' ELSE '3 after' END = '$ph'")
    rt_le "p99 lease time ${ph#* }" "$p99" "$P99_LIMIT" " ms"
done
done_n=$(awk '{ s += $1 } END { print s + 0 }' "$RT_DIR/completed")
# The producer prints N|<chunks resubmitted> for each tick: the work actually offered.
offered=$(awk -F'|' '$1 == "N" { s += $2 } END { print s + 0 }' "$RT_DIR/producer.out")
rt_check "consumers keep up" "$([ "$done_n" -ge $((offered * 9 / 10)) ] && echo 0 || echo 1)" \
    "$done_n chunks produced of $offered offered ($(awk -v o="$offered" -v d="$D" 'BEGIN { printf "%.1f", o / d }')/s, nominal $RATE/s; >= 90%)"
# Backlog after the snapshot ends: back under 2 s of work within D/6.
limit_backlog=$((RATE * 2))
drained_at=$(rt_sql "SELECT coalesce(round(min(extract(epoch FROM at)) - $t_release, 1)::text, 'never')
                      FROM churn.sample WHERE at > to_timestamp($t_release) AND backlog <= $limit_backlog")
max_during=$(rt_sql "SELECT max(backlog) FROM churn.sample WHERE at BETWEEN to_timestamp($t0 + $third) AND to_timestamp($t_release)")
ok=1; [ "$drained_at" != never ] && awk -v a="$drained_at" -v l="$((D / 6))" 'BEGIN { exit !(a <= l) }' && ok=0
rt_check "backlog drains after the snapshot" $ok "max backlog while held ${max_during:-0}; <= $limit_backlog after ${drained_at}s (limit $((D / 6))s)"
rt_check "backlog empty at the end" "$([ "$left" -eq 0 ] && echo 0 || echo 1)" "$left left after a ${drain_s}s final drain"
read -r s_a s_b s_c <<<"$(rt_sql "
SELECT (SELECT bytes FROM churn.sample WHERE at >= to_timestamp($t0 + 2 * $third) ORDER BY at LIMIT 1),
       (SELECT bytes FROM churn.sample WHERE at >= to_timestamp($t0 + 5 * $D / 6.0) ORDER BY at LIMIT 1),
       (SELECT bytes FROM churn.sample ORDER BY at DESC LIMIT 1)" | tr '|' ' ')"
growth=$(awk -v a="$s_a" -v c="$s_c" 'BEGIN { printf "%.1f", (c - a) * 100 / a }')
growth6=$(awk -v a="$s_b" -v c="$s_c" 'BEGIN { printf "%.1f", (c - a) * 100 / a }')
rt_le "size growth over the last third" "$growth" "$GROWTH_LIMIT" "%"
echo "size: $((s_a / 1024)) kB at 2/3, $((s_b / 1024)) kB at 5/6, $((s_c / 1024)) kB at the end (last sixth: ${growth6}%)"
errs=$(cat "$RT_DIR"/c*.err "$RT_DIR"/producer.err 2>/dev/null | grep -c ERROR)
rt_check "no errors in consumers/producer" "$([ "$errs" -eq 0 ] && echo 0 || echo 1)" "$errs ERROR lines"
[ "$errs" -eq 0 ] || cat "$RT_DIR"/c*.err "$RT_DIR"/producer.err | grep ERROR | sort | uniq -c | head -5
rt_check_no_crash
rt_finish
