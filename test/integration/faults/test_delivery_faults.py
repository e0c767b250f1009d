"""Fault-injection proof for celerysalt's delivery guarantees (issue 2).

Committed means delivered at least once, across broker outages, connection
resets, broker stalls, worker crashes and server crashes, with at most one
window (celerysalt.publish_window batches of celerysalt.batch_size events) of
duplicates per fault; an event the broker
can never take is dead-lettered instead of retried forever; credentials never
leak.  Every check polls real state (consumer, status view, server log).

Fixtures (private RabbitMQ node, fault proxy, throwaway cluster, consumer)
are described in faultkit.py.
"""
import os
import secrets
import shutil
import signal
import time

import pytest

from faultkit import MAX_MESSAGE_SIZE, _mkdtemp, _write, body_payload, wait_until

BATCH = 500  # celerysalt.batch_size in DEFAULT_SETTINGS
WINDOW = 4  # celerysalt.publish_window in DEFAULT_SETTINGS: batches between read and finish
MAX_DUPS = WINDOW * BATCH  # what one fault may publish twice
OUTAGE_MSG = "celerysalt cannot deliver events"
RECOVERED_MSG = "celerysalt connected to the broker again"


def duplicates(counter):
    return sum(n - 1 for n in counter.values())


def assert_all_delivered(pg, c, ids, timeout, max_dups):
    """Every id reached the consumer, the outbox is empty, nothing else came,
    and duplicates stay within max_dups.  Returns the number of duplicates."""
    c.wait_for(ids, timeout)
    wait_until(lambda: pg.status()["pending"] == 0, 30, "pending = 0")
    time.sleep(0.3)  # let in-flight duplicates (if any) arrive before counting
    counter = c.counter()
    assert set(counter) == set(ids), (
        f"unexpected ids at the consumer: {len(set(counter) - set(ids))} extra")
    dups = duplicates(counter)
    assert dups <= max_dups, f"{dups} duplicates, more than one window ({max_dups})"
    return dups


def build_backlog(pg, proxy, topic, ntx, per_tx):
    """Publish ntx*per_tx events while the broker is unreachable, so that a
    large backlog is delivered in full batches once it is back."""
    wait_until(lambda: pg.status()["broker_connected"], 30, "worker connected")
    proxy.down()
    ids = pg.publish(topic, ntx, per_tx)
    assert len(set(ids)) == ntx * per_tx
    wait_until(lambda: pg.status()["pending"] == len(ids), 30, "backlog pending")
    return ids


def wait_mid_delivery(c, total, threshold):
    """Spin until the consumer has seen at least threshold messages; returns
    the count, which must still be below total (delivery under way)."""
    deadline = time.monotonic() + 60
    while c.count() < threshold:
        assert time.monotonic() < deadline, f"delivery did not start ({c.count()} received)"
        time.sleep(0.002)
    n = c.count()
    assert n < total, f"delivery finished ({n}/{total}) before the fault could be injected"
    return n


# ------------------------------------------------------------------ test 1
def test_broker_outage_10000_events(rabbit, proxy, make_pg, consumer):
    c = consumer()
    topic = c.prefix + ".outage"
    pg = make_pg(rabbit.url(port=proxy.port))
    wait_until(lambda: pg.status()["broker_connected"], 30, "worker connected")
    delivered_before = pg.status()["delivered_total"]

    proxy.down()  # broker unreachable: connections reset, new ones refused
    t0 = time.monotonic()
    ids = pg.publish(topic, 100, 100)  # 100 transactions x 100 events, one statement each
    publish_s = time.monotonic() - t0
    assert len(ids) == 10000 and len(set(ids)) == 10000

    # While down: the status says so, and the worker keeps retrying (every
    # failed attempt stamps last_error_at) with backoff.
    errors, attempts = set(), set()

    def retried_enough():
        s = pg.status()
        assert s["pending"] == 10000, f"pending {s['pending']} while the broker is down"
        if not s["broker_connected"] and s["last_error"]:
            errors.add(s["last_error"])
            attempts.add(s["last_error_at"])
        return len(attempts) >= 6
    wait_until(retried_enough, 30, "6 failed reconnect attempts")
    s = pg.status()
    assert s["broker_connected"] is False
    # (the errno text is not checked: 0.1.0 reports "Operation now in
    # progress" for a refused connection, see the report)
    assert any("could not connect to broker" in e for e in errors), errors
    assert c.count() == 0

    outage_lines = pg.log_lines(OUTAGE_MSG)
    # one line per change of state (first failure, then "refused"), not per retry
    assert 1 <= len(outage_lines) <= 2, outage_lines
    assert len(outage_lines) < len(attempts)
    texts = [line.split(OUTAGE_MSG, 1)[1] for line in outage_lines]
    assert all(a != b for a, b in zip(texts, texts[1:])), texts

    proxy.up()
    t1 = time.monotonic()
    dups = assert_all_delivered(pg, c, ids, 120, max_dups=0)
    deliver_s = time.monotonic() - t1
    counter = c.counter()
    assert sum(counter.values()) == 10000 and dups == 0

    # payloads arrive as published: event n carries {"n": n}
    for i in range(0, 10000, 997):
        assert body_payload(c.bodies[ids[i]])["n"] == i

    s = pg.status()
    assert s["broker_connected"] is True and s["last_error"] is None
    assert s["delivered_total"] - delivered_before == 10000
    assert pg.one("SELECT count(*) FROM celerysalt_events WHERE topic = %s", (topic,)) == 10000
    assert len(pg.log_lines(OUTAGE_MSG)) == len(outage_lines), "outage logged again after recovery"
    assert len(pg.log_lines(RECOVERED_MSG)) == 1
    print(f"\npublish 10000: {publish_s:.2f}s; failed attempts seen while down: {len(attempts)};"
          f" outage log lines: {len(outage_lines)}; delivery after recovery: {deliver_s:.2f}s")


