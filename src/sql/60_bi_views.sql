-- Status views for psql and BI tools (Metabase, Grafana, Superset). The
-- dataset, job and progress figures come from the incrementally maintained
-- counters (chunk_count, done_minute), so they stay fast at millions of chunks.

-- When a key's period ends: the next day or hour; NULL for int/text keys.
CREATE FUNCTION dataflow._period_end(kind text, ord bigint) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE kind
  WHEN 'date' THEN pg_catalog.to_timestamp(((ord OPERATOR(pg_catalog.+) 1) OPERATOR(pg_catalog.*) 86400)::double precision)
  WHEN 'hour' THEN pg_catalog.to_timestamp(((ord OPERATOR(pg_catalog.+) 1) OPERATOR(pg_catalog.*) 3600)::double precision)
  END;

CREATE VIEW dataflow.dataset_counts AS
SELECT cc.dataset_id,
       sum(cc.waiting)::bigint AS waiting, sum(cc.queued)::bigint AS queued, sum(cc.running)::bigint AS running,
       sum(cc.ready)::bigint AS ready, sum(cc.validated)::bigint AS validated, sum(cc.invalid)::bigint AS invalid,
       sum(cc.failed)::bigint AS failed, sum(cc.skipped)::bigint AS skipped, sum(cc.cancelled)::bigint AS cancelled,
       (sum(cc.waiting) + sum(cc.queued) + sum(cc.running) + sum(cc.ready) + sum(cc.validated) + sum(cc.invalid)
        + sum(cc.failed) + sum(cc.skipped) + sum(cc.cancelled) + sum(cc.resubmit))::bigint AS total,
       max(cc.newest_ord) AS newest_ord, max(cc.newest_at) AS newest_at
  FROM dataflow.chunk_count cc
 GROUP BY cc.dataset_id;
COMMENT ON VIEW dataflow.dataset_counts IS 'Chunk counts by status per dataset id (summed over counter shards)';
COMMENT ON COLUMN dataflow.dataset_counts.dataset_id IS 'Dataset id';
COMMENT ON COLUMN dataflow.dataset_counts.waiting IS 'Chunks waiting for inputs';
COMMENT ON COLUMN dataflow.dataset_counts.queued IS 'Chunks ready to be leased';
COMMENT ON COLUMN dataflow.dataset_counts.running IS 'Chunks leased';
COMMENT ON COLUMN dataflow.dataset_counts.ready IS 'Chunks produced';
COMMENT ON COLUMN dataflow.dataset_counts.validated IS 'Chunks produced and validated';
COMMENT ON COLUMN dataflow.dataset_counts.invalid IS 'Chunks that failed validation';
COMMENT ON COLUMN dataflow.dataset_counts.failed IS 'Chunks failed with no attempts left';
COMMENT ON COLUMN dataflow.dataset_counts.skipped IS 'Chunks declared empty';
COMMENT ON COLUMN dataflow.dataset_counts.cancelled IS 'Chunks cancelled by an operator';
COMMENT ON COLUMN dataflow.dataset_counts.total IS 'All chunks';
COMMENT ON COLUMN dataflow.dataset_counts.newest_ord IS 'Ordinal of the newest key that has been available';
COMMENT ON COLUMN dataflow.dataset_counts.newest_at IS 'When a chunk last became available';

CREATE VIEW dataflow.datasets AS
SELECT d.name AS dataset, d.key_kind, j.name AS job, d.requires_validation, d.location,
       coalesce(k.total, 0) AS chunks,
       coalesce(k.waiting, 0) AS waiting, coalesce(k.queued, 0) AS queued, coalesce(k.running, 0) AS running,
       coalesce(k.ready, 0) AS ready, coalesce(k.validated, 0) AS validated, coalesce(k.invalid, 0) AS invalid,
       coalesce(k.failed, 0) AS failed, coalesce(k.skipped, 0) AS skipped, coalesce(k.cancelled, 0) AS cancelled,
       coalesce(k.ready + k.validated + k.skipped, 0) AS available,
       CASE WHEN d.key_kind <> 'text' AND k.newest_ord IS NOT NULL
            THEN dataflow._key_text(d.key_kind, k.newest_ord) END AS newest_available_key,
       k.newest_at AS last_available_at,
       now() - k.newest_at AS freshness_lag,
       d.cadence, d.lateness
  FROM dataflow.dataset d
  LEFT JOIN dataflow.dataset_counts k ON k.dataset_id = d.id
  LEFT JOIN dataflow.job j ON j.output_id = d.id;
