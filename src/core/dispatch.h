// Dispatch payloads and response interpretation for `http` and `airflow` jobs.
// Pure functions on strings and nlohmann::json: unit-tested, Postgres-free
// (must not include postgres.h).
#pragma once

#if defined(PG_VERSION_NUM) || defined(POSTGRES_H)
#error "src/core must stay Postgres-free"
#endif

#include <cstdint>
#include <optional>
#include <string>

#include "core/http_client.h"

namespace dataflow {

// One leased task as the worker read it from dataflow.lease(); inputs and
// params are JSON text as Postgres rendered them.
struct Task {
    int64_t run_id = 0;
    std::string token, job, dataset, key, output_location, inputs_json, params_json, deadline;
    int64_t version = 0;
    int attempt = 0;
    // dataflow.callback_url: when set, the document carries callback {url, token}.
    std::string callback_url;
};

// The task document POSTed to an http endpoint and used as an Airflow DAG
// run's conf: the fields of dataflow.task (src/sql/00_schema.sql) plus the token. Never throws: bad
// UTF-8 is replaced, unparsable inputs/params become null.
std::string task_json(const Task& task);

// A task document (JSON text) with "callback": {"url": callback_url without trailing
// slashes, "token": token} added, where engines report back over HTTP (the callback
// listener: POST url + /v1/runs/heartbeat, /complete, /fail with Authorization: Bearer
// token). Unchanged when callback_url is empty or the document is no JSON object.
std::string with_callback(const std::string& task_json, const std::string& callback_url,
                          const std::string& token);

// How a finished attempt ends.
struct Outcome {
    enum Kind { kSucceeded, kFailed, kAccepted, kPending, kRetry } kind = kRetry;
    std::optional<int64_t> row_count;
    std::string checksum, location;
    std::string info_json = "{}";
    std::string error;                     // for kFailed / kRetry
    bool retry = true;                     // for kFailed: may the chunk be retried?
    bool gone = false;                     // kFailed by a 410 Gone: the endpoint no longer exists
    std::optional<int64_t> retry_after_s;  // kRetry after a 429/503 with Retry-After
    std::string external_id;
};

// http dispatch: 202 (or a 2xx whose body says accepted/running/queued) is
// accepted; a 2xx body {"status":"succeeded", row_count, checksum, info,
// location} or {"status":"failed", error, retry} is terminal; 410 Gone is a
// terminal failure marked `gone` (the worker also pauses the job); anything
// else, including transport errors, is a retryable failure with the HTTP status
// and a body excerpt, and a 429/503 with Retry-After says when to retry.
Outcome interpret_http_dispatch(const HttpResponse& response);

// Whether a failed dispatch attempt (http POST or Airflow trigger) leaves open
// that the engine took the request: it went out and no answer says what became
// of it. Ambiguous: a timeout, reset or truncated answer after the request was
// written; 502/504 (a gateway lost the upstream's answer); another 5xx with an
// empty body (501 and 503 excepted: the server says it did not act); a 2xx whose
// body cannot be read (too large, no status). The worker retries those with the
// same request (same run, token, Idempotency-Key or dag_run_id), so an engine
// that took the first one can answer 409 and its run is adopted, not doubled.
// Definite: nothing was sent (refused connection or destination, DNS, connect
// timeout), or an answer that refuses or fails the work (3xx, 4xx, a 5xx with
// a body, a 2xx that says failed). Meant for attempts the interpretation calls
// a failure (kRetry); an http success or acceptance gives false.
bool dispatch_ambiguous(const HttpResponse& response);

// The Idempotency-Key the worker sends with an http run ("dataflow-<run_id>"),
// the same on every send of that run; also stored as the run's external_id.
std::string dispatch_idempotency_key(int64_t run_id);

// ---- Airflow stable REST API (v1: Airflow 2, basic auth; v2: Airflow 3, bearer token)
struct AirflowConnection {
    std::string base_url;       // e.g. http://airflow:8080 (no trailing /api)
    std::string auth = "none";  // none | basic | bearer
    std::string username, secret;
    int api_version = 1;
    long connect_timeout_ms = 5000, timeout_ms = 30000;
    size_t max_body = 1 << 20;
};

std::string airflow_dag_run_id(int64_t run_id);  // "dataflow-<run_id>"
std::string url_path_escape(const std::string& segment);

// POST {base}/auth/token with the username and password (Airflow 3).
HttpRequest airflow_token_request(const AirflowConnection& c);
// The access_token from a /auth/token response, or "" (then *error says why).
std::string airflow_parse_token(const HttpResponse& r, std::string* error);
// POST .../dags/{dag}/dagRuns with conf = task document. `bearer` is used for
// api_version 2 (or auth = bearer).
HttpRequest airflow_trigger_request(const AirflowConnection& c, const std::string& dag_id,
                                    const Task& task, const std::string& bearer);
// The same with the conf given as JSON text (a stored task document).
HttpRequest airflow_trigger_request(const AirflowConnection& c, const std::string& dag_id,
                                    int64_t run_id, const std::string& conf_json,
                                    const std::string& bearer);
// GET .../dags/{dag}/dagRuns/{dag_run_id}
HttpRequest airflow_poll_request(const AirflowConnection& c, const std::string& dag_id,
                                 const std::string& dag_run_id, const std::string& bearer);

// Trigger: 200/201 → kPending (external_id set); 409 → kPending (adopted: the
// run exists from an earlier attempt); 401/403 → kRetry with `auth` noted;
// anything else → kRetry.
Outcome airflow_interpret_trigger(const HttpResponse& r, const std::string& dag_run_id);
// Poll: state success → kSucceeded (info carries the dag run), failed → kFailed,
// queued/running/restarting/up_for_retry/… → kPending; errors → kRetry.
Outcome airflow_interpret_poll(const HttpResponse& r);

}  // namespace dataflow
