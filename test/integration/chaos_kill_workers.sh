#!/usr/bin/env bash
# Kill -9 workers mid-lease (issue 7, item 1).
# A 3-stage flow src -> ja -> a -> jb -> b -> jc -> c over N chunks per stage,
# 2-second leases, 6 pull workers (long-lived psql sessions, see
# chaos/worker.bash), a reaper calling dataflow.reap() every 0.5 s (the
# background worker reaps too). Every 0.5-2 s a random worker is SIGKILLed (its
# whole process group: generator and psql) and replaced; one event in five is a
# SIGSTOP longer than the lease instead (a zombie that wakes up and calls
# complete on an expired lease).
# Pass: every chunk ends ready; 0 lost; no chunk has two succeeded runs for one
# version; every chunk's current run is its one succeeded run; every orphaned
# lease is expired within lease time + reaper interval (+ grace); late calls
# get 55000 and nothing else; status counters match the chunks.
# Short form (default, CI): 2,000 chunks per stage. Full (DF_FULL=1, make
# chaos): 20,000. Knobs: CHAOS_CHUNKS, CHAOS_WORKERS, CHAOS_TIMEOUT,
# CHAOS_REAP_GRACE (seconds), DF_FAULT_SQL (SQL file run after CREATE
# EXTENSION, to show that an injected fault is caught).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. scripts/lib.sh
. test/integration/chaos/lib.bash

mode=$(rt_mode)
if [ "$mode" = full ]; then n_def=20000; t_def=1500; else n_def=2000; t_def=300; fi
N=${CHAOS_CHUNKS:-$n_def}
WORKERS=${CHAOS_WORKERS:-6}
TIMEOUT=${CHAOS_TIMEOUT:-$t_def}
LEASE=2           # seconds
REAP_EVERY=0.5    # seconds
GRACE=${CHAOS_REAP_GRACE:-2.5}  # scheduling slack on 2 loaded cores (worst seen 1.99 s over the deadline)
WORK_MS=25        # simulated work per chunk: 0..25 ms
echo "chaos_kill_workers ($mode): $N chunks x 3 stages, $WORKERS workers, lease ${LEASE}s, reaper ${REAP_EVERY}s"

# synchronous_commit = off: the machine is shared and fsync-bound; no OS crash is
# simulated here, so durability of the last commits is not under test.
# track_commit_timestamp: when a lease became visible (see the reclaim check).
rt_setup "dataflow.naptime = 1000" "max_connections = 60" "synchronous_commit = off" "track_commit_timestamp = on"
if [ -n "${DF_FAULT_SQL:-}" ]; then
    echo "injecting fault from $DF_FAULT_SQL"
    rt_psql -v ON_ERROR_STOP=1 -f - <"$DF_FAULT_SQL" >/dev/null || exit 1
fi
rt_sql "
SELECT dataflow.create_dataset(d, 'int') FROM unnest('{src,a,b,c}'::text[]) d;
SELECT dataflow.create_job(j, output => o, lease_for => '$LEASE seconds', max_attempts => 100,
                           backoff_min => '0', backoff_max => '0')
  FROM (VALUES ('ja', 'a'), ('jb', 'b'), ('jc', 'c')) v(j, o);
SELECT dataflow.add_input('ja', 'src'), dataflow.add_input('jb', 'a'), dataflow.add_input('jc', 'b');
SELECT dataflow.expect('c', '1', '$N');
SELECT count(dataflow.register('src', g::text)) FROM generate_series(1, $N) g;" >/dev/null

W=$RT_DIR/w; mkdir -p "$W"; chmod 777 "$W"
STOP=$W/stop
# The reaper: one session, reap() every 0.5 s, bounded by the stop file and a count.
reaper() {
    local i
    for ((i = 0; i < TIMEOUT * 4; i++)); do
        [ -e "$STOP" ] && break
        echo "SELECT dataflow.reap();"; echo "SELECT pg_sleep($REAP_EVERY);"
    done | df_as_user psql -X -q -At -d postgres -o /dev/null
}
rt_bg bash -c "$(declare -f reaper df_as_user); PG_BINDIR='$PG_BINDIR' DF_USER='$DF_USER' TIMEOUT=$TIMEOUT \
    STOP='$STOP' REAP_EVERY=$REAP_EVERY reaper" 2>>"$W/reaper.err"

declare -A wpid=()
next_id=0
start_worker() {
    local name="w$next_id"; next_id=$((next_id + 1))
    rt_bg bash test/integration/chaos/worker.bash "$name" "ja,jb,jc" "$STOP" 1000000 "$WORK_MS" 2>"$W/$name.err"
    wpid[$name]=$RT_BG_PID
}
for ((i = 0; i < WORKERS; i++)); do start_worker; done

