-- The chunk status machine of docs/internals.md (section 2), arrow by arrow:
--  waiting -> queued (inputs available), queued -> running (lease), running -> ready (complete),
--  ready -> validated / invalid (validate), running -> queued with backoff (fail, retry left),
--  running -> failed (no attempts left / retry => false), expired lease (reap) -> queued / failed,
--  upstream re-produced -> consumers back to waiting, resubmit from any status (function, view
--  UPDATE, table UPDATE), skip, cancel, pause/resume, register of a new source version.
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\i sql/include/helpers.psql

-- A three-stage flow: src (source) -> mid (job j_mid, same) -> top (job j_top, needs mid validated).
SELECT dataflow.create_dataset('src', 'date', location => 's3://lake/{dataset}/{key}/v{version}/');
SELECT dataflow.create_dataset('mid', 'date', location => 's3://lake/{dataset}/{key}/v{version}/');
SELECT dataflow.create_dataset('top', 'date');
SELECT dataflow.create_job('j_mid', output => 'mid', params => '{"p": 1}', max_attempts => 2,
                           backoff_min => '0 s', backoff_max => '0 s');
SELECT dataflow.create_job('j_top', output => 'top', max_attempts => 2, backoff_min => '0 s', backoff_max => '0 s');
SELECT dataflow.add_input('j_mid', 'src'), dataflow.add_input('j_top', 'mid', require => 'validated');

-- expect() creates the range and its upstream placeholders; nothing is available: all waiting,
-- each consumer counting one unmet input, sources counting none.
SELECT dataflow.expect('top', '2024-01-01', '2024-01-03') AS created;
SELECT * FROM pg_temp.st('src', 'mid', 'top');
-- expect() again creates nothing
SELECT dataflow.expect('top', '2024-01-01', '2024-01-03') AS created_again;

-- ===== waiting -> queued: the input becomes available (register)
SELECT dataflow.register('src', '2024-01-01', row_count => 10, checksum => 'c1') AS version;
SELECT * FROM pg_temp.st('src', 'mid');

-- ===== queued -> running: lease hands over the exact input version and location
SELECT dataset, key, version, attempt, output_location, inputs, params, deadline > now() AS live
  FROM dataflow.lease('j_mid', 'w1');
SELECT * FROM pg_temp.st('mid') WHERE key = '2024-01-01';
SELECT job, worker, status, version, attempt, inputs FROM dataflow.runs WHERE dataset = 'mid';
-- nothing else is runnable now
SELECT count(*) AS leased_again FROM dataflow.lease('j_mid', 'w2');

-- ===== running -> ready: complete; top needs mid *validated*, so it keeps waiting
SELECT dataflow.heartbeat(pg_temp.tok('mid', '2024-01-01')) > now() AS heartbeat_moves_deadline;
SELECT dataflow.complete(pg_temp.tok('mid', '2024-01-01'), row_count => 7, checksum => 'm1', info => '{"k": "v"}');
SELECT * FROM pg_temp.st('mid', 'top') WHERE key = '2024-01-01';
SELECT location, row_count, checksum, info, run_id IS NOT NULL AS has_run FROM dataflow.chunks
 WHERE dataset = 'mid' AND key = '2024-01-01';
SELECT status, row_count, checksum, info, finished_at IS NOT NULL AS finished FROM dataflow.runs WHERE dataset = 'mid';

-- ===== ready -> validated: now top is queued
SELECT dataflow.validate('mid', '2024-01-01', true, '{"rows": "ok"}');
SELECT * FROM pg_temp.st('mid', 'top') WHERE key = '2024-01-01';
SELECT (validation - 'at') || jsonb_build_object('by', validation->>'by' = session_user) AS validation FROM dataflow.chunks WHERE dataset = 'mid' AND key = '2024-01-01';

