-- Tracing: the W3C trace context of a transaction (celerysalt.traceparent,
-- celerysalt.tracestate) is checked when set, kept with each event it
-- publishes (publish, follow actions, replay) and logged with the delivered
-- event.  The message headers are tested against a real Celery worker with
-- OpenTelemetry in test/integration/test_tracing.py.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS celerysalt;
RESET client_min_messages;

\i sql/include/try.sql

-- Unset by default: events carry no trace context.
SHOW celerysalt.traceparent;
SHOW celerysalt.tracestate;
BEGIN;
SELECT celerysalt_publish('regress.trace.none', '{}') IS NOT NULL AS published;
SELECT traceparent IS NULL AS no_traceparent, tracestate IS NULL AS no_tracestate
  FROM _celerysalt_outbox WHERE topic = 'regress.trace.none';
ROLLBACK;

-- A traceparent must be what OpenTelemetry's propagator accepts: 22023 at
-- SET, with the reason, never the value.
SELECT v AS value, pg_temp.try_text(format('SET celerysalt.traceparent = %L', v)) AS result
  FROM (VALUES
    ('garbage'),
    ('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra'),
    ('00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01'),
    ('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'),
    ('ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'),
    ('0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'),
    ('00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01'),
    ('00-00000000000000000000000000000000-00f067aa0ba902b7-01'),
    ('00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01'),
    ('00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01'),
    ('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01'),
    ('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0G'),
    (' 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1')
  ) t(v);
-- set_config refuses it too; a refused value leaves the setting as it was
SELECT state, message FROM pg_temp.try($q$SELECT set_config('celerysalt.traceparent', 'x', true)$q$);
SHOW celerysalt.traceparent;

-- tracestate: comma-separated key=value members, as W3C Trace Context defines them.
SELECT left(v, 40) AS value, pg_temp.try_text(format('SET celerysalt.tracestate = %L', v)) AS result
  FROM (VALUES
    ('rojo=00f067aa0ba902b7,congo=t61rcWkgMzE'),
    ('  rojo=00f067aa0ba902b7 ,, congo=t61rcWkgMzE  '),
    ('tenant1@vendor=opaque value'),
    ('a*b/c_d-e=1'),
    ('Rojo=1'),
    ('1a=1'),
    ('rojo'),
    ('rojo='),
    ('rojo=a=b'),
    ('rojo=1,rojo=2'),
    ('@vendor=1'),
    ('t@Vendor=1'),
    ('t@vendorvendor123=1'),
    (E'rojo=caf\u00e9'),
    ('rojo=' || repeat('x', 257)),
    ((SELECT string_agg('k' || i || '=v', ',') FROM generate_series(1, 32) i)),
    ((SELECT string_agg('k' || i || '=v', ',') FROM generate_series(1, 33) i)),
    ((SELECT string_agg('k' || i || '=' || repeat('v', 256), ',') FROM generate_series(1, 32) i))
  ) t(v);
RESET celerysalt.tracestate;

-- SET LOCAL (or set_config(..., true)) for the transaction: every event it
-- publishes carries the trace context, and it is gone after the transaction.
BEGIN;
SET LOCAL celerysalt.traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
SELECT set_config('celerysalt.tracestate', 'rojo=00f067aa0ba902b7', true) <> '' AS tracestate_set;
SELECT count(celerysalt_publish('regress.trace.local', jsonb_build_object('i', i))) AS published
  FROM generate_series(1, 2) i;
SELECT payload, traceparent, tracestate FROM _celerysalt_outbox
 WHERE topic = 'regress.trace.local' ORDER BY event_id;
ROLLBACK;
SHOW celerysalt.traceparent;

-- A tracestate alone is not sent: it belongs to a traceparent.
BEGIN;
SET LOCAL celerysalt.tracestate = 'rojo=1';
SELECT celerysalt_publish('regress.trace.state_only', '{}') IS NOT NULL AS published;
SELECT traceparent, tracestate FROM _celerysalt_outbox WHERE topic = 'regress.trace.state_only';
ROLLBACK;

