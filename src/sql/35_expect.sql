-- expect(): create the expected chunks of a key range and, walking the job
-- graph upstream, every input chunk they need (placeholders for sources).
-- Set-based end to end, so a million-key backfill is a handful of statements.

CREATE FUNCTION dataflow.expect(dataset text, from_key text, to_key text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d dataflow.dataset;
  n_created bigint;
  actor text := dataflow._actor();
  lat integer;
  bf integer;
BEGIN
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

  IF to_regclass('pg_temp._df_want') IS NOT NULL THEN
    DROP TABLE pg_temp._df_want;
  END IF;
  CREATE TEMP TABLE _df_want (
    dataset_id integer NOT NULL, key text NOT NULL, ord bigint, chunk_id bigint, status text
  ) ON COMMIT DROP;

  -- Every (dataset, key) the range needs, following same/window/rollup inputs upstream.
  INSERT INTO pg_temp._df_want (dataset_id, key, ord)
  WITH RECURSIVE want(dataset_id, key, ord) AS (
    SELECT d.id, r.key, r.ord FROM dataflow._key_range(d.key_kind, from_key, to_key, 10000000) r
    UNION
    SELECT ji.dataset_id, x.key, x.ord
      FROM want w
      JOIN dataflow.job j ON j.output_id = w.dataset_id
      JOIN dataflow.job_input ji ON ji.job_id = j.id AND ji.mapping IN ('same', 'window', 'rollup')
      JOIN dataflow.dataset ind ON ind.id = ji.dataset_id
      CROSS JOIN LATERAL dataflow._input_keys(ji.mapping, ind.key_kind, ji.lo, ji.hi, w.key, w.ord) x
  )
  SELECT * FROM want;
  CREATE INDEX ON pg_temp._df_want (dataset_id, key);
  ANALYZE pg_temp._df_want;

  -- Lock the chunks that already exist, so an input completing concurrently
  -- either finishes before we read its status or sees our dep edges after.
  -- They are marked 'existing': any other input chunk this call does not create was inserted
  -- by a concurrent transaction (see the recount below).
  WITH locked AS (
    SELECT c.dataset_id, c.key
      FROM dataflow.chunk c JOIN pg_temp._df_want w ON w.dataset_id = c.dataset_id AND w.key = c.key
     ORDER BY c.id FOR SHARE OF c)
  UPDATE pg_temp._df_want w SET status = 'existing'
    FROM locked l WHERE w.dataset_id = l.dataset_id AND w.key = l.key;
  -- The same for `latest` inputs: propagation of those datasets takes this lock too.
  FOR lat IN SELECT DISTINCT ji.dataset_id
               FROM dataflow.job_input ji JOIN dataflow.job j ON j.id = ji.job_id
              WHERE ji.mapping = 'latest' AND j.output_id IN (SELECT DISTINCT w.dataset_id FROM pg_temp._df_want w)
              ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock(7406, lat);
  END LOOP;

  INSERT INTO dataflow.backfill (dataset_id, from_key, to_key, actor)
  VALUES (d.id, from_key, to_key, actor) RETURNING id INTO bf;

  WITH latest_unmet AS (
    SELECT jl.job_id, jl.dataset_id, jl.need
      FROM dataflow.job_input jl
     WHERE jl.mapping = 'latest'
       AND NOT EXISTS (SELECT FROM dataflow.chunk lc
                        WHERE lc.dataset_id = jl.dataset_id AND dataflow._level(lc.status) >= jl.need)
  ), ins AS (
    INSERT INTO dataflow.chunk (dataset_id, key, ord, status, unmet, not_before, backfill_id)
    SELECT w.dataset_id, w.key, w.ord,
           CASE WHEN j.id IS NOT NULL AND coalesce(u.n, 0) + coalesce(l.n, 0) = 0 THEN 'queued' ELSE 'waiting' END,
           coalesce(u.n, 0) + coalesce(l.n, 0), now(), bf
      FROM pg_temp._df_want w
      LEFT JOIN dataflow.job j ON j.output_id = w.dataset_id
      LEFT JOIN LATERAL (
        SELECT count(*) FILTER (WHERE ic.id IS NULL OR dataflow._level(ic.status) < ji.need) AS n
          FROM dataflow.job_input ji
          JOIN dataflow.dataset ind ON ind.id = ji.dataset_id
          CROSS JOIN LATERAL dataflow._input_keys(ji.mapping, ind.key_kind, ji.lo, ji.hi, w.key, w.ord) x
          LEFT JOIN dataflow.chunk ic ON ic.dataset_id = ji.dataset_id AND ic.key = x.key
         WHERE ji.job_id = j.id AND ji.mapping IN ('same', 'window', 'rollup')
      ) u ON j.id IS NOT NULL
      LEFT JOIN LATERAL (SELECT count(*) AS n FROM latest_unmet lu WHERE lu.job_id = j.id) l
        ON j.id IS NOT NULL
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

  INSERT INTO dataflow.dep (input, consumer, need)
  SELECT ic.id, w.chunk_id, ji.need
    FROM pg_temp._df_want w
    JOIN dataflow.job j ON j.output_id = w.dataset_id
    JOIN dataflow.job_input ji ON ji.job_id = j.id AND ji.mapping IN ('same', 'window', 'rollup')
    JOIN dataflow.dataset ind ON ind.id = ji.dataset_id
    CROSS JOIN LATERAL dataflow._input_keys(ji.mapping, ind.key_kind, ji.lo, ji.hi, w.key, w.ord) x
    JOIN dataflow.chunk ic ON ic.dataset_id = ji.dataset_id AND ic.key = x.key
   WHERE w.chunk_id IS NOT NULL
  ON CONFLICT DO NOTHING;

  INSERT INTO dataflow.latest_wait (dataset_id, consumer, need)
  SELECT jl.dataset_id, w.chunk_id, jl.need
    FROM pg_temp._df_want w
    JOIN dataflow.job j ON j.output_id = w.dataset_id
    JOIN dataflow.job_input jl ON jl.job_id = j.id AND jl.mapping = 'latest'
   WHERE w.chunk_id IS NOT NULL
     AND NOT EXISTS (SELECT FROM dataflow.chunk lc
                      WHERE lc.dataset_id = jl.dataset_id AND dataflow._level(lc.status) >= jl.need);

  -- An input chunk that a concurrent register() (or expect()) inserted while this call ran was
  -- invisible to the counts above, and its propagation could not see our dep edges: lock such
  -- chunks and recount their new consumers, or those would wait forever.
  IF EXISTS (SELECT FROM pg_temp._df_want w WHERE w.chunk_id IS NULL AND w.status IS NULL) THEN
    PERFORM 1 FROM dataflow.chunk c JOIN pg_temp._df_want w ON w.dataset_id = c.dataset_id AND w.key = c.key
     WHERE w.chunk_id IS NULL AND w.status IS NULL
     ORDER BY c.id FOR SHARE OF c;
    WITH cons AS (
      SELECT DISTINCT dp.consumer
        FROM pg_temp._df_want w
        JOIN dataflow.chunk c ON c.dataset_id = w.dataset_id AND c.key = w.key
        JOIN dataflow.dep dp ON dp.input = c.id
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
COMMENT ON FUNCTION dataflow.expect(text, text, text) IS
  'Backfill: create the expected chunks of dataset from from_key to to_key (inclusive) and every '
  'upstream chunk they need; returns how many chunks were created (existing ones are left alone)';
