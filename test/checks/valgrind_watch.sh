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
# shellcheck source=test/checks/lib/watch_drive.bash
. test/checks/lib/watch_drive.bash

watch_setup valgrind-watch valgrind
watch_build gcc -g -O0
vg=$WATCH_WORK/valgrind.log
watch_drive "${HR_WATCH_VALGRIND_PORT:-25399}" 20 valgrind --quiet --leak-check=full \
	--show-leak-kinds=definite --errors-for-leak-kinds=definite --error-exitcode=97 \
	--num-callers=40 --log-file="$vg" "$WATCH_WORK/heroku-pg-resolve" || true
# the exit status (97) says it; the report says what
watch_check 'valgrind: no error, no definite leak' bash -c "! grep -qE \
	'ERROR SUMMARY: [1-9]|definitely lost in|^==[0-9]+== (Invalid|Conditional|Use of uninit|Syscall param|Mismatched|Source and dest)' '$vg'"
if [[ -s $vg ]]; then grep -v -i 'postgres://\|password' "$vg" | head -200 || true; fi
watch_drive_end
