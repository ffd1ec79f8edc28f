// Engine stop requests (Airflow PATCH, http cancel_endpoint, Prefect set_state) and
// the interpretation of their answers: final, retried, given up.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/engine_stop.h"

using namespace dataflow;
using json = nlohmann::json;

namespace {
HttpResponse resp(long status, std::string body, std::string error = "") {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    r.error = std::move(error);
    r.sent = true;
    return r;
}
std::string header(const HttpRequest& r, const std::string& name) {
    for (const auto& h : r.headers)
        if (h.first == name) return h.second;
    return "";
}
AirflowConnection airflow(int version, const std::string& auth) {
    AirflowConnection c;
    c.base_url = "http://airflow:8080/";
    c.auth = auth;
    c.username = "admin";
    c.secret = "pw";
    c.api_version = version;
    return c;
}
}  // namespace

TEST(AirflowStop, V1PatchesTheDagRunToFailedWithBasicAuth) {
    HttpRequest r = airflow_stop_request(airflow(1, "basic"), "etl", "dataflow-42", "");
    EXPECT_EQ(r.method, "PATCH");
    EXPECT_EQ(r.url, "http://airflow:8080/api/v1/dags/etl/dagRuns/dataflow-42");
    EXPECT_EQ(json::parse(r.body), json({{"state", "failed"}}));
    EXPECT_EQ(header(r, "Content-Type"), "application/json");
    EXPECT_TRUE(r.basic_auth);
    EXPECT_EQ(r.username, "admin");
    EXPECT_EQ(r.password, "pw");
}

TEST(AirflowStop, V2UsesTheBearerTokenAndEscapesThePath) {
    HttpRequest r = airflow_stop_request(airflow(2, "basic"), "my dag", "dataflow-7", "tok");
    EXPECT_EQ(r.url, "http://airflow:8080/api/v2/dags/my%20dag/dagRuns/dataflow-7");
    EXPECT_EQ(header(r, "Authorization"), "Bearer tok");
    EXPECT_FALSE(r.basic_auth);
}

TEST(HttpStop, PostsTheNoticeWithTheTokenAsBearer) {
    StopNotice n;
    n.run_id = 9;
    n.token = "6f1c0f5e-3c1e-4c55-9a55-0d2b1d1f0a01";
    n.job = "load";
    n.dataset = "sales";
    n.key = "2024-01-31";
    n.version = 3;
    n.reason = "cancel";
    HttpRequest r = http_stop_request("http://engine/cancel", n, 1000, 2000, 4096);
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.url, "http://engine/cancel");
    EXPECT_EQ(header(r, "Authorization"), "Bearer " + n.token);
    json b = json::parse(r.body);
    EXPECT_EQ(b, json({{"run_id", 9},
                       {"job", "load"},
                       {"dataset", "sales"},
                       {"key", "2024-01-31"},
                       {"version", 3},
                       {"reason", "cancel"}}));
    EXPECT_EQ(b.count("token"), 0u);  // the token goes in the header only
    EXPECT_EQ(r.connect_timeout_ms, 1000);
    EXPECT_EQ(r.timeout_ms, 2000);
    EXPECT_EQ(r.max_body, 4096u);
}

TEST(PrefectStop, SetsTheFlowRunToCancellingWithForce) {
    PrefectConnection c;
    c.base_url = "http://prefect:4200/api/";
    c.auth = "bearer";
    c.secret = "pnu_key";
    HttpRequest r = prefect_stop_request(c, "0b5c2b4e-1d1a-4f7e-9a55-0d2b1d1f0a01");
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.url,
              "http://prefect:4200/api/flow_runs/0b5c2b4e-1d1a-4f7e-9a55-0d2b1d1f0a01/set_state");
    EXPECT_EQ(json::parse(r.body), json({{"state", {{"type", "CANCELLING"}}}, {"force", true}}));
    EXPECT_EQ(header(r, "Authorization"), "Bearer pnu_key");
    c.auth = "none";
    EXPECT_EQ(header(prefect_stop_request(c, "x"), "Authorization"), "");
}

TEST(StopOutcome, TwoHundredsStop) {
    for (long s : {200L, 201L, 202L, 204L}) {
        StopOutcome o = interpret_stop("airflow", resp(s, R"({"state":"failed"})"), 0);
        EXPECT_EQ(o.kind, StopOutcome::kStopped) << s;
        EXPECT_EQ(o.status, s);
    }
    EXPECT_EQ(interpret_stop("http", resp(200, "ok"), 0).answer, "HTTP 200");
}

TEST(StopOutcome, NotFoundConflictAndOther4xxAreFinal) {
    for (long s : {400L, 401L, 403L, 404L, 409L, 410L, 422L}) {
        StopOutcome o = interpret_stop("airflow", resp(s, R"({"detail":"no"})"), 0);
        EXPECT_EQ(o.kind, StopOutcome::kRefused) << s;
        EXPECT_EQ(o.retry_in_s, 0);
    }
    HttpResponse refused;
    refused.refused = true;
    refused.error = "destination refused by dataflow.http_allow";
    StopOutcome o = interpret_stop("http", refused, 0);
    EXPECT_EQ(o.kind, StopOutcome::kRefused);
    EXPECT_NE(o.answer.find("http_allow"), std::string::npos);
}

