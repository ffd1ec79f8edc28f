#!/usr/bin/env bash
# Hostile input to every public SQL function (issue 7, item 6).
# fuzz/fuzz.sql generates calls (NULLs, empty and 1 MB strings, bad keys for
# each kind, wrong kinds, names with quotes/semicolons/backslashes, Unicode,
# control characters, huge ranges, negative and huge numbers) to every public
# function of schema dataflow (and the UPDATE on dataflow.chunks), each call in
# a subtransaction, over the fixture in fuzz/fixture.sql; each function's batch
# runs in one transaction that is rolled back, so all start from the same state.
# Pass: 0 backend crashes (the session survives every batch, no "terminated by
# signal" in the server log); every error's SQLSTATE is one the extension
# documents (the ERRCODEs and dataflow._raise SQLSTATEs raised in src/sql and by src/pg/keys_sql.cpp, plus
# 42501 for privileges) -- anything else (XX000, 23xxx, 53xxx, ...) fails with
# the call that raised it; the dataflow tables are unchanged by failed calls
# (md5 fingerprint before/after: calls 1-10 of each batch of 1,000, then every
# 100th); no call takes longer than FUZZ_SLOW_MS (a huge
# range must be refused, not attempted); every public function is covered.
# Short form (default, CI): 1,000 calls per function; full (DF_FULL=1, make
# chaos): 10,000. Knobs: FUZZ_CALLS, FUZZ_SEED, FUZZ_ONLY (one function name).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. scripts/lib.sh
. test/integration/chaos/lib.bash

mode=$(rt_mode)
if [ "$mode" = full ]; then calls_def=10000; else calls_def=1000; fi
CALLS=${FUZZ_CALLS:-$calls_def}
SEED=${FUZZ_SEED:-$((RANDOM % 10000))}
SLOW_MS=${FUZZ_SLOW_MS:-5000}

