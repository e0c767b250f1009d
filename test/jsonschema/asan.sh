#!/usr/bin/env bash
# The JSON Schema validator under AddressSanitizer (+ LeakSanitizer), in an
# isolated PostgreSQL installation: never installs into the system's lib dir.
#
#   test/jsonschema/asan.sh [ITERATIONS_PER_SEED] [SEED ...]
#   (defaults: 5000 iterations, seeds 0.11 0.42 0.77; ASAN_ROOT=/tmp/pgasan)
#
# 1. copies /usr/lib/postgresql/15 and /usr/share/postgresql/15 to
#    $ASAN_ROOT/usr/... (the copied binaries find their lib and share dirs
#    relative to themselves: the copy's `pg_config --pkglibdir` is
#    $ASAN_ROOT/usr/lib/postgresql/15/lib);
# 2. builds the extension with `make SANITIZE=address` from a copy of the
#    tree and installs it into that copy only (`make install DESTDIR=...`);
# 3. runs a private cluster from the copied binaries with libasan preloaded
#    (plus the swift_demangle stub, docs/building.md) and celerysalt in
#    shared_preload_libraries (test/regress.conf), checks that the backend
#    really maps the ASan build from the copy;
# 4. runs test/jsonschema/fuzz.sql once per seed (each iteration = one random
#    schema/instance pair through celerysalt_validate,
#    celerysalt_validation_errors and celerysalt_schema_errors), then the
#    regression files in ASAN_REGRESS (default: sql/jsonschema.sql and
#    sql/follow_actions.sql) and the official JSON Schema Test Suite
#    (found by test/jsonschema/locate_suite.sh; JSONSCHEMA_TEST_SUITE=DIR for another);
# 5. fails on any ASan/LSan report that names the extension, on a crash, or
#    on a fuzz finding.
#
# Must run as root (it chowns the cluster to postgres) or as postgres.
# About 30 s with the defaults on 2 cores (25000 x 4 seeds: about 60 s).
set -euo pipefail

