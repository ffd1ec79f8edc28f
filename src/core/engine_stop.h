// Stopping an engine's run after its chunk was cancelled (dataflow.cancel, pause_job
// with cancel_running): the request each engine takes and what its answer means.
// Pure functions on strings: unit-tested, Postgres-free (must not include postgres.h).
#pragma once

#if defined(PG_VERSION_NUM) || defined(POSTGRES_H)
#error "src/core must stay Postgres-free"
#endif

#include <cstdint>
#include <string>
#include <vector>

#include "core/dispatch.h"
#include "core/http_client.h"
#include "core/prefect.h"

namespace dataflow {

// What the engine is told about the run it should stop (the http body).
struct StopNotice {
    int64_t run_id = 0;
    std::string token, job, dataset, key, reason;
    int64_t version = 0;
};

// Airflow: PATCH .../dags/{dag}/dagRuns/{dag_run_id} {"state": "failed"}, with the
// auth of the connection (v1: basic or bearer; v2: the bearer token, `bearer`).
HttpRequest airflow_stop_request(const AirflowConnection& c, const std::string& dag_id,
                                 const std::string& dag_run_id, const std::string& bearer);

// http: POST the job's cancel_endpoint with the run's token as Authorization: Bearer
// and {run_id, job, dataset, key, version, reason}.
HttpRequest http_stop_request(const std::string& cancel_endpoint, const StopNotice& n,
                              long connect_timeout_ms, long timeout_ms, size_t max_body);

// PrefectConnection (core/prefect.h): base_url is the API URL (http://host:4200/api),
// auth none or bearer (the API key as secret, Prefect Cloud).
// POST {base}/flow_runs/{flow_run_id}/set_state
// {"state": {"type": "CANCELLING"}, "force": true}.
HttpRequest prefect_stop_request(const PrefectConnection& c, const std::string& flow_run_id);

// Attempts a stop request gets in all, and the wait before attempt n + 1 after n
// failed ones (1 s, doubling, at most 60 s; a Retry-After the engine sent wins, up to
// an hour).
constexpr int kStopMaxAttempts = 4;
int64_t stop_retry_delay_s(int attempts_done);

struct StopOutcome {
    // kStopped: the engine took the stop. kRefused: it answered and retrying cannot
    // change that (404: no such run; 409: it ended or conflicts; any other 4xx; the
    // address policy refused the URL; Prefect REJECT/ABORT). kRetry: transport error,
    // timeout, 5xx, 429 or Prefect WAIT: sent again after retry_in_s. kGaveUp: kRetry
    // on the last attempt.
    enum Kind { kStopped, kRefused, kRetry, kGaveUp } kind = kRetry;
    long status = 0;  // HTTP status, 0: no answer
    // "HTTP <status>" and the answer's status, state, title and detail fields (or why
    // there was no answer); never the raw body.
    std::string answer;
    int64_t retry_in_s = 0;
};
const char* stop_outcome_name(StopOutcome::Kind kind);  // stopped, refused, retry, gave_up

// `engine` is the job's dispatch (airflow, http, prefect); `attempts_done` the
// attempts before this one. The worker masks the secrets in `r` (core/redact.h) first.
StopOutcome interpret_stop(const std::string& engine, const HttpResponse& r, int attempts_done);

}  // namespace dataflow
