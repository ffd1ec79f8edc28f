-- The lease lifecycle: lease -> heartbeat... -> complete | fail; reap() expires
-- leases whose deadline passed. Every call that changes a run presents its
-- token, and only the live lease (status running, deadline not passed) counts.

-- The params of an incremental job's run: {"batch": {number, keys, lowest_key,
-- highest_key, rows}} over the incremental inputs the run reads (rows: the sum of
-- their row_count, NULL counting 0, as the batch_max_rows cap counts them). A
-- function of its own, so lease() sets up its aggregates only for incremental jobs.
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

-- The newest available chunk of each `latest` input of a job, share-locked until commit
-- so that a resubmit or invalidation of it cannot commit between lease()'s choice and the
-- lineage it records. Never waited for (NOWAIT): lease() already holds the limit locks
-- (7401, 7402, and 7406 from the batch cut), which others take after a chunk lock, and
-- an operator's open transaction on the input must not stall every job of the pool.
-- NULL when that chunk is busy, or an input has no available chunk (its only one was
-- resubmitted or invalidated after the consumers were queued): the job is held back for
-- this call of lease().
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

-- lease, heartbeat and complete are C (src/pg/hot_path.cpp, docs/internals.md "The hot
-- path"): prepared statements kept per backend, the queue, counters and wake-up written
-- by the same code. The rare cases call the SQL helpers here (_lease_latest, _cut_batch,
-- _complete_stale, _propagate, _not_live).
CREATE FUNCTION dataflow.lease(job text, worker text, max_chunks integer DEFAULT 1,
                               lease_for interval DEFAULT NULL)
RETURNS SETOF dataflow.task
AS 'MODULE_PATHNAME', 'df_lease' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION dataflow.lease(text, text, integer, interval) IS
  'Lease up to max_chunks runnable chunks of a job for a worker: returns one task per chunk with its '
  'token, inputs (exact versions and locations), params (the job''s secret params merged in), output location '
  'and deadline; empty when nothing is runnable';

-- Why a token is not the live lease any more, raised as 55000 (workers and dataflow-run
-- look for that SQLSTATE, never for the text): what became of the run and when, what
-- became of its chunk, and what the caller should do. p_pos is the token's position in a
-- complete_many() call. The error path only: _live_run and complete_many call it after
-- their checks failed, so the success path costs nothing more. DETAIL only when there is
-- something to say (an empty DETAIL prints as "DETAIL:  ").
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

-- The live run behind a token, its chunk locked; raises unless it is the live lease.
-- With p_held, a run that a cascading resubmit superseded while it worked is returned
-- too (status 'superseded', finished_at NULL): it still holds its inputs, and its
-- complete/fail/heartbeat end or extend that hold. Deadlines are compared with the
-- clock, never with now(): a complete() inside a load transaction that began before
-- the lease expired must not accept it.
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

CREATE FUNCTION dataflow.heartbeat(token uuid, extend_by interval DEFAULT NULL)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'df_heartbeat' LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION dataflow.heartbeat(uuid, interval) IS
  'Keep a lease alive: moves its deadline to now + extend_by (default the job''s lease_for); returns it. '
  'A run superseded by a resubmit meanwhile keeps holding its inputs and gets a WARNING (SQLSTATE 01DF1): stop early';

-- complete() of a live run whose chunk moved on or one of whose inputs is no longer the
-- version it read (re-produced, resubmitted, invalidated): the run is recorded as
-- superseded, and a chunk still in its lease goes back to queued or waiting. complete()
-- (C) checked the run under its chunk's lock; this runs under the same lock.
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

-- Complete several live leases at once: what complete() does for each token in
-- turn, in one transaction and set-based (one UPDATE per table, one propagation
-- per dataset), for workers that lease many chunks at a time. All or nothing: a
-- token that is not a live lease raises and completes none. Tokens never appear
-- in errors; positions (1-based) do.
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

-- Where a chunk goes after a failed or expired attempt.
-- p_delay (seconds) replaces the job's backoff: an engine's Retry-After.
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

-- fail() with an optional delay before the retry (seconds; NULL: the job's backoff).
CREATE FUNCTION dataflow._fail(p_token uuid, p_error text, p_retry boolean, p_delay double precision)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off
-- index probes whatever the statistics said when this session made its plans (docs/internals.md, "Planner settings")
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_mergejoin = off SET enable_hashjoin = off
SET plan_cache_mode = force_generic_plan AS $$
DECLARE r dataflow.run := dataflow._live_run(p_token, true);
BEGIN
  IF p_error IS NULL OR p_retry IS NULL THEN
    RAISE EXCEPTION 'error and retry must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF r.status = 'superseded' THEN
    -- A superseded run stopping early: it ends, releasing its inputs; its chunk was reset.
    UPDATE dataflow.run SET finished_at = clock_timestamp(), error = left(r.error || '; then failed: ' || p_error, 4000)
     WHERE id = r.id AND finished_at IS NULL;
    RETURN (SELECT c.status FROM dataflow.chunk c WHERE c.id = r.chunk_id);
  END IF;
  -- The clock, as for the retry's not_before below (the gap is the backoff asked for).
  UPDATE dataflow.run SET status = 'failed', finished_at = clock_timestamp(), error = left(p_error, 4000)
   WHERE id = r.id;
  RETURN dataflow._retry_or_fail(r.chunk_id, r.id, p_error, p_retry, r.worker, 'fail', p_delay);
END $$;

CREATE FUNCTION dataflow.fail(token uuid, error text, retry boolean DEFAULT true)
RETURNS text LANGUAGE sql SET search_path = pg_catalog, pg_temp
RETURN dataflow._fail(token, error, retry, NULL);
COMMENT ON FUNCTION dataflow.fail(uuid, text, boolean) IS
  'Finish a live lease with an error: the chunk is retried after an exponential, jittered backoff '
  'while attempts remain and retry is true, else it is failed; returns the chunk''s new status';

CREATE FUNCTION dataflow.reap() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off SET enable_seqscan = off AS $$
DECLARE r record; n integer := 0; held integer;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    PERFORM dataflow._read_committed();   -- raises (00_schema.sql)
  END IF;
  FOR r IN
    SELECT run.id, run.chunk_id, run.deadline, run.worker FROM dataflow.run
     WHERE run.status = 'running' AND run.deadline < clock_timestamp()
     ORDER BY run.deadline
     LIMIT 10000
       FOR UPDATE SKIP LOCKED
  LOOP
    -- The chunk is locked after the run here (against the usual order): never wait for it,
    -- leave a busy chunk to the next reap.
    PERFORM 1 FROM dataflow.chunk WHERE id = r.chunk_id FOR UPDATE SKIP LOCKED;
    CONTINUE WHEN NOT FOUND;
    UPDATE dataflow.run
       SET status = 'expired', finished_at = clock_timestamp(),
           error = 'lease expired at ' || r.deadline || ' without a heartbeat from ' || r.worker
     WHERE id = r.id;
    PERFORM dataflow._retry_or_fail(r.chunk_id, r.id, 'lease expired (worker ' || r.worker || ')', true,
                                    'reaper', 'expired');
    n := n + 1;
  END LOOP;
  -- Superseded runs that stopped heartbeating: their lease is over, and with it their hold
  -- on their inputs (_claim counts them until finished_at is set here). As above, never
  -- waiting: a run or chunk someone holds (a heartbeat of that run in an open
  -- transaction) is left to the next reap; and the chunk lock is what every other ender
  -- of a run holds (_live_run), so none of them can end or extend it meanwhile.
  FOR r IN
    SELECT run.id, run.chunk_id FROM dataflow.run
     WHERE run.status = 'superseded' AND run.finished_at IS NULL AND run.deadline < clock_timestamp()
     ORDER BY run.deadline
     LIMIT 10000
       FOR UPDATE SKIP LOCKED
  LOOP
    PERFORM 1 FROM dataflow.chunk WHERE id = r.chunk_id FOR UPDATE SKIP LOCKED;
    CONTINUE WHEN NOT FOUND;
    UPDATE dataflow.run SET finished_at = deadline, error = left(error || '; lease expired', 4000)
     WHERE id = r.id AND finished_at IS NULL AND deadline < clock_timestamp();
    GET DIAGNOSTICS held = ROW_COUNT;
    n := n + held;
  END LOOP;
  RETURN n;
END $$;
COMMENT ON FUNCTION dataflow.reap() IS
  'Expire leases whose deadline passed: their chunks are retried with backoff, or failed when attempts are '
  'spent; returns how many leases expired';