-- ===== validated -> invalid: a queued consumer that has not started waits again
SELECT dataflow.validate('mid', '2024-01-01', false, '{"rows": "bad"}');
SELECT * FROM pg_temp.st('mid', 'top') WHERE key = '2024-01-01';
-- invalid -> validated (re-validation) queues it again
SELECT dataflow.validate('mid', '2024-01-01', true);
SELECT * FROM pg_temp.st('top') WHERE key = '2024-01-01';

-- ===== ready -> invalid directly (a ready-only consumer would lose its input too)
SELECT dataflow.register('src', '2024-01-02');
SELECT count(*) FROM dataflow.lease('j_mid', 'w1');
-- (complete may name where the output went, overriding the template)
SELECT dataflow.complete(pg_temp.tok('mid', '2024-01-02'), location => 's3://custom/mid-02/');
SELECT c.location, r.output_location FROM dataflow.chunks c JOIN dataflow.runs r ON r.run_id = c.run_id
 WHERE c.dataset = 'mid' AND c.key = '2024-01-02';
SELECT dataflow.validate('mid', '2024-01-02', false);
SELECT * FROM pg_temp.st('mid', 'top') WHERE key = '2024-01-02';
-- only produced chunks can be validated (55000), and passed is required (22004)
SELECT pg_temp.fails($$SELECT dataflow.validate('mid', '2024-01-03', true)$$) AS validate_waiting,
       pg_temp.fails($$SELECT dataflow.validate('mid', '2024-01-02', NULL)$$) AS passed_null;

-- ===== running -> queued with retry (fail, attempts left, backoff 0: leasable at once)
SELECT dataflow.register('src', '2024-01-03');
SELECT key, attempt FROM dataflow.lease('j_mid', 'w1');
SELECT dataflow.fail(pg_temp.tok('mid', '2024-01-03'), 'disk full');
SELECT * FROM pg_temp.st('mid') WHERE key = '2024-01-03';
SELECT status, replace(error, session_user, '<me>') AS error FROM dataflow.runs WHERE dataset = 'mid' AND key = '2024-01-03';
-- ===== running -> failed: attempts spent (max_attempts 2)
SELECT key, attempt FROM dataflow.lease('j_mid', 'w1');
SELECT dataflow.fail(pg_temp.tok('mid', '2024-01-03'), 'disk still full');
SELECT * FROM pg_temp.st('mid') WHERE key = '2024-01-03';
-- a failed chunk is not leased
SELECT count(*) AS leased FROM dataflow.lease('j_mid', 'w1');

-- ===== running -> failed at once: retry => false (a fatal error) on the first attempt
SELECT dataflow.resubmit('mid', '2024-01-03');
SELECT key, attempt FROM dataflow.lease('j_mid', 'w1');
SELECT dataflow.fail(pg_temp.tok('mid', '2024-01-03'), 'bad schema', retry => false);
SELECT * FROM pg_temp.st('mid') WHERE key = '2024-01-03';

-- ===== backoff: not_before is in the future and lease skips the chunk until it passes
SELECT dataflow.create_dataset('bo_src', 'int'), dataflow.create_dataset('bo', 'int');
SELECT dataflow.create_job('j_bo', output => 'bo', max_attempts => 3, backoff_min => '1 s', backoff_max => '1 s');
SELECT dataflow.add_input('j_bo', 'bo_src');
SELECT dataflow.register('bo_src', '1'), dataflow.expect('bo', '1');
SELECT count(*) FROM dataflow.lease('j_bo', 'w1');
SELECT dataflow.fail(pg_temp.tok('bo', '1'), 'flaky');
SELECT * FROM pg_temp.st('bo');
SELECT count(*) AS leased_during_backoff FROM dataflow.lease('j_bo', 'w1');
SELECT detail->'retry_in_seconds' AS retry_in FROM dataflow.event WHERE to_status = 'queued' AND detail->>'reason' = 'fail'
 AND key = '1';
SELECT pg_sleep(1.1);
SELECT key, attempt FROM dataflow.lease('j_bo', 'w1');

