// The Postgres-free parts of lease/heartbeat/complete (src/core/hot_path_c.h).
#include <gtest/gtest.h>

#include <string>

#include "core/hot_path_c.h"

namespace {

bool ok(const std::string& s) {
    return df_core_worker_name_ok(s.data(), s.size());
}

TEST(WorkerName, AcceptsPrintableNamesUpTo200Characters) {
    EXPECT_TRUE(ok("w"));
    EXPECT_TRUE(ok("worker-1@host:1234"));
    EXPECT_TRUE(ok(std::string(200, 'x')));
    // 200 characters of two bytes each: the limit counts characters, not bytes
    std::string umlauts;
    for (int i = 0; i < 200; i++) umlauts += "\xc3\xa4";
    EXPECT_TRUE(ok(umlauts));
    EXPECT_TRUE(ok("\xe6\x97\xa5\xe6\x9c\xac"));  // CJK
    EXPECT_TRUE(ok("\xf0\x9f\x9a\x80 rocket"));   // 4-byte code point
}

TEST(WorkerName, RefusesEmptyLongAndControlCharacters) {
    EXPECT_FALSE(ok(""));
    EXPECT_FALSE(df_core_worker_name_ok(nullptr, 0));
    EXPECT_FALSE(ok(std::string(201, 'x')));
    std::string umlauts;
    for (int i = 0; i < 201; i++) umlauts += "\xc3\xa4";
    EXPECT_FALSE(ok(umlauts));
    EXPECT_FALSE(ok("a\tb"));
    EXPECT_FALSE(ok("a\nb"));
    EXPECT_FALSE(ok(std::string("a\0b", 3)));
    EXPECT_FALSE(ok("a\x7f"));
    EXPECT_FALSE(ok("a\xc2\x85"));      // U+0085 NEXT LINE (C1)
    EXPECT_FALSE(ok("a\xc2\x9f"));      // U+009F (C1)
    EXPECT_TRUE(ok("a\xc2\xa0"));       // U+00A0 is printable
    EXPECT_FALSE(ok("a\xe2\x80\xa8"));  // U+2028 LINE SEPARATOR
    EXPECT_FALSE(ok("a\xe2\x80\xa9"));  // U+2029
}

TEST(WorkerName, RefusesMalformedUtf8) {
    EXPECT_FALSE(ok("\xc3"));              // truncated
    EXPECT_FALSE(ok("\xc0\x80"));          // overlong NUL
    EXPECT_FALSE(ok("\xed\xa0\x80"));      // surrogate
    EXPECT_FALSE(ok("\xf4\x90\x80\x80"));  // past U+10FFFF
    EXPECT_FALSE(ok("\x80"));              // stray continuation byte
}

TEST(ShardKey, MatchesTheSqlFormula) {
    // ((a * 8191 + b * 64 + s) % 2147483647)::integer, as dataflow._count_shard
    EXPECT_EQ(df_core_shard_key(1, 0, 0), 8191);
    EXPECT_EQ(df_core_shard_key(3, 2, 5), 3 * 8191 + 2 * 64 + 5);
    const int64_t minute = 29000000;  // an epoch minute of 2025
    EXPECT_EQ(df_core_shard_key(7, minute, 63),
              static_cast<int32_t>((7 * 8191 + minute * 64 + 63) % 2147483647));
    EXPECT_GE(df_core_shard_key(2147483647, 2147483647, 63), 0);
    EXPECT_EQ(df_core_first_shard(130), 2);
}

}  // namespace
