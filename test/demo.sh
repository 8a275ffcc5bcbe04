#!/usr/bin/env bash
# The README's first command: set everything up on this machine and show the
# main job on the embedded default -- a local mock of the Heroku Platform API
# and a local TLS-only "Heroku Postgres" cluster.
#
#   bash test/demo.sh          (as root, on Debian 12)
#
# It installs missing packages, builds and installs the extension, starts the
# test environment (test/testenv.sh) with the extension preloaded and its
# default settings (a 60 s cache), then, in ONE long-lived session as a
# pooled application would hold it, runs a query through
# dblink(heroku_dblink_url('myapp'), ...) before and after a credential
# rotation and a failover: a stored copy of the credentials goes stale, while
# the resolving call heals (at most one statement fails, with the cache's
# old answer) and keeps working; then a rotation while nobody calls, which
# the release feed brings into the cache before the next call, so that call
# does not fail at all.  No password or token is printed.  HR_KEEP=1 leaves
# the environment running.
set -euo pipefail

REPO_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export HR_TEST_DIR=${HR_TEST_DIR:-/tmp/heroku_resolver_test}

[[ $(id -u) -eq 0 ]] || { echo "demo: run as root (it installs packages and the extension)" >&2; exit 1; }

bash "$REPO_TOP/test/install-deps.sh"
make -s -C "$REPO_TOP" PG_CONFIG="$PG_CONFIG" >/dev/null
make -s -C "$REPO_TOP" PG_CONFIG="$PG_CONFIG" install >/dev/null
# preloaded, as the README tells users to run it: one cache for the cluster
HR_LOCAL_PRELOAD=heroku_resolver bash "$REPO_TOP/test/testenv.sh" start

cleanup() {
	if [[ ${HR_KEEP:-0} != 1 ]]; then
		bash "$REPO_TOP/test/testenv.sh" stop >/dev/null 2>&1 || true
		rm -rf "$HR_TEST_DIR"
	else
		echo "demo: environment left running; . $HR_TEST_DIR/env.sh to use it"
	fi
}
trap cleanup EXIT

# shellcheck source=/dev/null
. "$HR_TEST_DIR/env.sh"

psql_as_pg() {
	(cd "$HR_TEST_DIR/src" && runuser -u postgres -- env PATH="$PATH" PGHOST="$PGHOST" PGPORT="$PGPORT" \
		HEROKU_MOCK_URL="$HEROKU_MOCK_URL" HR_API_KEY_FILE="$HR_API_KEY_FILE" \
		psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@")
}

echo
echo "== 1. the extension, pointed at the mock API (the token is read from a file)"
psql_as_pg -e <<'SQL'
\getenv mock_url HEROKU_MOCK_URL
\getenv key_file HR_API_KEY_FILE
DROP EXTENSION IF EXISTS heroku_resolver;
CREATE EXTENSION IF NOT EXISTS dblink;
CREATE EXTENSION heroku_resolver;
ALTER SYSTEM SET heroku.api_url = :'mock_url';
ALTER SYSTEM SET heroku.api_key_file = :'key_file';
ALTER SYSTEM SET heroku.allow_local_hosts = on;
SELECT pg_reload_conf();
SQL

# One session from here on: the steps run in it in order, the rotations from
# inside it (\!), so the cache it sees is the one a long-lived connection sees.
psql_as_pg -e <<SQL
\echo
\echo == 2. query the app database: the conninfo is resolved at call time, password masked here
SELECT regexp_replace(heroku_dblink_url('myapp'), 'password=''[^'']*''', 'password=***') AS resolved;
SELECT * FROM dblink(heroku_dblink_url('myapp'),
                     'SELECT count(*), (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())
                        FROM orders') AS t(orders bigint, over_tls boolean);
CREATE TEMP TABLE copied_conninfo AS SELECT heroku_dblink_url('myapp') AS conninfo;
\echo
\echo == 3. Heroku rotates the credentials: heroku pg:credentials:rotate
\! bash "$HR_TEST_DIR/src/test/rotate.sh" myapp -v
\echo
\echo == 4. the copied conninfo is stale for good. The resolving call may fail once, with the
\echo ==    old answer of the cache (heroku.cache_ttl = 60s): that failure marks the entry suspect,
\echo ==    and the next call asks the API and connects. No setting changed, nothing invalidated.
\set ON_ERROR_STOP 0
SELECT * FROM dblink((SELECT conninfo FROM copied_conninfo), 'SELECT 1') AS t(x int);
SELECT * FROM dblink(heroku_dblink_url('myapp'), 'SELECT count(*) FROM orders') AS t(orders bigint);
\set ON_ERROR_STOP 1
SELECT * FROM dblink(heroku_dblink_url('myapp'), 'SELECT count(*) FROM orders') AS t(orders bigint);
\echo
\echo == 5. failover: the database moves to another host with new credentials
\! bash "$HR_TEST_DIR/src/test/rotate.sh" myapp --failover -v
\set ON_ERROR_STOP 0
SELECT * FROM dblink(heroku_dblink_url('myapp'),
                     'SELECT count(*), inet_server_port() FROM orders') AS t(orders bigint, port int);
\set ON_ERROR_STOP 1
SELECT * FROM dblink(heroku_dblink_url('myapp'),
                     'SELECT count(*), inet_server_port() FROM orders') AS t(orders bigint, port int);
\echo
\echo == 6. the release feed (heroku.watch_interval = 10s, on by default with a server token):
\echo ==    a rotation while nobody calls reaches the cache within the interval, and the next
\echo ==    call works at once, with no failure first
\set ECHO none
DO \$\$ BEGIN   -- the first listing only records what it sees: wait for it
  FOR i IN 1..300 LOOP
    EXIT WHEN (SELECT feed_last_listing IS NOT NULL FROM heroku_resolver_status());
    PERFORM pg_sleep(0.1);
  END LOOP;
END \$\$;
SELECT set_config('demo.rotated', clock_timestamp()::text, false) AS demo_rotated \gset
\! bash "$HR_TEST_DIR/src/test/rotate.sh" myapp -v
DO \$\$
DECLARE rotated timestamptz := current_setting('demo.rotated')::timestamptz;
BEGIN   -- heroku_resolver_cache() shows when the entry was fetched, never its password
  FOR i IN 1..300 LOOP
    IF EXISTS (SELECT 1 FROM heroku_resolver_cache()
               WHERE app = 'myapp' AND config_var = 'DATABASE_URL' AND fetched_at > rotated) THEN
      RAISE NOTICE 'the feed brought the new URL into the cache % s after the rotation',
        round(extract(epoch FROM clock_timestamp() - rotated), 1);
      RETURN;
    END IF;
    PERFORM pg_sleep(0.1);
  END LOOP;
  RAISE EXCEPTION 'the feed did not bring the new URL within 30 s';
END \$\$;
\set ECHO queries
SELECT * FROM dblink(heroku_dblink_url('myapp'), 'SELECT count(*) FROM orders') AS t(orders bigint);
SELECT api_requests, not_modified, feed_requests, feed_changes FROM heroku_resolver_status();
SQL
psql_as_pg >/dev/null <<'SQL'
ALTER SYSTEM RESET heroku.api_url;
ALTER SYSTEM RESET heroku.api_key_file;
ALTER SYSTEM RESET heroku.allow_local_hosts;
SELECT pg_reload_conf();
SQL
echo
echo "demo: done -- one session, the default settings: each rotation healed by the next call, or brought into the cache by the release feed before it; over TLS"
