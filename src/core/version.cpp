// Dotted version comparison (version.h).
#include "core/version.h"

#include <cstring>

namespace {

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// The part of s before the next '.', as [*begin, *end); s moves past the dot.
void next_part(const char** s, const char** begin, const char** end) {
    *begin = *s;
    while (**s != '\0' && **s != '.') ++*s;
    *end = *s;
    if (**s == '.') ++*s;
}

bool numeric(const char* b, const char* e) {
    if (b == e) return true;  // an empty or missing part is 0
    for (const char* p = b; p < e; ++p)
        if (!is_digit(*p)) return false;
    return true;
}

// Compares two numeric parts without converting them (no overflow on long runs of digits).
int compare_numbers(const char* ab, const char* ae, const char* bb, const char* be) {
    while (ab < ae && *ab == '0') ++ab;
    while (bb < be && *bb == '0') ++bb;
    if (ae - ab != be - bb) return ae - ab < be - bb ? -1 : 1;
    for (; ab < ae; ++ab, ++bb)
        if (*ab != *bb) return *ab < *bb ? -1 : 1;
    return 0;
}

int compare_text(const char* ab, const char* ae, const char* bb, const char* be) {
    size_t la = static_cast<size_t>(ae - ab), lb = static_cast<size_t>(be - bb);
    int c = std::memcmp(ab, bb, la < lb ? la : lb);
    if (c != 0) return c < 0 ? -1 : 1;
    return la == lb ? 0 : (la < lb ? -1 : 1);
}

}  // namespace

extern "C" int df_version_compare(const char* a, const char* b) {
    if (a == nullptr) a = "";
    if (b == nullptr) b = "";
    while (*a != '\0' || *b != '\0') {
        const char *ab, *ae, *bb, *be;
        next_part(&a, &ab, &ae);
        next_part(&b, &bb, &be);
        bool an = numeric(ab, ae), bn = numeric(bb, be);
        int c;
        if (an && bn)
            c = compare_numbers(ab, ae, bb, be);
        else if (an != bn)
            c = an ? -1 : 1;  // numbers before text
        else
            c = compare_text(ab, ae, bb, be);
        if (c != 0) return c;
    }
    return 0;
}

namespace dataflow {

std::string version_mismatch(const std::string& library, const std::string& installed,
                             const std::string& database) {
    if (library == installed) return "";
    std::string s = "the library is pg_dataflow " + library + " but database \"" + database +
                    "\" has extension pg_dataflow " + installed + " installed; ";
    if (df_version_compare(library.c_str(), installed.c_str()) > 0)
        s += "run ALTER EXTENSION pg_dataflow UPDATE in that database";
    else
        s += "restart PostgreSQL so that it loads the pg_dataflow " + installed +
             " library (install that package first if it is not)";
    return s;
}

}  // namespace dataflow
