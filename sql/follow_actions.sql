-- Follow actions: the row trigger, every operator, persist, payload templates,
-- bulk UPDATEs, other triggers, rollback, and every error with its SQLSTATE.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS celerysalt;
RESET client_min_messages;

\i sql/include/try.sql

-- Events of this test waiting in the outbox (checked before the transaction
-- ends: after a commit the worker may deliver them at any time).
CREATE FUNCTION pg_temp.events(OUT topic text, OUT payload jsonb, OUT version text)
RETURNS SETOF record LANGUAGE sql AS $$
    SELECT topic, payload, version FROM _celerysalt_outbox
     WHERE topic LIKE 'fa.%' ORDER BY event_id
$$;

SET TimeZone = 'UTC';

CREATE TABLE fa_orders (
    id          int PRIMARY KEY,
    status      text,
    amount      numeric,
    qty         int,
    paid        boolean,
    shipped_at  timestamptz,
    due         date,
    tags        jsonb,
    note        varchar(20),
    on_change_rules jsonb NOT NULL DEFAULT '[]'
);
INSERT INTO fa_orders (id, status, amount, qty, paid, shipped_at, due, tags, note)
VALUES (1, 'new', 10.50, 1, false, NULL, '2024-05-01', '{"a": 1, "b": [1, 2]}', 'hello');

-- Set the rules of one row (this UPDATE itself fires nothing: the rules are new).
CREATE FUNCTION pg_temp.set_rules(row_id int, VARIADIC rules jsonb[]) RETURNS void
LANGUAGE sql AS $$ UPDATE fa_orders SET on_change_rules = pg_catalog.to_jsonb(rules) WHERE id = row_id $$;
-- A rule with the default payload, built and checked by the helper.
CREATE FUNCTION pg_temp.r(field text, op text, topic text, value jsonb DEFAULT NULL,
                          persist text DEFAULT 'True') RETURNS jsonb
LANGUAGE sql AS $$ SELECT celerysalt_follow_action_rule(field, op, topic, value, persist => persist, tbl => 'fa_orders') $$;

-- ------------------------------------------------------------ attach
SELECT celerysalt_attach_follow_actions('fa_orders');
SELECT celerysalt_attach_follow_actions('fa_orders');   -- idempotent
SELECT table_name, rules_column, enabled FROM celerysalt_follow_action_tables WHERE table_name = 'fa_orders'::regclass;
SELECT tgname, tgtype FROM pg_trigger WHERE tgrelid = 'fa_orders'::regclass;

-- ------------------------------------------------------------ operators
-- eql, scalar: fires when the new value equals it
SELECT pg_temp.set_rules(1, pg_temp.r('status', 'eql', 'fa.eql', '"paid"'));
BEGIN;
UPDATE fa_orders SET status = 'pending' WHERE id = 1;   -- no match
UPDATE fa_orders SET status = 'paid' WHERE id = 1;      -- match
SELECT * FROM pg_temp.events();
ROLLBACK;

-- eql, list: the new value is one of them; a one-element list is unwrapped
SELECT pg_temp.set_rules(1, pg_temp.r('status', 'eql', 'fa.eql.list', '["paid", "shipped"]'),
                            pg_temp.r('status', 'eql', 'fa.eql.one', '["shipped"]'),
                            pg_temp.r('tags', 'eql', 'fa.eql.array', '[[1, 2]]'));
BEGIN;
UPDATE fa_orders SET status = 'paid' WHERE id = 1;
UPDATE fa_orders SET status = 'shipped', tags = '[1, 2]' WHERE id = 1;
SELECT topic, payload->'new' AS new FROM pg_temp.events();
ROLLBACK;

-- not_eql: scalar and list
SELECT pg_temp.set_rules(1, pg_temp.r('status', 'not_eql', 'fa.not_eql', '"paid"'),
                            pg_temp.r('status', 'not_eql', 'fa.not_eql.list', '["paid", "void"]'));
BEGIN;
UPDATE fa_orders SET status = 'paid' WHERE id = 1;
UPDATE fa_orders SET status = 'void' WHERE id = 1;
UPDATE fa_orders SET status = 'open' WHERE id = 1;
SELECT topic, payload->'new' AS new FROM pg_temp.events();
ROLLBACK;

-- updated: any change, only of the named field, only when old and new differ
SELECT pg_temp.set_rules(1, pg_temp.r('status', 'updated', 'fa.updated'));
BEGIN;
UPDATE fa_orders SET status = status WHERE id = 1;       -- same value: nothing
UPDATE fa_orders SET qty = 2 WHERE id = 1;               -- another field: nothing
UPDATE fa_orders SET status = NULL WHERE id = 1;         -- to NULL
UPDATE fa_orders SET status = 'new' WHERE id = 1;        -- from NULL
SELECT topic, payload FROM pg_temp.events();
ROLLBACK;

