-- resubmit() is the operator's "run it again now": it resets the chunk's attempts and
-- its retry backoff, so a chunk waiting for its next retry is leasable at once; a chunk
-- queued normally keeps its place in the queue.
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\i sql/include/helpers.psql
SELECT dataflow.create_dataset('src', 'int'), dataflow.create_dataset('out', 'int');
SELECT dataflow.create_job('j', output => 'out', max_attempts => 5, backoff_min => '1 hour', backoff_max => '1 hour');
SELECT dataflow.add_input('j', 'src');
SELECT count(dataflow.register('src', k::text)) FROM generate_series(1, 3) k;
SELECT count(*) FROM dataflow.expect('out', '1', '3');

-- chunk 1 fails once and waits an hour for its retry
SELECT count(*) FROM dataflow.lease('j', 'w1', max_chunks => 1);
SELECT dataflow.fail(pg_temp.tok('out', '1'), 'flaky');
SELECT key, status, attempts, not_before > now() + interval '50 minutes' AS backing_off
  FROM dataflow.chunk WHERE dataset_id = (SELECT id FROM dataflow.dataset WHERE name = 'out') ORDER BY ord;

-- chunk 3 is queued normally: its place in the queue (not_before) is remembered
CREATE TEMP TABLE before3 AS
SELECT not_before FROM dataflow.chunk WHERE key = '3' AND dataset_id = (SELECT id FROM dataflow.dataset WHERE name = 'out');

-- the operator resubmits both: 1 is leasable now, attempts start again; 3 keeps its place
-- (both get a new version)
SELECT key, old_status, new_status FROM dataflow.resubmit('out', '1');
SELECT key, old_status, new_status FROM dataflow.resubmit('out', '3');
SELECT key, status, attempts, not_before <= now() AS leasable_now
  FROM dataflow.chunk WHERE dataset_id = (SELECT id FROM dataflow.dataset WHERE name = 'out') ORDER BY ord;
SELECT c.not_before = b.not_before AS kept_its_place
  FROM dataflow.chunk c, before3 b WHERE c.key = '3' AND c.dataset_id = (SELECT id FROM dataflow.dataset WHERE name = 'out');
SELECT key, attempt FROM dataflow.lease('j', 'w1', max_chunks => 3) ORDER BY key;
-- the queue (what lease reads) agrees with the chunks
SELECT count(*) AS queue_rows FROM dataflow.queue;
