#!/usr/bin/env bash
# make demo: a plain shell ETL pipeline joins pg_dataflow, end to end.
#
# On a fresh Debian 12 machine, as root: installs what is missing, builds and
# installs the extension and dataflow-run, starts a throwaway instance with the
# library preloaded, then runs the pipeline in demo/ (see demo/README.md):
# hourly CSVs -> daily rollup (shell/awk through dataflow-run --concurrency 4)
# -> validation -> 7-day report loaded into a table with complete() in the same
# transaction. One hour is corrupt: the demo shows the failure, explain and
# blockers pointing at it, repairs the file, restarts it with one UPDATE and
# lets the cascade finish. Output (graph SVG, summary) goes to demo-output/.
#
#   DEMO_DAYS=30        days of hourly data (at least 8)
#   DEMO_SETUP=1        0: skip packages/build/install (make test did them)
#   DEMO_OUT=DIR        where the results go (default demo-output/)
#   DATAFLOW_RUN=PATH   use this dataflow-run binary
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib.sh

DAYS=${DEMO_DAYS:-30}
SETUP=${DEMO_SETUP:-1}
OUT=${DEMO_OUT:-$ROOT/demo-output}
FIRST=2024-01-01
[ "$DAYS" -ge 8 ] 2>/dev/null || { echo "demo: DEMO_DAYS must be a number >= 8" >&2; exit 2; }
day() { date -u -d "$FIRST + $1 days" +%F; }
LAST=$(day $((DAYS - 1)))
BAD_DAY=$(day $((DAYS * 2 / 5)))           # the day with the corrupt hour
BAD_HOUR=${BAD_DAY}T07
BLOCKED=$(day $((DAYS * 2 / 5 + 3)))       # a report whose window contains it
started=$SECONDS

say() { printf '\n== %s\n' "$*"; }
q() { psql -X -q -v ON_ERROR_STOP=1 -P pager=off "$@"; }
qa() { psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }

# ---- set-up -----------------------------------------------------------------
SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
if [ "$SETUP" = 1 ]; then
    say "set-up: packages, build, install"
    scripts/deps.sh
fi
CLI=${DATAFLOW_RUN:-$ROOT/build/dataflow-run}
if [ -z "${DATAFLOW_RUN:-}" ]; then   # (re)build it: a no-op when up to date
    [ -f build/CMakeCache.txt ] || cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build -j2 --target dataflow-run >/dev/null
fi
[ -x "$CLI" ] || { echo "demo: no dataflow-run at $CLI" >&2; exit 1; }
if [ "$SETUP" = 1 ]; then
    make -s -j2 >/dev/null
    $SUDO make -s install >/dev/null
fi

setup_seconds=$((SECONDS - started))
TMP=
cleanup() { [ -n "$TMP" ] && { df_cluster_stop "$TMP"; rm -rf "$TMP"; }; }
trap cleanup EXIT
# Other instances may start at the same time (make test, other users): a port
# found free can be taken before the postmaster binds it, so retry elsewhere.
for try in 1 2 3; do
    TMP=$(df_tmpdir)
    DF_PORT_BASE=$((57000 + RANDOM % 5000)) df_cluster_start "$TMP" 2>"$TMP.log" && break
    [ "$try" -eq 3 ] && { cat "$TMP.log" >&2; rm -f "$TMP.log"; exit 1; }
    rm -f "$TMP.log"; cleanup
done
rm -f "$TMP.log"
psql -X -q -d postgres -c "CREATE DATABASE dataflow_demo"
export PGDATABASE=dataflow_demo
LAKE=$TMP/lake
mkdir -p "$OUT"
rm -f "$OUT"/pipeline.svg "$OUT"/pipeline-failure.svg "$OUT"/pipeline.dot "$OUT"/summary.txt
echo "throwaway instance on port $PGPORT (socket $PGHOST), data in $LAKE"

# ---- 1. the flow and its source ----------------------------------------------
say "1. define the flow; $DAYS days of hourly CSV files registered as the source 'events'"
q -c "CREATE EXTENSION pg_dataflow" -v lake="$LAKE" -f demo/flow.sql >/dev/null
qa -c "SELECT dataflow.expect('daily', '$FIRST', '$LAST')" \
   -c "SELECT dataflow.expect('weekly_report', '$(day 6)', '$LAST')" >/dev/null
demo/generate.sh "$LAKE" "$FIRST" "$DAYS" > "$TMP/manifest.csv"
q <<SQL
CREATE TEMP TABLE manifest (key text, location text, row_count bigint);
\copy manifest FROM '$TMP/manifest.csv' WITH (FORMAT csv)
SELECT count(dataflow.register('events', key, location, row_count)) AS registered_hours
  FROM (SELECT * FROM manifest ORDER BY key) m \gset
\echo registered :registered_hours hourly files
SQL
# An upstream system wrote a broken record into one hour.
sed -i '10s/,[0-9.]*$/,12.5O/' "$LAKE/events/$BAD_HOUR.csv"
echo "(one hour, $BAD_HOUR, has a corrupt record: line 10 reads '$(sed -n 10p "$LAKE/events/$BAD_HOUR.csv")')"
q -c "SELECT dataset, key_kind, job, chunks, waiting, queued, ready FROM dataflow.datasets ORDER BY dataset"

