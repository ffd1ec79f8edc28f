-- Roles and privileges. Four roles, each able to do its part and nothing more:
--   dataflow_reader    the status views and read-only questions; never tokens or secrets
--   dataflow_worker    lease, heartbeat, complete, fail, register, validate (+ reader)
--   dataflow_operator  expect, resubmit, skip, cancel, pause/resume, change limits (+ reader)
--   dataflow_admin     define datasets, jobs, pools, connections; reads secrets (+ operator, worker)
-- Functions that need privileges are SECURITY DEFINER with a pinned
-- search_path (every plpgsql function pins it) and no PUBLIC EXECUTE.
-- Roles are cluster-wide: they are created when missing and shared by every
-- database that installs the extension; DROP EXTENSION leaves them.

DO $$
BEGIN
  IF current_setting('server_version_num')::integer < 150004 THEN
    RAISE EXCEPTION 'pg_dataflow requires PostgreSQL 15.4 or later, this is %', current_setting('server_version')
      USING ERRCODE = '0A000';
  END IF;
END $$;

-- A role that already exists is adopted only when no one but a superuser controls it: it
-- may come from an install in another database (roles are cluster-wide), but it may also
-- have been made in advance by a role with CREATEROLE, who then holds ADMIN OPTION on it
-- (implicitly, from PostgreSQL 16 on) or has granted it to whomever it likes, and would
-- get the extension's privileges in every database that installs it. So: no LOGIN, and
-- every membership in it granted by a superuser (not by a role since dropped), and ADMIN
-- OPTION on it held by superusers only. On PostgreSQL 15 a CREATEROLE role can still take
-- any of these roles over after the install (15's CREATEROLE rules; docs/security.md).
DO $$
DECLARE r text; bad text;
BEGIN
  FOREACH r IN ARRAY ARRAY['dataflow_reader', 'dataflow_worker', 'dataflow_operator', 'dataflow_admin'] LOOP
    IF NOT (EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) r)) THEN
      EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
      CONTINUE;
    END IF;
    SELECT pg_catalog.string_agg(x, ', ' ORDER BY x) INTO bad FROM (
      SELECT 'it has attributes beyond NOLOGIN' AS x FROM pg_catalog.pg_roles
       WHERE rolname OPERATOR(pg_catalog.=) r
         AND (rolcanlogin OR rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls)
      UNION ALL
      SELECT pg_catalog.format('%s %s by %s', m.rolname,
                               CASE WHEN a.admin_option THEN 'holds it WITH ADMIN OPTION, granted' ELSE 'is a member, granted' END,
                               coalesce(g.rolname::text, 'a dropped role'))
        FROM pg_catalog.pg_auth_members a
        JOIN pg_catalog.pg_roles t ON t.oid OPERATOR(pg_catalog.=) a.roleid
        JOIN pg_catalog.pg_roles m ON m.oid OPERATOR(pg_catalog.=) a.member
        LEFT JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) a.grantor
       WHERE t.rolname OPERATOR(pg_catalog.=) r
         AND (NOT coalesce(g.rolsuper, false) OR (a.admin_option AND NOT m.rolsuper))) s;
    IF bad IS NOT NULL THEN
      RAISE EXCEPTION 'role % exists and is not safe to adopt: %', r, bad
        USING ERRCODE = '42501',
              HINT = 'pg_dataflow grants its privileges to this role in every database that installs it. Drop the role, or make a superuser its only grantor (REVOKE and GRANT again as a superuser), then retry.';
    END IF;
  END LOOP;
END $$;
GRANT dataflow_reader TO dataflow_worker, dataflow_operator;
GRANT dataflow_operator, dataflow_worker TO dataflow_admin;

GRANT USAGE ON SCHEMA dataflow TO dataflow_reader, dataflow_worker, dataflow_operator, dataflow_admin;
REVOKE ALL ON ALL TABLES IN SCHEMA dataflow FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA dataflow FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA dataflow FROM PUBLIC;

-- Pure helpers the views call (EXECUTE is checked against the querying role).
GRANT EXECUTE ON FUNCTION dataflow._level(text), dataflow._key_text(text, bigint), dataflow._key_canon(text, text),
  dataflow._key_ord(text, text), dataflow._period_end(text, bigint), dataflow._location(text, text, text, integer)
  TO dataflow_reader;
