"""TLS to RabbitMQ (amqps://) and Redis (rediss://) (issue 16, item 3).

The test makes its own PKI with openssl (a CA, a second CA nobody uses, a
server certificate valid for DNS:localhost only, a client certificate) and
starts its own servers, which speak TLS only and require a client
certificate signed by the CA:

* a RabbitMQ node (own node name, ports, directories, Erlang cookie) with no
  TCP listener, ssl_options verify_peer + fail_if_no_peer_cert;
* a redis-server with --port 0 --tls-port N --tls-auth-clients yes and a
  password;
* a stock celery-salt service that reaches both over TLS, configured the
  way Celery documents it (broker_use_ssl, a rediss:// result backend URL
  with ssl_* parameters);
* a PostgreSQL cluster whose celerysalt settings point at them.

Then: a valid chain delivers an event (the service receives it) and answers
celerysalt_call, both from a plain application role holding only
celerysalt_publisher; a wrong CA, a host name the certificate does not name
(with verify full; ca connects), a missing client certificate, a key file
others can read, and a plain URL aimed at the TLS port all fail with the
cause in celerysalt_status.last_error (worker) or an 08001 from
celerysalt_call, and nothing is delivered meanwhile; a server that never
answers the handshake ends the call at its deadline.  The servers have no
plain-text port: nothing can fall back to one.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import kombu
import psycopg
import pytest
from psycopg import sql
import redis as redis_lib

import rig

OPENSSL = shutil.which("openssl")
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"

_missing = [what for what, ok in (("openssl", OPENSSL is not None),
                                  ("rabbitmq-server", (RABBIT_BIN / "rabbitmq-server").exists()),
                                  ("redis-server", Path(REDIS_SERVER).exists()))
            if not ok]
pytestmark = pytest.mark.skipif(bool(_missing), reason=f"TLS test needs {', '.join(_missing)}")


# ------------------------------------------------------------------ the PKI

def _openssl(*args: str, cwd: Path) -> None:
    r = subprocess.run([OPENSSL, *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {r.stderr}")


class Pki:
    """CA, other CA, server (DNS:localhost) and client certificates, EC P-256."""

    def __init__(self, d: Path):
        self.dir = d
        d.mkdir(parents=True, exist_ok=True)
        for ca in ("ca", "other_ca"):
            _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                     "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2",
                     "-subj", f"/CN=celerysalt test {ca}", cwd=d)
        self._issue("server", "localhost",
                    "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n"
                    "basicConstraints=CA:FALSE\n")
        self._issue("client", "celerysalt-client",
                    "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")
        for p in d.glob("*.key"):
            p.chmod(0o600)
        self.ca, self.other_ca = d / "ca.pem", d / "other_ca.pem"
        self.server_cert, self.server_key = d / "server.pem", d / "server.key"
        self.client_cert, self.client_key = d / "client.pem", d / "client.key"
        # the client key, readable by everyone (refused)
        self.open_key = d / "client_open.key"
        shutil.copy(self.client_key, self.open_key)
        self.open_key.chmod(0o644)

    def _issue(self, name: str, cn: str, ext: str) -> None:
        (self.dir / f"{name}.ext").write_text(ext)
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}",
                 cwd=self.dir)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-set_serial", str(secrets.randbits(63)), "-days", "2", "-out", f"{name}.pem",
                 "-extfile", f"{name}.ext", cwd=self.dir)

    def python_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        return ctx


# ------------------------------------------------------------------ servers

class TlsRabbit:
    """A private RabbitMQ node that speaks AMQP over TLS only."""

    def __init__(self, d: Path, pki: Pki):
        self.dir = d
        d.mkdir(parents=True, exist_ok=True)
        self.node = f"celerysalt-tls-{os.getpid()}-{secrets.token_hex(2)}@localhost"
        self.port = rig.free_port()
        self.dist_port = rig.free_port()
        self.user = "tls"
        self.password = "TlsRabbit" + secrets.token_hex(6)
        self.pki = pki
        self.started = False
        (d / "rabbitmq.conf").write_text(
            "listeners.tcp = none\n"
            f"listeners.ssl.default = 127.0.0.1:{self.port}\n"
            f"ssl_options.cacertfile = {pki.ca}\n"
            f"ssl_options.certfile = {pki.server_cert}\n"
            f"ssl_options.keyfile = {pki.server_key}\n"
            "ssl_options.verify = verify_peer\n"
            "ssl_options.fail_if_no_peer_cert = true\n"
            f"default_user = {self.user}\n"
            f"default_pass = {self.password}\n"
            "loopback_users = none\n"
            "log.file.level = info\n")
        (d / "enabled_plugins").write_text("[].\n")
        (d / "rabbitmq-env.conf").write_text("")

    def env(self) -> dict[str, str]:
        d = self.dir
        return {
            "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": str(d),  # its own Erlang cookie, $HOME/.erlang.cookie
            "LANG": "C.UTF-8",
            "RABBITMQ_NODENAME": self.node,  # only in the child's environment
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(rig.free_port()),  # unused: listeners.tcp = none
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": f"{d}/mnesia",
            "RABBITMQ_LOG_BASE": f"{d}/log",
            "RABBITMQ_CONFIG_FILE": f"{d}/rabbitmq.conf",
            "RABBITMQ_CONF_ENV_FILE": f"{d}/rabbitmq-env.conf",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{d}/enabled_plugins",
            "RABBITMQ_PID_FILE": f"{d}/pid",
            "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        env = {k: v for k, v in self.env().items() if k != "RABBITMQ_NODENAME"}
        return subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, *args],
                              env=env, capture_output=True, text=True, timeout=timeout)

    def kombu_url(self) -> str:
        return f"amqps://{self.user}:{self.password}@localhost:{self.port}//"

    def start(self) -> "TlsRabbit":
        r = subprocess.run([str(RABBIT_BIN / "rabbitmq-server"), "-detached"], env=self.env(),
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"rabbitmq-server -detached failed: {r.stdout}{r.stderr}")
        self.started = True
        rig.wait_until(self._amqp_ok, 60, f"RabbitMQ node {self.node} (TLS on {self.port})",
                       interval=0.25, on_timeout=self._log_tail)
        return self

    def _log_tail(self) -> str:
        logs = sorted((self.dir / "log").glob("*.log"))
        return rig.tail(logs[0], 30) if logs else "(the node wrote no log)"

    def _amqp_ok(self) -> bool:
        try:
            with kombu.Connection(self.kombu_url(), connect_timeout=2,
                                  ssl={"ca_certs": str(self.pki.ca), "certfile": str(self.pki.client_cert),
                                       "keyfile": str(self.pki.client_key),
                                       "cert_reqs": ssl.CERT_REQUIRED}) as c:
                c.connect()
                return True
        except Exception:
            return False

    def connections(self) -> list[dict[str, str]]:
        """The node's AMQP connections: user, ssl, peer_cert_subject."""
        r = self.ctl("list_connections", "-q", "--formatter", "json", "user", "ssl", "peer_cert_subject")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout or "[]")

    def stop(self) -> None:
        if self.started:
            r = self.ctl("stop", timeout=90)
            if r.returncode != 0:
                pid = (self.dir / "pid").read_text().strip() if (self.dir / "pid").exists() else ""
                if pid.isdigit():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), 9)
            self.started = False