# ---- 2..4: rollup, validate, report -------------------------------------------
run_pipeline() {
    say "$1. daily rollup: dataflow-run --job rollup --concurrency 4 --until-idle -- demo/rollup.sh"
    local rc=0
    DEMO_WORK_SECONDS=${DEMO_WORK_SECONDS:-0.3} \
        "$CLI" --job rollup --concurrency 4 --until-idle --quiet -- "$ROOT/demo/rollup.sh" || rc=$?
    echo "dataflow-run exit status: $rc$([ $rc -eq 3 ] && echo ' (some runs failed)')"

    say "$(($1 + 1)). validation: row counts of every ready daily file against the catalog"
    demo/validate.sh daily
    q -c "SELECT status, count(*) FROM dataflow.chunks WHERE dataset = 'daily' GROUP BY 1 ORDER BY 1"

    say "$(($1 + 2)). 7-day report into demo.weekly_report (complete() in the same transaction), validated"
    rc=0
    "$CLI" --job report --concurrency 2 --until-idle --quiet -- "$ROOT/demo/report.sh" || rc=$?
    echo "dataflow-run exit status: $rc"
    demo/validate.sh weekly_report
    q -c "SELECT status, count(*) FROM dataflow.chunks WHERE dataset = 'weekly_report' GROUP BY 1 ORDER BY 1"
}
run_pipeline 2

# ---- 5. the failure, explained -----------------------------------------------
say "5. what went wrong: the failed run, then explain/blockers for report $BLOCKED"
q -c "SELECT run_id, dataset, key, attempt, status, error FROM dataflow.runs
       WHERE status = 'failed' ORDER BY run_id"
q -c "SELECT * FROM dataflow.explain('weekly_report', '$BLOCKED')"
q -c "SELECT * FROM dataflow.blockers('weekly_report', '$BLOCKED')"
qa -c "SELECT dataflow.graph_dot()" | dot -Tsvg > "$OUT/pipeline-failure.svg"
echo "pipeline graph at this point: $OUT/pipeline-failure.svg"

# ---- 6. repair and restart ---------------------------------------------------
say "6. repair the file and restart the day with one UPDATE; the cascade follows"
demo/generate.sh "$LAKE" "$FIRST" "$DAYS" "$BAD_HOUR" >/dev/null
echo "regenerated $BAD_HOUR.csv"
echo "UPDATE dataflow.chunks SET status = 'resubmit' WHERE dataset = 'daily' AND key = '$BAD_DAY';"
q -c "UPDATE dataflow.chunks SET status = 'resubmit' WHERE dataset = 'daily' AND key = '$BAD_DAY'"
q -c "SELECT dataset, key, status, version FROM dataflow.chunks
       WHERE (dataset = 'daily' AND key = '$BAD_DAY') OR (dataset = 'weekly_report' AND key = '$BLOCKED')"
run_pipeline 7

# ---- 10. the result ----------------------------------------------------------
say "10. result"
q -c "SELECT dataset, job, chunks, waiting, queued, running, ready, validated, failed,
              newest_available_key, freshness_lag FROM dataflow.datasets ORDER BY dataset"
q -c "SELECT kind, name, dataset, done, total, failed, pct, round(per_minute, 1) AS per_minute, eta
         FROM dataflow.progress
       ORDER BY kind, name"
q -c "SELECT day, events, amount, run_id FROM demo.weekly_report ORDER BY day DESC LIMIT 5"
qa -c "SELECT dataflow.graph_dot()" > "$OUT/pipeline.dot"
dot -Tsvg "$OUT/pipeline.dot" > "$OUT/pipeline.svg"
echo "pipeline graph: $OUT/pipeline.svg"

daily_ok=$(qa -c "SELECT count(*) FROM dataflow.chunks WHERE dataset = 'daily' AND status = 'validated'")
report_ok=$(qa -c "SELECT count(*) FROM dataflow.chunks WHERE dataset = 'weekly_report' AND status = 'validated'")
rows=$(qa -c "SELECT count(*) FROM demo.weekly_report")
{
    echo "daily validated: $daily_ok/$DAYS"
    echo "weekly_report validated: $report_ok/$((DAYS - 6)) (rows in demo.weekly_report: $rows)"
    echo "corrupt hour: $BAD_HOUR, repaired and restarted with one UPDATE"
    echo "elapsed: $((SECONDS - started)) s (set-up and build $setup_seconds s, pipeline $((SECONDS - started - setup_seconds)) s)"
} | tee "$OUT/summary.txt"
if [ "$daily_ok" -ne "$DAYS" ] || [ "$report_ok" -ne $((DAYS - 6)) ] || [ "$rows" -ne $((DAYS - 6)) ]; then
    echo "demo: FAILED, the flow did not complete" >&2
    exit 1
fi
echo "demo: the flow is complete and validated"
