-- Planted objects: a worker or an operator who creates objects in its own pg_temp
-- (tables, views, rules, triggers, column defaults, domains, shadowing functions,
-- operators and aggregates) and then calls every entry point it may call gains
-- nothing. SECURITY DEFINER functions run as the extension owner (a superuser);
-- their search_path is pg_catalog, pg_temp, and pg_temp is the caller's. Every
-- planted object runs h_pwn(), which counts in h_audit.ran (a sequence: not undone
-- by a rollback), raises a NOTICE and tries to make the caller a superuser, an
-- admin and a reader of the secrets. Afterwards the count is 0, no NOTICE was
-- raised, and the roles, memberships and grants are as they were.
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
CREATE EXTENSION pg_dataflow;
\set SHOW_CONTEXT never

CREATE ROLE h_worker NOLOGIN IN ROLE dataflow_worker;
CREATE ROLE h_operator NOLOGIN IN ROLE dataflow_operator;
CREATE SCHEMA h_audit;
GRANT USAGE ON SCHEMA h_audit TO PUBLIC;
CREATE SEQUENCE h_audit.ran;
GRANT USAGE, SELECT, UPDATE ON SEQUENCE h_audit.ran TO PUBLIC;

-- What a role could gain: attributes, memberships, and any privilege granted to it anywhere.
CREATE FUNCTION h_audit.snap() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog AS $$
  SELECT string_agg(x, E'\n' ORDER BY x) FROM (
    SELECT format('role %s super=%s createrole=%s createdb=%s bypassrls=%s replication=%s',
                  rolname, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication)
      FROM pg_roles WHERE rolname IN ('h_worker', 'h_operator', 'dataflow_worker', 'dataflow_operator')
    UNION ALL
    SELECT format('member %s of %s', m.member::regrole, m.roleid::regrole)
      FROM pg_auth_members m
     WHERE m.member::regrole::text IN ('h_worker', 'h_operator', 'dataflow_worker', 'dataflow_operator',
                                        'dataflow_reader')
    UNION ALL
    SELECT format('acl %s %s %s', k, a.grantee::regrole, a.privilege_type)
      FROM (SELECT 'class ' || oid::regclass::text AS k, relacl AS acl FROM pg_class WHERE relacl IS NOT NULL
            UNION ALL SELECT 'proc ' || oid::regprocedure::text, proacl FROM pg_proc WHERE proacl IS NOT NULL
            UNION ALL SELECT 'schema ' || nspname, nspacl FROM pg_namespace WHERE nspacl IS NOT NULL
            UNION ALL SELECT 'database ' || datname, datacl FROM pg_database WHERE datacl IS NOT NULL
            UNION ALL SELECT 'type ' || oid::regtype::text, typacl FROM pg_type WHERE typacl IS NOT NULL
            UNION ALL SELECT 'language ' || lanname, lanacl FROM pg_language WHERE lanacl IS NOT NULL
            UNION ALL SELECT 'parameter ' || parname, paracl FROM pg_parameter_acl) o,
           aclexplode(o.acl) a
     WHERE a.grantee <> 0
       AND a.grantee::regrole::text IN ('h_worker', 'h_operator', 'dataflow_worker', 'dataflow_operator')
    UNION ALL
    SELECT 'default acl ' || defaclrole::regrole FROM pg_default_acl
    UNION ALL
    SELECT 'setting ' || setrole::regrole || ' ' || array_to_string(setconfig, ',') FROM pg_db_role_setting
  ) s(x) $$;
CREATE TABLE h_audit.before AS SELECT h_audit.snap() AS snap;
CREATE FUNCTION h_audit.gained() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog AS $$
  SELECT CASE WHEN (SELECT snap FROM h_audit.before) IS NOT DISTINCT FROM h_audit.snap()
                   AND NOT (SELECT is_called FROM h_audit.ran)
              THEN 'nothing gained, nothing planted ran'
              ELSE format('planted code ran %s times; changed: %s',
                          CASE WHEN (SELECT is_called FROM h_audit.ran) THEN (SELECT last_value FROM h_audit.ran) ELSE 0 END,
                          (SELECT string_agg(x, '; ') FROM
                             (SELECT unnest(string_to_array(h_audit.snap(), E'\n'))
                              EXCEPT SELECT unnest(string_to_array((SELECT snap FROM h_audit.before), E'\n'))) n(x)))
         END $$;
