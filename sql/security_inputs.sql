-- Security issue, items 6, 11 and 12, tried as a plain application role that
-- holds only celerysalt_publisher and may create in public:
-- invisible characters in names, deeply nested payloads, and follow-action
-- rules that read columns the updating role may not SELECT.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS celerysalt;
RESET client_min_messages;

\i sql/include/try.sql

CREATE ROLE regress_sec_app IN ROLE celerysalt_publisher;
GRANT CREATE ON SCHEMA public TO regress_sec_app;
SET ROLE regress_sec_app;
SELECT rolsuper FROM pg_roles WHERE rolname = current_user;

-- Item 12: one definition of a name, for topics, versions and RPC.
CREATE TEMP TABLE names (n int, what text);
INSERT INTO names VALUES
 (1, 'user' || chr(160) || 'created'),   -- U+00A0 no-break space
 (2, 'user' || chr(8203) || 'created'),  -- U+200B zero width space
 (3, 'user' || chr(8238) || 'created'),  -- U+202E right-to-left override
 (4, chr(65279) || 'user.created'),      -- U+FEFF byte order mark
 (5, 'user' || chr(8232) || 'created'),  -- U+2028 line separator
 (6, 'user' || chr(133) || 'created'),   -- U+0085 next line
 (7, 'user.' || chr(65283)),             -- U+FF03 full-width #
 (8, 'user.created');                    -- fine
SELECT n, t.state, t.message, t.detail
  FROM names, pg_temp.try(format('SELECT celerysalt_publish(%L, %L)', what, '{}')) t ORDER BY n;
SELECT n, t.state, t.detail
  FROM names, pg_temp.try(format('SELECT celerysalt_publish(%L, %L, version => %L)', 'user.created', '{}', what)) t
 WHERE n < 8 ORDER BY n;
SELECT n, t.state, t.detail
  FROM names, pg_temp.try(format('SELECT celerysalt_call(%L, %L)', what, '{}')) t WHERE n < 8 ORDER BY n;
-- celerysalt_call checks its version too, before any connection
SELECT * FROM pg_temp.try($$SELECT celerysalt_call('user.created', '{}', version => 'v 1')$$);
SELECT * FROM pg_temp.try(format('SELECT celerysalt_follow_action_rule(%L, %L, %L)', 'status', 'updated', 'user' || chr(8203) || 'created'));

-- A role that may create in public cannot make publishing ambiguous with an
-- overload of the extension's version-order function (42725 before).
CREATE FUNCTION public._celerysalt_version_key(version text, dummy integer DEFAULT 0)
RETURNS numeric[] LANGUAGE sql IMMUTABLE AS $$SELECT '{}'::numeric[]$$;
SELECT * FROM pg_temp.try(format('SELECT celerysalt_publish(%L, %L)', 'user.not.yet.looked.up', '{}'));
DROP FUNCTION public._celerysalt_version_key(text, integer);

-- Item 11: nesting is limited (default 64 levels) on publish and RPC.
SELECT current_setting('celerysalt.max_payload_depth') AS max_depth;
SELECT * FROM pg_temp.try(format('SELECT celerysalt_publish(%L, %L)', 'deep.event',
                          repeat('{"a": ', 64) || '1' || repeat('}', 64)));
SELECT * FROM pg_temp.try(format('SELECT celerysalt_publish(%L, %L)', 'deep.event',
                          repeat('{"a": [', 33) || '1' || repeat(']}', 33)));
SELECT * FROM pg_temp.try(format('SELECT celerysalt_publish(%L, %L)', 'deep.event',
                          repeat('{"a": ', 10000) || '1' || repeat('}', 10000)));
SELECT * FROM pg_temp.try(format('SELECT celerysalt_call(%L, %L)', 'deep.event',
                          repeat('{"a": ', 100) || '1' || repeat('}', 100)));
-- a publisher cannot raise it
SELECT * FROM pg_temp.try($$SET celerysalt.max_payload_depth = 900$$);

