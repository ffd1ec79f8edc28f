-- Definition API: create_dataset / create_pool / create_connection / create_job / add_input
-- and drop_*. Every validation error has its SQLSTATE and changes nothing (fails() marks
-- any table change with '<<< TABLES CHANGED'); successful calls store what was asked.
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\i sql/include/helpers.psql

-- ---------------------------------------------------------------- datasets
SELECT dataflow.create_dataset('d_day', 'date', location => 's3://lake/{dataset}/{key}/v{version}/',
                               cadence => '1 day', lateness => '2 hours', retention => '30 days',
                               metadata => '{"owner": "bi"}') AS d_day_id;
SELECT dataflow.create_dataset('d_hour', 'hour', cadence => '1 hour');
SELECT dataflow.create_dataset('d_int', 'int');
SELECT dataflow.create_dataset('d_txt', 'text', requires_validation => true);
SELECT dataflow.create_dataset('d.v2:x-y_Z', 'int');   -- every allowed punctuation mark
SELECT name, key_kind, location, requires_validation, cadence, lateness, retention, metadata
  FROM dataflow.dataset ORDER BY id;

SELECT q, pg_temp.fails(q) FROM unnest(ARRAY[
  $$SELECT dataflow.create_dataset(NULL, 'date')$$,
  $$SELECT dataflow.create_dataset('', 'date')$$,
  $$SELECT dataflow.create_dataset('a b', 'date')$$,
  $$SELECT dataflow.create_dataset('a;drop', 'date')$$,
  $$SELECT dataflow.create_dataset('a"b', 'date')$$,
  $$SELECT dataflow.create_dataset('-a', 'date')$$,
  $$SELECT dataflow.create_dataset(repeat('n', 64), 'date')$$,
  $$SELECT dataflow.create_dataset('x', NULL)$$,
  $$SELECT dataflow.create_dataset('x', 'week')$$,
  $$SELECT dataflow.create_dataset('x', 'DATE')$$,
  $$SELECT dataflow.create_dataset('x', 'date', location => '')$$,
  $$SELECT dataflow.create_dataset('x', 'date', location => 's3://{bucket}/{key}')$$,
  $$SELECT dataflow.create_dataset('x', 'date', location => 's3://b/{key')$$,
  $$SELECT dataflow.create_dataset('x', 'date', requires_validation => NULL)$$,
  $$SELECT dataflow.create_dataset('x', 'int', cadence => '1 day')$$,
  $$SELECT dataflow.create_dataset('x', 'text', cadence => '1 day')$$,
  $$SELECT dataflow.create_dataset('x', 'date', cadence => '1 hour')$$,
  $$SELECT dataflow.create_dataset('x', 'hour', cadence => '30 minutes')$$,
  $$SELECT dataflow.create_dataset('x', 'date', lateness => '-1 hour')$$,
  $$SELECT dataflow.create_dataset('x', 'date', retention => '0 s')$$,
  $$SELECT dataflow.create_dataset('x', 'date', metadata => '[1]')$$,
  $$SELECT dataflow.create_dataset('x', 'date', metadata => NULL)$$,
  $$SELECT dataflow.create_dataset('d_day', 'date')$$,
  $$SELECT dataflow.create_dataset('d_day', 'int')$$
]) q;
SELECT length(repeat('n', 63)) AS len, dataflow.create_dataset(repeat('n', 63), 'int') > 0 AS longest_name_ok;

-- ---------------------------------------------------------------- pools
SELECT dataflow.create_pool('p_db', 4) > 0 AS created, dataflow.create_pool('p_zero', 0) > 0 AS zero_slots_ok;
SELECT q, pg_temp.fails(q) FROM unnest(ARRAY[
  $$SELECT dataflow.create_pool(NULL, 1)$$,
  $$SELECT dataflow.create_pool('p x', 1)$$,
  $$SELECT dataflow.create_pool('p_n', NULL)$$,
  $$SELECT dataflow.create_pool('p_n', -1)$$,
  $$SELECT dataflow.create_pool('p_db', 2)$$
]) q;
SELECT name, slots FROM dataflow.pool ORDER BY id;

