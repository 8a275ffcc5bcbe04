# Isolation between roles and hostile config vars (the security pass): each
# block reproduces a defect of 1.1 and checks what must hold instead.
#   1. the shared cache serves an answer only to callers with the same token
#   3. a config var's value may carry only allowed keywords and network hosts
#   4. heroku.api_key is never stored in a catalog
#   5. back-off per token and capped, negative cache of 404, per-role rates
#   8. no proxy for a plain-http API URL
#  10. expired URLs are wiped from the cache
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use HrTest;

need_env(qw(HEROKU_MOCK_URL HR_API_KEY_FILE HR_READONLY_KEY_FILE HR_MOCKCTL HR_PGBIN));
my $mock_url = $ENV{HEROKU_MOCK_URL};

my $pw = 'IsolationSecretPw0815';
my $app = 'iso-app';
my $path = "/apps/$app/config-vars";
mock('put-app', $app, '--var', "DATABASE_URL=postgres://iuser:$pw\@db.example.com:5432/idb");

delete local $ENV{HEROKU_API_KEY};

my $node = preloaded_node('isolation', $mock_url, qq{
heroku.watch_interval = 0
log_min_messages = debug1
});
{
	# (8) a proxy in the postmaster's environment that would see the token
	# (only there: mockctl, run by this script, must not use it)
	local $ENV{http_proxy} = 'http://127.0.0.1:9';
	$node->start;
}
$node->safe_psql('postgres', qq{
CREATE EXTENSION heroku_resolver;
CREATE DATABASE other;
CREATE ROLE alice LOGIN;
CREATE ROLE rob LOGIN;
CREATE ROLE nobody LOGIN;
ALTER ROLE alice SET heroku.api_key_file = '$ENV{HR_API_KEY_FILE}';
ALTER ROLE rob SET heroku.api_key_file = '$ENV{HR_READONLY_KEY_FILE}';
GRANT EXECUTE ON FUNCTION heroku_dblink_url(text, text) TO alice, rob, nobody;
});
$node->safe_psql('other', qq{
CREATE EXTENSION heroku_resolver;
GRANT EXECUTE ON FUNCTION heroku_dblink_url(text, text) TO alice, rob, nobody;
});

# psql as ROLE in DB with verbose errors: (stdout, stderr)
sub as_role
{
	my ($role, $db, $sql) = @_;
	my ($ret, $out, $err) = $node->psql($db, "\\set VERBOSITY verbose\n$sql",
		extra_params => [ '-U', $role ]);
	return ($out, $err);
}

# ---- 8: plain http goes around the environment's proxy
my ($out, $err) = as_role('alice', 'postgres', "SELECT heroku_dblink_url('$app')");
like($out, qr/host='db\.example\.com'/,
	'(8) with http_proxy in the server environment a plain-http mock is reached directly');

# ---- 1: the cache is keyed by the token
($out, $err) = as_role('rob', 'postgres', "SELECT heroku_dblink_url('$app')");
unlike($out, qr/\Q$pw\E/, '(1) a read-only token does not get the cached password');
like($err, qr/ERROR:  42501: permission denied to read config var "DATABASE_URL"/,
	'(1) it gets its own answer: 42501 from the API');
($out, $err) = as_role('nobody', 'other', "SELECT heroku_dblink_url('$app')");
unlike($out, qr/\Q$pw\E/, '(1) a role without a token, in another database, gets nothing from the cache');
like($err, qr/ERROR:  28000: no Heroku API token/, '(1) it is told it has no token');
($out, $err) = as_role('alice', 'other', "SELECT heroku_dblink_url('$app')");
like($out, qr/host='db\.example\.com'/, '(1) the token that fetched it is still served');

# a waiter on another token's flight takes neither its answer nor its error
$node->safe_psql('postgres', "SELECT heroku_resolver_invalidate()");
mock('fault', 'delay', '--seconds', '2', '--path', "^$path", '--count', '1');
my ($aout, $aerr) = ('', '');
my $alice = IPC::Run::start(
	[ "$ENV{HR_PGBIN}/psql", '-XAtq', '-h', $node->host, '-p', $node->port, '-U', 'alice',
		'-d', 'postgres', '-c', "SELECT heroku_dblink_url('$app')" ],
	'>', \$aout, '2>', \$aerr);
sleep 1;
($out, $err) = as_role('rob', 'postgres', "SELECT heroku_dblink_url('$app')");
$alice->finish;
like($aout, qr/host='db\.example\.com'/, '(1) the slow flight answers its own token');
unlike($out, qr/\Q$pw\E/, '(1) a concurrent caller with another token does not take that answer');
like($err, qr/42501/, '(1) it made its own request');