-- deleted: the new value is NULL or the empty string
SELECT pg_temp.set_rules(1, pg_temp.r('note', 'deleted', 'fa.deleted'));
BEGIN;
UPDATE fa_orders SET note = 'bye' WHERE id = 1;
UPDATE fa_orders SET note = '' WHERE id = 1;
UPDATE fa_orders SET note = 'back' WHERE id = 1;
UPDATE fa_orders SET note = NULL WHERE id = 1;
SELECT topic, payload->'old' AS old, payload->'new' AS new FROM pg_temp.events();
ROLLBACK;

-- changed_from / changed_to, with the optional other end of the transition
SELECT pg_temp.set_rules(1,
    pg_temp.r('status', 'changed_from', 'fa.from.new', '"new"'),
    celerysalt_follow_action_rule('status', 'changed_from', 'fa.from.new.to.paid', '"new"', to_value => '"paid"', tbl => 'fa_orders'),
    pg_temp.r('status', 'changed_to', 'fa.to.paid', '"paid"'),
    celerysalt_follow_action_rule('status', 'changed_to', 'fa.to.paid.from.held', '"paid"', from_value => '["held"]', tbl => 'fa_orders'));
BEGIN;
UPDATE fa_orders SET status = 'held' WHERE id = 1;   -- from new
UPDATE fa_orders SET status = 'paid' WHERE id = 1;   -- to paid, from held
SELECT topic, payload->'old' AS old, payload->'new' AS new FROM pg_temp.events();
ROLLBACK;
BEGIN;
UPDATE fa_orders SET status = 'paid' WHERE id = 1;   -- new -> paid
SELECT topic FROM pg_temp.events();
ROLLBACK;

-- gt / gte / lt / lte: numbers numerically (across integer and numeric)
SELECT pg_temp.set_rules(1, pg_temp.r('amount', 'gt', 'fa.gt', '100'),
                            pg_temp.r('amount', 'gte', 'fa.gte', '100.0'),
                            pg_temp.r('qty', 'lt', 'fa.lt', '0'),
                            pg_temp.r('qty', 'lte', 'fa.lte', '0.0'));
BEGIN;
UPDATE fa_orders SET amount = 99.99, qty = 5 WHERE id = 1;
UPDATE fa_orders SET amount = 100, qty = 0 WHERE id = 1;
UPDATE fa_orders SET amount = 1e3, qty = -1 WHERE id = 1;
SELECT topic, payload->'new' AS new FROM pg_temp.events();
ROLLBACK;

-- ... and strings byte by byte: ISO timestamps in the same time zone order correctly
SELECT pg_temp.set_rules(1, pg_temp.r('shipped_at', 'gte', 'fa.late', '"2024-06-01T00:00:00+00:00"'),
                            pg_temp.r('due', 'lt', 'fa.early', '"2024-01-01"'));
BEGIN;
UPDATE fa_orders SET shipped_at = '2024-05-31 23:59:59+00', due = '2024-02-01' WHERE id = 1;
UPDATE fa_orders SET shipped_at = '2024-06-01 00:00:00+00', due = '2023-12-31' WHERE id = 1;
SELECT topic, payload->'new' AS new FROM pg_temp.events();
ROLLBACK;

-- in / not_in: an explicit list, never unwrapped
SELECT pg_temp.set_rules(1, pg_temp.r('status', 'in', 'fa.in', '["paid", "shipped"]'),
                            pg_temp.r('status', 'not_in', 'fa.not_in', '["paid"]'));
BEGIN;
UPDATE fa_orders SET status = 'paid' WHERE id = 1;
UPDATE fa_orders SET status = 'open' WHERE id = 1;
SELECT topic, payload->'new' AS new FROM pg_temp.events();
ROLLBACK;

-- is_null / is_not_null
SELECT pg_temp.set_rules(1, pg_temp.r('shipped_at', 'is_null', 'fa.is_null'),
                            pg_temp.r('shipped_at', 'is_not_null', 'fa.is_not_null'));
BEGIN;
UPDATE fa_orders SET shipped_at = '2024-01-02 03:04:05+00' WHERE id = 1;
UPDATE fa_orders SET shipped_at = NULL WHERE id = 1;
SELECT topic, payload->'old' AS old, payload->'new' AS new FROM pg_temp.events();
ROLLBACK;

-- ------------------------------------------------------- how types compare
-- numeric 10.50 -> 10.5 is no change (JSON numbers compare numerically)
SELECT pg_temp.set_rules(1, pg_temp.r('amount', 'updated', 'fa.amount'),
                            pg_temp.r('tags', 'updated', 'fa.tags'),
                            pg_temp.r('paid', 'eql', 'fa.paid', 'true'),
                            pg_temp.r('qty', 'eql', 'fa.qty', '2.0'),
                            pg_temp.r('amount', 'eql', 'fa.nan', '"NaN"'));
