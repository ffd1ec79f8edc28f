-- Errors of the work API: NULLs (22004), unknown names and chunks (42704), keys that do not
-- parse for their kind (22007/22008/22P02/22003/22023), bad values (22023), wrong state (55000).
-- Every failing call changes nothing (fails() marks any table change with '<<< TABLES CHANGED').
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\i sql/include/helpers.psql

SELECT dataflow.create_dataset('src', 'date'), dataflow.create_dataset('out', 'date'),
       dataflow.create_dataset('tx', 'text'), dataflow.create_dataset('n', 'int');
SELECT dataflow.create_job('j', output => 'out');
SELECT dataflow.add_input('j', 'src');
SELECT dataflow.expect('out', '2024-01-01', '2024-01-02');
SELECT dataflow.register('src', '2024-01-01'), dataflow.register('tx', 'a'), dataflow.register('n', '5');
SELECT key FROM dataflow.lease('j', 'w');
SELECT pg_temp.tok('out', '2024-01-01') AS tok \gset

-- expect
SELECT q, pg_temp.fails(q) FROM unnest(ARRAY[
  $$SELECT dataflow.expect(NULL, '2024-01-01')$$,
  $$SELECT dataflow.expect('nope', '2024-01-01')$$,
  $$SELECT dataflow.expect('out', NULL)$$,
  $$SELECT dataflow.expect('out', '2024-02-30')$$,
  $$SELECT dataflow.expect('out', '2024/01/01')$$,
  $$SELECT dataflow.expect('out', '2024-01-01', 'x')$$,
  $$SELECT dataflow.expect('out', '2024-02-01', '2024-01-01')$$,
  $$SELECT dataflow.expect('n', '1', '100000000')$$,
  $$SELECT dataflow.expect('n', 'abc')$$,
  $$SELECT dataflow.expect('n', '99999999999999999999')$$,
  $$SELECT dataflow.expect('tx', 'a', 'b')$$,
  $$SELECT dataflow.expect('tx', '')$$
]) q;

-- register
SELECT q, pg_temp.fails(q) FROM unnest(ARRAY[
  $$SELECT dataflow.register(NULL, '2024-01-01')$$,
  $$SELECT dataflow.register('nope', '2024-01-01')$$,
  $$SELECT dataflow.register('src', NULL)$$,
  $$SELECT dataflow.register('src', '2024-13-01')$$,
  $$SELECT dataflow.register('src', '')$$,
  $$SELECT dataflow.register('tx', E'bad\tkey')$$,
  $$SELECT dataflow.register('src', '2024-01-05', row_count => -1)$$,
  $$SELECT dataflow.register('src', '2024-01-05', info => '[]')$$,
  $$SELECT dataflow.register('out', '2024-01-05')$$
]) q;

-- lease
SELECT q, pg_temp.fails(q) FROM unnest(ARRAY[
  $$SELECT * FROM dataflow.lease(NULL, 'w')$$,
  $$SELECT * FROM dataflow.lease('nope', 'w')$$,
  $$SELECT * FROM dataflow.lease('j', NULL)$$,
  $$SELECT * FROM dataflow.lease('j', '')$$,
  $$SELECT * FROM dataflow.lease('j', repeat('w', 201))$$,
  $$SELECT * FROM dataflow.lease('j', E'w\n1')$$,
  $$SELECT * FROM dataflow.lease('j', 'w', NULL)$$,
  $$SELECT * FROM dataflow.lease('j', 'w', 0)$$,
  $$SELECT * FROM dataflow.lease('j', 'w', 1001)$$,
  $$SELECT * FROM dataflow.lease('j', 'w', 1, '0 s')$$,
  $$SELECT * FROM dataflow.lease('j', 'w', 1, '-1 s')$$
]) q;

-- heartbeat / complete / fail (<tok> is the live lease taken above)
SELECT replace(q, :'tok', '<tok>') AS q, pg_temp.fails(q) FROM unnest(ARRAY[
  $$SELECT dataflow.heartbeat(NULL)$$,
  $$SELECT dataflow.heartbeat(gen_random_uuid())$$,
  format($$SELECT dataflow.heartbeat(%L, '0 s')$$, :'tok'),
  $$SELECT dataflow.complete(NULL)$$,
  $$SELECT dataflow.complete(gen_random_uuid())$$,
  format($$SELECT dataflow.complete(%L, row_count => -5)$$, :'tok'),
  format($$SELECT dataflow.complete(%L, info => '"x"')$$, :'tok'),
  $$SELECT dataflow.fail(NULL, 'e')$$,
  $$SELECT dataflow.fail(gen_random_uuid(), 'e')$$,
  format($$SELECT dataflow.fail(%L, NULL)$$, :'tok'),
  format($$SELECT dataflow.fail(%L, 'e', NULL)$$, :'tok')
]) q;

-- validate
SELECT q, pg_temp.fails(q) FROM unnest(ARRAY[
  $$SELECT dataflow.validate(NULL, '2024-01-01', true)$$,
  $$SELECT dataflow.validate('nope', '2024-01-01', true)$$,
  $$SELECT dataflow.validate('src', NULL, true)$$,
  $$SELECT dataflow.validate('src', 'x', true)$$,
  $$SELECT dataflow.validate('src', '2024-03-03', true)$$,
  $$SELECT dataflow.validate('src', '2024-01-01', NULL)$$,
  $$SELECT dataflow.validate('src', '2024-01-01', true, NULL)$$,
  $$SELECT dataflow.validate('src', '2024-01-01', true, '[1]')$$,
  $$SELECT dataflow.validate('out', '2024-01-01', true)$$,
  $$SELECT dataflow.validate('out', '2024-01-02', false)$$
]) q;

