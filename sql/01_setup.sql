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

-- conninfo or URL with the password replaced by ***
CREATE FUNCTION regress.mask(t text) RETURNS text LANGUAGE sql AS $$
	SELECT regexp_replace(
		regexp_replace(t, 'password=''(\\.|[^''\\])*''', 'password=***', 'g'),
		'^(postgres://[^:/@]*:)[^@]*@', '\1***@')
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
-- the prefix is reserved: a misspelt setting is refused
SET heroku.api_ulr = 'x';
