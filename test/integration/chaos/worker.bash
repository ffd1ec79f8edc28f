# A pull worker for chaos_kill_workers.sh: one long-lived psql fed by a
# generator, so a SIGKILL of the process group lands between or inside SQL
# statements (mid-lease, mid-work, mid-complete). Not a test on its own.
#   bash worker.bash NAME JOBS(comma-separated) STOPFILE MAX_ITER WORK_MS
# Iterations vary on purpose:
#   ~70% lease (autocommit) -> work -> [heartbeat] -> complete
#   ~12% BEGIN; lease; work; COMMIT -> complete      (kill inside the lease txn: rolled back)
#   ~12% lease -> work -> BEGIN; complete + pause; COMMIT (kill inside: result lost, lease expires)
#   ~ 3% lease -> fail(retry)                        (retried: max_attempts is high)
# psql prints errors with their SQLSTATE (VERBOSITY verbose) on stderr; the test
# accepts only 55000 (a late call on a lease that is no longer live).
set -u
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
. "$ROOT/scripts/lib.sh"
name=$1 jobs=$2 stop=$3 max_iter=$4 work_ms=$5
IFS=, read -r -a job_list <<<"$jobs"

gen() {
    local i r j work
    echo '\set VERBOSITY verbose'
    echo '\set ON_ERROR_STOP 0'
    for ((i = 0; i < max_iter; i++)); do
        if ((i % 50 == 0)) && [ -e "$stop" ]; then break; fi
        j=${job_list[$(((i + RANDOM) % ${#job_list[@]}))]}
        r=$((RANDOM % 100))
        work=$(printf '0.%03d' $((RANDOM % work_ms)))
        echo '\set got f'
        if ((r < 12)); then echo 'BEGIN;'; fi
        echo "SELECT count(*) > 0 AS got, max(token::text) AS tok FROM dataflow.lease('$j', '$name') \\gset"
        echo '\if :got'
        echo "SELECT pg_sleep($work);"
        if ((r < 12)); then echo 'COMMIT;'; fi
        if ((r >= 12 && r < 24)); then
            # complete and a pause in one statement: a kill in the pause rolls the
            # completion back; a refused completion leaves no aborted block behind.
            echo 'BEGIN;'
            echo "SELECT dataflow.complete(:'tok', 1, 'ck-$name', NULL, NULL), pg_sleep($work);"
            echo 'COMMIT;'
        elif ((r >= 24 && r < 27)); then
            echo "SELECT dataflow.fail(:'tok', 'chaos: injected failure', true);"
        else
            if ((r % 5 == 0)); then echo "SELECT dataflow.heartbeat(:'tok');"; fi
            echo "SELECT dataflow.complete(:'tok', 1, 'ck-$name', NULL, NULL);"
        fi
        echo '\else'
        if ((r < 12)); then echo 'COMMIT;'; fi
        echo 'SELECT pg_sleep(0.03);'
        echo '\endif'
    done
}

gen | df_as_user psql -X -q -At -d postgres -o /dev/null
