"""A stock celery-salt 1.6.0 service that starts after events for it were
published: setup_salt_queue(app, queue_name=...) declares its queue and binds
its handler's topic when the worker starts (docs/wire-format.md#pitfalls-of-the-python-libraries), the way
every new subscriber service comes up.

Environment: CSIT_BROKER_URL, CSIT_RESULT_BACKEND, CSIT_QUEUE, CSIT_LATE_TOPIC,
CSIT_RECORD_URL, CSIT_RECORD_PREFIX.
"""

import os

from celery import Celery
from celery_salt import event, subscribe
from celery_salt.django.celery import setup_salt_queue

from record import record

TOPIC = os.environ["CSIT_LATE_TOPIC"]

app = Celery("csit_late", broker=os.environ["CSIT_BROKER_URL"],
             backend=os.environ["CSIT_RESULT_BACKEND"])
app.conf.update(
    result_serializer="json",
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    result_expires=3600,
)
setup_salt_queue(app, queue_name=os.environ["CSIT_QUEUE"])


@event(TOPIC, version="v1")
class Late:
    n: int


@subscribe(TOPIC)
def on_late(data):
    return record("late.on_late", data.model_dump(mode="json"))
