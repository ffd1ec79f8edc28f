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
                      THEN 'row_count' END], NULL);
    INSERT INTO dataflow.event (dataset_id, chunk_id, key, version, from_status, to_status, actor, detail)
    VALUES (d.id, c.id, k, c.version, c.status, 'duplicate', actor,
            jsonb_strip_nulls(jsonb_build_object(
              'reason', 'register', 'given_key', left(key, 200),
              'same', CASE WHEN checksum IS NOT NULL THEN 'checksum' ELSE 'location and row_count' END,
              'ignored', CASE WHEN cardinality(ignored) > 0 THEN to_jsonb(ignored) END)));
    IF cardinality(ignored) > 0 THEN
      RAISE NOTICE 'dataset "%" key %: the same checksum as version %, nothing re-runs', d.name, k, c.version
        USING DETAIL = 'The given ' || array_to_string(ignored, ' and ') || ' differ from version '
                       || c.version || '''s and were not recorded.',
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
    -- its lease (_claim, docs/internals.md "Safe").
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
