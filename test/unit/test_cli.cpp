// Unit tests for the Postgres-free parts of dataflow-run (src/cli): option
// parsing, command resolution, result files, output handling, task environment.
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>

#include "cli/child.h"
#include "cli/options.h"
#include "cli/result_file.h"
#include "cli/task.h"

using namespace dataflow::cli;

namespace {

Options parse(std::vector<const char*> args) {
    args.insert(args.begin(), "dataflow-run");
    return parse_options(static_cast<int>(args.size()), const_cast<char**>(args.data()));
}

}  // namespace

TEST(CliOptions, ParsesLongAndInlineForms) {
    Options o =
        parse({"--job=j", "-c", "3", "--until-idle", "--lease-for", "60", "--", "cmd", "--flag"});
    EXPECT_EQ(o.job, "j");
    EXPECT_EQ(o.concurrency, 3);
    EXPECT_EQ(o.mode, Mode::UntilIdle);
    EXPECT_DOUBLE_EQ(o.lease_for, 60);
    ASSERT_EQ(o.command.size(), 2u);
    EXPECT_EQ(o.command[1], "--flag");  // after --, options belong to the command
}

TEST(CliOptions, RefusesBadCommandLines) {
    EXPECT_THROW(parse({"--", "cmd"}), UsageError);   // no job
    EXPECT_THROW(parse({"--job", "j"}), UsageError);  // no command
    EXPECT_THROW(parse({"--job", "j", "-c", "0", "--", "c"}), UsageError);
    EXPECT_THROW(parse({"--job", "j", "-c", "1001", "--", "c"}), UsageError);
    EXPECT_THROW(parse({"--job", "j", "--once", "--until-idle", "--", "c"}), UsageError);
    EXPECT_THROW(parse({"--job", "j", "--lease-for", "0", "--", "c"}), UsageError);
    EXPECT_THROW(parse({"--job", "j", "--grace", "-1", "--", "c"}), UsageError);
    EXPECT_THROW(parse({"--job", "j", "--lease-for", "5", "--heartbeat", "5", "--", "c"}),
                 UsageError);
    EXPECT_THROW(parse({"--job", "j", "--once=yes", "--", "c"}), UsageError);
    EXPECT_THROW(parse({"--job", "j", "stray", "--", "c"}), UsageError);
    EXPECT_EQ(parse({"--job", "j", "--grace", "0", "--", "c"}).grace, 0);
    EXPECT_TRUE(parse({"--help"}).help);
}

TEST(CliOptions, ResolvesCommandsLikeExecvp) {
    EXPECT_EQ(resolve_command("sh", "/nonexistent::/bin").path, "/bin/sh");
    EXPECT_EQ(resolve_command("no-such-command-xyz", "/bin").error, ENOENT);
    EXPECT_EQ(resolve_command("/etc/passwd", nullptr).error, EACCES);  // not executable
    EXPECT_EQ(resolve_command("/bin/sh", nullptr).error, 0);
}

TEST(CliResult, EmptyIsAnEmptyResult) {
    RunResult r;
    std::string e;
    ASSERT_TRUE(parse_result(" \n", &r, &e));
    EXPECT_FALSE(r.row_count);
    EXPECT_FALSE(r.info);
}

TEST(CliResult, KeyValueLines) {
    RunResult r;
    std::string e;
    ASSERT_TRUE(
        parse_result("row_count=5\n# comment\nchecksum = ab \nlocation=/x\nhost=h1\n", &r, &e));
    EXPECT_EQ(*r.row_count, 5);
    EXPECT_EQ(*r.checksum, "ab");
    EXPECT_EQ(*r.location, "/x");
    EXPECT_EQ(*r.info, R"({"host":"h1"})");
    EXPECT_FALSE(parse_result("row_count=-1", &r, &e));
    EXPECT_FALSE(parse_result("row_count=many", &r, &e));
    EXPECT_FALSE(parse_result("just text", &r, &e));
}

