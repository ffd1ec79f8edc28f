// Unit tests for src/core/keys.h (chunk keys) and its C ABI (keys_c.h).
#include "core/keys.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/keys_c.h"

namespace {

using namespace dataflow::keys;
using std::int64_t;

constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kI64Min = std::numeric_limits<int64_t>::min();

std::string canon(Kind kind, std::string_view key) {
    Result<std::string> r = canonicalize(kind, key);
    EXPECT_TRUE(r.ok()) << kind_name(kind) << " " << key << ": " << r.failure().message;
    return r.ok() ? r.value() : "<error>";
}

int64_t ord(Kind kind, std::string_view key) {
    Result<int64_t> r = ordinal(kind, key);
    EXPECT_TRUE(r.ok()) << kind_name(kind) << " " << key << ": " << r.failure().message;
    return r.ok() ? r.value() : -42424242;
}

// Passes when r failed with `code`, tagged with `kind` (nullopt: no kind).
template <typename T>
::testing::AssertionResult FailsWith(const Result<T>& r, Error code, std::optional<Kind> kind) {
    if (r.ok()) return ::testing::AssertionFailure() << "succeeded, expected an error";
    if (r.failure().code != code)
        return ::testing::AssertionFailure()
               << "error code " << static_cast<int>(r.failure().code) << " (" << r.failure().message
               << "), expected " << static_cast<int>(code);
    if (r.failure().kind != kind)
        return ::testing::AssertionFailure() << "wrong kind on: " << r.failure().message;
    if (r.failure().message.empty()) return ::testing::AssertionFailure() << "empty message";
    return ::testing::AssertionSuccess();
}

// ---- kinds ----

TEST(KeyKind, ParsesTheFourKindsExactly) {
    for (Kind k : {Kind::Date, Kind::Hour, Kind::Int, Kind::Text}) {
        Result<Kind> r = parse_kind(kind_name(k));
        ASSERT_TRUE(r.ok());
        EXPECT_EQ(r.value(), k);
    }
    for (const char* bad : {"", "DATE", "Date", " date", "date ", "month", "integer", "bigint"})
        EXPECT_TRUE(FailsWith(parse_kind(bad), Error::BadKind, std::nullopt)) << bad;
    EXPECT_NE(parse_kind("month").failure().message.find("\"month\""), std::string::npos);
}

TEST(KeyKind, OnlyTextIsUnordered) {
    EXPECT_TRUE(is_ordered(Kind::Date));
    EXPECT_TRUE(is_ordered(Kind::Hour));
    EXPECT_TRUE(is_ordered(Kind::Int));
    EXPECT_FALSE(is_ordered(Kind::Text));
}

TEST(Keys, EmptyKeyIsRejectedForEveryKind) {
    for (Kind k : {Kind::Date, Kind::Hour, Kind::Int, Kind::Text}) {
        EXPECT_TRUE(FailsWith(canonicalize(k, ""), Error::Empty, k)) << kind_name(k);
        EXPECT_TRUE(FailsWith(ordinal(k, ""), Error::Empty, k)) << kind_name(k);
    }
}

// ---- date ----

TEST(DateKey, CanonicalForms) {
    EXPECT_EQ(canon(Kind::Date, "2024-01-31"), "2024-01-31");
    EXPECT_EQ(canon(Kind::Date, "20240131"), "2024-01-31");
    EXPECT_EQ(canon(Kind::Date, "0001-01-01"), "0001-01-01");
    EXPECT_EQ(canon(Kind::Date, "99991231"), "9999-12-31");
    EXPECT_EQ(canon(Kind::Date, "1970-01-01"), "1970-01-01");
}

TEST(DateKey, MalformedShapes) {
    for (const char* bad :
         {"2024-1-31", "2024/01/31", "2024-01-31 ", " 2024-01-31", "2024-01-31T00", "24-01-31",
          "2024-01-3a", "2024013", "202401311", "2024-0131", "202401-31", "2024_01_31",
          "+024-01-31", "-024-01-31", "2024-01-31\n", "abcd-ef-gh",
          "2024\xEF\xBC\x90"
          "131",
          "10000-01-01", "2024-001-31"})
        EXPECT_TRUE(FailsWith(canonicalize(Kind::Date, bad), Error::Malformed, Kind::Date)) << bad;
}

TEST(DateKey, ImpossibleDatesAreOutOfRange) {
    for (const char* bad :
         {"2024-02-30", "2024-13-01", "2024-00-10", "2024-01-00", "2024-01-32", "0000-01-01",
          "2023-02-29", "1900-02-29", "2100-02-29", "2024-04-31", "2024-06-31", "2024-09-31",
          "2024-11-31", "20240230", "99991232", "2024-99-99"})
        EXPECT_TRUE(FailsWith(canonicalize(Kind::Date, bad), Error::OutOfRange, Kind::Date)) << bad;
}

TEST(DateKey, LeapYears) {
    EXPECT_EQ(canon(Kind::Date, "2024-02-29"), "2024-02-29");  // divisible by 4
    EXPECT_EQ(canon(Kind::Date, "2000-02-29"), "2000-02-29");  // divisible by 400
    EXPECT_EQ(canon(Kind::Date, "0004-02-29"), "0004-02-29");
    EXPECT_EQ(canon(Kind::Date, "9996-02-29"), "9996-02-29");
    EXPECT_FALSE(canonicalize(Kind::Date, "1900-02-29").ok());  // divisible by 100 only
    EXPECT_FALSE(canonicalize(Kind::Date, "2023-02-29").ok());
    EXPECT_FALSE(canonicalize(Kind::Date, "0001-02-29").ok());
    EXPECT_EQ(ord(Kind::Date, "2024-03-01") - ord(Kind::Date, "2024-02-28"), 2);
    EXPECT_EQ(ord(Kind::Date, "2023-03-01") - ord(Kind::Date, "2023-02-28"), 1);
    EXPECT_EQ(ord(Kind::Date, "2001-01-01") - ord(Kind::Date, "2000-01-01"), 366);
    EXPECT_EQ(ord(Kind::Date, "1901-01-01") - ord(Kind::Date, "1900-01-01"), 365);
}

TEST(DateKey, MessagesNameTheKindTheKeyAndTheProblem) {
    Result<std::string> r = canonicalize(Kind::Date, "2024-02-30");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.failure().message,
              "invalid date key \"2024-02-30\": day 30 is out of range for February 2024");
    EXPECT_NE(r.failure().hint.find("2024-01-31"), std::string::npos);
    EXPECT_EQ(canonicalize(Kind::Date, "2024-13-01").failure().message,
              "invalid date key \"2024-13-01\": month 13 is out of range (01..12)");
    EXPECT_EQ(canonicalize(Kind::Date, "0000-01-01").failure().message,
              "invalid date key \"0000-01-01\": year 0000 is out of range (0001..9999)");
    EXPECT_EQ(canonicalize(Kind::Date, "2024/01/31").failure().message,
              "invalid date key \"2024/01/31\": expected YYYY-MM-DD or YYYYMMDD");
}

