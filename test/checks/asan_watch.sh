#!/usr/bin/env bash
# heroku-pg-resolve watch under AddressSanitizer + UBSan: build the command with
# -fsanitize=address,undefined and run a watcher through the paths of test/checks/lib/
# watch_drive.bash against the mock: start-up, a webhook delivered by the mock, every refusal
# of the receiver, a replay, a burst of 100 events, /healthz, the release feed, an API outage
# and its retry, a cluster that is down, SIGHUP, then SIGTERM.  Any sanitizer report, leak
# included, or an exit status other than 0 fails.  test/checks/valgrind_watch.sh drives the
# same under valgrind.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { echo "asan-watch: $*"; }
: "${HEROKU_MOCK_URL:?run through test/run-tests.sh}"
command -v clang >/dev/null || { say "clang not found (test/install-deps.sh installs it)"; exit 1; }
# shellcheck source=test/checks/lib/watch_drive.bash
. test/checks/lib/watch_drive.bash

build=$(mktemp -d)
trap 'rm -rf "$build"; watch_cleanup' EXIT
version=$(sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" heroku_resolver.control)
incdir=$(pg_config --includedir)
flags=(-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
	-D_GNU_SOURCE "-DHR_VERSION=\"$version\"" -I. -Isrc -Iclient "-I$incdir")
clang "${flags[@]}" -o "$build/heroku-pg-resolve" client/heroku-pg-resolve.c client/hr_service.c \
	client/hr_service_file.c client/hr_exec.c client/hr_watch*.c src/hr_*.c client/hr_client.c \
	-lcurl -ljson-c -lpq -lmicrohttpd -lcrypto -lpthread

export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:exitcode=99
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
fail=0
watch_drive asan-watch "${HR_WATCH_ASAN_PORT:-50398}" 1 "$build/heroku-pg-resolve" || fail=1
watch_check 'no sanitizer report' bash -c "! grep -q 'Sanitizer' '$WATCH_WORK/err'" || true
fail=$((fail | WATCH_FAILED))
watch_drive_end
if ((fail)); then
	say "FAILED"
	exit 1
fi
say "heroku-pg-resolve watch clean under ASan+UBSan"
