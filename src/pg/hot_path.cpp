// The hot path in C++: dataflow.lease, dataflow.heartbeat and dataflow.complete
// (docs/internals.md, "The hot path").
//
// Each is one C function over prepared statements kept per backend (spi_plan.h): no
// PL/pgSQL frame, no planner setting, no statement trigger. The writes whose accounting a
// trigger did before — queue membership, the status counters (chunk_count, done_minute),
// the worker's wake-up — are done here, explicitly, by the statements that cause them:
// they run through exec_accounted, and the triggers' WHEN (dataflow._accounted()) skips
// them. Anything rare (a stale or superseded run, a job with `latest` or incremental
// inputs, a dataset with webhook subscriptions) runs the same SQL helpers as before, whose
// writes the triggers account for, so there is still one place that knows how each kind
// of change is counted: the trigger for set-based operator writes, count_move/count_done
// here for the hot path, both over the same tables and the same shard rule.
//
// Lock order and clock rule are the SQL's (docs/internals.md): the chunk is locked before
// the run; deadlines are compared with the clock; limits are counted under the advisory
// locks 7401/7402.
//
// Boundary rule (src/pg/README.md): only Datums, palloc'd memory and plain values live in
// these frames; the core (hot_path_c.h) is noexcept.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wregister"
#pragma GCC diagnostic ignored "-Wunused-parameter"
extern "C" {
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation_d.h"
#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "compat.h"

PGDLLEXPORT Datum df_lease(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum df_heartbeat(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum df_complete(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum df_count(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum df_count_done(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(df_lease);
PG_FUNCTION_INFO_V1(df_heartbeat);
PG_FUNCTION_INFO_V1(df_complete);
PG_FUNCTION_INFO_V1(df_count);
PG_FUNCTION_INFO_V1(df_count_done);
}
#pragma GCC diagnostic pop

#include <cmath>

#include "../core/hot_path_c.h"
#include "pg/spi_plan.h"
#include "pg/version.h"
#include "pg/wake.h"

using dataflow::pg::col;
using dataflow::pg::exec;
using dataflow::pg::exec_accounted;
using dataflow::pg::Stmt;

namespace {

// ---------------------------------------------------------------- statements
// Every name is schema-qualified; the functions pin search_path (pg_catalog, pg_temp).

Stmt q_read_committed = {"SELECT dataflow._read_committed()", 0, {}, nullptr};
Stmt q_job_raise = {"SELECT dataflow._job($1)", 1, {TEXTOID}, nullptr};
Stmt q_not_live = {
    "SELECT dataflow._not_live(r) FROM dataflow.run r WHERE r.id = $1", 1, {INT8OID}, nullptr};

Stmt q_job = {
    "SELECT j.id, j.output_id, j.paused, j.lease_for, j.max_concurrency, j.pool_id, j.params,"
    "       d.name, d.location,"
    "       EXISTS (SELECT FROM dataflow.job_input ji WHERE ji.job_id = j.id AND ji.mapping = "
    "'incremental'),"
    "       EXISTS (SELECT FROM dataflow.job_input ji WHERE ji.job_id = j.id AND ji.mapping = "
    "'latest'),"
    "       EXISTS (SELECT FROM dataflow.subscription s WHERE s.enabled)"
    "  FROM dataflow.job j JOIN dataflow.dataset d ON d.id = j.output_id WHERE j.name = $1",
    1,
    {TEXTOID},
    nullptr};
Stmt q_batch_from = {
    "SELECT array_agg(ids.name) FROM dataflow.job_input ji JOIN dataflow.dataset ids ON ids.id = "
    "ji.dataset_id"
    " WHERE ji.job_id = $1 AND ji.mapping = 'incremental'",
    1,
    {INT4OID},
    nullptr};
Stmt q_cut_batch = {"SELECT dataflow._cut_batch($1)", 1, {INT4OID}, nullptr};
Stmt q_running_of_job = {
    "SELECT count(*) FROM dataflow.run r WHERE r.job_id = $1 AND r.status = 'running'",
    1,
    {INT4OID},
    nullptr};
Stmt q_pool = {
    "SELECT p.slots, (SELECT count(*) FROM dataflow.run r WHERE r.pool_id = p.id AND r.status = "
    "'running')"
    "  FROM dataflow.pool p WHERE p.id = $1",
    1,
    {INT4OID},
    nullptr};
Stmt q_latest = {"SELECT dataflow._lease_latest($1)", 1, {INT4OID}, nullptr};

// The claim locks candidates from the queue (claim() walks queue_order in C): in their
// queue order, at most $2, each chunk locked (every other writer locks chunks first) and
// its status rechecked once locked, a locked one skipped. A chunk whose earlier version
// still has readers is passed over: a running run, or one a cascading resubmit
// superseded whose process has not ended (finished_at NULL); a reader whose lease expired
// holds until reap() ends it. Only a resubmitted chunk (version > 1) can have readers.
Stmt q_lock_candidates = {
    "SELECT u.o, c.id, c.backfill_id, c.not_before"
    "  FROM unnest($1::bigint[]) WITH ORDINALITY AS u(id, o) JOIN dataflow.chunk c ON c.id = u.id"
    " WHERE c.status = 'queued'"
    "   AND (c.version = 1"
    "        OR (SELECT 1 FROM dataflow.run_input ri JOIN dataflow.run rr ON rr.id = ri.run_id"
    "             WHERE ri.chunk_id = c.id AND rr.finished_at IS NULL"
    "               AND rr.status IN ('running', 'superseded') LIMIT 1) IS NULL)"
    " ORDER BY u.o"
    " LIMIT $2"
    "   FOR UPDATE OF c SKIP LOCKED",
    2,
    {INT8ARRAYOID, INT4OID},
    nullptr};
// A claimed chunk's queue row, by its key, when claim() could not delete the row it found
// (the chunk was re-queued, with another not_before, between the walk and the lock).
Stmt q_unqueue = {
    "DELETE FROM dataflow.queue q WHERE q.dataset_id = $1 AND q.not_before = $2 AND q.chunk_id = "
    "$3",
    3,
    {INT4OID, TIMESTAMPTZOID, INT8OID},
    nullptr};
// run ids follow the claim (queue) order, whatever the rows' physical order
Stmt q_lease_chunks = {
    "UPDATE dataflow.chunk c"
    "   SET status = 'running', attempts = c.attempts + 1, run_id = r.run_id, updated_at = now()"
    "  FROM (SELECT u.id, nextval('dataflow.run_id_seq') AS run_id"
    "          FROM unnest($1::bigint[]) WITH ORDINALITY AS u(id, o) ORDER BY u.o) r"
    " WHERE c.id = r.id",
    1,
    {INT8ARRAYOID},
    nullptr};
// The definition version read now, after the claim (see lease's comment in 45_lease.sql).
// The runs, returned as the tasks lease() hands out (in run id order, the claim's): the
// lineage rows are written first (q_run_input), so the task's inputs read them here.
Stmt q_run_insert = {
    "INSERT INTO dataflow.run (id, job_id, pool_id, chunk_id, version, attempt, worker, status,"
    "                          deadline, output_location, definition_version)"
    "SELECT c.run_id, $2, $3, c.id, c.version, c.attempts, $4, 'running', clock_timestamp() + $5,"
    "       dataflow._location($6, $7, c.key, c.version),"
    "       (SELECT jb.definition_version FROM dataflow.job jb WHERE jb.id = $2)"
    "  FROM dataflow.chunk c WHERE c.id = ANY ($1)"
    " ORDER BY c.run_id"
    " RETURNING id, token, $8::text, $7::text,"
    "   (SELECT c.key FROM dataflow.chunk c WHERE c.id = run.chunk_id), version, attempt, "
    "output_location,"
    "   coalesce((SELECT jsonb_agg(jsonb_build_object('dataset', ids.name, 'key', ic.key,"
    "                                                 'version', ri.version, 'location', "
    "ic.location,"
    "                                                 'row_count', ic.row_count, 'checksum', "
    "ic.checksum)"
    "                              ORDER BY ids.name, ic.ord, ic.key)"
    "               FROM dataflow.run_input ri JOIN dataflow.chunk ic ON ic.id = ri.chunk_id"
    "               JOIN dataflow.dataset ids ON ids.id = ic.dataset_id"
    "              WHERE ri.run_id = run.id), '[]'::jsonb),"
    "   dataflow._with_secrets("
    "     CASE WHEN $9 THEN $10 || dataflow._batch_params(run.id,"
    "                        (SELECT c.key FROM dataflow.chunk c WHERE c.id = run.chunk_id), $11)"
    "          ELSE $10 END,"
    "     (SELECT s.params FROM dataflow.job_secret s WHERE s.job_id = $2)),"
    "   deadline",
    11,
    {INT8ARRAYOID, INT4OID, INT4OID, TEXTOID, INTERVALOID, TEXTOID, TEXTOID, TEXTOID, BOOLOID,
     JSONBOID, TEXTARRAYOID},
    nullptr};
Stmt q_run_input = {
    "INSERT INTO dataflow.run_input (run_id, chunk_id, version)"
    "SELECT c.run_id, dp.input, ic.version"
    "  FROM dataflow.chunk c JOIN dataflow.dep dp ON dp.consumer = c.id JOIN dataflow.chunk ic ON "
    "ic.id = dp.input"
    " WHERE c.id = ANY ($1)",
    1,
    {INT8ARRAYOID},
    nullptr};
Stmt q_run_input_latest = {
    "INSERT INTO dataflow.run_input (run_id, chunk_id, version)"
    "SELECT c.run_id, lc.id, lc.version"
    "  FROM dataflow.chunk c CROSS JOIN dataflow.chunk lc"
    " WHERE c.id = ANY ($1) AND lc.id = ANY ($2)",
    2,
    {INT8ARRAYOID, INT8ARRAYOID},
    nullptr};
Stmt q_lease_events = {
    "INSERT INTO dataflow.event (dataset_id, chunk_id, key, run_id, version, from_status, "
    "to_status, actor)"
    "SELECT $2, c.id, c.key, c.run_id, c.version, 'queued', 'running', $3"
    "  FROM dataflow.chunk c WHERE c.id = ANY ($1)",
    3,
    {INT8ARRAYOID, INT4OID, TEXTOID},
    nullptr};
// The live run behind a token (live_run).
Stmt q_lock_by_token = {
    "SELECT c.id FROM dataflow.run rr JOIN dataflow.chunk c ON c.id = rr.chunk_id"
    " WHERE rr.token = $1 FOR UPDATE OF c",
    1,
    {UUIDOID},
    nullptr};
Stmt q_run_by_token = {
    "SELECT r.id, r.job_id, r.chunk_id, r.status, r.finished_at IS NULL, r.deadline < "
    "clock_timestamp(),"
    "       r.error, r.worker, r.output_location"
    "  FROM dataflow.run r WHERE r.token = $1",
    1,
    {UUIDOID},
    nullptr};

Stmt q_heartbeat = {
    "UPDATE dataflow.run"
    "   SET heartbeat_at = clock_timestamp(),"
    "       deadline = clock_timestamp() + coalesce($2, (SELECT j.lease_for FROM dataflow.job j "
    "WHERE j.id = $3))"
    " WHERE id = $1"
    " RETURNING deadline",
    3,
    {INT8OID, INTERVALOID, INT4OID},
    nullptr};

// complete()
Stmt q_superseded_ends = {
    "UPDATE dataflow.run SET finished_at = clock_timestamp(), row_count = $2, checksum = $3, info "
    "= $4"
    " WHERE id = $1 AND finished_at IS NULL",
    4,
    {INT8OID, INT8OID, TEXTOID, JSONBOID},
    nullptr};
// The chunk (locked by live_run), whether it is still this run's, and whether every input
// is still the version the run read (probed, as complete() always did).
Stmt q_chunk_of_run = {
    "SELECT c.dataset_id, c.backfill_id, c.key, c.version, c.updated_at,"
    "       c.run_id = $2 AND c.status = 'running'"
    "       AND NOT EXISTS (SELECT FROM dataflow.run_input ri JOIN dataflow.chunk ic ON ic.id = "
    "ri.chunk_id"
    "                        WHERE ri.run_id = $2 AND (ic.version <> ri.version OR "
    "dataflow._level(ic.status) = 0)),"
    "       EXISTS (SELECT FROM dataflow.subscription s WHERE s.enabled),"
    "       EXISTS (SELECT FROM dataflow.job_input ji"
    "                WHERE ji.dataset_id = c.dataset_id AND ji.mapping IN ('latest', "
    "'incremental'))"
    "  FROM dataflow.chunk c WHERE c.id = $1",
    2,
    {INT8OID, INT8OID},
    nullptr};
Stmt q_complete_stale = {"SELECT dataflow._complete_stale($1, $2, $3, $4)",
                         4,
                         {INT8OID, INT8OID, TEXTOID, JSONBOID},
                         nullptr};
Stmt q_succeed = {
    "WITH r AS ("
    "  UPDATE dataflow.run"
    "     SET status = 'succeeded', finished_at = now(), row_count = $2, checksum = $3, info = $4,"
    "         output_location = coalesce($5, output_location)"
    "   WHERE id = $6"
    ")"
    "UPDATE dataflow.chunk"
    "   SET status = 'ready', row_count = $2, checksum = $3, info = coalesce($4, '{}'),"
    "       location = coalesce($5, $7), error = NULL, available_at = now(), updated_at = now()"
    " WHERE id = $1"
    " RETURNING ord, available_at",
    7,
    {INT8OID, INT8OID, TEXTOID, JSONBOID, TEXTOID, INT8OID, TEXTOID},
    nullptr};
Stmt q_event_ready = {
    "INSERT INTO dataflow.event (dataset_id, chunk_id, key, run_id, version, from_status, "
    "to_status, actor)"
    "VALUES ($1, $2, $3, $4, $5, 'running', 'ready', $6)",
    6,
    {INT4OID, INT8OID, TEXTOID, INT8OID, INT4OID, TEXTOID},
    nullptr};
Stmt q_propagate_sql = {
    "SELECT dataflow._propagate(ARRAY[$1], $2, 0, 1, $3)", 3, {INT8OID, INT4OID, TEXTOID}, nullptr};
// Readiness of the direct consumers of one input that became ready (level 0 -> 1), as
// _propagate does it (30_graph.sql), with the queue rows and events of the consumers
// whose status changed; one row per (dataset, backfill, old, new) for the counters.
Stmt q_propagate = {
    "WITH delta AS ("
    "  SELECT d.consumer, d.input FROM dataflow.dep d WHERE d.input = $1 AND d.need <= 1"
    "), locked AS ("
    "  SELECT c.id, c.status, c.unmet, delta.input"
    "    FROM dataflow.chunk c JOIN delta ON c.id = delta.consumer"
    "    JOIN dataflow.dataset cd ON cd.id = c.dataset_id"
    "   ORDER BY cd.rank, c.id"
    "     FOR UPDATE OF c"
    "), upd AS ("
    "  UPDATE dataflow.chunk c"
    "     SET unmet = l.unmet - 1,"
    "         status = CASE WHEN l.status = 'waiting' AND l.unmet = 1 THEN 'queued' ELSE l.status "
    "END,"
    "         not_before = CASE WHEN l.status = 'waiting' AND l.unmet = 1 THEN now() ELSE "
    "c.not_before END,"
    "         updated_at = now()"
    "    FROM locked l"
    "   WHERE c.id = l.id"
    "  RETURNING c.id, c.dataset_id, c.backfill_id, c.key, c.version, l.status AS old_status,"
    "            c.status AS new_status, c.not_before, l.input"
    "), ch AS ("
    "  SELECT upd.*, EXISTS (SELECT FROM dataflow.job j WHERE j.output_id = upd.dataset_id"
    "                           AND j.dispatch <> 'pull') AS wake"
    "    FROM upd WHERE upd.old_status <> upd.new_status"
    "), ev AS ("
    "  INSERT INTO dataflow.event (dataset_id, chunk_id, key, version, from_status, to_status, "
    "actor, detail)"
    "  SELECT ch.dataset_id, ch.id, ch.key, ch.version, ch.old_status, ch.new_status, $2,"
    "         jsonb_build_object('reason', 'inputs available', 'input', ch.input)"
    "    FROM ch"
    "), qu AS ("
    "  INSERT INTO dataflow.queue (dataset_id, not_before, chunk_id)"
    "  SELECT ch.dataset_id, ch.not_before, ch.id FROM ch WHERE ch.new_status = 'queued'"
    ")"
    "SELECT ch.dataset_id, ch.backfill_id, ch.old_status, ch.new_status, count(*), bool_or(ch.wake)"
    "  FROM ch GROUP BY 1, 2, 3, 4",
    2,
    {INT8OID, TEXTOID},
    nullptr};

// Counters (12_counts.sql): one shard row per (dataset, backfill), claimed with a
// transaction-level advisory lock tried without waiting, as _count_shard does.
Stmt q_count = {
    "UPDATE dataflow.chunk_count"
    "   SET waiting = waiting + CASE $5 WHEN 'waiting' THEN $6 ELSE 0 END - CASE $4 WHEN 'waiting' "
    "THEN $6 ELSE 0 END,"
    "       queued = queued + CASE $5 WHEN 'queued' THEN $6 ELSE 0 END - CASE $4 WHEN 'queued' "
    "THEN $6 ELSE 0 END,"
    "       running = running + CASE $5 WHEN 'running' THEN $6 ELSE 0 END - CASE $4 WHEN 'running' "
    "THEN $6 ELSE 0 END,"
    "       ready = ready + CASE $5 WHEN 'ready' THEN $6 ELSE 0 END - CASE $4 WHEN 'ready' THEN $6 "
    "ELSE 0 END,"
    "       validated = validated + CASE $5 WHEN 'validated' THEN $6 ELSE 0 END - CASE $4 WHEN "
    "'validated' THEN $6 ELSE 0 END,"
    "       invalid = invalid + CASE $5 WHEN 'invalid' THEN $6 ELSE 0 END - CASE $4 WHEN 'invalid' "
    "THEN $6 ELSE 0 END,"
    "       failed = failed + CASE $5 WHEN 'failed' THEN $6 ELSE 0 END - CASE $4 WHEN 'failed' "
    "THEN $6 ELSE 0 END,"
    "       skipped = skipped + CASE $5 WHEN 'skipped' THEN $6 ELSE 0 END - CASE $4 WHEN 'skipped' "
    "THEN $6 ELSE 0 END,"
    "       cancelled = cancelled + CASE $5 WHEN 'cancelled' THEN $6 ELSE 0 END - CASE $4 WHEN "
    "'cancelled' THEN $6 ELSE 0 END,"
    "       resubmit = resubmit + CASE $5 WHEN 'resubmit' THEN $6 ELSE 0 END - CASE $4 WHEN "
    "'resubmit' THEN $6 ELSE 0 END,"
    "       newest_ord = greatest(newest_ord, $7),"
    "       newest_at = greatest(newest_at, $8)"
    " WHERE dataset_id = $1 AND backfill_id = $2 AND shard = $3",
    8,
    {INT4OID, INT4OID, INT2OID, TEXTOID, TEXTOID, INT8OID, INT8OID, TIMESTAMPTZOID},
    nullptr};
Stmt q_count_row = {
    "INSERT INTO dataflow.chunk_count (dataset_id, backfill_id, shard) VALUES ($1, $2, $3)"
    " ON CONFLICT DO NOTHING",
    3,
    {INT4OID, INT4OID, INT2OID},
    nullptr};
Stmt q_done = {
    "UPDATE dataflow.done_minute"
    "   SET succeeded = succeeded + $5, failed = failed + $6, superseded = superseded + $8,"
    "       first_at = CASE WHEN $5 > 0 THEN least(first_at, clock_timestamp()) ELSE first_at END,"
    "       first_started_at = CASE WHEN $5 > 0 THEN least(first_started_at, $7)"
    "                               ELSE first_started_at END,"
    "       superseded_at = CASE WHEN $8 > 0 THEN greatest(superseded_at, clock_timestamp())"
    "                            ELSE superseded_at END"
    " WHERE dataset_id = $1 AND minute = $3 AND backfill_id = $2 AND shard = $4",
    8,
    {INT4OID, INT4OID, TIMESTAMPTZOID, INT2OID, INT8OID, INT8OID, TIMESTAMPTZOID, INT8OID},
    nullptr};
Stmt q_done_row = {
    "INSERT INTO dataflow.done_minute (dataset_id, minute, backfill_id, shard) VALUES ($1, $3, $2, "
    "$4)"
    " ON CONFLICT DO NOTHING",
    4,
    {INT4OID, INT4OID, TIMESTAMPTZOID, INT2OID},
    nullptr};

// ---------------------------------------------------------------- helpers

// An ERROR the caller caused, without CONTEXT lines (as dataflow._raise).
[[noreturn]] void raise(int code, const char* message, const char* hint = nullptr) {
    error_context_stack = nullptr;
    ereport(ERROR, (errcode(code), errmsg_internal("%s", message), hint ? errhint("%s", hint) : 0));
    pg_unreachable();
}

void require_read_committed() {
    if (XactIsoLevel != XACT_READ_COMMITTED) exec(q_read_committed, nullptr, nullptr);  // raises
}

bool interval_positive(Datum iv) {
    Interval* zero = static_cast<Interval*>(palloc0(sizeof(Interval)));
    return DatumGetBool(DirectFunctionCall2(interval_gt, iv, IntervalPGetDatum(zero)));
}

Datum int8_array(const Datum* elems, int n) {
    return PointerGetDatum(construct_array(const_cast<Datum*>(elems), n, INT8OID, sizeof(int64),
                                           FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

// The counter shard this transaction holds for (space, a, b): _count_shard in C.
int16 shard(int32 space, int64 a, int64 b) {
    int32 s = df_core_first_shard(MyProcPid);
    for (int i = 0; i < DF_COUNTER_SHARDS; i++) {
        const int32 key = df_core_shard_key(a, b, s);
        if (DatumGetBool(DirectFunctionCall2(pg_try_advisory_xact_lock_int4, Int32GetDatum(space),
                                             Int32GetDatum(key))))
            return static_cast<int16>(s);
        s = (s + 1) % DF_COUNTER_SHARDS;
    }
    ereport(ERROR, (errcode(ERRCODE_LOCK_NOT_AVAILABLE),
                    errmsg("all 64 counter shards of (%lld, %lld) are held by other transactions",
                           static_cast<long long>(a), static_cast<long long>(b)),
                    errhint("More than 64 transactions change chunks of one dataset at once.")));
    pg_unreachable();
}

// Move n chunks of (dataset, backfill) from status old_st to new_st: _count in C.
void count_move(int32 dataset, int32 backfill, const char* old_st, const char* new_st, int64 n,
                Datum ord, bool ord_null, Datum at, bool at_null) {
    const int16 s = shard(7410, dataset, backfill);
    Datum v[8] = {Int32GetDatum(dataset), Int32GetDatum(backfill), Int16GetDatum(s),
                  // a NULL status: chunks inserted (old) or deleted (new)
                  old_st ? CStringGetTextDatum(old_st) : (Datum)0,
                  new_st ? CStringGetTextDatum(new_st) : (Datum)0, Int64GetDatum(n), ord, at};
    const char nulls[9] = {' ',
                           ' ',
                           ' ',
                           old_st ? ' ' : 'n',
                           new_st ? ' ' : 'n',
                           ' ',
                           ord_null ? 'n' : ' ',
                           at_null ? 'n' : ' ',
                           '\0'};
    for (int attempt = 1; attempt <= 2; attempt++) {
        if (exec(q_count, v, nulls) > 0) return;
        if (attempt == 2) break;
        exec(q_count_row, v, nulls);
    }
    ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
                    errmsg("counter row of dataset %d changed after this transaction's snapshot",
                           dataset)));
}

// Completions (succeeded) and failures in this minute's throughput bucket: _count_done in C.
// This minute of the clock, as date_trunc('minute', clock_timestamp()).
Datum this_minute() {
    return DirectFunctionCall2(timestamptz_trunc, CStringGetTextDatum("minute"),
                               TimestampTzGetDatum(GetCurrentTimestamp()));
}

// Completions (succeeded), failures and superseded completions in a minute's throughput
// bucket: _count_done in C. The shard key's minute is (extract(epoch FROM minute) /
// 60)::bigint, rounded as the SQL rounds it.
void count_done(int32 dataset, int32 backfill, Datum minute, int64 succeeded, int64 failed,
                int64 superseded, Datum started, bool started_null) {
    const double epoch_seconds =
        static_cast<double>(DatumGetTimestampTz(minute)) / USECS_PER_SEC +
        static_cast<double>(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;
    const int64 epoch_minute = static_cast<int64>(std::llround(epoch_seconds / 60.0));
    const int16 s = shard(7411, dataset, epoch_minute);
    Datum v[8] = {
        Int32GetDatum(dataset),   Int32GetDatum(backfill), minute,  Int16GetDatum(s),
        Int64GetDatum(succeeded), Int64GetDatum(failed),   started, Int64GetDatum(superseded)};
    const char nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', started_null ? 'n' : ' ', ' ', '\0'};
    for (int attempt = 1; attempt <= 2; attempt++) {
        if (exec(q_done, v, nulls) > 0) return;
        if (attempt == 2) break;
        exec(q_done_row, v, nulls);
    }
    ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
                    errmsg("throughput row of dataset %d changed after this transaction's snapshot",
                           dataset)));
}

// The run behind a token, its chunk locked: _live_run in C. held: a run a cascading
// resubmit superseded while it worked is returned too.
struct Run {
    int64 id;
    int32 job_id;
    int64 chunk_id;
    bool superseded;
    bool has_error;
    Datum error;
    Datum worker;
    Datum output_location;
    bool output_location_null;
};

void live_run(FunctionCallInfo fcinfo, int argno, bool held, Run* r) {
    require_read_committed();
    if (PG_ARGISNULL(argno)) raise(ERRCODE_NULL_VALUE_NOT_ALLOWED, "token must not be NULL");
    Datum token = PG_GETARG_DATUM(argno);
    // the chunk before the run, the order resubmit, cancel and skip take them in
    if (exec(q_lock_by_token, &token, nullptr) == 0)
        raise(ERRCODE_UNDEFINED_OBJECT, "no lease has this token");
    // read, not locked: whoever ends a run holds its chunk's lock, which is ours now; this
    // statement's fresh snapshot sees any change committed while we waited
    exec(q_run_by_token, &token, nullptr);
    bool isnull;
    r->id = DatumGetInt64(col(0, 1));
    r->job_id = DatumGetInt32(col(0, 2));
    r->chunk_id = DatumGetInt64(col(0, 3));
    char* status = TextDatumGetCString(col(0, 4));
    const bool open = DatumGetBool(col(0, 5));
    const bool overdue = DatumGetBool(col(0, 6));
    r->error = col(0, 7, &isnull);
    r->has_error = !isnull;
    r->worker = col(0, 8);
    r->output_location = col(0, 9, &r->output_location_null);
    r->superseded = strcmp(status, "superseded") == 0;
    const bool live = strcmp(status, "running") == 0 || (held && r->superseded && open);
    if (!live || overdue) {
        Datum id = Int64GetDatum(r->id);
        exec(q_not_live, &id, nullptr);  // raises 55000: what happened to the run
        elog(ERROR, "pg_dataflow: dataflow._not_live returned");
    }
}

// The claim: up to `want` queued chunks of `dataset` in queue order (not_before, chunk),
// locked, their queue rows deleted; returns how many, their ids and backfills. The queue
// is walked in C, over its one index (queue_order), from the lowest key on: a plan could
// only be worse (a sort of every queued row, made when statistics said the queue was
// empty). Candidates are locked in batches (q_lock_candidates, SKIP LOCKED), and the walk
// goes on while fewer than `want` were locked.
int claim(int32 dataset, int32 want, Datum* ids, int32* backfills) {
    const Oid nsp = get_namespace_oid("dataflow", false);
    const Oid queue_oid = get_relname_relid("queue", nsp);
    const Oid index_oid = get_relname_relid("queue_order", nsp);
    if (!OidIsValid(queue_oid) || !OidIsValid(index_oid))
        elog(ERROR, "pg_dataflow: dataflow.queue or its index queue_order is missing");
    Relation heap = table_open(queue_oid, RowExclusiveLock);
    Relation index = index_open(index_oid, AccessShareLock);
    const int batch = Max(2 * want, want + 16);
    Datum* cand = static_cast<Datum*>(palloc(sizeof(Datum) * batch));
    TimestampTz* cand_nb = static_cast<TimestampTz*>(palloc(sizeof(TimestampTz) * batch));
    ItemPointerData* cand_tid =
        static_cast<ItemPointerData*>(palloc(sizeof(ItemPointerData) * batch));
    // a fresh snapshot, as the statement it replaces took (read committed)
    Snapshot snap = RegisterSnapshot(GetTransactionSnapshot());
    ScanKeyData keys[2];
    ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(dataset));
    ScanKeyInit(&keys[1], 2, BTLessEqualStrategyNumber, F_TIMESTAMPTZ_LE,
                TimestampTzGetDatum(GetCurrentTimestamp()));
    IndexScanDesc scan = df_index_beginscan(heap, index, snap, 2, 0);
    index_rescan(scan, keys, 2, nullptr, 0);
    TupleTableSlot* slot = table_slot_create(heap, nullptr);
    int got = 0;
    bool more = true;
    while (got < want && more) {
        int k = 0;
        while (k < batch && (more = index_getnext_slot(scan, ForwardScanDirection, slot))) {
            bool isnull;
            cand[k] = slot_getattr(slot, 3, &isnull);
            cand_nb[k] = DatumGetTimestampTz(slot_getattr(slot, 2, &isnull));
            cand_tid[k] = slot->tts_tid;
            k++;
        }
        if (k == 0) break;
        Datum v[2] = {int8_array(cand, k), Int32GetDatum(want - got)};
        const uint64 locked = exec(q_lock_candidates, v, nullptr);
        SPITupleTable* tt = SPI_tuptable;
        for (uint64 i = 0; i < locked; i++) {
            bool isnull;
            const int64 pos =
                DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull)) - 1;
            ids[got] = SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull);
            backfills[got] = DatumGetInt32(SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &isnull));
            const Datum nb = SPI_getbinval(tt->vals[i], tt->tupdesc, 4, &isnull);
            got++;
            // Its queue row: the one the walk found, unless the chunk was re-queued since
            // (another not_before, or that row already gone): then by its current key.
            bool deleted = false;
            if (DatumGetTimestampTz(nb) == cand_nb[pos]) {
                TM_FailureData tmfd;
                deleted = table_tuple_delete(heap, &cand_tid[pos], GetCurrentCommandId(true), snap,
                                             InvalidSnapshot, true, &tmfd, false) == TM_Ok;
            }
            if (!deleted) {
                Datum d[3] = {Int32GetDatum(dataset), nb, ids[got - 1]};
                exec(q_unqueue, d, nullptr);
            }
        }
        CommandCounterIncrement();
    }
    ExecDropSingleTupleTableSlot(slot);
    index_endscan(scan);
    UnregisterSnapshot(snap);
    index_close(index, NoLock);
    table_close(heap, NoLock);
    return got;
}

void wake_if(bool wake) {
    if (wake) dataflow::wake::at_commit();
}

}  // namespace

