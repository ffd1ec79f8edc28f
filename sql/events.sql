-- The event log: every status transition is recorded with chunk, version, run, from -> to,
-- actor (worker, 'reaper', or the session user) and a reason; pause/resume are recorded; the log
-- is append-only (UPDATE raises 0A000).
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\i sql/include/helpers.psql
-- ev(ds): the event history of a dataset in order, the session user shown as <me>
CREATE FUNCTION pg_temp.ev(ds text)
RETURNS TABLE(key text, version integer, from_status text, to_status text, actor text, has_run boolean, reason text)
LANGUAGE sql AS $$
  SELECT e.key, e.version, e.from_status, e.to_status,
         CASE WHEN e.actor = session_user THEN '<me>' ELSE e.actor END, e.run_id IS NOT NULL, e.detail->>'reason'
    FROM dataflow.event e JOIN dataflow.dataset d ON d.id = e.dataset_id
   WHERE d.name = ds ORDER BY e.id $$;

SELECT dataflow.create_dataset('e_src', 'int'), dataflow.create_dataset('e_out', 'int');
SELECT dataflow.create_job('e_job', output => 'e_out', max_attempts => 2, backoff_min => '0 s', backoff_max => '0 s');
SELECT dataflow.add_input('e_job', 'e_src');

-- expect: NULL -> waiting for every created chunk (upstream placeholders too)
SELECT dataflow.expect('e_out', '1', '2');
SELECT * FROM pg_temp.ev('e_src');
SELECT * FROM pg_temp.ev('e_out');
-- register (waiting -> ready) propagates waiting -> queued to the consumer
SELECT dataflow.register('e_src', '1');
-- lease (queued -> running, by the worker), fail with retry (running -> queued, by the worker)
SELECT key FROM dataflow.lease('e_job', 'worker-A');
SELECT dataflow.fail(pg_temp.tok('e_out', '1'), 'timeout');
-- lease again, complete (running -> ready), validate (ready -> validated, by the session user)
SELECT key FROM dataflow.lease('e_job', 'worker-B');
SELECT dataflow.complete(pg_temp.tok('e_out', '1'));
SELECT dataflow.validate('e_out', '1', true);
SELECT dataflow.validate('e_out', '1', false);
-- resubmit (invalid -> queued, version 2), expired lease (running -> queued, by 'reaper'),
-- then attempts spent (running -> failed, by 'reaper')
SELECT count(*) FROM dataflow.resubmit('e_out', '1');
SELECT key FROM dataflow.lease('e_job', 'worker-C', lease_for => '1 millisecond');
SELECT pg_sleep(0.01);
SELECT dataflow.reap();
SELECT key FROM dataflow.lease('e_job', 'worker-C', lease_for => '1 millisecond');
SELECT pg_sleep(0.01);
SELECT dataflow.reap();
-- skip via the view (failed -> skipped), resubmit via the table (skipped -> queued), cancel (queued -> cancelled)
UPDATE dataflow.chunks SET status = 'skipped' WHERE dataset = 'e_out' AND key = '1';
UPDATE dataflow.chunk SET status = 'resubmit'
 WHERE dataset_id = (SELECT id FROM dataflow.dataset WHERE name = 'e_out') AND key = '1';
SELECT dataflow.cancel('e_out', '1');
SELECT * FROM pg_temp.ev('e_src');
SELECT * FROM pg_temp.ev('e_out');
-- every chunk's current status is the to_status of its last event, and its events chain:
-- each from_status is the previous to_status
SELECT c.dataset, c.key, c.status,
       (SELECT e.to_status FROM dataflow.event e WHERE e.chunk_id = c.chunk_id ORDER BY e.id DESC LIMIT 1) AS last_event
  FROM dataflow.chunks c WHERE c.dataset IN ('e_src', 'e_out') ORDER BY 1, 2;
SELECT count(*) AS broken_links FROM (
  SELECT e.from_status, lag(e.to_status) OVER (PARTITION BY e.chunk_id ORDER BY e.id) AS prev
    FROM dataflow.event e WHERE e.chunk_id IS NOT NULL) x
 WHERE x.prev IS NOT NULL AND x.from_status IS DISTINCT FROM x.prev;
-- run-bound events name their run
SELECT e.to_status, count(*) AS n, bool_and(r.id IS NOT NULL) AS run_exists
  FROM dataflow.event e LEFT JOIN dataflow.run r ON r.id = e.run_id
 WHERE e.chunk_id = (SELECT chunk_id FROM dataflow.chunks WHERE dataset = 'e_out' AND key = '1')
   AND e.from_status = 'running'
 GROUP BY e.to_status ORDER BY 1;
-- a failure's event carries the error, the attempt and the backoff
SELECT detail->>'error' AS error, detail->>'attempt' AS attempt, detail->>'retry_in_seconds' AS retry_in
  FROM dataflow.event WHERE detail->>'reason' = 'fail';

-- superseded completion: running -> waiting (by the worker), reason superseded, with the stale input
SELECT dataflow.register('e_src', '2');
SELECT key FROM dataflow.lease('e_job', 'worker-D');
SELECT count(*) FROM dataflow.resubmit('e_src', '2', cascade => false);
SELECT dataflow.complete(pg_temp.tok('e_out', '2'));
SELECT * FROM pg_temp.ev('e_out') WHERE key = '2';
SELECT jsonb_array_length(detail->'stale_inputs') AS stale_inputs FROM dataflow.event WHERE detail->>'reason' = 'superseded';
-- cascade: downstream resets are recorded with the upstream reason and their depth
SELECT dataflow.register('e_src', '2');
SELECT dataflow.complete(token) FROM dataflow.lease('e_job', 'worker-D');
SELECT count(*) FROM dataflow.resubmit('e_src', '2');
SELECT key, from_status, to_status, detail->>'reason' AS reason, detail->>'depth' AS depth
  FROM dataflow.event WHERE id > (SELECT max(id) - 2 FROM dataflow.event) ORDER BY id;

-- pause_job / resume_job are recorded too (no chunk), with the actor
SELECT dataflow.pause_job('e_job'), dataflow.resume_job('e_job');
SELECT to_status, actor = session_user AS by_me, detail FROM dataflow.event WHERE chunk_id IS NULL ORDER BY id;

-- a failed call records nothing
SELECT count(*) AS events FROM dataflow.event \gset
SELECT pg_temp.fails($$SELECT dataflow.validate('e_out', '2', true)$$) AS validate_waiting;
SELECT count(*) = :events AS no_new_event FROM dataflow.event;

-- append-only: UPDATE is refused (0A000), whatever it touches
SELECT pg_temp.fails($$UPDATE dataflow.event SET actor = 'forged'$$) AS update_all,
       pg_temp.fails($$UPDATE dataflow.event SET to_status = 'ready' WHERE id = 1$$) AS update_one,
       pg_temp.fails($$UPDATE dataflow.event SET detail = NULL WHERE false$$) AS update_none;
SELECT count(*) AS forged FROM dataflow.event WHERE actor = 'forged';
