-- lease(): batches (max_chunks) in order, not_before, job max_concurrency and pool slots
-- counted from live runs and freed by complete/fail/reap/cancel, limits changed by UPDATE taking
-- effect on the next lease, paused jobs, and the task it hands over: inputs with exact versions
-- and locations for same, window, rollup and latest mappings.
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\i sql/include/helpers.psql
-- live(job): runs of a job that hold a lease now
CREATE FUNCTION pg_temp.live(j text) RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM dataflow.runs WHERE job = j AND status = 'running' $$;

-- ===== batches and order: max_chunks caps the batch; the oldest queued chunks go first
SELECT dataflow.create_dataset('b', 'int', location => 'mem://{dataset}/{key}@{version}');
SELECT dataflow.create_job('j_b', output => 'b', params => '{"x": [1, 2]}', lease_for => '1 hour',
                           backoff_min => '1 hour', backoff_max => '1 hour');
SELECT dataflow.expect('b', '1', '5');
SELECT run_id > 0 AS has_run, token IS NOT NULL AS has_token, job, dataset, key, version, attempt,
       output_location, inputs, params, deadline BETWEEN now() + '59 min' AND now() + '61 min' AS job_lease_for
  FROM dataflow.lease('j_b', 'w1', max_chunks => 3);
-- lease_for given to lease() overrides the job's
SELECT key, deadline BETWEEN now() + '9 s' AND now() + '11 s' AS ten_seconds
  FROM dataflow.lease('j_b', 'w2', max_chunks => 1000, lease_for => '10 s');
SELECT count(*) AS nothing_left FROM dataflow.lease('j_b', 'w3', max_chunks => 10);
-- each leased chunk has exactly one live run, with its worker
SELECT key, worker, status, attempt FROM dataflow.runs WHERE dataset = 'b' ORDER BY key;

-- ===== not_before: a chunk in backoff is passed over, the others are not
SELECT dataflow.fail(pg_temp.tok('b', '1'), 'transient');
SELECT dataflow.resubmit('b', '2') IS NOT NULL AS resubmitted;   -- b:2 queued again, no backoff
SELECT key, not_before > now() AS in_backoff FROM dataflow.chunks WHERE dataset = 'b' AND status = 'queued' ORDER BY key;
SELECT key, version FROM dataflow.lease('j_b', 'w1', 10);

-- ===== job max_concurrency: counted from live runs, freed by complete / fail / cancel / reap
SELECT dataflow.create_dataset('mc', 'int');
SELECT dataflow.create_job('j_mc', output => 'mc', max_concurrency => 2, max_attempts => 5,
                           backoff_min => '0 s', backoff_max => '0 s');
SELECT dataflow.expect('mc', '1', '10');
SELECT key FROM dataflow.lease('j_mc', 'w', 10);                   -- 2 of 10
SELECT count(*) AS over_limit FROM dataflow.lease('j_mc', 'w', 10);
SELECT dataflow.complete(pg_temp.tok('mc', '1'));
SELECT key FROM dataflow.lease('j_mc', 'w', 10);                   -- complete freed one slot
SELECT dataflow.fail(pg_temp.tok('mc', '2'), 'x');
SELECT key FROM dataflow.lease('j_mc', 'w', 10);                   -- fail freed one slot (mc:2 retried later in order)
SELECT dataflow.cancel('mc', '3');
SELECT key FROM dataflow.lease('j_mc', 'w', 10);                   -- cancel freed one slot
SELECT pg_temp.live('j_mc') AS live;
-- a lease past its deadline still holds its slot until reap() expires it
SELECT key FROM dataflow.lease('j_mc', 'w', 10);
UPDATE dataflow.job SET max_concurrency = 3 WHERE name = 'j_mc';
SELECT key FROM dataflow.lease('j_mc', 'w-short', 1, lease_for => '1 millisecond');
SELECT pg_sleep(0.01);
SELECT count(*) AS expired_still_counted FROM dataflow.lease('j_mc', 'w', 10);
SELECT dataflow.reap() AS reaped;
SELECT key FROM dataflow.lease('j_mc', 'w', 10);                   -- the slot is free again (oldest queued first)
-- UPDATE of the limit takes effect on the next lease: up ...
UPDATE dataflow.job SET max_concurrency = 5 WHERE name = 'j_mc';
SELECT key FROM dataflow.lease('j_mc', 'w', 10);
SELECT pg_temp.live('j_mc') AS live;
-- ... and down: nothing new while live >= limit, running leases are left alone
UPDATE dataflow.job SET max_concurrency = 1 WHERE name = 'j_mc';
SELECT (SELECT count(*) FROM dataflow.lease('j_mc', 'w', 10)) AS leased, pg_temp.live('j_mc') AS live;
UPDATE dataflow.job SET max_concurrency = 0 WHERE name = 'j_mc';
SELECT dataflow.complete(token) FROM dataflow.run r WHERE r.status = 'running'
   AND r.job_id = (SELECT id FROM dataflow.job WHERE name = 'j_mc');
