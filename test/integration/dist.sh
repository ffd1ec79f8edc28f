#!/usr/bin/env bash
# make dist: the release tarball pg_dataflow-VERSION.tar.gz. Its listing is exactly the
# committed control file, Makefile, CMakeLists.txt, README.md, src/ and docs/ (plus a LICENSE
# if one is committed), META.json and the generated install script, under one top directory,
# with no build outputs; META.json follows PGXN meta spec 1.0.0 and agrees with the control
# file and README.md; the shipped install script is what the shipped modules make. Then the
# tarball is unpacked in a temporary directory and built there with PGXS, with git unusable
# (no repository), and installed into a staging DESTDIR, which must hold the control file,
# the library, the CLI (and its link in /usr/local/bin, or BINDIR), the install script of the current version, every frozen released
# script (checksums of released.sha256) and every upgrade script.
# The tarball is made from HEAD (what is committed), as make dist does (DIST_REF=<commit> to
# test another). About 1-2 min (the build).
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pg_dataflow_dist_test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 1' TERM INT
failed=0
check() { # check NAME CMD...
    local name=$1; shift
    if "$@"; then echo "ok   $name"; else echo "FAIL $name"; failed=$((failed + 1)); fi
}
finish() { echo "dist: $failed failed ($((SECONDS - t0)) s)"; [ "$failed" -eq 0 ]; exit; }
t0=$SECONDS

REF=${DIST_REF:-HEAD}
VERSION=$(git show "$REF:pg_dataflow.control" | sed -n "s/^default_version = '\(.*\)'/\1/p")
NAME=pg_dataflow-$VERSION
TARBALL=$WORK/out/$NAME.tar.gz

# ---- make dist
DIST_REF=$REF DIST_DIR=$WORK/out timeout 120 make -s --no-print-directory dist > "$WORK/dist.log" 2>&1
rc=$?
check "make dist exits 0 (rc $rc)" test "$rc" -eq 0
[ "$rc" -eq 0 ] || cat "$WORK/dist.log"
check "it wrote $NAME.tar.gz (VERSION $VERSION from pg_dataflow.control)" test -s "$TARBALL"
[ -s "$TARBALL" ] || finish
# no credentials or local paths in META.json: the repository address is only what
# DIST_REPO_URL gives, a plain https:// one (a git remote may hold a token)
DIST_REF=$REF DIST_DIR=$WORK/bad DIST_REPO_URL='https://alice:ghp_T0KEN@example.com/x.git' \
    timeout 120 make -s --no-print-directory dist > "$WORK/bad.log" 2>&1
check "make dist refuses a repository address with credentials" test $? -ne 0
check "and does not print the token" bash -c "! grep -q ghp_T0KEN '$WORK/bad.log'"

# ---- the listing
tar -tzf "$TARBALL" | LC_ALL=C sort > "$WORK/listing" || { echo "FAIL tar -t"; finish; }
grep -v '/$' "$WORK/listing" > "$WORK/files"
check "one top directory $NAME/" bash -c "! grep -v '^$NAME/' '$WORK/listing'"
# exactly the committed files of the shipped paths, plus the two generated ones
{
    git ls-tree -r --name-only "$REF" -- pg_dataflow.control Makefile CMakeLists.txt README.md src docs
    for f in LICENSE LICENSE.md LICENSE.txt COPYING; do git cat-file -e "$REF:$f" 2>/dev/null && echo "$f"; done
    echo META.json
    echo "pg_dataflow--$VERSION.sql"
} | sed "s|^|$NAME/|" | LC_ALL=C sort > "$WORK/expected"
check "the files are the committed ones plus META.json and pg_dataflow--$VERSION.sql" \
    diff "$WORK/expected" "$WORK/files"
has() { grep -qxF "$NAME/$1" "$WORK/files"; }
for f in pg_dataflow.control Makefile CMakeLists.txt README.md META.json "pg_dataflow--$VERSION.sql" \
         src/sql/released.sha256 src/sql/00_schema.sql docs/sql-reference.md src/cli/main.cpp \
         src/pg/module.cpp src/worker/main.cpp src/core/keys.cpp; do
    check "contains $f" has "$f"
