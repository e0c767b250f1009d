-- celerysalt install script, part 00: outbox, delivery log, dead letters, status.
\echo Use "CREATE EXTENSION celerysalt" to load this file. \quit

-- ------------------------------------------------------------------- log
-- Enqueue order.  CACHE 1 keeps ids in the order events were enqueued.
CREATE SEQUENCE _celerysalt_event_seq;

-- Every event, waiting or delivered: an append-only log (as PgQ's), in three
-- partitions ("slots") that the worker rotates.  Publishers append to the
-- slot it advertises; nothing is deleted or updated per event.  What was
-- delivered is told by one position (_celerysalt_log_position): the
-- transactions whose commits the worker had seen, by snapshot, plus a
-- cursor through the last batch.  A partition is truncated once no event in
-- it waits and celerysalt.delivered_retention has passed since.  txid is
-- the publishing transaction's id, which orders a transaction's events
-- together; _celerysalt_outbox (waiting) and celerysalt_events (delivered)
-- are views over the log.
CREATE TABLE _celerysalt_log (
    slot            smallint    NOT NULL,
    event_id        bigint      NOT NULL,
    id              uuid        NOT NULL,
    topic           text        NOT NULL,
    payload         jsonb       NOT NULL,
    version         text,
    correlation_id  text,
    enqueued_at     timestamptz NOT NULL,
    traceparent     text,
    tracestate      text,
    txid            xid8        NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    delivered_at    timestamptz
) PARTITION BY LIST (slot);
CREATE TABLE _celerysalt_log_0 PARTITION OF _celerysalt_log FOR VALUES IN (0);
CREATE TABLE _celerysalt_log_1 PARTITION OF _celerysalt_log FOR VALUES IN (1);
CREATE TABLE _celerysalt_log_2 PARTITION OF _celerysalt_log FOR VALUES IN (2);
CREATE INDEX _celerysalt_log_txid ON _celerysalt_log (txid, event_id);
COMMENT ON COLUMN _celerysalt_log.txid IS
    'The publishing transaction (pg_current_xact_id()): what the delivered position is kept by.';
COMMENT ON COLUMN _celerysalt_log.delivered_at IS
    'Set only for events delivered before release 0.2.0 (copied from the table celerysalt_events was then); otherwise the time is in _celerysalt_log_position.';

-- The delivered position, one row per finished batch (the newest counts):
-- an event is delivered if its transaction is visible in lo, or visible in
-- hi and (txid, event_id) <= (cursor_txid, cursor_event_id).  The first row
-- that says so gives its celerysalt_events.delivered_at (hi_xmax grows with
-- seq: the index finds it); rows no event needs go with the partitions.
CREATE TABLE _celerysalt_log_position (
    seq             bigint      PRIMARY KEY,
    lo              pg_snapshot NOT NULL,
    hi              pg_snapshot NOT NULL,
    hi_xmax         xid8        NOT NULL,
    cursor_txid     xid8        NOT NULL,
    cursor_event_id bigint      NOT NULL,
    finished_at     timestamptz NOT NULL
);
CREATE INDEX _celerysalt_log_position_hi_xmax ON _celerysalt_log_position (hi_xmax, seq);
CREATE INDEX _celerysalt_log_position_cursor ON _celerysalt_log_position (hi_xmax, cursor_txid, cursor_event_id);
-- nothing delivered yet
INSERT INTO _celerysalt_log_position (seq, lo, hi, hi_xmax, cursor_txid, cursor_event_id, finished_at)
VALUES (0, '1:1:', '1:1:', '1', '1', -9223372036854775808, '-infinity');

-- Logged events that were not delivered: returned by the broker (now in
-- celerysalt_unroutable) or dead-lettered.  celerysalt_events leaves them out.
CREATE TABLE _celerysalt_log_undelivered (
    txid            xid8        NOT NULL,
    event_id        bigint      NOT NULL,
    PRIMARY KEY (txid, event_id)
);

-- When each partition was first seen with no event waiting (and not the
-- one publishers append to): truncated celerysalt.delivered_retention later.
CREATE TABLE _celerysalt_log_slots (
    slot            smallint    PRIMARY KEY,
    drained_at      timestamptz
);
INSERT INTO _celerysalt_log_slots (slot) VALUES (0), (1), (2);

-- Events waiting for delivery: committed and not past the position.  Only
-- transactions lo did not see can have any: those from lo's xmax on, and
-- those lo saw running (a transaction held open for hours keeps lo's xmin
-- back, not its xmax); with the upper bound (no row this statement sees has
-- a later txid) the planner takes the log's index, not the retained log.
CREATE VIEW _celerysalt_outbox AS
SELECT l.slot, l.event_id, l.id, l.topic, l.payload, l.version, l.correlation_id, l.enqueued_at,
       l.traceparent, l.tracestate, l.txid
  FROM @extschema@._celerysalt_log l
 WHERE (l.txid OPERATOR(pg_catalog.>=) (SELECT pg_catalog.pg_snapshot_xmax(p.lo) FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1)
        OR l.txid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT pg_catalog.pg_snapshot_xip(p.lo)
                                                     FROM (SELECT p.lo FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1) p)))
   AND l.txid OPERATOR(pg_catalog.<=) GREATEST(pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot()),
                                               pg_catalog.pg_current_xact_id_if_assigned())
   AND NOT (pg_catalog.pg_visible_in_snapshot(l.txid, (SELECT p.lo FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1))
            OR (pg_catalog.pg_visible_in_snapshot(l.txid, (SELECT p.hi FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1))
                AND ROW(l.txid, l.event_id) OPERATOR(pg_catalog.<=)
                    (SELECT p.cursor_txid, p.cursor_event_id FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1)))
   AND NOT EXISTS (SELECT 1 FROM @extschema@._celerysalt_log_undelivered u
                    WHERE u.txid OPERATOR(pg_catalog.=) l.txid AND u.event_id OPERATOR(pg_catalog.=) l.event_id);
