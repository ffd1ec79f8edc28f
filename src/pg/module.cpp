// Module entry point: PG_MODULE_MAGIC and _PG_init.
// Subsystems register their GUCs and background workers from here, each
// through one init function declared in its own header (pgvector style).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wregister"
#pragma GCC diagnostic ignored "-Wunused-parameter"
extern "C" {
#include "postgres.h"

#include "commands/extension.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "pg/compat.h"

DF_PG_MODULE_MAGIC;

void _PG_init(void);
}
#pragma GCC diagnostic pop

#include "listener/listener.h"
#include "pg/settings.h"
#include "pg/wake.h"
#include "worker/worker.h"

// Nothing here throws: the init functions only call Postgres.
void _PG_init(void) {
    bool preloading = process_shared_preload_libraries_in_progress;
    dataflow::settings::define(preloading);  // also reserves the dataflow.* prefix
    if (!preloading) {
        // Loaded late (CREATE EXTENSION, or the first call of a C function in a session)
        // in a cluster that does not preload it: the SQL API works, wake-ups are no-ops,
        // and nothing runs the background duties. Said where the user looks: at CREATE
        // or ALTER EXTENSION; other sessions only at DEBUG1.
        ereport(creating_extension ? WARNING : DEBUG1,
                (errmsg("pg_dataflow is not in shared_preload_libraries: its background worker "
                        "is off"),
                 errdetail("The SQL API and dataflow-run work; dispatch to HTTP services and "
                           "Airflow, webhook delivery, and the periodic reap, schedule and prune "
                           "need the worker."),
                 errhint("Add pg_dataflow to shared_preload_libraries in postgresql.conf and "
                         "restart PostgreSQL.")));
        return;
    }
    dataflow::wake::init();
    dataflow::worker::register_worker();
    // The callback listener is a process of its own, so it serves while the dispatch
    // worker is busy or restarting (docs/worker.md, "Callback listener").
    const char* listen = GetConfigOption("dataflow.callback_listen", true, false);
    if (listen != nullptr && listen[0] != '\0') dataflow::listener::register_listener();
}
