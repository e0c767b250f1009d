-- celerysalt_call's timeout argument (issue 12, item 13), tried as an
-- attacker would: a plain login role that holds only celerysalt_publisher
-- and may create in public.  The timeout is computed without overflow:
-- '120985590 months' used to wrap around to 27 s and run; every value
-- outside 1 ms .. 1 day is 22023 at once.  statement_timeout catches a
-- timeout that is accepted by mistake.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS celerysalt;
RESET client_min_messages;
SELECT current_user AS admin \gset
CREATE ROLE rpc_limits_caller LOGIN;
GRANT celerysalt_publisher TO rpc_limits_caller;
-- granted by the install script after the privileges fix
GRANT EXECUTE ON FUNCTION celerysalt_call(text, jsonb, interval, text),
    celerysalt_call_envelope(text, jsonb, interval, text) TO celerysalt_publisher;
GRANT CREATE ON SCHEMA public TO rpc_limits_caller;

\c - rpc_limits_caller
SELECT current_user, rolsuper, rolcreaterole, rolcreatedb
FROM pg_roles WHERE rolname = current_user;

\i sql/include/try.sql

SET statement_timeout = '3s';
SELECT t AS timeout, r.*
FROM unnest(ARRAY[
    '120985590 months',                 -- wrapped around to 27 s
    '-120985590 months',
    '178956970 years',
    '2147483647 days',
    '-178956970 years 2147483647 days',
    '1 month',                          -- 30 days
    '1 day 1 ms',
    '24:00:00.001',
    '-1 s',
    '0 s',
    '0.999 ms',
    '1 mon -29 days 00:00:00.0005',      -- 1 day 0.5 ms
    '-1 day 24:00:00.0009',             -- 0.9 us
    '2562047788:00:54.775807',          -- largest time part
    '-2562047788:00:54.775807'
]) AS t,
LATERAL pg_temp.try(format('SELECT celerysalt_call(%L, %L, %L)', 'rpc.limits', '{}', t)) AS r;
-- the same checks in celerysalt_call_envelope
SELECT * FROM pg_temp.try($q$SELECT celerysalt_call_envelope('rpc.limits', '{}', '120985590 months')$q$);
RESET statement_timeout;

\c - :admin
DROP OWNED BY rpc_limits_caller;
DROP ROLE rpc_limits_caller;
