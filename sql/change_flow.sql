-- Changing a flow that has already produced data: add_input, alter_input, drop_input on a
-- job whose output has chunks in every status, and create_job on a source with chunks.
-- After each change: the edges are those of the current definition for every chunk, unmet
-- matches the edges, no queued chunk has an unmet input, the counters match a recount;
-- the definition version, its history, the outdated view and explain follow; a refused
-- change leaves every table as it was.
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\i sql/include/helpers.psql
-- check(): 0 everywhere when the chunks agree with the definitions
CREATE FUNCTION pg_temp.check() RETURNS TABLE(edge_mismatch bigint, unmet_mismatch bigint, queued_unmet bigint,
                                              counter_mismatch bigint)
LANGUAGE sql AS $$
  WITH want AS (
    SELECT c.id AS consumer, i.id AS input
      FROM dataflow.chunk c JOIN dataflow.job j ON j.output_id = c.dataset_id
      JOIN dataflow.job_input ji ON ji.job_id = j.id AND ji.mapping IN ('same', 'window', 'rollup')
      JOIN dataflow.dataset ind ON ind.id = ji.dataset_id
     CROSS JOIN LATERAL dataflow._input_keys(ji.mapping, ind.key_kind, ji.lo, ji.hi, c.key, c.ord) x
      LEFT JOIN dataflow.chunk i ON i.dataset_id = ji.dataset_id AND i.key = x.key)
  , got AS (   -- the edges of batches are cut by lease, not made by a mapping
    SELECT d.consumer, d.input FROM dataflow.dep d
     WHERE NOT EXISTS (SELECT FROM dataflow.chunk c JOIN dataflow.job j ON j.output_id = c.dataset_id
                         JOIN dataflow.job_input ji ON ji.job_id = j.id AND ji.mapping = 'incremental'
                        WHERE c.id = d.consumer))
  SELECT (SELECT count(*) FROM ((SELECT * FROM want EXCEPT SELECT * FROM got)
                                UNION ALL (SELECT * FROM got EXCEPT SELECT * FROM want)) z),
         (SELECT count(*) FROM dataflow.chunk c
           WHERE c.unmet <> (SELECT count(*) FROM dataflow.dep dp JOIN dataflow.chunk i ON i.id = dp.input
                              WHERE dp.consumer = c.id AND dataflow._level(i.status) < dp.need)
                          + (SELECT count(*) FROM dataflow.latest_wait lw WHERE lw.consumer = c.id)),
         (SELECT count(*) FROM dataflow.chunk c WHERE c.status = 'queued' AND c.unmet > 0),
         (SELECT count(*) FROM (
  (SELECT k.dataset_id, s.status, sum(s.n) FROM dataflow.chunk_count k,
          LATERAL (VALUES ('waiting', k.waiting), ('queued', k.queued), ('running', k.running), ('ready', k.ready),
                          ('validated', k.validated), ('invalid', k.invalid), ('failed', k.failed),
                          ('skipped', k.skipped), ('cancelled', k.cancelled), ('resubmit', k.resubmit)) s (status, n)
    GROUP BY 1, 2 HAVING sum(s.n) <> 0
   EXCEPT SELECT dataset_id, status, count(*) FROM dataflow.chunk GROUP BY 1, 2)
  UNION ALL
  (SELECT dataset_id, status, count(*) FROM dataflow.chunk GROUP BY 1, 2
   EXCEPT SELECT k.dataset_id, s.status, sum(s.n) FROM dataflow.chunk_count k,
          LATERAL (VALUES ('waiting', k.waiting), ('queued', k.queued), ('running', k.running), ('ready', k.ready),
                          ('validated', k.validated), ('invalid', k.invalid), ('failed', k.failed),
                          ('skipped', k.skipped), ('cancelled', k.cancelled), ('resubmit', k.resubmit)) s (status, n)
    GROUP BY 1, 2)) x)
$$;
-- out chunks with their unmet inputs and the input keys of their edges
CREATE FUNCTION pg_temp.outs() RETURNS TABLE(key text, status text, version integer, unmet integer, inputs text)
LANGUAGE sql AS $$
  SELECT c.key, c.status, c.version, c.unmet,
         (SELECT string_agg(ind.name || ':' || i.key, ' ' ORDER BY ind.name, i.ord)
            FROM dataflow.dep dp JOIN dataflow.chunk i ON i.id = dp.input JOIN dataflow.dataset ind ON ind.id = i.dataset_id
           WHERE dp.consumer = c.id)
    FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
   WHERE d.name = 'out' ORDER BY c.ord $$;
