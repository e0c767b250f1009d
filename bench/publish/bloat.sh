#!/usr/bin/env bash
# Soak (not for CI; about 6.5 minutes), as root:
#   bash bench/publish/bloat.sh
# 500 events/s published and delivered; after 60 s a transaction holding an xid stays open for
# 5 minutes.  Prints throughput per 30 s window, the outbox's on-disk size and dead tuples.
# Environment: BLOAT_RATE (500), BLOAT_NORMAL (60), BLOAT_HELD (300), BENCH_NO_BUILD=1, BENCH_KEEP=1.
. "$(dirname "$0")/lib.sh"

bench_require_root
bench_packages
bench_build
bench_venv
bench_machine_info
trap bench_cluster_stop EXIT
# the topic has no queue: the broker drops the events after confirming them
bench_cluster_start "celerysalt.unroutable = 'drop'
${BENCH_PGCONF:-}"
echo "throwaway cluster on port $PGPORT_BENCH (PostgreSQL defaults; celerysalt.outbox_rotation = 10s, autovacuum on)"
"$VENV/bin/python" "$BENCH_DIR/bloat.py" --conninfo "$CONNINFO" --rate "${BLOAT_RATE:-500}" \
	--normal "${BLOAT_NORMAL:-60}" --window "${BLOAT_WINDOW:-30}" --held "${BLOAT_HELD:-300}"
