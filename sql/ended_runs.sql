-- complete/fail/heartbeat (and complete_many) on a run that already ended say what happened
-- and when, with a hint for the caller, SQLSTATE 55000, and no empty DETAIL line: one
-- scenario per terminal run status (succeeded, failed, cancelled, expired, superseded) and
-- a lease past its deadline that reap() has not ended yet. The runs' times are pinned
-- (UPDATE dataflow.run) so that the messages, printed as psql prints them, are exact.
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\i sql/include/helpers.psql
SET TimeZone = 'UTC';
\set VERBOSITY default
\set SHOW_CONTEXT errors
-- mk(name): a one-chunk job of its own (dataset name, job j_name, key 1 queued)
CREATE FUNCTION pg_temp.mk(n text, attempts integer DEFAULT 3) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM dataflow.create_dataset(n, 'int');
  PERFORM dataflow.create_job('j_' || n, output => n, max_attempts => attempts,
                              backoff_min => '0 s', backoff_max => '0 s');
  PERFORM dataflow.expect(n, '1');
  RETURN 'j_' || n;
END $$;
-- pin(ds): the chunk's newest run ended (or its lease ran out) at fixed times
CREATE FUNCTION pg_temp.pin(ds text) RETURNS void LANGUAGE sql AS $$
  UPDATE dataflow.run r SET deadline = '2026-01-02 03:00:00+00',
         finished_at = CASE WHEN r.finished_at IS NOT NULL THEN timestamptz '2026-01-02 03:04:05+00' END
   WHERE r.token = pg_temp.tok(ds, '1') $$;

-- ===== succeeded: a second complete, a late fail or heartbeat: nothing to do
SELECT pg_temp.mk('s');
SELECT key FROM dataflow.lease('j_s', 'w1');
SELECT pg_temp.tok('s', '1') AS ts \gset
SELECT dataflow.complete(:'ts', row_count => 1);
SELECT pg_temp.pin('s');
SELECT dataflow.complete(:'ts', row_count => 1);
SELECT dataflow.fail(:'ts', 'late');
SELECT dataflow.heartbeat(:'ts');
SELECT * FROM dataflow.complete_many(ARRAY[:'ts']::uuid[]);

-- ===== failed (attempts left): the retry runs under another lease
SELECT pg_temp.mk('f');
SELECT key FROM dataflow.lease('j_f', 'w1');
SELECT pg_temp.tok('f', '1') AS tf \gset
SELECT dataflow.fail(:'tf', 'disk full');
SELECT pg_temp.pin('f');
SELECT dataflow.complete(:'tf');
SELECT dataflow.fail(:'tf', 'again');
SELECT dataflow.heartbeat(:'tf');

-- ===== failed for good (no attempts left): the chunk failed
SELECT pg_temp.mk('ff', attempts => 1);
SELECT key FROM dataflow.lease('j_ff', 'w1');
SELECT pg_temp.tok('ff', '1') AS tff \gset
SELECT dataflow.fail(:'tff', 'bad input');
SELECT pg_temp.pin('ff');
SELECT dataflow.complete(:'tff');

-- ===== cancelled by an operator
SELECT pg_temp.mk('c');
SELECT key FROM dataflow.lease('j_c', 'w1');
SELECT pg_temp.tok('c', '1') AS tc \gset
SET ROLE dataflow_operator;   -- the actor named in the run's error
SELECT dataflow.cancel('c', '1');
RESET ROLE;
SELECT pg_temp.pin('c');
SELECT dataflow.complete(:'tc');
SELECT dataflow.heartbeat(:'tc');
SELECT dataflow.fail(:'tc', 'late');

-- ===== a lease past its deadline, not reaped yet: the chunk is retried once reap() runs
SELECT pg_temp.mk('d');
SELECT key FROM dataflow.lease('j_d', 'w1');
SELECT pg_temp.tok('d', '1') AS td \gset
SELECT pg_temp.pin('d');
SELECT dataflow.complete(:'td');
SELECT dataflow.heartbeat(:'td');
SELECT dataflow.fail(:'td', 'late');
SELECT * FROM dataflow.complete_many(ARRAY[:'td']::uuid[]);

-- ===== expired: reap() ended it and the chunk is queued for another attempt
SELECT dataflow.reap() AS reaped;
SELECT pg_temp.pin('d');
SELECT dataflow.complete(:'td');
SELECT dataflow.heartbeat(:'td');
SELECT * FROM dataflow.complete_many(ARRAY[:'td']::uuid[]);
-- ... and once another attempt leased the chunk
SELECT key, attempt FROM dataflow.lease('j_d', 'w2');
SELECT dataflow.fail(:'td', 'late');

-- ===== superseded by a resubmit: its complete is taken (superseded), then it is over
SELECT pg_temp.mk('r');
SELECT key FROM dataflow.lease('j_r', 'w1');
SELECT pg_temp.tok('r', '1') AS tr \gset
SET ROLE dataflow_operator;
SELECT key, new_status, version FROM dataflow.resubmit('r', '1');
RESET ROLE;
SELECT dataflow.complete(:'tr') AS complete_superseded;
SELECT pg_temp.pin('r');
SELECT dataflow.complete(:'tr');
SELECT dataflow.heartbeat(:'tr');
-- a completion built on an input re-produced meanwhile is superseded by complete() itself
SELECT dataflow.create_dataset('ri', 'int'), dataflow.create_dataset('ro', 'int');
SELECT dataflow.create_job('j_ro', output => 'ro');
SELECT dataflow.add_input('j_ro', 'ri');
SELECT dataflow.register('ri', '1', 's3://x/1');
SELECT dataflow.expect('ro', '1');
SELECT key FROM dataflow.lease('j_ro', 'w1');
SELECT pg_temp.tok('ro', '1') AS tro \gset
SET ROLE dataflow_operator;
SELECT key, new_status FROM dataflow.resubmit('ri', '1', cascade => false);
RESET ROLE;
SELECT dataflow.complete(:'tro') AS complete_stale;
SELECT pg_temp.pin('ro');
SELECT dataflow.fail(:'tro', 'late');

-- every refusal above left the tables as they were (fails() marks any change)
SELECT pg_temp.fails(format('SELECT dataflow.complete(%L)', :'ts')) AS succeeded_again,
       pg_temp.fails(format('SELECT dataflow.fail(%L, %L)', :'tf', 'x')) AS failed_again,
       pg_temp.fails(format('SELECT dataflow.heartbeat(%L)', :'td')) AS expired_again;
