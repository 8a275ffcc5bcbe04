# postgres_fdw and dblink helpers against the mock API and the two TLS-only
# remotes: a password rotation (a foreign-table query fails before
# heroku_fdw_refresh() and works after it, also in a second session that had
# a cached connection), a failover, a refresh that finds nothing changed and
# alters nothing, heroku_fdw_refresh_all() past a failing server,
# heroku_dblink_connect() across a rotation with exactly one retry, a failing
# ALTER USER MAPPING, bad input, and no password in any output or the log.
use strict;
use warnings;

use HTTP::Tiny;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use HrTest;

need_env(qw(HEROKU_MOCK_URL HR_API_KEY_FILE HR_MOCKCTL HR_ROTATE HR_TEST_DIR
	HR_REMOTE_PORT HR_REMOTE2_PORT HR_REMOTE_SOCK HR_REMOTE2_SOCK));
my $mock_url = $ENV{HEROKU_MOCK_URL};
my %rows_at = ($ENV{HR_REMOTE_PORT} => 3, $ENV{HR_REMOTE2_PORT} => 5);
my %sock_at = ($ENV{HR_REMOTE_PORT} => $ENV{HR_REMOTE_SOCK},
	$ENV{HR_REMOTE2_PORT} => $ENV{HR_REMOTE2_SOCK});

# Every password an app's URL has had during the test, for the final checks.
# They are only ever compared, never printed.
my %secrets;

sub app_url
{
	my ($app) = @_;
	my $state = decode_json(slurp_file("$ENV{HR_TEST_DIR}/db-state.json"));
	return $state->{$app}{url};
}

sub url_port
{
	my ($url) = @_;
	$url =~ m{\@[^/:]+:(\d+)/} or die 'no port in an app URL';
	return $1;
}

