-- pg_dataflow, 10 chunks per lease: lease transaction, then one complete_many() transaction for the 10.
SELECT count(*) AS got, coalesce(array_agg(token), '{}')::text AS toks
  FROM dataflow.lease(':job', 'w' || :client_id, 10) \gset
\if :got > 0
SELECT count(*) FROM dataflow.complete_many(':toks'::uuid[]);
\endif
