# The resolution cache with shared_preload_libraries: single flight, TTL,
# ETag/304, invalidation, stale-if-error, 429 back-off, the low-budget
# reserve, the status and cache functions (no secret in them or in the log),
# and the per-backend cache without the preload.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use HrTest;
use Time::HiRes qw(usleep);

need_env(qw(HEROKU_MOCK_URL HR_API_KEY_FILE HR_MOCKCTL HR_PGBIN));
my $mock_url = $ENV{HEROKU_MOCK_URL};

# made-up credentials: the password must never show up anywhere
my $pw = 'CacheSecretPw4711';
my $app = 'cache-app';
my $path = "/apps/$app/config-vars";

sub requests { return mock_count($path); }



mock('put-app', $app, '--var', "DATABASE_URL=postgres://cuser:$pw\@first.example:5432/cdb");

my $node = preloaded_node('cache', $mock_url, qq{
heroku.allow_local_hosts = on
heroku.api_key_file = '$ENV{HR_API_KEY_FILE}'
heroku.watch_interval = 0
heroku.cache_entries = 32
log_min_messages = debug1
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION heroku_resolver');

sub host_of
{
	my ($sql_prefix) = @_;
	$sql_prefix //= '';
	return $node->safe_psql('postgres',
		"$sql_prefix SELECT substring(heroku_dblink_url('$app') from 'host=''([^'']*)''')");
}

is($node->safe_psql('postgres', 'SELECT preload, capacity, entries FROM heroku_resolver_status()'),
	't|32|0', 'the preloaded cache is in shared memory, empty');

# single flight: eight backends miss at once, one request is made
mock('reset-counts');
mock('fault', 'delay', '--seconds', '2', '--path', "^$path", '--count', '1');
my @outs;
my @runs;
for my $i (0 .. 7)
{
	$outs[$i] = '';
	push @runs, IPC::Run::start(
		[ "$ENV{HR_PGBIN}/psql", '-XAtq', '-d', $node->connstr('postgres'),
		  '-c', "SELECT substring(heroku_dblink_url('$app') from 'host=''([^'']*)''')" ],
		'>', \$outs[$i], '2>&1');
}
$_->finish for @runs;
is(join(',', @outs), join(',', ('first.example' . "\n") x 8),
	'eight concurrent backends all get the answer');
is(requests(), 1, 'single flight: one API request for eight concurrent misses');

# within the TTL: no request
mock('reset-counts');
host_of() for 1 .. 5;
is(requests(), 0, 'answers younger than heroku.cache_ttl come from the cache');
cmp_ok($node->safe_psql('postgres', "SELECT hits FROM heroku_resolver_cache() WHERE app = '$app'"),
	'>=', 12, 'hits are counted');

# TTL expiry: a conditional request, answered 304
my $nm = mock_out('not-modified');
is(host_of("SET heroku.cache_ttl = '100ms'; DO 'BEGIN PERFORM pg_sleep(0.3); END';"), 'first.example',
	'an expired entry is asked again');
is(requests(), 1, 'TTL expiry makes one request');
is(mock_out('not-modified'), $nm + 1, 'the request carries If-None-Match and gets a 304');
is($node->safe_psql('postgres', 'SELECT not_modified FROM heroku_resolver_status()'),
	'1', 'status counts the 304');
is($node->safe_psql('postgres', "SELECT last_status FROM heroku_resolver_cache() WHERE app = '$app'"),
	'304', 'the cache shows the last status');

# a rotation is seen once the entry is invalidated
mock('set-var', $app, 'DATABASE_URL', "postgres://cuser:$pw\@second.example:5432/cdb");
is(host_of(), 'first.example', 'within the TTL the cached answer is served');
is($node->safe_psql('postgres', "SELECT heroku_resolver_invalidate('$app')"), '1',
	'invalidate drops the entry');
is(host_of(), 'second.example', 'the next call asks the API');
is($node->safe_psql('postgres', "SELECT heroku_resolver_invalidate('no-such-app')"), '0',
	'invalidate of nothing returns 0');
is($node->safe_psql('postgres', "SELECT heroku_resolver_invalidate('$app', 'OTHER_URL')"), '0',
	'invalidate matches the config var');

# stale-if-error: an outage serves the cached answer with a WARNING
mock('fault', 'status', '--status', '503', '--path', "^$path", '--count', '1');
my ($ret, $out, $err) = $node->psql('postgres',
	"SET heroku.cache_ttl = '1ms'; DO 'BEGIN PERFORM pg_sleep(0.01); END'; SELECT substring(heroku_dblink_url('$app') from 'host=''([^'']*)''')");
like($out, qr/second\.example/, 'during an outage the stale answer is served');
like($err, qr/WARNING:  serving the cached value of config var "DATABASE_URL" of Heroku app "cache-app"/,
	'with a WARNING naming the app and the config var');
unlike($err, qr/\Q$pw\E/, 'the WARNING holds no password');
mock('fault', 'status', '--status', '503', '--path', "^$path", '--count', '1');
($ret, $out, $err) = $node->psql('postgres',
	"SET heroku.cache_ttl = '1ms'; SET heroku.stale_if_error = 0; DO 'BEGIN PERFORM pg_sleep(0.01); END'; SELECT heroku_dblink_url('$app')");
like($err, qr/ERROR:  .*Heroku API/, 'with heroku.stale_if_error = 0 the outage is an error');

# 429: no request for Retry-After seconds, cluster-wide
mock('fault', 'status', '--status', '429', '--retry-after', '3', '--path', "^$path", '--count', '1');
($ret, $out, $err) = $node->psql('postgres',
	"SET heroku.cache_ttl = '1ms'; DO 'BEGIN PERFORM pg_sleep(0.01); END'; SELECT substring(heroku_dblink_url('$app') from 'host=''([^'']*)''')");
like($out, qr/second\.example/, 'a 429 serves the stale answer');
is($node->safe_psql('postgres', 'SELECT rate_limited, backoff_until > now() FROM heroku_resolver_status()'),
	'1|t', 'status shows the 429 and the back-off');
mock('reset-counts');
($ret, $out, $err) = $node->psql('postgres',
	"SET heroku.cache_ttl = '1ms'; SET heroku.stale_if_error = 0; SELECT heroku_dblink_url('$app')");
like($err, qr/ERROR:  Heroku API rate limit reached while reading config var "DATABASE_URL" of app "cache-app"/,
	'during the back-off without a stale answer: an error at once');
($ret, $out, $err) = $node->psql('postgres',
	"SET heroku.cache_ttl = '1ms'; SELECT substring(heroku_dblink_url('$app') from 'host=''([^'']*)''')");
like($out, qr/second\.example/, 'during the back-off the stale answer is served');
is(requests(), 0, 'no request during the back-off');
sleep 3;
host_of("SET heroku.cache_ttl = '1ms';");
is(requests(), 1, 'requests resume after Retry-After');

# low budget: past the TTL, within stale_if_error, the cache answers
mock('rate-limit', '50');
$node->safe_psql('postgres', "SELECT heroku_resolver_invalidate('$app')");
host_of();
cmp_ok($node->safe_psql('postgres', 'SELECT ratelimit_remaining FROM heroku_resolver_status()'),
	'<', 100, 'status shows RateLimit-Remaining');
mock('reset-counts');
host_of("SET heroku.cache_ttl = '1ms'; DO 'BEGIN PERFORM pg_sleep(0.01); END';");
is(requests(), 0, 'below heroku.rate_limit_reserve an expired entry is served');
host_of("SET heroku.cache_ttl = '1ms'; SET heroku.rate_limit_reserve = 0;");
is(requests(), 1, 'with no reserve it is asked again');
mock('rate-limit', '4500');

# heroku.cache_ttl = 0: every call asks, nothing is cached
mock('reset-counts');
host_of('SET heroku.cache_ttl = 0;') for 1 .. 3;
is(requests(), 3, 'heroku.cache_ttl = 0: every call asks the API');

# a URL too long for an entry is refused, not truncated
mock('set-var', $app, 'LONG_URL', 'postgres://u:p@' . ('h' x 5000) . '.example/db');
($ret, $out, $err) = $node->psql('postgres', "SELECT heroku_dblink_url('$app', 'LONG_URL')");
like($err, qr/too long for the resolution cache/, 'an oversized URL is refused with a clear error');

# the cache and status functions hide the secrets, and are not for PUBLIC
my $rows = $node->safe_psql('postgres', 'SELECT * FROM heroku_resolver_cache(); SELECT * FROM heroku_resolver_status()');
like($rows, qr/cache-app\|DATABASE_URL\|second\.example\|5432\|cdb\|/, 'the cache shows host, port and dbname');
unlike($rows, qr/\Q$pw\E|cuser/, 'the cache shows neither user nor password');
$node->safe_psql('postgres', 'CREATE ROLE cache_nobody LOGIN');
($ret, $out, $err) = $node->psql('postgres', 'SET ROLE cache_nobody; SELECT * FROM heroku_resolver_cache()');
like($err, qr/permission denied for function heroku_resolver_cache/, 'EXECUTE on the cache is not granted to PUBLIC');
is($node->safe_psql('postgres', 'SELECT heroku_resolver_invalidate()'), '2',
	'invalidate() drops every entry');

my $log = slurp_file($node->logfile);
unlike($log, qr/\Q$pw\E/, 'no password in the server log');

# without the preload: a per-backend cache, no NOTICE
my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init;
$plain->append_conf('postgresql.conf', qq{
heroku.api_url = '$mock_url'
heroku.allow_local_hosts = on
heroku.api_key_file = '$ENV{HR_API_KEY_FILE}'
heroku.netrc_file = '/dev/null'
});
$plain->start;
$plain->safe_psql('postgres', 'CREATE EXTENSION heroku_resolver');
mock('reset-counts');
($ret, $out, $err) = $plain->psql('postgres',
	"SELECT count(heroku_dblink_url('$app')) FROM generate_series(1, 5); SELECT preload, entries FROM heroku_resolver_status()");
is($out, "5\nf|1", 'without the preload a per-backend cache answers');
is($err, '', 'and says nothing about it');
is(requests(), 1, 'one request for five calls in one backend');

mock('delete-app', $app);
$plain->stop;
$node->stop;
done_testing();
