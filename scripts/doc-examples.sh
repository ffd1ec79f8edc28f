#!/usr/bin/env bash
# Every psql example in docs/operations.md is run by the regression suite.
#
#   scripts/doc-examples.sh           write sql/docs_operations.sql from the ```sql blocks of the doc
#   scripts/doc-examples.sh --check   exit 1 if sql/docs_operations.sql is not what the doc yields,
#                                     or if an output shown in the doc is not in expected/docs_operations.out
#
# The blocks are concatenated in order, so the doc reads as one psql session: its
# first block sets up the example flow. Blocks fenced otherwise (```sh, ```text)
# are not run. A ```text block right after a line `<!-- output -->` shows psql
# output: --check makes sure it appears, verbatim, in expected/docs_operations.out.
# After changing the doc: regenerate, run the suite, read results/docs_operations.out
# and copy it to expected/ once each result is right.
set -euo pipefail
cd "$(dirname "$0")/.."

doc=docs/operations.md
out=sql/docs_operations.sql

generate() {
    echo "-- generated from $doc by scripts/doc-examples.sh; do not edit"
    awk -v doc="$doc" '
        /^```sql[[:space:]]*$/ { if (inside) { print doc ": line " NR ": ```sql inside a block" > "/dev/stderr"; exit 2 }
                                 inside = 1; blocks++; if (blocks > 1) print ""; next }
        /^```/ && inside       { inside = 0; next }
        inside                 { print }
        END {
            if (inside) { print doc ": the last ```sql block is not closed" > "/dev/stderr"; exit 2 }
            if (blocks == 0) { print doc ": no ```sql blocks" > "/dev/stderr"; exit 2 }
        }' "$doc"
}

# Every output block of the doc must appear verbatim in the expected output.
check_outputs() {
    local expected=expected/docs_operations.out
    [ -s "$expected" ] || { echo "$expected is missing" >&2; return 1; }
    awk -v doc="$doc" -v expfile="$expected" '
        FNR == NR            { want_text = want_text $0 "\n"; next }
        /^<!-- output -->$/  { state = 1; next }
        state == 1 && /^```/ { state = 2; block = ""; start = FNR; next }
        state == 1           { next }
        state == 2 && /^```/ {
            if (index(want_text, block) == 0) {
                print doc ": line " start ": this output is not in " expfile > "/dev/stderr"; bad = 1
            }
            state = 0; next
        }
        state == 2           { block = block $0 "\n" }
        END                  { exit bad }' "$expected" "$doc"
}

case "${1:-}" in
    "")
        tmp=$(mktemp); trap 'rm -f "$tmp"' EXIT
        generate > "$tmp"
        cat "$tmp" > "$out"
        echo "wrote $out ($(grep -c '' "$out") lines)"
        ;;
    --check)
        tmp=$(mktemp); trap 'rm -f "$tmp"' EXIT
        generate > "$tmp"
        if ! diff -u "$out" "$tmp" > /dev/null 2>&1; then
            echo "$out is out of date with $doc: run scripts/doc-examples.sh (then update expected/docs_operations.out)" >&2
            diff -u "$out" "$tmp" | head -40 >&2 || true
            exit 1
        fi
        check_outputs || { echo "update the output blocks of $doc from expected/docs_operations.out" >&2; exit 1; }
        ;;
    *)
        echo "usage: $0 [--check]" >&2
        exit 2
        ;;
esac
