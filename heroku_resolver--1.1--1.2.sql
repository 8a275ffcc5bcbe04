/* heroku_resolver--1.1--1.2.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION heroku_resolver UPDATE TO '1.2'" to load this file. \quit

-- heroku_resolver_status() shows each role's Heroku API requests of the last
-- hour (role_requests), so one role draining the account's budget is seen,
-- and the release feed (heroku.watch_interval): its last listing of the
-- account's apps, how many apps it saw, how many releases it found since
-- the server started, its GET /apps requests and its last error.
DROP FUNCTION heroku_resolver_status();

CREATE FUNCTION heroku_resolver_status(
    OUT preload boolean, OUT entries integer, OUT capacity integer,
    OUT api_requests bigint, OUT not_modified bigint, OUT rate_limited bigint,
    OUT ratelimit_remaining bigint, OUT ratelimit_at timestamptz,
    OUT backoff_until timestamptz,
    OUT worker_state text, OUT worker_pid integer, OUT worker_last_run timestamptz,
    OUT role_requests jsonb,
    OUT feed_last_listing timestamptz, OUT feed_apps_seen integer,
    OUT feed_changes bigint, OUT feed_requests bigint, OUT feed_last_error text)
RETURNS record
AS 'MODULE_PATHNAME', 'heroku_resolver_status'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION heroku_resolver_status() IS
'the resolution cache, the Heroku API requests and rate limit (per role over the last hour), the background refresher and the release feed';

REVOKE EXECUTE ON FUNCTION heroku_resolver_status() FROM PUBLIC;

-- FDW helpers: the registry knows a server by its OID and owner, and a user
-- mapping by its OID.
--
-- 1.1 knew a registered server by its name only.  After DROP SERVER, the row
-- stayed; a role with nothing but USAGE on the wrapper could make a server of
-- the same name, with user mappings of its choosing, and the next refresh
-- (the background refresher's, as a superuser) wrote the app's credentials
-- into them.  From 1.2 on a row holds:
--   server_oid     the server the extension made (NULL: it is gone)
--   server_owner   its owner then (a regrole, so that pg_dump writes a name)
--   mapping_oids   the user mappings the extension made, one for each element
--                  of roles, in the same order
--   oid_scope      whose catalogs these OIDs are: '<system identifier>:<database
--                  OID>' (the library, the view below and this script compute
--                  the same text)
-- A row is live while a server with its OID exists and has its owner; any
-- other row is dead, and nothing is ever written through it:
-- heroku_fdw_refresh() and heroku_fdw_add_user_mapping() say 42704 (not
-- registered), heroku_fdw_refresh_all() and the background refresher skip it
-- with a WARNING naming the server and the app and forget it (its registering
-- owner or a superuser does).  A user mapping is altered only if its OID, role
-- and server are the ones recorded: one dropped and made again by its role is
-- left alone, and the role leaves the row.  A renamed server stays registered
-- (the row follows the OID; server is the name it was last seen under).  So an
-- owner change ends a registration: make the server as the role that is to own
-- it (SET ROLE), not hand it over with ALTER SERVER ... OWNER TO.
--
-- pg_dump and pg_upgrade carry rows into catalogs where these OIDs mean
-- nothing.  The first access by the library there finds another oid_scope and
-- binds each such row again to the server of its name if that server has the
-- recorded owner, and to that server's user mappings of the recorded roles (the
-- dump made both, from the same database); a row without such a server is
-- dead.
ALTER TABLE heroku_fdw_registry
    ADD COLUMN server_oid oid,
    ADD COLUMN server_owner regrole,
    ADD COLUMN mapping_oids oid[] NOT NULL DEFAULT '{}',
    ADD COLUMN oid_scope text;

-- The rows of 1.1 name their server: each is bound to the server of that name
-- as it is now, and to that server's mappings of its roles.  1.1 cannot tell
-- whether a server was dropped and made again by someone else before this
-- upgrade; look at heroku_fdw_servers (its new column owner) afterwards.  A
-- row whose server is gone is dead (server_oid NULL) and keeps its roles for
-- the record.
UPDATE heroku_fdw_registry r
   SET server_oid = s.oid,
       server_owner = s.srvowner::pg_catalog.regrole,
       mapping_oids = ARRAY(SELECT u.umid
                              FROM pg_catalog.unnest(r.roles::pg_catalog.oid[]) WITH ORDINALITY AS x(role, n)
                              JOIN pg_catalog.pg_user_mappings u ON u.srvid = s.oid AND u.umuser = x.role
                             ORDER BY x.n),
       roles = ARRAY(SELECT x.role
                       FROM pg_catalog.unnest(r.roles::pg_catalog.oid[]) WITH ORDINALITY AS x(role, n)
                       JOIN pg_catalog.pg_user_mappings u ON u.srvid = s.oid AND u.umuser = x.role
                      ORDER BY x.n)::pg_catalog.regrole[]
  FROM pg_catalog.pg_foreign_server s
 WHERE s.srvname = r.server;

UPDATE heroku_fdw_registry
   SET oid_scope = (SELECT c.system_identifier::pg_catalog.text || ':' || d.oid::pg_catalog.text
                      FROM pg_catalog.pg_control_system() c, pg_catalog.pg_database d
                     WHERE d.datname = pg_catalog.current_database());

-- A server has one row at most; a server's name may be that of a dead row
-- too, or the stale name of a renamed server's row.
ALTER TABLE heroku_fdw_registry
    ALTER COLUMN oid_scope SET NOT NULL,
    DROP CONSTRAINT heroku_fdw_registry_pkey,
    ADD CONSTRAINT heroku_fdw_registry_server_oid_key UNIQUE (server_oid),
    ADD CONSTRAINT heroku_fdw_registry_mappings_check
        CHECK (server_oid IS NULL OR pg_catalog.cardinality(roles) = pg_catalog.cardinality(mapping_oids));

COMMENT ON COLUMN heroku_fdw_registry.server IS
'the server''s name when last seen (the row follows server_oid)';
COMMENT ON COLUMN heroku_fdw_registry.server_oid IS
'the foreign server the extension made; NULL: it is gone';
COMMENT ON COLUMN heroku_fdw_registry.server_owner IS
'its owner when registered; a server owned by another role is not written to';
COMMENT ON COLUMN heroku_fdw_registry.mapping_oids IS
'the user mappings the extension made, one for each of roles, in the same order';
COMMENT ON COLUMN heroku_fdw_registry.oid_scope IS
'system identifier:database OID of the catalogs the OIDs belong to';

-- The view: a registered server is the one with the row's OID and owner (or,
-- for rows that came from another database and are not bound yet, the one of
-- its name and owner, as the library will bind it); server_exists says
-- whether it is there.  A row is shown to members of the role that
-- registered it (its owner then) and to superusers.
CREATE OR REPLACE VIEW heroku_fdw_servers WITH (security_barrier) AS
SELECT COALESCE(s.srvname, r.server) AS server,
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
       r.last_error_at,
       r.server_owner AS owner
  FROM heroku_fdw_registry r
 CROSS JOIN (SELECT c.system_identifier::pg_catalog.text || ':' || d.oid::pg_catalog.text AS scope
               FROM pg_catalog.pg_control_system() c, pg_catalog.pg_database d
              WHERE d.datname = pg_catalog.current_database()) here
  LEFT JOIN pg_catalog.pg_foreign_server s
         ON s.srvowner = r.server_owner::pg_catalog.oid
        AND CASE WHEN r.oid_scope = here.scope THEN s.oid = r.server_oid
                 ELSE s.srvname = r.server END
  LEFT JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw
 WHERE COALESCE(pg_catalog.pg_has_role(r.server_owner::pg_catalog.oid, 'USAGE'), false)
    OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles
                WHERE rolname = CURRENT_USER AND rolsuper);

COMMENT ON VIEW heroku_fdw_servers IS
'foreign servers managed by heroku_resolver that the current user registered (all of them for a superuser)';

-- Forget a registered server as it is dropped.  This is tidiness, not the
-- guarantee: an event trigger does not fire when disabled or with
-- session_replication_role = replica, nor for a server dropped by a command
-- not listed here (DROP FUNCTION postgres_fdw_handler CASCADE, say); the
-- checks at every use catch those.  The function switches to the registry's
-- owner itself (it is not SECURITY DEFINER) and cannot be called from SQL.
CREATE FUNCTION heroku_fdw_forget_dropped()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'heroku_fdw_forget_dropped'
LANGUAGE C;

COMMENT ON FUNCTION heroku_fdw_forget_dropped() IS
'sql_drop event trigger: forget registered foreign servers as they are dropped';

REVOKE EXECUTE ON FUNCTION heroku_fdw_forget_dropped() FROM PUBLIC;

CREATE EVENT TRIGGER heroku_fdw_forget_dropped ON sql_drop
    WHEN TAG IN ('DROP SERVER', 'DROP FOREIGN DATA WRAPPER', 'DROP OWNED',
                 'DROP EXTENSION', 'DROP SCHEMA')
    EXECUTE FUNCTION heroku_fdw_forget_dropped();

-- pg_dump dumps the registry's rows (pg_extension_config_dump), so whoever may
-- dump the database must be able to read them; with no right on the table, a
-- database owner who is not a superuser could no longer pg_dump the database.
-- It holds no secret (see 1.0--1.1), so the database's owner may read it,
-- through pg_database_owner (PostgreSQL 14 and later), which is always the
-- owner of the moment, after ALTER DATABASE ... OWNER TO as well.  Writing
-- stays with the functions.  PostgreSQL 13 has no pg_database_owner: there
-- the owner at this moment gets the grant (grant it again to a new owner).
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pg_database_owner') THEN
        GRANT SELECT ON @extschema@.heroku_fdw_registry TO pg_database_owner;
    ELSE
        EXECUTE pg_catalog.format('GRANT SELECT ON @extschema@.heroku_fdw_registry TO %I',
                                  (SELECT pg_catalog.pg_get_userbyid(datdba)
                                     FROM pg_catalog.pg_database
                                    WHERE datname = pg_catalog.current_database()));
    END IF;
END
$$;

-- heroku_resolver_refresh(): revalidate now, with conditional requests, the
-- cached URLs of an app and config var, and refresh the registered servers
-- (in this database) that follow them; returns how many entries and servers
-- really changed.  NULL means "any" here, as in heroku_resolver_invalidate():
-- unlike the other functions, a NULL argument is not refused.  Not STRICT.
CREATE FUNCTION heroku_resolver_refresh(app text DEFAULT NULL,
                                        config_var text DEFAULT NULL)
RETURNS integer
AS 'MODULE_PATHNAME', 'heroku_resolver_refresh'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION heroku_resolver_refresh(text, text) IS
'revalidate the cached URLs of app and config_var (NULL: any) now and refresh their registered servers; returns how many changed';

REVOKE EXECUTE ON FUNCTION heroku_resolver_refresh(text, text) FROM PUBLIC;
