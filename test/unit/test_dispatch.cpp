// Task payloads, http dispatch response interpretation, Airflow requests and states.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/dispatch.h"

using namespace dataflow;
using json = nlohmann::json;

namespace {
Task sample_task() {
    Task t;
    t.run_id = 42;
    t.token = "6f1c0f5e-3c1e-4c55-9a55-0d2b1d1f0a01";
    t.job = "load_sales";
    t.dataset = "sales";
    t.key = "2024-01-31";
    t.version = 3;
    t.attempt = 2;
    t.output_location = "s3://lake/sales/2024-01-31/v3/";
    t.inputs_json = R"([{"dataset":"raw","key":"2024-01-31","version":1}])";
    t.params_json = R"({"mode":"full"})";
    t.deadline = "2024-02-01 00:00:00+00";
    return t;
}
HttpResponse resp(long status, std::string body, std::string error = "") {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    r.error = std::move(error);
    return r;
}
}  // namespace

TEST(TaskJson, CarriesEveryTaskFieldAndTheToken) {
    json j = json::parse(task_json(sample_task()));
    EXPECT_EQ(j["run_id"], 42);
    EXPECT_EQ(j["token"], "6f1c0f5e-3c1e-4c55-9a55-0d2b1d1f0a01");
    EXPECT_EQ(j["job"], "load_sales");
    EXPECT_EQ(j["dataset"], "sales");
    EXPECT_EQ(j["key"], "2024-01-31");
    EXPECT_EQ(j["version"], 3);
    EXPECT_EQ(j["attempt"], 2);
    EXPECT_EQ(j["output_location"], "s3://lake/sales/2024-01-31/v3/");
    EXPECT_EQ(j["inputs"][0]["dataset"], "raw");
    EXPECT_EQ(j["params"]["mode"], "full");
    EXPECT_EQ(j["deadline"], "2024-02-01 00:00:00+00");
}

TEST(TaskJson, NeverThrowsOnBadInput) {
    Task t = sample_task();
    t.key = std::string("bad\xff\xfe utf8");
    t.inputs_json = "{not json";
    t.params_json = "";
    t.output_location = "";
    std::string s;
    ASSERT_NO_THROW(s = task_json(t));
    json j = json::parse(s, nullptr, false);
    ASSERT_FALSE(j.is_discarded());
    EXPECT_TRUE(j["inputs"].is_null());
    EXPECT_TRUE(j["params"].is_null());
    EXPECT_TRUE(j["output_location"].is_null());
}

