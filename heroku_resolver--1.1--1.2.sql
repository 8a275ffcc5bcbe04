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
