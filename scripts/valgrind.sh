#!/usr/bin/env bash
# make check-valgrind: the background worker under valgrind memcheck.
#   scripts/valgrind.sh [--no-build]     (--no-build: the extension is already installed)
#
# A throwaway cluster (scripts/lib.sh) is restarted with its postmaster under
# valgrind; Postgres forks without exec, so every process (postmaster, worker,
# backends, checkpointer…) runs under memcheck and writes DIR/vg/vg.PID.log.
# Scenario (loopback only, bounded): CREATE EXTENSION, a handful of http tasks
# (success, terminal failure, 202, 500 retried, refused, timeout), ~55 webhook
# deliveries (failures, retries, a timeout), SIGHUP reloads (disable, then
# enable with a smaller HTTP window), more deliveries, then `pg_ctl stop -m
# fast` with one request in flight. Leak checking runs as each process exits.
# Verdict: no memcheck error and no definitely lost block whose stacks involve
# our code (pg_dataflow.so, dataflow:: / df_* / _PG_init frames); Postgres's own
# false positives are in test/valgrind.supp. Exit 0 = clean. VG_KEEP=1 keeps the
# logs (they are kept anyway on failure); VG_OPTS adds valgrind options (e.g.
# "-s" lists the suppressions used, "--gen-suppressions=all").
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

build=1
[ "${1:-}" = --no-build ] && build=0
SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
if [ $build -eq 1 ]; then
    scripts/deps.sh || exit 1
    PG_BINDIR=$("$DF_PG_CONFIG" --bindir)
    echo "== build"
    make -s -j2 >/dev/null || { echo "build failed" >&2; exit 1; }
    $SUDO make -s install >/dev/null || { echo "install failed" >&2; exit 1; }
fi
VALGRIND=$(command -v valgrind) || { echo "valgrind is not installed" >&2; exit 1; }

DIR=; RECEIVER_PID=; postmaster=; ok=0
cleanup() {
    [ -n "$RECEIVER_PID" ] && kill "$RECEIVER_PID" 2>/dev/null
    [ -n "$DIR" ] || return
    df_cluster_stop "$DIR"
    # A process that ignores the fast shutdown (or valgrind at its slowest) must not outlive us.
    if [ -n "$postmaster" ] && kill -0 "$postmaster" 2>/dev/null; then
        echo "the cluster did not stop: immediate shutdown" >&2
        df_as_user pg_ctl -D "$DIR/data" -m immediate -w -t 60 stop >/dev/null 2>&1
    fi
    if [ $ok -eq 1 ] && [ -z "${VG_KEEP:-}" ]; then
        rm -rf "$DIR"
    else
        echo "logs kept in $DIR (vg/, server.log)"
    fi
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; tail -20 "$DIR/server.log" >&2 2>/dev/null; exit 1; }

# 1. initdb and the configuration through lib.sh, then restart with the
#    postmaster under valgrind (pg_ctl -p: the "postgres" it starts is a
#    wrapper that execs valgrind on the real binary, keeping the pid).
# Small settings: valgrind makes every process many times slower.
DIR=$(df_tmpdir)
df_cluster_start "$DIR" "fsync = off" "shared_buffers = 16MB" "max_connections = 10" \
    "max_worker_processes = 4" "max_logical_replication_workers = 0" "autovacuum = off" \
    "huge_pages = off" "dataflow.naptime = 1000" "dataflow.http_allow = '127.0.0.1/32'" \
    "dataflow.http_timeout = 4000" "dataflow.retention = '1h'" || fail "cluster did not start"
df_cluster_stop "$DIR"
mkdir -p "$DIR/vg"
cp test/valgrind.supp "$DIR/valgrind.supp"
cat > "$DIR/postgres" <<EOF
#!/bin/sh
exec "$VALGRIND" --tool=memcheck --trace-children=yes --track-origins=yes --num-callers=40 \\
    --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite,indirect,possible \\
    --error-limit=no --suppressions="$DIR/valgrind.supp" ${VG_OPTS:-} \\
    --log-file="$DIR/vg/vg.%p.log" "$PG_BINDIR/postgres" "\$@"
EOF
chmod 755 "$DIR/postgres"
[ "$(id -u)" -eq 0 ] && chown -R "$DF_USER" "$DIR"
start=$SECONDS
log_base=$(wc -l < "$DIR/server.log")
for attempt in 1 2 3; do   # the port lib.sh picked may have been taken meanwhile
    df_as_user pg_ctl -D "$DIR/data" -l "$DIR/server.log" -p "$DIR/postgres" -w -t 180 start \
        >/dev/null && break
    if [ $attempt -eq 3 ] || ! tail -n +$((log_base + 1)) "$DIR/server.log" | grep -q "already in use"; then
        fail "the cluster did not start under valgrind"
    fi
    PGPORT=$(df_free_port $((20000 + RANDOM % 40000)))
    echo "port = $PGPORT" >> "$DIR/data/postgresql.conf"
