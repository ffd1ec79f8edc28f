// PG_TRY guard, SPI wrapper and transaction scope for the worker's C++ code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wregister"
#pragma GCC diagnostic ignored "-Wunused-parameter"
extern "C" {
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
}
#pragma GCC diagnostic pop

#include "pg/guard.h"

namespace dataflow::pg {

bool run_guarded(void (*fn)(void*), void* arg, char* message, size_t message_size,
                 int* sqlerrcode) noexcept {
    MemoryContext oldcxt = CurrentMemoryContext;
    volatile bool ok = true;
    PG_TRY();
    { fn(arg); }
    PG_CATCH();
    {
        MemoryContextSwitchTo(oldcxt);
        ErrorData* edata = CopyErrorData();
        strlcpy(message, edata->message ? edata->message : "unknown error", message_size);
        *sqlerrcode = edata->sqlerrcode;
        FreeErrorData(edata);
        FlushErrorState();
        ok = false;
    }
    PG_END_TRY();
    return ok;
}

std::vector<Row> spi_exec(const char* sql, const std::vector<Param>& params) {
    int nargs = static_cast<int>(params.size());
    std::vector<const char*> cvalues(nargs);
    std::vector<Oid> types(nargs, TEXTOID);
    std::vector<Datum> values(nargs);
    std::vector<char> nulls(nargs + 1, ' ');
    for (int i = 0; i < nargs; ++i) {
        cvalues[i] = params[i] ? params[i]->c_str() : nullptr;
        if (!params[i]) nulls[i] = 'n';
    }
    uint64 nrows = 0;
    int ncols = 0;
    char** cells = nullptr;  // palloc'd in the SPI context: nrows * ncols C strings
    const char** cv = cvalues.data();
    Oid* tp = types.data();
    Datum* vp = values.data();
    char* np = nulls.data();
    pg_guarded([&] {
        for (int i = 0; i < nargs; ++i) vp[i] = cv[i] ? CStringGetTextDatum(cv[i]) : (Datum)0;
        int rc = SPI_execute_with_args(sql, nargs, tp, vp, np, false, 0);
        if (rc < 0) elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
        if (SPI_tuptable == nullptr || SPI_processed == 0) return;
        nrows = SPI_processed;
        ncols = SPI_tuptable->tupdesc->natts;
        cells = static_cast<char**>(palloc0(sizeof(char*) * nrows * ncols));
        for (uint64 r = 0; r < nrows; ++r)
            for (int c = 0; c < ncols; ++c)
                cells[r * ncols + c] =
                    SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, c + 1);
    });
    std::vector<Row> rows;
    rows.reserve(nrows);
    for (uint64 r = 0; r < nrows; ++r) {
        Row row;
        row.reserve(ncols);
        for (int c = 0; c < ncols; ++c) {
            const char* v = cells[r * ncols + c];
            row.push_back(v ? std::optional<std::string>(v) : std::nullopt);
        }
        rows.push_back(std::move(row));
    }
    return rows;
}

Xact::Xact(const char* duty) {
    bool started = false;
    try {
        pg_guarded([&] {
            SetCurrentStatementStartTimestamp();
            StartTransactionCommand();
            started = true;
            SPI_connect();
            PushActiveSnapshot(GetTransactionSnapshot());
            pgstat_report_activity(STATE_RUNNING, duty);
        });
    } catch (const PgError&) {
        if (started) abort();  // a throwing constructor runs no destructor
        throw;
    }
    open_ = true;
}

void Xact::commit() {
    pg_guarded([&] {
        SPI_finish();
        PopActiveSnapshot();
        CommitTransactionCommand();
        pgstat_report_stat(false);
        pgstat_report_activity(STATE_IDLE, nullptr);
    });
    open_ = false;
}

Xact::~Xact() {
    if (open_) abort();
}

void Xact::abort() noexcept {
    open_ = false;
    char message[256];
    int code = 0;
    // Aborting releases SPI, snapshots and locks; it is not expected to fail,
    // and if it does there is nothing better to do than to log it.
    if (!run_guarded([](void*) { AbortCurrentTransaction(); }, nullptr, message, sizeof message,
                     &code)) {
        try {
            log(Level::kWarning, std::string("pg_dataflow worker: abort failed: ") + message);
        } catch (...) {
        }
    }
    report_activity("idle", true);
}

bool debug_enabled() noexcept {
    return message_level_is_interesting(DEBUG1);
}

void log(Level level, const std::string& message) noexcept {
    int elevel = level == Level::kDebug ? DEBUG1 : level == Level::kLog ? LOG : WARNING;
    const char* m = message.c_str();
    char ignored[64];
    int code = 0;
    struct Arg {
        int elevel;
        const char* m;
    } arg{elevel, m};
    run_guarded(
        [](void* p) {
            auto* a = static_cast<Arg*>(p);
            ereport(a->elevel, (errmsg_internal("%s", a->m)));
        },
        &arg, ignored, sizeof ignored, &code);
}

void report_activity(const char* what, bool idle) noexcept {
    char ignored[64];
    int code = 0;
    struct Arg {
        const char* what;
        bool idle;
    } arg{what, idle};
    run_guarded(
        [](void* p) {
            auto* a = static_cast<Arg*>(p);
            pgstat_report_activity(a->idle ? STATE_IDLE : STATE_RUNNING, a->what);
        },
        &arg, ignored, sizeof ignored, &code);
}

}  // namespace dataflow::pg