SELECT count(*) AS leased_at_zero FROM dataflow.lease('j_mc', 'w', 10);
UPDATE dataflow.job SET max_concurrency = NULL WHERE name = 'j_mc';   -- unlimited
SELECT count(*) AS leased_unlimited FROM dataflow.lease('j_mc', 'w', 10);
SELECT * FROM pg_temp.st('mc');

-- ===== pool slots: shared by two jobs, counted from their live runs
SELECT dataflow.create_pool('pl', 3);
SELECT dataflow.create_dataset('pa', 'int'), dataflow.create_dataset('pb', 'int');
SELECT dataflow.create_job('j_pa', output => 'pa', pool => 'pl'),
       dataflow.create_job('j_pb', output => 'pb', pool => 'pl', max_concurrency => 10);
SELECT dataflow.expect('pa', '1', '5'), dataflow.expect('pb', '1', '5');
SELECT count(*) AS pa_leased FROM dataflow.lease('j_pa', 'w', 2);
SELECT count(*) AS pb_leased FROM dataflow.lease('j_pb', 'w', 5);   -- only 1 slot left
SELECT count(*) AS pa_full FROM dataflow.lease('j_pa', 'w', 5);
SELECT dataflow.complete(pg_temp.tok('pa', '1'));
SELECT count(*) AS pb_after_complete FROM dataflow.lease('j_pb', 'w', 5);
UPDATE dataflow.pool SET slots = 5 WHERE name = 'pl';
SELECT count(*) AS pa_after_update FROM dataflow.lease('j_pa', 'w', 5);
UPDATE dataflow.pool SET slots = 0 WHERE name = 'pl';
SELECT count(*) AS at_zero FROM dataflow.lease('j_pa', 'w', 5) UNION ALL SELECT count(*) FROM dataflow.lease('j_pb', 'w', 5);
SELECT job, count(*) AS live FROM dataflow.runs WHERE status = 'running' AND job IN ('j_pa', 'j_pb') GROUP BY job ORDER BY job;

-- ===== a paused job leases nothing; resumed it does
SELECT dataflow.create_dataset('pz', 'int');
SELECT dataflow.create_job('j_pz', output => 'pz');
SELECT dataflow.expect('pz', '1');
SELECT dataflow.pause_job('j_pz');
SELECT count(*) AS paused FROM dataflow.lease('j_pz', 'w');
UPDATE dataflow.job SET paused = false WHERE name = 'j_pz';        -- a plain UPDATE works too
SELECT count(*) AS resumed FROM dataflow.lease('j_pz', 'w');

-- ===== inputs of several datasets, ordered by dataset then key, with versions and locations
SELECT dataflow.create_dataset('in_a', 'date', location => 'gs://a/{key}/v{version}'),
       dataflow.create_dataset('in_b', 'date'),
       dataflow.create_dataset('fan', 'date');
SELECT dataflow.create_job('j_fan', output => 'fan');
SELECT dataflow.add_input('j_fan', 'in_b'), dataflow.add_input('j_fan', 'in_a');
SELECT dataflow.expect('fan', '2024-05-01');
SELECT dataflow.register('in_a', '2024-05-01', row_count => 3, checksum => 'aa');
SELECT * FROM pg_temp.st('fan');                                   -- one of two inputs: still waiting
SELECT dataflow.register('in_b', '2024-05-01', location => 'file:///b.csv');
SELECT dataflow.register('in_a', '2024-05-01', row_count => 4, checksum => 'ab');   -- a new version of in_a
SELECT jsonb_pretty(inputs) FROM dataflow.lease('j_fan', 'w');
-- lineage records exactly those versions
SELECT inputs FROM dataflow.runs WHERE dataset = 'fan';

