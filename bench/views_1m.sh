#!/usr/bin/env bash
# Build ~1,000,000 chunks over a 3-stage flow in a throwaway instance and print
# the time of expect() and of each status view (best of 3 runs per view).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
tmp=$(df_tmpdir)
trap 'df_cluster_stop "$tmp"; rm -rf "$tmp"' EXIT
df_cluster_start "$tmp" "shared_buffers = '1GB'" "max_wal_size = '4GB'"
q() { df_as_user psql -X -q -v ON_ERROR_STOP=1 -At -h "$PGHOST" -p "$PGPORT" -U postgres -d postgres "$@"; }
q -c "CREATE EXTENSION pg_dataflow" -c "
SELECT dataflow.create_dataset('b_raw', 'date', location => 's3://lake/{dataset}/{key}/v{version}/');
SELECT dataflow.create_dataset('b_clean', 'date');
SELECT dataflow.create_dataset('b_report', 'date');
SELECT dataflow.create_job('b_clean_job', output => 'b_clean');
SELECT dataflow.add_input('b_clean_job', 'b_raw');
SELECT dataflow.create_job('b_report_job', output => 'b_report');
SELECT dataflow.add_input('b_report_job', 'b_clean', mapping => 'window', lo => -6, hi => 0);" >/dev/null
ms() { # ms SQL -> elapsed milliseconds of one execution, measured server-side
    q -c "DO \$\$ DECLARE t0 timestamptz := clock_timestamp(); BEGIN PERFORM * FROM ($1) x; RAISE NOTICE '%', round(extract(epoch FROM clock_timestamp() - t0)::numeric * 1000, 1); END \$\$" 2>&1 | sed 's/.*NOTICE: *//'
}
t0=$(date +%s.%N)
q -c "SELECT dataflow.expect('b_report', '1000-01-07', '1913-06-20')" >/dev/null
t1=$(date +%s.%N)
chunks=$(q -c "SELECT count(*) FROM dataflow.chunk")
q -c "VACUUM ANALYZE" >/dev/null
printf '%-34s %12s\n' "scenario" "figure"
printf '%-34s %12s\n' "chunks created by one expect()" "$chunks"
printf '%-34s %10.1f s\n' "expect() of the backfill" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')"
for v in datasets jobs progress gaps deletable; do
    best=""
    for _ in 1 2 3; do
        t=$(ms "SELECT * FROM dataflow.$v")
        if [ -z "$best" ] || awk -v t="$t" -v b="$best" 'BEGIN{exit !(t < b)}'; then best=$t; fi
    done
    printf '%-34s %9s ms\n' "view dataflow.$v" "$best"
done
