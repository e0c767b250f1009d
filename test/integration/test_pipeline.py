"""The worker's window of batches (issue 17, item 1).

The worker publishes the next batches while the broker confirms the earlier
ones (celerysalt.publish_window batches between read and finish).  With small
batches and a window of 4, many batches are in flight at once; these tests
check what must hold anyway: every event reaches its queue once (a read never
takes an event that is already in flight), the events of one transaction
arrive in order, returned (unroutable) messages are matched to their own
events while other batches are in flight, and a single event is published at
once rather than waiting for a batch to fill.  Events are published by a plain
application role holding only celerysalt_publisher.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from kombu import Connection

import rig

CONF = {
    "celerysalt.batch_size": 50,
    "celerysalt.publish_window": 4,
    # a worker that waited for its poll to find events would fail these tests
    "celerysalt.poll_interval": "1h",
}


class Collector:
    """A consumer on its own exclusive queue bound to routing_key; records
    (task name, payload) in arrival order."""

    def __init__(self, routing_key: str):
        self.conn = Connection(rig.BROKER_URL, connect_timeout=5)
        self.conn.ensure_connection(max_retries=3)
        self.ch = self.conn.default_channel
        self.ch.exchange_declare(rig.EXCHANGE, "topic", durable=True, auto_delete=False)
        self.queue = self.ch.queue_declare("", exclusive=True).queue
        self.ch.queue_bind(self.queue, rig.EXCHANGE, routing_key)
        self.got: list[tuple[str, dict]] = []
        self.arrived_at: dict[str, float] = {}
        self.ch.basic_consume(self.queue, no_ack=True, callback=self._on)

    def _on(self, m) -> None:
        body = json.loads(m.body)
        payload = json.loads(body[0][0])
        payload.pop("_tchu_meta", None)
        self.got.append((m.headers["task"], payload))
        self.arrived_at.setdefault(m.headers["id"], time.monotonic())

    def drain_until(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.got) < n and time.monotonic() < deadline:
            try:
                self.conn.drain_events(timeout=0.2)
            except (TimeoutError, OSError):
                pass
        # anything more (a duplicate) would arrive now
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            try:
                self.conn.drain_events(timeout=0.1)
            except (TimeoutError, OSError):
                pass

    def close(self) -> None:
        self.conn.release()


@pytest.fixture
def app_pg(pg_factory):
    """A cluster with small batches and a window of 4, and a plain role that
    holds only celerysalt_publisher."""
    cluster = pg_factory(conf=CONF)
    cluster.wait_worker()
    role = f"csit_pipe_{uuid.uuid4().hex[:6]}"
    cluster.execute(f"CREATE ROLE {role} LOGIN IN ROLE celerysalt_publisher")
    cluster.app_role = role
    yield cluster


def _app_connect(cluster):
    conn = cluster.connect(autocommit=False)
    conn.execute(f"SET ROLE {cluster.app_role}")
    conn.commit()
    return conn


def test_window_delivers_each_event_once_in_transaction_order(app_pg):
    topic = f"csit.pipe.{uuid.uuid4().hex[:8]}"
    sessions, txns, per_txn = 3, 20, 100
    total = sessions * txns * per_txn
    tasks = 2  # the rig's celerysalt.dispatcher_tasks: both task names
    col = Collector(topic)
    errors: list[BaseException] = []
    start = threading.Barrier(sessions)

    def publisher(s: int) -> None:
        try:
            with _app_connect(app_pg) as conn:
                start.wait()
                for t in range(txns):
                    conn.execute("SELECT count(celerysalt_publish(%s, jsonb_build_object('s', %s::int,"
                                 " 't', %s::int, 'i', i))) FROM generate_series(1, %s::int) i",
                                 (topic, s, t, per_txn))
                    conn.commit()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=publisher, args=(s,)) for s in range(sessions)]
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        assert not errors, errors
        col.drain_until(total * tasks, 120)
    finally:
        col.close()

    seen: dict[tuple, int] = {}
    for task, p in col.got:
        key = (task, p["s"], p["t"], p["i"])
        seen[key] = seen.get(key, 0) + 1
    assert len(seen) == total * tasks, f"{total * tasks - len(seen)} messages missing"
    dups = {k: n for k, n in seen.items() if n > 1}
    assert not dups, f"{len(dups)} messages arrived twice without any fault, e.g. {list(dups)[:3]}"

    # one channel, batches published in outbox order: a transaction's events arrive in order
    last: dict[tuple, int] = {}
    for task, p in col.got:
        k = (task, p["s"], p["t"])
        assert p["i"] > last.get(k, 0), f"event {p['i']} of transaction {k} arrived after {last[k]}"
        last[k] = p["i"]

    assert app_pg.scalar("SELECT count(*) FROM celerysalt_events WHERE topic = %s", (topic,)) == total
    app_pg.wait_idle()


def test_returns_are_matched_to_their_events_across_the_window(app_pg):
    base = f"csit.pipe.{uuid.uuid4().hex[:8]}"
    bound, unbound = f"{base}.bound", f"{base}.unbound"
    n = 600  # 12 batches of 50 in one transaction: the window is full of them
    col = Collector(bound)
    try:
        with _app_connect(app_pg) as conn:
            ids = conn.execute("SELECT i, celerysalt_publish(CASE WHEN i %% 3 = 0 THEN %s ELSE %s END,"
                               " jsonb_build_object('i', i))::text FROM generate_series(1, %s::int) i",
                               (unbound, bound, n)).fetchall()
            conn.commit()
        want_bound = [i for i in range(1, n + 1) if i % 3 != 0]
        col.drain_until(2 * len(want_bound), 60)
    finally:
        col.close()

    unbound_ids = sorted(eid for i, eid in ids if i % 3 == 0)
    rig.wait_until(lambda: app_pg.scalar("SELECT count(*) FROM celerysalt_unroutable WHERE topic = %s",
                                         (unbound,)) == len(unbound_ids), 30, "the unbound events parked")
    parked = sorted(r[0] for r in app_pg.execute(
        "SELECT id::text FROM celerysalt_unroutable WHERE topic LIKE %s", (base + ".%",)))
    assert parked == unbound_ids, "an event other than the returned ones was parked"
    for task in {t for t, _ in col.got}:
        assert [p["i"] for t, p in col.got if t == task] == want_bound
    assert app_pg.scalar("SELECT count(*) FROM celerysalt_events WHERE topic = %s", (bound,)) == len(want_bound)
    app_pg.wait_idle()


def test_single_event_is_published_at_once(app_pg):
    """At a low rate each event goes out as soon as it is committed (batch_size
    50 never fills, and the poll interval is an hour)."""
    topic = f"csit.pipe.{uuid.uuid4().hex[:8]}"
    col = Collector(topic)
    latencies = []
    try:
        with _app_connect(app_pg) as conn:
            for i in range(20):
                eid = conn.execute("SELECT celerysalt_publish(%s, jsonb_build_object('i', %s::int))::text",
                                   (topic, i)).fetchone()[0]
                conn.commit()
                committed = time.monotonic()
                deadline = committed + 5
                while eid not in col.arrived_at and time.monotonic() < deadline:
                    try:
                        col.conn.drain_events(timeout=0.05)
                    except (TimeoutError, OSError):
                        pass
                assert eid in col.arrived_at, f"event {i} not published within 5 s of its commit"
                latencies.append(col.arrived_at[eid] - committed)
                time.sleep(0.02)
    finally:
        col.close()
    latencies.sort()
    # generous for a loaded 2-core machine; a worker waiting for a batch to fill would never send
    assert latencies[len(latencies) // 2] < 0.5, latencies
