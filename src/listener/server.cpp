// libmicrohttpd glue of the callback listener (server.h). Postgres-free: this code runs
// in the daemon's thread and must never call into PostgreSQL.
#include "listener/server.h"

#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

namespace dataflow::listener {

struct ConnState {
    std::atomic<Clock::time_point> since{Clock::time_point{}};
    std::atomic<bool> suspended{false};
    // The request line and headers of the current request have arrived (the handler ran).
    std::atomic<bool> headers_done{false};
    int fd = -1;
};

namespace {

MHD_Result to_result(int v) {
    return v ? MHD_YES : MHD_NO;
}

MHD_Result access_cb(void* cls, MHD_Connection* c, const char* url, const char* method, const char*,
                     const char* upload_data, size_t* upload_data_size, void** con_cls) {
    return to_result(
        static_cast<Server*>(cls)->handle(c, url, method, upload_data, upload_data_size, con_cls));
}

void completed_cb(void* cls, MHD_Connection*, void** con_cls, MHD_RequestTerminationCode) {
    static_cast<Server*>(cls)->completed(con_cls);
}

void notify_cb(void* cls, MHD_Connection* c, void** socket_context,
               MHD_ConnectionNotificationCode code) {
    static_cast<Server*>(cls)->connection_event(c, socket_context,
                                                code == MHD_CONNECTION_NOTIFY_STARTED);
}

MHD_Result accept_cb(void* cls, const sockaddr*, socklen_t) {
    return to_result(static_cast<Server*>(cls)->accept_ok());
}

// libmicrohttpd's own messages are dropped: this thread may not log through PostgreSQL,
// and nothing it would say is needed (every refusal is answered to the client).
void logger_cb(void*, const char*, va_list) {}

MHD_Result count_arg(void* cls, MHD_ValueKind, const char*, const char*) {
    ++*static_cast<int*>(cls);
    return MHD_YES;
}

}  // namespace

Server::Server() = default;

Server::~Server() {
    stop();
}

bool Server::start(const std::string& host, int port, const std::string& cert_pem,
                   const std::string& key_pem, const Limits& limits, std::string* error) {
    stop();
    {
        std::lock_guard<std::mutex> lock(mu_);
        limits_ = limits;
        stopping_ = false;
        suspended_ = 0;
    }
    addrinfo hints;
    std::memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    std::string service = std::to_string(port);
    int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res);
    if (rc != 0 || res == nullptr) {
        *error = "cannot resolve \"" + host + "\": " + gai_strerror(rc);
        return false;
    }
    sockaddr_storage addr;
    std::memset(&addr, 0, sizeof addr);
    std::memcpy(&addr, res->ai_addr, res->ai_addrlen);
    bool v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);

    event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (event_fd_ < 0) {
        *error = std::string("eventfd: ") + std::strerror(errno);
        return false;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (v6) flags |= MHD_USE_IPv6;
    bool tls = !cert_pem.empty() || !key_pem.empty();
    if (tls) {
        flags |= MHD_USE_TLS;
        cert_ = cert_pem;
        key_ = key_pem;
    }
    // The idle timeout of libmicrohttpd (whole seconds, reset by every byte) bounds a
    // silent client; sweep() bounds a trickling one.
    unsigned idle_s = static_cast<unsigned>((limits.timeout_ms + 999) / 1000);
    MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, const_cast<char*>(cert_.c_str())},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, const_cast<char*>(key_.c_str())},
        {MHD_OPTION_END, 0, nullptr},
    };
    MHD_OptionItem no_opts[] = {{MHD_OPTION_END, 0, nullptr}};
    // The daemon's thread inherits the signal mask: with every signal blocked there, the
    // process's signal handlers (PostgreSQL's: SIGHUP, SIGTERM, SIGUSR1, the latch) only
    // ever run in the main thread.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    daemon_ = MHD_start_daemon(
        flags, 0, accept_cb, this, access_cb, this, MHD_OPTION_SOCK_ADDR,
        // No MHD_OPTION_LISTENING_ADDRESS_REUSE: it sets SO_REUSEPORT, with which another
        // process of the same OS user could bind the port too and receive half the
        // callbacks (SO_REUSEADDR, which libmicrohttpd sets anyway, is enough for a restart).
        reinterpret_cast<sockaddr*>(&addr), MHD_OPTION_CONNECTION_LIMIT,
        static_cast<unsigned>(1024 + 16), MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        static_cast<unsigned>(limits.max_connections_per_ip > 0 ? limits.max_connections_per_ip
                                                                : 0),
        MHD_OPTION_CONNECTION_TIMEOUT, idle_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        static_cast<size_t>(64 * 1024), MHD_OPTION_NOTIFY_COMPLETED, completed_cb, this,
        MHD_OPTION_NOTIFY_CONNECTION, notify_cb, this, MHD_OPTION_EXTERNAL_LOGGER, logger_cb,
        nullptr, MHD_OPTION_ARRAY, tls ? tls_opts : no_opts, MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (daemon_ == nullptr) {
        int e = errno;
        close(event_fd_);
        event_fd_ = -1;
        *error = tls ? "could not start the HTTPS listener (is the certificate or key malformed, "
                       "or the address in use?)"
                     : std::string("could not listen: ") + (e ? std::strerror(e) : "unknown error");
        return false;
    }
    return true;
}

