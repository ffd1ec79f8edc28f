#!/usr/bin/env bash
# Builds the extension of a released version, as its package would install it.
#   scripts/release_build.sh VERSION OUTDIR
# OUTDIR gets pg_dataflow.so (the library of git tag vVERSION, built with $PG_CONFIG),
# pg_dataflow.control (the tag's, default_version = VERSION) and pg_dataflow--VERSION.sql
# (the install script frozen in src/sql/ at that release). Only the library is compiled
# (make pg_dataflow.so: no CLI). The library is cached in build/releases/, keyed by the
# tag's commit and the PostgreSQL it was built for, so a second run takes no time.
#
# Without the tag it uses the commit src/sql/releases records for VERSION. Without that
# history either (a shallow clone) it falls back to the working tree's library compiled
# as VERSION (DF_EXTVERSION) with a loud NOTE: the SQL is still the frozen script, but the
# code is today's, so an upgrade test then checks the upgrade of the SQL only.
# Exit status: 0 built (or from the cache), 1 failed; 3 built by the fallback.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib.sh

version=${1:?usage: scripts/release_build.sh VERSION OUTDIR}
out=${2:?usage: scripts/release_build.sh VERSION OUTDIR}
PG_CONFIG=${PG_CONFIG:-$PG_BINDIR/pg_config}
frozen=src/sql/pg_dataflow--$version.sql
[ -f "$frozen" ] || { echo "release_build: no frozen install script $frozen" >&2; exit 1; }
mkdir -p "$out"

src=$(mktemp -d "${TMPDIR:-/tmp}/pg_dataflow-release.XXXXXX")
trap 'rm -rf "$src"' EXIT

# The release's commit: its tag, or (a clone without tags) the commit src/sql/releases
# records for it, if the clone has that history. Both present: they must agree.
recorded=$(awk -v v="$version" '$1 == v { print $2 }' src/sql/releases 2>/dev/null)
commit=$(git rev-parse -q --verify "refs/tags/v$version^{commit}" 2>/dev/null) || commit=
if [ -n "$commit" ] && [ -n "$recorded" ] && [ "$commit" != "$recorded" ]; then
    echo "release_build: tag v$version is $commit but src/sql/releases records $recorded" >&2; exit 1
fi
if [ -z "$commit" ] && [ -n "$recorded" ] && git cat-file -e "$recorded^{commit}" 2>/dev/null; then
    commit=$recorded
    echo "release_build: no tag v$version here; using its commit $commit from src/sql/releases" >&2
fi
if [ -n "$commit" ]; then
    key="$commit-$("$PG_CONFIG" --version | tr -c 'A-Za-z0-9.\n' '_')"
    cache=$ROOT/build/releases/$key
    if [ ! -f "$cache/pg_dataflow.so" ]; then
        git archive "$commit" | tar -x -C "$src" || { echo "release_build: git archive v$version failed" >&2; exit 1; }
        make -C "$src" -s -j2 PG_CONFIG="$PG_CONFIG" pg_dataflow.so >"$src/build.log" 2>&1 \
            || { tail -30 "$src/build.log" >&2; echo "release_build: building v$version failed" >&2; exit 1; }
        mkdir -p "$cache.tmp.$$"
        cp "$src/pg_dataflow.so" "$src/pg_dataflow.control" "$cache.tmp.$$/"
        rm -rf "$cache" && mv "$cache.tmp.$$" "$cache"
    fi
    cp "$cache/pg_dataflow.so" "$cache/pg_dataflow.control" "$out/"
    cp "$frozen" "$out/"
    grep -qx "default_version = '$version'" "$out/pg_dataflow.control" \
        || { echo "release_build: the control file of v$version does not say default_version = '$version'" >&2; exit 1; }
    # the tag's own copy of the frozen script must be the one kept in src/sql
    if git cat-file -e "$commit:$frozen" 2>/dev/null; then
        cmp -s <(git show "$commit:$frozen") "$frozen" \
            || { echo "release_build: $frozen differs from the one at v$version" >&2; exit 1; }
    fi
    # and it must be what the tag's modules make (the first line, a comment, says it is
    # frozen): released.sha256 alone would not notice an edit made with a new checksum
    mkdir -p "$src/sql" && git archive "$commit" -- Makefile pg_dataflow.control src/sql | tar -x -C "$src/sql" \
        && make -s -C "$src/sql" "pg_dataflow--$version.sql" >/dev/null 2>&1 \
        || { echo "release_build: could not make v$version's install script from its modules" >&2; exit 1; }
    cmp -s <(tail -n +2 "$src/sql/pg_dataflow--$version.sql") <(tail -n +2 "$frozen") \
        || { echo "release_build: $frozen is not what v$version's modules make (below line 1)" >&2; exit 1; }
    exit 0
fi

{
    echo "################################################################################"
    echo "NOTE: neither tag v$version nor its commit is in this clone (shallow?): the library of"
    echo "      the working tree is built AS $version instead. The $version SQL is the frozen"
    echo "      script, but the old release's C code is NOT what runs: the upgrade of the SQL"
    echo "      is tested, the old library's behaviour is not. Fetch the tags for the real test."
    echo "################################################################################"
} >&2
git ls-files -z --cached --others --exclude-standard | tar --null -T - -c -f - | tar -x -C "$src" \
    || { echo "release_build: copying the working tree failed" >&2; exit 1; }
make -C "$src" -s -j2 PG_CONFIG="$PG_CONFIG" \
    "PG_CPPFLAGS=-Isrc -DDF_EXTVERSION='\"$version\"'" pg_dataflow.so >"$src/build.log" 2>&1 \
    || { tail -30 "$src/build.log" >&2; echo "release_build: building the working tree as $version failed" >&2; exit 1; }
cp "$src/pg_dataflow.so" "$out/"
sed "s/^default_version = .*/default_version = '$version'/" pg_dataflow.control > "$out/pg_dataflow.control"
cp "$frozen" "$out/"
exit 3
