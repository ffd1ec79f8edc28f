// The C ABI of the key module (keys_c.h): noexcept trampolines over keys.h for the Postgres
// layer. Each catches every exception, fills the caller's df_key_error and returns its code;
// results go into caller buffers, so no C++ object outlives a call.
#include <cstdio>
#include <cstring>
#include <exception>

#include "keys.h"
#include "keys_c.h"

static_assert(static_cast<int>(dataflow::keys::Kind::Date) == DF_KIND_DATE &&
                  static_cast<int>(dataflow::keys::Kind::Hour) == DF_KIND_HOUR &&
                  static_cast<int>(dataflow::keys::Kind::Int) == DF_KIND_INT &&
                  static_cast<int>(dataflow::keys::Kind::Text) == DF_KIND_TEXT,
              "df_key_kind must mirror dataflow::keys::Kind");
static_assert(static_cast<int>(dataflow::keys::Error::Malformed) == DF_KEY_MALFORMED &&
                  static_cast<int>(dataflow::keys::Error::OutOfRange) == DF_KEY_OUT_OF_RANGE &&
                  static_cast<int>(dataflow::keys::Error::Empty) == DF_KEY_EMPTY &&
                  static_cast<int>(dataflow::keys::Error::TooLong) == DF_KEY_TOO_LONG &&
                  static_cast<int>(dataflow::keys::Error::BadKind) == DF_KEY_BAD_KIND &&
                  static_cast<int>(dataflow::keys::Error::BadRange) == DF_KEY_BAD_RANGE &&
                  static_cast<int>(dataflow::keys::Error::TooMany) == DF_KEY_TOO_MANY &&
                  static_cast<int>(dataflow::keys::Error::BadMapping) == DF_KEY_BAD_MAPPING &&
                  static_cast<int>(dataflow::keys::Error::NotOrdered) == DF_KEY_NOT_ORDERED,
              "df_key_code must mirror dataflow::keys::Error");
static_assert(dataflow::keys::kMaxTextBytes == DF_KEY_MAX_TEXT_BYTES &&
                  dataflow::keys::kMaxWindowKeys == DF_KEY_MAX_WINDOW_KEYS,
              "keys_c.h limits must mirror keys.h");

namespace {

using dataflow::keys::Failure;
using dataflow::keys::Kind;

// Copies src into dst (size n > 0), cutting on a UTF-8 character boundary if it must.
void copy_cut(char* dst, std::size_t n, const std::string& src) {
    std::size_t len = src.size() < n ? src.size() : n - 1;
    if (len < src.size())
        while (len > 0 && (static_cast<unsigned char>(src[len]) & 0xC0) == 0x80) --len;
    std::memcpy(dst, src.data(), len);
    dst[len] = '\0';
}

df_key_code report(df_key_error* err, df_key_code code, df_key_kind kind, const char* message,
                   const char* hint) noexcept {
    err->code = code;
    err->kind = kind;
    std::snprintf(err->message, sizeof err->message, "%s", message);
    std::snprintf(err->hint, sizeof err->hint, "%s", hint);
    return code;
}

df_key_code report(df_key_error* err, const Failure& f) {
    err->code = static_cast<df_key_code>(f.code);
    err->kind = f.kind ? static_cast<df_key_kind>(*f.kind) : DF_KIND_NONE;
    copy_cut(err->message, sizeof err->message, f.message);
    copy_cut(err->hint, sizeof err->hint, f.hint);
    return err->code;
}

// Runs body, turning any exception into DF_KEY_INTERNAL; body returns a df_key_code.
template <typename F>
df_key_code guarded(df_key_error* err, F&& body) noexcept {
    if (err == nullptr) return DF_KEY_INTERNAL;
    report(err, DF_KEY_OK, DF_KIND_NONE, "", "");
    try {
        return body();
    } catch (const std::exception& e) {
        return report(err, DF_KEY_INTERNAL, DF_KIND_NONE, e.what(), "");
    } catch (...) {
        return report(err, DF_KEY_INTERNAL, DF_KIND_NONE, "unexpected exception in key module", "");
    }
}

bool valid_kind(df_key_kind kind) {
    return kind >= DF_KIND_DATE && kind <= DF_KIND_TEXT;
}

df_key_code bad_kind_code(df_key_error* err, df_key_kind kind) {
    char message[64];
    std::snprintf(message, sizeof message, "invalid key kind code %d", static_cast<int>(kind));
    return report(err, DF_KEY_BAD_KIND, DF_KIND_NONE, message, "");
}

df_key_code null_argument(df_key_error* err) {
    return report(err, DF_KEY_INTERNAL, DF_KIND_NONE, "null pointer passed to the key module", "");
}

df_key_code copy_key(df_key_error* err, const std::string& key, char* buf, std::size_t buflen) {
    if (buf == nullptr || key.size() >= buflen)
        return report(err, DF_KEY_INTERNAL, DF_KIND_NONE,
                      "key buffer too small (use DF_KEY_BUF_SIZE)", "");
    std::memcpy(buf, key.c_str(), key.size() + 1);
    return DF_KEY_OK;
}

df_key_code put_span(df_key_error* err, const dataflow::keys::Result<dataflow::keys::Span>& span,
                     int64_t* first, int64_t* count) {
    if (!span.ok()) return report(err, span.failure());
    *first = span.value().first;
    *count = span.value().count;
    return DF_KEY_OK;
}

Kind to_kind(df_key_kind kind) {
    return static_cast<Kind>(kind);
}

}  // namespace