-- ---------------------------------------------------------------- connections
SELECT dataflow.create_connection('c_http', 'http', 'https://etl.example.com/api') > 0 AS http_ok,
       dataflow.create_connection('c_af', 'airflow', 'http://airflow:8080', auth => 'basic',
                                  username => 'u', secret => 's') > 0 AS airflow_ok,
       dataflow.create_connection('c_af3', 'airflow', 'https://af.example.com', auth => 'bearer',
                                  secret => 't', api_version => 2) > 0 AS bearer_ok;
SELECT name, kind, base_url, auth, username, secret IS NOT NULL AS has_secret, api_version, connect_timeout, timeout
  FROM dataflow.connection ORDER BY id;
SELECT q, pg_temp.fails(q) FROM unnest(ARRAY[
  $$SELECT dataflow.create_connection(NULL, 'http', 'http://h')$$,
  $$SELECT dataflow.create_connection('c;x', 'http', 'http://h')$$,
  $$SELECT dataflow.create_connection('c_x', NULL, 'http://h')$$,
  $$SELECT dataflow.create_connection('c_x', 'grpc', 'http://h')$$,
  $$SELECT dataflow.create_connection('c_x', 'http', NULL)$$,
  $$SELECT dataflow.create_connection('c_x', 'http', 'ftp://h')$$,
  $$SELECT dataflow.create_connection('c_x', 'http', 'http://user:pw@h/')$$,
  $$SELECT dataflow.create_connection('c_x', 'http', E'http://h/\r\nX: y')$$,
  $$SELECT dataflow.create_connection('c_x', 'http', 'http://h', auth => NULL)$$,
  $$SELECT dataflow.create_connection('c_x', 'http', 'http://h', auth => 'digest')$$,
  $$SELECT dataflow.create_connection('c_x', 'http', 'http://h', auth => 'basic', username => 'u')$$,
  $$SELECT dataflow.create_connection('c_x', 'http', 'http://h', auth => 'bearer')$$,
  $$SELECT dataflow.create_connection('c_x', 'http', 'http://h', auth => 'basic', username => 'a:b', secret => 's')$$,
  $$SELECT dataflow.create_connection('c_x', 'http', 'http://h', auth => 'bearer', secret => E's\n')$$,
  $$SELECT dataflow.create_connection('c_x', 'airflow', 'http://h', api_version => 3)$$,
  $$SELECT dataflow.create_connection('c_x', 'http', 'http://h', timeout => '0 s')$$,
  $$SELECT dataflow.create_connection('c_x', 'http', 'http://h', connect_timeout => NULL)$$,
  $$SELECT dataflow.create_connection('c_http', 'http', 'http://h')$$
]) q;

-- ---------------------------------------------------------------- jobs
SELECT dataflow.create_dataset('o1', 'date'), dataflow.create_dataset('o2', 'date'),
       dataflow.create_dataset('o3', 'date'), dataflow.create_dataset('o4', 'date'),
       dataflow.create_dataset('o5', 'int'), dataflow.create_dataset('o6', 'date');
SELECT dataflow.create_job('j1', output => 'o1', params => '{"mode": "full"}', pool => 'p_db',
                           max_concurrency => 2, max_attempts => 5, backoff_min => '1 s',
                           backoff_max => '1 min', lease_for => '10 min', priority => 7) > 0 AS pull_job;
SELECT dataflow.create_job('j2', output => 'o2', dispatch => 'http', endpoint => 'https://h.example/run') > 0 AS http_endpoint,
       dataflow.create_job('j3', output => 'o3', dispatch => 'http', connection => 'c_http', target => 'v1/load') > 0 AS http_conn,
       dataflow.create_job('j4', output => 'o4', dispatch => 'airflow', connection => 'c_af', target => 'load_dag') > 0 AS airflow;
SELECT j.name, d.name AS output, j.dispatch, c.name AS connection, j.target, j.endpoint, j.params, p.name AS pool,
       j.max_concurrency, j.max_attempts, j.backoff_min, j.backoff_max, j.lease_for, j.priority, j.paused
  FROM dataflow.job j JOIN dataflow.dataset d ON d.id = j.output_id
  LEFT JOIN dataflow.connection c ON c.id = j.connection_id LEFT JOIN dataflow.pool p ON p.id = j.pool_id
 ORDER BY j.id;
