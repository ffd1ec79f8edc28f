-- schedule(): expects keys of datasets with a cadence up to now (UTC) and
-- records late events once per chunk version; prune(): bounded history.
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\set SHOW_CONTEXT never
SELECT dataflow.create_dataset('clicks', 'hour', cadence => '1 hour', lateness => '2 hours') > 0 AS ok;
SELECT dataflow.create_dataset('clicks_daily', 'date', cadence => '1 day') > 0 AS ok;
SELECT dataflow.create_dataset('weekly_dump', 'date', cadence => '7 days') > 0 AS ok;
SELECT dataflow.create_dataset('batches', 'int') > 0 AS ok;
-- cadence needs a date/hour dataset and at least one key's length
SELECT dataflow.create_dataset('bad1', 'int', cadence => '1 day');
SELECT dataflow.create_dataset('bad2', 'date', cadence => '1 hour');
SELECT dataflow.create_job('agg', output => 'clicks_daily') > 0 AS ok;
SELECT dataflow.add_input('agg', 'clicks', mapping => 'rollup');
-- first call: the current hour/day of each cadenced dataset (and the day's 24 hours upstream)
SELECT dataflow.schedule() >= 3 AS created;
SELECT d.name, count(*) AS chunks,
       bool_or(c.key = to_char(now() AT TIME ZONE 'UTC', CASE d.key_kind WHEN 'date' THEN 'YYYY-MM-DD'
                                                                   ELSE 'YYYY-MM-DD"T"HH24' END)) AS has_current_key
  FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id GROUP BY d.name ORDER BY d.name;
-- idempotent within the same period (late events aside, nothing new)
SELECT count(*) AS before FROM dataflow.chunk \gset
SELECT dataflow.schedule() >= 0 AS ran;
SELECT count(*) = :before AS unchanged FROM dataflow.chunk;
-- late: hours of today whose period ended more than 2 hours ago get one late event each, once
SELECT count(*) = (SELECT count(*) FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
                    WHERE d.name = 'clicks' AND dataflow._period_end('hour', c.ord) + interval '2 hours' < now())
       AS late_events_match
  FROM dataflow.event WHERE to_status = 'late';
SELECT count(*) AS late_before FROM dataflow.event WHERE to_status = 'late' \gset
SELECT dataflow.schedule() >= 0 AS ran;
SELECT count(*) = :late_before AS recorded_once FROM dataflow.event WHERE to_status = 'late';
-- catching up after an outage: a dataset whose newest chunk is 5 days old gets the 5 missing days
SELECT dataflow.create_dataset('catchup', 'date', cadence => '1 day') > 0 AS ok;
SELECT dataflow.register('catchup', to_char((now() AT TIME ZONE 'UTC')::date - 5, 'YYYY-MM-DD'));
SELECT dataflow.schedule() >= 5 AS created;
SELECT count(*) AS catchup_chunks FROM dataflow.chunks WHERE dataset = 'catchup';

-- prune: events and finished runs older than the retention go; the producing run of a chunk stays
SELECT dataflow.create_dataset('p_src', 'int') > 0 AS ok;
SELECT dataflow.create_dataset('p_out', 'int') > 0 AS ok;
SELECT dataflow.create_job('p_job', output => 'p_out', backoff_min => '0', backoff_max => '0') > 0 AS ok;
SELECT dataflow.add_input('p_job', 'p_src');
SELECT dataflow.expect('p_out', '1');
SELECT dataflow.register('p_src', '1');
SELECT dataflow.fail(token, 'first try failed') FROM dataflow.lease('p_job', 'w');
SELECT dataflow.complete(token) FROM dataflow.lease('p_job', 'w');
-- age everything by a year (tests may rewrite history; the event log forbids UPDATE, so re-insert)
ALTER TABLE dataflow.event DISABLE TRIGGER event_append_only;
WITH u AS (UPDATE dataflow.event SET at = at - interval '1 year' RETURNING 1) SELECT count(*) > 0 AS aged FROM u;
ALTER TABLE dataflow.event ENABLE TRIGGER event_append_only;
WITH u AS (UPDATE dataflow.run SET finished_at = finished_at - interval '1 year' RETURNING 1) SELECT count(*) AS aged_runs FROM u;
SELECT count(*) AS runs_before FROM dataflow.run;
SELECT dataflow.prune(interval '30 days') > 0 AS pruned;
SELECT count(*) AS events_left FROM dataflow.event;
SELECT status FROM dataflow.run ORDER BY id;
SELECT dataflow.prune(interval '0 days');
-- the event log is append-only
UPDATE dataflow.event SET actor = 'me';
