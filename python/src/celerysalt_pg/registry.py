"""celery-salt's schema registry, kept in PostgreSQL by the celerysalt extension.

One line in a service, before its event modules are imported::

    from celery_salt.core.registry import set_schema_registry
    from celerysalt_pg.registry import PostgresSchemaRegistry

    set_schema_registry(PostgresSchemaRegistry("postgresql://billing@db/app", service="billing"))

celery-salt 1.6.0 then registers every ``@event`` / ``SaltEvent`` schema in
``celerysalt_schemas`` at import (``celerysalt_register_schema``, then
``celerysalt_register_property_order`` with the JSON text, which keeps the
declaration order of fields for generated models), looks up the
schema of each ``@subscribe(topic)`` there (``celerysalt_get_schema``: a
subscriber needs no copy of the publisher's classes) and records its handlers
(``celerysalt_track_subscriber``).  The interface is the duck-typed one of
``celery_salt.core.registry.InMemorySchemaRegistry`` (docs/wire-format.md#registry-semantics):
``register_schema``, ``get_schema``, ``track_subscriber``.

Errors are celery-salt's own classes, with the SQLSTATE, message, detail and
hint of PostgreSQL kept (``sqlstate``, ``detail``, ``hint`` attributes):

- a different schema for a registered (topic, version) (23505) or a version
  the topic's compatibility mode refuses (42P17): ``SchemaConflictError``
  (subclasses ``RegistrySchemaConflictError`` / ``SchemaIncompatibleError``),
  which celery-salt lets through at import: the service fails fast;
- the database unreachable, a statement timeout, a lost connection:
  ``SchemaRegistryUnavailableError`` (``RegistryUnavailableError``), which
  celery-salt treats as "retry later" when registering and as fatal in
  ``@subscribe``; an unknown topic or version (42704) raises the same class
  (``SchemaNotFoundError``), as the in-memory registry does.

Connections: one per process, opened on first use (never at construction),
autocommit, ``connect_timeout`` and ``statement_timeout`` short; a forked
child (Celery's prefork pool) opens its own and never touches the parent's.
The DSN's password is never logged nor put in an error message.

celery-salt registers again before every ``publish()`` and ``call()``: a
registration this process made or confirmed is remembered (a registered
version never changes), so only the first costs a round trip (two: the
property order is a second statement, best effort).

Roles (docs/security.md): ``get_schema`` needs ``celerysalt_reader``,
``track_subscriber`` ``celerysalt_publisher``, registering ``celerysalt_admin``.
A service whose role may not register (no EXECUTE on
``celerysalt_register_schema``, learnt when the session opens) checks its
definitions against the registered ones instead: equal passes, different
raises the conflict, not registered yet raises
``SchemaRegistryUnavailableError`` (celery-salt logs a warning and the
service starts).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import psycopg
from celery_salt.core.exceptions import (  # type: ignore[import-untyped]
    CelerySaltError,
    SchemaConflictError,
    SchemaRegistryUnavailableError,
)
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Json, Jsonb

__all__ = [
    "PostgresSchemaRegistry",
    "RegistrySchemaConflictError",
    "RegistryUnavailableError",
    "SchemaIncompatibleError",
    "SchemaNotFoundError",
    "SchemaRecord",
    "SchemaRegistrationError",
    "redact_dsn",
]

logger = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT = 5          # seconds (libpq's minimum is 2)
DEFAULT_STATEMENT_TIMEOUT = 5000     # milliseconds

# SQLSTATEs meaning "the registry cannot answer now; it may later".
_UNAVAILABLE_CLASSES = ("08", "53", "57", "58")   # connection, resources, operator intervention, system
_UNAVAILABLE_STATES = ("55P03", "40001", "40P01")  # lock not available, serialization, deadlock


# ------------------------------------------------------------------ errors

class _PgDiag:
    """The SQLSTATE, detail and hint of the PostgreSQL error behind an exception."""

    sqlstate: Optional[str] = None
    detail: Optional[str] = None
    hint: Optional[str] = None

    def _set_diag(self, sqlstate: Optional[str], detail: Optional[str], hint: Optional[str]) -> None:
        self.sqlstate = sqlstate
        self.detail = detail
        self.hint = hint


class RegistrySchemaConflictError(SchemaConflictError, _PgDiag):  # type: ignore[misc]
    """A different schema is registered for (topic, version) (SQLSTATE 23505)."""

    def __init__(self, topic: str, version: str, message: str, sqlstate: Optional[str] = None,
                 detail: Optional[str] = None, hint: Optional[str] = None) -> None:
        super().__init__(topic, version, _full_message(message, sqlstate, detail, hint))
        self._set_diag(sqlstate, detail, hint)


class SchemaIncompatibleError(RegistrySchemaConflictError):
    """The new version breaks the topic's compatibility mode (SQLSTATE 42P17)."""