done
postmaster=$(head -1 "$DIR/data/postmaster.pid")
echo "== postmaster $postmaster under valgrind after $((SECONDS - start)) s"

# 2. The receiver (not under valgrind) and one known signing secret.
rm -f "$DIR/port"
python3 test/integration/receiver.py "$DIR/port" "$DIR/requests.jsonl" "$DIR/secret" \
    >"$DIR/receiver.out" 2>&1 &
RECEIVER_PID=$!
for ((i = 0; i < 100; i++)); do [ -s "$DIR/port" ] && break; sleep 0.1; done
[ -s "$DIR/port" ] || fail "receiver did not start"
url="http://127.0.0.1:$(cat "$DIR/port")"
secret="whsec_$(head -c 24 /dev/urandom | base64)"
echo "$secret" > "$DIR/secret"
requests() { grep -c "\"path\": \"$1\"" "$DIR/requests.jsonl" 2>/dev/null || true; }

# 3. The scenario: one psql session (each new backend is one more process under
#    valgrind), waits bounded in time inside SQL.
echo "== scenario"
df_as_user timeout 600 psql -X -q -v ON_ERROR_STOP=1 -d postgres -v url="$url" -v secret="$secret" -f - \
    >"$DIR/scenario.out" 2>&1 <<'SQL' || { cat "$DIR/scenario.out" >&2; fail "scenario"; }
