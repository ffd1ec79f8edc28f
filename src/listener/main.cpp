// The callback listener process, "pg_dataflow listener": registration, the role check,
// the main loop (one WaitEventSet on the latch, postmaster death and the server's event
// fd) and each request's transaction. Only this thread touches PostgreSQL; the HTTP
// side (server.h) runs in libmicrohttpd's thread and hands requests over.
// C++ and project headers first: src/core headers refuse to come after postgres.h.
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/callback.h"
#include "listener/listener.h"
#include "listener/server.h"
#include "pg/guard.h"
#include "pg/settings.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wregister"
#pragma GCC diagnostic ignored "-Wunused-parameter"
extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/procsignal.h"
#include "tcop/tcopprot.h"
#include "utils/elog.h"
#include "utils/guc.h"

#include "pg/compat.h"

PGDLLEXPORT void df_listener_main(Datum arg);
}
#pragma GCC diagnostic pop

namespace dataflow::listener {
namespace {

using pg::pg_guarded;
using pg::PgError;

Server* g_server = nullptr;  // stopped by the exit callback whatever ends the process

// heartbeat() of a run a resubmit superseded extends it and raises WARNING 01DF1 (its
// result will not be used): seen through emit_log_hook while a heartbeat runs, so the
// answer says "superseded" instead of "running".
emit_log_hook_type g_prev_hook = nullptr;
bool g_watch_superseded = false;
bool g_saw_superseded = false;

void watch_hook(ErrorData* edata) {
    if (g_watch_superseded && edata->sqlerrcode == MAKE_SQLSTATE('0', '1', 'D', 'F', '1'))
        g_saw_superseded = true;
    if (g_prev_hook) g_prev_hook(edata);
}

void stop_server(int, Datum) {
    if (g_server) g_server->stop();
}

std::string sqlstate_text(int code) {
    char buf[6];
    int c = code;
    for (int i = 0; i < 5; ++i) {
        buf[i] = static_cast<char>(PGUNSIXBIT(c));
        c >>= 6;
    }
    buf[5] = '\0';
    return buf;
}

Limits current_limits() {
    settings::CallbackSnapshot cfg = settings::callback_current();
    Limits l;
    l.max_body = static_cast<size_t>(cfg.max_body);
    l.max_connections = cfg.max_connections;
    l.timeout_ms = cfg.timeout_ms;
    l.max_connections_per_ip = cfg.max_connections_per_ip;
    return l;
}

// The session's lock_timeout: each request's longest wait for a lock.
void apply_session(const settings::CallbackSnapshot& cfg) {
    std::string lock = std::to_string(cfg.lock_timeout_ms);
    const char* l = lock.c_str();
    pg_guarded([&] { SetConfigOption("lock_timeout", l, PGC_SUSET, PGC_S_OVERRIDE); });
}

// Whether the interrupts asked for a reload (handled here) or a shutdown (a FATAL). A
// cancel (pg_cancel_backend: SIGINT) between requests cancels nothing: it is logged and
// the listener goes on (one during a request's transaction ends that request, 503).
bool handle_interrupts() {
    bool reload = false;
    try {
        pg_guarded([&] { CHECK_FOR_INTERRUPTS(); });
    } catch (const PgError& e) {
        if (e.sqlerrcode() != ERRCODE_QUERY_CANCELED) throw;
        pg::log(pg::Level::kLog,
                "pg_dataflow listener: a cancel request between callbacks "
                "is ignored (pg_terminate_backend stops the listener)");
    }
    pg_guarded([&] {
        if (ProcSignalBarrierPending) ProcessProcSignalBarrier();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
            reload = true;
        }
    });
    return reload;
}

// One wait on the latch, postmaster death (exits) and the event fd (-1: none).
void wait(int fd, long timeout_ms) {
    pg_guarded([&] {
        WaitEventSet* set = df_create_wait_event_set(3);
        AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, nullptr);
        AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, nullptr, nullptr);
        if (fd >= 0) AddWaitEventToSet(set, WL_SOCKET_READABLE, fd, nullptr, nullptr);
        WaitEvent ev[3];
        (void)WaitEventSetWait(set, timeout_ms, ev, 3, PG_WAIT_EXTENSION);
        FreeWaitEventSet(set);
        ResetLatch(MyLatch);
    });
}

