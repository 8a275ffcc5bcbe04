--
-- heroku_dblink_url() and heroku_database_url() against the mock API:
-- conninfo quoting, the URL form, sslmode, attachment names.
--
-- no cache: these tests expect every call to ask the API
SET heroku.cache_ttl = 0;
\getenv mock_url HEROKU_MOCK_URL
\getenv key_file HR_API_KEY_FILE
SET heroku.api_url = :'mock_url';
SET heroku.api_key_file = :'key_file';

-- the remote's real credentials, shown masked
SELECT regress.mask(heroku_dblink_url('myapp'));
SELECT regress.mask(heroku_database_url('myapp'));
SELECT regress.mask(heroku_dblink_url('myapp', 'DATABASE_URL'));
-- an app can also be named by its id
SELECT heroku_dblink_url('3f0a4c1e-8a6b-4d6e-9a51-2b7c9d0e1f23') = heroku_dblink_url('myapp') AS same;

-- attachment names: NAME_URL is used when NAME itself is absent
SELECT heroku_dblink_url('myapp', 'HEROKU_POSTGRESQL_VIOLET') = heroku_dblink_url('myapp', 'HEROKU_POSTGRESQL_VIOLET_URL') AS violet;
SELECT heroku_dblink_url('myapp', 'DATABASE') = heroku_dblink_url('myapp') AS database;
-- an exact name wins over NAME_URL
\! /usr/bin/python3 test/mockctl.py put-app scratch-app --var 'THING=postgres://exact@h1/d' --var 'THING_URL=postgres://suffixed@h2/d'
SELECT heroku_dblink_url('scratch-app', 'THING');

-- libpq quoting: any password round-trips (made-up values, no real secret)
\! /usr/bin/python3 test/mockctl.py set-var scratch-app DATABASE_URL 'postgres://u:it%27s@h.example:5432/db'
SELECT heroku_dblink_url('scratch-app') = $$host='h.example' port='5432' dbname='db' user='u' password='it\'s' sslmode='require'$$ AS quote;
\! /usr/bin/python3 test/mockctl.py set-var scratch-app DATABASE_URL 'postgres://u:back%5Cslash%5C@h.example:5432/db'
SELECT heroku_dblink_url('scratch-app') = $$host='h.example' port='5432' dbname='db' user='u' password='back\\slash\\' sslmode='require'$$ AS backslash;
\! /usr/bin/python3 test/mockctl.py set-var scratch-app DATABASE_URL 'postgres://u:a%20b%40c%3Ad%2Fe%25f%23g%3Fh@h.example:5432/db'
SELECT heroku_dblink_url('scratch-app') = $$host='h.example' port='5432' dbname='db' user='u' password='a b@c:d/e%f#g?h' sslmode='require'$$ AS specials;
\! /usr/bin/python3 test/mockctl.py set-var scratch-app DATABASE_URL 'postgres://us%C3%A9r:p%C3%A4ss%E2%82%AC@h.example:5432/d%C3%B8'
SELECT heroku_dblink_url('scratch-app') = $$host='h.example' port='5432' dbname='dø' user='usér' password='päss€' sslmode='require'$$ AS non_ascii;
-- a raw (unencoded) quote and backslash in the URL
\! /usr/bin/python3 test/mockctl.py set-var scratch-app DATABASE_URL "postgres://u:a'b\\c@h.example/db"
SELECT heroku_dblink_url('scratch-app') = $$host='h.example' dbname='db' user='u' password='a\'b\\c' sslmode='require'$$ AS raw;
-- IPv6 hosts, other URI parameters kept, postgresql:// scheme
\! /usr/bin/python3 test/mockctl.py set-var scratch-app DATABASE_URL 'postgresql://u:pw@[::1]:6543/db?application_name=my%20app&connect_timeout=10'
SELECT regress.mask(heroku_dblink_url('scratch-app'));
SELECT regress.mask(heroku_database_url('scratch-app'));
-- the URL form percent-encodes every part
\! /usr/bin/python3 test/mockctl.py set-var scratch-app DATABASE_URL 'postgres://u%20x:p%27%5C%20%40%C3%A9@h.example:5432/my%20db?application_name=-c%20search_path%3Dx'
SELECT heroku_database_url('scratch-app') = 'postgres://u%20x:p%27%5C%20%40%C3%A9@h.example:5432/my%20db?application_name=-c%20search_path%3Dx&sslmode=require' AS encoded;
SELECT heroku_dblink_url('scratch-app') = $$host='h.example' port='5432' dbname='my db' user='u x' password='p\'\\ @é' application_name='-c search_path=x' sslmode='require'$$ AS decoded;

-- sslmode: missing or weaker than heroku.min_sslmode is raised, stronger kept
\! /usr/bin/python3 test/mockctl.py set-var scratch-app A 'postgres://u:pw@h.example/db?sslmode=disable'
\! /usr/bin/python3 test/mockctl.py set-var scratch-app B 'postgres://u:pw@h.example/db?sslmode=allow'
\! /usr/bin/python3 test/mockctl.py set-var scratch-app C 'postgres://u:pw@h.example/db?sslmode=prefer'
\! /usr/bin/python3 test/mockctl.py set-var scratch-app D 'postgres://u:pw@h.example/db?sslmode=require'
\! /usr/bin/python3 test/mockctl.py set-var scratch-app E 'postgres://u:pw@h.example/db?sslmode=verify-ca'
\! /usr/bin/python3 test/mockctl.py set-var scratch-app F 'postgres://u:pw@h.example/db?sslmode=verify-full'
\! /usr/bin/python3 test/mockctl.py set-var scratch-app G 'postgres://u:pw@h.example/db'
SELECT v, substring(heroku_dblink_url('scratch-app', v) from 'sslmode=''([a-z-]+)''') AS conninfo_mode,
       substring(heroku_database_url('scratch-app', v) from 'sslmode=([a-z-]+)') AS url_mode
FROM unnest(ARRAY['A','B','C','D','E','F','G']) AS v;
SET heroku.min_sslmode = 'verify-ca';
SELECT v, substring(heroku_dblink_url('scratch-app', v) from 'sslmode=''([a-z-]+)''') AS mode
FROM unnest(ARRAY['A','D','E','F','G']) AS v;
SET heroku.min_sslmode = 'verify-full';
SELECT v, substring(heroku_dblink_url('scratch-app', v) from 'sslmode=''([a-z-]+)''') AS mode
FROM unnest(ARRAY['A','E','F','G']) AS v;
RESET heroku.min_sslmode;

-- every call asks the API: a changed value is seen at once
\! /usr/bin/python3 test/mockctl.py set-var scratch-app DATABASE_URL 'postgres://u:pw@first.example/db'
SELECT regress.mask(heroku_dblink_url('scratch-app'));
\! /usr/bin/python3 test/mockctl.py set-var scratch-app DATABASE_URL 'postgres://u:pw@second.example/db'
SELECT regress.mask(heroku_dblink_url('scratch-app'));
\! /usr/bin/python3 test/mockctl.py reset-counts
SELECT count(heroku_dblink_url('scratch-app')) FROM generate_series(1, 5);
\! /usr/bin/python3 test/mockctl.py counts --path /apps/scratch-app/config-vars

-- the request carries the documented headers
\! /usr/bin/python3 -c "import json, os, urllib.request; e = json.load(urllib.request.urlopen(os.environ['HEROKU_MOCK_URL'] + '/__mock/requests'))['log'][-1]; print(e['method'], e['path'], e['auth'], e['user_agent'].split('/')[0])"
\! /usr/bin/python3 test/mockctl.py delete-app scratch-app
