-- JSON Schema validation: API, output format, errors with SQLSTATEs,
-- formats, hostile input.  (The official test suite runs in
-- test/t/010_jsonschema_suite.pl.)
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS celerysalt;
RESET client_min_messages;

-- errors are shown as SQLSTATE, message and detail (no source locations)
\i sql/include/try.sql

-- basics, integer accepts 1.0, numbers by value
SELECT celerysalt_validate('{"type": "integer"}', '1.0') AS int_1_0,
       celerysalt_validate('{"type": "integer"}', '1.5') AS int_1_5,
       celerysalt_validate('{"enum": [1, "a"]}', '1.00') AS enum_num,
       celerysalt_validate('{"const": {"a": [1]}}', '{"a": [1.0]}') AS const_deep,
       celerysalt_validate('true', 'null') AS true_schema,
       celerysalt_validate('false', 'null') AS false_schema;

-- multipleOf is exact
SELECT celerysalt_validate('{"multipleOf": 0.01}', '19.99') AS cents,
       celerysalt_validate('{"multipleOf": 0.1}', '0.3') AS tenth,
       celerysalt_validate('{"multipleOf": 3}', '1e308') AS huge;

-- (length counting in code points is covered by the official suite, which
-- runs in a UTF-8 database; this file stays ASCII for any server encoding)

-- $ref / $defs / anyOf with null (pydantic's Optional)
SELECT celerysalt_validate(s, '{"a": {"n": 1}}') AS ok,
       celerysalt_validate(s, '{"a": null}') AS null_ok,
       celerysalt_validate(s, '{"a": {"n": "x"}}') AS bad
  FROM (SELECT '{"$defs": {"A": {"type": "object", "properties": {"n": {"type": "integer"}}}},
                 "properties": {"a": {"anyOf": [{"$ref": "#/$defs/A"}, {"type": "null"}]}}}'::jsonb AS s) q;

-- draft-07 by $schema: items array + additionalItems, $ref overrides siblings
SELECT celerysalt_validate('{"$schema": "http://json-schema.org/draft-07/schema#",
                             "items": [{"type": "integer"}], "additionalItems": false}', '[1]') AS d7_ok,
       celerysalt_validate('{"$schema": "http://json-schema.org/draft-07/schema#",
                             "items": [{"type": "integer"}], "additionalItems": false}', '[1, 2]') AS d7_extra,
       celerysalt_validate('{"$schema": "http://json-schema.org/draft-07/schema#",
                             "definitions": {"i": {"type": "integer"}},
                             "$ref": "#/definitions/i", "maxLength": 0}', '1') AS d7_ref_siblings;

-- unevaluatedProperties sees through allOf
SELECT celerysalt_validate(s, '{"a": 1, "b": 2}') AS ok,
       celerysalt_validate(s, '{"a": 1, "b": 2, "c": 3}') AS extra
  FROM (SELECT '{"allOf": [{"properties": {"a": true}}], "properties": {"b": true},
                 "unevaluatedProperties": false}'::jsonb AS s) q;

-- formats: annotation by default, asserted on request
SELECT celerysalt_validate('{"format": "date"}', '"2021-02-29"') AS annotation,
       celerysalt_validate('{"format": "date"}', '"2021-02-29"', true) AS asserted;
SELECT f, v, celerysalt_validate(jsonb_build_object('format', f), to_jsonb(v), true) AS valid
  FROM (VALUES ('date-time', '1998-12-31T23:59:60Z'), ('date-time', '1998-12-31T22:59:60Z'),
               ('time', '08:30:06+01:00'), ('duration', 'P1DT2H'), ('duration', 'P1D2H'),
               ('email', 'joe.bloggs@example.com'), ('email', 'te..st@example.com'),
               ('uuid', '2EB8AA08-AA98-11EA-B4AA-73B441D16380'), ('uuid', '2eb8aa08aa98'),
               ('uri', 'http://example.com/a?b#c'), ('uri', '/relative'),
               ('uri-reference', '/relative'), ('ipv4', '192.168.0.1'), ('ipv4', '192.168.0.01'),
               ('ipv6', '::ffff:192.168.0.1'), ('ipv6', '1::2::3'),
               ('hostname', 'www.example.com'), ('hostname', '-bad.example'),
               ('regex', '^[a-z]+$'), ('regex', '(?i)abc'),
               ('json-pointer', '/a~1b'), ('json-pointer', '/a~2')) AS t(f, v);

-- output format: every failing location, JSON pointers with RFC 6901 escaping
SELECT jsonb_pretty(celerysalt_validation_errors(
  '{"type": "object", "required": ["id", "name"],
    "properties": {"id": {"type": "integer"}, "a/b~c": {"maximum": 3},
                   "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true}},
    "additionalProperties": false}',
  '{"id": "x", "a/b~c": 4, "tags": ["a", 1, "a"], "extra": true}'));
SELECT celerysalt_validation_errors('{"type": "string"}', '"ok"') AS none;
SELECT jsonb_pretty(celerysalt_validation_errors(
  '{"$defs": {"pos": {"type": "integer", "minimum": 1}},
    "properties": {"n": {"$ref": "#/$defs/pos"}, "o": {"oneOf": [{"type": "integer"}, {"type": "number"}]}}}',
  '{"n": 0, "o": 1}'));

