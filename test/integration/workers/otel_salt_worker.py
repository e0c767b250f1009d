"""A stock celery-salt 1.6.0 service with OpenTelemetry's Celery
instrumentation (otel_spans.py), configured the documented way
(setup_salt_queue binds its topics).  Handlers record what they received,
the traceparent header of their own task and the span current while they
ran (record.py, otel_spans.py).

Topics under CSIT_TOPIC_PREFIX: .event (broadcast, version v1), .call (RPC).

Environment: CSIT_BROKER_URL, CSIT_RESULT_BACKEND, CSIT_QUEUE,
CSIT_TOPIC_PREFIX, CSIT_RECORD_URL, CSIT_RECORD_PREFIX.
"""

import os

from celery import Celery, current_task
from celery_salt import event, subscribe
from celery_salt.django.celery import setup_salt_queue

import otel_spans
from record import record

otel_spans.install()

P = os.environ["CSIT_TOPIC_PREFIX"]

app = Celery("csit_otel_salt", broker=os.environ["CSIT_BROKER_URL"],
             backend=os.environ["CSIT_RESULT_BACKEND"])
app.conf.update(result_serializer="json", task_serializer="json", accept_content=["json"],
                broker_connection_retry_on_startup=True, result_expires=3600)
setup_salt_queue(app, queue_name=os.environ["CSIT_QUEUE"])


@event(f"{P}.event", version="v1")
class Traced:
    n: int


@event(f"{P}.call", mode="rpc")
class TracedCall:
    n: int


def seen():
    return {"n": None, "traceparent": getattr(current_task.request, "traceparent", None),
            "span": otel_spans.current_span_ids()}


@subscribe(f"{P}.event")
def on_event(data):
    return record("otel_salt.on_event", dict(seen(), n=data.n))


@subscribe(f"{P}.call")
def on_call(data):
    record("otel_salt.on_call", dict(seen(), n=data.n))
    return {"n": data.n}
