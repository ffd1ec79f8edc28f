// Unit tests for dataflow-run's pacing (src/cli/pacing.*, options): --concurrency
// auto and --max-procs, the auto target, why it waits and when it says so, and
// which chunks make exit status 3.
#include <gtest/gtest.h>

#include "cli/options.h"
#include "cli/pacing.h"

using namespace dataflow::cli;

namespace {

Options parse(std::vector<const char*> args) {
    args.insert(args.begin(), "dataflow-run");
    return parse_options(static_cast<int>(args.size()), const_cast<char**>(args.data()));
}

Progress job(int64_t queued) {
    Progress p;
    p.found = true;
    p.queued = queued;
    p.total = 10;
    return p;
}

}  // namespace

TEST(CliPacing, ConcurrencyAutoAndMaxProcs) {
    Options o = parse({"--job", "j", "--concurrency", "auto", "--", "c"});
    EXPECT_TRUE(o.auto_concurrency);
    EXPECT_EQ(o.max_procs, 64);
    o = parse({"--job", "j", "-c", "auto", "--max-procs", "8", "--", "c"});
    EXPECT_TRUE(o.auto_concurrency);
    EXPECT_EQ(o.max_procs, 8);
    o = parse({"--job", "j", "--max-procs=8", "--concurrency=auto", "--", "c"});
    EXPECT_EQ(o.max_procs, 8);
    EXPECT_FALSE(parse({"--job", "j", "-c", "3", "--", "c"}).auto_concurrency);
    EXPECT_FALSE(parse({"--job", "j", "--", "c"}).auto_concurrency);  // the default stays 1
    EXPECT_EQ(parse({"--job", "j", "--", "c"}).concurrency, 1);
    EXPECT_THROW(parse({"--job", "j", "-c", "auto", "--max-procs", "0", "--", "c"}), UsageError);
    EXPECT_THROW(parse({"--job", "j", "-c", "auto", "--max-procs", "1001", "--", "c"}), UsageError);
    EXPECT_THROW(parse({"--job", "j", "-c", "3", "--max-procs", "8", "--", "c"}), UsageError);
    EXPECT_THROW(parse({"--job", "j", "--max-procs", "8", "--", "c"}), UsageError);
    EXPECT_THROW(parse({"--job", "j", "-c", "Auto", "--", "c"}), UsageError);
}

TEST(CliPacing, AutoTargetFollowsTheSmallerLimit) {
    Progress p = job(5);
    EXPECT_EQ(auto_target(p, 64), 64);  // no limit: --max-procs
    p.limit = 8;
    EXPECT_EQ(auto_target(p, 64), 8);
    EXPECT_EQ(auto_target(p, 4), 4);
    p.pool = "wh";
    p.pool_slots = 3;
    EXPECT_EQ(auto_target(p, 64), 3);
    p.limit = 2;
    EXPECT_EQ(auto_target(p, 64), 2);
    p.limit = 0;
    EXPECT_EQ(auto_target(p, 64), 0);
    p.limit = -1;
    EXPECT_EQ(auto_target(p, 64), 0);
    EXPECT_EQ(auto_target(Progress{}, 64), 1);  // unknown job: lease() says why
}

TEST(CliPacing, DescribeTarget) {
    Progress p = job(5);
    EXPECT_EQ(describe_target("j", p, 64, 64), "64 (job j has no limit: --max-procs 64)");
    p.limit = 8;
    EXPECT_EQ(describe_target("j", p, 8, 64), "8 (job j: max_concurrency 8)");
    EXPECT_EQ(describe_target("j", p, 4, 4),
              "4 (job j: max_concurrency 8; capped by --max-procs 4)");
    p.pool = "wh";
    p.pool_slots = 1;
    EXPECT_EQ(describe_target("j", p, 1, 64), "1 (job j: max_concurrency 8, pool wh: 1 slot)");
}

