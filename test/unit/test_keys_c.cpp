// Unit tests for the C ABI of the key module (src/core/keys_c.h), as the Postgres layer
// uses it: caller buffers, a plain error struct, no exceptions.
#include "core/keys_c.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace {

TEST(KeysCAbi, ResolvesKinds) {
    df_key_error err;
    df_key_kind kind = DF_KIND_NONE;
    EXPECT_EQ(df_core_key_kind("hour", &kind, &err), DF_KEY_OK);
    EXPECT_EQ(kind, DF_KIND_HOUR);
    EXPECT_EQ(err.code, DF_KEY_OK);
    EXPECT_STREQ(err.message, "");
    EXPECT_EQ(df_core_key_kind("week", &kind, &err), DF_KEY_BAD_KIND);
    EXPECT_EQ(err.code, DF_KEY_BAD_KIND);
    EXPECT_EQ(err.kind, DF_KIND_NONE);
    EXPECT_STREQ(err.message, "unknown key kind \"week\"");
    EXPECT_NE(std::strstr(err.hint, "date, hour, int and text"), nullptr);
}

TEST(KeysCAbi, CanonicalizesIntoTheCallerBuffer) {
    char buf[DF_KEY_BUF_SIZE];
    df_key_error err;
    EXPECT_EQ(df_core_key_canon(DF_KIND_DATE, "20240131", buf, sizeof buf, &err), DF_KEY_OK);
    EXPECT_STREQ(buf, "2024-01-31");
    EXPECT_EQ(df_core_key_canon(DF_KIND_INT, "-0", buf, sizeof buf, &err), DF_KEY_OK);
    EXPECT_STREQ(buf, "0");
    const std::string longest(DF_KEY_MAX_TEXT_BYTES, 'q');
    EXPECT_EQ(df_core_key_canon(DF_KIND_TEXT, longest.c_str(), buf, sizeof buf, &err), DF_KEY_OK);
    EXPECT_EQ(std::string(buf), longest);
    char small[5];
    EXPECT_EQ(df_core_key_canon(DF_KIND_DATE, "2024-01-31", small, sizeof small, &err),
              DF_KEY_INTERNAL);
}

TEST(KeysCAbi, ErrorsCarryCodeKindMessageAndHint) {
    char buf[DF_KEY_BUF_SIZE];
    df_key_error err;
    EXPECT_EQ(df_core_key_canon(DF_KIND_DATE, "2024-02-30", buf, sizeof buf, &err),
              DF_KEY_OUT_OF_RANGE);
    EXPECT_EQ(err.kind, DF_KIND_DATE);
    EXPECT_STREQ(err.message,
                 "invalid date key \"2024-02-30\": day 30 is out of range for February 2024");
    EXPECT_NE(std::strstr(err.hint, "2024-01-31"), nullptr);
    EXPECT_EQ(df_core_key_canon(DF_KIND_INT, "12x", buf, sizeof buf, &err), DF_KEY_MALFORMED);
    EXPECT_EQ(err.kind, DF_KIND_INT);
    EXPECT_EQ(df_core_key_canon(DF_KIND_TEXT, "", buf, sizeof buf, &err), DF_KEY_EMPTY);
    EXPECT_EQ(err.kind, DF_KIND_TEXT);
    const std::string too_long(DF_KEY_MAX_TEXT_BYTES + 1, 'q');
    EXPECT_EQ(df_core_key_canon(DF_KIND_TEXT, too_long.c_str(), buf, sizeof buf, &err),
              DF_KEY_TOO_LONG);
    // A success after a failure leaves no stale error behind.
    EXPECT_EQ(df_core_key_canon(DF_KIND_TEXT, "ok", buf, sizeof buf, &err), DF_KEY_OK);
    EXPECT_EQ(err.code, DF_KEY_OK);
    EXPECT_STREQ(err.message, "");
}

TEST(KeysCAbi, RejectsInvalidKindCodesAndNullPointers) {
    char buf[DF_KEY_BUF_SIZE];
    df_key_error err;
    EXPECT_EQ(df_core_key_canon(DF_KIND_NONE, "1", buf, sizeof buf, &err), DF_KEY_BAD_KIND);
    EXPECT_EQ(df_core_key_canon(static_cast<df_key_kind>(5), "1", buf, sizeof buf, &err),
              DF_KEY_BAD_KIND);
    EXPECT_EQ(df_core_key_canon(DF_KIND_INT, nullptr, buf, sizeof buf, &err), DF_KEY_INTERNAL);
    EXPECT_EQ(df_core_key_canon(DF_KIND_INT, "1", nullptr, 0, &err), DF_KEY_INTERNAL);
    EXPECT_EQ(df_core_key_canon(DF_KIND_INT, "1", buf, sizeof buf, nullptr), DF_KEY_INTERNAL);
}

