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
# shellcheck source=test/checks/lib/watch_drive.bash
. test/checks/lib/watch_drive.bash

watch_setup asan-watch clang
watch_build clang -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=undefined
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:exitcode=99
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
watch_drive "${HR_WATCH_ASAN_PORT:-25398}" 1 "$WATCH_WORK/heroku-pg-resolve" || true
watch_check 'no sanitizer report' bash -c "! grep -q 'Sanitizer' '$WATCH_WORK/err'"
watch_drive_end
