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

-- a subscriber's registration sends the unroutable events again, and may say
-- which queue the service consumes
ALTER TABLE celerysalt_subscribers ADD COLUMN queue text;
DROP FUNCTION celerysalt_track_subscriber(text, text, text);
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
REVOKE ALL ON FUNCTION celerysalt_track_subscriber(text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION celerysalt_track_subscriber(text, text, text, text) TO celerysalt_publisher;

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

-- ---- generated models (issue 15 item 6)
-- Property declaration order (jsonb sorts keys): a column filled by
-- celerysalt_register_property_order from the JSON text; generated models
-- follow it, leave unset non-nullable optional fields out of model_dump(),
-- resolve a recursive model's root reference, and include the response and
-- error models of RPC topics.
ALTER TABLE celerysalt_schemas ADD COLUMN property_order jsonb;
COMMENT ON COLUMN celerysalt_schemas.property_order IS
    'The declaration order of properties, which jsonb does not keep: {"schema"|"response_schema"|"error_schema": {JSON pointer: [names]}}, from celerysalt_register_property_order; NULL when not given.';

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

DROP FUNCTION celerysalt_pydantic_model(text, text);
DROP FUNCTION _celerysalt_py_class(jsonb, jsonb, text, jsonb);
DROP FUNCTION _celerysalt_py_ident(text, boolean);

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
                      'ErrorModel', 'Model', 'ResponseModel', 'TOPIC', 'VERSION', 'annotations', 'case',
                      'match', 'type',
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

-- One model class.  Properties whose names are not usable Python names get
-- a generated one and Field(alias=<the name>); texts pydantic would not give
-- back as they are (a title other than the class name, a description that
-- inspect.cleandoc would change) are also set in model_config.  Fields come
-- in the order of keys (the property names as registered, see
-- celerysalt_register_property_order), the others after them by name.  A
-- property neither required nor with a default, whose type refuses null,
-- reads None when left out and is left out of model_dump() when unset: the
-- class then derives from _OmitUnset and lists it in __celerysalt_omit__.
CREATE FUNCTION _celerysalt_py_class(root jsonb, s jsonb, class_name text, classes jsonb, keys jsonb)
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
    py_type text;
    omit text[] := '{}';
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
    FOR prop IN SELECT p.key, p.value FROM jsonb_each(props) p
                 ORDER BY (SELECT min(o.i) FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof(keys) = 'array'
                                                                               THEN keys ELSE '[]' END)
                                                WITH ORDINALITY o(k, i) WHERE o.k = p.key) NULLS LAST, p.key LOOP
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
        py_type := @extschema@._celerysalt_py_type(root, prop.value, classes);
        IF NOT pv ? 'default' AND NOT coalesce(s->'required' ? prop.key, false)
           AND py_type <> ALL (ARRAY['None', '_t.Any']) AND py_type NOT LIKE '\_t.Optional[%'
           AND py_type NOT LIKE '\_t.Literal[None]%' THEN
            omit := omit || ident;
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
        body := body || format(E'    %s: %s%s\n', ident, py_type,
                               CASE WHEN cardinality(args) > 0
                                    THEN ' = _p.Field(' || array_to_string(args, ', ') || ')' ELSE '' END);
    END LOOP;
    IF has_alias THEN
        config := config || 'populate_by_name=True'::text;
    END IF;
    -- pydantic's default regex engine (Rust) has no look-around, which JSON
    -- Schema patterns (and pydantic's own Decimal pattern before 2.14) use
    IF body ~ '\(\?<?[=!]' THEN
        config := config || 'regex_engine="python-re"'::text;
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
    IF cardinality(omit) > 0 THEN
        out := regexp_replace(out, '^class ([A-Za-z0-9_]+)\(_p\.BaseModel\):', 'class \1(_OmitUnset):')
            || format(E'    __celerysalt_omit__ = (%s,)\n',
                      (SELECT string_agg('"' || o || '"', ', ' ORDER BY i) FROM unnest(omit) WITH ORDINALITY u(o, i)));
    END IF;
    IF body = '' AND config IS NULL THEN
        body := E'    pass\n';
    END IF;
    RETURN out || body;
END
$$;

-- The classes of one registered document (the event schema, or the response
-- or error schema of an RPC topic): enums and aliases of $defs, then models,
-- the root last.  names holds the class names earlier documents of the module
-- took (and comes back with these added); orders maps JSON pointers ("" for
-- the root, "/$defs/<key>") to the property names in declaration order.
CREATE FUNCTION _celerysalt_py_models(root jsonb, orders jsonb, default_title text, INOUT names text[],
                                      OUT defs_out text, OUT model_names text[], OUT root_class text,
                                      OUT need_texts boolean)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    defs_key text := CASE WHEN root ? '$defs' THEN '$defs' ELSE 'definitions' END;
    defs jsonb;
    prior text[] := coalesce(names, '{}');
    classes jsonb := '{}';
    def record;
    elem record;
    name text;
    base text;
    n integer;
    kind text;
    model_keys text[] := '{}';
    members text;
    used text[];
    kept text[];
    texts text[];
    -- names no enum member may take: those Enum and str give a meaning
    member_reserved CONSTANT text[] := ARRAY['mro', 'name', 'value',
        'capitalize', 'casefold', 'center', 'count', 'encode', 'endswith', 'expandtabs', 'find', 'format',
        'format_map', 'index', 'isalnum', 'isalpha', 'isascii', 'isdecimal', 'isdigit', 'isidentifier',
        'islower', 'isnumeric', 'isprintable', 'isspace', 'istitle', 'isupper', 'join', 'ljust', 'lower',
        'lstrip', 'maketrans', 'partition', 'removeprefix', 'removesuffix', 'replace', 'rfind', 'rindex',
        'rjust', 'rpartition', 'rsplit', 'rstrip', 'split', 'splitlines', 'startswith', 'strip', 'swapcase',
        'title', 'translate', 'upper', 'zfill'];
BEGIN
    defs_out := '';
    model_names := '{}';
    need_texts := false;
    defs := CASE WHEN jsonb_typeof(root->defs_key) = 'object' THEN root->defs_key ELSE '{}' END;

    -- class names: one per $defs entry, the root last; names that are
    -- usable identifiers no earlier document took keep them, the others get
    -- one of their own
    names := prior || ARRAY(SELECT k FROM jsonb_object_keys(defs) k
                             WHERE @extschema@._celerysalt_py_ident(k, true) = k AND k <> ALL (prior));
    FOR def IN SELECT d.key FROM jsonb_each(defs) d ORDER BY d.key LOOP
        name := @extschema@._celerysalt_py_ident(def.key, true);
        IF name <> def.key OR name = ANY (prior) THEN
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
    root_class := @extschema@._celerysalt_py_ident(coalesce(root->>'title', default_title), true);
    IF root_class = ANY (names) THEN
        base := root_class || default_title;
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
        defs_out := defs_out || E'\n\n' || @extschema@._celerysalt_py_class(
            root, def.value, def.class_name, classes,
            orders->format('/%s/%s', defs_key, replace(replace(def.key, '~', '~0'), '/', '~1')));
        model_names := model_names || def.class_name;
    END LOOP;
    IF jsonb_typeof(root->'$ref') = 'string' AND classes ? (root->>'$ref') AND NOT root ? 'properties' THEN
        -- a recursive model: pydantic's schema is only a reference to its class
        root_class := classes->>(root->>'$ref');
    ELSE
        defs_out := defs_out || E'\n\n' || @extschema@._celerysalt_py_class(root, root, root_class, classes,
                                                                             orders->'');
        model_names := model_names || root_class;
        names := names || root_class;
    END IF;
END
$$;

-- The generated module: the event model (Model), and for an RPC topic with
-- a registered response or error schema its response (ResponseModel) and
-- error (ErrorModel) models, their classes named after their titles.
CREATE FUNCTION celerysalt_pydantic_model(topic text, version text DEFAULT 'latest')
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
    root jsonb := @extschema@.celerysalt_get_schema(topic, version);
    real_version text;
    reg @extschema@.celerysalt_schemas;
    part record;
    m record;
    names text[] := '{}';
    model_names text[] := '{}';
    defs_out text := '';
    aliases text := '';
    need_texts boolean := false;
    out text;
    heads text[];
BEGIN
    SELECT c.version INTO real_version FROM @extschema@.celerysalt_schemas c
     WHERE c.topic = topic AND c.active AND c.schema = root
     ORDER BY @extschema@._celerysalt_version_key(c.version) DESC, c.id LIMIT 1;
    IF version IS NOT NULL AND version <> 'latest' THEN
        real_version := version;
    END IF;
    real_version := coalesce(real_version, version, 'latest');
    SELECT * INTO reg FROM @extschema@.celerysalt_schemas c
     WHERE c.topic = topic AND c.version = real_version AND c.active;

    FOR part IN SELECT x.doc, x.orders, x.title, x.alias
                  FROM (VALUES (1, root, reg.property_order->'schema', 'Event', 'Model'),
                               (2, reg.response_schema, reg.property_order->'response_schema',
                                'Response', 'ResponseModel'),
                               (3, reg.error_schema, reg.property_order->'error_schema', 'Error', 'ErrorModel'))
                       x(i, doc, orders, title, alias)
                 WHERE x.doc IS NOT NULL ORDER BY x.i LOOP
        SELECT * INTO m FROM @extschema@._celerysalt_py_models(part.doc, coalesce(part.orders, '{}'), part.title, names);
        names := m.names;
        defs_out := defs_out || m.defs_out;
        model_names := model_names || m.model_names;
        need_texts := need_texts OR m.need_texts;
        aliases := aliases || format(E'%s = %s\n', part.alias, m.root_class);
    END LOOP;

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
    -- class lines start a line; descriptions are literals that hold no line break
    IF defs_out ~ E'\nclass [A-Za-z0-9_]+\\(_OmitUnset\\):\n' THEN
        out := out || E'\n\n'
            || E'class _OmitUnset(_p.BaseModel):\n'
            || E'    """Base of the models with fields the schema lets out but not be null: such\n'
            || E'    a field reads None when left out, and model_dump() leaves it out unless set."""\n\n'
            || E'    __celerysalt_omit__ = ()\n\n'
            || E'    @_p.model_serializer(mode="wrap")\n'
            || E'    def __celerysalt_serialize__(self, handler, info):\n'
            || E'        data = handler(self)\n'
            || E'        if isinstance(data, dict):\n'
            || E'            for name in type(self).__celerysalt_omit__:\n'
            || E'                if name not in self.model_fields_set:\n'
            || E'                    field = type(self).model_fields[name]\n'
            || E'                    data.pop(field.alias if info.by_alias and field.alias else name, None)\n'
            || E'        return data\n';
    END IF;
    out := out || defs_out
        || format(E'\n\nfor _model in (%s,):\n    _model.model_rebuild()\n\n%s',
                  array_to_string(model_names, ', '), aliases);
    RETURN out;
END
$$;
COMMENT ON FUNCTION celerysalt_pydantic_model(text, text) IS
    'Python source of pydantic v2 models for the registered schema of (topic, version): nested $defs, Optional, Literal/Enum, Field constraints, fields in declaration order; Model is the event model, ResponseModel and ErrorModel those of an RPC topic.';

REVOKE ALL ON FUNCTION
    _celerysalt_py_ident(text, boolean),
    _celerysalt_py_class(jsonb, jsonb, text, jsonb, jsonb),
    _celerysalt_py_models(jsonb, jsonb, text, text[]),
    celerysalt_pydantic_model(text, text),
    _celerysalt_property_order(json),
    celerysalt_register_property_order(text, text, json, json, json)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    _celerysalt_py_ident(text, boolean),
    _celerysalt_py_class(jsonb, jsonb, text, jsonb, jsonb),
    _celerysalt_py_models(jsonb, jsonb, text, text[]),
    celerysalt_pydantic_model(text, text)
   TO celerysalt_reader;
GRANT EXECUTE ON FUNCTION
    _celerysalt_property_order(json),
    celerysalt_register_property_order(text, text, json, json, json)
   TO celerysalt_admin;

-- ---- attach refuses a server without the preloaded library (issue 18)
CREATE OR REPLACE FUNCTION celerysalt_attach_follow_actions(tbl regclass,
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
    -- without the preloaded library every firing UPDATE would fail: refuse now
    -- (55000 with the hint saying how to preload it)
    PERFORM @extschema@._celerysalt_worker_state();
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

-- celerysalt_publish runs as its caller: the C code inserts into the outbox
-- itself (no SQL), and reads the registry as the registry's owner.
ALTER FUNCTION celerysalt_publish(text, jsonb, text, text) SECURITY INVOKER RESET search_path;

-- ---------------------------------------------------------------- tracing
-- Each event keeps the W3C trace context (celerysalt.traceparent,
-- celerysalt.tracestate) in effect when it was published; the worker sends it
-- in the message headers.  NULL when unset.
ALTER TABLE _celerysalt_outbox ADD COLUMN traceparent text, ADD COLUMN tracestate text;
ALTER TABLE celerysalt_events ADD COLUMN traceparent text, ADD COLUMN tracestate text;
ALTER TABLE celerysalt_dead_letters ADD COLUMN traceparent text, ADD COLUMN tracestate text;
ALTER TABLE celerysalt_unroutable ADD COLUMN traceparent text, ADD COLUMN tracestate text;
COMMENT ON COLUMN celerysalt_events.traceparent IS
    'The W3C traceparent (celerysalt.traceparent) in effect when the event was published, sent in its message headers; NULL when none was set.';
COMMENT ON COLUMN celerysalt_events.tracestate IS
    'The W3C tracestate (celerysalt.tracestate) sent with traceparent; NULL when none was set.';

CREATE OR REPLACE VIEW celerysalt_catalog_events AS
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

-- Issue 18: the catalog graph links wildcard subscriptions to the topics they
-- match (AMQP topic matching), draws RPC topics apart and says "declared" for
-- a publisher that has published nothing.
-- Whether AMQP binding pattern matches topic, as RabbitMQ routes: words
-- separated by ".", "*" one word, "#" zero or more words; a word that is not
-- exactly "*" or "#" is literal.  The topic is matched with a leading "."
-- so that "#" can take its dot with it: a.#.b -> ^\.a(\.[^.]*)*\.b$.
CREATE FUNCTION _celerysalt_topic_matches(pattern text, topic text)
RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ('.' || topic) ~ ('^' || string_agg(
               CASE w.word
                   WHEN '*' THEN '\.[^.]*'
                   WHEN '#' THEN '(\.[^.]*)*'
                   ELSE '\.' || regexp_replace(w.word, '([.^$*+?()\[\]{}|\\])', '\\\1', 'g')
               END, '' ORDER BY w.ord) || '$')
      FROM unnest(string_to_array(pattern, '.')) WITH ORDINALITY AS w(word, ord)
$$;

-- Services (boxes) -> topics (ellipses; RPC topics hexagons) -> subscribing
-- services.  A subscription to a wildcard pattern is drawn from every topic
-- the pattern matches (dashed, the pattern in the label); a pattern that
-- matches no topic the registry knows is drawn as its own dotted node.  A
-- declared publisher that has published nothing is "declared" (dashed), one
-- that has, "N published" ("N calls" for an RPC topic); edges of RPC topics
-- are bold and say "rpc".
CREATE OR REPLACE FUNCTION celerysalt_catalog_dot()
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
        SELECT s.topic, s.service, s.handler, s.topic ~ '(^|\.)[*#](\.|$)' AS pattern
          FROM @extschema@.celerysalt_subscribers s
    ), topics AS (
        SELECT x.topic, c.versions, c.latest_version, c.deprecated_versions,
               coalesce(c.mode = 'rpc', false) AS rpc
          FROM (SELECT topic FROM @extschema@.celerysalt_catalog
                UNION SELECT topic FROM pubs
                UNION SELECT topic FROM subs WHERE NOT pattern) x
          LEFT JOIN @extschema@.celerysalt_catalog c ON c.topic = x.topic
    ), sub_edges AS (
        -- concrete subscriptions, and patterns joined to the topics they match
        SELECT t.topic AS node, 'topic:' || t.topic AS from_id, s.service, t.rpc,
               CASE WHEN s.pattern THEN s.topic END AS via,
               string_agg(s.handler, ', ' ORDER BY s.handler) AS handlers
          FROM subs s
          JOIN topics t ON CASE WHEN s.pattern THEN @extschema@._celerysalt_topic_matches(s.topic, t.topic)
                                ELSE t.topic = s.topic END
         GROUP BY t.topic, s.service, t.rpc, s.pattern, s.topic
        UNION ALL
        -- patterns that match no topic the registry knows
        SELECT s.topic, 'pattern:' || s.topic, s.service, false, s.topic,
               string_agg(s.handler, ', ' ORDER BY s.handler)
          FROM subs s
         WHERE s.pattern
           AND NOT EXISTS (SELECT FROM topics t WHERE @extschema@._celerysalt_topic_matches(s.topic, t.topic))
         GROUP BY s.topic, s.service
    ), services AS (
        SELECT service FROM pubs UNION SELECT service FROM subs
    ), lines AS (
        SELECT 1 AS part, service AS k1, '' AS k2, '' AS k3,
               format('  %s [shape=box, style=rounded, label=%s];',
                      @extschema@._celerysalt_dot_id('service:' || service),
                      @extschema@._celerysalt_dot_id(service)) AS line
          FROM services
        UNION ALL
        SELECT 2, topic, '', '',
               format('  %s [shape=%s, label=%s%s];',
                      @extschema@._celerysalt_dot_id('topic:' || topic),
                      CASE WHEN rpc THEN 'hexagon' ELSE 'ellipse' END,
                      @extschema@._celerysalt_dot_id(topic || E'\n' ||
                          CASE WHEN rpc THEN 'rpc: ' ELSE '' END ||
                          coalesce(array_to_string(versions, ', '), 'unregistered')),
                      CASE WHEN versions IS NULL THEN ', style=dashed'
                           WHEN latest_version = ANY (deprecated_versions) THEN ', color=gray'
                           ELSE '' END)
          FROM topics
        UNION ALL
        SELECT DISTINCT 2, node, '', '',
               format('  %s [shape=ellipse, style=dotted, label=%s];',
                      @extschema@._celerysalt_dot_id(from_id),
                      @extschema@._celerysalt_dot_id(node || E'\npattern, matches no known topic'))
          FROM sub_edges WHERE from_id LIKE 'pattern:%'
        UNION ALL
        SELECT 3, p.service, p.topic, '',
               format('  %s -> %s [label=%s%s];',
                      @extschema@._celerysalt_dot_id('service:' || p.service),
                      @extschema@._celerysalt_dot_id('topic:' || p.topic),
                      @extschema@._celerysalt_dot_id(
                          CASE WHEN t.rpc THEN 'rpc, ' ELSE '' END ||
                          CASE WHEN p.n = 0 THEN 'declared'
                               WHEN t.rpc THEN p.n || CASE WHEN p.n = 1 THEN ' call' ELSE ' calls' END
                               ELSE p.n || ' published' END),
                      CASE WHEN p.n = 0 AND t.rpc THEN ', style="dashed,bold"'
                           WHEN p.n = 0 THEN ', style=dashed'
                           WHEN t.rpc THEN ', style=bold'
                           ELSE '' END)
          FROM pubs p JOIN topics t ON t.topic = p.topic
        UNION ALL
        SELECT 4, node, service, coalesce(via, ''),
               format('  %s -> %s [label=%s%s];',
                      @extschema@._celerysalt_dot_id(from_id),
                      @extschema@._celerysalt_dot_id('service:' || service),
                      @extschema@._celerysalt_dot_id(
                          CASE WHEN rpc THEN 'rpc: ' ELSE '' END || handlers ||
                          coalesce(E'\n(' || via || ')', '')),
                      CASE WHEN via IS NOT NULL AND rpc THEN ', style="dashed,bold"'
                           WHEN via IS NOT NULL THEN ', style=dashed'
                           WHEN rpc THEN ', style=bold'
                           ELSE '' END)
          FROM sub_edges
    )
    SELECT E'digraph celerysalt {\n  rankdir=LR;\n  node [fontname="Helvetica"];\n  edge [fontname="Helvetica", fontsize=10];\n'
           || coalesce(string_agg(line, E'\n' ORDER BY part, k1, k2, k3) || E'\n', '')
           || '}'
      FROM lines
$$;
COMMENT ON FUNCTION celerysalt_catalog_dot() IS
    'A Graphviz (dot) graph of publishing services -> topics (with versions; RPC topics drawn apart) -> subscribing services, wildcard subscriptions drawn from the topics they match.';
REVOKE ALL ON FUNCTION _celerysalt_topic_matches(text, text) FROM PUBLIC;

-- broker failover: the status views show the broker node the worker is
-- connected to (broker_node); celerysalt_broker_nodes shows how a broker URL
-- is read into nodes
DROP VIEW celerysalt_status;
DROP FUNCTION _celerysalt_worker_state();
CREATE FUNCTION _celerysalt_worker_state(
    OUT worker_pid integer, OUT broker_connected boolean, OUT broker text,
    OUT delivered_total bigint, OUT dead_lettered_total bigint,
    OUT last_delivery_at timestamptz, OUT last_error text,
    OUT last_error_at timestamptz, OUT worker_started_at timestamptz,
    OUT returned_total bigint, OUT broker_node text)
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
       w.returned_total,
       w.broker_node
  FROM @extschema@._celerysalt_worker_state() w,
       LATERAL (SELECT pg_catalog.count(*) AS pending, pg_catalog.min(enqueued_at) AS oldest_enqueued_at
                  FROM @extschema@._celerysalt_outbox) o;
COMMENT ON VIEW celerysalt_status IS
    'Delivery state of this database: worker, broker connection, pending events, totals and the last error.';

DROP VIEW celerysalt_cluster_status;
DROP FUNCTION _celerysalt_cluster_state();
CREATE FUNCTION _celerysalt_cluster_state(
    OUT database text, OUT served boolean, OUT worker_pid integer, OUT broker_connected boolean,
    OUT delivered_total bigint, OUT dead_lettered_total bigint, OUT returned_total bigint,
    OUT last_delivery_at timestamptz, OUT last_error text, OUT last_error_at timestamptz,
    OUT reason text, OUT broker_node text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', '_celerysalt_cluster_state'
LANGUAGE C VOLATILE;

CREATE VIEW celerysalt_cluster_status AS
SELECT * FROM @extschema@._celerysalt_cluster_state();
COMMENT ON VIEW celerysalt_cluster_status IS
    'Every database of the cluster: served by celerysalt.databases or not, its worker, counters, last error, and why it has no worker.';

REVOKE ALL ON FUNCTION _celerysalt_worker_state() FROM PUBLIC;
REVOKE ALL ON FUNCTION _celerysalt_cluster_state() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _celerysalt_worker_state(), _celerysalt_cluster_state() TO celerysalt_reader;
GRANT SELECT ON celerysalt_status, celerysalt_cluster_status TO celerysalt_reader;

CREATE FUNCTION celerysalt_broker_nodes(broker_url text,
    OUT node integer, OUT scheme text, OUT hostname text, OUT port integer,
    OUT virtual_host text, OUT userid text, OUT has_password boolean, OUT url text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'celerysalt_broker_nodes'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION celerysalt_broker_nodes(text) IS
    'How celerysalt reads a broker URL (as Celery and kombu do): one row per node of a ";" list, in the order they are tried, passwords never shown.';

-- ---------------------------------------------------- the log (issue 17)
-- The outbox becomes an append-only log read in batches by snapshot:
-- delivering an event no longer deletes it nor copies it into
-- celerysalt_events, which becomes a view over the log, as _celerysalt_outbox
-- does.  Delivered events move into the log as delivered (txid 0, their
-- delivered_at kept), waiting ones as events of this transaction.
CREATE TABLE _celerysalt_log (
    slot            smallint    NOT NULL,
    event_id        bigint      NOT NULL,
    id              uuid        NOT NULL,
    topic           text        NOT NULL,
    payload         jsonb       NOT NULL,
    version         text,
    correlation_id  text,
    enqueued_at     timestamptz NOT NULL,
    traceparent     text,
    tracestate      text,
    txid            xid8        NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    delivered_at    timestamptz
) PARTITION BY LIST (slot);
CREATE TABLE _celerysalt_log_0 PARTITION OF _celerysalt_log FOR VALUES IN (0);
CREATE TABLE _celerysalt_log_1 PARTITION OF _celerysalt_log FOR VALUES IN (1);
CREATE TABLE _celerysalt_log_2 PARTITION OF _celerysalt_log FOR VALUES IN (2);
CREATE INDEX _celerysalt_log_txid ON _celerysalt_log (txid, event_id);
COMMENT ON COLUMN _celerysalt_log.txid IS
    'The publishing transaction (pg_current_xact_id()): what the delivered position is kept by.';
COMMENT ON COLUMN _celerysalt_log.delivered_at IS
    'Set only for events delivered before release 0.2.0 (copied from the table celerysalt_events was then); otherwise the time is in _celerysalt_log_position.';

-- The delivered position, one row per finished batch (the newest counts):
-- an event is delivered if its transaction is visible in lo, or visible in
-- hi and (txid, event_id) <= (cursor_txid, cursor_event_id).  The first row
-- that says so gives its celerysalt_events.delivered_at (hi_xmax grows with
-- seq: the index finds it); rows no event needs go with the partitions.
CREATE TABLE _celerysalt_log_position (
    seq             bigint      PRIMARY KEY,
    lo              pg_snapshot NOT NULL,
    hi              pg_snapshot NOT NULL,
    hi_xmax         xid8        NOT NULL,
    cursor_txid     xid8        NOT NULL,
    cursor_event_id bigint      NOT NULL,
    finished_at     timestamptz NOT NULL
);
CREATE INDEX _celerysalt_log_position_hi_xmax ON _celerysalt_log_position (hi_xmax, seq);
CREATE INDEX _celerysalt_log_position_cursor ON _celerysalt_log_position (hi_xmax, cursor_txid, cursor_event_id);
-- nothing delivered yet
INSERT INTO _celerysalt_log_position (seq, lo, hi, hi_xmax, cursor_txid, cursor_event_id, finished_at)
VALUES (0, '1:1:', '1:1:', '1', '1', -9223372036854775808, '-infinity');

-- Logged events that were not delivered: returned by the broker (now in
-- celerysalt_unroutable) or dead-lettered.  celerysalt_events leaves them out.
CREATE TABLE _celerysalt_log_undelivered (
    txid            xid8        NOT NULL,
    event_id        bigint      NOT NULL,
    PRIMARY KEY (txid, event_id)
);

-- When each partition was first seen with no event waiting (and not the
-- one publishers append to): truncated celerysalt.delivered_retention later.
CREATE TABLE _celerysalt_log_slots (
    slot            smallint    PRIMARY KEY,
    drained_at      timestamptz
);
INSERT INTO _celerysalt_log_slots (slot) VALUES (0), (1), (2);

INSERT INTO _celerysalt_log (slot, event_id, id, topic, payload, version, correlation_id, enqueued_at,
                             traceparent, tracestate, txid, delivered_at)
SELECT 0, event_id, id, topic, payload, version, correlation_id, enqueued_at,
       traceparent, tracestate, '0', delivered_at
  FROM celerysalt_events;
INSERT INTO _celerysalt_log (slot, event_id, id, topic, payload, version, correlation_id, enqueued_at,
                             traceparent, tracestate, txid)
SELECT slot, event_id, id, topic, payload, version, correlation_id, enqueued_at,
       traceparent, tracestate, pg_catalog.pg_current_xact_id()
  FROM _celerysalt_outbox;

DROP VIEW celerysalt_status;
DROP VIEW celerysalt_catalog_events;
-- leaving the extension first takes the tables out of its configuration (pg_dump)
ALTER EXTENSION celerysalt DROP TABLE _celerysalt_outbox_0;
ALTER EXTENSION celerysalt DROP TABLE _celerysalt_outbox_1;
ALTER EXTENSION celerysalt DROP TABLE _celerysalt_outbox_2;
ALTER EXTENSION celerysalt DROP TABLE celerysalt_events;
DROP TABLE _celerysalt_outbox;
DROP TABLE celerysalt_events;

-- Events waiting for delivery: committed and not past the position.  Only
-- transactions lo did not see can have any: those from lo's xmax on, and
-- those lo saw running (a transaction held open for hours keeps lo's xmin
-- back, not its xmax); with the upper bound (no row this statement sees has
-- a later txid) the planner takes the log's index, not the retained log.
CREATE VIEW _celerysalt_outbox AS
SELECT l.slot, l.event_id, l.id, l.topic, l.payload, l.version, l.correlation_id, l.enqueued_at,
       l.traceparent, l.tracestate, l.txid
  FROM @extschema@._celerysalt_log l
 WHERE (l.txid OPERATOR(pg_catalog.>=) (SELECT pg_catalog.pg_snapshot_xmax(p.lo) FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1)
        OR l.txid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT pg_catalog.pg_snapshot_xip(p.lo)
                                                     FROM (SELECT p.lo FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1) p)))
   AND l.txid OPERATOR(pg_catalog.<=) GREATEST(pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot()),
                                               pg_catalog.pg_current_xact_id_if_assigned())
   AND NOT (pg_catalog.pg_visible_in_snapshot(l.txid, (SELECT p.lo FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1))
            OR (pg_catalog.pg_visible_in_snapshot(l.txid, (SELECT p.hi FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1))
                AND ROW(l.txid, l.event_id) OPERATOR(pg_catalog.<=)
                    (SELECT p.cursor_txid, p.cursor_event_id FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1)))
   AND NOT EXISTS (SELECT 1 FROM @extschema@._celerysalt_log_undelivered u
                    WHERE u.txid OPERATOR(pg_catalog.=) l.txid AND u.event_id OPERATOR(pg_catalog.=) l.event_id);
