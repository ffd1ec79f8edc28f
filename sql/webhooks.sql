-- Webhook subscriptions and the outbox (src/sql/70_worker.sql). The background
-- worker runs in database postgres, not here, so deliveries stay pending and
-- the outbox can be inspected deterministically. Delivery itself is covered by
-- test/integration/worker_webhooks.sh.
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- No subscription: events write no deliveries.
SELECT dataflow.create_dataset('sales', 'date');
SELECT dataflow.create_dataset('other', 'date');
SELECT dataflow.register('sales', '2024-01-01');
SELECT count(*) AS deliveries FROM dataflow.delivery;

-- subscribe() returns a generated whsec_ secret (32 random bytes) once.
SELECT s ~ '^whsec_[A-Za-z0-9+/]{43}=$' AS generated_secret_ok
  FROM dataflow.subscribe('portal', 'https://portal.example/hook', datasets => '{sales}') s;
SELECT dataflow.subscribe('ready_only', 'http://10.0.0.5:8080/in', statuses => '{ready,failed}',
                          secret => 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
SELECT name, url, datasets, statuses, enabled FROM dataflow.subscription ORDER BY id;

-- Misuse: clear errors, nothing changed.
SELECT pg_temp.err($$SELECT dataflow.subscribe('portal', 'https://x.example/')$$);
SELECT pg_temp.err($$SELECT dataflow.subscribe('bad url', 'https://x.example/')$$);
SELECT pg_temp.err($$SELECT dataflow.subscribe('s1', 'ftp://x.example/')$$);
SELECT pg_temp.err($$SELECT dataflow.subscribe('s1', 'https://x.example/a b')$$);
SELECT pg_temp.err($$SELECT dataflow.subscribe('s1', NULL)$$);
SELECT pg_temp.err($$SELECT dataflow.subscribe('s1', 'https://x.example/', secret => 'not-a-secret')$$);
SELECT pg_temp.err($$SELECT dataflow.subscribe('s1', 'https://x.example/', secret => 'whsec_abc')$$);
SELECT pg_temp.err($$SELECT dataflow.subscribe('s1', 'https://x.example/', statuses => '{done}')$$);
SELECT pg_temp.err($$SELECT dataflow.subscribe('s1', 'https://x.example/', datasets => '{NULL}')$$);
SELECT pg_temp.err($$SELECT dataflow.unsubscribe('nope')$$);
SELECT pg_temp.err($$SELECT dataflow.redeliver(424242)$$);
SELECT pg_temp.err($$SELECT dataflow.redeliver('nope', now())$$);
SELECT count(*) AS subscriptions FROM dataflow.subscription;

-- Events fan out in their own transaction, filtered by dataset and status.
SELECT dataflow.register('sales', '2024-01-02');
SELECT dataflow.register('other', '2024-01-02');
BEGIN;
SELECT dataflow.register('sales', '2024-01-03');
ROLLBACK;                                              -- no event, no delivery
SELECT subscription, dataset, key, type, status, attempts
  FROM dataflow.deliveries ORDER BY id;
SELECT (payload -> 'data') - '{event_id,run_id,actor}'::text[] AS data, payload ? 'timestamp' AS has_timestamp
  FROM dataflow.delivery ORDER BY id LIMIT 1;
SELECT count(*) = count(DISTINCT (subscription_id, event_id)) AS one_per_event_and_subscription
  FROM dataflow.delivery;

-- The view shows neither URLs nor secrets.
SELECT column_name FROM information_schema.columns
 WHERE table_schema = 'dataflow' AND table_name = 'deliveries' ORDER BY ordinal_position;

-- A disabled subscription receives nothing new.
UPDATE dataflow.subscription SET enabled = false WHERE name = 'ready_only';
SELECT dataflow.register('sales', '2024-01-04');
SELECT subscription, key FROM dataflow.deliveries WHERE key = '2024-01-04' ORDER BY id;

-- redeliver() re-queues with a fresh schedule.
UPDATE dataflow.delivery SET status = 'failed', attempts = 7, finished_at = now() WHERE id = (SELECT min(id) FROM dataflow.delivery);
SELECT dataflow.redeliver('portal', now() - interval '1 hour') AS requeued;
SELECT status, attempts, finished_at IS NULL AS open FROM dataflow.delivery ORDER BY id LIMIT 1;
SELECT dataflow.redeliver((SELECT max(id) FROM dataflow.delivery));

-- _wake() can be called (it only arms a commit callback) and rolls back quietly.
BEGIN; SELECT dataflow._wake(); ROLLBACK;
SELECT dataflow._wake();

-- unsubscribe() drops the subscription with its deliveries.
SELECT dataflow.unsubscribe('portal');
SELECT dataflow.drop_subscription('ready_only');
SELECT count(*) AS deliveries_left FROM dataflow.delivery;
