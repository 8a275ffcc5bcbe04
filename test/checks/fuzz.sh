#!/usr/bin/env bash
# Fuzz the resolver core: build the libFuzzer harnesses of fuzz/ (ASan + UBSan) and run each
# for HR_FUZZ_SECONDS seconds (default 60), starting from the seeds in fuzz/corpus/<name>/.
# Fails on any crash, leak, UB report or broken property; the crashing input is left in
# fuzz/out/<name>-crash-*, the full log in fuzz/out/<name>.log.  See doc/hardening.md (fuzzing and sanitizers).
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { echo "fuzz: $*"; }
command -v clang >/dev/null || { say "clang not found (test/install-deps.sh installs it)"; exit 1; }

seconds=${HR_FUZZ_SECONDS:-60}
[[ $seconds =~ ^[0-9]+$ ]] && ((seconds > 0)) || { say "HR_FUZZ_SECONDS must be a positive number"; exit 1; }

if ! out=$(make -s -C fuzz all 2>&1); then
	printf '%s\n' "$out"
	say "build failed"
	exit 1
fi

start=$SECONDS
if make -s -C fuzz run SECONDS="$seconds"; then
	say "all harnesses clean after ${seconds}s each ($((SECONDS - start))s in all)"
else
	say "FAILED: see fuzz/out/*.log and fuzz/out/*-crash-*"
	exit 1
fi