class RegistryUnavailableError(SchemaRegistryUnavailableError, _PgDiag):  # type: ignore[misc]
    """The registry cannot answer now (database unreachable, timeout, lost connection)."""

    def __init__(self, message: str, sqlstate: Optional[str] = None, detail: Optional[str] = None,
                 hint: Optional[str] = None) -> None:
        super().__init__(_full_message(message, sqlstate, detail, hint))
        self._set_diag(sqlstate, detail, hint)


class SchemaNotFoundError(RegistryUnavailableError):
    """No schema is registered for the topic or version (SQLSTATE 42704)."""


class SchemaRegistrationError(CelerySaltError, _PgDiag):  # type: ignore[misc]
    """The database refused a registration for another reason (invalid schema, bad
    version, missing privilege): celery-salt logs it and the service goes on."""

    def __init__(self, message: str, sqlstate: Optional[str] = None, detail: Optional[str] = None,
                 hint: Optional[str] = None) -> None:
        super().__init__(_full_message(message, sqlstate, detail, hint))
        self._set_diag(sqlstate, detail, hint)


def _full_message(message: str, sqlstate: Optional[str], detail: Optional[str],
                  hint: Optional[str]) -> str:
    text = message if sqlstate is None else f"{message} (SQLSTATE {sqlstate})"
    if detail:
        text += f"\nDETAIL:  {detail}"
    if hint:
        text += f"\nHINT:  {hint}"
    return text


def _diag(err: psycopg.Error) -> Dict[str, Optional[str]]:
    d = err.diag
    lines = str(err).strip().splitlines()
    message = d.message_primary or (lines[0] if lines else type(err).__name__)
    return {"message": message, "sqlstate": err.sqlstate, "detail": d.message_detail,
            "hint": d.message_hint}


