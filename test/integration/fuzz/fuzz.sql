-- The hostile-input generator for fuzz_sql.sh (issue 7, item 6), installed in
-- schema fz of the test cluster. fz.run(fname, n, seed) makes n calls of one
-- public function with arguments drawn from role pools (valid values of every
-- kind, NULLs, empty and 1 MB strings, bad keys, wrong kinds, quotes,
-- semicolons, backslashes, Unicode, control characters, huge ranges and
-- numbers), each in a subtransaction, and reports the outcome by SQLSTATE.
-- Failing calls are checked to leave every dataflow table unchanged (an md5
-- fingerprint before and after, on a sample once a function has had many).
CREATE SCHEMA fz;

-- Role pools: SQL expressions (not values) so a 1 MB string costs nothing to
-- pass around. Every expression is evaluated once below to prove it is valid:
-- an error in a call is the function's, never the generator's.
CREATE TABLE fz.pool (role text NOT NULL, expr text NOT NULL, hostile boolean NOT NULL DEFAULT false);

-- Hostile text, shared by every text role.
CREATE TABLE fz.hostile (expr text NOT NULL);
INSERT INTO fz.hostile VALUES
 ('NULL'), (''''''), (''' '''), ('E''\t'''), ('''a'''), ('repeat(''x'', 64)'), ('repeat(''a'', 63)'),
 ('repeat(''x'', 1048576)'), ('repeat(''é'', 300)'), ('repeat(''🙂'', 100000)'),
 ($$'''' $$), ($$''''''$$), ($$'"'$$), ($$'\'$$), ($$'\\'$$), ($$E'\\x00'$$), ($$'a;b'$$), ($$'a b'$$),
 ($$'x''); DROP TABLE dataflow.chunk; --'$$), ($$'";DROP SCHEMA dataflow CASCADE;--'$$),
 ($$'x'' OR ''1''=''1'$$), ($$'$1'$$), ($$'$$ || '$' || $$$'$$),
 ($$'数据集'$$), ($$'🙂'$$), ($$E'\u202Egnp.exe'$$), ($$'Ａ'$$), ($$E'e\u0301'$$), ($$E'\u200B'$$),
 ($$E'\x01'$$), ($$E'\n'$$), ($$E'a\r\nX-Injected: 1'$$), ($$'%s%n%x%p'$$), ($$'{dataset}'$$),
 ($$'${x}'$$), ($$'$(id)'$$), ($$'`id`'$$), ($$'../../etc/passwd'$$), ($$'NULL'$$), ($$'null'$$),
 ($$'-1'$$), ($$'1e309'$$), ($$'a.b:c-d'$$), ($$'_x'$$), ($$'.x'$$), ($$'x.'$$), ($$'-x'$$),
 ($$'DaTaFlOw'$$), ($$'pg_catalog.pg_authid'$$), ($$'s_int '$$), ($$' s_int'$$), ($$'S_INT'$$),
 ($$(SELECT string_agg(chr(g), '') FROM generate_series(1, 2000) g)$$);

-- Keys: valid ones of every kind (kept inside January 2024 so that a random
-- pair never makes a legitimately huge date range), and bad ones.
INSERT INTO fz.pool (role, expr)
SELECT 'KEY', e FROM unnest(ARRAY[
 $$'2024-01-03'$$, $$'2024-01-01'$$, $$'2024-01-20'$$, $$'2024-01-31'$$, $$'2024-01-01T05'$$, $$'2024-01-01T00'$$,
 $$'2024-01-31T23'$$, $$'0001-01-01T00'$$, $$'1'$$, $$'5'$$, $$'60'$$, $$'190'$$, $$'191'$$, $$'200'$$, $$'-1'$$,
 $$'0'$$, $$'1000000000000'$$, $$'9223372036854775807'$$, $$'-9223372036854775808'$$, $$'a'$$, $$'b'$$, $$'x'$$,
 $$'2024-02-30'$$, $$'2024-13-01'$$, $$'2024-1-1'$$, $$'20240101'$$, $$'2024-01-01T24'$$, $$'2024-01-01T5'$$,
 $$'2024-01-01 05'$$, $$'2024-01-01T05:00'$$, $$'0000-01-01'$$, $$'10000-01-01'$$, $$'-4713-01-01'$$,
 $$'2023-12-31T23'$$, $$'9223372036854775808'$$, $$'-9223372036854775809'$$, $$'+1'$$, $$'01'$$, $$' 1'$$,
 $$'1 '$$, $$'1e3'$$, $$'0x1F'$$, $$'NaN'$$, $$'infinity'$$, $$'１'$$, $$'2024-01-0１'$$]) e;
INSERT INTO fz.pool (role, expr, hostile) SELECT 'KEY', expr, true FROM fz.hostile;

-- Existing object names (weighted: repeated) and hostile ones.
INSERT INTO fz.pool (role, expr)
SELECT r, quote_literal(n) FROM (VALUES
  ('DS', ARRAY['s_date', 's_hour', 's_int', 's_text', 'dim', 'o_date', 'o_daily', 'o_int', 'o_text', 'o_batch',
               'spare', 'free1', 'free2', 'o_int', 'o_date', 's_int', 'nope']),
  ('JOB', ARRAY['j_date', 'j_daily', 'j_int', 'j_text', 'j_batch', 'j_int', 'j_date', 'j_int', 'j_spare', 'nope']),
  ('POOLNAME', ARRAY['p1', 'p_spare', 'nope']),
  ('CONNNAME', ARRAY['c_http', 'c_air', 'c_spare', 'nope']),
  ('SUBNAME', ARRAY['sub1', 'nope']),
  ('KIND', ARRAY['date', 'hour', 'int', 'text', 'DATE', 'int ', 'integer', 'timestamp']),
  ('DISPATCH', ARRAY['pull', 'http', 'airflow', 'PULL', 'grpc']),
  ('MAPPING', ARRAY['same', 'window', 'rollup', 'latest', 'incremental', 'SAME', 'all']),
  ('REQUIRE', ARRAY['ready', 'validated', 'skipped']),
  ('AUTH', ARRAY['none', 'basic', 'bearer', 'digest']),
  ('TARGET', ARRAY['dag_1', 'path/to/x', '../x', 'a b', 'x?y=1']),
  ('LOC', ARRAY['s3://lake/{dataset}/{key}/v{version}/', '{', '{key', '{{key}}', '}', '{Key}', '/tmp/{key}']),
  ('URL', ARRAY['http://example.com/x', 'https://a.b', 'http://127.0.0.1:9/', 'ftp://x', 'http://user:pw@host/',
                'http://h/ x', 'javascript:alert(1)', 'file:///etc/passwd', 'http://[::1]/', 'http://', 'https://h:99999/'])
) v(r, names), unnest(names) n;
INSERT INTO fz.pool (role, expr) VALUES ('URL', $$E'http://h/\r\nX: y'$$);
-- A fresh, valid name (unique within a batch) half of the time.
INSERT INTO fz.pool (role, expr)
SELECT 'NEWNAME', e FROM unnest(ARRAY[
  $$'n_' || nextval('fz.seq')$$, $$'n_' || nextval('fz.seq')$$, $$'n.' || nextval('fz.seq') || ':x-y'$$,
  $$repeat('n', 62) || (nextval('fz.seq') % 10)$$, $$'s_int'$$, $$'o_date'$$, $$'p1'$$, $$'c_http'$$, $$'sub1'$$,
  $$'j_int'$$]) e;
CREATE SEQUENCE fz.seq;
INSERT INTO fz.pool (role, expr, hostile)
SELECT r, h.expr, true FROM unnest(ARRAY['DS', 'JOB', 'POOLNAME', 'CONNNAME', 'SUBNAME', 'KIND', 'DISPATCH', 'MAPPING',
                                   'REQUIRE', 'AUTH', 'TARGET', 'LOC', 'URL', 'NEWNAME', 'TEXT']) r, fz.hostile h;
INSERT INTO fz.pool (role, expr)
SELECT 'INT', e FROM unnest(ARRAY['NULL', '0', '1', '2', '3', '-1', '-2', '5', '999', '1000', '1001', '9999', '10000',
                                  '2147483647', '-2147483648', '-2147483647']) e;
INSERT INTO fz.pool (role, expr)
SELECT 'BIGINT', e FROM unnest(ARRAY['NULL', '0', '1', '-1', '42', '9223372036854775807', '-9223372036854775808',
                                     '(SELECT max(id) FROM dataflow.delivery)', '(SELECT min(id) FROM dataflow.delivery)']) e;
INSERT INTO fz.pool (role, expr)
SELECT 'IVL', quote_nullable(e) FROM unnest(ARRAY[NULL, '0', '1 microsecond', '-1 second', '1 second', '5 minutes',
  '1 day', '1 mon', '-1 mon', '1 day -25 hours', '100 years', '178000000 years', '-178000000 years',
  '2147483647 days', '-2147483648 days', '1 hour', '23 hours']) e;
INSERT INTO fz.pool (role, expr) SELECT 'BOOL', e FROM unnest(ARRAY['NULL', 'true', 'false']) e;
INSERT INTO fz.pool (role, expr)
SELECT 'JSON', e FROM unnest(ARRAY['NULL', $$'{}'$$, $$'[]'$$, $$'null'$$, $$'"s"'$$, $$'1'$$, $$'{"a": 1}'$$,
  $$'{"skip_reason": "x", "batch": {"number": -1}}'$$, $$jsonb_build_object('big', repeat('x', 1048576))$$,
  $$(SELECT repeat('[', 2000) || repeat(']', 2000))$$, $$(SELECT jsonb_object_agg('k' || g, g) FROM generate_series(1, 10000) g)$$,
$$jsonb_build_object(E'\u202E', '🙂')$$]) e;
INSERT INTO fz.pool (role, expr)
SELECT 'UUID', e FROM unnest(ARRAY['NULL', 'gen_random_uuid()', $$'00000000-0000-0000-0000-000000000000'$$,
  $$(SELECT token FROM dataflow.run WHERE status = 'running' AND deadline > now() ORDER BY random() LIMIT 1)$$,
  $$(SELECT token FROM dataflow.run WHERE status = 'running' AND deadline > now() ORDER BY random() LIMIT 1)$$,
  $$(SELECT token FROM dataflow.run WHERE status = 'running' AND deadline > now() ORDER BY random() LIMIT 1)$$,
  $$(SELECT token FROM dataflow.run WHERE status = 'running' AND deadline <= now() ORDER BY random() LIMIT 1)$$,
  $$(SELECT token FROM dataflow.run WHERE status = 'expired' ORDER BY random() LIMIT 1)$$,
  $$(SELECT token FROM dataflow.run WHERE status = 'succeeded' ORDER BY random() LIMIT 1)$$,
  $$(SELECT token FROM dataflow.run WHERE status IN ('failed', 'cancelled', 'superseded') ORDER BY random() LIMIT 1)$$]) e;
INSERT INTO fz.pool (role, expr)
SELECT 'TS', e FROM unnest(ARRAY['NULL', $$'infinity'$$, $$'-infinity'$$, 'now()', $$'4713-01-01 BC'$$,
                                 $$'294276-12-31'$$, $$now() - interval '1 hour'$$]) e;
INSERT INTO fz.pool (role, expr)
SELECT 'TEXTARR', e FROM unnest(ARRAY['NULL', $$'{}'$$, $$'{NULL}'$$, $$'{s_int}'$$, $$'{""}'$$, $$'{ready,bogus}'$$,
  $$'{ready,failed,queued}'$$, $$(SELECT array_agg('d' || g) FROM generate_series(1, 10000) g)$$,
  $$ARRAY[repeat('x', 1048576)]$$, $$ARRAY[E'\n']$$]) e;
INSERT INTO fz.pool (role, expr)
SELECT 'TEXT', e FROM unnest(ARRAY[$$'checksum-1'$$, $$'worker-1'$$, $$'a reason'$$, $$'whsec_' || repeat('A', 40)$$,
  $$'whsec_AAAA'$$, $$'secret'$$, $$'user'$$]) e;

-- NULL is hostile for a required argument; optional arguments (role O<ROLE>)
-- take NULL as an ordinary value, often.
UPDATE fz.pool SET hostile = true WHERE expr = 'NULL';
INSERT INTO fz.pool (role, expr, hostile)
SELECT 'O' || r.role, p.expr, p.hostile
  FROM (SELECT DISTINCT role FROM fz.pool) r JOIN fz.pool p ON p.role = r.role
UNION ALL
SELECT 'O' || r.role, 'NULL', false FROM (SELECT DISTINCT role FROM fz.pool) r, generate_series(1, 3);

-- Every expression must evaluate (as text) without error; fail the setup otherwise.
DO $$
DECLARE p record;
BEGIN
  FOR p IN SELECT DISTINCT role, expr FROM fz.pool LOOP
    EXECUTE 'SELECT (' || p.expr || ')::' || CASE ltrim(p.role, 'O') WHEN 'JSON' THEN 'jsonb' WHEN 'INT' THEN 'integer'
      WHEN 'BIGINT' THEN 'bigint' WHEN 'IVL' THEN 'interval' WHEN 'BOOL' THEN 'boolean' WHEN 'UUID' THEN 'uuid'
      WHEN 'TS' THEN 'timestamptz' WHEN 'TEXTARR' THEN 'text[]' ELSE 'text' END || ' IS NULL';
  END LOOP;
END $$;

-- One line per public function (and the operator's UPDATE on the chunks view):
-- the statement, with {ROLE} placeholders filled from the pools left to right.
CREATE TABLE fz.spec (fname text PRIMARY KEY, call text NOT NULL);
INSERT INTO fz.spec VALUES
 ('create_dataset', 'SELECT dataflow.create_dataset(({NEWNAME})::text, ({KIND})::text, ({OLOC})::text, ({BOOL})::boolean, ({OIVL})::interval, ({OIVL})::interval, ({OIVL})::interval, ({JSON})::jsonb)'),
 ('drop_dataset', 'SELECT dataflow.drop_dataset(({DS})::text)'),
 ('create_pool', 'SELECT dataflow.create_pool(({NEWNAME})::text, ({INT})::integer)'),
 ('drop_pool', 'SELECT dataflow.drop_pool(({POOLNAME})::text)'),
 ('create_connection', 'SELECT dataflow.create_connection(({NEWNAME})::text, ({DISPATCH})::text, ({URL})::text, ({AUTH})::text, ({OTEXT})::text, ({OTEXT})::text, ({OINT})::integer, ({IVL})::interval, ({IVL})::interval)'),
 ('drop_connection', 'SELECT dataflow.drop_connection(({CONNNAME})::text)'),
 ('create_job', 'SELECT dataflow.create_job(({NEWNAME})::text, ({DS})::text, ({DISPATCH})::text, ({OCONNNAME})::text, ({OTARGET})::text, ({OURL})::text, ({JSON})::jsonb, ({OPOOLNAME})::text, ({OINT})::integer, ({INT})::integer, ({IVL})::interval, ({IVL})::interval, ({IVL})::interval, ({INT})::integer, ({OINT})::bigint, ({JSON})::jsonb, ({OURL})::text)'),
 ('create_job(pull)', 'SELECT dataflow.create_job(({NEWNAME})::text, ({DS})::text, ''pull'', NULL, NULL, NULL, ({JSON})::jsonb, ({OPOOLNAME})::text, ({OINT})::integer, ({INT})::integer, ({IVL})::interval, ({IVL})::interval, ({IVL})::interval, ({INT})::integer)'),
 ('create_job(http)', 'SELECT dataflow.create_job(({NEWNAME})::text, ({DS})::text, ''http'', NULL, NULL, ({URL})::text, ''{}'', NULL, ({OINT})::integer, 3, ''1 second'', ''1 minute'', ({IVL})::interval, 0, NULL, ''{}'', ({OURL})::text)'),
 ('add_input', 'SELECT dataflow.add_input(({JOB})::text, ({DS})::text, ({MAPPING})::text, ({OINT})::integer, ({OINT})::integer, ({OREQUIRE})::text, ({OINT})::integer)'),
 ('drop_input', 'SELECT dataflow.drop_input(({JOB})::text, ({DS})::text, ({BOOL})::boolean, ({BOOL})::boolean)'),
 ('alter_input', 'SELECT dataflow.alter_input(({JOB})::text, ({DS})::text, ({MAPPING})::text, ({OINT})::integer, ({OINT})::integer, ({OREQUIRE})::text, ({OINT})::integer, ({BOOL})::boolean, ({BOOL})::boolean)'),
 ('drop_job', 'SELECT dataflow.drop_job(({JOB})::text)'),
 ('pause_job', 'SELECT dataflow.pause_job(({JOB})::text, ({BOOL})::boolean)'),
 ('alter_job', 'SELECT dataflow.alter_job(({JOB})::text, ({OPOOLNAME})::text, ({OINT})::integer, ({OINT})::integer, ({OIVL})::interval, ({OIVL})::interval, ({OIVL})::interval, ({OINT})::integer, ({OJSON})::jsonb, ({OINT})::bigint, ({OJSON})::jsonb, ({OURL})::text)'),
 ('resume_job', 'SELECT dataflow.resume_job(({JOB})::text)'),
 ('expect', 'SELECT dataflow.expect(({DS})::text, ({KEY})::text, ({OKEY})::text)'),
 ('register', 'SELECT dataflow.register(({DS})::text, ({KEY})::text, ({OLOC})::text, ({OBIGINT})::bigint, ({OTEXT})::text, ({OJSON})::jsonb, ({BOOL})::boolean)'),
 ('validate', 'SELECT dataflow.validate(({DS})::text, ({KEY})::text, ({BOOL})::boolean, ({JSON})::jsonb)'),
 ('skip', 'SELECT dataflow.skip(({DS})::text, ({KEY})::text, ({TEXT})::text)'),
 ('cancel', 'SELECT dataflow.cancel(({DS})::text, ({KEY})::text)'),
 ('resubmit', 'SELECT count(*) FROM dataflow.resubmit(({DS})::text, ({KEY})::text, ({OKEY})::text, ({BOOL})::boolean, ({BOOL})::boolean)'),
 ('lease', 'SELECT count(*) FROM dataflow.lease(({JOB})::text, ({TEXT})::text, ({INT})::integer, ({OIVL})::interval)'),
 ('heartbeat', 'SELECT dataflow.heartbeat(({UUID})::uuid, ({OIVL})::interval)'),
 ('complete', 'SELECT dataflow.complete(({UUID})::uuid, ({OBIGINT})::bigint, ({OTEXT})::text, ({OJSON})::jsonb, ({OLOC})::text)'),
 ('complete_many', 'SELECT count(*) FROM dataflow.complete_many(ARRAY[({UUID})::uuid, ({UUID})::uuid], ARRAY[({OBIGINT})::bigint, ({OBIGINT})::bigint], NULL, ARRAY[({OJSON})::jsonb, ({OJSON})::jsonb], ({OTEXTARR})::text[])'),
 ('fail', 'SELECT dataflow.fail(({UUID})::uuid, ({TEXT})::text, ({BOOL})::boolean)'),
 ('reap', 'SELECT dataflow.reap()'),
 ('explain', 'SELECT count(*) FROM dataflow.explain(({DS})::text, ({KEY})::text)'),
 ('blockers', 'SELECT count(*) FROM dataflow.blockers(({DS})::text, ({KEY})::text)'),
 ('upstream', 'SELECT count(*) FROM dataflow.upstream(({DS})::text, ({KEY})::text)'),
 ('downstream', 'SELECT count(*) FROM dataflow.downstream(({DS})::text, ({KEY})::text)'),
 ('graph_dot', 'SELECT length(dataflow.graph_dot())'),
 ('library_version', 'SELECT dataflow.library_version()'),
 ('schedule', 'SELECT dataflow.schedule()'),
 ('prune', 'SELECT dataflow.prune(({OIVL})::interval)'),
 ('subscribe', 'SELECT dataflow.subscribe(({NEWNAME})::text, ({URL})::text, ({OTEXTARR})::text[], ({OTEXTARR})::text[], ({OTEXT})::text)'),
 ('unsubscribe', 'SELECT dataflow.unsubscribe(({SUBNAME})::text)'),
 ('enable_subscription', 'SELECT dataflow.enable_subscription(({SUBNAME})::text)'),
 ('drop_subscription', 'SELECT dataflow.drop_subscription(({SUBNAME})::text)'),
 ('redeliver', 'SELECT dataflow.redeliver(({BIGINT})::bigint)'),
 ('redeliver(text,timestamptz,boolean)', 'SELECT dataflow.redeliver(({SUBNAME})::text, ({TS})::timestamptz, ({BOOL})::boolean)'),
 ('UPDATE chunks', 'UPDATE dataflow.chunks SET status = ({KEY})::text WHERE dataset = ({DS})::text AND key = ({KEY})::text');
-- Status values for the view UPDATE come from KEY (hostile text) plus real ones.
INSERT INTO fz.pool (role, expr)
SELECT 'KEY', quote_literal(s) FROM unnest(ARRAY['resubmit', 'skipped', 'ready', 'resubmit', 'skipped']) s;

-- A fingerprint of every dataflow table: count and order-independent hash of
-- the rows, md5 over all tables.
CREATE FUNCTION fz.fp() RETURNS text LANGUAGE plpgsql AS $$
DECLARE t record; acc text := ''; part text;
BEGIN
  FOR t IN SELECT c.oid::regclass AS rel FROM pg_class c
            WHERE c.relnamespace = 'dataflow'::regnamespace AND c.relkind IN ('r', 'p') ORDER BY c.relname LOOP
    EXECUTE format('SELECT count(*) || '':'' || coalesce(sum(hashtext(x::text)::bigint), 0) FROM %s x', t.rel)
      INTO part;
    acc := acc || t.rel::text || '=' || part || ';';
  END LOOP;
  RETURN md5(acc);
END $$;

-- One batch: n calls of one spec line. Returns a JSON report.
-- A call draws its arguments in one of three ways: 40% all from the ordinary
-- pools (valid values and near misses such as bad keys), 40% the same but with
-- exactly one argument hostile, 20% every argument hostile or not at random.
-- Fingerprints: failing calls number 1..p_fp_first and every p_fp_every-th
-- call after that are checked (before the call and after its rollback).
CREATE FUNCTION fz.run(p_fname text, p_n integer, p_seed double precision, p_fp_first integer DEFAULT 10,
                       p_fp_every integer DEFAULT 100, p_log boolean DEFAULT false)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  good jsonb; bad_pool jsonb; tmpl text; sql text; role text; arr jsonb; p integer; expr text;
  n_args integer; bad_at integer; mode double precision; k integer; use_bad boolean;
  i integer; ok integer := 0; errs jsonb := '{}'; bad jsonb := '[]'; slow jsonb := '[]';
  st text; msg text; t0 timestamptz; ms double precision; max_ms double precision := 0; sum_ms double precision := 0;
  before text; after text; known text; fp_checks integer := 0; fp_bad integer := 0; sample boolean;
  allowed text[] := string_to_array(current_setting('fz.allowed'), ',');
  slow_ms double precision := current_setting('fz.slow_ms')::double precision;
  -- A NULL argument (22004) must be named (issue 19 item 7): the message holds one of the
  -- function's argument names (or its singular), or for a name argument the kind of object.
  null_names text := (SELECT '\m(' || string_agg(DISTINCT w, '|') || ')\M'
                        FROM pg_proc p, unnest(p.proargnames) a,
                             unnest(ARRAY[a, rtrim(a, 's')] || CASE WHEN a = 'name' THEN
                                    ARRAY['dataset', 'job', 'pool', 'connection', 'subscription'] END) w
                       WHERE p.pronamespace = 'dataflow'::regnamespace AND p.proname = split_part(p_fname, '(', 1));
BEGIN
  PERFORM setseed(p_seed);
  SELECT jsonb_object_agg(r, e) INTO good
    FROM (SELECT pl.role AS r, jsonb_agg(pl.expr ORDER BY pl.expr) AS e FROM fz.pool pl
           WHERE NOT pl.hostile GROUP BY pl.role) x;
  SELECT jsonb_object_agg(r, e) INTO bad_pool
    FROM (SELECT pl.role AS r, jsonb_agg(pl.expr ORDER BY pl.expr) AS e FROM fz.pool pl
           WHERE pl.hostile GROUP BY pl.role) x;
  SELECT call INTO tmpl FROM fz.spec WHERE fname = p_fname;
  IF tmpl IS NULL THEN RAISE EXCEPTION 'no spec for %', p_fname; END IF;
  n_args := (SELECT count(*) FROM regexp_matches(tmpl, '\{[A-Z]+\}', 'g'));
  FOR i IN 1 .. p_n LOOP
    sql := tmpl; mode := random(); bad_at := 1 + floor(random() * greatest(n_args, 1))::integer; k := 0;
    LOOP
      role := substring(sql FROM '\{([A-Z]+)\}');
      EXIT WHEN role IS NULL;
      k := k + 1;
      use_bad := CASE WHEN mode < 0.4 THEN false WHEN mode < 0.8 THEN k = bad_at ELSE random() < 0.5 END;
      arr := CASE WHEN (use_bad AND bad_pool ? role) OR NOT good ? role THEN bad_pool -> role ELSE good -> role END;
      expr := arr ->> floor(random() * jsonb_array_length(arr))::integer;
      p := strpos(sql, '{' || role || '}');
      sql := overlay(sql PLACING expr FROM p FOR length(role) + 2);
    END LOOP;
    -- Calls on tokens need live leases now and then.
    IF tmpl LIKE '%uuid%' AND random() < 0.3 THEN
      BEGIN
        PERFORM count(*) FROM dataflow.lease((ARRAY['j_int', 'j_date', 'j_daily'])[1 + floor(random() * 3)::integer],
                                             'fz', 2, CASE WHEN random() < 0.5 THEN interval '1 day' END);
      EXCEPTION WHEN OTHERS THEN NULL;
      END;
      known := NULL;
    END IF;
    sample := i <= p_fp_first OR i % p_fp_every = 0;
    -- The state after a checked failing call is the state before the next call,
    -- until a call succeeds (a failing call that changed tables in between is
    -- still caught, by the next check).
    IF sample THEN before := coalesce(known, fz.fp()); END IF;
    IF p_log THEN RAISE NOTICE 'call %: %', i, left(sql, 2000); END IF;
    t0 := clock_timestamp();
    BEGIN
      EXECUTE sql;
      ok := ok + 1; st := 'ok';
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    END;
    ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
    max_ms := greatest(max_ms, ms); sum_ms := sum_ms + ms;
    IF ms > slow_ms AND jsonb_array_length(slow) < 5 THEN
      slow := slow || jsonb_build_object('ms', round(ms::numeric, 1), 'call', left(sql, 300));
    END IF;
    errs := jsonb_set(errs, ARRAY[st], to_jsonb(coalesce((errs ->> st)::integer, 0) + 1));
    IF st = 'ok' THEN known := NULL; CONTINUE; END IF;
    -- (sql IS NULL: a pool expression drew nothing; that call tested the generator only)
    IF st = '22004' AND sql IS NOT NULL AND msg !~* null_names AND jsonb_array_length(bad) < 10 THEN
      bad := bad || jsonb_build_object('sqlstate', st, 'message', 'a NULL argument not named: ' || left(msg, 250),
                                       'call', left(sql, 400));
    END IF;
    IF NOT st = ANY (allowed) AND jsonb_array_length(bad) < 10 THEN
      bad := bad || jsonb_build_object('sqlstate', st, 'message', left(msg, 300), 'call', left(sql, 400));
    END IF;
    IF sample THEN
      after := fz.fp();
      known := after;
      fp_checks := fp_checks + 1;
      IF after IS DISTINCT FROM before THEN
        fp_bad := fp_bad + 1;
        IF jsonb_array_length(bad) < 10 THEN
          bad := bad || jsonb_build_object('sqlstate', st, 'message', 'tables changed by a failed call', 'call', left(sql, 400));
        END IF;
      END IF;
    END IF;
  END LOOP;
  RETURN jsonb_build_object('fname', p_fname, 'calls', p_n, 'ok', ok, 'sqlstates', errs, 'bad', bad,
                            'fp_checks', fp_checks, 'fp_bad', fp_bad, 'max_ms', round(max_ms::numeric, 1),
                            'avg_ms', round((sum_ms / greatest(p_n, 1))::numeric, 2), 'slow', slow);
END $$;
