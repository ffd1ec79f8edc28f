// The worker's duties, above the guarded Postgres layer: reaper, scheduler,
// janitor, http/airflow dispatch and polling, webhook delivery. One pass()
// claims work in short transactions, starts HTTP requests only after the claim
// committed (and sends them at once, before the rest of the pass), and records
// finished requests in another short transaction.
// Plain C++; every Postgres call goes through pg/guard.h.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/dispatch.h"
#include "core/engine_stop.h"
#include "core/http_client.h"
#include "core/prefect.h"
#include "core/redact.h"
#include "pg/settings.h"

namespace dataflow::worker {

// Throws PgError (55DF1) when the installed extension is not this library's version
// (pg/version.h); for the worker's own transactions.
void require_matching_sql();

class Engine {
public:
    explicit Engine(const settings::Snapshot& cfg);
    void reconfigure(const settings::Snapshot& cfg);

    // One round of duties. Returns false when the extension is absent (or the
    // worker is disabled): the caller then just sleeps for naptime.
    bool pass(bool woken);
    // Longest sleep before the next pass is due (ms), given curl's timers: 0 when
    // the pass left work that can go now (results that free slots for a refill,
    // claims cut short by the window, retries whose due time is not known yet).
    long sleep_ms() const;
    HttpClient& http() { return http_; }

private:
    using Clock = std::chrono::steady_clock;
    struct Pending {
        enum Kind {
            kHttpDispatch,
            kAirflowTrigger,
            kAirflowPoll,
            kAirflowToken,
            kPrefectCreate,
            kPrefectPoll,
            kPrefectResolve,
            kDelivery,
            kEngineStop
        } kind;
        int64_t id = 0;  // run id, or delivery id
        std::string token;
        // Airflow connection key (base_url + user); Prefect deployment key (base_url + target)
        std::string conn;
        int attempts = 0;  // deliveries: attempts before this one
        // Fair-share group ("s<subscription id>" for deliveries, "j<job>" for http
        // dispatch; "" for none): no group holds more than group_cap() slots.
        std::string group;
        // http dispatch: the request as sent (resent as is after an ambiguous
        // failure), the lease deadline (Unix ms) and how often it was resent.
        std::shared_ptr<const HttpRequest> request;
        int64_t deadline_ms = 0;
        int resends = 0;
        // engine stops: the job's dispatch (airflow, http, ...) and the connection's
        // secret.
        std::string engine, secret;
        // Prefect: the run's job (a create answer is adopted only if its parameters
        // name this run of this job) and the flow run a poll asked for.
        std::string job, external_id;
        // The secrets masked in the answer (core/redact.h) before anything of it is
        // kept: the run's token, the connection's secret, the job's secret params.
        std::shared_ptr<const Redactor> redactor;
    };
    // The answer with the request's secrets masked: the one redaction step every
    // engine answer goes through before it is interpreted, logged or recorded.
    static void redact(HttpResponse& response, const Pending& p);
    static std::shared_ptr<const Redactor> redactor_for(const std::string& token,
                                                        const std::string& secret,
                                                        const std::string& secret_params);

