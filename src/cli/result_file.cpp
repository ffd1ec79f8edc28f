#include "result_file.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace dataflow::cli {

namespace {

constexpr size_t kMaxResultBytes = 1 << 20;

std::string trim(const std::string& s) {
    size_t b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return "";
    size_t e = s.find_last_not_of(" \t\r\n");
    return s.substr(b, e - b + 1);
}

bool parse_row_count(const std::string& text, int64_t* out) {
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) return false;
    errno = 0;
    char* end = nullptr;
    long long v = std::strtoll(text.c_str(), &end, 10);
    if (errno != 0 || *end != '\0') return false;
    *out = v;
    return true;
}

void add_info(nlohmann::json* info, const std::string& key, nlohmann::json value) {
    (*info)[key] = std::move(value);
}

void set_info(RunResult* out, const nlohmann::json& info) {
    if (!info.empty())
        out->info = info.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool parse_json_result(const std::string& content, RunResult* out, std::string* error) {
    nlohmann::json info = nlohmann::json::object();
    nlohmann::json j = nlohmann::json::parse(content, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        *error = "result file is not a JSON object";
        return false;
    }
    for (auto it = j.begin(); it != j.end(); ++it) {
        const std::string& k = it.key();
        const nlohmann::json& v = it.value();
        if (v.is_null()) continue;
        if (k == "row_count") {
            int64_t n = 0;
            if (v.is_number_unsigned() && v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX)) {
                out->row_count = static_cast<int64_t>(v.get<uint64_t>());
            } else if (v.is_string() && parse_row_count(v.get<std::string>(), &n)) {
                out->row_count = n;
            } else {
                *error = "result file: row_count must be a non-negative integer";
                return false;
            }
        } else if (k == "checksum" || k == "location") {
            if (!v.is_string()) {
                *error = "result file: " + k + " must be a string";
                return false;
            }
            (k == "checksum" ? out->checksum : out->location) = v.get<std::string>();
        } else if (k == "info") {
            if (!v.is_object()) {
                *error = "result file: info must be a JSON object";
                return false;
            }
            for (auto f = v.begin(); f != v.end(); ++f) add_info(&info, f.key(), f.value());
        } else {
            add_info(&info, k, v);
        }
    }
    set_info(out, info);
    return true;
}

bool parse_line_result(const std::string& content, RunResult* out, std::string* error) {
    nlohmann::json info = nlohmann::json::object();
    std::istringstream in(content);
    std::string line;
    int lineno = 0;
    while (std::getline(in, line)) {
        ++lineno;
        std::string t = trim(line);
        if (t.empty() || t[0] == '#') continue;
        size_t eq = t.find('=');
        std::string key = eq == std::string::npos ? "" : trim(t.substr(0, eq));
        if (key.empty()) {
            *error = "result file line " + std::to_string(lineno) + ": expected KEY=VALUE";
            return false;
        }
        std::string value = trim(t.substr(eq + 1));
        if (key == "row_count") {
            int64_t n = 0;
            if (!parse_row_count(value, &n)) {
                *error = "result file line " + std::to_string(lineno) +
                         ": row_count must be a non-negative integer, got '" + value + "'";
                return false;
            }
            out->row_count = n;
        } else if (key == "checksum") {
            out->checksum = value;
        } else if (key == "location") {
            out->location = value;
        } else {
            add_info(&info, key, value);
        }
    }
    set_info(out, info);
    return true;
}

}  // namespace

bool parse_result(const std::string& content, RunResult* out, std::string* error) {
    *out = RunResult{};
    std::string t = trim(content);
    if (t.empty()) return true;
    if (t[0] == '{') return parse_json_result(t, out, error);
    return parse_line_result(t, out, error);
}

bool read_result_file(const std::string& path, RunResult* out, std::string* error) {
    *out = RunResult{};
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) {
        if (errno == ENOENT) return true;
        *error = "cannot read result file " + path + ": " + std::strerror(errno);
        return false;
    }
    std::string content(kMaxResultBytes + 1, '\0');
    size_t n = std::fread(&content[0], 1, content.size(), f);
    bool failed = std::ferror(f) != 0;
    std::fclose(f);
    if (failed) {
        *error = "cannot read result file " + path;
        return false;
    }
    content.resize(n);
    if (content.size() > kMaxResultBytes) {
        *error = "result file is larger than 1 MiB";
        return false;
    }
    return parse_result(content, out, error);
}

}  // namespace dataflow::cli
