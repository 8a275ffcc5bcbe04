--
-- Every row of the SQLSTATE contract, with the mock answering (or not) as
-- each case needs.
--
-- no cache: these tests expect every call to ask the API
SET heroku.cache_ttl = 0;
\getenv mock_url HEROKU_MOCK_URL
\getenv key_file HR_API_KEY_FILE
\getenv ro_key_file HR_READONLY_KEY_FILE
SET heroku.api_url = :'mock_url';
SET heroku.api_key_file = :'key_file';
\set VERBOSITY terse

-- 22004: NULL arguments, named
SELECT regress.try($$SELECT heroku_dblink_url(NULL)$$);
SELECT regress.try($$SELECT heroku_dblink_url('myapp', NULL)$$);
SELECT regress.try($$SELECT heroku_database_url(NULL, 'DATABASE_URL')$$);

-- 22023: malformed app names and config var names, refused before any request
\! /usr/bin/python3 test/mockctl.py reset-counts
SELECT a, regress.try(format('SELECT heroku_dblink_url(%L)', a))
FROM unnest(ARRAY['MyApp', 'ab', repeat('a', 31), '../etc', 'my/app', 'app?x=1', 'app#x',
                  'app%2f', 'my app', '', 'app-', '1app', 'appé',
                  '3f0a4c1e-8a6b-4d6e-9a51-2b7c9d0e1f2', '3f0a4c1e_8a6b_4d6e_9a51_2b7c9d0e1f23']) AS a;
SELECT v, regress.try(format('SELECT heroku_dblink_url(%L, %L)', 'myapp', v))
FROM unnest(ARRAY['', 'DATABASE URL', 'DATABASE_URL/../x', 'X-Y', repeat('A', 256)]) AS v;
\! /usr/bin/python3 test/mockctl.py counts

-- 28000: no token anywhere (a netrc file without the API host)
SET heroku.api_key_file = '';
SET heroku.netrc_file = '/dev/null';
SELECT regress.try($$SELECT heroku_dblink_url('myapp')$$);
\set VERBOSITY default
SELECT heroku_dblink_url('myapp');
\set VERBOSITY terse
RESET heroku.netrc_file;
-- 28000: the API answers 401 to a wrong token
SET heroku.api_key = 'HRKU-not-a-valid-token';
SELECT regress.try($$SELECT heroku_dblink_url('myapp')$$);
RESET heroku.api_key;
-- 42501: the API answers 403 to a token without the read-protected scope
SET heroku.api_key_file = :'ro_key_file';
SELECT regress.try($$SELECT heroku_dblink_url('myapp')$$);
SET heroku.api_key_file = :'key_file';

-- 42704: no such app; config var absent; config var null
SELECT regress.try($$SELECT heroku_dblink_url('no-such-app')$$);
SELECT regress.try($$SELECT heroku_dblink_url('myapp', 'NO_SUCH_VAR')$$);
SELECT regress.try($$SELECT heroku_dblink_url('myapp', 'NULL_VAR')$$);

-- 53400: the API answers 429
\! /usr/bin/python3 test/mockctl.py fault status --status 429 --retry-after 30 --count 2
SELECT regress.try($$SELECT heroku_dblink_url('myapp')$$);
SELECT regress.detail($$SELECT heroku_dblink_url('myapp')$$);

-- 08006: 5xx with and without a JSON body, dropped connection, refused
-- connection, timeout
\! /usr/bin/python3 test/mockctl.py fault status --status 503 --count 1
SELECT regress.try($$SELECT heroku_dblink_url('myapp')$$);
\! /usr/bin/python3 test/mockctl.py fault status --status 500 --no-json --count 1
SELECT regress.try($$SELECT heroku_dblink_url('myapp')$$);
\! /usr/bin/python3 test/mockctl.py fault drop --count 2
SELECT regress.try($$SELECT heroku_dblink_url('myapp')$$);
SET heroku.api_url = 'http://127.0.0.1:1';
SELECT regress.try($$SELECT heroku_dblink_url('myapp')$$);
SET heroku.api_url = :'mock_url';
\! /usr/bin/python3 test/mockctl.py fault delay --seconds 3 --count 1
SET heroku.timeout = '300ms';
SELECT regress.try($$SELECT heroku_dblink_url('myapp')$$);
RESET heroku.timeout;

