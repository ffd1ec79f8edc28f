#!/usr/bin/env bash
# pg_dump keeps everything: a flow caught mid-run (live and overdue leases, queued,
# waiting, failed, ready and validated chunks, lineage, an incremental job with
# pending inputs, webhook deliveries pending for a receiver that is down) is dumped
# with pg_dump -Fc and -Fp and restored into a fresh cluster, three ways: pg_restore
# in the dump's order, pg_restore in a hostile order (sequences first, events after
# subscriptions and deliveries, chunks last; foreign keys respected), and psql with
# the plain dump. Each restored database must hold exactly the source's rows (every
# registered table), sequence positions, grants as in a fresh install and secrets
# still hidden, with the derived tables (counters, queue) equal to a recount. Then the flow continues on the
# restored cluster: overdue leases expire and are retried, a live lease completes with
# its old token, the incremental job cuts its batch, ids keep increasing, and every
# pending delivery reaches the receiver, signed with the restored secret, once.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh

DR_A=; DR_B=; DR_RECEIVER=
dr_cleanup() {
    [ -n "$DR_RECEIVER" ] && kill "$DR_RECEIVER" 2>/dev/null
    [ -n "$DR_A" ] && { df_cluster_stop "$DR_A"; rm -rf "$DR_A"; }
    [ -n "$DR_B" ] && { df_cluster_stop "$DR_B"; rm -rf "$DR_B"; }
}
trap dr_cleanup EXIT
trap 'exit 1' TERM
# fail MESSAGE: also from a command substitution, whose exit would end only the subshell
fail() {
    echo "FAIL: $*" >&2
    for d in "$DR_A" "$DR_B"; do
        [ -n "$d" ] && [ -f "$d/server.log" ] && { echo "--- $d/server.log (tail)" >&2; tail -15 "$d/server.log" >&2; }
    done
    [ "$BASHPID" != "$$" ] && kill -TERM $$
    exit 1
}

# q A|B DB SQL: one statement, tuples only; stops the test on error.
q() {
    local host port
    if [ "$1" = A ]; then host=$A_HOST port=$A_PORT; else host=$B_HOST port=$B_PORT; fi
    df_as_user env PGHOST="$host" PGPORT="$port" psql -X -tAq -v ON_ERROR_STOP=1 -d "$2" -c "$3" \
        || fail "SQL failed on $1/$2: $3"
}
# qf A|B DB: a script on stdin (for \gexec).
qf() {
    local host port
    if [ "$1" = A ]; then host=$A_HOST port=$A_PORT; else host=$B_HOST port=$B_PORT; fi
    df_as_user env PGHOST="$host" PGPORT="$port" psql -X -tAq -v ON_ERROR_STOP=1 -d "$2" \
        || fail "SQL script failed on $1/$2"
}
wait_for() { # wait_for A|B DB WHAT SECONDS SQL (errors count as not yet)
    local i host port
    if [ "$1" = A ]; then host=$A_HOST port=$A_PORT; else host=$B_HOST port=$B_PORT; fi
    for ((i = 0; i < $4 * 10; i++)); do
        [ "$(df_as_user env PGHOST="$host" PGPORT="$port" psql -X -tAq -d "$2" -c "$5" 2>/dev/null)" = t ] && return 0
        sleep 0.1
    done
    fail "timed out after $4 s waiting for: $3"
}
same() { # same WHAT VALUE_SOURCE VALUE_RESTORED
    [ "$2" = "$3" ] || { echo "source:   $2" >&2; echo "restored: $3" >&2; fail "$1 differ"; }
}

# ---- source cluster A: a flow mid-run --------------------------------------------
DR_A=$(df_tmpdir)
df_cluster_start "$DR_A" "dataflow.naptime = 200" "dataflow.http_allow = '127.0.0.1/32'" \
    "dataflow.http_timeout = 2000" || fail "cluster A did not start"
A_HOST=$PGHOST A_PORT=$PGPORT
down_port=$(df_free_port $((20000 + RANDOM % 40000)))   # nothing listens here: the receiver is down

q A postgres "CREATE EXTENSION pg_dataflow"
wait_for A postgres "the worker of A" 30 \
    "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_dataflow worker'"
