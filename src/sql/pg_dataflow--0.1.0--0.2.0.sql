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
ALTER FUNCTION dataflow.register(text, text, text, bigint, text, jsonb, boolean) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.register(text, text, text, bigint, text, jsonb, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.register(text, text, text, bigint, text, jsonb, boolean) TO dataflow_worker;
COMMENT ON COLUMN dataflow.events.to_status IS 'Status after (or late, paused, resumed, altered, duplicate)';

-- 22_jobs, 90_security: alter_job() (issue: change a job's settings after creating it).
-- Changes a job's settings; a NULL argument keeps the setting. pool => '' detaches the
-- pool, max_concurrency => -1 removes the job's own limit. The operator may change the
-- limits and the priority (what it may UPDATE in dataflow.job); the pool and the params
-- are the admin's, like the job's definition. Takes effect from the next lease: running
-- leases keep their deadline and count against the pool they were leased in. The
-- change is an 'altered' event (params only as "changed": the event log is readable by
-- every reader, the params by the admin only). Returns what changed, {setting: {from, to}}.
CREATE FUNCTION dataflow.alter_job(
  name text,
  pool text DEFAULT NULL,
  max_concurrency integer DEFAULT NULL,
  max_attempts integer DEFAULT NULL,
  backoff_min interval DEFAULT NULL,
  backoff_max interval DEFAULT NULL,
  lease_for interval DEFAULT NULL,
  priority integer DEFAULT NULL,
  params jsonb DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET IntervalStyle = 'postgres' AS $$
DECLARE
  j dataflow.job; p integer; pname text; new_pool integer; new_limit integer;
  new_min interval; new_max interval; changes jsonb := '{}'; shown jsonb;
BEGIN
  SELECT * INTO j FROM dataflow.job jb WHERE jb.id = (dataflow._job(alter_job.name)).id FOR UPDATE;
  IF (pool IS NOT NULL OR params IS NOT NULL)
     AND NOT pg_has_role(dataflow._caller(), 'dataflow_admin', 'MEMBER') THEN
    RAISE EXCEPTION 'changing the pool or the params of job "%" needs dataflow_admin', j.name
      USING ERRCODE = '42501',
            HINT = 'An operator may change max_concurrency, max_attempts, backoff_min, backoff_max, lease_for and priority.';
  END IF;
  new_pool := j.pool_id;
  IF pool = '' THEN
    new_pool := NULL;
  ELSIF pool IS NOT NULL THEN
    SELECT pl.id INTO p FROM dataflow.pool pl WHERE pl.name = alter_job.pool;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'pool "%" does not exist', left(pool, 64) USING ERRCODE = '42704',
        HINT = 'Create it with dataflow.create_pool(name, slots), or pass pool => '''' to detach the job''s pool.';
    END IF;
    new_pool := p;
  END IF;
  IF max_concurrency < -1 THEN
    RAISE EXCEPTION 'max_concurrency must be >= 0, or -1 to remove the job''s own limit (got %)', max_concurrency
      USING ERRCODE = '22023';
  END IF;
  new_limit := CASE WHEN max_concurrency IS NULL THEN j.max_concurrency
                    WHEN max_concurrency = -1 THEN NULL ELSE max_concurrency END;
  IF max_attempts < 1 THEN
    RAISE EXCEPTION 'max_attempts must be >= 1 (got %)', max_attempts USING ERRCODE = '22023';
  END IF;
  new_min := coalesce(backoff_min, j.backoff_min);
  new_max := coalesce(backoff_max, j.backoff_max);
  IF new_min < interval '0' OR new_max < new_min THEN
    RAISE EXCEPTION 'backoff needs 0 <= backoff_min <= backoff_max (would be % and %)', new_min, new_max
      USING ERRCODE = '22023';
  END IF;
  IF lease_for <= interval '0' THEN
    RAISE EXCEPTION 'lease_for must be positive (got %)', lease_for USING ERRCODE = '22023';
  END IF;
  IF params IS NOT NULL AND jsonb_typeof(params) <> 'object' THEN
    RAISE EXCEPTION 'params must be a JSON object' USING ERRCODE = '22023';
  END IF;

  IF new_pool IS DISTINCT FROM j.pool_id THEN
    changes := changes || jsonb_build_object('pool', jsonb_build_object(
      'from', (SELECT pl.name FROM dataflow.pool pl WHERE pl.id = j.pool_id),
      'to', (SELECT pl.name FROM dataflow.pool pl WHERE pl.id = new_pool)));
  END IF;
  IF new_limit IS DISTINCT FROM j.max_concurrency THEN
    changes := changes || jsonb_build_object('max_concurrency', jsonb_build_object('from', j.max_concurrency, 'to', new_limit));
  END IF;
  IF coalesce(max_attempts, j.max_attempts) <> j.max_attempts THEN
    changes := changes || jsonb_build_object('max_attempts', jsonb_build_object('from', j.max_attempts, 'to', max_attempts));
  END IF;
  IF new_min <> j.backoff_min THEN
    changes := changes || jsonb_build_object('backoff_min', jsonb_build_object('from', j.backoff_min, 'to', new_min));
  END IF;
  IF new_max <> j.backoff_max THEN
    changes := changes || jsonb_build_object('backoff_max', jsonb_build_object('from', j.backoff_max, 'to', new_max));
  END IF;
  IF coalesce(lease_for, j.lease_for) <> j.lease_for THEN
    changes := changes || jsonb_build_object('lease_for', jsonb_build_object('from', j.lease_for, 'to', lease_for));
  END IF;
  IF coalesce(priority, j.priority) <> j.priority THEN
    changes := changes || jsonb_build_object('priority', jsonb_build_object('from', j.priority, 'to', priority));
  END IF;
  IF params IS NOT NULL AND params <> j.params THEN
    changes := changes || jsonb_build_object('params', 'changed');
  END IF;
  IF changes = '{}' THEN
    RETURN changes;
  END IF;
  UPDATE dataflow.job jb
     SET pool_id = new_pool, max_concurrency = new_limit,
         max_attempts = coalesce(alter_job.max_attempts, jb.max_attempts),
         backoff_min = new_min, backoff_max = new_max,
         lease_for = coalesce(alter_job.lease_for, jb.lease_for),
         priority = coalesce(alter_job.priority, jb.priority),
         params = coalesce(alter_job.params, jb.params)
   WHERE jb.id = j.id;
  INSERT INTO dataflow.event (to_status, actor, detail)
  VALUES ('altered', dataflow._actor(), jsonb_build_object('job', j.name, 'changes', changes));
  IF j.dispatch <> 'pull' THEN
    PERFORM dataflow._wake();   -- a raised limit or a freer pool: the dispatcher claims at once
  END IF;
  RETURN changes;
END $$;
COMMENT ON FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb) IS
  'Change a job''s pool, max_concurrency (-1: no limit), max_attempts, backoff_min/max, lease_for, priority or '
  'params (NULL keeps a setting; pool => '''' detaches); effective from the next lease; returns the changes';
ALTER FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb) TO dataflow_operator;

-- 30_graph: resubmit() of a chunk waiting out a retry backoff makes it leasable at once
-- (it kept the backoff of its last failure; regress test resubmit). A changed body.
DROP FUNCTION dataflow._resubmit(bigint[], boolean, boolean, text, text, text);
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
REVOKE EXECUTE ON FUNCTION dataflow._resubmit(bigint[], boolean, boolean, text, text, text) FROM PUBLIC;

-- 70_worker: subscribe(statuses => ...) also takes the events that are not a status change
-- (late, duplicate; a job's paused, resumed, altered), which NULL statuses already delivered.
DROP FUNCTION dataflow.subscribe(text, text, text[], text[], text);
CREATE FUNCTION dataflow.subscribe(name text, url text, datasets text[] DEFAULT NULL,
                                   statuses text[] DEFAULT NULL, secret text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE s text := coalesce(secret, dataflow._new_webhook_secret()); bad text;
BEGIN
  PERFORM dataflow._check_name('subscription', name);
  IF url IS NULL THEN
    RAISE EXCEPTION 'url must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF url !~* '^https?://[^\s/?#@]+([/?#]|$)' OR url ~ '[[:cntrl:][:space:]]' OR length(url) > 2000 THEN
    RAISE EXCEPTION 'invalid webhook URL "%"', left(url, 200) USING ERRCODE = '22023',
      HINT = 'Give an http:// or https:// URL without credentials (user@host) in it; '
             'private addresses also need dataflow.http_allow.';
  END IF;
  IF s !~ '^whsec_[A-Za-z0-9+/]+={0,2}$' OR length(s) < 30 OR length(s) % 4 <> 2 THEN
    RAISE EXCEPTION 'invalid webhook secret' USING ERRCODE = '22023',
      HINT = 'Use "whsec_" followed by the base64 of at least 18 random bytes, or pass NULL to generate one.';
  END IF;
  -- statuses filters event.to_status: a chunk status, or one of the events that are not a
  -- status change (late, duplicate; paused, resumed and altered are a job's)
  SELECT x INTO bad FROM unnest(statuses) x
   WHERE x IS NULL OR x NOT IN ('waiting', 'queued', 'running', 'ready', 'validated', 'invalid', 'failed',
                                'skipped', 'cancelled', 'resubmit', 'late', 'duplicate',
                                'paused', 'resumed', 'altered') LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'unknown chunk status or event "%" in statuses', bad USING ERRCODE = '22023',
      HINT = 'Statuses: waiting, queued, running, ready, validated, invalid, failed, skipped, cancelled, resubmit; '
             'events: late, duplicate, paused, resumed, altered.';
  END IF;
  IF EXISTS (SELECT FROM unnest(datasets) x WHERE x IS NULL) THEN
    RAISE EXCEPTION 'datasets must not contain NULL' USING ERRCODE = '22004';
  END IF;
  -- a job's events have no dataset: with a datasets filter they would never arrive
  SELECT x INTO bad FROM unnest(statuses) x WHERE x IN ('paused', 'resumed', 'altered') LIMIT 1;
  IF FOUND AND datasets IS NOT NULL THEN
    RAISE EXCEPTION 'the job event "%" has no dataset: a datasets filter would never let it through', bad
      USING ERRCODE = '22023', HINT = 'Subscribe to job events (paused, resumed, altered) without datasets.';
  END IF;
  IF EXISTS (SELECT FROM dataflow.subscription t WHERE t.name = subscribe.name) THEN
    RAISE EXCEPTION 'subscription "%" already exists', name USING ERRCODE = '42710',
      HINT = 'Drop it first with dataflow.unsubscribe().';
  END IF;
  INSERT INTO dataflow.subscription (name, url, datasets, statuses, secret)
  VALUES (name, url, datasets, statuses, s);
  RETURN s;
END $$;
COMMENT ON FUNCTION dataflow.subscribe(text, text, text[], text[], text) IS
  'Subscribe a URL to chunk events (filtered by dataset names and new statuses or event kinds; NULL = all); deliveries are '
  'signed in the Standard Webhooks form. Returns the whsec_ signing secret (generated when NULL), shown only here';
REVOKE EXECUTE ON FUNCTION dataflow.subscribe(text, text, text[], text[], text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.subscribe(text, text, text[], text[], text) TO dataflow_admin;

-- 10_model: a heartbeat writes no index entry (issue: the hot path, heartbeats are HOT).
-- deadline leaves every index: reap() filters the live and held runs by it instead.
DROP INDEX dataflow.run_live_deadline;
DROP INDEX dataflow.run_held_deadline;
CREATE INDEX run_held ON dataflow.run (id) WHERE status = 'superseded' AND finished_at IS NULL;

-- 45_lease, 55_questions (issue 19 items 5 and 7): complete/fail/heartbeat/complete_many on a
-- run that already ended say what happened and when, with a hint and no empty DETAIL
-- (_not_live; regress test ended_runs); blockers() and explain() give a queued chunk's
-- position in its job's queue and the busy slots of the job and its pool, and suggest a
-- worker only when no run of the job is live (_queued_reason; regress test blockers).

CREATE FUNCTION dataflow._not_live(r dataflow.run, p_pos integer DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c dataflow.chunk;
  who text := 'run ' || r.id || CASE WHEN p_pos IS NULL THEN '' ELSE ' (token ' || p_pos || ')' END;
  ended text := to_char(r.finished_at, 'YYYY-MM-DD HH24:MI:SSOF');
  deadline text := to_char(r.deadline, 'YYYY-MM-DD HH24:MI:SSOF');
  chunk_now text;
  max_attempts integer;
  msg text;
  det text;
  hint text;
BEGIN
  SELECT * INTO c FROM dataflow.chunk WHERE id = r.chunk_id;   -- locked by the caller
  SELECT jb.max_attempts INTO max_attempts FROM dataflow.job jb WHERE jb.id = r.job_id;
  chunk_now := CASE
    WHEN c.id IS NULL THEN 'its chunk no longer exists'
    WHEN c.run_id IS DISTINCT FROM r.id AND c.status = 'running' THEN 'run ' || c.run_id || ' produces the chunk now'
    -- this run's own lease, past its deadline: reap() retries it or, attempts spent, fails it
    WHEN c.status = 'running' AND c.attempts < max_attempts THEN
      'once reap() ends this lease the chunk is retried (attempt ' || c.attempts + 1 || ' of ' || max_attempts || ')'
    WHEN c.status = 'running' THEN 'once reap() ends this lease the chunk fails (no attempts left)'
    WHEN c.version <> r.version AND c.status IN ('queued', 'waiting') THEN
      'the chunk was resubmitted: version ' || c.version || ' is ' || c.status
    WHEN c.status = 'queued' THEN 'the chunk is queued for another attempt'
    WHEN c.status = 'waiting' THEN 'the chunk waits for its inputs, then another attempt'
    WHEN c.status = 'failed' THEN 'the chunk failed (not retryable, or no attempts left): fix the cause, then resubmit it'
    WHEN c.status IN ('ready', 'validated') THEN 'the chunk is ' || c.status || ' at version ' || c.version
    ELSE 'the chunk is ' || c.status END;
  IF r.status = 'running' OR (r.status = 'superseded' AND r.finished_at IS NULL) THEN
    -- the deadline passed (reap() has not ended it yet)
    msg := format('lease of %s expired at %s; its result will not be used', who, deadline);
    hint := 'Drop this result: ' || CASE WHEN r.status = 'superseded'
                                         THEN 'the run was superseded by a resubmit'
                                         ELSE chunk_now END
            || '. Heartbeat more often than the lease lasts (the job''s lease_for).';
  ELSIF r.status = 'succeeded' THEN
    msg := format('%s already succeeded at %s; nothing to do', who, ended);
    hint := 'complete() already recorded this run''s result; drop this call.';
  ELSIF r.status = 'failed' THEN
    msg := format('%s already failed at %s; nothing to do', who, ended);
    det := 'Run error: ' || left(nullif(r.error, ''), 500);
    hint := 'fail() already ended this run; drop this result: ' || chunk_now || '.';
  ELSIF r.status = 'cancelled' THEN
    msg := format('%s was cancelled at %s; its result will not be used', who, ended);
    det := 'Run error: ' || left(nullif(r.error, ''), 500);
    hint := 'An operator cancelled or skipped the chunk (now ' || coalesce(c.status, 'gone')
            || '); stop the work and drop this result.';
  ELSIF r.status = 'expired' THEN
    msg := format('lease of %s expired at %s; its result will not be used', who, deadline);
    hint := 'reap() ended this lease; drop this result: ' || chunk_now
            || '. Heartbeat more often than the lease lasts (the job''s lease_for).';
  ELSE   -- superseded, and ended
    msg := format('%s was superseded and ended at %s; its result will not be used', who, ended);
    det := 'Run error: ' || left(nullif(r.error, ''), 500);
    hint := 'A resubmit or a re-produced input made a new version of the chunk; drop this result: '
            || chunk_now || '.';
  END IF;
  IF p_pos IS NOT NULL THEN
    hint := hint || ' complete_many() completed none of the tokens: call it again without this one.';
  END IF;
  -- through _raise: no CONTEXT lines of these helpers (det NULL: no DETAIL line at all)
  PERFORM dataflow._raise('55000', msg, det, hint);
END $$;
REVOKE EXECUTE ON FUNCTION dataflow._not_live(dataflow.run, integer) FROM PUBLIC;
DROP FUNCTION dataflow._live_run(uuid, boolean);
CREATE FUNCTION dataflow._live_run(p_token uuid, p_held boolean DEFAULT false) RETURNS dataflow.run
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan AS $$
DECLARE r dataflow.run;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    PERFORM dataflow._read_committed();   -- raises (00_schema.sql)
  END IF;
  IF p_token IS NULL THEN
    PERFORM dataflow._raise('22004', 'token must not be NULL');
  END IF;
  -- Lock the chunk before the run, the order resubmit, cancel and skip take them in, so a
  -- worker's transaction (heartbeat ... complete) and an operator never deadlock.
  PERFORM 1 FROM dataflow.run rr JOIN dataflow.chunk c ON c.id = rr.chunk_id
   WHERE rr.token = p_token FOR UPDATE OF c;
  IF NOT FOUND THEN
    PERFORM dataflow._raise('42704', 'no lease has this token');
  END IF;
  -- The run is read, not locked: whoever ends a run holds its chunk's lock, which is
  -- ours now (reap locks the run first but skips a chunk it cannot lock at once), and
  -- this statement's fresh snapshot sees any change committed while we waited.
  -- Not locking it saves a WAL record per call; the caller's UPDATE locks it.
  SELECT * INTO r FROM dataflow.run WHERE token = p_token;
  IF r.status <> 'running' AND NOT (p_held AND r.status = 'superseded' AND r.finished_at IS NULL) THEN
    PERFORM dataflow._not_live(r);   -- raises 55000: what happened to the run
  END IF;
  IF r.deadline < clock_timestamp() THEN
    PERFORM dataflow._not_live(r);   -- raises 55000: the lease expired
  END IF;
  RETURN r;
END $$;
REVOKE EXECUTE ON FUNCTION dataflow._live_run(uuid, boolean) FROM PUBLIC;
DROP FUNCTION dataflow.heartbeat(uuid, interval);
CREATE FUNCTION dataflow.heartbeat(token uuid, extend_by interval DEFAULT NULL)
RETURNS timestamptz LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off
-- index probes whatever the statistics said when this session made its plans (docs/internals.md, "Planner settings")
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_mergejoin = off SET enable_hashjoin = off
SET plan_cache_mode = force_generic_plan AS $$
DECLARE r dataflow.run := dataflow._live_run(token, true); dl timestamptz;
BEGIN
  IF extend_by <= interval '0' THEN
    RAISE EXCEPTION 'extend_by must be positive' USING ERRCODE = '22023';
  END IF;
  UPDATE dataflow.run
     SET heartbeat_at = clock_timestamp(),
         deadline = clock_timestamp()
                    + coalesce(extend_by, (SELECT j.lease_for FROM dataflow.job j WHERE j.id = r.job_id))
   WHERE id = r.id
  RETURNING deadline INTO dl;
  IF r.status = 'superseded' THEN
    -- Still reading: it keeps holding its inputs while it heartbeats, but its result will
    -- not be used. SQLSTATE 01DF1 is what a worker looks for to stop early.
    IF r.error IS NULL THEN
      RAISE WARNING 'run % was superseded: its result will not be used', r.id
        USING ERRCODE = '01DF1', HINT = 'Stop early: fail() or complete() releases the inputs this run still holds.';
    ELSE
      RAISE WARNING 'run % was superseded: its result will not be used', r.id
        USING ERRCODE = '01DF1', DETAIL = left(r.error, 500),
              HINT = 'Stop early: fail() or complete() releases the inputs this run still holds.';
    END IF;
  END IF;
  RETURN dl;
END $$;
COMMENT ON FUNCTION dataflow.heartbeat(uuid, interval) IS
  'Keep a lease alive: moves its deadline to now + extend_by (default the job''s lease_for); returns it. '
  'A run superseded by a resubmit meanwhile keeps holding its inputs and gets a WARNING (SQLSTATE 01DF1): stop early';
ALTER FUNCTION dataflow.heartbeat(uuid, interval) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.heartbeat(uuid, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.heartbeat(uuid, interval) TO dataflow_worker;
DROP FUNCTION dataflow.complete_many(uuid[], bigint[], text[], jsonb[], text[]);
CREATE FUNCTION dataflow.complete_many(tokens uuid[], row_counts bigint[] DEFAULT NULL,
                                       checksums text[] DEFAULT NULL, infos jsonb[] DEFAULT NULL,
                                       locations text[] DEFAULT NULL)
RETURNS TABLE (token uuid, result text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off
-- index probes whatever the statistics said when this session made its plans (docs/internals.md, "Planner settings")
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_mergejoin = off SET enable_hashjoin = off
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  n integer := cardinality(tokens);
  locked integer;
  pos bigint;
  bad record;
  stale uuid[];
  results text[];
  g record;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    PERFORM dataflow._read_committed();   -- raises (00_schema.sql)
  END IF;
  IF tokens IS NULL THEN
    RAISE EXCEPTION 'tokens must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF n = 0 THEN
    RETURN;
  END IF;
  IF array_ndims(tokens) <> 1 THEN
    RAISE EXCEPTION 'tokens must be a one-dimensional array' USING ERRCODE = '22023';
  END IF;
  IF n > 1000 THEN
    RAISE EXCEPTION 'at most 1000 tokens per call, not %', n USING ERRCODE = '22023',
          HINT = 'lease() hands out at most 1000 chunks per call; complete them in batches of that size.';
  END IF;
  pos := array_position(tokens, NULL);
  IF pos IS NOT NULL THEN
    RAISE EXCEPTION 'token % is NULL', pos USING ERRCODE = '22004';
  END IF;
  SELECT min(t.i) INTO pos FROM unnest(tokens) WITH ORDINALITY t(tok, i)
   WHERE EXISTS (SELECT FROM unnest(tokens) WITH ORDINALITY u(tok, i) WHERE u.tok = t.tok AND u.i < t.i);
  IF pos IS NOT NULL THEN
    RAISE EXCEPTION 'token % repeats an earlier token', pos USING ERRCODE = '22023';
  END IF;
  IF cardinality(row_counts) <> n OR cardinality(checksums) <> n OR cardinality(infos) <> n
     OR cardinality(locations) <> n THEN
    RAISE EXCEPTION 'row_counts, checksums, infos and locations must be NULL or have one element per token (%)', n
      USING ERRCODE = '22023';
  END IF;
  pos := (SELECT min(x.i) FROM unnest(row_counts) WITH ORDINALITY x(v, i) WHERE x.v < 0);
  IF pos IS NOT NULL THEN
    RAISE EXCEPTION 'row_counts[%] must be >= 0', pos USING ERRCODE = '22023';
  END IF;
  pos := (SELECT min(x.i) FROM unnest(infos) WITH ORDINALITY x(v, i) WHERE jsonb_typeof(x.v) <> 'object');
  IF pos IS NOT NULL THEN
    RAISE EXCEPTION 'infos[%] must be a JSON object', pos USING ERRCODE = '22023';
  END IF;

  -- Lock the chunks in (rank, id) order (what every multi-chunk writer does: no deadlocks,
  -- docs/internals.md), then read the runs with a fresh snapshot, as _live_run does.
  SELECT count(*) INTO locked FROM (
    SELECT c.id FROM unnest(tokens) t(tok) JOIN dataflow.run rr ON rr.token = t.tok
      JOIN dataflow.chunk c ON c.id = rr.chunk_id JOIN dataflow.dataset cd ON cd.id = c.dataset_id
     ORDER BY cd.rank, c.id FOR UPDATE OF c) l;
  IF locked < n THEN
    SELECT min(t.i) INTO pos FROM unnest(tokens) WITH ORDINALITY t(tok, i)
     WHERE NOT EXISTS (SELECT FROM dataflow.run rr WHERE rr.token = t.tok);
    RAISE EXCEPTION 'no lease has token %', pos USING ERRCODE = '42704';
  END IF;
  SELECT t.i, rr.id, rr.status, rr.deadline, rr.error INTO bad
    FROM unnest(tokens) WITH ORDINALITY t(tok, i) JOIN dataflow.run rr ON rr.token = t.tok
   WHERE (rr.status <> 'running' AND NOT (rr.status = 'superseded' AND rr.finished_at IS NULL))
      OR rr.deadline < clock_timestamp()
   ORDER BY t.i LIMIT 1;
  IF FOUND THEN
    PERFORM dataflow._not_live((SELECT rr FROM dataflow.run rr WHERE rr.id = bad.id), bad.i::integer);   -- raises
  END IF;

  -- Runs whose chunk moved on or whose inputs changed go through complete(), which
  -- records them as superseded (rare; it re-checks under the locks we hold).
  SELECT array_agg(rr.token ORDER BY t.i) INTO stale
    FROM unnest(tokens) WITH ORDINALITY t(tok, i) JOIN dataflow.run rr ON rr.token = t.tok JOIN dataflow.chunk c ON c.id = rr.chunk_id
   WHERE c.run_id <> rr.id OR c.status <> 'running' OR rr.status <> 'running'
      OR EXISTS (SELECT FROM dataflow.run_input ri JOIN dataflow.chunk ic ON ic.id = ri.chunk_id
                  WHERE ri.run_id = rr.id AND (ic.version <> ri.version OR dataflow._level(ic.status) = 0));
  IF stale IS NOT NULL THEN
    SELECT array_agg(dataflow.complete(x.tok, x.rc, x.cs, x.inf, x.loc) ORDER BY x.i) INTO results
      FROM unnest(tokens, row_counts, checksums, infos, locations) WITH ORDINALITY x(tok, rc, cs, inf, loc, i)
     WHERE x.tok = ANY (stale);
  END IF;

  UPDATE dataflow.run r
     SET status = 'succeeded', finished_at = now(), row_count = x.rc, checksum = x.cs, info = x.inf,
         output_location = coalesce(x.loc, r.output_location)
    FROM unnest(tokens, row_counts, checksums, infos, locations) x(tok, rc, cs, inf, loc)
   WHERE r.token = x.tok AND NOT (x.tok = ANY (coalesce(stale, '{}')));
  WITH u AS (
    UPDATE dataflow.chunk c
       SET status = 'ready', row_count = x.rc, checksum = x.cs, info = coalesce(x.inf, '{}'),
           location = coalesce(x.loc, r.output_location), error = NULL, available_at = now(), updated_at = now()
      FROM unnest(tokens, row_counts, checksums, infos, locations) WITH ORDINALITY x(tok, rc, cs, inf, loc, i)
      JOIN dataflow.run r ON r.token = x.tok
     WHERE c.id = r.chunk_id AND NOT (x.tok = ANY (coalesce(stale, '{}')))
    RETURNING c.id, c.dataset_id, c.key, c.version, r.id AS run_id, r.worker, x.i)
  INSERT INTO dataflow.event (dataset_id, chunk_id, key, run_id, version, from_status, to_status, actor)
  SELECT u.dataset_id, u.id, u.key, u.run_id, u.version, 'running', 'ready', u.worker
    FROM u ORDER BY u.i;
  -- Readiness: one propagation per dataset and worker (the events' actor). With more than
  -- one dataset, their consumers are locked first, all in one (rank, id) order: one
  -- dataset's propagation must not hold a consumer another's would wait for out of order.
  IF (SELECT count(DISTINCT c.dataset_id) FROM unnest(tokens) t(tok) JOIN dataflow.run r ON r.token = t.tok
        JOIN dataflow.chunk c ON c.id = r.chunk_id) > 1 THEN
    PERFORM 1 FROM dataflow.chunk c JOIN dataflow.dataset cd ON cd.id = c.dataset_id
     WHERE c.id IN (SELECT d.consumer FROM unnest(tokens) t(tok) JOIN dataflow.run r ON r.token = t.tok
                      JOIN dataflow.dep d ON d.input = r.chunk_id
                     WHERE NOT (t.tok = ANY (coalesce(stale, '{}'))))
     ORDER BY cd.rank, c.id FOR UPDATE OF c;
  END IF;
  FOR g IN SELECT c.dataset_id, r.worker, array_agg(c.id ORDER BY c.id) AS ids
             FROM unnest(tokens) t(tok) JOIN dataflow.run r ON r.token = t.tok
             JOIN dataflow.chunk c ON c.id = r.chunk_id
            WHERE NOT (t.tok = ANY (coalesce(stale, '{}')))
            GROUP BY c.dataset_id, r.worker LOOP
    PERFORM dataflow._propagate(g.ids, g.dataset_id, 0, 1, g.worker);
  END LOOP;
  RETURN QUERY
  SELECT x.tok, CASE WHEN x.tok = ANY (coalesce(stale, '{}'))
                     THEN results[array_position(stale, x.tok)]   -- stale and results share the order of tokens
                     ELSE 'succeeded' END
    FROM unnest(tokens) WITH ORDINALITY x(tok, i) ORDER BY x.i;
END $$;
COMMENT ON FUNCTION dataflow.complete_many(uuid[], bigint[], text[], jsonb[], text[]) IS
  'complete() for several live leases in one call and transaction (element i of each array belongs to token i); '
  'all or nothing: an unknown or dead token raises and completes none; returns each token''s result in order';
ALTER FUNCTION dataflow.complete_many(uuid[], bigint[], text[], jsonb[], text[]) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.complete_many(uuid[], bigint[], text[], jsonb[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.complete_many(uuid[], bigint[], text[], jsonb[], text[]) TO dataflow_worker;
CREATE FUNCTION dataflow._queued_reason(p_chunk bigint) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET jit = off
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
  c dataflow.chunk;
  j dataflow.job;
  p dataflow.pool;
  ahead bigint;
  job_live bigint;
  job_expired bigint;
  pool_live bigint;
  cap bigint;
  job_full boolean;
  pool_full boolean;
  pos text;
  job_part text;
  pool_part text;
  next_step text;
  held text;
BEGIN
  SELECT * INTO c FROM dataflow.chunk WHERE id = p_chunk;
  SELECT * INTO j FROM dataflow.job WHERE output_id = c.dataset_id;
  IF j.id IS NULL THEN
    RETURN 'queued (no job produces this dataset)';
  END IF;
  IF j.paused THEN
    RETURN 'job ' || j.name || ' is paused (dataflow.resume_job)';
  END IF;
  IF EXISTS (SELECT FROM dataflow.job_input jl WHERE jl.job_id = j.id AND jl.mapping = 'latest'
                AND NOT EXISTS (SELECT FROM dataflow.chunk lc WHERE lc.dataset_id = jl.dataset_id
                                   AND dataflow._level(lc.status) >= jl.need)) THEN
    RETURN 'waits for an available chunk of its latest input(s) '
           || (SELECT string_agg(lds.name, ', ') FROM dataflow.job_input jl
                 JOIN dataflow.dataset lds ON lds.id = jl.dataset_id
                WHERE jl.job_id = j.id AND jl.mapping = 'latest');
  END IF;
  IF c.not_before > now() THEN
    RETURN 'retry backoff until ' || to_char(c.not_before, 'YYYY-MM-DD HH24:MI:SS TZ')
           || coalesce(', last error: ' || left(c.error, 200), '');
  END IF;
  SELECT string_agg('run ' || rr.id || ' (' || rr.worker || ')', ', ' ORDER BY rr.id) INTO held
    FROM dataflow.run_input ri JOIN dataflow.run rr ON rr.id = ri.run_id
   WHERE ri.chunk_id = c.id AND rr.finished_at IS NULL AND rr.status IN ('running', 'superseded');
  IF held IS NOT NULL THEN
    RETURN 'held by runs still reading the previous version: ' || held;
  END IF;

  SELECT count(*) INTO ahead FROM (
    SELECT 1 FROM dataflow.queue qu JOIN dataflow.chunk x ON x.id = qu.chunk_id
     WHERE qu.dataset_id = c.dataset_id AND (qu.not_before, qu.chunk_id) < (c.not_before, c.id)
       AND x.status = 'queued'
       AND (x.version = 1
            OR (SELECT 1 FROM dataflow.run_input ri JOIN dataflow.run rr ON rr.id = ri.run_id
                 WHERE ri.chunk_id = x.id AND rr.finished_at IS NULL
                   AND rr.status IN ('running', 'superseded') LIMIT 1) IS NULL)
     LIMIT 10001) a;
  pos := CASE WHEN ahead > 10000 THEN 'more than 10000 chunks ahead of it in the queue'
              ELSE 'position ' || ahead + 1 || ' in the queue' END;

  -- bounded like the position: a count past 10,000 live runs (or past the job's limit, if
  -- higher) says nothing more. A lease past its deadline still holds its slot until
  -- reap() ends it: counted apart, so a job of dead workers is not "busy".
  cap := greatest(10000, coalesce(j.max_concurrency, 0)) + 1;
  SELECT count(*), count(*) FILTER (WHERE lr.deadline < clock_timestamp()) INTO job_live, job_expired
    FROM (SELECT r.deadline FROM dataflow.run r WHERE r.job_id = j.id AND r.status = 'running' LIMIT cap) lr;
  job_full := j.max_concurrency IS NOT NULL AND job_live >= j.max_concurrency;
  job_part := CASE WHEN j.max_concurrency IS NULL AND job_live = 0 THEN NULL   -- said by next_step
                   WHEN j.max_concurrency IS NULL THEN
                     CASE WHEN job_live >= cap THEN 'more than ' || cap - 1 ELSE job_live::text END
                     || ' run(s) of job ' || j.name || ' live (no limit)'
                   ELSE CASE WHEN job_live >= cap THEN 'more than ' || cap - 1 ELSE job_live::text END
                        || ' of ' || j.max_concurrency || ' slots of job ' || j.name || ' busy' END
              || CASE WHEN job_expired > 0
                      THEN ' (' || job_expired || ' of them past their deadline: reap() ends them)' ELSE '' END;
  IF j.pool_id IS NOT NULL THEN
    SELECT * INTO p FROM dataflow.pool pl WHERE pl.id = j.pool_id;
    SELECT count(*) INTO pool_live FROM (SELECT 1 FROM dataflow.run r WHERE r.pool_id = p.id AND r.status = 'running'
                                           LIMIT 10001) lr;
    pool_full := pool_live >= p.slots;
    pool_part := CASE WHEN pool_live > 10000 THEN 'more than 10000' ELSE pool_live::text END
                 || ' of ' || p.slots || ' slots of pool ' || p.name || ' busy';
  END IF;
  next_step := CASE
    WHEN j.max_concurrency = 0 THEN 'max_concurrency of job ' || j.name
                                    || ' is 0: nothing starts until it is raised (dataflow.alter_job)'
    WHEN p.slots = 0 THEN 'pool ' || p.name || ' has 0 slots: nothing starts until they are raised'
    WHEN job_live > 0 AND job_expired = job_live AND j.dispatch = 'pull' THEN
      'every live lease of job ' || j.name || ' is past its deadline (its workers stopped?): reap() ends them '
      || '(the background worker reaps on its own while it runs); start a worker (dataflow-run --job ' || j.name || ')'
    WHEN job_full THEN 'leased when a run of job ' || j.name || ' ends'
    WHEN pool_full THEN 'leased when a slot of pool ' || p.name || ' frees up'
    WHEN job_live = 0 AND j.dispatch = 'pull' THEN
      'no worker holds a lease of job ' || j.name || ': start a worker (dataflow-run --job ' || j.name || ')'
    WHEN job_live = 0 THEN
      'no run of job ' || j.name || ' is live: waiting for the ' || j.dispatch || ' dispatcher of the background worker'
    WHEN j.dispatch = 'pull' THEN 'the workers of job ' || j.name || ' lease it in turn'
    ELSE 'the ' || j.dispatch || ' dispatcher sends it in turn' END;
  RETURN concat_ws('; ', 'queued for job ' || j.name || ': ' || pos,
                   nullif(CASE WHEN coalesce(pool_full, false) AND NOT job_full THEN concat_ws(', ', pool_part, job_part)
                               ELSE concat_ws(', ', job_part, pool_part) END, ''),
                   next_step);
END $$;
REVOKE EXECUTE ON FUNCTION dataflow._queued_reason(bigint) FROM PUBLIC;
DROP FUNCTION dataflow.explain(text, text);
CREATE FUNCTION dataflow.explain(dataset text, key text)
RETURNS TABLE(question text, ok boolean, evidence text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c dataflow.chunk := dataflow._chunk(dataset, key);
  d dataflow.dataset;
  j dataflow.job;
  r dataflow.run;
  live dataflow.run;
  stale text; inputs text; readers text; n_readers integer; avail boolean;
BEGIN
  SELECT * INTO d FROM dataflow.dataset ds WHERE ds.id = c.dataset_id;
  SELECT * INTO j FROM dataflow.job jb WHERE jb.output_id = d.id;
  SELECT * INTO r FROM dataflow.run rn WHERE rn.id = c.run_id;
  SELECT * INTO live FROM dataflow.run rn WHERE rn.chunk_id = c.id AND rn.status = 'running' LIMIT 1;
  avail := dataflow._level(c.status) > 0;

  question := 'ready';
  ok := avail;
  evidence := 'status ' || c.status || ' since ' || to_char(c.updated_at, 'YYYY-MM-DD HH24:MI:SS TZ')
    || ', version ' || c.version
    || CASE
         WHEN c.status IN ('ready', 'validated') AND r.id IS NOT NULL THEN
           ', produced by run ' || r.id || ' (job ' || coalesce(j.name, '?') || ', worker ' || r.worker || ')'
         WHEN c.status IN ('ready', 'validated') THEN ', registered as a source chunk'
         WHEN c.status = 'skipped' THEN ', declared empty: ' || coalesce(c.info ->> 'skip_reason', '')
         WHEN c.status = 'waiting' AND j.id IS NULL THEN ', source chunk not registered yet (dataflow.register)'
         WHEN c.status = 'waiting' THEN ', ' || c.unmet || ' input(s) not available yet (see dataflow.blockers)'
         WHEN c.status = 'queued' THEN ', ' || dataflow._queued_reason(c.id)
         WHEN c.status = 'running' THEN ', leased by ' || coalesce(live.worker, '?') || ' until '
                                         || coalesce(to_char(live.deadline, 'HH24:MI:SS'), '?')
         WHEN c.status = 'failed' THEN ' after ' || c.attempts || ' attempt(s): ' || coalesce(c.error, '')
         WHEN c.status = 'invalid' THEN ', validation failed: ' || coalesce((c.validation -> 'report')::text, '')
         WHEN c.status = 'cancelled' THEN ', cancelled by an operator'
         ELSE '' END;
  RETURN NEXT;

  -- Correct: expected key, current version, and built from the inputs' current versions.
  SELECT string_agg(dataflow._chunk_name(ri.chunk_id) || ' read v' || ri.version || ', now v' || ic.version
                    || ' ' || ic.status, '; ' ORDER BY ri.chunk_id)
    INTO stale
    FROM dataflow.run_input ri JOIN dataflow.chunk ic ON ic.id = ri.chunk_id
   WHERE ri.run_id = r.id AND (ic.version <> ri.version OR dataflow._level(ic.status) = 0);
  SELECT count(*) || ' input chunk(s), all at the versions read' INTO inputs
    FROM dataflow.run_input ri WHERE ri.run_id = r.id;
  question := 'correct';
  IF NOT avail THEN
    ok := false;
    evidence := 'version ' || c.version || ' is not produced yet';
  ELSIF c.status = 'skipped' THEN
    ok := true;
    evidence := 'key ' || c.key || ' is declared empty at version ' || c.version;
  ELSIF j.id IS NULL THEN
    ok := true;
    evidence := 'key ' || c.key || ', version ' || c.version || ' of source dataset ' || d.name;
  ELSIF stale IS NOT NULL THEN
    ok := false;
    evidence := 'stale: version ' || c.version || ' was built from inputs re-produced since: ' || stale;
  ELSE
    ok := true;
    evidence := 'key ' || c.key || ', version ' || c.version || ' built by run ' || coalesce(r.id::text, '?')
                || ' from ' || inputs;
  END IF;
  RETURN NEXT;

  question := 'location';
  ok := c.location IS NOT NULL AND avail;
  evidence := CASE
    WHEN c.location IS NOT NULL AND avail THEN c.location
    WHEN c.status = 'skipped' THEN 'declared empty: no data to locate'
    WHEN d.location IS NOT NULL THEN 'not produced yet; will be '
         || dataflow._location(d.location, d.name, c.key, c.version)
    ELSE 'no location recorded and dataset ' || d.name || ' has no location template' END;
  RETURN NEXT;

  question := 'validated';
  ok := c.status IN ('validated', 'skipped') OR (c.status = 'ready' AND NOT d.requires_validation);
  evidence := CASE
    WHEN c.status = 'validated' THEN 'passed at ' || to_char((c.validation ->> 'at')::timestamptz, 'YYYY-MM-DD HH24:MI:SS TZ')
         || ' by ' || (c.validation ->> 'by') || ': ' || (c.validation -> 'report')::text
    WHEN c.status = 'invalid' THEN 'FAILED validation by ' || (c.validation ->> 'by') || ': '
         || (c.validation -> 'report')::text
    WHEN c.status = 'skipped' THEN 'declared empty'
    WHEN NOT d.requires_validation THEN 'dataset ' || d.name || ' does not require validation'
    ELSE 'dataset ' || d.name || ' requires validation; not validated yet' END;
  RETURN NEXT;

  -- Safe: no writer holds it, and readers hold it against re-production.
  -- Readers: live runs that read it, and runs a resubmit superseded whose process has not
  -- ended (they hold it until they end, or reap() expires them, as lease() counts them).
  SELECT count(*), string_agg('run ' || rr.id || ' (' || rr.worker
                              || CASE WHEN rr.status = 'superseded' THEN ', superseded, still reading' ELSE '' END
                              || ')', ', ' ORDER BY rr.id)
    INTO n_readers, readers
    FROM dataflow.run_input ri JOIN dataflow.run rr ON rr.id = ri.run_id
   WHERE ri.chunk_id = c.id AND rr.finished_at IS NULL AND rr.status IN ('running', 'superseded');
  question := 'safe';
  ok := avail AND live.id IS NULL;
  evidence := CASE
    WHEN live.id IS NOT NULL THEN 'a writer holds it: run ' || live.id || ' (' || live.worker || ') is producing version '
         || live.version
    WHEN NOT avail THEN 'not available: it will be (re)produced'
    ELSE 'no writer' END
    || CASE WHEN n_readers > 0 THEN '; ' || n_readers || ' reader(s) hold it against re-production: ' || readers
            ELSE '; no readers' END;
  RETURN NEXT;
END $$;
COMMENT ON FUNCTION dataflow.explain(text, text) IS
  'The five questions for a chunk, in order ready, correct, location, validated, safe: '
  'each with ok and the evidence from the tables';
ALTER FUNCTION dataflow.explain(text, text) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.explain(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.explain(text, text) TO dataflow_reader;
DROP FUNCTION dataflow.blockers(text, text);
CREATE FUNCTION dataflow.blockers(dataset text, key text)
RETURNS SETOF dataflow.blocker
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off SET enable_bitmapscan = off AS $$
DECLARE
  c dataflow.chunk := dataflow._chunk(blockers.dataset, blockers.key);
  n_ids bigint[]; n_depths integer[]; n_needs smallint[]; walked bigint;
BEGIN
  WITH RECURSIVE walk(id, depth, need) AS (
    SELECT c.id, 0, 1::smallint
    UNION
    SELECT dp.input, w.depth + 1, dp.need
      FROM walk w
      -- per chunk of the walk, its edges by index (OFFSET 0 keeps the planner from
      -- turning this into a join planned from dep's statistics)
      CROSS JOIN LATERAL (SELECT e.input, e.need FROM dataflow.dep e WHERE e.consumer = w.id OFFSET 0) dp
      JOIN dataflow.chunk ic ON ic.id = dp.input
     WHERE dataflow._level(ic.status) < dp.need AND w.depth < 50
  ), capped AS (
    SELECT * FROM walk LIMIT 100001
  )
  SELECT array_agg(x.id), array_agg(x.depth), array_agg(x.need), (SELECT count(*) FROM capped)
    INTO n_ids, n_depths, n_needs, walked
    FROM (SELECT w.id, min(w.depth) AS depth, max(w.need) AS need FROM capped w GROUP BY w.id) x;
  RETURN QUERY
  WITH nodes AS (SELECT * FROM unnest(n_ids, n_depths, n_needs) u(id, depth, need))
  SELECT n.depth, ds.name, ch.key, ch.status,
         CASE
           WHEN dataflow._level(ch.status) >= n.need THEN 'available: not blocked'
           WHEN ch.status = 'ready' THEN 'ready but not validated, and a consumer needs it validated (dataflow.validate)'
           WHEN ch.status = 'waiting' AND jb.id IS NULL THEN
             'source chunk not registered yet (dataflow.register)'
           WHEN ch.status = 'waiting' AND EXISTS (SELECT FROM dataflow.latest_wait lw WHERE lw.consumer = ch.id) THEN
             'waits for the first available chunk of ' ||
             (SELECT string_agg(lds.name, ', ') FROM dataflow.latest_wait lw
                JOIN dataflow.dataset lds ON lds.id = lw.dataset_id WHERE lw.consumer = ch.id)
           WHEN ch.status = 'waiting' THEN ch.unmet || ' input(s) not available'
           -- the full reason (position, slots) for the first 20 queued rows: each costs up to a
           -- 10,000-row walk, and a wide window can put thousands of queued inputs here
           WHEN ch.status = 'queued'
                AND row_number() OVER (PARTITION BY ch.status = 'queued' ORDER BY n.depth, ds.name, ch.ord, ch.key) <= 20
             THEN dataflow._queued_reason(ch.id)
           WHEN ch.status = 'queued' THEN
             'queued for job ' || coalesce(jb.name, '?') || ' (more than 20 queued rows: the first 20 say why; '
             || 'dataflow.blockers(' || quote_literal(ds.name) || ', ' || quote_literal(ch.key) || ') for this one)'
           WHEN ch.status = 'running' THEN
             (SELECT 'running: run ' || rr.id || ' by ' || rr.worker || ', deadline '
                     || to_char(rr.deadline, 'YYYY-MM-DD HH24:MI:SS TZ')
                FROM dataflow.run rr WHERE rr.chunk_id = ch.id AND rr.status = 'running' LIMIT 1)
           WHEN ch.status = 'failed' THEN
             'FAILED after ' || ch.attempts || ' attempt(s): ' || coalesce(left(ch.error, 500), '?')
             || ' (fix, then resubmit)'
           WHEN ch.status = 'invalid' THEN 'FAILED validation: ' || coalesce((ch.validation -> 'report')::text, '')
           WHEN ch.status = 'cancelled' THEN 'cancelled by an operator (resubmit to restart)'
           ELSE ch.status END
    FROM nodes n
    JOIN dataflow.chunk ch ON ch.id = n.id
    JOIN dataflow.dataset ds ON ds.id = ch.dataset_id
    LEFT JOIN dataflow.job jb ON jb.output_id = ch.dataset_id
   ORDER BY n.depth, ds.name, ch.ord, ch.key;
  IF walked > 100000 THEN
    RETURN NEXT ROW(NULL::integer, NULL::text, NULL::text, NULL::text,
                    'the walk stopped after 100000 steps: more chunks upstream may be in the way; '
                    'ask blockers() of the deepest rows above')::dataflow.blocker;
  END IF;
END $$;
COMMENT ON FUNCTION dataflow.blockers(text, text) IS
  'What a chunk waits on, followed upstream to the root causes: one row per blocking chunk with its '
  'depth, status and reason (missing source key, failed chunk and its error, paused job, backoff; a queued chunk''s '
  'position in its job''s queue and the busy slots of the job and its pool)';
ALTER FUNCTION dataflow.blockers(text, text) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.blockers(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.blockers(text, text) TO dataflow_reader;

-- 47_incremental, 22_jobs, 10_model: incremental batches with a size cap (issue 16 item 2).
-- job_input.max_chunks (add_input(..., max_chunks)) caps the chunks an incremental input gives
-- a batch, job.batch_max_rows (create_job, alter_job) a batch's input rows; _cut_batch takes
-- the lowest pending keys within both caps (incremental_pending now carries dataset and ord,
-- walked by incremental_pending_order); the task's batch and the batch event carry the rows.
ALTER TABLE dataflow.job ADD COLUMN batch_max_rows bigint CHECK (batch_max_rows > 0);
COMMENT ON COLUMN dataflow.job.batch_max_rows IS
  'incremental jobs: at most this many input rows (sum of row_count, NULL counting 0) per batch; '
  'a chunk over it is a batch of its own (NULL: no cap)';
ALTER TABLE dataflow.job_input ADD COLUMN max_chunks integer CHECK (max_chunks > 0),
  ADD CONSTRAINT job_input_max_chunks_incremental CHECK (max_chunks IS NULL OR mapping = 'incremental');
COMMENT ON COLUMN dataflow.job_input.max_chunks IS
  'incremental inputs: at most this many chunks of this input per batch (NULL: no cap)';
DELETE FROM dataflow.incremental_pending p WHERE NOT EXISTS (SELECT FROM dataflow.chunk c WHERE c.id = p.chunk_id);
ALTER TABLE dataflow.incremental_pending ADD COLUMN dataset_id integer, ADD COLUMN ord bigint;
UPDATE dataflow.incremental_pending p SET dataset_id = c.dataset_id, ord = c.ord
  FROM dataflow.chunk c WHERE c.id = p.chunk_id;
ALTER TABLE dataflow.incremental_pending ALTER COLUMN dataset_id SET NOT NULL;
CREATE INDEX incremental_pending_order ON dataflow.incremental_pending (job_id, dataset_id, ord, chunk_id);

DROP FUNCTION dataflow._incremental_arrived(bigint, integer, integer, integer);
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
REVOKE EXECUTE ON FUNCTION dataflow._incremental_arrived(bigint, integer, integer, integer) FROM PUBLIC;

DROP FUNCTION dataflow._cut_batch(integer);
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
REVOKE EXECUTE ON FUNCTION dataflow._cut_batch(integer) FROM PUBLIC;

DROP FUNCTION dataflow._batch_params(bigint, text, text[]);
CREATE FUNCTION dataflow._batch_params(p_run bigint, p_key text, p_from text[]) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN (SELECT jsonb_build_object('batch', jsonb_build_object(
                   'number', p_key::bigint,
                   'keys', coalesce(jsonb_agg(ic.key ORDER BY ic.ord, ic.key), '[]'::jsonb),
                   'lowest_key', (array_agg(ic.key ORDER BY ic.ord, ic.key))[1],
                   'highest_key', (array_agg(ic.key ORDER BY ic.ord DESC, ic.key DESC))[1],
                   'rows', coalesce(sum(ic.row_count), 0)))
            FROM dataflow.run_input ri JOIN dataflow.chunk ic ON ic.id = ri.chunk_id
            JOIN dataflow.dataset ids ON ids.id = ic.dataset_id
           WHERE ri.run_id = p_run AND ids.name = ANY (p_from));
END $$;
REVOKE EXECUTE ON FUNCTION dataflow._batch_params(bigint, text, text[]) FROM PUBLIC;

DROP FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer);
CREATE FUNCTION dataflow.create_job(
  name text,
  output text,
  dispatch text DEFAULT 'pull',
  connection text DEFAULT NULL,
  target text DEFAULT NULL,
  endpoint text DEFAULT NULL,
  params jsonb DEFAULT '{}',
  pool text DEFAULT NULL,
  max_concurrency integer DEFAULT NULL,
  max_attempts integer DEFAULT 3,
  backoff_min interval DEFAULT '10 seconds',
  backoff_max interval DEFAULT '10 minutes',
  lease_for interval DEFAULT '5 minutes',
  priority integer DEFAULT 0,
  batch_max_rows bigint DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d integer; c dataflow.connection; p integer; v integer; other text;
BEGIN
  PERFORM dataflow._check_name('job', name);
  d := dataflow._dataset_id(output);
  IF dispatch IS NULL OR dispatch NOT IN ('pull', 'http', 'airflow') THEN
    RAISE EXCEPTION 'invalid dispatch "%"', coalesce(dispatch, 'NULL')
      USING ERRCODE = CASE WHEN dispatch IS NULL THEN '22004' ELSE '22023' END, HINT = 'dispatch is pull (workers call lease), http or airflow.';
  END IF;
  IF connection IS NOT NULL THEN
    SELECT * INTO c FROM dataflow.connection cn WHERE cn.name = create_job.connection;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'connection "%" does not exist', left(connection, 64) USING ERRCODE = '42704';
    END IF;
  END IF;
  IF dispatch = 'pull' AND (connection IS NOT NULL OR endpoint IS NOT NULL OR target IS NOT NULL) THEN
    RAISE EXCEPTION 'a pull job takes no connection, target or endpoint' USING ERRCODE = '22023';
  ELSIF dispatch = 'http' THEN
    IF (endpoint IS NULL) = (connection IS NULL) THEN
      RAISE EXCEPTION 'an http job needs either endpoint or connection (with target), not both'
        USING ERRCODE = '22023';
    END IF;
    IF endpoint IS NOT NULL AND (endpoint !~ '^https?://[^\s/?#@]+(/[^\s]*)?$' OR endpoint ~ '[\r\n]') THEN
      RAISE EXCEPTION 'invalid endpoint "%"', left(endpoint, 200)
        USING ERRCODE = '22023', HINT = 'An http:// or https:// URL without credentials in it.';
    END IF;
    IF connection IS NOT NULL AND c.kind <> 'http' THEN
      RAISE EXCEPTION 'connection "%" is of kind %, not http', connection, c.kind USING ERRCODE = '22023';
    END IF;
  ELSIF dispatch = 'airflow' THEN
    IF connection IS NULL OR c.kind <> 'airflow' OR target IS NULL OR endpoint IS NOT NULL THEN
      RAISE EXCEPTION 'an airflow job needs an airflow connection and a target (the DAG id), and no endpoint'
        USING ERRCODE = '22023';
    END IF;
  END IF;
  IF target IS NOT NULL AND target !~ '^[A-Za-z0-9_./-]{1,250}$' THEN
    RAISE EXCEPTION 'invalid target "%"', left(target, 64)
      USING ERRCODE = '22023', HINT = 'A DAG id or a URL path: letters, digits, "_", ".", "/" and "-".';
  END IF;
  IF params IS NULL OR jsonb_typeof(params) <> 'object' THEN
    RAISE EXCEPTION 'params must be a JSON object'
      USING ERRCODE = CASE WHEN params IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF pool IS NOT NULL THEN
    SELECT id INTO p FROM dataflow.pool pl WHERE pl.name = create_job.pool;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'pool "%" does not exist', left(pool, 64) USING ERRCODE = '42704';
    END IF;
  END IF;
  IF max_concurrency < 0 OR max_attempts IS NULL OR max_attempts < 1 THEN
    RAISE EXCEPTION 'max_concurrency must be >= 0 (or NULL: unlimited) and max_attempts >= 1'
      USING ERRCODE = CASE WHEN max_attempts IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF backoff_min IS NULL OR backoff_max IS NULL OR backoff_min < interval '0' OR backoff_max < backoff_min THEN
    RAISE EXCEPTION 'backoff needs 0 <= backoff_min <= backoff_max'
      USING ERRCODE = CASE WHEN backoff_min IS NULL OR backoff_max IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF lease_for IS NULL OR lease_for <= interval '0' THEN
    RAISE EXCEPTION 'lease_for must be positive'
      USING ERRCODE = CASE WHEN lease_for IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF priority IS NULL THEN
    RAISE EXCEPTION 'priority must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF batch_max_rows <= 0 THEN
    RAISE EXCEPTION 'batch_max_rows must be positive (got %)', batch_max_rows
      USING ERRCODE = '22023', HINT = 'Give the most input rows one batch may take, or NULL for no cap.';
  END IF;
  IF EXISTS (SELECT FROM dataflow.job j WHERE j.name = create_job.name) THEN
    RAISE EXCEPTION 'job "%" already exists', name USING ERRCODE = '42710';
  END IF;
  SELECT j.name INTO other FROM dataflow.job j WHERE j.output_id = d;
  IF FOUND THEN
    RAISE EXCEPTION 'dataset "%" is already produced by job "%"', output, other
      USING ERRCODE = '42710', HINT = 'A dataset has at most one producing job.';
  END IF;
  IF EXISTS (SELECT FROM dataflow.chunk ch WHERE ch.dataset_id = d) THEN
    RAISE EXCEPTION 'dataset "%" already has chunks', output
      USING ERRCODE = '55000',
            HINT = 'Define the producing job before expecting or registering chunks of its output.';
  END IF;
  INSERT INTO dataflow.job (name, output_id, dispatch, connection_id, target, endpoint, params, pool_id,
                            max_concurrency, max_attempts, backoff_min, backoff_max, lease_for, priority,
                            batch_max_rows)
  VALUES (name, d, dispatch, c.id, target, endpoint, params, p,
          max_concurrency, max_attempts, backoff_min, backoff_max, lease_for, priority, batch_max_rows)
  RETURNING id INTO v;
  RETURN v;
END $$;
COMMENT ON FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer,
                                        interval, interval, interval, integer, bigint) IS
  'Define the job producing a dataset: dispatch (pull, http, airflow), connection/target or endpoint, '
  'params, pool, max_concurrency, max_attempts, backoff_min/max, lease_for, priority, batch_max_rows '
  '(an incremental job''s cap on a batch''s input rows); returns its id';
ALTER FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint) TO dataflow_admin;

DROP FUNCTION dataflow.add_input(text, text, text, integer, integer, text);
CREATE FUNCTION dataflow.add_input(
  job text, dataset text,
  mapping text DEFAULT 'same',
  lo integer DEFAULT NULL, hi integer DEFAULT NULL,
  require text DEFAULT NULL,
  max_chunks integer DEFAULT NULL)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  j dataflow.job := dataflow._job(job);
  d dataflow.dataset;
  o dataflow.dataset;
  cyc boolean;
BEGIN
  d := dataflow._dataset_row(dataset);
  SELECT * INTO o FROM dataflow.dataset WHERE id = j.output_id;
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
                                          WHERE ji.job_id = j.id AND ji.mapping <> 'latest') THEN
    RAISE EXCEPTION 'an incremental input cannot be combined with same, window or rollup inputs'
      USING ERRCODE = '42P17', HINT = 'A batch job may add latest inputs (dimensions) only.';
  END IF;
  IF mapping IN ('same', 'window', 'rollup') AND EXISTS (SELECT FROM dataflow.job_input ji
                                          WHERE ji.job_id = j.id AND ji.mapping = 'incremental') THEN
    RAISE EXCEPTION 'job "%" consumes batches (incremental); it cannot also map keys with %', j.name, mapping
      USING ERRCODE = '42P17';
  END IF;
  IF EXISTS (SELECT FROM dataflow.job_input ji WHERE ji.job_id = j.id AND ji.dataset_id = d.id) THEN
    RAISE EXCEPTION 'job "%" already has input "%"', j.name, d.name USING ERRCODE = '42710';
  END IF;
  -- A cycle: the output dataset already reaches the new input downstream.
  WITH RECURSIVE down(ds) AS (
    SELECT j.output_id
    UNION
    SELECT jb.output_id FROM down JOIN dataflow.job_input ji ON ji.dataset_id = down.ds
                                  JOIN dataflow.job jb ON jb.id = ji.job_id)
  SELECT EXISTS (SELECT FROM down WHERE ds = d.id) INTO cyc;
  IF cyc THEN
    RAISE EXCEPTION 'input "%" of job "%" would make a cycle', d.name, j.name
      USING ERRCODE = '42P17', HINT = 'Dataset "' || d.name || '" is downstream of "' || o.name || '".';
  END IF;
  IF EXISTS (SELECT FROM dataflow.chunk ch WHERE ch.dataset_id = j.output_id) THEN
    RAISE EXCEPTION 'the output of job "%" already has chunks', j.name
      USING ERRCODE = '55000', HINT = 'Add every input before expecting chunks of the output.';
  END IF;
  INSERT INTO dataflow.job_input (job_id, dataset_id, mapping, lo, hi, require, need, max_chunks)
  VALUES (j.id, d.id, mapping, lo, hi, require,
          CASE coalesce(require, CASE WHEN d.requires_validation THEN 'validated' ELSE 'ready' END)
            WHEN 'validated' THEN 2 ELSE 1 END, max_chunks);
  PERFORM dataflow._rerank();
  IF mapping = 'incremental' THEN
    -- Everything already available is pending: the first batch takes it (or, with caps, the
    -- first batches).
    INSERT INTO dataflow.incremental_pending (job_id, chunk_id, need, dataset_id, ord)
    SELECT j.id, c.id, ji.need, c.dataset_id, c.ord FROM dataflow.chunk c
      JOIN dataflow.job_input ji ON ji.job_id = j.id AND ji.dataset_id = d.id
     WHERE c.dataset_id = d.id AND dataflow._level(c.status) >= ji.need;
  END IF;
END $$;
COMMENT ON FUNCTION dataflow.add_input(text, text, text, integer, integer, text, integer) IS
  'Make a dataset an input of a job: mapping same, window (lo, hi), rollup, latest or incremental; '
  'require ready or validated (NULL: the input dataset decides); max_chunks caps the chunks an '
  'incremental input gives one batch';
ALTER FUNCTION dataflow.add_input(text, text, text, integer, integer, text, integer) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.add_input(text, text, text, integer, integer, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.add_input(text, text, text, integer, integer, text, integer) TO dataflow_admin;

DROP FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb);
CREATE FUNCTION dataflow.alter_job(
  name text,
  pool text DEFAULT NULL,
  max_concurrency integer DEFAULT NULL,
  max_attempts integer DEFAULT NULL,
  backoff_min interval DEFAULT NULL,
  backoff_max interval DEFAULT NULL,
  lease_for interval DEFAULT NULL,
  priority integer DEFAULT NULL,
  params jsonb DEFAULT NULL,
  batch_max_rows bigint DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET IntervalStyle = 'postgres' AS $$
DECLARE
  j dataflow.job; p integer; pname text; new_pool integer; new_limit integer;
  new_min interval; new_max interval; changes jsonb := '{}'; shown jsonb; new_rows bigint;
BEGIN
  SELECT * INTO j FROM dataflow.job jb WHERE jb.id = (dataflow._job(alter_job.name)).id FOR UPDATE;
  IF (pool IS NOT NULL OR params IS NOT NULL)
     AND NOT pg_has_role(dataflow._caller(), 'dataflow_admin', 'MEMBER') THEN
    RAISE EXCEPTION 'changing the pool or the params of job "%" needs dataflow_admin', j.name
      USING ERRCODE = '42501',
            HINT = 'An operator may change max_concurrency, max_attempts, backoff_min, backoff_max, lease_for, priority and batch_max_rows.';
  END IF;
  new_pool := j.pool_id;
  IF pool = '' THEN
    new_pool := NULL;
  ELSIF pool IS NOT NULL THEN
    SELECT pl.id INTO p FROM dataflow.pool pl WHERE pl.name = alter_job.pool;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'pool "%" does not exist', left(pool, 64) USING ERRCODE = '42704',
        HINT = 'Create it with dataflow.create_pool(name, slots), or pass pool => '''' to detach the job''s pool.';
    END IF;
    new_pool := p;
  END IF;
  IF max_concurrency < -1 THEN
    RAISE EXCEPTION 'max_concurrency must be >= 0, or -1 to remove the job''s own limit (got %)', max_concurrency
      USING ERRCODE = '22023';
  END IF;
  new_limit := CASE WHEN max_concurrency IS NULL THEN j.max_concurrency
                    WHEN max_concurrency = -1 THEN NULL ELSE max_concurrency END;
  IF max_attempts < 1 THEN
    RAISE EXCEPTION 'max_attempts must be >= 1 (got %)', max_attempts USING ERRCODE = '22023';
  END IF;
  new_min := coalesce(backoff_min, j.backoff_min);
  new_max := coalesce(backoff_max, j.backoff_max);
  IF new_min < interval '0' OR new_max < new_min THEN
    RAISE EXCEPTION 'backoff needs 0 <= backoff_min <= backoff_max (would be % and %)', new_min, new_max
      USING ERRCODE = '22023';
  END IF;
  IF lease_for <= interval '0' THEN
    RAISE EXCEPTION 'lease_for must be positive (got %)', lease_for USING ERRCODE = '22023';
  END IF;
  IF params IS NOT NULL AND jsonb_typeof(params) <> 'object' THEN
    RAISE EXCEPTION 'params must be a JSON object' USING ERRCODE = '22023';
  END IF;
  IF batch_max_rows = 0 OR batch_max_rows < -1 THEN
    RAISE EXCEPTION 'batch_max_rows must be positive, or -1 to remove the cap (got %)', batch_max_rows
      USING ERRCODE = '22023', HINT = 'Give the most input rows one batch may take; -1 removes the cap, NULL keeps it.';
  END IF;
  new_rows := CASE WHEN batch_max_rows IS NULL THEN j.batch_max_rows
                   WHEN batch_max_rows = -1 THEN NULL ELSE batch_max_rows END;

  IF new_pool IS DISTINCT FROM j.pool_id THEN
    changes := changes || jsonb_build_object('pool', jsonb_build_object(
      'from', (SELECT pl.name FROM dataflow.pool pl WHERE pl.id = j.pool_id),
      'to', (SELECT pl.name FROM dataflow.pool pl WHERE pl.id = new_pool)));
  END IF;
  IF new_limit IS DISTINCT FROM j.max_concurrency THEN
    changes := changes || jsonb_build_object('max_concurrency', jsonb_build_object('from', j.max_concurrency, 'to', new_limit));
  END IF;
  IF coalesce(max_attempts, j.max_attempts) <> j.max_attempts THEN
    changes := changes || jsonb_build_object('max_attempts', jsonb_build_object('from', j.max_attempts, 'to', max_attempts));
  END IF;
  IF new_min <> j.backoff_min THEN
    changes := changes || jsonb_build_object('backoff_min', jsonb_build_object('from', j.backoff_min, 'to', new_min));
  END IF;
  IF new_max <> j.backoff_max THEN
    changes := changes || jsonb_build_object('backoff_max', jsonb_build_object('from', j.backoff_max, 'to', new_max));
  END IF;
  IF coalesce(lease_for, j.lease_for) <> j.lease_for THEN
    changes := changes || jsonb_build_object('lease_for', jsonb_build_object('from', j.lease_for, 'to', lease_for));
  END IF;
  IF coalesce(priority, j.priority) <> j.priority THEN
    changes := changes || jsonb_build_object('priority', jsonb_build_object('from', j.priority, 'to', priority));
  END IF;
  IF params IS NOT NULL AND params <> j.params THEN
    changes := changes || jsonb_build_object('params', 'changed');
  END IF;
  IF new_rows IS DISTINCT FROM j.batch_max_rows THEN
    changes := changes || jsonb_build_object('batch_max_rows', jsonb_build_object('from', j.batch_max_rows, 'to', new_rows));
  END IF;
  IF changes = '{}' THEN
    RETURN changes;
  END IF;
  UPDATE dataflow.job jb
     SET pool_id = new_pool, max_concurrency = new_limit,
         max_attempts = coalesce(alter_job.max_attempts, jb.max_attempts),
         backoff_min = new_min, backoff_max = new_max,
         lease_for = coalesce(alter_job.lease_for, jb.lease_for),
         priority = coalesce(alter_job.priority, jb.priority),
         params = coalesce(alter_job.params, jb.params),
         batch_max_rows = new_rows
   WHERE jb.id = j.id;
  INSERT INTO dataflow.event (to_status, actor, detail)
  VALUES ('altered', dataflow._actor(), jsonb_build_object('job', j.name, 'changes', changes));
  IF j.dispatch <> 'pull' THEN
    PERFORM dataflow._wake();   -- a raised limit or a freer pool: the dispatcher claims at once
  END IF;
  RETURN changes;
END $$;
COMMENT ON FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb,
                                       bigint) IS
  'Change a job''s pool, max_concurrency (-1: no limit), max_attempts, backoff_min/max, lease_for, priority, '
  'params or batch_max_rows (-1: no cap) (NULL keeps a setting; pool => '''' detaches); effective from the '
  'next lease (the next batch); returns the changes';
ALTER FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb, bigint) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb, bigint) TO dataflow_operator;
-- 12_counts, 60_bi_views (issue 19 items 4 and 6): progress tells the truth, gaps are holes.
-- done_minute gains backfill_id (now in its key), superseded and first_at (at the end of
-- the table): the rate counts a job's and a backfill's own current completions (a
-- completion a resubmit reset is superseded) from the lease of the earliest of them
-- (first_started_at, also new; completions are bucketed by the clock); rows recorded by
-- 0.1.0 count for their job only (backfill 0) and from the start of their minute.
-- _count_done takes the backfill, the minute and the superseded count; the trigger
-- records the superseded completions. progress: per_minute from that rate, eta in whole
-- seconds and NULL when nothing can run, a blocked column at the end; dataset_rate the
-- same rate; gaps lists holes (no chunk, failed, invalid, cancelled, skipped without a
-- reason, source key not registered) and in-flight work only when overdue.
DROP VIEW dataflow.progress;
DROP VIEW dataflow.dataset_rate;
DROP VIEW dataflow.gaps;
DROP TRIGGER chunk_counted_update ON dataflow.chunk;
DROP FUNCTION dataflow._chunk_counted_update();
DROP FUNCTION dataflow._count_done(integer, bigint, bigint);
ALTER TABLE dataflow.done_minute
  ADD COLUMN backfill_id integer NOT NULL DEFAULT 0,
  ADD COLUMN superseded integer NOT NULL DEFAULT 0,
  ADD COLUMN first_at timestamptz,
  ADD COLUMN superseded_at timestamptz,
  ADD COLUMN first_started_at timestamptz;
ALTER TABLE dataflow.done_minute DROP CONSTRAINT done_minute_pkey;
ALTER TABLE dataflow.done_minute ADD CONSTRAINT done_minute_pkey PRIMARY KEY (dataset_id, minute, backfill_id, shard);
CREATE FUNCTION dataflow._count_done(p_dataset integer, p_backfill integer, p_minute timestamptz,
                                     p_succeeded bigint, p_failed bigint, p_superseded bigint,
                                     p_started timestamptz)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET jit = off AS $$
DECLARE
  s integer := dataflow._count_shard(7411, p_dataset, (extract(epoch FROM p_minute) / 60)::bigint);
BEGIN
  FOR attempt IN 1..2 LOOP
    UPDATE dataflow.done_minute
       SET succeeded = succeeded + p_succeeded, failed = failed + p_failed,
           superseded = superseded + p_superseded,
           first_at = CASE WHEN p_succeeded > 0 THEN least(first_at, clock_timestamp()) ELSE first_at END,
           first_started_at = CASE WHEN p_succeeded > 0 THEN least(first_started_at, p_started)
                                   ELSE first_started_at END,
           superseded_at = CASE WHEN p_superseded > 0 THEN greatest(superseded_at, clock_timestamp())
                                ELSE superseded_at END
     WHERE dataset_id = p_dataset AND minute = p_minute AND backfill_id = p_backfill AND shard = s;
    EXIT WHEN FOUND OR attempt = 2;
    INSERT INTO dataflow.done_minute (dataset_id, minute, backfill_id, shard)
    VALUES (p_dataset, p_minute, p_backfill, s)
    ON CONFLICT DO NOTHING;
  END LOOP;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'throughput row of dataset % changed after this transaction''s snapshot', p_dataset
      USING ERRCODE = '40001';
  END IF;
END $$;
REVOKE EXECUTE ON FUNCTION dataflow._count_done(integer, integer, timestamptz, bigint, bigint, bigint, timestamptz) FROM PUBLIC;

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
REVOKE EXECUTE ON FUNCTION dataflow._chunk_counted_update() FROM PUBLIC;

CREATE TRIGGER chunk_counted_update AFTER UPDATE ON dataflow.chunk
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
  EXECUTE FUNCTION dataflow._chunk_counted_update();

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

GRANT SELECT ON dataflow.progress, dataflow.gaps, dataflow.dataset_rate TO dataflow_reader;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON dataflow.progress, dataflow.gaps, dataflow.dataset_rate
  TO dataflow_admin;

-- 00_schema, 20_define, 70_worker (issue 19 item 7, messages): dataflow._raise (C: an ERROR
-- without CONTEXT lines), _name_distance (C: bounded Levenshtein), _suggest and _not_found (an
-- unknown name suggests the nearest names the caller can list); the lookup helpers and the
-- name checks raise through them; NULL arguments are named. drop_subscription depends on
-- unsubscribe (BEGIN ATOMIC), so it is dropped and made again around it.
CREATE FUNCTION dataflow._raise(sqlstate text, message text, detail text DEFAULT NULL, hint text DEFAULT NULL)
RETURNS void AS 'MODULE_PATHNAME', 'df_raise' LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION dataflow._raise(text, text, text, text) IS
  'Raise an ERROR with this SQLSTATE, message, detail and hint (NULL: none) and no CONTEXT lines';
REVOKE EXECUTE ON FUNCTION dataflow._raise(text, text, text, text) FROM PUBLIC;
CREATE FUNCTION dataflow._name_distance(a text, b text, cap integer) RETURNS integer
AS 'MODULE_PATHNAME', 'df_name_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dataflow._name_distance(text, text, integer) IS
  'Levenshtein distance of two names, ASCII letters case-insensitive; cap + 1 when it is larger than cap';
REVOKE EXECUTE ON FUNCTION dataflow._name_distance(text, text, integer) FROM PUBLIC;
CREATE FUNCTION dataflow._suggest(kind text, name text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  rel text := CASE kind WHEN 'dataset' THEN 'dataflow.datasets' WHEN 'job' THEN 'dataflow.jobs'
                        WHEN 'pool' THEN 'dataflow.pool' WHEN 'connection' THEN 'dataflow.connection'
                        WHEN 'subscription' THEN 'dataflow.subscription' END;
  tbl text := CASE kind WHEN 'dataset' THEN 'dataflow.dataset' WHEN 'job' THEN 'dataflow.job'
                        WHEN 'pool' THEN 'dataflow.pool' WHEN 'connection' THEN 'dataflow.connection'
                        WHEN 'subscription' THEN 'dataflow.subscription' END;
  n integer := pg_catalog.length(name);
  found text[];
BEGIN
  IF rel IS NULL OR name IS NULL OR n OPERATOR(pg_catalog.>) 200
     OR NOT pg_catalog.has_table_privilege(dataflow._caller(), rel, 'SELECT') THEN
    RETURN NULL;
  END IF;
  EXECUTE pg_catalog.format($q$
    SELECT pg_catalog.array_agg(c ORDER BY near DESC, dist, c) FROM (
      SELECT c, near, dist FROM (
        SELECT x.name AS c, d.dist OPERATOR(pg_catalog.<=) $2 AS near, d.dist
          FROM %s x,
               LATERAL (SELECT CASE WHEN pg_catalog.abs(pg_catalog.length(x.name) OPERATOR(pg_catalog.-) $3)
                                           OPERATOR(pg_catalog.<=) $2
                                    THEN dataflow._name_distance(x.name, $1, $2)
                                    ELSE $2 OPERATOR(pg_catalog.+) 1 END AS dist) d
         WHERE x.name OPERATOR(pg_catalog.<>) $1) y
       WHERE near
          OR (LEAST(pg_catalog.length(c), $3) OPERATOR(pg_catalog.>=) 3
              AND (pg_catalog.starts_with(pg_catalog.lower(c), pg_catalog.lower($1))
                   OR pg_catalog.starts_with(pg_catalog.lower($1), pg_catalog.lower(c))))
       ORDER BY near DESC, dist, c LIMIT 3) z$q$, tbl)
    INTO found USING name, GREATEST(2, n OPERATOR(pg_catalog./) 3), n;
  IF found IS NULL THEN
    RETURN NULL;
  END IF;
  RETURN 'Did you mean ' || CASE pg_catalog.cardinality(found)
    WHEN 1 THEN found[1]
    WHEN 2 THEN found[1] || ' or ' || found[2]
    ELSE found[1] || ', ' || found[2] || ' or ' || found[3] END || '?';
END $$;
REVOKE EXECUTE ON FUNCTION dataflow._suggest(text, text) FROM PUBLIC;
CREATE FUNCTION dataflow._not_found(kind text, name text, otherwise text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE s text := dataflow._suggest(kind, name);
BEGIN
  PERFORM dataflow._raise('42704', pg_catalog.format('%s "%s" does not exist', kind, pg_catalog.left(name, 64)), NULL,
    CASE WHEN s IS NULL THEN pg_catalog.upper(pg_catalog.left(otherwise, 1)) || pg_catalog.substr(otherwise, 2)
         WHEN otherwise IS NULL THEN s
         ELSE s || ' Otherwise ' || otherwise END);
END $$;
REVOKE EXECUTE ON FUNCTION dataflow._not_found(text, text, text) FROM PUBLIC;
DROP FUNCTION dataflow._check_name(text, text);
CREATE FUNCTION dataflow._check_name(what text, name text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF name IS NULL THEN
    PERFORM dataflow._raise('22004', what || ' name must not be NULL', NULL,
                            'Pass the new ' || what || '''s name as the first argument (name).');
  END IF;
  IF name OPERATOR(pg_catalog.!~) '^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,62}$' THEN
    PERFORM dataflow._raise('22023', pg_catalog.format('invalid %s name "%s"', what, pg_catalog.left(name, 64)), NULL,
            'Names are 1-63 characters: letters, digits, "_", ".", ":" and "-", not starting with a punctuation mark.');
  END IF;
  RETURN name;
END $$;
REVOKE EXECUTE ON FUNCTION dataflow._check_name(text, text) FROM PUBLIC;
DROP FUNCTION dataflow._own_work_table(text, boolean);
CREATE FUNCTION dataflow._own_work_table(p_name text, p_quiet boolean DEFAULT false) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  me oid := (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) current_user);
  tmp oid := pg_catalog.pg_my_temp_schema();
  owner_ok boolean; kind "char"; taken text;
BEGIN
  IF tmp OPERATOR(pg_catalog.=) 0 THEN
    RETURN false;   -- no temporary schema yet: nothing can have been planted
  END IF;
  SELECT c.relowner OPERATOR(pg_catalog.=) me, c.relkind
    INTO owner_ok, kind
    FROM pg_catalog.pg_class c
   WHERE c.relnamespace OPERATOR(pg_catalog.=) tmp AND c.relname OPERATOR(pg_catalog.=) p_name;
  IF FOUND AND owner_ok AND kind OPERATOR(pg_catalog.=) 'r' THEN
    RETURN true;
  END IF;
  IF p_quiet THEN
    RETURN false;
  END IF;
  IF FOUND THEN
    taken := p_name;
  ELSIF EXISTS (SELECT FROM pg_catalog.pg_type t
                 WHERE t.typnamespace OPERATOR(pg_catalog.=) tmp AND t.typname OPERATOR(pg_catalog.=) p_name) THEN
    taken := p_name;
  ELSE
    RETURN false;
  END IF;
  PERFORM dataflow._raise('42501', pg_catalog.format('pg_temp.%s is not a work table of pg_dataflow', taken),
    'pg_dataflow keeps temporary work tables of that name; an object of that name made by another role is never used.',
    pg_catalog.format('DROP the temporary object pg_temp.%s, or use a new session.', taken));
  RETURN false;  -- not reached
END $$;
REVOKE EXECUTE ON FUNCTION dataflow._own_work_table(text, boolean) FROM PUBLIC;
DROP FUNCTION dataflow._read_committed();
CREATE FUNCTION dataflow._read_committed() RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF pg_catalog.current_setting('transaction_isolation') OPERATOR(pg_catalog.<>) 'read committed' THEN
    PERFORM dataflow._raise('0A000', 'pg_dataflow needs READ COMMITTED transactions; this one is '
                                     || pg_catalog.upper(pg_catalog.current_setting('transaction_isolation')),
      'It locks rows and then reads what they protect with a fresh snapshot, which a '
      'REPEATABLE READ or SERIALIZABLE transaction does not take.',
      'Call it in a READ COMMITTED transaction (the default): BEGIN ISOLATION LEVEL READ COMMITTED.');
  END IF;
END $$;
REVOKE EXECUTE ON FUNCTION dataflow._read_committed() FROM PUBLIC;
DROP FUNCTION dataflow._dataset_id(text);
CREATE FUNCTION dataflow._dataset_id(name text) RETURNS integer
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE v integer;
BEGIN
  IF name IS NULL THEN
    PERFORM dataflow._raise('22004', 'dataset must not be NULL', NULL,
                            'Pass a dataset name: SELECT dataset FROM dataflow.datasets lists them.');
  END IF;
  SELECT d.id INTO v FROM dataflow.dataset d WHERE d.name = _dataset_id.name;
  IF NOT FOUND THEN
    PERFORM dataflow._not_found('dataset', name, 'create it with dataflow.create_dataset(name, key_kind).');
  END IF;
  RETURN v;
END $$;
REVOKE EXECUTE ON FUNCTION dataflow._dataset_id(text) FROM PUBLIC;
DROP FUNCTION dataflow._job(text);
CREATE FUNCTION dataflow._job(name text) RETURNS dataflow.job
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE j dataflow.job;
BEGIN
  IF name IS NULL THEN
    PERFORM dataflow._raise('22004', 'job must not be NULL', NULL,
                            'Pass a job name: SELECT job FROM dataflow.jobs lists them.');
  END IF;
  SELECT * INTO j FROM dataflow.job WHERE job.name = _job.name;
  IF NOT FOUND THEN
    PERFORM dataflow._not_found('job', name, 'create it with dataflow.create_job(name, output => dataset).');
  END IF;
  RETURN j;
END $$;
REVOKE EXECUTE ON FUNCTION dataflow._job(text) FROM PUBLIC;
DROP FUNCTION dataflow.create_dataset(text, text, text, boolean, interval, interval, interval, jsonb);
CREATE FUNCTION dataflow.create_dataset(
  name text, key_kind text,
  location text DEFAULT NULL,
  requires_validation boolean DEFAULT false,
  cadence interval DEFAULT NULL,
  lateness interval DEFAULT NULL,
  retention interval DEFAULT NULL,
  metadata jsonb DEFAULT '{}')
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE v integer;
BEGIN
  PERFORM dataflow._check_name('dataset', name);
  IF key_kind IS NULL THEN
    RAISE EXCEPTION 'key_kind must not be NULL' USING ERRCODE = '22004', HINT = 'Key kinds are date, hour, int and text.';
  END IF;
  IF key_kind NOT IN ('date', 'hour', 'int', 'text') THEN
    RAISE EXCEPTION 'invalid key kind "%"', coalesce(left(key_kind, 64), 'NULL')
      USING ERRCODE = CASE WHEN key_kind IS NULL THEN '22004' ELSE '22023' END,
            HINT = 'Key kinds are date, hour, int and text.';
  END IF;
  IF location IS NOT NULL AND (location = '' OR
       regexp_replace(location, '\{(dataset|key|version)\}', '', 'g') ~ '[{}]') THEN
    RAISE EXCEPTION 'invalid location template "%"', left(location, 200)
      USING ERRCODE = '22023',
            HINT = 'Templates may use {dataset}, {key} and {version}, e.g. s3://lake/{dataset}/{key}/v{version}/';
  END IF;
  IF requires_validation IS NULL THEN
    RAISE EXCEPTION 'requires_validation must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF cadence IS NOT NULL THEN
    IF key_kind NOT IN ('date', 'hour') THEN
      RAISE EXCEPTION 'a cadence needs a date or hour dataset, not %', key_kind USING ERRCODE = '22023';
    ELSIF cadence < (CASE key_kind WHEN 'date' THEN interval '1 day' ELSE interval '1 hour' END) THEN
      RAISE EXCEPTION 'cadence % is shorter than one % key', cadence, key_kind USING ERRCODE = '22023';
    END IF;
  END IF;
  IF lateness < interval '0' OR retention <= interval '0' THEN
    RAISE EXCEPTION 'lateness must be >= 0 and retention > 0' USING ERRCODE = '22023';
  END IF;
  IF metadata IS NULL OR jsonb_typeof(metadata) <> 'object' THEN
    RAISE EXCEPTION 'metadata must %', CASE WHEN metadata IS NULL THEN 'not be NULL' ELSE 'be a JSON object' END
      USING ERRCODE = CASE WHEN metadata IS NULL THEN '22004' ELSE '22023' END, HINT = 'Pass ''{}'' for none.';
  END IF;
  IF EXISTS (SELECT FROM dataflow.dataset d WHERE d.name = create_dataset.name) THEN
    RAISE EXCEPTION 'dataset "%" already exists', name USING ERRCODE = '42710';
  END IF;
  INSERT INTO dataflow.dataset (name, key_kind, location, requires_validation, cadence, lateness,
                                retention, metadata)
  VALUES (name, key_kind, location, requires_validation, cadence, lateness, retention, metadata)
  RETURNING id INTO v;
  RETURN v;
END $$;
COMMENT ON FUNCTION dataflow.create_dataset(text, text, text, boolean, interval, interval, interval, jsonb) IS
  'Define a dataset: name, key kind (date, hour, int, text), location template, '
  'requires_validation, cadence, lateness, retention, metadata; returns its id';
ALTER FUNCTION dataflow.create_dataset(text, text, text, boolean, interval, interval, interval, jsonb) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.create_dataset(text, text, text, boolean, interval, interval, interval, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.create_dataset(text, text, text, boolean, interval, interval, interval, jsonb) TO dataflow_admin;
DROP FUNCTION dataflow.create_pool(text, integer);
CREATE FUNCTION dataflow.create_pool(name text, slots integer) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE v integer;
BEGIN
  PERFORM dataflow._check_name('pool', name);
  IF slots IS NULL OR slots < 0 THEN
    RAISE EXCEPTION 'slots must %', CASE WHEN slots IS NULL THEN 'not be NULL' ELSE 'be a number >= 0, not ' || slots END
      USING ERRCODE = CASE WHEN slots IS NULL THEN '22004' ELSE '22023' END,
            HINT = 'slots is how many runs of the pool''s jobs may run at once (0: none).';
  END IF;
  IF EXISTS (SELECT FROM dataflow.pool p WHERE p.name = create_pool.name) THEN
    RAISE EXCEPTION 'pool "%" already exists', name USING ERRCODE = '42710';
  END IF;
  INSERT INTO dataflow.pool (name, slots) VALUES (name, slots) RETURNING id INTO v;
  RETURN v;
END $$;
COMMENT ON FUNCTION dataflow.create_pool(text, integer) IS
  'Define a pool of concurrency slots shared by jobs; change it later with UPDATE dataflow.pool SET slots = n';
ALTER FUNCTION dataflow.create_pool(text, integer) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.create_pool(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.create_pool(text, integer) TO dataflow_admin;
DROP FUNCTION dataflow.drop_pool(text);
CREATE FUNCTION dataflow.drop_pool(name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE p integer; j text;
BEGIN
  IF name IS NULL THEN
    PERFORM dataflow._raise('22004', 'pool must not be NULL', NULL, 'Pass the name of the pool to drop.');
  END IF;
  SELECT id INTO p FROM dataflow.pool WHERE pool.name = drop_pool.name;
  IF NOT FOUND THEN
    PERFORM dataflow._not_found('pool', name, NULL);
  END IF;
  SELECT string_agg(jb.name, ', ') INTO j FROM dataflow.job jb WHERE jb.pool_id = p;
  IF j IS NOT NULL THEN
    RAISE EXCEPTION 'pool "%" is used by job(s) %', name, j USING ERRCODE = '2BP01';
  END IF;
  DELETE FROM dataflow.pool WHERE id = p;
END $$;
COMMENT ON FUNCTION dataflow.drop_pool(text) IS 'Drop a pool no job uses';
ALTER FUNCTION dataflow.drop_pool(text) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.drop_pool(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.drop_pool(text) TO dataflow_admin;
DROP FUNCTION dataflow.create_connection(text, text, text, text, text, text, integer, interval, interval);
CREATE FUNCTION dataflow.create_connection(
  name text, kind text, base_url text,
  auth text DEFAULT 'none', username text DEFAULT NULL, secret text DEFAULT NULL,
  api_version integer DEFAULT NULL,
  connect_timeout interval DEFAULT '5 seconds', timeout interval DEFAULT '30 seconds')
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE v integer;
BEGIN
  PERFORM dataflow._check_name('connection', name);
  IF kind IS NULL THEN
    RAISE EXCEPTION 'kind must not be NULL' USING ERRCODE = '22004', HINT = 'Connection kinds are http and airflow.';
  END IF;
  IF base_url IS NULL THEN
    RAISE EXCEPTION 'base_url must not be NULL' USING ERRCODE = '22004', HINT = 'An http:// or https:// URL without credentials in it.';
  END IF;
  IF auth IS NULL THEN
    RAISE EXCEPTION 'auth must not be NULL' USING ERRCODE = '22004', HINT = 'auth is none, basic or bearer.';
  END IF;
  IF connect_timeout IS NULL OR timeout IS NULL THEN
    RAISE EXCEPTION '% must not be NULL', CASE WHEN connect_timeout IS NULL THEN 'connect_timeout' ELSE 'timeout' END
      USING ERRCODE = '22004', HINT = 'Leave it out for the default (connect_timeout 5 seconds, timeout 30 seconds).';
  END IF;
  IF kind NOT IN ('http', 'airflow') THEN
    RAISE EXCEPTION 'invalid connection kind "%"', coalesce(kind, 'NULL')
      USING ERRCODE = CASE WHEN kind IS NULL THEN '22004' ELSE '22023' END, HINT = 'Connection kinds are http and airflow.';
  END IF;
  IF base_url IS NULL OR base_url !~ '^https?://[^\s/?#@]+(/[^\s]*)?$' OR base_url ~ '[\r\n]' THEN
    RAISE EXCEPTION 'invalid base_url "%"', coalesce(left(base_url, 200), 'NULL')
      USING ERRCODE = CASE WHEN base_url IS NULL THEN '22004' ELSE '22023' END, HINT = 'An http:// or https:// URL without credentials in it.';
  END IF;
  IF auth IS NULL OR auth NOT IN ('none', 'basic', 'bearer') THEN
    RAISE EXCEPTION 'invalid auth "%"', coalesce(auth, 'NULL')
      USING ERRCODE = CASE WHEN auth IS NULL THEN '22004' ELSE '22023' END, HINT = 'auth is none, basic or bearer.';
  END IF;
  IF auth = 'basic' AND (username IS NULL OR secret IS NULL) THEN
    RAISE EXCEPTION 'basic auth needs a username and a secret' USING ERRCODE = '22023';
  END IF;
  IF auth = 'bearer' AND secret IS NULL THEN
    RAISE EXCEPTION 'bearer auth needs a secret' USING ERRCODE = '22023';
  END IF;
  IF username ~ '[\r\n:]' OR secret ~ '[\r\n]' THEN
    RAISE EXCEPTION 'username and secret must not contain line breaks (or ":" in a username)'
      USING ERRCODE = '22023';
  END IF;
  IF kind = 'airflow' THEN
    api_version := coalesce(api_version, 1);
  END IF;
  IF api_version IS NOT NULL AND api_version NOT IN (1, 2) THEN
    RAISE EXCEPTION 'api_version must be 1 or 2' USING ERRCODE = '22023';
  END IF;
  IF connect_timeout IS NULL OR timeout IS NULL OR connect_timeout <= interval '0' OR timeout <= interval '0' THEN
    RAISE EXCEPTION 'timeouts must be positive'
      USING ERRCODE = CASE WHEN connect_timeout IS NULL OR timeout IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  -- The worker counts them in milliseconds (an integer); these bounds also hold in the table.
  IF connect_timeout > interval '1 hour' THEN
    RAISE EXCEPTION 'connect_timeout % is too long', connect_timeout USING ERRCODE = '22023',
      HINT = 'At most 1 hour: a connection that takes longer to open is not coming.';
  END IF;
  IF timeout > interval '24 hours' THEN
    RAISE EXCEPTION 'timeout % is too long', timeout USING ERRCODE = '22023',
      HINT = 'At most 24 hours per request; an engine that works longer should answer 202 and report back '
             'with dataflow.heartbeat() and dataflow.complete().';
  END IF;
  IF EXISTS (SELECT FROM dataflow.connection c WHERE c.name = create_connection.name) THEN
    RAISE EXCEPTION 'connection "%" already exists', name USING ERRCODE = '42710';
  END IF;
  INSERT INTO dataflow.connection (name, kind, base_url, auth, username, secret, api_version,
                                   connect_timeout, timeout)
  VALUES (name, kind, base_url, auth, username, secret, api_version, connect_timeout, timeout)
  RETURNING id INTO v;
  RETURN v;
END $$;
COMMENT ON FUNCTION dataflow.create_connection(text, text, text, text, text, text, integer, interval, interval) IS
  'Define an engine endpoint (http or airflow) shared by jobs; the secret is readable by the admin role only';
ALTER FUNCTION dataflow.create_connection(text, text, text, text, text, text, integer, interval, interval) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.create_connection(text, text, text, text, text, text, integer, interval, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.create_connection(text, text, text, text, text, text, integer, interval, interval) TO dataflow_admin;
DROP FUNCTION dataflow.drop_connection(text);
CREATE FUNCTION dataflow.drop_connection(name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE c integer; j text;
BEGIN
  IF name IS NULL THEN
    PERFORM dataflow._raise('22004', 'connection must not be NULL', NULL, 'Pass the name of the connection to drop.');
  END IF;
  SELECT id INTO c FROM dataflow.connection WHERE connection.name = drop_connection.name;
  IF NOT FOUND THEN
    PERFORM dataflow._not_found('connection', name, NULL);
  END IF;
  SELECT string_agg(jb.name, ', ') INTO j FROM dataflow.job jb WHERE jb.connection_id = c;
  IF j IS NOT NULL THEN
    RAISE EXCEPTION 'connection "%" is used by job(s) %', name, j USING ERRCODE = '2BP01';
  END IF;
  DELETE FROM dataflow.connection WHERE id = c;
END $$;
COMMENT ON FUNCTION dataflow.drop_connection(text) IS 'Drop a connection no job uses';
ALTER FUNCTION dataflow.drop_connection(text) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.drop_connection(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.drop_connection(text) TO dataflow_admin;
DROP FUNCTION dataflow.drop_subscription(text);
DROP FUNCTION dataflow.unsubscribe(text);
CREATE FUNCTION dataflow.unsubscribe(name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF name IS NULL THEN
    PERFORM dataflow._raise('22004', 'name must not be NULL', NULL, 'Pass the name of the subscription to drop.');
  END IF;
  DELETE FROM dataflow.subscription s WHERE s.name = unsubscribe.name;
  IF NOT FOUND THEN
    PERFORM dataflow._not_found('subscription', name, 'SELECT name FROM dataflow.subscription lists them.');
  END IF;
END $$;
COMMENT ON FUNCTION dataflow.unsubscribe(text) IS
  'Drop a webhook subscription and its pending and past deliveries';
REVOKE EXECUTE ON FUNCTION dataflow.unsubscribe(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.unsubscribe(text) TO dataflow_admin;
CREATE FUNCTION dataflow.drop_subscription(name text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  SELECT dataflow.unsubscribe(name);
END;
COMMENT ON FUNCTION dataflow.drop_subscription(text) IS 'Same as dataflow.unsubscribe(name)';
REVOKE EXECUTE ON FUNCTION dataflow.drop_subscription(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.drop_subscription(text) TO dataflow_admin;
DROP FUNCTION dataflow.enable_subscription(text);
CREATE FUNCTION dataflow.enable_subscription(name text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE sid integer; n integer;
BEGIN
  IF name IS NULL THEN
    PERFORM dataflow._raise('22004', 'name must not be NULL', NULL, 'Pass the name of the subscription to enable.');
  END IF;
  UPDATE dataflow.subscription s SET enabled = true, disabled_at = NULL, disabled_reason = NULL
   WHERE s.name = enable_subscription.name
  RETURNING s.id INTO sid;
  IF NOT FOUND THEN
    PERFORM dataflow._not_found('subscription', name,
      'SELECT name, enabled, disabled_reason FROM dataflow.subscription lists them.');
  END IF;
  UPDATE dataflow.delivery d SET next_attempt_at = now()
   WHERE d.subscription_id = sid AND d.status = 'pending' AND d.next_attempt_at > now();
  SELECT count(*) INTO n FROM dataflow.delivery d WHERE d.subscription_id = sid AND d.status = 'pending';
  IF n > 0 THEN
    PERFORM dataflow._wake();
  END IF;
  RETURN n;
END $$;
COMMENT ON FUNCTION dataflow.enable_subscription(text) IS
  'Enable a webhook subscription again (after its receiver answered 410 Gone, or an admin disabled it): '
  'its pending deliveries are sent at once; returns how many are pending';
REVOKE EXECUTE ON FUNCTION dataflow.enable_subscription(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.enable_subscription(text) TO dataflow_admin;
DROP FUNCTION dataflow.redeliver(bigint);
CREATE FUNCTION dataflow.redeliver(delivery bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF delivery IS NULL THEN
    PERFORM dataflow._raise('22004', 'delivery must not be NULL', NULL,
                            'Pass a delivery id: SELECT id FROM dataflow.deliveries lists them.');
  END IF;
  UPDATE dataflow.delivery d
     SET status = 'pending', attempts = 0, next_attempt_at = now(), finished_at = NULL
   WHERE d.id = redeliver.delivery;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'delivery % does not exist', delivery USING ERRCODE = '42704';
  END IF;
  PERFORM dataflow._wake();
END $$;
COMMENT ON FUNCTION dataflow.redeliver(bigint) IS
  'Send one delivery again (delivered or failed), with a fresh retry schedule';
REVOKE EXECUTE ON FUNCTION dataflow.redeliver(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.redeliver(bigint) TO dataflow_admin;
GRANT EXECUTE ON FUNCTION dataflow.redeliver(bigint) TO dataflow_operator;
DROP FUNCTION dataflow.redeliver(text, timestamptz, boolean);
CREATE FUNCTION dataflow.redeliver(subscription text, since timestamptz, only_failed boolean DEFAULT true)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE sid integer; n integer;
BEGIN
  IF subscription IS NULL OR since IS NULL OR only_failed IS NULL THEN
    PERFORM dataflow._raise('22004', CASE WHEN subscription IS NULL THEN 'subscription' WHEN since IS NULL THEN 'since'
                                          ELSE 'only_failed' END || ' must not be NULL', NULL,
      'redeliver(subscription, since, only_failed) sends again the subscription''s deliveries created since then.');
  END IF;
  SELECT s.id INTO sid FROM dataflow.subscription s WHERE s.name = redeliver.subscription;
  IF NOT FOUND THEN
    PERFORM dataflow._not_found('subscription', subscription, 'SELECT name FROM dataflow.subscription lists them.');
  END IF;
  UPDATE dataflow.delivery d
     SET status = 'pending', attempts = 0, next_attempt_at = now(), finished_at = NULL
   WHERE d.subscription_id = sid AND d.created_at >= since AND d.status <> 'pending'
     AND (NOT only_failed OR d.status = 'failed');
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n > 0 THEN
    PERFORM dataflow._wake();
  END IF;
  RETURN n;
END $$;
COMMENT ON FUNCTION dataflow.redeliver(text, timestamptz, boolean) IS
  'Send again the deliveries of a subscription created since a time (by default only those that gave up); '
  'returns how many were queued';
REVOKE EXECUTE ON FUNCTION dataflow.redeliver(text, timestamptz, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.redeliver(text, timestamptz, boolean) TO dataflow_admin;
GRANT EXECUTE ON FUNCTION dataflow.redeliver(text, timestamptz, boolean) TO dataflow_operator;

-- ==== 90_security: issue 15 item 1 (callback listener): fail with retry_after over HTTP.
-- The listener runs as a dataflow_worker role; _fail (fail with a delay, as the worker
-- records a Retry-After) becomes a definer function that role may call.
ALTER FUNCTION dataflow._fail(uuid, text, boolean, double precision) SECURITY DEFINER;
GRANT EXECUTE ON FUNCTION dataflow._fail(uuid, text, boolean, double precision) TO dataflow_worker;

-- 40_work, 45_lease (issue 19 item 7, messages): _chunk raises through dataflow._raise (no
-- CONTEXT lines under validate, skip, cancel); skip, resubmit and lease name the NULL
-- argument.
DROP FUNCTION dataflow._chunk(text, text, boolean);
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
REVOKE EXECUTE ON FUNCTION dataflow._chunk(text, text, boolean) FROM PUBLIC;
DROP FUNCTION dataflow.skip(text, text, text);
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
ALTER FUNCTION dataflow.skip(text, text, text) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.skip(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.skip(text, text, text) TO dataflow_operator;
DROP FUNCTION dataflow.resubmit(text, text, text, boolean, boolean);
CREATE FUNCTION dataflow.resubmit(dataset text, from_key text, to_key text DEFAULT NULL,
                                  cascade boolean DEFAULT true, dry_run boolean DEFAULT false)
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
      FROM dataflow._resubmit(roots, cascade, dry_run, dataflow._actor(), 'resubmit') r
     ORDER BY r.depth, r.dataset, r.ord, r.key;
END $$;
COMMENT ON FUNCTION dataflow.resubmit(text, text, text, boolean, boolean) IS
  'Restart a chunk or a key range: new version, attempts reset, queued again; with cascade (default) '
  'everything downstream waits for it; dry_run lists what would change without changing anything';
ALTER FUNCTION dataflow.resubmit(text, text, text, boolean, boolean) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.resubmit(text, text, text, boolean, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.resubmit(text, text, text, boolean, boolean) TO dataflow_operator;
DROP FUNCTION dataflow.lease(text, text, integer, interval);
CREATE FUNCTION dataflow.lease(job text, worker text, max_chunks integer DEFAULT 1,
                               lease_for interval DEFAULT NULL)
RETURNS SETOF dataflow.task
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off
-- index probes whatever the statistics said when this session made its plans (docs/internals.md, "Planner settings")
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_mergejoin = off SET enable_hashjoin = off
-- every statement below has a cheap index-probe generic plan; custom plans cost
-- ~1 ms of planning per statement per call (measured), more than executing them
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  ids bigint[];
  run_ids bigint[];
  has_latest boolean;
  j dataflow.job := dataflow._job(job);
  n integer := max_chunks;
  lf interval;
  ds dataflow.dataset;
  slots integer;
  incremental boolean;
  batch_from text[];
  latest bigint[];
  li record;
  lid bigint;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    PERFORM dataflow._read_committed();   -- raises (00_schema.sql)
  END IF;
  IF worker IS NULL OR max_chunks IS NULL THEN
    RAISE EXCEPTION '% must not be NULL', CASE WHEN worker IS NULL THEN 'worker' ELSE 'max_chunks' END
      USING ERRCODE = '22004', HINT = 'lease(job, worker, max_chunks): worker names who takes the chunks, max_chunks how many (1-1000).';
  END IF;
  IF worker = '' OR length(worker) > 200 OR worker ~ '[[:cntrl:]]' THEN
    RAISE EXCEPTION 'worker must be a printable name of 1-200 characters' USING ERRCODE = '22023';
  END IF;
  IF max_chunks < 1 OR max_chunks > 1000 THEN
    RAISE EXCEPTION 'max_chunks must be between 1 and 1000, not %', max_chunks USING ERRCODE = '22023';
  END IF;
  lf := coalesce(lease_for, j.lease_for);
  IF lf <= interval '0' THEN
    RAISE EXCEPTION 'lease_for must be positive' USING ERRCODE = '22023';
  END IF;
  IF j.paused THEN
    RETURN;
  END IF;
  -- The output dataset, and the shape of the inputs (any incremental, any latest) as
  -- index probes: no aggregate to set up on every call.
  SELECT * INTO ds FROM dataflow.dataset WHERE id = j.output_id;
  SELECT EXISTS (SELECT FROM dataflow.job_input ji WHERE ji.job_id = j.id AND ji.mapping = 'incremental'),
         EXISTS (SELECT FROM dataflow.job_input ji WHERE ji.job_id = j.id AND ji.mapping = 'latest')
    INTO incremental, has_latest;
  IF incremental THEN
    SELECT array_agg(ids.name) INTO batch_from
      FROM dataflow.job_input ji JOIN dataflow.dataset ids ON ids.id = ji.dataset_id
     WHERE ji.job_id = j.id AND ji.mapping = 'incremental';
    PERFORM dataflow._cut_batch(j.id);
  END IF;
  -- Limits are counted from live leases. The advisory lock serializes the
  -- count-then-lease of limited jobs and pools; unlimited jobs take none.
  IF j.max_concurrency IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(7401, j.id);
    n := least(n, j.max_concurrency -
                  (SELECT count(*) FROM dataflow.run r WHERE r.job_id = j.id AND r.status = 'running')::integer);
  END IF;
  IF j.pool_id IS NOT NULL AND n > 0 THEN
    PERFORM pg_advisory_xact_lock(7402, j.pool_id);
    SELECT p.slots INTO slots FROM dataflow.pool p WHERE p.id = j.pool_id;
    n := least(n, slots -
                  (SELECT count(*) FROM dataflow.run r WHERE r.pool_id = j.pool_id AND r.status = 'running')::integer);
  END IF;
  IF n <= 0 THEN
    RETURN;
  END IF;
  -- Ready: the newest available chunk of each `latest` input, share-locked until commit
  -- so that a resubmit or invalidation of it cannot commit between this choice and the
  -- lineage below. Never waited for (NOWAIT): this call already holds the limit locks
  -- (7401, 7402, and 7406 from the batch cut), which others take after a chunk lock, and
  -- an operator's open transaction on the input must not stall every job of the pool.
  -- When that chunk is busy, or an input has no available chunk (its only one was
  -- resubmitted or invalidated after the consumers were queued), the job is held back
  -- for this call.
  IF has_latest THEN
    FOR li IN SELECT jl.dataset_id, jl.need FROM dataflow.job_input jl JOIN dataflow.dataset ld ON ld.id = jl.dataset_id
               WHERE jl.job_id = j.id AND jl.mapping = 'latest' ORDER BY ld.rank, jl.dataset_id LOOP
      lid := NULL;
      BEGIN
        SELECT x.id INTO lid FROM dataflow.chunk x
         WHERE x.dataset_id = li.dataset_id AND dataflow._level(x.status) >= li.need
         ORDER BY x.ord DESC NULLS LAST, x.available_at DESC
         LIMIT 1
           FOR SHARE NOWAIT;
      EXCEPTION WHEN lock_not_available THEN
        RETURN;
      END;
      IF lid IS NULL THEN
        RETURN;
      END IF;
      latest := latest || lid;
    END LOOP;
  END IF;

  -- Claim, then one small statement per table: each keeps a cheap generic plan
  -- (the single 6-CTE statement was re-planned on every call).
  ids := dataflow._claim(j.output_id, n);
  IF ids IS NULL THEN
    RETURN;
  END IF;
  -- run ids follow the claim (queue) order, whatever the rows' physical order
  WITH u AS (
    UPDATE dataflow.chunk c
       SET status = 'running', attempts = c.attempts + 1, run_id = r.run_id, updated_at = now()
      FROM (SELECT u.id, nextval('dataflow.run_id_seq') AS run_id
              FROM unnest(ids) WITH ORDINALITY AS u(id, o) ORDER BY u.o) r
     WHERE c.id = r.id
    RETURNING c.run_id)
  SELECT array_agg(u.run_id) INTO run_ids FROM u;
  INSERT INTO dataflow.run (id, job_id, pool_id, chunk_id, version, attempt, worker, status, deadline,
                            output_location)
  SELECT c.run_id, j.id, j.pool_id, c.id, c.version, c.attempts, worker, 'running', clock_timestamp() + lf,
         dataflow._location(ds.location, ds.name, c.key, c.version)
    FROM dataflow.chunk c WHERE c.id = ANY (ids);
  INSERT INTO dataflow.run_input (run_id, chunk_id, version)
  SELECT c.run_id, dp.input, ic.version
    FROM dataflow.chunk c JOIN dataflow.dep dp ON dp.consumer = c.id JOIN dataflow.chunk ic ON ic.id = dp.input
   WHERE c.id = ANY (ids);
  IF has_latest THEN
    INSERT INTO dataflow.run_input (run_id, chunk_id, version)
    SELECT c.run_id, lc.id, lc.version
      FROM dataflow.chunk c CROSS JOIN dataflow.chunk lc
     WHERE c.id = ANY (ids) AND lc.id = ANY (latest);
  END IF;
  INSERT INTO dataflow.event (dataset_id, chunk_id, key, run_id, version, from_status, to_status, actor)
  SELECT j.output_id, c.id, c.key, c.run_id, c.version, 'queued', 'running', worker
    FROM dataflow.chunk c WHERE c.id = ANY (ids);
  RETURN QUERY
  SELECT r.id, r.token, j.name, ds.name, c.key, c.version, c.attempts, r.output_location,
         coalesce((SELECT jsonb_agg(jsonb_build_object('dataset', ids2.name, 'key', ic.key, 'version', ri.version,
                                                       'location', ic.location, 'row_count', ic.row_count,
                                                       'checksum', ic.checksum)
                                    ORDER BY ids2.name, ic.ord, ic.key)
                     FROM dataflow.run_input ri JOIN dataflow.chunk ic ON ic.id = ri.chunk_id
                     JOIN dataflow.dataset ids2 ON ids2.id = ic.dataset_id
                    WHERE ri.run_id = r.id), '[]'::jsonb),
         CASE WHEN incremental THEN j.params || dataflow._batch_params(r.id, c.key, batch_from)
              ELSE j.params END,
         r.deadline
    FROM dataflow.chunk c JOIN dataflow.run r ON r.id = c.run_id
   -- both sides restricted by key arrays, so any join order probes an index: the
   -- generic plan made while run was empty must not walk all of run_pkey
   WHERE c.id = ANY (ids) AND r.id = ANY (run_ids)
   ORDER BY r.id;
END $$;
COMMENT ON FUNCTION dataflow.lease(text, text, integer, interval) IS
  'Lease up to max_chunks runnable chunks of a job for a worker: returns one task per chunk with its '
  'token, inputs (exact versions and locations), output location and deadline; empty when nothing is runnable';
ALTER FUNCTION dataflow.lease(text, text, integer, interval) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.lease(text, text, integer, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.lease(text, text, integer, interval) TO dataflow_worker;

-- 22_jobs (issue 19 item 7, messages): create_job and alter_job: an unknown pool or connection
-- suggests near names (dataflow._not_found, no CONTEXT line); create_job names a NULL output,
-- dispatch, params, max_attempts, backoff_min/max or lease_for.
DROP FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint);
CREATE FUNCTION dataflow.create_job(
  name text,
  output text,
  dispatch text DEFAULT 'pull',
  connection text DEFAULT NULL,
  target text DEFAULT NULL,
  endpoint text DEFAULT NULL,
  params jsonb DEFAULT '{}',
  pool text DEFAULT NULL,
  max_concurrency integer DEFAULT NULL,
  max_attempts integer DEFAULT 3,
  backoff_min interval DEFAULT '10 seconds',
  backoff_max interval DEFAULT '10 minutes',
  lease_for interval DEFAULT '5 minutes',
  priority integer DEFAULT 0,
  batch_max_rows bigint DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d integer; c dataflow.connection; p integer; v integer; other text;
BEGIN
  PERFORM dataflow._check_name('job', name);
  IF output IS NULL THEN
    PERFORM dataflow._raise('22004', 'output must not be NULL', NULL,
                            'Pass the dataset the job produces: output => dataset.');
  END IF;
  d := dataflow._dataset_id(output);
  IF dispatch IS NULL THEN
    RAISE EXCEPTION 'dispatch must not be NULL' USING ERRCODE = '22004',
      HINT = 'dispatch is pull (workers call lease), http or airflow.';
  END IF;
  IF dispatch NOT IN ('pull', 'http', 'airflow') THEN
    RAISE EXCEPTION 'invalid dispatch "%"', coalesce(dispatch, 'NULL')
      USING ERRCODE = CASE WHEN dispatch IS NULL THEN '22004' ELSE '22023' END, HINT = 'dispatch is pull (workers call lease), http or airflow.';
  END IF;
  IF connection IS NOT NULL THEN
    SELECT * INTO c FROM dataflow.connection cn WHERE cn.name = create_job.connection;
    IF NOT FOUND THEN
      PERFORM dataflow._not_found('connection', connection,
        'create it with dataflow.create_connection(name, kind, base_url).');
    END IF;
  END IF;
  IF dispatch = 'pull' AND (connection IS NOT NULL OR endpoint IS NOT NULL OR target IS NOT NULL) THEN
    RAISE EXCEPTION 'a pull job takes no connection, target or endpoint' USING ERRCODE = '22023';
  ELSIF dispatch = 'http' THEN
    IF (endpoint IS NULL) = (connection IS NULL) THEN
      RAISE EXCEPTION 'an http job needs either endpoint or connection (with target), not both'
        USING ERRCODE = '22023';
    END IF;
    IF endpoint IS NOT NULL AND (endpoint !~ '^https?://[^\s/?#@]+(/[^\s]*)?$' OR endpoint ~ '[\r\n]') THEN
      RAISE EXCEPTION 'invalid endpoint "%"', left(endpoint, 200)
        USING ERRCODE = '22023', HINT = 'An http:// or https:// URL without credentials in it.';
    END IF;
    IF connection IS NOT NULL AND c.kind <> 'http' THEN
      RAISE EXCEPTION 'connection "%" is of kind %, not http', connection, c.kind USING ERRCODE = '22023';
    END IF;
  ELSIF dispatch = 'airflow' THEN
    IF connection IS NULL OR c.kind <> 'airflow' OR target IS NULL OR endpoint IS NOT NULL THEN
      RAISE EXCEPTION 'an airflow job needs an airflow connection and a target (the DAG id), and no endpoint'
        USING ERRCODE = '22023';
    END IF;
  END IF;
  IF target IS NOT NULL AND target !~ '^[A-Za-z0-9_./-]{1,250}$' THEN
    RAISE EXCEPTION 'invalid target "%"', left(target, 64)
      USING ERRCODE = '22023', HINT = 'A DAG id or a URL path: letters, digits, "_", ".", "/" and "-".';
  END IF;
  IF params IS NULL OR jsonb_typeof(params) <> 'object' THEN
    RAISE EXCEPTION 'params must %', CASE WHEN params IS NULL THEN 'not be NULL' ELSE 'be a JSON object' END
      USING ERRCODE = CASE WHEN params IS NULL THEN '22004' ELSE '22023' END, HINT = 'Pass ''{}'' for none.';
  END IF;
  IF pool IS NOT NULL THEN
    SELECT id INTO p FROM dataflow.pool pl WHERE pl.name = create_job.pool;
    IF NOT FOUND THEN
      PERFORM dataflow._not_found('pool', pool, 'create it with dataflow.create_pool(name, slots).');
    END IF;
  END IF;
  IF max_attempts IS NULL OR backoff_min IS NULL OR backoff_max IS NULL OR lease_for IS NULL THEN
    RAISE EXCEPTION '% must not be NULL', CASE WHEN max_attempts IS NULL THEN 'max_attempts'
      WHEN backoff_min IS NULL THEN 'backoff_min' WHEN backoff_max IS NULL THEN 'backoff_max' ELSE 'lease_for' END
      USING ERRCODE = '22004', HINT = 'Leave it out for the default.';
  END IF;
  IF max_concurrency < 0 OR max_attempts IS NULL OR max_attempts < 1 THEN
    RAISE EXCEPTION 'max_concurrency must be >= 0 (or NULL: unlimited) and max_attempts >= 1'
      USING ERRCODE = CASE WHEN max_attempts IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF backoff_min IS NULL OR backoff_max IS NULL OR backoff_min < interval '0' OR backoff_max < backoff_min THEN
    RAISE EXCEPTION 'backoff needs 0 <= backoff_min <= backoff_max'
      USING ERRCODE = CASE WHEN backoff_min IS NULL OR backoff_max IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF lease_for IS NULL OR lease_for <= interval '0' THEN
    RAISE EXCEPTION 'lease_for must be positive'
      USING ERRCODE = CASE WHEN lease_for IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF priority IS NULL THEN
    RAISE EXCEPTION 'priority must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF batch_max_rows <= 0 THEN
    RAISE EXCEPTION 'batch_max_rows must be positive (got %)', batch_max_rows
      USING ERRCODE = '22023', HINT = 'Give the most input rows one batch may take, or NULL for no cap.';
  END IF;
  IF EXISTS (SELECT FROM dataflow.job j WHERE j.name = create_job.name) THEN
    RAISE EXCEPTION 'job "%" already exists', name USING ERRCODE = '42710';
  END IF;
  SELECT j.name INTO other FROM dataflow.job j WHERE j.output_id = d;
  IF FOUND THEN
    RAISE EXCEPTION 'dataset "%" is already produced by job "%"', output, other
      USING ERRCODE = '42710', HINT = 'A dataset has at most one producing job.';
  END IF;
  IF EXISTS (SELECT FROM dataflow.chunk ch WHERE ch.dataset_id = d) THEN
    RAISE EXCEPTION 'dataset "%" already has chunks', output
      USING ERRCODE = '55000',
            HINT = 'Define the producing job before expecting or registering chunks of its output.';
  END IF;
  INSERT INTO dataflow.job (name, output_id, dispatch, connection_id, target, endpoint, params, pool_id,
                            max_concurrency, max_attempts, backoff_min, backoff_max, lease_for, priority,
                            batch_max_rows)
  VALUES (name, d, dispatch, c.id, target, endpoint, params, p,
          max_concurrency, max_attempts, backoff_min, backoff_max, lease_for, priority, batch_max_rows)
  RETURNING id INTO v;
  RETURN v;
END $$;
COMMENT ON FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer,
                                        interval, interval, interval, integer, bigint) IS
  'Define the job producing a dataset: dispatch (pull, http, airflow), connection/target or endpoint, '
  'params, pool, max_concurrency, max_attempts, backoff_min/max, lease_for, priority, batch_max_rows '
  '(an incremental job''s cap on a batch''s input rows); returns its id';
ALTER FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint) TO dataflow_admin;
DROP FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb, bigint);
CREATE FUNCTION dataflow.alter_job(
  name text,
  pool text DEFAULT NULL,
  max_concurrency integer DEFAULT NULL,
  max_attempts integer DEFAULT NULL,
  backoff_min interval DEFAULT NULL,
  backoff_max interval DEFAULT NULL,
  lease_for interval DEFAULT NULL,
  priority integer DEFAULT NULL,
  params jsonb DEFAULT NULL,
  batch_max_rows bigint DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET IntervalStyle = 'postgres' AS $$
DECLARE
  j dataflow.job; p integer; pname text; new_pool integer; new_limit integer;
  new_min interval; new_max interval; changes jsonb := '{}'; shown jsonb; new_rows bigint;
BEGIN
  SELECT * INTO j FROM dataflow.job jb WHERE jb.id = (dataflow._job(alter_job.name)).id FOR UPDATE;
  IF (pool IS NOT NULL OR params IS NOT NULL)
     AND NOT pg_has_role(dataflow._caller(), 'dataflow_admin', 'MEMBER') THEN
    RAISE EXCEPTION 'changing the pool or the params of job "%" needs dataflow_admin', j.name
      USING ERRCODE = '42501',
            HINT = 'An operator may change max_concurrency, max_attempts, backoff_min, backoff_max, lease_for, priority and batch_max_rows.';
  END IF;
  new_pool := j.pool_id;
  IF pool = '' THEN
    new_pool := NULL;
  ELSIF pool IS NOT NULL THEN
    SELECT pl.id INTO p FROM dataflow.pool pl WHERE pl.name = alter_job.pool;
    IF NOT FOUND THEN
      PERFORM dataflow._not_found('pool', pool,
        'create it with dataflow.create_pool(name, slots), or pass pool => '''' to detach the job''s pool.');
    END IF;
    new_pool := p;
  END IF;
  IF max_concurrency < -1 THEN
    RAISE EXCEPTION 'max_concurrency must be >= 0, or -1 to remove the job''s own limit (got %)', max_concurrency
      USING ERRCODE = '22023';
  END IF;
  new_limit := CASE WHEN max_concurrency IS NULL THEN j.max_concurrency
                    WHEN max_concurrency = -1 THEN NULL ELSE max_concurrency END;
  IF max_attempts < 1 THEN
    RAISE EXCEPTION 'max_attempts must be >= 1 (got %)', max_attempts USING ERRCODE = '22023';
  END IF;
  new_min := coalesce(backoff_min, j.backoff_min);
  new_max := coalesce(backoff_max, j.backoff_max);
  IF new_min < interval '0' OR new_max < new_min THEN
    RAISE EXCEPTION 'backoff needs 0 <= backoff_min <= backoff_max (would be % and %)', new_min, new_max
      USING ERRCODE = '22023';
  END IF;
  IF lease_for <= interval '0' THEN
    RAISE EXCEPTION 'lease_for must be positive (got %)', lease_for USING ERRCODE = '22023';
  END IF;
  IF params IS NOT NULL AND jsonb_typeof(params) <> 'object' THEN
    RAISE EXCEPTION 'params must be a JSON object' USING ERRCODE = '22023';
  END IF;
  IF batch_max_rows = 0 OR batch_max_rows < -1 THEN
    RAISE EXCEPTION 'batch_max_rows must be positive, or -1 to remove the cap (got %)', batch_max_rows
      USING ERRCODE = '22023', HINT = 'Give the most input rows one batch may take; -1 removes the cap, NULL keeps it.';
  END IF;
  new_rows := CASE WHEN batch_max_rows IS NULL THEN j.batch_max_rows
                   WHEN batch_max_rows = -1 THEN NULL ELSE batch_max_rows END;

  IF new_pool IS DISTINCT FROM j.pool_id THEN
    changes := changes || jsonb_build_object('pool', jsonb_build_object(
      'from', (SELECT pl.name FROM dataflow.pool pl WHERE pl.id = j.pool_id),
      'to', (SELECT pl.name FROM dataflow.pool pl WHERE pl.id = new_pool)));
  END IF;
  IF new_limit IS DISTINCT FROM j.max_concurrency THEN
    changes := changes || jsonb_build_object('max_concurrency', jsonb_build_object('from', j.max_concurrency, 'to', new_limit));
  END IF;
  IF coalesce(max_attempts, j.max_attempts) <> j.max_attempts THEN
    changes := changes || jsonb_build_object('max_attempts', jsonb_build_object('from', j.max_attempts, 'to', max_attempts));
  END IF;
  IF new_min <> j.backoff_min THEN
    changes := changes || jsonb_build_object('backoff_min', jsonb_build_object('from', j.backoff_min, 'to', new_min));
  END IF;
  IF new_max <> j.backoff_max THEN
    changes := changes || jsonb_build_object('backoff_max', jsonb_build_object('from', j.backoff_max, 'to', new_max));
  END IF;
  IF coalesce(lease_for, j.lease_for) <> j.lease_for THEN
    changes := changes || jsonb_build_object('lease_for', jsonb_build_object('from', j.lease_for, 'to', lease_for));
  END IF;
  IF coalesce(priority, j.priority) <> j.priority THEN
    changes := changes || jsonb_build_object('priority', jsonb_build_object('from', j.priority, 'to', priority));
  END IF;
  IF params IS NOT NULL AND params <> j.params THEN
    changes := changes || jsonb_build_object('params', 'changed');
  END IF;
  IF new_rows IS DISTINCT FROM j.batch_max_rows THEN
    changes := changes || jsonb_build_object('batch_max_rows', jsonb_build_object('from', j.batch_max_rows, 'to', new_rows));
  END IF;
  IF changes = '{}' THEN
    RETURN changes;
  END IF;
  UPDATE dataflow.job jb
     SET pool_id = new_pool, max_concurrency = new_limit,
         max_attempts = coalesce(alter_job.max_attempts, jb.max_attempts),
         backoff_min = new_min, backoff_max = new_max,
         lease_for = coalesce(alter_job.lease_for, jb.lease_for),
         priority = coalesce(alter_job.priority, jb.priority),
         params = coalesce(alter_job.params, jb.params),
         batch_max_rows = new_rows
   WHERE jb.id = j.id;
  INSERT INTO dataflow.event (to_status, actor, detail)
  VALUES ('altered', dataflow._actor(), jsonb_build_object('job', j.name, 'changes', changes));
  IF j.dispatch <> 'pull' THEN
    PERFORM dataflow._wake();   -- a raised limit or a freer pool: the dispatcher claims at once
  END IF;
  RETURN changes;
END $$;
COMMENT ON FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb,
                                       bigint) IS
  'Change a job''s pool, max_concurrency (-1: no limit), max_attempts, backoff_min/max, lease_for, priority, '
  'params or batch_max_rows (-1: no cap) (NULL keeps a setting; pool => '''' detaches); effective from the '
  'next lease (the next batch); returns the changes';
ALTER FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb, bigint) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb, bigint) TO dataflow_operator;

-- 22_jobs (issue 19 item 7, messages): create_job and alter_job: an unknown pool or connection
-- suggests near names (dataflow._not_found, no CONTEXT line); create_job names a NULL output,
-- dispatch, params, max_attempts, backoff_min/max or lease_for.
DROP FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint);
CREATE FUNCTION dataflow.create_job(
  name text,
  output text,
  dispatch text DEFAULT 'pull',
  connection text DEFAULT NULL,
  target text DEFAULT NULL,
  endpoint text DEFAULT NULL,
  params jsonb DEFAULT '{}',
  pool text DEFAULT NULL,
  max_concurrency integer DEFAULT NULL,
  max_attempts integer DEFAULT 3,
  backoff_min interval DEFAULT '10 seconds',
  backoff_max interval DEFAULT '10 minutes',
  lease_for interval DEFAULT '5 minutes',
  priority integer DEFAULT 0,
  batch_max_rows bigint DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d integer; c dataflow.connection; p integer; v integer; other text;
BEGIN
  PERFORM dataflow._check_name('job', name);
  IF output IS NULL THEN
    PERFORM dataflow._raise('22004', 'output must not be NULL', NULL,
                            'Pass the dataset the job produces: output => dataset.');
  END IF;
  d := dataflow._dataset_id(output);
  IF dispatch IS NULL THEN
    RAISE EXCEPTION 'dispatch must not be NULL' USING ERRCODE = '22004',
      HINT = 'dispatch is pull (workers call lease), http or airflow.';
  END IF;
  IF dispatch NOT IN ('pull', 'http', 'airflow') THEN
    RAISE EXCEPTION 'invalid dispatch "%"', coalesce(dispatch, 'NULL')
      USING ERRCODE = CASE WHEN dispatch IS NULL THEN '22004' ELSE '22023' END, HINT = 'dispatch is pull (workers call lease), http or airflow.';
  END IF;
  IF connection IS NOT NULL THEN
    SELECT * INTO c FROM dataflow.connection cn WHERE cn.name = create_job.connection;
    IF NOT FOUND THEN
      PERFORM dataflow._not_found('connection', connection,
        'create it with dataflow.create_connection(name, kind, base_url).');
    END IF;
  END IF;
  IF dispatch = 'pull' AND (connection IS NOT NULL OR endpoint IS NOT NULL OR target IS NOT NULL) THEN
    RAISE EXCEPTION 'a pull job takes no connection, target or endpoint' USING ERRCODE = '22023';
  ELSIF dispatch = 'http' THEN
    IF (endpoint IS NULL) = (connection IS NULL) THEN
      RAISE EXCEPTION 'an http job needs either endpoint or connection (with target), not both'
        USING ERRCODE = '22023';
    END IF;
    IF endpoint IS NOT NULL AND (endpoint !~ '^https?://[^\s/?#@]+(/[^\s]*)?$' OR endpoint ~ '[\r\n]') THEN
      RAISE EXCEPTION 'invalid endpoint "%"', left(endpoint, 200)
        USING ERRCODE = '22023', HINT = 'An http:// or https:// URL without credentials in it.';
    END IF;
    IF connection IS NOT NULL AND c.kind <> 'http' THEN
      RAISE EXCEPTION 'connection "%" is of kind %, not http', connection, c.kind USING ERRCODE = '22023';
    END IF;
  ELSIF dispatch = 'airflow' THEN
    IF connection IS NULL OR c.kind <> 'airflow' OR target IS NULL OR endpoint IS NOT NULL THEN
      RAISE EXCEPTION 'an airflow job needs an airflow connection and a target (the DAG id), and no endpoint'
        USING ERRCODE = '22023';
    END IF;
  END IF;
  IF target IS NOT NULL AND target !~ '^[A-Za-z0-9_./-]{1,250}$' THEN
    RAISE EXCEPTION 'invalid target "%"', left(target, 64)
      USING ERRCODE = '22023', HINT = 'A DAG id or a URL path: letters, digits, "_", ".", "/" and "-".';
  END IF;
  IF params IS NULL OR jsonb_typeof(params) <> 'object' THEN
    RAISE EXCEPTION 'params must %', CASE WHEN params IS NULL THEN 'not be NULL' ELSE 'be a JSON object' END
      USING ERRCODE = CASE WHEN params IS NULL THEN '22004' ELSE '22023' END, HINT = 'Pass ''{}'' for none.';
  END IF;
  IF pool IS NOT NULL THEN
    SELECT id INTO p FROM dataflow.pool pl WHERE pl.name = create_job.pool;
    IF NOT FOUND THEN
      PERFORM dataflow._not_found('pool', pool, 'create it with dataflow.create_pool(name, slots).');
    END IF;
  END IF;
  IF max_attempts IS NULL OR backoff_min IS NULL OR backoff_max IS NULL OR lease_for IS NULL THEN
    RAISE EXCEPTION '% must not be NULL', CASE WHEN max_attempts IS NULL THEN 'max_attempts'
      WHEN backoff_min IS NULL THEN 'backoff_min' WHEN backoff_max IS NULL THEN 'backoff_max' ELSE 'lease_for' END
      USING ERRCODE = '22004', HINT = 'Leave it out for the default.';
  END IF;
  IF max_concurrency < 0 OR max_attempts IS NULL OR max_attempts < 1 THEN
    RAISE EXCEPTION 'max_concurrency must be >= 0 (or NULL: unlimited) and max_attempts >= 1'
      USING ERRCODE = CASE WHEN max_attempts IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF backoff_min IS NULL OR backoff_max IS NULL OR backoff_min < interval '0' OR backoff_max < backoff_min THEN
    RAISE EXCEPTION 'backoff needs 0 <= backoff_min <= backoff_max'
      USING ERRCODE = CASE WHEN backoff_min IS NULL OR backoff_max IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF lease_for IS NULL OR lease_for <= interval '0' THEN
    RAISE EXCEPTION 'lease_for must be positive'
      USING ERRCODE = CASE WHEN lease_for IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF priority IS NULL THEN
    RAISE EXCEPTION 'priority must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF batch_max_rows <= 0 THEN
    RAISE EXCEPTION 'batch_max_rows must be positive (got %)', batch_max_rows
      USING ERRCODE = '22023', HINT = 'Give the most input rows one batch may take, or NULL for no cap.';
  END IF;
  IF EXISTS (SELECT FROM dataflow.job j WHERE j.name = create_job.name) THEN
    RAISE EXCEPTION 'job "%" already exists', name USING ERRCODE = '42710';
  END IF;
  SELECT j.name INTO other FROM dataflow.job j WHERE j.output_id = d;
  IF FOUND THEN
    RAISE EXCEPTION 'dataset "%" is already produced by job "%"', output, other
      USING ERRCODE = '42710', HINT = 'A dataset has at most one producing job.';
  END IF;
  IF EXISTS (SELECT FROM dataflow.chunk ch WHERE ch.dataset_id = d) THEN
    RAISE EXCEPTION 'dataset "%" already has chunks', output
      USING ERRCODE = '55000',
            HINT = 'Define the producing job before expecting or registering chunks of its output.';
  END IF;
  INSERT INTO dataflow.job (name, output_id, dispatch, connection_id, target, endpoint, params, pool_id,
                            max_concurrency, max_attempts, backoff_min, backoff_max, lease_for, priority,
                            batch_max_rows)
  VALUES (name, d, dispatch, c.id, target, endpoint, params, p,
          max_concurrency, max_attempts, backoff_min, backoff_max, lease_for, priority, batch_max_rows)
  RETURNING id INTO v;
  RETURN v;
END $$;
COMMENT ON FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer,
                                        interval, interval, interval, integer, bigint) IS
  'Define the job producing a dataset: dispatch (pull, http, airflow), connection/target or endpoint, '
  'params, pool, max_concurrency, max_attempts, backoff_min/max, lease_for, priority, batch_max_rows '
  '(an incremental job''s cap on a batch''s input rows); returns its id';
ALTER FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint) TO dataflow_admin;
DROP FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb, bigint);
CREATE FUNCTION dataflow.alter_job(
  name text,
  pool text DEFAULT NULL,
  max_concurrency integer DEFAULT NULL,
  max_attempts integer DEFAULT NULL,
  backoff_min interval DEFAULT NULL,
  backoff_max interval DEFAULT NULL,
  lease_for interval DEFAULT NULL,
  priority integer DEFAULT NULL,
  params jsonb DEFAULT NULL,
  batch_max_rows bigint DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET IntervalStyle = 'postgres' AS $$
DECLARE
  j dataflow.job; p integer; pname text; new_pool integer; new_limit integer;
  new_min interval; new_max interval; changes jsonb := '{}'; shown jsonb; new_rows bigint;
BEGIN
  SELECT * INTO j FROM dataflow.job jb WHERE jb.id = (dataflow._job(alter_job.name)).id FOR UPDATE;
  IF (pool IS NOT NULL OR params IS NOT NULL)
     AND NOT pg_has_role(dataflow._caller(), 'dataflow_admin', 'MEMBER') THEN
    RAISE EXCEPTION 'changing the pool or the params of job "%" needs dataflow_admin', j.name
      USING ERRCODE = '42501',
            HINT = 'An operator may change max_concurrency, max_attempts, backoff_min, backoff_max, lease_for, priority and batch_max_rows.';
  END IF;
  new_pool := j.pool_id;
  IF pool = '' THEN
    new_pool := NULL;
  ELSIF pool IS NOT NULL THEN
    SELECT pl.id INTO p FROM dataflow.pool pl WHERE pl.name = alter_job.pool;
    IF NOT FOUND THEN
      PERFORM dataflow._not_found('pool', pool,
        'create it with dataflow.create_pool(name, slots), or pass pool => '''' to detach the job''s pool.');
    END IF;
    new_pool := p;
  END IF;
  IF max_concurrency < -1 THEN
    RAISE EXCEPTION 'max_concurrency must be >= 0, or -1 to remove the job''s own limit (got %)', max_concurrency
      USING ERRCODE = '22023';
  END IF;
  new_limit := CASE WHEN max_concurrency IS NULL THEN j.max_concurrency
                    WHEN max_concurrency = -1 THEN NULL ELSE max_concurrency END;
  IF max_attempts < 1 THEN
    RAISE EXCEPTION 'max_attempts must be >= 1 (got %)', max_attempts USING ERRCODE = '22023';
  END IF;
  new_min := coalesce(backoff_min, j.backoff_min);
  new_max := coalesce(backoff_max, j.backoff_max);
  IF new_min < interval '0' OR new_max < new_min THEN
    RAISE EXCEPTION 'backoff needs 0 <= backoff_min <= backoff_max (would be % and %)', new_min, new_max
      USING ERRCODE = '22023';
  END IF;
  IF lease_for <= interval '0' THEN
    RAISE EXCEPTION 'lease_for must be positive (got %)', lease_for USING ERRCODE = '22023';
  END IF;
  IF params IS NOT NULL AND jsonb_typeof(params) <> 'object' THEN
    RAISE EXCEPTION 'params must be a JSON object' USING ERRCODE = '22023';
  END IF;
  IF batch_max_rows = 0 OR batch_max_rows < -1 THEN
    RAISE EXCEPTION 'batch_max_rows must be positive, or -1 to remove the cap (got %)', batch_max_rows
      USING ERRCODE = '22023', HINT = 'Give the most input rows one batch may take; -1 removes the cap, NULL keeps it.';
  END IF;
  new_rows := CASE WHEN batch_max_rows IS NULL THEN j.batch_max_rows
                   WHEN batch_max_rows = -1 THEN NULL ELSE batch_max_rows END;

  IF new_pool IS DISTINCT FROM j.pool_id THEN
    changes := changes || jsonb_build_object('pool', jsonb_build_object(
      'from', (SELECT pl.name FROM dataflow.pool pl WHERE pl.id = j.pool_id),
      'to', (SELECT pl.name FROM dataflow.pool pl WHERE pl.id = new_pool)));
  END IF;
  IF new_limit IS DISTINCT FROM j.max_concurrency THEN
    changes := changes || jsonb_build_object('max_concurrency', jsonb_build_object('from', j.max_concurrency, 'to', new_limit));
  END IF;
  IF coalesce(max_attempts, j.max_attempts) <> j.max_attempts THEN
    changes := changes || jsonb_build_object('max_attempts', jsonb_build_object('from', j.max_attempts, 'to', max_attempts));
  END IF;
  IF new_min <> j.backoff_min THEN
    changes := changes || jsonb_build_object('backoff_min', jsonb_build_object('from', j.backoff_min, 'to', new_min));
  END IF;
  IF new_max <> j.backoff_max THEN
    changes := changes || jsonb_build_object('backoff_max', jsonb_build_object('from', j.backoff_max, 'to', new_max));
  END IF;
  IF coalesce(lease_for, j.lease_for) <> j.lease_for THEN
    changes := changes || jsonb_build_object('lease_for', jsonb_build_object('from', j.lease_for, 'to', lease_for));
  END IF;
  IF coalesce(priority, j.priority) <> j.priority THEN
    changes := changes || jsonb_build_object('priority', jsonb_build_object('from', j.priority, 'to', priority));
  END IF;
  IF params IS NOT NULL AND params <> j.params THEN
    changes := changes || jsonb_build_object('params', 'changed');
  END IF;
  IF new_rows IS DISTINCT FROM j.batch_max_rows THEN
    changes := changes || jsonb_build_object('batch_max_rows', jsonb_build_object('from', j.batch_max_rows, 'to', new_rows));
  END IF;
  IF changes = '{}' THEN
    RETURN changes;
  END IF;
  UPDATE dataflow.job jb
     SET pool_id = new_pool, max_concurrency = new_limit,
         max_attempts = coalesce(alter_job.max_attempts, jb.max_attempts),
         backoff_min = new_min, backoff_max = new_max,
         lease_for = coalesce(alter_job.lease_for, jb.lease_for),
         priority = coalesce(alter_job.priority, jb.priority),
         params = coalesce(alter_job.params, jb.params),
         batch_max_rows = new_rows
   WHERE jb.id = j.id;
  INSERT INTO dataflow.event (to_status, actor, detail)
  VALUES ('altered', dataflow._actor(), jsonb_build_object('job', j.name, 'changes', changes));
  IF j.dispatch <> 'pull' THEN
    PERFORM dataflow._wake();   -- a raised limit or a freer pool: the dispatcher claims at once
  END IF;
  RETURN changes;
END $$;
COMMENT ON FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb,
                                       bigint) IS
  'Change a job''s pool, max_concurrency (-1: no limit), max_attempts, backoff_min/max, lease_for, priority, '
  'params or batch_max_rows (-1: no cap) (NULL keeps a setting; pool => '''' detaches); effective from the '
  'next lease (the next batch); returns the changes';
ALTER FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb, bigint) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb, bigint) TO dataflow_operator;

-- ==== 45_lease (issue 15 item 1 review): _retry_or_fail refuses a retry delay outside
-- [0, 36000] s; _fail, granted to dataflow_worker for the callback listener's retry_after,
-- passes its caller's delay through, and a negative one skipped the backoff.
DROP FUNCTION dataflow._retry_or_fail(bigint, bigint, text, boolean, text, text, double precision);
CREATE FUNCTION dataflow._retry_or_fail(p_chunk bigint, p_run bigint, p_error text, p_retry boolean,
                                        p_actor text, p_reason text, p_delay double precision DEFAULT NULL)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan AS $$
DECLARE c dataflow.chunk; j dataflow.job; new_status text; delay double precision;
BEGIN
  -- _fail is granted to dataflow_worker (the callback listener's retry_after): a negative
  -- delay would skip the backoff, a huge one park the chunk for centuries
  IF p_delay IS NOT NULL AND NOT (p_delay BETWEEN 0 AND 36000) THEN
    RAISE EXCEPTION 'the retry delay must be between 0 and 36000 seconds (10 hours), not %', p_delay
      USING ERRCODE = '22023';
  END IF;
  SELECT * INTO c FROM dataflow.chunk WHERE id = p_chunk FOR UPDATE;
  IF c.run_id IS DISTINCT FROM p_run OR c.status <> 'running' THEN
    RETURN c.status;   -- the chunk moved on (resubmitted, cancelled): nothing to retry
  END IF;
  SELECT jb.* INTO j FROM dataflow.job jb WHERE jb.output_id = c.dataset_id;
  IF p_retry AND j.id IS NOT NULL AND c.attempts < j.max_attempts THEN
    -- an input being re-produced meanwhile (unmet > 0): wait for it, not the queue
    new_status := CASE WHEN c.unmet = 0 THEN 'queued' ELSE 'waiting' END;
    delay := coalesce(p_delay,
                      dataflow._backoff(c.attempts, extract(epoch FROM j.backoff_min)::double precision,
                                        extract(epoch FROM j.backoff_max)::double precision, random()));
  ELSE
    new_status := 'failed';
  END IF;
  UPDATE dataflow.chunk
     SET status = new_status, error = left(p_error, 4000), updated_at = now(),
         -- from when the attempt ended (the run's finished_at, set by the clock just before):
         -- the gap between the two is exactly the backoff or Retry-After asked for
         not_before = CASE WHEN new_status = 'queued'
                           THEN coalesce((SELECT rr.finished_at FROM dataflow.run rr WHERE rr.id = p_run),
                                         clock_timestamp()) + make_interval(secs => delay)
                           ELSE not_before END
   WHERE id = c.id;
  INSERT INTO dataflow.event (dataset_id, chunk_id, key, run_id, version, from_status, to_status, actor, detail)
  VALUES (c.dataset_id, c.id, c.key, p_run, c.version, 'running', new_status, p_actor,
          jsonb_build_object('reason', p_reason, 'error', left(p_error, 1000), 'attempt', c.attempts,
                             'retry_in_seconds', round(delay::numeric, 3)));
  RETURN new_status;
END $$;
REVOKE EXECUTE ON FUNCTION dataflow._retry_or_fail(bigint, bigint, text, boolean, text, text, double precision) FROM PUBLIC;

-- 10_model, 22_jobs, 45_lease, 60_bi_views, 70_worker, 90_security, 95_dump (issue 15 item 4):
-- secret task parameters. dataflow.job_secret (admin-readable, dumped); create_job and
-- alter_job take secret_params (the admin's); lease() merges them over the job's params;
-- the worker's Airflow claim keeps its task in _dispatch without them and a resend merges
-- the current ones; the jobs view shows their names with masked values.
CREATE TABLE dataflow.job_secret (
  job_id     integer PRIMARY KEY REFERENCES dataflow.job (id) ON DELETE CASCADE,
  params     jsonb NOT NULL CHECK (jsonb_typeof(params) = 'object' AND params <> '{}' AND NOT params ? 'batch'),
  updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE dataflow.job_secret IS
  'A job''s secret task parameters (readable by the admin role only): merged over the job''s params in '
  'every task it leases; views show the key names only';
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON dataflow.job_secret TO dataflow_admin;
SELECT pg_catalog.pg_extension_config_dump('dataflow.job_secret', '');
CREATE FUNCTION dataflow._check_secret_params(p jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF jsonb_typeof(p) OPERATOR(pg_catalog.<>) 'object' THEN
    RAISE EXCEPTION 'secret_params must be a JSON object, not %', jsonb_typeof(p)
      USING ERRCODE = '22023', HINT = 'Pass {"name": value, ...}; ''{}'' for none.';
  END IF;
  IF p OPERATOR(pg_catalog.?) 'batch' THEN
    RAISE EXCEPTION 'secret_params must not set "batch"'
      USING ERRCODE = '22023',
            HINT = 'batch is the parameter lease() gives the runs of an incremental job; choose another name.';
  END IF;
END $$;
CREATE FUNCTION dataflow._with_secrets(p_params jsonb, p_secret jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN p_secret IS NULL THEN p_params ELSE p_params OPERATOR(pg_catalog.||) p_secret END;
CREATE FUNCTION dataflow._without_secrets(p_params jsonb, p_secret jsonb, p_job_params jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN p_secret IS NULL THEN p_params
            ELSE (p_params OPERATOR(pg_catalog.-) ARRAY(SELECT jsonb_object_keys(p_secret)))
                 OPERATOR(pg_catalog.||)
                 coalesce((SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(p_job_params) e
                            WHERE p_secret OPERATOR(pg_catalog.?) e.key), '{}') END;
REVOKE EXECUTE ON FUNCTION dataflow._check_secret_params(jsonb), dataflow._with_secrets(jsonb, jsonb),
  dataflow._without_secrets(jsonb, jsonb, jsonb) FROM PUBLIC;
DROP FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint);
CREATE FUNCTION dataflow.create_job(
  name text,
  output text,
  dispatch text DEFAULT 'pull',
  connection text DEFAULT NULL,
  target text DEFAULT NULL,
  endpoint text DEFAULT NULL,
  params jsonb DEFAULT '{}',
  pool text DEFAULT NULL,
  max_concurrency integer DEFAULT NULL,
  max_attempts integer DEFAULT 3,
  backoff_min interval DEFAULT '10 seconds',
  backoff_max interval DEFAULT '10 minutes',
  lease_for interval DEFAULT '5 minutes',
  priority integer DEFAULT 0,
  batch_max_rows bigint DEFAULT NULL,
  secret_params jsonb DEFAULT '{}')
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d integer; c dataflow.connection; p integer; v integer; other text;
BEGIN
  PERFORM dataflow._check_name('job', name);
  IF output IS NULL THEN
    PERFORM dataflow._raise('22004', 'output must not be NULL', NULL,
                            'Pass the dataset the job produces: output => dataset.');
  END IF;
  d := dataflow._dataset_id(output);
  IF dispatch IS NULL THEN
    RAISE EXCEPTION 'dispatch must not be NULL' USING ERRCODE = '22004',
      HINT = 'dispatch is pull (workers call lease), http or airflow.';
  END IF;
  IF dispatch NOT IN ('pull', 'http', 'airflow') THEN
    RAISE EXCEPTION 'invalid dispatch "%"', coalesce(dispatch, 'NULL')
      USING ERRCODE = CASE WHEN dispatch IS NULL THEN '22004' ELSE '22023' END, HINT = 'dispatch is pull (workers call lease), http or airflow.';
  END IF;
  IF connection IS NOT NULL THEN
    SELECT * INTO c FROM dataflow.connection cn WHERE cn.name = create_job.connection;
    IF NOT FOUND THEN
      PERFORM dataflow._not_found('connection', connection,
        'create it with dataflow.create_connection(name, kind, base_url).');
    END IF;
  END IF;
  IF dispatch = 'pull' AND (connection IS NOT NULL OR endpoint IS NOT NULL OR target IS NOT NULL) THEN
    RAISE EXCEPTION 'a pull job takes no connection, target or endpoint' USING ERRCODE = '22023';
  ELSIF dispatch = 'http' THEN
    IF (endpoint IS NULL) = (connection IS NULL) THEN
      RAISE EXCEPTION 'an http job needs either endpoint or connection (with target), not both'
        USING ERRCODE = '22023';
    END IF;
    IF endpoint IS NOT NULL AND (endpoint !~ '^https?://[^\s/?#@]+(/[^\s]*)?$' OR endpoint ~ '[\r\n]') THEN
      RAISE EXCEPTION 'invalid endpoint "%"', left(endpoint, 200)
        USING ERRCODE = '22023', HINT = 'An http:// or https:// URL without credentials in it.';
    END IF;
    IF connection IS NOT NULL AND c.kind <> 'http' THEN
      RAISE EXCEPTION 'connection "%" is of kind %, not http', connection, c.kind USING ERRCODE = '22023';
    END IF;
  ELSIF dispatch = 'airflow' THEN
    IF connection IS NULL OR c.kind <> 'airflow' OR target IS NULL OR endpoint IS NOT NULL THEN
      RAISE EXCEPTION 'an airflow job needs an airflow connection and a target (the DAG id), and no endpoint'
        USING ERRCODE = '22023';
    END IF;
  END IF;
  IF target IS NOT NULL AND target !~ '^[A-Za-z0-9_./-]{1,250}$' THEN
    RAISE EXCEPTION 'invalid target "%"', left(target, 64)
      USING ERRCODE = '22023', HINT = 'A DAG id or a URL path: letters, digits, "_", ".", "/" and "-".';
  END IF;
  IF params IS NULL OR jsonb_typeof(params) <> 'object' THEN
    RAISE EXCEPTION 'params must %', CASE WHEN params IS NULL THEN 'not be NULL' ELSE 'be a JSON object' END
      USING ERRCODE = CASE WHEN params IS NULL THEN '22004' ELSE '22023' END, HINT = 'Pass ''{}'' for none.';
  END IF;
  IF secret_params IS NULL THEN
    RAISE EXCEPTION 'secret_params must not be NULL' USING ERRCODE = '22004', HINT = 'Pass ''{}'' for none.';
  END IF;
  PERFORM dataflow._check_secret_params(secret_params);
  IF pool IS NOT NULL THEN
    SELECT id INTO p FROM dataflow.pool pl WHERE pl.name = create_job.pool;
    IF NOT FOUND THEN
      PERFORM dataflow._not_found('pool', pool, 'create it with dataflow.create_pool(name, slots).');
    END IF;
  END IF;
  IF max_attempts IS NULL OR backoff_min IS NULL OR backoff_max IS NULL OR lease_for IS NULL THEN
    RAISE EXCEPTION '% must not be NULL', CASE WHEN max_attempts IS NULL THEN 'max_attempts'
      WHEN backoff_min IS NULL THEN 'backoff_min' WHEN backoff_max IS NULL THEN 'backoff_max' ELSE 'lease_for' END
      USING ERRCODE = '22004', HINT = 'Leave it out for the default.';
  END IF;
  IF max_concurrency < 0 OR max_attempts IS NULL OR max_attempts < 1 THEN
    RAISE EXCEPTION 'max_concurrency must be >= 0 (or NULL: unlimited) and max_attempts >= 1'
      USING ERRCODE = CASE WHEN max_attempts IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF backoff_min IS NULL OR backoff_max IS NULL OR backoff_min < interval '0' OR backoff_max < backoff_min THEN
    RAISE EXCEPTION 'backoff needs 0 <= backoff_min <= backoff_max'
      USING ERRCODE = CASE WHEN backoff_min IS NULL OR backoff_max IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF lease_for IS NULL OR lease_for <= interval '0' THEN
    RAISE EXCEPTION 'lease_for must be positive'
      USING ERRCODE = CASE WHEN lease_for IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF priority IS NULL THEN
    RAISE EXCEPTION 'priority must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF batch_max_rows <= 0 THEN
    RAISE EXCEPTION 'batch_max_rows must be positive (got %)', batch_max_rows
      USING ERRCODE = '22023', HINT = 'Give the most input rows one batch may take, or NULL for no cap.';
  END IF;
  IF EXISTS (SELECT FROM dataflow.job j WHERE j.name = create_job.name) THEN
    RAISE EXCEPTION 'job "%" already exists', name USING ERRCODE = '42710';
  END IF;
  SELECT j.name INTO other FROM dataflow.job j WHERE j.output_id = d;
  IF FOUND THEN
    RAISE EXCEPTION 'dataset "%" is already produced by job "%"', output, other
      USING ERRCODE = '42710', HINT = 'A dataset has at most one producing job.';
  END IF;
  IF EXISTS (SELECT FROM dataflow.chunk ch WHERE ch.dataset_id = d) THEN
    RAISE EXCEPTION 'dataset "%" already has chunks', output
      USING ERRCODE = '55000',
            HINT = 'Define the producing job before expecting or registering chunks of its output.';
  END IF;
  INSERT INTO dataflow.job (name, output_id, dispatch, connection_id, target, endpoint, params, pool_id,
                            max_concurrency, max_attempts, backoff_min, backoff_max, lease_for, priority,
                            batch_max_rows)
  VALUES (name, d, dispatch, c.id, target, endpoint, params, p,
          max_concurrency, max_attempts, backoff_min, backoff_max, lease_for, priority, batch_max_rows)
  RETURNING id INTO v;
  IF secret_params <> '{}' THEN
    INSERT INTO dataflow.job_secret (job_id, params) VALUES (v, secret_params);
  END IF;
  RETURN v;
END $$;
COMMENT ON FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer,
                                        interval, interval, interval, integer, bigint, jsonb) IS
  'Define the job producing a dataset: dispatch (pull, http, airflow), connection/target or endpoint, '
  'params, pool, max_concurrency, max_attempts, backoff_min/max, lease_for, priority, batch_max_rows '
  '(an incremental job''s cap on a batch''s input rows), secret_params (merged over params in every task, '
  'never shown); returns its id';
ALTER FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint, jsonb) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint, jsonb) TO dataflow_admin;
DROP FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb, bigint);
CREATE FUNCTION dataflow.alter_job(
  name text,
  pool text DEFAULT NULL,
  max_concurrency integer DEFAULT NULL,
  max_attempts integer DEFAULT NULL,
  backoff_min interval DEFAULT NULL,
  backoff_max interval DEFAULT NULL,
  lease_for interval DEFAULT NULL,
  priority integer DEFAULT NULL,
  params jsonb DEFAULT NULL,
  batch_max_rows bigint DEFAULT NULL,
  secret_params jsonb DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET IntervalStyle = 'postgres' AS $$
DECLARE
  j dataflow.job; p integer; pname text; new_pool integer; new_limit integer;
  new_min interval; new_max interval; changes jsonb := '{}'; shown jsonb; new_rows bigint; old_secret jsonb;
BEGIN
  SELECT * INTO j FROM dataflow.job jb WHERE jb.id = (dataflow._job(alter_job.name)).id FOR UPDATE;
  IF (pool IS NOT NULL OR params IS NOT NULL)
     AND NOT pg_has_role(dataflow._caller(), 'dataflow_admin', 'MEMBER') THEN
    RAISE EXCEPTION 'changing the pool or the params of job "%" needs dataflow_admin', j.name
      USING ERRCODE = '42501',
            HINT = 'An operator may change max_concurrency, max_attempts, backoff_min, backoff_max, lease_for, priority and batch_max_rows.';
  END IF;
  IF secret_params IS NOT NULL AND NOT pg_has_role(dataflow._caller(), 'dataflow_admin', 'MEMBER') THEN
    RAISE EXCEPTION 'setting the secret_params of job "%" needs dataflow_admin', j.name
      USING ERRCODE = '42501',
            HINT = 'Secret parameters are the admin''s: an admin calls dataflow.alter_job(job, secret_params => ...).';
  END IF;
  new_pool := j.pool_id;
  IF pool = '' THEN
    new_pool := NULL;
  ELSIF pool IS NOT NULL THEN
    SELECT pl.id INTO p FROM dataflow.pool pl WHERE pl.name = alter_job.pool;
    IF NOT FOUND THEN
      PERFORM dataflow._not_found('pool', pool,
        'create it with dataflow.create_pool(name, slots), or pass pool => '''' to detach the job''s pool.');
    END IF;
    new_pool := p;
  END IF;
  IF max_concurrency < -1 THEN
    RAISE EXCEPTION 'max_concurrency must be >= 0, or -1 to remove the job''s own limit (got %)', max_concurrency
      USING ERRCODE = '22023';
  END IF;
  new_limit := CASE WHEN max_concurrency IS NULL THEN j.max_concurrency
                    WHEN max_concurrency = -1 THEN NULL ELSE max_concurrency END;
  IF max_attempts < 1 THEN
    RAISE EXCEPTION 'max_attempts must be >= 1 (got %)', max_attempts USING ERRCODE = '22023';
  END IF;
  new_min := coalesce(backoff_min, j.backoff_min);
  new_max := coalesce(backoff_max, j.backoff_max);
  IF new_min < interval '0' OR new_max < new_min THEN
    RAISE EXCEPTION 'backoff needs 0 <= backoff_min <= backoff_max (would be % and %)', new_min, new_max
      USING ERRCODE = '22023';
  END IF;
  IF lease_for <= interval '0' THEN
    RAISE EXCEPTION 'lease_for must be positive (got %)', lease_for USING ERRCODE = '22023';
  END IF;
  IF params IS NOT NULL AND jsonb_typeof(params) <> 'object' THEN
    RAISE EXCEPTION 'params must be a JSON object' USING ERRCODE = '22023';
  END IF;
  IF batch_max_rows = 0 OR batch_max_rows < -1 THEN
    RAISE EXCEPTION 'batch_max_rows must be positive, or -1 to remove the cap (got %)', batch_max_rows
      USING ERRCODE = '22023', HINT = 'Give the most input rows one batch may take; -1 removes the cap, NULL keeps it.';
  END IF;
  new_rows := CASE WHEN batch_max_rows IS NULL THEN j.batch_max_rows
                   WHEN batch_max_rows = -1 THEN NULL ELSE batch_max_rows END;
  IF secret_params IS NOT NULL THEN
    PERFORM dataflow._check_secret_params(secret_params);
    SELECT s.params INTO old_secret FROM dataflow.job_secret s WHERE s.job_id = j.id;
  END IF;

  IF new_pool IS DISTINCT FROM j.pool_id THEN
    changes := changes || jsonb_build_object('pool', jsonb_build_object(
      'from', (SELECT pl.name FROM dataflow.pool pl WHERE pl.id = j.pool_id),
      'to', (SELECT pl.name FROM dataflow.pool pl WHERE pl.id = new_pool)));
  END IF;
  IF new_limit IS DISTINCT FROM j.max_concurrency THEN
    changes := changes || jsonb_build_object('max_concurrency', jsonb_build_object('from', j.max_concurrency, 'to', new_limit));
  END IF;
  IF coalesce(max_attempts, j.max_attempts) <> j.max_attempts THEN
    changes := changes || jsonb_build_object('max_attempts', jsonb_build_object('from', j.max_attempts, 'to', max_attempts));
  END IF;
  IF new_min <> j.backoff_min THEN
    changes := changes || jsonb_build_object('backoff_min', jsonb_build_object('from', j.backoff_min, 'to', new_min));
  END IF;
  IF new_max <> j.backoff_max THEN
    changes := changes || jsonb_build_object('backoff_max', jsonb_build_object('from', j.backoff_max, 'to', new_max));
  END IF;
  IF coalesce(lease_for, j.lease_for) <> j.lease_for THEN
    changes := changes || jsonb_build_object('lease_for', jsonb_build_object('from', j.lease_for, 'to', lease_for));
  END IF;
  IF coalesce(priority, j.priority) <> j.priority THEN
    changes := changes || jsonb_build_object('priority', jsonb_build_object('from', j.priority, 'to', priority));
  END IF;
  IF params IS NOT NULL AND params <> j.params THEN
    changes := changes || jsonb_build_object('params', 'changed');
  END IF;
  IF new_rows IS DISTINCT FROM j.batch_max_rows THEN
    changes := changes || jsonb_build_object('batch_max_rows', jsonb_build_object('from', j.batch_max_rows, 'to', new_rows));
  END IF;
  IF secret_params IS NOT NULL AND secret_params <> coalesce(old_secret, '{}') THEN
    changes := changes || jsonb_build_object('secret_params',
                                             CASE WHEN secret_params = '{}' THEN 'cleared' ELSE 'changed' END);
  END IF;
  IF changes = '{}' THEN
    RETURN changes;
  END IF;
  UPDATE dataflow.job jb
     SET pool_id = new_pool, max_concurrency = new_limit,
         max_attempts = coalesce(alter_job.max_attempts, jb.max_attempts),
         backoff_min = new_min, backoff_max = new_max,
         lease_for = coalesce(alter_job.lease_for, jb.lease_for),
         priority = coalesce(alter_job.priority, jb.priority),
         params = coalesce(alter_job.params, jb.params),
         batch_max_rows = new_rows
   WHERE jb.id = j.id;
  IF changes ? 'secret_params' THEN
    IF secret_params = '{}' THEN
      DELETE FROM dataflow.job_secret s WHERE s.job_id = j.id;
    ELSE
      INSERT INTO dataflow.job_secret AS s (job_id, params) VALUES (j.id, secret_params)
      ON CONFLICT (job_id) DO UPDATE SET params = excluded.params, updated_at = now();
    END IF;
  END IF;
  INSERT INTO dataflow.event (to_status, actor, detail)
  VALUES ('altered', dataflow._actor(), jsonb_build_object('job', j.name, 'changes', changes));
  IF j.dispatch <> 'pull' THEN
    PERFORM dataflow._wake();   -- a raised limit or a freer pool: the dispatcher claims at once
  END IF;
  RETURN changes;
END $$;
COMMENT ON FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb,
                                       bigint, jsonb) IS
  'Change a job''s pool, max_concurrency (-1: no limit), max_attempts, backoff_min/max, lease_for, priority, '
  'params, batch_max_rows (-1: no cap) or secret_params (admin only; replaced whole, ''{}'' clears) '
  '(NULL keeps a setting; pool => '''' detaches); effective from the next lease (the next batch); '
  'returns the changes';
ALTER FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb, bigint, jsonb) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb, bigint, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb, bigint, jsonb) TO dataflow_operator;
DROP FUNCTION dataflow.lease(text, text, integer, interval);
CREATE FUNCTION dataflow.lease(job text, worker text, max_chunks integer DEFAULT 1,
                               lease_for interval DEFAULT NULL)
RETURNS SETOF dataflow.task
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off
-- index probes whatever the statistics said when this session made its plans (docs/internals.md, "Planner settings")
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_mergejoin = off SET enable_hashjoin = off
-- every statement below has a cheap index-probe generic plan; custom plans cost
-- ~1 ms of planning per statement per call (measured), more than executing them
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  ids bigint[];
  run_ids bigint[];
  has_latest boolean;
  j dataflow.job := dataflow._job(job);
  n integer := max_chunks;
  lf interval;
  ds dataflow.dataset;
  slots integer;
  incremental boolean;
  batch_from text[];
  latest bigint[];
  li record;
  lid bigint;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    PERFORM dataflow._read_committed();   -- raises (00_schema.sql)
  END IF;
  IF worker IS NULL OR max_chunks IS NULL THEN
    RAISE EXCEPTION '% must not be NULL', CASE WHEN worker IS NULL THEN 'worker' ELSE 'max_chunks' END
      USING ERRCODE = '22004', HINT = 'lease(job, worker, max_chunks): worker names who takes the chunks, max_chunks how many (1-1000).';
  END IF;
  IF worker = '' OR length(worker) > 200 OR worker ~ '[[:cntrl:]]' THEN
    RAISE EXCEPTION 'worker must be a printable name of 1-200 characters' USING ERRCODE = '22023';
  END IF;
  IF max_chunks < 1 OR max_chunks > 1000 THEN
    RAISE EXCEPTION 'max_chunks must be between 1 and 1000, not %', max_chunks USING ERRCODE = '22023';
  END IF;
  lf := coalesce(lease_for, j.lease_for);
  IF lf <= interval '0' THEN
    RAISE EXCEPTION 'lease_for must be positive' USING ERRCODE = '22023';
  END IF;
  IF j.paused THEN
    RETURN;
  END IF;
  -- The output dataset, and the shape of the inputs (any incremental, any latest) as
  -- index probes: no aggregate to set up on every call.
  SELECT * INTO ds FROM dataflow.dataset WHERE id = j.output_id;
  SELECT EXISTS (SELECT FROM dataflow.job_input ji WHERE ji.job_id = j.id AND ji.mapping = 'incremental'),
         EXISTS (SELECT FROM dataflow.job_input ji WHERE ji.job_id = j.id AND ji.mapping = 'latest')
    INTO incremental, has_latest;
  IF incremental THEN
    SELECT array_agg(ids.name) INTO batch_from
      FROM dataflow.job_input ji JOIN dataflow.dataset ids ON ids.id = ji.dataset_id
     WHERE ji.job_id = j.id AND ji.mapping = 'incremental';
    PERFORM dataflow._cut_batch(j.id);
  END IF;
  -- Limits are counted from live leases. The advisory lock serializes the
  -- count-then-lease of limited jobs and pools; unlimited jobs take none.
  IF j.max_concurrency IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(7401, j.id);
    n := least(n, j.max_concurrency -
                  (SELECT count(*) FROM dataflow.run r WHERE r.job_id = j.id AND r.status = 'running')::integer);
  END IF;
  IF j.pool_id IS NOT NULL AND n > 0 THEN
    PERFORM pg_advisory_xact_lock(7402, j.pool_id);
    SELECT p.slots INTO slots FROM dataflow.pool p WHERE p.id = j.pool_id;
    n := least(n, slots -
                  (SELECT count(*) FROM dataflow.run r WHERE r.pool_id = j.pool_id AND r.status = 'running')::integer);
  END IF;
  IF n <= 0 THEN
    RETURN;
  END IF;
  -- Ready: the newest available chunk of each `latest` input, share-locked until commit
  -- so that a resubmit or invalidation of it cannot commit between this choice and the
  -- lineage below. Never waited for (NOWAIT): this call already holds the limit locks
  -- (7401, 7402, and 7406 from the batch cut), which others take after a chunk lock, and
  -- an operator's open transaction on the input must not stall every job of the pool.
  -- When that chunk is busy, or an input has no available chunk (its only one was
  -- resubmitted or invalidated after the consumers were queued), the job is held back
  -- for this call.
  IF has_latest THEN
    FOR li IN SELECT jl.dataset_id, jl.need FROM dataflow.job_input jl JOIN dataflow.dataset ld ON ld.id = jl.dataset_id
               WHERE jl.job_id = j.id AND jl.mapping = 'latest' ORDER BY ld.rank, jl.dataset_id LOOP
      lid := NULL;
      BEGIN
        SELECT x.id INTO lid FROM dataflow.chunk x
         WHERE x.dataset_id = li.dataset_id AND dataflow._level(x.status) >= li.need
         ORDER BY x.ord DESC NULLS LAST, x.available_at DESC
         LIMIT 1
           FOR SHARE NOWAIT;
      EXCEPTION WHEN lock_not_available THEN
        RETURN;
      END;
      IF lid IS NULL THEN
        RETURN;
      END IF;
      latest := latest || lid;
    END LOOP;
  END IF;

  -- Claim, then one small statement per table: each keeps a cheap generic plan
  -- (the single 6-CTE statement was re-planned on every call).
  ids := dataflow._claim(j.output_id, n);
  IF ids IS NULL THEN
    RETURN;
  END IF;
  -- run ids follow the claim (queue) order, whatever the rows' physical order
  WITH u AS (
    UPDATE dataflow.chunk c
       SET status = 'running', attempts = c.attempts + 1, run_id = r.run_id, updated_at = now()
      FROM (SELECT u.id, nextval('dataflow.run_id_seq') AS run_id
              FROM unnest(ids) WITH ORDINALITY AS u(id, o) ORDER BY u.o) r
     WHERE c.id = r.id
    RETURNING c.run_id)
  SELECT array_agg(u.run_id) INTO run_ids FROM u;
  INSERT INTO dataflow.run (id, job_id, pool_id, chunk_id, version, attempt, worker, status, deadline,
                            output_location)
  SELECT c.run_id, j.id, j.pool_id, c.id, c.version, c.attempts, worker, 'running', clock_timestamp() + lf,
         dataflow._location(ds.location, ds.name, c.key, c.version)
    FROM dataflow.chunk c WHERE c.id = ANY (ids);
  INSERT INTO dataflow.run_input (run_id, chunk_id, version)
  SELECT c.run_id, dp.input, ic.version
    FROM dataflow.chunk c JOIN dataflow.dep dp ON dp.consumer = c.id JOIN dataflow.chunk ic ON ic.id = dp.input
   WHERE c.id = ANY (ids);
  IF has_latest THEN
    INSERT INTO dataflow.run_input (run_id, chunk_id, version)
    SELECT c.run_id, lc.id, lc.version
      FROM dataflow.chunk c CROSS JOIN dataflow.chunk lc
     WHERE c.id = ANY (ids) AND lc.id = ANY (latest);
  END IF;
  INSERT INTO dataflow.event (dataset_id, chunk_id, key, run_id, version, from_status, to_status, actor)
  SELECT j.output_id, c.id, c.key, c.run_id, c.version, 'queued', 'running', worker
    FROM dataflow.chunk c WHERE c.id = ANY (ids);
  RETURN QUERY
  SELECT r.id, r.token, j.name, ds.name, c.key, c.version, c.attempts, r.output_location,
         coalesce((SELECT jsonb_agg(jsonb_build_object('dataset', ids2.name, 'key', ic.key, 'version', ri.version,
                                                       'location', ic.location, 'row_count', ic.row_count,
                                                       'checksum', ic.checksum)
                                    ORDER BY ids2.name, ic.ord, ic.key)
                     FROM dataflow.run_input ri JOIN dataflow.chunk ic ON ic.id = ri.chunk_id
                     JOIN dataflow.dataset ids2 ON ids2.id = ic.dataset_id
                    WHERE ri.run_id = r.id), '[]'::jsonb),
         dataflow._with_secrets(CASE WHEN incremental THEN j.params || dataflow._batch_params(r.id, c.key, batch_from)
              ELSE j.params END, (SELECT s.params FROM dataflow.job_secret s WHERE s.job_id = j.id)),
         r.deadline
    FROM dataflow.chunk c JOIN dataflow.run r ON r.id = c.run_id
   -- both sides restricted by key arrays, so any join order probes an index: the
   -- generic plan made while run was empty must not walk all of run_pkey
   WHERE c.id = ANY (ids) AND r.id = ANY (run_ids)
   ORDER BY r.id;
END $$;
COMMENT ON FUNCTION dataflow.lease(text, text, integer, interval) IS
  'Lease up to max_chunks runnable chunks of a job for a worker: returns one task per chunk with its '
  'token, inputs (exact versions and locations), params (the job''s secret params merged in), output location '
  'and deadline; empty when nothing is runnable';
ALTER FUNCTION dataflow.lease(text, text, integer, interval) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.lease(text, text, integer, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.lease(text, text, integer, interval) TO dataflow_worker;
DROP FUNCTION dataflow._worker_claim(text, integer);
CREATE FUNCTION dataflow._worker_claim(p_job text, p_n integer) RETURNS SETOF dataflow.task
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE ts dataflow.task[]; airflow boolean; skipped dataflow.task; secret jsonb; job_params jsonb;
BEGIN
  SELECT j.dispatch = 'airflow', j.params INTO airflow, job_params FROM dataflow.job j WHERE j.name = p_job;
  BEGIN
    IF airflow THEN
      SELECT s.params INTO secret FROM dataflow.job_secret s JOIN dataflow.job j ON j.id = s.job_id
       WHERE j.name = p_job FOR SHARE OF s;
    END IF;
    SELECT array_agg(l ORDER BY l.run_id) INTO ts FROM dataflow.lease(p_job, 'bgworker', p_n) l;
    IF ts IS NULL THEN
      RETURN;
    END IF;
    IF airflow THEN
      INSERT INTO dataflow._dispatch (run_id, task)
      SELECT t.run_id, CASE WHEN secret IS NULL OR t.params IS NULL THEN to_jsonb(t)
                            ELSE jsonb_set(to_jsonb(t), '{params}', dataflow._without_secrets(t.params, secret, job_params)) END
        FROM unnest(ts) t;
    END IF;
    UPDATE dataflow.run r SET external_id = 'dataflow-' || r.id
     WHERE r.id = ANY (ARRAY(SELECT t.run_id FROM unnest(ts) t));
  EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
    skipped.job := p_job;
    skipped.key := SQLERRM;
    RETURN NEXT skipped;
    RETURN;
  END;
  RETURN QUERY SELECT * FROM unnest(ts) ORDER BY run_id;
END $$;
REVOKE ALL ON FUNCTION dataflow._worker_claim(text, integer) FROM PUBLIC;
DROP FUNCTION dataflow._worker_airflow_runs();
CREATE FUNCTION dataflow._worker_airflow_runs()
RETURNS TABLE (run_id bigint, token uuid, external_id text, triggered boolean, task text, dag_id text,
               base_url text, auth text, username text, secret text, api_version integer,
               connect_timeout_ms integer, timeout_ms integer)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off
AS $$
BEGIN
  RETURN QUERY
  SELECT r.id, r.token, r.external_id, x.triggered,
         CASE WHEN s.params IS NULL THEN x.task
              ELSE jsonb_set(x.task, '{params}', dataflow._with_secrets(coalesce(x.task -> 'params', '{}'), s.params))
         END::text,
         j.target, c.base_url, c.auth, c.username,
         c.secret, coalesce(c.api_version, 1),
         CASE WHEN c.connect_timeout <= interval '1 hour' THEN (extract(epoch FROM c.connect_timeout) * 1000)::integer END,
         CASE WHEN c.timeout <= interval '24 hours' THEN (extract(epoch FROM c.timeout) * 1000)::integer END
    FROM dataflow._dispatch x
    JOIN dataflow.run r ON r.id = x.run_id
    JOIN dataflow.job j ON j.id = r.job_id
    JOIN dataflow.connection c ON c.id = j.connection_id
    LEFT JOIN dataflow.job_secret s ON s.job_id = j.id
   WHERE r.status = 'running'
   ORDER BY r.id;
END $$;
REVOKE ALL ON FUNCTION dataflow._worker_airflow_runs() FROM PUBLIC;
DROP VIEW dataflow.jobs;
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
COMMENT ON COLUMN dataflow.jobs.dispatch IS 'pull, http or airflow';
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
GRANT SELECT ON dataflow.jobs TO dataflow_reader;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON dataflow.jobs TO dataflow_admin;

-- ==== 10_model (issue 15 item 3, below): job.cancel_endpoint, added here so that the
-- columns of dataflow.job come in the order of a fresh install (10_model makes it, 24_change
-- then adds definition_version).
ALTER TABLE dataflow.job ADD COLUMN cancel_endpoint text;
COMMENT ON COLUMN dataflow.job.cancel_endpoint IS
  'http jobs: URL the worker POSTs {run_id, job, dataset, key, version, reason} to, with the run''s token as '
  'bearer, when a running chunk is cancelled (NULL: the engine is not told)';

-- ==== 24_change (issue 16 part 1): changing a flow that has produced data. A job's
-- definition version (job.definition_version, run.definition_version set at lease), its
-- history (job_definition, dumped), drop_input, alter_input, the view outdated, and the
-- helpers a change runs (_change_begin, _change_apply, _job_created, _check_input).
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
-- altered, or deleted) to the chunks its output already has; p_dataset NULL: the job was
-- just created on a dataset that had chunks. Set-based: one statement per table, whatever
-- the number of chunks. Refuses (55006) while the job has running leases unless p_wait:
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
REVOKE EXECUTE ON FUNCTION dataflow._built_version(bigint),
  dataflow._check_input(dataflow.job, dataflow.dataset, dataflow.dataset, text, integer, integer, text, integer, boolean),
  dataflow._change_begin(text), dataflow._change_apply(integer, integer, dataflow.job_input, jsonb, boolean, boolean),
  dataflow._job_created(integer),
  dataflow.drop_input(text, text, boolean, boolean),
  dataflow.alter_input(text, text, text, integer, integer, text, integer, boolean, boolean) FROM PUBLIC;
ALTER FUNCTION dataflow.drop_input(text, text, boolean, boolean) SECURITY DEFINER;
ALTER FUNCTION dataflow.alter_input(text, text, text, integer, integer, text, integer, boolean, boolean) SECURITY DEFINER;
GRANT EXECUTE ON FUNCTION dataflow.drop_input(text, text, boolean, boolean),
  dataflow.alter_input(text, text, text, integer, integer, text, integer, boolean, boolean) TO dataflow_admin;
GRANT SELECT ON dataflow.outdated, dataflow.job_definition TO dataflow_reader;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON dataflow.job_definition, dataflow.outdated TO dataflow_admin;
SELECT pg_catalog.pg_extension_config_dump('dataflow.job_definition', '');

-- 35_expect (issue 16 part 1): expect() holds 7407 shared while it reads the job graph (a
-- change holds it exclusively), and its body after the first wanted keys is
-- _expect_wanted, which a change also runs for the input chunks it needs.
DROP FUNCTION dataflow.expect(text, text, text);
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
ALTER FUNCTION dataflow.expect(text, text, text) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.expect(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.expect(text, text, text) TO dataflow_operator;
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
REVOKE EXECUTE ON FUNCTION dataflow._expect_wanted(dataflow.dataset, text, text, text) FROM PUBLIC;

-- 22_jobs (issue 16 part 1): add_input on an output with chunks (rerun, wait), create_job on
-- a dataset with chunks (a source becoming produced, _job_created).
DROP FUNCTION dataflow.add_input(text, text, text, integer, integer, text, integer);
CREATE FUNCTION dataflow.add_input(
  job text, dataset text,
  mapping text DEFAULT 'same',
  lo integer DEFAULT NULL, hi integer DEFAULT NULL,
  require text DEFAULT NULL,
  max_chunks integer DEFAULT NULL,
  rerun boolean DEFAULT false,
  wait boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  j dataflow.job := dataflow._change_begin(job);   -- the locks of a change (24_change.sql)
  d dataflow.dataset;
  o dataflow.dataset;
  cyc boolean;
BEGIN
  d := dataflow._dataset_row(dataset);
  SELECT * INTO o FROM dataflow.dataset WHERE id = j.output_id;
  PERFORM dataflow._check_input(j, d, o, mapping, lo, hi, require, max_chunks, false);
  IF EXISTS (SELECT FROM dataflow.job_input ji WHERE ji.job_id = j.id AND ji.dataset_id = d.id) THEN
    RAISE EXCEPTION 'job "%" already has input "%"', j.name, d.name USING ERRCODE = '42710',
      HINT = 'Change it with dataflow.alter_input(job, dataset, mapping => ...).';
  END IF;
  -- A cycle: the output dataset already reaches the new input downstream.
  WITH RECURSIVE down(ds) AS (
    SELECT j.output_id
    UNION
    SELECT jb.output_id FROM down JOIN dataflow.job_input ji ON ji.dataset_id = down.ds
                                  JOIN dataflow.job jb ON jb.id = ji.job_id)
  SELECT EXISTS (SELECT FROM down WHERE ds = d.id) INTO cyc;
  IF cyc THEN
    RAISE EXCEPTION 'input "%" of job "%" would make a cycle', d.name, j.name
      USING ERRCODE = '42P17', HINT = 'Dataset "' || d.name || '" is downstream of "' || o.name || '".';
  END IF;
  INSERT INTO dataflow.job_input (job_id, dataset_id, mapping, lo, hi, require, need, max_chunks)
  VALUES (j.id, d.id, mapping, lo, hi, require,
          CASE coalesce(require, CASE WHEN d.requires_validation THEN 'validated' ELSE 'ready' END)
            WHEN 'validated' THEN 2 ELSE 1 END, max_chunks);
  IF mapping = 'incremental' THEN
    -- Everything already available is pending: the first batch takes it (or, with caps, the
    -- first batches).
    INSERT INTO dataflow.incremental_pending (job_id, chunk_id, need, dataset_id, ord)
    SELECT j.id, c.id, ji.need, c.dataset_id, c.ord FROM dataflow.chunk c
      JOIN dataflow.job_input ji ON ji.job_id = j.id AND ji.dataset_id = d.id
     WHERE c.dataset_id = d.id AND dataflow._level(c.status) >= ji.need;
  END IF;
  -- The output's existing chunks get their edges from the new input; ranks follow.
  PERFORM dataflow._change_apply(j.id, d.id, NULL,
    jsonb_strip_nulls(jsonb_build_object('input_added', d.name, 'mapping', mapping,
                                         'window', CASE WHEN mapping = 'window' THEN jsonb_build_array(lo, hi) END,
                                         'require', require)),
    wait, rerun);
END $$;
COMMENT ON FUNCTION dataflow.add_input(text, text, text, integer, integer, text, integer, boolean, boolean) IS
  'Make a dataset an input of a job: mapping same, window (lo, hi), rollup, latest or incremental; '
  'require ready or validated (NULL: the input dataset decides); max_chunks caps the chunks an '
  'incremental input gives one batch (alter_input changes it). On an output with chunks their edges are built (definition '
  'version + 1); rerun resubmits the chunks an older definition built; wait allows running leases';
ALTER FUNCTION dataflow.add_input(text, text, text, integer, integer, text, integer, boolean, boolean) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.add_input(text, text, text, integer, integer, text, integer, boolean, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.add_input(text, text, text, integer, integer, text, integer, boolean, boolean) TO dataflow_admin;
DROP FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint, jsonb);
CREATE FUNCTION dataflow.create_job(
  name text,
  output text,
  dispatch text DEFAULT 'pull',
  connection text DEFAULT NULL,
  target text DEFAULT NULL,
  endpoint text DEFAULT NULL,
  params jsonb DEFAULT '{}',
  pool text DEFAULT NULL,
  max_concurrency integer DEFAULT NULL,
  max_attempts integer DEFAULT 3,
  backoff_min interval DEFAULT '10 seconds',
  backoff_max interval DEFAULT '10 minutes',
  lease_for interval DEFAULT '5 minutes',
  priority integer DEFAULT 0,
  batch_max_rows bigint DEFAULT NULL,
  secret_params jsonb DEFAULT '{}')
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d integer; c dataflow.connection; p integer; v integer; other text;
BEGIN
  PERFORM dataflow._check_name('job', name);
  IF output IS NULL THEN
    PERFORM dataflow._raise('22004', 'output must not be NULL', NULL,
                            'Pass the dataset the job produces: output => dataset.');
  END IF;
  d := dataflow._dataset_id(output);
  IF dispatch IS NULL THEN
    RAISE EXCEPTION 'dispatch must not be NULL' USING ERRCODE = '22004',
      HINT = 'dispatch is pull (workers call lease), http or airflow.';
  END IF;
  IF dispatch NOT IN ('pull', 'http', 'airflow') THEN
    RAISE EXCEPTION 'invalid dispatch "%"', coalesce(dispatch, 'NULL')
      USING ERRCODE = CASE WHEN dispatch IS NULL THEN '22004' ELSE '22023' END, HINT = 'dispatch is pull (workers call lease), http or airflow.';
  END IF;
  IF connection IS NOT NULL THEN
    SELECT * INTO c FROM dataflow.connection cn WHERE cn.name = create_job.connection;
    IF NOT FOUND THEN
      PERFORM dataflow._not_found('connection', connection,
        'create it with dataflow.create_connection(name, kind, base_url).');
    END IF;
  END IF;
  IF dispatch = 'pull' AND (connection IS NOT NULL OR endpoint IS NOT NULL OR target IS NOT NULL) THEN
    RAISE EXCEPTION 'a pull job takes no connection, target or endpoint' USING ERRCODE = '22023';
  ELSIF dispatch = 'http' THEN
    IF (endpoint IS NULL) = (connection IS NULL) THEN
      RAISE EXCEPTION 'an http job needs either endpoint or connection (with target), not both'
        USING ERRCODE = '22023';
    END IF;
    IF endpoint IS NOT NULL AND (endpoint !~ '^https?://[^\s/?#@]+(/[^\s]*)?$' OR endpoint ~ '[\r\n]') THEN
      RAISE EXCEPTION 'invalid endpoint "%"', left(endpoint, 200)
        USING ERRCODE = '22023', HINT = 'An http:// or https:// URL without credentials in it.';
    END IF;
    IF connection IS NOT NULL AND c.kind <> 'http' THEN
      RAISE EXCEPTION 'connection "%" is of kind %, not http', connection, c.kind USING ERRCODE = '22023';
    END IF;
  ELSIF dispatch = 'airflow' THEN
    IF connection IS NULL OR c.kind <> 'airflow' OR target IS NULL OR endpoint IS NOT NULL THEN
      RAISE EXCEPTION 'an airflow job needs an airflow connection and a target (the DAG id), and no endpoint'
        USING ERRCODE = '22023';
    END IF;
  END IF;
  IF target IS NOT NULL AND target !~ '^[A-Za-z0-9_./-]{1,250}$' THEN
    RAISE EXCEPTION 'invalid target "%"', left(target, 64)
      USING ERRCODE = '22023', HINT = 'A DAG id or a URL path: letters, digits, "_", ".", "/" and "-".';
  END IF;
  IF params IS NULL OR jsonb_typeof(params) <> 'object' THEN
    RAISE EXCEPTION 'params must %', CASE WHEN params IS NULL THEN 'not be NULL' ELSE 'be a JSON object' END
      USING ERRCODE = CASE WHEN params IS NULL THEN '22004' ELSE '22023' END, HINT = 'Pass ''{}'' for none.';
  END IF;
  IF secret_params IS NULL THEN
    RAISE EXCEPTION 'secret_params must not be NULL' USING ERRCODE = '22004', HINT = 'Pass ''{}'' for none.';
  END IF;
  PERFORM dataflow._check_secret_params(secret_params);
  IF pool IS NOT NULL THEN
    SELECT id INTO p FROM dataflow.pool pl WHERE pl.name = create_job.pool;
    IF NOT FOUND THEN
      PERFORM dataflow._not_found('pool', pool, 'create it with dataflow.create_pool(name, slots).');
    END IF;
  END IF;
  IF max_attempts IS NULL OR backoff_min IS NULL OR backoff_max IS NULL OR lease_for IS NULL THEN
    RAISE EXCEPTION '% must not be NULL', CASE WHEN max_attempts IS NULL THEN 'max_attempts'
      WHEN backoff_min IS NULL THEN 'backoff_min' WHEN backoff_max IS NULL THEN 'backoff_max' ELSE 'lease_for' END
      USING ERRCODE = '22004', HINT = 'Leave it out for the default.';
  END IF;
  IF max_concurrency < 0 OR max_attempts IS NULL OR max_attempts < 1 THEN
    RAISE EXCEPTION 'max_concurrency must be >= 0 (or NULL: unlimited) and max_attempts >= 1'
      USING ERRCODE = CASE WHEN max_attempts IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF backoff_min IS NULL OR backoff_max IS NULL OR backoff_min < interval '0' OR backoff_max < backoff_min THEN
    RAISE EXCEPTION 'backoff needs 0 <= backoff_min <= backoff_max'
      USING ERRCODE = CASE WHEN backoff_min IS NULL OR backoff_max IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF lease_for IS NULL OR lease_for <= interval '0' THEN
    RAISE EXCEPTION 'lease_for must be positive'
      USING ERRCODE = CASE WHEN lease_for IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF priority IS NULL THEN
    RAISE EXCEPTION 'priority must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF batch_max_rows <= 0 THEN
    RAISE EXCEPTION 'batch_max_rows must be positive (got %)', batch_max_rows
      USING ERRCODE = '22023', HINT = 'Give the most input rows one batch may take, or NULL for no cap.';
  END IF;
  IF EXISTS (SELECT FROM dataflow.job j WHERE j.name = create_job.name) THEN
    RAISE EXCEPTION 'job "%" already exists', name USING ERRCODE = '42710';
  END IF;
  SELECT j.name INTO other FROM dataflow.job j WHERE j.output_id = d;
  IF FOUND THEN
    RAISE EXCEPTION 'dataset "%" is already produced by job "%"', output, other
      USING ERRCODE = '42710', HINT = 'A dataset has at most one producing job.';
  END IF;
  INSERT INTO dataflow.job (name, output_id, dispatch, connection_id, target, endpoint, params, pool_id,
                            max_concurrency, max_attempts, backoff_min, backoff_max, lease_for, priority,
                            batch_max_rows)
  VALUES (name, d, dispatch, c.id, target, endpoint, params, p,
          max_concurrency, max_attempts, backoff_min, backoff_max, lease_for, priority, batch_max_rows)
  RETURNING id INTO v;
  IF secret_params <> '{}' THEN
    INSERT INTO dataflow.job_secret (job_id, params) VALUES (v, secret_params);
  END IF;
  PERFORM dataflow._job_created(v);   -- its history, and a dataset with chunks adopted (24_change.sql)
  RETURN v;
END $$;
COMMENT ON FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer,
                                        interval, interval, interval, integer, bigint, jsonb) IS
  'Define the job producing a dataset: dispatch (pull, http, airflow), connection/target or endpoint, '
  'params, pool, max_concurrency, max_attempts, backoff_min/max, lease_for, priority, batch_max_rows '
  '(an incremental job''s cap on a batch''s input rows), secret_params (merged over params in every task, '
  'never shown); returns its id';
ALTER FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint, jsonb) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint, jsonb) TO dataflow_admin;

-- 40_work (issue 16 part 1): resubmit(..., reason) records the operator's reason.
DROP FUNCTION dataflow.resubmit(text, text, text, boolean, boolean);
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
ALTER FUNCTION dataflow.resubmit(text, text, text, boolean, boolean, text) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.resubmit(text, text, text, boolean, boolean, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.resubmit(text, text, text, boolean, boolean, text) TO dataflow_operator;

-- 45_lease (issue 16 part 1): a run records its job's definition version.
DROP FUNCTION dataflow.lease(text, text, integer, interval);
CREATE FUNCTION dataflow.lease(job text, worker text, max_chunks integer DEFAULT 1,
                               lease_for interval DEFAULT NULL)
RETURNS SETOF dataflow.task
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off
-- index probes whatever the statistics said when this session made its plans (docs/internals.md, "Planner settings")
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_mergejoin = off SET enable_hashjoin = off
-- every statement below has a cheap index-probe generic plan; custom plans cost
-- ~1 ms of planning per statement per call (measured), more than executing them
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  ids bigint[];
  run_ids bigint[];
  has_latest boolean;
  j dataflow.job := dataflow._job(job);
  n integer := max_chunks;
  lf interval;
  ds dataflow.dataset;
  slots integer;
  incremental boolean;
  batch_from text[];
  latest bigint[];
  li record;
  lid bigint;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    PERFORM dataflow._read_committed();   -- raises (00_schema.sql)
  END IF;
  IF worker IS NULL OR max_chunks IS NULL THEN
    RAISE EXCEPTION '% must not be NULL', CASE WHEN worker IS NULL THEN 'worker' ELSE 'max_chunks' END
      USING ERRCODE = '22004', HINT = 'lease(job, worker, max_chunks): worker names who takes the chunks, max_chunks how many (1-1000).';
  END IF;
  IF worker = '' OR length(worker) > 200 OR worker ~ '[[:cntrl:]]' THEN
    RAISE EXCEPTION 'worker must be a printable name of 1-200 characters' USING ERRCODE = '22023';
  END IF;
  IF max_chunks < 1 OR max_chunks > 1000 THEN
    RAISE EXCEPTION 'max_chunks must be between 1 and 1000, not %', max_chunks USING ERRCODE = '22023';
  END IF;
  lf := coalesce(lease_for, j.lease_for);
  IF lf <= interval '0' THEN
    RAISE EXCEPTION 'lease_for must be positive' USING ERRCODE = '22023';
  END IF;
  IF j.paused THEN
    RETURN;
  END IF;
  -- The output dataset, and the shape of the inputs (any incremental, any latest) as
  -- index probes: no aggregate to set up on every call.
  SELECT * INTO ds FROM dataflow.dataset WHERE id = j.output_id;
  SELECT EXISTS (SELECT FROM dataflow.job_input ji WHERE ji.job_id = j.id AND ji.mapping = 'incremental'),
         EXISTS (SELECT FROM dataflow.job_input ji WHERE ji.job_id = j.id AND ji.mapping = 'latest')
    INTO incremental, has_latest;
  IF incremental THEN
    SELECT array_agg(ids.name) INTO batch_from
      FROM dataflow.job_input ji JOIN dataflow.dataset ids ON ids.id = ji.dataset_id
     WHERE ji.job_id = j.id AND ji.mapping = 'incremental';
    PERFORM dataflow._cut_batch(j.id);
  END IF;
  -- Limits are counted from live leases. The advisory lock serializes the
  -- count-then-lease of limited jobs and pools; unlimited jobs take none.
  IF j.max_concurrency IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(7401, j.id);
    n := least(n, j.max_concurrency -
                  (SELECT count(*) FROM dataflow.run r WHERE r.job_id = j.id AND r.status = 'running')::integer);
  END IF;
  IF j.pool_id IS NOT NULL AND n > 0 THEN
    PERFORM pg_advisory_xact_lock(7402, j.pool_id);
    SELECT p.slots INTO slots FROM dataflow.pool p WHERE p.id = j.pool_id;
    n := least(n, slots -
                  (SELECT count(*) FROM dataflow.run r WHERE r.pool_id = j.pool_id AND r.status = 'running')::integer);
  END IF;
  IF n <= 0 THEN
    RETURN;
  END IF;
  -- Ready: the newest available chunk of each `latest` input, share-locked until commit
  -- so that a resubmit or invalidation of it cannot commit between this choice and the
  -- lineage below. Never waited for (NOWAIT): this call already holds the limit locks
  -- (7401, 7402, and 7406 from the batch cut), which others take after a chunk lock, and
  -- an operator's open transaction on the input must not stall every job of the pool.
  -- When that chunk is busy, or an input has no available chunk (its only one was
  -- resubmitted or invalidated after the consumers were queued), the job is held back
  -- for this call.
  IF has_latest THEN
    FOR li IN SELECT jl.dataset_id, jl.need FROM dataflow.job_input jl JOIN dataflow.dataset ld ON ld.id = jl.dataset_id
               WHERE jl.job_id = j.id AND jl.mapping = 'latest' ORDER BY ld.rank, jl.dataset_id LOOP
      lid := NULL;
      BEGIN
        SELECT x.id INTO lid FROM dataflow.chunk x
         WHERE x.dataset_id = li.dataset_id AND dataflow._level(x.status) >= li.need
         ORDER BY x.ord DESC NULLS LAST, x.available_at DESC
         LIMIT 1
           FOR SHARE NOWAIT;
      EXCEPTION WHEN lock_not_available THEN
        RETURN;
      END;
      IF lid IS NULL THEN
        RETURN;
      END IF;
      latest := latest || lid;
    END LOOP;
  END IF;

  -- Claim, then one small statement per table: each keeps a cheap generic plan
  -- (the single 6-CTE statement was re-planned on every call).
  ids := dataflow._claim(j.output_id, n);
  IF ids IS NULL THEN
    RETURN;
  END IF;
  -- run ids follow the claim (queue) order, whatever the rows' physical order
  WITH u AS (
    UPDATE dataflow.chunk c
       SET status = 'running', attempts = c.attempts + 1, run_id = r.run_id, updated_at = now()
      FROM (SELECT u.id, nextval('dataflow.run_id_seq') AS run_id
              FROM unnest(ids) WITH ORDINALITY AS u(id, o) ORDER BY u.o) r
     WHERE c.id = r.id
    RETURNING c.run_id)
  SELECT array_agg(u.run_id) INTO run_ids FROM u;
  -- The definition version read now, after the claim: a change of the job's inputs holds
  -- every chunk of the output while it rebuilds their edges, so it committed before the
  -- claim (and this statement sees its version) or it waits for this transaction (and the
  -- run keeps the version it was leased with, as the edges read below).
  INSERT INTO dataflow.run (id, job_id, pool_id, chunk_id, version, attempt, worker, status, deadline,
                            output_location, definition_version)
  SELECT c.run_id, j.id, j.pool_id, c.id, c.version, c.attempts, worker, 'running', clock_timestamp() + lf,
         dataflow._location(ds.location, ds.name, c.key, c.version),
         (SELECT jb.definition_version FROM dataflow.job jb WHERE jb.id = j.id)
    FROM dataflow.chunk c WHERE c.id = ANY (ids);
  INSERT INTO dataflow.run_input (run_id, chunk_id, version)
  SELECT c.run_id, dp.input, ic.version
    FROM dataflow.chunk c JOIN dataflow.dep dp ON dp.consumer = c.id JOIN dataflow.chunk ic ON ic.id = dp.input
   WHERE c.id = ANY (ids);
  IF has_latest THEN
    INSERT INTO dataflow.run_input (run_id, chunk_id, version)
    SELECT c.run_id, lc.id, lc.version
      FROM dataflow.chunk c CROSS JOIN dataflow.chunk lc
     WHERE c.id = ANY (ids) AND lc.id = ANY (latest);
  END IF;
  INSERT INTO dataflow.event (dataset_id, chunk_id, key, run_id, version, from_status, to_status, actor)
  SELECT j.output_id, c.id, c.key, c.run_id, c.version, 'queued', 'running', worker
    FROM dataflow.chunk c WHERE c.id = ANY (ids);
  RETURN QUERY
  SELECT r.id, r.token, j.name, ds.name, c.key, c.version, c.attempts, r.output_location,
         coalesce((SELECT jsonb_agg(jsonb_build_object('dataset', ids2.name, 'key', ic.key, 'version', ri.version,
                                                       'location', ic.location, 'row_count', ic.row_count,
                                                       'checksum', ic.checksum)
                                    ORDER BY ids2.name, ic.ord, ic.key)
                     FROM dataflow.run_input ri JOIN dataflow.chunk ic ON ic.id = ri.chunk_id
                     JOIN dataflow.dataset ids2 ON ids2.id = ic.dataset_id
                    WHERE ri.run_id = r.id), '[]'::jsonb),
         dataflow._with_secrets(CASE WHEN incremental THEN j.params || dataflow._batch_params(r.id, c.key, batch_from)
              ELSE j.params END, (SELECT s.params FROM dataflow.job_secret s WHERE s.job_id = j.id)),
         r.deadline
    FROM dataflow.chunk c JOIN dataflow.run r ON r.id = c.run_id
   -- both sides restricted by key arrays, so any join order probes an index: the
   -- generic plan made while run was empty must not walk all of run_pkey
   WHERE c.id = ANY (ids) AND r.id = ANY (run_ids)
   ORDER BY r.id;
END $$;
COMMENT ON FUNCTION dataflow.lease(text, text, integer, interval) IS
  'Lease up to max_chunks runnable chunks of a job for a worker: returns one task per chunk with its '
  'token, inputs (exact versions and locations), params (the job''s secret params merged in), output location '
  'and deadline; empty when nothing is runnable';
ALTER FUNCTION dataflow.lease(text, text, integer, interval) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.lease(text, text, integer, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.lease(text, text, integer, interval) TO dataflow_worker;

-- 55_questions (issue 16 part 1): explain's correct row names a chunk an older definition built.
DROP FUNCTION dataflow.explain(text, text);
CREATE FUNCTION dataflow.explain(dataset text, key text)
RETURNS TABLE(question text, ok boolean, evidence text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c dataflow.chunk := dataflow._chunk(dataset, key);
  d dataflow.dataset;
  j dataflow.job;
  r dataflow.run;
  live dataflow.run;
  stale text; inputs text; readers text; n_readers integer; avail boolean;
BEGIN
  SELECT * INTO d FROM dataflow.dataset ds WHERE ds.id = c.dataset_id;
  SELECT * INTO j FROM dataflow.job jb WHERE jb.output_id = d.id;
  SELECT * INTO r FROM dataflow.run rn WHERE rn.id = c.run_id;
  SELECT * INTO live FROM dataflow.run rn WHERE rn.chunk_id = c.id AND rn.status = 'running' LIMIT 1;
  avail := dataflow._level(c.status) > 0;

  question := 'ready';
  ok := avail;
  evidence := 'status ' || c.status || ' since ' || to_char(c.updated_at, 'YYYY-MM-DD HH24:MI:SS TZ')
    || ', version ' || c.version
    || CASE
         WHEN c.status IN ('ready', 'validated') AND r.id IS NOT NULL THEN
           ', produced by run ' || r.id || ' (job ' || coalesce(j.name, '?') || ', worker ' || r.worker || ')'
         WHEN c.status IN ('ready', 'validated') THEN ', registered as a source chunk'
         WHEN c.status = 'skipped' THEN ', declared empty: ' || coalesce(c.info ->> 'skip_reason', '')
         WHEN c.status = 'waiting' AND j.id IS NULL THEN ', source chunk not registered yet (dataflow.register)'
         WHEN c.status = 'waiting' THEN ', ' || c.unmet || ' input(s) not available yet (see dataflow.blockers)'
         WHEN c.status = 'queued' THEN ', ' || dataflow._queued_reason(c.id)
         WHEN c.status = 'running' THEN ', leased by ' || coalesce(live.worker, '?') || ' until '
                                         || coalesce(to_char(live.deadline, 'HH24:MI:SS'), '?')
         WHEN c.status = 'failed' THEN ' after ' || c.attempts || ' attempt(s): ' || coalesce(c.error, '')
         WHEN c.status = 'invalid' THEN ', validation failed: ' || coalesce((c.validation -> 'report')::text, '')
         WHEN c.status = 'cancelled' THEN ', cancelled by an operator'
         ELSE '' END;
  RETURN NEXT;

  -- Correct: expected key, current version, and built from the inputs' current versions.
  SELECT string_agg(dataflow._chunk_name(ri.chunk_id) || ' read v' || ri.version || ', now v' || ic.version
                    || ' ' || ic.status, '; ' ORDER BY ri.chunk_id)
    INTO stale
    FROM dataflow.run_input ri JOIN dataflow.chunk ic ON ic.id = ri.chunk_id
   WHERE ri.run_id = r.id AND (ic.version <> ri.version OR dataflow._level(ic.status) = 0);
  SELECT count(*) || ' input chunk(s), all at the versions read' INTO inputs
    FROM dataflow.run_input ri WHERE ri.run_id = r.id;
  question := 'correct';
  IF NOT avail THEN
    ok := false;
    evidence := 'version ' || c.version || ' is not produced yet';
  ELSIF c.status = 'skipped' THEN
    ok := true;
    evidence := 'key ' || c.key || ' is declared empty at version ' || c.version;
  ELSIF j.id IS NULL THEN
    ok := true;
    evidence := 'key ' || c.key || ', version ' || c.version || ' of source dataset ' || d.name;
  ELSIF stale IS NOT NULL THEN
    ok := false;
    evidence := 'stale: version ' || c.version || ' was built from inputs re-produced since: ' || stale;
  ELSIF c.status IN ('ready', 'validated') AND dataflow._built_version(c.run_id) < j.definition_version THEN
    -- Built by an older definition of the job (24_change.sql): say which, and what changed.
    ok := false;
    evidence := 'outdated: version ' || c.version || CASE WHEN r.id IS NULL
                  THEN ' was registered before job ' || j.name || ' produced ' || d.name || ' (definition version 0)'
                  ELSE ' was built by run ' || r.id || ' with definition version ' || dataflow._built_version(c.run_id)
                       || ' of job ' || j.name END
                || '; the definition is at version ' || j.definition_version || ' since '
                || (SELECT string_agg('v' || jd.version || ' (' || to_char(jd.changed_at, 'YYYY-MM-DD HH24:MI:SS TZ')
                                      || ') ' || jd.change::text, ', ' ORDER BY jd.version)
                      FROM dataflow.job_definition jd
                     WHERE jd.job_id = j.id AND jd.version > dataflow._built_version(c.run_id))
                || '; resubmit it to rebuild (dataflow.outdated lists every such chunk)';
  ELSE
    ok := true;
    evidence := 'key ' || c.key || ', version ' || c.version || ' built by run ' || coalesce(r.id::text, '?')
                || ' from ' || inputs;
  END IF;
  RETURN NEXT;

  question := 'location';
  ok := c.location IS NOT NULL AND avail;
  evidence := CASE
    WHEN c.location IS NOT NULL AND avail THEN c.location
    WHEN c.status = 'skipped' THEN 'declared empty: no data to locate'
    WHEN d.location IS NOT NULL THEN 'not produced yet; will be '
         || dataflow._location(d.location, d.name, c.key, c.version)
    ELSE 'no location recorded and dataset ' || d.name || ' has no location template' END;
  RETURN NEXT;

  question := 'validated';
  ok := c.status IN ('validated', 'skipped') OR (c.status = 'ready' AND NOT d.requires_validation);
  evidence := CASE
    WHEN c.status = 'validated' THEN 'passed at ' || to_char((c.validation ->> 'at')::timestamptz, 'YYYY-MM-DD HH24:MI:SS TZ')
         || ' by ' || (c.validation ->> 'by') || ': ' || (c.validation -> 'report')::text
    WHEN c.status = 'invalid' THEN 'FAILED validation by ' || (c.validation ->> 'by') || ': '
         || (c.validation -> 'report')::text
    WHEN c.status = 'skipped' THEN 'declared empty'
    WHEN NOT d.requires_validation THEN 'dataset ' || d.name || ' does not require validation'
    ELSE 'dataset ' || d.name || ' requires validation; not validated yet' END;
  RETURN NEXT;

  -- Safe: no writer holds it, and readers hold it against re-production.
  -- Readers: live runs that read it, and runs a resubmit superseded whose process has not
  -- ended (they hold it until they end, or reap() expires them, as lease() counts them).
  SELECT count(*), string_agg('run ' || rr.id || ' (' || rr.worker
                              || CASE WHEN rr.status = 'superseded' THEN ', superseded, still reading' ELSE '' END
                              || ')', ', ' ORDER BY rr.id)
    INTO n_readers, readers
    FROM dataflow.run_input ri JOIN dataflow.run rr ON rr.id = ri.run_id
   WHERE ri.chunk_id = c.id AND rr.finished_at IS NULL AND rr.status IN ('running', 'superseded');
  question := 'safe';
  ok := avail AND live.id IS NULL;
  evidence := CASE
    WHEN live.id IS NOT NULL THEN 'a writer holds it: run ' || live.id || ' (' || live.worker || ') is producing version '
         || live.version
    WHEN NOT avail THEN 'not available: it will be (re)produced'
    ELSE 'no writer' END
    || CASE WHEN n_readers > 0 THEN '; ' || n_readers || ' reader(s) hold it against re-production: ' || readers
            ELSE '; no readers' END;
  RETURN NEXT;
END $$;
COMMENT ON FUNCTION dataflow.explain(text, text) IS
  'The five questions for a chunk, in order ready, correct, location, validated, safe: '
  'each with ok and the evidence from the tables';
ALTER FUNCTION dataflow.explain(text, text) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.explain(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.explain(text, text) TO dataflow_reader;

-- ==== 10_model, 20_define, 22_jobs, 60_bi_views, 70_worker: issue 15 item 2 (the Prefect
-- adapter, docs/engines.md): connection kind and dispatch 'prefect'; create_connection takes
-- a prefect connection (auth none or bearer, no api_version), create_job a prefect job (a
-- deployment id or flow-name/deployment-name target); the worker's claim, job list and due
-- time include prefect jobs, _worker_prefect_runs lists their runs for the follower (with
-- the chunk version's idempotency key), _worker_airflow_runs lists Airflow runs only, and
-- _worker_record stores the flow run id and state.
ALTER TABLE dataflow.connection DROP CONSTRAINT connection_kind_check,
  ADD CONSTRAINT connection_kind_check CHECK (kind IN ('http', 'airflow', 'prefect'));
ALTER TABLE dataflow.job DROP CONSTRAINT job_dispatch_check,
  ADD CONSTRAINT job_dispatch_check CHECK (dispatch IN ('pull', 'http', 'airflow', 'prefect'));
COMMENT ON COLUMN dataflow.jobs.dispatch IS 'pull, http, airflow or prefect';
DROP FUNCTION dataflow.create_connection(text, text, text, text, text, text, integer, interval, interval);
CREATE FUNCTION dataflow.create_connection(
  name text, kind text, base_url text,
  auth text DEFAULT 'none', username text DEFAULT NULL, secret text DEFAULT NULL,
  api_version integer DEFAULT NULL,
  connect_timeout interval DEFAULT '5 seconds', timeout interval DEFAULT '30 seconds')
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE v integer;
BEGIN
  PERFORM dataflow._check_name('connection', name);
  IF kind IS NULL THEN
    RAISE EXCEPTION 'kind must not be NULL' USING ERRCODE = '22004', HINT = 'Connection kinds are http, airflow and prefect.';
  END IF;
  IF base_url IS NULL THEN
    RAISE EXCEPTION 'base_url must not be NULL' USING ERRCODE = '22004', HINT = 'An http:// or https:// URL without credentials in it.';
  END IF;
  IF auth IS NULL THEN
    RAISE EXCEPTION 'auth must not be NULL' USING ERRCODE = '22004', HINT = 'auth is none, basic or bearer.';
  END IF;
  IF connect_timeout IS NULL OR timeout IS NULL THEN
    RAISE EXCEPTION '% must not be NULL', CASE WHEN connect_timeout IS NULL THEN 'connect_timeout' ELSE 'timeout' END
      USING ERRCODE = '22004', HINT = 'Leave it out for the default (connect_timeout 5 seconds, timeout 30 seconds).';
  END IF;
  IF kind NOT IN ('http', 'airflow', 'prefect') THEN
    RAISE EXCEPTION 'invalid connection kind "%"', coalesce(kind, 'NULL')
      USING ERRCODE = CASE WHEN kind IS NULL THEN '22004' ELSE '22023' END, HINT = 'Connection kinds are http, airflow and prefect.';
  END IF;
  IF base_url IS NULL OR base_url !~ '^https?://[^\s/?#@]+(/[^\s]*)?$' OR base_url ~ '[\r\n]' THEN
    RAISE EXCEPTION 'invalid base_url "%"', coalesce(left(base_url, 200), 'NULL')
      USING ERRCODE = CASE WHEN base_url IS NULL THEN '22004' ELSE '22023' END, HINT = 'An http:// or https:// URL without credentials in it.';
  END IF;
  IF auth IS NULL OR auth NOT IN ('none', 'basic', 'bearer') THEN
    RAISE EXCEPTION 'invalid auth "%"', coalesce(auth, 'NULL')
      USING ERRCODE = CASE WHEN auth IS NULL THEN '22004' ELSE '22023' END, HINT = 'auth is none, basic or bearer.';
  END IF;
  IF auth = 'basic' AND (username IS NULL OR secret IS NULL) THEN
    RAISE EXCEPTION 'basic auth needs a username and a secret' USING ERRCODE = '22023';
  END IF;
  IF auth = 'bearer' AND secret IS NULL THEN
    RAISE EXCEPTION 'bearer auth needs a secret' USING ERRCODE = '22023';
  END IF;
  IF username ~ '[\r\n:]' OR secret ~ '[\r\n]' THEN
    RAISE EXCEPTION 'username and secret must not contain line breaks (or ":" in a username)'
      USING ERRCODE = '22023';
  END IF;
  IF kind = 'prefect' AND auth NOT IN ('none', 'bearer') THEN
    RAISE EXCEPTION 'a prefect connection takes auth none or bearer, not %', auth USING ERRCODE = '22023',
      HINT = 'Self-hosted Prefect servers take none; Prefect Cloud takes bearer with the API key as secret.';
  END IF;
  IF kind = 'airflow' THEN
    api_version := coalesce(api_version, 1);
  ELSIF kind = 'prefect' AND api_version IS NOT NULL THEN
    RAISE EXCEPTION 'api_version is for airflow connections, not prefect' USING ERRCODE = '22023',
      HINT = 'Leave api_version out: the Prefect 2 and 3 REST APIs are the same for what the worker calls.';
  END IF;
  IF api_version IS NOT NULL AND api_version NOT IN (1, 2) THEN
    RAISE EXCEPTION 'api_version must be 1 or 2' USING ERRCODE = '22023';
  END IF;
  IF connect_timeout IS NULL OR timeout IS NULL OR connect_timeout <= interval '0' OR timeout <= interval '0' THEN
    RAISE EXCEPTION 'timeouts must be positive'
      USING ERRCODE = CASE WHEN connect_timeout IS NULL OR timeout IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  -- The worker counts them in milliseconds (an integer); these bounds also hold in the table.
  IF connect_timeout > interval '1 hour' THEN
    RAISE EXCEPTION 'connect_timeout % is too long', connect_timeout USING ERRCODE = '22023',
      HINT = 'At most 1 hour: a connection that takes longer to open is not coming.';
  END IF;
  IF timeout > interval '24 hours' THEN
    RAISE EXCEPTION 'timeout % is too long', timeout USING ERRCODE = '22023',
      HINT = 'At most 24 hours per request; an engine that works longer should answer 202 and report back '
             'with dataflow.heartbeat() and dataflow.complete().';
  END IF;
  IF EXISTS (SELECT FROM dataflow.connection c WHERE c.name = create_connection.name) THEN
    RAISE EXCEPTION 'connection "%" already exists', name USING ERRCODE = '42710';
  END IF;
  INSERT INTO dataflow.connection (name, kind, base_url, auth, username, secret, api_version,
                                   connect_timeout, timeout)
  VALUES (name, kind, base_url, auth, username, secret, api_version, connect_timeout, timeout)
  RETURNING id INTO v;
  RETURN v;
END $$;
COMMENT ON FUNCTION dataflow.create_connection(text, text, text, text, text, text, integer, interval, interval) IS
  'Define an engine endpoint (http, airflow or prefect) shared by jobs; the secret is readable by the admin role only';
ALTER FUNCTION dataflow.create_connection(text, text, text, text, text, text, integer, interval, interval) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.create_connection(text, text, text, text, text, text, integer, interval, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.create_connection(text, text, text, text, text, text, integer, interval, interval) TO dataflow_admin;
DROP FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint, jsonb);
CREATE FUNCTION dataflow.create_job(
  name text,
  output text,
  dispatch text DEFAULT 'pull',
  connection text DEFAULT NULL,
  target text DEFAULT NULL,
  endpoint text DEFAULT NULL,
  params jsonb DEFAULT '{}',
  pool text DEFAULT NULL,
  max_concurrency integer DEFAULT NULL,
  max_attempts integer DEFAULT 3,
  backoff_min interval DEFAULT '10 seconds',
  backoff_max interval DEFAULT '10 minutes',
  lease_for interval DEFAULT '5 minutes',
  priority integer DEFAULT 0,
  batch_max_rows bigint DEFAULT NULL,
  secret_params jsonb DEFAULT '{}')
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d integer; c dataflow.connection; p integer; v integer; other text;
BEGIN
  PERFORM dataflow._check_name('job', name);
  IF output IS NULL THEN
    PERFORM dataflow._raise('22004', 'output must not be NULL', NULL,
                            'Pass the dataset the job produces: output => dataset.');
  END IF;
  d := dataflow._dataset_id(output);
  IF dispatch IS NULL THEN
    RAISE EXCEPTION 'dispatch must not be NULL' USING ERRCODE = '22004',
      HINT = 'dispatch is pull (workers call lease), http, airflow or prefect.';
  END IF;
  IF dispatch NOT IN ('pull', 'http', 'airflow', 'prefect') THEN
    RAISE EXCEPTION 'invalid dispatch "%"', coalesce(dispatch, 'NULL')
      USING ERRCODE = CASE WHEN dispatch IS NULL THEN '22004' ELSE '22023' END, HINT = 'dispatch is pull (workers call lease), http, airflow or prefect.';
  END IF;
  IF connection IS NOT NULL THEN
    SELECT * INTO c FROM dataflow.connection cn WHERE cn.name = create_job.connection;
    IF NOT FOUND THEN
      PERFORM dataflow._not_found('connection', connection,
        'create it with dataflow.create_connection(name, kind, base_url).');
    END IF;
  END IF;
  IF dispatch = 'pull' AND (connection IS NOT NULL OR endpoint IS NOT NULL OR target IS NOT NULL) THEN
    RAISE EXCEPTION 'a pull job takes no connection, target or endpoint' USING ERRCODE = '22023';
  ELSIF dispatch = 'http' THEN
    IF (endpoint IS NULL) = (connection IS NULL) THEN
      RAISE EXCEPTION 'an http job needs either endpoint or connection (with target), not both'
        USING ERRCODE = '22023';
    END IF;
    IF endpoint IS NOT NULL AND (endpoint !~ '^https?://[^\s/?#@]+(/[^\s]*)?$' OR endpoint ~ '[\r\n]') THEN
      RAISE EXCEPTION 'invalid endpoint "%"', left(endpoint, 200)
        USING ERRCODE = '22023', HINT = 'An http:// or https:// URL without credentials in it.';
    END IF;
    IF connection IS NOT NULL AND c.kind <> 'http' THEN
      RAISE EXCEPTION 'connection "%" is of kind %, not http', connection, c.kind USING ERRCODE = '22023';
    END IF;
  ELSIF dispatch = 'airflow' THEN
    IF connection IS NULL OR c.kind <> 'airflow' OR target IS NULL OR endpoint IS NOT NULL THEN
      RAISE EXCEPTION 'an airflow job needs an airflow connection and a target (the DAG id), and no endpoint'
        USING ERRCODE = '22023';
    END IF;
  ELSIF dispatch = 'prefect' THEN
    IF connection IS NULL OR c.kind <> 'prefect' OR target IS NULL OR endpoint IS NOT NULL THEN
      RAISE EXCEPTION 'a prefect job needs a prefect connection and a target (the deployment), and no endpoint'
        USING ERRCODE = '22023';
    END IF;
    -- The forms the worker sends (src/core/prefect.h): a deployment id, or the names
    -- GET /deployments/name/{flow}/{deployment} resolves; Prefect refuses / % & < > in names.
    IF target !~ '^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$'
       AND target !~ '^[^/%&<>[:cntrl:]]{1,200}/[^/%&<>[:cntrl:]]{1,200}$' THEN
      RAISE EXCEPTION 'invalid Prefect target "%"', left(target, 64)
        USING ERRCODE = '22023',
              HINT = 'A deployment id (UUID) or flow-name/deployment-name, as in prefect deployment run.';
    END IF;
  END IF;
  IF target IS NOT NULL AND dispatch <> 'prefect' AND target !~ '^[A-Za-z0-9_./-]{1,250}$' THEN
    RAISE EXCEPTION 'invalid target "%"', left(target, 64)
      USING ERRCODE = '22023', HINT = 'A DAG id or a URL path: letters, digits, "_", ".", "/" and "-".';
  END IF;
  IF params IS NULL OR jsonb_typeof(params) <> 'object' THEN
    RAISE EXCEPTION 'params must %', CASE WHEN params IS NULL THEN 'not be NULL' ELSE 'be a JSON object' END
      USING ERRCODE = CASE WHEN params IS NULL THEN '22004' ELSE '22023' END, HINT = 'Pass ''{}'' for none.';
  END IF;
  IF secret_params IS NULL THEN
    RAISE EXCEPTION 'secret_params must not be NULL' USING ERRCODE = '22004', HINT = 'Pass ''{}'' for none.';
  END IF;
  PERFORM dataflow._check_secret_params(secret_params);
  IF pool IS NOT NULL THEN
    SELECT id INTO p FROM dataflow.pool pl WHERE pl.name = create_job.pool;
    IF NOT FOUND THEN
      PERFORM dataflow._not_found('pool', pool, 'create it with dataflow.create_pool(name, slots).');
    END IF;
  END IF;
  IF max_attempts IS NULL OR backoff_min IS NULL OR backoff_max IS NULL OR lease_for IS NULL THEN
    RAISE EXCEPTION '% must not be NULL', CASE WHEN max_attempts IS NULL THEN 'max_attempts'
      WHEN backoff_min IS NULL THEN 'backoff_min' WHEN backoff_max IS NULL THEN 'backoff_max' ELSE 'lease_for' END
      USING ERRCODE = '22004', HINT = 'Leave it out for the default.';
  END IF;
  IF max_concurrency < 0 OR max_attempts IS NULL OR max_attempts < 1 THEN
    RAISE EXCEPTION 'max_concurrency must be >= 0 (or NULL: unlimited) and max_attempts >= 1'
      USING ERRCODE = CASE WHEN max_attempts IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF backoff_min IS NULL OR backoff_max IS NULL OR backoff_min < interval '0' OR backoff_max < backoff_min THEN
    RAISE EXCEPTION 'backoff needs 0 <= backoff_min <= backoff_max'
      USING ERRCODE = CASE WHEN backoff_min IS NULL OR backoff_max IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF lease_for IS NULL OR lease_for <= interval '0' THEN
    RAISE EXCEPTION 'lease_for must be positive'
      USING ERRCODE = CASE WHEN lease_for IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF priority IS NULL THEN
    RAISE EXCEPTION 'priority must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF batch_max_rows <= 0 THEN
    RAISE EXCEPTION 'batch_max_rows must be positive (got %)', batch_max_rows
      USING ERRCODE = '22023', HINT = 'Give the most input rows one batch may take, or NULL for no cap.';
  END IF;
  IF EXISTS (SELECT FROM dataflow.job j WHERE j.name = create_job.name) THEN
    RAISE EXCEPTION 'job "%" already exists', name USING ERRCODE = '42710';
  END IF;
  SELECT j.name INTO other FROM dataflow.job j WHERE j.output_id = d;
  IF FOUND THEN
    RAISE EXCEPTION 'dataset "%" is already produced by job "%"', output, other
      USING ERRCODE = '42710', HINT = 'A dataset has at most one producing job.';
  END IF;
  INSERT INTO dataflow.job (name, output_id, dispatch, connection_id, target, endpoint, params, pool_id,
                            max_concurrency, max_attempts, backoff_min, backoff_max, lease_for, priority,
                            batch_max_rows)
  VALUES (name, d, dispatch, c.id, target, endpoint, params, p,
          max_concurrency, max_attempts, backoff_min, backoff_max, lease_for, priority, batch_max_rows)
  RETURNING id INTO v;
  IF secret_params <> '{}' THEN
    INSERT INTO dataflow.job_secret (job_id, params) VALUES (v, secret_params);
  END IF;
  PERFORM dataflow._job_created(v);   -- its history, and a dataset with chunks adopted (24_change.sql)
  RETURN v;
END $$;
COMMENT ON FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer,
                                        interval, interval, interval, integer, bigint, jsonb) IS
  'Define the job producing a dataset: dispatch (pull, http, airflow, prefect), connection/target or endpoint, '
  'params, pool, max_concurrency, max_attempts, backoff_min/max, lease_for, priority, batch_max_rows '
  '(an incremental job''s cap on a batch''s input rows), secret_params (merged over params in every task, '
  'never shown); returns its id';
ALTER FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint, jsonb) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint, jsonb) TO dataflow_admin;
DROP FUNCTION dataflow._worker_jobs();
DROP FUNCTION dataflow._worker_claim(text, integer);
DROP FUNCTION dataflow._worker_airflow_runs();
DROP FUNCTION dataflow._worker_record(uuid, text, bigint, text, text, text, text, boolean, integer);
DROP FUNCTION dataflow._worker_next_due();
CREATE FUNCTION dataflow._worker_jobs()
RETURNS TABLE (job text, dispatch text, url text, target text, auth text, username text, secret text,
               api_version integer, connect_timeout_ms integer, timeout_ms integer, secret_params text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off
AS $$
BEGIN
  RETURN QUERY
  SELECT j.name, j.dispatch,
         CASE WHEN j.endpoint IS NOT NULL THEN j.endpoint
              WHEN j.dispatch IN ('airflow', 'prefect') THEN c.base_url
              ELSE rtrim(c.base_url, '/') || '/' || ltrim(coalesce(j.target, ''), '/') END,
         j.target, coalesce(c.auth, 'none'), c.username, c.secret, coalesce(c.api_version, 1),
         -- NULL (the worker's GUC) for a value out of the table's bounds, never an overflow
         CASE WHEN c.connect_timeout <= interval '1 hour' THEN (extract(epoch FROM c.connect_timeout) * 1000)::integer END,
         CASE WHEN c.timeout <= interval '24 hours' THEN (extract(epoch FROM c.timeout) * 1000)::integer END,
         (SELECT s.params::text FROM dataflow.job_secret s WHERE s.job_id = j.id)
    FROM dataflow.job j LEFT JOIN dataflow.connection c ON c.id = j.connection_id
   WHERE j.dispatch IN ('http', 'airflow', 'prefect') AND NOT j.paused
     AND (j.endpoint IS NOT NULL OR c.id IS NOT NULL)
     -- due queued chunks, or inputs waiting for an incremental job's next batch (lease() cuts it)
     AND (EXISTS (SELECT FROM dataflow.queue q WHERE q.dataset_id = j.output_id AND q.not_before <= now())
          OR EXISTS (SELECT FROM dataflow.incremental_pending p WHERE p.job_id = j.id))
   ORDER BY j.priority DESC, j.id;
END $$;
CREATE FUNCTION dataflow._worker_claim(p_job text, p_n integer) RETURNS SETOF dataflow.task
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE ts dataflow.task[]; kind text; skipped dataflow.task; secret jsonb; job_params jsonb; jid bigint;
BEGIN
  BEGIN
    SELECT j.id, j.dispatch, j.params INTO jid, kind, job_params FROM dataflow.job j
     WHERE j.name OPERATOR(pg_catalog.=) p_job FOR KEY SHARE;
    IF kind IN ('airflow', 'prefect') THEN
      SELECT s.params INTO secret FROM dataflow.job_secret s WHERE s.job_id OPERATOR(pg_catalog.=) jid;
    END IF;
    SELECT array_agg(l ORDER BY l.run_id) INTO ts FROM dataflow.lease(p_job, 'bgworker', p_n) l;
    IF ts IS NULL THEN
      RETURN;
    END IF;
    IF kind IN ('airflow', 'prefect') THEN
      INSERT INTO dataflow._dispatch (run_id, task)
      SELECT t.run_id, CASE WHEN secret IS NULL OR t.params IS NULL THEN to_jsonb(t)
                            ELSE jsonb_set(to_jsonb(t), '{params}', dataflow._without_secrets(t.params, secret, job_params)) END
        FROM unnest(ts) t;
    END IF;
    IF kind IS DISTINCT FROM 'prefect' THEN
      UPDATE dataflow.run r SET external_id = 'dataflow-' || r.id
       WHERE r.id = ANY (ARRAY(SELECT t.run_id FROM unnest(ts) t));
    END IF;
  EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
    skipped.job := p_job;
    skipped.key := SQLERRM;
    RETURN NEXT skipped;
    RETURN;
  END;
  RETURN QUERY SELECT * FROM unnest(ts) ORDER BY run_id;
END $$;
CREATE FUNCTION dataflow._worker_airflow_runs()
RETURNS TABLE (run_id bigint, token uuid, external_id text, triggered boolean, task text, dag_id text,
               base_url text, auth text, username text, secret text, api_version integer,
               connect_timeout_ms integer, timeout_ms integer, secret_params text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off
AS $$
BEGIN
  RETURN QUERY
  SELECT r.id, r.token, r.external_id, x.triggered,
         CASE WHEN s.params IS NULL THEN x.task
              ELSE jsonb_set(x.task, '{params}', dataflow._with_secrets(coalesce(x.task -> 'params', '{}'), s.params))
         END::text,
         j.target, c.base_url, c.auth, c.username,
         c.secret, coalesce(c.api_version, 1),
         CASE WHEN c.connect_timeout <= interval '1 hour' THEN (extract(epoch FROM c.connect_timeout) * 1000)::integer END,
         CASE WHEN c.timeout <= interval '24 hours' THEN (extract(epoch FROM c.timeout) * 1000)::integer END,
         s.params::text
    FROM dataflow._dispatch x
    JOIN dataflow.run r ON r.id = x.run_id
    JOIN dataflow.job j ON j.id = r.job_id
    JOIN dataflow.connection c ON c.id = j.connection_id
    LEFT JOIN dataflow.job_secret s ON s.job_id = j.id
   WHERE r.status = 'running' AND j.dispatch = 'airflow'
   ORDER BY r.id;
END $$;
CREATE FUNCTION dataflow._worker_prefect_runs()
RETURNS TABLE (run_id bigint, token uuid, external_id text, triggered boolean, task text, target text,
               base_url text, auth text, secret text, connect_timeout_ms integer, timeout_ms integer,
               install_id uuid, chunk_id bigint, version integer, job text, secret_params text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off
AS $$
BEGIN
  RETURN QUERY
  SELECT r.id, r.token, r.external_id, x.triggered,
         CASE WHEN s.params IS NULL THEN x.task
              ELSE jsonb_set(x.task, '{params}', dataflow._with_secrets(coalesce(x.task -> 'params', '{}'), s.params))
         END::text,
         j.target, c.base_url, c.auth, c.secret,
         CASE WHEN c.connect_timeout <= interval '1 hour' THEN (extract(epoch FROM c.connect_timeout) * 1000)::integer END,
         CASE WHEN c.timeout <= interval '24 hours' THEN (extract(epoch FROM c.timeout) * 1000)::integer END,
         (SELECT i.id FROM dataflow.install i), r.chunk_id, r.version, j.name, s.params::text
    FROM dataflow._dispatch x
    JOIN dataflow.run r ON r.id = x.run_id
    JOIN dataflow.job j ON j.id = r.job_id
    JOIN dataflow.connection c ON c.id = j.connection_id
    LEFT JOIN dataflow.job_secret s ON s.job_id = j.id
   WHERE r.status = 'running' AND j.dispatch = 'prefect'
   ORDER BY r.id;
END $$;
CREATE FUNCTION dataflow._worker_record(p_token uuid, p_kind text, p_row_count bigint, p_checksum text,
                                        p_info text, p_location text, p_error text, p_retry boolean,
                                        p_retry_after integer)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off AS $$
DECLARE rid bigint; jname text; rn dataflow.run; pinfo jsonb; st text; since timestamptz; bound interval;
BEGIN
  SELECT r.id INTO rid FROM dataflow.run r WHERE r.token = p_token;
  CASE p_kind
    WHEN 'succeeded' THEN
      PERFORM dataflow.complete(p_token, p_row_count, p_checksum, p_info::jsonb, p_location);
    WHEN 'failed' THEN
      PERFORM dataflow.fail(p_token, p_error, p_retry);
      IF p_info IS NOT NULL AND p_info::jsonb ? 'prefect' THEN  -- the flow run's final state
        UPDATE dataflow.run r SET info = coalesce(r.info, '{}') || p_info::jsonb WHERE r.id = rid;
      END IF;
    WHEN 'retry' THEN
      PERFORM dataflow._fail(p_token, p_error, true, p_retry_after);
    WHEN 'gone' THEN
      PERFORM dataflow.fail(p_token, p_error, false);
      UPDATE dataflow.job j SET paused = true
        FROM dataflow.run r
       WHERE r.id = rid AND j.id = r.job_id AND NOT j.paused
      RETURNING j.name INTO jname;
      IF FOUND THEN
        INSERT INTO dataflow.event (to_status, actor, detail)
        VALUES ('paused', 'bgworker', jsonb_build_object('job', jname, 'was_paused', false, 'reason', p_error));
        RAISE WARNING 'pg_dataflow worker: job "%" paused: its endpoint answered 410 Gone', jname
          USING HINT = 'Fix the endpoint, then dataflow.resume_job(''' || jname || ''') and resubmit the failed chunk.';
      END IF;
    WHEN 'pending' THEN
      pinfo := p_info::jsonb;
      IF pinfo ? 'prefect' THEN
        SELECT * INTO rn FROM dataflow.run x WHERE x.id = rid;
        IF rn.external_id IS NULL AND pinfo -> 'prefect' ->> 'flow_run_id' IS NOT NULL THEN
          -- The chunk's lock first (the order of _live_run): a cancel either committed
          -- before (seen below) or waits, and then finds the flow run id.
          PERFORM FROM dataflow.chunk c WHERE c.id = rn.chunk_id FOR UPDATE;
          UPDATE dataflow.run x SET external_id = pinfo -> 'prefect' ->> 'flow_run_id',
                                    info = coalesce(x.info, '{}') || pinfo
           WHERE x.id = rid
          RETURNING x.status INTO st;
          UPDATE dataflow._dispatch SET triggered = true WHERE run_id = rid;
          IF st IS DISTINCT FROM 'running' THEN
            UPDATE dataflow.engine_stop e SET next_attempt_at = now() WHERE e.run_id = rid AND e.done_at IS NULL;
            IF FOUND THEN
              PERFORM dataflow._wake();
            END IF;
            RETURN;  -- no lease to extend; the stop tells Prefect
          END IF;
        ELSIF pinfo -> 'prefect' ->> 'state' IN ('CANCELLING', 'PAUSED') THEN
          SELECT j.lease_for INTO bound FROM dataflow.job j WHERE j.id = rn.job_id;
          since := CASE WHEN rn.info -> 'prefect' ->> 'state' = pinfo -> 'prefect' ->> 'state'
                        THEN (rn.info -> 'prefect' ->> 'since')::timestamptz END;
          since := coalesce(since, now());
          pinfo := jsonb_set(pinfo, '{prefect,since}', to_jsonb(since));
          IF now() - since > bound THEN
            PERFORM dataflow.fail(p_token, format('Prefect flow run %s has been %s since %s, longer than the job''s '
                                                   'lease_for (%s): failed, not retried (resubmit the chunk once the '
                                                   'flow run is dealt with in Prefect)',
                                                   pinfo -> 'prefect' ->> 'flow_run_id', pinfo -> 'prefect' ->> 'state',
                                                   since, bound), false);
            UPDATE dataflow.run x SET info = coalesce(x.info, '{}') || pinfo WHERE x.id = rid;
            DELETE FROM dataflow._dispatch WHERE run_id = rid;
            RETURN;
          END IF;
        END IF;
      END IF;
      UPDATE dataflow._dispatch SET triggered = true WHERE run_id = rid;
      PERFORM dataflow.heartbeat(p_token);
      -- A Prefect flow run: its id is the run's external_id, its latest state in info.
      IF pinfo ? 'prefect' THEN
        UPDATE dataflow.run x
           SET external_id = coalesce(pinfo -> 'prefect' ->> 'flow_run_id', x.external_id),
               info = coalesce(x.info, '{}') || pinfo
         WHERE x.id = rid;
      END IF;
      RETURN;
    ELSE
      RAISE EXCEPTION 'unknown outcome "%"', left(p_kind, 64) USING ERRCODE = '22023';
  END CASE;
  DELETE FROM dataflow._dispatch WHERE run_id = rid;
END $$;
CREATE FUNCTION dataflow._worker_next_due() RETURNS bigint
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off
AS $$
BEGIN
  RETURN (
  SELECT ceil(extract(epoch FROM least(
            (SELECT min(d.next_attempt_at) FROM dataflow.delivery d JOIN dataflow.subscription s
                ON s.id = d.subscription_id WHERE d.status = 'pending' AND s.enabled AND d.next_attempt_at > now()),
            (SELECT min(q.not_before) FROM dataflow.job j JOIN dataflow.queue q ON q.dataset_id = j.output_id
              WHERE j.dispatch IN ('http', 'airflow', 'prefect') AND NOT j.paused AND q.not_before > now())) - now())
          * 1000)::bigint);
END $$;
REVOKE ALL ON FUNCTION dataflow._worker_jobs(), dataflow._worker_claim(text, integer),
  dataflow._worker_airflow_runs(), dataflow._worker_prefect_runs(),
  dataflow._worker_record(uuid, text, bigint, text, text, text, text, boolean, integer),
  dataflow._worker_next_due() FROM PUBLIC;

-- ==== 10_model, 75_engine_stop, 40_work, 22_jobs, 60_bi_views, 90_security, 95_dump (issue 15
-- item 3): cancel reaches the engine. job.cancel_endpoint (http jobs: where a stop is
-- POSTed); dataflow.engine_stop, one stop request per cancelled run of an http or airflow
-- job, written by cancel() and pause_job(cancel_running => true) through _cancel and
-- _request_stop in the cancel's transaction, read by the worker (_worker_stops) and
-- recorded per attempt as engine_stop events (_worker_stop_results). cancel() gets a new
-- body, create_job and alter_job a cancel_endpoint argument, pause_job a cancel_running
-- argument: new signatures, so the old functions go and the new ones get their grants.
-- (job.cancel_endpoint is added before 24_change's job.definition_version, above: the
-- column order of a fresh install, where 10_model makes it and 24_change adds the other)

CREATE TABLE dataflow.engine_stop (
  run_id           bigint PRIMARY KEY REFERENCES dataflow.run (id) ON DELETE CASCADE,
  requested_at     timestamptz NOT NULL DEFAULT now(),
  requested_by     text NOT NULL,
  reason           text NOT NULL,
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  last_attempt_at  timestamptz,
  last_http_status integer,
  last_answer      text,
  -- NULL while the worker still has to send it; stopped, refused, gave_up or nothing_to_send
  outcome          text CHECK (outcome IN ('stopped', 'refused', 'gave_up', 'nothing_to_send')),
  done_at          timestamptz,
  CHECK ((outcome IS NULL) = (done_at IS NULL))
);
CREATE INDEX engine_stop_due ON dataflow.engine_stop (next_attempt_at, run_id) WHERE done_at IS NULL;
COMMENT ON TABLE dataflow.engine_stop IS
  'One stop request per cancelled run of an http or airflow job: who asked, the worker''s attempts to tell '
  'the engine and its last answer; goes with its run when prune() deletes it';
REVOKE ALL ON dataflow.engine_stop FROM PUBLIC;

-- Called by _cancel (40_work) after the runs were cancelled, their chunks locked.
-- A run of an http job without cancel_endpoint gets a request that is done at once
-- (nothing_to_send) and an event saying so; the others are due now and wake the worker.
CREATE FUNCTION dataflow._request_stop(p_runs bigint[], p_actor text, p_reason text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off AS $$
DECLARE due integer;
BEGIN
  WITH s AS (
    INSERT INTO dataflow.engine_stop (run_id, requested_by, reason, outcome, done_at)
    SELECT r.id, p_actor, p_reason,
           CASE WHEN j.dispatch = 'http' AND j.cancel_endpoint IS NULL THEN 'nothing_to_send' END,
           CASE WHEN j.dispatch = 'http' AND j.cancel_endpoint IS NULL THEN now() END
      FROM dataflow.run r JOIN dataflow.job j ON j.id = r.job_id
     WHERE r.id = ANY (p_runs) AND j.dispatch IN ('http', 'airflow', 'prefect')
     ORDER BY r.id
    ON CONFLICT (run_id) DO NOTHING
    RETURNING engine_stop.run_id, engine_stop.outcome
  ), ev AS (
    INSERT INTO dataflow.event (dataset_id, chunk_id, key, run_id, version, to_status, actor, detail)
    SELECT c.dataset_id, c.id, c.key, r.id, r.version, 'engine_stop', p_actor,
           jsonb_build_object('engine_stop', jsonb_build_object(
             'kind', 'http', 'outcome', 'nothing_to_send', 'attempt', 0, 'status', NULL,
             'answer', 'the job has no cancel_endpoint: the engine was not told',
             'requested_by', p_actor, 'reason', p_reason))
      FROM s JOIN dataflow.run r ON r.id = s.run_id JOIN dataflow.chunk c ON c.id = r.chunk_id
     WHERE s.outcome = 'nothing_to_send'
     ORDER BY r.id
  )
  SELECT count(*) FILTER (WHERE s.outcome IS NULL) INTO due FROM s;
  IF due > 0 THEN
    PERFORM dataflow._wake();
  END IF;
END $$;

-- The worker's claim: due stop requests, oldest first, with what the engine needs
-- (a read only, like _worker_deliveries: a request in flight is in p_exclude, a
-- worker that restarts sends the due ones again, and a stop is idempotent). engine is
-- the job's dispatch, NULL when the job was dropped meanwhile; url the http job's
-- cancel_endpoint, or the connection's base URL.
CREATE FUNCTION dataflow._worker_stops(p_limit integer, p_exclude bigint[])
RETURNS TABLE (run_id bigint, engine text, token uuid, job text, dataset text, key text, version integer,
               reason text, attempts integer, external_id text, target text, url text, auth text,
               username text, secret text, api_version integer, connect_timeout_ms integer, timeout_ms integer,
               secret_params text, create_unanswered boolean)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off AS $$
BEGIN
  RETURN QUERY
  SELECT s.run_id, j.dispatch, r.token, j.name, d.name, c.key, r.version, s.reason, s.attempts, r.external_id,
         j.target, CASE WHEN j.dispatch = 'http' THEN j.cancel_endpoint ELSE cn.base_url END,
         coalesce(cn.auth, 'none'), cn.username, cn.secret, coalesce(cn.api_version, 1),
         CASE WHEN cn.connect_timeout <= interval '1 hour' THEN (extract(epoch FROM cn.connect_timeout) * 1000)::integer END,
         CASE WHEN cn.timeout <= interval '24 hours' THEN (extract(epoch FROM cn.timeout) * 1000)::integer END,
         (SELECT js.params::text FROM dataflow.job_secret js WHERE js.job_id = j.id),
         r.external_id IS NULL AND EXISTS (SELECT FROM dataflow._dispatch x WHERE x.run_id = r.id AND NOT x.triggered)
    FROM dataflow.engine_stop s
    JOIN dataflow.run r ON r.id = s.run_id
    JOIN dataflow.chunk c ON c.id = r.chunk_id
    JOIN dataflow.dataset d ON d.id = c.dataset_id
    LEFT JOIN dataflow.job j ON j.id = r.job_id
    LEFT JOIN dataflow.connection cn ON cn.id = j.connection_id
   WHERE s.done_at IS NULL AND s.next_attempt_at <= now() AND s.run_id <> ALL (p_exclude)
   ORDER BY s.next_attempt_at, s.run_id
   LIMIT p_limit;
END $$;

-- Records the stop attempts of one recording pass; element i is one attempt: the run,
-- its outcome (stopped, refused, gave_up: final; retry: due again after p_retry_in
-- seconds), the engine's HTTP status (NULL: no answer) and an excerpt of its answer
-- (the worker masks the token and the connection's secret in it). Each attempt is an
-- engine_stop event of the run's chunk, actor bgworker, with who asked for the stop.
-- Attempts of requests already done are ignored. Returns the attempts recorded.
CREATE FUNCTION dataflow._worker_stop_results(p_run bigint[], p_outcome text[], p_http_status integer[],
                                              p_answer text[], p_retry_in integer[])
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off AS $$
DECLARE n integer := cardinality(p_run);
BEGIN
  IF n IS NULL OR cardinality(p_outcome) IS DISTINCT FROM n OR cardinality(p_http_status) IS DISTINCT FROM n
     OR cardinality(p_answer) IS DISTINCT FROM n OR cardinality(p_retry_in) IS DISTINCT FROM n THEN
    RAISE EXCEPTION 'stop result arrays must all have the same length' USING ERRCODE = '22023',
      HINT = 'Pass one element per attempt in each array (NULL elements where there is no value).';
  END IF;
  IF EXISTS (SELECT FROM unnest(p_outcome) o WHERE o IS NULL OR o NOT IN ('stopped', 'refused', 'retry', 'gave_up')) THEN
    RAISE EXCEPTION 'unknown stop outcome' USING ERRCODE = '22023',
      HINT = 'Outcomes are stopped, refused, retry and gave_up.';
  END IF;
  WITH r AS (
    SELECT x.run_id, x.outcome, x.http_status, left(x.answer, 300) AS answer,
           greatest(coalesce(x.retry_in, 1), 1) AS retry_in, x.i
      FROM unnest(p_run, p_outcome, p_http_status, p_answer, p_retry_in)
           WITH ORDINALITY AS x(run_id, outcome, http_status, answer, retry_in, i)
  ), u AS (
    UPDATE dataflow.engine_stop s
       SET attempts = s.attempts + 1, last_attempt_at = now(), last_http_status = r.http_status,
           last_answer = r.answer,
           outcome = CASE WHEN r.outcome = 'retry' THEN NULL ELSE r.outcome END,
           done_at = CASE WHEN r.outcome = 'retry' THEN NULL ELSE now() END,
           next_attempt_at = CASE WHEN r.outcome = 'retry' THEN now() + make_interval(secs => r.retry_in)
                                  ELSE s.next_attempt_at END
      FROM r
     WHERE s.run_id = r.run_id AND s.done_at IS NULL
    RETURNING s.run_id, s.attempts, s.requested_by, s.reason, r.outcome, r.http_status, r.answer, r.retry_in, r.i
  )
  INSERT INTO dataflow.event (dataset_id, chunk_id, key, run_id, version, to_status, actor, detail)
  SELECT c.dataset_id, c.id, c.key, u.run_id, run.version, 'engine_stop', 'bgworker',
         jsonb_build_object('engine_stop', jsonb_build_object(
           'kind', j.dispatch, 'outcome', u.outcome, 'attempt', u.attempts, 'status', u.http_status,
           'answer', u.answer, 'requested_by', u.requested_by, 'reason', u.reason)
           || CASE WHEN u.outcome = 'retry' THEN jsonb_build_object('retry_in_s', u.retry_in) ELSE '{}' END)
    FROM u
    JOIN dataflow.run run ON run.id = u.run_id
    JOIN dataflow.chunk c ON c.id = run.chunk_id
    LEFT JOIN dataflow.job j ON j.id = run.job_id
   ORDER BY u.i;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;

REVOKE ALL ON FUNCTION dataflow._request_stop(bigint[], text, text), dataflow._worker_stops(integer, bigint[]),
  dataflow._worker_stop_results(bigint[], text[], integer[], text[], integer[]) FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON dataflow.engine_stop TO dataflow_admin;
SELECT pg_catalog.pg_extension_config_dump('dataflow.engine_stop', '');

DROP FUNCTION dataflow.cancel(text, text);
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
REVOKE ALL ON FUNCTION dataflow._cancel(dataflow.chunk, text, text) FROM PUBLIC;

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
ALTER FUNCTION dataflow.cancel(text, text) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.cancel(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.cancel(text, text) TO dataflow_operator;

-- A cancel_endpoint (create_job, alter_job): an http job's URL, checked like endpoint.
-- The worker sends it through dataflow.http_allow like every request.
CREATE FUNCTION dataflow._check_cancel_endpoint(p_dispatch text, p_url text)
RETURNS void LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF p_dispatch IS DISTINCT FROM 'http' THEN
    PERFORM dataflow._raise('22023', pg_catalog.format('cancel_endpoint applies to http jobs only, not %s',
                                                       coalesce(p_dispatch, 'NULL')), NULL,
      'An airflow job''s DAG run is stopped through its connection''s REST API; a pull job''s worker learns of a '
      'cancel from heartbeat (SQLSTATE 55000).');
  END IF;
  IF p_url !~ '^https?://[^\s/?#@]+(/[^\s]*)?$' OR p_url ~ '[[:cntrl:]]' OR length(p_url) > 2000 THEN
    PERFORM dataflow._raise('22023', pg_catalog.format('invalid cancel_endpoint "%s"', left(p_url, 200)), NULL,
      'An http:// or https:// URL without credentials in it; private addresses also need dataflow.http_allow.');
  END IF;
END $$;
REVOKE ALL ON FUNCTION dataflow._check_cancel_endpoint(text, text) FROM PUBLIC;

DROP FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint, jsonb);
CREATE FUNCTION dataflow.create_job(
  name text,
  output text,
  dispatch text DEFAULT 'pull',
  connection text DEFAULT NULL,
  target text DEFAULT NULL,
  endpoint text DEFAULT NULL,
  params jsonb DEFAULT '{}',
  pool text DEFAULT NULL,
  max_concurrency integer DEFAULT NULL,
  max_attempts integer DEFAULT 3,
  backoff_min interval DEFAULT '10 seconds',
  backoff_max interval DEFAULT '10 minutes',
  lease_for interval DEFAULT '5 minutes',
  priority integer DEFAULT 0,
  batch_max_rows bigint DEFAULT NULL,
  secret_params jsonb DEFAULT '{}',
  cancel_endpoint text DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d integer; c dataflow.connection; p integer; v integer; other text;
BEGIN
  PERFORM dataflow._check_name('job', name);
  IF output IS NULL THEN
    PERFORM dataflow._raise('22004', 'output must not be NULL', NULL,
                            'Pass the dataset the job produces: output => dataset.');
  END IF;
  d := dataflow._dataset_id(output);
  IF dispatch IS NULL THEN
    RAISE EXCEPTION 'dispatch must not be NULL' USING ERRCODE = '22004',
      HINT = 'dispatch is pull (workers call lease), http, airflow or prefect.';
  END IF;
  IF dispatch NOT IN ('pull', 'http', 'airflow', 'prefect') THEN
    RAISE EXCEPTION 'invalid dispatch "%"', coalesce(dispatch, 'NULL')
      USING ERRCODE = CASE WHEN dispatch IS NULL THEN '22004' ELSE '22023' END, HINT = 'dispatch is pull (workers call lease), http, airflow or prefect.';
  END IF;
  IF connection IS NOT NULL THEN
    SELECT * INTO c FROM dataflow.connection cn WHERE cn.name = create_job.connection;
    IF NOT FOUND THEN
      PERFORM dataflow._not_found('connection', connection,
        'create it with dataflow.create_connection(name, kind, base_url).');
    END IF;
  END IF;
  IF dispatch = 'pull' AND (connection IS NOT NULL OR endpoint IS NOT NULL OR target IS NOT NULL) THEN
    RAISE EXCEPTION 'a pull job takes no connection, target or endpoint' USING ERRCODE = '22023';
  ELSIF dispatch = 'http' THEN
    IF (endpoint IS NULL) = (connection IS NULL) THEN
      RAISE EXCEPTION 'an http job needs either endpoint or connection (with target), not both'
        USING ERRCODE = '22023';
    END IF;
    IF endpoint IS NOT NULL AND (endpoint !~ '^https?://[^\s/?#@]+(/[^\s]*)?$' OR endpoint ~ '[\r\n]') THEN
      RAISE EXCEPTION 'invalid endpoint "%"', left(endpoint, 200)
        USING ERRCODE = '22023', HINT = 'An http:// or https:// URL without credentials in it.';
    END IF;
    IF connection IS NOT NULL AND c.kind <> 'http' THEN
      RAISE EXCEPTION 'connection "%" is of kind %, not http', connection, c.kind USING ERRCODE = '22023';
    END IF;
  ELSIF dispatch = 'airflow' THEN
    IF connection IS NULL OR c.kind <> 'airflow' OR target IS NULL OR endpoint IS NOT NULL THEN
      RAISE EXCEPTION 'an airflow job needs an airflow connection and a target (the DAG id), and no endpoint'
        USING ERRCODE = '22023';
    END IF;
  ELSIF dispatch = 'prefect' THEN
    IF connection IS NULL OR c.kind <> 'prefect' OR target IS NULL OR endpoint IS NOT NULL THEN
      RAISE EXCEPTION 'a prefect job needs a prefect connection and a target (the deployment), and no endpoint'
        USING ERRCODE = '22023';
    END IF;
    -- The forms the worker sends (src/core/prefect.h): a deployment id, or the names
    -- GET /deployments/name/{flow}/{deployment} resolves; Prefect refuses / % & < > in names.
    IF target !~ '^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$'
       AND target !~ '^[^/%&<>[:cntrl:]]{1,200}/[^/%&<>[:cntrl:]]{1,200}$' THEN
      RAISE EXCEPTION 'invalid Prefect target "%"', left(target, 64)
        USING ERRCODE = '22023',
              HINT = 'A deployment id (UUID) or flow-name/deployment-name, as in prefect deployment run.';
    END IF;
  END IF;
  IF cancel_endpoint IS NOT NULL THEN
    PERFORM dataflow._check_cancel_endpoint(dispatch, cancel_endpoint);
  END IF;
  IF target IS NOT NULL AND dispatch <> 'prefect' AND target !~ '^[A-Za-z0-9_./-]{1,250}$' THEN
    RAISE EXCEPTION 'invalid target "%"', left(target, 64)
      USING ERRCODE = '22023', HINT = 'A DAG id or a URL path: letters, digits, "_", ".", "/" and "-".';
  END IF;
  IF params IS NULL OR jsonb_typeof(params) <> 'object' THEN
    RAISE EXCEPTION 'params must %', CASE WHEN params IS NULL THEN 'not be NULL' ELSE 'be a JSON object' END
      USING ERRCODE = CASE WHEN params IS NULL THEN '22004' ELSE '22023' END, HINT = 'Pass ''{}'' for none.';
  END IF;
  IF secret_params IS NULL THEN
    RAISE EXCEPTION 'secret_params must not be NULL' USING ERRCODE = '22004', HINT = 'Pass ''{}'' for none.';
  END IF;
  PERFORM dataflow._check_secret_params(secret_params);
  IF pool IS NOT NULL THEN
    SELECT id INTO p FROM dataflow.pool pl WHERE pl.name = create_job.pool;
    IF NOT FOUND THEN
      PERFORM dataflow._not_found('pool', pool, 'create it with dataflow.create_pool(name, slots).');
    END IF;
  END IF;
  IF max_attempts IS NULL OR backoff_min IS NULL OR backoff_max IS NULL OR lease_for IS NULL THEN
    RAISE EXCEPTION '% must not be NULL', CASE WHEN max_attempts IS NULL THEN 'max_attempts'
      WHEN backoff_min IS NULL THEN 'backoff_min' WHEN backoff_max IS NULL THEN 'backoff_max' ELSE 'lease_for' END
      USING ERRCODE = '22004', HINT = 'Leave it out for the default.';
  END IF;
  IF max_concurrency < 0 OR max_attempts IS NULL OR max_attempts < 1 THEN
    RAISE EXCEPTION 'max_concurrency must be >= 0 (or NULL: unlimited) and max_attempts >= 1'
      USING ERRCODE = CASE WHEN max_attempts IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF backoff_min IS NULL OR backoff_max IS NULL OR backoff_min < interval '0' OR backoff_max < backoff_min THEN
    RAISE EXCEPTION 'backoff needs 0 <= backoff_min <= backoff_max'
      USING ERRCODE = CASE WHEN backoff_min IS NULL OR backoff_max IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF lease_for IS NULL OR lease_for <= interval '0' THEN
    RAISE EXCEPTION 'lease_for must be positive'
      USING ERRCODE = CASE WHEN lease_for IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF priority IS NULL THEN
    RAISE EXCEPTION 'priority must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF batch_max_rows <= 0 THEN
    RAISE EXCEPTION 'batch_max_rows must be positive (got %)', batch_max_rows
      USING ERRCODE = '22023', HINT = 'Give the most input rows one batch may take, or NULL for no cap.';
  END IF;
  IF EXISTS (SELECT FROM dataflow.job j WHERE j.name = create_job.name) THEN
    RAISE EXCEPTION 'job "%" already exists', name USING ERRCODE = '42710';
  END IF;
  SELECT j.name INTO other FROM dataflow.job j WHERE j.output_id = d;
  IF FOUND THEN
    RAISE EXCEPTION 'dataset "%" is already produced by job "%"', output, other
      USING ERRCODE = '42710', HINT = 'A dataset has at most one producing job.';
  END IF;
  INSERT INTO dataflow.job (name, output_id, dispatch, connection_id, target, endpoint, params, pool_id,
                            max_concurrency, max_attempts, backoff_min, backoff_max, lease_for, priority,
                            batch_max_rows, cancel_endpoint)
  VALUES (name, d, dispatch, c.id, target, endpoint, params, p,
          max_concurrency, max_attempts, backoff_min, backoff_max, lease_for, priority, batch_max_rows,
          cancel_endpoint)
  RETURNING id INTO v;
  IF secret_params <> '{}' THEN
    INSERT INTO dataflow.job_secret (job_id, params) VALUES (v, secret_params);
  END IF;
  PERFORM dataflow._job_created(v);   -- its history, and a dataset with chunks adopted (24_change.sql)
  RETURN v;
END $$;
COMMENT ON FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer,
                                        interval, interval, interval, integer, bigint, jsonb, text) IS
  'Define the job producing a dataset: dispatch (pull, http, airflow, prefect), connection/target or endpoint, '
  'params, pool, max_concurrency, max_attempts, backoff_min/max, lease_for, priority, batch_max_rows '
  '(an incremental job''s cap on a batch''s input rows), secret_params (merged over params in every task, '
  'never shown), cancel_endpoint (http: where a cancel is POSTed); returns its id';
ALTER FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint, jsonb, text) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval, interval, integer, bigint, jsonb, text) TO dataflow_admin;

DROP FUNCTION dataflow.pause_job(text);
-- With cancel_running, every running chunk of the job is cancelled as cancel() does it
-- (its engine asked to stop), locked in chunk id order (one dataset: the (rank, id)
-- order) before the job row, the order the worker's 410 Gone recording takes them in.
CREATE FUNCTION dataflow.pause_job(job text, cancel_running boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE j dataflow.job := dataflow._job(job); c dataflow.chunk; actor text := dataflow._actor(); n integer := 0;
BEGIN
  IF cancel_running IS NULL THEN
    PERFORM dataflow._raise('22004', 'cancel_running must not be NULL', NULL,
                            'Pass true to cancel the job''s running chunks too, false (the default) to let them finish.');
  END IF;
  IF cancel_running THEN
    -- Wait for the job's leases in flight (each holds 7408 shared on the job's name from
    -- before it reads paused, src/pg/hot_path.cpp) and hold off new ones until commit: a
    -- lease that read paused = false commits before the scan below, whose snapshot then
    -- sees its run; one that starts later reads paused = true. (docs/internals.md, §4.)
    PERFORM pg_advisory_xact_lock(7408, hashtext(j.name));
    FOR c IN SELECT ch.* FROM dataflow.chunk ch
              WHERE ch.id IN (SELECT r.chunk_id FROM dataflow.run r
                               WHERE r.job_id OPERATOR(pg_catalog.=) j.id AND r.status OPERATOR(pg_catalog.=) 'running')
              ORDER BY ch.id FOR UPDATE LOOP
      CONTINUE WHEN c.status OPERATOR(pg_catalog.<>) 'running';
      PERFORM dataflow._cancel(c, actor, 'pause_job');
      n := n + 1;
    END LOOP;
  END IF;
  UPDATE dataflow.job SET paused = true WHERE id = j.id;
  INSERT INTO dataflow.event (to_status, actor, detail)
  VALUES ('paused', actor, jsonb_build_object('job', j.name, 'was_paused', j.paused)
                           || CASE WHEN cancel_running THEN jsonb_build_object('cancelled', n) ELSE '{}' END);
END $$;
COMMENT ON FUNCTION dataflow.pause_job(text, boolean) IS
  'Stop leasing a job''s chunks; running leases finish normally, or with cancel_running => true are cancelled '
  '(each chunk as by cancel(), its engine asked to stop)';
ALTER FUNCTION dataflow.pause_job(text, boolean) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.pause_job(text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.pause_job(text, boolean) TO dataflow_operator;

DROP FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb, bigint, jsonb);
-- Changes a job's settings; a NULL argument keeps the setting. pool => '' detaches the
-- pool, max_concurrency => -1 removes the job's own limit, batch_max_rows => -1 the
-- batch cap, cancel_endpoint => '' the http stop URL. The operator may change the limits (batch_max_rows among them) and the
-- priority (what it may UPDATE in dataflow.job); the pool, the params and the
-- cancel_endpoint are the admin's, like the job's definition. Takes effect from the next lease: running
-- leases keep their deadline and count against the pool they were leased in. The
-- change is an 'altered' event (params only as "changed": the event log is readable by
-- every reader, the params by the admin only). Returns what changed, {setting: {from, to}}.
CREATE FUNCTION dataflow.alter_job(
  name text,
  pool text DEFAULT NULL,
  max_concurrency integer DEFAULT NULL,
  max_attempts integer DEFAULT NULL,
  backoff_min interval DEFAULT NULL,
  backoff_max interval DEFAULT NULL,
  lease_for interval DEFAULT NULL,
  priority integer DEFAULT NULL,
  params jsonb DEFAULT NULL,
  batch_max_rows bigint DEFAULT NULL,
  secret_params jsonb DEFAULT NULL,
  cancel_endpoint text DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET IntervalStyle = 'postgres' AS $$
DECLARE
  j dataflow.job; p integer; pname text; new_pool integer; new_limit integer;
  new_min interval; new_max interval; changes jsonb := '{}'; shown jsonb; new_rows bigint; old_secret jsonb;
  new_cancel text;
BEGIN
  SELECT * INTO j FROM dataflow.job jb WHERE jb.id = (dataflow._job(alter_job.name)).id FOR UPDATE;
  IF (pool IS NOT NULL OR params IS NOT NULL OR cancel_endpoint IS NOT NULL)
     AND NOT pg_has_role(dataflow._caller(), 'dataflow_admin', 'MEMBER') THEN
    RAISE EXCEPTION 'changing the pool, the params or the cancel_endpoint of job "%" needs dataflow_admin', j.name
      USING ERRCODE = '42501',
            HINT = 'An operator may change max_concurrency, max_attempts, backoff_min, backoff_max, lease_for, priority and batch_max_rows.';
  END IF;
  IF secret_params IS NOT NULL AND NOT pg_has_role(dataflow._caller(), 'dataflow_admin', 'MEMBER') THEN
    RAISE EXCEPTION 'setting the secret_params of job "%" needs dataflow_admin', j.name
      USING ERRCODE = '42501',
            HINT = 'Secret parameters are the admin''s: an admin calls dataflow.alter_job(job, secret_params => ...).';
  END IF;
  new_pool := j.pool_id;
  IF pool = '' THEN
    new_pool := NULL;
  ELSIF pool IS NOT NULL THEN
    SELECT pl.id INTO p FROM dataflow.pool pl WHERE pl.name = alter_job.pool;
    IF NOT FOUND THEN
      PERFORM dataflow._not_found('pool', pool,
        'create it with dataflow.create_pool(name, slots), or pass pool => '''' to detach the job''s pool.');
    END IF;
    new_pool := p;
  END IF;
  IF max_concurrency < -1 THEN
    RAISE EXCEPTION 'max_concurrency must be >= 0, or -1 to remove the job''s own limit (got %)', max_concurrency
      USING ERRCODE = '22023';
  END IF;
  new_limit := CASE WHEN max_concurrency IS NULL THEN j.max_concurrency
                    WHEN max_concurrency = -1 THEN NULL ELSE max_concurrency END;
  IF max_attempts < 1 THEN
    RAISE EXCEPTION 'max_attempts must be >= 1 (got %)', max_attempts USING ERRCODE = '22023';
  END IF;
  new_min := coalesce(backoff_min, j.backoff_min);
  new_max := coalesce(backoff_max, j.backoff_max);
  IF new_min < interval '0' OR new_max < new_min THEN
    RAISE EXCEPTION 'backoff needs 0 <= backoff_min <= backoff_max (would be % and %)', new_min, new_max
      USING ERRCODE = '22023';
  END IF;
  IF lease_for <= interval '0' THEN
    RAISE EXCEPTION 'lease_for must be positive (got %)', lease_for USING ERRCODE = '22023';
  END IF;
  IF params IS NOT NULL AND jsonb_typeof(params) <> 'object' THEN
    RAISE EXCEPTION 'params must be a JSON object' USING ERRCODE = '22023';
  END IF;
  IF batch_max_rows = 0 OR batch_max_rows < -1 THEN
    RAISE EXCEPTION 'batch_max_rows must be positive, or -1 to remove the cap (got %)', batch_max_rows
      USING ERRCODE = '22023', HINT = 'Give the most input rows one batch may take; -1 removes the cap, NULL keeps it.';
  END IF;
  new_rows := CASE WHEN batch_max_rows IS NULL THEN j.batch_max_rows
                   WHEN batch_max_rows = -1 THEN NULL ELSE batch_max_rows END;
  IF new_rows IS DISTINCT FROM j.batch_max_rows THEN
    -- after the job row, as a change of the flow: a batch being cut meanwhile is cut wholly
    -- with the old cap, the next one with the new (_cut_batch holds 7403)
    PERFORM pg_advisory_xact_lock(7403, j.id);
  END IF;
  IF secret_params IS NOT NULL THEN
    PERFORM dataflow._check_secret_params(secret_params);
    SELECT s.params INTO old_secret FROM dataflow.job_secret s WHERE s.job_id = j.id;
  END IF;
  IF cancel_endpoint IS NOT NULL AND cancel_endpoint <> '' THEN
    PERFORM dataflow._check_cancel_endpoint(j.dispatch, cancel_endpoint);
  END IF;
  new_cancel := CASE WHEN cancel_endpoint IS NULL THEN j.cancel_endpoint
                     WHEN cancel_endpoint = '' THEN NULL ELSE cancel_endpoint END;

  IF new_pool IS DISTINCT FROM j.pool_id THEN
    changes := changes || jsonb_build_object('pool', jsonb_build_object(
      'from', (SELECT pl.name FROM dataflow.pool pl WHERE pl.id = j.pool_id),
      'to', (SELECT pl.name FROM dataflow.pool pl WHERE pl.id = new_pool)));
  END IF;
  IF new_limit IS DISTINCT FROM j.max_concurrency THEN
    changes := changes || jsonb_build_object('max_concurrency', jsonb_build_object('from', j.max_concurrency, 'to', new_limit));
  END IF;
  IF coalesce(max_attempts, j.max_attempts) <> j.max_attempts THEN
    changes := changes || jsonb_build_object('max_attempts', jsonb_build_object('from', j.max_attempts, 'to', max_attempts));
  END IF;
  IF new_min <> j.backoff_min THEN
    changes := changes || jsonb_build_object('backoff_min', jsonb_build_object('from', j.backoff_min, 'to', new_min));
  END IF;
  IF new_max <> j.backoff_max THEN
    changes := changes || jsonb_build_object('backoff_max', jsonb_build_object('from', j.backoff_max, 'to', new_max));
  END IF;
  IF coalesce(lease_for, j.lease_for) <> j.lease_for THEN
    changes := changes || jsonb_build_object('lease_for', jsonb_build_object('from', j.lease_for, 'to', lease_for));
  END IF;
  IF coalesce(priority, j.priority) <> j.priority THEN
    changes := changes || jsonb_build_object('priority', jsonb_build_object('from', j.priority, 'to', priority));
  END IF;
  IF params IS NOT NULL AND params <> j.params THEN
    changes := changes || jsonb_build_object('params', 'changed');
  END IF;
  IF new_rows IS DISTINCT FROM j.batch_max_rows THEN
    changes := changes || jsonb_build_object('batch_max_rows', jsonb_build_object('from', j.batch_max_rows, 'to', new_rows));
  END IF;
  IF secret_params IS NOT NULL AND secret_params <> coalesce(old_secret, '{}') THEN
    changes := changes || jsonb_build_object('secret_params',
                                             CASE WHEN secret_params = '{}' THEN 'cleared' ELSE 'changed' END);
  END IF;
  IF new_cancel IS DISTINCT FROM j.cancel_endpoint THEN
    -- like params: a URL is the admin's to read, the event log every reader's
    changes := changes || jsonb_build_object('cancel_endpoint',
      CASE WHEN new_cancel IS NULL THEN 'removed' WHEN j.cancel_endpoint IS NULL THEN 'set' ELSE 'changed' END);
  END IF;
  IF changes = '{}' THEN
    RETURN changes;
  END IF;
  UPDATE dataflow.job jb
     SET pool_id = new_pool, max_concurrency = new_limit,
         max_attempts = coalesce(alter_job.max_attempts, jb.max_attempts),
         backoff_min = new_min, backoff_max = new_max,
         lease_for = coalesce(alter_job.lease_for, jb.lease_for),
         priority = coalesce(alter_job.priority, jb.priority),
         params = coalesce(alter_job.params, jb.params),
         batch_max_rows = new_rows, cancel_endpoint = new_cancel
   WHERE jb.id = j.id;
  IF changes ? 'secret_params' THEN
    IF secret_params = '{}' THEN
      DELETE FROM dataflow.job_secret s WHERE s.job_id = j.id;
    ELSE
      INSERT INTO dataflow.job_secret AS s (job_id, params) VALUES (j.id, secret_params)
      ON CONFLICT (job_id) DO UPDATE SET params = excluded.params, updated_at = now();
    END IF;
  END IF;
  INSERT INTO dataflow.event (to_status, actor, detail)
  VALUES ('altered', dataflow._actor(), jsonb_build_object('job', j.name, 'changes', changes));
  IF j.dispatch <> 'pull' THEN
    PERFORM dataflow._wake();   -- a raised limit or a freer pool: the dispatcher claims at once
  END IF;
  RETURN changes;
END $$;
COMMENT ON FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb,
                                       bigint, jsonb, text) IS
  'Change a job''s pool, max_concurrency (-1: no limit), max_attempts, backoff_min/max, lease_for, priority, '
  'params, batch_max_rows (-1: no cap), secret_params (admin only; replaced whole, ''{}'' clears) or '
  'cancel_endpoint ('''': none) (NULL keeps a setting; pool => '''' detaches); effective from the next lease '
  '(the next batch); returns the changes';
ALTER FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb, bigint, jsonb, text) SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb, bigint, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.alter_job(text, text, integer, integer, interval, interval, interval, integer, jsonb, bigint, jsonb, text) TO dataflow_operator;

COMMENT ON COLUMN dataflow.events.to_status IS 'Status after (or late, paused, resumed, altered, duplicate, engine_stop)';

-- ==== 40_work (issue 15 item 3): skip of a running chunk (skip(), UPDATE ... 'skipped')
-- asks the engine to stop its cancelled run too, as cancel() does. A changed body.
DROP FUNCTION dataflow._skipped(bigint, text, text);
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
REVOKE ALL ON FUNCTION dataflow._skipped(bigint, text, text) FROM PUBLIC;

-- The hot path in C (src/pg/hot_path.cpp; docs/internals.md, "The hot path"): lease,
-- heartbeat and complete become C functions over kept prepared statements that write the
-- queue, the counters and the wake-up themselves; the counting triggers and event_fanout
-- skip those statements (WHEN NOT dataflow._accounted()). _claim's walk is lease()'s own.
CREATE FUNCTION dataflow._accounted() RETURNS boolean
AS 'MODULE_PATHNAME', 'df_accounted' LANGUAGE C VOLATILE PARALLEL RESTRICTED;
REVOKE ALL ON FUNCTION dataflow._accounted() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow._accounted() TO PUBLIC;
DROP TRIGGER chunk_counted_update ON dataflow.chunk;
DROP TRIGGER chunk_counted_insert ON dataflow.chunk;
DROP TRIGGER chunk_counted_delete ON dataflow.chunk;
DROP TRIGGER event_fanout ON dataflow.event;
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
CREATE TRIGGER event_fanout AFTER INSERT ON dataflow.event
  REFERENCING NEW TABLE AS new_events
  FOR EACH STATEMENT WHEN (NOT dataflow._accounted()) EXECUTE FUNCTION dataflow._event_fanout();
DROP FUNCTION dataflow.lease(text, text, integer, interval);
DROP FUNCTION dataflow.heartbeat(uuid, interval);
DROP FUNCTION dataflow.complete(uuid, bigint, text, jsonb, text);
DROP FUNCTION dataflow._claim(integer, integer);
CREATE FUNCTION dataflow._lease_latest(p_job integer) RETURNS bigint[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE latest bigint[] := '{}'; li record; lid bigint;
BEGIN
  FOR li IN SELECT jl.dataset_id, jl.need FROM dataflow.job_input jl JOIN dataflow.dataset ld ON ld.id = jl.dataset_id
             WHERE jl.job_id = p_job AND jl.mapping = 'latest' ORDER BY ld.rank, jl.dataset_id LOOP
    lid := NULL;
    BEGIN
      SELECT x.id INTO lid FROM dataflow.chunk x
       WHERE x.dataset_id = li.dataset_id AND dataflow._level(x.status) >= li.need
       ORDER BY x.ord DESC NULLS LAST, x.available_at DESC
       LIMIT 1
         FOR SHARE NOWAIT;
    EXCEPTION WHEN lock_not_available THEN
      RETURN NULL;
    END;
    IF lid IS NULL THEN
      RETURN NULL;
    END IF;
    latest := latest || lid;
  END LOOP;
  RETURN latest;
END $$;

CREATE FUNCTION dataflow.lease(job text, worker text, max_chunks integer DEFAULT 1,
                               lease_for interval DEFAULT NULL)
RETURNS SETOF dataflow.task
AS 'MODULE_PATHNAME', 'df_lease' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION dataflow.lease(text, text, integer, interval) IS
  'Lease up to max_chunks runnable chunks of a job for a worker: returns one task per chunk with its '
  'token, inputs (exact versions and locations), params (the job''s secret params merged in), output location '
  'and deadline; empty when nothing is runnable';

CREATE FUNCTION dataflow.heartbeat(token uuid, extend_by interval DEFAULT NULL)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'df_heartbeat' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION dataflow.heartbeat(uuid, interval) IS
  'Keep a lease alive: moves its deadline to now + extend_by (default the job''s lease_for); returns it. '
  'A run superseded by a resubmit meanwhile keeps holding its inputs and gets a WARNING (SQLSTATE 01DF1): stop early';

CREATE FUNCTION dataflow._complete_stale(p_run bigint, p_row_count bigint, p_checksum text, p_info jsonb)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE r dataflow.run; c dataflow.chunk; stale jsonb;
BEGIN
  SELECT * INTO r FROM dataflow.run WHERE id = p_run;
  SELECT * INTO c FROM dataflow.chunk WHERE id = r.chunk_id;   -- locked by complete()
  SELECT jsonb_agg(jsonb_build_object('chunk', ri.chunk_id, 'read_version', ri.version,
                                        'version', ic.version, 'status', ic.status))
    INTO stale
    FROM dataflow.run_input ri JOIN dataflow.chunk ic ON ic.id = ri.chunk_id
   WHERE ri.run_id = r.id AND (ic.version <> ri.version OR dataflow._level(ic.status) = 0);
  UPDATE dataflow.run
     SET status = 'superseded', finished_at = now(), row_count = p_row_count,
         checksum = p_checksum, info = p_info,
         error = 'superseded: an input was re-produced while the run worked'
   WHERE id = r.id;
  IF c.run_id = r.id AND c.status = 'running' THEN
    UPDATE dataflow.chunk
       SET status = CASE WHEN unmet = 0 THEN 'queued' ELSE 'waiting' END,
           attempts = greatest(attempts - 1, 0), not_before = now(), updated_at = now()
     WHERE id = c.id;
    INSERT INTO dataflow.event (dataset_id, chunk_id, key, run_id, version, from_status, to_status, actor, detail)
    VALUES (c.dataset_id, c.id, c.key, r.id, c.version, 'running',
            CASE WHEN c.unmet = 0 THEN 'queued' ELSE 'waiting' END, r.worker,
            jsonb_build_object('reason', 'superseded', 'stale_inputs', stale));
  END IF;
  RETURN 'superseded';
END $$;

CREATE FUNCTION dataflow.complete(token uuid, row_count bigint DEFAULT NULL, checksum text DEFAULT NULL,
                                  info jsonb DEFAULT NULL, location text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'df_complete' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION dataflow.complete(uuid, bigint, text, jsonb, text) IS
  'Finish a live lease successfully: the chunk becomes ready at its version and its consumers may start; '
  'returns succeeded, or superseded when an input was re-produced meanwhile (the chunk is re-queued)';

REVOKE ALL ON FUNCTION dataflow._lease_latest(integer), dataflow.lease(text, text, integer, interval),
  dataflow.heartbeat(uuid, interval), dataflow._complete_stale(bigint, bigint, text, jsonb),
  dataflow.complete(uuid, bigint, text, jsonb, text) FROM PUBLIC;
ALTER FUNCTION dataflow.lease(text, text, integer, interval) SECURITY DEFINER;
ALTER FUNCTION dataflow.heartbeat(uuid, interval) SECURITY DEFINER;
ALTER FUNCTION dataflow.complete(uuid, bigint, text, jsonb, text) SECURITY DEFINER;
GRANT EXECUTE ON FUNCTION dataflow.lease(text, text, integer, interval), dataflow.heartbeat(uuid, interval),
  dataflow.complete(uuid, bigint, text, jsonb, text) TO dataflow_worker;

-- ==== 70_worker, 95_dump (issue 15 review): this install's id. dataflow.install holds
-- one random UUID, made here for an updated install as CREATE EXTENSION makes it for a
-- fresh one, kept by pg_dump (a restore's loaded row replaces the one CREATE EXTENSION
-- made: install_one); it is part of every Prefect idempotency key, so two installs
-- sharing a Prefect never adopt each other's flow runs (_worker_prefect_runs, synced
-- above with the worker's other functions).
CREATE TABLE dataflow.install (
  one        boolean PRIMARY KEY DEFAULT true CHECK (one),
  id         uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
  created_at timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON dataflow.install FROM PUBLIC;
COMMENT ON TABLE dataflow.install IS
  'This install''s id (one row, a random UUID made by CREATE EXTENSION): part of every Prefect idempotency key';
CREATE FUNCTION dataflow._install_one() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  DELETE FROM dataflow.install;
  RETURN NEW;
END $$;
REVOKE ALL ON FUNCTION dataflow._install_one() FROM PUBLIC;
CREATE TRIGGER install_one BEFORE INSERT ON dataflow.install
  FOR EACH ROW EXECUTE FUNCTION dataflow._install_one();
INSERT INTO dataflow.install DEFAULT VALUES;
SELECT pg_catalog.pg_extension_config_dump('dataflow.install', '');
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON dataflow.install TO dataflow_admin;

-- _count and _count_done are C (src/pg/hot_path.cpp), the code the hot path accounts with;
-- _count_shard is its C helper now.
DROP FUNCTION dataflow._count(integer, integer, text, text, bigint, bigint, timestamptz);
DROP FUNCTION dataflow._count_done(integer, integer, timestamptz, bigint, bigint, bigint, timestamptz);
DROP FUNCTION dataflow._count_shard(integer, bigint, bigint);
CREATE FUNCTION dataflow._count(p_dataset integer, p_backfill integer, p_old text, p_new text,
                                p_n bigint, p_ord bigint, p_at timestamptz)
RETURNS void AS 'MODULE_PATHNAME', 'df_count' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION dataflow._count_done(p_dataset integer, p_backfill integer, p_minute timestamptz,
                                     p_succeeded bigint, p_failed bigint, p_superseded bigint,
                                     p_started timestamptz)
RETURNS void AS 'MODULE_PATHNAME', 'df_count_done' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;

REVOKE ALL ON FUNCTION dataflow._count(integer, integer, text, text, bigint, bigint, timestamptz),
  dataflow._count_done(integer, integer, timestamptz, bigint, bigint, bigint, timestamptz) FROM PUBLIC;

-- ==== 22_jobs, 55_questions (issue 16 leftovers): drop_job takes the locks of a change in
-- their order (7407, the job row, 7403, its output's chunks) and counts running leases after
-- them; graph_dot shows batch_max_rows on a job and max_chunks on an incremental input.
-- Changed bodies.
DROP FUNCTION dataflow.drop_job(text);
-- A change of the job graph, so it takes the locks of a change in their order
-- (docs/internals.md §3): 7407 exclusive and the job row (_change_begin, 24_change.sql),
-- 7403 for an incremental job, then its output's chunks (one dataset: chunk id order is
-- the (rank, id) order); running leases are counted once those are held. A change or an
-- expect() of the graph runs wholly before or after it: ranks recomputed from a graph
-- that a concurrent add_input changed left an edge from a higher rank to a lower one.
CREATE FUNCTION dataflow.drop_job(name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE j dataflow.job := dataflow._change_begin(name);
BEGIN
  IF EXISTS (SELECT FROM dataflow.job_input x WHERE x.job_id = j.id AND x.mapping = 'incremental') THEN
    PERFORM pg_advisory_xact_lock(7403, j.id);   -- no batch is cut meanwhile (47_incremental.sql)
  END IF;
  -- Its output becomes a source: its chunks no longer wait for the job's inputs. The
  -- edges into them go too, or they would run from a higher rank to a lower one once
  -- the ranks are recomputed, and the lock order (docs/internals.md) would not hold.
  PERFORM 1 FROM dataflow.chunk c WHERE c.dataset_id = j.output_id ORDER BY c.id FOR UPDATE;
  IF EXISTS (SELECT FROM dataflow.run r WHERE r.job_id = j.id AND r.status = 'running') THEN
    RAISE EXCEPTION 'job "%" has running leases', j.name
      USING ERRCODE = '55006', HINT = 'Pause it with dataflow.pause_job and wait for its runs to end.';
  END IF;
  DELETE FROM dataflow.dep d USING dataflow.chunk c WHERE c.dataset_id = j.output_id AND d.consumer = c.id;
  DELETE FROM dataflow.latest_wait w USING dataflow.chunk c WHERE c.dataset_id = j.output_id AND w.consumer = c.id;
  DELETE FROM dataflow.incremental_pending p WHERE p.job_id = j.id;
  WITH moved AS (
    UPDATE dataflow.chunk c SET unmet = 0, status = 'waiting', updated_at = now()
      FROM dataflow.chunk o
     WHERE o.id = c.id AND c.dataset_id = j.output_id AND c.status IN ('waiting', 'queued')
       AND (c.unmet <> 0 OR c.status <> 'waiting')
    RETURNING c.id, c.dataset_id, c.key, c.version, c.status AS new_status, o.status AS old_status
  )
  INSERT INTO dataflow.event (dataset_id, chunk_id, key, version, from_status, to_status, actor, detail)
  SELECT m.dataset_id, m.id, m.key, m.version, m.old_status, m.new_status, dataflow._actor(),
         jsonb_build_object('reason', 'job ' || j.name || ' dropped: a source now')
    FROM moved m WHERE m.old_status <> m.new_status;
  UPDATE dataflow.chunk c SET unmet = 0 WHERE c.dataset_id = j.output_id AND c.unmet <> 0;
  DELETE FROM dataflow.job_input WHERE job_id = j.id;
  DELETE FROM dataflow.job WHERE id = j.id;
  PERFORM dataflow._rerank();
END $$;
COMMENT ON FUNCTION dataflow.drop_job(text) IS
  'Drop a job with no running lease; its output chunks and run history stay';
ALTER FUNCTION dataflow.drop_job(text) SECURITY DEFINER;
REVOKE ALL ON FUNCTION dataflow.drop_job(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.drop_job(text) TO dataflow_admin;
DROP FUNCTION dataflow.graph_dot();
CREATE FUNCTION dataflow.graph_dot() RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE out text;
BEGIN
  WITH counts AS (
    SELECT cc.dataset_id,
           sum(cc.waiting) AS waiting, sum(cc.queued) AS queued, sum(cc.running) AS running,
           sum(cc.ready) AS ready, sum(cc.validated) AS validated, sum(cc.invalid) AS invalid,
           sum(cc.failed) AS failed, sum(cc.skipped) AS skipped, sum(cc.cancelled) AS cancelled
      FROM dataflow.chunk_count cc GROUP BY cc.dataset_id
  ), nodes AS (
    SELECT format('  "ds:%s" [shape=box, style="rounded,filled", fillcolor="%s", label="%s\n%s"];',
                  d.name,
                  CASE WHEN coalesce(k.failed, 0) + coalesce(k.invalid, 0) > 0 THEN '#f4a6a6'
                       WHEN coalesce(k.running, 0) > 0 THEN '#a6c8f4'
                       WHEN coalesce(k.waiting, 0) + coalesce(k.queued, 0) > 0 THEN '#f4e3a6'
                       WHEN coalesce(k.ready, 0) + coalesce(k.validated, 0) + coalesce(k.skipped, 0) > 0 THEN '#b5e6b5'
                       ELSE '#eeeeee' END,
                  d.name,
                  coalesce(nullif(concat_ws(' ',
                    CASE WHEN k.validated > 0 THEN k.validated || ' validated' END,
                    CASE WHEN k.ready > 0 THEN k.ready || ' ready' END,
                    CASE WHEN k.skipped > 0 THEN k.skipped || ' skipped' END,
                    CASE WHEN k.running > 0 THEN k.running || ' running' END,
                    CASE WHEN k.queued > 0 THEN k.queued || ' queued' END,
                    CASE WHEN k.waiting > 0 THEN k.waiting || ' waiting' END,
                    CASE WHEN k.failed > 0 THEN k.failed || ' failed' END,
                    CASE WHEN k.invalid > 0 THEN k.invalid || ' invalid' END,
                    CASE WHEN k.cancelled > 0 THEN k.cancelled || ' cancelled' END), ''), 'no chunks')) AS line,
           1 AS grp, d.name AS sort
      FROM dataflow.dataset d LEFT JOIN counts k ON k.dataset_id = d.id
    UNION ALL
    SELECT format('  "job:%s" [shape=ellipse, label="%s\n(%s%s%s)"%s];', j.name, j.name, j.dispatch,
                  CASE WHEN j.max_concurrency IS NOT NULL THEN ', max ' || j.max_concurrency ELSE '' END,
                  CASE WHEN j.batch_max_rows IS NOT NULL THEN ', batch_max_rows ' || j.batch_max_rows ELSE '' END,
                  CASE WHEN j.paused THEN ', style=dashed, color=gray' ELSE '' END),
           2, j.name
      FROM dataflow.job j
    UNION ALL
    SELECT format('  "job:%s" -> "ds:%s";', j.name, d.name), 3, j.name
      FROM dataflow.job j JOIN dataflow.dataset d ON d.id = j.output_id
    UNION ALL
    SELECT format('  "ds:%s" -> "job:%s" [label="%s"];', d.name, j.name,
                  ji.mapping || CASE WHEN ji.mapping = 'window' THEN '(' || ji.lo || ',' || ji.hi || ')' ELSE '' END
                  || CASE WHEN ji.need = 2 THEN ', validated' ELSE '' END
                  || CASE WHEN ji.max_chunks IS NOT NULL THEN ', max_chunks ' || ji.max_chunks ELSE '' END),
           4, j.name || d.name
      FROM dataflow.job_input ji JOIN dataflow.job j ON j.id = ji.job_id JOIN dataflow.dataset d ON d.id = ji.dataset_id
  )
  SELECT 'digraph dataflow {' || E'\n' || '  rankdir=LR;' || E'\n' || '  node [fontname="Helvetica"];' || E'\n'
         || coalesce(string_agg(line, E'\n' ORDER BY grp, sort), '') || E'\n}' || E'\n'
    INTO out FROM nodes;
  RETURN out;
END $$;
COMMENT ON FUNCTION dataflow.graph_dot() IS
  'The dataset/job graph as Graphviz DOT, datasets coloured by status with chunk counts (dot -Tsvg)';
ALTER FUNCTION dataflow.graph_dot() SECURITY DEFINER;
REVOKE ALL ON FUNCTION dataflow.graph_dot() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.graph_dot() TO dataflow_reader;
