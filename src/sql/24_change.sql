-- Changing a flow that has already produced data: add_input, drop_input and alter_input
-- on a job whose output has chunks, and create_job on a dataset that has chunks (a
-- source becoming produced). A job has a definition version, bumped by each such change
-- and recorded in each run at lease; dataflow.outdated lists the available chunks an
-- older definition built. Nothing already produced is re-run unless asked (rerun => true,
-- or resubmit()).
--
-- A change rebuilds the dep edges of every chunk of the output from one input, set-based
-- (one DELETE and one INSERT ... SELECT), recounts unmet for the output's chunks in one
-- UPDATE, and moves waiting <-> queued the way _propagate does. The lock order of a
-- change (docs/internals.md §3, §4): 7407 exclusive (the job graph), the job row, 7403
-- (the job's batch cut, incremental jobs), the input chunks it creates through
-- _expect_wanted, 7406 (a latest input), then the output's chunks and the input chunks
-- their edges read, in one statement in (rank, id) order; running leases are counted
-- only once those are held.

ALTER TABLE dataflow.job ADD COLUMN definition_version bigint NOT NULL DEFAULT 1
  CONSTRAINT job_definition_version_check CHECK (definition_version >= 1);
COMMENT ON COLUMN dataflow.job.definition_version IS
  'Bumped by every change of the job''s inputs or mappings once its output has chunks; recorded in each run';
ALTER TABLE dataflow.run ADD COLUMN definition_version bigint NOT NULL DEFAULT 1;
COMMENT ON COLUMN dataflow.run.definition_version IS 'The definition version of its job when the run was leased';

CREATE TABLE dataflow.job_definition (
  job_id     integer NOT NULL REFERENCES dataflow.job (id) ON DELETE CASCADE,
  version    bigint NOT NULL CHECK (version >= 1),
  changed_at timestamptz NOT NULL DEFAULT now(),
  actor      text NOT NULL,
  change     jsonb NOT NULL,
  PRIMARY KEY (job_id, version)
);
COMMENT ON TABLE dataflow.job_definition IS
  'History of a job''s definition: what each version changed ({"input_added": ...}, {"window": {"from", "to"}}, ...)';

-- The version of its job's definition that built an available chunk: its run's, or 0
-- for a chunk registered before its dataset had a job.
CREATE FUNCTION dataflow._built_version(p_run bigint) RETURNS bigint
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN p_run IS NULL THEN 0
            ELSE coalesce((SELECT r.definition_version FROM dataflow.run r WHERE r.id OPERATOR(pg_catalog.=) p_run), 1) END;

-- The checks add_input and alter_input share: a mapping, its window, require and
-- max_chunks, and whether the mapping fits the key kinds and the job's other inputs (with
-- p_altering, the input d itself is not one of them).
CREATE FUNCTION dataflow._check_input(j dataflow.job, d dataflow.dataset, o dataflow.dataset, mapping text,
                                      lo integer, hi integer, require text, max_chunks integer,
                                      p_altering boolean)
RETURNS void LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF mapping IS NULL OR mapping NOT IN ('same', 'window', 'rollup', 'latest', 'incremental') THEN
    RAISE EXCEPTION 'invalid mapping "%"', coalesce(mapping, 'NULL')
      USING ERRCODE = CASE WHEN mapping IS NULL THEN '22004' ELSE '22023' END, HINT = 'Mappings are same, window, rollup, latest and incremental.';
  END IF;
  IF mapping = 'window' THEN
    IF lo IS NULL OR hi IS NULL OR lo > hi OR hi - lo >= 10000 THEN
      RAISE EXCEPTION 'a window mapping needs lo <= hi, at most 10000 keys apart'
        USING ERRCODE = '22023', HINT = 'A rolling 7 days is lo => -6, hi => 0.';
    END IF;
  ELSIF lo IS NOT NULL OR hi IS NOT NULL THEN
    RAISE EXCEPTION 'lo and hi apply to the window mapping only' USING ERRCODE = '22023';
  END IF;
  IF require IS NOT NULL AND require NOT IN ('ready', 'validated') THEN
    RAISE EXCEPTION 'invalid require "%"', require
      USING ERRCODE = '22023', HINT = 'require is ready or validated (NULL: the input dataset decides).';
  END IF;
  IF max_chunks IS NOT NULL AND mapping <> 'incremental' THEN
    RAISE EXCEPTION 'max_chunks applies to the incremental mapping only, not %', mapping
      USING ERRCODE = '22023', HINT = 'Leave max_chunks NULL, or cap the batches of an incremental input.';
  END IF;
  IF max_chunks <= 0 THEN
    RAISE EXCEPTION 'max_chunks must be positive (got %)', max_chunks
      USING ERRCODE = '22023', HINT = 'Give the most chunks of this input one batch may take, or NULL for no cap.';
  END IF;
  IF (mapping IN ('same', 'window') AND d.key_kind <> o.key_kind)
     OR (mapping = 'window' AND d.key_kind = 'text')
     OR (mapping = 'rollup' AND NOT (o.key_kind = 'date' AND d.key_kind = 'hour'))
     OR (mapping = 'incremental' AND o.key_kind <> 'int') THEN
    RAISE EXCEPTION 'mapping % does not fit % keys (%) from % keys (%)',
                    mapping, o.key_kind, o.name, d.key_kind, d.name
      USING ERRCODE = '42P17',
            HINT = 'same: equal kinds; window: equal ordered kinds (date, hour, int); '
                   'rollup: date output from hour input; latest: any; incremental: int (batch number) output.';
  END IF;
  IF mapping = 'incremental' AND EXISTS (SELECT FROM dataflow.job_input ji
                                          WHERE ji.job_id = j.id AND NOT (p_altering AND ji.dataset_id = d.id) AND ji.mapping <> 'latest') THEN
    RAISE EXCEPTION 'an incremental input cannot be combined with same, window or rollup inputs'
      USING ERRCODE = '42P17', HINT = 'A batch job may add latest inputs (dimensions) only.';
  END IF;
  IF mapping IN ('same', 'window', 'rollup') AND EXISTS (SELECT FROM dataflow.job_input ji
                                          WHERE ji.job_id = j.id AND NOT (p_altering AND ji.dataset_id = d.id) AND ji.mapping = 'incremental') THEN
    RAISE EXCEPTION 'job "%" consumes batches (incremental); it cannot also map keys with %', j.name, mapping
      USING ERRCODE = '42P17';
  END IF;
