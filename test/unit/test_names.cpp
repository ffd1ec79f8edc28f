// Unit tests for src/core/names.h (did-you-mean distances) and its C ABI (names_c.h).
#include "core/names.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/names_c.h"

namespace {

using dataflow::name_distance;
using dataflow::suggest_cap;

// The textbook full-table Levenshtein, ASCII case folded: the reference.
std::size_t reference(const std::string& a, const std::string& b) {
    auto f = [](char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; };
    std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
    for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i)
        for (std::size_t j = 1; j <= b.size(); ++j)
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1,
                                d[i - 1][j - 1] + (f(a[i - 1]) == f(b[j - 1]) ? 0 : 1)});
    return d[a.size()][b.size()];
}

TEST(NameDistance, KnownPairs) {
    EXPECT_EQ(name_distance("hits_hourl", "hits_hourly", 3), 1u);
    EXPECT_EQ(name_distance("hits_hourly", "hits_hourl", 3), 1u);
    EXPECT_EQ(name_distance("kitten", "sitting", 5), 3u);
    EXPECT_EQ(name_distance("flaw", "lawn", 5), 2u);
    EXPECT_EQ(name_distance("same", "same", 0), 0u);
    EXPECT_EQ(name_distance("", "", 2), 0u);
    EXPECT_EQ(name_distance("", "ab", 2), 2u);
    EXPECT_EQ(name_distance("ab", "", 2), 2u);
    EXPECT_EQ(name_distance("abc", "acb", 3), 2u);  // a transposition is two edits
}

TEST(NameDistance, CaseInsensitiveForAsciiOnly) {
    EXPECT_EQ(name_distance("Hits_Hourly", "hits_hourly", 2), 0u);
    EXPECT_EQ(name_distance("HITS", "hits", 0), 0u);
    EXPECT_EQ(name_distance("\xc3\xa9", "\xc3\x89", 2), 1u);  // é vs É: bytes, not folded
}

TEST(NameDistance, BoundedAtCapPlusOne) {
    EXPECT_EQ(name_distance("kitten", "sitting", 2), 3u);
    EXPECT_EQ(name_distance("kitten", "sitting", 1), 2u);
    EXPECT_EQ(name_distance("abc", "xyz", 0), 1u);
    EXPECT_EQ(name_distance("a", "abcdefghij", 3), 4u);  // the length difference alone
    EXPECT_EQ(name_distance("", "abcdef", 2), 3u);
    EXPECT_EQ(name_distance("abcdefgh", "hgfedcba", 2), 3u);
}

TEST(NameDistance, MatchesTheReferenceOnRandomPairs) {
    std::mt19937 rng(7);
    const std::string alphabet = "abAB_.c";
    for (int n = 0; n < 4000; ++n) {
        std::string a, b;
        const int la = rng() % 12, lb = rng() % 12;
        for (int i = 0; i < la; ++i) a += alphabet[rng() % alphabet.size()];
        for (int i = 0; i < lb; ++i) b += alphabet[rng() % alphabet.size()];
        const std::size_t cap = rng() % 8;
        const std::size_t want = std::min(reference(a, b), cap + 1);
        ASSERT_EQ(name_distance(a, b, cap), want) << a << " / " << b << " cap " << cap;
    }
}

TEST(NameDistance, LongNamesStayCheap) {
    const std::string a(100000, 'x');
    std::string b = a;
    b[50000] = 'y';
    EXPECT_EQ(name_distance(a, b, 2), 1u);  // a band of 5 cells per row, not 10^10
    EXPECT_EQ(name_distance(a, std::string(100000, 'z'), 3), 4u);
}

TEST(SuggestCap, AtLeastTwoElseAThird) {
    EXPECT_EQ(suggest_cap(0), 2u);
    EXPECT_EQ(suggest_cap(5), 2u);
    EXPECT_EQ(suggest_cap(8), 2u);
    EXPECT_EQ(suggest_cap(9), 3u);
    EXPECT_EQ(suggest_cap(11), 3u);
    EXPECT_EQ(suggest_cap(63), 21u);
}

TEST(NamesC, Abi) {
    const char* a = "hits_hourl";
    const char* b = "hits_hourly";
    EXPECT_EQ(df_core_name_distance(a, std::strlen(a), b, std::strlen(b), 3), 1);
    EXPECT_EQ(df_core_name_distance(a, std::strlen(a), "zzz", 3, 2), 3);
    EXPECT_EQ(df_core_name_distance(a, std::strlen(a), a, std::strlen(a), -5), 0);
    EXPECT_EQ(df_core_name_distance(nullptr, 4, "ab", 2, 5), 2);  // NULL is the empty name
    EXPECT_EQ(df_core_suggest_cap(11), 3);
    EXPECT_EQ(df_core_suggest_cap(1), 2);
}

}  // namespace
