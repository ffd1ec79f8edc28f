// Wake-on-commit: a tiny shared-memory slot naming the worker's PGPROC, and
// dataflow._wake(), which arranges for the worker's latch to be set when the
// calling transaction COMMITs (never on abort, once per transaction).
#pragma once

namespace dataflow::wake {

void init();    // from _PG_init while preloading: requests shared memory
void attach();  // in the worker: publish our latch (cleared at exit)
void notify();  // set the worker's latch now (no-op when none is attached)
// Set the worker's latch when this transaction commits (what dataflow._wake() does);
// from a Postgres frame only.
void at_commit();

}  // namespace dataflow::wake
