#!/usr/bin/env bash
# A stalled worker must not stall the reaper (issue 7, items 1 and 8).
# A worker that loads into Postgres may call complete() in the
# transaction that loads its data, and commit both together; such a
# transaction may stay open for minutes. Meanwhile other workers die, and their
# leases must still be reclaimed within lease time + reaper interval.
# Scenario: worker Z leases a chunk, calls complete() in an open transaction
# and keeps loading (stays idle in transaction, or is frozen by SIGSTOP in the
# kill -9 test). Another worker's lease in the same dataset is orphaned. For
# each reaper session -- one whose backend shares Z's status-counter shard
# (chunk_count/done_minute rows are sharded by pg_backend_pid() % 64) and one
# that does not -- reap() must reclaim the orphan within 2 s (lock_timeout).
# Also checked: lease() and complete() of other chunks by a session in Z's
# shard. Deterministic (no timing luck); takes a few seconds.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. scripts/lib.sh
. test/integration/chaos/lib.bash

rt_setup "dataflow.enabled = off"
rt_sql "SELECT dataflow.create_dataset('src', 'int'), dataflow.create_dataset('a', 'int');
SELECT dataflow.create_job('ja', output => 'a', lease_for => '1 second', backoff_min => '0', backoff_max => '0');
SELECT dataflow.add_input('ja', 'src');
SELECT dataflow.expect('a', '1', '100');
SELECT count(dataflow.register('src', g::text)) FROM generate_series(1, 100) g;" >/dev/null

# Worker Z: complete() inside its loading transaction, which stays open.
mkfifo "$RT_DIR/z"; chmod 666 "$RT_DIR/z"
rt_bg bash -c "$(declare -f df_as_user); PG_BINDIR='$PG_BINDIR' DF_USER='$DF_USER'; \
    df_as_user psql -X -At -d postgres <'$RT_DIR/z' >'$RT_DIR/z.out' 2>&1"
exec 7>"$RT_DIR/z"
echo "BEGIN; SELECT 'shard', pg_backend_pid() % 64;
      SELECT 'z', dataflow.complete(t.token) FROM dataflow.lease('ja', 'loader') t;" >&7
for ((i = 0; i < 50; i++)); do grep -q '^z|' "$RT_DIR/z.out" 2>/dev/null && break; sleep 0.1; done
zs=$(grep '^shard|' "$RT_DIR/z.out" | cut -d'|' -f2)
grep -q '^z|succeeded' "$RT_DIR/z.out" || { cat "$RT_DIR/z.out"; echo "FAIL: worker Z could not complete"; exit 1; }
echo "worker Z completed a chunk in an open transaction (counter shard $zs)"

# try_in_shard WANT SQL: run SQL (lock_timeout 2 s) in a new session whose
# backend is (WANT=same) or is not (WANT=other) in Z's shard. Prints psql output.
try_in_shard() {
    local want=$1 sql=$2 i out
    for ((i = 0; i < 300; i++)); do
        out=$(rt_psql -v VERBOSITY=verbose 2>&1 <<SQL
SELECT (pg_backend_pid() % 64 = $zs) = ('$want' = 'same') AS mine \gset
\if :mine
SET lock_timeout = '2s';
SELECT 'result', ($sql)::text;
\endif
SQL
)
        if printf '%s' "$out" | grep -qE '^result|ERROR'; then printf '%s\n' "$out"; return 0; fi
    done
    echo "no session in the wanted shard after 300 tries"
}

for want in other same; do
    rt_sql "SELECT count(*) FROM dataflow.lease('ja', 'doomed-$want', 1)" >/dev/null   # its worker dies now
    rt_sql "SELECT pg_sleep(1.2)" >/dev/null                                           # past the deadline
    t0=$(date +%s.%N)
    out=$(try_in_shard "$want" "SELECT dataflow.reap()")
    took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    reaped=$(printf '%s' "$out" | grep '^result' | cut -d'|' -f2)
    err=$(printf '%s' "$out" | grep -m1 -oE 'ERROR:  [0-9A-Z]{5}: .*')
    rt_check "reap() in a session of the $want shard" "$([ "${reaped:-0}" -ge 1 ] && echo 0 || echo 1)" \
        "reclaimed ${reaped:-0} orphaned lease(s) in ${took}s${err:+; $err}"
    rt_sql "SELECT dataflow.reap()" >/dev/null 2>&1   # whatever the outcome, clear it for the next round
done
out=$(try_in_shard same "SELECT count(dataflow.complete(t.token)) FROM dataflow.lease('ja', 'neighbour') t")
err=$(printf '%s' "$out" | grep -m1 -oE 'ERROR:  [0-9A-Z]{5}: .*')
rt_check "lease+complete in Z's shard" "$(printf '%s' "$out" | grep -q '^result|1' && echo 0 || echo 1)" \
    "$(printf '%s' "$out" | grep '^result' | cut -d'|' -f2) chunk(s)${err:+; $err}"

echo "COMMIT;" >&7; exec 7>&-
rt_check_no_crash
rt_finish
