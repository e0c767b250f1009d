#!/usr/bin/env bash
# Prints the directory of the official JSON-Schema-Test-Suite
# (https://github.com/json-schema-org/JSON-Schema-Test-Suite, MIT) that TAP
# test 010, run_suite.pl and asan.sh run, at the commit in suite.commit.
# The suite is test data kept outside this repository, found in this order:
#   1. JSONSCHEMA_TEST_SUITE, if set;
#   2. a copy beside the checkout or under its parent's shared/ directory (the
#      layout of the machines this project is developed and tested on,
#      including /work/shared/jsonschema-test-suite);
#   3. a copy downloaded earlier into $JSONSCHEMA_SUITE_CACHE
#      (default /var/tmp/celerysalt-jsonschema-suite-<commit>);
#   4. a download of the pinned commit from GitHub into that cache (curl or
#      git; the test command's only network use besides packages).
# Exits 1 with a message on stderr when none works.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
commit=$(tr -d '[:space:]' <"$here/suite.commit")
cache=${JSONSCHEMA_SUITE_CACHE:-/var/tmp/celerysalt-jsonschema-suite-$commit}

usable() { [ -d "$1/tests/draft2020-12" ] && [ -d "$1/tests/draft7" ] && [ -d "$1/remotes" ]; }

if [ -n "${JSONSCHEMA_TEST_SUITE:-}" ]; then
	usable "$JSONSCHEMA_TEST_SUITE" && { echo "$JSONSCHEMA_TEST_SUITE"; exit 0; }
	echo "JSONSCHEMA_TEST_SUITE=$JSONSCHEMA_TEST_SUITE holds no tests/draft2020-12, tests/draft7 and remotes" >&2
	exit 1
fi
for d in "$root/../JSON-Schema-Test-Suite" "$root/../jsonschema-test-suite" \
	"$root/../shared/jsonschema-test-suite" /work/shared/jsonschema-test-suite "$cache"; do
	if usable "$d"; then
		found=$(cd "$d" && pwd)
		if [ -f "$found/COMMIT" ] && [ "$(tr -d '[:space:]' <"$found/COMMIT")" != "$commit" ]; then
			echo "note: $found is at commit $(cat "$found/COMMIT"), the tests pin $commit" >&2
		fi
		echo "$found"
		exit 0
	fi
done

tmp=$(mktemp -d "${cache}.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
url=https://codeload.github.com/json-schema-org/JSON-Schema-Test-Suite/tar.gz/$commit
if command -v curl >/dev/null && curl -fsSL --max-time 120 "$url" | tar -xz -C "$tmp" --strip-components=1 2>/dev/null; then
	:
elif command -v git >/dev/null && git -c advice.detachedHead=false clone -q https://github.com/json-schema-org/JSON-Schema-Test-Suite "$tmp/git" 2>/dev/null &&
	git -C "$tmp/git" checkout -q "$commit" 2>/dev/null; then
	mv "$tmp/git"/* "$tmp/"
else
	echo "the JSON-Schema-Test-Suite at commit $commit was not found (set JSONSCHEMA_TEST_SUITE to a checkout of" \
		"https://github.com/json-schema-org/JSON-Schema-Test-Suite at that commit) and could not be downloaded" >&2
	exit 1
fi
echo "$commit" >"$tmp/COMMIT"
chmod -R a+rX "$tmp"
rm -rf "$cache" && mv "$tmp" "$cache"
trap - EXIT
echo "$cache"
