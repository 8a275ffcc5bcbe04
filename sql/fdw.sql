--
-- postgres_fdw and dblink helpers, one server at a time: create, query,
-- refresh (nothing changed, rotation, failover), options the extension does
-- not manage, more user mappings, a non-superuser owner, unregister,
-- heroku_dblink_connect, and bad input.  Ports are compared, never shown;
-- passwords are never shown.
--
\getenv mock_url HEROKU_MOCK_URL
\getenv key_file HR_API_KEY_FILE
\getenv remote_port HR_REMOTE_PORT
\getenv remote2_port HR_REMOTE2_PORT
SET heroku.api_url = :'mock_url';
SET heroku.api_key_file = :'key_file';

-- the new objects: not STRICT, not SECURITY DEFINER, not for PUBLIC
SELECT p.proname, p.provolatile, p.proisstrict, p.prosecdef,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_can_execute,
       pg_get_function_arguments(p.oid) AS args
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'heroku_resolver'
WHERE p.proname LIKE 'heroku\_fdw\_%' OR p.proname = 'heroku_dblink_connect'
ORDER BY 1;
-- the registry is dumped by pg_dump; only the view is readable by PUBLIC
SELECT c.relname, c.relkind, c.oid = ANY (x.extconfig) AS dumped,
       has_table_privilege('public', c.oid, 'SELECT') AS public_can_select
FROM pg_class c, pg_extension x
WHERE x.extname = 'heroku_resolver' AND c.relname IN ('heroku_fdw_registry', 'heroku_fdw_servers')
ORDER BY 1;

-- postgres_fdw is not installed yet: 42704, and the hint says what to do
SELECT heroku_fdw_create_server('hr_fdw', 'myapp');
\set VERBOSITY terse
SELECT regress.try($$SELECT heroku_fdw_create_server('hr_fdw', 'myapp', fdw => 'no_such_fdw')$$);
CREATE EXTENSION postgres_fdw;

-- create: the server gets host, port, dbname and sslmode; the mapping user
-- and password
SELECT heroku_fdw_create_server('hr_fdw', 'myapp');
SELECT option_name,
       CASE WHEN option_name = 'port' THEN (option_value = :'remote_port')::text
            ELSE option_value END AS value
FROM pg_foreign_server s, pg_options_to_table(s.srvoptions)
WHERE s.srvname = 'hr_fdw';
SELECT m.usename, o.option_name,
       CASE WHEN o.option_name = 'password' THEN '***' ELSE o.option_value END AS value
FROM pg_user_mappings m, pg_options_to_table(m.umoptions) o
WHERE m.srvname = 'hr_fdw' ORDER BY 1, 2;
CREATE FOREIGN TABLE hr_orders (id int, amount numeric)
	SERVER hr_fdw OPTIONS (table_name 'orders');
SELECT count(*) FROM hr_orders;
SELECT server, fdw, app, config_var, roles, host, port = :'remote_port' AS port_ok, dbname,
       server_exists, last_refreshed IS NOT NULL AS refreshed, last_error
FROM heroku_fdw_servers;

-- the same server or user mapping twice
SELECT regress.try($$SELECT heroku_fdw_create_server('hr_fdw', 'myapp')$$);
SELECT regress.try($$SELECT heroku_fdw_add_user_mapping('hr_fdw', current_user::regrole)$$);

-- nothing changed: nothing is altered (same row versions, same options)
CREATE TEMP TABLE catalog_before AS
SELECT 'server' AS what, xmin::text AS x, srvoptions AS opts FROM pg_foreign_server WHERE srvname = 'hr_fdw'
UNION ALL
SELECT 'mapping', xmin::text, umoptions FROM pg_user_mapping
WHERE umserver = (SELECT oid FROM pg_foreign_server WHERE srvname = 'hr_fdw');
SELECT heroku_fdw_refresh('hr_fdw');
SELECT b.what, a.x = b.x AND a.opts = b.opts AS untouched
FROM catalog_before b JOIN (
	SELECT 'server' AS what, xmin::text AS x, srvoptions AS opts FROM pg_foreign_server WHERE srvname = 'hr_fdw'
	UNION ALL
	SELECT 'mapping', xmin::text, umoptions FROM pg_user_mapping
	WHERE umserver = (SELECT oid FROM pg_foreign_server WHERE srvname = 'hr_fdw')) a USING (what);

-- an option set by hand is the user's: refreshes leave it alone
ALTER SERVER hr_fdw OPTIONS (ADD fetch_size '50');

