-- celerysalt_publish: the SQL surface and every error it raises.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS celerysalt;
RESET client_min_messages;

\i sql/include/try.sql
\x on

\x off
-- A valid event returns a uuid and waits in the outbox until commit.
BEGIN;
SELECT celerysalt_publish('regress.user.created', '{"user_id": 42, "email": "ada@example.com"}') IS NOT NULL AS published;
SELECT topic, payload, version, correlation_id FROM _celerysalt_outbox WHERE topic = 'regress.user.created';
ROLLBACK;
-- Rolled back: gone.
SELECT count(*) AS after_rollback FROM _celerysalt_outbox WHERE topic = 'regress.user.created';

-- version and correlation_id are stored as given.
BEGIN;
SELECT celerysalt_publish('regress.order.paid', '{"order": 7}', 'v2', 'req-7f3a') IS NOT NULL AS published;
SELECT topic, payload, version, correlation_id FROM _celerysalt_outbox WHERE topic = 'regress.order.paid';
ROLLBACK;

-- Ids are random v4 uuids, distinct per event.
BEGIN;
SELECT count(DISTINCT id) AS distinct_ids, bool_and(substr(id::text, 15, 1) = '4') AS v4
  FROM (SELECT celerysalt_publish('regress.many', jsonb_build_object('i', i)) AS id
          FROM generate_series(1, 50) i) s;
-- enqueue order follows call order
SELECT array_agg((payload->>'i')::int ORDER BY event_id) = array(SELECT generate_series(1, 50)) AS in_order
  FROM _celerysalt_outbox WHERE topic = 'regress.many';
ROLLBACK;

\x on
-- Topic errors (22023 invalid_parameter_value, 22004 null_value_not_allowed).
SELECT * FROM pg_temp.try($q$SELECT celerysalt_publish('', '{}')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_publish(repeat('a', 256), '{}')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_publish('user.*', '{}')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_publish('audit.#', '{}')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_publish('user created', '{}')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_publish(E'user\tcreated', '{}')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_publish(NULL, '{}')$q$);
-- 255 bytes is the limit and is accepted.
BEGIN;
SELECT celerysalt_publish(repeat('a', 255), '{}') IS NOT NULL AS max_topic_ok;
ROLLBACK;

-- Payload errors.
SELECT * FROM pg_temp.try($q$SELECT celerysalt_publish('regress.x', '[1, 2]')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_publish('regress.x', '"text"')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_publish('regress.x', '42')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_publish('regress.x', 'null')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_publish('regress.x', NULL)$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_publish('regress.x', '{"_tchu_meta": {"is_rpc": true}}')$q$);
-- a nested _tchu_meta is an ordinary member
BEGIN;
SELECT celerysalt_publish('regress.x', '{"inner": {"_tchu_meta": 1}}') IS NOT NULL AS nested_meta_ok;
ROLLBACK;

-- Size limit (54000 program_limit_exceeded), configurable per session by a superuser.
SET celerysalt.max_payload_size = '1kB';
SELECT * FROM pg_temp.try($q$SELECT celerysalt_publish('regress.big', jsonb_build_object('blob', repeat('x', 2000)))$q$);
RESET celerysalt.max_payload_size;
BEGIN;
SELECT celerysalt_publish('regress.big', jsonb_build_object('blob', repeat('x', 2000))) IS NOT NULL AS big_ok;
ROLLBACK;

-- version / correlation_id checks.
SELECT * FROM pg_temp.try($q$SELECT celerysalt_publish('regress.x', '{}', '')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_publish('regress.x', '{}', repeat('v', 65))$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_publish('regress.x', '{}', 'v1', repeat('c', 256))$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_publish('regress.x', '{}', E'v1\n')$q$);

-- Nothing failed above reached the outbox.
SELECT count(*) AS stray FROM _celerysalt_outbox WHERE topic LIKE 'regress.%';

\x off
-- Settings are validated.
SET celerysalt.dispatcher_tasks = '';
SET celerysalt.exchange = '';
SET celerysalt.nonexistent = 1;
SHOW celerysalt.exchange;
SHOW celerysalt.dispatcher_tasks;

-- The status view never shows a password.
SELECT broker FROM celerysalt_status;
SELECT count(*) AS status_rows FROM celerysalt_status;

-- The session caches its INSERT plan: dropping and re-creating the extension
-- in the same session must not leave it writing to the old outbox.
BEGIN;
SELECT celerysalt_publish('regress.before.drop', '{}') IS NOT NULL AS published;
ROLLBACK;
DROP EXTENSION celerysalt;
CREATE EXTENSION celerysalt;
BEGIN;
SELECT celerysalt_publish('regress.after.recreate', '{}') IS NOT NULL AS published;
SELECT topic FROM _celerysalt_outbox;
ROLLBACK;
