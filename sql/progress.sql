-- progress and gaps tell the truth (issue 19 items 4 and 6): the rate counts only the
-- current completions of the job's (or backfill's) own chunks, the ETA is NULL when
-- nothing can run (with a blocked count beside it), pct and eta are rounded; gaps lists
-- holes (missing keys, failed, skipped without a reason, unregistered source keys) and
-- overdue keys, never in-flight work (queued, retrying, running, waiting for inputs).
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
RESET client_min_messages;
CREATE EXTENSION pg_dataflow;
\set SHOW_CONTEXT never
-- rate_ok(): the throughput buckets' current completions of the rate window equal a
-- scan of the chunks completed by a run in that window that no resubmit has reset
-- (both ways: neither over- nor undercounted)
CREATE FUNCTION pg_temp.rate_ok() RETURNS boolean LANGUAGE sql AS $$
  WITH buckets AS (
    SELECT m.dataset_id, m.backfill_id, sum(m.succeeded - m.superseded) AS n
      FROM dataflow.done_minute m
     WHERE m.minute >= date_trunc('minute', now()) - interval '9 minutes'
     GROUP BY 1, 2 HAVING sum(m.succeeded - m.superseded) <> 0),
  scan AS (
    SELECT c.dataset_id, c.backfill_id, count(*) AS n
      FROM dataflow.chunk c
     WHERE c.status IN ('ready', 'validated', 'invalid') AND c.run_id IS NOT NULL
       AND c.available_at >= date_trunc('minute', now()) - interval '9 minutes'
     GROUP BY 1, 2)
  SELECT NOT EXISTS (SELECT * FROM buckets EXCEPT SELECT * FROM scan)
     AND NOT EXISTS (SELECT * FROM scan EXCEPT SELECT * FROM buckets) $$;

-- 1. A job with no worker whose other chunks wait on a missing source
SELECT dataflow.create_dataset('p_src', 'date') > 0 AS ok;
SELECT dataflow.create_dataset('p_out', 'date') > 0 AS ok;
SELECT dataflow.create_job('p_job', output => 'p_out') > 0 AS ok;
SELECT dataflow.add_input('p_job', 'p_src');
SELECT dataflow.expect('p_out', '2024-01-01', '2024-01-03');
SELECT dataflow.register('p_src', '2024-01-01');
SELECT count(dataflow.complete(t.token)) AS completed FROM dataflow.lease('p_job', 'w', 10) t;
-- one of three done, two waiting for p_src keys nobody registered: nothing can run
SELECT kind, name, done, total, running, failed, pct, per_minute > 0 AS moving FROM dataflow.progress ORDER BY kind DESC, name;
SELECT name, eta IS NULL AS no_eta FROM dataflow.progress ORDER BY kind DESC, name;
SELECT name, blocked FROM dataflow.progress ORDER BY kind DESC, name;
-- pct has one decimal, per_minute at most one
SELECT name, scale(pct) AS pct_scale, scale(per_minute) <= 1 AS per_minute_rounded FROM dataflow.progress ORDER BY kind DESC, name;
SELECT pg_temp.rate_ok();

-- 2. A completion that a resubmit superseded is not progress
SELECT count(*) AS resubmitted FROM dataflow.resubmit('p_out', '2024-01-01');
SELECT name, done, per_minute, eta IS NULL AS no_eta, blocked FROM dataflow.progress ORDER BY kind DESC, name;
SELECT pg_temp.rate_ok();
-- the new version completes: one current completion again (two recorded, one superseded)
SELECT count(dataflow.complete(t.token)) AS completed FROM dataflow.lease('p_job', 'w', 10) t;
SELECT sum(succeeded) AS succeeded, sum(superseded) AS superseded
  FROM dataflow.done_minute m JOIN dataflow.dataset d ON d.id = m.dataset_id WHERE d.name = 'p_out';
SELECT name, per_minute > 0 AS moving FROM dataflow.progress ORDER BY kind DESC, name;
SELECT pg_temp.rate_ok();

-- 3. Something can run: an ETA in whole seconds
SELECT dataflow.register('p_src', '2024-01-02');
SELECT name, running, eta IS NOT NULL AS has_eta, eta = date_trunc('second', eta) AS whole_seconds, blocked
  FROM dataflow.progress ORDER BY kind DESC, name;
