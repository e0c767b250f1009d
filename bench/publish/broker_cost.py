"""Where RabbitMQ's CPU per message goes: celerysalt's worker against raw librabbitmq-c publishing the
same Celery messages (issue 17, item 3).  Run through bench/publish/broker_cost.sh, which starts a
RabbitMQ node of its own (so that its CPU counts only these messages) and a throwaway cluster per
PostgreSQL install given.

1. Frames: one message of each publisher goes through a recording TCP proxy; the frames are compared
   field by field (basic.publish arguments, frames per message, content header size, property flags,
   header table entries and their AMQP field types, body size).
2. Broker CPU per message: /proc/<beam.smp>/stat before and after each run, minus the node's idle CPU,
   divided by the messages; runs interleaved, medians printed.  Variants: raw C with and without
   `mandatory`, and per install the worker with celerysalt.unroutable = keep (mandatory) and drop, at the
   default publish window and at 1 (publish, wait, finish: the loop of earlier versions).  Every run
   publishes --events messages to one durable queue that nobody consumes (purged after each run); the
   worker's events come from 2 sessions of 100 events per transaction, as in run.sh.
"""
import argparse
import json
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import uuid

import bench
import psycopg

# ------------------------------------------------------------------ frame capture


class Recorder:
    """A TCP proxy that keeps the client-to-broker bytes of every connection."""

    def __init__(self, upstream_port):
        self.up = upstream_port
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(8)
        self.port = self.ls.getsockname()[1]
        self.streams = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            c, _ = self.ls.accept()
            u = socket.create_connection(("127.0.0.1", self.up))
            buf = bytearray()
            self.streams.append(buf)
            threading.Thread(target=self._pipe, args=(c, u, buf), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c, None), daemon=True).start()

    @staticmethod
    def _pipe(a, b, buf):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                if buf is not None:
                    buf.extend(d)
                b.sendall(d)
        except OSError:
            pass
        finally:
            try:
                b.shutdown(socket.SHUT_WR)
            except OSError:
                pass


FIELD_TYPES = {b"t": "bool", b"b": "i8", b"B": "u8", b"s": "i16", b"u": "u16", b"I": "i32", b"i": "u32",
               b"l": "i64", b"f": "float", b"d": "double", b"D": "decimal", b"S": "longstr", b"A": "array",
               b"T": "timestamp", b"F": "table", b"V": "void", b"x": "bytes"}
FIXED = {b"t": 1, b"b": 1, b"B": 1, b"s": 2, b"u": 2, b"I": 4, b"i": 4, b"l": 8, b"f": 4, b"d": 8,
         b"D": 5, b"T": 8, b"V": 0}


def header_table(b, off):
    """[(key, AMQP type)] of a field table at b[off:], and the offset after it."""
    n = struct.unpack_from(">I", b, off)[0]
    off += 4
    end = off + n
    out = []
    while off < end:
        kl = b[off]
        key = b[off + 1:off + 1 + kl].decode()
        off += 1 + kl
        t = b[off:off + 1]
        off += 1
        if t in FIXED:
            off += FIXED[t]
        else:  # S, A, F, x: a 32-bit length
            off += 4 + struct.unpack_from(">I", b, off)[0]
        out.append((key, FIELD_TYPES.get(t, repr(t))))
    return out, end


PROPS = [(15, "content_type", "s"), (14, "content_encoding", "s"), (13, "headers", "F"),
         (12, "delivery_mode", "o"), (11, "priority", "o"), (10, "correlation_id", "s"),
         (9, "reply_to", "s"), (8, "expiration", "s"), (7, "message_id", "s"), (6, "timestamp", "l"),
         (5, "type", "s"), (4, "user_id", "s"), (3, "app_id", "s")]


