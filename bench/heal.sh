#!/usr/bin/env bash
# Freshness after a rotation, measured side by side in one run (not a test:
# nothing is asserted).  A preloaded cluster with the default settings
# (heroku.cache_ttl = 60s); HEAL_CLIENTS (default 4) long-lived sessions each
# run the README's query, SELECT * FROM dblink(heroku_dblink_url('myapp'),
# 'select 1'), in a loop with a new remote connection per call, for
# HEAL_SECONDS (default 8); test/rotate.sh rotates the credentials 2 s in.
# Printed for each mode (heroku.heal off = the 1.1 behaviour, on):
#   failed statements (total and the most for one client), the time from
#   the rotation to the last failure, and the config-vars requests made.
#
#   bash test/testenv.sh start && make install && bash bench/heal.sh
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
CLIENTS=${HEAL_CLIENTS:-4}
SECS=${HEAL_SECONDS:-8}
bench_init heal "${HEAL_PORT:-56397}"
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

bench_cluster <<CONF
max_connections = 40
shared_preload_libraries = 'heroku_resolver'
CONF
psql_ <<'SQL'
CREATE EXTENSION dblink;
CREATE EXTENSION heroku_resolver;
CREATE UNLOGGED TABLE runs (mode text, client int, started timestamptz, ok bool);
SQL

# run MODE: the clients with heroku.heal = MODE, a rotation 2 s in
run() {
	local mode=$1 c pids=() rotated
	psql_ -c "SELECT heroku_resolver_invalidate()" -c "SELECT heroku_dblink_url('myapp') IS NOT NULL" >/dev/null
	"$PY" "$HR_MOCKCTL" reset-counts >/dev/null
	for ((c = 1; c <= CLIENTS; c++)); do
		psql_ >/dev/null <<SQL &
SET heroku.heal = $mode;
DO \$\$
DECLARE t0 timestamptz := clock_timestamp(); s timestamptz; good bool;
BEGIN
  WHILE clock_timestamp() < t0 + interval '$SECS s' LOOP
    s := clock_timestamp();
    BEGIN
      PERFORM * FROM dblink(heroku_dblink_url('myapp'), 'select 1') AS t(x int);
      good := true;
    EXCEPTION WHEN sqlclient_unable_to_establish_sqlconnection THEN
      good := false;
    END;
    INSERT INTO runs VALUES ('$mode', $c, s, good);
  END LOOP;
END
\$\$;
SQL
		pids+=($!)
	done
	sleep 2
	rotated=$(psql_ -c "SELECT clock_timestamp()")
	bash "$REPO/test/rotate.sh" myapp
	wait "${pids[@]}"
	psql_ -F ' ' <<SQL
WITH c AS (
  SELECT client, count(*) FILTER (WHERE NOT ok) AS f, count(*) AS n,
         max(started) FILTER (WHERE NOT ok) AS lastf
  FROM runs WHERE mode = '$mode' GROUP BY client)
SELECT '$mode', sum(f), max(f),
       coalesce(round(extract(epoch FROM max(lastf) - '$rotated'::timestamptz) * 1000), 0),
       sum(n), $("$PY" "$HR_MOCKCTL" counts --path /apps/myapp/config-vars)
FROM c;
SQL
}

printf '%-8s %8s %12s %18s %11s %9s\n' 'heal' 'failed' 'max/client' 'last failure (ms)' 'statements' 'requests'
for mode in off on; do
	run "$mode" | while read -r m failed most last total req; do
		printf '%-8s %8s %12s %18s %11s %9s\n' "$m" "$failed" "$most" "$last" "$total" "$req"
	done
done
echo "($CLIENTS clients, ${SECS}s each, rotation 2 s in; last failure: time from the rotation" \
	"to the start of the last failed statement; requests: config-vars requests to the mock)"