-- paused: the queued chunk cannot run either
SELECT dataflow.pause_job('p_job');
SELECT name, eta IS NULL AS no_eta, blocked FROM dataflow.progress ORDER BY kind DESC, name;
SELECT dataflow.resume_job('p_job');
-- a concurrency limit of 0 holds it as well
UPDATE dataflow.job SET max_concurrency = 0 WHERE name = 'p_job';
SELECT name, eta IS NULL AS no_eta, blocked FROM dataflow.progress ORDER BY kind DESC, name;
UPDATE dataflow.job SET max_concurrency = NULL WHERE name = 'p_job';
-- running counts as something that can run
CREATE TEMP TABLE p_lease AS SELECT * FROM dataflow.lease('p_job', 'w', 10);
SELECT name, running, eta IS NOT NULL AS has_eta, blocked FROM dataflow.progress ORDER BY kind DESC, name;
SELECT dataflow.complete(token) FROM p_lease;

-- 4. A backfill's rate is its own chunks' completions, not its datasets'
SELECT dataflow.expect('p_out', '2024-01-04', '2024-01-05');
SELECT name, from_key, done, total, per_minute > 0 AS moving, eta IS NULL AS no_eta, blocked
  FROM dataflow.progress WHERE kind = 'backfill' ORDER BY name;
SELECT dataflow.register('p_src', '2024-01-04');
SELECT count(dataflow.complete(t.token)) AS completed FROM dataflow.lease('p_job', 'w', 10) t;
SELECT name, done, per_minute > 0 AS moving, blocked FROM dataflow.progress WHERE kind = 'backfill' ORDER BY name;
SELECT pg_temp.rate_ok();
-- dataset_rate agrees with the job's row
SELECT r.per_minute = p.per_minute AS same_rate
  FROM dataflow.dataset_rate r JOIN dataflow.dataset d ON d.id = r.dataset_id
  JOIN dataflow.progress p ON p.kind = 'job' AND p.dataset = d.name WHERE d.name = 'p_out';

-- 5. gaps: holes, not retries or in-flight work
SELECT dataflow.create_dataset('g_src', 'date') > 0 AS ok;
SELECT dataflow.create_dataset('g_out', 'date') > 0 AS ok;
SELECT dataflow.create_job('g_job', output => 'g_out', max_attempts => 3,
                           backoff_min => '1 hour', backoff_max => '1 hour') > 0 AS ok;
SELECT dataflow.add_input('g_job', 'g_src');
-- 2024-01-02 of g_out is never expected: a missing key
SELECT dataflow.expect('g_out', '2024-01-01', '2024-01-01');
SELECT dataflow.expect('g_out', '2024-01-03', '2024-01-11');
-- every g_src key but 2024-01-10 arrives
SELECT count(dataflow.register('g_src', to_char(d, 'YYYY-MM-DD')))
  FROM generate_series('2024-01-01'::date, '2024-01-11', '1 day') d WHERE d <> '2024-01-10';
CREATE TEMP TABLE g_lease AS SELECT * FROM dataflow.lease('g_job', 'w', 20);
SELECT count(*) AS leased FROM g_lease;
SELECT count(dataflow.complete(token)) AS completed FROM g_lease WHERE key IN ('2024-01-01', '2024-01-09', '2024-01-11');
-- 01-03 failed for good; 01-04 failed once, retried in an hour
SELECT dataflow.fail(token, 'bad input', retry => false) FROM g_lease WHERE key = '2024-01-03';
SELECT dataflow.fail(token, 'timeout') FROM g_lease WHERE key = '2024-01-04';
-- 01-05 keeps running; 01-06 is queued again (resubmitted)
SELECT count(*) AS resubmitted FROM dataflow.resubmit('g_out', '2024-01-06');
-- 01-07 skipped, its reason lost; 01-08 skipped with a reason
SELECT dataflow.skip('g_out', '2024-01-07', 'no data');
UPDATE dataflow.chunk SET info = info - 'skip_reason'
 WHERE key = '2024-01-07' AND dataset_id = (SELECT id FROM dataflow.dataset WHERE name = 'g_out');
SELECT dataflow.skip('g_out', '2024-01-08', 'holiday: no trades');
SELECT key, status, attempts, not_before > now() AS backoff_pending
  FROM dataflow.chunk WHERE dataset_id = (SELECT id FROM dataflow.dataset WHERE name = 'g_out') ORDER BY key;
SELECT dataset, key, status, reason, period_end FROM dataflow.gaps ORDER BY dataset, key;

