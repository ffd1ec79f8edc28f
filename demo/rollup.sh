#!/usr/bin/env bash
# The daily rollup, run by dataflow-run once per day: reads the day's 24 hourly
# CSVs (DATAFLOW_INPUTS, with their locations), checks every record, writes one
# line per hour to DATAFLOW_OUTPUT and reports counts in DATAFLOW_RESULT_FILE.
# A corrupt record fails the run with the file and line in the error.
set -euo pipefail
mapfile -t files < <(python3 -c '
import json, os
for i in sorted(json.loads(os.environ["DATAFLOW_INPUTS"]), key=lambda i: i["key"]):
    print(i["location"])')
[ "${#files[@]}" -eq 24 ] || { echo "expected 24 hourly inputs, got ${#files[@]}" >&2; exit 1; }
sleep "${DEMO_WORK_SECONDS:-0.3}"          # pretend the transform is heavier

mkdir -p "$(dirname "$DATAFLOW_OUTPUT")"
tmp=$DATAFLOW_OUTPUT.tmp.$$
awk -F, -v out="$tmp" '
  FNR == 1 {
    if ($0 != "ts,user_id,amount") { printf "%s: unexpected header\n", FILENAME > "/dev/stderr"; bad = 1; exit }
    hour = substr(FILENAME, length(FILENAME) - 16, 13); hours[++nh] = hour; next
  }
  NF != 3 || $3 !~ /^[0-9]+(\.[0-9]+)?$/ {
    printf "%s line %d: corrupt record \"%s\"\n", FILENAME, FNR, $0 > "/dev/stderr"; bad = 1; exit
  }
  { events[hour]++; amount[hour] += $3; total++ }
  END {
    if (bad) exit 2
    print "hour,events,amount" > out
    for (i = 1; i <= nh; i++) printf "%s,%d,%.2f\n", hours[i], events[hours[i]], amount[hours[i]] > out
    print total
  }' "${files[@]}" > "$tmp.total"
input_rows=$(cat "$tmp.total")
rm -f "$tmp.total"
mv "$tmp" "$DATAFLOW_OUTPUT"
{
    echo "row_count=$(($(wc -l < "$DATAFLOW_OUTPUT") - 1))"
    echo "checksum=md5:$(md5sum < "$DATAFLOW_OUTPUT" | cut -c1-32)"
    echo "input_rows=$input_rows"
} > "$DATAFLOW_RESULT_FILE"
echo "rolled up $input_rows events into $DATAFLOW_OUTPUT"
