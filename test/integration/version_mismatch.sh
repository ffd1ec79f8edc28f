#!/usr/bin/env bash
# The library and its SQL disagree, both ways. A package upgrade replaces the library
# before ALTER EXTENSION ... UPDATE runs (the SQL is behind); an update run before the
# restart that loads the new library leaves the library behind. Both are made here by
# setting pg_extension.extversion (a superuser's catalog write, in a throwaway cluster;
# test/integration/upgrade.sh has the real 0.1.0 -> 0.2.0 sequence). In each:
#   - every C function refuses with 55DF1, naming both versions and the fix, and leaves
#     nothing done; dataflow.library_version() still answers;
#   - the worker logs the mismatch once, waits (no restart, no crash loop) and does none
#     of its duties: pending webhook deliveries stay pending;
# and once the versions agree again the worker resumes within seconds and delivers.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh
. test/integration/worker_common.bash

wt_setup "dataflow.enabled = off"
wt_start_receiver
LIB=$(wt_sql "SELECT dataflow.library_version()")
[ "$LIB" = "$(sed -n "s/^default_version = '\(.*\)'/\1/p" pg_dataflow.control)" ] \
    || wt_fail "library_version() says '$LIB', the control file another version"
PID=$(wt_worker_pid)

# Work for the worker, made while it is disabled: two deliveries pending.
wt_sql "SELECT dataflow.subscribe('hook', '$WT_URL/hook/ok')" > "$WT_DIR/secret"  # the receiver checks signatures
wt_sql "SELECT dataflow.create_dataset('d', 'int')" >/dev/null
wt_sql "SELECT dataflow.register('d', '1')" >/dev/null
pending() { wt_sql "SELECT count(*) FROM dataflow.delivery WHERE status = 'pending'"; }
[ "$(pending)" -ge 1 ] || wt_fail "no pending delivery to hold back"
before=$(pending)

# psql_err SQL: the error of SQL, as "SQLSTATE|message|hint", or "ok"
psql_err() {
    df_as_user psql -X -tAq -d postgres -v VERBOSITY=verbose -c "$1" 2>&1 >/dev/null \
        | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\): /\1|/p; s/^HINT:  /hint|/p' | paste -sd'|' | grep . || echo ok
}

# check_mismatch EXTVERSION HINT_FRAGMENT WORKER_FRAGMENT
check_mismatch() {
    local ext=$1 hint=$2 wlog=$3 e n
    wt_sql "UPDATE pg_catalog.pg_extension SET extversion = '$ext' WHERE extname = 'pg_dataflow'" >/dev/null
    for q in "SELECT dataflow._key_canon('int', '7')" "SELECT dataflow.register('d', '2')" \
             "SELECT dataflow._wake()" "SELECT dataflow.expect('d', '1', '3')"; do
        e=$(psql_err "$q")
        case "$e" in
            "55DF1|pg_dataflow library $LIB does not match extension $ext installed in this database|hint|$hint"*) ;;
            *) wt_fail "with extension $ext, '$q' gave: $e" ;;
        esac
    done
    [ "$(wt_sql "SELECT count(*) FROM dataflow.chunk")" = 1 ] || wt_fail "a refused register left a chunk"
    [ "$(wt_sql "SELECT dataflow.library_version()")" = "$LIB" ] || wt_fail "library_version() refused"

    # the worker, enabled now, waits: one WARNING however many passes, nothing delivered
    wt_sql "ALTER SYSTEM SET dataflow.enabled = on" >/dev/null
    wt_sql "SELECT pg_reload_conf()" >/dev/null
    for ((i = 0; i < 100; i++)); do
        grep -q "worker: waiting: .*extension pg_dataflow $ext installed" "$WT_DIR/server.log" && break
        sleep 0.1
    done
    sleep 3   # fifteen naptimes
    n=$(grep -c "worker: waiting: .*extension pg_dataflow $ext installed; $wlog" "$WT_DIR/server.log")
    [ "$n" = 1 ] || wt_fail "worker logged the $ext mismatch $n times (want exactly once)"
    [ "$(pending)" = "$before" ] || wt_fail "the worker delivered while the versions disagreed"
    [ "$(wt_requests /hook/ok)" = 0 ] || wt_fail "the receiver got a request during the mismatch"
    [ "$(wt_worker_pid)" = "$PID" ] || wt_fail "the worker restarted during the mismatch"
    # between its sleeps it checks the extension again (that is its activity then)
    wt_wait "pg_stat_activity to say why the worker idles" 5 \
        "SELECT query LIKE '%not the library''s version%' FROM pg_stat_activity
          WHERE backend_type = 'pg_dataflow worker'"
    wt_sql "ALTER SYSTEM SET dataflow.enabled = off" >/dev/null
    wt_sql "SELECT pg_reload_conf()" >/dev/null
    sleep 0.5
}

# the SQL behind the library (after a package upgrade, before ALTER EXTENSION UPDATE)
check_mismatch 0.0.1 "Run ALTER EXTENSION pg_dataflow UPDATE in database \"postgres\"." \
    "run ALTER EXTENSION pg_dataflow UPDATE in that database"
# the library behind the SQL (ALTER EXTENSION UPDATE run before the restart)
check_mismatch 99.0.0 "Restart PostgreSQL so that it loads the pg_dataflow 99.0.0 library" \
    "restart PostgreSQL so that it loads the pg_dataflow 99.0.0 library"

# Versions agree again: the same worker resumes and delivers everything once.
wt_sql "UPDATE pg_catalog.pg_extension SET extversion = '$LIB' WHERE extname = 'pg_dataflow'" >/dev/null
[ "$(psql_err "SELECT dataflow._key_canon('int', '7')")" = ok ] || wt_fail "C functions still refuse"
wt_sql "ALTER SYSTEM SET dataflow.enabled = on" >/dev/null
wt_sql "SELECT pg_reload_conf()" >/dev/null
wt_wait "the pending deliveries" 15 "SELECT count(*) = 0 FROM dataflow.delivery WHERE status <> 'delivered'"
[ "$(wt_requests /hook/ok)" = "$before" ] || wt_fail "receiver got $(wt_requests /hook/ok) requests, want $before"
[ "$(wt_worker_pid)" = "$PID" ] || wt_fail "the worker restarted"
# An update made under the running worker stops it at its next duty, not at its next
# 10-second check: each duty's transaction checks the version first.
wt_sql "UPDATE pg_catalog.pg_extension SET extversion = '0.0.2' WHERE extname = 'pg_dataflow'" >/dev/null
for ((i = 0; i < 50; i++)); do
    grep -q "worker: waiting: .*extension pg_dataflow 0.0.2 installed" "$WT_DIR/server.log" && break
    sleep 0.1
done
grep -q "worker: waiting: .*extension pg_dataflow 0.0.2 installed" "$WT_DIR/server.log" \
    || wt_fail "the running worker did not stop within 5 s of the version change (the periodic check is 10 s)"
wt_sql "UPDATE pg_catalog.pg_extension SET extversion = '$LIB' WHERE extname = 'pg_dataflow'" >/dev/null
wt_wait "the worker to resume" 5 "SELECT query NOT LIKE '%not the library''s version%' FROM pg_stat_activity
                                  WHERE backend_type = 'pg_dataflow worker'"
grep -E "terminated by exit code|PANIC|TRAP" "$WT_DIR/server.log" && wt_fail "server log shows a worker exit"
echo "ok: version mismatch (SQL behind, library behind, resumed)"
