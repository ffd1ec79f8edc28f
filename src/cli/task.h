// One leased task (a row of dataflow.task) and how it is handed to COMMAND:
// DATAFLOW_* environment variables plus the whole task as a JSON file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dataflow::cli {

struct Task {
    int64_t run_id = 0;
    std::string token;
    std::string job;
    std::string dataset;
    std::string key;
    int version = 0;
    int attempt = 0;
    std::optional<std::string> output_location;
    std::string inputs = "[]";  // JSON text as the server sent it (jsonb)
    std::string params = "{}";  // JSON text
    std::string deadline;       // as the server printed it
    double lease_seconds = 0;   // deadline - now() on the database clock
};

// The task as one JSON object, indented: the content of DATAFLOW_TASK_FILE.
// (nlohmann_json stays inside task.cpp and result_file.cpp: it is slow to compile.)
std::string task_file_json(const Task& task);

// "NAME=value" strings for the child: the caller's environment with every
// inherited DATAFLOW_* variable replaced by this task's.
std::vector<std::string> child_environment(char** parent_env, const Task& task,
                                           const std::string& task_file,
                                           const std::string& result_file, const std::string& dsn);

}  // namespace dataflow::cli
