-- Follow actions as an application role: a plain role that owns nothing,
-- holds celerysalt_publisher and the privileges on its tables, and no
-- privilege on any internal table.  Its UPDATEs fire rules in both error
-- modes, single and bulk; failures are recorded; a reader role reads the
-- logs.  The table belongs to another plain role (the one that runs the
-- migrations), as in a Django deployment.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS celerysalt;
RESET client_min_messages;

\i sql/include/try.sql

-- Events this test enqueued since the last pg_temp.mark(), read before the
-- transaction ends (after a commit the worker may deliver them).  The
-- test's own window on the outbox: SECURITY DEFINER, owned by the
-- superuser running the test.
CREATE TEMP TABLE test_mark (event_id bigint);
INSERT INTO test_mark VALUES (0);
CREATE FUNCTION pg_temp.mark() RETURNS void LANGUAGE sql SECURITY DEFINER AS $$
    UPDATE pg_temp.test_mark SET event_id = (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM _celerysalt_event_seq)
$$;
CREATE FUNCTION pg_temp.events(OUT topic text, OUT payload jsonb)
RETURNS SETOF record LANGUAGE sql SECURITY DEFINER AS $$
    SELECT topic, payload FROM _celerysalt_outbox
     WHERE topic LIKE 'app.%' AND event_id > (SELECT event_id FROM pg_temp.test_mark)
     ORDER BY event_id
$$;
GRANT EXECUTE ON FUNCTION pg_temp.mark(), pg_temp.events() TO PUBLIC;

CREATE ROLE regress_fa_migrator IN ROLE celerysalt_publisher;
CREATE ROLE regress_fa_app IN ROLE celerysalt_publisher;
CREATE ROLE regress_fa_reader IN ROLE celerysalt_reader;
CREATE ROLE regress_fa_plain;   -- no celerysalt role at all
GRANT CREATE ON SCHEMA public TO regress_fa_migrator, regress_fa_app;

-- the schema the rules' events must follow (an admin registers it)
SELECT celerysalt_register_schema('app.order.paid',
    '{"type": "object", "properties": {"order_id": {"type": "integer"}, "amount": {"type": "number"}},
      "required": ["order_id", "amount"]}', version => 'v1')->'created' AS registered;

-- the migration role creates the table and attaches the trigger
SET ROLE regress_fa_migrator;
CREATE TABLE app_orders (
    id              int PRIMARY KEY,
    status          text NOT NULL DEFAULT 'new',
    amount          numeric,
    on_change_rules jsonb NOT NULL DEFAULT '[]'
);
SELECT celerysalt_attach_follow_actions('app_orders');
GRANT SELECT, INSERT, UPDATE, DELETE ON app_orders TO regress_fa_app;
GRANT SELECT, UPDATE ON app_orders TO regress_fa_plain;
RESET ROLE;

-- the application role: nothing on the internal tables
SELECT rolsuper, rolcreaterole, rolcreatedb,
       pg_has_role('regress_fa_app', 'celerysalt_publisher', 'MEMBER') AS publisher,
       pg_has_role('regress_fa_app', 'celerysalt_admin', 'MEMBER') AS admin
  FROM pg_roles WHERE rolname = 'regress_fa_app';
SELECT c.relname, has_table_privilege('regress_fa_app', c.oid, 'INSERT, UPDATE, DELETE') AS writes
  FROM pg_class c
 WHERE c.relname IN ('_celerysalt_outbox', '_celerysalt_log', '_celerysalt_log_0', '_celerysalt_log_position', 'celerysalt_follow_action_failures',
                     'celerysalt_events', 'celerysalt_dead_letters', '_celerysalt_log_undelivered')
 ORDER BY 1;
SELECT has_sequence_privilege('regress_fa_app', '_celerysalt_event_seq', 'USAGE, UPDATE') AS sequence;

SET ROLE regress_fa_app;
-- nor can it write an event into the outbox behind the intake
SELECT state, message FROM pg_temp.try($q$INSERT INTO _celerysalt_outbox (slot, event_id, id, topic, payload)
                                          VALUES (0, 1, gen_random_uuid(), 'app.x', '{}')$q$);

-- rules written by the application itself, through the checked builder
INSERT INTO app_orders (id, amount, on_change_rules)
SELECT 1, 10.5, jsonb_build_array(
    celerysalt_follow_action_rule('status', 'eql', 'app.order.paid', '"paid"', version => 'v1',
        payload => '{"order_id": {"$pk": true}, "amount": {"$new": "amount"}}', tbl => 'app_orders'),
    celerysalt_follow_action_rule('status', 'changed_to', 'app.order.shipped', '"shipped"',
        persist => 'False', tbl => 'app_orders'),
    celerysalt_follow_action_rule('status', 'updated', 'app.order.touched',
        persist => 'ForceFalse', tbl => 'app_orders'));

-- ------------------------------------------------ error mode, one row
SHOW celerysalt.follow_action_errors;
BEGIN;
SELECT pg_temp.mark();
UPDATE app_orders SET status = 'paid' WHERE id = 1;
SELECT * FROM pg_temp.events();
-- ForceFalse is gone after the first change; the others stay
SELECT jsonb_array_length(on_change_rules) AS rules_left FROM app_orders WHERE id = 1;
UPDATE app_orders SET status = 'shipped' WHERE id = 1;
SELECT * FROM pg_temp.events();
-- persist False removed the rule that fired
SELECT r->>'topic' AS remaining FROM app_orders, jsonb_array_elements(on_change_rules) r WHERE id = 1;
COMMIT;

