-- Fixture for fuzz_sql.sh: datasets of every key kind, jobs with every mapping,
-- pool, connections, a subscription, and chunks/runs in every state, so that
-- generated calls reach deep code paths and not only the argument checks.
-- Each function's batch of calls runs in one transaction that is rolled back,
-- so every function starts from this same state.
SELECT dataflow.create_dataset('s_date', 'date', location => 's3://lake/{dataset}/{key}/v{version}/');
SELECT dataflow.create_dataset('s_hour', 'hour');
SELECT dataflow.create_dataset('s_int', 'int');
SELECT dataflow.create_dataset('s_text', 'text');
SELECT dataflow.create_dataset('dim', 'text');
SELECT dataflow.create_dataset('o_date', 'date', requires_validation => true, location => 'file:///o/{key}/{version}');
SELECT dataflow.create_dataset('o_daily', 'date');
SELECT dataflow.create_dataset('sched', 'date', cadence => '1 day', lateness => '1 hour');
SELECT dataflow.create_dataset('o_int', 'int');
SELECT dataflow.create_dataset('o_text', 'text');
SELECT dataflow.create_dataset('o_batch', 'int');
SELECT dataflow.create_dataset('spare', 'int');
SELECT dataflow.create_dataset('free1', 'int');
SELECT dataflow.create_dataset('free2', 'date');
SELECT dataflow.create_pool('p1', 3);
SELECT dataflow.create_pool('p_spare', 1);
SELECT dataflow.create_connection('c_http', 'http', 'http://127.0.0.1:9/');
SELECT dataflow.create_connection('c_air', 'airflow', 'http://127.0.0.1:9/', auth => 'basic', username => 'u', secret => 's');
SELECT dataflow.create_connection('c_spare', 'http', 'https://example.com/base');
SELECT dataflow.create_job('j_date', output => 'o_date', lease_for => '1 hour');
SELECT dataflow.add_input('j_date', 's_date');
SELECT dataflow.create_job('j_daily', output => 'o_daily', pool => 'p1');
SELECT dataflow.add_input('j_daily', 's_hour', 'rollup');
SELECT dataflow.create_job('j_int', output => 'o_int', max_attempts => 5, backoff_min => '0', backoff_max => '0');
SELECT dataflow.add_input('j_int', 's_int', 'window', -2, 0);
SELECT dataflow.create_job('j_text', output => 'o_text', dispatch => 'http', connection => 'c_http', target => 'hook');
SELECT dataflow.add_input('j_text', 's_text');
SELECT dataflow.add_input('j_text', 'dim', 'latest');
SELECT dataflow.create_job('j_batch', output => 'o_batch', max_concurrency => 1);
SELECT dataflow.add_input('j_batch', 's_int', 'incremental');
SELECT dataflow.create_job('j_spare', output => 'spare');
SELECT dataflow.subscribe('sub1', 'http://127.0.0.1:9/hook', statuses => '{failed,ready}');
SELECT dataflow.expect('o_date', '2024-01-01', '2024-01-20');
SELECT dataflow.expect('o_daily', '2024-01-01', '2024-01-03');
SELECT dataflow.expect('o_int', '1', '200');
SELECT dataflow.expect('sched', (current_date - 5)::text);
SELECT dataflow.expect('o_text', 'a');
SELECT dataflow.expect('o_text', 'b');
SELECT count(dataflow.register('s_date', '2024-01-' || lpad(g::text, 2, '0'))) FROM generate_series(1, 15) g;
SELECT count(dataflow.register('s_hour', '2024-01-01T' || lpad(g::text, 2, '0'))) FROM generate_series(0, 23) g;
SELECT count(dataflow.register('s_int', g::text)) FROM generate_series(-1, 202) g;
SELECT dataflow.register('s_text', 'a'), dataflow.register('dim', 'x');
-- Runs in every state: succeeded, failed, expired (reaped), running past its
-- deadline (not reaped yet), cancelled, and live leases.
SELECT dataflow.complete(t.token, 10, 'c') FROM dataflow.lease('j_date', 'fx', 5) t;
SELECT dataflow.validate('o_date', '2024-01-01', true), dataflow.validate('o_date', '2024-01-02', false);
SELECT dataflow.complete(t.token) FROM dataflow.lease('j_int', 'fx', 50) t;
SELECT dataflow.fail(t.token, 'boom', true) FROM dataflow.lease('j_int', 'fx', 5) t;
SELECT dataflow.fail(t.token, 'fatal', false) FROM dataflow.lease('j_int', 'fx', 2) t;
SELECT count(*) FROM dataflow.lease('j_int', 'fx-expiring', 5, '1 millisecond');
SELECT pg_sleep(0.01);
SELECT dataflow.reap();
SELECT count(*) FROM dataflow.lease('j_int', 'fx-expiring', 5, '1 millisecond');
SELECT count(*) FROM dataflow.lease('j_int', 'fx-live', 5, '1 day');
SELECT count(*) FROM dataflow.lease('j_date', 'fx-live', 3, '1 day');
SELECT count(*) FROM dataflow.lease('j_batch', 'fx-live', 1, '1 day');
SELECT dataflow.cancel('o_int', '190');
SELECT dataflow.skip('o_int', '191', 'empty');
SELECT count(*) FROM dataflow.resubmit('s_int', '60');
SELECT pg_sleep(0.01);
