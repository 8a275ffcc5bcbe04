# The background refresher: it waits for the extension, follows a rotation
# within an interval, asks the API once per (app, config var) per interval
# whatever the number of servers sharing it, survives an API outage, obeys a
# reload, restarts when killed, and logs changes without secrets.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use HrTest;

need_env(qw(HEROKU_MOCK_URL HR_API_KEY_FILE HR_MOCKCTL));
my $mock_url = $ENV{HEROKU_MOCK_URL};

my $pw = 'WorkerSecretPw0815';
my $app = 'worker-app';
my $path = "/apps/$app/config-vars";

sub requests { return mock_count($path); }



sub rotate_to
{
	my ($host) = @_;
	mock('set-var', $app, 'DATABASE_URL', "postgres://wuser:$pw\@$host:5432/wdb");
}

mock('put-app', $app, '--var', "DATABASE_URL=postgres://wuser:$pw\@first.example:5432/wdb");

my $node = preloaded_node('worker', $mock_url, qq{
heroku.allow_local_hosts = on
heroku.api_key_file = '$ENV{HR_API_KEY_FILE}'
heroku.watch_interval = 0
heroku.refresh_interval = '1s'
heroku.database = 'postgres'
});
my $start_offset = -s $node->logfile // 0;
$node->start;

my $worker_pid_sql =
  q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'heroku_resolver refresher'};

# no extension yet: the refresher waits
ok($node->wait_for_log(qr/refresher is waiting for extension heroku_resolver 1\.2 in database "postgres"/, $start_offset),
	'without the extension the refresher waits');
my $pid = $node->safe_psql('postgres', $worker_pid_sql);
like($pid, qr/^\d+$/, 'the refresher runs');

$node->safe_psql('postgres', 'CREATE EXTENSION postgres_fdw; CREATE EXTENSION heroku_resolver');
for my $s (qw(wk1 wk2 wk3))
{
	$node->safe_psql('postgres', "SELECT heroku_fdw_create_server('$s', '$app')");
}
my $hosts_sql = q{SELECT string_agg(host, ',' ORDER BY server) FROM heroku_fdw_servers};
is($node->safe_psql('postgres', $hosts_sql), 'first.example,first.example,first.example',
	'three servers share one app');
$node->poll_query_until('postgres',
	q{SELECT worker_state = 'idle' AND worker_last_run IS NOT NULL FROM heroku_resolver_status()})
  or die 'the refresher never ran';

# a rotation is followed within an interval or two
my $log_offset = -s $node->logfile;
rotate_to('second.example');
ok($node->poll_query_until('postgres', "SELECT ($hosts_sql) = 'second.example,second.example,second.example'"),
	'the refresher follows a rotation');
ok($node->wait_for_log(qr/refresher updated foreign server "wk3" from config var "DATABASE_URL" of Heroku app "worker-app"/,
		$log_offset),
	'each change is logged');

# one request per interval for the three servers of one app
mock('reset-counts');
sleep 4;
my $n = requests();
cmp_ok($n, '>=', 2, "the refresher keeps asking ($n requests in 4 s)");
cmp_ok($n, '<=', 5, "one request per interval, not one per server ($n in 4 s at 1 s)");

# an API outage: the refresher survives, then follows the next rotation
$log_offset = -s $node->logfile;
mock('reset-counts');
mock('fault', 'status', '--status', '503', '--path', "^$path", '--count', '4');
ok($node->wait_for_log(qr/could not refresh foreign server "wk3" of Heroku app "worker-app"/, $log_offset),
	'an outage is logged');
cmp_ok(requests(), '<=', 2, 'a failed request is not repeated for the other servers of the round');
rotate_to('third.example');
ok($node->poll_query_until('postgres', "SELECT ($hosts_sql) = 'third.example,third.example,third.example'"),
	'after the outage the rotation is followed');
is($node->safe_psql('postgres', $worker_pid_sql), $pid, 'the same refresher survived the outage');

# a reload: off, then on again with another interval
$node->safe_psql('postgres', "ALTER SYSTEM SET heroku.refresh_interval = 0; SELECT pg_reload_conf()");
ok($node->poll_query_until('postgres', q{SELECT worker_state = 'off' FROM heroku_resolver_status()}),
	'a reload turns the refresher off');
$node->safe_psql('postgres', "ALTER SYSTEM SET heroku.refresh_interval = '500ms'; SELECT pg_reload_conf()");
rotate_to('fourth.example');
ok($node->poll_query_until('postgres', "SELECT ($hosts_sql) = 'fourth.example,fourth.example,fourth.example'"),
	'a reload turns it on again');
is($node->safe_psql('postgres', $worker_pid_sql), $pid, 'the same refresher obeyed the reloads');

# killed: it comes back (bgw_restart_time)
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM ($worker_pid_sql) w WHERE pid <> $pid"),
	'a killed refresher is restarted');

my $log = slurp_file($node->logfile);
unlike($log, qr/\Q$pw\E/, 'no password in the server log');

# a clean stop
$node->stop('fast');
like(slurp_file($node->logfile), qr/database system is shut down/, 'the server stops cleanly with the refresher');

mock('delete-app', $app);
done_testing();
