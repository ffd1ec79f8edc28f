# Shared helpers for the worker integration tests (sourced, not a test itself:
# scripts/test.sh runs only *.sh). Needs scripts/lib.sh sourced first.
#   wt_setup [postgresql.conf lines...]   cluster + extension + receiver; sets WT_DIR, WT_URL
#   wt_sql SQL                             psql -tAq, stops on error
#   wt_wait DESCRIPTION SECONDS SQL        polls until SQL returns 't' (bounded)
#   wt_requests PATH                       how many requests the receiver got on PATH
#   wt_fail MESSAGE                        print diagnostics and exit 1

WT_DIR=; WT_RECEIVER_PID=; WT_URL=

wt_cleanup() {
    [ -n "$WT_RECEIVER_PID" ] && kill "$WT_RECEIVER_PID" 2>/dev/null
    if [ -n "$WT_DIR" ]; then
        df_cluster_stop "$WT_DIR"
        if [ -n "${WT_KEEP:-}" ]; then echo "kept $WT_DIR" >&2; else rm -rf "$WT_DIR"; fi
    fi
}

wt_fail() {
    echo "FAIL: $*" >&2
    if [ -n "$WT_DIR" ]; then
        echo "--- server.log (tail)" >&2; tail -30 "$WT_DIR/server.log" >&2
        echo "--- receiver log (tail)" >&2; tail -5 "$WT_DIR/requests.jsonl" 2>/dev/null | cut -c1-400 >&2
    fi
    exit 1
}

wt_sql() {
    df_as_user psql -X -tAq -v ON_ERROR_STOP=1 -d postgres -c "$1" || wt_fail "SQL failed: $1"
}

wt_wait() {
    local what=$1 seconds=$2 sql=$3 i
    for ((i = 0; i < seconds * 10; i++)); do
        [ "$(df_as_user psql -X -tAq -d postgres -c "$sql" 2>/dev/null)" = "t" ] && return 0
        sleep 0.1
    done
    wt_fail "timed out after ${seconds}s waiting for: $what"
}

wt_requests() {
    python3 - "$WT_DIR/requests.jsonl" "$1" <<'PY'
import json, sys
n = 0
try:
    for line in open(sys.argv[1]):
        if json.loads(line)["path"] == sys.argv[2]:
            n += 1
except FileNotFoundError:
    pass
print(n)
PY
}

# wt_start_receiver: (re)starts the receiver; WT_URL is its base URL. It checks
# webhook signatures with the secret in $WT_DIR/secret (write it there).
wt_start_receiver() {
    [ -n "$WT_RECEIVER_PID" ] && kill "$WT_RECEIVER_PID" 2>/dev/null
    rm -f "$WT_DIR/port"
    python3 "$ROOT/test/integration/receiver.py" "$WT_DIR/port" "$WT_DIR/requests.jsonl" "$WT_DIR/secret" \
        >>"$WT_DIR/receiver.out" 2>&1 &
    WT_RECEIVER_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do [ -s "$WT_DIR/port" ] && break; sleep 0.1; done
    [ -s "$WT_DIR/port" ] || wt_fail "receiver did not start"
    WT_URL="http://127.0.0.1:$(cat "$WT_DIR/port")"
}

wt_setup() {
    trap wt_cleanup EXIT
    WT_DIR=$(df_tmpdir)
    df_cluster_start "$WT_DIR" "dataflow.naptime = 200" "dataflow.http_allow = '127.0.0.1/32'" \
        "dataflow.http_timeout = 2000" "$@" || wt_fail "cluster did not start"
    wt_sql "CREATE EXTENSION pg_dataflow"
    wt_wait "the worker to find the extension" 30 \
        "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_dataflow worker'"
}

wt_worker_pid() {
    df_as_user psql -X -tAq -d postgres -c \
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_dataflow worker'"
}
