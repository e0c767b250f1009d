"""A tchu-tchu 3.0.4 service set up the way tchu-tchu documents it
(setup_celery_queue with its subscriber modules) plus celerysalt_pg's
bind_tchu_queue, which does the binding setup_celery_queue never does
(docs/wire-format.md#pitfalls-of-the-python-libraries), and, with CSIT_REGISTRY_DSN, records the handlers in
celerysalt_subscribers.  With CSIT_IGNORE_FOREIGN=1 it also calls
ignore_foreign_dispatchers (the mixed-fleet line).  Nothing here or in the
test binds by hand.  Handlers: fleet_tchu_handlers.py.

Environment: CSIT_BROKER_URL, CSIT_RESULT_BACKEND, CSIT_QUEUE, CSIT_FLEET_TOPIC,
CSIT_RECORD_URL, CSIT_RECORD_PREFIX, CSIT_REGISTRY_DSN (optional),
CSIT_IGNORE_FOREIGN (optional).
"""

import os

from celery import Celery
from tchu_tchu.django.celery import setup_celery_queue

from celerysalt_pg.fleet import ignore_foreign_dispatchers
from celerysalt_pg.tchu import bind_tchu_queue

QUEUE = os.environ["CSIT_QUEUE"]
MODULES = ["fleet_tchu_handlers"]

app = Celery("csit_fleet_tchu", broker=os.environ["CSIT_BROKER_URL"],
             backend=os.environ["CSIT_RESULT_BACKEND"])
app.conf.update(result_serializer="json", task_serializer="json", accept_content=["json"],
                broker_connection_retry_on_startup=True, result_expires=3600)
setup_celery_queue(app, queue_name=QUEUE, subscriber_modules=MODULES)
bind_tchu_queue(app, QUEUE, subscriber_modules=MODULES, dsn=os.environ.get("CSIT_REGISTRY_DSN"))
if os.environ.get("CSIT_IGNORE_FOREIGN") == "1":
    ignore_foreign_dispatchers(app)
