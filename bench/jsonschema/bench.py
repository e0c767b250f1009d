#!/usr/bin/env python3
"""JSON Schema validation benchmark: celerysalt_validate() vs a trivial
jsonb predicate vs python-jsonschema, over the same stored payloads.

Setup (see docs/benchmarks-jsonschema.md):
    /usr/bin/python3 -m venv /tmp/jsvenv
    /tmp/jsvenv/bin/pip install jsonschema psycopg2-binary
    /tmp/jsvenv/bin/python bench/jsonschema/bench.py --dsn "host=... port=... dbname=..."

The database needs the celerysalt extension installed (CREATE EXTENSION is
done here).  Rows: 1,000,000 (--rows), about 1% of them invalid.  Every SQL
query runs --repeat times single-threaded (no parallel workers, like the
Python side) and the best time is reported.
"""
import argparse
import json
import os
import time

import psycopg2
from jsonschema import Draft202012Validator, FormatChecker

HERE = os.path.dirname(os.path.abspath(__file__))

GENERATE = """
DROP TABLE IF EXISTS jsonschema_bench;
SELECT setseed(0.42);
CREATE TABLE jsonschema_bench AS
SELECT i, jsonb_build_object(
    'id', gen_random_uuid(),
    'created_at', to_char(timestamp '2024-01-01 00:00:00' + i * interval '17 seconds',
                          'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'status', (ARRAY['pending','paid','shipped','cancelled'])[1 + i % 4],
    'customer', jsonb_build_object(
        'id', gen_random_uuid(),
        'name', 'Customer ' || i,
        'email', 'user' || i || '@example.com',
        'phone', CASE WHEN i % 3 = 0 THEN NULL ELSE '+1-555-' || lpad((i % 10000)::text, 4, '0') END),
    'shipping_address', jsonb_build_object(
        'street', (i % 999) || ' Main Street',
        'city', 'Springfield',
        'zip', lpad((i % 100000)::text, 5, '0'),
        'country', (ARRAY['US','DE','FR','GB','JP'])[1 + i % 5]),
    'billing_address', CASE WHEN i % 2 = 0 THEN NULL ELSE jsonb_build_object(
        'street', (i % 777) || ' Oak Avenue',
        'city', 'Shelbyville',
        'zip', lpad((i % 99991)::text, 5, '0'),
        'country', (ARRAY['US','DE','FR','GB','JP'])[1 + i % 3]) END,
    'items', (SELECT jsonb_agg(jsonb_build_object(
                  'sku', 'ABC-' || lpad(((i + k) % 10000)::text, 4, '0'),
                  'quantity', CASE WHEN i % 100 = 0 THEN 0 ELSE 1 + (i + k) % 5 END,
                  'unit_price', round((random() * 100)::numeric, 2)))
                FROM generate_series(1, 1 + i % 3) AS k),
    'total', round((random() * 500)::numeric, 2),
    'currency', (ARRAY['USD','EUR','GBP'])[1 + i % 3],
    'notes', CASE WHEN i % 5 = 0 THEN 'leave at the door' ELSE NULL END,
    'priority', CASE WHEN i % 4 = 0 THEN NULL ELSE i % 10 END,
    'tags', CASE WHEN i % 2 = 0 THEN '["gift", "express"]'::jsonb ELSE '[]'::jsonb END,
    'coupon', NULL,
    'metadata', jsonb_build_object('source', 'web', 'campaign', 'c' || (i % 50)),
    'version', 1) AS payload
FROM generate_series(1, %(rows)s) AS i;
"""


