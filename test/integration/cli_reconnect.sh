#!/usr/bin/env bash
# The database goes away while commands run: dataflow-run keeps them running,
# reconnects, and records their results (a short outage); after an outage
# longer than the lease, the refused heartbeat stops the command and the chunk
# is retried by another attempt; with no database at all it gives up.
set -uo pipefail
# shellcheck source=test/integration/cli_common.bash
. "$(dirname "$0")/cli_common.bash"
cli_setup
cli_flow 3 3
STARTED=$CLI_TMP/started

cli_script work <<EOF
echo "\$DATAFLOW_KEY \$\$" >> "$STARTED"
sleep "\${SLEEP:-3}"
echo "row_count=\$DATAFLOW_ATTEMPT" > "\$DATAFLOW_RESULT_FILE"
EOF
started() { [ -f "$STARTED" ] && [ "$(wc -l < "$STARTED")" -ge "$1" ]; }
pg_stop() { df_as_user pg_ctl -D "$CLI_TMP/data" -m fast -w -t 60 stop >/dev/null; }
pg_start() { df_as_user pg_ctl -D "$CLI_TMP/data" -l "$CLI_TMP/server.log" -w -t 60 start >/dev/null; }

# 1. A 3-second outage inside 4-second commands, lease 30 s: nothing is lost.
: > "$STARTED"
SLEEP=4 timeout 90 "$CLI" --job rollup --concurrency 2 --until-idle --heartbeat 0.5 \
    -- "$CLI_TMP/bin/work" >/dev/null 2>"$CLI_TMP/1.err" &
pid=$!
CLI_BG_PIDS+=("$pid")
check "two commands started" wait_for 20 started 2
pg_stop
sleep 3
pg_start
wait "$pid"
expect_eq "short outage: exit 0" "$?" 0
check "the outage was logged" grep -q 'lost the database connection' "$CLI_TMP/1.err"
check "the reconnect was logged" grep -q 'reconnected to the database' "$CLI_TMP/1.err"
expect_eq "all chunks ready, first attempts" \
    "$(sql "SELECT string_agg(status || ':' || row_count, ',' ORDER BY key) FROM dataflow.chunks WHERE dataset = 'daily'")" \
    "ready:1,ready:1,ready:1"

# 2. An outage longer than the 2-second lease: the heartbeat after it is
#    refused, the command is stopped and nothing is recorded for it.
sql "UPDATE dataflow.chunks SET status = 'resubmit' WHERE dataset = 'daily' AND key = '2024-01-01'"
: > "$STARTED"
SLEEP=30 timeout 90 "$CLI" --job rollup --once --lease-for 2 --heartbeat 0.5 \
    -- "$CLI_TMP/bin/work" >/dev/null 2>"$CLI_TMP/2.err" &
pid=$!
CLI_BG_PIDS+=("$pid")
check "long command started" wait_for 20 started 1
read -r _ cmd_pid < "$STARTED"
pg_stop
sleep 4
pg_start
wait "$pid"
expect_eq "lease expired during the outage: exit 0 (nothing failed here)" "$?" 0
check "lease loss logged" grep -q 'lease lost' "$CLI_TMP/2.err"
check "the command was stopped" wait_for 10 bash -c "! kill -0 $cmd_pid 2>/dev/null || ps -o stat= -p $cmd_pid | grep -q Z"
sql "SELECT dataflow.reap()" >/dev/null
SLEEP=0 timeout 60 "$CLI" --job rollup --until-idle -- "$CLI_TMP/bin/work" >/dev/null 2>&1
expect_eq "the chunk is re-produced by the next attempt" \
    "$(sql "SELECT status || ' v' || version || ' attempt ' || row_count FROM dataflow.chunks WHERE dataset = 'daily' AND key = '2024-01-01'")" \
    "ready v2 attempt 2"

# 3. No database at all: refused at start.
pg_stop
ERR=$(timeout 30 "$CLI" --job rollup --until-idle -- "$CLI_TMP/bin/work" 2>&1 >/dev/null)
expect_eq "no database: exit 1" "$?" 1
expect_match "no database: says so" "$ERR" "cannot connect to the database"
pg_start

cli_done
