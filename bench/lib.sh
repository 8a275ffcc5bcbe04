# Shared set-up of the bench/ scripts (sourced, not run): the test
# environment's variables, a throwaway cluster of the script's own in a
# temporary directory, and its removal at exit.
#
#   . "$(dirname "$0")/lib.sh"
#   bench_init NAME PORT        # sets WORK, PGBIN, PY; as_pg, psql_
#   bench_cluster <<CONF ... CONF   # initdb, extra postgresql.conf lines, start
#   bench_at_exit 'command'     # run before the cluster is stopped

HR_TEST_DIR=${HR_TEST_DIR:-/tmp/heroku_resolver_test}
PY=/usr/bin/python3
AS_PG=()
if [[ $(id -u) -eq 0 ]]; then AS_PG=(runuser -u postgres --); fi
as_pg() { "${AS_PG[@]}" "$@"; }
BENCH_AT_EXIT=':'

bench_init() {
	BENCH_NAME=$1
	PORT=$2
	[[ -f $HR_TEST_DIR/env.sh ]] || {
		echo "$BENCH_NAME: no $HR_TEST_DIR/env.sh: run test/testenv.sh start first" >&2
		exit 1
	}
	# shellcheck disable=SC1091
	. "$HR_TEST_DIR/env.sh"
	PGBIN=$HR_PGBIN
	WORK=$(mktemp -d "/tmp/hr_$BENCH_NAME.XXXXXX")
	chmod 700 "$WORK"
	if [[ $(id -u) -eq 0 ]]; then chown postgres: "$WORK"; fi
	trap bench_cleanup EXIT
}

bench_at_exit() { BENCH_AT_EXIT=$1; }

bench_cleanup() {
	eval "$BENCH_AT_EXIT" || true
	if [[ -f $WORK/data/postmaster.pid ]]; then
		as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -m fast -w stop >/dev/null 2>&1 || true
	fi
	rm -rf "$WORK"
}

psql_() { as_pg "$PGBIN/psql" -XAtq -v ON_ERROR_STOP=1 -h "$WORK" -p "$PORT" -d postgres "$@"; }

# initdb, the common settings plus the extra lines on stdin, start
bench_cluster() {
	as_pg "$PGBIN/initdb" -D "$WORK/data" -A trust >/dev/null
	{
		printf "listen_addresses = ''\nunix_socket_directories = '%s'\nport = %s\n" "$WORK" "$PORT"
		printf "heroku.api_url = '%s'\nheroku.api_key_file = '%s'\nheroku.netrc_file = '/dev/null'\n" \
			"$HEROKU_MOCK_URL" "$HR_API_KEY_FILE"
		echo "heroku.allow_local_hosts = on"
		cat
	} >>"$WORK/data/postgresql.conf"
	as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w start >/dev/null
}
