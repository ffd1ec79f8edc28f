#!/usr/bin/env bash
# The flow invariant under interleavings (issue "Trust the core").
# No chunk is leased while one of its inputs is unavailable, `unmet` never goes
# negative, nothing deadlocks and nothing wedges, whatever the interleaving of
# expect, register, lease, complete, fail, abandon, complete_many, resubmit,
# UPDATE ... SET status = 'resubmit', validate, batch cuts, schedule and reap.
#
# The flow (datasets created in this order, so chunk ids of a consumer made by
# one expect() are LOWER than those of its inputs: agg < raw < clean):
#   agg   (date, cadence 1 day) <- j_agg: clean same (require validated) + dim latest
#   win   (date)                <- j_win: raw window(-2, 0)
#   dim   (int, source; the `latest` dimension, registered only once clients run)
#   raw   (date, source; registered and re-registered)
#   clean (date)                <- j_clean: raw same
#   inc   (int)                 <- j_inc: clean incremental + dim latest
#   inc2  (int)                 <- j_inc2: evt incremental
#   evt   (int, source; new keys ~3 a second, re-registered and resubmitted
#          while batches are cut from them)
# Leases of 1-2 s, backoff 0, attempts plenty. agg and win are expected before
# any source chunk exists (placeholders; agg waits on latest_wait for dim).
#
# Clients (psql sessions fed by bash generators, each bounded by an iteration
# count AND the end time; a transaction holds one state-changing call, or the
# documented lease ... complete of a worker: no lock order can keep two
# transactions of several arbitrary calls each from deadlocking): 3 workers (lease->complete, a lease held open in a
# transaction while it completes, lease->heartbeat->complete across other
# clients' resubmits, lease->fail, lease->abandon, complete_many, lease+complete
# in one statement, late completes), 2 operators (expect of overlapping and new
# ranges, register/re-register of raw and dim, resubmit with and without cascade
# of random chunks and ranges, UPDATE chunks SET status='resubmit', validate
# true/false, a resubmit held open in a transaction, reap, schedule), 1 reaper.
#
# The lease invariant is a test-only DEFERRABLE INITIALLY DEFERRED constraint
# trigger on dataflow.run (AFTER INSERT), installed in this throwaway database:
# at the commit of the leasing transaction every dep input of the leased chunk
# must be available at its need level and at the version in run_input (SQLSTATE
# DFIN1), and every `latest` input must have a run_input row for an available
# chunk (DFIN2; a latest chunk re-produced between the lease's read and its
# commit is counted as a warning, DFLA1: latest inputs are not locked by design,
# the run is superseded at complete). The leasing transaction fails with that
# code and the client logs it.
# A monitor samples every few seconds, in one snapshot, that every chunk's
# `unmet` equals a recount from dep edges and latest_wait, queued => unmet 0 and
# a waiting chunk of a job has unmet > 0.
# Fails on: DFIN1/DFIN2, 40P01 (deadlock), 23514 (unmet < 0), 57014 (a call
# that hung past statement_timeout), any SQLSTATE not expected (expected: 55000
# lease not live / not ready to validate, 42704 no lease / no chunk in a range,
# 25P02 statements of a transaction block after its error), a sampled unmet
# mismatch; then, in the drain (chaos stopped, every source key registered once
# more, bounded passes of reap + validate + resubmit of failed/invalid +
# lease->complete), a chunk not available after the last pass, a chunk
# superseded more than IL_MAX_SUPERSEDED times, an unmet mismatch at the end.
# Short form (default, CI): 60 s of chaos. Full (DF_FULL=1, make chaos):
# IL_SECONDS, default 600. Knobs: IL_SECONDS, IL_KEYS, IL_WORKERS, IL_OPERATORS.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. scripts/lib.sh
. test/integration/chaos/lib.bash

