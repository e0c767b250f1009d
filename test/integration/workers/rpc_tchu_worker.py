"""A stock tchu-tchu 3.0.4 service answering RPC calls.  Its queue and
bindings are created by the test rig (tchu-tchu 3.x binds nothing itself).

Topics under CSIT_TOPIC_PREFIX:
  .typed  returns Decimal / datetime / UUID: kombu encodes them as typed
          objects ({"__type__": ..., "__value__": ...}) in the result
  .fail   raises
"""

import datetime
import decimal
import os
import uuid

from celery import Celery
from tchu_tchu import subscribe
from tchu_tchu.django.celery import setup_celery_queue

P = os.environ["CSIT_TOPIC_PREFIX"]

app = Celery("csit_rpc_tchu", broker=os.environ["CSIT_BROKER_URL"],
             backend=os.environ["CSIT_RESULT_BACKEND"])
app.conf.update(result_serializer="json", task_serializer="json", accept_content=["json"],
                broker_connection_retry_on_startup=True)
setup_celery_queue(app, queue_name=os.environ["CSIT_QUEUE"], subscriber_modules=[])


@subscribe(f"{P}.typed")
def on_typed(data):
    return {"amount": decimal.Decimal("1.10"),
            "when": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
            "id": uuid.UUID("2b0be589-1b1a-4c1c-8f5e-1a2b3c4d5e6f"),
            "echo": data.get("n")}


@subscribe(f"{P}.fail")
def on_fail(data):
    raise RuntimeError("tchu boom")
