// The event loop: signals, children, leasing, heartbeats, deadlines.
#include "runner.h"
#include "runner_slot.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>

extern char** environ;

namespace dataflow::cli {

namespace {

constexpr auto kKillAfter = std::chrono::seconds(5);       // SIGTERM → SIGKILL
constexpr auto kDbOutageLimit = std::chrono::seconds(60);  // give up when idle this long
constexpr auto kMaxIdleDelay = std::chrono::milliseconds(2000);

int g_signal_pipe[2] = {-1, -1};

extern "C" void on_signal(int sig) {
    int saved = errno;
    auto byte = static_cast<unsigned char>(sig);
    (void)!write(g_signal_pipe[1], &byte, 1);
    errno = saved;
}

double seconds_since(Runner::Clock::time_point t) {
    return std::chrono::duration<double>(Runner::Clock::now() - t).count();
}

Runner::Clock::duration secs(double s) {
    return std::chrono::duration_cast<Runner::Clock::duration>(std::chrono::duration<double>(s));
}

}  // namespace

int install_signal_handlers(std::string* error) {
    if (pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        *error = std::string("pipe: ") + strerror(errno);
        return -1;
    }
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaction(sig, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);
    return g_signal_pipe[0];
}

Runner::Runner(const Options& opt, std::string command_path, Db& db, Reporter& reporter,
               int signal_fd)
    : opt_(opt),
      command_path_(std::move(command_path)),
      db_(db),
      reporter_(reporter),
      signal_fd_(signal_fd) {
    target_ = opt.auto_concurrency ? 1 : opt.concurrency;
    worker_ = opt.worker;
    if (worker_.empty()) {
        char host[256] = "localhost";
        gethostname(host, sizeof host - 1);
        worker_ = std::string(host) + ":" + std::to_string(getpid());
    }
}

Runner::~Runner() {
    for (auto& s : slots_) {
        close_output(*s);
        unlink(s->task_file.c_str());
        unlink(s->result_file.c_str());
    }
    if (!temp_dir_.empty()) rmdir(temp_dir_.c_str());
}

bool Runner::make_temp_dir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/dataflow-run.XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) {
        reporter_.log("cannot create a temporary directory " + tmpl + ": " + strerror(errno));
        return false;
    }
    temp_dir_ = buf.data();
    return true;
}

int Runner::run() {
    if (!make_temp_dir()) return kExitRuntime;
    auto now = Clock::now();
    next_lease_ = now;
    if (opt_.auto_concurrency) refresh_progress(true);  // the target before the first lease
    while (true) {
        handle_signals();
        reap_children();
        now = Clock::now();

        if (db_down_ && now >= next_reconnect_) {
            std::string err;
            if (db_.reconnect(&err)) {
                reporter_.log("reconnected to the database");
                db_down_ = false;
            } else if (slots_.empty() || std::all_of(slots_.begin(), slots_.end(),
                                                     [](auto& s) { return s->exited; })) {
                if (now - db_down_since_ > kDbOutageLimit) {
                    reporter_.log("database unreachable for " +
                                  std::to_string(kDbOutageLimit.count()) + " s, giving up: " + err);
                    for (auto& s : slots_)
                        reporter_.log("run " + std::to_string(s->task.run_id) + " (" + s->task.key +
                                      ") not recorded; its lease will expire and it is retried");
                    runtime_error_ = true;
                    break;
                }
            }
            next_reconnect_ = now + std::chrono::seconds(2);
        }

        // Finished children: report, free the slot.
        for (auto& s : slots_)
            if (s->exited && !db_down_ && now >= s->report_at) report(*s);
        slots_.erase(
            std::remove_if(slots_.begin(), slots_.end(), [](auto& s) { return s->child.pid < 0; }),
            slots_.end());

        now = Clock::now();
        if (!db_down_) heartbeats(now);
        enforce_deadlines(now);
        if (!db_down_ && !leasing_done_ && stop_signal_ == 0 && now >= next_lease_ &&
            static_cast<int>(slots_.size()) < target_)
            try_lease(now);
        refresh_progress(false);

        bool stopping = stop_signal_ != 0 || leasing_done_;
        if (stopping && slots_.empty()) break;

        std::vector<pollfd> fds;
        std::vector<std::pair<Slot*, bool>> owners;
        fds.push_back({signal_fd_, POLLIN, 0});
        owners.emplace_back(nullptr, false);
        for (auto& s : slots_) {
            if (s->child.out_fd >= 0) {
                fds.push_back({s->child.out_fd, POLLIN, 0});
                owners.emplace_back(s.get(), false);
            }
            if (s->child.err_fd >= 0) {
                fds.push_back({s->child.err_fd, POLLIN, 0});
                owners.emplace_back(s.get(), true);
            }
        }
        int n = poll(fds.data(), fds.size(), wait_timeout_ms(Clock::now()));
        if (n < 0 && errno != EINTR) {
            reporter_.log(std::string("poll: ") + strerror(errno));
            runtime_error_ = true;
            break;
        }
        for (size_t i = 1; n > 0 && i < fds.size(); ++i)
            if (fds[i].revents & (POLLIN | POLLHUP | POLLERR))
                read_output(*owners[i].first, owners[i].second);
    }
    next_progress_ = {};  // the last numbers are exact
    refresh_progress(true);
    chunks_failed_ = chunks_failed();
    return exit_code();
}

