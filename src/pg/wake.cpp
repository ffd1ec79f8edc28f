// Shared-memory latch slot, dataflow._wake() and its commit callback.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wregister"
#pragma GCC diagnostic ignored "-Wunused-parameter"
extern "C" {
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"

#include "pg/compat.h"

PGDLLEXPORT Datum df_wake(PG_FUNCTION_ARGS);
PG_FUNCTION_INFO_V1(df_wake);
}
#pragma GCC diagnostic pop

#include "pg/version.h"
#include "pg/wake.h"

namespace dataflow::wake {
namespace {

// pgprocno + 1 of the attached worker; 0 when none. A stale value can only
// cause a spurious SetLatch on whatever process reuses the slot: harmless.
struct WakeState {
    pg_atomic_uint32 procno_plus_one;
};

WakeState* state = nullptr;
shmem_request_hook_type prev_request_hook = nullptr;
shmem_startup_hook_type prev_startup_hook = nullptr;
bool callback_registered = false;
bool wake_at_commit = false;

void request_shmem() {
    if (prev_request_hook) prev_request_hook();
    RequestAddinShmemSpace(MAXALIGN(sizeof(WakeState)));
}

void startup_shmem() {
    if (prev_startup_hook) prev_startup_hook();
    bool found = false;
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    state = static_cast<WakeState*>(ShmemInitStruct("pg_dataflow wake", sizeof(WakeState), &found));
    if (!found) pg_atomic_init_u32(&state->procno_plus_one, 0);
    LWLockRelease(AddinShmemInitLock);
}

void detach(int, Datum) {
    if (state == nullptr || MyProc == nullptr) return;
    uint32 expected = static_cast<uint32>(df_my_procno()) + 1;
    pg_atomic_compare_exchange_u32(&state->procno_plus_one, &expected, 0);
}

// COMMIT sets the latch; ABORT and PREPARE forget the request (COMMIT
// PREPARED runs in another session: the worker's naptime covers it).
void on_xact(XactEvent event, void*) {
    if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT) {
        if (wake_at_commit) notify();
        wake_at_commit = false;
    } else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
               event == XACT_EVENT_PREPARE) {
        wake_at_commit = false;
    }
}

}  // namespace

void init() {
    prev_request_hook = shmem_request_hook;
    shmem_request_hook = request_shmem;
    prev_startup_hook = shmem_startup_hook;
    shmem_startup_hook = startup_shmem;
}

void attach() {
    if (state == nullptr) return;
    pg_atomic_write_u32(&state->procno_plus_one, static_cast<uint32>(df_my_procno()) + 1);
    on_shmem_exit(detach, 0);
}

void notify() {
    if (state == nullptr) return;
    uint32 v = pg_atomic_read_u32(&state->procno_plus_one);
    if (v == 0 || v > ProcGlobal->allProcCount) return;
    SetLatch(&ProcGlobal->allProcs[v - 1].procLatch);
}

void at_commit() {
    if (!callback_registered) {
        RegisterXactCallback(on_xact, nullptr);
        callback_registered = true;
    }
    wake_at_commit = true;
}

}  // namespace dataflow::wake

// dataflow._wake(): wake the background worker once this transaction commits.
Datum df_wake(PG_FUNCTION_ARGS) {
    dataflow::version::require_matching_sql();
    dataflow::wake::at_commit();
    PG_RETURN_VOID();
}
