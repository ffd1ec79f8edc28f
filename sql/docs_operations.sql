-- generated from docs/operations.md by scripts/doc-examples.sh; do not edit
-- setup: start from a fresh copy of the extension
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
\set VERBOSITY terse

SELECT dataflow.create_dataset('raw_events', 'date', location => 's3://lake/raw/{key}/');
SELECT dataflow.create_dataset('clean_events', 'date', location => 's3://lake/clean/{key}/v{version}/');
SELECT dataflow.create_dataset('daily_report', 'date', location => 's3://lake/report/{key}/v{version}/',
                               lateness => '6 hours');

SELECT dataflow.create_job('clean', output => 'clean_events',
                           backoff_min => '1 minute', backoff_max => '30 minutes');
SELECT dataflow.add_input('clean', 'raw_events');

SELECT dataflow.create_pool('warehouse', 2);
SELECT dataflow.create_job('report', output => 'daily_report', pool => 'warehouse', max_attempts => 2,
                           backoff_min => '5 minutes', backoff_max => '1 hour');
SELECT dataflow.add_input('report', 'clean_events', mapping => 'window', lo => -1, hi => 0);

-- In this guide we also play the workers. A real worker keeps the token that
-- lease() hands it; here we read it back from dataflow.run (admin only).
CREATE FUNCTION pg_temp.token(dataset text, key text) RETURNS uuid LANGUAGE sql
RETURN (SELECT r.token FROM dataflow.run r JOIN dataflow.chunks c ON c.chunk_id = r.chunk_id
         WHERE c.dataset = token.dataset AND c.key = token.key ORDER BY r.id DESC LIMIT 1);
-- Times change from run to run: the examples print them as <time>.
CREATE FUNCTION pg_temp.notime(t text) RETURNS text LANGUAGE sql
RETURN regexp_replace(t, '\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?( UTC|[+-]\d\d(:\d\d)?)?|\d\d:\d\d:\d\d',
                      '<time>', 'g');
