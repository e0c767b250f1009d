"""celerysalt_pg.registry.PostgresSchemaRegistry with real celery-salt 1.6.0
services (issue 15, item 1; docs/python.md).

Each service is a stock Celery worker (workers/registry_*.py) set up with the
one line ``set_schema_registry(PostgresSchemaRegistry(dsn, service=...))``,
connected to the session cluster as a plain LOGIN role holding one
celerysalt role:

  billing   celerysalt_admin      publishes <p>.invoice.paid (@event) and
                                  answers <p>.quote (SaltEvent, RPC)
  shipping  celerysalt_publisher  subscribes to <p>.invoice.paid with NO
                                  event class: the schema comes from Postgres
  refunds   either                declares <p>.invoice.paid v1 differently

The DSNs carry a password (trust authentication ignores it) that must never
reach a log.
"""

from __future__ import annotations

import json
import os
import threading
import time

import psycopg
import pytest
from pydantic import BaseModel, create_model

import rig
from celery_salt.core.exceptions import SchemaConflictError, SchemaRegistryUnavailableError
from celerysalt_pg.registry import (
    PostgresSchemaRegistry,
    RegistrySchemaConflictError,
    RegistryUnavailableError,
    SchemaIncompatibleError,
    SchemaNotFoundError,
)

SALT_RESULT_DB = int(os.environ.get("CSIT_REDIS_DB_SALT", "11"))
PASSWORD = "pw-never-logged-7f3a"


def role(pg, name: str, member_of: str) -> str:
    """A plain LOGIN role holding only `member_of`; its DSN (with a password)."""
    pg.execute(f'DROP ROLE IF EXISTS "{name}"')
    pg.execute(f'CREATE ROLE "{name}" LOGIN IN ROLE {member_of}')
    assert pg.scalar("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = %s", (name,)) is False
    return pg.dsn.replace("user=postgres", f"user={name}") + f" password={PASSWORD}"


# The RPC models of registry_billing.py's Quote, declared again to compare
# (a nested class's title is its own name).
class Schema(BaseModel):
    sku: str
    qty: int


class Response(BaseModel):
    sku: str
    total: float


class Error(BaseModel):
    error_code: str
    error_message: str


INVOICE_PAID = create_model("InvoicePaid", __base__=BaseModel, invoice_id=(int, ...), amount=(float, ...),
                            currency=(str, "EUR"))


@pytest.fixture(scope="module")
def reg(rig_dir, run_id, amqp, pg):
    """Roles, and the billing and shipping services started in that order
    (a subscriber looks its schema up at import)."""
    prefix = f"csit.{run_id}.reg"
    records = rig.RedisDb(SALT_RESULT_DB, f"csit:{run_id}:regrec")
    dsns = {
        "admin": role(pg, f"csit_reg_billing_{run_id}", "celerysalt_admin"),
        "publisher": role(pg, f"csit_reg_shipping_{run_id}", "celerysalt_publisher"),
        "reader": role(pg, f"csit_reg_reader_{run_id}", "celerysalt_reader"),
    }
    common = {"CSIT_BROKER_URL": rig.BROKER_URL, "CSIT_TOPIC_PREFIX": prefix,
              "CSIT_RECORD_URL": records.url, "CSIT_RECORD_PREFIX": records.prefix,
              "CSIT_RESULT_BACKEND": rig.redis_url(SALT_RESULT_DB)}
    queues = {k: f"csit_reg_{k}_{run_id}" for k in ("billing", "shipping")}
    for q in queues.values():
        amqp.track(q)
    billing = rig.CeleryWorker("registry_billing", f"regb-{run_id}", rig_dir / "worker-reg-billing.log",
                               dict(common, CSIT_QUEUE=queues["billing"], CSIT_REGISTRY_DSN=dsns["admin"]))
    shipping = rig.CeleryWorker("registry_shipping", f"regs-{run_id}", rig_dir / "worker-reg-shipping.log",
                                dict(common, CSIT_QUEUE=queues["shipping"],
                                     CSIT_REGISTRY_DSN=dsns["publisher"]))
    try:
        billing.start(60)
        shipping.start(60)
        yield type("Reg", (), dict(prefix=prefix, pg=pg, records=records, dsns=dsns, common=common,
                                   billing=billing, shipping=shipping, run_id=run_id))
    finally:
        rig.stop_all([billing, shipping])
        records.close()
        for w in (billing, shipping):
            assert PASSWORD not in w.log_text()


