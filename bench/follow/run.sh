#!/usr/bin/env bash
# Follow-action trigger benchmark, one command (as root):
#   bash bench/follow/run.sh
# UPDATE of a status column on a table whose rows each carry 5 follow-action rules that
# do not match, in one run on one throwaway cluster: no trigger, no-op C triggers (BEFORE row,
# AFTER row, statement with transition tables: the floor of each trigger design), the
# celerysalt trigger, and a PL/pgSQL trigger with the same semantics.  Rounds are
# interleaved (the order rotates each round) and each timed UPDATE follows a VACUUM of its
# table, so all variants see the same conditions; the median of the rounds is reported.
# Environment: BENCH_ROWS (100000), BENCH_ROUNDS (9), BENCH_PLPGSQL_ROUNDS (3: the PL/pgSQL
# variant is ~15x slower, it runs in the first rounds only), BENCH_CPU=1 (fsync, full-page
# writes and WAL beyond "minimal" off: measures CPU cost with little I/O noise), BENCH_NO_BUILD=1
# (use the installed extension), PGBIN (server binaries; default: pg_config --bindir), BENCH_KEEP=1.
# Then a firing workload: BENCH_FIRE_ROWS (20000) rows whose one rule matches every UPDATE, each
# UPDATE enqueueing one event per row (rolled back), against the same events enqueued by
# celerysalt_publish() from SQL in an UPDATE ... RETURNING of an identical table without trigger.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PGBIN=${PGBIN:-$("$PG_CONFIG" --bindir)}
ROWS=${BENCH_ROWS:-100000}
ROUNDS=${BENCH_ROUNDS:-9}
FIRE_ROWS=${BENCH_FIRE_ROWS:-20000}
PLPGSQL_ROUNDS=${BENCH_PLPGSQL_ROUNDS:-3}

if [ "$(id -u)" -ne 0 ]; then
	echo "run this as root (initdb runs as user postgres through runuser)" >&2
	exit 1
fi
if [ -z "${BENCH_NO_BUILD:-}" ]; then
	make -s -C "$REPO" -j2 PG_CONFIG="$PG_CONFIG" >/dev/null
	make -s -C "$REPO" install PG_CONFIG="$PG_CONFIG" >/dev/null
fi