BEGIN;
UPDATE fa_orders SET amount = 10.5 WHERE id = 1;
UPDATE fa_orders SET tags = '{"b": [1, 2], "a": 1}' WHERE id = 1;   -- same object
UPDATE fa_orders SET paid = true, qty = 2 WHERE id = 1;
UPDATE fa_orders SET amount = 'NaN' WHERE id = 1;                    -- to_jsonb makes "NaN"
SELECT topic, payload->'old' AS old, payload->'new' AS new FROM pg_temp.events();
ROLLBACK;

-- a number never equals a string: a hand-written rule with "2" never fires
SELECT pg_temp.set_rules(1, '{"field_name": "qty", "operator": "eql", "value": "2", "topic": "fa.never"}');
BEGIN;
UPDATE fa_orders SET qty = 2 WHERE id = 1;
SELECT count(*) AS fired FROM pg_temp.events();
ROLLBACK;

-- ------------------------------------------------------------- persist
-- True keeps the rule; False removes it once it fired (and only then);
-- ForceFalse removes it at the next UPDATE whether or not it fired.
SELECT pg_temp.set_rules(1, pg_temp.r('status', 'eql', 'fa.keep', '"paid"', 'True'),
                            pg_temp.r('status', 'eql', 'fa.once', '"paid"', 'False'),
                            pg_temp.r('status', 'eql', 'fa.force', '"gone"', 'ForceFalse'));
BEGIN;
-- an UPDATE that changes only the rules column (adding a rule) removes nothing
UPDATE fa_orders SET on_change_rules = on_change_rules || pg_temp.r('qty', 'updated', 'fa.qty.updated') WHERE id = 1;
SELECT jsonb_path_query_array(on_change_rules, '$[*].topic') AS rules FROM fa_orders WHERE id = 1;
UPDATE fa_orders SET status = 'open' WHERE id = 1;   -- nothing fires; ForceFalse goes
SELECT jsonb_path_query_array(on_change_rules, '$[*].topic') AS rules FROM fa_orders WHERE id = 1;
UPDATE fa_orders SET status = 'paid' WHERE id = 1;   -- keep and once fire; once goes
SELECT jsonb_path_query_array(on_change_rules, '$[*].topic') AS rules FROM fa_orders WHERE id = 1;
UPDATE fa_orders SET status = 'open' WHERE id = 1;
UPDATE fa_orders SET status = 'paid' WHERE id = 1;   -- only keep fires now
SELECT topic FROM pg_temp.events();
ROLLBACK;

-- ForceFalse fires when it matches, and is removed in the same UPDATE
SELECT pg_temp.set_rules(1, pg_temp.r('status', 'eql', 'fa.force', '"paid"', 'ForceFalse'));
BEGIN;
UPDATE fa_orders SET status = 'paid' WHERE id = 1;
SELECT topic FROM pg_temp.events();
SELECT on_change_rules FROM fa_orders WHERE id = 1;
ROLLBACK;

-- booleans: true keeps, false removes once fired
SELECT pg_temp.set_rules(1, '{"field_name": "status", "operator": "updated", "topic": "fa.bool.true", "persist": true}',
                            '{"field_name": "status", "operator": "updated", "topic": "fa.bool.false", "persist": false}');
BEGIN;
UPDATE fa_orders SET status = 'a' WHERE id = 1;
UPDATE fa_orders SET status = 'b' WHERE id = 1;
SELECT topic FROM pg_temp.events();
SELECT jsonb_path_query_array(on_change_rules, '$[*].topic') AS rules FROM fa_orders WHERE id = 1;
ROLLBACK;

-- ----------------------------------------- rules added or removed by the UPDATE
-- A row without rules that gets rules and a change in one UPDATE fires nothing.
UPDATE fa_orders SET on_change_rules = '[]' WHERE id = 1;
BEGIN;
UPDATE fa_orders SET status = 'paid',
       on_change_rules = jsonb_build_array(pg_temp.r('status', 'updated', 'fa.added')) WHERE id = 1;
SELECT count(*) AS fired FROM pg_temp.events();
UPDATE fa_orders SET status = 'shipped' WHERE id = 1;   -- the next UPDATE does
SELECT topic FROM pg_temp.events();
ROLLBACK;
-- A rule added next to existing ones does not fire either; one removed by the UPDATE does not.
SELECT pg_temp.set_rules(1, pg_temp.r('status', 'updated', 'fa.old.rule'),
                            pg_temp.r('status', 'updated', 'fa.dropped.rule'));
