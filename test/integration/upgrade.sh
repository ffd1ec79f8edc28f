#!/usr/bin/env bash
# The upgrade of a running installation, as a package upgrade does it: 0.1.0 (git tag
# v0.1.0, its library and its frozen install script) runs a flow in a private copy of the
# PostgreSQL tree, with its background worker; the current build is copied over it (the
# library of the new version, its install and upgrade scripts) and the cluster restarted.
#   - the window: library new, SQL old. Every call that reaches a C function fails with
#     55DF1 naming both versions and ALTER EXTENSION ... UPDATE; the worker logs the
#     mismatch once and waits (no crash loop, no lease reaped, no dispatch, no delivery).
#   - ALTER EXTENSION pg_dataflow UPDATE: the worker resumes within seconds, overdue leases
#     are reaped and retried, live leases complete with their old tokens, the http job's
#     retries are dispatched (with the connection's old secret), the incremental job cuts
#     its batch, resubmitted chunks re-run, every pending webhook delivery reaches a
#     receiver once, signed with the old secret, and the flow ends in the right states.
#   - the updated catalog equals a fresh install of the new version (test/catalog/
#     describe.sql, diffed with diff -u), and passes the catalog audit (test/catalog/
#     audit.sql); the same holds for an empty database updated from 0.1.0.
#   - self-tests: a deliberately broken update is caught by the diff, a PUBLIC grant on a
#     definer by the audit, a missing C symbol and a release without an upgrade path by
#     the static checks.
# Static checks first: src/sql/released.sha256 matches the frozen scripts, every frozen
# release has an upgrade path to the control file's default_version, and every
# AS 'MODULE_PATHNAME', 'symbol' of any install or upgrade script exists in the new library.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh

OLD=0.1.0                 # the release installed first
UP=; UP_RCV=; UP_PGDATA_STARTED=
WINDOW_FAILS=()
up_cleanup() {
    [ -n "$UP_RCV" ] && kill "$UP_RCV" 2>/dev/null
    if [ -n "$UP" ]; then
        [ -n "$UP_PGDATA_STARTED" ] && df_as_user "$PBIN/pg_ctl" -D "$UP/data" -m fast -w -t 60 stop >/dev/null 2>&1
        rm -rf "$UP"
    fi
}
trap up_cleanup EXIT
trap 'exit 1' TERM
# fail MESSAGE: also from a command substitution, whose exit would end only the subshell
fail() {
    echo "FAIL: $*" >&2
    [ -n "$UP" ] && [ -f "$UP/server.log" ] && { echo "--- server.log (tail)" >&2; tail -20 "$UP/server.log" >&2; }
    [ "$BASHPID" != "$$" ] && kill -TERM $$
    exit 1
}
t_start=$(date +%s)
elapsed() { echo "$(($(date +%s) - t_start)) s"; }

# ---- static checks ---------------------------------------------------------------------
DEFV=$(sed -n "s/^default_version = '\(.*\)'/\1/p" pg_dataflow.control)
[ -n "$DEFV" ] || fail "no default_version in pg_dataflow.control"
(cd src/sql && sha256sum --quiet -c released.sha256) || fail "src/sql/released.sha256 does not match the frozen scripts"

# upgrade_paths DIR TARGET: one line per frozen release pg_dataflow--A.sql in DIR that has
# no chain of pg_dataflow--X--Y.sql files from A to TARGET, or is not in DIR/released.sha256.
upgrade_paths() {
    python3 - "$1" "$2" <<'PY'
import os, re, sys
d, target = sys.argv[1], sys.argv[2]
names = os.listdir(d)
frozen = sorted(m.group(1) for m in (re.fullmatch(r"pg_dataflow--([^-]+)\.sql", n) for n in names) if m)
edges = {}
for n in names:
    m = re.fullmatch(r"pg_dataflow--([^-]+)--([^-]+)\.sql", n)
    if m:
        edges.setdefault(m.group(1), []).append(m.group(2))
sums = set()
if os.path.exists(os.path.join(d, "released.sha256")):
    sums = {l.split()[-1] for l in open(os.path.join(d, "released.sha256")) if l.strip()}
for a in frozen:
    if a == target:
        print("pg_dataflow--%s.sql: the default_version's install script is frozen in src/sql" % a)
        continue
    if "pg_dataflow--%s.sql" % a not in sums:
        print("pg_dataflow--%s.sql: no checksum in released.sha256" % a)
    seen, todo = {a}, [a]
    while todo:
        for b in edges.get(todo.pop(), []):
            if b not in seen:
                seen.add(b); todo.append(b)
    if target not in seen:
        print("pg_dataflow--%s.sql: no upgrade path to %s (have: %s)" % (a, target, sorted(seen - {a}) or "none"))
PY
}
problems=$(upgrade_paths src/sql "$DEFV")
[ -z "$problems" ] || fail "releases without an upgrade path: $problems"
[ -f "src/sql/pg_dataflow--$OLD.sql" ] || fail "src/sql/pg_dataflow--$OLD.sql (the frozen $OLD) is missing"
# self-test: a release without a path, one without a checksum
st=$(mktemp -d); touch "$st/pg_dataflow--0.0.9.sql" "$st/pg_dataflow--0.1.0.sql" "$st/pg_dataflow--0.1.0--0.2.0.sql"
echo "x  pg_dataflow--0.1.0.sql" > "$st/released.sha256"
problems=$(upgrade_paths "$st" 0.2.0); rm -rf "$st"
[[ $problems == *"0.0.9.sql: no checksum"* && $problems == *"0.0.9.sql: no upgrade path"* \
   && $problems != *"0.1.0.sql"* ]] || fail "self-test: the upgrade path check did not flag 0.0.9: $problems"