void Server::stop() noexcept {
    if (daemon_ == nullptr) return;
    // libmicrohttpd aborts the process when it is stopped while a connection is suspended.
    // So: from now on no request is suspended (handle() answers 503 at once) and no
    // connection is accepted; the queued requests and those taken by the main thread (one
    // taken when a FATAL, SIGTERM during its transaction, ended the process) are answered;
    // then, bounded, the daemon thread gets the time to send those answers.
    {
        std::lock_guard<std::mutex> lock(mu_);
        stopping_ = true;
    }
    for (;;) {
        std::vector<Job*> jobs = take();
        {
            std::lock_guard<std::mutex> lock(mu_);
            jobs = taken_;
        }
        if (jobs.empty()) break;
        for (Job* j : jobs)
            answer(j, 503, callback::error_json("the callback listener is shutting down", ""));
    }
    for (int i = 0; i < 200; ++i) {  // at most 2 s
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (suspended_ == 0) break;
        }
        usleep(10 * 1000);
    }
    MHD_stop_daemon(daemon_);
    daemon_ = nullptr;
    if (event_fd_ >= 0) close(event_fd_);
    event_fd_ = -1;
    // libmicrohttpd kept a pointer to the key's text while it ran: not kept beyond it.
    std::fill(key_.begin(), key_.end(), '\0');
    key_.clear();
    std::lock_guard<std::mutex> lock(mu_);
    conns_.clear();
}

void Server::set_limits(const Limits& limits) {
    std::lock_guard<std::mutex> lock(mu_);
    limits_ = limits;
}

Limits Server::limits() const {
    std::lock_guard<std::mutex> lock(mu_);
    return limits_;
}

std::vector<Job*> Server::take() {
    uint64_t n;
    if (event_fd_ >= 0) (void)!read(event_fd_, &n, sizeof n);
    std::vector<Job*> out;
    std::lock_guard<std::mutex> lock(mu_);
    out.assign(queue_.begin(), queue_.end());
    queue_.clear();
    try {
        taken_.insert(taken_.end(), out.begin(), out.end());
    } catch (...) {  // out of memory: they are answered now rather than lost
        for (Job* j : out) {
            j->status = 503;
            j->answered = true;
            MHD_resume_connection(j->connection);
        }
        out.clear();
    }
    return out;
}