def start_failing(worker_factory, module, env, timeout=60) -> str:
    """Start a worker that must fail at import; its log."""
    w = worker_factory(module, env, wait=False)
    rig.wait_until(lambda: not w.alive(), timeout, f"{module} to exit",
                   on_timeout=lambda: rig.tail(w.log_file))
    assert w.proc.returncode != 0
    return w.log_text()


# ---------------------------------------------------------------- (1) register

def test_import_registers_the_event_class(reg):
    topic = f"{reg.prefix}.invoice.paid"
    row = reg.pg.execute(
        "SELECT schema, mode, description, publisher_service, publisher_module, publisher_class, created_by"
        "  FROM celerysalt_schemas WHERE topic = %s AND version = 'v1'", (topic,))
    assert len(row) == 1, row
    schema, mode, description, service, module, cls, created_by = row[0]
    assert schema == INVOICE_PAID.model_json_schema()
    assert (mode, description, service, module, cls) == ("broadcast", None, "billing", "registry_billing",
                                                        "InvoicePaid")
    assert created_by == f"csit_reg_billing_{reg.run_id}"
    # the publisher is recorded, the fields are in the catalog
    assert reg.pg.scalar("SELECT publishers FROM celerysalt_catalog WHERE topic = %s", (topic,)) == ["billing"]
    assert {r[0] for r in reg.pg.execute("SELECT path FROM celerysalt_catalog_fields WHERE topic = %s",
                                         (topic,))} == {"invoice_id", "amount", "currency"}


def test_restart_of_the_same_service_is_no_conflict(reg, worker_factory, amqp, run_id):
    """Same definitions again, as admin (created false) and as a role that may
    not register (42501: compared with the registered ones instead)."""
    log_start = reg.pg.log_file.stat().st_size
    for dsn in (reg.dsns["admin"], reg.dsns["publisher"]):
        amqp.track(f"csit_reg_restart_{run_id}")
        w = worker_factory("registry_billing", dict(reg.common, CSIT_QUEUE=f"csit_reg_restart_{run_id}",
                                                    CSIT_REGISTRY_DSN=dsn, CSIT_WITH_RPC="0"))
        w.stop()
        text = w.log_text()
        assert "SchemaConflictError" not in text and "Could not register" not in text, text[-3000:]
    assert reg.pg.scalar("SELECT count(*) FROM celerysalt_schemas WHERE topic = %s",
                         (f"{reg.prefix}.invoice.paid",)) == 1
    # the publisher role knew it may not register: it did not try (no ERROR in the server log)
    with open(reg.pg.log_file, "rb") as f:
        f.seek(log_start)
        assert b"permission denied for function celerysalt_register_schema" not in f.read()


# ---------------------------------------------------------------- (2) conflict

@pytest.mark.parametrize("as_role", ["admin", "publisher"])
def test_conflicting_definition_fails_at_import(reg, worker_factory, amqp, run_id, as_role):
    amqp.track(f"csit_reg_refunds_{run_id}")
    log = start_failing(worker_factory, "registry_refunds",
                        dict(reg.common, CSIT_QUEUE=f"csit_reg_refunds_{run_id}",
                             CSIT_REGISTRY_DSN=reg.dsns[as_role]))
    assert "SchemaConflictError" in log, log[-3000:]
    assert f'schema conflict for topic "{reg.prefix}.invoice.paid" version "v1"' in log
    if as_role == "admin":      # the database's detail: where the schemas differ
        assert "(SQLSTATE 23505)" in log and "/properties/invoice_id/type" in log
    assert PASSWORD not in log
    # nothing changed, refunds not recorded as a publisher
    assert reg.pg.scalar("SELECT publishers FROM celerysalt_catalog WHERE topic = %s",
                         (f"{reg.prefix}.invoice.paid",)) == ["billing"]


