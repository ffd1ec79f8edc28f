-- A repeated register is not a new version: the same content again (the same checksum; or,
-- without one, the same location and row_count) returns the current version, records a
-- 'duplicate' event and re-runs nothing; new content, or force => true, makes a new version
-- and says in a NOTICE how many downstream chunks built on the old one re-run.
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\i sql/include/helpers.psql
SELECT dataflow.create_dataset('hits', 'hour'), dataflow.create_dataset('daily', 'date');
SELECT dataflow.create_job('j_daily', output => 'daily');
SELECT dataflow.add_input('j_daily', 'hits', mapping => 'rollup');
SELECT dataflow.expect('daily', '2024-02-10');
-- built: 24 hours registered, the day leased and completed
SELECT count(dataflow.register('hits', '2024-02-10 ' || lpad(h::text, 2, '0') || ':00', checksum => 'c' || h))
  FROM generate_series(0, 23) h;
SELECT dataflow.complete(t.token, row_count => 24) FROM dataflow.lease('j_daily', 'w1') t;
SELECT * FROM pg_temp.st('daily');

-- the same key in another spelling with the same checksum: a duplicate
SELECT dataflow.register('hits', '2024-02-10T13:00', checksum => 'c13') AS version;
-- the same checksum with another location and row_count: still a duplicate, and the NOTICE
-- says what it did not record
SELECT dataflow.register('hits', '2024-02-10 13:00', checksum => 'c13', location => 's3://elsewhere/13',
                         row_count => 99) AS version;
SELECT key, version, location, row_count FROM dataflow.chunks WHERE dataset = 'hits' AND key = '2024-02-10T13';
SELECT dataflow.register('hits', '2024-02-10 13:00', checksum => 'c13', info => '{"note": "moved"}') AS only_info;
SELECT * FROM pg_temp.st('daily');
SELECT dataset, key, version, from_status, to_status, detail ->> 'same' AS same, detail ->> 'given_key' AS given
  FROM dataflow.events WHERE to_status = 'duplicate' ORDER BY event_id;

-- without a checksum: the same location and row_count is a duplicate, another row_count is not
SELECT dataflow.create_dataset('raw', 'int', location => 's3://lake/{dataset}/{key}/v{version}/');
SELECT dataflow.register('raw', '1', row_count => 10) AS v1,
       dataflow.register('raw', '1', row_count => 10) AS same_again,
       dataflow.register('raw', '1', location => 's3://lake/raw/1/v1/', row_count => 10) AS explicit_same_location;
SELECT dataflow.register('raw', '1', row_count => 11) AS new_row_count;
SELECT dataflow.register('raw', '1', row_count => 11) AS same_as_v2;
-- ... and with another info: the NOTICE names what was the same (no checksum was given)
SELECT dataflow.register('raw', '1', row_count => 11, info => '{"src": "retry"}') AS same_with_other_info;
SELECT key, version, location, row_count FROM dataflow.chunks WHERE dataset = 'raw';
-- a checksum given where the current version has none (or another one) is new content
SELECT dataflow.register('raw', '1', row_count => 11, checksum => 'x') AS first_checksum;
SELECT dataflow.register('raw', '1', row_count => 99, checksum => 'x') AS same_checksum_other_count;
SELECT dataflow.register('raw', '1', checksum => 'y') AS other_checksum;

-- force => true re-delivers the same content; the NOTICE counts the downstream chunks re-run
SELECT dataflow.register('hits', '2024-02-10 13:00', checksum => 'c13', force => true) AS forced;
SELECT * FROM pg_temp.st('daily');
-- new content for a chunk nothing is built on yet: a new version, no NOTICE
SELECT dataflow.register('hits', '2024-02-10 14:00', checksum => 'c14-fixed') AS fixed;
SELECT key, version FROM dataflow.chunks WHERE dataset = 'hits' AND key IN ('2024-02-10T13', '2024-02-10T14') ORDER BY key;

-- an expected (waiting) source chunk is registered, never a duplicate
SELECT dataflow.expect('daily', '2024-02-11');
SELECT dataflow.register('hits', '2024-02-11 00:00') AS first_register_of_expected;
-- an invalid chunk: the same checksum again stays invalid (validate() again instead)
SELECT dataflow.create_dataset('checked', 'int', requires_validation => true);
SELECT dataflow.register('checked', '1', checksum => 'a');
SELECT dataflow.validate('checked', '1', false);
SELECT dataflow.register('checked', '1', checksum => 'a') AS same_invalid,
       (SELECT status FROM dataflow.chunks WHERE dataset = 'checked') AS status;

-- errors: force must not be NULL; nothing changes
SELECT pg_temp.fails($$SELECT dataflow.register('raw', '1', force => NULL)$$) AS null_force;

-- webhooks: a subscription may ask for duplicates (and the other events that are not a
-- status change) by name; a status filter without them does not get them
SELECT length(dataflow.subscribe('dups', 'https://hooks.example/dups', statuses => '{duplicate}')) > 30 AS subscribed,
       length(dataflow.subscribe('readies', 'https://hooks.example/ready', statuses => '{ready}')) > 30 AS subscribed2;
SELECT dataflow.register('raw', '9', row_count => 1) AS new_key, dataflow.register('raw', '9', row_count => 1) AS again;
SELECT s.name, d.payload ->> 'type' AS type, d.payload -> 'data' ->> 'to_status' AS to_status,
       d.payload -> 'data' ->> 'from_status' AS from_status
  FROM dataflow.delivery d JOIN dataflow.subscription s ON s.id = d.subscription_id ORDER BY d.id;
SELECT pg_temp.fails($$SELECT dataflow.subscribe('bad', 'https://hooks.example/x', statuses => '{duplicated}')$$)
       AS unknown_event;
-- a job's events have no dataset: asking for them with a datasets filter is refused
SELECT pg_temp.fails($$SELECT dataflow.subscribe('bad', 'https://hooks.example/x', datasets => '{raw}',
                                                 statuses => '{ready,paused}')$$) AS job_event_with_datasets;
