"""Schema registry round trip with real pydantic v2 (docs/registry.md).

A "publisher service" registers its models' model_json_schema(); a
"subscriber service" that never imports the publisher's code generates
models with celerysalt_pydantic_model().  The generated code must import,
and its models must accept and reject the same sample payloads as the
registered schema does (celerysalt_validate_event, formats asserted), which
is also what celerysalt_publish enforces.
"""

from __future__ import annotations

import datetime as dt
import enum
import importlib.util
import json
import sys
import uuid
from typing import List, Literal, Optional

import psycopg
import pydantic
import pytest
from pydantic import BaseModel, ConfigDict, Field

TOPIC = "csit.registry.order.placed"


# ---- the publisher's models (what a celery-salt SaltEvent.Schema looks like)
class Status(str, enum.Enum):
    new = "new"
    paid = "paid"


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid")
    city: str = Field(min_length=1, max_length=40)
    zip: Optional[str] = Field(default=None, pattern=r"^[0-9]{4,5}$")


class Line(BaseModel):
    sku: str
    qty: int = Field(ge=1, le=100)
    price: float = Field(ge=0)


class OrderPlaced(BaseModel):
    """An order was placed in the shop."""
    order_id: uuid.UUID
    placed_at: dt.datetime
    amount: float = Field(ge=0, description="EUR")
    status: Status = Status.new
    channel: Literal["web", "app"] = "web"
    note: Optional[str] = None
    tags: List[str] = []
    lines: List[Line] = Field(default_factory=list, max_length=10)
    shipping: Optional[Address] = None
    billing: Address


GOOD = {
    "order_id": "2b0be589-1b1a-4c1c-8f5e-1a2b3c4d5e6f",
    "placed_at": "2026-01-02T03:04:05+00:00",
    "amount": 19.9,
    "billing": {"city": "Gent"},
}

SAMPLES = [
    ("minimal", GOOD),
    ("everything", dict(GOOD, status="paid", channel="app", note="ring twice", tags=["a", "b"],
                        lines=[{"sku": "X1", "qty": 2, "price": 9.95}],
                        shipping={"city": "Brugge", "zip": "8000"}, billing={"city": "Gent", "zip": None})),
    ("integer amount", dict(GOOD, amount=20)),
    ("extra top-level key is ignored", dict(GOOD, coupon="X")),
    ("null optional", dict(GOOD, note=None, shipping=None)),
    ("missing required", {k: v for k, v in GOOD.items() if k != "placed_at"}),
    ("missing nested required", dict(GOOD, billing={})),
    ("wrong type", dict(GOOD, amount="19.9")),
    ("negative amount", dict(GOOD, amount=-1)),
    ("bad uuid", dict(GOOD, order_id="not-a-uuid")),
    ("bad date-time", dict(GOOD, placed_at="yesterday")),
    ("enum value outside the set", dict(GOOD, status="lost")),
    ("literal outside the set", dict(GOOD, channel="fax")),
    ("extra key in a closed model", dict(GOOD, billing={"city": "Gent", "street": "Veldstraat"})),
    ("pattern mismatch", dict(GOOD, shipping={"city": "Gent", "zip": "ABC"})),
    ("string too long", dict(GOOD, billing={"city": "x" * 41})),
    ("empty string", dict(GOOD, billing={"city": ""})),
    ("qty above maximum", dict(GOOD, lines=[{"sku": "X1", "qty": 101, "price": 1}])),
    ("too many lines", dict(GOOD, lines=[{"sku": "X", "qty": 1, "price": 1}] * 11)),
    ("item of wrong type", dict(GOOD, tags=["a", 1])),
    ("null for a non-optional field", dict(GOOD, amount=None)),
    ("boolean for an int", dict(GOOD, lines=[{"sku": "X1", "qty": True, "price": 1}])),
]


@pytest.fixture
def registry_pg(pg_factory):
    """A cluster of its own (no broker needed: events only wait in the outbox)."""
    cluster = pg_factory(conf={"celerysalt.broker_url": "amqp://guest:guest@127.0.0.1:1//"})
    schema = OrderPlaced.model_json_schema()
    cluster.execute("SELECT celerysalt_register_schema(%s, %s::jsonb, description => %s)",
                    (TOPIC, json.dumps(schema), "An order was placed"))
    return cluster


def load_generated(source: str, tmp_path, name: str):
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def model_accepts(model, payload) -> bool:
    try:
        # subscribers validate the decoded JSON (a dict), as celery-salt does
        model.model_validate(json.loads(json.dumps(payload)))
        return True
    except pydantic.ValidationError:
        return False


