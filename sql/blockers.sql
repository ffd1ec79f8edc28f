-- blockers() and explain() on a queued chunk say where it is in its job's queue (in lease
-- order), how many runs of the job are live against which limit (the job's max_concurrency,
-- its pool's slots: the one that binds), and suggest starting a worker only when no worker
-- holds a lease of the job.
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\i sql/include/helpers.psql
-- q(ds, key): the chunk's own blocker row (depth 0)
CREATE FUNCTION pg_temp.q(ds text, k text) RETURNS text LANGUAGE sql AS $$
  SELECT regexp_replace(b.reason, '\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \w+', '<time>', 'g')
    FROM dataflow.blockers(ds, k) b WHERE b.depth = 0 $$;
CREATE FUNCTION pg_temp.ex(ds text, k text) RETURNS text LANGUAGE sql AS $$
  SELECT regexp_replace(e.evidence, '\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \w+', '<time>', 'g')
    FROM dataflow.explain(ds, k) e WHERE e.question = 'ready' $$;

-- ===== a job at its max_concurrency: 10 queued, 3 leased, 3 of 3 slots busy
SELECT dataflow.create_dataset('lim', 'int');
SELECT dataflow.create_job('j_lim', output => 'lim', max_concurrency => 3, backoff_min => '0 s', backoff_max => '0 s');
SELECT dataflow.expect('lim', '1', '10');
SELECT count(*) AS leased FROM dataflow.lease('j_lim', 'w1', max_chunks => 10);
-- keys 4..10 are queued: 4 is next, 9 has 5 ahead of it
SELECT pg_temp.q('lim', '4') AS key_4;
SELECT pg_temp.q('lim', '9') AS key_9;
SELECT pg_temp.ex('lim', '9') AS explain_9;
-- no suggestion to start a worker while workers hold leases of the job
SELECT count(*) AS suggests_a_worker FROM dataflow.blockers('lim', '9') WHERE reason LIKE '%start a worker%';
-- a failed attempt is retried behind the chunks queued before it: lease order, not key order
SELECT dataflow.fail(pg_temp.tok('lim', '2'), 'flaky');
SELECT pg_temp.q('lim', '2') AS retried_key_2;
SELECT pg_temp.q('lim', '9') AS key_9_still;

-- ===== below the limit, live runs: the workers lease it in turn
SELECT dataflow.alter_job('j_lim', max_concurrency => 10) IS NOT NULL AS raised;
SELECT pg_temp.q('lim', '9') AS key_9_raised;
-- no limit at all
SELECT dataflow.alter_job('j_lim', max_concurrency => -1) IS NOT NULL AS unlimited;
SELECT pg_temp.q('lim', '9') AS key_9_unlimited;

-- ===== paused says paused first
SELECT dataflow.pause_job('j_lim');
SELECT pg_temp.q('lim', '9') AS key_9_paused;
SELECT dataflow.resume_job('j_lim');

-- ===== no live run of the job: start a worker
SELECT dataflow.create_dataset('idle', 'int');
SELECT dataflow.create_job('j_idle', output => 'idle');
SELECT dataflow.expect('idle', '1', '5');
SELECT pg_temp.q('idle', '1') AS first;
SELECT pg_temp.q('idle', '3') AS third;
SELECT pg_temp.ex('idle', '3') AS explain_third;
-- a limit of 0 lets nothing start: that is the cause, not a missing worker
SELECT dataflow.alter_job('j_idle', max_concurrency => 0) IS NOT NULL AS zero;
SELECT pg_temp.q('idle', '3') AS third_limit_0;
SELECT dataflow.alter_job('j_idle', max_concurrency => -1) IS NOT NULL AS unlimited;

-- ===== a pool shared by two jobs: the pool binds, whichever job holds its slots
SELECT dataflow.create_pool('etl', 2);
SELECT dataflow.create_dataset('pa', 'int'), dataflow.create_dataset('pb', 'int');
SELECT dataflow.create_job('j_pa', output => 'pa', pool => 'etl'),
       dataflow.create_job('j_pb', output => 'pb', pool => 'etl', max_concurrency => 5);
SELECT dataflow.expect('pa', '1', '3'), dataflow.expect('pb', '1', '3');
SELECT count(*) AS leased_pa FROM dataflow.lease('j_pa', 'w1', max_chunks => 2);
-- j_pb holds no lease, but a worker would get nothing: the pool is full
SELECT pg_temp.q('pb', '2') AS pb_2;
SELECT pg_temp.q('pa', '3') AS pa_3;
-- one slot frees up, j_pb takes it: now both limits are shown, the pool's first
SELECT dataflow.complete(pg_temp.tok('pa', '1'));
SELECT count(*) AS leased_pb FROM dataflow.lease('j_pb', 'w2');
SELECT pg_temp.q('pb', '3') AS pb_3;
-- more slots: not at a limit any more
UPDATE dataflow.pool SET slots = 10 WHERE name = 'etl';
SELECT pg_temp.q('pb', '3') AS pb_3_roomy;

-- ===== dispatch jobs: the background worker leases them
SELECT dataflow.create_dataset('hd', 'int');
SELECT dataflow.create_job('j_hd', output => 'hd', dispatch => 'http', endpoint => 'http://127.0.0.1:9/x');
SELECT dataflow.expect('hd', '1', '2');
SELECT pg_temp.q('hd', '2') AS http_2;

-- ===== the count is bounded: beyond 10,000 chunks ahead it says so
SELECT dataflow.create_dataset('big', 'int');
SELECT dataflow.create_job('j_big', output => 'big');
SELECT dataflow.expect('big', '1', '10005');
SELECT pg_temp.q('big', '10000') AS at_10000;
SELECT pg_temp.q('big', '10001') AS at_10001;
SELECT pg_temp.q('big', '10005') AS at_10005;

-- ===== upstream: the root cause of a consumer is its input's queue position
SELECT dataflow.create_dataset('down', 'int');
SELECT dataflow.create_job('j_down', output => 'down');
SELECT dataflow.add_input('j_down', 'idle');
SELECT dataflow.expect('down', '3');
SELECT depth, dataset, key, status, reason FROM dataflow.blockers('down', '3');

-- ===== a wide window: thousands of queued inputs; the first 20 rows get the full reason
-- (each costs a bounded walk), the rest a short one that names how to ask for it
SELECT dataflow.create_dataset('wide', 'int');
SELECT dataflow.create_job('j_wide', output => 'wide');
SELECT dataflow.add_input('j_wide', 'big', mapping => 'window', lo => -9999, hi => 0);
SELECT dataflow.expect('wide', '10005');
SELECT count(*) AS rows, count(*) FILTER (WHERE reason LIKE '%position%') AS with_position,
       count(*) FILTER (WHERE reason LIKE '%more than 20 queued rows%') AS short
  FROM dataflow.blockers('wide', '10005') WHERE status = 'queued';
SELECT reason FROM dataflow.blockers('wide', '10005') WHERE status = 'queued' ORDER BY depth, key::int DESC LIMIT 1;

-- ===== stacked windows: the walk visits chunks, not paths. Five windows of 40 over a
-- source nobody registered yet: 40^5 = 102,400,000 paths from the last chunk down to the
-- source keys (the walk enumerated every one of them before); a chunk is now expanded once
-- per depth, and the answer names each chunk once.
SELECT dataflow.create_dataset('st' || i, 'int') > 0 AS ok FROM generate_series(0, 5) i;
SELECT dataflow.create_job('j_st' || i, output => 'st' || i) > 0 AS ok FROM generate_series(1, 5) i;
SELECT dataflow.add_input('j_st' || i, 'st' || (i - 1), mapping => 'window', lo => -39, hi => 0)
  FROM generate_series(1, 5) i;
SELECT dataflow.expect('st5', '1300') AS expected;
SET statement_timeout = '20s';
SELECT depth, dataset, count(*) AS chunks, min(key::int) AS lo, max(key::int) AS hi, min(status) AS status
  FROM dataflow.blockers('st5', '1300') GROUP BY 1, 2 ORDER BY 1, 2;
SELECT DISTINCT reason FROM dataflow.blockers('st5', '1300') WHERE dataset = 'st0';
RESET statement_timeout;

-- ===== a lease past its deadline (its worker died, nobody reaped yet) still holds its
-- slot, but the job is not "busy": the reason says so, and to start a worker
SELECT dataflow.create_dataset('dead', 'int') > 0 AS ok;
SELECT dataflow.create_job('j_dead', output => 'dead', max_concurrency => 1) > 0 AS ok;
SELECT dataflow.expect('dead', '1', '2');
SELECT count(*) AS leased FROM dataflow.lease('j_dead', 'gone', lease_for => '1 millisecond');
SELECT pg_sleep(0.01);
SELECT status, reason FROM dataflow.blockers('dead', '2') WHERE status = 'queued';