extern "C" {

df_key_code df_core_key_kind(const char* name, df_key_kind* kind, df_key_error* err) noexcept {
    return guarded(err, [&] {
        if (name == nullptr || kind == nullptr) return null_argument(err);
        auto parsed = dataflow::keys::parse_kind(name);
        if (!parsed.ok()) return report(err, parsed.failure());
        *kind = static_cast<df_key_kind>(parsed.value());
        return DF_KEY_OK;
    });
}

df_key_code df_core_key_canon(df_key_kind kind, const char* key, char* buf, size_t buflen,
                              df_key_error* err) noexcept {
    return guarded(err, [&] {
        if (!valid_kind(kind)) return bad_kind_code(err, kind);
        if (key == nullptr) return null_argument(err);
        auto canon = dataflow::keys::canonicalize(to_kind(kind), key);
        if (!canon.ok()) return report(err, canon.failure());
        return copy_key(err, canon.value(), buf, buflen);
    });
}

df_key_code df_core_key_ord(df_key_kind kind, const char* key, int64_t* ord, bool* has_ord,
                            df_key_error* err) noexcept {
    return guarded(err, [&] {
        if (!valid_kind(kind)) return bad_kind_code(err, kind);
        if (key == nullptr || ord == nullptr || has_ord == nullptr) return null_argument(err);
        *has_ord = false;
        if (kind == DF_KIND_TEXT) {
            auto canon = dataflow::keys::canonicalize(Kind::Text, key);
            return canon.ok() ? DF_KEY_OK : report(err, canon.failure());
        }
        auto value = dataflow::keys::ordinal(to_kind(kind), key);
        if (!value.ok()) return report(err, value.failure());
        *ord = value.value();
        *has_ord = true;
        return DF_KEY_OK;
    });
}

df_key_code df_core_key_text(df_key_kind kind, int64_t ord, char* buf, size_t buflen,
                             df_key_error* err) noexcept {
    return guarded(err, [&] {
        if (!valid_kind(kind)) return bad_kind_code(err, kind);
        auto text = dataflow::keys::from_ordinal(to_kind(kind), ord);
        if (!text.ok()) return report(err, text.failure());
        return copy_key(err, text.value(), buf, buflen);
    });
}

df_key_code df_core_key_compare(df_key_kind kind, const char* a, const char* b, int* cmp,
                                df_key_error* err) noexcept {
    return guarded(err, [&] {
        if (!valid_kind(kind)) return bad_kind_code(err, kind);
        if (a == nullptr || b == nullptr || cmp == nullptr) return null_argument(err);
        auto c = dataflow::keys::compare(to_kind(kind), a, b);
        if (!c.ok()) return report(err, c.failure());
        *cmp = c.value();
        return DF_KEY_OK;
    });
}

df_key_code df_core_key_range(df_key_kind kind, const char* from, const char* to, int64_t max_keys,
                              int64_t* first, int64_t* count, df_key_error* err) noexcept {
    return guarded(err, [&] {
        if (!valid_kind(kind)) return bad_kind_code(err, kind);
        if (from == nullptr || to == nullptr || first == nullptr || count == nullptr)
            return null_argument(err);
        return put_span(err, dataflow::keys::range_span(to_kind(kind), from, to, max_keys), first,
                        count);
    });
}

df_key_code df_core_key_window(df_key_kind kind, const char* key, int32_t lo, int32_t hi,
                               int64_t* first, int64_t* count, df_key_error* err) noexcept {
    return guarded(err, [&] {
        if (!valid_kind(kind)) return bad_kind_code(err, kind);
        if (key == nullptr || first == nullptr || count == nullptr) return null_argument(err);
        return put_span(err, dataflow::keys::window_span(to_kind(kind), key, lo, hi), first, count);
    });
}

df_key_code df_core_key_children(df_key_kind parent_kind, df_key_kind child_kind, const char* key,
                                 int64_t* first, int64_t* count, df_key_error* err) noexcept {
    return guarded(err, [&] {
        if (!valid_kind(parent_kind)) return bad_kind_code(err, parent_kind);
        if (!valid_kind(child_kind)) return bad_kind_code(err, child_kind);
        if (key == nullptr || first == nullptr || count == nullptr) return null_argument(err);
        return put_span(
            err, dataflow::keys::children_span(to_kind(parent_kind), to_kind(child_kind), key),
            first, count);
    });
}

df_key_code df_core_key_parent(df_key_kind child_kind, df_key_kind parent_kind, const char* key,
                               char* buf, size_t buflen, df_key_error* err) noexcept {
    return guarded(err, [&] {
        if (!valid_kind(child_kind)) return bad_kind_code(err, child_kind);
        if (!valid_kind(parent_kind)) return bad_kind_code(err, parent_kind);
        if (key == nullptr) return null_argument(err);
        auto p = dataflow::keys::parent(to_kind(child_kind), to_kind(parent_kind), key);
        if (!p.ok()) return report(err, p.failure());
        return copy_key(err, p.value(), buf, buflen);
    });
}

}  // extern "C"
