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

-- ---------------------------------------------------------------- graph
CREATE FUNCTION _celerysalt_dot_id(s text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT '"' || replace(replace(replace(s, '\', '\\'), '"', '\"'), E'\n', '\n') || '"'
$$;

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
