// Versions of the extension: the library's own and the installed SQL's
// (pg_extension.extversion), compared to say which side is behind.
// Plain C ABI, no allocation, no exceptions: callable from Postgres frames.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// Orders two dotted versions ("0.2.0", "1.10"): negative, zero or positive as a is older
// than, equal to or newer than b. Parts compare as numbers; a missing part counts as 0
// ("1.2" = "1.2.0"); a part that is not a number compares as text after every number,
// so a version never fails to compare.
int df_version_compare(const char* a, const char* b);

#ifdef __cplusplus
}

#include <string>

namespace dataflow {

// What the background worker logs while it waits for a library/SQL mismatch to end:
// empty when the versions are equal, else one sentence naming both versions and what
// fixes it (ALTER EXTENSION ... UPDATE when the SQL is behind, a restart that loads the
// matching library when the library is). `installed` is pg_extension.extversion in `database`.
std::string version_mismatch(const std::string& library, const std::string& installed,
                             const std::string& database);

}  // namespace dataflow
#endif
