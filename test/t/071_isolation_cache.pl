# Isolation between roles, the cache's side (continues 070_isolation.pl): each
# block reproduces a defect of 1.1 and checks what must hold instead.
#   1. the CA file is part of an entry's key: the same token with another CA
#      bundle is not served what the first one verified
#   1. a waiter on another token's request does not take its error
#   5. a full cache: a caller evicts its own entries before another token's
#      (alice and sam are two accounts; rob's token is read-only)
# The cluster is preloaded, with the smallest shared cache (16 entries), and
# asks the mock over TLS.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use HrTest;

need_env(qw(HEROKU_MOCK_TLS_URL HR_TEST_CA HR_EXPIRED_CA HR_API_KEY_FILE HR_READONLY_KEY_FILE
	HR_SECOND_KEY_FILE HR_MOCKCTL HR_PGBIN));
my $tls_url = $ENV{HEROKU_MOCK_TLS_URL};

my $pw = 'CacheIsolationPw2207';
my $app = 'iso-cache-app';
my $path = "/apps/$app/config-vars";
mock('put-app', $app, '--var', "DATABASE_URL=postgres://cuser:$pw\@db.example.com:5432/cdb");

delete local $ENV{HEROKU_API_KEY};

my $node = preloaded_node('isolation_cache', $tls_url, qq{
heroku.cache_entries = 16
heroku.watch_interval = 0
heroku.refresh_interval = 0
heroku.ca_file = '$ENV{HR_TEST_CA}'
});
$node->start;
$node->safe_psql('postgres', qq{
CREATE EXTENSION heroku_resolver;
CREATE ROLE alice LOGIN;
CREATE ROLE rob LOGIN;
CREATE ROLE sam LOGIN;
ALTER ROLE alice SET heroku.api_key_file = '$ENV{HR_API_KEY_FILE}';
ALTER ROLE rob SET heroku.api_key_file = '$ENV{HR_READONLY_KEY_FILE}';
ALTER ROLE sam SET heroku.api_key_file = '$ENV{HR_SECOND_KEY_FILE}';
GRANT EXECUTE ON FUNCTION heroku_dblink_url(text, text) TO alice, rob, sam;
});

# psql as ROLE with verbose errors: (stdout, stderr)
sub as_role
{
	my ($role, $sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql",
		extra_params => [ '-U', $role ]);
	return ($out, $err);
}


# ---- 1: the CA bundle is part of the key
my ($out, $err) = as_role('alice', "SELECT heroku_dblink_url('$app')");
like($out, qr/host='db\.example\.com'/, '(1) the token with the right CA bundle is served');
mock('reset-counts');
($out, $err) = as_role('postgres', qq{
SET heroku.api_key_file = '$ENV{HR_API_KEY_FILE}';
SET heroku.ca_file = '$ENV{HR_EXPIRED_CA}';
SELECT heroku_dblink_url('$app')});
unlike($out . $err, qr/\Q$pw\E/,
	'(1) the same token with a CA bundle that does not trust the API gets nothing from the cache');
like($err, qr/ERROR:  08\w\w\w:.*(certificate|SSL|TLS)/is,
	'(1) it asks the API itself, and the TLS verification fails');
is(mock_count($path), 0, '(1) that failed request never reached the API');
($out, $err) = as_role('postgres', qq{
SET heroku.api_key_file = '$ENV{HR_API_KEY_FILE}';
SELECT heroku_dblink_url('$app')});
like($out, qr/host='db\.example\.com'/, '(1) the same token and CA bundle are served from the cache');
is(mock_count($path), 0, '(1) without a request');