sub remember_secrets
{
	my $state = decode_json(slurp_file("$ENV{HR_TEST_DIR}/db-state.json"));
	for my $app (keys %$state)
	{
		next unless $state->{$app}{url} =~ m{^postgres://[^:/@]*:([^@]*)@};
		my $pw = $1;
		$secrets{$pw} = 1;
		(my $raw = $pw) =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge;
		$secrets{$raw} = 1;
	}
	my $token = slurp_file($ENV{HR_API_KEY_FILE});
	$token =~ s/\s+$//;
	$secrets{$token} = 1;
}

sub has_secret
{
	my ($text) = @_;
	for my $s (keys %secrets)
	{
		return 1 if length($s) >= 8 && index($text, $s) >= 0;
	}
	return 0;
}

sub rotate
{
	system('bash', $ENV{HR_ROTATE}, @_) == 0 or die "rotate.sh @_ failed";
	remember_secrets();
}

# The next $count answers for $app's config vars carry $url as DATABASE_URL,
# as a cache holding credentials from before a rotation would.  The URL goes
# to the mock in a request body, never on a command line.
sub mock_stale_answer
{
	my ($app, $url, $count) = @_;
	my $res = HTTP::Tiny->new(timeout => 30)->post(
		"$mock_url/__mock/faults",
		{
			headers => { 'Content-Type' => 'application/json' },
			content => encode_json(
				{
					kind => 'body',
					path => "^/apps/$app/config-vars",
					count => $count,
					body => encode_json({ DATABASE_URL => $url }),
				})
		});
	die "could not add a fault to the mock: $res->{status}" unless $res->{success};
}

# psql as postgres on a remote's socket (peer authentication)
sub remote_sql
{
	my ($port, $sql) = @_;
	my $rc = system('psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', $sock_at{$port},
		'-p', $port, '-U', 'postgres', '-d', 'appdb', '-c', $sql);
	die "SQL on the remote at port $port failed" if $rc;
}

remember_secrets();
my $start_port = url_port(app_url('myapp'));
my $other_port = $start_port == $ENV{HR_REMOTE_PORT} ? $ENV{HR_REMOTE2_PORT} : $ENV{HR_REMOTE_PORT};

# Which remote backend serves a connection: a view on both remotes.
for my $port (keys %sock_at)
{
	remote_sql($port,
		q{CREATE OR REPLACE VIEW hr_tap_whoami AS
		  SELECT pg_backend_pid() AS pid, current_setting('port')::int AS port;
		  GRANT SELECT ON hr_tap_whoami TO app_user});
}

my $node = PostgreSQL::Test::Cluster->new('fdw');
$node->init;
$node->append_conf('postgresql.conf', qq{
heroku.api_url = '$mock_url'
heroku.allow_local_hosts = on
heroku.api_key_file = '$ENV{HR_API_KEY_FILE}'
log_min_messages = debug1
log_min_error_statement = error
log_statement = 'all'
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION postgres_fdw;
CREATE EXTENSION dblink;
CREATE EXTENSION heroku_resolver;
});

# ---------------------------------------------------------------- create
$node->safe_psql('postgres', q{
SELECT heroku_fdw_create_server('heroku', 'myapp');
CREATE FOREIGN TABLE orders (id int, amount numeric) SERVER heroku;
CREATE FOREIGN TABLE whoami (pid int, port int) SERVER heroku OPTIONS (table_name 'hr_tap_whoami');
});
is($node->safe_psql('postgres', 'SELECT count(*) FROM orders'),
	$rows_at{$start_port}, 'heroku_fdw_create_server: a foreign table reaches the app database');
is($node->safe_psql('postgres', 'SELECT port FROM whoami'), $start_port, '... on the host of the URL');

# The second session opens its cached postgres_fdw connection now.
my $bg = $node->background_psql('postgres');
my $pid1 = $bg->query_safe('SELECT pid FROM whoami');
like($pid1, qr/^\d+$/, 'second session: remote backend pid');

# ------------------------------------------------ refresh, nothing changed
# What the catalogs hold, the user mapping only as a digest (it has the password).
my $catalog_sql = q{
SELECT s.xmin, s.srvoptions, u.xmin, md5(u.umoptions::text)
FROM pg_foreign_server s JOIN pg_user_mapping u ON u.umserver = s.oid
WHERE s.srvname = 'heroku'};
my $before = $node->safe_psql('postgres', $catalog_sql);
mock('reset-counts');
is($node->safe_psql('postgres', q{SELECT heroku_fdw_refresh('heroku')}), 'f',
	'refresh with nothing changed returns false');
is(mock_count('/apps/myapp/config-vars'), 1, '... after asking the API');
is($node->safe_psql('postgres', $catalog_sql), $before,
	'... and alters neither the server nor the user mapping (same xmin, same options)');
is($bg->query_safe('SELECT pid FROM whoami'), $pid1,
	'... and the second session keeps its remote connection');

# ------------------------------------------------------- password rotation
rotate('myapp');
my ($ret, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM orders');
isnt($ret, 0, 'after a rotation a new connection with the stored password fails');
like($err, qr/password authentication failed/, '... as an authentication failure');
ok(!has_secret($err), '... whose message holds no password');
is($bg->query_safe('SELECT pid FROM whoami'), $pid1,
	'the second session still uses the connection it opened before the rotation');

is($node->safe_psql('postgres', q{SELECT heroku_fdw_refresh('heroku')}), 't',
	'heroku_fdw_refresh after the rotation returns true');
is($node->safe_psql('postgres', 'SELECT count(*) FROM orders'), $rows_at{$start_port},
	'a new session connects with the new password');
my $pid2 = $bg->query_safe('SELECT pid FROM whoami');
isnt($pid2, $pid1, 'the second session dropped its cached connection and reconnected');
is($bg->query_safe('SELECT count(*) FROM orders'), $rows_at{$start_port},
	'... with the new password');
is($node->safe_psql('postgres', q{SELECT heroku_fdw_refresh('heroku')}), 'f',
	'a second refresh finds nothing to change');

# ----------------------------------------------------------------- failover
rotate('myapp', '--failover');
is($node->safe_psql('postgres', q{SELECT heroku_fdw_refresh('heroku')}), 't',
	'refresh after a failover returns true');
is($node->safe_psql('postgres', 'SELECT port FROM whoami'), $other_port,
	'queries reach the new host');
is($node->safe_psql('postgres', 'SELECT count(*) FROM orders'), $rows_at{$other_port},
	'... and its data');
is($bg->query_safe('SELECT port FROM whoami'), $other_port,
	'the second session follows too');
is($node->safe_psql('postgres', q{SELECT port FROM heroku_fdw_servers WHERE server = 'heroku'}),
	$other_port, 'heroku_fdw_servers shows the new port');
rotate('myapp', '--failover');
is($node->safe_psql('postgres', q{SELECT heroku_fdw_refresh('heroku')}), 't', 'and back');
is($node->safe_psql('postgres', 'SELECT port FROM whoami'), $start_port, '... to the first host');
$bg->quit;

# ------------------------------------------- refresh_all past a failing one
$node->safe_psql('postgres', q{SELECT heroku_fdw_create_server('other', 'other-app')});
is($node->safe_psql('postgres', 'SELECT heroku_fdw_refresh_all()'), '0',
	'refresh_all with nothing changed changes nothing');
rotate('myapp');
mock('fault', 'status', '--status', '503', '--path', '^/apps/other-app/', '--count', '1');
($ret, $out, $err) = $node->psql('postgres', 'SELECT heroku_fdw_refresh_all()');
is($out, '1', 'refresh_all refreshes the others when one server fails');
like($err,
	qr/WARNING:  could not refresh foreign server "other" of Heroku app "other-app": the Heroku API failed/,
	'... and reports the failing one as a WARNING naming the server and the app');
is($node->safe_psql('postgres', 'SELECT count(*) FROM orders'), $rows_at{$start_port},
	'the refreshed server works');
is($node->safe_psql('postgres',
		q{SELECT last_error IS NOT NULL FROM heroku_fdw_servers WHERE server = 'other'}),
	't', 'the failure is recorded in the registry');
mock('fault', 'status', '--status', '503', '--path', '^/apps/other-app/', '--count', '1');
($ret, $out, $err) = $node->psql('postgres',
	qq{\\set VERBOSITY verbose\n} . q{SELECT heroku_fdw_refresh('other')});
like($err, qr/ERROR:  08006: the Heroku API failed/,
	'heroku_fdw_refresh raises 08006 when the API fails (5xx)');
like($err, qr/CONTEXT:  refreshing foreign server "other" of Heroku app "other-app"/,
	'... with a context naming the server and the app');
is($node->safe_psql('postgres', q{SELECT heroku_fdw_refresh('other')}), 'f',
	'a later refresh succeeds');
is($node->safe_psql('postgres',
		q{SELECT last_error IS NULL FROM heroku_fdw_servers WHERE server = 'other'}),
	't', '... and clears the recorded error');

# --------------------------------------------- heroku_dblink_connect retry
mock('reset-counts');
is($node->safe_psql('postgres', q{SELECT heroku_dblink_connect('c0', 'myapp')}), 'OK',
	'heroku_dblink_connect returns OK');
is(mock_count('/apps/myapp/config-vars'), 1, '... after one API request when the credentials work');

my $stale = app_url('myapp');
rotate('myapp');
mock_stale_answer('myapp', $stale, 1);
mock('reset-counts');
($ret, $out, $err) = $node->psql('postgres', q{
SELECT heroku_dblink_connect('c1', 'myapp');
SELECT n FROM dblink('c1', 'SELECT count(*) FROM orders') AS t(n bigint);
SELECT dblink_get_connections();
});
is($ret, 0, 'heroku_dblink_connect across a rotation succeeds on the first call');
is($out, "OK\n$rows_at{$start_port}\n{c1}", '... with a working named connection, registered once');
is(mock_count('/apps/myapp/config-vars'), 2, '... after exactly one retry (two API requests)');

$stale = app_url('myapp');
rotate('myapp');
mock_stale_answer('myapp', $stale, 2);
mock('reset-counts');
($ret, $out, $err) = $node->psql('postgres',
	qq{\\set VERBOSITY verbose\n}
	  . q{SELECT heroku_dblink_connect('c2', 'myapp');
SELECT coalesce(dblink_get_connections(), '{}');},
	on_error_stop => 0);
like($err, qr/ERROR:  08001: could not establish connection/,
	'when the retry fails too, dblink\'s error is raised');
is(mock_count('/apps/myapp/config-vars'), 2, '... after a single retry');
is($out, '{}', '... and no named connection is left behind');
ok(!has_secret($err), '... with no password in the message');

# ---------------------------------- a failing ALTER USER MAPPING stays quiet
$node->safe_psql('postgres', q{
CREATE FUNCTION block_um() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'blocked %', tg_tag;
END
$$;
CREATE EVENT TRIGGER block_um ON ddl_command_end WHEN TAG IN ('ALTER USER MAPPING')
	EXECUTE FUNCTION block_um();
});
rotate('myapp');
($ret, $out, $err) = $node->psql('postgres',
	qq{\\set VERBOSITY verbose\n} . q{SELECT heroku_fdw_refresh('heroku')});
like($err, qr/blocked ALTER USER MAPPING/, 'an ALTER USER MAPPING can fail during a refresh');
ok(!has_secret($err), '... and its error and CONTEXT hold no password');
$node->safe_psql('postgres', 'DROP EVENT TRIGGER block_um');
is($node->safe_psql('postgres', q{SELECT heroku_fdw_refresh('heroku')}), 't',
	'the refresh works once the trigger is gone');

# ------------------------------------------------------------------ bad input
sub sqlstate
{
	my ($db, $sql) = @_;
	my ($r, $o, $e) = $node->psql($db, "\\set VERBOSITY verbose\n$sql");
	return $e =~ /ERROR:  ([0-9A-Z]{5}):/ ? $1 : 'no error';
}

sub error_of
{
	my ($db, $sql) = @_;
	my ($r, $o, $e) = $node->psql($db, "\\set VERBOSITY verbose\n$sql");
	return $e;
}

is(sqlstate('postgres', q{SELECT heroku_fdw_refresh('no_such')}), '42704', 'unknown server: 42704');
$node->safe_psql('postgres', 'CREATE SERVER by_hand FOREIGN DATA WRAPPER postgres_fdw');
is(sqlstate('postgres', q{SELECT heroku_fdw_refresh('by_hand')}), '42704',
	'unregistered server: 42704');
is(sqlstate('postgres', q{SELECT heroku_fdw_add_user_mapping('by_hand', 'postgres')}), '42704',
	'unregistered server, add_user_mapping: 42704');
is(sqlstate('postgres', q{SELECT heroku_fdw_unregister('by_hand')}), '42704',
	'unregistered server, unregister: 42704');
is(sqlstate('postgres', q{SELECT heroku_fdw_refresh(NULL)}), '22004', 'NULL server: 22004');
like(error_of('postgres', q{SELECT heroku_fdw_create_server('x', NULL)}),
	qr/22004: argument "app" must not be null/, 'NULL app: 22004 naming it');
like(error_of('postgres', q{SELECT heroku_dblink_connect('c', 'myapp', NULL)}),
	qr/22004: argument "config_var" must not be null/, 'NULL config_var: 22004 naming it');

$node->safe_psql('postgres', 'CREATE DATABASE bare');
$node->safe_psql('bare', 'CREATE EXTENSION heroku_resolver');
my $e = error_of('bare', q{SELECT heroku_fdw_create_server('x', 'myapp')});
like($e, qr/42704: foreign-data wrapper "postgres_fdw" does not exist/, 'postgres_fdw missing: 42704');
like($e, qr/HINT:  Install it with CREATE EXTENSION postgres_fdw\./, '... with a hint');
$e = error_of('bare', q{SELECT heroku_fdw_create_server('x', 'myapp', fdw => 'dblink_fdw')});
like($e, qr/HINT:  Install it with CREATE EXTENSION dblink\./, 'dblink_fdw missing: hint names dblink');
$e = error_of('bare', q{SELECT heroku_dblink_connect('c', 'myapp')});
like($e, qr/42704: extension "dblink" is not installed/, 'dblink missing: 42704');
like($e, qr/HINT:  Install it with CREATE EXTENSION dblink\./, '... with a hint');

$node->safe_psql('postgres', q{
CREATE ROLE mallory;
GRANT EXECUTE ON FUNCTION heroku_fdw_refresh(name), heroku_fdw_add_user_mapping(name, regrole),
	heroku_fdw_unregister(name), heroku_fdw_refresh_all() TO mallory;
});
is(sqlstate('postgres', qq{SET ROLE mallory;\nSELECT heroku_fdw_refresh('heroku')}), '42501',
	'role without rights on the server: refresh 42501');
is(sqlstate('postgres', qq{SET ROLE mallory;\nSELECT heroku_fdw_add_user_mapping('heroku', 'mallory')}),
	'42501', '... add_user_mapping 42501');
is(sqlstate('postgres', qq{SET ROLE mallory;\nSELECT heroku_fdw_unregister('heroku')}), '42501',
	'... unregister 42501');
is(sqlstate('postgres', qq{SET ROLE mallory;\nSELECT heroku_fdw_create_server('m', 'myapp')}), '42501',
	'... create_server without EXECUTE 42501');
is($node->safe_psql('postgres', qq{SET ROLE mallory;\nSELECT heroku_fdw_refresh_all()}), '0',
	'... refresh_all skips servers the caller does not own');
is($node->safe_psql('postgres', q{SELECT count(*) FROM heroku_fdw_servers WHERE server IN ('heroku', 'other')}),
	'2', 'everything is still registered');

# ------------------------------------------------------- nothing leaked
my $log = slurp_file($node->logfile);
ok(!has_secret($log), 'no password or token in the server log');
like($log, qr/failed, resolving afresh and retrying once/, 'the dblink retry was logged (DEBUG1)');

# The environment as we found it: myapp on its first host; no test views.
if (url_port(app_url('myapp')) != $start_port)
{
	rotate('myapp', '--failover');
}
remote_sql($_, 'DROP VIEW IF EXISTS hr_tap_whoami') for keys %sock_at;
mock('clear-faults');
$node->stop;
done_testing();
