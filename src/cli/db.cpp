#include "db.h"

#include <cstdio>
#include <cstdlib>

#include <nlohmann/json.hpp>

namespace dataflow::cli {

namespace {

// The lease's remaining time is computed on the database clock: the worker's
// clock may be off, the lease deadline is not.
const char* const kLeaseSql =
    "SELECT t.run_id, t.token::text, t.job, t.dataset, t.key, t.version, t.attempt,"
    "       t.output_location, t.inputs::text, t.params::text, t.deadline::text,"
    "       pg_catalog.date_part('epoch', t.deadline - pg_catalog.now())::float8"
    "  FROM dataflow.lease($1::text, $2::text, $3::integer,"
    "                      $4::float8 * interval '1 second') AS t";

// The run's status too: a run a resubmit superseded still heartbeats (it holds its
// inputs) and warns with 01DF1, but a warning can be filtered by client_min_messages.
const char* const kHeartbeatSql =
    "SELECT pg_catalog.date_part('epoch', dataflow.heartbeat($1::uuid,"
    "           $2::float8 * interval '1 second') - pg_catalog.now())::float8,"
    "       (SELECT r.status FROM dataflow.runs r WHERE r.run_id = $3::bigint)";

const char* const kCompleteSql =
    "SELECT dataflow.complete($1::uuid, $2::bigint, $3::text, $4::jsonb, $5::text)";

const char* const kFailSql = "SELECT dataflow.fail($1::uuid, $2::text, $3::boolean)";

// The one place that knows how progress is counted.
const char* const kProgressSql =
    "SELECT done, total, failed, queued, running, waiting, paused, concurrency_limit,"
    "       concurrency_in_use, pool, pool_slots, pool_in_use"
    "  FROM dataflow.jobs WHERE job = $1::text";

// Keys as a JSON array: no array literal to quote.
const char* const kAvailableSql =
    "SELECT key FROM dataflow.chunks WHERE dataset = $1::text"
    "   AND key IN (SELECT pg_catalog.jsonb_array_elements_text($2::jsonb))"
    "   AND status IN ('ready', 'validated', 'skipped')";

const char* const kRunStatusSql = "SELECT status FROM dataflow.runs WHERE run_id = $1::bigint";

struct ResultGuard {
    PGresult* res = nullptr;
    ~ResultGuard() { PQclear(res); }
};

std::string field(PGresult* res, int row, int col) {
    return PQgetisnull(res, row, col) ? std::string() : std::string(PQgetvalue(res, row, col));
}

}  // namespace

std::optional<std::string> seconds_param(double seconds) {
    if (seconds <= 0) return std::nullopt;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f", seconds);
    return std::string(buf);
}

Db::~Db() {
    if (conn_) PQfinish(conn_);
}

bool Db::connect(const std::string& dsn, std::string* error) {
    // Later keywords override earlier ones, and the expanded DSN comes last,
    // so connect_timeout is only a default.
    std::vector<const char*> keys, values;
    if (!std::getenv("PGCONNECT_TIMEOUT")) {
        keys.push_back("connect_timeout");
        values.push_back("10");
    }
    // pg_dataflow's functions need READ COMMITTED, whatever default the role or database
    // sets; PGOPTIONS is kept (an options keyword replaces it), a DSN's options still win.
    const char* env_options = std::getenv("PGOPTIONS");
    std::string options = std::string(env_options ? env_options : "") +
                          " -c default_transaction_isolation=read\\ committed";
    keys.push_back("options");
    values.push_back(options.c_str());
    keys.push_back("fallback_application_name");
    values.push_back("dataflow-run");
    keys.push_back("dbname");
    values.push_back(dsn.empty() ? nullptr : dsn.c_str());
    keys.push_back(nullptr);
    values.push_back(nullptr);
    conn_ = PQconnectdbParams(keys.data(), values.data(), 1);
    // Survives PQreset: the receiver belongs to the PGconn.
    if (conn_) PQsetNoticeReceiver(conn_, &Db::on_notice, this);
    if (conn_ && PQstatus(conn_) == CONNECTION_OK) return pin_session(error);
    *error = conn_ ? PQerrorMessage(conn_) : "out of memory";
    while (!error->empty() && (error->back() == '\n' || error->back() == ' ')) error->pop_back();
    return false;
}

// The statements here name pg_catalog's operators and types unqualified: with pg_catalog
// first on the path nothing else can match them, whatever ALTER ROLE/DATABASE ... SET
// search_path says (a schema an attacker can create in, listed before pg_catalog, would
// otherwise lend this role's tokens and rights to a planted operator). A statement, not
// an options keyword: a DSN's options would replace that. DateStyle and IntervalStyle
// too: the task's deadline (deadline::text) reaches the job in ISO form whatever
// ALTER ROLE/DATABASE ... SET DateStyle says.
bool Db::pin_session(std::string* error) {
    PGresult* r =
        PQexec(conn_,
               "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false), "
               "pg_catalog.set_config('DateStyle', 'ISO', false), "
               "pg_catalog.set_config('IntervalStyle', 'postgres', false)");
    bool ok = r && PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok) {
        *error = std::string("could not set the session's search_path and styles: ") +
                 PQerrorMessage(conn_);
        while (!error->empty() && (error->back() == '\n' || error->back() == ' '))
            error->pop_back();
    }
    PQclear(r);
    return ok;
}

