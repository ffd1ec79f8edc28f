#!/usr/bin/env bash
# dataflow-run --concurrency auto follows the job's max_concurrency as it changes:
# raised from 2 to 8 under a running worker, 8 commands run within 5 s; lowered to 3,
# the running ones finish and no new one starts until fewer than 3 run. Two auto
# workers share one limit without exceeding it. A fixed --concurrency N stays at N.
set -uo pipefail
# shellcheck source=test/integration/cli_common.bash
. "$(dirname "$0")/cli_common.bash"
cli_setup
cli_flow 40 2
RUN=$CLI_TMP/running   # one file per command that runs now
GO=$CLI_TMP/go         # go/RUN_ID lets that command end; go/all lets every command end
mkdir -p "$RUN" "$GO"

# A command that holds its slot until the test lets it end (bounded: 60 s).
cli_script hold <<EOF
touch "$RUN/\$DATAFLOW_RUN_ID"
for _ in \$(seq 600); do
    [ -e "$GO/\$DATAFLOW_RUN_ID" ] || [ -e "$GO/all" ] && break
    sleep 0.1
done
rm -f "$RUN/\$DATAFLOW_RUN_ID"
EOF

running() { find "$RUN" -type f | wc -l; }
running_is() { [ "$(running)" -eq "$1" ]; }
# release N: let N of the running commands end, and wait until they are gone
release() {
    local ids want
    want=$(( $(running) - $1 ))
    ids=$(find "$RUN" -type f -printf '%f\n' | sort -n | head -n "$1")
    for id in $ids; do touch "$GO/$id"; done
    wait_for 10 bash -c "[ \$(find '$RUN' -type f | wc -l) -le $want ]"
}
# The largest number of runs of the job live at once after run id $1, on the
# database clock: a slot is free only once complete() committed (finished_at).
max_overlap_after() {
    sql "SELECT coalesce(max((SELECT count(*) FROM dataflow.runs o
                               WHERE o.job = 'rollup' AND o.started_at <= r.started_at
                                 AND (o.finished_at IS NULL OR o.finished_at > r.started_at))), 0)
           FROM dataflow.runs r WHERE r.job = 'rollup' AND r.run_id > $1"
}
max_run_id() { sql "SELECT coalesce(max(run_id), 0) FROM dataflow.runs"; }
set_limit() { sql "UPDATE dataflow.job SET max_concurrency = $1 WHERE name = 'rollup'"; }

# ---- one auto worker: 2 → 8 → 3
set_limit 2
"$CLI" --job rollup --concurrency auto --heartbeat 0.5 -- "$CLI_TMP/bin/hold" \
    >/dev/null 2>"$CLI_TMP/auto.err" &
W1=$!
CLI_BG_PIDS+=("$W1")
check "auto starts 2 commands under max_concurrency 2" wait_for 10 running_is 2
check "and no more than 2 (the worker logged its target)" \
    wait_for 10 grep -q 'concurrency auto: 2 ' "$CLI_TMP/auto.err"
expect_eq "2 running" "$(running)" 2

set_limit 8
check "raised to 8: 8 commands run within 5 s" wait_for 5 running_is 8
check "the raise is logged" grep -q 'concurrency auto: 8 ' "$CLI_TMP/auto.err"

set_limit 3
check "lowered to 3: the worker notices (logged)" \
    wait_for 10 grep -q 'concurrency auto: 3 ' "$CLI_TMP/auto.err"
expect_eq "lowering stops nothing: 8 still run" "$(running)" 8
low_from=$(max_run_id)
release 5   # 3 left: at the limit
sleep 1     # give a wrong implementation the chance to start one
expect_eq "3 left running: no new command started" "$(running)" 3
expect_eq "no lease after the lowering while 3 or more ran" "$(max_run_id)" "$low_from"
release 1   # 2 left: one new command may start
check "fewer than 3 run: a new command starts, back to 3" wait_for 5 running_is 3
check "that one was leased after the lowering" test "$(max_run_id)" -gt "$low_from"
release 2
check "and again up to 3" wait_for 5 running_is 3
expect_eq "never more than 3 live runs after the lowering" "$(max_overlap_after "$low_from")" 3

# ---- two auto workers share the limit: the first stops, two fresh ones start under
# limit 6; "a" may run 4 at most (--max-procs), so "b" gets the rest, never more
kill -TERM "$W1"   # first: no new leases; then let the running commands end
touch "$GO/all"
wait "$W1"
expect_eq "an auto worker exits 0 on SIGTERM once its commands finished" "$?" 0
CLI_BG_PIDS=()
check "its commands are gone" wait_for 10 running_is 0
rm -f "$GO/all"
set_limit 6
shared_from=$(max_run_id)
for w in a b; do
    procs=64; [ "$w" = a ] && procs=4
    "$CLI" --job rollup --concurrency auto --max-procs "$procs" --heartbeat 0.5 --worker "$w" \
        -- "$CLI_TMP/bin/hold" >/dev/null 2>"$CLI_TMP/auto_$w.err" &
    CLI_BG_PIDS+=("$!")
done
check "two auto workers, limit 6: 6 commands in all" wait_for 10 running_is 6
live_of() { sql "SELECT count(*) FROM dataflow.runs WHERE worker = '$1' AND status = 'running'"; }
check "a runs at most its --max-procs 4 ($(live_of a))" test "$(live_of a)" -le 4
check "b runs the others ($(live_of b))" test "$(live_of b)" -ge 2
release 3
check "after a turnover, 6 again" wait_for 5 running_is 6
sleep 1
expect_eq "still 6 (the limit is shared, not 6 each)" "$(running)" 6
expect_eq "never more than 6 live runs between the two" "$(max_overlap_after "$shared_from")" 6
kill -TERM "${CLI_BG_PIDS[@]}"
touch "$GO/all"
rcs=""
for p in "${CLI_BG_PIDS[@]}"; do wait "$p"; rcs="$rcs$? "; done
expect_eq "both exit 0 on SIGTERM" "$rcs" "0 0 "
CLI_BG_PIDS=()

# ---- a fixed --concurrency N does not follow the limit
rm -f "$GO/all"
set_limit 8
"$CLI" --job rollup --concurrency 2 --heartbeat 0.5 -- "$CLI_TMP/bin/hold" >/dev/null 2>&1 &
W3=$!
CLI_BG_PIDS+=("$W3")
check "fixed --concurrency 2 under max_concurrency 8: 2 run" wait_for 10 running_is 2
sleep 1
expect_eq "and stays at 2" "$(running)" 2
kill -TERM "$W3"
touch "$GO/all"
wait "$W3"
CLI_BG_PIDS=()

# usage: --max-procs caps auto, and only goes with auto
"$CLI" --job rollup --concurrency auto --max-procs 0 -- true >/dev/null 2>&1
expect_eq "--max-procs 0 is a usage error" "$?" 2
"$CLI" --job rollup --concurrency 2 --max-procs 4 -- true >/dev/null 2>&1
expect_eq "--max-procs without auto is a usage error" "$?" 2

cli_done