-- a rule whose event breaks the registered schema: the UPDATE fails
-- with the validation error, and nothing of it remains
INSERT INTO app_orders (id, amount, on_change_rules)
SELECT 2, NULL, jsonb_build_array(
    celerysalt_follow_action_rule('status', 'eql', 'app.order.paid', '"paid"', version => 'v1',
        payload => '{"order_id": {"$pk": true}, "amount": {"$new": "amount"}}', tbl => 'app_orders'),
    celerysalt_follow_action_rule('status', 'updated', 'app.order.touched', tbl => 'app_orders'));
SELECT state, message, detail FROM pg_temp.try($q$UPDATE app_orders SET status = 'paid' WHERE id = 2$q$);
SELECT status FROM app_orders WHERE id = 2;

-- ------------------------------------------------ dead_letter mode
SET celerysalt.follow_action_errors = dead_letter;
BEGIN;
SELECT pg_temp.mark();
UPDATE app_orders SET status = 'paid' WHERE id = 2;   -- WARNING, recorded, the UPDATE and the other rule go on
SELECT status FROM app_orders WHERE id = 2;
SELECT * FROM pg_temp.events();
COMMIT;
RESET celerysalt.follow_action_errors;

-- ------------------------------------------------ bulk UPDATE, 10,000 rows
INSERT INTO app_orders (id, amount, on_change_rules)
SELECT i, i, jsonb_build_array(
    celerysalt_follow_action_rule('status', 'eql', 'app.order.paid', '"paid"', version => 'v1',
        payload => '{"order_id": {"$pk": true}, "amount": {"$new": "amount"}}', persist => 'False',
        tbl => 'app_orders'))
  FROM generate_series(1000, 10999) i;
BEGIN;
SELECT pg_temp.mark();
UPDATE app_orders SET status = 'paid' WHERE id BETWEEN 1000 AND 10999;
SELECT count(*) AS events, count(DISTINCT payload->>'order_id') AS orders,
       min((payload->>'order_id')::int), max((payload->>'order_id')::int)
  FROM pg_temp.events() WHERE topic = 'app.order.paid';
SELECT count(*) FILTER (WHERE on_change_rules = '[]') AS rules_removed
  FROM app_orders WHERE id BETWEEN 1000 AND 10999;
COMMIT;

-- the same in dead_letter mode, where every row fails validation (amount null)
UPDATE app_orders SET amount = NULL, status = 'new',
       on_change_rules = jsonb_build_array(celerysalt_follow_action_rule('status', 'eql', 'app.order.paid',
           '"paid"', version => 'v1', payload => '{"order_id": {"$pk": true}, "amount": {"$new": "amount"}}',
           tbl => 'app_orders'))
 WHERE id BETWEEN 1000 AND 10999;
SET celerysalt.follow_action_errors = dead_letter;
SET client_min_messages = error;   -- one WARNING per row
UPDATE app_orders SET status = 'paid' WHERE id BETWEEN 1000 AND 10999;
RESET client_min_messages;
RESET celerysalt.follow_action_errors;
SELECT count(*) AS paid FROM app_orders WHERE id BETWEEN 1000 AND 10999 AND status = 'paid';

-- DELETE works for the application; a deleted row fires nothing
BEGIN;
SELECT pg_temp.mark();
DELETE FROM app_orders WHERE id BETWEEN 1000 AND 10999;
SELECT count(*) AS events FROM pg_temp.events();
COMMIT;
RESET ROLE;

-- ------------------------------------------------ a role with no celerysalt role
-- fires the rules others stored (its UPDATE publishes through the intake);
-- it could not store one
SET ROLE regress_fa_plain;
BEGIN;
SELECT pg_temp.mark();
UPDATE app_orders SET status = 'paid' WHERE id = 1;
SELECT * FROM pg_temp.events();
ROLLBACK;
SELECT state, message FROM pg_temp.try($q$UPDATE app_orders SET on_change_rules = on_change_rules ||
    '[{"field_name": "status", "operator": "updated", "topic": "app.order.sneaky"}]' WHERE id = 1$q$);
RESET ROLE;

-- ------------------------------------------------ the reader role
SET ROLE regress_fa_reader;
SELECT table_name, rule_index, topic, sqlstate, left(reason, 60) AS reason
  FROM celerysalt_follow_action_failures ORDER BY id LIMIT 2;
SELECT count(*) AS recorded FROM celerysalt_follow_action_failures;
SELECT table_name::text, rules_column, enabled FROM celerysalt_follow_action_tables;
SELECT count(*) >= 0 AS events_readable FROM celerysalt_events;
SELECT count(*) >= 0 AS dead_letters_readable FROM celerysalt_dead_letters;
SELECT count(*) = 1 AS status_readable FROM celerysalt_status;
-- but it writes nothing
SELECT state FROM pg_temp.try($q$DELETE FROM celerysalt_follow_action_failures$q$);
RESET ROLE;

-- ------------------------------------------------ clean up
DROP TABLE app_orders;
DELETE FROM celerysalt_follow_action_failures WHERE table_name = 'public.app_orders';
DELETE FROM celerysalt_schemas WHERE topic = 'app.order.paid';
DELETE FROM celerysalt_topics WHERE topic = 'app.order.paid';
REVOKE CREATE ON SCHEMA public FROM regress_fa_migrator, regress_fa_app;
DROP ROLE regress_fa_migrator, regress_fa_app, regress_fa_reader, regress_fa_plain;