echo "== build"
make -s -j2 PG_CONFIG="$PG_BINDIR/pg_config" pg_dataflow.so "pg_dataflow--$DEFV.sql" >/dev/null \
    || fail "make (the current build)"

# missing_symbols SO SCRIPT...: every 'MODULE_PATHNAME', 'symbol' of the scripts that the
# library does not define (with its pg_finfo_ record), one a line
missing_symbols() {
    local so=$1; shift
    local defined; defined=$(nm -D --defined-only "$so" | awk '{print $NF}' | sort -u)
    cat "$@" | tr '\n' ' ' | grep -oE "'MODULE_PATHNAME'[[:space:]]*,[[:space:]]*'[A-Za-z_][A-Za-z0-9_]*'" \
        | sed -E "s/.*'([A-Za-z0-9_]+)'$/\1/" | sort -u | while read -r sym; do
            grep -qx "$sym" <<<"$defined" || echo "$sym"
            grep -qx "pg_finfo_$sym" <<<"$defined" || echo "pg_finfo_$sym"
        done
}
scripts=(src/sql/pg_dataflow--*.sql "pg_dataflow--$DEFV.sql")
nsyms=$(cat "${scripts[@]}" | tr '\n' ' ' | grep -oE "'MODULE_PATHNAME'[[:space:]]*,[[:space:]]*'[A-Za-z0-9_]+'" | sort -u | wc -l)
[ "$nsyms" -ge 5 ] || fail "found only $nsyms C symbols in ${scripts[*]}"
missing=$(missing_symbols pg_dataflow.so "${scripts[@]}")
[ -z "$missing" ] || fail "symbols named by the SQL scripts but not in pg_dataflow.so: $missing"
st=$(mktemp); printf "CREATE FUNCTION f() RETURNS int\nAS 'MODULE_PATHNAME',\n   'df_no_such_symbol' LANGUAGE C;\n" > "$st"
[ "$(missing_symbols pg_dataflow.so "$st" | tr '\n' ' ')" = "df_no_such_symbol pg_finfo_df_no_such_symbol " ] \
    || { rm -f "$st"; fail "self-test: the symbol check missed df_no_such_symbol"; }
rm -f "$st"
echo "static: checksums ok, upgrade paths to $DEFV ok, $nsyms C symbols of ${#scripts[@]} scripts in the library"

