-- A dataflow_* role made in advance by someone with CREATEROLE is not adopted: its maker
-- holds ADMIN OPTION on it (implicitly from PostgreSQL 16 on) or has granted it to
-- whomever they like, and would get the extension's privileges in every database that
-- installs it (secrets, with dataflow_admin). A role from an earlier install, controlled
-- by superusers only, is adopted as before.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS pg_dataflow CASCADE;
RESET client_min_messages;
\set VERBOSITY terse
-- try_install(): CREATE EXTENSION; its refusal as SQLSTATE, the message up to the list of
-- reasons (which differ by major: 16+ adds the maker's implicit ADMIN OPTION), and whether
-- the reasons name `who`
CREATE FUNCTION pg_temp.try_install(who text DEFAULT NULL) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  CREATE EXTENSION pg_dataflow;
  RETURN 'installed';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || split_part(SQLERRM, ':', 1)
         || CASE WHEN who IS NULL THEN '' ELSE ' (names ' || who || ': ' || (strpos(SQLERRM, who) > 0) || ')' END;
END $$;
CREATE ROLE rp_maker CREATEROLE LOGIN;
CREATE ROLE rp_friend LOGIN;
-- the extension's roles as an install leaves them (other tests' grants removed)
DO $$ DECLARE r text; BEGIN
  FOREACH r IN ARRAY ARRAY['dataflow_admin', 'dataflow_operator', 'dataflow_worker', 'dataflow_reader'] LOOP
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('DROP OWNED BY %I', r);
      EXECUTE format('DROP ROLE %I', r);
    END IF;
  END LOOP;
END $$;

-- 1. rp_maker makes dataflow_admin first and grants it to a friend
SET ROLE rp_maker;
CREATE ROLE dataflow_admin NOLOGIN;
GRANT dataflow_admin TO rp_friend;
RESET ROLE;
SELECT pg_temp.try_install('rp_friend');
SELECT count(*) AS extension_installed FROM pg_extension WHERE extname = 'pg_dataflow';
SELECT pg_has_role('rp_friend', 'dataflow_admin', 'MEMBER') AS friend_member;
-- dropped and made again by a superuser: adopted
DROP ROLE dataflow_admin;

-- 2. a role that can log in
CREATE ROLE dataflow_reader LOGIN;
SELECT pg_temp.try_install();
ALTER ROLE dataflow_reader NOLOGIN;

-- 2b. a role with an attribute beyond NOLOGIN (anyone granted it could SET ROLE and use it)
CREATE ROLE dataflow_worker NOLOGIN CREATEDB;
SELECT pg_temp.try_install();
DROP ROLE dataflow_worker;

-- 3. a superuser's grant WITH ADMIN OPTION to a non-superuser
CREATE ROLE dataflow_operator NOLOGIN;
GRANT dataflow_operator TO rp_friend WITH ADMIN OPTION;
SELECT pg_temp.try_install('rp_friend');

-- 4. superuser-made roles with a superuser's plain grant are adopted: as after an install
--    in another database, whose admin granted the roles to people
REVOKE ADMIN OPTION FOR dataflow_operator FROM rp_friend;
SELECT pg_temp.try_install();
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'dataflow\_%' ORDER BY 1;
SELECT pg_has_role('dataflow_admin', 'dataflow_worker', 'MEMBER') AS admin_is_worker,
       pg_has_role('rp_friend', 'dataflow_operator', 'MEMBER') AS friend_operator;
-- a second install (the roles exist, made by the first one) is adopted too
DROP EXTENSION pg_dataflow;
CREATE EXTENSION pg_dataflow;
REVOKE dataflow_operator FROM rp_friend;
DROP ROLE rp_friend;
DROP ROLE rp_maker;
