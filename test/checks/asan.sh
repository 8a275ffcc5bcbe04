#!/usr/bin/env bash
# The resolver core under AddressSanitizer + UBSan: build fuzz/core_unit.c (a table of fixed
# inputs through every core entry point that needs no network, and one hr_resolve() against
# the mock when HEROKU_MOCK_URL and HR_API_KEY_FILE are set) and run it.  Any sanitizer
# report, leak included, or failed check fails.  See doc/hardening.md (fuzzing and sanitizers).
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { echo "asan: $*"; }
command -v clang >/dev/null || { say "clang not found (test/install-deps.sh installs it)"; exit 1; }

if ! out=$(make -s -C fuzz unit 2>&1); then
	printf '%s\n' "$out"
	say "build failed"
	exit 1
fi

export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
if fuzz/out/core_unit; then
	say "core clean under ASan+UBSan"
else
	say "FAILED"
	exit 1
fi
