"""Machinery for the celerysalt delivery fault-injection tests.

What the tests run against (all private, all torn down afterwards):

* ``rabbit``: a RabbitMQ node of our own (``faults<rand>@localhost``) on free
  ports, with its own mnesia/log/config directory and Erlang cookie, started
  from the unwrapped ``/usr/lib/rabbitmq/bin/rabbitmq-server`` as the current
  user (the Debian wrapper in /usr/sbin refuses anybody but root and
  rabbitmq; the unwrapped script runs fine as postgres, which is what CI
  uses).  Its config sets ``max_message_size`` so that test 7 has an event
  the broker can never take, and a ``default_user`` with a password of our
  own so that the credential tests have a password worth searching for.
  Stopped with ``rabbitmqctl -n <node> stop``.  If it cannot be started the
  tests fall back to the shared broker on 5672 (guest) and the tests that
  need the private node skip with the reason.
* ``proxy``: an asyncio TCP proxy in front of that node, driven from the
  test: ``down()`` (listener closed, connections reset: "connection
  refused"), ``up()``, ``reset_all()`` (RST every connection, keep
  listening), ``stall()`` (stop forwarding, keep sockets open), ``resume()``.
* ``pg``: a throwaway PostgreSQL 15 cluster per test with
  shared_preload_libraries = celerysalt on a free port, run as postgres
  (through runuser when the tests run as root), started and stopped by the
  fixture; the extension is created in database ``postgres``.
* ``consumer``: a kombu consumer on its own queue bound to the test's topic
  prefix on exchange ``tchu_events``; it records the AMQP header ``id`` and
  the body of every message it receives.
"""
import asyncio
import collections
import json
import os
import pwd
import secrets
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time

import kombu
import psycopg
import psycopg.sql

# The PostgreSQL whose lib holds the build under test (as rig.py: CSIT_PG_BINDIR).
PGBIN = os.environ.get("CSIT_PG_BINDIR", "/usr/lib/postgresql/15/bin")
RABBIT_BIN = "/usr/lib/rabbitmq/bin"
SERVICE_USER = "postgres"
EXCHANGE = "tchu_events"
# RabbitMQ refuses bodies above this (test 7); ordinary test events are ~1 kB.
MAX_MESSAGE_SIZE = 65536


# ----------------------------------------------------------------- helpers

def wait_until(predicate, timeout, what, interval=0.05):
    """Poll predicate() until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (psycopg.OperationalError, OSError) as exc:  # server restarting
            last_exc = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                                 + (f" (last error: {last_exc})" if last_exc else ""))
        time.sleep(interval)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_service_user(cmd):
    """Run server binaries as postgres: initdb and pg_ctl refuse root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", SERVICE_USER, "--"] + cmd
    return cmd


