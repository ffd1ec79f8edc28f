// The callback listener's request logic: paths, bearer tokens, bodies -> fields with the
// SQL functions' checks and messages, SQLSTATE -> HTTP status, answers, settings.
#include <gtest/gtest.h>

#include <string>

#include "core/callback.h"
#include "core/dispatch.h"

using namespace dataflow::callback;
using namespace std::string_literals;

namespace {
const char* kToken = "0f8fad5b-d9cb-469f-a165-70867728950e";

// The refusal's "status sqlstate: message", or "ok".
std::string refusal(Action a, const std::string& body, Request* r = nullptr) {
    Request local;
    auto ref = parse_body(a, body, r ? r : &local);
    if (!ref) return "ok";
    return std::to_string(ref->http_status) + " " + ref->sqlstate + ": " + ref->message;
}
}  // namespace

TEST(Callback, Paths) {
    EXPECT_EQ(action_for_path("/v1/runs/heartbeat"), Action::kHeartbeat);
    EXPECT_EQ(action_for_path("/v1/runs/complete"), Action::kComplete);
    EXPECT_EQ(action_for_path("/v1/runs/fail"), Action::kFail);
    EXPECT_EQ(action_for_path("/v1/runs/complete/"), std::nullopt);
    EXPECT_EQ(action_for_path("/v1/runs/"), std::nullopt);
    EXPECT_EQ(action_for_path("/V1/runs/fail"), std::nullopt);
    EXPECT_EQ(action_for_path(""), std::nullopt);
}

TEST(Callback, BearerToken) {
    EXPECT_EQ(bearer_token(("Bearer "s + kToken).c_str()), kToken);
    EXPECT_EQ(bearer_token(("  bearer\t"s + kToken + "  ").c_str()), kToken);
    EXPECT_EQ(bearer_token("BEARER 0F8FAD5B-D9CB-469F-A165-70867728950E"), kToken);
    EXPECT_EQ(bearer_token("Bearer 0f8fad5bd9cb469fa16570867728950e"),
              "0f8fad5bd9cb469fa16570867728950e");
    EXPECT_EQ(bearer_token(nullptr), std::nullopt);
    EXPECT_EQ(bearer_token(""), std::nullopt);
    EXPECT_EQ(bearer_token("Bearer"), std::nullopt);
    EXPECT_EQ(bearer_token("Bearer "), std::nullopt);
    EXPECT_EQ(bearer_token(("Basic "s + kToken).c_str()), std::nullopt);
    EXPECT_EQ(bearer_token(("Bearer"s + kToken).c_str()), std::nullopt);
    EXPECT_EQ(bearer_token("Bearer 0f8fad5b-d9cb-469f-a165-70867728950"), std::nullopt);
    EXPECT_EQ(bearer_token("Bearer 0f8fad5b-d9cb-469f-a165-70867728950g"), std::nullopt);
    EXPECT_EQ(bearer_token("Bearer 0f8fad5b-d9cb-469f-a165_70867728950e"), std::nullopt);
    EXPECT_EQ(bearer_token(("Bearer "s + kToken + " x").c_str()), std::nullopt);
    EXPECT_EQ(bearer_token("Bearer ' OR 1=1 --"), std::nullopt);
}

TEST(Callback, HeartbeatBody) {
    Request r;
    EXPECT_EQ(refusal(Action::kHeartbeat, "", &r), "ok");
    EXPECT_FALSE(r.extend_by);
    EXPECT_EQ(refusal(Action::kHeartbeat, " {} ", &r), "ok");
    EXPECT_EQ(refusal(Action::kHeartbeat, R"({"extend_by": 30})", &r), "ok");
    EXPECT_EQ(r.extend_by, 30.0);
    EXPECT_EQ(refusal(Action::kHeartbeat, R"({"extend_by": 0.5})", &r), "ok");
    EXPECT_EQ(r.extend_by, 0.5);
    EXPECT_EQ(refusal(Action::kHeartbeat, R"({"extend_by": null})", &r), "ok");
    EXPECT_FALSE(r.extend_by);
    EXPECT_EQ(refusal(Action::kHeartbeat, R"({"extend_by": 0})"),
              "400 22023: extend_by must be positive");
    EXPECT_EQ(refusal(Action::kHeartbeat, R"({"extend_by": -1})"),
              "400 22023: extend_by must be positive");
    EXPECT_EQ(refusal(Action::kHeartbeat, R"({"extend_by": "1 hour"})"),
              "400 22023: extend_by must be a number of seconds");
    EXPECT_EQ(refusal(Action::kHeartbeat, R"({"extend_by": 1e300})"),
              "400 22023: extend_by must be at most 10 years");
    EXPECT_EQ(refusal(Action::kHeartbeat, R"({"row_count": 1})"),
              "400 22023: unknown field \"row_count\" in a heartbeat body");
}

