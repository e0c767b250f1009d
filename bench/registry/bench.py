"""What the PostgreSQL schema registry adds to a celery-salt service, next to
celery-salt's in-memory registry, measured in the same run and process.

  import      defining N @event classes (celery-salt builds the pydantic
              model, its model_json_schema() and registers it at import):
              time per class, first registration (new rows) and a restart
              (the same classes again: "created": false).  The Postgres
              column includes opening the connection once.
  get_schema  one call (what @subscribe does at import): latest and an
              explicit version; in-memory vs a round trip to
              celerysalt_get_schema.
  re-register what celery-salt does before every publish()/call()
              (ensure_schema_registered): the adapter answers from its
              per-process memory after the first time.

A throwaway cluster (test/integration/rig.py), reached over its Unix socket
as a plain role holding celerysalt_admin.  Run by bench/registry/run.sh.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "test" / "integration"))

import rig  # noqa: E402
from celery_salt import event  # noqa: E402
from celery_salt.core import event_utils  # noqa: E402
from celery_salt.core.decorators import _class_to_pydantic_model  # noqa: E402
from celery_salt.core.registry import InMemorySchemaRegistry, set_schema_registry  # noqa: E402

from celerysalt_pg.registry import PostgresSchemaRegistry  # noqa: E402

N_CLASSES = int(os.environ.get("BENCH_REGISTRY_CLASSES", "200"))
N_CALLS = int(os.environ.get("BENCH_REGISTRY_CALLS", "2000"))
ROUNDS = 3


def define_classes(prefix: str, n: int) -> None:
    for i in range(n):
        cls = type(f"Evt{i}", (), {"__annotations__": {"order_id": int, "amount": float, "note": str},
                                   "note": ""})
        event(f"{prefix}.e{i}", version="v1")(cls)


def per_class(make_registry, prefix: str) -> tuple[float, float]:
    """Seconds per class: first import (new), then a restart (same classes, a new registry object)."""
    set_schema_registry(make_registry())
    t0 = time.perf_counter()
    define_classes(prefix, N_CLASSES)
    first = (time.perf_counter() - t0) / N_CLASSES
    set_schema_registry(make_registry())      # a restarted process (in memory: empty again)
    t0 = time.perf_counter()
    define_classes(prefix, N_CLASSES)
    again = (time.perf_counter() - t0) / N_CLASSES
    return first, again


def per_call(fn, n: int) -> float:
    fn()                        # warm (connects)
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs"


def main() -> None:
    base = Path(os.environ.get("BENCH_DIR", "/tmp/celerysalt-bench-registry"))
    pg = rig.PgCluster(base / "pg", conf={"celerysalt.broker_url": "amqp://guest:guest@127.0.0.1:1/%2F"})
    pg.init().start()
    try:
        role = f"bench_registry_{uuid.uuid4().hex[:6]}"
        pg.execute(f'CREATE ROLE "{role}" LOGIN IN ROLE celerysalt_admin')
        dsn = pg.dsn.replace("user=postgres", f"user={role}")

        def pg_registry() -> PostgresSchemaRegistry:
            return PostgresSchemaRegistry(dsn, service="bench")

        rows = {"import, new": ([], []), "import, restart": ([], []), "get_schema latest": ([], []),
                "get_schema v1": ([], []), "re-register (publish)": ([], [])}
        for r in range(ROUNDS):
            for col, make in ((0, InMemorySchemaRegistry), (1, pg_registry)):
                prefix = f"bench.{r}.{col}.{uuid.uuid4().hex[:6]}"
                first, again = per_class(make, prefix)
                rows["import, new"][col].append(first)
                rows["import, restart"][col].append(again)
                reg = make()
                set_schema_registry(reg)
                define_classes(prefix, 1)
                topic = f"{prefix}.e0"
                rows["get_schema latest"][col].append(per_call(lambda reg=reg, topic=topic: reg.get_schema(topic), N_CALLS))
                rows["get_schema v1"][col].append(per_call(lambda reg=reg, topic=topic: reg.get_schema(topic, "v1"), N_CALLS))
                cls = type("Evt0", (), {"__annotations__": {"order_id": int, "amount": float, "note": str},
                                        "note": ""})
                m = _class_to_pydantic_model(cls)
                rows["re-register (publish)"][col].append(per_call(
                    lambda topic=topic, m=m, cls=cls: event_utils.ensure_schema_registered(topic, "v1", m, cls),
                    N_CALLS))
                if isinstance(reg, PostgresSchemaRegistry):
                    reg.close()

        server = pg.scalar("SHOW server_version")
        print(f"\nschema registry, celery-salt 1.6.0, PostgreSQL {server} (Unix socket, role with "
              f"celerysalt_admin), {N_CLASSES} classes / {N_CALLS} calls, median of {ROUNDS} rounds\n")
        print(f"{'':24} {'in-memory':>14} {'PostgreSQL':>14} {'added':>14}")
        for name, (mem, pgv) in rows.items():
            a, b = statistics.median(mem), statistics.median(pgv)
            print(f"{name:24} {us(a):>14} {us(b):>14} {us(b - a):>14}")
        print("\n(import rows: per event class; others: per call)")
    finally:
        pg.destroy()


if __name__ == "__main__":
    main()
