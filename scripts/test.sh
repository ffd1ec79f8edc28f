#!/usr/bin/env bash
# make test: install what is missing, build, and run every suite.
#   scripts/test.sh [unit|regress|isolation|integration]...   (default: all of them)
# Exits non-zero when any suite fails. CI=true selects the short forms.
# PG=NN tests another PostgreSQL major (scripts/pg.sh): 15 here; 17 and 18 in a Debian
# chroot (scripts/chroot.sh) that gets a copy of this working tree, where the default is
# regress, isolation and the integration suites of DF_INTEGRATION (glob patterns of
# test/integration/*.sh names; empty: all of them).
set -uo pipefail
# The whole script is one block, read before it runs: editing this file while a run is
# under way (git pull, a checkout) cannot break that run.
{
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib.sh

suites=("$@")
if ! df_pg_local; then
    [ ${#suites[@]} -eq 0 ] && suites=(regress isolation integration)
    # valgrind_worker, chaos_*, churn and fuzz_sql stay on the host's major (their
    # load is in the SQL, not in the server's API).
    export DF_INTEGRATION=${DF_INTEGRATION-"worker_* cli_* listener* dump_restore version_mismatch"}
    echo "== PostgreSQL $DF_PG: in a Debian $(df_pg_suite "$DF_PG") chroot (scripts/chroot.sh)"
    # chroot.sh needs root; what it passes on (CI, DF_INTEGRATION) survives sudo through env
    SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    exec $SUDO env CI="${CI:-}" DF_INTEGRATION="$DF_INTEGRATION" \
        scripts/chroot.sh --copy "$(df_pg_suite "$DF_PG")" scripts/test.sh "${suites[@]}"
fi
[ ${#suites[@]} -eq 0 ] && suites=(unit regress isolation integration)

scripts/deps.sh || exit 1
PG_BINDIR=$("$DF_PG_CONFIG" --bindir)
echo "== PostgreSQL $("$PG_BINDIR/postgres" --version | awk '{print $3}')"

SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "== build"
make -s -j2 >/dev/null || { echo "build failed" >&2; exit 1; }
$SUDO make -s install >/dev/null || { echo "install failed" >&2; exit 1; }

passed=0; failed=0; failed_names=()
record() { # record NAME STATUS
    if [ "$2" -eq 0 ]; then passed=$((passed + 1)); echo "ok    $1"
    else failed=$((failed + 1)); failed_names+=("$1"); echo "FAIL  $1"; fi
}

run_unit() {
    echo "== unit (GoogleTest)"
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null && cmake --build build -j2 >/dev/null \
        && ctest --test-dir build --output-on-failure -j2
    record "unit" $?
    if [ -d test/unit ] && grep -q DATAFLOW_SANITIZE CMakeLists.txt; then
        echo "== unit under AddressSanitizer + UBSan"
        cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DDATAFLOW_SANITIZE=ON >/dev/null \
            && cmake --build build-asan -j2 >/dev/null && ctest --test-dir build-asan --output-on-failure -j2
        record "unit-asan" $?
    fi
}

# pg_suite NAME RUNNER EXPECTED_DIR DIFFS DBNAME FILES...: copy FILES into a directory the
# test user owns and run pg_regress or pg_isolation_regress there in a temporary instance
# that preloads the library. DF_REGRESS_ACCEPT=1 takes the outputs as expected (a
# developer aid: review them with git diff).
pg_suite() {
    local name=$1 runner=$2 expected=$3 diffs=$4 dbname=$5; shift 5
    local tmp; tmp=$(df_tmpdir)
    cp -r "$@" "$tmp/"
    # the suite's own postgresql.conf lines, else the common ones (preloading the library)
    [ -f "$tmp/regress.conf" ] || cp test/regress.conf "$tmp/"
    [ "$(id -u)" -eq 0 ] && chown -R "$DF_USER" "$tmp"
    local port; port=$(df_free_port $((20000 + RANDOM % 40000)))
    (cd "$tmp" && df_as_user "$("$DF_PG_CONFIG" --pkglibdir)/pgxs/src/test/$runner" \
        --bindir="$PG_BINDIR" --temp-instance="$tmp/tmp_check" --temp-config="$tmp/regress.conf" \
        --port="$port" --inputdir="$tmp" --outputdir="$tmp" --schedule="$tmp/schedule" \
        --dbname="$dbname")
    local rc=$?
    if [ -n "${DF_REGRESS_ACCEPT:-}" ]; then
        cp "$tmp"/results/*.out "$ROOT/$expected/" && echo "$expected/ updated from results" && rc=0
    fi
    if [ $rc -ne 0 ]; then
        cp "$tmp/regression.diffs" "$ROOT/$diffs" 2>/dev/null
        head -c 20000 "$tmp/regression.diffs" 2>/dev/null
        tail -30 "$tmp/tmp_check/log/postmaster.log" 2>/dev/null
    fi
    rm -rf "$tmp"
    record "$name" $rc
}

run_regress() {
    echo "== regress (pg_regress, temporary instance)"
    # Every test file must be in the schedule, or it silently never runs.
    local f missing=0
    for f in sql/*.sql; do
        grep -qE "^test:.*[[:space:]]$(basename "$f" .sql)([[:space:]]|\$)" test/schedule \
            || { echo "sql/$(basename "$f") is not in test/schedule" >&2; missing=1; }
    done
    [ $missing -eq 0 ] || { record "regress-schedule" 1; return; }
    # DF_REGRESS_TESTS="a b": only install and those tests (a developer aid; CI runs all)
    local schedule=test/schedule
    if [ -n "${DF_REGRESS_TESTS:-}" ]; then
        schedule=$(df_tmpdir)/schedule
        { echo "test: install"; for f in $DF_REGRESS_TESTS; do echo "test: $f"; done; } >"$schedule"
    fi
    pg_suite regress regress/pg_regress expected regression.diffs contrib_regression \
        sql expected "$schedule" test/catalog
    # CREATE EXTENSION in a cluster that does not preload the library (test/nopreload)
    pg_suite regress-nopreload regress/pg_regress test/nopreload/expected nopreload.diffs \
        contrib_regression test/nopreload/sql test/nopreload/expected test/nopreload/schedule \
        test/nopreload/regress.conf
}

run_isolation() {
    [ -f test/isolation/schedule ] || return 0
    echo "== isolation (pg_isolation_regress: concurrent sessions)"
    # DF_ISOLATION_TESTS="a b": only those specs (a developer aid; CI runs all)
    local schedule=test/isolation/schedule
    if [ -n "${DF_ISOLATION_TESTS:-}" ]; then
        schedule=$(df_tmpdir)/schedule
        for f in $DF_ISOLATION_TESTS; do echo "test: $f"; done >"$schedule"
    fi
    pg_suite isolation isolation/pg_isolation_regress test/isolation/expected isolation.diffs \
        isolation_regression test/isolation/specs test/isolation/expected "$schedule"
}

run_integration() {
    echo "== integration"
    local t p pats match
    read -ra pats <<<"${DF_INTEGRATION:-}"   # no pathname expansion of the patterns
    for t in test/integration/*.sh; do
        [ -e "$t" ] || continue
        match=$((${#pats[@]} == 0))
        for p in "${pats[@]}"; do
            # shellcheck disable=SC2053
            [[ $(basename "$t" .sh) == $p ]] && match=1
        done
        [ "$match" -eq 1 ] || continue
        echo "-- $t"
        timeout 900 bash "$t"
        local rc=$?   # before any expansion below: $(basename) would reset $?
        record "integration/$(basename "$t" .sh)" "$rc"
    done
}

for s in "${suites[@]}"; do "run_$s"; done

echo
echo "suites: ${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ] || { echo "failed: ${failed_names[*]}"; exit 1; }
exit 0
}
