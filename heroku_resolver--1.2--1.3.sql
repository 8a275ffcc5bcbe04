/* heroku_resolver--1.2--1.3.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION heroku_resolver UPDATE TO '1.3'" to load this file. \quit

-- Private and Shield databases reached from outside Heroku over mutual TLS
-- (heroku data:mtls:create): the client certificate (chain), its private key
-- and the root certificate of the Private Space, as files on this server.
-- They come from a superuser, never from a config var (a config var naming
-- sslcert, sslkey or sslrootcert is still refused: 22023).  With files set
-- for an app, every answer for it carries them: heroku_dblink_url(),
-- heroku_database_url(), heroku_dblink_connect() and the foreign servers of
-- the FDW helpers, through every refresh, healing and the release feed.
--
-- A row is for one config var of an app, or (config_var NULL) for all of
-- them; a row naming the config var wins over the app's NULL row.  pg_dump
-- keeps the rows; only superusers may read them (they name key files).
CREATE TABLE heroku_tls_files (
    app          text NOT NULL,
    config_var   text,
    sslcert      text,
    sslkey       text,
    sslrootcert  text,
    CHECK (sslcert IS NOT NULL OR sslrootcert IS NOT NULL),
    CHECK ((sslcert IS NULL) = (sslkey IS NULL))
);
CREATE UNIQUE INDEX heroku_tls_files_app_var
    ON heroku_tls_files (app, (COALESCE(config_var, '')));
REVOKE ALL ON heroku_tls_files FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('heroku_tls_files', '');

CREATE FUNCTION heroku_tls_set(app text, config_var text DEFAULT NULL,
                               sslcert text DEFAULT NULL, sslkey text DEFAULT NULL,
                               sslrootcert text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'heroku_tls_set'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION heroku_tls_set(text, text, text, text, text) IS
'mutual TLS for an app (or one of its config vars): the client certificate, its key and the server''s root certificate, as absolute paths this server can read (superuser only)';

CREATE FUNCTION heroku_tls_unset(app text, config_var text DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'heroku_tls_unset'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION heroku_tls_unset(text, text) IS
'forget the mutual TLS files of an app (config_var NULL: its row for every config var); false when there was none (superuser only)';

-- The end of validity of a certificate file (NULL when it cannot be read).
CREATE FUNCTION heroku_tls_not_after(certificate text)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'heroku_tls_not_after'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION heroku_tls_not_after(text) IS
'the not-after time of the first certificate of a PEM file on this server (superuser only)';

CREATE VIEW heroku_tls AS
    SELECT t.app, t.config_var, t.sslcert, t.sslkey, t.sslrootcert,
           CASE WHEN t.sslcert IS NOT NULL THEN heroku_tls_not_after(t.sslcert) END AS not_after
      FROM heroku_tls_files t;

COMMENT ON VIEW heroku_tls IS
'the mutual TLS files of each app, with the client certificate''s end of validity (superusers only)';

REVOKE ALL ON heroku_tls FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION heroku_tls_set(text, text, text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION heroku_tls_unset(text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION heroku_tls_not_after(text) FROM PUBLIC;
