"""celerysalt_pg.registry without a database: DSN handling, the errors
celery-salt sees when PostgreSQL is unreachable, the error classes.  The
behaviour against a real cluster and real celery-salt workers is tested in
test/integration/test_python_registry.py."""

from __future__ import annotations

import logging
import socket
import time

import pytest
from celery_salt.core import event_utils
from celery_salt.core.exceptions import SchemaConflictError, SchemaRegistryUnavailableError
from celery_salt.core.registry import get_schema_registry, set_schema_registry
from pydantic import BaseModel

from celerysalt_pg import registry as mod
from celerysalt_pg.registry import (
    PostgresSchemaRegistry,
    RegistrySchemaConflictError,
    RegistryUnavailableError,
    SchemaIncompatibleError,
    SchemaNotFoundError,
    redact_dsn,
)

SECRET = "s3cret-pw-unit"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def down():
    return PostgresSchemaRegistry(f"host=127.0.0.1 port={closed_port()} dbname=app user=billing "
                                  f"password={SECRET}", service="billing", connect_timeout=2)


def test_redact_dsn_hides_the_password():
    assert SECRET not in redact_dsn(f"host=db user=u password={SECRET} dbname=app")
    assert "password=***" in redact_dsn(f"host=db user=u password={SECRET}")
    url = redact_dsn(f"postgresql://u:{SECRET}@db:5433/app?sslmode=require")
    assert SECRET not in url and "port=5433" in url and "sslmode=require" in url
    assert set(redact_dsn("host=db user=u").split()) == {"host=db", "user=u"}


def test_constructor_opens_nothing_and_hides_the_password(down):
    assert down._conn is None
    assert SECRET not in repr(down) and "service='billing'" in repr(down)
    with pytest.raises(ValueError) as err:
        PostgresSchemaRegistry(f"host=db password={SECRET} 'unterminated", service="x")
    assert SECRET not in str(err.value)
    with pytest.raises(ValueError):
        PostgresSchemaRegistry("host=db", service="")


def test_connect_timeout_and_application_name_defaults():
    r = PostgresSchemaRegistry("host=db connect_timeout=9", service="billing")
    assert "connect_timeout=9" in r._conninfo and "application_name=" in r._conninfo
    r = PostgresSchemaRegistry("host=db connect_timeout=9", service="billing", connect_timeout=3,
                               application_name="mine")
    assert "connect_timeout=3" in r._conninfo and "application_name=mine" in r._conninfo
    assert "connect_timeout=5" in PostgresSchemaRegistry("host=db", service="b")._conninfo


def test_unreachable_database_raises_celery_salts_error(down):
    t0 = time.monotonic()
    for call in (lambda: down.get_schema("t"), lambda: down.get_schema_record("t"),
                 lambda: down.register_schema("t", "v1", {"type": "object"}, "m", "C")):
        with pytest.raises(SchemaRegistryUnavailableError) as err:
            call()
        assert isinstance(err.value, RegistryUnavailableError)
        assert "could not connect to the schema registry" in str(err.value)
        assert "password=***" in str(err.value) and SECRET not in str(err.value)
    assert time.monotonic() - t0 < 10


def test_track_subscriber_never_raises(down, caplog):
    with caplog.at_level(logging.WARNING, logger="celerysalt_pg.registry"):
        assert down.track_subscriber("t", "handler") is None
    assert "could not record subscriber handler" in caplog.text and SECRET not in caplog.text


def test_celery_salt_registration_with_the_database_down_is_deferred(down):
    """celery-salt's own import-time path: a warning and its pending list, no exception."""

    class Thing(BaseModel):
        n: int

    before = get_schema_registry()
    set_schema_registry(down)
    try:
        event_utils.register_event_schema("unit.thing", "v1", Thing, Thing)
    finally:
        set_schema_registry(before)
    pending = getattr(event_utils._cache_schema_for_later, "pending_schemas", [])
    assert any(p["topic"] == "unit.thing" for p in pending)


def test_error_classes_are_celery_salts():
    c = RegistrySchemaConflictError("t", "v1", 'schema conflict for topic "t" version "v1"', "23505",
                                    "The schema differs from the registered one at /x.", "Use a new version.")
    assert isinstance(c, SchemaConflictError) and (c.topic, c.version) == ("t", "v1")
    assert str(c) == ('schema conflict for topic "t" version "v1" (SQLSTATE 23505)\n'
                      "DETAIL:  The schema differs from the registered one at /x.\nHINT:  Use a new version.")
    assert c.sqlstate == "23505" and c.detail.endswith("/x.") and c.hint == "Use a new version."
    assert issubclass(SchemaIncompatibleError, SchemaConflictError)
    assert issubclass(SchemaNotFoundError, SchemaRegistryUnavailableError)


def test_fork_handler_drops_the_connection_without_closing_it(down):
    class Conn:
        closed = False

        def close(self):
            raise AssertionError("a child must not close its parent's connection")

    down._conn = Conn()
    down._pid = -1
    mod._after_fork_in_child()
    assert down._conn is None and down._pid > 0