-- defaults
SELECT dataflow.create_job('j6', output => 'o6') > 0;
SELECT dispatch, params, pool_id, max_concurrency, max_attempts, backoff_min, backoff_max, lease_for, priority, paused
  FROM dataflow.job WHERE name = 'j6';

SELECT q, pg_temp.fails(q) FROM unnest(ARRAY[
  $$SELECT dataflow.create_job(NULL, output => 'o5')$$,
  $$SELECT dataflow.create_job('j x', output => 'o5')$$,
  $$SELECT dataflow.create_job('j5', output => NULL)$$,
  $$SELECT dataflow.create_job('j5', output => 'nope')$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', dispatch => NULL)$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', dispatch => 'ssh')$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', connection => 'nope')$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', endpoint => 'http://h/x')$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', connection => 'c_http')$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', target => 'x')$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', dispatch => 'http')$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', dispatch => 'http', endpoint => 'http://h/x', connection => 'c_http')$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', dispatch => 'http', endpoint => 'file:///etc/passwd')$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', dispatch => 'http', endpoint => 'http://u:p@h/x')$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', dispatch => 'http', connection => 'c_af', target => 'x')$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', dispatch => 'airflow', connection => 'c_af')$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', dispatch => 'airflow', connection => 'c_http', target => 'd')$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', dispatch => 'airflow', target => 'd')$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', dispatch => 'airflow', connection => 'c_af', target => 'd', endpoint => 'http://h/')$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', dispatch => 'airflow', connection => 'c_af', target => 'a b')$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', dispatch => 'http', connection => 'c_http', target => '../x;y')$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', params => '"x"')$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', params => NULL)$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', pool => 'nope')$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', max_concurrency => -1)$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', max_attempts => 0)$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', max_attempts => NULL)$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', backoff_min => '-1 s')$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', backoff_min => '2 min', backoff_max => '1 min')$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', backoff_max => NULL)$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', lease_for => '0 s')$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', lease_for => NULL)$$,
  $$SELECT dataflow.create_job('j5', output => 'o5', priority => NULL)$$,
  $$SELECT dataflow.create_job('j1', output => 'o5')$$,
  $$SELECT dataflow.create_job('j5', output => 'o1')$$
]) q;
-- a dataset that already has (source) chunks may get a producing job: its chunks stay
-- (sql/change_flow.sql shows what they mean then)
SELECT dataflow.register('o5', '1');
SELECT dataflow.create_job('j5', output => 'o5') > 0 AS job_on_source_with_chunks;

-- ---------------------------------------------------------------- inputs
SELECT dataflow.create_dataset('s_day', 'date'), dataflow.create_dataset('s_hour', 'hour'),
       dataflow.create_dataset('s_int', 'int'), dataflow.create_dataset('s_txt', 'text'),
       dataflow.create_dataset('s_val', 'date', requires_validation => true);
SELECT dataflow.add_input('j1', 's_day');                                   -- same
SELECT dataflow.add_input('j1', 's_hour', 'rollup');                        -- date output from hour input
SELECT dataflow.add_input('j1', 's_val', 'window', lo => -6, hi => 0);      -- need: validated (dataset decides)
SELECT dataflow.add_input('j1', 's_txt', 'latest', require => 'ready');     -- require overrides the dataset
SELECT dataflow.add_input('j6', 's_val', require => 'ready');
SELECT dataflow.add_input('j6', 's_int', 'latest');
SELECT j.name AS job, d.name AS input, ji.mapping, ji.lo, ji.hi, ji.require, ji.need
  FROM dataflow.job_input ji JOIN dataflow.job j ON j.id = ji.job_id JOIN dataflow.dataset d ON d.id = ji.dataset_id
 ORDER BY j.name, d.name;

