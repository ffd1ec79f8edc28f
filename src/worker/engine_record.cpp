// Recording finished requests: one short transaction for every request that
// finished since the last pass (see engine.h), with every run result in it
// recorded by one call of dataflow._worker_results and every webhook delivery
// attempt by one call of dataflow._delivery_results. Both record the pass in one
// subtransaction and fall back to one subtransaction per result when that fails,
// so one result PostgreSQL refuses affects only its own run or delivery; what
// they could not record is reported back and logged, never taken for success.
// A serialization failure or deadlock retries the transaction (a bounded number
// of times).
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/json_text.h"
#include "core/webhook.h"
#include "pg/guard.h"
#include "worker/engine.h"

namespace dataflow::worker {

using pg::Param;
using pg::PgError;
using pg::spi_exec;
using pg::Xact;

namespace {

// Transactions a recording pass may take: the first plus two retries after a
// serialization failure or a deadlock.
constexpr int kRecordAttempts = 3;

// PostgreSQL's MAKE_SQLSTATE, without its headers.
constexpr int sqlstate_code(const char (&s)[6]) {
    int code = 0;
    for (int i = 0; i < 5; ++i) code += ((s[i] - '0') & 0x3F) << (6 * i);
    return code;
}
std::string sqlstate_text(int code) {
    std::string s(5, '0');
    for (int i = 0; i < 5; ++i) s[i] = static_cast<char>(((code >> (6 * i)) & 0x3F) + '0');
    return s;
}
bool transient(const PgError& e) {
    return e.sqlerrcode() == sqlstate_code("40001") || e.sqlerrcode() == sqlstate_code("40P01");
}

// One Postgres array literal, one element per result.
class ArrayLiteral {
public:
    // Appends NULL, or the value double-quoted with " and \ escaped: commas, braces,
    // blanks and the word NULL in an error text stay data.
    void add(const Param& value) {
        text_ += text_.size() > 1 ? "," : "";
        if (!value) {
            text_ += "NULL";
            return;
        }
        text_ += '"';
        for (char c : *value) {
            if (c == '"' || c == '\\') text_ += '\\';
            text_ += c;
        }
        text_ += '"';
    }
    std::string str() const { return text_ + "}"; }

private:
    std::string text_ = "{";
};

// _delivery_results' arguments and what it reports back.
class DeliveryResults {
public:
    void add(int64_t id, const HttpResponse& resp, const DeliveryOutcome& o) {
        bool ok = o.kind == DeliveryOutcome::kDelivered;
        ids_.push_back(id);
        id_.add(std::to_string(id));
        status_.add(resp.status ? Param(std::to_string(resp.status)) : Param());
        error_.add(ok ? Param() : Param(o.error));
        retry_in_.add(o.retry_in_seconds ? Param(std::to_string(*o.retry_in_seconds)) : Param());
        duration_ms_.add(std::to_string(static_cast<long>(resp.seconds * 1000)));
        gone_.add(Param(o.kind == DeliveryOutcome::kGone ? "t" : "f"));
    }
    size_t size() const { return ids_.size(); }
    // Inside the recording transaction; returns the log lines for what was not recorded.
    std::vector<std::string> record() const {
        std::vector<std::string> problems;
        if (ids_.empty()) return problems;
        auto rows = spi_exec(
            "SELECT item, error_code, problem FROM dataflow._delivery_results($1::bigint[], "
            "$2::integer[], $3::text[], $4::integer[], $5::integer[], $6::boolean[])",
            {id_.str(), status_.str(), error_.str(), retry_in_.str(), duration_ms_.str(),
             gone_.str()});
        for (const auto& row : rows) {
            size_t item = row[0] ? std::stoul(*row[0]) : 0;
            std::string id =
                item >= 1 && item <= ids_.size() ? std::to_string(ids_[item - 1]) : "?";
            problems.push_back("pg_dataflow worker: attempt of webhook delivery " + id +
                               " not recorded: " + row[2].value_or("") + " (SQLSTATE " +
                               row[1].value_or("?") +
                               "); counted as a failed attempt, due again in a minute");
        }
        return problems;
    }

private:
    std::vector<int64_t> ids_;
    ArrayLiteral id_, status_, error_, retry_in_, duration_ms_, gone_;
};

// A log line for a run result _worker_results reported back, and its level: a run
// failed because of its answer, or a result dropped because its lease is gone, is
// ordinary (LOG); anything else was lost (WARNING).
std::pair<pg::Level, std::string> run_problem(int64_t run_id, const pg::Row& row) {
    bool recorded = row[1] && *row[1] == "t";
    std::string state = row[2].value_or("?"), problem = row[3].value_or("");
    std::string run = "run " + std::to_string(run_id);
    if (recorded) return {pg::Level::kLog, "pg_dataflow worker: " + run + " failed: " + problem};
    bool lease_gone = state == "55000" || state == "42704";
    return {lease_gone ? pg::Level::kLog : pg::Level::kWarning,
            "pg_dataflow worker: result not recorded: " + problem + " (" + run + ", SQLSTATE " +
                state + ")"};
}

Outcome refused_outcome(std::string error) {
    Outcome o;
    o.kind = Outcome::kFailed;
    o.retry = true;  // the job's attempts and backoff decide
    o.error = std::move(error);
    return o;
}

}  // namespace

void Engine::worker_record(int64_t run_id, const std::string& token, const Outcome& o,
                           const char* kind) {
    // A failed run's chunk waits for its backoff: the next due time may be sooner.
    std::string k(kind);
    if (k == "failed" || k == "retry") due_changed_ = true;
    // Every text goes into SQL unverified (SPI does not check text parameters):
    // anything PostgreSQL would refuse fails this run alone, with the reason.
    for (const std::string* field : {&o.info_json, &o.checksum, &o.location, &o.error}) {
        if (auto why = text_refusal(*field)) {
            due_changed_ = true;
            run_results_.push_back(
                {run_id, token, "failed",
                 refused_outcome("engine answer is not valid JSON for PostgreSQL: " + *why)});
            return;
        }
    }
    run_results_.push_back({run_id, token, k, o});
}

void Engine::record_one(const HttpResponse& resp, const Pending& p) {
    switch (p.kind) {
        case Pending::kHttpDispatch: {
            // An answer PostgreSQL would refuse is a failure here already (kFailed).
            Outcome o = interpret_http_dispatch(resp);
            if (o.kind == Outcome::kSucceeded) worker_record(p.id, p.token, o, "succeeded");
            if (o.kind == Outcome::kFailed)
                worker_record(p.id, p.token, o, o.gone ? "gone" : "failed");
            if (o.kind == Outcome::kRetry) worker_record(p.id, p.token, o, "retry");
            break;  // kAccepted: the engine reports back through complete/fail
        }
        case Pending::kAirflowTrigger: {
            Outcome o = airflow_interpret_trigger(resp, airflow_dag_run_id(p.id));
            if (resp.status == 401 && !p.conn.empty()) bearers_[p.conn].token.clear();
            worker_record(p.id, p.token, o, o.kind == Outcome::kPending ? "pending" : "retry");
            break;
        }
        case Pending::kAirflowPoll: {
            Outcome o = airflow_interpret_poll(resp);
            if (resp.status == 401 && !p.conn.empty()) bearers_[p.conn].token.clear();
            if (o.kind == Outcome::kSucceeded) worker_record(p.id, p.token, o, "succeeded");
            if (o.kind == Outcome::kFailed) worker_record(p.id, p.token, o, "failed");
            if (o.kind == Outcome::kPending) worker_record(p.id, p.token, o, "pending");
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
                    worker_record(w.second.id, w.second.token, o, "retry");
                } else if (w.second.kind == Pending::kEngineStop) {
                    HttpResponse none;
                    none.error = error;
                    record_stop(none, w.second);
                }
            }
            break;
        }
        case Pending::kPrefectCreate:
        case Pending::kPrefectPoll:
        case Pending::kPrefectResolve: record_prefect(resp, p); break;
        case Pending::kEngineStop: record_stop(resp, p); break;
        case Pending::kDelivery: break;  // record() collects them for one _delivery_results call
    }
}

