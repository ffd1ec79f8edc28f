-- pg_dataflow, 1 chunk per lease: lease transaction, then complete transaction.
SELECT count(*) AS got, coalesce(max(token::text), '') AS tok
  FROM dataflow.lease(':job', 'w' || :client_id) \gset
\if :got > 0
SELECT dataflow.complete(':tok');
\endif