q A postgres "SELECT dataflow.create_dataset('raw', 'date', location => 's3://lake/{dataset}/{key}/v{version}/')" >/dev/null
q A postgres "SELECT dataflow.create_dataset('mid', 'date', requires_validation => true)" >/dev/null
q A postgres "SELECT dataflow.create_dataset('out', 'date')" >/dev/null
q A postgres "SELECT dataflow.create_dataset('batches', 'int')" >/dev/null
q A postgres "SELECT dataflow.create_pool('etl', 4)" >/dev/null
q A postgres "SELECT dataflow.create_connection('engine', 'http', 'https://engine.example', auth => 'bearer',
                                               secret => 'conn-secret-7f3a9c')" >/dev/null
q A postgres "SELECT dataflow.create_job('build_mid', output => 'mid', pool => 'etl', max_attempts => 3,
                                        backoff_min => '0 s', backoff_max => '0 s',
                                        secret_params => '{\"api_key\": \"job-secret-5e1d\"}')" >/dev/null
q A postgres "SELECT dataflow.add_input('build_mid', 'raw')" >/dev/null
q A postgres "SELECT dataflow.create_job('build_out', output => 'out', backoff_min => '0 s', backoff_max => '0 s')" >/dev/null
q A postgres "SELECT dataflow.add_input('build_out', 'mid', mapping => 'window', lo => -1, hi => 0, require => 'ready')" >/dev/null
q A postgres "SELECT dataflow.create_job('batcher', output => 'batches')" >/dev/null
q A postgres "SELECT dataflow.add_input('batcher', 'raw', mapping => 'incremental')" >/dev/null
hook_secret=$(q A postgres "SELECT dataflow.subscribe('portal', 'http://127.0.0.1:$down_port/hook/ok',
                                                    datasets => '{mid,out}')")
[[ $hook_secret == whsec_* ]] || fail "subscribe returned no secret"
q A postgres "SELECT dataflow.expect('mid', '2024-01-01', '2024-01-20')" >/dev/null
q A postgres "SELECT dataflow.expect('out', '2024-01-01', '2024-01-20')" >/dev/null
for d in 01 02 03 04 05 06 07 08 09 10; do
    q A postgres "SELECT dataflow.register('raw', '2024-01-$d', row_count => 1$d)" >/dev/null
done
# the worker tries the down receiver once: attempts and delivery_attempt rows exist
wait_for A postgres "a failed delivery attempt" 20 "SELECT count(*) > 0 FROM dataflow.delivery_attempt"
q A postgres "ALTER SYSTEM SET dataflow.enabled = off" >/dev/null
q A postgres "SELECT pg_reload_conf()" >/dev/null
wait_for A postgres "the worker of A to idle" 20 "SELECT count(*) = 1 FROM pg_stat_activity
    WHERE backend_type = 'pg_dataflow worker' AND query LIKE 'pg_dataflow: idle (extension absent%'"

q A postgres "SELECT dataflow.validate('raw', '2024-01-01', true, '{\"rows\": \"ok\"}')" >/dev/null
q A postgres "SELECT dataflow.validate('raw', '2024-01-02', false, '{\"rows\": \"short\"}')" >/dev/null
# mid: 2 done (one validated), 1 failed for good, 1 live lease (1 h), 2 leases that expire in 1 s
for i in 1 2; do
    t=$(q A postgres "SELECT token FROM dataflow.lease('build_mid', 'w-done')")
    q A postgres "SELECT dataflow.complete('$t', row_count => 10$i)" >/dev/null
done
q A postgres "SELECT dataflow.validate('mid', (SELECT min(key) FROM dataflow.chunks WHERE dataset = 'mid'
                                                AND status = 'ready'), true)" >/dev/null
t=$(q A postgres "SELECT token FROM dataflow.lease('build_mid', 'w-fail')")
q A postgres "SELECT dataflow.fail('$t', 'bad input', retry => false)" >/dev/null
live_token=$(q A postgres "SELECT token FROM dataflow.lease('build_mid', 'w-live', 1, '1 hour')")
q A postgres "SELECT count(*) FROM dataflow.lease('build_mid', 'w-lost', 2, '1 second')" | grep -qx 2 \
    || fail "could not lease the two short leases"
