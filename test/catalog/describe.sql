-- A canonical listing of everything pg_dataflow owns in the current database, for diffing
-- an updated installation against a fresh one (test/integration/upgrade.sh):
--
--   psql -X -tAq -v ON_ERROR_STOP=1 -d DB -f test/catalog/describe.sql > DB.catalog
--
-- One line per fact, "section | object | fact", in a fixed order (byte order, COLLATE "C");
-- function bodies and view definitions one line per source line, numbered. Nothing
-- that legitimately differs between two databases appears: no oid, no database name, no
-- sequence position, no attnum (columns are numbered in order, dropped ones skipped), and
-- owners and grantees that are the object's owner print as OWNER. Roles are cluster-wide:
-- their attributes and memberships are listed, but in one cluster both databases see the
-- same rows, so list the updated database before installing the fresh one.
--
-- Covered: extension members (pg_depend 'e'); functions (arguments with defaults, result,
-- kind, language, volatility, strictness, SECURITY DEFINER, leakproof, parallel, cost,
-- rows, SET clauses, support function, body or C symbol and library); ACLs of members,
-- columns and the schema, expanded (a NULL ACL is expanded as its default), default ACLs
-- and pg_init_privs; comments on members, the schema, columns, constraints, indexes,
-- triggers, rules and policies; tables and views (kind, persistence, options, RLS flags, replica
-- identity, partitioning, inheritance, columns with type, typmod, collation, not null,
-- default, identity, generated, storage), indexes, constraints, triggers with their
-- enabled state, view definitions, rules, policies, extended statistics, sequences'
-- parameters, types (domains, enums with their labels, composites, ranges, base),
-- operators, casts, event triggers, aggregates, pg_extension (version, schema,
-- relocatable, extconfig as table names with extcondition), the dataflow_* roles
-- (attributes, memberships, per-database settings), and any object of the schema that
-- is not a member.
SET search_path = pg_catalog;   -- every name printed schema-qualified except pg_catalog's
SET bytea_output = 'hex';
SET extra_float_digits = 0;
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';