-- rotation: the stored password is refused until the refresh
\! bash test/rotate.sh myapp
SELECT regress.try('SELECT count(*) FROM hr_orders');
SELECT heroku_fdw_refresh('hr_fdw');
SELECT count(*) FROM hr_orders;
SELECT heroku_fdw_refresh('hr_fdw');
SELECT option_name, option_value FROM pg_foreign_server s, pg_options_to_table(s.srvoptions)
WHERE s.srvname = 'hr_fdw' AND option_name = 'fetch_size';
SELECT last_changed >= registered_at AS changed_recorded FROM heroku_fdw_servers WHERE server = 'hr_fdw';

-- failover: another host with other credentials; refresh_all picks it up
\! bash test/rotate.sh myapp --failover
SELECT heroku_fdw_refresh_all();
SELECT count(*) FROM hr_orders;
SELECT port = :'remote2_port' AS on_remote2 FROM heroku_fdw_servers WHERE server = 'hr_fdw';
\! bash test/rotate.sh myapp --failover
SELECT heroku_fdw_refresh('hr_fdw');
SELECT count(*) FROM hr_orders;

-- another role gets a mapping with the current credentials; it is not a
-- superuser, so postgres_fdw insists the remote asks it for the password
CREATE ROLE regress_hr_fdw_reader;
GRANT SELECT ON hr_orders TO regress_hr_fdw_reader;
SELECT heroku_fdw_add_user_mapping('hr_fdw', 'regress_hr_fdw_reader');
SELECT roles FROM heroku_fdw_servers WHERE server = 'hr_fdw';
SET ROLE regress_hr_fdw_reader;
SELECT count(*) FROM hr_orders;
RESET ROLE;
-- both mappings follow a rotation
\! bash test/rotate.sh myapp
SELECT heroku_fdw_refresh('hr_fdw');
SELECT count(*) FROM hr_orders;
SET ROLE regress_hr_fdw_reader;
SELECT count(*) FROM hr_orders;
RESET ROLE;
-- a mapping dropped by hand leaves the registry at the next refresh
DROP USER MAPPING FOR regress_hr_fdw_reader SERVER hr_fdw;
SELECT heroku_fdw_refresh('hr_fdw');
SELECT roles FROM heroku_fdw_servers WHERE server = 'hr_fdw';

-- which options go where, and a managed option the URL no longer carries
-- is dropped while a hand-set one stays (the scratch app's URL is fake:
-- nothing connects to it)
\! /usr/bin/python3 test/mockctl.py put-app hr-fdw-scratch --var 'DATABASE_URL=postgres://u:pw@h.example:5433/db?application_name=one&connect_timeout=10&fallback_application_name=fb'
SELECT heroku_fdw_create_server('hr_scratch', 'hr-fdw-scratch', 'DATABASE');
SELECT heroku_fdw_create_server('hr_scratch_dblink', 'hr-fdw-scratch', fdw => 'dblink_fdw');
SELECT s.srvname, array_agg(o.option_name || '=' || o.option_value ORDER BY o.option_name)
FROM pg_foreign_server s, pg_options_to_table(s.srvoptions) o
WHERE s.srvname LIKE 'hr_scratch%' GROUP BY 1 ORDER BY 1;
SELECT m.srvname, array_agg(o.option_name ORDER BY o.option_name)
FROM pg_user_mappings m, pg_options_to_table(m.umoptions) o
WHERE m.srvname LIKE 'hr_scratch%' GROUP BY 1 ORDER BY 1;
-- the registry knows the name the API answered to
SELECT server, config_var FROM heroku_fdw_servers WHERE server = 'hr_scratch';
ALTER SERVER hr_scratch OPTIONS (ADD keepalives '1', ADD use_remote_estimate 'true');
\! /usr/bin/python3 test/mockctl.py set-var hr-fdw-scratch DATABASE_URL 'postgres://u:pw@h2.example:5433/db?connect_timeout=10'
SELECT heroku_fdw_refresh('hr_scratch');
SELECT heroku_fdw_refresh('hr_scratch');
SELECT array_agg(o.option_name || '=' || o.option_value ORDER BY o.option_name)
FROM pg_foreign_server s, pg_options_to_table(s.srvoptions) o WHERE s.srvname = 'hr_scratch';