mode=$(rt_mode)
if [ "$mode" = full ]; then d_def=600; else d_def=60; fi
D=${IL_SECONDS:-$d_def}
NK=${IL_KEYS:-16}                 # keys 0..NK-1 are expected at start; clients also use NK..NK+5
WORKERS=${IL_WORKERS:-3}
OPERATORS=${IL_OPERATORS:-2}
MAX_SUPERSEDED=${IL_MAX_SUPERSEDED:-3}
DRAIN_PASSES=60
echo "chaos_interleave ($mode): ${D}s, $NK keys, $WORKERS workers, $OPERATORS operators, 1 reaper"

rt_setup "dataflow.enabled = off" "max_connections = 40" "synchronous_commit = off" \
         "deadlock_timeout = 200ms" "log_lock_waits = off"

# Keys: date keys counted back from today, so schedule() (agg has a cadence) has
# only a few keys to add up to today.
# Key n is the date B + n. Clients use n in -2..NK+5 at random, and the
# "frontier": NK+6 + (seconds since the start)/2 + -2..2, a few new keys that
# every client works on at the same moment (new consumers expected while their
# inputs are registered and resubmitted).
B=$(rt_sql "SELECT (current_date - $((NK + 8)))::text")
k() { rt_sql "SELECT (DATE '$B' + $1)::text"; }

rt_sql "
SELECT dataflow.create_dataset('agg', 'date', cadence => '1 day');
SELECT dataflow.create_dataset('win', 'date');
SELECT dataflow.create_dataset('dim', 'int');
SELECT dataflow.create_dataset('raw', 'date', location => 'mem://{dataset}/{key}/v{version}');
SELECT dataflow.create_dataset('clean', 'date');
SELECT dataflow.create_dataset('inc', 'int');
SELECT dataflow.create_dataset('inc2', 'int');
SELECT dataflow.create_dataset('evt', 'int');
SELECT dataflow.create_job('j_agg', output => 'agg', lease_for => '1 second', max_attempts => 1000,
                           backoff_min => '0', backoff_max => '0');
SELECT dataflow.add_input('j_agg', 'clean', 'same', require => 'validated');
SELECT dataflow.add_input('j_agg', 'dim', 'latest');
SELECT dataflow.create_job('j_win', output => 'win', lease_for => '2 seconds', max_attempts => 1000,
                           backoff_min => '0', backoff_max => '0');
SELECT dataflow.add_input('j_win', 'raw', 'window', -2, 0);
SELECT dataflow.create_job('j_clean', output => 'clean', lease_for => '1 second', max_attempts => 1000,
                           backoff_min => '0', backoff_max => '0');
SELECT dataflow.add_input('j_clean', 'raw');
SELECT dataflow.create_job('j_inc', output => 'inc', lease_for => '2 seconds', max_attempts => 1000,
                           backoff_min => '0', backoff_max => '0');
SELECT dataflow.add_input('j_inc', 'clean', 'incremental');
SELECT dataflow.add_input('j_inc', 'dim', 'latest');
SELECT dataflow.create_job('j_inc2', output => 'inc2', lease_for => '1 second', max_attempts => 1000,
                           backoff_min => '0', backoff_max => '0');
SELECT dataflow.add_input('j_inc2', 'evt', 'incremental');
SELECT dataflow.expect('agg', '$(k 0)', '$(k $((NK - 1)))');
SELECT dataflow.expect('win', '$(k 0)', '$(k $((NK - 1)))');
SELECT count(dataflow.register('raw', (DATE '$B' + n)::text)) FROM unnest('{-2,0,2,3}'::int[]) n;
" >/dev/null

