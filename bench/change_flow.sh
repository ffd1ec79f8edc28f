#!/usr/bin/env bash
# Change a live flow of N output chunks (CHANGE_FLOW_CHUNKS, default 100,000) and print the
# time of each change: add_input (a new input with no chunks: N placeholders and edges),
# alter_input same -> a 7-key window (6N edges inserted, the N of offset 0 kept), the
# window narrowed -6..0 -> -2..0 (4N edges deleted), drop_input. Each is one transaction
# (docs/internals.md, "Changing a live flow"). Then the baselines, in the same database:
# a plain set-based INSERT ... SELECT of the same 6N edge rows into a table shaped like
# dataflow.dep (primary key (input, consumer), index on consumer), in dep's key order, and
# a plain DELETE of the same 4N rows from it: what writing those edges costs without
# pg_dataflow's bookkeeping (placeholders, locks, the unmet recount, events, counters).
#
# Standalone: a throwaway cluster of its own (run with the extension installed: make
# install; under /work's shared tree, hold the install lock). With CHANGE_FLOW_DB=name it
# runs instead in the cluster PGHOST/PGPORT point at (bench/run.sh's), in a database of
# that name that it creates and drops, so the ratios compare figures of one cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
n=${CHANGE_FLOW_CHUNKS:-100000}
db=${CHANGE_FLOW_DB:-}
if [ -z "$db" ]; then
    tmp=$(df_tmpdir)
    trap 'df_cluster_stop "$tmp"; rm -rf "$tmp"' EXIT
    # CHANGE_FLOW_EXPLAIN=1: log the plan of every statement over 300 ms (auto_explain,
    # nested statements included) and print them at the end
    explain=()
    [ -n "${CHANGE_FLOW_EXPLAIN:-}" ] && explain=("session_preload_libraries = 'auto_explain'"
        "auto_explain.log_min_duration = '300ms'" "auto_explain.log_nested_statements = on"
        "auto_explain.log_analyze = on" "log_min_messages = log")
    df_cluster_start "$tmp" "shared_buffers = '512MB'" "max_wal_size = '4GB'" "${explain[@]}"
    db=postgres
else
    df_as_user psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE $db" >/dev/null
    trap 'df_as_user psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1' EXIT
fi
q() { df_as_user psql -X -q -v ON_ERROR_STOP=1 -At -h "$PGHOST" -p "$PGPORT" -U postgres -d "$db" "$@"; }
q -c "CREATE EXTENSION pg_dataflow" -c "
SELECT dataflow.create_dataset('c_src', 'int'), dataflow.create_dataset('c_extra', 'int'),
       dataflow.create_dataset('c_out', 'int');
SELECT dataflow.create_job('c_job', output => 'c_out');
SELECT dataflow.add_input('c_job', 'c_src');
SELECT dataflow.expect('c_out', '10', '$((n + 9))');" >/dev/null
# the first 1,000 sources arrive, so the output has queued and waiting chunks
q -c "SELECT count(dataflow.register('c_src', k::text)) FROM generate_series(10, $((n < 1000 ? n + 9 : 1009))) k" >/dev/null
q -c "VACUUM ANALYZE" >/dev/null
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b-a}'; }
timed() { # timed LABEL SQL: wall time of one psql call running SQL in its own transaction
    local t0 t1; t0=$(date +%s.%N); q -c "$2" >/dev/null; t1=$(date +%s.%N)
    printf '%-56s %8s s\n' "$1" "$(secs "$t0" "$t1")"
}
printf '%-56s %10s\n' "change of a flow of $(q -c "SELECT count(*) FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id WHERE d.name = 'c_out'") output chunks" "time"
timed "add_input (new input, placeholders + edges)" "SELECT dataflow.add_input('c_job', 'c_extra')"
timed "alter_input same -> window -6..0 (+6 edges each)" "SELECT dataflow.alter_input('c_job', 'c_src', mapping => 'window', lo => -6, hi => 0)"
timed "alter_input window -6..0 -> -2..0 (-4 edges each)" "SELECT dataflow.alter_input('c_job', 'c_src', lo => -2)"
timed "drop_input" "SELECT dataflow.drop_input('c_job', 'c_extra')"
printf '%-56s %10s\n' "dep edges after" "$(q -c "SELECT count(*) FROM dataflow.dep")"
printf '%-56s %10s\n' "unmet mismatches after (0 expected)" "$(q -c "
SELECT count(*) FROM dataflow.chunk c
 WHERE c.unmet <> (SELECT count(*) FROM dataflow.dep dp JOIN dataflow.chunk i ON i.id = dp.input
                    WHERE dp.consumer = c.id AND dataflow._level(i.status) < dp.need)")"
# Baselines: the same edge rows, written by plain SQL into a table shaped like dep.
q -c "CREATE TABLE cf_edge (input bigint NOT NULL, consumer bigint NOT NULL, need smallint NOT NULL,
                            PRIMARY KEY (input, consumer));
      CREATE INDEX cf_edge_consumer ON cf_edge (consumer);
      CREATE TABLE cf_pairs AS
      SELECT i.id AS input, c.id AS consumer, o AS off
        FROM dataflow.chunk c CROSS JOIN generate_series(-6, -1) o
        JOIN dataflow.chunk i ON i.dataset_id = (SELECT id FROM dataflow.dataset WHERE name = 'c_src')
                             AND i.key = (c.ord + o)::text
       WHERE c.dataset_id = (SELECT id FROM dataflow.dataset WHERE name = 'c_out')" -c "VACUUM ANALYZE cf_pairs" >/dev/null
printf '%-56s %10s\n' "baseline edge rows (6 per output chunk)" "$(q -c "SELECT count(*) FROM cf_pairs")"
timed "baseline: plain INSERT ... SELECT of those edge rows" \
    "INSERT INTO cf_edge (input, consumer, need) SELECT p.input, p.consumer, 1 FROM cf_pairs p ORDER BY p.input, p.consumer"
timed "baseline: plain DELETE of 4 edge rows per output chunk" \
    "DELETE FROM cf_edge e USING cf_pairs p WHERE p.off BETWEEN -6 AND -3 AND e.input = p.input AND e.consumer = p.consumer"
[ -z "${CHANGE_FLOW_EXPLAIN:-}" ] || [ -z "${tmp:-}" ] || grep -A40 "duration:" "$tmp/server.log" | cut -c1-240
