-- Schema registry: registration, conflicts, versions, validate on publish,
-- deprecation, tracking, catalog views and generated code.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS celerysalt;
RESET client_min_messages;

\i sql/include/try.sql

-- Earlier tests of this database published too: count from zero.
TRUNCATE _celerysalt_publish_stats;

-- A pydantic 2 schema (model_json_schema() of a SaltEvent with a nested model).
CREATE TEMP TABLE sample AS SELECT '{
  "$defs": {"Addr": {"properties": {"city": {"title": "City", "type": "string"}},
                     "required": ["city"], "title": "Addr", "type": "object"}},
  "properties": {
    "order_id": {"format": "uuid", "title": "Order Id", "type": "string"},
    "amount": {"description": "EUR", "minimum": 0, "title": "Amount", "type": "number"},
    "placed_at": {"format": "date-time", "title": "Placed At", "type": "string"},
    "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": null, "title": "Note"},
    "tags": {"default": [], "items": {"type": "string"}, "title": "Tags", "type": "array"},
    "status": {"default": "new", "enum": ["new", "paid"], "title": "Status", "type": "string"},
    "addr": {"anyOf": [{"$ref": "#/$defs/Addr"}, {"type": "null"}], "default": null}},
  "required": ["order_id", "amount", "placed_at"], "title": "Schema", "type": "object"}'::jsonb AS s;

-- ------------------------------------------------------------ versions
-- celery-salt's compare_versions order: v2 < v10, v1.2 < v1.10, v1 = v1.0 = 1,
-- non-numeric versions order as empty (lowest).
SELECT v, _celerysalt_version_key(v) AS key
  FROM unnest(ARRAY['v10', 'v2', 'v1.10', 'v1.2', 'V3', ' v1.0 ', '1', 'v1.0.0', 'beta', 'v1.x', 'v0']) v
 ORDER BY _celerysalt_version_key(v), v;

-- --------------------------------------------------------- registering
SELECT celerysalt_register_schema('regress.order.placed', s, description => 'An order was placed',
                                  publisher_service => 'shop', publisher_module => 'shop.events',
                                  publisher_class => 'OrderPlaced', publisher_version => '1.4.0')
       - 'id' AS registered
  FROM sample;
-- Identical again (key order and white space do not matter): created false, the stored schema back.
SELECT r->'created' AS created, r->'existing_schema' = s AS same_schema
  FROM sample, celerysalt_register_schema('regress.order.placed',
        ('{"type": "object", "title": "Schema", ' || substr(s::text, 2))::jsonb) r;
-- Stored exactly as registered.
SELECT celerysalt_get_schema('regress.order.placed') = s AS stored_as_registered,
       celerysalt_get_schema('regress.order.placed', 'v1') = s AS by_version
  FROM sample;
SELECT topic, version, mode, description, publisher_service, publisher_module, publisher_class,
       publisher_version, active, deprecated_at
  FROM celerysalt_schemas;

