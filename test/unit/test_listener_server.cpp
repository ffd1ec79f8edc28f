// The callback listener's HTTP side (src/listener/server.cpp) without PostgreSQL: a
// server stopped while clients keep sending requests it has suspended for the main
// thread must answer them and stop (libmicrohttpd aborts the process when it is stopped
// with a connection still suspended: a cluster-wide crash restart for the listener).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "listener/server.h"

using dataflow::listener::Job;
using dataflow::listener::Limits;
using dataflow::listener::Server;

namespace {

int free_port() {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        close(s);
        return 0;
    }
    close(s);
    return ntohs(a.sin_port);
}

// One request with a well-formed (unknown) token: it passes every check of the HTTP
// side and is suspended for the main thread. Returns the status line's code, or 0.
int send_one(int port) {
    static const char kRequest[] =
        "POST /v1/runs/complete HTTP/1.1\r\nHost: x\r\n"
        "Authorization: Bearer 11111111-2222-3333-4444-555555555555\r\n"
        "Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    int s = socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{2, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int code = 0;
    if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        write(s, kRequest, sizeof kRequest - 1) == static_cast<ssize_t>(sizeof kRequest - 1)) {
        char buf[256] = {0};
        ssize_t n = read(s, buf, sizeof buf - 1);
        if (n > 12 && std::strncmp(buf, "HTTP/1.1 ", 9) == 0) code = std::atoi(buf + 9);
    }
    close(s);
    return code;
}

}  // namespace

TEST(ListenerServer, StopsWhileClientsKeepSending) {
    int port = free_port();
    ASSERT_GT(port, 0);
    std::atomic<bool> go{true};
    std::atomic<int> ok{0}, unavailable{0};
    std::vector<std::thread> clients;
    for (int i = 0; i < 16; ++i)
        clients.emplace_back([&] {
            while (go) {
                int code = send_one(port);
                if (code == 200) ++ok;
                if (code == 503) ++unavailable;
                if (code == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
        });
    Limits limits;
    limits.max_connections_per_ip = 0;  // every client is 127.0.0.1
    int started = 0;
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (int round = 0; round < 300 && std::chrono::steady_clock::now() < end; ++round) {
        Server server;
        std::string error;
        if (!server.start("127.0.0.1", port, "", "", limits, &error)) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
            continue;
        }
        ++started;
        // Serve a little, as the main thread does, then stop with requests left queued
        // (and, arriving meanwhile, on their way to being suspended).
        for (int k = 0; k < 20; ++k) {
            for (Job* job : server.take()) server.answer(job, 200, "{\"status\":\"ready\"}");
            std::this_thread::sleep_for(std::chrono::microseconds(500));
        }
        server.stop();  // aborted the process here before the fix
        EXPECT_FALSE(server.running());
    }
    go = false;
    for (auto& t : clients) t.join();
    EXPECT_GT(started, 20);
    EXPECT_GT(ok.load(), 0);
    // requests caught by a stop are answered 503, not dropped with a reset
    EXPECT_GT(unavailable.load(), 0);
}