    bool check_extension();
    void periodic();
    void dispatch();
    void airflow();
    // Prefect runs (engine_prefect.cpp): creates the flow run of a run not yet
    // acknowledged (after a deployment name is resolved), polls the others.
    void prefect();
    void send_prefect_create(const PrefectConnection& c, const std::string& target,
                             const std::string& task_doc, const std::string& idempotency_key,
                             Pending pending);
    void record_prefect(const HttpResponse& response, const Pending& p);
    void deliver();
    // Engine stops of cancelled runs (dataflow._worker_stops): claimed in a short
    // transaction, sent, each answer recorded by record_stops() in another.
    void stops();
    void record_stop(const HttpResponse& response, const Pending& p);
    void record_stops();
    void record();
    // record() under the worker's transaction timer.
    void record_bounded();
    // Takes the finished dispatch attempts whose failure is ambiguous (the engine may
    // have taken the request) out of the results before record() sees them: an http
    // run is resent as is (same token and Idempotency-Key) while its lease lasts, an
    // Airflow trigger is left unacknowledged for the follower to send again (same
    // dag_run_id). A resend answered 409 is adopted: the engine has the run.
    void hold_ambiguous();
    void start_resends();
    void record_one(const HttpResponse& response, const Pending& p);
    // Whether recorded results freed enough slots for a refill claim.
    bool refill_due() const;
    void start(HttpRequest request, Pending pending);
    void start_backlog();
    void send_airflow(const AirflowConnection& c, HttpRequest request, Pending pending);
    // Queues a run's result for record()'s one dataflow._worker_results call.
    void worker_record(int64_t run_id, const std::string& token, const Outcome& o,
                       const char* kind);
    struct RunResult {
        int64_t run_id;
        std::string token, kind;
        Outcome outcome;
    };
    std::vector<RunResult> run_results_;  // filled by worker_record() during record()
    struct StopResult {
        int64_t run_id;
        StopOutcome outcome;
    };
    std::vector<StopResult> stop_results_;  // filled by record_stop(), written by record_stops()
    // When stops() should claim again: a retry falls due, or a claim left work over.
    Clock::time_point next_stop_ = Clock::time_point::max();
    size_t budget() const;
    // Most requests one subscription or job may have in flight: three quarters of
    // the window, so receivers that hang (until dataflow.http_timeout) can never
    // take the slots the others need.
    size_t group_cap() const;
    size_t group_load(const std::string& group) const;
    void group_add(const std::string& group);
    void group_done(const std::string& group);

    settings::Snapshot cfg_;
    HttpClient http_;
    uint64_t next_tag_ = 1;
    std::map<uint64_t, Pending> in_flight_;
    std::set<int64_t> busy_runs_, busy_deliveries_;
    std::map<std::string, size_t> group_in_flight_;
    std::map<int64_t, Clock::time_point> next_poll_;
    struct Bearer {
        std::string token;
        Clock::time_point fetched;
        bool fetching = false;
        std::deque<std::pair<HttpRequest, Pending>> waiting;
    };
    std::map<std::string, Bearer> bearers_;
    // Deployment ids of name-form Prefect targets, per connection URL and target, and
    // the creates waiting for one (their requests get the id as the resolution arrives).
    struct PrefectWaiting {
        PrefectConnection conn;
        std::string task_doc, idempotency_key;
        Pending pending;
    };
    struct Deployment {
        std::string id;
        Clock::time_point fetched;
        bool fetching = false;
        std::deque<PrefectWaiting> waiting;
    };
    std::map<std::string, Deployment> deployments_;
    std::map<int64_t, Clock::time_point> next_prefect_poll_;
    std::deque<std::pair<HttpRequest, Pending>> backlog_;
    std::multimap<Clock::time_point, std::pair<HttpRequest, Pending>> resends_;
    // Jobs whose last claim waited past dataflow.worker_lock_timeout: not claimed
    // from until the time given (another session holds a lock their lease needs).
    std::map<std::string, Clock::time_point> locked_jobs_;
    Clock::time_point next_locked_retry_ = Clock::time_point::max();
    std::set<std::string> lock_warned_;  // warned once until a claim of the job goes through
    std::vector<std::pair<HttpResponse, Pending>> start_failures_;
    // more_*: a claim stopped at the free window with work left. recorded_*: results
    // recorded since the last claim (of http/airflow requests, of deliveries), so a
    // refill claims only where slots were freed. due_changed_: results scheduled
    // retries, so _worker_next_due must be asked again.
    bool more_dispatch_ = false, more_deliveries_ = false, recorded_ = false;
    bool recorded_dispatch_ = false, recorded_delivery_ = false, due_changed_ = false;
    // The last recording transaction failed: no immediate next pass (the results are
    // lost, the work is claimed again), or a persistent failure would spin.
    bool record_failed_ = false;
    Clock::time_point last_claim_{};
    Clock::time_point next_due_ = Clock::time_point::max();

    bool present_ = false;
    std::string mismatch_;  // the library/SQL version mismatch last logged, or empty
    bool has_schedule_ = false, has_prune_ = false;
    Clock::time_point next_check_{}, next_reap_{}, next_schedule_{}, next_prune_{}, next_airflow_{};
};

}  // namespace dataflow::worker
