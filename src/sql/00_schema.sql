-- Schema, types and small pure helpers shared by every module.

-- The schema (schema = dataflow in the control file) is used as CREATE EXTENSION finds
-- it. One made in advance by someone else would stay theirs: they could rename it and
-- put a "dataflow" of their own in its place, whose functions the superuser background
-- worker then calls by name. So it must be owned by a superuser, grant CREATE to no one
-- else, and hold nothing yet.
DO $$
DECLARE bad text;
BEGIN
  SELECT pg_catalog.string_agg(x, ', ' ORDER BY x) INTO bad FROM (
    SELECT pg_catalog.format('it is owned by %s, not a superuser', r.rolname) AS x
      FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
     WHERE n.nspname OPERATOR(pg_catalog.=) 'dataflow' AND NOT r.rolsuper
    UNION ALL
    SELECT pg_catalog.format('%s may create in it', coalesce(g.rolname::text, 'PUBLIC'))
      FROM pg_catalog.pg_namespace n, pg_catalog.aclexplode(n.nspacl) a
      LEFT JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) a.grantee
     WHERE n.nspname OPERATOR(pg_catalog.=) 'dataflow' AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
       AND NOT coalesce(g.rolsuper, false)
    UNION ALL
    SELECT 'it is not empty'
      FROM pg_catalog.pg_namespace n
     WHERE n.nspname OPERATOR(pg_catalog.=) 'dataflow'
       AND (EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.relnamespace OPERATOR(pg_catalog.=) n.oid)
            OR EXISTS (SELECT FROM pg_catalog.pg_proc p WHERE p.pronamespace OPERATOR(pg_catalog.=) n.oid)
            OR EXISTS (SELECT FROM pg_catalog.pg_type t WHERE t.typnamespace OPERATOR(pg_catalog.=) n.oid))) s;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'schema dataflow exists and is not safe to install into: %', bad
      USING ERRCODE = '42501',
            HINT = 'Drop the schema (CREATE EXTENSION makes it), or give it to a superuser and revoke CREATE from others.';
  END IF;
END $$;

COMMENT ON SCHEMA dataflow IS
  'pg_dataflow: datasets split into chunks, their status, versions, lineage and leases';

-- What lease() hands a worker: everything it needs to do one chunk.
CREATE TYPE dataflow.task AS (
  run_id          bigint,
  token           uuid,
  job             text,
  dataset         text,
  key             text,
  version         integer,
  attempt         integer,
  output_location text,
  inputs          jsonb,
  params          jsonb,
  deadline        timestamptz
);
COMMENT ON TYPE dataflow.task IS
  'A leased chunk: run id, lease token (the capability for heartbeat/complete/fail), job, '
  'dataset, key, version to produce, attempt, output location, inputs '
  '[{dataset, key, version, location, row_count, checksum}], job params, lease deadline';

