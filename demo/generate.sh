#!/usr/bin/env bash
# Writes the demo's source data: one CSV of events per hour, deterministic
# (the same hour always gets the same rows), and prints a manifest line
# "KEY,LOCATION,ROWS" per file for dataflow.register.
#   demo/generate.sh LAKE FIRST_DAY DAYS          every hour of DAYS days
#   demo/generate.sh LAKE FIRST_DAY DAYS KEY      only hour KEY (a repair)
set -euo pipefail
lake=$1 first=$2 days=$3 only=${4:-}
mkdir -p "$lake/events"
for ((d = 0; d < days; d++)); do date -u -d "$first + $d days" +%F; done |
awk -v lake="$lake" -v only="$only" '
  {
    day = $1
    for (h = 0; h < 24; h++) {
      key = sprintf("%sT%02d", day, h)
      n++
      if (only != "" && key != only) continue
      srand(1000 + n)                       # one seed per hour: regenerating is exact
      rows = int(40 + 30 * sin(3.14159 * h / 24) + 20 * rand())
      file = lake "/events/" key ".csv"
      print "ts,user_id,amount" > file
      for (i = 0; i < rows; i++)
        printf "%s:%02d:%02d,u%03d,%.2f\n", key, int(60 * rand()), int(60 * rand()),
               int(200 * rand()), 1 + 99 * rand() > file
      close(file)
      printf "%s,%s,%d\n", key, file, rows
    }
  }'
