-- Cancel reaches the engine: when cancel() or pause_job(cancel_running => true) ends a
-- running run of a job whose work lives in an engine (http, airflow), a stop request
-- is recorded in the same transaction (_request_stop, called by _cancel in 40_work) and
-- the worker is woken on commit; the worker reads the due requests (_worker_stops),
-- sends each engine its stop with no transaction open, and records every attempt's
-- answer (_worker_stop_results) as an engine_stop event. The run itself is cancelled at
-- once in the database: the stop only tells the engine to stop working on it.

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
-- cancel_endpoint, or the connection's base URL; secret_params for masking them in the
-- engine's answer; create_unanswered: a Prefect run whose create_flow_run has not been
-- answered (no flow run id yet; the worker retries the stop, and recording the
-- create's answer makes it due again, _worker_record).
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
-- seconds), the engine's HTTP status (NULL: no answer) and what the worker kept of its
-- answer: the status and the parsed state/detail fields, never the raw body, with the
-- token, the connection's secret and the job's secret params masked (core/redact.h). Each attempt is an
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
