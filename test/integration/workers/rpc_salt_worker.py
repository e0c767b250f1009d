"""A stock celery-salt 1.6.0 service answering RPC calls (docs/wire-format.md#rpc-requests).

Topics under CSIT_TOPIC_PREFIX:
  .add     request/response/error models declared (@event, .response, .error)
  .sub     no error model: RPCError details reach the caller
  .boom    raises an ordinary exception
  .echo    returns what it got (for matching concurrent answers)
  .typed   returns datetime / Decimal / UUID (celery-salt normalises them)
  .record  records each execution in Redis, then answers
  .slow    sleeps `seconds`, then answers (with CSIT_TRACK_STARTED=1 the
           worker first stores a STARTED record: task_track_started)
  .nonfinite  returns a non-finite float (Python's json writes NaN / Infinity)
"""

import datetime
import decimal
import os
import time
import uuid

from celery import Celery
from celery_salt import RPCError, event, subscribe
from celery_salt.django.celery import setup_salt_queue

from record import record

P = os.environ["CSIT_TOPIC_PREFIX"]

app = Celery("csit_rpc_salt", broker=os.environ["CSIT_BROKER_URL"],
             backend=os.environ["CSIT_RESULT_BACKEND"])
app.conf.update(result_serializer="json", task_serializer="json", accept_content=["json"],
                broker_connection_retry_on_startup=True,
                task_track_started=os.environ.get("CSIT_TRACK_STARTED") == "1")
setup_salt_queue(app, queue_name=os.environ["CSIT_QUEUE"])


@event(f"{P}.add", mode="rpc")
class AddRequest:
    a: float
    b: float


@event.response(f"{P}.add")
class AddResponse:
    result: float
    nested: dict


@event.error(f"{P}.add")
class AddError:
    error_code: str
    error_message: str


@event(f"{P}.sub", mode="rpc")
class SubRequest:
    a: float
    b: float


@event(f"{P}.boom", mode="rpc")
class BoomRequest:
    why: str


@event(f"{P}.echo", mode="rpc")
class EchoRequest:
    caller: int
    i: int


@event(f"{P}.typed", mode="rpc")
class TypedRequest:
    n: int


@event(f"{P}.record", mode="rpc")
class RecordRequest:
    tag: str


@subscribe(f"{P}.add")
def on_add(data):
    if data.a < 0:
        raise RPCError("NEGATIVE", "a must be >= 0", details={"a": data.a})
    return {"result": data.a + data.b, "nested": {"list": [1, "two", {"three": None}], "ok": True}}


@subscribe(f"{P}.sub")
def on_sub(data):
    if data.a < data.b:
        raise RPCError("NEGATIVE", "a must be >= b", details={"a": data.a, "b": data.b})
    return {"result": data.a - data.b}


@subscribe(f"{P}.boom")
def on_boom(data):
    raise ValueError(f"boom: {data.why}")


@subscribe(f"{P}.echo")
def on_echo(data):
    return {"caller": data.caller, "i": data.i}


@subscribe(f"{P}.typed")
def on_typed(data):
    return {"when": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
            "amount": decimal.Decimal("1.10"),
            "id": uuid.UUID("2b0be589-1b1a-4c1c-8f5e-1a2b3c4d5e6f"), "n": data.n}


@subscribe(f"{P}.record")
def on_record(data):
    record("rpc_salt.on_record", data.model_dump(mode="json"))
    return {"tag": data.tag}


# ---- a topic whose contract is registered in the schema registry by the test
@event(f"{P}.contract", mode="rpc")
class ContractRequest:
    a: float
    b: float


@subscribe(f"{P}.contract")
def on_contract(data):
    if data.a == -1:
        raise RPCError("NEGATIVE", "a must be >= 0")
    if data.a < -1:
        raise RPCError("UNLISTED", "not in the registered error codes")
    if data.a == 13:
        return {"total": data.a + data.b}     # breaks the registered response_schema
    return {"result": data.a + data.b}


@event(f"{P}.slow", mode="rpc")
class SlowRequest:
    seconds: float


@subscribe(f"{P}.slow")
def on_slow(data):
    time.sleep(data.seconds)
    return {"slept": data.seconds}


@event(f"{P}.nonfinite", mode="rpc")
class NonFiniteRequest:
    kind: str


@subscribe(f"{P}.nonfinite")
def on_nonfinite(data):
    value = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf"),
             "decimal_nan": decimal.Decimal("NaN")}[data.kind]
    return {"ok": [1, value]}