SELECT dataflow.create_dataset('t_out', 'text'), dataflow.create_dataset('i_out', 'int');
SELECT dataflow.create_job('jt', output => 't_out'), dataflow.create_job('ji', output => 'i_out');
SELECT q, pg_temp.fails(q) FROM unnest(ARRAY[
  $$SELECT dataflow.add_input(NULL, 's_day')$$,
  $$SELECT dataflow.add_input('nope', 's_day')$$,
  $$SELECT dataflow.add_input('j2', NULL)$$,
  $$SELECT dataflow.add_input('j2', 'nope')$$,
  $$SELECT dataflow.add_input('j2', 's_day', mapping => NULL)$$,
  $$SELECT dataflow.add_input('j2', 's_day', mapping => 'all')$$,
  $$SELECT dataflow.add_input('j2', 's_day', 'window')$$,
  $$SELECT dataflow.add_input('j2', 's_day', 'window', lo => -1)$$,
  $$SELECT dataflow.add_input('j2', 's_day', 'window', lo => 1, hi => 0)$$,
  $$SELECT dataflow.add_input('j2', 's_day', 'window', lo => -10000, hi => 0)$$,
  $$SELECT dataflow.add_input('j2', 's_day', 'same', lo => 0, hi => 0)$$,
  $$SELECT dataflow.add_input('j2', 's_day', 'latest', hi => 0)$$,
  $$SELECT dataflow.add_input('j2', 's_day', require => 'valid')$$,
  -- mappings that do not fit the key kinds: 42P17
  $$SELECT dataflow.add_input('j2', 's_hour')$$,
  $$SELECT dataflow.add_input('j2', 's_int', 'same')$$,
  $$SELECT dataflow.add_input('j2', 's_hour', 'window', lo => -1, hi => 0)$$,
  $$SELECT dataflow.add_input('jt', 's_txt', 'window', lo => 0, hi => 0)$$,
  $$SELECT dataflow.add_input('j2', 's_day', 'rollup')$$,
  $$SELECT dataflow.add_input('ji', 's_hour', 'rollup')$$,
  $$SELECT dataflow.add_input('j2', 's_day', 'incremental')$$,
  -- duplicates: 42710
  $$SELECT dataflow.add_input('j1', 's_day')$$,
  $$SELECT dataflow.add_input('j1', 's_day', 'window', lo => -1, hi => 0)$$
]) q;

-- incremental (batch) inputs fit an int output; a batch job takes no same/window/rollup input
-- besides, in either order (42P17)
SELECT dataflow.add_input('ji', 's_day', 'incremental');
SELECT dataflow.create_dataset('i2_out', 'int');
SELECT dataflow.create_job('ji2', output => 'i2_out');
SELECT dataflow.add_input('ji2', 's_int');
SELECT pg_temp.fails($$SELECT dataflow.add_input('ji', 's_int')$$) AS same_after_incremental,
       pg_temp.fails($$SELECT dataflow.add_input('ji2', 's_day', 'incremental')$$) AS incremental_after_same;

-- cycles are refused (42P17): a job reading its own output, and a loop through two jobs
SELECT dataflow.create_dataset('cy_a', 'int'), dataflow.create_dataset('cy_b', 'int'), dataflow.create_dataset('cy_c', 'int');
SELECT dataflow.create_job('cy_jb', output => 'cy_b'), dataflow.create_job('cy_jc', output => 'cy_c');
SELECT dataflow.add_input('cy_jb', 'cy_a'), dataflow.add_input('cy_jc', 'cy_b');
SELECT pg_temp.fails($$SELECT dataflow.add_input('cy_jb', 'cy_b')$$) AS self_loop,
       pg_temp.fails($$SELECT dataflow.add_input('cy_jb', 'cy_c')$$) AS two_job_loop;
SELECT dataflow.create_dataset('cy_top', 'int');
SELECT dataflow.create_job('cy_ja', output => 'cy_a');
SELECT dataflow.add_input('cy_ja', 'cy_top');                               -- extending upstream is fine
SELECT pg_temp.fails($$SELECT dataflow.add_input('cy_ja', 'cy_c', 'latest')$$) AS three_job_loop_via_latest;

-- inputs can be added once the output has chunks: their edges are built
-- (sql/change_flow.sql)
SELECT dataflow.expect('cy_c', '1');
SELECT dataflow.add_input('cy_jc', 's_int');
SELECT count(*) AS edges_of_cy_c FROM dataflow.dep d JOIN dataflow.chunk c ON c.id = d.consumer
  JOIN dataflow.dataset ds ON ds.id = c.dataset_id WHERE ds.name = 'cy_c';