-- ===== window inputs: the output key needs key-2 .. key
SELECT dataflow.create_dataset('w_src', 'date'), dataflow.create_dataset('w_out', 'date');
SELECT dataflow.create_job('j_w', output => 'w_out');
SELECT dataflow.add_input('j_w', 'w_src', 'window', lo => -2, hi => 0);
SELECT dataflow.expect('w_out', '2024-03-01', '2024-03-02');
SELECT * FROM pg_temp.st('w_src', 'w_out');
SELECT dataflow.register('w_src', k) FROM unnest(ARRAY['2024-02-28', '2024-02-29', '2024-03-01']) k;
SELECT * FROM pg_temp.st('w_out');
SELECT key, inputs FROM dataflow.lease('j_w', 'w', 10);
-- the dep edges make a window input's consumers every output key whose window holds it
SELECT dataset, key, old_status, new_status, depth FROM dataflow.resubmit('w_src', '2024-03-01', dry_run => true);
SELECT dataset, key, depth FROM dataflow.resubmit('w_src', '2024-02-28', dry_run => true);

-- ===== rollup inputs: a date needs its 24 hours
SELECT dataflow.create_dataset('h_src', 'hour'), dataflow.create_dataset('d_out', 'date');
SELECT dataflow.create_job('j_r', output => 'd_out');
SELECT dataflow.add_input('j_r', 'h_src', 'rollup');
SELECT dataflow.expect('d_out', '2024-01-01');
SELECT count(*) AS hours, min(key), max(key) FROM dataflow.chunks WHERE dataset = 'h_src';
SELECT count(*) AS registered FROM (SELECT dataflow.register('h_src', k)
  FROM dataflow._key_range('hour', '2024-01-01T00', '2024-01-01T22', 100) r(k, o)) x;
SELECT * FROM pg_temp.st('d_out');                                 -- 1 hour missing
SELECT dataflow.register('h_src', '2024-01-01 23');
SELECT key, jsonb_array_length(inputs) AS n, inputs->0->>'key' AS first, inputs->23->>'key' AS last,
       (SELECT count(DISTINCT e->>'dataset') FROM jsonb_array_elements(inputs) e) AS datasets
  FROM dataflow.lease('j_r', 'w');
-- and every hour has the day as its consumer
SELECT dataset, key, depth FROM dataflow.resubmit('h_src', '2024-01-01T13', dry_run => true);

-- ===== latest: the newest available chunk of a dimension; consumers wait for the first one
SELECT dataflow.create_dataset('dim', 'int', requires_validation => true), dataflow.create_dataset('ev', 'date'),
       dataflow.create_dataset('fact', 'date');
SELECT dataflow.create_job('j_fact', output => 'fact');
SELECT dataflow.add_input('j_fact', 'ev'), dataflow.add_input('j_fact', 'dim', 'latest');
SELECT dataflow.expect('fact', '2024-06-01', '2024-06-02');
SELECT dataflow.register('ev', '2024-06-01'), dataflow.register('ev', '2024-06-02');
SELECT * FROM pg_temp.st('fact');                                  -- no dim yet: waiting
SELECT dataflow.register('dim', '1');
SELECT * FROM pg_temp.st('fact');                                  -- dim:1 only ready, validated needed
SELECT dataflow.validate('dim', '1', true);
SELECT * FROM pg_temp.st('fact');
SELECT dataflow.register('dim', '3'), dataflow.register('dim', '2');
SELECT dataflow.validate('dim', '2', true);                        -- dim:3 is newer but not validated
SELECT key, inputs FROM dataflow.lease('j_fact', 'w');
SELECT dataflow.validate('dim', '3', true);
SELECT key, inputs FROM dataflow.lease('j_fact', 'w');
-- a queued consumer whose latest input lost its only available chunk (resubmitted) is not
-- leased without it; it is once the dimension is available again, with the new version
SELECT dataflow.create_dataset('ld', 'int'), dataflow.create_dataset('lf', 'int');
SELECT dataflow.create_job('j_lf', output => 'lf');
SELECT dataflow.add_input('j_lf', 'ld', 'latest');
SELECT dataflow.register('ld', '1'), dataflow.expect('lf', '1', '2');
SELECT * FROM pg_temp.st('ld', 'lf');
SELECT key, new_status, version FROM dataflow.resubmit('ld', '1');
SELECT count(*) AS leased_without_dimension FROM dataflow.lease('j_lf', 'w', 10);
SELECT dataflow.register('ld', '1');
SELECT key, inputs->0->>'key' AS dim_key, inputs->0->>'version' AS dim_version FROM dataflow.lease('j_lf', 'w', 10);
