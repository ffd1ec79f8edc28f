# Shared by test/integration/cli_*.sh (sourced; not a test itself, hence .bash).
#   cli_setup            throwaway instance + CLI binary in $CLI; cleanup on exit
#   cli_flow DAYS [ATTEMPTS]  the minimal raw -> daily flow, DAYS daily chunks queued
#   sql "STATEMENT"      psql -At against the instance
#   check NAME CMD...    prints "ok   NAME" or "FAIL NAME", counts failures
#   expect_eq NAME GOT WANT
#   cli_done             exit status: 0 when every check passed
# The dataflow-run binary: $DATAFLOW_RUN, else build/dataflow-run (rebuilt when
# CMake configured build/), else the installed one next to pg_config, else one
# compiled here from src/cli.

CLI_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/lib.sh
. "$CLI_ROOT/scripts/lib.sh"

CLI_FAILED=0
CLI_BG_PIDS=()

check() {
    local name=$1; shift
    if "$@"; then echo "ok   $name"; else echo "FAIL $name"; CLI_FAILED=$((CLI_FAILED + 1)); fi
}

expect_eq() {
    if [ "$2" = "$3" ]; then echo "ok   $1"
    else echo "FAIL $1: got '$2', want '$3'"; CLI_FAILED=$((CLI_FAILED + 1)); fi
}

# expect_match NAME TEXT REGEX (newlines in TEXT match as spaces)
expect_match() {
    if printf '%s' "$2" | tr '\n' ' ' | grep -Eq -- "$3"; then echo "ok   $1"
    else echo "FAIL $1: '$2' does not match /$3/"; CLI_FAILED=$((CLI_FAILED + 1)); fi
}

sql() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }

cli_cleanup() {
    local p
    for p in "${CLI_BG_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    [ -n "${CLI_TMP:-}" ] && { df_cluster_stop "$CLI_TMP"; rm -rf "$CLI_TMP"; }
}

cli_find_binary() {
    local c
    # build/ is brought up to date first when CMake configured it (a no-op if it is).
    if [ -z "${DATAFLOW_RUN:-}" ] && [ -f "$CLI_ROOT/build/CMakeCache.txt" ]; then
        cmake --build "$CLI_ROOT/build" -j2 --target dataflow-run >/dev/null 2>&1 || true
    fi
    for c in "${DATAFLOW_RUN:-}" "$CLI_ROOT/build/dataflow-run" "$PG_BINDIR/dataflow-run"; do
        [ -n "$c" ] && [ -x "$c" ] && { CLI=$c; return 0; }
    done
    CLI=$CLI_TMP/dataflow-run
    g++ -std=c++17 -O1 -Wall -Wextra -Werror -I"$(pg_config --includedir)" \
        "$CLI_ROOT"/src/cli/*.cpp -lpq -o "$CLI" || { echo "FAIL cannot build dataflow-run"; exit 1; }
}

cli_setup() {
    trap cli_cleanup EXIT
    # Other suites start instances concurrently: a port found free can be taken
    # before our postmaster binds it, so start from a random base and retry.
    local try log
    for try in 1 2 3; do
        CLI_TMP=$(df_tmpdir)
        log=$CLI_TMP.start.log
        DF_PORT_BASE=$((57000 + RANDOM % 5000)) df_cluster_start "$CLI_TMP" 2>"$log" && break
        df_cluster_stop "$CLI_TMP"; rm -rf "$CLI_TMP"; CLI_TMP=
        [ "$try" -eq 3 ] && { cat "$log" >&2; rm -f "$log"; echo "FAIL cluster start"; exit 1; }
        rm -f "$log"
    done
    rm -f "$log"
    export PGDATABASE=postgres
    mkdir -p "$CLI_TMP/bin" "$CLI_TMP/work" "$CLI_TMP/tmp"
    # dataflow-run's own temporary directories go here, so even a killed one
    # leaves nothing behind.
    export TMPDIR=$CLI_TMP/tmp
    cli_find_binary
    echo "using $CLI"
}

# cli_flow DAYS [MAX_ATTEMPTS]: raw (source) -> rollup -> daily, keys 2024-01-01...
cli_flow() {
    local days=$1 attempts=${2:-2}
    local last
    last=$(date -u -d "2024-01-01 + $((days - 1)) days" +%F)
    sql "CREATE EXTENSION pg_dataflow" &&
    sql "SELECT dataflow.create_dataset('raw', 'date')" >/dev/null &&
    sql "SELECT dataflow.create_dataset('daily', 'date', location => '$CLI_TMP/work/{dataset}/{key}/v{version}')" >/dev/null &&
    sql "SELECT dataflow.create_job('rollup', output => 'daily', max_attempts => $attempts,
                                    backoff_min => '0 s', backoff_max => '0 s')" >/dev/null &&
    sql "SELECT dataflow.add_input('rollup', 'raw')" >/dev/null &&
    sql "SELECT dataflow.expect('daily', '2024-01-01', '$last')" >/dev/null &&
    sql "SELECT dataflow.register('raw', k::date::text, '$CLI_TMP/raw/' || k::date)
           FROM pg_catalog.generate_series('2024-01-01'::date, '$last'::date, '1 day') k" >/dev/null \
        || { echo "FAIL flow setup"; exit 1; }
}

# cli_script NAME <<'EOF' ... EOF: an executable command in $CLI_TMP/bin.
cli_script() {
    { echo '#!/usr/bin/env bash'; cat; } > "$CLI_TMP/bin/$1"
    chmod +x "$CLI_TMP/bin/$1"
}

# chunk_status KEY -> status of daily/KEY
chunk_status() { sql "SELECT status FROM dataflow.chunks WHERE dataset = 'daily' AND key = '$1'"; }

# wait_for SECONDS CMD...: poll CMD every 0.1 s until it succeeds or time runs out.
wait_for() {
    local limit=$(( $1 * 10 )) i=0; shift
    while [ $i -lt $limit ]; do "$@" && return 0; sleep 0.1; i=$((i + 1)); done
    return 1
}

cli_done() {
    if [ "$CLI_FAILED" -eq 0 ]; then echo "all checks passed"; exit 0; fi
    echo "$CLI_FAILED check(s) failed"; exit 1
}
