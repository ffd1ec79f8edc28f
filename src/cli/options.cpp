// Command-line parsing for dataflow-run: long options, "--opt VALUE" or
// "--opt=VALUE", everything after "--" is the command.
#include "options.h"

#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace dataflow::cli {

namespace {

double parse_seconds(const std::string& opt, const std::string& value, bool allow_zero) {
    errno = 0;
    char* end = nullptr;
    double v = std::strtod(value.c_str(), &end);
    if (value.empty() || errno != 0 || end == nullptr || *end != '\0' || !std::isfinite(v) ||
        v < 0 || (!allow_zero && v == 0) || v > 86400.0 * 365)
        throw UsageError(opt + ": expected a number of seconds, got '" + value + "'");
    return v;
}

int parse_count(const std::string& opt, const std::string& value) {
    errno = 0;
    char* end = nullptr;
    long v = std::strtol(value.c_str(), &end, 10);
    if (value.empty() || errno != 0 || end == nullptr || *end != '\0' || v < 1 || v > 1000)
        throw UsageError(opt + ": expected an integer from 1 to 1000, got '" + value + "'");
    return static_cast<int>(v);
}

bool is_executable_file(const std::string& path, int* error) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
        *error = ENOENT;
        return false;
    }
    if (!S_ISREG(st.st_mode) || access(path.c_str(), X_OK) != 0) {
        *error = EACCES;
        return false;
    }
    return true;
}

}  // namespace

const char* usage_text() {
    return "usage: dataflow-run --job NAME [options] -- COMMAND [ARG...]\n"
           "\n"
           "Leases chunks of a pull job from pg_dataflow and runs COMMAND once per chunk,\n"
           "with the task in DATAFLOW_* environment variables; completes the run when\n"
           "COMMAND exits 0 and fails it (with the last stderr lines) otherwise.\n"
           "\n"
           "options:\n"
           "  -j, --job NAME         the job whose chunks to run (required)\n"
           "  -c, --concurrency N    run up to N commands at once (default 1)\n"
           "  -c, --concurrency auto follow the job's max_concurrency and its pool's slots\n"
           "                         as they change (read every second), up to --max-procs\n"
           "      --max-procs N      the most commands auto runs at once (default 64)\n"
           "      --until-idle       exit when nothing of the job is queued or running\n"
           "      --once             lease at most one batch (N chunks), run it, exit\n"
           "      --dsn DSN          libpq connection string or URI (default: PG* variables)\n"
           "      --worker NAME      worker name recorded on each run (default host:pid)\n"
           "      --lease-for SECS   lease duration to ask for (default: the job's)\n"
           "      --heartbeat SECS   heartbeat interval (default: a third of the lease)\n"
           "      --grace SECS       on SIGTERM/SIGINT/SIGHUP, time running commands get to\n"
           "                         finish before they are stopped (default 30)\n"
           "  -q, --quiet            do not relay the commands' output\n"
           "  -h, --help             this text\n"
           "\n"
           "exit status: 0 every chunk it ran succeeded, perhaps after a retry (or nothing to "
           "do);\n"
           "1 runtime error (database, unknown job); 2 usage error; 3 a chunk whose last attempt\n"
           "here failed is not available at exit (failed for good, or its retry not done yet);\n"
           "126/127 COMMAND not executable / not found; 128+signal when stopped by a signal\n"
           "and commands had to be cut off.\n";
}

Options parse_options(int argc, char** argv) {
    Options o;
    bool have_mode = false, have_max_procs = false;
    int i = 1;
    for (; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--") {
            ++i;
            break;
        }
        if (arg.empty() || arg[0] != '-')
            throw UsageError("unexpected argument '" + arg + "' (put the command after --)");

        std::string name = arg, value;
        bool inline_value = false;
        if (auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
            name = arg.substr(0, eq);
            value = arg.substr(eq + 1);
            inline_value = true;
        }
        auto take = [&]() -> std::string {
            if (inline_value) return value;
            if (i + 1 >= argc) throw UsageError(name + " needs a value");
            return argv[++i];
        };
        auto no_value = [&]() {
            if (inline_value) throw UsageError(name + " takes no value");
        };
        auto set_mode = [&](Mode m) {
            no_value();
            if (have_mode && o.mode != m)
                throw UsageError("--until-idle and --once exclude each other");
            o.mode = m;
            have_mode = true;
        };

        if (name == "-h" || name == "--help") {
            o.help = true;
            return o;
        } else if (name == "-j" || name == "--job") {
            o.job = take();
            if (o.job.empty()) throw UsageError("--job must not be empty");
        } else if (name == "-c" || name == "--concurrency") {
            std::string v = take();
            o.auto_concurrency = v == "auto";
            try {
                if (!o.auto_concurrency) o.concurrency = parse_count(name, v);
            } catch (const UsageError&) {
                throw UsageError(name + ": expected an integer from 1 to 1000 or 'auto', got '" +
                                 v + "'");
            }
        } else if (name == "--max-procs") {
            o.max_procs = parse_count(name, take());
            have_max_procs = true;
        } else if (name == "--until-idle") {
            set_mode(Mode::UntilIdle);
        } else if (name == "--once") {
            set_mode(Mode::Once);
        } else if (name == "--dsn") {
            o.dsn = take();
        } else if (name == "--worker") {
            o.worker = take();
            if (o.worker.empty()) throw UsageError("--worker must not be empty");
        } else if (name == "--lease-for") {
            o.lease_for = parse_seconds(name, take(), false);
        } else if (name == "--heartbeat") {
            o.heartbeat = parse_seconds(name, take(), false);
        } else if (name == "--grace") {
            o.grace = parse_seconds(name, take(), true);
        } else if (name == "-q" || name == "--quiet") {
            no_value();
            o.quiet = true;
        } else {
            throw UsageError("unknown option '" + name + "'");
        }
    }
    for (; i < argc; ++i) o.command.emplace_back(argv[i]);

    if (o.job.empty()) throw UsageError("--job is required");
    if (have_max_procs && !o.auto_concurrency)
        throw UsageError("--max-procs goes with --concurrency auto (a fixed N is the count)");
    if (o.command.empty()) throw UsageError("no command given (put it after --)");
    if (o.command[0].empty()) throw UsageError("the command name is empty");
    if (o.lease_for > 0 && o.heartbeat >= o.lease_for)
        throw UsageError("--heartbeat must be shorter than --lease-for");
    return o;
}

ResolvedCommand resolve_command(const std::string& program, const char* path_env) {
    ResolvedCommand r;
    if (program.find('/') != std::string::npos) {
        r.path = program;
        is_executable_file(program, &r.error);
        return r;
    }
    // Same search order as execvp(): each PATH element, an empty one meaning ".".
    std::string path = path_env && *path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
    int first_error = ENOENT;
    size_t start = 0;
    while (true) {
        size_t colon = path.find(':', start);
        std::string dir =
            path.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
        std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + program;
        int error = 0;
        if (is_executable_file(candidate, &error)) {
            r.path = candidate;
            return r;
        }
        if (error == EACCES) first_error = EACCES;
        if (colon == std::string::npos) break;
        start = colon + 1;
    }
    r.error = first_error;
    return r;
}

}  // namespace dataflow::cli