TEST(DateKey, Ordinals) {
    EXPECT_EQ(ord(Kind::Date, "1970-01-01"), 0);
    EXPECT_EQ(ord(Kind::Date, "1970-01-02"), 1);
    EXPECT_EQ(ord(Kind::Date, "1969-12-31"), -1);
    EXPECT_EQ(ord(Kind::Date, "2000-03-01"), 11017);
    EXPECT_EQ(ord(Kind::Date, "2024-01-31"), 19753);
    EXPECT_EQ(ord(Kind::Date, "0001-01-01"), kMinDateOrdinal);
    EXPECT_EQ(ord(Kind::Date, "9999-12-31"), kMaxDateOrdinal);
    EXPECT_EQ(ord(Kind::Date, "20240131"), ord(Kind::Date, "2024-01-31"));
}

// Walks every day of years 1..9999 with an independent calendar and checks both directions.
TEST(DateKey, EveryDayRoundTrips) {
    const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y = 1, m = 1, d = 1;
    char expected[48];
    for (int64_t o = kMinDateOrdinal; o <= kMaxDateOrdinal; ++o) {
        std::snprintf(expected, sizeof expected, "%04d-%02d-%02d", y, m, d);
        Result<std::string> text = from_ordinal(Kind::Date, o);
        ASSERT_TRUE(text.ok()) << o;
        ASSERT_EQ(text.value(), expected) << o;
        ASSERT_EQ(ord(Kind::Date, expected), o);
        const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        if (++d > kDays[m - 1] + (m == 2 && leap ? 1 : 0)) {
            d = 1;
            if (++m > 12) m = 1, ++y;
        }
    }
    EXPECT_EQ(y, 10000);
}