void Engine::record_stop(const HttpResponse& resp, const Pending& p) {
    StopOutcome o = interpret_stop(p.engine, resp, p.attempts);
    if (resp.status == 401 && !p.conn.empty()) {
        // A bearer token from /auth/token that expired: fetched again for the next attempt.
        bearers_[p.conn].token.clear();
        if (p.attempts + 1 < kStopMaxAttempts) {
            o.kind = StopOutcome::kRetry;
            o.retry_in_s = 1;
        }
    }
    // The request is due retry_in_s after the recording transaction's now(), a little
    // later than this: a claim made early would find nothing and wait for naptime.
    if (o.kind == StopOutcome::kRetry)
        next_stop_ = std::min(next_stop_, Clock::now() + std::chrono::seconds(o.retry_in_s) +
                                              std::chrono::milliseconds(250));
    stop_results_.push_back({p.id, std::move(o)});
}

void Engine::record_stops() {
    if (stop_results_.empty()) return;
    std::vector<StopResult> results;
    results.swap(stop_results_);
    ArrayLiteral run, outcome, status, answer, retry_in;
    for (const StopResult& r : results) {
        const StopOutcome& o = r.outcome;
        run.add(std::to_string(r.run_id));
        outcome.add(Param(stop_outcome_name(o.kind)));
        status.add(o.status ? Param(std::to_string(o.status)) : Param());
        answer.add(o.answer);
        retry_in.add(o.kind == StopOutcome::kRetry ? Param(std::to_string(o.retry_in_s)) : Param());
    }
    try {
        Xact x("pg_dataflow: recording engine stops");
        require_matching_sql();
        spi_exec(
            "SELECT dataflow._worker_stop_results($1::bigint[], $2::text[], $3::integer[], "
            "$4::text[], $5::integer[])",
            {run.str(), outcome.str(), status.str(), answer.str(), retry_in.str()});
        x.commit();
    } catch (const PgError& e) {
        // Not recorded: the requests stay due and are sent again (a stop is idempotent).
        next_check_ = {};
        next_stop_ = std::min(next_stop_, Clock::now() + std::chrono::seconds(1));
        pg::log(pg::Level::kWarning,
                "pg_dataflow worker: recording engine stops failed: " + std::string(e.what()) +
                    " (SQLSTATE " + sqlstate_text(e.sqlerrcode()) + "); they are sent again");
        return;
    }
    for (const StopResult& r : results)
        pg::log(pg::Level::kLog,
                "pg_dataflow worker: run " + std::to_string(r.run_id) + ": engine stop " +
                    stop_outcome_name(r.outcome.kind) +
                    (r.outcome.status ? " (HTTP " + std::to_string(r.outcome.status) + ")"
                                      : std::string(" (no answer)")));
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
            if (d.second.kind != Pending::kAirflowToken &&
                d.second.kind != Pending::kPrefectResolve)
                busy_runs_.erase(d.second.id);
            recorded_dispatch_ = true;
        }
    }
    // Outcomes first, outside any transaction: the engine's own state (bearer tokens,
    // poll times) changes once, however often the transaction below is retried.
    run_results_.clear();
    DeliveryResults deliveries;
    for (auto& d : done) {
        if (d.second.kind != Pending::kDelivery) {
            redact(d.first, d.second);  // before anything of the answer is kept or logged
            record_one(d.first, d.second);
            continue;
        }
        DeliveryOutcome o = webhook_outcome(d.first, d.second.attempts);
        if (o.kind == DeliveryOutcome::kRetry) due_changed_ = true;
        deliveries.add(d.second.id, d.first, o);
    }
    std::vector<RunResult> runs;
    runs.swap(run_results_);
    if (pg::debug_enabled())
        pg::log(pg::Level::kDebug, "pg_dataflow worker: recording " + std::to_string(done.size()) +
                                       " results (" + std::to_string(deliveries.size()) +
                                       " deliveries), due changed " + std::to_string(due_changed_));
    if (runs.empty() && deliveries.size() == 0) return;
    ArrayLiteral token, kind, row_count, checksum, info, location, error, retry, retry_after;
    for (const RunResult& r : runs) {
        const Outcome& o = r.outcome;
        token.add(r.token);
        kind.add(r.kind);
        row_count.add(o.row_count ? Param(std::to_string(*o.row_count)) : Param());
        checksum.add(o.checksum.empty() ? Param() : Param(o.checksum));
        info.add(o.info_json);
        location.add(o.location.empty() ? Param() : Param(o.location));
        error.add(o.error.empty() ? Param() : Param(o.error));
        retry.add(Param(o.retry ? "t" : "f"));
        retry_after.add(o.retry_after_s ? Param(std::to_string(*o.retry_after_s)) : Param());
    }

    record_failed_ = true;
    for (int attempt = 1; attempt <= kRecordAttempts; ++attempt) {
        std::vector<std::pair<pg::Level, std::string>> problems;
        try {
            Xact x("pg_dataflow: recording results");
            require_matching_sql();  // never record through SQL of another version
            if (!runs.empty()) {
                auto rows = spi_exec(
                    "SELECT item, recorded, error_code, problem FROM dataflow._worker_results("
                    "$1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], "
                    "$7::text[], $8::boolean[], $9::integer[])",
                    {token.str(), kind.str(), row_count.str(), checksum.str(), info.str(),
                     location.str(), error.str(), retry.str(), retry_after.str()});
                for (const auto& row : rows) {
                    size_t item = row[0] ? std::stoul(*row[0]) : 0;
                    int64_t run_id = item >= 1 && item <= runs.size() ? runs[item - 1].run_id : 0;
                    problems.push_back(run_problem(run_id, row));
                }
            }
            for (std::string& line : deliveries.record())
                problems.emplace_back(pg::Level::kWarning, std::move(line));
            x.commit();
            record_failed_ = false;
            for (const auto& p : problems) pg::log(p.first, p.second);
            return;
        } catch (const PgError& e) {
            std::string why =
                std::string(e.what()) + " (SQLSTATE " + sqlstate_text(e.sqlerrcode()) + ")";
            if (transient(e) && attempt < kRecordAttempts) {
                pg::log(pg::Level::kLog,
                        "pg_dataflow worker: recording results: " + why + ", retrying");
                continue;
            }
            next_check_ = {};  // the extension may have been updated or dropped meanwhile
            // Lost, and said so: unrecorded runs keep their lease until the reaper expires
            // it (the chunk is retried), undelivered webhooks stay pending and are sent again.
            pg::log(pg::Level::kWarning,
                    "pg_dataflow worker: recording results failed: " + why + "; " +
                        std::to_string(runs.size()) + " run result(s) and " +
                        std::to_string(deliveries.size()) +
                        " webhook attempt(s) not recorded (the runs are retried when their "
                        "leases expire, the deliveries stay pending)");
            return;
        }
    }
}

}  // namespace dataflow::worker
