#!/usr/bin/env bash
# The whole celerysalt test suite, as README's test command and CI run it.
#
# On a fresh Debian 12 machine it installs the Debian packages it needs,
# builds and installs the extension, makes sure RabbitMQ and Redis run, then
# runs pg_regress, isolation and TAP tests (each on its own throwaway
# PostgreSQL with shared_preload_libraries=celerysalt) and the integration
# tests with real Celery workers.  Must run as root (CI does).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/test/lib/setup.sh"

setup_machine
build_and_install

WORK=$(mktemp -d /tmp/celerysalt-test.XXXXXX)
ART="$here/artifacts"
rm -rf "$ART"; mkdir -p "$ART"
cleanup() {
	for d in regression.diffs results output_iso log tmp_check/log test/t/tmp_check; do
		[ -e "$WORK/$d" ] && cp -a "$WORK/$d" "$ART/" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT

# The official JSON Schema Test Suite is test data kept outside the repository:
# find it (or download it) from the checkout, for TAP test 010 in the copy below.
if suite=$(bash "$here/test/jsonschema/locate_suite.sh"); then
	export JSONSCHEMA_TEST_SUITE=$suite
fi

# initdb refuses to run as root: run the suites as postgres in a copy it owns.
cp -a "$here/." "$WORK/"
rm -rf "$WORK/artifacts" "$WORK/.git"
chown -R postgres:postgres "$WORK"

passed=0; failed=0
run_suite() {
	local name=$1; shift
	echo "=== $name"
	if "$@"; then passed=$((passed + 1)); echo "=== $name: ok"
	else failed=$((failed + 1)); echo "=== $name: FAILED"; fi
}
as_postgres() { runuser -u postgres -- env PG_TEST_TIMEOUT_DEFAULT=60 PATH=/usr/lib/postgresql/15/bin:/usr/bin:/bin "$@"; }

run_suite "layers" make -s -C "$here" check-layers PG_CONFIG="$PG_CONFIG"
run_suite "pg_regress + isolation + TAP" as_postgres make -s -C "$WORK" installcheck PG_CONFIG="$PG_CONFIG"
if [ -d "$WORK/test/integration" ]; then
	run_suite "integration (real RabbitMQ, Redis, Celery workers)" bash "$WORK/test/integration/run.sh"
fi

echo
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
