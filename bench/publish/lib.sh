# Shared by bench/publish/run.sh and bench/publish/bloat.sh: build and install the
# extension, a venv with the Python baselines, the C programs (the baseline and
# the latency consumer), and a throwaway PostgreSQL cluster (user postgres, free
# port, celerysalt preloaded).  Source it.
# Never touches the machine's own PostgreSQL, RabbitMQ or Redis.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/../.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PGBIN=$("$PG_CONFIG" --bindir)
BENCH_CACHE=${BENCH_CACHE:-/var/tmp/celerysalt-bench}   # venv and binaries, reused across runs
VENV=$BENCH_CACHE/venv
RAW_BIN=$BENCH_CACHE/raw_publish
LAT_BIN=$BENCH_CACHE/lat_consume

bench_require_root() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "run this as root (initdb runs as user postgres through runuser)" >&2
		exit 1
	fi
}

bench_packages() {
	local missing="" p
	for p in postgresql-15 postgresql-server-dev-15 postgresql-contrib librabbitmq-dev libhiredis-dev \
		python3-venv gcc make rabbitmq-server; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		echo "installing Debian packages:$missing" >&2
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
	fi
	if ! rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
		echo "RabbitMQ is not running on 5672; starting it (it is never stopped here)" >&2
		rabbitmq-server -detached >/dev/null 2>&1 || true
		for _ in $(seq 1 60); do rabbitmq-diagnostics -q ping >/dev/null 2>&1 && break; sleep 1; done
	fi
}

# Build and install the extension (retried: other people edit src/ concurrently).
bench_build() {
	[ "${BENCH_NO_BUILD:-0}" = 1 ] && return 0
	local try
	for try in 1 2 3 4 5 6; do
		if make -s -C "$REPO" -j2 PG_CONFIG="$PG_CONFIG" >/tmp/celerysalt-bench-build.log 2>&1 &&
			make -s -C "$REPO" install PG_CONFIG="$PG_CONFIG" >>/tmp/celerysalt-bench-build.log 2>&1; then
			return 0
		fi
		echo "build failed (try $try), retrying in 20 s; see /tmp/celerysalt-bench-build.log" >&2
		sleep 20
	done
	echo "could not build the extension" >&2
	exit 1
}

bench_venv() {
	mkdir -p "$BENCH_CACHE"
	if ! "$VENV/bin/python" -c 'import celery_salt, celery, psycopg, amqp' 2>/dev/null ||
		[ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("celery-salt"))')" != 1.6.0 ]; then
		rm -rf "$VENV"
		/usr/bin/python3 -m venv "$VENV"
		"$VENV/bin/pip" install -q --disable-pip-version-check 'celery-salt==1.6.0' 'celery[redis]>=5.7,<5.8' \
			'psycopg[binary]' 2>&1 | grep -v "^WARNING: Location" >&2 || true
	fi
	"$VENV/bin/python" -c 'import celery_salt, celery, psycopg, amqp'
}

# The C programs: raw_publish (baseline (b)) and lat_consume (the consumer of (d)).
bench_raw_bin() {
	mkdir -p "$BENCH_CACHE"
	gcc -O2 -Wall -o "$RAW_BIN" "$BENCH_DIR/raw_publish.c" -lrabbitmq
	gcc -O2 -Wall -o "$LAT_BIN" "$BENCH_DIR/lat_consume.c" -lrabbitmq
}

bench_free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The pid of the RabbitMQ node listening on port $1 (default 5672; for CPU accounting), or nothing.
bench_broker_pid() {
	ss -ltnpH "sport = :${1:-5672}" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true
}