# The lease invariant, checked at the leasing transaction's commit.
rt_sql "
CREATE SCHEMA chaos;
CREATE FUNCTION chaos.check_lease() RETURNS trigger LANGUAGE plpgsql AS \$\$
DECLARE r dataflow.run; c dataflow.chunk; bad text; lat record;
BEGIN
  SELECT * INTO r FROM dataflow.run WHERE id = NEW.id;
  SELECT * INTO c FROM dataflow.chunk WHERE id = r.chunk_id;
  SELECT string_agg(format('%s/%s v%s %s (need %s, read v%s)', ds.name, i.key, i.version, i.status, d.need,
                           coalesce(ri.version::text, 'nothing')), '; ')
    INTO bad
    FROM dataflow.dep d JOIN dataflow.chunk i ON i.id = d.input JOIN dataflow.dataset ds ON ds.id = i.dataset_id
    LEFT JOIN dataflow.run_input ri ON ri.run_id = r.id AND ri.chunk_id = d.input
   WHERE d.consumer = r.chunk_id
     AND (dataflow._level(i.status) < d.need OR ri.version IS DISTINCT FROM i.version);
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'LEASE INVARIANT VIOLATED: run % (%) leased chunk %/% v% (unmet %) on unavailable inputs: %',
                    r.id, r.status, (SELECT name FROM dataflow.dataset WHERE id = c.dataset_id), c.key, r.version,
                    c.unmet, bad
      USING ERRCODE = 'DFIN1';
  END IF;
  FOR lat IN SELECT jl.dataset_id, jl.need, ds.name,
                    (SELECT x.id FROM dataflow.run_input ri JOIN dataflow.chunk x ON x.id = ri.chunk_id
                      WHERE ri.run_id = r.id AND x.dataset_id = jl.dataset_id LIMIT 1) AS read_id
               FROM dataflow.job_input jl JOIN dataflow.dataset ds ON ds.id = jl.dataset_id
              WHERE jl.job_id = r.job_id AND jl.mapping = 'latest' LOOP
    IF lat.read_id IS NULL THEN
      RAISE EXCEPTION 'LEASE INVARIANT VIOLATED: run % leased %/% without its latest input %',
                      r.id, (SELECT name FROM dataflow.dataset WHERE id = c.dataset_id), c.key, lat.name
        USING ERRCODE = 'DFIN2';
    END IF;
    IF EXISTS (SELECT FROM dataflow.run_input ri JOIN dataflow.chunk x ON x.id = ri.chunk_id
                WHERE ri.run_id = r.id AND x.id = lat.read_id
                  AND (dataflow._level(x.status) < lat.need OR x.version <> ri.version)) THEN
      RAISE WARNING 'DFLA1 latest input %/% re-produced between the read and the commit of run %',
                    lat.name, (SELECT key FROM dataflow.chunk WHERE id = lat.read_id), r.id;
    END IF;
  END LOOP;
  RETURN NULL;
END \$\$;
CREATE CONSTRAINT TRIGGER chaos_lease_invariant AFTER INSERT ON dataflow.run
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION chaos.check_lease();
-- One snapshot: unmet against a recount, and status against unmet.
CREATE VIEW chaos.unmet_mismatch AS
WITH rc AS (
  SELECT c.id, ds.name, c.key, c.status, c.unmet, c.version,
         (SELECT count(*) FROM dataflow.dep d JOIN dataflow.chunk i ON i.id = d.input
           WHERE d.consumer = c.id AND dataflow._level(i.status) < d.need)
       + (SELECT count(*) FROM dataflow.latest_wait lw WHERE lw.consumer = c.id) AS recount,
         EXISTS (SELECT FROM dataflow.job j WHERE j.output_id = c.dataset_id) AS has_job
    FROM dataflow.chunk c JOIN dataflow.dataset ds ON ds.id = c.dataset_id)
SELECT name || '/' || key || ' v' || version || ' ' || status || ': unmet ' || unmet || ', recount ' || recount
       || CASE WHEN status = 'queued' AND recount > 0 THEN ' (queued on an unavailable input)'
               WHEN status = 'waiting' AND has_job AND unmet = 0 THEN ' (waiting with nothing unmet: wedged)'
               ELSE '' END AS mismatch
  FROM rc
 WHERE unmet <> recount OR (status = 'queued' AND unmet > 0) OR (status = 'waiting' AND has_job AND unmet = 0);
" >/dev/null

W=$RT_DIR/w; mkdir -p "$W"; chmod 777 "$W"
END=$(($(date +%s) + D))
MAXIT=$((D * 200))

