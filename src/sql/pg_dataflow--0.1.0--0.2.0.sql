-- pg_dataflow 0.1.0 -> 0.2.0. Every schema change since 0.1.0, in the order made;
-- test/integration/upgrade.sh proves that 0.1.0 updated by this script has the
-- catalog of a fresh 0.2.0 install.
\echo Use "ALTER EXTENSION pg_dataflow UPDATE TO '0.2.0'" to load this file. \quit

-- 05_keys, 90_security: the library's own version, readable during a version mismatch.
CREATE FUNCTION dataflow.library_version() RETURNS text
AS 'MODULE_PATHNAME', 'df_library_version' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dataflow.library_version() IS
  'Version of the loaded pg_dataflow library (compare with pg_extension.extversion).';
REVOKE EXECUTE ON FUNCTION dataflow.library_version() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.library_version() TO dataflow_reader;

-- 40_work, 90_security: register() takes force => and treats the same content again as a
-- duplicate (issue: a repeated register is not a new version). A new signature: the old
-- function goes, the new one gets the old one's grants and SECURITY DEFINER.
DROP FUNCTION dataflow.register(text, text, text, bigint, text, jsonb);
CREATE FUNCTION dataflow.register(dataset text, key text, location text DEFAULT NULL,
                                  row_count bigint DEFAULT NULL, checksum text DEFAULT NULL,
                                  info jsonb DEFAULT NULL, force boolean DEFAULT false)
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off AS $$
DECLARE
  d dataflow.dataset; k text; c dataflow.chunk; producer text; actor text := dataflow._actor();
  old_status text; built integer; same boolean;
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
  IF NOT force AND c.status IN ('ready', 'validated', 'invalid') AND same THEN
    INSERT INTO dataflow.event (dataset_id, chunk_id, key, version, from_status, to_status, actor, detail)
    VALUES (d.id, c.id, k, c.version, c.status, 'duplicate', actor,
            jsonb_build_object('reason', 'register', 'given_key', key,
                               'same', CASE WHEN checksum IS NOT NULL THEN 'checksum' ELSE 'location and row_count' END));
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
ALTER FUNCTION dataflow.register(text, text, text, bigint, text, jsonb, boolean) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.register(text, text, text, bigint, text, jsonb, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.register(text, text, text, bigint, text, jsonb, boolean) TO dataflow_worker;
COMMENT ON COLUMN dataflow.events.to_status IS 'Status after (or late, paused, resumed, duplicate)';
