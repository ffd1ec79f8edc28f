#!/usr/bin/env bash
# The rate dataflow-run draws on a terminal and progress.per_minute agree within 20% on a
# steady run of a few hundred tiny chunks (issue 19 item 4): both measure the same run,
# the CLI from its start to its last count, the view from the run's first completion to
# the moment it is read, right after the CLI exits. Then again on a second run after a
# resubmit of every chunk: the first run's completions are superseded and do not count.
set -uo pipefail
# shellcheck source=test/integration/cli_common.bash
. "$(dirname "$0")/cli_common.bash"
cli_setup
cli_flow 300 2
cli_script work <<'EOS'
sleep 0.02
EOS

# steady_run N: one --until-idle run on a pseudo-terminal (the progress line is drawn only
# there); checks that it finished and that the two rates agree
steady_run() {
    local n=$1 cli_rate view_rate t0 t1
    t0=$(date +%s.%N)
    timeout 120 script -qefc "'$CLI' --job rollup --concurrency 2 --until-idle -- '$CLI_TMP/bin/work'" \
        "$CLI_TMP/tty$n.log" </dev/null >/dev/null 2>&1
    expect_eq "run $n: exit 0" "$?" 0
    view_rate=$(sql "SELECT per_minute FROM dataflow.progress WHERE kind = 'job' AND name = 'rollup'")
    t1=$(date +%s.%N)
    expect_eq "run $n: all 300 chunks ready at version $n" \
        "$(sql "SELECT count(*) FROM dataflow.chunks WHERE dataset = 'daily' AND status = 'ready' AND version = $n")" 300
    # the last rate on the progress line (N.N/s or N.N/min), in chunks per minute
    cli_rate=$(tr '\r' '\n' < "$CLI_TMP/tty$n.log" | grep -oE '  [0-9]+\.[0-9]+/(s|min)' | tail -1 |
               awk -F/ '{ v = $1 + 0; print ($2 == "s") ? v * 60 : v }')
    echo "     run $n: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s; dataflow-run ${cli_rate:-?}/min, progress.per_minute ${view_rate:-?}"
    check "run $n: dataflow-run printed a rate" test -n "$cli_rate"
    check "run $n: the view's per_minute is within 20% of the CLI's" \
        awk -v c="${cli_rate:-0}" -v v="${view_rate:-0}" 'BEGIN { exit !(c > 0 && v > 0 && v >= 0.8 * c && v <= 1.2 * c) }'
    # nothing can run once the run is over: no ETA, nothing blocked
    expect_eq "run $n: eta NULL and nothing blocked after the run" \
        "$(sql "SELECT eta IS NULL, blocked FROM dataflow.progress WHERE kind = 'job' AND name = 'rollup'")" "t|0"
}

steady_run 1
# every chunk again: their first completions are superseded
sql "UPDATE dataflow.chunks SET status = 'resubmit' WHERE dataset = 'daily'" >/dev/null
expect_eq "after the resubmit: per_minute 0 (no current completion)" \
    "$(sql "SELECT per_minute, eta IS NULL FROM dataflow.progress WHERE kind = 'job' AND name = 'rollup'")" "0|t"
steady_run 2

cli_done
