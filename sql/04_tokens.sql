--
-- Where the token comes from, and in which order: heroku.api_key,
-- heroku.api_key_file, HEROKU_API_KEY (covered by a TAP test, as it lives in
-- the server's environment), then the netrc entry for the API host.
--
-- no cache: these tests expect every call to ask the API
SET heroku.cache_ttl = 0;
\getenv mock_url HEROKU_MOCK_URL
\getenv key_file HR_API_KEY_FILE
\getenv ro_key_file HR_READONLY_KEY_FILE
\getenv netrc HR_NETRC_FILE
SET heroku.api_url = :'mock_url';
\set VERBOSITY terse

-- netrc: the entry whose machine is the API URL's host (127.0.0.1)
SET heroku.netrc_file = :'netrc';
SELECT regress.mask(heroku_dblink_url('myapp'));
-- the same mock reached as "localhost" has no netrc entry
SELECT regress.try(format('SELECT heroku_dblink_url(%L)', 'myapp'))
FROM (SELECT set_config('heroku.api_url', replace(:'mock_url', '127.0.0.1', 'localhost'), false)) s;
SET heroku.api_url = :'mock_url';
-- a netrc file that cannot be read: 58P01 names the file
SET heroku.netrc_file = '/nonexistent/netrc';
SELECT regress.try($$SELECT heroku_dblink_url('myapp')$$);
-- the default netrc ($HOME/.netrc of the server's user) need not exist
RESET heroku.netrc_file;
SELECT regress.try($$SELECT heroku_dblink_url('myapp')$$) LIKE '28000: no Heroku API token configured%' AS no_token;

-- the key file: first line only, surrounding blanks ignored
SET heroku.api_key_file = :'key_file';
SELECT regress.mask(heroku_dblink_url('myapp'));
SET heroku.api_key_file = '/nonexistent/api_key';
SELECT regress.try($$SELECT heroku_dblink_url('myapp')$$);
SET heroku.api_key_file = '/dev/null';
SELECT regress.try($$SELECT heroku_dblink_url('myapp')$$);

-- order: the key file comes before netrc (a read-only key file wins, 403)
SET heroku.netrc_file = :'netrc';
SET heroku.api_key_file = :'ro_key_file';
SELECT regress.try($$SELECT heroku_dblink_url('myapp')$$);
-- order: heroku.api_key comes before the key file (a wrong key wins, 401)
SET heroku.api_key_file = :'key_file';
SET heroku.api_key = 'HRKU-not-a-valid-token';
SELECT regress.try($$SELECT heroku_dblink_url('myapp')$$);
RESET heroku.api_key;
SELECT regress.mask(heroku_dblink_url('myapp'));

-- the token is sent as a Bearer token
\! /usr/bin/python3 -c "import json, os, urllib.request; e = json.load(urllib.request.urlopen(os.environ['HEROKU_MOCK_URL'] + '/__mock/requests'))['log'][-1]; print(e['auth'])"