COMMENT ON VIEW _celerysalt_outbox IS
    'Events committed and not yet confirmed by the broker (the log past the delivered position).';
-- The same, over a 1% sample of the log's pages (celerysalt_metrics with many waiting).
CREATE VIEW _celerysalt_outbox_sample AS
SELECT l.slot, l.event_id, l.id, l.topic, l.payload, l.version, l.correlation_id, l.enqueued_at,
       l.traceparent, l.tracestate, l.txid
  FROM @extschema@._celerysalt_log l TABLESAMPLE SYSTEM (1)
 WHERE (l.txid OPERATOR(pg_catalog.>=) (SELECT pg_catalog.pg_snapshot_xmax(p.lo) FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1)
        OR l.txid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT pg_catalog.pg_snapshot_xip(p.lo)
                                                     FROM (SELECT p.lo FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1) p)))
   AND l.txid OPERATOR(pg_catalog.<=) GREATEST(pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot()),
                                               pg_catalog.pg_current_xact_id_if_assigned())
   AND NOT (pg_catalog.pg_visible_in_snapshot(l.txid, (SELECT p.lo FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1))
            OR (pg_catalog.pg_visible_in_snapshot(l.txid, (SELECT p.hi FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1))
                AND ROW(l.txid, l.event_id) OPERATOR(pg_catalog.<=)
                    (SELECT p.cursor_txid, p.cursor_event_id FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1)))
   AND NOT EXISTS (SELECT 1 FROM @extschema@._celerysalt_log_undelivered u
                    WHERE u.txid OPERATOR(pg_catalog.=) l.txid AND u.event_id OPERATOR(pg_catalog.=) l.event_id);

