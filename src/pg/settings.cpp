// Definitions of the dataflow.* GUCs.
// C++ and project headers first: Postgres macros must not leak into them, and
// src/core headers refuse to be included after postgres.h.
#include "pg/settings.h"
#include "core/callback.h"
#include "core/net_policy.h"
#include "pg/guard.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wregister"
#pragma GCC diagnostic ignored "-Wunused-parameter"
extern "C" {
#include "postgres.h"

#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/timeout.h"
}
#pragma GCC diagnostic pop

namespace dataflow::settings {
namespace {

char* database = nullptr;
bool enabled = true;
int naptime_ms = 1000;
int http_concurrency = 64;
int http_connect_timeout_ms = 5000;
int http_timeout_ms = 30000;
char* http_allow = nullptr;
int http_max_body = 1024 * 1024;
int poll_interval_ms = 10000;
int retention_s = 30 * 24 * 3600;
int worker_lock_timeout_ms = 1000;
int worker_statement_timeout_ms = 60000;
char* callback_listen = nullptr;
char* callback_url = nullptr;
char* callback_role = nullptr;
int callback_max_body = 1024 * 1024;
int callback_max_connections = 128;
int callback_timeout_ms = 10000;
int callback_lock_timeout_ms = 1000;
int callback_max_connections_per_ip = 32;
char* callback_tls_cert = nullptr;
char* callback_tls_key = nullptr;

// Rejects a malformed dataflow.callback_listen / callback_url when set. No exception
// may leave these hooks.
bool check_callback_listen(char** newval, void** extra, GucSource source) {
    static char detail[256];
    bool ok = false;
    try {
        std::string host, error;
        int port = 0;
        ok = !*newval || !**newval || callback::parse_listen_address(*newval, &host, &port, &error);
        if (!ok) strlcpy(detail, error.c_str(), sizeof detail);
    } catch (...) {
        strlcpy(detail, "out of memory", sizeof detail);
    }
    if (!ok) GUC_check_errdetail("%s", detail);
    return ok;
}

bool check_callback_url(char** newval, void** extra, GucSource source) {
    static char detail[256];
    bool ok = false;
    try {
        std::string error;
        ok = !*newval || callback::valid_callback_url(*newval, &error);
        if (!ok) strlcpy(detail, ("dataflow.callback_url " + error).c_str(), sizeof detail);
    } catch (...) {
        strlcpy(detail, "out of memory", sizeof detail);
    }
    if (!ok) GUC_check_errdetail("%s", detail);
    return ok;
}

// Rejects an unparsable allow-list at SET/reload time, so the worker never
// runs with a half-understood policy. No exception may leave this hook.
bool check_http_allow(char** newval, void** extra, GucSource source) {
    const char* value = *newval ? *newval : "";
    bool ok = false;
    static char detail[256];
    try {
        NetPolicy policy;
        std::string error;
        ok = NetPolicy::parse(value, &policy, &error);
        if (!ok) strlcpy(detail, error.c_str(), sizeof detail);
    } catch (...) {
        strlcpy(detail, "out of memory", sizeof detail);
    }
    if (!ok) GUC_check_errdetail("%s", detail);
    return ok;
}

}  // namespace

void define(bool preloading) {
    // A postmaster-level setting can only be made while preloading: loaded later (CREATE
    // EXTENSION in a cluster without shared_preload_libraries) it would be a FATAL error.
    // Without the preload there is no background worker for it to configure, so it is
    // defined at reload level only to keep a value set in postgresql.conf from being
    // reported as an invalid name (the prefix is reserved below).
    DefineCustomStringVariable(
        "dataflow.database", "Database in which the pg_dataflow background worker runs.",
        preloading ? nullptr : "No effect: pg_dataflow is not in shared_preload_libraries.",
        &database, "postgres", preloading ? PGC_POSTMASTER : PGC_SIGHUP, 0, nullptr, nullptr,
        nullptr);
    DefineCustomBoolVariable("dataflow.enabled",
                             "Whether the pg_dataflow background worker does any work.",
                             "When off, the worker stays connected but idle.", &enabled, true,
                             PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "dataflow.naptime", "Longest sleep of the background worker between passes.",
        "The worker also wakes at once when a transaction that created work commits.", &naptime_ms,
        1000, 10, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "dataflow.http_concurrency", "Most HTTP requests the worker has in flight at once.",
        nullptr, &http_concurrency, 64, 1, 1024, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "dataflow.http_connect_timeout", "Connect timeout of the worker's HTTP requests.",
        "Connections listed with their own timeouts use those.", &http_connect_timeout_ms, 5000,
        100, 600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("dataflow.http_timeout", "Total timeout of the worker's HTTP requests.",
                            "Counted from the start of the request, connection included.",
                            &http_timeout_ms, 30000, 100, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS,
                            nullptr, nullptr, nullptr);
    DefineCustomStringVariable(
        "dataflow.http_allow", "Private destinations the worker may reach over HTTP.",
        "Comma-separated CIDRs (10.0.0.0/8), host names (airflow.internal), domain suffixes "
        "(.corp.example) "
        "or *. Loopback, private, link-local and other special addresses are refused unless "
        "listed.",
        &http_allow, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, check_http_allow, nullptr, nullptr);
    DefineCustomIntVariable("dataflow.http_max_body",
                            "Largest HTTP response body the worker reads.", nullptr, &http_max_body,
                            1024 * 1024, 1024, 256 * 1024 * 1024, PGC_SIGHUP, GUC_UNIT_BYTE,
                            nullptr, nullptr, nullptr);
    DefineCustomIntVariable("dataflow.poll_interval",
                            "How often the worker polls each external run (Airflow).", nullptr,
                            &poll_interval_ms, 10000, 100, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS,
                            nullptr, nullptr, nullptr);
    DefineCustomIntVariable("dataflow.retention", "How long finished webhook deliveries are kept.",
                            "Also passed to dataflow.prune() when it exists.", &retention_s,
                            30 * 24 * 3600, 60, INT_MAX, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr,
                            nullptr);
    DefineCustomIntVariable(
        "dataflow.worker_lock_timeout", "Longest wait of the worker for a lock.",
        "The worker's session lock_timeout: a claim that waits longer skips its job for a "
        "while, any other duty gives up its transaction and tries again at its next turn.",
        &worker_lock_timeout_ms, 1000, 10, 600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
        nullptr);
    DefineCustomIntVariable(
        "dataflow.worker_statement_timeout", "Longest run of one of the worker's transactions.",
        "Each claim, record, reap, schedule or prune transaction of the worker is cancelled "
        "after this long.",
        &worker_statement_timeout_ms, 60000, 100, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr,
        nullptr, nullptr);
    // The callback listener (docs/worker.md, "Callback listener").
    GucContext postmaster = preloading ? PGC_POSTMASTER : PGC_SIGHUP;
    DefineCustomStringVariable(
        "dataflow.callback_listen",
        "Address (host:port) on which the pg_dataflow callback listener serves HTTP.",
        "Empty: no listener. A second background worker takes engines' heartbeat, complete "
        "and fail calls.",
        &callback_listen, "", postmaster, GUC_SUPERUSER_ONLY, check_callback_listen, nullptr,
        nullptr);
    DefineCustomStringVariable(
        "dataflow.callback_url", "Base URL of the callback listener as engines reach it.",
        "Empty: tasks carry no callback. Tasks sent while it is set carry callback {url, token}.",
        &callback_url, "", PGC_SIGHUP, 0, check_callback_url, nullptr, nullptr);
    DefineCustomStringVariable(
        "dataflow.callback_role", "Role as which the callback listener runs its transactions.",
        "It must be a member of dataflow_worker and of nothing more: not a superuser, not "
        "BYPASSRLS, not dataflow_operator or dataflow_admin.",
        &callback_role, "", postmaster, GUC_SUPERUSER_ONLY, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("dataflow.callback_max_body",
                            "Largest request body the callback listener reads.",
                            "A larger one is answered 413.", &callback_max_body, 1024 * 1024, 1024,
                            64 * 1024 * 1024, PGC_SIGHUP, GUC_UNIT_BYTE, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("dataflow.callback_max_connections",
                            "Most connections the callback listener keeps open at once.",
                            "Further connections are refused until one closes.",
                            &callback_max_connections, 128, 1, 1024, PGC_SIGHUP, 0, nullptr,
                            nullptr, nullptr);
    DefineCustomIntVariable(
        "dataflow.callback_timeout", "Longest time of one callback request.",
        "From the connection to the answer (a slow client is cut off), and the bound of its "
        "transaction.",
        &callback_timeout_ms, 10000, 100, 600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
        nullptr);
    DefineCustomIntVariable("dataflow.callback_lock_timeout",
                            "Longest wait of a callback request's transaction for a lock.",
                            "Past it the request is answered 503. Requests are run one at a time: "
                            "keep it well under dataflow.callback_timeout.",
                            &callback_lock_timeout_ms, 1000, 10, 600 * 1000, PGC_SIGHUP,
                            GUC_UNIT_MS, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("dataflow.callback_max_connections_per_ip",
                            "Most connections the callback listener keeps open from one client "
                            "address.",
                            "0: no such limit (e.g. behind a proxy, whose address every client "
                            "shares). Further connections from that address are refused.",
                            &callback_max_connections_per_ip, 32, 0, 1024, postmaster, 0, nullptr,
                            nullptr, nullptr);
    DefineCustomStringVariable(
        "dataflow.callback_tls_cert",
        "PEM certificate (chain) file of the callback listener; with callback_tls_key: HTTPS.",
        nullptr, &callback_tls_cert, "", postmaster, GUC_SUPERUSER_ONLY, nullptr, nullptr, nullptr);
    DefineCustomStringVariable(
        "dataflow.callback_tls_key", "PEM private key file of the callback listener.", nullptr,
        &callback_tls_key, "", postmaster, GUC_SUPERUSER_ONLY, nullptr, nullptr, nullptr);
    MarkGUCPrefixReserved("dataflow");
}

Snapshot current() {
    return Snapshot{database ? database : "postgres",
                    enabled,
                    naptime_ms,
                    http_concurrency,
                    http_connect_timeout_ms,
                    http_timeout_ms,
                    http_allow ? http_allow : "",
                    http_max_body,
                    poll_interval_ms,
                    retention_s,
                    worker_lock_timeout_ms,
                    worker_statement_timeout_ms,
                    callback_url ? callback_url : ""};
}

CallbackSnapshot callback_current() {
    return CallbackSnapshot{callback_listen ? callback_listen : "",
                            callback_url ? callback_url : "",
                            callback_role ? callback_role : "",
                            callback_max_body,
                            callback_max_connections,
                            callback_timeout_ms,
                            callback_lock_timeout_ms,
                            callback_max_connections_per_ip,
                            callback_tls_cert ? callback_tls_cert : "",
                            callback_tls_key ? callback_tls_key : ""};
}

void apply_worker_session(const Snapshot& cfg) noexcept {
    // PGC_S_OVERRIDE: ALTER ROLE/DATABASE settings of lock_timeout do not apply to
    // the worker; its bounds come from the dataflow.* settings only.
    // No exception leaves here (it is also called from the worker's C entry point).
    try {
        std::string lock = std::to_string(cfg.worker_lock_timeout_ms);
        std::string stmt = std::to_string(cfg.worker_statement_timeout_ms);
        const char* l = lock.c_str();
        const char* s = stmt.c_str();
        pg::pg_guarded([&] {
            SetConfigOption("lock_timeout", l, PGC_SUSET, PGC_S_OVERRIDE);
            SetConfigOption("statement_timeout", s, PGC_SUSET, PGC_S_OVERRIDE);
        });
    } catch (const std::exception& e) {
        pg::log(pg::Level::kWarning,
                std::string("pg_dataflow worker: could not set its session timeouts: ") + e.what());
    }
}

TransactionTimer::TransactionTimer(int ms) noexcept {
    if (ms <= 0) return;
    enable_timeout_after(STATEMENT_TIMEOUT, ms);
    armed_ = true;
}

void TransactionTimer::stop() noexcept {
    if (!armed_) return;
    armed_ = false;
    bool fired = get_timeout_indicator(STATEMENT_TIMEOUT, false);
    disable_timeout(STATEMENT_TIMEOUT, false);
    // Fired after the last statement checked for interrupts: the transaction ended
    // anyway, and the cancel must not hit the worker's next, unrelated statement.
    if (fired) QueryCancelPending = false;
}

}  // namespace dataflow::settings
