#!/usr/bin/env bash
# The client library and the heroku-pg-resolve command under AddressSanitizer
# + UBSan: build the command (and the example program against the library
# objects) with -fsanitize=address,undefined and drive every mode against the
# mock and the TLS remote.  Any sanitizer report, leak included, fails.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { echo "asan-client: $*"; }
: "${HEROKU_MOCK_URL:?run through test/run-tests.sh}"
command -v clang >/dev/null || { say "clang not found (test/install-deps.sh installs it)"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
version=$(sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" heroku_resolver.control)
incdir=$(pg_config --includedir)
flags=(-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
	-D_GNU_SOURCE "-DHR_VERSION=\"$version\"" -I. -Isrc -Iclient "-I$incdir")
core=(src/hr_*.c client/hr_client.c)
# (watch's files too: the command dispatches to them; test/checks/asan_watch.sh drives them)
clang "${flags[@]}" -o "$work/heroku-pg-resolve" client/heroku-pg-resolve.c client/hr_service.c \
	client/hr_service_file.c client/hr_exec.c client/hr_watch*.c "${core[@]}" -lcurl -ljson-c -lpq \
	-lmicrohttpd -lcrypto -lpthread
clang "${flags[@]}" -o "$work/example" client/example.c "${core[@]}" -lcurl -ljson-c -lpq

export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:exitcode=99
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export HEROKU_API_URL=$HEROKU_MOCK_URL
cmd=("$work/heroku-pg-resolve" --api-key-file "$HR_API_KEY_FILE")
fail=0
# expect EXIT-CODE WHAT ARGS...: run, check the exit code, never 99 (a sanitizer report)
expect() {
	local want=$1 what=$2 rc=0
	shift 2
	"$@" >"$work/out" 2>"$work/err" </dev/null || rc=$?
	if [[ $rc != "$want" ]] || grep -q 'Sanitizer' "$work/err"; then
		say "FAILED: $what (exit $rc, wanted $want)"
		grep -v -i 'postgres://\|password' "$work/err" | head -30 || true
		fail=1
	else
		echo "ok - $what"
	fi
}
expect 0 'conninfo' "${cmd[@]}" myapp
expect 0 'URL form' "${cmd[@]}" --url myapp
expect 0 'quirky password' "${cmd[@]}" quirky-app
expect 0 'attachment name' "${cmd[@]}" myapp HEROKU_POSTGRESQL_VIOLET
expect 0 'TLS to the API' "${cmd[@]}" --api-url "$HEROKU_MOCK_TLS_URL" --ca-file "$HR_TEST_CA" myapp
expect 0 'service file' "${cmd[@]}" --service demo --service-file "$work/pg_service.conf" myapp
expect 0 'service file again (replace)' "${cmd[@]}" --service demo --service-file "$work/pg_service.conf" quirky-app
expect 3 '--exec passes the exit status' "${cmd[@]}" --exec myapp -- sh -c 'test -n "$DATABASE_URL" && exit 3'
expect 64 'bad app name' "${cmd[@]}" MyApp
expect 65 'not a postgres URL' "${cmd[@]}" myapp REDIS_URL
expect 66 'no such app' "${cmd[@]}" no-such-app
expect 77 'read-only token' "$work/heroku-pg-resolve" --api-key-file "$HR_READONLY_KEY_FILE" myapp
/usr/bin/python3 test/mockctl.py fault status --status 503 --count 1
expect 69 'API 503' "${cmd[@]}" myapp
/usr/bin/python3 test/mockctl.py fault body --body '{"DATABASE_URL": ' --count 1
expect 65 'truncated JSON' "${cmd[@]}" myapp
/usr/bin/python3 test/mockctl.py clear-faults
expect 0 '--help' "${cmd[@]}" --help
expect 0 '--version' "${cmd[@]}" --version
# the library through the example program: connect over TLS
expect 0 'example program connects' env HEROKU_API_KEY="$(head -n1 "$HR_API_KEY_FILE")" "$work/example" myapp
if ((fail)); then
	say "FAILED"
	exit 1
fi
say "client library and command clean under ASan+UBSan"
