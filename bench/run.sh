#!/usr/bin/env bash
# heroku_resolver benchmarks B1-B5 (doc/performance.md). Not tests: nothing here is
# asserted; the figures and ratios are measured side by side in one run and printed as a table.
#
#   bash test/testenv.sh start     # the mock API and the TLS "remote" these use
#   bash bench/run.sh
#
# Needs the extension installed (make install), root or the postgres OS user, pgbench, a C
# compiler and libcurl's headers. Starts its own preloaded cluster in a temporary directory and
# removes it at the end. Environment: HR_TEST_DIR (as for testenv.sh), BENCH_SECONDS (length of
# each pgbench run, default 10), BENCH_B2_SECONDS (default 30), BENCH_PORT (default 31399).
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SECS=${BENCH_SECONDS:-10}
B2_SECS=${BENCH_B2_SECONDS:-30}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
APP=myapp
bench_init bench "${BENCH_PORT:-31399}"
bench_at_exit '"$PY" "$HR_MOCKCTL" rate-limit 4500 --refill 75 >/dev/null 2>&1'

mockctl() { "$PY" "$HR_MOCKCTL" "$@"; }
# pgbench SECONDS CLIENTS SCRIPT: prints "tps latency_ms"
pgb() {
	as_pg env PGOPTIONS="${PGB_OPTIONS:-}" "$PGBIN/pgbench" -n -h "$WORK" -p "$PORT" -T "$1" -c "$2" -j "$(($2 < 2 ? 1 : 2))" \
		-f "$3" postgres 2>/dev/null |
		awk '/^latency average/ {lat = $4} /^tps/ {tps = $3} END {print tps, lat}'
}
script() { # script NAME SQL
	printf '%s\n' "$2" >"$WORK/$1.sql"
	[[ $(id -u) -eq 0 ]] && chown postgres: "$WORK/$1.sql"
	chmod 600 "$WORK/$1.sql"
	echo "$WORK/$1.sql"
}

# thousands of cold requests: lift the mock's rate limit for the run (put back at the end)
mockctl rate-limit 4500 --refill 1000000
echo "bench: building rawget and starting a preloaded cluster on port $PORT ..." >&2
cc -O2 -o "$WORK/rawget" "$HERE/rawget.c" -lcurl
bench_cluster <<CONF
max_connections = 60
shared_preload_libraries = 'heroku_resolver'
heroku.cache_ttl = '60s'
CONF
psql_ -c 'CREATE EXTENSION dblink' -c 'CREATE EXTENSION heroku_resolver'
psql_ -c "SELECT heroku_dblink_url('$APP')" >/dev/null # warm

# B1: warm cache vs a trivial SELECT, one client
X=$(script x "SELECT 'x'::text;")
URL=$(script url "SELECT heroku_dblink_url('$APP');")
# alternate the two, three rounds, and keep each one's best: a shared machine's
# noise then hits both sides alike
b1_x_tps=0 b1_u_tps=0 b1_x_lat=999999
for _ in 1 2 3; do
	read -r tps lat < <(pgb "$SECS" 1 "$X")
	b1_x_tps=$(awk -v a="$tps" -v b="$b1_x_tps" 'BEGIN {print (a > b ? a : b)}')
	b1_x_lat=$(awk -v a="$lat" -v b="$b1_x_lat" 'BEGIN {print (a < b ? a : b)}')
	read -r tps _ < <(pgb "$SECS" 1 "$URL")
	b1_u_tps=$(awk -v a="$tps" -v b="$b1_u_tps" 'BEGIN {print (a > b ? a : b)}')
done

# B1 per call: microseconds of one warm call inside one backend (no client round trip), with
# the token from heroku.api_key_file (as configured) and from SET heroku.api_key, against a
# trivial expression in the same loop; best of 5 runs of 200,000 calls each
percall() { # SETUP EXPR: the best of 5, in µs per call
	local q i
	q="SELECT (extract(epoch FROM clock_timestamp() - t) * 1e6 / 200000)::numeric(10, 3) FROM (SELECT clock_timestamp() AS t) s, LATERAL (SELECT count($2) FROM generate_series(1, 200000)) c;"
	{
		echo "$1"
		for i in 1 2 3 4 5; do echo "$q"; done
	} | psql_ | awk '$1 ~ /^[0-9.]+$/ && (best == "" || $1 + 0 < best + 0) { best = $1 } END { print best }'
}
b1c_file=$(percall "SET application_name = 'bench';" "heroku_dblink_url('$APP')")
b1c_key=$(percall "SET heroku.api_key = '$(head -n1 "$HR_API_KEY_FILE")';" "heroku_dblink_url('$APP')")
b1c_x=$(percall "SET application_name = 'bench';" "'x'::text")

# B2: API requests during B2_SECS of 32 clients, TTL 60 s, preloaded
psql_ -c 'SELECT heroku_resolver_invalidate()' >/dev/null
mockctl reset-counts
read -r b2_tps _ < <(pgb "$B2_SECS" 32 "$URL")
b2_req=$(mockctl counts --path "/apps/$APP/config-vars")

