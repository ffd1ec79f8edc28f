-- Time: schedule() expects new keys as time passes and records late chunks;
-- prune() keeps history tables bounded. Plain SQL so pull-only deployments
-- (no background worker) can call them from cron, and tests can drive them.
-- Keys are UTC: the date key of now() is now() at time zone 'UTC'.

CREATE INDEX event_at ON dataflow.event USING brin (at);

CREATE FUNCTION dataflow._ord_of_time(kind text, t timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN pg_catalog.floor(EXTRACT(epoch FROM t) OPERATOR(pg_catalog./)
                        CASE kind WHEN 'date' THEN 86400 ELSE 3600 END)::bigint;

CREATE FUNCTION dataflow.schedule() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d record;
  step bigint; cur bigint; nxt bigint; k bigint;
  made integer := 0; n integer;
BEGIN
  FOR d IN SELECT ds.*, (SELECT max(c.ord) FROM dataflow.chunk c WHERE c.dataset_id = ds.id) AS max_ord
             FROM dataflow.dataset ds
            WHERE ds.cadence IS NOT NULL AND ds.key_kind IN ('date', 'hour')
            ORDER BY ds.id LOOP
    step := greatest(1, (extract(epoch FROM d.cadence) / CASE d.key_kind WHEN 'date' THEN 86400 ELSE 3600 END)::bigint);
    cur := dataflow._ord_of_time(d.key_kind, now());
    nxt := coalesce(d.max_ord + step, cur);
    -- Catch up at most 1000 keys a call after a long outage.
    IF step = 1 THEN
      IF nxt <= cur THEN
        made := made + dataflow.expect(d.name, dataflow._key_text(d.key_kind, nxt),
                                       dataflow._key_text(d.key_kind, least(cur, nxt + 999)));
      END IF;
    ELSE
      k := nxt; n := 0;
      WHILE k <= cur AND n < 1000 LOOP
        made := made + dataflow.expect(d.name, dataflow._key_text(d.key_kind, k));
        k := k + step; n := n + 1;
      END LOOP;
    END IF;
  END LOOP;

  -- Late: not available past the end of its period plus the dataset's lateness,
  -- recorded once per chunk version. Only recent keys (100 periods) are looked at.
  INSERT INTO dataflow.event (dataset_id, chunk_id, key, run_id, version, from_status, to_status, actor, detail)
  SELECT c.dataset_id, c.id, c.key, c.run_id, c.version, c.status, 'late', 'scheduler',
         jsonb_build_object('due', dataflow._period_end(ds.key_kind, c.ord) + ds.lateness,
                            'lateness', ds.lateness)
    FROM dataflow.dataset ds
    JOIN dataflow.chunk c ON c.dataset_id = ds.id
   WHERE ds.lateness IS NOT NULL AND ds.key_kind IN ('date', 'hour')
     AND c.ord BETWEEN dataflow._ord_of_time(ds.key_kind, now() - ds.lateness) - 100
                   AND dataflow._ord_of_time(ds.key_kind, now() - ds.lateness)
     AND dataflow._level(c.status) = 0
     AND dataflow._period_end(ds.key_kind, c.ord) + ds.lateness < now()
     AND NOT EXISTS (SELECT FROM dataflow.event e
                      WHERE e.chunk_id = c.id AND e.to_status = 'late' AND e.version = c.version);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN made + n;
END $$;
COMMENT ON FUNCTION dataflow.schedule() IS
  'Expect the keys of datasets with a cadence up to now (UTC; at most 1000 per dataset per call) and record '
  'a late event for chunks overdue by their dataset''s lateness; returns chunks created + late events';

-- The retention floor: history younger than this is kept unless a dataflow_admin
-- prunes it. It is the dataflow.retention setting (PGC_SIGHUP: the server
-- configuration, written by a superuser), else 30 days.
CREATE FUNCTION dataflow._retention_floor() RETURNS interval
LANGUAGE sql STABLE PARALLEL SAFE
RETURN COALESCE(NULLIF(pg_catalog.current_setting('dataflow.retention', true), '')::interval,
                interval '30 days');

-- Day and month arithmetic in UTC, whatever the caller's TimeZone (a DST change must not
-- shorten the floor by an hour).
CREATE FUNCTION dataflow.prune(retention interval DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
  min_keep interval;
  keep interval;
  n bigint; total bigint := 0;
BEGIN
  -- The floor is a superuser setting of the library: load it first (a C function), so a
  -- value a caller SET before the library defined the setting is not what we read.
  PERFORM dataflow._key_ord('int', '0');
  min_keep := dataflow._retention_floor();
  keep := coalesce(retention, min_keep);
  -- Compared as cut-off times, not as intervals: interval comparison takes a month for 30
  -- days, so '1 mon' or a mixed-sign '-1000 mon 30030 days' compared as >= 30 days while
  -- now() - it was later than now() - 30 days (or in the future).
  IF now() - keep >= now() THEN
    RAISE EXCEPTION 'retention must be positive' USING ERRCODE = '22023',
          DETAIL = pg_catalog.format('now() - %s is not in the past.', keep);
  END IF;
  -- Shortening history below the floor is the admin's decision (like a dataset's own
  -- retention, which only the admin can set); an operator's prune keeps at least the floor.
  IF now() - keep > now() - min_keep AND NOT pg_has_role(dataflow._caller(), 'dataflow_admin', 'MEMBER') THEN
    RAISE EXCEPTION 'prune(%) would delete history younger than the retention floor (%)', keep, min_keep
      USING ERRCODE = '42501',
            DETAIL = 'Only members of dataflow_admin may prune events and runs younger than dataflow.retention.',
            HINT = 'Call dataflow.prune() without an argument (or with one of at least the floor); the floor is '
                   'the dataflow.retention setting, and a dataset''s own retention is set by an admin.';
  END IF;
  -- Events, oldest first, in bounded batches.
  DELETE FROM dataflow.event e
   WHERE e.id IN (SELECT ev.id FROM dataflow.event ev
                    LEFT JOIN dataflow.dataset d ON d.id = ev.dataset_id
                   WHERE ev.at < now() - coalesce(d.retention, keep)
                   ORDER BY ev.id LIMIT 50000);
  GET DIAGNOSTICS n = ROW_COUNT; total := total + n;
  -- Finished runs, except the one that produced a chunk's current version (its lineage).
  WITH old AS (
    SELECT r.id FROM dataflow.run r
      JOIN dataflow.chunk c ON c.id = r.chunk_id
      JOIN dataflow.dataset d ON d.id = c.dataset_id
     WHERE r.status <> 'running' AND r.finished_at < now() - coalesce(d.retention, keep)
       AND c.run_id IS DISTINCT FROM r.id
     ORDER BY r.id LIMIT 50000
  ), gone AS (
    DELETE FROM dataflow.run_input ri USING old WHERE ri.run_id = old.id
  )
  DELETE FROM dataflow.run r USING old WHERE r.id = old.id;
  GET DIAGNOSTICS n = ROW_COUNT; total := total + n;
  DELETE FROM dataflow.done_minute WHERE minute < now() - interval '2 days';
  GET DIAGNOSTICS n = ROW_COUNT; total := total + n;
  RETURN total;
END $$;
COMMENT ON FUNCTION dataflow.prune(interval) IS
  'Delete events and finished runs older than the dataset''s retention (else the given retention, else '
  'dataflow.retention, else 30 days), keeping each chunk''s producing run; returns rows deleted. '
  'A retention shorter than dataflow.retention (the floor) is refused (42501) unless the caller is a dataflow_admin';
