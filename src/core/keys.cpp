// Chunk keys (see keys.h); the C ABI over them is in keys_c.cpp.
//
// Every ordered key is handled through its ordinal: parsing yields the ordinal, and the
// canonical text is always from_ordinal(ordinal(key)), so one formatter defines the
// canonical form of each kind.
#include "keys.h"

#include <cstdio>
#include <limits>

namespace dataflow::keys {
namespace {

using std::int64_t;

constexpr std::size_t kQuotedKeyBytes = 64;
constexpr const char* kMonthNames[] = {"January",   "February", "March",    "April",
                                       "May",       "June",     "July",     "August",
                                       "September", "October",  "November", "December"};

const char* kind_hint(Kind kind) {
    switch (kind) {
        case Kind::Date: return "date keys look like 2024-01-31 (20240131 is accepted too)";
        case Kind::Hour:
            return "hour keys look like 2024-01-31T05 (also accepted: 2024-01-31 05, "
                   "2024-01-31T05:00, 2024-01-31T05:00:00, each with an optional Z)";
        case Kind::Int: return "int keys look like 42 or -7 and fit in a 64-bit integer";
        case Kind::Text: return "text keys are 1 to 512 bytes without control characters";
    }
    return "";
}

constexpr const char* kOrderedHint = "ranges, windows and ordinals need a date, hour or int key";

Failure fail(Error code, std::optional<Kind> kind, std::string message, std::string hint) {
    return Failure{code, kind, std::move(message), std::move(hint)};
}

// "invalid date key "2024-02-30": <detail>" with the kind's hint.
Failure bad_key(Error code, Kind kind, std::string_view key, const std::string& detail) {
    return fail(
        code, kind,
        std::string("invalid ") + kind_name(kind) + " key " + quote_key(key) + ": " + detail,
        kind_hint(kind));
}

Failure not_ordered(const char* what) {
    return fail(Error::NotOrdered, Kind::Text,
                std::string("text keys have no order: ") + what + " needs an ordered key kind",
                kOrderedHint);
}

std::string format(const char* fmt, long long a, long long b = 0, long long c = 0,
                   long long d = 0) {
    char buf[96];
    std::snprintf(buf, sizeof buf, fmt, a, b, c, d);
    return buf;
}

// ---- calendar (proleptic Gregorian, years 1..9999) ----

bool is_leap(int64_t y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int days_in_month(int64_t y, int m) {
    static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

// Days from 0001-01-01 to January 1st of year y (y >= 1).
int64_t days_before_year(int64_t y) {
    const int64_t p = y - 1;
    return 365 * p + p / 4 - p / 100 + p / 400;
}

constexpr int64_t kEpochDays = 719162;  // days_before_year(1970)

int64_t date_ordinal(int64_t y, int m, int d) {
    int64_t days = days_before_year(y);
    for (int i = 1; i < m; ++i) days += days_in_month(y, i);
    return days + d - 1 - kEpochDays;
}

struct Civil {
    int64_t year;
    int month;
    int day;
};

// Inverse of date_ordinal for ordinals within the date bounds.
Civil civil_from_ordinal(int64_t ord) {
    const int64_t n = ord + kEpochDays;  // >= 0: days since 0001-01-01
    int64_t y = 1 + n * 400 / 146097;    // 146097 days per 400 years; off by at most one
    while (y > 1 && days_before_year(y) > n) --y;
    while (days_before_year(y + 1) <= n) ++y;
    int64_t rest = n - days_before_year(y);
    int m = 1;
    while (rest >= days_in_month(y, m)) rest -= days_in_month(y, m++);
    return Civil{y, m, static_cast<int>(rest) + 1};
}

int64_t floor_div(int64_t a, int64_t b) {
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

// ---- parsing ----

bool digits_at(std::string_view s, std::size_t pos, std::size_t n, int64_t* value) {
    if (pos + n > s.size()) return false;
    int64_t v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    *value = v;
    return true;
}

// Checks the fields of a YYYY-MM-DD-shaped text and returns its day ordinal.
Result<int64_t> check_date(Kind kind, std::string_view key, int64_t y, int64_t m, int64_t d) {
    if (y < 1)
        return bad_key(Error::OutOfRange, kind, key, "year 0000 is out of range (0001..9999)");
    if (m < 1 || m > 12)
        return bad_key(Error::OutOfRange, kind, key,
                       format("month %02lld is out of range (01..12)", m));
    if (d < 1 || d > days_in_month(y, static_cast<int>(m)))
        return bad_key(Error::OutOfRange, kind, key,
                       format("day %02lld is out of range for ", d) + kMonthNames[m - 1] +
                           format(" %04lld", y));
    return date_ordinal(y, static_cast<int>(m), static_cast<int>(d));
}

bool dashed_date(std::string_view key, int64_t* y, int64_t* m, int64_t* d) {
    return key.size() >= 10 && key[4] == '-' && key[7] == '-' && digits_at(key, 0, 4, y) &&
           digits_at(key, 5, 2, m) && digits_at(key, 8, 2, d);
}

Result<int64_t> parse_date(std::string_view key) {
    int64_t y = 0, m = 0, d = 0;
    const bool dashed = key.size() == 10 && dashed_date(key, &y, &m, &d);
    const bool compact = key.size() == 8 && digits_at(key, 0, 4, &y) && digits_at(key, 4, 2, &m) &&
                         digits_at(key, 6, 2, &d);
    if (!dashed && !compact)
        return bad_key(Error::Malformed, Kind::Date, key, "expected YYYY-MM-DD or YYYYMMDD");
    return check_date(Kind::Date, key, y, m, d);
}

Result<int64_t> parse_hour(std::string_view key) {
    int64_t y = 0, m = 0, d = 0, h = 0, minutes = 0, seconds = 0;
    bool shaped = key.size() >= 13 && dashed_date(key, &y, &m, &d) &&
                  (key[10] == 'T' || key[10] == ' ') && digits_at(key, 11, 2, &h);
    if (shaped) {
        std::string_view rest = key.substr(13);
        if (!rest.empty() && rest.back() == 'Z') rest.remove_suffix(1);
        if (rest.size() == 3 || rest.size() == 6)
            shaped = rest[0] == ':' && digits_at(rest, 1, 2, &minutes) &&
                     (rest.size() == 3 || (rest[3] == ':' && digits_at(rest, 4, 2, &seconds)));
        else
            shaped = rest.empty();
    }
    if (!shaped)
        return bad_key(Error::Malformed, Kind::Hour, key,
                       "expected YYYY-MM-DDTHH (optionally with :00 or :00:00 and Z)");
    if (minutes != 0 || seconds != 0)
        return bad_key(Error::Malformed, Kind::Hour, key,
                       "minutes and seconds must be 00: an hour key names a whole hour");
    Result<int64_t> days = check_date(Kind::Hour, key, y, m, d);
    if (!days.ok()) return days;
    if (h > 23)
        return bad_key(Error::OutOfRange, Kind::Hour, key,
                       format("hour %02lld is out of range (00..23)", h));
    return days.value() * kHoursPerDay + h;
}

Result<int64_t> parse_int(std::string_view key) {
    const bool negative = key[0] == '-';
    const std::size_t start = (key[0] == '-' || key[0] == '+') ? 1 : 0;
    bool shaped = key.size() > start;
    for (std::size_t i = start; shaped && i < key.size(); ++i)
        shaped = key[i] >= '0' && key[i] <= '9';
    if (!shaped)
        return bad_key(Error::Malformed, Kind::Int, key,
                       "expected an optional sign followed by decimal digits");
    // Accumulate the magnitude unsigned; -2^63 has no positive counterpart.
    const std::uint64_t limit =
        static_cast<std::uint64_t>(std::numeric_limits<int64_t>::max()) + (negative ? 1 : 0);
    std::uint64_t magnitude = 0;
    for (std::size_t i = start; i < key.size(); ++i) {
        const unsigned digit = static_cast<unsigned>(key[i] - '0');
        if (magnitude > (limit - digit) / 10)
            return bad_key(Error::OutOfRange, Kind::Int, key,
                           "value is out of range for a 64-bit integer");
        magnitude = magnitude * 10 + digit;
    }
    if (!negative) return static_cast<int64_t>(magnitude);
    return magnitude == limit ? std::numeric_limits<int64_t>::min()
                              : -static_cast<int64_t>(magnitude);
}

std::optional<Failure> check_text(std::string_view key) {
    if (key.size() > kMaxTextBytes)
        return bad_key(
            Error::TooLong, Kind::Text, key,
            format("%lld bytes is longer than the limit of %lld bytes",
                   static_cast<long long>(key.size()), static_cast<long long>(kMaxTextBytes)));
    for (std::size_t i = 0; i < key.size(); ++i) {
        const auto c = static_cast<unsigned char>(key[i]);
        if (c < 0x20 || c == 0x7F)
            return bad_key(Error::Malformed, Kind::Text, key,
                           format("control character 0x%02llX at position %lld is not allowed", c,
                                  static_cast<long long>(i + 1)));
    }
    return std::nullopt;
}

Failure empty_key(Kind kind) {
    return bad_key(Error::Empty, kind, "", "a key cannot be empty");
}

int64_t min_ordinal(Kind kind) {
    return kind == Kind::Date   ? kMinDateOrdinal
           : kind == Kind::Hour ? kMinHourOrdinal
                                : std::numeric_limits<int64_t>::min();
}

int64_t max_ordinal(Kind kind) {
    return kind == Kind::Date   ? kMaxDateOrdinal
           : kind == Kind::Hour ? kMaxHourOrdinal
                                : std::numeric_limits<int64_t>::max();
}

std::string format_ordinal(Kind kind, int64_t ord) {
    char buf[64];  // 14 bytes in practice; sized for what -Wformat-truncation can prove
    if (kind == Kind::Int) return std::to_string(ord);
    const int64_t days = kind == Kind::Hour ? floor_div(ord, kHoursPerDay) : ord;
    const Civil c = civil_from_ordinal(days);
    if (kind == Kind::Date)
        std::snprintf(buf, sizeof buf, "%04lld-%02d-%02d", static_cast<long long>(c.year), c.month,
                      c.day);
    else
        std::snprintf(buf, sizeof buf, "%04lld-%02d-%02dT%02lld", static_cast<long long>(c.year),
                      c.month, c.day, static_cast<long long>(ord - days * kHoursPerDay));
    return buf;
}

template <typename F>
Result<std::vector<std::string>> expand(Kind kind, const Result<Span>& span, F&& text_key) {
    if (!span.ok()) return span.failure();
    std::vector<std::string> out;
    if (kind == Kind::Text) {
        out.push_back(text_key());
        return out;
    }
    out.reserve(static_cast<std::size_t>(span.value().count));
    for (int64_t i = 0; i < span.value().count; ++i)
        out.push_back(format_ordinal(kind, span.value().first + i));
    return out;
}

}  // namespace

const char* kind_name(Kind kind) {
    switch (kind) {
        case Kind::Date: return "date";
        case Kind::Hour: return "hour";
        case Kind::Int: return "int";
        case Kind::Text: return "text";
    }
    return "?";
}

bool is_ordered(Kind kind) {
    return kind != Kind::Text;
}

Result<Kind> parse_kind(std::string_view name) {
    for (Kind k : {Kind::Date, Kind::Hour, Kind::Int, Kind::Text})
        if (name == kind_name(k)) return k;
    return fail(Error::BadKind, std::nullopt, "unknown key kind " + quote_key(name),
                "key kinds are date, hour, int and text");
}

Result<int64_t> ordinal(Kind kind, std::string_view key) {
    if (key.empty()) return empty_key(kind);
    switch (kind) {
        case Kind::Date: return parse_date(key);
        case Kind::Hour: return parse_hour(key);
        case Kind::Int: return parse_int(key);
        case Kind::Text: break;
    }
    if (std::optional<Failure> bad = check_text(key)) return *bad;
    return not_ordered("an ordinal");
}

Result<std::string> canonicalize(Kind kind, std::string_view key) {
    if (kind == Kind::Text) {
        if (key.empty()) return empty_key(kind);
        if (std::optional<Failure> bad = check_text(key)) return *bad;
        return std::string(key);
    }
    Result<int64_t> ord = ordinal(kind, key);
    if (!ord.ok()) return ord.failure();
    return format_ordinal(kind, ord.value());
}

Result<std::string> from_ordinal(Kind kind, int64_t ord) {
    if (kind == Kind::Text) return not_ordered("a key from an ordinal");
    if (ord < min_ordinal(kind) || ord > max_ordinal(kind))
        return fail(Error::OutOfRange, kind,
                    std::string(kind_name(kind)) + " ordinal " + std::to_string(ord) +
                        " is out of range (" + std::to_string(min_ordinal(kind)) + ".." +
                        std::to_string(max_ordinal(kind)) + ", that is " +
                        format_ordinal(kind, min_ordinal(kind)) + ".." +
                        format_ordinal(kind, max_ordinal(kind)) + ")",
                    kind_hint(kind));
    return format_ordinal(kind, ord);
}

Result<int> compare(Kind kind, std::string_view a, std::string_view b) {
    if (kind == Kind::Text) {
        for (std::string_view key : {a, b}) {
            Result<std::string> canon = canonicalize(kind, key);
            if (!canon.ok()) return canon.failure();
        }
        const int c = a.compare(b);  // char_traits<char> compares bytes as unsigned char
        return (c > 0) - (c < 0);
    }
    Result<int64_t> x = ordinal(kind, a);
    if (!x.ok()) return x.failure();
    Result<int64_t> y = ordinal(kind, b);
    if (!y.ok()) return y.failure();
    return (x.value() > y.value()) - (x.value() < y.value());
}

Result<Span> range_span(Kind kind, std::string_view from, std::string_view to, int64_t max_keys) {
    if (kind == Kind::Text) {
        for (std::string_view key : {from, to}) {
            Result<std::string> canon = canonicalize(kind, key);
            if (!canon.ok()) return canon.failure();
        }
    }
    Result<int64_t> a = kind == Kind::Text ? Result<int64_t>(0) : ordinal(kind, from);
    if (!a.ok()) return a.failure();
    Result<int64_t> b = kind == Kind::Text ? Result<int64_t>(0) : ordinal(kind, to);
    if (!b.ok()) return b.failure();
    if (max_keys < 1)
        return fail(Error::BadRange, kind,
                    format("max_keys must be at least 1 (got %lld)", max_keys), "");
    if (kind == Kind::Text) {
        if (from != to)
            return fail(Error::NotOrdered, kind,
                        "text keys have no order: a text range must have from = to (got " +
                            quote_key(from) + " and " + quote_key(to) + ")",
                        kOrderedHint);
        return Span{0, 1};
    }
    const std::string first = format_ordinal(kind, a.value());
    const std::string last = format_ordinal(kind, b.value());
    if (a.value() > b.value())
        return fail(Error::BadRange, kind,
                    std::string("invalid ") + kind_name(kind) + " range: from key " +
                        quote_key(first) + " is after to key " + quote_key(last),
                    "ranges are inclusive and go from the smaller key to the larger");
    const std::uint64_t diff =
        static_cast<std::uint64_t>(b.value()) - static_cast<std::uint64_t>(a.value());
    if (diff >= static_cast<std::uint64_t>(max_keys)) {
        const std::string count = diff == std::numeric_limits<std::uint64_t>::max()
                                      ? "18446744073709551616"
                                      : std::to_string(diff + 1);
        return fail(Error::TooMany, kind,
                    std::string(kind_name(kind)) + " range " + first + ".." + last + " has " +
                        count + " keys, more than max_keys (" + std::to_string(max_keys) + ")",
                    "raise max_keys or split the range");
    }
    return Span{a.value(), static_cast<int64_t>(diff + 1)};
}

Result<std::vector<std::string>> range(Kind kind, std::string_view from, std::string_view to,
                                       int64_t max_keys) {
    return expand(kind, range_span(kind, from, to, max_keys), [&] { return std::string(from); });
}

Result<Span> window_span(Kind kind, std::string_view key, std::int32_t lo, std::int32_t hi) {
    if (kind == Kind::Text) return not_ordered("a window");
    Result<int64_t> ord = ordinal(kind, key);
    if (!ord.ok()) return ord.failure();
    if (lo > hi)
        return fail(Error::BadRange, kind,
                    format("invalid window: lo (%lld) is greater than hi (%lld)", lo, hi),
                    "a window lo..hi needs lo <= hi, e.g. -6..0 for the last 7 keys");
    const int64_t count = static_cast<int64_t>(hi) - lo + 1;
    if (count > kMaxWindowKeys)
        return fail(Error::TooMany, kind,
                    format("window %lld..%lld has %lld keys, more than the limit of %lld", lo, hi,
                           count, kMaxWindowKeys),
                    "a window spans at most 100000 keys");
    int64_t first = 0, last = 0;
    if (__builtin_add_overflow(ord.value(), static_cast<int64_t>(lo), &first) ||
        __builtin_add_overflow(ord.value(), static_cast<int64_t>(hi), &last) ||
        first < min_ordinal(kind) || last > max_ordinal(kind))
        return fail(Error::OutOfRange, kind,
                    format("window %lld..%lld around ", lo, hi) + kind_name(kind) + " key " +
                        quote_key(format_ordinal(kind, ord.value())) + " leaves the range of " +
                        kind_name(kind) + " keys (" + format_ordinal(kind, min_ordinal(kind)) +
                        ".." + format_ordinal(kind, max_ordinal(kind)) + ")",
                    kind_hint(kind));
    return Span{first, count};
}

Result<std::vector<std::string>> window(Kind kind, std::string_view key, std::int32_t lo,
                                        std::int32_t hi) {
    return expand(kind, window_span(kind, key, lo, hi), [] { return std::string(); });
}

namespace {
Failure bad_mapping(Kind parent_kind, Kind child_kind) {
    return fail(Error::BadMapping, std::nullopt,
                std::string("no rollup between ") + kind_name(parent_kind) + " keys and " +
                    kind_name(child_kind) + " keys: " + kind_name(parent_kind) +
                    " keys do not contain " + kind_name(child_kind) + " keys",
                "the only rollup is date -> hour: each date key contains its 24 hour keys");
}
}  // namespace

Result<Span> children_span(Kind parent_kind, Kind child_kind, std::string_view key) {
    if (parent_kind != Kind::Date || child_kind != Kind::Hour)
        return bad_mapping(parent_kind, child_kind);
    Result<int64_t> days = ordinal(Kind::Date, key);
    if (!days.ok()) return days.failure();
    return Span{days.value() * kHoursPerDay, kHoursPerDay};
}

Result<std::vector<std::string>> children(Kind parent_kind, Kind child_kind, std::string_view key) {
    return expand(child_kind, children_span(parent_kind, child_kind, key),
                  [] { return std::string(); });
}

Result<std::string> parent(Kind child_kind, Kind parent_kind, std::string_view key) {
    if (parent_kind != Kind::Date || child_kind != Kind::Hour)
        return bad_mapping(parent_kind, child_kind);
    Result<int64_t> hours = ordinal(Kind::Hour, key);
    if (!hours.ok()) return hours.failure();
    return format_ordinal(Kind::Date, floor_div(hours.value(), kHoursPerDay));
}

std::string quote_key(std::string_view key) {
    std::string out = "\"";
    std::size_t shown = 0;
    for (char ch : key) {
        const auto c = static_cast<unsigned char>(ch);
        const bool starts_char = (c & 0xC0) != 0x80;
        if (starts_char && shown >= kQuotedKeyBytes) {
            out += "...";
            break;
        }
        if (c < 0x20 || c == 0x7F) {
            char esc[8];
            std::snprintf(esc, sizeof esc, "\\x%02X", c);
            out += esc;
            shown += 4;
        } else {
            out += ch;
            ++shown;
        }
    }
    return out + "\"";
}

}  // namespace dataflow::keys