# ---- 3: a config var's value is not trusted as a whole conninfo
$node->safe_psql('postgres', "ALTER ROLE alice SET heroku.allow_local_hosts = off");
my @hostile = (
	[ 'socket in a host list', "postgres://u:$pw\@db.example.invalid,%2Fvar%2Frun%2Fpostgresql/d",
		qr/names a Unix socket/ ],
	[ 'empty host list element', "postgres://u:$pw\@db.example.invalid,:5432/d", qr/Unix socket/ ],
	[ 'passfile', "postgres://u:$pw\@db.example.com/d?passfile=%2Ftmp%2Fhostile-pass", qr/"passfile"/ ],
	[ 'service', "postgres://u:$pw\@db.example.com/d?service=hostile-svc", qr/"service"/ ],
	[ 'sslkey', "postgres://u:$pw\@db.example.com/d?sslkey=%2Ftmp%2Fhostile.key", qr/"sslkey"/ ],
	[ 'sslcert', "postgres://u:$pw\@db.example.com/d?sslcert=%2Ftmp%2Fhostile.crt", qr/"sslcert"/ ],
	[ 'options', "postgres://u:$pw\@db.example.com/d?options=-c%20hostile%3Don", qr/"options"/ ],
	[ 'localhost', "postgres://u:$pw\@localhost/d", qr/on this machine/ ],
	[ '127.0.0.1', "postgres://u:$pw\@127.0.0.1/d", qr/on this machine/ ],
	[ '127.1 (short form)', "postgres://u:$pw\@127.1/d", qr/on this machine/ ],
	[ '[::1]', "postgres://u:$pw\@[::1]/d", qr/on this machine/ ],
	[ 'link-local', "postgres://u:$pw\@169.254.169.254/d", qr/on this machine/ ],
	[ 'loopback in a list', "postgres://u:$pw\@db.example.com,127.0.0.1/d", qr/on this machine/ ],
	[ 'hostaddr', "postgres://u:$pw\@db.example.com/d?hostaddr=127.0.0.1", qr/hostaddr on this machine/ ],
);
for my $h (@hostile)
{
	my ($what, $url, $re) = @$h;
	mock('set-var', $app, 'HOSTILE_URL', $url);
	$node->safe_psql('postgres', "SELECT heroku_resolver_invalidate('$app', 'HOSTILE_URL')");
	($out, $err) = as_role('alice', 'postgres', "SELECT heroku_dblink_url('$app', 'HOSTILE_URL')");
	like($err, qr/ERROR:  22023: config var "HOSTILE_URL" of Heroku app "iso-app"/,
		"(3) $what: refused with 22023");
	like($err, $re, "(3) $what: the message says why");
	unlike($out . $err, qr/\Q$pw\E|hostile-|\/tmp\//, "(3) $what: no value in the output");
}
mock('set-var', $app, 'HOSTILE_URL', "postgres://u:$pw\@db1.example.com,db2.example.com/d?connect_timeout=5&application_name=x");
$node->safe_psql('postgres', "SELECT heroku_resolver_invalidate('$app', 'HOSTILE_URL')");
($out, $err) = as_role('alice', 'postgres', "SELECT heroku_dblink_url('$app', 'HOSTILE_URL')");
like($out, qr/host='db1\.example\.com,db2\.example\.com'/, '(3) a list of network hosts and allowed keywords pass');
mock('set-var', $app, 'HOSTILE_URL', "postgres://u:$pw\@127.0.0.1/d");
$node->safe_psql('postgres', "SELECT heroku_resolver_invalidate('$app', 'HOSTILE_URL')");
($out) = ($node->psql('postgres',
	"SET heroku.api_key_file = '$ENV{HR_API_KEY_FILE}'; SET heroku.allow_local_hosts = on; SELECT heroku_dblink_url('$app', 'HOSTILE_URL')"))[1];
like($out, qr/host='127\.0\.0\.1'/, '(3) heroku.allow_local_hosts lets a superuser allow local hosts');
($out, $err) = as_role('alice', 'postgres', "SET heroku.allow_local_hosts = on");
like($err, qr/42501: permission denied to set parameter "heroku.allow_local_hosts"/,
	'(3) heroku.allow_local_hosts is for superusers');

# ---- 4: the token is never stored in a catalog
for my $stmt ("ALTER ROLE alice SET heroku.api_key = 'HRKU-catalog-secret'",
	"ALTER DATABASE postgres SET heroku.api_key = 'HRKU-catalog-secret'",
	"ALTER ROLE alice IN DATABASE postgres SET heroku.api_key = 'HRKU-catalog-secret'",
	"ALTER SYSTEM SET heroku.api_key = 'HRKU-catalog-secret'",
	"CREATE FUNCTION f() RETURNS int LANGUAGE sql SET heroku.api_key = 'HRKU-catalog-secret' AS 'SELECT 1'")
{
	(undef, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$stmt");
	like($err, qr/ERROR:  22023: heroku.api_key may only be set in a session/, "(4) refused: $stmt");
	unlike($err, qr/catalog-secret/, '(4) the message does not show the value');
}
like($err, qr/HINT:  .*heroku\.api_key_file/, '(4) the hint names heroku.api_key_file');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM pg_db_role_setting, unnest(setconfig) c WHERE c LIKE 'heroku.api_key=%'"),
	'0', '(4) nothing reached pg_db_role_setting');
unlike(slurp_file($node->data_dir . '/postgresql.auto.conf'), qr/catalog-secret/,
	'(4) nothing reached postgresql.auto.conf');
is($node->safe_psql('postgres', "SET heroku.api_key = 'HRKU-session'; SELECT 'ok'"), 'ok',
	'(4) SET in a session still works');

# ---- 5: back-off per token, capped; negative cache; per-role rate
$node->safe_psql('postgres', "SELECT heroku_resolver_invalidate()");
mock('fault', 'status', '--status', '429', '--retry-after', '86400', '--path', "^$path", '--count', '1');
($out, $err) = as_role('alice', 'postgres', "SELECT heroku_dblink_url('$app')");
like($err, qr/53400/, '(5) a 429 for one token');
is($node->safe_psql('postgres',
	"SELECT backoff_until <= now() + interval '15 min 5 s', backoff_until > now() + interval '14 min' FROM heroku_resolver_status()"),
	't|t', '(5) Retry-After: 86400 is obeyed for 15 minutes at most');
($out, $err) = as_role('rob', 'postgres', "SELECT heroku_dblink_url('$app')");
like($err, qr/42501/, '(5) another token is not held back by that 429 (it asks and gets its own answer)');
($out, $err) = as_role('alice', 'postgres', "SELECT heroku_dblink_url('$app')");
like($err, qr/53400/, '(5) the token that got the 429 is held back');
$node->safe_psql('postgres', 'SELECT heroku_resolver_invalidate()');
is($node->safe_psql('postgres', 'SELECT backoff_until IS NULL FROM heroku_resolver_status()'),
	't', '(5) heroku_resolver_invalidate() ends the back-off');
($out, $err) = as_role('alice', 'postgres', "SELECT heroku_dblink_url('$app')");
like($out, qr/host='db\.example\.com'/, '(5) and requests resume');

mock('reset-counts');
for (1 .. 3)
{
	($out, $err) = as_role('alice', 'postgres', "SELECT heroku_dblink_url('no-such-iso-app')");
}
like($err, qr/42704/, '(5) an unknown app is 42704');
is(mock_count('/apps/no-such-iso-app/'), 1, '(5) three lookups of an unknown app cost one request (negative cache)');
like($node->safe_psql('postgres', "SELECT role_requests->>'alice' FROM heroku_resolver_status()"),
	qr/^[1-9][0-9]*$/, '(5) heroku_resolver_status() shows the requests made for alice');
like($node->safe_psql('postgres', "SELECT role_requests->>'rob' FROM heroku_resolver_status()"),
	qr/^[1-9][0-9]*$/, '(5) and those made for rob');

# ---- 10: an expired URL is wiped, not kept until evicted
$node->safe_psql('postgres',
	"ALTER ROLE alice SET heroku.cache_ttl = '50ms'; ALTER ROLE alice SET heroku.stale_if_error = '50ms'");
as_role('alice', 'postgres', "SELECT heroku_dblink_url('$app')");
is($node->safe_psql('postgres', "SELECT host FROM heroku_resolver_cache() WHERE app = '$app' AND config_var = 'DATABASE_URL' AND host IS NOT NULL"),
	'db.example.com', '(10) the entry holds its URL while it may be served');
($out, $err) = as_role('alice', 'postgres', "SELECT pg_sleep(0.3); SELECT heroku_dblink_url('no-such-iso-app')");
is($node->safe_psql('postgres', "SELECT count(*) FROM heroku_resolver_cache() WHERE app = '$app' AND config_var = 'DATABASE_URL' AND host IS NOT NULL"),
	'0', '(10) past its TTL and stale_if_error the URL is wiped at the next lookup');
$node->safe_psql('postgres',
	"ALTER ROLE alice RESET heroku.cache_ttl; ALTER ROLE alice RESET heroku.stale_if_error");

$node->stop;
done_testing();
