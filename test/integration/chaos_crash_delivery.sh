#!/usr/bin/env bash
# Postgres and worker crashes during dispatch and delivery (issue 7, item 3).
#
# 1. Rollback exactness, no crash: 1,000 registrations, each in its own
#    transaction, those with key % 10 < 3 rolled back. Exactly 700 events, 700
#    outbox rows and 700 webhooks arrive, none for a rolled-back key, none twice.
# 2. Crashes: a webhook generator (its own psql session, 30% of its transactions
#    rolled back) and an input generator that makes the chunks of an http job
#    queued run side by side; the job's engine (crash_receiver.py) finishes
#    even run ids synchronously (200) and accepts odd ones (202) and completes
#    them over SQL. The receiver drops a request whose sender died while it
#    waited (0-150 ms), so a crash leaves work that only a re-send delivers.
#    Meanwhile the background worker is SIGKILLed (the postmaster then
#    restarts every backend) and Postgres is restarted with
#    `pg_ctl restart -m immediate`, in random order at random moments; the
#    generators reconnect and resume after the last committed key.
# Pass: every webhook arrives (0 lost), signed; outbox rows = committed events
# (none for rolled-back ones); every chunk ends ready with exactly one succeeded
# run per version; everything sent again (a webhook-id received twice, a
# request dropped because its sender died, an http run whose result was lost
# and that expired) is explained by a crash that caught it in flight, and per
# crash it is at most dataflow.http_concurrency (the worker's window: sent but
# not yet recorded); the server log shows no crash but ours. Figures:
# deliveries, what each crash caught, time to drain after the last crash.
#
# Short form (CI): 1,500 webhook transactions (~1,050 deliveries), 1,000
# chunks, 3 restarts + 3 SIGKILLs over ~30 s. Full (DF_FULL=1, make chaos):
# 6,000 (~4,200 deliveries), 5,000 chunks, 8 + 8 crashes over ~150 s.
# Knobs: CRASH_HOOK_KEYS, CRASH_CHUNKS, CRASH_RESTARTS, CRASH_KILLS,
# CRASH_SECONDS, CRASH_WINDOW (http_concurrency), CRASH_DRAIN (s), DF_FAULT_SQL
# (SQL run after CREATE EXTENSION), RECEIVER_DROP_EVERY / RECEIVER_LOSE_EVERY
# (receiver faults, see crash_receiver.py): the last three show that it fails.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
. scripts/lib.sh
. test/integration/chaos/lib.bash

mode=$(rt_mode)
if [ "$mode" = full ]; then
    d_keys=6000; d_chunks=5000; d_restarts=8; d_kills=8; d_seconds=150
else
    d_keys=1500; d_chunks=1000; d_restarts=3; d_kills=3; d_seconds=30
fi
HOOK_KEYS=${CRASH_HOOK_KEYS:-$d_keys}
CHUNKS=${CRASH_CHUNKS:-$d_chunks}
RESTARTS=${CRASH_RESTARTS:-$d_restarts}
KILLS=${CRASH_KILLS:-$d_kills}
SECONDS_GEN=${CRASH_SECONDS:-$d_seconds}
WINDOW=${CRASH_WINDOW:-16}
DRAIN=${CRASH_DRAIN:-120}
RB_N=1000
LEASE=8   # seconds: a lost http result is retried after the lease, the reaper runs every 5 s
echo "chaos_crash_delivery ($mode): rollback $RB_N; crashes: $HOOK_KEYS webhook transactions," \
     "$CHUNKS http chunks, $RESTARTS restarts + $KILLS SIGKILLs over ~${SECONDS_GEN}s, http_concurrency $WINDOW"

# fsync = off: only processes crash here, never the OS, and a commit still
# writes its WAL to the kernel before it is acknowledged (synchronous_commit).
rt_setup "dataflow.naptime = 500" "dataflow.http_allow = '127.0.0.1/32'" "dataflow.http_timeout = 5000" \
    "dataflow.http_concurrency = $WINDOW" "fsync = off" "max_connections = 40"