END $$;

-- Take the locks of a change that come before any chunk lock: 7407 (the job graph:
-- expect() holds it shared while it reads the graph; two changes, and a change and
-- every expect(), never overlap), then the job row (alter_job locks it too). Returns
-- the job as locked.
CREATE FUNCTION dataflow._change_begin(p_job text) RETURNS dataflow.job
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE j dataflow.job := dataflow._job(p_job);
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    PERFORM dataflow._read_committed();   -- raises (00_schema.sql)
  END IF;
  PERFORM pg_advisory_xact_lock(7407, 0);
  SELECT * INTO j FROM dataflow.job jb WHERE jb.id = j.id FOR UPDATE;
  IF NOT FOUND THEN   -- dropped while we waited
    PERFORM dataflow._not_found('job', p_job, 'create it with dataflow.create_job(name, output => dataset).');
  END IF;
  RETURN j;
END $$;

-- Apply a change of job p_job's input p_dataset (already written to job_input: added,
-- altered, or deleted) to the chunks its output already has; p_old is the input's row
-- before the change (NULL: added); p_dataset NULL: the job was just created on a dataset
-- that had chunks. Set-based: one statement per table, whatever the number of chunks. A
-- change between key-offset mappings (same, window lo..hi; same is the window 0..0) only
-- rewrites the difference: the edges of the offsets that leave the window are deleted,
-- those of the offsets that enter it inserted, the others kept (their need follows). Refuses (55006) while the job has running leases unless p_wait:
-- those runs keep the version they were leased with. Bumps the definition version
-- (recording p_change) unless the output has no chunk, and with p_rerun resubmits the
-- available chunks an older definition built, in this transaction. Returns
-- {"definition_version", "rebuilt", "requeued", "rerun"} (rebuilt: output chunks).
CREATE FUNCTION dataflow._change_apply(p_job integer, p_dataset integer, p_old dataflow.job_input,
                                       p_change jsonb, p_wait boolean, p_rerun boolean)
RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off AS $$
DECLARE
  j dataflow.job;
  ji dataflow.job_input;
  ind dataflow.dataset;
  actor text := dataflow._actor();
  n_chunks bigint;
  n_running bigint;
  n_moved bigint := 0;
  n_rerun bigint := 0;
  k1 text; k2 text;
  new_version bigint;
  roots bigint[];
  p_old_mapping text := p_old.mapping;
  diff boolean := false;       -- window difference only (same/window -> same/window)
  o_lo bigint; o_hi bigint; n_lo bigint; n_hi bigint;
  ent_lo bigint[]; ent_hi bigint[];   -- offset ranges entering the window
  lv_lo bigint[]; lv_hi bigint[];     -- offset ranges leaving it
