-- complete_many(): complete() for a batch of leases in one call. The same result as
-- completing each token in turn (statuses, versions, counters, events, lineage, readiness
-- downstream, throughput), all or nothing on bad input, superseded runs recorded as such.
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\i sql/include/helpers.psql
\set SHOW_CONTEXT never
-- counters_ok(): the counters behind dataflow.datasets agree with counting dataflow.chunk
CREATE FUNCTION pg_temp.counters_ok() RETURNS boolean LANGUAGE sql AS $$
  SELECT bool_and(d.waiting = x.waiting AND d.queued = x.queued AND d.running = x.running
                  AND d.ready = x.ready AND d.chunks = x.total)
    FROM dataflow.datasets d
    JOIN (SELECT ds.name, count(*) FILTER (WHERE c.status = 'waiting') AS waiting,
                 count(*) FILTER (WHERE c.status = 'queued') AS queued,
                 count(*) FILTER (WHERE c.status = 'running') AS running,
                 count(*) FILTER (WHERE c.status = 'ready') AS ready, count(*) AS total
            FROM dataflow.dataset ds JOIN dataflow.chunk c ON c.dataset_id = ds.id GROUP BY ds.name) x
      ON x.name = d.dataset $$;

-- src -> a (same) -> b (window -1..0: each b key needs two a keys); c is a second job
SELECT dataflow.create_dataset(n, 'int', location => 'mem://{dataset}/{key}@{version}') > 0 AS ok
  FROM unnest('{src,a,b,c}'::text[]) n;
SELECT dataflow.create_job('j_a', output => 'a', max_attempts => 3, backoff_min => '0', backoff_max => '0');
SELECT dataflow.add_input('j_a', 'src');
SELECT dataflow.create_job('j_b', output => 'b');
SELECT dataflow.add_input('j_b', 'a', 'window', -1, 0);
SELECT dataflow.create_job('j_c', output => 'c');
SELECT dataflow.add_input('j_c', 'src');
SELECT dataflow.expect('b', '1', '6'), dataflow.expect('c', '1', '2');
SELECT count(dataflow.register('src', k::text)) FROM generate_series(1, 6) k;

-- ===== bad input: clear errors, SQLSTATEs, and no table changed
SELECT array_agg(token ORDER BY key::int) AS toks FROM dataflow.lease('j_a', 'w1', 4) \gset
SELECT pg_temp.fails('SELECT dataflow.complete_many(NULL)') AS null_tokens;
SELECT pg_temp.fails(format('SELECT dataflow.complete_many(%L::uuid[] || NULL::uuid)', :'toks')) AS null_element;
SELECT pg_temp.fails(format('SELECT dataflow.complete_many(%L::uuid[] || (%L::uuid[])[2])', :'toks', :'toks')) AS repeated;
SELECT pg_temp.fails(format('SELECT dataflow.complete_many(%L, row_counts => ''{1,2}'')', :'toks')) AS short_array;
SELECT pg_temp.fails(format('SELECT dataflow.complete_many(%L, row_counts => ''{1,2,-3,4}'')', :'toks')) AS negative;
SELECT pg_temp.fails(format('SELECT dataflow.complete_many(%L, infos => ''{"{}","[]","{}","{}"}'')', :'toks')) AS not_object;
SELECT pg_temp.fails(format('SELECT dataflow.complete_many(ARRAY[%L::uuid, gen_random_uuid()])', (:'toks'::uuid[])[1])) AS unknown;
SELECT pg_temp.fails('SELECT dataflow.complete_many(''{{1a2b3c4d-0000-4000-8000-000000000000}}''::uuid[])') AS two_dims;
SELECT pg_temp.fails(format('SELECT dataflow.complete_many(array_fill(%L::uuid, ARRAY[1001]))', (:'toks'::uuid[])[1])) AS too_many;
-- a dead lease anywhere in the batch: none of the batch is completed
SELECT dataflow.fail((:'toks'::uuid[])[3], 'boom', retry => false);
SELECT pg_temp.fails(format('SELECT dataflow.complete_many(%L)', :'toks')) AS dead_lease;
-- errors name positions, never tokens
SELECT pg_temp.err(format('SELECT dataflow.complete_many(%L)', :'toks')) LIKE '%' || (:'toks'::uuid[])[3] || '%' AS token_in_error;
SELECT * FROM dataflow.complete_many('{}');

