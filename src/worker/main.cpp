// The background worker process: registration, signals, the main loop and its
// single wait on the latch, postmaster death and curl's sockets.
//
// Layout of the boundary: df_worker_main is the C entry point; it only does
// Postgres set-up and calls run(), which is noexcept and catches everything.
// Inside run(), Postgres is reached through pg_guarded() only.
// C++ and project headers first: Postgres macros must not leak into them, and
// src/core headers refuse to be included after postgres.h.
#include <vector>

#include "core/http_client.h"
#include "pg/guard.h"
#include "pg/settings.h"
#include "pg/wake.h"
#include "worker/engine.h"
#include "worker/worker.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wregister"
#pragma GCC diagnostic ignored "-Wunused-parameter"
extern "C" {
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/procsignal.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "pg/compat.h"

PGDLLEXPORT void df_worker_main(Datum arg);
PGDLLEXPORT void df_worker_database_wait(Datum arg);
}
#pragma GCC diagnostic pop

namespace dataflow::worker {
namespace {

using pg::pg_guarded;

// Handles config reload, ProcSignalBarrier and cancel requests between passes.
void handle_interrupts(Engine& engine) {
    bool reload = false;
    pg_guarded([&] {
        CHECK_FOR_INTERRUPTS();
        if (ProcSignalBarrierPending) ProcessProcSignalBarrier();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
            reload = true;
        }
    });
    if (reload) {
        settings::Snapshot cfg = settings::current();
        settings::apply_worker_session(cfg);
        engine.reconfigure(cfg);
    }
}

struct Ready {
    int fd;
    bool read, write;
};

// One wait: latch, postmaster death (exits), curl's sockets, a timeout.
// Returns whether the latch was set; `ready` gets the sockets with activity.
bool wait(const std::vector<WaitSocket>& sockets, long timeout_ms, std::vector<Ready>* ready) {
    int n = static_cast<int>(sockets.size());
    std::vector<WaitEvent> events(n + 2);
    const WaitSocket* socks = sockets.data();
    WaitEvent* ev = events.data();
    int fired = 0;
    pg_guarded([&] {
        WaitEventSet* set = df_create_wait_event_set(n + 2);
        AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, nullptr);
        AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, nullptr, nullptr);
        for (int i = 0; i < n; ++i) {
            uint32 mask = (socks[i].read ? WL_SOCKET_READABLE : 0) |
                          (socks[i].write ? WL_SOCKET_WRITEABLE : 0);
            AddWaitEventToSet(set, mask, socks[i].fd, nullptr, nullptr);
        }
        fired = WaitEventSetWait(set, timeout_ms, ev, n + 2, PG_WAIT_EXTENSION);
        FreeWaitEventSet(set);
    });
    bool latch = false;
    for (int i = 0; i < fired; ++i) {
        if (events[i].events & WL_LATCH_SET) latch = true;
        if (events[i].events & (WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE))
            ready->push_back(Ready{events[i].fd, (events[i].events & WL_SOCKET_READABLE) != 0,
                                   (events[i].events & WL_SOCKET_WRITEABLE) != 0});
    }
    if (latch) pg_guarded([] { ResetLatch(MyLatch); });
    return latch;
}

void loop() {
    Engine engine(settings::current());
    bool woken = true;
    while (!ShutdownRequestPending) {
        handle_interrupts(engine);
        if (ShutdownRequestPending) break;
        bool active = engine.pass(woken);
        pg::report_activity(active ? "pg_dataflow: waiting for work"
                                   : "pg_dataflow: idle (extension absent, disabled or "
                                     "not the library's version)",
                            true);
        long timeout = active ? engine.sleep_ms() : settings::current().naptime_ms;
        std::vector<Ready> ready;
        woken = wait(engine.http().sockets(), timeout, &ready);
        for (const Ready& r : ready) engine.http().socket_ready(r.fd, r.read, r.write);
        engine.http().drive();
    }
}

}  // namespace

void register_worker() {
    BackgroundWorker w;
    memset(&w, 0, sizeof w);
    w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    w.bgw_start_time = BgWorkerStart_RecoveryFinished;  // primaries only; starts after promotion
    w.bgw_restart_time = 10;
    strlcpy(w.bgw_library_name, "pg_dataflow", sizeof w.bgw_library_name);
    strlcpy(w.bgw_function_name, "df_worker_main", sizeof w.bgw_function_name);
    strlcpy(w.bgw_name, "pg_dataflow worker", sizeof w.bgw_name);
    strlcpy(w.bgw_type, "pg_dataflow worker", sizeof w.bgw_type);
    RegisterBackgroundWorker(&w);
}

}  // namespace dataflow::worker