# ---- a private PostgreSQL tree -------------------------------------------------------
UP=$(df_tmpdir)
PRIV=$UP/pg
pkglib=$("$PG_BINDIR/pg_config" --pkglibdir); share=$("$PG_BINDIR/pg_config" --sharedir)
base=$(cd "$pkglib/.." && pwd -P)
case "$PG_BINDIR/" in "$base"/*) ;; *) fail "$PG_BINDIR is not under $base: cannot copy the tree";; esac
mkdir -p "$PRIV$base" "$PRIV$share"
cp -a "$base/." "$PRIV$base/" && cp -a "$share/." "$PRIV$share/" || fail "copying the PostgreSQL tree"
PBIN=$PRIV$PG_BINDIR PLIB=$PRIV$pkglib PEXT=$PRIV$share/extension
[ "$("$PBIN/pg_config" --sharedir)" = "$PRIV$share" ] && [ "$("$PBIN/pg_config" --pkglibdir)" = "$PLIB" ] \
    || fail "the copied tree is not relocatable: its pg_config says $("$PBIN/pg_config" --sharedir)"
rm -rf "$PLIB"/pg_dataflow.so "$PLIB"/bitcode/pg_dataflow* "$PEXT"/pg_dataflow[.-]*

# the old release, as its package installs it
old_rc=0; scripts/release_build.sh "$OLD" "$UP/old" || old_rc=$?
case $old_rc in
    0) old_from="v$OLD";;
    3) old_from="the working tree built as $OLD (NOTE above: tag v$OLD is missing)";;
    *) fail "building the $OLD release";;
esac
cp "$UP/old/pg_dataflow.so" "$PLIB/" && cp "$UP/old/pg_dataflow.control" "$UP/old/pg_dataflow--$OLD.sql" "$PEXT/" \
    || fail "installing $OLD into the private tree"
echo "private tree: $PRIV$base, $PRIV$share; $OLD from $old_from ($(elapsed))"

# up_cluster_start: initdb and start with the private tree's binaries (lib.sh's
# df_cluster_start, with the bindir of the copy)
up_cluster_start() {
    local port attempt
    df_as_user "$PBIN/initdb" -D "$UP/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >"$UP/initdb.log" 2>&1 \
        || { cat "$UP/initdb.log" >&2; return 1; }
    mkdir -p "$UP/sock"; [ "$(id -u)" -eq 0 ] && chown "$DF_USER" "$UP/sock"
    {
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$UP/sock'"
        echo "shared_preload_libraries = 'pg_dataflow'"
        echo "max_connections = 100"
        echo "log_min_messages = warning"
        echo "log_line_prefix = '%m [%p] %q%a '"
        echo "dataflow.naptime = 200"
        echo "dataflow.http_allow = '127.0.0.1/32'"
        echo "dataflow.http_timeout = 2000"
    } >> "$UP/data/postgresql.conf"
    for attempt in 1 2 3 4 5; do
        port=$(df_free_port $((20000 + RANDOM % 40000)))
        echo "port = $port" >> "$UP/data/postgresql.conf"
        if df_as_user "$PBIN/pg_ctl" -D "$UP/data" -l "$UP/server.log" -w -t 60 start >/dev/null; then
            UP_PGDATA_STARTED=1
            export PGHOST="$UP/sock" PGPORT="$port" PGUSER=postgres
            return 0
        fi
        grep -q "already in use" "$UP/server.log" 2>/dev/null || break
    done
    cat "$UP/server.log" >&2
    return 1
}

# q DB SQL: one statement, tuples only; stops the test on error. qv DB SQL: the same with
# verbose errors, never stopping, stdout and stderr together (for expected errors).
q() { df_as_user "$PBIN/psql" -X -tAq -v ON_ERROR_STOP=1 -d "$1" -c "$2" || fail "SQL failed on $1: $2"; }
qv() { df_as_user "$PBIN/psql" -X -tAq -v VERBOSITY=verbose -d "$1" -c "$2" 2>&1; }
wait_for() { # wait_for DB WHAT SECONDS SQL (errors count as not yet)
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        [ "$(df_as_user "$PBIN/psql" -X -tAq -d "$1" -c "$4" 2>/dev/null)" = t ] && return 0
        sleep 0.1
    done
    fail "timed out after $3 s waiting for: $2"
}
describe() { # describe DB FILE: the catalog listing of DB
    df_as_user "$PBIN/psql" -X -tAq -v ON_ERROR_STOP=1 -d "$1" -f - <"$ROOT/test/catalog/describe.sql" > "$2" \
        || fail "test/catalog/describe.sql failed on $1"
    [ "$(wc -l < "$2")" -ge 500 ] || fail "the catalog listing of $1 has only $(wc -l < "$2") lines"
}
audit() { df_as_user "$PBIN/psql" -X -tAq -v ON_ERROR_STOP=1 -d "$1" -f - <"$ROOT/test/catalog/audit.sql" \
              || fail "test/catalog/audit.sql failed on $1"; }
window_check() { # window_check WHAT OK? DETAIL: a failed check of the mismatch window, reported at the end
    [ "$2" = ok ] && return 0
    echo "FAIL (window): $1: $3" >&2
    WINDOW_FAILS+=("$1")
}
worker_pid() { q postgres "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_dataflow worker'"; }
chunk() { # chunk DATASET KEY: status:version:attempts
    q postgres "SELECT c.status || ':' || c.version || ':' || c.attempts FROM dataflow.chunk c
                  JOIN dataflow.dataset d ON d.id = c.dataset_id WHERE d.name = '$1' AND c.key = '$2'"
}

# ---- 0.1.0 runs a flow --------------------------------------------------------------
up_cluster_start || fail "the cluster did not start"
q postgres "CREATE EXTENSION pg_dataflow"
[ "$(q postgres "SELECT extversion FROM pg_extension WHERE extname = 'pg_dataflow'")" = "$OLD" ] \
    || fail "CREATE EXTENSION did not install $OLD"
wait_for postgres "the $OLD worker" 30 \
    "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_dataflow worker'
        AND query NOT LIKE '%idle%'"
down_port=$(df_free_port $((20000 + RANDOM % 40000)))   # nothing listens here: receiver and engine are down
q postgres "SELECT dataflow.create_dataset('raw', 'date', location => 's3://lake/{dataset}/{key}/v{version}/')" >/dev/null
q postgres "SELECT dataflow.create_dataset('mid', 'date', requires_validation => true)" >/dev/null
q postgres "SELECT dataflow.create_dataset('out', 'date')" >/dev/null
q postgres "SELECT dataflow.create_dataset('batches', 'int')" >/dev/null
q postgres "SELECT dataflow.create_dataset('feed', 'int')" >/dev/null
q postgres "SELECT dataflow.create_dataset('shipped', 'int')" >/dev/null
q postgres "SELECT dataflow.create_pool('etl', 8)" >/dev/null
q postgres "SELECT dataflow.create_connection('engine', 'http', 'http://127.0.0.1:$down_port', auth => 'bearer',
                                              secret => 'conn-secret-7f3a9c')" >/dev/null
q postgres "SELECT dataflow.create_job('build_mid', output => 'mid', pool => 'etl', max_attempts => 3,
                                       backoff_min => '6 s', backoff_max => '6 s')" >/dev/null
q postgres "SELECT dataflow.add_input('build_mid', 'raw')" >/dev/null
q postgres "SELECT dataflow.create_job('build_out', output => 'out', backoff_min => '0 s', backoff_max => '0 s')" >/dev/null
q postgres "SELECT dataflow.add_input('build_out', 'mid', mapping => 'window', lo => -1, hi => 0, require => 'ready')" >/dev/null
q postgres "SELECT dataflow.create_job('batcher', output => 'batches')" >/dev/null
q postgres "SELECT dataflow.add_input('batcher', 'raw', mapping => 'incremental')" >/dev/null
# the worker's own job: http dispatch through the connection, retried every 2 s
q postgres "SELECT dataflow.create_job('ship', output => 'shipped', dispatch => 'http', connection => 'engine',
                                       target => '/dispatch/succeed', max_attempts => 20,
                                       backoff_min => '2 s', backoff_max => '2 s')" >/dev/null
q postgres "SELECT dataflow.add_input('ship', 'feed')" >/dev/null
hook_secret=$(q postgres "SELECT dataflow.subscribe('portal', 'http://127.0.0.1:$down_port/hook/ok',
                                                   datasets => '{mid,out,shipped}')")
[[ $hook_secret == whsec_* ]] || fail "subscribe returned no secret"
q postgres "SELECT dataflow.expect('mid', '2024-01-01', '2024-01-14')" >/dev/null
q postgres "SELECT dataflow.expect('out', '2024-01-02', '2024-01-14')" >/dev/null
q postgres "SELECT dataflow.expect('shipped', '1', '3')" >/dev/null
for d in 01 02 03 04 05 06 07 08 09 10; do
    q postgres "SELECT dataflow.register('raw', '2024-01-$d', row_count => 1$d)" >/dev/null
done
q postgres "SELECT dataflow.skip('raw', '2024-01-11', 'holiday: no data')" >/dev/null
q postgres "SELECT dataflow.validate('raw', '2024-01-01', true, '{\"rows\": \"ok\"}')" >/dev/null
# mid: 01 02 done (01 validated), 03 failed for good, 04 failed last with a retry pending
# (6 s), 05 a live lease (1 h), 06 07 leases cut to 10 s just before the upgrade (overdue in
# the window), 08 done and resubmitted (version 2), 09 10 11 queued (11: its raw skipped),
# 12-14 waiting for raw
lease() { q postgres "SELECT token FROM dataflow.lease('$1', '$2', 1, ${3:-NULL})"; }
for i in 1 2; do
    t=$(lease build_mid w-done); [ -n "$t" ] || fail "no lease for build_mid"
    q postgres "SELECT dataflow.complete('$t', row_count => 10$i)" >/dev/null
done
q postgres "SELECT dataflow.validate('mid', '2024-01-01', true)" >/dev/null
t=$(lease build_mid w-fail); q postgres "SELECT dataflow.fail('$t', 'bad input', retry => false)" >/dev/null
flaky_token=$(lease build_mid w-flaky)
live_token=$(lease build_mid w-live "'1 hour'")
lost_tokens=$(q postgres "SELECT string_agg(token::text, ' ') FROM dataflow.lease('build_mid', 'w-lost', 2, '1 hour')")
[ -n "$flaky_token" ] && [ -n "$live_token" ] && [ "$(wc -w <<<"$lost_tokens")" = 2 ] || fail "leasing mid 04-07"
t=$(lease build_mid w-resub); q postgres "SELECT dataflow.complete('$t', row_count => 108)" >/dev/null
[ "$(chunk mid 2024-01-08)" = "ready:1:1" ] || fail "mid 08 before the resubmit: $(chunk mid 2024-01-08)"
q postgres "UPDATE dataflow.chunks SET status = 'resubmit' WHERE dataset = 'mid' AND key = '2024-01-08'" >/dev/null
[ "$(chunk mid 2024-01-08)" = "queued:2:0" ] || fail "mid 08 after the resubmit: $(chunk mid 2024-01-08)"
t=$(lease build_out w-out); [ -n "$t" ] || fail "no lease for build_out"
q postgres "SELECT dataflow.complete('$t', row_count => 1)" >/dev/null    # out 02 (mid 01 02 ready)
# deliveries fail against the down receiver: attempts recorded by the $OLD worker
wait_for postgres "a failed delivery attempt" 20 "SELECT count(*) > 0 FROM dataflow.delivery_attempt"
# the http job: its input arrives, the worker dispatches to the down engine and schedules retries
for k in 1 2 3; do q postgres "SELECT dataflow.register('feed', '$k')" >/dev/null; done
wait_for postgres "failed dispatches of ship" 20 "SELECT count(DISTINCT r.chunk_id) = 3 FROM dataflow.run r
    JOIN dataflow.job j ON j.id = r.job_id WHERE j.name = 'ship' AND r.status = 'failed'"
q postgres "SELECT dataflow.fail('$flaky_token', 'flaky network')" >/dev/null
for t in $lost_tokens; do q postgres "SELECT dataflow.heartbeat('$t', '10 seconds')" >/dev/null; done
lost_deadline=$(q postgres "SELECT max(deadline) FROM dataflow.run WHERE worker = 'w-lost'")
state=$(q postgres "SELECT string_agg(status || ':' || n, ' ' ORDER BY status)
                      FROM (SELECT status, count(*) n FROM dataflow.chunk GROUP BY 1) s")
echo "$OLD flow: $state; $(q postgres "SELECT count(*) FROM dataflow.event") events," \
     "$(q postgres "SELECT count(*) FILTER (WHERE status = 'pending') || ' of ' || count(*) FROM dataflow.delivery") deliveries pending ($(elapsed))"
for s in running queued waiting failed ready validated skipped; do
    [[ " $state" == *" $s:"* ]] || fail "the $OLD flow has no $s chunk ($state)"
done
[ "$(chunk mid 2024-01-04)" = "queued:1:1" ] && q postgres "SELECT not_before > now() FROM dataflow.chunk c
    JOIN dataflow.dataset d ON d.id = c.dataset_id WHERE d.name = 'mid' AND c.key = '2024-01-04'" | grep -qx t \
    || fail "mid 04 is not waiting for its retry: $(chunk mid 2024-01-04)"
q postgres "SELECT count(*) > 0 FROM dataflow.incremental_pending" | grep -qx t || fail "no incremental input pending"
q postgres "SELECT count(*) = 2 FROM dataflow.run WHERE worker = 'w-lost' AND status = 'running'" | grep -qx t \
    || fail "the two short leases are not running"
# an operator's own grant, on a view and a role membership: kept by the update
q postgres "CREATE ROLE up_bi NOLOGIN; GRANT SELECT ON dataflow.chunks TO up_bi; GRANT dataflow_reader TO up_bi" >/dev/null
pending_before=$(q postgres "SELECT string_agg(id::text, ',' ORDER BY id) FROM dataflow.delivery WHERE status = 'pending'")
[ -n "$pending_before" ] || fail "no pending delivery"

# ---- the package upgrade: the new library and scripts, a restart -----------------------
cp pg_dataflow.so "$PLIB/pg_dataflow.so.new" && mv "$PLIB/pg_dataflow.so.new" "$PLIB/pg_dataflow.so" \
    && cp pg_dataflow.control "pg_dataflow--$DEFV.sql" src/sql/pg_dataflow--*--*.sql "$PEXT/" \
    || fail "installing the new build into the private tree"
# The wrong order: ALTER EXTENSION before the restart. The server still runs the old
# library (a preloaded library is found again by its file name), which lacks the new C
# functions: the update must fail and change nothing (docs/operations.md, Upgrading).
# Without the tag the "old" library is the working tree's, which has the new C functions:
# the update would succeed, so this step proves nothing there and is left out, loudly.
if [ "$old_rc" = 0 ]; then
    wrong=$(df_as_user "$PBIN/psql" -X -tAq -d postgres -c "ALTER EXTENSION pg_dataflow UPDATE" 2>&1)
    [[ $wrong == *"could not find function"* ]] || fail "ALTER EXTENSION before the restart did not fail as documented: $wrong"
    [ "$(q postgres "SELECT extversion FROM pg_extension WHERE extname = 'pg_dataflow'")" = "$OLD" ] \
        || fail "a failed ALTER EXTENSION changed the installed version"
else
    echo "NOTE: skipped the ALTER EXTENSION before the restart (the old library is not v$OLD's without the tag)"
fi
df_as_user "$PBIN/pg_ctl" -D "$UP/data" -m fast -w -t 60 stop >/dev/null || fail "stopping the $OLD cluster"
log_from=$(($(stat -c %s "$UP/server.log") + 1))    # the log of the new start on
newlog() { tail -c +"$log_from" "$UP/server.log"; }
stopped_at=$(date '+%Y-%m-%d %H:%M:%S.%N%z')
df_as_user "$PBIN/pg_ctl" -D "$UP/data" -l "$UP/server.log" -w -t 60 start >/dev/null \
    || fail "the restart with the $DEFV library"
restarted=$(date +%s.%N)
# what the worker would change: runs started, delivery attempts, events, the leases, the chunks
snapshot="SELECT (SELECT count(*) FROM dataflow.run WHERE started_at > '$stopped_at' OR finished_at > '$stopped_at')
           || ' ' || (SELECT count(*) FROM dataflow.delivery_attempt WHERE at > '$stopped_at')
           || ' ' || (SELECT count(*) FROM dataflow.event WHERE at > '$stopped_at')
           || ' ' || (SELECT string_agg(status, ',' ORDER BY id) FROM dataflow.run WHERE worker = 'w-lost')
           || ' ' || (SELECT md5(string_agg(c::text, ',' ORDER BY c.id)) FROM dataflow.chunk c)
           || ' ' || (SELECT md5(string_agg(d::text, ',' ORDER BY d.id)) FROM dataflow.delivery d)"
before=$(q postgres "$snapshot")
[[ $before == "0 0 0 running,running "* ]] || window_check "nothing happened at the start of the window" bad "$before"

# ---- the window: library $DEFV, SQL $OLD --------------------------------------------------
wait_for postgres "the worker after the restart" 20 \
    "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_dataflow worker'"
for ((i = 0; i < 100; i++)); do newlog | grep -q "pg_dataflow worker: waiting" && break; sleep 0.1; done
pid1=$(worker_pid)
out=$(qv postgres "SELECT dataflow._key_canon('date', '2024-01-01')")
[[ $out == *"ERROR:  55DF1:"* && $out == *"library $DEFV"* && $out == *"extension $OLD"* \
   && $out == *"HINT:"*"ALTER EXTENSION pg_dataflow UPDATE"* ]] && r=ok || r=bad
window_check "a C function (dataflow._key_canon) refuses with 55DF1, both versions and the hint" $r "$out"
out=$(qv postgres "SELECT dataflow.register('raw', '2024-01-12')")
[[ $out == *"ERROR:  55DF1:"* && $out == *"library $DEFV"* && $out == *"extension $OLD"* ]] && r=ok || r=bad
window_check "a public function reaching C code (dataflow.register) refuses the same way" $r "$out"
[ "$(chunk raw 2024-01-12)" = "waiting:1:0" ] && r=ok || r=bad
window_check "the refused register changed nothing" $r "raw 2024-01-12 is $(chunk raw 2024-01-12)"
# plain reads of the tables still work
[ "$(q postgres "SELECT count(*) > 0 FROM dataflow.chunk")" = t ] || fail "reading dataflow.chunk in the window"
# hold the window open past the short leases' deadline and the http retries' due time:
# a running worker would reap, dispatch and attempt deliveries now
wait_for postgres "the short leases' deadline" 20 "SELECT now() > '$lost_deadline'::timestamptz + interval '2 seconds'"
for ((i = 0; i < 100; i++)); do
    [ "$(q postgres "SELECT bool_and(c.not_before < now() - interval '1 second') FROM dataflow.chunk c
                       JOIN dataflow.dataset d ON d.id = c.dataset_id WHERE d.name = 'shipped'")" = t ] && break
    sleep 0.1
done
[ "$i" -lt 100 ] && r=ok || r=bad
window_check "the http job's retries are due and stay undispatched" $r \
    "$(q postgres "SELECT string_agg(c.key || ':' || c.status || ':' || c.not_before, ' ') FROM dataflow.chunk c
                     JOIN dataflow.dataset d ON d.id = c.dataset_id WHERE d.name = 'shipped'")"
after=$(q postgres "$snapshot")
[ "$before" = "$after" ] && r=ok || r=bad
window_check "nothing happened while the worker waited (runs, delivery attempts, events, leases, chunks)" $r \
    "before: $before / after: $after"
[[ $(q postgres "SELECT string_agg(status, ',') FROM dataflow.run WHERE worker = 'w-lost'") == running,running ]] \
    && r=ok || r=bad
window_check "the overdue leases are not reaped in the window" $r "$(q postgres "SELECT string_agg(status, ',') FROM dataflow.run WHERE worker = 'w-lost'")"
pid2=$(worker_pid)
[ -n "$pid1" ] && [ "$pid1" = "$pid2" ] && r=ok || r=bad
window_check "the worker waits in one process (no restart)" $r "pid $pid1 then $pid2"
n=$(newlog | grep -c "pg_dataflow worker: waiting")
[ "$n" = 1 ] && newlog | grep "pg_dataflow worker: waiting" | grep -q "$DEFV" && newlog | grep "pg_dataflow worker: waiting" \
    | grep -q "$OLD" && newlog | grep "pg_dataflow worker: waiting" | grep -q "ALTER EXTENSION pg_dataflow UPDATE" \
    && r=ok || r=bad
window_check "exactly one worker log line names the mismatch, both versions and the fix" $r \
    "$n lines: $(newlog | grep "pg_dataflow worker" | head -5)"
newlog | grep -E '"pg_dataflow worker".*(exited with exit code|terminated by)' >&2 && r=bad || r=ok
window_check "no exit of the worker after the restart" $r "see above"
window_s=$(echo "$(date +%s.%N) - $restarted" | bc)
echo "window: held $(printf %.1f "$window_s") s; worker pid $pid2; $(newlog | grep "pg_dataflow worker: waiting" | sed 's/.*WARNING: *//' | head -1)"

