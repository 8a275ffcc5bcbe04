#!/usr/bin/env bash
# Fresh after a rotation, measured side by side in one run (not a test:
# nothing is asserted).  A preloaded cluster of its own, default settings
# (heroku.cache_ttl = 60s) but for the two each mode names.
#
# 1. Failed statements and time to heal.  HEAL_CLIENTS (default 4)
#    long-lived psql sessions each run the README's query,
#      SELECT * FROM dblink(heroku_dblink_url('myapp'), 'select 1') t(x int)
#    in a loop, one statement (and one transaction, and one new TLS
#    connection to the remote) per call; test/rotate.sh rotates the
#    credentials 2 s in, and the clients go on for HEAL_AFTER seconds after
#    it (default 20; HEAL_AFTER_OFF, default 70, for heal off, whose stale
#    entry lives out the 60 s TTL).  Modes:
#      off       heroku.heal = off, heroku.watch_interval = 0: version 1.1
#      heal      heroku.heal = on (its default), watch_interval = 0
#      feed      heroku.heal = off, watch_interval = 10s (its default)
#      defaults  heroku.heal = on, watch_interval = 10s
#    Printed: failed statements (all clients, and the most for one), time to
#    heal (from the start of the first failed statement to the start of the
#    first statement that succeeded after the last failed one), failed
#    statements that started later than the first failure + one API round
#    trip + 100 ms (the issue's target: 0), statements, and the API requests
#    the mode made (config vars of myapp, and GET /apps).
# 2. The feed with no traffic: HEAL_QUIET (default 3) rotations with no
#    call, each timed until heroku_resolver_cache() shows the entry fetched
#    after it (watch_interval 10s); then one call, which must not fail.
# 3. API requests per hour, 100 apps cached and registered (100 foreign
#    servers), idle but for HEAL_CHANGES (default 2) config var changes, over
#    HEAL_WINDOW seconds (default 120) per mode: the feed (watch_interval =
#    10s, refresh_interval = 0) versus per-app refreshing (refresh_interval
#    = 60s, watch_interval = 0), counted by the mock, extrapolated to an
#    hour, beside the arithmetic 3600/10 = 360 and 100 x 3600/60 = 6,000.
#    The refresher's window starts 30 s after its interval starts, so that
#    it holds exactly HEAL_WINDOW/60 rounds.
#
# The default run takes about 7.5 minutes; shorter windows (HEAL_AFTER_OFF=10
# HEAL_AFTER=8 HEAL_QUIET=1 HEAL_WINDOW=60) make a quick look, not a figure.
#
#   bash test/testenv.sh start && make install && bash bench/heal.sh
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
CLIENTS=${HEAL_CLIENTS:-4}
AFTER=${HEAL_AFTER:-20}
AFTER_OFF=${HEAL_AFTER_OFF:-70}
QUIET=${HEAL_QUIET:-3}
WINDOW=${HEAL_WINDOW:-120}
CHANGES=${HEAL_CHANGES:-2}
NAPPS=100
bench_init heal "${HEAL_PORT:-31397}"
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
apps=()
for i in $(seq -w 1 "$NAPPS"); do apps+=("bench-heal-$i"); done
# shellcheck disable=SC2016 # expanded at exit
bench_at_exit '"$PY" - "$HR_MOCKCTL" "$HEROKU_MOCK_URL" "${apps[@]}" <<<"$MOCK_DELETE" >/dev/null 2>&1'
# shellcheck disable=SC2034  # used by bench_at_exit
MOCK_DELETE='
import os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
import mockctl
for a in sys.argv[3:]:
    try:
        mockctl.delete_app(sys.argv[2], a)
    except mockctl.MockError:
        pass
'

bench_cluster <<CONF
max_connections = 40
shared_preload_libraries = 'heroku_resolver'
lc_messages = 'C'
heroku.watch_interval = 0
heroku.database = 'postgres'
CONF
psql_ <<'SQL'
CREATE EXTENSION dblink;
CREATE EXTENSION postgres_fdw;
CREATE EXTENSION heroku_resolver;
-- one API round trip, as a backend sees it: a conditional config-vars request (a 304)
CREATE FUNCTION bench_rtt_ms() RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
  PERFORM heroku_resolver_refresh('myapp', 'DATABASE_URL');
  RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;
SQL

now() { date +%s.%N; }
stats() { "$PY" "$HR_MOCKCTL" stats; }
rotate() { HR_TEST_DIR=$HR_TEST_DIR bash "$REPO/test/rotate.sh" myapp; }

# settings WATCH REFRESH: the worker's two intervals, by reload
settings() {
	psql_ >/dev/null <<SQL
ALTER SYSTEM SET heroku.watch_interval = '$1';
ALTER SYSTEM SET heroku.refresh_interval = '$2';
SELECT pg_reload_conf();
SQL
	sleep 0.3
}

# listing_after EPOCH: wait until the feed has completed a listing after EPOCH
listing_after() {
	local i
	for i in $(seq 600); do
		[[ $(psql_ -c "SELECT coalesce(extract(epoch FROM feed_last_listing) > $1, false) FROM heroku_resolver_status()") == t ]] && return 0
		sleep 0.1
	done
	echo "heal: the feed made no listing within 60 s" >&2
	exit 1
}

