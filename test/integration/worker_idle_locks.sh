#!/usr/bin/env bash
# The worker never waits without bound for a lock. For each lock the worker can
# meet — a job's concurrency lock (advisory 7401), a pool's (7402), an
# incremental job's batch cut (7403), a chunk's row lock, a `latest` input's
# dataset lock (7406) — a psql client holds it idle in a transaction while the
# worker meets it, and webhooks are still delivered and an expired lease is
# still reaped. Once the client lets go, the held-up work is done.
# (lease() takes the advisory locks; the client takes them directly, which is
# what a client idle in a transaction after lease() on such a job holds.)
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh
. test/integration/worker_common.bash

wt_setup "dataflow.naptime = 500" "log_min_messages = info"
wt_start_receiver
q() { wt_sql "$1" >/dev/null; }
id_of() { wt_sql "SELECT id FROM dataflow.$1 WHERE name = '$2'"; }
status() { wt_sql "SELECT c.status FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
                    WHERE d.name = '$1' AND c.key = '$2'"; }

# Liveness probes: a webhook for each event of dataset ping; a pull job whose
# leases (1 s) the tester takes and lets expire.
q "SELECT dataflow.create_dataset('ping', 'int')"
q "SELECT dataflow.subscribe('pings', '$WT_URL/hook/ok', datasets => ARRAY['ping'], statuses => ARRAY['ready'])"
q "SELECT dataflow.create_dataset('raw_pull', 'int'); SELECT dataflow.create_dataset('out_pull', 'int')"
q "SELECT dataflow.create_job('pulled', 'out_pull', max_attempts => 5)"
q "SELECT dataflow.add_input('pulled', 'raw_pull')"
q "SELECT dataflow.expect('out_pull', '1', '9')"

# http jobs, one per lock, created paused (so the lock is held before the worker claims).
http_job() { # NAME ENDPOINT [extra create_job args]
    q "SELECT dataflow.create_dataset('raw_$1', 'int'); SELECT dataflow.create_dataset('out_$1', 'int')"
    q "SELECT dataflow.create_job('$1', 'out_$1', dispatch => 'http', endpoint => '$WT_URL$2', max_attempts => 5,
                                  backoff_min => '1 second', backoff_max => '1 second' ${3:+, $3})"
    q "SELECT dataflow.pause_job('$1')"
}
q "SELECT dataflow.create_pool('p', 1)"
http_job conc /dispatch/succeed "max_concurrency => 1"
http_job pooled /dispatch/succeed "pool => 'p'"
http_job inc /dispatch/succeed
http_job gated /dispatch/gated "lease_for => '3 seconds'"
http_job latsrc /dispatch/succeed "lease_for => '3 seconds'"
for j in conc pooled gated latsrc; do
    q "SELECT dataflow.add_input('$j', 'raw_$j')"
    q "SELECT dataflow.expect('out_$j', '1')"
done
q "SELECT dataflow.add_input('inc', 'raw_inc', mapping => 'incremental')"
# out_latsrc is a `latest` input of another job: its chunks' arrival takes lock 7406.
q "SELECT dataflow.create_dataset('out_latcons', 'int')"
q "SELECT dataflow.create_job('latcons', 'out_latcons')"
q "SELECT dataflow.add_input('latcons', 'raw_latsrc')"
q "SELECT dataflow.add_input('latcons', 'out_latsrc', mapping => 'latest')"

HOLD_PID=; HOLD_FD=
hold() { # NAME SQL: a psql session that ran BEGIN; SQL and then sits idle in the transaction
    mkfifo "$WT_DIR/$1.in"
    PGAPPNAME="holder_$1" df_as_user psql -X -q -v ON_ERROR_STOP=1 -d postgres \
        <"$WT_DIR/$1.in" >"$WT_DIR/$1.out" 2>&1 &
    HOLD_PID=$!
    exec {HOLD_FD}>"$WT_DIR/$1.in"
    echo "BEGIN; $2" >&"$HOLD_FD"
    wt_wait "holder $1 idle in transaction" 10 "SELECT EXISTS (SELECT FROM pg_stat_activity
        WHERE application_name = 'holder_$1' AND state = 'idle in transaction')"
}
release() {
    echo "ROLLBACK;" >&"$HOLD_FD"
    exec {HOLD_FD}>&-
    wait "$HOLD_PID"
}
# The worker met the lock: it waits on it right now, or has already given up on it.
seen() { grep -c "$1" "$WT_DIR/server.log"; }
met() { # DESCRIPTION LOG-PATTERN [LINES OF IT SEEN BEFORE]
    local i
    for ((i = 0; i < 150; i++)); do
        [ "$(seen "$2")" -gt "${3:-0}" ] && return 0
        [ "$(df_as_user psql -X -tAq -d postgres -c "SELECT wait_event_type = 'Lock' FROM pg_stat_activity
                WHERE backend_type = 'pg_dataflow worker'")" = t ] && return 0
        sleep 0.1
    done
    wt_fail "the worker never met $1"
}
PROBE=0
alive() { # the worker still delivers webhooks and reaps expired leases
    PROBE=$((PROBE + 1))
    q "SELECT dataflow.register('raw_pull', '$PROBE')"
    local rid
    rid=$(wt_sql "SELECT run_id FROM dataflow.lease('pulled', 'tester', 1, '1 second')")
    [ -n "$rid" ] || wt_fail "could not lease a pulled chunk"
    q "SELECT dataflow.register('ping', '$PROBE')"
    wt_wait "webhook $PROBE to be delivered while $1 is held" 15 \
        "SELECT count(*) = 1 FROM dataflow.deliveries WHERE dataset = 'ping' AND key = '$PROBE' AND status = 'delivered'"
    wt_wait "the expired lease of run $rid to be reaped while $1 is held" 15 \
        "SELECT status = 'expired' FROM dataflow.run WHERE id = $rid"
    echo "ok: webhooks and reaping go on while $1 is held"
}

