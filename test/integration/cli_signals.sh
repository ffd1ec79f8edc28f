#!/usr/bin/env bash
# Stopping dataflow-run: SIGTERM lets running commands finish within --grace
# and leases nothing new (exit 0); commands that outlive the grace period are
# stopped and their runs failed as retryable (exit 143 / 130); a command that
# ignores SIGTERM is killed; a second signal skips the grace period; a lease
# lost while the command runs (operator cancel) stops the command; SIGHUP acts
# as SIGTERM; a dataflow-run killed outright takes its command down with it.
set -uo pipefail
# shellcheck source=test/integration/cli_common.bash
. "$(dirname "$0")/cli_common.bash"
cli_setup
cli_flow 8 3
STARTED=$CLI_TMP/started

# Records "KEY PID" (PID is also its process group); SLEEP seconds of work; IGNORE_TERM=1 makes the whole process group ignore SIGTERM.
cli_script work <<EOF
[ "\${IGNORE_TERM:-0}" = 1 ] && trap '' TERM
echo "\$DATAFLOW_KEY \$\$" >> "$STARTED"
echo "working on \$DATAFLOW_KEY" >&2
sleep "\${SLEEP:-2}"
echo "row_count=1" > "\$DATAFLOW_RESULT_FILE"
EOF

started() { [ -f "$STARTED" ] && [ "$(wc -l < "$STARTED")" -ge "$1" ]; }
# No live (non-zombie) process left in process group $1.
group_gone() { ! ps -eo pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'; }
running_runs() { sql "SELECT count(*) FROM dataflow.runs WHERE status = 'running'"; }

# start_cli LOG ARGS...: dataflow-run in the background, its pid in $CLI_PID.
start_cli() {
    local log=$1; shift
    : > "$STARTED"
    "$CLI" --job rollup "$@" -- "$CLI_TMP/bin/work" >/dev/null 2>"$log" &
    CLI_PID=$!
    CLI_BG_PIDS+=("$CLI_PID")
}

# wait_exit SECONDS: waits for $CLI_PID; sets RC (124 when it did not exit in time).
wait_exit() {
    local i=0
    while kill -0 "$CLI_PID" 2>/dev/null && [ $i -lt $(( $1 * 10 )) ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$CLI_PID" 2>/dev/null; then kill -KILL "$CLI_PID"; wait "$CLI_PID" 2>/dev/null; RC=124
    else wait "$CLI_PID"; RC=$?; fi
}

# 1. Graceful: two 2-second commands finish after SIGTERM; nothing new is leased.
SLEEP=2 start_cli "$CLI_TMP/1.err" --concurrency 2
check "two commands started" wait_for 20 started 2
kill -TERM "$CLI_PID"
wait_exit 20
expect_eq "SIGTERM, commands finish within grace: exit 0" "$RC" 0
expect_eq "both finished runs completed" \
    "$(sql "SELECT count(*) FROM dataflow.runs WHERE status = 'succeeded'")" 2
expect_eq "nothing leased after SIGTERM" "$(sql "SELECT count(*) FROM dataflow.runs")" 2
check "stop announced" grep -q 'SIGTERM received: no new leases' "$CLI_TMP/1.err"

# 2. Grace expires: a 60-second command is stopped after --grace 1, its run is
#    failed as retryable, the chunk goes back to the queue; exit 128+15.
SLEEP=60 start_cli "$CLI_TMP/2.err" --grace 1
check "long command started" wait_for 20 started 1
read -r key pgid < "$STARTED"
kill -TERM "$CLI_PID"
wait_exit 15
expect_eq "SIGTERM, grace expired: exit 143" "$RC" 143
expect_match "interrupted run failed with the reason and its stderr" \
    "$(sql "SELECT status || ': ' || error FROM dataflow.runs WHERE key = '$key' ORDER BY run_id DESC LIMIT 1")" \
    "^failed: interrupted: .*grace period.*working on $key"
expect_eq "interrupted chunk queued for a retry" "$(chunk_status "$key")" queued
expect_eq "no live lease left" "$(running_runs)" 0
check "the command's whole process group is gone" wait_for 3 group_gone "$pgid"

# 3. SIGINT, and a command that ignores SIGTERM: killed 5 s after the grace; exit 130.
IGNORE_TERM=1 SLEEP=60 start_cli "$CLI_TMP/3.err" --grace 0
check "stubborn command started" wait_for 20 started 1
read -r key pgid < "$STARTED"
t0=$SECONDS
kill -INT "$CLI_PID"
wait_exit 20
expect_eq "SIGINT, command cut off: exit 130" "$RC" 130
check "SIGKILL after SIGTERM was ignored ($((SECONDS - t0)) s)" test $((SECONDS - t0)) -le 9
expect_match "killed run failed" \
    "$(sql "SELECT status || ': ' || error FROM dataflow.runs WHERE key = '$key' ORDER BY run_id DESC LIMIT 1")" \
    "^failed: interrupted: .*signal 9"

# 4. A second SIGTERM skips a long grace period.
SLEEP=60 start_cli "$CLI_TMP/4.err" --grace 300
check "command started" wait_for 20 started 1
kill -TERM "$CLI_PID"; sleep 0.5; kill -TERM "$CLI_PID"
wait_exit 15
expect_eq "second SIGTERM: stops at once with exit 143" "$RC" 143
check "second signal announced" grep -q 'second SIGTERM' "$CLI_TMP/4.err"

# 5. The operator cancels a running chunk: the next heartbeat is refused, the
#    command is stopped, nothing is recorded for it, dataflow-run carries on.
SLEEP=60 start_cli "$CLI_TMP/5.err" --once --heartbeat 0.5
check "command started" wait_for 20 started 1
read -r key pgid < "$STARTED"
sql "SELECT dataflow.cancel('daily', '$key')" >/dev/null
wait_exit 15
expect_eq "lease lost: --once still exits 0" "$RC" 0
check "lease loss logged" grep -q "($key): lease lost (run cancelled): stopping the command" "$CLI_TMP/5.err"
expect_eq "cancelled chunk stays cancelled" "$(chunk_status "$key")" cancelled
expect_eq "cancelled run keeps its status" \
    "$(sql "SELECT status FROM dataflow.runs WHERE key = '$key' ORDER BY run_id DESC LIMIT 1")" cancelled

# 6. SIGHUP (the terminal went away) stops gracefully like SIGTERM.
SLEEP=1 start_cli "$CLI_TMP/6.err"
check "command started" wait_for 20 started 1
read -r key pgid < "$STARTED"
kill -HUP "$CLI_PID"
wait_exit 20
expect_eq "SIGHUP, command finishes within grace: exit 0" "$RC" 0
expect_eq "its run completed" "$(chunk_status "$key")" ready

# 7. dataflow-run killed outright: the command is told to stop (parent-death
#    signal) instead of running on unsupervised; the lease will expire.
SLEEP=60 start_cli "$CLI_TMP/7.err"
check "command started" wait_for 20 started 1
read -r key pgid < "$STARTED"
{ kill -KILL "$CLI_PID"; wait "$CLI_PID"; } 2>/dev/null
check "SIGKILL of dataflow-run stops the command" wait_for 5 bash -c "! kill -0 $pgid 2>/dev/null || ps -o stat= -p $pgid | grep -q Z"
pkill -KILL -g "$pgid" 2>/dev/null

cli_done
