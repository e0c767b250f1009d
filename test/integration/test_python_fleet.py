"""celery-salt and tchu-tchu services in one fleet (issue 15 items 3, 4).

- A tchu-tchu 3.0.4 service set up as tchu-tchu documents it plus
  celerysalt_pg.tchu.bind_tchu_queue: no binding is made by the test, yet
  its handlers (a topic and a pattern) run, and an event published before
  the service existed is sent again as soon as the helper records the
  handlers in celerysalt_subscribers (the periodic retry is 1 h here).
- A celery-salt and a tchu-tchu service on the same topic, both with
  celerysalt_pg.fleet.ignore_foreign_dispatchers, events from SQL with both
  dispatcher tasks configured: each handler runs exactly once per event,
  neither worker logs "Received unregistered task" or a traceback, and no
  FAILURE record is stored for any copy.
"""

from __future__ import annotations

import re
import uuid

import rig
from rig import SALT_TASK, TCHU_TASK


def tchu_task_id(event_id: str) -> str:
    """The tchu-tchu copy's task id (test_consumer_compat.py)."""
    return str(uuid.uuid5(uuid.UUID(event_id), TCHU_TASK))


def mine(records: list[dict], task_id: str) -> list[dict]:
    return [r for r in records if r["task_id"].startswith(task_id + ":")]


def _tchu_service(worker_factory, amqp, records, results, queue, topic, dsn=None, ignore_foreign=True):
    amqp.track(queue)        # declared by the worker; deleted after the session
    env = {
        "CSIT_BROKER_URL": rig.BROKER_URL,
        "CSIT_RESULT_BACKEND": results.url,
        "CSIT_QUEUE": queue,
        "CSIT_FLEET_TOPIC": topic,
        "CSIT_RECORD_URL": records.url,
        "CSIT_RECORD_PREFIX": records.prefix,
        "CSIT_IGNORE_FOREIGN": "1" if ignore_foreign else "0",
    }
    if dsn is not None:
        env["CSIT_REGISTRY_DSN"] = dsn
    return worker_factory("fleet_tchu_worker", env, name=f"fleet-tchu-{queue[-6:]}")


def _salt_service(worker_factory, amqp, records, results, queue, topic):
    amqp.track(queue)
    return worker_factory("fleet_salt_worker", {
        "CSIT_BROKER_URL": rig.BROKER_URL,
        "CSIT_RESULT_BACKEND": results.url,
        "CSIT_QUEUE": queue,
        "CSIT_FLEET_TOPIC": topic,
        "CSIT_RECORD_URL": records.url,
        "CSIT_RECORD_PREFIX": records.prefix,
        "CSIT_IGNORE_FOREIGN": "1",
    }, name=f"fleet-salt-{queue[-6:]}")


def test_tchu_service_bound_by_helper(pg, worker_factory, amqp, records, tchu_results, run_id):
    suffix = uuid.uuid4().hex[:6]
    topic = f"csit.{run_id}.fleet.tchu.{suffix}"
    queue = f"csit_fleet_tchu_{suffix}"
    pg.set_conf({"celerysalt.unroutable_retry_interval": "1h"})
    try:
        # published before the service exists: nothing is bound, it waits
        early = pg.publish(topic, {"n": 1})
        rig.wait_until(lambda: pg.scalar("SELECT count(*) FROM celerysalt_unroutable WHERE id = %s",
                                         [early]) == 1, 30, "the early event parked as unroutable")

        worker = _tchu_service(worker_factory, amqp, records, tchu_results, queue, topic, dsn=pg.dsn)
        log = worker.log_text()
        assert f"tchu-tchu queue '{queue}' bound to tchu_events with 2 routing key(s) (before consuming)" in log
        assert f"recorded 2 subscription(s) of '{queue}'" in log
        assert pg.execute("SELECT topic, handler FROM celerysalt_subscribers WHERE service = %s ORDER BY 1",
                          [queue]) == [(topic, "fleet_tchu_handlers.on_fleet"),
                                       (f"{topic}.pattern.*", "fleet_tchu_handlers.on_pattern")]

        # the registration sent the early event again: handled once
        got = records.wait_records(records.key("fleet_tchu.on_fleet"),
                                   lambda r: mine(r, tchu_task_id(early)), what="the early event")
        assert [r["received"] for r in mine(got, tchu_task_id(early))] == [{"n": 1}]
        rig.wait_until(lambda: pg.scalar("SELECT count(*) FROM celerysalt_events WHERE id = %s", [early]) == 1,
                       30, "the early event logged as delivered")
        assert pg.scalar("SELECT count(*) FROM celerysalt_unroutable WHERE topic = %s", [topic]) == 0

        # later events, to the topic and to the pattern
        now = pg.publish(topic, {"n": 2})
        pat = pg.publish(f"{topic}.pattern.x", {"n": 3})
        pg.wait_delivered([now, pat])
        got = records.wait_records(records.key("fleet_tchu.on_fleet"),
                                   lambda r: mine(r, tchu_task_id(now)), what="the second event")
        assert [r["received"] for r in mine(got, tchu_task_id(now))] == [{"n": 2}]
        got = records.wait_records(records.key("fleet_tchu.on_pattern"),
                                   lambda r: mine(r, tchu_task_id(pat)), what="the pattern event")
        assert [r["received"] for r in mine(got, tchu_task_id(pat))] == [{"n": 3}]
        assert tchu_results.wait_result(tchu_task_id(now))["status"] == "SUCCESS"
    finally:
        pg.set_conf({"celerysalt.unroutable_retry_interval": "1min"})


