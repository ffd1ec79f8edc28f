// dataflow.* GUCs read by the background worker (defined in settings.cpp; each
// documented with unit and default in docs/worker.md).
#pragma once

#include <climits>
#include <string>

namespace dataflow::settings {

void define();  // from _PG_init

struct Snapshot {
    std::string database;
    bool enabled;
    int naptime_ms;
    int http_concurrency;
    int http_connect_timeout_ms;
    int http_timeout_ms;
    std::string http_allow;
    int http_max_body;
    int poll_interval_ms;
    int retention_s;
};
// A copy of the current values (call after ProcessConfigFile on SIGHUP).
Snapshot current();

}  // namespace dataflow::settings