COMMENT ON VIEW _celerysalt_outbox IS
    'Events committed and not yet confirmed by the broker (the log past the delivered position).';
-- The same, over a 1% sample of the log's pages (celerysalt_metrics with many waiting).
CREATE VIEW _celerysalt_outbox_sample AS
SELECT l.slot, l.event_id, l.id, l.topic, l.payload, l.version, l.correlation_id, l.enqueued_at,
       l.traceparent, l.tracestate, l.txid
  FROM @extschema@._celerysalt_log l TABLESAMPLE SYSTEM (1)
 WHERE (l.txid OPERATOR(pg_catalog.>=) (SELECT pg_catalog.pg_snapshot_xmax(p.lo) FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1)
        OR l.txid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT pg_catalog.pg_snapshot_xip(p.lo)
                                                     FROM (SELECT p.lo FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1) p)))
   AND l.txid OPERATOR(pg_catalog.<=) GREATEST(pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot()),
                                               pg_catalog.pg_current_xact_id_if_assigned())
   AND NOT (pg_catalog.pg_visible_in_snapshot(l.txid, (SELECT p.lo FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1))
            OR (pg_catalog.pg_visible_in_snapshot(l.txid, (SELECT p.hi FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1))
                AND ROW(l.txid, l.event_id) OPERATOR(pg_catalog.<=)
                    (SELECT p.cursor_txid, p.cursor_event_id FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1)))
   AND NOT EXISTS (SELECT 1 FROM @extschema@._celerysalt_log_undelivered u
                    WHERE u.txid OPERATOR(pg_catalog.=) l.txid AND u.event_id OPERATOR(pg_catalog.=) l.event_id);

