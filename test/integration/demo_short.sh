#!/usr/bin/env bash
# The demo, shortened to 10 days: it must exit 0 and its output must show the
# failure, explain/blockers pointing at it, the resubmit and a fully validated
# flow, and write the graph as SVG.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$(mktemp -d "${TMPDIR:-/tmp}/pg_dataflow_demo.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
failed=0
check() { # check NAME CMD...
    local name=$1; shift
    if "$@"; then echo "ok   $name"; else echo "FAIL $name"; failed=$((failed + 1)); fi
}

t0=$SECONDS
DEMO_DAYS=10 DEMO_SETUP=0 DEMO_OUT=$OUT/out timeout 300 "$ROOT/scripts/demo.sh" > "$OUT/log" 2>&1
rc=$?
check "demo exits 0 (rc $rc, $((SECONDS - t0)) s)" test "$rc" -eq 0
[ "$rc" -eq 0 ] || tail -40 "$OUT/log"
has() { grep -Eq -- "$1" "$OUT/log"; }
check "the corrupt record fails the rollup of its day, twice" \
    has 'rollup 2024-01-05 v1 attempt 2 .*failed .*corrupt record'
check "rollup's dataflow-run exits 3 while a day failed" has 'exit status: 3'
check "the failed run's error names file and line" has '2024-01-05T07.csv line 10: corrupt record'
check "blockers lead from the report to the failed day" has '1 \| daily +\| 2024-01-05 \| failed +\| FAILED after 2 attempt'
check "explain answers the five questions" \
    bash -c "grep -Eq '^ ready +\\| f' '$OUT/log' && grep -Eq '^ safe +\\| f' '$OUT/log'"
check "the day is restarted with UPDATE ... resubmit" \
    has "UPDATE dataflow.chunks SET status = 'resubmit' WHERE dataset = 'daily' AND key = '2024-01-05'"
check "the restarted day is re-produced as version 2" has 'rollup 2024-01-05 v2 attempt 1 .*succeeded'
check "the report commits with complete() in its transaction" has 'recorded by the command itself'
check "every daily chunk validated" has '^daily validated: 10/10$'
check "every report validated and loaded" has '^weekly_report validated: 4/4 \(rows in demo.weekly_report: 4\)$'
check "datasets and progress views printed" \
    bash -c "grep -q 'newest_available_key' '$OUT/log' && grep -Eq '^ job +\\| rollup' '$OUT/log'"
check "pipeline graph written as SVG" grep -q '<svg' "$OUT/out/pipeline.svg"
check "graph before the repair written too" grep -q '<svg' "$OUT/out/pipeline-failure.svg"
instance=$(sed -n 's/^throwaway instance on port [0-9]* (socket \(.*\)\/sock).*/\1/p' "$OUT/log")
check "throwaway instance removed ($instance)" test -n "$instance" -a ! -e "$instance"

[ "$failed" -eq 0 ] && { echo "all checks passed"; exit 0; }
echo "$failed check(s) failed"; exit 1
