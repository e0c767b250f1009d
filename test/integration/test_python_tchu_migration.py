"""``celerysalt-pg migrate-follow-rules`` on rules stored the TchuFollowActions
way (issue 14, item 4).

A module written to tmp_path (the "project") defines a celery-salt 1.6.0
SaltEvent subclass, an ``@celery_salt.event`` class, a custom event class with
a converter for it, and a class nobody converts.  Rows hold rules as the
original helper stored them: base64 of ``pickle.dumps(event instance)`` with
field_name, operator, value, event_authorization, payload and persist.  The
real command runs as a subprocess from the project's directory:

- ``--dry-run`` reports and changes nothing;
- a run with unconvertible rules converts the rest, checks them, writes them,
  reports each rule left (row key, index, reason), exits 1 and does not attach;
- after the bad rules are removed, a second run exits 0 and attaches the
  trigger; an UPDATE then fires the converted rules and the broker confirms
  the events (topic, version and payload from the event, persist kept);
- another table holding a pickle that would leave a marker file if it were
  ever unpickled is never read.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import uuid

import pytest

pytest.importorskip("celery_salt")

EVENTS_MODULE = '''
from pathlib import Path

from pydantic import BaseModel

from celery_salt import SaltEvent, event


class OrderPaid(SaltEvent):
    class Schema(BaseModel):
        order_id: int
        note: str

    class Meta:
        topic = "{prefix}.paid"
        version = "v2"
        auto_register = False


@event("{prefix}.shipped")
class OrderShipped:
    order_id: int
    carrier: str = "post"


class LegacyEvent:
    """Not a celery-salt event: converted by convert() below."""

    def __init__(self, routing_key, data):
        self.routing_key = routing_key
        self.data = data


class Unconvertible:
    pass


def convert(ev):
    if isinstance(ev, LegacyEvent):
        return {{"topic": ev.routing_key, "payload": ev.data, "version": "v1"}}
    return None


def leave_marker(path):
    Path(path).write_text("unpickled")
    return Unconvertible()


class Marker:
    """Unpickling one of these writes a file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (leave_marker, (self.path,))
