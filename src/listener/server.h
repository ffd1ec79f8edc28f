// The callback listener's HTTP side: a libmicrohttpd daemon (its own polling thread)
// and the hand-off of parsed requests to the process's main thread, which alone talks
// to PostgreSQL. Postgres-free: nothing here may include a Postgres header, and the
// daemon's thread calls nothing but libmicrohttpd, the C++ library and src/core.
//
// A request's way: the daemon reads it (at most max_body bytes of body kept; the rest
// is read and dropped, then answered 413), the handler checks method, path, query
// string, token and body (src/core/callback.h) and answers what it can alone; a valid
// request is suspended (MHD_suspend_connection), put on a bounded queue (full: 503) and
// the event fd is signalled. The main thread waits on that fd beside its latch, takes
// the requests, runs each in its own transaction and answers it (MHD_resume_connection).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/callback.h"

struct MHD_Daemon;
struct MHD_Connection;

namespace dataflow::listener {

using Clock = std::chrono::steady_clock;

struct ConnState;

// One request taken by the main thread: what to run, and where the answer goes.
struct Job {
    callback::Request request;
    std::string token;
    Clock::time_point started;  // when its connection (or its previous request) ended waiting
    // the answer, written by the main thread before it resumes the connection
    int status = 0;
    std::string body;
    bool answered = false;
    // handler state (daemon thread only)
    MHD_Connection* connection = nullptr;
    ConnState* conn = nullptr;
    std::string upload;
    bool first_call_done = false;
    bool too_large = false;
    bool queued = false;
    bool counted = false;  // counted in Server::suspended_
    std::optional<callback::Action> action;
};

struct Limits {
    size_t max_body = 1024 * 1024;
    int max_connections = 128;
    int timeout_ms = 10000;
    // Most connections open at once from one client address (0: no such limit); read at
    // start().
    int max_connections_per_ip = 32;
};

// How long a connection may take to send its request line and headers: the request's
// timeout, but at most 2 s (the rest of it is for the body and the answer).
constexpr int kHeaderTimeoutMs = 2000;

class Server {
public:
    Server();
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds host:port (host empty: every address) and starts the daemon; with both PEM
    // texts given, HTTPS (GnuTLS inside libmicrohttpd). False and *error on failure.
    bool start(const std::string& host, int port, const std::string& cert_pem,
               const std::string& key_pem, const Limits& limits, std::string* error);
    // Answers every queued request 503 and stops the daemon. Idempotent.
    void stop() noexcept;
    bool running() const { return daemon_ != nullptr; }

    void set_limits(const Limits& limits);
    Limits limits() const;

    // Readable when requests are queued (an eventfd).
    int event_fd() const { return event_fd_; }
    // The queued requests, oldest first (clears the fd).
    std::vector<Job*> take();
    // Answers a taken request and gives its connection back to the daemon.
    void answer(Job* job, int status, std::string body) noexcept;

    // Cuts off connections that have been waiting for their answer (or for their next
    // request) longer than the timeout: slow clients, stalled headers or bodies. Call
    // about once a second from the main thread.
    void sweep() noexcept;

    size_t open_connections() const { return open_.load(); }
    // Requests answered so far, by the daemon thread alone (refusals) and in all.
    uint64_t answered_total() const { return answered_total_.load(); }

    // libmicrohttpd callbacks (daemon thread).
    int handle(MHD_Connection* c, const char* url, const char* method, const char* upload_data,
               size_t* upload_data_size, void** con_cls);
    void completed(void** con_cls);
    void connection_event(MHD_Connection* c, void** socket_context, bool started);
    bool accept_ok() const;

private:
    int respond(MHD_Connection* c, int status, const std::string& body);
    int refuse(MHD_Connection* c, Job* job, int status, const std::string& message,
               const std::string& sqlstate);

    MHD_Daemon* daemon_ = nullptr;
    int event_fd_ = -1;
    std::string cert_, key_;  // libmicrohttpd keeps pointers to these while running

    mutable std::mutex mu_;  // guards queue_, limits_ and conns_
    std::deque<Job*> queue_;
    std::vector<Job*> taken_;  // taken by the main thread and not answered yet
    Limits limits_;
    std::map<ConnState*, int> conns_;  // open connections -> socket fd
    std::atomic<size_t> open_{0};
    std::atomic<uint64_t> answered_total_{0};
    // stop() under way: no request is suspended any more (each is answered 503 at once)
    // and no connection accepted, so the daemon can stop with none suspended (libmicrohttpd
    // aborts the process when it is stopped with a suspended connection).
    bool stopping_ = false;  // guarded by mu_
    // Requests suspended and not yet answered to their client (the daemon thread sends an
    // answer after MHD_resume_connection): stop() waits, bounded, until it is 0.
    size_t suspended_ = 0;  // guarded by mu_
};

}  // namespace dataflow::listener