-- ---------------------------------------------------------------- drop_*
SELECT q, pg_temp.fails(q) FROM unnest(ARRAY[
  $$SELECT dataflow.drop_dataset(NULL)$$,
  $$SELECT dataflow.drop_dataset('nope')$$,
  $$SELECT dataflow.drop_dataset('o1')$$,        -- output of j1
  $$SELECT dataflow.drop_dataset('s_day')$$,     -- input of j1
  $$SELECT dataflow.drop_pool(NULL)$$,
  $$SELECT dataflow.drop_pool('nope')$$,
  $$SELECT dataflow.drop_pool('p_db')$$,         -- used by j1
  $$SELECT dataflow.drop_connection(NULL)$$,
  $$SELECT dataflow.drop_connection('nope')$$,
  $$SELECT dataflow.drop_connection('c_af')$$,   -- used by j4
  $$SELECT dataflow.drop_job(NULL)$$,
  $$SELECT dataflow.drop_job('nope')$$
]) q;
-- a job with a running lease cannot be dropped (55006)
SELECT dataflow.create_dataset('dr_src', 'int'), dataflow.create_dataset('dr_out', 'int');
SELECT dataflow.create_job('dr_job', output => 'dr_out');
SELECT dataflow.add_input('dr_job', 'dr_src');
SELECT dataflow.register('dr_src', '1'), dataflow.expect('dr_out', '1');
SELECT count(*) AS leased FROM dataflow.lease('dr_job', 'w1');
SELECT pg_temp.fails($$SELECT dataflow.drop_job('dr_job')$$) AS drop_running_job;
SELECT dataflow.cancel('dr_out', '1');
-- with its runs ended the job drops: its inputs go, its output chunks and runs stay
SELECT dataflow.drop_job('dr_job');
SELECT (SELECT count(*) FROM dataflow.job WHERE name = 'dr_job') AS jobs,
       (SELECT count(*) FROM dataflow.job_input ji WHERE NOT EXISTS (SELECT FROM dataflow.job j WHERE j.id = ji.job_id)) AS orphan_inputs,
       (SELECT count(*) FROM dataflow.chunks WHERE dataset = 'dr_out') AS out_chunks,
       (SELECT count(*) FROM dataflow.runs WHERE dataset = 'dr_out') AS out_runs;
-- now unused, both datasets drop with their chunks, runs and dep edges; events stay
SELECT dataflow.drop_dataset('dr_out'), dataflow.drop_dataset('dr_src');
SELECT (SELECT count(*) FROM dataflow.dataset WHERE name LIKE 'dr\_%') AS datasets,
       (SELECT count(*) FROM dataflow.chunk c WHERE NOT EXISTS (SELECT FROM dataflow.dataset d WHERE d.id = c.dataset_id)) AS orphan_chunks,
       (SELECT count(*) FROM dataflow.run r WHERE NOT EXISTS (SELECT FROM dataflow.chunk c WHERE c.id = r.chunk_id)) AS orphan_runs,
       (SELECT count(*) FROM dataflow.run_input ri WHERE NOT EXISTS (SELECT FROM dataflow.run r WHERE r.id = ri.run_id)) AS orphan_lineage,
       (SELECT count(*) FROM dataflow.dep d WHERE NOT EXISTS (SELECT FROM dataflow.chunk c WHERE c.id = d.input)
                                               OR NOT EXISTS (SELECT FROM dataflow.chunk c WHERE c.id = d.consumer)) AS orphan_deps,
       (SELECT count(*) > 0 FROM dataflow.event e WHERE e.key = '1' AND e.actor = 'w1') AS events_kept;
SELECT dataflow.drop_job('j2'), dataflow.drop_job('j4');
SELECT dataflow.drop_connection('c_af'), dataflow.drop_pool('p_zero');
SELECT (SELECT count(*) FROM dataflow.job WHERE name IN ('j2', 'j4')) AS jobs,
       (SELECT count(*) FROM dataflow.connection WHERE name = 'c_af') AS conns,
       (SELECT count(*) FROM dataflow.pool WHERE name = 'p_zero') AS pools;
-- a dropped name can be defined again
SELECT dataflow.create_pool('p_zero', 1) > 0 AS recreated;
