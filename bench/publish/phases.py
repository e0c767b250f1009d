"""Where the delivery worker's wall time goes: samples the worker's pg_stat_activity entry
(the worker reports "celerysalt: reading outbox" / "publishing" / "finishing batch") every
~0.5 ms for SECONDS and prints the share of samples per phase.  "idle" covers building the
messages, outbox maintenance and waiting for a wake-up.  Diagnosis only: the sampling
backend costs CPU itself, so do not combine it with the figures of run.sh.

  python phases.py CONNINFO SECONDS
"""
import collections
import sys
import time

import psycopg

conninfo, seconds = sys.argv[1], float(sys.argv[2])
with psycopg.connect(conninfo, autocommit=True) as c:
    pid = c.execute("SELECT worker_pid FROM _celerysalt_worker_state()").fetchone()[0]
    cur = c.cursor()
    counts = collections.Counter()
    end = time.monotonic() + seconds
    q = "SELECT coalesce(nullif(state, 'idle') || ': ' || query, 'idle') FROM pg_stat_activity WHERE pid = %s"
    cur.execute(q, (pid,), prepare=True)
    while time.monotonic() < end:
        cur.execute(q, (pid,), prepare=True)
        counts[cur.fetchone()[0]] += 1
        time.sleep(0.0005)
total = sum(counts.values())
for k, v in counts.most_common():
    print(f"{100.0 * v / total:6.1f}%  {k}")
print(f"{total} samples")
