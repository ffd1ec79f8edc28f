// What PostgreSQL refuses in text and jsonb, checked in one pass over the bytes.
#include "core/json_text.h"

#include <cstdio>

namespace dataflow {

size_t utf8_length(std::string_view s, size_t i) {
    auto at = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
    unsigned char c = at(0);
    if (c < 0x80) return 1;
    size_t len = c >= 0xC2 && c <= 0xDF   ? 2
                 : c >= 0xE0 && c <= 0xEF ? 3
                 : c >= 0xF0 && c <= 0xF4 ? 4
                                          : 0;
    if (len == 0 || i + len > s.size()) return 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
    if (at(1) < lo || at(1) > hi) return 0;
    for (size_t k = 2; k < len; ++k)
        if ((at(k) & 0xC0) != 0x80) return 0;
    return len;
}

namespace {

std::string bad_byte(std::string_view s, size_t i) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(s[i]));
    return std::string(s[i] == '\0' ? "a NUL byte" : "byte " + std::string(hex)) + " at offset " +
           std::to_string(i) + (s[i] == '\0' ? "" : " is not valid UTF-8");
}

}  // namespace

std::optional<std::string> text_refusal(std::string_view text) {
    for (size_t i = 0; i < text.size();) {
        size_t len = text[i] == '\0' ? 0 : utf8_length(text, i);
        if (len == 0) return bad_byte(text, i);
        i += len;
    }
    return std::nullopt;
}

std::optional<std::string> jsonb_refusal(std::string_view json, size_t max_depth) {
    size_t depth = 0;
    bool in_string = false, escaped = false;
    for (size_t i = 0; i < json.size();) {
        char c = json[i];
        size_t len = c == '\0' ? 0 : utf8_length(json, i);
        if (len == 0) return bad_byte(json, i);
        if (escaped) {
            escaped = false;  // the character after a backslash: data, never a quote
        } else if (in_string) {
            if (c == '"') {
                in_string = false;
            } else if (c == '\\') {
                // \u0000: jsonb refuses it, the JSON parser does not (both refuse lone
                // surrogates such as \ud800).
                if (json.substr(i + 1, 5) == "u0000")
                    return "\\u0000 at offset " + std::to_string(i) +
                           " (PostgreSQL cannot store the NUL character in jsonb)";
                escaped = true;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth)
                return "arrays and objects nested deeper than " + std::to_string(max_depth) +
                       " levels";
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
        i += len;
    }
    return std::nullopt;
}

}  // namespace dataflow