-- A call that is refused: its SQLSTATE and message, times as <time>.
CREATE FUNCTION pg_temp.refused(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || pg_temp.notime(SQLERRM);
END $$;

SELECT dataflow.expect('daily_report', '2024-03-01', '2024-03-07');

SELECT kind, name, dataset, from_key, to_key, done, total, running, failed, pct, blocked
  FROM dataflow.progress ORDER BY kind, name;
SELECT dataset, job, chunks, waiting, queued, running, available, failed
  FROM dataflow.datasets ORDER BY dataset;

SELECT to_char(d, 'YYYY-MM-DD') AS key,
       dataflow.register('raw_events', to_char(d, 'YYYY-MM-DD'), row_count => 1000) AS version
  FROM generate_series(date '2024-02-29', date '2024-03-07', interval '1 day') AS d
 WHERE d <> date '2024-03-05';

SELECT t.key, t.version, t.output_location, dataflow.complete(t.token, row_count => 990) AS result
  FROM dataflow.lease('clean', 'worker-1', max_chunks => 10) AS t
 ORDER BY t.key;

SELECT t.key, jsonb_path_query_array(t.inputs, '$[*].key') AS input_keys,
       dataflow.complete(t.token, row_count => 24) AS result
  FROM dataflow.lease('report', 'worker-2', max_chunks => 10) AS t
 ORDER BY t.key;

SELECT t.key, dataflow.complete(t.token, row_count => 24) AS result
  FROM dataflow.lease('report', 'worker-2', max_chunks => 10) AS t
 ORDER BY t.key;
SELECT kind, name, done, total, running, failed, pct FROM dataflow.progress ORDER BY kind, name;

SELECT question, ok, pg_temp.notime(evidence) AS evidence
  FROM dataflow.explain('daily_report', '2024-03-05');

SELECT * FROM dataflow.blockers('daily_report', '2024-03-05');

SELECT dataset, key, status, reason, period_end FROM dataflow.gaps ORDER BY dataset, key;

SELECT question, ok, pg_temp.notime(evidence) AS evidence
  FROM dataflow.explain('daily_report', '2024-03-02');
SELECT depth, dataset, key, version, current_version, status, location, relation
  FROM dataflow.upstream('daily_report', '2024-03-02');
SELECT depth, dataset, key, status, relation FROM dataflow.downstream('raw_events', '2024-03-02');

SELECT dataflow.skip('raw_events', '2024-03-05', 'collector outage: no events that day');
SELECT dataset, key, status, row_count, info ->> 'skip_reason' AS reason
  FROM dataflow.chunks WHERE key = '2024-03-05' ORDER BY dataset;

SELECT t.key, dataflow.complete(t.token, row_count => 0) AS result
  FROM dataflow.lease('clean', 'worker-1', max_chunks => 10) AS t;
SELECT key, status FROM dataflow.chunks WHERE dataset = 'daily_report' ORDER BY key;

SELECT dataflow.pause_job('report');
SELECT count(*) AS leased FROM dataflow.lease('report', 'worker-2', max_chunks => 10);
SELECT reason FROM dataflow.blockers('daily_report', '2024-03-05');
SELECT job, paused, queued, running FROM dataflow.jobs ORDER BY job;
SELECT dataflow.resume_job('report');

SELECT at, dataset, key, to_status, actor,
       detail->'engine_stop'->>'outcome' AS outcome, detail->'engine_stop'->>'status' AS http_status
  FROM dataflow.events
 WHERE to_status IN ('cancelled', 'engine_stop') ORDER BY event_id;

SELECT key FROM dataflow.lease('report', 'worker-2', max_chunks => 10) ORDER BY key;
SELECT job, concurrency_in_use, concurrency_limit, pool, pool_slots, pool_in_use
  FROM dataflow.jobs ORDER BY job;
SELECT reason FROM dataflow.blockers('daily_report', '2024-03-06');

UPDATE dataflow.pool SET slots = 4 WHERE name = 'warehouse';
SELECT key FROM dataflow.lease('report', 'worker-3', max_chunks => 10) ORDER BY key;

UPDATE dataflow.job SET max_concurrency = 2 WHERE name = 'report';
SELECT count(*) AS leased FROM dataflow.lease('report', 'worker-3');
SELECT job, concurrency_in_use, concurrency_limit FROM dataflow.jobs WHERE job = 'report';
UPDATE dataflow.job SET max_concurrency = NULL WHERE name = 'report';

SELECT dataflow.alter_job('report', max_concurrency => 4, priority => 10);

SELECT dataflow.fail(pg_temp.token('daily_report', '2024-03-07'), 'warehouse: connection reset by peer');

SELECT dataflow.fail(pg_temp.token('daily_report', '2024-03-06'), 'report.sql: division by zero',
                     retry => false);

SELECT dataflow.heartbeat(pg_temp.token('daily_report', '2024-03-05'), '10 milliseconds') > now() AS alive;
SELECT pg_sleep(0.1);
SELECT dataflow.reap() AS expired;

SELECT pg_temp.refused($$SELECT dataflow.complete(pg_temp.token('daily_report', '2024-03-05'))$$) AS late_complete;
SELECT key, status, attempts, not_before > now() AS in_backoff, error
  FROM dataflow.chunks WHERE dataset = 'daily_report' AND key >= '2024-03-05' ORDER BY key;
SELECT run_id, key, attempt, worker, status, pg_temp.notime(error) AS error
  FROM dataflow.runs WHERE dataset = 'daily_report' AND status <> 'succeeded' ORDER BY run_id;
SELECT depth, dataset, key, status, reason FROM dataflow.blockers('daily_report', '2024-03-06');

SELECT * FROM dataflow.resubmit('clean_events', '2024-03-02', '2024-03-03', dry_run => true);

SELECT * FROM dataflow.resubmit('clean_events', '2024-03-02', '2024-03-03');

SELECT t.key, t.version, dataflow.complete(t.token, row_count => 990) AS result
  FROM dataflow.lease('clean', 'worker-1', max_chunks => 10) AS t ORDER BY t.key;
SELECT t.key, t.version, t.output_location, dataflow.complete(t.token, row_count => 24) AS result
  FROM dataflow.lease('report', 'worker-2', max_chunks => 10) AS t ORDER BY t.key;

SELECT * FROM dataflow.resubmit('clean_events', '2024-03-01', cascade => false);
SELECT t.key, t.version, dataflow.complete(t.token, row_count => 990) AS result
  FROM dataflow.lease('clean', 'worker-1') AS t;

SELECT question, ok, evidence FROM dataflow.explain('daily_report', '2024-03-02')
 WHERE question = 'correct';

UPDATE dataflow.chunks SET status = 'resubmit' WHERE dataset = 'daily_report' AND status = 'failed';
SELECT key, status, version, attempts, error FROM dataflow.chunks
 WHERE dataset = 'daily_report' AND key = '2024-03-06';

UPDATE dataflow.chunks SET status = 'ready' WHERE dataset = 'daily_report' AND key = '2024-03-06';

SELECT key, version, jsonb_path_query_array(inputs, '$[*].key') AS input_keys
  FROM dataflow.lease('report', 'worker-4');

SELECT * FROM dataflow.resubmit('clean_events', '2024-03-06', cascade => false);
SELECT count(*) AS leased FROM dataflow.lease('clean', 'worker-1');
SELECT question, ok, evidence FROM dataflow.explain('clean_events', '2024-03-06') WHERE question = 'safe';
SELECT reason FROM dataflow.blockers('clean_events', '2024-03-06');

SELECT dataflow.complete(pg_temp.token('daily_report', '2024-03-06'), row_count => 24);
SELECT t.key, t.version, dataflow.complete(t.token, row_count => 990) AS result
  FROM dataflow.lease('clean', 'worker-1') AS t;
SELECT t.key, t.version, dataflow.complete(t.token, row_count => 24) AS result
  FROM dataflow.lease('report', 'worker-4', max_chunks => 10) AS t ORDER BY t.key;

SELECT dataflow.register('raw_events', '2024-03-04', row_count => 1200) AS version;
SELECT dataset, key, status, version FROM dataflow.chunks
 WHERE key IN ('2024-03-04', '2024-03-05') ORDER BY dataset, key;

SELECT e.version, e.from_status, e.to_status, e.actor, e.detail ->> 'reason' AS reason
  FROM dataflow.event e JOIN dataflow.dataset d ON d.id = e.dataset_id
 WHERE d.name = 'daily_report' AND e.key = '2024-03-06'
 ORDER BY e.id;

SELECT dataflow.create_dataset('meter_readings', 'hour', cadence => '1 hour', lateness => '30 minutes');
SELECT dataflow.schedule() AS created;
SELECT dataset, key = to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24') AS current_hour, status
  FROM dataflow.chunks WHERE dataset = 'meter_readings';
SELECT dataflow.reap() AS expired, dataflow.prune() AS pruned;

SELECT dataset, key, version, location, consumers FROM dataflow.deletable ORDER BY dataset, key;

CREATE ROLE grafana LOGIN PASSWORD 'change-me' IN ROLE dataflow_reader;
SET ROLE grafana;
SELECT dataset, chunks, waiting, queued, running, available, failed, newest_available_key
  FROM dataflow.datasets ORDER BY dataset;
SELECT dataset, status, count(*) FROM dataflow.chunks GROUP BY dataset, status ORDER BY dataset, status;
SELECT job, running, queued, done, total, concurrency_in_use, pool_in_use, succeeded_last_hour
  FROM dataflow.jobs ORDER BY job;
SELECT count(*) AS late_or_missing FROM dataflow.gaps;
SELECT token FROM dataflow.run;
SELECT dataflow.resubmit('daily_report', '2024-03-01');
RESET ROLE;

SELECT dataflow.alter_job('report', secret_params => '{"warehouse_password": "pw-7Rx2"}');
SELECT job, secret_params FROM dataflow.jobs WHERE job = 'report';

SELECT detail FROM dataflow.events WHERE to_status = 'altered' ORDER BY event_id DESC LIMIT 1;
SELECT dataflow.alter_job('report', secret_params => '{}');

CREATE ROLE oncall LOGIN IN ROLE dataflow_operator;
SET ROLE oncall;
SELECT count(*) AS would_touch FROM dataflow.resubmit('daily_report', '2024-03-07', dry_run => true);
UPDATE dataflow.pool SET slots = 2 WHERE name = 'warehouse';
UPDATE dataflow.job SET max_concurrency = 4 WHERE name = 'report';
SELECT dataflow.create_dataset('scratch', 'int');
RESET ROLE;

-- cleanup: roles are cluster-wide, the extension does not own them
DROP ROLE grafana;
DROP ROLE oncall;

SELECT dataflow.create_dataset('changes', 'int');
SELECT dataflow.create_dataset('changes_loaded', 'int');
SELECT dataflow.create_job('load_changes', output => 'changes_loaded', batch_max_rows => 50000);
SELECT dataflow.add_input('load_changes', 'changes', mapping => 'incremental', max_chunks => 500);
-- the source comes back: 2,000 change files of 200 records each arrive at once
SELECT count(dataflow.register('changes', g::text, row_count => 200)) AS arrived
  FROM generate_series(1, 2000) g;
-- batch 1: 250 files (50,000 rows, the row cap)
SELECT key AS batch, params #>> '{batch,lowest_key}' AS lowest, params #>> '{batch,highest_key}' AS highest,
       params #>> '{batch,rows}' AS rows
  FROM dataflow.lease('load_changes', 'loader-1');

SELECT count(*) AS pending_chunks
  FROM dataflow.incremental_pending p JOIN dataflow.job j ON j.id = p.job_id
 WHERE j.name = 'load_changes';

SELECT dataflow.alter_job('load_changes', batch_max_rows => 200000);
SELECT dataflow.alter_input('load_changes', 'changes', max_chunks => 600);
SELECT job, batch_max_rows, inputs FROM dataflow.jobs WHERE job = 'load_changes';
SELECT dataflow.complete(r.token, row_count => 50000)
  FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id
 WHERE j.name = 'load_changes' AND r.status = 'running';
-- batch 2: the next 600 files (max_chunks binds now)
SELECT key AS batch, params #>> '{batch,lowest_key}' AS lowest, params #>> '{batch,highest_key}' AS highest,
       params #>> '{batch,rows}' AS rows
  FROM dataflow.lease('load_changes', 'loader-1');

SELECT dataflow.create_dataset('orders', 'date'), dataflow.create_dataset('refunds', 'date'),
       dataflow.create_dataset('sales', 'date');
SELECT dataflow.create_job('sum_sales', output => 'sales');
SELECT dataflow.add_input('sum_sales', 'orders', mapping => 'window', lo => -2, hi => 0);
SELECT count(dataflow.register('orders', d::date::text)) AS orders
  FROM generate_series(date '2024-05-01', date '2024-05-07', interval '1 day') d;
SELECT dataflow.expect('sales', '2024-05-03', '2024-05-07');
SELECT dataflow.complete(t.token) FROM dataflow.lease('sum_sales', 'w', max_chunks => 2) t;
SELECT key AS running FROM dataflow.lease('sum_sales', 'w');

SELECT pg_temp.refused($$SELECT dataflow.add_input('sum_sales', 'refunds')$$);

SELECT dataflow.add_input('sum_sales', 'refunds', wait => true);
SELECT key, status, unmet_inputs FROM dataflow.chunks WHERE dataset = 'sales' ORDER BY key;

SELECT key, built_version, current_version, changes FROM dataflow.outdated ORDER BY key;
SELECT ok, pg_temp.notime(evidence) AS evidence
  FROM dataflow.explain('sales', '2024-05-03') WHERE question = 'correct';

SELECT dataflow.complete(r.token) FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id
 WHERE j.name = 'sum_sales' AND r.status = 'running';
SELECT dataflow.alter_input('sum_sales', 'orders', lo => -6);

SELECT dataset, key, old_status, new_status, depth
  FROM dataflow.resubmit('sales', '2024-05-03', '2024-05-05', dry_run => true);
SELECT count(*) AS resubmitted
  FROM dataflow.resubmit('sales', '2024-05-03', '2024-05-05', reason => 'refunds and a 7-day window');
SELECT count(*) AS outdated FROM dataflow.outdated;

SELECT version, change FROM dataflow.job_definition
 WHERE job_id = (SELECT id FROM dataflow.job WHERE name = 'sum_sales') ORDER BY version;

SELECT dataflow.register('refunds', '2024-05-01');
SELECT dataflow.create_job('ingest_refunds', output => 'refunds');
SELECT status, count(*) FROM dataflow.chunks WHERE dataset = 'refunds' GROUP BY status ORDER BY status;
SELECT dataset, key, built_version, current_version FROM dataflow.outdated WHERE dataset = 'refunds';
