-- Connection settings the background worker must be able to use. A connection's
-- connect_timeout and timeout become milliseconds in the worker's SQL; 25 days or
-- more overflowed an integer there, and the error stopped all dispatch on every
-- pass. Bounds: connect_timeout in (0, 1 hour], timeout in (0, 24 hours], refused
-- with 22023 by create_connection() and by the table (a direct UPDATE too).
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\i sql/include/helpers.psql

-- The largest values accepted, and the worker sees them in milliseconds.
SELECT dataflow.create_connection('c_max', 'http', 'http://engine.example', connect_timeout => '1 hour',
                                  timeout => '24 hours') > 0 AS created;
SELECT dataflow.create_connection('c_min', 'http', 'http://engine.example', connect_timeout => '1 ms',
                                  timeout => '1 ms') > 0 AS created;
SELECT name, connect_timeout, timeout FROM dataflow.connection ORDER BY id;

-- Out of bounds: a clear message, SQLSTATE 22023, nothing created.
SELECT pg_temp.fails($$SELECT dataflow.create_connection('c_x', 'http', 'http://h', timeout => '25 days')$$);
SELECT pg_temp.fails($$SELECT dataflow.create_connection('c_x', 'http', 'http://h', timeout => '24 hours 1 second')$$);
SELECT pg_temp.fails($$SELECT dataflow.create_connection('c_x', 'http', 'http://h', timeout => '1 month')$$);
SELECT pg_temp.fails($$SELECT dataflow.create_connection('c_x', 'http', 'http://h', connect_timeout => '61 minutes')$$);
SELECT pg_temp.fails($$SELECT dataflow.create_connection('c_x', 'http', 'http://h', connect_timeout => '100 years')$$);
SELECT pg_temp.fails($$SELECT dataflow.create_connection('c_x', 'http', 'http://h', connect_timeout => '-1 s')$$);
SELECT pg_temp.fails($$SELECT dataflow.create_connection('c_x', 'http', 'http://h', timeout => '0 s')$$);
SELECT pg_temp.fails($$SELECT dataflow.create_connection('c_x', 'http', 'http://h', timeout => NULL)$$);
-- 'infinity' is no interval before PostgreSQL 17 (22007); from 17 on it is one, and too long (22023)
SELECT pg_temp.fails($$SELECT dataflow.create_connection('c_x', 'airflow', 'http://h', timeout => 'infinity')$$)
       IN ('22007: invalid input syntax for type interval: "infinity"', '22023: timeout infinity is too long')
       AS infinity_refused;

-- The table refuses them too: an admin's direct UPDATE or INSERT cannot set them.
SELECT pg_temp.fails($$UPDATE dataflow.connection SET timeout = '25 days' WHERE name = 'c_max'$$);
SELECT pg_temp.fails($$UPDATE dataflow.connection SET connect_timeout = '2 hours' WHERE name = 'c_max'$$);
SELECT pg_temp.fails($$INSERT INTO dataflow.connection (name, kind, base_url, timeout)
                       VALUES ('c_y', 'http', 'http://h', '30 days')$$);
SELECT count(*) AS connections FROM dataflow.connection;

-- The worker's job list reads every connection at its bound without an error.
SELECT dataflow.create_dataset('out_max', 'int'), dataflow.create_dataset('out_min', 'int');
SELECT dataflow.create_job('j_max', output => 'out_max', dispatch => 'http', connection => 'c_max', target => 'x'),
       dataflow.create_job('j_min', output => 'out_min', dispatch => 'http', connection => 'c_min', target => 'x');
SELECT dataflow.expect('out_max', '1', '1'), dataflow.expect('out_min', '1', '1');
SELECT job, connect_timeout_ms, timeout_ms FROM dataflow._worker_jobs() ORDER BY job;

-- Whatever is in the table, one bad row never stops dispatch for the other jobs: with
-- the checks dropped and 25 days stored, that job gets no timeouts from its connection
-- (the worker's GUCs apply) and the other job is still listed.
ALTER TABLE dataflow.connection DROP CONSTRAINT connection_connect_timeout_check,
  DROP CONSTRAINT connection_timeout_check;
UPDATE dataflow.connection SET connect_timeout = '25 days', timeout = '100 years' WHERE name = 'c_max';
SELECT job, connect_timeout_ms, timeout_ms FROM dataflow._worker_jobs() ORDER BY job;

DROP EXTENSION pg_dataflow CASCADE;