COMMENT ON VIEW dataflow.datasets IS 'One row per dataset: chunk counts by status, newest available key, freshness';
COMMENT ON COLUMN dataflow.datasets.dataset IS 'Dataset name';
COMMENT ON COLUMN dataflow.datasets.key_kind IS 'date, hour, int or text';
COMMENT ON COLUMN dataflow.datasets.job IS 'Producing job (NULL for a source dataset)';
COMMENT ON COLUMN dataflow.datasets.requires_validation IS 'Whether consumers wait for validation by default';
COMMENT ON COLUMN dataflow.datasets.location IS 'Location template';
COMMENT ON COLUMN dataflow.datasets.chunks IS 'All chunks';
COMMENT ON COLUMN dataflow.datasets.waiting IS 'Chunks waiting for inputs';
COMMENT ON COLUMN dataflow.datasets.queued IS 'Chunks runnable, not leased yet';
COMMENT ON COLUMN dataflow.datasets.running IS 'Chunks leased now';
COMMENT ON COLUMN dataflow.datasets.ready IS 'Chunks produced (not validated)';
COMMENT ON COLUMN dataflow.datasets.validated IS 'Chunks validated';
COMMENT ON COLUMN dataflow.datasets.invalid IS 'Chunks that failed validation';
COMMENT ON COLUMN dataflow.datasets.failed IS 'Chunks failed for good (attempts spent or fatal)';
COMMENT ON COLUMN dataflow.datasets.skipped IS 'Chunks declared empty';
COMMENT ON COLUMN dataflow.datasets.cancelled IS 'Chunks cancelled by an operator';
COMMENT ON COLUMN dataflow.datasets.available IS 'ready + validated + skipped';
COMMENT ON COLUMN dataflow.datasets.newest_available_key IS 'Newest key that has been available (date/hour/int)';
COMMENT ON COLUMN dataflow.datasets.last_available_at IS 'When a chunk of this dataset last became available';
COMMENT ON COLUMN dataflow.datasets.freshness_lag IS 'Time since a chunk last became available';
COMMENT ON COLUMN dataflow.datasets.cadence IS 'Expected cadence of new keys';
COMMENT ON COLUMN dataflow.datasets.lateness IS 'Allowed delay after a key''s period before it is late';

CREATE VIEW dataflow.jobs AS
SELECT j.name AS job, d.name AS output, j.dispatch, j.paused, j.priority,
       coalesce(k.running, 0) AS running, coalesce(k.queued, 0) AS queued, coalesce(k.waiting, 0) AS waiting,
       coalesce(k.failed, 0) AS failed,
       coalesce(k.ready + k.validated + k.skipped, 0) AS done, coalesce(k.total, 0) AS total,
       live.in_use AS concurrency_in_use, j.max_concurrency AS concurrency_limit,
       p.name AS pool, p.slots AS pool_slots,
       (SELECT count(*) FROM dataflow.run r WHERE r.pool_id = p.id AND r.status = 'running') AS pool_in_use,
       coalesce(h.succeeded, 0) AS succeeded_last_hour, coalesce(h.failed, 0) AS failed_last_hour,
       j.max_attempts, j.lease_for, j.backoff_min, j.backoff_max,
       coalesce((SELECT jsonb_object_agg(k.name, '********'::text)
                   FROM dataflow.job_secret s, jsonb_object_keys(s.params) k(name)
                  WHERE s.job_id = j.id), '{}') AS secret_params,
       j.batch_max_rows,
       coalesce((SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                          'dataset', ids.name, 'mapping', ji.mapping, 'lo', ji.lo, 'hi', ji.hi,
                          'require', ji.require, 'max_chunks', ji.max_chunks)) ORDER BY ids.name)
                   FROM dataflow.job_input ji JOIN dataflow.dataset ids ON ids.id = ji.dataset_id
                  WHERE ji.job_id = j.id), '[]') AS inputs
  FROM dataflow.job j
  JOIN dataflow.dataset d ON d.id = j.output_id
  LEFT JOIN dataflow.dataset_counts k ON k.dataset_id = d.id
  LEFT JOIN dataflow.pool p ON p.id = j.pool_id
  LEFT JOIN LATERAL (SELECT count(*) AS in_use FROM dataflow.run r
                      WHERE r.job_id = j.id AND r.status = 'running') live ON true
  LEFT JOIN LATERAL (SELECT sum(m.succeeded)::bigint AS succeeded, sum(m.failed)::bigint AS failed
                       FROM dataflow.done_minute m
                      WHERE m.dataset_id = d.id AND m.minute >= now() - interval '1 hour') h ON true;
