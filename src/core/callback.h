// The inbound callback listener's request logic (docs/worker.md, "Callback listener"):
// which call a path names, the bearer token, the JSON body turned into typed fields with
// the checks the SQL functions make (and their messages) where they can be made without
// PostgreSQL, the SQLSTATE -> HTTP status mapping, and the JSON answers. Postgres-free
// (must not include postgres.h): the listener's HTTP threads call it, and they may never
// call into PostgreSQL. Unit-tested in test/unit/test_callback.cpp.
#pragma once

#if defined(PG_VERSION_NUM) || defined(POSTGRES_H)
#error "src/core must stay Postgres-free"
#endif

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dataflow::callback {

enum class Action { kHeartbeat, kComplete, kFail };

// "/v1/runs/heartbeat" -> kHeartbeat, ".../complete", ".../fail"; anything else nullopt.
std::optional<Action> action_for_path(std::string_view path);
const char* action_name(Action action);

// Deepest nesting of arrays and objects accepted in a callback body (info included).
constexpr size_t kMaxBodyDepth = 64;
// Longest accepted Retry-After of a failed callback (as the worker's clamp: 10 hours).
constexpr int kMaxRetryAfter = 36000;

// The value of an Authorization header: the token of "Bearer <uuid>" (the scheme
// case-insensitive, surrounding blanks ignored), lower-cased; nullopt when the header
// is missing, another scheme, or not a UUID (no lease can have such a token).
std::optional<std::string> bearer_token(const char* header);

// A parsed callback body: the fields of dataflow.heartbeat / complete / fail.
struct Request {
    Action action = Action::kHeartbeat;
    std::optional<double> extend_by;      // heartbeat, seconds (> 0)
    std::optional<int64_t> row_count;     // complete (>= 0)
    std::optional<std::string> checksum;  // complete
    std::optional<std::string> location;  // complete
    std::optional<std::string> info;      // complete: a JSON object, as JSON text
    // complete with info: the body as sent, from which SQL takes info (jsonb keeps numbers
    // exactly as written; nlohmann would turn 123456789012345678901234567890 into a double)
    std::string body;
    std::optional<std::string> error;  // fail (required)
    bool retry = true;                 // fail
    std::optional<int> retry_after;    // fail, seconds in [1, kMaxRetryAfter]
};

// An answer before any SQL ran: an HTTP status, the SQLSTATE the SQL function would
// have raised for the same input, and its message.
struct Refusal {
    int http_status;
    std::string sqlstate;
    std::string message;
};

// Parses `body` for `action`. An empty body is an empty object. Returns the refusal
// (HTTP 400 with SQLSTATE 22P02 for malformed JSON, 22023/22004 for fields) or fills
// *out. Never throws (an allocation failure is a refusal with status 503).
std::optional<Refusal> parse_body(Action action, std::string_view body, Request* out) noexcept;

// The HTTP status for an error the SQL call raised: 42704 -> 401, 55000 -> 409,
// class 22 -> 400, 40001/40P01/55P03/57014/25006/57Pxx/42501/class 53/class 08 -> 503,
// else 500.
int http_status_for_sqlstate(std::string_view sqlstate);

// The answer bodies: {"error": message, "sqlstate": code} (code omitted when empty) and
// {"status": status} plus "deadline" when given. Valid JSON whatever the bytes given.
std::string error_json(std::string_view message, std::string_view sqlstate);
std::string status_json(std::string_view status, std::string_view deadline = {});

// "host:port", "[v6]:port" or ":port" (every address) -> host (may be empty) and port
// in 1..65535; false and *error otherwise.
bool parse_listen_address(std::string_view value, std::string* host, int* port, std::string* error);

// "" or a base URL engines are told to call back: http:// or https://, no query, no
// fragment, no CR/LF; false and *error otherwise.
bool valid_callback_url(std::string_view value, std::string* error);

}  // namespace dataflow::callback
