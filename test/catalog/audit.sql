-- The catalog audit of an installed pg_dataflow (fresh or updated): one row per problem,
-- none when the installation is sound.
--
--   psql -X -tAq -v ON_ERROR_STOP=1 -d DB -f test/catalog/audit.sql
--
--   definer executable by PUBLIC   a SECURITY DEFINER function anyone may call
--   definer without search_path    a SECURITY DEFINER function that does not pin search_path
--   plpgsql without search_path    a plpgsql function that does not pin it (src/sql/README.md)
--   table readable by PUBLIC       a table or view of the schema PUBLIC may select from
--   not a member                   a function, table or view in the schema the extension does not own
SET search_path = pg_catalog;
WITH ext AS (SELECT e.oid FROM pg_extension e WHERE e.extname = 'pg_dataflow'),
problems (problem, obj) AS (
  SELECT 'definer executable by PUBLIC', p.oid::regprocedure::text
    FROM pg_proc p
   WHERE p.pronamespace = 'dataflow'::regnamespace AND p.prosecdef
     AND has_function_privilege('public', p.oid, 'EXECUTE')
  UNION ALL
  SELECT 'definer without search_path', p.oid::regprocedure::text
    FROM pg_proc p
   WHERE p.pronamespace = 'dataflow'::regnamespace AND p.prosecdef
     AND NOT EXISTS (SELECT FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%')
  UNION ALL
  SELECT 'plpgsql without search_path', p.oid::regprocedure::text
    FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
   WHERE p.pronamespace = 'dataflow'::regnamespace AND l.lanname = 'plpgsql'
     AND NOT EXISTS (SELECT FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%')
  UNION ALL
  SELECT 'table readable by PUBLIC', c.oid::regclass::text
    FROM pg_class c
   WHERE c.relnamespace = 'dataflow'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
     AND has_table_privilege('public', c.oid, 'SELECT')
  UNION ALL
  SELECT 'not a member', pg_describe_object(x.classid, x.objid, 0)
    FROM (SELECT 'pg_proc'::regclass AS classid, p.oid AS objid FROM pg_proc p
           WHERE p.pronamespace = 'dataflow'::regnamespace
          UNION ALL
          SELECT 'pg_class'::regclass, c.oid FROM pg_class c
           WHERE c.relnamespace = 'dataflow'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')) x
   WHERE NOT EXISTS (SELECT FROM pg_depend d, ext
                      WHERE d.classid = x.classid AND d.objid = x.objid AND d.deptype = 'e'
                        AND d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid)
)
SELECT problem || ': ' || obj AS problem FROM problems ORDER BY problem COLLATE "C", obj COLLATE "C";
