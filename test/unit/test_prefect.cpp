// Prefect adapter: target forms, idempotency keys, requests, state mapping and answers.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/prefect.h"

using namespace dataflow;
using json = nlohmann::json;

namespace {
const char* kRunId = "0b6f5c2e-1d2a-4c3b-9e8f-7a6b5c4d3e2f";

HttpResponse resp(long status, std::string body, std::string error = "") {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    r.error = std::move(error);
    r.sent = true;
    return r;
}
PrefectConnection conn(std::string auth = "none") {
    PrefectConnection c;
    c.base_url = "http://prefect:4200/api/";
    c.auth = std::move(auth);
    c.secret = "pnu_key";
    return c;
}
std::string header(const HttpRequest& r, const std::string& name) {
    for (const auto& h : r.headers)
        if (h.first == name) return h.second;
    return "";
}
std::string flow_run(const std::string& type, const std::string& name = "",
                     const std::string& message = "") {
    return json{{"id", kRunId},
                {"state", {{"type", type}, {"name", name}, {"message", message}}},
                {"state_type", type},
                {"parameters", {{"org", "acme"}, {"dataflow", {{"run_id", 5}, {"job", "load"}}}}}}
        .dump();
}
// The poll and create answers of run 5 of job "load", whose flow run is kRunId.
Outcome create(const HttpResponse& r) {
    return prefect_interpret_create(r, 5, "load");
}
Outcome poll(const HttpResponse& r) {
    return prefect_interpret_poll(r, kRunId);
}
}  // namespace

TEST(PrefectTarget, IdAndNameForms) {
    std::string error;
    auto id = prefect_parse_target("0B6F5C2E-1D2A-4C3B-9E8F-7A6B5C4D3E2F", &error);
    ASSERT_TRUE(id);
    EXPECT_FALSE(id->by_name());
    EXPECT_EQ(id->deployment_id, kRunId);
    auto named = prefect_parse_target("sync-orgs/nightly run", &error);
    ASSERT_TRUE(named);
    EXPECT_TRUE(named->by_name());
    EXPECT_EQ(named->flow, "sync-orgs");
    EXPECT_EQ(named->deployment, "nightly run");
}

TEST(PrefectTarget, RefusesOtherForms) {
    for (std::string bad : {"", "flow", "/dep", "flow/", "a/b/c", "fl%ow/dep", "flow/d<p",
                            "f\nx/dep", "0b6f5c2e-1d2a-4c3b-9e8f-7a6b5c4d3e2"}) {
        std::string error;
        EXPECT_FALSE(prefect_parse_target(bad, &error)) << bad;
        EXPECT_NE(error.find("flow-name/deployment-name"), std::string::npos) << bad;
    }
    EXPECT_FALSE(prefect_is_uuid("0b6f5c2e-1d2a-4c3b-9e8f-7a6b5c4d3e2g"));
    EXPECT_FALSE(prefect_is_uuid("0b6f5c2e11d2a-4c3b-9e8f-7a6b5c4d3e2f"));
}

TEST(PrefectKey, InstallChunkVersionAndRun) {
    const std::string a = "6f1c0f5e-3c1e-4c55-9a55-0d2b1d1f0a01",
                      b = "0b6f5c2e-1d2a-4c3b-9e8f-7a6b5c4d3e2f";
    EXPECT_EQ(prefect_idempotency_key(a, 17, 3, 42), "dataflow-" + a + "-17-v3-r42");
    // Two installs never send the same key for the same chunk, version and run id.
    EXPECT_NE(prefect_idempotency_key(a, 17, 3, 42), prefect_idempotency_key(b, 17, 3, 42));
    // Every attempt of a chunk version has its own key: a later attempt never adopts an
    // earlier attempt's flow run (which may have failed meanwhile).
    EXPECT_NE(prefect_idempotency_key(a, 17, 3, 42), prefect_idempotency_key(a, 17, 3, 43));
    EXPECT_NE(prefect_idempotency_key(a, 17, 3, 42), prefect_idempotency_key(a, 17, 4, 42));
}

