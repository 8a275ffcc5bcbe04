#!/usr/bin/env bash
# heroku-pg-resolve watch's sinks, measured through the real thing.  Not a test: nothing is
# asserted; the figures are printed (README "PgBouncer" and doc/watcher-pgbouncer.md quote them).
#
#   bash test/testenv.sh start && make && bash bench/sinks.sh
#
# PgBouncer (Debian's, test/pgbouncer.sh: server_tls_sslmode = require, transaction pooling,
# default_pool_size 4) in front of the test env's TLS-only "remote" cluster; a watcher with
# --service myapp=myapp --pgbouncer FILE --pgbouncer-admin CONNINFO; SINKS_CLIENTS (8) clients
# (bench/pgloop.c) each with one connection through PgBouncer, a query every 20 ms.  Then
# test/rotate.sh rotates the app's password as Heroku does (the role's password changes, then
# the config var), and:
# 1. webhook: a signed api:release webhook is POSTed to the watcher (--interval 0 --listen);
# 2. feed alone: no webhook, the watcher polls the release feed (--interval SINKS_INTERVAL, 5s).
# For each: the failed queries per client (most, and in all), failures later than 2 s after the
# webhook's answer (or the watcher's write), and the time from the webhook (or the rotation) to
# PgBouncer's first server login with the new password (its log: the first "new connection to
# server" after it that no "login failed" follows).
#
# Ports: SINKS_PGB_PORT (PgBouncer, default 25398), SINKS_LISTEN_PORT (the webhook, 25399).
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NCLIENTS=${SINKS_CLIENTS:-8}
INTERVAL=${SINKS_INTERVAL:-5s}
PGB_PORT=${SINKS_PGB_PORT:-25398}
LISTEN_PORT=${SINKS_LISTEN_PORT:-25399}
CLI=${HR_PG_RESOLVE:-$HERE/../client/heroku-pg-resolve}
CLI=$(cd "$(dirname "$CLI")" && pwd)/$(basename "$CLI")
APP=myapp
bench_init sinks "$PGB_PORT"
watcher=''
export HR_PGB_DIR=$WORK/pgb HR_PGB_PORT=$PGB_PORT
# shellcheck disable=SC2016 # expanded at exit
bench_at_exit 'kill -TERM $watcher 2>/dev/null; wait $watcher 2>/dev/null; bash "$HERE/../test/pgbouncer.sh" stop'

cc -O2 -I"$(pg_config --includedir)" -o "$WORK/pgloop" "$HERE/pgloop.c" -lpq
secret=bench-$(openssl rand -hex 12)
printf '%s\n' "$secret" >"$WORK/secret"
chmod 644 "$WORK/secret"

now() { date +%s.%N; }

# run_case NAME WATCHER-ARGS...: one rotation under the clients; prints a line of figures.
run_case() {
	local name=$1 t_event answered i
	shift
	bash "$HERE/../test/pgbouncer.sh" start
	# shellcheck disable=SC1091
	. "$HR_PGB_DIR/env.sh"
	rm -f "$WORK/pg_service.conf"
	HEROKU_API_URL=$HEROKU_MOCK_URL PGSERVICEFILE="$WORK/pg_service.conf" "$CLI" watch \
		--api-key-file "$HR_API_KEY_FILE" --service "$APP=$APP" \
		--pgbouncer "$HR_PGB_FILE" --pgbouncer-admin "$HR_PGB_ADMIN" "$@" 2>"$WORK/$name.log" &
	watcher=$!
	for ((i = 0; i < 100; i++)); do
		grep -q 'SHOW DATABASES agrees' "$WORK/$name.log" && break
		sleep 0.1
	done
	local dur=12
	[[ $name == webhook ]] || dur=$((12 + $(printf '%s' "$INTERVAL" | tr -dc 0-9) * 2))
	local clients=()
	for ((i = 1; i <= NCLIENTS; i++)); do
		"$WORK/pgloop" "$HR_PGB_CLIENT dbname=$APP connect_timeout=5" 20 "$dur" >"$WORK/$name.c$i" 2>/dev/null &
		clients+=($!)
	done
	sleep 3
	t_event=$(now)
	bash "$HERE/../test/rotate.sh" "$APP"
	if [[ $name == webhook ]]; then
		local body sig
		t_event=$(now)
		body='{"action":"create","resource":"release","data":{"app":{"id":"'$HR_MYAPP_ID'","name":"'$APP'"},"status":"succeeded","version":7}}'
		sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" -binary | base64)
		curl -s -o /dev/null -H 'Content-Type: application/json' -H "Heroku-Webhook-Hmac-SHA256: $sig" \
			--data-binary "$body" "http://127.0.0.1:$LISTEN_PORT/webhooks/heroku"
		answered=$(now)
	fi
	wait "${clients[@]}"
	kill -TERM "$watcher"
	wait "$watcher" 2>/dev/null || true
	watcher=''
	"$PY" - "$name" "$WORK" "$NCLIENTS" "$t_event" "${answered:-}" "$HR_PGB_DIR/pgbouncer.log" <<'PYEOF'
import datetime, re, sys
name, work, n, t_event, answered, pgblog = sys.argv[1:]
n, t_event = int(n), float(t_event)
fails, late, queries = [], 0, 0
# for the feed, "answered" is the write: the watcher's log says when, PgBouncer's log too
first_login = None
pending = {}
for line in open(pgblog, encoding="utf-8", errors="replace"):
    m = re.match(r"(\S+ \S+) UTC \[\d+\] \S+ (S-0x[0-9a-f]+): %s/" % "myapp", line)
    t = None
    if m:
        t = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    if m and t > t_event and "new connection to server" in line:
        pending[m.group(2)] = t
    elif m and "login failed" in line:
        pending.pop(m.group(2), None)
    elif m and m.group(2) in pending and first_login is None:
        first_login = pending[m.group(2)]
if first_login is None and pending:
    first_login = min(pending.values())
ref = float(answered) if answered else (first_login or t_event)
for i in range(1, n + 1):
    rows = [l.split() for l in open("%s/%s.c%d" % (work, name, i))]
    queries += len(rows)
    f = [float(t) for t, s in rows if s == "fail"]
    fails.append(len(f))
    late += sum(1 for t in f if t > ref + 2)
print("%-8s clients %d, queries %d: failed queries per client max %d, total %d; failed > 2 s after %s: %d; "
      "%s -> PgBouncer's first server login with the new password: %s"
      % (name, n, queries, max(fails), sum(fails), "the answer" if answered else "the write", late,
         "webhook" if answered else "rotation",
         "%.0f ms" % ((first_login - t_event) * 1000) if first_login else "none seen"))
PYEOF
	bash "$HERE/../test/pgbouncer.sh" stop
}

echo "bench: sinks.sh: PgBouncer $(pgbouncer --version | head -1 | cut -d' ' -f2), $NCLIENTS clients, query every 20 ms"
answered=''
run_case webhook --interval 0 --listen "127.0.0.1:$LISTEN_PORT" --webhook-secret-file "$WORK/secret"
answered=''
run_case feed --interval "$INTERVAL"
