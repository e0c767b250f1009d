#!/usr/bin/env bash
# celerysalt demo: a throwaway PostgreSQL with the extension preloaded,
# events published from SQL, and what happened to them.  With a RabbitMQ
# reachable they are confirmed by the broker; as no service subscribes to
# the demo's topics, RabbitMQ returns them and they wait in
# celerysalt_unroutable until one does.  Without a broker they wait in the
# outbox (and would be delivered once it comes back).  Run as root.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/test/lib/setup.sh"

setup_machine || true          # a missing broker is part of the demo
build_and_install

DEMO=$(mktemp -d /tmp/celerysalt-demo.XXXXXX)
chown postgres:postgres "$DEMO"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pg() { runuser -u postgres -- "$@"; }
stop() { pg /usr/lib/postgresql/15/bin/pg_ctl -D "$DEMO/data" -m fast stop >/dev/null 2>&1 || true; rm -rf "$DEMO"; }
trap stop EXIT

pg /usr/lib/postgresql/15/bin/initdb -D "$DEMO/data" -A trust >/dev/null
cat >> "$DEMO/data/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DEMO'
shared_preload_libraries = 'celerysalt'
celerysalt.broker_url = '${CELERYSALT_BROKER_URL:-amqp://guest:guest@127.0.0.1:5672//}'
CONF
pg /usr/lib/postgresql/15/bin/pg_ctl -D "$DEMO/data" -l "$DEMO/server.log" -w start >/dev/null
psql() { command psql -X -h "$DEMO" -p "$port" -U postgres -d postgres "$@"; }

echo "== a throwaway cluster on port $port, celerysalt preloaded"
psql -q -c "CREATE EXTENSION celerysalt"

echo "== publish three events in one transaction, and one in a transaction that rolls back"
psql -q <<'SQL'
BEGIN;
SELECT celerysalt_publish('demo.user.created', '{"user_id": 42, "email": "ada@example.com"}', 'v1') AS event_id;
SELECT celerysalt_publish('demo.user.renamed', '{"user_id": 42, "name": "Zoë ☃ 😀"}', 'v1', 'req-7f3a') AS event_id;
SELECT celerysalt_publish('demo.order.paid', jsonb_build_object('order_id', 7, 'amount', 19.90, 'items', jsonb_build_array(1, 2, 3))) AS event_id;
COMMIT;
BEGIN;
SELECT celerysalt_publish('demo.never.sent', '{"x": 1}');
ROLLBACK;
SQL

for _ in $(seq 1 30); do
	[ "$(psql -Atc "SELECT pending = 0 FROM celerysalt_status")" = t ] && break
	sleep 0.2
done

echo "== delivery status"
psql -x -c "SELECT worker_pid IS NOT NULL AS worker_running, broker_connected, broker, pending, delivered_total, unroutable, returned_total, last_error FROM celerysalt_status"
if [ "$(psql -Atc "SELECT pending FROM celerysalt_status")" = 0 ]; then
	echo "== confirmed by the broker and received by a queue (celerysalt_events):"
	psql -c "SELECT id, topic, version, correlation_id, payload, delivered_at - enqueued_at AS latency FROM celerysalt_events ORDER BY event_id"
	echo "== confirmed by the broker, but no queue is bound for their topics yet: they wait in"
	echo "   celerysalt_unroutable and are sent again when a subscriber registers, and every minute"
	psql -c "SELECT topic, events, oldest_enqueued_at, last_returned_at FROM celerysalt_unroutable_topics ORDER BY topic"
else
	echo "== the broker is not reachable: the events wait in the outbox, nothing is lost"
	psql -c "SELECT id, topic, version, payload, enqueued_at FROM _celerysalt_outbox ORDER BY event_id"
fi
echo "== the rolled-back event was never sent:"
psql -c "SELECT count(*) AS never_sent FROM celerysalt_events WHERE topic = 'demo.never.sent'"