-- Item 6: a rule may read only columns its writer and its updater may SELECT.
RESET ROLE;
CREATE TABLE sec_accounts (id int PRIMARY KEY, status text, password_hash text,
                           on_change_rules jsonb NOT NULL DEFAULT '[]');
SELECT celerysalt_attach_follow_actions('sec_accounts');
INSERT INTO sec_accounts VALUES (1, 'new', 'secret-hash-1', '[]');
GRANT SELECT (id, status, on_change_rules), UPDATE (status, on_change_rules), INSERT ON sec_accounts TO regress_sec_app;
CREATE ROLE regress_sec_plain;   -- may write rules, but holds no celerysalt role
GRANT SELECT, UPDATE ON sec_accounts TO regress_sec_plain;
SET ROLE regress_sec_app;
-- the attacker's rule would show the hash in an event, or in the message of
-- a failed validation: refused when it is written (UPDATE or INSERT) ...
SELECT * FROM pg_temp.try($$UPDATE sec_accounts SET on_change_rules = jsonb_build_array(jsonb_build_object(
    'field_name', 'status', 'operator', 'updated', 'topic', 'sec.leak',
    'payload', jsonb_build_object('h', jsonb_build_object('$old', 'password_hash')))) WHERE id = 1$$);
SELECT * FROM pg_temp.try($$UPDATE sec_accounts SET on_change_rules = '[{"field_name": "password_hash", "operator": "updated", "topic": "sec.leak"}]' WHERE id = 1$$);
SELECT * FROM pg_temp.try($$INSERT INTO sec_accounts (id, status, on_change_rules) VALUES (2, 'new', '[{"field_name": "status", "operator": "updated", "topic": "sec.leak", "payload": {"h": {"$new": "password_hash"}}}]')$$);
-- a role that may not publish may not store rules either
SET ROLE regress_sec_plain;
SELECT * FROM pg_temp.try($$UPDATE sec_accounts SET on_change_rules = '[{"field_name": "status", "operator": "updated", "topic": "sec.any", "payload": {"cmd": "anything"}}]' WHERE id = 1$$);
-- ... and when the table's owner stored it, it does not fire for an updater
-- who may not read the column (42501 naming the rule; dead_letter records it)
RESET ROLE;
UPDATE sec_accounts SET on_change_rules = '[{"field_name": "status", "operator": "updated", "topic": "sec.leak", "payload": {"h": {"$old": "password_hash"}}}]' WHERE id = 1;
SET ROLE regress_sec_app;
SELECT * FROM pg_temp.try($$UPDATE sec_accounts SET status = 'x' WHERE id = 1$$);
SET celerysalt.follow_action_errors = dead_letter;
SELECT * FROM pg_temp.try($$UPDATE sec_accounts SET status = 'z' WHERE id = 1$$);
RESET celerysalt.follow_action_errors;
-- readable columns fire as before, and the role may store such rules
UPDATE sec_accounts SET on_change_rules = '[{"field_name": "status", "operator": "updated", "topic": "sec.ok", "payload": {"id": {"$pk": true}, "s": {"$new": "status"}}}]' WHERE id = 1;
SELECT * FROM pg_temp.try($$UPDATE sec_accounts SET status = 'w' WHERE id = 1$$);
RESET ROLE;
-- waiting or already delivered by the worker
SELECT topic, payload FROM (SELECT topic, payload, event_id FROM _celerysalt_outbox
                            UNION ALL SELECT topic, payload, event_id FROM celerysalt_events) e
 WHERE topic LIKE 'sec.%' ORDER BY event_id;
SELECT sqlstate, reason, payload FROM celerysalt_follow_action_failures ORDER BY id;
SELECT (SELECT count(*) FROM _celerysalt_outbox WHERE payload::text LIKE '%secret-hash%')
     + (SELECT count(*) FROM celerysalt_events WHERE payload::text LIKE '%secret-hash%')
     + (SELECT count(*) FROM celerysalt_follow_action_failures WHERE reason LIKE '%secret-hash%') AS leaked;

DROP TABLE sec_accounts;
DROP OWNED BY regress_sec_app;
DROP ROLE regress_sec_app;
DROP ROLE regress_sec_plain;
