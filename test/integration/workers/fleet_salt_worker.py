"""A stock celery-salt 1.6.0 service (setup_salt_queue) in a mixed fleet:
with CSIT_IGNORE_FOREIGN=1 it calls celerysalt_pg's
ignore_foreign_dispatchers, so the tchu-tchu copy of each event is
acknowledged silently instead of "Received unregistered task".

Environment: CSIT_BROKER_URL, CSIT_RESULT_BACKEND, CSIT_QUEUE, CSIT_FLEET_TOPIC,
CSIT_RECORD_URL, CSIT_RECORD_PREFIX, CSIT_IGNORE_FOREIGN (optional).
"""

import os

from celery import Celery
from celery_salt import event, subscribe
from celery_salt.django.celery import setup_salt_queue

from celerysalt_pg.fleet import ignore_foreign_dispatchers
from record import record

TOPIC = os.environ["CSIT_FLEET_TOPIC"]

app = Celery("csit_fleet_salt", broker=os.environ["CSIT_BROKER_URL"],
             backend=os.environ["CSIT_RESULT_BACKEND"])
app.conf.update(result_serializer="json", task_serializer="json", accept_content=["json"],
                broker_connection_retry_on_startup=True, result_expires=3600)
setup_salt_queue(app, queue_name=os.environ["CSIT_QUEUE"])
if os.environ.get("CSIT_IGNORE_FOREIGN") == "1":
    ignore_foreign_dispatchers(app)


@event(TOPIC, version="v1")
class Fleet:
    n: int


@subscribe(TOPIC)
def on_fleet(data):
    return record("fleet_salt.on_fleet", data.model_dump(mode="json"))
