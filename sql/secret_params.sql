-- Secret task parameters: create_job(secret_params => ...) and alter_job(secret_params => ...)
-- are the admin's; lease() merges them over the job's params (secret keys win), the
-- worker's Airflow claim keeps its task without them and a resend merges the current ones;
-- readers and operators see the key names with "********" values, and the values are in
-- no view, event, delivery payload or question's output, for any role.
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\i sql/include/helpers.psql
\set SHOW_CONTEXT never
GRANT EXECUTE ON FUNCTION pg_temp.err(text) TO PUBLIC;
-- every view of the schema (and the questions' output) searched for the secret values as
-- the current role: one row per place a value shows up, none when it shows nowhere
CREATE FUNCTION pg_temp.leaks() RETURNS TABLE (role name, place text) LANGUAGE plpgsql AS $$
DECLARE v text; hit boolean;
BEGIN
  FOR v IN SELECT table_name::text FROM information_schema.views
            WHERE table_schema = 'dataflow' ORDER BY table_name LOOP
    BEGIN
      EXECUTE format('SELECT EXISTS (SELECT FROM dataflow.%I x WHERE row_to_json(x)::text ~ %L)',
                     v, 'SECRET-(4242|77|9001)') INTO hit;
    EXCEPTION WHEN insufficient_privilege THEN
      hit := false;   -- a view this role may not read shows it nothing
    END;
    IF hit THEN role := current_user; place := v; RETURN NEXT; END IF;
  END LOOP;
  FOR place, hit IN
    SELECT 'explain', EXISTS (SELECT FROM dataflow.explain('sp_out', '1') x WHERE row_to_json(x)::text ~ 'SECRET-')
    UNION ALL
    SELECT 'blockers', EXISTS (SELECT FROM dataflow.blockers('sp_out', '2') x WHERE row_to_json(x)::text ~ 'SECRET-')
    UNION ALL
    SELECT 'graph_dot', dataflow.graph_dot() ~ 'SECRET-' LOOP
    IF hit THEN role := current_user; RETURN NEXT; END IF;
  END LOOP;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.leaks() TO PUBLIC;

SELECT dataflow.create_dataset('sp_src', 'int');
SELECT dataflow.create_dataset('sp_out', 'int', location => 's3://lake/{dataset}/{key}/');
SELECT dataflow.subscribe('everything', 'https://hooks.example/in') IS NOT NULL AS subscribed;   -- deliveries for every event
SELECT dataflow.create_job('sp_job', output => 'sp_out',
                           params => '{"resource": "files/{key}", "portal_api_key": "public-placeholder"}',
                           secret_params => '{"portal_api_key": "sk-SECRET-4242", "db": {"password": "pw-SECRET-77"}}') > 0 AS created;
SELECT dataflow.add_input('sp_job', 'sp_src');
SELECT dataflow.expect('sp_out', '1', '3');
SELECT dataflow.register('sp_src', '1', 's3://portal/uploads/1.csv');
SELECT dataflow.register('sp_src', '3', 's3://portal/uploads/3.csv');

-- the engine (a pull worker) gets the secrets: merged over params, the secret key wins
SET ROLE dataflow_worker;
SELECT key, params FROM dataflow.lease('sp_job', 'portal-etl');
RESET ROLE;

-- readers, operators (and the admin, through the view) see names only
SET ROLE dataflow_reader;
SELECT job, secret_params FROM dataflow.jobs WHERE job = 'sp_job';
SELECT pg_temp.err($$SELECT * FROM dataflow.job_secret$$) AS reader_reads_table;
RESET ROLE;
SET ROLE dataflow_operator;
SELECT job, secret_params FROM dataflow.jobs WHERE job = 'sp_job';
SELECT pg_temp.err($$SELECT * FROM dataflow.job_secret$$) AS operator_reads_table;
SELECT pg_temp.err($$SELECT params FROM dataflow.job$$) AS operator_reads_params;
RESET ROLE;
SELECT job, secret_params FROM dataflow.jobs ORDER BY job;
SELECT d.description FROM pg_description d JOIN pg_class c ON c.oid = d.objoid
 WHERE c.oid = 'dataflow.jobs'::regclass
   AND d.objsubid = (SELECT attnum FROM pg_attribute WHERE attrelid = c.oid AND attname = 'secret_params');

-- only the admin sets them: operators, workers and readers are refused, nothing changes
SELECT pg_temp.fingerprint() AS fp \gset
SET ROLE dataflow_operator;
SELECT pg_temp.err($$SELECT dataflow.alter_job('sp_job', secret_params => '{"portal_api_key": "x"}')$$) AS operator_alter;
SELECT pg_temp.err($$SELECT dataflow.alter_job('sp_job', priority => 3, secret_params => '{}')$$) AS operator_clear;
SELECT pg_temp.err($$SELECT dataflow.create_job('sp_op', output => 'sp_src', secret_params => '{"k": "v"}')$$) AS operator_create;
RESET ROLE;
SET ROLE dataflow_reader;
SELECT pg_temp.err($$SELECT dataflow.alter_job('sp_job', secret_params => '{"portal_api_key": "x"}')$$) AS reader_alter;
RESET ROLE;
SET ROLE dataflow_worker;
SELECT pg_temp.err($$SELECT dataflow.alter_job('sp_job', secret_params => '{"portal_api_key": "x"}')$$) AS worker_alter;
RESET ROLE;
SELECT pg_temp.fingerprint() = :'fp' AS nothing_changed;

-- bad input: a clear error with its SQLSTATE, no value echoed, nothing changed
SELECT pg_temp.fails($$SELECT dataflow.create_job('sp_bad', output => 'sp_src', secret_params => '["sk-SECRET-9001"]')$$) AS array_given;
SELECT pg_temp.fails($$SELECT dataflow.create_job('sp_bad', output => 'sp_src', secret_params => '"sk-SECRET-9001"')$$) AS string_given;
SELECT pg_temp.fails($$SELECT dataflow.create_job('sp_bad', output => 'sp_src', secret_params => NULL)$$) AS null_given;
SELECT pg_temp.fails($$SELECT dataflow.create_job('sp_bad', output => 'sp_src', secret_params => '{"batch": "sk-SECRET-9001"}')$$) AS batch_key;
SELECT pg_temp.fails($$SELECT dataflow.alter_job('sp_job', secret_params => '42')$$) AS alter_number;
SELECT pg_temp.fails($$SELECT dataflow.alter_job('sp_job', secret_params => '{"batch": 1}')$$) AS alter_batch;
SELECT pg_temp.fails($$SELECT dataflow.alter_job('no_such_job', secret_params => '{"k": "sk-SECRET-9001"}')$$) AS alter_unknown;
SELECT pg_temp.fails($$SELECT dataflow.alter_job(NULL, secret_params => '{"k": "sk-SECRET-9001"}')$$) AS alter_null_job;

-- the admin replaces them (a new set as a whole), the event says only "changed"
SELECT dataflow.alter_job('sp_job', secret_params => '{"portal_api_key": "sk-SECRET-9001"}');
SELECT dataflow.alter_job('sp_job', secret_params => '{"portal_api_key": "sk-SECRET-9001"}') AS same_again;
SELECT job, secret_params FROM dataflow.jobs WHERE job = 'sp_job';
SELECT dataflow.register('sp_src', '2', 's3://portal/uploads/2.csv');
SELECT key, params FROM dataflow.lease('sp_job', 'portal-etl');

-- the worker's Airflow claim: the task it returns (and sends) has the secrets, what it
-- keeps for a resend (dataflow._dispatch) has not; the resend merges the current ones
SELECT dataflow.create_connection('sp_af', 'airflow', 'https://airflow.example', auth => 'basic',
                                  username => 'etl', secret => 'af-pw');
SELECT dataflow.create_dataset('sp_af_out', 'int');
SELECT dataflow.create_job('sp_af', output => 'sp_af_out', dispatch => 'airflow', connection => 'sp_af',
                           target => 'portal_load', params => '{"portal_api_key": "placeholder", "mode": "append"}',
                           secret_params => '{"portal_api_key": "sk-SECRET-4242"}') > 0 AS created;
SELECT dataflow.add_input('sp_af', 'sp_src');
SELECT dataflow.expect('sp_af_out', '1');
SELECT key, params FROM dataflow._worker_claim('sp_af', 1);
SELECT task -> 'params' AS kept_params, task::text ~ 'SECRET-' AS kept_has_secret FROM dataflow._dispatch;
SELECT (task::jsonb) -> 'params' AS resend_params FROM dataflow._worker_airflow_runs();
SELECT dataflow.alter_job('sp_af', secret_params => '{"portal_api_key": "sk-SECRET-77", "extra": "e-SECRET-77"}');
SELECT (task::jsonb) -> 'params' AS resend_rotated FROM dataflow._worker_airflow_runs();
SELECT dataflow.alter_job('sp_af', secret_params => '{}');
SELECT (task::jsonb) -> 'params' AS resend_cleared FROM dataflow._worker_airflow_runs();
SELECT job, secret_params FROM dataflow.jobs WHERE job = 'sp_af';
SELECT count(*) AS secret_rows FROM dataflow.job_secret s JOIN dataflow.job j ON j.id = s.job_id WHERE j.name = 'sp_af';

-- a completed run and a failed one, so that runs, events and deliveries have rows of this job
SELECT token AS tok FROM dataflow.run r JOIN dataflow.chunk c ON c.id = r.chunk_id
 JOIN dataflow.dataset d ON d.id = c.dataset_id WHERE d.name = 'sp_out' AND c.key = '1' \gset
SELECT dataflow.complete(:'tok', row_count => 10) AS completed;
SELECT token AS tok FROM dataflow.run r JOIN dataflow.chunk c ON c.id = r.chunk_id
 JOIN dataflow.dataset d ON d.id = c.dataset_id WHERE d.name = 'sp_out' AND c.key = '3' \gset
SELECT dataflow.fail(:'tok', 'portal said no', retry => false) AS failed;

-- the secret values show in no view and no question's output, as any role
SELECT * FROM pg_temp.leaks();
SET ROLE dataflow_reader;
SELECT * FROM pg_temp.leaks();
RESET ROLE;
SET ROLE dataflow_operator;
SELECT * FROM pg_temp.leaks();
RESET ROLE;
SET ROLE dataflow_worker;
SELECT * FROM pg_temp.leaks();
RESET ROLE;
SET ROLE dataflow_admin;
SELECT * FROM pg_temp.leaks();
RESET ROLE;
-- nor in the event log or the webhook payloads (the tables themselves, read as superuser)
SELECT count(*) AS events, count(*) FILTER (WHERE e::text ~ 'SECRET-') AS events_with_secret FROM dataflow.event e;
SELECT count(*) > 0 AS deliveries, count(*) FILTER (WHERE d.payload::text ~ 'SECRET-') AS deliveries_with_secret
  FROM dataflow.delivery d;
SELECT detail FROM dataflow.event WHERE to_status = 'altered' ORDER BY id;
-- and no table but job_secret holds a value (the leases themselves are not kept)
SELECT c.relname FROM pg_class c
 WHERE c.relnamespace = 'dataflow'::regnamespace AND c.relkind = 'r'
   AND (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM dataflow.%I x WHERE x::text ~ %L',
                                                   c.relname, 'SECRET-'), false, true, '')))[1]::text::int > 0
 ORDER BY 1;

-- dropping a job drops its secrets
SELECT dataflow.create_dataset('sp_drop_out', 'int');
SELECT dataflow.create_job('sp_drop', output => 'sp_drop_out', secret_params => '{"k": "v"}') > 0 AS created;
SELECT count(*) AS secret_rows FROM dataflow.job_secret;
SELECT dataflow.drop_job('sp_drop');
SELECT count(*) AS secret_rows FROM dataflow.job_secret;
