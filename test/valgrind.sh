#!/usr/bin/env bash
# Regression tests with every PostgreSQL server process under valgrind
# memcheck (docs/building.md, "Valgrind").
#
#   test/valgrind.sh [NAME ...]      names of sql/NAME.sql (default: jsonschema)
#
# PGBIN is the bin directory of the PostgreSQL installation celerysalt is
# installed in (default /usr/lib/postgresql/15/bin; nothing is installed
# anywhere).  A directory of symlinks to PGBIN's programs, except postgres,
# which becomes a script running the real one under valgrind with
# test/valgrind.supp; make installcheck then runs with --bindir pointing
# there (initdb follows its own symlink: the bootstrap runs unwrapped).
# Fails when a valgrind log is not empty (and keeps the directory, else
# removes it).  As root (the tests run as
# postgres in a copy of the tree) or as postgres.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}	# PGXS and headers
TESTS=${*:-jsonschema}
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }
[ -x "$PGBIN/postgres" ] || { echo "no postgres in $PGBIN" >&2; exit 2; }

VG=$(mktemp -d /tmp/celerysalt-valgrind.XXXXXX)
mkdir "$VG/bin" "$VG/log" "$VG/tree"
tar -C "$SRC" --exclude=.git --exclude=tmp_check --exclude=tmp_check_iso --exclude=results \
	--exclude=output_iso --exclude=artifacts -cf - . | tar -C "$VG/tree" -xf -
for f in "$PGBIN"/*; do ln -s "$f" "$VG/bin/"; done
rm "$VG/bin/postgres"
cat > "$VG/bin/postgres" <<WRAP
#!/bin/sh
exec valgrind --quiet --trace-children=yes --leak-check=full --show-leak-kinds=definite \\
	--suppressions=$VG/tree/test/valgrind.supp --log-file=$VG/log/vg.%p.log "$PGBIN/postgres" "\$@"
WRAP
chmod 755 "$VG/bin/postgres"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$VG"

rc=0
as_pg env PG_TEST_TIMEOUT_DEFAULT=180 PGCTLTIMEOUT=180 PATH="$VG/bin:/usr/bin:/bin" \
	make -s -C "$VG/tree" installcheck PG_CONFIG="$PG_CONFIG" REGRESS="$TESTS" ISOLATION= TAP_TESTS= \
	EXTRA_REGRESS_OPTS="--bindir=$VG/bin" || rc=1
reports=$(find "$VG/log" -name 'vg.*.log' -size +0 | wc -l)
started=$(find "$VG/log" -name 'vg.*.log' | wc -l)
echo "valgrind: $started server processes logged, $reports with reports (in $VG/log)"
if [ "$started" -eq 0 ]; then
	echo "valgrind: no process ran under valgrind" >&2; rc=1
fi
if [ "$reports" -gt 0 ]; then
	for f in $(find "$VG/log" -name 'vg.*.log' -size +0 | head -5); do echo "== $f"; head -60 "$f"; done
	rc=1
fi
if [ $rc = 0 ]; then echo "valgrind: OK"; rm -rf "$VG"; else echo "valgrind: FAILED (kept $VG)"; fi
exit $rc