TEST(Callback, CompleteBody) {
    Request r;
    EXPECT_EQ(refusal(Action::kComplete,
                      R"({"row_count": 42, "checksum": "abc", "location": "s3://b/k",
                          "info": {"a": [1, {"b": null}]}})",
                      &r),
              "ok");
    EXPECT_EQ(r.row_count, 42);
    EXPECT_EQ(r.checksum, "abc");
    EXPECT_EQ(r.location, "s3://b/k");
    EXPECT_EQ(r.info, R"({"a":[1,{"b":null}]})");
    // info goes to SQL as the body's own text (jsonb reads it), not as nlohmann's rewrite
    EXPECT_NE(r.body.find(R"("info": {"a": [1, {"b": null}]})"), std::string::npos);
    EXPECT_EQ(refusal(Action::kComplete, R"({"row_count": null, "checksum": null})", &r), "ok");
    EXPECT_FALSE(r.row_count);
    EXPECT_FALSE(r.checksum);
    EXPECT_EQ(refusal(Action::kComplete, R"({"row_count": 9223372036854775807})", &r), "ok");
    EXPECT_EQ(r.row_count, INT64_MAX);
    EXPECT_EQ(refusal(Action::kComplete, R"({"row_count": 0})", &r), "ok");
    EXPECT_EQ(r.row_count, 0);
    // the messages of dataflow.complete
    EXPECT_EQ(refusal(Action::kComplete, R"({"row_count": -1})"),
              "400 22023: row_count must be >= 0");
    EXPECT_EQ(refusal(Action::kComplete, R"({"info": [1]})"),
              "400 22023: info must be a JSON object");
    EXPECT_EQ(refusal(Action::kComplete, R"({"info": "x"})"),
              "400 22023: info must be a JSON object");
    // wrong types
    EXPECT_EQ(refusal(Action::kComplete, R"({"row_count": "12"})"),
              "400 22023: row_count must be an integer");
    EXPECT_EQ(refusal(Action::kComplete, R"({"row_count": 1.5})"),
              "400 22023: row_count must be an integer");
    EXPECT_EQ(refusal(Action::kComplete, R"({"row_count": 9223372036854775808})"),
              "400 22003: row_count is out of range for type bigint");
    EXPECT_EQ(refusal(Action::kComplete, R"({"checksum": 5})"),
              "400 22023: checksum must be a string");
    EXPECT_EQ(refusal(Action::kComplete, R"({"location": {}})"),
              "400 22023: location must be a string");
    EXPECT_EQ(refusal(Action::kComplete, R"({"error": "x"})"),
              "400 22023: unknown field \"error\" in a complete body");
    EXPECT_EQ(refusal(Action::kComplete, R"({"token": "x"})"),
              "400 22023: unknown field \"token\" in a complete body");
}

TEST(Callback, FailBody) {
    Request r;
    EXPECT_EQ(refusal(Action::kFail, R"({"error": "boom"})", &r), "ok");
    EXPECT_EQ(r.error, "boom");
    EXPECT_TRUE(r.retry);
    EXPECT_FALSE(r.retry_after);
    EXPECT_EQ(refusal(Action::kFail, R"({"error": "boom", "retry": false})", &r), "ok");
    EXPECT_FALSE(r.retry);
    EXPECT_EQ(refusal(Action::kFail, R"({"error": "slow down", "retry_after": 30})", &r), "ok");
    EXPECT_EQ(r.retry_after, 30);
    EXPECT_EQ(refusal(Action::kFail, R"({"error": "e", "retry_after": 36000})", &r), "ok");
    EXPECT_EQ(r.retry_after, 36000);
    // the message of dataflow.fail for a NULL error or retry
    EXPECT_EQ(refusal(Action::kFail, "{}"), "400 22004: error and retry must not be NULL");
    EXPECT_EQ(refusal(Action::kFail, R"({"error": null})"),
              "400 22004: error and retry must not be NULL");
    EXPECT_EQ(refusal(Action::kFail, R"({"error": "e", "retry": null})"),
              "400 22004: error and retry must not be NULL");
    EXPECT_EQ(refusal(Action::kFail, R"({"error": "e", "retry": "yes"})"),
              "400 22023: retry must be true or false");
    EXPECT_EQ(refusal(Action::kFail, R"({"error": 1})"), "400 22023: error must be a string");
    EXPECT_EQ(refusal(Action::kFail, R"({"error": "e", "retry_after": 0})"),
              "400 22023: retry_after must be between 1 and 36000 seconds");
    EXPECT_EQ(refusal(Action::kFail, R"({"error": "e", "retry_after": 36001})"),
              "400 22023: retry_after must be between 1 and 36000 seconds");
    EXPECT_EQ(refusal(Action::kFail, R"({"error": "e", "retry_after": -5})"),
              "400 22023: retry_after must be between 1 and 36000 seconds");
    EXPECT_EQ(refusal(Action::kFail, R"({"error": "e", "retry_after": 1.5})"),
              "400 22023: retry_after must be an integer number of seconds");
    EXPECT_EQ(refusal(Action::kFail, R"({"error": "e", "retry": false, "retry_after": 5})"),
              "400 22023: retry_after needs retry true");
}