namespace {
// Waiting for dataflow.database. A process connects to one database once, for good, and
// connecting to a missing one is a FATAL (and a restart every bgw_restart_time). So
// before it connects, the worker starts a short-lived helper, "pg_dataflow database
// check", connected to no database at all (the shared catalogs only: it can run nothing
// in any database), which reads pg_database and ends as soon as the database can be
// connected to; while it cannot, the helper says so once and looks again every naptime.
// The worker waits for the helper to end, then connects. Plain C style: nothing here
// holds a C++ object across a Postgres call.
enum DatabaseState { kMissing, kNoConnections, kInvalid, kReady };

DatabaseState database_state(const char* name) {
    DatabaseState state = kMissing;
    StartTransactionCommand();
    // The snapshot's side effect matters: it sets the horizon a heap page read needs.
    (void)GetTransactionSnapshot();
    Relation rel = table_open(DatabaseRelationId, AccessShareLock);
    TableScanDesc scan = table_beginscan_catalog(rel, 0, nullptr);
    HeapTuple tup;
    while ((tup = heap_getnext(scan, ForwardScanDirection)) != nullptr) {
        Form_pg_database db = reinterpret_cast<Form_pg_database>(GETSTRUCT(tup));
        if (strcmp(NameStr(db->datname), name) != 0) continue;
        state = database_is_invalid_form(db) ? kInvalid
                : db->datallowconn           ? kReady
                                             : kNoConnections;
        break;
    }
    table_endscan(scan);
    table_close(rel, AccessShareLock);
    CommitTransactionCommand();
    return state;
}

const char* database_state_text(DatabaseState state) {
    switch (state) {
        case kMissing: return "does not exist";
        case kNoConnections: return "does not allow connections (datallowconn is false)";
        case kInvalid: return "is invalid (a DROP DATABASE was interrupted)";
        case kReady: break;
    }
    return "can be connected to";
}

void stop_database_wait(int, Datum arg) {
    TerminateBackgroundWorker(reinterpret_cast<BackgroundWorkerHandle*>(DatumGetPointer(arg)));
}

// In the worker, before it connects: returns once `name` can be connected to (or the
// helper could not run: then the worker connects as before and fails if it must).
void wait_for_database(const char* name) {
    BackgroundWorker w;
    memset(&w, 0, sizeof w);
    w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    w.bgw_start_time = BgWorkerStart_RecoveryFinished;
    w.bgw_restart_time = BGW_NEVER_RESTART;
    strlcpy(w.bgw_library_name, "pg_dataflow", sizeof w.bgw_library_name);
    strlcpy(w.bgw_function_name, "df_worker_database_wait", sizeof w.bgw_function_name);
    strlcpy(w.bgw_name, "pg_dataflow database check", sizeof w.bgw_name);
    strlcpy(w.bgw_type, "pg_dataflow database check", sizeof w.bgw_type);
    strlcpy(w.bgw_extra, name, sizeof w.bgw_extra);
    w.bgw_notify_pid = MyProcPid;
    BackgroundWorkerHandle* handle = nullptr;
    if (!RegisterDynamicBackgroundWorker(&w, &handle)) {
        ereport(LOG, (errmsg("pg_dataflow worker: no background worker slot free to check that "
                             "database \"%s\" exists; connecting to it directly",
                             name),
                      errhint("Raise max_worker_processes.")));
        return;
    }
    // A SIGTERM ends the wait (a FATAL at CHECK_FOR_INTERRUPTS): end the helper too.
    before_shmem_exit(stop_database_wait, PointerGetDatum(handle));
    BgwHandleStatus status = WaitForBackgroundWorkerShutdown(handle);
    cancel_before_shmem_exit(stop_database_wait, PointerGetDatum(handle));
    if (status == BGWH_POSTMASTER_DIED) proc_exit(1);
}

// No exception leaves here; an unexpected one ends the process with exit code 1
// (the postmaster restarts the worker after bgw_restart_time).
int run() noexcept {
    try {
        dataflow::worker::loop();
        return 0;
    } catch (const std::exception& e) {
        dataflow::pg::log(dataflow::pg::Level::kWarning,
                          std::string("pg_dataflow worker: fatal: ") + e.what());
    } catch (...) {
        dataflow::pg::log(dataflow::pg::Level::kWarning,
                          "pg_dataflow worker: fatal: unknown exception");
    }
    return 1;
}
}  // namespace