COMMENT ON VIEW dataflow.jobs IS
  'One row per job: chunks by state, concurrency in use (live leases) against its limit and pool, throughput';
COMMENT ON COLUMN dataflow.jobs.job IS 'Job name';
COMMENT ON COLUMN dataflow.jobs.output IS 'Dataset it produces';
COMMENT ON COLUMN dataflow.jobs.dispatch IS 'pull, http, airflow or prefect';
COMMENT ON COLUMN dataflow.jobs.paused IS 'Paused jobs are not leased';
COMMENT ON COLUMN dataflow.jobs.priority IS 'Higher first when the dispatcher chooses between jobs';
COMMENT ON COLUMN dataflow.jobs.running IS 'Output chunks running';
COMMENT ON COLUMN dataflow.jobs.queued IS 'Output chunks runnable';
COMMENT ON COLUMN dataflow.jobs.waiting IS 'Output chunks waiting for inputs';
COMMENT ON COLUMN dataflow.jobs.failed IS 'Output chunks failed for good';
COMMENT ON COLUMN dataflow.jobs.done IS 'Output chunks available (ready, validated, skipped)';
COMMENT ON COLUMN dataflow.jobs.total IS 'All output chunks';
COMMENT ON COLUMN dataflow.jobs.concurrency_in_use IS 'Live leases of this job';
COMMENT ON COLUMN dataflow.jobs.concurrency_limit IS 'max_concurrency (NULL: unlimited)';
COMMENT ON COLUMN dataflow.jobs.pool IS 'Pool the job draws slots from';
COMMENT ON COLUMN dataflow.jobs.pool_slots IS 'Slots of that pool';
COMMENT ON COLUMN dataflow.jobs.pool_in_use IS 'Live leases in that pool (all its jobs)';
COMMENT ON COLUMN dataflow.jobs.succeeded_last_hour IS 'Runs that completed in the last hour';
COMMENT ON COLUMN dataflow.jobs.failed_last_hour IS 'Runs that failed or expired in the last hour';
COMMENT ON COLUMN dataflow.jobs.max_attempts IS 'Attempts per version before a chunk fails';
COMMENT ON COLUMN dataflow.jobs.lease_for IS 'Default lease duration';
COMMENT ON COLUMN dataflow.jobs.backoff_min IS 'First retry delay';
COMMENT ON COLUMN dataflow.jobs.backoff_max IS 'Longest retry delay';
COMMENT ON COLUMN dataflow.jobs.secret_params IS
  'The job''s secret task parameters, names only: every value shows as "********" ({} when none)';
COMMENT ON COLUMN dataflow.jobs.batch_max_rows IS
  'Incremental job: the most input rows (row_count) one batch takes; NULL: no cap';
COMMENT ON COLUMN dataflow.jobs.inputs IS
  'The job''s inputs by dataset name: [{dataset, mapping, lo, hi (window), require (if set), max_chunks '
  '(incremental, if capped)}]';

