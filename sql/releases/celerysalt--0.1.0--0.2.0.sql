-- celerysalt upgrade script 0.1.0 -> 0.2.0.
--
-- Every change made to sql/install/ after 0.1.0 is written here too, so that
-- ALTER EXTENSION celerysalt UPDATE brings an existing 0.1.0 installation to
-- exactly what CREATE EXTENSION installs.  test/t/050_upgrade.pl installs
-- sql/releases/celerysalt--0.1.0.sql (0.1.0 as released, never edited),
-- runs the update and compares the catalog with a fresh install.
\echo Use "ALTER EXTENSION celerysalt UPDATE" to load this file. \quit

-- ------------------------------------------------------ unroutable events
-- (events are published mandatory; what no queue received waits here)
CREATE TABLE celerysalt_unroutable (
    id              uuid        PRIMARY KEY,
    event_id        bigint      NOT NULL,
    topic           text        NOT NULL,
    version         text,
    correlation_id  text,
    payload         jsonb       NOT NULL,
    enqueued_at     timestamptz NOT NULL,
    returned_at     timestamptz NOT NULL
);
CREATE INDEX celerysalt_unroutable_topic ON celerysalt_unroutable (topic);
COMMENT ON TABLE celerysalt_unroutable IS
    'Events no queue received (returned by the broker): sent again when a subscriber registers and every celerysalt.unroutable_retry_interval, dead-lettered after celerysalt.unroutable_retention.';

CREATE VIEW celerysalt_unroutable_topics AS
SELECT topic, pg_catalog.count(*) AS events,
       pg_catalog.min(enqueued_at) AS oldest_enqueued_at,
       pg_catalog.max(returned_at) AS last_returned_at
  FROM @extschema@.celerysalt_unroutable
 GROUP BY topic;
COMMENT ON VIEW celerysalt_unroutable_topics IS
    'Per topic: events waiting for a queue to be bound.';

SELECT pg_catalog.pg_extension_config_dump('celerysalt_unroutable', '');

-- the status view gains unroutable and returned_total: rebuilt with the
-- worker-state function, whose result gains returned_total
DROP VIEW celerysalt_status;
DROP FUNCTION _celerysalt_worker_state();
CREATE FUNCTION _celerysalt_worker_state(
    OUT worker_pid integer, OUT broker_connected boolean, OUT broker text,
    OUT delivered_total bigint, OUT dead_lettered_total bigint,
    OUT last_delivery_at timestamptz, OUT last_error text,
    OUT last_error_at timestamptz, OUT worker_started_at timestamptz,
    OUT returned_total bigint)
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
       w.worker_started_at,
       (SELECT pg_catalog.count(*) FROM @extschema@.celerysalt_unroutable) AS unroutable,
       w.returned_total
  FROM @extschema@._celerysalt_worker_state() w,
       LATERAL (SELECT pg_catalog.count(*) AS pending, pg_catalog.min(enqueued_at) AS oldest_enqueued_at
                  FROM @extschema@._celerysalt_outbox) o;
COMMENT ON VIEW celerysalt_status IS
    'Delivery state of this database: worker, broker connection, pending events, totals and the last error.';