// Why the session's role may not serve callbacks, or "" when it may: it must be a member
// of dataflow_worker and hold nothing more (no superuser, no BYPASSRLS, no other role
// but dataflow_reader, which dataflow_worker includes).
std::string role_problem() {
    pg::Xact x("pg_dataflow listener: checking its role");
    std::vector<pg::Row> rows = pg::spi_exec(
        "SELECT r.rolsuper, r.rolbypassrls, "
        "       w.oid IS NOT NULL AND pg_has_role(r.oid, w.oid, 'MEMBER'), "
        "       (SELECT string_agg(g.rolname::text, ', ' ORDER BY g.rolname) FROM pg_roles g "
        "         WHERE g.oid <> r.oid AND g.rolname <> ALL ('{dataflow_worker,dataflow_reader}') "
        "           AND pg_has_role(r.oid, g.oid, 'MEMBER')), "
        "       w.oid IS NOT NULL "
        "  FROM pg_roles r LEFT JOIN pg_roles w ON w.rolname = 'dataflow_worker' "
        " WHERE r.rolname = current_user");
    x.commit();
    if (rows.empty() || rows[0].size() < 5) return "its role could not be read";
    const pg::Row& r = rows[0];
    auto yes = [](const pg::Param& v) { return v && *v == "t"; };
    if (!yes(r[4])) return "role dataflow_worker does not exist yet (CREATE EXTENSION pg_dataflow)";
    if (yes(r[0])) return "it is a superuser";
    if (yes(r[1])) return "it has BYPASSRLS";
    if (!yes(r[2])) return "it is not a member of dataflow_worker";
    if (r[3]) return "it is also a member of " + *r[3];
    return "";
}

std::string read_file(const std::string& path, std::string* error) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        *error = "cannot read " + path + ": " + strerror(errno);
        return "";
    }
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// Runs one request in its own transaction and answers it. Nothing is kept on any error:
// the transaction is rolled back.
void process(Server& server, Job* job, const settings::CallbackSnapshot& cfg) {
    using callback::Action;
    auto age = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - job->started);
    long left = cfg.timeout_ms - static_cast<long>(age.count());
    if (left <= 0) {
        server.answer(job, 503,
                      callback::error_json("the callback listener was too busy to take this "
                                           "request within dataflow.callback_timeout; try again",
                                           "57014"));
        return;
    }
    const callback::Request& r = job->request;
    const char* name = callback::action_name(r.action);
    int status = 200;
    std::string body;
    try {
        // Bounded: the timer cancels the transaction (57014 -> 503) at the request's end.
        settings::TransactionTimer timer(static_cast<int>(left));
        std::string duty = std::string("pg_dataflow listener: ") + name;
        pg::Xact x(duty.c_str());
        std::vector<pg::Row> rows;
        std::string deadline;
        std::string result;
        switch (r.action) {
            case Action::kHeartbeat: {
                pg::Param extend;
                if (r.extend_by) extend = std::to_string(*r.extend_by);
                g_saw_superseded = false;
                g_watch_superseded = true;
                try {
                    rows = pg::spi_exec(
                        "SELECT dataflow.heartbeat($1::uuid, make_interval(secs => "
                        "$2::double precision))::text",
                        {job->token, extend});
                } catch (...) {
                    g_watch_superseded = false;
                    throw;
                }
                g_watch_superseded = false;
                deadline = rows.empty() || !rows[0][0] ? "" : *rows[0][0];
                result = g_saw_superseded ? "superseded" : "running";
                break;
            }
            case Action::kComplete: {
                pg::Param rc;
                if (r.row_count) rc = std::to_string(*r.row_count);
                // info as jsonb reads it from the body (numbers exactly as sent); the body
                // was checked to be an object whose info is an object
                pg::Param body;
                if (r.info) body = r.body;
                rows = pg::spi_exec(
                    "SELECT dataflow.complete($1::uuid, $2::bigint, $3, ($4::jsonb) -> 'info', $5)",
                    {job->token, rc, r.checksum, body, r.location});
                std::string out = rows.empty() || !rows[0][0] ? "" : *rows[0][0];
                result = out == "succeeded" ? "ready" : out;
                break;
            }
            case Action::kFail: {
                if (r.retry_after) {
                    // As the dispatch worker records a 429/503 with Retry-After
                    // (_worker_record's 'retry'): the retry waits exactly that long.
                    rows = pg::spi_exec(
                        "SELECT dataflow._fail($1::uuid, $2, true, $3::double precision)",
                        {job->token, r.error, std::to_string(*r.retry_after)});
                } else {
                    rows = pg::spi_exec("SELECT dataflow.fail($1::uuid, $2, $3::boolean)",
                                        {job->token, r.error, r.retry ? "true" : "false"});
                }
                result = rows.empty() || !rows[0][0] ? "" : *rows[0][0];
                break;
            }
        }
        x.commit();
        timer.stop();
        body = callback::status_json(result, deadline);
    } catch (const std::bad_alloc&) {
        status = 503;
        body = callback::error_json("out of memory; try again", "53200");
    } catch (const PgError& e) {
        std::string code = sqlstate_text(e.sqlerrcode());
        status = callback::http_status_for_sqlstate(code);
        if (status == 500) {
            // The detail goes to the log only (SQL errors never carry the token).
            pg::log(pg::Level::kWarning, std::string("pg_dataflow listener: ") + name +
                                             " failed: " + e.what() + " (SQLSTATE " + code + ")");
            body = callback::error_json("internal error; the server log has the detail", "");
        } else {
            body = callback::error_json(e.what(), code);
        }
    } catch (const std::exception& e) {
        pg::log(pg::Level::kWarning,
                std::string("pg_dataflow listener: ") + name + " failed: " + e.what());
        status = 500;
        body = callback::error_json("internal error; the server log has the detail", "");
    }
    server.answer(job, status, std::move(body));
}

