--
-- Shared set-up for the pg_regress suite: the extension, dblink, and two
-- helpers that print an error's SQLSTATE and message (never a secret).
--
CREATE EXTENSION dblink;
CREATE EXTENSION heroku_resolver;

CREATE SCHEMA regress;

-- run stmt; 'ok', or 'SQLSTATE: message' of the error it raised
CREATE FUNCTION regress.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	st text;
	msg text;
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
	RETURN st || ': ' || msg;
END
$$;

-- the SQLSTATE and DETAIL of stmt's error (for errors whose message names
-- a path or a port)
CREATE FUNCTION regress.detail(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	st text;
	det text;
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, det = PG_EXCEPTION_DETAIL;
	RETURN st || ': ' || det;
END
$$;

-- the remote clusters' ports, which differ from one test environment to
-- another: regress.mask shows them by name
\getenv remote_port HR_REMOTE_PORT
\getenv remote2_port HR_REMOTE2_PORT
CREATE TABLE regress.port (name text, port text);
INSERT INTO regress.port VALUES ('$HR_REMOTE_PORT', :'remote_port'),
	('$HR_REMOTE2_PORT', :'remote2_port');

-- conninfo or URL with the password replaced by *** and the remotes' ports
-- by their names
CREATE FUNCTION regress.mask(t text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	p regress.port;
BEGIN
	t := regexp_replace(t, 'password=''(\\.|[^''\\])*''', 'password=***', 'g');
	t := regexp_replace(t, '^(postgres://[^:/@]*:)[^@]*@', '\1***@');
	FOR p IN SELECT * FROM regress.port LOOP
		t := regexp_replace(t, '(port=''|:)' || p.port || '(?![0-9])', '\1' || p.name, 'g');
	END LOOP;
	RETURN t;
END
$$;

-- the functions are volatile, not strict, and not executable by PUBLIC
SELECT p.proname, p.provolatile, p.proisstrict,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_can_execute,
       pg_get_function_arguments(p.oid) AS args
FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'heroku_resolver'
ORDER BY 1;

-- GUCs and their defaults (the server-start ones, heroku.cache_entries and
-- heroku.database, exist only with shared_preload_libraries)
SELECT name, setting, unit, context, vartype
FROM pg_settings WHERE name LIKE 'heroku.%' AND context <> 'postmaster' ORDER BY name;
SHOW heroku.timeout;
SET heroku.timeout = '500ms';
SHOW heroku.timeout;
SET heroku.timeout = 2000;
SHOW heroku.timeout;
RESET heroku.timeout;
SET heroku.min_sslmode = 'disable';
-- (the reserved heroku.* prefix: reserved_prefix.sql)