bool Db::connected() const {
    return conn_ && PQstatus(conn_) == CONNECTION_OK;
}

bool Db::reconnect(std::string* error) {
    if (!conn_) {
        *error = "no connection";
        return false;
    }
    PQreset(conn_);
    if (PQstatus(conn_) == CONNECTION_OK) return pin_session(error);
    *error = PQerrorMessage(conn_);
    while (!error->empty() && (error->back() == '\n' || error->back() == ' ')) error->pop_back();
    return false;
}

// Records the SQLSTATE of every notice; a warning the loop acts on (01DF1) is logged
// by the loop in its own words, anything else goes to stderr as libpq would print it.
void Db::on_notice(void* self, const PGresult* res) {
    auto* db = static_cast<Db*>(self);
    const char* code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    std::string sqlstate = code ? code : "";
    if (db->notices_.size() < 64) db->notices_.push_back(sqlstate);
    if (sqlstate == kSupersededWarning) return;
    const char* text = PQresultErrorMessage(res);
    if (text) std::fputs(text, stderr);
}

bool Db::noticed(const char* sqlstate) const {
    for (const auto& n : notices_)
        if (n == sqlstate) return true;
    return false;
}

DbStatus Db::exec(const char* sql, const std::vector<std::optional<std::string>>& params,
                  PGresult** res) {
    DbStatus st;
    *res = nullptr;
    notices_.clear();
    if (!connected()) {
        st.ok = false;
        st.connection_lost = true;
        st.message = "not connected";
        return st;
    }
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
    *res = PQexecParams(conn_, sql, static_cast<int>(values.size()), nullptr, values.data(),
                        nullptr, nullptr, 0);
    ExecStatusType status = *res ? PQresultStatus(*res) : PGRES_FATAL_ERROR;
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) return st;

    st.ok = false;
    const char* code = *res ? PQresultErrorField(*res, PG_DIAG_SQLSTATE) : nullptr;
    const char* primary = *res ? PQresultErrorField(*res, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
    const char* hint = *res ? PQresultErrorField(*res, PG_DIAG_MESSAGE_HINT) : nullptr;
    st.sqlstate = code ? code : "";
    st.message = primary ? primary : PQerrorMessage(conn_);
    if (hint) st.message += std::string(" (hint: ") + hint + ")";
    while (!st.message.empty() && (st.message.back() == '\n' || st.message.back() == ' '))
        st.message.pop_back();
    // One line for the logs: libpq's connection messages span several.
    for (char& c : st.message)
        if (c == '\n' || c == '\t') c = ' ';
    st.connection_lost = PQstatus(conn_) != CONNECTION_OK || st.sqlstate.rfind("08", 0) == 0 ||
                         st.sqlstate.rfind("57P", 0) == 0;
    return st;
}

