-- JSON Schema validation (draft 2020-12 and draft-07), src/jsonschema*.c.
-- See docs/jsonschema.md.

CREATE FUNCTION celerysalt_validate(schema pg_catalog.jsonb, instance pg_catalog.jsonb)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'celerysalt_validate'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION celerysalt_validate(pg_catalog.jsonb, pg_catalog.jsonb) IS
'True if instance is valid against the JSON Schema (draft 2020-12 or draft-07); "format" is an annotation only';

CREATE FUNCTION celerysalt_validate(schema pg_catalog.jsonb, instance pg_catalog.jsonb,
                                    assert_formats pg_catalog.bool)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'celerysalt_validate'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION celerysalt_validate(pg_catalog.jsonb, pg_catalog.jsonb, pg_catalog.bool) IS
'True if instance is valid against the JSON Schema; "format" is asserted when assert_formats is true';

CREATE FUNCTION celerysalt_validate(schema pg_catalog.jsonb, instance pg_catalog.jsonb,
                                    assert_formats pg_catalog.bool, resources pg_catalog.jsonb)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'celerysalt_validate'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION celerysalt_validate(pg_catalog.jsonb, pg_catalog.jsonb, pg_catalog.bool, pg_catalog.jsonb) IS
'True if instance is valid against the JSON Schema; resources maps URIs to extra schema documents that $ref may use';

CREATE FUNCTION celerysalt_validation_errors(schema pg_catalog.jsonb, instance pg_catalog.jsonb,
                                             assert_formats pg_catalog.bool DEFAULT false,
                                             resources pg_catalog.jsonb DEFAULT NULL)
RETURNS pg_catalog.jsonb
AS 'MODULE_PATHNAME', 'celerysalt_validation_errors'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION celerysalt_validation_errors(pg_catalog.jsonb, pg_catalog.jsonb, pg_catalog.bool, pg_catalog.jsonb) IS
'Validation errors of instance against the JSON Schema: [] when valid, else [{path, schema_path, keyword, message}]';

CREATE FUNCTION celerysalt_schema_errors(schema pg_catalog.jsonb,
                                         resources pg_catalog.jsonb DEFAULT NULL)
RETURNS pg_catalog.jsonb
AS 'MODULE_PATHNAME', 'celerysalt_schema_errors'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION celerysalt_schema_errors(pg_catalog.jsonb, pg_catalog.jsonb) IS
'Problems of a JSON Schema: [] when it is valid, else [{schema_path, message}]';

CREATE FUNCTION celerysalt_schema_is_valid(schema pg_catalog.jsonb,
                                           resources pg_catalog.jsonb DEFAULT NULL)
RETURNS pg_catalog.bool
AS 'MODULE_PATHNAME', 'celerysalt_schema_is_valid'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION celerysalt_schema_is_valid(pg_catalog.jsonb, pg_catalog.jsonb) IS
'True if the JSON Schema is valid (against its metaschema, with compilable patterns and resolvable references)';
