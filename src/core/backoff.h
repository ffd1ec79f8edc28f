// Retry backoff: how long to wait before the next attempt after `attempt` failures.
//
//   cap     = min(max_seconds, min_seconds * 2^(attempt - 1))   (no overflow for any attempt)
//   seconds = min_seconds + jitter * (cap - min_seconds)         jitter in [0, 1]
//
// The caller draws jitter (uniform in [0, 1] for spread-out retries; 1 for the plain
// exponential cap; 0 for the floor), which keeps this function pure and testable. Used by
// the SQL function dataflow._backoff and by the background worker's webhook retries.
#pragma once

#if defined(PG_VERSION_NUM) || defined(POSTGRES_H)
#error "src/core must stay Postgres-free: include backoff_c.h from the Postgres layer"
#endif

#include <optional>
#include <string>

namespace dataflow {

// Why the arguments are unusable, or nullopt if they are fine: attempt >= 1; min, max and
// jitter finite; 0 <= min <= max; 0 <= jitter <= 1.
std::optional<std::string> check_backoff(int attempt, double min_seconds, double max_seconds,
                                         double jitter);

// The exponential cap min(max, min * 2^(attempt - 1)). Precondition: check_backoff passes.
double backoff_cap(int attempt, double min_seconds, double max_seconds) noexcept;

// The wait in seconds, always within [min_seconds, backoff_cap(...)].
// Precondition: check_backoff passes.
double backoff_seconds(int attempt, double min_seconds, double max_seconds, double jitter) noexcept;

}  // namespace dataflow