BEGIN;
UPDATE fa_orders SET status = 'x',
       on_change_rules = jsonb_build_array(on_change_rules->0, pg_temp.r('status', 'updated', 'fa.new.rule')) WHERE id = 1;
SELECT topic FROM pg_temp.events();
ROLLBACK;

-- ------------------------------------------------------- payload templates
SELECT pg_temp.set_rules(1, celerysalt_follow_action_rule('status', 'eql', 'fa.tmpl', '"paid"',
    payload => '{"order_id": {"$new": "id"}, "was": {"$old": "status"}, "key": {"$pk": true},
                 "money": {"amount": {"$new": "amount"}, "tags": {"$new": "tags"}},
                 "list": [{"$old": "qty"}, {"$new": "qty"}, "x"],
                 "raw": {"$literal": {"$new": "not replaced"}}, "n": null}',
    version => 'v2', tbl => 'fa_orders'));
BEGIN;
UPDATE fa_orders SET status = 'paid', qty = 3 WHERE id = 1;
SELECT topic, version, jsonb_pretty(payload) FROM pg_temp.events();
ROLLBACK;
-- a placeholder may stand for the whole payload (a jsonb column holding an object)
SELECT pg_temp.set_rules(1, celerysalt_follow_action_rule('status', 'updated', 'fa.whole',
    payload => '{"$new": "tags"}', tbl => 'fa_orders'));
BEGIN;
UPDATE fa_orders SET status = 'paid' WHERE id = 1;
SELECT topic, payload FROM pg_temp.events();
ROLLBACK;
-- composite primary key: $pk is an object
CREATE TABLE fa_lines (order_id int, line int, state text, rules jsonb, PRIMARY KEY (order_id, line));
SELECT celerysalt_attach_follow_actions('fa_lines', 'rules');
INSERT INTO fa_lines VALUES (1, 1, 'a', jsonb_build_array(celerysalt_follow_action_rule('state', 'updated', 'fa.line', tbl => 'fa_lines')));
BEGIN;
UPDATE fa_lines SET state = 'b';
SELECT topic, payload FROM pg_temp.events();
ROLLBACK;

-- ---------------------------------------------- bulk UPDATE ... WHERE: every row
INSERT INTO fa_orders (id, status, amount, qty)
SELECT i, 'new', i, i FROM generate_series(100, 199) i;
UPDATE fa_orders SET on_change_rules = jsonb_build_array(pg_temp.r('status', 'eql', 'fa.bulk', '"paid"', 'False'))
 WHERE id >= 100;
BEGIN;
UPDATE fa_orders SET status = 'paid' WHERE id >= 100 AND id % 2 = 0;
SELECT count(*) AS events, count(DISTINCT payload->'pk') AS rows,
       min((payload->>'pk')::int), max((payload->>'pk')::int) FROM pg_temp.events();
SELECT count(*) FILTER (WHERE on_change_rules = '[]') AS fired_rules_removed,
       count(*) FILTER (WHERE on_change_rules <> '[]') AS rules_kept
  FROM fa_orders WHERE id >= 100;
ROLLBACK;

-- ------------------------------- large rule sets: compressed, or out of line
-- 40 rules per row (one matches): stored compressed in line (STORAGE MAIN) and
-- uncompressed out of line in the TOAST table (STORAGE EXTERNAL).  Consecutive
-- rows with the same stored rules share one parse; every row still fires.
CREATE TABLE fa_big_main (id int PRIMARY KEY, status text, on_change_rules jsonb);
CREATE TABLE fa_big_ext (id int PRIMARY KEY, status text, on_change_rules jsonb);
ALTER TABLE fa_big_main ALTER COLUMN on_change_rules SET STORAGE MAIN;
ALTER TABLE fa_big_ext ALTER COLUMN on_change_rules SET STORAGE EXTERNAL;
CREATE TEMP TABLE fa_big_rules AS
SELECT jsonb_agg(pg_temp.r('status', 'eql', 'fa.big.never' || k, to_jsonb('never-' || k || '-' || md5(k::text))) ORDER BY k)
       || jsonb_build_array(pg_temp.r('status', 'eql', 'fa.big.paid', '"paid"', 'False')) AS rules
  FROM generate_series(1, 39) k;
INSERT INTO fa_big_main SELECT i, 'new', rules FROM generate_series(1, 20) i, fa_big_rules;
-- (a fresh, uncompressed value: a compressed one small enough would stay in line)
INSERT INTO fa_big_ext SELECT i, 'new', rules::text::jsonb FROM generate_series(1, 20) i, fa_big_rules;
-- the rows already hold rules: attaching adopts them only when asked to
SELECT state FROM pg_temp.try($q$SELECT celerysalt_attach_follow_actions('fa_big_main')$q$);
SELECT celerysalt_attach_follow_actions('fa_big_main', adopt_existing_rules => true),
       celerysalt_attach_follow_actions('fa_big_ext', adopt_existing_rules => true);
