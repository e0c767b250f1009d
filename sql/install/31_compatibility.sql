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
