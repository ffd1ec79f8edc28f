-- The operator's questions: explain (the five questions), blockers (why it
-- waits, followed upstream to the root cause), upstream/downstream lineage,
-- and the dataset/job graph as Graphviz DOT.

CREATE FUNCTION dataflow._chunk_name(p_chunk bigint) RETURNS text
LANGUAGE sql STABLE
RETURN (SELECT d.name || '/' || c.key FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
         WHERE c.id = p_chunk);

-- Why a queued chunk is not running yet, for blockers() and explain(): the job is paused,
-- a latest input has no available chunk, a retry backoff, readers of the previous version
-- hold it; else where it is in its job's queue and what the live runs of the job fill.
-- The position is what a lease of the job would take before it: the queue rows of its
-- dataset in lease order (not_before, chunk id: lease()'s walk of queue_order), less the
-- chunks lease() passes over (held by readers of a previous version). A count by index,
-- bounded: it stops after 10,000 chunks ahead ("more than 10000 chunks ahead"), so that
-- blockers() stays cheap with a million queued. The limits are counted from live leases
-- (run_live_job, run_live_pool), as lease() counts them; the one that binds comes first,
-- and starting a worker is suggested only when no run of the job is live and no limit
-- binds.
-- Index probes only (queue_order, run_live_job, run_live_pool), whatever the statistics:
-- a sequential scan of queue would walk every queued chunk for the one at position 1.
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

CREATE TYPE dataflow.blocker AS (depth integer, dataset text, key text, status text, reason text);
COMMENT ON TYPE dataflow.blocker IS 'A row of blockers(): a chunk in the way, how far upstream, and why';

-- The walk probes dep by consumer (dep_consumer) for each chunk it reaches, whatever the
-- statistics say: planned as a join while dep looked empty, it compared every edge with the
-- whole work table (10,000 queued inputs of a wide window: 50 million comparisons, 11-18 s).
-- It visits chunks, not paths: UNION keeps one row per (chunk, depth, need), so a chunk
-- reached over many paths (diamonds, stacked windows: 10,000 x 10,000 paths) is expanded
-- once per depth, at most 50 depths (the graph is acyclic; the bound also ends the walk).
-- At most 100,000 rows are walked; past that a last row says the answer is cut short.
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

CREATE TYPE dataflow.lineage AS (
  depth integer, dataset text, key text, version integer, current_version integer, status text,
  run_id bigint, location text, relation text);
COMMENT ON TYPE dataflow.lineage IS
  'A row of upstream()/downstream(): a related chunk, how far, the version involved and its current one';

CREATE FUNCTION dataflow.upstream(dataset text, key text)
RETURNS SETOF dataflow.lineage
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE c dataflow.chunk := dataflow._chunk(upstream.dataset, upstream.key);
BEGIN
  RETURN QUERY
  WITH RECURSIVE up(chunk_id, version, depth, path) AS (
    SELECT ri.chunk_id, ri.version, 1, ARRAY[c.id, ri.chunk_id]
      FROM dataflow.run_input ri WHERE ri.run_id = c.run_id
    UNION ALL
    SELECT ri.chunk_id, ri.version, up.depth + 1, up.path || ri.chunk_id
      FROM up
      JOIN dataflow.chunk ic ON ic.id = up.chunk_id
      JOIN dataflow.run_input ri ON ri.run_id = ic.run_id
     WHERE up.depth < 50 AND NOT ri.chunk_id = ANY (up.path)
  )
  SELECT u.depth, ds.name, ch.key, u.version, ch.version, ch.status, ch.run_id, ch.location,
         CASE WHEN u.version = ch.version AND dataflow._level(ch.status) > 0 THEN 'read current version'
              ELSE 'read an older version' END
    FROM (SELECT DISTINCT ON (up.chunk_id) * FROM up ORDER BY up.chunk_id, up.depth) u
    JOIN dataflow.chunk ch ON ch.id = u.chunk_id
    JOIN dataflow.dataset ds ON ds.id = ch.dataset_id
   ORDER BY u.depth, ds.name, ch.ord, ch.key;
END $$;
COMMENT ON FUNCTION dataflow.upstream(text, text) IS
  'Lineage upstream: the exact input chunk versions the chunk was built from, recursively '
  '(version read vs current_version shows what is stale)';

CREATE FUNCTION dataflow.downstream(dataset text, key text)
RETURNS SETOF dataflow.lineage
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE c dataflow.chunk := dataflow._chunk(downstream.dataset, downstream.key);
BEGIN
  RETURN QUERY
  WITH RECURSIVE down(chunk_id, parent, depth, path) AS (
    SELECT dp.consumer, c.id, 1, ARRAY[c.id, dp.consumer] FROM dataflow.dep dp WHERE dp.input = c.id
    UNION ALL
    SELECT dp.consumer, down.chunk_id, down.depth + 1, down.path || dp.consumer
      FROM down JOIN dataflow.dep dp ON dp.input = down.chunk_id
     WHERE down.depth < 50 AND NOT dp.consumer = ANY (down.path)
  )
  SELECT d2.depth, ds.name, ch.key,
         (SELECT ri.version FROM dataflow.run_input ri WHERE ri.run_id = ch.run_id AND ri.chunk_id = d2.parent),
         ch.version, ch.status, ch.run_id, ch.location,
         CASE WHEN EXISTS (SELECT FROM dataflow.run_input ri
                            WHERE ri.run_id = ch.run_id AND ri.chunk_id = d2.parent
                              AND ri.version = (SELECT pc.version FROM dataflow.chunk pc WHERE pc.id = d2.parent))
                   AND dataflow._level(ch.status) > 0 THEN 'built from it'
              WHEN dataflow._level(ch.status) > 0 THEN 'built from an older version'
              ELSE 'will be built from it' END
    FROM (SELECT DISTINCT ON (down.chunk_id) * FROM down ORDER BY down.chunk_id, down.depth) d2
    JOIN dataflow.chunk ch ON ch.id = d2.chunk_id
    JOIN dataflow.dataset ds ON ds.id = ch.dataset_id
   ORDER BY d2.depth, ds.name, ch.ord, ch.key;
END $$;
COMMENT ON FUNCTION dataflow.downstream(text, text) IS
  'Lineage downstream: every chunk that needs this one, recursively, and whether it was built from it';

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
