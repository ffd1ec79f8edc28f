-- pg_dataflow 0.1.0 -> 0.2.0. Every schema change since 0.1.0, in the order made;
-- test/integration/upgrade.sh proves that 0.1.0 updated by this script has the
-- catalog of a fresh 0.2.0 install.
\echo Use "ALTER EXTENSION pg_dataflow UPDATE TO '0.2.0'" to load this file. \quit

-- 05_keys, 90_security: the library's own version, readable during a version mismatch.
CREATE FUNCTION dataflow.library_version() RETURNS text
AS 'MODULE_PATHNAME', 'df_library_version' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dataflow.library_version() IS
  'Version of the loaded pg_dataflow library (compare with pg_extension.extversion).';
REVOKE EXECUTE ON FUNCTION dataflow.library_version() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dataflow.library_version() TO dataflow_reader;
