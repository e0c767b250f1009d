"""celerysalt_call under hostile or unlucky conditions (issue 12, items 7d,
10, 13, 14), every call made by a plain LOGIN role holding only
celerysalt_publisher:

* a service with task_track_started = True whose handler is slower than
  celerysalt.broker_timeout (the STARTED record must only mean "wait");
* answers jsonb cannot hold (non-finite numbers, invalid UTF-8, \\u0000),
  from a real celery-salt handler and from a fake responder that writes
  exact bytes: CR007 naming the JSON path, nothing stored;
* a Redis that stalls (an asyncio proxy the test pauses, faults/faultkit.py):
  every call still ends at its own timeout with CR008, at statement_timeout
  with 57014, at once on pg_cancel_backend, and works again after;
* a Redis that requires a password holding '@', ':', '/', '?' and '#',
  percent-encoded, with an ACL user: the same URL works for Celery (redis-py)
  and for celerysalt, and no password reaches an error or the server log.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import kombu
import psycopg
import pytest
import redis as redis_lib

import rig
from test_rpc import SALT_RESULT_DB, make_caller

sys.path.insert(0, str(Path(__file__).resolve().parent / "faults"))
from faultkit import FaultProxy  # noqa: E402


def call(conn, topic, payload, timeout="10 s", envelope=False):
    fn = "celerysalt_call_envelope" if envelope else "celerysalt_call"
    return conn.execute(f"SELECT {fn}(%s, %s::jsonb, %s::interval)",
                        (topic, json.dumps(payload), timeout)).fetchone()[0]


def call_error(conn, topic, payload, timeout="10 s"):
    with pytest.raises(psycopg.Error) as info:
        call(conn, topic, payload, timeout)
    return info.value.diag


def timed_error(conn, topic, payload, timeout):
    t0 = time.monotonic()
    diag = call_error(conn, topic, payload, timeout)
    return diag, time.monotonic() - t0


@pytest.fixture(scope="module")
def hard(rig_dir, run_id, amqp, pg):
    """A celery-salt service with task_track_started = True on its own queue."""
    prefix = f"csit.{run_id}.rpch"
    queue = f"csit_rpch_{run_id}"
    amqp.track(queue)
    worker = rig.CeleryWorker("rpc_salt_worker", f"rpch-{run_id}", rig_dir / "worker-rpc-hard.log",
                              {"CSIT_BROKER_URL": rig.BROKER_URL, "CSIT_TOPIC_PREFIX": prefix,
                               "CSIT_RECORD_URL": rig.redis_url(SALT_RESULT_DB),
                               "CSIT_RECORD_PREFIX": f"csit:{run_id}:rpchrec",
                               "CSIT_QUEUE": queue, "CSIT_TRACK_STARTED": "1",
                               "CSIT_RESULT_BACKEND": rig.redis_url(SALT_RESULT_DB)})
    try:
        worker.launch()
        worker.wait_ready(60)
        connect = make_caller(pg, "csit_rpc_hard", rig.redis_url(SALT_RESULT_DB))
        yield type("Hard", (), dict(prefix=prefix, pg=pg, connect=connect, worker=worker,
                                    run_id=run_id))
    finally:
        rig.stop_all([worker])


# ------------------------------------------------------------- item 13: STARTED

def test_started_state_waits_for_a_handler_slower_than_broker_timeout(hard):
    """task_track_started stores STARTED first; the answer comes 6.5 s later,
    past celerysalt.broker_timeout (5 s).  Before the fix: 08006 after 5 s."""
    assert hard.pg.scalar("SHOW celerysalt.broker_timeout") == "5s"
    with hard.connect() as c:
        t0 = time.monotonic()
        assert call(c, f"{hard.prefix}.slow", {"seconds": 6.5}, timeout="30 s") == {"slept": 6.5}
        assert time.monotonic() - t0 >= 6.5
        # a STARTED record never ends the wait early: a short timeout is CR008
        d, elapsed = timed_error(c, f"{hard.prefix}.slow", {"seconds": 3}, "1.5 s")
        assert d.sqlstate == "CR008" and 1.4 <= elapsed < 2.5


# ----------------------------------------------------- item 10: malformed answers

@pytest.mark.parametrize("kind", ["nan", "inf", "-inf", "decimal_nan"])
def test_non_finite_number_from_a_real_handler_is_refused(hard, kind):
    """Python's json writes NaN / Infinity, which is not JSON; the answer is
    refused with CR007 naming where the number is."""
    with hard.connect() as c:
        d = call_error(c, f"{hard.prefix}.nonfinite", {"kind": kind})
        assert d.sqlstate == "CR007", (d.sqlstate, d.message_primary)
        assert "malformed" in d.message_primary
        assert "non-finite" in d.message_detail, d.message_detail
        assert "/result/results/0/result/ok/1" in d.message_detail
        env = call(c, f"{hard.prefix}.nonfinite", {"kind": kind}, envelope=True)
        assert env["outcome"] == "remote_failure" and env["response"] is None
        assert "/result/results/0/result/ok/1" in env["error"]


class FakeResponder:
    """Answers every request on routing keys <prefix>.fake.* by writing the
    exact bytes answers[payload["case"]](task_id) as the Celery result (SETEX
    + PUBLISH in one transaction, as Celery's Redis backend does)."""

    def __init__(self, prefix, queue, db, answers):
        self.answers = answers
        self.redis = redis_lib.Redis(host=rig.REDIS_HOST, port=rig.REDIS_PORT, db=db, socket_timeout=5)
        self.conn = kombu.Connection(rig.BROKER_URL)
        exchange = kombu.Exchange(rig.EXCHANGE, type="topic", durable=True)
        self.queue = kombu.Queue(queue, exchange, routing_key=f"{prefix}.fake.*",
                                 durable=False, auto_delete=False)
        self.queue(self.conn.default_channel).declare()
        self.keys: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _on_message(self, body, message):
        task_id = message.headers["id"]
        case = json.loads(body[0][0])["case"]
        key = f"celery-task-meta-{task_id}"
        data = self.answers[case](task_id)
        pipe = self.redis.pipeline()
        pipe.setex(key, 300, data)
        pipe.publish(key, data)
        pipe.execute()
        self.keys.append(key)
        message.ack()

    def _run(self):
        import socket
        with kombu.Consumer(self.conn.default_channel, [self.queue], callbacks=[self._on_message],
                            accept=["json"]):
            while not self.stop.is_set():
                try:
                    self.conn.drain_events(timeout=0.2)
                except socket.timeout:
                    pass

    def close(self):
        self.stop.set()
        self.thread.join(5)
        try:
            self.queue(self.conn.default_channel).delete()
        finally:
            self.conn.release()
            if self.keys:
                self.redis.delete(*self.keys)
            self.redis.close()


def _record(result_json: bytes):
    return lambda task_id: (b'{"status": "SUCCESS", "result": {"status": "completed", "is_rpc": true, '
                            b'"handlers_executed": 1, "results": [{"handler": "h", "status": "success", '
                            b'"result": ' + result_json + b'}]}, "traceback": null, "children": [], '
                            b'"task_id": "' + task_id.encode() + b'"}')


FAKE_ANSWERS = {
    "ok": _record(b'{"amount": {"__type__": "decimal", "__value__": "1.10"}}'),
    "decimal_nan": _record(b'{"amount": {"__type__": "decimal", "__value__": "NaN"}}'),
    "decimal_inf": _record(b'{"a": [{"amount": {"__type__": "decimal", "__value__": "-Infinity"}}]}'),
    "decimal_junk": _record(b'{"amount": {"__type__": "decimal", "__value__": "12abc"}}'),
    "bare_nan": _record(b'{"x/y": [1, NaN]}'),
    "bad_utf8": _record(b'{"name": "caf\xc3\xa9 \xff\xfe"}'),
    "nul_byte": _record(b'{"name": "a\x00b"}'),
    "escaped_nul": _record(b'{"name": "a\\u0000b"}'),
    "not_json": _record(b'{"name": }'),
}

MALFORMED = {
    "decimal_nan": "/result/results/0/result/amount",
    "decimal_inf": "/result/results/0/result/a/0/amount",
    "decimal_junk": "/result/results/0/result/amount",
    "bare_nan": "/result/results/0/result/x~1y/1",
    "bad_utf8": "not valid UTF-8",
    "nul_byte": "a NUL byte",
    "escaped_nul": "/result/results/0/result/name",
    "not_json": "not valid JSON",
}


@pytest.fixture(scope="module")
def fake(hard):
    responder = FakeResponder(hard.prefix, f"csit_rpcfake_{hard.run_id}", SALT_RESULT_DB, FAKE_ANSWERS)
    yield responder
    responder.close()


def test_malformed_answers_are_refused_and_never_stored(hard, fake):
    with hard.connect() as c:
        # a well-formed answer passes, its decimal text kept
        assert c.execute("SELECT celerysalt_call(%s, %s::jsonb) ->> 'amount'",
                         (f"{hard.prefix}.fake.x", json.dumps({"case": "ok"}))).fetchone()[0] == "1.10"
        c.execute("CREATE TEMP TABLE answers (a jsonb)")
        for case, needle in MALFORMED.items():
            with pytest.raises(psycopg.Error) as info:
                c.execute("INSERT INTO answers SELECT celerysalt_call(%s, %s::jsonb)",
                          (f"{hard.prefix}.fake.x", json.dumps({"case": case})))
            d = info.value.diag
            assert d.sqlstate == "CR007", (case, d.sqlstate, d.message_primary, d.message_detail)
            assert needle in d.message_detail, (case, d.message_detail)
            env = call(c, f"{hard.prefix}.fake.x", {"case": case}, envelope=True)
            assert env["outcome"] == "remote_failure" and env["response"] is None, (case, env)
            assert needle in env["error"], (case, env)
        # nothing unreloadable was stored (before the fix the NaN decimal was)
        assert c.execute("SELECT count(*) FROM answers").fetchone()[0] == 0


# -------------------------------------------------------- items 13/14: Redis stalls

@pytest.fixture
def stalled_redis(hard):
    proxy = FaultProxy(rig.REDIS_HOST, rig.REDIS_PORT)
    connect = make_caller(hard.pg, "csit_rpc_stall", f"redis://127.0.0.1:{proxy.port}/{SALT_RESULT_DB}")
    yield proxy, connect
    proxy.close()


def test_redis_stall_ends_every_call_at_its_own_timeout(hard, stalled_redis):
    proxy, connect = stalled_redis
    echo = f"{hard.prefix}.echo"
    with connect() as warm:
        assert call(warm, echo, {"caller": 1, "i": 1}) == {"caller": 1, "i": 1}
        proxy.stall()
        # cached links: SUBSCRIBE is never confirmed (before: 08006)
        d, elapsed = timed_error(warm, echo, {"caller": 1, "i": 2}, "2 s")
        assert d.sqlstate == "CR008", (d.sqlstate, d.message_primary, d.message_detail)
        assert 1.9 <= elapsed < 2.6, elapsed
        # a new session: connect + SELECT never answered (before: 08001 after 5 s)
        with connect() as fresh:
            d, elapsed = timed_error(fresh, echo, {"caller": 2, "i": 1}, "2 s")
            assert d.sqlstate == "CR008", (d.sqlstate, d.message_primary, d.message_detail)
            assert 1.9 <= elapsed < 2.6, elapsed
        # statement_timeout ends it (before: ignored until broker_timeout)
        with connect() as fresh:
            fresh.execute("SET statement_timeout = '500ms'")
            d, elapsed = timed_error(fresh, echo, {"caller": 3, "i": 1}, "20 s")
            assert d.sqlstate == "57014" and elapsed < 1.2, (d.sqlstate, elapsed)
    # pg_cancel_backend ends it at once: a new session stuck connecting, and
    # a session whose cached links stall in the middle of a call
    for cached in (False, True):
        proxy.resume()
        results: dict = {}

        def blocked():
            try:
                with connect() as c:
                    if cached:
                        assert call(c, echo, {"caller": 5, "i": 0}) == {"caller": 5, "i": 0}
                    proxy.stall()
                    results["pid"] = c.info.backend_pid
                    call(c, echo, {"caller": 5, "i": 1}, timeout="30 s")
            except psycopg.Error as exc:
                results["ended"] = time.monotonic()
                results["sqlstate"] = exc.sqlstate

        t = threading.Thread(target=blocked)
        t.start()
        rig.wait_until(lambda: "pid" in results, 15, "the caller to start")
        rig.wait_until(lambda: hard.pg.scalar(
            "SELECT state = 'active' AND wait_event_type = 'Extension' "
            "FROM pg_stat_activity WHERE pid = %s", (results["pid"],)), 15, "the call to wait")
        time.sleep(0.3)
        sent = time.monotonic()
        hard.pg.execute("SELECT pg_cancel_backend(%s)", (results["pid"],))
        t.join(10)
        assert not t.is_alive()
        assert results.get("sqlstate") == "57014", (cached, results)
        assert results["ended"] - sent < 0.5, (cached, results["ended"] - sent)
    with connect() as warm:
        # Redis back: calls work again (the stalled links were dropped)
        proxy.resume()
        assert call(warm, echo, {"caller": 1, "i": 3}) == {"caller": 1, "i": 3}


# ------------------------------------------------ item 7d: passwords in Redis URLs

PASSWORD = "pw@1:2/3?4#5%6"          # every reserved character, raw
USER = "csit@app:1"


@pytest.fixture
def password_redis(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = rig.free_port()
    d = tmp_path / "redis"
    d.mkdir()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--requirepass", PASSWORD, "--save", "", "--appendonly", "no",
                             "--dir", str(d)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis_lib.Redis(host="127.0.0.1", port=port, password=PASSWORD, socket_timeout=5)
        rig.wait_until(lambda: _ping(client), 10, "the private redis-server")
        client.execute_command("ACL", "SETUSER", USER, "on", f">{PASSWORD}", "~*", "&*", "+@all")
        yield port
        client.close()
    finally:
        proc.terminate()
        proc.wait(10)


def _ping(client):
    try:
        return client.ping()
    except redis_lib.exceptions.ConnectionError:
        return False


def test_percent_encoded_password_works_and_never_leaks(password_redis, pg_factory, worker_factory,
                                                        amqp, run_id):
    port = password_redis
    enc_user, enc_pw = quote(USER, safe=""), quote(PASSWORD, safe="")
    # Celery (redis-py) reads the result backend from this very URL
    backend = f"redis://{enc_user}:{enc_pw}@127.0.0.1:{port}/3"
    prefix = f"csit.{run_id}.rpcpw"
    queue = f"csit_rpcpw_{run_id}"
    amqp.track(queue)
    worker_factory("rpc_salt_worker", {"CSIT_BROKER_URL": rig.BROKER_URL, "CSIT_TOPIC_PREFIX": prefix,
                                       "CSIT_RECORD_URL": rig.redis_url(SALT_RESULT_DB),
                                       "CSIT_RECORD_PREFIX": f"csit:{run_id}:rpcpwrec",
                                       "CSIT_QUEUE": queue, "CSIT_RESULT_BACKEND": backend},
                   name=f"rpcpw-{run_id}")
    # celerysalt: the same credentials, the database as ?db= (redis-py's precedence)
    url = f"redis://{enc_user}:{enc_pw}@127.0.0.1:{port}/0?db=3"
    cluster = pg_factory(conf={"celerysalt.redis_url": url})
    connect = make_caller(cluster, "csit_rpc_pw", None)
    with connect() as c:
        assert call(c, f"{prefix}.echo", {"caller": 7, "i": 7}) == {"caller": 7, "i": 7}
    # the password alone (no user), as redis://:password@
    cluster.set_conf({"celerysalt.redis_url": f"redis://:{enc_pw}@127.0.0.1:{port}/3"})
    with connect() as c:
        assert call(c, f"{prefix}.echo", {"caller": 7, "i": 8}) == {"caller": 7, "i": 8}

    # a wrong password with every reserved character: refused, shown nowhere
    wrong = "WRONG@x:y/z?w#v%u"
    cluster.set_conf({"celerysalt.redis_url":
                      f"redis://{enc_user}:{quote(wrong, safe='')}@127.0.0.1:{port}/3"})
    with connect() as c:
        d = call_error(c, f"{prefix}.echo", {"caller": 7, "i": 9})
    assert d.sqlstate == "08001", (d.sqlstate, d.message_primary, d.message_detail)
    shown = " ".join(filter(None, [d.message_primary, d.message_detail, d.message_hint]))
    assert "WRONGPASS" in shown or "invalid" in shown.lower(), shown
    # an unencoded '@' in a password (legal: the user information ends at
    # the LAST '@'): the reload line hides all of it, not just up to the first '@'
    cluster.set_conf({"celerysalt.redis_url": f"redis://:raw@pass:word@127.0.0.1:{port}/3"})
    log = Path(cluster.log_file).read_text(errors="replace")
    secrets = [PASSWORD, enc_pw, wrong, quote(wrong, safe=""), "pass:word"]
    # and fragments a first-'@' split would have exposed
    secrets += ["1:2/3", "2/3?4", "x:y/z", "y/z?w", "z%3Fw"]
    for s in secrets:
        assert s not in shown, (s, shown)
        assert s not in log, (s, "in the server log")
    assert "***" in log, "the reload line shows the URL with the password hidden"

