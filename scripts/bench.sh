#!/usr/bin/env bash
# make bench: pg_dataflow against its baselines and peers in one run (bench/run.sh,
# which also runs bench/views_1m.sh and bench/worker_bench.sh), bounded to 10 minutes.
# The table is printed and written to bench/last-run.md.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh || exit 1
make -s -j2 >/dev/null && { [ "$(id -u)" -eq 0 ] && make -s install >/dev/null || sudo make -s install >/dev/null; } || exit 1
if [ ! -d bench/peers/node_modules/graphile-worker ] || [ ! -d bench/peers/node_modules/pg-boss ]; then
    (cd bench/peers && timeout 300 npm ci --no-audit --no-fund >/dev/null) || echo "npm ci failed: peers will be 'not measured'" >&2
fi
# run.sh bounds each scenario; this bound is the backstop for the whole run.
BENCH_OUT=${BENCH_OUT:-bench/last-run.md} BENCH_BUDGET=${BENCH_BUDGET:-560} timeout --signal=TERM --kill-after=20 590 bash bench/run.sh