-- The rate (dataset_rate, progress): the completions still current (done_minute's
-- succeeded - superseded: a completion a resubmit reset since is not progress) over the
-- rate window, the current minute and the 9 before it, divided by the time since the
-- work they are the result of began, at least 1 second: per minute bucket with current
-- completions, when the earliest of its runs was leased (first_started_at; rows of 0.1.0:
-- its first completion or its minute), or, if a resubmit superseded completions of that
-- minute while it lasted, that resubmit when later (a run after a full resubmit is measured
-- from the resubmit); a resubmit after the minute leaves it alone (its current completions
-- are still what they were). The earliest of these, but not before the window's start. So
-- a steady run reads its own rate from its first lease on, a first completion after 20
-- minutes of work does not read as 60 per minute, and a partial resubmit does not inflate
-- the rate of what it left.
CREATE VIEW dataflow.dataset_rate AS
SELECT b.dataset_id,
       round(60 * sum(b.n) / greatest(extract(epoch FROM now() - greatest(min(b.since),
                                     date_trunc('minute', now()) - interval '9 minutes')), 1), 1) AS per_minute
  FROM (SELECT m.dataset_id, sum(m.succeeded - m.superseded) AS n,
               CASE WHEN max(m.superseded_at) < m.minute + interval '1 minute'
                    THEN greatest(coalesce(min(m.first_started_at), min(m.first_at), m.minute), max(m.superseded_at))
                    ELSE coalesce(min(m.first_started_at), min(m.first_at), m.minute) END AS since
          FROM dataflow.done_minute m
         WHERE m.minute >= date_trunc('minute', now()) - interval '9 minutes'
         GROUP BY m.dataset_id, m.minute) b
 WHERE b.n > 0
 GROUP BY b.dataset_id;
COMMENT ON VIEW dataflow.dataset_rate IS
  'Chunks completed per minute per dataset id: the completions of the last 10 minutes that no resubmit has '
  'superseded, over the time since the work they came from began (at most the 10 minutes)';
COMMENT ON COLUMN dataflow.dataset_rate.dataset_id IS 'Dataset id';
COMMENT ON COLUMN dataflow.dataset_rate.per_minute IS
  'Current completions per minute, from the lease of the earliest run completed in the last 10 minutes '
  '(at most those 10 minutes) to now (1 decimal)';

-- held: a job whose queued chunks cannot be leased at all (paused, max_concurrency 0,
-- a pool of 0 slots). blocked counts the chunks that cannot run now: waiting (an input
-- not available: not registered, not produced yet, failed or invalid) and, when held,
-- queued. A retry in backoff is queued, not blocked: it runs by itself. The ETA is NULL
-- unless something can run (a chunk running, or queued and not held) and the rate is
-- above 0.
CREATE VIEW dataflow.progress AS
SELECT 'job'::text AS kind, j.name AS name, d.name AS dataset, NULL::text AS from_key, NULL::text AS to_key,
       coalesce(k.ready + k.validated + k.skipped, 0) AS done, coalesce(k.total, 0) AS total,
       coalesce(k.running, 0) AS running, coalesce(k.failed + k.invalid, 0) AS failed,
       round(100.0 * coalesce(k.ready + k.validated + k.skipped, 0) / nullif(k.total, 0), 1) AS pct,
       coalesce(round(rt.rate, 1), 0) AS per_minute,
       CASE WHEN rt.rate > 0 AND (k.running > 0 OR (k.queued > 0 AND NOT h.held)) THEN
         make_interval(secs => round(60 * (k.total - k.ready - k.validated - k.skipped - k.failed - k.invalid
                                           - k.cancelled) / rt.rate)::double precision) END AS eta,
       j.created_at AS started_at,
       coalesce(k.waiting + CASE WHEN h.held THEN k.queued ELSE 0 END, 0) AS blocked
  FROM dataflow.job j
  JOIN dataflow.dataset d ON d.id = j.output_id
  LEFT JOIN dataflow.pool p ON p.id = j.pool_id
  CROSS JOIN LATERAL (SELECT j.paused OR coalesce(j.max_concurrency = 0, false)
                             OR coalesce(p.slots = 0, false) AS held) h
  LEFT JOIN dataflow.dataset_counts k ON k.dataset_id = d.id
  LEFT JOIN LATERAL (
    SELECT 60 * sum(x.n) / greatest(extract(epoch FROM now() - greatest(min(x.since),
                                        date_trunc('minute', now()) - interval '9 minutes')), 1) AS rate
      FROM (SELECT sum(m.succeeded - m.superseded) AS n,
                   CASE WHEN max(m.superseded_at) < m.minute + interval '1 minute'
                    THEN greatest(coalesce(min(m.first_started_at), min(m.first_at), m.minute), max(m.superseded_at))
                    ELSE coalesce(min(m.first_started_at), min(m.first_at), m.minute) END AS since
              FROM dataflow.done_minute m
             WHERE m.dataset_id = d.id AND m.minute >= date_trunc('minute', now()) - interval '9 minutes'
             GROUP BY m.minute) x
     WHERE x.n > 0) rt ON true
