"""Generated models round-trip (issue 15, item 6).

A corpus of pydantic models (nested models, enums with defaults, Optional with
and without a default, fields the schema lets out, lists and dicts,
constrained types, Literal, datetime/date/uuid/Decimal, a recursive model, an
RPC request with its response and error) is registered from
model_json_schema(), with the declaration order of its properties recorded
from the JSON text (celerysalt_register_property_order).  ``celerysalt-pg
models`` then generates the modules, as a role holding only celerysalt_reader,
in a subprocess.  For each model the generated one must:

- accept and refuse the same sample payloads as the original;
- have its fields in the original's declaration order;
- dump (model_dump(mode="json")) what the registry accepts
  (celerysalt_validate_event; celerysalt_validate for response and error).
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import importlib.util
import json
import subprocess
import sys
import uuid
from typing import Dict, List, Literal, Optional

import pydantic
import pytest
from pydantic import BaseModel, ConfigDict, Field, conint, constr

READER = "csit_models_reader"
TAG = uuid.uuid4().hex[:8]


# ------------------------------------------------------------------ corpus

class Status(str, enum.Enum):
    new = "new"
    paid = "paid"
    shipped = "shipped"


class Address(BaseModel):
    street: str
    city: str
    zip: Optional[str] = None


class Line(BaseModel):
    sku: constr(min_length=3, max_length=12, pattern=r"^[A-Z0-9-]+$")
    qty: conint(ge=1, le=100)
    price: decimal.Decimal


class Order(BaseModel):
    """An order, fields deliberately not in name order."""

    order_id: uuid.UUID
    status: Status = Status.new
    placed_at: dt.datetime
    ship_on: Optional[dt.date] = None
    lines: List[Line] = Field(min_length=1)
    address: Address
    notes: Optional[str]                        # required, may be null
    tags: List[str] = Field(default_factory=list)  # may be left out, never null
    attrs: Dict[str, int] = Field(default_factory=dict)
    channel: Literal["web", "shop"] = "web"
    weight: float = Field(default=0.0, ge=0)
    gift: bool = False


class TreeNode(BaseModel):
    name: str
    children: List["TreeNode"] = Field(default_factory=list)
    parent_name: Optional[str] = None


class Settings(BaseModel):
    model_config = ConfigDict(regex_engine="python-re")   # look-ahead below

    zeta: int
    alpha: Optional[int] = Field(default=None, ge=0)
    mode: Literal["a", "b"]
    ratio: float = Field(gt=0, lt=1, default=0.5)
    limits: Dict[str, List[int]] = Field(default_factory=dict)
    slug: Optional[constr(pattern=r"^(?!tmp-)[a-z-]+$")] = None


class PriceQuery(BaseModel):
    sku: str
    currency: Literal["EUR", "USD"] = "EUR"
    at: Optional[dt.datetime] = None


class PriceAnswer(BaseModel):
    sku: str
    amount: decimal.Decimal
    valid_until: dt.date
    source: Optional[str] = None
    history: List[float] = Field(default_factory=list)


class PriceError(BaseModel):
    code: Literal["unknown_sku", "no_price"]
    message: str
    retry_after: Optional[int] = None
    detail: Dict[str, str] = Field(default_factory=dict)


OID = "3f2b1c4e-8d9a-4b6f-a1c2-0123456789ab"
LINE = {"sku": "AB-12", "qty": 2, "price": "9.50"}
ADDR = {"street": "1 Main St", "city": "Lyon"}
ORDER = {"order_id": OID, "placed_at": "2024-05-01T10:00:00Z", "lines": [LINE], "address": ADDR,
         "notes": None}

# (name, original model, valid payloads, invalid payloads)
CORPUS = [
    ("order", Order,
     [ORDER,
      {**ORDER, "status": "paid", "ship_on": "2024-05-03", "tags": ["a", "b"], "attrs": {"x": 1},
       "channel": "shop", "weight": 1.5, "gift": True, "notes": "ring twice"},
      {**ORDER, "lines": [LINE, {"sku": "ZZ9", "qty": 100, "price": 3}],
       "address": {**ADDR, "zip": "69001"}}],
     [{k: v for k, v in ORDER.items() if k != "notes"},          # required though nullable
      {**ORDER, "status": "lost"},
      {**ORDER, "order_id": "not-a-uuid"},
      {**ORDER, "lines": []},
      {**ORDER, "lines": [{**LINE, "qty": 0}]},
      {**ORDER, "lines": [{**LINE, "sku": "ab"}]},
      {**ORDER, "tags": None},
      {**ORDER, "tags": [1]},
      {**ORDER, "attrs": {"x": "one"}},
      {**ORDER, "channel": "phone"},
      {**ORDER, "weight": -1},
      {**ORDER, "gift": "maybe"},
      {**ORDER, "address": {"street": "x"}},
      {**ORDER, "ship_on": "tomorrow"}]),
    ("tree", TreeNode,
     [{"name": "root"},
      {"name": "root", "children": [{"name": "a", "children": [{"name": "b"}]}, {"name": "c"}]},
      {"name": "x", "parent_name": None}],
     [{},
      {"name": 1},
      {"name": "root", "children": [{"children": []}]},
      {"name": "root", "children": None},
      {"name": "root", "children": [{"name": "a", "children": [{"name": 5}]}]}]),
    ("settings", Settings,
     [{"zeta": 1, "mode": "a"},
      {"zeta": -3, "mode": "b", "alpha": 0, "ratio": 0.25, "limits": {"x": [1, 2]}},
      {"zeta": 1, "mode": "a", "alpha": None, "slug": "my-page"}],
     [{"zeta": 1},
      {"zeta": "one", "mode": "a"},
      {"zeta": 1, "mode": "c"},
      {"zeta": 1, "mode": "a", "alpha": -1},
      {"zeta": 1, "mode": "a", "ratio": 1},
      {"zeta": 1, "mode": "a", "limits": {"x": ["one"]}},
      {"zeta": 1, "mode": "a", "limits": None},
      {"zeta": 1, "mode": "a", "slug": "tmp-page"}]),
]

RPC_REQUEST = (PriceQuery,
               [{"sku": "A1"}, {"sku": "A1", "currency": "USD", "at": "2024-05-01T10:00:00+02:00"}],
               [{}, {"sku": "A1", "currency": "GBP"}, {"sku": 1}])
RPC_RESPONSE = (PriceAnswer,
                [{"sku": "A1", "amount": "1.25", "valid_until": "2024-06-01"},
                 {"sku": "A1", "amount": 2, "valid_until": "2024-06-01", "source": "list",
                  "history": [1.0, 1.25]}],
                [{"sku": "A1", "valid_until": "2024-06-01"},
                 {"sku": "A1", "amount": 1, "valid_until": "June"},
                 {"sku": "A1", "amount": 1, "valid_until": "2024-06-01", "history": None}])
RPC_ERROR = (PriceError,
             [{"code": "unknown_sku", "message": "no such sku"},
              {"code": "no_price", "message": "later", "retry_after": 30, "detail": {"k": "v"}}],
             [{"code": "other", "message": "x"}, {"code": "no_price"},
              {"code": "no_price", "message": "x", "detail": None}])


# ------------------------------------------------------------------ helpers

def topic_of(name: str) -> str:
    return f"csit.roundtrip.{name}.{TAG}"


def accepts(model, payload) -> bool:
    try:
        model.model_validate(payload)
        return True
    except pydantic.ValidationError:
        return False


def load(path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def wire_names(model) -> List[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def check_model(original, generated, valid, invalid, accepted_by_registry) -> None:
    """The generated model agrees with the original on every sample and its
    dumps pass the registry (accepted_by_registry(payload) -> bool)."""
    assert wire_names(generated) == wire_names(original), "fields are not in declaration order"
    for payload in valid:
        assert accepts(original, payload), ("sample should be valid", payload)
        assert accepts(generated, payload), ("generated model refuses", payload)
        dumped = generated.model_validate(payload).model_dump(mode="json")
        assert accepted_by_registry(dumped), ("registry refuses the generated model's dump", dumped)
        # the dump reads back the same in both models
        assert accepts(original, dumped) and accepts(generated, dumped), dumped
    for payload in invalid:
        assert not accepts(original, payload), ("sample should be invalid", payload)
        assert not accepts(generated, payload), ("generated model accepts", payload)


@pytest.fixture(scope="module")
def models_pg(pg):
    pg.execute(f"""DO $$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{READER}') THEN
            CREATE ROLE {READER} LOGIN IN ROLE celerysalt_reader;
        END IF; END $$""")
    with pg.connect() as c:
        for name, model, _, _ in CORPUS:
            text = json.dumps(model.model_json_schema())
            c.execute("SELECT celerysalt_register_schema(%s, %s::jsonb)", (topic_of(name), text))
            assert c.execute("SELECT celerysalt_register_property_order(%s, 'v1', %s::json)",
                             (topic_of(name), text)).fetchone()[0] is True
        req, res, err = (json.dumps(m[0].model_json_schema()) for m in (RPC_REQUEST, RPC_RESPONSE, RPC_ERROR))
        c.execute("SELECT celerysalt_register_schema(%s, %s::jsonb, mode => 'rpc',"
                  " response_schema => %s::jsonb, error_schema => %s::jsonb)", (topic_of("price"), req, res, err))
        c.execute("SELECT celerysalt_register_property_order(%s, 'v1', %s::json, %s::json, %s::json)",
                  (topic_of("price"), req, res, err))
    return pg


def run_models(pg, *args: str) -> subprocess.CompletedProcess:
    dsn = pg.dsn.replace("user=postgres", f"user={READER}")
    assert f"user={READER}" in dsn
    return subprocess.run([sys.executable, "-m", "celerysalt_pg", "models", "--dsn", dsn, *args],
                          capture_output=True, text=True, timeout=60)


# ------------------------------------------------------------------ tests

def test_reader_is_a_plain_role(models_pg):
    with models_pg.connect(user=READER) as c:
        row = c.execute("SELECT rolsuper, pg_has_role(current_user, 'celerysalt_publisher', 'MEMBER')"
                        "  FROM pg_roles WHERE rolname = current_user").fetchone()
    assert row == (False, False)


def test_generated_models_round_trip(models_pg, tmp_path):
    out = tmp_path / f"gen_{TAG}"
    args: List[str] = []
    for name, *_ in CORPUS:
        args += ["--topic", topic_of(name), "--version", "v1"]
    proc = run_models(models_pg, *args, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    index = load(out / "__init__.py", f"gen_index_{TAG}")
    assert set(index.MODULES) == {(topic_of(n), "v1") for n, *_ in CORPUS}

    for name, original, valid, invalid in CORPUS:
        topic = topic_of(name)
        mod = load(out / (index.MODULES[(topic, "v1")] + ".py"), f"gen_{name}_{TAG}")
        assert mod.TOPIC == topic and mod.VERSION == "v1"

        def registry_accepts(payload, topic=topic):
            return models_pg.scalar("SELECT celerysalt_validate_event(%s, %s::jsonb)",
                                    (topic, json.dumps(payload)))

        check_model(original, mod.Model, valid, invalid, registry_accepts)


def test_unset_optional_fields_are_left_out(models_pg, tmp_path):
    path = tmp_path / "order_models.py"
    proc = run_models(models_pg, "--topic", topic_of("order"), "--out", str(path))
    assert proc.returncode == 0, proc.stderr
    mod = load(path, f"gen_order_single_{TAG}")
    event = mod.Model.model_validate(ORDER)
    assert event.tags is None                      # reads None when left out ...
    dumped = event.model_dump(mode="json")
    assert "tags" not in dumped and "attrs" not in dumped   # ... and is not sent as null
    assert dumped["ship_on"] is None               # nullable with a default: sent as is
    assert dumped["status"] == "new"               # an enum default, a member
    assert isinstance(event.status, mod.Status)
    event.tags = ["x"]                             # set after construction: dumped
    assert event.model_dump(mode="json")["tags"] == ["x"]
    assert mod.Model(**{**ORDER, "tags": ["y"]}).model_dump(mode="json")["tags"] == ["y"]


def test_rpc_response_and_error_models(models_pg, tmp_path):
    path = tmp_path / "price_models.py"
    proc = run_models(models_pg, "--topic", topic_of("price"), "--out", str(path))
    assert proc.returncode == 0, proc.stderr
    mod = load(path, f"gen_price_{TAG}")
    assert (mod.Model.__name__, mod.ResponseModel.__name__, mod.ErrorModel.__name__) == \
        ("PriceQuery", "PriceAnswer", "PriceError")
    registered = models_pg.execute("SELECT schema, response_schema, error_schema FROM celerysalt_schemas"
                                   " WHERE topic = %s", (topic_of("price"),))[0]
    for (original, valid, invalid), generated, schema in zip(
            (RPC_REQUEST, RPC_RESPONSE, RPC_ERROR), (mod.Model, mod.ResponseModel, mod.ErrorModel),
            registered):

        def registry_accepts(payload, schema=schema):
            return models_pg.scalar("SELECT celerysalt_validate(%s::jsonb, %s::jsonb, true)",
                                    (json.dumps(schema), json.dumps(payload)))

        check_model(original, generated, valid, invalid, registry_accepts)


def test_all_and_errors(models_pg, tmp_path):
    out = tmp_path / "all"
    proc = run_models(models_pg, "--all", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    index = load(out / "__init__.py", f"gen_all_{TAG}")
    assert {(topic_of(n), "latest") for n in ("order", "tree", "settings", "price")} <= set(index.MODULES)
    for module_name in index.MODULES.values():
        compile((out / f"{module_name}.py").read_text(), module_name, "exec")

    proc = run_models(models_pg, "--topic", "csit.roundtrip.nope")
    assert proc.returncode == 1 and 'topic "csit.roundtrip.nope" has no registered schema' in proc.stderr
    proc = run_models(models_pg, "--topic", topic_of("tree"), "--topic", topic_of("order"))
    assert proc.returncode == 2 and "--out DIRECTORY" in proc.stderr


def test_decimal_strings_are_what_the_schema_says(models_pg, tmp_path):
    """pydantic 2.14 describes Decimal as number or *any* string: the registry
    and the generated model accept "abc", the publisher's model refuses it.
    Nothing in the schema can tell them apart (a known difference)."""
    path = tmp_path / "price_models_decimal.py"
    assert run_models(models_pg, "--topic", topic_of("price"), "--out", str(path)).returncode == 0
    mod = load(path, f"gen_price_decimal_{TAG}")
    payload = {"sku": "A1", "amount": "abc", "valid_until": "2024-06-01"}
    schema = PriceAnswer.model_json_schema()["properties"]["amount"]
    if any("pattern" in branch for branch in schema.get("anyOf", [])):
        pytest.skip("this pydantic gives Decimal strings a pattern")
    assert not accepts(PriceAnswer, payload)
    assert accepts(mod.ResponseModel, payload)


def test_the_python_adapter_records_the_order(models_pg):
    """PostgresSchemaRegistry.register_schema sends the order along."""
    from celerysalt_pg.registry import PostgresSchemaRegistry

    topic = topic_of("adapter")
    registry = PostgresSchemaRegistry(models_pg.dsn, service="tests")
    try:
        registry.register_schema(topic, "v1", Settings.model_json_schema(), "tests", "Settings",
                                 mode="rpc", response_schema=PriceError.model_json_schema())
    finally:
        registry.close()
    order = models_pg.scalar("SELECT property_order FROM celerysalt_schemas WHERE topic = %s", (topic,))
    assert order == {"schema": {"": wire_names(Settings)}, "response_schema": {"": wire_names(PriceError)}}