def publishes(stream):
    """One dict per basic.publish of a captured client-to-broker stream."""
    b = bytes(stream)
    off = 8  # "AMQP\0\0\9\1"
    msg = None
    while off + 7 <= len(b):
        ftype, channel, size = struct.unpack_from(">BHI", b, off)
        payload = b[off + 7:off + 7 + size]
        off += 8 + size
        if ftype == 1 and struct.unpack_from(">HH", payload, 0) == (60, 40):
            if msg:
                yield msg
            p = 6
            p += 1 + payload[p]        # exchange
            p += 1 + payload[p]        # routing key
            bits = payload[p]
            msg = {"channel": channel, "method frame": size, "mandatory": bool(bits & 1),
                   "immediate": bool(bits & 2), "frames": 1, "body frames": 0, "body": 0}
        elif ftype == 2 and msg:
            msg["frames"] += 1
            msg["header frame"] = size
            flags = struct.unpack_from(">H", payload, 12)[0]
            msg["property flags"] = hex(flags)
            p = 14
            for bit, name, kind in PROPS:
                if not flags & (1 << bit):
                    continue
                if kind == "s":
                    value = payload[p + 1:p + 1 + payload[p]].decode()
                    p += 1 + payload[p]
                    if name != "correlation_id":   # a task id: differs per message
                        msg[name] = value
                elif kind == "o":
                    msg[name] = payload[p]
                    p += 1
                elif kind == "l":
                    p += 8
                else:
                    tbl, p = header_table(payload, p)
                    msg["header entries"] = len(tbl)
                    msg["header types"] = " ".join(f"{k}:{t}" for k, t in tbl)
        elif ftype == 3 and msg:
            msg["frames"] += 1
            msg["body frames"] += 1
            msg["body"] += size
    if msg:
        yield msg