done
frozen=$(git show "$REF:src/sql/released.sha256" | awk '{print $2}')
for f in $frozen; do check "contains the frozen src/sql/$f" has "src/sql/$f"; done
upgrades=$(git ls-tree --name-only "$REF" src/sql/ | sed -n 's|^src/sql/\(pg_dataflow--[^-]*--[^-]*\.sql\)$|\1|p')
check "the repository has upgrade scripts to check ($(echo $upgrades))" test -n "$upgrades"
for f in $upgrades; do check "contains the upgrade script src/sql/$f" has "src/sql/$f"; done
check "no build outputs, build dirs, VCS or test files" bash -c "! grep -E \
    '\.(o|so|bc|a|tar\.gz|diffs|out)$|/\.deps/|/build(-[^/]*)?/|/\.git|^$NAME/(results|tmp_check|log|test|bench|sql|expected|demo|scripts)/' \
    '$WORK/listing'"
if git ls-tree --name-only "$REF" | grep -qiE '^(LICENSE|COPYING)'; then lic=1; else lic=0; fi

# ---- META.json (PGXN meta spec 1.0.0)
tar -xzf "$TARBALL" -C "$WORK" "$NAME/META.json" "$NAME/pg_dataflow.control" "$NAME/README.md"
check "META.json is valid and agrees with the control file and README.md" \
    python3 - "$WORK/$NAME" "$VERSION" "$lic" <<'PY'
import json, re, sys, os
top, version, has_license = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
errors = []
def err(m): errors.append(m)
meta = json.load(open(os.path.join(top, "META.json"), encoding="utf-8"))
control = open(os.path.join(top, "pg_dataflow.control"), encoding="utf-8").read()
readme = open(os.path.join(top, "README.md"), encoding="utf-8").read()
semver = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
for k in ("name", "version", "abstract", "maintainer", "license", "provides", "meta-spec"):
    if k not in meta: err("required key %s missing" % k)
known = {"name", "version", "abstract", "maintainer", "license", "provides", "meta-spec", "description",
         "generated_by", "tags", "no_index", "prereqs", "release_status", "resources"}
for k in meta:
    if k not in known and not re.match(r"^[xX]_.", k): err("key %s is not in spec 1.0.0" % k)
if meta.get("name") != "pg_dataflow": err("name %r" % meta.get("name"))
default_version = re.search(r"^default_version = '(.*)'", control, re.M).group(1)
if meta.get("version") != default_version or default_version != version:
    err("version %r, control default_version %r, HEAD %r" % (meta.get("version"), default_version, version))
if not semver.match(str(meta.get("version"))): err("version is not SemVer")
comment = re.search(r"^comment = '(.*)'", control, re.M).group(1)
if meta.get("abstract") != comment: err("abstract is not the control file's comment")
m = meta.get("maintainer")
if not (isinstance(m, str) and m) and not (isinstance(m, list) and m and all(isinstance(x, str) and x for x in m)):
    err("maintainer must be a string or a list of strings")
licenses = {"agpl_3", "apache_1_1", "apache_2_0", "artistic_1", "artistic_2", "bsd", "freebsd", "gfdl_1_2",
            "gfdl_1_3", "gpl_1", "gpl_2", "gpl_3", "lgpl_2_1", "lgpl_3_0", "mit", "mozilla_1_0", "mozilla_1_1",
            "openssl", "perl_5", "postgresql", "qpl_1_0", "ssleay", "sun", "zlib", "open_source", "restricted",
            "unrestricted", "unknown"}
lic = meta.get("license")
if isinstance(lic, str):
    if lic not in licenses: err("license %r is not a spec shortcut" % lic)
elif isinstance(lic, list):
    if not lic or any(x not in licenses for x in lic): err("license list %r" % lic)
elif not (isinstance(lic, dict) and lic):
    err("license must be a shortcut, a list or an object")