TEST(PrefectRequests, DeploymentByNameIsEscaped) {
    PrefectTarget t;
    t.flow = "sync orgs";
    t.deployment = "nightly?x#y";
    HttpRequest r = prefect_deployment_request(conn("bearer"), t);
    EXPECT_EQ(r.method, "GET");
    EXPECT_EQ(r.url, "http://prefect:4200/api/deployments/name/sync%20orgs/nightly%3Fx%23y");
    EXPECT_EQ(header(r, "Authorization"), "Bearer pnu_key");
}

TEST(PrefectRequests, CreateCarriesParamsAtTopLevelAndTheTask) {
    std::string doc = R"({"run_id":5,"token":"tok","params":{"org":"acme","dataflow":"mine"},)"
                      R"("callback":{"url":"http://l:1","token":"tok"}})";
    HttpRequest r = prefect_create_request(conn(), kRunId, doc, "dataflow-1-v1");
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.url,
              std::string("http://prefect:4200/api/deployments/") + kRunId + "/create_flow_run");
    EXPECT_EQ(header(r, "Authorization"), "");
    EXPECT_EQ(header(r, "Content-Type"), "application/json");
    json body = json::parse(r.body);
    EXPECT_EQ(body["idempotency_key"], "dataflow-1-v1");
    EXPECT_EQ(body["parameters"]["org"], "acme");
    EXPECT_EQ(body["parameters"]["dataflow"]["run_id"], 5);  // the task wins over a params field
    EXPECT_EQ(body["parameters"]["dataflow"]["callback"]["token"], "tok");
    EXPECT_FALSE(body.contains("name"));
}

TEST(PrefectRequests, ParametersOfABadDocument) {
    EXPECT_EQ(json::parse(prefect_parameters("{oops")), json({{"dataflow", nullptr}}));
    EXPECT_EQ(json::parse(prefect_parameters(R"({"params":[1]})"))["dataflow"]["params"],
              json({1}));
}

TEST(PrefectRequests, Poll) {
    HttpRequest r = prefect_poll_request(conn("bearer"), kRunId);
    EXPECT_EQ(r.method, "GET");
    EXPECT_EQ(r.url, std::string("http://prefect:4200/api/flow_runs/") + kRunId);
    EXPECT_EQ(header(r, "Authorization"), "Bearer pnu_key");
}

TEST(PrefectDeployment, Answers) {
    bool not_found = false;
    std::string error;
    EXPECT_EQ(prefect_interpret_deployment(resp(200, json{{"id", kRunId}}.dump()), "f/d",
                                           &not_found, &error),
              kRunId);
    EXPECT_EQ(prefect_interpret_deployment(resp(404, R"({"detail":"Deployment not found"})"), "f/d",
                                           &not_found, &error),
              "");
    EXPECT_TRUE(not_found);
    EXPECT_NE(error.find("\"f/d\" not found"), std::string::npos) << error;
    EXPECT_EQ(prefect_interpret_deployment(resp(500, "down"), "f/d", &not_found, &error), "");
    EXPECT_FALSE(not_found);
    EXPECT_EQ(prefect_interpret_deployment(resp(401, "{}"), "f/d", &not_found, &error), "");
    EXPECT_NE(error.find("API key"), std::string::npos);
    EXPECT_EQ(
        prefect_interpret_deployment(resp(200, R"({"id":"nope"})"), "f/d", &not_found, &error), "");
    EXPECT_FALSE(not_found);
}

TEST(PrefectCreate, NewAndAdoptedFlowRunsArePending) {
    for (long status : {200L, 201L}) {
        Outcome o = create(resp(status, flow_run("SCHEDULED", "Scheduled")));
        EXPECT_EQ(o.kind, Outcome::kPending);
        EXPECT_EQ(o.external_id, kRunId);
        EXPECT_EQ(json::parse(o.info_json)["prefect"]["flow_run_id"], kRunId);
    }
}