// ---- hour ----

TEST(HourKey, AcceptedFormsAllCanonicalize) {
    for (const char* form :
         {"2024-01-31T05", "2024-01-31 05", "2024-01-31T05:00", "2024-01-31T05:00:00",
          "2024-01-31T05Z", "2024-01-31 05Z", "2024-01-31T05:00Z", "2024-01-31T05:00:00Z"})
        EXPECT_EQ(canon(Kind::Hour, form), "2024-01-31T05") << form;
    EXPECT_EQ(canon(Kind::Hour, "0001-01-01T00"), "0001-01-01T00");
    EXPECT_EQ(canon(Kind::Hour, "9999-12-31T23"), "9999-12-31T23");
}

TEST(HourKey, MalformedShapes) {
    // Minutes or seconds other than 00 are Malformed by design (see keys.h).
    for (const char* bad : {"2024-01-31T5",     "2024-01-31",
                            "2024-01-31T05:30", "2024-01-31T05:00:01",
                            "2024-01-31T05:60", "2024-01-31t05",
                            "2024-01-31T05z",   "2024-01-31T05+00:00",
                            "2024-01-31T05:0",  "2024-01-31T05:00:00.000",
                            "20240131T05",      "2024-01-31T05ZZ",
                            "2024-01-31TZ",     "2024-01-31T",
                            "2024-01-31  05",   "2024-01-31T05 ",
                            "2024-01-31_05",    "2024-01-31T05:00:",
                            "2024-01-31T0500",  "2024-01-31Z05"})
        EXPECT_TRUE(FailsWith(canonicalize(Kind::Hour, bad), Error::Malformed, Kind::Hour)) << bad;
    EXPECT_NE(canonicalize(Kind::Hour, "2024-01-31T05:30").failure().message.find("00"),
              std::string::npos);
}

TEST(HourKey, ImpossibleValuesAreOutOfRange) {
    for (const char* bad : {"2024-01-31T24", "2024-01-31T99", "2024-02-30T00", "2023-02-29T12",
                            "0000-01-01T00", "2024-13-01T00:00:00Z"})
        EXPECT_TRUE(FailsWith(canonicalize(Kind::Hour, bad), Error::OutOfRange, Kind::Hour)) << bad;
    EXPECT_EQ(canonicalize(Kind::Hour, "2024-01-31T24").failure().message,
              "invalid hour key \"2024-01-31T24\": hour 24 is out of range (00..23)");
}

TEST(HourKey, Ordinals) {
    EXPECT_EQ(ord(Kind::Hour, "1970-01-01T00"), 0);
    EXPECT_EQ(ord(Kind::Hour, "1970-01-01T01"), 1);
    EXPECT_EQ(ord(Kind::Hour, "1969-12-31T23"), -1);
    EXPECT_EQ(ord(Kind::Hour, "1969-12-31T00"), -24);
    EXPECT_EQ(ord(Kind::Hour, "2024-01-31T05"), 19753 * 24 + 5);
    EXPECT_EQ(ord(Kind::Hour, "0001-01-01T00"), kMinHourOrdinal);
    EXPECT_EQ(ord(Kind::Hour, "9999-12-31T23"), kMaxHourOrdinal);
    for (int64_t o = -30 * 24; o <= 30 * 24; ++o) {  // both sides of the epoch
        Result<std::string> text = from_ordinal(Kind::Hour, o);
        ASSERT_TRUE(text.ok());
        EXPECT_EQ(ord(Kind::Hour, text.value()), o);
    }
    EXPECT_EQ(from_ordinal(Kind::Hour, -1).value(), "1969-12-31T23");
    EXPECT_EQ(from_ordinal(Kind::Hour, kMinHourOrdinal).value(), "0001-01-01T00");
    EXPECT_EQ(from_ordinal(Kind::Hour, kMaxHourOrdinal).value(), "9999-12-31T23");
}

// ---- int ----

