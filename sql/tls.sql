-- TLS settings and URLs (issue 16, item 3): amqps:// and rediss://, the
-- celerysalt.broker_tls_* and redis_tls_* settings, redis-py's ssl_*
-- parameters in a rediss:// URL, and the configuration errors a call reports
-- before a byte goes to the server (08001).  Handshakes against real TLS
-- servers (verification failures, client certificates, deadlines) are
-- proven in test/integration/test_tls.py.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS celerysalt;
RESET client_min_messages;
SELECT current_user AS admin \gset
CREATE ROLE tls_caller LOGIN;
GRANT celerysalt_publisher TO tls_caller;
-- granted by the install script after the privileges fix
GRANT EXECUTE ON FUNCTION celerysalt_call(text, jsonb, interval, text) TO celerysalt_publisher;

\set try_schema public
\i sql/include/try.sql

-- The settings, their defaults and ranges.
SELECT name, setting, context, vartype, enumvals
  FROM pg_settings WHERE name ~ '^celerysalt\.(broker|redis)_tls_' ORDER BY name;
SELECT state, message FROM try($q$SET celerysalt.redis_tls_verify = 'strict'$q$);
SELECT state, message FROM try($q$SET celerysalt.broker_tls_verify = 'none'$q$);
SET celerysalt.redis_tls_verify = 'ca';
SHOW celerysalt.redis_tls_verify;
RESET celerysalt.redis_tls_verify;

-- amqps:// is a broker URL now (the check runs at ALTER SYSTEM; not reloaded).
ALTER SYSTEM SET celerysalt.broker_url = 'amqps://guest@127.0.0.1:5671/%2F';
ALTER SYSTEM SET celerysalt.broker_url = 'amqps://guest@127.0.0.1:notaport/%2F';
ALTER SYSTEM RESET celerysalt.broker_url;

-- rediss:// with redis-py's TLS parameters, as Celery's result_backend
-- takes them; the details never repeat the URL.
\x on
SELECT state FROM try($q$SET celerysalt.redis_url = 'rediss://host:6380/0'$q$);
SELECT state FROM try($q$SET celerysalt.redis_url = 'rediss://host:6380/0?ssl_cert_reqs=CERT_REQUIRED&ssl_ca_certs=%2Fetc%2Fca.pem&ssl_certfile=/c.pem&ssl_keyfile=/k.pem'$q$);
SELECT state FROM try($q$SET celerysalt.redis_url = 'rediss://host:6380/0?ssl_cert_reqs=none&ssl_check_hostname=false&db=2'$q$);
SELECT state, detail FROM try($q$SET celerysalt.redis_url = 'rediss://host:6380/0?ssl_cert_reqs=sometimes'$q$);
SELECT state, detail FROM try($q$SET celerysalt.redis_url = 'redis://host:6380/0?ssl_cert_reqs=required'$q$);
SELECT state, detail FROM try($q$SET celerysalt.redis_url = 'rediss://host:6380/0?ssl_password=secret'$q$);
SELECT state, detail FROM try($q$SET celerysalt.redis_url = 'rediss://host:6380/0?ssl_ciphers=secret'$q$);
SELECT state, detail FROM try($q$SET celerysalt.redis_url = 'rediss://host:6380/0?ssl_ca_certs='$q$);
SELECT state, detail FROM try($q$SET celerysalt.redis_url = 'https://host:6380/0'$q$);
-- a password in a rediss:// URL belongs where it does for redis://
SELECT state, detail FROM try($q$SET celerysalt.redis_url = 'rediss://:secret@host:6380/0'$q$);
RESET celerysalt.redis_url;

-- Only superusers set or see the TLS files (GUC_SUPERUSER_ONLY); the
-- verify modes are visible.
\c - tls_caller
SELECT state, message FROM try($q$SET celerysalt.redis_tls_ca_file = '/tmp/x.pem'$q$);
SELECT state, message FROM try($q$SHOW celerysalt.redis_tls_key_file$q$);
SELECT state, message FROM try($q$SHOW celerysalt.broker_tls_cert_file$q$);
SELECT state, message FROM try($q$SET celerysalt.redis_tls_verify = 'none'$q$);
SHOW celerysalt.broker_tls_verify;

-- A call whose TLS set-up fails stops before the handshake: 08001 naming
-- the file and the setting (rediss:// to the machine's plain Redis, which
-- accepts the TCP connection and never sees a TLS byte).  Set for the plain
-- role by the superuser, as a deployment would.
\c - :admin
ALTER ROLE tls_caller SET celerysalt.redis_url = 'rediss://127.0.0.1:6379/0';
ALTER ROLE tls_caller SET celerysalt.redis_tls_ca_file = '/nonexistent/celerysalt-ca.pem';
\c - tls_caller
SELECT state, message, detail, hint FROM try($q$SELECT celerysalt_call('rpc.tls.x', '{}', '5 s')$q$);
\c - :admin
ALTER ROLE tls_caller RESET celerysalt.redis_tls_ca_file;
ALTER ROLE tls_caller SET celerysalt.redis_tls_key_file = '/nonexistent/celerysalt.key';
\c - tls_caller
SELECT state, detail FROM try($q$SELECT celerysalt_call('rpc.tls.x', '{}', '5 s')$q$);
-- A client certificate goes only with a URL from the configuration file or a
-- superuser: not with one set per role.
\c - :admin
ALTER ROLE tls_caller SET celerysalt.redis_tls_cert_file = '/nonexistent/celerysalt.pem';
\c - tls_caller
SELECT state, detail FROM try($q$SELECT celerysalt_call('rpc.tls.x', '{}', '5 s')$q$);
\c - :admin
ALTER ROLE tls_caller RESET ALL;
ALTER ROLE tls_caller SET celerysalt.redis_url = 'rediss://127.0.0.1:6379/0?ssl_ca_certs=/etc/passwd';
\c - tls_caller
SELECT state, detail FROM try($q$SELECT celerysalt_call('rpc.tls.x', '{}', '5 s')$q$);
\x off
\c - :admin

DROP FUNCTION public.try(text), public.try_text(text);
DROP OWNED BY tls_caller;
DROP ROLE tls_caller;
