-- celerysalt_pydantic_model quotes every text of a schema as a Python string
-- literal of printable ASCII and makes every name a safe identifier (issue 12
-- item 5; test/integration/test_pydantic_adversarial.py compiles and imports
-- the result with real pydantic).  The generator runs as a plain
-- celerysalt_reader role that may CREATE in public; an admin registers.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS celerysalt;
RESET client_min_messages;

CREATE ROLE regress_pyq_admin LOGIN IN ROLE celerysalt_admin;
CREATE ROLE regress_pyq_reader LOGIN IN ROLE celerysalt_reader;
GRANT CREATE ON SCHEMA public TO regress_pyq_reader;
SELECT rolname, rolsuper FROM pg_roles WHERE rolname LIKE 'regress\_pyq\_%' ORDER BY rolname;

-- The exploit of the issue: a description ending in a backslash ran the next
-- description as code; a description ending in a quote gave a broken file.
SET SESSION AUTHORIZATION regress_pyq_admin;
SELECT celerysalt_register_schema('regress.pyq.exploit', jsonb_build_object(
    'type', 'object', 'title', 'Exploit', 'description', 'ends in a quote"',
    '$defs', jsonb_build_object(
        'A', jsonb_build_object('enum', jsonb_build_array('a'), 'type', 'string', 'description', 'pwn\'),
        'B', jsonb_build_object('enum', jsonb_build_array('b'), 'type', 'string',
                                'description', ' + str(__import__("os").system("touch /tmp/x")) #')),
    'properties', jsonb_build_object('a', jsonb_build_object('$ref', '#/$defs/A'),
                                     'b', jsonb_build_object('$ref', '#/$defs/B'))))->'created' AS created;
-- Names that are keywords, soft keywords, builtins, pydantic attributes, not
-- identifiers at all, or the same once made identifiers.
SELECT celerysalt_register_schema('regress.pyq.names', jsonb_build_object(
    'type', 'object', 'title', 'print',
    '$defs', jsonb_build_object(
        'str', jsonb_build_object('enum', jsonb_build_array('mro', 'upper', 'a b', 'a-b', 'a_b', 'match', '_x', '1'),
                                  'type', 'string'),
        'model_config', jsonb_build_object('type', 'object', 'properties', jsonb_build_object('x', jsonb_build_object('type', 'integer'))),
        'a/b', jsonb_build_object('type', 'integer'),
        'a~b', jsonb_build_object('type', 'boolean')),
    'properties', jsonb_build_object(
        'class', jsonb_build_object('$ref', '#/$defs/str'),
        'type', jsonb_build_object('type', 'string', 'title', 'Kind of thing'),
        'json', jsonb_build_object('$ref', '#/$defs/model_config'),
        'str_', jsonb_build_object('$ref', '#/$defs/a~1b'),
        'a b', jsonb_build_object('$ref', '#/$defs/a~0b'),
        'a_b', jsonb_build_object('type', 'string'),
        '1st', jsonb_build_object('type', 'string'),
        '__import__', jsonb_build_object('type', 'string'))))->'created' AS created;
RESET SESSION AUTHORIZATION;

SET SESSION AUTHORIZATION regress_pyq_reader;
SELECT celerysalt_pydantic_model('regress.pyq.exploit');
SELECT celerysalt_pydantic_model('regress.pyq.names');

-- The literal for texts that end a naive one: \ and " escaped, tab/LF/CR by
-- name, other control characters, DEL, U+0085, U+2028, U+2029, bidirectional
-- controls and all non-ASCII text as \x/\u/\U escapes.
SELECT t.n, _celerysalt_py_literal(to_jsonb(t.s)) AS python
  FROM (VALUES (1, 'plain text'), (2, 'trailing backslash\'), (3, 'ends in a quote"'),
               (4, 'triple """ quotes'), (5, E'line\nbreak\rand\ttab'),
               (6, 'controls ' || chr(1) || chr(27) || chr(31) || chr(127)),
               (7, 'nel ' || chr(133) || ' ls ' || chr(8232) || ' ps ' || chr(8233)),
               (8, 'bidi ' || chr(8238) || chr(8294) || ' bom ' || chr(65279)),
               (9, 'Stra' || chr(223) || 'e ' || chr(26481) || chr(20140) || ' ' || chr(128512)),
               (10, '\N{BULLET} \u2028 \x00 ''single'''), (11, '')) t(n, s)
 ORDER BY t.n;
-- Other JSON values; integers longer than Python's 4300-digit literal limit.
SELECT _celerysalt_py_literal(v) FROM (VALUES ('null'::jsonb), ('true'), ('-1.50'), ('[1, "a\"b"]'),
                                              ('{"k": "\u2028"}')) t(v);
SELECT left(l, 40), right(l, 30), length(l)
  FROM (SELECT _celerysalt_py_literal(('-' || repeat('9', 4500))::jsonb) AS l) x;
-- Identifiers.
SELECT n, _celerysalt_py_ident(n, false) AS field, _celerysalt_py_ident(n, true) AS class
  FROM unnest(ARRAY['ok', 'class', 'match', 'type', '_', 'print', '__import__', 'model_config', 'json',
                    'a b', '1st', '', 'Model', 'x' || chr(8232) || 'y']) n;
RESET SESSION AUTHORIZATION;

DROP OWNED BY regress_pyq_admin, regress_pyq_reader;
DROP ROLE regress_pyq_admin, regress_pyq_reader;
