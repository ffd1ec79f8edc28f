-- The background worker's SQL side: wake-on-commit, the webhook subscription
-- and outbox tables, and the small functions the worker calls to claim work
-- and record results (each claim and each record is its own short transaction
-- in the worker; no transaction is open during HTTP).

CREATE FUNCTION dataflow._wake() RETURNS void
AS 'MODULE_PATHNAME', 'df_wake' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION dataflow._wake() IS
  'Wake the background worker when the calling transaction commits (no effect on rollback)';

-- ---- webhooks ------------------------------------------------------------

CREATE TABLE dataflow.subscription (
  id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name       text NOT NULL UNIQUE,
  url        text NOT NULL CHECK (url ~* '^https?://[^\s/?#@]+([/?#]|$)' AND url !~ '[[:cntrl:]]'),
  datasets   text[],
  statuses   text[],
  secret     text NOT NULL CHECK (secret ~ '^whsec_[A-Za-z0-9+/]+={0,2}$'),
  enabled    boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  disabled_at     timestamptz,  -- set with disabled_reason when the worker disables it (410 Gone)
  disabled_reason text
);
COMMENT ON TABLE dataflow.subscription IS
  'Webhook subscriptions: events of the listed datasets (NULL: all) entering the listed statuses '
  '(NULL: all) are POSTed to url, signed with secret (readable by the admin role only); a receiver '
  'answering 410 Gone gets its subscription disabled, with disabled_at and disabled_reason';

