-- celerysalt install script, part 00: outbox, delivery log, dead letters, status.
\echo Use "CREATE EXTENSION celerysalt" to load this file. \quit

-- ---------------------------------------------------------------- outbox
-- Enqueue order.  CACHE 1 keeps ids in the order events were enqueued.
CREATE SEQUENCE _celerysalt_event_seq;

-- Events waiting for delivery.  Partitioned into rotating slots: the worker
-- moves publishers to a clean partition every celerysalt.outbox_rotation and
-- truncates drained ones, so deleted rows never accumulate.
CREATE TABLE _celerysalt_outbox (
    slot            smallint    NOT NULL,
    event_id        bigint      NOT NULL,
    id              uuid        NOT NULL,
    topic           text        NOT NULL,
    payload         jsonb       NOT NULL,
    version         text,
    correlation_id  text,
    enqueued_at     timestamptz NOT NULL
) PARTITION BY LIST (slot);
-- Autovacuum is off: the worker truncates drained partitions, and a
-- VACUUM holding its lock would only postpone that.
CREATE TABLE _celerysalt_outbox_0 PARTITION OF _celerysalt_outbox FOR VALUES IN (0)
    WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE TABLE _celerysalt_outbox_1 PARTITION OF _celerysalt_outbox FOR VALUES IN (1)
    WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE TABLE _celerysalt_outbox_2 PARTITION OF _celerysalt_outbox FOR VALUES IN (2)
    WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE INDEX _celerysalt_outbox_event_id ON _celerysalt_outbox (event_id);

-- ----------------------------------------------------- delivered events
CREATE TABLE celerysalt_events (
    id              uuid        PRIMARY KEY,
    event_id        bigint      NOT NULL,
    topic           text        NOT NULL,
    version         text,
    correlation_id  text,
    payload         jsonb       NOT NULL,
    enqueued_at     timestamptz NOT NULL,
    delivered_at    timestamptz NOT NULL,
    size            integer     NOT NULL
);
CREATE INDEX celerysalt_events_delivered_at ON celerysalt_events (delivered_at);
COMMENT ON TABLE celerysalt_events IS
    'Events confirmed by the broker, kept for celerysalt.delivered_retention; replay them with celerysalt_replay.';

-- ------------------------------------------------------------ dead letters
CREATE TABLE celerysalt_dead_letters (
    id              uuid        PRIMARY KEY,
    event_id        bigint      NOT NULL,
    topic           text        NOT NULL,
    version         text,
    correlation_id  text,
    payload         jsonb       NOT NULL,
    enqueued_at     timestamptz NOT NULL,
    failed_at       timestamptz NOT NULL,
    reason          text        NOT NULL
);
COMMENT ON TABLE celerysalt_dead_letters IS
    'Events the broker refused for good, with the reason; requeue them with celerysalt_dead_letter_retry.';

SELECT pg_catalog.pg_extension_config_dump('_celerysalt_outbox_0', '');
SELECT pg_catalog.pg_extension_config_dump('_celerysalt_outbox_1', '');
SELECT pg_catalog.pg_extension_config_dump('_celerysalt_outbox_2', '');
SELECT pg_catalog.pg_extension_config_dump('_celerysalt_event_seq', '');
SELECT pg_catalog.pg_extension_config_dump('celerysalt_events', '');
SELECT pg_catalog.pg_extension_config_dump('celerysalt_dead_letters', '');

-- ------------------------------------------------------------- publishing
CREATE FUNCTION celerysalt_publish(topic text, payload jsonb,
                                   version text DEFAULT NULL,
                                   correlation_id text DEFAULT NULL)
RETURNS uuid
AS 'MODULE_PATHNAME', 'celerysalt_publish'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION celerysalt_publish(text, jsonb, text, text) IS
    'Enqueues an event in the current transaction; it is delivered to RabbitMQ after commit. Returns the event id (the Celery task id).';

CREATE FUNCTION celerysalt_wake()
RETURNS void
AS 'MODULE_PATHNAME', 'celerysalt_wake'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION celerysalt_wake() IS
    'Wakes the delivery worker when the current transaction commits.';

CREATE FUNCTION _celerysalt_installed()
RETURNS void
AS 'MODULE_PATHNAME', '_celerysalt_installed'
LANGUAGE C VOLATILE;

-- ----------------------------------------------------------------- replay
CREATE FUNCTION celerysalt_replay(event uuid)
RETURNS uuid
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ev record;
BEGIN
    EXECUTE pg_catalog.format('SELECT topic, payload, version, correlation_id FROM %I.celerysalt_events WHERE id = $1',
                              (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
                                WHERE e.extname = 'celerysalt'))
       INTO ev USING event;
    IF ev IS NULL THEN
        RAISE EXCEPTION 'delivered event % not found', event
            USING ERRCODE = 'no_data_found',
                  HINT = 'Only events delivered within celerysalt.delivered_retention can be replayed.';
    END IF;
    RETURN @extschema@.celerysalt_publish(ev.topic, ev.payload, ev.version, ev.correlation_id);
END
$$;
COMMENT ON FUNCTION celerysalt_replay(uuid) IS
    'Publishes a delivered event again, as a new event; returns the new event id.';

CREATE FUNCTION celerysalt_replay_since(since timestamptz, until timestamptz DEFAULT NULL,
                                  topic text DEFAULT NULL)
RETURNS bigint
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.count(@extschema@.celerysalt_publish(e.topic, e.payload, e.version, e.correlation_id))
      FROM (SELECT * FROM @extschema@.celerysalt_events e
             WHERE e.delivered_at >= since
               AND (until IS NULL OR e.delivered_at < until)
               AND ($3 IS NULL OR e.topic = $3)
             ORDER BY e.event_id) e
$$;
COMMENT ON FUNCTION celerysalt_replay_since(timestamptz, timestamptz, text) IS
    'Publishes again, in their original order, the events delivered in [since, until), optionally of one topic; returns how many.';

CREATE FUNCTION celerysalt_dead_letter_retry(event uuid)
RETURNS uuid
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ev record;
BEGIN
    DELETE FROM @extschema@.celerysalt_dead_letters d WHERE d.id = event
    RETURNING d.topic, d.payload, d.version, d.correlation_id INTO ev;
    IF ev IS NULL THEN
        RAISE EXCEPTION 'dead letter % not found', event USING ERRCODE = 'no_data_found';
    END IF;
    RETURN @extschema@.celerysalt_publish(ev.topic, ev.payload, ev.version, ev.correlation_id);
END
$$;
COMMENT ON FUNCTION celerysalt_dead_letter_retry(uuid) IS
    'Moves a dead letter back to the outbox as a new event; returns the new event id.';

-- ----------------------------------------------------------------- status
CREATE FUNCTION _celerysalt_worker_state(
    OUT worker_pid integer, OUT broker_connected boolean, OUT broker text,
    OUT delivered_total bigint, OUT dead_lettered_total bigint,
    OUT last_delivery_at timestamptz, OUT last_error text,
    OUT last_error_at timestamptz, OUT worker_started_at timestamptz)
AS 'MODULE_PATHNAME', '_celerysalt_worker_state'
LANGUAGE C VOLATILE;

CREATE VIEW celerysalt_status AS
SELECT w.worker_pid,
       w.broker_connected,
       w.broker,
       o.pending,
       pg_catalog.now() - o.oldest_enqueued_at AS oldest_pending_age,
       w.delivered_total,
       w.last_delivery_at,
       (SELECT pg_catalog.count(*) FROM @extschema@.celerysalt_dead_letters) AS dead_letters,
       w.last_error,
       w.last_error_at,
       w.worker_started_at
  FROM @extschema@._celerysalt_worker_state() w,
       LATERAL (SELECT pg_catalog.count(*) AS pending, pg_catalog.min(enqueued_at) AS oldest_enqueued_at
                  FROM @extschema@._celerysalt_outbox) o;
COMMENT ON VIEW celerysalt_status IS
    'Delivery state of this database: worker, broker connection, pending events, totals and the last error.';

REVOKE ALL ON FUNCTION _celerysalt_worker_state() FROM PUBLIC;
REVOKE ALL ON FUNCTION _celerysalt_installed() FROM PUBLIC;

SELECT @extschema@._celerysalt_installed();
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
    UNIQUE (topic, version),
    CHECK ((deprecated_at IS NULL) = (deprecated_reason IS NULL))
);
CREATE INDEX celerysalt_schemas_active ON celerysalt_schemas (topic) WHERE active;
COMMENT ON TABLE celerysalt_schemas IS
    'Registered event schemas, one row per (topic, version), stored exactly as registered (pydantic model_json_schema() output). First writer wins.';

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
    'True if payload is valid against the registered schema of (topic, version), formats asserted, as celerysalt_publish checks it; usable in CHECK constraints.';

CREATE FUNCTION celerysalt_event_errors(topic text, payload jsonb, version text DEFAULT 'latest')
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT @extschema@.celerysalt_validation_errors(@extschema@.celerysalt_get_schema(topic, version),
                                                    payload, true)
$$;
COMMENT ON FUNCTION celerysalt_event_errors(text, jsonb, text) IS
    'Why payload is invalid against the registered schema of (topic, version): [] when valid, else [{path, schema_path, keyword, message}].';
-- celerysalt install script, part 31: schema registry: compatibility modes
-- and the flattened fields of a schema (docs/registry.md).

-- ------------------------------------------------------- compatibility
CREATE FUNCTION _celerysalt_check_mode(compatibility text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m text := upper(btrim(compatibility));
BEGIN
    IF m IS NULL OR m NOT IN ('NONE', 'BACKWARD', 'BACKWARD_TRANSITIVE', 'FORWARD',
                              'FORWARD_TRANSITIVE', 'FULL', 'FULL_TRANSITIVE') THEN
        RAISE EXCEPTION 'unknown compatibility mode "%"', compatibility
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL or FULL_TRANSITIVE.';
    END IF;
    RETURN m;
END
$$;

CREATE FUNCTION celerysalt_get_compatibility(topic text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT t.compatibility FROM @extschema@.celerysalt_topics t WHERE t.topic = $1),
                    'BACKWARD')
$$;
COMMENT ON FUNCTION celerysalt_get_compatibility(text) IS
    'The compatibility mode of topic (BACKWARD when never set).';

CREATE FUNCTION celerysalt_set_compatibility(topic text, compatibility text)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    m text := @extschema@._celerysalt_check_mode(compatibility);
    previous text := @extschema@.celerysalt_get_compatibility(topic);
