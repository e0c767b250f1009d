"""A stock celery-salt 1.6.0 service that talks to RabbitMQ and Redis over TLS
only, configured as Celery documents it: broker_use_ssl for the amqps://
broker (CA, client certificate and key, CERT_REQUIRED) and a rediss://
result backend whose URL carries the same options (ssl_cert_reqs,
ssl_ca_certs, ssl_certfile, ssl_keyfile).  test_tls.py gives celerysalt the
very same result-backend URL.

Topics under CSIT_TOPIC_PREFIX:
  .event   records what it receives (record.py, over TLS too)
  .add     RPC: returns {"sum": a + b}

Environment: CSIT_BROKER_URL, CSIT_RESULT_BACKEND, CSIT_QUEUE,
CSIT_TOPIC_PREFIX, CSIT_RECORD_URL, CSIT_RECORD_PREFIX, CSIT_TLS_CA,
CSIT_TLS_CERT, CSIT_TLS_KEY.
"""

import os
import ssl

from celery import Celery
from celery_salt import event, subscribe
from celery_salt.django.celery import setup_salt_queue

from record import record

P = os.environ["CSIT_TOPIC_PREFIX"]

app = Celery("csit_tls_salt", broker=os.environ["CSIT_BROKER_URL"],
             backend=os.environ["CSIT_RESULT_BACKEND"])
app.conf.update(
    result_serializer="json",
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    result_expires=3600,
    broker_use_ssl={
        "ca_certs": os.environ["CSIT_TLS_CA"],
        "certfile": os.environ["CSIT_TLS_CERT"],
        "keyfile": os.environ["CSIT_TLS_KEY"],
        "cert_reqs": ssl.CERT_REQUIRED,
    },
)
setup_salt_queue(app, queue_name=os.environ["CSIT_QUEUE"])


@event(f"{P}.event", version="v1")
class TlsEvent:
    n: int


@subscribe(f"{P}.event")
def on_event(data):
    return record("tls.on_event", data.model_dump(mode="json"))


@event(f"{P}.add", mode="rpc")
class AddRequest:
    a: int
    b: int


@subscribe(f"{P}.add")
def on_add(data):
    return {"sum": data.a + data.b}
