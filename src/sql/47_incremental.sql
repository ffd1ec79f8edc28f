-- Incremental batches (mapping `incremental`): a job whose output key is a
-- batch number consumes the input chunks that became available since its
-- last batch. Available input chunks wait in incremental_pending; lease() cuts
-- the next batch from them when no batch of the job is in flight, so batches
-- run one after another. Without caps a batch takes every pending chunk; with
-- caps (job_input.max_chunks per input, job.batch_max_rows per batch) it takes
-- the lowest pending keys of each input that fit (_cut_batch). A batch keeps
-- its inputs (dep edges) for its retries and re-runs; an input that was already
-- in a batch is re-run through that batch (resubmit cascade), never taken by a
-- second one.

CREATE TABLE dataflow.incremental_pending (
  job_id     integer NOT NULL,
  chunk_id   bigint NOT NULL,
  need       smallint NOT NULL,
  since      timestamptz NOT NULL DEFAULT now(),
  -- the input chunk's dataset and key ordinal (NULL for text keys), so a capped cut walks
  -- incremental_pending_order in key order and stops after the first few
  dataset_id integer NOT NULL,
  ord        bigint,
  PRIMARY KEY (job_id, chunk_id)
);
CREATE INDEX incremental_pending_order ON dataflow.incremental_pending (job_id, dataset_id, ord, chunk_id);
COMMENT ON TABLE dataflow.incremental_pending IS
  'Input chunks available to an incremental job and not yet in one of its batches';

-- Called by _propagate when an input chunk's level rises.
CREATE FUNCTION dataflow._incremental_arrived(p_input bigint, p_dataset integer, p_old integer, p_new integer)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO dataflow.incremental_pending (job_id, chunk_id, need, dataset_id, ord)
  SELECT ji.job_id, p_input, ji.need, p_dataset, (SELECT c.ord FROM dataflow.chunk c WHERE c.id = p_input)
    FROM dataflow.job_input ji
    JOIN dataflow.job j ON j.id = ji.job_id
   WHERE ji.dataset_id = p_dataset AND ji.mapping = 'incremental'
     AND p_new >= ji.need AND p_old < ji.need
     AND NOT EXISTS (SELECT FROM dataflow.dep dp JOIN dataflow.chunk b ON b.id = dp.consumer
                      WHERE dp.input = p_input AND b.dataset_id = j.output_id)
  ON CONFLICT DO NOTHING;
END $$;

