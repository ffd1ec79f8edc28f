#!/usr/bin/env bash
# The schema dataflow is not someone else's. CREATE EXTENSION uses the schema of the control
# file as it finds it: one made in advance by a database owner who is not a superuser stays
# theirs, and they could rename it and put a "dataflow" of their own in its place, whose
# reap() and _worker_jobs() the superuser background worker calls by name. (Before, the
# owner became a superuser within seconds.) Now:
#   - CREATE EXTENSION refuses (42501) a schema that is not a superuser's, that grants
#     CREATE to anyone else, or that is not empty;
#   - the worker calls nothing unless the extension's own schema is "dataflow", owned by a
#     superuser: after an owner change or a rename it logs that once and idles.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh
. test/integration/worker_common.bash

trap wt_cleanup EXIT
WT_DIR=$(df_tmpdir)
df_cluster_start "$WT_DIR" "dataflow.naptime = 200" || wt_fail "cluster did not start"
wt_sql "CREATE ROLE dbowner LOGIN; ALTER DATABASE postgres OWNER TO dbowner" >/dev/null
as_owner() { df_as_user psql -X -tAq -v ON_ERROR_STOP=1 -U dbowner -d postgres -c "$1"; }
refused() { # refused WHAT: CREATE EXTENSION must fail with 42501 naming WHAT
    local out
    out=$(df_as_user psql -X -tAq -d postgres -v VERBOSITY=verbose -c "CREATE EXTENSION pg_dataflow" 2>&1)
    [[ $out == *"ERROR:  42501: schema dataflow exists and is not safe to install into: "*"$1"* ]] \
        || wt_fail "CREATE EXTENSION with a schema where $1: $out"
    [ "$(wt_sql "SELECT count(*) FROM pg_extension WHERE extname = 'pg_dataflow'")" = 0 ] || wt_fail "installed anyway"
}

# 1. made in advance by the database owner
as_owner "CREATE SCHEMA dataflow" || wt_fail "dbowner could not create the schema"
refused "it is owned by dbowner, not a superuser"
as_owner "DROP SCHEMA dataflow" || wt_fail "drop"
# 2. a superuser's, with CREATE for someone else
wt_sql "CREATE SCHEMA dataflow; GRANT CREATE ON SCHEMA dataflow TO dbowner" >/dev/null
refused "dbowner may create in it"
wt_sql "REVOKE CREATE ON SCHEMA dataflow FROM dbowner" >/dev/null
# 3. a superuser's, not empty
wt_sql "CREATE TABLE dataflow.x (i int)" >/dev/null
refused "it is not empty"
wt_sql "DROP TABLE dataflow.x" >/dev/null
# an empty superuser schema without grants is used
wt_sql "CREATE EXTENSION pg_dataflow" >/dev/null
wt_wait "the worker to start its duties" 30 "SELECT count(*) = 1 FROM pg_stat_activity
    WHERE backend_type = 'pg_dataflow worker' AND query NOT LIKE '%idle%'"

# 4. the schema given away later (a superuser's mistake) and then replaced by its new owner
wt_sql "CREATE TABLE public.ran (who name, at timestamptz DEFAULT now()); GRANT INSERT ON public.ran TO PUBLIC" >/dev/null
wt_sql "ALTER SCHEMA dataflow OWNER TO dbowner" >/dev/null
for ((i = 0; i < 150; i++)); do
    grep -q "worker: waiting: schema dataflow" "$WT_DIR/server.log" && break
    sleep 0.1
done
grep -q "worker: waiting: schema dataflow in database \"postgres\" is not the extension's own or not owned by a superuser" \
    "$WT_DIR/server.log" || wt_fail "the worker did not notice the schema's new owner"
df_as_user psql -X -q -v ON_ERROR_STOP=1 -U dbowner -d postgres >/dev/null <<'SQL' || wt_fail "replacing the schema failed"
ALTER SCHEMA dataflow RENAME TO df_old;
CREATE SCHEMA dataflow;
CREATE FUNCTION dataflow.reap() RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.ran (who) VALUES (current_user);
  BEGIN EXECUTE 'ALTER ROLE dbowner SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END;
  RETURN 0;
END $$;
CREATE FUNCTION dataflow._worker_jobs() RETURNS SETOF integer LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION dataflow.schedule() RETURNS integer LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.ran (who) VALUES (current_user); RETURN 0; END $$;
SQL
sleep 12   # past the worker's reap (5 s) and extension check (10 s) periods
[ "$(wt_sql "SELECT count(*) FROM public.ran")" = 0 ] || wt_fail "the worker ran the planted functions: $(wt_sql "SELECT string_agg(who, ' ') FROM public.ran")"
[ "$(wt_sql "SELECT rolsuper FROM pg_roles WHERE rolname = 'dbowner'")" = f ] || wt_fail "dbowner became a superuser"
n=$(grep -c "worker: waiting: schema dataflow" "$WT_DIR/server.log")
[ "$n" = 1 ] || wt_fail "the worker logged the schema problem $n times (want once)"
echo "ok: the schema dataflow is the extension's and a superuser's, or the worker calls nothing"
