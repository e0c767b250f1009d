"""Publish benchmark for issue 2: celerysalt vs raw librabbitmq-c vs celery-salt (Python).

Run through bench/publish/run.sh, which builds everything and starts a throwaway cluster.
All three publishers talk to the same RabbitMQ in the same run; repeats are interleaved
(a, b, c, a, b, c, ...) so that drift of the shared machine hits them alike.

Sinks (where the messages go once the broker has them):
  queue  one durable queue bound to the benchmark topic (messages are persistent, so the
         broker writes them to disk before it confirms them): the realistic case, a
         service queue exists.  Purged after every run; nothing consumes it.
  none   no binding matches the topic: RabbitMQ drops the message and still confirms it.

(d) latency, once per asked rate (--lat-rate, a comma list): --lat-clients forked processes, each
with its own connection, pace their share of the rate, one transaction of --lat-txn-events events
at a time; every event's commit time (CLOCK_MONOTONIC, which the processes share, taken right after
COMMIT returned) is matched by task id (the message's correlation_id) with its arrival at a
consumer in another process: lat_consume (librabbitmq-c, --lat-consumer-bin) or else py-amqp.
Per rate: the rate achieved beside the one asked (the report says when it was not reached: its
latencies are then for the achieved rate), late and unsent sends, p50/p95/p99/max commit ->
consumer, events missing at the consumer, and CPU per event of every process.
"""
import argparse
import json
import math
import multiprocessing as mp
import os
import queue
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid

import amqp
import psycopg

EXCHANGE = "tchu_events"
BROKER = ("127.0.0.1", 5672)  # the port is --broker-port
CLIENT_APP = "celerysalt-bench-client"  # application_name of (a)'s publishing sessions

# A realistic ~200-byte event (user signed up).  {i} is the SQL expression of the row.
PAYLOAD_SQL = ("jsonb_build_object('user_id', {i}, 'email', 'user' || {i} || '@example.com',"
               " 'name', 'Ada Lovelace', 'plan', 'pro', 'country', 'GB', 'signup_source', 'web',"
               " 'referrer', 'newsletter-2024-05', 'marketing_opt_in', true,"
               " 'created_at', '2024-05-01T12:34:56.789012+00:00')")