if [ -n "${DF_FAULT_SQL:-}" ]; then
    echo "injecting fault from $DF_FAULT_SQL"
    rt_psql -v ON_ERROR_STOP=1 -f - <"$DF_FAULT_SQL" >/dev/null || exit 1
fi
W=$RT_DIR/w; mkdir -p "$W"; chmod 777 "$W"
now() { date +%s.%N; }

rt_bg env RECEIVER_PSQL="$PG_BINDIR/psql" RECEIVER_DELAY_MS="${RECEIVER_DELAY_MS:-150}" \
    python3 "$ROOT/test/integration/crash_receiver.py" "$W/port" "$W/recv.log" "$W/secret" 2>"$W/receiver.err"
for ((i = 0; i < 100; i++)); do [ -s "$W/port" ] && break; sleep 0.1; done
[ -s "$W/port" ] || { echo "FAIL: receiver did not start" >&2; exit 1; }
URL="http://127.0.0.1:$(cat "$W/port")"

secret=$(rt_sql "SELECT dataflow.subscribe('rb', '$URL/hook/rb', datasets => '{rb}')")
echo "$secret" >"$W/secret"   # the receiver verifies every signature with it
rt_sql "
SELECT dataflow.subscribe('crash', '$URL/hook/crash', datasets => '{hook}', secret => '$secret');
SELECT dataflow.create_dataset(d, 'int') FROM unnest('{rb,hook,in,out}'::text[]) d;
SELECT dataflow.create_job('engine', output => 'out', dispatch => 'http', endpoint => '$URL/engine',
                           lease_for => '$LEASE seconds', max_attempts => 100,
                           backoff_min => '0', backoff_max => '0');
SELECT dataflow.add_input('engine', 'in');
SELECT dataflow.expect('out', '1', '$CHUNKS');" >/dev/null

# The analysis of the receiver's log against the database, shared by both parts.
cat >"$W/check.py" <<'PY'
import collections, re, sys
part, W = sys.argv[1], sys.argv[2]
P = dict(a.split("=", 1) for a in sys.argv[3:])
def rows(name):
    try:
        return [l.rstrip("\n").split("\t") for l in open(W + "/" + name) if l.strip()]
    except FileNotFoundError:
        return []
def check(name, ok, figures):
    print("CHECK\t%s\t%d\t%s" % (name, 0 if ok else 1, figures))
log = rows("recv.log")
hooks = collections.defaultdict(list)  # (path, webhook-id) -> receipt times
hook_keys = collections.defaultdict(set)
for r in log:
    if r[0] == "hook":
        hooks[(r[2], r[3])].append(float(r[1]))
        hook_keys[r[2]].add(r[6])
unverified = sum(1 for r in log if r[0] == "hook" and r[4] != "1")
# Requests the receiver dropped because their sender had gone (crash_receiver.py).
aborted_hooks = [(float(r[1]), r[3]) for r in log if r[0] == "abort" and r[2] == "hook"]
aborted_runs = {r[3]: float(r[1]) for r in log if r[0] == "abort" and r[2] == "task"}
deliv = rows("deliveries.tsv")  # id, subscription, status, event_id
events = rows("events.tsv")     # id, dataset, key

def outbox(sub, ds, want_keys, path):
    ev = {e[0]: e[2] for e in events if e[1] == ds}
    dl = [d for d in deliv if d[1] == sub]
    ids = {"msg_" + d[0] for d in dl}
    got = {wid for (p, wid) in hooks if p == path}
    keys = set(ev.values())
    check(ds + ": committed changes = intended", keys == want_keys,
          "%d events (%d distinct keys), %d intended, %d missing, %d unexpected (rolled back or made up)"
          % (len(ev), len(keys), len(want_keys), len(want_keys - keys), len(keys - want_keys)))
    check(ds + ": outbox row per event, none else", len(dl) == len(ev) and {d[3] for d in dl} == set(ev),
          "%d outbox rows for %d events" % (len(dl), len(ev)))
    st = collections.Counter(d[2] for d in dl)
    check(ds + ": every outbox row delivered", st["delivered"] == len(dl),
          " ".join("%s %d" % kv for kv in sorted(st.items())) or "none")
    check(ds + ": 0 lost (every webhook-id received)", ids <= got, "%d of %d received, %d lost"
          % (len(ids & got), len(ids), len(ids - got)))
    check(ds + ": nothing received that did not commit", got <= ids and hook_keys[path] <= want_keys,
          "%d webhook-ids unknown to the outbox, %d keys never committed"
          % (len(got - ids), len(hook_keys[path] - want_keys)))
    return sum(len(hooks[(path, w)]) for w in got)

