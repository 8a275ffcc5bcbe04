# Shared set-up of the bench/ scripts (sourced, not run): the test
# environment's variables, a throwaway cluster of the script's own in a
# temporary directory, and its removal at exit.
#
#   . "$(dirname "$0")/lib.sh"
#   bench_init NAME PORT        # sets WORK, PGBIN, PY; as_pg, psql_ (PSQL_PORT=P psql_: another)
#   bench_cluster <<CONF ... CONF   # initdb, extra postgresql.conf lines, start
#   bench_cluster DIR PORT <<CONF   # another cluster of the script's (its log: DIR.log)
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
	local pidfile
	eval "$BENCH_AT_EXIT" || true
	for pidfile in "$WORK"/*/postmaster.pid; do
		[[ -f $pidfile ]] || continue
		as_pg "$PGBIN/pg_ctl" -D "$(dirname "$pidfile")" -m fast -w stop >/dev/null 2>&1 || true
	done
	rm -rf "$WORK"
}

psql_() { as_pg "$PGBIN/psql" -XAtq -v ON_ERROR_STOP=1 -h "$WORK" -p "${PSQL_PORT:-$PORT}" -d postgres "$@"; }

# initdb, the common settings plus the extra lines on stdin, start: $WORK/data on $PORT (its
# log $WORK/server.log), or DIR on PORT (its log DIR.log)
bench_cluster() {
	local data=${1:-$WORK/data} port=${2:-$PORT} log=$WORK/server.log
	[[ $# -eq 0 ]] || log=$data.log
	as_pg "$PGBIN/initdb" -D "$data" -A trust >/dev/null
	{
		printf "listen_addresses = ''\nunix_socket_directories = '%s'\nport = %s\n" "$WORK" "$port"
		printf "heroku.api_url = '%s'\nheroku.api_key_file = '%s'\nheroku.netrc_file = '/dev/null'\n" \
			"$HEROKU_MOCK_URL" "$HR_API_KEY_FILE"
		echo "heroku.allow_local_hosts = on"
		cat
	} >>"$data/postgresql.conf"
	as_pg "$PGBIN/pg_ctl" -D "$data" -l "$log" -w start >/dev/null
}
