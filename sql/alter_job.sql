-- alter_job: a job's settings change after it was created, from the next lease on. The
-- operator changes limits and priority; the pool and the params are the admin's. NULL
-- keeps a setting, pool => '' detaches the pool, max_concurrency => -1 removes the limit.
-- Every change is an 'altered' event (params only as "changed"); a refused call changes nothing.
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\i sql/include/helpers.psql
SELECT dataflow.create_dataset('aj', 'int');
SELECT dataflow.create_job('j_aj', output => 'aj', params => '{"token": "s3cr3t"}', max_concurrency => 3);
SELECT dataflow.create_pool('small', 1);
SELECT dataflow.expect('aj', '1', '4');

-- the operator lowers the limit: the next lease gets at most 1 chunk
SET ROLE dataflow_operator;
SELECT dataflow.alter_job('j_aj', max_concurrency => 1, priority => 5, lease_for => '10 minutes');
RESET ROLE;
SELECT count(*) AS leased FROM dataflow.lease('j_aj', 'w1', max_chunks => 4);
SELECT job, concurrency_in_use, concurrency_limit, pool, priority, lease_for FROM dataflow.jobs WHERE job = 'j_aj';
-- leased with the new lease_for (10 minutes); a later change does not move its deadline
SELECT round(extract(epoch FROM deadline - started_at) / 60) AS lease_minutes FROM dataflow.run;
SELECT deadline AS first_deadline FROM dataflow.run \gset
SELECT dataflow.alter_job('j_aj', lease_for => '1 hour');
SELECT deadline = :'first_deadline' AS deadline_kept FROM dataflow.run;

-- the pool and the params are the admin's: an operator is refused, nothing changes
SELECT pg_temp.fingerprint() AS fp \gset
SET ROLE dataflow_operator;
SELECT pg_temp.err($$SELECT dataflow.alter_job('j_aj', pool => 'small')$$) AS operator_pool;
SELECT pg_temp.err($$SELECT dataflow.alter_job('j_aj', params => '{}', priority => 9)$$) AS operator_params;
RESET ROLE;
SELECT pg_temp.fingerprint() = :'fp' AS unchanged;
SET ROLE dataflow_admin;
SELECT dataflow.alter_job('j_aj', pool => 'small', max_concurrency => -1, params => '{"token": "n3w"}');
RESET ROLE;
-- no limit of its own now, but the pool's single slot: the run leased before the pool was
-- attached counts against no pool, so one more lease fills the slot, and then none
SELECT count(*) AS leased_in_pool FROM dataflow.lease('j_aj', 'w2', max_chunks => 4);
SELECT count(*) AS leased_in_full_pool FROM dataflow.lease('j_aj', 'w2', max_chunks => 4);
SELECT job, concurrency_limit, pool, pool_slots, pool_in_use FROM dataflow.jobs WHERE job = 'j_aj';
-- detached: the job leases again, without a limit
SELECT dataflow.alter_job('j_aj', pool => '');
SELECT count(*) AS leased_detached FROM dataflow.lease('j_aj', 'w3', max_chunks => 4);
-- the same values again: nothing changes, no event
SELECT dataflow.alter_job('j_aj', priority => 5, max_attempts => 3) AS no_change;

-- the event log: what changed, by whom; the params never appear in it
SELECT to_status, CASE WHEN actor = session_user THEN '<me>' ELSE actor END AS actor, detail
  FROM dataflow.events WHERE to_status = 'altered' ORDER BY event_id;
SELECT count(*) AS events_with_the_params FROM dataflow.events WHERE detail::text LIKE '%s3cr3t%' OR detail::text LIKE '%n3w%';

-- bad input: a specific SQLSTATE, nothing changes
SELECT pg_temp.fingerprint() AS fp \gset
SELECT pg_temp.fails($$SELECT dataflow.alter_job('nope', priority => 1)$$) AS unknown_job;
SELECT pg_temp.fails($$SELECT dataflow.alter_job(NULL, priority => 1)$$) AS null_job;
SELECT pg_temp.fails($$SELECT dataflow.alter_job('j_aj', pool => 'nope')$$) AS unknown_pool;
SELECT pg_temp.fails($$SELECT dataflow.alter_job('j_aj', max_concurrency => -2)$$) AS bad_limit;
SELECT pg_temp.fails($$SELECT dataflow.alter_job('j_aj', max_attempts => 0)$$) AS bad_attempts;
SELECT pg_temp.fails($$SELECT dataflow.alter_job('j_aj', backoff_min => '1 hour')$$) AS min_above_max;
SELECT pg_temp.fails($$SELECT dataflow.alter_job('j_aj', backoff_min => '-1 second')$$) AS negative_min;
SELECT pg_temp.fails($$SELECT dataflow.alter_job('j_aj', lease_for => '0 seconds')$$) AS zero_lease;
SELECT pg_temp.fails($$SELECT dataflow.alter_job('j_aj', params => '[1]')$$) AS params_not_object;
-- a reader or worker may not call it at all
SET ROLE dataflow_worker;
SELECT pg_temp.err($$SELECT dataflow.alter_job('j_aj', priority => 1)$$) AS worker;
RESET ROLE;
SELECT pg_temp.fingerprint() = :'fp' AS unchanged_still;
