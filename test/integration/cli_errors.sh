#!/usr/bin/env bash
# dataflow-run's refusals: usage errors (2), a bad DSN and an unknown job (1),
# a command that is missing (127) or not executable (126) is refused before
# any lease, so no chunk is touched.
set -uo pipefail
# shellcheck source=test/integration/cli_common.bash
. "$(dirname "$0")/cli_common.bash"
cli_setup
cli_flow 3 2
cli_script ok <<'EOF'
exit 0
EOF
OK=$CLI_TMP/bin/ok

# run_cli ARGS...: sets RC and ERR (stderr) of a bounded run.
run_cli() {
    ERR=$(timeout 30 "$CLI" "$@" 2>&1 >/dev/null)
    RC=$?
}
no_runs() { [ "$(sql "SELECT count(*) FROM dataflow.runs")" = 0 ]; }

run_cli --help
expect_eq "--help exits 0" "$RC" 0

run_cli -- "$OK"
expect_eq "missing --job: exit 2" "$RC" 2
expect_match "missing --job: says so" "$ERR" "--job is required"

run_cli --job rollup
expect_eq "missing command: exit 2" "$RC" 2
expect_match "missing command: says so" "$ERR" "no command given"

run_cli --job rollup --concurrency 0 -- "$OK"
expect_eq "--concurrency 0: exit 2" "$RC" 2
run_cli --job rollup --concurrency=abc -- "$OK"
expect_eq "--concurrency=abc: exit 2" "$RC" 2
run_cli --job rollup --once --until-idle -- "$OK"
expect_eq "--once with --until-idle: exit 2" "$RC" 2
run_cli --job rollup --bogus -- "$OK"
expect_eq "unknown option: exit 2" "$RC" 2
expect_match "unknown option named" "$ERR" "unknown option '--bogus'"
run_cli --job rollup --lease-for 5 --heartbeat 10 -- "$OK"
expect_eq "heartbeat longer than the lease: exit 2" "$RC" 2

run_cli --job rollup --until-idle -- no-such-command-df "$OK"
expect_eq "command not on PATH: exit 127" "$RC" 127
expect_match "command not found message" "$ERR" "command not found: no-such-command-df"
run_cli --job rollup --until-idle -- "$CLI_TMP/bin/absent"
expect_eq "command path missing: exit 127" "$RC" 127
printf 'echo hi\n' > "$CLI_TMP/bin/noexec"
chmod 644 "$CLI_TMP/bin/noexec"
run_cli --job rollup --until-idle -- "$CLI_TMP/bin/noexec"
expect_eq "command not executable: exit 126" "$RC" 126
expect_match "not executable message" "$ERR" "not executable"
check "no chunk leased for a bad command" no_runs

run_cli --job rollup --until-idle --dsn "host=$CLI_TMP/nowhere port=1 connect_timeout=3" -- "$OK"
expect_eq "bad DSN: exit 1" "$RC" 1
expect_match "bad DSN: libpq's reason" "$ERR" "cannot connect to the database: .*nowhere"
run_cli --job rollup --until-idle --dsn "postgresql://%zz" -- "$OK"
expect_eq "malformed DSN: exit 1" "$RC" 1

run_cli --job no_such_job --until-idle -- "$OK"
expect_eq "unknown job: exit 1" "$RC" 1
expect_match "unknown job: named" "$ERR" "unknown job 'no_such_job'"
expect_match "unknown job far from every name: how to create one" "$ERR" "hint: Create it with dataflow.create_job"
# a typo: the server's did-you-mean hint reaches the log line (issue 19 item 7)
run_cli --job rolup --until-idle -- "$OK"
expect_eq "typo of a job: exit 1" "$RC" 1
expect_match "typo of a job: did you mean" "$ERR" "unknown job 'rolup': job \"rolup\" does not exist \(hint: Did you mean rollup\? Otherwise create it"
run_cli --job rollup --until-idle --worker "$(printf 'bad\tname')" -- "$OK"
expect_eq "worker name refused by lease(): exit 1" "$RC" 1
expect_match "worker name: the database's reason" "$ERR" "worker must be a printable name"
check "still no chunk leased" no_runs

# A well-formed DSN works and is passed on to the command as DATAFLOW_DSN; a
# role with only dataflow_worker's privileges is enough for dataflow-run.
sql "CREATE ROLE etl_worker LOGIN IN ROLE dataflow_worker"
cli_script show_dsn <<EOF
echo "\$DATAFLOW_DSN" > "$CLI_TMP/dsn"
EOF
dsn="host=$PGHOST port=$PGPORT dbname=postgres user=etl_worker"
run_cli --job rollup --until-idle --dsn "$dsn" -- "$CLI_TMP/bin/show_dsn"
expect_eq "explicit DSN, dataflow_worker role: exit 0" "$RC" 0
expect_eq "DATAFLOW_DSN exported" "$(cat "$CLI_TMP/dsn")" "$dsn"
expect_eq "runs recorded under the worker role" \
    "$(sql "SELECT count(*) FROM dataflow.runs WHERE status = 'succeeded'")" 3
expect_eq "all chunks ready" \
    "$(sql "SELECT count(*) FROM dataflow.chunks WHERE dataset = 'daily' AND status = 'ready'")" 3

cli_done
