// Prefect 2/3 server REST API for `prefect` jobs (docs/engines.md, "Prefect"): target
// parsing, the requests the worker sends (deployment by name, create_flow_run, read
// flow run) and what their answers mean for the run, with the flow run state mapping.
// Pure functions on strings and nlohmann::json: unit-tested, Postgres-free
// (must not include postgres.h).
#pragma once

#if defined(PG_VERSION_NUM) || defined(POSTGRES_H)
#error "src/core must stay Postgres-free"
#endif

#include <cstdint>
#include <optional>
#include <string>

#include "core/dispatch.h"
#include "core/http_client.h"

namespace dataflow {

struct PrefectConnection {
    // The API URL as in PREFECT_API_URL: http://host:4200/api, or
    // https://api.prefect.cloud/api/accounts/A/workspaces/W (trailing slashes ignored).
    std::string base_url;
    std::string auth = "none";  // none | bearer (the API key)
    std::string secret;
    long connect_timeout_ms = 5000, timeout_ms = 30000;
    size_t max_body = 1 << 20;
};

// A job's target: a deployment id (a UUID, kept lower-case) or "flow-name/deployment-name".
struct PrefectTarget {
    std::string deployment_id;     // set for the id form
    std::string flow, deployment;  // set for the name form
    bool by_name() const { return deployment_id.empty(); }
};

// Whether s is a UUID in its 8-4-4-4-12 hex form (either case).
bool prefect_is_uuid(const std::string& s);
// The target's form, or nullopt (then *error says why): exactly one "/" between two
// non-empty names, neither with a control character, "%", "&", "<" or ">" (Prefect
// refuses those in names), or a UUID.
std::optional<PrefectTarget> prefect_parse_target(const std::string& target, std::string* error);

// The idempotency key of a run's flow run:
// "dataflow-<install id>-<chunk id>-v<version>-r<run id>". Prefect keeps keys unique
// per deployment, whoever sends them: the install id (dataflow.install, a UUID made by
// CREATE EXTENSION) keeps two installs sharing a Prefect apart, and the run id gives
// every attempt a flow run of its own (a resend after an ambiguous create adopts the
// one Prefect made; a later attempt never adopts an earlier attempt's, which may have
// failed already).
std::string prefect_idempotency_key(const std::string& install_id, int64_t chunk_id,
                                    int64_t version, int64_t run_id);

// GET {base}/deployments/name/{flow}/{deployment} (segments url-escaped).
HttpRequest prefect_deployment_request(const PrefectConnection& c, const PrefectTarget& t);
// The deployment id from its answer, or "" with *error set; *not_found when Prefect
// says there is no such deployment (404), a failure of the run rather than a glitch.
std::string prefect_interpret_deployment(const HttpResponse& r, const std::string& target,
                                         bool* not_found, std::string* error);

// The flow run's parameters: the fields of the task document's params object at the top
// level (the deployment's own parameters), plus "dataflow" holding the whole task
// document (run, token, inputs, output location, callback): it replaces a params
// field of that name. JSON text; {"dataflow": ...} when params is no object.
std::string prefect_parameters(const std::string& task_doc_json);
// POST {base}/deployments/{id}/create_flow_run with parameters and idempotency_key.
HttpRequest prefect_create_request(const PrefectConnection& c, const std::string& deployment_id,
                                   const std::string& task_doc_json,
                                   const std::string& idempotency_key);
// 200/201 with a flow run id whose parameters name run `run_id` of job `job`
// (parameters.dataflow.run_id, .job) → kPending, external_id = the flow run id, info
// {"prefect": {"flow_run_id": id}} (200 is Prefect's answer for a key it has seen: the
// flow run is adopted); a flow run whose parameters name another run (another install
// used the same key) → kFailed, not adopted, retried while attempts remain (the next
// attempt has its own key); 404 (deployment gone) and 409/422 (parameters refused) →
// kFailed, retried while attempts remain; anything else → kRetry.
Outcome prefect_interpret_create(const HttpResponse& r, int64_t run_id, const std::string& job);

// GET {base}/flow_runs/{id}.
HttpRequest prefect_poll_request(const PrefectConnection& c, const std::string& flow_run_id);

// What a flow run state type means for the run.
enum class PrefectPhase {
    kActive,     // SCHEDULED, PENDING, RUNNING, PAUSED, CANCELLING: the run goes on
    kCompleted,  // COMPLETED: the run completes
    kFailed,     // FAILED, CRASHED: the run fails, retried while attempts remain
    kCancelled,  // CANCELLED: the run fails and the chunk is not retried
    kUnknown     // anything else: not acted on (the poll counts as failed)
};
PrefectPhase prefect_phase(const std::string& state_type);

// A flow run as GET /flow_runs/{id} returns it: kPending / kSucceeded / kFailed by
// prefect_phase (CANCELLED: retry = false), info {"prefect": {"flow_run_id", "state"
// (the type), "state_name"}}, the error from the state's message; kRetry for an
// answer without a known state type, whose id is not `polled_id` (or no UUID), or an
// HTTP error.
Outcome prefect_interpret_poll(const HttpResponse& r, const std::string& polled_id);

}  // namespace dataflow
