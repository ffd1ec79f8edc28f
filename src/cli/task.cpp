#include "task.h"

#include <nlohmann/json.hpp>

namespace dataflow::cli {

namespace {

// Serialise without ever throwing on bad UTF-8: bad bytes are replaced, never thrown.
std::string dump_json(const nlohmann::json& j, int indent = -1) {
    return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

// JSON text from the server, or fallback when it does not parse.
nlohmann::json parse_or(const std::string& text, const nlohmann::json& fallback) {
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    return j.is_discarded() ? fallback : j;
}

nlohmann::json task_json(const Task& task) {
    nlohmann::json j = {
        {"run_id", task.run_id},
        {"token", task.token},
        {"job", task.job},
        {"dataset", task.dataset},
        {"key", task.key},
        {"version", task.version},
        {"attempt", task.attempt},
        {"output_location", nullptr},
        {"inputs", parse_or(task.inputs, nlohmann::json::array())},
        {"params", parse_or(task.params, nlohmann::json::object())},
        {"deadline", task.deadline},
    };
    if (task.output_location) j["output_location"] = *task.output_location;
    return j;
}

}  // namespace

std::string task_file_json(const Task& task) {
    return dump_json(task_json(task), 2) + "\n";
}

std::vector<std::string> child_environment(char** parent_env, const Task& task,
                                           const std::string& task_file,
                                           const std::string& result_file, const std::string& dsn) {
    std::vector<std::string> env;
    // A dataflow-run started from a command of another dataflow-run must not
    // leak the outer task into the inner one.
    for (char** e = parent_env; e && *e; ++e) {
        std::string var = *e;
        if (var.rfind("DATAFLOW_", 0) == 0) continue;
        env.push_back(std::move(var));
    }
    auto add = [&](const char* name, const std::string& value) {
        env.push_back(std::string(name) + "=" + value);
    };
    add("DATAFLOW_RUN_ID", std::to_string(task.run_id));
    add("DATAFLOW_TOKEN", task.token);
    add("DATAFLOW_JOB", task.job);
    add("DATAFLOW_DATASET", task.dataset);
    add("DATAFLOW_KEY", task.key);
    add("DATAFLOW_VERSION", std::to_string(task.version));
    add("DATAFLOW_ATTEMPT", std::to_string(task.attempt));
    add("DATAFLOW_OUTPUT", task.output_location.value_or(""));
    // Compact, as one line, whatever spacing the server used.
    add("DATAFLOW_PARAMS", dump_json(parse_or(task.params, nlohmann::json::object())));
    add("DATAFLOW_INPUTS", dump_json(parse_or(task.inputs, nlohmann::json::array())));
    add("DATAFLOW_TASK_FILE", task_file);
    add("DATAFLOW_RESULT_FILE", result_file);
    if (!dsn.empty()) add("DATAFLOW_DSN", dsn);
    return env;
}

}  // namespace dataflow::cli
