-- The work of one register(), lease() and complete() must not grow with what the
-- tables behind them hold (queued chunks, runs). Their generic plans are made on a
-- session's first call, often on a fresh install while queue and run are empty; such
-- plans once walked the whole queue on every register() (a queue row's existence
-- check) and all of run_pkey on every later lease of that session. Measured as shared
-- buffer accesses of one call (EXPLAIN's count includes the statements run inside the
-- function), early and after thousands more rows. On the code that walked them, the
-- register grew from 76 to 139 buffers over 6,000 queued chunks, the lease from 167 to
-- 228 and the completion from 140 to 287 over 1,500 runs, a one-chunk resubmit from
-- 2,749 to 4,578 over 30,000 more chunks.
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\set SHOW_CONTEXT never
-- buffers(sql): shared buffers hit or read while running sql once
CREATE FUNCTION pg_temp.buffers(sql text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE plan json;
BEGIN
  EXECUTE 'EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON) ' || sql INTO plan;
  RETURN (plan -> 0 -> 'Plan' ->> 'Shared Hit Blocks')::bigint
       + (plan -> 0 -> 'Plan' ->> 'Shared Read Blocks')::bigint;
END $$;
SELECT dataflow.create_dataset(n, 'int') > 0 AS ok FROM unnest('{src,a}'::text[]) n;
SELECT dataflow.create_job('j_a', output => 'a');
SELECT dataflow.add_input('j_a', 'src');
SELECT dataflow.expect('a', '1', '8000');
-- statistics say queue and run are empty, and stay so for this test
ANALYZE;
ALTER TABLE dataflow.queue SET (autovacuum_enabled = off);
ALTER TABLE dataflow.run SET (autovacuum_enabled = off);
-- This session's register plans are made now, with the queue empty.
SELECT count(dataflow.register('src', k::text)) FROM generate_series(1, 100) k;
CREATE TEMP TABLE reg (queued bigint, buffers bigint);
INSERT INTO reg SELECT count(*), pg_temp.buffers($$SELECT dataflow.register('src', '101')$$) FROM dataflow.queue;
SELECT count(dataflow.register('src', k::text)) FROM generate_series(102, 6000) k;
-- (one call first: the counter row's dead versions from that one big transaction are
-- visited, and marked dead in its index, by the first call after it)
SELECT dataflow.register('src', '6001');
INSERT INTO reg SELECT count(*), pg_temp.buffers($$SELECT dataflow.register('src', '6002')$$) FROM dataflow.queue;
SELECT max(queued) - min(queued) AS more_queued,
       max(buffers) FILTER (WHERE queued > 1000) - max(buffers) FILTER (WHERE queued < 1000) < 30 AS register_flat
  FROM reg;
-- This session's lease plans are made now, with run empty.
SELECT count(dataflow.complete(t.token)) FROM dataflow.lease('j_a', 'w', 1) t;
-- cycles(n): n leases and completions, committed one by one, in this session
CREATE PROCEDURE pg_temp.cycles(n integer) LANGUAGE plpgsql AS $$
DECLARE tok uuid;
BEGIN
  FOR i IN 1 .. n LOOP
    SELECT token INTO tok FROM dataflow.lease('j_a', 'w', 1);
    PERFORM dataflow.complete(tok);
    COMMIT;
  END LOOP;
END $$;
-- cost(): buffers of one more lease and of one more completion
CREATE TEMP TABLE cost (runs bigint, lease bigint, complete bigint);
CREATE PROCEDURE pg_temp.measure() LANGUAGE plpgsql AS $$
DECLARE tok uuid; l bigint;
BEGIN
  SELECT token INTO tok FROM dataflow.lease('j_a', 'w', 1);
  l := pg_temp.buffers(format('SELECT * FROM dataflow.lease(%L, %L, 1)', 'j_a', 'w'));
  INSERT INTO cost SELECT (SELECT count(*) FROM dataflow.run), l,
                          pg_temp.buffers(format('SELECT dataflow.complete(%L)', tok));
  PERFORM dataflow.complete(r.token) FROM dataflow.run r WHERE r.status = 'running';
END $$;
CALL pg_temp.cycles(200);
CALL pg_temp.measure();
CALL pg_temp.cycles(1500);
CALL pg_temp.measure();
-- the second measure follows 1,500 more runs: at most a few more buffers (index depth)
SELECT max(runs) - min(runs) AS more_runs,
       max(lease) FILTER (WHERE runs > 1000) - max(lease) FILTER (WHERE runs < 1000) < 30 AS lease_flat,
       max(complete) FILTER (WHERE runs > 1000) - max(complete) FILTER (WHERE runs < 1000) < 30 AS complete_flat
  FROM cost;
SELECT status, count(*) FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
 WHERE d.name = 'a' GROUP BY 1 ORDER BY 1;
-- A one-chunk resubmit touches the chunk and its consumers, whatever the size of the
-- table: measured before and after 12,000 more chunks (another dataset). Its work table
-- has no statistics; the planner once took it for 690 rows and hash-joined a scan of all
-- of chunk in five statements.
SELECT dataflow.create_dataset('other', 'int') > 0 AS ok;
CREATE TEMP TABLE rs (chunks bigint, buffers bigint);
INSERT INTO rs SELECT count(*), pg_temp.buffers(
  $$UPDATE dataflow.chunks SET status = 'resubmit' WHERE dataset = 'src' AND key = '5'$$) FROM dataflow.chunk;
SELECT count(dataflow.register('other', k::text)) FROM generate_series(1, 12000) k;
INSERT INTO rs SELECT count(*), pg_temp.buffers(
  $$UPDATE dataflow.chunks SET status = 'resubmit' WHERE dataset = 'src' AND key = '6'$$) FROM dataflow.chunk;
SELECT max(chunks) - min(chunks) AS more_chunks,
       max(buffers) FILTER (WHERE chunks > 20000) - max(buffers) FILTER (WHERE chunks < 20000) < 100
         AS resubmit_flat
  FROM rs;
SELECT c.dataset, c.key, c.status, c.version FROM dataflow.chunks c
 WHERE (c.dataset, c.key) IN (('src', '5'), ('src', '6'), ('a', '5'), ('a', '6')) ORDER BY 1, 2;
-- Resubmitting many chunks in one UPDATE (the row trigger resubmits each): the work
-- table is reused within the transaction. One table per chunk held its locks until
-- commit and ran out of shared memory after ~1,500 chunks.
UPDATE dataflow.chunks SET status = 'resubmit' WHERE dataset = 'other' AND key::integer <= 2000;
SELECT status, version, count(*) FROM dataflow.chunks WHERE dataset = 'other' GROUP BY 1, 2 ORDER BY 1, 2;
