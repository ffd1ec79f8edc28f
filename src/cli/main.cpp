// dataflow-run: runs a shell command for every chunk a pull job leases.
// See docs/cli.md for the user's view and README.md here for the internals.
#include <unistd.h>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "db.h"
#include "options.h"
#include "progress.h"
#include "runner.h"

using namespace dataflow::cli;

namespace {

int run_main(int argc, char** argv) {
    Options opt;
    try {
        opt = parse_options(argc, argv);
    } catch (const UsageError& e) {
        std::fprintf(stderr, "dataflow-run: %s\n\n%s", e.what(), usage_text());
        return kExitUsage;
    }
    if (opt.help) {
        std::fputs(usage_text(), stdout);
        return kExitOk;
    }

    // Refuse to start when COMMAND cannot run: otherwise every chunk of the
    // job would be leased and failed in turn.
    ResolvedCommand cmd = resolve_command(opt.command[0], std::getenv("PATH"));
    if (cmd.error == ENOENT) {
        std::fprintf(stderr, "dataflow-run: command not found: %s\n", opt.command[0].c_str());
        return kExitNotFound;
    }
    if (cmd.error != 0) {
        std::fprintf(stderr, "dataflow-run: command is not executable: %s\n",
                     opt.command[0].c_str());
        return kExitNotExecutable;
    }

    Db db;
    std::string error;
    if (!db.connect(opt.dsn, &error)) {
        std::fprintf(stderr, "dataflow-run: cannot connect to the database: %s\n", error.c_str());
        return kExitRuntime;
    }
    int signal_fd = install_signal_handlers(&error);
    if (signal_fd < 0) {
        std::fprintf(stderr, "dataflow-run: %s\n", error.c_str());
        return kExitRuntime;
    }

    Reporter reporter(opt.job, isatty(STDERR_FILENO) == 1);
    int code;
    {
        Runner runner(opt, cmd.path, db, reporter, signal_fd);
        code = runner.run();
    }
    reporter.finish();
    return code;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run_main(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "dataflow-run: internal error: %s\n", e.what());
    } catch (...) {
        std::fprintf(stderr, "dataflow-run: internal error\n");
    }
    return kExitRuntime;
}
