#!/usr/bin/env bash
# The worker is a superuser session: objects planted in a schema others can create in
# never run in it. A role with CREATE on public (a common grant; the default on clusters
# upgraded from PostgreSQL 14 or older) plants operators matching the worker's own
# statements exactly -- *(numeric, integer) for a deadline in milliseconds, =(name, name)
# for its catalog look-ups -- and the database's search_path is set to put public before
# pg_catalog (what a database owner can do). The worker then dispatches http jobs,
# records their results and delivers webhooks; the planted code must never run and the
# role must stay what it was. (Before the worker pinned its search_path, the first
# dispatch made the role a superuser.)
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh
. test/integration/worker_common.bash

wt_setup
wt_start_receiver
wt_sql "CREATE ROLE mallory LOGIN; GRANT CREATE, USAGE ON SCHEMA public TO mallory" >/dev/null
df_as_user psql -X -q -v ON_ERROR_STOP=1 -U mallory -d postgres >/dev/null <<'SQL' || wt_fail "planting failed"
CREATE TABLE public.ran (at timestamptz DEFAULT now(), who name DEFAULT current_user, what text);
GRANT INSERT ON public.ran TO PUBLIC;
CREATE FUNCTION public.evil_mul(numeric, integer) RETURNS numeric LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.ran (what) VALUES ('*');
  BEGIN EXECUTE 'ALTER ROLE mallory SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END;
  RETURN $1 OPERATOR(pg_catalog.*) $2;
END $$;
CREATE OPERATOR public.* (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = public.evil_mul);
CREATE FUNCTION public.evil_eq(name, name) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.ran (what) VALUES ('=');
  BEGIN EXECUTE 'ALTER ROLE mallory SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END;
  RETURN $1 OPERATOR(pg_catalog.=) $2;
END $$;
CREATE OPERATOR public.= (LEFTARG = name, RIGHTARG = name, FUNCTION = public.evil_eq);
CREATE FUNCTION public.evil_teq(text, text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.ran (what) VALUES ('text =');
  RETURN $1 OPERATOR(pg_catalog.=) $2;
END $$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.evil_teq);
SQL
wt_sql "ALTER DATABASE postgres SET search_path = public, pg_catalog" >/dev/null
# and output styles that would change what the worker sends (the task's deadline)
wt_sql "ALTER DATABASE postgres SET DateStyle = 'SQL, DMY'" >/dev/null
wt_sql "ALTER DATABASE postgres SET IntervalStyle = 'sql_standard'" >/dev/null
# This script's own superuser sessions keep pg_catalog first (they would run the planted code).
export PGOPTIONS="-c search_path=pg_catalog"
# the planted operators do shadow pg_catalog's in an ordinary session of this database
# (mallory's own: her ALTER ROLE fails there)
[ "$(df_as_user env PGOPTIONS= psql -X -tAq -U mallory -d postgres \
       -c "SELECT count(*) FROM pg_extension WHERE extname = 'plpgsql'")" = 1 ] || wt_fail "probe query failed"
[ "$(wt_sql "SELECT count(*) FROM public.ran")" -ge 1 ] || wt_fail "the planted = does not shadow pg_catalog's here: the test proves nothing"
wt_sql "TRUNCATE public.ran" >/dev/null

# the worker reconnects, so the database setting would reach it
wt_sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'pg_dataflow worker'" >/dev/null
wt_wait "the worker to come back" 30 \
    "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_dataflow worker'"

# work for every duty: an http dispatch that succeeds, one that fails and is retried, a
# webhook delivery
wt_sql "SELECT dataflow.subscribe('hook', '$WT_URL/hook/ok')" > "$WT_DIR/secret"
wt_sql "SELECT dataflow.create_dataset('raw', 'int')" >/dev/null
for j in ok:succeed err:error; do
    wt_sql "SELECT dataflow.create_dataset('out_${j%%:*}', 'int')" >/dev/null
    wt_sql "SELECT dataflow.create_job('${j%%:*}', 'out_${j%%:*}', dispatch => 'http',
              endpoint => '$WT_URL/dispatch/${j#*:}', max_attempts => 2, backoff_min => '1 second',
              backoff_max => '1 second')" >/dev/null
    wt_sql "SELECT dataflow.add_input('${j%%:*}', 'raw')" >/dev/null
    wt_sql "SELECT dataflow.expect('out_${j%%:*}', '1')" >/dev/null
