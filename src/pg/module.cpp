// Module entry point: PG_MODULE_MAGIC and _PG_init.
// Subsystems register their GUCs and background workers from here, each
// through one XInit() function declared in its own header (pgvector style).
extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void _PG_init(void);
}

void _PG_init(void) { MarkGUCPrefixReserved("dataflow"); }
