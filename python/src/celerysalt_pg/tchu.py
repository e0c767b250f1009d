"""Queue bindings for tchu-tchu 3.x services, done the way setup_celery_queue meant to.

tchu-tchu 3.0.2 to 3.0.4's ``setup_celery_queue`` (and ``Celery.message_broker``)
never bind a service's queue to its handler topics: its receivers are nested
functions connected weakly to Celery's signals, garbage-collected before the
worker starts, and the worker's queue list is cached before they would run.
On a fresh broker such a service's queue is bound with routing key
``<queue_name>`` only and gets no event (docs/wire-format.md#pitfalls-of-the-python-libraries).

Call ``bind_tchu_queue`` right after tchu-tchu's documented setup::

    setup_celery_queue(app, queue_name="ledger", subscriber_modules=["ledger.subscribers"])
    bind_tchu_queue(app, "ledger", subscriber_modules=["ledger.subscribers"],
                    dsn=os.environ["CELERYSALT_DSN"])

When the worker starts (Celery's ``celeryd_after_setup``, before it consumes;
receivers held strongly, for this app only) it imports the subscriber modules,
declares the queue as the setup configured it and binds it to the exchange
with every routing key tchu-tchu's registry holds; if the broker could not be
reached then, it binds again at ``worker_ready``.  Bindings are only added,
never removed (as every tchu-tchu and celery-salt helper): a topic no longer
handled keeps its binding until it is unbound or the queue deleted.

With ``dsn``, after the bindings exist it records each handler in PostgreSQL
(``celerysalt_track_subscriber(topic, service, handler)``), which also sends
again at once the events that were published while no queue was bound for
their topic (``celerysalt_unroutable``).  Recording needs the role
``celerysalt_publisher``; a failure is logged as a warning, never raised: the
periodic retry (``celerysalt.unroutable_retry_interval``) still delivers them.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Iterable, List, Optional, Sequence, Tuple

__all__ = ["bind_tchu_queue", "subscriptions"]

logger = logging.getLogger(__name__)


def subscriptions() -> List[Tuple[str, str]]:
    """(routing key or pattern, handler id) of every handler in tchu-tchu's
    registry of this process, sorted.  The handler id is tchu-tchu's
    ``<module>.<function>`` unless the handler was given one."""
    from tchu_tchu.registry import get_registry  # type: ignore[import-untyped]

    registry = get_registry()
    pairs = set()
    for key in registry.get_all_routing_keys_and_patterns():
        for handler in registry.get_handlers(key):
            # get_handlers(key) also returns pattern handlers matching key
            if handler.get("routing_key") == key:
                pairs.add((key, str(handler.get("id") or handler.get("name"))))
    return sorted(pairs)


def bind_tchu_queue(app: Any, queue_name: str, subscriber_modules: Optional[Sequence[str]] = None, *,
                    exchange_name: str = "tchu_events", dsn: Optional[str] = None,
                    service: Optional[str] = None) -> None:
    """Bind ``queue_name`` to the topics of the service's tchu-tchu handlers
    when the worker of ``app`` starts, and (with ``dsn``) record them in
    PostgreSQL.

    ``subscriber_modules`` defaults to the modules given to tchu-tchu's
    ``Celery(include=...)`` or ``app.conf.include``; handlers defined in the
    app's own module need none.  The queue is declared with the settings of
    the entry of that name in ``app.conf.task_queues`` (what
    ``setup_celery_queue`` configured: durable, no arguments), or durable and
    not auto-delete if there is none.  ``service`` (default ``queue_name``) is
    the service name recorded in ``celerysalt_subscribers``.

    Only registers signal receivers; nothing connects before the worker
    starts, so a process that merely imports the app (a publisher, a shell)
    touches neither broker nor database.
    """
    from celery.signals import celeryd_after_setup, worker_ready

    if subscriber_modules is None:
        subscriber_modules = list(getattr(app, "tchu_include", None) or app.conf.include or ())
    modules = list(subscriber_modules)
    state = {"bound": False, "recorded": False}

    def bind(why: str) -> None:
        for module in modules:
            importlib.import_module(module)
        keys = sorted({key for key, _ in subscriptions()})
        if not keys:
            logger.warning("tchu-tchu queue %r: no handlers registered, nothing to bind (subscriber modules: %s)",
                           queue_name, modules or "none")
            return
        _declare_and_bind(app, queue_name, exchange_name, keys)
        state["bound"] = True
        logger.info("tchu-tchu queue %r bound to %s with %d routing key(s) (%s)",
                    queue_name, exchange_name, len(keys), why)
        if dsn is not None and not state["recorded"]:
            state["recorded"] = _record_subscriptions(dsn, service or queue_name, subscriptions(), queue_name)

    def on_after_setup(sender: Any = None, instance: Any = None, **kwargs: Any) -> None:
        if instance is not None and getattr(instance, "app", app) is not app:
            return
        try:
            bind("before consuming")
        except ImportError:
            raise
        except Exception as exc:  # the broker may not be up yet: the consumer will wait for it
            logger.warning("tchu-tchu queue %r: could not bind before consuming (%s); will bind when ready",
                           queue_name, exc)

    def on_ready(sender: Any = None, **kwargs: Any) -> None:
        consumer_app = getattr(sender, "app", app)
        if consumer_app is not app or state["bound"]:
            return
        try:
            bind("when ready")
        except Exception:
            logger.exception("tchu-tchu queue %r: could not bind its routing keys", queue_name)

    # Strong references (weak=False), unlike tchu-tchu 3.x's own receivers.
    celeryd_after_setup.connect(on_after_setup, weak=False)
    worker_ready.connect(on_ready, weak=False)


def _queue_settings(app: Any, queue_name: str) -> Tuple[bool, bool, dict]:
    for queue in app.conf.task_queues or ():
        if getattr(queue, "name", None) == queue_name:
            return bool(queue.durable), bool(queue.auto_delete), dict(queue.queue_arguments or {})
    return True, False, {}


def _declare_and_bind(app: Any, queue_name: str, exchange_name: str, keys: Iterable[str]) -> None:
    from kombu import Exchange, Queue, binding

    durable, auto_delete, arguments = _queue_settings(app, queue_name)
    exchange = Exchange(exchange_name, type="topic", durable=True)
    queue = Queue(queue_name, exchange=exchange, routing_key=queue_name,
                  bindings=[binding(exchange, routing_key=key) for key in keys],
                  durable=durable, auto_delete=auto_delete, queue_arguments=arguments or None)
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=3)
        queue(conn.default_channel).declare()


def _record_subscriptions(dsn: str, service: str, pairs: List[Tuple[str, str]],
                          queue: Optional[str] = None) -> bool:
    """celerysalt_track_subscriber for each (topic, handler), with the queue;
    True when all were recorded.  Logs, never raises."""
    try:
        import psycopg
        from psycopg import sql

        with psycopg.connect(dsn, autocommit=True, connect_timeout=5,
                             application_name=f"celerysalt-pg tchu ({service})"[:63]) as conn:
            row = conn.execute("SELECT n.nspname FROM pg_catalog.pg_extension e"
                               " JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace"
                               " WHERE e.extname = 'celerysalt'").fetchone()
            if row is None:
                logger.warning("could not record the subscriptions of %r: the celerysalt extension is not"
                               " installed in that database", service)
                return False
            track = sql.SQL("SELECT {}.celerysalt_track_subscriber(%s, %s, %s, %s)").format(
                sql.Identifier(row[0]))
            for topic, handler in pairs:
                conn.execute(track, (topic, service, handler, queue))
    except Exception as exc:  # psycopg's messages carry no password
        logger.warning("could not record the subscriptions of %r in PostgreSQL: %s", service,
                       str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        return False
    logger.info("recorded %d subscription(s) of %r in PostgreSQL", len(pairs), service)
    return True