if part == "rollback":
    n = int(P["n"])
    want = {str(k) for k in range(1, n + 1) if k % 10 >= 3}
    reqs = outbox("rb", "rb", want, "/hook/rb")
    got = len([1 for (p, _) in hooks if p == "/hook/rb"])
    outbox_rows = sum(1 for d in deliv if d[1] == "rb")
    check("rb: exactly the committed 70% delivered", got == len(want) == outbox_rows,
          "%d webhook-ids received, %d outbox rows, %d committed of %d" % (got, outbox_rows, len(want), n))
    ab = sum(1 for _, w in aborted_hooks if w[4:] in {d[0] for d in deliv if d[1] == "rb"})
    check("rb: nothing sent twice without a crash", reqs == got and ab == 0,
          "%d requests for %d webhook-ids, %d abandoned by the sender" % (reqs, got, ab))
    sys.exit(0)

# ---- crash part ----------------------------------------------------------
window = int(P["window"])
crashes = [(int(c[0]), c[1], float(c[2]), float(c[3]), c[4], c[5]) for c in rows("crashes.tsv")]
n_keys, n_chunks = int(P["keys"]), int(P["chunks"])
want = {str(k) for k in range(1, n_keys + 1) if k % 10 >= 3}
acked = {r[0].split()[1] for r in rows("hook.acks") if r[0].startswith("ack ")}
committed = {e[2] for e in events if e[1] == "hook"}
check("hook: acknowledged commits survived", acked <= committed,
      "%d acknowledged, %d of them missing" % (len(acked), len(acked - committed)))
reqs = outbox("crash", "hook", want, "/hook/crash")

# A crash catches a request the receiver logged up to BEFORE s before the crash
# began (answered, but its result not yet recorded: the worker records at its
# next pass, milliseconds later) or up to AFTER s after the server was back
# (sent by the dying worker, logged late by a busy receiver).
BEFORE, AFTER = float(P["before"]), 1.0
leads = []
def assign(x, later=None):
    """The crash that caught work sent at x (and, for a duplicate, before its next receipt)."""
    cands = [c for c in crashes if c[2] - BEFORE <= x <= c[3] + AFTER and (later is None or c[2] <= later)]
    inside = [c for c in cands if c[2] <= x]
    after = sorted((c for c in cands if c[2] > x), key=lambda c: c[2])
    c = (inside or after or [None])[0]
    if c is not None:
        leads.append(c[2] - x)
    return c
per_crash = collections.Counter()
unexplained = []
dup_ids = 0
for (p, wid), ts in hooks.items():
    if p != "/hook/crash" or len(ts) < 2:
        continue
    dup_ids += 1
    ts.sort()
    for t1, t2 in zip(ts, ts[1:]):
        c = assign(t1, t2)
        if c is None:
            unexplained.append("%s at %.3f and %.3f" % (wid, t1, t2))
        else:
            per_crash[c[0]] += 1
dup_hooks = reqs - len({w for (p, w) in hooks if p == "/hook/crash"})
crash_ids = {"msg_" + d[0] for d in deliv if d[1] == "crash"}
aborts = 0
for t, wid in aborted_hooks:
    if wid not in crash_ids:
        continue
    aborts += 1
    c = assign(t)
    if c is None:
        unexplained.append("%s abandoned by the worker at %.3f" % (wid, t))
    else:
        per_crash[c[0]] += 1