def test_mixed_fleet_without_noise(pg, worker_factory, amqp, records, salt_results, tchu_results, run_id):
    suffix = uuid.uuid4().hex[:6]
    topic = f"csit.{run_id}.fleet.mixed.{suffix}"
    assert set(pg.scalar("SHOW celerysalt.dispatcher_tasks").replace(" ", "").split(",")) == {SALT_TASK, TCHU_TASK}
    salt = _salt_service(worker_factory, amqp, records, salt_results, f"csit_fleet_ms_{suffix}", topic)
    tchu = _tchu_service(worker_factory, amqp, records, tchu_results, f"csit_fleet_mt_{suffix}", topic)

    eids = [pg.publish(topic, {"n": i}) for i in range(3)]
    tids = [tchu_task_id(e) for e in eids]
    pg.wait_delivered(eids)

    salt_recs = records.wait_records(records.key("fleet_salt.on_fleet"),
                                     lambda r: all(mine(r, e) for e in eids), what="celery-salt handler runs")
    tchu_recs = records.wait_records(records.key("fleet_tchu.on_fleet"),
                                     lambda r: all(mine(r, t) for t in tids), what="tchu-tchu handler runs")
    # each service also got the other library's copy: wait until it was acked
    for worker, foreign, ids in ((salt, TCHU_TASK, tids), (tchu, SALT_TASK, eids)):
        rig.wait_until(lambda: all(f"{foreign}[{i}] succeeded" in worker.log_text() for i in ids), 30,
                       f"{worker.name} to finish the {foreign} copies", on_timeout=lambda: rig.tail(worker.log_file))

    # the handler tasks' own records (SUCCESS) exist before we count
    for e, t in zip(eids, tids):
        salt_results.wait_result(e)
        tchu_results.wait_result(t)
    salt_recs = records.records(records.key("fleet_salt.on_fleet"))
    tchu_recs = records.records(records.key("fleet_tchu.on_fleet"))
    for i, (e, t) in enumerate(zip(eids, tids)):
        assert [r["received"] for r in mine(salt_recs, e)] == [{"n": i}]
        assert [r["received"] for r in mine(tchu_recs, t)] == [{"n": i}]
        assert not mine(salt_recs, t) and not mine(tchu_recs, e)

    for worker in (salt, tchu):
        log = worker.log_text()
        assert "Received unregistered task" not in log, rig.tail(worker.log_file)
        assert "Traceback" not in log, rig.tail(worker.log_file)
        assert not re.search(r": (ERROR|CRITICAL)/", log), rig.tail(worker.log_file)

    # results: the own copy SUCCESS, the foreign copy nothing at all
    for results, own, foreign in ((salt_results, eids, tids), (tchu_results, tids, eids)):
        for i in own:
            assert results.wait_result(i)["status"] == "SUCCESS"
        for i in foreign:
            assert results.result(i) is None
        for i in own + foreign:
            for key in results.client.scan_iter(match=f"celery-task-meta-{i}*"):
                results.forget_on_close(key.decode())
                assert b'"FAILURE"' not in results.client.get(key), key