T0=$(date +%s)
# Shared by the generators: keys as SQL expressions, naps, the end check.
gen_common() {
    kx() { echo "(DATE '$B' + ($1))::text"; }
    rkey() { kx $((RANDOM % (NK + 8) - 2)); }
    fkey() { kx "$NK + 6 + (extract(epoch FROM clock_timestamp())::int - $T0) / 2 + ($1)"; }
    rrange() { local a=$((RANDOM % (NK + 8) - 2)); echo "$(kx $a), $(kx $((a + RANDOM % 4)))"; }
    frange() { local a=$((RANDOM % 3 - 2)); echo "$(fkey $a), $(fkey $((a + RANDOM % 3)))"; }
    anykey() { if ((RANDOM % 5 < 2)); then fkey $((RANDOM % 5 - 2)); else rkey; fi; }
    anyrange() { if ((RANDOM % 5 < 2)); then frange; else rrange; fi; }
    nap() { printf '0.%02d' $((RANDOM % 30)); }
    ekey() { echo "((extract(epoch FROM clock_timestamp()) - $T0) * 3)::bigint::text"; }   # the newest evt key
    prologue() {
        echo "SET statement_timeout = '20s';"
        echo '\set VERBOSITY verbose'
    }
    stop_check() { # quit the session once past the end, however far ahead the generator ran
        echo "SELECT extract(epoch FROM clock_timestamp()) > $END AS over \\gset"
        echo '\if :over'; echo '\q'; echo '\endif'
    }
}

worker_gen() { # NAME
    local name=$1 i job a lease
    local jobs=(j_clean j_clean j_win j_agg j_agg j_inc j_inc2 j_inc2)
    prologue
    for ((i = 0; i < MAXIT; i++)); do
        if ((i % 10 == 0)); then [ "$(date +%s)" -ge "$END" ] && break; stop_check; fi
        job=${jobs[$((RANDOM % ${#jobs[@]}))]}
        lease="SELECT count(*) > 0 AS got, max(token::text) AS tok FROM dataflow.lease('$job', '$name') \\gset"
        echo '\set got f'
        case $((RANDOM % 12)) in
        0|1) echo "$lease"; echo '\if :got'; echo "SELECT 'C', dataflow.complete(:'tok', 1);"; echo '\endif' ;;
        2)  # a lease held open in a transaction while others resubmit, validate, register
            echo 'BEGIN;'; echo "$lease"; echo '\if :got'; echo "SELECT pg_sleep($(nap));"
            echo "SELECT 'C', dataflow.complete(:'tok', 1);"; echo '\endif'; echo 'COMMIT;' ;;
        3)  echo "$lease"; echo '\if :got'; echo "SELECT pg_sleep($(nap));"; echo "SELECT 'B', dataflow.heartbeat(:'tok');"
            echo "SELECT pg_sleep($(nap));"; echo "SELECT 'C', dataflow.complete(:'tok', 1);"; echo '\endif' ;;
        4)  echo "$lease"; echo '\if :got'
            if ((RANDOM % 5 == 0)); then echo "SELECT 'F', dataflow.fail(:'tok', 'chaos: fatal', false);"
            else echo "SELECT 'F', dataflow.fail(:'tok', 'chaos: retry', true);"; fi
            echo '\endif' ;;
        5)  echo "$lease" ;;   # abandoned: expires, reap() retries it
        6|7) echo "SELECT count(*) > 0 AS got, array_agg(token)::text AS toks FROM dataflow.lease('$job', '$name', 4) \\gset"
            echo '\if :got'; echo "SELECT 'M', count(*) FROM dataflow.complete_many(:'toks'::uuid[]);"; echo '\endif' ;;
        8)  echo "SELECT 'C', dataflow.complete(t.token, 1) FROM dataflow.lease('$job', '$name') t;" ;;
        9)  echo 'BEGIN;'; echo "$lease"; echo "SELECT pg_sleep($(nap));"; echo 'COMMIT;'
            echo '\if :got'; echo "SELECT 'C', dataflow.complete(:'tok', 1);"; echo '\endif' ;;
        10) # a late complete: the lease may have expired (1-2 s) and been reaped meanwhile
            echo "$lease"; echo '\if :got'; echo "SELECT pg_sleep(1.$((RANDOM % 6)));"
            echo "SELECT 'C', dataflow.complete(:'tok', 1);"; echo '\endif' ;;
        11) echo 'SELECT pg_sleep(0.05);' ;;
        esac
    done
}