TEST(CliResult, JsonObject) {
    RunResult r;
    std::string e;
    ASSERT_TRUE(parse_result(
        R"({"row_count": 3, "checksum": "c", "info": {"a": 1}, "extra": true})", &r, &e));
    EXPECT_EQ(*r.row_count, 3);
    EXPECT_EQ(*r.checksum, "c");
    EXPECT_EQ(*r.info, R"({"a":1,"extra":true})");
    ASSERT_TRUE(parse_result(R"({"row_count": "12"})", &r, &e));
    EXPECT_EQ(*r.row_count, 12);
    EXPECT_FALSE(parse_result(R"({"row_count": -3})", &r, &e));
    EXPECT_FALSE(parse_result(R"({"row_count": 1.5})", &r, &e));
    EXPECT_FALSE(parse_result(R"({"row_count": 18446744073709551615})", &r, &e));
    EXPECT_FALSE(parse_result(R"({"info": 3})", &r, &e));
    EXPECT_FALSE(parse_result(R"({"checksum": 3})", &r, &e));
    EXPECT_FALSE(parse_result("{broken", &r, &e));
}

TEST(CliResult, MissingFileIsEmpty) {
    RunResult r;
    std::string e;
    EXPECT_TRUE(read_result_file("/nonexistent/dir/result", &r, &e));
    EXPECT_FALSE(r.row_count);
}

TEST(CliOutput, SplitsLinesAndCutsLongOnes) {
    std::vector<std::string> lines;
    auto emit = [&](const std::string& l) { lines.push_back(l); };
    LineSplitter ls(4);
    std::string data = "ab\r\ncdefgh\nx";
    ls.feed(data.data(), data.size(), emit);
    ls.finish(emit);
    EXPECT_EQ(lines, (std::vector<std::string>{"ab", "cdef", "gh", "x"}));
}

TEST(CliOutput, TailKeepsTheLastLines) {
    Tail t(3, 100);
    for (int i = 0; i < 10; ++i) t.add("l" + std::to_string(i));
    EXPECT_EQ(t.text(), "l7\nl8\nl9");
    Tail small(20, 8);
    small.add("0123456789abcdef");
    EXPECT_EQ(small.text(), "89abcdef");  // bounded in bytes too
}

TEST(CliOutput, SanitizesToValidUtf8) {
    EXPECT_EQ(sanitize_text("a\xff"
                            "b\x01\tc\xc3\xa9"),
              "a?b?\tc\xc3\xa9");
    EXPECT_EQ(sanitize_text("\xed\xa0\x80"), "???");  // surrogate
    EXPECT_EQ(sanitize_text("\xc0\xaf"), "??");       // overlong
    EXPECT_EQ(sanitize_text("\xf0\x9f\x98\x80"), "\xf0\x9f\x98\x80");
    EXPECT_EQ(sanitize_text("\xe2\x82"), "??");  // truncated
}

TEST(CliOutput, DescribesWaitStatus) {
    EXPECT_EQ(describe_wait_status(3 << 8), "exited with status 3");
    EXPECT_EQ(describe_wait_status(9).rfind("killed by signal 9", 0), 0u);
}

TEST(CliTask, EnvironmentReplacesInheritedDataflowVariables) {
    Task t;
    t.run_id = 7;
    t.token = "tok";
    t.job = "rollup";
    t.dataset = "daily";
    t.key = "2024-01-01";
    t.version = 2;
    t.attempt = 1;
    t.inputs = R"([{"dataset": "raw", "key": "2024-01-01"}])";
    const char* parent[] = {"PATH=/bin", "DATAFLOW_KEY=stale", nullptr};
    auto env = child_environment(const_cast<char**>(parent), t, "/t/task", "/t/result", "");
    auto has = [&](const std::string& v) {
        return std::find(env.begin(), env.end(), v) != env.end();
    };
    EXPECT_TRUE(has("PATH=/bin"));
    EXPECT_FALSE(has("DATAFLOW_KEY=stale"));
    EXPECT_TRUE(has("DATAFLOW_KEY=2024-01-01"));
    EXPECT_TRUE(has("DATAFLOW_VERSION=2"));
    EXPECT_TRUE(has("DATAFLOW_OUTPUT="));
    EXPECT_TRUE(has(R"(DATAFLOW_INPUTS=[{"dataset":"raw","key":"2024-01-01"}])"));
    EXPECT_TRUE(has("DATAFLOW_PARAMS={}"));
    EXPECT_TRUE(has("DATAFLOW_RESULT_FILE=/t/result"));
    for (const auto& v : env) EXPECT_NE(v.rfind("DATAFLOW_DSN=", 0), 0u);  // only with --dsn
    EXPECT_NE(task_file_json(t).find("\"output_location\": null"), std::string::npos);
}