UNION ALL
SELECT 'backfill', 'backfill ' || b.id, d.name, b.from_key, b.to_key,
       bk.done, bk.total, bk.running, bk.failed,
       round(100.0 * bk.done / nullif(bk.total, 0), 1),
       coalesce(round(br.rate, 1), 0),
       CASE WHEN br.rate > 0 AND (bk.running > 0 OR bk.runnable > 0) THEN
         make_interval(secs => round(60 * (bk.total - bk.done - bk.failed - bk.cancelled)
                                     / br.rate)::double precision) END,
       b.at, bk.blocked
  FROM dataflow.backfill b
  JOIN dataflow.dataset d ON d.id = b.dataset_id
  CROSS JOIN LATERAL (
    SELECT coalesce(sum(cc.ready + cc.validated + cc.skipped), 0)::bigint AS done,
           coalesce(sum(cc.waiting + cc.queued + cc.running + cc.ready + cc.validated + cc.invalid + cc.failed
                        + cc.skipped + cc.cancelled + cc.resubmit), 0)::bigint AS total,
           coalesce(sum(cc.running), 0)::bigint AS running,
           coalesce(sum(cc.failed + cc.invalid), 0)::bigint AS failed,
           coalesce(sum(cc.cancelled), 0)::bigint AS cancelled,
           coalesce(sum(cc.waiting + CASE WHEN h.held THEN cc.queued ELSE 0 END), 0)::bigint AS blocked,
           coalesce(sum(CASE WHEN h.held THEN 0 ELSE cc.queued END), 0)::bigint AS runnable,
           array_agg(DISTINCT cc.dataset_id) AS datasets
      FROM dataflow.chunk_count cc
      -- a dataset without a job (a source) cannot run anything
      CROSS JOIN LATERAL (
        SELECT coalesce((SELECT jj.paused OR coalesce(jj.max_concurrency = 0, false)
                                OR coalesce(pp.slots = 0, false)
                           FROM dataflow.job jj LEFT JOIN dataflow.pool pp ON pp.id = jj.pool_id
                          WHERE jj.output_id = cc.dataset_id), true) AS held) h
     WHERE cc.backfill_id = b.id) bk
  LEFT JOIN LATERAL (
    SELECT 60 * sum(x.n) / greatest(extract(epoch FROM now() - greatest(min(x.since),
                                        date_trunc('minute', now()) - interval '9 minutes')), 1) AS rate
      FROM (SELECT sum(m.succeeded - m.superseded) AS n,
                   CASE WHEN max(m.superseded_at) < m.minute + interval '1 minute'
                    THEN greatest(coalesce(min(m.first_started_at), min(m.first_at), m.minute), max(m.superseded_at))
                    ELSE coalesce(min(m.first_started_at), min(m.first_at), m.minute) END AS since
              FROM dataflow.done_minute m
             WHERE m.dataset_id = ANY (bk.datasets) AND m.backfill_id = b.id
               AND m.minute >= date_trunc('minute', now()) - interval '9 minutes'
             GROUP BY m.minute) x
     WHERE x.n > 0) br ON true;
COMMENT ON VIEW dataflow.progress IS
  'Progress per job (its output dataset) and per backfill (the chunks one expect() created): done, total, '
  'the rate of its own current completions over the last 10 minutes, ETA (NULL when nothing can run) and '
  'the chunks blocked';
COMMENT ON COLUMN dataflow.progress.kind IS 'job or backfill';
COMMENT ON COLUMN dataflow.progress.name IS 'Job name, or "backfill N"';
COMMENT ON COLUMN dataflow.progress.dataset IS 'Output dataset (job) or requested dataset (backfill)';
COMMENT ON COLUMN dataflow.progress.from_key IS 'First key of the backfill';
COMMENT ON COLUMN dataflow.progress.to_key IS 'Last key of the backfill';
COMMENT ON COLUMN dataflow.progress.done IS 'Chunks available';
COMMENT ON COLUMN dataflow.progress.total IS 'Chunks in scope';
COMMENT ON COLUMN dataflow.progress.running IS 'Chunks running';
COMMENT ON COLUMN dataflow.progress.failed IS 'Chunks failed or invalid';
COMMENT ON COLUMN dataflow.progress.pct IS 'done / total in percent (1 decimal)';
COMMENT ON COLUMN dataflow.progress.per_minute IS
  'Completions per minute of its own chunks (the job''s output, the backfill''s chunks) that no resubmit has '
  'superseded, from the lease of the earliest of them (within the last 10 minutes) to now (1 decimal)';
