-- JSON Schema validator limits: the regex fast path agrees with ECMA-262
-- and PostgreSQL's ~, celerysalt.validation_work_limit stops exponential
-- schemas with 54000 naming the schema location.  Run as a role without
-- any celerysalt role (the validator functions are open to PUBLIC).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS celerysalt;
DROP ROLE IF EXISTS regress_js_limits;
CREATE ROLE regress_js_limits;
RESET client_min_messages;

-- errors are shown as SQLSTATE, message, detail and hint
\i sql/include/try.sql

-- 40 levels of {"anyOf": [{"$ref": next}, {"$ref": next}]}: 2^40 paths
CREATE FUNCTION pg_temp.nested_schema(levels int) RETURNS jsonb LANGUAGE sql AS $$
  SELECT jsonb_build_object('$ref', '#/$defs/n0', '$defs',
    jsonb_object_agg('n' || i, CASE WHEN i = levels THEN '{"type": "string"}'::jsonb
      ELSE jsonb_build_object('anyOf', jsonb_build_array(
             jsonb_build_object('$ref', '#/$defs/n' || (i + 1)),
             jsonb_build_object('$ref', '#/$defs/n' || (i + 1)))) END))
  FROM generate_series(0, levels) i $$;

SET ROLE regress_js_limits;

-- the regex fast path: an optional atom before the last one does not make
-- the greedy atom before it take too much (ECMA and ~ both accept these)
SELECT p, s, celerysalt_validate(jsonb_build_object('pattern', p), to_jsonb(s)) AS pattern_keyword,
       s ~ p AS postgres
  FROM (VALUES ('^a*b?a$', 'aa'), ('^[0-9]*-?[0-9]$', '12'), ('^x*y*x$', 'xx'),
               ('^a*b?a$', 'ab'), ('^[0-9]*-?[0-9]$', '1-'), ('^x*y*x$', 'xyx'),
               ('a{2,3}b?a', 'caab'), ('a{2,3}b?a', 'caaba'), ('^\d+\.\d{2}$', '12.50'),
               ('^[^a]+$', 'bcd'), ('^\W\D$', '-x'), ('^a.c$', 'abc'), ('x+$', 'axxb')) AS t(p, s);

-- patternProperties use the same matcher
SELECT celerysalt_validate('{"patternProperties": {"^x*y*x$": {"type": "integer"}}}', '{"xx": "no"}') AS pp_checked,
       celerysalt_validate('{"patternProperties": {"^x*y*x$": {"type": "integer"}}}', '{"xyz": "no"}') AS pp_not_matched;

-- linear in the string: 10^6 characters unanchored, and a long match
SELECT celerysalt_validate('{"pattern": "a*b"}', to_jsonb(repeat('a', 1000000))) AS no_b,
       celerysalt_validate('{"pattern": "a*b"}', to_jsonb(repeat('a', 1000000) || 'b')) AS b_at_end,
       celerysalt_validate('{"pattern": "^(?:a|b)*c$"}', to_jsonb(repeat('ab', 500000))) AS engine_path;

-- the work limit can only be changed by a superuser (or a GRANT SET)
SELECT pg_temp.try_text($$SET celerysalt.validation_work_limit = 2000000000$$);
SELECT pg_temp.try_text($$SET celerysalt.validation_work_limit = 1000$$);
SHOW celerysalt.validation_work_limit;

RESET ROLE;
SET celerysalt.validation_work_limit = 10000;
SET ROLE regress_js_limits;

-- an exponential schema stops with 54000 and the schema location, from
-- every entry point of the validator
SELECT pg_temp.try_text($$SELECT celerysalt_validate(pg_temp.nested_schema(40), '1')$$);
SELECT pg_temp.try_text($$SELECT celerysalt_validation_errors(pg_temp.nested_schema(40), '1')$$);
SELECT pg_temp.try_text($$SELECT celerysalt_validate(pg_temp.nested_schema(40), '1', true,
                                                '{"urn:x": {"type": "null"}}')$$);
-- the same fan-out through properties + patternProperties, without in-place applicators
SELECT pg_temp.try_text($$SELECT celerysalt_validate(
    '{"$defs": {"N": {"properties": {"a": {"$ref": "#/$defs/N"}},
                      "patternProperties": {"^a$": {"$ref": "#/$defs/N"}}, "type": "object"}},
      "$ref": "#/$defs/N"}',
    (SELECT repeat('{"a": ', 30) || '{}' || repeat('}', 30))::jsonb)$$);
-- a shallow one stays well below the limit
SELECT celerysalt_validate(pg_temp.nested_schema(8), '1') AS depth_8_int,
       celerysalt_validate(pg_temp.nested_schema(8), '"s"') AS depth_8_string;

-- compilation counts its steps too: 3000 resources compared in a list
SELECT pg_temp.try_text($$SELECT celerysalt_validate(
    (SELECT jsonb_build_object('$defs', jsonb_object_agg('d' || i, jsonb_build_object('$id', 'urn:d' || i)))
       FROM generate_series(1, 3000) i), '1')$$);
SELECT pg_temp.try_text($$SELECT celerysalt_schema_is_valid(
    (SELECT jsonb_build_object('$defs', jsonb_object_agg('d' || i, jsonb_build_object('$id', 'urn:d' || i)))
       FROM generate_series(1, 3000) i))$$);

RESET ROLE;
RESET celerysalt.validation_work_limit;
SET ROLE regress_js_limits;
SELECT celerysalt_validate(
    (SELECT jsonb_build_object('$defs', jsonb_object_agg('d' || i, jsonb_build_object('$id', 'urn:d' || i)))
       FROM generate_series(1, 3000) i), '1') AS many_resources_default_limit;

-- cancel reaches a validation in progress (statement_timeout: 57014)
SET statement_timeout = '300ms';
DO $$
BEGIN
    PERFORM celerysalt_validate(pg_temp.nested_schema(40), '1');
EXCEPTION WHEN query_canceled THEN
    RAISE NOTICE 'canceled with SQLSTATE %', SQLSTATE;
END $$;
RESET statement_timeout;

RESET ROLE;
DROP ROLE regress_js_limits;
