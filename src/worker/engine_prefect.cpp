// Prefect runs (docs/engines.md, "Prefect"): the follower creates the flow run of each
// run not yet acknowledged, from its _dispatch row (POST create_flow_run with the
// run's idempotency key; a name-form target is resolved to a deployment id first and
// the id kept a while), and polls the flow runs of the others at
// dataflow.poll_interval. What the answers mean lives in src/core/prefect.h; results
// are recorded like Airflow's (record(): 'pending' keeps the lease alive and stores the
// flow run id and state, 'succeeded' / 'failed' end the run).
#include <chrono>
#include <string>
#include <utility>

#include "core/prefect.h"
#include "pg/guard.h"
#include "worker/engine.h"

namespace dataflow::worker {

using pg::PgError;
using pg::Row;
using pg::spi_exec;
using namespace std::chrono_literals;

namespace {

// How long a resolved deployment id is used before it is looked up again (a
// deployment re-created under the same name gets a new id).
constexpr auto kDeploymentLifetime = 10min;

std::string col(const Row& r, size_t i) {
    return i < r.size() && r[i] ? *r[i] : std::string();
}
long col_long(const Row& r, size_t i, long fallback) {
    std::string s = col(r, i);
    if (s.empty()) return fallback;
    try {
        return std::stol(s);
    } catch (...) {
        return fallback;
    }
}

}  // namespace

void Engine::prefect() {
    std::vector<Row> runs;
    try {
        // Declared after the transaction: disarmed before it commits or aborts.
        pg::Xact x("pg_dataflow: listing prefect runs");
        settings::TransactionTimer timer(cfg_.worker_statement_timeout_ms);
        require_matching_sql();
        runs = spi_exec("SELECT * FROM dataflow._worker_prefect_runs()");
        timer.stop();
        x.commit();
    } catch (const PgError& e) {
        pg::log(pg::Level::kWarning,
                std::string("pg_dataflow worker: listing prefect runs failed: ") + e.what());
        next_check_ = {};
        return;
    }
    auto now = Clock::now();
    std::set<int64_t> live;
    for (const Row& r : runs) {
        int64_t run_id = col_long(r, 0, 0);
        live.insert(run_id);
        if (busy_runs_.count(run_id) || budget() == 0) continue;
        auto due = next_prefect_poll_.find(run_id);
        if (due != next_prefect_poll_.end() && now < due->second) continue;
        PrefectConnection c;
        c.base_url = col(r, 6);
        c.auth = col(r, 7);
        c.secret = col(r, 8);
        c.connect_timeout_ms = col_long(r, 9, cfg_.http_connect_timeout_ms);
        c.timeout_ms = col_long(r, 10, cfg_.http_timeout_ms);
        c.max_body = static_cast<size_t>(cfg_.http_max_body);
        next_prefect_poll_[run_id] = now + std::chrono::milliseconds(cfg_.poll_interval_ms);
        Pending p{Pending::kPrefectPoll, run_id, col(r, 1), "", 0};
        p.job = col(r, 14);
        p.external_id = col(r, 2);
        p.redactor = redactor_for(p.token, c.secret, col(r, 15));
        if (col(r, 3) != "t" || col(r, 2).empty()) {
            // Not acknowledged (new, or the answer was lost): create it; Prefect answers
            // a repeated idempotency key with the flow run it made the first time.
            p.kind = Pending::kPrefectCreate;
            std::string key =
                prefect_idempotency_key(col(r, 11), col_long(r, 12, 0), col_long(r, 13, 0), run_id);
            send_prefect_create(c, col(r, 5),
                                with_callback(col(r, 4), cfg_.callback_url, col(r, 1)), key,
                                std::move(p));
            continue;
        }
        start(prefect_poll_request(c, col(r, 2)), std::move(p));
    }
    for (auto it = next_prefect_poll_.begin(); it != next_prefect_poll_.end();)
        it = live.count(it->first) ? std::next(it) : next_prefect_poll_.erase(it);
}

void Engine::send_prefect_create(const PrefectConnection& c, const std::string& target,
                                 const std::string& task_doc, const std::string& idempotency_key,
                                 Pending pending) {
    std::string error;
    auto parsed = prefect_parse_target(target, &error);
    if (!parsed) {  // create_job checks the form; a target written into the table is not
        HttpResponse r;
        r.error = "request not sent: " + error;
        busy_runs_.insert(pending.id);
        start_failures_.emplace_back(std::move(r), std::move(pending));
        return;
    }
    if (!parsed->by_name()) {
        start(prefect_create_request(c, parsed->deployment_id, task_doc, idempotency_key),
              std::move(pending));
        return;
    }
    std::string key = c.base_url + "\n" + target;
    pending.conn = key;
    Deployment& d = deployments_[key];
    if (!d.id.empty() && Clock::now() < d.fetched + kDeploymentLifetime) {
        start(prefect_create_request(c, d.id, task_doc, idempotency_key), std::move(pending));
        return;
    }
    busy_runs_.insert(pending.id);
    d.waiting.push_back(PrefectWaiting{c, task_doc, idempotency_key, std::move(pending)});
    if (!d.fetching) {
        d.fetching = true;
        Pending resolve{Pending::kPrefectResolve, 0, "", key, 0};
        resolve.redactor = redactor_for("", c.secret, "");
        start(prefect_deployment_request(c, *parsed), std::move(resolve));
    }
}

void Engine::record_prefect(const HttpResponse& resp, const Pending& p) {
    switch (p.kind) {
        case Pending::kPrefectCreate: {
            Outcome o = prefect_interpret_create(resp, p.id, p.job);
            if (resp.status == 404 && !p.conn.empty())
                deployments_.erase(p.conn);  // look it up again
            if (o.kind == Outcome::kPending) worker_record(p.id, p.token, o, "pending");
            if (o.kind == Outcome::kFailed) worker_record(p.id, p.token, o, "failed");
            if (o.kind == Outcome::kRetry) worker_record(p.id, p.token, o, "retry");
            break;
        }
        case Pending::kPrefectPoll: {
            Outcome o = prefect_interpret_poll(resp, p.external_id);
            if (o.kind == Outcome::kSucceeded) worker_record(p.id, p.token, o, "succeeded");
            if (o.kind == Outcome::kFailed) worker_record(p.id, p.token, o, "failed");
            if (o.kind == Outcome::kPending) worker_record(p.id, p.token, o, "pending");
            if (o.kind == Outcome::kRetry) {
                // Not acted on: polled again (the lease runs out if Prefect stays away).
                pg::log(pg::Level::kLog,
                        "pg_dataflow worker: run " + std::to_string(p.id) + ": " + o.error);
                auto wait = Clock::now() + std::chrono::seconds(o.retry_after_s.value_or(0));
                auto& due = next_prefect_poll_[p.id];
                if (wait > due) due = wait;  // Prefect asked us to back off (429/503)
            }
            break;
        }
        case Pending::kPrefectResolve: {
            auto it = deployments_.find(p.conn);
            if (it == deployments_.end()) break;
            Deployment& d = it->second;
            d.fetching = false;
            std::string target = p.conn.substr(p.conn.find('\n') + 1);
            bool not_found = false;
            std::string error;
            d.id = prefect_interpret_deployment(resp, target, &not_found, &error);
            d.fetched = Clock::now();
            auto waiting = std::move(d.waiting);
            d.waiting.clear();
            for (PrefectWaiting& w : waiting) {
                busy_runs_.erase(w.pending.id);
                if (!d.id.empty()) {
                    backlog_.emplace_back(
                        prefect_create_request(w.conn, d.id, w.task_doc, w.idempotency_key),
                        std::move(w.pending));
                    busy_runs_.insert(backlog_.back().second.id);
                    continue;
                }
                // No such deployment: the run fails (retried while attempts remain);
                // another error (Prefect down) is a retryable failure of the dispatch.
                Outcome o;
                o.kind = not_found ? Outcome::kFailed : Outcome::kRetry;
                o.error = error;
                worker_record(w.pending.id, w.pending.token, o, not_found ? "failed" : "retry");
            }
            if (d.id.empty()) deployments_.erase(it);
            break;
        }
        default: break;
    }
}

}  // namespace dataflow::worker