BEGIN
  IF p_wait IS NULL OR p_rerun IS NULL THEN
    RAISE EXCEPTION '% must not be NULL', CASE WHEN p_wait IS NULL THEN 'wait' ELSE 'rerun' END
      USING ERRCODE = '22004', HINT = 'Leave wait and rerun out for their defaults (false).';
  END IF;
  SELECT * INTO j FROM dataflow.job jb WHERE jb.id = p_job;
  SELECT count(*) INTO n_chunks FROM dataflow.chunk c WHERE c.dataset_id = j.output_id;
  IF n_chunks = 0 THEN
    -- Nothing was built: the definition is still being written, and stays at its version.
    PERFORM dataflow._rerank();
    RETURN jsonb_build_object('definition_version', j.definition_version, 'rebuilt', 0, 'requeued', 0, 'rerun', 0);
  END IF;
  IF p_dataset IS NOT NULL THEN
    SELECT * INTO ind FROM dataflow.dataset ds WHERE ds.id = p_dataset;
    SELECT * INTO ji FROM dataflow.job_input x WHERE x.job_id = p_job AND x.dataset_id = p_dataset;
  END IF;
  IF p_old_mapping IN ('same', 'window') AND ji.mapping IN ('same', 'window') THEN
    -- The window as offsets from the output key (same: 0..0); what enters is the new
    -- window minus the old one, what leaves the old minus the new: at most two ranges each.
    diff := true;
    o_lo := CASE WHEN p_old_mapping = 'window' THEN p_old.lo ELSE 0 END;
    o_hi := CASE WHEN p_old_mapping = 'window' THEN p_old.hi ELSE 0 END;
    n_lo := CASE WHEN ji.mapping = 'window' THEN ji.lo ELSE 0 END;
    n_hi := CASE WHEN ji.mapping = 'window' THEN ji.hi ELSE 0 END;
    SELECT array_agg(r.lo ORDER BY r.lo), array_agg(r.hi ORDER BY r.lo) INTO ent_lo, ent_hi
      FROM (VALUES (n_lo, least(n_hi, o_lo - 1)), (greatest(n_lo, o_hi + 1), n_hi)) r(lo, hi) WHERE r.lo <= r.hi;
    SELECT array_agg(r.lo ORDER BY r.lo), array_agg(r.hi ORDER BY r.lo) INTO lv_lo, lv_hi
      FROM (VALUES (o_lo, least(o_hi, n_lo - 1)), (greatest(o_lo, n_hi + 1), o_hi)) r(lo, hi) WHERE r.lo <= r.hi;
  END IF;
  IF EXISTS (SELECT FROM dataflow.job_input x WHERE x.job_id = p_job AND x.mapping = 'incremental')
     OR p_old_mapping = 'incremental' THEN
    PERFORM pg_advisory_xact_lock(7403, p_job);   -- no batch is cut meanwhile (47_incremental.sql)
  END IF;

  IF dataflow._own_work_table('_df_change') THEN
    DROP TABLE pg_temp._df_change;
  END IF;
  -- One row per new edge: an output chunk, the input key it needs, the input chunk.
  CREATE TEMP TABLE pg_temp._df_change (
    consumer bigint NOT NULL, i_key text NOT NULL, i_ord bigint, need smallint NOT NULL, input bigint
  ) ON COMMIT DROP;
  IF ji.mapping IN ('same', 'window', 'rollup') THEN
    BEGIN
      -- the input chunk of each edge found as the row is made (one write of the work
      -- table; only the keys expected below are looked up again)
      IF NOT diff THEN
        INSERT INTO pg_temp._df_change (consumer, i_key, i_ord, need, input)
        SELECT c.id, x.key, x.ord, ji.need, i.id
          FROM dataflow.chunk c
         CROSS JOIN LATERAL dataflow._input_keys(ji.mapping, ind.key_kind, ji.lo, ji.hi, c.key, c.ord) x
          LEFT JOIN dataflow.chunk i ON i.dataset_id = p_dataset AND i.key = x.key
         WHERE c.dataset_id = j.output_id;
      ELSIF ent_lo IS NOT NULL THEN
        -- only the edges of the offsets that enter the window
        INSERT INTO pg_temp._df_change (consumer, i_key, i_ord, need, input)
        SELECT c.id, x.key, x.ord, ji.need, i.id
          FROM dataflow.chunk c
         CROSS JOIN unnest(ent_lo, ent_hi) r(lo, hi)
         CROSS JOIN LATERAL dataflow._input_keys('window', ind.key_kind, r.lo::integer, r.hi::integer, c.key, c.ord) x
          LEFT JOIN dataflow.chunk i ON i.dataset_id = p_dataset AND i.key = x.key
         WHERE c.dataset_id = j.output_id;
      END IF;
    EXCEPTION WHEN numeric_value_out_of_range THEN
      RAISE EXCEPTION 'the % input "%" of job "%" needs keys outside the range of % keys', ji.mapping, ind.name,
                      j.name, ind.key_kind
        USING ERRCODE = '22003', HINT = 'The output has chunks too close to an end of the key range for this window.';
    END;
    ANALYZE pg_temp._df_change;
    -- Input chunks that do not exist yet are expected, with what they need upstream, as
    -- expect() makes them (placeholders for a source).
    IF dataflow._own_work_table('_df_want') THEN
      DROP TABLE pg_temp._df_want;
    END IF;
    IF dataflow._own_work_table('_df_edge') THEN
      DROP TABLE pg_temp._df_edge;
    END IF;
    CREATE TEMP TABLE pg_temp._df_want (
      dataset_id integer NOT NULL, key text NOT NULL, ord bigint,
      existing_id bigint, existing_level integer, chunk_id bigint, status text, unmet integer,
      PRIMARY KEY (dataset_id, key)
    ) ON COMMIT DROP;
    CREATE TEMP TABLE pg_temp._df_edge (
      c_ds integer NOT NULL, c_key text NOT NULL, i_ds integer NOT NULL, i_key text NOT NULL, need smallint NOT NULL
    ) ON COMMIT DROP;
    INSERT INTO pg_temp._df_want (dataset_id, key, ord)
    SELECT DISTINCT p_dataset, n.i_key, n.i_ord FROM pg_temp._df_change n WHERE n.input IS NULL;
    IF FOUND THEN
      SELECT (array_agg(w.key ORDER BY w.ord, w.key))[1], (array_agg(w.key ORDER BY w.ord DESC, w.key DESC))[1]
        INTO k1, k2 FROM pg_temp._df_want w;
      IF EXISTS (SELECT FROM dataflow.job pj JOIN dataflow.job_input px ON px.job_id = pj.id
                  WHERE pj.output_id = p_dataset AND px.mapping = 'incremental') THEN
        RAISE EXCEPTION 'input "%" is made of incremental batches; its missing chunks cannot be expected', ind.name
          USING ERRCODE = '55000', HINT = 'Map a batch dataset with latest, or wait until its batches exist.';
      END IF;
      PERFORM dataflow._expect_wanted(ind, k1, k2, actor);
      UPDATE pg_temp._df_change n SET input = i.id
        FROM dataflow.chunk i WHERE n.input IS NULL AND i.dataset_id = p_dataset AND i.key = n.i_key;
    END IF;
  END IF;
  IF ji.mapping = 'latest' OR p_old_mapping = 'latest' THEN
    PERFORM pg_advisory_xact_lock(7406, p_dataset);   -- as expect(), before any chunk lock
  END IF;

  -- The output's chunks and the inputs their new edges read, in (rank, id) order: a
  -- lease, completion, resubmit or expect of any of them is either committed before
  -- (read below with fresh snapshots) or waits for this transaction and then sees
  -- the new edges.
  -- (A semi-join on the union, not an OR with a subplan: with 700,000 edges the subplan is
  -- not hashed in work_mem and was rescanned for every chunk.)
  PERFORM 1 FROM dataflow.chunk c JOIN dataflow.dataset cd ON cd.id = c.dataset_id
   WHERE c.id IN (SELECT x.id FROM dataflow.chunk x WHERE x.dataset_id = j.output_id
                  UNION SELECT n.input FROM pg_temp._df_change n WHERE n.input IS NOT NULL)
   ORDER BY cd.rank, c.id
     FOR UPDATE OF c;
  -- Ranks change only now: the locks above follow the ranks every other transaction
  -- still reads (docs/internals.md §3, "Rank changes").
  PERFORM dataflow._rerank();
  SELECT count(*) INTO n_running FROM dataflow.run r WHERE r.job_id = p_job AND r.status = 'running';
  IF n_running > 0 AND NOT p_wait THEN
    RAISE EXCEPTION 'job "%" has % running lease(s)', j.name, n_running
      USING ERRCODE = '55006',
            HINT = 'Pass wait => true to change it now: runs leased after the change follow it, the running '
                   'ones finish as definition version ' || j.definition_version
                   || ' (see dataflow.outdated); or pause the job and let them end.';
  END IF;

  IF ji.mapping = 'incremental' AND p_old_mapping = 'incremental' THEN
    -- An incremental input altered (its require): the batches keep the edges to the input
    -- chunks they took, at the new level, and so do the pending ones.
    UPDATE dataflow.dep dp SET need = ji.need
      FROM dataflow.chunk c, dataflow.chunk i
     WHERE c.dataset_id = j.output_id AND dp.consumer = c.id AND i.id = dp.input AND i.dataset_id = p_dataset
       AND dp.need <> ji.need;
    UPDATE dataflow.incremental_pending p SET need = ji.need
     WHERE p.job_id = p_job AND p.dataset_id = p_dataset AND p.need <> ji.need;
  ELSIF diff THEN
    -- A window moved or resized: only the edges of the offsets that leave it go; the kept
    -- ones get the new need (require changed), the entering ones are inserted below.
    IF lv_lo IS NOT NULL THEN
      DELETE FROM dataflow.dep dp
       USING dataflow.chunk c
       CROSS JOIN unnest(lv_lo, lv_hi) r(lo, hi)
       CROSS JOIN LATERAL dataflow._input_keys('window', ind.key_kind, r.lo::integer, r.hi::integer, c.key, c.ord) x
        JOIN dataflow.chunk i ON i.dataset_id = p_dataset AND i.key = x.key
       WHERE c.dataset_id = j.output_id AND dp.input = i.id AND dp.consumer = c.id;
    END IF;
    IF p_old.need IS DISTINCT FROM ji.need THEN
      UPDATE dataflow.dep dp SET need = ji.need
        FROM dataflow.chunk c, dataflow.chunk i
       WHERE c.dataset_id = j.output_id AND dp.consumer = c.id AND i.id = dp.input AND i.dataset_id = p_dataset
         AND dp.need <> ji.need;
    END IF;
  ELSIF p_dataset IS NOT NULL THEN
    DELETE FROM dataflow.dep dp USING dataflow.chunk c, dataflow.chunk i
     WHERE c.dataset_id = j.output_id AND dp.consumer = c.id AND i.id = dp.input AND i.dataset_id = p_dataset;
    DELETE FROM dataflow.latest_wait w USING dataflow.chunk c
     WHERE w.dataset_id = p_dataset AND c.dataset_id = j.output_id AND w.consumer = c.id;
    IF ji.mapping = 'incremental' IS NOT TRUE THEN
      DELETE FROM dataflow.incremental_pending p WHERE p.job_id = p_job AND p.dataset_id = p_dataset;
    END IF;
  END IF;
  -- in key order of dep's primary key: its index pages are written in order, not at random
  INSERT INTO dataflow.dep (input, consumer, need)
  SELECT n.input, n.consumer, n.need FROM pg_temp._df_change n ORDER BY n.input, n.consumer
  ON CONFLICT DO NOTHING;
  IF ji.mapping = 'latest' AND NOT EXISTS (SELECT FROM dataflow.chunk lc
                                            WHERE lc.dataset_id = p_dataset AND dataflow._level(lc.status) >= ji.need) THEN
    INSERT INTO dataflow.latest_wait (dataset_id, consumer, need)
    SELECT p_dataset, c.id, ji.need FROM dataflow.chunk c WHERE c.dataset_id = j.output_id;
  END IF;

  new_version := j.definition_version + 1;
  -- unmet recounted from the edges for every chunk of the output; a waiting chunk left
  -- with none becomes queued, a queued one that gained one waits (as _propagate does).
  -- Counted by joins and grouping, materialized once (as correlated subqueries in an inlined
  -- CTE they ran three times per chunk: 1.5 s for 20,000 chunks).
  WITH cnt AS MATERIALIZED (
    SELECT c.id, c.status, c.unmet, coalesce(e.n, 0) + coalesce(l.n, 0) AS n
      FROM dataflow.chunk c
      LEFT JOIN (SELECT dp.consumer, count(*) FILTER (WHERE dataflow._level(i.status) < dp.need) AS n
                   FROM dataflow.chunk oc JOIN dataflow.dep dp ON dp.consumer = oc.id
                   JOIN dataflow.chunk i ON i.id = dp.input
                  WHERE oc.dataset_id = j.output_id GROUP BY dp.consumer) e ON e.consumer = c.id
      LEFT JOIN (SELECT lw.consumer, count(*) AS n
                   FROM dataflow.chunk oc JOIN dataflow.latest_wait lw ON lw.consumer = oc.id
                  WHERE oc.dataset_id = j.output_id GROUP BY lw.consumer) l ON l.consumer = c.id
     WHERE c.dataset_id = j.output_id
  ), upd AS (
    UPDATE dataflow.chunk c
       SET unmet = cnt.n,
           status = CASE WHEN cnt.status = 'waiting' AND cnt.n = 0 THEN 'queued'
                         WHEN cnt.status = 'queued' AND cnt.n > 0 THEN 'waiting'
                         ELSE cnt.status END,
           not_before = CASE WHEN cnt.status = 'waiting' AND cnt.n = 0 THEN now() ELSE c.not_before END,
           updated_at = now()
      FROM cnt
     WHERE c.id = cnt.id
       AND (cnt.unmet <> cnt.n OR (cnt.status = 'waiting' AND cnt.n = 0) OR (cnt.status = 'queued' AND cnt.n > 0))
    RETURNING c.id, c.dataset_id, c.key, c.version, cnt.status AS old_status, c.status AS new_status
  ), ev AS (
    INSERT INTO dataflow.event (dataset_id, chunk_id, key, version, from_status, to_status, actor, detail)
    SELECT u.dataset_id, u.id, u.key, u.version, u.old_status, u.new_status, actor,
           jsonb_build_object('reason', 'definition changed', 'job', j.name, 'definition_version', new_version)
      FROM upd u WHERE u.old_status <> u.new_status
    RETURNING 1
  )
  SELECT count(*) INTO n_moved FROM ev;

  UPDATE dataflow.job jb SET definition_version = new_version WHERE jb.id = p_job;
  INSERT INTO dataflow.job_definition (job_id, version, actor, change) VALUES (p_job, new_version, actor, p_change);
  INSERT INTO dataflow.event (dataset_id, to_status, actor, detail)
  VALUES (j.output_id, 'redefined', actor,
          jsonb_build_object('job', j.name, 'definition_version', new_version, 'change', p_change,
                             'running', n_running));

  IF p_rerun THEN
    SELECT array_agg(c.id ORDER BY c.id) INTO roots FROM dataflow.chunk c
     WHERE c.dataset_id = j.output_id AND c.status IN ('ready', 'validated')
       AND dataflow._built_version(c.run_id) < new_version;
    IF roots IS NOT NULL THEN
      SELECT count(*) INTO n_rerun
        FROM dataflow._resubmit(roots, true, false, actor, 'definition changed') r WHERE r.depth = 0;
    END IF;
  END IF;
  IF j.dispatch <> 'pull' AND (n_moved > 0 OR n_rerun > 0) THEN
    PERFORM dataflow._wake();
  END IF;
  RETURN jsonb_build_object('definition_version', new_version, 'rebuilt', n_chunks, 'requeued', n_moved,
                            'rerun', n_rerun);
