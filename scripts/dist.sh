#!/usr/bin/env bash
# make dist: the release source tarball pg_dataflow-VERSION.tar.gz (PGXN layout).
#   scripts/dist.sh                          from HEAD, written to the repository root
#   DIST_REF=v0.2.0 DIST_DIR=/tmp scripts/dist.sh
#   DIST_RELEASE_STATUS=stable|testing|unstable   (default: stable when the tag
#                                            vVERSION is the archived commit, else testing)
# The tarball holds what is committed at DIST_REF (never uncommitted edits), under one
# directory pg_dataflow-VERSION/: the control file, Makefile, CMakeLists.txt, README.md,
# a LICENSE if one is tracked, src/ (C++ and the SQL modules, the frozen install scripts,
# every upgrade script, released.sha256) and docs/, plus two generated files:
#   META.json                 PGXN meta spec 1.0.0, from META.json.in: version and abstract
#                             from the control file, minimum PostgreSQL from README.md
#   pg_dataflow--VERSION.sql  the install script, concatenated by the tarball's own Makefile
#                             from its src/sql modules (so the file META.json's provides names
#                             exists, and a packager sees the SQL without running make;
#                             make rebuilds it only if a module is changed after unpacking)
# It builds with PGXS alone (make && make install), without git or this repository.
# VERSION is default_version of the control file at DIST_REF. Entries carry the commit's
# time, so the same commit gives the same tarball.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
die() { echo "dist: $*" >&2; exit 1; }

REF=${DIST_REF:-HEAD}
OUTDIR=${DIST_DIR:-$ROOT}
command -v git >/dev/null || die "git is needed to make a tarball (not to build one)"
command -v python3 >/dev/null || die "python3 is needed to write META.json"
commit=$(git rev-parse --verify --quiet "$REF^{commit}") || die "no commit $REF"
epoch=$(git show -s --format=%ct "$commit")

control=$(git show "$commit:pg_dataflow.control") || die "no pg_dataflow.control at $REF"
VERSION=$(sed -n "s/^default_version = '\(.*\)'/\1/p" <<<"$control")
[[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "default_version '$VERSION' is not MAJOR.MINOR.PATCH"
ABSTRACT=$(sed -n "s/^comment = '\(.*\)'/\1/p" <<<"$control")
[ -n "$ABSTRACT" ] || die "no comment in pg_dataflow.control (the abstract)"
PG_MIN=$(git show "$commit:README.md" | sed -n 's/.*Requires PostgreSQL ≥ \([0-9][0-9.]*[0-9]\).*/\1/p' | head -1)
[ -n "$PG_MIN" ] || die "README.md does not say 'Requires PostgreSQL ≥ X.Y'"
[[ $PG_MIN =~ ^[0-9]+\.[0-9]+$ ]] && PG_MIN=$PG_MIN.0
tag_commit=$(git rev-parse --verify --quiet "refs/tags/v$VERSION^{commit}" || true)
RELEASE_STATUS=${DIST_RELEASE_STATUS:-$([ "$tag_commit" = "$commit" ] && echo stable || echo testing)}
# The repository's public address, only when given (DIST_REPO_URL): a git remote may hold
# credentials (https://user:token@...) or a local path, neither of which may be published.
REPO_URL=${DIST_REPO_URL:-}
if [ -n "$REPO_URL" ] && ! [[ $REPO_URL =~ ^https://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~/-]*)?$ ]]; then
    die "DIST_REPO_URL must be a plain https:// address without credentials (not shown)"
fi

NAME=pg_dataflow-$VERSION
paths=(pg_dataflow.control Makefile CMakeLists.txt README.md src docs)
for f in LICENSE LICENSE.md LICENSE.txt COPYING; do
    git cat-file -e "$commit:$f" 2>/dev/null && paths+=("$f")
done
git cat-file -e "$commit:META.json.in" 2>/dev/null || die "META.json.in is not committed at $REF"

if [ "$REF" = HEAD ] && [ -n "$(git status --porcelain -- "${paths[@]}" META.json.in 2>/dev/null)" ]; then
    echo "dist: note: uncommitted changes are not in the tarball (it is made from $REF):" >&2
    git status --short -- "${paths[@]}" META.json.in | head -10 >&2
fi

stage=$(mktemp -d "${TMPDIR:-/tmp}/pg_dataflow_dist.XXXXXX")
trap 'rm -rf "$stage"' EXIT
git archive --format=tar --prefix="$NAME/" "$commit" -- "${paths[@]}" | tar -x -C "$stage"
top=$stage/$NAME

# The install script, made by the tarball's Makefile from the tarball's modules (the
# rule needs neither PGXS nor git).
make -s -C "$top" --no-print-directory "pg_dataflow--$VERSION.sql" >/dev/null \
    || die "could not generate pg_dataflow--$VERSION.sql"
[ -s "$top/pg_dataflow--$VERSION.sql" ] || die "pg_dataflow--$VERSION.sql is empty"

git show "$commit:META.json.in" > "$stage/META.json.in"
VERSION=$VERSION ABSTRACT=$ABSTRACT PG_MIN=$PG_MIN RELEASE_STATUS=$RELEASE_STATUS \
REPO_URL=$REPO_URL COMMIT=$commit python3 - "$stage/META.json.in" "$top/META.json" <<'PY'
import json, os, sys
env = os.environ
subst = {"@VERSION@": env["VERSION"], "@ABSTRACT@": env["ABSTRACT"],
         "@PG_MIN@": env["PG_MIN"], "@RELEASE_STATUS@": env["RELEASE_STATUS"]}

def fill(v):
    if isinstance(v, str):
        for k, s in subst.items():
            v = v.replace(k, s)
        return v
    if isinstance(v, list):
        return [fill(x) for x in v]
    if isinstance(v, dict):
        return {fill(k): fill(x) for k, x in v.items()}
    return v

meta = fill(json.load(open(sys.argv[1], encoding="utf-8")))
url = env.get("REPO_URL", "")
if url and "resources" not in meta:
    repo = {"url": url, "type": "git"}
    if url.startswith("https://"):
        repo["web"] = url[:-4] if url.endswith(".git") else url
    meta["resources"] = {"repository": repo}
meta["x_git_commit"] = env["COMMIT"]
left = [k for k in subst if k in json.dumps(meta)]
if left:
    sys.exit("META.json.in: unknown placeholder left: %s" % left)
for key in ("name", "version", "abstract", "maintainer", "license", "provides", "meta-spec"):
    if key not in meta:
        sys.exit("META.json.in: required key %s missing" % key)
with open(sys.argv[2], "w", encoding="utf-8") as out:
    json.dump(meta, out, indent=3, ensure_ascii=False)
    out.write("\n")
PY

# Same commit, same bytes: one time, sorted names, no owners, gzip without a name/time.
mkdir -p "$OUTDIR"
out=$OUTDIR/$NAME.tar.gz
tar -C "$stage" --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner \
    --mode='u+rwX,go+rX,go-w' --format=gnu -cf - "$NAME" | gzip -9n > "$out.tmp"
mv "$out.tmp" "$out"
echo "$out: $(tar -tzf "$out" | grep -vc '/$') files, $(du -k "$out" | cut -f1) kB," \
     "from $(git rev-parse --short "$commit") ($RELEASE_STATUS)"
