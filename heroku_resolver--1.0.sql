/* heroku_resolver--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION heroku_resolver" to load this file. \quit

-- Not STRICT: a NULL argument raises 22004 naming the argument.
-- VOLATILE: every call asks the Heroku API afresh.
CREATE FUNCTION heroku_dblink_url(app text, config_var text DEFAULT 'DATABASE_URL')
RETURNS text
AS 'MODULE_PATHNAME', 'heroku_dblink_url'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION heroku_dblink_url(text, text) IS
'libpq keyword/value conninfo for a Heroku app''s database URL, resolved now, with sslmode ensured';

CREATE FUNCTION heroku_database_url(app text, config_var text DEFAULT 'DATABASE_URL')
RETURNS text
AS 'MODULE_PATHNAME', 'heroku_database_url'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION heroku_database_url(text, text) IS
'postgres:// URL of a Heroku app''s database, resolved now, with sslmode ensured';

-- Both return credentials: nobody but the owner runs them without a grant.
REVOKE EXECUTE ON FUNCTION heroku_dblink_url(text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION heroku_database_url(text, text) FROM PUBLIC;
