// dataflow.* GUCs read by the background worker (defined in settings.cpp; each
// documented with unit and default in docs/worker.md).
#pragma once

#include <climits>
#include <string>

namespace dataflow::settings {

// From _PG_init. postmaster-level settings (dataflow.database) only while preloading.
void define(bool preloading);

struct Snapshot {
    std::string database;
    bool enabled;
    int naptime_ms;
    int http_concurrency;
    int http_connect_timeout_ms;
    int http_timeout_ms;
    std::string http_allow;
    int http_max_body;
    int poll_interval_ms;
    int retention_s;
    int worker_lock_timeout_ms;       // the worker session's lock_timeout
    int worker_statement_timeout_ms;  // longest run of one of the worker's transactions
    std::string callback_url;         // dataflow.callback_url: tasks carry callback {url, token}
};
// A copy of the current values (call after ProcessConfigFile on SIGHUP).
Snapshot current();

// The callback listener's settings (dataflow.callback_*; docs/worker.md, "Callback
// listener"). listen, role, the per-address limit and the TLS files are postmaster-level, the rest
// reload.
struct CallbackSnapshot {
    std::string listen;  // host:port; empty: no listener
    std::string url;     // base URL engines see; empty: tasks carry no callback
    std::string role;
    int max_body;                // bytes
    int max_connections;         // connections open at once
    int timeout_ms;              // longest request, from its connection to its answer
    int lock_timeout_ms;         // lock_timeout of each request's transaction
    int max_connections_per_ip;  // 0: no per-address limit (postmaster-level)
    std::string tls_cert;        // PEM files; both or neither
    std::string tls_key;
};
CallbackSnapshot callback_current();

// Sets lock_timeout (and statement_timeout, for pg_stat_activity and SHOW) in
// the worker's own session from the snapshot. Called after connecting and on
// every reload; only the worker calls it.
void apply_worker_session(const Snapshot& cfg) noexcept;

// Bounds one of the worker's transactions: a background worker's SPI calls do
// not arm statement_timeout by themselves, so this arms Postgres' statement
// timer for `ms` (the transaction is cancelled with SQLSTATE 57014 when it
// fires) and disarms it on stop() or destruction. A timer that fired after the
// last statement leaves no cancel pending behind it. Never throws.
class TransactionTimer {
public:
    explicit TransactionTimer(int ms) noexcept;
    ~TransactionTimer() { stop(); }
    TransactionTimer(const TransactionTimer&) = delete;
    TransactionTimer& operator=(const TransactionTimer&) = delete;
    void stop() noexcept;

private:
    bool armed_ = false;
};

}  // namespace dataflow::settings