// Waits (logging once per distinct reason) until the role may serve; false when the
// process should end instead (never: SIGTERM ends it with a FATAL).
void wait_until_role_ok() {
    std::string logged;
    for (;;) {
        std::string problem;
        try {
            problem = role_problem();
        } catch (const PgError& e) {
            problem = std::string("its role could not be checked: ") + e.what();
        }
        if (problem.empty()) {
            if (!logged.empty())
                pg::log(pg::Level::kLog,
                        "pg_dataflow listener: dataflow.callback_role may serve "
                        "callbacks now; starting");
            return;
        }
        if (problem != logged) {
            std::string role = settings::callback_current().role;
            pg::log(pg::Level::kWarning,
                    "pg_dataflow listener: not serving: role \"" + role +
                        "\" (dataflow.callback_role) may not run callbacks: " + problem +
                        "; HINT: use a role that is a member of dataflow_worker and of nothing "
                        "more (GRANT dataflow_worker TO it; no SUPERUSER, BYPASSRLS, "
                        "dataflow_operator or dataflow_admin); checked again every 10 s and on "
                        "reload");
            logged = problem;
        }
        pg::report_activity("pg_dataflow listener: waiting for an acceptable callback role", true);
        wait(-1, 10000);
        handle_interrupts();
    }
}

