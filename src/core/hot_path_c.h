/*
 * hot_path_c.h — the Postgres-free parts of lease/heartbeat/complete (src/pg/hot_path.cpp):
 * argument checks and the counter-shard keys. Plain C types, never throws; safe to include
 * after postgres.h. Unit-tested in test/unit/test_hot_path.cpp.
 */
#ifndef DATAFLOW_CORE_HOT_PATH_C_H
#define DATAFLOW_CORE_HOT_PATH_C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#define DF_HOT_NOEXCEPT noexcept
#else
#include <stdbool.h>
#define DF_HOT_NOEXCEPT
#endif

/*
 * Whether name[0..len) (UTF-8) is a valid worker name: 1-200 characters, none of them a
 * control character (U+0000-U+001F, U+007F-U+009F, U+2028, U+2029: the [[:cntrl:]] class of
 * a UTF-8 locale). Invalid UTF-8 is not a valid name (Postgres never passes any).
 */
bool df_core_worker_name_ok(const char* name, size_t len) DF_HOT_NOEXCEPT;

/* lease()'s max_chunks bounds. */
#define DF_LEASE_MAX_CHUNKS 1000

/*
 * The advisory-lock key of counter shard `shard` of (a, b) — dataset and backfill for
 * chunk_count (space 7410), dataset and epoch minute for done_minute (space 7411):
 * (a * 8191 + b * 64 + shard) mod (2^31 - 1), as dataflow._count_shard computes it.
 */
int32_t df_core_shard_key(int64_t a, int64_t b, int32_t shard) DF_HOT_NOEXCEPT;

/* The first shard a backend tries: its pid mod 64 (the shard count). */
#define DF_COUNTER_SHARDS 64
int32_t df_core_first_shard(int32_t pid) DF_HOT_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif /* DATAFLOW_CORE_HOT_PATH_C_H */