// dataflow.heartbeat(token uuid, extend_by interval) RETURNS timestamptz
Datum df_heartbeat(PG_FUNCTION_ARGS) {
    dataflow::version::require_matching_sql();
    SPI_connect();
    Run r;
    live_run(fcinfo, 0, true, &r);
    const bool by_default = PG_ARGISNULL(1);
    if (!by_default && !interval_positive(PG_GETARG_DATUM(1)))
        raise(ERRCODE_INVALID_PARAMETER_VALUE, "extend_by must be positive");
    Datum v[3] = {Int64GetDatum(r.id), by_default ? (Datum)0 : PG_GETARG_DATUM(1),
                  Int32GetDatum(r.job_id)};
    const char nulls[4] = {' ', by_default ? 'n' : ' ', ' ', '\0'};
    exec(q_heartbeat, v, nulls);
    const TimestampTz deadline = DatumGetTimestampTz(col(0, 1));
    if (r.superseded) {
        // Still reading: it keeps holding its inputs while it heartbeats, but its result
        // will not be used. SQLSTATE 01DF1 is what a worker looks for to stop early.
        const int code = MAKE_SQLSTATE('0', '1', 'D', 'F', '1');
        const char* hint =
            "Stop early: fail() or complete() releases the inputs this run still holds.";
        if (r.has_error) {
            char* err = TextDatumGetCString(r.error);
            if (strlen(err) > 0) {
                // left(error, 500) in characters
                int bytes = pg_mbcharcliplen(err, strlen(err), 500);
                err[bytes] = '\0';
            }
            ereport(WARNING, (errcode(code),
                              errmsg("run %lld was superseded: its result will not be used",
                                     static_cast<long long>(r.id)),
                              errdetail_internal("%s", err), errhint("%s", hint)));
        } else {
            ereport(WARNING, (errcode(code),
                              errmsg("run %lld was superseded: its result will not be used",
                                     static_cast<long long>(r.id)),
                              errhint("%s", hint)));
        }
    }
    SPI_finish();
    PG_RETURN_TIMESTAMPTZ(deadline);
}

