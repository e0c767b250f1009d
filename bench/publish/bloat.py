"""Soak: outbox size and delivery throughput while a transaction holds back the xmin horizon.

Publishes RATE events/s (10 per transaction, paced) for NORMAL seconds, then opens a transaction
that takes an xid and stays open (BEGIN; SELECT txid_current(); sleep) for HELD seconds while the
publishing goes on.  Every 5 s it samples delivered_total, the outbox's on-disk size
(pg_total_relation_size of _celerysalt_log_0..2, their indexes included), dead tuples and the
pending count; every 30 s it prints a line.  The topic is bound to no queue (the broker drops the
events after confirming them): what is measured is the database side.
"""
import argparse
import statistics
import sys
import threading
import time
import uuid

import psycopg

PAYLOAD_SQL = ("jsonb_build_object('user_id', i, 'email', 'user' || i || '@example.com',"
               " 'name', 'Ada Lovelace', 'plan', 'pro', 'country', 'GB', 'signup_source', 'web',"
               " 'referrer', 'newsletter-2024-05', 'marketing_opt_in', true,"
               " 'created_at', '2024-05-01T12:34:56.789012+00:00')")


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conninfo", required=True)
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--per-txn", type=int, default=10)
    ap.add_argument("--normal", type=float, default=60)
    ap.add_argument("--held", type=float, default=300)
    ap.add_argument("--window", type=float, default=30)
    args = ap.parse_args()
    topic = f"bench.bloat.{uuid.uuid4().hex[:8]}"
    stop = threading.Event()
    published = [0]
    lag = [0.0]

    def publisher():
        conn = psycopg.connect(args.conninfo, autocommit=False)
        sql = (f"SELECT count(celerysalt_publish(%s, {PAYLOAD_SQL}, 'v1'))"
               " FROM generate_series(%s::int, %s::int) i")
        interval = args.per_txn / args.rate
        t0 = time.monotonic()
        k = 0
        while not stop.is_set():
            due = t0 + k * interval
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            else:
                lag[0] = max(lag[0], now - due)
            conn.execute(sql, (topic, k * args.per_txn, (k + 1) * args.per_txn - 1)).fetchone()
            conn.commit()
            published[0] += args.per_txn
            k += 1
        conn.close()

    mon = psycopg.connect(args.conninfo, autocommit=True)

    def sample():
        r = mon.execute("""
            SELECT (SELECT delivered_total FROM _celerysalt_worker_state()),
                   (SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c
                     WHERE c.relname IN ('_celerysalt_log_0', '_celerysalt_log_1', '_celerysalt_log_2')),
                   (SELECT sum(n_dead_tup) FROM pg_stat_user_tables
                     WHERE relname IN ('_celerysalt_log_0', '_celerysalt_log_1', '_celerysalt_log_2')),
                   (SELECT count(*) FROM _celerysalt_outbox),
                   pg_total_relation_size('celerysalt_events'),
                   (SELECT max(age(backend_xmin)) FROM pg_stat_activity WHERE backend_xmin IS NOT NULL),
                   (SELECT string_agg((pg_total_relation_size(c.oid) / 1024)::text, '/' ORDER BY c.relname) FROM pg_class c
                     WHERE c.relname IN ('_celerysalt_log_0', '_celerysalt_log_1', '_celerysalt_log_2')),
                   (SELECT sum(autovacuum_count + autoanalyze_count) FROM pg_stat_user_tables
                     WHERE relname IN ('_celerysalt_log_0', '_celerysalt_log_1', '_celerysalt_log_2'))
        """).fetchone()
        return {"t": time.monotonic(), "delivered": r[0], "outbox_bytes": int(r[1]), "dead": int(r[2] or 0),
                "pending": r[3], "events_bytes": r[4], "xmin_age": r[5] or 0, "published": published[0],
                "parts": r[6], "autovac": int(r[7] or 0)}

    pub = threading.Thread(target=publisher, daemon=True)
    holder = None
    start = time.monotonic()
    pub.start()
    samples = [sample()]
    windows = []
    print(f"{'t(s)':>5} {'phase':<7}{'published/s':>12}{'delivered/s':>12}{'outbox max':>12}{'outbox end':>12}"
          f"{'dead max':>10}{'pending max':>12}{'xmin age':>10}{'events tbl':>11}{'load':>6}"
          f"  partitions 0/1/2 kB at end, autovacuum+analyze runs")
    next_window = start + args.window
    end = start + args.normal + args.held
    held_from = start + args.normal
    w_first = samples[0]
    while time.monotonic() < end:
        time.sleep(5 - ((time.monotonic() - start) % 5))
        if holder is None and time.monotonic() >= held_from - 0.1:
            holder = psycopg.connect(args.conninfo, autocommit=False)
            xid = holder.execute("SELECT txid_current()").fetchone()[0]
            print(f"      -- transaction {xid} opened and held (BEGIN; SELECT txid_current(); ...)", flush=True)
        s = sample()
        samples.append(s)
        if s["t"] >= next_window - 0.5:
            ws = [x for x in samples if x["t"] > w_first["t"]]
            dt = s["t"] - w_first["t"]
            phase = "held" if holder is not None and w_first["t"] >= held_from - 1 else "normal"
            w = {"t": s["t"] - start, "phase": phase,
                 "published_rate": (s["published"] - w_first["published"]) / dt,
                 "delivered_rate": (s["delivered"] - w_first["delivered"]) / dt,
                 "outbox_max": max(x["outbox_bytes"] for x in ws), "outbox_end": s["outbox_bytes"],
                 "dead_max": max(x["dead"] for x in ws), "pending_max": max(x["pending"] for x in ws),
                 "xmin_age": s["xmin_age"], "events_bytes": s["events_bytes"], "load": loadavg(),
                 "parts": s["parts"], "autovac": s["autovac"]}
            windows.append(w)
            print(f"{w['t']:>5.0f} {phase:<7}{w['published_rate']:>12.0f}{w['delivered_rate']:>12.0f}"
                  f"{w['outbox_max'] / 1024:>10.0f}kB{w['outbox_end'] / 1024:>10.0f}kB{w['dead_max']:>10}"
                  f"{w['pending_max']:>12}{w['xmin_age']:>10}{w['events_bytes'] / 1048576:>9.1f}MB{w['load']:>6}"
                  f"  {w['parts']}  {w['autovac']}",
                  flush=True)
            w_first = s
            next_window += args.window
    stop.set()
    pub.join()
    if holder is not None:
        holder.rollback()
        holder.close()
    mon.close()

    normal = [w for w in windows if w["phase"] == "normal"]
    held = [w for w in windows if w["phase"] == "held"]
    base = statistics.median(w["delivered_rate"] for w in normal) if normal else float("nan")
    worst = min((w["delivered_rate"] for w in held), default=float("nan"))
    print()
    print(f"normal delivery (median of {len(normal)} windows): {base:.0f} events/s;"
          f" held-xmin windows: min {worst:.0f} events/s = {worst / base:.2f} of normal (target >= 0.80)")
    if held:
        third = max(1, len(held) // 3)
        first = max(w["outbox_max"] for w in held[:third])
        last = max(w["outbox_max"] for w in held[-third:])
        hmax = max(w["outbox_max"] for w in held)
        nmax = max((w["outbox_max"] for w in normal), default=0)
        print(f"outbox size max: normal {nmax / 1024:.0f} kB; held {hmax / 1024:.0f} kB"
              f" ({hmax / nmax:.1f}x normal); first third of the held phase {first / 1024:.0f} kB, last third"
              f" {last / 1024:.0f} kB ({'bounded' if last <= 2 * first else 'GROWING'})")
    print(f"publisher max lag behind schedule: {lag[0] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
