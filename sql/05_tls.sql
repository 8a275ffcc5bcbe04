--
-- TLS to the API (the mock's https listener, CA made at test time), and
-- interrupting a request that hangs.
--
-- no cache: these tests expect every call to ask the API
SET heroku.cache_ttl = 0;
\getenv mock_tls_url HEROKU_MOCK_TLS_URL
\getenv ca HR_TEST_CA
\getenv key_file HR_API_KEY_FILE
SET heroku.api_key_file = :'key_file';
SET heroku.api_url = :'mock_tls_url';
\set VERBOSITY terse

-- without the test CA the certificate cannot be verified: 08006
SELECT regress.try($$SELECT heroku_dblink_url('myapp')$$);
SELECT regress.detail($$SELECT heroku_dblink_url('myapp')$$);
-- with it, the request goes through
SET heroku.ca_file = :'ca';
SELECT regress.mask(heroku_dblink_url('myapp'));
-- a CA file that does not exist is a TLS failure too
SET heroku.ca_file = '/nonexistent/ca.crt';
SELECT regress.try($$SELECT heroku_dblink_url('myapp')$$);
-- an expired CA
\getenv expired_ca HR_TEST_CA_EXPIRED
SET heroku.ca_file = :'expired_ca';
SELECT regress.detail($$SELECT heroku_dblink_url('myapp')$$);
SET heroku.ca_file = :'ca';

-- statement_timeout interrupts a request the API never answers: 57014
\! /usr/bin/python3 test/mockctl.py fault hang --count 1
SET statement_timeout = '300ms';
SELECT heroku_dblink_url('myapp');
RESET statement_timeout;
-- and the backend goes on working
SELECT regress.mask(heroku_dblink_url('myapp'));
\! /usr/bin/python3 test/mockctl.py clear-faults
