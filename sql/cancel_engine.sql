-- Cancel reaches the engine (issue 15 item 3): cancel() and pause_job(cancel_running => true)
-- of a running chunk of an http or airflow job record a stop request for the worker in the
-- same transaction (rolled back with it); an http job without cancel_endpoint gets none to
-- send and an engine_stop event says so; a pull job none at all. create_job/alter_job
-- validate cancel_endpoint (http only, an http(s) URL; the admin's). The cancelled token
-- is refused (55000) for heartbeat, complete and fail. skip() of a running chunk asks for a stop too.
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\i sql/include/helpers.psql
SELECT dataflow.create_dataset('raw', 'int');
SELECT dataflow.register('raw', '1');
SELECT dataflow.register('raw', '2');
SELECT dataflow.create_connection('af', 'airflow', 'http://airflow.example:8080', auth => 'basic',
                                  username => 'admin', secret => 'pw');
SELECT dataflow.create_dataset('o_http', 'int');
SELECT dataflow.create_dataset('o_bare', 'int');
SELECT dataflow.create_dataset('o_af', 'int');
SELECT dataflow.create_dataset('o_pull', 'int');
SELECT dataflow.create_dataset('o_bad', 'int');

-- cancel_endpoint: validated like endpoint, for http jobs only; a refused call changes nothing
SELECT pg_temp.fails($$SELECT dataflow.create_job('bad', 'o_bad', dispatch => 'http',
  endpoint => 'http://engine.example/run', cancel_endpoint => 'ftp://engine.example/cancel')$$) AS bad_scheme;
SELECT pg_temp.fails($$SELECT dataflow.create_job('bad', 'o_bad', dispatch => 'http',
  endpoint => 'http://engine.example/run', cancel_endpoint => 'http://user:pw@engine.example/cancel')$$) AS credentials;
SELECT pg_temp.fails($$SELECT dataflow.create_job('bad', 'o_bad', dispatch => 'http',
  endpoint => 'http://engine.example/run', cancel_endpoint => E'http://engine.example/c\nX-Evil: 1')$$) AS newline;
SELECT pg_temp.fails($$SELECT dataflow.create_job('bad', 'o_bad', dispatch => 'airflow', connection => 'af',
  target => 'etl', cancel_endpoint => 'http://engine.example/cancel')$$) AS airflow_job;
SELECT pg_temp.fails($$SELECT dataflow.create_job('bad', 'o_bad', cancel_endpoint => 'http://engine.example/cancel')$$) AS pull_job;

SELECT dataflow.create_job('j_http', 'o_http', dispatch => 'http', endpoint => 'http://engine.example/run',
                           cancel_endpoint => 'https://engine.example/cancel') > 0 AS created;
SELECT dataflow.create_job('j_bare', 'o_bare', dispatch => 'http', endpoint => 'http://engine.example/run') > 0 AS created;
SELECT dataflow.create_job('j_af', 'o_af', dispatch => 'airflow', connection => 'af', target => 'etl') > 0 AS created;
SELECT dataflow.create_job('j_pull', 'o_pull') > 0 AS created;
SELECT dataflow.add_input(j, 'raw') FROM unnest(ARRAY['j_http', 'j_bare', 'j_af', 'j_pull']) j;
SELECT name, cancel_endpoint FROM dataflow.job ORDER BY name;

-- alter_job: the admin sets, changes and removes it ('' removes); the operator may not;
-- the event says only that it changed (the URL is the admin's)
SELECT pg_temp.fails($$SELECT dataflow.alter_job('j_bare', cancel_endpoint => 'not a url')$$) AS alter_bad;
SELECT pg_temp.fails($$SELECT dataflow.alter_job('j_af', cancel_endpoint => 'http://engine.example/cancel')$$) AS alter_airflow;
SET ROLE dataflow_operator;
SELECT pg_temp.err($$SELECT dataflow.alter_job('j_bare', cancel_endpoint => 'http://engine.example/cancel')$$) AS operator;
RESET ROLE;
SELECT dataflow.alter_job('j_bare', cancel_endpoint => 'http://engine.example/cancel');
SELECT dataflow.alter_job('j_bare', cancel_endpoint => 'http://engine.example/cancel2');
SELECT dataflow.alter_job('j_bare', cancel_endpoint => '');
SELECT dataflow.alter_job('j_bare', cancel_endpoint => '');
SELECT detail FROM dataflow.event WHERE to_status = 'altered' ORDER BY id;
SELECT name, cancel_endpoint FROM dataflow.job WHERE name = 'j_bare';

SELECT dataflow.expect(d, '1', '2') FROM unnest(ARRAY['o_http', 'o_bare', 'o_af', 'o_pull']) d;
SELECT count(*) AS leased FROM (
  SELECT dataflow.lease(j, 'w', 2) FROM unnest(ARRAY['j_http', 'j_bare', 'j_pull']) j) l;
-- the worker's claim gives an Airflow run its dag_run_id (external_id)
SELECT count(*) AS claimed FROM dataflow._worker_claim('j_af', 2);
SELECT token AS http_token FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id
 WHERE j.name = 'j_http' ORDER BY r.id LIMIT 1 \gset

-- a cancel rolled back leaves no stop request (and no run or chunk change)
SELECT pg_temp.fingerprint() AS fp \gset
BEGIN;
SELECT dataflow.cancel('o_http', '1');
SELECT count(*) AS stop_requests_inside FROM dataflow.engine_stop;
ROLLBACK;
SELECT pg_temp.fingerprint() = :'fp' AS rolled_back_whole;

-- committed: the run is cancelled at once, the request is due, the worker will send it
SELECT dataflow.cancel('o_http', '1');
SELECT dataflow.cancel('o_af', '1');
SELECT dataflow.cancel('o_bare', '1');
SELECT dataflow.cancel('o_pull', '1');
SELECT j.name AS job, r.status AS run, c.status AS chunk, s.requested_by, s.reason, s.attempts, s.outcome,
       s.done_at IS NOT NULL AS done, s.next_attempt_at <= now() AS due
  FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id JOIN dataflow.chunk c ON c.id = r.chunk_id
  LEFT JOIN dataflow.engine_stop s ON s.run_id = r.id
 WHERE c.key = '1' ORDER BY j.name;
-- the event log: who cancelled, and for the http job without cancel_endpoint that nothing was sent
SELECT d.name AS dataset, e.from_status, e.to_status, e.actor, e.detail
  FROM dataflow.event e JOIN dataflow.dataset d ON d.id = e.dataset_id
 WHERE e.to_status IN ('cancelled', 'engine_stop') ORDER BY e.id;

-- the old token is refused: the engine's late answer cannot complete the chunk
SELECT pg_temp.err(format('SELECT dataflow.complete(%L)', :'http_token')) AS late_complete;
SELECT pg_temp.err(format('SELECT dataflow.heartbeat(%L)', :'http_token')) AS late_heartbeat;
SELECT pg_temp.err(format('SELECT dataflow.fail(%L, %L)', :'http_token', 'x')) AS late_fail;

-- what the worker claims: due requests with the engine's address, never one it is sending
SELECT engine, job, dataset, key, reason, attempts, external_id = 'dataflow-' || run_id AS dag_run_id_ok,
       target, url, auth FROM dataflow._worker_stops(10, '{}') ORDER BY engine;
SELECT count(*) AS excluded FROM dataflow._worker_stops(10, ARRAY(SELECT run_id FROM dataflow.engine_stop));
-- recording: a retry is due again later, a final answer ends it; each attempt is an event
SELECT run_id AS af_run FROM dataflow._worker_stops(10, '{}') WHERE engine = 'airflow' \gset
SELECT run_id AS http_run FROM dataflow._worker_stops(10, '{}') WHERE engine = 'http' \gset
SELECT dataflow._worker_stop_results(ARRAY[:af_run, :http_run]::bigint[], '{stopped,retry}', '{200,500}',
                                     '{"{\"state\": \"failed\"}",kaboom}', '{NULL,30}');
SELECT engine, attempts FROM dataflow._worker_stops(10, '{}');
SELECT s.outcome, s.attempts, s.last_http_status, s.last_answer, s.next_attempt_at > now() + interval '20 seconds' AS later
  FROM dataflow.engine_stop s ORDER BY s.run_id;
SELECT e.actor, e.detail FROM dataflow.event e WHERE e.to_status = 'engine_stop' AND e.actor = 'bgworker' ORDER BY e.id;
-- a repeated result for a finished request is ignored; bad arrays are refused
SELECT dataflow._worker_stop_results(ARRAY[:af_run]::bigint[], '{refused}', '{404}', '{x}', '{NULL}') AS ignored;
SELECT pg_temp.fails($$SELECT dataflow._worker_stop_results('{1}', '{maybe}', '{200}', '{x}', '{NULL}')$$) AS bad_outcome;
SELECT pg_temp.fails($$SELECT dataflow._worker_stop_results('{1,2}', '{stopped}', '{200}', '{x}', '{NULL}')$$) AS bad_lengths;

-- pause_job(cancel_running => true): both running runs of the job are cancelled and their
-- stops requested; without it running leases go on
SELECT pg_temp.fails($$SELECT dataflow.pause_job('j_af', cancel_running => NULL)$$) AS null_flag;
SELECT dataflow.pause_job('j_http');
SELECT count(*) AS still_running FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id
 WHERE j.name = 'j_http' AND r.status = 'running';
SELECT dataflow.resume_job('j_http');
SELECT dataflow.create_dataset('o_af2', 'int');
SELECT dataflow.create_job('j_af2', 'o_af2', dispatch => 'airflow', connection => 'af', target => 'etl2') > 0 AS created;
SELECT dataflow.add_input('j_af2', 'raw');
SELECT dataflow.expect('o_af2', '1', '2');
SELECT count(*) AS claimed FROM dataflow._worker_claim('j_af2', 2);
BEGIN;
SELECT dataflow.pause_job('j_af2', cancel_running => true);
SELECT count(*) AS requested_inside FROM dataflow.engine_stop s JOIN dataflow.run r ON r.id = s.run_id
  JOIN dataflow.job j ON j.id = r.job_id WHERE j.name = 'j_af2' AND s.reason = 'pause_job';
ROLLBACK;
SET ROLE dataflow_operator;
SELECT dataflow.pause_job('j_af2', cancel_running => true);
RESET ROLE;
SELECT c.key, c.status AS chunk, r.status AS run, s.reason, s.requested_by, s.outcome IS NULL AS due
  FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id JOIN dataflow.chunk c ON c.id = r.chunk_id
  JOIN dataflow.engine_stop s ON s.run_id = r.id
 WHERE j.name = 'j_af2' ORDER BY r.id;
SELECT paused FROM dataflow.job WHERE name = 'j_af2';
SELECT detail FROM dataflow.event WHERE to_status = 'paused' ORDER BY id;
SELECT count(*) AS cancelled_by_pause FROM dataflow.event WHERE to_status = 'cancelled' AND detail->>'reason' = 'pause_job';

-- the table and the worker's functions are nobody else's
SELECT has_table_privilege(r, 'dataflow.engine_stop', 'SELECT') AS can_read, r
  FROM unnest(ARRAY['dataflow_reader', 'dataflow_worker', 'dataflow_operator', 'dataflow_admin']) r;
SELECT has_function_privilege('dataflow_operator', 'dataflow._worker_stops(integer, bigint[])', 'EXECUTE') AS op_claims;

-- skip of a running chunk cancels its run and asks its engine to stop too
SELECT dataflow.skip('o_http', '2', 'known empty');
SELECT c.status AS chunk, r.status AS run, s.reason, s.outcome IS NULL AS due
  FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id JOIN dataflow.chunk c ON c.id = r.chunk_id
  JOIN dataflow.engine_stop s ON s.run_id = r.id
 WHERE j.name = 'j_http' AND c.key = '2';
