// Prepared SPI statements kept for the life of the backend (the hot path, hot_path.cpp).
//
// A Stmt is a static table entry: SQL text and argument types. Its plan is made on first
// use (SPI_prepare_cursor with CURSOR_OPT_GENERIC_PLAN: one generic plan, never re-planned
// per call) and kept (SPI_keepplan). The plan cache revalidates a kept plan by itself: a
// schema change of any table it reads (ALTER EXTENSION UPDATE, a DROP and CREATE
// EXTENSION in the same session) or an ANALYZE of one invalidates it, and its next use
// parses and plans the SQL again against the tables as they are then. The SQL is
// schema-qualified and the functions that run it pin search_path, so a re-parse resolves
// the same names.
//
// Growth: a plan made while its tables were nearly empty (a worker's first lease on a
// fresh install) would scan them sequentially for as long as the session lives, if no
// ANALYZE came (autovacuum off for them, or not yet). So every 64th use compares the
// tables' current size with their size when the plan was made, and a plan one of whose
// tables has more than doubled (and grown by 16 pages) is made again: the planner sizes a table
// by its current number of pages, so the new plan fits the tables as they are. A table
// that grows from empty to N pages causes about log2(N / 16) re-plans. This replaces the
// planner settings (enable_seqscan = off, ...) the PL/pgSQL versions pinned.
//
// Boundary rule (src/pg/README.md): these are called from Postgres frames only (they may
// longjmp); no C++ object with a destructor may be alive in the callers.
#pragma once

extern "C" {
#include "postgres.h"

#include "executor/spi.h"
}

namespace dataflow::pg {

struct Stmt {
    const char* sql;
    int nargs;
    Oid types[12];
    SPIPlanPtr plan;  // NULL until first use
    uint32 uses;      // since the plan was made
    int nrels;        // the tables it reads (the first kMaxRels) and their pages then
    Oid rels[8];
    BlockNumber pages[8];
};

// Runs the statement (inside SPI_connect) with values/nulls (nulls: ' ' or 'n' per
// argument, NULL for none). Returns SPI_processed; the rows are in SPI_tuptable.
uint64 exec(Stmt& s, Datum* values, const char* nulls);

// The same, with accounted() true while it runs: the statement's chunk status changes and
// event rows are accounted for by the caller (the counters, the queue, the wake-up),
// so the counting triggers of dataflow.chunk and dataflow.event skip it (their WHEN).
uint64 exec_accounted(Stmt& s, Datum* values, const char* nulls);

// Whether the statement running now is one that exec_accounted runs.
bool accounted() noexcept;

// Column i (1-based) of row r of the last result.
Datum col(uint64 r, int i, bool* isnull);
inline Datum col(uint64 r, int i) {
    bool isnull;
    return col(r, i, &isnull);
}

}  // namespace dataflow::pg
