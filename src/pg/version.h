// The library knows the SQL it was built for (DF_EXTVERSION, from pg_dataflow.control).
//
// A package upgrade replaces the shared library before anyone runs ALTER EXTENSION
// pg_dataflow UPDATE, so a cluster may load a library that is newer (or, after a
// downgrade, older) than the extension's installed SQL. Every SQL-callable C function
// calls require_matching_sql() first; the background worker asks installed() and waits
// (docs/operations.md, "Upgrading").
#pragma once

namespace dataflow::version {

// The version this library was built for, e.g. "0.2.0".
const char* library() noexcept;

// Raises ERROR 55DF1, naming both versions and what to run, when the installed extension's
// version differs from library(). Checked once per transaction (pg_extension is read
// with an index lookup); skipped while an extension script runs (CREATE/ALTER EXTENSION
// call the functions they define) and in binary-upgrade mode. Does nothing when the
// extension is not installed in this database. Call it only from a Postgres frame
// (it may longjmp): no C++ object with a destructor may be alive in the caller.
void require_matching_sql();

}  // namespace dataflow::version
