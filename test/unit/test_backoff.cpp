// Unit tests for src/core/backoff.h and its C ABI (backoff_c.h).
#include "core/backoff.h"

#include <gtest/gtest.h>

#include <cfloat>
#include <climits>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/backoff_c.h"

namespace {

using dataflow::backoff_cap;
using dataflow::backoff_seconds;
using dataflow::check_backoff;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(Backoff, CapDoublesFromMinUpToMax) {
    const double expected[] = {1, 2, 4, 8, 16, 32, 60, 60, 60};
    for (int attempt = 1; attempt <= 9; ++attempt)
        EXPECT_EQ(backoff_cap(attempt, 1, 60), expected[attempt - 1]) << attempt;
    EXPECT_EQ(backoff_cap(1, 30, 3600), 30);
    EXPECT_EQ(backoff_cap(3, 0.5, 100), 2);
}

TEST(Backoff, JitterSpreadsBetweenMinAndCap) {
    EXPECT_EQ(backoff_seconds(1, 10, 300, 0), 10);
    EXPECT_EQ(backoff_seconds(1, 10, 300, 1), 10);  // first retry: cap == min
    EXPECT_EQ(backoff_seconds(3, 10, 300, 0), 10);
    EXPECT_EQ(backoff_seconds(3, 10, 300, 1), 40);
    EXPECT_EQ(backoff_seconds(3, 10, 300, 0.5), 25);
    EXPECT_EQ(backoff_seconds(20, 10, 300, 1), 300);
    EXPECT_EQ(backoff_seconds(20, 10, 300, 0.25), 10 + 0.25 * 290);
}

TEST(Backoff, NeverOverflowsOrLoopsLong) {
    EXPECT_EQ(backoff_cap(INT_MAX, 1, 3600), 3600);
    EXPECT_EQ(backoff_cap(INT_MAX, 1, DBL_MAX), DBL_MAX);  // doubling past DBL_MAX clamps
    EXPECT_EQ(backoff_cap(INT_MAX, std::numeric_limits<double>::denorm_min(), DBL_MAX), DBL_MAX);
    EXPECT_EQ(backoff_cap(1100, DBL_MAX / 4, DBL_MAX), DBL_MAX);
    EXPECT_TRUE(std::isfinite(backoff_seconds(INT_MAX, 1, DBL_MAX, 1)));
    EXPECT_EQ(backoff_seconds(INT_MAX, 0, 0, 1), 0);
    EXPECT_EQ(backoff_seconds(INT_MAX, 0, 100, 1), 0);  // min 0: no backoff at all
    EXPECT_EQ(backoff_seconds(INT_MAX, 5, 5, 0.7), 5);
}

TEST(Backoff, StaysWithinBoundsAndIsMonotonic) {
    for (double min : {0.0, 0.001, 1.0, 7.5, 60.0}) {
        for (double max : {min, min + 0.1, min * 3 + 1, 86400.0}) {
            if (max < min) continue;
            double previous_cap = 0;
            for (int attempt = 1; attempt <= 64; ++attempt) {
                const double cap = backoff_cap(attempt, min, max);
                EXPECT_GE(cap, previous_cap);
                EXPECT_LE(cap, max);
                previous_cap = cap;
                double previous = -1;
                for (double jitter : {0.0, 0.1, 0.3333, 0.5, 0.9, 1.0}) {
                    const double s = backoff_seconds(attempt, min, max, jitter);
                    EXPECT_GE(s, min);
                    EXPECT_LE(s, cap);
                    EXPECT_GE(s, previous);
                    previous = s;
                }
            }
        }
    }
}

TEST(Backoff, ValidatesArguments) {
    EXPECT_FALSE(check_backoff(1, 1, 60, 0.5).has_value());
    EXPECT_FALSE(check_backoff(1, 0, 0, 0).has_value());
    EXPECT_FALSE(check_backoff(1, 0, 0, 1).has_value());
    struct Bad {
        int attempt;
        double min, max, jitter;
        const char* mentions;
    };
    const Bad bad[] = {{0, 1, 60, 0.5, "attempt"},          {-3, 1, 60, 0.5, "attempt"},
                       {1, -1, 60, 0.5, "min_seconds"},     {1, kNaN, 60, 0.5, "min_seconds"},
                       {1, kInf, kInf, 0.5, "min_seconds"}, {1, 10, 5, 0.5, "max_seconds"},
                       {1, 1, kInf, 0.5, "max_seconds"},    {1, 1, kNaN, 0.5, "max_seconds"},
                       {1, 1, 60, -0.01, "jitter"},         {1, 1, 60, 1.01, "jitter"},
                       {1, 1, 60, kNaN, "jitter"},          {1, 1, 60, kInf, "jitter"}};
    for (const Bad& b : bad) {
        auto why = check_backoff(b.attempt, b.min, b.max, b.jitter);
        ASSERT_TRUE(why.has_value()) << b.mentions;
        EXPECT_NE(why->find(b.mentions), std::string::npos) << *why;
    }
}

TEST(BackoffCAbi, ComputesOrExplains) {
    double seconds = -1;
    char err[DF_BACKOFF_ERROR_SIZE];
    EXPECT_TRUE(df_core_backoff(3, 10, 300, 1, &seconds, err, sizeof err));
    EXPECT_EQ(seconds, 40);
    EXPECT_STREQ(err, "");
    EXPECT_FALSE(df_core_backoff(0, 10, 300, 1, &seconds, err, sizeof err));
    EXPECT_STREQ(err, "attempt must be at least 1 (got 0)");
    char tiny[8];
    EXPECT_FALSE(df_core_backoff(1, 1, 60, 2, &seconds, tiny, sizeof tiny));
    EXPECT_EQ(std::strlen(tiny), sizeof tiny - 1);
    EXPECT_FALSE(df_core_backoff(1, 1, 60, 2, &seconds, nullptr, 0));
    EXPECT_FALSE(df_core_backoff(1, 1, 60, 0.5, nullptr, err, sizeof err));
}

}  // namespace
