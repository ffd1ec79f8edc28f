// The event loop of dataflow-run: one thread, one database connection, up to
// N children. poll() waits on the children's output pipes and a self-pipe fed
// by the signal handlers (SIGCHLD, SIGTERM, SIGINT); timers drive leasing,
// heartbeats, the grace period and reconnects. See README.md for the states.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "child.h"
#include "db.h"
#include "options.h"
#include "pacing.h"
#include "progress.h"
#include "task.h"

namespace dataflow::cli {

// Exit statuses (documented in docs/cli.md and --help).
enum ExitCode {
    kExitOk = 0,
    kExitRuntime = 1,
    kExitUsage = 2,
    kExitRunsFailed = 3,
    kExitNotExecutable = 126,
    kExitNotFound = 127,
};

// Installs the handlers; returns the read end of the self-pipe.
int install_signal_handlers(std::string* error);

class Runner {
public:
    using Clock = std::chrono::steady_clock;

    Runner(const Options& opt, std::string command_path, Db& db, Reporter& reporter, int signal_fd);
    ~Runner();
    // Runs until the mode says stop; returns the exit status.
    int run();

private:
    struct Slot;

    bool make_temp_dir();
    void handle_signals();
    void begin_stop(int sig);
    void reap_children();
    void read_output(Slot& slot, bool err);
    void close_output(Slot& slot);
    void try_lease(Clock::time_point now);
    void start(Task task);
    void heartbeats(Clock::time_point now);
    void enforce_deadlines(Clock::time_point now);
    void report(Slot& slot);
    bool settle_not_live(Slot& slot, const DbStatus& st);
    void after_db_error(const std::string& what, const DbStatus& st);
    void refresh_progress(bool force);
    // A fresh row of dataflow.jobs: the progress line, and the target under auto.
    void take_progress(const Progress& p);
    void explain_wait(const Progress& p);
    // At exit: whether a chunk whose last attempt here failed is still not available.
    bool chunks_failed();
    void log_finished(const Slot& slot, const std::string& outcome, const std::string& detail);
    int wait_timeout_ms(Clock::time_point now) const;
    int exit_code() const;

    const Options& opt_;
    std::string command_path_;
    Db& db_;
    Reporter& reporter_;
    int signal_fd_;
    std::string worker_;
    std::string temp_dir_;
    std::vector<std::unique_ptr<Slot>> slots_;

    // Leasing state.
    bool leasing_done_ = false;  // --once after its batch, --until-idle when idle, fatal error
    Clock::time_point next_lease_{};
    std::chrono::milliseconds idle_delay_{200};

    // Stop state.
    int stop_signal_ = 0;
    Clock::time_point grace_deadline_{};
    bool runtime_error_ = false;

    // Database outage state.
    bool db_down_ = false;
    Clock::time_point db_down_since_{}, next_reconnect_{};

    // How many commands may run at once: --concurrency N, or under auto the job's
    // limits as last read (1 until then).
    int target_ = 1;
    bool target_known_ = false;
    WaitLog wait_log_;

    Clock::time_point next_progress_{};
    // failed_ counts failed attempts (the progress line); outcomes_ the chunks that
    // decide exit status 3.
    int succeeded_ = 0, failed_ = 0, interrupted_ = 0, lost_ = 0, superseded_ = 0;
    ChunkOutcomes outcomes_;
    bool chunks_failed_ = false;
};

}  // namespace dataflow::cli
