#!/usr/bin/env bash
# heroku-pg-resolve watch under valgrind memcheck: build the command (-g -O0) and run a watcher,
# as `valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=97`, through
# the paths of test/checks/lib/watch_drive.bash that test/checks/asan_watch.sh drives under ASan:
# start-up, a webhook delivered by the mock, every refusal of the receiver (no or a bad
# signature, wrong methods, bodies over 1 MiB, bad JSON, an unknown app), a replayed delivery, a
# burst of 100 events, the feed, an API outage, a cluster that is down, SIGHUP and SIGTERM.
# Any memcheck error (invalid read or write, uninitialised value, bad free, ...) or definite
# leak, anywhere in the process, fails: the exit status is then 97.  valgrind comes from
# test/install-deps.sh, which test/run-tests.sh runs first.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { echo "valgrind-watch: $*"; }
: "${HEROKU_MOCK_URL:?run through test/run-tests.sh}"
command -v valgrind >/dev/null || { say "valgrind not found (test/install-deps.sh installs it)"; exit 1; }
# shellcheck source=test/checks/lib/watch_drive.bash
. test/checks/lib/watch_drive.bash

build=$(mktemp -d)
trap 'rm -rf "$build"; watch_cleanup' EXIT
version=$(sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" heroku_resolver.control)
incdir=$(pg_config --includedir)
gcc -g -O0 -D_GNU_SOURCE "-DHR_VERSION=\"$version\"" -I. -Isrc -Iclient "-I$incdir" \
	-o "$build/heroku-pg-resolve" client/heroku-pg-resolve.c client/hr_service.c \
	client/hr_service_file.c client/hr_exec.c client/hr_watch*.c src/hr_*.c client/hr_client.c \
	-lcurl -ljson-c -lpq -lmicrohttpd -lcrypto -lpthread

fail=0
watch_drive valgrind-watch "${HR_WATCH_VALGRIND_PORT:-50399}" 20 valgrind --quiet \
	--leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
	--error-exitcode=97 --num-callers=40 --log-file="$build/vg.log" \
	"$build/heroku-pg-resolve" || fail=1
# the exit status (97) says it; the report says what
watch_check 'valgrind: no error, no definite leak' \
	bash -c "! grep -qE 'ERROR SUMMARY: [1-9]|definitely lost in|^==[0-9]+== (Invalid|Conditional|Use of uninit|Syscall param|Mismatched|Source and dest)' '$build/vg.log'"
fail=$((fail | WATCH_FAILED))
if [[ -s $build/vg.log ]]; then
	grep -v -i 'postgres://\|password' "$build/vg.log" | head -200
fi
watch_drive_end
if ((fail)); then
	say "FAILED (exit status 97 is valgrind's: see its report above)"
	exit 1
fi
say "heroku-pg-resolve watch clean under valgrind memcheck"