-- explain's correct row, timestamps masked
CREATE FUNCTION pg_temp.correct(ds text, k text) RETURNS TABLE(ok boolean, evidence text) LANGUAGE sql AS $$
  SELECT e.ok, regexp_replace(e.evidence, '\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [A-Z0-9+-]+', '<ts>', 'g')
    FROM dataflow.explain(ds, k) e WHERE e.question = 'correct' $$;

SELECT dataflow.create_dataset('src', 'int'), dataflow.create_dataset('other', 'int'),
       dataflow.create_dataset('out', 'int'), dataflow.create_dataset('down', 'int'),
       dataflow.create_dataset('words', 'text'), dataflow.create_dataset('dim', 'text');
SELECT dataflow.create_job('j_out', output => 'out', max_attempts => 1);
SELECT dataflow.add_input('j_out', 'src');
SELECT dataflow.create_job('j_down', output => 'down');
SELECT dataflow.add_input('j_down', 'out');
-- a job defined before any chunk stays at version 1, whatever its inputs
SELECT name, definition_version FROM dataflow.job ORDER BY id;
SELECT count(*) FROM dataflow.expect('out', '1', '12');
SELECT count(dataflow.register('src', k::text)) FROM generate_series(1, 10) k;
SELECT count(*) FROM dataflow.expect('down', '1', '3');
-- out in every status: 1 ready, 2 validated, 3 invalid, 4 failed, 5 running, 6 queued
-- after a resubmit (version 2), 7 skipped, 8 cancelled, 9-10 queued, 11-12 waiting
SELECT key FROM dataflow.lease('j_out', 'w1', max_chunks => 6) ORDER BY key::int;
SELECT dataflow.complete(pg_temp.tok('out', k)) FROM unnest(ARRAY['1', '2', '3', '6']) k;
SELECT dataflow.validate('out', '2', true), dataflow.validate('out', '3', false);
SELECT dataflow.fail(pg_temp.tok('out', '4'), 'broken', retry => false);
UPDATE dataflow.chunks SET status = 'resubmit' WHERE dataset = 'out' AND key = '6';
SELECT dataflow.skip('out', '7', 'holiday'), dataflow.cancel('out', '8');
SELECT * FROM pg_temp.outs();
SELECT * FROM pg_temp.check();

-- 1. add an input while a lease runs: refused (55006), nothing changes
SELECT pg_temp.fails($$SELECT dataflow.add_input('j_out', 'other')$$) AS running_lease;
-- with wait => true it applies now; 'other' has no chunks: placeholders are expected for
-- the keys out needs; every out chunk gets the edge; the queued ones (6, 9, 10) wait again;
-- the running one keeps running (its run stays at version 1)
SELECT dataflow.add_input('j_out', 'other', wait => true);
SELECT name, definition_version FROM dataflow.job WHERE name = 'j_out';
SELECT version, change FROM dataflow.job_definition jd JOIN dataflow.job j ON j.id = jd.job_id
 WHERE j.name = 'j_out' ORDER BY version;
SELECT * FROM pg_temp.outs();
SELECT key, status FROM dataflow.chunks WHERE dataset = 'other' ORDER BY key::int;
SELECT * FROM pg_temp.check();
SELECT key, from_status, to_status, detail ->> 'reason' AS reason, detail ->> 'definition_version' AS v
  FROM dataflow.event WHERE detail ->> 'reason' = 'definition changed' ORDER BY id;
SELECT to_status, detail - 'change' AS detail, detail -> 'change' AS change FROM dataflow.event
 WHERE to_status = 'redefined' ORDER BY id;
-- the available chunks are outdated: built by version 1, the definition is at 2
SELECT job, dataset, key, status, built_version, current_version, changes FROM dataflow.outdated ORDER BY key::int;
SELECT * FROM pg_temp.correct('out', '1');
-- the run that was running completes as built by definition 1: outdated too
SELECT dataflow.complete(pg_temp.tok('out', '5'));
SELECT r.definition_version FROM dataflow.run r WHERE r.id = (SELECT run_id FROM dataflow.chunk c
  JOIN dataflow.dataset d ON d.id = c.dataset_id WHERE d.name = 'out' AND c.key = '5');
