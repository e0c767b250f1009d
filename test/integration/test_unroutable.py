"""Events published before their subscriber existed (issue 15, item 2).

The worker publishes mandatory: an event no queue is bound for comes back
from RabbitMQ, is not counted as delivered, waits in celerysalt_unroutable
(visible per topic and in celerysalt_status), and is sent again when a
subscriber registers (celerysalt_track_subscriber) and every
celerysalt.unroutable_retry_interval, until a stock celery-salt service
started later receives it, once.
"""

from __future__ import annotations

import uuid

import rig


def _late_service(worker_factory, amqp, records, salt_results, topic):
    queue = f"csit_late_{uuid.uuid4().hex[:8]}"
    amqp.track(queue)
    return worker_factory("late_salt_worker", {
        "CSIT_BROKER_URL": rig.BROKER_URL,
        "CSIT_RESULT_BACKEND": salt_results.url,
        "CSIT_QUEUE": queue,
        "CSIT_LATE_TOPIC": topic,
        "CSIT_RECORD_URL": records.url,
        "CSIT_RECORD_PREFIX": records.prefix,
    })


def _wait_parked(pg, topic, n):
    rig.wait_until(lambda: pg.scalar("SELECT count(*) FROM celerysalt_unroutable WHERE topic = %s",
                                     [topic]) == n, 30, f"{n} events of {topic} parked as unroutable")


def test_event_before_subscriber_reaches_it_once(pg, worker_factory, amqp, records, salt_results, run_id):
    topic = f"csit.{run_id}.late.{uuid.uuid4().hex[:6]}"
    # retries are slow here: what brings the event is the registration
    pg.set_conf({"celerysalt.unroutable_retry_interval": "1h"})
    try:
        _before_subscriber(pg, worker_factory, amqp, records, salt_results, topic)
    finally:
        pg.set_conf({"celerysalt.unroutable_retry_interval": "1min"})


def _before_subscriber(pg, worker_factory, amqp, records, salt_results, topic):
    before = pg.status()
    # published by a plain application role, watched by a plain reader role
    suffix = uuid.uuid4().hex[:6]
    app, reader = f"csit_late_app_{suffix}", f"csit_late_reader_{suffix}"
    pg.execute(f"CREATE ROLE {app} IN ROLE celerysalt_publisher")
    pg.execute(f"CREATE ROLE {reader} IN ROLE celerysalt_reader")
    with pg.connect() as c:
        c.execute(f"SET ROLE {app}")
        eid = c.execute("SELECT celerysalt_publish(%s, %s, 'v1')::text", [topic, '{"n": 1}']).fetchone()[0]
    _wait_parked(pg, topic, 1)
    with pg.connect() as c:
        c.execute(f"SET ROLE {reader}")
        assert c.execute("SELECT events FROM celerysalt_unroutable_topics WHERE topic = %s",
                         [topic]).fetchone() == (1,)
        assert c.execute("SELECT count(*) FROM celerysalt_unroutable WHERE id = %s", [eid]).fetchone() == (1,)

    # not delivered, and visible as waiting
    assert pg.scalar("SELECT count(*) FROM celerysalt_events WHERE id = %s", [eid]) == 0
    status = pg.status()
    assert status["unroutable"] >= 1
    assert status["returned_total"] >= before["returned_total"] + 1
    assert status["delivered_total"] == before["delivered_total"]
    row = pg.execute("SELECT events, oldest_enqueued_at <= last_returned_at FROM celerysalt_unroutable_topics"
                     " WHERE topic = %s", [topic])
    assert row == [(1, True)]
    assert "no queue is bound for topic" in pg.log_file.read_text()

    # the subscriber service starts (its queue and binding appear), then registers
    _late_service(worker_factory, amqp, records, salt_results, topic)
    with pg.connect() as c:
        c.execute(f"SET ROLE {app}")
        c.execute("SELECT celerysalt_track_subscriber(%s, 'late-service', 'on_late')", [topic])

    got = records.wait_records(records.key("late.on_late"),
                               lambda r: [x for x in r if x["task_id"].startswith(eid)], timeout=30)
    mine = [x for x in got if x["task_id"].startswith(eid)]
    assert [x["received"] for x in mine] == [{"n": 1}]
    rig.wait_until(lambda: pg.scalar("SELECT count(*) FROM celerysalt_events WHERE id = %s", [eid]) == 1,
                   30, "the event logged as delivered")
    assert pg.scalar("SELECT count(*) FROM celerysalt_unroutable WHERE topic = %s", [topic]) == 0
    pg.execute(f"DROP ROLE {app}, {reader}")


def test_periodic_retry_without_registration(pg, worker_factory, amqp, records, salt_results, run_id):
    """A service that never registers in Postgres still gets the event, from the periodic retry."""
    topic = f"csit.{run_id}.late.{uuid.uuid4().hex[:6]}"
    pg.set_conf({"celerysalt.unroutable_retry_interval": "1s"})
    try:
        eid = pg.publish(topic, {"n": 2}, version="v1")
        _wait_parked(pg, topic, 1)
        _late_service(worker_factory, amqp, records, salt_results, topic)
        got = records.wait_records(records.key("late.on_late"),
                                   lambda r: [x for x in r if x["task_id"].startswith(eid)], timeout=30)
        assert [x["received"] for x in got if x["task_id"].startswith(eid)] == [{"n": 2}]
    finally:
        pg.set_conf({"celerysalt.unroutable_retry_interval": "1min"})


def test_drop_mode_and_retention(pg, run_id):
    """unroutable = drop publishes as plain AMQP does; a parked event past
    celerysalt.unroutable_retention becomes a dead letter saying why."""
    topic = f"csit.{run_id}.nobody.{uuid.uuid4().hex[:6]}"
    pg.set_conf({"celerysalt.unroutable_retry_interval": "1s"})
    try:
        parked = pg.publish(topic, {"n": 3})
        _wait_parked(pg, topic, 1)
        pg.set_conf({"celerysalt.unroutable_retention": "1s"})
        rig.wait_until(lambda: pg.scalar("SELECT reason FROM celerysalt_dead_letters WHERE id = %s", [parked]),
                       30, "the expired event dead-lettered")
        reason = pg.scalar("SELECT reason FROM celerysalt_dead_letters WHERE id = %s", [parked])
        assert f"no queue was bound for topic {topic}" in reason
        pg.set_conf({"celerysalt.unroutable": "drop"})
        dropped = pg.publish(topic, {"n": 4})
        pg.wait_delivered([dropped])
        assert pg.scalar("SELECT count(*) FROM celerysalt_unroutable WHERE id = %s", [dropped]) == 0
    finally:
        pg.set_conf({"celerysalt.unroutable": "keep", "celerysalt.unroutable_retention": "7d",
                     "celerysalt.unroutable_retry_interval": "1min"})