SELECT (SELECT pg_column_size(on_change_rules) < octet_length(on_change_rules::text) / 2 FROM fa_big_main LIMIT 1) AS main_compressed,
       (SELECT pg_total_relation_size(reltoastrelid) > 8192 FROM pg_class WHERE oid = 'fa_big_ext'::regclass) AS ext_out_of_line,
       (SELECT pg_total_relation_size(reltoastrelid) <= 8192 FROM pg_class WHERE oid = 'fa_big_main'::regclass) AS main_in_line;
BEGIN;
UPDATE fa_big_main SET status = 'open';
UPDATE fa_big_ext SET status = 'open';
SELECT count(*) AS events_for_no_match FROM pg_temp.events() WHERE topic LIKE 'fa.big.%';
UPDATE fa_big_main SET status = 'paid' WHERE id % 2 = 0;
UPDATE fa_big_ext SET status = 'paid' WHERE id % 2 = 0;
SELECT payload->>'table' AS tbl, count(*) AS events, sum((payload->>'pk')::int) AS pk_sum
  FROM pg_temp.events() WHERE topic = 'fa.big.paid' GROUP BY 1 ORDER BY 1;
SELECT 'main' AS tbl, jsonb_array_length(on_change_rules) AS rules, count(*) FROM fa_big_main GROUP BY 1, 2
UNION ALL
SELECT 'ext', jsonb_array_length(on_change_rules), count(*) FROM fa_big_ext GROUP BY 1, 2 ORDER BY 1, 2;
ROLLBACK;
DROP TABLE fa_big_main, fa_big_ext;

-- ------------------------------------------------ rows changed by other triggers
-- A BEFORE trigger of the same table runs first (name order): its change counts.
CREATE FUNCTION pg_temp.auto_ship() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.paid AND NOT OLD.paid THEN NEW.status := 'shipped'; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER auto_ship BEFORE UPDATE ON fa_orders FOR EACH ROW EXECUTE FUNCTION pg_temp.auto_ship();
SELECT pg_temp.set_rules(1, pg_temp.r('status', 'eql', 'fa.shipped', '"shipped"'));
BEGIN;
UPDATE fa_orders SET paid = true WHERE id = 1;
SELECT topic, payload->'new' AS new FROM pg_temp.events();
ROLLBACK;
DROP TRIGGER auto_ship ON fa_orders;
-- An UPDATE run by a trigger of another table fires too.
CREATE TABLE fa_payments (order_id int, amount numeric);
CREATE FUNCTION pg_temp.mark_paid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE fa_orders SET status = 'paid' WHERE id = NEW.order_id;
    RETURN NULL;
END $$;
CREATE TRIGGER mark_paid AFTER INSERT ON fa_payments FOR EACH ROW EXECUTE FUNCTION pg_temp.mark_paid();
SELECT pg_temp.set_rules(1, pg_temp.r('status', 'eql', 'fa.paid.by.trigger', '"paid"'));
BEGIN;
INSERT INTO fa_payments VALUES (1, 10);
SELECT topic, payload->'pk' AS pk FROM pg_temp.events();
ROLLBACK;

-- ------------------------------------------------ rolled back: nothing published
SELECT pg_temp.set_rules(1, pg_temp.r('status', 'eql', 'fa.rollback', '"paid"', 'False'));
BEGIN;
UPDATE fa_orders SET status = 'paid' WHERE id = 1;
SELECT count(*) AS in_outbox FROM _celerysalt_outbox WHERE topic = 'fa.rollback';
ROLLBACK;
SELECT (SELECT count(*) FROM _celerysalt_outbox WHERE topic = 'fa.rollback') AS in_outbox,
       (SELECT count(*) FROM celerysalt_events WHERE topic = 'fa.rollback') AS delivered;
-- and the rule is still there, as before
SELECT jsonb_path_query_array(on_change_rules, '$[*].topic') AS rules FROM fa_orders WHERE id = 1;