\x on
-- A different schema for an existing (topic, version): 23505, the detail names the first difference.
SELECT * FROM pg_temp.try($q$SELECT celerysalt_register_schema('regress.order.placed',
    jsonb_set((SELECT s FROM sample), '{properties,amount,minimum}', '1'))$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_register_schema('regress.order.placed',
    jsonb_set((SELECT s FROM sample), '{$defs,Addr,properties,zip}', '{"type": "string"}'))$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_register_schema('regress.order.placed',
    (SELECT s FROM sample) #- '{properties,note}')$q$);
-- array order matters (as in Python's dict equality)
SELECT * FROM pg_temp.try($q$SELECT celerysalt_register_schema('regress.order.placed',
    jsonb_set((SELECT s FROM sample), '{required}', '["amount", "order_id", "placed_at"]'))$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_register_schema('regress.order.placed', '{"type": "object"}')$q$);

-- Not a valid JSON Schema, not an object, bad arguments: 22023 / 22004.
SELECT * FROM pg_temp.try($q$SELECT celerysalt_register_schema('regress.bad', '{"type": "strin"}')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_register_schema('regress.bad', '{"properties": {"a": {"minimum": "zero"}}}')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_register_schema('regress.bad', '[1]')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_register_schema('regress.bad', '{}', response_schema => '{"type": 1}')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_register_schema('regress.bad', NULL)$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_register_schema('regress.bad', '{}', mode => 'unicast')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_register_schema('regress.bad', '{}', version => 'latest')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_register_schema('regress.bad', '{}', version => 'v 2')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_register_schema('regress.bad', '{}', version => '')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_register_schema('regress.*', '{}')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_register_schema(NULL, '{}')$q$);
-- nothing of that was stored
SELECT count(*) AS bad_topics FROM celerysalt_schemas WHERE topic LIKE 'regress.bad%';

-- Unknown topic or version: 42704 with a hint listing what exists.
SELECT * FROM pg_temp.try($q$SELECT celerysalt_get_schema('regress.nope')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_get_schema('regress.order.placed', 'v7')$q$);
\x off

-- ------------------------------------------------------ latest ordering
-- NONE: no compatibility check, to register arbitrary versions.
SELECT celerysalt_set_compatibility('regress.versions', 'none') AS previous_mode;
SELECT v, (celerysalt_register_schema('regress.versions', jsonb_build_object('title', v), version => v))->'created' AS created
  FROM unnest(ARRAY['v2', 'v10', 'v1.2', 'v1.10', 'v1']) v;
SELECT celerysalt_get_schema('regress.versions')->>'title' AS latest;
SELECT versions, latest_version, compatibility FROM celerysalt_catalog WHERE topic = 'regress.versions';
\x on
-- v10.0 orders like v10: refused, "latest" would be ambiguous.
SELECT * FROM pg_temp.try($q$SELECT celerysalt_register_schema('regress.versions', '{}', version => 'v10.0')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_get_schema('regress.versions', 'v3')$q$);
\x off

-- --------------------------------------------- compatibility at registration
-- BACKWARD (the default): adding an optional field passes ...
SELECT celerysalt_get_compatibility('regress.order.placed') AS mode;
SELECT (celerysalt_register_schema('regress.order.placed',
            jsonb_set(s, '{properties,coupon}', '{"anyOf": [{"type": "string"}, {"type": "null"}], "default": null, "title": "Coupon"}'),
            version => 'v2'))->'created' AS v2_created
  FROM sample;
\x on
-- ... removing a required field, changing a type or narrowing an enum fails (42P17).
SELECT * FROM pg_temp.try($q$SELECT celerysalt_register_schema('regress.order.placed',
    jsonb_set(celerysalt_get_schema('regress.order.placed') #- '{properties,placed_at}', '{required}', '["order_id", "amount"]'),
    version => 'v3')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_register_schema('regress.order.placed',
    jsonb_set(celerysalt_get_schema('regress.order.placed'), '{properties,amount,type}', '"string"'),
    version => 'v3')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_register_schema('regress.order.placed',
    jsonb_set(celerysalt_get_schema('regress.order.placed'), '{properties,status,enum}', '["new"]'),
    version => 'v3')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_register_schema('regress.order.placed',
    celerysalt_get_schema('regress.order.placed') || '{"additionalProperties": false}',
    version => 'v3')$q$);
\x off
-- Extending the enum passes BACKWARD, fails FORWARD.
SELECT against_version, path, change, backward, forward, compatible
  FROM celerysalt_check_compatibility('regress.order.placed',
        jsonb_set(celerysalt_get_schema('regress.order.placed'), '{properties,status,enum}', '["new", "paid", "void"]'));
SELECT against_version, path, change, compatible
  FROM celerysalt_check_compatibility('regress.order.placed',
        jsonb_set(celerysalt_get_schema('regress.order.placed'), '{properties,status,enum}', '["new", "paid", "void"]'),
        'forward');
\x on
SELECT * FROM pg_temp.try($q$SELECT * FROM celerysalt_check_compatibility('regress.order.placed', '{}', 'sideways')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_set_compatibility('regress.order.placed', 'FULLY')$q$);
\x off

-- Transitive: v1 {a: int, b: optional str}; v2 drops b (BACKWARD ok);
-- v3 brings b back as an integer: fine against v2, not against v1.
SELECT (celerysalt_register_schema('regress.trans', '{"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}, "required": ["a"]}'))->'created' AS v1,
       (celerysalt_register_schema('regress.trans', '{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}', version => 'v2'))->'created' AS v2;
SELECT against_version, path, change, compatible
  FROM celerysalt_check_compatibility('regress.trans',
        '{"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a"]}');
SELECT against_version, path, change, compatible
  FROM celerysalt_check_compatibility('regress.trans',
        '{"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a"]}',
        'BACKWARD_TRANSITIVE');
SELECT celerysalt_set_compatibility('regress.trans', 'BACKWARD_TRANSITIVE') AS previous_mode;
\x on
SELECT * FROM pg_temp.try($q$SELECT celerysalt_register_schema('regress.trans',
    '{"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a"]}', version => 'v3')$q$);
\x off
-- NONE accepts anything.
SELECT celerysalt_set_compatibility('regress.trans', 'NONE') AS previous_mode;
SELECT (celerysalt_register_schema('regress.trans', '{"type": "object", "properties": {"a": {"type": "string"}}}', version => 'v3'))->'created' AS v3;

-- ------------------------------------------------------ validate on publish
-- The version is stamped (NULL and 'latest' mean the latest registered one).
BEGIN;
SELECT celerysalt_publish('regress.order.placed',
        '{"order_id": "2b0be589-1b1a-4c1c-8f5e-1a2b3c4d5e6f", "amount": 19.9, "placed_at": "2026-01-02T03:04:05Z"}') IS NOT NULL AS latest,
       celerysalt_publish('regress.order.placed',
        '{"order_id": "2b0be589-1b1a-4c1c-8f5e-1a2b3c4d5e6f", "amount": 0, "placed_at": "2026-01-02T03:04:05+01:00", "addr": {"city": "Gent"}}', 'v1') IS NOT NULL AS v1,
       celerysalt_publish('regress.order.placed',
        '{"order_id": "2b0be589-1b1a-4c1c-8f5e-1a2b3c4d5e6f", "amount": 1, "placed_at": "2026-01-02T03:04:05Z", "extra": true}', 'latest') IS NOT NULL AS explicit_latest,
       celerysalt_publish('regress.unregistered', '{"anything": [1, "goes"]}') IS NOT NULL AS unregistered;
SELECT topic, version FROM _celerysalt_outbox WHERE topic LIKE 'regress.%' ORDER BY event_id;
ROLLBACK;

\x on
-- Invalid payloads: 23514, the detail lists every failing path (formats asserted).
SELECT * FROM pg_temp.try($q$SELECT celerysalt_publish('regress.order.placed',
    '{"order_id": "not-a-uuid", "amount": -1, "placed_at": "yesterday", "status": "lost", "tags": ["a", 2], "addr": {"town": "Gent"}}')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_publish('regress.order.placed', '{"amount": "12"}', 'v1')$q$);
-- Unknown version of a registered topic: 42704.
SELECT * FROM pg_temp.try($q$SELECT celerysalt_publish('regress.order.placed', '{}', 'v9')$q$);
-- celerysalt.require_registration refuses unregistered topics.
SET celerysalt.require_registration = on;
SELECT * FROM pg_temp.try($q$SELECT celerysalt_publish('regress.unregistered', '{}')$q$);
RESET celerysalt.require_registration;
-- The registry calls the validator in C: dropping the SQL validator
-- functions changes nothing for publishing (a valid event passes, an
-- invalid one is refused).
BEGIN;
ALTER EXTENSION celerysalt DROP FUNCTION celerysalt_validate(jsonb, jsonb, boolean);
DROP FUNCTION celerysalt_validate(jsonb, jsonb, boolean);
SELECT celerysalt_publish('regress.order.placed',
        '{"order_id": "2b0be589-1b1a-4c1c-8f5e-1a2b3c4d5e6f", "amount": 1, "placed_at": "2026-01-02T03:04:05Z"}') IS NOT NULL AS published;
SELECT state FROM pg_temp.try($q$SELECT celerysalt_publish('regress.order.placed', '{"amount": 1}')$q$);
ROLLBACK;
\x off
SELECT state FROM pg_temp.try($q$SELECT celerysalt_publish('regress.unregistered', '{}')$q$);

-- celerysalt_validate_event / celerysalt_event_errors, and in a CHECK constraint.
SELECT celerysalt_validate_event('regress.order.placed', '{"order_id": "2b0be589-1b1a-4c1c-8f5e-1a2b3c4d5e6f", "amount": 1, "placed_at": "2026-01-02T03:04:05Z"}') AS valid,
       celerysalt_validate_event('regress.order.placed', '{"order_id": "2b0be589", "amount": 1, "placed_at": "2026-01-02T03:04:05Z"}') AS bad_uuid,
       celerysalt_validate_event('regress.order.placed', '{"amount": 1}', 'v1') AS missing,
       celerysalt_validate_event('regress.order.placed', NULL) AS null_payload;
SELECT jsonb_pretty(celerysalt_event_errors('regress.order.placed', '{"order_id": "x", "amount": 1}'));
\x on
SELECT * FROM pg_temp.try($q$SELECT celerysalt_validate_event('regress.nope', '{}')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_validate_event('regress.order.placed', '{}', 'v0')$q$);
\x off
CREATE TEMP TABLE orders (payload jsonb CHECK (celerysalt_validate_event('regress.order.placed', payload)));
INSERT INTO orders VALUES ('{"order_id": "2b0be589-1b1a-4c1c-8f5e-1a2b3c4d5e6f", "amount": 5, "placed_at": "2026-01-02T03:04:05Z"}');
SELECT state, message FROM pg_temp.try($q$INSERT INTO orders VALUES ('{"amount": 5}')$q$);

-- ------------------------------------------------------------ the cache
-- A registration is seen by the next publish of the same session; a rolled
-- back one is forgotten again.
BEGIN;
SELECT celerysalt_register_schema('regress.order.placed', celerysalt_get_schema('regress.order.placed'), version => 'v3')->'created' AS v3_created;
SELECT celerysalt_publish('regress.cache', '{}') IS NOT NULL AS p1,
       celerysalt_publish('regress.order.placed', '{"order_id": "2b0be589-1b1a-4c1c-8f5e-1a2b3c4d5e6f", "amount": 1, "placed_at": "2026-01-02T03:04:05Z"}') IS NOT NULL AS p2;
SELECT version FROM _celerysalt_outbox WHERE topic = 'regress.order.placed';
ROLLBACK;
BEGIN;
SELECT celerysalt_publish('regress.order.placed', '{"order_id": "2b0be589-1b1a-4c1c-8f5e-1a2b3c4d5e6f", "amount": 1, "placed_at": "2026-01-02T03:04:05Z"}') IS NOT NULL AS p3;
SELECT version FROM _celerysalt_outbox WHERE topic = 'regress.order.placed';
ROLLBACK;
-- Registering a schema for a topic already published unvalidated takes effect at once.
BEGIN;
SELECT celerysalt_publish('regress.late', '{"n": "x"}') IS NOT NULL AS unvalidated;
SELECT celerysalt_register_schema('regress.late', '{"type": "object", "properties": {"n": {"type": "integer"}}}')->'created' AS created;
SELECT state FROM pg_temp.try($q$SELECT celerysalt_publish('regress.late', '{"n": "x"}')$q$);
ROLLBACK;

-- ----------------------------------------------------------- deprecation
SELECT celerysalt_deprecate_schema('regress.order.placed', 'v1', 'use v2: coupons');
SET client_min_messages = warning;
-- one warning per transaction and version: its SQLSTATE (01P01), then its texts
-- (two runs, so that no source line number appears in the expected output)
\set VERBOSITY sqlstate
BEGIN;
SELECT count(celerysalt_publish('regress.order.placed',
        '{"order_id": "2b0be589-1b1a-4c1c-8f5e-1a2b3c4d5e6f", "amount": 1, "placed_at": "2026-01-02T03:04:05Z"}', 'v1')) AS published
  FROM generate_series(1, 3);
ROLLBACK;
\set VERBOSITY default
BEGIN;
SELECT count(celerysalt_publish('regress.order.placed',
        '{"order_id": "2b0be589-1b1a-4c1c-8f5e-1a2b3c4d5e6f", "amount": 1, "placed_at": "2026-01-02T03:04:05Z"}', 'v1')) AS published
  FROM generate_series(1, 3);
ROLLBACK;
RESET client_min_messages;
\x on
SELECT * FROM pg_temp.try($q$SELECT celerysalt_deprecate_schema('regress.order.placed', 'v2', ' ')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_deprecate_schema('regress.order.placed', 'v8', 'gone')$q$);
\x off

-- ------------------------------------------------------------- tracking
SELECT celerysalt_track_subscriber('regress.order.placed', 'billing', 'on_order_placed'),
       celerysalt_track_subscriber('regress.order.placed', 'mailer', 'send_receipt'),
       celerysalt_track_subscriber('regress.order.placed', 'mailer', 'send_receipt'),
       celerysalt_track_subscriber('regress.#', 'audit', 'log_everything', 'audit_queue'),
       celerysalt_track_publisher('regress.order.placed', 'shop', '1.5.0');
-- the queue is kept when a later call does not give it
SELECT celerysalt_track_subscriber('regress.#', 'audit', 'log_everything');
SELECT topic, service, handler, queue FROM celerysalt_subscribers ORDER BY 1, 2, 3;
SELECT * FROM pg_temp.try($q$SELECT celerysalt_track_subscriber('regress.#', 'audit', 'log_everything', '')$q$);
SELECT topic, service, service_version, module, class FROM celerysalt_publishers ORDER BY 1, 2;

-- Publish counts: one appended row per transaction and (topic, service).
SET celerysalt.service_name = 'regress-db';
SELECT count(celerysalt_publish('regress.order.placed',
        '{"order_id": "2b0be589-1b1a-4c1c-8f5e-1a2b3c4d5e6f", "amount": 1, "placed_at": "2026-01-02T03:04:05Z"}'))
  FROM generate_series(1, 3);
SELECT count(celerysalt_publish('regress.order.placed',
        '{"order_id": "2b0be589-1b1a-4c1c-8f5e-1a2b3c4d5e6f", "amount": 2, "placed_at": "2026-01-02T03:04:05Z"}'))
  FROM generate_series(1, 2);
-- a failed transaction counts nothing
SELECT state FROM pg_temp.try($q$SELECT celerysalt_publish('regress.order.placed', '{}')$q$);
RESET celerysalt.service_name;
SELECT topic, service, published FROM _celerysalt_publish_stats ORDER BY topic, published;
SELECT celerysalt_registry_compact() AS rows_saved;
SELECT topic, service, published, first_published_at <= last_published_at AS ordered
  FROM _celerysalt_publish_stats ORDER BY topic;

-- ---------------------------------------------------------------- views
SELECT topic, versions, latest_version, mode, description, compatibility, deprecated_versions,
       publishers, subscribers, publish_count, last_published_at IS NOT NULL AS published
  FROM celerysalt_catalog ORDER BY topic;
SELECT version, is_latest, path, name, type, required, nullable, format, description, default_value
  FROM celerysalt_catalog_fields WHERE topic = 'regress.order.placed' ORDER BY version, path;
SELECT count(*) AS delivered_events_columns
  FROM information_schema.columns WHERE table_name = 'celerysalt_catalog_events';
SELECT celerysalt_catalog_dot();

-- ------------------------------------------------------- generated code
SELECT celerysalt_pydantic_model('regress.order.placed', 'v2');
-- Enums in $defs, constraints, aliases, closed models, recursion.
SELECT celerysalt_register_schema('regress.codegen', '{
  "$defs": {
    "Color": {"enum": ["red", "dark-blue", "class"], "title": "Color", "type": "string"},
    "Node": {"properties": {"children": {"items": {"$ref": "#/$defs/Node"}, "title": "Children", "type": "array"},
                            "name": {"maxLength": 20, "minLength": 1, "title": "Name", "type": "string"}},
             "required": ["name"], "title": "Node", "type": "object", "additionalProperties": false}},
  "description": "Everything at once.",
  "properties": {
    "color": {"$ref": "#/$defs/Color", "default": "red"},
    "tree": {"$ref": "#/$defs/Node"},
    "from": {"title": "From", "type": "integer", "exclusiveMinimum": 0, "multipleOf": 5},
    "_private": {"type": "boolean"},
    "kind": {"const": "demo", "title": "Kind"},
    "scores": {"additionalProperties": {"type": "number"}, "type": "object"},
    "pair": {"maxItems": 2, "minItems": 2, "prefixItems": [{"type": "string"}, {"type": "integer"}], "type": "array"},
    "code": {"anyOf": [{"pattern": "^[A-Z]{3}$", "type": "string"}, {"type": "null"}], "default": null}},
  "required": ["tree", "from", "kind"], "title": "Codegen Event", "type": "object"}')->'created' AS created;
SELECT celerysalt_pydantic_model('regress.codegen');
SELECT path, type, required, nullable FROM celerysalt_catalog_fields
 WHERE topic = 'regress.codegen' ORDER BY path;

-- generated models follow the declaration order recorded from the JSON text
-- (jsonb sorts keys); an RPC topic's module has its response and error models
\set req '{"title": "Add", "type": "object", "properties": {"b": {"type": "integer"}, "a": {"type": "integer"}}, "required": ["b", "a"]}'
\set res '{"title": "Add", "type": "object", "properties": {"total": {"type": "integer"}, "note": {"type": "string"}}, "required": ["total"]}'
\set err '{"title": "AddError", "type": "object", "properties": {"message": {"type": "string"}, "code": {"type": "integer"}}}'
SELECT celerysalt_register_schema('regress.codegen.rpc', :'req', mode => 'rpc', response_schema => :'res',
                                  error_schema => :'err')->'created' AS created;
SELECT celerysalt_register_property_order('regress.codegen.rpc', 'v1', :'req', :'res', '{"title": "other"}');
SELECT celerysalt_register_property_order('regress.codegen.rpc', 'v1', :'req', :'res', :'err');
SELECT celerysalt_register_property_order('regress.codegen.rpc', 'v1', :'req', :'res', :'err');
SELECT property_order FROM celerysalt_schemas WHERE topic = 'regress.codegen.rpc';
SELECT celerysalt_pydantic_model('regress.codegen.rpc');
SELECT celerysalt_register_property_order('regress.codegen.none', 'v1', '{}');

-- ------------------------------------------------------------ the graph
-- Topic patterns as RabbitMQ matches them: "*" one word, "#" zero or more.
SELECT p AS pattern, t AS topic, _celerysalt_topic_matches(p, t) AS matches
  FROM (VALUES ('orders.#', 'orders'), ('orders.#', 'orders.placed'), ('orders.#', 'orders.placed.eu'),
               ('orders.#', 'ordersx'), ('orders.#', 'x.orders'),
               ('orders.*', 'orders.placed'), ('orders.*', 'orders'), ('orders.*', 'orders.placed.eu'),
               ('*.placed', 'orders.placed'), ('*.placed', 'placed'), ('#', 'a.b.c'),
               ('a.#.b', 'a.b'), ('a.#.b', 'a.x.y.b'), ('a.#.b', 'a.bx'), ('#.b', 'b'), ('#.b', 'a.b'),
               ('a+b.#', 'a+b.c'), ('a+b.#', 'aab.c'), ('a.b*', 'a.bc'), ('a.b*', 'a.b*'),
               ('a.(b|c)', 'a.b'), ('a.[b]', 'a.[b]')) v(p, t);
-- Wildcard subscriptions are drawn from the topics they match (dashed, the
-- pattern in the label), one matching nothing as its own dotted node; the
-- RPC topic regress.codegen.rpc as a hexagon with bold "rpc" edges: its
-- responder, a caller with 2 calls, a declared caller with none; declared
-- publishers without events say "declared", never "0 published".
SELECT celerysalt_track_subscriber('regress.*', 'audit', 'log_one_word'),
       celerysalt_track_subscriber('nothing.here.#', 'audit', 'log_nothing'),
       celerysalt_track_subscriber('regress.codegen.rpc', 'calc', 'add'),
       celerysalt_track_publisher('regress.codegen.rpc', 'checkout'),
       celerysalt_track_publisher('regress.codegen.rpc', 'kiosk');
SET celerysalt.service_name = 'checkout';
SELECT count(celerysalt_publish('regress.codegen.rpc', '{"a": 1, "b": 2}')) FROM generate_series(1, 2);
RESET celerysalt.service_name;
SELECT celerysalt_catalog_dot();
SELECT celerysalt_catalog_dot() ~ ' 0 published' AS says_zero_published;
