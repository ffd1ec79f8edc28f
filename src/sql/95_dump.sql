-- What pg_dump keeps. Every table of the extension is a member of it, so pg_dump
-- writes only CREATE EXTENSION for them unless they are registered here as
-- configuration tables: then their rows are dumped too (COPY in the data section),
-- and a restore runs CREATE EXTENSION (the schema, functions, triggers and the four
-- roles, as in a fresh install) and loads the rows into the tables it made.
--
-- The extension script inserts one row, into dataflow.install (this install's id, 70_worker):
-- a restore loads the dumped row after CREATE EXTENSION made a new one, and that table's
-- BEFORE INSERT trigger (install_one) deletes the one there, so the restored database
-- keeps its source's id. Every other table gets rows only from calls, so no filter is
-- needed: a restore cannot duplicate a row the script itself made.
--
-- A restore loads the rows with COPY, which fires INSERT triggers (row and statement
-- level), in whatever order pg_restore picks (-j, -L). So each table is either
--   state, dumped, and no trigger on any table writes it while rows are loaded; or
--   derived, not dumped, and rebuilt exactly by the trigger of the table it derives
--   from while that table is loaded.
-- The triggers that fire on COPY: chunk_counted_insert (dataflow.chunk: counters and
-- queue, 12_counts.sql) and event_fanout (dataflow.event: deliveries, 70_worker.sql).
-- chunk_status_written, chunk_counted_update/_delete and event_append_only fire on
-- UPDATE or DELETE only.

-- Definitions.
SELECT pg_catalog.pg_extension_config_dump('dataflow.dataset', '');
SELECT pg_catalog.pg_extension_config_dump('dataflow.pool', '');
SELECT pg_catalog.pg_extension_config_dump('dataflow.connection', '');     -- secrets: see docs/security.md
SELECT pg_catalog.pg_extension_config_dump('dataflow.job', '');
SELECT pg_catalog.pg_extension_config_dump('dataflow.job_input', '');
SELECT pg_catalog.pg_extension_config_dump('dataflow.job_secret', '');     -- secrets: see docs/security.md
SELECT pg_catalog.pg_extension_config_dump('dataflow.job_definition', '');   -- history of each job's definition
SELECT pg_catalog.pg_extension_config_dump('dataflow.subscription', '');   -- secrets: see docs/security.md
SELECT pg_catalog.pg_extension_config_dump('dataflow.install', '');        -- this install's id (Prefect keys)

-- State. Chunks (status, version, location, unmet, attempts, backoff), their
-- dependency edges and latest-waits, the inputs pending for incremental jobs,
-- backfills, runs (live leases included, with their tokens and deadlines) and their
-- lineage, the event log, the webhook outbox and its attempts, what the worker sent
-- for Airflow runs, and the per-minute throughput buckets (a history no other table
-- holds; only chunk UPDATEs write it, never a load).
SELECT pg_catalog.pg_extension_config_dump('dataflow.chunk', '');
SELECT pg_catalog.pg_extension_config_dump('dataflow.dep', '');
SELECT pg_catalog.pg_extension_config_dump('dataflow.latest_wait', '');
SELECT pg_catalog.pg_extension_config_dump('dataflow.incremental_pending', '');
SELECT pg_catalog.pg_extension_config_dump('dataflow.backfill', '');
SELECT pg_catalog.pg_extension_config_dump('dataflow.run', '');
SELECT pg_catalog.pg_extension_config_dump('dataflow.run_input', '');
SELECT pg_catalog.pg_extension_config_dump('dataflow.done_minute', '');
-- Loading event fires event_fanout, which writes deliveries only for the events the
-- current transaction records (see _event_fanout): a restored event was fanned out in
-- its own transaction at the source, and those deliveries are the rows dumped below.
SELECT pg_catalog.pg_extension_config_dump('dataflow.event', '');
SELECT pg_catalog.pg_extension_config_dump('dataflow.delivery', '');
SELECT pg_catalog.pg_extension_config_dump('dataflow.delivery_attempt', '');
SELECT pg_catalog.pg_extension_config_dump('dataflow._dispatch', '');
SELECT pg_catalog.pg_extension_config_dump('dataflow.engine_stop', '');

-- Derived, NOT registered: dataflow.queue (one row per queued chunk) and
-- dataflow.chunk_count (chunks per status). Loading dataflow.chunk fires
-- chunk_counted_insert, which counts every loaded chunk by status and puts every
-- loaded queued chunk into the queue with its not_before: the rebuilt tables equal a
-- recount whatever the load order. Dumping them as well would count every chunk
-- twice and queue it twice.

-- Sequences, so new ids continue after the restored ones: run ids (a plain sequence
-- owned by run.id) and every identity column's sequence; all of them, as every
-- sequence in the schema was made by this script (the derived tables have none).
-- (One call per statement: a second update of the pg_extension row within one
-- statement fails.)
DO $$
DECLARE s pg_catalog.regclass;
BEGIN
  FOR s IN SELECT c.oid FROM pg_catalog.pg_class c
            WHERE c.relnamespace OPERATOR(pg_catalog.=) 'dataflow'::pg_catalog.regnamespace
              AND c.relkind OPERATOR(pg_catalog.=) 'S'
            ORDER BY c.relname LOOP
    PERFORM pg_catalog.pg_extension_config_dump(s, '');
  END LOOP;
END $$;