rtt=$(psql_ -c "SELECT heroku_dblink_url('myapp') IS NOT NULL" >/dev/null &&
	for _ in 1 2 3 4 5; do psql_ -c 'SELECT bench_rtt_ms()'; done | sort -n | head -1)
rtt=$(printf '%.1f' "$rtt")

# The client: psql reading an endless script, one call per statement, until
# the deadline; each statement prints its start (epoch) and whether it failed.
# shellcheck disable=SC2016 # psql's variables and dollar quotes
client_block='SELECT extract(epoch FROM clock_timestamp()) AS s, extract(epoch FROM clock_timestamp()) < :deadline AS go \gset
\if :go
SELECT * FROM dblink(heroku_dblink_url($$myapp$$), $$select 1$$) t(x int) \g /dev/null
\echo :s :ERROR :SQLSTATE
\else
\q
\endif'

# run MODE HEAL AFTER: the clients through a rotation; prints one table row
run() {
	local mode=$1 heal=$2 after=$3 c pids=() rot0 rot1 deadline phase=''
	psql_ -c "SELECT heroku_resolver_invalidate('myapp')" -c "SELECT heroku_dblink_url('myapp') IS NOT NULL" >/dev/null
	"$PY" "$HR_MOCKCTL" reset-counts
	deadline=$(awk -v t="$(now)" -v a="$after" 'BEGIN { printf "%.3f", t + 2 + a }')
	for ((c = 1; c <= CLIENTS; c++)); do
		{
			printf 'SET heroku.heal = %s;\n' "$heal"
			BLOCK=$client_block awk 'BEGIN { b = ENVIRON["BLOCK"]; while (1) print b }'
		} | as_pg "$PGBIN/psql" -XAtq -h "$WORK" -p "$PORT" -d postgres -v deadline="$deadline" \
			>"$WORK/$mode.$c.out" 2>"$WORK/$mode.$c.err" &
		pids+=($!)
	done
	sleep 2
	[[ $mode == feed || $mode == defaults ]] &&
		phase=$(psql_ -c "SELECT round(extract(epoch FROM clock_timestamp() - feed_last_listing), 1) FROM heroku_resolver_status()")
	rot0=$(now)
	rotate
	rot1=$(now)
	for c in "${pids[@]}"; do wait "$c" || true; done
	stats >"$WORK/$mode.stats"
	"$PY" - "$mode" "$rot0" "$rot1" "$rtt" "$phase" "$WORK/$mode.stats" "$WORK/$mode".*.out <<'PYEOF'
import json, sys
mode, rot0, rot1, rtt, phase, statsfile = sys.argv[1:7]
rows = []      # (start, failed, client)
per_client = []
for n, path in enumerate(sys.argv[7:]):
    fails = 0
    for line in open(path):
        parts = line.split()
        if len(parts) != 3:
            continue
        failed = parts[1] == "true"
        rows.append((float(parts[0]), failed, n))
        fails += failed
    per_client.append(fails)
rows.sort()
failed = [r for r in rows if r[1]]
stats = json.load(open(statsfile))
cv = sum(v for k, v in stats["by_path"].items() if k.endswith("/apps/myapp/config-vars"))
listings = stats["by_path"].get("GET /apps", 0)
if failed:
    first, last = failed[0][0], failed[-1][0]
    healed = next((r[0] for r in rows if r[0] > last and not r[1]), None)
    heal = "%.3f" % (healed - first) if healed else "never"
    late = sum(1 for r in failed if r[0] > first + (float(rtt) + 100) / 1000)
    since = "%.3f" % (first - float(rot1))
else:
    heal, late, since = "-", 0, "-"
note = " (rotation %s s after a listing)" % phase if phase else ""
print("%-9s %7d %6d %11s %11s %6d %11d %9d %8d%s" % (
    mode, len(failed), max(per_client), since, heal, late, len(rows), cv, listings, note))
PYEOF
}

echo "== 1. a rotation under load: $CLIENTS clients, a new TLS connection per call, cache_ttl = 60s"
echo "   (one API round trip, a conditional config-vars request as a backend makes it: $rtt ms)"
printf '%-9s %7s %6s %11s %11s %6s %11s %9s %8s\n' mode failed max/cl '1st fail s' 'heal s' late statements cfg-vars 'GET /apps'
settings 0 0
run off off "$AFTER_OFF"
run heal on "$AFTER"
t=$(now)
settings 10s 0
listing_after "$t"
run feed off "$AFTER"
# 2. the feed with no traffic (watch_interval still 10s, nobody calls)
quiet=()
for ((q = 1; q <= QUIET; q++)); do
	sleep 1
	psql_ -c "SELECT heroku_dblink_url('myapp') IS NOT NULL" >/dev/null   # the entry exists
	"$PY" "$HR_MOCKCTL" reset-counts
	t=$(now)
	rotate
	held=''
	for _ in $(seq 400); do
		if [[ $(psql_ -c "SELECT count(*) FROM heroku_resolver_cache() WHERE app = 'myapp' AND config_var = 'DATABASE_URL' AND extract(epoch FROM fetched_at) > $t") == 1 ]]; then
			held=$(awk -v a="$t" -v b="$(now)" 'BEGIN { printf "%.2f s", b - a }')
			break
		fi
		sleep 0.05
	done
	before=$("$PY" "$HR_MOCKCTL" counts --path /apps/myapp/config-vars)
	if psql_ -c "SELECT * FROM dblink(heroku_dblink_url('myapp'), 'select 1') t(x int)" >/dev/null 2>&1; then
		ok=works
	else
		ok=FAILED
	fi
	after=$("$PY" "$HR_MOCKCTL" counts --path /apps/myapp/config-vars)
	quiet+=("${held:-not within 20 s}, then the next call $ok with $((after - before)) API request(s)")