TEST(IntKey, CanonicalForms) {
    EXPECT_EQ(canon(Kind::Int, "42"), "42");
    EXPECT_EQ(canon(Kind::Int, "+42"), "42");
    EXPECT_EQ(canon(Kind::Int, "-42"), "-42");
    EXPECT_EQ(canon(Kind::Int, "-0"), "0");
    EXPECT_EQ(canon(Kind::Int, "+0"), "0");
    EXPECT_EQ(canon(Kind::Int, "0000"), "0");
    EXPECT_EQ(canon(Kind::Int, "007"), "7");
    EXPECT_EQ(canon(Kind::Int, "-007"), "-7");
    EXPECT_EQ(canon(Kind::Int, "9223372036854775807"), "9223372036854775807");
    EXPECT_EQ(canon(Kind::Int, "-9223372036854775808"), "-9223372036854775808");
    EXPECT_EQ(canon(Kind::Int, "+0000000000000000000000009223372036854775807"),
              "9223372036854775807");
    EXPECT_EQ(ord(Kind::Int, "-9223372036854775808"), kI64Min);
    EXPECT_EQ(ord(Kind::Int, "-17"), -17);
}

TEST(IntKey, MalformedShapes) {
    for (const char* bad :
         {"+", "-", "1.5", "1e3", " 1", "1 ", "0x10", "--1", "+-1", "1_000", "1,000", "\xD9\xA1",
          "\xEF\xBC\x99", "one", "99999999999999999999x", "12\t"})
        EXPECT_TRUE(FailsWith(canonicalize(Kind::Int, bad), Error::Malformed, Kind::Int)) << bad;
}

TEST(IntKey, Int64OverflowIsOutOfRange) {
    for (const char* bad : {"9223372036854775808", "-9223372036854775809", "99999999999999999999",
                            "-99999999999999999999", "18446744073709551616", "+9223372036854775808",
                            "100000000000000000000000000000000"})
        EXPECT_TRUE(FailsWith(canonicalize(Kind::Int, bad), Error::OutOfRange, Kind::Int)) << bad;
}

// ---- text ----

TEST(TextKey, KeptAsGiven) {
    for (const char* key : {"a", "hello world", " padded ", "s3://bucket/x?y=1", "\xC3\xBC\xC3\xA9",
                            "0042", "2024-01-31"})
        EXPECT_EQ(canon(Kind::Text, key), key);
    const std::string longest(kMaxTextBytes, 'x');
    EXPECT_EQ(canon(Kind::Text, longest), longest);
}

TEST(TextKey, Rejections) {
    EXPECT_TRUE(FailsWith(canonicalize(Kind::Text, std::string(kMaxTextBytes + 1, 'x')),
                          Error::TooLong, Kind::Text));
    for (const char* bad : {"a\tb", "a\nb", "\r", "x\x1F", "\x7F", "\x01"})
        EXPECT_TRUE(FailsWith(canonicalize(Kind::Text, bad), Error::Malformed, Kind::Text)) << bad;
    EXPECT_TRUE(
        FailsWith(canonicalize(Kind::Text, std::string("a\0b", 3)), Error::Malformed, Kind::Text));
    EXPECT_NE(canonicalize(Kind::Text, "a\nb").failure().message.find("\"a\\x0Ab\""),
              std::string::npos);
}

TEST(TextKey, HasNoOrdinal) {
    EXPECT_TRUE(FailsWith(ordinal(Kind::Text, "x"), Error::NotOrdered, Kind::Text));
    EXPECT_TRUE(FailsWith(ordinal(Kind::Text, "a\nb"), Error::Malformed, Kind::Text));
    EXPECT_TRUE(FailsWith(from_ordinal(Kind::Text, 1), Error::NotOrdered, Kind::Text));
}

// ---- canonical forms, from_ordinal, ordering ----

TEST(Keys, CanonicalizationIsIdempotent) {
    const std::vector<std::pair<Kind, const char*>> keys = {
        {Kind::Date, "20240229"}, {Kind::Hour, "2024-01-31 05:00:00Z"},
        {Kind::Int, "-000"},      {Kind::Int, "+18"},
        {Kind::Text, " x "},      {Kind::Hour, "1969-12-31T23:00"}};
    for (const auto& [kind, key] : keys) {
        const std::string once = canon(kind, key);
        EXPECT_EQ(canon(kind, once), once);
        if (is_ordered(kind)) {
            EXPECT_EQ(from_ordinal(kind, ord(kind, key)).value(), once);
        }
    }
}