END $$;

-- A job created on a dataset that already has chunks (a source becoming produced).
-- Its chunks stay as they are: available ones keep their content and count as built by
-- definition version 0 (dataflow.outdated lists them; resubmit rebuilds them), waiting
-- placeholders follow the job (queued: a job with no input yet runs them). Called by
-- create_job after the job row exists.
CREATE FUNCTION dataflow._job_created(p_job integer) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE j dataflow.job; actor text := dataflow._actor();
BEGIN
  SELECT * INTO j FROM dataflow.job jb WHERE jb.id = p_job;
  INSERT INTO dataflow.job_definition (job_id, version, actor, change)
  VALUES (p_job, 1, actor, jsonb_build_object('job_created', j.name));
  -- Before looking for chunks: an expect() in flight (it holds 7407 shared) that read the
  -- graph without this job commits its placeholders first, and they are seen below.
  PERFORM pg_advisory_xact_lock(7407, 0);
  IF EXISTS (SELECT FROM dataflow.chunk c WHERE c.dataset_id = j.output_id) THEN
    -- a fresh job has no running lease, and its version stays 1
    PERFORM 1 FROM dataflow.chunk c WHERE c.dataset_id = j.output_id ORDER BY c.id FOR UPDATE;
    WITH upd AS (
      UPDATE dataflow.chunk c SET status = 'queued', not_before = now(), updated_at = now()
       WHERE c.dataset_id = j.output_id AND c.status = 'waiting' AND c.unmet = 0
      RETURNING c.id, c.dataset_id, c.key, c.version
    )
    INSERT INTO dataflow.event (dataset_id, chunk_id, key, version, from_status, to_status, actor, detail)
    SELECT u.dataset_id, u.id, u.key, u.version, 'waiting', 'queued', actor,
           jsonb_build_object('reason', 'job ' || j.name || ' created: produced now', 'job', j.name,
                              'definition_version', 1)
      FROM upd u;
  END IF;
