// HttpClient against a tiny HTTP/1.1 server on 127.0.0.1 run in test threads:
// address policy on the resolved address, timeouts, body limits, no redirects,
// the rolling window, and request headers/bodies on the wire.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "core/http_client.h"

using namespace dataflow;
using namespace std::chrono_literals;

namespace {

class TinyServer {
public:
    TinyServer() {
        fd_ = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        listen(fd_, 64);
        socklen_t len = sizeof a;
        getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        acceptor_ = std::thread([this] { accept_loop(); });
    }
    ~TinyServer() {
        stop_ = true;
        acceptor_.join();
        for (auto& t : workers_) t.join();
        close(fd_);
    }
    std::string url(const std::string& path) const {
        return "http://127.0.0.1:" + std::to_string(port_) + path;
    }
    int port() const { return port_; }

private:
    void accept_loop() {
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (poll(&p, 1, 50) <= 0) continue;
            int c = accept(fd_, nullptr, nullptr);
            if (c >= 0) workers_.emplace_back([this, c] { serve(c); });
        }
    }
    void serve(int c) {
        std::string req;
        char buf[4096];
        size_t header_end = std::string::npos;
        auto give_up = std::chrono::steady_clock::now() + 5s;
        while (header_end == std::string::npos && std::chrono::steady_clock::now() < give_up) {
            ssize_t n = recv(c, buf, sizeof buf, 0);
            if (n <= 0) break;
            req.append(buf, n);
            header_end = req.find("\r\n\r\n");
        }
        if (header_end != std::string::npos) {
            size_t cl = 0, pos = req.find("Content-Length: ");
            if (pos != std::string::npos && pos < header_end) cl = std::stoul(req.substr(pos + 16));
            while (req.size() < header_end + 4 + cl) {
                ssize_t n = recv(c, buf, sizeof buf, 0);
                if (n <= 0) break;
                req.append(buf, n);
            }
            respond(c, req);
        }
        close(c);
    }
    void respond(int c, const std::string& req) {
        std::string path = req.substr(req.find(' ') + 1);
        path = path.substr(0, path.find(' '));
        std::string status = "200 OK", body = "hello", extra;
        if (path == "/big") {
            body.assign(100000, 'b');
        } else if (path == "/slow") {
            for (int i = 0; i < 60 && !stop_; ++i) std::this_thread::sleep_for(50ms);
        } else if (path == "/redirect") {
            status = "302 Found";
            extra = "Location: /ok\r\n";
            body = "";
        } else if (path == "/echo") {
            body = req;
        } else if (path == "/busy") {
            status = "503 Service Unavailable";
            extra = "Retry-After:  120 \r\n";
        }
        std::string out = "HTTP/1.1 " + status +
                          "\r\nContent-Length: " + std::to_string(body.size()) +
                          "\r\nConnection: close\r\n" + extra + "\r\n" + body;
        size_t off = 0;
        while (off < out.size()) {
            ssize_t n = send(c, out.data() + off, out.size() - off, MSG_NOSIGNAL);
            if (n <= 0) break;
            off += n;
        }
    }

    int fd_ = -1;
    int port_ = 0;
    std::atomic<bool> stop_{false};
    std::thread acceptor_;
    std::vector<std::thread> workers_;
};

NetPolicy loopback_ok() {
    NetPolicy p;
    std::string err;
    NetPolicy::parse("127.0.0.1/32", &p, &err);
    return p;
}

std::vector<HttpResponse> run(HttpClient& c, std::chrono::milliseconds limit = 10s) {
    std::vector<HttpResponse> out;
    auto end = std::chrono::steady_clock::now() + limit;
    while (c.in_flight() > 0 && std::chrono::steady_clock::now() < end) {
        c.poll_once(100);
        for (auto& r : c.take_finished()) out.push_back(std::move(r));
    }
    for (auto& r : c.take_finished()) out.push_back(std::move(r));
    return out;
}

HttpRequest get(const std::string& url, uint64_t tag = 1) {
    HttpRequest r;
    r.method = "GET";
    r.url = url;
    r.tag = tag;
    r.connect_timeout_ms = 2000;
    r.timeout_ms = 5000;
    return r;
}

}  // namespace

TEST(HttpClient, GetsFromAnAllowedLoopbackServer) {
    TinyServer s;
    HttpClient c(loopback_ok(), 4);
    ASSERT_EQ(c.start(get(s.url("/ok"), 7)), "");
    auto rs = run(c);
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_EQ(rs[0].tag, 7u);
    EXPECT_EQ(rs[0].status, 200);
    EXPECT_EQ(rs[0].body, "hello");
    EXPECT_EQ(rs[0].error, "");
}

