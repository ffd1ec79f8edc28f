// The callback listener's request logic (callback.h).
#include "core/callback.h"

#include <cctype>
#include <cmath>
#include <limits>
#include <new>
#include <nlohmann/json.hpp>

#include "core/json_text.h"

namespace dataflow::callback {
namespace {

using nlohmann::json;

Refusal bad(const char* sqlstate, std::string message) {
    return Refusal{400, sqlstate, std::move(message)};
}

bool is_hex(char c) {
    return std::isxdigit(static_cast<unsigned char>(c)) != 0;
}

// The text fields go into PostgreSQL text: a NUL cannot (the body check refuses \u0000
// already; this is for the NUL byte itself, which JSON cannot carry unescaped either).
std::optional<Refusal> text_field(const json& v, const char* name,
                                  std::optional<std::string>* out) {
    if (v.is_null()) return std::nullopt;
    if (!v.is_string()) return bad("22023", std::string(name) + " must be a string");
    *out = v.get<std::string>();
    return std::nullopt;
}

}  // namespace

std::optional<Action> action_for_path(std::string_view path) {
    if (path == "/v1/runs/heartbeat") return Action::kHeartbeat;
    if (path == "/v1/runs/complete") return Action::kComplete;
    if (path == "/v1/runs/fail") return Action::kFail;
    return std::nullopt;
}

const char* action_name(Action action) {
    switch (action) {
        case Action::kHeartbeat: return "heartbeat";
        case Action::kComplete: return "complete";
        case Action::kFail: return "fail";
    }
    return "?";
}

std::optional<std::string> bearer_token(const char* header) {
    if (header == nullptr) return std::nullopt;
    std::string_view h(header);
    while (!h.empty() && (h.front() == ' ' || h.front() == '\t')) h.remove_prefix(1);
    while (!h.empty() && (h.back() == ' ' || h.back() == '\t')) h.remove_suffix(1);
    constexpr std::string_view kScheme = "bearer";
    if (h.size() <= kScheme.size() + 1) return std::nullopt;
    for (size_t i = 0; i < kScheme.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(h[i])) != kScheme[i]) return std::nullopt;
    if (h[kScheme.size()] != ' ' && h[kScheme.size()] != '\t') return std::nullopt;
    h.remove_prefix(kScheme.size() + 1);
    while (!h.empty() && (h.front() == ' ' || h.front() == '\t')) h.remove_prefix(1);
    // 8-4-4-4-12 hex digits, or the same 32 digits without hyphens.
    std::string token;
    if (h.size() == 36) {
        for (size_t i = 0; i < 36; ++i) {
            bool dash = i == 8 || i == 13 || i == 18 || i == 23;
            if (dash ? h[i] != '-' : !is_hex(h[i])) return std::nullopt;
        }
    } else if (h.size() == 32) {
        for (char c : h)
            if (!is_hex(c)) return std::nullopt;
    } else {
        return std::nullopt;
    }
    token.reserve(h.size());
    for (char c : h)
        token.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    return token;
}

