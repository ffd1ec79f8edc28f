-- Incremental batches with a size cap (issue 16, part 2): add_input(..., max_chunks => n)
-- caps the chunks an incremental input gives one batch, the job's batch_max_rows caps the
-- batch's total row_count (NULL counts 0; a chunk over the cap is a batch of its own).
-- A backlog is cut into consecutive batches in key order, each within both caps; the
-- task's batch carries the row total; a changed cap applies from the next batch.
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\i sql/include/helpers.psql
\set SHOW_CONTEXT never

-- Lease the next batch of a job, record it, complete it (or fail it).
CREATE TEMP TABLE got (job text, n serial, batch_no bigint, nkeys integer, lowest bigint, highest bigint,
                       rows bigint, keys jsonb);
CREATE FUNCTION pg_temp.next_batch(p_job text, p_fail boolean DEFAULT false) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE t dataflow.task;
BEGIN
  SELECT * INTO t FROM dataflow.lease(p_job, 'w');
  IF t.token IS NULL THEN
    RETURN 0;
  END IF;
  INSERT INTO got (job, batch_no, nkeys, lowest, highest, rows, keys)
  VALUES (p_job, (t.params #>> '{batch,number}')::bigint, jsonb_array_length(t.params #> '{batch,keys}'),
          (t.params #>> '{batch,lowest_key}')::bigint, (t.params #>> '{batch,highest_key}')::bigint,
          (t.params #>> '{batch,rows}')::bigint, t.params #> '{batch,keys}');
  IF p_fail THEN
    PERFORM dataflow.fail(t.token, 'load failed');
  ELSE
    PERFORM dataflow.complete(t.token, row_count => 1);
  END IF;
  RETURN 1;
END $$;

SELECT dataflow.create_dataset('changes', 'int') > 0 AS ok;
SELECT dataflow.create_dataset('loaded', 'int') > 0 AS ok;
SELECT dataflow.create_job('ingest', output => 'loaded', backoff_min => '0', backoff_max => '0') > 0 AS ok;

-- refusals: a cap must be positive, and max_chunks is for incremental inputs only; nothing changes
SELECT dataflow.create_dataset('other', 'int') > 0 AS ok;
SELECT pg_temp.fails($$SELECT dataflow.add_input('ingest', 'changes', mapping => 'incremental', max_chunks => 0)$$) AS zero_chunks;
SELECT pg_temp.fails($$SELECT dataflow.add_input('ingest', 'changes', mapping => 'incremental', max_chunks => -5)$$) AS negative_chunks;
SELECT pg_temp.fails($$SELECT dataflow.add_input('ingest', 'other', mapping => 'latest', max_chunks => 10)$$) AS latest_chunks;
SELECT pg_temp.fails($$SELECT dataflow.alter_job('ingest', batch_max_rows => 0)$$) AS zero_rows;
SELECT pg_temp.fails($$SELECT dataflow.alter_job('ingest', batch_max_rows => -2)$$) AS negative_rows;
SELECT pg_temp.fails($$SELECT dataflow.create_job('ingest2', output => 'other', batch_max_rows => 0)$$) AS create_zero_rows;
SELECT dataflow.add_input('ingest', 'changes', mapping => 'same', max_chunks => 10);
SELECT dataflow.alter_job('ingest', batch_max_rows => 0);
-- the table keeps the rule too (the admin's UPDATE of job_input is how max_chunks changes later)
SELECT dataflow.add_input('ingest', 'changes', mapping => 'incremental', max_chunks => 500);
SELECT pg_temp.err($$UPDATE dataflow.job_input SET max_chunks = 0$$) AS update_zero;
SELECT dataflow.create_job('copy', output => 'other') > 0 AS ok;
SELECT dataflow.add_input('copy', 'changes');
SELECT pg_temp.err($$UPDATE dataflow.job_input SET max_chunks = 5 WHERE mapping = 'same'$$) AS update_same;

-- A backlog of 10,000 pending chunks (registered in one statement) under a cap of 500 chunks:
-- exactly 20 batches, numbered 1..20 in order, each within the cap, each starting right
-- after the previous one's highest key.
SELECT count(dataflow.register('changes', g::text, row_count => 3)) AS registered FROM generate_series(1, 10000) g;
SELECT count(*) AS pending FROM dataflow.incremental_pending;
SELECT sum(pg_temp.next_batch('ingest')) AS batches FROM generate_series(1, 25);
SELECT count(*) AS batches, min(batch_no) AS first, max(batch_no) AS last, max(nkeys) AS most_keys,
       bool_and(nkeys = highest - lowest + 1) AS each_batch_gapless,
       bool_and(rows = 3 * nkeys) AS rows_are_the_inputs_row_counts,
       min(lowest) AS lowest, max(highest) AS highest
  FROM got WHERE job = 'ingest';
SELECT count(*) FILTER (WHERE batch_no = prev_no + 1 AND lowest = prev_highest + 1) AS contiguous_with_previous,
       count(*) FILTER (WHERE prev_no IS NULL AND lowest = 1) AS first_starts_at_1
  FROM (SELECT batch_no, lowest, lag(batch_no) OVER w AS prev_no, lag(highest) OVER w AS prev_highest
          FROM got WHERE job = 'ingest' WINDOW w AS (ORDER BY n)) x;
SELECT batch_no, nkeys, lowest, highest, rows FROM got WHERE job = 'ingest' AND batch_no IN (1, 7, 20) ORDER BY n;
SELECT count(*) AS pending_left FROM dataflow.incremental_pending;
-- every chunk is in exactly one batch
SELECT count(*) AS inputs, count(DISTINCT d.input) AS distinct_inputs
  FROM dataflow.dep d JOIN dataflow.chunk b ON b.id = d.consumer
  JOIN dataflow.dataset bd ON bd.id = b.dataset_id AND bd.name = 'loaded';

-- Resubmitting an input of batch 7 (keys 3001..3500) re-runs batch 7 only, with the same inputs.
SELECT dataflow.register('changes', '3100', row_count => 3, force => true) AS version;
SELECT key, status, version FROM dataflow.chunks WHERE dataset = 'loaded' AND status <> 'ready';
SELECT pg_temp.next_batch('ingest') AS leased;
SELECT batch_no, nkeys, lowest, highest, rows FROM got WHERE job = 'ingest' ORDER BY n DESC LIMIT 1;
SELECT pg_temp.next_batch('ingest') AS no_batch_21;

-- A row cap: batch_max_rows => 10 over row counts 4, 4, 4, 20, 3, NULL (counts 0), 5.
-- 4+4 fits and +4 would not; 4 alone (20 next is over); 20 alone (over the cap on its
-- own); 3 + NULL + 5 = 8.
SELECT dataflow.create_dataset('feed', 'int') > 0 AS ok;
SELECT dataflow.create_dataset('feed_loaded', 'int') > 0 AS ok;
SELECT dataflow.create_job('load_feed', output => 'feed_loaded', batch_max_rows => 10,
                           backoff_min => '0', backoff_max => '0') > 0 AS ok;
SELECT dataflow.add_input('load_feed', 'feed', mapping => 'incremental');
SELECT count(dataflow.register('feed', k::text, row_count => r))
  FROM unnest(ARRAY[4, 4, 4, 20, 3, NULL, 5]::bigint[]) WITH ORDINALITY x(r, k);
SELECT sum(pg_temp.next_batch('load_feed')) AS batches FROM generate_series(1, 6);
SELECT batch_no, keys, rows FROM got WHERE job = 'load_feed' ORDER BY n;

-- Both caps hold at once, and a changed cap applies from the next batch: the batch in
-- flight keeps its inputs, a chunk arriving meanwhile goes to a later batch, and a
-- failing batch is retried with the same inputs even after the caps changed.
SELECT count(dataflow.register('feed', k::text, row_count => 1)) FROM generate_series(11, 30) k;
SELECT dataflow.alter_job('load_feed', batch_max_rows => 100);
UPDATE dataflow.job_input SET max_chunks = 4
 WHERE dataset_id = (SELECT id FROM dataflow.dataset WHERE name = 'feed');
SELECT pg_temp.next_batch('load_feed', p_fail => true) AS leased_and_failed;    -- 11..14
SELECT dataflow.register('feed', '8', row_count => 1);                          -- arrives meanwhile
UPDATE dataflow.job_input SET max_chunks = 8
 WHERE dataset_id = (SELECT id FROM dataflow.dataset WHERE name = 'feed');
SELECT dataflow.alter_job('load_feed', batch_max_rows => 6);
SELECT pg_temp.next_batch('load_feed') AS retried;                              -- 11..14 again
SELECT pg_temp.next_batch('load_feed') AS leased;                               -- 8, 15..19: 6 rows
SELECT dataflow.alter_job('load_feed', batch_max_rows => -1);                   -- -1 removes the row cap
SELECT pg_temp.next_batch('load_feed') AS leased;                               -- 20..27: 8 chunks
SELECT pg_temp.next_batch('load_feed') AS leased;                               -- 28..30
SELECT pg_temp.next_batch('load_feed') AS nothing_left;
SELECT batch_no, keys, rows FROM got WHERE job = 'load_feed' AND n > (SELECT max(n) - 5 FROM got) ORDER BY n;
SELECT key, version, attempts FROM dataflow.chunks WHERE dataset = 'feed_loaded' AND key = '5';
SELECT batch_max_rows FROM dataflow.job WHERE name = 'load_feed';
SELECT detail -> 'changes' AS changes FROM dataflow.event WHERE to_status = 'altered' ORDER BY id;

-- alter_input changes an incremental input's max_chunks (issue 16 leftovers): NULL keeps it,
-- -1 removes the cap; from the next batch (a batch running meanwhile keeps its inputs); no
-- definition version (nothing is rebuilt), an 'altered' event. Refusals are 22023 (22004
-- for a NULL wait or rerun) and change nothing.
SELECT pg_temp.fails($$SELECT dataflow.alter_input('load_feed', 'feed', max_chunks => 0)$$) AS zero;
SELECT pg_temp.fails($$SELECT dataflow.alter_input('load_feed', 'feed', max_chunks => -2)$$) AS below_minus_one;
SELECT pg_temp.fails($$SELECT dataflow.alter_input('copy', 'changes', max_chunks => 5)$$) AS not_incremental;
SELECT pg_temp.fails($$SELECT dataflow.alter_input('copy', 'changes', max_chunks => -1)$$) AS not_incremental_clear;
SELECT pg_temp.fails($$SELECT dataflow.alter_input('load_feed', 'feed', max_chunks => 2, wait => NULL)$$) AS null_wait;
SELECT dataflow.alter_input('load_feed', 'feed') AS nothing_given;
SELECT dataflow.alter_input('load_feed', 'feed', max_chunks => 8) AS same_cap;
SELECT count(dataflow.register('feed', k::text, row_count => 1)) FROM generate_series(31, 40) k;
SELECT dataflow.alter_input('load_feed', 'feed', max_chunks => 3) AS capped;
SELECT key, params #> '{batch,keys}' AS keys FROM dataflow.lease('load_feed', 'w');   -- 31..33, left running
SELECT dataflow.alter_input('load_feed', 'feed', max_chunks => -1) AS cap_removed;    -- no wait needed
SELECT count(*) AS inputs_of_the_running_batch FROM dataflow.dep d JOIN dataflow.chunk b ON b.id = d.consumer
  JOIN dataflow.dataset bd ON bd.id = b.dataset_id AND bd.name = 'feed_loaded' WHERE b.status = 'running';
SELECT dataflow.complete(pg_temp.tok('feed_loaded', '9'));
SELECT pg_temp.next_batch('load_feed') AS leased;                                      -- 34..40: no cap
SELECT batch_no, keys, rows FROM got WHERE job = 'load_feed' ORDER BY n DESC LIMIT 1;
SELECT max_chunks FROM dataflow.job_input WHERE dataset_id = (SELECT id FROM dataflow.dataset WHERE name = 'feed');
SELECT definition_version FROM dataflow.job WHERE name = 'load_feed';
SELECT detail FROM dataflow.event WHERE to_status = 'altered' AND detail ? 'input' ORDER BY id;
-- with a definition change at once (require): both are applied and reported
SELECT dataflow.alter_input('load_feed', 'feed', require => 'ready', max_chunks => 4) - 'definition_version' AS both;

-- The caps are shown: the jobs view has batch_max_rows and the inputs with their max_chunks,
-- graph_dot labels them; readers see them (no secret among them)
SELECT dataflow.alter_job('load_feed', batch_max_rows => 50) AS rows_cap;
SELECT job, batch_max_rows, inputs FROM dataflow.jobs WHERE job IN ('ingest', 'load_feed', 'copy') ORDER BY job;
SELECT line FROM regexp_split_to_table(dataflow.graph_dot(), E'\n') line
 WHERE line ~ 'max_chunks|batch_max_rows' ORDER BY line;
SET ROLE dataflow_reader;
SELECT job, batch_max_rows, inputs -> 0 ->> 'max_chunks' AS max_chunks FROM dataflow.jobs WHERE job = 'load_feed';
RESET ROLE;
