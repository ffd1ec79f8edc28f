// Prefect REST API requests and answers (see prefect.h).
#include "core/prefect.h"

#include <nlohmann/json.hpp>

#include "core/json_text.h"

#include <cctype>

namespace dataflow {
namespace {
using json = nlohmann::json;

std::string dump(const json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string base_api(const PrefectConnection& c) {
    std::string base = c.base_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    return base;
}

HttpRequest base_request(const PrefectConnection& c) {
    HttpRequest r;
    r.connect_timeout_ms = c.connect_timeout_ms;
    r.timeout_ms = c.timeout_ms;
    r.max_body = c.max_body;
    r.headers.push_back({"Accept", "application/json"});
    if (c.auth == "bearer") r.headers.push_back({"Authorization", "Bearer " + c.secret});
    return r;
}

Outcome retry(std::string error, const HttpResponse& r) {
    Outcome o;
    o.kind = Outcome::kRetry;
    o.error = std::move(error);
    o.retry_after_s = requested_retry_delay(r);
    return o;
}

// Prefect's error answers are {"detail": "..."} (or a list of validation errors).
std::string detail(const HttpResponse& r) {
    json j = json::parse(r.body, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("detail")) {
        const json& d = j["detail"];
        return body_excerpt(d.is_string() ? d.get<std::string>() : dump(d));
    }
    return body_excerpt(r.body);
}

// A parsed JSON object answer of a 200/201, or a discarded value.
json object_answer(const HttpResponse& r) {
    if (jsonb_refusal(r.body)) return json(json::value_t::discarded);
    json j = json::parse(r.body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return json(json::value_t::discarded);
    return j;
}

std::string string_or_empty(const json& j, const char* name) {
    auto it = j.find(name);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

bool name_ok(const std::string& s) {
    if (s.empty() || s.size() > 200) return false;
    for (unsigned char c : s)
        if (c < 0x20 || c == 0x7f || c == '%' || c == '&' || c == '<' || c == '>' || c == '/')
            return false;
    return true;
}
}  // namespace

bool prefect_is_uuid(const std::string& s) {
    if (s.size() != 36) return false;
    for (size_t i = 0; i < s.size(); ++i) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
    }
    return true;
}

std::optional<PrefectTarget> prefect_parse_target(const std::string& target, std::string* error) {
    PrefectTarget t;
    if (prefect_is_uuid(target)) {
        for (char c : target)
            t.deployment_id += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return t;
    }
    auto slash = target.find('/');
    if (slash != std::string::npos && name_ok(target.substr(0, slash)) &&
        name_ok(target.substr(slash + 1))) {
        t.flow = target.substr(0, slash);
        t.deployment = target.substr(slash + 1);
        return t;
    }
    *error = "invalid Prefect target \"" + body_excerpt(target, 80) +
             "\": a deployment id (UUID) or flow-name/deployment-name";
    return std::nullopt;
}

std::string prefect_idempotency_key(const std::string& install_id, int64_t chunk_id,
                                    int64_t version, int64_t run_id) {
    return "dataflow-" + install_id + "-" + std::to_string(chunk_id) + "-v" +
           std::to_string(version) + "-r" + std::to_string(run_id);
}

HttpRequest prefect_deployment_request(const PrefectConnection& c, const PrefectTarget& t) {
    HttpRequest r = base_request(c);
    r.method = "GET";
    r.url = base_api(c) + "/deployments/name/" + url_path_escape(t.flow) + "/" +
            url_path_escape(t.deployment);
    return r;
}

std::string prefect_interpret_deployment(const HttpResponse& r, const std::string& target,
                                         bool* not_found, std::string* error) {
    *not_found = false;
    if (r.status == 404 && r.error.empty()) {
        *not_found = true;
        *error = "Prefect deployment \"" + body_excerpt(target, 200) +
                 "\" not found (HTTP 404: " + detail(r) + ")";
        return "";
    }
    if (r.status != 200 || !r.error.empty()) {
        *error = "Prefect deployment \"" + body_excerpt(target, 200) + "\": " + response_error(r);
        if (r.status == 401 || r.status == 403) *error += " (check the connection's API key)";
        return "";
    }
    json j = object_answer(r);
    std::string id = j.is_discarded() ? "" : string_or_empty(j, "id");
    if (!prefect_is_uuid(id)) {
        *error = "Prefect deployment \"" + body_excerpt(target, 200) +
                 "\": no deployment id in the answer: " + body_excerpt(r.body);
        return "";
    }
    return id;
}

std::string prefect_parameters(const std::string& task_doc_json) {
    json doc = json::parse(task_doc_json, nullptr, false);
    if (doc.is_discarded()) doc = json();
    json params = json::object();
    if (doc.is_object()) {
        auto it = doc.find("params");
        if (it != doc.end() && it->is_object()) params = *it;
    }
    params["dataflow"] = doc;
    return dump(params);
}

HttpRequest prefect_create_request(const PrefectConnection& c, const std::string& deployment_id,
                                   const std::string& task_doc_json,
                                   const std::string& idempotency_key) {
    HttpRequest r = base_request(c);
    r.method = "POST";
    r.url = base_api(c) + "/deployments/" + url_path_escape(deployment_id) + "/create_flow_run";
    r.headers.push_back({"Content-Type", "application/json"});
    json body = {{"parameters", json::parse(prefect_parameters(task_doc_json))},
                 {"idempotency_key", idempotency_key}};
    r.body = dump(body);
    return r;
}

Outcome prefect_interpret_create(const HttpResponse& r, int64_t run_id, const std::string& job) {
    if ((r.status == 200 || r.status == 201) && r.error.empty()) {
        json j = object_answer(r);
        std::string id = j.is_discarded() ? "" : string_or_empty(j, "id");
        if (!prefect_is_uuid(id))
            return retry("Prefect create_flow_run: HTTP " + std::to_string(r.status) +
                             " without a flow run id: " + body_excerpt(r.body),
                         r);
        // Ours only if its parameters name this very run (the key is per run): a flow
        // run another install made under the same key is never adopted.
        int64_t their_run = -1;
        std::string their_job;
        auto params = j.find("parameters");
        if (params != j.end() && params->is_object()) {
            auto df = params->find("dataflow");
            if (df != params->end() && df->is_object()) {
                auto rid = df->find("run_id");
                if (rid != df->end() && rid->is_number_integer()) their_run = rid->get<int64_t>();
                their_job = string_or_empty(*df, "job");
            }
        }
        if (their_run != run_id || their_job != job) {
            Outcome o;
            o.kind = Outcome::kFailed;
            o.retry = true;  // the next attempt has a key of its own
            o.error = "Prefect create_flow_run: the idempotency key is taken by flow run " + id +
                      ", whose parameters are not this run's (" +
                      (their_run < 0 ? std::string("no dataflow run in them")
                                     : "dataflow run " + std::to_string(their_run) + " of job \"" +
                                           body_excerpt(their_job, 80) + "\"") +
                      "): not adopted (another install of pg_dataflow, or a restored copy of "
                      "this database, uses this Prefect)";
            return o;
        }
        Outcome o;
        o.kind = Outcome::kPending;
        o.external_id = id;
        o.info_json = dump(json{{"prefect", {{"flow_run_id", id}}}});
        return o;
    }
    if ((r.status == 404 || r.status == 409 || r.status == 422) && r.error.empty()) {
        Outcome o;
        o.kind = Outcome::kFailed;
        o.retry = true;  // the job's max_attempts decide
        o.error = std::string("Prefect create_flow_run: HTTP ") + std::to_string(r.status) +
                  (r.status == 404 ? " (deployment not found): " : " (flow run refused): ") +
                  detail(r);
        return o;
    }
    Outcome o = retry("Prefect create_flow_run: " + response_error(r), r);
    if (r.status == 401 || r.status == 403) o.error += " (check the connection's API key)";
    return o;
}

HttpRequest prefect_poll_request(const PrefectConnection& c, const std::string& flow_run_id) {
    HttpRequest r = base_request(c);
    r.method = "GET";
    r.url = base_api(c) + "/flow_runs/" + url_path_escape(flow_run_id);
    return r;
}

PrefectPhase prefect_phase(const std::string& t) {
    if (t == "SCHEDULED" || t == "PENDING" || t == "RUNNING" || t == "PAUSED" || t == "CANCELLING")
        return PrefectPhase::kActive;
    if (t == "COMPLETED") return PrefectPhase::kCompleted;
    if (t == "FAILED" || t == "CRASHED") return PrefectPhase::kFailed;
    if (t == "CANCELLED") return PrefectPhase::kCancelled;
    return PrefectPhase::kUnknown;
}

Outcome prefect_interpret_poll(const HttpResponse& r, const std::string& polled_id) {
    if (r.status != 200 || !r.error.empty()) return retry("Prefect poll: " + response_error(r), r);
    json j = object_answer(r);
    if (j.is_discarded())
        return retry("Prefect poll: the answer is no JSON object PostgreSQL can take: " +
                         body_excerpt(r.body),
                     r);
    std::string id = string_or_empty(j, "id");
    if (!prefect_is_uuid(id) || lower(id) != lower(polled_id))
        return retry("Prefect poll: the answer names flow run \"" + body_excerpt(id, 40) +
                         "\", not the polled " + body_excerpt(polled_id, 40) + ": not acted on",
                     r);
    json state = j.contains("state") && j["state"].is_object() ? j["state"] : json::object();
    std::string type = string_or_empty(state, "type");
    if (type.empty()) type = string_or_empty(j, "state_type");
    PrefectPhase phase = prefect_phase(type);
    if (phase == PrefectPhase::kUnknown)
        return retry("Prefect poll: flow run " + body_excerpt(id, 40) +
                         " has no known state type (\"" + body_excerpt(type, 40) + "\")",
                     r);
    std::string name = string_or_empty(state, "name");
    if (name.empty()) name = string_or_empty(j, "state_name");
    Outcome o;
    o.external_id = id;
    o.info_json =
        dump(json{{"prefect", {{"flow_run_id", id}, {"state", type}, {"state_name", name}}}});
    std::string message = string_or_empty(state, "message");
    std::string what = "Prefect flow run " + id + " " + (name.empty() ? type : name);
    switch (phase) {
        case PrefectPhase::kActive: o.kind = Outcome::kPending; break;
        case PrefectPhase::kCompleted: o.kind = Outcome::kSucceeded; break;
        case PrefectPhase::kFailed:
            o.kind = Outcome::kFailed;
            o.error = message.empty() ? what : what + ": " + body_excerpt(message, 1000);
            break;
        case PrefectPhase::kCancelled:
            o.kind = Outcome::kFailed;
            o.retry = false;
            o.error = what + " (not retried: cancelled in Prefect)" +
                      (message.empty() ? "" : ": " + body_excerpt(message, 1000));
            break;
        case PrefectPhase::kUnknown: break;
    }
    return o;
}

}  // namespace dataflow
