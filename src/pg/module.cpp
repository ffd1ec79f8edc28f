// Module entry point: PG_MODULE_MAGIC and _PG_init.
// Subsystems register their GUCs and background workers from here, each
// through one init function declared in its own header (pgvector style).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wregister"
#pragma GCC diagnostic ignored "-Wunused-parameter"
extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void _PG_init(void);
}
#pragma GCC diagnostic pop

#include "pg/settings.h"
#include "pg/wake.h"
#include "worker/worker.h"

// Nothing here throws: the init functions only call Postgres.
void _PG_init(void) {
    dataflow::settings::define();  // also reserves the dataflow.* prefix
    if (!process_shared_preload_libraries_in_progress) return;
    dataflow::wake::init();
    dataflow::worker::register_worker();
}