-- an API failure during a refresh: the foundation's SQLSTATE (5xx: 08006)
\! /usr/bin/python3 test/mockctl.py fault status --status 503 --path /apps/hr-fdw-scratch/ --count 1
SELECT regress.try($$SELECT heroku_fdw_refresh('hr_scratch')$$);
-- refresh_all goes on past a failing server, which it reports and records
\! /usr/bin/python3 test/mockctl.py fault status --status 503 --path /apps/hr-fdw-scratch/ --count 1
\! bash test/rotate.sh myapp
SELECT heroku_fdw_refresh_all();
SELECT count(*) FROM hr_orders;
SELECT server, last_error IS NOT NULL AS failed, last_error_at IS NOT NULL AS failed_at
FROM heroku_fdw_servers ORDER BY 1;
SELECT heroku_fdw_refresh_all();
SELECT server, last_error FROM heroku_fdw_servers ORDER BY 1;

-- a dblink_fdw server works with dblink by name
SELECT heroku_fdw_create_server('hr_dblink', 'myapp', fdw => 'dblink_fdw');
SELECT * FROM dblink('hr_dblink', 'SELECT count(*) FROM orders') AS t(n bigint);

-- unregister: the server stays, the extension forgets it
SELECT heroku_fdw_unregister('hr_dblink');
SELECT * FROM dblink('hr_dblink', 'SELECT count(*) FROM orders') AS t(n bigint);
SELECT regress.try($$SELECT heroku_fdw_refresh('hr_dblink')$$);
SELECT regress.try($$SELECT heroku_fdw_unregister('hr_dblink')$$);
-- a registered server dropped by hand is forgotten at once (an event
-- trigger on sql_drop; test/t/031_registry.pl has the rest)
DROP SERVER hr_scratch_dblink CASCADE;
SELECT server, server_exists FROM heroku_fdw_servers WHERE server = 'hr_scratch_dblink';
SELECT regress.try($$SELECT heroku_fdw_refresh('hr_scratch_dblink')$$);
SELECT heroku_fdw_refresh_all();
SELECT regress.try($$SELECT heroku_fdw_unregister('hr_scratch_dblink')$$);

