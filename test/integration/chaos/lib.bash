# Shared helpers for the reliability tests (chaos_*.sh, fuzz_sql.sh, churn.sh).
# Sourced after scripts/lib.sh; not a test itself (scripts/test.sh runs *.sh only).
#   rt_mode                  "full" when DF_FULL=1 (make chaos), else "short"
#   rt_setup [conf lines]    throwaway cluster + CREATE EXTENSION; sets RT_DIR
#   rt_sql SQL               psql -tAq, stops the test on error
#   rt_check NAME OK FIGURES print "ok|FAIL  NAME: FIGURES"; OK is 0 (pass) or not
#   rt_bg CMD...             start CMD in its own process group; its pid in RT_BG_PID
#   rt_finish                print the summary, exit non-zero when a check failed
# Every background process a test starts goes through rt_bg, so the trap can
# end exactly those process groups (and nothing else) on the way out.

RT_DIR=; RT_FAILED=0; RT_CHECKS=0; RT_PGIDS=()

rt_mode() { if [ "${DF_FULL:-0}" = 1 ]; then echo full; else echo short; fi; }

rt_cleanup() {
    local g
    for g in "${RT_PGIDS[@]}"; do
        kill -CONT -- "-$g" 2>/dev/null
        kill -KILL -- "-$g" 2>/dev/null
    done
    if [ -n "$RT_DIR" ]; then
        df_cluster_stop "$RT_DIR"
        if [ -n "${RT_KEEP:-}" ]; then echo "kept $RT_DIR" >&2; else rm -rf "$RT_DIR"; fi
    fi
}

rt_setup() {
    RT_DIR=$(df_tmpdir)
    trap rt_cleanup EXIT
    trap 'exit 130' INT TERM
    # df_cluster_start picks a random free port and retries on a clash; start
    # over (fresh initdb) if it still fails, e.g. while another suite's tests
    # make many ports answer at once.
    local try
    for try in 1 2 3; do
        df_cluster_start "$RT_DIR" "$@" 2>"$RT_DIR/start.err" && break
        [ "$try" -eq 3 ] && { cat "$RT_DIR/start.err" >&2; echo "FAIL: cluster did not start" >&2; exit 1; }
        df_cluster_stop "$RT_DIR"; rm -rf "$RT_DIR/data" "$RT_DIR/sock"
        sleep "$try"
    done
    rt_sql "CREATE EXTENSION pg_dataflow" >/dev/null
}

rt_psql() { df_as_user psql -X -tAq -d postgres "$@"; }

rt_sql() {
    local out
    out=$(rt_psql -v ON_ERROR_STOP=1 -c "$1" 2>&1) || {
        echo "FAIL: SQL failed: ${1:0:300}" >&2; echo "$out" | head -20 >&2
        [ -n "$RT_DIR" ] && { echo "--- server.log (tail)" >&2; tail -20 "$RT_DIR/server.log" >&2; }
        exit 1
    }
    printf '%s\n' "$out"
}

rt_check() {
    local name=$1 ok=$2 figures=$3
    RT_CHECKS=$((RT_CHECKS + 1))
    if [ "$ok" -eq 0 ]; then
        printf 'ok    %-40s %s\n' "$name" "$figures"
    else
        printf 'FAIL  %-40s %s\n' "$name" "$figures"
        RT_FAILED=$((RT_FAILED + 1))
    fi
}

# rt_le NAME VALUE LIMIT [UNIT]: passes when VALUE <= LIMIT (numbers, decimals allowed).
rt_le() {
    local ok=1
    awk -v v="$2" -v l="$3" 'BEGIN { exit !(v != "" && v + 0 <= l + 0) }' && ok=0
    rt_check "$1" $ok "$2${4:-} (limit ${3}${4:-})"
}

rt_bg() {
    setsid "$@" &
    RT_BG_PID=$!
    RT_PGIDS+=("$RT_BG_PID")
}

# No backend died of a signal and the postmaster did not restart (the server log says so).
rt_check_no_crash() {
    local n
    n=$(grep -cE 'terminated by signal|server process .* was terminated|all server processes terminated|PANIC' \
        "$RT_DIR/server.log" 2>/dev/null)
    rt_check "no backend crash" "$([ "${n:-0}" -eq 0 ] && echo 0 || echo 1)" "${n:-0} crash lines in server.log"
    [ "${n:-0}" -eq 0 ] || grep -E 'terminated by signal|PANIC' "$RT_DIR/server.log" | head -5
}

rt_finish() {
    echo "checks: $RT_CHECKS, failed: $RT_FAILED"
    if [ "$RT_FAILED" -ne 0 ]; then
        echo "--- server.log (tail)"; tail -15 "$RT_DIR/server.log"
        exit 1
    fi
    exit 0
}
