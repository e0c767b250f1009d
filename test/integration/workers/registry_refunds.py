"""Another celery-salt 1.6.0 service (test_python_registry.py) that declares
<prefix>.invoice.paid v1 differently from registry_billing.py: with the
PostgreSQL registry it must fail at import with celery-salt's
SchemaConflictError, whichever role it runs as.

Environment: CSIT_REGISTRY_DSN, CSIT_BROKER_URL, CSIT_RESULT_BACKEND,
CSIT_QUEUE, CSIT_TOPIC_PREFIX.
"""

import os

from celery_salt.core.registry import set_schema_registry
from celerysalt_pg.registry import PostgresSchemaRegistry

set_schema_registry(PostgresSchemaRegistry(os.environ["CSIT_REGISTRY_DSN"], service="refunds"))

from celery import Celery  # noqa: E402
from celery_salt import event  # noqa: E402
from celery_salt.django.celery import setup_salt_queue  # noqa: E402

P = os.environ["CSIT_TOPIC_PREFIX"]

app = Celery("csit_reg_refunds", broker=os.environ["CSIT_BROKER_URL"],
             backend=os.environ["CSIT_RESULT_BACKEND"])
app.conf.update(broker_connection_retry_on_startup=True)
setup_salt_queue(app, queue_name=os.environ["CSIT_QUEUE"])


@event(f"{P}.invoice.paid", version="v1")
class InvoicePaid:
    invoice_id: str          # registry_billing.py says int
    amount: float
    currency: str = "EUR"
