#!/usr/bin/env bash
# dataflow-run and a run that a cascading resubmit supersedes while its command works:
# the next heartbeat still holds the lease but warns (SQLSTATE 01DF1); dataflow-run logs
# it in its own words, stops the command early, and fail()s the token, which ends the
# run and releases the inputs it held. Without this the command ran to its end and its
# superseded lease held the inputs against re-production meanwhile.
set -uo pipefail
# shellcheck source=test/integration/cli_common.bash
. "$(dirname "$0")/cli_common.bash"
cli_setup
cli_flow 1 2
B=$CLI_TMP/bin

# A long command: 60 s unless stopped.
cli_script slow <<'EOF2'
echo "started $DATAFLOW_KEY"
sleep 60 &
wait $!
EOF2

start=$(date +%s)
# client_min_messages=error filters the server's warning: the run's status still tells.
# A default of REPEATABLE READ (refused by pg_dataflow's functions): dataflow-run's
# sessions are READ COMMITTED whatever the default.
PGOPTIONS="-c client_min_messages=error -c default_transaction_isolation=repeatable\\ read" \
timeout 60 "$CLI" --job rollup --once --lease-for 3 --heartbeat 0.3 -- "$B/slow" \
    >"$CLI_TMP/run.out" 2>"$CLI_TMP/run.err" &
cli_pid=$!
CLI_BG_PIDS+=("$cli_pid")
# (a function, so that the status is read again on every try: "$(...)" as an argument of
# wait_for was read once, before the CLI had leased, and failed under load on PG 18)
leased() { [ "$(chunk_status 2024-01-01)" = running ]; }
check "the run is leased" wait_for 15 leased

# The operator re-registers the source day: the daily chunk is reset, its run superseded.
sql "SELECT dataflow.register('raw', '2024-01-01', '$CLI_TMP/raw/2024-01-01-v2')" >/dev/null
wait "$cli_pid"; rc=$?
elapsed=$(( $(date +%s) - start ))
expect_eq "dataflow-run exits 0" "$rc" 0
check "the command was stopped early (${elapsed}s < 30s)" test "$elapsed" -lt 30
check "dataflow-run says why it stopped the command" \
    grep -q 'superseded by a resubmit, its result will not be used: stopping the command' "$CLI_TMP/run.err"
check "and logs the outcome" grep -q 'rollup 2024-01-01 v1 attempt 1 (run [0-9]*): superseded' "$CLI_TMP/run.err"
check "the server's warning is not echoed raw" bash -c "! grep -q '^WARNING' '$CLI_TMP/run.err'"
expect_eq "the run ended (fail released its hold)" \
    "$(sql "SELECT status || ' ' || (finished_at IS NOT NULL) || ' ' || (error LIKE '%stopped early by dataflow-run%')
              FROM dataflow.runs WHERE dataset = 'daily'")" \
    "superseded true true"
expect_eq "the daily chunk waits for nobody: queued at version 2" \
    "$(sql "SELECT status || ' v' || version FROM dataflow.chunks WHERE dataset = 'daily'")" "queued v2"
cli_done
