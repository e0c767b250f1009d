"""OpenTelemetry in a Celery worker, set up as a service would set it up, with
the finished spans exported to the test.

install() gives the process an SDK TracerProvider whose SimpleSpanProcessor
hands every finished span to an InMemorySpanExporter, and runs
CeleryInstrumentor().instrument() (opentelemetry-instrumentation-celery:
its task_prerun handler extracts the W3C trace context from the task
request, i.e. from the message headers, and starts the task's span as a
child of it).  The workers run the solo pool, so the process that imports
the app is the one that runs the tasks.

After each task (task_postrun, connected after the instrumentation's own
receiver, so the task's span has ended), the spans finished so far are
RPUSHed as JSON to <CSIT_RECORD_PREFIX>:spans:
  name, kind, trace_id (32 hex), span_id (16 hex), parent_span_id (16 hex
  or null), parent_is_remote, task_id (the Celery task whose postrun
  exported it), attributes.
"""

import json
import os

import redis
from celery.signals import task_postrun
from opentelemetry import trace
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
_client = None


def _redis():
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["CSIT_RECORD_URL"], socket_timeout=5)
    return _client


def span_record(span, task_id=None):
    ctx = span.get_span_context()
    parent = span.parent
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": trace.format_trace_id(ctx.trace_id),
        "span_id": trace.format_span_id(ctx.span_id),
        "parent_span_id": trace.format_span_id(parent.span_id) if parent is not None else None,
        "parent_is_remote": parent.is_remote if parent is not None else None,
        "trace_state": ctx.trace_state.to_header() if ctx.trace_state else "",
        "task_id": task_id,
        "attributes": {k: (v if isinstance(v, (str, int, float, bool)) else str(v))
                       for k, v in (span.attributes or {}).items()},
    }


def _export(sender=None, task_id=None, **kwargs):
    spans = exporter.get_finished_spans()
    exporter.clear()
    if spans:
        _redis().rpush(f"{os.environ['CSIT_RECORD_PREFIX']}:spans",
                       *[json.dumps(span_record(s, task_id)) for s in spans])


def install():
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    CeleryInstrumentor().instrument(tracer_provider=provider)
    task_postrun.connect(_export, weak=False)


def current_span_ids():
    """trace_id and span_id of the span current in a handler."""
    ctx = trace.get_current_span().get_span_context()
    return {"trace_id": trace.format_trace_id(ctx.trace_id), "span_id": trace.format_span_id(ctx.span_id)}