def test_conflict_and_incompatibility_from_the_adapter(reg):
    topic = f"{reg.prefix}.direct"
    r = PostgresSchemaRegistry(reg.dsns["admin"], service="tests")
    v1 = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert r.register_schema(topic, "v1", v1, "m", "C")["created"] is True
    again = r.register_schema(topic, "v1", json.loads(json.dumps(v1)), "m", "C")
    assert again["created"] is False and again["existing_schema"] == v1
    with pytest.raises(SchemaConflictError) as err:
        r.register_schema(topic, "v1", {"type": "object"}, "m", "C")
    assert isinstance(err.value, RegistrySchemaConflictError) and err.value.sqlstate == "23505"
    assert err.value.topic == topic and err.value.version == "v1"
    # v2 drops a required field: refused under BACKWARD (42P17), a SchemaConflictError too
    with pytest.raises(SchemaIncompatibleError) as err:
        r.register_schema(topic, "v2", {"type": "object", "properties": {}}, "m", "C")
    assert err.value.sqlstate == "42P17" and "is not BACKWARD compatible" in str(err.value)
    assert "/n" in err.value.detail
    r.close()


# ---------------------------------------------------------------- (3) subscriber

def test_subscriber_without_event_class_handles_sql_and_follow_action_events(reg):
    topic = f"{reg.prefix}.invoice.paid"
    key = reg.records.key("reg.on_invoice_paid")
    # the subscriber service recorded its handlers (the wildcard one too)
    subs = set(reg.pg.execute("SELECT topic, service, handler, queue FROM celerysalt_subscribers"
                              " WHERE service = 'shipping' AND topic LIKE %s", (reg.prefix + ".%",)))
    queue = f"csit_reg_shipping_{reg.run_id}"
    assert subs == {(topic, "shipping", "on_invoice_paid", queue),
                    (f"{reg.prefix}.invoice.*", "shipping", "on_any_invoice", queue)}

    # from SQL; the database validates against the same registered schema
    eid = reg.pg.publish(topic, {"invoice_id": 7, "amount": 12.5})
    with pytest.raises(psycopg.errors.CheckViolation):
        reg.pg.publish(topic, {"invoice_id": "seven", "amount": 12.5})

    # from a follow action, written and fired by a plain application role that owns
    # nothing and holds celerysalt_publisher and its table privileges only
    table = f"csit_reg_invoice_{reg.run_id}"
    app = f"csit_reg_app_{reg.run_id}"
    reg.pg.execute(f'CREATE TABLE "{table}" (id int PRIMARY KEY, amount float8 NOT NULL,'
                   " status text NOT NULL DEFAULT 'open', on_change_rules jsonb NOT NULL DEFAULT '[]')")
    reg.pg.execute(f"CREATE ROLE {app} IN ROLE celerysalt_publisher")
    reg.pg.execute(f'GRANT SELECT, INSERT, UPDATE ON "{table}" TO {app}')
    try:
        reg.pg.execute("SELECT celerysalt_attach_follow_actions(%s)", (table,))
        with reg.pg.connect() as c:
            c.execute(f"SET ROLE {app}")
            c.execute(
                f'INSERT INTO "{table}" (id, amount, on_change_rules) VALUES (8, 99.5, jsonb_build_array('
                "celerysalt_follow_action_rule(field_name => 'status', operator => 'eql', topic => %s,"
                " value => '\"paid\"', payload => '{\"invoice_id\": {\"$pk\": true},"
                " \"amount\": {\"$new\": \"amount\"}, \"currency\": \"CHF\"}', tbl => %s)))", (topic, table))
            c.execute(f"UPDATE \"{table}\" SET status = 'paid' WHERE id = 8")
    finally:
        reg.pg.execute(f'DROP TABLE "{table}"')
        reg.pg.execute(f"DROP ROLE {app}")

    got = reg.records.wait_records(key, lambda r: len(r) >= 2, what="both events at the shipping handler")
    by_id = {r["received"]["fields"]["invoice_id"]: r for r in got}
    assert set(by_id) == {7, 8}, got
    sql_event, follow_event = by_id[7], by_id[8]
    assert sql_event["task_id"].startswith(eid + ":")
    for rec in (sql_event, follow_event):
        received = rec["received"]
        # a pydantic model built from the registered schema (its title)
        assert received["is_model"] is True and received["model"] == "InvoicePaid"
        assert received["types"] == {"invoice_id": "int", "amount": "float", "currency": "str"}
        assert rec["raw"]["_tchu_meta"]["version"] == "v1"
    assert sql_event["received"]["fields"] == {"invoice_id": 7, "amount": 12.5, "currency": "EUR"}
    assert follow_event["received"]["fields"] == {"invoice_id": 8, "amount": 99.5, "currency": "CHF"}