-- ------------------------------------------------- errors at rule creation
\x on
-- 22004: required members missing
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_rule('status', 'eql', NULL, '1')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_rule(NULL, 'eql', 'fa.x', '1')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_rule('status', NULL, 'fa.x', '1')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_check(NULL)$q$);
-- 22023: unknown operator, bad persist, operands that do not fit the operator
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_rule('status', 'equals', 'fa.x', '"a"')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_rule('status', 'eql', 'fa.x', '"a"', persist => 'Sometimes')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_rule('status', 'eql', 'fa.x')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_rule('status', 'updated', 'fa.x', '"a"')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_rule('status', 'in', 'fa.x', '"a"')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_rule('status', 'not_in', 'fa.x', '[]')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_rule('amount', 'gt', 'fa.x', '[1, 2]')$q$);
-- 22023: topics are checked like celerysalt_publish's
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_rule('status', 'updated', '')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_rule('status', 'updated', 'order.*')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_check('{"field_name": "status", "operator": "updated", "topic": 7}')$q$);
-- 22023: version, name, payload shape and placeholders
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_rule('status', 'updated', 'fa.x', version => repeat('v', 65))$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_rule('status', 'updated', 'fa.x', payload => '[1]')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_rule('status', 'updated', 'fa.x', payload => '{"a": {"$now": true}}')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_rule('status', 'updated', 'fa.x', payload => '{"$new": "id", "b": 1}')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_rule('status', 'updated', 'fa.x', payload => '{"a": {"$new": 1}}')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_rule('status', 'updated', 'fa.x', payload => '{"a": {"$pk": 1}}')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_rule('status', 'updated', 'fa.x', payload => '{"_tchu_meta": {}}')$q$);
-- 22023: hand-written rules: not an object, unknown member
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_check('[]')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_check('{"field_name": "status", "operator": "updated", "topic": "fa.x", "persit": "False"}')$q$);
-- 42703: unknown field (when the table is given), in the rule or in a placeholder
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_rule('stat', 'updated', 'fa.x', tbl => 'fa_orders')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_rule('status', 'updated', 'fa.x', payload => '{"a": {"$old": "nope"}}', tbl => 'fa_orders')$q$);
-- 42804: a value that can never match the column's JSON type
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_rule('qty', 'eql', 'fa.x', '"2"', tbl => 'fa_orders')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_rule('status', 'in', 'fa.x', '["a", 1]', tbl => 'fa_orders')$q$);
-- 42P10: $pk on a table without a primary key
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_rule('amount', 'updated', 'fa.x', payload => '{"k": {"$pk": true}}', tbl => 'fa_payments')$q$);
-- 54000: a constant payload over celerysalt.max_payload_size
SET celerysalt.max_payload_size = '1kB';
SELECT * FROM pg_temp.try($q$SELECT celerysalt_follow_action_rule('status', 'updated', 'fa.x', payload => jsonb_build_object('blob', repeat('x', 2000)))$q$);
RESET celerysalt.max_payload_size;

-- ------------------------------------------------- errors at attach
SELECT * FROM pg_temp.try($q$SELECT celerysalt_attach_follow_actions('fa_orders', 'status')$q$);       -- 42804
SELECT * FROM pg_temp.try($q$SELECT celerysalt_attach_follow_actions('fa_orders', 'nope')$q$);         -- 42703
CREATE VIEW fa_view AS SELECT * FROM fa_orders;
SELECT * FROM pg_temp.try($q$SELECT celerysalt_attach_follow_actions('fa_view')$q$);                   -- 42809
SELECT * FROM pg_temp.try($q$SELECT celerysalt_attach_follow_actions('fa_orders', NULL)$q$);           -- 22004
SELECT * FROM pg_temp.try($q$SELECT celerysalt_attach_follow_actions('fa_missing')$q$);                -- 42P01
-- 39P01: the trigger function used any other way than BEFORE UPDATE FOR EACH ROW
CREATE TRIGGER fa_wrong AFTER UPDATE ON fa_payments FOR EACH ROW
    EXECUTE FUNCTION _celerysalt_follow_actions_trigger('amount');
INSERT INTO fa_payments VALUES (2, 1);
SELECT * FROM pg_temp.try($q$UPDATE fa_payments SET amount = 2$q$);
DROP TRIGGER fa_wrong ON fa_payments;
-- 42804 at run time: the rules column changed type after the trigger was attached
CREATE TABLE fa_changed (id int PRIMARY KEY, r jsonb);
SELECT celerysalt_attach_follow_actions('fa_changed', 'r');
INSERT INTO fa_changed VALUES (1, '[]');
ALTER TABLE fa_changed ALTER COLUMN r TYPE text;
SELECT * FROM pg_temp.try($q$UPDATE fa_changed SET id = 2$q$);
-- 22023: bad settings
SELECT * FROM pg_temp.try($q$SET celerysalt.follow_action_errors = 'ignore'$q$);

