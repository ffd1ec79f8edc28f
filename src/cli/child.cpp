#include "child.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <csignal>
#include <cstring>

namespace dataflow::cli {

namespace {

void close_pair(int fds[2]) {
    for (int i = 0; i < 2; ++i)
        if (fds[i] >= 0) close(fds[i]);
}

// Only async-signal-safe calls between fork and exec.
[[noreturn]] void exec_child(const char* path, char* const argv[], char* const envp[], int out_w,
                             int err_w, pid_t parent) {
    setpgid(0, 0);
    // If dataflow-run dies without stopping it (SIGKILL, OOM), the command is
    // stopped too: its lease expires and another attempt will run.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(126);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGCHLD, SIGHUP, SIGQUIT}) signal(sig, SIG_DFL);

    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) {
        dup2(devnull, STDIN_FILENO);
        if (devnull != STDIN_FILENO) close(devnull);
    }
    // dup2 clears FD_CLOEXEC on the new descriptor; all others are CLOEXEC.
    dup2(out_w, STDOUT_FILENO);
    dup2(err_w, STDERR_FILENO);
    execve(path, argv, envp);

    int err = errno;
    const char* prefix = "dataflow-run: cannot execute ";
    const char* msg = strerror(err);
    (void)!write(STDERR_FILENO, prefix, strlen(prefix));
    (void)!write(STDERR_FILENO, path, strlen(path));
    (void)!write(STDERR_FILENO, ": ", 2);
    (void)!write(STDERR_FILENO, msg, strlen(msg));
    (void)!write(STDERR_FILENO, "\n", 1);
    _exit(err == ENOENT ? 127 : 126);
}

}  // namespace

bool spawn_child(const std::string& path, const std::vector<std::string>& argv,
                 const std::vector<std::string>& env, Child* out, std::string* error) {
    // Everything the child needs is built before fork().
    std::vector<char*> c_argv, c_env;
    for (const auto& a : argv) c_argv.push_back(const_cast<char*>(a.c_str()));
    c_argv.push_back(nullptr);
    for (const auto& e : env) c_env.push_back(const_cast<char*>(e.c_str()));
    c_env.push_back(nullptr);

    int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
        *error = std::string("pipe: ") + strerror(errno);
        close_pair(out_pipe);
        close_pair(err_pipe);
        return false;
    }
    fflush(nullptr);  // nothing buffered may be written twice
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        *error = std::string("fork: ") + strerror(errno);
        close_pair(out_pipe);
        close_pair(err_pipe);
        return false;
    }
    if (pid == 0)
        exec_child(path.c_str(), c_argv.data(), c_env.data(), out_pipe[1], err_pipe[1], parent);

    // Also from the parent, so a kill of the group cannot race the child's setpgid.
    setpgid(pid, pid);
    close(out_pipe[1]);
    close(err_pipe[1]);
    fcntl(out_pipe[0], F_SETFL, fcntl(out_pipe[0], F_GETFL) | O_NONBLOCK);
    fcntl(err_pipe[0], F_SETFL, fcntl(err_pipe[0], F_GETFL) | O_NONBLOCK);
    out->pid = pid;
    out->out_fd = out_pipe[0];
    out->err_fd = err_pipe[0];
    return true;
}

void LineSplitter::feed(const char* data, size_t n,
                        const std::function<void(const std::string&)>& emit) {
    for (size_t i = 0; i < n; ++i) {
        char c = data[i];
        if (c == '\n') {
            if (!partial_.empty() && partial_.back() == '\r') partial_.pop_back();
            emit(partial_);
            partial_.clear();
        } else {
            partial_.push_back(c);
            if (partial_.size() >= max_line_) {
                emit(partial_);
                partial_.clear();
            }
        }
    }
}

void LineSplitter::finish(const std::function<void(const std::string&)>& emit) {
    if (!partial_.empty()) emit(partial_);
    partial_.clear();
}

void Tail::add(const std::string& line) {
    lines_.push_back(line);
    bytes_ += line.size() + 1;
    while (lines_.size() > max_lines_ || (bytes_ > max_bytes_ && lines_.size() > 1)) {
        bytes_ -= lines_.front().size() + 1;
        lines_.pop_front();
    }
}

std::string Tail::text() const {
    std::string s;
    for (const auto& l : lines_) {
        if (!s.empty()) s += '\n';
        s += l;
    }
    if (s.size() > max_bytes_) s = s.substr(s.size() - max_bytes_);
    return s;
}

std::string sanitize_text(const std::string& s) {
    std::string out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            out.push_back((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f ? '?' : s[i]);
            ++i;
            continue;
        }
        // Validate one UTF-8 sequence (no overlongs, no surrogates, <= U+10FFFF).
        size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
        bool valid = len > 0 && c <= 0xf4 && i + len <= s.size();
        for (size_t k = 1; valid && k < len; ++k)
            valid = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
        if (valid && len >= 3) {
            auto c1 = static_cast<unsigned char>(s[i + 1]);
            if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 >= 0xa0) || (c == 0xf0 && c1 < 0x90) ||
                (c == 0xf4 && c1 >= 0x90))
                valid = false;
        }
        if (!valid) {
            out.push_back('?');
            ++i;
            continue;
        }
        out.append(s, i, len);
        i += len;
    }
    return out;
}

std::string describe_wait_status(int status) {
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char* name = strsignal(sig);
        return "killed by signal " + std::to_string(sig) +
               (name ? std::string(" (") + name + ")" : "");
    }
    return "ended with wait status " + std::to_string(status);
}

}  // namespace dataflow::cli
