-- The operator's questions: explain() on a chunk in every status, blockers()
-- followed upstream to the root cause, upstream()/downstream() lineage by
-- version, and graph_dot().
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\set SHOW_CONTEXT never
-- mask(): hide wall-clock times in evidence text
CREATE FUNCTION pg_temp.mask(t text) RETURNS text LANGUAGE sql AS $$
  SELECT regexp_replace(regexp_replace(t, '\d{4}-\d\d-\d\d \d\d:\d\d:\d\d( [A-Z+0-9:-]+)?', '<time>', 'g'),
                        '\d\d:\d\d:\d\d', '<time>', 'g') $$;
CREATE FUNCTION pg_temp.ex(ds text, k text) RETURNS TABLE(question text, ok boolean, evidence text)
LANGUAGE sql AS $$ SELECT question, ok, pg_temp.mask(evidence) FROM dataflow.explain(ds, k) $$;

-- raw (hour, source) -> daily (rollup, requires validation) -> weekly (window -6..0)
SELECT dataflow.create_dataset('raw', 'hour', location => 's3://lake/{dataset}/{key}/v{version}/') > 0 AS ok;
SELECT dataflow.create_dataset('daily', 'date', location => 's3://lake/{dataset}/{key}/v{version}/',
                               requires_validation => true) > 0 AS ok;
SELECT dataflow.create_dataset('weekly', 'date') > 0 AS ok;
SELECT dataflow.create_job('rollup', output => 'daily', max_attempts => 1) > 0 AS ok;
SELECT dataflow.add_input('rollup', 'raw', mapping => 'rollup');
SELECT dataflow.create_job('roll7', output => 'weekly', backoff_min => '1 hour', backoff_max => '1 hour') > 0 AS ok;
SELECT dataflow.add_input('roll7', 'daily', mapping => 'window', lo => -6, hi => 0);
SELECT dataflow.expect('weekly', '2024-01-07', '2024-01-08');
-- every hour of 2024-01-01 .. 2024-01-08 arrives, except 2024-01-08T05
SELECT count(dataflow.register('raw', to_char(t, 'YYYY-MM-DD"T"HH24'), row_count => 10))
  FROM generate_series('2024-01-01'::timestamp, '2024-01-08 23:00', '1 hour') t
 WHERE t <> '2024-01-08 05:00';

-- waiting: a source placeholder, and a consumer waiting on it
SELECT * FROM pg_temp.ex('raw', '2024-01-08T05');
SELECT * FROM pg_temp.ex('daily', '2024-01-08');
-- queued
SELECT * FROM pg_temp.ex('daily', '2024-01-01');
-- running
SELECT key FROM dataflow.lease('rollup', 'w1', 6);
SELECT * FROM pg_temp.ex('daily', '2024-01-01');
-- ready (not yet validated), and the input it read is held by no writer
SELECT dataflow.complete(token, row_count => 240) FROM dataflow.run r JOIN dataflow.chunk c ON c.id = r.chunk_id
 WHERE r.status = 'running' AND c.key IN ('2024-01-01', '2024-01-02', '2024-01-03', '2024-01-04');
SELECT * FROM pg_temp.ex('daily', '2024-01-01');
-- safe: a run reading raw/2024-01-05T00 holds it (daily 2024-01-05 is running)
SELECT question, ok, evidence ~ 'reader\(s\) hold it' AS held FROM pg_temp.ex('raw', '2024-01-05T00') WHERE question = 'safe';
-- failed (max_attempts 1)
SELECT dataflow.fail(token, 'disk full on node 7') FROM dataflow.run r JOIN dataflow.chunk c ON c.id = r.chunk_id
 WHERE r.status = 'running' AND c.key = '2024-01-05';
SELECT * FROM pg_temp.ex('daily', '2024-01-05');
-- validated and invalid
SELECT dataflow.validate('daily', '2024-01-01', true, '{"rows": 240}');
SELECT dataflow.validate('daily', '2024-01-02', false, '{"rows": 3, "expected": 240}');
SELECT * FROM pg_temp.ex('daily', '2024-01-01');
SELECT * FROM pg_temp.ex('daily', '2024-01-02');
-- skipped and cancelled
SELECT dataflow.skip('daily', '2024-01-07', 'holiday: no trading');
SELECT * FROM pg_temp.ex('daily', '2024-01-07');
SELECT dataflow.cancel('daily', '2024-01-06');
SELECT * FROM pg_temp.ex('daily', '2024-01-06');
-- correct: a ready chunk whose input was re-produced without cascade is stale
SELECT count(*) FROM dataflow.resubmit('raw', '2024-01-04T07', cascade => false);
SELECT dataflow.register('raw', '2024-01-04T07', row_count => 11);
SELECT question, ok, evidence FROM pg_temp.ex('daily', '2024-01-04') WHERE question = 'correct';
-- unknown chunk and bad key
SELECT * FROM dataflow.explain('daily', '2024-02-30');
SELECT * FROM dataflow.explain('daily', '2024-03-01');

-- blockers: weekly 2024-01-08 waits on daily chunks that are failed, invalid, cancelled,
-- and on a daily chunk whose source hour never arrived (skipped and ready ones do not block)
SELECT depth, dataset, key, status, pg_temp.mask(reason) AS reason FROM dataflow.blockers('weekly', '2024-01-08');
-- a paused job and a backoff show up as reasons
SELECT dataflow.resubmit('daily', '2024-01-05') IS NOT NULL AS resubmitted;
SELECT dataflow.pause_job('rollup');
SELECT depth, dataset, key, status, pg_temp.mask(reason) AS reason FROM dataflow.blockers('daily', '2024-01-05');
SELECT dataflow.resume_job('rollup');
-- a chunk that is available has no blockers beyond itself
SELECT depth, dataset, key, status, reason FROM dataflow.blockers('daily', '2024-01-01');

-- lineage: daily 2024-01-04 read 24 hours at version 1; one of them is now version 2
SELECT depth, dataset, key, version, current_version, status, relation
  FROM dataflow.upstream('daily', '2024-01-04') WHERE version <> current_version OR key = '2024-01-04T00';
SELECT count(*) FROM dataflow.upstream('daily', '2024-01-04');
-- downstream of an hour: its day, then the two weekly windows that include that day
SELECT depth, dataset, key, version, current_version, status, relation FROM dataflow.downstream('raw', '2024-01-01T00');

-- the graph
SELECT dataflow.graph_dot();
