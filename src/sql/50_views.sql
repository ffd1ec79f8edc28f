-- Views for psql and BI tools. Stable column names; every column commented.

CREATE VIEW dataflow.chunks AS
SELECT c.id AS chunk_id, d.name AS dataset, c.key, c.status, c.version, c.location, c.row_count,
       c.checksum, c.attempts, c.unmet AS unmet_inputs, c.not_before, c.error,
       c.validation, c.info, c.run_id, c.created_at, c.updated_at, c.available_at
  FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id;
COMMENT ON VIEW dataflow.chunks IS
  'Every chunk with its status. UPDATE dataflow.chunks SET status = ''resubmit'' (or ''skipped'') '
  'WHERE dataset = ... AND key = ... restarts (or skips) it';
COMMENT ON COLUMN dataflow.chunks.chunk_id IS 'Internal chunk id';
COMMENT ON COLUMN dataflow.chunks.dataset IS 'Dataset name';
COMMENT ON COLUMN dataflow.chunks.key IS 'Canonical key (2024-01-31, 2024-01-31T05, 42, text)';
COMMENT ON COLUMN dataflow.chunks.status IS
  'waiting, queued, running, ready, validated, invalid, failed, skipped or cancelled';
COMMENT ON COLUMN dataflow.chunks.version IS 'Version being produced or last produced; +1 on each resubmit';
COMMENT ON COLUMN dataflow.chunks.location IS 'Where the data of this version is';
COMMENT ON COLUMN dataflow.chunks.row_count IS 'Rows reported by the producer';
COMMENT ON COLUMN dataflow.chunks.checksum IS 'Checksum reported by the producer';
COMMENT ON COLUMN dataflow.chunks.attempts IS 'Attempts at producing this version';
COMMENT ON COLUMN dataflow.chunks.unmet_inputs IS 'Inputs not yet available at the level this chunk needs';
COMMENT ON COLUMN dataflow.chunks.not_before IS 'Earliest time a queued chunk may be leased (backoff)';
COMMENT ON COLUMN dataflow.chunks.error IS 'Last error of a failed attempt';
COMMENT ON COLUMN dataflow.chunks.validation IS 'Last validation: passed, report, at, by, version';
COMMENT ON COLUMN dataflow.chunks.info IS 'Producer-supplied metadata';
COMMENT ON COLUMN dataflow.chunks.run_id IS 'The run producing or last produced this chunk';
COMMENT ON COLUMN dataflow.chunks.created_at IS 'When the chunk was first expected or registered';
COMMENT ON COLUMN dataflow.chunks.updated_at IS 'Last change of the chunk';
COMMENT ON COLUMN dataflow.chunks.available_at IS 'When the current version became available';

CREATE FUNCTION dataflow._chunks_update() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF (NEW.chunk_id, NEW.dataset, NEW.key, NEW.version, NEW.location, NEW.row_count, NEW.checksum,
      NEW.attempts, NEW.unmet_inputs, NEW.not_before, NEW.error, NEW.validation, NEW.info, NEW.run_id,
      NEW.created_at, NEW.updated_at, NEW.available_at)
     IS DISTINCT FROM
     (OLD.chunk_id, OLD.dataset, OLD.key, OLD.version, OLD.location, OLD.row_count, OLD.checksum,
      OLD.attempts, OLD.unmet_inputs, OLD.not_before, OLD.error, OLD.validation, OLD.info, OLD.run_id,
      OLD.created_at, OLD.updated_at, OLD.available_at)
     OR NEW.status IS NULL OR NEW.status NOT IN ('resubmit', 'skipped') THEN
    RAISE EXCEPTION 'only status can be written in dataflow.chunks, and only to ''resubmit'' or ''skipped'''
      USING ERRCODE = '0A000',
            HINT = 'UPDATE dataflow.chunks SET status = ''resubmit'' WHERE dataset = ... AND key = ...';
  END IF;
  IF NEW.status = 'skipped' AND OLD.status = 'skipped' THEN
    RETURN NEW;
  END IF;
  -- A resubmit is only noted here and done once for the whole statement by
  -- _chunks_updated (the statement trigger below), all of its chunks in one _resubmit:
  -- the chunks are then locked in (rank, id) order like every other path, where a
  -- cascade per row locked each row's downstream before the next row and could
  -- deadlock with a worker completing one of the later rows (docs/internals.md), and
  -- a chunk named together with its upstream is reset once.
  IF NEW.status = 'resubmit' THEN
    IF NOT dataflow._own_work_table('_df_roots') THEN
      CREATE TEMP TABLE pg_temp._df_roots (id bigint PRIMARY KEY) ON COMMIT DROP;
    END IF;
    INSERT INTO pg_temp._df_roots (id) VALUES (OLD.chunk_id) ON CONFLICT DO NOTHING;
    RETURN NEW;
  END IF;
  UPDATE dataflow.chunk
     SET status = NEW.status,
         info = CASE WHEN NEW.status = 'skipped'
                     THEN info || jsonb_build_object('skip_reason', 'skipped via dataflow.chunks')
                     ELSE info END
   WHERE id = OLD.chunk_id;
  RETURN NEW;
