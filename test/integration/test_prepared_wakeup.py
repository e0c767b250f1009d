"""Two-phase commit: a prepared transaction's events are delivered at
COMMIT PREPARED without waiting for the fallback poll, and never after
ROLLBACK PREPARED.

The worker of this cluster sleeps up to an hour between wake-ups
(celerysalt.poll_interval and celerysalt.outbox_rotation at an hour), so only
the wake-up of COMMIT PREPARED can deliver within the test's time limit.
"""

from __future__ import annotations

import json
import uuid

import rig


def test_commit_prepared_wakes_the_worker(pg_factory, amqp):
    pg = pg_factory(conf={"max_prepared_transactions": 4, "celerysalt.poll_interval": "1h",
                          "celerysalt.outbox_rotation": 3600})
    pg.wait_worker(timeout=30)
    topic = f"csit.{rig.unique()}.twophase"
    queue = amqp.declare_queue(f"csit_2pc_{uuid.uuid4().hex[:8]}", [topic])
    per_event = len([t for t in pg.scalar("SHOW celerysalt.dispatcher_tasks").split(",") if t.strip()])

    prepared = {}
    for gid in ("commit-me", "roll-me-back"):
        with pg.connect(autocommit=False) as conn:
            prepared[gid] = str(conn.execute("SELECT celerysalt_publish(%s, %s::jsonb)",
                                              (topic, json.dumps({"gid": gid}))).fetchone()[0])
            conn.execute(f"PREPARE TRANSACTION '{gid}'")
    # prepared, not committed: nothing to deliver yet
    assert pg.scalar("SELECT count(*) FROM celerysalt_events WHERE topic = %s", (topic,)) == 0

    # COMMIT PREPARED from another session; with an hour-long poll only its wake-up delivers
    pg.execute("COMMIT PREPARED 'commit-me'")
    pg.wait_delivered([prepared["commit-me"]], timeout=20)
    pg.execute("ROLLBACK PREPARED 'roll-me-back'")

    messages = amqp.get_many(queue, per_event, timeout=20)
    assert [m.delivery_info["routing_key"] for m in messages] == [topic] * per_event
    assert pg.scalar("SELECT payload FROM celerysalt_events WHERE id = %s::uuid",
                     (prepared["commit-me"],)) == {"gid": "commit-me"}

    # a later publish is delivered (woken by its own commit); the rolled-back event never is
    later = pg.publish(topic, {"gid": "after"})
    pg.wait_delivered([later], timeout=20)
    amqp.get_many(queue, per_event, timeout=20)
    assert amqp.channel.basic_get(queue=queue, no_ack=True) is None
    assert pg.scalar("SELECT count(*) FROM celerysalt_events WHERE id = %s::uuid",
                     (prepared["roll-me-back"],)) == 0
    assert pg.scalar("SELECT count(*) FROM _celerysalt_outbox WHERE id = %s::uuid",
                     (prepared["roll-me-back"],)) == 0