int Runner::exit_code() const {
    if (runtime_error_) return kExitRuntime;
    if (stop_signal_ != 0 && interrupted_ > 0) return 128 + stop_signal_;
    if (chunks_failed_) return kExitRunsFailed;
    return kExitOk;
}

void Runner::handle_signals() {
    unsigned char buf[64];
    ssize_t n;
    while ((n = read(signal_fd_, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < n; ++i)
            if (buf[i] == SIGTERM || buf[i] == SIGINT || buf[i] == SIGHUP) begin_stop(buf[i]);
}

void Runner::begin_stop(int sig) {
    const char* name = sig == SIGINT ? "SIGINT" : sig == SIGHUP ? "SIGHUP" : "SIGTERM";
    if (stop_signal_ != 0) {
        reporter_.log(std::string("second ") + name + ": stopping the running commands now");
        grace_deadline_ = Clock::now();
        return;
    }
    stop_signal_ = sig;
    grace_deadline_ = Clock::now() + secs(opt_.grace);
    if (slots_.empty())
        reporter_.log(std::string(name) + " received: stopping");
    else
        reporter_.log(std::string(name) + " received: no new leases; waiting up to " +
                      Reporter::format_duration(opt_.grace) + " for " +
                      std::to_string(slots_.size()) +
                      " running command(s) (signal again to stop them now)");
}

void Runner::reap_children() {
    int status = 0;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (auto& s : slots_) {
            if (s->child.pid != pid || s->exited) continue;
            s->exited = true;
            s->wait_status = status;
            s->duration = seconds_since(s->started);
            // What the command wrote before it exited is in the pipes already;
            // a grandchild that keeps them open must not hold the run hostage.
            read_output(*s, false);
            read_output(*s, true);
            close_output(*s);
        }
    }
}

void Runner::read_output(Slot& slot, bool err) {
    int& fd = err ? slot.child.err_fd : slot.child.out_fd;
    LineSplitter& lines = err ? slot.err_lines : slot.out_lines;
    auto emit = [&](const std::string& raw) {
        std::string line = sanitize_text(raw);
        if (err) slot.tail.add(line);
        if (!opt_.quiet) reporter_.line(err ? stderr : stdout, "[" + slot.task.key + "] " + line);
    };
    char buf[8192];
    for (int rounds = 0; fd >= 0 && rounds < 64; ++rounds) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
            lines.feed(buf, static_cast<size_t>(n), emit);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
        lines.finish(emit);  // EOF or error
        close(fd);
        fd = -1;
    }
}

void Runner::close_output(Slot& slot) {
    auto emit_err = [&](const std::string& l) { slot.tail.add(sanitize_text(l)); };
    for (int* fd : {&slot.child.out_fd, &slot.child.err_fd})
        if (*fd >= 0) {
            close(*fd);
            *fd = -1;
        }
    slot.err_lines.finish(emit_err);
}