-- How far a chunk in a given status satisfies its consumers:
-- 0 = not available, 1 = ready, 2 = validated (or skipped: known-empty, satisfies all).
CREATE FUNCTION dataflow._level(status text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE status WHEN 'ready' THEN 1 WHEN 'validated' THEN 2 WHEN 'skipped' THEN 2 ELSE 0 END;

-- Names of datasets, jobs, pools, connections and subscriptions: short, printable,
-- safe to show anywhere (no quotes, spaces, semicolons or control characters).
CREATE FUNCTION dataflow._check_name(what text, name text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF name IS NULL THEN
    PERFORM dataflow._raise('22004', what || ' name must not be NULL', NULL,
                            'Pass the new ' || what || '''s name as the first argument (name).');
  END IF;
  IF name OPERATOR(pg_catalog.!~) '^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,62}$' THEN
    PERFORM dataflow._raise('22023', pg_catalog.format('invalid %s name "%s"', what, pg_catalog.left(name, 64)), NULL,
            'Names are 1-63 characters: letters, digits, "_", ".", ":" and "-", not starting with a punctuation mark.');
  END IF;
  RETURN name;
END $$;

-- Who did it: the worker name when one is given, else the session's login role.
CREATE FUNCTION dataflow._actor(worker text DEFAULT NULL) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
RETURN COALESCE(worker, CASE WHEN pg_catalog.current_setting('role') OPERATOR(pg_catalog.=) 'none' THEN SESSION_USER::text ELSE pg_catalog.current_setting('role') END);

-- The role the session acts as: the SET ROLE role, else the login role. Inside a
-- SECURITY DEFINER function current_user is the extension owner; this is who called.
CREATE FUNCTION dataflow._caller() RETURNS name
LANGUAGE sql STABLE PARALLEL SAFE
RETURN CASE WHEN pg_catalog.current_setting('role') OPERATOR(pg_catalog.=) 'none' THEN SESSION_USER
            ELSE pg_catalog.current_setting('role')::name END;

-- Whether the session's temporary table pg_temp.<name> exists and is one this
-- extension made: SECURITY DEFINER paths keep per-transaction work tables in
-- pg_temp, a schema the caller can write too. A table of that name that
-- current_user (the extension owner, inside a definer function) does not own
-- was planted by the caller, with a trigger, rule or default that would run as
-- the owner: refuse it, never adopt it. Only its owner could have added a trigger
-- or rule to one we made. Anything else holding the name (a view, sequence,
-- composite, enum or domain type called <name>) is refused the same way, with the
-- same clear error, rather than failing later in CREATE TEMP TABLE. (A relation
-- named like the work table's primary-key index is harmless: PostgreSQL picks
-- another index name.) Returns false when there is none, and with p_quiet also for
-- an object that is not ours (a caller that only reads what it would have written).
CREATE FUNCTION dataflow._own_work_table(p_name text, p_quiet boolean DEFAULT false) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  me oid := (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) current_user);
  tmp oid := pg_catalog.pg_my_temp_schema();
  owner_ok boolean; kind "char"; taken text;
BEGIN
  IF tmp OPERATOR(pg_catalog.=) 0 THEN
    RETURN false;   -- no temporary schema yet: nothing can have been planted
  END IF;
  SELECT c.relowner OPERATOR(pg_catalog.=) me, c.relkind
    INTO owner_ok, kind
    FROM pg_catalog.pg_class c
   WHERE c.relnamespace OPERATOR(pg_catalog.=) tmp AND c.relname OPERATOR(pg_catalog.=) p_name;
  IF FOUND AND owner_ok AND kind OPERATOR(pg_catalog.=) 'r' THEN
    RETURN true;
  END IF;
  IF p_quiet THEN
    RETURN false;
  END IF;
  IF FOUND THEN
    taken := p_name;
  ELSIF EXISTS (SELECT FROM pg_catalog.pg_type t
                 WHERE t.typnamespace OPERATOR(pg_catalog.=) tmp AND t.typname OPERATOR(pg_catalog.=) p_name) THEN
    taken := p_name;
  ELSE
    RETURN false;
  END IF;
  PERFORM dataflow._raise('42501', pg_catalog.format('pg_temp.%s is not a work table of pg_dataflow', taken),
    'pg_dataflow keeps temporary work tables of that name; an object of that name made by another role is never used.',
    pg_catalog.format('DROP the temporary object pg_temp.%s, or use a new session.', taken));
  RETURN false;  -- not reached
END $$;

-- Every function that changes chunks or runs needs READ COMMITTED: it takes a lock and
-- then reads, in its next statement, what the lock protects (dep edges a concurrent
-- expect() committed, a run a completion ended), which only a fresh snapshot per
-- statement shows. Under REPEATABLE READ or SERIALIZABLE every statement keeps the
-- transaction's first snapshot, and a resubmit missed a consumer (left queued on an
-- unavailable input) or a completion missed an edge (its consumer waited forever).
CREATE FUNCTION dataflow._read_committed() RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF pg_catalog.current_setting('transaction_isolation') OPERATOR(pg_catalog.<>) 'read committed' THEN
    PERFORM dataflow._raise('0A000', 'pg_dataflow needs READ COMMITTED transactions; this one is '
                                     || pg_catalog.upper(pg_catalog.current_setting('transaction_isolation')),
      'It locks rows and then reads what they protect with a fresh snapshot, which a '
      'REPEATABLE READ or SERIALIZABLE transaction does not take.',
      'Call it in a READ COMMITTED transaction (the default): BEGIN ISOLATION LEVEL READ COMMITTED.');
  END IF;
END $$;

-- Messages (docs/internals.md, "Errors"). _raise raises an ERROR without CONTEXT lines:
-- the errors a user causes through an internal helper (an unknown name, a NULL argument)
-- read as ERROR, DETAIL and HINT only, not with the helper's PL/pgSQL frames. DETAIL and
-- HINT are left out when NULL. An EXCEPTION block catches it by its SQLSTATE as usual.
CREATE FUNCTION dataflow._raise(sqlstate text, message text, detail text DEFAULT NULL, hint text DEFAULT NULL)
RETURNS void AS 'MODULE_PATHNAME', 'df_raise' LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION dataflow._raise(text, text, text, text) IS
  'Raise an ERROR with this SQLSTATE, message, detail and hint (NULL: none) and no CONTEXT lines';

CREATE FUNCTION dataflow._name_distance(a text, b text, cap integer) RETURNS integer
AS 'MODULE_PATHNAME', 'df_name_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dataflow._name_distance(text, text, integer) IS
  'Levenshtein distance of two names, ASCII letters case-insensitive; cap + 1 when it is larger than cap';

-- "Did you mean ...?" for an unknown name of a kind (dataset, job, pool, connection,
-- subscription): at most 3 existing names, nearest first: within edit distance
-- max(2, length / 3) (case-insensitive), then names that start with the typed one or that
-- it starts with (3 characters at least). Only from names the calling role can list
-- itself (SELECT on the relation that lists every name of the kind: dataflow.datasets,
-- dataflow.jobs, dataflow.pool, dataflow.connection, dataflow.subscription), so an error
-- never shows a name the caller could not read. NULL when there is none. The scan runs
-- on the error path only; the distance is computed only for names whose length is
-- within the cap (one pass over the names: 100,000 datasets in tens of milliseconds).
CREATE FUNCTION dataflow._suggest(kind text, name text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  rel text := CASE kind WHEN 'dataset' THEN 'dataflow.datasets' WHEN 'job' THEN 'dataflow.jobs'
                        WHEN 'pool' THEN 'dataflow.pool' WHEN 'connection' THEN 'dataflow.connection'
                        WHEN 'subscription' THEN 'dataflow.subscription' END;
  tbl text := CASE kind WHEN 'dataset' THEN 'dataflow.dataset' WHEN 'job' THEN 'dataflow.job'
                        WHEN 'pool' THEN 'dataflow.pool' WHEN 'connection' THEN 'dataflow.connection'
                        WHEN 'subscription' THEN 'dataflow.subscription' END;
  n integer := pg_catalog.length(name);
  found text[];
BEGIN
  IF rel IS NULL OR name IS NULL OR n OPERATOR(pg_catalog.>) 200
     OR NOT pg_catalog.has_table_privilege(dataflow._caller(), rel, 'SELECT') THEN
    RETURN NULL;
  END IF;
  EXECUTE pg_catalog.format($q$
    SELECT pg_catalog.array_agg(c ORDER BY near DESC, dist, c) FROM (
      SELECT c, near, dist FROM (
        SELECT x.name AS c, d.dist OPERATOR(pg_catalog.<=) $2 AS near, d.dist
          FROM %s x,
               LATERAL (SELECT CASE WHEN pg_catalog.abs(pg_catalog.length(x.name) OPERATOR(pg_catalog.-) $3)
                                           OPERATOR(pg_catalog.<=) $2
                                    THEN dataflow._name_distance(x.name, $1, $2)
                                    ELSE $2 OPERATOR(pg_catalog.+) 1 END AS dist) d
         WHERE x.name OPERATOR(pg_catalog.<>) $1) y
       WHERE near
          OR (LEAST(pg_catalog.length(c), $3) OPERATOR(pg_catalog.>=) 3
              AND (pg_catalog.starts_with(pg_catalog.lower(c), pg_catalog.lower($1))
                   OR pg_catalog.starts_with(pg_catalog.lower($1), pg_catalog.lower(c))))
       ORDER BY near DESC, dist, c LIMIT 3) z$q$, tbl)
    INTO found USING name, GREATEST(2, n OPERATOR(pg_catalog./) 3), n;
  IF found IS NULL THEN
    RETURN NULL;
  END IF;
  RETURN 'Did you mean ' || CASE pg_catalog.cardinality(found)
    WHEN 1 THEN found[1]
    WHEN 2 THEN found[1] || ' or ' || found[2]
    ELSE found[1] || ', ' || found[2] || ' or ' || found[3] END || '?';
END $$;

-- Raise "<kind> "<name>" does not exist" (42704) from wherever a lookup failed, without
-- CONTEXT lines: the hint is the did-you-mean of _suggest, then what to do otherwise
-- (otherwise: 'create it with ...', lower-case; alone it is capitalized).
CREATE FUNCTION dataflow._not_found(kind text, name text, otherwise text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE s text := dataflow._suggest(kind, name);
BEGIN
  PERFORM dataflow._raise('42704', pg_catalog.format('%s "%s" does not exist', kind, pg_catalog.left(name, 64)), NULL,
    CASE WHEN s IS NULL THEN pg_catalog.upper(pg_catalog.left(otherwise, 1)) || pg_catalog.substr(otherwise, 2)
         WHEN otherwise IS NULL THEN s
         ELSE s || ' Otherwise ' || otherwise END);
END $$;
