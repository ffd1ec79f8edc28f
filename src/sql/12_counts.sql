-- Counters maintained incrementally so the status views answer in
-- milliseconds at millions of chunks, without counting by scans.
--
-- chunk_count holds per (dataset, backfill, shard) the number of chunks in
-- each status; readers sum over shards. A writer updates the first shard row
-- no other transaction holds (FOR UPDATE SKIP LOCKED) and adds a row when all
-- are held, so it never waits for anyone: a worker that keeps its transaction
-- open (complete() in the same transaction as a long load) cannot stall the
-- others. Shards may go negative; their sum is exact. done_minute buckets
-- completions and failures per minute the same way, for throughput and ETA.

CREATE TABLE dataflow.backfill (
  id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  dataset_id integer NOT NULL,
  from_key   text NOT NULL,
  to_key     text NOT NULL,
  created    bigint NOT NULL DEFAULT 0,
  actor      text NOT NULL,
  at         timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE dataflow.backfill IS 'One row per expect() call that created chunks';

ALTER TABLE dataflow.chunk ADD COLUMN backfill_id integer NOT NULL DEFAULT 0;

CREATE TABLE dataflow.chunk_count (
  dataset_id  integer NOT NULL,
  backfill_id integer NOT NULL,
  shard       smallint NOT NULL,
  waiting     bigint NOT NULL DEFAULT 0,
  queued      bigint NOT NULL DEFAULT 0,
  running     bigint NOT NULL DEFAULT 0,
  ready       bigint NOT NULL DEFAULT 0,
  validated   bigint NOT NULL DEFAULT 0,
  invalid     bigint NOT NULL DEFAULT 0,
  failed      bigint NOT NULL DEFAULT 0,
  skipped     bigint NOT NULL DEFAULT 0,
  cancelled   bigint NOT NULL DEFAULT 0,
  resubmit    bigint NOT NULL DEFAULT 0,
  newest_ord  bigint,
  newest_at   timestamptz,
  PRIMARY KEY (dataset_id, backfill_id, shard)
) WITH (fillfactor = 50);

CREATE TABLE dataflow.done_minute (
  dataset_id integer NOT NULL,
  minute     timestamptz NOT NULL,
  shard      smallint NOT NULL,
  succeeded  integer NOT NULL DEFAULT 0,
  failed     integer NOT NULL DEFAULT 0,
  PRIMARY KEY (dataset_id, minute, shard)
) WITH (fillfactor = 70);

CREATE FUNCTION dataflow._shard() RETURNS smallint
LANGUAGE sql STABLE PARALLEL SAFE
RETURN (pg_catalog.pg_backend_pid() OPERATOR(pg_catalog.%) 16)::smallint;

-- A shard number for a new counter row: random, so that two transactions
-- adding rows at once practically never collide (a collision would wait).
CREATE FUNCTION dataflow._new_shard() RETURNS smallint
LANGUAGE sql VOLATILE PARALLEL SAFE
RETURN (pg_catalog.random() OPERATOR(pg_catalog.*) 32000)::smallint;

-- Move p_n chunks from status p_old to p_new in a counter row nobody else holds.
CREATE FUNCTION dataflow._count(p_dataset integer, p_backfill integer, p_old text, p_new text,
                                p_n bigint, p_ord bigint, p_at timestamptz)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan AS $$
DECLARE s smallint := dataflow._shard();
BEGIN
  LOOP
    UPDATE dataflow.chunk_count
       SET waiting   = waiting   + CASE p_new WHEN 'waiting'   THEN p_n ELSE 0 END - CASE p_old WHEN 'waiting'   THEN p_n ELSE 0 END,
           queued    = queued    + CASE p_new WHEN 'queued'    THEN p_n ELSE 0 END - CASE p_old WHEN 'queued'    THEN p_n ELSE 0 END,
           running   = running   + CASE p_new WHEN 'running'   THEN p_n ELSE 0 END - CASE p_old WHEN 'running'   THEN p_n ELSE 0 END,
           ready     = ready     + CASE p_new WHEN 'ready'     THEN p_n ELSE 0 END - CASE p_old WHEN 'ready'     THEN p_n ELSE 0 END,
           validated = validated + CASE p_new WHEN 'validated' THEN p_n ELSE 0 END - CASE p_old WHEN 'validated' THEN p_n ELSE 0 END,
           invalid   = invalid   + CASE p_new WHEN 'invalid'   THEN p_n ELSE 0 END - CASE p_old WHEN 'invalid'   THEN p_n ELSE 0 END,
           failed    = failed    + CASE p_new WHEN 'failed'    THEN p_n ELSE 0 END - CASE p_old WHEN 'failed'    THEN p_n ELSE 0 END,
           skipped   = skipped   + CASE p_new WHEN 'skipped'   THEN p_n ELSE 0 END - CASE p_old WHEN 'skipped'   THEN p_n ELSE 0 END,
           cancelled = cancelled + CASE p_new WHEN 'cancelled' THEN p_n ELSE 0 END - CASE p_old WHEN 'cancelled' THEN p_n ELSE 0 END,
           resubmit  = resubmit  + CASE p_new WHEN 'resubmit'  THEN p_n ELSE 0 END - CASE p_old WHEN 'resubmit'  THEN p_n ELSE 0 END,
           newest_ord = CASE WHEN p_ord IS NOT NULL THEN greatest(newest_ord, p_ord) ELSE newest_ord END,
           newest_at = CASE WHEN p_at IS NOT NULL THEN greatest(newest_at, p_at) ELSE newest_at END
     WHERE (dataset_id, backfill_id, shard) =
           (SELECT k.dataset_id, k.backfill_id, k.shard FROM dataflow.chunk_count k
             WHERE k.dataset_id = p_dataset AND k.backfill_id = p_backfill
             ORDER BY k.shard <> s, k.shard
             LIMIT 1
               FOR UPDATE SKIP LOCKED);
    EXIT WHEN FOUND;
    INSERT INTO dataflow.chunk_count (dataset_id, backfill_id, shard)
    VALUES (p_dataset, p_backfill, dataflow._new_shard())
    ON CONFLICT DO NOTHING;
  END LOOP;
END $$;

CREATE FUNCTION dataflow._chunk_counted_update() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan AS $$
DECLARE avail boolean := dataflow._level(NEW.status) > 0;
BEGIN
  PERFORM dataflow._count(NEW.dataset_id, NEW.backfill_id, OLD.status, NEW.status, 1,
                          CASE WHEN avail THEN NEW.ord END, CASE WHEN avail THEN NEW.available_at END);
  IF OLD.status = 'running' AND NEW.status IN ('ready', 'failed', 'queued') THEN
    LOOP
      UPDATE dataflow.done_minute
         SET succeeded = succeeded + (NEW.status = 'ready')::integer,
             failed = failed + (NEW.status <> 'ready')::integer
       WHERE (dataset_id, minute, shard) =
             (SELECT m.dataset_id, m.minute, m.shard FROM dataflow.done_minute m
               WHERE m.dataset_id = NEW.dataset_id AND m.minute = date_trunc('minute', now())
               ORDER BY m.shard LIMIT 1
                 FOR UPDATE SKIP LOCKED);
      EXIT WHEN FOUND;
      INSERT INTO dataflow.done_minute (dataset_id, minute, shard)
      VALUES (NEW.dataset_id, date_trunc('minute', now()), dataflow._new_shard())
      ON CONFLICT DO NOTHING;
    END LOOP;
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION dataflow._chunk_counted_insert() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT dataset_id, backfill_id, status, count(*) AS n,
                  max(ord) FILTER (WHERE dataflow._level(status) > 0) AS ord,
                  max(available_at) FILTER (WHERE dataflow._level(status) > 0) AS at
             FROM new_rows GROUP BY 1, 2, 3 LOOP
    PERFORM dataflow._count(r.dataset_id, r.backfill_id, NULL, r.status, r.n, r.ord, r.at);
  END LOOP;
  RETURN NULL;
END $$;

CREATE FUNCTION dataflow._chunk_counted_delete() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT dataset_id, backfill_id, status, count(*) AS n FROM old_rows GROUP BY 1, 2, 3 LOOP
    PERFORM dataflow._count(r.dataset_id, r.backfill_id, r.status, NULL, r.n, NULL, NULL);
  END LOOP;
  RETURN NULL;
END $$;

CREATE TRIGGER chunk_counted_update AFTER UPDATE OF status ON dataflow.chunk
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
  EXECUTE FUNCTION dataflow._chunk_counted_update();
CREATE TRIGGER chunk_counted_insert AFTER INSERT ON dataflow.chunk
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
  EXECUTE FUNCTION dataflow._chunk_counted_insert();
CREATE TRIGGER chunk_counted_delete AFTER DELETE ON dataflow.chunk
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
  EXECUTE FUNCTION dataflow._chunk_counted_delete();
