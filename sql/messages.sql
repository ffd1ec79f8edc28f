-- Messages (issue 19 item 7): an unknown name suggests the nearest existing names of its
-- kind (only names the caller could list itself), a NULL argument names the argument,
-- and an error a user causes through an internal helper shows no CONTEXT lines.
\set VERBOSITY default
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
SET client_min_messages = warning;

SELECT dataflow.create_dataset('hits_hourly', 'hour'), dataflow.create_dataset('hits_daily', 'date'),
       dataflow.create_dataset('clicks', 'date'), dataflow.create_dataset('Orders', 'date');
SELECT dataflow.create_pool('etl', 2), dataflow.create_pool('etl_heavy', 1);
SELECT dataflow.create_connection('airflow_prod', 'airflow', 'http://127.0.0.1:9/');
SELECT dataflow.create_job('rollup_daily', output => 'hits_daily', pool => 'etl');
SELECT dataflow.add_input('rollup_daily', 'hits_hourly', 'rollup');

-- Did you mean: one edit away, inside register (no CONTEXT line from _dataset_id)
SELECT dataflow.register('hits_hourl', '2024-01-01T00');
-- case-insensitive, and several names, nearest first
SELECT dataflow.register('orders', '2024-01-01');
SELECT dataflow.expect('hits_', '2024-01-01');
-- far from every name: how to create one, as before
SELECT dataflow.expect('completely_different', '2024-01-01');
-- a job, inside lease and pause_job
SELECT * FROM dataflow.lease('rollup_dayly', 'w');
SELECT dataflow.pause_job('ROLLUP_DAILY');
SELECT dataflow.pause_job('nightly_export');
-- pools and connections
SELECT dataflow.create_job('j2', output => 'clicks', pool => 'etl_hevy');
SELECT dataflow.drop_pool('elt');
SELECT dataflow.create_job('j3', output => 'clicks', dispatch => 'airflow', connection => 'airflow_prd', target => 'd');
SELECT dataflow.drop_connection('airflow-prod');
SELECT dataflow.alter_job('rollup_daily', pool => 'etl_heavyy');

-- NULL arguments name the argument
SELECT dataflow.register(NULL, '2024-01-01T00');
SELECT dataflow.pause_job(NULL);
SELECT dataflow.create_dataset('x', NULL);
SELECT dataflow.create_dataset(NULL, 'date');
SELECT dataflow.create_dataset('x', 'date', metadata => NULL);
SELECT dataflow.create_pool('p', NULL);
SELECT dataflow.create_job('j4', output => NULL);
SELECT dataflow.create_job('j4', output => 'clicks', dispatch => NULL);
SELECT dataflow.create_job('j4', output => 'clicks', lease_for => NULL);
SELECT dataflow.create_job('j4', output => 'clicks', params => NULL);
SELECT dataflow.create_connection('c2', NULL, 'http://x/');
SELECT dataflow.create_connection('c2', 'http', NULL);
SELECT dataflow.create_connection('c2', 'http', 'http://x/', timeout => NULL);
SELECT dataflow.skip('hits_hourly', '2024-01-01T00', NULL);
SELECT dataflow.resubmit('hits_hourly', '2024-01-01T00', cascade => NULL);
SELECT * FROM dataflow.lease('rollup_daily', NULL);
-- a malformed key, refused by the C key functions under register and expect: no CONTEXT
SELECT dataflow.register('hits_hourly', '2024-13-45 99:00');
SELECT dataflow.expect('hits_daily', 'yesterday');
-- a chunk that does not exist, found by the _chunk helper under validate: no CONTEXT
SELECT dataflow.validate('hits_hourly', '2024-01-01T07', true);
SELECT dataflow.cancel('hits_hourly', NULL);
SELECT dataflow.drop_pool(NULL);
SELECT dataflow.unsubscribe(NULL);
SELECT dataflow.redeliver(NULL::bigint);
SELECT dataflow.redeliver(NULL::text, now());
SELECT dataflow.redeliver('s', NULL);

-- subscriptions
SELECT length(dataflow.subscribe('hooks_main', 'http://127.0.0.1:9/h')) > 0 AS subscribed;
SELECT dataflow.unsubscribe('hooks_mian');
SELECT dataflow.enable_subscription('hook_main');

-- Only names the calling role can list. Every role of the extension reads the dataset
-- and job names (dataflow.datasets, dataflow.jobs); pools are the operator's and the
-- admin's (dataflow.pool), connections and subscriptions the admin's.
SET ROLE dataflow_worker;
SELECT dataflow.register('hits_hourl', '2024-01-01T00');
RESET ROLE;
SET ROLE dataflow_operator;
SELECT dataflow.redeliver('hooks_mian', now());
RESET ROLE;
SET ROLE dataflow_admin;
SELECT dataflow.redeliver('hooks_mian', now());
RESET ROLE;
-- A role that may call register but not read the datasets learns no name from an error.
CREATE ROLE msg_outsider;
GRANT USAGE ON SCHEMA dataflow TO msg_outsider;
GRANT EXECUTE ON FUNCTION dataflow.register(text, text, text, bigint, text, jsonb, boolean) TO msg_outsider;
SET ROLE msg_outsider;
SELECT dataflow.register('hits_hourl', '2024-01-01T00');
RESET ROLE;
DROP OWNED BY msg_outsider;
DROP ROLE msg_outsider;

-- _raise: no CONTEXT, DETAIL and HINT only when given, caught by an EXCEPTION block by
-- its SQLSTATE (the block restores the error context: a later error has its CONTEXT).
SELECT dataflow._raise('22023', 'a message', 'a detail', 'a hint');
SELECT dataflow._raise('42704', 'no detail, no hint');
SELECT dataflow._raise('42704', 'empty detail and hint', '', '');
SET client_min_messages = notice;
DO $$
BEGIN
  BEGIN
    PERFORM dataflow._raise('42704', 'caught');
  EXCEPTION WHEN undefined_object THEN
    RAISE NOTICE 'caught 42704: %', SQLERRM;
  END;
  BEGIN
    PERFORM dataflow.register('hits_hourl', '2024-01-01T00');
  EXCEPTION WHEN SQLSTATE '42704' THEN
    RAISE NOTICE 'caught from register: %', SQLERRM;
  END;
  RAISE EXCEPTION 'after the catch' USING ERRCODE = '22023';
END $$;
-- a misuse of _raise is a bug: XX000, with its context
SELECT dataflow._raise('00000', 'success is no error');
SELECT dataflow._raise(NULL, 'x');
SELECT dataflow._raise('01000', 'a warning is no error');
-- 0A000 is an error class like any other (the READ COMMITTED check raises it)
SELECT dataflow._raise('0A000', 'not supported');

-- the READ COMMITTED check (_read_committed) under register: ERROR, DETAIL, HINT, no CONTEXT
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT dataflow.register('hits_hourly', '2024-01-01T00');
ROLLBACK;
-- The suggestion scan stays fast with 100,000 datasets (names of similar lengths).
INSERT INTO dataflow.dataset (name, key_kind) SELECT 'ds_' || g, 'date' FROM generate_series(1, 100000) g;
SELECT dataflow.register('ds_1000000', '2024-01-01');
SELECT dataflow.register('ds_x7', '2024-01-01');
SELECT dataflow._suggest('dataset', 'ds_99999x') AS suggestion;