// dataflow.complete(token uuid, row_count bigint, checksum text, info jsonb, location text)
// RETURNS text
Datum df_complete(PG_FUNCTION_ARGS) {
    dataflow::version::require_matching_sql();
    SPI_connect();
    Run r;
    live_run(fcinfo, 0, true, &r);
    if (!PG_ARGISNULL(1) && PG_GETARG_INT64(1) < 0)
        raise(ERRCODE_INVALID_PARAMETER_VALUE, "row_count must be >= 0");
    if (!PG_ARGISNULL(3)) {
        Jsonb* info = PG_GETARG_JSONB_P(3);
        if (!JB_ROOT_IS_OBJECT(info))
            raise(ERRCODE_INVALID_PARAMETER_VALUE, "info must be a JSON object");
    }
    const char n_rc = PG_ARGISNULL(1) ? 'n' : ' ', n_cs = PG_ARGISNULL(2) ? 'n' : ' ',
               n_info = PG_ARGISNULL(3) ? 'n' : ' ', n_loc = PG_ARGISNULL(4) ? 'n' : ' ';
    const Datum rc = PG_ARGISNULL(1) ? (Datum)0 : PG_GETARG_DATUM(1);
    const Datum cs = PG_ARGISNULL(2) ? (Datum)0 : PG_GETARG_DATUM(2);
    const Datum info = PG_ARGISNULL(3) ? (Datum)0 : PG_GETARG_DATUM(3);
    const Datum loc = PG_ARGISNULL(4) ? (Datum)0 : PG_GETARG_DATUM(4);
    const char* result = "succeeded";
    if (r.superseded) {
        // Superseded by a resubmit while it worked: the result is recorded, the run ends
        // and with it its hold on its inputs; its chunk was already reset by the resubmit.
        Datum v[4] = {Int64GetDatum(r.id), rc, cs, info};
        const char nulls[5] = {' ', n_rc, n_cs, n_info, '\0'};
        exec(q_superseded_ends, v, nulls);
        SPI_finish();
        PG_RETURN_TEXT_P(cstring_to_text("superseded"));
    }
    Datum cv[2] = {Int64GetDatum(r.chunk_id), Int64GetDatum(r.id)};
    exec(q_chunk_of_run, cv, nullptr);
    const int32 dataset = DatumGetInt32(col(0, 1));
    const int32 backfill = DatumGetInt32(col(0, 2));
    const Datum key = col(0, 3);
    const int32 version = DatumGetInt32(col(0, 4));
    const Datum started = col(0, 5);
    const bool current = DatumGetBool(col(0, 6));
    const bool subscribed = DatumGetBool(col(0, 7));
    const bool special_consumers = DatumGetBool(col(0, 8));
    if (!current) {
        // An input was re-produced while the run worked, or the chunk moved on: recorded
        // as superseded by the SQL helper (rare; its writes go through the triggers).
        Datum v[4] = {Int64GetDatum(r.id), rc, cs, info};
        const char nulls[5] = {' ', n_rc, n_cs, n_info, '\0'};
        exec(q_complete_stale, v, nulls);
        SPI_finish();
        PG_RETURN_TEXT_P(cstring_to_text("superseded"));
    }
    {
        Datum v[7] = {Int64GetDatum(r.chunk_id), rc, cs, info, loc, Int64GetDatum(r.id),
                      r.output_location};
        const char nulls[8] = {
            ' ', n_rc, n_cs, n_info, n_loc, ' ', r.output_location_null ? 'n' : ' ', '\0'};
        exec_accounted(q_succeed, v, nulls);
        bool ord_null;
        const Datum ord = col(0, 1, &ord_null);
        const Datum at = col(0, 2);
        count_move(dataset, backfill, "running", "ready", 1, ord, ord_null, at, false);
        count_done(dataset, backfill, this_minute(), 1, 0, 0, started, false);
    }
    {
        Datum v[6] = {Int32GetDatum(dataset), Int64GetDatum(r.chunk_id), key,
                      Int64GetDatum(r.id),    Int32GetDatum(version),    r.worker};
        // with webhook subscriptions, the event trigger fans the row out to them
        if (subscribed)
            exec(q_event_ready, v, nullptr);
        else
            exec_accounted(q_event_ready, v, nullptr);
    }
    // Readiness of the consumers.
    if (subscribed || special_consumers) {
        Datum v[3] = {Int64GetDatum(r.chunk_id), Int32GetDatum(dataset), r.worker};
        exec(q_propagate_sql, v, nullptr);
    } else {
        Datum v[2] = {Int64GetDatum(r.chunk_id), r.worker};
        const uint64 groups = exec_accounted(q_propagate, v, nullptr);
        bool wake = false;
        // the rows of SPI_tuptable are read before count_move runs statements of its own
        SPITupleTable* tt = SPI_tuptable;
        for (uint64 i = 0; i < groups; i++) {
            bool isnull;
            const int32 gds = DatumGetInt32(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
            const int32 gbf = DatumGetInt32(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull));
            char* old_st = TextDatumGetCString(SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &isnull));
            char* new_st = TextDatumGetCString(SPI_getbinval(tt->vals[i], tt->tupdesc, 4, &isnull));
            const int64 n = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 5, &isnull));
            wake = wake || DatumGetBool(SPI_getbinval(tt->vals[i], tt->tupdesc, 6, &isnull));
            count_move(gds, gbf, old_st, new_st, n, (Datum)0, true, (Datum)0, true);
        }
        wake_if(wake);
    }
    SPI_finish();
    PG_RETURN_TEXT_P(cstring_to_text(result));
}

