#!/usr/bin/env bash
# The pg_regress suite under valgrind memcheck (see test/valgrind.sh).
exec bash "$(dirname "$0")/../valgrind.sh"
