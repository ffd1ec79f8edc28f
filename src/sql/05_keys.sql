-- Key handling lives in C++ (src/core/keys.cpp) behind the guarded boundary
-- in src/pg/keys_sql.cpp. Canonical text forms: date 2024-01-31, hour
-- 2024-01-31T05, int 42, text any non-empty string. Ordinals make date, hour
-- and int keys ordered and let ranges be computed with integer arithmetic:
-- days since 1970-01-01, hours since 1970-01-01T00, the integer itself.

CREATE FUNCTION dataflow._key_canon(kind text, key text) RETURNS text
AS 'MODULE_PATHNAME', 'df_key_canon' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dataflow._key_canon(text, text) IS
  'Canonical text form of a key of the given kind; raises on a key that does not parse';

CREATE FUNCTION dataflow._key_ord(kind text, key text) RETURNS bigint
AS 'MODULE_PATHNAME', 'df_key_ord' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dataflow._key_ord(text, text) IS
  'Ordinal of a date/hour/int key (days or hours since 1970-01-01, or the integer); NULL for text keys';

CREATE FUNCTION dataflow._key_text(kind text, ord bigint) RETURNS text
AS 'MODULE_PATHNAME', 'df_key_text' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dataflow._key_text(text, bigint) IS
  'Canonical key of the given kind at an ordinal';

CREATE FUNCTION dataflow._key_range(kind text, from_key text, to_key text, max_keys bigint)
RETURNS TABLE(key text, ord bigint)
AS 'MODULE_PATHNAME', 'df_key_range' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 1000;
COMMENT ON FUNCTION dataflow._key_range(text, text, text, bigint) IS
  'Every key from from_key to to_key inclusive, in order; raises past max_keys';

CREATE FUNCTION dataflow._key_window(kind text, key text, lo integer, hi integer)
RETURNS TABLE(key text, ord bigint)
AS 'MODULE_PATHNAME', 'df_key_window' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 7;
COMMENT ON FUNCTION dataflow._key_window(text, text, integer, integer) IS
  'Keys key+lo .. key+hi of an ordered kind (a rolling window)';

CREATE FUNCTION dataflow._key_children(parent_kind text, child_kind text, key text)
RETURNS TABLE(key text, ord bigint)
AS 'MODULE_PATHNAME', 'df_key_children' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 24;
COMMENT ON FUNCTION dataflow._key_children(text, text, text) IS
  'The finer keys inside a coarser key (the 24 hours of a date)';

CREATE FUNCTION dataflow._key_parent(child_kind text, parent_kind text, key text) RETURNS text
AS 'MODULE_PATHNAME', 'df_key_parent' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dataflow._key_parent(text, text, text) IS
  'The coarser key containing a finer key (the date of an hour)';

CREATE FUNCTION dataflow._backoff(attempt integer, min_seconds double precision,
                                  max_seconds double precision, jitter double precision)
RETURNS double precision
AS 'MODULE_PATHNAME', 'df_backoff' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dataflow._backoff(integer, double precision, double precision, double precision) IS
  'Seconds to wait after the given failed attempt: exponential from min to max, jittered by jitter in [0,1]';

-- The input keys an output key needs under a mapping, computed on ordinals so a
-- million-key backfill is set arithmetic. Not strict and plain SQL so the
-- planner inlines it.
CREATE FUNCTION dataflow._input_keys(mapping text, in_kind text, lo integer, hi integer,
                                     key text, ord bigint)
RETURNS TABLE(key text, ord bigint)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT _input_keys.key, _input_keys.ord WHERE mapping OPERATOR(pg_catalog.=) 'same'
  UNION ALL
  SELECT dataflow._key_text(in_kind, _input_keys.ord OPERATOR(pg_catalog.+) g), _input_keys.ord OPERATOR(pg_catalog.+) g
    FROM pg_catalog.generate_series(lo::bigint, hi::bigint) AS g
   WHERE mapping OPERATOR(pg_catalog.=) 'window'
  UNION ALL
  SELECT dataflow._key_text('hour', _input_keys.ord OPERATOR(pg_catalog.*) 24 OPERATOR(pg_catalog.+) g),
         _input_keys.ord OPERATOR(pg_catalog.*) 24 OPERATOR(pg_catalog.+) g
    FROM pg_catalog.generate_series(0::bigint, 23::bigint) AS g
   WHERE mapping OPERATOR(pg_catalog.=) 'rollup'
$$;

-- The version the loaded library was built for; extversion in pg_extension is the SQL's.
-- The two differ between a package upgrade and ALTER EXTENSION pg_dataflow UPDATE, when
-- every other C function refuses (55DF1) until the update (docs/operations.md, Upgrading).
CREATE FUNCTION dataflow.library_version() RETURNS text
AS 'MODULE_PATHNAME', 'df_library_version' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dataflow.library_version() IS
  'Version of the loaded pg_dataflow library (compare with pg_extension.extversion).';
