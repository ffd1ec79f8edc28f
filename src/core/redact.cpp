// Masking secrets in engine answers (redact.h).
#include "core/redact.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace dataflow {
namespace {
using json = nlohmann::json;

void collect(const json& j, Redactor* r) {
    if (j.is_string()) {
        r->add(j.get<std::string>());
    } else if (j.is_object() || j.is_array()) {
        for (const auto& v : j) collect(v, r);
    }
}

// Replaces every occurrence of `needle` in `text` (short: only quoted ones).
void mask(std::string& text, const std::string& needle) {
    if (needle.empty()) return;
    const std::string m = Redactor::kMask;
    bool short_one = needle.size() < Redactor::kMinLength;
    for (size_t at = text.find(needle); at != std::string::npos;) {
        if (short_one) {
            size_t end = at + needle.size();
            char before = at > 0 ? text[at - 1] : '\0';
            char after = end < text.size() ? text[end] : '\0';
            if (!((before == '"' || before == '\'') && after == before)) {
                at = text.find(needle, at + 1);
                continue;
            }
        }
        text.replace(at, needle.size(), m);
        at = text.find(needle, at + m.size());
    }
}
}  // namespace

void Redactor::add(const std::string& secret) {
    if (secret.empty()) return;
    std::string escaped = json(secret).dump(-1, ' ', false, json::error_handler_t::replace);
    escaped = escaped.substr(1, escaped.size() - 2);  // without its quotes
    for (const std::string* s : {&secret, static_cast<const std::string*>(&escaped)}) {
        if (std::find(secrets_.begin(), secrets_.end(), *s) != secrets_.end()) continue;
        secrets_.push_back(*s);
    }
    std::stable_sort(
        secrets_.begin(), secrets_.end(),
        [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

void Redactor::add_json_leaves(const std::string& json_text) {
    if (json_text.empty()) return;
    json j = json::parse(json_text, nullptr, false);
    if (!j.is_discarded()) collect(j, this);
}

std::string Redactor::apply(const std::string& text) const {
    std::string out = text;
    for (const std::string& s : secrets_) mask(out, s);
    return out;
}

}  // namespace dataflow
