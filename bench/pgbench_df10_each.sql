-- pg_dataflow, 10 chunks per lease, each completed with its own complete() call (one transaction for the 10).
SELECT count(*) AS got, coalesce(array_agg(token), '{}')::text AS toks
  FROM dataflow.lease(':job', 'w' || :client_id, 10) \gset
\if :got > 0
SELECT count(dataflow.complete(t)) FROM unnest(':toks'::uuid[]) t;
\endif