operator_gen() { # NAME
    local name=$1 i ds cas
    local rs=(raw raw raw clean clean agg win)
    local es=(agg win clean clean)
    prologue
    for ((i = 0; i < MAXIT; i++)); do
        if ((i % 10 == 0)); then [ "$(date +%s)" -ge "$END" ] && break; stop_check; fi
        case $((RANDOM % 21)) in
        0|1) echo "SELECT 'E', dataflow.expect('${es[$((RANDOM % ${#es[@]}))]}', $(anyrange));" ;;
        2)  # an expect held open (it share-locks the inputs it found) while others resubmit them
            echo 'BEGIN;'; echo "SELECT 'E', dataflow.expect('${es[$((RANDOM % ${#es[@]}))]}', $(frange));"
            echo "SELECT pg_sleep($(nap));"; echo 'COMMIT;' ;;
        3|4) echo "SELECT 'G', dataflow.register('raw', $(anykey), force => true);" ;;
        5)  echo "SELECT 'G', dataflow.register('dim', '$((1 + RANDOM % 2))');" ;;
        6|7) cas=true; ((RANDOM % 5 == 0)) && cas=false
            echo "SELECT 'S', count(*) FROM dataflow.resubmit('${rs[$((RANDOM % ${#rs[@]}))]}', $(anyrange), cascade => $cas);" ;;
        8)  echo "SELECT 'S', count(*) FROM dataflow.resubmit('inc$( ((RANDOM % 2)) && echo 2)', '$((1 + RANDOM % 6))');" ;;
        9)  # the dimension's only available chunk goes away while consumers lease
            echo "SELECT 'S', count(*) FROM dataflow.resubmit('dim', '$((1 + RANDOM % 2))');" ;;
        10) echo "UPDATE dataflow.chunks SET status = 'resubmit' WHERE dataset = '${rs[$((RANDOM % ${#rs[@]}))]}' AND key = $(anykey);" ;;
        11|12) if ((RANDOM % 5 == 0)); then echo "SELECT 'V', dataflow.validate('clean', $(anykey), false);"
            else echo "SELECT 'V', dataflow.validate('clean', $(anykey), true);"; fi ;;
        13) # a resubmit held open while workers complete and validate
            echo 'BEGIN;'; echo "SELECT 'S', count(*) FROM dataflow.resubmit('raw', $(anykey));"
            echo "SELECT pg_sleep($(nap));"; echo 'COMMIT;' ;;
        14) # a validation held open (it locks the chunk and its consumers) while others resubmit
            echo 'BEGIN;'; echo "SELECT 'V', dataflow.validate('clean', $(anykey), true);"
            echo "SELECT pg_sleep($(nap));"; echo 'COMMIT;' ;;
        15) echo "SELECT 'R', dataflow.reap();" ;;
        16) echo "SELECT 'H', dataflow.schedule();" ;;
        17) echo "SELECT pg_sleep(0.05);" ;;
        18|19) # evt: the newest keys arrive, recent ones are registered again (new version)
            echo "SELECT 'G', dataflow.register('evt', $(ekey));"
            echo "SELECT 'G', dataflow.register('evt', (($(ekey))::bigint - $((RANDOM % 4)))::text, force => true);" ;;
        20) # and one is resubmitted (waits until registered again, by the line above or the drain)
            echo "SELECT 'S', count(*) FROM dataflow.resubmit('evt', (($(ekey))::bigint - 1)::text);" ;;
        esac
    done
}

reaper_gen() {
    local i
    prologue
    for ((i = 0; i < MAXIT; i++)); do
        if ((i % 10 == 0)); then [ "$(date +%s)" -ge "$END" ] && break; stop_check; fi
        echo "SELECT 'R', dataflow.reap();"; echo "SELECT pg_sleep(0.$((2 + RANDOM % 4)));"
        ((i % 20 == 0)) && echo "SELECT 'H', dataflow.schedule();"
    done
}