COMMENT ON COLUMN dataflow.progress.eta IS
  'Time left at that rate, in whole seconds; NULL when nothing can run (no chunk running, none queued that '
  'can be leased) or the rate is 0';
COMMENT ON COLUMN dataflow.progress.started_at IS 'When the job was created or the backfill requested';
COMMENT ON COLUMN dataflow.progress.blocked IS
  'Chunks that cannot run now: waiting (an input not available: not registered, not produced yet, failed or '
  'invalid), and queued ones when the job is paused, has max_concurrency 0 or a pool of 0 slots (a retry in '
  'backoff is not blocked)';

-- A hole is a key, between the oldest and newest available keys, that nothing will fill
-- by itself: no chunk, a chunk failed (out of attempts or fatal), invalid, cancelled or
-- skipped without a reason, or a source key not registered yet (a waiting placeholder of a
-- dataset no job produces). In-flight work (queued, a retry in backoff, running, waiting
-- for inputs) is not a hole; it is listed only when overdue: past its period plus the
-- dataset's lateness and not available.
CREATE VIEW dataflow.gaps AS
WITH bounds AS (
  SELECT d.id, d.name, d.key_kind, d.lateness,
         EXISTS (SELECT FROM dataflow.job j WHERE j.output_id = d.id) AS has_job,
         (SELECT min(c.ord) FROM dataflow.chunk c
           WHERE c.dataset_id = d.id AND c.status IN ('ready', 'validated', 'skipped')) AS lo,
         (SELECT max(c.ord) FROM dataflow.chunk c
           WHERE c.dataset_id = d.id AND c.status IN ('ready', 'validated', 'skipped')) AS hi
    FROM dataflow.dataset d
   WHERE d.key_kind IN ('date', 'hour', 'int')
)
SELECT b.name AS dataset, dataflow._key_text(b.key_kind, g) AS key, coalesce(c.status, 'missing') AS status,
       CASE WHEN h.hole THEN 'hole' ELSE 'overdue' END AS reason, dataflow._period_end(b.key_kind, g) AS period_end
  FROM bounds b
  CROSS JOIN LATERAL generate_series(b.lo, b.hi) g
  LEFT JOIN dataflow.chunk c ON c.dataset_id = b.id AND c.ord = g
  CROSS JOIN LATERAL (
    SELECT c.id IS NULL OR c.status IN ('failed', 'invalid', 'cancelled')
           OR (c.status = 'skipped' AND coalesce(btrim(c.info ->> 'skip_reason'), '') = '')
           OR (c.status = 'waiting' AND NOT b.has_job) AS hole) h
 WHERE b.lo IS NOT NULL
   AND (h.hole OR (c.status NOT IN ('ready', 'validated', 'skipped')
                   AND b.lateness IS NOT NULL AND b.key_kind IN ('date', 'hour')
                   AND dataflow._period_end(b.key_kind, c.ord) + b.lateness < now()))
UNION ALL
SELECT b.name, c.key, c.status, 'overdue', dataflow._period_end(b.key_kind, c.ord)
  FROM bounds b
  JOIN dataflow.chunk c ON c.dataset_id = b.id
 WHERE b.lateness IS NOT NULL AND b.key_kind IN ('date', 'hour')
   AND c.status NOT IN ('ready', 'validated', 'skipped')
   AND dataflow._period_end(b.key_kind, c.ord) + b.lateness < now()
   -- keys between the oldest and newest available ones are listed above
   AND (b.lo IS NULL OR c.ord < b.lo OR c.ord > b.hi);
COMMENT ON VIEW dataflow.gaps IS
  'Holes: keys between the oldest and newest available keys of a date/hour/int dataset with no chunk, or '
  'whose chunk is failed, invalid, cancelled, skipped without a reason, or a source key not registered; '
  'and overdue: expected keys past their period plus the dataset''s lateness, not available yet. In-flight '
  'work (queued, retrying, running, waiting for inputs) is listed only when overdue';
