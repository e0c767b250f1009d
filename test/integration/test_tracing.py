"""Tracing (docs/tracing.md): the W3C trace context a transaction sets
(celerysalt.traceparent, celerysalt.tracestate) reaches OpenTelemetry's
Celery instrumentation in real workers, which continue the trace.

The workers (workers/otel_salt_worker.py, workers/otel_tchu_worker.py) are
stock celery-salt 1.6.0 and tchu-tchu 3.0.4 services whose process runs the
OpenTelemetry SDK (TracerProvider, SimpleSpanProcessor, InMemorySpanExporter)
and CeleryInstrumentor().instrument(); they push every finished span to Redis
(workers/otel_spans.py).  A plain queue bound to the same topics captures
the raw messages.  Everything is published by a plain application role
holding only celerysalt_publisher.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import uuid

import psycopg
import pytest

import rig

SALT_RESULT_DB = int(os.environ.get("CSIT_REDIS_DB_SALT", "11"))
TCHU_RESULT_DB = int(os.environ.get("CSIT_REDIS_DB_TCHU", "12"))
SALT_DISPATCH_SPAN = f"run/{rig.SALT_TASK}"
TCHU_DISPATCH_SPAN = f"run/{rig.TCHU_TASK}"
TRACESTATE = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
# the headers the worker sends without a trace context (broker.c), in order
CELERY_HEADERS = ["lang", "task", "id", "shadow", "eta", "expires", "group", "group_index", "retries",
                  "timelimit", "root_id", "parent_id", "argsrepr", "kwargsrepr", "origin", "ignore_result",
                  "replaced_task_nesting", "stamped_headers", "stamps"]


def new_traceparent() -> tuple[str, str, str]:
    """(traceparent, trace_id, parent_id) with fresh random ids, sampled."""
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{parent_id}-01", trace_id, parent_id


@pytest.fixture(scope="module")
def otel(rig_dir, run_id, amqp, pg):
    prefix = f"csit.{run_id}.otel"
    salt_queue, tchu_queue = f"csit_otels_{run_id}", f"csit_otelt_{run_id}"
    records = rig.RedisDb(SALT_RESULT_DB, f"csit:{run_id}:otelrec")
    common = {"CSIT_BROKER_URL": rig.BROKER_URL, "CSIT_RECORD_URL": records.url,
              "CSIT_RECORD_PREFIX": records.prefix}
    amqp.track(salt_queue)
    amqp.declare_queue(tchu_queue, [f"{prefix}.tchu.event"])
    capture = amqp.declare_queue(f"csit_otelcap_{run_id}", [f"{prefix}.event", f"{prefix}.tchu.event"],
                                 durable=False)
    salt = rig.CeleryWorker("otel_salt_worker", f"otels-{run_id}", rig_dir / "worker-otel-salt.log",
                            dict(common, CSIT_QUEUE=salt_queue, CSIT_TOPIC_PREFIX=prefix,
                                 CSIT_RESULT_BACKEND=rig.redis_url(SALT_RESULT_DB)))
    tchu = rig.CeleryWorker("otel_tchu_worker", f"otelt-{run_id}", rig_dir / "worker-otel-tchu.log",
                            dict(common, CSIT_QUEUE=tchu_queue, CSIT_TOPIC_PREFIX=f"{prefix}.tchu",
                                 CSIT_RESULT_BACKEND=rig.redis_url(TCHU_RESULT_DB)))
    role = f"csit_otel_app_{run_id}"
    pg.execute(f'CREATE ROLE "{role}" LOGIN IN ROLE celerysalt_publisher')
    # celerysalt_call reads the answer where the salt service stores it
    pg.execute(f"ALTER ROLE \"{role}\" SET celerysalt.redis_url = '{rig.redis_url(SALT_RESULT_DB)}'")
    try:
        salt.launch()
        tchu.launch()
        salt.wait_ready(60)
        tchu.wait_ready(60)

        def connect(**kw) -> psycopg.Connection:
            conn = psycopg.connect(pg.dsn.replace("user=postgres", f"user={role}"), autocommit=True, **kw)
            assert conn.execute("SELECT rolsuper, pg_has_role(current_user, 'celerysalt_admin', 'MEMBER')"
                                " FROM pg_roles WHERE rolname = current_user").fetchone() == (False, False)
            return conn
        yield type("Otel", (), dict(prefix=prefix, records=records, capture=capture, connect=connect,
                                    role=role, salt=salt, tchu=tchu, pg=pg, amqp=amqp))
    finally:
        rig.stop_all([salt, tchu])
        records.close()
        pg.execute(f'DROP ROLE IF EXISTS "{role}"')


def publish(conn, topic, payload, traceparent=None, tracestate=None, version="v1") -> str:
    """Publish in one transaction of conn with the trace context set for it."""
    with conn.transaction():
        if traceparent is not None:
            conn.execute(f"SET LOCAL celerysalt.traceparent = '{traceparent}'")
        if tracestate is not None:
            conn.execute("SELECT set_config('celerysalt.tracestate', %s, true)", (tracestate,))
        return conn.execute("SELECT celerysalt_publish(%s, %s::jsonb, %s)::text",
                            (topic, json.dumps(payload), version)).fetchone()[0]


def spans(otel) -> list[dict]:
    return otel.records.records(otel.records.key("spans"))


def wait_span(otel, name, task_id, timeout=30) -> dict:
    """The span `name` the worker exported after task `task_id`."""
    found = otel.records.wait_records(
        otel.records.key("spans"),
        lambda rs: [s for s in rs if s["name"] == name and s["task_id"] == task_id], timeout,
        f"span {name} of task {task_id}")
    (span,) = [s for s in found if s["name"] == name and s["task_id"] == task_id]
    return span


def wait_record(otel, handler, n, timeout=30) -> dict:
    key = otel.records.key(handler)
    recs = otel.records.wait_records(key, lambda rs: [r for r in rs if r["received"]["n"] == n],
                                     timeout, f"{handler} n={n}")
    (rec,) = [r for r in recs if r["received"]["n"] == n]
    return rec


_captured: list = []


def captured(otel, n, count=2) -> list:
    """The raw messages of the event whose payload has n (one per dispatcher
    task), from the capture queue."""
    def mine():
        while True:
            m = otel.amqp.channel.basic_get(queue=otel.capture, no_ack=True)
            if m is None:
                break
            _captured.append(m)
        got = [m for m in _captured if payload_of(m)["n"] == n]
        return got if len(got) >= count else None
    return rig.wait_until(mine, 30, f"{count} captured messages with n={n}")


def payload_of(m) -> dict:
    body = m.body if isinstance(m.body, str) else m.body.decode("utf-8")
    (s,), _, _ = json.loads(body)
    return json.loads(s)


def raw_payload_string(m) -> str:
    body = m.body if isinstance(m.body, str) else m.body.decode("utf-8")
    return json.loads(body)[0][0]


def test_event_continues_the_trace_in_a_celery_salt_worker(otel):
    tp, trace_id, parent_id = new_traceparent()
    with otel.connect() as conn:
        event_id = publish(conn, f"{otel.prefix}.event", {"n": 1}, tp, TRACESTATE)

    # the dispatcher task's span is the child of the span the traceparent names
    run = wait_span(otel, SALT_DISPATCH_SPAN, event_id)
    assert run["trace_id"] == trace_id
    assert run["parent_span_id"] == parent_id and run["parent_is_remote"] is True
    assert run["kind"] == "CONSUMER"
    assert run["trace_state"] == TRACESTATE
    # the handler runs as its own task, published by the dispatcher inside the
    # same trace: run/<handler> <- apply_async/<handler> <- the dispatcher's span
    rec = wait_record(otel, "otel_salt.on_event", 1)
    assert rec["received"]["span"]["trace_id"] == trace_id
    assert rec["received"]["traceparent"] != tp          # its own, injected by the dispatcher
    handler_runs = [s for s in spans(otel) if s["task_id"] == rec["task_id"] and s["name"].startswith("run/")]
    assert [s["trace_id"] for s in handler_runs] == [trace_id]
    publish_span = [s for s in spans(otel) if s["span_id"] == handler_runs[0]["parent_span_id"]]
    assert publish_span and publish_span[0]["name"].startswith("apply_async/")
    assert publish_span[0]["parent_span_id"] == run["span_id"]

    # on the wire: top-level headers after Celery's own, and _tchu_meta as
    # celery-salt's publisher writes it
    msgs = captured(otel, 1)
    assert sorted(m.headers["task"] for m in msgs) == [rig.SALT_TASK, rig.TCHU_TASK]
    for m in msgs:
        assert list(m.headers) == CELERY_HEADERS + ["traceparent", "tracestate"]
        assert m.headers["traceparent"] == tp and m.headers["tracestate"] == TRACESTATE
        assert raw_payload_string(m).endswith(
            f'"_tchu_meta": {{"is_rpc": false, "version": "v1", "traceparent": "{tp}", '
            f'"tracestate": "{TRACESTATE}"}}}}')
    otel.pg.wait_delivered([event_id])
    assert otel.pg.execute("SELECT traceparent, tracestate FROM celerysalt_events WHERE id = %s",
                           (event_id,)) == [(tp, TRACESTATE)]


def test_event_continues_the_trace_in_a_tchu_tchu_worker(otel):
    tp, trace_id, parent_id = new_traceparent()
    with otel.connect() as conn:
        event_id = publish(conn, f"{otel.prefix}.tchu.event", {"n": 2}, tp, version=None)
    # the tchu-tchu copy's task id: uuid5 of the event id and the task name (message.c)
    tchu_task_id = str(uuid.uuid5(uuid.UUID(event_id), rig.TCHU_TASK))
    rec = wait_record(otel, "otel_tchu.on_event", 2)
    assert rec["received"]["span"]["trace_id"] == trace_id
    runs = [s for s in spans(otel) if s["name"] == TCHU_DISPATCH_SPAN and s["trace_id"] == trace_id]
    assert len(runs) == 1, runs
    assert runs[0]["parent_span_id"] == parent_id and runs[0]["parent_is_remote"] is True
    assert runs[0]["task_id"] == tchu_task_id
    for m in captured(otel, 2):
        assert m.headers["traceparent"] == tp and "tracestate" not in m.headers


def test_without_a_traceparent_the_worker_starts_a_new_trace(otel):
    with otel.connect() as conn:
        event_id = publish(conn, f"{otel.prefix}.event", {"n": 3})
    run = wait_span(otel, SALT_DISPATCH_SPAN, event_id)
    assert run["parent_span_id"] is None
    rec = wait_record(otel, "otel_salt.on_event", 3)
    assert rec["received"]["span"]["trace_id"] == run["trace_id"]
    for m in captured(otel, 3):
        assert list(m.headers) == CELERY_HEADERS
        assert payload_of(m)["_tchu_meta"] == {"is_rpc": False, "version": "v1"}
    otel.pg.wait_delivered([event_id])
    assert otel.pg.execute("SELECT traceparent, tracestate FROM celerysalt_events WHERE id = %s",
                           (event_id,)) == [(None, None)]


def test_a_malformed_traceparent_is_refused_and_nothing_is_published(otel):
    topic = f"{otel.prefix}.refused"
    with otel.connect() as conn:
        for setter in ("SET LOCAL celerysalt.traceparent = '00-abc-def-01'",
                       "SELECT set_config('celerysalt.traceparent', "
                       "'00-00000000000000000000000000000000-00f067aa0ba902b7-01', true)",
                       "SELECT set_config('celerysalt.tracestate', 'Upper=1', true)"):
            with pytest.raises(psycopg.errors.InvalidParameterValue) as info, conn.transaction():
                conn.execute(setter)
                conn.execute("SELECT celerysalt_publish(%s, '{}')", (topic,))
            d = info.value.diag
            assert d.sqlstate == "22023"
            assert d.message_primary.startswith('invalid value for parameter "celerysalt.trace')
            assert d.message_detail and d.message_hint
        assert conn.execute("SHOW celerysalt.traceparent").fetchone() == ("",)
    assert otel.pg.scalar("SELECT count(*) FROM celerysalt_events WHERE topic = %s", (topic,)) == 0
    assert otel.pg.scalar("SELECT count(*) FROM _celerysalt_outbox WHERE topic = %s", (topic,)) == 0


def test_rpc_call_carries_the_trace(otel):
    tp, trace_id, parent_id = new_traceparent()
    with otel.connect() as conn, conn.transaction():
        conn.execute(f"SET LOCAL celerysalt.traceparent = '{tp}'")
        env = conn.execute("SELECT celerysalt_call_envelope(%s, %s::jsonb, '20 s')",
                           (f"{otel.prefix}.call", json.dumps({"n": 5}))).fetchone()[0]
    assert env["outcome"] == "success" and env["response"] == {"n": 5}, env
    run = wait_span(otel, SALT_DISPATCH_SPAN, env["task_id"])
    assert run["trace_id"] == trace_id and run["parent_span_id"] == parent_id
    # the handler runs inline in the dispatcher (RPC), inside its span
    rec = wait_record(otel, "otel_salt.on_call", 5)
    assert rec["received"]["span"] == {"trace_id": trace_id, "span_id": run["span_id"]}


# ------------------------------------------------------- the Python helper

def test_python_helper_from_the_current_span_psycopg_and_sqlalchemy(otel):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    from celerysalt_pg.tracing import set_traceparent

    tracer = TracerProvider().get_tracer("csit-app")

    with otel.connect() as conn:
        # autocommit outside a transaction: the setting would end at once
        with pytest.raises(RuntimeError, match="transaction"):
            set_traceparent(conn)
        with tracer.start_as_current_span("checkout") as span:
            ctx = span.get_span_context()
            with conn.transaction():
                tp = set_traceparent(conn)
                event_id = conn.execute("SELECT celerysalt_publish(%s, '{\"n\": 6}'::jsonb, 'v1')::text",
                                        (f"{otel.prefix}.event",)).fetchone()[0]
        # what the SDK's propagator writes, flags included (1.45 sets the
        # W3C level 2 "random trace-id" bit: 03)
        assert tp == (f"00-{trace.format_trace_id(ctx.trace_id)}-{trace.format_span_id(ctx.span_id)}"
                      f"-{ctx.trace_flags:02x}")
        # no current span: cleared, not left over from an earlier call
        with conn.transaction():
            conn.execute(f"SET LOCAL celerysalt.traceparent = '{tp}'")
            assert set_traceparent(conn) is None
            assert conn.execute("SHOW celerysalt.traceparent").fetchone() == ("",)
        # an explicit malformed value: the server's 22023
        with pytest.raises(psycopg.errors.InvalidParameterValue), conn.transaction():
            set_traceparent(conn, "00-nope")

    run = wait_span(otel, SALT_DISPATCH_SPAN, event_id)
    assert run["trace_id"] == trace.format_trace_id(ctx.trace_id)
    assert run["parent_span_id"] == trace.format_span_id(ctx.span_id)

    engine = create_engine("postgresql+psycopg://", connect_args={
        "host": str(otel.pg.sock_dir), "port": otel.pg.port, "dbname": otel.pg.dbname, "user": otel.role})
    try:
        with tracer.start_as_current_span("sqlalchemy-unit-of-work") as span:
            ctx = span.get_span_context()
            with Session(engine) as session, session.begin():
                tp = set_traceparent(session)
                event_id = session.execute(text("SELECT celerysalt_publish(:t, CAST(:p AS jsonb), 'v1')::text"),
                                           {"t": f"{otel.prefix}.event", "p": '{"n": 7}'}).scalar_one()
    finally:
        engine.dispose()
    assert tp is not None and tp.split("-")[2] == trace.format_span_id(ctx.span_id)
    run = wait_span(otel, SALT_DISPATCH_SPAN, event_id)
    assert run["parent_span_id"] == trace.format_span_id(ctx.span_id)


DJANGO_APP = r"""
import json, sys
import django
from django.conf import settings
host, port, dbname, user, topic = sys.argv[1:6]
settings.configure(DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "HOST": host,
                                          "PORT": port, "NAME": dbname, "USER": user}},
                   USE_TZ=True)
