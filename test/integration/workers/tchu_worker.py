"""A stock tchu-tchu 3.0.4 service configured with its own helper,
setup_celery_queue().  That helper never binds the handler topics
(docs/wire-format.md#pitfalls-of-the-python-libraries), so the test rig declares this worker's
queue (durable, no arguments) and its tchu_events bindings before starting
it.  Handlers are tchu-tchu @subscribe functions recording what they
receive (record.py); they live in this module so they are registered
without the helper's deferred import (which never runs in 3.0.4).

Environment: CSIT_BROKER_URL, CSIT_RESULT_BACKEND, CSIT_QUEUE,
CSIT_TOPIC_PREFIX, CSIT_RECORD_URL, CSIT_RECORD_PREFIX.
"""

import os

from celery import Celery
from tchu_tchu import subscribe
from tchu_tchu.django.celery import setup_celery_queue

from record import record

P = os.environ["CSIT_TOPIC_PREFIX"]

app = Celery("csit_tchu", broker=os.environ["CSIT_BROKER_URL"],
             backend=os.environ["CSIT_RESULT_BACKEND"])
app.conf.update(
    result_serializer="json",
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    result_expires=3600,  # the Redis server is shared: don't leave a day of results
)
setup_celery_queue(app, queue_name=os.environ["CSIT_QUEUE"], subscriber_modules=[])

@subscribe(f"{P}.compat")
def on_compat(data):
    return record("tchu.on_compat", data)


@subscribe(f"{P}.txn")
def on_txn(data):
    return record("tchu.on_txn", data)
