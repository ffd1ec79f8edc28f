-- Dataset ranks: the depth of each dataset in the job graph, the first key of the lock
-- order (docs/internals.md): every dep edge runs from a lower rank to a higher one.
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\set VERBOSITY terse
-- created consumer first: ids say nothing about the graph
SELECT dataflow.create_dataset('report', 'int'), dataflow.create_dataset('day', 'int'),
       dataflow.create_dataset('dim', 'int'), dataflow.create_dataset('src', 'int'),
       dataflow.create_dataset('batches', 'int');
SELECT dataflow.create_job('jr', output => 'report'), dataflow.create_job('jd', output => 'day'),
       dataflow.create_job('jb', output => 'batches');
SELECT name, rank FROM dataflow.dataset ORDER BY id;
SELECT dataflow.add_input('jr', 'day', 'window', -1, 0);
SELECT name, rank FROM dataflow.dataset ORDER BY id;
SELECT dataflow.add_input('jd', 'src'), dataflow.add_input('jr', 'dim', 'latest'),
       dataflow.add_input('jb', 'report', 'incremental');
SELECT name, rank FROM dataflow.dataset ORDER BY id;
-- every edge goes up
SELECT dataflow.expect('report', '2', '3');
SELECT count(*) AS edges, count(*) FILTER (WHERE di.rank >= dc.rank) AS edges_not_upward
  FROM dataflow.dep d JOIN dataflow.chunk i ON i.id = d.input JOIN dataflow.chunk c ON c.id = d.consumer
  JOIN dataflow.dataset di ON di.id = i.dataset_id JOIN dataflow.dataset dc ON dc.id = c.dataset_id;
-- dropping a job makes its output a source: the edges into it go, its chunks wait for a
-- register, and the ranks below it are recomputed
SELECT dataflow.drop_job('jd');
SELECT name, rank FROM dataflow.dataset ORDER BY id;
SELECT dataset, key, status, unmet_inputs FROM dataflow.chunks WHERE dataset = 'day' ORDER BY key;
SELECT count(*) AS edges_into_day FROM dataflow.dep d JOIN dataflow.chunk c ON c.id = d.consumer
 WHERE c.dataset_id = (SELECT id FROM dataflow.dataset WHERE name = 'day');
SELECT key, from_status, to_status, detail ->> 'reason' AS reason FROM dataflow.events
 WHERE dataset = 'day' AND detail ->> 'reason' LIKE 'job %' ORDER BY key;
SELECT dataflow.register('day', '2');
SELECT dataset, key, status, unmet_inputs FROM dataflow.chunks WHERE dataset IN ('day', 'report') ORDER BY 1, 2;
-- every edge still goes up after the drop
SELECT count(*) FILTER (WHERE di.rank >= dc.rank) AS edges_not_upward
  FROM dataflow.dep d JOIN dataflow.chunk i ON i.id = d.input JOIN dataflow.chunk c ON c.id = d.consumer
  JOIN dataflow.dataset di ON di.id = i.dataset_id JOIN dataflow.dataset dc ON dc.id = c.dataset_id;
