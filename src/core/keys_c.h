/*
 * keys_c.h — the C ABI of the chunk-key module (src/core/keys.h), for the Postgres layer.
 *
 * Plain C types only: no C++ object crosses this boundary, and no function here throws
 * (each one catches everything and reports DF_KEY_INTERNAL). Results go into buffers the
 * caller provides; failures fill a df_key_error the caller raises with ereport *after* the
 * call has returned. Every function returns DF_KEY_OK (0) or the error code it stored in
 * *err. Kinds are resolved once with df_core_key_kind() and then passed as df_key_kind.
 *
 * Implemented in keys_c.cpp. This header is safe to include after postgres.h; it includes no
 * Postgres header itself.
 */
#ifndef DATAFLOW_CORE_KEYS_C_H
#define DATAFLOW_CORE_KEYS_C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define DF_NOEXCEPT noexcept
extern "C" {
#else
#include <stdbool.h>
#define DF_NOEXCEPT
#endif

/* Key kinds; DF_KIND_NONE marks "no kind" (an unknown kind name, or an error not tied to
 * a kind). Values match dataflow::keys::Kind. */
typedef enum df_key_kind {
    DF_KIND_NONE = 0,
    DF_KIND_DATE = 1,
    DF_KIND_HOUR = 2,
    DF_KIND_INT = 3,
    DF_KIND_TEXT = 4
} df_key_kind;

/* Error codes; values match dataflow::keys::Error. DF_KEY_INTERNAL is ABI-only: an
 * exception (out of memory) or a caller buffer that is too small. */
typedef enum df_key_code {
    DF_KEY_OK = 0,
    DF_KEY_MALFORMED = 1,    /* the text does not have the shape of a key of this kind */
    DF_KEY_OUT_OF_RANGE = 2, /* right shape, impossible value (Feb 30, hour 24, overflow) */
    DF_KEY_EMPTY = 3,        /* empty key */
    DF_KEY_TOO_LONG = 4,     /* text key longer than DF_KEY_MAX_TEXT_BYTES */
    DF_KEY_BAD_KIND = 5,     /* unknown kind name */
    DF_KEY_BAD_RANGE = 6,    /* from > to, lo > hi, max_keys < 1 */
    DF_KEY_TOO_MANY = 7,     /* a range or window with more keys than allowed */
    DF_KEY_BAD_MAPPING = 8,  /* a rollup between kinds that do not nest */
    DF_KEY_NOT_ORDERED = 9,  /* an ordinal, window or multi-key range of text keys */
    DF_KEY_INTERNAL = 100
} df_key_code;

#define DF_KEY_MAX_TEXT_BYTES 512
/* Large enough for any canonical key of any kind, with its terminating NUL. */
#define DF_KEY_BUF_SIZE (DF_KEY_MAX_TEXT_BYTES + 1)
#define DF_KEY_MAX_WINDOW_KEYS 100000
#define DF_KEY_ERROR_MESSAGE_SIZE 512
#define DF_KEY_ERROR_HINT_SIZE 256

typedef struct df_key_error {
    df_key_code code;
    df_key_kind kind; /* the kind whose key was rejected; DF_KIND_NONE if not tied to one */
    char message[DF_KEY_ERROR_MESSAGE_SIZE]; /* NUL-terminated; names the kind and the key */
    char hint[DF_KEY_ERROR_HINT_SIZE];       /* NUL-terminated; may be empty */
} df_key_error;

/* Resolves a kind name ("date", "hour", "int", "text"; exact, lower case). */
df_key_code df_core_key_kind(const char* name, df_key_kind* kind, df_key_error* err) DF_NOEXCEPT;

/* Canonical text of key into buf (DF_KEY_BUF_SIZE bytes always suffice). */
df_key_code df_core_key_canon(df_key_kind kind, const char* key, char* buf, size_t buflen,
                              df_key_error* err) DF_NOEXCEPT;

/* Ordinal of key. For text keys the key is still validated, and *has_ord is set to false. */
df_key_code df_core_key_ord(df_key_kind kind, const char* key, int64_t* ord, bool* has_ord,
                            df_key_error* err) DF_NOEXCEPT;

/* Canonical text of the key with ordinal ord (DF_KEY_NOT_ORDERED for text). */
df_key_code df_core_key_text(df_key_kind kind, int64_t ord, char* buf, size_t buflen,
                             df_key_error* err) DF_NOEXCEPT;

/* *cmp = -1, 0 or 1: by ordinal for ordered kinds, bytewise for text. */
df_key_code df_core_key_compare(df_key_kind kind, const char* a, const char* b, int* cmp,
                                df_key_error* err) DF_NOEXCEPT;

/*
 * The spans below describe ordinals first .. first + count - 1, all valid for the kind, so
 * the caller can loop calling df_core_key_text(kind, first + i, ...).
 */

/* Inclusive range from..to with at most max_keys keys. For text (only from = to allowed)
 * *first is 0 and *count is 1: the one key is df_core_key_canon(from). */
df_key_code df_core_key_range(df_key_kind kind, const char* from, const char* to, int64_t max_keys,
                              int64_t* first, int64_t* count, df_key_error* err) DF_NOEXCEPT;

/* Keys key+lo .. key+hi of an ordered kind (lo <= hi, at most DF_KEY_MAX_WINDOW_KEYS). */
df_key_code df_core_key_window(df_key_kind kind, const char* key, int32_t lo, int32_t hi,
                               int64_t* first, int64_t* count, df_key_error* err) DF_NOEXCEPT;

/* The child keys (of child_kind) inside the parent key; only date -> hour is supported. */
df_key_code df_core_key_children(df_key_kind parent_kind, df_key_kind child_kind, const char* key,
                                 int64_t* first, int64_t* count, df_key_error* err) DF_NOEXCEPT;

/* The parent key (of parent_kind) containing the child key; only hour -> date. */
df_key_code df_core_key_parent(df_key_kind child_kind, df_key_kind parent_kind, const char* key,
                               char* buf, size_t buflen, df_key_error* err) DF_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif /* DATAFLOW_CORE_KEYS_C_H */
