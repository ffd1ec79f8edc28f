// The SQL dataflow-run speaks, over one libpq connection used from one thread.
// Every statement is parameterised (PQexecParams) and runs in autocommit, so no
// transaction is ever held while a command runs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <libpq-fe.h>

#include "pacing.h"
#include "result_file.h"
#include "task.h"

namespace dataflow::cli {

// Outcome of one statement. sqlstate is empty on success; "08006"-style codes
// or an empty code with connection_lost mean the connection is gone.
struct DbStatus {
    bool ok = true;
    bool connection_lost = false;
    std::string sqlstate;
    std::string message;

    bool lease_not_live() const { return sqlstate == "55000"; }
    bool undefined_object() const { return sqlstate == "42704"; }
};

class Db {
public:
    Db() = default;
    ~Db();
    Db(const Db&) = delete;
    Db& operator=(const Db&) = delete;

    // Connects; on failure returns false with the libpq message in *error.
    bool connect(const std::string& dsn, std::string* error);
    // Re-establishes a lost connection; true when usable again.
    bool reconnect(std::string* error);
    bool connected() const;

    DbStatus lease(const std::string& job, const std::string& worker, int max_chunks,
                   double lease_for, std::vector<Task>* tasks);
    // *lease_seconds: time left on the new deadline, on the database clock.
    // *superseded: a resubmit superseded the run (the server's 01DF1 warning, or the
    // run's status): the lease still holds its inputs, but its result will not be used.
    DbStatus heartbeat(const std::string& token, int64_t run_id, double extend_by,
                       double* lease_seconds, bool* superseded);
    // *outcome: 'succeeded' or 'superseded'.
    DbStatus complete(const std::string& token, const RunResult& result, std::string* outcome);
    // *chunk_status: the chunk's new status (queued for a retry, failed, ...).
    DbStatus fail(const std::string& token, const std::string& error, bool retry,
                  std::string* chunk_status);
    // The job's row of dataflow.jobs; out->found is false when it has none.
    DbStatus progress(const std::string& job, Progress* out);
    // *available: those of keys whose chunk of dataset is ready, validated or skipped now.
    DbStatus available_keys(const std::string& dataset, const std::vector<std::string>& keys,
                            std::vector<std::string>* available);
    // Status of a run by id (running, succeeded, failed, expired, ...).
    DbStatus run_status(int64_t run_id, std::string* status);

private:
    // Runs sql with text parameters (nullopt = NULL). *res is owned by the caller.
    DbStatus exec(const char* sql, const std::vector<std::optional<std::string>>& params,
                  PGresult** res);

    // After each connect: search_path = pg_catalog, pg_temp (db.cpp).
    bool pin_session(std::string* error);
    // Notices and warnings the server sent during the last exec(): their SQLSTATEs.
    static void on_notice(void* self, const PGresult* res);
    bool noticed(const char* sqlstate) const;

    PGconn* conn_ = nullptr;
    std::vector<std::string> notices_;
};

// SQLSTATE of heartbeat()'s warning for a run a resubmit superseded while it worked.
inline constexpr const char* kSupersededWarning = "01DF1";

// "1.5" for 1.5 seconds, or nullopt when the value means "the default" (0).
std::optional<std::string> seconds_param(double seconds);

}  // namespace dataflow::cli