END $$;
CREATE TRIGGER chunks_update INSTEAD OF UPDATE ON dataflow.chunks
  FOR EACH ROW EXECUTE FUNCTION dataflow._chunks_update();

-- The resubmits one UPDATE of dataflow.chunks noted (_chunks_update), done at once.
CREATE FUNCTION dataflow._chunks_updated() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE roots bigint[];
BEGIN
  -- Only our own work table: a planted one made _chunks_update raise before it noted
  -- anything, so a statement that only skipped chunks has nothing to do here.
  IF NOT dataflow._own_work_table('_df_roots', p_quiet => true) THEN
    RETURN NULL;
  END IF;
  SELECT array_agg(r.id ORDER BY r.id) INTO roots FROM pg_temp._df_roots r;
  TRUNCATE pg_temp._df_roots;
  IF roots IS NOT NULL THEN
    PERFORM dataflow._resubmit(roots, true, false, dataflow._actor(), 'resubmit');
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER chunks_updated AFTER UPDATE ON dataflow.chunks
  FOR EACH STATEMENT EXECUTE FUNCTION dataflow._chunks_updated();

CREATE TRIGGER chunk_status_written AFTER UPDATE OF status ON dataflow.chunk
  FOR EACH ROW WHEN (NEW.status = 'resubmit' OR (NEW.status = 'skipped' AND OLD.status <> 'skipped'))
  EXECUTE FUNCTION dataflow._chunk_status_written();

CREATE VIEW dataflow.runs AS
SELECT r.id AS run_id, j.name AS job, d.name AS dataset, c.key, r.version, r.attempt, r.worker, r.status,
       r.started_at, r.heartbeat_at, r.deadline, r.finished_at, r.error, r.external_id,
       r.output_location, r.row_count, r.checksum, r.info,
       (SELECT jsonb_agg(jsonb_build_object('dataset', ids.name, 'key', ic.key, 'version', ri.version)
                         ORDER BY ids.name, ic.ord, ic.key)
          FROM dataflow.run_input ri
          JOIN dataflow.chunk ic ON ic.id = ri.chunk_id
          JOIN dataflow.dataset ids ON ids.id = ic.dataset_id
         WHERE ri.run_id = r.id) AS inputs
  FROM dataflow.run r
  JOIN dataflow.chunk c ON c.id = r.chunk_id
  JOIN dataflow.dataset d ON d.id = c.dataset_id
  LEFT JOIN dataflow.job j ON j.id = r.job_id;
COMMENT ON VIEW dataflow.runs IS 'Every attempt at producing a chunk (lease tokens are not shown)';
COMMENT ON COLUMN dataflow.runs.run_id IS 'Run id';
COMMENT ON COLUMN dataflow.runs.job IS 'Job that ran';
COMMENT ON COLUMN dataflow.runs.dataset IS 'Output dataset';
COMMENT ON COLUMN dataflow.runs.key IS 'Output key';
COMMENT ON COLUMN dataflow.runs.version IS 'Version the run produced or tried to produce';
COMMENT ON COLUMN dataflow.runs.attempt IS 'Attempt number for that version';
COMMENT ON COLUMN dataflow.runs.worker IS 'Worker that held the lease';
COMMENT ON COLUMN dataflow.runs.status IS 'running, succeeded, failed, expired, cancelled or superseded';
COMMENT ON COLUMN dataflow.runs.started_at IS 'Lease time';
COMMENT ON COLUMN dataflow.runs.heartbeat_at IS 'Last heartbeat';
COMMENT ON COLUMN dataflow.runs.deadline IS 'Lease deadline';
COMMENT ON COLUMN dataflow.runs.finished_at IS
  'When the run ended; NULL while it runs, also after a resubmit superseded it while its process still works (it holds its inputs until then)';
COMMENT ON COLUMN dataflow.runs.error IS 'Why it failed, expired, was cancelled or superseded';
COMMENT ON COLUMN dataflow.runs.external_id IS 'Engine-side id (e.g. Airflow dag_run_id)';
COMMENT ON COLUMN dataflow.runs.output_location IS 'Where the run wrote its output';
COMMENT ON COLUMN dataflow.runs.row_count IS 'Rows reported at completion';
COMMENT ON COLUMN dataflow.runs.checksum IS 'Checksum reported at completion';
COMMENT ON COLUMN dataflow.runs.info IS 'Metadata reported at completion';
COMMENT ON COLUMN dataflow.runs.inputs IS 'Lineage: the exact input chunk versions the run read';

CREATE FUNCTION dataflow._event_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RAISE EXCEPTION 'dataflow.event is append-only' USING ERRCODE = '0A000',
        HINT = 'Old events are removed by retention (dataflow.prune()).';
END $$;
CREATE TRIGGER event_append_only BEFORE UPDATE ON dataflow.event
  FOR EACH STATEMENT EXECUTE FUNCTION dataflow._event_append_only();
