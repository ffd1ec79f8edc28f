-- Definition: datasets, pools, connections, jobs, inputs; and their drop_*.
-- Every function validates all of its arguments before it writes anything.

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

CREATE FUNCTION dataflow._dataset_row(name text) RETURNS dataflow.dataset
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE d dataflow.dataset;
BEGIN
  SELECT * INTO d FROM dataflow.dataset ds WHERE ds.id = dataflow._dataset_id(_dataset_row.name);
  RETURN d;
END $$;

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

-- Resolve a location template: {dataset}, {key} and {version}.
CREATE FUNCTION dataflow._location(template text, dataset text, key text, version integer)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(template,
         '{dataset}', dataset), '{key}', key), '{version}', version::text);

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

CREATE FUNCTION dataflow.drop_dataset(name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE d integer := dataflow._dataset_id(name); j text;
BEGIN
  SELECT string_agg(jb.name, ', ') INTO j FROM dataflow.job jb
   WHERE jb.output_id = d OR jb.id IN (SELECT ji.job_id FROM dataflow.job_input ji WHERE ji.dataset_id = d);
  IF j IS NOT NULL THEN
    RAISE EXCEPTION 'dataset "%" is used by job(s) %', name, j
      USING ERRCODE = '2BP01', HINT = 'Drop those jobs first with dataflow.drop_job(name).';
  END IF;
  DELETE FROM dataflow.run_input WHERE chunk_id IN (SELECT id FROM dataflow.chunk WHERE dataset_id = d)
     OR run_id IN (SELECT r.id FROM dataflow.run r JOIN dataflow.chunk c ON c.id = r.chunk_id WHERE c.dataset_id = d);
  DELETE FROM dataflow.run WHERE chunk_id IN (SELECT id FROM dataflow.chunk WHERE dataset_id = d);
  DELETE FROM dataflow.dep WHERE input IN (SELECT id FROM dataflow.chunk WHERE dataset_id = d)
     OR consumer IN (SELECT id FROM dataflow.chunk WHERE dataset_id = d);
  DELETE FROM dataflow.latest_wait WHERE dataset_id = d;
  DELETE FROM dataflow.chunk WHERE dataset_id = d;
  DELETE FROM dataflow.dataset WHERE id = d;
END $$;
COMMENT ON FUNCTION dataflow.drop_dataset(text) IS
  'Drop a dataset no job uses, with its chunks and runs (the event history is kept)';

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