-- heroku_dblink_connect: a named dblink connection to the app's database
SELECT heroku_dblink_connect('hr_conn', 'myapp');
SELECT * FROM dblink('hr_conn', 'SELECT count(*) FROM orders') AS t(n bigint);
SELECT * FROM dblink('hr_conn', 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()') AS t(ssl boolean);
SELECT regress.try($$SELECT heroku_dblink_connect('hr_conn', 'myapp')$$);
SELECT dblink_disconnect('hr_conn');
SELECT heroku_dblink_connect('hr_conn', 'myapp', 'HEROKU_POSTGRESQL_VIOLET');
SELECT dblink_disconnect('hr_conn');
-- an unknown app: the API's error, and no connection left behind
SELECT regress.try($$SELECT heroku_dblink_connect('hr_conn', 'no-such-app')$$);
SELECT dblink_get_connections();

-- a server owner who is not a superuser: USAGE on the FDW and EXECUTE are
-- enough; the mapping carries a password, as postgres_fdw requires
CREATE ROLE regress_hr_fdw_owner;
CREATE ROLE regress_hr_fdw_other;
CREATE SCHEMA regress_hr_fdw AUTHORIZATION regress_hr_fdw_owner;
GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO regress_hr_fdw_owner;
GRANT USAGE ON SCHEMA regress TO regress_hr_fdw_owner, regress_hr_fdw_other;
GRANT EXECUTE ON FUNCTION heroku_fdw_create_server(name, text, text, name, regrole),
	heroku_fdw_add_user_mapping(name, regrole), heroku_fdw_refresh(name),
	heroku_fdw_refresh_all(), heroku_fdw_unregister(name)
	TO regress_hr_fdw_owner, regress_hr_fdw_other;
SET ROLE regress_hr_fdw_owner;
SELECT heroku_fdw_create_server('hr_fdw_owned', 'myapp');
CREATE FOREIGN TABLE regress_hr_fdw.orders (id int)
	SERVER hr_fdw_owned OPTIONS (schema_name 'public', table_name 'orders');
SELECT count(*) FROM regress_hr_fdw.orders;
SELECT heroku_fdw_refresh('hr_fdw_owned');
-- the view shows the owner its own servers only; the registry itself is closed
SELECT server, roles FROM heroku_fdw_servers;
SELECT regress.try('SELECT count(*) FROM heroku_fdw_registry');
SELECT regress.try($$SELECT heroku_fdw_refresh('hr_fdw')$$);
-- not someone else's server
SET ROLE regress_hr_fdw_other;
SELECT regress.try($$SELECT heroku_fdw_refresh('hr_fdw_owned')$$);
SELECT regress.try($$SELECT heroku_fdw_add_user_mapping('hr_fdw_owned', 'regress_hr_fdw_other')$$);
SELECT regress.try($$SELECT heroku_fdw_unregister('hr_fdw_owned')$$);
SELECT regress.try($$SELECT heroku_fdw_create_server('hr_fdw_other', 'myapp')$$);
-- refresh_all skips the servers the caller does not own
SELECT heroku_fdw_refresh_all();
SELECT count(*) FROM heroku_fdw_servers;
RESET ROLE;
-- no EXECUTE, no call
CREATE ROLE regress_hr_fdw_nobody;
GRANT USAGE ON SCHEMA regress TO regress_hr_fdw_nobody;
SET ROLE regress_hr_fdw_nobody;
SELECT regress.try($$SELECT heroku_fdw_refresh('hr_fdw')$$);
SELECT regress.try($$SELECT heroku_dblink_connect('c', 'myapp')$$);
RESET ROLE;

-- bad input: NULLs (22004 naming the argument), unknown and unregistered
-- servers, unknown roles, unsupported wrappers
SELECT regress.try($$SELECT heroku_fdw_create_server(NULL, 'myapp')$$);
SELECT regress.try($$SELECT heroku_fdw_create_server('x', NULL)$$);
SELECT regress.try($$SELECT heroku_fdw_create_server('x', 'myapp', NULL)$$);
SELECT regress.try($$SELECT heroku_fdw_create_server('x', 'myapp', 'DATABASE_URL', NULL)$$);
SELECT regress.try($$SELECT heroku_fdw_create_server('x', 'myapp', 'DATABASE_URL', 'postgres_fdw', NULL)$$);
SELECT regress.try($$SELECT heroku_fdw_add_user_mapping(NULL, 'regress_hr_fdw_other')$$);
SELECT regress.try($$SELECT heroku_fdw_add_user_mapping('hr_fdw', NULL)$$);
SELECT regress.try($$SELECT heroku_fdw_refresh(NULL)$$);
SELECT regress.try($$SELECT heroku_fdw_unregister(NULL)$$);
SELECT regress.try($$SELECT heroku_dblink_connect(NULL, 'myapp')$$);
SELECT regress.try($$SELECT heroku_dblink_connect('c', NULL)$$);
SELECT regress.try($$SELECT heroku_dblink_connect('c', 'myapp', NULL)$$);
SELECT regress.try($$SELECT heroku_fdw_refresh('no_such_server')$$);
SELECT regress.try($$SELECT heroku_fdw_add_user_mapping('no_such_server', 'regress_hr_fdw_other')$$);
SELECT regress.try($$SELECT heroku_fdw_unregister('no_such_server')$$);
CREATE SERVER hr_by_hand FOREIGN DATA WRAPPER postgres_fdw;
SELECT regress.try($$SELECT heroku_fdw_refresh('hr_by_hand')$$);
SELECT regress.try($$SELECT heroku_fdw_add_user_mapping('hr_by_hand', 'regress_hr_fdw_other')$$);
SELECT regress.try($$SELECT heroku_fdw_unregister('hr_by_hand')$$);
SELECT regress.try($$SELECT heroku_fdw_add_user_mapping('hr_fdw', 4000000000::oid::regrole)$$);
CREATE FOREIGN DATA WRAPPER regress_hr_fdw_plain;
SELECT regress.try($$SELECT heroku_fdw_create_server('x', 'myapp', fdw => 'regress_hr_fdw_plain')$$);
SELECT regress.try($$SELECT heroku_fdw_create_server('x', 'no-such-app')$$);
-- nothing was left behind by the failures
SELECT count(*) FROM pg_foreign_server WHERE srvname IN ('x', 'hr_fdw_other');
SELECT server FROM heroku_fdw_servers ORDER BY 1;

-- clean up (the remote databases stay as the rotations left them)
DROP SERVER hr_fdw, hr_by_hand, hr_dblink, hr_scratch CASCADE;
DROP FOREIGN DATA WRAPPER regress_hr_fdw_plain;
DROP OWNED BY regress_hr_fdw_owner, regress_hr_fdw_other, regress_hr_fdw_reader, regress_hr_fdw_nobody CASCADE;
DROP ROLE regress_hr_fdw_owner, regress_hr_fdw_other, regress_hr_fdw_reader, regress_hr_fdw_nobody;
SELECT heroku_fdw_unregister(server) FROM heroku_fdw_servers WHERE NOT server_exists ORDER BY server;
SELECT server FROM heroku_fdw_servers ORDER BY 1;
\! /usr/bin/python3 test/mockctl.py delete-app hr-fdw-scratch