-- ===== success: results in token order, chunks ready with their values, consumers queued
SELECT x.token = (:'toks'::uuid[])[v.n] AS in_order, x.result
  FROM dataflow.complete_many(ARRAY[(:'toks'::uuid[])[2], (:'toks'::uuid[])[1], (:'toks'::uuid[])[4]],
                              row_counts => '{20,10,40}', checksums => '{c2,NULL,c4}',
                              infos => ARRAY['{"k": 2}', NULL, '{"k": 4}']::jsonb[],
                              locations => '{NULL,/x/1,NULL}') WITH ORDINALITY x(token, result, i)
  JOIN (VALUES (1, 2), (2, 1), (3, 4)) v(i, n) ON v.i = x.i ORDER BY x.i;
SELECT key, status, version, row_count, checksum, info, location FROM dataflow.chunks
 WHERE dataset = 'a' ORDER BY key::int;
SELECT r.key, r.status, r.row_count FROM dataflow.runs r WHERE r.job = 'j_a' ORDER BY r.key::int, r.run_id;
SELECT * FROM pg_temp.st('b');        -- b:k needs a:k-1 and a:k: b:2 queued (a:0 never comes)
SELECT key, from_status, to_status, actor FROM dataflow.events
 WHERE dataset IN ('a', 'b') AND to_status IN ('ready', 'queued') AND from_status IS NOT NULL ORDER BY event_id;
SELECT pg_temp.counters_ok();
SELECT sum(succeeded) AS succeeded_this_minute FROM dataflow.done_minute dm JOIN dataflow.dataset d ON d.id = dm.dataset_id
 WHERE d.name = 'a';
-- completing them again is refused: not live any more
SELECT pg_temp.fails(format('SELECT dataflow.complete_many(ARRAY[%L::uuid])', (:'toks'::uuid[])[1])) AS again;

-- ===== several jobs and workers in one batch; the events name each run's worker
SELECT array_agg(token ORDER BY job, key::int) AS mix FROM (
  SELECT * FROM dataflow.lease('j_a', 'w2', 2) UNION ALL SELECT * FROM dataflow.lease('j_c', 'w3', 2)) t \gset
SELECT result, count(*) FROM dataflow.complete_many(:'mix') GROUP BY 1;
SELECT dataset, key, actor FROM dataflow.events WHERE to_status = 'ready' AND dataset IN ('a', 'c') AND actor <> 'w1'
 ORDER BY event_id;
SELECT * FROM pg_temp.st('b');
SELECT pg_temp.counters_ok();

-- ===== a run whose input was re-produced meanwhile is superseded; the others succeed
SELECT array_agg(token ORDER BY key::int) AS bt FROM dataflow.lease('j_b', 'w4', 3) \gset
SELECT key, new_status, version FROM dataflow.resubmit('a', '1', cascade => false);
SELECT x.result FROM dataflow.complete_many(:'bt') x;
SELECT * FROM pg_temp.st('b');
SELECT key, status, error IS NOT NULL AS has_error FROM dataflow.runs WHERE job = 'j_b' ORDER BY key::int;
SELECT pg_temp.counters_ok();

-- ===== privileges: the worker role may call it, a reader may not
SELECT has_function_privilege('dataflow_worker', 'dataflow.complete_many(uuid[], bigint[], text[], jsonb[], text[])', 'EXECUTE') AS worker,
       has_function_privilege('dataflow_reader', 'dataflow.complete_many(uuid[], bigint[], text[], jsonb[], text[])', 'EXECUTE') AS reader,
       has_function_privilege('public', 'dataflow.complete_many(uuid[], bigint[], text[], jsonb[], text[])', 'EXECUTE') AS public;
