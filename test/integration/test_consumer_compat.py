"""Consumer compatibility: events published from SQL are run by stock
celery-salt 1.6.0 and tchu-tchu 3.0.4 workers, on the real broker.

The session cluster publishes one message per task name
(celerysalt.dispatcher_tasks = 'celery_salt.dispatch_event,
tchu_tchu.dispatch_event'); the celery-salt copy's task id is the event id,
the tchu-tchu copy's is uuid5(event id, 'tchu_tchu.dispatch_event').
docs/wire-format.md describes the message checked here.
"""

from __future__ import annotations

import json
import uuid

import pytest

from rig import SALT_TASK, TCHU_TASK, canonical

# Written as SQL/JSON text: unicode incl. an astral character, 2**70, 0.1
# and 1e-05, every escape class, nested objects and arrays, unicode keys,
# nulls, booleans, empty object and array.
COMPAT_JSON = r"""{
  "text": "Zoë ☃ 😀",
  "escapes": "quote \" backslash \\ slash / tab \t newline \n cr \r bell \u0007 del \u007f nbsp \u00a0 ls \u2028 end",
  "big": 1180591620717411303424,
  "negative_big": -1180591620717411303424,
  "ratio": 0.1,
  "tiny": 1e-05,
  "nested": {"a": {"b": [1, 2.5, "x", null, true, {"c": []}]}, "ключ": "значение", "😀": {"deep": [[[]]]}},
  "items": [1, -2, 3.25, "two", [3, [4]], {"five": 5}, null, false, true, {}, []],
  "yes": true,
  "no": false,
  "empty_obj": {},
  "empty_arr": [],
  "nothing": null
}"""
COMPAT = json.loads(COMPAT_JSON)


def tchu_task_id(event_id: str) -> str:
    """The tchu-tchu copy's task id: a name-based UUIDv5 (event id as
    namespace, task name as name), so a redelivery reuses it."""
    return str(uuid.uuid5(uuid.UUID(event_id), TCHU_TASK))


def for_task(records: list[dict], task_id_prefix: str) -> list[dict]:
    return [r for r in records if r["task_id"].startswith(task_id_prefix + ":")]


def without_meta(raw: dict) -> tuple[dict, dict | None]:
    raw = dict(raw)
    return raw, raw.pop("_tchu_meta", None)


# ------------------------------------------------------------------ payloads

def test_both_workers_receive_identical_payloads(pg, workers, topics, records):
    assert COMPAT["big"] == 2 ** 70 and COMPAT["negative_big"] == -(2 ** 70)
    assert COMPAT["ratio"] == 0.1 and COMPAT["tiny"] == 1e-05

    eid = pg.publish(topics.compat, COMPAT_JSON)
    tid = tchu_task_id(eid)
    pg.wait_delivered([eid])

    salt = for_task(records.wait_records(records.key("salt.on_compat"),
                                         lambda r: for_task(r, eid), what="the celery-salt handler"), eid)
    tchu = for_task(records.wait_records(records.key("tchu.on_compat"),
                                         lambda r: for_task(r, tid), what="the tchu-tchu handler"), tid)
    assert len(salt) == 1 and len(tchu) == 1, (salt, tchu)
    salt, tchu = salt[0], tchu[0]

    # What the handler functions were given (celery-salt: the validated
    # model; tchu-tchu: the dict) equals the SQL payload, types included.
    assert canonical(salt["received"]) == canonical(COMPAT)
    assert canonical(tchu["received"]) == canonical(COMPAT)
    assert salt["received"]["text"] == tchu["received"]["text"] == "Zoë ☃ 😀"
    assert salt["received"]["big"] == tchu["received"]["big"] == 2 ** 70
    assert type(tchu["received"]["ratio"]) is float and tchu["received"]["tiny"] == 1e-05

    # The handler tasks' argument as the workers decoded it: the payload
    # plus _tchu_meta (no version given -> "v1"; no correlation id).
    for rec in (salt, tchu):
        payload, meta = without_meta(rec["raw"])
        assert canonical(payload) == canonical(COMPAT)
        assert meta == {"is_rpc": False, "version": "v1"}
        assert list(rec["raw"])[-1] == "_tchu_meta"

    # And what the delivery log kept is the same document.
    stored = pg.scalar("SELECT payload FROM celerysalt_events WHERE id = %s", (eid,))
    assert canonical(stored) == canonical(COMPAT)


# ----------------------------------------------------- results and task ids