void Server::answer(Job* job, int status, std::string body) noexcept {
    {
        std::lock_guard<std::mutex> lock(mu_);
        for (auto it = taken_.begin(); it != taken_.end(); ++it)
            if (*it == job) {
                taken_.erase(it);
                break;
            }
    }
    job->status = status;
    job->body = std::move(body);
    job->answered = true;
    MHD_Connection* c = job->connection;
    if (job->conn) {
        job->conn->since = Clock::now();  // a fresh timeout to send the answer
        job->conn->suspended = false;
    }
    MHD_resume_connection(c);
}

bool Server::accept_ok() const {
    std::lock_guard<std::mutex> lock(mu_);
    return !stopping_ && open_.load() < static_cast<size_t>(limits_.max_connections);
}

void Server::connection_event(MHD_Connection* c, void** socket_context, bool started) {
    if (started) {
        auto* cs = new (std::nothrow) ConnState;
        *socket_context = cs;
        if (cs == nullptr) return;
        cs->since = Clock::now();
        const MHD_ConnectionInfo* info =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        cs->fd = info ? info->connect_fd : -1;
        std::lock_guard<std::mutex> lock(mu_);
        try {
            conns_[cs] = cs->fd;
        } catch (...) {
        }
        ++open_;
    } else {
        auto* cs = static_cast<ConnState*>(*socket_context);
        *socket_context = nullptr;
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (cs) conns_.erase(cs);
            if (open_ > 0) --open_;
        }
        delete cs;
    }
}

void Server::sweep() noexcept {
    Clock::time_point now = Clock::now();
    std::lock_guard<std::mutex> lock(mu_);
    auto limit = std::chrono::milliseconds(limits_.timeout_ms);
    auto header_limit = std::chrono::milliseconds(std::min(limits_.timeout_ms, kHeaderTimeoutMs));
    for (auto& [cs, fd] : conns_) {
        // A suspended connection is the main thread's: its transaction is bounded.
        if (cs->suspended || fd < 0) continue;
        // The connection closes before its fd is closed (the close notification comes
        // first, under this mutex), so fd is still this connection's socket here. Headers
        // get at most kHeaderTimeoutMs, the whole request the timeout.
        auto age = now - cs->since.load();
        if (age > limit || (!cs->headers_done && age > header_limit)) shutdown(fd, SHUT_RDWR);
    }
}

void Server::completed(void** con_cls) {
    auto* job = static_cast<Job*>(*con_cls);
    *con_cls = nullptr;
    if (job == nullptr) return;
    if (job->counted) {  // resumed and closed before its answer went out
        std::lock_guard<std::mutex> lock(mu_);
        if (suspended_ > 0) --suspended_;
    }
    // The connection's clock restarts for its next request (keep-alive), headers first.
    if (job->conn) {
        job->conn->since = Clock::now();
        job->conn->headers_done = false;
    }
    delete job;
}

int Server::respond(MHD_Connection* c, int status, const std::string& body) {
    MHD_Response* r = MHD_create_response_from_buffer(body.size(), const_cast<char*>(body.data()),
                                                      MHD_RESPMEM_MUST_COPY);
    if (r == nullptr) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == 405) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "POST");
    if (status == 401) MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (status == 503) MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    MHD_Result ok = MHD_queue_response(c, static_cast<unsigned>(status), r);
    MHD_destroy_response(r);
    ++answered_total_;
    return ok;
}

int Server::refuse(MHD_Connection* c, Job* job, int status, const std::string& message,
                   const std::string& sqlstate) {
    job->answered = true;
    return respond(c, status, callback::error_json(message, sqlstate));
}

