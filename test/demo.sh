#!/usr/bin/env bash
# The README's first command: set everything up on this machine and show the
# main job on the embedded default -- a local mock of the Heroku Platform API
# and a local TLS-only "Heroku Postgres" cluster.
#
#   bash test/demo.sh          (as root, on Debian 12)
#
# It installs missing packages, builds and installs the extension, starts the
# test environment (test/testenv.sh), then runs a query through
# dblink(heroku_dblink_url('myapp'), ...) before and after a credential
# rotation, and shows that a stored copy of the credentials goes stale while
# the resolving call keeps working.  HR_KEEP=1 leaves the environment running.
set -euo pipefail

REPO_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export HR_TEST_DIR=${HR_TEST_DIR:-/tmp/heroku_resolver_test}

[[ $(id -u) -eq 0 ]] || { echo "demo: run as root (it installs packages and the extension)" >&2; exit 1; }

bash "$REPO_TOP/test/install-deps.sh"
make -s -C "$REPO_TOP" PG_CONFIG="$PG_CONFIG" >/dev/null
make -s -C "$REPO_TOP" PG_CONFIG="$PG_CONFIG" install >/dev/null
bash "$REPO_TOP/test/testenv.sh" start

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

echo
echo "== 2. query the app's database; the conninfo is resolved at call time (password masked here)"
psql_as_pg -e <<'SQL'
SELECT regexp_replace(heroku_dblink_url('myapp'), 'password=''[^'']*''', 'password=***') AS resolved;
SELECT * FROM dblink(heroku_dblink_url('myapp'),
                     'SELECT count(*), (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())
                        FROM orders') AS t(orders bigint, over_tls boolean);
CREATE TABLE IF NOT EXISTS copied_conninfo AS SELECT heroku_dblink_url('myapp') AS conninfo;
SQL

echo
echo "== 3. Heroku rotates the credentials (heroku pg:credentials:rotate)"
runuser -u postgres -- bash "$HR_TEST_DIR/src/test/rotate.sh" myapp -v

echo
echo "== 4. a copied conninfo is now stale; the resolving call just works"
psql_as_pg -e <<'SQL'
\set ON_ERROR_STOP 0
SELECT * FROM dblink((SELECT conninfo FROM copied_conninfo), 'SELECT 1') AS t(x int);
\set ON_ERROR_STOP 1
SELECT * FROM dblink(heroku_dblink_url('myapp'), 'SELECT count(*) FROM orders') AS t(orders bigint);
DROP TABLE copied_conninfo;
SQL

echo
echo "== 5. failover: the database moves to another host with new credentials"
runuser -u postgres -- bash "$HR_TEST_DIR/src/test/rotate.sh" myapp --failover -v
psql_as_pg -e <<'SQL'
SELECT * FROM dblink(heroku_dblink_url('myapp'),
                     'SELECT count(*), inet_server_port() FROM orders') AS t(orders bigint, port int);
ALTER SYSTEM RESET heroku.api_url;
ALTER SYSTEM RESET heroku.api_key_file;
ALTER SYSTEM RESET heroku.allow_local_hosts;
SELECT pg_reload_conf();
SQL
echo
echo "demo: done -- every call resolved today's credentials, over TLS"