SELECT key, built_version FROM dataflow.outdated ORDER BY key::int;
-- the new input arriving queues the chunk through its new edge; a lease records version 2
SELECT dataflow.register('other', '9');
SELECT key, status, unmet_inputs FROM dataflow.chunks WHERE dataset = 'out' AND key = '9';
SELECT key FROM dataflow.lease('j_out', 'w1');
SELECT r.definition_version FROM dataflow.run r ORDER BY r.id DESC LIMIT 1;
SELECT dataflow.complete(pg_temp.tok('out', '9'));
SELECT * FROM pg_temp.correct('out', '9');
SELECT * FROM pg_temp.check();

-- 2. widen src to a window -1..0: every out chunk needs src k-1 and k (src 0 is expected);
-- no running lease now, no wait needed
SELECT dataflow.alter_input('j_out', 'src', mapping => 'window', lo => -1, hi => 0);
SELECT * FROM pg_temp.outs();
SELECT key, status FROM dataflow.chunks WHERE dataset = 'src' AND key::int < 1;
SELECT * FROM pg_temp.check();
-- the same definition again: nothing changes, no version
SELECT dataflow.alter_input('j_out', 'src', lo => -1);
SELECT definition_version FROM dataflow.job WHERE name = 'j_out';

-- 3. the operator chooses what to re-run: a dry run of a resubmit shows the chunks and
-- their downstream; then one widening with rerun => true re-runs every outdated chunk
-- (and cascades) in the same transaction
SELECT dataset, key, old_status, new_status, depth FROM dataflow.resubmit('out', '1', '2', dry_run => true);
SELECT dataflow.alter_input('j_out', 'src', lo => -2, rerun => true);
SELECT * FROM pg_temp.outs();
SELECT key, status, version FROM dataflow.chunks WHERE dataset = 'down' ORDER BY key::int;
SELECT count(*) AS outdated_left FROM dataflow.outdated;
SELECT key, from_status, to_status, detail ->> 'reason' AS reason FROM dataflow.event
 WHERE detail ->> 'reason' LIKE '%definition changed' AND to_status IN ('queued', 'waiting')
   AND id > (SELECT max(id) FROM dataflow.event WHERE to_status = 'redefined' AND detail ->> 'definition_version' = '4')
 ORDER BY id;
SELECT * FROM pg_temp.check();

-- 4. drop the input again: the chunks that waited only for it are queued
SELECT count(dataflow.register('src', k::text)) FROM generate_series(-1, 0) k;
SELECT dataflow.drop_input('j_out', 'other');
SELECT * FROM pg_temp.outs();
SELECT * FROM pg_temp.check();
SELECT version, change FROM dataflow.job_definition jd JOIN dataflow.job j ON j.id = jd.job_id
 WHERE j.name = 'j_out' ORDER BY version;

-- 5. refusals, each leaving every table as it was
SELECT pg_temp.fails($$SELECT dataflow.add_input('j_out', 'down')$$) AS cycle;
SELECT pg_temp.fails($$SELECT dataflow.add_input('j_out', 'words')$$) AS kinds;
SELECT pg_temp.fails($$SELECT dataflow.alter_input('j_out', 'src', mapping => 'rollup')$$) AS kinds_alter;
SELECT pg_temp.fails($$SELECT dataflow.alter_input('j_out', 'src', mapping => 'incremental')$$) AS to_incremental;
SELECT pg_temp.fails($$SELECT dataflow.alter_input('j_out', 'src', hi => -3)$$) AS bad_window;
SELECT pg_temp.fails($$SELECT dataflow.drop_input('j_out', 'src')$$) AS last_input;
SELECT pg_temp.fails($$SELECT dataflow.drop_input('j_ot', 'src')$$) AS unknown_job;
SELECT pg_temp.fails($$SELECT dataflow.drop_input('j_out', 'sr')$$) AS unknown_dataset;
SELECT pg_temp.fails($$SELECT dataflow.drop_input('j_out', 'other')$$) AS not_an_input;
SELECT pg_temp.fails($$SELECT dataflow.alter_input('j_out', 'dim')$$) AS not_an_input_alter;
SELECT pg_temp.fails($$SELECT dataflow.add_input('j_out', 'src')$$) AS duplicate;
SELECT pg_temp.fails($$SELECT dataflow.add_input('j_out', 'other', wait => NULL)$$) AS null_wait;
SELECT key FROM dataflow.lease('j_out', 'w2');
SELECT pg_temp.fails($$SELECT dataflow.alter_input('j_out', 'src', lo => -3)$$) AS running_alter;
SELECT pg_temp.fails($$SELECT dataflow.drop_input('j_down', 'out')$$) AS last_input_down;
SELECT dataflow.fail(pg_temp.tok('out', (SELECT key FROM dataflow.chunks WHERE dataset = 'out' AND status = 'running')), 'stop');

