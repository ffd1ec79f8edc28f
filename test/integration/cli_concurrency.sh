#!/usr/bin/env bash
# --concurrency N really runs N commands at once, never more, and keeps all N
# slots busy until the queue is empty; heartbeats keep short leases alive.
set -uo pipefail
# shellcheck source=test/integration/cli_common.bash
. "$(dirname "$0")/cli_common.bash"
cli_setup
cli_flow 9 2
LOG=$CLI_TMP/intervals

# Each command records its start and end; 1.5 s of "work" with a 2 s lease, so
# only heartbeats keep the leases alive.
cli_script work <<EOF
echo "start \$(date +%s.%N) \$DATAFLOW_KEY" >> "$LOG"
sleep 1.5
echo "end \$(date +%s.%N) \$DATAFLOW_KEY" >> "$LOG"
EOF

t0=$(date +%s.%N)
timeout 60 "$CLI" --job rollup --concurrency 3 --until-idle --lease-for 2 --heartbeat 0.5 \
    -- "$CLI_TMP/bin/work" >/dev/null 2>"$CLI_TMP/cli.err"
expect_eq "exit 0" "$?" 0
t1=$(date +%s.%N)

expect_eq "all 9 chunks ready" \
    "$(sql "SELECT count(*) FROM dataflow.chunks WHERE dataset = 'daily' AND status = 'ready'")" 9
expect_eq "one attempt each (no lease expired)" "$(sql "SELECT count(*) FROM dataflow.runs")" 9
expect_eq "heartbeats were sent" \
    "$(sql "SELECT count(*) FILTER (WHERE heartbeat_at IS NOT NULL) FROM dataflow.runs")" 9

# Sweep the start/end events in time order: the running count never exceeds 3
# and reaches 3.
max=$(sort -k2,2n "$LOG" | awk '$1 == "start" { n++; if (n > m) m = n } $1 == "end" { n-- } END { print m + 0 }')
expect_eq "at most and at least 3 commands ran at once" "$max" 3
expect_eq "9 commands started" "$(grep -c '^start' "$LOG")" 9
# 9 commands of 1.5 s at 3 at a time: ~4.5 s; serial would be 13.5 s.
elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
check "wall time shows parallelism (${elapsed}s < 9s)" awk -v e="$elapsed" 'BEGIN { exit !(e < 9) }'

# A concurrency limit on the job caps what dataflow-run gets, whatever N.
sql "UPDATE dataflow.job SET max_concurrency = 2 WHERE name = 'rollup'"
sql "UPDATE dataflow.chunks SET status = 'resubmit' WHERE dataset = 'daily'" >/dev/null
: > "$LOG"
timeout 60 "$CLI" --job rollup --concurrency 4 --until-idle -- "$CLI_TMP/bin/work" >/dev/null 2>&1
expect_eq "exit 0 under the job's limit" "$?" 0
max=$(sort -k2,2n "$LOG" | awk '$1 == "start" { n++; if (n > m) m = n } $1 == "end" { n-- } END { print m + 0 }')
expect_eq "job max_concurrency 2 respected with --concurrency 4" "$max" 2
expect_eq "all 9 chunks ready again, version 2" \
    "$(sql "SELECT count(*) FROM dataflow.chunks WHERE dataset = 'daily' AND status = 'ready' AND version = 2")" 9

cli_done