DbStatus Db::lease(const std::string& job, const std::string& worker, int max_chunks,
                   double lease_for, std::vector<Task>* tasks) {
    tasks->clear();
    ResultGuard g;
    DbStatus st = exec(kLeaseSql,
                       {job, worker, std::to_string(max_chunks), seconds_param(lease_for)}, &g.res);
    if (!st.ok) return st;
    for (int r = 0; r < PQntuples(g.res); ++r) {
        Task t;
        t.run_id = std::strtoll(PQgetvalue(g.res, r, 0), nullptr, 10);
        t.token = field(g.res, r, 1);
        t.job = field(g.res, r, 2);
        t.dataset = field(g.res, r, 3);
        t.key = field(g.res, r, 4);
        t.version = std::atoi(PQgetvalue(g.res, r, 5));
        t.attempt = std::atoi(PQgetvalue(g.res, r, 6));
        if (!PQgetisnull(g.res, r, 7)) t.output_location = field(g.res, r, 7);
        if (!PQgetisnull(g.res, r, 8)) t.inputs = field(g.res, r, 8);
        if (!PQgetisnull(g.res, r, 9)) t.params = field(g.res, r, 9);
        t.deadline = field(g.res, r, 10);
        t.lease_seconds = PQgetisnull(g.res, r, 11) ? 0 : std::atof(PQgetvalue(g.res, r, 11));
        tasks->push_back(std::move(t));
    }
    return st;
}

DbStatus Db::heartbeat(const std::string& token, int64_t run_id, double extend_by,
                       double* lease_seconds, bool* superseded) {
    ResultGuard g;
    DbStatus st =
        exec(kHeartbeatSql, {token, seconds_param(extend_by), std::to_string(run_id)}, &g.res);
    bool one = st.ok && PQntuples(g.res) == 1;
    if (one && !PQgetisnull(g.res, 0, 0)) *lease_seconds = std::atof(PQgetvalue(g.res, 0, 0));
    *superseded =
        st.ok && (noticed(kSupersededWarning) || (one && field(g.res, 0, 1) == "superseded"));
    return st;
}

DbStatus Db::complete(const std::string& token, const RunResult& result, std::string* outcome) {
    std::optional<std::string> row_count;
    if (result.row_count) row_count = std::to_string(*result.row_count);
    ResultGuard g;
    DbStatus st = exec(kCompleteSql,
                       {token, row_count, result.checksum, result.info, result.location}, &g.res);
    if (st.ok && PQntuples(g.res) == 1) *outcome = field(g.res, 0, 0);
    return st;
}

DbStatus Db::fail(const std::string& token, const std::string& error, bool retry,
                  std::string* chunk_status) {
    ResultGuard g;
    DbStatus st = exec(kFailSql, {token, error, std::string(retry ? "true" : "false")}, &g.res);
    if (st.ok && PQntuples(g.res) == 1) *chunk_status = field(g.res, 0, 0);
    return st;
}

DbStatus Db::progress(const std::string& job, Progress* out) {
    ResultGuard g;
    DbStatus st = exec(kProgressSql, {job}, &g.res);
    if (!st.ok) return st;
    *out = Progress{};
    if (PQntuples(g.res) != 1) return st;
    auto num = [&](int col) { return std::strtoll(PQgetvalue(g.res, 0, col), nullptr, 10); };
    out->done = num(0);
    out->total = num(1);
    out->failed = num(2);
    out->queued = num(3);
    out->running = num(4);
    out->waiting = num(5);
    out->found = true;
    out->paused = field(g.res, 0, 6) == "t";
    if (!PQgetisnull(g.res, 0, 7)) out->limit = num(7);
    out->in_use = num(8);
    out->pool = field(g.res, 0, 9);
    if (!PQgetisnull(g.res, 0, 10)) out->pool_slots = num(10);
    out->pool_in_use = PQgetisnull(g.res, 0, 11) ? 0 : num(11);
    return st;
}

DbStatus Db::available_keys(const std::string& dataset, const std::vector<std::string>& keys,
                            std::vector<std::string>* available) {
    available->clear();
    ResultGuard g;
    std::string json =
        nlohmann::json(keys).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    DbStatus st = exec(kAvailableSql, {dataset, json}, &g.res);
    if (!st.ok) return st;
    for (int r = 0; r < PQntuples(g.res); ++r) available->push_back(field(g.res, r, 0));
    return st;
}

DbStatus Db::run_status(int64_t run_id, std::string* status) {
    ResultGuard g;
    DbStatus st = exec(kRunStatusSql, {std::to_string(run_id)}, &g.res);
    if (st.ok) *status = PQntuples(g.res) == 1 ? field(g.res, 0, 0) : "";
    return st;
}

}  // namespace dataflow::cli
