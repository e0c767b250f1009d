-- celerysalt_call: input checks and the outcomes that need no Celery worker
-- (the temp instance talks to the machine's RabbitMQ and Redis).  Outcomes
-- involving real handlers are proven in test/integration/test_rpc.py.
-- Calls are made by a plain login role holding only celerysalt_publisher;
-- the superuser-only settings are checked as the superuser at the end.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS celerysalt;
RESET client_min_messages;
SELECT current_user AS admin \gset
CREATE ROLE rpc_caller LOGIN;
GRANT celerysalt_publisher TO rpc_caller;
-- granted by the install script after the privileges fix
GRANT EXECUTE ON FUNCTION celerysalt_call(text, jsonb, interval, text),
    celerysalt_call_envelope(text, jsonb, interval, text) TO celerysalt_publisher;
GRANT CREATE ON SCHEMA public TO rpc_caller;

\set try_schema public
\i sql/include/try.sql

\c - rpc_caller
SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user;
\x on

-- Bad input.
SELECT * FROM try($q$SELECT celerysalt_call(NULL, '{}')$q$);
SELECT * FROM try($q$SELECT celerysalt_call('rpc.x', NULL)$q$);
SELECT * FROM try($q$SELECT celerysalt_call('rpc.x', '{}', NULL)$q$);
SELECT * FROM try($q$SELECT celerysalt_call('rpc.*', '{}')$q$);
SELECT * FROM try($q$SELECT celerysalt_call('rpc.x', '[1]')$q$);
SELECT * FROM try($q$SELECT celerysalt_call('rpc.x', '{"_tchu_meta": 1}')$q$);
SELECT * FROM try($q$SELECT celerysalt_call('rpc.x', '{}', '0 s')$q$);
SELECT * FROM try($q$SELECT celerysalt_call('rpc.x', '{}', '2 days')$q$);

-- Nobody is bound to this topic: the mandatory request comes back (CR004), fast.
SELECT * FROM try($q$SELECT celerysalt_call('celerysalt.regress.nobody.home', '{"a": 1}', '10 s')$q$);
SELECT (celerysalt_call_envelope('celerysalt.regress.nobody.home', '{"a": 1}', '10 s') - 'task_id') AS envelope;

-- Redis unreachable (the superuser points the role at a closed port): class
-- 08, and the request is not sent.
\x off
\c - :admin
ALTER ROLE rpc_caller SET celerysalt.redis_url = 'redis://127.0.0.1:1/0';
\c - rpc_caller
\x on
SELECT state, message, hint FROM try($q$SELECT celerysalt_call('rpc.x', '{}')$q$);
\x off
\c - :admin
\x on

-- Settings are checked.  A URL that does not parse is not repeated in the
-- message (it may hold a password), not even to an error caught in PL/pgSQL.
SELECT state, message, detail FROM try($q$SET celerysalt.redis_url = 'http://user:secret@host'$q$);
SELECT state, message, detail FROM try($q$SET celerysalt.redis_url = 'redis://:secret@host:99999/0'$q$);
SELECT state, message, detail FROM try($q$SET celerysalt.rpc_task = 'a, b'$q$);

-- Redis URLs parse as redis-py parses them (issue 12, item 7d): user
-- information up to the LAST '@', percent-decoding, db from the path or
-- ?db=.  The details never repeat any part of the URL.
SELECT state, detail FROM try($q$SET celerysalt.redis_url = 'redis://secret@host/0'$q$);
SELECT state, detail FROM try($q$SET celerysalt.redis_url = 'redis://:se/cret@host/0'$q$);
SELECT state, detail FROM try($q$SET celerysalt.redis_url = 'redis://host/0?password=secret'$q$);
SELECT state, detail FROM try($q$SET celerysalt.redis_url = 'redis://host/0?db=x'$q$);
SELECT state, detail FROM try($q$SET celerysalt.redis_url = 'redis://host/x'$q$);
SELECT state, detail FROM try($q$SET celerysalt.redis_url = 'redis://:a%00b@host/0'$q$);
SELECT state, detail FROM try($q$SET celerysalt.redis_url = 'redis://[::1/0'$q$);
-- URLs with a password parse ('@' and ':' unencoded or encoded, encoded '/',
-- a user name) but a session SET refuses them with 42501: passwords belong in
-- postgresql.conf or celerysalt.redis_password_file (docs/configuration.md);
-- test_rpc_hardening.py uses such a URL from postgresql.conf.  Accepted: IPv6,
-- ?db= beside other redis-py options, an empty path.
SELECT state FROM try($q$SET celerysalt.redis_url = 'redis://:p@ss:w@host:6390/3'$q$);
SELECT state FROM try($q$SET celerysalt.redis_url = 'redis://us%3Aer:p%40ss%3Aw%2Frd%3F%23@127.0.0.1:6390/3'$q$);
SELECT state FROM try($q$SET celerysalt.redis_url = 'redis://[::1]:6390?db=4&socket_timeout=5'$q$);
SELECT state FROM try($q$SET celerysalt.redis_url = 'redis://host:6390/'$q$);
RESET celerysalt.redis_url;
\x off

DROP FUNCTION public.try(text), public.try_text(text);
DROP OWNED BY rpc_caller;
DROP ROLE rpc_caller;
