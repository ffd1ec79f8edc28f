// SQL-callable key and backoff functions (dataflow._key_*, dataflow._backoff).
//
// Thin C trampolines over the C ABI of src/core (keys_c.h, backoff_c.h). Boundary rule
// (src/pg/README.md): no C++ object with a destructor is alive in these frames, and no C++
// exception can reach them (the core entry points are noexcept). Arguments are fetched
// into C strings, the core fills caller buffers and a plain error struct, and only after it
// has returned do we call anything that may ereport/longjmp.

// Postgres headers are C: in C++17 they trip -Wregister (s_lock.h, atomics) and
// -Wunused-parameter (inline functions in ilist.h, bufpage.h). Silence only those, only here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wregister"
#pragma GCC diagnostic ignored "-Wunused-parameter"
extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"
}
#pragma GCC diagnostic pop

#include "../core/backoff_c.h"
#include "../core/keys_c.h"
#include "pg/version.h"

namespace {

// SQLSTATE for a key error; the time kinds and int keep the codes Postgres itself uses
// for bad timestamps and integers.
int key_sqlstate(const df_key_error* err) {
    const bool time_kind = err->kind == DF_KIND_DATE || err->kind == DF_KIND_HOUR;
    switch (err->code) {
        case DF_KEY_MALFORMED:
            if (time_kind) return ERRCODE_INVALID_DATETIME_FORMAT;
            if (err->kind == DF_KIND_INT) return ERRCODE_INVALID_TEXT_REPRESENTATION;
            return ERRCODE_INVALID_PARAMETER_VALUE;
        case DF_KEY_OUT_OF_RANGE:
            if (time_kind) return ERRCODE_DATETIME_FIELD_OVERFLOW;
            if (err->kind == DF_KIND_INT) return ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE;
            return ERRCODE_INVALID_PARAMETER_VALUE;
        case DF_KEY_EMPTY:
        case DF_KEY_TOO_LONG:
        case DF_KEY_BAD_KIND:
        case DF_KEY_BAD_RANGE:
        case DF_KEY_NOT_ORDERED: return ERRCODE_INVALID_PARAMETER_VALUE;
        case DF_KEY_TOO_MANY: return ERRCODE_PROGRAM_LIMIT_EXCEEDED;
        case DF_KEY_BAD_MAPPING: return ERRCODE_INVALID_OBJECT_DEFINITION;
        case DF_KEY_OK:
        case DF_KEY_INTERNAL: break;
    }
    return ERRCODE_INTERNAL_ERROR;
}

[[noreturn]] void raise_key_error(const df_key_error* err) {
    // A bad key is the caller's mistake: it is reported like the public function's own
    // errors, without the CONTEXT lines of the helpers it passed through (the same rule as
    // dataflow._raise, messages_sql.cpp). An internal failure keeps its context.
    if (err->code != DF_KEY_INTERNAL) error_context_stack = nullptr;
    if (err->hint[0] != '\0')
        ereport(ERROR,
                (errcode(key_sqlstate(err)), errmsg("%s", err->message), errhint("%s", err->hint)));
    ereport(ERROR, (errcode(key_sqlstate(err)), errmsg("%s", err->message)));
    pg_unreachable();
}

df_key_kind kind_arg(FunctionCallInfo fcinfo, int argno) {
    char* name = text_to_cstring(PG_GETARG_TEXT_PP(argno));
    df_key_kind kind = DF_KIND_NONE;
    df_key_error err;
    if (df_core_key_kind(name, &kind, &err) != DF_KEY_OK) raise_key_error(&err);
    pfree(name);
    return kind;
}

char* text_arg(FunctionCallInfo fcinfo, int argno) {
    return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

// Fills the materialized result (key text, ord bigint) with the ordinals of a span.
void emit_span(FunctionCallInfo fcinfo, df_key_kind kind, int64 first, int64 count) {
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo* rsinfo = (ReturnSetInfo*)fcinfo->resultinfo;
    for (int64 i = 0; i < count; i++) {
        char buf[DF_KEY_BUF_SIZE];
        df_key_error err;
        CHECK_FOR_INTERRUPTS();
        if (df_core_key_text(kind, first + i, buf, sizeof buf, &err) != DF_KEY_OK)
            raise_key_error(&err);
        Datum values[2] = {CStringGetTextDatum(buf), Int64GetDatum(first + i)};
        bool nulls[2] = {false, false};
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
        pfree(DatumGetPointer(values[0]));  // the tuplestore made its own copy
    }
}

}  // namespace

extern "C" {

PG_FUNCTION_INFO_V1(df_key_canon);
PG_FUNCTION_INFO_V1(df_key_ord);
PG_FUNCTION_INFO_V1(df_key_text);
PG_FUNCTION_INFO_V1(df_key_range);
PG_FUNCTION_INFO_V1(df_key_window);
PG_FUNCTION_INFO_V1(df_key_children);
PG_FUNCTION_INFO_V1(df_key_parent);
PG_FUNCTION_INFO_V1(df_backoff);

// dataflow._key_canon(kind text, key text) RETURNS text
Datum df_key_canon(PG_FUNCTION_ARGS) {
    dataflow::version::require_matching_sql();
    df_key_kind kind = kind_arg(fcinfo, 0);
    char* key = text_arg(fcinfo, 1);
    char buf[DF_KEY_BUF_SIZE];
    df_key_error err;
    if (df_core_key_canon(kind, key, buf, sizeof buf, &err) != DF_KEY_OK) raise_key_error(&err);
    PG_RETURN_TEXT_P(cstring_to_text(buf));
}

// dataflow._key_ord(kind text, key text) RETURNS bigint; NULL for (valid) text keys.
Datum df_key_ord(PG_FUNCTION_ARGS) {
    dataflow::version::require_matching_sql();
    df_key_kind kind = kind_arg(fcinfo, 0);
    char* key = text_arg(fcinfo, 1);
    int64_t ord = 0;
    bool has_ord = false;
    df_key_error err;
    if (df_core_key_ord(kind, key, &ord, &has_ord, &err) != DF_KEY_OK) raise_key_error(&err);
    if (!has_ord) PG_RETURN_NULL();
    PG_RETURN_INT64(ord);
}

// dataflow._key_text(kind text, ord bigint) RETURNS text
Datum df_key_text(PG_FUNCTION_ARGS) {
    dataflow::version::require_matching_sql();
    df_key_kind kind = kind_arg(fcinfo, 0);
    int64 ord = PG_GETARG_INT64(1);
    char buf[DF_KEY_BUF_SIZE];
    df_key_error err;
    if (df_core_key_text(kind, ord, buf, sizeof buf, &err) != DF_KEY_OK) raise_key_error(&err);
    PG_RETURN_TEXT_P(cstring_to_text(buf));
}

// dataflow._key_range(kind, from_key, to_key, max_keys bigint) RETURNS TABLE(key, ord)
Datum df_key_range(PG_FUNCTION_ARGS) {
    dataflow::version::require_matching_sql();
    df_key_kind kind = kind_arg(fcinfo, 0);
    char* from = text_arg(fcinfo, 1);
    char* to = text_arg(fcinfo, 2);
    int64 max_keys = PG_GETARG_INT64(3);
    int64_t first = 0, count = 0;
    df_key_error err;
    if (df_core_key_range(kind, from, to, max_keys, &first, &count, &err) != DF_KEY_OK)
        raise_key_error(&err);
    if (kind != DF_KIND_TEXT) {
        emit_span(fcinfo, kind, first, count);
        return (Datum)0;
    }
    // A text range is its one key (from = to, already validated), with no ordinal.
    char buf[DF_KEY_BUF_SIZE];
    if (df_core_key_canon(kind, from, buf, sizeof buf, &err) != DF_KEY_OK) raise_key_error(&err);
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo* rsinfo = (ReturnSetInfo*)fcinfo->resultinfo;
    Datum values[2] = {CStringGetTextDatum(buf), (Datum)0};
    bool nulls[2] = {false, true};
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    return (Datum)0;
}

// dataflow._key_window(kind, key, lo int, hi int) RETURNS TABLE(key, ord)
Datum df_key_window(PG_FUNCTION_ARGS) {
    dataflow::version::require_matching_sql();
    df_key_kind kind = kind_arg(fcinfo, 0);
    char* key = text_arg(fcinfo, 1);
    int32 lo = PG_GETARG_INT32(2);
    int32 hi = PG_GETARG_INT32(3);
    int64_t first = 0, count = 0;
    df_key_error err;
    if (df_core_key_window(kind, key, lo, hi, &first, &count, &err) != DF_KEY_OK)
        raise_key_error(&err);
    emit_span(fcinfo, kind, first, count);
    return (Datum)0;
}

// dataflow._key_children(parent_kind, child_kind, key) RETURNS TABLE(key, ord)
Datum df_key_children(PG_FUNCTION_ARGS) {
    dataflow::version::require_matching_sql();
    df_key_kind parent_kind = kind_arg(fcinfo, 0);
    df_key_kind child_kind = kind_arg(fcinfo, 1);
    char* key = text_arg(fcinfo, 2);
    int64_t first = 0, count = 0;
    df_key_error err;
    if (df_core_key_children(parent_kind, child_kind, key, &first, &count, &err) != DF_KEY_OK)
        raise_key_error(&err);
    emit_span(fcinfo, child_kind, first, count);
    return (Datum)0;
}

// dataflow._key_parent(child_kind, parent_kind, key) RETURNS text
Datum df_key_parent(PG_FUNCTION_ARGS) {
    dataflow::version::require_matching_sql();
    df_key_kind child_kind = kind_arg(fcinfo, 0);
    df_key_kind parent_kind = kind_arg(fcinfo, 1);
    char* key = text_arg(fcinfo, 2);
    char buf[DF_KEY_BUF_SIZE];
    df_key_error err;
    if (df_core_key_parent(child_kind, parent_kind, key, buf, sizeof buf, &err) != DF_KEY_OK)
        raise_key_error(&err);
    PG_RETURN_TEXT_P(cstring_to_text(buf));
}

// dataflow._backoff(attempt int, min_seconds, max_seconds, jitter float8) RETURNS float8
Datum df_backoff(PG_FUNCTION_ARGS) {
    dataflow::version::require_matching_sql();
    int32 attempt = PG_GETARG_INT32(0);
    float8 min_seconds = PG_GETARG_FLOAT8(1);
    float8 max_seconds = PG_GETARG_FLOAT8(2);
    float8 jitter = PG_GETARG_FLOAT8(3);
    double seconds = 0;
    char message[DF_BACKOFF_ERROR_SIZE];
    if (!df_core_backoff(attempt, min_seconds, max_seconds, jitter, &seconds, message,
                         sizeof message))
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("invalid backoff: %s", message),
                 errhint("backoff needs attempt >= 1, 0 <= min_seconds <= max_seconds "
                         "and 0 <= jitter <= 1")));
    PG_RETURN_FLOAT8(seconds);
}

}  // extern "C"
