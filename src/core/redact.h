// Masking secrets in what engines answer (docs/security.md, "Engine answers"): the
// one redaction step every engine-derived string goes through before the worker keeps
// any of it (a run's error and info, an engine stop's answer, a log line). It runs on
// the whole answer, before any excerpt is cut, so a secret that straddles the cut
// leaves no prefix behind.
// Pure functions on strings: unit-tested, Postgres-free (must not include postgres.h).
#pragma once

#if defined(PG_VERSION_NUM) || defined(POSTGRES_H)
#error "src/core must stay Postgres-free"
#endif

#include <cstddef>
#include <string>
#include <vector>

namespace dataflow {

class Redactor {
public:
    // The replacement of every masked secret.
    static constexpr const char* kMask = "[redacted]";
    // A secret of at least this many bytes is masked wherever it occurs; a shorter
    // one (say "abc") only where it stands quoted on its own ('abc' or "abc"), since
    // masking every occurrence of a few letters would garble the answer (and any
    // JSON in it) without hiding anything.
    static constexpr size_t kMinLength = 6;

    // One secret (the run's token, the connection's secret); "" is ignored.
    void add(const std::string& secret);
    // Every string leaf of a JSON document (the job's secret_params), at any depth;
    // numbers, booleans and keys are not secrets. Text that is not JSON is ignored.
    void add_json_leaves(const std::string& json_text);
    bool empty() const { return secrets_.empty(); }

    // `text` with every secret, in its raw and in its JSON-escaped form (as it
    // appears inside a JSON string), replaced by kMask; longer secrets first, so
    // a secret containing another is masked whole.
    std::string apply(const std::string& text) const;

private:
    std::vector<std::string> secrets_;  // raw and JSON-escaped forms, longest first
};

}  // namespace dataflow
