# shellcheck shell=bash
# Sourced by the autopkgtest scripts, run from the top of the source tree as root.
# test/testenv.sh's environment (the mock Heroku Platform API over HTTP and HTTPS, and two
# TLS-only "remote" clusters standing in for Heroku Postgres, plus a "local" cluster) started
# with the installed server binaries of one PostgreSQL version, which load the packaged
# extension.  HR_TEST_DIR (a directory the postgres user can reach) and the HR_*_PORT settings
# of test/testenv.sh are taken from the environment when set.

HR_TEST_BASE=
if [[ -z ${HR_TEST_DIR:-} ]]; then
	HR_TEST_BASE=$(mktemp -d /tmp/heroku-resolver-autopkgtest.XXXXXX)
	chmod 755 "$HR_TEST_BASE"
	export HR_TEST_DIR=$HR_TEST_BASE/env
fi
export HR_TEST_DIR

# hr_env_start VERSION: start the environment and load its env.sh (ports and file names)
hr_env_start() {
	export HR_PGBIN=/usr/lib/postgresql/$1/bin
	bash test/testenv.sh start
	# shellcheck source=/dev/null
	. "$HR_TEST_DIR/env.sh"
}

# hr_env_stop: stop the servers and the mock, and delete what this file made
hr_env_stop() {
	bash test/testenv.sh stop >/dev/null 2>&1 || true
	if [[ -n $HR_TEST_BASE ]]; then rm -rf "$HR_TEST_BASE"; fi
}

# as_pg_env COMMAND...: run as the postgres user in the environment's copy of the tree
as_pg_env() {
	# shellcheck disable=SC2016 # expanded by the inner shell, after env.sh
	runuser -u postgres -- bash -c '. "$HR_TEST_DIR/env.sh" && cd "$HR_REPO" && exec "$@"' bash "$@"
}
