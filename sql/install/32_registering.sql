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

-- jsonb keeps no key order, so the order of properties (which generated
-- models follow) is recorded from the JSON text: {JSON pointer: [names]} for
-- the root ("") and each $defs/definitions entry that has properties; a
-- name given twice counts where it first appears.
CREATE FUNCTION _celerysalt_property_order(doc json)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(jsonb_object_agg(o.ptr, o.names), '{}')
      FROM (SELECT s.ptr,
                   (SELECT jsonb_agg(k.name ORDER BY k.first)
                      FROM (SELECT x.name, min(x.i) AS first
                              FROM json_object_keys(s.obj->'properties') WITH ORDINALITY x(name, i)
                             GROUP BY x.name) k) AS names
              FROM (SELECT '' AS ptr, doc AS obj
                     WHERE json_typeof(doc) = 'object'
                    UNION ALL
                    SELECT format('/%s/%s', d.k, replace(replace(e.key, '~', '~0'), '/', '~1')), e.value
                      FROM (VALUES ('$defs'), ('definitions')) d(k)
                     CROSS JOIN LATERAL json_each(CASE WHEN json_typeof(doc) = 'object'
                                                        AND json_typeof(doc->d.k) = 'object'
                                                       THEN doc->d.k END) e) s
             WHERE json_typeof(s.obj) = 'object' AND json_typeof(s.obj->'properties') = 'object') o
$$;

CREATE FUNCTION celerysalt_register_property_order(topic text, version text, schema json,
                                                   response_schema json DEFAULT NULL,
                                                   error_schema json DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    existing @extschema@.celerysalt_schemas;
    given jsonb := '{}';
BEGIN
    SELECT * INTO existing FROM @extschema@.celerysalt_schemas c
     WHERE c.topic = topic AND c.version = version AND c.active FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM @extschema@._celerysalt_raise_unknown(topic, version);
    END IF;
    -- only a document equal to the registered one tells its order
    IF schema::jsonb = existing.schema THEN
        given := given || jsonb_build_object('schema', @extschema@._celerysalt_property_order(schema));
    END IF;
    IF response_schema::jsonb = existing.response_schema THEN
        given := given || jsonb_build_object('response_schema',
                                             @extschema@._celerysalt_property_order(response_schema));
    END IF;
    IF error_schema::jsonb = existing.error_schema THEN
        given := given || jsonb_build_object('error_schema', @extschema@._celerysalt_property_order(error_schema));
    END IF;
    -- first writer wins, as for the schemas
    given := given - ARRAY(SELECT jsonb_object_keys(coalesce(existing.property_order, '{}')));
    IF given = '{}' THEN
        RETURN false;
    END IF;
    UPDATE @extschema@.celerysalt_schemas c
       SET property_order = coalesce(c.property_order, '{}') || given
     WHERE c.id = existing.id;
    RETURN true;
END
$$;
COMMENT ON FUNCTION celerysalt_register_property_order(text, text, json, json, json) IS
    'Records the declaration order of the properties of a registered (topic, version) from the JSON text of its schema, response and error schemas (those equal to the registered ones; first writer wins), for generated models; true if something was recorded.';

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

CREATE FUNCTION celerysalt_track_subscriber(topic text, service text, handler text,
                                            queue text DEFAULT NULL)
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
    IF queue = '' OR length(queue) > 255 THEN
        RAISE EXCEPTION 'queue must be NULL or have between 1 and 255 bytes' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO @extschema@.celerysalt_subscribers AS s (topic, service, handler, queue)
    VALUES (topic, service, handler, queue)
    ON CONFLICT ON CONSTRAINT celerysalt_subscribers_pkey
    DO UPDATE SET last_seen_at = now(), queue = coalesce(EXCLUDED.queue, s.queue);
    -- events published before this subscriber's queue existed are sent again
    PERFORM @extschema@.celerysalt_retry_unroutable();
END
$$;
COMMENT ON FUNCTION celerysalt_track_subscriber(text, text, text, text) IS
    'Records that handler of service (consuming queue, when given) subscribes to topic (a concrete topic or a wildcard pattern); upsert.';

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
       e.size AS payload_size_bytes,
       e.traceparent
  FROM @extschema@.celerysalt_events e
  LEFT JOIN @extschema@.celerysalt_schemas c ON c.topic = e.topic AND c.version = e.version;
COMMENT ON VIEW celerysalt_catalog_events IS
    'Delivered events (celerysalt_events, within celerysalt.delivered_retention) with their schema version and W3C traceparent, without payloads.';