-- ----------------------------------------------------- delivered events
-- security_barrier: readers' own functions in WHERE must not see the log's
-- other rows (waiting events, returned or dead-lettered ones).
CREATE VIEW celerysalt_events WITH (security_barrier) AS
SELECT l.id, l.event_id, l.topic, l.version, l.correlation_id, l.payload, l.enqueued_at,
       COALESCE(l.delivered_at,
           -- the position of the event's own batch whose cursor passed it first
           -- (a read stays within one batch and every batch records its own
           -- position): two index probes, the batch told by the first hi that
           -- sees it; events from before 0.2.0 or adopted from a dump keep theirs
           (SELECT f.finished_at FROM @extschema@._celerysalt_log_position f
             WHERE f.hi_xmax OPERATOR(pg_catalog.=)
                   (SELECT b.hi_xmax FROM @extschema@._celerysalt_log_position b
                     WHERE b.hi_xmax OPERATOR(pg_catalog.>) l.txid
                       AND pg_catalog.pg_visible_in_snapshot(l.txid, b.hi)
                     ORDER BY b.hi_xmax, b.seq LIMIT 1)
               AND ROW(f.cursor_txid, f.cursor_event_id) OPERATOR(pg_catalog.>=) ROW(l.txid, l.event_id)
               AND pg_catalog.pg_visible_in_snapshot(l.txid, f.hi)
               AND NOT pg_catalog.pg_visible_in_snapshot(l.txid, f.lo)
             ORDER BY f.hi_xmax, f.cursor_txid, f.cursor_event_id LIMIT 1)) AS delivered_at,
       pg_catalog.pg_column_size(l.payload) AS size, l.traceparent, l.tracestate
  FROM @extschema@._celerysalt_log l
 WHERE (l.txid OPERATOR(pg_catalog.<) (SELECT pg_catalog.pg_snapshot_xmin(p.lo) FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1)
        OR pg_catalog.pg_visible_in_snapshot(l.txid, (SELECT p.lo FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1))
        OR (pg_catalog.pg_visible_in_snapshot(l.txid, (SELECT p.hi FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1))
            AND ROW(l.txid, l.event_id) OPERATOR(pg_catalog.<=)
                (SELECT p.cursor_txid, p.cursor_event_id FROM @extschema@._celerysalt_log_position p ORDER BY p.seq DESC LIMIT 1)))
   AND NOT EXISTS (SELECT 1 FROM @extschema@._celerysalt_log_undelivered u
                    WHERE u.txid OPERATOR(pg_catalog.=) l.txid AND u.event_id OPERATOR(pg_catalog.=) l.event_id);
COMMENT ON VIEW celerysalt_events IS
    'Events confirmed by the broker, kept for celerysalt.delivered_retention; replay them with celerysalt_replay.';
COMMENT ON COLUMN celerysalt_events.delivered_at IS
    'When the broker''s confirm of the event''s batch was recorded.';
COMMENT ON COLUMN celerysalt_events.traceparent IS
    'The W3C traceparent (celerysalt.traceparent) in effect when the event was published, sent in its message headers; NULL when none was set.';
COMMENT ON COLUMN celerysalt_events.tracestate IS
    'The W3C tracestate (celerysalt.tracestate) sent with traceparent; NULL when none was set.';

-- ------------------------------------------------------------ dead letters
CREATE TABLE celerysalt_dead_letters (
    id              uuid        PRIMARY KEY,
    event_id        bigint      NOT NULL,
    topic           text        NOT NULL,
    version         text,
    correlation_id  text,
    payload         jsonb       NOT NULL,
    enqueued_at     timestamptz NOT NULL,
    failed_at       timestamptz NOT NULL,
    reason          text        NOT NULL,
    traceparent     text,
    tracestate      text
);
COMMENT ON TABLE celerysalt_dead_letters IS
    'Events the broker refused for good, with the reason; requeue them with celerysalt_dead_letter_retry.';

-- ------------------------------------------------------ unroutable events
-- Events the broker confirmed but returned because no queue was bound for
-- their topic (they are published mandatory).  The worker moves them back
-- into the outbox when a subscriber registers and every
-- celerysalt.unroutable_retry_interval, and to celerysalt_dead_letters once
-- celerysalt.unroutable_retention has passed since they were enqueued.
CREATE TABLE celerysalt_unroutable (
    id              uuid        PRIMARY KEY,
    event_id        bigint      NOT NULL,
    topic           text        NOT NULL,
    version         text,
    correlation_id  text,
    payload         jsonb       NOT NULL,
    enqueued_at     timestamptz NOT NULL,
    returned_at     timestamptz NOT NULL,
    traceparent     text,
    tracestate      text
);
CREATE INDEX celerysalt_unroutable_topic ON celerysalt_unroutable (topic);
COMMENT ON TABLE celerysalt_unroutable IS
    'Events no queue received (returned by the broker): sent again when a subscriber registers and every celerysalt.unroutable_retry_interval, dead-lettered after celerysalt.unroutable_retention.';