int Server::handle(MHD_Connection* c, const char* url, const char* method, const char* upload_data,
                   size_t* upload_data_size, void** con_cls) {
    try {
        auto* job = static_cast<Job*>(*con_cls);
        if (job == nullptr) {
            job = new Job;
            *con_cls = job;
            job->connection = c;
            const MHD_ConnectionInfo* info =
                MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
            job->conn = info ? static_cast<ConnState*>(info->socket_context) : nullptr;
            // The request's time starts with its headers, not with the idle time of a
            // keep-alive connection before it.
            job->started = Clock::now();
            if (job->conn) job->conn->headers_done = true;
            // What can be answered before the body is read: method, path, a query string,
            // the token, a declared length over the limit (the body is then never read).
            if (std::strcmp(method, "POST") != 0)
                return refuse(c, job, 405, "only POST is accepted", "");
            job->action = callback::action_for_path(url ? url : "");
            if (!job->action)
                return refuse(c, job, 404,
                              "no such callback: POST /v1/runs/heartbeat, /v1/runs/complete or "
                              "/v1/runs/fail",
                              "");
            int args = 0;
            MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, count_arg, &args);
            if (args > 0)
                return refuse(c, job, 400,
                              "the callback URL takes no query string: send the run's token in "
                              "the Authorization: Bearer header, never in the URL",
                              "22023");
            const char* auth =
                MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
            std::optional<std::string> token = callback::bearer_token(auth);
            if (!token)
                return refuse(c, job, 401,
                              auth ? "the Authorization header is not Bearer <the run's token>"
                                   : "no token: send Authorization: Bearer <the run's token>",
                              "42704");
            job->token = std::move(*token);
            size_t max_body = limits().max_body;
            const char* len =
                MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            if (len != nullptr) {
                errno = 0;
                char* end = nullptr;
                unsigned long long n = std::strtoull(len, &end, 10);
                if (errno != 0 || end == len || n > max_body)
                    return refuse(c, job, 413,
                                  "the body is larger than dataflow.callback_max_body (" +
                                      std::to_string(max_body) + " bytes)",
                                  "54000");
            }
            job->first_call_done = true;
            return MHD_YES;
        }
        if (job->answered && !job->queued) {  // refused already: drop what still comes
            *upload_data_size = 0;
            return MHD_YES;
        }
        if (*upload_data_size > 0) {
            // Over the limit (a chunked body): read on and drop the rest, answer 413 at
            // its end, so the memory kept per request stays bounded.
            if (!job->too_large) {
                if (job->upload.size() + *upload_data_size > limits().max_body) {
                    job->too_large = true;
                    std::string().swap(job->upload);
                } else {
                    job->upload.append(upload_data, *upload_data_size);
                }
            }
            *upload_data_size = 0;
            return MHD_YES;
        }
        if (job->queued) {
            // Resumed by the main thread with its answer.
            if (!job->answered) return MHD_YES;
            job->queued = false;
            int rc = respond(c, job->status, job->body);
            if (job->counted) {
                job->counted = false;
                std::lock_guard<std::mutex> lock(mu_);
                if (suspended_ > 0) --suspended_;
            }
            return rc;
        }
        if (job->too_large) {
            size_t max_body = limits().max_body;
            return refuse(c, job, 413,
                          "the body is larger than dataflow.callback_max_body (" +
                              std::to_string(max_body) + " bytes)",
                          "54000");
        }
        if (auto why = callback::parse_body(*job->action, job->upload, &job->request))
            return refuse(c, job, why->http_status, why->message, why->sqlstate);
        std::string().swap(job->upload);
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (stopping_)
                return refuse(c, job, 503, "the callback listener is shutting down", "57P01");
            if (queue_.size() >= static_cast<size_t>(limits_.max_connections))
                return refuse(c, job, 503, "the callback listener is busy; try again", "53300");
            job->queued = true;
            job->counted = true;
            ++suspended_;
            if (job->conn) job->conn->suspended = true;
            MHD_suspend_connection(c);
            queue_.push_back(job);
        }
        uint64_t one = 1;
        (void)!write(event_fd_, &one, sizeof one);
        return MHD_YES;
    } catch (...) {  // bad_alloc: drop the connection rather than throw into C
        return MHD_NO;
    }
}

}  // namespace dataflow::listener