runs = rows("runs.tsv")  # id, chunk_id, key, version, status, started, finished
tasks = collections.defaultdict(list)
for r in log:
    if r[0] == "task":
        tasks[r[2]].append((float(r[1]), r[4], r[5], r[7]))
out = rows("out.tsv")  # key, status, version, run_id
st = collections.Counter(r[1] for r in out)
check("out: every chunk ready", len(out) == n_chunks and st["ready"] == n_chunks,
      "%d chunks, %s" % (len(out), " ".join("%s %d" % kv for kv in sorted(st.items()))))
succ = collections.Counter((r[1], r[3]) for r in runs if r[4] == "succeeded")
versions = {(r[1], r[3]) for r in runs}
check("out: one succeeded run per chunk version", all(succ[v] == 1 for v in versions),
      "%d chunk versions, %d with 2+ successes, %d with none"
      % (len(versions), sum(1 for v in versions if succ[v] > 1), sum(1 for v in versions if succ[v] == 0)))
byid = {r[0]: r for r in runs}
bad = [o for o in out if o[3] not in byid or byid[o[3]][4] != "succeeded" or byid[o[3]][3] != o[2]]
check("out: each chunk's run is its succeeded run", not bad, "%d chunks point elsewhere" % len(bad))
rs = collections.Counter(r[4] for r in runs)
check("out: runs ended succeeded or expired", set(rs) <= {"succeeded", "expired"},
      " ".join("%s %d" % kv for kv in sorted(rs.items())))
lost = [r[0] for r in runs if r[4] == "succeeded" and r[0] not in tasks]
check("out: every success came from the engine", not lost, "%d succeeded runs never dispatched" % len(lost))
multi = [k for k, v in tasks.items() if len(v) > 1]
check("out: each run dispatched at most once", not multi, "%d runs sent more than once" % len(multi))
per_version = collections.Counter((v[1], v[2]) for vs in tasks.values() for v in vs)
worst = max(per_version.values() or [0])
check("out: dispatches per chunk version <= 1 + crashes", worst <= 1 + len(crashes),
      "max %d for one chunk version, %d requests for %d chunk versions"
      % (worst, sum(per_version.values()), len(per_version)))
expired = 0
for r in runs:
    if r[4] != "expired":
        continue
    expired += 1
    sent = tasks.get(r[0])
    x = sent[0][0] if sent else aborted_runs.get(r[0], float(r[5]))
    # Only a lost synchronous answer, a request abandoned by a dying worker or
    # a lease never sent is the worker's to lose; an accepted (202) run is
    # completed by the engine, crash or not.
    c = None if sent and sent[0][3] == "async" else assign(x)
    if c is None or float(r[5]) > c[3] + AFTER:
        unexplained.append("run %s (key %s) started %.3f, sent %s" % (r[0], r[2], float(r[5]),
                                                                    "%.3f" % x if sent else "never"))
    else:
        per_crash[c[0]] += 1
errs = collections.Counter()
try:
    for l in open(W + "/recv.log.completer.err", errors="replace"):
        m = re.search(r"ERROR:\s+([0-9A-Z]{5})", l)
        if m:
            errs[m.group(1)] += 1
except FileNotFoundError:
    pass
check("engine: completions refused only as stale (55000)", set(errs) <= {"55000"},
      "refused: %s" % (" ".join("%s %d" % kv for kv in errs.items()) or "none"))
gaveup = sum(1 for r in log if r[0] == "gaveup")
check("engine: every accepted run reported back", gaveup == 0, "%d completions given up" % gaveup)
check("signatures verified", unverified == 0, "%d webhook requests, %d unverified"
      % (sum(1 for r in log if r[0] == "hook"), unverified))

print("INFO\tper crash (#, kind, start, work pending at the crash: deliveries/runs, caught in flight):")
for c in crashes:
    print("INFO\t  %2d %-7s t+%5.1fs  pending %s/%s  caught %d" % (c[0], c[1], c[2] - float(P["start"]), c[4], c[5],
                                                                 per_crash[c[0]]))