TEST(HttpClient, DefaultPolicyRefusesLoopbackAfterResolution) {
    TinyServer s;
    HttpClient c(NetPolicy(), 4);
    ASSERT_EQ(c.start(get("http://localhost:" + std::to_string(s.port()) + "/ok")), "");
    auto rs = run(c);
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_TRUE(rs[0].refused);
    EXPECT_EQ(rs[0].status, 0);
    EXPECT_NE(rs[0].error.find("loopback"), std::string::npos) << rs[0].error;
}

TEST(HttpClient, RefusesNonHttpSchemesAndHeaderInjectionUpFront) {
    HttpClient c(loopback_ok(), 4);
    EXPECT_NE(c.start(get("file:///etc/passwd")), "");
    HttpRequest r = get("http://127.0.0.1:1/");
    r.headers.push_back({"X-A", "b\r\nX-Injected: 1"});
    EXPECT_NE(c.start(r), "");
    EXPECT_EQ(c.in_flight(), 0u);
}

TEST(HttpClient, BodyIsBounded) {
    TinyServer s;
    HttpClient c(loopback_ok(), 4);
    HttpRequest r = get(s.url("/big"));
    r.max_body = 1000;
    ASSERT_EQ(c.start(r), "");
    auto rs = run(c);
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_TRUE(rs[0].too_large);
    EXPECT_LE(rs[0].body.size(), 1000u);
    EXPECT_NE(rs[0].error, "");
}

TEST(HttpClient, TotalTimeoutCountsFromStart) {
    TinyServer s;
    HttpClient c(loopback_ok(), 4);
    HttpRequest r = get(s.url("/slow"));
    r.timeout_ms = 300;
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(c.start(r), "");
    auto rs = run(c);
    auto took = std::chrono::steady_clock::now() - t0;
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_TRUE(rs[0].timed_out) << rs[0].error;
    EXPECT_EQ(rs[0].status, 0);
    EXPECT_LT(took, 2s);
}

TEST(HttpClient, RedirectsAreNotFollowed) {
    TinyServer s;
    HttpClient c(loopback_ok(), 4);
    ASSERT_EQ(c.start(get(s.url("/redirect"))), "");
    auto rs = run(c);
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_EQ(rs[0].status, 302);
    EXPECT_EQ(rs[0].body, "");
}

TEST(HttpClient, KeepsRetryAfterAndWhenTheResponseArrived) {
    TinyServer s;
    HttpClient c(loopback_ok(), 4);
    ASSERT_EQ(c.start(get(s.url("/busy"))), "");
    ASSERT_EQ(c.start(get(s.url("/ok"), 2)), "");
    int64_t before = static_cast<int64_t>(std::time(nullptr));
    auto rs = run(c);
    ASSERT_EQ(rs.size(), 2u);
    for (const HttpResponse& r : rs) {
        EXPECT_GE(r.received_unix, before);
        EXPECT_LE(r.received_unix, static_cast<int64_t>(std::time(nullptr)));
        if (r.tag == 1) {
            EXPECT_EQ(r.status, 503);
            EXPECT_EQ(requested_retry_delay(r), 120) << "[" << r.retry_after << "]";
        } else {
            EXPECT_EQ(r.retry_after, "");
        }
    }
}

TEST(HttpClient, ConnectionRefusedIsATransportError) {
    int port;
    {
        TinyServer s;
        port = s.port();
    }
    HttpClient c(loopback_ok(), 4);
    ASSERT_EQ(c.start(get("http://127.0.0.1:" + std::to_string(port) + "/")), "");
    auto rs = run(c);
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_EQ(rs[0].status, 0);
    EXPECT_FALSE(rs[0].refused);
    EXPECT_NE(rs[0].error, "");
}

TEST(HttpClient, PostSendsHeadersAndBody) {
    TinyServer s;
    HttpClient c(loopback_ok(), 4);
    HttpRequest r = get(s.url("/echo"));
    r.method = "POST";
    r.body = std::string(5000, 'p') + "{\"k\":1}";
    r.headers = {{"Content-Type", "application/json"}, {"webhook-id", "msg_1"}};
    ASSERT_EQ(c.start(r), "");
    auto rs = run(c);
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_EQ(rs[0].status, 200);
    EXPECT_EQ(rs[0].body.rfind("POST /echo HTTP/1.1", 0), 0u);
    EXPECT_NE(rs[0].body.find("webhook-id: msg_1"), std::string::npos);
    EXPECT_EQ(rs[0].body.find("Expect:"), std::string::npos);
    EXPECT_NE(rs[0].body.find(std::string(5000, 'p') + "{\"k\":1}"), std::string::npos);
}

