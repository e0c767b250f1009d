-- celerysalt upgrade script 0.1.0 -> 0.2.0.
--
-- Every change made to sql/install/ after 0.1.0 is written here too, so that
-- ALTER EXTENSION celerysalt UPDATE brings an existing 0.1.0 installation to
-- exactly what CREATE EXTENSION installs.  test/t/050_upgrade.pl installs
-- sql/releases/celerysalt--0.1.0.sql (0.1.0 as released, never edited),
-- runs the update and compares the catalog with a fresh install.
\echo Use "ALTER EXTENSION celerysalt UPDATE" to load this file. \quit

-- ------------------------------------------------------ unroutable events
-- (events are published mandatory; what no queue received waits here)
CREATE TABLE celerysalt_unroutable (
    id              uuid        PRIMARY KEY,
    event_id        bigint      NOT NULL,
    topic           text        NOT NULL,
    version         text,
    correlation_id  text,
    payload         jsonb       NOT NULL,
    enqueued_at     timestamptz NOT NULL,
    returned_at     timestamptz NOT NULL
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

SELECT pg_catalog.pg_extension_config_dump('celerysalt_unroutable', '');

-- the status view gains unroutable and returned_total: rebuilt with the
-- worker-state function, whose result gains returned_total
DROP VIEW celerysalt_status;
DROP FUNCTION _celerysalt_worker_state();
CREATE FUNCTION _celerysalt_worker_state(
    OUT worker_pid integer, OUT broker_connected boolean, OUT broker text,
    OUT delivered_total bigint, OUT dead_lettered_total bigint,
    OUT last_delivery_at timestamptz, OUT last_error text,
    OUT last_error_at timestamptz, OUT worker_started_at timestamptz,
    OUT returned_total bigint)
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
       w.returned_total
  FROM @extschema@._celerysalt_worker_state() w,
       LATERAL (SELECT pg_catalog.count(*) AS pending, pg_catalog.min(enqueued_at) AS oldest_enqueued_at
                  FROM @extschema@._celerysalt_outbox) o;
COMMENT ON VIEW celerysalt_status IS
    'Delivery state of this database: worker, broker connection, pending events, totals and the last error.';

CREATE FUNCTION celerysalt_retry_unroutable()
RETURNS void
AS 'MODULE_PATHNAME', 'celerysalt_retry_unroutable'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION celerysalt_retry_unroutable() IS
    'Asks the worker to send the events of celerysalt_unroutable again now and a few times in the next minute (celerysalt_track_subscriber calls it).';

REVOKE ALL ON FUNCTION _celerysalt_worker_state() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _celerysalt_worker_state() TO celerysalt_reader;
GRANT SELECT ON celerysalt_status TO celerysalt_reader;
REVOKE ALL ON FUNCTION celerysalt_retry_unroutable() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION celerysalt_retry_unroutable() TO celerysalt_publisher;
GRANT SELECT ON celerysalt_unroutable, celerysalt_unroutable_topics TO celerysalt_reader;
GRANT DELETE ON celerysalt_unroutable TO celerysalt_admin;

-- a subscriber's registration sends the unroutable events again
CREATE OR REPLACE FUNCTION celerysalt_track_subscriber(topic text, service text, handler text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_variable
BEGIN
    IF coalesce(topic, '') = '' OR length(topic) > 255 THEN
        RAISE EXCEPTION 'topic must have between 1 and 255 bytes' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF coalesce(service, '') = '' OR coalesce(handler, '') = '' THEN
        RAISE EXCEPTION 'service and handler must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO @extschema@.celerysalt_subscribers AS s (topic, service, handler)
    VALUES (topic, service, handler)
    ON CONFLICT ON CONSTRAINT celerysalt_subscribers_pkey DO UPDATE SET last_seen_at = now();
    -- events published before this subscriber's queue existed are sent again
    PERFORM @extschema@.celerysalt_retry_unroutable();
END
$$;

-- ---- pydantic fidelity (issue 15 items 5, 6)
-- celerysalt_event_errors checks as celerysalt_validate_event does (in C),
-- reading date and time formats as celerysalt.format_dialect says.
CREATE OR REPLACE FUNCTION celerysalt_event_errors(topic text, payload jsonb, version text DEFAULT 'latest')
RETURNS jsonb
AS 'MODULE_PATHNAME', 'celerysalt_event_errors'
LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION celerysalt_event_errors(text, jsonb, text) IS
    'Why payload is invalid against the registered schema of (topic, version), checked as celerysalt_publish checks it: [] when valid, else [{path, schema_path, keyword, message}].';
COMMENT ON FUNCTION celerysalt_validate_event(text, jsonb, text) IS
    'True if payload is valid against the registered schema of (topic, version), formats asserted (date and time formats as celerysalt.format_dialect says), as celerysalt_publish checks it; usable in CHECK constraints.';
