#!/usr/bin/env bash
# Change a live flow of 100,000 output chunks in a throwaway instance and print the time
# of each change: add_input (a new input with no chunks: 100,000 placeholders and edges),
# alter_input (same -> a 7-key window: 700,000 edges), drop_input. Each is one transaction
# (docs/internals.md, "Changing a live flow"). Run with the extension installed
# (make install; under /work's shared tree, hold the install lock).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
n=${CHANGE_FLOW_CHUNKS:-100000}
tmp=$(df_tmpdir)
trap 'df_cluster_stop "$tmp"; rm -rf "$tmp"' EXIT
# CHANGE_FLOW_EXPLAIN=1: log the plan of every statement over 300 ms (auto_explain, nested
# statements included) and print them at the end
explain=()
[ -n "${CHANGE_FLOW_EXPLAIN:-}" ] && explain=("session_preload_libraries = 'auto_explain'"
    "auto_explain.log_min_duration = '300ms'" "auto_explain.log_nested_statements = on"
    "auto_explain.log_analyze = on" "log_min_messages = log")
df_cluster_start "$tmp" "shared_buffers = '512MB'" "max_wal_size = '4GB'" "${explain[@]}"
q() { df_as_user psql -X -q -v ON_ERROR_STOP=1 -At -h "$PGHOST" -p "$PGPORT" -U postgres -d postgres "$@"; }
q -c "CREATE EXTENSION pg_dataflow" -c "
SELECT dataflow.create_dataset('c_src', 'int'), dataflow.create_dataset('c_extra', 'int'),
       dataflow.create_dataset('c_out', 'int');
SELECT dataflow.create_job('c_job', output => 'c_out');
SELECT dataflow.add_input('c_job', 'c_src');
SELECT dataflow.expect('c_out', '10', '$((n + 9))');" >/dev/null
# the first 1,000 sources arrive, so the output has queued and waiting chunks
q -c "SELECT count(dataflow.register('c_src', k::text)) FROM generate_series(10, 1009) k" >/dev/null
q -c "VACUUM ANALYZE" >/dev/null
timed() { # timed LABEL SQL: wall time of one psql call running SQL in its own transaction
    local t0 t1; t0=$(date +%s.%N); q -c "$2" >/dev/null; t1=$(date +%s.%N)
    printf '%-52s %8.2f s\n' "$1" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')"
}
printf '%-52s %10s\n' "change of a flow of $(q -c "SELECT count(*) FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id WHERE d.name = 'c_out'") output chunks" "time"
timed "add_input (new input, placeholders + edges)" "SELECT dataflow.add_input('c_job', 'c_extra')"
timed "alter_input same -> window -6..0 (7 edges each)" "SELECT dataflow.alter_input('c_job', 'c_src', mapping => 'window', lo => -6, hi => 0)"
timed "alter_input window -6..0 -> -2..0" "SELECT dataflow.alter_input('c_job', 'c_src', lo => -2)"
timed "drop_input" "SELECT dataflow.drop_input('c_job', 'c_extra')"
printf '%-52s %10s\n' "dep edges after" "$(q -c "SELECT count(*) FROM dataflow.dep")"
printf '%-52s %10s\n' "unmet mismatches after (0 expected)" "$(q -c "
SELECT count(*) FROM dataflow.chunk c
 WHERE c.unmet <> (SELECT count(*) FROM dataflow.dep dp JOIN dataflow.chunk i ON i.id = dp.input
                    WHERE dp.consumer = c.id AND dataflow._level(i.status) < dp.need)")"
[ -z "${CHANGE_FLOW_EXPLAIN:-}" ] || grep -A40 "duration:" "$tmp/server.log" | cut -c1-240
