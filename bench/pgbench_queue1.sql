-- Raw SKIP LOCKED queue, 1 job per claim: claim transaction, then complete transaction.
WITH c AS (
  UPDATE bench_queue SET status = 'running', locked_by = 'w' || :client_id, locked_at = now(), attempts = attempts + 1
   WHERE id = (SELECT id FROM bench_queue WHERE status = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
  RETURNING id)
SELECT count(*) AS got, coalesce(max(id), 0) AS id FROM c \gset
\if :got > 0
UPDATE bench_queue SET status = 'done', finished_at = now() WHERE id = :id;
\endif