std::optional<Refusal> parse_body(Action action, std::string_view body, Request* out) noexcept {
    try {
        *out = Request{};
        out->action = action;
        std::string_view trimmed = body;
        while (!trimmed.empty() && std::isspace(static_cast<unsigned char>(trimmed.front())))
            trimmed.remove_prefix(1);
        if (trimmed.empty()) trimmed = "{}";
        // One pass over the bytes first: what PostgreSQL could not store (a NUL, bytes
        // that are not UTF-8, a \u0000 escape) and nesting beyond kMaxBodyDepth, so the
        // parser never sees 100,000 levels.
        if (auto why = jsonb_refusal(trimmed, kMaxBodyDepth))
            return bad("22P02", "body is not valid JSON for PostgreSQL: " + *why);
        json doc = json::parse(trimmed, nullptr, false);
        if (doc.is_discarded()) return bad("22P02", "body is not valid JSON");
        if (!doc.is_object()) return bad("22023", "body must be a JSON object");
        for (auto it = doc.begin(); it != doc.end(); ++it) {
            const std::string& k = it.key();
            const json& v = it.value();
            bool known = false;
            switch (action) {
                case Action::kHeartbeat: known = k == "extend_by"; break;
                case Action::kComplete:
                    known = k == "row_count" || k == "checksum" || k == "location" || k == "info";
                    break;
                case Action::kFail:
                    known = k == "error" || k == "retry" || k == "retry_after";
                    break;
            }
            if (!known) {
                std::string shown = k.size() > 64 ? k.substr(0, 64) + "..." : k;
                return bad("22023",
                           "unknown field " +
                               json(shown).dump(-1, ' ', false, json::error_handler_t::replace) +
                               " in a " + action_name(action) + " body");
            }
            if (k == "extend_by" && !v.is_null()) {
                if (!v.is_number()) return bad("22023", "extend_by must be a number of seconds");
                double s = v.get<double>();
                if (!(s > 0)) return bad("22023", "extend_by must be positive");
                if (!std::isfinite(s) || s > 10.0 * 365 * 24 * 3600)
                    return bad("22023", "extend_by must be at most 10 years");
                out->extend_by = s;
            } else if (k == "row_count" && !v.is_null()) {
                if (v.is_number_unsigned()) {
                    if (v.get<uint64_t>() >
                        static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
                        return bad("22003", "row_count is out of range for type bigint");
                    out->row_count = static_cast<int64_t>(v.get<uint64_t>());
                } else if (v.is_number_integer()) {
                    out->row_count = v.get<int64_t>();
                } else {
                    return bad("22023", "row_count must be an integer");
                }
                if (*out->row_count < 0) return bad("22023", "row_count must be >= 0");
            } else if (k == "checksum") {
                if (auto r = text_field(v, "checksum", &out->checksum)) return r;
            } else if (k == "location") {
                if (auto r = text_field(v, "location", &out->location)) return r;
            } else if (k == "info" && !v.is_null()) {
                if (!v.is_object()) return bad("22023", "info must be a JSON object");
                out->info = v.dump(-1, ' ', false, json::error_handler_t::replace);
                out->body = std::string(trimmed);
            } else if (k == "error") {
                if (auto r = text_field(v, "error", &out->error)) return r;
            } else if (k == "retry") {
                if (v.is_null()) return bad("22004", "error and retry must not be NULL");
                if (!v.is_boolean()) return bad("22023", "retry must be true or false");
                out->retry = v.get<bool>();
            } else if (k == "retry_after" && !v.is_null()) {
                if (!v.is_number_integer() && !v.is_number_unsigned())
                    return bad("22023", "retry_after must be an integer number of seconds");
                bool in_range = v.is_number_unsigned()
                                    ? v.get<uint64_t>() >= 1 && v.get<uint64_t>() <= kMaxRetryAfter
                                    : v.get<int64_t>() >= 1 && v.get<int64_t>() <= kMaxRetryAfter;
                if (!in_range)
                    return bad("22023", "retry_after must be between 1 and " +
                                            std::to_string(kMaxRetryAfter) + " seconds");
                out->retry_after = static_cast<int>(v.get<int64_t>());
            }
        }
        if (action == Action::kFail && !out->error)
            return bad("22004", "error and retry must not be NULL");
        if (action == Action::kFail && out->retry_after && !out->retry)
            return bad("22023", "retry_after needs retry true");
        return std::nullopt;
    } catch (const std::bad_alloc&) {
        return Refusal{503, "53200", "out of memory"};
    } catch (...) {
        return Refusal{400, "22P02", "body is not valid JSON"};
    }
}

int http_status_for_sqlstate(std::string_view s) {
    if (s.size() != 5) return 500;
    if (s == "42704") return 401;
    if (s == "55000") return 409;
    if (s.substr(0, 2) == "22") return 400;
    if (s == "40001" || s == "40P01" || s == "55P03" || s == "57014") return 503;
    // read-only (a standby, a promotion under way), the server shutting down or starting,
    // the role's rights withdrawn between two of the listener's checks: not now
    if (s == "25006" || s.substr(0, 3) == "57P" || s == "42501") return 503;
    if (s.substr(0, 2) == "53" || s.substr(0, 2) == "08") return 503;
    return 500;
}

std::string error_json(std::string_view message, std::string_view sqlstate) {
    json j = json::object();
    j["error"] = std::string(message);
    if (!sqlstate.empty()) j["sqlstate"] = std::string(sqlstate);
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string status_json(std::string_view status, std::string_view deadline) {
    json j = json::object();
    j["status"] = std::string(status);
    if (!deadline.empty()) j["deadline"] = std::string(deadline);
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

bool parse_listen_address(std::string_view value, std::string* host, int* port,
                          std::string* error) {
    std::string_view h, p;
    if (!value.empty() && value.front() == '[') {
        size_t close = value.find(']');
        if (close == std::string_view::npos || close + 1 >= value.size() ||
            value[close + 1] != ':') {
            *error = "expected [address]:port";
            return false;
        }
        h = value.substr(1, close - 1);
        p = value.substr(close + 2);
    } else {
        size_t colon = value.rfind(':');
        if (colon == std::string_view::npos) {
            *error = "expected host:port (a port is required)";
            return false;
        }
        h = value.substr(0, colon);
        p = value.substr(colon + 1);
        if (h.find(':') != std::string_view::npos) {
            *error = "an IPv6 address must be written in brackets: [::1]:port";
            return false;
        }
    }
    if (p.empty() || p.size() > 5) {
        *error = "the port must be a number from 1 to 65535";
        return false;
    }
    int n = 0;
    for (char c : p) {
        if (c < '0' || c > '9') {
            *error = "the port must be a number from 1 to 65535";
            return false;
        }
        n = n * 10 + (c - '0');
    }
    if (n < 1 || n > 65535) {
        *error = "the port must be a number from 1 to 65535";
        return false;
    }
    for (char c : h) {
        if (std::iscntrl(static_cast<unsigned char>(c)) || c == ' ' || c == '/') {
            *error = "the host contains a character not allowed in a host name";
            return false;
        }
    }
    *host = std::string(h);
    *port = n;
    return true;
}

bool valid_callback_url(std::string_view value, std::string* error) {
    if (value.empty()) return true;
    if (value.size() > 2000) {
        *error = "longer than 2000 characters";
        return false;
    }
    if (value.rfind("http://", 0) != 0 && value.rfind("https://", 0) != 0) {
        *error = "must start with http:// or https://";
        return false;
    }
    size_t scheme = value.find("://") + 3;
    if (scheme >= value.size() || value[scheme] == '/') {
        *error = "has no host";
        return false;
    }
    for (char c : value) {
        if (std::iscntrl(static_cast<unsigned char>(c)) || c == ' ' ||
            static_cast<unsigned char>(c) >= 0x80) {
            *error = "contains a blank, a control or a non-ASCII character";
            return false;
        }
        if (c == '?' || c == '#') {
            *error = "must not have a query or fragment (the listener's paths are appended)";
            return false;
        }
    }
    return true;
}

}  // namespace dataflow::callback
