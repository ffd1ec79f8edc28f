#include "pacing.h"

#include <algorithm>

namespace dataflow::cli {

namespace {

std::string plural(int64_t n, const char* one, const char* many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

int auto_target(const Progress& p, int max_procs) {
    if (!p.found) return 1;
    int64_t t = max_procs;
    if (p.limit) t = std::min(t, *p.limit);
    if (p.pool_slots) t = std::min(t, *p.pool_slots);
    return static_cast<int>(std::max<int64_t>(t, 0));
}

std::string describe_target(const std::string& job, const Progress& p, int target, int max_procs) {
    std::string why;
    if (!p.found) {
        why = "job " + job + " not found";
    } else {
        if (p.limit) why = "job " + job + ": max_concurrency " + std::to_string(*p.limit);
        if (p.pool_slots) {
            if (!why.empty()) why += ", ";
            why += "pool " + p.pool + ": " + plural(*p.pool_slots, "slot", "slots");
        }
        if (!p.limit && !p.pool_slots)
            why = "job " + job + " has no limit: --max-procs " + std::to_string(max_procs);
        else if (target == max_procs)
            why += "; capped by --max-procs " + std::to_string(max_procs);
    }
    return std::to_string(target) + " (" + why + ")";
}

WaitReason wait_reason(const Progress& p) {
    if (!p.found) return WaitReason::None;
    if (p.paused) return WaitReason::Paused;
    if (p.queued <= 0) return WaitReason::NothingQueued;
    if (p.limit && p.in_use >= *p.limit) return WaitReason::JobLimit;
    if (p.pool_slots && p.pool_in_use >= *p.pool_slots) return WaitReason::PoolFull;
    return WaitReason::NotRunnable;
}

std::string wait_message(const std::string& job, const Progress& p, WaitReason r,
                         int running_here) {
    std::string here = std::to_string(running_here) + " here";
    switch (r) {
        case WaitReason::None: return "";
        case WaitReason::Paused:
            return "job " + job + " is paused: waiting (SELECT dataflow.resume_job('" + job +
                   "') resumes it); " + plural(p.queued, "chunk", "chunks") + " queued";
        case WaitReason::NothingQueued: {
            std::string s = "nothing to run for job " + job + ": no chunk queued (";
            s += std::to_string(p.waiting) + " waiting for inputs, " + std::to_string(p.running) +
                 " running (" + here + "), " + std::to_string(p.done) + " of " +
                 std::to_string(p.total) + " done";
            if (p.failed > 0) s += ", " + std::to_string(p.failed) + " failed";
            return s + "); waiting for work";
        }
        case WaitReason::JobLimit:
            return "job " + job + " is at its limit: " + std::to_string(p.in_use) +
                   " of max_concurrency " + std::to_string(*p.limit) + " running (" + here +
                   "); waiting for a slot, " + plural(p.queued, "chunk", "chunks") + " queued";
        case WaitReason::PoolFull:
            return "pool " + p.pool + " of job " + job +
                   " is full: " + std::to_string(p.pool_in_use) + " of " +
                   plural(*p.pool_slots, "slot", "slots") + " in use by its jobs (" + here +
                   "); waiting for a slot, " + plural(p.queued, "chunk", "chunks") + " queued";
        case WaitReason::NotRunnable:
            return "nothing runnable for job " + job +
                   " now: " + plural(p.queued, "queued chunk", "queued chunks") +
                   " in retry backoff or held back (readers of a previous version, a busy "
                   "'latest' input; dataflow.blockers(dataset, key) says which)";
    }
    return "";
}

std::optional<std::string> WaitLog::observe(WaitReason r, const std::string& message) {
    if (r == last_) return std::nullopt;
    last_ = r;
    if (r == WaitReason::None) return std::nullopt;
    return message;
}

void ChunkOutcomes::failed(const std::string& dataset, const std::string& key) {
    failed_.insert({dataset, key});
}

void ChunkOutcomes::succeeded(const std::string& dataset, const std::string& key) {
    failed_.erase({dataset, key});
}

std::map<std::string, std::vector<std::string>> ChunkOutcomes::unresolved() const {
    std::map<std::string, std::vector<std::string>> out;
    for (const auto& [dataset, key] : failed_) out[dataset].push_back(key);
    return out;
}

}  // namespace dataflow::cli