-- An application role holding only celerysalt_publisher sets it and publishes;
-- its follow actions carry it too.
CREATE ROLE regress_trace_app IN ROLE celerysalt_publisher;
GRANT CREATE ON SCHEMA public TO regress_trace_app;
SET ROLE regress_trace_app;
CREATE TABLE trace_orders (id int PRIMARY KEY, status text NOT NULL,
                           on_change_rules jsonb NOT NULL DEFAULT '[]');
SELECT celerysalt_attach_follow_actions('trace_orders');
INSERT INTO trace_orders VALUES (1, 'new', jsonb_build_array(
    celerysalt_follow_action_rule('status', 'changed_to', 'regress.trace.paid', '"paid"',
                                  payload => '{"order_id": {"$pk": true}}', tbl => 'trace_orders')));
BEGIN;
SET LOCAL celerysalt.traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
SELECT celerysalt_publish('regress.trace.app', '{"n": 1}') IS NOT NULL AS published;
UPDATE trace_orders SET status = 'paid' WHERE id = 1;
SELECT pg_temp.try_text($q$SELECT count(*) FROM _celerysalt_outbox$q$) AS outbox_is_private;
COMMIT;
RESET ROLE;

-- The worker delivers them and logs the trace context with each event.
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
SELECT pg_temp.wait_delivered('regress.trace.app', 1) AS app_delivered,
       pg_temp.wait_delivered('regress.trace.paid', 1) AS follow_delivered;
SELECT topic, payload, traceparent, tracestate FROM celerysalt_events
 WHERE topic IN ('regress.trace.app', 'regress.trace.paid') ORDER BY event_id;
-- readers see it without the payload
SET ROLE celerysalt_reader;
SELECT topic, traceparent FROM celerysalt_catalog_events
 WHERE topic LIKE 'regress.trace.%' ORDER BY published_at, topic;
RESET ROLE;

-- A replay is a new event in the caller's trace: to continue the original
-- trace, set its traceparent first.
BEGIN;
SELECT set_config('celerysalt.traceparent', traceparent, true) IS NOT NULL AS continued
  FROM celerysalt_events WHERE topic = 'regress.trace.app';
SELECT celerysalt_replay(id) IS NOT NULL AS replayed FROM celerysalt_events WHERE topic = 'regress.trace.app';
SELECT traceparent FROM _celerysalt_outbox WHERE topic = 'regress.trace.app';
ROLLBACK;

-- A row moved into the outbox by hand with a malformed trace context is
-- never sent: the worker dead-letters it with the reason.
BEGIN;
INSERT INTO _celerysalt_outbox (slot, event_id, id, topic, payload, enqueued_at, traceparent)
VALUES (0, nextval('_celerysalt_event_seq'), '22222222-2222-4222-8222-222222222222', 'regress.trace.hand',
        '{}', now(), '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7');
INSERT INTO _celerysalt_outbox (slot, event_id, id, topic, payload, enqueued_at, traceparent, tracestate)
VALUES (0, nextval('_celerysalt_event_seq'), '33333333-3333-4333-8333-333333333333', 'regress.trace.hand',
        '{}', now(), '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 'Bad=1');
SELECT celerysalt_wake();
COMMIT;
DO $$
BEGIN
    FOR i IN 1..400 LOOP
        EXIT WHEN (SELECT count(*) FROM celerysalt_dead_letters WHERE topic = 'regress.trace.hand') = 2;
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;
SELECT id, reason, traceparent, tracestate FROM celerysalt_dead_letters
 WHERE topic = 'regress.trace.hand' ORDER BY id;
DELETE FROM celerysalt_dead_letters WHERE topic = 'regress.trace.hand';

DROP TABLE trace_orders;
REVOKE CREATE ON SCHEMA public FROM regress_trace_app;
DROP ROLE regress_trace_app;
