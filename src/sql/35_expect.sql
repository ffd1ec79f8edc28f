-- expect(): create the expected chunks of a key range and, walking the job
-- graph upstream, every input chunk they need (placeholders for sources).
--
-- Set-based and linear in the number of chunks it touches: the wanted chunks
-- and the edges between them are built in two temp tables, one dataset at a
-- time in topological order (a dataset after all of its consumers), so every
-- join is between tables whose size the planner knows; dataflow.chunk is only
-- probed by its (dataset_id, key) key. A million-chunk backfill is a handful
-- of statements.

CREATE FUNCTION dataflow.expect(dataset text, from_key text, to_key text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d dataflow.dataset;
  actor text := dataflow._actor();
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    PERFORM dataflow._read_committed();   -- raises (00_schema.sql)
  END IF;
  -- Before the job graph is read: a change of a live flow (24_change.sql) holds it
  -- exclusively while it rebuilds the edges of existing chunks, so the chunks made here
  -- follow one definition, the one before or the one after it (docs/internals.md §4).
  PERFORM pg_advisory_xact_lock_shared(7407, 0);
  d := dataflow._dataset_row(dataset);
  IF from_key IS NULL THEN
    RAISE EXCEPTION 'from_key must not be NULL' USING ERRCODE = '22004';
  END IF;
  to_key := coalesce(to_key, from_key);
  IF EXISTS (SELECT FROM dataflow.job j JOIN dataflow.job_input ji ON ji.job_id = j.id
              WHERE j.output_id = d.id AND ji.mapping = 'incremental') THEN
    RAISE EXCEPTION 'dataset "%" is made of incremental batches; they cannot be expected', d.name
      USING ERRCODE = '55000', HINT = 'lease() cuts the next batch from the input chunks that arrived.';
  END IF;

  -- Work tables of this call; one the caller planted is refused, never dropped or used.
  IF dataflow._own_work_table('_df_want') THEN
    DROP TABLE pg_temp._df_want;
  END IF;
  IF dataflow._own_work_table('_df_edge') THEN
    DROP TABLE pg_temp._df_edge;
  END IF;
  -- existing_id/level: the chunk as found (and share-locked) before inserting;
  -- chunk_id: the chunk this call created; status: 'existing', or the new chunk's status.
  CREATE TEMP TABLE pg_temp._df_want (
    dataset_id integer NOT NULL, key text NOT NULL, ord bigint,
    existing_id bigint, existing_level integer, chunk_id bigint, status text, unmet integer,
    PRIMARY KEY (dataset_id, key)
  ) ON COMMIT DROP;
  CREATE TEMP TABLE pg_temp._df_edge (
    c_ds integer NOT NULL, c_key text NOT NULL, i_ds integer NOT NULL, i_key text NOT NULL, need smallint NOT NULL
  ) ON COMMIT DROP;

  INSERT INTO pg_temp._df_want (dataset_id, key, ord)
  SELECT d.id, r.key, r.ord FROM dataflow._key_range(d.key_kind, from_key, to_key, 10000000) r;
  RETURN dataflow._expect_wanted(d, from_key, to_key, actor);
END $$;
COMMENT ON FUNCTION dataflow.expect(text, text, text) IS
  'Backfill: create the expected chunks of dataset from from_key to to_key (inclusive) and every '
  'upstream chunk they need; returns how many chunks were created (existing ones are left alone)';

-- The rest of expect(), on the work tables the caller made and filled: pg_temp._df_want
-- holds the wanted keys of dataset d (and nothing else), pg_temp._df_edge is empty. It
-- walks upstream, creates every wanted chunk that does not exist yet with its edges, and
-- records a backfill from_key .. to_key. Also used by a change of a live flow
-- (24_change.sql), which wants the keys of a new input that its output's chunks need.
CREATE FUNCTION dataflow._expect_wanted(d dataflow.dataset, from_key text, to_key text, actor text)
RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n_created bigint;
  lat integer;
  bf integer;
  step record;
BEGIN

  -- Walk upstream one (job, input) at a time; a dataset comes after every consumer on the way
  -- (longest distance from the requested dataset), so its wanted keys are complete when expanded.
  FOR step IN
    WITH RECURSIVE up(ds, depth) AS (
      SELECT d.id, 0
      UNION ALL
      SELECT ji.dataset_id, up.depth + 1
        FROM up JOIN dataflow.job j ON j.output_id = up.ds
        JOIN dataflow.job_input ji ON ji.job_id = j.id AND ji.mapping IN ('same', 'window', 'rollup')
       WHERE up.depth < 100
    )
    SELECT j.output_id AS out_ds, ji.dataset_id AS in_ds, ji.mapping, ji.lo, ji.hi, ji.need,
           ind.key_kind AS in_kind
      FROM (SELECT up.ds, max(up.depth) AS depth FROM up GROUP BY up.ds) o
      JOIN dataflow.job j ON j.output_id = o.ds
      JOIN dataflow.job_input ji ON ji.job_id = j.id AND ji.mapping IN ('same', 'window', 'rollup')
      JOIN dataflow.dataset ind ON ind.id = ji.dataset_id
     ORDER BY o.depth, j.output_id, ji.dataset_id
  LOOP
    BEGIN
      INSERT INTO pg_temp._df_edge (c_ds, c_key, i_ds, i_key, need)
      SELECT w.dataset_id, w.key, step.in_ds, x.key, step.need
        FROM pg_temp._df_want w
       CROSS JOIN LATERAL dataflow._input_keys(step.mapping, step.in_kind, step.lo, step.hi, w.key, w.ord) x
       WHERE w.dataset_id = step.out_ds;
    EXCEPTION WHEN numeric_value_out_of_range THEN
      RAISE EXCEPTION 'the % input of dataset "%" needs keys outside the range of % keys',
                      step.mapping, (SELECT ds.name FROM dataflow.dataset ds WHERE ds.id = step.out_ds),
                      step.in_kind
        USING ERRCODE = '22003',
              DETAIL = format('Wanted keys of "%s" run from %s to %s; the mapping reads offsets %s..%s.',
                              (SELECT ds.name FROM dataflow.dataset ds WHERE ds.id = step.out_ds),
                              (SELECT w.key FROM pg_temp._df_want w WHERE w.dataset_id = step.out_ds ORDER BY w.ord LIMIT 1),
                              (SELECT w.key FROM pg_temp._df_want w WHERE w.dataset_id = step.out_ds ORDER BY w.ord DESC LIMIT 1),
                              coalesce(step.lo, 0), coalesce(step.hi, 0)),
              HINT = 'Expect a range further from the ends of the key range.';
    END;
    INSERT INTO pg_temp._df_want (dataset_id, key, ord)
    SELECT DISTINCT step.in_ds, e.i_key, dataflow._key_ord(step.in_kind, e.i_key)
      FROM pg_temp._df_edge e
     WHERE e.c_ds = step.out_ds AND e.i_ds = step.in_ds
    ON CONFLICT DO NOTHING;
  END LOOP;
  ANALYZE pg_temp._df_want;
  ANALYZE pg_temp._df_edge;

  -- `latest` inputs: propagation of those datasets takes this lock too. Taken before the
  -- chunk locks below: a completion of a latest input holds its chunk, then this lock, then
  -- the consumers it wakes; holding a consumer's share lock while waiting here deadlocked.
  FOR lat IN SELECT DISTINCT ji.dataset_id
               FROM dataflow.job_input ji JOIN dataflow.job j ON j.id = ji.job_id
              WHERE ji.mapping = 'latest' AND j.output_id IN (SELECT DISTINCT w.dataset_id FROM pg_temp._df_want w)
              ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock(7406, lat);
  END LOOP;

  -- Find and share-lock the chunks that already exist, so an input completing or being
  -- resubmitted concurrently either finishes before we read its status or, after we
  -- commit, sees our dep edges (a resubmit reads edges only once it holds the input).
  -- Locked in (rank, id) order, the order of every chunk lock (docs/internals.md).
  UPDATE pg_temp._df_want w SET existing_id = c.id
    FROM dataflow.chunk c WHERE c.dataset_id = w.dataset_id AND c.key = w.key;
  UPDATE pg_temp._df_want w SET existing_level = dataflow._level(l.status), status = 'existing'
    FROM (SELECT c.id, c.status FROM dataflow.chunk c JOIN dataflow.dataset cd ON cd.id = c.dataset_id
           WHERE c.id = ANY (ARRAY(SELECT x.existing_id FROM pg_temp._df_want x WHERE x.existing_id IS NOT NULL))
           ORDER BY cd.rank, c.id FOR SHARE OF c) l
   WHERE w.existing_id = l.id;
  INSERT INTO dataflow.backfill (dataset_id, from_key, to_key, actor)
  VALUES (d.id, from_key, to_key, actor) RETURNING id INTO bf;

  -- Unmet inputs of each chunk to create: its edges to inputs not available at the level needed,
  -- plus `latest` inputs of its job that have no available chunk yet.
  UPDATE pg_temp._df_want w SET unmet = coalesce(u.n, 0)
    FROM (SELECT e.c_ds, e.c_key, count(*) AS n
            FROM pg_temp._df_edge e
            JOIN pg_temp._df_want iw ON iw.dataset_id = e.i_ds AND iw.key = e.i_key
           WHERE coalesce(iw.existing_level, 0) < e.need
           GROUP BY e.c_ds, e.c_key) u
   WHERE u.c_ds = w.dataset_id AND u.c_key = w.key AND w.existing_id IS NULL;
  UPDATE pg_temp._df_want w SET unmet = coalesce(w.unmet, 0) + l.n
    FROM (SELECT j.output_id AS ds, count(*) AS n
            FROM dataflow.job_input jl JOIN dataflow.job j ON j.id = jl.job_id
           WHERE jl.mapping = 'latest'
             AND NOT EXISTS (SELECT FROM dataflow.chunk lc
                              WHERE lc.dataset_id = jl.dataset_id AND dataflow._level(lc.status) >= jl.need)
           GROUP BY j.output_id) l
   WHERE l.ds = w.dataset_id AND w.existing_id IS NULL;

  WITH ins AS (
    INSERT INTO dataflow.chunk (dataset_id, key, ord, status, unmet, not_before, backfill_id)
    SELECT w.dataset_id, w.key, w.ord,
           CASE WHEN j.id IS NOT NULL AND coalesce(w.unmet, 0) = 0 THEN 'queued' ELSE 'waiting' END,
           coalesce(w.unmet, 0), now(), bf
      FROM pg_temp._df_want w
      LEFT JOIN dataflow.job j ON j.output_id = w.dataset_id
     WHERE w.existing_id IS NULL
     ORDER BY w.dataset_id, w.ord, w.key
    ON CONFLICT ON CONSTRAINT chunk_dataset_key DO NOTHING
    RETURNING id, dataset_id, key, status
  )
  UPDATE pg_temp._df_want w SET chunk_id = ins.id, status = ins.status
    FROM ins WHERE w.dataset_id = ins.dataset_id AND w.key = ins.key;
  GET DIAGNOSTICS n_created = ROW_COUNT;

  IF n_created = 0 THEN
    DELETE FROM dataflow.backfill WHERE id = bf;
    RETURN 0;
  END IF;
  UPDATE dataflow.backfill SET created = n_created WHERE id = bf;
  -- A large insert leaves the planner's statistics of dataflow.chunk stale for whoever plans
  -- next (lease, propagation); sample now, own uncommitted rows included.
  IF n_created >= 1000 AND n_created > 0.1 * greatest((SELECT c.reltuples FROM pg_class c
                                                       WHERE c.oid = 'dataflow.chunk'::regclass), 0) THEN
    ANALYZE dataflow.chunk;
  END IF;

  -- Chunks a concurrent register() (or expect()) inserted while this call ran: neither
  -- existing when we looked nor created by us. Find them now.
  UPDATE pg_temp._df_want w SET existing_id = c.id
    FROM dataflow.chunk c
   WHERE w.chunk_id IS NULL AND w.status IS NULL AND c.dataset_id = w.dataset_id AND c.key = w.key;

  INSERT INTO dataflow.dep (input, consumer, need)
  SELECT coalesce(iw.chunk_id, iw.existing_id), cw.chunk_id, e.need
    FROM pg_temp._df_edge e
    JOIN pg_temp._df_want cw ON cw.dataset_id = e.c_ds AND cw.key = e.c_key
    JOIN pg_temp._df_want iw ON iw.dataset_id = e.i_ds AND iw.key = e.i_key
   WHERE cw.chunk_id IS NOT NULL
  ON CONFLICT DO NOTHING;

  -- The same for the new edges (lease's lineage insert joins dep by consumer) and queue rows.
  IF n_created >= 1000 AND n_created > 0.1 * greatest((SELECT c.reltuples FROM pg_class c
                                                       WHERE c.oid = 'dataflow.dep'::regclass), 0) THEN
    ANALYZE dataflow.dep;
    ANALYZE dataflow.queue;
  END IF;

  INSERT INTO dataflow.latest_wait (dataset_id, consumer, need)
  SELECT jl.dataset_id, w.chunk_id, jl.need
    FROM pg_temp._df_want w
    JOIN dataflow.job j ON j.output_id = w.dataset_id
    JOIN dataflow.job_input jl ON jl.job_id = j.id AND jl.mapping = 'latest'
   WHERE w.chunk_id IS NOT NULL
     AND NOT EXISTS (SELECT FROM dataflow.chunk lc
                      WHERE lc.dataset_id = jl.dataset_id AND dataflow._level(lc.status) >= jl.need);

  -- Those concurrently inserted inputs were invisible to the counts above, and their
  -- propagation could not see our dep edges: lock them and recount their new consumers,
  -- or those would wait forever.
  IF EXISTS (SELECT FROM pg_temp._df_want w WHERE w.chunk_id IS NULL AND w.status IS NULL) THEN
    PERFORM 1 FROM dataflow.chunk c JOIN dataflow.dataset cd ON cd.id = c.dataset_id
     WHERE c.id = ANY (ARRAY(SELECT w.existing_id FROM pg_temp._df_want w
                              WHERE w.chunk_id IS NULL AND w.status IS NULL))
     ORDER BY cd.rank, c.id FOR SHARE OF c;
    WITH cons AS (
      SELECT DISTINCT dp.consumer
        FROM pg_temp._df_want w
        JOIN dataflow.dep dp ON dp.input = w.existing_id
       WHERE w.chunk_id IS NULL AND w.status IS NULL
    ), cnt AS (
      SELECT cons.consumer,
             (SELECT count(*) FROM dataflow.dep dp JOIN dataflow.chunk i ON i.id = dp.input
               WHERE dp.consumer = cons.consumer AND dataflow._level(i.status) < dp.need)
           + (SELECT count(*) FROM dataflow.latest_wait lw WHERE lw.consumer = cons.consumer) AS n
        FROM cons JOIN pg_temp._df_want nw ON nw.chunk_id = cons.consumer
    ), upd AS (
      UPDATE dataflow.chunk c
         SET unmet = cnt.n, status = CASE WHEN cnt.n = 0 THEN 'queued' ELSE 'waiting' END
        FROM cnt WHERE c.id = cnt.consumer AND c.unmet <> cnt.n
      RETURNING c.id, c.status
    )
    UPDATE pg_temp._df_want w SET status = upd.status FROM upd WHERE w.chunk_id = upd.id;
  END IF;

  INSERT INTO dataflow.event (dataset_id, chunk_id, key, version, from_status, to_status, actor, detail)
  SELECT w.dataset_id, w.chunk_id, w.key, 1, NULL, w.status, actor,
         jsonb_build_object('reason', 'expect', 'backfill', bf)
    FROM pg_temp._df_want w
   WHERE w.chunk_id IS NOT NULL;

  RETURN n_created;
END $$;
