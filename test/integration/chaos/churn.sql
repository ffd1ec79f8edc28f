-- Helpers for churn.sh, installed in schema churn of the test cluster: lease
-- times parsed from the consumers' psql output, and size/backlog samples.
-- (Consumers and producer are ordinary client sessions issuing one statement
-- per transaction: a procedure looping with COMMIT would not report its dead
-- tuples to the statistics until it returns, and autovacuum would never see
-- the churn.)
CREATE SCHEMA churn;
CREATE UNLOGGED TABLE churn.lat (worker text, at_epoch double precision, ms double precision,
                                 at timestamptz GENERATED ALWAYS AS (to_timestamp(at_epoch)) STORED);
CREATE UNLOGGED TABLE churn.sample (at timestamptz, backlog bigint, bytes bigint, detail jsonb);

CREATE PROCEDURE churn.sample() LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO churn.sample
  SELECT clock_timestamp(),
         (SELECT count(*) FROM dataflow.chunk WHERE status = 'queued'),
         sum(pg_total_relation_size(c.oid)),
         jsonb_object_agg(c.relname, jsonb_build_object('bytes', pg_total_relation_size(c.oid),
                                                         'dead', pg_stat_get_dead_tuples(c.oid)))
    FROM pg_class c WHERE c.relnamespace = 'dataflow'::regnamespace AND c.relkind = 'r';
END $$;