END $$;

CREATE FUNCTION dataflow.drop_input(job text, dataset text, rerun boolean DEFAULT false, wait boolean DEFAULT false)
RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  j dataflow.job := dataflow._change_begin(job);
  d dataflow.dataset := dataflow._dataset_row(dataset);
  ji dataflow.job_input;
  res jsonb;
BEGIN
  SELECT * INTO ji FROM dataflow.job_input x WHERE x.job_id = j.id AND x.dataset_id = d.id;
  IF NOT FOUND THEN
    PERFORM dataflow._raise('42704', format('job "%s" has no input "%s"', j.name, d.name), NULL,
      coalesce('Its inputs are ' || (SELECT string_agg(ds.name, ', ' ORDER BY ds.name)
                                       FROM dataflow.job_input x JOIN dataflow.dataset ds ON ds.id = x.dataset_id
                                      WHERE x.job_id = j.id) || '.', 'It has no input.'));
  END IF;
  IF NOT (EXISTS (SELECT FROM dataflow.job_input x WHERE x.job_id = j.id AND x.dataset_id <> d.id))
     AND EXISTS (SELECT FROM dataflow.chunk c WHERE c.dataset_id = j.output_id) THEN
    RAISE EXCEPTION '"%" is the last input of job "%", whose output has chunks', d.name, j.name
      USING ERRCODE = '55000',
            HINT = 'Add the input that replaces it first, or drop the job (its output becomes a source).';
  END IF;
  DELETE FROM dataflow.job_input x WHERE x.job_id = j.id AND x.dataset_id = d.id;
  res := dataflow._change_apply(j.id, d.id, ji, jsonb_build_object('input_dropped', d.name), wait, rerun);
  RETURN res;
