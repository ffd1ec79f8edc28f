-- Fencing: only the live lease may change a run. Repeated, late, superseded, cancelled and
-- unknown tokens are refused with a clear SQLSTATE and change nothing (fails() marks any table
-- change); a completion built on an input re-produced meanwhile is superseded; a chunk that
-- live runs read is not re-produced until they end.
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\i sql/include/helpers.psql
-- mk(name): a one-chunk job of its own (dataset name, job j_name, key 1 queued), so every
-- scenario below leases exactly the chunk it means
CREATE FUNCTION pg_temp.mk(n text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM dataflow.create_dataset(n, 'int');
  PERFORM dataflow.create_job('j_' || n, output => n, max_attempts => 3, backoff_min => '0 s', backoff_max => '0 s');
  PERFORM dataflow.expect(n, '1');
  RETURN 'j_' || n;
END $$;

-- ===== complete twice: the second is refused (55000) and nothing is counted twice
-- tw (one of two inputs of tw_c) completed twice must not make tw_c runnable.
SELECT pg_temp.mk('tw');
SELECT dataflow.create_dataset('tw_b', 'int'), dataflow.create_dataset('tw_c', 'int');
SELECT dataflow.create_job('j_tw_c', output => 'tw_c');
SELECT dataflow.add_input('j_tw_c', 'tw'), dataflow.add_input('j_tw_c', 'tw_b');
SELECT dataflow.expect('tw_c', '1');
SELECT key FROM dataflow.lease('j_tw', 'w1');
SELECT pg_temp.tok('tw', '1') AS t1 \gset
SELECT dataflow.complete(:'t1', row_count => 1);
SELECT pg_temp.fails(format('SELECT dataflow.complete(%L, row_count => 99)', :'t1')) AS second_complete;
SELECT * FROM pg_temp.st('tw', 'tw_c');
SELECT count(*) FILTER (WHERE status = 'succeeded') AS succeeded_runs, max(row_count) AS row_count
  FROM dataflow.runs WHERE dataset = 'tw';
SELECT count(*) AS ready_events FROM dataflow.event e WHERE e.to_status = 'ready'
   AND e.dataset_id = (SELECT id FROM dataflow.dataset WHERE name = 'tw');
-- heartbeat and fail on a finished run are refused as well
SELECT pg_temp.fails(format('SELECT dataflow.heartbeat(%L)', :'t1')) AS heartbeat_after_complete,
       pg_temp.fails(format('SELECT dataflow.fail(%L, %L)', :'t1', 'late')) AS fail_after_complete;

-- ===== a lease that passed its deadline is dead even before reap(): complete, heartbeat and
-- fail are refused; reap() then expires it and the chunk is retried under a new token
SELECT pg_temp.mk('dl');
SELECT key FROM dataflow.lease('j_dl', 'w-late', lease_for => '1 millisecond');
SELECT pg_temp.tok('dl', '1') AS t2 \gset
SELECT pg_sleep(0.01);
SELECT pg_temp.fails(format('SELECT dataflow.complete(%L)', :'t2')) AS complete_past_deadline,
       pg_temp.fails(format('SELECT dataflow.heartbeat(%L)', :'t2')) AS heartbeat_past_deadline,
       pg_temp.fails(format('SELECT dataflow.fail(%L, %L)', :'t2', 'x')) AS fail_past_deadline;
SELECT dataflow.reap() AS reaped;
-- ===== after reap(): every call on the token is refused and changes nothing
SELECT pg_temp.fails(format('SELECT dataflow.complete(%L)', :'t2')) AS complete_after_reap,
       pg_temp.fails(format('SELECT dataflow.heartbeat(%L)', :'t2')) AS heartbeat_after_reap,
       pg_temp.fails(format('SELECT dataflow.fail(%L, %L)', :'t2', 'x')) AS fail_after_reap;
SELECT * FROM pg_temp.st('dl');
SELECT key, attempt FROM dataflow.lease('j_dl', 'w2');
SELECT pg_temp.tok('dl', '1') <> :'t2' AS new_token;
SELECT pg_temp.fails(format('SELECT dataflow.complete(%L)', :'t2')) AS old_token_while_retry_runs;
SELECT dataflow.complete(pg_temp.tok('dl', '1'));
SELECT pg_temp.fails(format('SELECT dataflow.complete(%L)', :'t2')) AS old_token_after_retry;
SELECT status, attempt, worker FROM dataflow.runs WHERE dataset = 'dl' ORDER BY run_id;
SELECT * FROM pg_temp.st('dl');

-- ===== resubmit of the running chunk: its run is superseded; its process may still be
-- reading, so its token may end the run (complete answers superseded, changes only the run)
-- and is refused after that
SELECT pg_temp.mk('rs');
SELECT key FROM dataflow.lease('j_rs', 'w1');
SELECT pg_temp.tok('rs', '1') AS t3 \gset
SELECT key, old_status, new_status, version FROM dataflow.resubmit('rs', '1');
SELECT status, finished_at IS NULL AS still_reading FROM dataflow.runs WHERE dataset = 'rs';
SELECT * FROM pg_temp.st('rs');
SELECT dataflow.complete(:'t3') AS complete_superseded;
SELECT * FROM pg_temp.st('rs');
SELECT pg_temp.fails(format('SELECT dataflow.complete(%L)', :'t3')) AS complete_again,
       pg_temp.fails(format('SELECT dataflow.heartbeat(%L)', :'t3')) AS heartbeat_superseded,
       pg_temp.fails(format('SELECT dataflow.fail(%L, %L)', :'t3', 'x')) AS fail_superseded;
SELECT version, status, replace(error, session_user, '<me>') AS error FROM dataflow.runs WHERE dataset = 'rs';
-- the new attempt produces version 2
SELECT key, version, attempt FROM dataflow.lease('j_rs', 'w1');
SELECT dataflow.complete(pg_temp.tok('rs', '1'));
SELECT * FROM pg_temp.st('rs');
-- the same through the view
SELECT key FROM dataflow.resubmit('rs', '1');
SELECT key FROM dataflow.lease('j_rs', 'w1');
SELECT pg_temp.tok('rs', '1') AS t3b \gset
UPDATE dataflow.chunks SET status = 'resubmit' WHERE dataset = 'rs' AND key = '1';
SELECT dataflow.complete(:'t3b') AS complete_superseded_by_view;
SELECT pg_temp.fails(format('SELECT dataflow.complete(%L)', :'t3b')) AS complete_again;

-- ===== a token that never existed is 42704; NULL is 22004
SELECT pg_temp.fails($$SELECT dataflow.complete('00000000-0000-0000-0000-000000000000')$$) AS complete_unknown,
       pg_temp.fails($$SELECT dataflow.heartbeat('00000000-0000-0000-0000-000000000000')$$) AS heartbeat_unknown,
       pg_temp.fails($$SELECT dataflow.fail('00000000-0000-0000-0000-000000000000', 'x')$$) AS fail_unknown;
SELECT pg_temp.fails($$SELECT dataflow.complete(NULL)$$) AS complete_null,
       pg_temp.fails($$SELECT dataflow.heartbeat(NULL)$$) AS heartbeat_null,
       pg_temp.fails($$SELECT dataflow.fail(NULL, 'x')$$) AS fail_null;

-- ===== a bad argument on a live lease is refused and leaves the lease live and unchanged
SELECT pg_temp.mk('ba');
SELECT key FROM dataflow.lease('j_ba', 'w1');
SELECT pg_temp.tok('ba', '1') AS t4 \gset
SELECT pg_temp.fails(format('SELECT dataflow.complete(%L, row_count => -1)', :'t4')) AS negative_rows,
       pg_temp.fails(format('SELECT dataflow.complete(%L, info => %L)', :'t4', '[1]')) AS info_not_object,
       pg_temp.fails(format('SELECT dataflow.heartbeat(%L, %L)', :'t4', '-1 s')) AS negative_extension,
       pg_temp.fails(format('SELECT dataflow.fail(%L, NULL)', :'t4')) AS null_error,
       pg_temp.fails(format('SELECT dataflow.fail(%L, %L, NULL)', :'t4', 'x')) AS null_retry;
-- heartbeat moves the deadline (extend_by, or the job's lease_for) and records itself
SELECT dataflow.heartbeat(:'t4', '2 hours') BETWEEN now() + '119 min' AND now() + '121 min' AS extended;
SELECT heartbeat_at IS NOT NULL AS heartbeat_recorded, deadline > now() + '119 min' AS deadline_kept
  FROM dataflow.runs WHERE dataset = 'ba';
SELECT dataflow.heartbeat(:'t4') BETWEEN now() + '4 min' AND now() + '6 min' AS job_lease_for;
SELECT dataflow.complete(:'t4');

-- ===== complete is transactional: a worker that rolls back its load rolls back the completion,
-- and its lease stays live
SELECT pg_temp.mk('tx');
SELECT key FROM dataflow.lease('j_tx', 'w1');
BEGIN;
SELECT dataflow.complete(pg_temp.tok('tx', '1'), row_count => 3);
ROLLBACK;
SELECT * FROM pg_temp.st('tx');
SELECT status FROM dataflow.runs WHERE dataset = 'tx';
SELECT dataflow.complete(pg_temp.tok('tx', '1'), row_count => 3);

-- ===== failed and cancelled runs are fenced too
SELECT pg_temp.mk('fc');
SELECT key FROM dataflow.lease('j_fc', 'w1');
SELECT pg_temp.tok('fc', '1') AS t5 \gset
SELECT dataflow.fail(:'t5', 'boom');
SELECT pg_temp.fails(format('SELECT dataflow.complete(%L)', :'t5')) AS complete_after_fail,
       pg_temp.fails(format('SELECT dataflow.fail(%L, %L)', :'t5', 'again')) AS fail_after_fail;
SELECT key FROM dataflow.lease('j_fc', 'w1');
SELECT pg_temp.tok('fc', '1') AS t5b \gset
SELECT dataflow.cancel('fc', '1');
SELECT pg_temp.fails(format('SELECT dataflow.complete(%L)', :'t5b')) AS complete_after_cancel,
       pg_temp.fails(format('SELECT dataflow.heartbeat(%L)', :'t5b')) AS heartbeat_after_cancel;
SELECT attempt, status FROM dataflow.runs WHERE dataset = 'fc' ORDER BY run_id;

-- ===== superseded completion and Safe readers.
-- sa (job) + sb (source) -> sc (fan-in). sa:1..3 are produced first.
SELECT dataflow.create_dataset('sa', 'int'), dataflow.create_dataset('sb', 'int'), dataflow.create_dataset('sc', 'int');
SELECT dataflow.create_job('j_sa', output => 'sa'),
       dataflow.create_job('j_sc', output => 'sc', max_attempts => 3, backoff_min => '0 s', backoff_max => '0 s');
SELECT dataflow.add_input('j_sc', 'sa'), dataflow.add_input('j_sc', 'sb');
SELECT dataflow.expect('sc', '1', '3');
SELECT dataflow.complete(token, row_count => 1) FROM dataflow.lease('j_sa', 'w', 10);
SELECT dataflow.register('sb', '1');
SELECT * FROM pg_temp.st('sa', 'sb', 'sc') WHERE key = '1';
-- sc:1 runs on sa:1 v1 and sb:1 v1
SELECT key, inputs FROM dataflow.lease('j_sc', 'w-c');
SELECT pg_temp.tok('sc', '1') AS tc \gset
-- sa:1 is resubmitted with cascade => false while sc:1 runs: the run is left alone, only
-- sc:1's unmet count goes up
SELECT key, old_status, new_status, version, depth FROM dataflow.resubmit('sa', '1', cascade => false);
SELECT * FROM pg_temp.st('sa', 'sc') WHERE key = '1';
-- Safe: sa:1 has a live reader (sc:1's run), so it is not leased for re-production yet
SELECT count(*) AS leased_while_read FROM dataflow.lease('j_sa', 'w1', 10);
-- sc:1 completes on the stale sa:1 v1: 'superseded'; the result is kept in the run row, the
-- chunk does not take it and waits for the new sa:1; the attempt is not counted
SELECT dataflow.complete(:'tc', row_count => 42, checksum => 'stale', info => '{"n": 1}');
SELECT status, row_count, checksum, info, error FROM dataflow.runs WHERE dataset = 'sc' AND key = '1';
SELECT * FROM pg_temp.st('sc') WHERE key = '1';
SELECT row_count, checksum, info FROM dataflow.chunks WHERE dataset = 'sc' AND key = '1';
SELECT pg_temp.fails(format('SELECT dataflow.complete(%L)', :'tc')) AS complete_again;
-- with the reader gone, sa:1 is re-produced; sc:1 is queued again and runs on sa:1 v2
SELECT key, version FROM dataflow.lease('j_sa', 'w1', 10);
SELECT dataflow.complete(pg_temp.tok('sa', '1'));
SELECT * FROM pg_temp.st('sa', 'sc') WHERE key = '1';
SELECT key, version, attempt, inputs->0->>'version' AS sa_version FROM dataflow.lease('j_sc', 'w-c');
SELECT dataflow.complete(pg_temp.tok('sc', '1'));
SELECT * FROM pg_temp.st('sc') WHERE key = '1';
SELECT status, inputs FROM dataflow.runs WHERE dataset = 'sc' AND key = '1' ORDER BY run_id;

-- ===== a reader that fails also releases its input; its retry waits for the new input
-- instead of being queued on a missing one
SELECT dataflow.register('sb', '2');
SELECT key FROM dataflow.lease('j_sc', 'w-c');
SELECT pg_temp.tok('sc', '2') AS tc2 \gset
SELECT count(*) FROM dataflow.resubmit('sa', '2', cascade => false);
SELECT count(*) AS leased_while_read FROM dataflow.lease('j_sa', 'w1', 10);
SELECT dataflow.fail(:'tc2', 'oops');
SELECT * FROM pg_temp.st('sa', 'sc') WHERE key = '2';
SELECT count(*) AS sc_leasable FROM dataflow.lease('j_sc', 'w-c');
SELECT key, version FROM dataflow.lease('j_sa', 'w1', 10);
SELECT dataflow.complete(pg_temp.tok('sa', '2'));
SELECT * FROM pg_temp.st('sc') WHERE key = '2';

SELECT key, version, attempt FROM dataflow.lease('j_sc', 'w-c');
SELECT dataflow.complete(pg_temp.tok('sc', '2'));

-- ===== the same for a reader whose lease expires (reap)
SELECT dataflow.register('sb', '3');
SELECT key FROM dataflow.lease('j_sc', 'w-c', lease_for => '1 millisecond');
SELECT count(*) FROM dataflow.resubmit('sa', '3', cascade => false);
SELECT pg_sleep(0.01);
SELECT count(*) AS leased_while_read FROM dataflow.lease('j_sa', 'w1', 10);   -- the expired run still reads
SELECT dataflow.reap() AS reaped;
SELECT * FROM pg_temp.st('sa', 'sc') WHERE key = '3';
SELECT key, version FROM dataflow.lease('j_sa', 'w1', 10);

-- ===== re-registering a source input cascades: the reader is superseded outright
SELECT dataflow.create_dataset('rg_src', 'int'), dataflow.create_dataset('rg', 'int');
SELECT dataflow.create_job('j_rg', output => 'rg');
SELECT dataflow.add_input('j_rg', 'rg_src');
SELECT dataflow.register('rg_src', '1'), dataflow.expect('rg', '1');
SELECT key FROM dataflow.lease('j_rg', 'w');
SELECT pg_temp.tok('rg', '1') AS tr \gset
SELECT dataflow.register('rg_src', '1', force => true) AS src_version;
SELECT dataflow.complete(:'tr') AS complete_after_reregister;
SELECT * FROM pg_temp.st('rg_src', 'rg');
SELECT key, version, inputs->0->>'version' AS src_version FROM dataflow.lease('j_rg', 'w');

-- ===== _fail's delay (the callback listener's retry_after; granted to dataflow_worker) is
-- bounded: a negative one would skip the backoff, a huge or NaN one park the chunk
SELECT pg_temp.mk('fd');
SELECT key FROM dataflow.lease('j_fd', 'w');
SELECT pg_temp.tok('fd', '1') AS tfd \gset
SELECT pg_temp.fails(format('SELECT dataflow._fail(%L, %L, true, %s)', :'tfd', 'x', d)) AS refused, d AS delay
  FROM unnest(ARRAY['-5', '1e10', '''NaN''', '''Infinity''']) d;
SELECT * FROM pg_temp.st('fd');
SELECT dataflow._fail(:'tfd', 'busy', true, 30) AS within_bounds;
SELECT status, round(extract(epoch FROM not_before - now())) BETWEEN 25 AND 31 AS in_30s
  FROM dataflow.chunk WHERE dataset_id = (SELECT id FROM dataflow.dataset WHERE name = 'fd');
