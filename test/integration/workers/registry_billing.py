"""A celery-salt 1.6.0 publisher service on the PostgreSQL schema registry
(test_python_registry.py): the one line of setup, then ordinary celery-salt
code.  Its @event and SaltEvent schemas are registered in celerysalt_schemas
at import; it answers the RPC topic <prefix>.quote (SaltEvent with Response
and Error models) unless CSIT_WITH_RPC=0 (a pure publisher: it starts even
when the registry is down).

Environment: CSIT_REGISTRY_DSN, CSIT_SERVICE (default "billing"),
CSIT_BROKER_URL, CSIT_RESULT_BACKEND, CSIT_QUEUE, CSIT_TOPIC_PREFIX,
CSIT_RECORD_URL, CSIT_RECORD_PREFIX, CSIT_WITH_RPC.
"""

import os

from celery_salt.core.registry import set_schema_registry
from celerysalt_pg.registry import PostgresSchemaRegistry

set_schema_registry(PostgresSchemaRegistry(os.environ["CSIT_REGISTRY_DSN"],
                                           service=os.environ.get("CSIT_SERVICE", "billing")))

from celery import Celery  # noqa: E402
from celery_salt import RPCError, SaltEvent, event, subscribe  # noqa: E402
from celery_salt.django.celery import setup_salt_queue  # noqa: E402
from pydantic import BaseModel  # noqa: E402

P = os.environ["CSIT_TOPIC_PREFIX"]

app = Celery("csit_reg_billing", broker=os.environ["CSIT_BROKER_URL"],
             backend=os.environ["CSIT_RESULT_BACKEND"])
app.conf.update(result_serializer="json", task_serializer="json", accept_content=["json"],
                broker_connection_retry_on_startup=True, result_expires=3600)
setup_salt_queue(app, queue_name=os.environ["CSIT_QUEUE"])


@event(f"{P}.invoice.paid", version="v1")
class InvoicePaid:
    invoice_id: int
    amount: float
    currency: str = "EUR"


if os.environ.get("CSIT_WITH_RPC", "1") == "1":
    class Quote(SaltEvent):
        class Schema(BaseModel):
            sku: str
            qty: int

        class Response(BaseModel):
            sku: str
            total: float

        class Error(BaseModel):
            error_code: str
            error_message: str

        class Meta:
            topic = f"{P}.quote"
            mode = "rpc"
            description = "Price of qty items of sku"

    @subscribe(Quote)
    def on_quote(evt):
        if evt.qty <= 0:
            raise RPCError("BAD_QTY", "qty must be positive")
        return {"sku": evt.sku, "total": evt.qty * 2.5}
