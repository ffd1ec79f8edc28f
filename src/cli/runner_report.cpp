// Recording the outcome of a finished command: complete / fail, and what a
// refused token (SQLSTATE 55000) means.
#include <sys/wait.h>
#include <unistd.h>
#include <cstdio>

#include "runner_slot.h"

namespace dataflow::cli {

// Called for an exited child; clears child.pid once the outcome is recorded
// (or cannot ever be), which frees the slot.
void Runner::report(Slot& slot) {
    const Task& t = slot.task;
    std::string outcome, detail;
    DbStatus st;
    if (slot.lease_lost) {
        ++lost_;
        log_finished(slot, "abandoned", "lease lost; not recorded");
    } else if (slot.superseded) {
        // fail() of a superseded run only ends it (releasing its inputs); the chunk was
        // already reset by the resubmit.
        st = db_.fail(t.token, "stopped early by dataflow-run: the run was superseded", true,
                      &outcome);
        if (st.ok) {
            ++superseded_;
            log_finished(slot, "superseded", "stopped early; chunk " + outcome);
        }
    } else if (slot.interrupted) {
        std::string error =
            "interrupted: dataflow-run received a stop signal and the command "
            "did not finish within the grace period (" +
            describe_wait_status(slot.wait_status) + ")";
        std::string tail = slot.tail.text();
        if (!tail.empty()) error += "\n" + tail;
        st = db_.fail(t.token, error, true, &outcome);
        if (st.ok) {
            ++interrupted_;
            log_finished(slot, "interrupted", "chunk " + outcome);
        } else if (st.lease_not_live()) {
            ++interrupted_;
        }
    } else if (WIFEXITED(slot.wait_status) && WEXITSTATUS(slot.wait_status) == 0) {
        RunResult result;
        std::string error;
        if (read_result_file(slot.result_file, &result, &error)) {
            st = db_.complete(t.token, result, &outcome);
            if (st.ok) {
                ++succeeded_;
                outcomes_.succeeded(t.dataset, t.key);
                std::string d;
                if (result.row_count) d = "rows=" + std::to_string(*result.row_count);
                log_finished(slot, outcome, d);
            }
        } else {
            st = db_.fail(t.token, sanitize_text(error), true, &outcome);
            if (st.ok) {
                ++failed_;
                outcomes_.failed(t.dataset, t.key);
                log_finished(slot, "failed", error + "; chunk " + outcome);
            }
        }
    } else {
        std::string error = "command " + describe_wait_status(slot.wait_status);
        std::string tail = slot.tail.text();
        if (!tail.empty()) error += "\n" + tail;
        st = db_.fail(t.token, error, true, &outcome);
        if (st.ok) {
            ++failed_;
            outcomes_.failed(t.dataset, t.key);
            std::string last =
                tail.substr(tail.rfind('\n') == std::string::npos ? 0 : tail.rfind('\n') + 1);
            log_finished(slot, "failed",
                         describe_wait_status(slot.wait_status) + ", chunk " + outcome +
                             (last.empty() ? "" : ": " + last));
        }
    }
    if (!st.ok && !settle_not_live(slot, st)) {
        after_db_error("report", st);
        if (st.connection_lost || transient(st)) {  // retried later
            slot.report_at = Clock::now() + std::chrono::seconds(1);
            return;
        }
        ++failed_;
        outcomes_.failed(t.dataset, t.key);  // its outcome is unknown: not a success
        log_finished(slot, "unrecorded", st.message);
    }
    unlink(slot.task_file.c_str());
    unlink(slot.result_file.c_str());
    slot.child.pid = -1;
    next_lease_ = Clock::now();
}

// complete/fail refused with 55000: either the command already recorded its
// own outcome with DATAFLOW_TOKEN (fine), or the lease expired or was cancelled.
bool Runner::settle_not_live(Slot& slot, const DbStatus& st) {
    if (!st.lease_not_live()) return false;
    std::string status;
    DbStatus q = db_.run_status(slot.task.run_id, &status);
    if (q.ok && status == "succeeded") {
        ++succeeded_;
        outcomes_.succeeded(slot.task.dataset, slot.task.key);
        log_finished(slot, "succeeded", "recorded by the command itself");
    } else if (q.ok && status == "failed") {
        ++failed_;
        outcomes_.failed(slot.task.dataset, slot.task.key);
        log_finished(slot, "failed", "recorded by the command itself");
    } else {
        ++lost_;
        log_finished(slot, "abandoned",
                     "lease no longer live (" + (q.ok ? "run " + status : st.message) +
                         "); result not recorded");
    }
    return true;
}

void Runner::log_finished(const Slot& slot, const std::string& outcome, const std::string& detail) {
    refresh_progress(true);
    bool quiet_success = reporter_.tty() && (outcome == "succeeded");
    if (quiet_success) return;
    char dur[32];
    std::snprintf(dur, sizeof dur, "%.1fs", slot.duration);
    const Task& t = slot.task;
    std::string text = opt_.job + " " + t.key + " v" + std::to_string(t.version) + " attempt " +
                       std::to_string(t.attempt) + " (run " + std::to_string(t.run_id) +
                       "): " + outcome + " in " + dur;
    if (!detail.empty()) text += ", " + detail;
    reporter_.log(text + reporter_.counts());
}

}  // namespace dataflow::cli