TEST(PrefectCreate, AFlowRunOfAnotherRunIsNotAdopted) {
    // The same key from another install (or a restored copy): its parameters name
    // another run or job, or none at all.
    std::string doc = flow_run("RUNNING", "Running");
    EXPECT_EQ(prefect_interpret_create(resp(200, doc), 6, "load").kind, Outcome::kFailed);
    Outcome o = prefect_interpret_create(resp(200, doc), 5, "other");
    EXPECT_EQ(o.kind, Outcome::kFailed);
    EXPECT_TRUE(o.retry);
    EXPECT_TRUE(o.external_id.empty());  // never polled as ours
    EXPECT_NE(o.error.find("not adopted"), std::string::npos) << o.error;
    EXPECT_NE(o.error.find("dataflow run 5 of job \"load\""), std::string::npos) << o.error;
    json bare = json{{"id", kRunId}, {"state", {{"type", "RUNNING"}}}};
    EXPECT_EQ(create(resp(201, bare.dump())).kind, Outcome::kFailed);
    bare["parameters"] = {{"dataflow", {{"run_id", "5"}, {"job", "load"}}}};  // a string is not 5
    EXPECT_EQ(create(resp(201, bare.dump())).kind, Outcome::kFailed);
}

TEST(PrefectCreate, Failures) {
    Outcome gone = create(resp(404, R"({"detail":"Deployment not found"})"));
    EXPECT_EQ(gone.kind, Outcome::kFailed);
    EXPECT_TRUE(gone.retry);
    EXPECT_NE(gone.error.find("Deployment not found"), std::string::npos);
    Outcome refused = create(resp(409, R"({"detail":"Validation failed"})"));
    EXPECT_EQ(refused.kind, Outcome::kFailed);
    EXPECT_NE(refused.error.find("Validation failed"), std::string::npos);
    EXPECT_EQ(create(resp(502, "")).kind, Outcome::kRetry);
    EXPECT_EQ(create(resp(0, "", "Operation timed out")).kind, Outcome::kRetry);
    EXPECT_EQ(create(resp(201, R"({"name":"x"})")).kind, Outcome::kRetry);
    EXPECT_EQ(create(resp(201, "{bad")).kind, Outcome::kRetry);
    Outcome auth = create(resp(401, R"({"detail":"Unauthorized"})"));
    EXPECT_EQ(auth.kind, Outcome::kRetry);
    EXPECT_NE(auth.error.find("API key"), std::string::npos);
    EXPECT_EQ(auth.error.find("pnu_key"), std::string::npos);
}

TEST(PrefectCreate, AmbiguousCreateIsRecognised) {
    // A create whose answer was lost is sent again (same idempotency key); a 404 is not.
    EXPECT_TRUE(dispatch_ambiguous(resp(504, "")));
    EXPECT_TRUE(dispatch_ambiguous(resp(0, "", "Operation timed out")));
    EXPECT_FALSE(dispatch_ambiguous(resp(404, R"({"detail":"Deployment not found"})")));
}

TEST(PrefectPhase, EveryStateType) {
    for (const char* t : {"SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING"})
        EXPECT_EQ(prefect_phase(t), PrefectPhase::kActive) << t;
    EXPECT_EQ(prefect_phase("COMPLETED"), PrefectPhase::kCompleted);
    EXPECT_EQ(prefect_phase("FAILED"), PrefectPhase::kFailed);
    EXPECT_EQ(prefect_phase("CRASHED"), PrefectPhase::kFailed);
    EXPECT_EQ(prefect_phase("CANCELLED"), PrefectPhase::kCancelled);
    EXPECT_EQ(prefect_phase("running"), PrefectPhase::kUnknown);
    EXPECT_EQ(prefect_phase(""), PrefectPhase::kUnknown);
}