client() { # NAME GENERATOR
    rt_bg bash -c "$(declare -f gen_common worker_gen operator_gen reaper_gen df_as_user);
        PG_BINDIR='$PG_BINDIR' DF_USER='$DF_USER' NK=$NK END=$END MAXIT=$MAXIT B='$B' T0=$T0; gen_common;
        $2 $1 | df_as_user psql -X -q -At -d postgres" >"$W/$1.out" 2>"$W/$1.err"
    pids+=("$RT_BG_PID")
}
pids=()
for ((i = 0; i < WORKERS; i++)); do client "w$i" worker_gen; done
for ((i = 0; i < OPERATORS; i++)); do client "o$i" operator_gen; done
client reaper reaper_gen

# Monitor: the unmet recount in one snapshot, every few seconds.
samples=0; sampled_bad=0
: >"$W/mismatch.sampled"
while [ "$(date +%s)" -lt "$END" ]; do
    sleep 3
    out=$(rt_psql -c "SELECT mismatch FROM chaos.unmet_mismatch" 2>&1)
    samples=$((samples + 1))
    if [ -n "$out" ]; then
        sampled_bad=$((sampled_bad + 1))
        printf '%s: %s\n' "$(($(date +%s) - END + D))s" "$out" >>"$W/mismatch.sampled"
    fi
