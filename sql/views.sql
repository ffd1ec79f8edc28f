-- Status views: datasets, jobs, progress, gaps, deletable, chunks, runs. The
-- counts come from incrementally maintained counters; after every step the
-- counters must equal a full count of the chunk table.
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\set SHOW_CONTEXT never
-- counters_ok(): the counter-based view agrees with counting dataflow.chunk
CREATE FUNCTION pg_temp.counters_ok() RETURNS boolean LANGUAGE sql AS $$
  SELECT NOT EXISTS (
    SELECT d.dataset, v.status, v.n
      FROM dataflow.datasets d
     CROSS JOIN LATERAL (VALUES ('waiting', d.waiting), ('queued', d.queued), ('running', d.running),
                                ('ready', d.ready), ('validated', d.validated), ('invalid', d.invalid),
                                ('failed', d.failed), ('skipped', d.skipped), ('cancelled', d.cancelled),
                                ('total', d.chunks)) v(status, n)
    EXCEPT
    SELECT ds.name, s.status, (SELECT count(*) FROM dataflow.chunk c
                                WHERE c.dataset_id = ds.id AND (c.status = s.status OR s.status = 'total'))
      FROM dataflow.dataset ds
     CROSS JOIN (VALUES ('waiting'), ('queued'), ('running'), ('ready'), ('validated'), ('invalid'),
                        ('failed'), ('skipped'), ('cancelled'), ('total')) s(status)) $$;

SELECT dataflow.create_dataset('src', 'date', location => '/data/{dataset}/{key}/v{version}') > 0 AS ok;
SELECT dataflow.create_dataset('mid', 'date', location => '/data/{dataset}/{key}/v{version}') > 0 AS ok;
SELECT dataflow.create_dataset('top', 'date') > 0 AS ok;
SELECT dataflow.create_pool('db', 2) > 0 AS ok;
SELECT dataflow.create_job('make_mid', output => 'mid', pool => 'db', max_concurrency => 3,
                           backoff_min => '0', backoff_max => '0') > 0 AS ok;
SELECT dataflow.add_input('make_mid', 'src');
SELECT dataflow.create_job('make_top', output => 'top') > 0 AS ok;
SELECT dataflow.add_input('make_top', 'mid');
SELECT dataflow.expect('top', '2024-03-01', '2024-03-10');
SELECT pg_temp.counters_ok();
SELECT dataset, key_kind, job, chunks, waiting, queued, available, newest_available_key, freshness_lag IS NULL AS never
  FROM dataflow.datasets ORDER BY dataset;

-- sources arrive for 8 of the 10 days (03-04 and 03-07 missing)
SELECT count(dataflow.register('src', to_char(d, 'YYYY-MM-DD'), row_count => 100))
  FROM generate_series('2024-03-01'::date, '2024-03-10', '1 day') d WHERE d NOT IN ('2024-03-04', '2024-03-07');
SELECT pg_temp.counters_ok();
-- the pool (2 slots) caps the job (limit 3): two leases, and the jobs view says so
SELECT count(*) FROM dataflow.lease('make_mid', 'w', 5);
SELECT job, output, running, queued, waiting, failed, done, total, concurrency_in_use, concurrency_limit,
       pool, pool_slots, pool_in_use FROM dataflow.jobs ORDER BY job;
SELECT dataflow.complete(token, row_count => 100) FROM dataflow.run WHERE status = 'running';
SELECT count(*) FROM dataflow.lease('make_mid', 'w', 5);
SELECT dataflow.fail(token, 'boom', retry => false) FROM dataflow.run WHERE status = 'running';
SELECT pg_temp.counters_ok();
SELECT dataset, chunks, waiting, queued, running, ready, failed, available, newest_available_key,
       last_available_at IS NOT NULL AS arrived, freshness_lag >= interval '0' AS lag_ok
  FROM dataflow.datasets ORDER BY dataset;
SELECT job, running, queued, waiting, failed, done, total, succeeded_last_hour, failed_last_hour
  FROM dataflow.jobs ORDER BY job;
-- progress: per job and per backfill (the backfill created 30 chunks over 3 datasets)
SELECT kind, name, dataset, from_key, to_key, done, total, running, failed, pct, per_minute > 0 AS moving,
       (eta IS NOT NULL) = (per_minute > 0) AS eta_when_moving
  FROM dataflow.progress ORDER BY kind DESC, name;

-- gaps: holes between the oldest and newest available src keys, and no overdue without lateness
SELECT * FROM dataflow.gaps ORDER BY dataset, key;
-- overdue: a dataset with a lateness whose expected keys are long past
SELECT dataflow.create_dataset('late_src', 'hour', lateness => '1 hour') > 0 AS ok;
SELECT dataflow.expect('late_src', '2020-01-01T00', '2020-01-01T02');
SELECT dataflow.register('late_src', '2020-01-01T00');
SELECT dataset, key, status, reason, period_end FROM dataflow.gaps WHERE dataset = 'late_src' ORDER BY key;

-- deletable: mid chunks whose every consumer (top) is available and built from that version
SELECT count(*) FROM dataflow.deletable;
SELECT count(dataflow.complete(t.token)) FROM dataflow.lease('make_top', 'w', 10) t;
SELECT dataset, key, version, location, consumers FROM dataflow.deletable ORDER BY key;
-- a resubmitted consumer makes its input not deletable any more
SELECT count(*) FROM dataflow.resubmit('top', '2024-03-01');
SELECT dataset, key FROM dataflow.deletable ORDER BY key;
SELECT pg_temp.counters_ok();

-- runs: lineage per run, and no tokens anywhere in the views
SELECT job, dataset, key, attempt, worker, status, error, inputs FROM dataflow.runs ORDER BY run_id LIMIT 3;
SELECT count(*) FROM information_schema.columns
 WHERE table_schema = 'dataflow' AND column_name IN ('token', 'secret')
   AND table_name IN (SELECT table_name FROM information_schema.views WHERE table_schema = 'dataflow');

-- bulk changes keep the counters exact: a cascading resubmit of a range, and drop_dataset
SELECT count(*) FROM dataflow.resubmit('src', '2024-03-01', '2024-03-10');
SELECT pg_temp.counters_ok();
SELECT dataflow.drop_dataset('late_src');
SELECT pg_temp.counters_ok();
SELECT dataset FROM dataflow.datasets ORDER BY 1;
