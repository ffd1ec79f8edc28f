#!/usr/bin/env bash
# make bench: every benchmark in bench/, each in its own throwaway instance.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh || exit 1
make -s -j2 >/dev/null && { [ "$(id -u)" -eq 0 ] && make -s install >/dev/null || sudo make -s install >/dev/null; } || exit 1
rc=0
for b in bench/*.sh; do
    echo "== $b"
    timeout 900 bash "$b" || rc=1
done
exit $rc
