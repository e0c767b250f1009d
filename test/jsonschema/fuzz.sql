-- Randomized JSON Schema test: random schemas (valid and malformed) against
-- random instances.  Checks, for every pair, that nothing crashes, that a
-- malformed schema fails only with the documented SQLSTATEs (22023, 0A000,
-- 54001), and that celerysalt_validate() agrees with
-- celerysalt_validation_errors() (valid <=> no errors).
--
--   psql -v seed=0.5 -v iterations=3000 -f test/jsonschema/fuzz.sql
-- Run under an AddressSanitizer build: see docs/jsonschema.md.
\set ON_ERROR_STOP 1
SELECT setseed(:seed);
SELECT set_config('fuzz.iterations', :'iterations', false);

CREATE TEMP TABLE fuzz_result (kind text, detail text);

CREATE FUNCTION pg_temp.rnd_value(depth int) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE r float8 := random();
BEGIN
    IF depth > 3 OR r < 0.45 THEN
        RETURN (ARRAY['null', 'true', 'false', '0', '1', '1.0', '-7', '2.5', '1e30', '""', '"a"',
                      '"abc"', '"2020-01-01"', '"a/b~c"', '"x@y.z"', '"12345"', '"::1"',
                      '"http://e.com/"', '"ABC-1234"'])[1 + floor(random() * 19)::int]::jsonb;
    ELSIF r < 0.7 THEN
        RETURN (SELECT coalesce(jsonb_agg(pg_temp.rnd_value(depth + 1)), '[]')
                  FROM generate_series(1, floor(random() * 4)::int));
    ELSE
        RETURN (SELECT coalesce(jsonb_object_agg((ARRAY['a', 'b', 'c', 'a/b', 'id', ''])[1 + floor(random() * 6)::int],
                                                 pg_temp.rnd_value(depth + 1)), '{}')
                  FROM generate_series(1, floor(random() * 4)::int));
    END IF;
END $$;

CREATE FUNCTION pg_temp.rnd_schema(depth int) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    s jsonb := '{}';
    k text;
    n int := floor(random() * 4)::int;
