// Command-line options of dataflow-run and the up-front checks on them.
// Pure C++ (no libpq), so it can be unit-tested on its own.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace dataflow::cli {

enum class Mode { Forever, UntilIdle, Once };

struct Options {
    std::string job;
    int concurrency = 1;            // a fixed number of commands at once
    bool auto_concurrency = false;  // --concurrency auto: follow the job's limits
    int max_procs = 64;             // the most commands auto may run
    Mode mode = Mode::Forever;
    std::string dsn;       // empty: libpq defaults (PGHOST, PGDATABASE, ...)
    std::string worker;    // empty: "<hostname>:<pid>"
    double lease_for = 0;  // seconds; 0: the job's own lease duration
    double heartbeat = 0;  // seconds; 0: a third of the remaining lease
    double grace = 30;     // seconds a running command may finish after SIGTERM
    bool quiet = false;    // do not relay the command's stdout/stderr lines
    std::vector<std::string> command;
    bool help = false;
};

// A bad command line: main() prints the message and the usage, exits 2.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Throws UsageError. Sets help and returns early for --help.
Options parse_options(int argc, char** argv);

const char* usage_text();

// Resolution of COMMAND's program through PATH, done once before any lease so a
// typo fails at start instead of failing every chunk of the job.
struct ResolvedCommand {
    std::string path;  // absolute or relative path to execve()
    int error = 0;     // 0, ENOENT (not found) or EACCES (not executable)
};
ResolvedCommand resolve_command(const std::string& program, const char* path_env);

}  // namespace dataflow::cli