SRC=$(cd "$(dirname "$0")/../.." && pwd)
ROOT=${ASAN_ROOT:-/tmp/pgasan}
ITER=${1:-5000}
shift || true
SEEDS=("$@")
[ ${#SEEDS[@]} -gt 0 ] || SEEDS=(0.11 0.42 0.77)
PORT=${ASAN_PORT:-54329}
PGBIN=$ROOT/usr/lib/postgresql/15/bin
SUITE=${JSONSCHEMA_TEST_SUITE:-}

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

stop_cluster() { [ -f "$ROOT/data/postmaster.pid" ] && as_pg env LD_PRELOAD="$PRELOAD" "$PGBIN/pg_ctl" -D "$ROOT/data" -m fast stop >/dev/null 2>&1 || true; }
PRELOAD=""
trap stop_cluster EXIT

stop_cluster 2>/dev/null || true
rm -rf "$ROOT"
mkdir -p "$ROOT/usr/lib/postgresql" "$ROOT/usr/share/postgresql" "$ROOT/asan" "$ROOT/build"
cp -a /usr/lib/postgresql/15 "$ROOT/usr/lib/postgresql/"
cp -a /usr/share/postgresql/15 "$ROOT/usr/share/postgresql/"
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config	# headers and PGXS of the system
[ "$("$PGBIN/pg_config" --pkglibdir)" = "$ROOT/usr/lib/postgresql/15/lib" ] ||
	{ echo "copied pg_config does not point into $ROOT" >&2; exit 1; }

# build from a copy (PGXS does not track headers: always from clean)
tar -C "$SRC" --exclude=.git --exclude='*.o' --exclude='*.bc' --exclude='*.so' \
	--exclude=tmp_check --exclude=artifacts -cf - . | tar -C "$ROOT/build" -xf -
make -s -C "$ROOT/build" PG_CONFIG="$PG_CONFIG" clean >/dev/null
make -s -C "$ROOT/build" PG_CONFIG="$PG_CONFIG" SANITIZE=address with_llvm=no -j2
make -s -C "$ROOT/build" PG_CONFIG="$PG_CONFIG" SANITIZE=address with_llvm=no install DESTDIR="$ROOT" >/dev/null
grep -qw __asan_init <<<"$(nm -D --undefined-only "$ROOT/usr/lib/postgresql/15/lib/celerysalt.so")" ||
	{ echo "celerysalt.so in $ROOT is not an ASan build" >&2; exit 1; }

printf 'char *swift_demangle(const char *m, unsigned long l, char *o, unsigned long *ol, unsigned f) { return 0; }\n' \
	> "$ROOT/swiftstub.c"
gcc -shared -fPIC -o "$ROOT/libswiftstub.so" "$ROOT/swiftstub.c"
PRELOAD="$(gcc -print-file-name=libasan.so) $ROOT/libswiftstub.so"
# detect_leaks: LeakSanitizer runs at every backend exit; exitcode=0 keeps a
# leak report from turning the exit into a crash (postmaster would restart).
# ASAN_DETECT_LEAKS=0 (make asan): AddressSanitizer only, as in
# docs/building.md; then every report fails the run, not only those
# naming the extension.
LEAKS=${ASAN_DETECT_LEAKS:-1}
ASAN_OPTIONS="detect_leaks=$LEAKS:log_path=$ROOT/asan/asan:abort_on_error=0"
LSAN_OPTIONS="exitcode=0"
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$ROOT"

as_pg env LD_PRELOAD="$PRELOAD" ASAN_OPTIONS="$ASAN_OPTIONS" LSAN_OPTIONS="$LSAN_OPTIONS" \
	"$PGBIN/initdb" -D "$ROOT/data" -U postgres --encoding=UTF8 --locale=C.UTF-8 >/dev/null
cat >> "$ROOT/data/postgresql.conf" <<EOF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$ROOT'
restart_after_crash = off
jit = off
shared_buffers = 64MB
max_stack_depth = 2MB
EOF
# preloaded as in the regression tests (launcher and workers run under ASan too)
cat "$ROOT/build/test/regress.conf" >> "$ROOT/data/postgresql.conf"
rm -f "$ROOT"/asan/asan.*		# initdb's own exits are not ours
as_pg env LD_PRELOAD="$PRELOAD" ASAN_OPTIONS="$ASAN_OPTIONS" LSAN_OPTIONS="$LSAN_OPTIONS" \
	"$PGBIN/pg_ctl" -D "$ROOT/data" -l "$ROOT/server.log" -w start >/dev/null
PSQL=("$PGBIN/psql" -X -h "$ROOT" -p "$PORT" -U postgres -d postgres)
psqlq() { as_pg "${PSQL[@]}" "$@"; }		# clients run without ASan

psqlq -qAt -c 'CREATE EXTENSION celerysalt' >/dev/null
# the backend must map the ASan build from the copy, and libasan
maps=$(psqlq -qAt -c "SELECT celerysalt_validate('true', '1')" -c "SELECT pg_read_file('/proc/self/maps')")
grep -q "$ROOT/usr/lib/postgresql/15/lib/celerysalt.so" <<<"$maps" && grep -q libasan <<<"$maps" ||
	{ echo "backend did not load $ROOT's celerysalt.so with libasan" >&2; exit 1; }
echo "backend maps: $(echo "$maps" | grep -oE '\S*(celerysalt\.so|libasan\S*)' | sort -u | tr '\n' ' ')"
echo "dynamic_library_path = $(psqlq -qAt -c 'SHOW dynamic_library_path'), pkglibdir = $("$PGBIN/pg_config" --pkglibdir)"

t0=$(date +%s)
fail=0
total=0
for seed in "${SEEDS[@]}"; do
	out=$(cd "$ROOT/build" && psqlq -qAt -v seed="$seed" -v iterations="$ITER" -f test/jsonschema/fuzz.sql 2>&1) || {
		echo "fuzz seed $seed: script failed"; echo "$out" | tail -20; fail=1; }
	if grep -Eq '^(mismatch|sqlstate)\|' <<<"$out"; then
		echo "fuzz seed $seed: findings"; echo "$out" | grep -E '^(mismatch|sqlstate)\|' | head -20; fail=1
	fi
	summary=$(echo "$out" | sed -n 's/^summary|//p')
	echo "fuzz seed $seed: $summary"
	n=$(echo "$summary" | awk '{print $1 + $4}')
	total=$((total + ${n:-0}))
done
echo "fuzz: $total schema/instance pairs in $(( $(date +%s) - t0 )) s"

# regression test files (ASAN_REGRESS, default: the validator's and the
# follow-action trigger's) and the official suite, same build; psql runs as
# pg_regress runs it (input on stdin, its environment)
psqlq -c 'CREATE DATABASE contrib_regression' >/dev/null
for t in ${ASAN_REGRESS:-jsonschema follow_actions}; do
	(cd "$ROOT/build" && as_pg env PGTZ=PST8PDT PGDATESTYLE="Postgres, MDY" \
		"${PSQL[@]:0:${#PSQL[@]}-2}" -d contrib_regression -a -q < "sql/$t.sql" > "$ROOT/$t.out" 2>&1) || true
	if diff -u "$ROOT/build/expected/$t.out" "$ROOT/$t.out" > "$ROOT/$t.diff"; then
		echo "sql/$t.sql: output matches expected/$t.out"
	else
		echo "sql/$t.sql: differs from expected (see $ROOT/$t.diff)"; head -30 "$ROOT/$t.diff"; fail=1
	fi
done
# the suite beside the checkout or downloaded (locate_suite.sh), unless JSONSCHEMA_TEST_SUITE names another
SUITE=${SUITE:-$(bash "$SRC/test/jsonschema/locate_suite.sh")}
as_pg perl "$ROOT/build/test/jsonschema/run_suite.pl" --suite "$SUITE" -- "${PSQL[@]}" | grep 'cases:' ||
	{ echo "official suite: unexpected failures (or not found at $SUITE)"; fail=1; }

stop_cluster
# server alive until the end?  a crash shows in the log
if grep -Eq 'terminated by signal|server process .* was terminated|PANIC' "$ROOT/server.log"; then
	echo "server log shows a crash:"; grep -E 'terminated by signal|was terminated|PANIC' "$ROOT/server.log" | head; fail=1
fi
# LSan also reports PostgreSQL's own exit-time allocations (e.g.
# save_ps_display_args in the postmaster): only reports with a frame in the
# extension count.
reports=$( (ls "$ROOT"/asan/asan.* 2>/dev/null || true) | wc -l)
ours=$( (grep -l -E 'celerysalt|jsonschema' "$ROOT"/asan/asan.* 2>/dev/null || true) | wc -l)
echo "sanitizer reports: $reports files, $ours naming the extension (in $ROOT/asan)"
if [ "$LEAKS" = 0 ] && [ "$reports" -gt 0 ]; then
	for f in "$ROOT"/asan/asan.*; do head -40 "$f"; done
	fail=1
elif [ "$ours" -gt 0 ]; then
	for f in $(grep -l -E 'celerysalt|jsonschema' "$ROOT"/asan/asan.*); do head -40 "$f"; done
	fail=1
fi
grep -h -E '^(==[0-9]+==ERROR|SUMMARY)' "$ROOT"/asan/asan.* 2>/dev/null | sed 's/==[0-9]*==//' | sort | uniq -c | sed 's/^/  (all processes) /' || true
[ $fail = 0 ] && echo "asan: OK" || echo "asan: FAILED"
exit $fail