check("duplicates explained by a crash", not unexplained,
      "%d webhooks received twice (%d ids), %d abandoned by a dying worker (unanswered), %d expired "
      "http runs (%d abandoned); %d unexplained %s"
      % (dup_hooks, dup_ids, aborts, expired, sum(1 for r in runs if r[4] == "expired" and r[0] in aborted_runs),
         len(unexplained), "; ".join(unexplained[:3])))
print("INFO\tcaught requests were logged by the receiver %.2f s to %.2f s before their crash began"
      % (min(leads or [0]), max(leads or [0])))
top = max(per_crash.values() or [0])
check("in flight per crash <= http_concurrency", top <= window, "max %d caught by one crash (window %d)"
      % (top, window))
check("sent again <= http_concurrency x crashes", dup_hooks + aborts + expired <= window * len(crashes),
      "%d <= %d x %d" % (dup_hooks + aborts + expired, window, len(crashes)))
check("crashes caught work in flight", sum(per_crash.values()) > 0,
      "%d of %d crashes caught requests in flight" % (sum(1 for c in crashes if per_crash[c[0]]), len(crashes)))
PY

export_data() {
    rt_psql -c "COPY (SELECT d.id, s.name, d.status, d.event_id FROM dataflow.delivery d
                        JOIN dataflow.subscription s ON s.id = d.subscription_id) TO STDOUT" >"$W/deliveries.tsv"
    rt_psql -c "COPY (SELECT e.id, d.name, e.key FROM dataflow.event e JOIN dataflow.dataset d ON d.id = e.dataset_id
                       WHERE d.name IN ('rb', 'hook')) TO STDOUT" >"$W/events.tsv"
    rt_psql -c "COPY (SELECT r.id, r.chunk_id, c.key, r.version, r.status, extract(epoch FROM r.started_at)
                        FROM dataflow.run r JOIN dataflow.chunk c ON c.id = r.chunk_id) TO STDOUT" >"$W/runs.tsv"
    rt_psql -c "COPY (SELECT c.key, c.status, c.version, c.run_id FROM dataflow.chunk c
                        JOIN dataflow.dataset d ON d.id = c.dataset_id WHERE d.name = 'out') TO STDOUT" >"$W/out.tsv"
}
run_checks() { # run_checks PART name=value...
    local kind name ok figures
    while IFS=$'\t' read -r kind name ok figures; do
        case $kind in
            CHECK) rt_check "$name" "$ok" "$figures" ;;
            INFO) echo "$name" ;;
            *) echo "$kind $name $ok $figures" ;;
        esac
    done < <(python3 "$W/check.py" "$1" "$W" "${@:2}" 2>&1)
}

# ---- 1. rollback exactness (no crash) -------------------------------------
t0=$(now)
for ((k = 1; k <= RB_N; k++)); do
    echo "BEGIN; SELECT dataflow.register('rb', '$k');"
    if ((k % 10 < 3)); then echo "ROLLBACK;"; else echo "COMMIT;"; fi
done | rt_psql -v ON_ERROR_STOP=1 -o /dev/null || { echo "FAIL: rollback phase SQL" >&2; exit 1; }
for ((i = 0; i < 600; i++)); do
    [ "$(rt_psql -c "SELECT count(*) FROM dataflow.delivery WHERE status = 'pending'")" = 0 ] && break
    sleep 0.1
done
export_data
echo "rollback phase: $RB_N transactions and their deliveries in $(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}')s"
run_checks rollback n=$RB_N