django.setup()
from django.db import connection, transaction
from opentelemetry.sdk.trace import TracerProvider
from celerysalt_pg.tracing import set_traceparent

try:
    set_traceparent(connection)
    refused = False
except RuntimeError:
    refused = True
with TracerProvider().get_tracer("django-view").start_as_current_span("view") as span:
    with transaction.atomic():
        tp = set_traceparent(connection)
        with connection.cursor() as cur:
            cur.execute("SELECT celerysalt_publish(%s, '{\"n\": 8}'::jsonb, 'v1')::text", [topic])
            event_id = cur.fetchone()[0]
print(json.dumps({"refused": refused, "traceparent": tp, "event_id": event_id,
                  "span_id": format(span.get_span_context().span_id, "016x")}))
"""


def test_python_helper_in_a_django_application(otel):
    pytest.importorskip("django")
    proc = subprocess.run([sys.executable, "-c", DJANGO_APP, str(otel.pg.sock_dir), str(otel.pg.port),
                           otel.pg.dbname, otel.role, f"{otel.prefix}.event"],
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
                               "HOME": os.environ.get("HOME", "/tmp"), "PYTHONDONTWRITEBYTECODE": "1"})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["refused"] is True
    assert out["traceparent"].split("-")[2] == out["span_id"]
    run = wait_span(otel, SALT_DISPATCH_SPAN, out["event_id"])
    assert run["parent_span_id"] == out["span_id"]
    assert run["trace_id"] == out["traceparent"].split("-")[1]
