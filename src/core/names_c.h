/*
 * names_c.h — C ABI of the name distance (src/core/names.h) for the Postgres layer.
 * Plain C types, never throws; safe to include after postgres.h.
 */
#ifndef DATAFLOW_CORE_NAMES_C_H
#define DATAFLOW_CORE_NAMES_C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#define DF_NAMES_NOEXCEPT noexcept
#else
#define DF_NAMES_NOEXCEPT
#endif

/*
 * Bounded, ASCII-case-insensitive Levenshtein distance of a[0..alen) and b[0..blen):
 * the distance, or cap + 1 when it is larger than cap (cap < 0 counts as 0).
 */
int32_t df_core_name_distance(const char* a, size_t alen, const char* b, size_t blen,
                              int32_t cap) DF_NAMES_NOEXCEPT;

/* max(2, len / 3): the farthest a suggested name may be from a typed name of len bytes. */
int32_t df_core_suggest_cap(size_t len) DF_NAMES_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif /* DATAFLOW_CORE_NAMES_C_H */