# 1. a job's concurrency lock (lease() of a job with max_concurrency)
hold conc "SELECT pg_advisory_xact_lock(7401, $(id_of job conc));"
q "SELECT dataflow.register('raw_conc', '1'); SELECT dataflow.resume_job('conc')"
met "lock 7401" 'job "conc" skipped'
alive "lock 7401 (job concurrency)"
grep -q 'job "conc" skipped for 5 s: its lease waited longer than dataflow.worker_lock_timeout' "$WT_DIR/server.log" \
    || wt_fail "no log line says why job conc was skipped"
[ "$(status out_conc 1)" = queued ] || wt_fail "out_conc 1 left queued: $(status out_conc 1)"
release
wt_wait "job conc to be dispatched once the lock is free" 20 "SELECT status = 'ready' FROM dataflow.chunk c
    JOIN dataflow.dataset d ON d.id = c.dataset_id WHERE d.name = 'out_conc' AND c.key = '1'"

# 2. a pool's lock
hold pool "SELECT pg_advisory_xact_lock(7402, $(id_of pool p));"
q "SELECT dataflow.register('raw_pooled', '1'); SELECT dataflow.resume_job('pooled')"
met "lock 7402" 'job "pooled" skipped'
alive "lock 7402 (pool)"
release
wt_wait "job pooled to be dispatched once the lock is free" 20 "SELECT status = 'ready' FROM dataflow.chunk c
    JOIN dataflow.dataset d ON d.id = c.dataset_id WHERE d.name = 'out_pooled' AND c.key = '1'"

# 3. an incremental job's batch cut: batch 1 queued, a new input pending, the cut lock held
q "SELECT dataflow.register('raw_inc', '1')"
q "SELECT dataflow._cut_batch($(id_of job inc))"
q "SELECT dataflow.register('raw_inc', '2')"
hold cut "SELECT pg_advisory_xact_lock(7403, $(id_of job inc));"
q "SELECT dataflow.resume_job('inc')"
met "lock 7403" 'job "inc" skipped'
alive "lock 7403 (incremental cut)"
release
wt_wait "incremental batches to be dispatched once the lock is free" 20 "SELECT count(*) = 2 FROM dataflow.chunk c
    JOIN dataflow.dataset d ON d.id = c.dataset_id WHERE d.name = 'out_inc' AND c.status = 'ready'"

# 4. a chunk's row lock, met when the worker records the run's result
q "SELECT dataflow.resume_job('gated'); SELECT dataflow.register('raw_gated', '1')"
wt_wait "the gated request to arrive" 15 "SELECT status = 'running' FROM dataflow.chunk c
    JOIN dataflow.dataset d ON d.id = c.dataset_id WHERE d.name = 'out_gated' AND c.key = '1'"
for ((i = 0; i < 100; i++)); do [ "$(wt_requests /dispatch/gated)" -ge 1 ] && break; sleep 0.1; done
hold row "SELECT 1 FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
           WHERE d.name = 'out_gated' AND c.key = '1' FOR UPDATE OF c;"
touch "$WT_DIR/gate"
met "the chunk row lock" "result not recorded: canceling statement due to lock timeout"
alive "a chunk row lock"
release
wt_wait "the gated chunk to be produced once the lock is free" 30 "SELECT status = 'ready' FROM dataflow.chunk c
    JOIN dataflow.dataset d ON d.id = c.dataset_id WHERE d.name = 'out_gated' AND c.key = '1'"

# 5. the dataset lock of a `latest` input (7406), met when a chunk of it arrives
hold latest "SELECT pg_advisory_xact_lock(7406, $(id_of dataset out_latsrc));"
before=$(seen "result not recorded: canceling statement due to lock timeout")
q "SELECT dataflow.resume_job('latsrc'); SELECT dataflow.register('raw_latsrc', '1')"
met "lock 7406" 'result not recorded: canceling statement due to lock timeout' "$before"
alive "lock 7406 (latest input)"
[ "$(status out_latsrc 1)" != ready ] || wt_fail "out_latsrc 1 was produced while lock 7406 was held"
release
wt_wait "the latest input's chunk to be produced once the lock is free" 30 "SELECT status = 'ready' FROM dataflow.chunk c
    JOIN dataflow.dataset d ON d.id = c.dataset_id WHERE d.name = 'out_latsrc' AND c.key = '1'"

grep -E "PANIC|TRAP|terminated by signal" "$WT_DIR/server.log" && wt_fail "server log shows a crash"
echo "ok: worker idle locks"
