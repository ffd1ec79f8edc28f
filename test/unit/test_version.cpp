// df_version_compare: which of the library and the installed SQL is behind.
#include <gtest/gtest.h>

#include "core/version.h"

namespace {

int sign(int v) {
    return v < 0 ? -1 : (v > 0 ? 1 : 0);
}

TEST(VersionCompare, OrdersDottedNumbersAsNumbers) {
    EXPECT_EQ(sign(df_version_compare("0.1.0", "0.2.0")), -1);
    EXPECT_EQ(sign(df_version_compare("0.2.0", "0.1.0")), 1);
    EXPECT_EQ(sign(df_version_compare("0.10.0", "0.9.9")), 1);  // not as text
    EXPECT_EQ(sign(df_version_compare("1.0.0", "0.99.99")), 1);
    EXPECT_EQ(df_version_compare("0.2.0", "0.2.0"), 0);
}

TEST(VersionCompare, MissingAndZeroPaddedPartsAreZero) {
    EXPECT_EQ(df_version_compare("1.2", "1.2.0"), 0);
    EXPECT_EQ(df_version_compare("1.02", "1.2"), 0);
    EXPECT_EQ(sign(df_version_compare("1.2", "1.2.1")), -1);
    EXPECT_EQ(df_version_compare("", "0"), 0);
}

TEST(VersionCompare, LongNumbersDoNotOverflow) {
    EXPECT_EQ(sign(df_version_compare("1.99999999999999999999999", "1.100000000000000000000000")),
              -1);
}

TEST(VersionCompare, TextPartsSortAfterNumbersAndNeverFail) {
    EXPECT_EQ(sign(df_version_compare("1.0.beta", "1.0.0")), 1);
    EXPECT_EQ(sign(df_version_compare("1.0.alpha", "1.0.beta")), -1);
    EXPECT_EQ(df_version_compare(nullptr, ""), 0);
    EXPECT_EQ(sign(df_version_compare(nullptr, "0.1")), -1);
}

TEST(VersionMismatch, EmptyWhenEqual) {
    EXPECT_EQ(dataflow::version_mismatch("0.2.0", "0.2.0", "db"), "");
}

TEST(VersionMismatch, SqlBehindAsksForTheUpdate) {
    EXPECT_EQ(dataflow::version_mismatch("0.2.0", "0.1.0", "etl"),
              "the library is pg_dataflow 0.2.0 but database \"etl\" has extension pg_dataflow "
              "0.1.0 installed; run ALTER EXTENSION pg_dataflow UPDATE in that database");
}

TEST(VersionMismatch, LibraryBehindAsksForThePackage) {
    std::string m = dataflow::version_mismatch("0.2.0", "0.10.0", "etl");
    EXPECT_NE(m.find("restart PostgreSQL so that it loads the pg_dataflow 0.10.0 library"),
              std::string::npos)
        << m;
}

}  // namespace
