-- Delivery as seen from SQL: the worker confirms committed events into
-- celerysalt_events; replay and dead-letter retry put events back.
-- The temp instance's worker delivers to the machine's RabbitMQ.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS celerysalt;
RESET client_min_messages;

CREATE FUNCTION pg_temp.wait_delivered(t text, n int) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    c bigint;
BEGIN
    FOR i IN 1..400 LOOP
        SELECT count(*) INTO c FROM celerysalt_events WHERE topic = t;
        EXIT WHEN c >= n;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN c;
END
$$;

-- Three committed events are confirmed and logged with their metadata.
SELECT celerysalt_publish('regress.delivery.a', '{"n": 1}', 'v3', 'corr-1') AS a_id \gset
SELECT count(celerysalt_publish('regress.delivery.a', jsonb_build_object('n', i))) AS published FROM generate_series(2, 3) i;
SELECT pg_temp.wait_delivered('regress.delivery.a', 3) AS delivered;
SELECT topic, version, correlation_id, payload, size > 0 AS sized,
       delivered_at >= enqueued_at AS ordered_times
  FROM celerysalt_events WHERE topic = 'regress.delivery.a' ORDER BY event_id;
SELECT pending, broker_connected, last_error, worker_pid IS NOT NULL AS has_worker,
       delivered_total >= 3 AS counted
  FROM celerysalt_status;

-- Replay one event: a new event with the same content.
SELECT celerysalt_replay(:'a_id') <> :'a_id' AS new_id;
SELECT pg_temp.wait_delivered('regress.delivery.a', 4) AS delivered;
SELECT count(*) AS copies FROM celerysalt_events
 WHERE topic = 'regress.delivery.a' AND payload = '{"n": 1}' AND version = 'v3' AND correlation_id = 'corr-1';

-- Replay by time range and topic.
SELECT celerysalt_replay_since(now() - interval '1 hour', NULL, 'regress.delivery.a') AS replayed;
SELECT pg_temp.wait_delivered('regress.delivery.a', 8) AS delivered;
SELECT celerysalt_replay_since(now() - interval '1 hour', NULL, 'regress.no.such.topic') AS replayed_none;

-- Unknown ids: P0002.
\set VERBOSITY terse
SELECT celerysalt_replay('00000000-0000-4000-8000-000000000000'::uuid);
\echo :LAST_ERROR_SQLSTATE
SELECT celerysalt_dead_letter_retry('00000000-0000-4000-8000-000000000000'::uuid);
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default

-- A dead letter can be retried: it becomes a new event and is delivered.
INSERT INTO celerysalt_dead_letters (id, event_id, topic, version, payload, enqueued_at, failed_at, reason)
VALUES ('11111111-1111-4111-8111-111111111111', -1, 'regress.delivery.dead', 'v1', '{"k": "v"}',
        now(), now(), 'PRECONDITION_FAILED - message size 200000 is larger than configured max size 100000');
SELECT celerysalt_dead_letter_retry('11111111-1111-4111-8111-111111111111') IS NOT NULL AS retried;
SELECT count(*) AS left_in_dead_letters FROM celerysalt_dead_letters;
SELECT pg_temp.wait_delivered('regress.delivery.dead', 1) AS delivered;

-- A row moved into the outbox by hand that can never be sent is
-- dead-lettered with the reason, which may quote it: a % in it is text.
INSERT INTO _celerysalt_outbox (slot, event_id, id, topic, payload, enqueued_at)
VALUES (0, nextval('_celerysalt_event_seq'), '44444444-4444-4444-8444-444444444444',
        'regress.delivery.100%n%s.#', '{}', now());
SELECT celerysalt_wake();
DO $$
BEGIN
    FOR i IN 1..400 LOOP
        EXIT WHEN EXISTS (SELECT FROM celerysalt_dead_letters WHERE id = '44444444-4444-4444-8444-444444444444');
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;
SELECT topic, reason FROM celerysalt_dead_letters WHERE id = '44444444-4444-4444-8444-444444444444';
DELETE FROM celerysalt_dead_letters WHERE id = '44444444-4444-4444-8444-444444444444';

-- The log keeps that event until its partition is truncated, but readers
-- see delivered events only: a function of theirs in the WHERE clause of
-- celerysalt_events (a security barrier) is not shown the other rows.
CREATE ROLE regress_delivery_reader;
GRANT celerysalt_reader TO regress_delivery_reader;
SET ROLE regress_delivery_reader;
CREATE FUNCTION pg_temp.peek(t text) RETURNS boolean
LANGUAGE plpgsql COST 0.0000001 AS $$
BEGIN
    IF t LIKE 'regress.delivery.100%' THEN
        RAISE NOTICE 'saw %', t;
    END IF;
    RETURN true;
END
$$;
SELECT count(*) > 0 AS some_delivered FROM celerysalt_events WHERE pg_temp.peek(topic);
SELECT count(*) > 0 AS some_delivered FROM celerysalt_catalog_events WHERE pg_temp.peek(topic);
DROP FUNCTION pg_temp.peek(text);
RESET ROLE;
DROP ROLE regress_delivery_reader;

-- Nothing left behind.
SELECT pending FROM celerysalt_status;

-- The worker keeps a window of publish_window batches of batch_size events
-- between read and finish: defaults, ranges, and reload-only.
SELECT name, setting, min_val, max_val, context FROM pg_settings
 WHERE name IN ('celerysalt.batch_size', 'celerysalt.publish_window') ORDER BY name;
\set VERBOSITY terse
SET celerysalt.publish_window = 2;
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
