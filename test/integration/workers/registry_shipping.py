"""A celery-salt 1.6.0 subscriber service with no copy of the publisher's
event classes (test_python_registry.py): @subscribe("<prefix>.invoice.paid")
gets the schema from the PostgreSQL registry at import, and the handler
receives a model validated against it.  Records what it received
(record.py) with the model's class name.

Environment: CSIT_REGISTRY_DSN, CSIT_BROKER_URL, CSIT_RESULT_BACKEND,
CSIT_QUEUE, CSIT_TOPIC_PREFIX, CSIT_RECORD_URL, CSIT_RECORD_PREFIX.
"""

import os

from celery_salt.core.registry import set_schema_registry
from celerysalt_pg.registry import PostgresSchemaRegistry

set_schema_registry(PostgresSchemaRegistry(os.environ["CSIT_REGISTRY_DSN"], service="shipping",
                                           queue=os.environ["CSIT_QUEUE"]))

from celery import Celery  # noqa: E402
from celery_salt import subscribe  # noqa: E402
from celery_salt.django.celery import setup_salt_queue  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from record import record  # noqa: E402

P = os.environ["CSIT_TOPIC_PREFIX"]

app = Celery("csit_reg_shipping", broker=os.environ["CSIT_BROKER_URL"],
             backend=os.environ["CSIT_RESULT_BACKEND"])
app.conf.update(result_serializer="json", task_serializer="json", accept_content=["json"],
                broker_connection_retry_on_startup=True, result_expires=3600)
setup_salt_queue(app, queue_name=os.environ["CSIT_QUEUE"])


@subscribe(f"{P}.invoice.paid")
def on_invoice_paid(data):
    return record("reg.on_invoice_paid", {
        "model": type(data).__name__,
        "is_model": isinstance(data, BaseModel),
        "fields": data.model_dump(mode="json"),
        "types": {k: type(v).__name__ for k, v in data},
    })


@subscribe(f"{P}.invoice.*")
def on_any_invoice(data):
    return None
