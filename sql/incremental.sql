-- Incremental batches: every input chunk that became available since the last
-- batch goes into the next one; a failed batch is retried with the same
-- inputs; input arriving meanwhile waits for the next batch; nothing is
-- skipped or taken twice; the task carries the batch keys and the lowest key.
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\set SHOW_CONTEXT never
SELECT dataflow.create_dataset('arrivals', 'int', location => '/in/{key}') > 0 AS ok;
SELECT dataflow.create_dataset('facts', 'int') > 0 AS ok;
SELECT dataflow.create_dataset('dim', 'text') > 0 AS ok;
SELECT dataflow.create_job('load_facts', output => 'facts', backoff_min => '0', backoff_max => '0',
                           max_attempts => 2) > 0 AS ok;
-- mappings that do not fit: incremental needs an int (batch number) output, and no key mappings beside it
SELECT dataflow.create_dataset('by_day', 'date') > 0 AS ok;
SELECT dataflow.create_job('bad', output => 'by_day') > 0 AS ok;
SELECT dataflow.add_input('bad', 'arrivals', mapping => 'incremental');
-- arrivals before the input is added are taken by the first batch
SELECT dataflow.register('arrivals', '10'), dataflow.register('arrivals', '11');
SELECT dataflow.add_input('load_facts', 'arrivals', mapping => 'incremental');
SELECT dataflow.add_input('load_facts', 'dim', mapping => 'latest');
SELECT dataflow.add_input('load_facts', 'arrivals', mapping => 'same');
SELECT dataflow.register('arrivals', '12');
-- batches cannot be expected: they are cut at lease
SELECT dataflow.expect('facts', '1', '3');
-- the latest dimension is not there yet: no batch can run
SELECT count(*) FROM dataflow.lease('load_facts', 'w');
SELECT dataflow.register('dim', 'v1');
-- batch 1: arrivals 10, 11, 12 (and the dimension)
SELECT key, params, jsonb_path_query_array(inputs, '$[*].key') AS input_keys
  FROM dataflow.lease('load_facts', 'w');
-- new arrivals while batch 1 runs wait for batch 2
SELECT dataflow.register('arrivals', '13');
SELECT count(*) FROM dataflow.lease('load_facts', 'w');
-- batch 1 fails once: retried with the same inputs, 13 still not in it
SELECT dataflow.fail(token, 'load failed') FROM dataflow.run WHERE status = 'running';
SELECT key, params -> 'batch' AS batch FROM dataflow.lease('load_facts', 'w');
SELECT dataflow.complete(token, row_count => 3) FROM dataflow.run WHERE status = 'running';
-- batch 2: only 13
SELECT key, params -> 'batch' AS batch FROM dataflow.lease('load_facts', 'w');
SELECT dataflow.complete(token, row_count => 1) FROM dataflow.run WHERE status = 'running';
-- nothing pending: no batch 3
SELECT count(*) FROM dataflow.lease('load_facts', 'w');
-- every arrival is in exactly one batch
SELECT a.key, count(*) AS batches
  FROM dataflow.chunk a JOIN dataflow.dataset ad ON ad.id = a.dataset_id AND ad.name = 'arrivals'
  JOIN dataflow.dep d ON d.input = a.id
  JOIN dataflow.chunk b ON b.id = d.consumer
  JOIN dataflow.dataset bd ON bd.id = b.dataset_id AND bd.name = 'facts'
 GROUP BY a.key ORDER BY a.key;
-- re-registering an arrival that batch 1 consumed re-runs batch 1 (cascade), not a new batch
SELECT dataflow.register('arrivals', '11', row_count => 5);
SELECT dataset, key, status, version FROM dataflow.chunks WHERE dataset = 'facts' ORDER BY key;
SELECT key, params -> 'batch' -> 'keys' AS keys FROM dataflow.lease('load_facts', 'w');
SELECT count(*) FROM dataflow.incremental_pending;