def test_get_schema_resolves_versions_like_the_extension(reg):
    topic = f"{reg.prefix}.versions"
    admin = PostgresSchemaRegistry(reg.dsns["admin"], service="tests")
    base = {"type": "object", "properties": {"n": {"type": "integer"}}}
    for v, title in (("v2", "two"), ("v10", "ten"), ("v1.5", "one-five")):
        admin.register_schema(topic, v, dict(base, title=title), "m", "C")
    reader = PostgresSchemaRegistry(reg.dsns["reader"], service="dashboards")
    assert reader.get_schema(topic)["title"] == "ten"            # v10 > v2 (not string order)
    assert reader.get_schema(topic, "v1.5")["title"] == "one-five"
    assert reader.get_schema_record(topic).version == "v10"
    with pytest.raises(SchemaRegistryUnavailableError) as err:
        reader.get_schema(topic, "v3")
    assert isinstance(err.value, SchemaNotFoundError) and err.value.sqlstate == "42704"
    assert err.value.hint == "Registered versions: v1.5, v2, v10."
    with pytest.raises(SchemaNotFoundError):
        reader.get_schema(f"{reg.prefix}.nobody")
    with pytest.raises(SchemaNotFoundError):
        reader.get_schema_record(topic, "v3")
    # a reader may not record subscribers: logged, never raised
    reader.track_subscriber(topic, "h")
    admin.close()
    reader.close()


# ---------------------------------------------------------------- (4) unreachable

def test_database_unreachable_at_service_start(reg, worker_factory, amqp, run_id):
    amqp.track(f"csit_reg_down_{run_id}")
    port = rig.free_port()      # nobody listens there
    dsn = f"host=127.0.0.1 port={port} dbname=postgres user=billing password={PASSWORD}"
    # a subscriber cannot start without its schema
    log = start_failing(worker_factory, "registry_shipping",
                        dict(reg.common, CSIT_QUEUE=f"csit_reg_down_{run_id}", CSIT_REGISTRY_DSN=dsn))
    # celerysalt_pg.registry.RegistryUnavailableError, a SchemaRegistryUnavailableError
    assert "registry.RegistryUnavailableError: could not connect to the schema registry" in log, log[-3000:]
    assert issubclass(RegistryUnavailableError, SchemaRegistryUnavailableError)
    assert f"port={port}" in log and PASSWORD not in log
    # a pure publisher starts: celery-salt logs a warning and goes on
    w = worker_factory("registry_billing", dict(reg.common, CSIT_QUEUE=f"csit_reg_down_{run_id}",
                                                CSIT_REGISTRY_DSN=dsn, CSIT_WITH_RPC="0"))
    w.stop()
    log = w.log_text()
    assert "Could not register schema" in log and "could not connect to the schema registry" in log
    assert PASSWORD not in log