-- ----------------------------------------------------- delivered events
-- security_barrier: readers' own functions in WHERE must not see the log's
-- other rows (waiting events, returned or dead-lettered ones).
CREATE VIEW celerysalt_events WITH (security_barrier) AS
SELECT l.id, l.event_id, l.topic, l.version, l.correlation_id, l.payload, l.enqueued_at,
       COALESCE(l.delivered_at,
           -- the position of the event's own batch whose cursor passed it first
           -- (a read stays within one batch and every batch records its own
           -- position): two index probes, the batch told by the first hi that
           -- sees it; events from before 0.2.0 or adopted from a dump keep theirs
           (SELECT f.finished_at FROM @extschema@._celerysalt_log_position f
             WHERE f.hi_xmax OPERATOR(pg_catalog.=)
                   (SELECT b.hi_xmax FROM @extschema@._celerysalt_log_position b
                     WHERE b.hi_xmax OPERATOR(pg_catalog.>) l.txid
                       AND pg_catalog.pg_visible_in_snapshot(l.txid, b.hi)
                     ORDER BY b.hi_xmax, b.seq LIMIT 1)
               AND ROW(f.cursor_txid, f.cursor_event_id) OPERATOR(pg_catalog.>=) ROW(l.txid, l.event_id)
               AND pg_catalog.pg_visible_in_snapshot(l.txid, f.hi)
               AND NOT pg_catalog.pg_visible_in_snapshot(l.txid, f.lo)
             ORDER BY f.hi_xmax, f.cursor_txid, f.cursor_event_id LIMIT 1)) AS delivered_at,
       pg_catalog.pg_column_size(l.payload) AS size, l.traceparent, l.tracestate
  FROM @extschema@._celerysalt_log l
 WHERE (l.txid OPERATOR(pg_catalog.<) (SELECT pg_catalog.pg_snapshot_xmin(p.lo) FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1)
        OR pg_catalog.pg_visible_in_snapshot(l.txid, (SELECT p.lo FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1))
        OR (pg_catalog.pg_visible_in_snapshot(l.txid, (SELECT p.hi FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1))
            AND ROW(l.txid, l.event_id) OPERATOR(pg_catalog.<=)
                (SELECT p.cursor_txid, p.cursor_event_id FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1)))
   AND NOT EXISTS (SELECT 1 FROM @extschema@._celerysalt_log_undelivered u
                    WHERE u.txid OPERATOR(pg_catalog.=) l.txid AND u.event_id OPERATOR(pg_catalog.=) l.event_id);
