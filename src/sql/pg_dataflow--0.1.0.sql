-- pg_dataflow 0.1.0 install script, frozen at its release (git tag v0.1.0). Never edit it: schema changes go in upgrade scripts (src/sql/README.md).
\echo Use "CREATE EXTENSION pg_dataflow" to load this file. \quit

-- ==== src/sql/00_schema.sql
-- Schema, types and small pure helpers shared by every module.

COMMENT ON SCHEMA dataflow IS
  'pg_dataflow: datasets split into chunks, their status, versions, lineage and leases';

-- What lease() hands a worker: everything it needs to do one chunk.
CREATE TYPE dataflow.task AS (
  run_id          bigint,
  token           uuid,
  job             text,
  dataset         text,
  key             text,
  version         integer,
  attempt         integer,
  output_location text,
  inputs          jsonb,
  params          jsonb,
  deadline        timestamptz
);
COMMENT ON TYPE dataflow.task IS
  'A leased chunk: run id, lease token (the capability for heartbeat/complete/fail), job, '
  'dataset, key, version to produce, attempt, output location, inputs '
  '[{dataset, key, version, location, row_count, checksum}], job params, lease deadline';

-- How far a chunk in a given status satisfies its consumers:
-- 0 = not available, 1 = ready, 2 = validated (or skipped: known-empty, satisfies all).
CREATE FUNCTION dataflow._level(status text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE status WHEN 'ready' THEN 1 WHEN 'validated' THEN 2 WHEN 'skipped' THEN 2 ELSE 0 END;

-- Names of datasets, jobs, pools, connections and subscriptions: short, printable,
-- safe to show anywhere (no quotes, spaces, semicolons or control characters).
CREATE FUNCTION dataflow._check_name(what text, name text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF name IS NULL THEN
    RAISE EXCEPTION '% name must not be NULL', what USING ERRCODE = '22004';
  END IF;
  IF name OPERATOR(pg_catalog.!~) '^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,62}$' THEN
    RAISE EXCEPTION 'invalid % name "%"', what, pg_catalog.left(name, 64)
      USING ERRCODE = '22023',
            HINT = 'Names are 1-63 characters: letters, digits, "_", ".", ":" and "-", not starting with a punctuation mark.';
  END IF;
  RETURN name;
END $$;

-- Who did it: the worker name when one is given, else the session's login role.
CREATE FUNCTION dataflow._actor(worker text DEFAULT NULL) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
RETURN COALESCE(worker, CASE WHEN pg_catalog.current_setting('role') OPERATOR(pg_catalog.=) 'none' THEN SESSION_USER::text ELSE pg_catalog.current_setting('role') END);

-- The role the session acts as: the SET ROLE role, else the login role. Inside a
-- SECURITY DEFINER function current_user is the extension owner; this is who called.
CREATE FUNCTION dataflow._caller() RETURNS name
LANGUAGE sql STABLE PARALLEL SAFE
RETURN CASE WHEN pg_catalog.current_setting('role') OPERATOR(pg_catalog.=) 'none' THEN SESSION_USER
            ELSE pg_catalog.current_setting('role')::name END;

-- Whether the session's temporary table pg_temp.<name> exists and is one this
-- extension made: SECURITY DEFINER paths keep per-transaction work tables in
-- pg_temp, a schema the caller can write too. A table of that name that
-- current_user (the extension owner, inside a definer function) does not own
-- was planted by the caller, with a trigger, rule or default that would run as
-- the owner: refuse it, never adopt it. Only its owner could have added a trigger
-- or rule to one we made. Anything else holding the name (a view, sequence,
-- composite, enum or domain type called <name>) is refused the same way, with the
-- same clear error, rather than failing later in CREATE TEMP TABLE. (A relation
-- named like the work table's primary-key index is harmless: PostgreSQL picks
-- another index name.) Returns false when there is none, and with p_quiet also for
-- an object that is not ours (a caller that only reads what it would have written).
CREATE FUNCTION dataflow._own_work_table(p_name text, p_quiet boolean DEFAULT false) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  me oid := (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) current_user);
  tmp oid := pg_catalog.pg_my_temp_schema();
  owner_ok boolean; kind "char"; taken text;
BEGIN
  IF tmp OPERATOR(pg_catalog.=) 0 THEN
    RETURN false;   -- no temporary schema yet: nothing can have been planted
  END IF;
  SELECT c.relowner OPERATOR(pg_catalog.=) me, c.relkind
    INTO owner_ok, kind
    FROM pg_catalog.pg_class c
   WHERE c.relnamespace OPERATOR(pg_catalog.=) tmp AND c.relname OPERATOR(pg_catalog.=) p_name;
  IF FOUND AND owner_ok AND kind OPERATOR(pg_catalog.=) 'r' THEN
    RETURN true;
  END IF;
  IF p_quiet THEN
    RETURN false;
  END IF;
  IF FOUND THEN
    taken := p_name;
  ELSIF EXISTS (SELECT FROM pg_catalog.pg_type t
                 WHERE t.typnamespace OPERATOR(pg_catalog.=) tmp AND t.typname OPERATOR(pg_catalog.=) p_name) THEN
    taken := p_name;
  ELSE
    RETURN false;
  END IF;
  RAISE EXCEPTION 'pg_temp.% is not a work table of pg_dataflow', taken
    USING ERRCODE = '42501',
          DETAIL = 'pg_dataflow keeps temporary work tables of that name; an object of that name made by another role is never used.',
          HINT = pg_catalog.format('DROP the temporary object pg_temp.%s, or use a new session.', taken);
END $$;

-- Every function that changes chunks or runs needs READ COMMITTED: it takes a lock and
-- then reads, in its next statement, what the lock protects (dep edges a concurrent
-- expect() committed, a run a completion ended), which only a fresh snapshot per
-- statement shows. Under REPEATABLE READ or SERIALIZABLE every statement keeps the
-- transaction's first snapshot, and a resubmit missed a consumer (left queued on an
-- unavailable input) or a completion missed an edge (its consumer waited forever).
CREATE FUNCTION dataflow._read_committed() RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF pg_catalog.current_setting('transaction_isolation') OPERATOR(pg_catalog.<>) 'read committed' THEN
    RAISE EXCEPTION 'pg_dataflow needs READ COMMITTED transactions; this one is %',
                    pg_catalog.upper(pg_catalog.current_setting('transaction_isolation'))
      USING ERRCODE = '0A000',
            DETAIL = 'It locks rows and then reads what they protect with a fresh snapshot, which a '
                     'REPEATABLE READ or SERIALIZABLE transaction does not take.',
            HINT = 'Call it in a READ COMMITTED transaction (the default): BEGIN ISOLATION LEVEL READ COMMITTED.';
  END IF;
END $$;

-- ==== src/sql/05_keys.sql
-- Key handling lives in C++ (src/core/keys.cpp) behind the guarded boundary
-- in src/pg/keys_sql.cpp. Canonical text forms: date 2024-01-31, hour
-- 2024-01-31T05, int 42, text any non-empty string. Ordinals make date, hour
-- and int keys ordered and let ranges be computed with integer arithmetic:
-- days since 1970-01-01, hours since 1970-01-01T00, the integer itself.

CREATE FUNCTION dataflow._key_canon(kind text, key text) RETURNS text
AS 'MODULE_PATHNAME', 'df_key_canon' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dataflow._key_canon(text, text) IS
  'Canonical text form of a key of the given kind; raises on a key that does not parse';

CREATE FUNCTION dataflow._key_ord(kind text, key text) RETURNS bigint
AS 'MODULE_PATHNAME', 'df_key_ord' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dataflow._key_ord(text, text) IS
  'Ordinal of a date/hour/int key (days or hours since 1970-01-01, or the integer); NULL for text keys';

CREATE FUNCTION dataflow._key_text(kind text, ord bigint) RETURNS text
AS 'MODULE_PATHNAME', 'df_key_text' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dataflow._key_text(text, bigint) IS
  'Canonical key of the given kind at an ordinal';

CREATE FUNCTION dataflow._key_range(kind text, from_key text, to_key text, max_keys bigint)
RETURNS TABLE(key text, ord bigint)
AS 'MODULE_PATHNAME', 'df_key_range' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 1000;
COMMENT ON FUNCTION dataflow._key_range(text, text, text, bigint) IS
  'Every key from from_key to to_key inclusive, in order; raises past max_keys';

CREATE FUNCTION dataflow._key_window(kind text, key text, lo integer, hi integer)
RETURNS TABLE(key text, ord bigint)
AS 'MODULE_PATHNAME', 'df_key_window' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 7;
COMMENT ON FUNCTION dataflow._key_window(text, text, integer, integer) IS
  'Keys key+lo .. key+hi of an ordered kind (a rolling window)';

CREATE FUNCTION dataflow._key_children(parent_kind text, child_kind text, key text)
RETURNS TABLE(key text, ord bigint)
AS 'MODULE_PATHNAME', 'df_key_children' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 24;
COMMENT ON FUNCTION dataflow._key_children(text, text, text) IS
  'The finer keys inside a coarser key (the 24 hours of a date)';

CREATE FUNCTION dataflow._key_parent(child_kind text, parent_kind text, key text) RETURNS text
AS 'MODULE_PATHNAME', 'df_key_parent' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dataflow._key_parent(text, text, text) IS
  'The coarser key containing a finer key (the date of an hour)';

CREATE FUNCTION dataflow._backoff(attempt integer, min_seconds double precision,
                                  max_seconds double precision, jitter double precision)
RETURNS double precision
AS 'MODULE_PATHNAME', 'df_backoff' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dataflow._backoff(integer, double precision, double precision, double precision) IS
  'Seconds to wait after the given failed attempt: exponential from min to max, jittered by jitter in [0,1]';

-- The input keys an output key needs under a mapping, computed on ordinals so a
-- million-key backfill is set arithmetic. Not strict and plain SQL so the
-- planner inlines it.
CREATE FUNCTION dataflow._input_keys(mapping text, in_kind text, lo integer, hi integer,
                                     key text, ord bigint)
RETURNS TABLE(key text, ord bigint)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT _input_keys.key, _input_keys.ord WHERE mapping OPERATOR(pg_catalog.=) 'same'
  UNION ALL
  SELECT dataflow._key_text(in_kind, _input_keys.ord OPERATOR(pg_catalog.+) g), _input_keys.ord OPERATOR(pg_catalog.+) g
    FROM pg_catalog.generate_series(lo::bigint, hi::bigint) AS g
   WHERE mapping OPERATOR(pg_catalog.=) 'window'
  UNION ALL
  SELECT dataflow._key_text('hour', _input_keys.ord OPERATOR(pg_catalog.*) 24 OPERATOR(pg_catalog.+) g),
         _input_keys.ord OPERATOR(pg_catalog.*) 24 OPERATOR(pg_catalog.+) g
    FROM pg_catalog.generate_series(0::bigint, 23::bigint) AS g
   WHERE mapping OPERATOR(pg_catalog.=) 'rollup'
$$;

-- ==== src/sql/10_model.sql
-- The model: datasets, pools, connections, jobs and their inputs, chunks and the
-- dependency edges between them, runs with their lineage, and the event log.

CREATE TABLE dataflow.dataset (
  id                  integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name                text NOT NULL UNIQUE,
  key_kind            text NOT NULL CHECK (key_kind IN ('date', 'hour', 'int', 'text')),
  location            text,
  requires_validation boolean NOT NULL DEFAULT false,
  cadence             interval CHECK (cadence > interval '0'),
  lateness            interval CHECK (lateness >= interval '0'),
  retention           interval CHECK (retention > interval '0'),
  metadata            jsonb NOT NULL DEFAULT '{}',
  -- Depth in the job graph: 0 for a source, 1 + the highest rank of its job's inputs
  -- otherwise (dataflow._rerank). Every dep edge runs from a lower rank to a higher one,
  -- so chunks locked in (rank, id) order are locked inputs first (docs/internals.md).
  rank                integer NOT NULL DEFAULT 0 CHECK (rank >= 0),
  created_at          timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE dataflow.dataset IS 'A dataset split into chunks by key';
COMMENT ON COLUMN dataflow.dataset.rank IS 'Depth in the job graph (0 = source); chunks are locked in (rank, id) order';
COMMENT ON COLUMN dataflow.dataset.key_kind IS 'date (2024-01-31), hour (2024-01-31T05), int (42) or text';
COMMENT ON COLUMN dataflow.dataset.location IS
  'Location template, e.g. s3://lake/{dataset}/{key}/v{version}/';
COMMENT ON COLUMN dataflow.dataset.requires_validation IS
  'Consumers need chunks validated (not just ready) unless their input says otherwise';
COMMENT ON COLUMN dataflow.dataset.cadence IS 'How often a new key is expected (date/hour datasets)';
COMMENT ON COLUMN dataflow.dataset.lateness IS 'How long after its key''s period a chunk may arrive before it is late';
COMMENT ON COLUMN dataflow.dataset.retention IS 'How long events and finished runs of this dataset are kept';

CREATE TABLE dataflow.pool (
  id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name       text NOT NULL UNIQUE,
  slots      integer NOT NULL CHECK (slots >= 0),
  created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE dataflow.pool IS
  'Concurrency slots shared by jobs; UPDATE slots at any time, it applies on the next lease';

CREATE TABLE dataflow.connection (
  id              integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name            text NOT NULL UNIQUE,
  kind            text NOT NULL CHECK (kind IN ('http', 'airflow')),
  base_url        text NOT NULL CHECK (base_url ~ '^https?://[^\s/?#]+'),
  auth            text NOT NULL DEFAULT 'none' CHECK (auth IN ('none', 'basic', 'bearer')),
  username        text,
  secret          text,
  api_version     integer CHECK (api_version IN (1, 2)),
  connect_timeout interval NOT NULL DEFAULT '5 seconds' CHECK (connect_timeout > interval '0' AND connect_timeout <= interval '1 hour'),
  timeout         interval NOT NULL DEFAULT '30 seconds' CHECK (timeout > interval '0' AND timeout <= interval '24 hours'),
  created_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE dataflow.connection IS
  'A named engine endpoint shared by jobs; secret is readable by the admin role only';

CREATE TABLE dataflow.job (
  id              integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name            text NOT NULL UNIQUE,
  output_id       integer NOT NULL UNIQUE REFERENCES dataflow.dataset (id),
  dispatch        text NOT NULL DEFAULT 'pull' CHECK (dispatch IN ('pull', 'http', 'airflow')),
  connection_id   integer REFERENCES dataflow.connection (id),
  target          text,
  endpoint        text,
  params          jsonb NOT NULL DEFAULT '{}',
  pool_id         integer REFERENCES dataflow.pool (id),
  max_concurrency integer CHECK (max_concurrency >= 0),
  max_attempts    integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
  backoff_min     interval NOT NULL DEFAULT '10 seconds' CHECK (backoff_min >= interval '0'),
  backoff_max     interval NOT NULL DEFAULT '10 minutes',
  lease_for       interval NOT NULL DEFAULT '5 minutes' CHECK (lease_for > interval '0'),
  priority        integer NOT NULL DEFAULT 0,
  paused          boolean NOT NULL DEFAULT false,
  created_at      timestamptz NOT NULL DEFAULT now(),
  CHECK (backoff_max >= backoff_min)
);
COMMENT ON TABLE dataflow.job IS
  'Produces exactly one output dataset; UPDATE max_concurrency/priority/paused at any time';

-- need: 1 = the input chunk must be ready, 2 = validated (resolved from
-- require, or from the input dataset when require is NULL).
CREATE TABLE dataflow.job_input (
  job_id     integer NOT NULL REFERENCES dataflow.job (id) ON DELETE CASCADE,
  dataset_id integer NOT NULL REFERENCES dataflow.dataset (id),
  mapping    text NOT NULL CHECK (mapping IN ('same', 'window', 'rollup', 'latest', 'incremental')),
  lo         integer,
  hi         integer,
  require    text CHECK (require IN ('ready', 'validated')),
  need       smallint NOT NULL CHECK (need IN (1, 2)),
  PRIMARY KEY (job_id, dataset_id)
);
CREATE INDEX job_input_dataset ON dataflow.job_input (dataset_id);
COMMENT ON TABLE dataflow.job_input IS 'An input of a job and how output keys map to input keys';

-- One row per (dataset, key). unmet counts the inputs that are not available
-- yet; a waiting chunk whose unmet reaches 0 becomes queued. Updated often,
-- hence the fillfactor; no index covers a column a transition writes (status,
-- not_before, run_id, ...), so status changes are HOT updates that add no
-- index entries. The queue is the separate table below.
CREATE TABLE dataflow.chunk (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  dataset_id   integer NOT NULL,          -- no FK: checked per row on bulk inserts; drop_dataset cleans up
  key          text NOT NULL,
  ord          bigint,
  status       text NOT NULL CHECK (status IN ('waiting', 'queued', 'running', 'ready', 'validated',
                                               'invalid', 'failed', 'skipped', 'cancelled', 'resubmit')),
  version      integer NOT NULL DEFAULT 1 CHECK (version >= 1),
  run_id       bigint,
  location     text,
  row_count    bigint,
  checksum     text,
  info         jsonb NOT NULL DEFAULT '{}',
  unmet        integer NOT NULL DEFAULT 0 CHECK (unmet >= 0),
  attempts     integer NOT NULL DEFAULT 0,
  not_before   timestamptz NOT NULL DEFAULT now(),
  error        text,
  validation   jsonb,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  available_at timestamptz,
  CONSTRAINT chunk_dataset_key UNIQUE (dataset_id, key)
) WITH (fillfactor = 80);
CREATE INDEX chunk_ord ON dataflow.chunk (dataset_id, ord);
COMMENT ON TABLE dataflow.chunk IS
  'One chunk of a dataset: status, version, location, counts, lineage pointer; '
  'UPDATE status to ''resubmit'' or ''skipped'' to restart or skip it';

-- The queue: one row per queued chunk, kept by the status trigger on chunk
-- (12_counts.sql), never written directly. lease() walks its one index in
-- (not_before, chunk) order. It lives beside chunk, not as a partial index on
-- it, because an index whose predicate reads chunk.status would make every
-- status change a non-HOT update with new entries in every chunk index. The
-- index also serves the deletes (dataset, not_before and chunk are all known).
CREATE TABLE dataflow.queue (
  dataset_id integer NOT NULL,
  not_before timestamptz NOT NULL,
  chunk_id   bigint NOT NULL
) WITH (fillfactor = 100, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
        autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 2000);
CREATE INDEX queue_order ON dataflow.queue (dataset_id, not_before, chunk_id);
COMMENT ON TABLE dataflow.queue IS
  'Queued chunks in lease order (dataset, not_before, chunk); maintained by a trigger on dataflow.chunk';

-- Dependency edges between chunks, made when chunks are expected. Propagation
-- follows them from an input to its direct consumers only.
CREATE TABLE dataflow.dep (
  input    bigint NOT NULL,
  consumer bigint NOT NULL,
  need     smallint NOT NULL,
  PRIMARY KEY (input, consumer)
);
CREATE INDEX dep_consumer ON dataflow.dep (consumer);
COMMENT ON TABLE dataflow.dep IS 'consumer chunk needs input chunk at level need (1 ready, 2 validated)';

-- Consumers of a `latest` input that wait for the input dataset's first
-- available chunk.
CREATE TABLE dataflow.latest_wait (
  dataset_id integer NOT NULL,
  consumer   bigint NOT NULL,
  need       smallint NOT NULL,
  PRIMARY KEY (dataset_id, consumer)
);
CREATE INDEX latest_wait_consumer ON dataflow.latest_wait (consumer);

CREATE SEQUENCE dataflow.run_id_seq;
CREATE TABLE dataflow.run (
  id              bigint PRIMARY KEY DEFAULT nextval('dataflow.run_id_seq'),
  token           uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
  job_id          integer NOT NULL,
  pool_id         integer,
  chunk_id        bigint NOT NULL,
  version         integer NOT NULL,
  attempt         integer NOT NULL,
  worker          text NOT NULL,
  status          text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'expired',
                                                  'cancelled', 'superseded')),
  started_at      timestamptz NOT NULL DEFAULT now(),
  heartbeat_at    timestamptz,
  deadline        timestamptz NOT NULL,
  finished_at     timestamptz,
  error           text,
  external_id     text,
  output_location text,
  row_count       bigint,
  checksum        text,
  info            jsonb
) WITH (fillfactor = 90);
ALTER SEQUENCE dataflow.run_id_seq OWNED BY dataflow.run.id;
CREATE INDEX run_live_job ON dataflow.run (job_id) WHERE status = 'running';
CREATE INDEX run_live_pool ON dataflow.run (pool_id) WHERE status = 'running' AND pool_id IS NOT NULL;
CREATE INDEX run_live_deadline ON dataflow.run (deadline) WHERE status = 'running';
CREATE INDEX run_chunk ON dataflow.run (chunk_id);
-- Runs a cascading resubmit superseded while they worked: they hold their inputs until
-- they end or their deadline passes (reap() closes them).
CREATE INDEX run_held_deadline ON dataflow.run (deadline) WHERE status = 'superseded' AND finished_at IS NULL;
COMMENT ON TABLE dataflow.run IS 'One attempt at producing a chunk; token is the lease capability';

-- Lineage: the exact input chunk versions each run read.
CREATE TABLE dataflow.run_input (
  run_id   bigint NOT NULL,
  chunk_id bigint NOT NULL,
  version  integer NOT NULL,
  PRIMARY KEY (run_id, chunk_id)
);
CREATE INDEX run_input_chunk ON dataflow.run_input (chunk_id);
COMMENT ON TABLE dataflow.run_input IS 'Lineage: which version of which input chunk a run read';

-- Append-only history of every status transition.
CREATE TABLE dataflow.event (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at          timestamptz NOT NULL DEFAULT now(),
  dataset_id  integer,
  chunk_id    bigint,
  key         text,
  run_id      bigint,
  version     integer,
  from_status text,
  to_status   text NOT NULL,
  actor       text NOT NULL,
  detail      jsonb
);
CREATE INDEX event_chunk ON dataflow.event (chunk_id, id);
COMMENT ON TABLE dataflow.event IS
  'Append-only history of every status transition: when, chunk, run, from, to, actor, detail';

-- ==== src/sql/12_counts.sql
-- Counters maintained incrementally so the status views answer in
-- milliseconds at millions of chunks, without counting by scans.
--
-- chunk_count holds per (dataset, backfill, shard) the number of chunks in
-- each status; readers sum over shards. A writer updates a shard row no other
-- transaction holds (an advisory lock per row, tried without waiting) and adds
-- the row when it is missing, so it never waits for anyone: a worker that keeps its transaction
-- open (complete() in the same transaction as a long load) cannot stall the
-- others. Shards may go negative; their sum is exact. done_minute buckets
-- completions and failures per minute the same way, for throughput and ETA.
-- Both are a few rows updated on every transition: vacuumed after every 1,000
-- dead versions, not after a fraction of a table that never grows.

CREATE TABLE dataflow.backfill (
  id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  dataset_id integer NOT NULL,
  from_key   text NOT NULL,
  to_key     text NOT NULL,
  created    bigint NOT NULL DEFAULT 0,
  actor      text NOT NULL,
  at         timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE dataflow.backfill IS 'One row per expect() call that created chunks';

ALTER TABLE dataflow.chunk ADD COLUMN backfill_id integer NOT NULL DEFAULT 0;

CREATE TABLE dataflow.chunk_count (
  dataset_id  integer NOT NULL,
  backfill_id integer NOT NULL,
  shard       smallint NOT NULL,
  waiting     bigint NOT NULL DEFAULT 0,
  queued      bigint NOT NULL DEFAULT 0,
  running     bigint NOT NULL DEFAULT 0,
  ready       bigint NOT NULL DEFAULT 0,
  validated   bigint NOT NULL DEFAULT 0,
  invalid     bigint NOT NULL DEFAULT 0,
  failed      bigint NOT NULL DEFAULT 0,
  skipped     bigint NOT NULL DEFAULT 0,
  cancelled   bigint NOT NULL DEFAULT 0,
  resubmit    bigint NOT NULL DEFAULT 0,
  newest_ord  bigint,
  newest_at   timestamptz,
  PRIMARY KEY (dataset_id, backfill_id, shard)
) WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);

CREATE TABLE dataflow.done_minute (
  dataset_id integer NOT NULL,
  minute     timestamptz NOT NULL,
  shard      smallint NOT NULL,
  succeeded  integer NOT NULL DEFAULT 0,
  failed     integer NOT NULL DEFAULT 0,
  PRIMARY KEY (dataset_id, minute, shard)
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);

-- Counter rows are claimed with transaction-level advisory locks rather than
-- row locks: pg_try_advisory_xact_lock writes no WAL, where SELECT ... FOR
-- UPDATE SKIP LOCKED writes a lock record per claim. Every writer of a counter
-- row holds its lock, so its upsert never waits. The lock key mixes dataset,
-- backfill (or minute) and shard; two rows sharing a key only make a writer
-- move to the next shard. Returns the shard this transaction now holds: the
-- backend's own (pid mod 64) first, the next ones when another holds it.
CREATE FUNCTION dataflow._count_shard(p_space integer, p_a bigint, p_b bigint) RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE s integer := pg_backend_pid() % 64;
BEGIN
  FOR i IN 1..64 LOOP
    IF pg_try_advisory_xact_lock(p_space, ((p_a * 8191 + p_b * 64 + s) % 2147483647)::integer) THEN
      RETURN s;
    END IF;
    s := (s + 1) % 64;
  END LOOP;
  RAISE EXCEPTION 'all 64 counter shards of (%, %) are held by other transactions', p_a, p_b
    USING ERRCODE = '55P03', HINT = 'More than 64 transactions change chunks of one dataset at once.';
END $$;

-- Move p_n chunks from status p_old to p_new in a counter row nobody else holds.
-- An UPDATE, and the row added first when missing (an upsert would also write a
-- row-lock record per call). By primary key even when the plan was made while the
-- table had one page: dead counter rows can make it thousands of pages. (JIT is off
-- wherever sequential scans are: a scan with no alternative then costs 10^10, and the
-- statement would be JIT-compiled on every call.) Under repeatable read, a row another
-- transaction added after the snapshot is a serialization failure.
CREATE FUNCTION dataflow._count(p_dataset integer, p_backfill integer, p_old text, p_new text,
                                p_n bigint, p_ord bigint, p_at timestamptz)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET jit = off AS $$
DECLARE s integer := dataflow._count_shard(7410, p_dataset, p_backfill);
BEGIN
  FOR attempt IN 1..2 LOOP
    UPDATE dataflow.chunk_count
       SET waiting = waiting + CASE p_new WHEN 'waiting' THEN p_n ELSE 0 END - CASE p_old WHEN 'waiting' THEN p_n ELSE 0 END,
           queued = queued + CASE p_new WHEN 'queued' THEN p_n ELSE 0 END - CASE p_old WHEN 'queued' THEN p_n ELSE 0 END,
           running = running + CASE p_new WHEN 'running' THEN p_n ELSE 0 END - CASE p_old WHEN 'running' THEN p_n ELSE 0 END,
           ready = ready + CASE p_new WHEN 'ready' THEN p_n ELSE 0 END - CASE p_old WHEN 'ready' THEN p_n ELSE 0 END,
           validated = validated + CASE p_new WHEN 'validated' THEN p_n ELSE 0 END - CASE p_old WHEN 'validated' THEN p_n ELSE 0 END,
           invalid = invalid + CASE p_new WHEN 'invalid' THEN p_n ELSE 0 END - CASE p_old WHEN 'invalid' THEN p_n ELSE 0 END,
           failed = failed + CASE p_new WHEN 'failed' THEN p_n ELSE 0 END - CASE p_old WHEN 'failed' THEN p_n ELSE 0 END,
           skipped = skipped + CASE p_new WHEN 'skipped' THEN p_n ELSE 0 END - CASE p_old WHEN 'skipped' THEN p_n ELSE 0 END,
           cancelled = cancelled + CASE p_new WHEN 'cancelled' THEN p_n ELSE 0 END - CASE p_old WHEN 'cancelled' THEN p_n ELSE 0 END,
           resubmit = resubmit + CASE p_new WHEN 'resubmit' THEN p_n ELSE 0 END - CASE p_old WHEN 'resubmit' THEN p_n ELSE 0 END,
           newest_ord = greatest(newest_ord, p_ord),
           newest_at = greatest(newest_at, p_at)
     WHERE dataset_id = p_dataset AND backfill_id = p_backfill AND shard = s;
    EXIT WHEN FOUND OR attempt = 2;
    INSERT INTO dataflow.chunk_count (dataset_id, backfill_id, shard) VALUES (p_dataset, p_backfill, s)
    ON CONFLICT DO NOTHING;
  END LOOP;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'counter row of dataset % changed after this transaction''s snapshot', p_dataset
      USING ERRCODE = '40001';
  END IF;
END $$;

-- Completions and failures in this minute's throughput bucket, the same way.
CREATE FUNCTION dataflow._count_done(p_dataset integer, p_succeeded bigint, p_failed bigint)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET jit = off AS $$
DECLARE
  m timestamptz := date_trunc('minute', now());
  s integer := dataflow._count_shard(7411, p_dataset, (extract(epoch FROM m) / 60)::bigint);
BEGIN
  FOR attempt IN 1..2 LOOP
    UPDATE dataflow.done_minute
       SET succeeded = succeeded + p_succeeded, failed = failed + p_failed
     WHERE dataset_id = p_dataset AND minute = m AND shard = s;
    EXIT WHEN FOUND OR attempt = 2;
    INSERT INTO dataflow.done_minute (dataset_id, minute, shard) VALUES (p_dataset, m, s)
    ON CONFLICT DO NOTHING;
  END LOOP;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'throughput row of dataset % changed after this transaction''s snapshot', p_dataset
      USING ERRCODE = '40001';
  END IF;
END $$;

-- The trigger behind every status change: counters, the throughput bucket and
-- queue membership (dataflow.queue) move with the chunks, in their transaction.
-- Statement-level, with the statement's old and new rows: a statement that moves
-- many chunks (a 10-chunk lease, complete_many, a fan-out propagation) changes
-- the queue in one DELETE and one INSERT and each counter row once per group,
-- not once per chunk. Transition tables cannot be limited to UPDATE OF status,
-- so it fires for every UPDATE of chunk and keeps the rows whose status (or,
-- when queued, not_before) changed. Counters add deltas, so their order does not
-- matter; the queue is reconciled with each chunk's current row, because a row
-- trigger (chunk_status_written: a resubmit written with UPDATE) may have changed
-- the chunk again, in a nested statement, before this statement-level one runs.
-- Each queue row is reached by its key, one probe per changed chunk: the plans here
-- are made once per session, often while the queue is empty, and a join the planner
-- costed for an empty queue walked all of it for every chunk once it had grown
-- (measured: bulk register() 2,600/s -> 870/s over the first 30,000 queued chunks).
-- Hence no sequential scans here; old_rows and new_rows may still be hash-joined.
CREATE FUNCTION dataflow._chunk_counted_update() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET jit = off AS $$
DECLARE r record; leave_queue boolean := false; enter_queue boolean := false;
BEGIN
  -- One row per (dataset, backfill, old status, new status) that changed; a queued
  -- chunk whose not_before moved comes as queued -> queued (queue only, no count).
  FOR r IN
    SELECT n.dataset_id, n.backfill_id, o.status AS old_status, n.status AS new_status, count(*) AS n,
           max(n.ord) FILTER (WHERE dataflow._level(n.status) > 0) AS ord,
           max(n.available_at) FILTER (WHERE dataflow._level(n.status) > 0) AS at
      FROM old_rows o JOIN new_rows n ON n.id = o.id
     WHERE o.status <> n.status OR (n.status = 'queued' AND o.not_before <> n.not_before)
     GROUP BY 1, 2, 3, 4
  LOOP
    leave_queue := leave_queue OR r.old_status = 'queued';
    enter_queue := enter_queue OR r.new_status = 'queued';
    CONTINUE WHEN r.old_status = r.new_status;
    PERFORM dataflow._count(r.dataset_id, r.backfill_id, r.old_status, r.new_status, r.n, r.ord, r.at);
    IF r.old_status = 'running' AND r.new_status IN ('ready', 'failed', 'queued') THEN
      PERFORM dataflow._count_done(r.dataset_id, CASE WHEN r.new_status = 'ready' THEN r.n ELSE 0 END,
                                   CASE WHEN r.new_status = 'ready' THEN 0 ELSE r.n END);
    END IF;
  END LOOP;
  -- The queue follows each chunk's current row (see above), so a nested change that
  -- already moved the chunk again is neither undone nor duplicated. A chunk whose
  -- not_before moved leaves its old queue row and enters a new one. (The checks of the
  -- current row are scalar subqueries, never turned into joins: an index probe each.)
  IF leave_queue OR enter_queue THEN
    FOR r IN
      SELECT o.dataset_id, o.id, o.not_before AS old_not_before, n.not_before AS new_not_before,
             o.status = 'queued' AND (n.status <> 'queued' OR n.not_before <> o.not_before)
               AND NOT coalesce((SELECT c.status = 'queued' AND c.not_before = o.not_before
                                   FROM dataflow.chunk c WHERE c.id = o.id), false) AS leaves,
             n.status = 'queued' AND (o.status <> 'queued' OR o.not_before <> n.not_before)
               AND coalesce((SELECT c.status = 'queued' AND c.not_before = n.not_before
                               FROM dataflow.chunk c WHERE c.id = n.id), false) AS enters
        FROM old_rows o JOIN new_rows n ON n.id = o.id
       WHERE (o.status = 'queued' OR n.status = 'queued')
         AND (o.status <> n.status OR o.not_before <> n.not_before)
    LOOP
      IF r.leaves THEN
        DELETE FROM dataflow.queue q
         WHERE q.dataset_id = r.dataset_id AND q.not_before = r.old_not_before AND q.chunk_id = r.id;
      END IF;
      IF r.enters THEN
        INSERT INTO dataflow.queue (dataset_id, not_before, chunk_id)
        SELECT r.dataset_id, r.new_not_before, r.id
         WHERE NOT EXISTS (SELECT FROM dataflow.queue q
                            WHERE q.dataset_id = r.dataset_id AND q.not_before = r.new_not_before
                              AND q.chunk_id = r.id);
      END IF;
    END LOOP;
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION dataflow._chunk_counted_insert() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT dataset_id, backfill_id, status, count(*) AS n,
                  max(ord) FILTER (WHERE dataflow._level(status) > 0) AS ord,
                  max(available_at) FILTER (WHERE dataflow._level(status) > 0) AS at
             FROM new_rows GROUP BY 1, 2, 3 LOOP
    PERFORM dataflow._count(r.dataset_id, r.backfill_id, NULL, r.status, r.n, r.ord, r.at);
  END LOOP;
  INSERT INTO dataflow.queue (dataset_id, not_before, chunk_id)
  SELECT n.dataset_id, n.not_before, n.id FROM new_rows n WHERE n.status = 'queued';
  RETURN NULL;
END $$;

CREATE FUNCTION dataflow._chunk_counted_delete() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT dataset_id, backfill_id, status, count(*) AS n FROM old_rows GROUP BY 1, 2, 3 LOOP
    PERFORM dataflow._count(r.dataset_id, r.backfill_id, r.status, NULL, r.n, NULL, NULL);
  END LOOP;
  -- by key, one probe per deleted queued chunk (see _chunk_counted_update)
  FOR r IN SELECT o.dataset_id, o.not_before, o.id FROM old_rows o WHERE o.status = 'queued' LOOP
    DELETE FROM dataflow.queue q
     WHERE q.dataset_id = r.dataset_id AND q.not_before = r.not_before AND q.chunk_id = r.id;
  END LOOP;
  RETURN NULL;
END $$;

CREATE TRIGGER chunk_counted_update AFTER UPDATE ON dataflow.chunk
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
  EXECUTE FUNCTION dataflow._chunk_counted_update();
CREATE TRIGGER chunk_counted_insert AFTER INSERT ON dataflow.chunk
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
  EXECUTE FUNCTION dataflow._chunk_counted_insert();
CREATE TRIGGER chunk_counted_delete AFTER DELETE ON dataflow.chunk
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
  EXECUTE FUNCTION dataflow._chunk_counted_delete();

-- ==== src/sql/20_define.sql
-- Definition: datasets, pools, connections, jobs, inputs; and their drop_*.
-- Every function validates all of its arguments before it writes anything.

CREATE FUNCTION dataflow._dataset_id(name text) RETURNS integer
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE v integer;
BEGIN
  IF name IS NULL THEN
    RAISE EXCEPTION 'dataset must not be NULL' USING ERRCODE = '22004';
  END IF;
  SELECT d.id INTO v FROM dataflow.dataset d WHERE d.name = _dataset_id.name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'dataset "%" does not exist', left(name, 64)
      USING ERRCODE = '42704', HINT = 'Create it with dataflow.create_dataset(name, key_kind).';
  END IF;
  RETURN v;
END $$;

CREATE FUNCTION dataflow._dataset_row(name text) RETURNS dataflow.dataset
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE d dataflow.dataset;
BEGIN
  SELECT * INTO d FROM dataflow.dataset ds WHERE ds.id = dataflow._dataset_id(_dataset_row.name);
  RETURN d;
END $$;

CREATE FUNCTION dataflow._job(name text) RETURNS dataflow.job
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE j dataflow.job;
BEGIN
  IF name IS NULL THEN
    RAISE EXCEPTION 'job must not be NULL' USING ERRCODE = '22004';
  END IF;
  SELECT * INTO j FROM dataflow.job WHERE job.name = _job.name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'job "%" does not exist', left(name, 64)
      USING ERRCODE = '42704', HINT = 'Create it with dataflow.create_job(name, output => dataset).';
  END IF;
  RETURN j;
END $$;

-- Resolve a location template: {dataset}, {key} and {version}.
CREATE FUNCTION dataflow._location(template text, dataset text, key text, version integer)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(template,
         '{dataset}', dataset), '{key}', key), '{version}', version::text);