# ------------------------------------------------------------------ test 2
def test_worker_sigkill_mid_batch(rabbit, proxy, make_pg, consumer):
    c = consumer()
    topic = c.prefix + ".sigkill"
    pg = make_pg(rabbit.url(port=proxy.port))
    ids = build_backlog(pg, proxy, topic, 40, 500)  # 20,000 events
    old_pid = pg.worker_pid()

    proxy.up()
    at_kill = wait_mid_delivery(c, len(ids), 2 * BATCH + 100)
    # aim for the publish/confirm phase of a batch (messages out, not deleted)
    activity = wait_until(lambda: pg.one(
        "SELECT coalesce(query, '') FROM pg_stat_activity WHERE pid = %s", (old_pid,))
        == "celerysalt: publishing" and "celerysalt: publishing", 10,
        "worker publishing", interval=0.002)
    os.kill(old_pid, signal.SIGKILL)
    at_kill = c.count()

    wait_until(lambda: (pg.worker_pid() or old_pid) != old_pid, 60, "worker restarted")
    dups = assert_all_delivered(pg, c, ids, 120, max_dups=MAX_DUPS)
    assert any(f"(PID {old_pid}) was terminated by signal 9" in line
               for line in pg.log_lines("terminated by signal 9"))
    print(f"\nSIGKILL while {activity!r} after {at_kill}/{len(ids)} received; duplicates: {dups}")


# ------------------------------------------------------------------ test 3
def test_postgres_immediate_stop_mid_delivery(rabbit, proxy, make_pg, consumer):
    c = consumer()
    topic = c.prefix + ".immediate"
    pg = make_pg(rabbit.url(port=proxy.port))
    ids = build_backlog(pg, proxy, topic, 40, 500)  # 20,000 committed events

    proxy.up()
    at_stop = wait_mid_delivery(c, len(ids), 2 * BATCH + 100)
    pg.stop("immediate")
    after_stop = c.count()
    assert after_stop < len(ids)
    pg.start()

    dups = assert_all_delivered(pg, c, ids, 120, max_dups=MAX_DUPS)
    print(f"\nimmediate stop after {at_stop}/{len(ids)} received; duplicates: {dups}")


# ------------------------------------------------------------------ test 4
def _assert_no_secret(where, text, secrets_):
    for s in secrets_:
        assert s not in text, f"password {s!r} leaked into {where}"


def _status_text(pg):
    return " | ".join(f"{k}={v}" for k, v in pg.status().items())


def _wait_login_error(pg, n):
    def refused():
        s = pg.status()
        return (not s["broker_connected"] and s["last_error"]
                and "ACCESS_REFUSED" in s["last_error"] and s["pending"] == n and s)
    return wait_until(refused, 30, "login error in celerysalt_status")


