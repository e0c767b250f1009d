-- Roles and grants of the registry: each boundary, role by role.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS celerysalt;
RESET client_min_messages;

\i sql/include/try.sql

-- The install script created the three roles (if absent), nested.
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'celerysalt\_%' ORDER BY rolname;
SELECT pg_has_role('celerysalt_admin', 'celerysalt_publisher', 'MEMBER') AS admin_publishes,
       pg_has_role('celerysalt_publisher', 'celerysalt_reader', 'MEMBER') AS publisher_reads,
       pg_has_role('celerysalt_reader', 'celerysalt_publisher', 'MEMBER') AS reader_publishes;

SELECT celerysalt_register_schema('regress.priv', '{"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}')->'created' AS created;

CREATE ROLE regress_cs_nobody;
CREATE ROLE regress_cs_reader IN ROLE celerysalt_reader;
CREATE ROLE regress_cs_publisher IN ROLE celerysalt_publisher;
CREATE ROLE regress_cs_admin IN ROLE celerysalt_admin;

CREATE TEMP TABLE probes (n int, what text, sql text);
INSERT INTO probes VALUES
 (1, 'read the catalog', $$SELECT count(*) FROM celerysalt_catalog$$),
 (2, 'read the fields view', $$SELECT count(*) FROM celerysalt_catalog_fields$$),
 (3, 'read the events view', $$SELECT count(*) FROM celerysalt_catalog_events$$),
 (4, 'read celerysalt_schemas', $$SELECT count(*) FROM celerysalt_schemas$$),
 (5, 'get a schema', $$SELECT celerysalt_get_schema('regress.priv')$$),
 (6, 'check compatibility', $$SELECT count(*) FROM celerysalt_check_compatibility('regress.priv', '{}')$$),
 (7, 'validate an event', $$SELECT celerysalt_validate_event('regress.priv', '{"n": 1}')$$),
 (8, 'generate pydantic models', $$SELECT celerysalt_pydantic_model('regress.priv')$$),
 (9, 'draw the graph', $$SELECT celerysalt_catalog_dot()$$),
 (10, 'read the status view', $$SELECT count(*) FROM celerysalt_status$$),
 (11, 'validate JSON (pure, PUBLIC)', $$SELECT celerysalt_validate('{"type": "integer"}', '1')$$),
 (20, 'publish', $$SELECT celerysalt_publish('regress.priv', '{"n": 1}')$$),
 (21, 'publish an invalid event', $$SELECT celerysalt_publish('regress.priv', '{"n": "x"}')$$),
 (22, 'track a subscriber', $$SELECT celerysalt_track_subscriber('regress.priv', 'svc', 'handler')$$),
 (23, 'track a publisher', $$SELECT celerysalt_track_publisher('regress.priv', 'svc')$$),
 (24, 'insert into the outbox directly', $$INSERT INTO _celerysalt_outbox VALUES (0, -1, gen_random_uuid(), 'regress.priv', '{}', NULL, NULL, now())$$),
 (25, 'read the outbox', $$SELECT count(*) FROM _celerysalt_outbox$$),
 (26, 'forge publish counts', $$INSERT INTO _celerysalt_publish_stats VALUES ('regress.priv', 'x', 1000, now(), now())$$),
 (27, 'forge a subscriber row', $$INSERT INTO celerysalt_subscribers (topic, service, handler) VALUES ('regress.priv', 'x', 'y')$$),
 (30, 'register a schema', $$SELECT celerysalt_register_schema('regress.priv', '{"type": "object", "properties": {"n": {"type": "integer"}, "m": {"type": "integer"}}, "required": ["n"]}', version => 'v2')$$),
 (31, 'insert a schema directly', $$INSERT INTO celerysalt_schemas (topic, version, schema) VALUES ('regress.priv', 'v8', '{}')$$),
 (32, 'update a schema directly', $$UPDATE celerysalt_schemas SET schema = '{}' WHERE topic = 'regress.priv'$$),
 (33, 'deprecate a schema', $$SELECT celerysalt_deprecate_schema('regress.priv', 'v1', 'test')$$),
 (34, 'set the compatibility mode', $$SELECT celerysalt_set_compatibility('regress.priv', 'NONE')$$),
 (35, 'change the mode directly', $$UPDATE celerysalt_topics SET compatibility = 'NONE'$$),
 (36, 'set require_registration', $$SET celerysalt.require_registration = off$$),
 (37, 'compact the counters', $$SELECT celerysalt_registry_compact()$$),
 (38, 'replay delivered events', $$SELECT celerysalt_replay_since(now())$$);

-- Run every probe as every role, each in a transaction that is rolled back.
CREATE FUNCTION pg_temp.probe(r text, q text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    s text;
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', r);
    SELECT state INTO s FROM pg_temp.try(q);
    RESET ROLE;
    RETURN CASE s WHEN '00000' THEN 'ok' ELSE s END;
END
$$;

SELECT p.n, p.what,
       pg_temp.probe('regress_cs_nobody', p.sql) AS nobody,
       pg_temp.probe('regress_cs_reader', p.sql) AS reader,
       pg_temp.probe('regress_cs_publisher', p.sql) AS publisher,
       pg_temp.probe('regress_cs_admin', p.sql) AS admin
  FROM probes p ORDER BY p.n;

-- What the admin's probes changed (the others changed nothing).
SELECT version, deprecated_reason, created_by FROM celerysalt_schemas WHERE topic = 'regress.priv' ORDER BY version;
SELECT compatibility FROM celerysalt_topics WHERE topic = 'regress.priv';

-- A publisher's committed publish is counted, without any grant on the counters.
SET ROLE regress_cs_publisher;
SET celerysalt.service_name = 'app';
SELECT celerysalt_publish('regress.priv', '{"n": 2}') IS NOT NULL AS published;
RESET celerysalt.service_name;
RESET ROLE;
SELECT service, published FROM _celerysalt_publish_stats WHERE topic = 'regress.priv' AND service = 'app';

-- PUBLIC holds no privilege on the registry's tables and views ...
SELECT c.relname, c.relacl::text LIKE '%=%/%' AND EXISTS (
           SELECT FROM aclexplode(c.relacl) a WHERE a.grantee = 0) AS public_has_access
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relname IN ('celerysalt_topics', 'celerysalt_schemas', 'celerysalt_schema_fields',
                     'celerysalt_publishers', 'celerysalt_subscribers', '_celerysalt_publish_stats',
                     'celerysalt_catalog', 'celerysalt_catalog_fields', 'celerysalt_catalog_events',
                     '_celerysalt_outbox')
 ORDER BY c.relname;
-- ... and may execute only the pure JSON Schema functions of the extension.
SELECT p.proname
  FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'celerysalt'
 WHERE has_function_privilege('regress_cs_nobody', p.oid, 'EXECUTE')
   AND p.proname IN (SELECT proname FROM pg_proc WHERE proname LIKE '%celerysalt%')
   AND p.proname NOT LIKE '%follow%' AND p.proname NOT LIKE '%call%'
 GROUP BY p.proname ORDER BY p.proname;

DROP ROLE regress_cs_nobody, regress_cs_reader, regress_cs_publisher, regress_cs_admin;
