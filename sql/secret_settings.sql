-- URL settings that may carry a password (issue 12, item 7): shown masked,
-- refused where other roles could read them.  The TAP tests
-- test/t/030_secret_show.pl, 031_secret_db_role.pl and 032_secret_log.pl
-- cover the worker, pg_db_role_setting and the server log.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS celerysalt;
RESET client_min_messages;

\i sql/include/try.sql

-- test/regress.conf sets broker_url with the password "guest": a member of
-- pg_monitor (pg_read_all_settings) sees "***" in its place.
CREATE ROLE regress_secret_monitor;
GRANT pg_monitor TO regress_secret_monitor;
SET ROLE regress_secret_monitor;
SHOW celerysalt.broker_url;
SELECT name, setting, reset_val, boot_val FROM pg_settings
 WHERE name IN ('celerysalt.broker_url', 'celerysalt.redis_url') ORDER BY name;
RESET ROLE;

\x on
-- A password outside the configuration file: 42501, even for a superuser.
SELECT * FROM pg_temp.try($q$SET celerysalt.redis_url = 'redis://:secret@127.0.0.1:6379/0'$q$);
SELECT * FROM pg_temp.try($q$ALTER ROLE regress_secret_monitor SET celerysalt.redis_url = 'redis://u:secret@127.0.0.1:6379/0'$q$);
-- "***" stands for a hidden password and cannot be set.
SELECT * FROM pg_temp.try($q$SET celerysalt.redis_url = 'redis://:***@127.0.0.1:6379/0'$q$);
\x off
-- A URL that does not parse is not repeated.
ALTER SYSTEM SET celerysalt.broker_url = 'amqp:/guest:secret@host';

-- Without a password a URL is accepted and shown as it is.
SET celerysalt.redis_url = 'redis://127.0.0.1:6379/1';
SHOW celerysalt.redis_url;
RESET celerysalt.redis_url;

DROP ROLE regress_secret_monitor;