WITH
ext AS (
  SELECT e.oid, e.extowner FROM pg_extension e WHERE e.extname = 'pg_dataflow'
),
mem AS (   -- the extension's members
  SELECT d.classid, d.objid, d.objsubid
    FROM pg_depend d, ext
   WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
),
nsp AS (
  SELECT n.oid FROM pg_namespace n WHERE n.nspname = 'dataflow'
),
rel AS (   -- member relations (tables, views, sequences, ...)
  SELECT c.* FROM pg_class c WHERE c.oid IN (SELECT objid FROM mem WHERE classid = 'pg_class'::regclass)
),
fn AS (
  SELECT p.* FROM pg_proc p WHERE p.oid IN (SELECT objid FROM mem WHERE classid = 'pg_proc'::regclass)
),
typ AS (
  SELECT t.* FROM pg_type t WHERE t.oid IN (SELECT objid FROM mem WHERE classid = 'pg_type'::regclass)
),
roles AS (
  SELECT r.oid, r.rolname FROM pg_roles r WHERE r.rolname LIKE 'dataflow\_%'
),
-- who: a role as printed (PUBLIC, EXTOWNER for the extension's owner, else its name; the ACL
-- sections print OWNER for the object's own owner)
who AS (
  SELECT 0::oid AS oid, 'PUBLIC'::text AS name
  UNION ALL SELECT r.oid, CASE WHEN r.oid = (SELECT extowner FROM ext) THEN 'EXTOWNER' ELSE r.rolname::text END
              FROM pg_roles r
),
-- objects that carry an ACL: (description, acl, owner, acldefault kind)
acl_obj AS (
  SELECT pg_describe_object('pg_proc'::regclass, f.oid, 0) AS obj, f.proacl AS acl, f.proowner AS owner,
         'f'::"char" AS k
    FROM fn f
  UNION ALL
  SELECT pg_describe_object('pg_class'::regclass, r.oid, 0), r.relacl, r.relowner,
         CASE WHEN r.relkind = 'S' THEN 's' ELSE 'r' END::"char"
    FROM rel r
  UNION ALL
  SELECT pg_describe_object('pg_type'::regclass, t.oid, 0), t.typacl, t.typowner, 'T'::"char"
    FROM typ t
  UNION ALL
  SELECT pg_describe_object('pg_namespace'::regclass, n.oid, 0), n.nspacl, n.nspowner, 'n'::"char"
    FROM pg_namespace n WHERE n.oid IN (SELECT oid FROM nsp)
),
facts (section, obj, sub, line) AS (
  -- every member object
  SELECT 'member', pg_describe_object(m.classid, m.objid, m.objsubid), '', ''
    FROM mem m

  -- functions and procedures: one line per attribute, then the body, one line per source line
  UNION ALL
  SELECT 'function', p.oid::regprocedure::text, v.sub, v.line
    FROM fn p
    JOIN pg_language l ON l.oid = p.prolang,
    LATERAL (VALUES
      ('1', 'arguments: ' || pg_get_function_arguments(p.oid)),
      ('2', 'result: ' || coalesce(pg_get_function_result(p.oid), '-')),
      ('3', format('kind=%s language=%s volatility=%s strict=%s security_definer=%s leakproof=%s '
                   'parallel=%s cost=%s rows=%s retset=%s owner=%s',
                   p.prokind, l.lanname, p.provolatile, p.proisstrict, p.prosecdef, p.proleakproof,
                   p.proparallel, p.procost, p.prorows, p.proretset,
                   CASE WHEN p.proowner = (SELECT extowner FROM ext) THEN 'EXTOWNER'
                        ELSE pg_get_userbyid(p.proowner)::text END)),
      ('4', 'config: ' || coalesce(array_to_string(p.proconfig, ', '), '-')),
      ('5', 'support: ' || p.prosupport::regproc::text),
      ('6', 'transforms: ' || coalesce(p.protrftypes::text, '-')),
      ('7', CASE WHEN l.lanname = 'c' THEN format('C symbol=%s library=%s', p.prosrc, p.probin)
                 ELSE 'body:' END)
    ) AS v (sub, line)
  UNION ALL
  SELECT 'function', p.oid::regprocedure::text, '8 ' || lpad(b.n::text, 6, '0'), 'body ' || lpad(b.n::text, 4) || ' ' || b.text
    FROM fn p
    JOIN pg_language l ON l.oid = p.prolang AND l.lanname <> 'c',
    LATERAL regexp_split_to_table(CASE WHEN p.prosqlbody IS NOT NULL THEN pg_get_function_sqlbody(p.oid)
                                       ELSE p.prosrc END, E'\n') WITH ORDINALITY AS b (text, n)

  -- aggregates
  UNION ALL
  SELECT 'aggregate', a.aggfnoid::regprocedure::text, '',
         format('kind=%s transfn=%s finalfn=%s combinefn=%s transtype=%s initval=%s sortop=%s',
                a.aggkind, a.aggtransfn::regprocedure, a.aggfinalfn::regproc, a.aggcombinefn::regproc,
                format_type(a.aggtranstype, NULL), a.agginitval, a.aggsortop::regoperator)
    FROM pg_aggregate a WHERE a.aggfnoid IN (SELECT oid FROM fn)

  -- ACLs, expanded; a NULL ACL means the default privileges, expanded the same way
  UNION ALL
  SELECT 'acl', o.obj, '',
         format('%s %s%s', CASE WHEN x.grantee = o.owner THEN 'OWNER' ELSE w.name END, x.privilege_type,
                CASE WHEN x.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
    FROM acl_obj o, LATERAL aclexplode(coalesce(o.acl, acldefault(o.k, o.owner))) x
    JOIN who w ON w.oid = x.grantee
  UNION ALL
  SELECT 'acl', pg_describe_object('pg_class'::regclass, a.attrelid, a.attnum), '',
         format('%s %s%s', CASE WHEN x.grantee = r.relowner THEN 'OWNER' ELSE w.name END, x.privilege_type,
                CASE WHEN x.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
    FROM rel r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped,
         LATERAL aclexplode(a.attacl) x
    JOIN who w ON w.oid = x.grantee
  -- default privileges in the schema or of the extension's roles
  UNION ALL
  SELECT 'default acl', format('role %s in %s for %s', pg_get_userbyid(d.defaclrole),
                               coalesce(d.defaclnamespace::regnamespace::text, 'every schema'), d.defaclobjtype), '',
         format('%s %s%s', w.name, x.privilege_type, CASE WHEN x.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
    FROM pg_default_acl d, LATERAL aclexplode(d.defaclacl) x
    JOIN who w ON w.oid = x.grantee
   WHERE d.defaclnamespace IN (SELECT oid FROM nsp) OR d.defaclrole IN (SELECT oid FROM roles)
  -- the initial privileges pg_dump compares with (recorded by the extension's scripts)
  UNION ALL
  SELECT 'init privs', pg_describe_object(i.classoid, i.objoid, i.objsubid), '',
         format('%s %s %s%s', i.privtype, w.name, x.privilege_type,
                CASE WHEN x.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
    FROM pg_init_privs i, LATERAL aclexplode(i.initprivs) x
    JOIN who w ON w.oid = x.grantee
   WHERE (i.classoid, i.objoid) IN (SELECT classid, objid FROM mem)

  -- comments: members, their columns, and the constraints, indexes, triggers, rules and
  -- policies of member relations
  UNION ALL
  SELECT 'comment', pg_describe_object(d.classoid, d.objoid, d.objsubid), '', d.description
    FROM pg_description d
   WHERE (d.classoid, d.objoid) IN (SELECT classid, objid FROM mem)
      OR (d.classoid = 'pg_constraint'::regclass
          AND d.objoid IN (SELECT oid FROM pg_constraint WHERE conrelid IN (SELECT oid FROM rel)
                                                           OR contypid IN (SELECT oid FROM typ)))
      OR (d.classoid = 'pg_class'::regclass
          AND d.objoid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN (SELECT oid FROM rel)))
      OR (d.classoid = 'pg_trigger'::regclass
          AND d.objoid IN (SELECT oid FROM pg_trigger WHERE tgrelid IN (SELECT oid FROM rel)))
      OR (d.classoid = 'pg_rewrite'::regclass
          AND d.objoid IN (SELECT oid FROM pg_rewrite WHERE ev_class IN (SELECT oid FROM rel)))
      OR (d.classoid = 'pg_policy'::regclass
          AND d.objoid IN (SELECT oid FROM pg_policy WHERE polrelid IN (SELECT oid FROM rel)))
      -- the schema: the extension's (schema = dataflow in the control file), not a member
      OR (d.classoid = 'pg_namespace'::regclass AND d.objoid = 'dataflow'::regnamespace)

  -- relations
  UNION ALL
  SELECT 'relation', r.oid::regclass::text, '',
         format('kind=%s persistence=%s am=%s options=%s rls=%s force_rls=%s replica_identity=%s '
                'partitioned_by=%s partition_of=%s inherits=%s of_type=%s owner=%s',
                r.relkind, r.relpersistence, coalesce(am.amname::text, '-'), coalesce(r.reloptions::text, '-'),
                r.relrowsecurity, r.relforcerowsecurity, r.relreplident,
                CASE WHEN r.relkind = 'p' THEN pg_get_partkeydef(r.oid) ELSE '-' END,
                coalesce((SELECT string_agg(i.inhparent::regclass::text || ' ' ||
                                            coalesce(pg_get_expr(r.relpartbound, r.oid), ''), ', ')
                            FROM pg_inherits i WHERE i.inhrelid = r.oid AND r.relispartition), '-'),
                coalesce((SELECT string_agg(i.inhparent::regclass::text, ', ' ORDER BY i.inhseqno)
                            FROM pg_inherits i WHERE i.inhrelid = r.oid AND NOT r.relispartition), '-'),
                CASE WHEN r.reloftype = 0 THEN '-' ELSE r.reloftype::regtype::text END,
                CASE WHEN r.relowner = (SELECT extowner FROM ext) THEN 'EXTOWNER'
                     ELSE pg_get_userbyid(r.relowner)::text END)
    FROM rel r LEFT JOIN pg_am am ON am.oid = r.relam
  -- columns in order (dropped ones skipped), of tables, views, composite types
  UNION ALL
  SELECT 'column', c.oid::regclass::text, lpad(row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum)::text, 4, '0'),
         format('%s %s%s%s%s%s%s%s', quote_ident(a.attname), format_type(a.atttypid, a.atttypmod),
                CASE WHEN a.attcollation <> t.typcollation THEN ' COLLATE ' || a.attcollation::regcollation::text
                     ELSE '' END,
                CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,
                CASE WHEN a.atthasdef AND a.attgenerated = ''
                     THEN ' DEFAULT ' || pg_get_expr(ad.adbin, ad.adrelid) ELSE '' END,
                CASE a.attidentity WHEN 'a' THEN ' GENERATED ALWAYS AS IDENTITY'
                                   WHEN 'd' THEN ' GENERATED BY DEFAULT AS IDENTITY' ELSE '' END,
                CASE WHEN a.attgenerated <> ''
                     THEN format(' GENERATED ALWAYS AS (%s) %s', pg_get_expr(ad.adbin, ad.adrelid),
                                 CASE a.attgenerated WHEN 's' THEN 'STORED' ELSE 'VIRTUAL' END) ELSE '' END,
                CASE WHEN a.attstorage <> t.typstorage THEN ' STORAGE ' || a.attstorage::text ELSE '' END)
    FROM pg_class c
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    JOIN pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
   WHERE c.oid IN (SELECT oid FROM rel) OR c.oid IN (SELECT typrelid FROM typ)
  -- indexes
  UNION ALL
  SELECT 'index', i.indrelid::regclass::text, pg_get_indexdef(i.indexrelid),
         format('%s clustered=%s replident=%s', pg_get_indexdef(i.indexrelid), i.indisclustered, i.indisreplident)
    FROM pg_index i WHERE i.indrelid IN (SELECT oid FROM rel)
  -- constraints, of tables and of domains
  UNION ALL
  SELECT 'constraint', coalesce(nullif(c.conrelid, 0)::regclass::text, c.contypid::regtype::text), c.conname,
         format('%s %s', quote_ident(c.conname), pg_get_constraintdef(c.oid))
    FROM pg_constraint c
   WHERE c.conrelid IN (SELECT oid FROM rel) OR c.contypid IN (SELECT oid FROM typ)
  -- triggers (not the internal ones of foreign keys)
  UNION ALL
  SELECT 'trigger', t.tgrelid::regclass::text, t.tgname, format('%s enabled=%s', pg_get_triggerdef(t.oid), t.tgenabled)
    FROM pg_trigger t WHERE t.tgrelid IN (SELECT oid FROM rel) AND NOT t.tgisinternal
  -- views and materialized views, one line per line of the definition
  UNION ALL
  SELECT 'view', r.oid::regclass::text, lpad(b.n::text, 6, '0'), lpad(b.n::text, 4) || ' ' || b.text
    FROM rel r, LATERAL regexp_split_to_table(pg_get_viewdef(r.oid), E'\n') WITH ORDINALITY AS b (text, n)
   WHERE r.relkind IN ('v', 'm')
  -- rules other than a view's own
  UNION ALL
  SELECT 'rule', w.ev_class::regclass::text, w.rulename, format('%s enabled=%s', pg_get_ruledef(w.oid), w.ev_enabled)
    FROM pg_rewrite w WHERE w.ev_class IN (SELECT oid FROM rel) AND w.rulename <> '_RETURN'
  -- row-level security policies
  UNION ALL
  SELECT 'policy', p.polrelid::regclass::text, p.polname,
         format('%s cmd=%s permissive=%s roles=%s using=%s check=%s', quote_ident(p.polname), p.polcmd,
                p.polpermissive,
                (SELECT string_agg(w.name, ',' ORDER BY w.name) FROM unnest(p.polroles) u (r) JOIN who w ON w.oid = u.r),
                coalesce(pg_get_expr(p.polqual, p.polrelid), '-'), coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '-'))
    FROM pg_policy p WHERE p.polrelid IN (SELECT oid FROM rel)
  -- extended statistics
  UNION ALL
  SELECT 'statistics', s.stxrelid::regclass::text, s.stxname, pg_get_statisticsobjdef(s.oid)
    FROM pg_statistic_ext s WHERE s.stxrelid IN (SELECT oid FROM rel)
  -- sequences of the schema, members or not (identity sequences), without their positions
  UNION ALL
  SELECT 'sequence', s.seqrelid::regclass::text, '',
         format('type=%s start=%s increment=%s min=%s max=%s cache=%s cycle=%s owned_by=%s',
                format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache,
                s.seqcycle,
                coalesce((SELECT string_agg(d.deptype::text || ':' || pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid), ', ')
                            FROM pg_depend d
                           WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid
                             AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')), '-'))
    FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
   WHERE c.relnamespace IN (SELECT oid FROM nsp) OR c.oid IN (SELECT oid FROM rel)

  -- types
  UNION ALL
  SELECT 'type', t.oid::regtype::text, '',
         format('type=%s category=%s%s%s%s owner=%s', t.typtype, t.typcategory,
                CASE WHEN t.typtype = 'd'
                     THEN format(' base=%s not_null=%s default=%s', format_type(t.typbasetype, t.typtypmod),
                                 t.typnotnull, coalesce(t.typdefault, '-')) ELSE '' END,
                CASE WHEN t.typtype = 'e'
                     THEN ' labels=' || (SELECT string_agg(quote_literal(e.enumlabel), ',' ORDER BY e.enumsortorder)
                                           FROM pg_enum e WHERE e.enumtypid = t.oid) ELSE '' END,
                CASE WHEN t.typtype = 'r'
                     THEN (SELECT format(' subtype=%s opclass=%s canonical=%s diff=%s', format_type(g.rngsubtype, NULL),
                                         g.rngsubopc::regclass, g.rngcanonical::regproc, g.rngsubdiff::regproc)
                             FROM pg_range g WHERE g.rngtypid = t.oid)
                     WHEN t.typtype = 'b'
                     THEN format(' input=%s output=%s receive=%s send=%s len=%s align=%s storage=%s', t.typinput::regproc,
                                 t.typoutput::regproc, t.typreceive::regproc, t.typsend::regproc, t.typlen,
                                 t.typalign, t.typstorage) ELSE '' END,
                CASE WHEN t.typowner = (SELECT extowner FROM ext) THEN 'EXTOWNER'
                     ELSE pg_get_userbyid(t.typowner)::text END)
    FROM typ t
  -- operators, casts, event triggers
  UNION ALL
  SELECT 'operator', o.oid::regoperator::text, '',
         format('function=%s commutator=%s negator=%s restrict=%s join=%s hashes=%s merges=%s',
                o.oprcode::regprocedure, o.oprcom::regoperator, o.oprnegate::regoperator, o.oprrest::regproc,
                o.oprjoin::regproc, o.oprcanhash, o.oprcanmerge)
    FROM pg_operator o WHERE o.oid IN (SELECT objid FROM mem WHERE classid = 'pg_operator'::regclass)
  UNION ALL
  SELECT 'cast', format('%s AS %s', format_type(c.castsource, NULL), format_type(c.casttarget, NULL)), '',
         format('function=%s context=%s method=%s', c.castfunc::regprocedure, c.castcontext, c.castmethod)
    FROM pg_cast c WHERE c.oid IN (SELECT objid FROM mem WHERE classid = 'pg_cast'::regclass)
  UNION ALL
  SELECT 'event trigger', t.evtname, '',
         format('event=%s function=%s enabled=%s tags=%s', t.evtevent, t.evtfoid::regprocedure, t.evtenabled,
                coalesce(t.evttags::text, '-'))
    FROM pg_event_trigger t WHERE t.oid IN (SELECT objid FROM mem WHERE classid = 'pg_event_trigger'::regclass)

  -- the extension itself and what pg_dump keeps of it (extconfig as table names)
  UNION ALL
  SELECT 'extension', e.extname, '',
         format('version=%s schema=%s relocatable=%s', e.extversion, e.extnamespace::regnamespace, e.extrelocatable)
    FROM pg_extension e WHERE e.oid IN (SELECT oid FROM ext)
  UNION ALL
  SELECT 'extension config', c.cfg::regclass::text, '', format('condition=%L', c.cond)
    FROM pg_extension e,
         LATERAL unnest(e.extconfig, e.extcondition) AS c (cfg, cond)
   WHERE e.oid IN (SELECT oid FROM ext)

  -- the roles the extension creates: attributes, memberships, per-database settings
  UNION ALL
  SELECT 'role', r.rolname::text, '',
         format('super=%s inherit=%s createrole=%s createdb=%s login=%s replication=%s bypassrls=%s connlimit=%s',
                r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin, r.rolreplication,
                r.rolbypassrls, r.rolconnlimit)
    FROM pg_roles r WHERE r.oid IN (SELECT oid FROM roles)
  UNION ALL
  SELECT 'role membership', format('%s in %s', pg_get_userbyid(a.member), pg_get_userbyid(a.roleid)), '',
         (to_jsonb(a) - 'oid' - 'roleid' - 'member' - 'grantor')::text
    FROM pg_auth_members a
   WHERE a.roleid IN (SELECT oid FROM roles) OR a.member IN (SELECT oid FROM roles)
  UNION ALL
  SELECT 'role setting', format('%s in %s', pg_get_userbyid(s.setrole),
                                CASE WHEN s.setdatabase = 0 THEN 'every database' ELSE 'this database' END), '',
         array_to_string(s.setconfig, ', ')
    FROM pg_db_role_setting s
   WHERE s.setrole IN (SELECT oid FROM roles)
     AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))

  -- objects in the schema that are not members of the extension (there should be none)
  UNION ALL
  SELECT 'not a member', pg_describe_object('pg_class'::regclass, c.oid, 0), '', ''
    FROM pg_class c
   WHERE c.relnamespace IN (SELECT oid FROM nsp) AND c.relkind NOT IN ('i', 'I', 't')
     AND c.oid NOT IN (SELECT oid FROM rel)
     AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                               AND d.deptype = 'i')   -- identity sequences
  UNION ALL
  SELECT 'not a member', pg_describe_object('pg_proc'::regclass, p.oid, 0), '', ''
    FROM pg_proc p WHERE p.pronamespace IN (SELECT oid FROM nsp) AND p.oid NOT IN (SELECT oid FROM fn)
  UNION ALL
  SELECT 'not a member', pg_describe_object('pg_type'::regclass, t.oid, 0), '', ''
    FROM pg_type t
   WHERE t.typnamespace IN (SELECT oid FROM nsp) AND t.oid NOT IN (SELECT oid FROM typ)
     AND NOT (t.typrelid <> 0 AND (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) <> 'c')  -- row types
     AND NOT (t.typcategory = 'A' AND t.typelem <> 0)                                                  -- arrays
  UNION ALL
  SELECT 'not a member', pg_describe_object('pg_operator'::regclass, o.oid, 0), '', ''
    FROM pg_operator o
   WHERE o.oprnamespace IN (SELECT oid FROM nsp)
     AND o.oid NOT IN (SELECT objid FROM mem WHERE classid = 'pg_operator'::regclass)
)
SELECT CASE WHEN line = '' THEN section || ' | ' || obj ELSE section || ' | ' || obj || ' | ' || line END
  FROM facts
 ORDER BY section COLLATE "C", obj COLLATE "C", sub COLLATE "C", line COLLATE "C";

-- no extension in this database: say so (the listing above is then empty)
SELECT 'NO pg_dataflow EXTENSION IN THIS DATABASE' WHERE NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_dataflow');