-- exponential backoff with jitter: attempt n waits between backoff_min and
-- min(backoff_max, backoff_min * 2^(n-1)); the test moves not_before to now to retry at once
SELECT dataflow.create_dataset('bx', 'int');
SELECT dataflow.create_job('j_bx', output => 'bx', max_attempts => 5, backoff_min => '10 s', backoff_max => '25 s');
SELECT dataflow.expect('bx', '1');
CREATE FUNCTION pg_temp.fail_once() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM dataflow.fail(l.token, 'again') FROM dataflow.lease('j_bx', 'w') l;
  UPDATE dataflow.chunk SET not_before = now()
   WHERE dataset_id = (SELECT id FROM dataflow.dataset WHERE name = 'bx');
END $$;
SELECT pg_temp.fail_once() FROM generate_series(1, 4);
SELECT (detail->>'attempt')::int AS attempt, to_status,
       (detail->>'retry_in_seconds')::numeric BETWEEN 10 AND least(25, 10 * 2 ^ ((detail->>'attempt')::int - 1)) AS within_bounds,
       CASE WHEN (detail->>'attempt')::int = 1 THEN (detail->>'retry_in_seconds')::numeric = 10 END AS first_is_min
  FROM dataflow.event WHERE detail->>'reason' = 'fail' AND run_id IN (SELECT run_id FROM dataflow.runs WHERE dataset = 'bx')
 ORDER BY id;
-- the fifth failure spends the last attempt
SELECT dataflow.fail(token, 'last') FROM dataflow.lease('j_bx', 'w');

-- ===== expired lease -> queued (attempts left) via reap(); the token is dead
SELECT dataflow.create_dataset('ex', 'int');
SELECT dataflow.create_job('j_ex', output => 'ex', max_attempts => 2, backoff_min => '0 s', backoff_max => '0 s');
SELECT dataflow.expect('ex', '1');
SELECT key, attempt FROM dataflow.lease('j_ex', 'w-slow', lease_for => '1 millisecond');
SELECT pg_sleep(0.01);
SELECT dataflow.reap() AS reaped;
SELECT * FROM pg_temp.st('ex');
SELECT status, worker, regexp_replace(error, 'at .* without', 'at <deadline> without') AS error
  FROM dataflow.runs WHERE dataset = 'ex';
SELECT pg_temp.fails(format('SELECT dataflow.complete(%L)', pg_temp.tok('ex', '1'))) AS late_complete;
-- ===== expired lease -> failed (attempts spent)
SELECT key, attempt FROM dataflow.lease('j_ex', 'w-slow', lease_for => '1 millisecond');
SELECT pg_sleep(0.01);
SELECT dataflow.reap() AS reaped, dataflow.reap() AS reaped_again;
SELECT * FROM pg_temp.st('ex');
SELECT attempt, status FROM dataflow.runs WHERE dataset = 'ex' ORDER BY run_id;

-- an expired lease is retried with the job's backoff too
SELECT dataflow.create_dataset('exb', 'int');
SELECT dataflow.create_job('j_exb', output => 'exb', backoff_min => '1 hour', backoff_max => '1 hour');
SELECT dataflow.expect('exb', '1');
SELECT key FROM dataflow.lease('j_exb', 'w-slow', lease_for => '1 millisecond');
SELECT pg_sleep(0.01);
SELECT dataflow.reap() AS reaped;
SELECT * FROM pg_temp.st('exb');
SELECT count(*) AS leased_in_backoff FROM dataflow.lease('j_exb', 'w');

-- ===== upstream re-produced -> consumers back to waiting
-- top:01 is queued on mid:01 validated; resubmitting src:01 resets mid:01 (new version) and
-- sends top:01 back to waiting.
SELECT * FROM pg_temp.st('src', 'mid', 'top') WHERE key = '2024-01-01';
SELECT * FROM dataflow.resubmit('src', '2024-01-01');
SELECT * FROM pg_temp.st('src', 'mid', 'top') WHERE key = '2024-01-01';
-- the source chunk waits for a new register, which makes its version available
SELECT dataflow.register('src', '2024-01-01') AS version;
SELECT * FROM pg_temp.st('src', 'mid', 'top') WHERE key = '2024-01-01';
SELECT key, version, inputs->0->>'version' AS input_version, inputs->0->>'location' AS input_location
  FROM dataflow.lease('j_mid', 'w1');