# ---- 2. crashes during dispatch and delivery ------------------------------
# gen DATASET TO PER_SECOND ROLLBACK OUT DEADLINE: registers keys 1..TO in
# separate transactions (ROLLBACK=1: key % 10 < 3 rolled back), "ack K" on OUT
# after each acknowledged COMMIT. After a crash it resumes after the highest
# committed key (a commit whose acknowledgement was lost is in the database).
gen() {
    local ds=$1 to=$2 rate=$3 rb=$4 out=$5 deadline=$6 k last nap tries i
    : >>"$out"
    nap=$(awk -v r="$rate" 'BEGIN { printf "%.3f", 10 / r }')
    for ((tries = 0; tries < 1000; tries++)); do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "gen $ds: deadline" >&2; return 1; }
        last=$(df_as_user psql -X -tAq -d postgres -c "SELECT coalesce(max(key::bigint), 0) FROM dataflow.chunks
                                                        WHERE dataset = '$ds' AND status <> 'waiting'" 2>/dev/null) \
            || { sleep 0.3; continue; }
        k=$(awk '/^ack / { k = $2 } END { print k + 0 }' "$out" 2>/dev/null)
        [ "$last" -gt "${k:-0}" ] && k=$last
        k=$((k + 1))
        [ "$k" -le "$to" ] || return 0
        for ((i = k; i <= to; i++)); do
            if [ "$rb" = 1 ] && ((i % 10 < 3)); then
                echo "BEGIN; SELECT dataflow.register('$ds', '$i'); ROLLBACK;"
            else
                echo "BEGIN; SELECT dataflow.register('$ds', '$i'); COMMIT;"; echo "\\echo ack $i"
            fi
            ((i % 10 == 0)) && echo "SELECT pg_sleep($nap);"
        done 2>/dev/null | df_as_user timeout "$((deadline - $(date +%s) + 1))" \
            psql -X -q -At -d postgres -o /dev/null >>"$out" 2>>"$out.err" \
            && return 0   # psql exits 2 when it lost its connection, 0 after the last statement
    done
    return 1
}
deadline=$(($(date +%s) + SECONDS_GEN * 3 + 60))
genv="$(declare -f gen df_as_user); PG_BINDIR='$PG_BINDIR' DF_USER='$DF_USER'"
rt_bg bash -c "$genv; gen hook $HOOK_KEYS $((HOOK_KEYS / SECONDS_GEN + 1)) 1 '$W/hook.acks' $deadline"
gen_hook=$RT_BG_PID
rt_bg bash -c "$genv; gen in $CHUNKS $((CHUNKS / SECONDS_GEN + 1)) 0 '$W/in.acks' $deadline"
gen_in=$RT_BG_PID

