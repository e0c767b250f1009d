#!/usr/bin/env bash
# Where RabbitMQ's CPU per message goes, celerysalt's worker against raw librabbitmq-c (issue 17,
# item 3), as root:
#   bash bench/publish/broker_cost.sh
# Starts a RabbitMQ node of its own (BENCH_BROKER=private) and a throwaway cluster per install, compares
# the frames of one message of each publisher, then the broker's CPU per message in interleaved rounds.
# Environment: BENCH_EVENTS (20000), BENCH_ROUNDS (5), BENCH_NO_BUILD=1, and BENCH_INSTALLS: "NAME:DIR ..."
# PostgreSQL installs to compare (DIR/usr/lib/postgresql/15/bin: a copy of the server with a build installed by make install DESTDIR=DIR),
# default the one of PG_CONFIG.  About 1 minute per round and install on 2 cores.
. "$(dirname "$0")/lib.sh"

bench_require_root
bench_packages
bench_build
bench_venv
bench_raw_bin
bench_machine_info
BENCH_BROKER=private
CLUSTERS=()
cleanup() {
	local c
	for c in "${CLUSTERS[@]}"; do
		CLUSTER=$c bench_cluster_stop
	done
	bench_broker_stop
}
trap cleanup EXIT
bench_broker_start
ARGS=()
for spec in ${BENCH_INSTALLS:-"celerysalt:"}; do
	name=${spec%%:*}
	dir=${spec#*:}
	[ -n "$dir" ] && PGBIN=$dir/usr/lib/postgresql/15/bin
	bench_cluster_start "${BENCH_PGCONF:-}"
	CLUSTERS+=("$CLUSTER")
	ARGS+=(--conninfo "$name=$CONNINFO")
	echo "cluster $name: $("$PGBIN/postgres" -V), port $PGPORT_BENCH"
done
"$VENV/bin/python" "$BENCH_DIR/broker_cost.py" "${ARGS[@]}" --broker-port "$BROKER_PORT" \
	--broker-pid "$BROKER_PID" --raw-bin "$RAW_BIN" --events "${BENCH_EVENTS:-20000}" --rounds "${BENCH_ROUNDS:-5}"