class TlsRedis:
    """A redis-server with a TLS port only, a password, client certificates required."""

    def __init__(self, d: Path, pki: Pki):
        self.dir = d
        d.mkdir(parents=True, exist_ok=True)
        self.port = rig.free_port()
        self.password = "TlsRedis" + secrets.token_hex(6)
        self.pki = pki
        self.proc: subprocess.Popen | None = None

    def start(self) -> "TlsRedis":
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
             "--tls-cert-file", str(self.pki.server_cert), "--tls-key-file", str(self.pki.server_key),
             "--tls-ca-cert-file", str(self.pki.ca), "--tls-auth-clients", "yes",
             "--requirepass", self.password, "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        rig.wait_until(self._ping, 20, f"redis-server (TLS on {self.port})",
                       on_timeout=lambda: rig.tail(self.dir / "redis.log"))
        return self

    def client(self, db: int = 0) -> redis_lib.Redis:
        return redis_lib.Redis(host="localhost", port=self.port, db=db, password=self.password, ssl=True,
                               ssl_ca_certs=str(self.pki.ca), ssl_certfile=str(self.pki.client_cert),
                               ssl_keyfile=str(self.pki.client_key), socket_timeout=5)

    def _ping(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"redis-server exited with {self.proc.returncode}\n"
                                 + rig.tail(self.dir / "redis.log"))
        try:
            return bool(self.client().ping())
        except Exception:
            return False

    def celery_url(self, host: str = "localhost", db: int = 0) -> str:
        """The result backend URL as Celery takes it: TLS options in the query."""
        return (f"rediss://:{self.password}@{host}:{self.port}/{db}?ssl_cert_reqs=required"
                f"&ssl_ca_certs={self.pki.ca}&ssl_certfile={self.pki.client_cert}"
                f"&ssl_keyfile={self.pki.client_key}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class SilentServer:
    """Accepts TCP connections and never says a word (a stalled TLS server)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


# ------------------------------------------------------------------ the rig

@pytest.fixture(scope="module")
def tls(rig_dir, run_id):
    base = rig_dir / "tls"
    pki = Pki(base / "pki")
    rabbit = TlsRabbit(base / "rabbitmq", pki)
    redis_srv = TlsRedis(base / "redis", pki)
    prefix = f"csit.{run_id}.tls"
    queue = f"csit_tls_{run_id}"
    records_prefix = f"csit:{run_id}:tlsrec"
    cluster = worker = records_client = None
    try:
        rabbit.start()
        redis_srv.start()
        worker = rig.CeleryWorker("tls_salt_worker", f"tls-{run_id}", base / "worker-tls.log", {
            "CSIT_BROKER_URL": rabbit.kombu_url(),
            "CSIT_RESULT_BACKEND": redis_srv.celery_url(),
            "CSIT_QUEUE": queue,
            "CSIT_TOPIC_PREFIX": prefix,
            "CSIT_RECORD_URL": redis_srv.celery_url(db=1),
            "CSIT_RECORD_PREFIX": records_prefix,
            "CSIT_TLS_CA": str(pki.ca),
            "CSIT_TLS_CERT": str(pki.client_cert),
            "CSIT_TLS_KEY": str(pki.client_key),
        })
        worker.launch()
        good = {
            "celerysalt.broker_url": f"amqps://{rabbit.user}:{rabbit.password}@localhost:{rabbit.port}/%2F",
            "celerysalt.broker_tls_ca_file": str(pki.ca),
            "celerysalt.broker_tls_cert_file": str(pki.client_cert),
            "celerysalt.broker_tls_key_file": str(pki.client_key),
            "celerysalt.dispatcher_tasks": rig.SALT_TASK,
            "celerysalt.broker_timeout": "2s",
            "celerysalt.reconnect_max_delay": "300ms",
            "celerysalt.redis_url": f"rediss://:{redis_srv.password}@localhost:{redis_srv.port}/0",
            "celerysalt.redis_tls_ca_file": str(pki.ca),
            "celerysalt.redis_tls_cert_file": str(pki.client_cert),
            "celerysalt.redis_tls_key_file": str(pki.client_key),
        }
        # for URLs set in a session, which may not hold a password
        pw_file = pki.dir / "redis.password"
        pw_file.write_text(redis_srv.password + "\n")
        pw_file.chmod(0o600)
        cluster = rig.PgCluster(base / "pg", conf=good).init().start()
        app = f"csit_tls_app_{run_id}"
        cluster.execute(f"CREATE ROLE {app} LOGIN IN ROLE celerysalt_publisher")
        worker.wait_ready(60)
        records_client = redis_srv.client(db=1)
        yield type("Tls", (), dict(pki=pki, rabbit=rabbit, redis=redis_srv, pg=cluster, good=good,
                                   prefix=prefix, app=app, records=records_client, pw_file=str(pw_file),
                                   records_key=f"{records_prefix}:tls.on_event"))
    finally:
        if records_client is not None:
            records_client.close()
        rig.stop_all([worker])
        if cluster is not None:
            cluster.destroy()
        redis_srv.stop()
        rabbit.stop()


def app_session(tls) -> psycopg.Connection:
    """A session of the plain application role (only celerysalt_publisher)."""
    conn = psycopg.connect(tls.pg.dsn.replace("user=postgres", f"user={tls.app}"), autocommit=True)
    assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
    return conn


def records(tls) -> list[dict]:
    return [json.loads(x) for x in tls.records.lrange(tls.records_key, 0, -1)]


def wait_worker_error(tls, needle: str, timeout: float = 20) -> str:
    """Wait until celerysalt_status.last_error contains needle (broker not connected)."""
    def got():
        st = tls.pg.status()
        err = st.get("last_error") or ""
        return err if needle in err and not st.get("broker_connected") else None
    return rig.wait_until(got, timeout, f"last_error containing {needle!r}",
                          on_timeout=lambda: f"status: {tls.pg.status()}")


@contextlib.contextmanager
def broker_settings(tls, **changes):
    """Change celerysalt.broker_* settings (reload) for the block; then restore
    them and wait for the worker to be connected again."""
    tls.pg.set_conf({f"celerysalt.{k}": v for k, v in changes.items()})
    try:
        yield
    finally:
        tls.pg.set_conf({f"celerysalt.{k}": tls.good.get(f"celerysalt.{k}") for k in changes})
        tls.pg.wait_worker(timeout=20)


def publish_as_app(tls, n: int) -> str:
    with app_session(tls) as c:
        return c.execute("SELECT celerysalt_publish(%s, %s::jsonb, 'v1')::text",
                         (f"{tls.prefix}.event", json.dumps({"n": n}))).fetchone()[0]


def rpc_error(conn, tls, timeout: str = "10 s") -> psycopg.errors.Diagnostic:
    with pytest.raises(psycopg.Error) as info:
        conn.execute("SELECT celerysalt_call(%s, '{\"a\": 1, \"b\": 2}', %s::interval)",
                     (f"{tls.prefix}.add", timeout))
    return info.value.diag


def rpc_ok(conn, tls, a: int = 20, b: int = 22) -> dict:
    return conn.execute("SELECT celerysalt_call(%s, %s::jsonb, '10 s')",
                        (f"{tls.prefix}.add", json.dumps({"a": a, "b": b}))).fetchone()[0]


# ------------------------------------------------------------------ tests

def test_valid_chain_delivers_and_answers(tls):
    st = tls.pg.wait_worker(timeout=30)
    assert st["last_error"] is None
    # published by the application role, received by the service over TLS
    eid = publish_as_app(tls, 1)
    tls.pg.wait_delivered([eid])
    got = rig.wait_until(lambda: [r for r in records(tls) if r["received"] == {"n": 1}], 30,
                         "the service to receive the event")
    assert len(got) == 1
    # every connection the node has is TLS; ours presents the client certificate
    conns = tls.rabbit.connections()
    assert conns and all(c["ssl"] is True for c in conns), conns
    assert any("celerysalt-client" in str(c["peer_cert_subject"]) for c in conns), conns
    # RPC over amqps:// and rediss:// (AUTH after the handshake), from the same role
    with app_session(tls) as c:
        assert rpc_ok(c, tls) == {"sum": 42}
        assert rpc_ok(c, tls, 1, 1) == {"sum": 2}     # the cached TLS links again


def test_broker_wrong_ca_fails_and_nothing_is_delivered(tls):
    tls.pg.wait_worker(timeout=30)
    before = len(records(tls))
    with broker_settings(tls, broker_tls_ca_file=str(tls.pki.other_ca)):
        err = wait_worker_error(tls, "certificate verify failed")
        # the server sends its chain, so the untrusted CA is named
        assert "self-signed certificate in certificate chain" in err and "CN=celerysalt test ca" in err, err
        assert f"localhost:{tls.rabbit.port}" in err and tls.rabbit.password not in err
        eid = publish_as_app(tls, 2)
        time.sleep(1.0)     # several reconnect attempts (300 ms apart)
        assert tls.pg.scalar("SELECT count(*) FROM celerysalt_events WHERE id = %s::uuid", (eid,)) == 0
        assert tls.pg.scalar("SELECT pending FROM celerysalt_status") >= 1
        assert len(records(tls)) == before
        # the application role's RPC call: 08001 naming the cause
        with app_session(tls) as c:
            d = rpc_error(c, tls)
        assert d.sqlstate == "08001", (d.sqlstate, d.message_primary)
        assert d.message_primary == "could not connect to the broker for an RPC call"
        assert "certificate verify failed" in d.message_detail
        assert "celerysalt.broker_tls_" in d.message_hint
        # verify none: encrypted, not authenticated, connects with any CA
        tls.pg.set_conf({"celerysalt.broker_tls_verify": "none"})
        tls.pg.wait_worker(timeout=20)
        tls.pg.set_conf({"celerysalt.broker_tls_verify": "full"})
    # restored: the event that waited goes out, over TLS, once
    tls.pg.wait_delivered([eid])
    rig.wait_until(lambda: [r for r in records(tls) if r["received"] == {"n": 2}], 30,
                   "the service to receive the waiting event")


def test_broker_hostname_mismatch_full_fails_ca_connects(tls):
    url = f"amqps://{tls.rabbit.user}:{tls.rabbit.password}@127.0.0.1:{tls.rabbit.port}/%2F"
    with broker_settings(tls, broker_url=url):
        err = wait_worker_error(tls, "certificate verify failed")
        # the certificate names DNS:localhost only
        assert 'IP address mismatch' in err and '"127.0.0.1"' in err, err
        tls.pg.set_conf({"celerysalt.broker_tls_verify": "ca"})
        tls.pg.wait_worker(timeout=20)
        eid = publish_as_app(tls, 3)
        tls.pg.wait_delivered([eid])
        tls.pg.set_conf({"celerysalt.broker_tls_verify": None})


def test_broker_missing_client_certificate(tls):
    with broker_settings(tls, broker_tls_cert_file="", broker_tls_key_file=""):
        err = wait_worker_error(tls, "certificate required")
        assert "TLS" in err, err
    # a key file others can read is refused before any connection
    with broker_settings(tls, broker_tls_key_file=str(tls.pki.open_key)):
        err = wait_worker_error(tls, "group or world access")
        assert str(tls.pki.open_key) in err, err


def test_plain_amqp_to_the_tls_port_does_not_work(tls):
    before = len(records(tls))
    url = f"amqp://{tls.rabbit.user}:{tls.rabbit.password}@localhost:{tls.rabbit.port}/%2F"
    with broker_settings(tls, broker_url=url):
        st = rig.wait_until(lambda: (s := tls.pg.status()).get("last_error") and s, 20,
                            "the worker to fail on plain AMQP to the TLS port")
        assert not st["broker_connected"]
        eid = publish_as_app(tls, 4)
        time.sleep(1.0)
        assert not tls.pg.status()["broker_connected"]
        assert tls.pg.scalar("SELECT count(*) FROM celerysalt_events WHERE id = %s::uuid", (eid,)) == 0
        assert len(records(tls)) == before
    tls.pg.wait_delivered([eid])


def test_redis_tls_failures_are_08001_with_the_cause(tls):
    """celerysalt.redis_tls_* and redis_url in a superuser's session (SUSET)."""
    tls.pg.wait_worker(timeout=30)
    r = tls.redis
    cases = [
        # the servers send their chain: the CA nobody trusts is in it
        ({"redis_tls_ca_file": str(tls.pki.other_ca)},
         "certificate verify failed: self-signed certificate in certificate chain"),
        ({"redis_url": f"rediss://127.0.0.1:{r.port}/0", "redis_password_file": tls.pw_file},
         "IP address mismatch"),
        ({"redis_tls_cert_file": "", "redis_tls_key_file": ""}, "certificate required"),
        ({"redis_tls_key_file": str(tls.pki.open_key)}, "group or world access"),
        ({"redis_tls_ca_file": str(tls.pki.dir / "missing.pem")}, "No such file or directory"),
        # plain Redis protocol to the TLS port
        ({"redis_url": f"redis://localhost:{r.port}/0", "redis_password_file": tls.pw_file},
         "lost the Redis connection"),
    ]
    for settings, needle in cases:
        with tls.pg.connect() as c:
            for k, v in settings.items():
                c.execute(sql.SQL("SET {} = {}").format(sql.Identifier("celerysalt", k), sql.Literal(v)))
            d = rpc_error(c, tls)
            assert d.sqlstate == "08001", (settings, d.sqlstate, d.message_primary, d.message_detail)
            assert d.message_primary == "could not connect to Redis for an RPC call"
            if needle == "certificate required":
                # TLS 1.3: the connection reset of the first command can overtake the server's alert
                needle = ("certificate required" if "certificate required" in d.message_detail
                          else "it may require a client certificate")
            assert needle in d.message_detail, (settings, d.message_detail)
            assert r.password not in d.message_detail and "celerysalt.redis_tls_" in d.message_hint
            # the same session, settings back: the call goes through
            for k in settings:
                c.execute(sql.SQL("RESET {}").format(sql.Identifier("celerysalt", k)))
            assert rpc_ok(c, tls) == {"sum": 42}


def test_redis_verify_ca_and_celery_url_spelling(tls):
    r = tls.redis
    with tls.pg.connect() as c:
        # a superuser's session: the URL (without a password, which a session
        # may not set) names the host by an address the certificate lacks
        c.execute(f"SET celerysalt.redis_url = 'rediss://127.0.0.1:{r.port}/0'")
        c.execute(sql.SQL("SET celerysalt.redis_password_file = {}").format(sql.Literal(tls.pw_file)))
        d = rpc_error(c, tls)
        assert d.sqlstate == "08001" and "IP address mismatch" in d.message_detail, d.message_detail
        # verify ca: the chain is enough; the password goes out over TLS
        c.execute("SET celerysalt.redis_tls_verify = 'ca'")
        assert rpc_ok(c, tls, 5, 6) == {"sum": 11}
    # The service's own result-backend URL, TLS options in Celery's spelling,
    # and no celerysalt.redis_tls_* settings: set in the configuration file
    # (it holds a password).
    tls.pg.set_conf({"celerysalt.redis_url": r.celery_url(), "celerysalt.redis_tls_ca_file": None,
                     "celerysalt.redis_tls_cert_file": None, "celerysalt.redis_tls_key_file": None})
    try:
        with app_session(tls) as c:
            assert rpc_ok(c, tls, 2, 3) == {"sum": 5}
        # ssl_check_hostname=false lowers full to ca: 127.0.0.1 is accepted
        tls.pg.set_conf({"celerysalt.redis_url": r.celery_url(host="127.0.0.1") + "&ssl_check_hostname=false"})
        with app_session(tls) as c:
            assert rpc_ok(c, tls, 3, 4) == {"sum": 7}
        tls.pg.set_conf({"celerysalt.redis_url": r.celery_url(host="127.0.0.1")})
        with app_session(tls) as c:
            d = rpc_error(c, tls)
            assert d.sqlstate == "08001" and "IP address mismatch" in d.message_detail, d.message_detail
    finally:
        tls.pg.set_conf({k: tls.good[k] for k in ("celerysalt.redis_url", "celerysalt.redis_tls_ca_file",
                                                  "celerysalt.redis_tls_cert_file",
                                                  "celerysalt.redis_tls_key_file")})


def test_tls_handshake_respects_deadlines(tls):
    silent = SilentServer()
    try:
        with tls.pg.connect() as c:
            c.execute(f"SET celerysalt.redis_url = 'rediss://localhost:{silent.port}/0'")
            # the call's own timeout ends the handshake: CR008, nothing sent
            t0 = time.monotonic()
            d = rpc_error(c, tls, timeout="700 ms")
            took = time.monotonic() - t0
            assert d.sqlstate == "CR008", (d.sqlstate, d.message_detail)
            assert 0.6 < took < 3.0, took
            # statement_timeout interrupts it too
            c.execute("SET statement_timeout = '300ms'")
            t0 = time.monotonic()
            d = rpc_error(c, tls, timeout="10 s")
            took = time.monotonic() - t0
            assert d.sqlstate == "57014" and took < 2.5, (d.sqlstate, took)
            c.execute("RESET statement_timeout")
            # with a long call timeout, celerysalt.broker_timeout (2 s) bounds the connect
            t0 = time.monotonic()
            d = rpc_error(c, tls, timeout="20 s")
            took = time.monotonic() - t0
            assert d.sqlstate == "08001" and "did not answer" in d.message_detail, d.message_detail
            assert took < 5, took
        # the worker: an amqps:// broker that never answers the handshake
        url = f"amqps://{tls.rabbit.user}:{tls.rabbit.password}@localhost:{silent.port}/%2F"
        with broker_settings(tls, broker_url=url):
            err = wait_worker_error(tls, "timed out", timeout=15)
            assert f"localhost:{silent.port}" in err, err
    finally:
        silent.close()