'''


@pytest.fixture
def project(tmp_path, run_id, monkeypatch):
    prefix = f"csit.{run_id}.tchu"
    mod_name = f"shop_events_{run_id}"
    (tmp_path / f"{mod_name}.py").write_text(textwrap.dedent(EVENTS_MODULE.format(prefix=prefix)))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = __import__(mod_name)
    yield tmp_path, module, prefix
    sys.modules.pop(mod_name, None)


def old_rule(ev, field_name="status", operator="eql", value=None, persist="True",
             event_authorization=None, payload=None) -> dict:
    """What TchuFollowActions.add_follow_action_rule stored (docs/follow-actions.md)."""
    return {"field_name": field_name, "operator": operator, "value": value,
            "event": base64.b64encode(pickle.dumps(ev)).decode(),
            "event_authorization": event_authorization, "payload": payload, "persist": persist}


def run_command(pg, cwd, *args):
    exe = shutil.which("celerysalt-pg")
    cmd = [exe] if exe else [sys.executable, "-m", "celerysalt_pg"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(cmd + ["migrate-follow-rules", "--dsn", pg.dsn, *args], cwd=str(cwd), env=env,
                          capture_output=True, text=True, timeout=120)


def rules_of(pg, table):
    return {r[0]: r[1] for r in pg.execute(f"SELECT id, on_change_rules FROM {table} ORDER BY id")}


def is_attached(pg, table) -> bool:
    return bool(pg.scalar("SELECT count(*) FROM celerysalt_follow_action_tables WHERE table_name = %s::regclass",
                          (table,)))


def test_migrate_follow_rules_command(pg, amqp, run_id, project):
    cwd, ev, prefix = project
    table, other = f"csit_tchu_orders_{run_id}", f"csit_tchu_other_{run_id}"
    marker = cwd / "MARKER"
    for t in (table, other):
        pg.execute(f"CREATE TABLE {t} (id int PRIMARY KEY, status text NOT NULL,"
                   " on_change_rules jsonb NOT NULL DEFAULT '[]')")
    try:
        rows = {
            1: [old_rule(ev.OrderPaid(order_id=1, note="first"), value=["paid"], persist="False",
                         event_authorization={"user_id": 7}, payload={"source": "legacy"})],
            2: [old_rule(ev.LegacyEvent(f"{prefix}.legacy", {"order_id": 2, "why": {"$new": "x"}}),
                         operator="updated"),
                old_rule(ev.OrderShipped(), field_name="status", operator="changed_to", value="shipped")],
            3: [old_rule(ev.Unconvertible(), operator="updated"),
                old_rule(ev.OrderPaid(order_id=3, note="third"), operator="updated", persist="ForceFalse")],
            4: [{**old_rule(ev.Unconvertible()), "event": base64.b64encode(
                pickle.dumps(ev.Unconvertible()).replace(ev.__name__.encode(), b"z" * len(ev.__name__))).decode()}],
            5: [],
        }
        rows[2][1]["event"] = base64.b64encode(pickle.dumps(_shipped(ev))).decode()
        for pk, rules in rows.items():
            pg.execute(f"INSERT INTO {table} VALUES (%s, 'new', %s::jsonb)", (pk, json.dumps(rules)))
        other_rules = [old_rule(ev.Marker(str(marker)))]
        pg.execute(f"INSERT INTO {other} VALUES (1, 'new', %s::jsonb)", (json.dumps(other_rules),))
        before = rules_of(pg, table)

        # a dry run reports and writes nothing
        dry = run_command(pg, cwd, "--table", table, "--converter", f"{ev.__name__}:convert", "--dry-run")
        assert dry.returncode == 1, dry.stdout + dry.stderr
        assert "dry run:" in dry.stdout
        assert rules_of(pg, table) == before and not is_attached(pg, table)

        # migrate_rules() in the caller's transaction (a Django data migration): batches are savepoints
        from celerysalt_pg.tchu_migration import migrate_rules
        with pg.connect(autocommit=False) as conn:
            report = migrate_rules(conn, table, converter=ev.convert, batch_size=1)
            assert (report.rules_converted, len(report.problems), report.attached) == (4, 2, False)
            assert conn.execute(f"SELECT on_change_rules->0->>'topic' FROM {table} WHERE id = 1"
                                ).fetchone()[0] == f"{prefix}.paid"
            conn.rollback()
        assert rules_of(pg, table) == before and not is_attached(pg, table)

        # some rules cannot be converted: the rest are, the run fails, nothing is attached
        first = run_command(pg, cwd, "--table", table, "--converter", f"{ev.__name__}:convert",
                            "--batch-size", "2")
        assert first.returncode == 1, first.stdout + first.stderr
        left = [line for line in first.stdout.splitlines() if line.startswith("not converted:")]
        assert len(left) == 2, first.stdout
        assert left[0].startswith('not converted: row {"id": 3} rule 0: no converter understands')
        assert "Unconvertible" in left[0]
        assert left[1].startswith('not converted: row {"id": 4} rule 0: could not unpickle the event')
        assert "4 rule(s) converted" in first.stdout and "2 left" in first.stdout
        assert "event_authorization dropped: 1" in first.stdout and "trigger not attached" in first.stdout
        assert not is_attached(pg, table)

        after = rules_of(pg, table)
        assert after[1] == [{"field_name": "status", "operator": "eql", "value": ["paid"],
                             "topic": f"{prefix}.paid", "version": "v2", "persist": "False",
                             "payload": {"order_id": 1, "note": "first", "source": "legacy"}}]
        assert after[2] == [
            {"field_name": "status", "operator": "updated", "value": None, "topic": f"{prefix}.legacy",
             "version": "v1", "persist": "True",
             "payload": {"order_id": 2, "why": {"$literal": {"$new": "x"}}}},
            {"field_name": "status", "operator": "changed_to", "value": "shipped", "topic": f"{prefix}.shipped",
             "version": "v1", "persist": "True", "payload": {"order_id": 2, "carrier": "ups"}}]
        assert after[3][0] == before[3][0], "a rule nobody converted is left as it was"
        assert after[3][1]["topic"] == f"{prefix}.paid" and after[3][1]["persist"] == "ForceFalse"
        assert after[4] == before[4] and after[5] == []

        # the application fixes what was reported; the second run attaches
        pg.execute(f"UPDATE {table} SET on_change_rules = on_change_rules - 0 WHERE id IN (3, 4)")
        second = run_command(pg, cwd, "--table", table)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "0 rule(s) converted, 4 already celerysalt rules, 0 left" in second.stdout
        assert "trigger attached" in second.stdout
        assert is_attached(pg, table)

        # the converted rules fire (a subscriber's queue receives them: events
        # no queue is bound for would wait in celerysalt_unroutable)
        amqp.declare_queue(f"csit_tchu_mig_{run_id}_{uuid.uuid4().hex[:6]}", [f"{prefix}.#"])
        pg.execute(f"UPDATE {table} SET status = 'paid' WHERE id = 1")
        pg.execute(f"UPDATE {table} SET status = 'shipped' WHERE id = 2")
        pg.execute(f"UPDATE {table} SET status = 'gone' WHERE id = 3")
        assert pg.wait_delivered_payloads(f"{prefix}.paid", 2) == [
            {"order_id": 1, "note": "first", "source": "legacy"}, {"order_id": 3, "note": "third"}]
        assert pg.wait_delivered_payloads(f"{prefix}.legacy", 1) == [{"order_id": 2, "why": {"$new": "x"}}]
        assert pg.wait_delivered_payloads(f"{prefix}.shipped", 1) == [{"order_id": 2, "carrier": "ups"}]
        assert pg.execute("SELECT topic, version FROM celerysalt_events WHERE topic LIKE %s ORDER BY event_id",
                          (f"{prefix}.%",)) == [(f"{prefix}.paid", "v2"), (f"{prefix}.legacy", "v1"),
                                                (f"{prefix}.shipped", "v1"), (f"{prefix}.paid", "v2")]
        final = rules_of(pg, table)
        assert final[1] == [] and final[3] == [], "persist False and ForceFalse rules were removed"

        # the other table was never read: nothing unpickled, nothing changed, nothing attached
        assert not marker.exists()
        assert rules_of(pg, other)[1] == other_rules and not is_attached(pg, other)
    finally:
        for t in (table, other):
            pg.execute(f"DROP TABLE IF EXISTS {t}")


def _shipped(ev):
    shipped = ev.OrderShipped()
    shipped.order_id = 2
    shipped.carrier = "ups"
    return shipped