-- ----------------------- errors at UPDATE time, celerysalt.follow_action_errors = error
SHOW celerysalt.follow_action_errors;
-- hand-written rules the helper would have refused
SELECT pg_temp.set_rules(1, '{"field_name": "status", "operator": "equals", "value": "paid", "topic": "fa.bad"}');
SELECT * FROM pg_temp.try($q$UPDATE fa_orders SET status = 'paid' WHERE id = 1$q$);             -- 22023
SELECT pg_temp.set_rules(1, '{"field_name": "gone", "operator": "updated", "topic": "fa.bad"}');
SELECT * FROM pg_temp.try($q$UPDATE fa_orders SET status = 'paid' WHERE id = 1$q$);             -- 42703
SELECT pg_temp.set_rules(1, '{"field_name": "status", "operator": "updated", "topic": "fa.bad", "persist": "Maybe"}');
SELECT * FROM pg_temp.try($q$UPDATE fa_orders SET status = 'paid' WHERE id = 1$q$);             -- 22023
SELECT pg_temp.set_rules(1, '{"field_name": "status", "operator": "in", "value": "paid", "topic": "fa.bad"}');
SELECT * FROM pg_temp.try($q$UPDATE fa_orders SET status = 'paid' WHERE id = 1$q$);             -- 22023
SELECT pg_temp.set_rules(1, '{"field_name": "status", "operator": "updated"}');
SELECT * FROM pg_temp.try($q$UPDATE fa_orders SET status = 'paid' WHERE id = 1$q$);             -- 22004
SELECT pg_temp.set_rules(1, '{"field_name": "status", "operator": "updated", "topic": "fa.#"}');
SELECT * FROM pg_temp.try($q$UPDATE fa_orders SET status = 'paid' WHERE id = 1$q$);             -- 22023
SELECT pg_temp.set_rules(1, '{"field_name": "status", "operator": "updated", "topic": "fa.bad", "payload": {"x": {"$new": "gone"}}}');
SELECT * FROM pg_temp.try($q$UPDATE fa_orders SET status = 'paid' WHERE id = 1$q$);             -- 42703
SELECT pg_temp.set_rules(1, '{"field_name": "status", "operator": "updated", "topic": "fa.bad", "payload": {"$new": "status"}}');
SELECT * FROM pg_temp.try($q$UPDATE fa_orders SET status = 'paid' WHERE id = 1$q$);             -- 22023
SELECT pg_temp.set_rules(1, '["not an object"]');
SELECT * FROM pg_temp.try($q$UPDATE fa_orders SET status = 'paid' WHERE id = 1$q$);             -- 22023
UPDATE fa_orders SET on_change_rules = '{"status": "eql"}' WHERE id = 1;
SELECT * FROM pg_temp.try($q$UPDATE fa_orders SET status = 'paid' WHERE id = 1$q$);             -- 22023
-- 54000: a payload over celerysalt.max_payload_size (the default payload holds only the rule's field)
SET celerysalt.max_payload_size = '1kB';
SELECT pg_temp.set_rules(1, pg_temp.r('note', 'updated', 'fa.big'));
BEGIN;
SELECT * FROM pg_temp.try($q$UPDATE fa_orders SET note = 'x', tags = jsonb_build_object('blob', repeat('y', 2000)) WHERE id = 1$q$);  -- fits
SELECT topic, payload FROM pg_temp.events();
DELETE FROM _celerysalt_outbox WHERE topic = 'fa.big';   -- keep the row's change, not the event
COMMIT;
SELECT pg_temp.set_rules(1, celerysalt_follow_action_rule('note', 'updated', 'fa.big', payload => '{"t": {"$new": "tags"}}'));
SELECT * FROM pg_temp.try($q$UPDATE fa_orders SET note = 'z' WHERE id = 1$q$);   -- 54000
RESET celerysalt.max_payload_size;
-- the statements that failed changed nothing
SELECT status, note FROM fa_orders WHERE id = 1;
\x off

-- ----------------- errors at UPDATE time, celerysalt.follow_action_errors = dead_letter
-- The UPDATE goes on, each failure is a WARNING and a row in celerysalt_follow_action_failures,
-- and the other rules still fire.  A persist False rule whose event failed is kept.
SET celerysalt.follow_action_errors = dead_letter;
SET celerysalt.max_payload_size = '1kB';
DELETE FROM celerysalt_follow_action_failures;
SELECT pg_temp.set_rules(1,
    '{"field_name": "status", "operator": "equals", "value": "paid", "topic": "fa.bad"}',
    '{"field_name": "gone", "operator": "updated", "topic": "fa.bad"}',
    '{"field_name": "status", "operator": "updated", "topic": "fa.#", "persist": "False"}',
    celerysalt_follow_action_rule('status', 'updated', 'fa.big', payload => '{"t": {"$new": "tags"}}', persist => 'False'),
    pg_temp.r('status', 'eql', 'fa.good', '"paid"', 'False'));
BEGIN;
UPDATE fa_orders SET status = 'paid', tags = jsonb_build_object('blob', repeat('y', 2000)) WHERE id = 1;
SELECT topic, payload->'new' AS new FROM pg_temp.events();
SELECT jsonb_path_query_array(on_change_rules, '$[*].topic') AS rules FROM fa_orders WHERE id = 1;
SELECT table_name, row_key, rule_index, rule->>'topic' AS rule_topic, topic, payload IS NOT NULL AS has_payload,
       sqlstate, reason
  FROM celerysalt_follow_action_failures ORDER BY id;
ROLLBACK;
-- a rules column that is not an array of rules
UPDATE fa_orders SET on_change_rules = '"eql"' WHERE id = 1;
UPDATE fa_orders SET status = 'open' WHERE id = 1;
SELECT table_name, row_key, rule_index, rule, sqlstate, reason
  FROM celerysalt_follow_action_failures WHERE rule_index IS NULL;
-- a table without a primary key is identified by ctid
ALTER TABLE fa_payments ADD COLUMN rules jsonb;
SELECT celerysalt_attach_follow_actions('fa_payments', 'rules');
UPDATE fa_payments SET rules = '[{"field_name": "amount", "operator": "gt", "value": 0, "topic": "fa.x", "payload": {"k": {"$pk": true}}}]';
UPDATE fa_payments SET amount = 5;
SELECT table_name, row_key ? 'ctid' AS by_ctid, sqlstate, reason
  FROM celerysalt_follow_action_failures WHERE table_name = 'public.fa_payments';
RESET celerysalt.max_payload_size;
RESET celerysalt.follow_action_errors;
DELETE FROM celerysalt_follow_action_failures;

-- ------------------------------------------------ TchuFollowActions' shapes
-- Its add_follow_action_rule() always stores "value" (null for updated and
-- deleted) and may store event_authorization; lists of one element and
-- string persist values.  Read with the original meaning; the check says
-- what it ignores.
SELECT celerysalt_follow_action_check(
  '{"field_name": "status", "operator": "updated", "value": null, "topic": "fa.tchu.updated",
    "event_authorization": {"user": 1}, "persist": "True"}', 'fa_orders') IS NOT NULL AS accepted;
SELECT celerysalt_follow_action_check(
  '{"field_name": "note", "operator": "deleted", "value": null, "topic": "fa.tchu.deleted", "persist": "False"}',
  'fa_orders') IS NOT NULL AS accepted;
SELECT celerysalt_follow_action_check(
  '{"field_name": "qty", "operator": "gt", "value": [5], "topic": "fa.tchu.gt"}', 'fa_orders') IS NOT NULL AS accepted;
-- a value that is not null is still refused for an operator without one
SELECT state, message, detail FROM pg_temp.try($q$SELECT celerysalt_follow_action_check(
  '{"field_name": "status", "operator": "updated", "value": "x", "topic": "fa.tchu.bad"}')$q$);
-- a member the original library does not store either is still refused
SELECT state, message FROM pg_temp.try($q$SELECT celerysalt_follow_action_check(
  '{"field_name": "status", "operator": "updated", "topic": "fa.tchu.bad", "persit": "False"}')$q$);
-- and the trigger fires them as the original did
SELECT pg_temp.set_rules(1,
  '{"field_name": "status", "operator": "updated", "value": null, "topic": "fa.tchu.updated",
    "event_authorization": {"user": 1}, "persist": "True"}',
  '{"field_name": "note", "operator": "deleted", "value": null, "topic": "fa.tchu.deleted", "persist": "False"}',
  '{"field_name": "qty", "operator": "gt", "value": [5], "topic": "fa.tchu.gt", "persist": "ForceFalse"}',
  '{"field_name": "qty", "operator": "eql", "value": [7], "topic": "fa.tchu.eql"}');
BEGIN;
UPDATE fa_orders SET status = 'tchu', note = NULL, qty = 7 WHERE id = 1;
SELECT topic, payload->>'field' AS field, payload->'new' AS new FROM pg_temp.events();
SELECT r->>'topic' AS kept FROM fa_orders, jsonb_array_elements(on_change_rules) r WHERE id = 1;
ROLLBACK;
UPDATE fa_orders SET on_change_rules = '[]' WHERE id = 1;

-- ------------------------------------------------------------- detach
SELECT pg_temp.set_rules(1, pg_temp.r('status', 'updated', 'fa.detached'));
SELECT celerysalt_detach_follow_actions('fa_orders');
SELECT celerysalt_detach_follow_actions('fa_orders');   -- idempotent
BEGIN;
UPDATE fa_orders SET status = 'after-detach' WHERE id = 1;
SELECT count(*) AS fired FROM pg_temp.events();
ROLLBACK;
SELECT count(*) AS attached FROM celerysalt_follow_action_tables WHERE table_name = 'fa_orders'::regclass;

DROP VIEW fa_view;
DROP TABLE fa_orders, fa_lines, fa_payments, fa_changed;