# bench_broker_start: sets BROKER_PORT and BROKER_PID.  BENCH_BROKER=shared (default) uses the
# machine's node on 5672, whose CPU also counts whatever else uses it; BENCH_BROKER=private starts a
# node of the bench's own (RabbitMQ's defaults, free ports, its own directory and Erlang cookie, run
# as postgres like test/integration/faults), so that the broker's CPU per message counts only the
# bench's messages.  bench_broker_stop stops it (never the shared one).
bench_broker_start() {
	RMQ_NODE=""
	if [ "${BENCH_BROKER:-shared}" != private ]; then
		BROKER_PORT=5672
		BROKER_PID=$(bench_broker_pid 5672)
		return 0
	fi
	RMQ_DIR=$(mktemp -d /var/tmp/celerysalt-bench-rmq.XXXXXX)
	chmod 755 "$RMQ_DIR"
	BROKER_PORT=$(bench_free_port)
	RMQ_NODE="bench$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')@localhost"
	printf 'listeners.tcp.default = 127.0.0.1:%s\nlog.file.level = warning\n' "$BROKER_PORT" >"$RMQ_DIR/rabbitmq.conf"
	echo '[].' >"$RMQ_DIR/enabled_plugins"
	: >"$RMQ_DIR/rabbitmq-env.conf"
	chown -R postgres:postgres "$RMQ_DIR"
	RMQ_ENV=(HOME="$RMQ_DIR" LANG=C.UTF-8 PATH=/usr/bin:/bin:/usr/sbin:/sbin
		RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$BROKER_PORT"
		RABBITMQ_DIST_PORT="$(bench_free_port)" RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia"
		RABBITMQ_LOG_BASE="$RMQ_DIR/log" RABBITMQ_CONFIG_FILE="$RMQ_DIR/rabbitmq.conf"
		RABBITMQ_CONF_ENV_FILE="$RMQ_DIR/rabbitmq-env.conf"
		RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/enabled_plugins" RABBITMQ_PID_FILE="$RMQ_DIR/pid"
		ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}")
	runuser -u postgres -- env -i "${RMQ_ENV[@]}" RABBITMQ_NODENAME="$RMQ_NODE" \
		/usr/lib/rabbitmq/bin/rabbitmq-server -detached >/dev/null
	local _
	for _ in $(seq 1 120); do
		"$VENV/bin/python" -c "import amqp; c = amqp.Connection('127.0.0.1:$BROKER_PORT', userid='guest', password='guest'); c.connect(); c.close()" \
			2>/dev/null && break
		sleep 0.5
	done
	BROKER_PID=$(bench_broker_pid "$BROKER_PORT")
	[ -n "$BROKER_PID" ] || { echo "the private RabbitMQ node did not start (see $RMQ_DIR/log)" >&2; exit 1; }
	echo "private RabbitMQ node $RMQ_NODE on port $BROKER_PORT (pid $BROKER_PID)"
}

bench_broker_stop() {
	[ -n "${RMQ_NODE:-}" ] || return 0
	runuser -u postgres -- env -i "${RMQ_ENV[@]}" /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RMQ_NODE" stop \
		>/dev/null 2>&1 || true
	rm -rf "$RMQ_DIR"
	RMQ_NODE=""
}

# bench_cluster_start [extra postgresql.conf lines]: sets CLUSTER, PGPORT_BENCH, CONNINFO.
bench_cluster_start() {
	CLUSTER=$(mktemp -d /var/tmp/celerysalt-bench-pg.XXXXXX)
	chown postgres:postgres "$CLUSTER"
	PGPORT_BENCH=$(bench_free_port)
	runuser -u postgres -- "$PGBIN/initdb" -D "$CLUSTER/data" -A trust >/dev/null
	cat >>"$CLUSTER/data/postgresql.conf" <<CONF
port = $PGPORT_BENCH
listen_addresses = ''
unix_socket_directories = '$CLUSTER'
shared_preload_libraries = 'celerysalt'
celerysalt.broker_url = 'amqp://guest:guest@127.0.0.1:${BROKER_PORT:-5672}/%2F'
${1:-}
CONF
	runuser -u postgres -- "$PGBIN/pg_ctl" -D "$CLUSTER/data" -l "$CLUSTER/server.log" -w start >/dev/null
	CONNINFO="host=$CLUSTER port=$PGPORT_BENCH user=postgres dbname=postgres"
	"$PGBIN/psql" -X -q "$CONNINFO" -c "CREATE EXTENSION celerysalt"
}

bench_cluster_stop() {
	if [ -n "${CLUSTER:-}" ] && [ -d "$CLUSTER/data" ]; then
		runuser -u postgres -- "$PGBIN/pg_ctl" -D "$CLUSTER/data" -m fast stop >/dev/null 2>&1 || true
		if [ "${BENCH_KEEP:-0}" = 1 ]; then
			echo "kept $CLUSTER" >&2
		else
			rm -rf "$CLUSTER"
		fi
	fi
}

bench_machine_info() {
	echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/ {print $2}') GiB;" \
		"load average $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "PostgreSQL $("$PGBIN/postgres" -V | awk '{print $3}'), RabbitMQ $(rabbitmqctl version 2>/dev/null || echo '?')," \
		"librabbitmq $(dpkg-query -W -f='${Version}' librabbitmq4 2>/dev/null || echo '?')," \
		"celery-salt $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("celery-salt"), "/ celery", m.version("celery"), "/ kombu", m.version("kombu"))')"
	echo "extension commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD -- src sql 2>/dev/null || echo ' + uncommitted changes in src/ sql/')"
}