def test_wrong_password_file(rabbit, make_pg, consumer):
    c = consumer()
    topic = c.prefix + ".pwfile"
    secret_dir = _mkdtemp("celerysalt-faults-pw.")
    wrong = "FileWrong" + secrets.token_hex(8)
    _write(f"{secret_dir}/wrong", wrong + "\n")
    _write(f"{secret_dir}/good", rabbit.password + "\n")
    watched = [wrong] + ([rabbit.password] if rabbit.private else [])
    try:
        pg = make_pg(rabbit.url(password=""),
                     {"celerysalt.broker_password_file": f"'{secret_dir}/wrong'"})
        pid, started = pg.status()["worker_pid"], pg.status()["worker_started_at"]
        ids = pg.publish(topic, 1, 100)
        s = _wait_login_error(pg, 100)
        assert "could not log in" in s["last_error"], s["last_error"]
        _assert_no_secret("celerysalt_status", _status_text(pg), watched)
        assert c.count() == 0

        pg.reload_with(broker_password_file=f"{secret_dir}/good")
        assert_all_delivered(pg, c, ids, 60, max_dups=0)
        s = pg.status()
        assert (s["worker_pid"], s["worker_started_at"]) == (pid, started), "worker was restarted"
        assert s["broker_connected"] and s["last_error"] is None
        _assert_no_secret("celerysalt_status", _status_text(pg), watched)
        _assert_no_secret("the server log", pg.log_text(), watched)
        assert len(pg.log_lines(OUTAGE_MSG)) == 1
    finally:
        shutil.rmtree(secret_dir, ignore_errors=True)


def test_wrong_password_in_url(rabbit, make_pg, consumer):
    c = consumer()
    topic = c.prefix + ".pwurl"
    wrong = "UrlWrong" + secrets.token_hex(8)
    watched = [wrong] + ([rabbit.password] if rabbit.private else [])
    pg = make_pg(rabbit.url())
    wait_until(lambda: pg.status()["broker_connected"], 30, "worker connected")
    pid, started = pg.status()["worker_pid"], pg.status()["worker_started_at"]

    pg.reload_with(broker_url=rabbit.url(password=wrong))
    ids = pg.publish(topic, 1, 100)
    s = _wait_login_error(pg, 100)
    assert "could not log in" in s["last_error"], s["last_error"]
    assert "***" in s["broker"], s["broker"]
    _assert_no_secret("celerysalt_status", _status_text(pg), watched)
    assert c.count() == 0

    pg.reload_with(broker_url=rabbit.url())
    assert_all_delivered(pg, c, ids, 60, max_dups=0)
    s = pg.status()
    assert (s["worker_pid"], s["worker_started_at"]) == (pid, started), "worker was restarted"
    assert s["broker_connected"] and s["last_error"] is None
    _assert_no_secret("celerysalt_status", _status_text(pg), watched)
    log = pg.log_text()
    leaks = [line for line in log.splitlines() if any(w in line for w in watched)]
    # Known failure with 0.1.0 on PG 15 (see the report): on reload the
    # postmaster logs 'parameter "celerysalt.broker_url" changed to "<raw
    # value>"', password included; GUC_SUPERUSER_ONLY/GUC_NO_SHOW_ALL do not
    # stop that line, an emit_log_hook in the extension could redact it.
    assert not leaks, "password in the server log:\n" + "\n".join(leaks)


# ------------------------------------------------------------------ test 5
def test_connection_reset_mid_batch(rabbit, proxy, make_pg, consumer):
    c = consumer()
    topic = c.prefix + ".rst"
    pg = make_pg(rabbit.url(port=proxy.port))
    ids = build_backlog(pg, proxy, topic, 40, 500)  # 20,000 events

    proxy.up()
    at_reset = wait_mid_delivery(c, len(ids), 2 * BATCH + 100)
    nreset = proxy.reset_all()
    assert nreset >= 1, "no connection to reset"

    dups = assert_all_delivered(pg, c, ids, 120, max_dups=MAX_DUPS)
    assert len(pg.log_lines(RECOVERED_MSG)) >= 2  # after the outage and after the RST
    print(f"\nRST after {at_reset}/{len(ids)} received; duplicates: {dups}")