-- skip
SELECT q, pg_temp.fails(q) FROM unnest(ARRAY[
  $$SELECT dataflow.skip(NULL, '2024-01-01', 'r')$$,
  $$SELECT dataflow.skip('nope', '2024-01-01', 'r')$$,
  $$SELECT dataflow.skip('src', NULL, 'r')$$,
  $$SELECT dataflow.skip('src', '2024-01-02', NULL)$$,
  $$SELECT dataflow.skip('src', '2024-01-02', '  ')$$,
  $$SELECT dataflow.skip('src', '2024-02-30', 'r')$$,
  $$SELECT dataflow.skip('src', '2024-01-01', 'has data')$$
]) q;

-- cancel
SELECT q, pg_temp.fails(q) FROM unnest(ARRAY[
  $$SELECT dataflow.cancel(NULL, '2024-01-01')$$,
  $$SELECT dataflow.cancel('nope', '2024-01-01')$$,
  $$SELECT dataflow.cancel('out', NULL)$$,
  $$SELECT dataflow.cancel('out', '2024-01-32')$$,
  $$SELECT dataflow.cancel('out', '2024-03-03')$$,
  $$SELECT dataflow.cancel('src', '2024-01-01')$$
]) q;

-- resubmit
SELECT q, pg_temp.fails(q) FROM unnest(ARRAY[
  $$SELECT * FROM dataflow.resubmit(NULL, '2024-01-01')$$,
  $$SELECT * FROM dataflow.resubmit('nope', '2024-01-01')$$,
  $$SELECT * FROM dataflow.resubmit('src', NULL)$$,
  $$SELECT * FROM dataflow.resubmit('src', '2024-01-01', cascade => NULL)$$,
  $$SELECT * FROM dataflow.resubmit('src', '2024-01-01', dry_run => NULL)$$,
  $$SELECT * FROM dataflow.resubmit('src', '2024-01-01', 'nope')$$,
  $$SELECT * FROM dataflow.resubmit('src', '2024-01-02', '2024-01-01')$$,
  $$SELECT * FROM dataflow.resubmit('src', '2025-01-01', '2025-12-31')$$,
  $$SELECT * FROM dataflow.resubmit('tx', 'a', 'b')$$,
  $$SELECT * FROM dataflow.resubmit('tx', 'zzz')$$
]) q;
-- the view and the table accept only status 'resubmit' / 'skipped' (0A000 / 23514)
SELECT q, pg_temp.fails(q) FROM unnest(ARRAY[
  $$UPDATE dataflow.chunks SET status = 'ready' WHERE dataset = 'src'$$,
  $$UPDATE dataflow.chunks SET status = NULL WHERE dataset = 'src'$$,
  $$UPDATE dataflow.chunks SET version = 9 WHERE dataset = 'src'$$,
  $$UPDATE dataflow.chunks SET status = 'resubmit', row_count = 1 WHERE dataset = 'src'$$,
  $$UPDATE dataflow.chunk SET status = 'bogus'$$
]) q;

-- pause_job / resume_job / drop_job
SELECT q, pg_temp.fails(q) FROM unnest(ARRAY[
  $$SELECT dataflow.pause_job(NULL)$$,
  $$SELECT dataflow.pause_job('nope')$$,
  $$SELECT dataflow.resume_job(NULL)$$,
  $$SELECT dataflow.resume_job('nope')$$
]) q;

-- questions about a chunk: unknown dataset, bad key, NULLs
SELECT q, pg_temp.fails(q) FROM unnest(ARRAY[
  $$SELECT * FROM dataflow.explain(NULL, '2024-01-01')$$,
  $$SELECT * FROM dataflow.explain('nope', '2024-01-01')$$,
  $$SELECT * FROM dataflow.explain('src', NULL)$$,
  $$SELECT * FROM dataflow.explain('src', '2024-02-30')$$,
  $$SELECT * FROM dataflow.blockers('nope', '2024-01-01')$$,
  $$SELECT * FROM dataflow.blockers('src', 'x')$$,
  $$SELECT * FROM dataflow.upstream('nope', '2024-01-01')$$,
  $$SELECT * FROM dataflow.downstream('src', NULL)$$
]) q;

-- names with quotes, semicolons and Unicode are just unknown names, never SQL
SELECT q, pg_temp.fails(q) FROM unnest(ARRAY[
  $$SELECT dataflow.expect('out''; DROP TABLE dataflow.chunk; --', '2024-01-01')$$,
  $$SELECT * FROM dataflow.lease('j"; SELECT 1; --', 'w')$$,
  $$SELECT dataflow.register('Ünï', '1')$$
]) q;

-- the lease taken at the start is still live and untouched by all of the above
SELECT status, worker FROM dataflow.runs WHERE dataset = 'out';
SELECT dataflow.complete(:'tok');

-- a window reaching past the ends of the int64 key range: a clear 22003, nothing created
SELECT dataflow.create_dataset('nw', 'int'), dataflow.create_job('jnw', output => 'nw'),
       dataflow.add_input('jnw', 'n', mapping => 'window', lo => -5, hi => 2);
SELECT q, pg_temp.fails(q) FROM unnest(ARRAY[
  $$SELECT dataflow.expect('nw', '-9223372036854775807', '-9223372036854775805')$$,
  $$SELECT dataflow.expect('nw', '9223372036854775806')$$
]) q;
SELECT dataflow.expect('nw', '-9223372036854775803') AS created_at_the_edge;
