-- The Prefect adapter's SQL side (docs/engines.md, "Prefect"): prefect connections and
-- jobs and their validation errors (each with its SQLSTATE, changing nothing), and what
-- the worker's calls store: a claim leaves the run's external_id to the flow run id,
-- _worker_prefect_runs gives what each attempt's idempotency key is made of (this
-- install's id, the chunk, its version and the run: core/prefect.h builds
-- dataflow-<install>-<chunk>-v<version>-r<run>), and recorded results keep the flow run
-- id and state in the run's info. Then (issue 15 review): a create answered for a run
-- cancelled meanwhile still stores its flow run id and makes the stop due again; an
-- attempt after a reaped one has its own key; a flow run PAUSED or CANCELLING for longer
-- than the job's lease_for fails its run.
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\i sql/include/helpers.psql

SELECT dataflow.create_connection('pf', 'prefect', 'http://prefect:4200/api') > 0 AS self_hosted,
       dataflow.create_connection('pf_cloud', 'prefect', 'https://api.prefect.cloud/api/accounts/a/workspaces/w',
                                  auth => 'bearer', secret => 'pnu_secret') > 0 AS cloud,
       dataflow.create_connection('af', 'airflow', 'http://airflow:8080') > 0 AS airflow;
SELECT name, kind, base_url, auth, secret IS NOT NULL AS has_secret, api_version
  FROM dataflow.connection ORDER BY id;
SELECT q, pg_temp.fails(q) FROM unnest(ARRAY[
  $$SELECT dataflow.create_connection('c_x', 'prefect', 'http://h/api', auth => 'basic', username => 'u', secret => 's')$$,
  $$SELECT dataflow.create_connection('c_x', 'prefect', 'http://h/api', auth => 'bearer')$$,
  $$SELECT dataflow.create_connection('c_x', 'prefect', 'http://h/api', api_version => 2)$$,
  $$SELECT dataflow.create_connection('c_x', 'prefects', 'http://h/api')$$
]) q;

SELECT dataflow.create_dataset('raw', 'int'), dataflow.create_dataset('o_id', 'int'),
       dataflow.create_dataset('o_name', 'int'), dataflow.create_dataset('o_x', 'int');
SELECT dataflow.create_job('by_id', 'o_id', dispatch => 'prefect', connection => 'pf',
                           target => '0B6F5C2E-1d2a-4c3b-9e8f-7a6b5c4d3e2f', params => '{"org": "acme"}',
                           max_attempts => 3, backoff_min => '0 s', backoff_max => '0 s') > 0 AS by_id,
       dataflow.create_job('by_name', 'o_name', dispatch => 'prefect', connection => 'pf_cloud',
                           target => 'sync-orgs/nightly run') > 0 AS by_name;
SELECT j.name, j.dispatch, j.target, c.name AS connection FROM dataflow.job j JOIN dataflow.connection c ON c.id = j.connection_id ORDER BY j.name;
SELECT q, pg_temp.fails(q) FROM unnest(ARRAY[
  $$SELECT dataflow.create_job('x', 'o_x', dispatch => 'prefect', target => 'f/d')$$,
  $$SELECT dataflow.create_job('x', 'o_x', dispatch => 'prefect', connection => 'af', target => 'f/d')$$,
  $$SELECT dataflow.create_job('x', 'o_x', dispatch => 'prefect', connection => 'pf')$$,
  $$SELECT dataflow.create_job('x', 'o_x', dispatch => 'prefect', connection => 'pf', target => 'f/d', endpoint => 'http://h/')$$,
  $$SELECT dataflow.create_job('x', 'o_x', dispatch => 'prefect', connection => 'pf', target => 'flow')$$,
  $$SELECT dataflow.create_job('x', 'o_x', dispatch => 'prefect', connection => 'pf', target => 'a/b/c')$$,
  $$SELECT dataflow.create_job('x', 'o_x', dispatch => 'prefect', connection => 'pf', target => '/d')$$,
  $$SELECT dataflow.create_job('x', 'o_x', dispatch => 'prefect', connection => 'pf', target => 'f%2F/d')$$,
  $$SELECT dataflow.create_job('x', 'o_x', dispatch => 'prefect', connection => 'pf', target => E'f/d\n')$$,
  $$SELECT dataflow.create_job('x', 'o_x', dispatch => 'prefect', connection => 'pf', target => 'f/' || repeat('d', 201))$$,
  $$SELECT dataflow.create_job('x', 'o_x', dispatch => 'airflow', connection => 'pf', target => 'dag')$$,
  $$SELECT dataflow.create_job('x', 'o_x', dispatch => 'http', connection => 'pf', target => 'p')$$
]) q;

