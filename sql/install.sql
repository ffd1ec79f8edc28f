-- The extension installs into schema dataflow with every object it needs.
CREATE EXTENSION pg_dataflow;
SELECT extversion FROM pg_extension WHERE extname = 'pg_dataflow';
-- every public function carries a comment
SELECT p.proname
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'dataflow' AND p.proname !~ '^_' AND obj_description(p.oid, 'pg_proc') IS NULL
 ORDER BY 1;
-- every view column carries a comment
SELECT c.relname, a.attname
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE n.nspname = 'dataflow' AND c.relkind = 'v' AND col_description(c.oid, a.attnum) IS NULL
 ORDER BY 1, 2;
-- plpgsql functions pin their search_path
SELECT p.proname
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
 WHERE n.nspname = 'dataflow' AND l.lanname = 'plpgsql'
   AND NOT EXISTS (SELECT FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')
 ORDER BY 1;
