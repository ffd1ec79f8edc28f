// Retry backoff (see backoff.h) and its C ABI (backoff_c.h).
#include "backoff.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>

#include "backoff_c.h"

namespace dataflow {

std::optional<std::string> check_backoff(int attempt, double min_seconds, double max_seconds,
                                         double jitter) {
    char buf[160];
    if (attempt < 1)
        std::snprintf(buf, sizeof buf, "attempt must be at least 1 (got %d)", attempt);
    else if (!std::isfinite(min_seconds) || min_seconds < 0)
        std::snprintf(buf, sizeof buf, "min_seconds must be finite and >= 0 (got %g)", min_seconds);
    else if (!std::isfinite(max_seconds) || max_seconds < min_seconds)
        std::snprintf(buf, sizeof buf,
                      "max_seconds must be finite and >= min_seconds (got %g < %g)", max_seconds,
                      min_seconds);
    else if (!std::isfinite(jitter) || jitter < 0 || jitter > 1)
        std::snprintf(buf, sizeof buf, "jitter must be between 0 and 1 (got %g)", jitter);
    else
        return std::nullopt;
    return std::string(buf);
}

double backoff_cap(int attempt, double min_seconds, double max_seconds) noexcept {
    // Doubling is exact in binary floating point, and stops as soon as the cap is reached:
    // from the smallest positive double that takes ~2100 steps, so huge attempts are cheap.
    if (min_seconds <= 0) return 0;
    double cap = min_seconds;
    for (int i = 1; i < attempt && cap < max_seconds; ++i) cap *= 2;
    return std::min(cap, max_seconds);
}

double backoff_seconds(int attempt, double min_seconds, double max_seconds,
                       double jitter) noexcept {
    const double cap = backoff_cap(attempt, min_seconds, max_seconds);
    const double seconds = min_seconds + jitter * (cap - min_seconds);
    return std::clamp(seconds, min_seconds, cap);  // rounding must not leave [min, cap]
}

}  // namespace dataflow

extern "C" bool df_core_backoff(int32_t attempt, double min_seconds, double max_seconds,
                                double jitter, double* seconds, char* errbuf,
                                size_t errlen) noexcept {
    auto error = [&](const char* message) {
        if (errbuf != nullptr && errlen > 0) std::snprintf(errbuf, errlen, "%s", message);
        return false;
    };
    if (seconds == nullptr) return error("null pointer passed to df_core_backoff");
    try {
        if (auto bad = dataflow::check_backoff(attempt, min_seconds, max_seconds, jitter))
            return error(bad->c_str());
    } catch (const std::exception& e) {
        return error(e.what());
    } catch (...) {
        return error("unexpected exception in df_core_backoff");
    }
    *seconds = dataflow::backoff_seconds(attempt, min_seconds, max_seconds, jitter);
    if (errbuf != nullptr && errlen > 0) errbuf[0] = '\0';
    return true;
}
