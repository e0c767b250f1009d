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