GRANT EXECUTE ON FUNCTION dataflow.library_version() TO dataflow_reader;
-- The WHEN of the counting triggers (12_counts.sql) runs as whoever writes dataflow.chunk
-- or dataflow.event; it only reads a backend-local flag.
GRANT EXECUTE ON FUNCTION dataflow._accounted() TO PUBLIC;

-- Reader: views and read-only questions.
GRANT SELECT ON dataflow.datasets, dataflow.jobs, dataflow.chunks, dataflow.runs, dataflow.progress,
  dataflow.gaps, dataflow.deletable, dataflow.dataset_counts, dataflow.dataset_rate, dataflow.events
  TO dataflow_reader;
-- A job's definition history (input names and mappings, no secret) and the chunks an
-- older definition built (24_change.sql).
GRANT SELECT ON dataflow.outdated, dataflow.job_definition TO dataflow_reader;
GRANT EXECUTE ON FUNCTION dataflow.explain(text, text), dataflow.blockers(text, text),
  dataflow.upstream(text, text), dataflow.downstream(text, text), dataflow.graph_dot() TO dataflow_reader;

-- Worker: the lease lifecycle and source registration.
GRANT EXECUTE ON FUNCTION dataflow.lease(text, text, integer, interval), dataflow.heartbeat(uuid, interval),
  dataflow.complete(uuid, bigint, text, jsonb, text), dataflow.complete_many(uuid[], bigint[], text[], jsonb[], text[]),
  dataflow.fail(uuid, text, boolean), dataflow.register(text, text, text, bigint, text, jsonb, boolean), dataflow.validate(text, text, boolean, jsonb)
  TO dataflow_worker;

-- Operator: backfill, restart, skip, cancel, pause, limits, housekeeping.
GRANT EXECUTE ON FUNCTION dataflow.expect(text, text, text), dataflow.resubmit(text, text, text, boolean, boolean, text),
  dataflow.skip(text, text, text), dataflow.cancel(text, text), dataflow.pause_job(text, boolean),
  dataflow.resume_job(text), dataflow.reap(), dataflow.schedule(), dataflow.prune(interval),
  dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb, bigint, jsonb, text)
  TO dataflow_operator;
GRANT UPDATE (status) ON dataflow.chunks TO dataflow_operator;
GRANT SELECT (id, name, output_id, dispatch, pool_id, max_concurrency, max_attempts, backoff_min, backoff_max,
              lease_for, priority, paused) ON dataflow.job TO dataflow_operator;
GRANT UPDATE (max_concurrency, priority, paused, max_attempts, lease_for, backoff_min, backoff_max)
  ON dataflow.job TO dataflow_operator;
GRANT SELECT, UPDATE (slots) ON dataflow.pool TO dataflow_operator;

-- Admin: definitions, and every table (secrets and live tokens included).
GRANT EXECUTE ON FUNCTION
  dataflow.create_dataset(text, text, text, boolean, interval, interval, interval, jsonb), dataflow.drop_dataset(text),
  dataflow.create_pool(text, integer), dataflow.drop_pool(text),
  dataflow.create_connection(text, text, text, text, text, text, integer, interval, interval),
  dataflow.drop_connection(text),
  dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval,
                      interval, integer, bigint, jsonb, text),
  dataflow.add_input(text, text, text, integer, integer, text, integer, boolean, boolean), dataflow.drop_job(text),
  dataflow.drop_input(text, text, boolean, boolean),
  dataflow.alter_input(text, text, text, integer, integer, text, integer, boolean, boolean)
  TO dataflow_admin;
-- Not ALL: TRIGGER would let the admin attach a function of its own to dataflow.chunk
-- (or any table), which the definer functions then fire as the extension owner, a
-- superuser. REFERENCES is not needed either. Only the owner may add rules or policies.
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA dataflow TO dataflow_admin;
GRANT ALL ON ALL SEQUENCES IN SCHEMA dataflow TO dataflow_admin;

-- Every public function runs as the extension owner; callers are held to the grants above.
ALTER FUNCTION dataflow.create_dataset(text, text, text, boolean, interval, interval, interval, jsonb) SECURITY DEFINER;
ALTER FUNCTION dataflow.drop_dataset(text) SECURITY DEFINER;
ALTER FUNCTION dataflow.create_pool(text, integer) SECURITY DEFINER;
ALTER FUNCTION dataflow.drop_pool(text) SECURITY DEFINER;
ALTER FUNCTION dataflow.create_connection(text, text, text, text, text, text, integer, interval, interval) SECURITY DEFINER;
ALTER FUNCTION dataflow.drop_connection(text) SECURITY DEFINER;
ALTER FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval,
                                   interval, interval, integer, bigint, jsonb, text) SECURITY DEFINER;