GRANT EXECUTE ON FUNCTION h_audit.gained() TO PUBLIC;

-- The flow: src -> j_mid -> mid -> j_out -> out (+ a `latest` input), a pool, a subscription.
SELECT dataflow.create_dataset('h_src', 'date');
SELECT dataflow.create_dataset('h_mid', 'date');
SELECT dataflow.create_dataset('h_out', 'date');
SELECT dataflow.create_dataset('h_ref', 'date');
SELECT dataflow.create_dataset('h_cad', 'date', cadence => '1 day');
SELECT dataflow.create_pool('h_pool', 4);
SELECT dataflow.create_job('j_mid', output => 'h_mid', pool => 'h_pool');
SELECT dataflow.add_input('j_mid', 'h_src');
SELECT dataflow.create_job('j_out', output => 'h_out');
SELECT dataflow.add_input('j_out', 'h_mid');
SELECT dataflow.add_input('j_out', 'h_ref', mapping => 'latest');
SELECT dataflow.subscribe('h_sub', 'https://hooks.example/planted') IS NOT NULL AS subscribed;

-- The test's own helpers (the superuser's, in pg_temp; they run as whoever calls them).
-- Pinned search_path: a planted pg_temp.text must not catch the harness itself.
CREATE FUNCTION pg_temp.try(label text, q text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  EXECUTE q;
  RETURN label || ': ok';
EXCEPTION WHEN OTHERS THEN
  RETURN label || ': ' || SQLSTATE || ' ' || SQLERRM;
END $$;

-- Plant one kind of object in the caller's pg_temp, owned by the caller.
CREATE FUNCTION pg_temp.plant(kind text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $plant$
DECLARE n text;
BEGIN
  -- The payload: what an attacker's code would do if it ran as the extension owner.
  CREATE FUNCTION pg_temp.h_pwn(tag text) RETURNS integer LANGUAGE plpgsql AS $f$
  BEGIN
    PERFORM pg_catalog.nextval('h_audit.ran');
    RAISE NOTICE 'PLANTED % ran as %', tag, current_user;
    BEGIN ALTER ROLE h_worker SUPERUSER; EXCEPTION WHEN OTHERS THEN NULL; END;
    BEGIN ALTER ROLE h_operator SUPERUSER; EXCEPTION WHEN OTHERS THEN NULL; END;
    BEGIN GRANT dataflow_admin TO h_worker, h_operator; EXCEPTION WHEN OTHERS THEN NULL; END;
    BEGIN GRANT SELECT ON dataflow.connection, dataflow.run TO h_worker, h_operator; EXCEPTION WHEN OTHERS THEN NULL; END;
    RETURN 0;
  END $f$;
  CREATE FUNCTION pg_temp.h_trg() RETURNS trigger LANGUAGE plpgsql AS $f$
  BEGIN
    PERFORM pg_temp.h_pwn(TG_TABLE_NAME || ' ' || TG_WHEN || ' ' || TG_OP || ' trigger');
    IF TG_LEVEL = 'STATEMENT' THEN RETURN NULL; END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
  END $f$;
  CREATE FUNCTION pg_temp.h_bool() RETURNS boolean LANGUAGE plpgsql AS $f$
  BEGIN RETURN pg_temp.h_pwn('column default') = 1; END $f$;
  CREATE FUNCTION pg_temp.h_int() RETURNS integer LANGUAGE plpgsql AS $f$
  BEGIN RETURN pg_temp.h_pwn('column default or view'); END $f$;

  IF kind = 'tables' THEN
    -- Work tables of the definer paths, with the columns they use, so an adopted one works
    -- to the end (and its transaction commits). No _df_want here: expect() meets _df_edge.
    CREATE TEMP TABLE _df_touch (
      id bigint PRIMARY KEY, depth integer NOT NULL, reset boolean NOT NULL DEFAULT pg_temp.h_bool(),
      old_status text, new_status text, old_version integer, new_version integer, unmet integer,
      has_job boolean, planted integer DEFAULT pg_temp.h_int());
    CREATE TEMP TABLE _df_edge (
      c_ds integer NOT NULL, c_key text NOT NULL, i_ds integer NOT NULL, i_key text NOT NULL,
      need smallint NOT NULL);
    CREATE TEMP TABLE _df_roots (id bigint PRIMARY KEY, planted integer DEFAULT pg_temp.h_int());
    FOREACH n IN ARRAY ARRAY['_df_touch', '_df_edge', '_df_roots'] LOOP
      EXECUTE format('CREATE TRIGGER h_row BEFORE INSERT OR UPDATE OR DELETE ON pg_temp.%I
                        FOR EACH ROW EXECUTE FUNCTION pg_temp.h_trg()', n);
      EXECUTE format('CREATE TRIGGER h_stmt AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pg_temp.%I
                        FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.h_trg()', n);
    END LOOP;
    CREATE RULE h_rule AS ON INSERT TO pg_temp._df_edge DO ALSO SELECT pg_temp.h_int();
  ELSIF kind = 'views' THEN
    -- Views of those names whose every read runs the payload, writable through INSTEAD OF triggers.
    CREATE TEMP VIEW _df_touch AS
      SELECT 0::bigint AS id, 0 AS depth, false AS reset, ''::text AS old_status, ''::text AS new_status,
             0 AS old_version, 0 AS new_version, 0 AS unmet, false AS has_job
       WHERE pg_temp.h_int() = 1;
    CREATE TEMP VIEW _df_want AS
      SELECT 0 AS dataset_id, ''::text AS key, 0::bigint AS ord, 0::bigint AS existing_id, 0 AS existing_level,
             0::bigint AS chunk_id, ''::text AS status, 0 AS unmet
       WHERE pg_temp.h_int() = 1;
    CREATE TEMP VIEW _df_edge AS
      SELECT 0 AS c_ds, ''::text AS c_key, 0 AS i_ds, ''::text AS i_key, 0::smallint AS need
       WHERE pg_temp.h_int() = 1;
    CREATE TEMP VIEW _df_roots AS SELECT 0::bigint AS id WHERE pg_temp.h_int() = 1;
    FOREACH n IN ARRAY ARRAY['_df_touch', '_df_want', '_df_edge', '_df_roots'] LOOP
      EXECUTE format('CREATE TRIGGER h_row INSTEAD OF INSERT OR UPDATE OR DELETE ON pg_temp.%I
                        FOR EACH ROW EXECUTE FUNCTION pg_temp.h_trg()', n);
    END LOOP;
  ELSIF kind = 'types' THEN
    -- Other objects holding the names of the work tables: a composite type _df_touch,
    -- an enum type _df_want.
    CREATE TYPE pg_temp._df_touch AS (id bigint);
    CREATE TYPE pg_temp._df_want AS ENUM ('planted');
  ELSIF kind = 'shadows' THEN
    -- No work tables: functions, operators, aggregates, domains and relations in pg_temp
    -- with the names the definer code writes unqualified (pg_catalog's) or the extension's.
    CREATE FUNCTION pg_temp.now() RETURNS timestamptz LANGUAGE plpgsql AS $f$
    BEGIN PERFORM pg_temp.h_pwn('now()'); RETURN '2000-01-01'; END $f$;
    CREATE FUNCTION pg_temp.lower(text) RETURNS text LANGUAGE plpgsql AS $f$
    BEGIN PERFORM pg_temp.h_pwn('lower()'); RETURN $1; END $f$;
    CREATE FUNCTION pg_temp."left"(text, integer) RETURNS text LANGUAGE plpgsql AS $f$
    BEGIN PERFORM pg_temp.h_pwn('left()'); RETURN $1; END $f$;
    CREATE FUNCTION pg_temp.btrim(text) RETURNS text LANGUAGE plpgsql AS $f$
    BEGIN PERFORM pg_temp.h_pwn('btrim()'); RETURN $1; END $f$;
    CREATE FUNCTION pg_temp."coalesce"(text, text) RETURNS text LANGUAGE plpgsql AS $f$
    BEGIN PERFORM pg_temp.h_pwn('coalesce()'); RETURN $1; END $f$;
    CREATE FUNCTION pg_temp."coalesce"(bigint, bigint) RETURNS bigint LANGUAGE plpgsql AS $f$
    BEGIN PERFORM pg_temp.h_pwn('coalesce()'); RETURN $1; END $f$;
    CREATE FUNCTION pg_temp.format(text, text) RETURNS text LANGUAGE plpgsql AS $f$
    BEGIN PERFORM pg_temp.h_pwn('format()'); RETURN $1; END $f$;
    CREATE FUNCTION pg_temp.jsonb_build_object(text, text) RETURNS jsonb LANGUAGE plpgsql AS $f$
    BEGIN PERFORM pg_temp.h_pwn('jsonb_build_object()'); RETURN '{}'; END $f$;
    CREATE FUNCTION pg_temp.jsonb_typeof(jsonb) RETURNS text LANGUAGE plpgsql AS $f$
    BEGIN PERFORM pg_temp.h_pwn('jsonb_typeof()'); RETURN 'object'; END $f$;
    CREATE FUNCTION pg_temp.unnest(bigint[]) RETURNS SETOF bigint LANGUAGE plpgsql AS $f$
    BEGIN PERFORM pg_temp.h_pwn('unnest()'); RETURN; END $f$;
    CREATE FUNCTION pg_temp.gen_random_uuid() RETURNS uuid LANGUAGE plpgsql AS $f$
    BEGIN PERFORM pg_temp.h_pwn('gen_random_uuid()'); RETURN '00000000-0000-0000-0000-000000000000'; END $f$;
    CREATE FUNCTION pg_temp.current_setting(text) RETURNS text LANGUAGE plpgsql AS $f$
    BEGIN PERFORM pg_temp.h_pwn('current_setting()'); RETURN 'none'; END $f$;
    CREATE FUNCTION pg_temp.current_setting(text, boolean) RETURNS text LANGUAGE plpgsql AS $f$
    BEGIN PERFORM pg_temp.h_pwn('current_setting()'); RETURN '1 second'; END $f$;
    CREATE FUNCTION pg_temp.pg_advisory_xact_lock(integer, integer) RETURNS void LANGUAGE plpgsql AS $f$
    BEGIN PERFORM pg_temp.h_pwn('pg_advisory_xact_lock()'); END $f$;
    CREATE FUNCTION pg_temp.to_char(timestamptz, text) RETURNS text LANGUAGE plpgsql AS $f$
    BEGIN PERFORM pg_temp.h_pwn('to_char()'); RETURN ''; END $f$;
    CREATE FUNCTION pg_temp.cardinality(anyarray) RETURNS integer LANGUAGE plpgsql AS $f$
    BEGIN PERFORM pg_temp.h_pwn('cardinality()'); RETURN 0; END $f$;
    CREATE FUNCTION pg_temp._level(text) RETURNS integer LANGUAGE plpgsql AS $f$
    BEGIN PERFORM pg_temp.h_pwn('_level()'); RETURN 2; END $f$;
    CREATE FUNCTION pg_temp._actor(text) RETURNS text LANGUAGE plpgsql AS $f$
    BEGIN PERFORM pg_temp.h_pwn('_actor()'); RETURN 'someone else'; END $f$;
    CREATE FUNCTION pg_temp.h_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS $f$
    BEGIN PERFORM pg_temp.h_pwn('operator'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $f$;
    CREATE FUNCTION pg_temp.h_eq8(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS $f$
    BEGIN PERFORM pg_temp.h_pwn('operator'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $f$;
    CREATE FUNCTION pg_temp.h_eq4(integer, integer) RETURNS boolean LANGUAGE plpgsql AS $f$
    BEGIN PERFORM pg_temp.h_pwn('operator'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $f$;
    CREATE FUNCTION pg_temp.h_cat(text, text) RETURNS text LANGUAGE plpgsql AS $f$
    BEGIN PERFORM pg_temp.h_pwn('operator'); RETURN $1 OPERATOR(pg_catalog.||) $2; END $f$;
    CREATE OPERATOR pg_temp.= (LEFTARG = text, RIGHTARG = text, FUNCTION = pg_temp.h_eq);
    CREATE OPERATOR pg_temp.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = pg_temp.h_eq);
    CREATE OPERATOR pg_temp.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = pg_temp.h_eq8);
    CREATE OPERATOR pg_temp.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = pg_temp.h_eq4);
    CREATE OPERATOR pg_temp.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = pg_temp.h_cat);
    CREATE FUNCTION pg_temp.h_acc(bigint, bigint) RETURNS bigint LANGUAGE plpgsql AS $f$
    BEGIN PERFORM pg_temp.h_pwn('aggregate'); RETURN 0; END $f$;
    CREATE AGGREGATE pg_temp.count(bigint) (SFUNC = pg_temp.h_acc, STYPE = bigint);
    CREATE AGGREGATE pg_temp.array_agg(bigint) (SFUNC = pg_temp.h_acc, STYPE = bigint);
    -- Domains whose check runs the payload, named like the types the code declares.
    FOREACH n IN ARRAY ARRAY['text', 'int4', 'int8', 'bool', 'uuid', 'jsonb', 'timestamptz', 'interval',
                             'record', 'char', 'name', 'regclass', 'task', 'blocker', 'resubmitted'] LOOP
      EXECUTE format('CREATE DOMAIN pg_temp.%I AS pg_catalog.int4 CHECK (pg_temp.h_pwn(%L) = 1)',
                     n, 'domain ' || n);
    END LOOP;
    -- Relations named like the work tables' primary-key indexes (ignored: PostgreSQL
    -- names the index otherwise).
    CREATE TEMP TABLE _df_touch_pkey (x integer DEFAULT pg_temp.h_int());
    CREATE TEMP VIEW _df_want_pkey AS SELECT pg_temp.h_int() AS x;
    -- Views named like every relation of the extension and the catalogs it reads.
    FOR n IN SELECT c.relname FROM pg_catalog.pg_class c
              WHERE c.relnamespace = 'dataflow'::regnamespace AND c.relkind IN ('r', 'v', 'p')
             UNION SELECT unnest(ARRAY['pg_class', 'pg_roles', 'pg_namespace', 'pg_proc', 'pg_settings',
                                        'new_events', 'new_rows', 'old_rows'])
             ORDER BY 1 LOOP
      EXECUTE format('CREATE TEMP VIEW %I AS SELECT pg_temp.h_int() AS id', n);
    END LOOP;
  ELSE
    RAISE EXCEPTION 'unknown kind %', kind;
  END IF;
END $plant$;

-- Remove what plant() made (every object of the caller in pg_temp), dependents first.
CREATE FUNCTION pg_temp.unplant() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT o.q FROM (
             SELECT 1 AS step, format('DROP VIEW pg_temp.%I', c.relname) AS q
               FROM pg_catalog.pg_class c
              WHERE c.relnamespace = pg_catalog.pg_my_temp_schema() AND c.relkind = 'v'
                AND pg_catalog.pg_get_userbyid(c.relowner) = current_user
             UNION ALL
             SELECT 2, format('DROP TABLE pg_temp.%I', c.relname) FROM pg_catalog.pg_class c
              WHERE c.relnamespace = pg_catalog.pg_my_temp_schema() AND c.relkind = 'r'
                AND pg_catalog.pg_get_userbyid(c.relowner) = current_user
             UNION ALL
             SELECT 3, format('DROP TYPE pg_temp.%I', t.typname) FROM pg_catalog.pg_type t
              WHERE t.typnamespace = pg_catalog.pg_my_temp_schema() AND t.typtype IN ('c', 'e', 'd')
                AND t.typrelid IN (0, (SELECT c.oid FROM pg_catalog.pg_class c
                                        WHERE c.oid = t.typrelid AND c.relkind = 'c'))
                AND pg_catalog.pg_get_userbyid(t.typowner) = current_user
             UNION ALL
             SELECT 4, format('DROP OPERATOR %s', o.oid::regoperator) FROM pg_catalog.pg_operator o
              WHERE o.oprnamespace = pg_catalog.pg_my_temp_schema()
                AND pg_catalog.pg_get_userbyid(o.oprowner) = current_user
             UNION ALL
             SELECT CASE p.prokind WHEN 'a' THEN 5 ELSE 6 END, format('DROP ROUTINE %s', p.oid::regprocedure)
               FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = pg_catalog.pg_my_temp_schema()
                AND pg_catalog.pg_get_userbyid(p.proowner) = current_user) o
           ORDER BY o.step, o.q
  LOOP
    EXECUTE r.q;
  END LOOP;
END $$;

-- Every entry point a worker may call, on month m's keys.
CREATE FUNCTION pg_temp.worker_calls(m integer) RETURNS SETOF text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE k text := format('2024-%s-', lpad(m::text, 2, '0')); toks uuid[]; n integer;
BEGIN
  BEGIN
    SELECT array_agg(t.token ORDER BY t.key) INTO toks FROM dataflow.lease('j_mid', 'w-planted', 3) t;
    RETURN NEXT 'lease: ok, ' || coalesce(cardinality(toks), 0) || ' leased';
  EXCEPTION WHEN OTHERS THEN
    RETURN NEXT 'lease: ' || SQLSTATE || ' ' || SQLERRM;
  END;
  RETURN NEXT pg_temp.try('heartbeat', format('SELECT dataflow.heartbeat(%L)', toks[1]));
  RETURN NEXT pg_temp.try('complete', format('SELECT dataflow.complete(%L, row_count => 1)', toks[1]));
  RETURN NEXT pg_temp.try('complete_many', format('SELECT dataflow.complete_many(ARRAY[%L]::uuid[])', toks[2]));
  RETURN NEXT pg_temp.try('fail', format('SELECT dataflow.fail(%L, %L)', toks[3], 'planted'));
  RETURN NEXT pg_temp.try('register new key', format('SELECT dataflow.register(%L, %L)', 'h_src', k || '20'));
  RETURN NEXT pg_temp.try('register existing key', format('SELECT dataflow.register(%L, %L, force => true)', 'h_src', k || '01'));
  RETURN NEXT pg_temp.try('validate', format('SELECT dataflow.validate(%L, %L, true)', 'h_src', k || '02'));
  RETURN NEXT pg_temp.try('reader questions', format(
    'SELECT (SELECT count(*) FROM dataflow.explain(%1$L, %3$L)), (SELECT count(*) FROM dataflow.blockers(%2$L, %3$L)),
            (SELECT count(*) FROM dataflow.upstream(%2$L, %3$L)), (SELECT count(*) FROM dataflow.downstream(%1$L, %3$L)),
            dataflow.graph_dot()', 'h_mid', 'h_out', k || '01'));
  RETURN NEXT pg_temp.try('reader views', 'SELECT (SELECT count(*) FROM dataflow.chunks), (SELECT count(*) FROM dataflow.runs),
    (SELECT count(*) FROM dataflow.datasets), (SELECT count(*) FROM dataflow.jobs), (SELECT count(*) FROM dataflow.progress),
    (SELECT count(*) FROM dataflow.gaps), (SELECT count(*) FROM dataflow.deletable), (SELECT count(*) FROM dataflow.events),
    (SELECT count(*) FROM dataflow.deliveries), (SELECT count(*) FROM dataflow.dataset_rate)');
END $$;

-- Every entry point an operator may call, on month m's keys; dlv: a delivery id.
CREATE FUNCTION pg_temp.operator_calls(m integer, dlv bigint) RETURNS SETOF text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE k text := format('2024-%s-', lpad(m::text, 2, '0'));
BEGIN
  RETURN NEXT pg_temp.try('expect', format('SELECT dataflow.expect(%L, %L, %L)', 'h_out', k || '10', k || '11'));
  RETURN NEXT pg_temp.try('resubmit dry run', format('SELECT count(*) FROM dataflow.resubmit(%L, %L, dry_run => true)', 'h_src', k || '02'));
  RETURN NEXT pg_temp.try('resubmit', format('SELECT count(*) FROM dataflow.resubmit(%L, %L)', 'h_src', k || '02'));
  RETURN NEXT pg_temp.try('UPDATE chunks resubmit', format(
    'UPDATE dataflow.chunks SET status = %L WHERE dataset = %L AND key = %L', 'resubmit', 'h_src', k || '03'));
  RETURN NEXT pg_temp.try('UPDATE chunks skipped', format(
    'UPDATE dataflow.chunks SET status = %L WHERE dataset = %L AND key = %L', 'skipped', 'h_src', k || '05'));
  RETURN NEXT pg_temp.try('skip', format('SELECT dataflow.skip(%L, %L, %L)', 'h_src', k || '06', 'planted test'));
  RETURN NEXT pg_temp.try('cancel', format('SELECT dataflow.cancel(%L, %L)', 'h_mid', k || '04'));
  RETURN NEXT pg_temp.try('pause/resume', 'SELECT dataflow.pause_job(''j_out''), dataflow.resume_job(''j_out'')');
  RETURN NEXT pg_temp.try('UPDATE job', 'UPDATE dataflow.job SET priority = 5, max_concurrency = 3 WHERE name = ''j_out''');
  RETURN NEXT pg_temp.try('UPDATE pool', 'UPDATE dataflow.pool SET slots = 3 WHERE name = ''h_pool''');
  RETURN NEXT pg_temp.try('reap', 'SELECT dataflow.reap()');
  RETURN NEXT pg_temp.try('schedule', 'SELECT dataflow.schedule()');
  RETURN NEXT pg_temp.try('prune', 'SELECT dataflow.prune()');
  RETURN NEXT pg_temp.try('redeliver one', format('SELECT dataflow.redeliver(%s::bigint)', dlv));
  RETURN NEXT pg_temp.try('redeliver since', 'SELECT dataflow.redeliver(''h_sub'', now() - interval ''1 day'', false)');
  RETURN NEXT pg_temp.try('reader questions', format(
    'SELECT (SELECT count(*) FROM dataflow.explain(%1$L, %2$L)), (SELECT count(*) FROM dataflow.blockers(%1$L, %2$L)),
            dataflow.graph_dot()', 'h_out', k || '01'));
END $$;

-- Month m's chunks, made by the superuser before anything is planted: out 01..06 expected
-- (src/mid placeholders), src 01..03 registered so that j_mid has three chunks to lease.
CREATE FUNCTION pg_temp.setup(m integer) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE k text := format('2024-%s-', lpad(m::text, 2, '0')); i integer;
BEGIN
  PERFORM dataflow.expect('h_out', k || '01', k || '06');
  FOR i IN 1..3 LOOP
    PERFORM dataflow.register('h_src', k || '0' || i);
  END LOOP;
  RETURN (SELECT string_agg(c.dataset || ' ' || c.status || ' ' || c.n, ', ' ORDER BY c.dataset, c.status)
            FROM (SELECT dataset, status, count(*) AS n FROM dataflow.chunks
                   WHERE key LIKE k || '%' GROUP BY 1, 2) c);
END $$;

SELECT h_audit.gained();

-- 1. tables named like the work tables, with triggers, rules and defaults
SELECT pg_temp.setup(1);
SELECT min(id) AS dlv FROM dataflow.delivery \gset
SET ROLE h_worker;
SELECT pg_temp.plant('tables');
SELECT pg_temp.worker_calls(1);
SELECT pg_temp.unplant();
RESET ROLE;
SELECT h_audit.gained();
SET ROLE h_operator;
SELECT pg_temp.plant('tables');
SELECT pg_temp.operator_calls(1, :dlv);
SELECT pg_temp.unplant();
RESET ROLE;
SELECT h_audit.gained();

-- 2. views of those names with INSTEAD OF triggers
SELECT pg_temp.setup(2);
SET ROLE h_worker;
SELECT pg_temp.plant('views');
SELECT pg_temp.worker_calls(2);
SELECT pg_temp.unplant();
RESET ROLE;
SET ROLE h_operator;
SELECT pg_temp.plant('views');
SELECT pg_temp.operator_calls(2, :dlv);
SELECT pg_temp.unplant();
RESET ROLE;
SELECT h_audit.gained();

-- 3. types and tables holding the names the work tables need
SELECT pg_temp.setup(3);
SET ROLE h_worker;
SELECT pg_temp.plant('types');
SELECT pg_temp.worker_calls(3);
SELECT pg_temp.unplant();
RESET ROLE;
SET ROLE h_operator;
SELECT pg_temp.plant('types');
SELECT pg_temp.operator_calls(3, :dlv);
SELECT pg_temp.unplant();
RESET ROLE;
SELECT h_audit.gained();

-- 4. shadowing functions, operators, aggregates, domains and relations: every call works
-- and uses none of them
SELECT pg_temp.setup(4);
SET ROLE h_worker;
SELECT pg_temp.plant('shadows');
SELECT pg_temp.worker_calls(4);
SELECT pg_temp.unplant();
RESET ROLE;
SET ROLE h_operator;
SELECT pg_temp.plant('shadows');
SELECT pg_temp.operator_calls(4, :dlv);
SELECT pg_temp.unplant();
RESET ROLE;
SELECT h_audit.gained();

-- 6. A worker re-registering a source key re-runs every consumer built on it, and the
-- event log names the worker for every step of that cascade.
SELECT dataflow.create_dataset('h7_src', 'date');
SELECT dataflow.create_dataset('h7_mid', 'date');
SELECT dataflow.create_job('j7', output => 'h7_mid');
SELECT dataflow.add_input('j7', 'h7_src');
SELECT dataflow.expect('h7_mid', '2024-07-01');
SET ROLE h_worker;
SELECT dataflow.register('h7_src', '2024-07-01');
SELECT dataflow.complete(t.token) FROM dataflow.lease('j7', 'w-7') t;
SELECT dataflow.register('h7_src', '2024-07-01', force => true);
RESET ROLE;
SELECT dataset, key, version, from_status, to_status,
       CASE WHEN actor = session_user THEN '<me>' ELSE actor END AS actor, detail ->> 'reason' AS reason
  FROM dataflow.events
 WHERE dataset IN ('h7_src', 'h7_mid')
 ORDER BY event_id;

-- The calls that refused a planted work table work once it is gone, in the same session.
SET ROLE h_worker;
SELECT pg_temp.try('register existing key', $$SELECT dataflow.register('h_src', '2024-01-01', force => true)$$);
RESET ROLE;
SET ROLE h_operator;
SELECT pg_temp.try('expect', $$SELECT dataflow.expect('h_out', '2024-01-10', '2024-01-11')$$);
SELECT pg_temp.try('resubmit', $$SELECT count(*) FROM dataflow.resubmit('h_src', '2024-01-02')$$);
RESET ROLE;

-- 5. dataflow_admin is not a superuser: it may not attach a trigger of its own to the
-- extension's tables or views (definer functions would fire it as the owner).
CREATE ROLE h_admin NOLOGIN IN ROLE dataflow_admin;
CREATE SCHEMA h_admin_s AUTHORIZATION h_admin;
SET ROLE h_admin;
CREATE FUNCTION h_admin_s.h_trg() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  PERFORM pg_catalog.nextval('h_audit.ran');
  RAISE NOTICE 'PLANTED admin trigger ran as %', current_user;
  BEGIN ALTER ROLE h_admin SUPERUSER; EXCEPTION WHEN OTHERS THEN NULL; END;
  RETURN NULL;
END $f$;
SELECT pg_temp.try('trigger on ' || r, format(
         'CREATE TRIGGER h_admin AFTER INSERT OR UPDATE ON dataflow.%I FOR EACH STATEMENT EXECUTE FUNCTION h_admin_s.h_trg()', r))
  FROM unnest(ARRAY['chunk', 'event', 'run', 'dataset']) r;
SELECT pg_temp.try('instead-of trigger on chunks',
  'CREATE TRIGGER h_admin INSTEAD OF UPDATE ON dataflow.chunks FOR EACH ROW EXECUTE FUNCTION h_admin_s.h_trg()');
SELECT count(*) > 0 AS admin_reads_chunk FROM dataflow.chunk;
RESET ROLE;
SELECT dataflow.register('h_src', '2024-05-01');
SELECT rolsuper FROM pg_roles WHERE rolname = 'h_admin';
DROP SCHEMA h_admin_s CASCADE;
DROP ROLE h_admin;

-- Afterwards: nothing planted ran, and the roles are what they were.
SELECT h_audit.gained();
SELECT rolname, rolsuper FROM pg_roles WHERE rolname IN ('h_worker', 'h_operator') ORDER BY 1;
SELECT pg_has_role('h_worker', 'dataflow_admin', 'MEMBER') AS worker_admin,
       pg_has_role('h_operator', 'dataflow_admin', 'MEMBER') AS operator_admin,
       has_table_privilege('h_worker', 'dataflow.connection', 'SELECT') AS worker_secrets,
       has_table_privilege('h_operator', 'dataflow.connection', 'SELECT') AS operator_secrets;

DROP ROLE h_worker;
DROP ROLE h_operator;
DROP SCHEMA h_audit CASCADE;