TEST(HttpClient, RollingWindowCapsInFlightAndRefillsAsSlotsFree) {
    TinyServer s;
    HttpClient c(loopback_ok(), 3);
    std::vector<HttpResponse> done;
    int started = 0;
    size_t max_seen = 0;
    auto end = std::chrono::steady_clock::now() + 20s;
    while ((started < 30 || c.in_flight() > 0) && std::chrono::steady_clock::now() < end) {
        while (started < 30 && c.free_slots() > 0)
            ASSERT_EQ(c.start(get(s.url("/ok"), started++)), "");
        max_seen = std::max(max_seen, c.in_flight());
        if (c.free_slots() == 0) {
            EXPECT_EQ(c.start(get(s.url("/ok"))), "HTTP window full");
        }
        c.poll_once(100);
        for (auto& r : c.take_finished()) done.push_back(std::move(r));
    }
    EXPECT_EQ(done.size(), 30u);
    EXPECT_EQ(max_seen, 3u);
    for (auto& r : done) EXPECT_EQ(r.status, 200);
}

TEST(HttpClient, WaitReturnsWhenTheExtraFdIsReadable) {
    HttpClient c(loopback_ok(), 2);
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    ASSERT_EQ(write(p[1], "x", 1), 1);
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(c.poll_once(5000, p[0]));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
    close(p[0]);
    close(p[1]);
}

// The worker does not use poll_once(): it waits on sockets() with its latch,
// reports readiness with socket_ready() and calls drive(). Same result.
TEST(HttpClient, ExternalWaitThroughSocketsAndTimeout) {
    TinyServer s;
    HttpClient c(loopback_ok(), 8);
    for (uint64_t i = 0; i < 5; ++i) ASSERT_EQ(c.start(get(s.url("/ok"), i)), "");
    std::vector<HttpResponse> done;
    auto end = std::chrono::steady_clock::now() + 10s;
    while (done.size() < 5 && std::chrono::steady_clock::now() < end) {
        std::vector<pollfd> fds;
        for (const WaitSocket& w : c.sockets())
            fds.push_back(pollfd{
                w.fd, static_cast<short>((w.read ? POLLIN : 0) | (w.write ? POLLOUT : 0)), 0});
        long t = c.timeout_ms();
        ASSERT_TRUE(t >= 0 || !fds.empty()) << "nothing to wait for while requests are in flight";
        poll(fds.data(), fds.size(), t < 0 || t > 200 ? 200 : static_cast<int>(t));
        for (const pollfd& p : fds)
            if (p.revents) c.socket_ready(p.fd, p.revents & POLLIN, p.revents & POLLOUT);
        c.drive();
        for (auto& r : c.take_finished()) done.push_back(std::move(r));
    }
    ASSERT_EQ(done.size(), 5u);
    for (auto& r : done) EXPECT_EQ(r.status, 200);
    EXPECT_EQ(c.in_flight(), 0u);
}

TEST(HttpClient, HostNameEntryAllowsItsResolvedPrivateAddress) {
    TinyServer s;
    NetPolicy p;
    std::string err;
    ASSERT_TRUE(NetPolicy::parse("localhost", &p, &err)) << err;
    HttpClient c(p, 2);
    ASSERT_EQ(c.start(get("http://localhost:" + std::to_string(s.port()) + "/ok")), "");
    auto rs = run(c);
    ASSERT_EQ(rs.size(), 1u);
    // localhost may resolve to ::1 first (refused: nothing listens there), then 127.0.0.1.
    EXPECT_EQ(rs[0].status, 200) << rs[0].error;
    EXPECT_FALSE(rs[0].refused);
}

TEST(BodyExcerpt, CutsOnUtf8BoundaryAndStripsControls) {
    EXPECT_EQ(body_excerpt("a\nb", 10), "a b");
    EXPECT_EQ(body_excerpt("\xc3\xa9\xc3\xa9", 3), "\xc3\xa9...");
    EXPECT_EQ(body_excerpt("", 3), "");
}

TEST(BodyExcerpt, ReplacesBytesPostgresWouldRefuse) {
    EXPECT_EQ(body_excerpt("\xff\x41\xc3", 10), "?A?");       // stray byte, cut sequence
    EXPECT_EQ(body_excerpt("\xc0\x80", 10), "??");            // overlong NUL
    EXPECT_EQ(body_excerpt("\xed\xa0\x80", 10), "???");       // UTF-16 surrogate
    EXPECT_EQ(body_excerpt("\xf4\x90\x80\x80", 10), "????");  // past U+10FFFF
    EXPECT_EQ(body_excerpt("\xf5\x80", 10), "??");
    EXPECT_EQ(body_excerpt("ok \xf0\x9f\x99\x82 \xe2\x82\xac", 20),
              "ok \xf0\x9f\x99\x82 \xe2\x82\xac");
    EXPECT_EQ(body_excerpt(std::string("a\0b", 3), 10), "a b");  // NUL is a control
    EXPECT_EQ(body_excerpt("ab\xf0\x9f\x99\x82", 4), "ab...");   // never cuts a sequence
}
