#!/usr/bin/env bash
# JSON Schema benchmark, one command (as root):
#   bash bench/jsonschema/run.sh
# A throwaway cluster, 1,000,000 stored pydantic-shaped payloads, then side by side in one run:
# celerysalt_validate vs the same scan with `payload ? 'id'` vs python-jsonschema's precompiled
# Draft202012Validator (sampled on BENCH_PYTHON_ROWS rows and scaled; 0 = all rows, ~10 minutes).
# Environment: BENCH_ROWS (1000000), BENCH_REPEAT (3), BENCH_PYTHON_ROWS (20000), BENCH_NO_BUILD=1.
. "$(dirname "$0")/../publish/lib.sh"

bench_require_root
bench_packages
bench_build
JSVENV=$BENCH_CACHE/jsonschema-venv
mkdir -p "$BENCH_CACHE"
if ! "$JSVENV/bin/python" -c 'import jsonschema, psycopg2' 2>/dev/null; then
	rm -rf "$JSVENV"
	/usr/bin/python3 -m venv "$JSVENV"
	"$JSVENV/bin/pip" install -q --disable-pip-version-check jsonschema psycopg2-binary 2>&1 |
		grep -v "^WARNING: Location" >&2 || true
fi
bench_machine_info
trap bench_cluster_stop EXIT
bench_cluster_start "max_parallel_workers_per_gather = 0"
"$JSVENV/bin/python" "$(dirname "$0")/bench.py" --dsn "$CONNINFO" --rows "${BENCH_ROWS:-1000000}" \
	--repeat "${BENCH_REPEAT:-3}" --python-rows "${BENCH_PYTHON_ROWS:-20000}"