SELECT dataflow.complete(pg_temp.tok('mid', '2024-01-01'));
SELECT dataflow.validate('mid', '2024-01-01', true);
SELECT * FROM pg_temp.st('mid', 'top') WHERE key = '2024-01-01';

-- ===== register of a new version of a source chunk re-runs everything built on it
-- top:01 done (ready) on mid:01 v2; registering src:01 again makes src v3, mid v3 queued, top v2 waiting
SELECT count(*) FROM dataflow.lease('j_top', 'w1');
SELECT dataflow.complete(pg_temp.tok('top', '2024-01-01'));
SELECT * FROM pg_temp.st('src', 'mid', 'top') WHERE key = '2024-01-01';
SELECT dataflow.register('src', '2024-01-01', location => 's3://elsewhere/x') AS version;
SELECT * FROM pg_temp.st('src', 'mid', 'top') WHERE key = '2024-01-01';
SELECT location FROM dataflow.chunks WHERE dataset = 'src' AND key = '2024-01-01';

-- ===== resubmit from every status, three ways; each: version+1, attempts 0, error and
-- validation cleared, queued (inputs there) or waiting. rs_src:1..9 are ready; rs:k is driven
-- to a status, then resubmitted.
SELECT dataflow.create_dataset('rs_src', 'int'), dataflow.create_dataset('rs', 'int');
SELECT dataflow.create_job('j_rs', output => 'rs', max_attempts => 1, backoff_min => '0 s', backoff_max => '0 s');
SELECT dataflow.add_input('j_rs', 'rs_src');
SELECT dataflow.expect('rs', '1', '9');
SELECT dataflow.register('rs_src', k::text) FROM generate_series(2, 9) k;   -- rs_src:1 stays missing
CREATE FUNCTION pg_temp.drive(k text, target text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  IF target IN ('running', 'ready', 'validated', 'invalid', 'failed') THEN
    PERFORM 1 FROM dataflow.lease('j_rs', 'w-' || k, 1) l WHERE l.key = k;   -- queued: lowest keys first
  END IF;
  IF target IN ('ready', 'validated', 'invalid') THEN
    PERFORM dataflow.complete(pg_temp.tok('rs', k), row_count => 5);
  END IF;
  IF target = 'validated' THEN PERFORM dataflow.validate('rs', k, true); END IF;
  IF target = 'invalid' THEN PERFORM dataflow.validate('rs', k, false, '{"why": "x"}'); END IF;
  IF target = 'failed' THEN PERFORM dataflow.fail(pg_temp.tok('rs', k), 'boom'); END IF;
  IF target = 'skipped' THEN PERFORM dataflow.skip('rs', k, 'empty day'); END IF;
  IF target = 'cancelled' THEN PERFORM dataflow.cancel('rs', k); END IF;
  RETURN (SELECT status FROM dataflow.chunks WHERE dataset = 'rs' AND key = k);
END $$;
-- drive in key order so each lease takes the chunk meant (the oldest queued first)
SELECT k, t AS wanted, pg_temp.drive(k, t) AS got
  FROM (VALUES ('1', 'waiting'), ('2', 'running'), ('3', 'ready'), ('4', 'validated'), ('5', 'invalid'),
               ('6', 'failed'), ('7', 'skipped'), ('8', 'cancelled'), ('9', 'queued')) v(k, t) ORDER BY k;
SELECT * FROM pg_temp.st('rs');
SELECT (SELECT token FROM dataflow.run WHERE id = (SELECT run_id FROM dataflow.chunk c WHERE c.key = '2'
        AND c.dataset_id = (SELECT id FROM dataflow.dataset WHERE name = 'rs'))) AS tok2 \gset
-- via the function: waiting, running, ready
SELECT * FROM dataflow.resubmit('rs', '1', '3');
-- via the view: validated, invalid, failed
UPDATE dataflow.chunks SET status = 'resubmit' WHERE dataset = 'rs' AND key IN ('4', '5', '6');
-- via the table: skipped, cancelled, queued
UPDATE dataflow.chunk SET status = 'resubmit'
 WHERE dataset_id = (SELECT id FROM dataflow.dataset WHERE name = 'rs') AND key IN ('7', '8', '9');
SELECT * FROM pg_temp.st('rs');
SELECT key, validation, row_count FROM dataflow.chunks WHERE dataset = 'rs' AND key IN ('3', '5');
-- every resubmit is in the event log with the status it came from
SELECT key, from_status, to_status, version, detail->>'reason' AS reason FROM dataflow.event
 WHERE dataset_id = (SELECT id FROM dataflow.dataset WHERE name = 'rs') AND detail->>'reason' = 'resubmit'
 ORDER BY key::int;
-- the run that was running when its chunk was resubmitted is superseded: its complete()
-- answers superseded and ends the run, and its token is dead after that
SELECT status, replace(error, session_user, '<me>') AS error FROM dataflow.runs WHERE dataset = 'rs' AND key = '2';
SELECT dataflow.complete(:'tok2') AS complete_superseded;
SELECT pg_temp.fails(format('SELECT dataflow.complete(%L)', :'tok2')) AS complete_again;
-- a resubmitted chunk is leased at its new version with attempt 1
SELECT key, version, attempt FROM dataflow.lease('j_rs', 'w1', 20) ORDER BY key;

-- ===== cascade vs cascade => false, and dry_run
-- cs_a (source) -> cs_b -> cs_c; everything produced.
SELECT dataflow.create_dataset('cs_a', 'int'), dataflow.create_dataset('cs_b', 'int'), dataflow.create_dataset('cs_c', 'int');
SELECT dataflow.create_job('j_csb', output => 'cs_b'), dataflow.create_job('j_csc', output => 'cs_c');
SELECT dataflow.add_input('j_csb', 'cs_a'), dataflow.add_input('j_csc', 'cs_b');
SELECT dataflow.expect('cs_c', '1', '2');
SELECT dataflow.register('cs_a', k) FROM unnest(ARRAY['1', '2']) k;
SELECT dataflow.complete(token) FROM dataflow.lease('j_csb', 'w', 10);
SELECT dataflow.complete(token) FROM dataflow.lease('j_csc', 'w', 10);
SELECT * FROM pg_temp.st('cs_a', 'cs_b', 'cs_c');
-- dry run: lists every chunk it would touch (depth order) and changes nothing
SELECT pg_temp.fingerprint() AS fp \gset
SELECT * FROM dataflow.resubmit('cs_a', '1', dry_run => true);
SELECT pg_temp.fingerprint() = :'fp' AS dry_run_changed_nothing;
-- cascade (default): the whole chain below cs_a:1 gets a new version and waits
SELECT * FROM dataflow.resubmit('cs_a', '1');
SELECT * FROM pg_temp.st('cs_a', 'cs_b', 'cs_c') WHERE key = '1';
-- cascade => false: only cs_b:2 is reset; cs_c:2 keeps its version and status, and only counts
-- its input as unavailable again
SELECT * FROM dataflow.resubmit('cs_b', '2', cascade => false);
SELECT * FROM pg_temp.st('cs_b', 'cs_c') WHERE key = '2';
-- when cs_b:2 is produced again, cs_c:2 counts it available and stays ready (no re-run)
SELECT key, version FROM dataflow.lease('j_csb', 'w', 10) ORDER BY key;
SELECT dataflow.complete(pg_temp.tok('cs_b', '2'));
SELECT * FROM pg_temp.st('cs_b', 'cs_c') WHERE key = '2';

-- ===== skipped: known-empty, satisfies consumers, even those requiring validated
SELECT dataflow.create_dataset('sk_src', 'int', requires_validation => true), dataflow.create_dataset('sk', 'int');
SELECT dataflow.create_job('j_sk', output => 'sk');
SELECT dataflow.add_input('j_sk', 'sk_src');                 -- need: validated (the dataset requires it)
SELECT dataflow.expect('sk', '1', '3');
SELECT dataflow.skip('sk_src', '1', 'empty batch');          -- function
UPDATE dataflow.chunks SET status = 'skipped' WHERE dataset = 'sk_src' AND key = '2';   -- view
SELECT dataflow.register('sk_src', '3');                     -- ready is not enough here
SELECT * FROM pg_temp.st('sk_src', 'sk');
SELECT key, info->>'skip_reason' AS reason, row_count FROM dataflow.chunks WHERE dataset = 'sk_src' ORDER BY key;
-- skipping a key nobody expected creates it as skipped
SELECT dataflow.skip('sk_src', '4', 'nothing that day');
SELECT * FROM pg_temp.st('sk_src') WHERE key = '4';
-- skipping again is a no-op; a chunk with data cannot be skipped (55000)
SELECT dataflow.skip('sk_src', '1', 'again');
SELECT pg_temp.fails($$SELECT dataflow.skip('sk_src', '3', 'x')$$) AS skip_ready,
       pg_temp.fails($$UPDATE dataflow.chunks SET status = 'skipped' WHERE dataset = 'sk_src' AND key = '3'$$) AS skip_ready_view;
-- skipping a running chunk cancels its lease and satisfies its consumers
SELECT key FROM dataflow.lease('j_sk', 'w-sk');
SELECT dataflow.skip('sk', '1', 'source was empty');
SELECT * FROM pg_temp.st('sk') WHERE key = '1';
SELECT status, replace(error, session_user, '<me>') AS error FROM dataflow.runs WHERE dataset = 'sk' AND key = '1';

-- ===== cancel: waiting, queued and running chunks stop; others refuse (55000)
SELECT dataflow.create_dataset('cn', 'int');
SELECT dataflow.create_job('j_cn', output => 'cn');
SELECT dataflow.expect('cn', '1', '3');
SELECT key FROM dataflow.lease('j_cn', 'w-cn');              -- cn:1 running
SELECT dataflow.cancel('cn', '1'), dataflow.cancel('cn', '2');
SELECT * FROM pg_temp.st('cn');
SELECT status, replace(error, session_user, '<me>') AS error FROM dataflow.runs WHERE dataset = 'cn';
SELECT pg_temp.fails(format('SELECT dataflow.complete(%L)', pg_temp.tok('cn', '1'))) AS complete_cancelled,
       pg_temp.fails($$SELECT dataflow.cancel('cn', '1')$$) AS cancel_cancelled;
-- cancelled chunks are not leased; resubmit brings them back
SELECT key FROM dataflow.lease('j_cn', 'w-cn', 10);
SELECT dataflow.complete(pg_temp.tok('cn', '3'));
SELECT pg_temp.fails($$SELECT dataflow.cancel('cn', '3')$$) AS cancel_ready;
SELECT key, new_status, version FROM dataflow.resubmit('cn', '1', '2');
SELECT key, version FROM dataflow.lease('j_cn', 'w-cn', 10) ORDER BY key;

-- ===== pause_job / resume_job
SELECT dataflow.create_dataset('pz', 'int');
SELECT dataflow.create_job('j_pz', output => 'pz');
SELECT dataflow.expect('pz', '1', '2');
SELECT key FROM dataflow.lease('j_pz', 'w');                -- pz:1 running
SELECT dataflow.pause_job('j_pz');
SELECT paused FROM dataflow.job WHERE name = 'j_pz';
SELECT count(*) AS leased_while_paused FROM dataflow.lease('j_pz', 'w');
-- a running lease of a paused job finishes normally
SELECT dataflow.complete(pg_temp.tok('pz', '1'));
SELECT dataflow.resume_job('j_pz');
SELECT key FROM dataflow.lease('j_pz', 'w');
SELECT * FROM pg_temp.st('pz');
