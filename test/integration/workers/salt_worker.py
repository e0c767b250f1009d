"""A stock celery-salt 1.6.0 service, configured the documented way:
setup_salt_queue(app, queue_name=...) (its queue gets x-max-priority 10 and
every handler topic bound, docs/wire-format.md#pitfalls-of-the-python-libraries), a Redis result backend
with result_serializer=json, schemas registered with celery-salt's own
@event decorator at import time (2.4, 2.5), and @subscribe handlers that
record what they receive (record.py).

Environment: CSIT_BROKER_URL, CSIT_RESULT_BACKEND, CSIT_QUEUE,
CSIT_TOPIC_PREFIX, CSIT_RECORD_URL, CSIT_RECORD_PREFIX.
"""

import os
from typing import Optional

from celery import Celery
from celery_salt import event, subscribe
from celery_salt.django.celery import setup_salt_queue

from record import record

P = os.environ["CSIT_TOPIC_PREFIX"]

app = Celery("csit_salt", broker=os.environ["CSIT_BROKER_URL"],
             backend=os.environ["CSIT_RESULT_BACKEND"])
app.conf.update(
    result_serializer="json",
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    result_expires=3600,  # the Redis server is shared: don't leave a day of results
)
setup_salt_queue(app, queue_name=os.environ["CSIT_QUEUE"])


# ---- schemas (celery-salt needs one per subscribed concrete topic)

@event(f"{P}.compat", version="v1")
class Compat:
    text: str
    escapes: str
    big: int
    negative_big: int
    ratio: float
    tiny: float
    nested: dict
    items: list
    yes: bool
    no: bool
    empty_obj: dict
    empty_arr: list
    nothing: Optional[str] = None


@event(f"{P}.versioned", version="v1")
class VersionedV1:
    n: int


@event(f"{P}.versioned", version="v2")
class VersionedV2:
    n: int
    label: str = "none"


@event(f"{P}.txn", version="v1")
class Txn:
    tag: str


# ---- handlers

@subscribe(f"{P}.compat")
def on_compat(data):
    return record("salt.on_compat", data.model_dump(mode="json"))


@subscribe(f"{P}.versioned", version="v2")
def on_versioned_v2(data):
    return record("salt.on_versioned_v2", data.model_dump(mode="json"))


@subscribe(f"{P}.versioned")
def on_versioned_latest(data):
    return record("salt.on_versioned_latest", data.model_dump(mode="json"))


@subscribe(f"{P}.txn")
def on_txn(data):
    return record("salt.on_txn", data.model_dump(mode="json"))