done
for p in "${pids[@]}"; do
    for ((i = 0; i < 120; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
done
echo "chaos over; clients exited"

# ---- client log verdicts -------------------------------------------------
cat "$W"/*.err >"$W/all.err"
sqlstates=$(grep -oE '(ERROR|FATAL):  [0-9A-Z]{5}' "$W/all.err" | awk '{ print $2 }' | sort | uniq -c | sort -rn)
count_state() { grep -cE "(ERROR|FATAL):  $1" "$W/all.err"; }
n_dead=$(count_state 40P01); n_inv1=$(count_state DFIN1); n_inv2=$(count_state DFIN2)
n_neg=$(count_state 23514); n_hang=$(count_state 57014)
n_lat=$(grep -c 'DFLA1' "$W/all.err")
n_unexp=$(grep -oE '(ERROR|FATAL):  [0-9A-Z]{5}' "$W/all.err" | awk '{ print $2 }' \
          | grep -vcE '^(55000|42704|25P02|40P01|DFIN1|DFIN2|23514|57014)$')
echo "client SQLSTATEs:"; printf '%s\n' "${sqlstates:-  none}" | sed 's/^/  /'

# ---- the drain: stop the chaos, register every source key again, drive to completion ----
drain_start=$(rt_sql "SELECT clock_timestamp()")
rt_sql "SELECT count(dataflow.register(ds.name, c.key)) FROM dataflow.chunk c JOIN dataflow.dataset ds ON ds.id = c.dataset_id
         WHERE ds.name IN ('raw', 'dim', 'evt')" >/dev/null
rt_sql "SELECT dataflow.register('dim', '1')" >/dev/null   # a dimension chunk exists, whatever the clients did
# Each step is its own statement (psql -c ... -c ...: autocommit each), so that an error
# in one (a violation at a lease's commit) neither stops the drain nor undoes the rest;
# errors are collected in drain.err and fail the check below.
left=-1
for ((pass = 1; pass <= DRAIN_PASSES; pass++)); do
    left=$(rt_psql -v VERBOSITY=verbose \
        -c "SELECT dataflow.reap()" \
        -c "SELECT count(*) FROM (SELECT ds.name, c.key FROM dataflow.chunk c JOIN dataflow.dataset ds ON ds.id = c.dataset_id
                                  WHERE c.status IN ('failed', 'invalid', 'cancelled') ORDER BY c.id) f,
                                LATERAL dataflow.resubmit(f.name, f.key)" \
        -c "SELECT count(dataflow.validate('clean', c.key, true)) FROM dataflow.chunks c
             WHERE c.dataset = 'clean' AND c.status = 'ready'" \
        -c "SELECT count(dataflow.complete(t.token, 1)) FROM dataflow.lease('j_clean', 'drain', 1000) t" \
        -c "SELECT count(dataflow.complete(t.token, 1)) FROM dataflow.lease('j_win', 'drain', 1000) t" \
        -c "SELECT count(dataflow.complete(t.token, 1)) FROM dataflow.lease('j_agg', 'drain', 1000) t" \
        -c "SELECT count(dataflow.complete(t.token, 1)) FROM dataflow.lease('j_inc', 'drain', 1000) t" \
        -c "SELECT count(dataflow.complete(t.token, 1)) FROM dataflow.lease('j_inc2', 'drain', 1000) t" \
        -c "SELECT count(*) FROM dataflow.chunk WHERE dataflow._level(status) = 0" 2>>"$W/drain.err" | tail -1)
    [ "$left" = 0 ] && break
    sleep 0.3
done
drained_passes=$pass
rt_check "no DFIN1: leased on an unavailable input" "$([ "$n_inv1" -eq 0 ] && echo 0 || echo 1)" "$n_inv1 violations"
[ "$n_inv1" -eq 0 ] || grep -m5 'DFIN1' "$W/all.err" | sed 's/^/  /'
rt_check "no DFIN2: leased without a latest input" "$([ "$n_inv2" -eq 0 ] && echo 0 || echo 1)" "$n_inv2 violations"
[ "$n_inv2" -eq 0 ] || grep -m3 'DFIN2' "$W/all.err" | sed 's/^/  /'
rt_check "no deadlock (40P01)" "$([ "$n_dead" -eq 0 ] && echo 0 || echo 1)" "$n_dead deadlocks"
if [ "$n_dead" -gt 0 ]; then
    echo "  deadlocked pairs (server.log: the two statements of each cycle):"
    awk '/ERROR:  deadlock detected/ { n = 0; next }
         /^\tProcess [0-9]+: / && n < 2 {
             sig = $0
             if (match(sig, /UPDATE dataflow\.chunks[^;]*dataset = '"'"'[a-z]+'"'"'/)) {
                 sig = substr(sig, RSTART, RLENGTH); sub(/ SET.*dataset = /, " SET status=resubmit ", sig)
             } else if (match(sig, /dataflow\.[a-z_]+\('"'"'?[a-z_]*/)) sig = substr(sig, RSTART + 9, RLENGTH - 9) ")"
             gsub(/\047/, "", sig); s[++n] = sig
             if (n == 2) print (s[1] < s[2] ? s[1] "  x  " s[2] : s[2] "  x  " s[1])
         }' "$RT_DIR/server.log" | sort | uniq -c | sort -rn | head -8 | sed 's/^/   /'
fi
rt_check "unmet never negative (23514)" "$([ "$n_neg" -eq 0 ] && echo 0 || echo 1)" "$n_neg check violations"
[ "$n_neg" -eq 0 ] || grep -m3 '23514' "$W/all.err" | sed 's/^/  /'
rt_check "no call hung (57014 after 20 s)" "$([ "$n_hang" -eq 0 ] && echo 0 || echo 1)" "$n_hang timeouts"
rt_check "no unexpected SQLSTATE" "$([ "$n_unexp" -eq 0 ] && echo 0 || echo 1)" \
    "$n_unexp errors other than 55000, 42704, 25P02 (and those above)"
[ "$n_unexp" -eq 0 ] || grep -E '(ERROR|FATAL):  [0-9A-Z]{5}' "$W/all.err" \
    | grep -vE '  (55000|42704|25P02|40P01|DFIN1|DFIN2|23514|57014):' | sort | uniq -c | sort -rn | head -5
rt_check "unmet = recount while running (sampled)" "$([ "$sampled_bad" -eq 0 ] && echo 0 || echo 1)" \
    "$sampled_bad of $samples snapshots had mismatches"
