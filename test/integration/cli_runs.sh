#!/usr/bin/env bash
# dataflow-run against a real instance: success completes the chunk with the
# result file's numbers, a failing command fails the run with its stderr and is
# retried up to max_attempts, exit statuses 0/3, --once, a command that records
# its own outcome with DATAFLOW_TOKEN, a malformed result file.
set -uo pipefail
# shellcheck source=test/integration/cli_common.bash
. "$(dirname "$0")/cli_common.bash"
cli_setup
cli_flow 6 2
B=$CLI_TMP/bin

# Day 3 always fails; day 2 writes JSON, the others KEY=VALUE lines.
cli_script etl <<'EOF'
set -e
mkdir -p "$DATAFLOW_OUTPUT"
env | grep '^DATAFLOW_' | sort > "$DATAFLOW_OUTPUT/env"
cp "$DATAFLOW_TASK_FILE" "$DATAFLOW_OUTPUT/task.json"
echo "working on $DATAFLOW_KEY"
if [ "$DATAFLOW_KEY" = 2024-01-03 ]; then
    echo "noise line" >&2
    echo "cannot parse $DATAFLOW_KEY: bad header" >&2
    exit 7
fi
if [ "$DATAFLOW_KEY" = 2024-01-02 ]; then
    echo '{"row_count": 1234, "checksum": "md5:abc", "info": {"source": "json"}}' > "$DATAFLOW_RESULT_FILE"
else
    { echo "row_count=24"; echo "checksum=sum-$DATAFLOW_KEY"; echo "host=test"; } > "$DATAFLOW_RESULT_FILE"
fi
EOF

# --once with concurrency 2 leases exactly one batch of two chunks.
timeout 60 "$CLI" --job rollup --once --concurrency 2 -- "$B/etl" >"$CLI_TMP/once.out" 2>"$CLI_TMP/once.err"
expect_eq "--once exits 0 when its runs succeed" "$?" 0
expect_eq "--once leased one batch of 2" "$(sql "SELECT count(*) FROM dataflow.runs")" 2
expect_eq "day 1 ready" "$(chunk_status 2024-01-01)" ready
expect_eq "key=value result stored" \
    "$(sql "SELECT row_count || ' ' || checksum || ' ' || (info->>'host') FROM dataflow.chunks WHERE dataset = 'daily' AND key = '2024-01-01'")" \
    "24 sum-2024-01-01 test"
expect_eq "JSON result stored" \
    "$(sql "SELECT row_count || ' ' || checksum || ' ' || (info->>'source') FROM dataflow.chunks WHERE dataset = 'daily' AND key = '2024-01-02'")" \
    "1234 md5:abc json"
check "command stdout relayed with the key as prefix" grep -q '^\[2024-01-01\] working on 2024-01-01' "$CLI_TMP/once.out"
check "one log line per finished run" grep -q 'rollup 2024-01-02 v1 attempt 1 (run [0-9]*): succeeded' "$CLI_TMP/once.err"

env1=$CLI_TMP/work/daily/2024-01-01/v1/env
check "task environment" grep -q '^DATAFLOW_KEY=2024-01-01$' "$env1"
check "DATAFLOW_DATASET" grep -q '^DATAFLOW_DATASET=daily$' "$env1"
check "DATAFLOW_JOB / VERSION / ATTEMPT" \
    bash -c "grep -q '^DATAFLOW_JOB=rollup$' '$env1' && grep -q '^DATAFLOW_VERSION=1$' '$env1' && grep -q '^DATAFLOW_ATTEMPT=1$' '$env1'"
check "DATAFLOW_OUTPUT is the resolved location" grep -q "^DATAFLOW_OUTPUT=$CLI_TMP/work/daily/2024-01-01/v1$" "$env1"
check "DATAFLOW_INPUTS lists the input with its location" grep -q "^DATAFLOW_INPUTS=.*\"location\":\"$CLI_TMP/raw/2024-01-01\"" "$env1"
check "DATAFLOW_PARAMS, RUN_ID, TOKEN, RESULT_FILE set" \
    bash -c "grep -q '^DATAFLOW_PARAMS={}' '$env1' && grep -q '^DATAFLOW_RUN_ID=[0-9]' '$env1' && grep -q '^DATAFLOW_TOKEN=.\{36\}$' '$env1' && grep -q '^DATAFLOW_RESULT_FILE=/' '$env1'"
