// Recording finished requests: one short transaction for every request that
// finished since the last pass (see engine.h), with every webhook delivery
// attempt in it recorded by one call of dataflow._delivery_results.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/webhook.h"
#include "pg/guard.h"
#include "worker/engine.h"

namespace dataflow::worker {

using pg::Param;
using pg::PgError;
using pg::spi_exec;
using pg::Xact;

namespace {

// _delivery_results' arguments: one Postgres array literal per column, one
// element per delivery attempt.
class DeliveryResults {
public:
    void add(int64_t id, const HttpResponse& resp, const DeliveryOutcome& o) {
        bool ok = o.kind == DeliveryOutcome::kDelivered;
        element(&id_, std::to_string(id));
        element(&status_, resp.status ? Param(std::to_string(resp.status)) : Param());
        element(&error_, ok ? Param() : Param(o.error));
        element(&retry_in_,
                o.retry_in_seconds ? Param(std::to_string(*o.retry_in_seconds)) : Param());
        element(&duration_ms_, std::to_string(static_cast<long>(resp.seconds * 1000)));
        element(&gone_, Param(o.kind == DeliveryOutcome::kGone ? "t" : "f"));
        ++n_;
    }
    void record() const {
        if (n_ == 0) return;
        spi_exec(
            "SELECT dataflow._delivery_results($1::bigint[], $2::integer[], $3::text[], "
            "$4::integer[], $5::integer[], $6::boolean[])",
            {id_ + "}", status_ + "}", error_ + "}", retry_in_ + "}", duration_ms_ + "}",
             gone_ + "}"});
    }

private:
    // Appends NULL, or the value double-quoted with " and \ escaped: commas, braces,
    // blanks and the word NULL in an error text stay data.
    static void element(std::string* array, const Param& value) {
        *array += array->size() > 1 ? "," : "";
        if (!value) {
            *array += "NULL";
            return;
        }
        *array += '"';
        for (char c : *value) {
            if (c == '"' || c == '\\') *array += '\\';
            *array += c;
        }
        *array += '"';
    }
    std::string id_ = "{", status_ = "{", error_ = "{", retry_in_ = "{", duration_ms_ = "{",
                gone_ = "{";
    size_t n_ = 0;
};

}  // namespace

void Engine::worker_record(const std::string& token, const Outcome& o, const char* kind) {
    auto rows = spi_exec(
        "SELECT dataflow._worker_record($1::uuid, $2, $3::bigint, $4, $5::jsonb, $6, $7, "
        "$8::boolean, $9::integer)",
        {token, std::string(kind), o.row_count ? Param(std::to_string(*o.row_count)) : Param(),
         o.checksum.empty() ? Param() : Param(o.checksum), Param(o.info_json),
         o.location.empty() ? Param() : Param(o.location),
         o.error.empty() ? Param() : Param(o.error), Param(o.retry ? "true" : "false"),
         o.retry_after_s ? Param(std::to_string(*o.retry_after_s)) : Param()});
    // A failed run's chunk waits for its backoff: the next due time may be sooner.
    if (std::string(kind) == "failed" || std::string(kind) == "retry") due_changed_ = true;
    if (!rows.empty() && rows[0][0])
        pg::log(pg::Level::kLog, "pg_dataflow worker: result not recorded: " + *rows[0][0]);
}

void Engine::record_one(const HttpResponse& resp, const Pending& p) {
    switch (p.kind) {
        case Pending::kHttpDispatch: {
            Outcome o = interpret_http_dispatch(resp);
            if (o.kind == Outcome::kSucceeded) worker_record(p.token, o, "succeeded");
            if (o.kind == Outcome::kFailed) worker_record(p.token, o, o.gone ? "gone" : "failed");
            if (o.kind == Outcome::kRetry) worker_record(p.token, o, "retry");
            break;  // kAccepted: the engine reports back through complete/fail
        }
        case Pending::kAirflowTrigger: {
            Outcome o = airflow_interpret_trigger(resp, airflow_dag_run_id(p.id));
            if (resp.status == 401 && !p.conn.empty()) bearers_[p.conn].token.clear();
            worker_record(p.token, o, o.kind == Outcome::kPending ? "pending" : "retry");
            break;
        }
        case Pending::kAirflowPoll: {
            Outcome o = airflow_interpret_poll(resp);
            if (resp.status == 401 && !p.conn.empty()) bearers_[p.conn].token.clear();
            if (o.kind == Outcome::kSucceeded) worker_record(p.token, o, "succeeded");
            if (o.kind == Outcome::kFailed) worker_record(p.token, o, "failed");
            if (o.kind == Outcome::kPending) worker_record(p.token, o, "pending");
            if (o.kind == Outcome::kRetry) {
                pg::log(pg::Level::kLog, "pg_dataflow worker: " + o.error);
                auto wait = Clock::now() + std::chrono::seconds(o.retry_after_s.value_or(0));
                auto& due = next_poll_[p.id];
                if (wait > due) due = wait;  // Airflow asked us to back off (429/503)
            }
            break;
        }
        case Pending::kAirflowToken: {
            Bearer& b = bearers_[p.conn];
            b.fetching = false;
            std::string error;
            b.token = airflow_parse_token(resp, &error);
            b.fetched = Clock::now();
            auto waiting = std::move(b.waiting);
            b.waiting.clear();
            for (auto& w : waiting) {
                busy_runs_.erase(w.second.id);
                if (!b.token.empty()) {
                    w.first.headers.push_back({"Authorization", "Bearer " + b.token});
                    backlog_.push_back(std::move(w));
                    busy_runs_.insert(w.second.id);
                } else if (w.second.kind == Pending::kAirflowTrigger) {
                    Outcome o;
                    o.error = error;
                    worker_record(w.second.token, o, "retry");
                }
            }
            break;
        }
        case Pending::kDelivery: break;  // record() collects them for one _delivery_results call
    }
}

void Engine::record() {
    std::vector<std::pair<HttpResponse, Pending>> done;
    done.swap(start_failures_);
    for (HttpResponse& r : http_.take_finished()) {
        auto it = in_flight_.find(r.tag);
        if (it == in_flight_.end()) continue;
        done.emplace_back(std::move(r), std::move(it->second));
        in_flight_.erase(it);
    }
    if (done.empty()) return;
    recorded_ = true;
    for (auto& d : done) {
        group_done(d.second.group);
        if (d.second.kind == Pending::kDelivery) {
            busy_deliveries_.erase(d.second.id);
            recorded_delivery_ = true;
        } else {
            if (d.second.kind != Pending::kAirflowToken) busy_runs_.erase(d.second.id);
            recorded_dispatch_ = true;
        }
    }
    record_failed_ = true;
    try {
        Xact x("pg_dataflow: recording results");
        DeliveryResults deliveries;
        for (auto& d : done) {
            if (d.second.kind != Pending::kDelivery) {
                record_one(d.first, d.second);
                continue;
            }
            DeliveryOutcome o = webhook_outcome(d.first, d.second.attempts);
            if (o.kind == DeliveryOutcome::kRetry) due_changed_ = true;
            deliveries.add(d.second.id, d.first, o);
        }
        deliveries.record();
        x.commit();
        record_failed_ = false;
    } catch (const PgError& e) {
        // Nothing is lost: undelivered webhooks stay pending and are sent again;
        // unrecorded runs keep their lease until the reaper expires it.
        pg::log(pg::Level::kWarning,
                std::string("pg_dataflow worker: recording results failed: ") + e.what());
    }
}

}  // namespace dataflow::worker
