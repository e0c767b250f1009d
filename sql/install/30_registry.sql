-- celerysalt install script, part 30: schema registry: roles, tables, the C
-- helpers, hints and reading schemas (docs/registry.md).
-- C side: src/registry.c (validate on publish, cache, counters), src/schema_diff.c
-- (compatibility rules).

-- ------------------------------------------------------------------ roles
-- Roles are cluster-wide: created by the first database that installs the
-- extension, reused by the others, left in place by DROP EXTENSION.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'celerysalt_reader') THEN
        CREATE ROLE celerysalt_reader NOLOGIN;
        COMMENT ON ROLE celerysalt_reader IS
            'celerysalt: reads the schema registry, its catalog views and the delivery status.';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'celerysalt_publisher') THEN
        CREATE ROLE celerysalt_publisher NOLOGIN;
        COMMENT ON ROLE celerysalt_publisher IS
            'celerysalt: publishes events and tracks publishers and subscribers; includes celerysalt_reader.';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'celerysalt_admin') THEN
        CREATE ROLE celerysalt_admin NOLOGIN;
        COMMENT ON ROLE celerysalt_admin IS
            'celerysalt: registers and deprecates schemas, sets compatibility modes, replays events; includes celerysalt_publisher.';
    END IF;
    IF NOT pg_catalog.pg_has_role('celerysalt_publisher', 'celerysalt_reader', 'MEMBER') THEN
        GRANT celerysalt_reader TO celerysalt_publisher;
    END IF;
    IF NOT pg_catalog.pg_has_role('celerysalt_admin', 'celerysalt_publisher', 'MEMBER') THEN
        GRANT celerysalt_publisher TO celerysalt_admin;
    END IF;
END
$roles$;

-- ----------------------------------------------------------------- tables
CREATE TABLE celerysalt_topics (
    topic           text        PRIMARY KEY,
    compatibility   text        NOT NULL DEFAULT 'BACKWARD'
                    CHECK (compatibility IN ('NONE', 'BACKWARD', 'BACKWARD_TRANSITIVE',
                                             'FORWARD', 'FORWARD_TRANSITIVE',
                                             'FULL', 'FULL_TRANSITIVE')),
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_by      text        NOT NULL DEFAULT CURRENT_USER
);
COMMENT ON TABLE celerysalt_topics IS
    'One row per registered topic: its compatibility mode (default BACKWARD), enforced when a new version is registered.';

CREATE TABLE celerysalt_schemas (
    id                  bigserial   PRIMARY KEY,
    topic               text        NOT NULL REFERENCES celerysalt_topics (topic),
    version             text        NOT NULL,
    mode                text        NOT NULL DEFAULT 'broadcast' CHECK (mode IN ('broadcast', 'rpc')),
    schema              jsonb       NOT NULL,
    response_schema     jsonb,
    error_schema        jsonb,
    description         text,
    publisher_service   text,
    publisher_module    text,
    publisher_class     text,
    publisher_version   text,
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by          text        NOT NULL DEFAULT CURRENT_USER,
    active              boolean     NOT NULL DEFAULT true,
    deprecated_at       timestamptz,
    deprecated_reason   text,
    property_order      jsonb,
    UNIQUE (topic, version),
    CHECK ((deprecated_at IS NULL) = (deprecated_reason IS NULL))
);
CREATE INDEX celerysalt_schemas_active ON celerysalt_schemas (topic) WHERE active;
COMMENT ON TABLE celerysalt_schemas IS
    'Registered event schemas, one row per (topic, version), stored exactly as registered (pydantic model_json_schema() output). First writer wins.';
COMMENT ON COLUMN celerysalt_schemas.property_order IS
    'The declaration order of properties, which jsonb does not keep: {"schema"|"response_schema"|"error_schema": {JSON pointer: [names]}}, from celerysalt_register_property_order; NULL when not given.';