def test_statement_timeout_lost_connection_and_fork(reg):
    topic = f"{reg.prefix}.invoice.paid"
    r = PostgresSchemaRegistry(reg.dsns["admin"], service="tests", statement_timeout=300)
    assert r.get_schema(topic) == INVOICE_PAID.model_json_schema()
    # a registration waiting on another one's lock ends at statement_timeout
    with reg.pg.connect(autocommit=False) as blocker:
        blocker.execute("SELECT 1 FROM celerysalt_topics WHERE topic = %s FOR UPDATE", (topic,))
        t0 = time.monotonic()
        with pytest.raises(SchemaRegistryUnavailableError) as err:
            r.register_schema(topic, "v2", INVOICE_PAID.model_json_schema(), "m", "C")
        assert err.value.sqlstate == "57014" and time.monotonic() - t0 < 5
        blocker.rollback()
    # the connection was killed: the next call reconnects once
    pid = r._conn.info.backend_pid
    reg.pg.execute("SELECT pg_terminate_backend(%s)", (pid,))
    rig.wait_until(lambda: not reg.pg.scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)),
                   10, "the backend to exit")
    assert r.get_schema(topic)["title"] == "InvoicePaid"
    parent_pid = r._conn.info.backend_pid
    assert parent_pid != pid
    # a forked child opens its own connection and leaves the parent's alone
    rd, wr = os.pipe()
    child = os.fork()
    if child == 0:      # pragma: no cover - the child
        try:
            out = json.dumps({"title": r.get_schema(topic)["title"], "pid": r._conn.info.backend_pid})
        except BaseException as exc:
            out = json.dumps({"error": repr(exc)})
        os.write(wr, out.encode())
        os._exit(0)
    os.close(wr)
    _, status = os.waitpid(child, 0)
    got = json.loads(os.read(rd, 65536).decode())
    os.close(rd)
    assert got.get("title") == "InvoicePaid" and got["pid"] != parent_pid, got
    assert r._conn.info.backend_pid == parent_pid and r.get_schema(topic)["title"] == "InvoicePaid"
    r.close()


def test_threads_share_the_process_connection(reg):
    r = PostgresSchemaRegistry(reg.dsns["reader"], service="tests")
    topic = f"{reg.prefix}.invoice.paid"
    errors: list = []

    def work():
        try:
            for _ in range(20):
                assert r.get_schema(topic)["title"] == "InvoicePaid"
        except BaseException as exc:
            errors.append(exc)
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    r.close()


# ---------------------------------------------------------------- (5) RPC

def test_rpc_topic_with_response_and_error_schemas(reg):
    topic = f"{reg.prefix}.quote"
    # registered at import by the responder service, and fetched by a reader
    r = PostgresSchemaRegistry(reg.dsns["reader"], service="tests")
    rec = r.get_schema_record(topic)
    assert (rec.version, rec.mode, rec.description) == ("v1", "rpc", "Price of qty items of sku")
    assert rec.schema == Schema.model_json_schema()
    assert rec.response_schema == Response.model_json_schema()
    assert rec.error_schema == Error.model_json_schema()
    assert rec.publisher_service == "billing" and rec.publisher_class == "Quote"
    assert r.get_schema(topic, "v1") == rec.schema
    r.close()

    # a caller in SQL: celerysalt_call validates against the same three schemas
    caller = f"csit_reg_caller_{reg.run_id}"
    reg.pg.execute(f'DROP ROLE IF EXISTS "{caller}"')
    reg.pg.execute(f'CREATE ROLE "{caller}" LOGIN IN ROLE celerysalt_publisher')
    reg.pg.execute("GRANT EXECUTE ON FUNCTION celerysalt_call(text, jsonb, interval, text) TO celerysalt_publisher")
    reg.pg.execute(f'ALTER ROLE "{caller}" SET celerysalt.redis_url = \'{rig.redis_url(SALT_RESULT_DB)}\'')
    with psycopg.connect(reg.pg.dsn.replace("user=postgres", f"user={caller}"), autocommit=True) as c:
        def call(payload):
            return c.execute("SELECT celerysalt_call(%s, %s::jsonb, '15 s')",
                             (topic, json.dumps(payload))).fetchone()[0]
        assert call({"sku": "A-1", "qty": 2}) == {"sku": "A-1", "total": 5.0}
        with pytest.raises(psycopg.Error) as err:        # refused before it is sent
            call({"sku": "A-1", "qty": "two"})
        assert err.value.sqlstate == "23514"
        with pytest.raises(psycopg.Error) as err:        # a business error inside error_schema
            call({"sku": "A-1", "qty": 0})
        assert err.value.sqlstate == "CR001"
        assert "BAD_QTY" in f"{err.value.diag.message_primary} {err.value.diag.message_detail}"
