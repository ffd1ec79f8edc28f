-- Counters maintained incrementally so the status views answer in
-- milliseconds at millions of chunks, without counting by scans.
--
-- chunk_count holds per (dataset, backfill, shard) the number of chunks in
-- each status; readers sum over shards. A writer updates a shard row no other
-- transaction holds (an advisory lock per row, tried without waiting) and adds
-- the row when it is missing, so it never waits for anyone: a worker that keeps its transaction
-- open (complete() in the same transaction as a long load) cannot stall the
-- others. Shards may go negative; their sum is exact. done_minute buckets
-- completions and failures per minute the same way, for throughput and ETA.
-- Both are a few rows updated on every transition: vacuumed after every 1,000
-- dead versions, not after a fraction of a table that never grows.

CREATE TABLE dataflow.backfill (
  id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  dataset_id integer NOT NULL,
  from_key   text NOT NULL,
  to_key     text NOT NULL,
  created    bigint NOT NULL DEFAULT 0,
  actor      text NOT NULL,
  at         timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE dataflow.backfill IS 'One row per expect() call that created chunks';

ALTER TABLE dataflow.chunk ADD COLUMN backfill_id integer NOT NULL DEFAULT 0;

CREATE TABLE dataflow.chunk_count (
  dataset_id  integer NOT NULL,
  backfill_id integer NOT NULL,
  shard       smallint NOT NULL,
  waiting     bigint NOT NULL DEFAULT 0,
  queued      bigint NOT NULL DEFAULT 0,
  running     bigint NOT NULL DEFAULT 0,
  ready       bigint NOT NULL DEFAULT 0,
  validated   bigint NOT NULL DEFAULT 0,
  invalid     bigint NOT NULL DEFAULT 0,
  failed      bigint NOT NULL DEFAULT 0,
  skipped     bigint NOT NULL DEFAULT 0,
  cancelled   bigint NOT NULL DEFAULT 0,
  resubmit    bigint NOT NULL DEFAULT 0,
  newest_ord  bigint,
  newest_at   timestamptz,
  PRIMARY KEY (dataset_id, backfill_id, shard)
) WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);

-- done_minute: per (dataset, minute, backfill, shard) the runs that completed (succeeded)
-- or failed in that minute; superseded counts those completions whose chunk a resubmit
-- has reset since (only within the rate window, the last 10 minutes), so succeeded -
-- superseded is the completions that are still current; first_at is when the row's first
-- completion was recorded, superseded_at when a resubmit last superseded one of the
-- minute, first_started_at when the earliest of the row's completed runs was leased. The
-- rate of the progress view reads them. A completion counts in the minute it was recorded
-- by the clock (clock_timestamp), not in its transaction's first minute: a worker that
-- loads for 20 minutes and completes in the same transaction is counted when it completes.
CREATE TABLE dataflow.done_minute (
  dataset_id  integer NOT NULL,
  minute      timestamptz NOT NULL,
  shard       smallint NOT NULL,
  succeeded   integer NOT NULL DEFAULT 0,
  failed      integer NOT NULL DEFAULT 0,
  backfill_id integer NOT NULL DEFAULT 0,
  superseded  integer NOT NULL DEFAULT 0,
  first_at    timestamptz,
  superseded_at timestamptz,
  first_started_at timestamptz,
  PRIMARY KEY (dataset_id, minute, backfill_id, shard)
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);

