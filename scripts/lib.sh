# Shared shell helpers for tests, demo and benchmarks. Source it; do not run it.
#   df_as_user CMD...        run CMD as the non-root test user when we are root
#   df_cluster_start DIR     initdb + start a throwaway instance in DIR (sets PGHOST/PGPORT)
#   df_cluster_stop DIR      stop it (the caller removes DIR)
# The instance preloads pg_dataflow and never touches a system cluster.
# The PostgreSQL major is PG=NN (default 15), chosen in scripts/pg.sh.

. "$(dirname "${BASH_SOURCE[0]}")/pg.sh" || exit 1
PG_BINDIR=${PG_BINDIR:-$( { "$DF_PG_CONFIG" --bindir 2>/dev/null || pg_config --bindir; } )}
DF_USER=${DF_USER:-postgres}

df_as_user() {
    if [ "$(id -u)" -eq 0 ]; then
        # From a directory the test user cannot enter (a checkout under a mode-700
        # mktemp dir or /root), PostgreSQL's programs print "could not change directory"
        # and lose their cwd: then run them from / (so files reach them by absolute
        # paths it can read, or on stdin). Self-contained: suites copy it with declare -f.
        # The answer for $PWD is kept (exported, runuser takes ~20 ms).
        if [ "${_DF_USER_CWD:-}" != "$PWD:ok" ] && [ "${_DF_USER_CWD:-}" != "$PWD:no" ]; then
            if runuser -u "$DF_USER" -- test -x "$PWD" 2>/dev/null; then export _DF_USER_CWD=$PWD:ok
            else export _DF_USER_CWD=$PWD:no; fi
        fi
        if [ "$_DF_USER_CWD" = "$PWD:no" ]; then
            (cd / && runuser -u "$DF_USER" -- env PATH="$PG_BINDIR:$PATH" "$@")
            return
        fi
        runuser -u "$DF_USER" -- env PATH="$PG_BINDIR:$PATH" "$@"
    else
        env PATH="$PG_BINDIR:$PATH" "$@"
    fi
}

# Ask once here, in the sourcing shell: its subshells ($(...), bash -c) inherit it.
if [ "$(id -u)" -eq 0 ]; then df_as_user true; fi

# A directory the test user owns, removed by the caller.
df_tmpdir() {
    local d
    d=$(mktemp -d "${TMPDIR:-/tmp}/pg_dataflow.XXXXXX")
    chmod 755 "$d"
    [ "$(id -u)" -eq 0 ] && chown "$DF_USER" "$d"
    echo "$d"
}

df_free_port() {
    local p=${1:-55432}
    while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do
        p=$((p + 1)); [ "$p" -le 65000 ] || p=20000
    done
    # also skip ports whose socket file exists in /tmp (another instance without TCP)
    echo "$p"
}

# df_cluster_start DIR [extra postgresql.conf lines...]
# Ports are picked at random and retried: suites started at the same moment
# must not fight over one.
df_cluster_start() {
    local dir=$1; shift
    local port attempt
    df_as_user initdb -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; return 1; }
    mkdir -p "$dir/sock"; [ "$(id -u)" -eq 0 ] && chown "$DF_USER" "$dir/sock"
    {
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$dir/sock'"
        echo "shared_preload_libraries = 'pg_dataflow'"
        echo "fsync = on"
        echo "max_connections = 100"
        echo "log_min_messages = warning"
        echo "log_line_prefix = '%m [%p] %q%a '"
        for line in "$@"; do echo "$line"; done
    } >> "$dir/data/postgresql.conf"
    for attempt in 1 2 3 4 5; do
        local base=${DF_PORT_BASE:-20000}
        [ "$base" -ge 1024 ] && [ "$base" -lt 60000 ] || base=20000
        port=$(df_free_port $(( base + RANDOM % (64000 - base) )))
        echo "port = $port" >> "$dir/data/postgresql.conf"
        if df_as_user pg_ctl -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null; then
            export PGHOST="$dir/sock" PGPORT="$port" PGUSER=postgres
            return 0
        fi
        grep -q "already in use" "$dir/server.log" 2>/dev/null || break
    done
    cat "$dir/server.log" >&2
    return 1
}

df_cluster_stop() {
    local dir=$1
    [ -d "$dir/data" ] && df_as_user pg_ctl -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
}
