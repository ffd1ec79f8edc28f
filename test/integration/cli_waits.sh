#!/usr/bin/env bash
# dataflow-run says why it waits (a paused job, a job at its limit, nothing
# runnable), one line per reason, again only when the reason changes; and its exit
# status 3 means a chunk ended failed, not that a first attempt failed and its retry
# succeeded.
set -uo pipefail
# shellcheck source=test/integration/cli_common.bash
. "$(dirname "$0")/cli_common.bash"
cli_setup
cli_flow 3 2
B=$CLI_TMP/bin
RUN=$CLI_TMP/running
GO=$CLI_TMP/go
mkdir -p "$RUN" "$GO"
cli_script hold <<EOF
touch "$RUN/\$DATAFLOW_RUN_ID"
for _ in \$(seq 600); do [ -e "$GO/all" ] && break; sleep 0.1; done
rm -f "$RUN/\$DATAFLOW_RUN_ID"
EOF
running_is() { [ "$(find "$RUN" -type f | wc -l)" -eq "$1" ]; }
ERR=$CLI_TMP/wait.err
lines() { grep -c -- "$1" "$ERR"; }

# ---- paused
sql "SELECT dataflow.pause_job('rollup')" >/dev/null
"$CLI" --job rollup --concurrency 2 -- "$B/hold" >/dev/null 2>"$ERR" &
W=$!
CLI_BG_PIDS+=("$W")
check "a paused job: the worker says so" \
    wait_for 10 grep -q "job rollup is paused.*resume_job" "$ERR"
sleep 3   # at least one more lease at the 2 s idle backoff
expect_eq "one 'paused' line, not one per lease" "$(lines 'is paused')" 1

# ---- at its limit: 1 of 2 slots used, the job allows 1
sql "UPDATE dataflow.job SET max_concurrency = 1 WHERE name = 'rollup'"
sql "SELECT dataflow.resume_job('rollup')" >/dev/null
check "resumed: one command runs" wait_for 10 running_is 1
check "the worker says the job is at its limit" \
    wait_for 10 grep -q "job rollup is at its limit: 1 of max_concurrency 1 running" "$ERR"
sleep 3
expect_eq "one 'at its limit' line" "$(lines 'at its limit')" 1

# ---- nothing to run: the three chunks done, nothing queued
sql "UPDATE dataflow.job SET max_concurrency = NULL WHERE name = 'rollup'"
touch "$GO/all"
check "the three chunks are ready" wait_for 20 bash -c \
    "[ \$(psql -X -qAt -c \"SELECT count(*) FROM dataflow.chunks WHERE dataset = 'daily' AND status = 'ready'\") -eq 3 ]"
check "the worker says nothing is queued" wait_for 10 grep -q "nothing to run for job rollup: no chunk queued" "$ERR"
sleep 3
expect_eq "one 'nothing to run' line" "$(lines 'nothing to run')" 1
kill -TERM "$W"
wait "$W"
expect_eq "exit 0 after SIGTERM" "$?" 0
CLI_BG_PIDS=()

cli_script fail1 <<'EOF'
echo "attempt $DATAFLOW_ATTEMPT fails" >&2
exit 1
EOF

# ---- exit status: a retry that succeeds is not a failure
sql "UPDATE dataflow.job SET backoff_min = '0 s', backoff_max = '0 s' WHERE name = 'rollup'"
sql "UPDATE dataflow.chunks SET status = 'resubmit' WHERE dataset = 'daily'" >/dev/null
cli_script flaky <<'EOF'
[ "$DATAFLOW_ATTEMPT" -ge 2 ] && exit 0
echo "attempt $DATAFLOW_ATTEMPT: transient error" >&2
exit 1
EOF
timeout 60 "$CLI" --job rollup --concurrency 2 --until-idle -- "$B/flaky" >/dev/null 2>"$ERR"
expect_eq "every first attempt failed, every retry succeeded: exit 0" "$?" 0
expect_eq "3 chunks ready, after 6 runs" \
    "$(sql "SELECT count(*) FILTER (WHERE status = 'ready') || ' ' || sum(attempts) FROM dataflow.chunks WHERE dataset = 'daily'")" \
    "3 6"
check "the failed attempts are still logged" grep -q "attempt 1 (run [0-9]*): failed" "$ERR"

# ---- exit status: a chunk that ends failed
sql "UPDATE dataflow.chunks SET status = 'resubmit' WHERE dataset = 'daily' AND key = '2024-01-02'"
timeout 60 "$CLI" --job rollup --until-idle -- "$B/fail1" >/dev/null 2>"$ERR"
expect_eq "a chunk failed for good: exit 3" "$?" 3
expect_eq "it is failed" "$(chunk_status 2024-01-02)" failed

# ... also when the command recorded the failures itself
sql "UPDATE dataflow.chunks SET status = 'resubmit' WHERE dataset = 'daily' AND key = '2024-01-02'"
cli_script self_fail <<'EOF'
psql -X -qAt -v ON_ERROR_STOP=1 -c "SELECT dataflow.fail('$DATAFLOW_TOKEN', 'bad input')" >/dev/null
EOF
timeout 60 "$CLI" --job rollup --until-idle -- "$B/self_fail" >/dev/null 2>"$ERR"
expect_eq "failed for good by the command itself: exit 3" "$?" 3
# ... and a self-recorded failure whose retry succeeds is not
sql "UPDATE dataflow.chunks SET status = 'resubmit' WHERE dataset = 'daily' AND key = '2024-01-02'"
cli_script self_flaky <<'EOF'
[ "$DATAFLOW_ATTEMPT" -ge 2 ] && exit 0
psql -X -qAt -v ON_ERROR_STOP=1 -c "SELECT dataflow.fail('$DATAFLOW_TOKEN', 'transient')" >/dev/null
EOF
timeout 60 "$CLI" --job rollup --until-idle -- "$B/self_flaky" >/dev/null 2>"$ERR"
expect_eq "self-recorded failure, retry succeeded: exit 0" "$?" 0

# ---- nothing runnable: a chunk in retry backoff (last: a resubmit of a chunk in
# backoff keeps its not_before)
sql "UPDATE dataflow.job SET backoff_min = '1 hour', backoff_max = '1 hour' WHERE name = 'rollup'"
sql "UPDATE dataflow.chunks SET status = 'resubmit' WHERE dataset = 'daily' AND key = '2024-01-01'"
"$CLI" --job rollup -- "$B/fail1" >/dev/null 2>"$ERR" &
W=$!
CLI_BG_PIDS+=("$W")
check "a chunk in backoff: the worker says why nothing runs" \
    wait_for 10 grep -q "nothing runnable for job rollup now: 1 queued chunk in retry backoff" "$ERR"
kill -TERM "$W"
wait "$W"
expect_eq "stopped with its one chunk waiting for a retry of a failed attempt: exit 3" "$?" 3
CLI_BG_PIDS=()

cli_done
