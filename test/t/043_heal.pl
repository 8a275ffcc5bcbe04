# Healing on failure, with the preload and the default settings (cache_ttl
# 60 s): a rotation costs each client at most one failed statement, a
# registered foreign server heals without a manual step, an unrelated
# failure changes nothing, a storm of failures costs at most about one API
# request a second, and heroku.heal = off shows the stale behaviour of 1.1.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use FindBin;
use lib $FindBin::Bin;
use HrTest;

need_env(qw(HEROKU_MOCK_URL HR_API_KEY_FILE HR_MOCKCTL HR_PGBIN HR_REPO HR_REMOTE_PORT
	HR_REMOTE_SOCK));
my $mock_url = $ENV{HEROKU_MOCK_URL};
my $app = 'myapp';
my $path = "/apps/$app/config-vars";
my $rotate = "$ENV{HR_REPO}/test/rotate.sh";

my $node = PostgreSQL::Test::Cluster->new('heal');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'heroku_resolver'
heroku.watch_interval = 0
heroku.api_url = '$mock_url'
heroku.allow_local_hosts = on
heroku.api_key_file = '$ENV{HR_API_KEY_FILE}'
heroku.netrc_file = '/dev/null'
max_connections = 30
});
$node->start;
$node->safe_psql('postgres', qq{
CREATE EXTENSION dblink;
CREATE EXTENSION postgres_fdw;
CREATE EXTENSION heroku_resolver;
CREATE TABLE runs (client int, heal bool, started timestamptz, ok bool);
});

# The rotation must reach the remote the URL points at now.
sub rotate { system('bash', $rotate, $app) == 0 or die "rotate.sh failed"; }

# N clients, each one long-lived session running the dblink query of the
# README in a loop for $secs seconds (a new remote connection per call),
# recording each statement's start and outcome; a rotation after $at s.
sub run_clients
{
	my ($heal, $n, $secs, $at) = @_;
	my @h;
	for my $c (1 .. $n)
	{
		my ($out, $err) = ('', '');
		my $sql = qq{SET heroku.heal = $heal;
DO \$\$
DECLARE t0 timestamptz := clock_timestamp(); s timestamptz; good bool;
BEGIN
  WHILE clock_timestamp() < t0 + interval '$secs s' LOOP
    s := clock_timestamp();
    BEGIN
      PERFORM * FROM dblink(heroku_dblink_url('$app'), 'select 1') AS t(x int);
      good := true;
    EXCEPTION WHEN sqlclient_unable_to_establish_sqlconnection THEN
      good := false;
    END;
    INSERT INTO runs VALUES ($c, '$heal'::bool, s, good);
    PERFORM pg_sleep(0.02);
  END LOOP;
END
\$\$;};
		push @h, IPC::Run::start(
			[ "$ENV{HR_PGBIN}/psql", '-XAtq', '-h', $node->host,
				'-p', $node->port, '-d', 'postgres' ],
			'<', \$sql, '>', \$out, '2>', \$err);
	}
	sleep $at;
	rotate();
	my $rotated = time;
	$_->finish for @h;
	return $rotated;
}

# ---- dblink through a rotation, 4 clients, defaults
$node->safe_psql('postgres', "SELECT heroku_dblink_url('$app')");	# warm cache
mock('reset-counts');
run_clients('on', 4, 6, 2);
my $per_client = $node->safe_psql('postgres',
	"SELECT string_agg(n::text, ',' ORDER BY client) FROM (SELECT client, count(*) FILTER (WHERE NOT ok) n FROM runs WHERE heal GROUP BY client) c");
note("failed statements per client with healing: $per_client");
ok((grep { $_ <= 1 } split /,/, $per_client) == 4, 'healing: at most one failed statement per client');
my ($first_fail, $last_fail, $heal_ms) = split /\|/, $node->safe_psql('postgres',
	"SELECT min(started), max(started), round(extract(epoch FROM max(started) - min(started)) * 1000) FROM runs WHERE heal AND NOT ok");
note("healing: failures from $first_fail to $last_fail ($heal_ms ms)");
is($node->safe_psql('postgres',
	"SELECT count(*) FROM runs WHERE heal AND NOT ok AND started > (SELECT min(started) FROM runs WHERE heal AND NOT ok) + interval '1 s'"),
	'0', 'healing: every statement that starts 1 s after the first failure succeeds');
cmp_ok($node->safe_psql('postgres', 'SELECT count(*) FROM runs WHERE heal AND ok'), '>', 20,
	'healing: the clients kept working');
my $requests = mock_count($path);
note("config-vars requests during the run: $requests");
cmp_ok($requests, '<=', 8, 'healing: a handful of API requests, not one per statement');

# ---- the same with heroku.heal = off: failures until the TTL runs out
run_clients('off', 2, 4, 1);
my $off = $node->safe_psql('postgres',
	"SELECT min(n) FROM (SELECT client, count(*) FILTER (WHERE NOT ok) n FROM runs WHERE NOT heal GROUP BY client) c");
note("failed statements per client without healing: at least $off");
cmp_ok($off, '>', 1, 'heroku.heal = off: every call fails until the TTL runs out (the 1.1 behaviour)');
$node->safe_psql('postgres', 'SELECT heroku_resolver_invalidate()');