# ---- 1: a backend remembers its token's digest, but never past a change of the file
# (one session; the file is rewritten in place with a token of the same length)
my $kdir = PostgreSQL::Test::Utils::tempdir;
my $kf = "$kdir/api_key";
PostgreSQL::Test::Utils::append_to_file($kf, slurp_file($ENV{HR_API_KEY_FILE}));
(undef, $out, $err) = $node->psql('postgres', qq{\\set VERBOSITY verbose
SET heroku.api_key_file = '$kf';
SELECT pg_sleep(0.3);
SELECT 'a:' || (heroku_dblink_url('$app') LIKE '%host=%');
SELECT 'b:' || (heroku_dblink_url('$app') LIKE '%host=%');
\\! cp '$ENV{HR_READONLY_KEY_FILE}' '$kf'
SELECT 'c:' || heroku_dblink_url('$app');
\\! cp '$ENV{HR_API_KEY_FILE}' '$kf'
SELECT 'd:' || (heroku_dblink_url('$app') LIKE '%host=%');
SELECT pg_sleep(0.3);
\\! cp '$ENV{HR_READONLY_KEY_FILE}' '$kf'
SELECT 'e:' || heroku_dblink_url('$app');
}, on_error_stop => 0);
like($out, qr/^a:true\nb:true$/m, '(1) a session served twice from its token file');
unlike($out . $err, qr/\Q$pw\E|^c:|^e:/m,
	'(1) the same session, after its token file was rewritten with a read-only token, is not served');
like($err, qr/42501.*42501/s, '(1) it asks with the new token and gets its 42501, each time');
like($out, qr/^d:true$/m, '(1) and when the file holds the old token again, it is served again');

# ---- 1: errors are shared only within one token
$node->safe_psql('postgres', 'SELECT heroku_resolver_invalidate()');
mock('fault', 'delay', '--seconds', '2', '--path', "^$path", '--count', '1');
my ($rout, $rerr) = ('', '');
my $rob = IPC::Run::start(
	[ "$ENV{HR_PGBIN}/psql", '-XAtq', '-v', 'VERBOSITY=verbose', '-h', $node->host,
		'-p', $node->port, '-U', 'rob', '-d', 'postgres',
		'-c', "SELECT heroku_dblink_url('$app')" ],
	'>', \$rout, '2>', \$rerr);
sleep 1;
($out, $err) = as_role('alice', "SELECT heroku_dblink_url('$app')");
$rob->finish;
like($rerr, qr/42501/, '(1) the slow flight of a read-only token ends in its own 42501');
like($out, qr/host='db\.example\.com'/,
	'(1) a caller with another token, arriving meanwhile, does not take that error')
  or diag($err);
mock('clear-faults');

# ---- 5: a full cache evicts the caller's own entries first
$node->safe_psql('postgres', 'SELECT heroku_resolver_invalidate()');
is($node->safe_psql('postgres', 'SELECT count(*) FROM heroku_resolver_cache() WHERE host IS NOT NULL'),
	'0', '(5) the cache is empty');
my @apps = map { "ev-app-$_" } 1 .. 15;
mock('put-app', $_, '--var', "DATABASE_URL=postgres://e:$pw\@$_.example.com:5432/e") for @apps;
my $each = join(";\n", map { "SELECT heroku_dblink_url('$_') IS NOT NULL" } @apps);
($out, $err) = as_role('alice', $each);
is(($out =~ tr/t//), 15, '(5) alice fills 15 of the 16 entries');
# sam (another account) resolves his own apps: the first takes the last free
# entry, each next one must evict sam's own, not one of alice's (all older)
my @sams = map { "ev-sam-$_" } 1 .. 5;
mock('put-app', $_, '--var', "DATABASE_URL=postgres://s:$pw\@$_.example.com:5432/s") for @sams;
for my $s (@sams)
{
	($out, $err) = as_role('sam', "SELECT heroku_dblink_url('$s')");
	like($out, qr/host='\Q$s\E\.example\.com'/, "(5) sam resolves $s");
}
mock('reset-counts');
($out, $err) = as_role('alice', $each);
is(($out =~ tr/t//), 15, "(5) alice's 15 entries are served again");
is(mock_count('/config-vars'), 0, '(5) without a request: sam evicted none of them');
($out, $err) = as_role('sam', "SELECT heroku_dblink_url('$sams[-1]')");
is(mock_count('/config-vars'), 0, "(5) sam's newest entry is still cached");
($out, $err) = as_role('sam', "SELECT heroku_dblink_url('$sams[0]')");
is(mock_count('/config-vars'), 1, '(5) his oldest was the one evicted');

mock('delete-app', $_) for @apps, @sams, $app;
$node->stop;
done_testing();
