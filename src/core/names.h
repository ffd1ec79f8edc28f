// names.h — how near one object name is to another, for "did you mean ...?" hints.
//
// Postgres-free (src/core/README.md). Names of datasets, jobs, pools, connections and
// subscriptions are ASCII (dataflow._check_name), so distances are over bytes, with ASCII
// letters compared case-insensitively; a name the caller typed may hold anything else,
// which only makes it farther from every real name.
#pragma once

#include <cstddef>
#include <string_view>

namespace dataflow {

// Levenshtein distance (insertions, deletions, substitutions, each 1) between a and b,
// ASCII case folded, bounded: any distance above `cap` is returned as cap + 1, and the
// work is O(len * (2 * cap + 1)) — a length difference above cap returns at once.
std::size_t name_distance(std::string_view a, std::string_view b, std::size_t cap);

// The largest distance at which a name is still suggested for a typed name of `len`
// bytes: max(2, len / 3).
std::size_t suggest_cap(std::size_t len);

}  // namespace dataflow