done
wt_sql "SELECT dataflow.register('raw', '1')" >/dev/null
wt_wait "the http runs to finish" 30 \
    "SELECT count(*) FILTER (WHERE dataset = 'out_ok' AND status = 'ready') = 1
        AND count(*) FILTER (WHERE dataset = 'out_err' AND status = 'failed') = 1
       FROM dataflow.chunks WHERE dataset LIKE 'out_%'"
wt_wait "the webhook deliveries" 30 "SELECT count(*) = 0 FROM dataflow.delivery WHERE status <> 'delivered'"
sleep 1
# the task the worker sent: its deadline in ISO form whatever the database's DateStyle
deadline=$(python3 - "$WT_DIR/requests.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["path"] == "/dispatch/succeed":
        print(json.loads(r["body"])["deadline"]); break
PY
)
[[ $deadline =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}\ [0-9]{2}:[0-9]{2}:[0-9]{2} ]] \
    || wt_fail "the task's deadline is not ISO under the database's DateStyle: '$deadline'"

# dataflow-run, as a worker role of its own, pins its search_path the same way: its
# statements (job = $1::text ...) never meet the planted text = operator
CLI=${DATAFLOW_RUN:-$ROOT/build/dataflow-run}
[ -x "$CLI" ] || { cmake -S "$ROOT" -B "$ROOT/build" >/dev/null && cmake --build "$ROOT/build" -j2 --target dataflow-run >/dev/null; }
# run by the test user: a copy in its own directory (it may not enter the checkout)
cp "$CLI" "$WT_DIR/dataflow-run" && CLI=$WT_DIR/dataflow-run || wt_fail "copying $CLI"
wt_sql "CREATE ROLE etl LOGIN IN ROLE dataflow_worker" >/dev/null
wt_sql "SELECT dataflow.create_dataset('out_cli', 'int')" >/dev/null
wt_sql "SELECT dataflow.create_job('cli', 'out_cli')" >/dev/null
wt_sql "SELECT dataflow.add_input('cli', 'raw')" >/dev/null
wt_sql "SELECT dataflow.expect('out_cli', '1')" >/dev/null
df_as_user env PGOPTIONS= PGUSER=etl PGDATABASE=postgres timeout 60 "$CLI" --job cli --once -- \
    sh -c 'python3 -c "import json, sys; print(json.load(open(sys.argv[1]))[\"deadline\"])" "$DATAFLOW_TASK_FILE"' \
    >"$WT_DIR/cli.out" 2>&1 \
    || { cat "$WT_DIR/cli.out" >&2; wt_fail "dataflow-run failed"; }
[ "$(wt_sql "SELECT status FROM dataflow.chunks WHERE dataset = 'out_cli'")" = ready ] \
    || wt_fail "dataflow-run did not complete its chunk: $(cat "$WT_DIR/cli.out")"

grep -Eq '^(\[[0-9]+\] )?[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}' "$WT_DIR/cli.out" \
    || wt_fail "dataflow-run's task deadline is not ISO under the database's DateStyle: $(cat "$WT_DIR/cli.out")"

ran=$(wt_sql "SELECT coalesce(string_agg(who || ':' || what, ' '), '') FROM public.ran")
[ -z "$ran" ] || wt_fail "planted operators ran in: $ran"
[ "$(wt_sql "SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'")" = f ] || wt_fail "mallory became a superuser"
echo "ok: the worker and dataflow-run never resolve through public (planted * and = never ran), and send ISO deadlines"
