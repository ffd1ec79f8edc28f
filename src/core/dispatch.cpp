// http/airflow dispatch payloads and response interpretation.
#include "core/dispatch.h"

#include <nlohmann/json.hpp>

#include "core/json_text.h"

#include <cctype>

namespace dataflow {
namespace {
using json = nlohmann::json;

json parse_or_null(const std::string& text) {
    json j = json::parse(text, nullptr, false);
    return j.is_discarded() ? json() : j;
}

std::string dump(const json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string status_error(const HttpResponse& r) {
    return response_error(r);
}

// A retryable failure; a 429/503 with Retry-After sets when the next attempt may start.
Outcome retry(std::string error, const HttpResponse& r) {
    Outcome o;
    o.kind = Outcome::kRetry;
    o.error = std::move(error);
    o.retry_after_s = requested_retry_delay(r);
    return o;
}

std::string string_field(const json& j, const char* name) {
    auto it = j.find(name);
    if (it == j.end() || it->is_null()) return "";
    return it->is_string() ? it->get<std::string>() : dump(*it);
}

std::string base_api(const AirflowConnection& c) {
    std::string base = c.base_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    return base + (c.api_version >= 2 ? "/api/v2" : "/api/v1");
}

HttpRequest airflow_base_request(const AirflowConnection& c, const std::string& bearer) {
    HttpRequest r;
    r.connect_timeout_ms = c.connect_timeout_ms;
    r.timeout_ms = c.timeout_ms;
    r.max_body = c.max_body;
    r.headers.push_back({"Accept", "application/json"});
    if (!bearer.empty()) {
        r.headers.push_back({"Authorization", "Bearer " + bearer});
    } else if (c.auth == "basic") {
        r.basic_auth = true;
        r.username = c.username;
        r.password = c.secret;
    } else if (c.auth == "bearer" && c.api_version < 2) {
        r.headers.push_back({"Authorization", "Bearer " + c.secret});
    }
    return r;
}
}  // namespace

std::string task_json(const Task& t) {
    json j = {{"run_id", t.run_id},
              {"token", t.token},
              {"job", t.job},
              {"dataset", t.dataset},
              {"key", t.key},
              {"version", t.version},
              {"attempt", t.attempt},
              {"output_location", t.output_location.empty() ? json() : json(t.output_location)},
              {"inputs", parse_or_null(t.inputs_json)},
              {"params", parse_or_null(t.params_json)},
              {"deadline", t.deadline}};
    if (!t.callback_url.empty()) return with_callback(dump(j), t.callback_url, t.token);
    return dump(j);
}

std::string with_callback(const std::string& task_json, const std::string& callback_url,
                          const std::string& token) {
    if (callback_url.empty()) return task_json;
    json j = parse_or_null(task_json);
    if (!j.is_object()) return task_json;
    std::string url = callback_url;
    while (!url.empty() && url.back() == '/') url.pop_back();
    j["callback"] = {{"url", url}, {"token", token}};
    return dump(j);
}

Outcome interpret_http_dispatch(const HttpResponse& r) {
    if (r.status == 410) {  // the endpoint says it is gone for good: retrying cannot help
        Outcome o;
        o.kind = Outcome::kFailed;
        o.retry = false;
        o.gone = true;
        o.error = "HTTP 410 Gone (not retried: the endpoint no longer exists)";
        std::string excerpt = body_excerpt(r.body);
        if (!excerpt.empty()) o.error += ": " + excerpt;
        return o;
    }
    if (r.status == 0 || !r.error.empty()) return retry(status_error(r), r);
    if (r.status == 202) {
        Outcome o;
        o.kind = Outcome::kAccepted;
        return o;
    }
    if (r.status < 200 || r.status > 299) return retry(status_error(r), r);
    // An answer PostgreSQL would refuse, or nested too deep to unfold safely, fails
    // this run alone (retried while attempts remain), checked before it is parsed.
    if (auto why = jsonb_refusal(r.body)) {
        Outcome o;
        o.kind = Outcome::kFailed;
        o.error = "engine answer is not valid JSON for PostgreSQL: " + *why;
        return o;
    }
    json j = json::parse(r.body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("status") || !j["status"].is_string())
        return retry("HTTP " + std::to_string(r.status) +
                         " without a status in the body: " + body_excerpt(r.body),
                     r);
    std::string status = j["status"].get<std::string>();
    Outcome o;
    if (status == "succeeded") {
        o.kind = Outcome::kSucceeded;
        auto rc = j.find("row_count");
        if (rc != j.end() && rc->is_number_integer()) o.row_count = rc->get<int64_t>();
        o.checksum = string_field(j, "checksum");
        o.location = string_field(j, "location");
        auto info = j.find("info");
        if (info != j.end() && info->is_object()) o.info_json = dump(*info);
    } else if (status == "failed") {
        o.kind = Outcome::kFailed;
        o.error = string_field(j, "error");
        if (o.error.empty()) o.error = "the endpoint reported failure";
        auto rt = j.find("retry");
        o.retry = !(rt != j.end() && rt->is_boolean() && !rt->get<bool>());
    } else if (status == "accepted" || status == "running" || status == "queued") {
        o.kind = Outcome::kAccepted;
    } else {
        return retry("HTTP " + std::to_string(r.status) + " with unknown status \"" +
                         body_excerpt(status, 60) + "\"",
                     r);
    }
    return o;
}

bool dispatch_ambiguous(const HttpResponse& r) {
    if (r.refused || !r.sent) return false;  // never left the worker, or never connected
    if (r.status == 0) return true;          // sent, then timeout / reset / nothing back
    if (r.status >= 200 && r.status <= 299) {
        // Cut off mid-way: an answer we could not read, which may have been an
        // acceptance. A complete answer is definite, even one that is not a dispatch
        // answer ("ok", a page) or larger than dataflow.http_max_body: the engine
        // answered, and a resend would get the same; the run fails with that error.
        return !r.error.empty() && !r.too_large;
    }
    if (r.status == 502 || r.status == 504) return true;
    if (r.status >= 500 && r.status <= 599 && r.status != 501 && r.status != 503) {
        if (!r.error.empty() && !r.too_large) return true;  // the body was cut off
        for (char c : r.body)
            if (!std::isspace(static_cast<unsigned char>(c))) return false;
        return true;
    }
    return false;
}

std::string dispatch_idempotency_key(int64_t run_id) {
    return "dataflow-" + std::to_string(run_id);
}

std::string airflow_dag_run_id(int64_t run_id) {
    return "dataflow-" + std::to_string(run_id);
}

std::string url_path_escape(const std::string& s) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

HttpRequest airflow_token_request(const AirflowConnection& c) {
    HttpRequest r = airflow_base_request(c, "");
    r.basic_auth = false;
    std::string base = c.base_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    r.method = "POST";
    r.url = base + "/auth/token";
    r.headers = {{"Accept", "application/json"}, {"Content-Type", "application/json"}};
    r.body = dump(json{{"username", c.username}, {"password", c.secret}});
    return r;
}

std::string airflow_parse_token(const HttpResponse& r, std::string* error) {
    if (r.status < 200 || r.status > 299 || !r.error.empty()) {
        *error = "Airflow /auth/token: " + status_error(r);
        return "";
    }
    json j = json::parse(r.body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("access_token") ||
        !j["access_token"].is_string()) {
        *error = "Airflow /auth/token: no access_token in the response";
        return "";
    }
    return j["access_token"].get<std::string>();
}

HttpRequest airflow_trigger_request(const AirflowConnection& c, const std::string& dag_id,
                                    const Task& task, const std::string& bearer) {
    return airflow_trigger_request(c, dag_id, task.run_id, task_json(task), bearer);
}

HttpRequest airflow_trigger_request(const AirflowConnection& c, const std::string& dag_id,
                                    int64_t run_id, const std::string& conf_json,
                                    const std::string& bearer) {
    HttpRequest r = airflow_base_request(c, bearer);
    r.method = "POST";
    r.url = base_api(c) + "/dags/" + url_path_escape(dag_id) + "/dagRuns";
    r.headers.push_back({"Content-Type", "application/json"});
    json body = {{"dag_run_id", airflow_dag_run_id(run_id)}, {"conf", parse_or_null(conf_json)}};
    if (c.api_version >= 2) body["logical_date"] = nullptr;  // required (nullable) by Airflow 3
    r.body = dump(body);
    return r;
}

HttpRequest airflow_poll_request(const AirflowConnection& c, const std::string& dag_id,
                                 const std::string& dag_run_id, const std::string& bearer) {
    HttpRequest r = airflow_base_request(c, bearer);
    r.method = "GET";
    r.url = base_api(c) + "/dags/" + url_path_escape(dag_id) + "/dagRuns/" +
            url_path_escape(dag_run_id);
    return r;
}

Outcome airflow_interpret_trigger(const HttpResponse& r, const std::string& dag_run_id) {
    if (r.status == 200 || r.status == 201 || r.status == 409) {
        Outcome o;
        o.kind = Outcome::kPending;
        o.external_id = dag_run_id;
        return o;
    }
    Outcome o = retry("Airflow trigger: " + status_error(r), r);
    if (r.status == 401 || r.status == 403) o.error += " (check the connection's credentials)";
    return o;
}

Outcome airflow_interpret_poll(const HttpResponse& r) {
    if (r.status != 200 || !r.error.empty()) return retry("Airflow poll: " + status_error(r), r);
    if (auto why = jsonb_refusal(r.body))
        return retry("Airflow poll: answer is not valid JSON for PostgreSQL: " + *why, r);
    json j = json::parse(r.body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("state") || !j["state"].is_string())
        return retry("Airflow poll: no state in the response: " + body_excerpt(r.body), r);
    std::string state = j["state"].get<std::string>();
    Outcome o;
    o.external_id = string_field(j, "dag_run_id");
    json info = {{"airflow_state", state}};
    for (const char* f : {"dag_run_id", "start_date", "end_date"})
        if (j.contains(f)) info[f] = j[f];
    o.info_json = dump(info);
    if (state == "success") {
        o.kind = Outcome::kSucceeded;
    } else if (state == "failed") {
        o.kind = Outcome::kFailed;
        o.error = "Airflow DAG run " + o.external_id + " failed";
    } else {
        o.kind = Outcome::kPending;
    }
    return o;
}

}  // namespace dataflow