t0=$(date +%s)
kills=0; zombies=0; kills_with_lease=0
done_c=0
while :; do
    now=$(date +%s)
    done_c=$(rt_sql "SELECT count(*) FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
                      WHERE d.name = 'c' AND c.status = 'ready'")
    [ "$done_c" -ge "$N" ] && break
    [ $((now - t0)) -ge "$TIMEOUT" ] && { echo "timed out after ${TIMEOUT}s with $done_c/$N of c ready"; break; }
    sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.5 + (r % 150) / 100 }')"   # 0.5-2 s
    names=("${!wpid[@]}")
    victim=${names[$((RANDOM % ${#names[@]}))]}
    if ((RANDOM % 5 == 0)); then
        # A zombie: frozen past its lease, then it wakes up and carries on.
        zombies=$((zombies + 1))
        g=${wpid[$victim]}
        ( kill -STOP -- "-$g" 2>/dev/null; sleep $((LEASE + 2)); kill -CONT -- "-$g" 2>/dev/null ) &
    else
        kill -KILL -- "-${wpid[$victim]}" 2>/dev/null
        wait "${wpid[$victim]}" 2>/dev/null
        unset "wpid[$victim]"
        kills=$((kills + 1))
        live=$(rt_sql "SELECT count(*) FROM dataflow.run WHERE worker = '$victim' AND status = 'running'")
        [ "$live" -gt 0 ] && kills_with_lease=$((kills_with_lease + 1))
        start_worker
    fi
done
elapsed=$(($(date +%s) - t0))
touch "$STOP"
# Let zombies wake and the last leases finish or expire (they hold no work any more).
rt_sql "SELECT pg_sleep($LEASE + 1); SELECT dataflow.reap();" >/dev/null
for g in "${RT_PGIDS[@]}"; do kill -CONT -- "-$g" 2>/dev/null; kill -TERM -- "-$g" 2>/dev/null; done
wait 2>/dev/null
echo "ran ${elapsed}s: $kills SIGKILLs ($kills_with_lease left a live lease behind), $zombies SIGSTOP zombies"

# ---- checks ---------------------------------------------------------------
read -r total not_ready failed <<<"$(rt_sql "
SELECT count(*), count(*) FILTER (WHERE status <> 'ready'), count(*) FILTER (WHERE status = 'failed')
  FROM dataflow.chunk" | tr '|' ' ')"
rt_check "every chunk ready" "$([ "$not_ready" -eq 0 ] && echo 0 || echo 1)" \
    "$((total - not_ready))/$total ready, $failed failed, $not_ready not ready"
rt_check "0 chunks lost" "$([ "$total" -eq $((4 * N)) ] && echo 0 || echo 1)" "$total chunks, expected $((4 * N))"
dup=$(rt_sql "SELECT count(*) FROM (SELECT chunk_id, version FROM dataflow.run WHERE status = 'succeeded'
                                     GROUP BY 1, 2 HAVING count(*) > 1) x")
rt_check "0 double successes per version" "$([ "$dup" -eq 0 ] && echo 0 || echo 1)" "$dup chunk versions succeeded twice"
bad_run=$(rt_sql "
SELECT count(*) FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
 WHERE d.name <> 'src' AND NOT EXISTS (SELECT FROM dataflow.run r WHERE r.id = c.run_id AND r.chunk_id = c.id
                                          AND r.status = 'succeeded' AND r.version = c.version)")
rt_check "current run is the succeeded run" "$([ "$bad_run" -eq 0 ] && echo 0 || echo 1)" "$bad_run chunks point elsewhere"
bad_ev=$(rt_sql "
SELECT count(*) FROM (SELECT c.id FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
                        LEFT JOIN dataflow.event e ON e.chunk_id = c.id AND e.to_status = 'ready'
                       WHERE d.name <> 'src' GROUP BY c.id HAVING count(e.id) <> 1) x")
rt_check "exactly one ready transition per chunk" "$([ "$bad_ev" -eq 0 ] && echo 0 || echo 1)" \
    "$bad_ev chunks with != 1 'ready' event"
stale=$(rt_sql "
SELECT count(*) FROM dataflow.chunk c JOIN dataflow.run_input ri ON ri.run_id = c.run_id
  JOIN dataflow.chunk i ON i.id = ri.chunk_id WHERE ri.version <> i.version")
rt_check "lineage at current input versions" "$([ "$stale" -eq 0 ] && echo 0 || echo 1)" "$stale stale lineage rows"
live=$(rt_sql "SELECT count(*) FROM dataflow.run WHERE status = 'running'")
rt_check "no lease left running" "$([ "$live" -eq 0 ] && echo 0 || echo 1)" "$live running"
# An orphan can be reclaimed only once its lease is visible: a lease whose
# transaction stayed open past the deadline (a zombie frozen between lease()
# and COMMIT) becomes visible already expired. So the delay is counted from the
# later of the deadline and the commit of the lease (the commit timestamp of
# its queued -> running event, which is never updated).
read -r expired max_over p99_over late_vis <<<"$(rt_sql "
WITH x AS (
  SELECT extract(epoch FROM r.finished_at - greatest(r.deadline, pg_xact_commit_timestamp(e.xmin))) AS over,
         pg_xact_commit_timestamp(e.xmin) > r.deadline AS late
    FROM dataflow.run r JOIN dataflow.event e ON e.run_id = r.id AND e.to_status = 'running'
   WHERE r.status = 'expired')
SELECT count(*), coalesce(round(max(over)::numeric, 3), 0),
       coalesce(round((percentile_cont(0.99) WITHIN GROUP (ORDER BY over))::numeric, 3), 0),
       count(*) FILTER (WHERE late) FROM x" | tr '|' ' ')"
echo "expired leases: $expired ($late_vis became visible only after their deadline);" \
     "reclaimed after the deadline: p99 ${p99_over}s, max ${max_over}s"
rt_check "orphaned leases were expired" "$([ "$expired" -ge "$kills_with_lease" ] && echo 0 || echo 1)" \
    "$expired expired >= $kills_with_lease kills that left a lease"
rt_le "orphan reclaimed within reaper+grace" "$max_over" "$(awk -v a=$REAP_EVERY -v b="$GRACE" 'BEGIN{print a+b}')" s
rt_check "some kills landed mid-lease" "$([ "$kills_with_lease" -gt 0 ] && echo 0 || echo 1)" \
    "$kills_with_lease of $kills kills"
# Exactly-once transitions of a run: a lease the reaper expired stays expired
# (a late complete/fail/heartbeat must not rewrite its outcome).
rewritten=$(rt_sql "
SELECT count(DISTINCT r.id) FROM dataflow.event e JOIN dataflow.run r ON r.id = e.run_id
 WHERE e.detail ->> 'reason' = 'expired' AND r.status <> 'expired'")
rt_check "expired runs stay expired" "$([ "$rewritten" -eq 0 ] && echo 0 || echo 1)" \
    "$rewritten expired runs later changed outcome"
read -r runs succeeded superseded fails <<<"$(rt_sql "
SELECT count(*), count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'superseded'),
       count(*) FILTER (WHERE status = 'failed') FROM dataflow.run" | tr '|' ' ')"
echo "runs: $runs ($succeeded succeeded, $expired expired, $fails failed on purpose, $superseded superseded)"
counters=$(rt_sql "
WITH real AS (SELECT dataset_id, status, count(*) n FROM dataflow.chunk GROUP BY 1, 2),
     cnt AS (SELECT dataset_id, s.status, sum(s.n) n FROM dataflow.chunk_count k,
               LATERAL (VALUES ('waiting', k.waiting), ('queued', k.queued), ('running', k.running),
                               ('ready', k.ready), ('validated', k.validated), ('invalid', k.invalid),
                               ('failed', k.failed), ('skipped', k.skipped), ('cancelled', k.cancelled),
                               ('resubmit', k.resubmit)) s(status, n) GROUP BY 1, 2)
SELECT count(*) FROM cnt FULL JOIN real USING (dataset_id, status)
 WHERE coalesce(cnt.n, 0) <> coalesce(real.n, 0)")
rt_check "status counters match chunks" "$([ "$counters" -eq 0 ] && echo 0 || echo 1)" "$counters mismatches"
# Late calls by zombies and killed sessions: only 55000 (lease no longer live) is acceptable.
codes=$(cat "$W"/w*.err 2>/dev/null | grep -oE 'ERROR:  [0-9A-Z]{5}' | awk '{print $2}' | sort | uniq -c | tr -s ' ' | tr '\n' ',')
other=$(cat "$W"/w*.err 2>/dev/null | grep -E 'ERROR:  [0-9A-Z]{5}' | grep -vc 'ERROR:  55000')
rt_check "late calls refused with 55000 only" "$([ "$other" -eq 0 ] && echo 0 || echo 1)" "errors by SQLSTATE: ${codes:-none}"
[ "$other" -eq 0 ] || grep -hE 'ERROR:  [0-9A-Z]{5}' "$W"/w*.err | grep -v 'ERROR:  55000' | sort | uniq -c | head -5
rt_check_no_crash
rt_finish