HZ = os.sysconf("SC_CLK_TCK")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ CPU accounting
def proc_cpu(pid):
    """CPU seconds (user+system) used so far by pid, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / HZ
    except (OSError, IndexError, ValueError):
        return None


def machine_cpu():
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


class CpuMeter:
    def __init__(self, pids):
        self.pids = {k: p for k, p in pids.items() if p}

    def start(self):
        self.c0 = {k: proc_cpu(p) for k, p in self.pids.items()}
        self.m0 = machine_cpu()

    def stop(self):
        m1 = machine_cpu()
        out = {}
        for k, p in self.pids.items():
            c1 = proc_cpu(p)
            if c1 is not None and self.c0.get(k) is not None:
                out[k] = c1 - self.c0[k]
        busy = m1[0] - self.m0[0]
        total = m1[1] - self.m0[1]
        out["machine_busy_pct"] = 100.0 * busy / total if total else 0.0
        return out


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


# ------------------------------------------------------------------ broker helpers
def amqp_channel():
    c = amqp.Connection(f"{BROKER[0]}:{BROKER[1]}", userid="guest", password="guest")
    c.connect()
    return c, c.channel()


def make_sink_queue(name, key):
    c, ch = amqp_channel()
    ch.exchange_declare(EXCHANGE, "topic", durable=True, auto_delete=False)
    ch.queue_declare(name, durable=True, auto_delete=False)
    ch.queue_bind(name, EXCHANGE, key)
    c.close()


def purge_queue(name):
    c, ch = amqp_channel()
    n = ch.queue_purge(name)
    c.close()
    return n


def delete_queue(name):
    try:
        c, ch = amqp_channel()
        ch.queue_delete(name)
        c.close()
    except Exception as e:  # pragma: no cover - best effort clean-up
        log(f"could not delete queue {name}: {e}")


# ------------------------------------------------------------------ (a) celerysalt
class Pg:
    def __init__(self, conninfo):
        self.conninfo = conninfo

    def connect(self, autocommit=True):
        return psycopg.connect(self.conninfo, autocommit=autocommit)


def worker_state(conn):
    return conn.execute("SELECT worker_pid, broker_connected, delivered_total, last_error"
                        " FROM _celerysalt_worker_state()").fetchone()


def wait_worker_ready(pg, timeout=30):
    with pg.connect() as c:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = worker_state(c)
            if st[0] and st[1]:
                return st[0]
            # wake it: a broker connection is made on the first wake-up
            c.execute("SELECT celerysalt_wake()")
            time.sleep(0.2)
        raise SystemExit(f"celerysalt worker not connected to the broker: {worker_state(c)}")


def set_unroutable(pg, mode):
    """celerysalt.unroutable for the worker: keep (mandatory, the default) or drop (plain AMQP
    publishing, as raw C and celery-salt do).  Waits until the reload has reached the worker."""
    with pg.connect() as c:
        try:
            if c.execute("SHOW celerysalt.unroutable").fetchone()[0] == mode:
                return
        except psycopg.errors.UndefinedObject:
            return  # a build before 0.2.0: it never publishes mandatory
        c.execute(f"ALTER SYSTEM SET celerysalt.unroutable = '{mode}'")
        c.execute("SELECT pg_reload_conf()")
    time.sleep(1.0)


def set_track_metrics(pg, on):
    """celerysalt.track_metrics for the worker and new sessions; waits until the reload has reached
    the worker."""
    with pg.connect() as c:
        try:
            if c.execute("SHOW celerysalt.track_metrics").fetchone()[0] == ("on" if on else "off"):
                return
        except psycopg.errors.UndefinedObject:
            return  # a build before the setting: it always collects
        c.execute(f"ALTER SYSTEM SET celerysalt.track_metrics = {'on' if on else 'off'}")
        c.execute("SELECT pg_reload_conf()")
    time.sleep(1.0)


def run_extension(pg, topic, n_events, clients, per_txn, pids):
    """End-to-end: 2 clients commit per_txn events per statement; returns the rate measured from
    the first commit to the moment delivered_total has grown by n_events."""
    txns_per_client = n_events // (clients * per_txn)
    n_events = txns_per_client * clients * per_txn
    sql = (f"SELECT count(celerysalt_publish(%s, {PAYLOAD_SQL.format(i='i')}, 'v1'))"
           " FROM generate_series(%s::int, %s::int) i")
    conns = [pg.connect(autocommit=False) for _ in range(clients)]
    for c in conns:
        c.execute(f"SET application_name = '{CLIENT_APP}'")
        c.commit()
    poll = pg.connect()
    d0 = worker_state(poll)[2]
    # CPU accounting (/proc/<pid>/stat): the worker from celerysalt_status, the publishing sessions
    # and every other process of the cluster (WAL writer, checkpointer, ...) from pg_stat_activity
    wpid = poll.execute("SELECT worker_pid FROM celerysalt_status").fetchone()[0]
    backend_pids = [r[0] for r in poll.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s ORDER BY pid", (CLIENT_APP,))]
    other_pids = [r[0] for r in poll.execute(
        "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND pid <> %s"
        " AND application_name IS DISTINCT FROM %s", (wpid, CLIENT_APP))]
    pids = {**pids, "worker": wpid}
    first_commit = []
    last_commit = []
    barrier = threading.Barrier(clients + 1)
    errors = []

    def client(k):
        conn = conns[k]
        try:
            barrier.wait()
            base = k * txns_per_client * per_txn
            for t in range(txns_per_client):
                lo = base + t * per_txn + 1
                conn.execute(sql, (topic, lo, lo + per_txn - 1)).fetchone()
                conn.commit()
                if t == 0:
                    first_commit.append(time.monotonic())
            last_commit.append(time.monotonic())
        except Exception as e:  # pragma: no cover
            errors.append(e)

    meter = CpuMeter({**pids, **{f"backend{i}": p for i, p in enumerate(backend_pids)},
                      **{f"pg_other{i}": p for i, p in enumerate(other_pids)}})
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    meter.start()
    barrier.wait()
    t_start = time.monotonic()
    target = d0 + n_events
    deadline = t_start + 600
    while True:
        d = worker_state(poll)[2]
        if d >= target:
            t_done = time.monotonic()
            break
        if errors or time.monotonic() > deadline:
            raise SystemExit(f"extension run failed: {errors or worker_state(poll)}")
        time.sleep(0.003)
    cpu = meter.stop()
    for t in threads:
        t.join()
    for c in conns:
        c.close()
    pending = poll.execute("SELECT pending FROM celerysalt_status").fetchone()[0]
    poll.close()
    t_first = min(first_commit)
    return {
        "events": n_events,
        "seconds": t_done - t_first,
        "rate": n_events / (t_done - t_first),
        "rate_from_start": n_events / (t_done - t_start),
        "enqueue_rate": n_events / (max(last_commit) - t_start),
        "pending_after": pending,
        "cpu": cpu,
    }


# ------------------------------------------------------------------ (b) raw C
def run_raw(raw_bin, topic, n_events, batch, payload_json, pids):
    meter = CpuMeter(pids)
    meter.start()
    out = subprocess.run([raw_bin, BROKER[0], str(BROKER[1]), EXCHANGE, topic, str(n_events),
                          str(batch), payload_json], check=True, capture_output=True, text=True)
    cpu = meter.stop()
    r = json.loads(out.stdout)
    cpu["client"] = r["cpu_seconds"]
    return {"events": r["messages"], "seconds": r["seconds"], "rate": r["rate"], "cpu": cpu,
            "body_bytes": r["body_bytes"]}


# ------------------------------------------------------------------ (s) stand-in
def set_worker_broker(pg, url):
    """Point the worker at url (None: back to postgresql.conf's) and wait until the reload took."""
    with pg.connect() as c:
        if url is None:
            c.execute("ALTER SYSTEM RESET celerysalt.broker_url")
        else:
            c.execute(f"ALTER SYSTEM SET celerysalt.broker_url = '{url}'")
        c.execute("SELECT pg_reload_conf()")
    time.sleep(1.0)


def run_standin(pg, raw_bin, topic, n_events, batch, payload_json, clients, per_txn, pids):
    """(s) what (a) cannot avoid, without the worker: raw C publishes n_events while the publishing
    sessions enqueue n_events as in (a), into an outbox whose worker is pointed at a closed port
    meanwhile (the events are deleted afterwards).  Its rate is what (a) could reach on this machine
    with a worker that cost nothing."""
    set_worker_broker(pg, "amqp://guest:guest@127.0.0.1:1/%2F")
    txns_per_client = n_events // (clients * per_txn)
    sql = (f"SELECT count(celerysalt_publish(%s, {PAYLOAD_SQL.format(i='i')}, 'v1'))"
           " FROM generate_series(%s::int, %s::int) i")
    conns = [pg.connect(autocommit=True) for _ in range(clients)]
    for c in conns:
        c.execute(f"SET application_name = '{CLIENT_APP}'")
    with pg.connect() as c:
        backend_pids = [r[0] for r in c.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s ORDER BY pid", (CLIENT_APP,))]
    barrier = threading.Barrier(clients + 1)

    def client(k):
        barrier.wait()
        base = k * txns_per_client * per_txn
        for t in range(txns_per_client):
            lo = base + t * per_txn + 1
            conns[k].execute(sql, (topic + ".standin", lo, lo + per_txn - 1)).fetchone()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    meter = CpuMeter({**pids, **{f"backend{i}": p for i, p in enumerate(backend_pids)}})
    meter.start()
    barrier.wait()
    out = subprocess.run([raw_bin, BROKER[0], str(BROKER[1]), EXCHANGE, topic, str(n_events),
                          str(batch), payload_json], check=True, capture_output=True, text=True)
    cpu = meter.stop()
    for t in threads:
        t.join()
    for c in conns:
        c.close()
    with pg.connect() as c:
        c.execute("DELETE FROM _celerysalt_outbox")
    set_worker_broker(pg, None)
    wait_worker_ready(pg)
    r = json.loads(out.stdout)
    cpu["client"] = r["cpu_seconds"]
    return {"events": r["messages"], "seconds": r["seconds"], "rate": r["rate"], "cpu": cpu}


# ------------------------------------------------------------------ (c) celery-salt Python
def _py_publisher(k, n, topic, data, service_queue, ready, go, results, confirm):
    import logging
    logging.disable(logging.CRITICAL)
    from celery import Celery
    from celery_salt.django.celery import setup_salt_queue
    from celery_salt.integrations.producer import publish_event

    app = Celery(f"csbench{k}", broker=f"amqp://guest:guest@{BROKER[0]}:{BROKER[1]}//")
    if confirm:
        app.conf.broker_transport_options = {"confirm_publish": True}
    setup_salt_queue(app, queue_name=service_queue)
    # warm up: connection, exchange and service-queue declarations happen on the first publish
    publish_event(topic, dict(data, user_id=-1), version="v1", celery_app=app)

    def sync():
        # one round trip on the publishing channel: the broker has processed everything before it
        with app.producer_or_acquire() as p:
            p.channel.exchange_declare(EXCHANGE, "topic", durable=True, auto_delete=False)

    sync()
    cpu0 = time.process_time()
    ready.put(k)
    go.wait()
    for i in range(n):
        publish_event(topic, dict(data, user_id=k * n + i), version="v1", celery_app=app)
    sync()
    results.put((k, time.monotonic(), time.process_time() - cpu0))


def run_python(topic, n_events, procs, data, pids, confirm=False):
    service_queue = f"csbench_svc_{uuid.uuid4().hex[:8]}"
    ctx = mp.get_context("fork")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    per = n_events // procs
    ps = [ctx.Process(target=_py_publisher,
                      args=(k, per, topic, data, service_queue, ready, go, results, confirm))
          for k in range(procs)]
    for p in ps:
        p.start()
    for _ in ps:
        ready.get(timeout=60)
    meter = CpuMeter({**pids, **{f"py{i}": p.pid for i, p in enumerate(ps)}})
    meter.start()
    t0 = time.monotonic()
    go.set()
    done = [results.get(timeout=900) for _ in ps]
    cpu = meter.stop()
    for p in ps:
        p.join()
    delete_queue(service_queue)
    t1 = max(d[1] for d in done)
    cpu["client"] = sum(d[2] for d in done)
    return {"events": per * procs, "seconds": t1 - t0, "rate": per * procs / (t1 - t0), "cpu": cpu,
            "warmup_events": procs}


# ------------------------------------------------------------------ (d) latency
LAT_APP = "celerysalt-bench-lat"  # application_name of (d)'s publishing sessions
# The targets for commit -> consumer, per asked rate: (p50, p99) in ms, None where none is set.
LAT_TARGETS = {100: (1.0, 5.0), 5000: (None, 20.0)}
# An asked rate counts as reached when the publishers achieved at least this share of it.
LAT_REACHED = 0.97


def _lat_consumer(topic, ready, stop, out):
    """(d) the service: records the monotonic arrival time of every message on topic by its
    correlation_id, which the extension sets to the task id, the uuid celerysalt_publish returns."""
    c, ch = amqp_channel()
    q = ch.queue_declare("", exclusive=True, auto_delete=True).queue
    ch.queue_bind(q, EXCHANGE, topic)
    arrivals = {}

    def on_msg(m):
        arrivals[m.properties.get("correlation_id")] = time.monotonic()

    ch.basic_consume(q, no_ack=True, callback=on_msg)
    ready.set()
    while not stop.is_set():
        try:
            c.drain_events(timeout=0.2)
        except socket.timeout:
            pass
    # drain what is left: until the broker has been quiet for 0.5 s (at most 30 s)
    t_end = time.monotonic() + 30
    while time.monotonic() < t_end:
        try:
            c.drain_events(timeout=0.5)
        except socket.timeout:
            break
    c.close()
    out.put(arrivals)


class LatConsumer:
    """(d)'s consumer, bound to topic before it returns: lat_consume (librabbitmq-c) when bin_path is
    given, else _lat_consumer (py-amqp, ~10x the CPU per message) in a forked process.  pid is the
    process to meter; fds are the descriptors a forked publisher must close."""

    def __init__(self, topic, bin_path):
        self.fds = []
        if bin_path:
            self.proc = subprocess.Popen([bin_path, BROKER[0], str(BROKER[1]), EXCHANGE, topic],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            if self.proc.stdout.readline().strip() != "ready":
                raise SystemExit("latency consumer (lat_consume) did not start")
            self.pid = self.proc.pid
            self.fds = [self.proc.stdin.fileno(), self.proc.stdout.fileno()]
        else:
            self.proc = None
            ctx = mp.get_context("fork")
            ready, self.stop_ev, self.out = ctx.Event(), ctx.Event(), ctx.Queue()
            self.cons = ctx.Process(target=_lat_consumer, args=(topic, ready, self.stop_ev, self.out))
            self.cons.start()
            if not ready.wait(30):
                raise SystemExit("latency consumer did not start")
            self.pid = self.cons.pid

    def stop(self):
        """Stops consuming once what is in flight has arrived; returns {correlation_id: monotonic
        arrival time}."""
        if self.proc:
            self.proc.stdin.close()
            lines = self.proc.stdout.read().splitlines()
            self.proc.wait()
            return {cid: float(t) for cid, t in (ln.split() for ln in lines)}
        self.stop_ev.set()
        arrivals = self.out.get(timeout=60)
        self.cons.join()
        return arrivals


def _lat_publisher(k, clients, conninfo, topic, per_txn, slots, slot_s, window_s, ready, go, t0v,
                   done, out, close_fds):
    """(d) publishing process k of clients, with a connection of its own.  The transactions are slots
    0 .. slots-1, slot s due at t0 + s * slot_s; this process takes slots k, k + clients, ... and
    commits per_txn events in each.  It starts no transaction after t0 + window_s (what is left is
    unsent: the asked rate was not reached).  A send is late when it starts after this process's next
    slot was due.  Puts (k, {event id: (monotonic, wall) right after COMMIT returned}, late, unsent
    events, last commit) on out, then keeps its session open until done is set (for CPU accounting).
    close_fds: the consumer's pipes, inherited by the fork, which must not stay open here."""
    for fd in close_fds:
        os.close(fd)
    conn = psycopg.connect(conninfo, autocommit=False)
    conn.execute(f"SET application_name = '{LAT_APP}'")
    conn.commit()
    sql = (f"SELECT celerysalt_publish(%s, {PAYLOAD_SQL.format(i='i')}, 'v1')"
           " FROM generate_series(%s::int, %s::int) i")
    # warm-up: plans cached, worker awake path exercised
    for i in range(20):
        lo = -(k * 20 + i + 1) * per_txn
        conn.execute(sql, (topic, lo, lo + per_txn - 1)).fetchall()
        conn.commit()
        time.sleep(0.01)
    ready.put((k, conn.info.backend_pid))
    go.wait()
    t0 = t0v.value
    own_interval = slot_s * clients
    commits = {}
    late = 0
    unsent = 0
    last = t0
    for s in range(k, slots, clients):
        due = t0 + s * slot_s
        now = time.monotonic()
        if now >= t0 + window_s:
            unsent += per_txn * len(range(s, slots, clients))
            break
        if due > now:
            time.sleep(due - now)
        elif now - due > own_interval:
            late += 1
        lo = s * per_txn
        ids = conn.execute(sql, (topic, lo, lo + per_txn - 1)).fetchall()
        conn.commit()
        last = time.monotonic()
        wall = time.time()
        for (eid,) in ids:
            commits[str(eid)] = (last, wall)
    out.put((k, commits, late, unsent, last))
    done.wait()
    conn.close()


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def summarize(ms):
    return {"n": len(ms), "p50": pct(ms, 50), "p95": pct(ms, 95), "p99": pct(ms, 99),
            "max": max(ms) if ms else float("nan"), "mean": statistics.fmean(ms) if ms else float("nan")}


def default_lat_clients(rate, per_txn):
    """Publishing processes for an asked rate: one while it asks <= 200 transactions/s (one Python
    client commits ~400 single-event transactions/s here), else one per 250 transactions/s, at most 8."""
    txns = rate / per_txn
    return 1 if txns <= 200 else min(8, math.ceil(txns / 250))


def _collect(q, procs, timeout):
    """One item per process in procs from q, failing early if one of them died."""
    items = []
    deadline = time.monotonic() + timeout
    while len(items) < len(procs):
        try:
            items.append(q.get(timeout=1))
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                raise SystemExit(f"latency publishers failed (exit codes {dead}) or timed out")
    return items


def run_latency(pg, topic, rate, seconds, pids, clients=1, per_txn=1, consumer_bin=None):
    """(d) commit -> consumer latency at rate events/s asked for seconds: clients forked processes,
    each with its own connection, together commit one transaction of per_txn events every
    per_txn / rate s (interleaved: transaction s is process s mod clients's).  Every event's commit
    time (CLOCK_MONOTONIC, shared by the processes) is matched with its arrival at a consumer in
    another process (lat_consume at consumer_bin, else py-amqp).  CPU is measured from the first due
    commit until the outbox is empty."""
    ctx = mp.get_context("fork")
    cons = LatConsumer(topic, consumer_bin)
    slots = max(1, round(rate * seconds / per_txn))
    slot_s = per_txn / rate
    # a process that is behind may catch up for 10% of the window; then it stops sending
    window_s = seconds * 1.1
    pready, pout, go, done = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Event()
    t0v = ctx.Value("d", 0.0)
    ps = [ctx.Process(target=_lat_publisher,
                      args=(k, clients, pg.conninfo, topic, per_txn, slots, slot_s, window_s,
                            pready, go, t0v, done, pout, cons.fds))
          for k in range(clients)]
    for p in ps:
        p.start()
    try:
        backend_pids = dict(_collect(pready, ps, 120))
        time.sleep(0.5)
        poll = pg.connect()
        other_pids = [r[0] for r in poll.execute(
            "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND pid <> %s"
            " AND application_name IS DISTINCT FROM %s", (pids.get("worker"), LAT_APP))]
        meter = CpuMeter({**pids, "consumer": cons.pid,
                          **{f"backend{k}": p for k, p in backend_pids.items()},
                          **{f"pg_other{i}": p for i, p in enumerate(other_pids)},
                          **{f"client{k}": p.pid for k, p in enumerate(ps)}})
        meter.start()
        t0v.value = time.monotonic() + 0.1
        go.set()
        done_pub = _collect(pout, ps, seconds * 2 + 120)
        # until the worker has delivered everything (the consumer gets it right after)
        deadline = time.monotonic() + 60
        while poll.execute("SELECT pending FROM celerysalt_status").fetchone()[0] > 0 \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        pending = poll.execute("SELECT pending FROM celerysalt_status").fetchone()[0]
        time.sleep(0.2)
        cpu = meter.stop()
        poll.close()
    finally:
        done.set()
        for p in ps:
            p.join(30)
        arrivals = cons.stop()

    t0 = t0v.value
    commits = {}
    for _, c, _, _, _ in done_pub:
        commits.update(c)
    late = sum(d[2] for d in done_pub)
    unsent = sum(d[3] for d in done_pub)
    elapsed = max(d[4] for d in done_pub) - t0
    sent = len(commits)
    with pg.connect() as c:
        rows = c.execute("SELECT id::text, extract(epoch FROM delivered_at)::float8,"
                         " extract(epoch FROM (delivered_at - enqueued_at))::float8"
                         " FROM celerysalt_events WHERE topic = %s", (topic,)).fetchall()
    delivered = {r[0]: (r[1], r[2]) for r in rows}
    to_consumer = [(arrivals[k] - v[0]) * 1000 for k, v in commits.items() if k in arrivals]
    to_confirm = [(delivered[k][0] - v[1]) * 1000 for k, v in commits.items() if k in delivered]
    enq_to_del = [delivered[k][1] * 1000 for k in commits if k in delivered]
    achieved = sent / elapsed if elapsed > 0 else float("nan")
    return {
        "asked_rate": rate, "clients": clients, "per_txn": per_txn, "seconds": seconds,
        "asked_events": slots * per_txn, "events": sent, "unsent": unsent, "elapsed": elapsed,
        "achieved_rate": achieved, "reached": unsent == 0 and achieved >= LAT_REACHED * rate,
        "late_sends": late, "transactions": sent // per_txn,
        "commit_to_consumer": summarize(to_consumer),
        "commit_to_delivered_at": summarize(to_confirm),
        "enqueued_to_delivered_at": summarize(enq_to_del),
        "missing_at_consumer": sent - len(to_consumer),
        "pending_after": pending, "consumer": "lat_consume (C)" if consumer_bin else "py-amqp",
        "cpu": cpu,
    }


# ------------------------------------------------------------------ main
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conninfo", required=True)
    ap.add_argument("--raw-bin", required=True)
    ap.add_argument("--events", type=int, default=40000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--per-txn", type=int, default=100)
    ap.add_argument("--py-procs", type=int, default=2)
    ap.add_argument("--sinks", default="queue,none")
    ap.add_argument("--lat-rate", default="100,5000", help="events/s asked, a comma list: one run each")
    ap.add_argument("--lat-seconds", type=float, default=30)
    ap.add_argument("--lat-clients", default="",
                    help="publishing processes: one number for every rate or one per rate"
                         " (default: 1 up to 200 transactions/s, else one per 250, at most 8)")
    ap.add_argument("--lat-txn-events", type=int, default=1, help="events per transaction")
    ap.add_argument("--lat-consumer-bin", default="",
                    help="lat_consume, the C consumer of (d); without it py-amqp consumes")
    ap.add_argument("--broker-port", type=int, default=5672)
    ap.add_argument("--broker-pid", type=int, default=0)
    ap.add_argument("--only", default="a,m,t,b,s,c,d")
    ap.add_argument("--json-out", default="")
    args = ap.parse_args()
    only = set(args.only.split(","))
    global BROKER
    BROKER = (BROKER[0], args.broker_port)
    lat_rates = [float(x) for x in args.lat_rate.split(",") if x.strip()]
    lat_clients = [int(x) for x in args.lat_clients.split(",") if x.strip()]
    if len(lat_clients) == 1:
        lat_clients *= len(lat_rates)
    elif not lat_clients:
        lat_clients = [default_lat_clients(r, args.lat_txn_events) for r in lat_rates]
    elif len(lat_clients) != len(lat_rates):
        ap.error("--lat-clients: one number, or one per rate of --lat-rate")

    pg = Pg(args.conninfo)
    wpid = wait_worker_ready(pg)
    with pg.connect() as c:
        sample = c.execute(f"SELECT ({PAYLOAD_SQL.format(i='12345')})::text").fetchone()[0]
        server_version = c.execute("SHOW server_version").fetchone()[0]
        batch_size = c.execute("SHOW celerysalt.batch_size").fetchone()[0]
    payload_json = sample[:-1] + ', "_tchu_meta": {"is_rpc": false, "version": "v1"}}'
    data = json.loads(sample)  # same member order as the extension's message
    pids = {"worker": wpid, "broker": args.broker_pid}
    uid = uuid.uuid4().hex[:8]
    log(f"payload ({len(sample)} bytes as JSON, {len(payload_json)} with _tchu_meta): {payload_json}")
    log(f"PostgreSQL {server_version}, celerysalt.batch_size = {batch_size}, worker pid {wpid}, "
        f"broker pid {args.broker_pid or '?'}")

    results = {"meta": {"payload_json": payload_json, "payload_bytes": len(sample),
                        "events": args.events, "repeats": args.repeats, "batch": args.batch,
                        "clients": args.clients, "per_txn": args.per_txn, "py_procs": args.py_procs,
                        "server_version": server_version, "load_start": loadavg(),
                        "broker_port": args.broker_port, "lat_seconds": args.lat_seconds,
                        "lat_rates": lat_rates, "lat_clients": lat_clients,
                        "lat_txn_events": args.lat_txn_events},
               "runs": [], "latency": []}
    sinks = [s for s in args.sinks.split(",") if s]
    sink_queues = {}
    try:
        for sink in sinks:
            if sink == "queue":
                q = f"csbench_sink_{uid}"
                make_sink_queue(q, f"bench.q.{uid}")
                sink_queues[sink] = q
        for rep in range(1, args.repeats + 1):
            for sink in sinks:
                topic = f"bench.q.{uid}" if sink == "queue" else f"bench.n.{uid}"
                for kind in ("a", "m", "t", "b", "s", "c"):
                    if kind not in only or (kind in ("m", "t") and sink != "queue"):
                        continue
                    la = loadavg()
                    # (t) is (a) with celerysalt.track_metrics = off: what collecting metrics costs
                    set_track_metrics(pg, kind != "t")
                    if kind in ("a", "m", "t"):
                        # (a) publishes mandatory (celerysalt.unroutable = keep) where a queue is
                        # bound; (m) the same without mandatory, to measure what it costs.  A topic
                        # nobody binds (sink none) is published as raw C does, without mandatory:
                        # with keep its events would wait in celerysalt_unroutable.
                        set_unroutable(pg, "keep" if kind in ("a", "t") and sink == "queue" else "drop")
                        r = run_extension(pg, topic, args.events, args.clients, args.per_txn, pids)
                    elif kind == "b":
                        r = run_raw(args.raw_bin, topic, args.events, args.batch, payload_json,
                                    {"broker": pids["broker"]})
                    elif kind == "s":
                        r = run_standin(pg, args.raw_bin, topic, args.events, args.batch, payload_json,
                                        args.clients, args.per_txn, {"broker": pids["broker"]})
                    else:
                        r = run_python(topic, args.events, args.py_procs, data, {"broker": pids["broker"]})
                    if sink in sink_queues:
                        r["queued"] = purge_queue(sink_queues[sink])
                    r.update(kind=kind, sink=sink, rep=rep, load=la)
                    results["runs"].append(r)
                    log(f"rep {rep} sink={sink} ({kind}) {r['events']} events in {r['seconds']:.2f} s"
                        f" = {r['rate']:.0f}/s  cpu={ {k: round(v, 2) for k, v in r['cpu'].items()} }"
                        f" load={la}" + (f" queued={r['queued']}" if 'queued' in r else ""))
                    time.sleep(1)
        if "d" in only:
            set_unroutable(pg, "keep")   # the default; the latency topic has a queue
            set_track_metrics(pg, True)
            for i, (rate, clients) in enumerate(zip(lat_rates, lat_clients)):
                la = loadavg()
                lat = run_latency(pg, f"bench.lat.{uid}.{i}", rate, args.lat_seconds, pids,
                                  clients, args.lat_txn_events, args.lat_consumer_bin or None)
                lat["load"] = la
                results["latency"].append(lat)
                log(f"latency: {json.dumps(lat)}")
                time.sleep(1)
    finally:
        for q in sink_queues.values():
            delete_queue(q)
    results["meta"]["load_end"] = loadavg()
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(results, f, indent=1)
    report(results, sinks, only)


def variant_cost(runs, summary, kind, what, name, target_pct):
    """What (a) costs against variant kind (the same without one feature) on the queue sink, in %."""
    rs = [r["rate"] for r in runs if r["sink"] == "queue" and r["kind"] == kind]
    if not rs:
        return
    med = statistics.median(rs)
    print(f"   {what} ({kind}): {med:.0f}/s, so {name} costs {(1 - summary['queue']['a'] / med) * 100:.1f}%"
          f" (target <= {target_pct}%); runs {kind}: " + "/".join(f"{x:.0f}" for x in rs))


def report_latency(lat):
    """The (d) block of one asked rate: whether it was reached, the latencies, the issue's targets and
    the CPU per event of every process."""
    asked, got = lat["asked_rate"], lat["achieved_rate"]
    k = lat["per_txn"]
    shape = (f"{lat['clients']} publishing process{'es' if lat['clients'] != 1 else ''},"
             f" {k} event{'s' if k != 1 else ''} per transaction, consumer {lat['consumer']}")
    print()
    if lat["reached"]:
        print(f"== latency at {got:.0f} events/s (asked {asked:.0f}/s: reached), {shape},"
              f" {lat['events']} events (ms)")
    else:
        print(f"== latency at {got:.0f} events/s: asked {asked:.0f}/s NOT REACHED ({got / asked * 100:.0f}%"
              f" of it), {shape}, {lat['events']} of {lat['asked_events']} events sent (ms)")
        print(f"   this machine did not sustain {asked:.0f} events/s in this shape: the figures below are"
              f" for {got:.0f}/s, not for {asked:.0f}/s")
    print(f"{'measure':<44}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}")
    for name, key in (("client COMMIT returned -> consumer has it", "commit_to_consumer"),
                      ("client COMMIT returned -> delivered_at", "commit_to_delivered_at"),
                      ("enqueued_at -> delivered_at (server)", "enqueued_to_delivered_at")):
        st = lat[key]
        print(f"{name:<44}{st['p50']:>8.2f}{st['p95']:>8.2f}{st['p99']:>8.2f}{st['max']:>8.2f}")
    print(f"   missing at consumer: {lat['missing_at_consumer']}, late sends: {lat['late_sends']} of"
          f" {lat['transactions']} transactions, unsent: {lat['unsent']} events,"
          f" pending after: {lat['pending_after']}")
    if lat["transactions"] and lat["late_sends"] > 0.05 * lat["transactions"]:
        print(f"   caution: {lat['late_sends'] / lat['transactions'] * 100:.0f}% of the transactions started"
              " late (after their process's next one was due): the load was not offered evenly")
    target = LAT_TARGETS.get(round(asked))
    if target:
        want = " and ".join(f"{n} <= {v:g} ms" for n, v in zip(("p50", "p99"), target) if v is not None)
        if not lat["reached"]:
            print(f"   target at {asked:.0f}/s ({want}): not measured, the rate was not reached")
        else:
            st = lat["commit_to_consumer"]
            met = all(st[n] <= v for n, v in zip(("p50", "p99"), target) if v is not None)
            print(f"   target at {asked:.0f}/s ({want}) commit -> consumer: {'met' if met else 'NOT met'}")
    cpu = lat["cpu"]
    groups = (("worker", "worker"), ("backends", "backend"), ("pg other", "pg_other"),
              ("broker", "broker"), ("consumer", "consumer"), ("clients", "client"))
    parts = []
    total = 0.0
    for name, prefix in groups:
        keys = [x for x in cpu if x.rstrip("0123456789") == prefix]
        if keys and lat["events"]:
            v = sum(cpu[x] for x in keys) / lat["events"] * 1e6
            total += v
            parts.append(f"{name} {v:.1f}")
    print(f"   CPU per event (µs): {', '.join(parts)}; total {total:.1f}; machine busy"
          f" {cpu['machine_busy_pct']:.0f}%")


def report(results, sinks, only):
    runs = results["runs"]
    m = results["meta"]
    if not runs:
        report_tail(results)
        return
    print()
    print(f"== publish throughput: {m['events']} events per run, median of {m['repeats']} interleaved runs,"
          f" batch {m['batch']}, payload {m['payload_bytes']} B")
    print("   (a) celerysalt end to end: %d clients x %d events per statement/transaction, first commit"
          " -> delivered_total reached (all confirmed)" % (m["clients"], m["per_txn"]))
    print("   (b) raw librabbitmq-c, same Celery messages, persistent, confirms awaited per batch")
    print("   (c) celery-salt 1.6.0 publish_event via Celery send_task (setup_salt_queue), %d processes,"
          " no publisher confirms (its default)" % m["py_procs"])
    hdr = f"{'sink':<7}{'(a) celerysalt':>16}{'(b) raw C':>12}{'(c) celery-salt':>17}{'a/b':>8}{'a/c':>8}   runs a | b | c"
    print(hdr)
    summary = {}
    for sink in sinks:
        med = {}
        detail = {}
        for kind in "abc":
            rs = [r["rate"] for r in runs if r["sink"] == sink and r["kind"] == kind]
            med[kind] = statistics.median(rs) if rs else float("nan")
            detail[kind] = "/".join(f"{x:.0f}" for x in rs)
        summary[sink] = med
        ab = med["a"] / med["b"] if med["b"] else float("nan")
        ac = med["a"] / med["c"] if med["c"] else float("nan")
        print(f"{sink:<7}{med['a']:>14.0f}/s{med['b']:>10.0f}/s{med['c']:>15.0f}/s{ab:>8.2f}{ac:>8.2f}"
              f"   {detail['a']} | {detail['b']} | {detail['c']}")
    print("   targets: a/b >= 0.70, a/c >= 1.5")
    for sink in sinks:
        ss = [r["rate"] for r in runs if r["sink"] == sink and r["kind"] == "s"]
        if ss and summary[sink].get("b"):
            smed = statistics.median(ss)
            print(f"   (s) raw C while the sessions enqueue (a)'s events, sink {sink}: {smed:.0f}/s ="
                  f" {smed / summary[sink]['b']:.2f} of (b), the most (a) can reach on this machine;"
                  f" a/s = {summary[sink]['a'] / smed:.2f}; runs s: " + "/".join(f"{x:.0f}" for x in ss))
    if "queue" in sinks:
        variant_cost(runs, summary, "m", "(a) publishes mandatory on the queue sink; the same without mandatory",
                     "mandatory", 5)
        variant_cost(runs, summary, "t", "(a) collects metrics; the same with celerysalt.track_metrics = off",
                     "metrics", 2)
    # CPU per event and process, median over runs, beside the rates
    print()
    print("== CPU per event (µs, median over runs) per process, beside the rate")
    print("   worker: celerysalt_status.worker_pid; backends: the %d publishing sessions (pg_stat_activity);"
          " pg other: every other process of the cluster (WAL writer, checkpointer, ...);" % m["clients"])
    print("   broker: the RabbitMQ node's beam.smp (%s); client: raw C's or celery-salt's processes"
          % ("a private node: only the bench's messages" if m.get("broker_port", 5672) != 5672
             else "the machine's shared node: other users' messages count too"))
    labels = {"queue": "one durable queue, no consumer", "none": "no queue bound (dropped, confirmed)"}
    cols = ("worker", "backends", "pg other", "broker", "client")
    for sink in sinks:
        print(f"   sink {sink}: {labels.get(sink, sink)}")
        print(f"   {'':<5}{'events/s':>10}{'x (b)':>7}" + "".join(f"{c:>10}" for c in cols)
              + f"{'total':>10}{'busy':>7}")
        for kind in "amtsbc":
            rs = [r for r in runs if r["sink"] == sink and r["kind"] == kind]
            if not rs:
                continue
            def per_event(r, col):
                cpu = r["cpu"]
                if col == "backends":
                    keys = [k for k in cpu if k.startswith("backend")]
                elif col == "pg other":
                    keys = [k for k in cpu if k.startswith("pg_other")]
                else:
                    keys = [col] if col in cpu else []
                return sum(cpu[k] for k in keys) / r["events"] * 1e6 if keys else None
            vals = {}
            for col in cols:
                v = [per_event(r, col) for r in rs]
                v = [x for x in v if x is not None]
                vals[col] = statistics.median(v) if v else None
            total = statistics.median(sum(x for x in (per_event(r, c) for c in cols) if x is not None)
                                      for r in rs)
            rate = statistics.median(r["rate"] for r in rs)
            ratio = rate / summary[sink]["b"] if summary[sink].get("b") else float("nan")
            busy = statistics.median(r["cpu"]["machine_busy_pct"] for r in rs)
            print(f"   ({kind}){rate:>10.0f}{ratio:>7.2f}"
                  + "".join(f"{vals[c]:>10.1f}" if vals[c] is not None else f"{'-':>10}" for c in cols)
                  + f"{total:>10.1f}{busy:>6.0f}%")
    report_tail(results)


def report_tail(results):
    """The (d) blocks and the load average."""
    for lat in results["latency"]:
        report_latency(lat)
    m = results["meta"]
    print(f"\nload average: start {m['load_start']}, end {m['load_end']}")


if __name__ == "__main__":
    main()
