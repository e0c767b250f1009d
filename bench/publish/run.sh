#!/usr/bin/env bash
# Issue 2 publish benchmark, one command (as root):
#   bash bench/publish/run.sh
# (a) celerysalt end to end, (b) raw librabbitmq-c, (c) celery-salt's Python publish_event,
# side by side from one run on the same broker, then (d) commit-to-consumer latency at each asked
# rate (default 100 and 5,000 events/s): forked publishing processes, each with its own connection,
# pace their share of the rate; the report says plainly when the machine did not reach a rate.
# (m) is (a) without mandatory publishing (celerysalt.unroutable = drop), on the queue sink: what
# mandatory costs.  (t) is (a) with celerysalt.track_metrics = off, on the queue sink: what collecting
# metrics costs.  The sink without a queue runs (a) with drop, as (b) and (c) publish.  (s) is (b)
# while the publishing sessions enqueue (a)'s events (the work (a) cannot avoid, without the worker):
# the most (a) can reach on this machine.
# Environment: BENCH_EVENTS (40000), BENCH_REPEATS (3), BENCH_SINKS (queue,none),
# BENCH_LAT_SECONDS (30 per rate), BENCH_LAT_RATE (events/s, a comma list: 100,5000),
# BENCH_LAT_CLIENTS (publishing processes: one number or one per rate; default 1 up to 200
# transactions/s, else one per 250 transactions/s, at most 8), BENCH_LAT_TXN_EVENTS (events per
# transaction, 1), BENCH_LAT_CONSUMER (c: lat_consume, librabbitmq-c, the default; python: py-amqp,
# as before, ~10x the consumer's CPU per message),
# BENCH_ONLY (a,m,t,b,s,c,d), BENCH_NO_BUILD=1, BENCH_KEEP=1 (keep the cluster),
# BENCH_JSON (write the raw results there), BENCH_PGCONF (extra postgresql.conf lines, for experiments),
# BENCH_BROKER=private (a RabbitMQ node of the bench's own, so that its CPU counts only the bench).
. "$(dirname "$0")/lib.sh"

bench_require_root
bench_packages
bench_build
bench_venv
bench_raw_bin
bench_machine_info
trap 'bench_cluster_stop; bench_broker_stop' EXIT
bench_broker_start
bench_cluster_start "${BENCH_PGCONF:-}"
echo "throwaway cluster on port $PGPORT_BENCH in $CLUSTER (PostgreSQL defaults: synchronous_commit on, fsync on)"

"$VENV/bin/python" "$BENCH_DIR/bench.py" --conninfo "$CONNINFO" --raw-bin "$RAW_BIN" \
	--events "${BENCH_EVENTS:-40000}" --repeats "${BENCH_REPEATS:-3}" --sinks "${BENCH_SINKS:-queue,none}" \
	--lat-seconds "${BENCH_LAT_SECONDS:-30}" --lat-rate "${BENCH_LAT_RATE:-100,5000}" \
	--lat-clients "${BENCH_LAT_CLIENTS:-}" --lat-txn-events "${BENCH_LAT_TXN_EVENTS:-1}" \
	--lat-consumer-bin "$([ "${BENCH_LAT_CONSUMER:-c}" = python ] || echo "$LAT_BIN")" --only "${BENCH_ONLY:-a,m,t,b,s,c,d}" \
	--broker-port "$BROKER_PORT" --broker-pid "$BROKER_PID" --json-out "${BENCH_JSON:-}"