BEGIN
    IF depth > 3 OR random() < 0.1 THEN
        RETURN to_jsonb(random() < 0.8);
    END IF;
    FOR i IN 1..n LOOP
        k := (ARRAY['type', 'enum', 'const', 'minimum', 'maximum', 'exclusiveMinimum', 'multipleOf',
                    'minLength', 'maxLength', 'pattern', 'format', 'items', 'prefixItems', 'contains',
                    'minContains', 'maxContains', 'uniqueItems', 'minItems', 'properties', 'required',
                    'additionalProperties', 'patternProperties', 'propertyNames', 'dependentRequired',
                    'dependentSchemas', 'allOf', 'anyOf', 'oneOf', 'not', 'if', 'then', 'else',
                    'unevaluatedProperties', 'unevaluatedItems', '$ref', '$defs', '$anchor',
                    'garbage', '$dynamicRef', '$dynamicAnchor', '$id', 'maxProperties',
                    'exclusiveMaximum', 'maxItems', 'dependencies', 'additionalItems'])[1 + floor(random() * 46)::int];
        s := s || jsonb_build_object(k, CASE k
            WHEN 'type' THEN to_jsonb((ARRAY['string', 'integer', 'number', 'object', 'array', 'null', 'boolean', 'strin'])[1 + floor(random() * 8)::int])
            WHEN 'enum' THEN (SELECT jsonb_agg(pg_temp.rnd_value(3)) FROM generate_series(1, 3))
            WHEN 'const' THEN pg_temp.rnd_value(2)
            WHEN 'multipleOf' THEN (ARRAY['0.5', '3', '0', '"x"'])[1 + floor(random() * 4)::int]::jsonb
            WHEN 'pattern' THEN to_jsonb((ARRAY['^a', 'b+$', '^[0-9]{5}$', '(', '\\d', '^(a|b)*$', '\\p{L}', '[^]'])[1 + floor(random() * 8)::int])
            WHEN 'format' THEN to_jsonb((ARRAY['date', 'email', 'uri', 'ipv6', 'regex', 'unknown'])[1 + floor(random() * 6)::int])
            WHEN 'uniqueItems' THEN to_jsonb(random() < 0.7)
            WHEN 'required' THEN (ARRAY['["a"]', '["a", "b"]', '[]', '[1]'])[1 + floor(random() * 4)::int]::jsonb
            WHEN 'dependentRequired' THEN '{"a": ["b"]}'
            WHEN 'items' THEN pg_temp.rnd_schema(depth + 1)
            WHEN 'prefixItems' THEN jsonb_build_array(pg_temp.rnd_schema(depth + 1), pg_temp.rnd_schema(depth + 1))
            WHEN 'properties' THEN jsonb_build_object('a', pg_temp.rnd_schema(depth + 1), 'a/b', pg_temp.rnd_schema(depth + 1))
            WHEN 'patternProperties' THEN jsonb_build_object('^a', pg_temp.rnd_schema(depth + 1))
            WHEN 'dependentSchemas' THEN jsonb_build_object('a', pg_temp.rnd_schema(depth + 1))
            WHEN 'allOf' THEN jsonb_build_array(pg_temp.rnd_schema(depth + 1), pg_temp.rnd_schema(depth + 1))
            WHEN 'anyOf' THEN jsonb_build_array(pg_temp.rnd_schema(depth + 1), pg_temp.rnd_schema(depth + 1))
            WHEN 'oneOf' THEN jsonb_build_array(pg_temp.rnd_schema(depth + 1), pg_temp.rnd_schema(depth + 1))
            WHEN '$ref' THEN to_jsonb((ARRAY['#', '#/$defs/x', '#/$defs/missing', '#anc', 'http://nowhere/x'])[1 + floor(random() * 5)::int])
            WHEN '$defs' THEN jsonb_build_object('x', pg_temp.rnd_schema(depth + 1))
            WHEN '$anchor' THEN '"anc"'
            WHEN '$dynamicAnchor' THEN '"anc"'
            WHEN '$dynamicRef' THEN to_jsonb((ARRAY['#anc', '#/$defs/x', '#', '#nope'])[1 + floor(random() * 4)::int])
            WHEN '$id' THEN to_jsonb((ARRAY['http://example.com/s', 'sub/', '#frag', 'urn:x:y'])[1 + floor(random() * 4)::int])
            WHEN 'dependencies' THEN CASE WHEN random() < 0.5 THEN '{"a": ["b"]}' ELSE jsonb_build_object('a', pg_temp.rnd_schema(depth + 1)) END
            WHEN 'garbage' THEN pg_temp.rnd_value(1)
            WHEN 'minLength' THEN (ARRAY['0', '2', '-1', '1.5'])[1 + floor(random() * 4)::int]::jsonb
            WHEN 'minimum' THEN (ARRAY['0', '2.5', '"x"'])[1 + floor(random() * 3)::int]::jsonb
            ELSE CASE WHEN random() < 0.5 THEN pg_temp.rnd_schema(depth + 1) ELSE to_jsonb(floor(random() * 3)::int) END
        END);
    END LOOP;
    RETURN s;
END $$;

DO $$
DECLARE
    s jsonb; x jsonb; v bool; e jsonb; se jsonb;
    st text; msg text;
    n_ok int := 0; n_schema_err int := 0;
BEGIN
    FOR i IN 1..current_setting('fuzz.iterations')::int LOOP
        s := pg_temp.rnd_schema(0);
        IF jsonb_typeof(s) = 'object' AND random() < 0.15 THEN
            s := s || '{"$schema": "http://json-schema.org/draft-07/schema#"}';
        END IF;
        x := pg_temp.rnd_value(0);
        BEGIN
            v := celerysalt_validate(s, x, random() < 0.5);
            e := celerysalt_validation_errors(s, x);
            IF v <> (e = '[]'::jsonb) AND NOT (s::text ~ '"format"') THEN
                INSERT INTO fuzz_result VALUES ('mismatch', format('schema %s instance %s: validate %s errors %s', s, x, v, e));
            END IF;
            n_ok := n_ok + 1;
        EXCEPTION WHEN others THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
            IF st NOT IN ('22023', '0A000', '54001') THEN
                INSERT INTO fuzz_result VALUES ('sqlstate', format('%s %s: schema %s instance %s', st, msg, s, x));
            END IF;
            n_schema_err := n_schema_err + 1;
        END;
        -- a schema the validators accept must not crash schema_errors either
        se := celerysalt_schema_errors(s);
    END LOOP;
    INSERT INTO fuzz_result VALUES ('summary', format('%s pairs validated, %s malformed schemas rejected', n_ok, n_schema_err));
END $$;

SELECT kind, detail FROM fuzz_result ORDER BY kind = 'summary', kind;
