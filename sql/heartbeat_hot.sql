-- A heartbeat writes no index entry: what it changes (deadline, heartbeat_at) is in no
-- index key and no partial-index predicate of dataflow.run, so every heartbeat is a HOT
-- update. Counted with the transaction's own statistics (exact, no stats flush).
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\i sql/include/helpers.psql
SELECT dataflow.create_dataset('src', 'int'), dataflow.create_dataset('out', 'int');
SELECT dataflow.create_job('j', output => 'out');
SELECT dataflow.add_input('j', 'src');
SELECT count(dataflow.register('src', k::text)) FROM generate_series(1, 3) k;
SELECT count(*) FROM dataflow.expect('out', '1', '3');
SELECT count(*) FROM dataflow.lease('j', 'w1', max_chunks => 3);

-- the backend's pending counts may still hold earlier transactions' (flushed when idle):
-- count the difference inside one transaction, where nothing is flushed
CREATE TEMP TABLE c0 (upd bigint, hot bigint);
BEGIN;
INSERT INTO c0 SELECT pg_stat_get_xact_tuples_updated('dataflow.run'::regclass),
                      pg_stat_get_xact_tuples_hot_updated('dataflow.run'::regclass);
SELECT count(dataflow.heartbeat(pg_temp.tok('out', ((i % 3) + 1)::text))) AS heartbeats
  FROM generate_series(1, 18) i;
SELECT pg_stat_get_xact_tuples_updated('dataflow.run'::regclass) - upd AS run_updates,
       pg_stat_get_xact_tuples_hot_updated('dataflow.run'::regclass) - hot AS hot_updates FROM c0;
COMMIT;
-- superseded runs still reading heartbeat too: the same holds for them
SELECT count(*) FROM dataflow.resubmit('src', '1');
SET client_min_messages = error;   -- one WARNING (01DF1) per heartbeat of a superseded run
BEGIN;
DELETE FROM c0;
INSERT INTO c0 SELECT pg_stat_get_xact_tuples_updated('dataflow.run'::regclass),
                      pg_stat_get_xact_tuples_hot_updated('dataflow.run'::regclass);
SELECT count(dataflow.heartbeat(pg_temp.tok('out', '1'))) AS heartbeats FROM generate_series(1, 10);
SELECT pg_stat_get_xact_tuples_updated('dataflow.run'::regclass) - upd AS run_updates,
       pg_stat_get_xact_tuples_hot_updated('dataflow.run'::regclass) - hot AS hot_updates FROM c0;
COMMIT;
RESET client_min_messages;
-- and reap still finds an overdue lease, running or superseded, without those indexes
UPDATE dataflow.run SET deadline = now() - interval '1 minute' WHERE status IN ('running', 'superseded');
SELECT dataflow.reap() AS reaped;
SELECT status, count(*) FROM dataflow.run GROUP BY status ORDER BY status;
SELECT count(*) AS held_runs_left FROM dataflow.run WHERE status = 'superseded' AND finished_at IS NULL;