COMMENT ON COLUMN dataflow.gaps.dataset IS 'Dataset name';
COMMENT ON COLUMN dataflow.gaps.key IS 'The missing or late key';
COMMENT ON COLUMN dataflow.gaps.status IS 'Chunk status, or missing when no chunk exists';
COMMENT ON COLUMN dataflow.gaps.reason IS 'hole (nothing will fill it by itself) or overdue (late, in flight or not)';
COMMENT ON COLUMN dataflow.gaps.period_end IS 'End of the key''s period (date/hour keys)';

CREATE VIEW dataflow.deletable AS
SELECT d.name AS dataset, c.key, c.version, c.location, c.row_count,
       (SELECT count(*) FROM dataflow.dep dp WHERE dp.input = c.id) AS consumers,
       c.available_at
  FROM dataflow.chunk c
  JOIN dataflow.dataset d ON d.id = c.dataset_id
 WHERE c.status IN ('ready', 'validated')
   AND c.location IS NOT NULL
   -- an intermediate dataset: produced by a job and consumed by one
   AND EXISTS (SELECT FROM dataflow.job jp WHERE jp.output_id = d.id)
   AND EXISTS (SELECT FROM dataflow.dep dp WHERE dp.input = c.id)
   -- never a dimension read through `latest`
   AND NOT EXISTS (SELECT FROM dataflow.job_input jl WHERE jl.dataset_id = d.id AND jl.mapping = 'latest')
   -- every consumer is available and was built from this exact version
   AND NOT EXISTS (
     SELECT FROM dataflow.dep dp
       JOIN dataflow.chunk cc ON cc.id = dp.consumer
      WHERE dp.input = c.id
        AND (cc.status NOT IN ('ready', 'validated', 'skipped')
             OR (cc.status <> 'skipped' AND NOT EXISTS (
                   SELECT FROM dataflow.run_input ri
                    WHERE ri.run_id = cc.run_id AND ri.chunk_id = c.id AND ri.version = c.version))))
   -- and nobody reads it now
   AND NOT EXISTS (SELECT FROM dataflow.run_input ri JOIN dataflow.run r ON r.id = ri.run_id
                    WHERE ri.chunk_id = c.id AND r.status = 'running');
COMMENT ON VIEW dataflow.deletable IS
  'Intermediate chunks every consumer has finished with (all consumers available and built from this '
  'exact version, no run reading it): their data at location is safe to delete';
COMMENT ON COLUMN dataflow.deletable.dataset IS 'Dataset name';
COMMENT ON COLUMN dataflow.deletable.key IS 'Chunk key';
COMMENT ON COLUMN dataflow.deletable.version IS 'Current version';
COMMENT ON COLUMN dataflow.deletable.location IS 'Where its data is';
COMMENT ON COLUMN dataflow.deletable.row_count IS 'Rows reported by the producer';
COMMENT ON COLUMN dataflow.deletable.consumers IS 'Consumer chunks, all finished with it';
COMMENT ON COLUMN dataflow.deletable.available_at IS 'When it became available';

CREATE VIEW dataflow.events AS
SELECT e.id AS event_id, e.at, d.name AS dataset, e.key, e.version, e.from_status, e.to_status,
       e.actor, e.run_id, e.detail
  FROM dataflow.event e
  LEFT JOIN dataflow.dataset d ON d.id = e.dataset_id;
COMMENT ON VIEW dataflow.events IS
  'The append-only history of every status transition (the forensic record), newest last';
COMMENT ON COLUMN dataflow.events.event_id IS 'Event id (increasing)';
COMMENT ON COLUMN dataflow.events.at IS 'When (transaction time)';
COMMENT ON COLUMN dataflow.events.dataset IS 'Dataset of the chunk (NULL for job events)';
COMMENT ON COLUMN dataflow.events.key IS 'Chunk key';
COMMENT ON COLUMN dataflow.events.version IS 'Chunk version after the transition';
COMMENT ON COLUMN dataflow.events.from_status IS 'Status before (NULL when the chunk was created)';
COMMENT ON COLUMN dataflow.events.to_status IS 'Status after (or late, paused, resumed, altered, duplicate, engine_stop)';
COMMENT ON COLUMN dataflow.events.actor IS 'Role or worker that caused it';
COMMENT ON COLUMN dataflow.events.run_id IS 'Run involved, if any';
COMMENT ON COLUMN dataflow.events.detail IS 'Why: reason, error, inputs, backfill …';