TEST(Keys, FromOrdinalBounds) {
    EXPECT_EQ(from_ordinal(Kind::Date, 0).value(), "1970-01-01");
    EXPECT_TRUE(
        FailsWith(from_ordinal(Kind::Date, kMaxDateOrdinal + 1), Error::OutOfRange, Kind::Date));
    EXPECT_TRUE(
        FailsWith(from_ordinal(Kind::Date, kMinDateOrdinal - 1), Error::OutOfRange, Kind::Date));
    EXPECT_TRUE(FailsWith(from_ordinal(Kind::Date, kI64Max), Error::OutOfRange, Kind::Date));
    EXPECT_TRUE(
        FailsWith(from_ordinal(Kind::Hour, kMaxHourOrdinal + 1), Error::OutOfRange, Kind::Hour));
    EXPECT_TRUE(FailsWith(from_ordinal(Kind::Hour, kI64Min), Error::OutOfRange, Kind::Hour));
    EXPECT_EQ(from_ordinal(Kind::Int, kI64Min).value(), "-9223372036854775808");
    EXPECT_EQ(from_ordinal(Kind::Int, kI64Max).value(), "9223372036854775807");
    EXPECT_EQ(from_ordinal(Kind::Int, 0).value(), "0");
}

TEST(Keys, OrderingByOrdinalOrBytes) {
    auto cmp = [](Kind k, const char* a, const char* b) {
        Result<int> r = compare(k, a, b);
        EXPECT_TRUE(r.ok()) << a << " " << b;
        return r.ok() ? r.value() : 99;
    };
    EXPECT_EQ(cmp(Kind::Date, "2024-01-31", "20240201"), -1);
    EXPECT_EQ(cmp(Kind::Date, "20240131", "2024-01-31"), 0);
    EXPECT_EQ(cmp(Kind::Date, "1999-12-31", "0999-12-31"), 1);
    EXPECT_EQ(cmp(Kind::Hour, "2024-01-31T23", "2024-02-01 00"), -1);
    EXPECT_EQ(cmp(Kind::Hour, "2024-01-31T05Z", "2024-01-31 05:00"), 0);
    EXPECT_EQ(cmp(Kind::Int, "10", "9"), 1);  // numeric, not lexicographic
    EXPECT_EQ(cmp(Kind::Int, "-1", "0"), -1);
    EXPECT_EQ(cmp(Kind::Int, "-0", "+0"), 0);
    EXPECT_EQ(cmp(Kind::Int, "-9223372036854775808", "9223372036854775807"), -1);
    EXPECT_EQ(cmp(Kind::Text, "a", "b"), -1);
    EXPECT_EQ(cmp(Kind::Text, "B", "a"), -1);
    EXPECT_EQ(cmp(Kind::Text, "ab", "a"), 1);
    EXPECT_EQ(cmp(Kind::Text, "\xC3\xA9", "z"), 1);  // bytes compare unsigned
    EXPECT_EQ(cmp(Kind::Text, "same", "same"), 0);
    EXPECT_TRUE(
        FailsWith(compare(Kind::Date, "2024-01-31", "2024-02-30"), Error::OutOfRange, Kind::Date));
    EXPECT_TRUE(FailsWith(compare(Kind::Text, "a", ""), Error::Empty, Kind::Text));
}

// ---- ranges ----

std::vector<std::string> keys_of(const Result<std::vector<std::string>>& r) {
    EXPECT_TRUE(r.ok()) << r.failure().message;
    return r.ok() ? r.value() : std::vector<std::string>{};
}

using Keys = std::vector<std::string>;

TEST(KeyRange, DateRangeIsInclusiveAndCanonical) {
    EXPECT_EQ(keys_of(range(Kind::Date, "2024-02-27", "20240301", 10)),
              (Keys{"2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01"}));
    EXPECT_EQ(keys_of(range(Kind::Date, "2023-02-27", "2023-03-01", 10)),
              (Keys{"2023-02-27", "2023-02-28", "2023-03-01"}));
    EXPECT_EQ(keys_of(range(Kind::Date, "2024-12-31", "20241231", 1)), (Keys{"2024-12-31"}));
    EXPECT_EQ(keys_of(range(Kind::Date, "1969-12-31", "1970-01-01", 2)),
              (Keys{"1969-12-31", "1970-01-01"}));
}

