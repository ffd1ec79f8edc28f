#!/usr/bin/env bash
# The worker under valgrind memcheck (the scenario of `make check-valgrind`,
# scripts/valgrind.sh): http tasks and ~55 webhook deliveries with failures,
# retries and timeouts, a SIGHUP reload, a fast shutdown with a request in
# flight; fails on any memcheck error or definite leak in our code. About a
# minute on 2 cores. Skipped when valgrind is not installed (scripts/deps.sh
# installs it).
set -uo pipefail
cd "$(dirname "$0")/../.."
command -v valgrind >/dev/null || { echo "skip: valgrind is not installed"; exit 0; }
exec scripts/valgrind.sh --no-build