void loop() {
    // The server lives as long as the process: the exit callback (stop_server) stops it
    // whatever ends the process, also an exception unwinding this frame.
    static Server* const owned = new Server;
    Server& server = *owned;
    g_server = owned;
    pg_guarded([] {
        before_shmem_exit(stop_server, 0);
        g_prev_hook = emit_log_hook;
        emit_log_hook = watch_hook;
    });
    for (;;) {
        wait_until_role_ok();
        settings::CallbackSnapshot cfg = settings::callback_current();
        apply_session(cfg);
        std::string host, error;
        int port = 0;
        callback::parse_listen_address(cfg.listen, &host, &port, &error);
        std::string cert, key;
        bool tls = !cfg.tls_cert.empty() || !cfg.tls_key.empty();
        if (tls && (cfg.tls_cert.empty() || cfg.tls_key.empty()))
            error = "dataflow.callback_tls_cert and dataflow.callback_tls_key must be set together";
        if (tls && error.empty()) cert = read_file(cfg.tls_cert, &error);
        if (tls && error.empty()) key = read_file(cfg.tls_key, &error);
        if (error.empty()) server.start(host, port, cert, key, current_limits(), &error);
        // The key's text is not kept beyond the daemon's copy.
        std::fill(key.begin(), key.end(), '\0');
        if (!server.running()) {
            pg::log(pg::Level::kWarning, "pg_dataflow listener: cannot serve on " + cfg.listen +
                                             ": " + error + "; trying again in 10 s");
            wait(-1, 10000);
            handle_interrupts();
            continue;
        }
        pg::log(pg::Level::kLog, std::string("pg_dataflow listener: serving ") +
                                     (tls ? "https" : "http") + " on " + cfg.listen);
        auto last_role_check = Clock::now();
        for (;;) {
            pg::report_activity("pg_dataflow listener: waiting for callbacks", true);
            wait(server.event_fd(), 1000);
            bool reload = handle_interrupts();
            if (reload) {
                cfg = settings::callback_current();
                apply_session(cfg);
                server.set_limits(current_limits());
            }
            for (Job* job : server.take()) process(server, job, cfg);
            server.sweep();
            // The role's memberships can change under it: re-check on reload and every
            // 10 s; one that may no longer serve stops the listener until it may.
            if (reload || Clock::now() - last_role_check > std::chrono::seconds(10)) {
                last_role_check = Clock::now();
                std::string problem;
                try {
                    problem = role_problem();
                } catch (const PgError& e) {
                    // A check that fails (its role dropped: "invalid role OID") stops
                    // serving, as a role that may not serve does; wait_until_role_ok says why.
                    problem = std::string("its role could not be checked: ") + e.what();
                }
                if (!problem.empty()) {
                    server.stop();
                    break;
                }
            }
        }
    }
}

int run() noexcept {
    try {
        loop();
        return 0;
    } catch (const std::exception& e) {
        pg::log(pg::Level::kWarning, std::string("pg_dataflow listener: fatal: ") + e.what());
    } catch (...) {
        pg::log(pg::Level::kWarning, "pg_dataflow listener: fatal: unknown exception");
    }
    return 1;
}

}  // namespace

void register_listener() {
    BackgroundWorker w;
    memset(&w, 0, sizeof w);
    w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    w.bgw_start_time = BgWorkerStart_RecoveryFinished;  // primaries only
    w.bgw_restart_time = 5;
    strlcpy(w.bgw_library_name, "pg_dataflow", sizeof w.bgw_library_name);
    strlcpy(w.bgw_function_name, "df_listener_main", sizeof w.bgw_function_name);
    strlcpy(w.bgw_name, "pg_dataflow listener", sizeof w.bgw_name);
    strlcpy(w.bgw_type, "pg_dataflow listener", sizeof w.bgw_type);
    RegisterBackgroundWorker(&w);
}

}  // namespace dataflow::listener

void df_listener_main(Datum) {
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    const char* database = GetConfigOption("dataflow.database", false, false);
    const char* role = GetConfigOption("dataflow.callback_role", false, false);
    if (role == nullptr || role[0] == '\0') {
        // Without a role there is nothing it may run as: say so once, then idle until
        // shutdown (the setting needs a restart).
        ereport(WARNING,
                (errmsg("pg_dataflow listener: not serving: dataflow.callback_role is not set"),
                 errhint("Create a role that is a member of dataflow_worker only, set "
                         "dataflow.callback_role to it and restart the server.")));
        for (;;) {
            (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1, PG_WAIT_EXTENSION);
            ResetLatch(MyLatch);
            CHECK_FOR_INTERRUPTS();
            if (ConfigReloadPending) {
                ConfigReloadPending = false;
                ProcessConfigFile(PGC_SIGHUP);
            }
        }
    }
    BackgroundWorkerInitializeConnection(database, role, 0);
    pgstat_report_appname("pg_dataflow listener");
    SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);
    // As the dispatch worker: no name resolves through a schema others can create in,
    // ISO output (the deadline it answers), the READ COMMITTED the functions need.
    SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
    SetConfigOption("DateStyle", "ISO", PGC_SUSET, PGC_S_OVERRIDE);
    SetConfigOption("IntervalStyle", "postgres", PGC_SUSET, PGC_S_OVERRIDE);
    SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET, PGC_S_OVERRIDE);
    int code = dataflow::listener::run();
    proc_exit(code == 0 ? 1 : code);
}