// dataflow.lease(job text, worker text, max_chunks integer, lease_for interval)
// RETURNS SETOF dataflow.task
Datum df_lease(PG_FUNCTION_ARGS) {
    dataflow::version::require_matching_sql();
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    SPI_connect();
    Datum name = PG_ARGISNULL(0) ? (Datum)0 : PG_GETARG_DATUM(0);
    const char name_null[2] = {PG_ARGISNULL(0) ? 'n' : ' ', '\0'};
    // 7408 shared on the job's name, before paused is read: pause_job(cancel_running =>
    // true) takes it exclusive, so it never misses a lease in flight (docs/internals.md §4)
    if (!PG_ARGISNULL(0))
        DirectFunctionCall2(pg_advisory_xact_lock_shared_int4, Int32GetDatum(7408),
                            DirectFunctionCall1Coll(hashtext, DEFAULT_COLLATION_OID, name));
    if (PG_ARGISNULL(0) || exec(q_job, &name, nullptr) == 0) {
        exec(q_job_raise, &name, name_null);  // raises: NULL, or no such job (did you mean)
        elog(ERROR, "pg_dataflow: dataflow._job returned");
    }
    bool isnull;
    const int32 job_id = DatumGetInt32(col(0, 1));
    const int32 output_id = DatumGetInt32(col(0, 2));
    const bool paused = DatumGetBool(col(0, 3));
    const Datum job_lease_for = col(0, 4);
    bool no_max_concurrency;
    const Datum max_concurrency = col(0, 5, &no_max_concurrency);
    bool no_pool;
    const Datum pool_id = col(0, 6, &no_pool);
    const Datum params = col(0, 7);
    const Datum ds_name = col(0, 8);
    bool no_location;
    const Datum ds_location = col(0, 9, &no_location);
    const bool incremental = DatumGetBool(col(0, 10));
    const bool has_latest = DatumGetBool(col(0, 11));
    const bool subscribed = DatumGetBool(col(0, 12));

    require_read_committed();
    if (PG_ARGISNULL(1) || PG_ARGISNULL(2)) {
        error_context_stack = nullptr;
        ereport(ERROR,
                (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                 errmsg("%s must not be NULL", PG_ARGISNULL(1) ? "worker" : "max_chunks"),
                 errhint("lease(job, worker, max_chunks): worker names who takes the chunks, "
                         "max_chunks how many (1-1000).")));
    }
    text* worker = PG_GETARG_TEXT_PP(1);
    if (!df_core_worker_name_ok(VARDATA_ANY(worker), VARSIZE_ANY_EXHDR(worker)))
        raise(ERRCODE_INVALID_PARAMETER_VALUE,
              "worker must be a printable name of 1-200 characters");
    const int32 max_chunks = PG_GETARG_INT32(2);
    if (max_chunks < 1 || max_chunks > DF_LEASE_MAX_CHUNKS) {
        error_context_stack = nullptr;
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("max_chunks must be between 1 and 1000, not %d", max_chunks)));
    }
    const Datum lease_for = PG_ARGISNULL(3) ? job_lease_for : PG_GETARG_DATUM(3);
    if (!interval_positive(lease_for))
        raise(ERRCODE_INVALID_PARAMETER_VALUE, "lease_for must be positive");
    if (paused) {
        SPI_finish();
        return (Datum)0;
    }
    Datum batch_from = (Datum)0;
    bool no_batch_from = true;
    if (incremental) {
        Datum j = Int32GetDatum(job_id);
        exec(q_batch_from, &j, nullptr);
        batch_from = col(0, 1, &no_batch_from);
        exec(q_cut_batch, &j, nullptr);
    }
    // Limits are counted from live leases. The advisory lock serializes the count-then-
    // lease of limited jobs and pools; unlimited jobs take none.
    int64 n = max_chunks;
    if (!no_max_concurrency) {
        DirectFunctionCall2(pg_advisory_xact_lock_int4, Int32GetDatum(7401), Int32GetDatum(job_id));
        Datum j = Int32GetDatum(job_id);
        exec(q_running_of_job, &j, nullptr);
        n = Min(n, DatumGetInt32(max_concurrency) - DatumGetInt64(col(0, 1)));
    }
    if (!no_pool && n > 0) {
        DirectFunctionCall2(pg_advisory_xact_lock_int4, Int32GetDatum(7402), pool_id);
        Datum p = pool_id;
        exec(q_pool, &p, nullptr);
        n = Min(n, DatumGetInt32(col(0, 1)) - DatumGetInt64(col(0, 2)));
    }
    if (n <= 0) {
        SPI_finish();
        return (Datum)0;
    }
    Datum latest = (Datum)0;
    if (has_latest) {
        // the newest available chunk of each `latest` input, share-locked (NOWAIT); NULL:
        // the job is held back for this call (_lease_latest, 45_lease.sql)
        Datum j = Int32GetDatum(job_id);
        exec(q_latest, &j, nullptr);
        latest = col(0, 1, &isnull);
        if (isnull) {
            SPI_finish();
            return (Datum)0;
        }
    }
    // Claim.
    Datum* ids = static_cast<Datum*>(palloc(sizeof(Datum) * n));
    int32* backfills = static_cast<int32*>(palloc(sizeof(int32) * n));
    const int got = claim(output_id, static_cast<int32>(n), ids, backfills);
    if (got == 0) {
        SPI_finish();
        return (Datum)0;
    }
    const Datum id_array = int8_array(ids, got);
    exec_accounted(q_lease_chunks, const_cast<Datum*>(&id_array), nullptr);
    // counters: queued -> running, one call per backfill among the claimed chunks
    for (int i = 0; i < got; i++) {
        bool seen = false;
        for (int k = 0; k < i && !seen; k++) seen = backfills[k] == backfills[i];
        if (seen) continue;
        int64 k = 0;
        for (int m = i; m < got; m++) k += backfills[m] == backfills[i];
        count_move(output_id, backfills[i], "queued", "running", k, (Datum)0, true, (Datum)0, true);
    }
    exec(q_run_input, const_cast<Datum*>(&id_array), nullptr);
    if (has_latest) {
        Datum v[2] = {id_array, latest};
        exec(q_run_input_latest, v, nullptr);
    }
    {
        Datum v[11] = {id_array,
                       Int32GetDatum(job_id),
                       pool_id,
                       PG_GETARG_DATUM(1),
                       lease_for,
                       ds_location,
                       ds_name,
                       name,
                       BoolGetDatum(incremental),
                       params,
                       batch_from};
        const char nulls[12] = {
            ' ', ' ', no_pool ? 'n' : ' ',       ' ', ' ', no_location ? 'n' : ' ', ' ', ' ',
            ' ', ' ', no_batch_from ? 'n' : ' ', '\0'};
        const uint64 rows = exec(q_run_insert, v, nulls);
        for (uint64 i = 0; i < rows; i++) {
            Datum values[11];
            bool isnulls[11];
            for (int c = 0; c < 11; c++) values[c] = col(i, c + 1, &isnulls[c]);
            tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, isnulls);
        }
    }
    {
        Datum v[3] = {id_array, Int32GetDatum(output_id), PG_GETARG_DATUM(1)};
        // lease events are never 'queued' (no wake-up); with webhook subscriptions the
        // event trigger fans them out
        if (subscribed)
            exec(q_lease_events, v, nullptr);
        else
            exec_accounted(q_lease_events, v, nullptr);
    }
    SPI_finish();
    return (Datum)0;
}