-- The worker's side, driven by hand: claim, the key, record the flow run and its end.
SELECT dataflow.add_input('by_id', 'raw');
SELECT dataflow.expect('o_id', '1');
SELECT dataflow.register('raw', '1');
SELECT job, dispatch, url FROM dataflow._worker_jobs();
SELECT run_id IS NOT NULL AS claimed FROM dataflow._worker_claim('by_id', 5);
SELECT r.external_id, x.triggered FROM dataflow.run r JOIN dataflow._dispatch x ON x.run_id = r.id;
SELECT count(*) AS airflow_runs FROM dataflow._worker_airflow_runs();
SELECT triggered, target, base_url, auth, install_id = (SELECT id FROM dataflow.install) AS our_install,
       chunk_id = (SELECT c.id FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id WHERE d.name = 'o_id' AND c.key = '1') AS chunk, version,
       job, (task::jsonb ->> 'job') AS task_job, task::jsonb -> 'params' AS params, secret_params
  FROM dataflow._worker_prefect_runs();
SELECT count(*) AS install_rows, bool_and(id IS NOT NULL) AS has_id FROM dataflow.install;
-- create_flow_run answered: the flow run id becomes external_id, the lease is kept alive
SELECT item, recorded, error_code FROM dataflow._worker_results(
  ARRAY[pg_temp.tok('o_id', '1')], ARRAY['pending'], ARRAY[NULL::bigint], ARRAY[NULL::text],
  ARRAY['{"prefect": {"flow_run_id": "11111111-1111-4111-8111-111111111111"}}'], ARRAY[NULL::text],
  ARRAY[NULL::text], ARRAY[true], ARRAY[NULL::integer]);
SELECT r.external_id, r.info, p.triggered, r.deadline > now() AS live FROM dataflow._worker_prefect_runs() p JOIN dataflow.run r ON r.id = p.run_id;
-- the poll finds it CRASHED: retried, and the next attempt's flow run has a new key
SELECT item, recorded, error_code FROM dataflow._worker_results(
  ARRAY[pg_temp.tok('o_id', '1')], ARRAY['failed'], ARRAY[NULL::bigint], ARRAY[NULL::text],
  ARRAY['{"prefect": {"flow_run_id": "11111111-1111-4111-8111-111111111111", "state": "CRASHED", "state_name": "Crashed"}}'],
  ARRAY[NULL::text], ARRAY['Prefect flow run 1111 Crashed: worker lost'], ARRAY[true], ARRAY[NULL::integer]);
SELECT status, error, info FROM dataflow.run ORDER BY id;
SELECT run_id IS NOT NULL AS claimed_again FROM dataflow._worker_claim('by_id', 5);
SELECT triggered, version, run_id > (SELECT min(id) FROM dataflow.run) AS its_own_run FROM dataflow._worker_prefect_runs();
-- a lease that ended meanwhile (cancelled) drops a late COMPLETED: 55000, nothing recorded
SELECT dataflow.cancel('o_id', '1');
SELECT item, recorded, error_code FROM dataflow._worker_results(
  ARRAY[pg_temp.tok('o_id', '1')], ARRAY['succeeded'], ARRAY[NULL::bigint], ARRAY[NULL::text],
  ARRAY['{"prefect": {"flow_run_id": "22222222-2222-4222-8222-222222222222", "state": "COMPLETED"}}'],
  ARRAY[NULL::text], ARRAY[NULL::text], ARRAY[true], ARRAY[NULL::integer]);
SELECT count(*) AS prefect_runs_left FROM dataflow._worker_prefect_runs();

-- A cancel that committed while create_flow_run was in flight: the stop has no flow run
-- id yet (create_unanswered: retried, not refused), and the create's answer, recorded
-- after the cancel, stores the flow run id all the same and makes the stop due again.
SELECT run_id = (SELECT max(id) FROM dataflow.run) AS last_run, engine, external_id, create_unanswered
  FROM dataflow._worker_stops(10, '{}');
UPDATE dataflow.engine_stop SET next_attempt_at = now() + interval '1 hour';  -- as after a 'retry'
SELECT item, recorded, error_code FROM dataflow._worker_results(
  ARRAY[pg_temp.tok('o_id', '1')], ARRAY['pending'], ARRAY[NULL::bigint], ARRAY[NULL::text],
  ARRAY['{"prefect": {"flow_run_id": "33333333-3333-4333-8333-333333333333"}}'], ARRAY[NULL::text],
  ARRAY[NULL::text], ARRAY[true], ARRAY[NULL::integer]);