def best_of(cur, sql, params, repeat):
    best = None
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        cur.execute(sql, params)
        result = cur.fetchone()[0]
        elapsed = time.perf_counter() - t0
        best = elapsed if best is None or elapsed < best else best
    return best, result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", default="")
    ap.add_argument("--rows", type=int, default=1000000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--skip-python", action="store_true")
    ap.add_argument("--python-rows", type=int, default=0,
                    help="validate only the first N rows in Python and extrapolate "
                         "(python-jsonschema needs about 1 ms per row)")
    ap.add_argument("--compare", metavar="FUNCTION", action="append", default=[],
                    help="also time FUNCTION(schema, payload), e.g. a previous build's "
                         "celerysalt_validate created in another schema (repeatable)")
    args = ap.parse_args()

    with open(os.path.join(HERE, "order_schema.json")) as f:
        schema_text = f.read()
    schema = json.loads(schema_text)

    conn = psycopg2.connect(args.dsn)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM pg_proc WHERE proname = 'celerysalt_validate'")
    if cur.fetchone()[0] == 0:
        cur.execute("CREATE EXTENSION celerysalt")
    cur.execute("SELECT count(*) FROM pg_class WHERE relname = 'jsonschema_bench'")
    exists = cur.fetchone()[0] == 1
    if exists:
        cur.execute("SELECT count(*) FROM jsonschema_bench")
        exists = cur.fetchone()[0] == args.rows
    if args.regenerate or not exists:
        t0 = time.perf_counter()
        cur.execute(GENERATE.replace("%(rows)s", str(int(args.rows))))
        cur.execute("VACUUM ANALYZE jsonschema_bench")
        print(f"generated {args.rows} rows in {time.perf_counter() - t0:.1f}s")
    cur.execute("SELECT pg_size_pretty(pg_table_size('jsonschema_bench')), "
                "avg(pg_column_size(payload))::int FROM jsonschema_bench")
    size, avg = cur.fetchone()
    cur.execute("SET max_parallel_workers_per_gather = 0")
    cur.execute("SET jit = off")
    cur.execute("SELECT count(*) FROM jsonschema_bench")  # warm the cache

    rows = []
    t, n = best_of(cur, "SELECT count(*) FROM jsonschema_bench", None, args.repeat)
    rows.append(("count(*), no predicate", t, n))
    t_trivial, n = best_of(cur, "SELECT count(*) FROM jsonschema_bench WHERE payload ? 'id'",
                           None, args.repeat)
    rows.append(("WHERE payload ? 'id'", t_trivial, n))
    t_val, n_valid = best_of(cur, "SELECT count(*) FROM jsonschema_bench "
                             "WHERE celerysalt_validate(%s::jsonb, payload)",
                             (schema_text,), args.repeat)
    rows.append(("WHERE celerysalt_validate(s, payload)", t_val, n_valid))
    t_fmt, n = best_of(cur, "SELECT count(*) FROM jsonschema_bench "
                       "WHERE celerysalt_validate(%s::jsonb, payload, true)",
                       (schema_text,), args.repeat)
    rows.append(("... (s, payload, true): formats asserted", t_fmt, n))
    for fn in args.compare:
        # a fresh connection: the other build's library is loaded alone
        c2 = psycopg2.connect(args.dsn)
        c2.autocommit = True
        cur2 = c2.cursor()
        cur2.execute("SET max_parallel_workers_per_gather = 0")
        cur2.execute("SET jit = off")
        t, n = best_of(cur2, f"SELECT count(*) FROM jsonschema_bench WHERE {fn}(%s::jsonb, payload)",
                       (schema_text,), args.repeat)
        rows.append((f"WHERE {fn}(s, payload)", t, n))
        c2.close()

    t_py = None
    if not args.skip_python:
        t0 = time.perf_counter()
        py_rows = args.python_rows if 0 < args.python_rows < args.rows else args.rows
        cur.execute("SELECT payload::text FROM jsonschema_bench WHERE i <= %s", (py_rows,))
        texts = [r[0] for r in cur.fetchall()]
        scale = args.rows / py_rows
        t_fetch = time.perf_counter() - t0
        t0 = time.perf_counter()
        docs = [json.loads(s) for s in texts]
        t_parse = time.perf_counter() - t0
        del texts
        validator = Draft202012Validator(schema)
        t0 = time.perf_counter()
        n_py = sum(1 for d in docs if validator.is_valid(d))
        t_py = (time.perf_counter() - t0) * scale
        if scale == 1:
            rows.append(("python-jsonschema is_valid (validation only)", t_py, n_py))
        else:
            rows.append((f"python-jsonschema is_valid (extrapolated from {py_rows} rows)", t_py, None))
        fvalidator = Draft202012Validator(schema, format_checker=FormatChecker())
        sample = docs[:100000]
        t0 = time.perf_counter()
        n_fmt = sum(1 for d in sample if fvalidator.is_valid(d))
        t_pyfmt = (time.perf_counter() - t0) * args.rows / len(sample)
        rows.append((f"python-jsonschema + FormatChecker (extrapolated from {len(sample)})", t_pyfmt, None))
        print(f"(python: fetch {t_fetch:.1f}s and json.loads {t_parse:.1f}s not counted)")

    print(f"\n{args.rows} rows, table {size}, avg payload {avg} bytes, schema {len(schema_text)} bytes\n")
    print(f"{'query':62} {'seconds':>8} {'ns/row':>8} {'matching':>9}")
    for name, t, n in rows:
        print(f"{name:62} {t:8.3f} {t * 1e9 / args.rows:8.0f} {'' if n is None else n:>9}")
    print()
    print(f"celerysalt_validate vs payload ? 'id':           {t_val / t_trivial:5.2f}x the time (target <= 3x)")
    print(f"celerysalt_validate minus scan, per row:           {(t_val - t_trivial) * 1e9 / args.rows:5.0f} ns")
    if t_py:
        print(f"python-jsonschema vs celerysalt_validate:         {t_py / t_val:5.1f}x slower (target >= 25x)")
        if scale == 1 and n_py != n_valid:
            print(f"WARNING: python-jsonschema found {n_py} valid rows, celerysalt {n_valid}")


if __name__ == "__main__":
    main()