# The documented SQLSTATEs: what src/sql raises, what the key layer maps its
# errors to, and 42501 (privileges).
allowed=$( { grep -hE 'ERRCODE' src/sql/*.sql | grep -oE "'[0-9A-Z]{5}'";
             grep -ohE "_raise\('[0-9A-Z]{5}'" src/sql/*.sql | grep -oE "'[0-9A-Z]{5}'"; } | tr -d "'" | sort -u)
declare -A errname=([INVALID_DATETIME_FORMAT]=22007 [INVALID_TEXT_REPRESENTATION]=22P02
    [INVALID_PARAMETER_VALUE]=22023 [DATETIME_FIELD_OVERFLOW]=22008 [NUMERIC_VALUE_OUT_OF_RANGE]=22003
    [PROGRAM_LIMIT_EXCEEDED]=54000 [INVALID_OBJECT_DEFINITION]=42P17)
for e in $(grep -ohE 'ERRCODE_[A-Z_]+' src/pg/keys_sql.cpp | sed 's/^ERRCODE_//' | sort -u); do
    [ "$e" = INTERNAL_ERROR ] && continue   # XX000: the "cannot happen" fallback, a failure if seen
    [ -n "${errname[$e]:-}" ] || { echo "FAIL: keys_sql.cpp uses ERRCODE_$e: add it to the map in $0"; exit 1; }
    allowed+=$'\n'"${errname[$e]}"
done
allowed=$(printf '%s\n42501\n' "$allowed" | sort -u | grep -v '^$' | tr '\n' ',' | sed 's/,$//')
echo "fuzz_sql ($mode): $CALLS calls per function, seed $SEED; documented SQLSTATEs: $allowed"

rt_setup "dataflow.enabled = off" "max_locks_per_transaction = 256"
rt_psql -v ON_ERROR_STOP=1 -f - <test/integration/fuzz/fixture.sql >/dev/null 2>"$RT_DIR/fixture.err" \
    || { cat "$RT_DIR/fixture.err"; echo "FAIL: fixture"; exit 1; }
rt_psql -v ON_ERROR_STOP=1 -f - <test/integration/fuzz/fuzz.sql >/dev/null 2>"$RT_DIR/fuzz.err" \
    || { cat "$RT_DIR/fuzz.err"; echo "FAIL: generator setup"; exit 1; }

# Every public function has a spec line.
missing=$(rt_sql "
SELECT string_agg(DISTINCT p.proname, ', ') FROM pg_proc p
 WHERE p.pronamespace = 'dataflow'::regnamespace AND p.proname !~ '^_' AND p.prokind = 'f'
   AND NOT EXISTS (SELECT FROM fz.spec s WHERE s.fname = p.proname OR s.fname LIKE p.proname || '(%')")
rt_check "every public function is fuzzed" "$([ -z "$missing" ] && echo 0 || echo 1)" \
    "$(rt_sql "SELECT count(*) FROM fz.spec") spec lines; missing: ${missing:-none}"

fnames=$(rt_sql "SELECT fname FROM fz.spec ORDER BY fname")
[ -n "${FUZZ_ONLY:-}" ] && fnames=$FUZZ_ONLY
total=0; t_start=$(date +%s)
while IFS= read -r f; do
    fseed=$(awk -v s="$SEED" -v f="$(printf '%s' "$f" | cksum | cut -d' ' -f1)" 'BEGIN { srand(s + f); printf "%.6f", rand() * 2 - 1 }')
    # Batches of at most 1,000 calls, each in its own rolled-back transaction
    # (a real client does not make 10,000 calls in one transaction: locks and
    # temp-table catalog entries of successful calls would pile up until commit).
    batches=""
    for ((b = 0; b * 1000 < CALLS; b++)); do
        n=$((CALLS - b * 1000 < 1000 ? CALLS - b * 1000 : 1000))
        batches+="BEGIN; SELECT fz.run('$f', $n, $fseed / $((b + 1))); ROLLBACK;"$'\n'
    done
    out=$(rt_psql -v ON_ERROR_STOP=1 2>&1 <<SQL
SET fz.allowed = '$allowed';
SET fz.slow_ms = '$SLOW_MS';
SET statement_timeout = '900s';
$batches
SQL
)
    rc=$?
    if [ $rc -ne 0 ] && ! printf '%s' "$out" | grep -qE 'server closed the connection|connection to server was lost|terminating connection'; then
        rt_check "$f: generator ran" 1 "psql rc=$rc: $(printf '%s' "$out" | grep -m1 ERROR)"
        continue
    fi
    if [ $rc -ne 0 ] || ! printf '%s' "$out" | grep -q '^{'; then
        rt_check "$f: session survived" 1 "psql rc=$rc: $(printf '%s' "$out" | tail -3 | tr '\n' ' ')"
        # Replay the same calls with a log of each, to name the call that killed the session.
        for ((i = 0; i < 60; i++)); do df_as_user pg_isready -q && break; sleep 1; done
        rt_psql 2>&1 <<SQL | grep -E 'NOTICE:  call' | tail -1 | cut -c1-600
SET fz.allowed = '$allowed'; SET fz.slow_ms = '$SLOW_MS'; SET client_min_messages = notice;
$(printf '%s' "$batches" | sed 's/);/, 10, 100, true);/')
SQL
        continue
    fi
    json=$(printf '%s' "$out" | grep '^{')
    line=$(python3 - "$json" <<'PY'
import json, sys
parts = [json.loads(l) for l in sys.argv[1].splitlines() if l.strip()]
r = {"calls": 0, "ok": 0, "sqlstates": {}, "bad": [], "fp_checks": 0, "fp_bad": 0, "max_ms": 0, "slow": []}
tot_ms = 0
for p in parts:
    for k in ("calls", "ok", "fp_checks", "fp_bad"):
        r[k] += p[k]
    for k, v in p["sqlstates"].items():
        r["sqlstates"][k] = r["sqlstates"].get(k, 0) + v
    r["bad"] = (r["bad"] + p["bad"])[:10]
    r["slow"] = (r["slow"] + p["slow"])[:5]
    r["max_ms"] = max(r["max_ms"], p["max_ms"])
    tot_ms += p["avg_ms"] * p["calls"]
r["avg_ms"] = round(tot_ms / max(r["calls"], 1), 2)
bad = r["bad"]
states = " ".join(f"{k}:{v}" for k, v in sorted(r["sqlstates"].items(), key=lambda kv: -kv[1]))
status = 0 if not bad and r["fp_bad"] == 0 and not r["slow"] else 1
print(status, f'{r["calls"]} calls, {r["ok"]} ok; {states}; fingerprints {r["fp_checks"]} checked, '
      f'{r["fp_bad"]} changed; avg {r["avg_ms"]} ms, max {r["max_ms"]} ms')
for b in bad:
    print("   BAD", b["sqlstate"], "|", b["message"][:200], "|", b["call"][:300])
for s in r["slow"]:
    print("   SLOW", s["ms"], "ms |", s["call"][:300])
PY
)
    st=${line%% *}; rest=${line#* }
    rt_check "$f" "$st" "$(printf '%s' "$rest" | head -1)"
    printf '%s\n' "$rest" | tail -n +2
    total=$((total + CALLS))
done <<<"$fnames"
echo "$total calls in $(($(date +%s) - t_start))s"
alive=$(rt_sql "SELECT 1")
rt_check "server still answers" "$([ "$alive" = 1 ] && echo 0 || echo 1)" "SELECT 1 -> $alive"
rt_check_no_crash
rt_finish
