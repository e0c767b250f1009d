"""What a handler received, pushed to Redis so the tests can read it.

Each record is a JSON document RPUSHed to <CSIT_RECORD_PREFIX>:<handler>:
  handler   the handler's label ("salt.on_compat", "tchu.on_compat", ...)
  task_id   the Celery id of the task that ran the handler
  raw       the task's first argument as the worker decoded it from the
            message (the payload dict; _tchu_meta included when present)
  received  what the handler function itself was given, as JSON: for
            celery-salt the validated model's model_dump(mode="json"), for
            tchu-tchu the dict (tchu-tchu strips _tchu_meta)
"""

import json
import os

import redis
from celery import current_task

_client = None


def _redis():
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["CSIT_RECORD_URL"], socket_timeout=5)
    return _client


def record(handler, received):
    req = current_task.request
    doc = {
        "handler": handler,
        "task_id": req.id,
        "raw": req.args[0] if req.args else None,
        "received": received,
    }
    _redis().rpush(f"{os.environ['CSIT_RECORD_PREFIX']}:{handler}", json.dumps(doc))
    return {"handled_by": handler}
