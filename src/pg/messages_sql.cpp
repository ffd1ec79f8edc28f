// SQL-callable message helpers: dataflow._raise and dataflow._name_distance.
//
// _raise(sqlstate, message, detail, hint) raises an ERROR without the CONTEXT lines of the
// PL/pgSQL frames that called it: an error a user caused through an internal helper
// (dataflow._dataset_id called from register, say) reaches psql as ERROR + DETAIL + HINT,
// not with "PL/pgSQL function dataflow._dataset_id(text) line 9 at RAISE" and the frames
// above it. It clears error_context_stack before ereport: the context callbacks run in
// errfinish, so none is called. Every PG_TRY/PG_CATCH (and so a PL/pgSQL EXCEPTION block)
// restores the stack it saved, and the main loop resets it after an abort, so catching the
// error works as for any other and the frames above keep their own context.
//
// Neither calls version::require_matching_sql(): they depend on nothing the SQL defines,
// and a version check here would replace the user's error with the upgrade's.
//
// Boundary rule (src/pg/README.md): only palloc'd C strings and plain values live in these
// frames; the core (names_c.h) is noexcept.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wregister"
#pragma GCC diagnostic ignored "-Wunused-parameter"
extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "compat.h"
}
#pragma GCC diagnostic pop

#include "../core/names_c.h"

namespace {

bool sqlstate_ok(const char* s) {
    if (strlen(s) != 5) return false;
    for (int i = 0; i < 5; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z'))) return false;
    return true;
}

// Classes 00 (success), 01 (warning) and 02 (no data) are not errors; 0A000 and the rest are.
bool error_class(const char* s) {
    return !(s[0] == '0' && (s[1] == '0' || s[1] == '1' || s[1] == '2'));
}

char* opt_arg(FunctionCallInfo fcinfo, int argno) {
    return PG_ARGISNULL(argno) ? nullptr : text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

}  // namespace

extern "C" {

PG_FUNCTION_INFO_V1(df_raise);
PG_FUNCTION_INFO_V1(df_name_distance);

// dataflow._raise(sqlstate text, message text, detail text, hint text) RETURNS void
// DETAIL and HINT are left out when NULL (or empty). A NULL or malformed sqlstate or a
// NULL message is a bug in the caller: XX000, with the context kept.
Datum df_raise(PG_FUNCTION_ARGS) {
    char* state = opt_arg(fcinfo, 0);
    char* message = opt_arg(fcinfo, 1);
    char* detail = opt_arg(fcinfo, 2);
    char* hint = opt_arg(fcinfo, 3);
    if (state == nullptr || message == nullptr || !sqlstate_ok(state) || !error_class(state))
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                        errmsg("dataflow._raise needs a 5-character error SQLSTATE and a message"),
                        errdetail("sqlstate: %s, message: %s", state ? state : "NULL",
                                  message ? message : "NULL")));
    const int code = MAKE_SQLSTATE(state[0], state[1], state[2], state[3], state[4]);
    const bool has_detail = detail != nullptr && detail[0] != '\0';
    const bool has_hint = hint != nullptr && hint[0] != '\0';
    error_context_stack = nullptr;  // no CONTEXT lines (see the head of this file)
    ereport(ERROR, (errcode(code), errmsg_internal("%s", message),
                    has_detail ? errdetail_internal("%s", detail) : 0,
                    has_hint ? errhint("%s", hint) : 0));
    PG_RETURN_VOID();  // not reached
}

// dataflow._name_distance(a text, b text, cap integer) RETURNS integer: the
// ASCII-case-insensitive Levenshtein distance, or cap + 1 when it is larger than cap.
Datum df_name_distance(PG_FUNCTION_ARGS) {
    text* a = PG_GETARG_TEXT_PP(0);
    text* b = PG_GETARG_TEXT_PP(1);
    int32 cap = PG_GETARG_INT32(2);
    PG_RETURN_INT32(df_core_name_distance(VARDATA_ANY(a), VARSIZE_ANY_EXHDR(a), VARDATA_ANY(b),
                                          VARSIZE_ANY_EXHDR(b), cap));
}

}  // extern "C"