TEST(Callback, MalformedBodies) {
    EXPECT_EQ(refusal(Action::kComplete, "{"), "400 22P02: body is not valid JSON");
    EXPECT_EQ(refusal(Action::kComplete, "{\"row_count\": 1,}"),
              "400 22P02: body is not valid JSON");
    EXPECT_EQ(refusal(Action::kComplete, "row_count=1"), "400 22P02: body is not valid JSON");
    EXPECT_EQ(refusal(Action::kComplete, "{} {}"), "400 22P02: body is not valid JSON");
    EXPECT_EQ(refusal(Action::kComplete, "[]"), "400 22023: body must be a JSON object");
    EXPECT_EQ(refusal(Action::kComplete, "42"), "400 22023: body must be a JSON object");
    EXPECT_EQ(refusal(Action::kComplete, "null"), "400 22023: body must be a JSON object");
    // what PostgreSQL cannot store, found before parsing
    EXPECT_EQ(refusal(Action::kComplete, R"({"checksum": "a\u0000b"})"),
              "400 22P02: body is not valid JSON for PostgreSQL: \\u0000 at offset 15 "
              "(PostgreSQL cannot store the NUL character in jsonb)");
    EXPECT_EQ(refusal(Action::kComplete, "{\"checksum\": \"\xff\"}"),
              "400 22P02: body is not valid JSON for PostgreSQL: byte 0xFF at offset 14 is not "
              "valid UTF-8");
    EXPECT_EQ(refusal(Action::kComplete, "{\"a\": 1\0}"s),
              "400 22P02: body is not valid JSON for "
              "PostgreSQL: a NUL byte at offset 7");
    // deep nesting: refused at the limit, without recursion, in one pass
    std::string deep = std::string(100000, '[') + std::string(100000, ']');
    EXPECT_EQ(refusal(Action::kComplete, "{\"info\": " + deep + "}"),
              "400 22P02: body is not valid JSON for PostgreSQL: arrays and objects nested "
              "deeper than 64 levels");
    std::string ok_depth = "{\"info\": " + std::string(63, '[') + std::string(63, ']') + "}";
    EXPECT_EQ(refusal(Action::kComplete, ok_depth), "400 22023: info must be a JSON object");
    std::string unterminated(100000, '{');
    EXPECT_NE(refusal(Action::kComplete, unterminated), "ok");
}

TEST(Callback, StatusMapping) {
    EXPECT_EQ(http_status_for_sqlstate("42704"), 401);
    EXPECT_EQ(http_status_for_sqlstate("55000"), 409);
    EXPECT_EQ(http_status_for_sqlstate("22023"), 400);
    EXPECT_EQ(http_status_for_sqlstate("22004"), 400);
    EXPECT_EQ(http_status_for_sqlstate("22P02"), 400);
    EXPECT_EQ(http_status_for_sqlstate("40001"), 503);
    EXPECT_EQ(http_status_for_sqlstate("40P01"), 503);
    EXPECT_EQ(http_status_for_sqlstate("55P03"), 503);
    EXPECT_EQ(http_status_for_sqlstate("57014"), 503);
    EXPECT_EQ(http_status_for_sqlstate("53100"), 503);
    EXPECT_EQ(http_status_for_sqlstate("53300"), 503);
    EXPECT_EQ(http_status_for_sqlstate("08006"), 503);
    EXPECT_EQ(http_status_for_sqlstate("42501"), 503);  // rights withdrawn between checks
    EXPECT_EQ(http_status_for_sqlstate("25006"), 503);  // read-only: a standby
    EXPECT_EQ(http_status_for_sqlstate("57P01"), 503);  // shutting down
    EXPECT_EQ(http_status_for_sqlstate("57P03"), 503);  // starting up
    EXPECT_EQ(http_status_for_sqlstate("42883"), 500);
    EXPECT_EQ(http_status_for_sqlstate("XX000"), 500);
    EXPECT_EQ(http_status_for_sqlstate("40000"), 500);
    EXPECT_EQ(http_status_for_sqlstate(""), 500);
    EXPECT_EQ(http_status_for_sqlstate("2200"), 500);
}