CREATE FUNCTION dataflow.create_dataset(
  name text, key_kind text,
  location text DEFAULT NULL,
  requires_validation boolean DEFAULT false,
  cadence interval DEFAULT NULL,
  lateness interval DEFAULT NULL,
  retention interval DEFAULT NULL,
  metadata jsonb DEFAULT '{}')
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE v integer;
BEGIN
  PERFORM dataflow._check_name('dataset', name);
  IF key_kind IS NULL OR key_kind NOT IN ('date', 'hour', 'int', 'text') THEN
    RAISE EXCEPTION 'invalid key kind "%"', coalesce(left(key_kind, 64), 'NULL')
      USING ERRCODE = CASE WHEN key_kind IS NULL THEN '22004' ELSE '22023' END,
            HINT = 'Key kinds are date, hour, int and text.';
  END IF;
  IF location IS NOT NULL AND (location = '' OR
       regexp_replace(location, '\{(dataset|key|version)\}', '', 'g') ~ '[{}]') THEN
    RAISE EXCEPTION 'invalid location template "%"', left(location, 200)
      USING ERRCODE = '22023',
            HINT = 'Templates may use {dataset}, {key} and {version}, e.g. s3://lake/{dataset}/{key}/v{version}/';
  END IF;
  IF requires_validation IS NULL THEN
    RAISE EXCEPTION 'requires_validation must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF cadence IS NOT NULL THEN
    IF key_kind NOT IN ('date', 'hour') THEN
      RAISE EXCEPTION 'a cadence needs a date or hour dataset, not %', key_kind USING ERRCODE = '22023';
    ELSIF cadence < (CASE key_kind WHEN 'date' THEN interval '1 day' ELSE interval '1 hour' END) THEN
      RAISE EXCEPTION 'cadence % is shorter than one % key', cadence, key_kind USING ERRCODE = '22023';
    END IF;
  END IF;
  IF lateness < interval '0' OR retention <= interval '0' THEN
    RAISE EXCEPTION 'lateness must be >= 0 and retention > 0' USING ERRCODE = '22023';
  END IF;
  IF metadata IS NULL OR jsonb_typeof(metadata) <> 'object' THEN
    RAISE EXCEPTION 'metadata must be a JSON object'
      USING ERRCODE = CASE WHEN metadata IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF EXISTS (SELECT FROM dataflow.dataset d WHERE d.name = create_dataset.name) THEN
    RAISE EXCEPTION 'dataset "%" already exists', name USING ERRCODE = '42710';
  END IF;
  INSERT INTO dataflow.dataset (name, key_kind, location, requires_validation, cadence, lateness,
                                retention, metadata)
  VALUES (name, key_kind, location, requires_validation, cadence, lateness, retention, metadata)
  RETURNING id INTO v;
  RETURN v;
END $$;
COMMENT ON FUNCTION dataflow.create_dataset(text, text, text, boolean, interval, interval, interval, jsonb) IS
  'Define a dataset: name, key kind (date, hour, int, text), location template, '
  'requires_validation, cadence, lateness, retention, metadata; returns its id';