check "task file is the whole task as JSON" \
    python3 -c "import json,sys; t=json.load(open(sys.argv[1])); assert t['key']=='2024-01-01' and t['inputs'][0]['dataset']=='raw' and t['version']==1 and t['run_id']>0, t" \
    "$CLI_TMP/work/daily/2024-01-01/v1/task.json"
run_tmp=$(dirname "$(sed -n 's/^DATAFLOW_TASK_FILE=//p' "$env1")")
check "its temporary directory is removed at exit" test ! -e "$run_tmp"

# --until-idle: day 3 fails twice (max_attempts 2) and ends failed; exit status 3.
timeout 60 "$CLI" --job rollup --until-idle --concurrency 2 -- "$B/etl" >/dev/null 2>"$CLI_TMP/idle.err"
expect_eq "--until-idle exits 3 when a run failed" "$?" 3
expect_eq "failing day retried up to max_attempts" \
    "$(sql "SELECT string_agg(status, ',' ORDER BY attempt) FROM dataflow.runs WHERE key = '2024-01-03'")" "failed,failed"
expect_eq "failing day ends failed" "$(chunk_status 2024-01-03)" failed
expect_match "run error carries the exit status and the last stderr lines" \
    "$(sql "SELECT error FROM dataflow.runs WHERE key = '2024-01-03' AND attempt = 1")" \
    "exited with status 7.*noise line.*cannot parse 2024-01-03: bad header"
expect_eq "every other day ready" \
    "$(sql "SELECT count(*) FROM dataflow.chunks WHERE dataset = 'daily' AND status = 'ready'")" 5
check "failure logged with the last stderr line" grep -q '2024-01-03 .*failed .*exited with status 7.*bad header' "$CLI_TMP/idle.err"

# Nothing left: --until-idle and --once exit 0 at once.
timeout 20 "$CLI" --job rollup --until-idle -- "$B/etl" >/dev/null 2>&1
expect_eq "--until-idle with nothing to do exits 0" "$?" 0
timeout 20 "$CLI" --job rollup --once -- "$B/etl" >/dev/null 2>&1
expect_eq "--once with nothing to do exits 0" "$?" 0

# A command that completes its own run (as a loader would, in its transaction):
# dataflow-run notices the lease is no longer live and records nothing more.
sql "UPDATE dataflow.chunks SET status = 'resubmit' WHERE dataset = 'daily' AND key = '2024-01-04'"
cli_script self_complete <<'EOF'
psql -X -qAt -v ON_ERROR_STOP=1 -c "SELECT dataflow.complete('$DATAFLOW_TOKEN', row_count => 99)" >/dev/null
EOF
timeout 30 "$CLI" --job rollup --once -- "$B/self_complete" >/dev/null 2>"$CLI_TMP/self.err"
expect_eq "self-completing command: exit 0" "$?" 0
expect_eq "self-completed row count kept" \
    "$(sql "SELECT status || ' ' || version || ' ' || row_count FROM dataflow.chunks WHERE dataset = 'daily' AND key = '2024-01-04'")" \
    "ready 2 99"
check "self-completion noticed and logged" grep -q 'recorded by the command itself' "$CLI_TMP/self.err"

# A malformed result file fails the run instead of completing it.
sql "UPDATE dataflow.chunks SET status = 'resubmit' WHERE dataset = 'daily' AND key = '2024-01-05'"
cli_script bad_result <<'EOF'
echo "row_count=many" > "$DATAFLOW_RESULT_FILE"
EOF
timeout 30 "$CLI" --job rollup --once -- "$B/bad_result" >/dev/null 2>&1
expect_eq "malformed result file: exit 3" "$?" 3
expect_match "malformed result file: run failed with the reason" \
    "$(sql "SELECT status || ': ' || error FROM dataflow.runs WHERE key = '2024-01-05' ORDER BY run_id DESC LIMIT 1")" \
    "^failed: .*row_count must be a non-negative integer"

cli_done
