-- Tables of the baselines (bench/run.sh). psql -v jobs=N
CREATE TABLE bench_row (id int PRIMARY KEY, n bigint NOT NULL DEFAULT 0);
INSERT INTO bench_row (id) SELECT g FROM generate_series(1, 1000) g;
CREATE TABLE bench_ins (id bigserial PRIMARY KEY, v int, at timestamptz DEFAULT now());
CREATE TABLE bench_ins_notify (id bigserial PRIMARY KEY, v int, at timestamptz DEFAULT now());
CREATE FUNCTION bench_notify() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN PERFORM pg_notify('bench_jobs', NEW.id::text); RETURN NULL; END $$;
CREATE TRIGGER bench_notify AFTER INSERT ON bench_ins_notify FOR EACH ROW EXECUTE FUNCTION bench_notify();
-- A minimal job queue: what a SKIP LOCKED queue must do per job and nothing more.
CREATE TABLE bench_queue (
  id bigserial PRIMARY KEY, status text NOT NULL DEFAULT 'queued', payload jsonb NOT NULL DEFAULT '{}',
  attempts int NOT NULL DEFAULT 0, locked_by text, locked_at timestamptz, finished_at timestamptz
) WITH (fillfactor = 80);
CREATE INDEX bench_queue_queued ON bench_queue (id) WHERE status = 'queued';
