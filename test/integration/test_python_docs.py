"""docs/python.md's consumer guide, run as written (issue 15 item 7).

The guide's fenced blocks with an info string are the test's script:

  ```ini conf            postgresql.conf of the throwaway cluster (its broker
                         and Redis URLs replaced by the rig's)
  ```sql step:register   run before the services start
  ```python service:NAME written to NAME.py and started as `celery -A NAME
                         worker` with BROKER_URL, RESULT_BACKEND (the Redis
                         URL the cluster's celerysalt.redis_url names) and
                         CELERYSALT_DSN in its environment
  ```sql step:publish    run once both services are ready: each handler must
                         run once per event, and neither worker may log
                         "Received unregistered task" or a traceback
  ```sql step:call       run in one session; a statement ending in
                         `-- <json>` must return that JSON

Topic and queue names are made unique to the run (the broker is shared):
every quoted occurrence of a name in NAMES is replaced, in Python and SQL.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import rig

DOC = Path(__file__).resolve().parents[2] / "docs" / "python.md"
NAMES = ("invoice.paid", "shipping.quote", "ledger.balance", "shipping", "ledger")
SERVICE_OF_LINE = {"shipping": "shipping invoice {}", "ledger": "ledger booked invoice {}"}
FOREIGN_TASK = {"shipping": rig.TCHU_TASK, "ledger": rig.SALT_TASK}


def tchu_task_id(event_id: str) -> str:
    """The tchu-tchu copy's task id (test_consumer_compat.py)."""
    return str(uuid.uuid5(uuid.UUID(event_id), rig.TCHU_TASK))


def blocks(text: str) -> list[tuple[str, str, str]]:
    """(language, info, body) of every fenced block that has an info string."""
    return [(m[1], m[2].strip(), m[3]) for m in re.finditer(r"^```(\w+)[ \t]+(\S[^\n]*)\n(.*?)^```[ \t]*$",
                                                             text, re.M | re.S)]


def rename(body: str, names: dict[str, str]) -> str:
    for old, new in names.items():
        body = re.sub(r"([\"'])" + re.escape(old) + r"\1", lambda m: m[1] + new + m[1], body)
    return body


def statements(sql: str) -> list[tuple[str, str | None]]:
    """(statement, trailing `-- comment` or None) of a block."""
    return [(m[1].strip(), m[2]) for m in re.finditer(r"(.*?);[ \t]*(?:--[ \t]*(.*?))?[ \t]*$", sql, re.M | re.S)
            if m[1].strip()]


def conf_settings(body: str) -> dict[str, str]:
    out = {}
    for line in body.splitlines():
        m = re.match(r"\s*([\w.]+)\s*=\s*'(.*)'", line)
        if m:
            out[m[1]] = m[2]
    return out


def test_consumer_guide(pg_factory, worker_factory, amqp, salt_results, run_id, tmp_path):
    text = DOC.read_text()
    found = blocks(text)
    tag = uuid.uuid4().hex[:6]
    names = {n: (f"csit.{run_id}.{tag}.{n}" if "." in n else f"csit_docs_{n}_{tag}") for n in NAMES}
    for n in NAMES:
        assert re.search(r"[\"']" + re.escape(n) + r"[\"']", text), f"{n!r} no longer quoted in {DOC.name}"
    by_info: dict[str, list[str]] = {}
    for lang, info, body in found:
        # `norun` is for test/t/070_docs_sql.pl (step:call needs these services)
        info = " ".join(w for w in info.split() if w != "norun")
        by_info.setdefault(f"{lang} {info}", []).append(rename(body, names))
    services = {info.split(":", 1)[1]: rename(body, names) for lang, info, body in found
                if lang == "python" and info.startswith("service:")}
    assert set(services) == {"shipping", "ledger"}, sorted(by_info)

    # the cluster as the guide configures it, on the rig's broker and Redis
    (conf_body,) = by_info["ini conf"]
    conf = conf_settings(conf_body)
    assert {t.strip() for t in conf["celerysalt.dispatcher_tasks"].split(",")} == {rig.SALT_TASK, rig.TCHU_TASK}
    conf.update({"celerysalt.broker_url": rig.EXT_BROKER_URL, "celerysalt.redis_url": salt_results.url})
    cluster = pg_factory(conf=conf)
    cluster.wait_worker()
    for body in by_info["sql step:register"]:
        for stmt, _ in statements(body):
            cluster.execute(stmt)

    # the services, written out and started as real workers
    src = tmp_path / "docs_services"
    src.mkdir()
    workers = {}
    for name, code in services.items():
        (src / f"{name}.py").write_text(code)
        amqp.track(names[name])
        workers[name] = worker_factory(name, {
            "PYTHONPATH": str(src),
            "BROKER_URL": rig.BROKER_URL,
            "RESULT_BACKEND": salt_results.url,
            "CELERYSALT_DSN": cluster.dsn,
        }, name=f"docs-{name}-{tag}")
    events: list = []
    try:
        _publish_and_call(cluster, workers, by_info, names, events)
    finally:
        _forget_results(salt_results, run_id, [e for e, _ in events])


