"""Publish benchmark for issue 2: celerysalt vs raw librabbitmq-c vs celery-salt (Python).

Run through bench/publish/run.sh, which builds everything and starts a throwaway cluster.
All three publishers talk to the same RabbitMQ in the same run; repeats are interleaved
(a, b, c, a, b, c, ...) so that drift of the shared machine hits them alike.

Sinks (where the messages go once the broker has them):
  queue  one durable queue bound to the benchmark topic (messages are persistent, so the
         broker writes them to disk before it confirms them): the realistic case, a
         service queue exists.  Purged after every run; nothing consumes it.
  none   no binding matches the topic: RabbitMQ drops the message and still confirms it.
"""
import argparse
import json
import multiprocessing as mp
import os
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
def _lat_consumer(topic, ready, stop, out):
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
    # drain what is left
    t_end = time.monotonic() + 2
    while time.monotonic() < t_end:
        try:
            c.drain_events(timeout=0.2)
        except socket.timeout:
            break
    c.close()
    out.put(arrivals)


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


def run_latency(pg, topic, rate, seconds, pids):
    ctx = mp.get_context("fork")
    ready, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    cons = ctx.Process(target=_lat_consumer, args=(topic, ready, stop, out))
    cons.start()
    ready.wait(30)
    conn = pg.connect(autocommit=False)
    sql = f"SELECT celerysalt_publish(%s, {PAYLOAD_SQL.format(i='%s::int')}, 'v1')"
    # warm-up: plans cached, worker awake path exercised
    for i in range(20):
        conn.execute(sql, (topic, -i, -i)).fetchone()
        conn.commit()
        time.sleep(0.01)
    time.sleep(0.5)
    commits = {}  # id -> (monotonic, wall)
    meter = CpuMeter(pids)
    meter.start()
    n = int(rate * seconds)
    interval = 1.0 / rate
    t0 = time.monotonic() + 0.05
    late = 0
    for i in range(n):
        due = t0 + i * interval
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        elif now - due > interval:
            late += 1
        eid = conn.execute(sql, (topic, i, i)).fetchone()[0]
        conn.commit()
        commits[str(eid)] = (time.monotonic(), time.time())
    elapsed = time.monotonic() - t0
    cpu = meter.stop()
    conn.close()
    time.sleep(1.0)
    stop.set()
    arrivals = out.get(timeout=30)
    cons.join()

    with pg.connect() as c:
        rows = c.execute("SELECT id::text, extract(epoch FROM delivered_at)::float8,"
                         " extract(epoch FROM (delivered_at - enqueued_at))::float8"
                         " FROM celerysalt_events WHERE topic = %s", (topic,)).fetchall()
    delivered = {r[0]: (r[1], r[2]) for r in rows}
    to_consumer = [(arrivals[k] - v[0]) * 1000 for k, v in commits.items() if k in arrivals]
    to_confirm = [(delivered[k][0] - v[1]) * 1000 for k, v in commits.items() if k in delivered]
    enq_to_del = [delivered[k][1] * 1000 for k in commits if k in delivered]
    return {
        "events": n, "achieved_rate": n / elapsed, "late_sends": late,
        "commit_to_consumer": summarize(to_consumer),
        "commit_to_delivered_at": summarize(to_confirm),
        "enqueued_to_delivered_at": summarize(enq_to_del),
        "missing_at_consumer": n - len(to_consumer),
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
    ap.add_argument("--lat-rate", type=float, default=100)
    ap.add_argument("--lat-seconds", type=float, default=30)
    ap.add_argument("--broker-port", type=int, default=5672)
    ap.add_argument("--broker-pid", type=int, default=0)
    ap.add_argument("--only", default="a,m,t,b,s,c,d")
    ap.add_argument("--json-out", default="")
    args = ap.parse_args()
    only = set(args.only.split(","))
    global BROKER
    BROKER = (BROKER[0], args.broker_port)

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
                        "broker_port": args.broker_port},
               "runs": [], "latency": None}
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
            la = loadavg()
            lat = run_latency(pg, f"bench.lat.{uid}", args.lat_rate, args.lat_seconds, pids)
            lat["load"] = la
            results["latency"] = lat
            log(f"latency: {json.dumps(lat)}")
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


def report(results, sinks, only):
    runs = results["runs"]
    m = results["meta"]
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
    lat = results["latency"]
    if lat:
        print()
        print(f"== latency at {lat['achieved_rate']:.0f} events/s, one event per transaction,"
              f" {lat['events']} events (ms)")
        print(f"{'measure':<44}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}")
        for name, key in (("client COMMIT returned -> consumer has it", "commit_to_consumer"),
                          ("client COMMIT returned -> delivered_at", "commit_to_delivered_at"),
                          ("enqueued_at -> delivered_at (server)", "enqueued_to_delivered_at")):
            s = lat[key]
            print(f"{name:<44}{s['p50']:>8.2f}{s['p95']:>8.2f}{s['p99']:>8.2f}{s['max']:>8.2f}")
        print(f"   missing at consumer: {lat['missing_at_consumer']}, late sends: {lat['late_sends']};"
              f" target p50 <= 5 ms")
    print(f"\nload average: start {m['load_start']}, end {m['load_end']}")


if __name__ == "__main__":
    main()