def test_registered_schema_is_stored_as_given(registry_pg):
    stored = registry_pg.scalar("SELECT celerysalt_get_schema(%s)", (TOPIC,))
    assert stored == OrderPlaced.model_json_schema()
    again = registry_pg.scalar("SELECT celerysalt_register_schema(%s, %s::jsonb)",
                               (TOPIC, json.dumps(OrderPlaced.model_json_schema())))
    assert again["created"] is False


def test_generated_models_agree_with_the_registry(registry_pg, tmp_path):
    source = registry_pg.scalar("SELECT celerysalt_pydantic_model(%s)", (TOPIC,))
    mod = load_generated(source, tmp_path, "generated_order_placed")
    assert mod.TOPIC == TOPIC and mod.VERSION == "v1"
    Model = mod.Model
    assert issubclass(Model, pydantic.BaseModel)
    # nested $defs became classes of their own
    assert {"Address", "Line", "Status"} <= set(vars(mod))

    disagreements = []
    for name, payload in SAMPLES:
        registry = registry_pg.scalar("SELECT celerysalt_validate_event(%s, %s::jsonb)",
                                      (TOPIC, json.dumps(payload)))
        generated = model_accepts(Model, payload)
        if registry != generated:
            disagreements.append((name, registry, generated))
    assert not disagreements, f"registry vs generated model: {disagreements}"
    # the samples exercise both outcomes
    outcomes = {registry_pg.scalar("SELECT celerysalt_validate_event(%s, %s::jsonb)",
                                   (TOPIC, json.dumps(p))) for _, p in SAMPLES}
    assert outcomes == {True, False}


def test_generated_models_read_what_the_publisher_sends(registry_pg, tmp_path):
    source = registry_pg.scalar("SELECT celerysalt_pydantic_model(%s, 'v1')", (TOPIC,))
    mod = load_generated(source, tmp_path, "generated_order_placed_v1")
    event = OrderPlaced.model_validate(SAMPLES[1][1])
    wire = json.loads(event.model_dump_json())
    parsed = mod.Model.model_validate(wire)
    assert str(parsed.order_id) == str(event.order_id)
    assert parsed.billing.city == "Gent" and parsed.shipping.zip == "8000"
    assert parsed.status == mod.Status.paid
    assert parsed.lines[0].qty == 2
    # defaults travel with the schema
    minimal = mod.Model.model_validate(GOOD)
    assert minimal.status == mod.Status.new and minimal.channel == "web" and minimal.tags == []
    # an enum default is a member of the generated Enum, as in the publisher's model
    assert type(minimal.status) is mod.Status
    assert mod.Model.model_json_schema()["properties"]["status"]["default"] == "new"


def test_publish_validates_and_stamps_the_version(registry_pg):
    with registry_pg.connect(autocommit=False) as conn:
        event_id = registry_pg.publish(TOPIC, json.loads(OrderPlaced.model_validate(GOOD).model_dump_json()),
                                       conn=conn)
        version = conn.execute("SELECT version FROM _celerysalt_outbox WHERE id = %s::uuid",
                               (event_id,)).fetchone()[0]
        assert version == "v1"
        conn.rollback()
    bad = dict(GOOD, amount=-1, order_id="nope")
    with pytest.raises(psycopg.errors.CheckViolation) as err:
        registry_pg.publish(TOPIC, bad)
    detail = err.value.diag.message_detail
    assert "/amount" in detail and "/order_id" in detail


def test_compatible_evolution_of_the_pydantic_model(registry_pg):
    class OrderPlacedV2(OrderPlaced):
        coupon: Optional[str] = None  # the change Confluent refuses under BACKWARD

    result = registry_pg.scalar("SELECT celerysalt_register_schema(%s, %s::jsonb, version => 'v2')",
                                (TOPIC, json.dumps(OrderPlacedV2.model_json_schema())))
    assert result["created"] is True
    assert registry_pg.scalar("SELECT latest_version FROM celerysalt_catalog WHERE topic = %s",
                              (TOPIC,)) == "v2"

    class OrderPlacedV3(OrderPlacedV2):
        amount: str  # a type change

    with pytest.raises(psycopg.errors.InvalidObjectDefinition) as err:
        registry_pg.execute("SELECT celerysalt_register_schema(%s, %s::jsonb, version => 'v3')",
                            (TOPIC, json.dumps(OrderPlacedV3.model_json_schema())))
    assert "/amount" in err.value.diag.message_detail
