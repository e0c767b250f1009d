"""Broker failover on a RabbitMQ cluster of our own (issue 16, item 4).

A two-node RabbitMQ cluster is started for this module only: its own node
names (csfo1-<pid>@localhost, csfo2-<pid>@localhost), free AMQP and
distribution ports, its own mnesia/log/config directories and enabled-plugins
file, and an Erlang cookie shared by the two nodes in a private HOME.  The
shared broker on 5672, its node and its cookie are not touched.  The nodes run
the unwrapped /usr/lib/rabbitmq/bin scripts as postgres (faultkit.py says
why) and are stopped and removed afterwards.

celerysalt.broker_url lists both nodes (kombu's ";" form) with a user whose
password holds every character a URL must encode.  A plain application role
holding only celerysalt_publisher publishes 10,000 events in 20 transactions
while the node the worker is connected to is stopped; the worker moves to the
other node at once, and a kombu consumer on a quorum queue there receives
every event (0 lost, at most one window of duplicates: publish_window
batches of batch_size events).  celerysalt_call, as
that role, reaches the broker while the first node is down.  The stopped node
then rejoins the cluster and delivery goes on.  No password reaches the server
log, the status view or SHOW.
"""
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse

import kombu
import psycopg
import pytest

from faultkit import RABBIT_BIN, _as_service_user, _chown_service_user, _mkdtemp, _write, free_port, wait_until

BATCH = 500            # celerysalt.batch_size of faultkit.DEFAULT_SETTINGS
WINDOW = 4 * BATCH     # celerysalt.publish_window batches: what one failover may publish twice
EVENTS = 10000
TRANSACTIONS = 20
EXCHANGE = "tchu_events"

pytestmark = pytest.mark.skipif(not os.path.exists(f"{RABBIT_BIN}/rabbitmq-server"),
                                reason="rabbitmq-server is not installed")


