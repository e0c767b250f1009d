"""pytest fixtures for the fault-injection tests; the machinery (private
RabbitMQ node, fault proxy, throwaway cluster, consumer) is in faultkit.py."""
import os
import secrets
import shutil
import sys

import pytest

# Importable whatever pytest's --import-mode (the test module imports it too).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultkit import DEFAULT_SETTINGS, Consumer, FaultProxy, PgCluster, RabbitNode, wait_until


@pytest.fixture(scope="session")
def rabbit(tmp_path_factory):
    node = RabbitNode()
    try:
        node.start_private()
    except Exception as exc:  # fall back to the shared broker
        node.stop()
        node = RabbitNode()
        node.skip_reason = f"no private RabbitMQ node could be started: {exc}"
        print(node.skip_reason)
    yield node
    node.stop(keep_logs_in=tmp_path_factory.mktemp("faults-rabbitmq"))



@pytest.fixture
def proxy(rabbit):
    p = FaultProxy(rabbit.host, rabbit.port)
    yield p
    p.close()



@pytest.fixture
def make_pg(request, tmp_path_factory):
    """Factory: make_pg(broker_url, settings) -> started cluster with the
    extension created and its worker running.  Each cluster lives under /tmp
    and is removed afterwards; its server log is kept under pytest's basetemp
    (test/integration/run.sh sets it to the artifacts' log directory)."""
    clusters = []

    def make(broker_url, settings=None):
        s = dict(DEFAULT_SETTINGS)
        s["celerysalt.broker_url"] = f"'{broker_url}'"
        s.update(settings or {})
        pg = PgCluster(s)
        clusters.append(pg)
        pg.init()
        pg.start()
        pg.query("CREATE EXTENSION celerysalt")
        wait_until(lambda: pg.status()["worker_pid"] is not None, 30, "celerysalt worker")
        return pg

    yield make
    logdir = None
    for i, pg in enumerate(clusters):
        pg.stop("immediate")
        try:
            logdir = logdir or tmp_path_factory.mktemp("faults-" + request.node.name[:50])
            shutil.copy(pg.log, logdir / f"server{i}.log")
        except OSError:
            pass
        shutil.rmtree(pg.dir, ignore_errors=True)



@pytest.fixture
def consumer(rabbit, request):
    made = []

    def make(prefix=None):
        prefix = prefix or f"faults.{request.node.name.replace('_', '-')[:40]}.{secrets.token_hex(3)}"
        c = Consumer(rabbit, prefix)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