def test_result_records_and_task_ids(pg, workers, topics, records, salt_results, tchu_results):
    eid = pg.publish(topics.compat, COMPAT_JSON, version="v1", correlation_id="result-check")
    tid = tchu_task_id(eid)
    assert tid != eid

    # celery-salt copy: task id = event id, the dispatcher's result stored
    # as SUCCESS under celery-task-meta-<event id> (2.7, 3.3).
    res = salt_results.wait_result(eid)
    assert res["status"] == "SUCCESS", res
    assert res["task_id"] == eid
    out = res["result"]
    assert out["status"] == "completed" and out["routing_key"] == topics.compat
    assert out["is_rpc"] is False and out["handlers_executed"] == 1
    (entry,) = out["results"]
    assert entry["handler"] == "validated_handler" and entry["status"] == "dispatched"
    assert entry["task_id"].startswith(eid + ":handler_")
    handler_res = salt_results.wait_result(entry["task_id"])
    assert handler_res["status"] == "SUCCESS", handler_res
    assert handler_res["result"] == {"handled_by": "salt.on_compat"}
    assert handler_res.get("parent_id") == eid
    (rec,) = for_task(records.wait_records(records.key("salt.on_compat"), lambda r: for_task(r, eid)), eid)
    assert rec["task_id"] == entry["task_id"]
    assert rec["raw"]["_tchu_meta"] == {"is_rpc": False, "version": "v1", "correlation_id": "result-check"}

    # tchu-tchu copy: task id = uuid5(event id, task name) (distinct ids per
    # copy: docs/wire-format.md#one-message-per-dispatcher-task), result under its own key in the tchu worker's backend.
    tres = tchu_results.wait_result(tid)
    assert tres["status"] == "SUCCESS", tres
    assert tres["task_id"] == tid
    (tentry,) = tres["result"]["results"]
    assert tres["result"]["routing_key"] == topics.compat and tres["result"]["is_rpc"] is False
    assert tentry["status"] == "dispatched"
    assert tentry["task_id"] == f"{tid}:tchu_worker.on_compat"
    (trec,) = for_task(records.wait_records(records.key("tchu.on_compat"), lambda r: for_task(r, tid)), tid)
    assert trec["task_id"] == tentry["task_id"]

    # Each worker discards the other library's copy as an unregistered task
    # (0.2 item 1, 9 #9): harmless, and recorded under that copy's id only.
    foreign_salt = salt_results.wait_result(tid)
    assert foreign_salt["status"] == "FAILURE"
    assert foreign_salt["result"]["exc_type"] == "NotRegistered"
    assert foreign_salt["result"]["exc_message"] == [TCHU_TASK]
    foreign_tchu = tchu_results.wait_result(eid)
    assert foreign_tchu["status"] == "FAILURE"
    assert foreign_tchu["result"]["exc_type"] == "NotRegistered"
    assert foreign_tchu["result"]["exc_message"] == [SALT_TASK]


# -------------------------------------------------------------- versioning

def test_version_pinned_handlers(pg, workers, topics, records, salt_results):
    """Handlers {v2, latest} (2.4): v1 -> latest; v2 -> both; v3 -> both;
    no version -> stamped "v1" -> latest only."""
    e_v2 = pg.publish(topics.versioned, {"n": 2, "label": "two"}, version="v2", correlation_id="corr-v2")
    e_v1 = pg.publish(topics.versioned, {"n": 1}, version="v1")
    e_none = pg.publish(topics.versioned, {"n": 0})
    e_v3 = pg.publish(topics.versioned, {"n": 3, "label": "three", "extra": True}, version="v3")
    expect_count = {e_v2: 2, e_v1: 1, e_none: 1, e_v3: 2}

    handler_ids = {}
    for eid, count in expect_count.items():
        res = salt_results.wait_result(eid)
        assert res["status"] == "SUCCESS", res
        assert res["result"]["handlers_executed"] == count, (eid, res)
        handler_ids[eid] = {r["task_id"] for r in res["result"]["results"]}

    latest = records.wait_records(
        records.key("salt.on_versioned_latest"),
        lambda r: all(for_task(r, e) for e in expect_count), what="the latest handler")
    pinned = records.wait_records(
        records.key("salt.on_versioned_v2"),
        lambda r: for_task(r, e_v2) and for_task(r, e_v3), what="the v2 handler")

    # The v2-pinned handler never ran for the v1 and version-less events.
    assert not for_task(pinned, e_v1) and not for_task(pinned, e_none)
    for eid in expect_count:
        assert len(for_task(latest, eid)) == 1
    ran = {r["task_id"] for e in expect_count for r in for_task(latest, e) + for_task(pinned, e)}
    assert ran == set().union(*handler_ids.values())

    def one(recs, eid):
        (r,) = for_task(recs, eid)
        return r

    # _tchu_meta as the handler tasks got it.
    assert one(latest, e_none)["raw"]["_tchu_meta"] == {"is_rpc": False, "version": "v1"}
    assert one(latest, e_v1)["raw"]["_tchu_meta"] == {"is_rpc": False, "version": "v1"}
    assert one(latest, e_v2)["raw"]["_tchu_meta"] == {"is_rpc": False, "version": "v2",
                                                      "correlation_id": "corr-v2"}
    assert one(pinned, e_v3)["raw"]["_tchu_meta"] == {"is_rpc": False, "version": "v3"}
    # Validation against the handler's schema: "latest" = v2 (label defaults),
    # extra keys ignored.
    assert one(latest, e_v1)["received"] == {"n": 1, "label": "none"}
    assert one(pinned, e_v2)["received"] == {"n": 2, "label": "two"}
    assert one(pinned, e_v3)["received"] == {"n": 3, "label": "three"}