-- 6. a latest input added to a live flow: no chunk of it yet, so every out chunk waits
-- for its first one; it arrives, and they are queued again
SELECT dataflow.add_input('j_out', 'dim', mapping => 'latest');
SELECT count(*) FILTER (WHERE status = 'queued') AS queued, count(*) FILTER (WHERE unmet_inputs > 0) AS with_unmet
  FROM dataflow.chunks WHERE dataset = 'out';
SELECT dataflow.register('dim', 'v1');
SELECT count(*) FILTER (WHERE status = 'queued') AS queued FROM dataflow.chunks WHERE dataset = 'out';
SELECT * FROM pg_temp.check();
SELECT dataflow.drop_input('j_out', 'dim');
SELECT * FROM pg_temp.check();

-- 7. a source becoming produced: raw has registered chunks and an expected placeholder.
-- create_job keeps the registered ones as they are (built by definition 0: outdated until
-- resubmitted) and queues the placeholder for the new job
SELECT dataflow.create_dataset('raw', 'int');
SELECT count(dataflow.register('raw', k::text)) FROM generate_series(1, 2) k;
SELECT count(*) FROM dataflow.expect('raw', '3');
SELECT dataflow.create_job('j_raw', output => 'raw');
SELECT key, status, unmet_inputs FROM dataflow.chunks WHERE dataset = 'raw' ORDER BY key::int;
SELECT job, key, built_version, current_version, changes FROM dataflow.outdated WHERE dataset = 'raw' ORDER BY key;
SELECT * FROM pg_temp.correct('raw', '1');
-- and gains an input, src: edges for its three chunks
SELECT dataflow.add_input('j_raw', 'src');
SELECT key, status, unmet_inputs FROM dataflow.chunks WHERE dataset = 'raw' ORDER BY key::int;
SELECT * FROM pg_temp.check();
-- the operator re-runs the registered ones, with a reason in the log
SELECT dataset, key, old_status, new_status, version FROM dataflow.resubmit('raw', '1', '2', reason => 'now built by j_raw');
SELECT key, detail ->> 'reason' AS reason FROM dataflow.event e JOIN dataflow.dataset d ON d.id = e.dataset_id
 WHERE d.name = 'raw' AND detail ->> 'reason' LIKE 'resubmit%' ORDER BY e.id;
SELECT pg_temp.err($$SELECT dataflow.resubmit('raw', '1', reason => '')$$) AS empty_reason;
SELECT count(*) AS outdated_raw FROM dataflow.outdated WHERE dataset = 'raw';
SELECT * FROM pg_temp.check();

-- 8. an incremental job with a batch: altering its input keeps the batch's edges (at the new
-- level), and the batch built before is outdated
SELECT dataflow.create_dataset('feed', 'int'), dataflow.create_dataset('batches', 'int');
SELECT dataflow.create_job('j_batches', output => 'batches');
SELECT dataflow.add_input('j_batches', 'feed', mapping => 'incremental');
SELECT count(dataflow.register('feed', k::text)) FROM generate_series(1, 3) k;
SELECT key, params -> 'batch' -> 'keys' AS keys FROM dataflow.lease('j_batches', 'w3');
SELECT dataflow.complete(pg_temp.tok('batches', '1'));
SELECT dataflow.alter_input('j_batches', 'feed', require => 'validated') - 'change' AS altered;
SELECT count(*) AS batch_edges, min(d.need) AS need FROM dataflow.dep d JOIN dataflow.chunk c ON c.id = d.consumer
  JOIN dataflow.dataset ds ON ds.id = c.dataset_id WHERE ds.name = 'batches';
