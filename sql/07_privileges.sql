--
-- What a role without grants can see and do.
--
-- no cache: these tests expect every call to ask the API
SET heroku.cache_ttl = 0;
\getenv mock_url HEROKU_MOCK_URL
\getenv key_file HR_API_KEY_FILE
\set VERBOSITY terse
-- The token setting is hidden only once the library is loaded in the
-- session (until then heroku.api_key is a plain placeholder): that is why
-- the README asks for session_preload_libraries or shared_preload_libraries.
LOAD 'heroku_resolver';
SET heroku.api_key = 'HRKU-regress-session-secret';
CREATE ROLE regress_heroku_user LOGIN;
CREATE ROLE regress_heroku_granted LOGIN;
GRANT EXECUTE ON FUNCTION heroku_dblink_url(text, text) TO regress_heroku_granted;
GRANT USAGE ON SCHEMA regress TO regress_heroku_user, regress_heroku_granted;
-- the SQLSTATE of stmt's error and the setting its message names: the
-- wording of "may not read this setting" changed in PostgreSQL 15 and 16
CREATE FUNCTION regress.denied(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	st text;
	msg text;
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
	RETURN st || ': ' || coalesce(substring(msg from '"([^"]*)"'), msg);
END
$$;

SET ROLE regress_heroku_user;
-- the token setting cannot be read...
SELECT regress.denied('SHOW heroku.api_key');
SELECT regress.denied($$SELECT current_setting('heroku.api_key')$$);
SELECT count(*) FROM pg_settings WHERE name = 'heroku.api_key';
-- ...nor the file settings
SELECT regress.denied('SHOW heroku.api_key_file');
-- no setting can be changed
SET heroku.api_url = 'http://127.0.0.1:1';
SET heroku.api_key = 'x';
-- and the functions cannot be run without a grant
SELECT regress.try($$SELECT heroku_dblink_url('myapp')$$);
SELECT regress.try($$SELECT heroku_database_url('myapp')$$);
RESET ROLE;

-- a grant lets a role resolve, with the settings a superuser made
RESET heroku.api_key;
SET heroku.api_url = :'mock_url';
SET heroku.api_key_file = :'key_file';
SET ROLE regress_heroku_granted;
SELECT regress.try($$SELECT heroku_dblink_url('no-such-app')$$);
SELECT heroku_dblink_url('myapp') LIKE 'host=%' AS resolved;
-- but only the function granted
SELECT regress.try($$SELECT heroku_database_url('myapp')$$);
RESET ROLE;
-- SHOW ALL never lists the token, even to a superuser
SELECT count(*) FROM pg_settings WHERE name = 'heroku.api_key';

DROP OWNED BY regress_heroku_granted, regress_heroku_user;
DROP ROLE regress_heroku_granted;
DROP ROLE regress_heroku_user;