SELECT r.status, r.external_id, r.info, s.next_attempt_at <= now() AS stop_due, s.outcome
  FROM dataflow.run r JOIN dataflow.engine_stop s ON s.run_id = r.id;
SELECT run_id = (SELECT max(id) FROM dataflow.run) AS last_run, external_id, create_unanswered
  FROM dataflow._worker_stops(10, '{}');

-- A reaped attempt's successor gets a key of its own (the run id is in it): it never
-- adopts the flow run of the attempt before, which may have FAILED meanwhile.
SELECT dataflow.expect('o_id', '2');
SELECT dataflow.register('raw', '2');
SELECT count(*) AS claimed FROM dataflow._worker_claim('by_id', 5);
SELECT item, recorded, error_code FROM dataflow._worker_results(
  ARRAY[pg_temp.tok('o_id', '2')], ARRAY['pending'], ARRAY[NULL::bigint], ARRAY[NULL::text],
  ARRAY['{"prefect": {"flow_run_id": "44444444-4444-4444-8444-444444444444"}}'], ARRAY[NULL::text],
  ARRAY[NULL::text], ARRAY[true], ARRAY[NULL::integer]);
CREATE TEMP TABLE reaped AS SELECT run_id, chunk_id, version FROM dataflow._worker_prefect_runs();
UPDATE dataflow.run SET deadline = now() - interval '1 second' WHERE id = (SELECT run_id FROM reaped);
SELECT dataflow.reap() AS reaped;
SELECT count(*) AS claimed_again FROM dataflow._worker_claim('by_id', 5);
SELECT p.run_id <> o.run_id AS new_run, p.chunk_id = o.chunk_id AS same_chunk, p.version = o.version AS same_version,
       p.triggered, p.external_id
  FROM dataflow._worker_prefect_runs() p, reaped o;

-- A flow run PAUSED (or CANCELLING) for longer than the job's lease_for fails its run,
-- not retried: it no longer holds a concurrency slot for ever.
SELECT item, recorded, error_code FROM dataflow._worker_results(
  ARRAY[pg_temp.tok('o_id', '2')], ARRAY['pending'], ARRAY[NULL::bigint], ARRAY[NULL::text],
  ARRAY['{"prefect": {"flow_run_id": "55555555-5555-4555-8555-555555555555"}}'], ARRAY[NULL::text],
  ARRAY[NULL::text], ARRAY[true], ARRAY[NULL::integer]);
SELECT item, recorded, error_code FROM dataflow._worker_results(
  ARRAY[pg_temp.tok('o_id', '2')], ARRAY['pending'], ARRAY[NULL::bigint], ARRAY[NULL::text],
  ARRAY['{"prefect": {"flow_run_id": "55555555-5555-4555-8555-555555555555", "state": "PAUSED", "state_name": "Paused"}}'],
  ARRAY[NULL::text], ARRAY[NULL::text], ARRAY[true], ARRAY[NULL::integer]);
SELECT r.status, r.info -> 'prefect' ->> 'state' AS state, (r.info -> 'prefect' ->> 'since') IS NOT NULL AS has_since
  FROM dataflow.run r WHERE r.external_id = '55555555-5555-4555-8555-555555555555';
-- paused for 6 minutes already (lease_for is 5)
UPDATE dataflow.run SET info = jsonb_set(info, '{prefect,since}', to_jsonb(now() - interval '6 minutes'))
 WHERE external_id = '55555555-5555-4555-8555-555555555555';
SELECT item, recorded, error_code FROM dataflow._worker_results(
  ARRAY[pg_temp.tok('o_id', '2')], ARRAY['pending'], ARRAY[NULL::bigint], ARRAY[NULL::text],
  ARRAY['{"prefect": {"flow_run_id": "55555555-5555-4555-8555-555555555555", "state": "PAUSED", "state_name": "Paused"}}'],
  ARRAY[NULL::text], ARRAY[NULL::text], ARRAY[true], ARRAY[NULL::integer]);
SELECT r.status, regexp_replace(r.error, 'since [^,]*,', 'since <t>,') AS error, r.info -> 'prefect' ->> 'state' AS state
  FROM dataflow.run r WHERE r.external_id = '55555555-5555-4555-8555-555555555555';
SELECT status FROM dataflow.chunks WHERE dataset = 'o_id' AND key = '2';
SELECT count(*) AS prefect_runs_left FROM dataflow._worker_prefect_runs();