-- The outbox: one durable row per (event, matching subscription), written in
-- the event's own transaction. msg_id is the webhook-id, stable across retries.
CREATE TABLE dataflow.delivery (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  subscription_id integer NOT NULL REFERENCES dataflow.subscription (id) ON DELETE CASCADE,
  event_id        bigint NOT NULL,
  chunk_id        bigint,
  payload         jsonb NOT NULL,
  status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts        integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_attempt_at timestamptz,
  last_http_status integer,
  last_error      text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  finished_at     timestamptz
);
CREATE INDEX delivery_due ON dataflow.delivery (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX delivery_order ON dataflow.delivery (subscription_id, chunk_id, id) WHERE status = 'pending';
CREATE INDEX delivery_finished ON dataflow.delivery (finished_at) WHERE status <> 'pending';
COMMENT ON TABLE dataflow.delivery IS
  'Webhook outbox: one row per event and matching subscription; the worker sends, retries and records it';

CREATE TABLE dataflow.delivery_attempt (
  delivery_id bigint NOT NULL REFERENCES dataflow.delivery (id) ON DELETE CASCADE,
  attempt     integer NOT NULL,
  at          timestamptz NOT NULL DEFAULT now(),
  http_status integer,
  error       text,
  duration_ms integer,
  PRIMARY KEY (delivery_id, attempt)
);
COMMENT ON TABLE dataflow.delivery_attempt IS 'Every webhook delivery attempt and its result';

REVOKE ALL ON dataflow.subscription, dataflow.delivery, dataflow.delivery_attempt FROM PUBLIC;

-- The worker's session lives for days and makes its plans once, often while run,
-- queue and delivery are nearly empty: the functions it calls run with sequential
-- scans off, so a plan made then stays an index probe as the tables grow.

-- Fan-out of new events to the outbox, and wake-up of the worker when a chunk
-- of an http/airflow/prefect job became queued. Statement-level with a transition
-- table: with no subscription it costs two small probes per INSERT statement.
CREATE FUNCTION dataflow._event_fanout() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE n bigint;
BEGIN
  IF EXISTS (SELECT FROM new_events e JOIN dataflow.job j ON j.output_id OPERATOR(pg_catalog.=) e.dataset_id
              WHERE e.to_status OPERATOR(pg_catalog.=) 'queued' AND j.dispatch OPERATOR(pg_catalog.<>) 'pull') THEN
    PERFORM dataflow._wake();
  END IF;
  IF NOT (EXISTS (SELECT FROM dataflow.subscription s WHERE s.enabled)) THEN
    RETURN NULL;
  END IF;
  INSERT INTO dataflow.delivery (subscription_id, event_id, chunk_id, payload)
  SELECT s.id, e.id, e.chunk_id,
         jsonb_build_object(
           'type', 'chunk.' OPERATOR(pg_catalog.||) e.to_status,
           'timestamp', to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'data', jsonb_build_object('event_id', e.id, 'dataset', d.name, 'key', e.key,
                                      'version', e.version, 'from_status', e.from_status,
                                      'to_status', e.to_status, 'run_id', e.run_id,
                                      'actor', e.actor, 'detail', e.detail))
    FROM new_events e
    LEFT JOIN dataflow.dataset d ON d.id OPERATOR(pg_catalog.=) e.dataset_id
    JOIN dataflow.subscription s
      ON s.enabled
     AND (s.datasets IS NULL OR d.name OPERATOR(pg_catalog.=) ANY (s.datasets))
     AND (s.statuses IS NULL OR e.to_status OPERATOR(pg_catalog.=) ANY (s.statuses))
   -- Only events this transaction records (at defaults to now(); nothing sets it): rows
   -- a restore loads were fanned out at the source, their deliveries are restored too.
   WHERE e.at OPERATOR(pg_catalog.=) pg_catalog.now()
   ORDER BY e.id, s.id;
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n > 0 THEN
    PERFORM dataflow._wake();
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER event_fanout AFTER INSERT ON dataflow.event
  REFERENCING NEW TABLE AS new_events
  FOR EACH STATEMENT WHEN (NOT dataflow._accounted()) EXECUTE FUNCTION dataflow._event_fanout();

CREATE FUNCTION dataflow._new_webhook_secret() RETURNS text
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
RETURN 'whsec_' OPERATOR(pg_catalog.||) encode(
  decode(replace(gen_random_uuid()::text, '-', ''), 'hex') OPERATOR(pg_catalog.||)
  decode(replace(gen_random_uuid()::text, '-', ''), 'hex'), 'base64');

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

CREATE FUNCTION dataflow.drop_subscription(name text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  SELECT dataflow.unsubscribe(name);
END;
COMMENT ON FUNCTION dataflow.drop_subscription(text) IS 'Same as dataflow.unsubscribe(name)';

-- The way back after the worker disabled a subscription (its receiver answered
-- 410 Gone) or an admin did: enabled again, and its pending deliveries are due
-- at once, oldest first, per-chunk order kept.
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

CREATE VIEW dataflow.deliveries AS
SELECT d.id, s.name AS subscription, d.event_id, d.payload -> 'data' ->> 'dataset' AS dataset,
       d.payload -> 'data' ->> 'key' AS key, d.payload ->> 'type' AS type, d.status, d.attempts,
       d.next_attempt_at, d.last_attempt_at, d.last_http_status, d.last_error, d.created_at, d.finished_at
  FROM dataflow.delivery d JOIN dataflow.subscription s ON s.id = d.subscription_id;
COMMENT ON VIEW dataflow.deliveries IS 'Webhook deliveries and their state (no URLs, no secrets)';
COMMENT ON COLUMN dataflow.deliveries.id IS 'Delivery id; webhook-id is msg_<id>';
COMMENT ON COLUMN dataflow.deliveries.subscription IS 'Subscription name';
COMMENT ON COLUMN dataflow.deliveries.event_id IS 'The dataflow.event this delivery reports';
COMMENT ON COLUMN dataflow.deliveries.dataset IS 'Dataset of the event';
COMMENT ON COLUMN dataflow.deliveries.key IS 'Chunk key of the event';
COMMENT ON COLUMN dataflow.deliveries.type IS 'Event type, chunk.<new status>';
COMMENT ON COLUMN dataflow.deliveries.status IS 'pending, delivered, or failed (gave up after the last retry)';
COMMENT ON COLUMN dataflow.deliveries.attempts IS 'Attempts made so far';
COMMENT ON COLUMN dataflow.deliveries.next_attempt_at IS 'When a pending delivery is due';
COMMENT ON COLUMN dataflow.deliveries.last_attempt_at IS 'When it was last attempted';
COMMENT ON COLUMN dataflow.deliveries.last_http_status IS 'HTTP status of the last attempt (NULL: no response)';
COMMENT ON COLUMN dataflow.deliveries.last_error IS 'Why the last attempt failed';
COMMENT ON COLUMN dataflow.deliveries.created_at IS 'When the event was recorded';
COMMENT ON COLUMN dataflow.deliveries.finished_at IS 'When it was delivered or given up';

-- ---- calls made by the background worker ----------------------------------

-- This install's identity: one row, a random UUID made by CREATE EXTENSION (and by the
-- update to 0.2.0), kept by pg_dump (95_dump.sql). It is part of every Prefect
-- idempotency key (_worker_prefect_runs, docs/engines.md "Prefect"): Prefect keeps keys
-- unique per deployment, whoever sends them, so two installs sharing a Prefect (two
-- databases, DROP/CREATE EXTENSION) never adopt each other's flow runs. A restored copy
-- keeps the id of its source; docs/engines.md says how to give it its own.
CREATE TABLE dataflow.install (
  one        boolean PRIMARY KEY DEFAULT true CHECK (one),
  id         uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
  created_at timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON dataflow.install FROM PUBLIC;
COMMENT ON TABLE dataflow.install IS
  'This install''s id (one row, a random UUID made by CREATE EXTENSION): part of every Prefect idempotency key';
-- A restore loads the dumped row after CREATE EXTENSION made one: the loaded row
-- replaces it (COPY fires this trigger), so the restored database keeps its id.
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

-- What the worker sends for an airflow or prefect run, so an interrupted Airflow
-- trigger or Prefect create_flow_run can be sent again (and adopted: 409 from Airflow,
-- the same flow run for the same idempotency key from Prefect) after a restart. Kept
-- without the job's secret params (the task as lease() gave it minus
-- dataflow._without_secrets); a resend merges the job's secret params as they are then
-- (_worker_airflow_runs, _worker_prefect_runs).
CREATE TABLE dataflow._dispatch (
  run_id     bigint PRIMARY KEY,
  task       jsonb NOT NULL,
  triggered  boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON dataflow._dispatch FROM PUBLIC;

-- Jobs the worker dispatches that have due queued chunks (or an incremental batch to
-- cut), best first; secret_params only for masking them in what the engine answers
-- (core/redact.h).
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

-- Lease for the worker; Airflow runs get their dag_run_id, http runs their
-- Idempotency-Key (both dataflow-<run id>) recorded at once as external_id; a Prefect
-- run's external_id is its flow run id, recorded when create_flow_run answers.
-- Airflow and Prefect runs are sent by the follower (_worker_airflow_runs,
-- _worker_prefect_runs) from their _dispatch row.
-- The lease runs in a subtransaction: when it waits longer than the worker's
-- lock_timeout (dataflow.worker_lock_timeout) for a lock another session holds
-- (the job's or pool's concurrency lock, an incremental cut, a row), nothing of
-- it is kept and one row with run_id NULL and job p_job says so, so the worker
-- skips the job for a while instead of aborting its whole claim.
-- The job row is share-locked first (FOR KEY SHARE: alter_job takes it FOR UPDATE
-- before it writes job_secret), so the secret params lease() merges are the ones taken
-- out again for _dispatch: an alter_job in between waits for this commit, whether or not
-- the job had a job_secret row yet (a lock on that row would lock nothing without one).
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

-- Live Airflow runs of the worker: to trigger (not yet acknowledged) or poll
-- (secret_params: for masking them in Airflow's answers).
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

-- Live Prefect runs of the worker: to create (not yet acknowledged) or poll, with what
-- the idempotency key of their flow run is made of (docs/engines.md, "Prefect";
-- core/prefect.h builds it): dataflow-<install id>-<chunk id>-v<version>-r<run id>, so
-- a resend after an ambiguous create adopts the flow run Prefect made for this run, and
-- neither a later attempt nor another install ever adopts it. job: the create's answer
-- is adopted only if its parameters name this run of this job; secret_params: for
-- masking them in Prefect's answers.
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

-- Records one dispatch outcome, as one element of _worker_results (which the worker
-- calls once per recording pass), and raises on any error: a lease that is no longer
-- live (expired, superseded, cancelled), or an answer PostgreSQL refuses. p_info is
-- the engine's JSON text, cast here, so a refusal is an error of this result and not
-- of the statement recording the pass.
-- 'retry' with p_retry_after (a 429/503 with Retry-After, already capped): the
-- chunk's next attempt waits exactly that long instead of the job's backoff.
-- 'gone' (the endpoint answered 410 Gone): the run fails without retry and the
-- job is paused, so its other chunks are not sent to a vanished endpoint.
-- 'pending' with a Prefect flow run id for a run that has none yet (create_flow_run's
-- answer): the id is stored first, under the chunk's lock, even when the run is no
-- longer live: a cancel that committed while the create was in flight owes Prefect a
-- stop, which is made due again here (a later cancel finds the id in the run).
-- 'pending' with a flow run CANCELLING or PAUSED for longer than the job's lease_for
-- (counted from the first poll that found it so, info.prefect.since): the run fails,
-- not retried, instead of holding its concurrency slot for ever.
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

-- Records the dispatch outcomes of one recording pass of the worker; element k of the
-- arrays is one result (see _worker_record). The pass is recorded in one subtransaction
-- (no subtransaction per result: a pass of hundreds would overflow the subtransaction
-- cache); when that fails, it is undone and each result is recorded in its own, so one
-- bad result affects only its own run:
--   - an answer PostgreSQL refuses (an info that is not jsonb, a value out of range:
--     SQLSTATE class 22) fails its run (retried while attempts remain) with the reason,
--     "engine answer is not valid JSON for PostgreSQL: …" or "engine answer refused by
--     PostgreSQL: …";
--   - any other error (a lease no longer live, …) leaves the run as it was: the result is
--     not recorded and reported back.
-- Serialization failures and deadlocks are raised, not caught: the worker retries the
-- whole transaction. Returns one row per result that was not recorded as given: item k,
-- whether its run was recorded (as failed), the SQLSTATE and the reason.
CREATE FUNCTION dataflow._worker_results(p_token uuid[], p_kind text[], p_row_count bigint[], p_checksum text[],
                                         p_info text[], p_location text[], p_error text[], p_retry boolean[],
                                         p_retry_after integer[])
RETURNS TABLE (item integer, recorded boolean, error_code text, problem text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off AS $$
DECLARE n integer := cardinality(p_token); k integer; state text; msg text; bad text; detail text;
BEGIN
  IF n IS NULL OR cardinality(p_kind) IS DISTINCT FROM n OR cardinality(p_row_count) IS DISTINCT FROM n
     OR cardinality(p_checksum) IS DISTINCT FROM n OR cardinality(p_info) IS DISTINCT FROM n
     OR cardinality(p_location) IS DISTINCT FROM n OR cardinality(p_error) IS DISTINCT FROM n
     OR cardinality(p_retry) IS DISTINCT FROM n OR cardinality(p_retry_after) IS DISTINCT FROM n THEN
    RAISE EXCEPTION 'result arrays must all have the same length' USING ERRCODE = '22023',
      HINT = 'Pass one element per result in each array (NULL elements where there is no value).';
  END IF;
  BEGIN
    FOR k IN 1 .. n LOOP
      PERFORM dataflow._worker_record(p_token[k], p_kind[k], p_row_count[k], p_checksum[k], p_info[k],
                                      p_location[k], p_error[k], p_retry[k], p_retry_after[k]);
    END LOOP;
    RETURN;
  EXCEPTION
    WHEN serialization_failure OR deadlock_detected THEN
      RAISE;
    WHEN OTHERS THEN
      NULL;  -- undone: each result on its own below
  END;
  FOR k IN 1 .. n LOOP
    state := NULL;
    BEGIN
      PERFORM dataflow._worker_record(p_token[k], p_kind[k], p_row_count[k], p_checksum[k], p_info[k],
                                      p_location[k], p_error[k], p_retry[k], p_retry_after[k]);
    EXCEPTION
      WHEN serialization_failure OR deadlock_detected THEN
        RAISE;
      WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    END;
    CONTINUE WHEN state IS NULL;
    item := k;
    error_code := state;
    recorded := false;
    problem := msg;
    bad := NULL;
    IF p_kind[k] = 'succeeded' THEN
      BEGIN
        PERFORM p_info[k]::jsonb;
      EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS bad = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
        bad := bad || coalesce(' (' || rtrim(nullif(detail, ''), '.') || ')', '');
      END;
    END IF;
    IF bad IS NOT NULL OR state LIKE '22%' THEN
      problem := CASE WHEN bad IS NOT NULL THEN 'engine answer is not valid JSON for PostgreSQL: ' || bad
                      ELSE 'engine answer refused by PostgreSQL: ' || msg END;
      BEGIN
        PERFORM dataflow._fail(p_token[k], problem, true, NULL);
        recorded := true;
      EXCEPTION
        WHEN serialization_failure OR deadlock_detected THEN
          RAISE;
        WHEN OTHERS THEN
          GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
          error_code := state;
          problem := problem || '; not recorded: ' || msg;
      END;
    END IF;
    RETURN NEXT;
  END LOOP;
END $$;

-- Due deliveries, earliest due first, never overtaking an earlier pending delivery
-- of the same chunk to the same subscription (per-chunk order). p_full lists
-- the subscriptions that already use their share of the worker's HTTP window
-- (a hanging receiver must not starve the others). PL/pgSQL for a cached generic
-- plan that walks delivery_due in order and stops at p_limit, with the chunk-order
-- check as one index probe per row: the set-based form scanned, checked and sorted
-- every pending row per claim (15 ms at 5,000 pending, growing with the backlog).
CREATE FUNCTION dataflow._worker_deliveries(p_limit integer, p_exclude bigint[], p_full integer[])
RETURNS TABLE (id bigint, msg_id text, ts bigint, url text, secret text, body text, attempts integer,
               subscription_id integer)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET enable_sort = off SET enable_bitmapscan = off
SET enable_seqscan = off SET jit = off AS $$
BEGIN
  RETURN QUERY
  SELECT d.id, 'msg_' || d.id, extract(epoch FROM now())::bigint, s.url, s.secret, d.payload::text, d.attempts,
         d.subscription_id
    FROM dataflow.delivery d JOIN dataflow.subscription s ON s.id = d.subscription_id
   WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND s.enabled
     AND d.id <> ALL (p_exclude) AND d.subscription_id <> ALL (p_full)
     AND (SELECT e.id FROM dataflow.delivery e
           WHERE e.subscription_id = d.subscription_id AND e.chunk_id = d.chunk_id
             AND e.status = 'pending' AND e.id < d.id
           LIMIT 1) IS NULL
   ORDER BY d.next_attempt_at, d.id
   LIMIT p_limit;
END $$;

-- Milliseconds until the next delivery retry or dispatchable chunk becomes due
-- (NULL: nothing waits), so the worker need not poll for backoffs. Only future
-- times count: work already due but not claimed waits for a slot (a finishing
-- request triggers the next claim) and must not hide the next backoff expiry.
-- Rounded up, so the worker never wakes a fraction of a millisecond early and
-- finds nothing due yet.
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

-- One recording of delivery attempts (see _delivery_results), raising on any error.
-- Returns the names of the subscriptions it disabled (410 Gone).
CREATE FUNCTION dataflow._delivery_record(p_id bigint[], p_http_status integer[], p_error text[],
                                          p_retry_in_seconds integer[], p_duration_ms integer[],
                                          p_gone boolean[])
RETURNS SETOF text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off SET jit = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
BEGIN
  RETURN QUERY
  WITH r AS (
    SELECT r.i, r.id, r.http_status, left(r.error, 1000) AS error, r.retry_in, r.duration_ms,
           coalesce(r.gone, false) AS gone, r.error IS NULL AND r.http_status BETWEEN 200 AND 299 AS ok
      FROM unnest(p_id, p_http_status, p_error, p_retry_in_seconds, p_duration_ms, p_gone)
           WITH ORDINALITY AS r(id, http_status, error, retry_in, duration_ms, gone, i)
  ), u AS (
    UPDATE dataflow.delivery d
       SET attempts = d.attempts + 1, last_attempt_at = now(), last_http_status = r.http_status,
           last_error = r.error,
           status = CASE WHEN r.gone THEN d.status WHEN r.ok THEN 'delivered'
                         WHEN r.retry_in IS NULL THEN 'failed' ELSE 'pending' END,
           next_attempt_at = CASE WHEN r.gone OR r.ok OR r.retry_in IS NULL THEN d.next_attempt_at
                                  ELSE now() + make_interval(secs => r.retry_in) END,
           finished_at = CASE WHEN r.gone THEN d.finished_at WHEN r.ok OR r.retry_in IS NULL THEN now() END
      FROM r
     WHERE d.id = r.id AND d.status = 'pending'
    RETURNING r.i, d.id, d.attempts, d.subscription_id, r.http_status, r.error, r.duration_ms, r.gone
  ), attempt AS (
    INSERT INTO dataflow.delivery_attempt (delivery_id, attempt, http_status, error, duration_ms)
    SELECT u.id, u.attempts, u.http_status, u.error, u.duration_ms FROM u
    ON CONFLICT DO NOTHING
  ), gone AS (
    SELECT DISTINCT ON (u.subscription_id) u.subscription_id, u.error
      FROM u WHERE u.gone ORDER BY u.subscription_id, u.i
  )
  UPDATE dataflow.subscription s SET enabled = false, disabled_at = now(), disabled_reason = gone.error
    FROM gone
   WHERE s.id = gone.subscription_id AND s.enabled
  RETURNING s.name;
END $$;

-- Records the delivery attempts of one recording pass of the worker in one
-- statement (one call per pass instead of one per delivery). Element i of the
-- arrays is one attempt: the delivery id (distinct), the HTTP status (NULL: no
-- response), the error (NULL: delivered when the status is 2xx), the delay before
-- the next attempt (NULL after a failure: give up; already the Retry-After when
-- the receiver sent one) and whether the receiver answered 410 Gone. A gone attempt
-- is recorded, the delivery stays pending, and the subscription is disabled until
-- enable_subscription() (its reason is the first gone attempt's error). Results of
-- deliveries no longer pending (redelivered meanwhile, pruned) are ignored, as are
-- repeats of an attempt already recorded.
-- The statement runs in a subtransaction; when it fails, it is undone and each attempt
-- is recorded on its own, so one attempt that cannot be recorded affects no other. Such
-- an attempt still counts: attempts + 1, last_error "attempt not recorded: …", due again
-- in a minute (not at once, pass after pass). Serialization failures and deadlocks are
-- raised, not caught: the worker retries the whole transaction. Returns one row per
-- attempt not recorded as given: item i, the SQLSTATE and the reason.
CREATE FUNCTION dataflow._delivery_results(p_id bigint[], p_http_status integer[], p_error text[],
                                           p_retry_in_seconds integer[], p_duration_ms integer[],
                                           p_gone boolean[])
RETURNS TABLE (item integer, error_code text, problem text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off SET jit = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE sname text; names text[]; n integer := cardinality(p_id); k integer; state text; msg text;
BEGIN
  IF n IS NULL OR cardinality(p_http_status) IS DISTINCT FROM n OR cardinality(p_error) IS DISTINCT FROM n
     OR cardinality(p_retry_in_seconds) IS DISTINCT FROM n OR cardinality(p_duration_ms) IS DISTINCT FROM n
     OR cardinality(p_gone) IS DISTINCT FROM n THEN
    RAISE EXCEPTION 'delivery result arrays must all have the same length' USING ERRCODE = '22023',
      HINT = 'Pass one element per attempt in each array (NULL elements where there is no value).';
  END IF;
  BEGIN
    names := ARRAY(SELECT dataflow._delivery_record(p_id, p_http_status, p_error, p_retry_in_seconds,
                                                    p_duration_ms, p_gone));
  EXCEPTION
    WHEN serialization_failure OR deadlock_detected THEN
      RAISE;
    WHEN OTHERS THEN
      names := NULL;  -- undone: each attempt on its own below
  END;
  IF names IS NULL THEN
    names := '{}';
    FOR k IN 1 .. n LOOP
      state := NULL;
      BEGIN
        names := names || ARRAY(SELECT dataflow._delivery_record(ARRAY[p_id[k]], ARRAY[p_http_status[k]],
                                                                 ARRAY[p_error[k]], ARRAY[p_retry_in_seconds[k]],
                                                                 ARRAY[p_duration_ms[k]], ARRAY[p_gone[k]]));
      EXCEPTION
        WHEN serialization_failure OR deadlock_detected THEN
          RAISE;
        WHEN OTHERS THEN
          GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
      END;
      CONTINUE WHEN state IS NULL;
      item := k;
      error_code := state;
      problem := msg;
      BEGIN
        UPDATE dataflow.delivery d
           SET attempts = d.attempts + 1, last_attempt_at = now(), last_http_status = p_http_status[k],
               last_error = left('attempt not recorded: ' || msg, 1000),
               next_attempt_at = now() + interval '1 minute'
         WHERE d.id = p_id[k] AND d.status = 'pending';
      EXCEPTION
        WHEN serialization_failure OR deadlock_detected THEN
          RAISE;
        WHEN OTHERS THEN
          GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
          problem := problem || '; not counted either: ' || msg;
      END;
      RETURN NEXT;
    END LOOP;
  END IF;
  FOREACH sname IN ARRAY names LOOP
    RAISE WARNING 'pg_dataflow worker: subscription "%" disabled: its receiver answered 410 Gone', sname
      USING HINT = 'Its pending deliveries wait; fix the receiver or the URL, then call '
                   'dataflow.enable_subscription(''' || sname || ''').';
  END LOOP;
END $$;

-- Records one delivery attempt, as one element of _delivery_results (which the
-- worker calls once per recording pass); an attempt it could not record is a warning.
CREATE FUNCTION dataflow._delivery_result(p_id bigint, p_http_status integer, p_error text,
                                          p_retry_in_seconds integer, p_duration_ms integer,
                                          p_gone boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE f record;
BEGIN
  FOR f IN SELECT * FROM dataflow._delivery_results(ARRAY[p_id], ARRAY[p_http_status], ARRAY[p_error],
                                                    ARRAY[p_retry_in_seconds], ARRAY[p_duration_ms],
                                                    ARRAY[p_gone]) LOOP
    RAISE WARNING 'delivery attempt of delivery % not recorded: % (SQLSTATE %)', p_id, f.problem, f.error_code;
  END LOOP;
END $$;

-- Janitor: finished deliveries and dispatch records past retention.
CREATE FUNCTION dataflow._worker_prune(p_retention interval) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE n integer;
BEGIN
  DELETE FROM dataflow.delivery WHERE status <> 'pending' AND finished_at < now() - p_retention;
  GET DIAGNOSTICS n = ROW_COUNT;
  DELETE FROM dataflow._dispatch x
   WHERE NOT EXISTS (SELECT FROM dataflow.run r WHERE r.id = x.run_id AND r.status = 'running');
  RETURN n;
END $$;

REVOKE ALL ON FUNCTION dataflow._worker_jobs(), dataflow._worker_claim(text, integer),
  dataflow._worker_airflow_runs(), dataflow._worker_prefect_runs(),
  dataflow._worker_record(uuid, text, bigint, text, text, text, text, boolean, integer),
  dataflow._worker_results(uuid[], text[], bigint[], text[], text[], text[], text[], boolean[], integer[]),
  dataflow._worker_deliveries(integer, bigint[], integer[]), dataflow._worker_next_due(),
  dataflow._delivery_result(bigint, integer, text, integer, integer, boolean),
  dataflow._delivery_results(bigint[], integer[], text[], integer[], integer[], boolean[]),
  dataflow._delivery_record(bigint[], integer[], text[], integer[], integer[], boolean[]),
  dataflow._worker_prune(interval),
  dataflow._event_fanout(), dataflow._new_webhook_secret(),
  dataflow.subscribe(text, text, text[], text[], text), dataflow.unsubscribe(text),
  dataflow.drop_subscription(text), dataflow.enable_subscription(text), dataflow.redeliver(bigint),
  dataflow.redeliver(text, timestamptz, boolean) FROM PUBLIC;
