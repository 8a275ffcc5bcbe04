# The bad-input matrix: malformed arguments, every kind of broken API answer,
# broken config var values, the FDW helpers and the command.  Each case
# checks the exact SQLSTATE (or exit code) and that the message says what is
# wrong, in one long-lived session that must stay usable after every case;
# at the end the server log must show no crashed backend.
use strict;
use warnings;

use IPC::Run qw(run);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use HrTest;

need_env(qw(HEROKU_MOCK_URL HR_API_KEY_FILE HR_MOCKCTL HR_TOKENS_FILE HR_WRONG_NAME_CERT
	HR_WRONG_NAME_KEY HR_TEST_CA HR_TEST_CA_EXPIRED HEROKU_MOCK_TLS_URL));
my $mock_url = $ENV{HEROKU_MOCK_URL};
my $py = '/usr/bin/python3';
my $mock_script = $ENV{HR_MOCKCTL} =~ s/mockctl\.py$/mock_heroku.py/r;


my $node = PostgreSQL::Test::Cluster->new('bad_input');
$node->init;
$node->append_conf('postgresql.conf', qq{
session_preload_libraries = 'heroku_resolver'
heroku.api_url = '$mock_url'
heroku.allow_local_hosts = on
heroku.api_key_file = '$ENV{HR_API_KEY_FILE}'
heroku.cache_ttl = 0
heroku.timeout = '2s'
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION dblink;
CREATE EXTENSION postgres_fdw;
CREATE EXTENSION heroku_resolver;
CREATE FUNCTION try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text;
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
	RETURN st || ': ' || msg;
END $$;
CREATE ROLE nobody_special LOGIN;
});

# One session for every case: it must survive all of them.
my $s = $node->background_psql('postgres', on_error_stop => 0);

# Run sql in the session; expect "SQLSTATE: message" matching $re (or 'ok').
my $ncase = 0;
sub case
{
	my ($what, $sql, $state, $re) = @_;
	$ncase++;
	(my $lit = $sql) =~ s/'/''/g;
	my $got = $s->query("SELECT try('$lit')");
	chomp $got;
	if ($state eq 'ok')
	{
		is($got, 'ok', "$what: accepted");
	}
	else
	{
		like($got, qr/^\Q$state\E: /, "$what: SQLSTATE $state") or diag("got: $got");
		like($got, $re, "$what: the message says what is wrong");
	}
	my $alive = $s->query('SELECT 42');
	is($alive, '42', "$what: the session is still usable");
	# a fault the case did not use up must not reach the next one
	mock('clear-faults');
}