TEST(PrefectPoll, StatesMapToOutcomes) {
    Outcome running = poll(resp(200, flow_run("RUNNING", "Running")));
    EXPECT_EQ(running.kind, Outcome::kPending);
    json info = json::parse(running.info_json)["prefect"];
    EXPECT_EQ(info["flow_run_id"], kRunId);
    EXPECT_EQ(info["state"], "RUNNING");
    EXPECT_EQ(info["state_name"], "Running");

    Outcome done = poll(resp(200, flow_run("COMPLETED", "Completed")));
    EXPECT_EQ(done.kind, Outcome::kSucceeded);
    EXPECT_EQ(json::parse(done.info_json)["prefect"]["state"], "COMPLETED");
    EXPECT_FALSE(done.row_count);

    Outcome failed = poll(resp(200, flow_run("FAILED", "Failed", "boom")));
    EXPECT_EQ(failed.kind, Outcome::kFailed);
    EXPECT_TRUE(failed.retry);
    EXPECT_NE(failed.error.find("boom"), std::string::npos);

    Outcome crashed = poll(resp(200, flow_run("CRASHED", "Crashed", "oom")));
    EXPECT_EQ(crashed.kind, Outcome::kFailed);
    EXPECT_TRUE(crashed.retry);

    Outcome cancelled = poll(resp(200, flow_run("CANCELLED", "Cancelled")));
    EXPECT_EQ(cancelled.kind, Outcome::kFailed);
    EXPECT_FALSE(cancelled.retry);
    EXPECT_NE(cancelled.error.find("cancelled"), std::string::npos);

    Outcome cancelling = poll(resp(200, flow_run("CANCELLING", "Cancelling")));
    EXPECT_EQ(cancelling.kind, Outcome::kPending);
}

TEST(PrefectPoll, StateTypeWithoutStateObject) {
    std::string body =
        json{{"id", kRunId}, {"state_type", "COMPLETED"}, {"state_name", "Done"}}.dump();
    Outcome o = poll(resp(200, body));
    EXPECT_EQ(o.kind, Outcome::kSucceeded);
    EXPECT_EQ(json::parse(o.info_json)["prefect"]["state_name"], "Done");
}

TEST(PrefectPoll, AnAnswerForAnotherFlowRunIsNotActedOn) {
    // Only the polled flow run's answer may change the run (and its external_id).
    const std::string other = "6f1c0f5e-3c1e-4c55-9a55-0d2b1d1f0a01";
    Outcome o = prefect_interpret_poll(resp(200, flow_run("COMPLETED", "Completed")), other);
    EXPECT_EQ(o.kind, Outcome::kRetry);
    EXPECT_TRUE(o.external_id.empty());
    EXPECT_NE(o.error.find("not the polled " + other), std::string::npos) << o.error;
    json doc = json::parse(flow_run("COMPLETED", "Completed"));
    doc["id"] = "../../etc";
    EXPECT_EQ(poll(resp(200, doc.dump())).kind, Outcome::kRetry);
    doc.erase("id");
    EXPECT_EQ(poll(resp(200, doc.dump())).kind, Outcome::kRetry);
    // The same id in upper case is the same flow run.
    std::string upper = kRunId;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_EQ(prefect_interpret_poll(resp(200, flow_run("COMPLETED", "Completed")), upper).kind,
              Outcome::kSucceeded);
}

TEST(PrefectPoll, ErrorsAreRetries) {
    EXPECT_EQ(poll(resp(404, R"({"detail":"Flow run not found"})")).kind, Outcome::kRetry);
    EXPECT_EQ(poll(resp(200, "[]")).kind, Outcome::kRetry);
    EXPECT_EQ(poll(resp(200, flow_run("WEIRD"))).kind, Outcome::kRetry);
    EXPECT_EQ(poll(resp(200, std::string("{\"id\":\"\xff\"}"))).kind, Outcome::kRetry);
    HttpResponse busy = resp(429, "");
    busy.retry_after = "7";
    busy.received_unix = 1000;
    Outcome o = poll(busy);
    EXPECT_EQ(o.kind, Outcome::kRetry);
    ASSERT_TRUE(o.retry_after_s);
    EXPECT_EQ(*o.retry_after_s, 7);
}
