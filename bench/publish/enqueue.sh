#!/usr/bin/env bash
# CPU instructions a publishing backend spends per event, counted by callgrind (repeatable whatever
# else the machine is doing), beside two floors measured in the same run:
#   floor 1: a multi-row INSERT ... SELECT of the same rows into a plain table with the outbox's columns
#            and index (one plan for every row: the heap and index work any outbox needs);
#   floor 2: one INSERT statement per row from a PL/pgSQL loop into the same table (what an outbox
#            written by a SQL or PL/pgSQL function costs);
#   celerysalt_publish with the registry off (no schema registered for the topic) and on (a registered
#            schema validated on every publish), and with a W3C traceparent set (docs/tracing.md).
# Each figure is beyond building the payload (measured alone and subtracted).  One command, as root:
#   bash bench/publish/enqueue.sh            (BENCH_NO_BUILD=1 to use what is installed; BENCH_EVENTS=5000)
# Runs PostgreSQL in single-user mode under valgrind on a throwaway data directory.
. "$(dirname "$0")/lib.sh"

bench_require_root
command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
bench_build
N=${BENCH_EVENTS:-5000}
D=$(mktemp -d /var/tmp/celerysalt-bench-enqueue.XXXXXX)
chown postgres "$D"
trap 'rm -rf "$D"' EXIT
runuser -u postgres -- "$PGBIN/initdb" -D "$D/data" -A trust >/dev/null
echo "shared_preload_libraries = 'celerysalt'" >>"$D/data/postgresql.conf"

single() {   # SQL on stdin of a single-user backend, no valgrind (one statement per line)
	runuser -u postgres -- "$PGBIN/postgres" --single -D "$D/data" postgres >/dev/null 2>&1
}
count() {    # instructions of a single-user backend running $1
	printf '%s\n' "$1" | runuser -u postgres -- valgrind --tool=callgrind --callgrind-out-file="$D/cg.out" \
		"$PGBIN/postgres" --single -D "$D/data" postgres >/dev/null 2>&1
	callgrind_annotate "$D/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}
single <<'SQL'
CREATE EXTENSION celerysalt;
CREATE TABLE floor_outbox (slot smallint NOT NULL, event_id bigserial NOT NULL, id uuid NOT NULL, topic text NOT NULL, payload jsonb NOT NULL, version text, correlation_id text, enqueued_at timestamptz NOT NULL, traceparent text, tracestate text, txid xid8 NOT NULL DEFAULT pg_current_xact_id(), delivered_at timestamptz);
CREATE INDEX ON floor_outbox (txid, event_id);
SELECT celerysalt_register_schema('bench.registered', '{"type": "object", "required": ["i", "name"], "properties": {"i": {"type": "integer"}, "name": {"type": "string"}, "plan": {"enum": ["free", "pro"]}}}'::jsonb, version => 'v1');
SQL
PAYLOAD="jsonb_build_object('i', i, 'name', 'Ada Lovelace', 'plan', 'pro')"
base=$(count "SELECT count($PAYLOAD) FROM generate_series(1, $N) i;")
floor1=$(count "INSERT INTO floor_outbox (slot, id, topic, payload, version, enqueued_at) SELECT 0, gen_random_uuid(), 'bench.x', $PAYLOAD, 'v1', clock_timestamp() FROM generate_series(1, $N) i;")
floor2=$(count "DO \$\$ BEGIN FOR i IN 1..$N LOOP INSERT INTO floor_outbox (slot, id, topic, payload, version, enqueued_at) VALUES (0, gen_random_uuid(), 'bench.x', $PAYLOAD, 'v1', clock_timestamp()); END LOOP; END \$\$;")
plain=$(count "SELECT count(celerysalt_publish('bench.x', $PAYLOAD, 'v1')) FROM generate_series(1, $N) i;")
registered=$(count "SELECT count(celerysalt_publish('bench.registered', $PAYLOAD, 'v1')) FROM generate_series(1, $N) i;")
traced=$(count "SET celerysalt.traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'; SELECT count(celerysalt_publish('bench.x', $PAYLOAD, 'v1')) FROM generate_series(1, $N) i;")
per() { echo $(( ($1 - base) / N )); }
echo
echo "== CPU instructions per event in the publishing backend (callgrind, $N events, beyond building the payload)"
printf '%-64s %10s %8s\n' "" "instr." "/floor 1"
for row in "floor 1: INSERT ... SELECT into a plain table (one plan)|$floor1" \
	"floor 2: one INSERT per row from PL/pgSQL|$floor2" \
	"celerysalt_publish, topic without a schema|$plain" \
	"celerysalt_publish, registered schema validated|$registered" \
	"celerysalt_publish, no schema, celerysalt.traceparent set|$traced"; do
	name=${row%|*}; total=${row#*|}
	awk -v n="$name" -v v="$(per "$total")" -v f="$(per "$floor1")" 'BEGIN { printf "%-64s %10d %8.2f\n", n, v, v / f }'
done
