#!/usr/bin/env bash
# The validation step, recorded with dataflow.validate (validated, or invalid
# with a report), for every chunk of DATASET that is ready:
#   daily          its file holds the row count it reported (24 hours), and the
#                  events it read equal what the hourly sources registered
#   weekly_report  demo.weekly_report has its row, and the row's events equal
#                  the events of the 7 validated days it was built from
#   demo/validate.sh daily|weekly_report
set -euo pipefail
case ${1:-} in
daily)
    psql -X -At -F' ' -c "SELECT key, location, row_count, info->>'input_rows' FROM dataflow.chunks
                            WHERE dataset = 'daily' AND status = 'ready' ORDER BY key" |
    while read -r key location rows input_rows; do
        input_rows=${input_rows:-0}
        registered=$(psql -X -At -v key="$key" <<'SQL'
SELECT coalesce(sum(row_count), 0) FROM dataflow.chunks
 WHERE dataset = 'events' AND key BETWEEN :'key' || 'T00' AND :'key' || 'T23';
SQL
)
        lines=$(($(wc -l < "$location") - 1))
        passed=true
        [ "$lines" -eq "$rows" ] && [ "$rows" -eq 24 ] && [ "$input_rows" = "$registered" ] || passed=false
        status=$(psql -X -At -v key="$key" -v passed="$passed" -v lines="$lines" \
                      -v registered="$registered" -v input_rows="$input_rows" <<'SQL'
SELECT dataflow.validate('daily', :'key', :'passed'::boolean,
         pg_catalog.jsonb_build_object('file_rows', :'lines'::int, 'input_rows', :'input_rows'::bigint,
                                       'registered_rows', :'registered'::bigint));
SQL
)
        [ "$passed" = true ] ||
            echo "validate: daily $key is $status: file rows $lines, events read $input_rows, registered $registered"
    done
    ;;
weekly_report)
    psql -X -At -F' ' <<'SQL' | awk '$2 != "validated" { print "validate: weekly_report " $1 " is " $2 }'
SELECT c.key,
       dataflow.validate('weekly_report', c.key,
                         r.day IS NOT NULL AND r.events = x.expected,
                         pg_catalog.jsonb_build_object('loaded_events', r.events, 'expected_events', x.expected))
  FROM dataflow.chunks c
  LEFT JOIN demo.weekly_report r ON r.day = c.key::date
 CROSS JOIN LATERAL (
       SELECT sum((d.info->>'input_rows')::bigint) AS expected FROM dataflow.chunks d
        WHERE d.dataset = 'daily' AND d.status = 'validated'
          AND d.key::date BETWEEN c.key::date - 6 AND c.key::date) x
 WHERE c.dataset = 'weekly_report' AND c.status = 'ready'
 ORDER BY c.key;
SQL
    ;;
*)
    echo "usage: demo/validate.sh daily|weekly_report" >&2
    exit 2
    ;;
esac
