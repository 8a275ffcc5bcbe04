#!/usr/bin/env bash
# The project's test command (CI's .ci/run runs exactly this): install what is missing, build
# and install the extension, start the test environment (test/testenv.sh), then run
#   regress  pg_regress on sql/*.sql (each test counted),
#   tap      prove on test/t/*.pl (each top-level ok / not ok line counted),
#   checks   every executable test/checks/*.sh (each script counted: exit 0 = pass),
#   mock     the mock's self-tests, test/test_mock.py (each unittest test counted).
# The mock's self-tests run last so nothing they change in the shared mock reaches the other
# suites. Prints `N passed, N failed` as its last line; exits non-zero on any failure or when
# no test ran. Needs root (make install; the servers run as the postgres user).
#
#   bash test/run-tests.sh [--only regress|tap|checks|mock]
#
# Environment: HR_TEST_DIR (default /tmp/heroku_resolver_test), HR_KEEP=1 keeps it afterwards,
# PG_CONFIG, PG_CFLAGS (e.g. -Werror in CI), HR_SUITE_TIMEOUT (seconds per suite, default 2400),
# the HR_*_PORT and HR_LOCAL_PRELOAD settings of test/testenv.sh, HR_TAP_FILES (a glob of
# test/t/ file names without .pl, e.g. '07*', to run some TAP files while developing).
set -euo pipefail

REPO_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PY=/usr/bin/python3
export HR_TEST_DIR=${HR_TEST_DIR:-/tmp/heroku_resolver_test}
SUITE_TIMEOUT=${HR_SUITE_TIMEOUT:-2400}
# Long output of a failed pg_regress run is cut here.
DIFF_LINES=400

only=''
while [[ $# -gt 0 ]]; do
	case $1 in
	--only)
		only=${2:-}
		shift 2 || true
		;;
	--only=*)
		only=${1#--only=}
		shift
		;;
	-h | --help)
		sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "run-tests: unknown argument $1 (see --help)" >&2
		exit 2
		;;
	esac
done
case $only in
'' | regress | tap | checks | mock) ;;
*)
	echo "run-tests: --only takes regress, tap, checks or mock" >&2
	exit 2
	;;
esac

PASSED=0
FAILED=0
SKIPPED=0
SUMMARY=()
ENV_STARTED=0
FINISHED=0

say() { echo "run-tests: $*"; }
banner() { printf '\n========== %s ==========\n' "$*"; }
wanted() { [[ -z $only || $only == "$1" ]]; }

# record SUITE PASSED FAILED [SKIPPED]: add a suite's counts to the totals.
record() {
	local skipped=${4:-0}
	PASSED=$((PASSED + $2))
	FAILED=$((FAILED + $3))
	SKIPPED=$((SKIPPED + skipped))
	SUMMARY+=("$(printf '  %-8s %4d passed %4d failed %4d skipped' "$1" "$2" "$3" "$skipped")")
}

# Run a command as the postgres OS user, in the copy of the repo that testenv.sh start makes
# (the checkout may be closed to that user), with env.sh sourced (so
# psql's \getenv and the TAP scripts see the environment's ports and files).
as_pg_env() {
	# shellcheck disable=SC2016 # expanded by the inner shell, after env.sh
	runuser -u postgres -- bash -c '. "$HR_TEST_DIR/env.sh" && cd "$HR_REPO" && exec "$@"' bash "$@"
}

# Stop the environment; delete it unless asked to keep it or something failed (its logs explain).
cleanup() {
	if ((ENV_STARTED)); then
		bash "$REPO_TOP/test/testenv.sh" stop >/dev/null 2>&1 || say "testenv.sh stop failed"
		ENV_STARTED=0
	fi
	if [[ -f $HR_TEST_DIR/.heroku_resolver_test ]]; then
		if ((FAILED == 0)) && [[ ${HR_KEEP:-0} != 1 ]]; then
			rm -rf "$HR_TEST_DIR"
		else
			say "test environment kept in $HR_TEST_DIR (server logs *.log, mock.log, regress/, tap/, logs/)"
		fi
	fi
}