TEST(KeysCAbi, OrdinalsAndTextKeys) {
    df_key_error err;
    int64_t ord = 7;
    bool has_ord = true;
    EXPECT_EQ(df_core_key_ord(DF_KIND_HOUR, "1969-12-31T23", &ord, &has_ord, &err), DF_KEY_OK);
    EXPECT_TRUE(has_ord);
    EXPECT_EQ(ord, -1);
    EXPECT_EQ(df_core_key_ord(DF_KIND_TEXT, "anything", &ord, &has_ord, &err), DF_KEY_OK);
    EXPECT_FALSE(has_ord);
    EXPECT_EQ(df_core_key_ord(DF_KIND_TEXT, "bad\n", &ord, &has_ord, &err), DF_KEY_MALFORMED);
    char buf[DF_KEY_BUF_SIZE];
    EXPECT_EQ(df_core_key_text(DF_KIND_DATE, 19753, buf, sizeof buf, &err), DF_KEY_OK);
    EXPECT_STREQ(buf, "2024-01-31");
    EXPECT_EQ(df_core_key_text(DF_KIND_DATE, 2932897, buf, sizeof buf, &err), DF_KEY_OUT_OF_RANGE);
    EXPECT_EQ(err.kind, DF_KIND_DATE);
    EXPECT_EQ(df_core_key_text(DF_KIND_TEXT, 0, buf, sizeof buf, &err), DF_KEY_NOT_ORDERED);
    int cmp = 5;
    EXPECT_EQ(df_core_key_compare(DF_KIND_INT, "10", "9", &cmp, &err), DF_KEY_OK);
    EXPECT_EQ(cmp, 1);
}

TEST(KeysCAbi, SpansForRangesWindowsAndChildren) {
    df_key_error err;
    int64_t first = 0, count = 0;
    EXPECT_EQ(df_core_key_range(DF_KIND_DATE, "2024-01-30", "20240201", 3, &first, &count, &err),
              DF_KEY_OK);
    EXPECT_EQ(first, 19752);
    EXPECT_EQ(count, 3);
    EXPECT_EQ(df_core_key_range(DF_KIND_DATE, "2024-01-30", "20240201", 2, &first, &count, &err),
              DF_KEY_TOO_MANY);
    EXPECT_EQ(df_core_key_range(DF_KIND_TEXT, "k", "k", 1, &first, &count, &err), DF_KEY_OK);
    EXPECT_EQ(count, 1);
    EXPECT_EQ(df_core_key_range(DF_KIND_TEXT, "k", "j", 1, &first, &count, &err),
              DF_KEY_NOT_ORDERED);
    EXPECT_EQ(df_core_key_window(DF_KIND_INT, "10", -6, 0, &first, &count, &err), DF_KEY_OK);
    EXPECT_EQ(first, 4);
    EXPECT_EQ(count, 7);
    EXPECT_EQ(df_core_key_window(DF_KIND_INT, "10", 1, 0, &first, &count, &err), DF_KEY_BAD_RANGE);
    EXPECT_EQ(df_core_key_children(DF_KIND_DATE, DF_KIND_HOUR, "1970-01-02", &first, &count, &err),
              DF_KEY_OK);
    EXPECT_EQ(first, 24);
    EXPECT_EQ(count, 24);
    EXPECT_EQ(df_core_key_children(DF_KIND_HOUR, DF_KIND_DATE, "1970-01-02", &first, &count, &err),
              DF_KEY_BAD_MAPPING);
    EXPECT_EQ(err.kind, DF_KIND_NONE);
    char buf[DF_KEY_BUF_SIZE];
    EXPECT_EQ(
        df_core_key_parent(DF_KIND_HOUR, DF_KIND_DATE, "1970-01-02T05", buf, sizeof buf, &err),
        DF_KEY_OK);
    EXPECT_STREQ(buf, "1970-01-02");
    EXPECT_EQ(df_core_key_parent(DF_KIND_DATE, DF_KIND_DATE, "1970-01-02", buf, sizeof buf, &err),
              DF_KEY_BAD_MAPPING);
}

TEST(KeysCAbi, MessagesAreTruncatedOnCharacterBoundaries) {
    // A text key full of 2-byte characters: the message stays within the struct and ends
    // on a whole character.
    std::string key;
    for (int i = 0; i < 300; ++i) key += "\xC3\xA9";  // 600 bytes > DF_KEY_MAX_TEXT_BYTES
    char buf[DF_KEY_BUF_SIZE];
    df_key_error err;
    EXPECT_EQ(df_core_key_canon(DF_KIND_TEXT, key.c_str(), buf, sizeof buf, &err), DF_KEY_TOO_LONG);
    const std::size_t len = std::strlen(err.message);
    ASSERT_LT(len, sizeof err.message);
    EXPECT_NE(std::strstr(err.message, "..."), nullptr);
    int continuation_run = 0;  // a valid end: no dangling lead byte of 'é'
    for (std::size_t i = 0; i < len; ++i)
        if (static_cast<unsigned char>(err.message[i]) == 0xC3)
            ++continuation_run;
        else if (static_cast<unsigned char>(err.message[i]) == 0xA9)
            --continuation_run;
    EXPECT_EQ(continuation_run, 0);
}

}  // namespace
