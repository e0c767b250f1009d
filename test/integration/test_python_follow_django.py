"""celerysalt_pg.django on a real Django 4.2 project (issue 14, items 3 and 4).

The project in django_shop/ (settings, an app with a model using
FollowActionsMixin, a migration creating the table and one attaching the
trigger with AttachFollowActions) runs against the rig's cluster in its own
processes, as an application does:

- ``migrate --database migrations`` as a migration role (celerysalt_publisher,
  CREATE on public) that then owns the table; the role granted the table's
  privileges is a plain LOGIN role in celerysalt_publisher that owns nothing;
- the migration is reversible (``migrate shop 0001`` detaches) and
  ``sqlmigrate`` shows the SQL;
- django_shop/scenario.py, as the plain role, adds rules through the mixin and
  changes rows with save(), save(update_fields=...), QuerySet.update() and
  bulk_update(), asserting that fired persist False rules are gone and that no
  later save() of a fresh or stale instance writes them back;
- here: every event the scenario should have caused is confirmed by the
  broker (celerysalt_events) and reaches a queue bound to its topic, once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytest.importorskip("django")

PROJECT = Path(__file__).resolve().parent / "django_shop"


@pytest.fixture(scope="module")
def roles(pg, run_id):
    migrator, app = f"csit_dj_migrator_{run_id}", f"csit_dj_app_{run_id}"
    pg.execute(f"CREATE ROLE {migrator} LOGIN IN ROLE celerysalt_publisher")
    pg.execute(f"CREATE ROLE {app} LOGIN IN ROLE celerysalt_publisher")
    pg.execute(f"GRANT CREATE ON SCHEMA public TO {migrator}, {app}")
    yield migrator, app
    for table in ("shop_order", "django_migrations"):
        pg.execute(f"DROP TABLE IF EXISTS {table}")
    for role in (app, migrator):
        pg.execute(f"REVOKE ALL ON SCHEMA public FROM {role}")
        pg.execute(f"DROP ROLE {role}")


def django_run(pg, roles, topic_prefix: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    migrator, app = roles
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8", "PYTHONPATH": str(PROJECT), "PYTHONDONTWRITEBYTECODE": "1",
        "DJANGO_SETTINGS_MODULE": "shopsite.settings",
        "CSIT_DJANGO_DBNAME": pg.dbname, "CSIT_DJANGO_HOST": str(pg.sock_dir),
        "CSIT_DJANGO_PORT": str(pg.port), "CSIT_DJANGO_APP_USER": app, "CSIT_DJANGO_MIGRATOR": migrator,
        "CSIT_TOPIC_PREFIX": topic_prefix,
    }
    proc = subprocess.run([sys.executable, *args], env=env, cwd=str(PROJECT), capture_output=True,
                          text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def attached(pg) -> bool:
    return bool(pg.scalar("SELECT count(*) FROM celerysalt_follow_action_tables"
                          " WHERE table_name = 'shop_order'::regclass"))


def test_django_project_as_application_role(pg, amqp, run_id, roles):
    migrator, app = roles
    prefix = f"csit.{run_id}.dj"
    names = ["paid", "big", "shipped", "repriced"]
    topics = {n: f"{prefix}.{n}" for n in names}
    per_event = len([t for t in pg.scalar("SHOW celerysalt.dispatcher_tasks").split(",") if t.strip()])
    queue = amqp.declare_queue(f"csit_dj_{run_id}_{uuid.uuid4().hex[:6]}", topics.values())

    # the migrations, as the migration role; reversible
    django_run(pg, roles, prefix, "-m", "django", "migrate", "--database", "migrations", "-v", "0")
    assert pg.scalar("SELECT tableowner FROM pg_tables WHERE tablename = 'shop_order'") == migrator
    assert attached(pg)
    sql = django_run(pg, roles, prefix, "-m", "django", "sqlmigrate", "--database", "migrations",
                     "shop", "0002").stdout
    assert "SELECT celerysalt_attach_follow_actions(" in sql and "shop_order" in sql, sql
    django_run(pg, roles, prefix, "-m", "django", "migrate", "--database", "migrations", "shop", "0001",
               "-v", "0")
    assert not attached(pg), "reversing AttachFollowActions detaches"
    django_run(pg, roles, prefix, "-m", "django", "migrate", "--database", "migrations", "-v", "0")
    assert attached(pg)

    # the application role: its table's privileges and celerysalt_publisher, nothing else
    pg.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON shop_order TO {app}")
    assert pg.scalar("SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = %s",
                     (app,)) is False
    assert pg.scalar("SELECT count(*) FROM pg_class WHERE relowner = %s::regrole", (app,)) == 0

    out = django_run(pg, roles, prefix, "scenario.py").stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["user"] == app
    assert "no_such_column" in result["refused"]

    # every event the scenario caused, confirmed by the broker
    [paid] = pg.wait_delivered_payloads(topics["paid"], 1)
    assert paid == {"order_id": result["order"], "from": "new", "amount": 10.00}
    [big] = pg.wait_delivered_payloads(topics["big"], 1)
    assert big == {"order_id": result["order"], "amount": 150.00}
    shipped = pg.wait_delivered_payloads(topics["shipped"], 5)
    assert sorted(e["pk"] for e in shipped) == sorted(result["ids"])
    assert all(e["old"] == "paid" and e["new"] == "shipped" for e in shipped)
    repriced = pg.wait_delivered_payloads(topics["repriced"], 5)
    assert sorted(e["order_id"] for e in repriced) == sorted(result["ids"])

    # ... and delivered to a queue bound to the topics, each event once
    expected = {"paid": 1, "big": 1, "shipped": 5, "repriced": 5}
    messages = amqp.get_many(queue, sum(expected.values()) * per_event, timeout=30)
    keys = sorted(m.delivery_info["routing_key"] for m in messages)
    assert keys == sorted(topics[n] for n, c in expected.items() for _ in range(c * per_event))
    pg.wait_idle()
    for name, count in expected.items():
        assert len(pg.delivered_payloads(topics[name])) == count, name
    assert amqp.channel.basic_get(queue=queue, no_ack=True) is None
    assert pg.scalar("SELECT on_change_rules FROM shop_order WHERE id = %s", (result["order"],)) == []