def _publish_and_call(cluster, workers, by_info, names, events):
    topic = names["invoice.paid"]
    assert sorted(cluster.execute("SELECT service FROM celerysalt_subscribers WHERE topic = %s", [topic])) == \
        sorted([(names["shipping"],), (names["ledger"],)])

    for body in by_info["sql step:publish"]:
        for stmt, _ in statements(body):
            payload = json.loads(re.search(r"'(\{.*\})'", stmt)[1])
            events.append((cluster.scalar(stmt.replace("SELECT ", "SELECT (", 1) + ")::text"), payload))
    assert len(events) >= 2
    cluster.wait_delivered([e for e, _ in events])

    def lines(worker, pattern):
        return worker.log_text().count(pattern)

    for name, worker in workers.items():
        for eid, payload in events:
            line = SERVICE_OF_LINE[name].format(payload["invoice_id"])
            rig.wait_until(lambda: lines(worker, line) >= 1, 30, f"{line!r} in {worker.name}'s log",
                           on_timeout=lambda: rig.tail(worker.log_file))
            # the other library's copy of the event: acknowledged by the no-op alias
            foreign_id = eid if FOREIGN_TASK[name] == rig.SALT_TASK else tchu_task_id(eid)
            rig.wait_until(lambda: f"{FOREIGN_TASK[name]}[{foreign_id}] succeeded" in worker.log_text(), 30,
                           f"{worker.name} to ack the {FOREIGN_TASK[name]} copy",
                           on_timeout=lambda: rig.tail(worker.log_file))
    for name, worker in workers.items():
        log = worker.log_text()
        for _, payload in events:
            line = SERVICE_OF_LINE[name].format(payload["invoice_id"]) + "\n"
            assert lines(worker, line) == 1, rig.tail(worker.log_file)
        assert "Received unregistered task" not in log, rig.tail(worker.log_file)
        assert "Traceback" not in log, rig.tail(worker.log_file)

    calls = 0
    with cluster.connect() as conn:
        for body in by_info["sql step:call"]:
            for stmt, comment in statements(body):
                row = conn.execute(stmt).fetchone() if stmt.upper().startswith("SELECT") else conn.execute(stmt)
                if comment is not None:
                    assert row[0] == json.loads(comment), stmt
                    calls += 1
    assert calls >= 2


def _forget_results(results, run_id, event_ids):
    """Drop the guide's result records (the Redis server is shared): those of
    the events' copies and handler tasks, and those naming the run's topics
    (the RPC calls)."""
    ids = [i.encode() for e in event_ids for i in (e, tchu_task_id(e))]
    for key in results.client.scan_iter(match="celery-task-meta-*", count=1000):
        value = results.client.get(key) or b""
        if run_id.encode() in value or any(i in key for i in ids):
            results.client.delete(key)
