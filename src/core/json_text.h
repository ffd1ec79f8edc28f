// Checks an engine's answer must pass before it goes into SQL: what PostgreSQL
// would refuse as text or jsonb, found in one pass over the bytes (no parse, no
// recursion), so a bad answer fails its own run with a clear reason instead of
// failing the statement that records it.
// Postgres-free (must not include postgres.h), unit-tested in test/unit.
#pragma once

#if defined(PG_VERSION_NUM) || defined(POSTGRES_H)
#error "src/core must stay Postgres-free"
#endif

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace dataflow {

// Deepest nesting of arrays and objects accepted in an engine's answer. PostgreSQL
// reads a few ten thousand levels before its stack limit; the worker's JSON library
// writes nested values back recursively. Far beyond any real task result.
constexpr size_t kMaxAnswerDepth = 1000;

// Length of the valid UTF-8 sequence at s[i] as PostgreSQL accepts it (no overlong
// forms, surrogates or code points past U+10FFFF), 0 when invalid. i < s.size().
size_t utf8_length(std::string_view s, size_t i);

// Why PostgreSQL would refuse `text` as a text value, or nullopt: a NUL byte, or a
// byte that is not valid UTF-8 as PostgreSQL checks it (no overlong forms, no
// surrogates, nothing past U+10FFFF). E.g. "byte 0xFF at offset 12 is not valid UTF-8".
std::optional<std::string> text_refusal(std::string_view text);

// Why PostgreSQL would refuse the JSON text `json` as jsonb, or nullopt, for what can
// be told without parsing: text_refusal(), a \u0000 escape inside a string (jsonb
// cannot store the NUL character), or arrays/objects nested deeper than max_depth.
// JSON syntax itself is not checked here (the parser does that).
std::optional<std::string> jsonb_refusal(std::string_view json, size_t max_depth = kMaxAnswerDepth);

}  // namespace dataflow