-- 08P01: not JSON, not an object, value not a string, truncated, too large
\! /usr/bin/python3 test/mockctl.py fault body --body 'Service is fine, thanks' --count 1
SELECT regress.detail($$SELECT heroku_dblink_url('myapp')$$);
\! /usr/bin/python3 test/mockctl.py fault body --body '["DATABASE_URL"]' --count 1
SELECT regress.detail($$SELECT heroku_dblink_url('myapp')$$);
\! /usr/bin/python3 test/mockctl.py fault body --body '{"DATABASE_URL": 5432}' --count 1
SELECT regress.detail($$SELECT heroku_dblink_url('myapp')$$);
\! /usr/bin/python3 test/mockctl.py fault body --body '{"DATABASE_URL": {"a": "b"}}' --count 1
SELECT regress.detail($$SELECT heroku_dblink_url('myapp')$$);
\! /usr/bin/python3 test/mockctl.py fault body --body '{"DATABASE_URL": "postgres://u:pw@h/d"' --count 1
SELECT regress.detail($$SELECT heroku_dblink_url('myapp')$$);
\! /usr/bin/python3 test/mockctl.py fault oversize --size 2000000 --count 1
SELECT regress.detail($$SELECT heroku_dblink_url('myapp')$$);
-- a redirect is not followed (the token is never sent elsewhere)
\! /usr/bin/python3 test/mockctl.py fault redirect --location http://127.0.0.1:9/elsewhere --count 1
SELECT regress.detail($$SELECT heroku_dblink_url('myapp')$$);

-- 22023: the value is not a postgres URI, or libpq cannot parse it
SELECT regress.try($$SELECT heroku_dblink_url('myapp', 'REDIS_URL')$$);
SELECT regress.detail($$SELECT heroku_dblink_url('myapp', 'REDIS_URL')$$);
\! /usr/bin/python3 test/mockctl.py put-app scratch-app --var 'BADPCT=postgres://u:pw@h.example/db?x=%zz' --var 'NOHOST=postgres:///db' --var 'BADPORT=postgres://u:pw@h.example:99999/db' --var 'BADMODE=postgres://u:pw@h.example/db?sslmode=sometimes' --var 'BADKEY=postgres://u:pw@h.example/db?nosuchoption=1' --var 'NOTURL=host=h.example password=pw' --var 'ATQUERY=postgres://@h.example?password=querysecret@x%zz/db'
SELECT v, regress.try(format('SELECT heroku_dblink_url(%L, %L)', 'scratch-app', v))
FROM unnest(ARRAY['BADPCT', 'NOHOST', 'BADPORT', 'BADMODE', 'BADKEY', 'NOTURL']) AS v;
-- the DETAIL shows the URL with its password masked
SELECT regress.detail($$SELECT heroku_dblink_url('scratch-app', 'BADPCT')$$);
-- libpq ends the userinfo at the first '@': a query before a later '@' is not shown either
SELECT regress.detail($$SELECT heroku_dblink_url('scratch-app', 'ATQUERY')$$);
\! /usr/bin/python3 test/mockctl.py delete-app scratch-app

-- 22023: an API URL that would send the token in clear text, or no URL
SET heroku.api_url = 'http://api.example.com';
SELECT regress.try($$SELECT heroku_dblink_url('myapp')$$);
SET heroku.api_url = 'ftp://127.0.0.1/';
SELECT regress.try($$SELECT heroku_dblink_url('myapp')$$);
SET heroku.api_url = 'not a url';
SELECT regress.try($$SELECT heroku_dblink_url('myapp')$$);
SET heroku.api_url = :'mock_url';

-- the session is still usable after all of the above
SELECT regress.mask(heroku_dblink_url('myapp'));
