// The differences between the PostgreSQL majors pg_dataflow builds against (15, 17, 18),
// in one place: every PG_VERSION_NUM test of src/pg and src/worker is here, and the
// other files call these names instead. Include it after postgres.h (and inside the
// extern "C" block of the Postgres headers, like them).
//
//   DF_PG_MODULE_MAGIC         PG_MODULE_MAGIC; 18: PG_MODULE_MAGIC_EXT with the name and
//                              version (pg_get_loaded_modules() shows them)
//   df_my_procno()             this process's index in ProcGlobal->allProcs
//                              (15: MyProc->pgprocno; 17 removed the field: MyProcNumber)
//   df_create_wait_event_set(n)  a WaitEventSet the caller frees (FreeWaitEventSet)
//                              (15: allocated in a memory context; 17: tracked by a
//                              ResourceOwner, none here: freed by the caller as before)
//   VARDATA_ANY and friends    postgres.h until 15; 16 moved them to varatt.h
//   df_index_beginscan(...)    index_beginscan without instrumentation (18 added an
//                              IndexScanInstrumentation* argument)
// Not version-guarded, because one spelling works everywhere: [[noreturn]] instead of
// pg_attribute_noreturn() (18 removed it for pg_noreturn).
#pragma once

#ifndef PG_VERSION_NUM
#error "include postgres.h before pg/compat.h"
#endif

// 16 takes the 15 branches (its APIs here are 15's) but is not tested: no suite reachable
// here ships it. The SQL refuses servers older than 15.4 (src/sql/90_security.sql).

#include "access/genam.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/memutils.h"
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif
#if PG_VERSION_NUM >= 170000
#include "storage/procnumber.h"
#endif

#ifndef DF_EXTVERSION
#error "DF_EXTVERSION is defined by the Makefile (PG_CPPFLAGS)"
#endif

#if PG_VERSION_NUM >= 180000
#define DF_PG_MODULE_MAGIC PG_MODULE_MAGIC_EXT(.name = "pg_dataflow", .version = DF_EXTVERSION)
#else
#define DF_PG_MODULE_MAGIC PG_MODULE_MAGIC
#endif

static inline int df_my_procno(void) {
#if PG_VERSION_NUM >= 170000
    return MyProcNumber;
#else
    return MyProc->pgprocno;
#endif
}

static inline WaitEventSet* df_create_wait_event_set(int nevents) {
#if PG_VERSION_NUM >= 170000
    return CreateWaitEventSet(NULL, nevents);
#else
    return CreateWaitEventSet(CurrentMemoryContext, nevents);
#endif
}

static inline IndexScanDesc df_index_beginscan(Relation heap, Relation index, Snapshot snapshot,
                                               int nkeys, int norderbys) {
#if PG_VERSION_NUM >= 180000
    return index_beginscan(heap, index, snapshot, NULL, nkeys, norderbys);
#else
    return index_beginscan(heap, index, snapshot, nkeys, norderbys);
#endif
}