if not has_license and lic != "unknown": err("no LICENSE file, so the license must be 'unknown', not %r" % lic)
ext = meta.get("provides", {}).get("pg_dataflow")
if not isinstance(ext, dict): err("provides.pg_dataflow missing")
else:
    for k in ext:
        if k not in ("file", "version", "abstract", "docfile") and not re.match(r"^[xX]_.", k):
            err("provides.pg_dataflow.%s is not in the spec" % k)
    if ext.get("version") != version: err("provides version %r" % ext.get("version"))
    if ext.get("file") != "pg_dataflow--%s.sql" % version: err("provides file %r" % ext.get("file"))
    if not ext.get("abstract"): err("provides abstract empty")
ms = meta.get("meta-spec", {})
if not re.match(r"^1\.0\.\d+$", str(ms.get("version"))): err("meta-spec version %r" % ms.get("version"))
if "url" in ms and ms["url"] not in ("https://pgxn.org/meta/spec.txt", "http://pgxn.org/meta/spec.txt"):
    err("meta-spec url %r" % ms["url"])
if meta.get("release_status") not in ("stable", "testing", "unstable"):
    err("release_status %r" % meta.get("release_status"))
tags = meta.get("tags", [])
if not tags or any(not isinstance(t, str) or not re.match(r"^[^/\\\x00-\x1f\x7f]{2,255}$", t) for t in tags):
    err("tags %r" % tags)
req = meta.get("prereqs", {}).get("runtime", {}).get("requires", {})
pg = str(req.get("PostgreSQL"))
rm = re.search(r"Requires PostgreSQL ≥ (\d+)\.(\d+)", readme)
if not rm: err("README.md does not state the minimum PostgreSQL")
elif pg != "%s.%s.0" % rm.groups(): err("prereqs runtime PostgreSQL %r, README says %s.%s" % ((pg,) + rm.groups()))
if "resources" in meta and not meta["resources"]: err("resources must not be empty")
for e in errors: print("  META.json: " + e)
sys.exit(1 if errors else 0)
PY
for k in file docfile; do
    f=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['provides']['pg_dataflow'].get('$k',''))" \
        "$WORK/$NAME/META.json")
    [ -n "$f" ] && check "META.json provides $k $f is in the tarball" has "$f"
done

# ---- unpack and build it with PGXS, away from the repository
mkdir -p "$WORK/x"
tar -xzf "$TARBALL" -C "$WORK/x"
SRC=$WORK/x/$NAME
shipped=$WORK/shipped.sql
cp "$SRC/pg_dataflow--$VERSION.sql" "$shipped"
(cd "$SRC/src/sql" && sha256sum --quiet -c released.sha256) >/dev/null 2>&1
check "the frozen scripts match released.sha256 in the tarball" test $? -eq 0
# git cannot find any repository from here (a build step that needed one would fail)
nogit=(env GIT_DIR="$WORK/no-repository" GIT_CEILING_DIRECTORIES="$WORK")
check "the unpacked tree is not in a git repository" bash -c "! ${nogit[*]} git -C '$SRC' rev-parse 2>/dev/null"
tb=$SECONDS
(cd "$SRC" && "${nogit[@]}" timeout 400 make -j"$(nproc)" PG_CONFIG="$PG_CONFIG") > "$WORK/build.log" 2>&1
rc=$?
check "make (PGXS) builds the unpacked tarball (rc $rc, $((SECONDS - tb)) s)" test "$rc" -eq 0
[ "$rc" -eq 0 ] || { tail -40 "$WORK/build.log"; finish; }
check "the build made pg_dataflow.so and build/dataflow-run" test -s "$SRC/pg_dataflow.so" -a -x "$SRC/build/dataflow-run"
check "make used the shipped install script as it is" cmp -s "$shipped" "$SRC/pg_dataflow--$VERSION.sql"
check "the CLI build does not look for GoogleTest (no tests in the tarball)" \
    bash -c "! grep -q '^GTest_DIR' '$SRC/build/CMakeCache.txt'"
