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
  kind            text NOT NULL CHECK (kind IN ('http', 'airflow', 'prefect')),
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
  dispatch        text NOT NULL DEFAULT 'pull' CHECK (dispatch IN ('pull', 'http', 'airflow', 'prefect')),
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
  -- An incremental job's cap on a batch's total input row_count (NULL: none); 47_incremental.sql
  batch_max_rows  bigint CHECK (batch_max_rows > 0),
  -- http jobs: where the worker POSTs a stop when a running chunk is cancelled (75_engine_stop.sql)
  cancel_endpoint text,
  CHECK (backoff_max >= backoff_min)
);
COMMENT ON TABLE dataflow.job IS
  'Produces exactly one output dataset; UPDATE max_concurrency/priority/paused at any time';
COMMENT ON COLUMN dataflow.job.cancel_endpoint IS
  'http jobs: URL the worker POSTs {run_id, job, dataset, key, version, reason} to, with the run''s token as '
  'bearer, when a running chunk is cancelled (NULL: the engine is not told)';
COMMENT ON COLUMN dataflow.job.batch_max_rows IS
  'incremental jobs: at most this many input rows (sum of row_count, NULL counting 0) per batch; '
  'a chunk over it is a batch of its own (NULL: no cap)';

-- A job's secret task parameters (create_job/alter_job secret_params): merged over the
-- job's params into the task lease() hands out, and never shown (the jobs view masks the
-- values). A table of its own, not a column of job: the operator may read job's columns
-- and every view reads job; this table is read by the definer functions (lease, the
-- worker's claim and resend, the jobs view's mask) and by the admin only (like
-- connection.secret; docs/security.md, "Secret task parameters").
CREATE TABLE dataflow.job_secret (
  job_id     integer PRIMARY KEY REFERENCES dataflow.job (id) ON DELETE CASCADE,
  params     jsonb NOT NULL CHECK (jsonb_typeof(params) = 'object' AND params <> '{}' AND NOT params ? 'batch'),
  updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE dataflow.job_secret IS
  'A job''s secret task parameters (readable by the admin role only): merged over the job''s params in '
  'every task it leases; views show the key names only';

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
  -- an incremental input's cap on the chunks it gives one batch (NULL: none); 47_incremental.sql
  max_chunks integer CHECK (max_chunks > 0),
  PRIMARY KEY (job_id, dataset_id),
  CONSTRAINT job_input_max_chunks_incremental CHECK (max_chunks IS NULL OR mapping = 'incremental')
);
CREATE INDEX job_input_dataset ON dataflow.job_input (dataset_id);
COMMENT ON TABLE dataflow.job_input IS 'An input of a job and how output keys map to input keys';
COMMENT ON COLUMN dataflow.job_input.max_chunks IS
  'incremental inputs: at most this many chunks of this input per batch (NULL: no cap)';

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
CREATE INDEX run_chunk ON dataflow.run (chunk_id);
-- Runs a cascading resubmit superseded while they worked: they hold their inputs until
-- they end or their deadline passes (reap() closes them).
CREATE INDEX run_held ON dataflow.run (id) WHERE status = 'superseded' AND finished_at IS NULL;
-- No index has deadline or heartbeat_at in its key or predicate: a heartbeat changes only
-- those, so it is a HOT update that writes no index entry (fillfactor leaves the room).
-- reap() finds the overdue leases among the live ones (run_live_job, run_held): as many
-- as there are leases, never the table.
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