def _chown_service_user(path):
    if os.geteuid() == 0:
        pw = pwd.getpwnam(SERVICE_USER)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def _mkdtemp(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    _chown_service_user(d)
    return d


def _write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    _chown_service_user(path)


# ---------------------------------------------------------------- RabbitMQ

class RabbitNode:
    """A private RabbitMQ node (or, as a fallback, the shared one)."""

    def __init__(self):
        self.private = False
        self.started = False
        self.skip_reason = None
        self.node = None
        self.dir = None
        self.host = "127.0.0.1"
        self.port = 5672
        self.user = "guest"
        self.password = "guest"

    def env(self):
        d = self.dir
        return {
            "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": d,  # its own Erlang cookie: $HOME/.erlang.cookie
            "LANG": "C.UTF-8",
            "RABBITMQ_NODENAME": self.node,  # only in this child's environment
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": f"{d}/mnesia",
            "RABBITMQ_LOG_BASE": f"{d}/log",
            "RABBITMQ_CONFIG_FILE": f"{d}/rabbitmq.conf",
            "RABBITMQ_CONF_ENV_FILE": f"{d}/rabbitmq-env.conf",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{d}/enabled_plugins",
            "RABBITMQ_PID_FILE": f"{d}/pid",
            "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def ctl(self, *args, timeout=30):
        return subprocess.run(
            _as_service_user(["env"] + [f"{k}={v}" for k, v in self.env().items()
                                        if k != "RABBITMQ_NODENAME"]
                             + [f"{RABBIT_BIN}/rabbitmqctl", "-n", self.node, *args]),
            capture_output=True, text=True, timeout=timeout)

    def start_private(self):
        self.node = f"faults{secrets.token_hex(4)}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.user = "faults"
        self.password = "RabbitGood" + secrets.token_hex(8)
        self.dir = _mkdtemp("celerysalt-faults-rmq.")
        _write(f"{self.dir}/rabbitmq.conf",
               f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
               f"max_message_size = {MAX_MESSAGE_SIZE}\n"
               f"default_user = {self.user}\n"
               f"default_pass = {self.password}\n"
               "loopback_users = none\n"
               "log.file.level = info\n", 0o644)
        _write(f"{self.dir}/enabled_plugins", "[].\n", 0o644)
        _write(f"{self.dir}/rabbitmq-env.conf", "", 0o644)
        env_args = [f"{k}={v}" for k, v in self.env().items()]
        r = subprocess.run(_as_service_user(["env"] + env_args +
                                            [f"{RABBIT_BIN}/rabbitmq-server", "-detached"]),
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"rabbitmq-server -detached failed: {r.stdout}{r.stderr}")
        self.started = True
        # -detached returns at once; wait until an AMQP login works.
        wait_until(self._amqp_ok, 60, f"RabbitMQ node {self.node} on port {self.port}",
                   interval=0.25)
        self.private = True

    def _amqp_ok(self):
        try:
            with kombu.Connection(self.url(), connect_timeout=1) as c:
                c.connect()
                return True
        except Exception:
            return False

    def stop(self, keep_logs_in=None):
        if self.started:
            r = self.ctl("stop", timeout=90)
            if r.returncode != 0:
                print(f"rabbitmqctl stop failed: {r.stdout}{r.stderr}")
            self.started = False
            self.private = False
        if self.dir and keep_logs_in is not None:
            shutil.copytree(f"{self.dir}/log", keep_logs_in, dirs_exist_ok=True,
                            ignore_dangling_symlinks=True)
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_count(self, needle):
        """Lines of the private node's log containing needle."""
        n = 0
        for name in os.listdir(f"{self.dir}/log"):
            if name.endswith(".log"):
                with open(f"{self.dir}/log/{name}", errors="replace") as f:
                    n += sum(needle in line for line in f)
        return n

    def url(self, password=None, port=None):
        pw = self.password if password is None else password
        cred = f"{self.user}:{pw}" if pw != "" else self.user
        return f"amqp://{cred}@{self.host}:{port or self.port}//"

# ------------------------------------------------------------------- proxy

class FaultProxy:
    """An asyncio TCP proxy in its own thread, controlled by the test."""

    def __init__(self, upstream_host, upstream_port):
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.server = None
        self.conns = set()          # (client_writer, upstream_writer)
        self.flowing = None         # asyncio.Event, set = forwarding
        self.accepted = 0
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._call(self._init())
        self.up()

    def _call(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _init(self):
        self.flowing = asyncio.Event()
        self.flowing.set()

    async def _pipe(self, reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass

    async def _handle(self, creader, cwriter):
        self.accepted += 1
        try:
            ureader, uwriter = await asyncio.open_connection(*self.upstream)
        except OSError:
            _rst(cwriter)
            return
        pair = (cwriter, uwriter)
        self.conns.add(pair)
        try:
            await asyncio.gather(self._pipe(creader, uwriter), self._pipe(ureader, cwriter))
        finally:
            self.conns.discard(pair)

    async def _up(self):
        if self.server is None:
            self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port,
                                                     reuse_address=True)

    async def _down(self):
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        await self._reset_all()

    async def _reset_all(self):
        n = 0
        for cw, uw in list(self.conns):
            _rst(cw)
            _rst(uw)
            n += 1
        self.conns.clear()
        return n

    async def _set_flowing(self, on):
        if on:
            self.flowing.set()
        else:
            self.flowing.clear()

    def up(self):
        """Listen and forward."""
        self._call(self._up())

    def down(self):
        """Broker gone: new connections are refused, existing ones reset."""
        self._call(self._down())

    def reset_all(self):
        """RST every established connection; keep listening."""
        return self._call(self._reset_all())

    def stall(self):
        """Stop forwarding in both directions; sockets stay open."""
        self._call(self._set_flowing(False))

    def resume(self):
        self._call(self._set_flowing(True))

    def close(self):
        try:
            self.resume()
            self.down()
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def _rst(writer):
    """Abort a connection with a TCP RST (SO_LINGER 0)."""
    try:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()

# --------------------------------------------------------------- PostgreSQL

class PgCluster:
    def __init__(self, settings):
        self.dir = _mkdtemp("celerysalt-faults-pg.")
        self.data = f"{self.dir}/data"
        self.log = f"{self.dir}/server.log"
        self.port = free_port()
        self.settings = settings
        self.running = False

    def _run(self, *cmd, check=True, timeout=120):
        r = subprocess.run(_as_service_user(list(cmd)), capture_output=True, text=True,
                           timeout=timeout, cwd=self.dir)
        if check and r.returncode != 0:
            raise RuntimeError(f"{cmd} failed: {r.stdout}{r.stderr}")
        return r

    def init(self):
        self._run(f"{PGBIN}/initdb", "-D", self.data, "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8", "--locale=C")
        conf = {
            "port": self.port,
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.dir}'",
            "shared_preload_libraries": "'celerysalt'",
            "restart_after_crash": "on",
            "fsync": "on",
            "log_line_prefix": "'%m [%p] %b '",
            "max_wal_size": "'1GB'",
        }
        conf.update(self.settings)
        with open(f"{self.data}/postgresql.conf", "a") as f:
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")

    def start(self):
        self._run(f"{PGBIN}/pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "start")
        self.running = True

    def stop(self, mode="fast"):
        self._run(f"{PGBIN}/pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop",
                  check=False)
        self.running = False

    def connect(self, dbname="postgres"):
        return psycopg.connect(host=self.dir, port=self.port, user="postgres", dbname=dbname,
                               autocommit=True, connect_timeout=5)

    def query(self, sql, params=None):
        with self.connect() as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def one(self, sql, params=None):
        rows = self.query(sql, params)
        return rows[0][0] if len(rows[0]) == 1 else rows[0]

    def status(self):
        with self.connect() as conn:
            cur = conn.execute("SELECT * FROM celerysalt_status")
            cols = [d.name for d in cur.description]
            return dict(zip(cols, cur.fetchone()))

    def reload_with(self, **settings):
        with self.connect() as conn:
            for k, v in settings.items():
                conn.execute(f"ALTER SYSTEM SET celerysalt.{k} = {psycopg.sql.quote(v)}")
            conn.execute("SELECT pg_reload_conf()")

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def log_lines(self, needle):
        return [line for line in self.log_text().splitlines() if needle in line]

    def worker_pid(self):
        rows = self.query("SELECT pid FROM pg_stat_activity WHERE backend_type = 'celerysalt worker'")
        return rows[0][0] if rows else None

    def publish(self, topic, ntx, per_tx, start=0, pad=0, conn=None):
        """ntx transactions each publishing per_tx events in one statement.
        Returns the event ids in publishing order (as strings)."""
        ids = []
        own = conn is None
        conn = conn or self.connect()
        try:
            for t in range(ntx):
                base = start + t * per_tx
                with conn.transaction():
                    rows = conn.execute(
                        "SELECT celerysalt_publish(%s, jsonb_build_object('n', g, 'pad', repeat('x', %s::int)))"
                        " FROM generate_series(%s::int, %s::int) g",
                        (topic, pad, base, base + per_tx - 1)).fetchall()
                ids.extend(str(r[0]) for r in rows)
        finally:
            if own:
                conn.close()
        return ids


DEFAULT_SETTINGS = {
    "celerysalt.batch_size": 500,
    "celerysalt.publish_window": 4,
    "celerysalt.poll_interval": "'200ms'",
    "celerysalt.broker_timeout": "'2s'",
    "celerysalt.reconnect_max_delay": "'1s'",
}

# ---------------------------------------------------------------- consumer

class Consumer:
    """Drains a queue bound to topic prefix.# and records header ids."""

    def __init__(self, rabbit, prefix):
        self.url = rabbit.url()
        self.prefix = prefix
        self.queue_name = f"faults-{prefix}"
        self.ids = []               # header id of every message, in arrival order
        self.bodies = {}            # id -> decoded body
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(30):
            raise AssertionError(f"consumer did not start: {self.error}")

    def _run(self):
        try:
            with kombu.Connection(self.url, heartbeat=0) as conn:
                exchange = kombu.Exchange(EXCHANGE, type="topic", durable=True)
                queue = kombu.Queue(self.queue_name, exchange, routing_key=f"{self.prefix}.#",
                                    auto_delete=True, durable=False)
                with kombu.Consumer(conn, queues=[queue], on_message=self._on_message,
                                    no_ack=True, accept=["json"]):
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
        mid = message.headers.get("id")
        with self.lock:
            self.ids.append(mid)
            if mid not in self.bodies:
                self.bodies[mid] = message.body

    def count(self):
        with self.lock:
            return len(self.ids)

    def counter(self):
        with self.lock:
            return collections.Counter(self.ids)

    def wait_for(self, expected_ids, timeout, what="all events at the consumer"):
        expected = set(expected_ids)

        def done():
            assert self.error is None, f"consumer failed: {self.error}"
            with self.lock:
                return expected <= set(self.ids)
        wait_until(done, timeout, what, interval=0.05)

    def close(self):
        self.stopping.set()
        self.thread.join(10)

def body_payload(body):
    """The event payload inside a Celery protocol-2 body
    [[payload-json-string], {...}, {...}]."""
    if isinstance(body, (bytes, str)):
        body = json.loads(body)
    arg = body[0][0]
    return json.loads(arg) if isinstance(arg, str) else arg