COMMENT ON VIEW celerysalt_events IS
    'Events confirmed by the broker, kept for celerysalt.delivered_retention; replay them with celerysalt_replay.';
COMMENT ON COLUMN celerysalt_events.delivered_at IS
    'When the broker''s confirm of the event''s batch was recorded.';
COMMENT ON COLUMN celerysalt_events.traceparent IS
    'The W3C traceparent (celerysalt.traceparent) in effect when the event was published, sent in its message headers; NULL when none was set.';
COMMENT ON COLUMN celerysalt_events.tracestate IS
    'The W3C tracestate (celerysalt.tracestate) sent with traceparent; NULL when none was set.';

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
       w.returned_total,
       w.broker_node
  FROM @extschema@._celerysalt_worker_state() w,
       LATERAL (SELECT pg_catalog.count(*) AS pending, pg_catalog.min(enqueued_at) AS oldest_enqueued_at
                  FROM @extschema@._celerysalt_outbox) o;
COMMENT ON VIEW celerysalt_status IS
    'Delivery state of this database: worker, broker connection, pending events, totals and the last error.';


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

SELECT pg_catalog.pg_extension_config_dump('_celerysalt_log_0', '');
SELECT pg_catalog.pg_extension_config_dump('_celerysalt_log_1', '');
SELECT pg_catalog.pg_extension_config_dump('_celerysalt_log_2', '');
SELECT pg_catalog.pg_extension_config_dump('_celerysalt_log_position', 'WHERE seq > 0');
SELECT pg_catalog.pg_extension_config_dump('_celerysalt_log_undelivered', '');

GRANT SELECT ON celerysalt_events TO celerysalt_reader;
GRANT SELECT ON celerysalt_catalog_events, celerysalt_status TO celerysalt_reader;