class ClusterNode:
    """One node of the private cluster."""

    def __init__(self, name, base, home):
        self.node = f"{name}-{os.getpid()}@localhost"
        self.dir = f"{base}/{name}"
        self.home = home
        self.port = free_port()
        self.dist_port = free_port()
        os.makedirs(self.dir)
        _chown_service_user(self.dir)
        _write(f"{self.dir}/rabbitmq.conf",
               f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
               "log.file.level = info\n", 0o644)
        _write(f"{self.dir}/enabled_plugins", "[].\n", 0o644)
        _write(f"{self.dir}/rabbitmq-env.conf", "", 0o644)
        self.running = False

    def env(self):
        d = self.dir
        return {
            "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": self.home,  # the cluster's own Erlang cookie
            "LANG": "C.UTF-8",
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": f"{d}/mnesia",
            "RABBITMQ_LOG_BASE": f"{d}/log",
            "RABBITMQ_CONFIG_FILE": f"{d}/rabbitmq.conf",
            "RABBITMQ_ADVANCED_CONFIG_FILE": f"{d}/advanced.config",
            "RABBITMQ_CONF_ENV_FILE": f"{d}/rabbitmq-env.conf",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{d}/enabled_plugins",
            "RABBITMQ_PID_FILE": f"{d}/pid",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def _env_args(self, with_name=True):
        return [f"{k}={v}" for k, v in self.env().items() if with_name or k != "RABBITMQ_NODENAME"]

    def launch(self):
        """rabbitmq-server -detached (returns at once; see wait_amqp)."""
        r = subprocess.run(_as_service_user(["env"] + self._env_args() +
                                            [f"{RABBIT_BIN}/rabbitmq-server", "-detached"]),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"rabbitmq-server -detached failed for {self.node}: {r.stdout}{r.stderr}"
        self.running = True

    def ctl(self, *args, timeout=60, check=True):
        r = subprocess.run(_as_service_user(["env"] + self._env_args(with_name=False) +
                                            [f"{RABBIT_BIN}/rabbitmqctl", "-n", self.node, *args]),
                           capture_output=True, text=True, timeout=timeout)
        if check:
            assert r.returncode == 0, f"rabbitmqctl -n {self.node} {' '.join(args)}: {r.stdout}{r.stderr}"
        return r

    def ctl_json(self, *args):
        out = self.ctl(*args, "--formatter", "json", "--quiet").stdout
        return json.loads(out) if out.strip() else []

    def amqp_ok(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"AMQP\x00\x00\x09\x01")
                return s.recv(1)[:1] == b"\x01"  # connection.start
        except OSError:
            return False

    def wait_amqp(self, timeout=90):
        wait_until(self.amqp_ok, timeout, f"RabbitMQ node {self.node} on port {self.port}", interval=0.25)

    def stop(self, check=True):
        """rabbitmqctl stop: close client connections, halt the node."""
        if self.running:
            self.ctl("stop", timeout=90, check=check)
            self.running = False
            if check:
                wait_until(lambda: not self.amqp_ok(), 30, f"node {self.node} to stop listening")

    def url(self, user, password):
        return (f"amqp://{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}"
                f"@127.0.0.1:{self.port}//")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    base = _mkdtemp("celerysalt-csfo.")
    home = f"{base}/home"
    os.makedirs(home)
    _chown_service_user(home)
    _write(f"{home}/.erlang.cookie", "CSFO" + secrets.token_hex(16).upper(), 0o400)
    nodes = [ClusterNode("csfo1", base, home), ClusterNode("csfo2", base, home)]
    try:
        for n in nodes:
            n.launch()
        for n in nodes:
            n.wait_amqp()
        a, b = nodes
        b.ctl("stop_app")
        b.ctl("join_cluster", a.node)
        b.ctl("start_app")
        b.wait_amqp()
        running = a.ctl_json("cluster_status").get("running_nodes", [])
        assert sorted(running) == sorted([a.node, b.node]), running
        # a user whose password needs every URL escape: %40 %3A %2F %3B %23 %3F %25 %5B %5D
        user, password = "csfo", "P@ss:w/rd;#?%[]-" + secrets.token_hex(6)
        a.ctl("add_user", user, password)
        a.ctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
        yield type("Cluster", (), {"nodes": nodes, "user": user, "password": password, "base": base})
    finally:
        for n in reversed(nodes):
            n.stop(check=False)
        keep = tmp_path_factory.mktemp("csfo-rabbitmq")
        for n in nodes:
            shutil.copytree(f"{n.dir}/log", keep / n.node.split("@")[0], dirs_exist_ok=True,
                            ignore_dangling_symlinks=True)
        shutil.rmtree(base, ignore_errors=True)


class QuorumConsumer:
    """A kombu consumer on one node: declares a quorum queue bound to
    prefix.# on tchu_events, acknowledges and records every message's task id
    (the event id: one dispatcher task)."""

    def __init__(self, url, queue, prefix):
        self.url = url
        self.queue_name = queue
        self.prefix = prefix
        self.ids = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(30):
            raise AssertionError(f"consumer did not start: {self.error}")
        assert self.error is None, self.error

    def _run(self):
        try:
            with kombu.Connection(self.url, heartbeat=0) as conn:
                exchange = kombu.Exchange(EXCHANGE, type="topic", durable=True)
                # one member, placed on the node we are connected to (client-local):
                # a two-node cluster has no majority left for a replicated queue
                # while one node is down (docs/scaling.md)
                queue = kombu.Queue(self.queue_name, exchange, routing_key=f"{self.prefix}.#", durable=True,
                                    queue_arguments={"x-queue-type": "quorum",
                                                     "x-quorum-initial-group-size": 1})
                with kombu.Consumer(conn, queues=[queue], on_message=self._on_message,
                                    accept=["json"], prefetch_count=1000):
                    self.ready.set()
                    while not self.stopping.is_set():
                        try:
                            conn.drain_events(timeout=0.2)
                        except socket.timeout:
                            pass
        except Exception as exc:  # surfaced by the assertions
            self.error = repr(exc)
            self.ready.set()

    def _on_message(self, message):
        with self.lock:
            self.ids.append(message.headers.get("id"))
        message.ack()

    def counts(self):
        with self.lock:
            ids = list(self.ids)
        return len(ids), set(ids)

    def close(self):
        self.stopping.set()
        self.thread.join(10)


def node_of(status_node, nodes):
    """The ClusterNode a status view's broker_node names (by port)."""
    m = re.search(r"@127\.0\.0\.1:(\d+)//$", status_node or "")
    assert m, f"broker_node {status_node!r} is not one of the cluster's nodes"
    return next(n for n in nodes if n.port == int(m.group(1)))


def test_worker_fails_over_within_the_cluster(cluster, make_pg):
    a, b = cluster.nodes
    url = ";".join(n.url(cluster.user, cluster.password) for n in cluster.nodes)
    pg = make_pg(url, {"celerysalt.dispatcher_tasks": "'celery_salt.dispatch_event'",
                       "celerysalt.unroutable": "'keep'"})
    pg.query("CREATE ROLE app_pub LOGIN IN ROLE celerysalt_publisher")
    wait_until(lambda: pg.status()["broker_connected"], 30, "worker connected")
    st = pg.status()
    # the first reachable node, shown without its password
    worker_node = node_of(st["broker_node"], cluster.nodes)
    assert worker_node is a, st["broker_node"]
    assert st["broker_node"] == f"amqp://{cluster.user}:***@127.0.0.1:{a.port}//"
    assert st["broker"] == (f"amqp://{cluster.user}:***@127.0.0.1:{a.port}//;"
                            f"amqp://{cluster.user}:***@127.0.0.1:{b.port}//")
    assert pg.one("SHOW celerysalt.broker_url") == st["broker"]
    # RabbitMQ agrees: the worker's connection (librabbitmq-c) is on node a
    conns = a.ctl_json("list_connections", "user", "client_properties")
    assert any(c["user"] == cluster.user and "rabbitmq-c" in json.dumps(c["client_properties"])
               for c in conns), conns

    survivor = b
    prefix = f"csfo.{secrets.token_hex(3)}"
    consumer = QuorumConsumer(survivor.url(cluster.user, cluster.password), f"csfo-{prefix}", prefix)
    try:
        queues = survivor.ctl_json("list_queues", "name", "type", "leader")
        q = next(q for q in queues if q["name"] == consumer.queue_name)
        assert q["type"] == "quorum" and q["leader"] == survivor.node, q
        delivered_before = pg.status()["delivered_total"]

        # 10,000 events from the plain publisher role, 20 transactions, while node a stops
        ids, errors = [], []

        def publish():
            try:
                with psycopg.connect(host=pg.dir, port=pg.port, user="app_pub", dbname="postgres",
                                     autocommit=True, connect_timeout=5) as conn:
                    per_tx = EVENTS // TRANSACTIONS
                    for t in range(TRANSACTIONS):
                        with conn.transaction():
                            rows = conn.execute(
                                "SELECT celerysalt_publish(%s, jsonb_build_object('n', g))"
                                " FROM generate_series(%s::int, %s::int) g",
                                (f"{prefix}.event", t * per_tx, (t + 1) * per_tx - 1)).fetchall()
                        ids.extend(str(r[0]) for r in rows)
                        time.sleep(0.4)
            except Exception as exc:
                errors.append(repr(exc))

        publisher = threading.Thread(target=publish)
        t0 = time.monotonic()
        publisher.start()
        # stop the worker's node mid-stream: some events delivered, most not yet published
        wait_until(lambda: pg.status()["delivered_total"] - delivered_before >= 1000, 60,
                   "1,000 events delivered before the stop")
        delivered_at_stop = pg.status()["delivered_total"] - delivered_before
        a.stop()
        stopped_at = time.monotonic()
        # publishing goes on after the node is gone: those events can only go through b
        assert publisher.is_alive(), "the publisher finished before the node stopped"
        publisher.join(120)
        assert not publisher.is_alive() and not errors, errors
        assert len(ids) == EVENTS and len(set(ids)) == EVENTS

        wait_until(lambda: pg.status()["pending"] == 0, 60, "the outbox to drain (pending = 0)")
        wait_until(lambda: consumer.counts()[1] >= set(ids), 60, "every event at the consumer")
        time.sleep(0.5)  # late duplicates, if any
        total, seen = consumer.counts()
        lost = set(ids) - seen
        duplicates = total - len(seen)
        assert not lost, f"{len(lost)} events lost"
        assert seen == set(ids), f"{len(seen - set(ids))} unexpected ids"
        assert duplicates <= WINDOW, f"{duplicates} duplicates, more than one window ({WINDOW})"

        st = pg.status()
        assert st["broker_connected"] and st["broker_node"] == f"amqp://{cluster.user}:***@127.0.0.1:{b.port}//", st
        log = open(pg.log, errors="replace").read()
        assert re.search(r"celerysalt cannot deliver events: .*\n.*DETAIL:  Broker node "
                         rf"amqp://{cluster.user}:\*\*\*@127\.0\.0\.1:{a.port}//\. Events stay in the outbox; "
                         rf"the worker tries node amqp://{cluster.user}:\*\*\*@127\.0\.0\.1:{b.port}// now\.", log), \
            "no failover line in the server log"
        assert re.search(r"celerysalt connected to the broker again; delivering the waiting events\n.*DETAIL:  "
                         rf"Broker node amqp://{cluster.user}:\*\*\*@127\.0\.0\.1:{b.port}//\.", log)
        metrics = pg.one("SELECT celerysalt_metrics()")
        m = re.search(r'^celerysalt_broker_reconnects_total\{[^}]*\} (\d+)', metrics, re.M)
        assert m and int(m.group(1)) >= 1, metrics
        print(f"failover: {EVENTS} events, node stopped after {delivered_at_stop} were delivered, "
              f"all delivered {time.monotonic() - stopped_at:.1f}s after the stop "
              f"({time.monotonic() - t0:.1f}s in all), {duplicates} duplicates")

        # RPC while the first node is down: the call tries it, then the next node, whose
        # broker returns the request (no queue bound for the topic): CR004, not 08001
        with psycopg.connect(host=pg.dir, port=pg.port, user="app_pub", dbname="postgres",
                             autocommit=True, connect_timeout=5) as conn:
            t1 = time.monotonic()
            with pytest.raises(psycopg.Error) as err:
                conn.execute("SELECT celerysalt_call(%s, '{}', '10s')", (f"csfo-rpc.{secrets.token_hex(3)}.unbound",))
            assert err.value.sqlstate == "CR004", (err.value.sqlstate, str(err.value))
            assert time.monotonic() - t1 < 5

        # the stopped node comes back into the cluster; delivery goes on
        a.launch()
        a.wait_amqp()
        wait_until(lambda: sorted(b.ctl_json("cluster_status").get("running_nodes", []))
                   == sorted([a.node, b.node]), 60, "both nodes running in the cluster")
        more = pg.publish(f"{prefix}.after", 1, 100)
        wait_until(lambda: consumer.counts()[1] >= set(more), 30, "events published after the node came back")
        wait_until(lambda: pg.status()["pending"] == 0, 30, "pending = 0")

        # no password anywhere: server log, status, SHOW
        encoded = urllib.parse.quote(cluster.password, safe="")
        for text, where in ((open(pg.log, errors="replace").read(), "server log"),
                            (json.dumps(pg.status(), default=str), "celerysalt_status"),
                            (pg.one("SHOW celerysalt.broker_url"), "SHOW")):
            assert cluster.password not in text and encoded not in text, f"password in the {where}"
    finally:
        consumer.close()