# ------------------------------------------------------------------ the runs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conninfo", action="append", required=True, help="NAME=CONNINFO, one per install")
    ap.add_argument("--broker-port", type=int, required=True)
    ap.add_argument("--broker-pid", type=int, required=True)
    ap.add_argument("--raw-bin", required=True)
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    bench.BROKER = ("127.0.0.1", args.broker_port)
    pgs = {}
    for spec in args.conninfo:
        name, ci = spec.split("=", 1)
        pgs[name] = bench.Pg(ci)
    first = next(iter(pgs.values()))
    uid = uuid.uuid4().hex[:8]
    topic, queue = f"bench.q.{uid}", f"csbench_sink_{uid}"
    bench.make_sink_queue(queue, topic)
    with first.connect() as c:
        sample = c.execute(f"SELECT ({bench.PAYLOAD_SQL.format(i='12345')})::text").fetchone()[0]
    payload_json = sample[:-1] + ', "_tchu_meta": {"is_rpc": false, "version": "v1"}}'
    url = f"amqp://guest:guest@127.0.0.1:{args.broker_port}/%2F"

    def setconf(pg, **kw):
        with pg.connect() as c:
            for k, v in kw.items():
                try:
                    c.execute(f"ALTER SYSTEM SET celerysalt.{k} = '{v}'")
                except psycopg.errors.UndefinedObject:
                    if k != "publish_window":  # an install before the window
                        raise
            c.execute("SELECT pg_reload_conf()")
        time.sleep(1.0)

    def wait_connected(pg):
        with pg.connect() as c:
            for _ in range(200):
                c.execute("SELECT celerysalt_wake()")
                if c.execute("SELECT broker_connected FROM celerysalt_status").fetchone()[0]:
                    return
                time.sleep(0.05)
        raise SystemExit("the worker did not connect to the broker")

    def window_of(pg):
        with pg.connect() as c:
            try:
                return int(c.execute("SHOW celerysalt.publish_window").fetchone()[0])
            except psycopg.errors.UndefinedObject:
                return None

    # ---------------------------------------------------------------- 1. frames
    rec = Recorder(args.broker_port)
    for mandatory in (0, 1):
        subprocess.run([args.raw_bin, "127.0.0.1", str(rec.port), bench.EXCHANGE, topic, "1", "1",
                        payload_json, str(mandatory)], check=True, capture_output=True)
    time.sleep(0.3)
    setconf(first, broker_url=f"amqp://guest:guest@127.0.0.1:{rec.port}/%2F", unroutable="keep")
    wait_connected(first)
    for mode in ("keep", "drop"):
        setconf(first, unroutable=mode)
        with first.connect() as c:
            c.execute(f"SELECT celerysalt_publish(%s, {bench.PAYLOAD_SQL.format(i='12345')}, 'v1')", (topic,))
        time.sleep(0.5)
    setconf(first, broker_url=url)
    wait_connected(first)
    bench.purge_queue(queue)
    caught = {"raw C": list(publishes(rec.streams[0]))[0], "raw C, mandatory": list(publishes(rec.streams[1]))[0]}
    worker = list(publishes(rec.streams[2]))
    caught["worker, keep"], caught["worker, drop"] = worker[0], worker[1]
    keys = []
    for m in caught.values():
        keys += [k for k in m if k not in keys]
    print("== one message of each publisher, as the broker received it (client-to-broker frames)")
    print(f"{'':<18}" + "".join(f"{n:>20}" for n in caught))
    for k in keys:
        if k == "header types":
            continue
        print(f"{k:<18}" + "".join(f"{str(m.get(k, '-')):>20}" for m in caught.values()))
    same = {json.dumps({k: v for k, v in m.items() if k != "mandatory"}, sort_keys=True)
            for m in caught.values()}
    print("header table: " + caught["worker, keep"]["header types"])
    print("identical apart from the mandatory flag: " + ("yes" if len(same) == 1 else "NO"))

    # ---------------------------------------------------------------- 2. CPU
    c0 = bench.proc_cpu(args.broker_pid)
    t0 = time.monotonic()
    time.sleep(3)
    idle = (bench.proc_cpu(args.broker_pid) - c0) / (time.monotonic() - t0)
    print(f"\nthe broker node idle: {idle * 1e3:.1f} ms CPU per s (subtracted below)")

    def run_raw(mandatory):
        c0 = bench.proc_cpu(args.broker_pid)
        out = subprocess.run([args.raw_bin, "127.0.0.1", str(args.broker_port), bench.EXCHANGE, topic,
                              str(args.events), "500", payload_json, str(mandatory)],
                             check=True, capture_output=True, text=True)
        r = json.loads(out.stdout)
        broker = bench.proc_cpu(args.broker_pid) - c0 - idle * r["seconds"]
        return r["rate"], broker / r["messages"] * 1e6, r["cpu_seconds"] / r["messages"] * 1e6

    def run_worker(pg, mode, window):
        setconf(pg, unroutable=mode, **({"publish_window": window} if window else {}))
        r = bench.run_extension(pg, topic, args.events, 2, 100, {"broker": args.broker_pid})
        broker = r["cpu"]["broker"] - idle * r["seconds"]
        return r["rate"], broker / r["events"] * 1e6, r["cpu"]["worker"] / r["events"] * 1e6

    variants = {"raw C": lambda: run_raw(0), "raw C, mandatory": lambda: run_raw(1)}
    for name, pg in pgs.items():
        w = window_of(pg)
        for mode in ("keep", "drop"):
            label = f"{name}, {mode}" + (f", window {w}" if w else "")
            variants[label] = (lambda pg=pg, m=mode, w=w: run_worker(pg, m, w))
            if w and w != 1:
                variants[f"{name}, {mode}, window 1"] = (lambda pg=pg, m=mode: run_worker(pg, m, 1))
    results = {v: [] for v in variants}
    for rnd in range(1, args.rounds + 1):
        for v, fn in variants.items():
            r = fn()
            bench.purge_queue(queue)
            results[v].append(r)
            print(f"round {rnd} {v:<28} {r[0]:8.0f}/s  broker {r[1]:6.1f} µs/msg  publisher {r[2]:6.1f} µs/msg"
                  f"  load {bench.loadavg()}", flush=True)
            time.sleep(0.5)
    bench.delete_queue(queue)

    print(f"\n== CPU per message, median of {args.rounds} interleaved rounds of {args.events} messages"
          " (one durable queue, no consumer)")
    print(f"{'':<30}{'broker µs':>10}{'runs':>28}{'publisher µs':>14}{'msg/s':>9}")
    for v, rs in results.items():
        print(f"{v:<30}{statistics.median(x[1] for x in rs):>10.1f}{'/'.join(f'{x[1]:.0f}' for x in rs):>28}"
              f"{statistics.median(x[2] for x in rs):>14.1f}{statistics.median(x[0] for x in rs):>9.0f}")
    print("publisher: raw C's own CPU, or the worker's (without the publishing sessions)")
    print(f"load average at the end: {bench.loadavg()}")


if __name__ == "__main__":
    sys.exit(main())