sub resolve { my ($app, $var) = @_; $var //= 'DATABASE_URL'; return "SELECT heroku_dblink_url('$app', '$var')"; }

# --- app names -----------------------------------------------------------
mock('reset-counts');
for my $bad ('MyApp', 'ab', 'a' x 31, '../etc', 'my/app', '..', 'app?x=1', 'app#frag',
	'app%2f', 'my app', '', "app\xc3\xa9", 'app-', '1app', 'app.name', 'app_name',
	'3f0a4c1e-8a6b-4d6e-9a51-2b7c9d0e1f2', '3f0a4c1e_8a6b_4d6e_9a51_2b7c9d0e1f23', '{uuid}')
{
	(my $shown = $bad) =~ s/[^\x20-\x7e]/?/g;
	case("app name '$shown'", resolve($bad), '22023', qr/invalid Heroku app name/);
}
is(mock_count(undef, $mock_url), '0', 'malformed app names made no request');
case('app id (UUID)', resolve('3f0a4c1e-8a6b-4d6e-9a51-2b7c9d0e1f23'), 'ok');

# --- config var names ----------------------------------------------------
for my $bad ('', 'DATABASE URL', 'A-B', 'A/B', 'A;B', "D\xc3\x89J\xc3\x80", 'A' x 256)
{
	(my $shown = substr($bad, 0, 20)) =~ s/[^\x20-\x7e]/?/g;
	case("config var name '$shown'", resolve('myapp', $bad), '22023', qr/invalid config var name/);
}

# --- API error answers, with and without a JSON body --------------------
my %status = (
	400 => [ '08P01', qr/unexpected answer/ ],
	401 => [ '28000', qr/rejected the token/ ],
	402 => [ '42501', qr/permission denied/ ],
	403 => [ '42501', qr/permission denied/ ],
	404 => [ '42704', qr/not found/ ],
	406 => [ '08P01', qr/unexpected answer/ ],
	429 => [ '53400', qr/rate limit/ ],
	500 => [ '08006', qr/Heroku API failed/ ],
	503 => [ '08006', qr/Heroku API failed/ ]);
for my $code (sort keys %status)
{
	for my $json (1, 0)
	{
		mock('fault', 'status', '--status', $code, '--count', '1', ($json ? () : ('--no-json')));
		case("HTTP $code " . ($json ? 'with' : 'without') . ' a JSON body',
			resolve('myapp'), @{ $status{$code} });
	}
}

# --- broken 200 answers --------------------------------------------------
my @bodies = (
	[ 'an array', '["DATABASE_URL"]', '08P01', qr/invalid answer/ ],
	[ 'a string', '"postgres://u:p@h/d"', '08P01', qr/invalid answer/ ],
	[ 'nested value', '{"DATABASE_URL": {"url": "postgres://u:p@h/d"}}', '08P01', qr/invalid answer/ ],
	[ 'truncated JSON', '{"DATABASE_URL": "postgres://u:p@h/d"', '08P01', qr/invalid answer/ ],
	[ 'duplicate keys', '{"DATABASE_URL": "postgres://a:b@h1/d", "DATABASE_URL": "postgres://c:d@h2/d"}', '08P01', qr/invalid answer/ ],
	[ 'a number value', '{"DATABASE_URL": 5432}', '08P01', qr/invalid answer/ ],
	[ 'not JSON at all', '<html>Application Error</html>', '08P01', qr/invalid answer/ ],
	[ 'an empty body', '', '08P01', qr/invalid answer/ ]);
for my $b (@bodies)
{
	mock('fault', 'body', '--body', $b->[1], '--count', '1');
	case("answer body: $b->[0]", resolve('myapp'), $b->[2], $b->[3]);
}
mock('fault', 'oversize', '--size', 10 * 1024 * 1024, '--count', '1');
case('a 10 MB body', resolve('myapp'), '08P01', qr/invalid answer/);
mock('fault', 'slowdrip', '--interval', '0.5', '--count', '1');
case('a slow-drip body (timeout 2s)', resolve('myapp'), '08006', qr/timed out/);
mock('fault', 'truncate', '--count', '2');
case('connection closed mid-body', resolve('myapp'), '08006', qr/could not reach/);
mock('fault', 'drop', '--count', '2');
case('connection closed before any answer', resolve('myapp'), '08006', qr/could not reach/);
mock('fault', 'http10', '--count', '1');
case('an HTTP/1.0 answer (valid)', resolve('myapp'), 'ok');
mock('clear-faults');

# A redirect to another host is not followed, and the token goes nowhere else.
my $other_port = PostgreSQL::Test::Cluster::get_free_port();
my $other_log = "$PostgreSQL::Test::Utils::tmp_check/other_mock.log";
my $other = IPC::Run::start([ $py, $mock_script, '--port', $other_port,
	'--tokens-file', $ENV{HR_TOKENS_FILE}, '--log', $other_log ]);
my $other_url = "http://127.0.0.1:$other_port";
for (1 .. 50) { last if eval { mock_count(undef, $other_url); 1 }; select(undef, undef, undef, 0.1); }
mock('fault', 'redirect', '--location', "$other_url/apps/myapp/config-vars", '--count', '1');
case('a 302 redirect to another host', resolve('myapp'), '08P01', qr/unexpected answer/);
is(mock_count(undef, $other_url), '0', 'the redirect target got no request (no token sent there)');
$other->kill_kill;

# TLS: a certificate for another name, and an expired CA.
my $wrong_port = PostgreSQL::Test::Cluster::get_free_port();
my $wrong_tls = PostgreSQL::Test::Cluster::get_free_port();
my $wrong = IPC::Run::start([ $py, $mock_script, '--port', $wrong_port, '--tls-port', $wrong_tls,
	'--tls-cert', $ENV{HR_WRONG_NAME_CERT}, '--tls-key', $ENV{HR_WRONG_NAME_KEY},
	'--tokens-file', $ENV{HR_TOKENS_FILE}, '--log', "$other_log.2" ]);
for (1 .. 50) { last if eval { mock_count(undef, "http://127.0.0.1:$wrong_port"); 1 }; select(undef, undef, undef, 0.1); }
$s->query_safe("SET heroku.api_url = 'https://127.0.0.1:$wrong_tls'; SET heroku.ca_file = '$ENV{HR_TEST_CA}'");
case('a TLS certificate for another name', resolve('myapp'), '08006', qr/could not reach/);
$wrong->kill_kill;
$s->query_safe("SET heroku.api_url = '$ENV{HEROKU_MOCK_TLS_URL}'; SET heroku.ca_file = '$ENV{HR_TEST_CA_EXPIRED}'");
case('an expired CA', resolve('myapp'), '08006', qr/could not reach/);
$s->query_safe("RESET heroku.api_url; RESET heroku.ca_file");

# --- config var values ---------------------------------------------------
my $long = 'x' x (100 * 1024);
mock('put-app', 'bad-values',
	'--var', 'REDIS=redis://h:secret@127.0.0.1:6379',
	'--var', 'NOHOST=postgres:///db',
	'--var', 'NOHOST2=postgres://',
	'--var', 'BIGPORT=postgres://u:pw@h.example:70000/db',
	'--var', 'ZEROPORT=postgres://u:pw@h.example:0/db',
	'--var', 'WORDPORT=postgres://u:pw@h.example:http/db',
	'--var', 'BADPCT=postgres://u:p%zzw@h.example/db',
	'--var', 'NULBYTE=postgres://u:p%00w@h.example/db',
	'--var', 'DISABLE=postgres://u:pw@h.example/db?sslmode=disable',
	'--var', 'UNKNOWN=postgres://u:pw@h.example/db?frobnicate=1',
	'--var', 'BADMODE=postgres://u:pw@h.example/db?sslmode=sometimes',
	'--var', 'SOCKET=postgres://u:pw@%2Ftmp/db',
	'--var', 'KEYVALUE=host=h.example password=pw',
	'--var', 'EMPTY=',
	'--var', "LONG=postgres://u:$long\@h.example/db");
my @values = (
	[ 'redis:// URL', 'REDIS', '22023', qr/not a postgres:\/\/ URI/ ],
	[ 'postgres:/// with no host', 'NOHOST', '22023', qr/has no host/ ],
	[ 'bare postgres://', 'NOHOST2', '22023', qr/has no host/ ],
	[ 'port 70000', 'BIGPORT', '22023', qr/invalid port/ ],
	[ 'port 0', 'ZEROPORT', '22023', qr/invalid port/ ],
	[ 'port "http"', 'WORDPORT', '22023', qr/invalid port/ ],
	[ 'garbage percent-escape', 'BADPCT', '22023', qr/could not parse/ ],
	[ 'percent-encoded NUL', 'NULBYTE', '22023', qr/could not parse/ ],
	[ 'unknown URI parameter', 'UNKNOWN', '22023', qr/could not parse/ ],
	[ 'invalid sslmode', 'BADMODE', '22023', qr/invalid sslmode/ ],
	[ 'a Unix socket host', 'SOCKET', '22023', qr/Unix socket/ ],
	[ 'keyword/value instead of a URL', 'KEYVALUE', '22023', qr/not a postgres:\/\/ URI/ ],
	[ 'an empty value', 'EMPTY', '22023', qr/not a postgres:\/\/ URI/ ]);
for my $v (@values)
{
	case("value: $v->[0]", resolve('bad-values', $v->[1]), $v->[2], $v->[3]);
}
case('value: sslmode=disable (raised, accepted)', resolve('bad-values', 'DISABLE'), 'ok');
is($s->query_safe(q{SELECT substring(heroku_dblink_url('bad-values', 'DISABLE') from 'sslmode=''([a-z-]+)''')}),
	'require', 'sslmode=disable is raised to require');
case('value: 100 KB long', resolve('bad-values', 'LONG'), 'ok');
mock('delete-app', 'bad-values');

# --- FDW helpers ---------------------------------------------------------
case('refresh of an unknown server', q{SELECT heroku_fdw_refresh('no_such_server')}, '42704', qr/no_such_server/);
$s->query_safe(q{CREATE SERVER hand_made FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'h.example')});
case('refresh of an unregistered server', q{SELECT heroku_fdw_refresh('hand_made')}, '42704', qr/not registered|hand_made/);
case('create_server with a NULL app', q{SELECT heroku_fdw_create_server('s1', NULL)}, '22004', qr/app/);
case('create_server with a NULL server', q{SELECT heroku_fdw_create_server(NULL, 'myapp')}, '22004', qr/server/);
case('create_server with an unknown FDW', q{SELECT heroku_fdw_create_server('s2', 'myapp', fdw => 'nope_fdw')}, '42704', qr/nope_fdw/);
case('create_server with a bad app name', q{SELECT heroku_fdw_create_server('s3', 'Bad App')}, '22023', qr/invalid Heroku app name/);
case('dblink_connect with a NULL name', q{SELECT heroku_dblink_connect(NULL, 'myapp')}, '22004', qr/conname/);
case('unregister an unknown server', q{SELECT heroku_fdw_unregister('no_such_server')}, '42704', qr/no_such_server/);
$s->query_safe('SET ROLE nobody_special');
case('a role without a grant', resolve('myapp'), '42501', qr/permission denied/);
$s->query_safe('RESET ROLE');

