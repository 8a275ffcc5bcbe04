--
-- End to end: dblink(heroku_dblink_url(...)) to the TLS-only remote cluster
-- across a credential rotation and a failover.
--
-- no cache: these tests expect every call to ask the API
SET heroku.cache_ttl = 0;
\getenv mock_url HEROKU_MOCK_URL
\getenv key_file HR_API_KEY_FILE
SET heroku.api_url = :'mock_url';
SET heroku.api_key_file = :'key_file';
\set VERBOSITY terse

SELECT * FROM dblink(heroku_dblink_url('myapp'), 'SELECT count(*) FROM orders') AS t(n bigint);
-- the connection uses TLS
SELECT * FROM dblink(heroku_dblink_url('myapp'),
	'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()') AS t(ssl boolean);
-- and the remote refuses one without
SELECT regress.try(format('SELECT * FROM dblink(%L, %L) AS t(x int)',
	replace(heroku_dblink_url('myapp'), 'sslmode=''require''', 'sslmode=''disable'''), 'SELECT 1'));
-- the URL form works with dblink too
SELECT * FROM dblink(heroku_database_url('myapp'), 'SELECT count(*) FROM orders') AS t(n bigint);
-- a password full of quotes, backslashes, spaces, @:/%#? and non-ASCII
SELECT * FROM dblink(heroku_dblink_url('quirky-app'), 'SELECT current_user') AS t(u name);
SELECT * FROM dblink(heroku_database_url('quirky-app'), 'SELECT current_user') AS t(u name);

-- keep today's conninfo, as a view or a user mapping would
CREATE TEMP TABLE stored AS SELECT heroku_dblink_url('myapp') AS conninfo;

-- Heroku rotates the password (on the remote and in the config var)
\! bash test/rotate.sh myapp

-- the stored copy is stale...
SELECT regress.try($$SELECT * FROM dblink((SELECT conninfo FROM stored), 'SELECT 1') AS t(x int)$$);
-- ...while the next resolving call works
SELECT * FROM dblink(heroku_dblink_url('myapp'), 'SELECT count(*) FROM orders') AS t(n bigint);
SELECT * FROM dblink(heroku_dblink_url('myapp', 'HEROKU_POSTGRESQL_VIOLET'), 'SELECT count(*) FROM orders') AS t(n bigint);

-- failover: the database moves to another host with other credentials
\! bash test/rotate.sh myapp --failover
SELECT * FROM dblink(heroku_dblink_url('myapp'), 'SELECT count(*) FROM orders') AS t(n bigint);
SELECT * FROM dblink(heroku_dblink_url('myapp'), 'SELECT inet_server_port() = current_setting(''port'')::int') AS t(same boolean);
-- and back
\! bash test/rotate.sh myapp --failover
SELECT * FROM dblink(heroku_dblink_url('myapp'), 'SELECT count(*) FROM orders') AS t(n bigint);