TEST(KeyRange, HourAndIntRanges) {
    EXPECT_EQ(keys_of(range(Kind::Hour, "2024-01-31T22", "2024-02-01 01:00Z", 4)),
              (Keys{"2024-01-31T22", "2024-01-31T23", "2024-02-01T00", "2024-02-01T01"}));
    EXPECT_EQ(keys_of(range(Kind::Int, "-2", "+2", 5)), (Keys{"-2", "-1", "0", "1", "2"}));
    EXPECT_EQ(keys_of(range(Kind::Int, "9223372036854775806", "9223372036854775807", 2)),
              (Keys{"9223372036854775806", "9223372036854775807"}));
    EXPECT_EQ(keys_of(range(Kind::Int, "-9223372036854775808", "-9223372036854775807", 2)),
              (Keys{"-9223372036854775808", "-9223372036854775807"}));
}

TEST(KeyRange, Spans) {
    Result<Span> all_days = range_span(Kind::Date, "0001-01-01", "9999-12-31", kI64Max);
    ASSERT_TRUE(all_days.ok());
    EXPECT_EQ(all_days.value().first, kMinDateOrdinal);
    EXPECT_EQ(all_days.value().count, kMaxDateOrdinal - kMinDateOrdinal + 1);
    Result<Span> all_hours = range_span(Kind::Hour, "0001-01-01T00", "9999-12-31T23", kI64Max);
    ASSERT_TRUE(all_hours.ok());
    EXPECT_EQ(all_hours.value().count, (kMaxDateOrdinal - kMinDateOrdinal + 1) * 24);
    Result<Span> ints = range_span(Kind::Int, "-9223372036854775808", "-2", kI64Max);
    ASSERT_TRUE(ints.ok());  // exactly INT64_MAX keys: the largest count a span can hold
    EXPECT_EQ(ints.value().first, kI64Min);
    EXPECT_EQ(ints.value().count, kI64Max);
}

TEST(KeyRange, Rejections) {
    EXPECT_TRUE(
        FailsWith(range(Kind::Date, "2024-02-01", "2024-01-31", 10), Error::BadRange, Kind::Date));
    EXPECT_EQ(range(Kind::Date, "20240201", "2024-01-31", 10).failure().message,
              "invalid date range: from key \"2024-02-01\" is after to key \"2024-01-31\"");
    EXPECT_TRUE(FailsWith(range(Kind::Int, "1", "0", 10), Error::BadRange, Kind::Int));
    EXPECT_TRUE(
        FailsWith(range(Kind::Date, "2024-01-01", "2024-01-01", 0), Error::BadRange, Kind::Date));
    EXPECT_TRUE(FailsWith(range(Kind::Int, "1", "1", -5), Error::BadRange, Kind::Int));
    EXPECT_TRUE(FailsWith(range(Kind::Date, "2024-13-01", "2024-12-01", 10), Error::OutOfRange,
                          Kind::Date));
    EXPECT_TRUE(
        FailsWith(range(Kind::Hour, "2024-01-01T00", "x", 10), Error::Malformed, Kind::Hour));
    EXPECT_TRUE(FailsWith(range(Kind::Int, "", "1", 10), Error::Empty, Kind::Int));
}

TEST(KeyRange, MaxKeysIsAHardLimit) {
    EXPECT_TRUE(range(Kind::Date, "2024-01-01", "2024-12-31", 366).ok());
    Result<Span> r = range_span(Kind::Date, "2024-01-01", "2024-12-31", 365);
    EXPECT_TRUE(FailsWith(r, Error::TooMany, Kind::Date));
    EXPECT_EQ(r.failure().message,
              "date range 2024-01-01..2024-12-31 has 366 keys, more than max_keys (365)");
    Result<Span> all =
        range_span(Kind::Int, "-9223372036854775808", "9223372036854775807", kI64Max);
    EXPECT_TRUE(FailsWith(all, Error::TooMany, Kind::Int));
    EXPECT_NE(all.failure().message.find("18446744073709551616"), std::string::npos);
    EXPECT_TRUE(FailsWith(range_span(Kind::Int, "0", "9223372036854775807", kI64Max),
                          Error::TooMany, Kind::Int));  // 2^63 keys
}