-- 6. overdue: in-flight keys past their period plus lateness are listed, once
SELECT dataflow.create_dataset('l_src', 'hour') > 0 AS ok;
SELECT dataflow.create_dataset('l_out', 'hour', lateness => '1 hour') > 0 AS ok;
SELECT dataflow.create_job('l_job', output => 'l_out', backoff_min => '1 hour', backoff_max => '1 hour') > 0 AS ok;
SELECT dataflow.add_input('l_job', 'l_src');
SELECT dataflow.expect('l_out', '2020-01-01T00', '2020-01-01T04');
SELECT dataflow.expect('l_out', '2999-01-01T00');
SELECT count(dataflow.register('l_src', k)) FROM unnest(ARRAY['2020-01-01T00', '2020-01-01T01', '2020-01-01T02', '2020-01-01T03']) k;
CREATE TEMP TABLE l_lease AS SELECT * FROM dataflow.lease('l_job', 'w', 20);
SELECT count(dataflow.complete(token)) AS completed FROM l_lease WHERE key IN ('2020-01-01T00', '2020-01-01T03');
SELECT dataflow.fail(token, 'timeout') FROM l_lease WHERE key = '2020-01-01T02';
SELECT dataset, key, status, reason, period_end FROM dataflow.gaps WHERE dataset LIKE 'l\_%' ORDER BY dataset, key;
SELECT pg_temp.rate_ok();

-- 6. The rate's time base. A first completion after 20 minutes of work is one per 10
-- minutes (the window), not 60 per minute: the rate runs from the lease of the earliest
-- run it counts (a running chunk's updated_at is its lease time; backdated here).
SELECT dataflow.create_dataset('t_out', 'int') > 0 AS ok;
SELECT dataflow.create_job('t_job', output => 't_out') > 0 AS ok;
SELECT dataflow.expect('t_out', '1');
SELECT count(*) AS leased FROM dataflow.lease('t_job', 'w', lease_for => '1 hour');
UPDATE dataflow.chunk SET updated_at = now() - interval '20 minutes'
 WHERE dataset_id = (SELECT id FROM dataflow.dataset WHERE name = 't_out');
SELECT dataflow.complete(r.token) FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id
 WHERE j.name = 't_job' AND r.status = 'running';
SELECT name, per_minute BETWEEN 0.1 AND 0.12 AS one_per_ten_minutes FROM dataflow.progress WHERE name = 't_job';
-- A completion counts when the clock records it, not at its transaction's start (a load
-- that completes in its own long transaction)
SELECT dataflow.create_dataset('v_out', 'int') > 0 AS ok;
SELECT dataflow.create_job('v_job', output => 'v_out') > 0 AS ok;
SELECT dataflow.expect('v_out', '1');
BEGIN;
SELECT count(*) AS leased FROM dataflow.lease('v_job', 'w');
SELECT pg_sleep(0.6);
SELECT dataflow.complete(r.token) FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id
 WHERE j.name = 'v_job' AND r.status = 'running';
SELECT min(m.first_at) >= now() + interval '0.5 seconds' AS recorded_by_the_clock
  FROM dataflow.done_minute m JOIN dataflow.dataset d ON d.id = m.dataset_id WHERE d.name = 'v_out';
COMMIT;
-- A partial resubmit of earlier completions does not inflate the rate of the rest: ten
-- completions moved 5 minutes back (buckets, chunks), two of them resubmitted now: 8 in
-- about 5 minutes, not 8 in the second since the resubmit
SELECT dataflow.create_dataset('u_out', 'int') > 0 AS ok;
SELECT dataflow.create_job('u_job', output => 'u_out') > 0 AS ok;
SELECT dataflow.expect('u_out', '1', '10');
SELECT count(dataflow.complete(t.token)) AS completed FROM dataflow.lease('u_job', 'w', 10) t;
UPDATE dataflow.done_minute m
   SET minute = m.minute - interval '5 minutes', first_at = m.first_at - interval '5 minutes',
       first_started_at = m.first_started_at - interval '5 minutes'
 WHERE m.dataset_id = (SELECT id FROM dataflow.dataset WHERE name = 'u_out');
UPDATE dataflow.chunk SET available_at = available_at - interval '5 minutes'
 WHERE dataset_id = (SELECT id FROM dataflow.dataset WHERE name = 'u_out');
SELECT count(*) AS resubmitted FROM dataflow.resubmit('u_out', '1', '2');
SELECT name, done, per_minute BETWEEN 1.3 AND 1.7 AS eight_in_five_minutes FROM dataflow.progress WHERE name = 'u_job';
SELECT pg_temp.rate_ok();