TEST(HttpDispatch, TerminalSuccessCarriesResults) {
    Outcome o = interpret_http_dispatch(resp(
        200,
        R"({"status":"succeeded","row_count":123,"checksum":"abc","info":{"x":1},"location":"s3://o/"})"));
    EXPECT_EQ(o.kind, Outcome::kSucceeded);
    EXPECT_EQ(o.row_count.value(), 123);
    EXPECT_EQ(o.checksum, "abc");
    EXPECT_EQ(o.location, "s3://o/");
    EXPECT_EQ(json::parse(o.info_json)["x"], 1);
}

TEST(HttpDispatch, TerminalFailureMayForbidRetry) {
    Outcome o = interpret_http_dispatch(
        resp(200, R"({"status":"failed","error":"bad input","retry":false})"));
    EXPECT_EQ(o.kind, Outcome::kFailed);
    EXPECT_EQ(o.error, "bad input");
    EXPECT_FALSE(o.retry);
    o = interpret_http_dispatch(resp(201, R"({"status":"failed"})"));
    EXPECT_EQ(o.kind, Outcome::kFailed);
    EXPECT_TRUE(o.retry);
    EXPECT_FALSE(o.error.empty());
}

TEST(HttpDispatch, AcceptedLeavesTheRunToTheEngine) {
    EXPECT_EQ(interpret_http_dispatch(resp(202, "")).kind, Outcome::kAccepted);
    EXPECT_EQ(interpret_http_dispatch(resp(202, "whatever")).kind, Outcome::kAccepted);
    EXPECT_EQ(interpret_http_dispatch(resp(200, R"({"status":"running"})")).kind,
              Outcome::kAccepted);
}

TEST(HttpDispatch, EverythingElseIsARetryableFailureWithExcerpt) {
    Outcome o = interpret_http_dispatch(resp(500, "boom\ntrace"));
    EXPECT_EQ(o.kind, Outcome::kRetry);
    EXPECT_EQ(o.error, "HTTP 500: boom trace");
    o = interpret_http_dispatch(resp(404, std::string(1000, 'x')));
    EXPECT_EQ(o.kind, Outcome::kRetry);
    EXPECT_LT(o.error.size(), 330u);
    o = interpret_http_dispatch(resp(0, "", "Connection refused"));
    EXPECT_EQ(o.kind, Outcome::kRetry);
    EXPECT_EQ(o.error, "Connection refused");
    EXPECT_EQ(interpret_http_dispatch(resp(200, "ok")).kind, Outcome::kRetry);
    EXPECT_EQ(interpret_http_dispatch(resp(200, R"({"status":"weird"})")).kind, Outcome::kRetry);
    EXPECT_EQ(interpret_http_dispatch(resp(302, "")).kind, Outcome::kRetry);
    HttpResponse big = resp(200, R"({"status":"succeeded")", "response body exceeds 10 bytes");
    EXPECT_EQ(interpret_http_dispatch(big).kind, Outcome::kRetry);
}

TEST(Airflow, DagRunIdDerivesFromRunId) {
    EXPECT_EQ(airflow_dag_run_id(42), "dataflow-42");
}

TEST(Airflow, V1TriggerUsesBasicAuthAndConf) {
    AirflowConnection c;
    c.base_url = "http://airflow:8080/";
    c.auth = "basic";
    c.username = "admin";
    c.secret = "pw";
    HttpRequest r = airflow_trigger_request(c, "my dag", sample_task(), "");
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.url, "http://airflow:8080/api/v1/dags/my%20dag/dagRuns");
    EXPECT_TRUE(r.basic_auth);
    EXPECT_EQ(r.username, "admin");
    EXPECT_EQ(r.password, "pw");
    json b = json::parse(r.body);
    EXPECT_EQ(b["dag_run_id"], "dataflow-42");
    EXPECT_EQ(b["conf"]["token"], "6f1c0f5e-3c1e-4c55-9a55-0d2b1d1f0a01");
    EXPECT_EQ(b["conf"]["key"], "2024-01-31");
    EXPECT_FALSE(b.contains("logical_date"));
    HttpRequest p = airflow_poll_request(c, "my dag", "dataflow-42", "");
    EXPECT_EQ(p.method, "GET");
    EXPECT_EQ(p.url, "http://airflow:8080/api/v1/dags/my%20dag/dagRuns/dataflow-42");
}

TEST(Airflow, V2UsesBearerTokenFromAuthToken) {
    AirflowConnection c;
    c.base_url = "https://af.example";
    c.auth = "basic";
    c.username = "u";
    c.secret = "s";
    c.api_version = 2;
    HttpRequest t = airflow_token_request(c);
    EXPECT_EQ(t.url, "https://af.example/auth/token");
    EXPECT_EQ(json::parse(t.body)["username"], "u");
    EXPECT_FALSE(t.basic_auth);
    std::string err;
    EXPECT_EQ(
        airflow_parse_token(resp(201, R"({"access_token":"tok123","token_type":"bearer"})"), &err),
        "tok123");
    EXPECT_EQ(airflow_parse_token(resp(401, R"({"detail":"no"})"), &err), "");
    EXPECT_NE(err.find("401"), std::string::npos);
    HttpRequest r = airflow_trigger_request(c, "d", sample_task(), "tok123");
    EXPECT_EQ(r.url, "https://af.example/api/v2/dags/d/dagRuns");
    EXPECT_FALSE(r.basic_auth);
    bool bearer = false;
    for (auto& h : r.headers) bearer |= h.first == "Authorization" && h.second == "Bearer tok123";
    EXPECT_TRUE(bearer);
    EXPECT_TRUE(json::parse(r.body)["logical_date"].is_null());
}

TEST(Airflow, TriggerConflictAdoptsTheExistingRun) {
    Outcome o = airflow_interpret_trigger(resp(409, R"({"detail":"exists"})"), "dataflow-7");
    EXPECT_EQ(o.kind, Outcome::kPending);
    EXPECT_EQ(o.external_id, "dataflow-7");
    EXPECT_EQ(airflow_interpret_trigger(resp(200, "{}"), "dataflow-7").kind, Outcome::kPending);
    o = airflow_interpret_trigger(resp(403, "forbidden"), "dataflow-7");
    EXPECT_EQ(o.kind, Outcome::kRetry);
    EXPECT_NE(o.error.find("credentials"), std::string::npos);
    EXPECT_EQ(airflow_interpret_trigger(resp(500, ""), "dataflow-7").kind, Outcome::kRetry);
}

TEST(Airflow, PollMapsStates) {
    EXPECT_EQ(
        airflow_interpret_poll(resp(200, R"({"dag_run_id":"dataflow-1","state":"success"})")).kind,
        Outcome::kSucceeded);
    Outcome f =
        airflow_interpret_poll(resp(200, R"({"dag_run_id":"dataflow-1","state":"failed"})"));
    EXPECT_EQ(f.kind, Outcome::kFailed);
    EXPECT_NE(f.error.find("dataflow-1"), std::string::npos);
    for (const char* s : {"queued", "running", "restarting", "up_for_retry"})
        EXPECT_EQ(airflow_interpret_poll(resp(200, std::string(R"({"state":")") + s + "\"}")).kind,
                  Outcome::kPending)
            << s;
    EXPECT_EQ(airflow_interpret_poll(resp(404, "{}")).kind, Outcome::kRetry);
    EXPECT_EQ(airflow_interpret_poll(resp(200, "not json")).kind, Outcome::kRetry);
}
