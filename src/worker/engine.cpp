// The worker's duties: see engine.h. Claims commit before any request starts;
// results are recorded in a separate short transaction.
#include "worker/engine.h"

#include <algorithm>
#include <cstdlib>

#include "core/version.h"
#include "core/webhook.h"
#include "pg/guard.h"
#include "pg/version.h"

namespace dataflow::worker {
namespace {

using pg::Param;
using pg::PgError;
using pg::Row;
using pg::spi_exec;
using pg::Xact;
using namespace std::chrono_literals;

constexpr auto kCheckEvery = 10s;
constexpr auto kReapEvery = 5s;
constexpr auto kScheduleEvery = 10s;
constexpr auto kPruneEvery = 1h;
constexpr auto kAirflowScanEvery = 1s;
constexpr auto kBearerLifetime = 20min;
// A job whose claim met a lock held past dataflow.worker_lock_timeout is left
// alone this long: each pass would otherwise wait that timeout for it again.
constexpr auto kLockedJobPause = 5s;
// Resends of an http run after an ambiguous failure: 1 s, doubling, at most 30 s.
constexpr auto kResendFirst = 1s;
constexpr auto kResendMax = 30s;
// Resends of one run after ambiguous failures (1 s, 2 s, 4 s apart): then the failure is
// recorded as a retryable one, so an engine that never answers is not waited on for
// the whole lease.
constexpr int kMaxResends = 3;

// Milliseconds from now until t (negative when past; "never" for time_point::max()),
// for the debug trace.
std::string ms_until(std::chrono::steady_clock::time_point t) {
    if (t == std::chrono::steady_clock::time_point::max()) return "never";
    return std::to_string(
        std::chrono::duration_cast<std::chrono::milliseconds>(t - std::chrono::steady_clock::now())
            .count());
}

// One of the worker's transactions, bounded by dataflow.worker_statement_timeout
// (with lock_timeout for each lock wait in it). The timer is disarmed before the
// commit, and before the abort when the transaction ends with an error.
}  // namespace

void require_matching_sql() {
    pg::pg_guarded([] { version::require_matching_sql(); });
}

namespace {

// A duty that fails (its transaction aborts) makes the next pass check the extension
// and its version first: after ALTER EXTENSION ... UPDATE to SQL this library was not
// built for, the first failing call stops the duties, not the next periodic check.
bool recheck_extension = false;

class Duty {
public:
    // Every duty but the extension check itself first makes sure the installed SQL is
    // the library's version (one index lookup per transaction): an ALTER EXTENSION ...
    // UPDATE made under a running worker stops its next duty, not its next check.
    Duty(const char* what, int timeout_ms, bool check_version = true)
        : x_(what), timer_(timeout_ms) {
        if (!check_version) return;
        try {
            require_matching_sql();
        } catch (...) {
            recheck_extension = true;  // the destructor does not run for a throwing constructor
            throw;
        }
    }
    ~Duty() {
        if (!committed_) recheck_extension = true;
    }
    Duty(const Duty&) = delete;
    Duty& operator=(const Duty&) = delete;
    void commit() {
        timer_.stop();
        x_.commit();
        committed_ = true;
    }

private:
    Xact x_;
    settings::TransactionTimer timer_;
    bool committed_ = false;
};

int64_t unix_ms_now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

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

std::string pg_array(const std::set<int64_t>& ids) {
    std::string s = "{";
    for (int64_t id : ids) s += (s.size() > 1 ? "," : "") + std::to_string(id);
    return s + "}";
}

void warn(const std::string& what, const std::exception& e) {
    pg::log(pg::Level::kWarning, "pg_dataflow worker: " + what + ": " + e.what());
}

}  // namespace

Engine::Engine(const settings::Snapshot& cfg)
    : cfg_(cfg), http_(NetPolicy(), cfg.http_concurrency) {
    reconfigure(cfg);
}

void Engine::reconfigure(const settings::Snapshot& cfg) {
    cfg_ = cfg;
    next_check_ = {};  // dataflow.enabled may have been off across an ALTER EXTENSION
    NetPolicy policy;
    std::string error;
    if (!NetPolicy::parse(cfg.http_allow, &policy, &error))
        pg::log(pg::Level::kWarning, "pg_dataflow worker: ignoring dataflow.http_allow: " + error);
    http_.set_policy(std::move(policy));
    http_.set_window(static_cast<size_t>(cfg.http_concurrency));
}

size_t Engine::budget() const {
    size_t free = http_.free_slots();
    return free > backlog_.size() ? free - backlog_.size() : 0;
}

size_t Engine::group_cap() const {
    size_t w = http_.window();
    return w <= 1 ? 1 : w - w / 4;
}

size_t Engine::group_load(const std::string& group) const {
    auto it = group_in_flight_.find(group);
    return it == group_in_flight_.end() ? 0 : it->second;
}

void Engine::group_add(const std::string& group) {
    if (!group.empty()) ++group_in_flight_[group];
}

void Engine::group_done(const std::string& group) {
    auto it = group_in_flight_.find(group);
    if (it != group_in_flight_.end() && --it->second == 0) group_in_flight_.erase(it);
}

bool Engine::check_extension() {
    auto now = Clock::now();
    if (present_ && now < next_check_ && !recheck_extension) return true;
    next_check_ = now + kCheckEvery;
    recheck_extension = false;
    try {
        Duty x("pg_dataflow: checking for the extension", cfg_.worker_statement_timeout_ms,
               /*check_version=*/false);
        // One row whether or not the extension is there. The functions it calls by name
        // live in the extension's own schema, owned by a superuser (a "dataflow" of
        // someone else's would run their code as superuser).
        auto rows = spi_exec(
            "SELECT NOT pg_catalog.pg_is_in_recovery() AND e.oid IS NOT NULL AND "
            "pg_catalog.to_regprocedure('dataflow._worker_jobs()') IS NOT NULL, "
            "pg_catalog.to_regprocedure('dataflow.schedule()') IS NOT NULL, "
            "pg_catalog.to_regprocedure('dataflow.prune(interval)') IS NOT NULL, "
            "e.extversion, pg_catalog.current_database(), "
            "COALESCE(n.nspname OPERATOR(pg_catalog.=) 'dataflow' AND r.rolsuper, false) "
            "FROM (SELECT) one "
            "LEFT JOIN pg_catalog.pg_extension e ON e.extname OPERATOR(pg_catalog.=) 'pg_dataflow' "
            "LEFT JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace "
            "LEFT JOIN pg_catalog.pg_authid r ON r.oid OPERATOR(pg_catalog.=) n.nspowner");
        x.commit();
        bool was = present_;
        present_ = !rows.empty() && col(rows[0], 0) == "t";
        // A library that is not the installed SQL's waits, logging it once, until
        // ALTER EXTENSION ... UPDATE (or the matching package) ends the mismatch.
        std::string mismatch =
            present_ ? version_mismatch(version::library(), col(rows[0], 3), col(rows[0], 4)) : "";
        if (present_ && mismatch.empty() && col(rows[0], 5) != "t")
            mismatch = "schema dataflow in database \"" + col(rows[0], 4) +
                       "\" is not the extension's own or not owned by a superuser; the worker "
                       "calls nothing in it (docs/security.md)";
        if (!mismatch.empty()) present_ = false;
        has_schedule_ = present_ && col(rows[0], 1) == "t";
        has_prune_ = present_ && col(rows[0], 2) == "t";
        if (!mismatch.empty() && mismatch != mismatch_)
            pg::log(pg::Level::kWarning, "pg_dataflow worker: waiting: " + mismatch);
        if (present_ && !was)
            pg::log(pg::Level::kLog, "pg_dataflow worker: extension found, starting duties");
        else if (!present_ && was && mismatch.empty())
            pg::log(pg::Level::kLog, "pg_dataflow worker: extension absent, idling");
        mismatch_ = mismatch;
    } catch (const PgError& e) {
        present_ = false;
        warn("checking for the extension", e);
    }
    return present_;
}

bool Engine::pass(bool woken) {
    if (!cfg_.enabled || !check_extension()) {
        http_.abort_all();
        in_flight_.clear();
        busy_runs_.clear();
        busy_deliveries_.clear();
        group_in_flight_.clear();
        backlog_.clear();
        resends_.clear();
        locked_jobs_.clear();
        deployments_.clear();
        next_locked_retry_ = Clock::time_point::max();
        stop_results_.clear();
        next_stop_ = Clock::time_point::max();
        return false;
    }
    // Reaping first, each duty in its own transaction(s): one that waits for a lock
    // (until dataflow.worker_lock_timeout) or fails leaves the others running.
    periodic();
    hold_ambiguous();
    record_bounded();
    auto now = Clock::now();
    // New work (a wake-up), a due backoff, the naptime poll or the end of a locked
    // job's pause: claim everything.
    bool timed = woken || now >= next_due_ || now >= next_locked_retry_ ||
                 now >= last_claim_ + std::chrono::milliseconds(cfg_.naptime_ms);
    // A refill claims only where finished requests freed slots, or work was left over:
    // it needs neither the job list of the other kind nor the next due time.
    bool refill = refill_due();
    if (pg::debug_enabled())
        pg::log(pg::Level::kDebug, "pg_dataflow worker: pass: woken " + std::to_string(woken) +
                                       ", timed " + std::to_string(timed) + ", refill " +
                                       std::to_string(refill) + ", more deliveries " +
                                       std::to_string(more_deliveries_) + ", due changed " +
                                       std::to_string(due_changed_) + ", in flight " +
                                       std::to_string(http_.in_flight()) + ", next due in " +
                                       ms_until(next_due_) + " ms");
    if (timed || more_dispatch_ || (refill && recorded_dispatch_)) dispatch();
    if (now >= next_airflow_) {
        airflow();
        prefect();
    }
    // A cancel wakes the worker (woken): its engine is told at once.
    if (timed || now >= next_stop_) stops();
    if (timed || more_deliveries_ || (refill && recorded_delivery_)) deliver();
    if (timed || refill) recorded_ = recorded_dispatch_ = recorded_delivery_ = false;
    if (timed) last_claim_ = now;
    if (timed || due_changed_) {
        due_changed_ = false;
        next_due_ = Clock::time_point::max();
        try {
            Duty x("pg_dataflow: looking for due work", cfg_.worker_statement_timeout_ms);
            auto rows = spi_exec("SELECT dataflow._worker_next_due()");
            x.commit();
            long ms = rows.empty() ? -1 : col_long(rows[0], 0, -1);
            // Only future due times come back (rounded up): work due already but
            // not claimed is blocked behind an in-flight request or a concurrency
            // limit, and a finishing request triggers the next claim (recorded_).
            if (ms > 0) next_due_ = Clock::now() + std::chrono::milliseconds(ms);
            if (pg::debug_enabled())
                pg::log(pg::Level::kDebug,
                        "pg_dataflow worker: next due work in " + std::to_string(ms) + " ms");
        } catch (const PgError& e) {
            warn("looking for due work failed", e);
        }
    }
    start_resends();
    start_backlog();
    http_.drive();
    // Requests refused before or as they started (malformed URL or secret, the
    // address policy): sleep_ms() sees what they freed and the retries they scheduled.
    hold_ambiguous();
    record_bounded();
    return true;
}

void Engine::record_bounded() {
    {
        // record() opens at most one transaction; the timer bounds it as a whole.
        settings::TransactionTimer timer(cfg_.worker_statement_timeout_ms);
        record();
    }
    // The stop answers record() collected, in a transaction of their own.
    settings::TransactionTimer timer(cfg_.worker_statement_timeout_ms);
    record_stops();
}

void Engine::hold_ambiguous() {
    auto now = Clock::now();
    int64_t now_ms = unix_ms_now();
    struct Held {
        HttpResponse response;
        Pending pending;
    };
    std::vector<Held> held;
    for (HttpResponse& r : http_.take_finished_if([&](const HttpResponse& r) {
             auto it = in_flight_.find(r.tag);
             if (it == in_flight_.end()) return false;
             const Pending& p = it->second;
             if (p.kind == Pending::kAirflowTrigger)
                 return airflow_interpret_trigger(r, "").kind != Outcome::kPending &&
                        dispatch_ambiguous(r);
             if (p.kind == Pending::kPrefectCreate)
                 return prefect_interpret_create(r, p.id, p.job).kind == Outcome::kRetry &&
                        dispatch_ambiguous(r);
             if (p.kind != Pending::kHttpDispatch || !p.request) return false;
             if (p.resends > 0 && r.status == 409) return true;  // the engine has it: adopt
             if (interpret_http_dispatch(r).kind != Outcome::kRetry || !dispatch_ambiguous(r))
                 return false;
             if (p.resends >= kMaxResends) return false;
             // Resent only while the lease outlives the wait and the whole next attempt.
             auto wait = std::min<std::chrono::milliseconds>(
                 kResendFirst * (1 << std::min(p.resends, 5)), kResendMax);
             return now_ms + wait.count() + p.request->timeout_ms < p.deadline_ms;
         })) {
        auto it = in_flight_.find(r.tag);
        held.push_back(Held{std::move(r), std::move(it->second)});
        in_flight_.erase(it);
    }
    for (Held& h : held) {
        Pending& p = h.pending;
        group_done(p.group);
        redact(h.response, p);
        std::string why = response_error(h.response);
        if (p.kind == Pending::kAirflowTrigger) {
            // Unacknowledged in _dispatch: the follower triggers it again with the same
            // dag_run_id after poll_interval, and a 409 adopts the DAG run Airflow made.
            busy_runs_.erase(p.id);
            next_poll_[p.id] = now + std::chrono::milliseconds(cfg_.poll_interval_ms);
            pg::log(pg::Level::kLog, "pg_dataflow worker: run " + std::to_string(p.id) +
                                         ": Airflow trigger outcome unknown (" + why +
                                         "); triggering the same dag_run_id again");
            continue;
        }
        if (p.kind == Pending::kPrefectCreate) {
            // Unacknowledged in _dispatch: the follower creates it again with the same
            // idempotency key after poll_interval, and Prefect answers with the flow run
            // it made the first time.
            busy_runs_.erase(p.id);
            next_prefect_poll_[p.id] = now + std::chrono::milliseconds(cfg_.poll_interval_ms);
            pg::log(pg::Level::kLog, "pg_dataflow worker: run " + std::to_string(p.id) +
                                         ": Prefect create_flow_run outcome unknown (" + why +
                                         "); creating it again with the same idempotency key");
            continue;
        }
        if (h.response.status == 409) {
            busy_runs_.erase(p.id);  // accepted: the engine reports with the run's token
            pg::log(pg::Level::kLog, "pg_dataflow worker: run " + std::to_string(p.id) +
                                         ": the engine already has Idempotency-Key " +
                                         dispatch_idempotency_key(p.id) + " (409): adopted");
            continue;
        }
        auto wait = std::min<std::chrono::milliseconds>(
            kResendFirst * (1 << std::min(p.resends, 5)), kResendMax);
        pg::log(pg::Level::kLog, "pg_dataflow worker: run " + std::to_string(p.id) +
                                     ": outcome unknown (" + why + "); resending it in " +
                                     std::to_string(wait.count()) + " ms");
        ++p.resends;
        HttpRequest again = *p.request;
        resends_.emplace(now + wait, std::make_pair(std::move(again), std::move(p)));
    }
    if (!held.empty()) recorded_ = recorded_dispatch_ = true;  // slots were freed
}

void Engine::redact(HttpResponse& response, const Pending& p) {
    if (!p.redactor || p.redactor->empty()) return;
    response.body = p.redactor->apply(response.body);
    response.error = p.redactor->apply(response.error);
}

std::shared_ptr<const Redactor> Engine::redactor_for(const std::string& token,
                                                     const std::string& secret,
                                                     const std::string& secret_params) {
    auto r = std::make_shared<Redactor>();
    r->add(token);
    r->add(secret);
    r->add_json_leaves(secret_params);
    return r;
}

void Engine::start_resends() {
    auto now = Clock::now();
    while (!resends_.empty() && resends_.begin()->first <= now) {
        auto item = std::move(resends_.begin()->second);
        resends_.erase(resends_.begin());
        group_add(item.second.group);
        start(std::move(item.first), std::move(item.second));
    }
}

// Finished requests free slots; refill in batches of a quarter of the window (the
// part group_cap() keeps free, so a group at its cap cannot block the refill)
// rather than one claim transaction per completion.
bool Engine::refill_due() const {
    size_t batch = std::max<size_t>(1, http_.window() / 4);
    return recorded_ && (budget() >= batch || http_.in_flight() == 0);
}

long Engine::sleep_ms() const {
    // Work the next pass can do at once must not wait for a socket, a timer or
    // naptime: results recorded at the end of the pass (refusals) that call for a
    // refill or moved the next due time, and claims cut short with slots now free.
    if (present_ && cfg_.enabled && !record_failed_ &&
        (refill_due() || due_changed_ || ((more_dispatch_ || more_deliveries_) && budget() > 0)))
        return 0;
    long ms = cfg_.naptime_ms;
    long curl = http_.timeout_ms();
    if (curl >= 0 && curl < ms) ms = curl;
    if (present_) {
        Clock::time_point resend =
            resends_.empty() ? Clock::time_point::max() : resends_.begin()->first;
        auto until = std::min({next_reap_, next_airflow_, next_due_, next_locked_retry_, resend,
                               next_stop_}) -
                     Clock::now();
        long due = static_cast<long>(std::chrono::ceil<std::chrono::milliseconds>(until).count());
        if (due < ms) ms = due < 0 ? 0 : due;
    }
    return ms;
}

void Engine::periodic() {
    // Each in its own transaction and its own try: a reap that waits past the lock
    // timeout (or fails) does not keep the scheduler or the janitor from running.
    auto now = Clock::now();
    if (now >= next_reap_) {
        next_reap_ = now + kReapEvery;
        try {
            Duty x("pg_dataflow: reaping expired leases", cfg_.worker_statement_timeout_ms);
            spi_exec("SELECT dataflow.reap()");
            x.commit();
        } catch (const PgError& e) {
            warn("reaping failed", e);
            next_check_ = now;  // the extension may have been dropped
        }
    }
    if (has_schedule_ && now >= next_schedule_) {
        next_schedule_ = now + kScheduleEvery;
        try {
            Duty x("pg_dataflow: scheduling expected chunks", cfg_.worker_statement_timeout_ms);
            spi_exec("SELECT dataflow.schedule()");
            x.commit();
        } catch (const PgError& e) {
            warn("scheduling failed", e);
            next_check_ = now;
        }
    }
    if (now >= next_prune_) {
        next_prune_ = now + kPruneEvery;
        try {
            Duty x("pg_dataflow: pruning history", cfg_.worker_statement_timeout_ms);
            spi_exec("SELECT dataflow._worker_prune(pg_catalog.make_interval(secs => $1::integer))",
                     {std::to_string(cfg_.retention_s)});
            if (has_prune_)
                spi_exec("SELECT dataflow.prune(pg_catalog.make_interval(secs => $1::integer))",
                         {std::to_string(cfg_.retention_s)});
            x.commit();
        } catch (const PgError& e) {
            warn("pruning failed", e);
            next_check_ = now;
        }
    }
}

void Engine::start(HttpRequest request, Pending pending) {
    if (pending.kind == Pending::kDelivery) busy_deliveries_.insert(pending.id);
    if (pending.kind != Pending::kDelivery && pending.kind != Pending::kAirflowToken &&
        pending.kind != Pending::kPrefectResolve)
        busy_runs_.insert(pending.id);
    if (http_.free_slots() == 0) {
        backlog_.emplace_back(std::move(request), std::move(pending));
        return;
    }
    uint64_t tag = next_tag_++;
    request.tag = tag;
    std::string refused = http_.start(std::move(request));
    if (!refused.empty()) {
        HttpResponse r;
        r.tag = tag;
        r.error = "request not sent: " + refused;
        // The address policy or a malformed URL: the same on every attempt of a stop.
        if (pending.kind == Pending::kEngineStop) r.refused = true;
        start_failures_.emplace_back(std::move(r), std::move(pending));
        return;
    }
    in_flight_.emplace(tag, std::move(pending));
}

void Engine::start_backlog() {
    while (!backlog_.empty() && http_.free_slots() > 0) {
        auto item = std::move(backlog_.front());
        backlog_.pop_front();
        start(std::move(item.first), std::move(item.second));
    }
}

void Engine::dispatch() {
    more_dispatch_ = false;
    size_t room = budget();
    if (room == 0) {
        more_dispatch_ = true;
        return;
    }
    struct Send {
        HttpRequest request;
        Pending pending;
        AirflowConnection conn;
        bool airflow;
    };
    std::vector<Send> sends;
    auto now = Clock::now();
    next_locked_retry_ = Clock::time_point::max();
    for (auto it = locked_jobs_.begin(); it != locked_jobs_.end();) {
        if (it->second <= now) {
            it = locked_jobs_.erase(it);
            continue;
        }
        next_locked_retry_ = std::min(next_locked_retry_, it->second);
        ++it;
    }
    std::vector<std::pair<std::string, std::string>> newly_locked;
    try {
        Duty x("pg_dataflow: leasing http/airflow work", cfg_.worker_statement_timeout_ms);
        auto jobs = spi_exec("SELECT * FROM dataflow._worker_jobs()");
        for (const Row& j : jobs) {
            if (room == 0) {
                more_dispatch_ = true;
                break;
            }
            if (locked_jobs_.count(col(j, 0))) continue;  // its lock is still held elsewhere
            bool airflow = col(j, 1) == "airflow";
            // Prefect runs are created by the follower (prefect(), later in this pass)
            // from their _dispatch row, with their chunk version's idempotency key.
            bool prefect = col(j, 1) == "prefect";
            std::string group = airflow || prefect ? "" : "j" + col(j, 0);
            size_t share = std::min<size_t>(room, 1000);
            bool capped = false;  // the job's share of the window, not the room, is the limit
            if (!airflow && !prefect) {
                size_t load = group_load(group);
                size_t left = load >= group_cap() ? 0 : group_cap() - load;
                if (left == 0) continue;  // its requests are still out; its next result refills
                capped = left < share;
                share = std::min(share, left);
            }
            auto tasks = spi_exec(
                "SELECT run_id, token, job, dataset, key, version, attempt, output_location, "
                "inputs::text, "
                "params::text, deadline::text, "
                "(pg_catalog.date_part('epoch', deadline) OPERATOR(pg_catalog.*) "
                "1000::float8)::bigint "
                "FROM dataflow._worker_claim($1, $2::integer)",
                {col(j, 0), std::to_string(share)});
            AirflowConnection c;
            c.base_url = col(j, 2);
            c.auth = col(j, 4);
            c.username = col(j, 5);
            c.secret = col(j, 6);
            c.api_version = static_cast<int>(col_long(j, 7, 1));
            c.connect_timeout_ms = col_long(j, 8, cfg_.http_connect_timeout_ms);
            c.timeout_ms = col_long(j, 9, cfg_.http_timeout_ms);
            c.max_body = static_cast<size_t>(cfg_.http_max_body);
            if (tasks.size() == 1 && !tasks[0][0]) {
                // The lease waited past the lock timeout: nothing of it was kept.
                newly_locked.emplace_back(col(j, 0), col(tasks[0], 4));
                continue;
            }
            lock_warned_.erase(col(j, 0));
            if (prefect) {
                if (!tasks.empty()) next_airflow_ = Clock::time_point{};  // create them now
                room -= std::min(room, tasks.size());
                if (tasks.size() >= share) more_dispatch_ = true;
                continue;
            }
            for (const Row& t : tasks) {
                Task task;
                task.run_id = col_long(t, 0, 0);
                task.token = col(t, 1);
                task.job = col(t, 2);
                task.dataset = col(t, 3);
                task.key = col(t, 4);
                task.version = col_long(t, 5, 0);
                task.attempt = static_cast<int>(col_long(t, 6, 0));
                task.output_location = col(t, 7);
                task.inputs_json = col(t, 8);
                task.params_json = col(t, 9);
                task.deadline = col(t, 10);
                task.callback_url = cfg_.callback_url;
                Send s{HttpRequest(),
                       Pending{Pending::kHttpDispatch, task.run_id, task.token, "", 0, group}, c,
                       airflow};
                s.pending.redactor = redactor_for(task.token, c.secret, col(j, 10));
                if (airflow) {
                    s.pending.kind = Pending::kAirflowTrigger;
                    std::string bearer = c.api_version >= 2 && c.auth == "bearer" ? c.secret : "";
                    s.request = airflow_trigger_request(c, col(j, 3), task, bearer);
                } else {
                    HttpRequest& r = s.request;
                    r.method = "POST";
                    r.url = c.base_url;
                    r.body = task_json(task);
                    r.headers = {{"Content-Type", "application/json"},
                                 {"Accept", "application/json"}};
                    if (c.auth == "basic") {
                        r.basic_auth = true;
                        r.username = c.username;
                        r.password = c.secret;
                    } else if (c.auth == "bearer") {
                        r.headers.push_back({"Authorization", "Bearer " + c.secret});
                    }
                    // The same on every send of this run: an engine that took an earlier
                    // send whose answer was lost answers 409 and is adopted.
                    r.headers.push_back({"Idempotency-Key", dispatch_idempotency_key(task.run_id)});
                    r.connect_timeout_ms = c.connect_timeout_ms;
                    r.timeout_ms = c.timeout_ms;
                    r.max_body = c.max_body;
                    s.pending.request = std::make_shared<const HttpRequest>(r);
                    s.pending.deadline_ms = col_long(t, 11, 0);
                }
                sends.push_back(std::move(s));
                --room;
            }
            // It got all it asked for, so it may have more due: claim again as slots free.
            if (tasks.size() >= share && !capped) more_dispatch_ = true;
        }
        x.commit();
    } catch (const PgError& e) {
        warn("leasing failed", e);
        next_check_ = Clock::now();
        return;
    }
    for (const auto& l : newly_locked) {
        auto until = Clock::now() + kLockedJobPause;
        locked_jobs_[l.first] = until;
        next_locked_retry_ = std::min(next_locked_retry_, until);
        bool first = lock_warned_.insert(l.first).second;
        pg::log(first ? pg::Level::kWarning : pg::Level::kLog,
                "pg_dataflow worker: job \"" + l.first + "\" skipped for " +
                    std::to_string(std::chrono::seconds(kLockedJobPause).count()) +
                    " s: its lease waited longer than dataflow.worker_lock_timeout for a lock "
                    "another session holds (" +
                    l.second + ")");
    }
    // Committed: the leases are durable, now the requests may go out.
    for (Send& s : sends) {
        group_add(s.pending.group);
        if (s.airflow)
            send_airflow(s.conn, std::move(s.request), std::move(s.pending));
        else
            start(std::move(s.request), std::move(s.pending));
    }
    // Send now: the rest of the pass (more claims, the due-time query) need not wait.
    if (!sends.empty()) http_.drive();
}

// Airflow 3 (api_version 2) with basic credentials needs a bearer token from
// /auth/token first; requests wait for it per connection.
void Engine::send_airflow(const AirflowConnection& c, HttpRequest request, Pending pending) {
    if (c.api_version < 2 || c.auth != "basic") {
        start(std::move(request), std::move(pending));
        return;
    }
    std::string key = c.base_url + "\n" + c.username;
    pending.conn = key;
    request.basic_auth = false;
    Bearer& b = bearers_[key];
    if (!b.token.empty() && Clock::now() < b.fetched + kBearerLifetime) {
        request.headers.push_back({"Authorization", "Bearer " + b.token});
        start(std::move(request), std::move(pending));
        return;
    }
    if (pending.kind != Pending::kDelivery) busy_runs_.insert(pending.id);
    b.waiting.emplace_back(std::move(request), std::move(pending));
    if (!b.fetching) {
        b.fetching = true;
        Pending token{Pending::kAirflowToken, 0, "", key, 0};
        token.redactor = redactor_for("", c.secret, "");
        start(airflow_token_request(c), std::move(token));
    }
}

void Engine::airflow() {
    next_airflow_ = Clock::now() + kAirflowScanEvery;
    std::vector<Row> runs;
    try {
        Duty x("pg_dataflow: listing airflow runs", cfg_.worker_statement_timeout_ms);
        runs = spi_exec("SELECT * FROM dataflow._worker_airflow_runs()");
        x.commit();
    } catch (const PgError& e) {
        warn("listing airflow runs failed", e);
        return;
    }
    auto now = Clock::now();
    std::set<int64_t> live;
    for (const Row& r : runs) {
        int64_t run_id = col_long(r, 0, 0);
        live.insert(run_id);
        if (busy_runs_.count(run_id) || budget() == 0) continue;
        auto due = next_poll_.find(run_id);
        if (due != next_poll_.end() && now < due->second) continue;
        AirflowConnection c;
        c.base_url = col(r, 6);
        c.auth = col(r, 7);
        c.username = col(r, 8);
        c.secret = col(r, 9);
        c.api_version = static_cast<int>(col_long(r, 10, 1));
        c.connect_timeout_ms = col_long(r, 11, cfg_.http_connect_timeout_ms);
        c.timeout_ms = col_long(r, 12, cfg_.http_timeout_ms);
        c.max_body = static_cast<size_t>(cfg_.http_max_body);
        std::string bearer = c.api_version >= 2 && c.auth == "bearer" ? c.secret : "";
        Pending p{Pending::kAirflowPoll, run_id, col(r, 1), "", 0};
        p.redactor = redactor_for(p.token, c.secret, col(r, 13));
        HttpRequest req;
        if (col(r, 3) != "t") {  // trigger never acknowledged (e.g. a restart): again; 409 adopts
            p.kind = Pending::kAirflowTrigger;
            req = airflow_trigger_request(c, col(r, 5), run_id,
                                          with_callback(col(r, 4), cfg_.callback_url, col(r, 1)),
                                          bearer);
        } else {
            req = airflow_poll_request(c, col(r, 5), col(r, 2), bearer);
        }
        next_poll_[run_id] = now + std::chrono::milliseconds(cfg_.poll_interval_ms);
        send_airflow(c, std::move(req), std::move(p));
    }
    for (auto it = next_poll_.begin(); it != next_poll_.end();)
        it = live.count(it->first) ? std::next(it) : next_poll_.erase(it);
}

void Engine::stops() {
    // A retry recorded in this pass is due later: keep it. One due now is claimed here.
    if (next_stop_ <= Clock::now()) next_stop_ = Clock::time_point::max();
    size_t room = budget();
    if (room == 0) {
        next_stop_ = Clock::now() + 1s;  // the window is full: once slots free up
        return;
    }
    size_t limit = std::min<size_t>(room, 100);
    std::vector<Row> rows;
    try {
        Duty x("pg_dataflow: claiming engine stops", cfg_.worker_statement_timeout_ms);
        // The runs with a request in flight (a trigger, a poll, a stop) are left out: a
        // stop never overtakes the trigger of its own DAG run.
        rows = spi_exec(
            "SELECT run_id, engine, token, job, dataset, key, version, reason, attempts, "
            "external_id, target, url, auth, username, secret, api_version, connect_timeout_ms, "
            "timeout_ms FROM dataflow._worker_stops($1::integer, $2::bigint[])",
            {std::to_string(limit), pg_array(busy_runs_)});
        x.commit();
    } catch (const PgError& e) {
        warn("claiming engine stops failed", e);
        next_check_ = Clock::now();
        return;
    }
    if (rows.size() >= limit) next_stop_ = Clock::now();
    for (const Row& r : rows) {
        int64_t run_id = col_long(r, 0, 0);
        std::string engine = col(r, 1), url = col(r, 11);
        Pending p{Pending::kEngineStop, run_id, col(r, 2), "", static_cast<int>(col_long(r, 8, 0))};
        p.engine = engine;
        p.secret = col(r, 14);
        p.redactor = redactor_for(p.token, p.secret, col(r, 18));
        long connect_ms = col_long(r, 16, cfg_.http_connect_timeout_ms);
        long timeout_ms = col_long(r, 17, cfg_.http_timeout_ms);
        size_t max_body = 64 * 1024;  // only the status and an excerpt are kept
        if (engine == "airflow" && !url.empty()) {
            AirflowConnection c;
            c.base_url = url;
            c.auth = col(r, 12);
            c.username = col(r, 13);
            c.secret = p.secret;
            c.api_version = static_cast<int>(col_long(r, 15, 1));
            c.connect_timeout_ms = connect_ms;
            c.timeout_ms = timeout_ms;
            c.max_body = max_body;
            std::string bearer = c.api_version >= 2 && c.auth == "bearer" ? c.secret : "";
            // The dag_run_id the trigger used (dataflow-<run id>, the run's external_id).
            send_airflow(c, airflow_stop_request(c, col(r, 10), col(r, 9), bearer), std::move(p));
        } else if (engine == "http" && !url.empty()) {
            StopNotice n;
            n.run_id = run_id;
            n.token = col(r, 2);
            n.job = col(r, 3);
            n.dataset = col(r, 4);
            n.key = col(r, 5);
            n.version = col_long(r, 6, 0);
            n.reason = col(r, 7);
            start(http_stop_request(url, n, connect_ms, timeout_ms, max_body), std::move(p));
        } else if (engine == "prefect" && !url.empty() && !col(r, 9).empty()) {
            PrefectConnection c;
            c.base_url = url;
            c.auth = col(r, 12);
            c.secret = p.secret;
            c.connect_timeout_ms = connect_ms;
            c.timeout_ms = timeout_ms;
            c.max_body = max_body;
            start(prefect_stop_request(c, col(r, 9)), std::move(p));
        } else if (engine == "prefect" && !url.empty() && col(r, 19) == "t") {
            // Its create_flow_run is unanswered (sent, or about to be): no flow run id
            // to stop yet. Retried; recording the create's answer makes it due again.
            HttpResponse none;
            none.error = "no flow run id yet: the run's create_flow_run is unanswered";
            busy_runs_.insert(run_id);
            start_failures_.emplace_back(std::move(none), std::move(p));
        } else {
            // Nothing to send it to (the job was dropped or changed since the cancel).
            HttpResponse none;
            none.refused = true;
            none.error = engine.empty() ? "the job no longer exists: no engine to tell"
                                        : "no address to stop a " + engine + " run at";
            busy_runs_.insert(run_id);
            start_failures_.emplace_back(std::move(none), std::move(p));
        }
    }
    if (!rows.empty()) http_.drive();
}

void Engine::deliver() {
    more_deliveries_ = false;
    size_t room = budget();
    if (room == 0) {
        more_deliveries_ = true;
        return;
    }
    // Subscriptions at their share of the window are not claimed from: a receiver
    // that hangs holds at most group_cap() slots, the rest serve the others.
    std::set<int64_t> full;
    for (const auto& g : group_in_flight_)
        if (g.first[0] == 's' && g.second >= group_cap())
            full.insert(std::atoll(g.first.c_str() + 1));
    std::vector<Row> rows;
    try {
        Duty x("pg_dataflow: claiming webhook deliveries", cfg_.worker_statement_timeout_ms);
        rows = spi_exec(
            "SELECT * FROM dataflow._worker_deliveries($1::integer, $2::bigint[], $3::integer[])",
            {std::to_string(room), pg_array(busy_deliveries_), pg_array(full)});
        x.commit();
    } catch (const PgError& e) {
        warn("claiming deliveries failed", e);
        return;
    }
    more_deliveries_ = rows.size() >= room;
    if (pg::debug_enabled())
        pg::log(pg::Level::kDebug, "pg_dataflow worker: claimed " + std::to_string(rows.size()) +
                                       " deliveries (room " + std::to_string(room) + ", " +
                                       std::to_string(busy_deliveries_.size()) + " busy, " +
                                       std::to_string(full.size()) + " subscriptions full)");
    for (const Row& d : rows) {
        int64_t id = col_long(d, 0, 0);
        std::string group = "s" + col(d, 7);
        // A claim is only a read: a delivery beyond its subscription's share stays
        // pending and is claimed again when a slot of that subscription frees.
        if (group_load(group) >= group_cap()) continue;
        int64_t ts = col_long(d, 2, 0);
        std::string body = col(d, 5);
        HttpRequest r;
        r.method = "POST";
        r.url = col(d, 3);
        r.body = body;
        r.connect_timeout_ms = cfg_.http_connect_timeout_ms;
        r.timeout_ms = cfg_.http_timeout_ms;
        r.max_body = 64 * 1024;  // only the status matters
        std::string sig = webhook_signature(col(d, 4), col(d, 1), ts, body);
        r.headers = {{"Content-Type", "application/json"},
                     {"webhook-id", col(d, 1)},
                     {"webhook-timestamp", std::to_string(ts)},
                     {"webhook-signature", sig}};
        Pending p{Pending::kDelivery, id, "", "", static_cast<int>(col_long(d, 6, 0)), group};
        group_add(group);
        if (sig.empty()) {
            HttpResponse bad;
            bad.error = "malformed subscription secret";
            busy_deliveries_.insert(id);
            start_failures_.emplace_back(std::move(bad), std::move(p));
            continue;
        }
        start(std::move(r), std::move(p));
    }
    if (!rows.empty()) http_.drive();  // send now, before the rest of the pass
}

}  // namespace dataflow::worker