TEST(StopOutcome, TransportErrorsAnd5xxAreRetriedWithBackoffThenGivenUp) {
    StopOutcome o = interpret_stop("http", resp(500, "kaboom"), 0);
    EXPECT_EQ(o.kind, StopOutcome::kRetry);
    EXPECT_EQ(o.retry_in_s, 1);
    o = interpret_stop("http", resp(0, "", "Connection refused"), 1);
    EXPECT_EQ(o.kind, StopOutcome::kRetry);
    EXPECT_EQ(o.retry_in_s, 2);
    EXPECT_EQ(o.answer, "Connection refused");
    o = interpret_stop("http", resp(503, ""), 2);
    EXPECT_EQ(o.kind, StopOutcome::kRetry);
    EXPECT_EQ(o.retry_in_s, 4);
    o = interpret_stop("http", resp(500, "kaboom"), kStopMaxAttempts - 1);
    EXPECT_EQ(o.kind, StopOutcome::kGaveUp);
    EXPECT_EQ(o.retry_in_s, 0);
    HttpResponse busy = resp(429, "");
    busy.retry_after = "17";
    EXPECT_EQ(interpret_stop("airflow", busy, 0).retry_in_s, 17);
}

TEST(StopOutcome, BackoffDoublesAndIsCapped) {
    EXPECT_EQ(stop_retry_delay_s(1), 1);
    EXPECT_EQ(stop_retry_delay_s(2), 2);
    EXPECT_EQ(stop_retry_delay_s(3), 4);
    EXPECT_EQ(stop_retry_delay_s(7), 60);
    EXPECT_EQ(stop_retry_delay_s(100), 60);
}

TEST(StopOutcome, PrefectOrchestrationResult) {
    EXPECT_EQ(interpret_stop("prefect",
                             resp(201, R"({"status":"ACCEPT","state":{"type":"CANCELLING"}})"), 0)
                  .kind,
              StopOutcome::kStopped);
    EXPECT_EQ(interpret_stop("prefect",
                             resp(200, R"({"status":"REJECT","details":{"reason":"final"}})"), 0)
                  .kind,
              StopOutcome::kRefused);
    EXPECT_EQ(interpret_stop("prefect", resp(200, R"({"status":"ABORT"})"), 0).kind,
              StopOutcome::kRefused);
    StopOutcome w = interpret_stop(
        "prefect", resp(200, R"({"status":"WAIT","details":{"delay_seconds":5}})"), 0);
    EXPECT_EQ(w.kind, StopOutcome::kRetry);
    EXPECT_EQ(w.retry_in_s, 5);
    // Only Prefect's body carries a verdict: another engine's 200 is a stop.
    EXPECT_EQ(interpret_stop("http", resp(200, R"({"status":"REJECT"})"), 0).kind,
              StopOutcome::kStopped);
}

TEST(StopOutcome, OnlyTheStatusAndParsedFieldsAreKeptNeverTheBody) {
    // Airflow's PATCH answer is the DAG run, conf (and its secret params) included.
    StopOutcome o = interpret_stop(
        "airflow",
        resp(200,
             R"({"dag_run_id":"dataflow-4","state":"failed","conf":{"api_key":"pk-SECRET-9"}})"),
        0);
    EXPECT_EQ(o.answer, "HTTP 200: state failed");
    o = interpret_stop("http", resp(404, "no run for token 6f1c0f5e pw=hunter2"), 0);
    EXPECT_EQ(o.answer, "HTTP 404");
    o = interpret_stop("airflow", resp(400, R"({"title":"Bad Request","detail":"bad","conf":"x"})"),
                       0);
    EXPECT_EQ(o.answer, "HTTP 400: title Bad Request, detail bad");
    o = interpret_stop(
        "prefect", resp(201, R"({"status":"ACCEPT","state":{"type":"CANCELLING","name":"x"}})"), 0);
    EXPECT_EQ(o.answer, "HTTP 201: status ACCEPT, state CANCELLING");
    EXPECT_LE(
        interpret_stop("airflow", resp(400, json{{"detail", std::string(5000, 'x')}}.dump()), 0)
            .answer.size(),
        303u);
}

TEST(StopOutcome, NamesAreStable) {
    EXPECT_STREQ(stop_outcome_name(StopOutcome::kStopped), "stopped");
    EXPECT_STREQ(stop_outcome_name(StopOutcome::kRefused), "refused");
    EXPECT_STREQ(stop_outcome_name(StopOutcome::kRetry), "retry");
    EXPECT_STREQ(stop_outcome_name(StopOutcome::kGaveUp), "gave_up");
}