# ------------------------------------------------------------------ test 6
def test_broker_stall_hits_timeout(rabbit, proxy, make_pg, consumer):
    c = consumer()
    topic = c.prefix + ".stall"
    timeout_ms = 1500
    pg = make_pg(rabbit.url(port=proxy.port), {"celerysalt.broker_timeout": f"'{timeout_ms}ms'"})
    wait_until(lambda: pg.status()["broker_connected"], 30, "worker connected")

    proxy.stall()  # sockets stay open, nothing is forwarded
    ids = pg.publish(topic, 4, 500)
    t0 = time.monotonic()
    errors, attempts = [], set()

    def timed_out():
        s = pg.status()
        if s["last_error"] and s["last_error_at"] not in attempts:
            attempts.add(s["last_error_at"])
            errors.append(s["last_error"])
        return not s["broker_connected"] and any("timed out" in e for e in errors)
    wait_until(timed_out, timeout_ms / 1000 + 10, "broker_timeout reported")
    detect_s = time.monotonic() - t0
    # 0.1.0 needs two timeouts: the confirm wait, then the polite
    # connection.close on the dead connection waits for close-ok (see report)
    assert detect_s < 2 * timeout_ms / 1000 + 3, f"timeout reported only after {detect_s:.1f}s"
    timeout_lines = [line for line in pg.log_lines(OUTAGE_MSG) if "timed out" in line]
    assert timeout_lines, pg.log_lines(OUTAGE_MSG)

    # Still stalled: reconnects (which the proxy accepts but never answers)
    # time out too; the worker keeps going and nothing is lost meanwhile.
    def reconnects_time_out():
        s = pg.status()
        if s["last_error_at"] not in attempts:
            attempts.add(s["last_error_at"])
            errors.append(s["last_error"])
        return len(attempts) >= 3
    wait_until(reconnects_time_out, 3 * timeout_ms / 1000 + 10, "further timed-out attempts")
    s = pg.status()
    assert s["pending"] == len(ids) and not s["broker_connected"]
    assert pg.worker_pid() == s["worker_pid"]

    proxy.resume()
    dups = assert_all_delivered(pg, c, ids, 60, max_dups=MAX_DUPS)
    s = pg.status()
    assert s["broker_connected"] and s["last_error"] is None
    print(f"\nstall detected after {detect_s:.2f}s (broker_timeout {timeout_ms} ms);"
          f" errors seen: {sorted(set(errors))}; duplicates: {dups}")


# ------------------------------------------------------------------ test 7
def test_oversized_event_dead_lettered(rabbit, make_pg, consumer):
    if not rabbit.private:
        pytest.skip(f"needs a private RabbitMQ node with max_message_size: {rabbit.skip_reason}")
    c = consumer()
    topic = c.prefix + ".deadletter"
    pg = make_pg(rabbit.url())
    wait_until(lambda: pg.status()["broker_connected"], 30, "worker connected")

    # One transaction, so the oversized event sits inside a batch with its neighbours.
    with pg.connect() as conn:
        with conn.transaction():
            before = pg.publish(topic, 1, 50, start=0, conn=conn)
            big = str(conn.execute(
                "SELECT celerysalt_publish(%s, jsonb_build_object('big', repeat('y', %s::int)))",
                (topic, 2 * MAX_MESSAGE_SIZE)).fetchone()[0])
            after = pg.publish(topic, 1, 50, start=50, conn=conn)
    ids = before + after

    wait_until(lambda: pg.one("SELECT count(*) FROM celerysalt_dead_letters") == 1, 60,
               "the oversized event in celerysalt_dead_letters")
    dups = assert_all_delivered(pg, c, ids, 60, max_dups=MAX_DUPS)
    dl_id, reason = pg.query("SELECT id::text, reason FROM celerysalt_dead_letters")[0]
    assert dl_id == big
    assert "406" in reason and "message size" in reason, reason
    assert big not in c.counter()

    # Not retried: the worker goes on delivering, the dead letter stays put,
    # and the broker saw the oversized message a bounded number of times
    # (once in the batch, then once per isolated attempt).
    later = pg.publish(topic, 1, 10, start=100)
    c.wait_for(later, 30)
    wait_until(lambda: pg.status()["pending"] == 0, 30, "pending = 0")
    refusals = rabbit.log_count("is larger than configured max size")
    time.sleep(1.0)  # observation window: 5 poll intervals of an idle worker
    assert rabbit.log_count("is larger than configured max size") == refusals
    assert 1 <= refusals <= 3, f"the broker refused the event {refusals} times"
    s = pg.status()
    assert s["dead_letters"] == 1 and s["broker_connected"]
    assert big not in c.counter()
    moved = pg.log_lines(f"moved event {big}")
    assert len(moved) == 1, moved
    print(f"\ndead-letter reason: {reason!r}; broker refusals: {refusals};"
          f" duplicates among its neighbours: {dups}")
