// Chunk keys: parsing, canonical forms, ordinals, ranges, windows and the hour/date rollup.
//
// Kinds and their canonical text (docs/concepts.md, "Datasets"):
//   date  2024-01-31      accepts YYYY-MM-DD and YYYYMMDD; years 0001..9999;
//                         ordinal = days since 1970-01-01 (negative before it).
//   hour  2024-01-31T05   accepts YYYY-MM-DDTHH, YYYY-MM-DD HH, YYYY-MM-DDTHH:00 and
//                         YYYY-MM-DDTHH:00:00, each with an optional trailing Z;
//                         ordinal = hours since 1970-01-01T00.
//   int   42              an optional sign and decimal digits that fit int64; canonical
//                         without '+' or leading zeros ("-0" is "0"); ordinal = value.
//   text  anything        1..512 bytes without ASCII control characters; kept as given;
//                         no ordinal and no order beyond equality for ranges.
//
// Error classes: a text that does not have the shape of the kind is Malformed; a text with
// the right shape but an impossible value (2024-02-30, month 13, hour 24, int64 overflow) is
// OutOfRange. Deliberate choice: minutes or seconds other than 00 in an hour key are
// Malformed (the text is not an hour key at all, rather than a bad hour), and so are
// whitespace, lower-case 't'/'z' and time zone offsets other than Z.
//
// Nothing here throws for bad input: every operation returns a Result. Only allocation
// failure can throw (std::bad_alloc); the C ABI (keys_c.h) catches it.
#pragma once

#if defined(PG_VERSION_NUM) || defined(POSTGRES_H)
#error "src/core must stay Postgres-free: include keys_c.h from the Postgres layer"
#endif

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dataflow::keys {

enum class Kind { Date = 1, Hour = 2, Int = 3, Text = 4 };

enum class Error {
    Malformed = 1,
    OutOfRange = 2,
    Empty = 3,
    TooLong = 4,
    BadKind = 5,
    BadRange = 6,
    TooMany = 7,
    BadMapping = 8,
    NotOrdered = 9,
};

inline constexpr std::size_t kMaxTextBytes = 512;
inline constexpr std::int64_t kMaxWindowKeys = 100000;
// Ordinal bounds of the time kinds: 0001-01-01 .. 9999-12-31 (T23 for hours).
inline constexpr std::int64_t kMinDateOrdinal = -719162;
inline constexpr std::int64_t kMaxDateOrdinal = 2932896;
inline constexpr std::int64_t kMinHourOrdinal = kMinDateOrdinal * 24;
inline constexpr std::int64_t kMaxHourOrdinal = kMaxDateOrdinal * 24 + 23;
inline constexpr int kHoursPerDay = 24;

struct Failure {
    Error code;
    std::optional<Kind> kind;  // the kind whose key was rejected, if any
    std::string message;       // names the kind and quotes the offending key
    std::string hint;          // may be empty
};

template <typename T>
class Result {
public:
    Result(T value) : value_(std::move(value)) {}              // NOLINT: implicit on purpose
    Result(Failure failure) : failure_(std::move(failure)) {}  // NOLINT
    bool ok() const { return value_.has_value(); }
    const T& value() const { return value_.value(); }    // throws if !ok()
    const Failure& failure() const { return failure_; }  // meaningful only if !ok()

private:
    std::optional<T> value_;
    Failure failure_{};
};

// Ordinals first .. first + count - 1 (count >= 1), every one valid for the kind.
struct Span {
    std::int64_t first = 0;
    std::int64_t count = 0;
};

const char* kind_name(Kind kind);
bool is_ordered(Kind kind);  // date, hour, int
Result<Kind> parse_kind(std::string_view name);

Result<std::string> canonicalize(Kind kind, std::string_view key);
Result<std::int64_t> ordinal(Kind kind, std::string_view key);  // NotOrdered for text
Result<std::string> from_ordinal(Kind kind, std::int64_t ord);
Result<int> compare(Kind kind, std::string_view a, std::string_view b);  // -1, 0, 1

// Inclusive from..to. BadRange if from > to or max_keys < 1, TooMany if more than max_keys
// keys. Text ranges must have from == to (NotOrdered otherwise); range_span rejects text.
Result<Span> range_span(Kind kind, std::string_view from, std::string_view to,
                        std::int64_t max_keys);
Result<std::vector<std::string>> range(Kind kind, std::string_view from, std::string_view to,
                                       std::int64_t max_keys);

// key+lo .. key+hi for ordered kinds; lo <= hi; at most kMaxWindowKeys keys.
Result<Span> window_span(Kind kind, std::string_view key, std::int32_t lo, std::int32_t hi);
Result<std::vector<std::string>> window(Kind kind, std::string_view key, std::int32_t lo,
                                        std::int32_t hi);

// The rollup between nested kinds; the only pair is date (parent) / hour (child).
Result<Span> children_span(Kind parent_kind, Kind child_kind, std::string_view key);
Result<std::vector<std::string>> children(Kind parent_kind, Kind child_kind, std::string_view key);
Result<std::string> parent(Kind child_kind, Kind parent_kind, std::string_view key);

// The key as it appears in messages: quoted, control bytes as \xNN, cut after ~64 bytes
// on a UTF-8 character boundary with "..." appended.
std::string quote_key(std::string_view key);

}  // namespace dataflow::keys
