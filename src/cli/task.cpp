#include "task.h"

namespace dataflow::cli {

nlohmann::json task_json(const Task &task) {
    nlohmann::json j = {
        {"run_id", task.run_id},
        {"token", task.token},
        {"job", task.job},
        {"dataset", task.dataset},
        {"key", task.key},
        {"version", task.version},
        {"attempt", task.attempt},
        {"output_location", nullptr},
        {"inputs", task.inputs},
        {"params", task.params},
        {"deadline", task.deadline},
    };
    if (task.output_location) j["output_location"] = *task.output_location;
    return j;
}

std::string dump_json(const nlohmann::json &j, int indent) {
    return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<std::string> child_environment(char **parent_env, const Task &task,
                                           const std::string &task_file,
                                           const std::string &result_file,
                                           const std::string &dsn) {
    std::vector<std::string> env;
    // A dataflow-run started from a command of another dataflow-run must not
    // leak the outer task into the inner one.
    for (char **e = parent_env; e && *e; ++e) {
        std::string var = *e;
        if (var.rfind("DATAFLOW_", 0) == 0) continue;
        env.push_back(std::move(var));
    }
    auto add = [&](const char *name, const std::string &value) {
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
    add("DATAFLOW_PARAMS", dump_json(task.params));
    add("DATAFLOW_INPUTS", dump_json(task.inputs));
    add("DATAFLOW_TASK_FILE", task_file);
    add("DATAFLOW_RESULT_FILE", result_file);
    if (!dsn.empty()) add("DATAFLOW_DSN", dsn);
    return env;
}

}  // namespace dataflow::cli