CREATE TABLE celerysalt_schema_fields (
    schema_id       bigint      NOT NULL REFERENCES celerysalt_schemas (id) ON DELETE CASCADE,
    path            text        NOT NULL,
    name            text        NOT NULL,
    type            text        NOT NULL,
    required        boolean     NOT NULL,
    nullable        boolean     NOT NULL,
    format          text,
    description     text,
    default_value   jsonb,
    PRIMARY KEY (schema_id, path)
);
COMMENT ON TABLE celerysalt_schema_fields IS
    'The fields of each registered schema, nested models included (path "addr.city", array items "lines[].sku"); filled at registration.';

CREATE TABLE celerysalt_publishers (
    topic           text        NOT NULL,
    service         text        NOT NULL,
    service_version text,
    module          text,
    class           text,
    registered_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_seen_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (topic, service)
);
COMMENT ON TABLE celerysalt_publishers IS
    'Services that declared they publish a topic (celerysalt_track_publisher, or publisher_service at registration).';

CREATE TABLE celerysalt_subscribers (
    topic           text        NOT NULL,
    service         text        NOT NULL,
    handler         text        NOT NULL,
    registered_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    last_seen_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    queue           text,
    PRIMARY KEY (topic, service, handler)
);
COMMENT ON TABLE celerysalt_subscribers IS
    'Handlers subscribed to a topic (or a wildcard pattern), as reported by celerysalt_track_subscriber.';

-- Append-only: every committing transaction that published adds one row per
-- (topic, service); nobody updates a shared row.  celerysalt_catalog sums
-- them, celerysalt_registry_compact() folds them.
CREATE TABLE _celerysalt_publish_stats (
    topic               text        NOT NULL,
    service             text        NOT NULL,
    published           bigint      NOT NULL,
    first_published_at  timestamptz NOT NULL,
    last_published_at   timestamptz NOT NULL
);
CREATE INDEX _celerysalt_publish_stats_topic ON _celerysalt_publish_stats (topic, service);

