// The Postgres-free parts of the hot path (hot_path_c.h).
#include "core/hot_path_c.h"

namespace {

// Decodes one UTF-8 code point at s[i..len); returns its length, 0 when malformed.
size_t utf8_next(const unsigned char* s, size_t i, size_t len, uint32_t* cp) {
    const unsigned char c = s[i];
    size_t n;
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        n = 2;
        v = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3;
        v = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4;
        v = c & 0x07;
    } else {
        return 0;
    }
    if (i + n > len) return 0;
    for (size_t k = 1; k < n; k++) {
        if ((s[i + k] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i + k] & 0x3F);
    }
    // overlong forms, surrogates and values past U+10FFFF are not UTF-8
    static const uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < kMin[n] || (v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF) return 0;
    *cp = v;
    return n;
}

bool control(uint32_t cp) {
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029;
}

}  // namespace

bool df_core_worker_name_ok(const char* name, size_t len) noexcept {
    if (name == nullptr || len == 0) return false;
    const auto* s = reinterpret_cast<const unsigned char*>(name);
    size_t chars = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp = 0;
        const size_t n = utf8_next(s, i, len, &cp);
        if (n == 0 || control(cp)) return false;
        if (++chars > 200) return false;
        i += n;
    }
    return true;
}

int32_t df_core_shard_key(int64_t a, int64_t b, int32_t shard) noexcept {
    return static_cast<int32_t>((a * 8191 + b * 64 + shard) % 2147483647);
}

int32_t df_core_first_shard(int32_t pid) noexcept {
    return pid % DF_COUNTER_SHARDS;
}