# ---- ALTER EXTENSION pg_dataflow UPDATE ------------------------------------------------
log_from=$(($(stat -c %s "$UP/server.log") + 1))
updated_at=$(date +%s.%N)
q postgres "ALTER EXTENSION pg_dataflow UPDATE" >/dev/null
[ "$(q postgres "SELECT extversion FROM pg_extension WHERE extname = 'pg_dataflow'")" = "$DEFV" ] \
    || fail "ALTER EXTENSION UPDATE did not reach $DEFV"
for ((i = 0; i < 150; i++)); do newlog | grep -q "pg_dataflow worker: extension found" && break; sleep 0.1; done
newlog | grep -q "pg_dataflow worker: extension found" || fail "the worker did not resume within 15 s of the update"
resume_s=$(echo "$(date +%s.%N) - $updated_at" | bc)
# overdue leases: the worker reaps them (nobody calls reap)
wait_for postgres "the worker to reap the overdue leases" 15 \
    "SELECT string_agg(status, ',') = 'expired,expired' FROM dataflow.run WHERE worker = 'w-lost'"
echo "updated to $DEFV: the worker resumed after $(printf %.1f "$resume_s") s and reaped the overdue leases ($(elapsed))"
if [ "$(q postgres "SELECT to_regprocedure('dataflow.library_version()') IS NOT NULL")" = t ]; then
    [ "$(q postgres "SELECT dataflow.library_version()")" = "$DEFV" ] || fail "dataflow.library_version() is not $DEFV"
