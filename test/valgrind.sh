#!/usr/bin/env bash
# Memory safety: the pg_regress suite against a postmaster running under
# valgrind memcheck.  Fails on any error whose stack touches the extension's
# code (heroku_resolver.so: src/hr_*.c, src/pg_*.c) and on any definite leak
# in it.  Known PostgreSQL and library noise is in test/valgrind.supp; the
# rest (errors that never touch our code) is counted but not fatal, since
# Debian's server is not built with USE_VALGRIND.
#
# Needs the test environment (test/testenv.sh start; test/run-tests.sh runs
# this as test/checks/valgrind.sh).  Also: make valgrind.
set -euo pipefail

: "${HR_TEST_DIR:?start the test environment first (test/testenv.sh start)}"
REPO_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGBIN=${HR_PGBIN:-/usr/lib/postgresql/15/bin}
PORT=${HR_VALGRIND_PORT:-29339}
VG=$HR_TEST_DIR/valgrind
DATA=$VG/data
SRC=$HR_TEST_DIR/src
AS_PG=()
if [[ $(id -u) -eq 0 ]]; then AS_PG=(runuser -u postgres --); fi

command -v valgrind >/dev/null || { echo "valgrind: not installed (test/install-deps.sh)"; exit 1; }

rm -rf "$VG"
mkdir -p "$VG/logs"
[[ $(id -u) -eq 0 ]] && chown -R postgres:postgres "$VG"
"${AS_PG[@]}" "$PGBIN/initdb" -D "$DATA" -U postgres --auth-local=trust -E UTF8 --locale=C -N \
	>"$VG/initdb.log" 2>&1
cat >>"$DATA/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$VG'
fsync = off
max_connections = 20
shared_buffers = 16MB
lc_messages = 'C'
timezone = 'UTC'
heroku.allow_local_hosts = on
CONF

stop() {
	"${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$DATA" -m fast -w -t 120 stop >/dev/null 2>&1 || true
}
trap stop EXIT

# backends are forked, not exec'd: valgrind follows them without
# --trace-children; each writes its own log
"${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$DATA" -w -t 300 -l "$VG/server.log" \
	-p "$(command -v valgrind)" \
	-o "--quiet --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite
	    --num-callers=30 --suppressions=$SRC/test/valgrind.supp
	    --log-file=$VG/logs/vg.%p.log $PGBIN/postgres" start >/dev/null 2>&1 || {
	# pg_ctl -p names the binary; fall back to running valgrind ourselves
	"${AS_PG[@]}" bash -c "cd '$VG' && setsid valgrind --quiet --leak-check=full \
		--show-leak-kinds=definite --errors-for-leak-kinds=definite --num-callers=30 \
		--suppressions='$SRC/test/valgrind.supp' --log-file='$VG/logs/vg.%p.log' \
		'$PGBIN/postgres' -D '$DATA' >'$VG/server.log' 2>&1 &"
	for _ in $(seq 1 300); do
		"$PGBIN/pg_isready" -q -h "$VG" -p "$PORT" && break
		sleep 1
	done
}
"$PGBIN/pg_isready" -q -h "$VG" -p "$PORT" || { echo "valgrind: server did not start"; tail -20 "$VG/server.log"; exit 1; }

# the same suite as test/run-tests.sh, on this server
tests=$(cd "$SRC" && ls sql/*.sql | sed 's#sql/##; s#\.sql$##' | sort)
set +e
(cd "$SRC" && "${AS_PG[@]}" env PATH="$PGBIN:$PATH" HEROKU_MOCK_URL="$HEROKU_MOCK_URL" \
	HEROKU_MOCK_TLS_URL="$HEROKU_MOCK_TLS_URL" HR_API_KEY_FILE="$HR_API_KEY_FILE" \
	HR_READONLY_KEY_FILE="$HR_READONLY_KEY_FILE" HR_NETRC_FILE="$HR_NETRC_FILE" \
	HR_TEST_CA="$HR_TEST_CA" HR_TEST_CA_EXPIRED="${HR_TEST_CA_EXPIRED:-}" HR_TEST_DIR="$HR_TEST_DIR" \
	HR_MOCKCTL="${HR_MOCKCTL:-}" HR_ROTATE="${HR_ROTATE:-}" HR_PYTHON="${HR_PYTHON:-/usr/bin/python3}" \
	HR_REMOTE_PORT="$HR_REMOTE_PORT" HR_REMOTE2_PORT="$HR_REMOTE2_PORT" \
	HR_REMOTE_SOCK="$HR_REMOTE_SOCK" HR_REMOTE2_SOCK="$HR_REMOTE2_SOCK" HR_PGBIN="$PGBIN" \
	"$("$PGBIN/pg_config" --pkglibdir)/pgxs/src/test/regress/pg_regress" \
	--host="$VG" --port="$PORT" --user=postgres --inputdir=. --outputdir="$VG/regress" \
	--dbname=contrib_regression $tests) >"$VG/regress.log" 2>&1
regress_rc=$?
set -e
stop
trap - EXIT

# error blocks that mention our code
ours='heroku_resolver\.so|hr_[a-z_]+ \(|pg_[a-z_]+\.c|heroku_resolver\.c'
bad=0
errors=0
for f in "$VG"/logs/vg.*.log; do
	[[ -s $f ]] || continue
	# valgrind separates error reports with blank "==PID== " lines
	# Our code must be among the innermost 10 frames of a report, not counting
	# the executor hooks (pg_heal.c), whose frame is under every query: that
	# does not make PostgreSQL's own reports ours.
	n=$(awk -v re="$ours" '
		function done() { if (blk != "" && top ~ re && blk ~ /(Invalid|uninitialised|definitely lost|Mismatched|overlap|free\(\))/) n++; blk=""; top=""; frames=0 }
		/^==[0-9]+== *$/ { done(); next }
		{ blk = blk "\n" $0
		  # our hook calling standard_Executor*: a pass-through frame, not ours
		  if ($0 ~ /(at|by) 0x/ && !(prev ~ /standard_Executor/) && frames++ < 10) top = top "\n" $0
		  prev = $0 }
		END { done(); print n+0 }' "$f")
	e=$(grep -c 'ERROR SUMMARY\|Invalid \|uninitialised\|definitely lost' "$f" || true)
	errors=$((errors + e))
	if ((n > 0)); then
		echo "valgrind: $n report(s) touching the extension in $(basename "$f"):"
		sed -n '1,80p' "$f"
		bad=$((bad + n))
	fi
done
nlogs=$(ls "$VG"/logs | wc -l)
echo "valgrind: $nlogs process logs; $bad report(s) touching the extension; $errors other lines of noise"
grep -E '^(ok|not ok|test |#)' "$VG/regress.log" | tail -12 || true
if ((regress_rc != 0)); then
	echo "valgrind: note: pg_regress under valgrind exited $regress_rc (timing differs; see $VG/regress)"
fi
((nlogs > 3)) || { echo "valgrind: too few process logs: valgrind did not run"; exit 1; }
exit $((bad > 0))
