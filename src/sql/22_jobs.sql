-- Jobs and their inputs. A dataset has at most one producing job; the job graph
-- (input dataset -> job -> output dataset) stays acyclic.

-- A job's secret_params as create_job and alter_job take them: a JSON object whose keys
-- are merged over the job's params in every task (dataflow.job_secret). "batch" is the
-- parameter lease() gives an incremental job's runs, so it is not a secret's name. The
-- messages name the type or the key, never a value.
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

-- A task's params with a job's secret params merged in (secret keys win), and the
-- reverse for what is kept of a task (dataflow._dispatch): its params without the
-- secret keys, a key the job's own params also set holding the job's value again.
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

-- Recompute every dataset's rank (10_model.sql) after the job graph changed: a
-- Jacobi iteration, one UPDATE per level of the graph; the graph is acyclic
-- (add_input refuses cycles), so it ends within the graph's depth.
CREATE FUNCTION dataflow._rerank() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE n integer;
BEGIN
  FOR i IN 1..10000 LOOP
    UPDATE dataflow.dataset d SET rank = x.rank
      FROM (SELECT o.id, coalesce(max(ind.rank) + 1, 0) AS rank
              FROM dataflow.dataset o
              LEFT JOIN dataflow.job j ON j.output_id = o.id
              LEFT JOIN dataflow.job_input ji ON ji.job_id = j.id
              LEFT JOIN dataflow.dataset ind ON ind.id = ji.dataset_id
             GROUP BY o.id) x
     WHERE d.id = x.id AND d.rank <> x.rank;
    GET DIAGNOSTICS n = ROW_COUNT;
    EXIT WHEN n = 0;
  END LOOP;
END $$;

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

CREATE FUNCTION dataflow.resume_job(job text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE j dataflow.job := dataflow._job(job);
BEGIN
  UPDATE dataflow.job SET paused = false WHERE id = j.id;
  INSERT INTO dataflow.event (to_status, actor, detail)
  VALUES ('resumed', dataflow._actor(), jsonb_build_object('job', j.name, 'was_paused', j.paused));
  IF j.dispatch <> 'pull' THEN
    PERFORM dataflow._wake();   -- the dispatcher picks the job up at once, not after a naptime
  END IF;
END $$;
COMMENT ON FUNCTION dataflow.resume_job(text) IS 'Lease a paused job''s chunks again';

-- Changes a job's settings; a NULL argument keeps the setting. pool => '' detaches the
-- pool, max_concurrency => -1 removes the job's own limit, batch_max_rows => -1 the
-- batch cap, cancel_endpoint => '' the http stop URL. The operator may change the limits
-- (batch_max_rows among them) and the priority (what it may UPDATE in dataflow.job); the
-- pool, the params, the secret params and the cancel_endpoint are the admin's, like the
-- job's definition. secret_params replaces the job's secret params as a whole ('{}'
-- clears them). Takes effect from the next lease: running
-- leases keep their deadline and count against the pool they were leased in. The
-- change is an 'altered' event (params only as "changed", secret_params as "changed" or
-- "cleared": the event log is readable by every reader, the params by the admin only).
-- Returns what changed, {setting: {from, to}}.
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
