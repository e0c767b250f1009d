"""A mixed fleet of celery-salt and tchu-tchu services without noise.

The extension publishes every event once per name in
``celerysalt.dispatcher_tasks`` (``celery_salt.dispatch_event, tchu_tchu.dispatch_event``
in a mixed fleet): both copies carry the event's topic as routing key, so a
queue bound to the topic receives both.  A stock worker runs the copy for its
own library's dispatcher and rejects the other as "Received unregistered task",
with a traceback in its log and a ``FAILURE``/``NotRegistered`` record in its
result backend (docs/wire-format.md#one-message-per-dispatcher-task).

One line after the service's queue setup makes the other copy a no-op::

    setup_salt_queue(app, queue_name="shipping")        # or setup_celery_queue + bind_tchu_queue
    ignore_foreign_dispatchers(app)

registers each *other* library's dispatcher task name in the app as a task
that acknowledges the message, logs it at DEBUG and stores no result
(``ignore_result=True``).  The service's own dispatcher is the one its setup
helper routed in ``task_routes``; names can also be given explicitly.  Why this
and not per-topic task names: docs/python.md "A mixed fleet".
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, List, Optional

__all__ = ["KNOWN_DISPATCHERS", "ignore_foreign_dispatchers", "own_dispatchers"]

logger = logging.getLogger(__name__)

#: The dispatcher task names of the libraries the extension publishes for.
KNOWN_DISPATCHERS = ("celery_salt.dispatch_event", "tchu_tchu.dispatch_event")


def own_dispatchers(app: Any) -> List[str]:
    """The known dispatcher names the app's setup routed in ``task_routes``
    (``setup_salt_queue`` routes ``celery_salt.dispatch_event``,
    ``setup_celery_queue`` ``tchu_tchu.dispatch_event``).  Reads the
    configuration only: the app is not finalized."""
    routes = app.conf.task_routes
    if not isinstance(routes, dict):
        return []
    return [name for name in KNOWN_DISPATCHERS if name in routes]


def ignore_foreign_dispatchers(app: Any, names: Optional[Iterable[str]] = None) -> List[str]:
    """Register each foreign dispatcher task name in ``app`` as a no-op task.

    ``names`` defaults to the known dispatcher names (``KNOWN_DISPATCHERS``)
    other than the app's own (``own_dispatchers``); call it after the
    library's queue setup.  Raises ``ValueError`` when the app routes no known
    dispatcher and no names are given (the function could not tell which copy
    is the service's own), or when a given name is one of the app's own.

    The task takes any arguments, returns None, is acknowledged before it runs
    (Celery's default) and stores no result whatever the message's
    ``ignore_result`` header says is the task's default (``ignore_result=True``).
    Returns the names registered.
    """
    own = own_dispatchers(app)
    if names is None:
        if not own:
            raise ValueError("cannot tell the service's own dispatcher: no celery_salt.dispatch_event or "
                             "tchu_tchu.dispatch_event in app.conf.task_routes; call "
                             "ignore_foreign_dispatchers() after setup_salt_queue() / setup_celery_queue(), "
                             "or pass names=")
        wanted = [name for name in KNOWN_DISPATCHERS if name not in own]
    else:
        wanted = list(dict.fromkeys(names))
        clash = [name for name in wanted if name in own]
        if clash:
            raise ValueError(f"{clash[0]!r} is this service's own dispatcher (routed in task_routes)")
    for name in wanted:
        _register_noop(app, name)
    return wanted


def _register_noop(app: Any, name: str) -> None:
    def ignore_foreign_event(self: Any, *args: Any, **kwargs: Any) -> None:
        logger.debug("ignored %s %s for routing key %r: another library's copy of the event",
                     name, self.request.id, kwargs.get("routing_key"))

    ignore_foreign_event.__name__ = "ignore_" + name.replace(".", "_")
    # typed=False: whatever the copy carries is accepted;
    # shared=False: only this app, not every app of the process.
    app.task(name=name, bind=True, shared=False, ignore_result=True, typed=False,
             acks_late=False)(ignore_foreign_event)
