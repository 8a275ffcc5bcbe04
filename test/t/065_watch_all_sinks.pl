#!/usr/bin/perl
# heroku-pg-resolve watch with every sink at once (issue 20, item 5): one watcher keeps a
# service entry, a cluster (--db, a role holding only EXECUTE on heroku_resolver_refresh), an
# env file, runs --on-change and serves --metrics-listen; one release that changes the URL
# reaches every one of them, and a release that changes no URL reaches none (the cluster is
# still told: a refresh that finds nothing costs a 304).
#
# Runs as the postgres OS user with $HR_TEST_DIR/env.sh sourced (test/run-tests.sh does both).
# Listens on 127.0.0.1, port HR_WATCH_PORT + 14 (metrics; default 25404).
use strict;
use warnings;

use File::Temp qw(tempdir);
use HTTP::Tiny;
use IPC::Run qw(start);
use PostgreSQL::Test::Cluster;
use Test::More;
use Time::HiRes qw(sleep time);
use FindBin;
use lib $FindBin::Bin;
use HrTest;

need_env(qw(HR_TEST_DIR HEROKU_MOCK_URL HR_API_KEY_FILE HR_MOCKCTL));

my $TMPBASE = $ENV{TESTDIR} || "$ENV{HR_TEST_DIR}/tap";
mkdir $TMPBASE unless -d $TMPBASE;
my $TMP = tempdir('watchall_XXXXXX', DIR => $TMPBASE, CLEANUP => 1);
my $CLI = pg_resolve_cli();
my $APP = 'wall-a';
my $PORT = ($ENV{HR_WATCH_PORT} || 25390) + 14;
my $DB_PASSWORD = 'w' . join('', map { sprintf '%02x', int(rand(256)) } 1 .. 12);

sub set_url
{
	my ($pw) = @_;
	mock_call('PATCH', "/__mock/apps/$APP/config-vars", { DATABASE_URL => "postgres://u1:$pw\@127.0.0.1:5432/d1" });
	return;
}
mock_call('PUT', "/__mock/apps/$APP",
	{ config_vars => { DATABASE_URL => 'postgres://u1:first-pw@127.0.0.1:5432/d1', OTHER => 'x' } });

# the cluster the watcher tells, its role holding EXECUTE on the function and nothing else
my $node = PostgreSQL::Test::Cluster->new('watch_all');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'heroku_resolver'
heroku.api_url = '$ENV{HEROKU_MOCK_URL}'
heroku.api_key_file = '$ENV{HR_API_KEY_FILE}'
heroku.netrc_file = '/dev/null'
heroku.allow_local_hosts = on
heroku.watch_interval = 0
track_functions = 'all'
});
$node->start;
$node->safe_psql('postgres', qq{
CREATE EXTENSION heroku_resolver;
CREATE ROLE watcher LOGIN PASSWORD '$DB_PASSWORD';
GRANT EXECUTE ON FUNCTION heroku_resolver_refresh(text, text) TO watcher;
});
my $DB = $node->connstr('postgres') . " user=watcher password=$DB_PASSWORD";
sub refresh_calls
{
	return $node->safe_psql('postgres',
		q{SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE funcname = 'heroku_resolver_refresh'});
}

my $env = "$TMP/app.env";
my $svc = "$TMP/pg_service.conf";
my $runs = "$TMP/runs";
my $err = "$TMP/watch.err";
my $h;
{
	local %ENV = %ENV;
	delete @ENV{qw(HEROKU_API_KEY PGSERVICEFILE)};
	$ENV{HEROKU_API_URL} = $ENV{HEROKU_MOCK_URL};
	$h = start([ $CLI, 'watch', '--api-key-file', $ENV{HR_API_KEY_FILE}, '--service', "app-db=$APP",
			'--service-file', $svc, '--db', $DB, '--env-file', $env,
			'--on-change', "echo \"\$HEROKU_PG_RESOLVE_CHANGED\" >> '$runs'",
			'--metrics-listen', "127.0.0.1:$PORT", '--interval', '300ms' ],
		'<', \undef, '>', "$TMP/watch.out", '2>', $err);
}
ok(wait_until(sub { (slurp_raw($err) // '') =~ /watching 1 app/ || !$h->pumpable }, 30) && $h->pumpable,
	'the watcher started with every sink')
  or diag(slurp_raw($err) // '');
like(slurp_raw($env) // '', qr/^APP_DB_URL='postgres:\/\/u1:first-pw\@/m, 'env file: the first URL');
like(slurp_raw($svc) // '', qr/password=first-pw/, 'service file: the first password');

sub metric
{
	my ($name) = @_;
	my $res = HTTP::Tiny->new(timeout => 10)->get("http://127.0.0.1:$PORT/metrics");
	my $sum = 0;
	$sum += $1 while ($res->{content} // '') =~ /^\Q$name\E(?:\{[^}]*\})? (\d+(?:\.\d+)?)$/mg;
	return $sum;
}

# ---- a release that changes the URL reaches every sink
my $calls0 = refresh_calls();
my $changes0 = metric('heroku_pg_resolve_on_change_runs_total');
set_url('second-pw');
ok(wait_until(sub { (slurp_raw($env) // '') =~ /second-pw/ }, 15), 'env file: the new URL');
like(slurp_raw($svc) // '', qr/password=second-pw/, 'service file: the new password');
ok(wait_until(sub { refresh_calls() > $calls0 }, 15), 'the cluster ran heroku_resolver_refresh()');
ok(wait_until(sub { (slurp_raw($runs) // '') =~ /^app-db$/m }, 15), '--on-change ran, naming the service');
ok(wait_until(sub { metric('heroku_pg_resolve_on_change_runs_total') > $changes0 }, 10),
	'metrics: the on-change run is counted');
cmp_ok(metric('heroku_pg_resolve_sink_writes_total'), '>=', 2, 'metrics: the sink writes are counted');

# ---- a release that changes no URL: no sink written, no run
my $mtime = (stat $env)[9];
my $nruns = () = (slurp_raw($runs) // '') =~ /\n/g;
sleep 1.1;
mock_call('PATCH', "/__mock/apps/$APP/config-vars", { OTHER => 'y' });
ok(wait_until(sub { (slurp_raw($err) // '') =~ /app \Q$APP\E: no change \(feed\)/ }, 15),
	'a release that changed another config var was looked at');
sleep 1;
is((stat $env)[9], $mtime, 'env file: not rewritten');
is(scalar(() = (slurp_raw($runs) // '') =~ /\n/g), $nruns, '--on-change: no run');

$h->signal('TERM');
$h->finish;
is($h->result(0), 0, 'the watcher stopped with exit status 0');
my $log = slurp_raw($err) // '';
ok($log !~ /first-pw|second-pw|\Q$DB_PASSWORD\E/, 'no password in the log');
$node->stop;
done_testing();
