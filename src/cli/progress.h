// What dataflow-run tells its operator. On a terminal: a live progress line
// (done/total, rate, ETA, failures) redrawn under the scrolling log; otherwise
// plain timestamped lines, one per finished run, for log files.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

#include "db.h"

namespace dataflow::cli {

class Reporter {
public:
    using Clock = std::chrono::steady_clock;

    Reporter(std::string job, bool tty);

    // A log line (already without trailing newline) on stream; keeps the
    // progress line intact below it on a terminal.
    void line(FILE* stream, const std::string& text);
    // A dataflow-run message on stderr with a timestamp when not on a terminal.
    void log(const std::string& text);

    // A fresh count of the job's chunks plus what this process is doing.
    void update(const Progress& p, int running_here, int succeeded_here, int failed_here);
    // Redraws the progress line (terminal only) at most every 200 ms unless forced.
    void redraw(bool force = false);
    // Removes the progress line before exit.
    void finish();

    bool tty() const { return tty_; }
    // " [12/31 done, 2 failed]" from the last update, or "".
    std::string counts() const;
    // "0:14", "1:02:03": ETA and durations.
    static std::string format_duration(double seconds);

private:
    std::string status_text() const;
    void clear_line();

    std::string job_;
    bool tty_;
    bool drawn_ = false;
    bool have_progress_ = false;
    Progress progress_;
    int64_t first_done_ = -1;
    Clock::time_point first_at_{};
    Clock::time_point last_at_{};
    Clock::time_point last_draw_{};
    int running_ = 0, succeeded_ = 0, failed_ = 0;
};

// UTC time as 2026-01-31T05:06:07Z.
std::string utc_timestamp();

}  // namespace dataflow::cli