-- Cut the next batch of an incremental job, if it has pending inputs and no
-- batch in flight. Returns the new batch's chunk id or NULL.
--
-- Without caps the batch takes every pending input. With caps it takes, of each
-- incremental input (in rank, id order), the pending chunks in key order (ord, then
-- chunk id: text keys in arrival order), at most job_input.max_chunks of them; the
-- inputs' candidates are then interleaved (the first of each input, then the second
-- of each, ...) and cut where the running sum of row_count (NULL counts 0) would pass
-- job.batch_max_rows; the first candidate is always taken, so a chunk over the cap is
-- a batch of its own. Each input's part is thus the lowest of its pending keys. The walk
-- reads incremental_pending_order in order and stops at the cap: a backlog costs only
-- the chunks one batch takes (docs/performance.md).
CREATE FUNCTION dataflow._cut_batch(p_job integer) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_sort = off AS $$
DECLARE
  j dataflow.job; nb bigint; b bigint; n integer; taken bigint[]; want bigint[]; capped boolean;
  inp record; r record; i integer := 0; k integer; tot bigint;
  c_ids bigint[] := '{}'; c_rows bigint[] := '{}'; c_pos integer[] := '{}'; c_inp integer[] := '{}';
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    PERFORM dataflow._read_committed();   -- raises (00_schema.sql)
  END IF;
  IF NOT (EXISTS (SELECT FROM dataflow.incremental_pending p WHERE p.job_id = p_job)) THEN
    RETURN NULL;
  END IF;
  PERFORM pg_advisory_xact_lock(7403, p_job);
  SELECT * INTO j FROM dataflow.job WHERE id = p_job;
  IF (SELECT coalesce(sum(k.waiting + k.queued + k.running + k.resubmit), 0)
        FROM dataflow.chunk_count k WHERE k.dataset_id = j.output_id) > 0 THEN
    RETURN NULL;   -- one batch at a time
  END IF;
  capped := j.batch_max_rows IS NOT NULL
            OR EXISTS (SELECT FROM dataflow.job_input ji
                        WHERE ji.job_id = p_job AND ji.mapping = 'incremental' AND ji.max_chunks IS NOT NULL);
  IF capped THEN
    -- The candidates: per input, its lowest pending keys, up to max_chunks, and no further
    -- than the first chunk that takes the input's own sum past batch_max_rows.
    FOR inp IN SELECT ji.dataset_id, ji.max_chunks FROM dataflow.job_input ji
                 JOIN dataflow.dataset d ON d.id = ji.dataset_id
                WHERE ji.job_id = p_job AND ji.mapping = 'incremental' ORDER BY d.rank, ji.dataset_id LOOP
      i := i + 1; k := 0; tot := 0;
      FOR r IN SELECT p.chunk_id, coalesce(c.row_count, 0) AS rows
                 FROM dataflow.incremental_pending p JOIN dataflow.chunk c ON c.id = p.chunk_id
                WHERE p.job_id = p_job AND p.dataset_id = inp.dataset_id
                ORDER BY p.ord, p.chunk_id
                LIMIT inp.max_chunks LOOP
        k := k + 1; tot := tot + r.rows;
        c_ids := c_ids || r.chunk_id; c_rows := c_rows || r.rows; c_pos := c_pos || k; c_inp := c_inp || i;
        EXIT WHEN tot > j.batch_max_rows;
      END LOOP;
    END LOOP;
    -- Interleaved, cut at the row cap (the first candidate always goes).
    SELECT array_agg(x.id) INTO want
      FROM (SELECT u.id, sum(u.rows) OVER (ORDER BY u.pos, u.inp ROWS UNBOUNDED PRECEDING) AS cum,
                   row_number() OVER (ORDER BY u.pos, u.inp) AS rn
              FROM unnest(c_ids, c_rows, c_pos, c_inp) u(id, rows, pos, inp)) x
     WHERE j.batch_max_rows IS NULL OR x.cum <= j.batch_max_rows OR x.rn = 1;
  ELSE
    SELECT array_agg(p.chunk_id) INTO want FROM dataflow.incremental_pending p WHERE p.job_id = p_job;
  END IF;
  -- Share-lock the inputs this batch takes, in (rank, id) order, skipping any that another
  -- transaction holds (a resubmit in flight: it stays pending for a later batch).
  -- Held, they cannot be resubmitted before this batch commits, and a resubmit that
  -- waits for one reads the batch's dep edge once it has it. Without the lock a resubmit
  -- committed in between left the batch queued on an unavailable input.
  SELECT array_agg(l.id) INTO taken FROM (
    SELECT c.id FROM dataflow.chunk c JOIN dataflow.dataset cd ON cd.id = c.dataset_id
     WHERE c.id = ANY (want)
     ORDER BY cd.rank, c.id
       FOR SHARE OF c SKIP LOCKED) l;
  IF taken IS NULL THEN
    RETURN NULL;
  END IF;
  IF capped THEN
    -- Keys stay consecutive: an input's part ends before its first candidate we could not lock.
    SELECT array_agg(x.id) INTO taken
      FROM (SELECT u.id, bool_and(u.id = ANY (taken)) OVER (PARTITION BY u.inp ORDER BY u.pos) AS ok
              FROM unnest(c_ids, c_pos, c_inp) u(id, pos, inp) WHERE u.id = ANY (want)) x
     WHERE x.ok;
    IF taken IS NULL THEN
      RETURN NULL;
    END IF;
  END IF;
  -- Inputs that stopped being available since they arrived go back to waiting for their new
  -- version (a fresh snapshot: it sees what committed while we waited for the locks).
  DELETE FROM dataflow.incremental_pending p USING dataflow.chunk c
   WHERE p.job_id = p_job AND c.id = p.chunk_id AND c.id = ANY (taken) AND dataflow._level(c.status) < p.need;
  IF NOT (EXISTS (SELECT FROM dataflow.incremental_pending p WHERE p.job_id = p_job AND p.chunk_id = ANY (taken))) THEN
    RETURN NULL;
  END IF;
  SELECT coalesce(max(c.ord), 0) + 1 INTO nb FROM dataflow.chunk c WHERE c.dataset_id = j.output_id;
  -- `latest` inputs (dimensions) that have no available chunk yet hold the batch.
  PERFORM pg_advisory_xact_lock(7406, jl.dataset_id)
     FROM dataflow.job_input jl WHERE jl.job_id = p_job AND jl.mapping = 'latest' ORDER BY jl.dataset_id;
  SELECT count(*) INTO n FROM dataflow.job_input jl
   WHERE jl.job_id = p_job AND jl.mapping = 'latest'
     AND NOT EXISTS (SELECT FROM dataflow.chunk lc
                      WHERE lc.dataset_id = jl.dataset_id AND dataflow._level(lc.status) >= jl.need);
  INSERT INTO dataflow.chunk (dataset_id, key, ord, status, unmet, not_before)
  VALUES (j.output_id, nb::text, nb, CASE WHEN n = 0 THEN 'queued' ELSE 'waiting' END, n, now())
  RETURNING id INTO b;
  INSERT INTO dataflow.latest_wait (dataset_id, consumer, need)
  SELECT jl.dataset_id, b, jl.need FROM dataflow.job_input jl
   WHERE jl.job_id = p_job AND jl.mapping = 'latest'
     AND NOT EXISTS (SELECT FROM dataflow.chunk lc
                      WHERE lc.dataset_id = jl.dataset_id AND dataflow._level(lc.status) >= jl.need);
  WITH taken AS (
    DELETE FROM dataflow.incremental_pending p WHERE p.job_id = p_job AND p.chunk_id = ANY (taken)
    RETURNING p.chunk_id, p.need
  )
  INSERT INTO dataflow.dep (input, consumer, need) SELECT taken.chunk_id, b, taken.need FROM taken;
  INSERT INTO dataflow.event (dataset_id, chunk_id, key, version, from_status, to_status, actor, detail)
  SELECT j.output_id, b, nb::text, 1, NULL, CASE WHEN n = 0 THEN 'queued' ELSE 'waiting' END, 'incremental',
         jsonb_build_object('reason', 'batch', 'job', j.name, 'inputs', count(*),
                            'rows', coalesce(sum(ic.row_count), 0))
    FROM dataflow.dep dp JOIN dataflow.chunk ic ON ic.id = dp.input
   WHERE dp.consumer = b;
  RETURN b;
END $$;
