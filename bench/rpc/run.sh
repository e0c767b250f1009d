#!/usr/bin/env bash
# RPC benchmark: celerysalt_call vs celery-salt's Python .call(), one run.
# Run as root from the repository: bash bench/rpc/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
. "$here/test/lib/setup.sh"
setup_machine
build_and_install
W=$(mktemp -d /tmp/celerysalt-bench-rpc.XXXXXX)
trap 'rm -rf "$W"' EXIT
cp -a "$here/test" "$here/bench" "$W/"
chown -R postgres:postgres "$W"
# the integration rig's virtualenv (built by it on first use)
VENV=$(bash "$here/test/integration/run.sh" --venv-path | tail -1)
runuser -u postgres -- env -i HOME=/var/lib/postgresql LANG=C.UTF-8 \
	PATH="$VENV/bin:/usr/lib/postgresql/15/bin:/usr/bin:/bin" BENCH_DIR="$W/run" \
	"$VENV/bin/python" "$W/bench/rpc/bench.py"