TEST(Callback, Answers) {
    EXPECT_EQ(error_json("lease of run 3 expired", "55000"),
              R"({"error":"lease of run 3 expired","sqlstate":"55000"})");
    EXPECT_EQ(error_json("say \"no\"\n", ""), R"({"error":"say \"no\"\n"})");
    EXPECT_EQ(error_json("bad \xff byte", "XX000"),
              "{\"error\":\"bad \xef\xbf\xbd byte\",\"sqlstate\":\"XX000\"}");
    EXPECT_EQ(status_json("ready"), R"({"status":"ready"})");
    EXPECT_EQ(status_json("running", "2026-01-01 00:00:00+00"),
              R"({"deadline":"2026-01-01 00:00:00+00","status":"running"})");
}

TEST(Callback, ListenAddress) {
    std::string host, error;
    int port = 0;
    EXPECT_TRUE(parse_listen_address("127.0.0.1:8080", &host, &port, &error));
    EXPECT_EQ(host, "127.0.0.1");
    EXPECT_EQ(port, 8080);
    EXPECT_TRUE(parse_listen_address("[::1]:443", &host, &port, &error));
    EXPECT_EQ(host, "::1");
    EXPECT_EQ(port, 443);
    EXPECT_TRUE(parse_listen_address(":9000", &host, &port, &error));
    EXPECT_EQ(host, "");
    EXPECT_TRUE(parse_listen_address("localhost:1", &host, &port, &error));
    EXPECT_EQ(host, "localhost");
    EXPECT_FALSE(parse_listen_address("127.0.0.1", &host, &port, &error));
    EXPECT_EQ(error, "expected host:port (a port is required)");
    EXPECT_FALSE(parse_listen_address("127.0.0.1:0", &host, &port, &error));
    EXPECT_EQ(error, "the port must be a number from 1 to 65535");
    EXPECT_FALSE(parse_listen_address("127.0.0.1:65536", &host, &port, &error));
    EXPECT_FALSE(parse_listen_address("127.0.0.1:80x", &host, &port, &error));
    EXPECT_FALSE(parse_listen_address("::1:80", &host, &port, &error));
    EXPECT_EQ(error, "an IPv6 address must be written in brackets: [::1]:port");
    EXPECT_FALSE(parse_listen_address("[::1]80", &host, &port, &error));
    EXPECT_FALSE(parse_listen_address("a b:80", &host, &port, &error));
}

TEST(Callback, CallbackUrl) {
    std::string error;
    EXPECT_TRUE(valid_callback_url("", &error));
    EXPECT_TRUE(valid_callback_url("http://db.internal:8080", &error));
    EXPECT_TRUE(valid_callback_url("https://callbacks.example.com/pg/", &error));
    EXPECT_FALSE(valid_callback_url("ftp://x", &error));
    EXPECT_EQ(error, "must start with http:// or https://");
    EXPECT_FALSE(valid_callback_url("http://", &error));
    EXPECT_EQ(error, "has no host");
    EXPECT_FALSE(valid_callback_url("http://x/?token=1", &error));
    EXPECT_FALSE(valid_callback_url("http://x/#f", &error));
    EXPECT_FALSE(valid_callback_url("http://x/\r\nX-Evil: 1", &error));
    EXPECT_FALSE(valid_callback_url("http://x y", &error));
}

TEST(Callback, TaskCarriesCallback) {
    dataflow::Task t;
    t.run_id = 7;
    t.token = kToken;
    t.job = "load";
    t.deadline = "2026-01-01 00:00:00+00";
    EXPECT_EQ(dataflow::task_json(t).find("callback"), std::string::npos);
    t.callback_url = "https://db.internal:8443/";
    std::string doc = dataflow::task_json(t);
    EXPECT_NE(doc.find(R"("callback":{"token":")" + std::string(kToken) +
                       R"(","url":"https://db.internal:8443"})"),
              std::string::npos)
        << doc;
    // a stored document (an Airflow re-trigger) gets it too; other text is left alone
    EXPECT_EQ(
        dataflow::with_callback(R"({"run_id":7})", "http://h", kToken),
        R"({"callback":{"token":")" + std::string(kToken) + R"(","url":"http://h"},"run_id":7})");
    EXPECT_EQ(dataflow::with_callback(R"({"run_id":7})", "", kToken), R"({"run_id":7})");
    EXPECT_EQ(dataflow::with_callback("not json", "http://h", kToken), "not json");
}
