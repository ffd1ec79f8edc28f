-- Raw SKIP LOCKED queue, 10 jobs per claim: claim transaction, then one complete transaction for the 10.
WITH c AS (
  UPDATE bench_queue SET status = 'running', locked_by = 'w' || :client_id, locked_at = now(), attempts = attempts + 1
   WHERE id IN (SELECT id FROM bench_queue WHERE status = 'queued' ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED)
  RETURNING id)
SELECT count(*) AS got, coalesce(array_agg(id), '{}')::text AS ids FROM c \gset
\if :got > 0
UPDATE bench_queue SET status = 'done', finished_at = now() WHERE id = ANY (':ids'::bigint[]);
\endif
