"""A stock tchu-tchu 3.0.4 service with OpenTelemetry's Celery
instrumentation (otel_spans.py).  setup_celery_queue binds nothing
(wire-protocol note in tchu_worker.py): the test declares the queue and its
bindings.  The handler records what it received, the traceparent header of
its own task and the span current while it ran.

Environment: CSIT_BROKER_URL, CSIT_RESULT_BACKEND, CSIT_QUEUE,
CSIT_TOPIC_PREFIX, CSIT_RECORD_URL, CSIT_RECORD_PREFIX.
"""

import os

from celery import Celery, current_task
from tchu_tchu import subscribe
from tchu_tchu.django.celery import setup_celery_queue

import otel_spans
from record import record

otel_spans.install()

P = os.environ["CSIT_TOPIC_PREFIX"]

app = Celery("csit_otel_tchu", broker=os.environ["CSIT_BROKER_URL"],
             backend=os.environ["CSIT_RESULT_BACKEND"])
app.conf.update(result_serializer="json", task_serializer="json", accept_content=["json"],
                broker_connection_retry_on_startup=True, result_expires=3600)
setup_celery_queue(app, queue_name=os.environ["CSIT_QUEUE"], subscriber_modules=[])


@subscribe(f"{P}.event")
def on_event(data):
    return record("otel_tchu.on_event", {"n": data.get("n"),
                                         "traceparent": getattr(current_task.request, "traceparent", None),
                                         "span": otel_spans.current_span_ids()})
