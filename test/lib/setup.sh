# Shared set-up for test/run.sh and demo/run.sh: Debian packages, services,
# build and install.  Source it; it defines functions only.

export PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
export DEBIAN_FRONTEND=noninteractive

DEBIAN_PACKAGES="postgresql-15 postgresql-client-15 postgresql-server-dev-15 postgresql-contrib
	librabbitmq-dev libhiredis-dev libssl-dev openssl libipc-run-perl socat make gcc
	clang-14 llvm-14 python3-venv rabbitmq-server redis-server procps"

setup_machine() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "run this as root (it installs packages and starts services)" >&2
		exit 1
	fi
	local missing=""
	for p in $DEBIAN_PACKAGES; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		echo "installing Debian packages:$missing"
		apt-get update -qq
		apt-get install -y -qq $missing >/dev/null
	fi
	start_services
}

# RabbitMQ and Redis: start them if installed but not running; never stop them.
start_services() {
	if ! rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
		echo "starting RabbitMQ"
		rabbitmq-server -detached >/dev/null 2>&1 || true
		for _ in $(seq 1 60); do
			rabbitmq-diagnostics -q ping >/dev/null 2>&1 && break
			sleep 1
		done
	fi
	if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
		echo "starting Redis"
		mkdir -p /var/lib/redis /var/log/redis
		redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
			--dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null
		for _ in $(seq 1 30); do
			redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break
			sleep 0.5
		done
	fi
}

build_and_install() {
	make -s -C "$here" -j2 PG_CONFIG="$PG_CONFIG" >/dev/null
	make -s -C "$here" install PG_CONFIG="$PG_CONFIG" >/dev/null
}
