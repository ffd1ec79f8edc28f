// The one guarded layer through which C++ code calls Postgres (docs/internals.md, section 9).
//
// pg_guarded(f) runs f inside PG_TRY; a Postgres ERROR is copied out of the
// ErrorData (message + SQLSTATE), the error state is flushed, and a C++
// PgError is thrown only after PG_END_TRY has restored the exception stack.
// Rules for f: it calls Postgres functions and touches only plain data (no
// object with a destructor is created inside it, nothing in it throws), so a
// longjmp out of it skips no destructor. Results leave f through POD
// variables captured by reference; the caller turns them into C++ objects.
//
// Above this layer the worker is ordinary C++: Xact/spi_exec/log below are the
// typed wrappers it uses.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace dataflow::pg {

class PgError : public std::runtime_error {
public:
    PgError(const std::string& message, int sqlerrcode)
        : std::runtime_error(message), sqlerrcode_(sqlerrcode) {}
    int sqlerrcode() const { return sqlerrcode_; }

private:
    int sqlerrcode_;
};

// Implementation detail of pg_guarded: runs fn(arg) under PG_TRY. Returns true
// on success; on a Postgres error fills message/sqlerrcode and returns false.
bool run_guarded(void (*fn)(void*), void* arg, char* message, size_t message_size,
                 int* sqlerrcode) noexcept;

template <typename F>
void pg_guarded(F&& f) {
    char message[1024];
    int code = 0;
    auto trampoline = [](void* p) { (*static_cast<F*>(p))(); };
    if (!run_guarded(trampoline, static_cast<void*>(&f), message, sizeof message, &code))
        throw PgError(message, code);
}

using Row = std::vector<std::optional<std::string>>;
using Param = std::optional<std::string>;

// Runs one SQL statement through SPI with text parameters ($1::bigint casts in
// the SQL). Must be inside an Xact. Returns every row, every column as text.
std::vector<Row> spi_exec(const char* sql, const std::vector<Param>& params = {});

// A short transaction with an SPI connection and a snapshot; reports `duty`
// in pg_stat_activity. Commit with commit(); the destructor aborts an
// uncommitted one (after a PgError), so no transaction outlives its scope.
class Xact {
public:
    explicit Xact(const char* duty);
    ~Xact();
    Xact(const Xact&) = delete;
    Xact& operator=(const Xact&) = delete;
    void commit();

private:
    void abort() noexcept;
    bool open_ = false;
};

enum class Level { kDebug, kLog, kWarning };
void log(Level level, const std::string& message) noexcept;
// Whether a kDebug message would be logged (log_min_messages or client_min_messages
// at debug1 or below): callers skip building trace messages otherwise.
bool debug_enabled() noexcept;

// Reports what the worker does while outside a transaction.
void report_activity(const char* what, bool idle) noexcept;

}  // namespace dataflow::pg