TEST(KeyRange, TextRangeIsOneKey) {
    EXPECT_EQ(keys_of(range(Kind::Text, "eu-west", "eu-west", 1)), (Keys{"eu-west"}));
    EXPECT_TRUE(FailsWith(range(Kind::Text, "a", "b", 10), Error::NotOrdered, Kind::Text));
    EXPECT_TRUE(FailsWith(range(Kind::Text, "a", "a", 0), Error::BadRange, Kind::Text));
    EXPECT_TRUE(FailsWith(range(Kind::Text, "a\n", "a\n", 1), Error::Malformed, Kind::Text));
    EXPECT_TRUE(FailsWith(range(Kind::Text, "a", "", 1), Error::Empty, Kind::Text));
}

// ---- windows ----

TEST(KeyWindow, RollingWindows) {
    EXPECT_EQ(keys_of(window(Kind::Date, "2024-03-01", -6, 0)),
              (Keys{"2024-02-24", "2024-02-25", "2024-02-26", "2024-02-27", "2024-02-28",
                    "2024-02-29", "2024-03-01"}));
    EXPECT_EQ(keys_of(window(Kind::Date, "20240301", 1, 1)), (Keys{"2024-03-02"}));
    EXPECT_EQ(keys_of(window(Kind::Hour, "2024-01-01T01", -2, 0)),
              (Keys{"2023-12-31T23", "2024-01-01T00", "2024-01-01T01"}));
    EXPECT_EQ(keys_of(window(Kind::Int, "-1", -1, 2)), (Keys{"-2", "-1", "0", "1"}));
    EXPECT_EQ(keys_of(window(Kind::Date, "0001-01-02", -1, 0)), (Keys{"0001-01-01", "0001-01-02"}));
}

TEST(KeyWindow, Rejections) {
    EXPECT_TRUE(FailsWith(window(Kind::Date, "2024-01-31", 1, 0), Error::BadRange, Kind::Date));
    EXPECT_TRUE(FailsWith(window(Kind::Text, "a", 0, 0), Error::NotOrdered, Kind::Text));
    EXPECT_TRUE(FailsWith(window(Kind::Date, "2024-02-30", 0, 0), Error::OutOfRange, Kind::Date));
    EXPECT_TRUE(FailsWith(window(Kind::Date, "0001-01-01", -1, 0), Error::OutOfRange, Kind::Date));
    EXPECT_TRUE(FailsWith(window(Kind::Date, "9999-12-31", 0, 1), Error::OutOfRange, Kind::Date));
    EXPECT_TRUE(
        FailsWith(window(Kind::Hour, "9999-12-31T23", 1, 1), Error::OutOfRange, Kind::Hour));
    EXPECT_TRUE(
        FailsWith(window(Kind::Int, "9223372036854775807", 0, 1), Error::OutOfRange, Kind::Int));
    EXPECT_TRUE(
        FailsWith(window(Kind::Int, "-9223372036854775808", -1, 0), Error::OutOfRange, Kind::Int));
    EXPECT_TRUE(window(Kind::Int, "9223372036854775807", -1, 0).ok());
}

TEST(KeyWindow, SpanIsBounded) {
    Result<Span> widest = window_span(Kind::Int, "0", -99999, 0);
    ASSERT_TRUE(widest.ok());
    EXPECT_EQ(widest.value().first, -99999);
    EXPECT_EQ(widest.value().count, kMaxWindowKeys);
    EXPECT_TRUE(FailsWith(window_span(Kind::Int, "0", -100000, 0), Error::TooMany, Kind::Int));
    EXPECT_TRUE(FailsWith(window_span(Kind::Int, "0", std::numeric_limits<int32_t>::min(),
                                      std::numeric_limits<int32_t>::max()),
                          Error::TooMany, Kind::Int));
}

// ---- rollup ----

