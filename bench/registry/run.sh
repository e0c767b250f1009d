#!/usr/bin/env bash
# Schema registry benchmark: celerysalt_pg.registry.PostgresSchemaRegistry vs
# celery-salt's own InMemorySchemaRegistry, one run (bench.py says what).
# Run as root from the repository: bash bench/registry/run.sh
# With CSIT_PG_BINDIR=<bindir of a private install> it uses that install and
# builds nothing; otherwise it builds and installs the extension like the
# other benchmarks.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
. "$here/test/lib/setup.sh"
if [ -z "${CSIT_PG_BINDIR:-}" ]; then
	setup_machine
	build_and_install
fi
W=$(mktemp -d /tmp/celerysalt-bench-registry.XXXXXX)
trap 'rm -rf "$W"' EXIT
cp -a "$here/test" "$here/bench" "$W/"
chown -R postgres:postgres "$W"
# the integration rig's virtualenv (built by it on first use), with ./python installed
VENV=$(bash "$here/test/integration/run.sh" --venv-path | tail -1)
runuser -u postgres -- env -i HOME=/var/lib/postgresql LANG=C.UTF-8 \
	PATH="$VENV/bin:/usr/lib/postgresql/15/bin:/usr/bin:/bin" BENCH_DIR="$W/run" \
	${CSIT_PG_BINDIR:+CSIT_PG_BINDIR=$CSIT_PG_BINDIR} \
	"$VENV/bin/python" "$W/bench/registry/bench.py"
