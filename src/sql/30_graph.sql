-- Readiness propagation and the resubmit machinery.
--
-- Every chunk keeps `unmet`, the number of its inputs that are not available
-- at the level it needs. When an input's level changes, only its direct
-- consumers (the dep edges from it, and `latest` waiters of its dataset) are
-- touched: O(fan-out), never a scan. A waiting consumer whose unmet reaches 0
-- becomes queued; a queued one whose unmet rises goes back to waiting.

-- The generic plan cannot know how many inputs p_inputs holds, so it is costed for
-- ten: joins are disabled here so that it stays a walk of dep and chunk by index,
-- O(fan-out), rather than a hash join over a scan of chunk (measured: 2.5 ms per
-- complete() at 10k chunks, growing with the table). Sequential scans are off too:
-- the plan is made once per session, often while latest_wait is empty, and must not
-- become a scan of it on every completion once it has rows.
CREATE FUNCTION dataflow._propagate(p_inputs bigint[], p_dataset integer, p_old integer, p_new integer,
                                    p_actor text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET enable_hashjoin = off SET enable_mergejoin = off
SET enable_seqscan = off SET jit = off SET enable_bitmapscan = off AS $$
DECLARE inp bigint;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    PERFORM dataflow._read_committed();   -- raises (00_schema.sql)
  END IF;
  -- p_inputs: chunks of dataset p_dataset whose level moved from p_old to p_new
  -- (complete_many passes a whole batch; everyone else one chunk).
  IF p_old = p_new THEN
    RETURN;
  END IF;
  -- expect() computes latest-waits under the same lock, so neither side misses the other.
  -- (Decided on the job graph, not on visible latest_wait rows: an expect() in flight has
  -- uncommitted ones, and must be waited for, or its consumers would wait forever.)
  IF p_new > p_old AND EXISTS (SELECT FROM dataflow.job_input ji
                                WHERE ji.dataset_id = p_dataset AND ji.mapping = 'latest') THEN
    PERFORM pg_advisory_xact_lock(7406, p_dataset);
  END IF;
  IF p_new > p_old AND EXISTS (SELECT FROM dataflow.job_input ji
                                WHERE ji.dataset_id = p_dataset AND ji.mapping = 'incremental') THEN
    FOREACH inp IN ARRAY p_inputs LOOP
      PERFORM dataflow._incremental_arrived(inp, p_dataset, p_old, p_new);
    END LOOP;
  END IF;
  WITH lw AS (
    DELETE FROM dataflow.latest_wait w
     WHERE p_new > p_old AND w.dataset_id = p_dataset AND w.need <= p_new
    RETURNING w.consumer, NULL::bigint AS input, 1 AS delta
  ), dd AS (
    SELECT d.consumer, d.input, (p_new >= d.need)::integer - (p_old >= d.need)::integer AS delta
      FROM dataflow.dep d
     WHERE d.input = ANY (p_inputs)
  ), delta AS (
    SELECT x.consumer, max(x.input) AS input, sum(x.delta)::integer AS delta
      FROM (SELECT * FROM dd UNION ALL SELECT * FROM lw) x
     GROUP BY x.consumer
    HAVING sum(x.delta) <> 0
  ), locked AS (
    -- (rank, id): consumers of one input may be in datasets of different ranks
    SELECT c.id, c.status, c.unmet, delta.delta, delta.input
      FROM dataflow.chunk c JOIN delta ON c.id = delta.consumer
      JOIN dataflow.dataset cd ON cd.id = c.dataset_id
     ORDER BY cd.rank, c.id
       FOR UPDATE OF c
  ), upd AS (
    UPDATE dataflow.chunk c
       SET unmet = l.unmet - l.delta,
           status = CASE WHEN l.status = 'waiting' AND l.unmet - l.delta = 0 THEN 'queued'
                         WHEN l.status = 'queued' AND l.unmet - l.delta > 0 THEN 'waiting'
                         ELSE l.status END,
           not_before = CASE WHEN l.status = 'waiting' AND l.unmet - l.delta = 0 THEN now()
                             ELSE c.not_before END,
           updated_at = now()
      FROM locked l
     WHERE c.id = l.id
    RETURNING c.id, c.dataset_id, c.key, c.version, l.status AS old_status, c.status AS new_status, l.input
  )
  INSERT INTO dataflow.event (dataset_id, chunk_id, key, version, from_status, to_status, actor, detail)
  SELECT u.dataset_id, u.id, u.key, u.version, u.old_status, u.new_status, p_actor,
         jsonb_build_object('reason', CASE WHEN p_new > p_old THEN 'inputs available' ELSE 'input unavailable' END,
                            'input', coalesce(u.input, p_inputs[1]))
    FROM upd u
   WHERE u.old_status <> u.new_status;
END $$;

-- Reset chunks for re-production: the roots, and with p_cascade everything
-- downstream of them. Reset chunks get version+1, attempts 0, their live run
-- superseded, and go to queued (all inputs available) or waiting. Chunks that
-- were only waiting/queued downstream keep their version; without cascade the
-- direct consumers only have their unmet recounted. Returns what it touched
-- (or, with p_dry_run, what it would touch) in dependency order.
--
-- Lock order (docs/internals.md): the set is locked rank by rank, lowest first,
-- and the dep edges out of a rank are read only once its chunks are locked. A
-- concurrent expect() share-locks an input before it adds an edge from it, so an
-- edge is either committed before we read it (a fresh snapshot after the lock
-- wait sees it) or cannot be added until we commit. Walking first and locking
-- after, as this did before, missed such an edge and left its consumer queued
-- on an unavailable input.
CREATE FUNCTION dataflow._resubmit(p_roots bigint[], p_cascade boolean, p_dry_run boolean,
                                   p_actor text, p_reason text, p_root_old_status text DEFAULT NULL)
RETURNS TABLE(chunk_id bigint, depth integer, old_status text, new_status text, version integer,
              dataset text, key text, ord bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
-- The work table has no statistics; the planner took it for 690 rows and hash-joined
-- a scan of all of chunk in five statements (measured: 12,100 buffers and 83 ms for a
-- one-chunk resubmit with 120,000 chunks). Without scans and hash or merge joins every
-- statement probes chunk, dep and run by index for the touched chunks only, and the
-- plans stay good for every call of the transaction, one chunk or a cascade.
SET enable_seqscan = off SET jit = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE batch bigint[];
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    PERFORM dataflow._read_committed();   -- raises (00_schema.sql)
  END IF;
  -- One work table per transaction, emptied for each call: an UPDATE that resubmits
  -- thousands of chunks calls this once per chunk (the row trigger), and a table
  -- created and dropped per call held its locks until commit (out of shared memory
  -- after ~1,500 chunks). Truncating a table created in this transaction is in place.
  -- Never one the caller made (dataflow._own_work_table raises on a planted one).
  IF NOT dataflow._own_work_table('_df_touch') THEN
    CREATE TEMP TABLE pg_temp._df_touch (
      id bigint PRIMARY KEY, depth integer NOT NULL, rank integer NOT NULL, locked boolean NOT NULL DEFAULT false,
      reset boolean NOT NULL DEFAULT false,
      old_status text, new_status text, old_version integer, new_version integer, unmet integer,
      has_job boolean) ON COMMIT DROP;
  ELSE
    TRUNCATE pg_temp._df_touch;
  END IF;

  INSERT INTO pg_temp._df_touch (id, depth, rank)
  SELECT c.id, 0, cd.rank
    FROM dataflow.chunk c JOIN dataflow.dataset cd ON cd.id = c.dataset_id
   WHERE c.id = ANY (p_roots);

  LOOP
    SELECT array_agg(t.id) INTO batch FROM pg_temp._df_touch t
     WHERE NOT t.locked AND t.rank = (SELECT min(u.rank) FROM pg_temp._df_touch u WHERE NOT u.locked);
    EXIT WHEN batch IS NULL;
    PERFORM 1 FROM dataflow.chunk c WHERE c.id = ANY (batch) ORDER BY c.id FOR UPDATE OF c;
    -- Every predecessor of these chunks has a lower rank and was expanded already, so
    -- their depth is final here.
    INSERT INTO pg_temp._df_touch AS x (id, depth, rank)
    SELECT d.consumer, min(t.depth) + 1, min(cd.rank)
      FROM pg_temp._df_touch t
      JOIN dataflow.dep d ON d.input = t.id
      JOIN dataflow.chunk c ON c.id = d.consumer
      JOIN dataflow.dataset cd ON cd.id = c.dataset_id
     WHERE t.id = ANY (batch) AND (p_cascade OR t.depth = 0)
     GROUP BY d.consumer
    ON CONFLICT (id) DO UPDATE SET depth = least(x.depth, excluded.depth);
    UPDATE pg_temp._df_touch t SET locked = true WHERE t.id = ANY (batch);
  END LOOP;

  UPDATE pg_temp._df_touch t
     SET old_status = CASE WHEN c.status = 'resubmit' THEN coalesce(p_root_old_status, 'resubmit')
                           ELSE c.status END,
         old_version = c.version,
         has_job = EXISTS (SELECT FROM dataflow.job j WHERE j.output_id = c.dataset_id)
    FROM dataflow.chunk c
   WHERE c.id = t.id;
  UPDATE pg_temp._df_touch t
     SET reset = t.depth = 0 OR (p_cascade AND t.old_status NOT IN ('waiting', 'queued'));

  -- Unmet after the reset: inputs being reset count as unavailable.
  UPDATE pg_temp._df_touch t
     SET unmet = (SELECT count(*) FROM dataflow.dep d JOIN dataflow.chunk i ON i.id = d.input
                   WHERE d.consumer = t.id
                     AND (dataflow._level(i.status) < d.need
                          OR EXISTS (SELECT FROM pg_temp._df_touch r WHERE r.id = d.input AND r.reset)))
               + (SELECT count(*) FROM dataflow.latest_wait lw WHERE lw.consumer = t.id);
  UPDATE pg_temp._df_touch t
     SET new_status = CASE WHEN t.reset OR t.old_status IN ('waiting', 'queued', 'resubmit') THEN
                             CASE WHEN t.has_job AND t.unmet = 0 THEN 'queued' ELSE 'waiting' END
                           ELSE t.old_status END,
         new_version = t.old_version + CASE WHEN t.reset THEN 1 ELSE 0 END;

  IF NOT p_dry_run THEN
    -- finished_at stays NULL: the run's process may still be reading its inputs, and it
    -- holds them against re-production until it ends (complete, fail) or reap() expires
    -- its lease (lease()'s claim, docs/internals.md "Safe").
    UPDATE dataflow.run r
       SET status = 'superseded',
           error = 'superseded: ' || p_reason
                   || CASE WHEN p_reason LIKE '% by %' THEN '' ELSE ' by ' || p_actor END
      FROM pg_temp._df_touch t
     WHERE t.reset AND r.chunk_id = t.id AND r.status = 'running';

    UPDATE dataflow.chunk c
       SET status = t.new_status,
           version = t.new_version,
           unmet = t.unmet,
           attempts = CASE WHEN t.reset THEN 0 ELSE c.attempts END,
           -- a reset chunk waiting out a retry backoff is leasable at once (the operator's
           -- "again, now"); one queued normally keeps its place in the queue
           not_before = CASE WHEN t.new_status = 'queued'
                              AND (t.old_status <> 'queued' OR (t.reset AND c.not_before > now())) THEN now()
                             ELSE c.not_before END,
           error = CASE WHEN t.reset THEN NULL ELSE c.error END,
           validation = CASE WHEN t.reset THEN NULL ELSE c.validation END,
           available_at = CASE WHEN t.reset THEN NULL ELSE c.available_at END,
           location = CASE WHEN t.reset THEN NULL ELSE c.location END,
           row_count = CASE WHEN t.reset THEN NULL ELSE c.row_count END,
           checksum = CASE WHEN t.reset THEN NULL ELSE c.checksum END,
           updated_at = now()
      FROM pg_temp._df_touch t
     WHERE c.id = t.id;

    INSERT INTO dataflow.event (dataset_id, chunk_id, key, run_id, version, from_status, to_status, actor, detail)
    SELECT c.dataset_id, c.id, c.key, c.run_id, t.new_version, t.old_status, t.new_status, p_actor,
           jsonb_build_object('reason', CASE WHEN t.depth = 0 THEN p_reason
                                             WHEN t.reset THEN 'upstream ' || p_reason
                                             ELSE 'input ' || p_reason END,
                              'depth', t.depth, 'old_version', t.old_version)
      FROM pg_temp._df_touch t JOIN dataflow.chunk c ON c.id = t.id
     WHERE t.old_status IS DISTINCT FROM t.new_status OR t.old_version <> t.new_version
     ORDER BY t.depth, c.id;
  END IF;

  -- Names and keys read here, after the locks: a caller's own statement snapshot predates
  -- them and would miss a consumer that a concurrent expect() committed meanwhile.
  RETURN QUERY
    SELECT t.id, t.depth, t.old_status, t.new_status, t.new_version, cd.name, c.key, c.ord
      FROM pg_temp._df_touch t JOIN dataflow.chunk c ON c.id = t.id JOIN dataflow.dataset cd ON cd.id = c.dataset_id
     ORDER BY t.depth, t.id;
END $$;

-- Status written directly: UPDATE dataflow.chunk SET status = 'resubmit' (or
-- 'skipped') is the operator's one-line restart. The row trigger runs after
-- the statement's row update, so it may rewrite the same row.
CREATE FUNCTION dataflow._chunk_status_written() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE cur text;
BEGIN
  SELECT status INTO cur FROM dataflow.chunk WHERE id = NEW.id;
  IF cur = 'resubmit' THEN
    PERFORM dataflow._resubmit(ARRAY[NEW.id], true, false, dataflow._actor(), 'resubmit', OLD.status);
  ELSIF cur = 'skipped' AND NEW.status = 'skipped' THEN
    PERFORM dataflow._skipped(NEW.id, OLD.status, coalesce(NEW.info ->> 'skip_reason', 'skipped by UPDATE'));
  END IF;
  RETURN NULL;
END $$;
