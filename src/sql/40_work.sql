-- Operator and producer actions on chunks: register, validate, skip, cancel, resubmit.

-- Find a chunk by dataset name and key (canonicalized); locks it when asked.
CREATE FUNCTION dataflow._chunk(dataset text, key text, lock boolean DEFAULT false) RETURNS dataflow.chunk
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE d dataflow.dataset; c dataflow.chunk; k text;
BEGIN
  d := dataflow._dataset_row(dataset);
  IF key IS NULL THEN
    PERFORM dataflow._raise('22004', 'key must not be NULL', NULL,
                            'Pass the chunk''s key: SELECT key FROM dataflow.chunks WHERE dataset = ... lists them.');
  END IF;
  k := dataflow._key_canon(d.key_kind, key);
  IF lock THEN
    SELECT * INTO c FROM dataflow.chunk ch WHERE ch.dataset_id = d.id AND ch.key = k FOR UPDATE;
  ELSE
    SELECT * INTO c FROM dataflow.chunk ch WHERE ch.dataset_id = d.id AND ch.key = k;
  END IF;
  IF NOT FOUND THEN
    PERFORM dataflow._raise('42704', pg_catalog.format('dataset "%s" has no chunk "%s"', d.name, k), NULL,
                            'Create expected chunks with dataflow.expect(dataset, from_key, to_key).');
  END IF;
  RETURN c;
END $$;

CREATE FUNCTION dataflow.register(dataset text, key text, location text DEFAULT NULL,
                                  row_count bigint DEFAULT NULL, checksum text DEFAULT NULL,
                                  info jsonb DEFAULT NULL, force boolean DEFAULT false)
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off AS $$
DECLARE
  d dataflow.dataset; k text; c dataflow.chunk; producer text; actor text := dataflow._actor();
  old_status text; built integer; same boolean; ignored text[];