q A postgres "SELECT count(*) FROM dataflow.lease('build_out', 'w-out')" >/dev/null
state=$(q A postgres "SELECT string_agg(status || ':' || n, ' ' ORDER BY status)
                        FROM (SELECT status, count(*) n FROM dataflow.chunk GROUP BY 1) s")
echo "source: $state; $(q A postgres "SELECT count(*) FROM dataflow.event") events," \
     "$(q A postgres "SELECT count(*) FILTER (WHERE status = 'pending') || ' of ' || count(*) FROM dataflow.delivery") deliveries pending"
for s in running queued waiting failed ready validated invalid; do
    [[ " $state" == *" $s:"* ]] || fail "the source flow has no $s chunk ($state)"
done
q A postgres "SELECT count(*) > 0 FROM dataflow.incremental_pending" | grep -qx t || fail "no incremental input pending"

# ---- dumps -----------------------------------------------------------------------
DR_B=$(df_tmpdir)
df_as_user env PGHOST="$A_HOST" PGPORT="$A_PORT" pg_dump -Fc -d postgres -f "$DR_B/flow.dump" || fail "pg_dump -Fc"
df_as_user env PGHOST="$A_HOST" PGPORT="$A_PORT" pg_dump -Fp -d postgres -f "$DR_B/flow.sql" || fail "pg_dump -Fp"
echo "dump sizes: custom $(stat -c %s "$DR_B/flow.dump") bytes, plain $(stat -c %s "$DR_B/flow.sql") bytes"

# ---- fresh cluster B, worker off while restoring -----------------------------------
df_cluster_start "$DR_B" "dataflow.naptime = 200" "dataflow.http_allow = '127.0.0.1/32'" \
    "dataflow.http_timeout = 2000" "dataflow.enabled = off" || fail "cluster B did not start"
B_HOST=$PGHOST B_PORT=$PGPORT
q B postgres "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'dataflow\_%'" | grep -qx 0 \
    || fail "the fresh cluster already has the roles"
for db in reordered plain fresh; do q B postgres "CREATE DATABASE $db" >/dev/null; done

ms() { date +%s%3N; }
t0=$(ms)
df_as_user env PGHOST="$B_HOST" PGPORT="$B_PORT" pg_restore --exit-on-error -d postgres "$DR_B/flow.dump" \
    || fail "pg_restore"
t1=$(ms)
# Hostile order: every sequence set first (new ids would collide with or follow the rows
# still to come), subscriptions and deliveries before events, chunks last.
df_as_user pg_restore -l "$DR_B/flow.dump" > "$DR_B/toc"
{
    grep -v -E 'TABLE DATA|SEQUENCE SET' "$DR_B/toc"
    grep 'SEQUENCE SET' "$DR_B/toc"
    for t in dataset pool connection job job_input subscription delivery delivery_attempt event; do
        grep -E "TABLE DATA dataflow $t " "$DR_B/toc"
    done
    grep 'TABLE DATA' "$DR_B/toc" | grep -v -E 'TABLE DATA dataflow (dataset|pool|connection|job|job_input|subscription|delivery|delivery_attempt|event|chunk) '
    grep -E 'TABLE DATA dataflow chunk ' "$DR_B/toc"
} > "$DR_B/toc.hostile"
same "entries of the hostile restore list" "$(sort "$DR_B/toc")" "$(sort "$DR_B/toc.hostile")"
df_as_user env PGHOST="$B_HOST" PGPORT="$B_PORT" pg_restore --exit-on-error -L "$DR_B/toc.hostile" \
    -d reordered "$DR_B/flow.dump" || fail "pg_restore in the hostile order"
t2=$(ms)
df_as_user env PGHOST="$B_HOST" PGPORT="$B_PORT" psql -X -q -v ON_ERROR_STOP=1 -d plain -f "$DR_B/flow.sql" \
    >/dev/null || fail "psql with the plain dump"
t3=$(ms)
echo "restore times: pg_restore $((t1 - t0)) ms, pg_restore hostile order $((t2 - t1)) ms, psql plain $((t3 - t2)) ms"
q B fresh "CREATE EXTENSION pg_dataflow"

# ---- checks: every restored database equals the source ---------------------------
n_src=$(q A postgres "SELECT count(*) FROM dataflow.dataset")
for db in postgres reordered plain; do
    n=$(q B "$db" "SELECT count(*) FROM dataflow.dataset")
    [ "$n" = "$n_src" ] || fail "$db: restored $n datasets, the source has $n_src"
done

# Every table of the schema is registered for pg_dump, except the two derived ones,
# and every sequence is.
unregistered=$(q A postgres "SELECT coalesce(string_agg(c.relname, ',' ORDER BY c.relname), '')
    FROM pg_class c JOIN pg_extension e ON e.extname = 'pg_dataflow'
   WHERE c.relnamespace = 'dataflow'::regnamespace AND c.relkind IN ('r', 'p', 'S')
     AND c.oid <> ALL (e.extconfig)")
same "tables and sequences left out of the dump" "chunk_count,queue" "$unregistered"

# Fingerprint of every registered table: row count and md5 of the rows in order.
fingerprint() {
    qf "$1" "$2" <<'SQL'
SELECT format('SELECT %L || ''|'' || count(*) || ''|'' || md5(coalesce(string_agg(t::text, E''\n'' ORDER BY t::text), ''''))
                 FROM %s t', c.relname, c.oid::regclass)
  FROM pg_class c JOIN pg_extension e ON e.extname = 'pg_dataflow'
 WHERE c.oid = ANY (e.extconfig) AND c.relkind = 'r'
 ORDER BY c.relname
\gexec
SQL
}
seqs="SELECT string_agg(sequencename || '=' || coalesce(last_value::text, 'unused'), ' ' ORDER BY sequencename)
        FROM pg_sequences WHERE schemaname = 'dataflow'"
# Counters and queue against a recount of the chunks (0 = consistent) and as listings.
recount=$(cat test/catalog/recount.sql)
queue_check="SELECT count(*) FROM (
  (SELECT dataset_id, not_before, chunk_id FROM dataflow.queue
   EXCEPT ALL SELECT dataset_id, not_before, id FROM dataflow.chunk WHERE status = 'queued')
  UNION ALL
  (SELECT dataset_id, not_before, id FROM dataflow.chunk WHERE status = 'queued'
   EXCEPT ALL SELECT dataset_id, not_before, chunk_id FROM dataflow.queue)) x"
counts="SELECT string_agg(x::text, ' ' ORDER BY x::text) FROM (
          SELECT dataset_id, waiting, queued, running, ready, validated, invalid, failed, skipped, cancelled, total,
                 newest_ord FROM dataflow.dataset_counts) x"
queue="SELECT string_agg(x::text, ' ' ORDER BY x::text) FROM dataflow.queue x"
# Grants: tables, columns, functions, types, schema; and the roles' memberships.
grants="SELECT md5(string_agg(k || ' ' || n || ' ' || coalesce(a, '-'), E'\n' ORDER BY k, n)) FROM (
    SELECT 'rel' k, c.relname::text n, c.relacl::text a FROM pg_class c WHERE c.relnamespace = 'dataflow'::regnamespace
    UNION ALL SELECT 'col', c.relname || '.' || t.attname, t.attacl::text FROM pg_attribute t
      JOIN pg_class c ON c.oid = t.attrelid WHERE c.relnamespace = 'dataflow'::regnamespace AND t.attacl IS NOT NULL
    UNION ALL SELECT 'fn', p.oid::regprocedure::text, p.proacl::text FROM pg_proc p
     WHERE p.pronamespace = 'dataflow'::regnamespace
    UNION ALL SELECT 'type', t.typname, t.typacl::text FROM pg_type t WHERE t.typnamespace = 'dataflow'::regnamespace
    UNION ALL SELECT 'nsp', n.nspname, n.nspacl::text FROM pg_namespace n WHERE n.nspname = 'dataflow') g"
members="SELECT string_agg(m.rolname || '>' || r.rolname, ' ' ORDER BY m.rolname, r.rolname) FROM pg_auth_members a
           JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member WHERE r.rolname LIKE 'dataflow\_%'"

fp_src=$(fingerprint A postgres)
[ "$(echo "$fp_src" | wc -l)" -ge 17 ] || fail "fingerprinted only: $fp_src"
seq_src=$(q A postgres "$seqs"); counts_src=$(q A postgres "$counts"); queue_src=$(q A postgres "$queue")
same "source counters vs recount (0 = consistent)" 0 "$(q A postgres "$recount")"
grants_fresh=$(q B fresh "$grants")
same "grants of a fresh install on A and on B" "$(q A postgres "$grants")" "$grants_fresh"
for db in postgres reordered plain; do
    same "$db: table rows" "$fp_src" "$(fingerprint B "$db")"
    same "$db: sequence positions" "$seq_src" "$(q B "$db" "$seqs")"
    same "$db: counters vs recount (0 = consistent)" 0 "$(q B "$db" "$recount")"
    same "$db: queue vs queued chunks (0 = consistent)" 0 "$(q B "$db" "$queue_check")"
    same "$db: counters" "$counts_src" "$(q B "$db" "$counts")"
    same "$db: queue" "$queue_src" "$(q B "$db" "$queue")"
    same "$db: deliveries per (subscription, event) above one" 0 \
        "$(q B "$db" "SELECT count(*) FROM (SELECT FROM dataflow.delivery GROUP BY subscription_id, event_id
                                             HAVING count(*) > 1) x")"
    same "$db: grants vs a fresh install" "$grants_fresh" "$(q B "$db" "$grants")"
    same "$db: secrets" "conn-secret-7f3a9c $hook_secret job-secret-5e1d" \
        "$(q B "$db" "SELECT (SELECT secret FROM dataflow.connection) || ' ' || (SELECT secret FROM dataflow.subscription)
                      || ' ' || (SELECT params ->> 'api_key' FROM dataflow.job_secret)")"
    # still hidden: no reader-visible view shows them, the reader cannot read the tables
    q B "$db" "SET ROLE dataflow_reader;
               SELECT (SELECT coalesce(string_agg(to_jsonb(d)::text, ''), '') FROM dataflow.deliveries d)
                   || (SELECT coalesce(string_agg(to_jsonb(j)::text, ''), '') FROM dataflow.jobs j)
                   || (SELECT coalesce(string_agg(to_jsonb(r)::text, ''), '') FROM dataflow.runs r)" \
        | grep -qE "whsec_|conn-secret|job-secret|$live_token" && fail "$db: a secret or token shows in a reader view"
    for t in connection subscription run job_secret; do
        out=$(df_as_user env PGHOST="$B_HOST" PGPORT="$B_PORT" psql -X -tAq -d "$db" \
                -c "SET ROLE dataflow_reader" -c "SELECT * FROM dataflow.$t LIMIT 1" 2>&1)
        [[ $out == *"permission denied"* ]] || fail "$db: dataflow_reader reads dataflow.$t: $out"
    done
done
same "role memberships" "$(q A postgres "$members")" "$(q B postgres "$members")"
grep -E "conn-secret|whsec_|job-secret" "$DR_B/server.log" && fail "a secret shows in the restored server's log"
echo "restored x3: $(echo "$fp_src" | wc -l) tables equal, sequences ($seq_src), counters, queue, grants, secrets"

# ---- the flow continues on B (database postgres, where the worker runs) --------------
max_ids=$(q A postgres "SELECT (SELECT max(id) FROM dataflow.event) || ' ' || (SELECT max(id) FROM dataflow.run)
                          || ' ' || (SELECT max(id) FROM dataflow.chunk) || ' ' || (SELECT max(id) FROM dataflow.delivery)")
read -r ev_max run_max chunk_max del_max <<<"$max_ids"
pending_src=$(q A postgres "SELECT string_agg(id::text, ',' ORDER BY id) FROM dataflow.delivery WHERE status = 'pending'")
df_cluster_stop "$DR_A"   # the source is gone

restart_at=$(q B postgres "SELECT now()")
wait_for B postgres "the short leases' deadline" 10 \
    "SELECT bool_and(deadline < now()) FROM dataflow.run WHERE worker = 'w-lost'"
same "leases reaped" 2 "$(q B postgres "SELECT dataflow.reap()")"
same "reaped runs" "expired expired" \
    "$(q B postgres "SELECT string_agg(status, ' ') FROM dataflow.run WHERE worker = 'w-lost'")"
same "their chunks" "queued:1 queued:1" "$(q B postgres "SELECT string_agg(c.status || ':' || c.attempts, ' ')
    FROM dataflow.run r JOIN dataflow.chunk c ON c.id = r.chunk_id WHERE r.worker = 'w-lost'")"
same "the live lease completes with its old token" succeeded "$(q B postgres "SELECT dataflow.complete('$live_token')")"
# lease again (the retried chunks among them) and complete everything runnable of mid
for i in $(seq 1 30); do
    t=$(q B postgres "SELECT token FROM dataflow.lease('build_mid', 'w-again')")
    [ -n "$t" ] || break
    q B postgres "SELECT dataflow.complete('$t')" >/dev/null
done
same "retried chunks" "2:ready 2:ready" "$(q B postgres "SELECT string_agg(n.attempt || ':' || c.status, ' ')
    FROM dataflow.run r JOIN dataflow.chunk c ON c.id = r.chunk_id
    JOIN dataflow.run n ON n.chunk_id = r.chunk_id AND n.worker = 'w-again' WHERE r.worker = 'w-lost'")"
batch=$(q B postgres "SELECT key || ':' || jsonb_array_length(inputs) FROM dataflow.lease('batcher', 'w-batch')")
[[ $batch == 1:* ]] && [ "${batch#1:}" -ge 5 ] || fail "incremental batch from the restored pending inputs: $batch"
q B postgres "SELECT dataflow.register('raw', '2024-01-11')" >/dev/null
q B postgres "SELECT dataflow.expect('out', '2024-01-21', '2024-01-22')" >/dev/null
same "new ids above the restored ones" t "$(q B postgres "SELECT
        EXISTS (SELECT FROM dataflow.event WHERE at >= '$restart_at')
    AND NOT EXISTS (SELECT FROM dataflow.event WHERE at >= '$restart_at' AND id <= $ev_max)
    AND EXISTS (SELECT FROM dataflow.run WHERE started_at >= '$restart_at')
    AND NOT EXISTS (SELECT FROM dataflow.run WHERE started_at >= '$restart_at' AND id <= $run_max)
    AND EXISTS (SELECT FROM dataflow.chunk WHERE created_at >= '$restart_at')
    AND NOT EXISTS (SELECT FROM dataflow.chunk WHERE created_at >= '$restart_at' AND id <= $chunk_max)
    AND EXISTS (SELECT FROM dataflow.delivery WHERE created_at >= '$restart_at')
    AND NOT EXISTS (SELECT FROM dataflow.delivery WHERE created_at >= '$restart_at' AND id <= $del_max)")"
same "counters vs recount after the restart" 0 "$(q B postgres "$recount")"
same "queue vs queued chunks after the restart" 0 "$(q B postgres "$queue_check")"
same "lineage of the new runs (runs without inputs)" 0 \
    "$(q B postgres "SELECT count(*) FROM dataflow.runs WHERE worker = 'w-again' AND inputs IS NULL")"

# Every delivery, pending at the dump or new, reaches a live receiver once, signed
# with the restored secret (the receiver moved: its URL is updated).
mkdir -p "$DR_B/rcv" && echo "$hook_secret" > "$DR_B/rcv/secret"
python3 "$ROOT/test/integration/receiver.py" "$DR_B/rcv/port" "$DR_B/rcv/requests.jsonl" "$DR_B/rcv/secret" \
    >>"$DR_B/rcv/out" 2>&1 &
DR_RECEIVER=$!
for ((i = 0; i < 100; i++)); do [ -s "$DR_B/rcv/port" ] && break; sleep 0.1; done
[ -s "$DR_B/rcv/port" ] || fail "receiver did not start"
q B postgres "UPDATE dataflow.subscription SET url = 'http://127.0.0.1:$(cat "$DR_B/rcv/port")/hook/ok'" >/dev/null
q B postgres "ALTER SYSTEM SET dataflow.enabled = on" >/dev/null
q B postgres "SELECT pg_reload_conf()" >/dev/null
wait_for B postgres "every delivery delivered" 60 "SELECT count(*) = 0 FROM dataflow.delivery WHERE status <> 'delivered'"
python3 - "$DR_B/rcv/requests.jsonl" "$pending_src" "$(q B postgres "SELECT string_agg(id::text, ',') FROM dataflow.delivery")" <<'PY' \
    || fail "deliveries at the receiver"
import collections, json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"/hook/' in l]
pending = set(sys.argv[2].split(","))
every = set(sys.argv[3].split(","))
ids = collections.Counter(r["headers"]["webhook-id"][4:] for r in rows)
assert all(r["verified"] is True for r in rows), "a delivery not signed with the restored secret"
assert pending <= set(ids), "lost: %s" % sorted(pending - set(ids))
assert set(ids) == every, "unexpected: %s" % sorted(set(ids) ^ every)
assert max(ids.values()) == 1, "sent twice: %s" % [k for k, v in ids.items() if v > 1]
print("deliveries: %d pending at the dump, %d received in all, each once, signatures ok" % (len(pending), len(rows)))
PY
grep -E "PANIC|TRAP|terminated by signal" "$DR_B/server.log" && fail "server log shows a crash"
echo "ok: dump and restore"