(cd "$SRC" && "${nogit[@]}" make -s -B "pg_dataflow--$VERSION.sql" PG_CONFIG="$PG_CONFIG") >/dev/null 2>&1
check "the shipped install script is what the shipped modules make" cmp -s "$shipped" "$SRC/pg_dataflow--$VERSION.sql"

# ---- install into a staging DESTDIR
STAGE=$WORK/stage
(cd "$SRC" && "${nogit[@]}" timeout 120 make install DESTDIR="$STAGE" PG_CONFIG="$PG_CONFIG") > "$WORK/install.log" 2>&1
rc=$?
check "make install DESTDIR=... exits 0 (rc $rc)" test "$rc" -eq 0
[ "$rc" -eq 0 ] || tail -20 "$WORK/install.log"
EXTDIR=$STAGE$("$PG_CONFIG" --sharedir)/extension
LIBDIR=$STAGE$("$PG_CONFIG" --pkglibdir)
BINDIR=$STAGE$("$PG_CONFIG" --bindir)
staged() { test -s "$EXTDIR/$1"; }
check "staged pg_dataflow.control" cmp -s "$SRC/pg_dataflow.control" "$EXTDIR/pg_dataflow.control"
check "staged pg_dataflow--$VERSION.sql (the shipped one)" cmp -s "$shipped" "$EXTDIR/pg_dataflow--$VERSION.sql"
for f in $frozen; do check "staged the frozen $f" cmp -s "$SRC/src/sql/$f" "$EXTDIR/$f"; done
check "staged frozen scripts match released.sha256" \
    bash -c "cd '$EXTDIR' && sha256sum --quiet -c '$SRC/src/sql/released.sha256'"
for f in $upgrades; do check "staged the upgrade script $f" staged "$f"; done
n=$(find "$EXTDIR" -name 'pg_dataflow*' -type f | wc -l)
check "nothing else staged in the extension directory ($n files)" \
    test "$n" -eq $((2 + $(echo $frozen | wc -w) + $(echo $upgrades | wc -w)))
check "staged pg_dataflow.so" test -s "$LIBDIR/pg_dataflow.so"
check "staged dataflow-run" test -x "$BINDIR/dataflow-run"
# pg_config's bindir is not on PATH on Debian: a link in /usr/local/bin (BINDIR) points
# at the installed file (its final path, not the staging one)
LINK=$STAGE/usr/local/bin/dataflow-run
check "staged the link /usr/local/bin/dataflow-run -> $("$PG_CONFIG" --bindir)/dataflow-run" \
    test -L "$LINK" -a "$(readlink "$LINK")" = "$("$PG_CONFIG" --bindir)/dataflow-run"
check "nothing staged outside DESTDIR's PostgreSQL directories but that link" \
    bash -c "[ -z \"\$(find '$STAGE' ! -type d ! -path '$EXTDIR/*' ! -path '$LIBDIR/*' ! -path '$BINDIR/*' \
        ! -path '$STAGE$("$PG_CONFIG" --pkglibdir)/bitcode/*' ! -path '$LINK')\" ]"
STAGE2=$WORK/stage2
(cd "$SRC" && "${nogit[@]}" timeout 120 make install DESTDIR="$STAGE2" BINDIR=/opt/df/bin \
    PG_CONFIG="$PG_CONFIG") > "$WORK/install2.log" 2>&1
check "make install BINDIR=/opt/df/bin puts the link there instead" \
    test -L "$STAGE2/opt/df/bin/dataflow-run" -a ! -e "$STAGE2/usr/local/bin/dataflow-run"
STAGE3=$WORK/stage3
(cd "$SRC" && "${nogit[@]}" timeout 120 make install DESTDIR="$STAGE3" BINDIR= \
    PG_CONFIG="$PG_CONFIG") > "$WORK/install3.log" 2>&1
check "make install BINDIR= installs no link" \
    bash -c "[ -x '$STAGE3$("$PG_CONFIG" --bindir)/dataflow-run' ] && [ -z \"\$(find '$STAGE3' -type l)\" ]"

finish
