// Starting COMMAND for a task and collecting what it prints.
#pragma once

#include <sys/types.h>
#include <deque>
#include <functional>
#include <string>
#include <vector>

namespace dataflow::cli {

struct Child {
    pid_t pid = -1;
    int out_fd = -1;  // read end of the child's stdout, non-blocking
    int err_fd = -1;  // read end of the child's stderr, non-blocking
};

// fork + execve(path, argv, env). The child gets its own process group (so a
// Ctrl-C on the terminal reaches only dataflow-run, which decides when the
// commands stop, and stopping a command also stops what it started), default
// signal dispositions, stdin from /dev/null, stdout/stderr to pipes.
// Returns false with *error when the fork or a pipe fails.
bool spawn_child(const std::string& path, const std::vector<std::string>& argv,
                 const std::vector<std::string>& env, Child* out, std::string* error);

// Splits a byte stream into lines. Over-long lines are cut at max_line bytes.
class LineSplitter {
public:
    explicit LineSplitter(size_t max_line = 4096) : max_line_(max_line) {}
    // Calls emit(line) (without '\n') for each complete line in data.
    void feed(const char* data, size_t n, const std::function<void(const std::string&)>& emit);
    // Emits the unterminated rest, if any.
    void finish(const std::function<void(const std::string&)>& emit);

private:
    size_t max_line_;
    std::string partial_;
};

// The last max_lines lines, for the error of a failed run.
class Tail {
public:
    explicit Tail(size_t max_lines = 20, size_t max_bytes = 4000)
        : max_lines_(max_lines), max_bytes_(max_bytes) {}
    void add(const std::string& line);
    std::string text() const;  // lines joined with '\n'

private:
    size_t max_lines_, max_bytes_, bytes_ = 0;
    std::deque<std::string> lines_;
};

// Makes arbitrary bytes safe to send as text: invalid UTF-8 and control
// characters other than '\n' and '\t' become '?'.
std::string sanitize_text(const std::string& s);

// "exited with status 3", "killed by signal 9 (Killed)".
std::string describe_wait_status(int status);

}  // namespace dataflow::cli