-- schema validity
SELECT celerysalt_schema_is_valid('{"type": "string"}') AS valid,
       celerysalt_schema_is_valid('{"type": "strin"}') AS bad_type,
       celerysalt_schema_errors('{"type": "string"}') AS no_errors;
SELECT jsonb_pretty(celerysalt_schema_errors('{"properties": {"a": {"minLength": -1}}, "pattern": "(unclosed"}'));

-- a malformed schema is an error with SQLSTATE 22023 and a pointer in DETAIL
SELECT pg_temp.try_text($q$SELECT celerysalt_validate('{"properties": {"a": {"type": 5}}}', '{}')$q$);
SELECT pg_temp.try_text($q$SELECT celerysalt_validate('{"pattern": "(unclosed"}', '"x"')$q$);
SELECT pg_temp.try_text($q$SELECT celerysalt_validate('{"$ref": "#/$defs/missing"}', '1')$q$);
SELECT pg_temp.try_text($q$SELECT celerysalt_validate('{"$ref": "https://example.com/remote.json"}', '1')$q$);
SELECT pg_temp.try_text($q$SELECT celerysalt_validate('{"minLength": 1.5}', '"x"')$q$);
SELECT pg_temp.try_text($q$SELECT celerysalt_validate('{"$id": "#frag"}', '1')$q$);
SELECT pg_temp.try_text($q$SELECT celerysalt_validate('[1]', '1')$q$);
SELECT pg_temp.try_text($q$SELECT celerysalt_validation_errors('{"required": [1]}', '{}')$q$);
-- unsupported dialects are 0A000
SELECT pg_temp.try_text($q$SELECT celerysalt_validate('{"$schema": "http://json-schema.org/draft-04/schema#"}', '1')$q$);
-- a $ref cycle that never descends into the instance is detected (22023)
SELECT pg_temp.try_text($q$SELECT celerysalt_validate('{"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}', '1')$q$);
SELECT pg_temp.try_text($q$SELECT celerysalt_validate('{"anyOf": [{"$ref": "#"}]}', '1')$q$);
-- resources must be an object
SELECT pg_temp.try_text($q$SELECT celerysalt_validate('true', '1', false, '[]')$q$);
-- NULLs: the validators are strict; the error functions return NULL
SELECT celerysalt_validate(NULL, '1') IS NULL AS strict,
       celerysalt_validation_errors('true', NULL) IS NULL AS errors_null;
-- remote documents can be supplied explicitly
SELECT celerysalt_validate('{"$ref": "https://example.com/int.json"}', '1', false,
                           '{"https://example.com/int.json": {"type": "integer"}}') AS remote_ok,
       celerysalt_validate('{"$ref": "https://example.com/int.json"}', '"x"', false,
                           '{"https://example.com/int.json": {"type": "integer"}}') AS remote_bad;
-- the metaschema itself is available
SELECT celerysalt_validate('{"$ref": "https://json-schema.org/draft/2020-12/schema"}', '{"type": 1}') AS meta;