[ "$sampled_bad" -eq 0 ] || head -c 1500 "$W/mismatch.sampled" | sed 's/^/  /'
n_drain_err=$(grep -c 'ERROR:' "$W/drain.err" 2>/dev/null)
rt_check "drain: no errors" "$([ "${n_drain_err:-0}" -eq 0 ] && echo 0 || echo 1)" "${n_drain_err:-0} errors"
[ "${n_drain_err:-0}" -eq 0 ] || grep 'ERROR:' "$W/drain.err" | sort | uniq -c | sort -rn | head -5 | cut -c1-300
rt_check "drain: every chunk available" "$([ "$left" = 0 ] && echo 0 || echo 1)" \
    "$left not available after $drained_passes passes (limit $DRAIN_PASSES)"
if [ "$left" != 0 ]; then
    rt_sql "SELECT ds.name || '/' || c.key || ' v' || c.version || ' ' || c.status || ' unmet ' || c.unmet
              FROM dataflow.chunk c JOIN dataflow.dataset ds ON ds.id = c.dataset_id
             WHERE dataflow._level(c.status) = 0 ORDER BY c.id LIMIT 8" | sed 's/^/  /'
fi
superseded=$(rt_sql "SELECT ds.name || '/' || c.key || ': ' || count(*) FROM dataflow.run r
                       JOIN dataflow.chunk c ON c.id = r.chunk_id JOIN dataflow.dataset ds ON ds.id = c.dataset_id
                      WHERE r.status = 'superseded' AND r.started_at >= '$drain_start'
                      GROUP BY ds.name, c.key HAVING count(*) > $MAX_SUPERSEDED ORDER BY count(*) DESC LIMIT 5")
rt_check "drain: no chunk superseded > $MAX_SUPERSEDED times" "$([ -z "$superseded" ] && echo 0 || echo 1)" \
    "${superseded:-none}"
mism=$(rt_sql "SELECT mismatch FROM chaos.unmet_mismatch LIMIT 10")
rt_check "unmet = recount at the end" "$([ -z "$mism" ] && echo 0 || echo 1)" "$(printf '%s' "$mism" | grep -c .) mismatches"
[ -z "$mism" ] || printf '%s\n' "$mism" | sed 's/^/  /'

# ---- the numbers ----------------------------------------------------------------
tag() { cat "$W"/*.out | grep -c "^$1|"; }
echo "calls: $(tag C) complete, $(tag M) complete_many, $(tag F) fail, $(tag B) heartbeat, $(tag E) expect," \
     "$(tag G) register, $(tag S) resubmit, $(tag V) validate, $(tag R) reap, $(tag H) schedule (returned values)"
rt_sql "SELECT 'runs: ' || string_agg(n || ' ' || status, ', ' ORDER BY n DESC) || ' (' || sum(n) || ' leases committed, '
               || sum(d) || ' of them in the drain)'
          FROM (SELECT status, count(*) AS n, count(*) FILTER (WHERE started_at >= '$drain_start') AS d
                  FROM dataflow.run GROUP BY status) s"
rt_sql "SELECT 'events: ' || count(*) FILTER (WHERE detail ->> 'reason' = 'resubmit' AND (detail ->> 'depth')::int = 0)
               || ' chunks resubmitted, ' || count(*) FILTER (WHERE detail ->> 'reason' LIKE 'upstream %')
               || ' reset by cascade, ' || count(*) FILTER (WHERE detail ->> 'reason' = 'expired') || ' leases reaped, '
               || count(*) FILTER (WHERE detail ->> 'reason' = 'batch') || ' batches cut, '
               || (SELECT count(*) FROM dataflow.backfill) || ' expects that created chunks, '
               || (SELECT count(*) FROM dataflow.chunk) || ' chunks'
          FROM dataflow.event"
echo "verdicts: $n_dead deadlocks, $((n_inv1 + n_inv2)) violations, $n_lat latest inputs re-produced before the lease committed (warning), $n_neg negative unmet, $sampled_bad/$samples bad snapshots"
rt_check_no_crash
rt_finish