done
run defaults on "$AFTER"
echo "   (failed: statements that failed, all clients; max/cl: most for one client; 1st fail s:"
echo "   first failure after rotate.sh returned (negative: before; the password changes just"
echo "   before it returns); heal s: from the first failed statement to the first success after"
echo "   the last one; late: failures later than the first + $rtt ms + 100 ms (target 0);"
echo "   cfg-vars: config-vars requests for myapp; GET /apps: the feed's listings; rotation"
echo "   2 s in, then $AFTER_OFF s (off) or $AFTER s (the others))"
echo
echo "== 2. the feed with no traffic (watch_interval = 10s): the cache held the new URL, from the"
echo "   start of rotate.sh, after"
for q in "${quiet[@]}"; do echo "   $q"; done
echo

# 3. cost: 100 apps cached and registered
"$PY" - "$HR_MOCKCTL" "$HEROKU_MOCK_URL" "${apps[@]}" <<'PYEOF'
import os, secrets, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
import mockctl
for a in sys.argv[3:]:
    mockctl.put_app(sys.argv[2], a, {"DATABASE_URL": "postgres://u:%s@%s.example:5432/db"
                                     % (secrets.token_hex(8), a)})
PYEOF
for a in "${apps[@]}"; do
	printf "SELECT heroku_fdw_create_server('%s', '%s');\nSELECT heroku_dblink_url('%s') IS NOT NULL;\n" \
		"${a//-/_}" "$a" "$a"
done | psql_ >/dev/null
registered=$(psql_ -c "SELECT count(*) FROM heroku_fdw_servers WHERE app LIKE 'bench-heal-%'")
cached=$(psql_ -c "SELECT count(*) FROM heroku_resolver_cache() WHERE app LIKE 'bench-heal-%'")

# window MODE: reset the counts, HEAL_CHANGES changes spread over the window, the counts
window() {
	local k step
	"$PY" "$HR_MOCKCTL" reset-counts
	step=$(awk -v w="$WINDOW" -v n="$CHANGES" 'BEGIN { printf "%.3f", w / (n + 1) }')
	for ((k = 1; k <= CHANGES; k++)); do
		sleep "$step"
		"$PY" "$HR_MOCKCTL" set-var "${apps[$k]}" DATABASE_URL \
			"postgres://u:$(openssl rand -hex 8)@${apps[$k]}.example:5432/db"
	done
	sleep "$step"
	stats >"$WORK/cost.$1"
}

# the feed: settled when two listings have passed since the apps were made
t=$(now)
settings 10s 0
listing_after "$t"
listing_after "$(now)"
window feed
# per-app refreshing: rounds at reload + 60 s, + 120 s, ...; the window starts at + 30 s
settings 0 60s
sleep 30
window refresh

echo "== 3. API requests, $registered apps registered (foreign servers) and $cached cached, idle but for"
echo "   $CHANGES config var changes, over a window of $WINDOW s"
printf '%-34s %9s %9s %7s %12s   %s\n' mode 'GET /apps' cfg-vars total 'per hour' 'arithmetic per hour'
"$PY" - "$WORK/cost.feed" "$WORK/cost.refresh" "$NAPPS" <<'PYEOF'
import json, sys
feed, refresh, napps = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), int(sys.argv[3])
for name, s, arith in (
        ("feed (watch 10s, refresh 0)", feed, "3600/10 = 360 + 1 per change"),
        ("per-app (refresh 60s, watch 0)", refresh, "%d x 3600/60 = %d" % (napps, napps * 60))):
    listings = s["by_path"].get("GET /apps", 0)
    cv = sum(v for k, v in s["by_path"].items() if k.endswith("/config-vars"))
    total = s["api_requests"]
    print("%-34s %9d %9d %7d %12.0f   %s" % (name, listings, cv, total, total * 3600.0 / s["seconds"], arith))
    if name.startswith("feed"):
        print("%-34s %9s %9s %7s %12.0f" % ("  listings alone", "", "", "", listings * 3600.0 / s["seconds"]))
PYEOF
echo "   (counted by the mock over the window; per hour = measured x 3600 / window; the changes"
echo "   cost the feed one config-vars request each and the refresher nothing extra)"
echo "(bench/heal.sh: ${SECONDS} s)"