void df_worker_main(Datum) {
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    // die(): SIGTERM ends even a query stuck on a lock, by a FATAL at the next
    // CHECK_FOR_INTERRUPTS. FATAL exits the process without a longjmp.
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    const char* database = GetConfigOption("dataflow.database", false, false);
    wait_for_database(database);
    BackgroundWorkerInitializeConnection(database, nullptr, 0);
    pgstat_report_appname("pg_dataflow worker");
    // The worker's statements are index walks with cached generic plans whose
    // estimated cost grows with the backlog (LIMIT $n is costed at a tenth of
    // it): past jit_above_cost every call would be JIT-compiled, which takes
    // far longer than running it. The SQL entry points do the same (SET jit).
    SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);
    // The worker is a superuser session: its own statements must not resolve a name,
    // an operator or a type through a schema someone else can create objects in (a role
    // with CREATE on public could otherwise plant an operator that runs as superuser).
    // ALTER ROLE/DATABASE ... SET search_path does not apply to it either.
    SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
    // What it sends engines (the task's deadline::text) is ISO whatever the database's
    // DateStyle or IntervalStyle (TimeZone is left alone: the text carries its offset).
    SetConfigOption("DateStyle", "ISO", PGC_SUSET, PGC_S_OVERRIDE);
    SetConfigOption("IntervalStyle", "postgres", PGC_SUSET, PGC_S_OVERRIDE);
    // The extension's functions need READ COMMITTED (docs/internals.md, lock order),
    // whatever default_transaction_isolation the cluster sets.
    SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET, PGC_S_OVERRIDE);
    // Never wait without bound: lock_timeout for every lock the worker meets
    // (dataflow.worker_lock_timeout); its transactions are timed by the engine.
    dataflow::settings::apply_worker_session(dataflow::settings::current());
    dataflow::wake::attach();
    int code = run();
    // Exit 1 even after a clean loop end: the postmaster then restarts the
    // worker after bgw_restart_time (turn it off with dataflow.enabled instead).
    proc_exit(code == 0 ? 1 : code);
}

// The helper: connected to no database, it reads pg_database every naptime until the
// worker's database can be connected to, logging each state it finds once. It ends
// with the worker (or when the worker is gone) and on SIGTERM.
void df_worker_database_wait(Datum) {
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnection(nullptr, nullptr, 0);
    pgstat_report_appname("pg_dataflow database check");
    char name[BGW_EXTRALEN];
    strlcpy(name, MyBgworkerEntry->bgw_extra, sizeof name);
    pid_t worker = MyBgworkerEntry->bgw_notify_pid;
    bool waited = false;
    DatabaseState logged = kReady;
    for (;;) {
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }
        DatabaseState state = database_state(name);
        if (state == kReady) break;
        if (state != logged) {
            ereport(
                LOG,
                (errmsg("pg_dataflow worker: waiting for database \"%s\" (dataflow.database): "
                        "it %s; the worker starts once it can connect",
                        name, database_state_text(state)),
                 errhint("Create it (CREATE DATABASE, then CREATE EXTENSION pg_dataflow in it), "
                         "or set dataflow.database and restart the server.")));
            char activity[200];
            snprintf(activity, sizeof activity, "pg_dataflow: waiting for database \"%s\"", name);
            pgstat_report_activity(STATE_IDLE, activity);
            logged = state;
            waited = true;
        }
        if (worker <= 0 || (kill(worker, 0) != 0 && errno == ESRCH)) proc_exit(0);
        long naptime = 1000;
        try {
            naptime = dataflow::settings::current().naptime_ms;
        } catch (...) {  // no exception may reach a Postgres frame (bad_alloc at most)
        }
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, naptime,
                        PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
    if (waited)
        ereport(LOG, (errmsg("pg_dataflow worker: database \"%s\" can be connected to now; "
                             "connecting",
                             name)));
    proc_exit(0);
}
