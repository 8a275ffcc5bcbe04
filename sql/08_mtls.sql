--
-- Mutual TLS files (heroku_tls_set, heroku_tls_unset): argument errors.
-- The files themselves, the connections and the expiry warnings are tested
-- with real parts in test/t/080_mtls.pl.
--
\set VERBOSITY terse
SELECT regress.try($$SELECT heroku_tls_set(NULL, sslrootcert => '/nonexistent/ca.crt')$$);
SELECT regress.try($$SELECT heroku_tls_unset(NULL)$$);
SELECT regress.try($$SELECT heroku_tls_not_after(NULL)$$);
SELECT regress.try($$SELECT heroku_tls_set('myapp')$$);
SELECT regress.try($$SELECT heroku_tls_set('myapp', NULL, NULL, NULL, NULL)$$);
SELECT regress.try($$SELECT heroku_tls_set('my app', sslrootcert => '/nonexistent/ca.crt')$$);
SELECT regress.try($$SELECT heroku_tls_set('myapp', 'BAD-VAR', sslrootcert => '/nonexistent/ca.crt')$$);
SELECT regress.try($$SELECT heroku_tls_set('myapp', sslrootcert => 'ca.crt')$$);
SELECT regress.try($$SELECT heroku_tls_set('myapp', sslrootcert => '/nonexistent/ca.crt')$$);
SELECT regress.try($$SELECT heroku_tls_set('myapp', sslcert => '/nonexistent/client.crt')$$);
SELECT regress.try($$SELECT heroku_tls_set('myapp', sslkey => '/nonexistent/client.key')$$);
SELECT regress.try($$SELECT heroku_tls_set('myapp', sslcert => '/nonexistent/client.crt', sslkey => '/nonexistent/client.key')$$);
SELECT regress.try($$SELECT heroku_tls_set('myapp', sslrootcert => '/')$$);
SELECT heroku_tls_unset('myapp');
SELECT heroku_tls_unset('myapp', 'DATABASE_URL');
SELECT heroku_tls_not_after('/nonexistent/client.crt') IS NULL AS unreadable_is_null;
SELECT count(*) FROM heroku_tls;
-- superusers only, even with EXECUTE granted
CREATE ROLE regress_tls_user;
GRANT USAGE ON SCHEMA regress TO regress_tls_user;
GRANT EXECUTE ON FUNCTION heroku_tls_set(text, text, text, text, text),
	heroku_tls_unset(text, text), heroku_tls_not_after(text) TO regress_tls_user;
SET ROLE regress_tls_user;
SELECT regress.try($$SELECT heroku_tls_set('myapp', sslrootcert => '/nonexistent/ca.crt')$$);
SELECT regress.try($$SELECT heroku_tls_unset('myapp')$$);
SELECT regress.try($$SELECT heroku_tls_not_after('/etc/hostname')$$);
SELECT regress.try($$SELECT * FROM heroku_tls$$);
SELECT regress.try($$SELECT * FROM heroku_tls_files$$);
RESET ROLE;
DROP OWNED BY regress_tls_user;
DROP ROLE regress_tls_user;
