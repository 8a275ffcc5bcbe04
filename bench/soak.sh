#!/usr/bin/env bash
# Rotation under load: a bounded soak (it stops by itself).  pgbench with 8
# clients for SOAK_SECONDS (default 60) runs queries through
# heroku_dblink_connect() and through a postgres_fdw foreign table, while
# another process rotates the remote role's password and the mock's config var
# every SOAK_ROTATE_EVERY seconds (default 3), with the background refresher
# on (heroku.refresh_interval = SOAK_REFRESH, default 1s).  Prints the counts:
# transactions, failures per path, rotations, API requests.  Not a test:
# nothing is asserted; the README quotes the figures.
#
#   bash test/testenv.sh start && make install && bash bench/soak.sh
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SECS=${SOAK_SECONDS:-60}
EVERY=${SOAK_ROTATE_EVERY:-3}
REFRESH=${SOAK_REFRESH:-1s}
bench_init soak "${SOAK_PORT:-31398}"
rotator=''
bench_at_exit '[[ -n $rotator ]] && kill "$rotator" 2>/dev/null; "$PY" "$HR_MOCKCTL" rate-limit 4500 --refill 75 >/dev/null 2>&1'

"$PY" "$HR_MOCKCTL" rate-limit 4500 --refill 1000000
bench_cluster <<CONF
max_connections = 40
shared_preload_libraries = 'heroku_resolver'
heroku.cache_ttl = '60s'
heroku.refresh_interval = '$REFRESH'
heroku.database = 'postgres'
CONF

# Each pgbench transaction calls one function; a failure is caught and
# counted (pgbench would otherwise abort the client), never retried here.
psql_ <<'SQL'
CREATE EXTENSION dblink;
CREATE EXTENSION postgres_fdw;
CREATE EXTENSION heroku_resolver;
SELECT heroku_fdw_create_server('soak_db', 'myapp');
CREATE SCHEMA remote;
IMPORT FOREIGN SCHEMA public LIMIT TO (orders) FROM SERVER soak_db INTO remote;
CREATE UNLOGGED TABLE soak_failures (path text, sqlstate text, at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION soak_dblink() RETURNS int LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
	PERFORM heroku_dblink_connect('soak', 'myapp');
	SELECT t.n INTO n FROM dblink('soak', 'SELECT count(*) FROM orders') AS t(n bigint);
	PERFORM dblink_disconnect('soak');
	RETURN 1;
EXCEPTION WHEN OTHERS THEN
	INSERT INTO soak_failures (path, sqlstate) VALUES ('dblink', SQLSTATE);
	IF 'soak' = ANY (coalesce(dblink_get_connections(), '{}')) THEN
		PERFORM dblink_disconnect('soak');
	END IF;
	RETURN 0;
END $$;
CREATE FUNCTION soak_fdw() RETURNS int LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
	SELECT count(*) INTO n FROM remote.orders;
	RETURN 1;
EXCEPTION WHEN OTHERS THEN
	INSERT INTO soak_failures (path, sqlstate) VALUES ('fdw', SQLSTATE);
	RETURN 0;
END $$;
SQL
printf 'SELECT soak_dblink();\n' >"$WORK/dblink.sql"
printf 'SELECT soak_fdw();\n' >"$WORK/fdw.sql"
[[ $(id -u) -eq 0 ]] && chown postgres: "$WORK"/*.sql

"$PY" "$HR_MOCKCTL" reset-counts
# the rotator: every EVERY seconds, for the length of the run
(
	end=$((SECONDS + SECS))
	n=0
	while ((SECONDS < end)); do
		sleep "$EVERY"
		as_pg bash "$HR_ROTATE" myapp && n=$((n + 1))
	done
	echo "$n" >"$WORK/rotations"
) &
rotator=$!

echo "soak: ${SECS}s, 8 clients, a rotation every ${EVERY}s, refresher every $REFRESH ..." >&2
as_pg "$PGBIN/pgbench" -n -h "$WORK" -p "$PORT" -c 8 -j 2 -T "$SECS" \
	-f "$WORK/dblink.sql@1" -f "$WORK/fdw.sql@1" postgres >"$WORK/pgbench.out" 2>&1 || true
wait "$rotator" || true
rotator=''

tx=$(awk '/^number of transactions actually processed/ {print $NF}' "$WORK/pgbench.out")
tx_dblink=$(awk '/^SQL script 1/ {s=1} s && /- [0-9]+ transactions/ {print $2; exit}' "$WORK/pgbench.out")
tx_fdw=$(awk '/^SQL script 2/ {s=1} s && /- [0-9]+ transactions/ {print $2; exit}' "$WORK/pgbench.out")
aborted=$(grep -c 'aborted' "$WORK/pgbench.out" || true)
fail_dblink=$(psql_ -c "SELECT count(*) FROM soak_failures WHERE path = 'dblink'")
fail_fdw=$(psql_ -c "SELECT count(*) FROM soak_failures WHERE path = 'fdw'")
states=$(psql_ -c "SELECT coalesce(string_agg(path || ' ' || sqlstate || ' x' || n, ', '), 'none')
	FROM (SELECT path, sqlstate, count(*) n FROM soak_failures GROUP BY 1, 2 ORDER BY 1, 2) s")
api=$("$PY" "$HR_MOCKCTL" counts --path /apps/myapp/config-vars)
rot=$(cat "$WORK/rotations" 2>/dev/null || echo '?')
changes=$(grep -c 'refresher updated foreign server' "$WORK/server.log" || true)
leak=$(grep -c -F -f <(cat "$HR_TEST_DIR/secrets.history") "$WORK/server.log" "$WORK/pgbench.out" || true)

printf '\nrotation under load (%s s, 8 clients, rotation every %s s, refresher %s)\n\n' "$SECS" "$EVERY" "$REFRESH"
printf '%-44s %s\n' 'transactions (dblink / foreign table)' "${tx:-0} (${tx_dblink:-?} / ${tx_fdw:-?})"
printf '%-44s %s\n' 'failed dblink transactions' "$fail_dblink"
printf '%-44s %s\n' 'failed foreign-table transactions' "$fail_fdw"
printf '%-44s %s\n' 'failures by SQLSTATE' "$states"
printf '%-44s %s\n' 'rotations' "$rot"
printf '%-44s %s\n' 'refresher changes logged' "$changes"
printf '%-44s %s\n' 'config-vars API requests' "$api"
printf '%-44s %s\n' 'aborted pgbench clients' "$aborted"
printf '%-44s %s\n' 'password lines in server log / pgbench out' "$leak"
printf '\nsummary: %s transactions, %s dblink failures, %s foreign-table failures, %s rotations, %s API requests\n' \
	"${tx:-0}" "$fail_dblink" "$fail_fdw" "$rot" "$api"
