"""Building blocks of the integration rig: a throwaway PostgreSQL cluster with
celerysalt preloaded, AMQP and Redis helpers, and Celery worker processes.

conftest.py turns these into pytest fixtures; tests in this directory and in
faults/ may also import this module directly (``import rig``).

Everything here runs as the OS user ``postgres`` (test/integration/run.sh
arranges that): initdb refuses root.  Nothing here touches the machine's own
PostgreSQL, RabbitMQ or Redis configuration; names are unique per run.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

import psycopg
import redis as redis_lib
from kombu import Connection

HERE = Path(__file__).resolve().parent
WORKERS_DIR = HERE / "workers"

PG_BINDIR = Path(os.environ.get("CSIT_PG_BINDIR", "/usr/lib/postgresql/15/bin"))
BROKER_URL = os.environ.get("CSIT_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
# The extension reads celerysalt.broker_url as Celery reads broker_url: the same spelling.
EXT_BROKER_URL = os.environ.get("CSIT_EXT_BROKER_URL", BROKER_URL)
REDIS_HOST = os.environ.get("CSIT_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("CSIT_REDIS_PORT", "6379"))
EXCHANGE = "tchu_events"

SALT_TASK = "celery_salt.dispatch_event"
TCHU_TASK = "tchu_tchu.dispatch_event"

# Processes and clusters still alive at interpreter exit (pytest killed by a
# timeout, a crash in a fixture) are stopped by _cleanup_at_exit.
_live: list[Any] = []


def _cleanup_at_exit() -> None:
    for obj in reversed(list(_live)):
        try:
            obj.stop()
        except Exception:
            pass


atexit.register(_cleanup_at_exit)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.05, on_timeout: Callable[[], str] | None = None) -> Any:
    """Poll predicate until it returns a truthy value; return that value.

    Raises AssertionError naming `what` (plus on_timeout()'s text) after
    `timeout` seconds.  The interval grows gently to 0.5 s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = ""
            if on_timeout is not None:
                try:
                    extra = "\n" + on_timeout()
                except Exception as exc:  # diagnostics must not hide the timeout
                    extra = f"\n(diagnostics failed: {exc!r})"
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique(prefix: str = "csit") -> str:
    """A name unique to this run: prefix + 10 hex digits."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def canonical(value: Any) -> str:
    """JSON text that distinguishes 1, 1.0 and true (Python's == does not)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=True)


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"({path} does not exist)"
    return f"--- last {min(lines, len(text))} lines of {path}\n" + "\n".join(text[-lines:])


# --------------------------------------------------------------- PostgreSQL

def _conf_value(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (int, float)):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


class PgCluster:
    """A throwaway PostgreSQL 15 cluster with celerysalt preloaded.

    base_dir holds data/ (removed by destroy()) and the server log
    (postgres.log, kept for artifacts).  The settings given as `conf` (a dict
    of GUC name -> value) and later by set_conf() live in an included file,
    celerysalt_test.conf, so they can be changed and reloaded.
    """

    DEFAULT_CONF = {
        "shared_preload_libraries": "celerysalt",
        "celerysalt.broker_url": EXT_BROKER_URL,
        "celerysalt.poll_interval": "100ms",
        "celerysalt.dispatcher_tasks": f"{SALT_TASK}, {TCHU_TASK}",
        "fsync": False,
        "synchronous_commit": True,
        "max_connections": 30,
        "log_min_messages": "info",
        "log_line_prefix": "%m [%p] %b ",
    }

    def __init__(self, base_dir: Path, conf: dict[str, Any] | None = None,
                 dbname: str = "postgres", create_extension: bool = True):
        self.base_dir = Path(base_dir)
        self.data_dir = self.base_dir / "data"
        self.sock_dir = self.base_dir
        self.log_file = self.base_dir / "postgres.log"
        self.dbname = dbname
        self.create_extension = create_extension
        self.port = free_port()
        self.conf: dict[str, Any] = dict(self.DEFAULT_CONF)
        if conf:
            self.conf.update(conf)
        self.running = False

    # -- life cycle
    def init(self) -> "PgCluster":
        self.base_dir.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([str(PG_BINDIR / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                            "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed ({r.returncode}): {r.stderr}")
        with open(self.data_dir / "postgresql.conf", "a") as f:
            f.write("\n# integration rig\n")
            f.write(f"port = {self.port}\n")
            f.write("listen_addresses = '127.0.0.1'\n")
            f.write(f"unix_socket_directories = '{self.sock_dir}'\n")
            f.write("include_if_exists = 'celerysalt_test.conf'\n")
        self._write_conf()
        return self

    def _write_conf(self) -> None:
        path = self.data_dir / "celerysalt_test.conf"
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(f"{k} = {_conf_value(v)}\n" for k, v in self.conf.items()))
        tmp.replace(path)

    def _pg_ctl_start(self) -> None:
        r = subprocess.run([str(PG_BINDIR / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
                            "-w", "-t", "60", "start"], stdout=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed ({r.returncode})\n" + tail(self.log_file, 30))

    def start(self) -> "PgCluster":
        if self not in _live:
            _live.append(self)      # before starting: an interrupt may come mid-start
        self._pg_ctl_start()
        self.running = True
        if self.create_extension:
            self.execute("CREATE EXTENSION IF NOT EXISTS celerysalt")
        return self

    def stop(self, mode: str = "fast") -> None:
        if not self.running and not (self.data_dir / "postmaster.pid").exists():
            return
        subprocess.run([str(PG_BINDIR / "pg_ctl"), "-D", str(self.data_dir), "-m", mode,
                        "-w", "-t", "60", "stop"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.running = False
        if self in _live:
            _live.remove(self)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        if self not in _live:
            _live.append(self)
        self._pg_ctl_start()
        self.running = True

    def destroy(self) -> None:
        """Stop the server and remove its data directory (the log stays)."""
        self.stop("immediate")
        subprocess.run(["rm", "-rf", str(self.data_dir)], check=False)

    # -- configuration
    def set_conf(self, settings: dict[str, Any] | None = None, reload: bool = True, **kw: Any) -> None:
        """Change settings (None removes one) and, by default, reload.

        Names with a dot can be passed in the dict: set_conf({"celerysalt.batch_size": 10})."""
        changes = dict(settings or {})
        changes.update(kw)
        for k, v in changes.items():
            if v is None:
                self.conf.pop(k, None)
            else:
                self.conf[k] = v
        self._write_conf()
        if reload:
            self.reload()

    def reload(self, timeout: float = 10) -> None:
        """SIGHUP the server and wait until the postmaster has re-read its
        configuration (new sessions see a newer pg_conf_load_time()).

        Background workers apply a reload at their next wakeup: poll for the
        effect you need rather than sleeping."""
        before = self.scalar("SELECT pg_conf_load_time()")
        self.execute("SELECT pg_reload_conf()")
        wait_until(lambda: self.scalar("SELECT pg_conf_load_time()") > before, timeout,
                   "the configuration reload")

    # -- SQL
    @property
    def dsn(self) -> str:
        return f"host={self.sock_dir} port={self.port} dbname={self.dbname} user=postgres"

    def connect(self, autocommit: bool = True, dbname: str | None = None, **kw: Any) -> psycopg.Connection:
        dsn = self.dsn if dbname is None else self.dsn.replace(f"dbname={self.dbname}", f"dbname={dbname}")
        return psycopg.connect(dsn, autocommit=autocommit, **kw)

    def execute(self, sql: str, params: Iterable[Any] | None = None) -> list[tuple]:
        """Run one statement in its own autocommit session; return its rows (or [])."""
        with self.connect() as c:
            cur = c.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def scalar(self, sql: str, params: Iterable[Any] | None = None) -> Any:
        rows = self.execute(sql, params)
        return rows[0][0] if rows else None

    def publish(self, topic: str, payload: Any, version: str | None = None,
                correlation_id: str | None = None, conn: psycopg.Connection | None = None) -> str:
        """SELECT celerysalt_publish(...); payload is JSON text or a Python value.

        Returns the event id (text).  With conn, runs in that connection's
        transaction; otherwise in its own autocommit session."""
        text = payload if isinstance(payload, str) else json.dumps(payload)
        sql = "SELECT celerysalt_publish(%s, %s::jsonb, %s, %s)::text"
        if conn is not None:
            return conn.execute(sql, (topic, text, version, correlation_id)).fetchone()[0]
        return self.scalar(sql, (topic, text, version, correlation_id))

    def status(self) -> dict[str, Any]:
        with self.connect() as c:
            cur = c.execute("SELECT * FROM celerysalt_status")
            row = cur.fetchone()
            return dict(zip([d.name for d in cur.description], row)) if row else {}

    # -- waiting
    def wait_worker(self, timeout: float = 30, connected: bool = True) -> dict[str, Any]:
        """Wait until the database's delivery worker runs (and, by default,
        holds a broker connection)."""
        def ok():
            st = self.status()
            if st.get("worker_pid") and (not connected or st.get("broker_connected")):
                return st
            return None
        return wait_until(ok, timeout, "the celerysalt worker" + (" to connect" if connected else ""),
                          on_timeout=lambda: f"status: {self.status()}\n{tail(self.log_file, 30)}")

    def wait_idle(self, timeout: float = 30) -> None:
        """Wait until SELECT pending FROM celerysalt_status is 0."""
        wait_until(lambda: self.scalar("SELECT pending FROM celerysalt_status") == 0, timeout,
                   "celerysalt_status.pending = 0",
                   on_timeout=lambda: f"status: {self.status()}\n{tail(self.log_file, 30)}")

    def wait_delivered(self, event_ids: Iterable[str], timeout: float = 30) -> None:
        """Wait until every event id is in celerysalt_events (broker confirmed)."""
        ids = list(event_ids)
        wait_until(lambda: self.scalar("SELECT count(*) FROM celerysalt_events WHERE id = ANY(%s::uuid[])",
                                       (ids,)) == len(ids),
                   timeout, f"{len(ids)} event(s) in celerysalt_events",
                   on_timeout=lambda: f"status: {self.status()}\n{tail(self.log_file, 30)}")

    def delivered_payloads(self, topic: str) -> list[Any]:
        """Payloads of the events of topic the broker confirmed, in publish order."""
        return [r[0] for r in self.execute(
            "SELECT payload FROM celerysalt_events WHERE topic = %s ORDER BY event_id", (topic,))]

    def wait_delivered_payloads(self, topic: str, n: int, timeout: float = 30) -> list[Any]:
        """Wait until at least n events of topic are confirmed; their payloads."""
        return wait_until(lambda: (lambda got: got if len(got) >= n else None)(self.delivered_payloads(topic)),
                          timeout, f"{n} event(s) on {topic} in celerysalt_events",
                          on_timeout=lambda: f"status: {self.status()}\n{tail(self.log_file, 30)}")

    def __repr__(self) -> str:
        return f"<PgCluster port={self.port} dir={self.base_dir}>"


# --------------------------------------------------------------------- AMQP

class Amqp:
    """kombu helpers on one connection.  Queues declared here are deleted by
    close(); bindings always go to the topic exchange tchu_events (declared
    durable, as the Python libraries do)."""

    def __init__(self, url: str = BROKER_URL):
        self.conn = Connection(url, connect_timeout=5)
        self.conn.ensure_connection(max_retries=3)
        self._declared: list[str] = []

    @property
    def channel(self):
        return self.conn.default_channel

    def declare_queue(self, name: str, routing_keys: Iterable[str] = (), durable: bool = True,
                      arguments: dict[str, Any] | None = None, auto_delete: bool = False,
                      cleanup: bool = True) -> str:
        """Declare queue `name` bound to tchu_events with each routing key.

        A celery-salt >= 1.5.15 service queue needs arguments={"x-max-priority": 10}
        (docs/wire-format.md#pitfalls-of-the-python-libraries), a tchu-tchu one none."""
        ch = self.channel
        ch.exchange_declare(EXCHANGE, "topic", durable=True, auto_delete=False)
        ch.queue_declare(queue=name, durable=durable, exclusive=False, auto_delete=auto_delete,
                         arguments=arguments or {})
        if cleanup:
            self.track(name)
        for key in routing_keys:
            self.bind(name, key)
        return name

    def bind(self, queue: str, routing_key: str) -> None:
        self.channel.queue_bind(queue=queue, exchange=EXCHANGE, routing_key=routing_key)

    def unbind(self, queue: str, routing_key: str) -> None:
        self.channel.queue_unbind(queue=queue, exchange=EXCHANGE, routing_key=routing_key)

    def delete_queue(self, name: str) -> None:
        try:
            self.channel.queue_delete(queue=name)
        except Exception:
            # a failed delete closes the channel; reopen for the next call
            self.reset()
        if name in self._declared:
            self._declared.remove(name)

    def forget(self, name: str) -> None:
        """Make close() leave queue `name` alone."""
        if name in self._declared:
            self._declared.remove(name)

    def track(self, name: str) -> None:
        """Have close() delete queue `name` (e.g. a worker's service queue)."""
        if name not in self._declared:
            self._declared.append(name)

    def purge(self, name: str) -> int:
        return self.channel.queue_purge(queue=name) or 0

    def message_count(self, name: str) -> int:
        _, count, _ = self.channel.queue_declare(queue=name, passive=True)
        return count

    def get(self, queue: str, timeout: float = 10):
        """basic_get one raw py-amqp message (with .body bytes, .properties,
        .headers, .delivery_info), acknowledged; polls until timeout."""
        return wait_until(lambda: self.channel.basic_get(queue=queue, no_ack=True), timeout,
                          f"a message in queue {queue}")

    def get_many(self, queue: str, count: int, timeout: float = 10) -> list:
        got: list = []

        def more():
            while len(got) < count:
                m = self.channel.basic_get(queue=queue, no_ack=True)
                if m is None:
                    return False
                got.append(m)
            return True
        wait_until(more, timeout, f"{count} messages in queue {queue} (got {len(got)})")
        return got

    def reset(self) -> None:
        """Reconnect (after a channel error such as 406 PRECONDITION_FAILED)."""
        try:
            self.conn.release()
        except Exception:
            pass
        self.conn = Connection(self.conn.as_uri(include_password=True), connect_timeout=5)
        self.conn.ensure_connection(max_retries=3)

    def close(self) -> None:
        for name in list(self._declared):
            self.delete_queue(name)
        try:
            self.conn.release()
        except Exception:
            pass


# -------------------------------------------------------------------- Redis

def redis_url(db: int) -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


class RedisDb:
    """A Redis client on one DB index with a run-unique key prefix; close()
    deletes the keys under the prefix (and any extra keys registered)."""

    def __init__(self, db: int, prefix: str):
        self.db = db
        self.url = redis_url(db)
        self.prefix = prefix
        self.client = redis_lib.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db, socket_timeout=5)
        self.client.ping()
        self._extra: set[str] = set()

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix,) + parts)

    def records(self, key: str) -> list[Any]:
        """The JSON documents RPUSHed to key (full key name)."""
        return [json.loads(x) for x in self.client.lrange(key, 0, -1)]

    def wait_records(self, key: str, predicate: Callable[[list[Any]], Any], timeout: float = 30,
                     what: str = "records") -> list[Any]:
        """Poll the list at key until predicate(records) is truthy; return the records."""
        holder: dict[str, list[Any]] = {}

        def ok():
            holder["r"] = self.records(key)
            return predicate(holder["r"])
        wait_until(ok, timeout, f"{what} in redis db {self.db} key {key}",
                   on_timeout=lambda: f"records so far: {holder.get('r')!r}"[:4000])
        return holder["r"]

    def result(self, task_id: str) -> dict[str, Any] | None:
        """Celery's result record celery-task-meta-<task_id>, decoded, or None."""
        self._extra.add(f"celery-task-meta-{task_id}")
        raw = self.client.get(f"celery-task-meta-{task_id}")
        return json.loads(raw) if raw is not None else None

    def wait_result(self, task_id: str, timeout: float = 30,
                    states: tuple[str, ...] = ("SUCCESS", "FAILURE", "REVOKED")) -> dict[str, Any]:
        return wait_until(lambda: (r := self.result(task_id)) and r.get("status") in states and r,
                          timeout, f"celery-task-meta-{task_id} in redis db {self.db}")

    def forget_on_close(self, key: str) -> None:
        self._extra.add(key)

    def close(self) -> None:
        try:
            keys = list(self.client.scan_iter(match=self.prefix + ":*", count=500))
            keys += list(self._extra)
            for i in range(0, len(keys), 500):
                self.client.delete(*keys[i:i + 500])
        finally:
            self.client.close()


# ------------------------------------------------------------ Celery workers

class CeleryWorker:
    """A `celery worker -P solo` subprocess of an app module in workers/.

    env is added to the worker's environment (workers read their queue
    name, topics, Redis URLs from CSIT_* variables).  Output goes to
    log_file.  start() returns once the worker logged "ready."; stop() does
    a warm shutdown (SIGTERM), then SIGQUIT, then SIGKILL, always."""

    def __init__(self, module: str, name: str, log_file: Path, env: dict[str, str],
                 python: str | None = None, extra_args: Iterable[str] = ()):
        import sys
        self.module = module
        self.name = name
        self.log_file = Path(log_file)
        self.env = dict(env)
        self.python = python or sys.executable
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self, timeout: float = 60) -> "CeleryWorker":
        """launch() and wait_ready()."""
        self.launch()
        return self.wait_ready(timeout)

    def launch(self) -> "CeleryWorker":
        """Start the process without waiting for it to be ready."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/var/lib/postgresql"),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(WORKERS_DIR),
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        env.update(self.env)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_file, "ab")
        self._ready_offset = self.log_file.stat().st_size
        # No gossip/mingle: the broker is shared with other runs' workers.
        # Heartbeat every second: it also bounds a stall of the solo pool's
        # event loop, which otherwise sometimes leaves a message that arrived
        # while a task ran unread until its next timer fires (~10 s without
        # heartbeats, observed with celery 5.7 / kombu 5.7 / py-amqp 5.4).
        cmd = [self.python, "-m", "celery", "-A", self.module, "worker", "-P", "solo", "-c", "1",
               "-n", f"{self.name}@%h", "-l", "INFO",
               "--without-gossip", "--without-mingle", "--heartbeat-interval", "1"] + self.extra_args
        # Own session: a Ctrl-C or a signal to pytest's group does not hit
        # the worker; stop() signals this pid only.
        self.proc = subprocess.Popen(cmd, cwd=str(WORKERS_DIR), env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        _live.append(self)
        return self

    def wait_ready(self, timeout: float = 60) -> "CeleryWorker":
        """Wait for the worker's "<name>@<host> ready." line (logged after the
        worker_ready signal, i.e. after celery-salt re-bound its topics)."""
        try:
            wait_until(self._ready, timeout, f"celery worker {self.name} to be ready",
                       on_timeout=lambda: tail(self.log_file))
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"celery worker {self.name} exited with {self.proc.returncode}\n"
                                 + tail(self.log_file))
        with open(self.log_file, "rb") as f:
            f.seek(self._ready_offset)
            return b" ready." in f.read()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace")

    def signal_stop(self) -> None:
        """Begin a warm shutdown without waiting (see stop)."""
        if self.alive():
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def stop(self, warm_timeout: float = 15, cold_timeout: float = 5) -> None:
        if self.proc is None:
            return
        if self.alive():
            self.signal_stop()
            try:
                self.proc.wait(warm_timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGQUIT)
                try:
                    self.proc.wait(cold_timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self in _live:
            _live.remove(self)


def stop_all(workers: Iterable[CeleryWorker], warm_timeout: float = 15) -> None:
    """Warm-shut several workers in parallel, then make sure they are gone."""
    workers = [w for w in workers if w is not None]
    for w in workers:
        w.signal_stop()
    deadline = time.monotonic() + warm_timeout
    for w in workers:
        w.stop(warm_timeout=max(0.1, deadline - time.monotonic()))