CREATE FUNCTION _celerysalt_cluster_state(
    OUT database text, OUT served boolean, OUT worker_pid integer, OUT broker_connected boolean,
    OUT delivered_total bigint, OUT dead_lettered_total bigint, OUT returned_total bigint,
    OUT last_delivery_at timestamptz, OUT last_error text, OUT last_error_at timestamptz,
    OUT reason text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', '_celerysalt_cluster_state'
LANGUAGE C VOLATILE;

CREATE VIEW celerysalt_cluster_status AS
SELECT * FROM @extschema@._celerysalt_cluster_state();
COMMENT ON VIEW celerysalt_cluster_status IS
    'Every database of the cluster: served by celerysalt.databases or not, its worker, counters, last error, and why it has no worker.';

CREATE FUNCTION celerysalt_metrics()
RETURNS text
AS 'MODULE_PATHNAME', 'celerysalt_metrics'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION celerysalt_metrics() IS
    'This database''s delivery, follow-action and RPC metrics in the Prometheus text format (docs/metrics.md).';

CREATE FUNCTION celerysalt_retry_unroutable()
RETURNS void
AS 'MODULE_PATHNAME', 'celerysalt_retry_unroutable'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION celerysalt_retry_unroutable() IS
    'Asks the worker to send the events of celerysalt_unroutable again now and a few times in the next minute (celerysalt_track_subscriber calls it).';

REVOKE ALL ON FUNCTION _celerysalt_worker_state() FROM PUBLIC;
REVOKE ALL ON FUNCTION _celerysalt_cluster_state() FROM PUBLIC;
REVOKE ALL ON FUNCTION celerysalt_metrics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _celerysalt_worker_state(), _celerysalt_cluster_state(), celerysalt_metrics()
   TO celerysalt_reader;
GRANT SELECT ON celerysalt_status, celerysalt_cluster_status TO celerysalt_reader;
REVOKE ALL ON FUNCTION celerysalt_retry_unroutable() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION celerysalt_retry_unroutable() TO celerysalt_publisher;
GRANT SELECT ON celerysalt_unroutable, celerysalt_unroutable_topics TO celerysalt_reader;
GRANT DELETE ON celerysalt_unroutable TO celerysalt_admin;

-- a subscriber's registration sends the unroutable events again
CREATE OR REPLACE FUNCTION celerysalt_track_subscriber(topic text, service text, handler text)
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
    -- events published before this subscriber's queue existed are sent again
    PERFORM @extschema@.celerysalt_retry_unroutable();
END
$$;

-- ---- pydantic fidelity (issue 15 items 5, 6)
-- celerysalt_event_errors checks as celerysalt_validate_event does (in C),
-- reading date and time formats as celerysalt.format_dialect says.
CREATE OR REPLACE FUNCTION celerysalt_event_errors(topic text, payload jsonb, version text DEFAULT 'latest')
RETURNS jsonb
AS 'MODULE_PATHNAME', 'celerysalt_event_errors'
LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION celerysalt_event_errors(text, jsonb, text) IS
    'Why payload is invalid against the registered schema of (topic, version), checked as celerysalt_publish checks it: [] when valid, else [{path, schema_path, keyword, message}].';
COMMENT ON FUNCTION celerysalt_validate_event(text, jsonb, text) IS
    'True if payload is valid against the registered schema of (topic, version), formats asserted (date and time formats as celerysalt.format_dialect says), as celerysalt_publish checks it; usable in CHECK constraints.';

-- generated models: an enum field's default is a member of its Enum class
CREATE OR REPLACE FUNCTION _celerysalt_py_class(root jsonb, s jsonb, class_name text, classes jsonb)
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
    enum_ref text;
    enum_def jsonb;
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
        -- a default of an Enum class is a member of it, as in the model registered
        enum_ref := coalesce(pv->>'$ref',
                             (SELECT b->>'$ref'
                                FROM jsonb_array_elements(CASE WHEN jsonb_typeof(pv->'anyOf') = 'array'
                                                               THEN pv->'anyOf' ELSE '[]' END) b
                               WHERE jsonb_typeof(b->'$ref') = 'string' LIMIT 1),
                             CASE WHEN jsonb_typeof(pv->'allOf'->0->'$ref') = 'string'
                                  THEN pv->'allOf'->0->>'$ref' END);
        enum_def := CASE WHEN enum_ref ~ '^#/(\$defs|definitions)/[^/]+$'
                         THEN root #> ARRAY[split_part(enum_ref, '/', 2),
                                            replace(replace(split_part(enum_ref, '/', 3), '~1', '/'), '~0', '~')] END;
        IF pv ? 'default' AND jsonb_typeof(pv->'default') = 'string' AND classes ? enum_ref
           AND jsonb_typeof(enum_def->'enum') = 'array' AND NOT enum_def ? 'properties'
           AND enum_def->'enum' @> jsonb_build_array(pv->'default')
           AND (SELECT bool_and(jsonb_typeof(e) = 'string') FROM jsonb_array_elements(enum_def->'enum') e) THEN
            args := args || ('default=' || (classes->>enum_ref) || '('
                             || @extschema@._celerysalt_py_literal(pv->'default') || ')');
        ELSIF pv ? 'default' THEN
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