TEST(KeyRollup, ChildrenOfADateAreItsHours) {
    Keys hours = keys_of(children(Kind::Date, Kind::Hour, "20240131"));
    ASSERT_EQ(hours.size(), 24u);
    for (int h = 0; h < 24; ++h) {
        char expected[48];
        std::snprintf(expected, sizeof expected, "2024-01-31T%02d", h);
        EXPECT_EQ(hours[h], expected);
    }
    Result<Span> before_epoch = children_span(Kind::Date, Kind::Hour, "1969-12-31");
    ASSERT_TRUE(before_epoch.ok());
    EXPECT_EQ(before_epoch.value().first, -24);
    EXPECT_EQ(before_epoch.value().count, 24);
    EXPECT_EQ(keys_of(children(Kind::Date, Kind::Hour, "9999-12-31")).back(), "9999-12-31T23");
    EXPECT_EQ(keys_of(children(Kind::Date, Kind::Hour, "0001-01-01")).front(), "0001-01-01T00");
}

TEST(KeyRollup, ParentOfAnHourIsItsDate) {
    auto parent_of = [](const char* key) {
        Result<std::string> r = parent(Kind::Hour, Kind::Date, key);
        EXPECT_TRUE(r.ok()) << key;
        return r.ok() ? r.value() : "<error>";
    };
    EXPECT_EQ(parent_of("2024-01-31T05"), "2024-01-31");
    EXPECT_EQ(parent_of("2024-01-31 23:00:00Z"), "2024-01-31");
    EXPECT_EQ(parent_of("1969-12-31T23"), "1969-12-31");  // floor, not truncation
    EXPECT_EQ(parent_of("1970-01-01T00"), "1970-01-01");
    EXPECT_EQ(parent_of("0001-01-01T00"), "0001-01-01");
    for (const char* day : {"2024-02-29", "1969-12-31", "0001-01-01", "9999-12-31"})
        for (const std::string& hour : keys_of(children(Kind::Date, Kind::Hour, day)))
            EXPECT_EQ(parent_of(hour.c_str()), day);
}

TEST(KeyRollup, OnlyDateAndHourNest) {
    const std::vector<std::pair<Kind, Kind>> bad = {
        {Kind::Hour, Kind::Date}, {Kind::Date, Kind::Date}, {Kind::Date, Kind::Int},
        {Kind::Int, Kind::Hour},  {Kind::Text, Kind::Hour}, {Kind::Hour, Kind::Hour}};
    for (const auto& [parent_kind, child_kind] : bad) {
        EXPECT_TRUE(FailsWith(children(parent_kind, child_kind, "2024-01-31"), Error::BadMapping,
                              std::nullopt));
        EXPECT_TRUE(FailsWith(parent(child_kind, parent_kind, "2024-01-31T00"), Error::BadMapping,
                              std::nullopt));
    }
    EXPECT_TRUE(
        FailsWith(children(Kind::Date, Kind::Hour, "2024-01-31T00"), Error::Malformed, Kind::Date));
    EXPECT_TRUE(
        FailsWith(parent(Kind::Hour, Kind::Date, "2024-01-31"), Error::Malformed, Kind::Hour));
    EXPECT_TRUE(
        FailsWith(parent(Kind::Hour, Kind::Date, "2024-01-31T24"), Error::OutOfRange, Kind::Hour));
}

// ---- quoting in messages ----

TEST(KeyQuote, QuotesEscapesAndTruncates) {
    EXPECT_EQ(quote_key("abc"), "\"abc\"");
    EXPECT_EQ(quote_key(""), "\"\"");
    EXPECT_EQ(quote_key("a\tb\x7F"), "\"a\\x09b\\x7F\"");
    EXPECT_EQ(quote_key(std::string(100, 'x')), "\"" + std::string(64, 'x') + "...\"");
    EXPECT_EQ(quote_key(std::string(64, 'x')), "\"" + std::string(64, 'x') + "\"");
    // 'é' is two bytes: the cut never splits it.
    std::string accents;
    for (int i = 0; i < 40; ++i) accents += "\xC3\xA9";
    EXPECT_EQ(quote_key("x" + accents), "\"x" + accents.substr(0, 64) + "...\"");
    Result<std::string> r = canonicalize(Kind::Text, std::string(600, 'k'));
    ASSERT_FALSE(r.ok());
    EXPECT_LT(r.failure().message.size(), 200u);
    EXPECT_NE(r.failure().message.find("600 bytes"), std::string::npos);
}

}  // namespace
