"""Converting TchuFollowActions rules, without a database (tchu_migration)."""

import base64
import pickle

import pytest

from celerysalt_pg import tchu_migration as tm
from celerysalt_pg.follow import quote_table

celery_salt = pytest.importorskip("celery_salt")
from pydantic import BaseModel  # noqa: E402


class Paid(celery_salt.SaltEvent):
    class Schema(BaseModel):
        order_id: int

    class Meta:
        topic = "unit.order.paid"
        version = "v3"
        auto_register = False


class Custom:
    def __init__(self, topic):
        self.topic = topic


def old(ev, **kw):
    rule = {"field_name": "status", "operator": "eql", "value": "paid",
            "event": base64.b64encode(pickle.dumps(ev)).decode(),
            "event_authorization": None, "payload": None, "persist": "False"}
    rule.update(kw)
    return rule


def test_plain_pickle_cannot_restore_a_salt_event_but_the_command_can():
    data = pickle.dumps(Paid(order_id=1))
    with pytest.raises(RecursionError):
        pickle.loads(data)
    restored = tm.unpickle_event(base64.b64encode(data).decode())
    assert isinstance(restored, Paid) and restored.data.order_id == 1


def test_salt_event_converted_with_stored_payload_on_top():
    new, notes = tm.convert_rule(old(Paid(order_id=5), payload={"source": "x", "order_id": 9},
                                     event_authorization={"user": 1}))
    assert new == {"field_name": "status", "operator": "eql", "value": "paid", "topic": "unit.order.paid",
                   "version": "v3", "persist": "False", "payload": {"order_id": 9, "source": "x"}}
    assert notes == ["event_authorization dropped"]


def test_user_converter_first_then_builtin_then_reported():
    def conv(ev):
        return {"topic": ev.topic} if isinstance(ev, Custom) else None
    new, _ = tm.convert_rule(old(Custom("unit.custom")), conv)
    assert new["topic"] == "unit.custom" and "payload" not in new and "version" not in new
    assert tm.convert_rule(old(Paid(order_id=1)), conv)[0]["topic"] == "unit.order.paid"
    with pytest.raises(tm.ConversionError, match="no converter understands .*Custom.*--converter"):
        tm.convert_rule(old(Custom("unit.custom")))
    with pytest.raises(tm.ConversionError, match="expected a dict"):
        tm.convert_rule(old(Custom("x")), lambda ev: {"topic": "t", "routing": 1})


def test_shapes_refused_or_kept():
    native = {"field_name": "status", "operator": "updated", "topic": "t"}
    assert tm.convert_rule(native) == (native, [])
    with pytest.raises(tm.ConversionError, match="unknown members"):
        tm.convert_rule(dict(old(Paid(order_id=1)), persit="True"))
    with pytest.raises(tm.ConversionError, match="could not unpickle"):
        tm.convert_rule(old(Paid(order_id=1), event="bm90IGEgcGlja2xl"))
    with pytest.raises(tm.ConversionError, match="not an object"):
        tm.convert_rule(["status"])


def test_event_data_never_reads_as_a_placeholder():
    assert tm._literal_safe({"a": {"$new": "x"}, "b": [{"$pk": True}], "c": {"$x": 1, "y": 2}}) == \
        {"a": {"$literal": {"$new": "x"}}, "b": [{"$literal": {"$pk": True}}], "c": {"$x": 1, "y": 2}}


def test_load_converter_spec():
    assert tm.load_converter("celerysalt_pg.tchu_migration:celery_salt_converter") is tm.celery_salt_converter
    with pytest.raises(ValueError):
        tm.load_converter("no_colon")


def test_quote_table():
    assert quote_table('Or"der', "shop") == '"shop"."Or""der"'