SELECT key, built_version, current_version, changes FROM dataflow.outdated WHERE dataset = 'batches';
SELECT * FROM pg_temp.check();

-- readers see the outdated view and the history; only the admin changes a definition
SET ROLE dataflow_reader;
SELECT count(*) >= 0 AS readable FROM dataflow.outdated, dataflow.job_definition;
RESET ROLE;
SET ROLE dataflow_operator;
SELECT pg_temp.err($$SELECT dataflow.alter_input('j_out', 'src', lo => -3)$$) AS operator;
RESET ROLE;

-- 9. a window change rewrites only the difference: the edges of the offsets that stay are
-- kept as they are (the same row versions), those of the offsets leaving the window are
-- deleted, those entering it inserted; unmet and waiting/queued follow as before
CREATE TEMP TABLE edges_before (input bigint, consumer bigint, x text);
CREATE FUNCTION pg_temp.note_edges() RETURNS void LANGUAGE sql AS $$
  DELETE FROM edges_before;
  INSERT INTO edges_before
  SELECT dp.input, dp.consumer, dp.xmin::text FROM dataflow.dep dp JOIN dataflow.chunk c ON c.id = dp.consumer
    JOIN dataflow.dataset d ON d.id = c.dataset_id WHERE d.name = 'out' $$;
CREATE FUNCTION pg_temp.edge_diff() RETURNS TABLE(kept bigint, rewritten bigint, deleted bigint, inserted bigint)
LANGUAGE sql AS $$
  WITH now_ AS (SELECT dp.input, dp.consumer, dp.xmin::text AS x FROM dataflow.dep dp
                  JOIN dataflow.chunk c ON c.id = dp.consumer JOIN dataflow.dataset d ON d.id = c.dataset_id
                 WHERE d.name = 'out')
  SELECT count(*) FILTER (WHERE b.x = n.x), count(*) FILTER (WHERE b.x <> n.x),
         count(*) FILTER (WHERE n.input IS NULL), count(*) FILTER (WHERE b.input IS NULL)
    FROM edges_before b FULL JOIN now_ n ON n.input = b.input AND n.consumer = b.consumer $$;
SELECT version, change FROM dataflow.job_definition jd JOIN dataflow.job j ON j.id = jd.job_id
 WHERE j.name = 'j_out' ORDER BY version DESC LIMIT 1;
SELECT pg_temp.note_edges();
-- -2..0 -> -1..1: offsets -1 and 0 stay (24 edges), -2 leaves (12), +1 enters (12; src 11..13 expected)
SELECT dataflow.alter_input('j_out', 'src', lo => -1, hi => 1) -> 'change' AS change;
SELECT * FROM pg_temp.edge_diff();
SELECT * FROM pg_temp.outs();
SELECT * FROM pg_temp.check();
-- narrowing with a new require: -1..1 -> 0..1, the kept edges get the new need
SELECT pg_temp.note_edges();
SELECT dataflow.alter_input('j_out', 'src', lo => 0, require => 'validated') -> 'change' AS change;
SELECT * FROM pg_temp.edge_diff();
SELECT need, count(*) FROM dataflow.dep dp JOIN dataflow.chunk c ON c.id = dp.consumer
  JOIN dataflow.dataset d ON d.id = c.dataset_id WHERE d.name = 'out' GROUP BY need ORDER BY need;
SELECT * FROM pg_temp.check();
-- a disjoint window (0..1 -> 3..4): every edge goes, every new one comes; then back to same
-- (the window 0..0): only offset 0 is inserted again
SELECT pg_temp.note_edges();
SELECT dataflow.alter_input('j_out', 'src', lo => 3, hi => 4, require => 'ready') -> 'change' AS change;
SELECT * FROM pg_temp.edge_diff();
SELECT * FROM pg_temp.check();
SELECT pg_temp.note_edges();
SELECT dataflow.alter_input('j_out', 'src', mapping => 'same') -> 'change' AS change;
SELECT * FROM pg_temp.edge_diff();
SELECT * FROM pg_temp.outs();
SELECT * FROM pg_temp.check();