fi
# the live lease: heartbeat and complete with the old token
q postgres "SELECT dataflow.heartbeat('$live_token') > now()" | grep -qx t || fail "heartbeat with the old token"
[ "$(q postgres "SELECT dataflow.complete('$live_token', row_count => 105)")" = succeeded ] \
    || fail "the live lease does not complete with its old token"

# the receiver (webhooks and the http engine) comes up: subscription and connection point at it
mkdir -p "$UP/rcv" && echo "$hook_secret" > "$UP/rcv/secret"
python3 "$ROOT/test/integration/receiver.py" "$UP/rcv/port" "$UP/rcv/requests.jsonl" "$UP/rcv/secret" \
    >>"$UP/rcv/out" 2>&1 &
UP_RCV=$!
for ((i = 0; i < 100; i++)); do [ -s "$UP/rcv/port" ] && break; sleep 0.1; done
[ -s "$UP/rcv/port" ] || fail "receiver did not start"
rcv="http://127.0.0.1:$(cat "$UP/rcv/port")"
q postgres "UPDATE dataflow.subscription SET url = '$rcv/hook/ok'" >/dev/null
q postgres "UPDATE dataflow.connection SET base_url = '$rcv'" >/dev/null
q postgres "SELECT dataflow.enable_subscription('portal')" >/dev/null    # the receiver is back: send now

