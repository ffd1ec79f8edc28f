#include "progress.h"

#include <sys/ioctl.h>
#include <unistd.h>
#include <cmath>
#include <ctime>

namespace dataflow::cli {

std::string utc_timestamp() {
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

Reporter::Reporter(std::string job, bool tty) : job_(std::move(job)), tty_(tty) {}

std::string Reporter::format_duration(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) return "?";
    long long s = std::llround(seconds);
    char buf[48];
    if (s >= 3600)
        std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
    else
        std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
    return buf;
}

void Reporter::clear_line() {
    if (tty_ && drawn_) {
        std::fputs("\r\033[K", stderr);
        drawn_ = false;
    }
}

void Reporter::line(FILE* stream, const std::string& text) {
    clear_line();
    std::fflush(stderr);
    std::fputs(text.c_str(), stream);
    std::fputc('\n', stream);
    std::fflush(stream);
    redraw(true);
}

void Reporter::log(const std::string& text) {
    line(stderr, tty_ ? "dataflow-run: " + text : utc_timestamp() + " dataflow-run: " + text);
}

void Reporter::update(const Progress& p, int running_here, int succeeded_here, int failed_here) {
    auto now = Clock::now();
    progress_ = p;
    have_progress_ = true;
    running_ = running_here;
    succeeded_ = succeeded_here;
    failed_ = failed_here;
    // A done count that went down (a resubmit) restarts the rate measurement.
    if (first_done_ < 0 || p.done < first_done_) {
        first_done_ = p.done;
        first_at_ = now;
    }
    last_at_ = now;
}

std::string Reporter::status_text() const {
    char buf[256];
    int64_t done = progress_.done, total = progress_.total, failed = progress_.failed;
    int pct = total > 0 ? static_cast<int>(100.0 * static_cast<double>(done) / total) : 0;
    std::string text = job_;
    std::snprintf(buf, sizeof buf, "  %lld/%lld done (%d%%)  %d running  %lld queued",
                  static_cast<long long>(done), static_cast<long long>(total), pct, running_,
                  static_cast<long long>(progress_.queued));
    text += buf;
    if (failed > 0) {
        std::snprintf(buf, sizeof buf, "  %lld failed", static_cast<long long>(failed));
        text += buf;
    }
    if (failed_ > 0) {
        std::snprintf(buf, sizeof buf, "  (%d failed attempt%s)", failed_, failed_ == 1 ? "" : "s");
        text += buf;
    }
    double elapsed = std::chrono::duration<double>(last_at_ - first_at_).count();
    double rate = elapsed >= 1.0 ? static_cast<double>(done - first_done_) / elapsed : 0;
    if (rate > 0) {
        if (rate >= 1)
            std::snprintf(buf, sizeof buf, "  %.1f/s", rate);
        else
            std::snprintf(buf, sizeof buf, "  %.1f/min", rate * 60);
        text += buf;
        int64_t left = total - done - failed;
        if (left > 0) text += "  ETA " + format_duration(static_cast<double>(left) / rate);
    }
    return text;
}

std::string Reporter::counts() const {
    if (!have_progress_) return "";
    std::string s =
        " [" + std::to_string(progress_.done) + "/" + std::to_string(progress_.total) + " done";
    if (progress_.failed > 0) s += ", " + std::to_string(progress_.failed) + " failed";
    return s + "]";
}

void Reporter::redraw(bool force) {
    if (!tty_ || !have_progress_) return;
    auto now = Clock::now();
    if (!force && now - last_draw_ < std::chrono::milliseconds(200)) return;
    last_draw_ = now;
    // A line wider than the terminal would wrap and could not be redrawn in place.
    std::string text = status_text();
    winsize ws{};
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 && text.size() >= ws.ws_col)
        text.resize(ws.ws_col - 1);
    std::fputs("\r\033[K", stderr);
    std::fputs(text.c_str(), stderr);
    std::fflush(stderr);
    drawn_ = true;
}

void Reporter::finish() {
    if (tty_ && have_progress_) {
        redraw(true);
        std::fputc('\n', stderr);
        std::fflush(stderr);
        drawn_ = false;
    }
}

}  // namespace dataflow::cli