TEST(CliPacing, WaitReasons) {
    EXPECT_EQ(wait_reason(Progress{}), WaitReason::None);
    Progress p = job(0);
    EXPECT_EQ(wait_reason(p), WaitReason::NothingQueued);
    p.paused = true;
    EXPECT_EQ(wait_reason(p), WaitReason::Paused);  // paused first, queued or not
    p = job(4);
    EXPECT_EQ(wait_reason(p), WaitReason::NotRunnable);  // backoff, readers
    p.limit = 2;
    p.in_use = 2;
    EXPECT_EQ(wait_reason(p), WaitReason::JobLimit);
    p.in_use = 1;
    p.pool = "wh";
    p.pool_slots = 4;
    p.pool_in_use = 4;
    EXPECT_EQ(wait_reason(p), WaitReason::PoolFull);
    p.queued = 0;  // at the limit, but nothing would run anyway
    EXPECT_EQ(wait_reason(p), WaitReason::NothingQueued);
}

TEST(CliPacing, WaitMessagesSayWhatToDo) {
    Progress p = job(3);
    p.paused = true;
    EXPECT_EQ(wait_message("rollup", p, WaitReason::Paused, 0),
              "job rollup is paused: waiting (SELECT dataflow.resume_job('rollup') resumes it); "
              "3 chunks queued");
    p = job(1);
    p.limit = 1;
    p.in_use = 1;
    EXPECT_EQ(wait_message("rollup", p, WaitReason::JobLimit, 1),
              "job rollup is at its limit: 1 of max_concurrency 1 running (1 here); waiting for "
              "a slot, 1 chunk queued");
    p.pool = "wh";
    p.pool_slots = 4;
    p.pool_in_use = 4;
    EXPECT_EQ(wait_message("rollup", p, WaitReason::PoolFull, 0),
              "pool wh of job rollup is full: 4 of 4 slots in use by its jobs (0 here); waiting "
              "for a slot, 1 chunk queued");
    EXPECT_EQ(wait_message("rollup", p, WaitReason::NotRunnable, 0)
                  .rfind("nothing runnable for job rollup now: 1 queued chunk in retry backoff", 0),
              0u);
    p = job(0);
    p.waiting = 4;
    p.running = 2;
    p.done = 3;
    p.failed = 1;
    EXPECT_EQ(wait_message("rollup", p, WaitReason::NothingQueued, 2),
              "nothing to run for job rollup: no chunk queued (4 waiting for inputs, 2 running "
              "(2 here), 3 of 10 done, 1 failed); waiting for work");
}

TEST(CliPacing, WaitLogSaysEachReasonOnceUntilItChanges) {
    WaitLog w;
    EXPECT_EQ(w.observe(WaitReason::Paused, "p"), std::optional<std::string>("p"));
    EXPECT_FALSE(w.observe(WaitReason::Paused, "p"));
    EXPECT_FALSE(w.observe(WaitReason::Paused, "p (other numbers)"));
    EXPECT_EQ(w.observe(WaitReason::JobLimit, "l"), std::optional<std::string>("l"));
    EXPECT_FALSE(w.observe(WaitReason::JobLimit, "l"));
    EXPECT_FALSE(w.observe(WaitReason::None, ""));  // work again: nothing to say
    EXPECT_EQ(w.observe(WaitReason::JobLimit, "l"), std::optional<std::string>("l"));
}

TEST(CliPacing, ChunkOutcomesForgetARetryThatSucceeded) {
    ChunkOutcomes o;
    EXPECT_TRUE(o.empty());
    o.failed("d", "2024-01-01");
    o.failed("d", "2024-01-02");
    o.failed("d", "2024-01-01");  // its second attempt failed too
    o.succeeded("d", "2024-01-02");
    o.succeeded("d", "2024-01-03");  // never failed here
    auto u = o.unresolved();
    ASSERT_EQ(u.size(), 1u);
    EXPECT_EQ(u["d"], std::vector<std::string>{"2024-01-01"});
    o.succeeded("d", "2024-01-01");
    EXPECT_TRUE(o.empty());
}