BEGIN
  d := dataflow._dataset_row(dataset);
  IF key IS NULL THEN
    RAISE EXCEPTION 'key must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF force IS NULL THEN
    RAISE EXCEPTION 'force must not be NULL' USING ERRCODE = '22004';
  END IF;
  k := dataflow._key_canon(d.key_kind, key);
  SELECT j.name INTO producer FROM dataflow.job j WHERE j.output_id = d.id;
  IF FOUND THEN
    RAISE EXCEPTION 'dataset "%" is produced by job "%"', d.name, producer
      USING ERRCODE = '55000', HINT = 'register() records source chunks; a job''s worker calls complete().';
  END IF;
  IF row_count < 0 THEN
    RAISE EXCEPTION 'row_count must be >= 0' USING ERRCODE = '22023';
  END IF;
  IF info IS NOT NULL AND jsonb_typeof(info) <> 'object' THEN
    RAISE EXCEPTION 'info must be a JSON object' USING ERRCODE = '22023';
  END IF;
  INSERT INTO dataflow.chunk (dataset_id, key, ord, status, location, row_count, checksum, info, available_at)
  VALUES (d.id, k, dataflow._key_ord(d.key_kind, k), 'ready',
          coalesce(register.location, dataflow._location(d.location, d.name, k, 1)), row_count, checksum,
          coalesce(info, '{}'), now())
  ON CONFLICT ON CONSTRAINT chunk_dataset_key DO NOTHING
  RETURNING * INTO c;
  IF FOUND THEN
    INSERT INTO dataflow.event (dataset_id, chunk_id, key, version, from_status, to_status, actor, detail)
    VALUES (d.id, c.id, k, 1, NULL, 'ready', actor, jsonb_build_object('reason', 'register'));
    PERFORM dataflow._propagate(ARRAY[c.id], d.id, 0, 1, actor);
    RETURN 1;
  END IF;

  SELECT * INTO c FROM dataflow.chunk ch WHERE ch.dataset_id = d.id AND ch.key = k FOR UPDATE;
  old_status := c.status;
  -- The same content again (the same key in another spelling, a retried load): the
  -- current version stays, nothing downstream re-runs. The same content is the same
  -- checksum; without one, the same location (the template's for this version when
  -- none is given) and row_count. force => true re-delivers it all the same.
  same := CASE WHEN checksum IS NOT NULL THEN c.checksum IS NOT DISTINCT FROM checksum
               ELSE c.checksum IS NULL
                    AND c.location IS NOT DISTINCT FROM
                        coalesce(register.location, dataflow._location(d.location, d.name, k, c.version))
                    AND c.row_count IS NOT DISTINCT FROM row_count END;
  IF NOT force AND same
     AND (c.status IN ('ready', 'validated') OR (c.status = 'invalid' AND checksum IS NOT NULL)) THEN
    -- the same checksum with another location or row_count: the content is the same, what
    -- was given differently is not recorded (and is said so)
    ignored := array_remove(ARRAY[
                 CASE WHEN register.location IS DISTINCT FROM c.location AND register.location IS NOT NULL
                      THEN 'location' END,
                 CASE WHEN row_count IS DISTINCT FROM c.row_count AND row_count IS NOT NULL
                      THEN 'row_count' END,
                 CASE WHEN info IS DISTINCT FROM c.info AND info IS NOT NULL THEN 'info' END], NULL);
    INSERT INTO dataflow.event (dataset_id, chunk_id, key, version, from_status, to_status, actor, detail)
    VALUES (d.id, c.id, k, c.version, c.status, 'duplicate', actor,
            jsonb_strip_nulls(jsonb_build_object(
              'reason', 'register', 'given_key', left(key, 200),
              'same', CASE WHEN checksum IS NOT NULL THEN 'checksum' ELSE 'location and row_count' END,
              'ignored', CASE WHEN cardinality(ignored) > 0 THEN to_jsonb(ignored) END)));
    IF cardinality(ignored) > 0 THEN
      RAISE NOTICE 'dataset "%" key %: the same % as version %, nothing re-runs', d.name, k,
                   CASE WHEN checksum IS NOT NULL THEN 'checksum' ELSE 'location and row_count' END, c.version
        USING DETAIL = 'The given ' || regexp_replace(array_to_string(ignored, ', '), ', ([a-z_]+)$', ' and \1')
                       || CASE WHEN cardinality(ignored) = 1 THEN ' differs' ELSE ' differ' END
                       || ' from version ' || c.version || '''s and ' || CASE WHEN cardinality(ignored) = 1
                       THEN 'was' ELSE 'were' END || ' not recorded.',
              HINT = 'Pass force => true to record them as a new version.';
    ELSE
      RAISE NOTICE 'dataset "%" key %: the same content as version %, nothing re-runs', d.name, k, c.version
        USING HINT = 'Pass force => true to re-deliver it as a new version.';
    END IF;
    RETURN c.version;
  END IF;
  IF c.status <> 'waiting' THEN
    -- New content for a chunk that existed: a new version, and everything built on the old one re-runs.
    -- The cascade's events name who re-registered (reason 're-registered by <role>').
    SELECT count(*) INTO built
      FROM dataflow._resubmit(ARRAY[c.id], true, false, actor, 're-registered by ' || actor) r
     WHERE r.depth > 0 AND r.old_status IN ('running', 'ready', 'validated', 'invalid', 'failed');
    IF built > 0 AND force THEN
      RAISE NOTICE 'dataset "%" key % re-delivered (force) as version %: % downstream chunk(s) built on version % re-run',
        d.name, k, c.version + 1, built, c.version;
    ELSIF built > 0 THEN
      RAISE NOTICE 'dataset "%" key % re-delivered as version %: % downstream chunk(s) built on version % re-run',
        d.name, k, c.version + 1, built, c.version
        USING HINT = 'Its content differs from version ' || c.version || ' (checksum, or location and row_count).';
    END IF;
    SELECT * INTO c FROM dataflow.chunk ch WHERE ch.id = c.id;
  END IF;
  UPDATE dataflow.chunk ch
     SET status = 'ready',
         location = coalesce(register.location, dataflow._location(d.location, d.name, k, c.version)),
         row_count = register.row_count, checksum = register.checksum, info = coalesce(register.info, '{}'),
         error = NULL, available_at = now(), updated_at = now()
   WHERE ch.id = c.id;
  INSERT INTO dataflow.event (dataset_id, chunk_id, key, version, from_status, to_status, actor, detail)
  VALUES (d.id, c.id, k, c.version, c.status, 'ready', actor,
          jsonb_build_object('reason', 'register', 'previous_status', old_status));
  PERFORM dataflow._propagate(ARRAY[c.id], d.id, 0, 1, actor);
  RETURN c.version;
END $$;
COMMENT ON FUNCTION dataflow.register(text, text, text, bigint, text, jsonb, boolean) IS
  'Record an externally produced source chunk as ready (location defaults to the dataset template); '
  're-registering an existing chunk with new content makes a new version and re-runs everything built on it, '
  'the same content again (same checksum, or same location and row_count) is a duplicate (force => true '
  're-delivers); returns the version';

CREATE FUNCTION dataflow.validate(dataset text, key text, passed boolean, report jsonb DEFAULT '{}')
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off AS $$
DECLARE c dataflow.chunk; actor text := dataflow._actor(); new_status text;
BEGIN
  IF passed IS NULL THEN
    RAISE EXCEPTION 'passed must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF report IS NULL OR jsonb_typeof(report) <> 'object' THEN
    RAISE EXCEPTION 'report must be a JSON object'
      USING ERRCODE = CASE WHEN report IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  c := dataflow._chunk(dataset, key, true);
  IF c.status NOT IN ('ready', 'validated', 'invalid') THEN
    RAISE EXCEPTION 'chunk %/% is %, not ready', dataset, c.key, c.status
      USING ERRCODE = '55000', HINT = 'Only produced (ready) chunks can be validated.';
  END IF;
  new_status := CASE WHEN passed THEN 'validated' ELSE 'invalid' END;
  UPDATE dataflow.chunk
     SET status = new_status, updated_at = now(),
         available_at = CASE WHEN passed THEN coalesce(available_at, now()) ELSE available_at END,
         validation = jsonb_build_object('passed', passed, 'report', report, 'at', now(),
                                         'by', actor, 'version', c.version)
   WHERE id = c.id;
  INSERT INTO dataflow.event (dataset_id, chunk_id, key, run_id, version, from_status, to_status, actor, detail)
  VALUES (c.dataset_id, c.id, c.key, c.run_id, c.version, c.status, new_status, actor,
          jsonb_build_object('reason', 'validate', 'report', report));
  PERFORM dataflow._propagate(ARRAY[c.id], c.dataset_id, dataflow._level(c.status), dataflow._level(new_status), actor);
  RETURN new_status;
END $$;
COMMENT ON FUNCTION dataflow.validate(text, text, boolean, jsonb) IS
  'Record a validation result for a ready chunk: validated (consumers that need validation may start) '
  'or invalid (consumers that have not started wait again); returns the new status';

-- The effects of a chunk's status having been written to 'skipped'. A running run is
-- cancelled and its engine asked to stop, as cancel() does (_request_stop, 75).
CREATE FUNCTION dataflow._skipped(p_chunk bigint, p_old_status text, p_reason text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE c dataflow.chunk; actor text := dataflow._actor(); d text; runs bigint[];
BEGIN
  SELECT * INTO c FROM dataflow.chunk WHERE id = p_chunk;
  IF p_old_status IN ('ready', 'validated') THEN
    SELECT name INTO d FROM dataflow.dataset WHERE id = c.dataset_id;
    RAISE EXCEPTION 'chunk %/% is %: it has data, it cannot be skipped', d, c.key, p_old_status
      USING ERRCODE = '55000', HINT = 'Resubmit it instead, or let it be.';
  END IF;
  IF p_old_status = 'running' THEN
    WITH u AS (
      UPDATE dataflow.run SET status = 'cancelled', finished_at = now(), error = 'chunk skipped by ' || actor
       WHERE chunk_id = c.id AND status = 'running'
      RETURNING id
    )
    SELECT array_agg(u.id) INTO runs FROM u;
  END IF;
  UPDATE dataflow.chunk
     SET info = info || jsonb_build_object('skip_reason', p_reason), row_count = coalesce(row_count, 0),
         error = NULL, available_at = now(), updated_at = now()
   WHERE id = c.id;
  INSERT INTO dataflow.event (dataset_id, chunk_id, key, run_id, version, from_status, to_status, actor, detail)
  VALUES (c.dataset_id, c.id, c.key, c.run_id, c.version, p_old_status, 'skipped', actor,
          jsonb_build_object('reason', p_reason));
  IF runs IS NOT NULL THEN
    PERFORM dataflow._request_stop(runs, actor, 'skip');
  END IF;
  PERFORM dataflow._propagate(ARRAY[c.id], c.dataset_id, dataflow._level(p_old_status), 2, actor);
END $$;

CREATE FUNCTION dataflow.skip(dataset text, key text, reason text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE d dataflow.dataset; k text; cid bigint;
BEGIN
  d := dataflow._dataset_row(dataset);
  IF key IS NULL OR reason IS NULL THEN
    RAISE EXCEPTION '% must not be NULL', CASE WHEN key IS NULL THEN 'key' ELSE 'reason' END USING ERRCODE = '22004',
      HINT = 'skip(dataset, key, reason): the reason says why the key is known to be empty.';
  END IF;
  IF btrim(reason) = '' THEN
    RAISE EXCEPTION 'a skip needs a reason' USING ERRCODE = '22023';
  END IF;
  k := dataflow._key_canon(d.key_kind, key);
  -- A key nobody expected yet can be declared empty too.
  INSERT INTO dataflow.chunk (dataset_id, key, ord, status)
  VALUES (d.id, k, dataflow._key_ord(d.key_kind, k), 'waiting')
  ON CONFLICT ON CONSTRAINT chunk_dataset_key DO NOTHING;
  SELECT c.id INTO cid FROM dataflow.chunk c WHERE c.dataset_id = d.id AND c.key = k FOR UPDATE;
  IF (SELECT status FROM dataflow.chunk c WHERE c.id = cid) = 'skipped' THEN
    RETURN;
  END IF;
  UPDATE dataflow.chunk c
     SET status = 'skipped', info = c.info || jsonb_build_object('skip_reason', left(reason, 1000))
   WHERE c.id = cid;
END $$;
COMMENT ON FUNCTION dataflow.skip(text, text, text) IS
  'Declare a chunk known-empty: it satisfies its consumers as empty; a running lease is cancelled';

-- Cancels a chunk the caller has locked (cancel(), pause_job(cancel_running)): its
-- running run becomes cancelled, so a late heartbeat, complete or fail with its token
-- is refused (55000; 409 from the callback listener), and for a job whose run lives in
-- an engine a stop request is recorded in the same transaction (_request_stop,
-- 75_engine_stop.sql), which the worker sends after commit.
CREATE FUNCTION dataflow._cancel(p_chunk dataflow.chunk, p_actor text, p_reason text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE runs bigint[];
BEGIN
  WITH u AS (
    UPDATE dataflow.run SET status = 'cancelled', finished_at = now(), error = 'cancelled by ' || p_actor
     WHERE chunk_id = p_chunk.id AND status = 'running'
    RETURNING id
  )
  SELECT array_agg(u.id) INTO runs FROM u;
  UPDATE dataflow.chunk SET status = 'cancelled', updated_at = now() WHERE id = p_chunk.id;
  INSERT INTO dataflow.event (dataset_id, chunk_id, key, run_id, version, from_status, to_status, actor, detail)
  VALUES (p_chunk.dataset_id, p_chunk.id, p_chunk.key, p_chunk.run_id, p_chunk.version, p_chunk.status,
          'cancelled', p_actor, jsonb_build_object('reason', p_reason));
  IF runs IS NOT NULL THEN
    PERFORM dataflow._request_stop(runs, p_actor, p_reason);
  END IF;
END $$;

CREATE FUNCTION dataflow.cancel(dataset text, key text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE c dataflow.chunk := dataflow._chunk(dataset, key, true);
BEGIN
  IF c.status NOT IN ('waiting', 'queued', 'running') THEN
    RAISE EXCEPTION 'chunk %/% is %: only waiting, queued or running chunks can be cancelled',
                    dataset, c.key, c.status
      USING ERRCODE = '55000';
  END IF;
  PERFORM dataflow._cancel(c, dataflow._actor(), 'cancel');
END $$;
COMMENT ON FUNCTION dataflow.cancel(text, text) IS
  'Stop a chunk: its live lease (if any) is cancelled, the engine running it (http with a cancel_endpoint, '
  'airflow) is asked to stop, and it is not leased again until resubmitted';

-- What resubmit() touched: depth 0 are the chunks asked for, 1.. their downstream.
CREATE TYPE dataflow.resubmitted AS (
  dataset text, key text, old_status text, new_status text, version integer, depth integer);

CREATE FUNCTION dataflow.resubmit(dataset text, from_key text, to_key text DEFAULT NULL,
                                  cascade boolean DEFAULT true, dry_run boolean DEFAULT false,
                                  reason text DEFAULT NULL)
RETURNS SETOF dataflow.resubmitted
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE d dataflow.dataset; k1 text; k2 text; roots bigint[];
BEGIN
  d := dataflow._dataset_row(resubmit.dataset);
  IF from_key IS NULL OR cascade IS NULL OR dry_run IS NULL THEN
    RAISE EXCEPTION '% must not be NULL', CASE WHEN from_key IS NULL THEN 'from_key' WHEN cascade IS NULL THEN 'cascade'
                                               ELSE 'dry_run' END USING ERRCODE = '22004',
      HINT = 'Leave cascade and dry_run out for their defaults (true, false); to_key NULL is from_key alone.';
  END IF;
  IF reason = '' OR length(reason) > 200 OR reason ~ '[[:cntrl:]]' THEN
    RAISE EXCEPTION 'reason must be a printable text of 1-200 characters' USING ERRCODE = '22023',
      HINT = 'It is recorded in the events of the chunks resubmitted (NULL: none).';
  END IF;
  k1 := dataflow._key_canon(d.key_kind, from_key);
  k2 := dataflow._key_canon(d.key_kind, coalesce(to_key, from_key));
  IF d.key_kind = 'text' THEN
    IF k1 <> k2 THEN
      RAISE EXCEPTION 'text keys have no ranges: give one key' USING ERRCODE = '22023';
    END IF;
    SELECT array_agg(c.id) INTO roots FROM dataflow.chunk c WHERE c.dataset_id = d.id AND c.key = k1;
  ELSE
    IF dataflow._key_ord(d.key_kind, k1) > dataflow._key_ord(d.key_kind, k2) THEN
      RAISE EXCEPTION 'range "%" .. "%" is backwards', k1, k2 USING ERRCODE = '22023';
    END IF;
    SELECT array_agg(c.id ORDER BY c.ord) INTO roots FROM dataflow.chunk c
     WHERE c.dataset_id = d.id
       AND c.ord BETWEEN dataflow._key_ord(d.key_kind, k1) AND dataflow._key_ord(d.key_kind, k2);
  END IF;
  IF roots IS NULL THEN
    RAISE EXCEPTION 'dataset "%" has no chunk between "%" and "%"', d.name, k1, k2 USING ERRCODE = '42704';
  END IF;
  RETURN QUERY
    SELECT r.dataset, r.key, r.old_status, r.new_status, r.version, r.depth
      FROM dataflow._resubmit(roots, cascade, dry_run, dataflow._actor(),
                              CASE WHEN reason IS NULL THEN 'resubmit' ELSE 'resubmit: ' || reason END) r
     ORDER BY r.depth, r.dataset, r.ord, r.key;
END $$;
COMMENT ON FUNCTION dataflow.resubmit(text, text, text, boolean, boolean, text) IS
  'Restart a chunk or a key range: new version, attempts reset, queued again; with cascade (default) '
  'everything downstream waits for it; dry_run lists what would change without changing anything; '
  'reason is recorded in the events';