void Runner::try_lease(Clock::time_point now) {
    int free_slots = target_ - static_cast<int>(slots_.size());
    std::vector<Task> tasks;
    DbStatus st = db_.lease(opt_.job, worker_, free_slots, opt_.lease_for, &tasks);
    if (!st.ok) {
        if (st.undefined_object()) {
            reporter_.log("unknown job '" + opt_.job + "': " + st.message);
            runtime_error_ = true;
            leasing_done_ = true;
        } else {
            after_db_error("lease", st);
        }
        next_lease_ = now + idle_delay_;
        return;
    }
    if (static_cast<int>(tasks.size()) < free_slots) {
        // Fewer than asked: say why (paused, a limit, nothing runnable), once per reason.
        // The same row tells --until-idle whether anything is left anywhere (nothing
        // queued or running there, nothing running here; chunks in retry backoff are
        // still queued).
        Progress p;
        DbStatus ps = db_.progress(opt_.job, &p);
        if (ps.ok) {
            take_progress(p);
            explain_wait(p);
        } else {
            after_db_error("progress", ps);
        }
        if (tasks.empty()) {
            if (opt_.mode == Mode::Once ||
                (opt_.mode == Mode::UntilIdle && ps.ok && slots_.empty() && p.active() == 0)) {
                leasing_done_ = true;
                return;
            }
            next_lease_ = now + idle_delay_;
            idle_delay_ = std::min(idle_delay_ * 2, kMaxIdleDelay);
            return;
        }
    } else {
        wait_log_.observe(WaitReason::None, "");
    }
    idle_delay_ = std::chrono::milliseconds(200);
    if (opt_.mode == Mode::Once) leasing_done_ = true;
    for (auto& t : tasks) start(std::move(t));
    next_lease_ = now;
}

// A lease that came back short: one line per reason. Not for a --once or --until-idle
// run about to exit with nothing left (that needs no explaining).
void Runner::explain_wait(const Progress& p) {
    WaitReason r = wait_reason(p);
    if (opt_.mode != Mode::Forever && r == WaitReason::NothingQueued && slots_.empty()) return;
    auto line = wait_log_.observe(r, wait_message(opt_.job, p, r, static_cast<int>(slots_.size())));
    if (line) reporter_.log(*line);
}

void Runner::take_progress(const Progress& p) {
    reporter_.update(p, static_cast<int>(slots_.size()), succeeded_, failed_);
    if (!opt_.auto_concurrency) return;
    int t = auto_target(p, opt_.max_procs);
    if (target_known_ && t == target_) return;
    std::string text = "concurrency auto: " + describe_target(opt_.job, p, t, opt_.max_procs);
    int here = static_cast<int>(slots_.size());
    if (target_known_ && t < here)  // lowering stops nothing: the running ones finish
        text += "; " + std::to_string(here) + " running here finish" +
                (t == 0 ? std::string(", none starts while it is 0")
                        : ", the next starts when fewer than " + std::to_string(t) + " run");
    reporter_.log(text);
    if (t > target_) {  // more slots: lease at once
        next_lease_ = Clock::now();
        idle_delay_ = std::chrono::milliseconds(200);
    }
    target_ = t;
    target_known_ = p.found;
}

bool Runner::chunks_failed() {
    if (outcomes_.empty()) return false;
    // A chunk whose attempt failed here may have been retried since, here or on another
    // worker: only one that is still not available at exit counts.
    bool any = false;
    for (const auto& [dataset, keys] : outcomes_.unresolved()) {
        std::vector<std::string> available;
        DbStatus st = db_.available_keys(dataset, keys, &available);
        if (!st.ok) return true;  // cannot tell: say failed
        if (available.size() < keys.size()) any = true;
    }
    return any;
}

void Runner::start(Task task) {
    auto slot = std::make_unique<Slot>();
    slot->task = std::move(task);
    const Task& t = slot->task;
    std::string base = temp_dir_ + "/" + std::to_string(t.run_id);
    slot->task_file = base + ".task.json";
    slot->result_file = base + ".result";
    unlink(slot->result_file.c_str());

    std::string error;
    {
        std::ofstream f(slot->task_file, std::ios::trunc);
        f << task_file_json(t);
        if (!f) error = "cannot write the task file " + slot->task_file;
    }
    auto env = child_environment(environ, t, slot->task_file, slot->result_file, opt_.dsn);
    slot->started = Clock::now();
    if (error.empty() && !spawn_child(command_path_, opt_.command, env, &slot->child, &error)) {
        // nothing else to do: error is set
    }
    if (!error.empty()) {
        reporter_.log("run " + std::to_string(t.run_id) + " (" + t.key + "): " + error);
        std::string chunk_status;
        DbStatus st = db_.fail(t.token, "dataflow-run: " + error, true, &chunk_status);
        if (!st.ok) after_db_error("fail", st);
        ++failed_;
        outcomes_.failed(t.dataset, t.key);
        unlink(slot->task_file.c_str());
        return;
    }
    double interval = opt_.heartbeat > 0 ? opt_.heartbeat : std::max(0.2, t.lease_seconds / 3);
    slot->next_heartbeat = slot->started + secs(interval);
    slots_.push_back(std::move(slot));
}

