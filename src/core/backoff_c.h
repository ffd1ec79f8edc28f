/*
 * backoff_c.h — C ABI of the retry backoff (src/core/backoff.h) for the Postgres layer.
 * Plain C types, never throws; safe to include after postgres.h.
 */
#ifndef DATAFLOW_CORE_BACKOFF_C_H
#define DATAFLOW_CORE_BACKOFF_C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#define DF_BACKOFF_NOEXCEPT noexcept
#else
#include <stdbool.h>
#define DF_BACKOFF_NOEXCEPT
#endif

#define DF_BACKOFF_ERROR_SIZE 256

/*
 * Seconds to wait before attempt `attempt + 1` after `attempt` failures (see backoff.h).
 * Returns true and sets *seconds, or returns false with a NUL-terminated reason in errbuf
 * (errlen bytes; DF_BACKOFF_ERROR_SIZE suffices) when an argument is invalid.
 */
bool df_core_backoff(int32_t attempt, double min_seconds, double max_seconds, double jitter,
                     double* seconds, char* errbuf, size_t errlen) DF_BACKOFF_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif /* DATAFLOW_CORE_BACKOFF_C_H */
