"""The application side of test_python_follow_django.py, run as a process of
the Django project (DJANGO_SETTINGS_MODULE=shopsite.settings) connected as
the plain application role.

Adds rules with FollowActionsMixin and changes orders with save(),
save(update_fields=...), QuerySet.update() and bulk_update(); asserts what the
ORM sees (fired persist False rules gone, never written back by a later
save() of a fresh or a stale instance); prints the ids and rules the test
then checks against the events the broker confirmed.  Topics start with
CSIT_TOPIC_PREFIX.
"""

import json
import os
import sys

import django

django.setup()

from django.db import DatabaseError, connection  # noqa: E402

from shop.models import Order  # noqa: E402

P = os.environ["CSIT_TOPIC_PREFIX"]


def db_rules(pk):
    """The rules column as the database holds it (not through the instance)."""
    with connection.cursor() as c:
        c.execute("SELECT on_change_rules::text FROM shop_order WHERE id = %s", [pk])
        return json.loads(c.fetchone()[0])


def main():
    with connection.cursor() as c:
        c.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
        user, superuser = c.fetchone()
    assert not superuser

    # -- save(): a persist False rule appended by the mixin fires once
    order = Order.objects.create(status="new", amount="10.00")
    paid = order.add_follow_action_rule(
        "status", "changed_to", f"{P}.paid", value="paid", persist="False",
        payload={"order_id": {"$pk": True}, "from": {"$old": "status"}, "amount": {"$new": "amount"}})
    assert order.on_change_rules == [paid] == db_rules(order.pk)
    stale = Order.objects.get(pk=order.pk)          # another request's copy, with the rule

    order.status = "paid"
    order.save()                                    # fires; the trigger removes the rule
    assert db_rules(order.pk) == []
    assert order.on_change_rules == [paid]          # the instance is stale now...
    order.amount = "11.00"
    order.save()                                    # ...and save() does not write it back
    assert db_rules(order.pk) == []
    stale.amount = "12.00"
    stale.save()                                    # nor does the other stale copy
    assert db_rules(order.pk) == []
    stale.status = "paid"
    stale.save()                                    # a second paid transition: nothing left to fire
    assert db_rules(order.pk) == []

    # -- save(update_fields=...)
    order.refresh_from_db()
    assert order.on_change_rules == []
    big = order.add_follow_action_rule("amount", "gt", f"{P}.big", value=100,
                                       payload={"order_id": {"$pk": True}, "amount": {"$new": "amount"}})
    order.amount = "150.00"
    order.save(update_fields=["amount"])            # fires, the rule stays (persist True)
    assert db_rules(order.pk) == [big]

    # -- rules changed on purpose through the instance are saved
    order.on_change_rules = []
    assert order.follow_rules_changed()
    order.save()
    assert db_rules(order.pk) == []

    # -- a rule the database refuses is never stored
    try:
        order.add_follow_action_rule("no_such_column", "eql", f"{P}.never", value=1)
    except DatabaseError as exc:
        refused = str(exc).splitlines()[0]
    else:
        raise AssertionError("a rule on a missing column was accepted")
    assert db_rules(order.pk) == []

    # -- rows created with rules; QuerySet.update() and bulk_update()
    shipped = Order.follow_action_rule("status", "eql", f"{P}.shipped", value="shipped")
    repriced = Order.follow_action_rule("amount", "updated", f"{P}.repriced", persist="False",
                                        payload={"order_id": {"$pk": True}, "amount": {"$new": "amount"}})
    created = Order.objects.bulk_create(
        [Order(status="paid", amount=i, on_change_rules=[shipped, repriced]) for i in range(1, 6)])
    ids = [o.pk for o in created]
    loaded = list(Order.objects.filter(pk__in=ids).order_by("pk"))
    assert Order.objects.filter(pk__in=ids).update(status="shipped") == 5    # 5 x shipped
    for o in loaded:
        o.amount += 1
    Order.objects.bulk_update(loaded, ["amount"])                             # 5 x repriced, removed
    assert all(db_rules(pk) == [shipped] for pk in ids)
    loaded[0].amount += 1
    loaded[0].save()                    # stale: holds both rules, status "paid"; writes neither rule
    assert db_rules(ids[0]) == [shipped], db_rules(ids[0])
    loaded[1].refresh_from_db()
    assert loaded[1].on_change_rules == [shipped] and not loaded[1].follow_rules_changed()

    print(json.dumps({"user": user, "order": order.pk, "ids": ids, "rules": {
        "paid": paid, "big": big, "shipped": shipped, "repriced": repriced}, "refused": refused}))


if __name__ == "__main__":
    main()
    sys.exit(0)