SELECT pg_catalog.pg_extension_config_dump('celerysalt_topics', '');
SELECT pg_catalog.pg_extension_config_dump('celerysalt_schemas', '');
SELECT pg_catalog.pg_extension_config_dump('celerysalt_schemas_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('celerysalt_schema_fields', '');
SELECT pg_catalog.pg_extension_config_dump('celerysalt_publishers', '');
SELECT pg_catalog.pg_extension_config_dump('celerysalt_subscribers', '');
SELECT pg_catalog.pg_extension_config_dump('_celerysalt_publish_stats', '');

-- Every change to the registry invalidates the publish validator's cache in
-- every backend (at commit).
CREATE FUNCTION _celerysalt_registry_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', '_celerysalt_registry_changed'
LANGUAGE C;

CREATE TRIGGER _celerysalt_schemas_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON celerysalt_schemas
    FOR EACH STATEMENT EXECUTE FUNCTION _celerysalt_registry_changed();

-- ---------------------------------------------------------- C helpers
CREATE FUNCTION _celerysalt_check_names(topic text, version text)
RETURNS void
AS 'MODULE_PATHNAME', '_celerysalt_check_names'
LANGUAGE C STABLE;

CREATE FUNCTION _celerysalt_schema_first_difference(registered jsonb, given jsonb,
    OUT path text, OUT registered_value jsonb, OUT given_value jsonb)
AS 'MODULE_PATHNAME', '_celerysalt_schema_first_difference'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION _celerysalt_schema_diff(old jsonb, new jsonb)
RETURNS TABLE (path text, schema_path text, change text, old_value jsonb, new_value jsonb,
               backward boolean, forward boolean, description text)
AS 'MODULE_PATHNAME', '_celerysalt_schema_diff'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- celery-salt's compare_versions as a sort key: strip, drop one leading v/V,
-- split on '.', integers, missing parts = 0 (so trailing zeros are dropped),
-- any non-integer part makes the key empty.  v2 < v10, v1.2 < v1.10, v1 = v1.0.
CREATE FUNCTION _celerysalt_version_key(version text)
RETURNS numeric[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN p ~ '^[0-9]+(\.[0-9]+)*$' THEN
            (SELECT coalesce(array_agg(x::numeric ORDER BY i), '{}')
               FROM unnest(string_to_array(p, '.')) WITH ORDINALITY u(x, i)
              WHERE i <= (SELECT coalesce(max(j), 0)
                            FROM unnest(string_to_array(p, '.')) WITH ORDINALITY w(y, j)
                           WHERE y::numeric <> 0))
        ELSE '{}'::numeric[]
    END
    FROM (SELECT regexp_replace(btrim(version), '^[vV]', '') AS p) s
$$;

-- --------------------------------------------------------------- hints
CREATE FUNCTION _celerysalt_topics_hint()
RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN count(*) = 0 THEN 'No schema is registered yet.'
                ELSE 'Registered topics: '
                     || string_agg(topic, ', ' ORDER BY topic) FILTER (WHERE n <= 20)
                     || CASE WHEN count(*) > 20 THEN format(' and %s more', count(*) - 20) ELSE '' END
                     || '.'
           END
      FROM (SELECT t.topic, row_number() OVER (ORDER BY t.topic) AS n
              FROM (SELECT DISTINCT c.topic FROM @extschema@.celerysalt_schemas c WHERE c.active) t) s
$$;

-- Raise 42704 for an unknown topic or version, with a hint naming what exists.
CREATE FUNCTION _celerysalt_raise_unknown(topic text, version text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    known text;
BEGIN
    SELECT string_agg(c.version, ', ' ORDER BY @extschema@._celerysalt_version_key(c.version), c.id)
      INTO known
      FROM @extschema@.celerysalt_schemas c WHERE c.topic = topic AND c.active;
    IF known IS NULL THEN
        RAISE EXCEPTION 'topic "%" has no registered schema', topic
            USING ERRCODE = 'undefined_object', HINT = @extschema@._celerysalt_topics_hint();
    END IF;
    RAISE EXCEPTION 'topic "%" has no registered schema version "%"', topic, version
        USING ERRCODE = 'undefined_object', HINT = format('Registered versions: %s.', known);
END
$$;

-- ------------------------------------------------------------- reading
CREATE FUNCTION celerysalt_get_schema(topic text, version text DEFAULT 'latest')
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    result jsonb;
BEGIN
    IF version IS NULL OR version = 'latest' THEN
        SELECT c.schema INTO result
          FROM @extschema@.celerysalt_schemas c
         WHERE c.topic = topic AND c.active
         ORDER BY @extschema@._celerysalt_version_key(c.version) DESC, c.id
         LIMIT 1;
    ELSE
        SELECT c.schema INTO result
          FROM @extschema@.celerysalt_schemas c
         WHERE c.topic = topic AND c.version = version AND c.active;
    END IF;
    IF result IS NULL THEN
        PERFORM @extschema@._celerysalt_raise_unknown(topic, version);
    END IF;
    RETURN result;
END
$$;
COMMENT ON FUNCTION celerysalt_get_schema(text, text) IS
    'The JSON Schema registered for (topic, version); "latest" is the highest version in celery-salt''s order (v2 < v10, v1.2 < v1.10).';

CREATE FUNCTION celerysalt_validate_event(topic text, payload jsonb, version text DEFAULT 'latest')
RETURNS boolean
AS 'MODULE_PATHNAME', 'celerysalt_validate_event'
LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION celerysalt_validate_event(text, jsonb, text) IS
    'True if payload is valid against the registered schema of (topic, version), formats asserted (date and time formats as celerysalt.format_dialect says), as celerysalt_publish checks it; usable in CHECK constraints.';

CREATE FUNCTION celerysalt_event_errors(topic text, payload jsonb, version text DEFAULT 'latest')
RETURNS jsonb
AS 'MODULE_PATHNAME', 'celerysalt_event_errors'
LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION celerysalt_event_errors(text, jsonb, text) IS
    'Why payload is invalid against the registered schema of (topic, version), checked as celerysalt_publish checks it: [] when valid, else [{path, schema_path, keyword, message}].';
