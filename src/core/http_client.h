// Non-blocking HTTP client on libcurl's multi interface, for the background
// worker. A rolling window of in-flight requests (a new one starts as soon as a
// slot frees), per-request connect/total timeouts counted from start(),
// CURLOPT_NOSIGNAL, bounded response bodies, no redirects, no proxies from the
// environment, http/https only, and the outbound address policy checked on
// every resolved address before a socket is opened.
//
// The caller owns the wait: sockets() and timeout_ms() describe what curl waits
// for, so the worker can sleep on them together with its latch, then report
// readiness with socket_ready() and call drive(). poll_once() does the same with
// poll(2) for programs without a latch (tests, tools).
// Postgres-free: must not include postgres.h. Single-threaded use only.
#pragma once

#if defined(PG_VERSION_NUM) || defined(POSTGRES_H)
#error "src/core must stay Postgres-free"
#endif

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/net_policy.h"

namespace dataflow {

struct HttpRequest {
    uint64_t tag = 0;  // the caller's id, echoed in the response
    std::string method = "POST";
    std::string url;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    bool basic_auth = false;
    std::string username, password;
    long connect_timeout_ms = 5000;
    long timeout_ms = 30000;
    size_t max_body = 1 << 20;
};

struct HttpResponse {
    uint64_t tag = 0;
    long status = 0;    // HTTP status; 0 when no complete response arrived
    std::string body;   // at most max_body bytes
    std::string error;  // "" on a complete HTTP exchange, else why it failed
    bool timed_out = false;
    bool refused = false;    // refused by the address policy
    bool too_large = false;  // body exceeded max_body (status kept, body truncated)
    // Request bytes were written to the peer: a failure after this point may
    // have reached the application behind it (see dispatch_ambiguous).
    bool sent = false;
    double seconds = 0;
    std::string retry_after;    // the Retry-After header as sent (at most 128 bytes), "" if none
    int64_t received_unix = 0;  // wall clock (Unix seconds) when the exchange ended
};

struct WaitSocket {
    int fd;
    bool read;
    bool write;
};

class HttpClient {
public:
    HttpClient(NetPolicy policy, size_t window);
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    void set_policy(NetPolicy policy) { policy_ = std::move(policy); }
    void set_window(size_t window) { window_ = window == 0 ? 1 : window; }
    size_t window() const { return window_; }
    size_t in_flight() const { return transfers_.size(); }
    size_t free_slots() const { return in_flight() >= window_ ? 0 : window_ - in_flight(); }

    // Starts a request; "" on success, else why it was not started (window
    // full, URL or header refused). A started request always yields exactly one
    // HttpResponse from take_finished(), unless abort_all() drops it.
    std::string start(HttpRequest request);

    std::vector<WaitSocket> sockets() const;
    // Milliseconds until drive() must run even without socket activity; -1: none.
    long timeout_ms() const;
    void socket_ready(int fd, bool readable, bool writable);
    void drive();
    std::vector<HttpResponse> take_finished();
    // Takes only the finished responses `pick` selects; the others stay for
    // take_finished(), in their order.
    std::vector<HttpResponse> take_finished_if(
        const std::function<bool(const HttpResponse&)>& pick);
    // Waits at most max_wait_ms on curl's sockets and `extra_fd` (readable), then
    // drives. Returns true when extra_fd became readable.
    bool poll_once(int max_wait_ms, int extra_fd = -1);
    // Drops every in-flight request without a response (shutdown).
    void abort_all();

    struct Transfer;  // per-request state, defined in http_client.cpp

private:
    void collect();
    static int on_socket(void* easy, int fd, int what, void* client, void* socketp);
    static int on_timer(void* multi, long timeout_ms, void* client);

    NetPolicy policy_;
    size_t window_;
    void* multi_ = nullptr;  // CURLM*
    std::map<void*, std::unique_ptr<Transfer>> transfers_;
    std::map<int, int> sockets_;  // fd -> CURL_POLL_* interest
    bool timer_set_ = false;
    std::chrono::steady_clock::time_point deadline_;
    std::vector<HttpResponse> finished_;
};

// The longest wait a Retry-After header can impose: the longest step of the
// webhook retry schedule (10 h). A larger value is cut to this, so a hostile
// endpoint cannot park work for years.
constexpr int64_t kRetryAfterMaxSeconds = 10 * 3600;

// Parses a Retry-After value (RFC 9110 section 10.2.3): delay-seconds, or an
// HTTP-date in any of the three forms a recipient must accept (IMF-fixdate
// "Sun, 06 Nov 1994 08:49:37 GMT", RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT",
// asctime "Sun Nov  6 08:49:37 1994"). Returns the wait in seconds counted from
// `now_unix` (0 for a date already past; huge values saturate), or nullopt for
// anything else.
std::optional<int64_t> parse_retry_after(const std::string& value, int64_t now_unix);

// The wait a response asks for before the next attempt: only a 429 or 503 with a
// valid Retry-After counts (other statuses follow the normal retry schedule).
// Counted from when the response arrived, clamped to [1 s, max_seconds].
std::optional<int64_t> requested_retry_delay(const HttpResponse& response,
                                             int64_t max_seconds = kRetryAfterMaxSeconds);

// An excerpt of a response body fit for an error message: at most `max` bytes,
// cut on a UTF-8 boundary, control characters replaced by spaces and every byte
// that is not valid UTF-8 (as PostgreSQL checks it) by '?'.
std::string body_excerpt(const std::string& body, size_t max = 300);

// Why a request did not succeed, fit for a log line or an error column: the
// transport error when no response arrived, else "HTTP <status>" (noting that a
// redirect was not followed, and any transport error after the status line)
// followed by a body excerpt. Never a request header or URL credential.
std::string response_error(const HttpResponse& response);

}  // namespace dataflow