def _canonical(value: Optional[Dict[str, Any]]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _is_unavailable(err: psycopg.Error) -> bool:
    state = err.sqlstate
    if state is None:       # no server answer: the connection failed or broke
        return isinstance(err, psycopg.OperationalError)
    return state[:2] in _UNAVAILABLE_CLASSES or state in _UNAVAILABLE_STATES


# ------------------------------------------------------------------ DSN

def redact_dsn(dsn: str) -> str:
    """The DSN as ``key=value`` pairs without its password (for logs and errors)."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "<unparsable DSN>"
    if "password" in params:
        params["password"] = "***"
    return make_conninfo("", **params)


# ------------------------------------------------------------------ records

@dataclass(frozen=True)
class SchemaRecord:
    """One registered (topic, version): what ``celerysalt_schemas`` holds."""

    topic: str
    version: str
    mode: str
    schema: Dict[str, Any]
    response_schema: Optional[Dict[str, Any]]
    error_schema: Optional[Dict[str, Any]]
    description: Optional[str]
    publisher_service: Optional[str]
    publisher_module: Optional[str]
    publisher_class: Optional[str]
    deprecated_reason: Optional[str]


# ------------------------------------------------------------------ fork safety

_instances: "weakref.WeakSet[PostgresSchemaRegistry]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for registry in list(_instances):
        registry._forget_connection()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# ------------------------------------------------------------------ registry

class PostgresSchemaRegistry:
    """celery-salt's schema registry on the celerysalt extension's tables.

    ``dsn``: a libpq connection string or URL (the password may be in it, in
    ``PGPASSWORD`` or a password file; it is never logged).  ``service``: the
    name this service is recorded under as publisher and subscriber.
    ``service_version``: recorded with the publisher.  ``connect_timeout``
    (seconds) and ``statement_timeout`` (milliseconds) bound every call; the
    DSN's own ``connect_timeout`` wins over the default but not over an
    explicit argument.
    """

    def __init__(self, dsn: str, service: str, *, service_version: Optional[str] = None,
                 queue: Optional[str] = None,
                 connect_timeout: Optional[int] = None,
                 statement_timeout: int = DEFAULT_STATEMENT_TIMEOUT,
                 application_name: Optional[str] = None) -> None:
        if not service:
            raise ValueError("service must be a non-empty name")
        try:
            params = conninfo_to_dict(dsn)
        except psycopg.Error:
            # libpq's message may quote the DSN, password included
            raise ValueError("PostgresSchemaRegistry: the DSN cannot be parsed "
                             "(libpq's message is not shown: it may contain the password)") from None
        if connect_timeout is not None:
            params["connect_timeout"] = str(connect_timeout)
        else:
            params.setdefault("connect_timeout", str(DEFAULT_CONNECT_TIMEOUT))
        if application_name is not None:
            params["application_name"] = application_name
        else:
            params.setdefault("application_name", f"celerysalt-pg registry ({service})"[:63])
        self._conninfo = make_conninfo("", **params)
        self._password = str(params["password"]) if params.get("password") else None
        self._where = redact_dsn(self._conninfo)
        self.service = service
        self.service_version = service_version
        self.queue = queue or None      # recorded with the service's subscriptions
        self.statement_timeout = int(statement_timeout)
        self._lock = threading.Lock()
        self._conn: Optional[psycopg.Connection[Any]] = None
        self._schema: Optional[str] = None      # the extension's schema
        self._may_register = True               # EXECUTE on celerysalt_register_schema
        # registrations this process made or confirmed: celery-salt registers
        # again before every publish() and call(); a registered version never changes
        self._registered: Dict[Tuple[str, ...], Dict[str, Any]] = {}
        self._pid = os.getpid()
        _instances.add(self)

    def __repr__(self) -> str:
        return f"<PostgresSchemaRegistry service={self.service!r} {self._where}>"

    # ---------------------------------------------------------- connection

    def _forget_connection(self) -> None:
        """In a forked child: drop the parent's connection without closing it
        (closing would end the parent's session); the next call opens one."""
        self._lock = threading.Lock()
        self._conn = None
        self._pid = os.getpid()

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True)
        except psycopg.Error as err:
            raise RegistryUnavailableError(
                self._scrub(f"could not connect to the schema registry ({self._where}): "
                            f"{str(err).strip()}"), err.sqlstate) from None
        try:
            row = conn.execute(
                "SELECT pg_catalog.set_config('statement_timeout', %s, false), n.nspname,"
                "       pg_catalog.has_function_privilege(pg_catalog.format("
                "           '%%I.celerysalt_register_schema(text, jsonb, text, text, text, jsonb, jsonb,"
                " text, text, text, text)', n.nspname), 'EXECUTE')"
                "  FROM (SELECT 1) one"
                "  LEFT JOIN pg_catalog.pg_extension e ON e.extname = 'celerysalt'"
                "  LEFT JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace",
                (str(self.statement_timeout),)).fetchone()
        except psycopg.Error as err:
            conn.close()
            raise RegistryUnavailableError(self._scrub(f"could not set up the registry session "
                                                       f"({self._where}): {err}"), err.sqlstate) from None
        if row is None or row[1] is None:
            conn.close()
            raise RegistryUnavailableError(
                f"the celerysalt extension is not installed in the database ({self._where})",
                hint="CREATE EXTENSION celerysalt (docs/registry.md).")
        self._schema = row[1]
        self._may_register = bool(row[2])
        logger.debug("schema registry connected: %s", self._where)
        return conn

    def _query(self, query: sql.SQL, params: Dict[str, Any]) -> Optional[Tuple[Any, ...]]:
        """Run one statement on this process's connection; its first row.

        Connection failures become RegistryUnavailableError (a connection that
        broke since its last use is replaced once); other database errors are
        raised as psycopg errors for the caller to map."""
        if self._pid != os.getpid():
            self._forget_connection()
        with self._lock:
            for attempt in (1, 2):
                reused = self._conn is not None
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                conn = self._conn
                try:
                    cur = conn.execute(query.format(ext=sql.Identifier(self._schema or "public")),
                                       params)
                    return cur.fetchone() if cur.description else None
                except psycopg.Error as err:
                    if conn.broken or conn.closed:
                        self._conn = None
                        if reused and attempt == 1:
                            logger.info("schema registry connection lost, reconnecting (%s)", self._where)
                            continue
                    if _is_unavailable(err):
                        d = _diag(err)
                        raise RegistryUnavailableError(
                            self._scrub(f"schema registry unavailable ({self._where}): {d['message']}"),
                            d["sqlstate"], d["detail"], d["hint"]) from None
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close this process's connection (the next call opens another)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __enter__(self) -> "PostgresSchemaRegistry":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---------------------------------------------------------- celery-salt's interface

    def register_schema(self, topic: str, version: str, schema: Dict[str, Any], publisher_module: str,
                        publisher_class: str, mode: str = "broadcast", description: str = "",
                        response_schema: Optional[Dict[str, Any]] = None,
                        error_schema: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Register (topic, version) with ``celerysalt_register_schema``.

        Returns ``{"created": True, ...}`` for a new version, or
        ``{"created": False, "existing_schema": <stored>, ...}`` when the same
        schema is registered (first writer wins), as celery-salt expects.
        Raises RegistrySchemaConflictError (23505), SchemaIncompatibleError
        (42P17), RegistryUnavailableError, or SchemaRegistrationError."""
        key = (topic, version, _canonical(schema), _canonical(response_schema), _canonical(error_schema))
        known = self._registered.get(key)
        if known is not None:
            return {"created": False, "topic": topic, "version": version, "existing_schema": known}
        result = self._register(topic, version, schema, publisher_module, publisher_class, mode,
                                description, response_schema, error_schema)
        self._registered[key] = schema if result.get("created") else result["existing_schema"]
        return result

    def _register(self, topic: str, version: str, schema: Dict[str, Any], publisher_module: str,
                  publisher_class: str, mode: str, description: str,
                  response_schema: Optional[Dict[str, Any]],
                  error_schema: Optional[Dict[str, Any]]) -> Dict[str, Any]:
        if self._conn is None or self._pid != os.getpid():
            # connect first: the session set-up learns whether this role may register
            self._query(sql.SQL("SELECT 1"), {})
        if not self._may_register:
            return self._verify_registered(topic, version, schema, response_schema, error_schema,
                                           publisher_module, publisher_class, None)
        params = {"topic": topic, "schema": Jsonb(schema), "version": version, "mode": mode,
                  "description": description or None,
                  "response_schema": None if response_schema is None else Jsonb(response_schema),
                  "error_schema": None if error_schema is None else Jsonb(error_schema),
                  "service": self.service, "module": publisher_module, "class": publisher_class,
                  "service_version": self.service_version}
        try:
            row = self._query(sql.SQL(
                "SELECT {ext}.celerysalt_register_schema("
                "topic => %(topic)s, schema => %(schema)s, version => %(version)s, mode => %(mode)s,"
                " description => %(description)s, response_schema => %(response_schema)s,"
                " error_schema => %(error_schema)s, publisher_service => %(service)s,"
                " publisher_module => %(module)s, publisher_class => %(class)s,"
                " publisher_version => %(service_version)s)"), params)
        except psycopg.errors.InsufficientPrivilege as err:
            return self._verify_registered(topic, version, schema, response_schema, error_schema,
                                           publisher_module, publisher_class, err)
        except psycopg.Error as err:
            d = _diag(err)
            msg = self._scrub(str(d["message"]))
            if err.sqlstate == "23505":
                raise RegistrySchemaConflictError(topic, version, msg, d["sqlstate"], d["detail"],
                                                  d["hint"]) from None
            if err.sqlstate == "42P17":
                raise SchemaIncompatibleError(topic, version, msg, d["sqlstate"], d["detail"],
                                              d["hint"]) from None
            raise SchemaRegistrationError(msg, d["sqlstate"], d["detail"], d["hint"]) from None
        assert row is not None
        result: Dict[str, Any] = row[0]
        self._record_property_order(topic, version, schema, response_schema, error_schema)
        return result

    def _record_property_order(self, topic: str, version: str, schema: Dict[str, Any],
                               response_schema: Optional[Dict[str, Any]],
                               error_schema: Optional[Dict[str, Any]]) -> None:
        """Give the registry the declaration order of the properties (jsonb sorts
        keys; generated models follow this order).  Json() sends the dicts as
        JSON text in their own key order.  Best effort: a registry without
        celerysalt_register_property_order (or a role without it) keeps
        models in name order, which is no reason to fail an import."""
        try:
            self._query(sql.SQL(
                "SELECT {ext}.celerysalt_register_property_order("
                "%(topic)s, %(version)s, %(schema)s, %(response_schema)s, %(error_schema)s)"),
                {"topic": topic, "version": version, "schema": Json(schema),
                 "response_schema": None if response_schema is None else Json(response_schema),
                 "error_schema": None if error_schema is None else Json(error_schema)})
        except (psycopg.Error, RegistryUnavailableError) as err:
            logger.debug("property order of %s %s not recorded: %s", topic, version, err)

    def get_schema(self, topic: str, version: str = "latest") -> Dict[str, Any]:
        """The registered JSON schema of (topic, version) via ``celerysalt_get_schema``;
        ``latest`` is the highest version in celery-salt's ``compare_versions`` order.

        Raises SchemaNotFoundError (a SchemaRegistryUnavailableError) for an
        unknown topic or version, RegistryUnavailableError when unreachable."""
        try:
            row = self._query(sql.SQL("SELECT {ext}.celerysalt_get_schema(%(topic)s, %(version)s)"),
                              {"topic": topic, "version": version})
        except psycopg.Error as err:
            raise self._read_error(err) from None
        assert row is not None
        schema: Dict[str, Any] = row[0]
        return schema

    def track_subscriber(self, topic: str, handler_name: str) -> None:
        """Record that ``handler_name`` of this service handles ``topic`` (a topic
        or a wildcard pattern), with the service's ``queue`` when it was given,
        via ``celerysalt_track_subscriber``.

        Observability only: a failure is logged as a warning, never raised
        (celery-salt would swallow it silently)."""
        try:
            self._query(sql.SQL("SELECT {ext}.celerysalt_track_subscriber(%(topic)s, %(service)s,"
                                " %(handler)s, %(queue)s)"),
                        {"topic": topic, "service": self.service, "handler": handler_name,
                         "queue": self.queue})
        except (psycopg.Error, SchemaRegistryUnavailableError) as err:
            logger.warning("could not record subscriber %s of %r for service %r: %s",
                           handler_name, topic, self.service, self._scrub(str(err)))

    # ---------------------------------------------------------- beyond celery-salt's interface

    def track_publisher(self, topic: str, publisher_module: Optional[str] = None,
                        publisher_class: Optional[str] = None) -> None:
        """Record that this service publishes ``topic`` (``celerysalt_track_publisher``)."""
        try:
            self._query(sql.SQL("SELECT {ext}.celerysalt_track_publisher(%(topic)s, %(service)s,"
                                " %(service_version)s, %(module)s, %(class)s)"),
                        {"topic": topic, "service": self.service, "service_version": self.service_version,
                         "module": publisher_module, "class": publisher_class})
        except psycopg.Error as err:
            d = _diag(err)
            raise SchemaRegistrationError(self._scrub(str(d["message"])), d["sqlstate"], d["detail"],
                                          d["hint"]) from None

    def get_schema_record(self, topic: str, version: str = "latest") -> SchemaRecord:
        """Everything registered for (topic, version): mode, request, response and
        error schemas (RPC), description, publisher.  Same version resolution
        and errors as get_schema (reads the ``celerysalt_catalog`` view and the
        ``celerysalt_schemas`` table: ``celerysalt_reader``)."""
        query = sql.SQL(
            "SELECT c.version, c.mode, c.schema, c.response_schema, c.error_schema, c.description,"
            "       c.publisher_service, c.publisher_module, c.publisher_class, c.deprecated_reason"
            "  FROM {ext}.celerysalt_schemas c"
            " WHERE c.topic = %(topic)s AND c.active"
            "   AND c.version = CASE WHEN %(version)s = 'latest'"
            "                        THEN (SELECT k.latest_version FROM {ext}.celerysalt_catalog k"
            "                               WHERE k.topic = %(topic)s)"
            "                        ELSE %(version)s END")
        try:
            row = self._query(query, {"topic": topic, "version": version})
            if row is None:
                # raises 42704 with the hint naming what exists
                self._query(sql.SQL("SELECT {ext}.celerysalt_get_schema(%(topic)s, %(version)s)"),
                            {"topic": topic, "version": version})
                raise SchemaNotFoundError(f'topic "{topic}" has no registered schema version "{version}"')
        except psycopg.Error as err:
            raise self._read_error(err) from None
        return SchemaRecord(topic, *row)

    # ---------------------------------------------------------- helpers

    def _read_error(self, err: psycopg.Error) -> Exception:
        d = _diag(err)
        msg = self._scrub(str(d["message"]))
        if err.sqlstate == "42704":
            return SchemaNotFoundError(msg, d["sqlstate"], d["detail"], d["hint"])
        return RegistryUnavailableError(f"schema registry refused the lookup ({self._where}): {msg}",
                                        d["sqlstate"], d["detail"], d["hint"])

    def _verify_registered(self, topic: str, version: str, schema: Dict[str, Any],
                           response_schema: Optional[Dict[str, Any]], error_schema: Optional[Dict[str, Any]],
                           publisher_module: str, publisher_class: str,
                           err: Optional[psycopg.Error]) -> Dict[str, Any]:
        """Registration refused for lack of privilege (42501): compare with what
        is registered instead, so a service running as ``celerysalt_publisher``
        still fails fast on a conflicting definition."""
        try:
            record = self.get_schema_record(topic, version)
        except SchemaNotFoundError:
            raise RegistryUnavailableError(
                f'topic "{topic}" version "{version}" is not registered and this role may not register it '
                "(permission denied for function celerysalt_register_schema)", "42501",
                hint="Register the schemas from a role holding celerysalt_admin (a deploy step), "
                     "or grant celerysalt_admin to the service's role.") from None
        for what, mine, registered in (("schema", schema, record.schema),
                                        ("response schema", response_schema, record.response_schema),
                                        ("error schema", error_schema, record.error_schema)):
            if mine is not None and registered is not None and mine != registered:
                raise RegistrySchemaConflictError(
                    topic, version, f'schema conflict for topic "{topic}" version "{version}"',
                    "23505", f"The {what} differs from the registered one.",
                    "A registered version never changes: register the new schema as a new version.")
        try:
            self.track_publisher(topic, publisher_module, publisher_class)
        except (SchemaRegistrationError, SchemaRegistryUnavailableError) as track_err:
            logger.warning("could not record publisher %r of %r: %s", self.service, topic, track_err)
        return {"created": False, "topic": topic, "version": version, "existing_schema": record.schema}