CREATE FUNCTION dataflow.drop_dataset(name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE d integer := dataflow._dataset_id(name); j text;
BEGIN
  SELECT string_agg(jb.name, ', ') INTO j FROM dataflow.job jb
   WHERE jb.output_id = d OR jb.id IN (SELECT ji.job_id FROM dataflow.job_input ji WHERE ji.dataset_id = d);
  IF j IS NOT NULL THEN
    RAISE EXCEPTION 'dataset "%" is used by job(s) %', name, j
      USING ERRCODE = '2BP01', HINT = 'Drop those jobs first with dataflow.drop_job(name).';
  END IF;
  DELETE FROM dataflow.run_input WHERE chunk_id IN (SELECT id FROM dataflow.chunk WHERE dataset_id = d)
     OR run_id IN (SELECT r.id FROM dataflow.run r JOIN dataflow.chunk c ON c.id = r.chunk_id WHERE c.dataset_id = d);
  DELETE FROM dataflow.run WHERE chunk_id IN (SELECT id FROM dataflow.chunk WHERE dataset_id = d);
  DELETE FROM dataflow.dep WHERE input IN (SELECT id FROM dataflow.chunk WHERE dataset_id = d)
     OR consumer IN (SELECT id FROM dataflow.chunk WHERE dataset_id = d);
  DELETE FROM dataflow.latest_wait WHERE dataset_id = d;
  DELETE FROM dataflow.chunk WHERE dataset_id = d;
  DELETE FROM dataflow.dataset WHERE id = d;
END $$;
COMMENT ON FUNCTION dataflow.drop_dataset(text) IS
  'Drop a dataset no job uses, with its chunks and runs (the event history is kept)';

CREATE FUNCTION dataflow.create_pool(name text, slots integer) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE v integer;
BEGIN
  PERFORM dataflow._check_name('pool', name);
  IF slots IS NULL OR slots < 0 THEN
    RAISE EXCEPTION 'pool slots must be a number >= 0, not %', coalesce(slots::text, 'NULL')
      USING ERRCODE = CASE WHEN slots IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF EXISTS (SELECT FROM dataflow.pool p WHERE p.name = create_pool.name) THEN
    RAISE EXCEPTION 'pool "%" already exists', name USING ERRCODE = '42710';
  END IF;
  INSERT INTO dataflow.pool (name, slots) VALUES (name, slots) RETURNING id INTO v;
  RETURN v;
END $$;
COMMENT ON FUNCTION dataflow.create_pool(text, integer) IS
  'Define a pool of concurrency slots shared by jobs; change it later with UPDATE dataflow.pool SET slots = n';

CREATE FUNCTION dataflow.drop_pool(name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE p integer; j text;
BEGIN
  IF name IS NULL THEN
    RAISE EXCEPTION 'pool must not be NULL' USING ERRCODE = '22004';
  END IF;
  SELECT id INTO p FROM dataflow.pool WHERE pool.name = drop_pool.name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'pool "%" does not exist', coalesce(left(name, 64), 'NULL') USING ERRCODE = '42704';
  END IF;
  SELECT string_agg(jb.name, ', ') INTO j FROM dataflow.job jb WHERE jb.pool_id = p;
  IF j IS NOT NULL THEN
    RAISE EXCEPTION 'pool "%" is used by job(s) %', name, j USING ERRCODE = '2BP01';
  END IF;
  DELETE FROM dataflow.pool WHERE id = p;
END $$;
COMMENT ON FUNCTION dataflow.drop_pool(text) IS 'Drop a pool no job uses';

CREATE FUNCTION dataflow.create_connection(
  name text, kind text, base_url text,
  auth text DEFAULT 'none', username text DEFAULT NULL, secret text DEFAULT NULL,
  api_version integer DEFAULT NULL,
  connect_timeout interval DEFAULT '5 seconds', timeout interval DEFAULT '30 seconds')
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE v integer;
BEGIN
  PERFORM dataflow._check_name('connection', name);
  IF kind IS NULL OR kind NOT IN ('http', 'airflow') THEN
    RAISE EXCEPTION 'invalid connection kind "%"', coalesce(kind, 'NULL')
      USING ERRCODE = CASE WHEN kind IS NULL THEN '22004' ELSE '22023' END, HINT = 'Connection kinds are http and airflow.';
  END IF;
  IF base_url IS NULL OR base_url !~ '^https?://[^\s/?#@]+(/[^\s]*)?$' OR base_url ~ '[\r\n]' THEN
    RAISE EXCEPTION 'invalid base_url "%"', coalesce(left(base_url, 200), 'NULL')
      USING ERRCODE = CASE WHEN base_url IS NULL THEN '22004' ELSE '22023' END, HINT = 'An http:// or https:// URL without credentials in it.';
  END IF;
  IF auth IS NULL OR auth NOT IN ('none', 'basic', 'bearer') THEN
    RAISE EXCEPTION 'invalid auth "%"', coalesce(auth, 'NULL')
      USING ERRCODE = CASE WHEN auth IS NULL THEN '22004' ELSE '22023' END, HINT = 'auth is none, basic or bearer.';
  END IF;
  IF auth = 'basic' AND (username IS NULL OR secret IS NULL) THEN
    RAISE EXCEPTION 'basic auth needs a username and a secret' USING ERRCODE = '22023';
  END IF;
  IF auth = 'bearer' AND secret IS NULL THEN
    RAISE EXCEPTION 'bearer auth needs a secret' USING ERRCODE = '22023';
  END IF;
  IF username ~ '[\r\n:]' OR secret ~ '[\r\n]' THEN
    RAISE EXCEPTION 'username and secret must not contain line breaks (or ":" in a username)'
      USING ERRCODE = '22023';
  END IF;
  IF kind = 'airflow' THEN
    api_version := coalesce(api_version, 1);
  END IF;
  IF api_version IS NOT NULL AND api_version NOT IN (1, 2) THEN
    RAISE EXCEPTION 'api_version must be 1 or 2' USING ERRCODE = '22023';
  END IF;
  IF connect_timeout IS NULL OR timeout IS NULL OR connect_timeout <= interval '0' OR timeout <= interval '0' THEN
    RAISE EXCEPTION 'timeouts must be positive'
      USING ERRCODE = CASE WHEN connect_timeout IS NULL OR timeout IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  -- The worker counts them in milliseconds (an integer); these bounds also hold in the table.
  IF connect_timeout > interval '1 hour' THEN
    RAISE EXCEPTION 'connect_timeout % is too long', connect_timeout USING ERRCODE = '22023',
      HINT = 'At most 1 hour: a connection that takes longer to open is not coming.';
  END IF;
  IF timeout > interval '24 hours' THEN
    RAISE EXCEPTION 'timeout % is too long', timeout USING ERRCODE = '22023',
      HINT = 'At most 24 hours per request; an engine that works longer should answer 202 and report back '
             'with dataflow.heartbeat() and dataflow.complete().';
  END IF;
  IF EXISTS (SELECT FROM dataflow.connection c WHERE c.name = create_connection.name) THEN
    RAISE EXCEPTION 'connection "%" already exists', name USING ERRCODE = '42710';
  END IF;
  INSERT INTO dataflow.connection (name, kind, base_url, auth, username, secret, api_version,
                                   connect_timeout, timeout)
  VALUES (name, kind, base_url, auth, username, secret, api_version, connect_timeout, timeout)
  RETURNING id INTO v;
  RETURN v;
END $$;
COMMENT ON FUNCTION dataflow.create_connection(text, text, text, text, text, text, integer, interval, interval) IS
  'Define an engine endpoint (http or airflow) shared by jobs; the secret is readable by the admin role only';

CREATE FUNCTION dataflow.drop_connection(name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE c integer; j text;
BEGIN
  IF name IS NULL THEN
    RAISE EXCEPTION 'connection must not be NULL' USING ERRCODE = '22004';
  END IF;
  SELECT id INTO c FROM dataflow.connection WHERE connection.name = drop_connection.name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'connection "%" does not exist', coalesce(left(name, 64), 'NULL') USING ERRCODE = '42704';
  END IF;
  SELECT string_agg(jb.name, ', ') INTO j FROM dataflow.job jb WHERE jb.connection_id = c;
  IF j IS NOT NULL THEN
    RAISE EXCEPTION 'connection "%" is used by job(s) %', name, j USING ERRCODE = '2BP01';
  END IF;
  DELETE FROM dataflow.connection WHERE id = c;
END $$;
COMMENT ON FUNCTION dataflow.drop_connection(text) IS 'Drop a connection no job uses';

-- ==== src/sql/22_jobs.sql
-- Jobs and their inputs. A dataset has at most one producing job; the job graph
-- (input dataset -> job -> output dataset) stays acyclic.

CREATE FUNCTION dataflow.create_job(
  name text,
  output text,
  dispatch text DEFAULT 'pull',
  connection text DEFAULT NULL,
  target text DEFAULT NULL,
  endpoint text DEFAULT NULL,
  params jsonb DEFAULT '{}',
  pool text DEFAULT NULL,
  max_concurrency integer DEFAULT NULL,
  max_attempts integer DEFAULT 3,
  backoff_min interval DEFAULT '10 seconds',
  backoff_max interval DEFAULT '10 minutes',
  lease_for interval DEFAULT '5 minutes',
  priority integer DEFAULT 0)
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d integer; c dataflow.connection; p integer; v integer; other text;
BEGIN
  PERFORM dataflow._check_name('job', name);
  d := dataflow._dataset_id(output);
  IF dispatch IS NULL OR dispatch NOT IN ('pull', 'http', 'airflow') THEN
    RAISE EXCEPTION 'invalid dispatch "%"', coalesce(dispatch, 'NULL')
      USING ERRCODE = CASE WHEN dispatch IS NULL THEN '22004' ELSE '22023' END, HINT = 'dispatch is pull (workers call lease), http or airflow.';
  END IF;
  IF connection IS NOT NULL THEN
    SELECT * INTO c FROM dataflow.connection cn WHERE cn.name = create_job.connection;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'connection "%" does not exist', left(connection, 64) USING ERRCODE = '42704';
    END IF;
  END IF;
  IF dispatch = 'pull' AND (connection IS NOT NULL OR endpoint IS NOT NULL OR target IS NOT NULL) THEN
    RAISE EXCEPTION 'a pull job takes no connection, target or endpoint' USING ERRCODE = '22023';
  ELSIF dispatch = 'http' THEN
    IF (endpoint IS NULL) = (connection IS NULL) THEN
      RAISE EXCEPTION 'an http job needs either endpoint or connection (with target), not both'
        USING ERRCODE = '22023';
    END IF;
    IF endpoint IS NOT NULL AND (endpoint !~ '^https?://[^\s/?#@]+(/[^\s]*)?$' OR endpoint ~ '[\r\n]') THEN
      RAISE EXCEPTION 'invalid endpoint "%"', left(endpoint, 200)
        USING ERRCODE = '22023', HINT = 'An http:// or https:// URL without credentials in it.';
    END IF;
    IF connection IS NOT NULL AND c.kind <> 'http' THEN
      RAISE EXCEPTION 'connection "%" is of kind %, not http', connection, c.kind USING ERRCODE = '22023';
    END IF;
  ELSIF dispatch = 'airflow' THEN
    IF connection IS NULL OR c.kind <> 'airflow' OR target IS NULL OR endpoint IS NOT NULL THEN
      RAISE EXCEPTION 'an airflow job needs an airflow connection and a target (the DAG id), and no endpoint'
        USING ERRCODE = '22023';
    END IF;
  END IF;
  IF target IS NOT NULL AND target !~ '^[A-Za-z0-9_./-]{1,250}$' THEN
    RAISE EXCEPTION 'invalid target "%"', left(target, 64)
      USING ERRCODE = '22023', HINT = 'A DAG id or a URL path: letters, digits, "_", ".", "/" and "-".';
  END IF;
  IF params IS NULL OR jsonb_typeof(params) <> 'object' THEN
    RAISE EXCEPTION 'params must be a JSON object'
      USING ERRCODE = CASE WHEN params IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF pool IS NOT NULL THEN
    SELECT id INTO p FROM dataflow.pool pl WHERE pl.name = create_job.pool;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'pool "%" does not exist', left(pool, 64) USING ERRCODE = '42704';
    END IF;
  END IF;
  IF max_concurrency < 0 OR max_attempts IS NULL OR max_attempts < 1 THEN
    RAISE EXCEPTION 'max_concurrency must be >= 0 (or NULL: unlimited) and max_attempts >= 1'
      USING ERRCODE = CASE WHEN max_attempts IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF backoff_min IS NULL OR backoff_max IS NULL OR backoff_min < interval '0' OR backoff_max < backoff_min THEN
    RAISE EXCEPTION 'backoff needs 0 <= backoff_min <= backoff_max'
      USING ERRCODE = CASE WHEN backoff_min IS NULL OR backoff_max IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF lease_for IS NULL OR lease_for <= interval '0' THEN
    RAISE EXCEPTION 'lease_for must be positive'
      USING ERRCODE = CASE WHEN lease_for IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  IF priority IS NULL THEN
    RAISE EXCEPTION 'priority must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF EXISTS (SELECT FROM dataflow.job j WHERE j.name = create_job.name) THEN
    RAISE EXCEPTION 'job "%" already exists', name USING ERRCODE = '42710';
  END IF;
  SELECT j.name INTO other FROM dataflow.job j WHERE j.output_id = d;
  IF FOUND THEN
    RAISE EXCEPTION 'dataset "%" is already produced by job "%"', output, other
      USING ERRCODE = '42710', HINT = 'A dataset has at most one producing job.';
  END IF;
  IF EXISTS (SELECT FROM dataflow.chunk ch WHERE ch.dataset_id = d) THEN
    RAISE EXCEPTION 'dataset "%" already has chunks', output
      USING ERRCODE = '55000',
            HINT = 'Define the producing job before expecting or registering chunks of its output.';
  END IF;
  INSERT INTO dataflow.job (name, output_id, dispatch, connection_id, target, endpoint, params, pool_id,
                            max_concurrency, max_attempts, backoff_min, backoff_max, lease_for, priority)
  VALUES (name, d, dispatch, c.id, target, endpoint, params, p,
          max_concurrency, max_attempts, backoff_min, backoff_max, lease_for, priority)
  RETURNING id INTO v;
  RETURN v;
END $$;
COMMENT ON FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer,
                                        interval, interval, interval, integer) IS
  'Define the job producing a dataset: dispatch (pull, http, airflow), connection/target or endpoint, '
  'params, pool, max_concurrency, max_attempts, backoff_min/max, lease_for, priority; returns its id';

CREATE FUNCTION dataflow.add_input(
  job text, dataset text,
  mapping text DEFAULT 'same',
  lo integer DEFAULT NULL, hi integer DEFAULT NULL,
  require text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  j dataflow.job := dataflow._job(job);
  d dataflow.dataset;
  o dataflow.dataset;
  cyc boolean;
BEGIN
  d := dataflow._dataset_row(dataset);
  SELECT * INTO o FROM dataflow.dataset WHERE id = j.output_id;
  IF mapping IS NULL OR mapping NOT IN ('same', 'window', 'rollup', 'latest', 'incremental') THEN
    RAISE EXCEPTION 'invalid mapping "%"', coalesce(mapping, 'NULL')
      USING ERRCODE = CASE WHEN mapping IS NULL THEN '22004' ELSE '22023' END, HINT = 'Mappings are same, window, rollup, latest and incremental.';
  END IF;
  IF mapping = 'window' THEN
    IF lo IS NULL OR hi IS NULL OR lo > hi OR hi - lo >= 10000 THEN
      RAISE EXCEPTION 'a window mapping needs lo <= hi, at most 10000 keys apart'
        USING ERRCODE = '22023', HINT = 'A rolling 7 days is lo => -6, hi => 0.';
    END IF;
  ELSIF lo IS NOT NULL OR hi IS NOT NULL THEN
    RAISE EXCEPTION 'lo and hi apply to the window mapping only' USING ERRCODE = '22023';
  END IF;
  IF require IS NOT NULL AND require NOT IN ('ready', 'validated') THEN
    RAISE EXCEPTION 'invalid require "%"', require
      USING ERRCODE = '22023', HINT = 'require is ready or validated (NULL: the input dataset decides).';
  END IF;
  IF (mapping IN ('same', 'window') AND d.key_kind <> o.key_kind)
     OR (mapping = 'window' AND d.key_kind = 'text')
     OR (mapping = 'rollup' AND NOT (o.key_kind = 'date' AND d.key_kind = 'hour'))
     OR (mapping = 'incremental' AND o.key_kind <> 'int') THEN
    RAISE EXCEPTION 'mapping % does not fit % keys (%) from % keys (%)',
                    mapping, o.key_kind, o.name, d.key_kind, d.name
      USING ERRCODE = '42P17',
            HINT = 'same: equal kinds; window: equal ordered kinds (date, hour, int); '
                   'rollup: date output from hour input; latest: any; incremental: int (batch number) output.';
  END IF;
  IF mapping = 'incremental' AND EXISTS (SELECT FROM dataflow.job_input ji
                                          WHERE ji.job_id = j.id AND ji.mapping <> 'latest') THEN
    RAISE EXCEPTION 'an incremental input cannot be combined with same, window or rollup inputs'
      USING ERRCODE = '42P17', HINT = 'A batch job may add latest inputs (dimensions) only.';
  END IF;
  IF mapping IN ('same', 'window', 'rollup') AND EXISTS (SELECT FROM dataflow.job_input ji
                                          WHERE ji.job_id = j.id AND ji.mapping = 'incremental') THEN
    RAISE EXCEPTION 'job "%" consumes batches (incremental); it cannot also map keys with %', j.name, mapping
      USING ERRCODE = '42P17';
  END IF;
  IF EXISTS (SELECT FROM dataflow.job_input ji WHERE ji.job_id = j.id AND ji.dataset_id = d.id) THEN
    RAISE EXCEPTION 'job "%" already has input "%"', j.name, d.name USING ERRCODE = '42710';
  END IF;
  -- A cycle: the output dataset already reaches the new input downstream.
  WITH RECURSIVE down(ds) AS (
    SELECT j.output_id
    UNION
    SELECT jb.output_id FROM down JOIN dataflow.job_input ji ON ji.dataset_id = down.ds
                                  JOIN dataflow.job jb ON jb.id = ji.job_id)
  SELECT EXISTS (SELECT FROM down WHERE ds = d.id) INTO cyc;
  IF cyc THEN
    RAISE EXCEPTION 'input "%" of job "%" would make a cycle', d.name, j.name
      USING ERRCODE = '42P17', HINT = 'Dataset "' || d.name || '" is downstream of "' || o.name || '".';
  END IF;
  IF EXISTS (SELECT FROM dataflow.chunk ch WHERE ch.dataset_id = j.output_id) THEN
    RAISE EXCEPTION 'the output of job "%" already has chunks', j.name
      USING ERRCODE = '55000', HINT = 'Add every input before expecting chunks of the output.';
  END IF;
  INSERT INTO dataflow.job_input (job_id, dataset_id, mapping, lo, hi, require, need)
  VALUES (j.id, d.id, mapping, lo, hi, require,
          CASE coalesce(require, CASE WHEN d.requires_validation THEN 'validated' ELSE 'ready' END)
            WHEN 'validated' THEN 2 ELSE 1 END);
  PERFORM dataflow._rerank();
  IF mapping = 'incremental' THEN
    -- The first batch takes everything already available.
    INSERT INTO dataflow.incremental_pending (job_id, chunk_id, need)
    SELECT j.id, c.id, ji.need FROM dataflow.chunk c
      JOIN dataflow.job_input ji ON ji.job_id = j.id AND ji.dataset_id = d.id
     WHERE c.dataset_id = d.id AND dataflow._level(c.status) >= ji.need;
  END IF;
END $$;
COMMENT ON FUNCTION dataflow.add_input(text, text, text, integer, integer, text) IS
  'Make a dataset an input of a job: mapping same, window (lo, hi), rollup, latest or incremental; '
  'require ready or validated (NULL: the input dataset decides)';

-- Recompute every dataset's rank (10_model.sql) after the job graph changed: a
-- Jacobi iteration, one UPDATE per level of the graph; the graph is acyclic
-- (add_input refuses cycles), so it ends within the graph's depth.
CREATE FUNCTION dataflow._rerank() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE n integer;
BEGIN
  FOR i IN 1..10000 LOOP
    UPDATE dataflow.dataset d SET rank = x.rank
      FROM (SELECT o.id, coalesce(max(ind.rank) + 1, 0) AS rank
              FROM dataflow.dataset o
              LEFT JOIN dataflow.job j ON j.output_id = o.id
              LEFT JOIN dataflow.job_input ji ON ji.job_id = j.id
              LEFT JOIN dataflow.dataset ind ON ind.id = ji.dataset_id
             GROUP BY o.id) x
     WHERE d.id = x.id AND d.rank <> x.rank;
    GET DIAGNOSTICS n = ROW_COUNT;
    EXIT WHEN n = 0;
  END LOOP;
END $$;

CREATE FUNCTION dataflow.drop_job(name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE j dataflow.job := dataflow._job(name);
BEGIN
  IF EXISTS (SELECT FROM dataflow.run r WHERE r.job_id = j.id AND r.status = 'running') THEN
    RAISE EXCEPTION 'job "%" has running leases', name
      USING ERRCODE = '55006', HINT = 'Pause it with dataflow.pause_job and wait for its runs to end.';
  END IF;
  -- Its output becomes a source: its chunks no longer wait for the job's inputs. The
  -- edges into them go too, or they would run from a higher rank to a lower one once
  -- the ranks are recomputed, and the lock order (docs/internals.md) would not hold.
  PERFORM 1 FROM dataflow.chunk c WHERE c.dataset_id = j.output_id ORDER BY c.id FOR UPDATE;
  DELETE FROM dataflow.dep d USING dataflow.chunk c WHERE c.dataset_id = j.output_id AND d.consumer = c.id;
  DELETE FROM dataflow.latest_wait w USING dataflow.chunk c WHERE c.dataset_id = j.output_id AND w.consumer = c.id;
  DELETE FROM dataflow.incremental_pending p WHERE p.job_id = j.id;
  WITH moved AS (
    UPDATE dataflow.chunk c SET unmet = 0, status = 'waiting', updated_at = now()
      FROM dataflow.chunk o
     WHERE o.id = c.id AND c.dataset_id = j.output_id AND c.status IN ('waiting', 'queued')
       AND (c.unmet <> 0 OR c.status <> 'waiting')
    RETURNING c.id, c.dataset_id, c.key, c.version, c.status AS new_status, o.status AS old_status
  )
  INSERT INTO dataflow.event (dataset_id, chunk_id, key, version, from_status, to_status, actor, detail)
  SELECT m.dataset_id, m.id, m.key, m.version, m.old_status, m.new_status, dataflow._actor(),
         jsonb_build_object('reason', 'job ' || j.name || ' dropped: a source now')
    FROM moved m WHERE m.old_status <> m.new_status;
  UPDATE dataflow.chunk c SET unmet = 0 WHERE c.dataset_id = j.output_id AND c.unmet <> 0;
  DELETE FROM dataflow.job_input WHERE job_id = j.id;
  DELETE FROM dataflow.job WHERE id = j.id;
  PERFORM dataflow._rerank();
END $$;
COMMENT ON FUNCTION dataflow.drop_job(text) IS
  'Drop a job with no running lease; its output chunks and run history stay';

CREATE FUNCTION dataflow.pause_job(job text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE j dataflow.job := dataflow._job(job);
BEGIN
  UPDATE dataflow.job SET paused = true WHERE id = j.id;
  INSERT INTO dataflow.event (to_status, actor, detail)
  VALUES ('paused', dataflow._actor(), jsonb_build_object('job', j.name, 'was_paused', j.paused));
END $$;
COMMENT ON FUNCTION dataflow.pause_job(text) IS
  'Stop leasing a job''s chunks; running leases finish normally';

CREATE FUNCTION dataflow.resume_job(job text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE j dataflow.job := dataflow._job(job);
BEGIN
  UPDATE dataflow.job SET paused = false WHERE id = j.id;
  INSERT INTO dataflow.event (to_status, actor, detail)
  VALUES ('resumed', dataflow._actor(), jsonb_build_object('job', j.name, 'was_paused', j.paused));
  IF j.dispatch <> 'pull' THEN
    PERFORM dataflow._wake();   -- the dispatcher picks the job up at once, not after a naptime
  END IF;
END $$;
COMMENT ON FUNCTION dataflow.resume_job(text) IS 'Lease a paused job''s chunks again';

-- ==== src/sql/30_graph.sql
-- Readiness propagation and the resubmit machinery.
--
-- Every chunk keeps `unmet`, the number of its inputs that are not available
-- at the level it needs. When an input's level changes, only its direct
-- consumers (the dep edges from it, and `latest` waiters of its dataset) are
-- touched: O(fan-out), never a scan. A waiting consumer whose unmet reaches 0
-- becomes queued; a queued one whose unmet rises goes back to waiting.

-- The generic plan cannot know how many inputs p_inputs holds, so it is costed for
-- ten: joins are disabled here so that it stays a walk of dep and chunk by index,
-- O(fan-out), rather than a hash join over a scan of chunk (measured: 2.5 ms per
-- complete() at 10k chunks, growing with the table). Sequential scans are off too:
-- the plan is made once per session, often while latest_wait is empty, and must not
-- become a scan of it on every completion once it has rows.
CREATE FUNCTION dataflow._propagate(p_inputs bigint[], p_dataset integer, p_old integer, p_new integer,
                                    p_actor text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET enable_hashjoin = off SET enable_mergejoin = off
SET enable_seqscan = off SET jit = off SET enable_bitmapscan = off AS $$
DECLARE inp bigint;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    PERFORM dataflow._read_committed();   -- raises (00_schema.sql)
  END IF;
  -- p_inputs: chunks of dataset p_dataset whose level moved from p_old to p_new
  -- (complete_many passes a whole batch; everyone else one chunk).
  IF p_old = p_new THEN
    RETURN;
  END IF;
  -- expect() computes latest-waits under the same lock, so neither side misses the other.
  -- (Decided on the job graph, not on visible latest_wait rows: an expect() in flight has
  -- uncommitted ones, and must be waited for, or its consumers would wait forever.)
  IF p_new > p_old AND EXISTS (SELECT FROM dataflow.job_input ji
                                WHERE ji.dataset_id = p_dataset AND ji.mapping = 'latest') THEN
    PERFORM pg_advisory_xact_lock(7406, p_dataset);
  END IF;
  IF p_new > p_old AND EXISTS (SELECT FROM dataflow.job_input ji
                                WHERE ji.dataset_id = p_dataset AND ji.mapping = 'incremental') THEN
    FOREACH inp IN ARRAY p_inputs LOOP
      PERFORM dataflow._incremental_arrived(inp, p_dataset, p_old, p_new);
    END LOOP;
  END IF;
  WITH lw AS (
    DELETE FROM dataflow.latest_wait w
     WHERE p_new > p_old AND w.dataset_id = p_dataset AND w.need <= p_new
    RETURNING w.consumer, NULL::bigint AS input, 1 AS delta
  ), dd AS (
    SELECT d.consumer, d.input, (p_new >= d.need)::integer - (p_old >= d.need)::integer AS delta
      FROM dataflow.dep d
     WHERE d.input = ANY (p_inputs)
  ), delta AS (
    SELECT x.consumer, max(x.input) AS input, sum(x.delta)::integer AS delta
      FROM (SELECT * FROM dd UNION ALL SELECT * FROM lw) x
     GROUP BY x.consumer
    HAVING sum(x.delta) <> 0
  ), locked AS (
    -- (rank, id): consumers of one input may be in datasets of different ranks
    SELECT c.id, c.status, c.unmet, delta.delta, delta.input
      FROM dataflow.chunk c JOIN delta ON c.id = delta.consumer
      JOIN dataflow.dataset cd ON cd.id = c.dataset_id
     ORDER BY cd.rank, c.id
       FOR UPDATE OF c
  ), upd AS (
    UPDATE dataflow.chunk c
       SET unmet = l.unmet - l.delta,
           status = CASE WHEN l.status = 'waiting' AND l.unmet - l.delta = 0 THEN 'queued'
                         WHEN l.status = 'queued' AND l.unmet - l.delta > 0 THEN 'waiting'
                         ELSE l.status END,
           not_before = CASE WHEN l.status = 'waiting' AND l.unmet - l.delta = 0 THEN now()
                             ELSE c.not_before END,
           updated_at = now()
      FROM locked l
     WHERE c.id = l.id
    RETURNING c.id, c.dataset_id, c.key, c.version, l.status AS old_status, c.status AS new_status, l.input
  )
  INSERT INTO dataflow.event (dataset_id, chunk_id, key, version, from_status, to_status, actor, detail)
  SELECT u.dataset_id, u.id, u.key, u.version, u.old_status, u.new_status, p_actor,
         jsonb_build_object('reason', CASE WHEN p_new > p_old THEN 'inputs available' ELSE 'input unavailable' END,
                            'input', coalesce(u.input, p_inputs[1]))
    FROM upd u
   WHERE u.old_status <> u.new_status;
END $$;

-- Reset chunks for re-production: the roots, and with p_cascade everything
-- downstream of them. Reset chunks get version+1, attempts 0, their live run
-- superseded, and go to queued (all inputs available) or waiting. Chunks that
-- were only waiting/queued downstream keep their version; without cascade the
-- direct consumers only have their unmet recounted. Returns what it touched
-- (or, with p_dry_run, what it would touch) in dependency order.
--
-- Lock order (docs/internals.md): the set is locked rank by rank, lowest first,
-- and the dep edges out of a rank are read only once its chunks are locked. A
-- concurrent expect() share-locks an input before it adds an edge from it, so an
-- edge is either committed before we read it (a fresh snapshot after the lock
-- wait sees it) or cannot be added until we commit. Walking first and locking
-- after, as this did before, missed such an edge and left its consumer queued
-- on an unavailable input.
CREATE FUNCTION dataflow._resubmit(p_roots bigint[], p_cascade boolean, p_dry_run boolean,
                                   p_actor text, p_reason text, p_root_old_status text DEFAULT NULL)
RETURNS TABLE(chunk_id bigint, depth integer, old_status text, new_status text, version integer,
              dataset text, key text, ord bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
-- The work table has no statistics; the planner took it for 690 rows and hash-joined
-- a scan of all of chunk in five statements (measured: 12,100 buffers and 83 ms for a
-- one-chunk resubmit with 120,000 chunks). Without scans and hash or merge joins every
-- statement probes chunk, dep and run by index for the touched chunks only, and the
-- plans stay good for every call of the transaction, one chunk or a cascade.
SET enable_seqscan = off SET jit = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE batch bigint[];
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    PERFORM dataflow._read_committed();   -- raises (00_schema.sql)
  END IF;
  -- One work table per transaction, emptied for each call: an UPDATE that resubmits
  -- thousands of chunks calls this once per chunk (the row trigger), and a table
  -- created and dropped per call held its locks until commit (out of shared memory
  -- after ~1,500 chunks). Truncating a table created in this transaction is in place.
  -- Never one the caller made (dataflow._own_work_table raises on a planted one).
  IF NOT dataflow._own_work_table('_df_touch') THEN
    CREATE TEMP TABLE pg_temp._df_touch (
      id bigint PRIMARY KEY, depth integer NOT NULL, rank integer NOT NULL, locked boolean NOT NULL DEFAULT false,
      reset boolean NOT NULL DEFAULT false,
      old_status text, new_status text, old_version integer, new_version integer, unmet integer,
      has_job boolean) ON COMMIT DROP;
  ELSE
    TRUNCATE pg_temp._df_touch;
  END IF;

  INSERT INTO pg_temp._df_touch (id, depth, rank)
  SELECT c.id, 0, cd.rank
    FROM dataflow.chunk c JOIN dataflow.dataset cd ON cd.id = c.dataset_id
   WHERE c.id = ANY (p_roots);

  LOOP
    SELECT array_agg(t.id) INTO batch FROM pg_temp._df_touch t
     WHERE NOT t.locked AND t.rank = (SELECT min(u.rank) FROM pg_temp._df_touch u WHERE NOT u.locked);
    EXIT WHEN batch IS NULL;
    PERFORM 1 FROM dataflow.chunk c WHERE c.id = ANY (batch) ORDER BY c.id FOR UPDATE OF c;
    -- Every predecessor of these chunks has a lower rank and was expanded already, so
    -- their depth is final here.
    INSERT INTO pg_temp._df_touch AS x (id, depth, rank)
    SELECT d.consumer, min(t.depth) + 1, min(cd.rank)
      FROM pg_temp._df_touch t
      JOIN dataflow.dep d ON d.input = t.id
      JOIN dataflow.chunk c ON c.id = d.consumer
      JOIN dataflow.dataset cd ON cd.id = c.dataset_id
     WHERE t.id = ANY (batch) AND (p_cascade OR t.depth = 0)
     GROUP BY d.consumer
    ON CONFLICT (id) DO UPDATE SET depth = least(x.depth, excluded.depth);
    UPDATE pg_temp._df_touch t SET locked = true WHERE t.id = ANY (batch);
  END LOOP;

  UPDATE pg_temp._df_touch t
     SET old_status = CASE WHEN c.status = 'resubmit' THEN coalesce(p_root_old_status, 'resubmit')
                           ELSE c.status END,
         old_version = c.version,
         has_job = EXISTS (SELECT FROM dataflow.job j WHERE j.output_id = c.dataset_id)
    FROM dataflow.chunk c
   WHERE c.id = t.id;
  UPDATE pg_temp._df_touch t
     SET reset = t.depth = 0 OR (p_cascade AND t.old_status NOT IN ('waiting', 'queued'));

  -- Unmet after the reset: inputs being reset count as unavailable.
  UPDATE pg_temp._df_touch t
     SET unmet = (SELECT count(*) FROM dataflow.dep d JOIN dataflow.chunk i ON i.id = d.input
                   WHERE d.consumer = t.id
                     AND (dataflow._level(i.status) < d.need
                          OR EXISTS (SELECT FROM pg_temp._df_touch r WHERE r.id = d.input AND r.reset)))
               + (SELECT count(*) FROM dataflow.latest_wait lw WHERE lw.consumer = t.id);
  UPDATE pg_temp._df_touch t
     SET new_status = CASE WHEN t.reset OR t.old_status IN ('waiting', 'queued', 'resubmit') THEN
                             CASE WHEN t.has_job AND t.unmet = 0 THEN 'queued' ELSE 'waiting' END
                           ELSE t.old_status END,
         new_version = t.old_version + CASE WHEN t.reset THEN 1 ELSE 0 END;

  IF NOT p_dry_run THEN
    -- finished_at stays NULL: the run's process may still be reading its inputs, and it
    -- holds them against re-production until it ends (complete, fail) or reap() expires
    -- its lease (_claim, docs/internals.md "Safe").
    UPDATE dataflow.run r
       SET status = 'superseded',
           error = 'superseded: ' || p_reason
                   || CASE WHEN p_reason LIKE '% by %' THEN '' ELSE ' by ' || p_actor END
      FROM pg_temp._df_touch t
     WHERE t.reset AND r.chunk_id = t.id AND r.status = 'running';

    UPDATE dataflow.chunk c
       SET status = t.new_status,
           version = t.new_version,
           unmet = t.unmet,
           attempts = CASE WHEN t.reset THEN 0 ELSE c.attempts END,
           not_before = CASE WHEN t.new_status = 'queued' AND t.old_status <> 'queued' THEN now()
                             ELSE c.not_before END,
           error = CASE WHEN t.reset THEN NULL ELSE c.error END,
           validation = CASE WHEN t.reset THEN NULL ELSE c.validation END,
           available_at = CASE WHEN t.reset THEN NULL ELSE c.available_at END,
           location = CASE WHEN t.reset THEN NULL ELSE c.location END,
           row_count = CASE WHEN t.reset THEN NULL ELSE c.row_count END,
           checksum = CASE WHEN t.reset THEN NULL ELSE c.checksum END,
           updated_at = now()
      FROM pg_temp._df_touch t
     WHERE c.id = t.id;

    INSERT INTO dataflow.event (dataset_id, chunk_id, key, run_id, version, from_status, to_status, actor, detail)
    SELECT c.dataset_id, c.id, c.key, c.run_id, t.new_version, t.old_status, t.new_status, p_actor,
           jsonb_build_object('reason', CASE WHEN t.depth = 0 THEN p_reason
                                             WHEN t.reset THEN 'upstream ' || p_reason
                                             ELSE 'input ' || p_reason END,
                              'depth', t.depth, 'old_version', t.old_version)
      FROM pg_temp._df_touch t JOIN dataflow.chunk c ON c.id = t.id
     WHERE t.old_status IS DISTINCT FROM t.new_status OR t.old_version <> t.new_version
     ORDER BY t.depth, c.id;
  END IF;

  -- Names and keys read here, after the locks: a caller's own statement snapshot predates
  -- them and would miss a consumer that a concurrent expect() committed meanwhile.
  RETURN QUERY
    SELECT t.id, t.depth, t.old_status, t.new_status, t.new_version, cd.name, c.key, c.ord
      FROM pg_temp._df_touch t JOIN dataflow.chunk c ON c.id = t.id JOIN dataflow.dataset cd ON cd.id = c.dataset_id
     ORDER BY t.depth, t.id;
END $$;

-- Status written directly: UPDATE dataflow.chunk SET status = 'resubmit' (or
-- 'skipped') is the operator's one-line restart. The row trigger runs after
-- the statement's row update, so it may rewrite the same row.
CREATE FUNCTION dataflow._chunk_status_written() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE cur text;
BEGIN
  SELECT status INTO cur FROM dataflow.chunk WHERE id = NEW.id;
  IF cur = 'resubmit' THEN
    PERFORM dataflow._resubmit(ARRAY[NEW.id], true, false, dataflow._actor(), 'resubmit', OLD.status);
  ELSIF cur = 'skipped' AND NEW.status = 'skipped' THEN
    PERFORM dataflow._skipped(NEW.id, OLD.status, coalesce(NEW.info ->> 'skip_reason', 'skipped by UPDATE'));
  END IF;
  RETURN NULL;
END $$;

-- ==== src/sql/35_expect.sql
-- expect(): create the expected chunks of a key range and, walking the job
-- graph upstream, every input chunk they need (placeholders for sources).
--
-- Set-based and linear in the number of chunks it touches: the wanted chunks
-- and the edges between them are built in two temp tables, one dataset at a
-- time in topological order (a dataset after all of its consumers), so every
-- join is between tables whose size the planner knows; dataflow.chunk is only
-- probed by its (dataset_id, key) key. A million-chunk backfill is a handful
-- of statements.

CREATE FUNCTION dataflow.expect(dataset text, from_key text, to_key text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d dataflow.dataset;
  n_created bigint;
  actor text := dataflow._actor();
  lat integer;
  bf integer;
  step record;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    PERFORM dataflow._read_committed();   -- raises (00_schema.sql)
  END IF;
  d := dataflow._dataset_row(dataset);
  IF from_key IS NULL THEN
    RAISE EXCEPTION 'from_key must not be NULL' USING ERRCODE = '22004';
  END IF;
  to_key := coalesce(to_key, from_key);
  IF EXISTS (SELECT FROM dataflow.job j JOIN dataflow.job_input ji ON ji.job_id = j.id
              WHERE j.output_id = d.id AND ji.mapping = 'incremental') THEN
    RAISE EXCEPTION 'dataset "%" is made of incremental batches; they cannot be expected', d.name
      USING ERRCODE = '55000', HINT = 'lease() cuts the next batch from the input chunks that arrived.';
  END IF;

  -- Work tables of this call; one the caller planted is refused, never dropped or used.
  IF dataflow._own_work_table('_df_want') THEN
    DROP TABLE pg_temp._df_want;
  END IF;
  IF dataflow._own_work_table('_df_edge') THEN
    DROP TABLE pg_temp._df_edge;
  END IF;
  -- existing_id/level: the chunk as found (and share-locked) before inserting;
  -- chunk_id: the chunk this call created; status: 'existing', or the new chunk's status.
  CREATE TEMP TABLE pg_temp._df_want (
    dataset_id integer NOT NULL, key text NOT NULL, ord bigint,
    existing_id bigint, existing_level integer, chunk_id bigint, status text, unmet integer,
    PRIMARY KEY (dataset_id, key)
  ) ON COMMIT DROP;
  CREATE TEMP TABLE pg_temp._df_edge (
    c_ds integer NOT NULL, c_key text NOT NULL, i_ds integer NOT NULL, i_key text NOT NULL, need smallint NOT NULL
  ) ON COMMIT DROP;

  INSERT INTO pg_temp._df_want (dataset_id, key, ord)
  SELECT d.id, r.key, r.ord FROM dataflow._key_range(d.key_kind, from_key, to_key, 10000000) r;

  -- Walk upstream one (job, input) at a time; a dataset comes after every consumer on the way
  -- (longest distance from the requested dataset), so its wanted keys are complete when expanded.
  FOR step IN
    WITH RECURSIVE up(ds, depth) AS (
      SELECT d.id, 0
      UNION ALL
      SELECT ji.dataset_id, up.depth + 1
        FROM up JOIN dataflow.job j ON j.output_id = up.ds
        JOIN dataflow.job_input ji ON ji.job_id = j.id AND ji.mapping IN ('same', 'window', 'rollup')
       WHERE up.depth < 100
    )
    SELECT j.output_id AS out_ds, ji.dataset_id AS in_ds, ji.mapping, ji.lo, ji.hi, ji.need,
           ind.key_kind AS in_kind
      FROM (SELECT up.ds, max(up.depth) AS depth FROM up GROUP BY up.ds) o
      JOIN dataflow.job j ON j.output_id = o.ds
      JOIN dataflow.job_input ji ON ji.job_id = j.id AND ji.mapping IN ('same', 'window', 'rollup')
      JOIN dataflow.dataset ind ON ind.id = ji.dataset_id
     ORDER BY o.depth, j.output_id, ji.dataset_id
  LOOP
    BEGIN
      INSERT INTO pg_temp._df_edge (c_ds, c_key, i_ds, i_key, need)
      SELECT w.dataset_id, w.key, step.in_ds, x.key, step.need
        FROM pg_temp._df_want w
       CROSS JOIN LATERAL dataflow._input_keys(step.mapping, step.in_kind, step.lo, step.hi, w.key, w.ord) x
       WHERE w.dataset_id = step.out_ds;
    EXCEPTION WHEN numeric_value_out_of_range THEN
      RAISE EXCEPTION 'the % input of dataset "%" needs keys outside the range of % keys',
                      step.mapping, (SELECT ds.name FROM dataflow.dataset ds WHERE ds.id = step.out_ds),
                      step.in_kind
        USING ERRCODE = '22003',
              DETAIL = format('Wanted keys of "%s" run from %s to %s; the mapping reads offsets %s..%s.',
                              (SELECT ds.name FROM dataflow.dataset ds WHERE ds.id = step.out_ds),
                              (SELECT w.key FROM pg_temp._df_want w WHERE w.dataset_id = step.out_ds ORDER BY w.ord LIMIT 1),
                              (SELECT w.key FROM pg_temp._df_want w WHERE w.dataset_id = step.out_ds ORDER BY w.ord DESC LIMIT 1),
                              coalesce(step.lo, 0), coalesce(step.hi, 0)),
              HINT = 'Expect a range further from the ends of the key range.';
    END;
    INSERT INTO pg_temp._df_want (dataset_id, key, ord)
    SELECT DISTINCT step.in_ds, e.i_key, dataflow._key_ord(step.in_kind, e.i_key)
      FROM pg_temp._df_edge e
     WHERE e.c_ds = step.out_ds AND e.i_ds = step.in_ds
    ON CONFLICT DO NOTHING;
  END LOOP;
  ANALYZE pg_temp._df_want;
  ANALYZE pg_temp._df_edge;

  -- `latest` inputs: propagation of those datasets takes this lock too. Taken before the
  -- chunk locks below: a completion of a latest input holds its chunk, then this lock, then
  -- the consumers it wakes; holding a consumer's share lock while waiting here deadlocked.
  FOR lat IN SELECT DISTINCT ji.dataset_id
               FROM dataflow.job_input ji JOIN dataflow.job j ON j.id = ji.job_id
              WHERE ji.mapping = 'latest' AND j.output_id IN (SELECT DISTINCT w.dataset_id FROM pg_temp._df_want w)
              ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock(7406, lat);
  END LOOP;

  -- Find and share-lock the chunks that already exist, so an input completing or being
  -- resubmitted concurrently either finishes before we read its status or, after we
  -- commit, sees our dep edges (a resubmit reads edges only once it holds the input).
  -- Locked in (rank, id) order, the order of every chunk lock (docs/internals.md).
  UPDATE pg_temp._df_want w SET existing_id = c.id
    FROM dataflow.chunk c WHERE c.dataset_id = w.dataset_id AND c.key = w.key;
  UPDATE pg_temp._df_want w SET existing_level = dataflow._level(l.status), status = 'existing'
    FROM (SELECT c.id, c.status FROM dataflow.chunk c JOIN dataflow.dataset cd ON cd.id = c.dataset_id
           WHERE c.id = ANY (ARRAY(SELECT x.existing_id FROM pg_temp._df_want x WHERE x.existing_id IS NOT NULL))
           ORDER BY cd.rank, c.id FOR SHARE OF c) l
   WHERE w.existing_id = l.id;
  INSERT INTO dataflow.backfill (dataset_id, from_key, to_key, actor)
  VALUES (d.id, from_key, to_key, actor) RETURNING id INTO bf;

  -- Unmet inputs of each chunk to create: its edges to inputs not available at the level needed,
  -- plus `latest` inputs of its job that have no available chunk yet.
  UPDATE pg_temp._df_want w SET unmet = coalesce(u.n, 0)
    FROM (SELECT e.c_ds, e.c_key, count(*) AS n
            FROM pg_temp._df_edge e
            JOIN pg_temp._df_want iw ON iw.dataset_id = e.i_ds AND iw.key = e.i_key
           WHERE coalesce(iw.existing_level, 0) < e.need
           GROUP BY e.c_ds, e.c_key) u
   WHERE u.c_ds = w.dataset_id AND u.c_key = w.key AND w.existing_id IS NULL;
  UPDATE pg_temp._df_want w SET unmet = coalesce(w.unmet, 0) + l.n
    FROM (SELECT j.output_id AS ds, count(*) AS n
            FROM dataflow.job_input jl JOIN dataflow.job j ON j.id = jl.job_id
           WHERE jl.mapping = 'latest'
             AND NOT EXISTS (SELECT FROM dataflow.chunk lc
                              WHERE lc.dataset_id = jl.dataset_id AND dataflow._level(lc.status) >= jl.need)
           GROUP BY j.output_id) l
   WHERE l.ds = w.dataset_id AND w.existing_id IS NULL;

  WITH ins AS (
    INSERT INTO dataflow.chunk (dataset_id, key, ord, status, unmet, not_before, backfill_id)
    SELECT w.dataset_id, w.key, w.ord,
           CASE WHEN j.id IS NOT NULL AND coalesce(w.unmet, 0) = 0 THEN 'queued' ELSE 'waiting' END,
           coalesce(w.unmet, 0), now(), bf
      FROM pg_temp._df_want w
      LEFT JOIN dataflow.job j ON j.output_id = w.dataset_id
     WHERE w.existing_id IS NULL
     ORDER BY w.dataset_id, w.ord, w.key
    ON CONFLICT ON CONSTRAINT chunk_dataset_key DO NOTHING
    RETURNING id, dataset_id, key, status
  )
  UPDATE pg_temp._df_want w SET chunk_id = ins.id, status = ins.status
    FROM ins WHERE w.dataset_id = ins.dataset_id AND w.key = ins.key;
  GET DIAGNOSTICS n_created = ROW_COUNT;

  IF n_created = 0 THEN
    DELETE FROM dataflow.backfill WHERE id = bf;
    RETURN 0;
  END IF;
  UPDATE dataflow.backfill SET created = n_created WHERE id = bf;
  -- A large insert leaves the planner's statistics of dataflow.chunk stale for whoever plans
  -- next (lease, propagation); sample now, own uncommitted rows included.
  IF n_created >= 1000 AND n_created > 0.1 * greatest((SELECT c.reltuples FROM pg_class c
                                                       WHERE c.oid = 'dataflow.chunk'::regclass), 0) THEN
    ANALYZE dataflow.chunk;
  END IF;

  -- Chunks a concurrent register() (or expect()) inserted while this call ran: neither
  -- existing when we looked nor created by us. Find them now.
  UPDATE pg_temp._df_want w SET existing_id = c.id
    FROM dataflow.chunk c
   WHERE w.chunk_id IS NULL AND w.status IS NULL AND c.dataset_id = w.dataset_id AND c.key = w.key;

  INSERT INTO dataflow.dep (input, consumer, need)
  SELECT coalesce(iw.chunk_id, iw.existing_id), cw.chunk_id, e.need
    FROM pg_temp._df_edge e
    JOIN pg_temp._df_want cw ON cw.dataset_id = e.c_ds AND cw.key = e.c_key
    JOIN pg_temp._df_want iw ON iw.dataset_id = e.i_ds AND iw.key = e.i_key
   WHERE cw.chunk_id IS NOT NULL
  ON CONFLICT DO NOTHING;

  -- The same for the new edges (lease's lineage insert joins dep by consumer) and queue rows.
  IF n_created >= 1000 AND n_created > 0.1 * greatest((SELECT c.reltuples FROM pg_class c
                                                       WHERE c.oid = 'dataflow.dep'::regclass), 0) THEN
    ANALYZE dataflow.dep;
    ANALYZE dataflow.queue;
  END IF;

  INSERT INTO dataflow.latest_wait (dataset_id, consumer, need)
  SELECT jl.dataset_id, w.chunk_id, jl.need
    FROM pg_temp._df_want w
    JOIN dataflow.job j ON j.output_id = w.dataset_id
    JOIN dataflow.job_input jl ON jl.job_id = j.id AND jl.mapping = 'latest'
   WHERE w.chunk_id IS NOT NULL
     AND NOT EXISTS (SELECT FROM dataflow.chunk lc
                      WHERE lc.dataset_id = jl.dataset_id AND dataflow._level(lc.status) >= jl.need);

  -- Those concurrently inserted inputs were invisible to the counts above, and their
  -- propagation could not see our dep edges: lock them and recount their new consumers,
  -- or those would wait forever.
  IF EXISTS (SELECT FROM pg_temp._df_want w WHERE w.chunk_id IS NULL AND w.status IS NULL) THEN
    PERFORM 1 FROM dataflow.chunk c JOIN dataflow.dataset cd ON cd.id = c.dataset_id
     WHERE c.id = ANY (ARRAY(SELECT w.existing_id FROM pg_temp._df_want w
                              WHERE w.chunk_id IS NULL AND w.status IS NULL))
     ORDER BY cd.rank, c.id FOR SHARE OF c;
    WITH cons AS (
      SELECT DISTINCT dp.consumer
        FROM pg_temp._df_want w
        JOIN dataflow.dep dp ON dp.input = w.existing_id
       WHERE w.chunk_id IS NULL AND w.status IS NULL
    ), cnt AS (
      SELECT cons.consumer,
             (SELECT count(*) FROM dataflow.dep dp JOIN dataflow.chunk i ON i.id = dp.input
               WHERE dp.consumer = cons.consumer AND dataflow._level(i.status) < dp.need)
           + (SELECT count(*) FROM dataflow.latest_wait lw WHERE lw.consumer = cons.consumer) AS n
        FROM cons JOIN pg_temp._df_want nw ON nw.chunk_id = cons.consumer
    ), upd AS (
      UPDATE dataflow.chunk c
         SET unmet = cnt.n, status = CASE WHEN cnt.n = 0 THEN 'queued' ELSE 'waiting' END
        FROM cnt WHERE c.id = cnt.consumer AND c.unmet <> cnt.n
      RETURNING c.id, c.status
    )
    UPDATE pg_temp._df_want w SET status = upd.status FROM upd WHERE w.chunk_id = upd.id;
  END IF;

  INSERT INTO dataflow.event (dataset_id, chunk_id, key, version, from_status, to_status, actor, detail)
  SELECT w.dataset_id, w.chunk_id, w.key, 1, NULL, w.status, actor,
         jsonb_build_object('reason', 'expect', 'backfill', bf)
    FROM pg_temp._df_want w
   WHERE w.chunk_id IS NOT NULL;

  RETURN n_created;
END $$;
COMMENT ON FUNCTION dataflow.expect(text, text, text) IS
  'Backfill: create the expected chunks of dataset from from_key to to_key (inclusive) and every '
  'upstream chunk they need; returns how many chunks were created (existing ones are left alone)';

-- ==== src/sql/40_work.sql
-- Operator and producer actions on chunks: register, validate, skip, cancel, resubmit.

-- Find a chunk by dataset name and key (canonicalized); locks it when asked.
CREATE FUNCTION dataflow._chunk(dataset text, key text, lock boolean DEFAULT false) RETURNS dataflow.chunk
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE d dataflow.dataset; c dataflow.chunk; k text;
BEGIN
  d := dataflow._dataset_row(dataset);
  IF key IS NULL THEN
    RAISE EXCEPTION 'key must not be NULL' USING ERRCODE = '22004';
  END IF;
  k := dataflow._key_canon(d.key_kind, key);
  IF lock THEN
    SELECT * INTO c FROM dataflow.chunk ch WHERE ch.dataset_id = d.id AND ch.key = k FOR UPDATE;
  ELSE
    SELECT * INTO c FROM dataflow.chunk ch WHERE ch.dataset_id = d.id AND ch.key = k;
  END IF;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'dataset "%" has no chunk "%"', d.name, k
      USING ERRCODE = '42704', HINT = 'Create expected chunks with dataflow.expect(dataset, from_key, to_key).';
  END IF;
  RETURN c;
END $$;

CREATE FUNCTION dataflow.register(dataset text, key text, location text DEFAULT NULL,
                                  row_count bigint DEFAULT NULL, checksum text DEFAULT NULL,
                                  info jsonb DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off AS $$
DECLARE
  d dataflow.dataset; k text; c dataflow.chunk; producer text; actor text := dataflow._actor();
  old_status text;
BEGIN
  d := dataflow._dataset_row(dataset);
  IF key IS NULL THEN
    RAISE EXCEPTION 'key must not be NULL' USING ERRCODE = '22004';
  END IF;
  k := dataflow._key_canon(d.key_kind, key);
  SELECT j.name INTO producer FROM dataflow.job j WHERE j.output_id = d.id;
  IF FOUND THEN
    RAISE EXCEPTION 'dataset "%" is produced by job "%"', d.name, producer
      USING ERRCODE = '55000', HINT = 'register() records source chunks; a job''s worker calls complete().';
  END IF;
  IF row_count < 0 THEN
    RAISE EXCEPTION 'row_count must be >= 0' USING ERRCODE = '22023';
  END IF;
  IF info IS NOT NULL AND jsonb_typeof(info) <> 'object' THEN
    RAISE EXCEPTION 'info must be a JSON object' USING ERRCODE = '22023';
  END IF;
  INSERT INTO dataflow.chunk (dataset_id, key, ord, status, location, row_count, checksum, info, available_at)
  VALUES (d.id, k, dataflow._key_ord(d.key_kind, k), 'ready',
          coalesce(register.location, dataflow._location(d.location, d.name, k, 1)), row_count, checksum,
          coalesce(info, '{}'), now())
  ON CONFLICT ON CONSTRAINT chunk_dataset_key DO NOTHING
  RETURNING * INTO c;
  IF FOUND THEN
    INSERT INTO dataflow.event (dataset_id, chunk_id, key, version, from_status, to_status, actor, detail)
    VALUES (d.id, c.id, k, 1, NULL, 'ready', actor, jsonb_build_object('reason', 'register'));
    PERFORM dataflow._propagate(ARRAY[c.id], d.id, 0, 1, actor);
    RETURN 1;
  END IF;

  SELECT * INTO c FROM dataflow.chunk ch WHERE ch.dataset_id = d.id AND ch.key = k FOR UPDATE;
  old_status := c.status;
  IF c.status <> 'waiting' THEN
    -- New content for a chunk that existed: a new version, and everything built on the old one re-runs.
    -- The cascade's events name who re-registered (reason 're-registered by <role>').
    PERFORM dataflow._resubmit(ARRAY[c.id], true, false, actor, 're-registered by ' || actor);
    SELECT * INTO c FROM dataflow.chunk ch WHERE ch.id = c.id;
  END IF;
  UPDATE dataflow.chunk ch
     SET status = 'ready',
         location = coalesce(register.location, dataflow._location(d.location, d.name, k, c.version)),
         row_count = register.row_count, checksum = register.checksum, info = coalesce(register.info, '{}'),
         error = NULL, available_at = now(), updated_at = now()
   WHERE ch.id = c.id;
  INSERT INTO dataflow.event (dataset_id, chunk_id, key, version, from_status, to_status, actor, detail)
  VALUES (d.id, c.id, k, c.version, c.status, 'ready', actor,
          jsonb_build_object('reason', 'register', 'previous_status', old_status));
  PERFORM dataflow._propagate(ARRAY[c.id], d.id, 0, 1, actor);
  RETURN c.version;
END $$;
COMMENT ON FUNCTION dataflow.register(text, text, text, bigint, text, jsonb) IS
  'Record an externally produced source chunk as ready (location defaults to the dataset template); '
  're-registering an existing chunk makes a new version and re-runs everything built on it; returns the version';

CREATE FUNCTION dataflow.validate(dataset text, key text, passed boolean, report jsonb DEFAULT '{}')
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off AS $$
DECLARE c dataflow.chunk; actor text := dataflow._actor(); new_status text;
BEGIN
  IF passed IS NULL THEN
    RAISE EXCEPTION 'passed must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF report IS NULL OR jsonb_typeof(report) <> 'object' THEN
    RAISE EXCEPTION 'report must be a JSON object'
      USING ERRCODE = CASE WHEN report IS NULL THEN '22004' ELSE '22023' END;
  END IF;
  c := dataflow._chunk(dataset, key, true);
  IF c.status NOT IN ('ready', 'validated', 'invalid') THEN
    RAISE EXCEPTION 'chunk %/% is %, not ready', dataset, c.key, c.status
      USING ERRCODE = '55000', HINT = 'Only produced (ready) chunks can be validated.';
  END IF;
  new_status := CASE WHEN passed THEN 'validated' ELSE 'invalid' END;
  UPDATE dataflow.chunk
     SET status = new_status, updated_at = now(),
         available_at = CASE WHEN passed THEN coalesce(available_at, now()) ELSE available_at END,
         validation = jsonb_build_object('passed', passed, 'report', report, 'at', now(),
                                         'by', actor, 'version', c.version)
   WHERE id = c.id;
  INSERT INTO dataflow.event (dataset_id, chunk_id, key, run_id, version, from_status, to_status, actor, detail)
  VALUES (c.dataset_id, c.id, c.key, c.run_id, c.version, c.status, new_status, actor,
          jsonb_build_object('reason', 'validate', 'report', report));
  PERFORM dataflow._propagate(ARRAY[c.id], c.dataset_id, dataflow._level(c.status), dataflow._level(new_status), actor);
  RETURN new_status;
END $$;
COMMENT ON FUNCTION dataflow.validate(text, text, boolean, jsonb) IS
  'Record a validation result for a ready chunk: validated (consumers that need validation may start) '
  'or invalid (consumers that have not started wait again); returns the new status';

-- The effects of a chunk's status having been written to 'skipped'.
CREATE FUNCTION dataflow._skipped(p_chunk bigint, p_old_status text, p_reason text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE c dataflow.chunk; actor text := dataflow._actor(); d text;
BEGIN
  SELECT * INTO c FROM dataflow.chunk WHERE id = p_chunk;
  IF p_old_status IN ('ready', 'validated') THEN
    SELECT name INTO d FROM dataflow.dataset WHERE id = c.dataset_id;
    RAISE EXCEPTION 'chunk %/% is %: it has data, it cannot be skipped', d, c.key, p_old_status
      USING ERRCODE = '55000', HINT = 'Resubmit it instead, or let it be.';
  END IF;
  IF p_old_status = 'running' THEN
    UPDATE dataflow.run SET status = 'cancelled', finished_at = now(), error = 'chunk skipped by ' || actor
     WHERE chunk_id = c.id AND status = 'running';
  END IF;
  UPDATE dataflow.chunk
     SET info = info || jsonb_build_object('skip_reason', p_reason), row_count = coalesce(row_count, 0),
         error = NULL, available_at = now(), updated_at = now()
   WHERE id = c.id;
  INSERT INTO dataflow.event (dataset_id, chunk_id, key, run_id, version, from_status, to_status, actor, detail)
  VALUES (c.dataset_id, c.id, c.key, c.run_id, c.version, p_old_status, 'skipped', actor,
          jsonb_build_object('reason', p_reason));
  PERFORM dataflow._propagate(ARRAY[c.id], c.dataset_id, dataflow._level(p_old_status), 2, actor);
END $$;

CREATE FUNCTION dataflow.skip(dataset text, key text, reason text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE d dataflow.dataset; k text; cid bigint;
BEGIN
  d := dataflow._dataset_row(dataset);
  IF key IS NULL OR reason IS NULL THEN
    RAISE EXCEPTION 'key and reason must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF btrim(reason) = '' THEN
    RAISE EXCEPTION 'a skip needs a reason' USING ERRCODE = '22023';
  END IF;
  k := dataflow._key_canon(d.key_kind, key);
  -- A key nobody expected yet can be declared empty too.
  INSERT INTO dataflow.chunk (dataset_id, key, ord, status)
  VALUES (d.id, k, dataflow._key_ord(d.key_kind, k), 'waiting')
  ON CONFLICT ON CONSTRAINT chunk_dataset_key DO NOTHING;
  SELECT c.id INTO cid FROM dataflow.chunk c WHERE c.dataset_id = d.id AND c.key = k FOR UPDATE;
  IF (SELECT status FROM dataflow.chunk c WHERE c.id = cid) = 'skipped' THEN
    RETURN;
  END IF;
  UPDATE dataflow.chunk c
     SET status = 'skipped', info = c.info || jsonb_build_object('skip_reason', left(reason, 1000))
   WHERE c.id = cid;
END $$;
COMMENT ON FUNCTION dataflow.skip(text, text, text) IS
  'Declare a chunk known-empty: it satisfies its consumers as empty; a running lease is cancelled';

CREATE FUNCTION dataflow.cancel(dataset text, key text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE c dataflow.chunk := dataflow._chunk(dataset, key, true); actor text := dataflow._actor();
BEGIN
  IF c.status NOT IN ('waiting', 'queued', 'running') THEN
    RAISE EXCEPTION 'chunk %/% is %: only waiting, queued or running chunks can be cancelled',
                    dataset, c.key, c.status
      USING ERRCODE = '55000';
  END IF;
  UPDATE dataflow.run SET status = 'cancelled', finished_at = now(), error = 'cancelled by ' || actor
   WHERE chunk_id = c.id AND status = 'running';
  UPDATE dataflow.chunk SET status = 'cancelled', updated_at = now() WHERE id = c.id;
  INSERT INTO dataflow.event (dataset_id, chunk_id, key, run_id, version, from_status, to_status, actor, detail)
  VALUES (c.dataset_id, c.id, c.key, c.run_id, c.version, c.status, 'cancelled', actor,
          jsonb_build_object('reason', 'cancel'));
END $$;
COMMENT ON FUNCTION dataflow.cancel(text, text) IS
  'Stop a chunk: its live lease (if any) is cancelled and it is not leased again until resubmitted';

-- What resubmit() touched: depth 0 are the chunks asked for, 1.. their downstream.
CREATE TYPE dataflow.resubmitted AS (
  dataset text, key text, old_status text, new_status text, version integer, depth integer);

CREATE FUNCTION dataflow.resubmit(dataset text, from_key text, to_key text DEFAULT NULL,
                                  cascade boolean DEFAULT true, dry_run boolean DEFAULT false)
RETURNS SETOF dataflow.resubmitted
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE d dataflow.dataset; k1 text; k2 text; roots bigint[];
BEGIN
  d := dataflow._dataset_row(resubmit.dataset);
  IF from_key IS NULL OR cascade IS NULL OR dry_run IS NULL THEN
    RAISE EXCEPTION 'from_key, cascade and dry_run must not be NULL' USING ERRCODE = '22004';
  END IF;
  k1 := dataflow._key_canon(d.key_kind, from_key);
  k2 := dataflow._key_canon(d.key_kind, coalesce(to_key, from_key));
  IF d.key_kind = 'text' THEN
    IF k1 <> k2 THEN
      RAISE EXCEPTION 'text keys have no ranges: give one key' USING ERRCODE = '22023';
    END IF;
    SELECT array_agg(c.id) INTO roots FROM dataflow.chunk c WHERE c.dataset_id = d.id AND c.key = k1;
  ELSE
    IF dataflow._key_ord(d.key_kind, k1) > dataflow._key_ord(d.key_kind, k2) THEN
      RAISE EXCEPTION 'range "%" .. "%" is backwards', k1, k2 USING ERRCODE = '22023';
    END IF;
    SELECT array_agg(c.id ORDER BY c.ord) INTO roots FROM dataflow.chunk c
     WHERE c.dataset_id = d.id
       AND c.ord BETWEEN dataflow._key_ord(d.key_kind, k1) AND dataflow._key_ord(d.key_kind, k2);
  END IF;
  IF roots IS NULL THEN
    RAISE EXCEPTION 'dataset "%" has no chunk between "%" and "%"', d.name, k1, k2 USING ERRCODE = '42704';
  END IF;
  RETURN QUERY
    SELECT r.dataset, r.key, r.old_status, r.new_status, r.version, r.depth
      FROM dataflow._resubmit(roots, cascade, dry_run, dataflow._actor(), 'resubmit') r
     ORDER BY r.depth, r.dataset, r.ord, r.key;
END $$;
COMMENT ON FUNCTION dataflow.resubmit(text, text, text, boolean, boolean) IS
  'Restart a chunk or a key range: new version, attempts reset, queued again; with cascade (default) '
  'everything downstream waits for it; dry_run lists what would change without changing anything';

-- ==== src/sql/45_lease.sql
-- The lease lifecycle: lease -> heartbeat... -> complete | fail; reap() expires
-- leases whose deadline passed. Every call that changes a run presents its
-- token, and only the live lease (status running, deadline not passed) counts.

-- Claim up to p_n queued chunks of a dataset in queue order, locked. The queue
-- row leads to the chunk; the chunk is what gets locked (every other writer
-- locks chunks first), and its status is rechecked once locked. The only good
-- plan walks queue_order in order and stops after p_n: sorts and bitmap scans
-- are disabled here because the cached generic plan must not depend on how
-- large the queue was when the statistics were last taken.
CREATE FUNCTION dataflow._claim(p_dataset integer, p_n integer) RETURNS bigint[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off
SET plan_cache_mode = force_generic_plan SET enable_sort = off SET enable_bitmapscan = off AS $$
DECLARE ids bigint[]; v_now timestamptz := clock_timestamp();
BEGIN
  -- The clock, not the start of the caller's transaction (docs/internals.md "Time"); a
  -- variable, so that it is an index bound of the generic plan.
  SELECT array_agg(q.id) INTO ids FROM (
    SELECT c.id
      FROM dataflow.queue qu JOIN dataflow.chunk c ON c.id = qu.chunk_id
     WHERE qu.dataset_id = p_dataset AND qu.not_before <= v_now AND c.status = 'queued'
       -- Safe: never re-produce a chunk while runs still read it: a running run, or one a
       -- cascading resubmit superseded whose process has not ended (finished_at NULL); a
       -- reader whose lease expired holds until reap() ends it, as a running one always
       -- did. Only a resubmitted chunk (version > 1) can have readers;
       -- the check is a per-row subplan (a LIMIT 1, not NOT EXISTS, which becomes an
       -- anti-join), so the scan stays an index probe in queue order.
       AND (c.version = 1
            OR (SELECT 1 FROM dataflow.run_input ri JOIN dataflow.run rr ON rr.id = ri.run_id
                 WHERE ri.chunk_id = c.id AND rr.finished_at IS NULL
                   AND rr.status IN ('running', 'superseded') LIMIT 1) IS NULL)
     ORDER BY qu.not_before, qu.chunk_id
     LIMIT p_n
       FOR UPDATE OF c SKIP LOCKED) q;
  RETURN ids;
END $$;

-- The params of an incremental job's run: {"batch": {number, keys, lowest_key,
-- highest_key}} over the incremental inputs the run reads. A function of its own,
-- so lease() sets up its aggregates only for incremental jobs.
CREATE FUNCTION dataflow._batch_params(p_run bigint, p_key text, p_from text[]) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN (SELECT jsonb_build_object('batch', jsonb_build_object(
                   'number', p_key::bigint,
                   'keys', coalesce(jsonb_agg(ic.key ORDER BY ic.ord, ic.key), '[]'::jsonb),
                   'lowest_key', (array_agg(ic.key ORDER BY ic.ord, ic.key))[1],
                   'highest_key', (array_agg(ic.key ORDER BY ic.ord DESC, ic.key DESC))[1]))
            FROM dataflow.run_input ri JOIN dataflow.chunk ic ON ic.id = ri.chunk_id
            JOIN dataflow.dataset ids ON ids.id = ic.dataset_id
           WHERE ri.run_id = p_run AND ids.name = ANY (p_from));
END $$;

CREATE FUNCTION dataflow.lease(job text, worker text, max_chunks integer DEFAULT 1,
                               lease_for interval DEFAULT NULL)
RETURNS SETOF dataflow.task
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off
-- index probes whatever the statistics said when this session made its plans (docs/internals.md, "Planner settings")
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_mergejoin = off SET enable_hashjoin = off
-- every statement below has a cheap index-probe generic plan; custom plans cost
-- ~1 ms of planning per statement per call (measured), more than executing them
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  ids bigint[];
  run_ids bigint[];
  has_latest boolean;
  j dataflow.job := dataflow._job(job);
  n integer := max_chunks;
  lf interval;
  ds dataflow.dataset;
  slots integer;
  incremental boolean;
  batch_from text[];
  latest bigint[];
  li record;
  lid bigint;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    PERFORM dataflow._read_committed();   -- raises (00_schema.sql)
  END IF;
  IF worker IS NULL OR max_chunks IS NULL THEN
    RAISE EXCEPTION 'worker and max_chunks must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF worker = '' OR length(worker) > 200 OR worker ~ '[[:cntrl:]]' THEN
    RAISE EXCEPTION 'worker must be a printable name of 1-200 characters' USING ERRCODE = '22023';
  END IF;
  IF max_chunks < 1 OR max_chunks > 1000 THEN
    RAISE EXCEPTION 'max_chunks must be between 1 and 1000, not %', max_chunks USING ERRCODE = '22023';
  END IF;
  lf := coalesce(lease_for, j.lease_for);
  IF lf <= interval '0' THEN
    RAISE EXCEPTION 'lease_for must be positive' USING ERRCODE = '22023';
  END IF;
  IF j.paused THEN
    RETURN;
  END IF;
  -- The output dataset, and the shape of the inputs (any incremental, any latest) as
  -- index probes: no aggregate to set up on every call.
  SELECT * INTO ds FROM dataflow.dataset WHERE id = j.output_id;
  SELECT EXISTS (SELECT FROM dataflow.job_input ji WHERE ji.job_id = j.id AND ji.mapping = 'incremental'),
         EXISTS (SELECT FROM dataflow.job_input ji WHERE ji.job_id = j.id AND ji.mapping = 'latest')
    INTO incremental, has_latest;
  IF incremental THEN
    SELECT array_agg(ids.name) INTO batch_from
      FROM dataflow.job_input ji JOIN dataflow.dataset ids ON ids.id = ji.dataset_id
     WHERE ji.job_id = j.id AND ji.mapping = 'incremental';
    PERFORM dataflow._cut_batch(j.id);
  END IF;
  -- Limits are counted from live leases. The advisory lock serializes the
  -- count-then-lease of limited jobs and pools; unlimited jobs take none.
  IF j.max_concurrency IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(7401, j.id);
    n := least(n, j.max_concurrency -
                  (SELECT count(*) FROM dataflow.run r WHERE r.job_id = j.id AND r.status = 'running')::integer);
  END IF;
  IF j.pool_id IS NOT NULL AND n > 0 THEN
    PERFORM pg_advisory_xact_lock(7402, j.pool_id);
    SELECT p.slots INTO slots FROM dataflow.pool p WHERE p.id = j.pool_id;
    n := least(n, slots -
                  (SELECT count(*) FROM dataflow.run r WHERE r.pool_id = j.pool_id AND r.status = 'running')::integer);
  END IF;
  IF n <= 0 THEN
    RETURN;
  END IF;
  -- Ready: the newest available chunk of each `latest` input, share-locked until commit
  -- so that a resubmit or invalidation of it cannot commit between this choice and the
  -- lineage below. Never waited for (NOWAIT): this call already holds the limit locks
  -- (7401, 7402, and 7406 from the batch cut), which others take after a chunk lock, and
  -- an operator's open transaction on the input must not stall every job of the pool.
  -- When that chunk is busy, or an input has no available chunk (its only one was
  -- resubmitted or invalidated after the consumers were queued), the job is held back
  -- for this call.
  IF has_latest THEN
    FOR li IN SELECT jl.dataset_id, jl.need FROM dataflow.job_input jl JOIN dataflow.dataset ld ON ld.id = jl.dataset_id
               WHERE jl.job_id = j.id AND jl.mapping = 'latest' ORDER BY ld.rank, jl.dataset_id LOOP
      lid := NULL;
      BEGIN
        SELECT x.id INTO lid FROM dataflow.chunk x
         WHERE x.dataset_id = li.dataset_id AND dataflow._level(x.status) >= li.need
         ORDER BY x.ord DESC NULLS LAST, x.available_at DESC
         LIMIT 1
           FOR SHARE NOWAIT;
      EXCEPTION WHEN lock_not_available THEN
        RETURN;
      END;
      IF lid IS NULL THEN
        RETURN;
      END IF;
      latest := latest || lid;
    END LOOP;
  END IF;

  -- Claim, then one small statement per table: each keeps a cheap generic plan
  -- (the single 6-CTE statement was re-planned on every call).
  ids := dataflow._claim(j.output_id, n);
  IF ids IS NULL THEN
    RETURN;
  END IF;
  -- run ids follow the claim (queue) order, whatever the rows' physical order
  WITH u AS (
    UPDATE dataflow.chunk c
       SET status = 'running', attempts = c.attempts + 1, run_id = r.run_id, updated_at = now()
      FROM (SELECT u.id, nextval('dataflow.run_id_seq') AS run_id
              FROM unnest(ids) WITH ORDINALITY AS u(id, o) ORDER BY u.o) r
     WHERE c.id = r.id
    RETURNING c.run_id)
  SELECT array_agg(u.run_id) INTO run_ids FROM u;
  INSERT INTO dataflow.run (id, job_id, pool_id, chunk_id, version, attempt, worker, status, deadline,
                            output_location)
  SELECT c.run_id, j.id, j.pool_id, c.id, c.version, c.attempts, worker, 'running', clock_timestamp() + lf,
         dataflow._location(ds.location, ds.name, c.key, c.version)
    FROM dataflow.chunk c WHERE c.id = ANY (ids);
  INSERT INTO dataflow.run_input (run_id, chunk_id, version)
  SELECT c.run_id, dp.input, ic.version
    FROM dataflow.chunk c JOIN dataflow.dep dp ON dp.consumer = c.id JOIN dataflow.chunk ic ON ic.id = dp.input
   WHERE c.id = ANY (ids);
  IF has_latest THEN
    INSERT INTO dataflow.run_input (run_id, chunk_id, version)
    SELECT c.run_id, lc.id, lc.version
      FROM dataflow.chunk c CROSS JOIN dataflow.chunk lc
     WHERE c.id = ANY (ids) AND lc.id = ANY (latest);
  END IF;
  INSERT INTO dataflow.event (dataset_id, chunk_id, key, run_id, version, from_status, to_status, actor)
  SELECT j.output_id, c.id, c.key, c.run_id, c.version, 'queued', 'running', worker
    FROM dataflow.chunk c WHERE c.id = ANY (ids);
  RETURN QUERY
  SELECT r.id, r.token, j.name, ds.name, c.key, c.version, c.attempts, r.output_location,
         coalesce((SELECT jsonb_agg(jsonb_build_object('dataset', ids2.name, 'key', ic.key, 'version', ri.version,
                                                       'location', ic.location, 'row_count', ic.row_count,
                                                       'checksum', ic.checksum)
                                    ORDER BY ids2.name, ic.ord, ic.key)
                     FROM dataflow.run_input ri JOIN dataflow.chunk ic ON ic.id = ri.chunk_id
                     JOIN dataflow.dataset ids2 ON ids2.id = ic.dataset_id
                    WHERE ri.run_id = r.id), '[]'::jsonb),
         CASE WHEN incremental THEN j.params || dataflow._batch_params(r.id, c.key, batch_from)
              ELSE j.params END,
         r.deadline
    FROM dataflow.chunk c JOIN dataflow.run r ON r.id = c.run_id
   -- both sides restricted by key arrays, so any join order probes an index: the
   -- generic plan made while run was empty must not walk all of run_pkey
   WHERE c.id = ANY (ids) AND r.id = ANY (run_ids)
   ORDER BY r.id;
END $$;
COMMENT ON FUNCTION dataflow.lease(text, text, integer, interval) IS
  'Lease up to max_chunks runnable chunks of a job for a worker: returns one task per chunk with its '
  'token, inputs (exact versions and locations), output location and deadline; empty when nothing is runnable';

-- The live run behind a token, its chunk locked; raises unless it is the live lease.
-- With p_held, a run that a cascading resubmit superseded while it worked is returned
-- too (status 'superseded', finished_at NULL): it still holds its inputs, and its
-- complete/fail/heartbeat end or extend that hold. Deadlines are compared with the
-- clock, never with now(): a complete() inside a load transaction that began before
-- the lease expired must not accept it.
CREATE FUNCTION dataflow._live_run(p_token uuid, p_held boolean DEFAULT false) RETURNS dataflow.run
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan AS $$
DECLARE r dataflow.run;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    PERFORM dataflow._read_committed();   -- raises (00_schema.sql)
  END IF;
  IF p_token IS NULL THEN
    RAISE EXCEPTION 'token must not be NULL' USING ERRCODE = '22004';
  END IF;
  -- Lock the chunk before the run, the order resubmit, cancel and skip take them in, so a
  -- worker's transaction (heartbeat ... complete) and an operator never deadlock.
  PERFORM 1 FROM dataflow.run rr JOIN dataflow.chunk c ON c.id = rr.chunk_id
   WHERE rr.token = p_token FOR UPDATE OF c;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no lease has this token' USING ERRCODE = '42704';
  END IF;
  -- The run is read, not locked: whoever ends a run holds its chunk's lock, which is
  -- ours now (reap locks the run first but skips a chunk it cannot lock at once), and
  -- this statement's fresh snapshot sees any change committed while we waited.
  -- Not locking it saves a WAL record per call; the caller's UPDATE locks it.
  SELECT * INTO r FROM dataflow.run WHERE token = p_token;
  IF r.status <> 'running' AND NOT (p_held AND r.status = 'superseded' AND r.finished_at IS NULL) THEN
    RAISE EXCEPTION 'lease of run % is no longer live: the run is %', r.id, r.status
      USING ERRCODE = '55000',
            DETAIL = coalesce('Run error: ' || left(r.error, 500), ''),
            HINT = 'Another attempt owns the chunk now; drop this result.';
  END IF;
  IF r.deadline < clock_timestamp() THEN
    RAISE EXCEPTION 'lease of run % expired at %', r.id, r.deadline
      USING ERRCODE = '55000',
            HINT = 'Heartbeat more often than the lease duration; the chunk will be retried.';
  END IF;
  RETURN r;
END $$;

CREATE FUNCTION dataflow.heartbeat(token uuid, extend_by interval DEFAULT NULL)
RETURNS timestamptz LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off
-- index probes whatever the statistics said when this session made its plans (docs/internals.md, "Planner settings")
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_mergejoin = off SET enable_hashjoin = off
SET plan_cache_mode = force_generic_plan AS $$
DECLARE r dataflow.run := dataflow._live_run(token, true); dl timestamptz;
BEGIN
  IF extend_by <= interval '0' THEN
    RAISE EXCEPTION 'extend_by must be positive' USING ERRCODE = '22023';
  END IF;
  UPDATE dataflow.run
     SET heartbeat_at = clock_timestamp(),
         deadline = clock_timestamp()
                    + coalesce(extend_by, (SELECT j.lease_for FROM dataflow.job j WHERE j.id = r.job_id))
   WHERE id = r.id
  RETURNING deadline INTO dl;
  IF r.status = 'superseded' THEN
    -- Still reading: it keeps holding its inputs while it heartbeats, but its result will
    -- not be used. SQLSTATE 01DF1 is what a worker looks for to stop early.
    RAISE WARNING 'run % was superseded: its result will not be used', r.id
      USING ERRCODE = '01DF1', DETAIL = coalesce(left(r.error, 500), ''),
            HINT = 'Stop early: fail() or complete() releases the inputs this run still holds.';
  END IF;
  RETURN dl;
END $$;
COMMENT ON FUNCTION dataflow.heartbeat(uuid, interval) IS
  'Keep a lease alive: moves its deadline to now + extend_by (default the job''s lease_for); returns it. '
  'A run superseded by a resubmit meanwhile keeps holding its inputs and gets a WARNING (SQLSTATE 01DF1): stop early';

CREATE FUNCTION dataflow.complete(token uuid, row_count bigint DEFAULT NULL, checksum text DEFAULT NULL,
                                  info jsonb DEFAULT NULL, location text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off
-- index probes whatever the statistics said when this session made its plans (docs/internals.md, "Planner settings")
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_mergejoin = off SET enable_hashjoin = off
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  r dataflow.run := dataflow._live_run(token, true);
  c dataflow.chunk;
  stale jsonb;
BEGIN
  IF row_count < 0 THEN
    RAISE EXCEPTION 'row_count must be >= 0' USING ERRCODE = '22023';
  END IF;
  IF info IS NOT NULL AND jsonb_typeof(info) <> 'object' THEN
    RAISE EXCEPTION 'info must be a JSON object' USING ERRCODE = '22023';
  END IF;
  IF r.status = 'superseded' THEN
    -- Superseded by a resubmit while it worked: the result is recorded, the run ends and
    -- with it its hold on its inputs; its chunk was already reset by the resubmit.
    UPDATE dataflow.run
       SET finished_at = clock_timestamp(), row_count = complete.row_count, checksum = complete.checksum,
           info = complete.info
     WHERE id = r.id AND finished_at IS NULL;
    RETURN 'superseded';
  END IF;
  SELECT * INTO c FROM dataflow.chunk WHERE id = r.chunk_id;   -- locked by _live_run

  -- Correct: every input must still be the version this run read (probed first; the
  -- details are gathered only for a stale run).
  IF EXISTS (SELECT FROM dataflow.run_input ri JOIN dataflow.chunk ic ON ic.id = ri.chunk_id
              WHERE ri.run_id = r.id AND (ic.version <> ri.version OR dataflow._level(ic.status) = 0)) THEN
    SELECT jsonb_agg(jsonb_build_object('chunk', ri.chunk_id, 'read_version', ri.version,
                                          'version', ic.version, 'status', ic.status))
      INTO stale
      FROM dataflow.run_input ri JOIN dataflow.chunk ic ON ic.id = ri.chunk_id
     WHERE ri.run_id = r.id AND (ic.version <> ri.version OR dataflow._level(ic.status) = 0);
  END IF;

  IF stale IS NOT NULL OR c.run_id <> r.id OR c.status <> 'running' THEN
    UPDATE dataflow.run
       SET status = 'superseded', finished_at = now(), row_count = complete.row_count,
           checksum = complete.checksum, info = complete.info,
           error = 'superseded: an input was re-produced while the run worked'
     WHERE id = r.id;
    IF c.run_id = r.id AND c.status = 'running' THEN
      UPDATE dataflow.chunk
         SET status = CASE WHEN unmet = 0 THEN 'queued' ELSE 'waiting' END,
             attempts = greatest(attempts - 1, 0), not_before = now(), updated_at = now()
       WHERE id = c.id;
      INSERT INTO dataflow.event (dataset_id, chunk_id, key, run_id, version, from_status, to_status, actor, detail)
      VALUES (c.dataset_id, c.id, c.key, r.id, c.version, 'running',
              CASE WHEN c.unmet = 0 THEN 'queued' ELSE 'waiting' END, r.worker,
              jsonb_build_object('reason', 'superseded', 'stale_inputs', stale));
    END IF;
    RETURN 'superseded';
  END IF;

  UPDATE dataflow.run
     SET status = 'succeeded', finished_at = now(), row_count = complete.row_count,
         checksum = complete.checksum, info = complete.info,
         output_location = coalesce(complete.location, output_location)
   WHERE id = r.id;
  UPDATE dataflow.chunk
     SET status = 'ready', row_count = complete.row_count, checksum = complete.checksum,
         info = coalesce(complete.info, '{}'), location = coalesce(complete.location, r.output_location),
         error = NULL, available_at = now(), updated_at = now()
   WHERE id = c.id;
  INSERT INTO dataflow.event (dataset_id, chunk_id, key, run_id, version, from_status, to_status, actor)
  VALUES (c.dataset_id, c.id, c.key, r.id, c.version, 'running', 'ready', r.worker);
  PERFORM dataflow._propagate(ARRAY[c.id], c.dataset_id, 0, 1, r.worker);
  RETURN 'succeeded';
END $$;
COMMENT ON FUNCTION dataflow.complete(uuid, bigint, text, jsonb, text) IS
  'Finish a live lease successfully: the chunk becomes ready at its version and its consumers may start; '
  'returns succeeded, or superseded when an input was re-produced meanwhile (the chunk is re-queued)';

-- Complete several live leases at once: what complete() does for each token in
-- turn, in one transaction and set-based (one UPDATE per table, one propagation
-- per dataset), for workers that lease many chunks at a time. All or nothing: a
-- token that is not a live lease raises and completes none. Tokens never appear
-- in errors; positions (1-based) do.
CREATE FUNCTION dataflow.complete_many(tokens uuid[], row_counts bigint[] DEFAULT NULL,
                                       checksums text[] DEFAULT NULL, infos jsonb[] DEFAULT NULL,
                                       locations text[] DEFAULT NULL)
RETURNS TABLE (token uuid, result text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off
-- index probes whatever the statistics said when this session made its plans (docs/internals.md, "Planner settings")
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_mergejoin = off SET enable_hashjoin = off
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  n integer := cardinality(tokens);
  locked integer;
  pos bigint;
  bad record;
  stale uuid[];
  results text[];
  g record;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    PERFORM dataflow._read_committed();   -- raises (00_schema.sql)
  END IF;
  IF tokens IS NULL THEN
    RAISE EXCEPTION 'tokens must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF n = 0 THEN
    RETURN;
  END IF;
  IF array_ndims(tokens) <> 1 THEN
    RAISE EXCEPTION 'tokens must be a one-dimensional array' USING ERRCODE = '22023';
  END IF;
  IF n > 1000 THEN
    RAISE EXCEPTION 'at most 1000 tokens per call, not %', n USING ERRCODE = '22023',
          HINT = 'lease() hands out at most 1000 chunks per call; complete them in batches of that size.';
  END IF;
  pos := array_position(tokens, NULL);
  IF pos IS NOT NULL THEN
    RAISE EXCEPTION 'token % is NULL', pos USING ERRCODE = '22004';
  END IF;
  SELECT min(t.i) INTO pos FROM unnest(tokens) WITH ORDINALITY t(tok, i)
   WHERE EXISTS (SELECT FROM unnest(tokens) WITH ORDINALITY u(tok, i) WHERE u.tok = t.tok AND u.i < t.i);
  IF pos IS NOT NULL THEN
    RAISE EXCEPTION 'token % repeats an earlier token', pos USING ERRCODE = '22023';
  END IF;
  IF cardinality(row_counts) <> n OR cardinality(checksums) <> n OR cardinality(infos) <> n
     OR cardinality(locations) <> n THEN
    RAISE EXCEPTION 'row_counts, checksums, infos and locations must be NULL or have one element per token (%)', n
      USING ERRCODE = '22023';
  END IF;
  pos := (SELECT min(x.i) FROM unnest(row_counts) WITH ORDINALITY x(v, i) WHERE x.v < 0);
  IF pos IS NOT NULL THEN
    RAISE EXCEPTION 'row_counts[%] must be >= 0', pos USING ERRCODE = '22023';
  END IF;
  pos := (SELECT min(x.i) FROM unnest(infos) WITH ORDINALITY x(v, i) WHERE jsonb_typeof(x.v) <> 'object');
  IF pos IS NOT NULL THEN
    RAISE EXCEPTION 'infos[%] must be a JSON object', pos USING ERRCODE = '22023';
  END IF;

  -- Lock the chunks in (rank, id) order (what every multi-chunk writer does: no deadlocks,
  -- docs/internals.md), then read the runs with a fresh snapshot, as _live_run does.
  SELECT count(*) INTO locked FROM (
    SELECT c.id FROM unnest(tokens) t(tok) JOIN dataflow.run rr ON rr.token = t.tok
      JOIN dataflow.chunk c ON c.id = rr.chunk_id JOIN dataflow.dataset cd ON cd.id = c.dataset_id
     ORDER BY cd.rank, c.id FOR UPDATE OF c) l;
  IF locked < n THEN
    SELECT min(t.i) INTO pos FROM unnest(tokens) WITH ORDINALITY t(tok, i)
     WHERE NOT EXISTS (SELECT FROM dataflow.run rr WHERE rr.token = t.tok);
    RAISE EXCEPTION 'no lease has token %', pos USING ERRCODE = '42704';
  END IF;
  SELECT t.i, rr.id, rr.status, rr.deadline, rr.error INTO bad
    FROM unnest(tokens) WITH ORDINALITY t(tok, i) JOIN dataflow.run rr ON rr.token = t.tok
   WHERE (rr.status <> 'running' AND NOT (rr.status = 'superseded' AND rr.finished_at IS NULL))
      OR rr.deadline < clock_timestamp()
   ORDER BY t.i LIMIT 1;
  IF FOUND AND bad.status <> 'running' THEN
    RAISE EXCEPTION 'lease of run % (token %) is no longer live: the run is %', bad.id, bad.i, bad.status
      USING ERRCODE = '55000', DETAIL = coalesce('Run error: ' || left(bad.error, 500), ''),
            HINT = 'Another attempt owns the chunk now; drop this result.';
  ELSIF FOUND THEN
    RAISE EXCEPTION 'lease of run % (token %) expired at %', bad.id, bad.i, bad.deadline
      USING ERRCODE = '55000',
            HINT = 'Heartbeat more often than the lease duration; the chunk will be retried.';
  END IF;

  -- Runs whose chunk moved on or whose inputs changed go through complete(), which
  -- records them as superseded (rare; it re-checks under the locks we hold).
  SELECT array_agg(rr.token ORDER BY t.i) INTO stale
    FROM unnest(tokens) WITH ORDINALITY t(tok, i) JOIN dataflow.run rr ON rr.token = t.tok JOIN dataflow.chunk c ON c.id = rr.chunk_id
   WHERE c.run_id <> rr.id OR c.status <> 'running' OR rr.status <> 'running'
      OR EXISTS (SELECT FROM dataflow.run_input ri JOIN dataflow.chunk ic ON ic.id = ri.chunk_id
                  WHERE ri.run_id = rr.id AND (ic.version <> ri.version OR dataflow._level(ic.status) = 0));
  IF stale IS NOT NULL THEN
    SELECT array_agg(dataflow.complete(x.tok, x.rc, x.cs, x.inf, x.loc) ORDER BY x.i) INTO results
      FROM unnest(tokens, row_counts, checksums, infos, locations) WITH ORDINALITY x(tok, rc, cs, inf, loc, i)
     WHERE x.tok = ANY (stale);
  END IF;

  UPDATE dataflow.run r
     SET status = 'succeeded', finished_at = now(), row_count = x.rc, checksum = x.cs, info = x.inf,
         output_location = coalesce(x.loc, r.output_location)
    FROM unnest(tokens, row_counts, checksums, infos, locations) x(tok, rc, cs, inf, loc)
   WHERE r.token = x.tok AND NOT (x.tok = ANY (coalesce(stale, '{}')));
  WITH u AS (
    UPDATE dataflow.chunk c
       SET status = 'ready', row_count = x.rc, checksum = x.cs, info = coalesce(x.inf, '{}'),
           location = coalesce(x.loc, r.output_location), error = NULL, available_at = now(), updated_at = now()
      FROM unnest(tokens, row_counts, checksums, infos, locations) WITH ORDINALITY x(tok, rc, cs, inf, loc, i)
      JOIN dataflow.run r ON r.token = x.tok
     WHERE c.id = r.chunk_id AND NOT (x.tok = ANY (coalesce(stale, '{}')))
    RETURNING c.id, c.dataset_id, c.key, c.version, r.id AS run_id, r.worker, x.i)
  INSERT INTO dataflow.event (dataset_id, chunk_id, key, run_id, version, from_status, to_status, actor)
  SELECT u.dataset_id, u.id, u.key, u.run_id, u.version, 'running', 'ready', u.worker
    FROM u ORDER BY u.i;
  -- Readiness: one propagation per dataset and worker (the events' actor). With more than
  -- one dataset, their consumers are locked first, all in one (rank, id) order: one
  -- dataset's propagation must not hold a consumer another's would wait for out of order.
  IF (SELECT count(DISTINCT c.dataset_id) FROM unnest(tokens) t(tok) JOIN dataflow.run r ON r.token = t.tok
        JOIN dataflow.chunk c ON c.id = r.chunk_id) > 1 THEN
    PERFORM 1 FROM dataflow.chunk c JOIN dataflow.dataset cd ON cd.id = c.dataset_id
     WHERE c.id IN (SELECT d.consumer FROM unnest(tokens) t(tok) JOIN dataflow.run r ON r.token = t.tok
                      JOIN dataflow.dep d ON d.input = r.chunk_id
                     WHERE NOT (t.tok = ANY (coalesce(stale, '{}'))))
     ORDER BY cd.rank, c.id FOR UPDATE OF c;
  END IF;
  FOR g IN SELECT c.dataset_id, r.worker, array_agg(c.id ORDER BY c.id) AS ids
             FROM unnest(tokens) t(tok) JOIN dataflow.run r ON r.token = t.tok
             JOIN dataflow.chunk c ON c.id = r.chunk_id
            WHERE NOT (t.tok = ANY (coalesce(stale, '{}')))
            GROUP BY c.dataset_id, r.worker LOOP
    PERFORM dataflow._propagate(g.ids, g.dataset_id, 0, 1, g.worker);
  END LOOP;
  RETURN QUERY
  SELECT x.tok, CASE WHEN x.tok = ANY (coalesce(stale, '{}'))
                     THEN results[array_position(stale, x.tok)]   -- stale and results share the order of tokens
                     ELSE 'succeeded' END
    FROM unnest(tokens) WITH ORDINALITY x(tok, i) ORDER BY x.i;
END $$;
COMMENT ON FUNCTION dataflow.complete_many(uuid[], bigint[], text[], jsonb[], text[]) IS
  'complete() for several live leases in one call and transaction (element i of each array belongs to token i); '
  'all or nothing: an unknown or dead token raises and completes none; returns each token''s result in order';

-- Where a chunk goes after a failed or expired attempt.
-- p_delay (seconds) replaces the job's backoff: an engine's Retry-After.
CREATE FUNCTION dataflow._retry_or_fail(p_chunk bigint, p_run bigint, p_error text, p_retry boolean,
                                        p_actor text, p_reason text, p_delay double precision DEFAULT NULL)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan AS $$
DECLARE c dataflow.chunk; j dataflow.job; new_status text; delay double precision;
BEGIN
  SELECT * INTO c FROM dataflow.chunk WHERE id = p_chunk FOR UPDATE;
  IF c.run_id IS DISTINCT FROM p_run OR c.status <> 'running' THEN
    RETURN c.status;   -- the chunk moved on (resubmitted, cancelled): nothing to retry
  END IF;
  SELECT jb.* INTO j FROM dataflow.job jb WHERE jb.output_id = c.dataset_id;
  IF p_retry AND j.id IS NOT NULL AND c.attempts < j.max_attempts THEN
    -- an input being re-produced meanwhile (unmet > 0): wait for it, not the queue
    new_status := CASE WHEN c.unmet = 0 THEN 'queued' ELSE 'waiting' END;
    delay := coalesce(p_delay,
                      dataflow._backoff(c.attempts, extract(epoch FROM j.backoff_min)::double precision,
                                        extract(epoch FROM j.backoff_max)::double precision, random()));
  ELSE
    new_status := 'failed';
  END IF;
  UPDATE dataflow.chunk
     SET status = new_status, error = left(p_error, 4000), updated_at = now(),
         -- from when the attempt ended (the run's finished_at, set by the clock just before):
         -- the gap between the two is exactly the backoff or Retry-After asked for
         not_before = CASE WHEN new_status = 'queued'
                           THEN coalesce((SELECT rr.finished_at FROM dataflow.run rr WHERE rr.id = p_run),
                                         clock_timestamp()) + make_interval(secs => delay)
                           ELSE not_before END
   WHERE id = c.id;
  INSERT INTO dataflow.event (dataset_id, chunk_id, key, run_id, version, from_status, to_status, actor, detail)
  VALUES (c.dataset_id, c.id, c.key, p_run, c.version, 'running', new_status, p_actor,
          jsonb_build_object('reason', p_reason, 'error', left(p_error, 1000), 'attempt', c.attempts,
                             'retry_in_seconds', round(delay::numeric, 3)));
  RETURN new_status;
END $$;

-- fail() with an optional delay before the retry (seconds; NULL: the job's backoff).
CREATE FUNCTION dataflow._fail(p_token uuid, p_error text, p_retry boolean, p_delay double precision)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off
-- index probes whatever the statistics said when this session made its plans (docs/internals.md, "Planner settings")
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_mergejoin = off SET enable_hashjoin = off
SET plan_cache_mode = force_generic_plan AS $$
DECLARE r dataflow.run := dataflow._live_run(p_token, true);
BEGIN
  IF p_error IS NULL OR p_retry IS NULL THEN
    RAISE EXCEPTION 'error and retry must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF r.status = 'superseded' THEN
    -- A superseded run stopping early: it ends, releasing its inputs; its chunk was reset.
    UPDATE dataflow.run SET finished_at = clock_timestamp(), error = left(r.error || '; then failed: ' || p_error, 4000)
     WHERE id = r.id AND finished_at IS NULL;
    RETURN (SELECT c.status FROM dataflow.chunk c WHERE c.id = r.chunk_id);
  END IF;
  -- The clock, as for the retry's not_before below (the gap is the backoff asked for).
  UPDATE dataflow.run SET status = 'failed', finished_at = clock_timestamp(), error = left(p_error, 4000)
   WHERE id = r.id;
  RETURN dataflow._retry_or_fail(r.chunk_id, r.id, p_error, p_retry, r.worker, 'fail', p_delay);
END $$;

CREATE FUNCTION dataflow.fail(token uuid, error text, retry boolean DEFAULT true)
RETURNS text LANGUAGE sql SET search_path = pg_catalog, pg_temp
RETURN dataflow._fail(token, error, retry, NULL);
COMMENT ON FUNCTION dataflow.fail(uuid, text, boolean) IS
  'Finish a live lease with an error: the chunk is retried after an exponential, jittered backoff '
  'while attempts remain and retry is true, else it is failed; returns the chunk''s new status';

CREATE FUNCTION dataflow.reap() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET jit = off SET enable_seqscan = off AS $$
DECLARE r record; n integer := 0; held integer;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    PERFORM dataflow._read_committed();   -- raises (00_schema.sql)
  END IF;
  FOR r IN
    SELECT run.id, run.chunk_id, run.deadline, run.worker FROM dataflow.run
     WHERE run.status = 'running' AND run.deadline < clock_timestamp()
     ORDER BY run.deadline
     LIMIT 10000
       FOR UPDATE SKIP LOCKED
  LOOP
    -- The chunk is locked after the run here (against the usual order): never wait for it,
    -- leave a busy chunk to the next reap.
    PERFORM 1 FROM dataflow.chunk WHERE id = r.chunk_id FOR UPDATE SKIP LOCKED;
    CONTINUE WHEN NOT FOUND;
    UPDATE dataflow.run
       SET status = 'expired', finished_at = clock_timestamp(),
           error = 'lease expired at ' || r.deadline || ' without a heartbeat from ' || r.worker
     WHERE id = r.id;
    PERFORM dataflow._retry_or_fail(r.chunk_id, r.id, 'lease expired (worker ' || r.worker || ')', true,
                                    'reaper', 'expired');
    n := n + 1;
  END LOOP;
  -- Superseded runs that stopped heartbeating: their lease is over, and with it their hold
  -- on their inputs (_claim counts them until finished_at is set here). As above, never
  -- waiting: a run or chunk someone holds (a heartbeat of that run in an open
  -- transaction) is left to the next reap; and the chunk lock is what every other ender
  -- of a run holds (_live_run), so none of them can end or extend it meanwhile.
  FOR r IN
    SELECT run.id, run.chunk_id FROM dataflow.run
     WHERE run.status = 'superseded' AND run.finished_at IS NULL AND run.deadline < clock_timestamp()
     ORDER BY run.deadline
     LIMIT 10000
       FOR UPDATE SKIP LOCKED
  LOOP
    PERFORM 1 FROM dataflow.chunk WHERE id = r.chunk_id FOR UPDATE SKIP LOCKED;
    CONTINUE WHEN NOT FOUND;
    UPDATE dataflow.run SET finished_at = deadline, error = left(error || '; lease expired', 4000)
     WHERE id = r.id AND finished_at IS NULL AND deadline < clock_timestamp();
    GET DIAGNOSTICS held = ROW_COUNT;
    n := n + held;
  END LOOP;
  RETURN n;
END $$;
COMMENT ON FUNCTION dataflow.reap() IS
  'Expire leases whose deadline passed: their chunks are retried with backoff, or failed when attempts are '
  'spent; returns how many leases expired';

-- ==== src/sql/47_incremental.sql
-- Incremental batches (mapping `incremental`): a job whose output key is a
-- batch number consumes every input chunk that became available since its
-- last batch. Available input chunks wait in incremental_pending; lease() cuts
-- the next batch from all of them when no batch of the job is in flight, so
-- batches run one after another. A batch keeps its inputs (dep edges) for its
-- retries and re-runs; an input that was already in a batch is re-run through
-- that batch (resubmit cascade), never taken by a second one.

CREATE TABLE dataflow.incremental_pending (
  job_id   integer NOT NULL,
  chunk_id bigint NOT NULL,
  need     smallint NOT NULL,
  since    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (job_id, chunk_id)
);
COMMENT ON TABLE dataflow.incremental_pending IS
  'Input chunks available to an incremental job and not yet in one of its batches';

-- Called by _propagate when an input chunk's level rises.
CREATE FUNCTION dataflow._incremental_arrived(p_input bigint, p_dataset integer, p_old integer, p_new integer)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO dataflow.incremental_pending (job_id, chunk_id, need)
  SELECT ji.job_id, p_input, ji.need
    FROM dataflow.job_input ji
    JOIN dataflow.job j ON j.id = ji.job_id
   WHERE ji.dataset_id = p_dataset AND ji.mapping = 'incremental'
     AND p_new >= ji.need AND p_old < ji.need
     AND NOT EXISTS (SELECT FROM dataflow.dep dp JOIN dataflow.chunk b ON b.id = dp.consumer
                      WHERE dp.input = p_input AND b.dataset_id = j.output_id)
  ON CONFLICT DO NOTHING;
END $$;

-- Cut the next batch of an incremental job, if it has pending inputs and no
-- batch in flight. Returns the new batch's chunk id or NULL.
CREATE FUNCTION dataflow._cut_batch(p_job integer) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE j dataflow.job; nb bigint; b bigint; n integer; taken bigint[];
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    PERFORM dataflow._read_committed();   -- raises (00_schema.sql)
  END IF;
  IF NOT (EXISTS (SELECT FROM dataflow.incremental_pending p WHERE p.job_id = p_job)) THEN
    RETURN NULL;
  END IF;
  PERFORM pg_advisory_xact_lock(7403, p_job);
  SELECT * INTO j FROM dataflow.job WHERE id = p_job;
  IF (SELECT coalesce(sum(k.waiting + k.queued + k.running + k.resubmit), 0)
        FROM dataflow.chunk_count k WHERE k.dataset_id = j.output_id) > 0 THEN
    RETURN NULL;   -- one batch at a time
  END IF;
  -- Share-lock the pending inputs this batch takes, in (rank, id) order, skipping any that
  -- another transaction holds (a resubmit in flight: it stays pending for a later batch).
  -- Held, they cannot be resubmitted before this batch commits, and a resubmit that
  -- waits for one reads the batch's dep edge once it has it. Without the lock a resubmit
  -- committed in between left the batch queued on an unavailable input.
  SELECT array_agg(l.id) INTO taken FROM (
    SELECT c.id FROM dataflow.incremental_pending p
      JOIN dataflow.chunk c ON c.id = p.chunk_id JOIN dataflow.dataset cd ON cd.id = c.dataset_id
     WHERE p.job_id = p_job
     ORDER BY cd.rank, c.id
       FOR SHARE OF c SKIP LOCKED) l;
  IF taken IS NULL THEN
    RETURN NULL;
  END IF;
  -- Inputs that stopped being available since they arrived go back to waiting for their new
  -- version (a fresh snapshot: it sees what committed while we waited for the locks).
  DELETE FROM dataflow.incremental_pending p USING dataflow.chunk c
   WHERE p.job_id = p_job AND c.id = p.chunk_id AND c.id = ANY (taken) AND dataflow._level(c.status) < p.need;
  IF NOT (EXISTS (SELECT FROM dataflow.incremental_pending p WHERE p.job_id = p_job AND p.chunk_id = ANY (taken))) THEN
    RETURN NULL;
  END IF;
  SELECT coalesce(max(c.ord), 0) + 1 INTO nb FROM dataflow.chunk c WHERE c.dataset_id = j.output_id;
  -- `latest` inputs (dimensions) that have no available chunk yet hold the batch.
  PERFORM pg_advisory_xact_lock(7406, jl.dataset_id)
     FROM dataflow.job_input jl WHERE jl.job_id = p_job AND jl.mapping = 'latest' ORDER BY jl.dataset_id;
  SELECT count(*) INTO n FROM dataflow.job_input jl
   WHERE jl.job_id = p_job AND jl.mapping = 'latest'
     AND NOT EXISTS (SELECT FROM dataflow.chunk lc
                      WHERE lc.dataset_id = jl.dataset_id AND dataflow._level(lc.status) >= jl.need);
  INSERT INTO dataflow.chunk (dataset_id, key, ord, status, unmet, not_before)
  VALUES (j.output_id, nb::text, nb, CASE WHEN n = 0 THEN 'queued' ELSE 'waiting' END, n, now())
  RETURNING id INTO b;
  INSERT INTO dataflow.latest_wait (dataset_id, consumer, need)
  SELECT jl.dataset_id, b, jl.need FROM dataflow.job_input jl
   WHERE jl.job_id = p_job AND jl.mapping = 'latest'
     AND NOT EXISTS (SELECT FROM dataflow.chunk lc
                      WHERE lc.dataset_id = jl.dataset_id AND dataflow._level(lc.status) >= jl.need);
  WITH taken AS (
    DELETE FROM dataflow.incremental_pending p WHERE p.job_id = p_job AND p.chunk_id = ANY (taken)
    RETURNING p.chunk_id, p.need
  )
  INSERT INTO dataflow.dep (input, consumer, need) SELECT taken.chunk_id, b, taken.need FROM taken;
  INSERT INTO dataflow.event (dataset_id, chunk_id, key, version, from_status, to_status, actor, detail)
  VALUES (j.output_id, b, nb::text, 1, NULL, CASE WHEN n = 0 THEN 'queued' ELSE 'waiting' END, 'incremental',
          jsonb_build_object('reason', 'batch', 'job', j.name,
                             'inputs', (SELECT count(*) FROM dataflow.dep dp WHERE dp.consumer = b)));
  RETURN b;
END $$;

-- ==== src/sql/50_views.sql
-- Views for psql and BI tools. Stable column names; every column commented.

CREATE VIEW dataflow.chunks AS
SELECT c.id AS chunk_id, d.name AS dataset, c.key, c.status, c.version, c.location, c.row_count,
       c.checksum, c.attempts, c.unmet AS unmet_inputs, c.not_before, c.error,
       c.validation, c.info, c.run_id, c.created_at, c.updated_at, c.available_at
  FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id;
COMMENT ON VIEW dataflow.chunks IS
  'Every chunk with its status. UPDATE dataflow.chunks SET status = ''resubmit'' (or ''skipped'') '
  'WHERE dataset = ... AND key = ... restarts (or skips) it';
COMMENT ON COLUMN dataflow.chunks.chunk_id IS 'Internal chunk id';
COMMENT ON COLUMN dataflow.chunks.dataset IS 'Dataset name';
COMMENT ON COLUMN dataflow.chunks.key IS 'Canonical key (2024-01-31, 2024-01-31T05, 42, text)';
COMMENT ON COLUMN dataflow.chunks.status IS
  'waiting, queued, running, ready, validated, invalid, failed, skipped or cancelled';
COMMENT ON COLUMN dataflow.chunks.version IS 'Version being produced or last produced; +1 on each resubmit';
COMMENT ON COLUMN dataflow.chunks.location IS 'Where the data of this version is';
COMMENT ON COLUMN dataflow.chunks.row_count IS 'Rows reported by the producer';
COMMENT ON COLUMN dataflow.chunks.checksum IS 'Checksum reported by the producer';
COMMENT ON COLUMN dataflow.chunks.attempts IS 'Attempts at producing this version';
COMMENT ON COLUMN dataflow.chunks.unmet_inputs IS 'Inputs not yet available at the level this chunk needs';
COMMENT ON COLUMN dataflow.chunks.not_before IS 'Earliest time a queued chunk may be leased (backoff)';
COMMENT ON COLUMN dataflow.chunks.error IS 'Last error of a failed attempt';
COMMENT ON COLUMN dataflow.chunks.validation IS 'Last validation: passed, report, at, by, version';
COMMENT ON COLUMN dataflow.chunks.info IS 'Producer-supplied metadata';
COMMENT ON COLUMN dataflow.chunks.run_id IS 'The run producing or last produced this chunk';
COMMENT ON COLUMN dataflow.chunks.created_at IS 'When the chunk was first expected or registered';
COMMENT ON COLUMN dataflow.chunks.updated_at IS 'Last change of the chunk';
COMMENT ON COLUMN dataflow.chunks.available_at IS 'When the current version became available';

CREATE FUNCTION dataflow._chunks_update() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF (NEW.chunk_id, NEW.dataset, NEW.key, NEW.version, NEW.location, NEW.row_count, NEW.checksum,
      NEW.attempts, NEW.unmet_inputs, NEW.not_before, NEW.error, NEW.validation, NEW.info, NEW.run_id,
      NEW.created_at, NEW.updated_at, NEW.available_at)
     IS DISTINCT FROM
     (OLD.chunk_id, OLD.dataset, OLD.key, OLD.version, OLD.location, OLD.row_count, OLD.checksum,
      OLD.attempts, OLD.unmet_inputs, OLD.not_before, OLD.error, OLD.validation, OLD.info, OLD.run_id,
      OLD.created_at, OLD.updated_at, OLD.available_at)
     OR NEW.status IS NULL OR NEW.status NOT IN ('resubmit', 'skipped') THEN
    RAISE EXCEPTION 'only status can be written in dataflow.chunks, and only to ''resubmit'' or ''skipped'''
      USING ERRCODE = '0A000',
            HINT = 'UPDATE dataflow.chunks SET status = ''resubmit'' WHERE dataset = ... AND key = ...';
  END IF;
  IF NEW.status = 'skipped' AND OLD.status = 'skipped' THEN
    RETURN NEW;
  END IF;
  -- A resubmit is only noted here and done once for the whole statement by
  -- _chunks_updated (the statement trigger below), all of its chunks in one _resubmit:
  -- the chunks are then locked in (rank, id) order like every other path, where a
  -- cascade per row locked each row's downstream before the next row and could
  -- deadlock with a worker completing one of the later rows (docs/internals.md), and
  -- a chunk named together with its upstream is reset once.
  IF NEW.status = 'resubmit' THEN
    IF NOT dataflow._own_work_table('_df_roots') THEN
      CREATE TEMP TABLE pg_temp._df_roots (id bigint PRIMARY KEY) ON COMMIT DROP;
    END IF;
    INSERT INTO pg_temp._df_roots (id) VALUES (OLD.chunk_id) ON CONFLICT DO NOTHING;
    RETURN NEW;
  END IF;
  UPDATE dataflow.chunk
     SET status = NEW.status,
         info = CASE WHEN NEW.status = 'skipped'
                     THEN info || jsonb_build_object('skip_reason', 'skipped via dataflow.chunks')
                     ELSE info END
   WHERE id = OLD.chunk_id;
  RETURN NEW;
END $$;
CREATE TRIGGER chunks_update INSTEAD OF UPDATE ON dataflow.chunks
  FOR EACH ROW EXECUTE FUNCTION dataflow._chunks_update();

-- The resubmits one UPDATE of dataflow.chunks noted (_chunks_update), done at once.
CREATE FUNCTION dataflow._chunks_updated() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE roots bigint[];
BEGIN
  -- Only our own work table: a planted one made _chunks_update raise before it noted
  -- anything, so a statement that only skipped chunks has nothing to do here.
  IF NOT dataflow._own_work_table('_df_roots', p_quiet => true) THEN
    RETURN NULL;
  END IF;
  SELECT array_agg(r.id ORDER BY r.id) INTO roots FROM pg_temp._df_roots r;
  TRUNCATE pg_temp._df_roots;
  IF roots IS NOT NULL THEN
    PERFORM dataflow._resubmit(roots, true, false, dataflow._actor(), 'resubmit');
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER chunks_updated AFTER UPDATE ON dataflow.chunks
  FOR EACH STATEMENT EXECUTE FUNCTION dataflow._chunks_updated();

CREATE TRIGGER chunk_status_written AFTER UPDATE OF status ON dataflow.chunk
  FOR EACH ROW WHEN (NEW.status = 'resubmit' OR (NEW.status = 'skipped' AND OLD.status <> 'skipped'))
  EXECUTE FUNCTION dataflow._chunk_status_written();

CREATE VIEW dataflow.runs AS
SELECT r.id AS run_id, j.name AS job, d.name AS dataset, c.key, r.version, r.attempt, r.worker, r.status,
       r.started_at, r.heartbeat_at, r.deadline, r.finished_at, r.error, r.external_id,
       r.output_location, r.row_count, r.checksum, r.info,
       (SELECT jsonb_agg(jsonb_build_object('dataset', ids.name, 'key', ic.key, 'version', ri.version)
                         ORDER BY ids.name, ic.ord, ic.key)
          FROM dataflow.run_input ri
          JOIN dataflow.chunk ic ON ic.id = ri.chunk_id
          JOIN dataflow.dataset ids ON ids.id = ic.dataset_id
         WHERE ri.run_id = r.id) AS inputs
  FROM dataflow.run r
  JOIN dataflow.chunk c ON c.id = r.chunk_id
  JOIN dataflow.dataset d ON d.id = c.dataset_id
  LEFT JOIN dataflow.job j ON j.id = r.job_id;
COMMENT ON VIEW dataflow.runs IS 'Every attempt at producing a chunk (lease tokens are not shown)';
COMMENT ON COLUMN dataflow.runs.run_id IS 'Run id';
COMMENT ON COLUMN dataflow.runs.job IS 'Job that ran';
COMMENT ON COLUMN dataflow.runs.dataset IS 'Output dataset';
COMMENT ON COLUMN dataflow.runs.key IS 'Output key';
COMMENT ON COLUMN dataflow.runs.version IS 'Version the run produced or tried to produce';
COMMENT ON COLUMN dataflow.runs.attempt IS 'Attempt number for that version';
COMMENT ON COLUMN dataflow.runs.worker IS 'Worker that held the lease';
COMMENT ON COLUMN dataflow.runs.status IS 'running, succeeded, failed, expired, cancelled or superseded';
COMMENT ON COLUMN dataflow.runs.started_at IS 'Lease time';
COMMENT ON COLUMN dataflow.runs.heartbeat_at IS 'Last heartbeat';
COMMENT ON COLUMN dataflow.runs.deadline IS 'Lease deadline';
COMMENT ON COLUMN dataflow.runs.finished_at IS
  'When the run ended; NULL while it runs, also after a resubmit superseded it while its process still works (it holds its inputs until then)';
COMMENT ON COLUMN dataflow.runs.error IS 'Why it failed, expired, was cancelled or superseded';
COMMENT ON COLUMN dataflow.runs.external_id IS 'Engine-side id (e.g. Airflow dag_run_id)';
COMMENT ON COLUMN dataflow.runs.output_location IS 'Where the run wrote its output';
COMMENT ON COLUMN dataflow.runs.row_count IS 'Rows reported at completion';
COMMENT ON COLUMN dataflow.runs.checksum IS 'Checksum reported at completion';
COMMENT ON COLUMN dataflow.runs.info IS 'Metadata reported at completion';
COMMENT ON COLUMN dataflow.runs.inputs IS 'Lineage: the exact input chunk versions the run read';

CREATE FUNCTION dataflow._event_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RAISE EXCEPTION 'dataflow.event is append-only' USING ERRCODE = '0A000',
        HINT = 'Old events are removed by retention (dataflow.prune()).';
END $$;
CREATE TRIGGER event_append_only BEFORE UPDATE ON dataflow.event
  FOR EACH STATEMENT EXECUTE FUNCTION dataflow._event_append_only();

-- ==== src/sql/55_questions.sql
-- The operator's questions: explain (the five questions), blockers (why it
-- waits, followed upstream to the root cause), upstream/downstream lineage,
-- and the dataset/job graph as Graphviz DOT.

CREATE FUNCTION dataflow._chunk_name(p_chunk bigint) RETURNS text
LANGUAGE sql STABLE
RETURN (SELECT d.name || '/' || c.key FROM dataflow.chunk c JOIN dataflow.dataset d ON d.id = c.dataset_id
         WHERE c.id = p_chunk);

CREATE FUNCTION dataflow.explain(dataset text, key text)
RETURNS TABLE(question text, ok boolean, evidence text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c dataflow.chunk := dataflow._chunk(dataset, key);
  d dataflow.dataset;
  j dataflow.job;
  r dataflow.run;
  live dataflow.run;
  stale text; inputs text; readers text; n_readers integer; avail boolean;
BEGIN
  SELECT * INTO d FROM dataflow.dataset ds WHERE ds.id = c.dataset_id;
  SELECT * INTO j FROM dataflow.job jb WHERE jb.output_id = d.id;
  SELECT * INTO r FROM dataflow.run rn WHERE rn.id = c.run_id;
  SELECT * INTO live FROM dataflow.run rn WHERE rn.chunk_id = c.id AND rn.status = 'running' LIMIT 1;
  avail := dataflow._level(c.status) > 0;

  question := 'ready';
  ok := avail;
  evidence := 'status ' || c.status || ' since ' || to_char(c.updated_at, 'YYYY-MM-DD HH24:MI:SS TZ')
    || ', version ' || c.version
    || CASE
         WHEN c.status IN ('ready', 'validated') AND r.id IS NOT NULL THEN
           ', produced by run ' || r.id || ' (job ' || coalesce(j.name, '?') || ', worker ' || r.worker || ')'
         WHEN c.status IN ('ready', 'validated') THEN ', registered as a source chunk'
         WHEN c.status = 'skipped' THEN ', declared empty: ' || coalesce(c.info ->> 'skip_reason', '')
         WHEN c.status = 'waiting' AND j.id IS NULL THEN ', source chunk not registered yet (dataflow.register)'
         WHEN c.status = 'waiting' THEN ', ' || c.unmet || ' input(s) not available yet (see dataflow.blockers)'
         WHEN c.status = 'queued' AND c.not_before > now() THEN ', retrying after ' || to_char(c.not_before, 'HH24:MI:SS')
         WHEN c.status = 'queued' THEN ', waiting for a worker to lease it'
         WHEN c.status = 'running' THEN ', leased by ' || coalesce(live.worker, '?') || ' until '
                                         || coalesce(to_char(live.deadline, 'HH24:MI:SS'), '?')
         WHEN c.status = 'failed' THEN ' after ' || c.attempts || ' attempt(s): ' || coalesce(c.error, '')
         WHEN c.status = 'invalid' THEN ', validation failed: ' || coalesce((c.validation -> 'report')::text, '')
         WHEN c.status = 'cancelled' THEN ', cancelled by an operator'
         ELSE '' END;
  RETURN NEXT;

  -- Correct: expected key, current version, and built from the inputs' current versions.
  SELECT string_agg(dataflow._chunk_name(ri.chunk_id) || ' read v' || ri.version || ', now v' || ic.version
                    || ' ' || ic.status, '; ' ORDER BY ri.chunk_id)
    INTO stale
    FROM dataflow.run_input ri JOIN dataflow.chunk ic ON ic.id = ri.chunk_id
   WHERE ri.run_id = r.id AND (ic.version <> ri.version OR dataflow._level(ic.status) = 0);
  SELECT count(*) || ' input chunk(s), all at the versions read' INTO inputs
    FROM dataflow.run_input ri WHERE ri.run_id = r.id;
  question := 'correct';
  IF NOT avail THEN
    ok := false;
    evidence := 'version ' || c.version || ' is not produced yet';
  ELSIF c.status = 'skipped' THEN
    ok := true;
    evidence := 'key ' || c.key || ' is declared empty at version ' || c.version;
  ELSIF j.id IS NULL THEN
    ok := true;
    evidence := 'key ' || c.key || ', version ' || c.version || ' of source dataset ' || d.name;
  ELSIF stale IS NOT NULL THEN
    ok := false;
    evidence := 'stale: version ' || c.version || ' was built from inputs re-produced since: ' || stale;
  ELSE
    ok := true;
    evidence := 'key ' || c.key || ', version ' || c.version || ' built by run ' || coalesce(r.id::text, '?')
                || ' from ' || inputs;
  END IF;
  RETURN NEXT;

  question := 'location';
  ok := c.location IS NOT NULL AND avail;
  evidence := CASE
    WHEN c.location IS NOT NULL AND avail THEN c.location
    WHEN c.status = 'skipped' THEN 'declared empty: no data to locate'
    WHEN d.location IS NOT NULL THEN 'not produced yet; will be '
         || dataflow._location(d.location, d.name, c.key, c.version)
    ELSE 'no location recorded and dataset ' || d.name || ' has no location template' END;
  RETURN NEXT;

  question := 'validated';
  ok := c.status IN ('validated', 'skipped') OR (c.status = 'ready' AND NOT d.requires_validation);
  evidence := CASE
    WHEN c.status = 'validated' THEN 'passed at ' || to_char((c.validation ->> 'at')::timestamptz, 'YYYY-MM-DD HH24:MI:SS TZ')
         || ' by ' || (c.validation ->> 'by') || ': ' || (c.validation -> 'report')::text
    WHEN c.status = 'invalid' THEN 'FAILED validation by ' || (c.validation ->> 'by') || ': '
         || (c.validation -> 'report')::text
    WHEN c.status = 'skipped' THEN 'declared empty'
    WHEN NOT d.requires_validation THEN 'dataset ' || d.name || ' does not require validation'
    ELSE 'dataset ' || d.name || ' requires validation; not validated yet' END;
  RETURN NEXT;

  -- Safe: no writer holds it, and readers hold it against re-production.
  -- Readers: live runs that read it, and runs a resubmit superseded whose process has not
  -- ended (they hold it until they end, or reap() expires them, as _claim counts them).
  SELECT count(*), string_agg('run ' || rr.id || ' (' || rr.worker
                              || CASE WHEN rr.status = 'superseded' THEN ', superseded, still reading' ELSE '' END
                              || ')', ', ' ORDER BY rr.id)
    INTO n_readers, readers
    FROM dataflow.run_input ri JOIN dataflow.run rr ON rr.id = ri.run_id
   WHERE ri.chunk_id = c.id AND rr.finished_at IS NULL AND rr.status IN ('running', 'superseded');
  question := 'safe';
  ok := avail AND live.id IS NULL;
  evidence := CASE
    WHEN live.id IS NOT NULL THEN 'a writer holds it: run ' || live.id || ' (' || live.worker || ') is producing version '
         || live.version
    WHEN NOT avail THEN 'not available: it will be (re)produced'
    ELSE 'no writer' END
    || CASE WHEN n_readers > 0 THEN '; ' || n_readers || ' reader(s) hold it against re-production: ' || readers
            ELSE '; no readers' END;
  RETURN NEXT;
END $$;
COMMENT ON FUNCTION dataflow.explain(text, text) IS
  'The five questions for a chunk, in order ready, correct, location, validated, safe: '
  'each with ok and the evidence from the tables';

CREATE TYPE dataflow.blocker AS (depth integer, dataset text, key text, status text, reason text);
COMMENT ON TYPE dataflow.blocker IS 'A row of blockers(): a chunk in the way, how far upstream, and why';

CREATE FUNCTION dataflow.blockers(dataset text, key text)
RETURNS SETOF dataflow.blocker
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE c dataflow.chunk := dataflow._chunk(blockers.dataset, blockers.key);
BEGIN
  RETURN QUERY
  WITH RECURSIVE walk(id, depth, path, need) AS (
    SELECT c.id, 0, ARRAY[c.id], 1::smallint
    UNION ALL
    SELECT dp.input, w.depth + 1, w.path || dp.input, dp.need
      FROM walk w
      JOIN dataflow.dep dp ON dp.consumer = w.id
      JOIN dataflow.chunk ic ON ic.id = dp.input
     WHERE dataflow._level(ic.status) < dp.need
       AND w.depth < 50 AND NOT dp.input = ANY (w.path)
  ), nodes AS (
    SELECT w.id, min(w.depth) AS depth, max(w.need) AS need FROM walk w GROUP BY w.id
  )
  SELECT n.depth, ds.name, ch.key, ch.status,
         CASE
           WHEN dataflow._level(ch.status) >= n.need THEN 'available: not blocked'
           WHEN ch.status = 'ready' THEN 'ready but not validated, and a consumer needs it validated (dataflow.validate)'
           WHEN ch.status = 'waiting' AND jb.id IS NULL THEN
             'source chunk not registered yet (dataflow.register)'
           WHEN ch.status = 'waiting' AND EXISTS (SELECT FROM dataflow.latest_wait lw WHERE lw.consumer = ch.id) THEN
             'waits for the first available chunk of ' ||
             (SELECT string_agg(lds.name, ', ') FROM dataflow.latest_wait lw
                JOIN dataflow.dataset lds ON lds.id = lw.dataset_id WHERE lw.consumer = ch.id)
           WHEN ch.status = 'waiting' THEN ch.unmet || ' input(s) not available'
           WHEN ch.status = 'queued' AND jb.paused THEN 'job ' || jb.name || ' is paused (dataflow.resume_job)'
           WHEN ch.status = 'queued' AND EXISTS (
                  SELECT FROM dataflow.job_input jl WHERE jl.job_id = jb.id AND jl.mapping = 'latest'
                     AND NOT EXISTS (SELECT FROM dataflow.chunk lc WHERE lc.dataset_id = jl.dataset_id
                                        AND dataflow._level(lc.status) >= jl.need)) THEN
             'waits for an available chunk of its latest input(s) '
             || (SELECT string_agg(lds.name, ', ') FROM dataflow.job_input jl
                   JOIN dataflow.dataset lds ON lds.id = jl.dataset_id
                  WHERE jl.job_id = jb.id AND jl.mapping = 'latest')
           WHEN ch.status = 'queued' AND ch.not_before > now() THEN
             'retry backoff until ' || to_char(ch.not_before, 'YYYY-MM-DD HH24:MI:SS TZ')
             || coalesce(', last error: ' || left(ch.error, 200), '')
           WHEN ch.status = 'queued' AND jb.max_concurrency IS NOT NULL AND
                (SELECT count(*) FROM dataflow.run rr WHERE rr.job_id = jb.id AND rr.status = 'running') >= jb.max_concurrency THEN
             'job ' || jb.name || ' is at its concurrency limit (' || jb.max_concurrency || ')'
           WHEN ch.status = 'queued' AND pl.id IS NOT NULL AND
                (SELECT count(*) FROM dataflow.run rr WHERE rr.pool_id = pl.id AND rr.status = 'running') >= pl.slots THEN
             'pool ' || pl.name || ' is full (' || pl.slots || ' slots)'
           WHEN ch.status = 'queued' AND EXISTS (SELECT FROM dataflow.run_input ri JOIN dataflow.run rr ON rr.id = ri.run_id
                                                 WHERE ri.chunk_id = ch.id AND rr.finished_at IS NULL
                                                   AND rr.status IN ('running', 'superseded')) THEN
             'held by runs still reading the previous version: '
             || (SELECT string_agg('run ' || rr.id || ' (' || rr.worker || ')', ', ' ORDER BY rr.id)
                   FROM dataflow.run_input ri JOIN dataflow.run rr ON rr.id = ri.run_id
                  WHERE ri.chunk_id = ch.id AND rr.finished_at IS NULL AND rr.status IN ('running', 'superseded'))
           WHEN ch.status = 'queued' THEN
             'queued for job ' || jb.name || CASE WHEN jb.dispatch = 'pull' THEN ': no worker has leased it yet'
                                                  ELSE ': waiting for the ' || jb.dispatch || ' dispatcher' END
           WHEN ch.status = 'running' THEN
             (SELECT 'running: run ' || rr.id || ' by ' || rr.worker || ', deadline '
                     || to_char(rr.deadline, 'YYYY-MM-DD HH24:MI:SS TZ')
                FROM dataflow.run rr WHERE rr.chunk_id = ch.id AND rr.status = 'running' LIMIT 1)
           WHEN ch.status = 'failed' THEN
             'FAILED after ' || ch.attempts || ' attempt(s): ' || coalesce(left(ch.error, 500), '?')
             || ' (fix, then resubmit)'
           WHEN ch.status = 'invalid' THEN 'FAILED validation: ' || coalesce((ch.validation -> 'report')::text, '')
           WHEN ch.status = 'cancelled' THEN 'cancelled by an operator (resubmit to restart)'
           ELSE ch.status END
    FROM nodes n
    JOIN dataflow.chunk ch ON ch.id = n.id
    JOIN dataflow.dataset ds ON ds.id = ch.dataset_id
    LEFT JOIN dataflow.job jb ON jb.output_id = ch.dataset_id
    LEFT JOIN dataflow.pool pl ON pl.id = jb.pool_id
   ORDER BY n.depth, ds.name, ch.ord, ch.key;
END $$;
COMMENT ON FUNCTION dataflow.blockers(text, text) IS
  'What a chunk waits on, followed upstream to the root causes: one row per blocking chunk with its '
  'depth, status and reason (missing source key, failed chunk and its error, paused job, full pool, backoff)';

CREATE TYPE dataflow.lineage AS (
  depth integer, dataset text, key text, version integer, current_version integer, status text,
  run_id bigint, location text, relation text);
COMMENT ON TYPE dataflow.lineage IS
  'A row of upstream()/downstream(): a related chunk, how far, the version involved and its current one';

CREATE FUNCTION dataflow.upstream(dataset text, key text)
RETURNS SETOF dataflow.lineage
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE c dataflow.chunk := dataflow._chunk(upstream.dataset, upstream.key);
BEGIN
  RETURN QUERY
  WITH RECURSIVE up(chunk_id, version, depth, path) AS (
    SELECT ri.chunk_id, ri.version, 1, ARRAY[c.id, ri.chunk_id]
      FROM dataflow.run_input ri WHERE ri.run_id = c.run_id
    UNION ALL
    SELECT ri.chunk_id, ri.version, up.depth + 1, up.path || ri.chunk_id
      FROM up
      JOIN dataflow.chunk ic ON ic.id = up.chunk_id
      JOIN dataflow.run_input ri ON ri.run_id = ic.run_id
     WHERE up.depth < 50 AND NOT ri.chunk_id = ANY (up.path)
  )
  SELECT u.depth, ds.name, ch.key, u.version, ch.version, ch.status, ch.run_id, ch.location,
         CASE WHEN u.version = ch.version AND dataflow._level(ch.status) > 0 THEN 'read current version'
              ELSE 'read an older version' END
    FROM (SELECT DISTINCT ON (up.chunk_id) * FROM up ORDER BY up.chunk_id, up.depth) u
    JOIN dataflow.chunk ch ON ch.id = u.chunk_id
    JOIN dataflow.dataset ds ON ds.id = ch.dataset_id
   ORDER BY u.depth, ds.name, ch.ord, ch.key;
END $$;
COMMENT ON FUNCTION dataflow.upstream(text, text) IS
  'Lineage upstream: the exact input chunk versions the chunk was built from, recursively '
  '(version read vs current_version shows what is stale)';

CREATE FUNCTION dataflow.downstream(dataset text, key text)
RETURNS SETOF dataflow.lineage
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE c dataflow.chunk := dataflow._chunk(downstream.dataset, downstream.key);
BEGIN
  RETURN QUERY
  WITH RECURSIVE down(chunk_id, parent, depth, path) AS (
    SELECT dp.consumer, c.id, 1, ARRAY[c.id, dp.consumer] FROM dataflow.dep dp WHERE dp.input = c.id
    UNION ALL
    SELECT dp.consumer, down.chunk_id, down.depth + 1, down.path || dp.consumer
      FROM down JOIN dataflow.dep dp ON dp.input = down.chunk_id
     WHERE down.depth < 50 AND NOT dp.consumer = ANY (down.path)
  )
  SELECT d2.depth, ds.name, ch.key,
         (SELECT ri.version FROM dataflow.run_input ri WHERE ri.run_id = ch.run_id AND ri.chunk_id = d2.parent),
         ch.version, ch.status, ch.run_id, ch.location,
         CASE WHEN EXISTS (SELECT FROM dataflow.run_input ri
                            WHERE ri.run_id = ch.run_id AND ri.chunk_id = d2.parent
                              AND ri.version = (SELECT pc.version FROM dataflow.chunk pc WHERE pc.id = d2.parent))
                   AND dataflow._level(ch.status) > 0 THEN 'built from it'
              WHEN dataflow._level(ch.status) > 0 THEN 'built from an older version'
              ELSE 'will be built from it' END
    FROM (SELECT DISTINCT ON (down.chunk_id) * FROM down ORDER BY down.chunk_id, down.depth) d2
    JOIN dataflow.chunk ch ON ch.id = d2.chunk_id
    JOIN dataflow.dataset ds ON ds.id = ch.dataset_id
   ORDER BY d2.depth, ds.name, ch.ord, ch.key;
END $$;
COMMENT ON FUNCTION dataflow.downstream(text, text) IS
  'Lineage downstream: every chunk that needs this one, recursively, and whether it was built from it';

CREATE FUNCTION dataflow.graph_dot() RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE out text;
BEGIN
  WITH counts AS (
    SELECT cc.dataset_id,
           sum(cc.waiting) AS waiting, sum(cc.queued) AS queued, sum(cc.running) AS running,
           sum(cc.ready) AS ready, sum(cc.validated) AS validated, sum(cc.invalid) AS invalid,
           sum(cc.failed) AS failed, sum(cc.skipped) AS skipped, sum(cc.cancelled) AS cancelled
      FROM dataflow.chunk_count cc GROUP BY cc.dataset_id
  ), nodes AS (
    SELECT format('  "ds:%s" [shape=box, style="rounded,filled", fillcolor="%s", label="%s\n%s"];',
                  d.name,
                  CASE WHEN coalesce(k.failed, 0) + coalesce(k.invalid, 0) > 0 THEN '#f4a6a6'
                       WHEN coalesce(k.running, 0) > 0 THEN '#a6c8f4'
                       WHEN coalesce(k.waiting, 0) + coalesce(k.queued, 0) > 0 THEN '#f4e3a6'
                       WHEN coalesce(k.ready, 0) + coalesce(k.validated, 0) + coalesce(k.skipped, 0) > 0 THEN '#b5e6b5'
                       ELSE '#eeeeee' END,
                  d.name,
                  coalesce(nullif(concat_ws(' ',
                    CASE WHEN k.validated > 0 THEN k.validated || ' validated' END,
                    CASE WHEN k.ready > 0 THEN k.ready || ' ready' END,
                    CASE WHEN k.skipped > 0 THEN k.skipped || ' skipped' END,
                    CASE WHEN k.running > 0 THEN k.running || ' running' END,
                    CASE WHEN k.queued > 0 THEN k.queued || ' queued' END,
                    CASE WHEN k.waiting > 0 THEN k.waiting || ' waiting' END,
                    CASE WHEN k.failed > 0 THEN k.failed || ' failed' END,
                    CASE WHEN k.invalid > 0 THEN k.invalid || ' invalid' END,
                    CASE WHEN k.cancelled > 0 THEN k.cancelled || ' cancelled' END), ''), 'no chunks')) AS line,
           1 AS grp, d.name AS sort
      FROM dataflow.dataset d LEFT JOIN counts k ON k.dataset_id = d.id
    UNION ALL
    SELECT format('  "job:%s" [shape=ellipse, label="%s\n(%s%s)"%s];', j.name, j.name, j.dispatch,
                  CASE WHEN j.max_concurrency IS NOT NULL THEN ', max ' || j.max_concurrency ELSE '' END,
                  CASE WHEN j.paused THEN ', style=dashed, color=gray' ELSE '' END),
           2, j.name
      FROM dataflow.job j
    UNION ALL
    SELECT format('  "job:%s" -> "ds:%s";', j.name, d.name), 3, j.name
      FROM dataflow.job j JOIN dataflow.dataset d ON d.id = j.output_id
    UNION ALL
    SELECT format('  "ds:%s" -> "job:%s" [label="%s"];', d.name, j.name,
                  ji.mapping || CASE WHEN ji.mapping = 'window' THEN '(' || ji.lo || ',' || ji.hi || ')' ELSE '' END
                  || CASE WHEN ji.need = 2 THEN ', validated' ELSE '' END),
           4, j.name || d.name
      FROM dataflow.job_input ji JOIN dataflow.job j ON j.id = ji.job_id JOIN dataflow.dataset d ON d.id = ji.dataset_id
  )
  SELECT 'digraph dataflow {' || E'\n' || '  rankdir=LR;' || E'\n' || '  node [fontname="Helvetica"];' || E'\n'
         || coalesce(string_agg(line, E'\n' ORDER BY grp, sort), '') || E'\n}' || E'\n'
    INTO out FROM nodes;
  RETURN out;
END $$;
COMMENT ON FUNCTION dataflow.graph_dot() IS
  'The dataset/job graph as Graphviz DOT, datasets coloured by status with chunk counts (dot -Tsvg)';

-- ==== src/sql/60_bi_views.sql
-- Status views for psql and BI tools (Metabase, Grafana, Superset). The
-- dataset, job and progress figures come from the incrementally maintained
-- counters (chunk_count, done_minute), so they stay fast at millions of chunks.

-- When a key's period ends: the next day or hour; NULL for int/text keys.
CREATE FUNCTION dataflow._period_end(kind text, ord bigint) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE kind
  WHEN 'date' THEN pg_catalog.to_timestamp(((ord OPERATOR(pg_catalog.+) 1) OPERATOR(pg_catalog.*) 86400)::double precision)
  WHEN 'hour' THEN pg_catalog.to_timestamp(((ord OPERATOR(pg_catalog.+) 1) OPERATOR(pg_catalog.*) 3600)::double precision)
  END;

CREATE VIEW dataflow.dataset_counts AS
SELECT cc.dataset_id,
       sum(cc.waiting)::bigint AS waiting, sum(cc.queued)::bigint AS queued, sum(cc.running)::bigint AS running,
       sum(cc.ready)::bigint AS ready, sum(cc.validated)::bigint AS validated, sum(cc.invalid)::bigint AS invalid,
       sum(cc.failed)::bigint AS failed, sum(cc.skipped)::bigint AS skipped, sum(cc.cancelled)::bigint AS cancelled,
       (sum(cc.waiting) + sum(cc.queued) + sum(cc.running) + sum(cc.ready) + sum(cc.validated) + sum(cc.invalid)
        + sum(cc.failed) + sum(cc.skipped) + sum(cc.cancelled) + sum(cc.resubmit))::bigint AS total,
       max(cc.newest_ord) AS newest_ord, max(cc.newest_at) AS newest_at
  FROM dataflow.chunk_count cc
 GROUP BY cc.dataset_id;
COMMENT ON VIEW dataflow.dataset_counts IS 'Chunk counts by status per dataset id (summed over counter shards)';
COMMENT ON COLUMN dataflow.dataset_counts.dataset_id IS 'Dataset id';
COMMENT ON COLUMN dataflow.dataset_counts.waiting IS 'Chunks waiting for inputs';
COMMENT ON COLUMN dataflow.dataset_counts.queued IS 'Chunks ready to be leased';
COMMENT ON COLUMN dataflow.dataset_counts.running IS 'Chunks leased';
COMMENT ON COLUMN dataflow.dataset_counts.ready IS 'Chunks produced';
COMMENT ON COLUMN dataflow.dataset_counts.validated IS 'Chunks produced and validated';
COMMENT ON COLUMN dataflow.dataset_counts.invalid IS 'Chunks that failed validation';
COMMENT ON COLUMN dataflow.dataset_counts.failed IS 'Chunks failed with no attempts left';
COMMENT ON COLUMN dataflow.dataset_counts.skipped IS 'Chunks declared empty';
COMMENT ON COLUMN dataflow.dataset_counts.cancelled IS 'Chunks cancelled by an operator';
COMMENT ON COLUMN dataflow.dataset_counts.total IS 'All chunks';
COMMENT ON COLUMN dataflow.dataset_counts.newest_ord IS 'Ordinal of the newest key that has been available';
COMMENT ON COLUMN dataflow.dataset_counts.newest_at IS 'When a chunk last became available';

CREATE VIEW dataflow.datasets AS
SELECT d.name AS dataset, d.key_kind, j.name AS job, d.requires_validation, d.location,
       coalesce(k.total, 0) AS chunks,
       coalesce(k.waiting, 0) AS waiting, coalesce(k.queued, 0) AS queued, coalesce(k.running, 0) AS running,
       coalesce(k.ready, 0) AS ready, coalesce(k.validated, 0) AS validated, coalesce(k.invalid, 0) AS invalid,
       coalesce(k.failed, 0) AS failed, coalesce(k.skipped, 0) AS skipped, coalesce(k.cancelled, 0) AS cancelled,
       coalesce(k.ready + k.validated + k.skipped, 0) AS available,
       CASE WHEN d.key_kind <> 'text' AND k.newest_ord IS NOT NULL
            THEN dataflow._key_text(d.key_kind, k.newest_ord) END AS newest_available_key,
       k.newest_at AS last_available_at,
       now() - k.newest_at AS freshness_lag,
       d.cadence, d.lateness
  FROM dataflow.dataset d
  LEFT JOIN dataflow.dataset_counts k ON k.dataset_id = d.id
  LEFT JOIN dataflow.job j ON j.output_id = d.id;
COMMENT ON VIEW dataflow.datasets IS 'One row per dataset: chunk counts by status, newest available key, freshness';
COMMENT ON COLUMN dataflow.datasets.dataset IS 'Dataset name';
COMMENT ON COLUMN dataflow.datasets.key_kind IS 'date, hour, int or text';
COMMENT ON COLUMN dataflow.datasets.job IS 'Producing job (NULL for a source dataset)';
COMMENT ON COLUMN dataflow.datasets.requires_validation IS 'Whether consumers wait for validation by default';
COMMENT ON COLUMN dataflow.datasets.location IS 'Location template';
COMMENT ON COLUMN dataflow.datasets.chunks IS 'All chunks';
COMMENT ON COLUMN dataflow.datasets.waiting IS 'Chunks waiting for inputs';
COMMENT ON COLUMN dataflow.datasets.queued IS 'Chunks runnable, not leased yet';
COMMENT ON COLUMN dataflow.datasets.running IS 'Chunks leased now';
COMMENT ON COLUMN dataflow.datasets.ready IS 'Chunks produced (not validated)';
COMMENT ON COLUMN dataflow.datasets.validated IS 'Chunks validated';
COMMENT ON COLUMN dataflow.datasets.invalid IS 'Chunks that failed validation';
COMMENT ON COLUMN dataflow.datasets.failed IS 'Chunks failed for good (attempts spent or fatal)';
COMMENT ON COLUMN dataflow.datasets.skipped IS 'Chunks declared empty';
COMMENT ON COLUMN dataflow.datasets.cancelled IS 'Chunks cancelled by an operator';
COMMENT ON COLUMN dataflow.datasets.available IS 'ready + validated + skipped';
COMMENT ON COLUMN dataflow.datasets.newest_available_key IS 'Newest key that has been available (date/hour/int)';
COMMENT ON COLUMN dataflow.datasets.last_available_at IS 'When a chunk of this dataset last became available';
COMMENT ON COLUMN dataflow.datasets.freshness_lag IS 'Time since a chunk last became available';
COMMENT ON COLUMN dataflow.datasets.cadence IS 'Expected cadence of new keys';
COMMENT ON COLUMN dataflow.datasets.lateness IS 'Allowed delay after a key''s period before it is late';

CREATE VIEW dataflow.jobs AS
SELECT j.name AS job, d.name AS output, j.dispatch, j.paused, j.priority,
       coalesce(k.running, 0) AS running, coalesce(k.queued, 0) AS queued, coalesce(k.waiting, 0) AS waiting,
       coalesce(k.failed, 0) AS failed,
       coalesce(k.ready + k.validated + k.skipped, 0) AS done, coalesce(k.total, 0) AS total,
       live.in_use AS concurrency_in_use, j.max_concurrency AS concurrency_limit,
       p.name AS pool, p.slots AS pool_slots,
       (SELECT count(*) FROM dataflow.run r WHERE r.pool_id = p.id AND r.status = 'running') AS pool_in_use,
       coalesce(h.succeeded, 0) AS succeeded_last_hour, coalesce(h.failed, 0) AS failed_last_hour,
       j.max_attempts, j.lease_for, j.backoff_min, j.backoff_max
  FROM dataflow.job j
  JOIN dataflow.dataset d ON d.id = j.output_id
  LEFT JOIN dataflow.dataset_counts k ON k.dataset_id = d.id
  LEFT JOIN dataflow.pool p ON p.id = j.pool_id
  LEFT JOIN LATERAL (SELECT count(*) AS in_use FROM dataflow.run r
                      WHERE r.job_id = j.id AND r.status = 'running') live ON true
  LEFT JOIN LATERAL (SELECT sum(m.succeeded)::bigint AS succeeded, sum(m.failed)::bigint AS failed
                       FROM dataflow.done_minute m
                      WHERE m.dataset_id = d.id AND m.minute >= now() - interval '1 hour') h ON true;
COMMENT ON VIEW dataflow.jobs IS
  'One row per job: chunks by state, concurrency in use (live leases) against its limit and pool, throughput';
COMMENT ON COLUMN dataflow.jobs.job IS 'Job name';
COMMENT ON COLUMN dataflow.jobs.output IS 'Dataset it produces';
COMMENT ON COLUMN dataflow.jobs.dispatch IS 'pull, http or airflow';
COMMENT ON COLUMN dataflow.jobs.paused IS 'Paused jobs are not leased';
COMMENT ON COLUMN dataflow.jobs.priority IS 'Higher first when the dispatcher chooses between jobs';
COMMENT ON COLUMN dataflow.jobs.running IS 'Output chunks running';
COMMENT ON COLUMN dataflow.jobs.queued IS 'Output chunks runnable';
COMMENT ON COLUMN dataflow.jobs.waiting IS 'Output chunks waiting for inputs';
COMMENT ON COLUMN dataflow.jobs.failed IS 'Output chunks failed for good';
COMMENT ON COLUMN dataflow.jobs.done IS 'Output chunks available (ready, validated, skipped)';
COMMENT ON COLUMN dataflow.jobs.total IS 'All output chunks';
COMMENT ON COLUMN dataflow.jobs.concurrency_in_use IS 'Live leases of this job';
COMMENT ON COLUMN dataflow.jobs.concurrency_limit IS 'max_concurrency (NULL: unlimited)';
COMMENT ON COLUMN dataflow.jobs.pool IS 'Pool the job draws slots from';
COMMENT ON COLUMN dataflow.jobs.pool_slots IS 'Slots of that pool';
COMMENT ON COLUMN dataflow.jobs.pool_in_use IS 'Live leases in that pool (all its jobs)';
COMMENT ON COLUMN dataflow.jobs.succeeded_last_hour IS 'Runs that completed in the last hour';
COMMENT ON COLUMN dataflow.jobs.failed_last_hour IS 'Runs that failed or expired in the last hour';
COMMENT ON COLUMN dataflow.jobs.max_attempts IS 'Attempts per version before a chunk fails';
COMMENT ON COLUMN dataflow.jobs.lease_for IS 'Default lease duration';
COMMENT ON COLUMN dataflow.jobs.backoff_min IS 'First retry delay';
COMMENT ON COLUMN dataflow.jobs.backoff_max IS 'Longest retry delay';

-- Completions per minute over the last 10 minutes, per dataset.
CREATE VIEW dataflow.dataset_rate AS
SELECT m.dataset_id, sum(m.succeeded)::numeric / 10 AS per_minute
  FROM dataflow.done_minute m
 WHERE m.minute >= date_trunc('minute', now()) - interval '9 minutes'
 GROUP BY m.dataset_id;
COMMENT ON VIEW dataflow.dataset_rate IS 'Chunks completed per minute over the last 10 minutes, per dataset id';
COMMENT ON COLUMN dataflow.dataset_rate.dataset_id IS 'Dataset id';
COMMENT ON COLUMN dataflow.dataset_rate.per_minute IS 'Completions per minute (10-minute average)';

CREATE VIEW dataflow.progress AS
SELECT 'job'::text AS kind, j.name AS name, d.name AS dataset, NULL::text AS from_key, NULL::text AS to_key,
       coalesce(k.ready + k.validated + k.skipped, 0) AS done, coalesce(k.total, 0) AS total,
       coalesce(k.running, 0) AS running, coalesce(k.failed + k.invalid, 0) AS failed,
       round(100.0 * coalesce(k.ready + k.validated + k.skipped, 0) / nullif(k.total, 0), 1) AS pct,
       coalesce(rt.per_minute, 0) AS per_minute,
       CASE WHEN rt.per_minute > 0 THEN
         make_interval(secs => (60 * (k.total - k.ready - k.validated - k.skipped - k.failed - k.invalid - k.cancelled)
                                / rt.per_minute)::double precision) END AS eta,
       j.created_at AS started_at
  FROM dataflow.job j
  JOIN dataflow.dataset d ON d.id = j.output_id
  LEFT JOIN dataflow.dataset_counts k ON k.dataset_id = d.id
  LEFT JOIN dataflow.dataset_rate rt ON rt.dataset_id = d.id
UNION ALL
SELECT 'backfill', 'backfill ' || b.id, d.name, b.from_key, b.to_key,
       bk.done, bk.total, bk.running, bk.failed,
       round(100.0 * bk.done / nullif(bk.total, 0), 1),
       coalesce(br.per_minute, 0),
       CASE WHEN br.per_minute > 0 THEN
         make_interval(secs => (60 * (bk.total - bk.done - bk.failed) / br.per_minute)::double precision) END,
       b.at
  FROM dataflow.backfill b
  JOIN dataflow.dataset d ON d.id = b.dataset_id
  CROSS JOIN LATERAL (
    SELECT coalesce(sum(cc.ready + cc.validated + cc.skipped), 0)::bigint AS done,
           coalesce(sum(cc.waiting + cc.queued + cc.running + cc.ready + cc.validated + cc.invalid + cc.failed
                        + cc.skipped + cc.cancelled + cc.resubmit), 0)::bigint AS total,
           coalesce(sum(cc.running), 0)::bigint AS running,
           coalesce(sum(cc.failed + cc.invalid), 0)::bigint AS failed,
           array_agg(DISTINCT cc.dataset_id) AS datasets
      FROM dataflow.chunk_count cc WHERE cc.backfill_id = b.id) bk
  LEFT JOIN LATERAL (SELECT sum(r.per_minute) AS per_minute FROM dataflow.dataset_rate r
                      WHERE r.dataset_id = ANY (bk.datasets)) br ON true;
COMMENT ON VIEW dataflow.progress IS
  'Progress per job (its output dataset) and per backfill (the chunks one expect() created): done, total, '
  'rate over the last 10 minutes and ETA';
COMMENT ON COLUMN dataflow.progress.kind IS 'job or backfill';
COMMENT ON COLUMN dataflow.progress.name IS 'Job name, or "backfill N"';
COMMENT ON COLUMN dataflow.progress.dataset IS 'Output dataset (job) or requested dataset (backfill)';
COMMENT ON COLUMN dataflow.progress.from_key IS 'First key of the backfill';
COMMENT ON COLUMN dataflow.progress.to_key IS 'Last key of the backfill';
COMMENT ON COLUMN dataflow.progress.done IS 'Chunks available';
COMMENT ON COLUMN dataflow.progress.total IS 'Chunks in scope';
COMMENT ON COLUMN dataflow.progress.running IS 'Chunks running';
COMMENT ON COLUMN dataflow.progress.failed IS 'Chunks failed or invalid';
COMMENT ON COLUMN dataflow.progress.pct IS 'done / total in percent';
COMMENT ON COLUMN dataflow.progress.per_minute IS 'Chunks completed per minute, last 10 minutes';
COMMENT ON COLUMN dataflow.progress.eta IS 'Time left at the current rate (NULL when idle)';
COMMENT ON COLUMN dataflow.progress.started_at IS 'When the job was created or the backfill requested';

CREATE VIEW dataflow.gaps AS
WITH bounds AS (
  SELECT d.id, d.name, d.key_kind,
         (SELECT min(c.ord) FROM dataflow.chunk c
           WHERE c.dataset_id = d.id AND c.status IN ('ready', 'validated', 'skipped')) AS lo,
         (SELECT max(c.ord) FROM dataflow.chunk c
           WHERE c.dataset_id = d.id AND c.status IN ('ready', 'validated', 'skipped')) AS hi
    FROM dataflow.dataset d
   WHERE d.key_kind IN ('date', 'hour', 'int')
)
SELECT b.name AS dataset, dataflow._key_text(b.key_kind, g) AS key, coalesce(c.status, 'missing') AS status,
       'hole'::text AS reason, dataflow._period_end(b.key_kind, g) AS period_end
  FROM bounds b
  CROSS JOIN LATERAL generate_series(b.lo, b.hi) g
  LEFT JOIN dataflow.chunk c ON c.dataset_id = b.id AND c.ord = g
 WHERE b.lo IS NOT NULL AND (c.id IS NULL OR c.status NOT IN ('ready', 'validated', 'skipped'))
UNION ALL
SELECT b.name, c.key, c.status, 'overdue', dataflow._period_end(b.key_kind, c.ord)
  FROM bounds b
  JOIN dataflow.dataset d ON d.id = b.id
  JOIN dataflow.chunk c ON c.dataset_id = d.id
 WHERE d.lateness IS NOT NULL AND d.key_kind IN ('date', 'hour')
   AND c.status NOT IN ('ready', 'validated', 'skipped')
   AND dataflow._period_end(d.key_kind, c.ord) + d.lateness < now()
   -- keys between the oldest and newest available ones are listed as holes already
   AND (b.lo IS NULL OR c.ord < b.lo OR c.ord > b.hi);
COMMENT ON VIEW dataflow.gaps IS
  'Holes: keys between the oldest and newest available keys of a date/hour/int dataset with no available '
  'chunk; and overdue: expected keys past their period plus the dataset''s lateness, not available yet';
COMMENT ON COLUMN dataflow.gaps.dataset IS 'Dataset name';
COMMENT ON COLUMN dataflow.gaps.key IS 'The missing or late key';
COMMENT ON COLUMN dataflow.gaps.status IS 'Chunk status, or missing when no chunk exists';
COMMENT ON COLUMN dataflow.gaps.reason IS 'hole or overdue';
COMMENT ON COLUMN dataflow.gaps.period_end IS 'End of the key''s period (date/hour keys)';

CREATE VIEW dataflow.deletable AS
SELECT d.name AS dataset, c.key, c.version, c.location, c.row_count,
       (SELECT count(*) FROM dataflow.dep dp WHERE dp.input = c.id) AS consumers,
       c.available_at
  FROM dataflow.chunk c
  JOIN dataflow.dataset d ON d.id = c.dataset_id
 WHERE c.status IN ('ready', 'validated')
   AND c.location IS NOT NULL
   -- an intermediate dataset: produced by a job and consumed by one
   AND EXISTS (SELECT FROM dataflow.job jp WHERE jp.output_id = d.id)
   AND EXISTS (SELECT FROM dataflow.dep dp WHERE dp.input = c.id)
   -- never a dimension read through `latest`
   AND NOT EXISTS (SELECT FROM dataflow.job_input jl WHERE jl.dataset_id = d.id AND jl.mapping = 'latest')
   -- every consumer is available and was built from this exact version
   AND NOT EXISTS (
     SELECT FROM dataflow.dep dp
       JOIN dataflow.chunk cc ON cc.id = dp.consumer
      WHERE dp.input = c.id
        AND (cc.status NOT IN ('ready', 'validated', 'skipped')
             OR (cc.status <> 'skipped' AND NOT EXISTS (
                   SELECT FROM dataflow.run_input ri
                    WHERE ri.run_id = cc.run_id AND ri.chunk_id = c.id AND ri.version = c.version))))
   -- and nobody reads it now
   AND NOT EXISTS (SELECT FROM dataflow.run_input ri JOIN dataflow.run r ON r.id = ri.run_id
                    WHERE ri.chunk_id = c.id AND r.status = 'running');
COMMENT ON VIEW dataflow.deletable IS
  'Intermediate chunks every consumer has finished with (all consumers available and built from this '
  'exact version, no run reading it): their data at location is safe to delete';
COMMENT ON COLUMN dataflow.deletable.dataset IS 'Dataset name';
COMMENT ON COLUMN dataflow.deletable.key IS 'Chunk key';
COMMENT ON COLUMN dataflow.deletable.version IS 'Current version';
COMMENT ON COLUMN dataflow.deletable.location IS 'Where its data is';
COMMENT ON COLUMN dataflow.deletable.row_count IS 'Rows reported by the producer';
COMMENT ON COLUMN dataflow.deletable.consumers IS 'Consumer chunks, all finished with it';
COMMENT ON COLUMN dataflow.deletable.available_at IS 'When it became available';

CREATE VIEW dataflow.events AS
SELECT e.id AS event_id, e.at, d.name AS dataset, e.key, e.version, e.from_status, e.to_status,
       e.actor, e.run_id, e.detail
  FROM dataflow.event e
  LEFT JOIN dataflow.dataset d ON d.id = e.dataset_id;
COMMENT ON VIEW dataflow.events IS
  'The append-only history of every status transition (the forensic record), newest last';
COMMENT ON COLUMN dataflow.events.event_id IS 'Event id (increasing)';
COMMENT ON COLUMN dataflow.events.at IS 'When (transaction time)';
COMMENT ON COLUMN dataflow.events.dataset IS 'Dataset of the chunk (NULL for job events)';
COMMENT ON COLUMN dataflow.events.key IS 'Chunk key';
COMMENT ON COLUMN dataflow.events.version IS 'Chunk version after the transition';
COMMENT ON COLUMN dataflow.events.from_status IS 'Status before (NULL when the chunk was created)';
COMMENT ON COLUMN dataflow.events.to_status IS 'Status after (or late, paused, resumed)';
COMMENT ON COLUMN dataflow.events.actor IS 'Role or worker that caused it';
COMMENT ON COLUMN dataflow.events.run_id IS 'Run involved, if any';
COMMENT ON COLUMN dataflow.events.detail IS 'Why: reason, error, inputs, backfill …';

-- ==== src/sql/65_time.sql
-- Time: schedule() expects new keys as time passes and records late chunks;
-- prune() keeps history tables bounded. Plain SQL so pull-only deployments
-- (no background worker) can call them from cron, and tests can drive them.
-- Keys are UTC: the date key of now() is now() at time zone 'UTC'.

CREATE INDEX event_at ON dataflow.event USING brin (at);

CREATE FUNCTION dataflow._ord_of_time(kind text, t timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN pg_catalog.floor(EXTRACT(epoch FROM t) OPERATOR(pg_catalog./)
                        CASE kind WHEN 'date' THEN 86400 ELSE 3600 END)::bigint;

CREATE FUNCTION dataflow.schedule() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d record;
  step bigint; cur bigint; nxt bigint; k bigint;
  made integer := 0; n integer;
BEGIN
  FOR d IN SELECT ds.*, (SELECT max(c.ord) FROM dataflow.chunk c WHERE c.dataset_id = ds.id) AS max_ord
             FROM dataflow.dataset ds
            WHERE ds.cadence IS NOT NULL AND ds.key_kind IN ('date', 'hour')
            ORDER BY ds.id LOOP
    step := greatest(1, (extract(epoch FROM d.cadence) / CASE d.key_kind WHEN 'date' THEN 86400 ELSE 3600 END)::bigint);
    cur := dataflow._ord_of_time(d.key_kind, now());
    nxt := coalesce(d.max_ord + step, cur);
    -- Catch up at most 1000 keys a call after a long outage.
    IF step = 1 THEN
      IF nxt <= cur THEN
        made := made + dataflow.expect(d.name, dataflow._key_text(d.key_kind, nxt),
                                       dataflow._key_text(d.key_kind, least(cur, nxt + 999)));
      END IF;
    ELSE
      k := nxt; n := 0;
      WHILE k <= cur AND n < 1000 LOOP
        made := made + dataflow.expect(d.name, dataflow._key_text(d.key_kind, k));
        k := k + step; n := n + 1;
      END LOOP;
    END IF;
  END LOOP;

  -- Late: not available past the end of its period plus the dataset's lateness,
  -- recorded once per chunk version. Only recent keys (100 periods) are looked at.
  INSERT INTO dataflow.event (dataset_id, chunk_id, key, run_id, version, from_status, to_status, actor, detail)
  SELECT c.dataset_id, c.id, c.key, c.run_id, c.version, c.status, 'late', 'scheduler',
         jsonb_build_object('due', dataflow._period_end(ds.key_kind, c.ord) + ds.lateness,
                            'lateness', ds.lateness)
    FROM dataflow.dataset ds
    JOIN dataflow.chunk c ON c.dataset_id = ds.id
   WHERE ds.lateness IS NOT NULL AND ds.key_kind IN ('date', 'hour')
     AND c.ord BETWEEN dataflow._ord_of_time(ds.key_kind, now() - ds.lateness) - 100
                   AND dataflow._ord_of_time(ds.key_kind, now() - ds.lateness)
     AND dataflow._level(c.status) = 0
     AND dataflow._period_end(ds.key_kind, c.ord) + ds.lateness < now()
     AND NOT EXISTS (SELECT FROM dataflow.event e
                      WHERE e.chunk_id = c.id AND e.to_status = 'late' AND e.version = c.version);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN made + n;
END $$;
COMMENT ON FUNCTION dataflow.schedule() IS
  'Expect the keys of datasets with a cadence up to now (UTC; at most 1000 per dataset per call) and record '
  'a late event for chunks overdue by their dataset''s lateness; returns chunks created + late events';

-- The retention floor: history younger than this is kept unless a dataflow_admin
-- prunes it. It is the dataflow.retention setting (PGC_SIGHUP: the server
-- configuration, written by a superuser), else 30 days.
CREATE FUNCTION dataflow._retention_floor() RETURNS interval
LANGUAGE sql STABLE PARALLEL SAFE
RETURN COALESCE(NULLIF(pg_catalog.current_setting('dataflow.retention', true), '')::interval,
                interval '30 days');

-- Day and month arithmetic in UTC, whatever the caller's TimeZone (a DST change must not
-- shorten the floor by an hour).
CREATE FUNCTION dataflow.prune(retention interval DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
  min_keep interval;
  keep interval;
  n bigint; total bigint := 0;
BEGIN
  -- The floor is a superuser setting of the library: load it first (a C function), so a
  -- value a caller SET before the library defined the setting is not what we read.
  PERFORM dataflow._key_ord('int', '0');
  min_keep := dataflow._retention_floor();
  keep := coalesce(retention, min_keep);
  -- Compared as cut-off times, not as intervals: interval comparison takes a month for 30
  -- days, so '1 mon' or a mixed-sign '-1000 mon 30030 days' compared as >= 30 days while
  -- now() - it was later than now() - 30 days (or in the future).
  IF now() - keep >= now() THEN
    RAISE EXCEPTION 'retention must be positive' USING ERRCODE = '22023',
          DETAIL = pg_catalog.format('now() - %s is not in the past.', keep);
  END IF;
  -- Shortening history below the floor is the admin's decision (like a dataset's own
  -- retention, which only the admin can set); an operator's prune keeps at least the floor.
  IF now() - keep > now() - min_keep AND NOT pg_has_role(dataflow._caller(), 'dataflow_admin', 'MEMBER') THEN
    RAISE EXCEPTION 'prune(%) would delete history younger than the retention floor (%)', keep, min_keep
      USING ERRCODE = '42501',
            DETAIL = 'Only members of dataflow_admin may prune events and runs younger than dataflow.retention.',
            HINT = 'Call dataflow.prune() without an argument (or with one of at least the floor); the floor is '
                   'the dataflow.retention setting, and a dataset''s own retention is set by an admin.';
  END IF;
  -- Events, oldest first, in bounded batches.
  DELETE FROM dataflow.event e
   WHERE e.id IN (SELECT ev.id FROM dataflow.event ev
                    LEFT JOIN dataflow.dataset d ON d.id = ev.dataset_id
                   WHERE ev.at < now() - coalesce(d.retention, keep)
                   ORDER BY ev.id LIMIT 50000);
  GET DIAGNOSTICS n = ROW_COUNT; total := total + n;
  -- Finished runs, except the one that produced a chunk's current version (its lineage).
  WITH old AS (
    SELECT r.id FROM dataflow.run r
      JOIN dataflow.chunk c ON c.id = r.chunk_id
      JOIN dataflow.dataset d ON d.id = c.dataset_id
     WHERE r.status <> 'running' AND r.finished_at < now() - coalesce(d.retention, keep)
       AND c.run_id IS DISTINCT FROM r.id
     ORDER BY r.id LIMIT 50000
  ), gone AS (
    DELETE FROM dataflow.run_input ri USING old WHERE ri.run_id = old.id
  )
  DELETE FROM dataflow.run r USING old WHERE r.id = old.id;
  GET DIAGNOSTICS n = ROW_COUNT; total := total + n;
  DELETE FROM dataflow.done_minute WHERE minute < now() - interval '2 days';
  GET DIAGNOSTICS n = ROW_COUNT; total := total + n;
  RETURN total;
END $$;
COMMENT ON FUNCTION dataflow.prune(interval) IS
  'Delete events and finished runs older than the dataset''s retention (else the given retention, else '
  'dataflow.retention, else 30 days), keeping each chunk''s producing run; returns rows deleted. '
  'A retention shorter than dataflow.retention (the floor) is refused (42501) unless the caller is a dataflow_admin';

-- ==== src/sql/70_worker.sql
-- The background worker's SQL side: wake-on-commit, the webhook subscription
-- and outbox tables, and the small functions the worker calls to claim work
-- and record results (each claim and each record is its own short transaction
-- in the worker; no transaction is open during HTTP).

CREATE FUNCTION dataflow._wake() RETURNS void
AS 'MODULE_PATHNAME', 'df_wake' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION dataflow._wake() IS
  'Wake the background worker when the calling transaction commits (no effect on rollback)';

-- ---- webhooks ------------------------------------------------------------

CREATE TABLE dataflow.subscription (
  id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name       text NOT NULL UNIQUE,
  url        text NOT NULL CHECK (url ~* '^https?://[^\s/?#@]+([/?#]|$)' AND url !~ '[[:cntrl:]]'),
  datasets   text[],
  statuses   text[],
  secret     text NOT NULL CHECK (secret ~ '^whsec_[A-Za-z0-9+/]+={0,2}$'),
  enabled    boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  disabled_at     timestamptz,  -- set with disabled_reason when the worker disables it (410 Gone)
  disabled_reason text
);
COMMENT ON TABLE dataflow.subscription IS
  'Webhook subscriptions: events of the listed datasets (NULL: all) entering the listed statuses '
  '(NULL: all) are POSTed to url, signed with secret (readable by the admin role only); a receiver '
  'answering 410 Gone gets its subscription disabled, with disabled_at and disabled_reason';

-- The outbox: one durable row per (event, matching subscription), written in
-- the event's own transaction. msg_id is the webhook-id, stable across retries.
CREATE TABLE dataflow.delivery (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  subscription_id integer NOT NULL REFERENCES dataflow.subscription (id) ON DELETE CASCADE,
  event_id        bigint NOT NULL,
  chunk_id        bigint,
  payload         jsonb NOT NULL,
  status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts        integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_attempt_at timestamptz,
  last_http_status integer,
  last_error      text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  finished_at     timestamptz
);
CREATE INDEX delivery_due ON dataflow.delivery (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX delivery_order ON dataflow.delivery (subscription_id, chunk_id, id) WHERE status = 'pending';
CREATE INDEX delivery_finished ON dataflow.delivery (finished_at) WHERE status <> 'pending';
COMMENT ON TABLE dataflow.delivery IS
  'Webhook outbox: one row per event and matching subscription; the worker sends, retries and records it';

CREATE TABLE dataflow.delivery_attempt (
  delivery_id bigint NOT NULL REFERENCES dataflow.delivery (id) ON DELETE CASCADE,
  attempt     integer NOT NULL,
  at          timestamptz NOT NULL DEFAULT now(),
  http_status integer,
  error       text,
  duration_ms integer,
  PRIMARY KEY (delivery_id, attempt)
);
COMMENT ON TABLE dataflow.delivery_attempt IS 'Every webhook delivery attempt and its result';

REVOKE ALL ON dataflow.subscription, dataflow.delivery, dataflow.delivery_attempt FROM PUBLIC;

-- The worker's session lives for days and makes its plans once, often while run,
-- queue and delivery are nearly empty: the functions it calls run with sequential
-- scans off, so a plan made then stays an index probe as the tables grow.

-- Fan-out of new events to the outbox, and wake-up of the worker when a chunk
-- of an http/airflow job became queued. Statement-level with a transition
-- table: with no subscription it costs two small probes per INSERT statement.
CREATE FUNCTION dataflow._event_fanout() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE n bigint;
BEGIN
  IF EXISTS (SELECT FROM new_events e JOIN dataflow.job j ON j.output_id OPERATOR(pg_catalog.=) e.dataset_id
              WHERE e.to_status OPERATOR(pg_catalog.=) 'queued' AND j.dispatch OPERATOR(pg_catalog.<>) 'pull') THEN
    PERFORM dataflow._wake();
  END IF;
  IF NOT (EXISTS (SELECT FROM dataflow.subscription s WHERE s.enabled)) THEN
    RETURN NULL;
  END IF;
  INSERT INTO dataflow.delivery (subscription_id, event_id, chunk_id, payload)
  SELECT s.id, e.id, e.chunk_id,
         jsonb_build_object(
           'type', 'chunk.' OPERATOR(pg_catalog.||) e.to_status,
           'timestamp', to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'data', jsonb_build_object('event_id', e.id, 'dataset', d.name, 'key', e.key,
                                      'version', e.version, 'from_status', e.from_status,
                                      'to_status', e.to_status, 'run_id', e.run_id,
                                      'actor', e.actor, 'detail', e.detail))
    FROM new_events e
    LEFT JOIN dataflow.dataset d ON d.id OPERATOR(pg_catalog.=) e.dataset_id
    JOIN dataflow.subscription s
      ON s.enabled
     AND (s.datasets IS NULL OR d.name OPERATOR(pg_catalog.=) ANY (s.datasets))
     AND (s.statuses IS NULL OR e.to_status OPERATOR(pg_catalog.=) ANY (s.statuses))
   -- Only events this transaction records (at defaults to now(); nothing sets it): rows
   -- a restore loads were fanned out at the source, their deliveries are restored too.
   WHERE e.at OPERATOR(pg_catalog.=) pg_catalog.now()
   ORDER BY e.id, s.id;
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n > 0 THEN
    PERFORM dataflow._wake();
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER event_fanout AFTER INSERT ON dataflow.event
  REFERENCING NEW TABLE AS new_events
  FOR EACH STATEMENT EXECUTE FUNCTION dataflow._event_fanout();

CREATE FUNCTION dataflow._new_webhook_secret() RETURNS text
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
RETURN 'whsec_' OPERATOR(pg_catalog.||) encode(
  decode(replace(gen_random_uuid()::text, '-', ''), 'hex') OPERATOR(pg_catalog.||)
  decode(replace(gen_random_uuid()::text, '-', ''), 'hex'), 'base64');

CREATE FUNCTION dataflow.subscribe(name text, url text, datasets text[] DEFAULT NULL,
                                   statuses text[] DEFAULT NULL, secret text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE s text := coalesce(secret, dataflow._new_webhook_secret()); bad text;
BEGIN
  PERFORM dataflow._check_name('subscription', name);
  IF url IS NULL THEN
    RAISE EXCEPTION 'url must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF url !~* '^https?://[^\s/?#@]+([/?#]|$)' OR url ~ '[[:cntrl:][:space:]]' OR length(url) > 2000 THEN
    RAISE EXCEPTION 'invalid webhook URL "%"', left(url, 200) USING ERRCODE = '22023',
      HINT = 'Give an http:// or https:// URL without credentials (user@host) in it; '
             'private addresses also need dataflow.http_allow.';
  END IF;
  IF s !~ '^whsec_[A-Za-z0-9+/]+={0,2}$' OR length(s) < 30 OR length(s) % 4 <> 2 THEN
    RAISE EXCEPTION 'invalid webhook secret' USING ERRCODE = '22023',
      HINT = 'Use "whsec_" followed by the base64 of at least 18 random bytes, or pass NULL to generate one.';
  END IF;
  SELECT x INTO bad FROM unnest(statuses) x
   WHERE x IS NULL OR x NOT IN ('waiting', 'queued', 'running', 'ready', 'validated', 'invalid', 'failed',
                                'skipped', 'cancelled', 'resubmit') LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'unknown chunk status "%" in statuses', bad USING ERRCODE = '22023',
      HINT = 'Statuses: waiting, queued, running, ready, validated, invalid, failed, skipped, cancelled, resubmit.';
  END IF;
  IF EXISTS (SELECT FROM unnest(datasets) x WHERE x IS NULL) THEN
    RAISE EXCEPTION 'datasets must not contain NULL' USING ERRCODE = '22004';
  END IF;
  IF EXISTS (SELECT FROM dataflow.subscription t WHERE t.name = subscribe.name) THEN
    RAISE EXCEPTION 'subscription "%" already exists', name USING ERRCODE = '42710',
      HINT = 'Drop it first with dataflow.unsubscribe().';
  END IF;
  INSERT INTO dataflow.subscription (name, url, datasets, statuses, secret)
  VALUES (name, url, datasets, statuses, s);
  RETURN s;
END $$;
COMMENT ON FUNCTION dataflow.subscribe(text, text, text[], text[], text) IS
  'Subscribe a URL to chunk events (filtered by dataset names and new statuses; NULL = all); deliveries are '
  'signed in the Standard Webhooks form. Returns the whsec_ signing secret (generated when NULL), shown only here';

CREATE FUNCTION dataflow.unsubscribe(name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  DELETE FROM dataflow.subscription s WHERE s.name = unsubscribe.name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'subscription "%" does not exist', name USING ERRCODE = '42704';
  END IF;
END $$;
COMMENT ON FUNCTION dataflow.unsubscribe(text) IS
  'Drop a webhook subscription and its pending and past deliveries';

CREATE FUNCTION dataflow.drop_subscription(name text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
  SELECT dataflow.unsubscribe(name);
END;
COMMENT ON FUNCTION dataflow.drop_subscription(text) IS 'Same as dataflow.unsubscribe(name)';

-- The way back after the worker disabled a subscription (its receiver answered
-- 410 Gone) or an admin did: enabled again, and its pending deliveries are due
-- at once, oldest first, per-chunk order kept.
CREATE FUNCTION dataflow.enable_subscription(name text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE sid integer; n integer;
BEGIN
  IF name IS NULL THEN
    RAISE EXCEPTION 'name must not be NULL' USING ERRCODE = '22004';
  END IF;
  UPDATE dataflow.subscription s SET enabled = true, disabled_at = NULL, disabled_reason = NULL
   WHERE s.name = enable_subscription.name
  RETURNING s.id INTO sid;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'subscription "%" does not exist', left(name, 64) USING ERRCODE = '42704',
      HINT = 'SELECT name, enabled, disabled_reason FROM dataflow.subscription lists them.';
  END IF;
  UPDATE dataflow.delivery d SET next_attempt_at = now()
   WHERE d.subscription_id = sid AND d.status = 'pending' AND d.next_attempt_at > now();
  SELECT count(*) INTO n FROM dataflow.delivery d WHERE d.subscription_id = sid AND d.status = 'pending';
  IF n > 0 THEN
    PERFORM dataflow._wake();
  END IF;
  RETURN n;
END $$;
COMMENT ON FUNCTION dataflow.enable_subscription(text) IS
  'Enable a webhook subscription again (after its receiver answered 410 Gone, or an admin disabled it): '
  'its pending deliveries are sent at once; returns how many are pending';

CREATE FUNCTION dataflow.redeliver(delivery bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  UPDATE dataflow.delivery d
     SET status = 'pending', attempts = 0, next_attempt_at = now(), finished_at = NULL
   WHERE d.id = redeliver.delivery;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'delivery % does not exist', delivery USING ERRCODE = '42704';
  END IF;
  PERFORM dataflow._wake();
END $$;
COMMENT ON FUNCTION dataflow.redeliver(bigint) IS
  'Send one delivery again (delivered or failed), with a fresh retry schedule';

CREATE FUNCTION dataflow.redeliver(subscription text, since timestamptz, only_failed boolean DEFAULT true)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE sid integer; n integer;
BEGIN
  SELECT s.id INTO sid FROM dataflow.subscription s WHERE s.name = redeliver.subscription;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'subscription "%" does not exist', subscription USING ERRCODE = '42704';
  END IF;
  IF since IS NULL OR only_failed IS NULL THEN
    RAISE EXCEPTION 'since and only_failed must not be NULL' USING ERRCODE = '22004';
  END IF;
  UPDATE dataflow.delivery d
     SET status = 'pending', attempts = 0, next_attempt_at = now(), finished_at = NULL
   WHERE d.subscription_id = sid AND d.created_at >= since AND d.status <> 'pending'
     AND (NOT only_failed OR d.status = 'failed');
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n > 0 THEN
    PERFORM dataflow._wake();
  END IF;
  RETURN n;
END $$;
COMMENT ON FUNCTION dataflow.redeliver(text, timestamptz, boolean) IS
  'Send again the deliveries of a subscription created since a time (by default only those that gave up); '
  'returns how many were queued';

CREATE VIEW dataflow.deliveries AS
SELECT d.id, s.name AS subscription, d.event_id, d.payload -> 'data' ->> 'dataset' AS dataset,
       d.payload -> 'data' ->> 'key' AS key, d.payload ->> 'type' AS type, d.status, d.attempts,
       d.next_attempt_at, d.last_attempt_at, d.last_http_status, d.last_error, d.created_at, d.finished_at
  FROM dataflow.delivery d JOIN dataflow.subscription s ON s.id = d.subscription_id;
COMMENT ON VIEW dataflow.deliveries IS 'Webhook deliveries and their state (no URLs, no secrets)';
COMMENT ON COLUMN dataflow.deliveries.id IS 'Delivery id; webhook-id is msg_<id>';
COMMENT ON COLUMN dataflow.deliveries.subscription IS 'Subscription name';
COMMENT ON COLUMN dataflow.deliveries.event_id IS 'The dataflow.event this delivery reports';
COMMENT ON COLUMN dataflow.deliveries.dataset IS 'Dataset of the event';
COMMENT ON COLUMN dataflow.deliveries.key IS 'Chunk key of the event';
COMMENT ON COLUMN dataflow.deliveries.type IS 'Event type, chunk.<new status>';
COMMENT ON COLUMN dataflow.deliveries.status IS 'pending, delivered, or failed (gave up after the last retry)';
COMMENT ON COLUMN dataflow.deliveries.attempts IS 'Attempts made so far';
COMMENT ON COLUMN dataflow.deliveries.next_attempt_at IS 'When a pending delivery is due';
COMMENT ON COLUMN dataflow.deliveries.last_attempt_at IS 'When it was last attempted';
COMMENT ON COLUMN dataflow.deliveries.last_http_status IS 'HTTP status of the last attempt (NULL: no response)';
COMMENT ON COLUMN dataflow.deliveries.last_error IS 'Why the last attempt failed';
COMMENT ON COLUMN dataflow.deliveries.created_at IS 'When the event was recorded';
COMMENT ON COLUMN dataflow.deliveries.finished_at IS 'When it was delivered or given up';

-- ---- calls made by the background worker ----------------------------------

-- What the worker sent for an http/airflow run, so an interrupted Airflow
-- trigger can be retried (and adopted on 409) after a restart.
CREATE TABLE dataflow._dispatch (
  run_id     bigint PRIMARY KEY,
  task       jsonb NOT NULL,
  triggered  boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON dataflow._dispatch FROM PUBLIC;

-- Jobs the worker dispatches that have due queued chunks (or an incremental batch to
-- cut), best first.
CREATE FUNCTION dataflow._worker_jobs()
RETURNS TABLE (job text, dispatch text, url text, target text, auth text, username text, secret text,
               api_version integer, connect_timeout_ms integer, timeout_ms integer)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off
AS $$
BEGIN
  RETURN QUERY
  SELECT j.name, j.dispatch,
         CASE WHEN j.endpoint IS NOT NULL THEN j.endpoint
              WHEN j.dispatch = 'airflow' THEN c.base_url
              ELSE rtrim(c.base_url, '/') || '/' || ltrim(coalesce(j.target, ''), '/') END,
         j.target, coalesce(c.auth, 'none'), c.username, c.secret, coalesce(c.api_version, 1),
         -- NULL (the worker's GUC) for a value out of the table's bounds, never an overflow
         CASE WHEN c.connect_timeout <= interval '1 hour' THEN (extract(epoch FROM c.connect_timeout) * 1000)::integer END,
         CASE WHEN c.timeout <= interval '24 hours' THEN (extract(epoch FROM c.timeout) * 1000)::integer END
    FROM dataflow.job j LEFT JOIN dataflow.connection c ON c.id = j.connection_id
   WHERE j.dispatch IN ('http', 'airflow') AND NOT j.paused
     AND (j.endpoint IS NOT NULL OR c.id IS NOT NULL)
     -- due queued chunks, or inputs waiting for an incremental job's next batch (lease() cuts it)
     AND (EXISTS (SELECT FROM dataflow.queue q WHERE q.dataset_id = j.output_id AND q.not_before <= now())
          OR EXISTS (SELECT FROM dataflow.incremental_pending p WHERE p.job_id = j.id))
   ORDER BY j.priority DESC, j.id;
END $$;

-- Lease for the worker; Airflow runs get their dag_run_id, http runs their
-- Idempotency-Key (both dataflow-<run id>) recorded at once as external_id.
-- The lease runs in a subtransaction: when it waits longer than the worker's
-- lock_timeout (dataflow.worker_lock_timeout) for a lock another session holds
-- (the job's or pool's concurrency lock, an incremental cut, a row), nothing of
-- it is kept and one row with run_id NULL and job p_job says so, so the worker
-- skips the job for a while instead of aborting its whole claim.
CREATE FUNCTION dataflow._worker_claim(p_job text, p_n integer) RETURNS SETOF dataflow.task
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE ts dataflow.task[]; airflow boolean; skipped dataflow.task;
BEGIN
  SELECT j.dispatch = 'airflow' INTO airflow FROM dataflow.job j WHERE j.name = p_job;
  BEGIN
    SELECT array_agg(l ORDER BY l.run_id) INTO ts FROM dataflow.lease(p_job, 'bgworker', p_n) l;
    IF ts IS NULL THEN
      RETURN;
    END IF;
    IF airflow THEN
      INSERT INTO dataflow._dispatch (run_id, task) SELECT t.run_id, to_jsonb(t) FROM unnest(ts) t;
    END IF;
    UPDATE dataflow.run r SET external_id = 'dataflow-' || r.id
     WHERE r.id = ANY (ARRAY(SELECT t.run_id FROM unnest(ts) t));
  EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
    skipped.job := p_job;
    skipped.key := SQLERRM;
    RETURN NEXT skipped;
    RETURN;
  END;
  RETURN QUERY SELECT * FROM unnest(ts) ORDER BY run_id;
END $$;

-- Live Airflow runs of the worker: to trigger (not yet acknowledged) or poll.
CREATE FUNCTION dataflow._worker_airflow_runs()
RETURNS TABLE (run_id bigint, token uuid, external_id text, triggered boolean, task text, dag_id text,
               base_url text, auth text, username text, secret text, api_version integer,
               connect_timeout_ms integer, timeout_ms integer)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off
AS $$
BEGIN
  RETURN QUERY
  SELECT r.id, r.token, r.external_id, x.triggered, x.task::text, j.target, c.base_url, c.auth, c.username,
         c.secret, coalesce(c.api_version, 1),
         CASE WHEN c.connect_timeout <= interval '1 hour' THEN (extract(epoch FROM c.connect_timeout) * 1000)::integer END,
         CASE WHEN c.timeout <= interval '24 hours' THEN (extract(epoch FROM c.timeout) * 1000)::integer END
    FROM dataflow._dispatch x
    JOIN dataflow.run r ON r.id = x.run_id
    JOIN dataflow.job j ON j.id = r.job_id
    JOIN dataflow.connection c ON c.id = j.connection_id
   WHERE r.status = 'running'
   ORDER BY r.id;
END $$;

-- Records one dispatch outcome, as one element of _worker_results (which the worker
-- calls once per recording pass), and raises on any error: a lease that is no longer
-- live (expired, superseded, cancelled), or an answer PostgreSQL refuses. p_info is
-- the engine's JSON text, cast here, so a refusal is an error of this result and not
-- of the statement recording the pass.
-- 'retry' with p_retry_after (a 429/503 with Retry-After, already capped): the
-- chunk's next attempt waits exactly that long instead of the job's backoff.
-- 'gone' (the endpoint answered 410 Gone): the run fails without retry and the
-- job is paused, so its other chunks are not sent to a vanished endpoint.
CREATE FUNCTION dataflow._worker_record(p_token uuid, p_kind text, p_row_count bigint, p_checksum text,
                                        p_info text, p_location text, p_error text, p_retry boolean,
                                        p_retry_after integer)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off AS $$
DECLARE rid bigint; jname text;
BEGIN
  SELECT r.id INTO rid FROM dataflow.run r WHERE r.token = p_token;
  CASE p_kind
    WHEN 'succeeded' THEN
      PERFORM dataflow.complete(p_token, p_row_count, p_checksum, p_info::jsonb, p_location);
    WHEN 'failed' THEN
      PERFORM dataflow.fail(p_token, p_error, p_retry);
    WHEN 'retry' THEN
      PERFORM dataflow._fail(p_token, p_error, true, p_retry_after);
    WHEN 'gone' THEN
      PERFORM dataflow.fail(p_token, p_error, false);
      UPDATE dataflow.job j SET paused = true
        FROM dataflow.run r
       WHERE r.id = rid AND j.id = r.job_id AND NOT j.paused
      RETURNING j.name INTO jname;
      IF FOUND THEN
        INSERT INTO dataflow.event (to_status, actor, detail)
        VALUES ('paused', 'bgworker', jsonb_build_object('job', jname, 'was_paused', false, 'reason', p_error));
        RAISE WARNING 'pg_dataflow worker: job "%" paused: its endpoint answered 410 Gone', jname
          USING HINT = 'Fix the endpoint, then dataflow.resume_job(''' || jname || ''') and resubmit the failed chunk.';
      END IF;
    WHEN 'pending' THEN
      UPDATE dataflow._dispatch SET triggered = true WHERE run_id = rid;
      PERFORM dataflow.heartbeat(p_token);
      RETURN;
    ELSE
      RAISE EXCEPTION 'unknown outcome "%"', left(p_kind, 64) USING ERRCODE = '22023';
  END CASE;
  DELETE FROM dataflow._dispatch WHERE run_id = rid;
END $$;

-- Records the dispatch outcomes of one recording pass of the worker; element k of the
-- arrays is one result (see _worker_record). The pass is recorded in one subtransaction
-- (no subtransaction per result: a pass of hundreds would overflow the subtransaction
-- cache); when that fails, it is undone and each result is recorded in its own, so one
-- bad result affects only its own run:
--   - an answer PostgreSQL refuses (an info that is not jsonb, a value out of range:
--     SQLSTATE class 22) fails its run (retried while attempts remain) with the reason,
--     "engine answer is not valid JSON for PostgreSQL: …" or "engine answer refused by
--     PostgreSQL: …";
--   - any other error (a lease no longer live, …) leaves the run as it was: the result is
--     not recorded and reported back.
-- Serialization failures and deadlocks are raised, not caught: the worker retries the
-- whole transaction. Returns one row per result that was not recorded as given: item k,
-- whether its run was recorded (as failed), the SQLSTATE and the reason.
CREATE FUNCTION dataflow._worker_results(p_token uuid[], p_kind text[], p_row_count bigint[], p_checksum text[],
                                         p_info text[], p_location text[], p_error text[], p_retry boolean[],
                                         p_retry_after integer[])
RETURNS TABLE (item integer, recorded boolean, error_code text, problem text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off AS $$
DECLARE n integer := cardinality(p_token); k integer; state text; msg text; bad text; detail text;
BEGIN
  IF n IS NULL OR cardinality(p_kind) IS DISTINCT FROM n OR cardinality(p_row_count) IS DISTINCT FROM n
     OR cardinality(p_checksum) IS DISTINCT FROM n OR cardinality(p_info) IS DISTINCT FROM n
     OR cardinality(p_location) IS DISTINCT FROM n OR cardinality(p_error) IS DISTINCT FROM n
     OR cardinality(p_retry) IS DISTINCT FROM n OR cardinality(p_retry_after) IS DISTINCT FROM n THEN
    RAISE EXCEPTION 'result arrays must all have the same length' USING ERRCODE = '22023',
      HINT = 'Pass one element per result in each array (NULL elements where there is no value).';
  END IF;
  BEGIN
    FOR k IN 1 .. n LOOP
      PERFORM dataflow._worker_record(p_token[k], p_kind[k], p_row_count[k], p_checksum[k], p_info[k],
                                      p_location[k], p_error[k], p_retry[k], p_retry_after[k]);
    END LOOP;
    RETURN;
  EXCEPTION
    WHEN serialization_failure OR deadlock_detected THEN
      RAISE;
    WHEN OTHERS THEN
      NULL;  -- undone: each result on its own below
  END;
  FOR k IN 1 .. n LOOP
    state := NULL;
    BEGIN
      PERFORM dataflow._worker_record(p_token[k], p_kind[k], p_row_count[k], p_checksum[k], p_info[k],
                                      p_location[k], p_error[k], p_retry[k], p_retry_after[k]);
    EXCEPTION
      WHEN serialization_failure OR deadlock_detected THEN
        RAISE;
      WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    END;
    CONTINUE WHEN state IS NULL;
    item := k;
    error_code := state;
    recorded := false;
    problem := msg;
    bad := NULL;
    IF p_kind[k] = 'succeeded' THEN
      BEGIN
        PERFORM p_info[k]::jsonb;
      EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS bad = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
        bad := bad || coalesce(' (' || rtrim(nullif(detail, ''), '.') || ')', '');
      END;
    END IF;
    IF bad IS NOT NULL OR state LIKE '22%' THEN
      problem := CASE WHEN bad IS NOT NULL THEN 'engine answer is not valid JSON for PostgreSQL: ' || bad
                      ELSE 'engine answer refused by PostgreSQL: ' || msg END;
      BEGIN
        PERFORM dataflow._fail(p_token[k], problem, true, NULL);
        recorded := true;
      EXCEPTION
        WHEN serialization_failure OR deadlock_detected THEN
          RAISE;
        WHEN OTHERS THEN
          GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
          error_code := state;
          problem := problem || '; not recorded: ' || msg;
      END;
    END IF;
    RETURN NEXT;
  END LOOP;
END $$;

-- Due deliveries, earliest due first, never overtaking an earlier pending delivery
-- of the same chunk to the same subscription (per-chunk order). p_full lists
-- the subscriptions that already use their share of the worker's HTTP window
-- (a hanging receiver must not starve the others). PL/pgSQL for a cached generic
-- plan that walks delivery_due in order and stops at p_limit, with the chunk-order
-- check as one index probe per row: the set-based form scanned, checked and sorted
-- every pending row per claim (15 ms at 5,000 pending, growing with the backlog).
CREATE FUNCTION dataflow._worker_deliveries(p_limit integer, p_exclude bigint[], p_full integer[])
RETURNS TABLE (id bigint, msg_id text, ts bigint, url text, secret text, body text, attempts integer,
               subscription_id integer)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan SET enable_sort = off SET enable_bitmapscan = off
SET enable_seqscan = off SET jit = off AS $$
BEGIN
  RETURN QUERY
  SELECT d.id, 'msg_' || d.id, extract(epoch FROM now())::bigint, s.url, s.secret, d.payload::text, d.attempts,
         d.subscription_id
    FROM dataflow.delivery d JOIN dataflow.subscription s ON s.id = d.subscription_id
   WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND s.enabled
     AND d.id <> ALL (p_exclude) AND d.subscription_id <> ALL (p_full)
     AND (SELECT e.id FROM dataflow.delivery e
           WHERE e.subscription_id = d.subscription_id AND e.chunk_id = d.chunk_id
             AND e.status = 'pending' AND e.id < d.id
           LIMIT 1) IS NULL
   ORDER BY d.next_attempt_at, d.id
   LIMIT p_limit;
END $$;

-- Milliseconds until the next delivery retry or dispatchable chunk becomes due
-- (NULL: nothing waits), so the worker need not poll for backoffs. Only future
-- times count: work already due but not claimed waits for a slot (a finishing
-- request triggers the next claim) and must not hide the next backoff expiry.
-- Rounded up, so the worker never wakes a fraction of a millisecond early and
-- finds nothing due yet.
CREATE FUNCTION dataflow._worker_next_due() RETURNS bigint
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET enable_seqscan = off SET jit = off
AS $$
BEGIN
  RETURN (
  SELECT ceil(extract(epoch FROM least(
            (SELECT min(d.next_attempt_at) FROM dataflow.delivery d JOIN dataflow.subscription s
                ON s.id = d.subscription_id WHERE d.status = 'pending' AND s.enabled AND d.next_attempt_at > now()),
            (SELECT min(q.not_before) FROM dataflow.job j JOIN dataflow.queue q ON q.dataset_id = j.output_id
              WHERE j.dispatch IN ('http', 'airflow') AND NOT j.paused AND q.not_before > now())) - now())
          * 1000)::bigint);
END $$;

-- One recording of delivery attempts (see _delivery_results), raising on any error.
-- Returns the names of the subscriptions it disabled (410 Gone).
CREATE FUNCTION dataflow._delivery_record(p_id bigint[], p_http_status integer[], p_error text[],
                                          p_retry_in_seconds integer[], p_duration_ms integer[],
                                          p_gone boolean[])
RETURNS SETOF text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off SET jit = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
BEGIN
  RETURN QUERY
  WITH r AS (
    SELECT r.i, r.id, r.http_status, left(r.error, 1000) AS error, r.retry_in, r.duration_ms,
           coalesce(r.gone, false) AS gone, r.error IS NULL AND r.http_status BETWEEN 200 AND 299 AS ok
      FROM unnest(p_id, p_http_status, p_error, p_retry_in_seconds, p_duration_ms, p_gone)
           WITH ORDINALITY AS r(id, http_status, error, retry_in, duration_ms, gone, i)
  ), u AS (
    UPDATE dataflow.delivery d
       SET attempts = d.attempts + 1, last_attempt_at = now(), last_http_status = r.http_status,
           last_error = r.error,
           status = CASE WHEN r.gone THEN d.status WHEN r.ok THEN 'delivered'
                         WHEN r.retry_in IS NULL THEN 'failed' ELSE 'pending' END,
           next_attempt_at = CASE WHEN r.gone OR r.ok OR r.retry_in IS NULL THEN d.next_attempt_at
                                  ELSE now() + make_interval(secs => r.retry_in) END,
           finished_at = CASE WHEN r.gone THEN d.finished_at WHEN r.ok OR r.retry_in IS NULL THEN now() END
      FROM r
     WHERE d.id = r.id AND d.status = 'pending'
    RETURNING r.i, d.id, d.attempts, d.subscription_id, r.http_status, r.error, r.duration_ms, r.gone
  ), attempt AS (
    INSERT INTO dataflow.delivery_attempt (delivery_id, attempt, http_status, error, duration_ms)
    SELECT u.id, u.attempts, u.http_status, u.error, u.duration_ms FROM u
    ON CONFLICT DO NOTHING
  ), gone AS (
    SELECT DISTINCT ON (u.subscription_id) u.subscription_id, u.error
      FROM u WHERE u.gone ORDER BY u.subscription_id, u.i
  )
  UPDATE dataflow.subscription s SET enabled = false, disabled_at = now(), disabled_reason = gone.error
    FROM gone
   WHERE s.id = gone.subscription_id AND s.enabled
  RETURNING s.name;
END $$;

-- Records the delivery attempts of one recording pass of the worker in one
-- statement (one call per pass instead of one per delivery). Element i of the
-- arrays is one attempt: the delivery id (distinct), the HTTP status (NULL: no
-- response), the error (NULL: delivered when the status is 2xx), the delay before
-- the next attempt (NULL after a failure: give up; already the Retry-After when
-- the receiver sent one) and whether the receiver answered 410 Gone. A gone attempt
-- is recorded, the delivery stays pending, and the subscription is disabled until
-- enable_subscription() (its reason is the first gone attempt's error). Results of
-- deliveries no longer pending (redelivered meanwhile, pruned) are ignored, as are
-- repeats of an attempt already recorded.
-- The statement runs in a subtransaction; when it fails, it is undone and each attempt
-- is recorded on its own, so one attempt that cannot be recorded affects no other. Such
-- an attempt still counts: attempts + 1, last_error "attempt not recorded: …", due again
-- in a minute (not at once, pass after pass). Serialization failures and deadlocks are
-- raised, not caught: the worker retries the whole transaction. Returns one row per
-- attempt not recorded as given: item i, the SQLSTATE and the reason.
CREATE FUNCTION dataflow._delivery_results(p_id bigint[], p_http_status integer[], p_error text[],
                                           p_retry_in_seconds integer[], p_duration_ms integer[],
                                           p_gone boolean[])
RETURNS TABLE (item integer, error_code text, problem text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off SET jit = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE sname text; names text[]; n integer := cardinality(p_id); k integer; state text; msg text;
BEGIN
  IF n IS NULL OR cardinality(p_http_status) IS DISTINCT FROM n OR cardinality(p_error) IS DISTINCT FROM n
     OR cardinality(p_retry_in_seconds) IS DISTINCT FROM n OR cardinality(p_duration_ms) IS DISTINCT FROM n
     OR cardinality(p_gone) IS DISTINCT FROM n THEN
    RAISE EXCEPTION 'delivery result arrays must all have the same length' USING ERRCODE = '22023',
      HINT = 'Pass one element per attempt in each array (NULL elements where there is no value).';
  END IF;
  BEGIN
    names := ARRAY(SELECT dataflow._delivery_record(p_id, p_http_status, p_error, p_retry_in_seconds,
                                                    p_duration_ms, p_gone));
  EXCEPTION
    WHEN serialization_failure OR deadlock_detected THEN
      RAISE;
    WHEN OTHERS THEN
      names := NULL;  -- undone: each attempt on its own below
  END;
  IF names IS NULL THEN
    names := '{}';
    FOR k IN 1 .. n LOOP
      state := NULL;
      BEGIN
        names := names || ARRAY(SELECT dataflow._delivery_record(ARRAY[p_id[k]], ARRAY[p_http_status[k]],
                                                                 ARRAY[p_error[k]], ARRAY[p_retry_in_seconds[k]],
                                                                 ARRAY[p_duration_ms[k]], ARRAY[p_gone[k]]));
      EXCEPTION
        WHEN serialization_failure OR deadlock_detected THEN
          RAISE;
        WHEN OTHERS THEN
          GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
      END;
      CONTINUE WHEN state IS NULL;
      item := k;
      error_code := state;
      problem := msg;
      BEGIN
        UPDATE dataflow.delivery d
           SET attempts = d.attempts + 1, last_attempt_at = now(), last_http_status = p_http_status[k],
               last_error = left('attempt not recorded: ' || msg, 1000),
               next_attempt_at = now() + interval '1 minute'
         WHERE d.id = p_id[k] AND d.status = 'pending';
      EXCEPTION
        WHEN serialization_failure OR deadlock_detected THEN
          RAISE;
        WHEN OTHERS THEN
          GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
          problem := problem || '; not counted either: ' || msg;
      END;
      RETURN NEXT;
    END LOOP;
  END IF;
  FOREACH sname IN ARRAY names LOOP
    RAISE WARNING 'pg_dataflow worker: subscription "%" disabled: its receiver answered 410 Gone', sname
      USING HINT = 'Its pending deliveries wait; fix the receiver or the URL, then call '
                   'dataflow.enable_subscription(''' || sname || ''').';
  END LOOP;
END $$;

-- Records one delivery attempt, as one element of _delivery_results (which the
-- worker calls once per recording pass); an attempt it could not record is a warning.
CREATE FUNCTION dataflow._delivery_result(p_id bigint, p_http_status integer, p_error text,
                                          p_retry_in_seconds integer, p_duration_ms integer,
                                          p_gone boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE f record;
BEGIN
  FOR f IN SELECT * FROM dataflow._delivery_results(ARRAY[p_id], ARRAY[p_http_status], ARRAY[p_error],
                                                    ARRAY[p_retry_in_seconds], ARRAY[p_duration_ms],
                                                    ARRAY[p_gone]) LOOP
    RAISE WARNING 'delivery attempt of delivery % not recorded: % (SQLSTATE %)', p_id, f.problem, f.error_code;
  END LOOP;
END $$;

-- Janitor: finished deliveries and dispatch records past retention.
CREATE FUNCTION dataflow._worker_prune(p_retention interval) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE n integer;
BEGIN
  DELETE FROM dataflow.delivery WHERE status <> 'pending' AND finished_at < now() - p_retention;
  GET DIAGNOSTICS n = ROW_COUNT;
  DELETE FROM dataflow._dispatch x
   WHERE NOT EXISTS (SELECT FROM dataflow.run r WHERE r.id = x.run_id AND r.status = 'running');
  RETURN n;
END $$;

REVOKE ALL ON FUNCTION dataflow._worker_jobs(), dataflow._worker_claim(text, integer),
  dataflow._worker_airflow_runs(),
  dataflow._worker_record(uuid, text, bigint, text, text, text, text, boolean, integer),
  dataflow._worker_results(uuid[], text[], bigint[], text[], text[], text[], text[], boolean[], integer[]),
  dataflow._worker_deliveries(integer, bigint[], integer[]), dataflow._worker_next_due(),
  dataflow._delivery_result(bigint, integer, text, integer, integer, boolean),
  dataflow._delivery_results(bigint[], integer[], text[], integer[], integer[], boolean[]),
  dataflow._delivery_record(bigint[], integer[], text[], integer[], integer[], boolean[]),
  dataflow._worker_prune(interval),
  dataflow._event_fanout(), dataflow._new_webhook_secret(),
  dataflow.subscribe(text, text, text[], text[], text), dataflow.unsubscribe(text),
  dataflow.drop_subscription(text), dataflow.enable_subscription(text), dataflow.redeliver(bigint),
  dataflow.redeliver(text, timestamptz, boolean) FROM PUBLIC;

-- ==== src/sql/90_security.sql
-- Roles and privileges. Four roles, each able to do its part and nothing more:
--   dataflow_reader    the status views and read-only questions; never tokens or secrets
--   dataflow_worker    lease, heartbeat, complete, fail, register, validate (+ reader)
--   dataflow_operator  expect, resubmit, skip, cancel, pause/resume, change limits (+ reader)
--   dataflow_admin     define datasets, jobs, pools, connections; reads secrets (+ operator, worker)
-- Functions that need privileges are SECURITY DEFINER with a pinned
-- search_path (every plpgsql function pins it) and no PUBLIC EXECUTE.
-- Roles are cluster-wide: they are created when missing and shared by every
-- database that installs the extension; DROP EXTENSION leaves them.

DO $$
BEGIN
  IF current_setting('server_version_num')::integer < 150004 THEN
    RAISE EXCEPTION 'pg_dataflow requires PostgreSQL 15.4 or later, this is %', current_setting('server_version')
      USING ERRCODE = '0A000';
  END IF;
END $$;

DO $$
DECLARE r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['dataflow_reader', 'dataflow_worker', 'dataflow_operator', 'dataflow_admin'] LOOP
    IF NOT (EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) r)) THEN
      EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
    END IF;
  END LOOP;
END $$;
GRANT dataflow_reader TO dataflow_worker, dataflow_operator;
GRANT dataflow_operator, dataflow_worker TO dataflow_admin;

GRANT USAGE ON SCHEMA dataflow TO dataflow_reader, dataflow_worker, dataflow_operator, dataflow_admin;
REVOKE ALL ON ALL TABLES IN SCHEMA dataflow FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA dataflow FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA dataflow FROM PUBLIC;

-- Pure helpers the views call (EXECUTE is checked against the querying role).
GRANT EXECUTE ON FUNCTION dataflow._level(text), dataflow._key_text(text, bigint), dataflow._key_canon(text, text),
  dataflow._key_ord(text, text), dataflow._period_end(text, bigint), dataflow._location(text, text, text, integer)
  TO dataflow_reader;

-- Reader: views and read-only questions.
GRANT SELECT ON dataflow.datasets, dataflow.jobs, dataflow.chunks, dataflow.runs, dataflow.progress,
  dataflow.gaps, dataflow.deletable, dataflow.dataset_counts, dataflow.dataset_rate, dataflow.events
  TO dataflow_reader;
GRANT EXECUTE ON FUNCTION dataflow.explain(text, text), dataflow.blockers(text, text),
  dataflow.upstream(text, text), dataflow.downstream(text, text), dataflow.graph_dot() TO dataflow_reader;

-- Worker: the lease lifecycle and source registration.
GRANT EXECUTE ON FUNCTION dataflow.lease(text, text, integer, interval), dataflow.heartbeat(uuid, interval),
  dataflow.complete(uuid, bigint, text, jsonb, text), dataflow.complete_many(uuid[], bigint[], text[], jsonb[], text[]),
  dataflow.fail(uuid, text, boolean), dataflow.register(text, text, text, bigint, text, jsonb), dataflow.validate(text, text, boolean, jsonb)
  TO dataflow_worker;

-- Operator: backfill, restart, skip, cancel, pause, limits, housekeeping.
GRANT EXECUTE ON FUNCTION dataflow.expect(text, text, text), dataflow.resubmit(text, text, text, boolean, boolean),
  dataflow.skip(text, text, text), dataflow.cancel(text, text), dataflow.pause_job(text),
  dataflow.resume_job(text), dataflow.reap(), dataflow.schedule(), dataflow.prune(interval)
  TO dataflow_operator;
GRANT UPDATE (status) ON dataflow.chunks TO dataflow_operator;
GRANT SELECT (id, name, output_id, dispatch, pool_id, max_concurrency, max_attempts, backoff_min, backoff_max,
              lease_for, priority, paused) ON dataflow.job TO dataflow_operator;
GRANT UPDATE (max_concurrency, priority, paused, max_attempts, lease_for, backoff_min, backoff_max)
  ON dataflow.job TO dataflow_operator;
GRANT SELECT, UPDATE (slots) ON dataflow.pool TO dataflow_operator;

-- Admin: definitions, and every table (secrets and live tokens included).
GRANT EXECUTE ON FUNCTION
  dataflow.create_dataset(text, text, text, boolean, interval, interval, interval, jsonb), dataflow.drop_dataset(text),
  dataflow.create_pool(text, integer), dataflow.drop_pool(text),
  dataflow.create_connection(text, text, text, text, text, text, integer, interval, interval),
  dataflow.drop_connection(text),
  dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval, interval,
                      interval, integer),
  dataflow.add_input(text, text, text, integer, integer, text), dataflow.drop_job(text)
  TO dataflow_admin;
-- Not ALL: TRIGGER would let the admin attach a function of its own to dataflow.chunk
-- (or any table), which the definer functions then fire as the extension owner, a
-- superuser. REFERENCES is not needed either. Only the owner may add rules or policies.
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA dataflow TO dataflow_admin;
GRANT ALL ON ALL SEQUENCES IN SCHEMA dataflow TO dataflow_admin;

-- Every public function runs as the extension owner; callers are held to the grants above.
ALTER FUNCTION dataflow.create_dataset(text, text, text, boolean, interval, interval, interval, jsonb) SECURITY DEFINER;
ALTER FUNCTION dataflow.drop_dataset(text) SECURITY DEFINER;
ALTER FUNCTION dataflow.create_pool(text, integer) SECURITY DEFINER;
ALTER FUNCTION dataflow.drop_pool(text) SECURITY DEFINER;
ALTER FUNCTION dataflow.create_connection(text, text, text, text, text, text, integer, interval, interval) SECURITY DEFINER;
ALTER FUNCTION dataflow.drop_connection(text) SECURITY DEFINER;
ALTER FUNCTION dataflow.create_job(text, text, text, text, text, text, jsonb, text, integer, integer, interval,
                                   interval, interval, integer) SECURITY DEFINER;
ALTER FUNCTION dataflow.add_input(text, text, text, integer, integer, text) SECURITY DEFINER;
ALTER FUNCTION dataflow.drop_job(text) SECURITY DEFINER;
ALTER FUNCTION dataflow.pause_job(text) SECURITY DEFINER;
ALTER FUNCTION dataflow.resume_job(text) SECURITY DEFINER;
ALTER FUNCTION dataflow.expect(text, text, text) SECURITY DEFINER;
ALTER FUNCTION dataflow.register(text, text, text, bigint, text, jsonb) SECURITY DEFINER;
ALTER FUNCTION dataflow.validate(text, text, boolean, jsonb) SECURITY DEFINER;
ALTER FUNCTION dataflow.skip(text, text, text) SECURITY DEFINER;
ALTER FUNCTION dataflow.cancel(text, text) SECURITY DEFINER;
ALTER FUNCTION dataflow.resubmit(text, text, text, boolean, boolean) SECURITY DEFINER;
ALTER FUNCTION dataflow.lease(text, text, integer, interval) SECURITY DEFINER;
ALTER FUNCTION dataflow.heartbeat(uuid, interval) SECURITY DEFINER;
ALTER FUNCTION dataflow.complete(uuid, bigint, text, jsonb, text) SECURITY DEFINER;
ALTER FUNCTION dataflow.complete_many(uuid[], bigint[], text[], jsonb[], text[]) SECURITY DEFINER;
ALTER FUNCTION dataflow.fail(uuid, text, boolean) SECURITY DEFINER;
ALTER FUNCTION dataflow.reap() SECURITY DEFINER;
ALTER FUNCTION dataflow.schedule() SECURITY DEFINER;
ALTER FUNCTION dataflow.prune(interval) SECURITY DEFINER;
ALTER FUNCTION dataflow.explain(text, text) SECURITY DEFINER;
ALTER FUNCTION dataflow.blockers(text, text) SECURITY DEFINER;
ALTER FUNCTION dataflow.upstream(text, text) SECURITY DEFINER;
ALTER FUNCTION dataflow.downstream(text, text) SECURITY DEFINER;
ALTER FUNCTION dataflow.graph_dot() SECURITY DEFINER;
-- The view's INSTEAD OF trigger writes dataflow.chunk on behalf of the operator.
ALTER FUNCTION dataflow._chunks_update() SECURITY DEFINER;
ALTER FUNCTION dataflow._chunks_updated() SECURITY DEFINER;

-- Webhooks (src/sql/70_worker.sql): subscriptions are definitions (admin); redelivery is an
-- operator's tool; the deliveries view shows no URL or secret.
GRANT EXECUTE ON FUNCTION dataflow.subscribe(text, text, text[], text[], text), dataflow.unsubscribe(text),
  dataflow.drop_subscription(text), dataflow.redeliver(bigint), dataflow.redeliver(text, timestamptz, boolean)
  TO dataflow_admin;
GRANT EXECUTE ON FUNCTION dataflow.enable_subscription(text) TO dataflow_admin;
GRANT EXECUTE ON FUNCTION dataflow.redeliver(bigint), dataflow.redeliver(text, timestamptz, boolean)
  TO dataflow_operator;
GRANT SELECT ON dataflow.deliveries TO dataflow_reader;

-- ==== src/sql/95_dump.sql
-- What pg_dump keeps. Every table of the extension is a member of it, so pg_dump
-- writes only CREATE EXTENSION for them unless they are registered here as
-- configuration tables: then their rows are dumped too (COPY in the data section),
-- and a restore runs CREATE EXTENSION (the schema, functions, triggers and the four
-- roles, as in a fresh install) and loads the rows into the tables it made.
--
-- The extension script inserts no rows into any table, so no filter is needed: a
-- restore cannot duplicate a row the script itself made.
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
SELECT pg_catalog.pg_extension_config_dump('dataflow.subscription', '');   -- secrets: see docs/security.md

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
