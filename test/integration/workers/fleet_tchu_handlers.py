"""tchu-tchu 3.0.4 handlers of fleet_tchu_worker.py, in their own module as
tchu-tchu documents (subscriber_modules): imported by bind_tchu_queue when
the worker starts.  CSIT_FLEET_TOPIC, plus <topic>.pattern.* as a pattern."""

import os

from tchu_tchu import subscribe

from record import record

TOPIC = os.environ["CSIT_FLEET_TOPIC"]


@subscribe(TOPIC)
def on_fleet(data):
    return record("fleet_tchu.on_fleet", data)


@subscribe(f"{TOPIC}.pattern.*")
def on_pattern(data):
    return record("fleet_tchu.on_pattern", data)