ALTER FUNCTION dataflow.add_input(text, text, text, integer, integer, text, integer, boolean, boolean) SECURITY DEFINER;
ALTER FUNCTION dataflow.drop_input(text, text, boolean, boolean) SECURITY DEFINER;
ALTER FUNCTION dataflow.alter_input(text, text, text, integer, integer, text, integer, boolean, boolean) SECURITY DEFINER;
ALTER FUNCTION dataflow.drop_job(text) SECURITY DEFINER;
ALTER FUNCTION dataflow.pause_job(text, boolean) SECURITY DEFINER;
ALTER FUNCTION dataflow.resume_job(text) SECURITY DEFINER;
ALTER FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb, bigint, jsonb, text) SECURITY DEFINER;
ALTER FUNCTION dataflow.expect(text, text, text) SECURITY DEFINER;
ALTER FUNCTION dataflow.register(text, text, text, bigint, text, jsonb, boolean) SECURITY DEFINER;
ALTER FUNCTION dataflow.validate(text, text, boolean, jsonb) SECURITY DEFINER;
ALTER FUNCTION dataflow.skip(text, text, text) SECURITY DEFINER;
ALTER FUNCTION dataflow.cancel(text, text) SECURITY DEFINER;
ALTER FUNCTION dataflow.resubmit(text, text, text, boolean, boolean, text) SECURITY DEFINER;
ALTER FUNCTION dataflow.lease(text, text, integer, interval) SECURITY DEFINER;
ALTER FUNCTION dataflow.heartbeat(uuid, interval) SECURITY DEFINER;
ALTER FUNCTION dataflow.complete(uuid, bigint, text, jsonb, text) SECURITY DEFINER;
ALTER FUNCTION dataflow.complete_many(uuid[], bigint[], text[], jsonb[], text[]) SECURITY DEFINER;
ALTER FUNCTION dataflow.fail(uuid, text, boolean) SECURITY DEFINER;
ALTER FUNCTION dataflow.reap() SECURITY DEFINER;
ALTER FUNCTION dataflow.schedule() SECURITY DEFINER;
ALTER FUNCTION dataflow.prune(interval) SECURITY DEFINER;
ALTER FUNCTION dataflow.explain(text, text) SECURITY DEFINER;
ALTER FUNCTION dataflow.blockers(text, text) SECURITY DEFINER;
ALTER FUNCTION dataflow.upstream(text, text) SECURITY DEFINER;
ALTER FUNCTION dataflow.downstream(text, text) SECURITY DEFINER;
ALTER FUNCTION dataflow.graph_dot() SECURITY DEFINER;
-- The callback listener (dataflow.callback_role: a dataflow_worker) records a failed
-- callback's retry_after the way the background worker records an engine's Retry-After:
-- _fail with that delay instead of the job's backoff (docs/worker.md, "Callback listener").
ALTER FUNCTION dataflow._fail(uuid, text, boolean, double precision) SECURITY DEFINER;
GRANT EXECUTE ON FUNCTION dataflow._fail(uuid, text, boolean, double precision) TO dataflow_worker;
-- The view's INSTEAD OF trigger writes dataflow.chunk on behalf of the operator.
ALTER FUNCTION dataflow._chunks_update() SECURITY DEFINER;
ALTER FUNCTION dataflow._chunks_updated() SECURITY DEFINER;

-- Webhooks (src/sql/70_worker.sql): subscriptions are definitions (admin); redelivery is an
-- operator's tool; the deliveries view shows no URL or secret.
GRANT EXECUTE ON FUNCTION dataflow.subscribe(text, text, text[], text[], text), dataflow.unsubscribe(text),
  dataflow.drop_subscription(text), dataflow.redeliver(bigint), dataflow.redeliver(text, timestamptz, boolean)
  TO dataflow_admin;
GRANT EXECUTE ON FUNCTION dataflow.enable_subscription(text) TO dataflow_admin;
GRANT EXECUTE ON FUNCTION dataflow.redeliver(bigint), dataflow.redeliver(text, timestamptz, boolean)
  TO dataflow_operator;
GRANT SELECT ON dataflow.deliveries TO dataflow_reader;
