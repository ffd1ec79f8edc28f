// names.cpp — bounded Levenshtein distance for "did you mean ...?" hints (names.h).
#include "core/names.h"

#include <algorithm>
#include <climits>
#include <vector>

#include "core/names_c.h"

namespace dataflow {

namespace {

char fold(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

}  // namespace

std::size_t name_distance(std::string_view a, std::string_view b, std::size_t cap) {
    if (a.size() > b.size()) std::swap(a, b);  // a is the shorter one
    const std::size_t n = a.size(), m = b.size();
    if (m - n > cap) return cap + 1;
    if (n == 0) return m;  // m <= cap here
    const std::size_t over = cap + 1;
    // One row of the DP table over a; only cells with |i - j| <= cap can stay <= cap,
    // the others are taken as `over` (which is all a bounded answer needs).
    std::vector<std::size_t> prev(n + 1), cur(n + 1);
    for (std::size_t i = 0; i <= n; ++i) prev[i] = i <= cap ? i : over;
    for (std::size_t j = 1; j <= m; ++j) {
        const std::size_t lo = j > cap ? j - cap : 1;
        const std::size_t hi = std::min(n, j + cap);
        cur[0] = j <= cap ? j : over;
        if (lo > 1) cur[lo - 1] = over;
        std::size_t best = cur[0];
        for (std::size_t i = lo; i <= hi; ++i) {
            const std::size_t sub = prev[i - 1] + (fold(a[i - 1]) == fold(b[j - 1]) ? 0 : 1);
            const std::size_t del = prev[i] + 1;
            const std::size_t ins = cur[i - 1] + 1;
            cur[i] = std::min({sub, del, ins, over});
            best = std::min(best, cur[i]);
        }
        if (hi < n) cur[hi + 1] = over;
        if (best >= over) return over;  // every path is already too long
        std::swap(prev, cur);
    }
    return std::min(prev[n], over);
}

std::size_t suggest_cap(std::size_t len) {
    return std::max<std::size_t>(2, len / 3);
}

}  // namespace dataflow

extern "C" int32_t df_core_name_distance(const char* a, size_t alen, const char* b, size_t blen,
                                         int32_t cap) noexcept {
    if (cap < 0) cap = 0;
    if (cap >= INT32_MAX - 1) cap = INT32_MAX - 2;
    try {
        return static_cast<int32_t>(dataflow::name_distance(
            std::string_view(a ? a : "", a ? alen : 0), std::string_view(b ? b : "", b ? blen : 0),
            static_cast<std::size_t>(cap)));
    } catch (...) {
        return cap + 1;  // out of memory for a row: no suggestion rather than a crash
    }
}

extern "C" int32_t df_core_suggest_cap(size_t len) noexcept {
    const std::size_t c = dataflow::suggest_cap(len);
    return c > INT32_MAX ? INT32_MAX : static_cast<int32_t>(c);
}