# ---- a rotation right after a fetch, in one session (as test/demo.sh does):
# the limit of one healing request a second counts from the last healing
# request, not from the fetch, so the call after the failure asks and works
my ($ret, $out, $err) = $node->psql('postgres', qq{
SELECT heroku_resolver_invalidate() >= 0;
SELECT heroku_dblink_url('$app') IS NOT NULL;
\\! bash $rotate $app
SELECT * FROM dblink(heroku_dblink_url('$app'), 'select 1') t(x int);
SELECT * FROM dblink(heroku_dblink_url('$app'), 'select 2') t(x int);
}, on_error_stop => 0);
my @errors = $err =~ /could not establish connection/g;
note('rotation right after a fetch: ' . scalar(@errors) . ' failed call(s)');
cmp_ok(scalar @errors, '<=', 1, 'rotation right after a fetch: at most one failed call');
like($out, qr/^2$/m, 'rotation right after a fetch: the next call works');

# ---- an unrelated failure invalidates nothing
$node->safe_psql('postgres', "SELECT heroku_dblink_url('$app')");
mock('reset-counts');
($ret, $out, $err) = $node->psql('postgres',
	"SELECT heroku_dblink_url('$app') IS NOT NULL; SELECT * FROM dblink('host=127.0.0.1 port=1 dbname=x connect_timeout=2', 'select 1') t(x int)");
like($err, qr/could not establish connection/, 'an unrelated dblink connection fails');
$node->safe_psql('postgres', "SELECT heroku_dblink_url('$app')");
is(mock_count($path), 0, 'and the next resolve is still served from the cache: no request');

# ---- a storm: the remote refuses the role while the URL stays the same
my $remote = qq{"$ENV{HR_PGBIN}/psql" -XAtq -h $ENV{HR_REMOTE_SOCK} -p $ENV{HR_REMOTE_PORT} -U postgres -d appdb};
my $url_port = $node->safe_psql('postgres',
	"SELECT substring(heroku_dblink_url('$app') from 'port=''([0-9]+)''')");
SKIP:
{
	skip 'myapp is not on the first remote', 2 unless $url_port eq $ENV{HR_REMOTE_PORT};
	system("$remote -c 'ALTER ROLE app_user NOLOGIN'") == 0 or die 'remote ALTER ROLE failed';
	mock('reset-counts');
	my $t0 = time;
	my $failures = 0;
	while (time - $t0 < 3)
	{
		($ret, $out, $err) = $node->psql('postgres',
			"SELECT * FROM dblink(heroku_dblink_url('$app'), 'select 1') t(x int)");
		$failures++ if $ret != 0;
	}
	my $secs = time - $t0;
	system("$remote -c 'ALTER ROLE app_user LOGIN'") == 0 or die 'remote ALTER ROLE failed';
	my $storm = mock_count($path);
	note(sprintf('storm: %d failures in %.1f s cost %d config-vars requests', $failures, $secs, $storm));
	cmp_ok($failures, '>', 10, 'storm: the remote refuses every connection');
	cmp_ok($storm, '<=', int($secs) + 2, 'storm: at most about one API request a second');
}

# After a rotation, run $sql in a new backend every 100 ms (10 s at most) until it
# succeeds; check that it did, after at least one and at most 3 failures, and that the
# worker logged the healing of $server.
sub heals_without_a_manual_step
{
	my ($what, $sql, $server) = @_;
	rotate();
	my ($fails, $ok_after, $t0) = (0, 0, time);
	while (time - $t0 < 10)
	{
		my ($r) = $node->psql('postgres', $sql);
		if ($r == 0) { $ok_after = 1; last; }
		$fails++;
		usleep(100_000);
	}
	note(sprintf('%s: %d failed statements, healed after %.2f s', $what, $fails, time - $t0));
	ok($ok_after, "$what: a new backend succeeds after the worker refreshed the server");
	cmp_ok($fails, '>=', 1, "$what: the rotation was seen (the old password failed)");
	cmp_ok($fails, '<=', 3, "$what: only the statements before the refresh landed failed");
	like(slurp_file($node->logfile), qr/healed foreign server "\Q$server\E"/,
		"$what: the worker logged the healing, naming the server");
	return;
}

# ---- a registered foreign server heals in every new backend without a manual step
$node->safe_psql('postgres', qq{
SELECT heroku_fdw_create_server('heal_srv', '$app');
CREATE FOREIGN TABLE heal_orders (id int) SERVER heal_srv OPTIONS (table_name 'orders');
});
is($node->safe_psql('postgres', 'SELECT count(*) > 0 FROM heal_orders'), 't',
	'foreign table: reachable before the rotation');
heals_without_a_manual_step('foreign table', 'SELECT count(*) > 0 FROM heal_orders', 'heal_srv');

# ---- a dblink_fdw server used by name, dblink('srv', ...), heals the same way
$node->safe_psql('postgres', qq{SELECT heroku_fdw_create_server('heal_dbl', '$app', fdw => 'dblink_fdw')});
my $by_name = q{SELECT x FROM dblink('heal_dbl', 'select 1') AS t(x int)};
is($node->safe_psql('postgres', $by_name), '1', 'dblink by server name: reachable before the rotation');
heals_without_a_manual_step('dblink by server name', $by_name, 'heal_dbl');

$node->stop;
done_testing();