// dataflow._count(p_dataset integer, p_backfill integer, p_old text, p_new text, p_n bigint,
// p_ord bigint, p_at timestamptz) RETURNS void: the counting triggers' (12_counts.sql)
// way into count_move, the hot path's: one implementation of the counter rows' shards and
// upserts. p_old NULL: p_n chunks were inserted; p_new NULL: deleted.
Datum df_count(PG_FUNCTION_ARGS) {
    dataflow::version::require_matching_sql();
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(4))
        elog(ERROR, "pg_dataflow: dataflow._count needs a dataset, a backfill and a count");
    char* old_st = PG_ARGISNULL(2) ? nullptr : TextDatumGetCString(PG_GETARG_DATUM(2));
    char* new_st = PG_ARGISNULL(3) ? nullptr : TextDatumGetCString(PG_GETARG_DATUM(3));
    SPI_connect();
    count_move(PG_GETARG_INT32(0), PG_GETARG_INT32(1), old_st, new_st, PG_GETARG_INT64(4),
               PG_ARGISNULL(5) ? (Datum)0 : PG_GETARG_DATUM(5), PG_ARGISNULL(5),
               PG_ARGISNULL(6) ? (Datum)0 : PG_GETARG_DATUM(6), PG_ARGISNULL(6));
    SPI_finish();
    PG_RETURN_VOID();
}

// dataflow._count_done(p_dataset integer, p_backfill integer, p_minute timestamptz,
// p_succeeded bigint, p_failed bigint, p_superseded bigint, p_started timestamptz)
// RETURNS void: the triggers' way into count_done.
Datum df_count_done(PG_FUNCTION_ARGS) {
    dataflow::version::require_matching_sql();
    for (int i = 0; i < 6; i++)
        if (PG_ARGISNULL(i)) elog(ERROR, "pg_dataflow: dataflow._count_done needs arguments 1-6");
    SPI_connect();
    count_done(PG_GETARG_INT32(0), PG_GETARG_INT32(1), PG_GETARG_DATUM(2), PG_GETARG_INT64(3),
               PG_GETARG_INT64(4), PG_GETARG_INT64(5),
               PG_ARGISNULL(6) ? (Datum)0 : PG_GETARG_DATUM(6), PG_ARGISNULL(6));
    SPI_finish();
    PG_RETURN_VOID();
}
