-- Compatibility descriptions of long multibyte values (src/schema_diff.c,
-- value_text): a value longer than 80 bytes is shortened at a character
-- boundary, so descriptions and error details stay valid UTF-8.  Run as a
-- plain celerysalt_admin role, in a database where it may CREATE in public.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS celerysalt;
RESET client_min_messages;

-- This file is ASCII; the multibyte texts are built with chr().
SELECT getdatabaseencoding() = 'UTF8' AS utf8_database;

\i sql/include/try.sql
-- Valid server-encoded text, checked byte by byte (convert_from verifies).
CREATE FUNCTION pg_temp.valid_utf8(t text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM convert_from(textsend(t), 'UTF8');
    RETURN true;
EXCEPTION WHEN character_not_in_repertoire THEN
    RETURN false;
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.valid_utf8(text) TO PUBLIC;

CREATE ROLE regress_utf8_admin LOGIN IN ROLE celerysalt_admin;
GRANT CREATE ON SCHEMA public TO regress_utf8_admin;
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_utf8_admin';
SET SESSION AUTHORIZATION regress_utf8_admin;

-- 2-, 3- and 4-byte characters (U+00E9, U+20AC, U+1F600), placed so that
-- byte 76 of the JSON rendering falls inside a character.
CREATE TEMP TABLE v AS
SELECT repeat(chr(233), 40) AS e2, repeat(chr(8364), 40) AS e3, 'x' || repeat(chr(128512), 40) AS e4;

SELECT celerysalt_register_schema('regress.utf8', jsonb_build_object(
    'type', 'object',
    'properties', jsonb_build_object(
        'a', jsonb_build_object('type', 'string', 'enum', jsonb_build_array(e2, e3)),
        'b', jsonb_build_object('type', 'string', 'default', e4),
        'c', jsonb_build_object('const', e3))))->'created' AS created
  FROM v;

-- Every description of a change of a long value: shortened, valid.
CREATE TEMP TABLE changes AS
SELECT c.path, c.change, c.description
  FROM v, celerysalt_check_compatibility('regress.utf8', jsonb_build_object(
    'type', 'object',
    'properties', jsonb_build_object(
        'a', jsonb_build_object('type', 'string', 'enum', jsonb_build_array(e3, e4)),
        'b', jsonb_build_object('type', 'string', 'default', e2 || 'x'),
        'c', jsonb_build_object('const', e4)))) c;
SELECT path, change, pg_temp.valid_utf8(description) AS valid, description
  FROM changes ORDER BY path, change;
SELECT bool_and(pg_temp.valid_utf8(description)) AS all_valid, count(*) > 0 AS some FROM changes;

-- The same texts in the detail of a refused registration.
SELECT t.state, pg_temp.valid_utf8(t.detail) AS detail_valid, t.detail LIKE '% ...%' AS shortened
  FROM v, pg_temp.try(format('SELECT celerysalt_register_schema(%L, %L::jsonb, version => %L)', 'regress.utf8',
    jsonb_build_object('type', 'object', 'properties', jsonb_build_object(
        'a', jsonb_build_object('type', 'string', 'enum', jsonb_build_array(e3)),
        'c', jsonb_build_object('const', e4))), 'v2')) t;

RESET SESSION AUTHORIZATION;
DROP OWNED BY regress_utf8_admin;
DROP ROLE regress_utf8_admin;
