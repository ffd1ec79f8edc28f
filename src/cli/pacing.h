// How many commands dataflow-run runs at once, why it waits when it runs fewer,
// and which chunks decide its exit status. Pure C++ (no libpq): unit-tested.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace dataflow::cli {

// One row of the dataflow.jobs view, which the dataflow_worker role may read (the
// base tables are admin-only): the chunk counts of the job's output dataset, and
// its limits with the live leases counted against them.
struct Progress {
    bool found = false;                                  // the view has a row for the job
    int64_t done = 0;                                    // ready + validated + skipped
    int64_t total = 0;                                   // every chunk of the output dataset
    int64_t failed = 0;                                  // failed with no attempts left
    int64_t queued = 0;                                  // runnable now or after a retry backoff
    int64_t running = 0;                                 // leased, here or elsewhere
    int64_t waiting = 0;                                 // waiting for inputs
    bool paused = false;                                 // pause_job()
    std::optional<int64_t> limit;                        // max_concurrency (none: unlimited)
    int64_t in_use = 0;                                  // live leases of the job
    std::string pool;                                    // empty: no pool
    std::optional<int64_t> pool_slots;                   // the pool's slots
    int64_t pool_in_use = 0;                             // live leases of every job of the pool
    int64_t active() const { return queued + running; }  // what --until-idle waits for
};

// --concurrency auto: the job's max_concurrency and its pool's slots, whichever is
// smaller, at most max_procs; max_procs when the job has neither. Never negative.
// The server's lease() enforces both limits across every worker; this only sizes
// how many this process asks for. An unknown job gives 1 (lease() then says why).
int auto_target(const Progress& p, int max_procs);
// "8 (job j: max_concurrency 8)", for the log line that announces a new target.
std::string describe_target(const std::string& job, const Progress& p, int target, int max_procs);

// Why a lease returned fewer chunks than there were free slots.
enum class WaitReason { None, Paused, NothingQueued, JobLimit, PoolFull, NotRunnable };
WaitReason wait_reason(const Progress& p);
// One line for the log; running_here: commands this process runs now.
std::string wait_message(const std::string& job, const Progress& p, WaitReason r, int running_here);

// Says a reason once, and again only when it changes; a lease that filled every
// free slot (None) ends the wait, so the next one is said again.
class WaitLog {
public:
    // The message to log now, or nullopt.
    std::optional<std::string> observe(WaitReason r, const std::string& message);

private:
    WaitReason last_ = WaitReason::None;
};

// The chunks whose last attempt in this process failed (exit status 3 unless they
// became available meanwhile, e.g. by a retry elsewhere). A later success here
// removes a chunk.
class ChunkOutcomes {
public:
    void failed(const std::string& dataset, const std::string& key);
    void succeeded(const std::string& dataset, const std::string& key);
    // dataset -> keys still counted as failed.
    std::map<std::string, std::vector<std::string>> unresolved() const;
    bool empty() const { return failed_.empty(); }

private:
    std::set<std::pair<std::string, std::string>> failed_;
};

}  // namespace dataflow::cli
