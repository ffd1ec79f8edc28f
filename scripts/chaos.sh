#!/usr/bin/env bash
# make chaos: the full forms of the reliability tests (docs/reliability.md).
#   scripts/chaos.sh [kill|stall|fuzz|churn|crash|interleave]...   (default: all of them)
# Bounded: about 45 minutes in all on 2 cores (kill -9 over 20,000 chunks per
# stage, 10,000 hostile calls per public function, 10 minutes of churn, 16
# Postgres/worker crashes during 4,200 webhooks and 5,000 http dispatches, 10
# minutes of interleaved expect/register/lease/complete/resubmit/reap).
# CHURN_SECONDS=1800 gives the 30-minute churn run, IL_SECONDS the length of the
# interleaving run (default 600). Exits non-zero when any fails.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
. scripts/lib.sh

parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(kill stall fuzz churn crash interleave)
scripts/deps.sh || exit 1
SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
make -s -j2 >/dev/null || { echo "build failed" >&2; exit 1; }
$SUDO make -s install >/dev/null || { echo "install failed" >&2; exit 1; }

export DF_FULL=1
export CHURN_SECONDS=${CHURN_SECONDS:-600}
export IL_SECONDS=${IL_SECONDS:-600}
failed=()
for p in "${parts[@]}"; do
    case $p in
        kill)  t=test/integration/chaos_kill_workers.sh; limit=1800 ;;
        stall) t=test/integration/chaos_stalled_worker.sh; limit=300 ;;
        fuzz)  t=test/integration/fuzz_sql.sh; limit=1800 ;;
        churn) t=test/integration/churn.sh; limit=$((CHURN_SECONDS + 300)) ;;
        crash) t=test/integration/chaos_crash_delivery.sh; limit=900 ;;
        interleave) t=test/integration/chaos_interleave.sh; limit=$((IL_SECONDS + 300)) ;;
        *) echo "unknown part $p (kill, stall, fuzz, churn, crash, interleave)" >&2; exit 2 ;;
    esac
    echo "== $t (full form)"
    start=$(date +%s)
    timeout "$limit" bash "$t"
    rc=$?
    echo "-- $t: rc=$rc in $(($(date +%s) - start))s"
    [ $rc -eq 0 ] || failed+=("$p")
done
echo
if [ ${#failed[@]} -eq 0 ]; then echo "chaos: all passed"; else echo "chaos: failed: ${failed[*]}"; exit 1; fi