worker_pid() { rt_psql -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_dataflow worker'" 2>/dev/null; }
wait_worker() { # wait_worker OLDPID: until a worker other than OLDPID runs (60 s)
    local i p
    for ((i = 0; i < 600; i++)); do
        p=$(worker_pid); [ -n "$p" ] && [ "$p" != "$1" ] && return 0
        sleep 0.1
    done
    echo "FAIL: no worker 60 s after a crash" >&2; exit 1
}
kinds=()
for ((i = 0; i < RESTARTS; i++)); do kinds+=(restart); done
for ((i = 0; i < KILLS; i++)); do kinds+=(kill); done
for ((i = ${#kinds[@]} - 1; i > 0; i--)); do   # shuffle
    j=$((RANDOM % (i + 1))); x=${kinds[$i]}; kinds[$i]=${kinds[$j]}; kinds[$j]=$x
done
# Crashes are spread over the generators' run: the next gap is the estimated
# time left (from their progress) over the crashes left, times 0.5-1.5.
want_total=$(awk -v n="$HOOK_KEYS" -v c="$CHUNKS" 'BEGIN { for (k = 1; k <= n; k++) c += k % 10 >= 3; print c }')
gap_ms=$((SECONDS_GEN * 1000 / (${#kinds[@]} + 1)))
: >"$W/crashes.tsv"
t_start=$(now)
n=0
for kind in "${kinds[@]}"; do
    n=$((n + 1))
    sleep "$(awk -v g=$gap_ms -v r=$RANDOM 'BEGIN { printf "%.2f", g * (0.5 + r / 32768) / 1000 }')"
    # A moment while work is under way (up to 3 s for some), then 0-0.2 s more.
    for ((i = 0; i < 30; i++)); do
        busy=$(rt_psql -F ' ' -c "SELECT (SELECT count(*) FROM dataflow.delivery WHERE status = 'pending'),
                                       (SELECT count(*) FROM dataflow.run WHERE status = 'running')" 2>/dev/null)
        [ -n "$busy" ] && [ "$busy" != "0 0" ] && break
        sleep 0.1
    done
    sleep "0.$((RANDOM % 3))"
    old=$(worker_pid)
    [ -n "$old" ] || { wait_worker ""; old=$(worker_pid); }
    a=$(now)
    if [ "$kind" = kill ]; then
        kill -KILL "$old"
    else
        df_as_user pg_ctl -D "$RT_DIR/data" -l "$RT_DIR/server.log" -m immediate -w -t 60 restart >/dev/null \
            || { echo "FAIL: pg_ctl restart" >&2; exit 1; }
    fi
    wait_worker "$old"
    b=$(now)
    printf '%d\t%s\t%s\t%s\t%s\t%s\n' "$n" "$kind" "$a" "$b" ${busy:-? ?} >>"$W/crashes.tsv"
    echo "crash $n: $kind at t+$(awk -v a="$t_start" -v b="$a" 'BEGIN{printf "%.1f", b-a}')s," \
         "back after $(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.1f", b-a}')s (pending deliveries/runs: ${busy:-?})"
    made=$(rt_psql -c "SELECT count(*) FROM dataflow.chunks WHERE dataset IN ('hook', 'in') AND status <> 'waiting'" \
           2>/dev/null)
    gap_ms=$(awk -v t0="$t_start" -v t="$(now)" -v d="${made:-0}" -v w="$want_total" -v left=$((${#kinds[@]} - n)) \
                 -v g="$gap_ms" 'BEGIN { if (d < 50 || d >= w) { print g; exit }
                                         printf "%d", 1000 * (t - t0) * (w - d) / d / (left + 1) }')
done
t_last=$b

# Settle: generators done, every chunk ready, no delivery pending (bounded).
settled=0
for ((i = 0; i < DRAIN * 5; i++)); do
    if ! kill -0 "$gen_hook" 2>/dev/null && ! kill -0 "$gen_in" 2>/dev/null; then
        [ -z "${gen_done:-}" ] && gen_done=$(now)
        [ "$(rt_psql -c "SELECT NOT EXISTS (SELECT FROM dataflow.delivery WHERE status = 'pending')
                           AND NOT EXISTS (SELECT FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
                                            WHERE d.name = 'out' AND c.status <> 'ready')" 2>/dev/null)" = t ] \
            && { settled=1; break; }
    fi
    sleep 0.2
done
t_end=$(now)
wait "$gen_hook"; rc_hook=$?; wait "$gen_in"; rc_in=$?
rt_check "generators finished" "$((rc_hook + rc_in))" "webhook generator rc $rc_hook, input generator rc $rc_in"
rt_check "settled after the last crash" "$((1 - settled))" \
    "$(awk -v a="$t_last" -v b="$t_end" -v g="${gen_done:-$t_end}" \
       'BEGIN { printf "drained %.1fs after the last crash, %.1fs after the last change (generators done)",
                       b-a, b-(g>a?g:a) }')"
export_data
run_checks crash window="$WINDOW" keys="$HOOK_KEYS" chunks="$CHUNKS" before="${CRASH_CATCH_BEFORE:-1.5}" \
    start="$t_start"

# The server log: our SIGKILLs of the worker and nothing else died of a signal.
sig=$(grep -cE 'terminated by signal' "$RT_DIR/server.log")
ours=$(grep -E 'terminated by signal 9' "$RT_DIR/server.log" | grep -c 'pg_dataflow worker')
panic=$(grep -cE 'PANIC|TRAP:' "$RT_DIR/server.log")
rt_check "no crash but ours in server.log" "$([ "$sig" -eq "$ours" ] && [ "$ours" -eq "$KILLS" ] && [ "$panic" -eq 0 ] \
    && echo 0 || echo 1)" "$sig processes terminated by a signal ($ours worker SIGKILLs of $KILLS), $panic PANIC/TRAP"
echo "ran $(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.0f", b-a}')s in all"
rt_finish
