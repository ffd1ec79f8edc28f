-- Key handling (C++ core behind dataflow._key_*): every kind, canonical forms,
-- ordinals, ranges, windows, rollup and backoff, and every rejection with its SQLSTATE.
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
SET datestyle = 'ISO, YMD';   -- error messages quoting timestamps are masked in ISO form
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
-- canonical form of a key, or the error it raises
CREATE FUNCTION pg_temp.canon(kind text, key text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN RETURN dataflow._key_canon(kind, key);
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;

-- date: two accepted spellings, one canonical form; impossible dates are 22008,
-- wrong shapes 22007, the empty key 22023.
SELECT k AS date_key, pg_temp.canon('date', k) FROM unnest(ARRAY[
  '2024-01-31', '20240131', '2024-02-29', '0001-01-01', '9999-12-31',
  '2024-02-30', '2023-02-29', '2024-13-01', '2024-00-10', '0000-01-01',
  '2024-1-31', '10000-01-01', ' 2024-01-01', '2024-01-01 ', 'x', '']) k;

-- hour: five spellings of 05:00 on 2024-01-31, all canonical 2024-01-31T05.
SELECT k AS hour_key, pg_temp.canon('hour', k) FROM unnest(ARRAY[
  '2024-01-31T05', '2024-01-31 05', '2024-01-31T05:00', '2024-01-31T05:00:00',
  '2024-01-31T05:00:00Z', '2024-01-31T05Z', '2024-01-31T00', '2024-01-31T23',
  '2024-01-31T24', '2024-02-30T01', '2024-01-31T05:30', '2024-01-31T05:00:01',
  '2024-01-31t05', '2024-01-31T05z', '2024-01-31T05+01', '2024-01-31', '']) k;

-- int: sign and leading zeros are normalized; int64 bounds hold; the rest is 22P02/22003.
SELECT k AS int_key, pg_temp.canon('int', k) FROM unnest(ARRAY[
  '42', '+42', '007', '-0', '-7', '9223372036854775807', '-9223372036854775808',
  '9223372036854775808', '-9223372036854775809', '1e3', '1.0', ' 1', '-', '+', 'abc', '']) k;

-- text: kept as given (any printable text up to 512 bytes); empty, control characters
-- and over-long keys are rejected with 22023.
SELECT k AS text_key, pg_temp.canon('text', k) FROM unnest(ARRAY[
  'a b', 'Ünïcødé', '2024-01-31', ''';drop table x;--', '', E'a\nb', E'tab\there']) k;
SELECT length(pg_temp.canon('text', repeat('x', 512))) AS len_512_ok,
       pg_temp.canon('text', repeat('x', 513)) AS len_513;

-- unknown kinds are 22023 for every key function
SELECT pg_temp.err($$SELECT dataflow._key_canon('week', '1')$$) AS canon,
       pg_temp.err($$SELECT dataflow._key_ord('', '1')$$) AS ord,
       pg_temp.err($$SELECT dataflow._key_text('Date', 1)$$) AS text_;

-- the functions are STRICT: NULL in, NULL out
SELECT dataflow._key_canon('date', NULL) IS NULL AS canon_null,
       dataflow._key_ord(NULL, '1') IS NULL AS ord_null,
       dataflow._key_text('int', NULL) IS NULL AS text_null;

-- ordinals: days / hours since 1970-01-01, the integer itself, NULL for text.
SELECT dataflow._key_ord('date', '1970-01-01') AS d0, dataflow._key_ord('date', '1969-12-31') AS d_neg,
       dataflow._key_ord('date', '2024-01-31') AS d, dataflow._key_ord('hour', '1970-01-02T01') AS h25,
       dataflow._key_ord('int', '-7') AS i, dataflow._key_ord('text', 'abc') IS NULL AS text_has_no_ord;
SELECT pg_temp.err($$SELECT dataflow._key_ord('text', '')$$) AS text_empty,
       pg_temp.err($$SELECT dataflow._key_ord('date', '2024-02-30')$$) AS bad_date;
-- ordinals order keys across month, year and leap-day boundaries
SELECT k, dataflow._key_ord('date', k) - lag(dataflow._key_ord('date', k)) OVER (ORDER BY k) AS step
  FROM unnest(ARRAY['2024-02-28', '2024-02-29', '2024-03-01', '2024-12-31', '2025-01-01']) k;
-- _key_text is the inverse of _key_ord, and range-checked
SELECT dataflow._key_text('date', 19753) AS d, dataflow._key_text('hour', 474077) AS h,
       dataflow._key_text('date', -719162) AS first_date, dataflow._key_text('hour', 2932896 * 24 + 23) AS last_hour,
       dataflow._key_text('int', -9223372036854775808) AS min_int;
SELECT pg_temp.err($$SELECT dataflow._key_text('date', 2932897)$$) AS past_9999,
       pg_temp.err($$SELECT dataflow._key_text('hour', -719162 * 24 - 1)$$) AS before_0001,
       pg_temp.err($$SELECT dataflow._key_text('text', 1)$$) AS text_kind;
-- round trip over a span of ordinals, including negative ones
SELECT count(*) AS mismatches FROM generate_series(-800, 800) o
 WHERE dataflow._key_ord('date', dataflow._key_text('date', o)) <> o
    OR dataflow._key_ord('hour', dataflow._key_text('hour', o * 37)) <> o * 37;

-- ranges are inclusive, in order, canonical whatever the input spelling
SELECT * FROM dataflow._key_range('date', '20240227', '2024-03-02', 100);
SELECT * FROM dataflow._key_range('hour', '2024-01-31 22', '2024-02-01T01:00', 100);
SELECT * FROM dataflow._key_range('int', '-2', '+2', 100);
SELECT * FROM dataflow._key_range('text', 'a', 'a', 100);   -- a text "range" is its one key, no ordinal
SELECT count(*) FROM dataflow._key_range('int', '1', '1000', 1000) AS exactly_max_keys;
SELECT pg_temp.err($$SELECT * FROM dataflow._key_range('int', '1', '1001', 1000)$$) AS too_many,
       pg_temp.err($$SELECT * FROM dataflow._key_range('date', '2024-02-01', '2024-01-01', 100)$$) AS backwards,
       pg_temp.err($$SELECT * FROM dataflow._key_range('text', 'a', 'b', 100)$$) AS text_range,
       pg_temp.err($$SELECT * FROM dataflow._key_range('int', '1', '2', 0)$$) AS zero_max;
SELECT pg_temp.err($$SELECT * FROM dataflow._key_range('int', '-9223372036854775808', '9223372036854775807', 10)$$) AS whole_int64,
       pg_temp.err($$SELECT * FROM dataflow._key_range('date', '2024-01-01', 'x', 10)$$) AS bad_to;

-- windows: key+lo .. key+hi; a rolling 7 days is -6..0
SELECT * FROM dataflow._key_window('date', '2024-03-02', -6, 0);
SELECT * FROM dataflow._key_window('hour', '2024-01-01T00', -1, 1);
SELECT * FROM dataflow._key_window('int', '10', 2, 2);
SELECT pg_temp.err($$SELECT * FROM dataflow._key_window('date', '2024-01-01', 1, 0)$$) AS lo_gt_hi,
       pg_temp.err($$SELECT * FROM dataflow._key_window('text', 'a', 0, 0)$$) AS text_kind,
       pg_temp.err($$SELECT * FROM dataflow._key_window('date', '9999-12-31', 0, 1)$$) AS past_end,
       pg_temp.err($$SELECT * FROM dataflow._key_window('int', '9223372036854775807', 0, 1)$$) AS int_overflow,
       pg_temp.err($$SELECT * FROM dataflow._key_window('int', '0', -100000, 0)$$) AS too_wide;

-- rollup: a date holds its 24 hours; an hour's parent is its date; no other pair exists (42P17)
SELECT count(*) AS n, min(key), max(key), max(ord) - min(ord) AS span
  FROM dataflow._key_children('date', 'hour', '20240229');
SELECT dataflow._key_parent('hour', 'date', '2024-02-29T23') AS parent,
       dataflow._key_parent('hour', 'date', '1969-12-31T23') AS before_epoch;
SELECT pg_temp.err($$SELECT * FROM dataflow._key_children('hour', 'date', '2024-01-01T00')$$) AS reversed,
       pg_temp.err($$SELECT * FROM dataflow._key_children('date', 'int', '2024-01-01')$$) AS date_int,
       pg_temp.err($$SELECT dataflow._key_parent('date', 'hour', '2024-01-01')$$) AS parent_reversed,
       pg_temp.err($$SELECT dataflow._key_parent('hour', 'date', '2024-01-01')$$) AS not_an_hour;

-- backoff: exponential from min, capped at max; jitter 0 = the floor, 1 = the cap
SELECT a AS attempt, dataflow._backoff(a, 10, 600, 1) AS cap, dataflow._backoff(a, 10, 600, 0) AS floor,
       dataflow._backoff(a, 10, 600, 0.5) AS half
  FROM generate_series(1, 8) a;
SELECT dataflow._backoff(2147483647, 1, 3600, 1) AS huge_attempt, dataflow._backoff(5, 0, 0, 1) AS zero;
-- every jittered value lies in [min, cap]
SELECT count(*) AS outside FROM generate_series(1, 200) i,
       LATERAL (SELECT dataflow._backoff(1 + i % 9, 2, 300, random()) AS s) b
 WHERE b.s < 2 OR b.s > least(300, 2 * 2 ^ (i % 9));
SELECT pg_temp.err($$SELECT dataflow._backoff(0, 1, 2, 0)$$) AS attempt0,
       pg_temp.err($$SELECT dataflow._backoff(1, -1, 2, 0)$$) AS neg_min,
       pg_temp.err($$SELECT dataflow._backoff(1, 3, 2, 0)$$) AS max_lt_min,
       pg_temp.err($$SELECT dataflow._backoff(1, 1, 2, 1.5)$$) AS jitter_gt_1;
SELECT pg_temp.err($$SELECT dataflow._backoff(1, 'NaN', 2, 0)$$) AS nan_min,
       pg_temp.err($$SELECT dataflow._backoff(1, 1, 'Infinity', 0)$$) AS inf_max;

-- keys given to public functions are stored canonical: 20240131 and 2024-01-31 are one chunk,
-- and the same content registered under the other spelling is a duplicate, not version 2
SELECT dataflow.create_dataset('k_src', 'date');
SELECT dataflow.register('k_src', '20240131');
SELECT dataflow.register('k_src', '2024-01-31') AS version_after_other_spelling;
SELECT key, version, ord FROM dataflow.chunk WHERE dataset_id = (SELECT id FROM dataflow.dataset WHERE name = 'k_src');
