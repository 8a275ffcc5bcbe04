# Foundation paths that need a server of their own: the token from
# HEROKU_API_KEY in the server's environment, its place in the lookup order,
# pg_cancel_backend() and pg_terminate_backend() during a hung API request,
# and no secret in the server log.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use HrTest;
use Time::HiRes qw(time usleep);

need_env(qw(HEROKU_MOCK_URL HR_API_KEY_FILE HR_READONLY_KEY_FILE HR_MOCKCTL));
my $mock_url = $ENV{HEROKU_MOCK_URL};

sub slurp_first_line
{
	my ($f) = @_;
	open my $fh, '<', $f or die "cannot open $f: $!";
	my $l = <$fh>;
	close $fh;
	chomp $l;
	return $l;
}

# The server gets the token through its environment only.
my $token = slurp_first_line($ENV{HR_API_KEY_FILE});
my $node = PostgreSQL::Test::Cluster->new('foundation');
$node->init;
$node->append_conf('postgresql.conf', qq{
session_preload_libraries = 'heroku_resolver'
heroku.api_url = '$mock_url'
heroku.allow_local_hosts = on
heroku.netrc_file = '/dev/null'
log_min_messages = debug1
});
{
	local $ENV{HEROKU_API_KEY} = $token;
	$node->start;
}
$node->safe_psql('postgres', 'CREATE EXTENSION heroku_resolver');

my $host = $node->safe_psql('postgres',
	q{SELECT substring(heroku_dblink_url('myapp') from 'host=''([^'']*)''')});
is($host, '127.0.0.1', 'token from HEROKU_API_KEY in the server environment resolves');

# The key file comes before the environment: a read-only key file wins (403).
my ($ret, $out, $err) = $node->psql('postgres',
	"SET heroku.api_key_file = '$ENV{HR_READONLY_KEY_FILE}'; SELECT heroku_dblink_url('myapp')");
like($err, qr/permission denied to read config var "DATABASE_URL" of Heroku app "myapp"/,
	'heroku.api_key_file is used before HEROKU_API_KEY');
# heroku.api_key comes before the environment too.
($ret, $out, $err) = $node->psql('postgres',
	"SET heroku.api_key = 'HRKU-wrong'; SELECT heroku_dblink_url('myapp')");
like($err, qr/rejected the token/, 'heroku.api_key is used before HEROKU_API_KEY');

# pg_cancel_backend() ends a request the API never answers, promptly.
mock('fault', 'hang', '--count', '1');
my $bg = $node->background_psql('postgres', on_error_stop => 0);
my $pid = $bg->query_safe('SELECT pg_backend_pid()');
$bg->query_until(qr/started/, "\\echo started\nSELECT heroku_dblink_url('myapp');\n");
# wait until the backend is inside the request
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE pid = $pid AND query LIKE '%heroku_dblink_url%' AND state = 'active'")
  or die 'backend never started the request';
usleep(300_000);
my $t0 = time;
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
$node->poll_query_until('postgres',
	"SELECT state = 'idle' FROM pg_stat_activity WHERE pid = $pid")
  or die 'cancel did not end the request';
my $elapsed = time - $t0;
note(sprintf('cancel took %.0f ms (including polling)', $elapsed * 1000));
cmp_ok($elapsed, '<', 5, 'pg_cancel_backend ends the request');
my $after = $bg->query('SELECT 1');
is($after, '1', 'the session stays usable after the cancel');
$bg->quit;

# pg_terminate_backend() ends the backend cleanly (no crash, no restart).
mock('fault', 'hang', '--count', '1');
$bg = $node->background_psql('postgres', on_error_stop => 0);
$pid = $bg->query_safe('SELECT pg_backend_pid()');
$bg->query_until(qr/started/, "\\echo started\nSELECT heroku_dblink_url('myapp');\n");
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE pid = $pid AND state = 'active'")
  or die 'backend never started the request';
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid")
  or die 'terminate did not end the backend';
eval { $bg->quit; };
mock('clear-faults');
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'server still accepts connections after terminate');

# While a dblink query through a resolved conninfo runs, no token or
# password shows in pg_stat_activity (the statement names only the app).
$node->safe_psql('postgres', 'CREATE EXTENSION dblink');
$bg = $node->background_psql('postgres', on_error_stop => 0);
$bg->query_until(qr/started/,
	"\\echo started\nSELECT * FROM dblink(heroku_dblink_url('myapp'), 'SELECT pg_sleep(1.5)') AS t(x text);\n");
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(1.5)%' AND state = 'active' AND pid <> pg_backend_pid()")
  or die 'the dblink query never started';
my $activity = $node->safe_psql('postgres',
	"SELECT string_agg(coalesce(query, '') || ' ' || coalesce(application_name, ''), E'\\n') FROM pg_stat_activity");
my @secrets = ($token);
if ($ENV{HR_TEST_DIR} && open(my $h, '<', "$ENV{HR_TEST_DIR}/secrets.history"))
{
	chomp(my @pw = <$h>);
	close $h;
	push @secrets, grep { length($_) >= 8 } @pw;
}
my $shown = grep { index($activity, $_) >= 0 } @secrets;
is($shown, 0, 'pg_stat_activity shows no token or password while a resolved dblink query runs ('
	  . scalar(@secrets) . ' secrets looked for)');
$bg->quit;

my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|server process .* was terminated/, 'no backend crashed');
unlike($log, qr/\Q$token\E/, 'the token never reaches the server log');

$node->stop;
done_testing();
