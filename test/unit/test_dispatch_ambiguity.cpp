// Which failed dispatch attempts leave open that the engine took the request
// (retried with the same request, adopted on 409) and which are definite
// (retried as a new run); and the Idempotency-Key of an http run.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "core/dispatch.h"
#include "core/http_client.h"

using namespace dataflow;

namespace {
HttpResponse answered(long status, std::string body = "", std::string error = "") {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    r.error = std::move(error);
    r.sent = true;
    return r;
}
HttpResponse no_answer(bool sent, std::string error, bool timed_out = false) {
    HttpResponse r;
    r.sent = sent;
    r.error = std::move(error);
    r.timed_out = timed_out;
    return r;
}
}  // namespace

TEST(DispatchAmbiguous, NothingSentIsDefinite) {
    EXPECT_FALSE(dispatch_ambiguous(no_answer(false, "Failed to connect to 127.0.0.1 port 1")));
    EXPECT_FALSE(dispatch_ambiguous(no_answer(false, "Connection timed out after 5000 ms", true)));
    EXPECT_FALSE(dispatch_ambiguous(no_answer(false, "request not sent: invalid header")));
    HttpResponse refused = no_answer(false, "refused: destination 10.0.0.7 is private");
    refused.refused = true;
    EXPECT_FALSE(dispatch_ambiguous(refused));
}

TEST(DispatchAmbiguous, SentWithoutAnAnswerIsAmbiguous) {
    EXPECT_TRUE(dispatch_ambiguous(no_answer(true, "Operation timed out after 2000 ms", true)));
    EXPECT_TRUE(dispatch_ambiguous(no_answer(true, "Recv failure: Connection reset by peer")));
    EXPECT_TRUE(dispatch_ambiguous(no_answer(true, "Empty reply from server")));
}

TEST(DispatchAmbiguous, GatewayErrorsAndEmpty5xxAreAmbiguous) {
    EXPECT_TRUE(dispatch_ambiguous(answered(502, "<html>bad gateway</html>")));
    EXPECT_TRUE(dispatch_ambiguous(answered(504, "<html>gateway timeout</html>")));
    EXPECT_TRUE(dispatch_ambiguous(answered(500, "")));
    EXPECT_TRUE(dispatch_ambiguous(answered(500, " \r\n")));
    EXPECT_TRUE(dispatch_ambiguous(answered(500, "kab", "transfer closed with 3 bytes remaining")));
}

TEST(DispatchAmbiguous, AnswersThatRefuseOrFailAreDefinite) {
    EXPECT_FALSE(dispatch_ambiguous(answered(500, "kaboom")));
    EXPECT_FALSE(dispatch_ambiguous(answered(501, "")));
    EXPECT_FALSE(dispatch_ambiguous(answered(503, "")));  // unavailable: did not act
    for (long s : {301L, 302L, 400L, 401L, 403L, 404L, 408L, 410L, 422L, 429L})
        EXPECT_FALSE(dispatch_ambiguous(answered(s, "no"))) << s;
    EXPECT_FALSE(dispatch_ambiguous(answered(200, R"({"status":"failed","error":"bad input"})")));
}

TEST(DispatchAmbiguous, SuccessesAndAcceptancesAreNotFailures) {
    EXPECT_FALSE(dispatch_ambiguous(answered(202, "")));
    EXPECT_FALSE(dispatch_ambiguous(answered(200, R"({"status":"succeeded","row_count":1})")));
    EXPECT_FALSE(dispatch_ambiguous(answered(200, R"({"status":"accepted"})")));
}

TEST(DispatchAmbiguous, A2xxCutOffIsAmbiguous) {
    EXPECT_TRUE(
        dispatch_ambiguous(answered(200, "{\"sta", "transfer closed with 9 bytes remaining")));
}

TEST(DispatchAmbiguous, A2xxAnsweredInFullIsDefinite) {
    // The engine answered; a resend would only get the same answer again.
    EXPECT_FALSE(dispatch_ambiguous(answered(200, "")));
    EXPECT_FALSE(dispatch_ambiguous(answered(200, "ok")));
    EXPECT_FALSE(dispatch_ambiguous(answered(200, "<html>ok</html>")));
    HttpResponse big = answered(200, std::string(1024, 'x'), "response body exceeds 1024 bytes");
    big.too_large = true;
    EXPECT_FALSE(dispatch_ambiguous(big));
}

