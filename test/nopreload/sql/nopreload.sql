-- CREATE EXTENSION in a cluster that does not preload the library: no FATAL (it used to
-- end the session with "cannot create PGC_POSTMASTER variables after startup"), a WARNING
-- that says the background worker is off and how to preload it, and the SQL API works.
-- postgresql.conf sets dataflow.naptime and dataflow.database (regress.conf of this suite).
SHOW shared_preload_libraries;
\set VERBOSITY default
CREATE EXTENSION pg_dataflow;
\set VERBOSITY terse
SELECT extversion = dataflow.library_version() AS versions_match FROM pg_extension WHERE extname = 'pg_dataflow';

-- The settings are defined, with the values of postgresql.conf; the postmaster-level one
-- (dataflow.database) only at reload level, with no effect: it configures the worker.
SHOW dataflow.naptime;
SHOW dataflow.retention;
SELECT context, short_desc, extra_desc FROM pg_settings WHERE name = 'dataflow.database';
SHOW dataflow.database;
SET dataflow.naptime = '5s';
SHOW dataflow.naptime;
-- the prefix stays reserved: a misspelt setting is refused
SET dataflow.napitme = '1s';

-- No worker was registered.
SELECT count(*) AS workers FROM pg_stat_activity WHERE backend_type = 'pg_dataflow worker';

-- The SQL API: a flow from registration to validated, a failure and its retry, a resubmit.
SELECT dataflow.create_dataset('src', 'date');
SELECT dataflow.create_dataset('out', 'date');
SELECT dataflow.create_job('j', output => 'out', max_attempts => 2, backoff_min => '0 s', backoff_max => '0 s');
SELECT dataflow.add_input('j', 'src');
SELECT dataflow.expect('out', '2024-01-01', '2024-01-02') AS created;
SELECT dataflow.register('src', '2024-01-01') AS version;
SELECT dataflow.register('src', '2024-01-02') AS version;
-- wake-ups (dataflow._wake, called by these functions) are no-ops without the worker
SELECT key, attempt, token AS t1 FROM dataflow.lease('j', 'w1', 1) \gset
SELECT :'key' AS key, :attempt AS attempt, dataflow.fail(:'t1', 'boom');
SELECT string_agg(key || '/' || attempt, ' ' ORDER BY key) AS leased,
       array_agg(token ORDER BY key) AS toks FROM dataflow.lease('j', 'w1', 2) \gset
SELECT :'leased' AS leased;
SELECT dataflow.complete(t, row_count => 3) FROM unnest(:'toks'::uuid[]) AS t;
SELECT dataflow.validate('out', key, true) FROM dataflow.chunks WHERE dataset = 'out' ORDER BY key;
SELECT dataset, key, status, version FROM dataflow.chunks ORDER BY dataset, key;
UPDATE dataflow.chunks SET status = 'resubmit' WHERE dataset = 'out' AND key = '2024-01-02';
SELECT dataset, key, status FROM dataflow.chunks WHERE dataset = 'out' ORDER BY key;
-- what the worker would do periodically can be called by hand
SELECT dataflow.reap() AS reaped;
SELECT dataflow.prune('30 days') >= 0 AS pruned;

-- A second session loads the library at its first C call: no WARNING there (DEBUG1 only).
\c
SELECT dataflow._key_canon('date', '2024-01-05');
DROP EXTENSION pg_dataflow;