# the rest of the sources arrive; every runnable chunk of mid and out is built
for d in 12 13 14; do q postgres "SELECT dataflow.register('raw', '2024-01-$d', row_count => 1$d)" >/dev/null; done
wait_for postgres "mid 04 06 07 due again" 15 "SELECT bool_and(c.not_before <= now()) FROM dataflow.chunk c
    JOIN dataflow.dataset d ON d.id = c.dataset_id WHERE d.name = 'mid' AND c.status = 'queued'"
for ((i = 0; i < 60; i++)); do
    t=$(lease build_mid w-again); [ -n "$t" ] || t=$(lease build_out w-again)
    [ -n "$t" ] || break
    q postgres "SELECT dataflow.complete('$t', row_count => 7)" >/dev/null
done
batch=$(q postgres "SELECT key || ':' || jsonb_array_length(inputs) || ':' || token FROM dataflow.lease('batcher', 'w-batch')")
[[ $batch == 1:* ]] && [ "$(cut -d: -f2 <<<"$batch")" -ge 10 ] || fail "the incremental batch: $batch"
q postgres "SELECT dataflow.complete('${batch##*:}', row_count => 13)" >/dev/null
wait_for postgres "the http job's chunks dispatched" 30 "SELECT bool_and(c.status = 'ready') FROM dataflow.chunk c
    JOIN dataflow.dataset d ON d.id = c.dataset_id WHERE d.name = 'shipped'"
