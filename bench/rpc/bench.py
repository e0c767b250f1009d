"""RPC round trip: celerysalt_call from SQL vs celery-salt's own Python
.call(), same handler, same worker, same RabbitMQ and Redis, one run.

Prints p50/p99 latency of sequential calls and calls/s with 4 concurrent
callers (4 SQL sessions vs 4 Python threads).  Run by bench/rpc/run.sh.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "test" / "integration"))
sys.path.insert(0, str(ROOT / "test" / "integration" / "workers"))

import rig  # noqa: E402

N_SEQ = int(os.environ.get("BENCH_RPC_SEQ", "1000"))
N_PAR = int(os.environ.get("BENCH_RPC_PAR", "1000"))      # calls per caller
CALLERS = 4
RESULT_DB = 13


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def sql_sequential(pg, topic, n):
    lat = []
    with pg.connect() as c:
        c.execute(f"SET celerysalt.redis_url = '{rig.redis_url(RESULT_DB)}'")
        c.execute("SELECT celerysalt_call(%s, '{\"caller\": 0, \"i\": 0}')", (topic,))  # warm
        for i in range(n):
            t0 = time.perf_counter()
            got = c.execute("SELECT celerysalt_call(%s, %s::jsonb)",
                            (topic, json.dumps({"caller": 0, "i": i}))).fetchone()[0]
            lat.append(time.perf_counter() - t0)
            assert got == {"caller": 0, "i": i}, got
    return lat


def sql_parallel(pg, topic, n):
    def one(k):
        with pg.connect() as c:
            c.execute(f"SET celerysalt.redis_url = '{rig.redis_url(RESULT_DB)}'")
            for i in range(n):
                got = c.execute("SELECT celerysalt_call(%s, %s::jsonb)",
                                (topic, json.dumps({"caller": k, "i": i}))).fetchone()[0]
                assert got == {"caller": k, "i": i}, got
    return run_threads(one)


def py_sequential(cls, n):
    lat = []
    cls.call(caller=0, i=0, timeout=10)   # warm
    for i in range(n):
        t0 = time.perf_counter()
        got = cls.call(caller=0, i=i, timeout=10)
        lat.append(time.perf_counter() - t0)
        assert dict(got) == {"caller": 0, "i": i}, got
    return lat


def py_parallel(cls, n):
    def one(k):
        for i in range(n):
            got = cls.call(caller=k, i=i, timeout=30)
            assert dict(got) == {"caller": k, "i": i}, got
    return run_threads(one)


def run_threads(fn):
    errors = []

    def wrap(k):
        try:
            fn(k)
        except Exception as exc:
            errors.append(repr(exc))
    threads = [threading.Thread(target=wrap, args=(k,)) for k in range(CALLERS)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"callers failed: {errors[:3]}")
    return elapsed


def main():
    run = uuid.uuid4().hex[:8]
    prefix = f"bench.{run}.rpc"
    queue = f"bench_rpc_{run}"
    base = Path(os.environ.get("BENCH_DIR", f"/tmp/celerysalt-bench-rpc-{run}"))
    base.mkdir(parents=True, exist_ok=True)
    os.environ.update({"CSIT_BROKER_URL": rig.BROKER_URL, "CSIT_TOPIC_PREFIX": prefix,
                       "CSIT_QUEUE": queue, "CSIT_RESULT_BACKEND": rig.redis_url(RESULT_DB),
                       "CSIT_RECORD_URL": rig.redis_url(RESULT_DB),
                       "CSIT_RECORD_PREFIX": f"bench:{run}"})
    pg = rig.PgCluster(base / "pg").init().start()
    amqp = rig.Amqp()
    amqp.track(queue)
    worker = rig.CeleryWorker("rpc_salt_worker", f"benchrpc-{run}", base / "worker.log",
                              dict(os.environ), extra_args=["-P", "threads", "-c", "8"])
    try:
        worker.start(90)
        import logging
        import rpc_salt_worker as svc   # the same app and event classes, caller side
        svc.app.set_default()           # Celery's current_app is per thread otherwise
        logging.getLogger().setLevel(logging.WARNING)   # Python's best case: no INFO lines
        for name in ("celery_salt", "celery", "kombu"):
            logging.getLogger(name).setLevel(logging.WARNING)
        echo = svc.EchoRequest
        topic = f"{prefix}.echo"

        sql_lat = sql_sequential(pg, topic, N_SEQ)
        py_lat = py_sequential(echo, N_SEQ)
        sql_t = sql_parallel(pg, topic, N_PAR)
        py_t = py_parallel(echo, N_PAR)

        ms = lambda v: f"{v * 1000:7.2f}"  # noqa: E731
        print(f"\nRPC round trip, echo handler, celery-salt 1.6.0 worker (threads pool, 8), "
              f"RabbitMQ + Redis on localhost, {N_SEQ} sequential calls, "
              f"{CALLERS} callers x {N_PAR} calls")
        print(f"{'':34}{'celerysalt_call':>18}{'celery-salt .call()':>22}{'ratio':>8}")
        print(f"{'latency p50 (ms)':34}{ms(statistics.median(sql_lat)):>18}"
              f"{ms(statistics.median(py_lat)):>22}{statistics.median(py_lat) / statistics.median(sql_lat):>7.2f}x")
        print(f"{'latency p99 (ms)':34}{ms(pct(sql_lat, 99)):>18}{ms(pct(py_lat, 99)):>22}"
              f"{pct(py_lat, 99) / pct(sql_lat, 99):>7.2f}x")
        sql_rate = CALLERS * N_PAR / sql_t
        py_rate = CALLERS * N_PAR / py_t
        print(f"{'calls/s, 4 concurrent callers':34}{sql_rate:>18.0f}{py_rate:>22.0f}"
              f"{sql_rate / py_rate:>7.2f}x")
    finally:
        worker.stop()
        amqp.delete_queue(queue)
        amqp.close()
        pg.destroy()


if __name__ == "__main__":
    main()