-- Counter rows are claimed with transaction-level advisory locks rather than
-- row locks: pg_try_advisory_xact_lock writes no WAL, where SELECT ... FOR
-- UPDATE SKIP LOCKED writes a lock record per claim. Every writer of a counter
-- row holds its lock, so its upsert never waits. The lock key mixes dataset,
-- backfill (or minute) and shard; two rows sharing a key only make a writer
-- move to the next shard. A writer takes the backend's own shard (pid mod 64)
-- first, the next ones when another holds it; all 64 held: 55P03.
--
-- _count moves p_n chunks of (dataset, backfill) from status p_old to p_new (NULL:
-- inserted, or deleted) in a counter row nobody else holds: an UPDATE, and the row added
-- first when missing (an upsert would also write a row-lock record per call); a row
-- another transaction added after this one's snapshot (repeatable read) is 40001.
-- _count_done adds completions, failures and superseded completions to a minute's
-- throughput bucket the same way (p_minute: this minute for completions and failures,
-- the minute a completion was recorded in when a resubmit supersedes it; the shard's lock
-- covers every backfill's row of that (dataset, minute, shard)). Both are C
-- (src/pg/hot_path.cpp: count_move, count_done), the code lease() and complete() account
-- with: one implementation for the triggers and the hot path.
CREATE FUNCTION dataflow._count(p_dataset integer, p_backfill integer, p_old text, p_new text,
                                p_n bigint, p_ord bigint, p_at timestamptz)
RETURNS void AS 'MODULE_PATHNAME', 'df_count' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION dataflow._count_done(p_dataset integer, p_backfill integer, p_minute timestamptz,
                                     p_succeeded bigint, p_failed bigint, p_superseded bigint,
                                     p_started timestamptz)
RETURNS void AS 'MODULE_PATHNAME', 'df_count_done' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

-- The trigger behind every status change: counters, the throughput bucket and
-- queue membership (dataflow.queue) move with the chunks, in their transaction.
-- Statement-level, with the statement's old and new rows: a statement that moves
-- many chunks (a 10-chunk lease, complete_many, a fan-out propagation) changes
-- the queue in one DELETE and one INSERT and each counter row once per group,
-- not once per chunk. Transition tables cannot be limited to UPDATE OF status,
-- so it fires for every UPDATE of chunk and keeps the rows whose status (or,
-- when queued, not_before) changed. Counters add deltas, so their order does not
-- matter; the queue is reconciled with each chunk's current row, because a row
-- trigger (chunk_status_written: a resubmit written with UPDATE) may have changed
-- the chunk again, in a nested statement, before this statement-level one runs.
-- Each queue row is reached by its key, one probe per changed chunk: the plans here
-- are made once per session, often while the queue is empty, and a join the planner
-- costed for an empty queue walked all of it for every chunk once it had grown
-- (measured: bulk register() 2,600/s -> 870/s over the first 30,000 queued chunks).
-- Hence no sequential scans here; old_rows and new_rows may still be hash-joined.
CREATE FUNCTION dataflow._chunk_counted_update() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET jit = off AS $$
DECLARE r record; leave_queue boolean := false; enter_queue boolean := false; was_reset boolean := false;
BEGIN
  -- One row per (dataset, backfill, old status, new status) that changed; a queued
  -- chunk whose not_before moved comes as queued -> queued (queue only, no count).
  FOR r IN
    SELECT n.dataset_id, n.backfill_id, o.status AS old_status, n.status AS new_status, count(*) AS n,
           max(n.ord) FILTER (WHERE dataflow._level(n.status) > 0) AS ord,
           max(n.available_at) FILTER (WHERE dataflow._level(n.status) > 0) AS at,
           -- a running chunk's updated_at is its lease's time (lease sets it, heartbeats
           -- do not touch the chunk): when the earliest of these runs began
           min(o.updated_at) FILTER (WHERE o.status = 'running') AS started
      FROM old_rows o JOIN new_rows n ON n.id = o.id
     WHERE o.status <> n.status OR (n.status = 'queued' AND o.not_before <> n.not_before)
     GROUP BY 1, 2, 3, 4
  LOOP
    leave_queue := leave_queue OR r.old_status = 'queued';
    enter_queue := enter_queue OR r.new_status = 'queued';
    CONTINUE WHEN r.old_status = r.new_status;
    PERFORM dataflow._count(r.dataset_id, r.backfill_id, r.old_status, r.new_status, r.n, r.ord, r.at);
    IF r.old_status = 'running' AND r.new_status IN ('ready', 'failed', 'queued') THEN
      PERFORM dataflow._count_done(r.dataset_id, r.backfill_id, date_trunc('minute', clock_timestamp()),
                                   CASE WHEN r.new_status = 'ready' THEN r.n ELSE 0 END,
                                   CASE WHEN r.new_status = 'ready' THEN 0 ELSE r.n END, 0, r.started);
    END IF;
    -- a produced chunk reset by a resubmit (directly, or through the transient status)
    was_reset := was_reset OR (r.old_status IN ('ready', 'validated', 'invalid')
                               AND r.new_status IN ('resubmit', 'queued', 'waiting'));
  END LOOP;
  -- Its completion, if a run made it within the rate window, is superseded: counted in
  -- the bucket it was recorded in (the minute of available_at, set by complete), so the
  -- rate counts only current completions. Only statements that reset produced chunks
  -- get here; at most 10 buckets per (dataset, backfill).
  IF was_reset THEN
    FOR r IN
      SELECT o.dataset_id, o.backfill_id, date_trunc('minute', o.available_at) AS minute, count(*) AS n
        FROM old_rows o JOIN new_rows n ON n.id = o.id
       WHERE o.status IN ('ready', 'validated', 'invalid') AND n.status IN ('resubmit', 'queued', 'waiting')
         AND o.run_id IS NOT NULL
         AND o.available_at >= date_trunc('minute', now()) - interval '9 minutes'
       GROUP BY 1, 2, 3
    LOOP
      PERFORM dataflow._count_done(r.dataset_id, r.backfill_id, r.minute, 0, 0, r.n, NULL);
    END LOOP;
  END IF;
  -- The queue follows each chunk's current row (see above), so a nested change that
  -- already moved the chunk again is neither undone nor duplicated. A chunk whose
  -- not_before moved leaves its old queue row and enters a new one. (The checks of the
  -- current row are scalar subqueries, never turned into joins: an index probe each.)
  IF leave_queue OR enter_queue THEN
    FOR r IN
      SELECT o.dataset_id, o.id, o.not_before AS old_not_before, n.not_before AS new_not_before,
             o.status = 'queued' AND (n.status <> 'queued' OR n.not_before <> o.not_before)
               AND NOT coalesce((SELECT c.status = 'queued' AND c.not_before = o.not_before
                                   FROM dataflow.chunk c WHERE c.id = o.id), false) AS leaves,
             n.status = 'queued' AND (o.status <> 'queued' OR o.not_before <> n.not_before)
               AND coalesce((SELECT c.status = 'queued' AND c.not_before = n.not_before
                               FROM dataflow.chunk c WHERE c.id = n.id), false) AS enters
        FROM old_rows o JOIN new_rows n ON n.id = o.id
       WHERE (o.status = 'queued' OR n.status = 'queued')
         AND (o.status <> n.status OR o.not_before <> n.not_before)
    LOOP
      IF r.leaves THEN
        DELETE FROM dataflow.queue q
         WHERE q.dataset_id = r.dataset_id AND q.not_before = r.old_not_before AND q.chunk_id = r.id;
      END IF;
      IF r.enters THEN
        INSERT INTO dataflow.queue (dataset_id, not_before, chunk_id)
        SELECT r.dataset_id, r.new_not_before, r.id
         WHERE NOT EXISTS (SELECT FROM dataflow.queue q
                            WHERE q.dataset_id = r.dataset_id AND q.not_before = r.new_not_before
                              AND q.chunk_id = r.id);
      END IF;
    END LOOP;
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION dataflow._chunk_counted_insert() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT dataset_id, backfill_id, status, count(*) AS n,
                  max(ord) FILTER (WHERE dataflow._level(status) > 0) AS ord,
                  max(available_at) FILTER (WHERE dataflow._level(status) > 0) AS at
             FROM new_rows GROUP BY 1, 2, 3 LOOP
    PERFORM dataflow._count(r.dataset_id, r.backfill_id, NULL, r.status, r.n, r.ord, r.at);
  END LOOP;
  INSERT INTO dataflow.queue (dataset_id, not_before, chunk_id)
  SELECT n.dataset_id, n.not_before, n.id FROM new_rows n WHERE n.status = 'queued';
  RETURN NULL;
END $$;

CREATE FUNCTION dataflow._chunk_counted_delete() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT dataset_id, backfill_id, status, count(*) AS n FROM old_rows GROUP BY 1, 2, 3 LOOP
    PERFORM dataflow._count(r.dataset_id, r.backfill_id, r.status, NULL, r.n, NULL, NULL);
  END LOOP;
  -- by key, one probe per deleted queued chunk (see _chunk_counted_update)
  FOR r IN SELECT o.dataset_id, o.not_before, o.id FROM old_rows o WHERE o.status = 'queued' LOOP
    DELETE FROM dataflow.queue q
     WHERE q.dataset_id = r.dataset_id AND q.not_before = r.not_before AND q.chunk_id = r.id;
  END LOOP;
  RETURN NULL;
END $$;

-- Whether the statement running now accounts for its own changes: true only inside the
-- hot path's own statements (lease, complete: src/pg/hot_path.cpp), which write the
-- counters, the queue and the wake-up themselves, in the same transaction. A
-- backend-local flag that no SQL can set. The triggers here and event_fanout
-- (70_worker.sql) do not fire for those statements (their WHEN).
CREATE FUNCTION dataflow._accounted() RETURNS boolean
AS 'MODULE_PATHNAME', 'df_accounted' LANGUAGE C VOLATILE PARALLEL RESTRICTED;

CREATE TRIGGER chunk_counted_update AFTER UPDATE ON dataflow.chunk
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
  WHEN (NOT dataflow._accounted())
  EXECUTE FUNCTION dataflow._chunk_counted_update();
CREATE TRIGGER chunk_counted_insert AFTER INSERT ON dataflow.chunk
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
  WHEN (NOT dataflow._accounted())
  EXECUTE FUNCTION dataflow._chunk_counted_insert();
CREATE TRIGGER chunk_counted_delete AFTER DELETE ON dataflow.chunk
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
  WHEN (NOT dataflow._accounted())
  EXECUTE FUNCTION dataflow._chunk_counted_delete();
