#!/usr/bin/env bash
# A real PgBouncer (Debian's package) for the watcher's --pgbouncer tests and bench/sinks.sh, run
# as the postgres OS user on a private port with its own directory under $HR_TEST_DIR, in front
# of the test env's TLS-only "remote" clusters.
#
#   bash test/pgbouncer.sh start|stop|status
#
# Variables: HR_TEST_DIR (the test env's), HR_PGB_PORT (default 6439: pass your own),
# HR_PGB_DIR (default $HR_TEST_DIR/pgbouncer), HR_PGB_SSLMODE (server_tls_sslmode, default
# require), HR_PGB_LOGIN_RETRY (server_login_retry, default PgBouncer's 15), HR_PGB_EXTRA (more
# lines for [pgbouncer], e.g. the server_tls_* files of test/t/081_watch_mtls.pl).
#
# Clients log in as "client", the admin console as "pgbadmin" (auth_type scram-sha-256, passwords
# in userlist.txt); their passwords are in $HR_PGB_DIR/client.pgpass and admin.pgpass (libpq
# passfiles, so no password is on a command line). The [databases] section is
# $HR_PGB_DIR/databases.ini, pulled in by %include; the watcher owns it (group postgres, 0640).
# After start, $HR_PGB_DIR/env.sh gives HR_PGB_ADMIN (the admin conninfo) and the rest.
set -euo pipefail

HR_TEST_DIR=${HR_TEST_DIR:-/tmp/heroku_resolver_test}
PORT=${HR_PGB_PORT:-6439}
DIR=${HR_PGB_DIR:-$HR_TEST_DIR/pgbouncer}
SSLMODE=${HR_PGB_SSLMODE:-require}
RETRY=${HR_PGB_LOGIN_RETRY:-15}
EXTRA=${HR_PGB_EXTRA:-}
AS_PG=()
if [[ $(id -u) -eq 0 ]]; then AS_PG=(runuser -u postgres --); fi

die() {
	echo "pgbouncer.sh: $*" >&2
	exit 1
}

running_pid() {
	local pid
	[[ -s $DIR/pgbouncer.pid ]] || return 1
	pid=$(cat "$DIR/pgbouncer.pid")
	kill -0 "$pid" 2>/dev/null && grep -q pgbouncer "/proc/$pid/comm" 2>/dev/null || return 1
	echo "$pid"
}

stop() {
	local pid i
	pid=$(running_pid) || return 0
	kill "$pid"
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
}

start() {
	command -v pgbouncer >/dev/null || die "pgbouncer is not installed (bash test/install-deps.sh)"
	stop
	mkdir -p "$DIR"
	chown postgres:postgres "$DIR"
	chmod 0750 "$DIR"
	local cpw apw
	cpw=$(openssl rand -hex 16)
	apw=$(openssl rand -hex 16)
	umask 077
	printf '"client" "%s"\n"pgbadmin" "%s"\n' "$cpw" "$apw" >"$DIR/userlist.txt"
	printf '*:*:*:client:%s\n' "$cpw" >"$DIR/client.pgpass"
	printf '*:*:*:pgbadmin:%s\n' "$apw" >"$DIR/admin.pgpass"
	chown postgres:postgres "$DIR/userlist.txt"
	# the watcher's file: created empty once; its group is kept by every rewrite
	if [[ ! -e $DIR/databases.ini ]]; then
		: >"$DIR/databases.ini"
		chown root:postgres "$DIR/databases.ini" 2>/dev/null || true
		chmod 0640 "$DIR/databases.ini"
	fi
	cat >"$DIR/pgbouncer.ini" <<INI
[databases]
%include $DIR/databases.ini

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PORT
unix_socket_dir = $DIR
auth_type = scram-sha-256
auth_file = $DIR/userlist.txt
admin_users = pgbadmin
pool_mode = transaction
default_pool_size = 4
server_tls_sslmode = $SSLMODE
server_login_retry = $RETRY
logfile = $DIR/pgbouncer.log
pidfile = $DIR/pgbouncer.pid
$EXTRA
INI
	chown postgres:postgres "$DIR/pgbouncer.ini"
	umask 022
	"${AS_PG[@]}" pgbouncer -d -q "$DIR/pgbouncer.ini" || die "pgbouncer did not start (see $DIR/pgbouncer.log)"
	for ((i = 0; i < 50; i++)); do
		[[ -S $DIR/.s.PGSQL.$PORT ]] && break
		sleep 0.1
	done
	[[ -S $DIR/.s.PGSQL.$PORT ]] || die "pgbouncer is not listening on $PORT"
	# it starts even when the TCP port is taken (the socket is enough for it): not for us
	if grep -q 'cannot listen on' "$DIR/pgbouncer.log"; then
		stop
		die "port $PORT is in use: choose another HR_PGB_PORT"
	fi
	cat >"$DIR/env.sh" <<ENV
export HR_PGB_DIR=$DIR
export HR_PGB_PORT=$PORT
export HR_PGB_FILE=$DIR/databases.ini
export HR_PGB_ADMIN='host=$DIR port=$PORT dbname=pgbouncer user=pgbadmin passfile=$DIR/admin.pgpass'
export HR_PGB_CLIENT='host=127.0.0.1 port=$PORT user=client passfile=$DIR/client.pgpass'
ENV
}

case ${1:-} in
start) start ;;
stop) stop ;;
status) running_pid >/dev/null && echo running || echo stopped ;;
*) die "usage: pgbouncer.sh start|stop|status" ;;
esac