BEGIN
    PERFORM @extschema@._celerysalt_check_names(topic, NULL);
    INSERT INTO @extschema@.celerysalt_topics AS t (topic, compatibility)
    VALUES (topic, m)
    ON CONFLICT ON CONSTRAINT celerysalt_topics_pkey DO UPDATE
       SET compatibility = excluded.compatibility, updated_at = now(), updated_by = CURRENT_USER;
    RETURN previous;
END
$$;
COMMENT ON FUNCTION celerysalt_set_compatibility(text, text) IS
    'Sets the compatibility mode new versions of topic must satisfy (NONE, BACKWARD, FORWARD, FULL, optionally _TRANSITIVE); returns the previous mode.';

-- The changes from earlier versions of topic to schema, with verdicts for
-- mode.  new_version: only versions ordered before it count as earlier
-- (registration); NULL: all versions (celerysalt_check_compatibility).
-- Non-transitive modes compare with the highest earlier version only.
CREATE FUNCTION _celerysalt_compat_changes(topic text, schema jsonb, compatibility text,
                                           new_version text)
RETURNS TABLE (against_version text, path text, schema_path text, change text,
               old_value jsonb, new_value jsonb, backward boolean, forward boolean,
               compatible boolean, description text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH earlier AS (
        SELECT c.version, c.schema, c.id, @extschema@._celerysalt_version_key(c.version) AS key,
               row_number() OVER (ORDER BY @extschema@._celerysalt_version_key(c.version) DESC, c.id) AS n
          FROM @extschema@.celerysalt_schemas c
         WHERE c.topic = $1 AND c.active
           AND ($4 IS NULL OR @extschema@._celerysalt_version_key(c.version)
                              < @extschema@._celerysalt_version_key($4))
    )
    SELECT e.version, d.path, d.schema_path, d.change, d.old_value, d.new_value,
           d.backward, d.forward,
           CASE split_part($3, '_', 1)
               WHEN 'NONE' THEN true
               WHEN 'BACKWARD' THEN d.backward
               WHEN 'FORWARD' THEN d.forward
               ELSE d.backward AND d.forward
           END,
           d.description
      FROM earlier e,
           LATERAL @extschema@._celerysalt_schema_diff(e.schema, $2) d
     WHERE $3 LIKE '%\_TRANSITIVE' OR e.n = 1
     ORDER BY e.key DESC, e.id, d.path, d.change, d.schema_path
$$;

CREATE FUNCTION celerysalt_check_compatibility(topic text, schema jsonb,
                                               compatibility text DEFAULT NULL)
RETURNS TABLE (against_version text, path text, schema_path text, change text,
               old_value jsonb, new_value jsonb, backward boolean, forward boolean,
               compatible boolean, description text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
BEGIN
    IF schema IS NULL THEN
        RAISE EXCEPTION 'schema must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    RETURN QUERY
        SELECT * FROM @extschema@._celerysalt_compat_changes(
            topic, schema,
            @extschema@._celerysalt_check_mode(coalesce(compatibility,
                                               @extschema@.celerysalt_get_compatibility(topic))),
            NULL);
END
$$;
COMMENT ON FUNCTION celerysalt_check_compatibility(text, jsonb, text) IS
    'Every change from the registered versions of topic (the latest, or all for _TRANSITIVE modes) to schema, with its JSON path and whether it is compatible under the mode (default: the topic''s).';

-- ------------------------------------------------------------- fields
-- Follow local $ref (and single-member allOf) from s within document root.
CREATE FUNCTION _celerysalt_resolve(root jsonb, s jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    FOR hop IN 1..16 LOOP
        EXIT WHEN s IS NULL OR jsonb_typeof(s) <> 'object';
        IF jsonb_typeof(s->'$ref') = 'string' AND left(s->>'$ref', 1) = '#' THEN
            s := root #> (SELECT coalesce(array_agg(replace(replace(t, '~1', '/'), '~0', '~') ORDER BY i), '{}')
                            FROM unnest(string_to_array(substr(s->>'$ref', 3), '/')) WITH ORDINALITY u(t, i)
                           WHERE substr(s->>'$ref', 2) <> '');
        ELSIF jsonb_typeof(s->'allOf') = 'array' AND jsonb_array_length(s->'allOf') = 1
              AND NOT s ? 'properties' AND NOT s ? 'type' THEN
            s := s->'allOf'->0;
        ELSE
            EXIT;
        END IF;
    END LOOP;
    RETURN s;
END
$$;

-- A short type label: "integer", "string|null", "Addr|null", "array<string>".
CREATE FUNCTION _celerysalt_type_label(root jsonb, s jsonb)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    label text;
BEGIN
    IF s IS NULL OR jsonb_typeof(s) <> 'object' THEN
        RETURN 'any';
    ELSIF jsonb_typeof(s->'$ref') = 'string' THEN
        RETURN regexp_replace(s->>'$ref', '^.*/', '');
    ELSIF jsonb_typeof(s->'allOf') = 'array' AND jsonb_array_length(s->'allOf') = 1 THEN
        RETURN @extschema@._celerysalt_type_label(root, s->'allOf'->0);
    ELSIF jsonb_typeof(coalesce(s->'anyOf', s->'oneOf')) = 'array' THEN
        SELECT string_agg(@extschema@._celerysalt_type_label(root, b), '|' ORDER BY i) INTO label
          FROM jsonb_array_elements(coalesce(s->'anyOf', s->'oneOf')) WITH ORDINALITY a(b, i);
        RETURN label;
    ELSIF jsonb_typeof(s->'type') = 'array' THEN
        SELECT string_agg(t, '|' ORDER BY i) INTO label
          FROM jsonb_array_elements_text(s->'type') WITH ORDINALITY a(t, i);
        RETURN label;
    ELSIF s->>'type' = 'array' AND s ? 'items' THEN
        RETURN 'array<' || @extschema@._celerysalt_type_label(root, s->'items') || '>';
    ELSIF s ? 'type' THEN
        RETURN s->>'type';
    ELSIF s ? 'const' THEN
        RETURN 'const';
    ELSIF s ? 'enum' THEN
        RETURN 'enum';
    END IF;
    RETURN 'any';
END
$$;

-- The fields of schema node (default: the root), nested models included.
CREATE FUNCTION _celerysalt_schema_fields(root jsonb, node jsonb DEFAULT NULL,
                                          prefix text DEFAULT '', depth integer DEFAULT 0,
                                          seen text[] DEFAULT '{}')
RETURNS TABLE (path text, name text, type text, required boolean, nullable boolean,
               format text, description text, default_value jsonb)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    obj jsonb := @extschema@._celerysalt_resolve(root, coalesce(node, root));
    prop record;
    sub record;
    label text;
    inner_s jsonb;
BEGIN
    IF depth > 8 OR obj IS NULL OR jsonb_typeof(obj->'properties') IS DISTINCT FROM 'object' THEN
        RETURN;
    END IF;
    FOR prop IN SELECT p.key, p.value FROM jsonb_each(obj->'properties') p ORDER BY p.key LOOP
        label := @extschema@._celerysalt_type_label(root, prop.value);
        -- the non-null alternative of Optional[X] carries format and description
        inner_s := @extschema@._celerysalt_resolve(root, coalesce(
            (SELECT b FROM jsonb_array_elements(coalesce(prop.value->'anyOf', prop.value->'oneOf')) b
              WHERE b->>'type' IS DISTINCT FROM 'null' LIMIT 1),
            prop.value));
        path := prefix || prop.key;
        name := prop.key;
        type := label;
        required := coalesce(obj->'required' ? prop.key, false);
        nullable := label ~ '(^|\|)null($|\|)';
        format := coalesce(prop.value->>'format', inner_s->>'format');
        description := coalesce(prop.value->>'description', inner_s->>'description');
        default_value := prop.value->'default';
        RETURN NEXT;
        -- nested models: the property itself, its alternatives, array items
        FOR sub IN
            SELECT c.s, c.suffix
              FROM (SELECT prop.value AS s, '' AS suffix
                    UNION ALL
                    SELECT b, '' FROM jsonb_array_elements(
                        CASE WHEN jsonb_typeof(coalesce(prop.value->'anyOf', prop.value->'oneOf')) = 'array'
                             THEN coalesce(prop.value->'anyOf', prop.value->'oneOf') ELSE '[]' END) b
                    UNION ALL
                    SELECT inner_s->'items', '[]' WHERE jsonb_typeof(inner_s->'items') = 'object') c
        LOOP
            CONTINUE WHEN coalesce(sub.s->>'$ref', '') <> '' AND (sub.s->>'$ref') = ANY (seen);
            CONTINUE WHEN jsonb_typeof(@extschema@._celerysalt_resolve(root, sub.s)->'properties') IS DISTINCT FROM 'object';
            RETURN QUERY
                SELECT * FROM @extschema@._celerysalt_schema_fields(
                    root, @extschema@._celerysalt_resolve(root, sub.s),
                    prefix || prop.key || sub.suffix || '.', depth + 1,
                    seen || coalesce(sub.s->>'$ref', ''));
            EXIT WHEN sub.suffix = '';  -- a model reached directly needs no second visit
        END LOOP;
    END LOOP;
END
$$;
-- celerysalt install script, part 32: schema registry: registering and
-- deprecating schemas, tracking publishers and subscribers, catalog views.

-- ---------------------------------------------------------- registering
CREATE FUNCTION _celerysalt_check_schema(what text, topic text, version text, s jsonb)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    errors jsonb;
BEGIN
    IF jsonb_typeof(s) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION '% of topic "%" version "%" must be a JSON object', what, topic, version
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('It is a JSON %s.', jsonb_typeof(s)),
                  HINT = 'Register the output of the pydantic model''s model_json_schema().';
    END IF;
    errors := @extschema@.celerysalt_schema_errors(s);
    IF jsonb_array_length(errors) > 0 THEN
        RAISE EXCEPTION '% of topic "%" version "%" is not a valid JSON Schema', what, topic, version
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = (SELECT string_agg(format('%s: %s', coalesce(nullif(e->>'schema_path', ''), '(root)'),
                                                     e->>'message'), E'\n' ORDER BY i)
                              FROM jsonb_array_elements(errors) WITH ORDINALITY a(e, i));
    END IF;
END
$$;

-- Raise 23505 naming the first place where the registered and given documents differ.
CREATE FUNCTION _celerysalt_raise_conflict(topic text, version text, what text,
                                           registered jsonb, given jsonb)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d record;
    shown text;
BEGIN
    d := @extschema@._celerysalt_schema_first_difference(registered, given);
    shown := CASE WHEN d.path = '' THEN '(root)' ELSE d.path END;
    RAISE EXCEPTION 'schema conflict for topic "%" version "%"', topic, version
        USING ERRCODE = 'unique_violation',
              DETAIL = format('The %s differs from the registered one at %s: %s.', what, shown,
                              CASE WHEN d.registered_value IS NULL
                                       THEN format('the registered %s has nothing there, the given one has %s',
                                                   what, left(d.given_value::text, 200))
                                   WHEN d.given_value IS NULL
                                       THEN format('the registered %s has %s, the given one has nothing there',
                                                   what, left(d.registered_value::text, 200))
                                   ELSE format('registered %s, given %s', left(d.registered_value::text, 200),
                                               left(d.given_value::text, 200))
                              END),
              HINT = 'A registered version never changes: register the new schema as a new version.';
END
$$;

CREATE FUNCTION celerysalt_register_schema(
    topic text,
    schema jsonb,
    version text DEFAULT 'v1',
    mode text DEFAULT 'broadcast',
    description text DEFAULT NULL,
    response_schema jsonb DEFAULT NULL,
    error_schema jsonb DEFAULT NULL,
    publisher_service text DEFAULT NULL,
    publisher_module text DEFAULT NULL,
    publisher_class text DEFAULT NULL,
    publisher_version text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    existing @extschema@.celerysalt_schemas;
    compat text;
    bad record;
    bad_detail text;
    new_id bigint;
BEGIN
    PERFORM @extschema@._celerysalt_check_names(topic, version);
    IF mode IS NULL OR mode NOT IN ('broadcast', 'rpc') THEN
        RAISE EXCEPTION 'unknown event mode "%"', mode
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use "broadcast" or "rpc".';
    END IF;
    IF schema IS NULL THEN
        RAISE EXCEPTION 'schema must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM @extschema@._celerysalt_check_schema('schema', topic, version, schema);
    IF response_schema IS NOT NULL THEN
        PERFORM @extschema@._celerysalt_check_schema('response schema', topic, version, response_schema);
    END IF;
    IF error_schema IS NOT NULL THEN
        PERFORM @extschema@._celerysalt_check_schema('error schema', topic, version, error_schema);
    END IF;

    -- One registration per topic at a time: compatibility is checked against
    -- a stable set of versions.
    INSERT INTO @extschema@.celerysalt_topics AS t (topic) VALUES (topic)
    ON CONFLICT ON CONSTRAINT celerysalt_topics_pkey DO NOTHING;
    SELECT t.compatibility INTO compat
      FROM @extschema@.celerysalt_topics t WHERE t.topic = topic FOR UPDATE;

    SELECT * INTO existing FROM @extschema@.celerysalt_schemas c
     WHERE c.topic = topic AND c.version = version;
    IF FOUND THEN
        IF existing.schema <> schema THEN
            PERFORM @extschema@._celerysalt_raise_conflict(topic, version, 'schema', existing.schema, schema);
        END IF;
        -- first writer wins; a response or error schema may be added later
        -- (celery-salt registers them only on the first call()), never changed
        IF existing.response_schema IS NOT NULL AND response_schema IS NOT NULL
           AND existing.response_schema <> response_schema THEN
            PERFORM @extschema@._celerysalt_raise_conflict(topic, version, 'response schema',
                                                           existing.response_schema, response_schema);
        END IF;
        IF existing.error_schema IS NOT NULL AND error_schema IS NOT NULL
           AND existing.error_schema <> error_schema THEN
            PERFORM @extschema@._celerysalt_raise_conflict(topic, version, 'error schema',
                                                           existing.error_schema, error_schema);
        END IF;
        IF (existing.response_schema IS NULL AND response_schema IS NOT NULL)
           OR (existing.error_schema IS NULL AND error_schema IS NOT NULL) THEN
            UPDATE @extschema@.celerysalt_schemas c
               SET response_schema = coalesce(c.response_schema, response_schema),
                   error_schema = coalesce(c.error_schema, error_schema)
             WHERE c.id = existing.id;
        END IF;
        IF publisher_service IS NOT NULL THEN
            PERFORM @extschema@.celerysalt_track_publisher(topic, publisher_service, publisher_version,
                                                           publisher_module, publisher_class);
        END IF;
        RETURN jsonb_build_object('created', false, 'id', existing.id, 'topic', topic,
                                  'version', version, 'existing_schema', existing.schema);
    END IF;

    -- "v1.0" next to "v1" would make "latest" ambiguous
    SELECT c.version INTO bad FROM @extschema@.celerysalt_schemas c
     WHERE c.topic = topic
       AND @extschema@._celerysalt_version_key(c.version) = @extschema@._celerysalt_version_key(version)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'schema version "%" of topic "%" orders the same as registered version "%"',
                        version, topic, bad.version
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Versions compare like celery-salt''s compare_versions: a leading v is dropped, missing parts are 0 and a non-numeric version orders as 0.',
                  HINT = 'Choose a version that orders after the registered ones, such as the next "vN".';
    END IF;

    SELECT string_agg(format('against %s: %s: %s (%s)', c.against_version,
                             CASE WHEN c.path = '' THEN '(root)' ELSE c.path END,
                             c.description, c.change), E'\n')
      INTO bad_detail
      FROM (SELECT * FROM @extschema@._celerysalt_compat_changes(topic, schema, compat, version) x
             WHERE NOT x.compatible LIMIT 20) c;
    IF bad_detail IS NOT NULL THEN
        RAISE EXCEPTION 'schema version "%" of topic "%" is not % compatible', version, topic, compat
            USING ERRCODE = 'invalid_object_definition',
                  DETAIL = bad_detail,
                  HINT = format('celerysalt_check_compatibility(%L, schema) lists every change; '
                                'celerysalt_set_compatibility() changes the topic''s mode.', topic);
    END IF;

    INSERT INTO @extschema@.celerysalt_schemas AS c
           (topic, version, mode, schema, response_schema, error_schema, description,
            publisher_service, publisher_module, publisher_class, publisher_version)
    VALUES (topic, version, mode, schema, response_schema, error_schema, description,
            publisher_service, publisher_module, publisher_class, publisher_version)
    RETURNING c.id INTO new_id;

    INSERT INTO @extschema@.celerysalt_schema_fields
           (schema_id, path, name, type, required, nullable, format, description, default_value)
    SELECT new_id, f.path, f.name, f.type, f.required, f.nullable, f.format, f.description, f.default_value
      FROM @extschema@._celerysalt_schema_fields(schema) f
    ON CONFLICT DO NOTHING;

    IF publisher_service IS NOT NULL THEN
        PERFORM @extschema@.celerysalt_track_publisher(topic, publisher_service, publisher_version,
                                                       publisher_module, publisher_class);
    END IF;
    RETURN jsonb_build_object('created', true, 'id', new_id, 'topic', topic, 'version', version);
END
$$;
COMMENT ON FUNCTION celerysalt_register_schema(text, jsonb, text, text, text, jsonb, jsonb, text, text, text, text) IS
    'Registers the JSON Schema of (topic, version). Identical re-registration returns created false; a different schema raises 23505; a version incompatible under the topic''s mode raises 42P17.';

CREATE FUNCTION celerysalt_deprecate_schema(topic text, version text, reason text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
BEGIN
    IF coalesce(btrim(reason), '') = '' THEN
        RAISE EXCEPTION 'a deprecation needs a reason' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Say what publishers should use instead, for example ''use v3: amount is now in cents''.';
    END IF;
    UPDATE @extschema@.celerysalt_schemas c
       SET deprecated_at = coalesce(c.deprecated_at, now()), deprecated_reason = reason
     WHERE c.topic = topic AND c.version = version AND c.active;
    IF NOT FOUND THEN
        PERFORM @extschema@._celerysalt_raise_unknown(topic, version);
    END IF;
END
$$;
COMMENT ON FUNCTION celerysalt_deprecate_schema(text, text, text) IS
    'Marks a registered schema version deprecated with a reason; publishing it then raises a warning (01P01).';

-- ------------------------------------------------------------- tracking
CREATE FUNCTION celerysalt_track_publisher(topic text, service text,
                                           service_version text DEFAULT NULL,
                                           module text DEFAULT NULL, class text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
BEGIN
    PERFORM @extschema@._celerysalt_check_names(topic, NULL);
    IF coalesce(service, '') = '' THEN
        RAISE EXCEPTION 'service must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO @extschema@.celerysalt_publishers AS p (topic, service, service_version, module, class)
    VALUES (topic, service, service_version, module, class)
    ON CONFLICT ON CONSTRAINT celerysalt_publishers_pkey DO UPDATE
       SET service_version = coalesce(excluded.service_version, p.service_version),
           module = coalesce(excluded.module, p.module),
           class = coalesce(excluded.class, p.class),
           last_seen_at = now();
END
$$;
COMMENT ON FUNCTION celerysalt_track_publisher(text, text, text, text, text) IS
    'Records that service publishes topic (upsert; publish counts are kept separately, without contention).';

CREATE FUNCTION celerysalt_track_subscriber(topic text, service text, handler text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
BEGIN
    IF coalesce(topic, '') = '' OR length(topic) > 255 THEN
        RAISE EXCEPTION 'topic must have between 1 and 255 bytes' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF coalesce(service, '') = '' OR coalesce(handler, '') = '' THEN
        RAISE EXCEPTION 'service and handler must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO @extschema@.celerysalt_subscribers AS s (topic, service, handler)
    VALUES (topic, service, handler)
    ON CONFLICT ON CONSTRAINT celerysalt_subscribers_pkey DO UPDATE SET last_seen_at = now();
END
$$;
COMMENT ON FUNCTION celerysalt_track_subscriber(text, text, text) IS
    'Records that handler of service subscribes to topic (a concrete topic or a wildcard pattern); upsert.';

CREATE FUNCTION celerysalt_registry_compact()
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM @extschema@._celerysalt_publish_stats RETURNING *
    ), kept AS (
        INSERT INTO @extschema@._celerysalt_publish_stats
        SELECT g.topic, g.service, sum(g.published), min(g.first_published_at), max(g.last_published_at)
          FROM gone g GROUP BY g.topic, g.service
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone) - (SELECT count(*) FROM kept)
$$;
COMMENT ON FUNCTION celerysalt_registry_compact() IS
    'Folds the append-only publish counters into one row per (topic, service); returns how many rows it saved.';

-- ---------------------------------------------------------------- views
CREATE VIEW celerysalt_catalog AS
SELECT t.topic,
       v.versions,
       l.version AS latest_version,
       l.mode,
       l.description,
       t.compatibility,
       v.deprecated_versions,
       coalesce(p.publishers, '{}') AS publishers,
       coalesce(s.subscribers, '{}') AS subscribers,
       coalesce(st.publish_count, 0) AS publish_count,
       st.last_published_at,
       l.created_at AS latest_registered_at
  FROM @extschema@.celerysalt_topics t
  JOIN LATERAL (SELECT c.version, c.mode, c.description, c.created_at
                  FROM @extschema@.celerysalt_schemas c
                 WHERE c.topic = t.topic AND c.active
                 ORDER BY @extschema@._celerysalt_version_key(c.version) DESC, c.id
                 LIMIT 1) l ON true
  CROSS JOIN LATERAL (
        SELECT pg_catalog.array_agg(c.version ORDER BY @extschema@._celerysalt_version_key(c.version), c.id) AS versions,
               pg_catalog.array_agg(c.version ORDER BY @extschema@._celerysalt_version_key(c.version), c.id)
                   FILTER (WHERE c.deprecated_at IS NOT NULL) AS deprecated_versions
          FROM @extschema@.celerysalt_schemas c
         WHERE c.topic = t.topic AND c.active) v
  LEFT JOIN LATERAL (
        SELECT pg_catalog.array_agg(DISTINCT x.service ORDER BY x.service) AS publishers
          FROM (SELECT pb.service FROM @extschema@.celerysalt_publishers pb WHERE pb.topic = t.topic
                UNION
                SELECT ps.service FROM @extschema@._celerysalt_publish_stats ps WHERE ps.topic = t.topic) x) p ON true
  LEFT JOIN LATERAL (
        SELECT pg_catalog.array_agg(sb.service || ':' || sb.handler ORDER BY sb.service, sb.handler) AS subscribers
          FROM @extschema@.celerysalt_subscribers sb WHERE sb.topic = t.topic) s ON true
  LEFT JOIN LATERAL (
        SELECT pg_catalog.sum(ps.published)::bigint AS publish_count,
               pg_catalog.max(ps.last_published_at) AS last_published_at
          FROM @extschema@._celerysalt_publish_stats ps WHERE ps.topic = t.topic) st ON true;
COMMENT ON VIEW celerysalt_catalog IS
    'One row per registered topic: versions (oldest first), latest version, mode, description, compatibility, deprecated versions, publishers, subscribers ("service:handler"), publish count and last publish.';

CREATE VIEW celerysalt_catalog_fields AS
SELECT c.topic,
       c.version,
       c.version = (SELECT l.version FROM @extschema@.celerysalt_schemas l
                     WHERE l.topic = c.topic AND l.active
                     ORDER BY @extschema@._celerysalt_version_key(l.version) DESC, l.id LIMIT 1) AS is_latest,
       f.path, f.name, f.type, f.required, f.nullable, f.format, f.description, f.default_value
  FROM @extschema@.celerysalt_schema_fields f
  JOIN @extschema@.celerysalt_schemas c ON c.id = f.schema_id
 WHERE c.active;
COMMENT ON VIEW celerysalt_catalog_fields IS
    'The fields of every registered schema version, nested models included.';

CREATE VIEW celerysalt_catalog_events AS
SELECT e.id AS message_id,
       e.topic,
       e.version AS schema_version,
       (c.id IS NOT NULL) AS registered,
       e.correlation_id,
       e.enqueued_at AS published_at,
       e.delivered_at,
       e.size AS payload_size_bytes
  FROM @extschema@.celerysalt_events e
  LEFT JOIN @extschema@.celerysalt_schemas c ON c.topic = e.topic AND c.version = e.version;
COMMENT ON VIEW celerysalt_catalog_events IS
    'Delivered events (celerysalt_events, within celerysalt.delivered_retention) with their schema version, without payloads.';
-- celerysalt install script, part 33: generated code (pydantic models) and
-- the Graphviz catalog graph.

-- ------------------------------------------------------ generated code
-- Python helpers for celerysalt_pydantic_model.  Every text of a schema
-- reaches the module as a string literal made by _celerysalt_py_literal, and
-- every name as an identifier made by _celerysalt_py_ident: nothing a schema
-- holds can end a literal or a comment, or become code.
--
-- A Python identifier for name: ASCII letters, digits and _ (every other
-- character becomes _); never empty nor starting with a digit, _ or model_
-- (prefix M for classes, f_ for fields and enum members); never a keyword
-- (suffix _); soft keywords (match, case, type) stay field names, so that
-- event.type keeps working.  Class names live at module level and are named
-- in annotations, so they also avoid the builtins, the module's own names and
-- pydantic's BaseModel attributes.  Callers add what their scope reserves
-- besides and number duplicates.
CREATE FUNCTION _celerysalt_py_ident(name text, is_class boolean)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN n = ANY (ARRAY['False', 'None', 'True', 'and', 'as', 'assert', 'async', 'await',
                                    'break', 'class', 'continue', 'def', 'del', 'elif', 'else', 'except',
                                    'finally', 'for', 'from', 'global', 'if', 'import', 'in', 'is',
                                    'lambda', 'nonlocal', 'not', 'or', 'pass', 'raise', 'return', 'try',
                                    'while', 'with', 'yield'])
                  OR (is_class AND n = ANY (ARRAY[
                      -- the module's own names; soft keywords stay usable as field names
                      'Model', 'TOPIC', 'VERSION', 'annotations', 'case', 'match', 'type',
                      -- pydantic's BaseModel attributes (model_* get a prefix)
                      'construct', 'copy', 'from_orm', 'json', 'parse_file', 'parse_obj', 'parse_raw',
                      'schema', 'schema_json', 'update_forward_refs', 'validate',
                      -- builtins (Python 3.8 to 3.13)
                      'ArithmeticError', 'AssertionError', 'AttributeError', 'BaseException',
                      'BaseExceptionGroup', 'BlockingIOError', 'BrokenPipeError', 'BufferError',
                      'BytesWarning', 'ChildProcessError', 'ConnectionAbortedError', 'ConnectionError',
                      'ConnectionRefusedError', 'ConnectionResetError', 'DeprecationWarning', 'EOFError',
                      'Ellipsis', 'EncodingWarning', 'EnvironmentError', 'Exception', 'ExceptionGroup',
                      'FileExistsError', 'FileNotFoundError', 'FloatingPointError', 'FutureWarning',
                      'GeneratorExit', 'IOError', 'ImportError', 'ImportWarning', 'IndentationError',
                      'IndexError', 'InterruptedError', 'IsADirectoryError', 'KeyError', 'KeyboardInterrupt',
                      'LookupError', 'MemoryError', 'ModuleNotFoundError', 'NameError', 'NotADirectoryError',
                      'NotImplemented', 'NotImplementedError', 'OSError', 'OverflowError',
                      'PendingDeprecationWarning', 'PermissionError', 'ProcessLookupError',
                      'PythonFinalizationError', 'RecursionError', 'ReferenceError', 'ResourceWarning',
                      'RuntimeError', 'RuntimeWarning', 'StopAsyncIteration', 'StopIteration', 'SyntaxError',
                      'SyntaxWarning', 'SystemError', 'SystemExit', 'TabError', 'TimeoutError', 'TypeError',
                      'UnboundLocalError', 'UnicodeDecodeError', 'UnicodeEncodeError', 'UnicodeError',
                      'UnicodeTranslateError', 'UnicodeWarning', 'UserWarning', 'ValueError', 'Warning',
                      'ZeroDivisionError', 'abs', 'aiter', 'all', 'anext', 'any', 'ascii', 'bin', 'bool',
                      'breakpoint', 'bytearray', 'bytes', 'callable', 'chr', 'classmethod', 'compile',
                      'complex', 'copyright', 'credits', 'delattr', 'dict', 'dir', 'divmod', 'enumerate',
                      'eval', 'exec', 'exit', 'filter', 'float', 'format', 'frozenset', 'getattr', 'globals',
                      'hasattr', 'hash', 'help', 'hex', 'id', 'input', 'int', 'isinstance', 'issubclass',
                      'iter', 'len', 'license', 'list', 'locals', 'map', 'max', 'memoryview', 'min', 'next',
                      'object', 'oct', 'open', 'ord', 'pow', 'print', 'property', 'quit', 'range', 'repr',
                      'reversed', 'round', 'set', 'setattr', 'slice', 'sorted', 'staticmethod', 'str', 'sum',
                      'super', 'tuple', 'vars', 'zip']))
                THEN n || '_' ELSE n END
      FROM (SELECT CASE WHEN s = '' OR s ~ '^([0-9_]|model_)'
                        THEN CASE WHEN is_class THEN 'M' ELSE 'f_' END || s ELSE s END AS n
              FROM (SELECT regexp_replace(name, '[^A-Za-z0-9_]', '_', 'g') AS s) a) b
$$;

-- A Python expression for the JSON value v: None, True/False, a number, a
-- string literal, or _json.loads() of one for arrays and objects.
-- Strings, whatever their text, become one double-quoted literal of
-- printable ASCII: \ and " are escaped, tab, LF and CR by name, every other
-- character as \xhh, \uhhhh or \Uhhhhhhhh (control characters, DEL, U+0085,
-- U+2028, U+2029, bidirectional controls and all non-ASCII text), so a
-- literal never holds a line break nor anything that reads differently from
-- what it is.  Integers of more than 4000 digits, which Python refuses as
-- literals, become a sum of smaller ones times powers of ten.
CREATE FUNCTION _celerysalt_py_literal(v jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE jsonb_typeof(v)
               WHEN 'null' THEN 'None'
               WHEN 'boolean' THEN CASE WHEN v = 'true' THEN 'True' ELSE 'False' END
               WHEN 'number' THEN
                   CASE WHEN length(v::text) <= 4000 OR strpos(v::text, '.') > 0 THEN v::text
                   ELSE (SELECT CASE WHEN left(n.t, 1) = '-' THEN '-(' ELSE '(' END
                                || string_agg(format('%s * 10 ** %s',
                                                     coalesce(nullif(ltrim(substr(n.d, i, 1000), '0'), ''), '0'),
                                                     length(n.d) - i + 1 - length(substr(n.d, i, 1000))),
                                              ' + ' ORDER BY i) || ')'
                           FROM (SELECT v::text AS t, ltrim(v::text, '-') AS d) n,
                                generate_series(1, length(n.d), 1000) i
                          GROUP BY n.t)
                   END
               WHEN 'string' THEN
                   CASE WHEN (v #>> '{}') ~ E'^[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]*$'
                        THEN '"' || (v #>> '{}') || '"'
                   ELSE (SELECT '"' || string_agg(
                                    CASE WHEN cp = 92 THEN E'\\\\'
                                         WHEN cp = 34 THEN E'\\"'
                                         WHEN cp = 9 THEN E'\\t'
                                         WHEN cp = 10 THEN E'\\n'
                                         WHEN cp = 13 THEN E'\\r'
                                         WHEN cp BETWEEN 32 AND 126 THEN c
                                         WHEN cp < 256 THEN E'\\x' || lpad(to_hex(cp), 2, '0')
                                         WHEN cp < 65536 THEN E'\\u' || lpad(to_hex(cp), 4, '0')
                                         ELSE E'\\U' || lpad(to_hex(cp), 8, '0')
                                    END, '' ORDER BY i) || '"'
                           FROM regexp_split_to_table(v #>> '{}', '') WITH ORDINALITY x(c, i),
                                LATERAL (SELECT convert_to(x.c, 'UTF8') AS b) u,
                                -- the code point, from the character's UTF-8 bytes
                                LATERAL (SELECT CASE octet_length(u.b)
                                    WHEN 1 THEN get_byte(u.b, 0)
                                    WHEN 2 THEN ((get_byte(u.b, 0) & 31) << 6) | (get_byte(u.b, 1) & 63)
                                    WHEN 3 THEN ((get_byte(u.b, 0) & 15) << 12) | ((get_byte(u.b, 1) & 63) << 6)
                                                | (get_byte(u.b, 2) & 63)
                                    ELSE ((get_byte(u.b, 0) & 7) << 18) | ((get_byte(u.b, 1) & 63) << 12)
                                         | ((get_byte(u.b, 2) & 63) << 6) | (get_byte(u.b, 3) & 63)
                                END AS cp) p)
                   END
               ELSE '_json.loads(' || @extschema@._celerysalt_py_literal(to_jsonb(v::text)) || ')'
           END
$$;

-- The Field(...) keyword arguments for the constraints of s.
CREATE FUNCTION _celerysalt_py_constraints(s jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(format('%s=%s', k.arg, @extschema@._celerysalt_py_literal(s->k.kw)), ', ' ORDER BY k.ord)
      FROM (VALUES (1, 'minimum', 'ge'), (2, 'exclusiveMinimum', 'gt'), (3, 'maximum', 'le'),
                   (4, 'exclusiveMaximum', 'lt'), (5, 'multipleOf', 'multiple_of'),
                   (6, 'minLength', 'min_length'), (7, 'maxLength', 'max_length'),
                   (8, 'minItems', 'min_length'), (9, 'maxItems', 'max_length'),
                   (10, 'pattern', 'pattern')) k(ord, kw, arg)
     WHERE jsonb_typeof(s) = 'object'
       AND jsonb_typeof(s->k.kw) = CASE WHEN k.kw = 'pattern' THEN 'string' ELSE 'number' END
$$;

-- The Python type of subschema s; classes maps "$ref" strings to class names.
CREATE FUNCTION _celerysalt_py_type(root jsonb, s jsonb, classes jsonb)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t text;
    alts text[];
    has_null boolean := false;
    branch jsonb;
    cons text;
BEGIN
    IF s IS NULL OR jsonb_typeof(s) <> 'object' THEN
        RETURN '_t.Any';
    END IF;
    IF jsonb_typeof(s->'$ref') = 'string' THEN
        RETURN coalesce(classes->>(s->>'$ref'), '_t.Any');
    END IF;
    IF jsonb_typeof(s->'allOf') = 'array' AND jsonb_array_length(s->'allOf') = 1 THEN
        RETURN @extschema@._celerysalt_py_type(root, s->'allOf'->0, classes);
    END IF;

    IF jsonb_typeof(coalesce(s->'anyOf', s->'oneOf')) = 'array' THEN
        FOR branch IN SELECT b FROM jsonb_array_elements(coalesce(s->'anyOf', s->'oneOf')) b LOOP
            IF branch->>'type' = 'null' AND NOT branch ? 'enum' THEN
                has_null := true;
            ELSE
                alts := alts || @extschema@._celerysalt_py_type(root, branch, classes);
            END IF;
        END LOOP;
    ELSIF jsonb_typeof(s->'type') = 'array' THEN
        FOR branch IN SELECT jsonb_build_object('type', x) || (s - 'type') FROM jsonb_array_elements(s->'type') x LOOP
            IF branch->>'type' = 'null' THEN
                has_null := true;
            ELSE
                alts := alts || @extschema@._celerysalt_py_type(root, branch, classes);
            END IF;
        END LOOP;
    ELSE
        IF s ? 'const' THEN
            t := CASE WHEN jsonb_typeof(s->'const') IN ('object', 'array') THEN '_t.Any'
                      ELSE '_t.Literal[' || @extschema@._celerysalt_py_literal(s->'const') || ']' END;
        ELSIF jsonb_typeof(s->'enum') = 'array' THEN
            -- Literal takes scalars only; an enum listing arrays or objects is left to Any
            SELECT CASE WHEN count(*) = 0 OR bool_or(jsonb_typeof(e) IN ('object', 'array')) THEN '_t.Any'
                        ELSE '_t.Literal[' || string_agg(@extschema@._celerysalt_py_literal(e), ', ' ORDER BY i) || ']' END
              INTO t FROM jsonb_array_elements(s->'enum') WITH ORDINALITY a(e, i);
        ELSE
            t := CASE s->>'type'
                WHEN 'string' THEN
                    CASE s->>'format'
                        WHEN 'date-time' THEN '_dt.datetime'
                        WHEN 'date' THEN '_dt.date'
                        WHEN 'time' THEN '_dt.time'
                        WHEN 'duration' THEN '_dt.timedelta'
                        WHEN 'uuid' THEN '_uuid.UUID'
                        ELSE '_p.StrictStr'
                    END
                WHEN 'integer' THEN '_p.StrictInt'
                WHEN 'number' THEN '_p.StrictFloat'
                WHEN 'boolean' THEN '_p.StrictBool'
                WHEN 'null' THEN 'None'
                WHEN 'array' THEN
                    CASE WHEN jsonb_typeof(s->'prefixItems') = 'array' THEN
                             '_t.Tuple[' || coalesce((SELECT string_agg(@extschema@._celerysalt_py_type(root, e, classes), ', ' ORDER BY i)
                                                       FROM jsonb_array_elements(s->'prefixItems') WITH ORDINALITY a(e, i)), '()') || ']'
                         ELSE '_t.List[' || @extschema@._celerysalt_py_type(root, s->'items', classes) || ']'
                    END
                WHEN 'object' THEN
                    CASE WHEN jsonb_typeof(s->'additionalProperties') = 'object'
                         THEN '_t.Dict[_p.StrictStr, ' || @extschema@._celerysalt_py_type(root, s->'additionalProperties', classes) || ']'
                         ELSE '_t.Dict[_p.StrictStr, _t.Any]'
                    END
                ELSE '_t.Any'
            END;
        END IF;
        cons := @extschema@._celerysalt_py_constraints(s);
        IF cons IS NOT NULL THEN
            t := '_t.Annotated[' || t || ', _p.Field(' || cons || ')]';
        END IF;
        RETURN t;
    END IF;

    IF alts IS NULL THEN
        RETURN 'None';
    END IF;
    t := CASE WHEN cardinality(alts) = 1 THEN alts[1]
              ELSE '_t.Union[' || array_to_string(alts, ', ') || ']' END;
    IF has_null THEN
        t := '_t.Optional[' || t || ']';
    END IF;
    RETURN t;
END
$$;

-- One model class.  Properties whose names are not usable Python names get
-- a generated one and Field(alias=<the name>); texts pydantic would not give
-- back as they are (a title other than the class name, a description that
-- inspect.cleandoc would change) are also set in model_config.
CREATE FUNCTION _celerysalt_py_class(root jsonb, s jsonb, class_name text, classes jsonb)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    out text := format(E'class %s(_p.BaseModel):\n', class_name);
    props jsonb := CASE WHEN jsonb_typeof(s->'properties') = 'object' THEN s->'properties' ELSE '{}' END;
    config text[];
    prop record;
    pv jsonb;
    ident text;
    base text;
    n integer;
    args text[];
    body text := '';
    has_alias boolean := false;
    default_title text;
    -- names no field may take: pydantic's BaseModel attributes (model_* get
    -- a prefix anyway) and the module's classes, which annotations name
    taken text[] := ARRAY['construct', 'copy', 'dict', 'from_orm', 'json', 'parse_file', 'parse_obj',
                          'parse_raw', 'schema', 'schema_json', 'update_forward_refs', 'validate']
                    || ARRAY(SELECT c.value FROM jsonb_each_text(classes) c);
    kept text[];
BEGIN
    IF jsonb_typeof(s->'description') = 'string' THEN
        out := out || '    ' || @extschema@._celerysalt_py_literal(s->'description') || E'\n\n';
    END IF;
    IF s->'additionalProperties' = 'false' THEN
        config := config || 'extra="forbid"'::text;
    ELSIF s ? 'additionalProperties' THEN
        config := config || 'extra="allow"'::text;
    END IF;
    -- property names that are usable identifiers keep them, the others get
    -- one of their own (numbered after a clash)
    kept := ARRAY(SELECT k FROM jsonb_object_keys(props) k
                      WHERE @extschema@._celerysalt_py_ident(k, false) = k AND k <> ALL (taken));
    taken := taken || kept;
    FOR prop IN SELECT p.key, p.value FROM jsonb_each(props) p ORDER BY p.key LOOP
        pv := CASE WHEN jsonb_typeof(prop.value) = 'object' THEN prop.value ELSE '{}' END;
        ident := @extschema@._celerysalt_py_ident(prop.key, false);
        IF prop.key <> ALL (kept) THEN
            IF ident = ANY (taken) THEN
                base := ident;
                ident := base || '_';
                n := 1;
                WHILE ident = ANY (taken) LOOP
                    n := n + 1;
                    ident := base || '_' || n;
                END LOOP;
            END IF;
            taken := taken || ident;
        END IF;
        args := '{}';
        IF pv ? 'default' THEN
            args := args || ('default=' || @extschema@._celerysalt_py_literal(pv->'default'));
        ELSIF NOT coalesce(s->'required' ? prop.key, false) THEN
            args := args || 'default=None'::text;
        END IF;
        IF ident <> prop.key THEN
            args := args || ('alias=' || @extschema@._celerysalt_py_literal(to_jsonb(prop.key)));
            has_alias := true;
        END IF;
        IF jsonb_typeof(pv->'title') = 'string' THEN
            -- pydantic's own title: name.title().replace('_', ' ').strip(), none for references
            SELECT btrim(replace(string_agg(CASE WHEN m.a[1] ~ '^[A-Za-z]'
                                                 THEN translate(left(m.a[1], 1), 'abcdefghijklmnopqrstuvwxyz',
                                                                'ABCDEFGHIJKLMNOPQRSTUVWXYZ')
                                                      || translate(substr(m.a[1], 2), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ',
                                                                   'abcdefghijklmnopqrstuvwxyz')
                                                 ELSE m.a[1] END, '' ORDER BY m.o), '_', ' '))
              INTO default_title
              FROM regexp_matches(prop.key, '[A-Za-z]+|[^A-Za-z]+', 'g') WITH ORDINALITY m(a, o)
             WHERE prop.key ~ '^[A-Za-z0-9_]+$';
            IF pv->>'title' IS DISTINCT FROM default_title OR pv ? '$ref'
               OR jsonb_path_exists(pv, '$ ? (exists(@.anyOf[*]."$ref") || exists(@.oneOf[*]."$ref")
                                              || exists(@.allOf[*]."$ref"))') THEN
                args := args || ('title=' || @extschema@._celerysalt_py_literal(pv->'title'));
            END IF;
        END IF;
        IF jsonb_typeof(pv->'description') = 'string' THEN
            args := args || ('description=' || @extschema@._celerysalt_py_literal(pv->'description'));
        END IF;
        body := body || format(E'    %s: %s%s\n', ident,
                               @extschema@._celerysalt_py_type(root, prop.value, classes),
                               CASE WHEN cardinality(args) > 0
                                    THEN ' = _p.Field(' || array_to_string(args, ', ') || ')' ELSE '' END);
    END LOOP;
    IF has_alias THEN
        config := config || 'populate_by_name=True'::text;
    END IF;
    IF jsonb_typeof(s->'title') = 'string' AND s->>'title' <> class_name THEN
        config := config || ('title=' || @extschema@._celerysalt_py_literal(s->'title'));
    END IF;
    IF jsonb_typeof(s->'description') = 'string'
       AND NOT (s->>'description' ~ '^[!-~]' AND s->>'description' !~ E'[\\t\\n]') THEN
        config := config || ('json_schema_extra={"description": '
                             || @extschema@._celerysalt_py_literal(s->'description') || '}');
    END IF;
    IF config IS NOT NULL THEN
        out := out || '    model_config = _p.ConfigDict(' || array_to_string(config, ', ') || E')\n';
    END IF;
    IF body = '' AND config IS NULL THEN
        body := E'    pass\n';
    END IF;
    RETURN out || body;
END
$$;

CREATE FUNCTION celerysalt_pydantic_model(topic text, version text DEFAULT 'latest')
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    root jsonb := @extschema@.celerysalt_get_schema(topic, version);
    real_version text;
    defs_key text := CASE WHEN root ? '$defs' THEN '$defs' ELSE 'definitions' END;
    defs jsonb;
    classes jsonb := '{}';
    names text[];
    def record;
    elem record;
    name text;
    base text;
    n integer;
    kind text;
    root_class text;
    model_names text[] := '{}';
    model_keys text[] := '{}';
    out text;
    defs_out text := '';
    members text;
    used text[];
    kept text[];
    texts text[];
    need_texts boolean := false;
    heads text[];
    -- names no enum member may take: those Enum and str give a meaning
    member_reserved CONSTANT text[] := ARRAY['mro', 'name', 'value',
        'capitalize', 'casefold', 'center', 'count', 'encode', 'endswith', 'expandtabs', 'find', 'format',
        'format_map', 'index', 'isalnum', 'isalpha', 'isascii', 'isdecimal', 'isdigit', 'isidentifier',
        'islower', 'isnumeric', 'isprintable', 'isspace', 'istitle', 'isupper', 'join', 'ljust', 'lower',
        'lstrip', 'maketrans', 'partition', 'removeprefix', 'removesuffix', 'replace', 'rfind', 'rindex',
        'rjust', 'rpartition', 'rsplit', 'rstrip', 'split', 'splitlines', 'startswith', 'strip', 'swapcase',
        'title', 'translate', 'upper', 'zfill'];
BEGIN
    SELECT c.version INTO real_version FROM @extschema@.celerysalt_schemas c
     WHERE c.topic = topic AND c.active AND c.schema = root
     ORDER BY @extschema@._celerysalt_version_key(c.version) DESC, c.id LIMIT 1;
    IF version IS NOT NULL AND version <> 'latest' THEN
        real_version := version;
    END IF;
    real_version := coalesce(real_version, version, 'latest');
    defs := CASE WHEN jsonb_typeof(root->defs_key) = 'object' THEN root->defs_key ELSE '{}' END;

    -- class names: one per $defs entry, the root last; names that are
    -- usable identifiers keep them, the others get one of their own
    names := ARRAY(SELECT k FROM jsonb_object_keys(defs) k WHERE @extschema@._celerysalt_py_ident(k, true) = k);
    FOR def IN SELECT d.key FROM jsonb_each(defs) d ORDER BY d.key LOOP
        name := @extschema@._celerysalt_py_ident(def.key, true);
        IF name <> def.key THEN
            IF name = ANY (names) THEN
                base := name;
                name := base || '_';
                n := 1;
                WHILE name = ANY (names) LOOP
                    n := n + 1;
                    name := base || '_' || n;
                END LOOP;
            END IF;
            names := names || name;
        END IF;
        classes := classes || jsonb_build_object(
            format('#/%s/%s', defs_key, replace(replace(def.key, '~', '~0'), '/', '~1')), name);
    END LOOP;
    root_class := @extschema@._celerysalt_py_ident(coalesce(root->>'title', 'Event'), true);
    IF root_class = ANY (names) THEN
        base := root_class || 'Event';
        root_class := base;
        n := 1;
        WHILE root_class = ANY (names) LOOP
            n := n + 1;
            root_class := base || '_' || n;
        END LOOP;
    END IF;
    classes := classes || jsonb_build_object('#', root_class);

    -- enums and aliases first, then models
    FOR def IN SELECT d.key, d.value,
                      classes->>format('#/%s/%s', defs_key, replace(replace(d.key, '~', '~0'), '/', '~1')) AS class_name
                 FROM jsonb_each(defs) d ORDER BY d.key LOOP
        kind := CASE
            WHEN jsonb_typeof(def.value) <> 'object' THEN 'alias'
            WHEN jsonb_typeof(def.value->'enum') = 'array' AND NOT def.value ? 'properties'
                 AND (SELECT coalesce(bool_and(jsonb_typeof(e) = 'string'), false)
                        FROM jsonb_array_elements(def.value->'enum') e) THEN 'enum'
            WHEN def.value ? 'properties' OR def.value->>'type' = 'object' THEN 'model'
            ELSE 'alias' END;
        IF kind = 'enum' THEN
            -- member names as for fields; values that are usable names keep them
            kept := ARRAY(SELECT e #>> '{}' FROM jsonb_array_elements(def.value->'enum') e
                              WHERE @extschema@._celerysalt_py_ident(e #>> '{}', false) = e #>> '{}'
                                AND e #>> '{}' <> ALL (member_reserved));
            used := '{}';
            members := '';
            FOR elem IN SELECT a.e FROM jsonb_array_elements(def.value->'enum') WITH ORDINALITY a(e, i) ORDER BY a.i LOOP
                name := @extschema@._celerysalt_py_ident(elem.e #>> '{}', false);
                IF NOT (name = elem.e #>> '{}' AND name = ANY (kept) AND name <> ALL (used)) THEN
                    IF name = ANY (member_reserved) OR name = ANY (kept) OR name = ANY (used) THEN
                        base := name;
                        name := base || '_';
                        n := 1;
                        WHILE name = ANY (member_reserved) OR name = ANY (kept) OR name = ANY (used) LOOP
                            n := n + 1;
                            name := base || '_' || n;
                        END LOOP;
                    END IF;
                END IF;
                used := used || name;
                members := members || format(E'    %s = %s\n', name, @extschema@._celerysalt_py_literal(elem.e));
            END LOOP;
            -- pydantic gives an enum the class name as title and the docstring
            -- through inspect.cleandoc as description: keep the registered ones
            texts := '{}';
            IF jsonb_typeof(def.value->'title') = 'string' THEN
                texts := texts || ('title=' || @extschema@._celerysalt_py_literal(def.value->'title'));
            END IF;
            IF jsonb_typeof(def.value->'description') = 'string' THEN
                texts := texts || ('description=' || @extschema@._celerysalt_py_literal(def.value->'description'));
            END IF;
            IF (jsonb_typeof(def.value->'title') = 'string' AND def.value->>'title' <> def.class_name)
               OR (jsonb_typeof(def.value->'description') = 'string'
                   AND NOT (def.value->>'description' ~ '^[!-~]' AND def.value->>'description' !~ E'[\\t\\n]')) THEN
                need_texts := true;
            ELSE
                texts := '{}';
            END IF;
            defs_out := defs_out || format(E'\n\n%sclass %s(str, _enum.Enum):\n%s%s',
                                           CASE WHEN cardinality(texts) > 0
                                                THEN '@_json_schema_texts(' || array_to_string(texts, ', ') || E')\n'
                                                ELSE '' END,
                                           def.class_name,
                                           CASE WHEN jsonb_typeof(def.value->'description') = 'string'
                                                THEN '    ' || @extschema@._celerysalt_py_literal(def.value->'description') || E'\n\n'
                                                ELSE '' END,
                                           members);
        ELSIF kind = 'model' THEN
            model_keys := model_keys || def.key;
        ELSE
            defs_out := defs_out || format(E'\n\n%s = %s\n', def.class_name,
                                           @extschema@._celerysalt_py_type(root, def.value, classes));
        END IF;
    END LOOP;
    FOR def IN SELECT d.key, d.value,
                      classes->>format('#/%s/%s', defs_key, replace(replace(d.key, '~', '~0'), '/', '~1')) AS class_name
                 FROM jsonb_each(defs) d WHERE d.key = ANY (model_keys) ORDER BY d.key LOOP
        defs_out := defs_out || E'\n\n' || @extschema@._celerysalt_py_class(root, def.value, def.class_name, classes);
        model_names := model_names || def.class_name;
    END LOOP;
    defs_out := defs_out || E'\n\n' || @extschema@._celerysalt_py_class(root, root, root_class, classes);
    model_names := model_names || root_class;

    -- the call in the header comment, as SQL when that is plain text
    heads := ARRAY(SELECT CASE WHEN @extschema@._celerysalt_py_literal(to_jsonb(h)) = '"' || h || '"'
                                    AND strpos(h, '''') = 0
                               THEN '''' || h || '''' ELSE @extschema@._celerysalt_py_literal(to_jsonb(h)) END
                     FROM unnest(ARRAY[topic, real_version]) WITH ORDINALITY u(h, i) ORDER BY i);
    out := format(E'# Generated by celerysalt_pydantic_model(%s, %s): pydantic v2 models of the\n'
                  || E'# JSON Schema registered for this topic. Do not edit; generate again instead.\n'
                  || E'from __future__ import annotations\n\n'
                  || E'import datetime as _dt\nimport enum as _enum\nimport json as _json\n'
                  || E'import typing as _t\nimport uuid as _uuid\n\nimport pydantic as _p\n\n'
                  || E'TOPIC = %s\nVERSION = %s\n',
                  heads[1], heads[2],
                  @extschema@._celerysalt_py_literal(to_jsonb(topic)),
                  @extschema@._celerysalt_py_literal(to_jsonb(real_version)));
    IF need_texts THEN
        out := out || E'\n\n'
            || E'def _json_schema_texts(**texts):\n'
            || E'    """Give an enum''s JSON Schema the registered title and description as they\n'
            || E'    are (pydantic would use the class name and the cleaned-up docstring)."""\n'
            || E'    def apply(cls):\n'
            || E'        def __get_pydantic_json_schema__(core_schema, handler):\n'
            || E'            json_schema = handler(core_schema)\n'
            || E'            handler.resolve_ref_schema(json_schema).update(texts)\n'
            || E'            return json_schema\n'
            || E'        cls.__get_pydantic_json_schema__ = __get_pydantic_json_schema__\n'
            || E'        return cls\n'
            || E'    return apply\n';
    END IF;
    out := out || defs_out
        || format(E'\n\nfor _model in (%s,):\n    _model.model_rebuild()\n\nModel = %s\n',
                  array_to_string(model_names, ', '), root_class);
    RETURN out;
END
$$;
COMMENT ON FUNCTION celerysalt_pydantic_model(text, text) IS
    'Python source of pydantic v2 models for the registered schema of (topic, version): nested $defs, Optional, Literal/Enum, Field constraints; Model is the event model.';

-- ---------------------------------------------------------------- graph
CREATE FUNCTION _celerysalt_dot_id(s text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT '"' || replace(replace(replace(s, '\', '\\'), '"', '\"'), E'\n', '\n') || '"'
$$;

CREATE FUNCTION celerysalt_catalog_dot()
RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH pubs AS (
        SELECT p.topic, p.service, coalesce(sum(ps.published), 0)::bigint AS n
          FROM (SELECT pb.topic, pb.service FROM @extschema@.celerysalt_publishers pb
                UNION
                SELECT ps.topic, ps.service FROM @extschema@._celerysalt_publish_stats ps) p
          LEFT JOIN @extschema@._celerysalt_publish_stats ps
                 ON ps.topic = p.topic AND ps.service = p.service
         GROUP BY p.topic, p.service
    ), subs AS (
        SELECT s.topic, s.service, string_agg(s.handler, ', ' ORDER BY s.handler) AS handlers
          FROM @extschema@.celerysalt_subscribers s GROUP BY s.topic, s.service
    ), topics AS (
        SELECT x.topic, c.versions, c.latest_version, c.deprecated_versions
          FROM (SELECT topic FROM @extschema@.celerysalt_catalog
                UNION SELECT topic FROM pubs UNION SELECT topic FROM subs) x
          LEFT JOIN @extschema@.celerysalt_catalog c ON c.topic = x.topic
    ), services AS (
        SELECT service FROM pubs UNION SELECT service FROM subs
    ), lines AS (
        SELECT 1 AS part, service AS k1, '' AS k2,
               format('  %s [shape=box, style=rounded, label=%s];',
                      @extschema@._celerysalt_dot_id('service:' || service),
                      @extschema@._celerysalt_dot_id(service)) AS line
          FROM services
        UNION ALL
        SELECT 2, topic, '',
               format('  %s [shape=ellipse, label=%s%s];',
                      @extschema@._celerysalt_dot_id('topic:' || topic),
                      @extschema@._celerysalt_dot_id(topic || E'\n' ||
                          coalesce(array_to_string(versions, ', '), 'unregistered')),
                      CASE WHEN versions IS NULL THEN ', style=dashed'
                           WHEN latest_version = ANY (deprecated_versions) THEN ', color=gray'
                           ELSE '' END)
          FROM topics
        UNION ALL
        SELECT 3, service, topic,
               format('  %s -> %s [label=%s];',
                      @extschema@._celerysalt_dot_id('service:' || service),
                      @extschema@._celerysalt_dot_id('topic:' || topic),
                      @extschema@._celerysalt_dot_id(n || ' published'))
          FROM pubs
        UNION ALL
        SELECT 4, topic, service,
               format('  %s -> %s [label=%s];',
                      @extschema@._celerysalt_dot_id('topic:' || topic),
                      @extschema@._celerysalt_dot_id('service:' || service),
                      @extschema@._celerysalt_dot_id(handlers))
          FROM subs
    )
    SELECT E'digraph celerysalt {\n  rankdir=LR;\n  node [fontname="Helvetica"];\n  edge [fontname="Helvetica", fontsize=10];\n'
           || coalesce(string_agg(line, E'\n' ORDER BY part, k1, k2) || E'\n', '')
           || '}'
      FROM lines
$$;
COMMENT ON FUNCTION celerysalt_catalog_dot() IS
    'A Graphviz (dot) graph of publishing services -> topics (with versions) -> subscribing services.';
-- celerysalt install script, part 40: follow actions (src/follow.c, src/follow_rules.c,
-- docs/follow-actions.md).

-- ------------------------------------------------------- failure log
-- Rules that could not be evaluated or whose event could not be published,
-- recorded instead of failing the UPDATE when celerysalt.follow_action_errors
-- = 'dead_letter'.  Not celerysalt_dead_letters: that table holds events the
-- broker refused, each with an event id and a deliverable topic and payload;
-- a failed rule may have neither.
CREATE TABLE celerysalt_follow_action_failures (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    failed_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    table_oid   oid         NOT NULL,
    table_name  text        NOT NULL,
    row_key     jsonb       NOT NULL,
    rule_index  integer,
    rule        jsonb,
    topic       text,
    payload     jsonb,
    sqlstate    text        NOT NULL,
    reason      text        NOT NULL
);
CREATE INDEX celerysalt_follow_action_failures_failed_at
    ON celerysalt_follow_action_failures (failed_at);
COMMENT ON TABLE celerysalt_follow_action_failures IS
    'Follow-action rules that could not be evaluated or published (celerysalt.follow_action_errors = dead_letter): table, row key, rule, reason.';
SELECT pg_catalog.pg_extension_config_dump('celerysalt_follow_action_failures', '');
SELECT pg_catalog.pg_extension_config_dump('celerysalt_follow_action_failures_id_seq', '');

-- ------------------------------------------------------------ trigger
CREATE FUNCTION _celerysalt_follow_actions_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', '_celerysalt_follow_actions_trigger'
LANGUAGE C;

-- --------------------------------------------------------------- rules
CREATE FUNCTION celerysalt_follow_action_check(rule jsonb, tbl regclass DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'celerysalt_follow_action_check'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION celerysalt_follow_action_check(jsonb, regclass) IS
    'Raises an error unless the jsonb is a valid follow-action rule (for the table, when given); returns it unchanged.';

CREATE FUNCTION celerysalt_follow_action_rule(
    field_name text,
    operator   text,
    topic      text,
    value      jsonb    DEFAULT NULL,
    payload    jsonb    DEFAULT NULL,
    version    text     DEFAULT NULL,
    persist    text     DEFAULT 'True',
    tbl        regclass DEFAULT NULL,
    from_value jsonb    DEFAULT NULL,
    to_value   jsonb    DEFAULT NULL,
    name       text     DEFAULT NULL)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT @extschema@.celerysalt_follow_action_check(
        pg_catalog.jsonb_build_object('field_name', field_name, 'operator', operator,
                                      'topic', topic, 'persist', persist)
        || CASE WHEN value IS NULL THEN '{}'::jsonb
                ELSE pg_catalog.jsonb_build_object('value', value) END
        || CASE WHEN from_value IS NULL THEN '{}'::jsonb
                ELSE pg_catalog.jsonb_build_object('from', from_value) END
        || CASE WHEN to_value IS NULL THEN '{}'::jsonb
                ELSE pg_catalog.jsonb_build_object('to', to_value) END
        || CASE WHEN payload IS NULL THEN '{}'::jsonb
                ELSE pg_catalog.jsonb_build_object('payload', payload) END
        || CASE WHEN version IS NULL THEN '{}'::jsonb
                ELSE pg_catalog.jsonb_build_object('version', version) END
        || CASE WHEN name IS NULL THEN '{}'::jsonb
                ELSE pg_catalog.jsonb_build_object('name', name) END,
        tbl)
$$;
COMMENT ON FUNCTION celerysalt_follow_action_rule(text, text, text, jsonb, jsonb, text, text, regclass, jsonb, jsonb, text) IS
    'Builds a follow-action rule (append it to a row''s rules column); raises an error for an unknown operator, a missing or invalid topic, a column the table lacks, a bad persist value or payload.';

-- -------------------------------------------------- attach / detach
CREATE FUNCTION celerysalt_attach_follow_actions(tbl regclass,
                                                 rules_column name DEFAULT 'on_change_rules',
                                                 adopt_existing_rules boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    coltype oid;
    kind    "char";
    current text;
    stored  boolean;
BEGIN
    IF tbl IS NULL OR rules_column IS NULL THEN
        RAISE EXCEPTION 'table and rules column must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = tbl;
    IF kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', tbl
            USING ERRCODE = 'wrong_object_type',
                  DETAIL = 'Follow actions are row triggers; they can be attached to tables and partitioned tables only.';
    END IF;
    SELECT a.atttypid INTO coltype
      FROM pg_attribute a
     WHERE a.attrelid = tbl AND a.attname = rules_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'column "%" of table "%" does not exist', rules_column, tbl
            USING ERRCODE = 'undefined_column',
                  HINT = 'Add it first, for example: ALTER TABLE ... ADD COLUMN on_change_rules jsonb NOT NULL DEFAULT ''[]''.';
    END IF;
    IF coltype <> 'jsonb'::regtype THEN
        RAISE EXCEPTION 'follow-action rules column "%" of table "%" must be of type jsonb', rules_column, tbl
            USING ERRCODE = 'datatype_mismatch',
                  DETAIL = pg_catalog.format('The column is of type %s.', coltype::regtype),
                  HINT = 'A Django JSONField or SQLAlchemy JSONB column is jsonb in PostgreSQL.';
    END IF;

    -- Rules already in the table were written without the trigger's checks
    -- of who may store a rule: they fire only if the caller adopts them.
    IF NOT adopt_existing_rules THEN
        EXECUTE pg_catalog.format(
            'SELECT EXISTS (SELECT FROM %s WHERE %I IS NOT NULL AND %I OPERATOR(pg_catalog.<>) ALL (ARRAY[''[]'', ''{}'', ''null'']::pg_catalog.jsonb[]))',
            tbl, rules_column, rules_column) INTO stored;
        IF stored THEN
            RAISE EXCEPTION 'table "%" already holds follow-action rules', tbl
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = 'They were stored before follow actions were attached, so nobody checked that their writers may publish and read the columns they read.',
                      HINT = 'Review them, then call celerysalt_attach_follow_actions(..., adopt_existing_rules => true).';
        END IF;
    END IF;

    SELECT pg_catalog.encode(t.tgargs, 'escape') INTO current
      FROM pg_trigger t
     WHERE t.tgrelid = tbl AND t.tgname = 'zz_celerysalt_follow_actions';
    IF FOUND THEN
        IF current = rules_column::text || '\000' THEN
            RETURN;             -- already attached to this column
        END IF;
        EXECUTE pg_catalog.format('DROP TRIGGER zz_celerysalt_follow_actions ON %s', tbl);
    END IF;
    -- The name sorts after ordinary trigger names: BEFORE triggers fire in
    -- name order, so this one sees the row as the others left it.
    EXECUTE pg_catalog.format(
        'CREATE TRIGGER zz_celerysalt_follow_actions BEFORE INSERT OR UPDATE ON %s FOR EACH ROW '
        'EXECUTE FUNCTION %I._celerysalt_follow_actions_trigger(%L)',
        tbl, '@extschema@', rules_column);
END
$$;
COMMENT ON FUNCTION celerysalt_attach_follow_actions(regclass, name, boolean) IS
    'Evaluates the follow-action rules stored in the rules column on every UPDATE of the table (idempotent).';

CREATE FUNCTION celerysalt_detach_follow_actions(tbl regclass)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_trigger t
                WHERE t.tgrelid = tbl AND t.tgname = 'zz_celerysalt_follow_actions') THEN
        EXECUTE pg_catalog.format('DROP TRIGGER zz_celerysalt_follow_actions ON %s', tbl);
    END IF;
END
$$;
COMMENT ON FUNCTION celerysalt_detach_follow_actions(regclass) IS
    'Stops evaluating follow-action rules on UPDATEs of the table (the rules column is left as it is).';

CREATE VIEW celerysalt_follow_action_tables AS
SELECT t.tgrelid::regclass AS table_name,
       pg_catalog.split_part(pg_catalog.encode(t.tgargs, 'escape'), '\000', 1) AS rules_column,
       t.tgenabled <> 'D' AS enabled
  FROM pg_catalog.pg_trigger t
 WHERE t.tgname = 'zz_celerysalt_follow_actions'
   AND t.tgfoid = '@extschema@._celerysalt_follow_actions_trigger()'::regprocedure
   AND t.tgparentid = 0;
COMMENT ON VIEW celerysalt_follow_action_tables IS
    'Tables with follow actions attached, and the column their rules are read from.';
-- celerysalt install script, part 50: RPC from SQL.

CREATE FUNCTION celerysalt_call(topic text, payload jsonb,
                                timeout interval DEFAULT '30 seconds',
                                version text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'celerysalt_call'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION celerysalt_call(text, jsonb, interval, text) IS
    'Sends an RPC request to the Celery handler of topic at once (not at commit) and returns its response; raises CR001-CR008 for remote outcomes.';

CREATE FUNCTION celerysalt_call_envelope(topic text, payload jsonb,
                                         timeout interval DEFAULT '30 seconds',
                                         version text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'celerysalt_call_envelope'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION celerysalt_call_envelope(text, jsonb, interval, text) IS
    'Like celerysalt_call, but returns {"outcome", "task_id", "response", "error"} for every remote outcome instead of raising.';
-- celerysalt install script, part 90: privileges, all in one place.
--
-- PUBLIC keeps only pure functions: the JSON Schema functions and the
-- follow-action rule checker and builder.  Readers see the registry, the
-- delivery state and logs; publishers also publish, call (RPC), attach
-- follow actions and track; admins also change schemas and settings and
-- replay events.  docs/security.md has the table; test/t/041_privileges.pl
-- compares it with the catalog.

REVOKE ALL ON FUNCTION
    celerysalt_publish(text, jsonb, text, text),
    celerysalt_wake(),
    celerysalt_replay(uuid),
    celerysalt_replay_since(timestamptz, timestamptz, text),
    celerysalt_dead_letter_retry(uuid),
    _celerysalt_registry_changed(),
    _celerysalt_check_names(text, text),
    _celerysalt_schema_first_difference(jsonb, jsonb),
    _celerysalt_schema_diff(jsonb, jsonb),
    _celerysalt_version_key(text),
    _celerysalt_topics_hint(),
    _celerysalt_raise_unknown(text, text),
    celerysalt_get_schema(text, text),
    celerysalt_validate_event(text, jsonb, text),
    celerysalt_event_errors(text, jsonb, text),
    _celerysalt_check_mode(text),
    celerysalt_get_compatibility(text),
    celerysalt_set_compatibility(text, text),
    _celerysalt_compat_changes(text, jsonb, text, text),
    celerysalt_check_compatibility(text, jsonb, text),
    _celerysalt_resolve(jsonb, jsonb),
    _celerysalt_type_label(jsonb, jsonb),
    _celerysalt_schema_fields(jsonb, jsonb, text, integer, text[]),
    _celerysalt_check_schema(text, text, text, jsonb),
    _celerysalt_raise_conflict(text, text, text, jsonb, jsonb),
    celerysalt_register_schema(text, jsonb, text, text, text, jsonb, jsonb, text, text, text, text),
    celerysalt_deprecate_schema(text, text, text),
    celerysalt_track_publisher(text, text, text, text, text),
    celerysalt_track_subscriber(text, text, text),
    celerysalt_registry_compact(),
    _celerysalt_py_ident(text, boolean),
    _celerysalt_py_literal(jsonb),
    _celerysalt_py_constraints(jsonb),
    _celerysalt_py_type(jsonb, jsonb, jsonb),
    _celerysalt_py_class(jsonb, jsonb, text, jsonb),
    celerysalt_pydantic_model(text, text),
    _celerysalt_dot_id(text),
    celerysalt_catalog_dot()
FROM PUBLIC;

GRANT SELECT ON celerysalt_topics, celerysalt_schemas, celerysalt_schema_fields,
                celerysalt_publishers, celerysalt_subscribers,
                celerysalt_catalog, celerysalt_catalog_fields, celerysalt_catalog_events,
                celerysalt_status
   TO celerysalt_reader;
GRANT EXECUTE ON FUNCTION
    _celerysalt_version_key(text),
    _celerysalt_topics_hint(),
    _celerysalt_raise_unknown(text, text),
    _celerysalt_schema_diff(jsonb, jsonb),
    _celerysalt_check_mode(text),
    _celerysalt_compat_changes(text, jsonb, text, text),
    _celerysalt_resolve(jsonb, jsonb),
    _celerysalt_py_ident(text, boolean),
    _celerysalt_py_literal(jsonb),
    _celerysalt_py_constraints(jsonb),
    _celerysalt_py_type(jsonb, jsonb, jsonb),
    _celerysalt_py_class(jsonb, jsonb, text, jsonb),
    _celerysalt_dot_id(text),
    celerysalt_get_schema(text, text),
    celerysalt_validate_event(text, jsonb, text),
    celerysalt_event_errors(text, jsonb, text),
    celerysalt_get_compatibility(text),
    celerysalt_check_compatibility(text, jsonb, text),
    celerysalt_pydantic_model(text, text),
    celerysalt_catalog_dot()
   TO celerysalt_reader;

-- celerysalt_publish runs as the extension's owner, so publishers need no
-- privilege on the outbox: an event can only enter it through the function,
-- that is, validated against the registry.
ALTER FUNCTION celerysalt_publish(text, jsonb, text, text)
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
GRANT EXECUTE ON FUNCTION _celerysalt_worker_state() TO celerysalt_reader;
GRANT EXECUTE ON FUNCTION
    celerysalt_publish(text, jsonb, text, text),
    celerysalt_wake(),
    _celerysalt_check_names(text, text),
    celerysalt_track_publisher(text, text, text, text, text),
    celerysalt_track_subscriber(text, text, text)
   TO celerysalt_publisher;

GRANT INSERT, UPDATE, DELETE ON celerysalt_topics, celerysalt_schemas, celerysalt_schema_fields,
                                celerysalt_publishers, celerysalt_subscribers
   TO celerysalt_admin;
GRANT USAGE ON SEQUENCE celerysalt_schemas_id_seq TO celerysalt_admin;
GRANT DELETE ON celerysalt_dead_letters TO celerysalt_admin;
GRANT EXECUTE ON FUNCTION
    _celerysalt_registry_changed(),
    _celerysalt_schema_first_difference(jsonb, jsonb),
    _celerysalt_type_label(jsonb, jsonb),
    _celerysalt_schema_fields(jsonb, jsonb, text, integer, text[]),
    _celerysalt_check_schema(text, text, text, jsonb),
    _celerysalt_raise_conflict(text, text, text, jsonb, jsonb),
    celerysalt_register_schema(text, jsonb, text, text, text, jsonb, jsonb, text, text, text, text),
    celerysalt_deprecate_schema(text, text, text),
    celerysalt_set_compatibility(text, text),
    celerysalt_registry_compact(),
    celerysalt_replay(uuid),
    celerysalt_replay_since(timestamptz, timestamptz, text),
    celerysalt_dead_letter_retry(uuid)
   TO celerysalt_admin;

-- RPC sends a task to a service with the broker's credentials: publishers only.
REVOKE ALL ON FUNCTION
    celerysalt_call(text, jsonb, interval, text),
    celerysalt_call_envelope(text, jsonb, interval, text),
    celerysalt_attach_follow_actions(regclass, name, boolean),
    celerysalt_detach_follow_actions(regclass),
    _celerysalt_follow_actions_trigger()
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    celerysalt_call(text, jsonb, interval, text),
    celerysalt_call_envelope(text, jsonb, interval, text),
    celerysalt_attach_follow_actions(regclass, name, boolean),
    celerysalt_detach_follow_actions(regclass),
    _celerysalt_follow_actions_trigger()
   TO celerysalt_publisher;

-- The roles reach the extension's objects in its schema (a schema of its own
-- grants nothing by itself; on public this changes nothing).
GRANT USAGE ON SCHEMA @extschema@ TO celerysalt_reader;

-- Readers see what was delivered, refused and what failed.
GRANT SELECT ON celerysalt_events, celerysalt_dead_letters,
                celerysalt_follow_action_failures, celerysalt_follow_action_tables
   TO celerysalt_reader;