void Runner::heartbeats(Clock::time_point now) {
    for (auto& s : slots_) {
        if (s->exited || !s->heartbeating || s->lease_lost || now < s->next_heartbeat) continue;
        double left = 0;
        bool superseded = false;
        DbStatus st =
            db_.heartbeat(s->task.token, s->task.run_id, opt_.lease_for, &left, &superseded);
        if (st.ok) {
            double interval = opt_.heartbeat > 0 ? opt_.heartbeat : std::max(0.2, left / 3);
            s->next_heartbeat = now + secs(interval);
            if (superseded && !s->superseded && !s->terminated) {
                // The lease still holds the run's inputs (heartbeats go on until the command
                // ends), but its result will not be used: stop early, and fail() on exit ends
                // the run, which lets the inputs be re-produced.
                reporter_.log("run " + std::to_string(s->task.run_id) + " (" + s->task.key +
                              "): superseded by a resubmit, its result will not be used: "
                              "stopping the command");
                s->superseded = true;
                kill(-s->child.pid, SIGTERM);
                s->terminated = true;
                s->kill_at = now + kKillAfter;
            }
            continue;
        }
        if (st.lease_not_live()) {
            std::string status;
            DbStatus q = db_.run_status(s->task.run_id, &status);
            s->heartbeating = false;
            if (q.ok && (status == "succeeded" || status == "failed")) continue;  // by the command
            if (!q.ok) {
                reporter_.log("run " + std::to_string(s->task.run_id) + " (" + s->task.key +
                              "): heartbeat refused (" + st.message + "); letting it finish");
                continue;
            }
            reporter_.log("run " + std::to_string(s->task.run_id) + " (" + s->task.key +
                          "): lease lost (run " + status + "): stopping the command");
            s->lease_lost = true;
            kill(-s->child.pid, SIGTERM);
            s->terminated = true;
            s->kill_at = now + kKillAfter;
            continue;
        }
        after_db_error("heartbeat", st);
        s->next_heartbeat = now + std::chrono::seconds(1);
        if (db_down_) return;
    }
}

void Runner::enforce_deadlines(Clock::time_point now) {
    for (auto& s : slots_) {
        if (s->exited) continue;
        if (stop_signal_ != 0 && !s->terminated && now >= grace_deadline_) {
            s->interrupted = true;
            s->terminated = true;
            s->kill_at = now + kKillAfter;
            kill(-s->child.pid, SIGTERM);
        } else if (s->terminated && !s->killed && now >= s->kill_at) {
            s->killed = true;
            kill(-s->child.pid, SIGKILL);
        }
    }
}

void Runner::after_db_error(const std::string& what, const DbStatus& st) {
    if (st.connection_lost) {
        if (!db_down_) {
            reporter_.log("lost the database connection (" + what + "): " + st.message +
                          "; commands keep running, reconnecting");
            db_down_ = true;
            db_down_since_ = Clock::now();
            next_reconnect_ = Clock::now();
        }
        return;
    }
    reporter_.log(what + " failed: " + st.message +
                  (st.sqlstate.empty() ? "" : " [SQLSTATE " + st.sqlstate + "]"));
    if (!transient(st) && what == "lease") {
        runtime_error_ = true;
        leasing_done_ = true;
    }
}

void Runner::refresh_progress(bool force) {
    // Every second, and on demand (a finished run) at most every 250 ms: with
    // many short runs the counts may lag a little rather than double the queries.
    auto now = Clock::now();
    if (db_down_ || now < next_progress_ - std::chrono::milliseconds(force ? 750 : 0)) {
        reporter_.redraw();
        return;
    }
    next_progress_ = now + std::chrono::seconds(1);
    Progress p;
    if (db_.progress(opt_.job, &p).ok) take_progress(p);
    reporter_.redraw(force);
}

int Runner::wait_timeout_ms(Clock::time_point now) const {
    auto wake = now + std::chrono::seconds(1);
    auto consider = [&](Clock::time_point t) { wake = std::min(wake, t); };
    if (!leasing_done_ && stop_signal_ == 0 && static_cast<int>(slots_.size()) < target_)
        consider(next_lease_);
    if (stop_signal_ != 0) consider(grace_deadline_);
    if (db_down_) consider(next_reconnect_);
    for (const auto& s : slots_) {
        if (s->exited) {
            if (!db_down_) consider(s->report_at);
            continue;
        }
        if (s->heartbeating && !s->lease_lost) consider(s->next_heartbeat);
        if (s->terminated && !s->killed) consider(s->kill_at);
    }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(wake - now).count();
    return static_cast<int>(std::clamp<long long>(ms + 1, 0, 1000));
}

}  // namespace dataflow::cli
