/* heroku_resolver--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION heroku_resolver UPDATE TO '1.1'" to load this file. \quit

-- FDW helpers
--
-- postgres_fdw / dblink_fdw servers whose options and user mappings come from
-- a Heroku app's config var, kept current by heroku_fdw_refresh(), and
-- heroku_dblink_connect().  The DDL is run by the C functions on parse trees,
-- never from SQL text, so a password reaches no NOTICE, log line or CONTEXT.

-- The registry: which servers the extension manages, for which app, and which
-- user mappings it made.  It holds no secret (the credentials live in
-- pg_user_mapping, as for any user mapping), so pg_dump dumps its rows.
--
-- Nobody is granted any right on it.  The functions below read and write it
-- as its owner, and only after checking that the caller may alter the server
-- concerned (owner or superuser).  Write access for other roles would let a
-- server owner point a registered server at any app and have the next
-- refresh, run by a superuser, copy that app's credentials into a mapping
-- they can read.
CREATE TABLE heroku_fdw_registry (
    server name PRIMARY KEY,
    app text NOT NULL,
    config_var text NOT NULL,
    -- the roles whose user mappings the extension made and keeps current
    roles regrole[] NOT NULL DEFAULT '{}',
    -- names (never values) of the options the extension set, so that a
    -- refresh can drop one the URL no longer carries and leave hand-set
    -- options alone
    server_options text[] NOT NULL DEFAULT '{}',
    mapping_options text[] NOT NULL DEFAULT '{}',
    registered_at timestamptz NOT NULL DEFAULT now(),
    last_refreshed timestamptz,
    last_changed timestamptz,
    -- set by heroku_fdw_refresh_all() when a server's refresh fails
    last_error text,
    last_error_at timestamptz
);

COMMENT ON TABLE heroku_fdw_registry IS
'foreign servers whose options heroku_resolver keeps current (no secrets); use heroku_fdw_servers to read it';

SELECT pg_catalog.pg_extension_config_dump('heroku_fdw_registry', '');

-- The registry with what the catalogs say about each server.  It runs with
-- its owner's rights on the registry, so it shows a row only to members of
-- the server's owner and to superusers (security_barrier keeps a caller's
-- functions from seeing the other rows).
CREATE VIEW heroku_fdw_servers WITH (security_barrier) AS
SELECT r.server,
       w.fdwname AS fdw,
       r.app,
       r.config_var,
       r.roles,
       (SELECT o.option_value FROM pg_catalog.pg_options_to_table(s.srvoptions) o
         WHERE o.option_name = 'host') AS host,
       (SELECT o.option_value FROM pg_catalog.pg_options_to_table(s.srvoptions) o
         WHERE o.option_name = 'port') AS port,
       (SELECT o.option_value FROM pg_catalog.pg_options_to_table(s.srvoptions) o
         WHERE o.option_name = 'dbname') AS dbname,
       s.oid IS NOT NULL AS server_exists,
       r.registered_at,
       r.last_refreshed,
       r.last_changed,
       r.last_error,
       r.last_error_at
  FROM heroku_fdw_registry r
  LEFT JOIN pg_catalog.pg_foreign_server s ON s.srvname = r.server
  LEFT JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw
 WHERE COALESCE(pg_catalog.pg_has_role(s.srvowner, 'USAGE'), false)
    OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles
                WHERE rolname = CURRENT_USER AND rolsuper);

COMMENT ON VIEW heroku_fdw_servers IS
'foreign servers managed by heroku_resolver that the current user owns (all of them for a superuser)';

GRANT SELECT ON heroku_fdw_servers TO PUBLIC;

-- None of these is STRICT (a NULL argument raises 22004 naming it) and none
-- is SECURITY DEFINER: the caller needs the rights PostgreSQL asks for the DDL
-- (USAGE on the FDW to create a server, ownership to alter it and its
-- mappings).  Each one puts an app's credentials where its caller can use
-- them, so EXECUTE is revoked from PUBLIC, as for heroku_dblink_url().

-- for_role's default is the current user: quote_ident() because a bare
-- current_user::regrole would fold a mixed-case role name to lower case.
CREATE FUNCTION heroku_fdw_create_server(server name, app text,
                                         config_var text DEFAULT 'DATABASE_URL',
                                         fdw name DEFAULT 'postgres_fdw',
                                         for_role regrole DEFAULT quote_ident(current_user)::regrole)
RETURNS void
AS 'MODULE_PATHNAME', 'heroku_fdw_create_server'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION heroku_fdw_create_server(name, text, text, name, regrole) IS
'create a foreign server and a user mapping from a Heroku app''s database URL, resolved now, and register them';

CREATE FUNCTION heroku_fdw_add_user_mapping(server name, for_role regrole)
RETURNS void
AS 'MODULE_PATHNAME', 'heroku_fdw_add_user_mapping'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION heroku_fdw_add_user_mapping(name, regrole) IS
'add a user mapping with the app''s current credentials to a registered foreign server';

CREATE FUNCTION heroku_fdw_refresh(server name)
RETURNS boolean
AS 'MODULE_PATHNAME', 'heroku_fdw_refresh'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION heroku_fdw_refresh(name) IS
'resolve a registered server''s app afresh and alter the server and its mappings if anything differs; true if something changed';

CREATE FUNCTION heroku_fdw_refresh_all()
RETURNS integer
AS 'MODULE_PATHNAME', 'heroku_fdw_refresh_all'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION heroku_fdw_refresh_all() IS
'heroku_fdw_refresh() every registered server, a failure being a WARNING; returns how many changed';

CREATE FUNCTION heroku_fdw_unregister(server name)
RETURNS void
AS 'MODULE_PATHNAME', 'heroku_fdw_unregister'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION heroku_fdw_unregister(name) IS
'forget a registered foreign server, leaving the server and its user mappings in place';

CREATE FUNCTION heroku_dblink_connect(conname text, app text,
                                      config_var text DEFAULT 'DATABASE_URL')
RETURNS text
AS 'MODULE_PATHNAME', 'heroku_dblink_connect'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION heroku_dblink_connect(text, text, text) IS
'dblink_connect() to a Heroku app''s database; on an authentication or connection error, resolves afresh and retries once';

REVOKE EXECUTE ON FUNCTION heroku_fdw_create_server(name, text, text, name, regrole) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION heroku_fdw_add_user_mapping(name, regrole) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION heroku_fdw_refresh(name) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION heroku_fdw_refresh_all() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION heroku_fdw_unregister(name) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION heroku_dblink_connect(text, text, text) FROM PUBLIC;

-- Cache and status
--
-- The resolution cache (heroku.cache_ttl; in shared memory, one for the
-- cluster, when the library is in shared_preload_libraries) and what the
-- extension knows of the Heroku API's rate limit.  Neither function shows a
-- user name or a password.

CREATE FUNCTION heroku_resolver_invalidate(app text DEFAULT NULL,
                                           config_var text DEFAULT NULL)
RETURNS integer
AS 'MODULE_PATHNAME', 'heroku_resolver_invalidate'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION heroku_resolver_invalidate(text, text) IS
'drop the cached resolutions of app and config_var (NULL: any); returns how many';

CREATE FUNCTION heroku_resolver_cache(
    OUT app text, OUT config_var text,
    OUT host text, OUT port text, OUT dbname text,
    OUT fetched_at timestamptz, OUT expires_at timestamptz,
    OUT hits bigint, OUT api_requests bigint,
    OUT last_status integer, OUT last_error text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'heroku_resolver_cache'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION heroku_resolver_cache() IS
'one row per entry of the resolution cache (no user, no password)';

CREATE FUNCTION heroku_resolver_status(
    OUT preload boolean, OUT entries integer, OUT capacity integer,
    OUT api_requests bigint, OUT not_modified bigint, OUT rate_limited bigint,
    OUT ratelimit_remaining bigint, OUT ratelimit_at timestamptz,
    OUT backoff_until timestamptz,
    OUT worker_state text, OUT worker_pid integer, OUT worker_last_run timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'heroku_resolver_status'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION heroku_resolver_status() IS
'the resolution cache, the Heroku API requests and rate limit, and the background refresher';

REVOKE EXECUTE ON FUNCTION heroku_resolver_invalidate(text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION heroku_resolver_cache() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION heroku_resolver_status() FROM PUBLIC;