print_totals() {
	banner summary
	if ((${#SUMMARY[@]})); then printf '%s\n' "${SUMMARY[@]}"; fi
	if ((PASSED + FAILED == 0)); then say "no test ran"; fi
	echo "$PASSED passed, $FAILED failed"
}

# Whatever way the script ends early (an error, a signal), stop the servers and still close
# with the totals, counting the interruption as a failure.
# shellcheck disable=SC2317 # called through the EXIT trap
on_exit() {
	local rc=$?
	((FINISHED)) && return
	FINISHED=1
	FAILED=$((FAILED + 1))
	SUMMARY+=("  aborted (exit status $rc)")
	cleanup
	print_totals
	exit 1
}
trap on_exit EXIT
trap 'exit 130' INT TERM HUP

[[ $(id -u) -eq 0 ]] || {
	echo "run-tests: run as root (make install; servers are started as the postgres user)" >&2
	exit 1
}
cd "$REPO_TOP"

banner "dependencies"
bash test/install-deps.sh

PGBIN=$("$PG_CONFIG" --bindir)
PG_REGRESS=$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress
PERL_LIB=$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/perl

# Build and install only when a suite needs the extension. PG_CFLAGS reaches PGXS from the
# environment (not the command line, which would override the Makefile's own additions).
# In CI, warnings are errors (PostgreSQL's own headers trip -Wunused-parameter).
if [[ ${CI:-} == true && -z ${PG_CFLAGS+set} ]]; then
	export PG_CFLAGS='-Wall -Wextra -Werror -Wno-unused-parameter'
fi
BUILD_OK=1
if [[ -f Makefile ]] && { wanted regress || wanted tap; }; then
	banner "build"
	if make -j"$(nproc)" PG_CONFIG="$PG_CONFIG" && make install PG_CONFIG="$PG_CONFIG"; then
		# A good build is not a test: it is not counted.
		SUMMARY+=("  build    ok")
	else
		say "build or install failed: regress and tap suites skipped"
		record build 0 1
		BUILD_OK=0
	fi
fi

banner "test environment"
ENV_STARTED=1
bash test/testenv.sh start
# shellcheck source=/dev/null
. "$HR_TEST_DIR/env.sh"
LOGDIR=$HR_TEST_DIR/logs
mkdir -p "$LOGDIR"

run_regress() {
	local tests=() log=$LOGDIR/regress.log rc=0 pass fail ignored
	mapfile -t tests < <(find "$HR_REPO/sql" -maxdepth 1 -name '*.sql' -printf '%f\n' 2>/dev/null |
		LC_ALL=C sort | sed 's/\.sql$//')
	if ((${#tests[@]} == 0)); then
		say "regress: no sql/*.sql tests"
		return 0
	fi
	banner "regress: ${tests[*]}"
	runuser -u postgres -- mkdir -p "$HR_TEST_DIR/regress"
	# --use-existing neither drops nor creates the database: make a fresh one as pg_regress
	# itself would (template0, C locale messages and formats).
	printf '%s\n' \
		'DROP DATABASE IF EXISTS contrib_regression;' \
		'CREATE DATABASE contrib_regression TEMPLATE template0;' \
		"ALTER DATABASE contrib_regression SET lc_messages TO 'C';" \
		"ALTER DATABASE contrib_regression SET lc_monetary TO 'C';" \
		"ALTER DATABASE contrib_regression SET lc_numeric TO 'C';" \
		"ALTER DATABASE contrib_regression SET lc_time TO 'C';" \
		"ALTER DATABASE contrib_regression SET bytea_output TO 'hex';" \
		"ALTER DATABASE contrib_regression SET timezone_abbreviations TO 'Default';" |
		runuser -u postgres -- env PGOPTIONS='-c client_min_messages=warning' "$PGBIN/psql" -X -q \
			-v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -d postgres >/dev/null
	as_pg_env timeout -k 30 "$SUITE_TIMEOUT" "$PG_REGRESS" --use-existing --bindir="$PGBIN" \
		--host="$PGHOST" --port="$PGPORT" --user=postgres --inputdir=. \
		--outputdir="$HR_TEST_DIR/regress" --dbname=contrib_regression "${tests[@]}" \
		2>&1 | tee "$log" || rc=$?
	# PG15: "test NAME ... ok" / "     NAME ... FAILED" (parallel groups); PG16+: "ok N - NAME".
	pass=$(grep -cE '^(test +)?[ ]*[^ ]+ +\.\.\. +ok( |$)|^ok +[0-9]+ +[-+] ' "$log" || true)
	fail=$(grep -cE '^(test +)?[ ]*[^ ]+ +\.\.\. +FAILED( |$)|^not ok +[0-9]+ +[-+] ' "$log" || true)
	ignored=$(grep -cE '\.\.\. +failed \(ignored\)' "$log" || true)
	if ((rc != 0 && fail == 0)); then
		say "regress: pg_regress exited with status $rc"
		fail=1
	fi
	if ((fail > 0)) && [[ -s $HR_TEST_DIR/regress/regression.diffs ]]; then
		banner "regression.diffs (first $DIFF_LINES lines; all in $HR_TEST_DIR/regress)"
		head -n "$DIFF_LINES" "$HR_TEST_DIR/regress/regression.diffs"
	fi
	record regress "$pass" "$fail" "$ignored"
}

run_tap() {
	local files=() log=$LOGDIR/tap.log rc=0 pass fail skip dubious
	mapfile -t files < <(find "$HR_REPO/test/t" -maxdepth 1 -name "${HR_TAP_FILES:-*}.pl" \
		-printf 'test/t/%f\n' 2>/dev/null | LC_ALL=C sort)
	if ((${#files[@]} == 0)); then
		say "tap: no test/t/*.pl tests"
		return 0
	fi
	banner "tap: ${files[*]}"
	runuser -u postgres -- mkdir -p "$HR_TEST_DIR/tap"
	as_pg_env env PERL5LIB="$PERL_LIB" PG_REGRESS="$PG_REGRESS" TESTDIR="$HR_TEST_DIR/tap" \
		PG_CONFIG="$PG_CONFIG" timeout -k 30 "$SUITE_TIMEOUT" prove -v --nocolor "${files[@]}" \
		2>&1 | tee "$log" || rc=$?
	# Count assertions of each file's top level (subtests are indented and summed up there).
	pass=$(grep -E '^ok [0-9]+' "$log" | grep -cviE '# *skip' || true)
	skip=$(grep -E '^ok [0-9]+' "$log" | grep -ciE '# *skip' || true)
	fail=$(grep -E '^not ok [0-9]+' "$log" | grep -cviE '# *todo' || true)
	# A script that died with no "not ok" (bad plan, exception) still failed.
	dubious=$(grep -cE '\(Wstat: [0-9]+.* Tests: [0-9]+ Failed: 0\)' "$log" || true)
	fail=$((fail + dubious))
	if ((rc != 0 && fail == 0)); then
		say "tap: prove exited with status $rc"
		fail=1
	fi
	record tap "$pass" "$fail" "$skip"
}

run_checks() {
	local f name pass=0 fail=0 rc
	local checks=()
	mapfile -t checks < <(find "$REPO_TOP/test/checks" -maxdepth 1 -name '*.sh' 2>/dev/null | LC_ALL=C sort)
	if ((${#checks[@]} == 0)); then
		say "checks: no test/checks/*.sh"
		return 0
	fi
	banner "checks"
	# Checks run as root in the checkout (they may inspect it) with env.sh's variables set.
	for f in "${checks[@]}"; do
		name=${f#"$REPO_TOP"/}
		if [[ ! -x $f ]]; then
			say "checks: $name is not executable, not run"
			continue
		fi
		rc=0
		timeout -k 10 "$SUITE_TIMEOUT" "$f" </dev/null 2>&1 | tee -a "$LOGDIR/checks.log" || rc=$?
		if ((rc == 0)); then
			echo "ok - $name"
			pass=$((pass + 1))
		else
			echo "FAILED - $name (exit status $rc)"
			fail=$((fail + 1))
		fi
	done
	record checks "$pass" "$fail"
}

run_mock() {
	local log=$LOGDIR/mock.log rc=0 ran last failures errors skipped unexpected fail
	if [[ ! -f $HR_REPO/test/test_mock.py ]]; then
		say "mock: no test/test_mock.py"
		return 0
	fi
	banner "mock self-tests"
	# Run from test/ by module name: `-m unittest test/test_mock.py` from the top would import
	# Python's own `test` package instead, and test/ is where the mock's modules are.
	as_pg_env bash -c 'cd test && exec "$@"' bash timeout -k 30 "$SUITE_TIMEOUT" \
		"$PY" -m unittest -v test_mock </dev/null 2>&1 | tee "$log" || rc=$?
	# unittest closes with "Ran N tests in ..." then "OK (skipped=s)" or
	# "FAILED (failures=a, errors=b, skipped=s, unexpected successes=u)".
	ran=$(sed -nE 's/^Ran ([0-9]+) tests? in .*/\1/p' "$log" | tail -n 1)
	last=$(grep -E '^(OK|FAILED)( \(.*\))?$' "$log" | tail -n 1 || true)
	failures=$(sed -nE 's/.*[( ]failures=([0-9]+).*/\1/p' <<<"$last")
	errors=$(sed -nE 's/.*[( ]errors=([0-9]+).*/\1/p' <<<"$last")
	skipped=$(sed -nE 's/.*[( ]skipped=([0-9]+).*/\1/p' <<<"$last")
	unexpected=$(sed -nE 's/.*unexpected successes=([0-9]+).*/\1/p' <<<"$last")
	fail=$((${failures:-0} + ${errors:-0} + ${unexpected:-0}))
	if [[ -z $ran ]]; then
		say "mock: no unittest summary (exit status $rc)"
		record mock 0 1
		return 0
	fi
	if ((rc != 0 && fail == 0)); then fail=1; fi
	record mock "$((ran - fail - ${skipped:-0} > 0 ? ran - fail - ${skipped:-0} : 0))" "$fail" "${skipped:-0}"
}

if ((BUILD_OK)); then
	if wanted regress; then run_regress; fi
	if wanted tap; then run_tap; fi
fi
if wanted checks; then run_checks; fi
if wanted mock; then run_mock; fi

FINISHED=1
cleanup
print_totals
if ((FAILED > 0 || PASSED == 0)); then exit 1; fi
exit 0