# ------------------------------------------------------------ transactions

def test_rolled_back_events_are_never_delivered(pg, workers, topics, records, salt_results, tchu_results):
    tag = uuid.uuid4().hex[:8]
    rolled_back = []

    # 1. a whole transaction rolled back
    with pg.connect(autocommit=False) as c:
        rolled_back.append(pg.publish(topics.txn, {"tag": f"rollback-{tag}"}, conn=c))
        c.rollback()
    # 2. a transaction that failed after publishing
    with pg.connect(autocommit=False) as c:
        rolled_back.append(pg.publish(topics.txn, {"tag": f"failed-{tag}"}, conn=c))
        with pytest.raises(Exception):
            c.execute("SELECT 1/0")
        c.rollback()
    # 3. a rolled-back savepoint inside a committed transaction, with a kept
    #    event before it and the marker after it
    with pg.connect(autocommit=False) as c:
        kept = pg.publish(topics.txn, {"tag": f"kept-{tag}"}, conn=c)
        c.execute("SAVEPOINT s")
        rolled_back.append(pg.publish(topics.txn, {"tag": f"savepoint-{tag}"}, conn=c))
        c.execute("ROLLBACK TO SAVEPOINT s")
        marker = pg.publish(topics.txn, {"tag": f"marker-{tag}"}, conn=c)
        c.commit()

    # Everything published after the rolled-back events: once each worker has
    # handled the marker, anything enqueued before it would have been too
    # (one FIFO queue per worker, solo pool, prefetch 1).
    salt = records.wait_records(records.key("salt.on_txn"), lambda r: for_task(r, marker),
                                what="the celery-salt marker")
    tchu = records.wait_records(records.key("tchu.on_txn"), lambda r: for_task(r, tchu_task_id(marker)),
                                what="the tchu-tchu marker")
    pg.wait_idle()

    def tags(recs):
        return sorted(r["received"]["tag"] for r in recs if r["received"]["tag"].endswith(tag))
    assert tags(salt) == sorted([f"kept-{tag}", f"marker-{tag}"])
    assert tags(tchu) == sorted([f"kept-{tag}", f"marker-{tag}"])

    assert pg.scalar("SELECT count(*) FROM celerysalt_events WHERE id = ANY(%s::uuid[])",
                     (rolled_back,)) == 0
    assert pg.scalar("SELECT count(*) FROM celerysalt_events WHERE id = ANY(%s::uuid[])",
                     ([kept, marker],)) == 2
    for eid in rolled_back:
        for db in (salt_results, tchu_results):
            assert db.result(eid) is None
            assert db.result(tchu_task_id(eid)) is None


# ------------------------------------------------------------------ queues

def test_stock_queues_as_the_rig_expects(amqp, workers):
    """The stock celery-salt 1.6.0 worker declared its queue with
    x-max-priority 10 (0.2 item 2a): an equivalent declaration is accepted, one
    without the argument is refused with 406.  The tchu-tchu queue the rig
    made has no arguments and kept its topic bindings (2.9)."""
    import amqp as py_amqp
    amqp.declare_queue(workers.salt_queue, arguments={"x-max-priority": 10}, cleanup=False)
    with pytest.raises(py_amqp.exceptions.PreconditionFailed):
        amqp.declare_queue(workers.salt_queue, cleanup=False)
    amqp.reset()
    amqp.declare_queue(workers.tchu_queue, cleanup=False)


