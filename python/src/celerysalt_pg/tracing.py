"""The trace context of what a transaction publishes (docs/tracing.md).

``set_traceparent(conn)`` copies the W3C trace context of the current
OpenTelemetry span into ``celerysalt.traceparent`` and
``celerysalt.tracestate`` for the current transaction
(``set_config(..., true)``).  The events the transaction publishes, the
follow actions its UPDATEs fire and its ``celerysalt_call`` requests then
carry it in their message headers, and a Celery worker instrumented with
OpenTelemetry (``CeleryInstrumentor``) runs each task as a child of that
span.

Call it inside the transaction that publishes: a setting made with
``set_config(..., true)`` ends with the transaction, and in autocommit mode
that is the statement itself (the function refuses a psycopg or Django
connection that is not in a transaction).  ``conn`` is a psycopg 3
connection or cursor, a Django connection or cursor (any DB-API cursor
taking ``%s`` parameters), or a SQLAlchemy ``Session`` or ``Connection``.

OpenTelemetry is optional (``pip install celerysalt-pg[opentelemetry]``): it
is imported only when no ``traceparent`` is passed.  The context is written
with the W3C propagator whatever propagators the application configured,
since W3C Trace Context is what the database carries.
"""

from __future__ import annotations

from typing import Any, Optional

from celerysalt_pg.follow import fetch_one

# What celerysalt.tracestate accepts (longer lists are dropped, as a vendor
# may drop a tracestate it cannot carry whole).
TRACESTATE_MAX_LEN = 8192

_SQL = ("SELECT pg_catalog.set_config('celerysalt.traceparent', %s, true),"
        " pg_catalog.set_config('celerysalt.tracestate', %s, true)")


def current_trace_context(context: Any = None) -> tuple[Optional[str], Optional[str]]:
    """The W3C ``(traceparent, tracestate)`` of the current span (or of the
    span in ``context``, an OpenTelemetry ``Context``); ``(None, None)``
    without a valid span, ``tracestate`` None when empty."""
    try:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("celerysalt_pg.tracing needs opentelemetry-api "
                          "(pip install celerysalt-pg[opentelemetry]) or an explicit traceparent") from exc
    carrier: dict = {}
    TraceContextTextMapPropagator().inject(carrier, context=context)
    tracestate = carrier.get("tracestate") or None
    if tracestate is not None and len(tracestate) > TRACESTATE_MAX_LEN:
        tracestate = None
    return carrier.get("traceparent"), tracestate


def _require_transaction(conn: Any) -> None:
    """Refuse the connections known to run each statement in its own
    transaction right now: the setting would end with this statement."""
    pg = conn if hasattr(conn, "info") else getattr(conn, "connection", None)   # a psycopg cursor's
    status = getattr(getattr(pg, "info", None), "transaction_status", None)
    if status is not None and getattr(pg, "autocommit", False):
        from psycopg.pq import TransactionStatus
        if status == TransactionStatus.IDLE:
            raise RuntimeError("set_traceparent needs a transaction: this psycopg connection is in "
                               "autocommit mode outside a transaction (use `with conn.transaction():`)")
    get_autocommit = getattr(conn, "get_autocommit", None)
    if callable(get_autocommit) and hasattr(conn, "in_atomic_block") and \
            get_autocommit() and not conn.in_atomic_block:
        raise RuntimeError("set_traceparent needs a transaction: call it inside "
                           "django.db.transaction.atomic()")


def set_traceparent(conn: Any, traceparent: Optional[str] = None, tracestate: Optional[str] = None, *,
                    context: Any = None) -> Optional[str]:
    """Set ``celerysalt.traceparent`` / ``celerysalt.tracestate`` for the
    current transaction of ``conn``.

    Without ``traceparent`` they come from the current OpenTelemetry span
    (or from ``context``); with no valid span both are cleared, so nothing
    set earlier in the transaction leaks into later events.  Returns the
    traceparent set, or None.  A malformed explicit value is refused by the
    server with SQLSTATE 22023 (the driver's error)."""
    if traceparent is None:
        traceparent, tracestate = current_trace_context(context)
    if not traceparent:
        traceparent, tracestate = None, None
    params = [traceparent or "", tracestate or ""]
    module = type(conn).__module__
    if module.startswith("sqlalchemy"):
        from sqlalchemy import text
        conn.execute(text("SELECT pg_catalog.set_config('celerysalt.traceparent', :tp, true),"
                          " pg_catalog.set_config('celerysalt.tracestate', :ts, true)"),
                     {"tp": params[0], "ts": params[1]})
        return traceparent
    _require_transaction(conn)
    fetch_one(conn, _SQL, params)
    return traceparent
