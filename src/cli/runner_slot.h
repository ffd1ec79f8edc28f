// Internals shared by runner.cpp and runner_report.cpp.
#pragma once

#include "runner.h"

namespace dataflow::cli {

struct Runner::Slot {
    Task task;
    Child child;
    LineSplitter out_lines, err_lines;
    Tail tail;
    std::string task_file, result_file;
    Clock::time_point started{}, next_heartbeat{};
    bool heartbeating = true;
    bool exited = false;
    int wait_status = 0;
    bool lease_lost = false;   // the token is dead: stop the command, report nothing
    bool interrupted = false;  // cut off after the grace period
    bool superseded = false;   // a resubmit superseded the run: stopped early, reported by fail()
    Clock::time_point kill_at{}, report_at{};
    bool terminated = false, killed = false;
    double duration = 0;
};

// Errors worth retrying: serialization failures, deadlocks, lock timeouts, cancels.
inline bool transient(const DbStatus& st) {
    return st.sqlstate.rfind("40", 0) == 0 || st.sqlstate == "55P03" || st.sqlstate == "57014";
}

}  // namespace dataflow::cli