wait_for postgres "every delivery delivered" 60 "SELECT count(*) = 0 FROM dataflow.delivery WHERE status <> 'delivered'"

# the flow's end: every chunk where it belongs
final=$(q postgres "SELECT string_agg(d.name || ' ' || c.key || ' ' || c.status || ':' || c.version || ':' || c.attempts,
                                      E'\n' ORDER BY d.name, c.key)
                      FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
                     WHERE d.name IN ('mid', 'out', 'batches')")
expected="batches 1 ready:1:1
mid 2024-01-01 validated:1:1
mid 2024-01-02 ready:1:1
mid 2024-01-03 failed:1:1
mid 2024-01-04 ready:1:2
mid 2024-01-05 ready:1:1
mid 2024-01-06 ready:1:2
mid 2024-01-07 ready:1:2
mid 2024-01-08 ready:2:1
mid 2024-01-09 ready:1:1
mid 2024-01-10 ready:1:1
mid 2024-01-11 ready:1:1
mid 2024-01-12 ready:1:1
mid 2024-01-13 ready:1:1
mid 2024-01-14 ready:1:1
out 2024-01-02 ready:1:1
out 2024-01-03 waiting:1:0
out 2024-01-04 waiting:1:0
out 2024-01-05 ready:1:1
out 2024-01-06 ready:1:1
out 2024-01-07 ready:1:1
out 2024-01-08 ready:1:1
out 2024-01-09 ready:1:1
out 2024-01-10 ready:1:1
out 2024-01-11 ready:1:1
out 2024-01-12 ready:1:1
out 2024-01-13 ready:1:1
out 2024-01-14 ready:1:1"
shipped=$(q postgres "SELECT string_agg(c.key || ':' || c.status || ':' || c.row_count, ' ' ORDER BY c.key)
                        FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id WHERE d.name = 'shipped'")
[ "$final" = "$expected" ] \
    || { diff -u <(echo "$expected") <(echo "$final") >&2; fail "the flow did not end in the expected states"; }
[ "$shipped" = "1:ready:7 2:ready:7 3:ready:7" ] || fail "the http job's chunks: $shipped"
same_runs=$(q postgres "SELECT string_agg(r.worker || ':' || r.status, ' ' ORDER BY r.id) FROM dataflow.run r
                          JOIN dataflow.chunk c ON c.id = r.chunk_id JOIN dataflow.dataset d ON d.id = c.dataset_id
                         WHERE d.name = 'mid' AND c.key IN ('2024-01-06', '2024-01-07')")
[ "$same_runs" = "w-lost:expired w-lost:expired w-again:succeeded w-again:succeeded" ] \
    || fail "the overdue leases' chunks were not retried: $same_runs"
# consistency of the derived tables (as dump_restore.sh)
recount=$(cat test/catalog/recount.sql)
[ "$(q postgres "$recount")" = 0 ] || fail "the status counters differ from a recount"
[ "$(q postgres "SELECT count(*) FROM dataflow.queue")" = "$(q postgres "SELECT count(*) FROM dataflow.chunk WHERE status = 'queued'")" ] \
    || fail "the queue differs from the queued chunks"

# deliveries: every one pending at the upgrade, and every later one, once, signed with the old secret;
# dispatches carry the connection's old secret
python3 - "$UP/rcv/requests.jsonl" "$pending_before" "$(q postgres "SELECT string_agg(id::text, ',') FROM dataflow.delivery")" <<'PY' \
    || fail "deliveries and dispatches at the receiver"
import collections, json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
hooks = [r for r in rows if r["path"].startswith("/hook/")]
pending = set(sys.argv[2].split(","))
every = set(sys.argv[3].split(","))
ids = collections.Counter(r["headers"]["webhook-id"][4:] for r in hooks)
assert all(r["verified"] is True for r in hooks), "a delivery not signed with the old secret"
assert pending <= set(ids), "lost: %s" % sorted(pending - set(ids))
assert set(ids) == every, "unexpected: %s" % sorted(set(ids) ^ every)
assert max(ids.values()) == 1, "sent twice: %s" % [k for k, v in ids.items() if v > 1]
disp = [r for r in rows if r["path"] == "/dispatch/succeed"]
assert len(disp) == 3, "%d dispatches, expected 3" % len(disp)
auth = {r["headers"].get("authorization") or r["headers"].get("Authorization") for r in disp}
assert auth == {"Bearer conn-secret-7f3a9c"}, "dispatch credentials: %s" % auth
print("deliveries: %d pending at the upgrade, %d received in all, each once, signatures ok; "
      "3 dispatches with the old credentials" % (len(pending), len(hooks)))
PY
echo "flow finished on $DEFV: $(grep -c . <<<"$final") chunks as expected ($(elapsed))"

[ "$(q postgres "SELECT has_table_privilege('up_bi', 'dataflow.chunks', 'SELECT')
                      AND pg_has_role('up_bi', 'dataflow_reader', 'MEMBER')")" = t ] || fail "the update lost an operator's grant"
q postgres "REVOKE SELECT ON dataflow.chunks FROM up_bi; DROP ROLE up_bi" >/dev/null

# ---- the catalog: updated = fresh ----------------------------------------------------------
describe postgres "$UP/updated.catalog"          # before any fresh install touches the cluster's roles
q postgres "CREATE DATABASE fresh" >/dev/null
q fresh "CREATE EXTENSION pg_dataflow" >/dev/null
[ "$(q fresh "SELECT extversion FROM pg_extension WHERE extname = 'pg_dataflow'")" = "$DEFV" ] \
    || fail "the fresh install is not $DEFV"
describe fresh "$UP/fresh.catalog"
if ! diff -u "$UP/fresh.catalog" "$UP/updated.catalog" > "$UP/catalog.diff"; then
    head -c 20000 "$UP/catalog.diff" >&2
    fail "the catalog of $OLD updated to $DEFV differs from a fresh $DEFV install (- fresh, + updated)"
fi
for db in postgres fresh; do
    a=$(audit "$db"); [ -z "$a" ] || fail "catalog audit of $db: $a"
done
echo "catalog: updated = fresh ($(wc -l < "$UP/fresh.catalog") lines), audit clean"

# an empty database updated from $OLD, then broken on purpose: the comparison must see it
q postgres "CREATE DATABASE broken" >/dev/null
q broken "CREATE EXTENSION pg_dataflow VERSION '$OLD'" >/dev/null
q broken "ALTER EXTENSION pg_dataflow UPDATE" >/dev/null
describe broken "$UP/broken.catalog"
diff -u "$UP/fresh.catalog" "$UP/broken.catalog" >&2 || fail "an empty database updated from $OLD differs from a fresh install"
q broken "ALTER FUNCTION dataflow.lease(text, text, integer, interval) SECURITY INVOKER" >/dev/null
q broken "REVOKE EXECUTE ON FUNCTION dataflow.explain(text, text) FROM dataflow_reader" >/dev/null
q broken "COMMENT ON COLUMN dataflow.chunk.status IS 'changed'" >/dev/null
describe broken "$UP/broken.catalog"
diff -u "$UP/fresh.catalog" "$UP/broken.catalog" > "$UP/broken.diff" && fail "self-test: a broken update shows no difference"
for want in "+function | dataflow.lease(text,text,integer,interval) | kind=f language=c volatility=v strict=f security_definer=f" \
            "-acl | function dataflow.explain(text,text) | dataflow_reader EXECUTE" \
            "+comment | column status of table dataflow.chunk | changed"; do
    grep -qF -- "$want" "$UP/broken.diff" || { cat "$UP/broken.diff" >&2; fail "self-test: the diff misses $want"; }
done
[ -z "$(audit broken)" ] || fail "audit flags the broken database before the PUBLIC grant"
q broken "GRANT EXECUTE ON FUNCTION dataflow.reap() TO PUBLIC" >/dev/null
[[ $(audit broken) == *"definer executable by PUBLIC: dataflow.reap()"* ]] || fail "self-test: the audit missed a PUBLIC definer"
echo "self-tests: the diff shows a definer made invoker, a revoked grant and a changed comment ($(grep -cE '^[-+][^-+]' "$UP/broken.diff") lines); the audit a PUBLIC definer"

grep -E "PANIC|TRAP|terminated by signal" "$UP/server.log" >&2 && fail "the server log shows a crash"
if [ ${#WINDOW_FAILS[@]} -gt 0 ]; then
    fail "${#WINDOW_FAILS[@]} check(s) of the mismatch window failed: ${WINDOW_FAILS[*]}"
fi
echo "ok: upgrade $OLD -> $DEFV ($(elapsed))"