-- hostile input: large arrays, deep nesting, legitimate recursion
SELECT celerysalt_validate('{"uniqueItems": true}', (SELECT jsonb_agg(i) FROM generate_series(1, 100000) i)) AS unique_100k,
       celerysalt_validate('{"uniqueItems": true}', (SELECT jsonb_agg(i % 99999) FROM generate_series(1, 100000) i)) AS dup_100k;
SELECT celerysalt_validate('{"$defs": {"t": {"type": "array", "items": {"$ref": "#/$defs/t"}}}, "$ref": "#/$defs/t"}',
                           (repeat('[', 500) || repeat(']', 500))::jsonb) AS deep_500;
SET statement_timeout = '200ms';
SELECT celerysalt_validate('{"pattern": "^(a|a)*$"}', to_jsonb(repeat('a', 30) || 'b')) AS pathological_regex;
RESET statement_timeout;
-- the same constant schema across a scan (fn_extra path) and a varying one
SELECT count(*) FILTER (WHERE celerysalt_validate('{"type": "integer", "minimum": 10}', to_jsonb(i))) AS const_schema,
       count(*) FILTER (WHERE celerysalt_validate(jsonb_build_object('maximum', i % 7), to_jsonb(i % 5))) AS varying_schema
  FROM generate_series(1, 1000) i;

-- The boolean fast path keeps the matching of an object's keys per key
-- sequence (up to 4 per subschema) and settles scalar members by their jsonb
-- kind: same answers as the error walk, for more key sequences than it keeps,
-- for a recursive model whose nested objects differ from the outer one, and
-- for nullable (anyOf) scalars.
CREATE TEMP TABLE layout_cases AS
WITH s(schema) AS (VALUES ('{
  "type": "object",
  "properties": {
    "a": {"type": "integer", "minimum": 0},
    "b": {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}]},
    "c": {"type": "boolean"},
    "d": {"$ref": "#"},
    "e": {"enum": ["x", 1, null]},
    "f": {"anyOf": [{"type": "string"}, {"type": "integer", "maximum": 5}]}
  },
  "required": ["a"],
  "additionalProperties": {"type": "number"}
}'::jsonb))
SELECT s.schema, i.t::jsonb AS inst
  FROM s, (VALUES
    ('{"a": 1}'), ('{"a": -1}'), ('{"a": 1.5}'), ('{"b": null}'), ('{"a": 1, "b": "abc"}'),
    ('{"a": 1, "b": "abcd"}'), ('{"a": 1, "b": 7}'), ('{"a": 1, "c": true}'), ('{"a": 1, "c": "true"}'),
    ('{"a": 1, "zz": 2.5}'), ('{"a": 1, "zz": "2.5"}'), ('{"a": 1, "e": null}'), ('{"a": 1, "e": "y"}'),
    ('{"a": 1, "e": 1.0}'), ('{"a": 1, "f": "s"}'), ('{"a": 1, "f": 6}'), ('{"a": 1, "f": 5}'),
    ('{"a": 1, "f": []}'), ('{"a": 1, "d": {"a": 2}}'), ('{"a": 1, "d": {"b": "x"}}'),
    ('{"a": 1, "d": {"a": 2, "d": {"a": 3, "c": false}}}'), ('{"a": 1, "d": {"a": 2, "d": {"a": -3}}}'),
    ('{"a": 1, "d": {"a": 2, "d": {"a": 3, "zz": {}}}}'), ('{"a": 1, "d": []}')
  ) AS i(t);
SELECT inst, celerysalt_validate(schema, inst) AS valid,
       celerysalt_validate(schema, inst) = (celerysalt_validation_errors(schema, inst) = '[]') AS agrees
  FROM layout_cases;
-- the same rows again: now every key sequence meets a kept or a full layout list
SELECT count(*) FILTER (WHERE celerysalt_validate(schema, inst)) AS valid,
       bool_and(celerysalt_validate(schema, inst) = (celerysalt_validation_errors(schema, inst) = '[]')) AS all_agree
  FROM layout_cases;