# --- the command ---------------------------------------------------------
my $cmd = 'heroku-pg-resolve';
my @cmd_cases = (
	[ 'bad app name', [ 'MyApp' ], 64, qr/invalid Heroku app name/ ],
	[ 'bad config var name', [ 'myapp', 'A B' ], 64, qr/invalid config var name/ ],
	[ 'unknown option', [ '--frobnicate', 'myapp' ], 64, qr/./ ],
	[ 'bad --timeout', [ '--timeout', 'soon', 'myapp' ], 78, qr/--timeout/ ],
	[ 'bad --min-sslmode', [ '--min-sslmode', 'disable', 'myapp' ], 78, qr/--min-sslmode/ ],
	[ 'missing key file', [ '--api-key-file', '/nonexistent/key', 'myapp' ], 78, qr/could not open/ ],
	[ 'not a postgres URL', [ 'myapp', 'REDIS_URL' ], 65, qr/not a postgres/ ],
	[ 'no such app', [ 'no-such-app' ], 66, qr/not found/ ]);
for my $c (@cmd_cases)
{
	my ($out, $err) = ('', '');
	my @argv = ($cmd, '--api-url', $mock_url, '--api-key-file', $ENV{HR_API_KEY_FILE}, @{ $c->[1] });
	run(\@argv, \undef, \$out, \$err);
	is($? >> 8, $c->[2], "command, $c->[0]: exit $c->[2]");
	like($err, $c->[3], "command, $c->[0]: says what is wrong");
}

$s->quit;
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|was terminated by exception/, 'no backend crashed');
note("$ncase SQL cases");
cmp_ok($ncase, '>=', 40, 'at least 40 distinct bad inputs');
$node->stop;
done_testing();
