# The release feed (heroku.watch_interval) and heroku_resolver_refresh(), on a
# preloaded cluster: the first listing only records, an unchanged listing is
# a 304, a rotation reaches the cache (and a registered server) within an
# interval and a round trip with no call in between, the next call asks
# nothing and connects at once, entries of another token are marked, the
# list is paged (a change on the last page is seen), an app missing from the
# listing is kept, failures show in heroku_resolver_status(); then
# heroku_resolver_refresh() counts only real changes and matches by app and
# config var, and is not for PUBLIC.  Request rates are printed as notes.
use strict;
use warnings;

use HTTP::Tiny;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use FindBin;
use lib $FindBin::Bin;
use HrTest;

need_env(qw(HEROKU_MOCK_URL HR_API_KEY_FILE HR_MOCKCTL HR_ROTATE HR_TEST_DIR
	HR_REMOTE_PORT HR_REMOTE2_PORT));
my $mock_url = $ENV{HEROKU_MOCK_URL};
my %rows_at = ($ENV{HR_REMOTE_PORT} => 3, $ENV{HR_REMOTE2_PORT} => 5);
my $http = HTTP::Tiny->new(timeout => 30);

my $pw = 'FeedSecretPw2718';
my $app = 'feed-app';
my $real = 'other-app';    # of the test environment: a real remote behind it
my $interval = 1;          # heroku.watch_interval in seconds, for the test
my $bulk = 1010;           # apps added to make the list longer than a page (1000)

sub url_of { my ($host) = @_; return "postgres://fuser:$pw\@$host:5432/fdb"; }
sub cv { my ($a) = @_; return mock_count("/apps/$a/config-vars"); }

sub mock_put
{
	my ($method, $path, $body) = @_;
	my $res = $http->request($method, "$mock_url$path",
		{ headers => { 'Content-Type' => 'application/json' },
		  content => defined $body ? encode_json($body) : '' });
	die "mock $method $path: $res->{status}" unless $res->{success};
	return;
}

# GET a control endpoint of the mock, decoded
sub mock_get
{
	my ($path) = @_;
	my $res = $http->get("$mock_url$path");
	die "mock GET $path: $res->{status}" unless $res->{success};
	return decode_json($res->{content});
}

sub mock_apps { return scalar keys %{ mock_get('/__mock/state')->{apps} }; }

sub app_url
{
	my ($a) = @_;
	my $state = decode_json(slurp_file("$ENV{HR_TEST_DIR}/db-state.json"));
	return $state->{$a}{url};
}

mock('put-app', $app, '--var', 'DATABASE_URL=' . url_of('first.example'));
mock('put-app', 'feed-gone', '--var', 'DATABASE_URL=' . url_of('gone.example'));

my $node = preloaded_node('feed', $mock_url, qq{
heroku.allow_local_hosts = on
heroku.api_key_file = '$ENV{HR_API_KEY_FILE}'
heroku.watch_interval = '${interval}s'
heroku.refresh_interval = 0
heroku.database = 'postgres'
});
$node->start;