# ------------------------------------------------------------- the message

def test_message_properties_headers_and_body(pg, amqp, topics, run_id):
    """One message per task name, captured from a plain queue bound to the
    topic, checked against docs/wire-format.md (#properties, #headers, #body, #payload-and-_tchu_meta)."""
    cap = amqp.declare_queue(f"csit_cap_{run_id}", [topics.capture], durable=False)
    payload = {"user_id": 42, "email": "ada@example.com", "name": "Zoë ☃ 😀",
               "nested": {"k": [1, {"z": None}], "t": True}}
    e1 = pg.publish(topics.capture, payload, version="v3", correlation_id="req-7f3a")
    e2 = pg.publish(topics.capture, {"user_id": 7})
    msgs = amqp.get_many(cap, 4, timeout=30)

    by_id = {m.headers["id"]: m for m in msgs}
    expected_ids = {e1: SALT_TASK, tchu_task_id(e1): TCHU_TASK, e2: SALT_TASK, tchu_task_id(e2): TCHU_TASK}
    # The first task's id is the event id; the second's is exactly
    # uuid5(uuid.UUID(event id), "tchu_tchu.dispatch_event").
    assert set(by_id) == set(expected_ids), (sorted(by_id), expected_ids)

    for task_id, m in by_id.items():
        event_id = e1 if task_id in (e1, tchu_task_id(e1)) else e2
        src = payload if event_id == e1 else {"user_id": 7}
        meta = ({"is_rpc": False, "version": "v3", "correlation_id": "req-7f3a"} if event_id == e1
                else {"is_rpc": False, "version": "v1"})
        h, p = m.headers, m.properties

        assert m.delivery_info["exchange"] == "tchu_events"
        assert m.delivery_info["routing_key"] == topics.capture

        assert p["content_type"] == "application/json"
        assert p["content_encoding"] == "utf-8"
        assert p["delivery_mode"] == 2
        assert p["correlation_id"] == task_id
        assert p.get("priority", 0) == 0

        assert h["task"] == expected_ids[task_id]
        assert h["id"] == task_id == str(uuid.UUID(task_id))   # lowercase, hyphenated
        assert h["root_id"] == task_id
        assert h["lang"] == "py"
        assert h["retries"] == 0 and type(h["retries"]) is int
        assert h["timelimit"] == [None, None]
        for k in ("parent_id", "group", "group_index", "shadow", "eta", "expires"):
            assert h.get(k) is None, k
        assert h.get("ignore_result") in (None, False)
        assert isinstance(h["origin"], str) and "@" in h["origin"]

        # py-amqp hands the body over decoded with content_encoding (utf-8)
        body = m.body if isinstance(m.body, str) else m.body.decode("utf-8")
        assert body.isascii()
        args, kwargs, embed = json.loads(body)
        assert kwargs == {"routing_key": topics.capture}
        assert embed == {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
        (s,) = args
        assert isinstance(s, str)
        # the body is exactly what kombu's json.dumps writes for that value
        assert body == json.dumps([[s], kwargs, embed])
        assert h["argsrepr"] == repr([s])
        assert h["kwargsrepr"] == repr({"routing_key": topics.capture})

        # payload string: ensure_ascii JSON, ", " / ": " separators, the
        # payload's members then _tchu_meta last (is_rpc, version, correlation_id)
        assert s.isascii()
        decoded = json.loads(s)
        assert list(decoded)[-1] == "_tchu_meta"
        got_payload, got_meta = without_meta(decoded)
        assert canonical(got_payload) == canonical(src)
        assert got_meta == meta and list(got_meta) == list(meta)
        assert json.dumps(decoded) == s           # byte-identical to Python's dumps
        if event_id == e1:
            assert "Zo\\u00eb \\u2603 \\ud83d\\ude00" in s

    # Both copies of an event carry the same payload string.
    for e in (e1, e2):
        assert by_id[e].body == by_id[tchu_task_id(e)].body


def test_tchu_task_id_is_uuid5_of_event_id():
    """The derivation message.c documents (SHA-1 over the namespace's 16
    bytes then the task name, version 5, RFC 4122 variant) is uuid.uuid5."""
    import hashlib
    ns = uuid.UUID("6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f")
    digest = bytearray(hashlib.sha1(ns.bytes + TCHU_TASK.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    assert str(uuid.UUID(bytes=bytes(digest))) == tchu_task_id(str(ns))
