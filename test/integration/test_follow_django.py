"""Follow actions through Django's ORM (issue 5).

A Django model with an ``on_change_rules`` JSONField on the rig's cluster,
rules built by ``celerysalt_follow_action_rule()`` and stored through the ORM,
then the row changed with ``instance.save()`` and with
``Model.objects.filter(...).update(...)`` (one SQL UPDATE, no save() at all):
every matching row publishes its event in the UPDATE's transaction, the
broker confirms it (``celerysalt_events``) and a queue bound to the topic
receives it.  A rolled-back ``transaction.atomic()`` block publishes nothing.
"""

from __future__ import annotations

import json
import uuid

import pytest

django = pytest.importorskip("django")

from django.conf import settings  # noqa: E402


def _configure(pg) -> None:
    db = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": pg.dbname,
        "USER": "postgres",
        "HOST": str(pg.sock_dir),
        "PORT": str(pg.port),
        "CONN_MAX_AGE": 0,
    }
    if not settings.configured:
        settings.configure(DATABASES={"default": db}, INSTALLED_APPS=[], USE_TZ=True,
                           DEFAULT_AUTO_FIELD="django.db.models.BigAutoField")
        django.setup()
    else:  # another test module configured Django first: point it at this cluster
        from django.db import connections
        connections["default"].close()
        settings.DATABASES["default"].update(db)


@pytest.fixture(scope="module")
def order_model(pg, run_id):
    _configure(pg)
    from django.db import connection, models

    table = f"csit_follow_order_{run_id}"

    class Order(models.Model):
        status = models.CharField(max_length=20)
        amount = models.DecimalField(max_digits=10, decimal_places=2)
        on_change_rules = models.JSONField(default=list)

        class Meta:
            app_label = f"follow_{run_id}"
            db_table = table

    with connection.schema_editor() as editor:
        editor.create_model(Order)
    with connection.cursor() as c:
        c.execute("SELECT celerysalt_attach_follow_actions(%s)", [table])
    yield Order
    with connection.cursor() as c:
        c.execute(f'DROP TABLE "{table}"')
    connection.close()


def follow_rule(field: str, operator: str, topic: str, value=None, payload=None,
                persist: str = "True", table: str | None = None) -> dict:
    """The helper an application would write: build and check a rule in SQL."""
    from django.db import connection
    with connection.cursor() as c:
        c.execute("SELECT celerysalt_follow_action_rule(%s, %s, %s, %s::jsonb, %s::jsonb,"
                  " persist => %s, tbl => %s::regclass)",
                  [field, operator, topic,
                   None if value is None else json.dumps(value),
                   None if payload is None else json.dumps(payload), persist, table])
        rule = c.fetchone()[0]
    return json.loads(rule) if isinstance(rule, str) else rule


def dispatcher_count(pg) -> int:
    return len([t for t in pg.scalar("SHOW celerysalt.dispatcher_tasks").split(",") if t.strip()])


def test_save_and_queryset_update_publish(pg, amqp, run_id, order_model):
    from django.db import transaction

    Order = order_model
    table = Order._meta.db_table
    topic_paid = f"csit.{run_id}.follow.paid"
    topic_shipped = f"csit.{run_id}.follow.shipped"
    topic_void = f"csit.{run_id}.follow.void"
    queue = amqp.declare_queue(f"csit_follow_{run_id}_{uuid.uuid4().hex[:6]}",
                               [topic_paid, topic_shipped, topic_void])

    # instance.save(): a persist "False" rule added through the helper and the ORM
    order = Order.objects.create(status="new", amount="10.00")
    paid_rule = follow_rule("status", "changed_to", topic_paid, "paid",
                            payload={"order_id": {"$pk": True}, "from": {"$old": "status"},
                                     "amount": {"$new": "amount"}},
                            persist="False", table=table)
    Order.objects.filter(pk=order.pk).update(on_change_rules=[paid_rule])
    order.refresh_from_db()
    assert order.on_change_rules == [paid_rule]

    order.status = "paid"
    order.save()
    [event] = pg.wait_delivered_payloads(topic_paid, 1)
    assert event == {"order_id": order.pk, "from": "new", "amount": 10.00}
    order.refresh_from_db()
    assert order.on_change_rules == [], "the trigger removed the fired persist False rule in the same UPDATE"

    # a second save() does not fire the removed rule again
    order.status = "new"
    order.save(update_fields=["status"])
    order.status = "paid"
    order.save(update_fields=["status"])

    # QuerySet.update(): one UPDATE statement, every matching row fires
    shipped_rule = follow_rule("status", "eql", topic_shipped, ["shipped"], table=table)
    orders = Order.objects.bulk_create(
        [Order(status="paid", amount=i, on_change_rules=[shipped_rule]) for i in range(1, 21)])
    ids = [o.pk for o in orders]
    updated = Order.objects.filter(pk__in=ids[:15]).update(status="shipped")
    assert updated == 15
    events = pg.wait_delivered_payloads(topic_shipped, 15)
    assert sorted(e["pk"] for e in events) == sorted(ids[:15])
    assert all(e["old"] == "paid" and e["new"] == "shipped" and e["field"] == "status" for e in events)
    assert all(e["table"].endswith("." + table) for e in events)

    # a rolled-back transaction.atomic() block publishes nothing
    void_rule = follow_rule("status", "updated", topic_void, table=table)
    Order.objects.filter(pk__in=ids[15:]).update(on_change_rules=[void_rule])
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            Order.objects.filter(pk__in=ids[15:]).update(status="void")
            raise RuntimeError("roll back")
    # the queue receives the confirmed events: one message per event and dispatcher task
    per_event = dispatcher_count(pg)
    messages = amqp.get_many(queue, (1 + 15) * per_event, timeout=30)
    keys = sorted(m.delivery_info["routing_key"] for m in messages)
    assert keys == sorted([topic_paid] * per_event + [topic_shipped] * 15 * per_event)
    assert pg.scalar("SELECT count(*) FROM celerysalt_events WHERE topic = %s", (topic_void,)) == 0
    assert pg.scalar("SELECT count(*) FROM _celerysalt_outbox WHERE topic = %s", (topic_void,)) == 0
    assert pg.delivered_payloads(topic_paid) == [event], "the removed rule never fired again"
    assert amqp.channel.basic_get(queue=queue, no_ack=True) is None
