-- Retention floor: an operator's prune() never deletes history younger than
-- dataflow.retention (the server setting, 30 days by default); a dataflow_admin
-- may prune shorter, and a dataset's own retention (set by an admin) applies to
-- everyone.
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\set SHOW_CONTEXT never
CREATE FUNCTION pg_temp.can(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
GRANT EXECUTE ON FUNCTION pg_temp.can(text) TO PUBLIC;
SHOW dataflow.retention;
SELECT dataflow._retention_floor();

SELECT dataflow.create_dataset('rf_keep', 'date');
SELECT dataflow.create_dataset('rf_short', 'date', retention => '1 day');
SELECT dataflow.register('rf_keep', '2024-01-01');
SELECT dataflow.register('rf_short', '2024-01-01');
-- History of several ages (events are append-only; old ones are written as old).
INSERT INTO dataflow.event (at, dataset_id, key, version, from_status, to_status, actor, detail)
SELECT now() - age, d.id, '2024-01-01', 1, 'ready', 'ready', 'test', jsonb_build_object('age', age::text)
  FROM dataflow.dataset d,
       unnest(ARRAY[interval '2 hours', interval '2 days', interval '40 days']) age
 WHERE d.name IN ('rf_keep', 'rf_short');
CREATE FUNCTION pg_temp.history() RETURNS TABLE (dataset text, ages text) LANGUAGE sql AS $$
  SELECT d.name, string_agg(e.detail ->> 'age', ', ' ORDER BY e.at)
    FROM dataflow.event e JOIN dataflow.dataset d ON d.id = e.dataset_id
   WHERE e.detail ? 'age' GROUP BY d.name ORDER BY d.name $$;
SELECT * FROM pg_temp.history();

-- The operator: shorter than the floor is refused, and nothing is deleted.
SET ROLE dataflow_operator;
SELECT pg_temp.can($$SELECT dataflow.prune('1 hour')$$);
SELECT pg_temp.can($$SELECT dataflow.prune('29 days')$$);
-- an interval that compares as 30 days (a month counts 30 days there) but whose cut-off,
-- now() - it, is in the future: cut-off times are compared, not intervals
SELECT pg_temp.can($$SELECT dataflow.prune('-1000 mon 30030 days')$$) AS mixed_signs;
-- the SQLSTATE from LAST_ERROR_SQLSTATE: VERBOSITY verbose would also print the
-- LOCATION line, whose pl_exec.c line number differs between PostgreSQL majors
SELECT dataflow.prune('1 second');
\echo sqlstate :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT * FROM pg_temp.history();

-- The floor itself, or longer: allowed. The 40-day event goes; so does rf_short's
-- 2-day one (its own retention is 1 day, set by the admin).
SET ROLE dataflow_operator;
SELECT pg_temp.can($$SELECT dataflow.prune('60 days')$$);
SELECT pg_temp.can($$SELECT dataflow.prune()$$);
RESET ROLE;
SELECT * FROM pg_temp.history();

-- An operator's login (member of dataflow_operator) is held to the same floor.
CREATE ROLE rf_alice NOLOGIN IN ROLE dataflow_operator;
SET ROLE rf_alice;
SELECT pg_temp.can($$SELECT dataflow.prune('1 day')$$);
RESET ROLE;

-- The admin may shorten it: rf_keep's 2-day event goes, the 2-hour one stays.
SET ROLE dataflow_admin;
SELECT pg_temp.can($$SELECT dataflow.prune('1 day')$$);
RESET ROLE;
SELECT * FROM pg_temp.history();
SELECT pg_temp.can($$SELECT dataflow.prune('0 seconds')$$);
DROP ROLE rf_alice;
