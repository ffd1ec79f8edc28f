// Library/SQL version check (version.h).
// Project headers first: Postgres macros must not leak into the C++ standard library.
#include "core/version.h"
#include "pg/version.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wregister"
#pragma GCC diagnostic ignored "-Wunused-parameter"
extern "C" {
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"

PGDLLEXPORT Datum df_library_version(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(df_library_version);
}
#pragma GCC diagnostic pop

#ifndef DF_EXTVERSION
#error "DF_EXTVERSION (the control file's default_version) must be defined by the build"
#endif

namespace dataflow::version {
namespace {

// 55DF1: class 55 (object not in prerequisite state), a code of the project's own: 55000
// already means "not the live lease" to workers (dataflow-run, the background worker),
// and a version mismatch must not be taken for a lost lease.
const int kVersionMismatch = MAKE_SQLSTATE('5', '5', 'D', 'F', '1');

bool checked_in_xact = false;
bool callback_registered = false;

void forget_at_xact_end(XactEvent, void*) {
    checked_in_xact = false;
}

// extversion of pg_dataflow in this database, palloc'd; NULL when not installed.
char* installed_version() {
    char* version = nullptr;
    Relation rel = table_open(ExtensionRelationId, AccessShareLock);
    ScanKeyData key;
    ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
                CStringGetDatum("pg_dataflow"));
    SysScanDesc scan = systable_beginscan(rel, ExtensionNameIndexId, true, nullptr, 1, &key);
    HeapTuple tuple = systable_getnext(scan);
    if (HeapTupleIsValid(tuple)) {
        bool isnull = true;
        Datum d = heap_getattr(tuple, Anum_pg_extension_extversion, RelationGetDescr(rel), &isnull);
        if (!isnull) version = text_to_cstring(DatumGetTextPP(d));
    }
    systable_endscan(scan);
    table_close(rel, AccessShareLock);
    return version;
}

}  // namespace

const char* library() noexcept {
    return DF_EXTVERSION;
}

void require_matching_sql() {
    if (checked_in_xact || creating_extension || IsBinaryUpgrade) return;
    if (!callback_registered) {
        RegisterXactCallback(forget_at_xact_end, nullptr);
        callback_registered = true;
    }
    char* installed = installed_version();
    if (installed == nullptr) return;  // not installed (yet): nothing to compare, nothing cached
    if (strcmp(installed, DF_EXTVERSION) == 0) {
        checked_in_xact = true;
        pfree(installed);
        return;
    }
    if (df_version_compare(DF_EXTVERSION, installed) > 0)
        ereport(ERROR,
                (errcode(kVersionMismatch),
                 errmsg("pg_dataflow library %s does not match extension %s installed in this "
                        "database",
                        DF_EXTVERSION, installed),
                 errdetail("The library was upgraded; the extension's SQL was not."),
                 errhint("Run ALTER EXTENSION pg_dataflow UPDATE in database \"%s\".",
                         get_database_name(MyDatabaseId))));
    ereport(ERROR, (errcode(kVersionMismatch),
                    errmsg("pg_dataflow library %s does not match extension %s installed in this "
                           "database",
                           DF_EXTVERSION, installed),
                    errdetail("The extension's SQL is newer than the library this server "
                              "runs."),
                    errhint("Restart PostgreSQL so that it loads the pg_dataflow %s library "
                            "(install that package first if it is not).",
                            installed)));
}

}  // namespace dataflow::version

// dataflow.library_version(): the version the loaded library was built for. Never checks
// the installed SQL (it is how an operator sees the two differ).
Datum df_library_version(PG_FUNCTION_ARGS) {
    PG_RETURN_TEXT_P(cstring_to_text(dataflow::version::library()));
}