TEST(DispatchIdempotencyKey, IsStablePerRun) {
    EXPECT_EQ(dispatch_idempotency_key(42), "dataflow-42");
    EXPECT_EQ(dispatch_idempotency_key(42), airflow_dag_run_id(42));
    EXPECT_NE(dispatch_idempotency_key(42), dispatch_idempotency_key(43));
}

namespace {
// A socket that completes TCP handshakes (the kernel does) but never answers.
struct SilentListener {
    int fd = -1;
    int port = 0;
    SilentListener() {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
        listen(fd, 8);
        socklen_t len = sizeof a;
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
        port = ntohs(a.sin_port);
    }
    ~SilentListener() { close(fd); }
};
NetPolicy loopback_allowed() {
    NetPolicy p;
    std::string error;
    NetPolicy::parse("127.0.0.1/32", &p, &error);
    return p;
}
std::vector<HttpResponse> finish(HttpClient& c) {
    std::vector<HttpResponse> out;
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (c.in_flight() > 0 && std::chrono::steady_clock::now() < until) c.poll_once(50);
    for (auto& r : c.take_finished()) out.push_back(std::move(r));
    return out;
}
HttpRequest post(const std::string& url) {
    HttpRequest r;
    r.url = url;
    r.body = R"({"run_id":1})";
    r.timeout_ms = 300;
    return r;
}
}  // namespace

TEST(DispatchAmbiguousOnTheWire, ATimeoutAfterTheRequestWentOutIsAmbiguous) {
    SilentListener l;
    HttpClient c(loopback_allowed(), 2);
    ASSERT_EQ(c.start(post("http://127.0.0.1:" + std::to_string(l.port) + "/run")), "");
    auto rs = finish(c);
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_TRUE(rs[0].timed_out) << rs[0].error;
    EXPECT_TRUE(rs[0].sent);
    EXPECT_TRUE(dispatch_ambiguous(rs[0]));
}

TEST(DispatchAmbiguousOnTheWire, ARefusedConnectionIsDefinite) {
    int port;
    {
        SilentListener l;
        port = l.port;
    }
    HttpClient c(loopback_allowed(), 2);
    ASSERT_EQ(c.start(post("http://127.0.0.1:" + std::to_string(port) + "/run")), "");
    auto rs = finish(c);
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_FALSE(rs[0].sent) << rs[0].error;
    EXPECT_FALSE(dispatch_ambiguous(rs[0]));
}

TEST(DispatchAmbiguousOnTheWire, ADestinationThePolicyRefusesIsDefinite) {
    SilentListener l;
    HttpClient c(NetPolicy(), 2);  // loopback refused
    ASSERT_EQ(c.start(post("http://127.0.0.1:" + std::to_string(l.port) + "/run")), "");
    auto rs = finish(c);
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_TRUE(rs[0].refused) << rs[0].error;
    EXPECT_FALSE(rs[0].sent);
    EXPECT_FALSE(dispatch_ambiguous(rs[0]));
}

TEST(HttpClientTakeFinishedIf, TakesOnlyWhatItPicksAndKeepsTheRest) {
    SilentListener l;
    HttpClient c(loopback_allowed(), 4);
    for (uint64_t tag = 1; tag <= 3; ++tag) {
        HttpRequest r = post("http://127.0.0.1:" + std::to_string(l.port) + "/run");
        r.tag = tag;
        r.timeout_ms = 100;
        ASSERT_EQ(c.start(r), "");
    }
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (c.in_flight() > 0 && std::chrono::steady_clock::now() < until) c.poll_once(50);
    auto picked = c.take_finished_if([](const HttpResponse& r) { return r.tag == 2; });
    ASSERT_EQ(picked.size(), 1u);
    EXPECT_EQ(picked[0].tag, 2u);
    auto rest = c.take_finished();
    ASSERT_EQ(rest.size(), 2u);
    EXPECT_NE(rest[0].tag, 2u);
    EXPECT_NE(rest[1].tag, 2u);
}
