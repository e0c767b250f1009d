"""Fixtures of the integration rig (real PostgreSQL, RabbitMQ, Redis, Celery).

Session-wide (started once, shared by every test, faults/ included):
  pg          a throwaway cluster (initdb as postgres into the pytest temp
              dir, free port, shared_preload_libraries = 'celerysalt',
              celerysalt.poll_interval = 100ms, dispatcher_tasks = both task
              names, CREATE EXTENSION celerysalt), its worker connected
  amqp        rig.Amqp: declare/bind/delete queues on tchu_events, basic_get
  topics      run-unique topic names the workers subscribe to
  records     rig.RedisDb where handlers RPUSH what they received
  salt_results / tchu_results   rig.RedisDb of each worker's result backend
  workers     the celery-salt 1.6.0 and tchu-tchu 3.0.4 workers (started
              in parallel; stopped warm, then SIGQUIT, always)

Per test:
  pg_factory(conf={...}, create_extension=True) -> a started rig.PgCluster
              with extra postgresql.conf settings; destroyed after the test.
              Change settings later with cluster.set_conf({...}) (reloads).
  worker_factory(module, env=..., name=...) -> a rig.CeleryWorker launched
              from test/integration/workers/<module>.py, stopped after the test.

Every process and cluster is also stopped at interpreter exit, and SIGTERM
(run.sh's timeout) is turned into KeyboardInterrupt so teardown runs.
"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

import rig

SALT_RESULT_DB = int(os.environ.get("CSIT_REDIS_DB_SALT", "11"))
TCHU_RESULT_DB = int(os.environ.get("CSIT_REDIS_DB_TCHU", "12"))


def pytest_configure(config):
    if os.geteuid() == 0:
        raise pytest.UsageError("run the integration tests as postgres (test/integration/run.sh does)")

    def _term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, _term)


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def rig_dir(tmp_path_factory) -> Path:
    """Where clusters and workers keep their logs for this session."""
    return tmp_path_factory.getbasetemp()


# ---------------------------------------------------------------- PostgreSQL

@pytest.fixture(scope="session")
def pg(rig_dir):
    cluster = rig.PgCluster(rig_dir / "pg-main").init().start()
    try:
        cluster.wait_worker(timeout=30)
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def pg_factory(tmp_path):
    made: list[rig.PgCluster] = []

    def make(conf: dict | None = None, create_extension: bool = True, start: bool = True,
             name: str | None = None) -> rig.PgCluster:
        cluster = rig.PgCluster(tmp_path / (name or f"pg{len(made)}"), conf=conf,
                                create_extension=create_extension).init()
        made.append(cluster)
        if start:
            cluster.start()
        return cluster

    yield make
    for cluster in reversed(made):
        cluster.destroy()


# ---------------------------------------------------------------- AMQP, Redis

@pytest.fixture(scope="session")
def amqp():
    helper = rig.Amqp()
    yield helper
    helper.close()


@pytest.fixture(scope="session")
def records(run_id):
    db = rig.RedisDb(SALT_RESULT_DB, f"csit:{run_id}:rec")
    yield db
    db.close()


@pytest.fixture(scope="session")
def salt_results(run_id):
    db = rig.RedisDb(SALT_RESULT_DB, f"csit:{run_id}:salt")
    yield db
    db.close()


@pytest.fixture(scope="session")
def tchu_results(run_id):
    db = rig.RedisDb(TCHU_RESULT_DB, f"csit:{run_id}:tchu")
    yield db
    db.close()


# -------------------------------------------------------------------- workers

@pytest.fixture(scope="session")
def topics(run_id):
    p = f"csit.{run_id}"
    return SimpleNamespace(prefix=p, compat=f"{p}.compat", versioned=f"{p}.versioned",
                           txn=f"{p}.txn", capture=f"{p}.capture")


@pytest.fixture(scope="session")
def workers(rig_dir, run_id, topics, amqp, records, salt_results, tchu_results):
    """Both stock workers, each on its own durable queue bound to tchu_events."""
    salt_queue = f"csit_salt_{run_id}"
    tchu_queue = f"csit_tchu_{run_id}"
    common = {
        "CSIT_BROKER_URL": rig.BROKER_URL,
        "CSIT_TOPIC_PREFIX": topics.prefix,
        "CSIT_RECORD_URL": records.url,
        "CSIT_RECORD_PREFIX": records.prefix,
    }
    # celery-salt 1.6.0 declares its own queue (x-max-priority 10) and binds
    # every handler topic; the rig only deletes it afterwards.
    amqp.track(salt_queue)
    # tchu-tchu 3.0.4's helper binds nothing: create queue and bindings first.
    amqp.declare_queue(tchu_queue, [topics.compat, topics.txn])

    salt = rig.CeleryWorker("salt_worker", f"salt-{run_id}", rig_dir / "worker-salt.log",
                            dict(common, CSIT_QUEUE=salt_queue,
                                 CSIT_RESULT_BACKEND=salt_results.url))
    tchu = rig.CeleryWorker("tchu_worker", f"tchu-{run_id}", rig_dir / "worker-tchu.log",
                            dict(common, CSIT_QUEUE=tchu_queue,
                                 CSIT_RESULT_BACKEND=tchu_results.url))
    try:
        salt.launch()
        tchu.launch()
        salt.wait_ready(60)
        tchu.wait_ready(60)
        yield SimpleNamespace(salt=salt, tchu=tchu, salt_queue=salt_queue, tchu_queue=tchu_queue)
    finally:
        rig.stop_all([salt, tchu])


@pytest.fixture
def worker_factory(tmp_path):
    started: list[rig.CeleryWorker] = []

    def make(module: str, env: dict[str, str], name: str | None = None,
             wait: bool = True, timeout: float = 60) -> rig.CeleryWorker:
        name = name or f"{module}-{uuid.uuid4().hex[:6]}"
        w = rig.CeleryWorker(module, name, tmp_path / f"{name}.log", env)
        started.append(w)
        w.launch()
        if wait:
            w.wait_ready(timeout)
        return w

    yield make
    rig.stop_all(started)


# ------------------------------------------------------- failure diagnostics

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failed test, append the tails of the logs of the rig's cluster and
    workers it used (the full logs stay under --basetemp)."""
    rep = yield
    if rep.failed and call.when in ("setup", "call"):
        logs = []
        for name, value in getattr(item, "funcargs", {}).items():
            if isinstance(value, rig.PgCluster):
                logs.append((f"{name} server log", value.log_file))
            elif name == "workers" and isinstance(value, SimpleNamespace):
                logs += [("celery-salt worker log", value.salt.log_file),
                         ("tchu-tchu worker log", value.tchu.log_file)]
        for title, path in logs:
            rep.sections.append((title, rig.tail(path, 40)))
    return rep
