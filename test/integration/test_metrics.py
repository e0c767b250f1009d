"""celerysalt_metrics(): the Prometheus text format, read as a plain role
holding celerysalt_reader and parsed with the official Python client
(issue 16, item 1).  Every series the docs list is present; the counters
move with what the test does: a delivered event (queue bound), an
unroutable one, a publish the registry refuses, a follow action that
fires and one that fails, an RPC call nobody answers.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

import rig

FAMILIES = {
    "celerysalt_outbox_pending_events": "gauge",
    "celerysalt_outbox_pending_estimated": "gauge",
    "celerysalt_outbox_oldest_pending_age_seconds": "gauge",
    "celerysalt_unroutable_events": "gauge",
    "celerysalt_outbox_pending_events_by_topic": "gauge",
    "celerysalt_unroutable_events_by_topic": "gauge",
    "celerysalt_worker_up": "gauge",
    "celerysalt_broker_connected": "gauge",
    "celerysalt_events_delivered": "counter",
    "celerysalt_events_dead_lettered": "counter",
    "celerysalt_events_returned_unroutable": "counter",
    "celerysalt_publish_validation_failures": "counter",
    "celerysalt_follow_action_firings": "counter",
    "celerysalt_follow_action_failures": "counter",
    "celerysalt_broker_reconnects": "counter",
    "celerysalt_worker_starts": "counter",
    "celerysalt_rpc_calls": "counter",
    "celerysalt_rpc_duration_seconds": "histogram",
    "celerysalt_delivery_latency_seconds": "histogram",
}


def scrape(pg, role):
    with pg.connect() as c:
        c.execute(f"SET ROLE {role}")
        text = c.execute("SELECT celerysalt_metrics()").fetchone()[0]
    families = {f.name: f for f in text_string_to_metric_families(text)}
    return text, families


def value(families, name, suffix="_total", **labels):
    for s in families[name].samples:
        if s.name == name + suffix and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise KeyError((name, labels))


@pytest.fixture
def roles(pg):
    suffix = uuid.uuid4().hex[:6]
    reader, app = f"csit_metrics_reader_{suffix}", f"csit_metrics_app_{suffix}"
    pg.execute(f"CREATE ROLE {reader} IN ROLE celerysalt_reader")
    pg.execute(f"CREATE ROLE {app} IN ROLE celerysalt_publisher")
    pg.execute(f"GRANT CREATE ON SCHEMA public TO {app}")
    yield reader, app


def test_metrics_parse_and_move(pg, amqp, roles, run_id):
    reader, app = roles
    db = pg.dbname
    p = f"csit.{run_id}.metrics.{uuid.uuid4().hex[:6]}"
    text, before = scrape(pg, reader)
    for name, kind in FAMILIES.items():
        assert name in before, f"{name} missing from:\n{text}"
        assert before[name].type == kind, (name, before[name].type)
    assert value(before, "celerysalt_worker_up", "", database=db) == 1

    amqp.declare_queue(f"csit_metrics_{run_id}_{uuid.uuid4().hex[:6]}", [f"{p}.delivered", f"{p}.paid"])
    pg.execute("SELECT celerysalt_register_schema(%s, %s::jsonb, version => 'v1')",
               [f"{p}.strict", '{"type": "object", "required": ["id"]}'])
    with pg.connect() as c:
        c.execute(f"SET ROLE {app}")
        delivered = c.execute("SELECT celerysalt_publish(%s, '{}')::text", [f"{p}.delivered"]).fetchone()[0]
        c.execute("SELECT celerysalt_publish(%s, '{}')", [f"{p}.nobody"])
        with pytest.raises(psycopg.errors.CheckViolation):
            c.execute("SELECT celerysalt_publish(%s, '{}', 'v1')", [f"{p}.strict"])
        # follow actions: one firing, one failing (dead_letter mode records it)
        table = f"csit_metrics_{uuid.uuid4().hex[:6]}"
        c.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, status text, on_change_rules jsonb NOT NULL DEFAULT '[]')")
        c.execute("SELECT celerysalt_attach_follow_actions(%s)", [table])
        c.execute(f"INSERT INTO {table} VALUES (1, 'new', jsonb_build_array("
                  f"celerysalt_follow_action_rule('status', 'eql', %s, '\"paid\"'),"
                  f"celerysalt_follow_action_rule('status', 'eql', %s, '\"paid\"', version => 'v1')))",
                  [f"{p}.paid", f"{p}.strict"])
        c.execute("SET celerysalt.follow_action_errors = dead_letter")
        c.execute(f"UPDATE {table} SET status = 'paid'")
        # RPC to a topic no service binds: outcome unroutable, at once
        with pytest.raises(psycopg.Error):
            c.execute("SELECT celerysalt_call(%s, '{}', '5 s')", [f"{p}.rpc"])
    pg.wait_delivered([delivered])
    rig.wait_until(lambda: pg.scalar("SELECT count(*) FROM celerysalt_unroutable WHERE topic = %s",
                                     [f"{p}.nobody"]) == 1, 30, "the unroutable event parked")

    _, after = scrape(pg, reader)
    def grew(name, by, **labels):
        got = value(after, name, **labels) - value(before, name, **labels)
        assert got >= by, (name, labels, got)
    grew("celerysalt_events_delivered", 2, database=db)      # the plain one and the follow action's
    grew("celerysalt_events_returned_unroutable", 1, database=db)
    grew("celerysalt_publish_validation_failures", 2, database=db)   # the publish and the rule
    grew("celerysalt_follow_action_firings", 1, database=db)
    grew("celerysalt_follow_action_failures", 1, database=db)
    grew("celerysalt_rpc_calls", 1, database=db, outcome="unroutable")
    grew("celerysalt_delivery_latency_seconds", 2, suffix="_count", database=db)
    grew("celerysalt_rpc_duration_seconds", 1, suffix="_count", database=db)
    assert value(after, "celerysalt_unroutable_events_by_topic", "", database=db, topic=f"{p}.nobody") == 1
    assert value(after, "celerysalt_outbox_pending_estimated", "", database=db) == 0
    # histogram buckets are cumulative and end with +Inf = _count
    buckets = [s for s in after["celerysalt_delivery_latency_seconds"].samples if s.name.endswith("_bucket")]
    assert [b.value for b in buckets] == sorted(b.value for b in buckets)
    assert buckets[-1].labels["le"] == "+Inf"
    assert buckets[-1].value == value(after, "celerysalt_delivery_latency_seconds", "_count", database=db)


def test_track_metrics_off(pg, amqp, roles, run_id):
    """celerysalt.track_metrics = off stops the histograms and the follow-action, validation and RPC
    counters; the delivered counter (a status counter) keeps counting."""
    reader, app = roles
    db = pg.dbname
    p = f"csit.{run_id}.nometrics.{uuid.uuid4().hex[:6]}"
    amqp.declare_queue(f"csit_nometrics_{run_id}_{uuid.uuid4().hex[:6]}", [f"{p}.delivered"])
    pg.execute("SELECT celerysalt_register_schema(%s, %s::jsonb, version => 'v1')",
               [f"{p}.strict", '{"type": "object", "required": ["id"]}'])
    pg.execute("ALTER SYSTEM SET celerysalt.track_metrics = off")
    pg.execute("SELECT pg_reload_conf()")
    try:
        # The worker applies the reload at its next wake-up: publish until a delivered event leaves
        # the latency histogram alone (with the setting ignored, every one would grow it).
        for attempt in range(20):
            _, before = scrape(pg, reader)
            with pg.connect() as c:
                c.execute(f"SET ROLE {app}")
                ev = c.execute("SELECT celerysalt_publish(%s, '{}')::text", [f"{p}.delivered"]).fetchone()[0]
                with pytest.raises(psycopg.errors.CheckViolation):
                    c.execute("SELECT celerysalt_publish(%s, '{}', 'v1')", [f"{p}.strict"])
            pg.wait_delivered([ev])
            rig.wait_until(lambda: value(scrape(pg, reader)[1], "celerysalt_events_delivered", database=db)
                           > value(before, "celerysalt_events_delivered", database=db), 10, "delivered counted")
            _, after = scrape(pg, reader)
            # a new session sees the reloaded value at once: never counted
            assert value(after, "celerysalt_publish_validation_failures", database=db) == \
                value(before, "celerysalt_publish_validation_failures", database=db)
            if value(after, "celerysalt_delivery_latency_seconds", "_count", database=db) == \
                    value(before, "celerysalt_delivery_latency_seconds", "_count", database=db):
                break
        else:
            pytest.fail("celerysalt.track_metrics = off never stopped the delivery latency histogram")
    finally:
        pg.execute("ALTER SYSTEM RESET celerysalt.track_metrics")
        pg.execute("SELECT pg_reload_conf()")


def test_metrics_need_reader(pg):
    role = f"csit_metrics_nobody_{uuid.uuid4().hex[:6]}"
    pg.execute(f"CREATE ROLE {role}")
    with pg.connect() as c:
        c.execute(f"SET ROLE {role}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("SELECT celerysalt_metrics()")


def test_sql_exporter_collector_and_dashboard(pg, roles):
    """The ready configurations in docs/metrics/ run and name real series."""
    import json
    import re
    from pathlib import Path

    import yaml

    reader, _ = roles
    docs = Path(__file__).resolve().parents[2] / "docs" / "metrics"
    collector = yaml.safe_load((docs / "sql_exporter.collector.yml").read_text())
    text, families = scrape(pg, reader)
    series = {s.name for f in families.values() for s in f.samples}
    columns = {}
    with pg.connect() as c:
        c.execute(f"SET ROLE {reader}")
        for q in collector["queries"]:
            cur = c.execute(q["query"])
            rows = cur.fetchall()
            columns[q["query_name"]] = [d.name for d in cur.description]
            if q["query_name"] != "celerysalt_by_topic":
                assert rows, f"{q['query_name']} returned no row"
    for m in collector["metrics"]:
        cols = columns[m["query_ref"]]
        for col in m["key_labels"] + m["values"]:
            assert col in cols, (m["metric_name"], col, cols)
        assert m["metric_name"] in series or m["metric_name"].endswith("_by_topic"), m["metric_name"]
    dashboard = json.loads((docs / "grafana-dashboard.json").read_text())
    names = set(series) | {n + "_by_topic" for n in ("celerysalt_outbox_pending_events", "celerysalt_unroutable_events")}
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for name in re.findall(r"\b(celerysalt_[a-z_]+)\{", target["expr"]):
                assert name in names, (panel["title"], name)