\pset tuples_only on
\pset format unaligned
\o /dev/null
CREATE EXTENSION pg_dataflow;
CREATE FUNCTION pg_temp.wait_for(what text, cond text, seconds int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE ok boolean; t0 timestamptz := clock_timestamp();
BEGIN
  FOR i IN 1 .. seconds * 4 LOOP
    PERFORM pg_stat_clear_snapshot();    -- pg_stat_activity is otherwise read once per transaction
    EXECUTE 'SELECT ' || cond INTO ok;   -- a fresh snapshot each time (READ COMMITTED)
    IF ok THEN
      RAISE NOTICE 'ok: % (% s)', what, round(extract(epoch FROM clock_timestamp() - t0)::numeric, 1);
      RETURN;
    END IF;
    PERFORM pg_sleep(0.25);
  END LOOP;
  RAISE EXCEPTION 'timed out after % s waiting for: %', seconds, what;
END $$;
CREATE FUNCTION pg_temp.chunks(dataset text, st text) RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
   WHERE d.name = dataset AND c.status = st $$;

SELECT dataflow.create_dataset('sales', 'date'), dataflow.create_dataset('other', 'date'),
       dataflow.create_dataset('raw', 'int');
SELECT dataflow.subscribe('ok', :'url' || '/hook/ok', datasets => '{sales}', secret => :'secret');
SELECT dataflow.subscribe('flaky', :'url' || '/hook/flaky', datasets => '{sales}', statuses => '{ready}',
                          secret => :'secret');
SELECT dataflow.subscribe('down', :'url' || '/hook/fail', datasets => '{other}', secret => :'secret');
SELECT dataflow.subscribe('hang', :'url' || '/hook/hang', datasets => '{other}', secret => :'secret');
SELECT dataflow.create_connection('recv', 'http', :'url');
SELECT dataflow.create_dataset('out_' || j, 'int'),
       dataflow.create_job(j, 'out_' || j, dispatch => 'http', endpoint => e, max_attempts => 2,
                           backoff_min => '1 second', backoff_max => '1 second'),
       dataflow.add_input(j, 'raw'), dataflow.expect('out_' || j, '1', '2')
  FROM (VALUES ('ok', :'url' || '/dispatch/succeed'), ('bad', :'url' || '/dispatch/fail'),
               ('accept', :'url' || '/dispatch/accept'), ('err', :'url' || '/dispatch/error'),
               ('hang', :'url' || '/hook/hang'), ('refused', 'http://127.0.0.1:1/nothing')) AS t(j, e);
SELECT pg_temp.wait_for('the worker', $$(SELECT count(*) = 1 FROM pg_stat_activity
                         WHERE backend_type = 'pg_dataflow worker')$$, 60);

-- http tasks and the first wave of webhooks (each its own commit: wake-ups).
SELECT dataflow.register('raw', '1'), dataflow.register('raw', '2');
SELECT count(dataflow.register('sales', d::date::text))
  FROM generate_series(date '2024-01-01', date '2024-01-20', interval '1 day') d;
SELECT dataflow.register('other', '2024-01-01');
SELECT pg_temp.wait_for('http: succeeded, failed, accepted, 500 retried, refused',
  $$pg_temp.chunks('out_ok', 'ready') = 2 AND pg_temp.chunks('out_bad', 'failed') = 2
    AND pg_temp.chunks('out_accept', 'running') = 2 AND pg_temp.chunks('out_err', 'failed') = 2
    AND pg_temp.chunks('out_refused', 'failed') = 2$$, 120);
SELECT pg_temp.wait_for('webhooks: 40 delivered, 2 after a retry',
  $$(SELECT count(*) FILTER (WHERE status = 'delivered') = count(*) AND count(*) >= 40
            AND count(*) FILTER (WHERE subscription = 'flaky' AND attempts >= 2) >= 2
       FROM dataflow.deliveries WHERE dataset = 'sales')$$, 120);
SELECT pg_temp.wait_for('webhooks: a 500 retried, a timeout',
  $$(SELECT count(*) FILTER (WHERE subscription = 'down' AND attempts >= 2) = 1
            AND count(*) FILTER (WHERE subscription = 'hang' AND last_error ILIKE '%timed out%') = 1
       FROM dataflow.deliveries)$$, 120);
SELECT pg_temp.wait_for('http: a timeout retried, then failed',
  $$pg_temp.chunks('out_hang', 'failed') = 2$$, 120);

-- SIGHUP twice: disabled (idle, in-flight requests dropped), then enabled again
-- with a smaller HTTP window and timeout; then a second wave.
ALTER SYSTEM SET dataflow.enabled = off;
SELECT pg_reload_conf();
SELECT pg_temp.wait_for('SIGHUP: the worker disabled',
  $$(SELECT query LIKE '%idle%' FROM pg_stat_activity WHERE backend_type = 'pg_dataflow worker')$$, 60);
ALTER SYSTEM SET dataflow.enabled = on;
ALTER SYSTEM SET dataflow.http_concurrency = 2;
ALTER SYSTEM SET dataflow.http_timeout = '3s';
SELECT pg_reload_conf();
SELECT pg_temp.wait_for('SIGHUP: the worker enabled again',
  $$(SELECT query NOT LIKE '%idle%' FROM pg_stat_activity WHERE backend_type = 'pg_dataflow worker')$$, 60);
SELECT count(dataflow.register('sales', d::date::text))
  FROM generate_series(date '2024-02-01', date '2024-02-05', interval '1 day') d;
SELECT pg_temp.wait_for('webhooks after the reload: 10 more delivered',
  $$(SELECT count(*) FILTER (WHERE status = 'delivered') = count(*) AND count(*) >= 50
       FROM dataflow.deliveries WHERE dataset = 'sales')$$, 120);
\o
SELECT 'deliveries: ' || count(*) || ' (' || sum(attempts) || ' attempts)' FROM dataflow.deliveries;
\o /dev/null
SQL
sed -n 's/^.*NOTICE:  /  /p; s/^\(deliveries: .*\)/  \1/p' "$DIR/scenario.out"
# One more request left hanging when the server stops; then who is who.
hangs=$(requests /hook/hang)
df_as_user psql -X -q -v ON_ERROR_STOP=1 -d postgres -v activity="$DIR/activity.txt" -f - >/dev/null <<'SQL' \
    || fail "the last register"
\pset tuples_only on
\pset format unaligned
SELECT dataflow.register('other', '2024-01-02');
\o :activity
SELECT pid || ' ' || backend_type || CASE WHEN pid = pg_backend_pid() THEN ' (last query)' ELSE '' END
  FROM pg_stat_activity;
SQL
for ((i = 0; i < 100; i++)); do [ "$(requests /hook/hang)" -gt "$hangs" ] && break; sleep 0.2; done
echo "  requests received: $(wc -l < "$DIR/requests.jsonl");" \
     "in flight at shutdown: $(( $(requests /hook/hang) - hangs ))"
python3 -c 'import json, sys
hooks = [r for r in map(json.loads, open(sys.argv[1])) if "webhook-id" in r["headers"]]
sys.exit(not hooks or any(r["verified"] is not True for r in hooks))' "$DIR/requests.jsonl" \
    || fail "a webhook signature did not verify"

# 4. Fast shutdown: every process exits and valgrind checks it for leaks.
stop=$SECONDS
df_as_user pg_ctl -D "$DIR/data" -m fast -w -t 300 stop >/dev/null || fail "pg_ctl stop"
# pg_ctl returns once postmaster.pid is gone; valgrind checks the postmaster after that.
for ((i = 0; i < 600; i++)); do kill -0 "$postmaster" 2>/dev/null || break; sleep 0.2; done
echo "== stopped in $((SECONDS - stop)) s; scenario + shutdown $((SECONDS - start)) s"
kill "$RECEIVER_PID" 2>/dev/null; RECEIVER_PID=
tail -n +$((log_base + 1)) "$DIR/server.log" | sed '/received fast shutdown request/q' \
    | grep -E 'pg_dataflow worker.*exited|terminated by signal|PANIC|TRAP' \
    && fail "a process ended before the shutdown"

# 5. The verdict from the per-process logs.
echo "== memcheck"
python3 - "$DIR/vg" "$DIR/activity.txt" "$postmaster" <<'PY' || exit 1
import glob, os, re, sys
vgdir, activity, postmaster = sys.argv[1], sys.argv[2], sys.argv[3]
# Our code: symbols of pg_dataflow.so (C entry points df_*, _PG_init, C++ in
# namespace dataflow) or a frame valgrind could only place in the object.
OURS = re.compile(r"\bdataflow::|\bdf_\w+ \(|\b_PG_init\b|pg_dataflow\.so")
KINDS = {"definitely": "definite", "indirectly": "indirect", "possibly": "possible"}
FRAME = re.compile(r"^\s+(at|by) 0x[0-9A-F]+: ")
LEAK = re.compile(r"^([\d,]+) (?:\(([\d,]+) direct, [\d,]+ indirect\) )?bytes in [\d,]+ blocks "
                  r"are (definitely|indirectly|possibly) lost")
kinds = {}
for line in open(activity):
    pid, _, kind = line.strip().partition(" ")
    kinds[pid] = kind
kinds[postmaster] = "postmaster"
num = lambda s: int(s.replace(",", ""))
rows, failures, unfinished = [], [], []
files = sorted(glob.glob(os.path.join(vgdir, "vg.*.log")), key=lambda p: int(p.rsplit(".", 2)[-2]))
for path in files:
    pid = path.rsplit(".", 2)[-2]
    text = open(path, errors="replace").read()
    prefix = "==%s== " % pid
    lines = [l[len(prefix):] if l.startswith(prefix) else l for l in text.splitlines()]
    summary = [l for l in lines if l.startswith("ERROR SUMMARY:")]
    if not summary:
        unfinished.append(pid)
        continue
    suppressed = re.search(r"suppressed: ([\d,]+)", summary[-1])
    blocks, cur = [], []
    for l in lines + [""]:
        if l.strip():
            cur.append(l)
        elif cur:
            blocks.append(cur); cur = []
    c = dict.fromkeys(("errors", "definite", "indirect", "possible", "any_errors", "any_definite"), 0)
    for b in blocks:
        if not any(FRAME.match(l) for l in b):
            continue
        m = LEAK.match(b[0])
        kind = KINDS[m.group(3)] if m else None
        size = num(m.group(2) or m.group(1)) if m else 0
        if not m:
            c["any_errors"] += 1
        elif kind == "definite":
            c["any_definite"] += size
        if not any(OURS.search(l) for l in b if FRAME.match(l)):
            continue
        if m:
            c[kind] += size
        else:
            c["errors"] += 1
        if kind in (None, "definite"):
            failures.append((pid, b))
    rows.append((pid, kinds.get(pid, "exited earlier: backend/startup"), c,
                 num(suppressed.group(1)) if suppressed else 0))
print("processes checked: %d; figures for reports whose stacks involve our code:" % len(rows))
print("  %-7s %-31s %6s %9s %9s %9s | %s" % ("pid", "process", "errors", "definite", "indirect", "possibly",
                                             "any code: errors, definite; suppressed"))
for pid, kind, c, sup in rows:
    print("  %-7s %-31s %6d %7d B %7d B %7d B | %d, %d B; %d" % (
        pid, kind[:31], c["errors"], c["definite"], c["indirect"], c["possible"],
        c["any_errors"], c["any_definite"], sup))
for pid, b in failures[:10]:
    print("\n--- pid %s (%s): %s" % (pid, kinds.get(pid, "exited earlier"), b[0]))
    print("\n".join(b[1:40]))
if unfinished:
    print("no final report (process did not exit normally): pids %s" % " ".join(unfinished))
bad = len(failures) + len(unfinished)
print("\nvalgrind: %s" % ("clean: no memcheck error and no definite leak in our code" if not bad else
                          "%d report(s) in our code" % len(failures) if failures else "incomplete logs"))
sys.exit(1 if bad else 0)
PY
ok=1