WORK=$(mktemp -d /tmp/celerysalt-bench-follow.XXXXXX)
chown postgres:postgres "$WORK"
as_pg() { runuser -u postgres -- "$@"; }
cleanup() {
	as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -m fast -w stop >/dev/null 2>&1 || true
	[ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

gcc -O2 -fPIC -shared -I"$("$PG_CONFIG" --includedir-server)" -o "$WORK/noop_trigger.so" "$HERE/noop_trigger.c"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg "$PGBIN/initdb" -D "$WORK/data" -U postgres --auth=trust --no-sync >/dev/null
cat >> "$WORK/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$WORK'
shared_preload_libraries = 'celerysalt'
# no event is published in the timed runs; nothing to deliver
celerysalt.broker_url = 'amqp://guest:guest@127.0.0.1:1/%2F'
shared_buffers = 1GB
max_wal_size = 8GB
checkpoint_timeout = 1h
autovacuum = off
jit = off
CONF
if [ -n "${BENCH_CPU:-}" ]; then
	cat >> "$WORK/data/postgresql.conf" <<CONF
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = minimal
max_wal_senders = 0
CONF
fi
as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/postgres.log" -w start >/dev/null
PSQL=(as_pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$WORK" -p "$PORT" -d postgres)

echo "PostgreSQL $("$PGBIN/postgres" -V | awk '{print $3}'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "setup: $ROWS rows x 6 tables, 5 rules per row; $ROUNDS rounds ($PLPGSQL_ROUNDS for PL/pgSQL)${BENCH_CPU:+; BENCH_CPU: fsync/full_page_writes off, wal_level minimal}"
"${PSQL[@]}" -v rows="$ROWS" -v noop_so="$WORK/noop_trigger.so" -f "$HERE/setup.sql"

variants=(none noop noop_after noop_stmt c plpgsql)
nvariants=${#variants[@]}
script="$WORK/rounds.sql"
: > "$script"
for ((r = 0; r < ROUNDS; r++)); do
	for ((k = 0; k < nvariants; k++)); do
		v=${variants[$(((k + r) % nvariants))]}
		if [ "$v" = plpgsql ] && [ "$r" -ge "$PLPGSQL_ROUNDS" ]; then continue; fi
		cat >> "$script" <<SQL
VACUUM bench_$v;
\\echo @@ $v
\\timing on
UPDATE bench_$v SET status = CASE WHEN status = 'open' THEN 'pending' ELSE 'open' END;
\\timing off
SQL
	done
done
"${PSQL[@]}" -f "$script" > "$WORK/timings.txt"

# The rules never matched: nothing was published by the C or the PL/pgSQL trigger.
# Then one UPDATE that matches (status -> cancelled on 1,000 rows), rolled back, as a
# cross-check that both triggers implement the same thing.
"${PSQL[@]}" <<'SQL'
\pset footer off
SELECT count(*) AS events_published_during_timed_runs FROM _celerysalt_outbox;
BEGIN;
UPDATE bench_c SET status = 'cancelled' WHERE id <= 1000;
UPDATE bench_plpgsql SET status = 'cancelled' WHERE id <= 1000;
SELECT (SELECT count(*) FROM _celerysalt_outbox WHERE payload->>'table' = 'public.bench_c') AS c_events,
       (SELECT count(*) FROM _celerysalt_outbox WHERE payload->>'table' = 'public.bench_plpgsql') AS plpgsql_events,
       (SELECT count(*) FROM bench_c WHERE id <= 1000 AND jsonb_array_length(on_change_rules) = 4) AS c_rules_removed,
       (SELECT count(*) FROM bench_plpgsql WHERE id <= 1000 AND jsonb_array_length(on_change_rules) = 4) AS plpgsql_rules_removed,
       (SELECT count(*) FROM _celerysalt_outbox o1 JOIN _celerysalt_outbox o2
            ON o1.payload->>'table' = 'public.bench_c' AND o2.payload->>'table' = 'public.bench_plpgsql'
           AND o1.payload - 'table' = o2.payload - 'table') AS identical_payloads;
ROLLBACK;
SQL

# Firing: every row's rule matches; each timed UPDATE enqueues FIRE_ROWS events and rolls back.
"${PSQL[@]}" -v rows="$FIRE_ROWS" <<'SQL'
CREATE TABLE bench_fire (id int PRIMARY KEY, status text NOT NULL, on_change_rules jsonb NOT NULL);
INSERT INTO bench_fire
SELECT i, 'open', jsonb_build_array(celerysalt_follow_action_rule('status', 'updated', 'bench.fire',
           payload => '{"id": {"$pk": true}, "status": {"$new": "status"}}'))
  FROM generate_series(1, :rows) i;
CREATE TABLE bench_fire_sql (LIKE bench_fire INCLUDING ALL);
INSERT INTO bench_fire_sql SELECT * FROM bench_fire;
SELECT celerysalt_attach_follow_actions('bench_fire', adopt_existing_rules => true);
VACUUM ANALYZE bench_fire, bench_fire_sql;
SQL
fire_script="$WORK/fire.sql"
: > "$fire_script"
for ((r = 0; r < ROUNDS; r++)); do
	for v in trigger sql; do
		[ $((r % 2)) = 1 ] && v=$([ "$v" = trigger ] && echo sql || echo trigger)
		if [ "$v" = trigger ]; then
			stmt="UPDATE bench_fire SET status = 'closed'"
		else
			stmt="WITH u AS (UPDATE bench_fire_sql SET status = 'closed' RETURNING id, status) SELECT count(celerysalt_publish('bench.fire', jsonb_build_object('id', id, 'status', status))) FROM u"
		fi
		cat >> "$fire_script" <<SQL
VACUUM bench_fire, bench_fire_sql;
BEGIN;
\\echo @@ $v
\\timing on
$stmt;
\\timing off
ROLLBACK;
SQL
	done
done
"${PSQL[@]}" -f "$fire_script" > "$WORK/fire_timings.txt"

python3 - "$WORK/timings.txt" "$ROWS" "$WORK/fire_timings.txt" "$FIRE_ROWS" <<'PY'
import re, statistics, sys


def timings(path):
    """The psql \\timing of each statement, per variant named by the "@@ variant" line before it."""
    out, current = {}, None
    for line in open(path):
        m = re.match(r"@@ (\w+)", line)
        if m:
            current = m.group(1)
            continue
        m = re.match(r"Time: ([\d.]+) ms", line)
        if m and current:
            out.setdefault(current, []).append(float(m.group(1)))
            current = None
    return out


rows = int(sys.argv[2])
times = timings(sys.argv[1])
med = {v: statistics.median(t) for v, t in times.items()}
rate = {v: rows / (med[v] / 1000.0) for v in med}
names = {"none": "no trigger", "noop": "no-op C trigger (BEFORE row)",
         "noop_after": "no-op C trigger (AFTER row)",
         "noop_stmt": "no-op C trigger (statement, transition tables)",
         "c": "celerysalt follow-action trigger", "plpgsql": "PL/pgSQL trigger, same semantics"}
print()
print(f"{'variant':48} {'median ms':>10} {'min ms':>8} {'rows/s':>10} {'vs none':>8}   all rounds (ms)")
for v in ("none", "noop", "noop_after", "noop_stmt", "c", "plpgsql"):
    print(f"{names[v]:48} {med[v]:10.1f} {min(times[v]):8.1f} {rate[v]:10.0f} {rate[v] / rate['none']:8.3f}   "
          + " ".join(f"{t:.0f}" for t in times[v]))
over = 1 - rate["c"] / rate["none"]
print()
print(f"celerysalt trigger: overhead {over * 100:.1f}% of the trigger-free rate (target <= 10%); "
      f"{rate['c'] / rate['plpgsql']:.1f}x the PL/pgSQL trigger's rate (target >= 3x)")
print(f"row-trigger call alone (no-op C BEFORE row trigger): {(1 - rate['noop'] / rate['none']) * 100:.1f}%; "
      f"rule evaluation on top of it: {(med['c'] - med['noop']) * 1000 / rows:.2f} us per row")
mins = {v: min(t) for v, t in times.items()}
print(f"overhead by the fastest round of each variant (less sensitive to a noisy machine): celerysalt "
      f"{(1 - mins['none'] / mins['c']) * 100:.1f}%, no-op C BEFORE row trigger {(1 - mins['none'] / mins['noop']) * 100:.1f}%")
print(f"floors of the other designs: no-op AFTER row trigger {(1 - rate['noop_after'] / rate['none']) * 100:.1f}%, "
      f"no-op statement trigger with transition tables {(1 - rate['noop_stmt'] / rate['none']) * 100:.1f}%")

fire_rows = int(sys.argv[4])
fire = timings(sys.argv[3])
fmed = {v: statistics.median(t) for v, t in fire.items()}
print()
print(f"firing: {fire_rows} rows, one matching rule each, one event per row (rolled back)")
for v, label in (("trigger", "UPDATE, follow-action trigger enqueues"), ("sql", "WITH (UPDATE ... RETURNING) + celerysalt_publish()")):
    print(f"  {label:46} median {fmed[v]:8.1f} ms  {fire_rows / (fmed[v] / 1000):9.0f} events/s  "
          f"{fmed[v] * 1000 / fire_rows:6.2f} us/event   rounds " + " ".join(f"{t:.0f}" for t in fire[v]))
print(f"  trigger vs publishing from SQL: {fmed['sql'] / fmed['trigger']:.2f}x the rate")
PY