END $$;
COMMENT ON FUNCTION dataflow.drop_input(text, text, boolean, boolean) IS
  'Remove an input of a job: the edges of every chunk of its output from that input go, unmet and '
  'waiting/queued follow; rerun resubmits the chunks an older definition built; wait allows running leases';

-- max_chunks (an incremental input's cap on the chunks one batch takes) is not part of the
-- definition: changing it alone rebuilds nothing and bumps no version. It takes 7403 after
-- the job row (as a change does), so a batch being cut meanwhile is cut wholly with the old
-- caps and the next one with the new; the batches already cut keep their inputs.
-- max_chunks => -1 removes the cap; NULL keeps it.
CREATE FUNCTION dataflow.alter_input(job text, dataset text, mapping text DEFAULT NULL, lo integer DEFAULT NULL,
                                     hi integer DEFAULT NULL, require text DEFAULT NULL,
                                     max_chunks integer DEFAULT NULL,
                                     rerun boolean DEFAULT false, wait boolean DEFAULT false)
RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  j dataflow.job := dataflow._change_begin(job);
  d dataflow.dataset := dataflow._dataset_row(dataset);
  o dataflow.dataset;
  ji dataflow.job_input;
  new_mapping text; new_lo integer; new_hi integer; new_require text; new_need smallint; new_max integer;
  change jsonb;
  cap jsonb;
  res jsonb;
BEGIN
  IF rerun IS NULL OR wait IS NULL THEN
    PERFORM dataflow._raise('22004', format('%s must not be NULL', CASE WHEN wait IS NULL THEN 'wait' ELSE 'rerun' END),
                            NULL, 'Leave wait and rerun out for their defaults (false).');
  END IF;
  SELECT * INTO ji FROM dataflow.job_input x WHERE x.job_id = j.id AND x.dataset_id = d.id;
  IF NOT FOUND THEN
    PERFORM dataflow._raise('42704', format('job "%s" has no input "%s"', j.name, d.name), NULL,
      'Add it with dataflow.add_input(job, dataset, mapping => ...).');
  END IF;
  SELECT * INTO o FROM dataflow.dataset ds WHERE ds.id = j.output_id;
  new_mapping := coalesce(mapping, ji.mapping);
  IF new_mapping = 'window' THEN
    new_lo := coalesce(lo, CASE WHEN ji.mapping = 'window' THEN ji.lo END);
    new_hi := coalesce(hi, CASE WHEN ji.mapping = 'window' THEN ji.hi END);
  ELSE
    new_lo := lo; new_hi := hi;
  END IF;
  new_require := coalesce(require, ji.require);
  IF (new_mapping = 'incremental') <> (ji.mapping = 'incremental') THEN
    RAISE EXCEPTION 'an input cannot change to or from the incremental mapping'
      USING ERRCODE = '0A000', HINT = 'Drop the input and add it again with the new mapping (drop_input, add_input).';
  END IF;
  IF max_chunks = 0 OR max_chunks < -1 THEN
    RAISE EXCEPTION 'max_chunks must be positive, or -1 to remove the cap (got %)', max_chunks
      USING ERRCODE = '22023', HINT = 'Give the most chunks of this input one batch may take; -1 removes the cap, NULL keeps it.';
  END IF;
  IF max_chunks IS NOT NULL AND new_mapping <> 'incremental' THEN
    RAISE EXCEPTION 'max_chunks applies to the incremental mapping only, not %', new_mapping
      USING ERRCODE = '22023', HINT = 'Leave max_chunks NULL, or cap the batches of an incremental input.';
  END IF;
  new_max := CASE WHEN max_chunks IS NULL THEN ji.max_chunks WHEN max_chunks = -1 THEN NULL ELSE max_chunks END;
  PERFORM dataflow._check_input(j, d, o, new_mapping, new_lo, new_hi, new_require, new_max, true);
  new_need := CASE coalesce(new_require, CASE WHEN d.requires_validation THEN 'validated' ELSE 'ready' END)
                WHEN 'validated' THEN 2 ELSE 1 END;
  change := jsonb_build_object('input', d.name);
  IF new_mapping <> ji.mapping THEN
    change := change || jsonb_build_object('mapping', jsonb_build_object('from', ji.mapping, 'to', new_mapping));
  END IF;
  IF new_mapping = 'window' AND (new_lo, new_hi) IS DISTINCT FROM (ji.lo, ji.hi) THEN
    change := change || jsonb_build_object('window', jsonb_build_object(
      'from', CASE WHEN ji.mapping = 'window' THEN jsonb_build_array(ji.lo, ji.hi) END,
      'to', jsonb_build_array(new_lo, new_hi)));
  END IF;
  IF new_require IS DISTINCT FROM ji.require THEN
    change := change || jsonb_build_object('require', jsonb_build_object('from', ji.require, 'to', new_require));
  END IF;
  IF new_max IS DISTINCT FROM ji.max_chunks THEN
    cap := jsonb_build_object('max_chunks', jsonb_build_object('from', ji.max_chunks, 'to', new_max));
  END IF;
  IF change = jsonb_build_object('input', d.name) AND cap IS NULL THEN
    RETURN jsonb_build_object('definition_version', j.definition_version, 'unchanged', true);
  END IF;
  IF cap IS NOT NULL THEN
    -- no batch is being cut meanwhile: the next batch is the first under the new cap
    PERFORM pg_advisory_xact_lock(7403, j.id);
    INSERT INTO dataflow.event (to_status, actor, detail)
    VALUES ('altered', dataflow._actor(), jsonb_build_object('job', j.name, 'input', d.name, 'changes', cap));
  END IF;
  UPDATE dataflow.job_input x
     SET mapping = new_mapping, lo = new_lo, hi = new_hi, require = new_require, need = new_need, max_chunks = new_max
   WHERE x.job_id = j.id AND x.dataset_id = d.id;
  IF change = jsonb_build_object('input', d.name) THEN
    RETURN jsonb_build_object('definition_version', j.definition_version) || cap;
  END IF;
  res := dataflow._change_apply(j.id, d.id, ji, change, wait, rerun);
  RETURN res || jsonb_build_object('change', change) || coalesce(cap, '{}');
END $$;
COMMENT ON FUNCTION dataflow.alter_input(text, text, text, integer, integer, text, integer, boolean, boolean) IS
  'Change the mapping (window lo/hi), require or max_chunks of a job''s input (NULL keeps a setting; '
  'max_chunks => -1 removes the cap): the edges of every chunk of the output follow (a window change '
  'rewrites only the edges that leave or enter it); rerun resubmits the chunks an older definition built; '
  'wait allows running leases (they finish with their definition version); a max_chunks change alone '
  'applies from the next batch and bumps no version';

-- Available chunks built by an older definition of their job (a chunk registered before
-- its dataset had a job counts as version 0).
CREATE VIEW dataflow.outdated AS
SELECT j.name AS job, d.name AS dataset, c.key, c.status, c.version,
       b.built_version, j.definition_version AS current_version,
       (SELECT jsonb_agg(jd.change ORDER BY jd.version) FROM dataflow.job_definition jd
         WHERE jd.job_id OPERATOR(pg_catalog.=) j.id AND jd.version OPERATOR(pg_catalog.>) b.built_version) AS changes
  FROM dataflow.job j
  JOIN dataflow.dataset d ON d.id OPERATOR(pg_catalog.=) j.output_id
  JOIN dataflow.chunk c ON c.dataset_id OPERATOR(pg_catalog.=) d.id
  LEFT JOIN dataflow.run r ON r.id OPERATOR(pg_catalog.=) c.run_id
 CROSS JOIN LATERAL (SELECT CASE WHEN c.run_id IS NULL THEN 0::bigint
                                 ELSE coalesce(r.definition_version, 1) END AS built_version) b
 WHERE c.status OPERATOR(pg_catalog.=) ANY (ARRAY['ready', 'validated'])
   AND b.built_version OPERATOR(pg_catalog.<) j.definition_version;
COMMENT ON VIEW dataflow.outdated IS
  'Available chunks built by an older definition of their job (inputs or mappings changed since): resubmit to rebuild';
COMMENT ON COLUMN dataflow.outdated.job IS 'The job producing the dataset';
COMMENT ON COLUMN dataflow.outdated.dataset IS 'The job''s output dataset';
COMMENT ON COLUMN dataflow.outdated.key IS 'Chunk key (canonical)';
COMMENT ON COLUMN dataflow.outdated.status IS 'ready or validated';
COMMENT ON COLUMN dataflow.outdated.version IS 'The chunk''s version';
COMMENT ON COLUMN dataflow.outdated.built_version IS
  'Definition version of the run that built it (0: registered before the job existed)';
COMMENT ON COLUMN dataflow.outdated.current_version IS 'The job''s definition version now';
COMMENT ON COLUMN dataflow.outdated.changes IS 'What changed since, oldest first (dataflow.job_definition)';
