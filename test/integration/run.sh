#!/usr/bin/env bash
# Integration tests: real RabbitMQ, Redis and stock celery-salt / tchu-tchu
# Celery workers against a throwaway PostgreSQL cluster (test/integration,
# faults/ included).
#
# Called as root by test/run.sh from a postgres-owned copy of the tree, after
# the extension is built and installed.  Builds (once) a virtualenv from
# requirements.txt under /var/tmp, keyed by the file's hash, owned by postgres,
# then runs pytest as postgres.  Extra arguments go to pytest
# (e.g. `run.sh -k capture -x`).  Logs of the clusters and workers stay in
# $ROOT/log/integration (test/run.sh copies log/ to the artifacts).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$here/../.." && pwd)

if [ "$(id -u)" -ne 0 ]; then
	echo "run.sh: run as root (it runs the tests as postgres)" >&2
	exit 2
fi

# RabbitMQ and Redis must be up (started if installed, never stopped).
if [ -f "$ROOT/test/lib/setup.sh" ]; then
	. "$ROOT/test/lib/setup.sh"
	start_services
fi

PY=/usr/bin/python3
req="$here/requirements.txt"
hash=$( { cat "$req"; $PY -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-16)
VENV=${CSIT_VENV:-/var/tmp/celerysalt-venv-$hash}
as_pg() { runuser -u postgres -- "$@"; }

build_venv() {
	echo "integration: building virtualenv $VENV"
	rm -rf "$VENV"
	install -d -o postgres -g postgres -m 755 "$VENV"
	as_pg env -i HOME=/var/lib/postgresql PATH=/usr/bin:/bin LANG=C.UTF-8 \
		$PY -m venv "$VENV"
	as_pg env -i HOME=/var/lib/postgresql PATH=/usr/bin:/bin LANG=C.UTF-8 \
		PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=120 \
		"$VENV/bin/pip" install -q -r "$req" 2>&1 | grep -v '^WARNING: Location' || true
	as_pg "$VENV/bin/python" -c 'import celery, celery_salt, tchu_tchu, kombu, psycopg, redis, pytest, pytest_timeout
import opentelemetry.sdk.trace, opentelemetry.instrumentation.celery
assert celery.__version__.startswith("5.7."), celery.__version__
assert celery_salt.__version__ == "1.6.0", celery_salt.__version__'
	touch "$VENV/.complete"   # only a venv that got this far is reused
}

# One builder at a time (concurrent runs share the cache).
exec 9>/var/tmp/celerysalt-venv.lock
flock -w 600 9
if [ ! -f "$VENV/.complete" ] || ! as_pg "$VENV/bin/python" -c 'import celery_salt, tchu_tchu, pytest_timeout' 2>/dev/null; then
	build_venv
fi
# The package under test, installed as users install it (pip install ./python),
# under the lock: concurrent runs share the venv.
as_pg env -i HOME=/var/lib/postgresql PATH=/usr/bin:/bin LANG=C.UTF-8 PIP_DISABLE_PIP_VERSION_CHECK=1 \
	"$VENV/bin/pip" install -q --no-deps --force-reinstall "$ROOT/python" 2>&1 |
	grep -v '^WARNING: Location' || true
as_pg "$VENV/bin/python" -c 'import celerysalt_pg'
touch "$VENV/.last_used"
# Drop cached venvs of other requirements not used for a week.
for d in /var/tmp/celerysalt-venv-*/; do
	d=${d%/}
	[ "$d" = "$VENV" ] && continue
	# kept if built or used (.last_used) within the week
	[ -n "$(find "$d" -maxdepth 1 -mtime -7 2>/dev/null | head -1)" ] || rm -rf "$d"
done
flock -u 9

# `run.sh --venv-path`: build the virtualenv if needed, print its path, run nothing
# (bench/rpc uses the rig's venv and workers).
if [ "${1:-}" = "--venv-path" ]; then
	echo "$VENV"
	exit 0
fi

LOGDIR=${CSIT_LOGDIR:-$ROOT/log/integration}
install -d -o postgres -g postgres "$ROOT/log"
rm -rf "$LOGDIR"
install -d -o postgres -g postgres "$LOGDIR"

pass_env=()
for v in $(compgen -e | grep -E '^(CSIT_|CI$)' || true); do
	pass_env+=("$v=${!v}")
done

cd "$ROOT"
set +e
runuser -u postgres -- env -i HOME=/var/lib/postgresql LANG=C.UTF-8 \
	PATH="$VENV/bin:/usr/lib/postgresql/15/bin:/usr/bin:/bin" "${pass_env[@]}" \
	timeout -s TERM -k 30 ${CSIT_TIMEOUT:-600} \
	"$VENV/bin/python" -m pytest -q -p no:cacheprovider -c test/integration/pytest.ini --basetemp="$LOGDIR" \
	test/integration python/tests "$@"
rc=$?
set -e
if [ $rc -eq 124 ]; then
	echo "integration: pytest killed after ${CSIT_TIMEOUT:-600}s" >&2
fi
# Keep the logs; stop and drop any cluster a killed run left behind.
for pid in $(find "$LOGDIR" -maxdepth 4 -path '*/data/postmaster.pid' 2>/dev/null); do
	runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$(dirname "$pid")" -m immediate -w stop >/dev/null 2>&1 || true
done
find "$LOGDIR" -maxdepth 3 -type d -name data -prune -exec rm -rf {} + 2>/dev/null || true
exit $rc
