-- Roles: each can do its part and nothing more; secrets and live tokens are
-- admin-only; a hostile search_path changes nothing.
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\set SHOW_CONTEXT never
CREATE FUNCTION pg_temp.can(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
GRANT EXECUTE ON FUNCTION pg_temp.can(text) TO PUBLIC;
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'dataflow\_%' ORDER BY 1;

SET ROLE dataflow_admin;
SELECT pg_temp.can($$SELECT dataflow.create_dataset('r_src', 'date')$$);
SELECT pg_temp.can($$SELECT dataflow.create_dataset('r_out', 'date')$$);
SELECT pg_temp.can($$SELECT dataflow.create_job('r_job', output => 'r_out')$$);
SELECT pg_temp.can($$SELECT dataflow.add_input('r_job', 'r_src')$$);
SELECT pg_temp.can($$SELECT dataflow.create_connection('af', 'airflow', 'https://airflow.example', auth => 'basic', username => 'etl', secret => 's3cr3t')$$);
SELECT pg_temp.can($$SELECT secret FROM dataflow.connection$$);
RESET ROLE;

-- operator: backfill, resubmit, skip, cancel, pause, limits; not definitions, not leases
SET ROLE dataflow_operator;
SELECT pg_temp.can($$SELECT dataflow.expect('r_out', '2024-01-01', '2024-01-03')$$);
SELECT pg_temp.can($$SELECT dataflow.pause_job('r_job')$$);
SELECT pg_temp.can($$SELECT dataflow.resume_job('r_job')$$);
SELECT pg_temp.can($$UPDATE dataflow.job SET max_concurrency = 4 WHERE name = 'r_job'$$);
SELECT pg_temp.can($$UPDATE dataflow.job SET endpoint = 'http://evil.example/' WHERE name = 'r_job'$$);
SELECT pg_temp.can($$SELECT dataflow.skip('r_src', '2024-01-03', 'holiday')$$);
SELECT pg_temp.can($$SELECT dataflow.create_dataset('x', 'date')$$);
SELECT pg_temp.can($$SELECT dataflow.lease('r_job', 'op')$$);
SELECT pg_temp.can($$SELECT secret FROM dataflow.connection$$);
SELECT pg_temp.can($$SELECT token FROM dataflow.run$$);
SELECT pg_temp.can($$DELETE FROM dataflow.event$$);
RESET ROLE;

-- worker: register, lease, heartbeat, complete, fail, validate; not resubmit or expect
SET ROLE dataflow_worker;
SELECT pg_temp.can($$SELECT dataflow.register('r_src', '2024-01-01')$$);
SELECT pg_temp.can($$SELECT dataflow.register('r_src', '2024-01-02')$$);
SELECT count(*) AS leased FROM dataflow.lease('r_job', 'wk', 2);
SELECT pg_temp.can($$SELECT token FROM dataflow.run$$);
SELECT pg_temp.can($$SELECT dataflow.resubmit('r_src', '2024-01-01')$$);
SELECT pg_temp.can($$UPDATE dataflow.chunks SET status = 'resubmit' WHERE dataset = 'r_src'$$);
SELECT pg_temp.can($$UPDATE dataflow.chunk SET status = 'ready'$$);
SELECT pg_temp.can($$SELECT dataflow.expect('r_out', '2024-02-01')$$);
RESET ROLE;
SELECT r.token AS tok FROM dataflow.run r JOIN dataflow.chunk c ON c.id = r.chunk_id WHERE c.key = '2024-01-01' \gset
SET ROLE dataflow_worker;
SELECT pg_temp.can(format('SELECT dataflow.heartbeat(%L)', :'tok'));
SELECT pg_temp.can(format('SELECT dataflow.complete(%L, row_count => 5)', :'tok'));
SELECT pg_temp.can($$SELECT dataflow.validate('r_out', '2024-01-01', true)$$);
RESET ROLE;

-- reader: views and questions only; never tokens or secrets
SET ROLE dataflow_reader;
SELECT dataset, chunks, available FROM dataflow.datasets ORDER BY dataset;
SELECT job, running FROM dataflow.jobs;
SELECT pg_temp.can($$SELECT count(*) FROM dataflow.chunks$$);
SELECT pg_temp.can($$SELECT count(*) FROM dataflow.runs$$);
SELECT pg_temp.can($$SELECT count(*) FROM dataflow.progress$$);
SELECT pg_temp.can($$SELECT count(*) FROM dataflow.gaps$$);
SELECT pg_temp.can($$SELECT count(*) FROM dataflow.deletable$$);
SELECT pg_temp.can($$SELECT count(*) FROM dataflow.explain('r_out', '2024-01-01')$$);
SELECT pg_temp.can($$SELECT count(*) FROM dataflow.blockers('r_out', '2024-01-03')$$);
SELECT pg_temp.can($$SELECT dataflow.graph_dot() IS NOT NULL$$);
SELECT pg_temp.can($$SELECT * FROM dataflow.run$$);
SELECT pg_temp.can($$SELECT * FROM dataflow.chunk$$);
SELECT pg_temp.can($$SELECT * FROM dataflow.connection$$);
SELECT pg_temp.can($$SELECT dataflow.lease('r_job', 'rd')$$);
SELECT pg_temp.can($$SELECT dataflow.register('r_src', '2024-01-05')$$);
SELECT pg_temp.can($$UPDATE dataflow.chunks SET status = 'resubmit' WHERE dataset = 'r_src'$$);
RESET ROLE;

-- the operator's one-line restart through the view, recorded with the operator as actor
SET ROLE dataflow_operator;
UPDATE dataflow.chunks SET status = 'resubmit' WHERE dataset = 'r_src' AND key = '2024-01-01';
RESET ROLE;
SELECT key, from_status, to_status, actor FROM dataflow.event
 WHERE key = '2024-01-01' ORDER BY id DESC LIMIT 2;

-- a hostile search_path: objects shadowing pg_catalog names and operators change nothing
CREATE SCHEMA evil;
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT '2000-01-01'::timestamptz $$;
CREATE FUNCTION evil.lower(text) RETURNS text LANGUAGE sql AS $$ SELECT 'pwned' $$;
CREATE FUNCTION evil.texteq(text, text) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.texteq);
CREATE TABLE evil.chunk (id int);
SET search_path = evil, public;
SELECT dataflow.expect('r_out', '2024-01-04');
SELECT key, version, attempt FROM dataflow.lease('r_job', 'w-evil');
SELECT dataset, key, status FROM dataflow.chunks WHERE dataset OPERATOR(pg_catalog.=) 'r_out' ORDER BY key;
RESET search_path;

-- the catalog audit (test/catalog/audit.sql, also run on an updated installation by
-- test/integration/upgrade.sh): every SECURITY DEFINER and plpgsql function pins
-- search_path, none is executable by PUBLIC, no table or view is readable by PUBLIC,
-- everything in the schema belongs to the extension. No row: no problem.
\set ECHO none
\i catalog/audit.sql
\set ECHO all
RESET search_path;
DROP SCHEMA evil CASCADE;