CREATE VIEW celerysalt_unroutable_topics AS
SELECT topic, pg_catalog.count(*) AS events,
       pg_catalog.min(enqueued_at) AS oldest_enqueued_at,
       pg_catalog.max(returned_at) AS last_returned_at
  FROM @extschema@.celerysalt_unroutable
 GROUP BY topic;
COMMENT ON VIEW celerysalt_unroutable_topics IS
    'Per topic: events waiting for a queue to be bound.';

SELECT pg_catalog.pg_extension_config_dump('_celerysalt_log_0', '');
SELECT pg_catalog.pg_extension_config_dump('_celerysalt_log_1', '');
SELECT pg_catalog.pg_extension_config_dump('_celerysalt_log_2', '');
SELECT pg_catalog.pg_extension_config_dump('_celerysalt_log_position', 'WHERE seq > 0');
SELECT pg_catalog.pg_extension_config_dump('_celerysalt_log_undelivered', '');
SELECT pg_catalog.pg_extension_config_dump('_celerysalt_event_seq', '');
SELECT pg_catalog.pg_extension_config_dump('celerysalt_dead_letters', '');
SELECT pg_catalog.pg_extension_config_dump('celerysalt_unroutable', '');

-- ------------------------------------------------------------- publishing
CREATE FUNCTION celerysalt_publish(topic text, payload jsonb,
                                   version text DEFAULT NULL,
                                   correlation_id text DEFAULT NULL)
RETURNS uuid
AS 'MODULE_PATHNAME', 'celerysalt_publish'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION celerysalt_publish(text, jsonb, text, text) IS
    'Enqueues an event in the current transaction; it is delivered to RabbitMQ after commit. Returns the event id (the Celery task id).';

CREATE FUNCTION celerysalt_wake()
RETURNS void
AS 'MODULE_PATHNAME', 'celerysalt_wake'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION celerysalt_wake() IS
    'Wakes the delivery worker when the current transaction commits.';

CREATE FUNCTION _celerysalt_installed()
RETURNS void
AS 'MODULE_PATHNAME', '_celerysalt_installed'
LANGUAGE C VOLATILE;

-- ----------------------------------------------------------------- replay
CREATE FUNCTION celerysalt_replay(event uuid)
RETURNS uuid
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ev record;
BEGIN
    EXECUTE pg_catalog.format('SELECT topic, payload, version, correlation_id FROM %I.celerysalt_events WHERE id = $1',
                              (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
                                WHERE e.extname = 'celerysalt'))
       INTO ev USING event;
    IF ev IS NULL THEN
        RAISE EXCEPTION 'delivered event % not found', event
            USING ERRCODE = 'no_data_found',
                  HINT = 'Only events delivered within celerysalt.delivered_retention can be replayed.';
    END IF;
    RETURN @extschema@.celerysalt_publish(ev.topic, ev.payload, ev.version, ev.correlation_id);
END
$$;
COMMENT ON FUNCTION celerysalt_replay(uuid) IS
    'Publishes a delivered event again, as a new event; returns the new event id.';

CREATE FUNCTION celerysalt_replay_since(since timestamptz, until timestamptz DEFAULT NULL,
                                  topic text DEFAULT NULL)
RETURNS bigint
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.count(@extschema@.celerysalt_publish(e.topic, e.payload, e.version, e.correlation_id))
      FROM (SELECT * FROM @extschema@.celerysalt_events e
             WHERE e.delivered_at >= since
               AND (until IS NULL OR e.delivered_at < until)
               AND ($3 IS NULL OR e.topic = $3)
             ORDER BY e.event_id) e
$$;
COMMENT ON FUNCTION celerysalt_replay_since(timestamptz, timestamptz, text) IS
    'Publishes again, in their original order, the events delivered in [since, until), optionally of one topic; returns how many.';

CREATE FUNCTION celerysalt_dead_letter_retry(event uuid)
RETURNS uuid
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ev record;
BEGIN
    DELETE FROM @extschema@.celerysalt_dead_letters d WHERE d.id = event
    RETURNING d.topic, d.payload, d.version, d.correlation_id INTO ev;
    IF ev IS NULL THEN
        RAISE EXCEPTION 'dead letter % not found', event USING ERRCODE = 'no_data_found';
    END IF;
    RETURN @extschema@.celerysalt_publish(ev.topic, ev.payload, ev.version, ev.correlation_id);
