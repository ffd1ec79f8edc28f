// Engine stop requests and the interpretation of their answers (engine_stop.h).
#include "core/engine_stop.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace dataflow {
namespace {
using json = nlohmann::json;

std::string dump(const json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// What is kept of a stop's answer: the HTTP status and the fields that say what the
// engine made of it (Prefect's orchestration status and state, Airflow's DAG run
// state, an error's title and detail), never the raw body: an Airflow PATCH answer
// carries the DAG run's conf, a 400 quotes parameter values.
std::string stop_answer(const HttpResponse& r) {
    if (r.status == 0) return response_error(r);
    std::string a = "HTTP " + std::to_string(r.status);
    json j = json::parse(r.body, nullptr, false);
    if (!j.is_object()) return a;
    std::vector<std::string> parts;
    auto text = [&](const char* name, const json& v) {
        if (v.is_string())
            parts.push_back(std::string(name) + " " + body_excerpt(v.get<std::string>(), 120));
    };
    for (const char* f : {"status", "state", "title", "detail"}) {
        auto it = j.find(f);
        if (it == j.end()) continue;
        if (it->is_object() && it->contains("type"))
            text(f, (*it)["type"]);  // Prefect: {"state": {"type": "CANCELLING", ...}}
        else
            text(f, *it);
    }
    for (size_t i = 0; i < parts.size(); ++i) a += (i ? ", " : ": ") + parts[i];
    return a;
}

std::string trimmed_base(std::string base) {
    while (!base.empty() && base.back() == '/') base.pop_back();
    return base;
}
}  // namespace

HttpRequest airflow_stop_request(const AirflowConnection& c, const std::string& dag_id,
                                 const std::string& dag_run_id, const std::string& bearer) {
    // The poll's URL and auth (v1/v2, basic, bearer), as a PATCH.
    HttpRequest r = airflow_poll_request(c, dag_id, dag_run_id, bearer);
    r.method = "PATCH";
    r.headers.push_back({"Content-Type", "application/json"});
    r.body = dump(json{{"state", "failed"}});
    return r;
}

HttpRequest http_stop_request(const std::string& cancel_endpoint, const StopNotice& n,
                              long connect_timeout_ms, long timeout_ms, size_t max_body) {
    HttpRequest r;
    r.method = "POST";
    r.url = cancel_endpoint;
    r.headers = {{"Content-Type", "application/json"},
                 {"Accept", "application/json"},
                 {"Authorization", "Bearer " + n.token}};
    r.body = dump(json{{"run_id", n.run_id},
                       {"job", n.job},
                       {"dataset", n.dataset},
                       {"key", n.key},
                       {"version", n.version},
                       {"reason", n.reason}});
    r.connect_timeout_ms = connect_timeout_ms;
    r.timeout_ms = timeout_ms;
    r.max_body = max_body;
    return r;
}

HttpRequest prefect_stop_request(const PrefectConnection& c, const std::string& flow_run_id) {
    HttpRequest r;
    r.method = "POST";
    r.url = trimmed_base(c.base_url) + "/flow_runs/" + url_path_escape(flow_run_id) + "/set_state";
    r.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
    if (c.auth == "bearer") r.headers.push_back({"Authorization", "Bearer " + c.secret});
    r.body = dump(json{{"state", {{"type", "CANCELLING"}}}, {"force", true}});
    r.connect_timeout_ms = c.connect_timeout_ms;
    r.timeout_ms = c.timeout_ms;
    r.max_body = c.max_body;
    return r;
}

int64_t stop_retry_delay_s(int attempts_done) {
    if (attempts_done < 1) return 0;
    int64_t d = int64_t{1} << std::min(attempts_done - 1, 6);
    return std::min<int64_t>(d, 60);
}

const char* stop_outcome_name(StopOutcome::Kind kind) {
    switch (kind) {
        case StopOutcome::kStopped: return "stopped";
        case StopOutcome::kRefused: return "refused";
        case StopOutcome::kRetry: return "retry";
        case StopOutcome::kGaveUp: return "gave_up";
    }
    return "retry";
}

StopOutcome interpret_stop(const std::string& engine, const HttpResponse& r, int attempts_done) {
    StopOutcome o;
    o.status = r.status;
    o.answer = body_excerpt(stop_answer(r), 300);
    auto retry = [&](int64_t delay) {
        o.kind = attempts_done + 1 >= kStopMaxAttempts ? StopOutcome::kGaveUp : StopOutcome::kRetry;
        o.retry_in_s = o.kind == StopOutcome::kRetry ? delay : 0;
        return o;
    };
    int64_t backoff = stop_retry_delay_s(attempts_done + 1);
    if (r.refused) {  // dataflow.http_allow: the same on every attempt
        o.kind = StopOutcome::kRefused;
        return o;
    }
    if (r.status == 0 || (!r.error.empty() && !r.too_large)) return retry(backoff);
    if (r.status == 429 || r.status >= 500) {
        auto asked = requested_retry_delay(r, 3600);
        return retry(asked ? std::max<int64_t>(*asked, 1) : backoff);
    }
    if (r.status < 200 || r.status > 299) {
        o.kind = StopOutcome::kRefused;
        return o;
    }
    o.kind = StopOutcome::kStopped;
    if (engine == "prefect") {
        // set_state answers 200/201 with the orchestration result: ACCEPT, or REJECT
        // / ABORT (the run is already final, say), or WAIT (details.delay_seconds).
        json j = json::parse(r.body, nullptr, false);
        std::string status;
        if (j.is_object() && j.contains("status") && j["status"].is_string())
            status = j["status"].get<std::string>();
        if (status == "REJECT" || status == "ABORT") {
            o.kind = StopOutcome::kRefused;
        } else if (status == "WAIT") {
            int64_t delay = backoff;
            auto d = j.find("details");
            if (d != j.end() && d->is_object() && d->contains("delay_seconds") &&
                (*d)["delay_seconds"].is_number())
                delay = std::clamp<int64_t>((*d)["delay_seconds"].get<double>(), 1, 3600);
            return retry(delay);
        }
    }
    return o;
}

}  // namespace dataflow
