// The optional result a command writes to DATAFLOW_RESULT_FILE, passed on to
// dataflow.complete(token, row_count, checksum, info, location).
//
// Two accepted forms (see docs/cli.md):
//   JSON:   {"row_count": 24, "checksum": "ab12", "info": {...}, "location": "s3://..."}
//   lines:  row_count=24          one KEY=VALUE per line; '#' starts a comment;
//           checksum=ab12         any other KEY goes into info as a string
//           location=s3://...
// A missing or empty file is an empty result.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace dataflow::cli {

struct RunResult {
    std::optional<int64_t> row_count;
    std::optional<std::string> checksum;
    std::optional<std::string> location;
    std::optional<std::string> info;  // JSON object text, when any info was given
};

// Parses the content of a result file. Returns false and sets *error when the
// content is malformed (the run is then failed: a bad result is not a success).
bool parse_result(const std::string& content, RunResult* out, std::string* error);

// Reads and parses a file; a file that does not exist is an empty result.
bool read_result_file(const std::string& path, RunResult* out, std::string* error);

}  // namespace dataflow::cli