END
$$;
COMMENT ON FUNCTION celerysalt_dead_letter_retry(uuid) IS
    'Moves a dead letter back to the outbox as a new event; returns the new event id.';

-- ----------------------------------------------------------------- status
CREATE FUNCTION _celerysalt_worker_state(
    OUT worker_pid integer, OUT broker_connected boolean, OUT broker text,
    OUT delivered_total bigint, OUT dead_lettered_total bigint,
    OUT last_delivery_at timestamptz, OUT last_error text,
    OUT last_error_at timestamptz, OUT worker_started_at timestamptz,
    OUT returned_total bigint, OUT broker_node text)
AS 'MODULE_PATHNAME', '_celerysalt_worker_state'
LANGUAGE C VOLATILE;

CREATE VIEW celerysalt_status AS
SELECT w.worker_pid,
       w.broker_connected,
       w.broker,
       o.pending,
       pg_catalog.now() - o.oldest_enqueued_at AS oldest_pending_age,
       w.delivered_total,
       w.last_delivery_at,
       (SELECT pg_catalog.count(*) FROM @extschema@.celerysalt_dead_letters) AS dead_letters,
       w.last_error,
       w.last_error_at,
       w.worker_started_at,
       (SELECT pg_catalog.count(*) FROM @extschema@.celerysalt_unroutable) AS unroutable,
       w.returned_total,
       w.broker_node
  FROM @extschema@._celerysalt_worker_state() w,
       LATERAL (SELECT pg_catalog.count(*) AS pending, pg_catalog.min(enqueued_at) AS oldest_enqueued_at
                  FROM @extschema@._celerysalt_outbox) o;
COMMENT ON VIEW celerysalt_status IS
    'Delivery state of this database: worker, broker connection, pending events, totals and the last error.';

CREATE FUNCTION _celerysalt_cluster_state(
    OUT database text, OUT served boolean, OUT worker_pid integer, OUT broker_connected boolean,
    OUT delivered_total bigint, OUT dead_lettered_total bigint, OUT returned_total bigint,
    OUT last_delivery_at timestamptz, OUT last_error text, OUT last_error_at timestamptz,
    OUT reason text, OUT broker_node text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', '_celerysalt_cluster_state'
LANGUAGE C VOLATILE;

CREATE VIEW celerysalt_cluster_status AS
SELECT * FROM @extschema@._celerysalt_cluster_state();
COMMENT ON VIEW celerysalt_cluster_status IS
    'Every database of the cluster: served by celerysalt.databases or not, its worker, counters, last error, and why it has no worker.';

CREATE FUNCTION celerysalt_broker_nodes(broker_url text,
    OUT node integer, OUT scheme text, OUT hostname text, OUT port integer,
    OUT virtual_host text, OUT userid text, OUT has_password boolean, OUT url text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'celerysalt_broker_nodes'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION celerysalt_broker_nodes(text) IS
    'How celerysalt reads a broker URL (as Celery and kombu do): one row per node of a ";" list, in the order they are tried, passwords never shown.';

CREATE FUNCTION celerysalt_metrics()
RETURNS text
AS 'MODULE_PATHNAME', 'celerysalt_metrics'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION celerysalt_metrics() IS
    'This database''s delivery, follow-action and RPC metrics in the Prometheus text format (docs/metrics.md).';

CREATE FUNCTION celerysalt_retry_unroutable()
RETURNS void
AS 'MODULE_PATHNAME', 'celerysalt_retry_unroutable'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION celerysalt_retry_unroutable() IS
    'Asks the worker to send the events of celerysalt_unroutable again now and a few times in the next minute (celerysalt_track_subscriber calls it).';

REVOKE ALL ON FUNCTION _celerysalt_worker_state() FROM PUBLIC;
REVOKE ALL ON FUNCTION _celerysalt_cluster_state() FROM PUBLIC;
REVOKE ALL ON FUNCTION celerysalt_metrics() FROM PUBLIC;
REVOKE ALL ON FUNCTION _celerysalt_installed() FROM PUBLIC;

SELECT @extschema@._celerysalt_installed();