# B3: cold resolve (TTL 0) vs a raw GET with a reused libcurl handle
read -r _ b3_lat < <(PGB_OPTIONS='-c heroku.cache_ttl=0' pgb "$SECS" 1 "$URL")
b3_raw=$("$WORK/rawget" "$HEROKU_MOCK_URL/apps/$APP/config-vars" "$HR_API_KEY_FILE" 300)

# B4: dblink through the resolver (warm) vs the same static conninfo, over TLS
conninfo=$(psql_ -c "SELECT heroku_dblink_url('$APP')")
STATIC=$(script static "SELECT * FROM dblink(\$c\$$conninfo\$c\$, 'select 1') AS t(x int);")
unset conninfo
DYN=$(script dyn "SELECT * FROM dblink(heroku_dblink_url('$APP'), 'select 1') AS t(x int);")
read -r b4_s_tps _ < <(pgb "$SECS" 1 "$STATIC")
read -r b4_d_tps _ < <(pgb "$SECS" 1 "$DYN")
rm -f "$STATIC"

# B5: one backend's memory after 1,000,000 warm and 10,000 cold calls
mem_sql="SELECT (SELECT sum(total_bytes) FROM pg_backend_memory_contexts) || ' ' ||
  (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'), 'RssAnon:\\s+(\\d+)'))[1]"
b5=$(psql_ <<SQL
SELECT heroku_dblink_url('$APP') IS NOT NULL AS warm \\gset
$mem_sql;
SELECT count(heroku_dblink_url('$APP')) AS n FROM generate_series(1, 1000000) \\gset
SET heroku.cache_ttl = 0;
SELECT count(heroku_dblink_url('$APP')) AS n FROM generate_series(1, 10000) \\gset
$mem_sql;
SQL
)
read -r b5_ctx0 b5_rss0 b5_ctx1 b5_rss1 <<<"$(echo "$b5" | tr '\n' ' ')"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}'; }
b1_ratio=$(ratio "$b1_x_tps" "$b1_u_tps")
b3_ratio=$(ratio "$b3_lat" "$b3_raw")
# the resolve itself: the statement's latency less a trivial statement's
b3_net=$(awk -v a="$b3_lat" -v b="$b1_x_lat" 'BEGIN {printf "%.3f", a - b}')
b3_net_ratio=$(ratio "$b3_net" "$b3_raw")
b4_ratio=$(ratio "$b4_s_tps" "$b4_d_tps")
b5_ctx_kb=$(((b5_ctx1 - b5_ctx0) / 1024))
b5_rss_kb=$((b5_rss1 - b5_rss0))

printf '\nheroku_resolver benchmarks (%s, %s cores, PostgreSQL %s)\n\n' "$(uname -sr)" "$(nproc)" \
	"$(psql_ -c 'SHOW server_version')"
printf '%-4s %-52s %-28s %-10s %s\n' id measure figures ratio target
printf '%-4s %-52s %-28s %-10s %s\n' B1 "tps: SELECT 'x' / heroku_dblink_url (warm, 1 client)" \
	"$b1_x_tps / $b1_u_tps" "$b1_ratio" "<= 1.10"
printf '%-4s %-52s %-28s %-10s %s\n' '' "µs a warm call in one backend: key file / SET / 'x'" \
	"$b1c_file / $b1c_key / $b1c_x" "-" "-"
printf '%-4s %-52s %-28s %-10s %s\n' B2 "API requests, ${B2_SECS} s of 32 clients, TTL 60 s" \
	"$b2_req (at $b2_tps tps)" "-" "== 1"
printf '%-4s %-52s %-28s %-10s %s\n' B3 "ms: cold resolve (TTL 0, less SELECT 'x') / raw GET" \
	"$b3_net / $b3_raw" "$b3_net_ratio" "<= 1.30"
printf '%-4s %-52s %-28s %-10s %s\n' '' "ms: whole statement (TTL 0) / raw libcurl GET" \
	"$b3_lat / $b3_raw" "$b3_ratio" "-"
printf '%-4s %-52s %-28s %-10s %s\n' B4 "tps: dblink static / dblink(heroku_dblink_url), TLS" \
	"$b4_s_tps / $b4_d_tps" "$b4_ratio" "<= 1.05"
printf '%-4s %-52s %-28s %-10s %s\n' B5 "kB growth: contexts / RssAnon, 1M warm + 10k cold" \
	"$b5_ctx_kb / $b5_rss_kb" "-" "< 1024"
printf '\nsummary: B1 %s, B2 %s request(s), B3 %s, B4 %s, B5 %s kB (contexts) %s kB (RssAnon)\n' \
	"$b1_ratio" "$b2_req" "$b3_net_ratio" "$b4_ratio" "$b5_ctx_kb" "$b5_rss_kb"