sub q1 { return $node->safe_psql('postgres', $_[0]); }
sub status { return q1("SELECT $_[0] FROM heroku_resolver_status()"); }
sub cached_host
{
	my ($a, $prefix) = @_;
	return q1(($prefix // '') . " SELECT host FROM heroku_resolver_cache() WHERE app = '$a'");
}
sub host_of
{
	my ($a, $prefix) = @_;
	return q1(($prefix // '')
		  . " SELECT substring(heroku_dblink_url('$a') from 'host=''([^'']*)''')");
}

q1('CREATE EXTENSION dblink; CREATE EXTENSION postgres_fdw; CREATE EXTENSION heroku_resolver');

# ------------------------------------------------------------ first listing
ok($node->poll_query_until('postgres',
		'SELECT feed_last_listing IS NOT NULL FROM heroku_resolver_status()'),
	'the feed lists the apps once the server is up');
is(status('feed_apps_seen'), mock_apps(), 'it sees every app of the account');
is(status('worker_state'), 'idle', 'the worker runs for the feed alone (refresh_interval = 0)');
my $first = status('feed_requests');
$node->poll_query_until('postgres', "SELECT feed_requests > $first FROM heroku_resolver_status()")
  or die 'no second listing';
is(status('feed_changes, feed_last_error IS NULL'), '0|t',
	'the first listings only record what they see');

# ---------------------------------------------- idle: one 304 per interval
mock('reset-counts');
sleep 5;
my $stats = decode_json(mock_out('stats'));
my $idle = $stats->{by_path}{'GET /apps'} // 0;
my $secs = $stats->{seconds};
cmp_ok($idle, '>=', 3, "the feed keeps listing ($idle requests in 5 s at ${interval}s)");
cmp_ok($idle, '<=', 7, 'one request per interval');
is($stats->{not_modified}, $idle, 'every unchanged listing is a 304');
is($stats->{api_requests}, $idle, 'and nothing else is asked while idle');
note(sprintf('feed, idle, one page: %d GET /apps in %.1f s at watch_interval %ds = %.0f/h;'
		. ' at the default 10s: %.0f/h', $idle, $secs, $interval, $idle * 3600 / $secs,
		$idle * 3600 / $secs * $interval / 10));

# ------------------------------------------------- a rotation, no traffic
is(host_of($app), 'first.example', 'a session caches the app');
is(host_of($app, "SET heroku.ca_file = '/dev/null';"), 'first.example',
	'another key (another token or CA file) caches it too');
q1("SELECT heroku_fdw_create_server('feed_fake', '$app')");

mock('reset-counts');
my $before = status('feed_changes');
mock('set-var', $app, 'DATABASE_URL', url_of('second.example'));
my $rotated = time;
my $seen;
for (1 .. 200)
{
	if (cached_host($app) =~ /second\.example/) { $seen = time - $rotated; last; }
	usleep(50_000);
}
ok(defined $seen, 'the feed brings the new URL into the cache with no call in between');
cmp_ok($seen // 99, '<=', $interval + 1, 'within watch_interval and a round trip');
note(sprintf('rotation to cache updated: %.2f s (watch_interval %ds)', $seen // -1, $interval));
ok($node->poll_query_until('postgres',
		"SELECT host = 'second.example' FROM heroku_fdw_servers WHERE server = 'feed_fake'"),
	'the feed refreshes the app\'s registered server');
is(cv($app), 1, 'one config-vars request for the cache entry and the server together');
cmp_ok(status('feed_changes'), '>', $before, 'status counts the change');
# released_at has whole seconds: when the rotation was in the second of the listing that saw
# it, the feed follows the app once more (a 304) by the first listing after that second
sleep 1.1;
my $after = status('feed_requests');
$node->poll_query_until('postgres', "SELECT feed_requests > $after + 1 FROM heroku_resolver_status()")
  or die 'the feed stopped';

mock('reset-counts');
is(host_of($app), 'second.example', 'the next call gets the new URL');
is(cv($app), 0, 'without asking the API');
is(host_of($app, "SET heroku.ca_file = '/dev/null';"), 'second.example',
	'an entry of another key was marked: its next call asks');
is(cv($app), 1, 'once, conditionally');

# a release whose following fails is followed again at the next listing
my $log_offset = -s $node->logfile;
mock('fault', 'status', '--status', '503', '--path', "^/apps/$app/config-vars", '--count', '1');
mock('set-var', $app, 'DATABASE_URL', url_of('retry.example'));
ok($node->poll_query_until('postgres',
		"SELECT host = 'retry.example' FROM heroku_fdw_servers WHERE server = 'feed_fake'"),
	'a release whose following failed is followed at the next listing');
is(q1("SELECT string_agg(host, ',' ORDER BY host) FROM heroku_resolver_cache() WHERE app = '$app'"),
	'retry.example,second.example', 'the entry too (the other key\'s is only marked)');
ok($node->wait_for_log(qr/WARNING:  could not revalidate config var "DATABASE_URL" of Heroku app "feed-app": the Heroku API failed/,
		$log_offset), 'the failure was logged');

# ------------------------- two releases within one second around a listing
# released_at has whole seconds: a release in the second of the listing that saw
# the one before leaves the page as it was (a 304). Once that second has passed,
# the feed follows the app once more. The mock's clock is frozen for the second.
sleep 1.1;    # a second of its own, after the app's last release
my $warnings_at = -s $node->logfile;
mock('clock', 'freeze');
mock('set-var', $app, 'DATABASE_URL', url_of('racy1.example'));
ok($node->poll_query_until('postgres',
		"SELECT host = 'racy1.example' FROM heroku_fdw_servers WHERE server = 'feed_fake'"),
	'same second: the first release arrives');
my $listings = status('feed_requests');
mock('set-var', $app, 'DATABASE_URL', url_of('racy2.example'));    # the same released_at
$node->poll_query_until('postgres', "SELECT feed_requests > $listings + 2 FROM heroku_resolver_status()")
  or die 'the feed stopped';
is(q1("SELECT host FROM heroku_fdw_servers WHERE server = 'feed_fake'"), 'racy1.example',
	'same second: while it lasts, the listing shows no change');
mock('reset-counts');
mock('clock', 'thaw');
my $thawed = time;
my $racy_seen;
for (1 .. 200)
{
	if (q1("SELECT host FROM heroku_fdw_servers WHERE server = 'feed_fake'") eq 'racy2.example'
		&& q1("SELECT count(*) FROM heroku_resolver_cache() WHERE app = '$app' AND host = 'racy2.example'") == 1)
	{
		$racy_seen = time - $thawed;
		last;
	}
	usleep(50_000);
}
ok(defined $racy_seen, 'same second: once it has passed, the feed brings the second release (cache and server)');
cmp_ok($racy_seen // 99, '<=', $interval + 1, 'same second: within an interval and a round trip');
is(cv($app), 1, 'same second: with one config-vars request');
unlike(slurp_file($node->logfile, $warnings_at), qr/WARNING|ERROR/, 'same second: with nothing failing first');

# ----------------------------- a real rotation: the next use just connects
app_url($real) =~ m{\@[^/:]+:(\d+)/} or die "no port in the URL of $real";
my $port = $1;
q1(qq{
SELECT heroku_fdw_create_server('feed_real', '$real');
CREATE FOREIGN TABLE feed_orders (id int, amount numeric) SERVER feed_real OPTIONS (table_name 'orders');
});
is(q1('SELECT count(*) FROM feed_orders'), $rows_at{$port}, 'a registered server works');
is(q1("SELECT count(*) FROM dblink(heroku_dblink_url('$real'), 'SELECT 1') AS t(x int)"), '1',
	'and so does dblink');
my $changed_before = q1("SELECT last_changed FROM heroku_fdw_servers WHERE server = 'feed_real'");
$log_offset = -s $node->logfile;
system('bash', $ENV{HR_ROTATE}, $real) == 0 or die 'rotate.sh failed';
ok($node->poll_query_until('postgres',
		"SELECT last_changed > '$changed_before' FROM heroku_fdw_servers WHERE server = 'feed_real'"),
	'after a credential rotation the feed alters the server');
ok($node->wait_for_log(qr/heroku_resolver feed updated foreign server "feed_real" from config var "DATABASE_URL" of Heroku app "other-app"/,
		$log_offset), 'and logs it');
my ($ret, $out, $err) = $node->psql('postgres',
	"SELECT count(*) FROM feed_orders; SELECT count(*) FROM dblink(heroku_dblink_url('$real'), 'SELECT 1') AS t(x int)");
is("$ret|$out", "0|$rows_at{$port}\n1", 'the next uses connect at once');
is($err, '', 'with no failure, no retry, no warning');

# --------------------------------------------------- an app that is gone
is(host_of('feed-gone'), 'gone.example', 'an app is cached');
mock('delete-app', 'feed-gone');
my $listed = status('feed_requests');
$node->poll_query_until('postgres', "SELECT feed_requests > $listed + 1 FROM heroku_resolver_status()")
  or die 'the feed stopped';
is(cached_host('feed-gone'), 'gone.example', 'an app missing from the listing keeps its entry');
mock('reset-counts');
is(host_of('feed-gone'), 'gone.example', 'which is served within its TTL');
is(cv('feed-gone'), 0, 'without a request');

# ---------------------------------------------------------------- paging
mock('put-app', 'feed-last', '--id', 'ffffffff-ffff-4fff-bfff-ffffffffffff',
	'--var', 'DATABASE_URL=' . url_of('last1.example'));
mock('bulk-apps', 'feedbulk', $bulk);
my $apps = mock_apps();
ok($node->poll_query_until('postgres', "SELECT feed_apps_seen = $apps FROM heroku_resolver_status()"),
	"the feed pages through $apps apps");
is(host_of('feed-last'), 'last1.example', 'an app of the last page is cached');
mock('reset-counts');
sleep 3;
$stats = decode_json(mock_out('stats'));
my $paged = $stats->{by_path}{'GET /apps'} // 0;
cmp_ok($paged, '>=', 4, "two requests per listing ($paged in 3 s at ${interval}s)");
# (the log, not the count of 304s: feed-last, released in the second of the listing that saw
# it, is followed once more, with a config-vars request answered 304)
is(scalar(grep { $_->{path} eq '/apps' && $_->{status} == 304 } @{ mock_get('/__mock/requests')->{log} }),
	$paged, 'each page answers 304 while nothing changes');
note(sprintf('feed, idle, %d apps: %d GET /apps in %.1f s = %.0f/h at %ds', $apps, $paged,
		$stats->{seconds}, $paged * 3600 / $stats->{seconds}, $interval));
mock('reset-counts');
mock('set-var', 'feed-last', 'DATABASE_URL', url_of('last2.example'));
ok($node->poll_query_until('postgres',
		"SELECT host = 'last2.example' FROM heroku_resolver_cache() WHERE app = 'feed-last'"),
	'a release on the last page is seen');
my $requests = mock_get('/__mock/requests');
my @pages = map { $_->{status} } grep { $_->{path} eq '/apps' } @{ $requests->{log} };
like(join(',', @pages), qr/304,200/, 'with the first page a 304 and the last a 200');
is(cv('feed-last'), 1, 'one config-vars request for it');
mock('delete-bulk-apps', 'feedbulk');

# ------------------------------------------------------- a large account
# 5,000 apps of a team, about 1 kB each as Heroku's are: pages of 1000 (over 1 MiB each)
mock('bulk-apps', 'largeaccount', 5000);
$apps = mock_apps();
ok($node->poll_query_until('postgres',
		"SELECT feed_apps_seen = $apps AND feed_last_error IS NULL FROM heroku_resolver_status()"),
	"the feed lists an account of $apps apps");
mock('reset-counts');
mock('set-var', 'feed-last', 'DATABASE_URL', url_of('last3.example'));
ok($node->poll_query_until('postgres',
		"SELECT host = 'last3.example' FROM heroku_resolver_cache() WHERE app = 'feed-last'"),
	'a release among them is seen');
mock('reset-counts');
$listed = status('feed_requests');
$node->poll_query_until('postgres', "SELECT feed_requests > $listed + 12 FROM heroku_resolver_status()")
  or die 'the feed stopped';
my @listing = grep { $_->{path} eq '/apps' } @{ mock_get('/__mock/requests')->{log} };
is(scalar(grep { ($_->{range} // '') !~ /; max=1000$/ } @listing), 0, 'pages of 1000');
my @starts = grep { ($listing[$_]{range} // '') !~ /\]/ } 0 .. $#listing;
my $per_listing = int(($apps + 999) / 1000);
ok(@starts >= 2 && $starts[1] - $starts[0] == $per_listing, "$per_listing requests a listing");
is(scalar(grep { $_->{status} != 304 } @listing), 0, 'each a 304 while nothing changes');
mock('delete-bulk-apps', 'largeaccount');

# ------------------------------------------------------- status on failure
$log_offset = -s $node->logfile;
mock('fault', 'status', '--status', '503', '--path', '^/apps$', '--count', '3');
ok($node->poll_query_until('postgres',
		q{SELECT feed_last_error LIKE 'the Heroku API failed while listing apps%' FROM heroku_resolver_status()}),
	'status shows the feed\'s last error');
ok($node->poll_query_until('postgres', 'SELECT feed_last_error IS NULL FROM heroku_resolver_status()'),
	'and clears it once a listing succeeds');
my $log = slurp_file($node->logfile, $log_offset);
my @warned = $log =~ /WARNING:  heroku_resolver feed could not list the Heroku apps/g;
is(scalar @warned, 1, 'an outage is logged once, not every interval');
like($log, qr/heroku_resolver feed lists the Heroku apps again/, 'and its end too');
like(q1('SELECT feed_last_listing > now() - interval \'1 min\' AND feed_apps_seen > 0 AND feed_requests > 0'
		  . ' FROM heroku_resolver_status()'), qr/^t$/, 'status shows the last listing and its counts');

# ------------------------------------------------ heroku_resolver_refresh()
q1("ALTER SYSTEM SET heroku.watch_interval = 0; SELECT pg_reload_conf()");
ok($node->poll_query_until('postgres', q{SELECT worker_state = 'off' FROM heroku_resolver_status()}),
	'with both intervals 0 the worker is off');
mock('reset-counts');
my $nm = mock_out('not-modified');
is(q1("SELECT heroku_resolver_refresh('$app')"), '0', 'refresh with nothing changed: 0');
is(cv($app), 1, 'one conditional request for the entry and the server');
is(mock_out('not-modified'), $nm + 1, 'answered 304, which is no change');
mock('set-var', $app, 'DATABASE_URL', url_of('third.example'));
mock('reset-counts');
is(q1("SELECT heroku_resolver_refresh('$app')"), '2', 'after a rotation: the entry and the server changed');
is(cv($app), 1, 'with one request');
is(q1("SELECT host FROM heroku_fdw_servers WHERE server = 'feed_fake'"), 'third.example',
	'the server follows');
mock('reset-counts');
is(host_of($app), 'third.example', 'the entry too');
is(cv($app), 0, 'so the next call asks nothing');
is(q1("SELECT heroku_resolver_refresh('$app')"), '0', 'refresh again: nothing changed');
mock('reset-counts');
is(q1("SELECT heroku_resolver_refresh('$app', 'OTHER_URL')"), '0', 'another config var matches nothing');
is(q1("SELECT heroku_resolver_refresh('no-such-app')"), '0', 'another app neither');
is(mock_out('counts'), 0, 'and asks nothing');
mock('set-var', $app, 'DATABASE_URL', url_of('fourth.example'));
($ret, $out, $err) = $node->psql('postgres', "SELECT heroku_resolver_refresh(NULL, 'DATABASE')");
is($out, '2', 'NULL matches any app; an attachment name matches its _URL var');
like($err, qr/WARNING:  could not revalidate config var "DATABASE_URL" of Heroku app "feed-gone": Heroku app "feed-gone" not found/,
	'a sweep goes on past a failure, with a WARNING naming the app');
($ret, $out, $err) = $node->psql('postgres', 'SELECT heroku_resolver_refresh()');
is("$out|$err", '0|', 'no argument: everything; nothing changed (the 404 dropped its entry)');
mock('fault', 'status', '--status', '503', '--path', "^/apps/$app/", '--count', '1');
($ret, $out, $err) = $node->psql('postgres', "SELECT heroku_resolver_refresh('$app')");
like($err, qr/ERROR:  the Heroku API failed while reading config var "DATABASE_URL" of app "feed-app"/,
	'a refresh of one app raises its failure');
($ret, $out, $err) = $node->psql('postgres', "SELECT heroku_resolver_refresh('Bad_App')");
like($err, qr/ERROR:  invalid Heroku app name "Bad_App"/, 'a bad app name is refused');
q1('CREATE ROLE feed_nobody LOGIN');
($ret, $out, $err) = $node->psql('postgres', 'SET ROLE feed_nobody; SELECT heroku_resolver_refresh()');
like($err, qr/permission denied for function heroku_resolver_refresh/,
	'EXECUTE is not granted to PUBLIC');

# ------------------------------------- the 1.1 definition of the status
q1('CREATE DATABASE feed_old');
$node->safe_psql('feed_old', "CREATE EXTENSION heroku_resolver VERSION '1.1'");
like($node->safe_psql('feed_old', 'SELECT count(*) FROM heroku_resolver_status()'), qr/^1$/,
	'heroku_resolver_status() works with its 1.1 definition');
$node->safe_psql('feed_old', 'ALTER EXTENSION heroku_resolver UPDATE');
is($node->safe_psql('feed_old',
		q{SELECT feed_apps_seen > 0, feed_requests > 0 FROM heroku_resolver_status()}),
	't|t', 'and with 1.2 shows the feed');

$log = slurp_file($node->logfile);
unlike($log, qr/\Q$pw\E/, 'no password in the server log');

$node->stop('fast');
eval { mock('clock', 'thaw') };
eval { mock('delete-bulk-apps', $_) } for ('feedbulk', 'largeaccount');
mock('delete-app', $_) for ($app, 'feed-last');
done_testing();
