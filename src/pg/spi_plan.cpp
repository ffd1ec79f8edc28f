// Prepared SPI statements kept per backend, and the accounted() flag (spi_plan.h).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wregister"
#pragma GCC diagnostic ignored "-Wunused-parameter"
extern "C" {
#include "postgres.h"

#include "access/relation.h"
#include "catalog/pg_class.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "nodes/pg_list.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/plancache.h"
#include "utils/rel.h"

PGDLLEXPORT Datum df_accounted(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(df_accounted);
}
#pragma GCC diagnostic pop

#include "pg/spi_plan.h"

namespace dataflow::pg {
namespace {

// True only inside exec_accounted (reset by PG_FINALLY on error): a backend-local flag no
// SQL can set. Read by dataflow._accounted(), the WHEN of the counting triggers.
bool g_accounted = false;

constexpr int kMaxRels = 8;
constexpr uint32 kGrowthCheckEvery = 64;

BlockNumber pages_of(Oid relid) {
    Relation rel = try_relation_open(relid, AccessShareLock);
    if (rel == nullptr) return 0;
    const BlockNumber n =
        RELKIND_HAS_STORAGE(rel->rd_rel->relkind) ? RelationGetNumberOfBlocks(rel) : 0;
    relation_close(rel, AccessShareLock);
    return n;
}

// Notes the tables the plan reads (its plan sources' relationOids) and their sizes now.
void note_tables(Stmt& s) {
    s.nrels = 0;
    ListCell* lc;
    foreach (lc, SPI_plan_get_plan_sources(s.plan)) {
        auto* src = static_cast<CachedPlanSource*>(lfirst(lc));
        ListCell* rc;
        foreach (rc, src->relationOids) {
            if (s.nrels == kMaxRels) return;
            s.rels[s.nrels] = lfirst_oid(rc);
            s.pages[s.nrels] = pages_of(s.rels[s.nrels]);
            s.nrels++;
        }
    }
}

// Whether a table of the plan has more than doubled, and by 16 pages, since it was made.
bool outgrown(const Stmt& s) {
    for (int i = 0; i < s.nrels; i++)
        if (static_cast<double>(pages_of(s.rels[i])) > 2.0 * s.pages[i] + 16) return true;
    return false;
}

SPIPlanPtr plan_of(Stmt& s) {
    if (s.plan != nullptr && ++s.uses % kGrowthCheckEvery == 0 && outgrown(s)) {
        SPI_freeplan(s.plan);
        s.plan = nullptr;
    }
    if (s.plan == nullptr) {
        SPIPlanPtr p = SPI_prepare_cursor(s.sql, s.nargs, s.types, CURSOR_OPT_GENERIC_PLAN);
        if (p == nullptr)
            elog(ERROR, "pg_dataflow: could not prepare a statement: %s",
                 SPI_result_code_string(SPI_result));
        if (SPI_keepplan(p) != 0) elog(ERROR, "pg_dataflow: SPI_keepplan failed");
        s.plan = p;
        s.uses = 0;
        note_tables(s);
    }
    return s.plan;
}

}  // namespace

uint64 exec(Stmt& s, Datum* values, const char* nulls) {
    const int rc = SPI_execute_plan(plan_of(s), values, nulls, false, 0);
    if (rc < 0) elog(ERROR, "pg_dataflow: SPI_execute_plan failed: %s", SPI_result_code_string(rc));
    return SPI_processed;
}

uint64 exec_accounted(Stmt& s, Datum* values, const char* nulls) {
    SPIPlanPtr p = plan_of(s);
    volatile int rc = 0;
    PG_TRY();
    {
        g_accounted = true;
        rc = SPI_execute_plan(p, values, nulls, false, 0);
    }
    PG_FINALLY();
    { g_accounted = false; }
    PG_END_TRY();
    if (rc < 0) elog(ERROR, "pg_dataflow: SPI_execute_plan failed: %s", SPI_result_code_string(rc));
    return SPI_processed;
}

bool accounted() noexcept {
    return g_accounted;
}

Datum col(uint64 r, int i, bool* isnull) {
    return SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, i, isnull);
}

}  // namespace dataflow::pg

// dataflow._accounted() RETURNS boolean: whether the statement running now accounts for
// its own status changes (spi_plan.h). No version check: a trigger's WHEN calls it on
// every write of dataflow.chunk, and it depends on nothing the SQL defines.
Datum df_accounted(PG_FUNCTION_ARGS) {
    PG_RETURN_BOOL(dataflow::pg::accounted());
}
