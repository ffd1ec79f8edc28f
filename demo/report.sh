#!/usr/bin/env bash
# The 7-day rolling report, run by dataflow-run once per day: sums the 7 daily
# rollups it is given (DATAFLOW_INPUTS) and loads one row into
# demo.weekly_report, calling dataflow.complete with DATAFLOW_TOKEN in the same
# transaction, so the row and the chunk's status commit together or not at all.
# (dataflow-run then sees the run already completed and only logs it.)
set -euo pipefail
mapfile -t files < <(python3 -c '
import json, os
for i in json.loads(os.environ["DATAFLOW_INPUTS"]):
    print(i["location"])')
[ "${#files[@]}" -eq 7 ] || { echo "expected 7 daily inputs, got ${#files[@]}" >&2; exit 1; }
read -r events amount < <(awk -F, 'FNR > 1 { e += $2; a += $3 } END { printf "%d %.2f\n", e, a }' "${files[@]}")

psql -X -q -v ON_ERROR_STOP=1 -v key="$DATAFLOW_KEY" -v token="$DATAFLOW_TOKEN" \
     -v run_id="$DATAFLOW_RUN_ID" -v events="$events" -v amount="$amount" <<'SQL'
BEGIN;
DELETE FROM demo.weekly_report WHERE day = :'key';
INSERT INTO demo.weekly_report (day, events, amount, run_id)
VALUES (:'key', :'events', :'amount', :'run_id');
SELECT dataflow.complete(:'token', row_count => 1,
                         info => pg_catalog.jsonb_build_object('events', :'events'::bigint)) AS outcome \gset
COMMIT;
SQL
echo "loaded $DATAFLOW_KEY: $events events over 7 days"
