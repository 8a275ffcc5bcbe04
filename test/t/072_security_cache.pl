# Who may make the cache work, see it, or leak a token into the log (issue
# 18, items 7, 9 and 10).  Each block reproduces a defect of 1.2:
#   7. heroku_resolver_refresh() by a role holding only EXECUTE on it: at
#      most one request per entry a second; a call inside that second waits
#      for the next request instead of skipping it, and concurrent calls
#      share one request
#   9. heroku_resolver_cache() shows another token's entries only to
#      superusers and members of pg_read_all_stats
#  10. a refused heroku.api_key (ALTER ROLE/DATABASE SET, ALTER SYSTEM, a
#      function's SET clause, the configuration file; SET by a role that may
#      not) never reaches the server log, with log_statement = none and the
#      default log_min_error_statement = error
# The cluster is preloaded and asks the plain-http mock.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use FindBin;
use lib $FindBin::Bin;
use HrTest;

need_env(qw(HEROKU_MOCK_URL HR_API_KEY_FILE HR_SECOND_KEY_FILE HR_MOCKCTL HR_PGBIN));

my $pw = 'SecCachePw5309';
my $app = 'sec-cache-app';
my $path = "/apps/$app/config-vars";
sub url_of { my ($host) = @_; return "postgres://suser:$pw\@$host:5432/sdb"; }
mock('put-app', $app, '--var', 'DATABASE_URL=' . url_of('one.example.com'));

delete local $ENV{HEROKU_API_KEY};

# log_statement = none: PostgreSQL::Test::Cluster sets 'all', which logs every
# statement before it runs, whatever the extension does (see README)
my $node = preloaded_node('security_cache', $ENV{HEROKU_MOCK_URL}, qq{
heroku.watch_interval = 0
heroku.refresh_interval = 0
heroku.api_key_file = '$ENV{HR_API_KEY_FILE}'
log_statement = none
log_min_error_statement = error
});
$node->start;
$node->safe_psql('postgres', qq{
CREATE EXTENSION heroku_resolver;
CREATE ROLE refresher LOGIN;
CREATE ROLE alice LOGIN;
CREATE ROLE sam LOGIN;
CREATE ROLE stats LOGIN IN ROLE pg_read_all_stats;
CREATE ROLE nokey LOGIN;
ALTER ROLE sam SET heroku.api_key_file = '$ENV{HR_SECOND_KEY_FILE}';
ALTER ROLE stats SET heroku.api_key_file = '';
ALTER ROLE nokey SET heroku.api_key_file = '';
GRANT EXECUTE ON FUNCTION heroku_resolver_refresh(text, text) TO refresher;
GRANT EXECUTE ON FUNCTION heroku_dblink_url(text, text) TO alice, sam;
GRANT EXECUTE ON FUNCTION heroku_resolver_cache() TO alice, sam, stats, nokey;
});

# psql as ROLE: (stdout, stderr)
sub as_role
{
	my ($role, $sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql, extra_params => [ '-U', $role ]);
	return ($out, $err);
}

# ---- 7: the throttle of heroku_resolver_refresh()
$node->safe_psql('postgres', "SELECT heroku_dblink_url('$app')");
sleep 1;    # the entry's last request is over a second old

# a tight loop of separate calls, by a role holding only EXECUTE
my $calls = 5;
mock('reset-counts');
my $t0 = time;
my ($out, $err) = as_role('refresher',
	join('', map { "SELECT heroku_resolver_refresh('$app');\n" } 1 .. $calls));
my $elapsed = time - $t0;
is($out, join("\n", ('0') x $calls), "(7) $calls calls in a row all succeed") or diag($err);
my $n = mock_count($path);
note(sprintf('(7) %d calls: %d requests in %.2f s', $calls, $n, $elapsed));
cmp_ok($n, '<=', $elapsed + 1, '(7) at most one request per entry a second');
is($n, $calls, '(7) and no call is skipped: each asked once, in its turn');

# a loop within one statement (a DO block) is throttled alike
mock('reset-counts');
$t0 = time;
($out, $err) = as_role('refresher', qq{
DO \$\$
DECLARE
	n int := 0;
BEGIN
	WHILE n < 300 AND clock_timestamp() < statement_timestamp() + interval '2.5 s' LOOP
		PERFORM heroku_resolver_refresh('$app');
		n := n + 1;
	END LOOP;
	RAISE NOTICE 'calls: %', n;
END
\$\$;});
$elapsed = time - $t0;
my ($dcalls) = $err =~ /calls: (\d+)/;
$n = mock_count($path);
note(sprintf('(7) a DO loop: %s calls, %d requests in %.2f s', $dcalls // '?', $n, $elapsed));
cmp_ok($n, '<=', $elapsed + 1, '(7) a loop in one statement: at most one request a second');
ok(defined $dcalls && $n == $dcalls, '(7) one request per call there too') or diag($err);

# concurrent calls within one second share the next request
$node->safe_psql('postgres', "SELECT heroku_resolver_refresh('$app')");
mock('reset-counts');
my @outs;
my @runs;
for my $i (0 .. 3)
{
	$outs[$i] = '';
	push @runs, IPC::Run::start(
		[ "$ENV{HR_PGBIN}/psql", '-XAtq', '-h', $node->host, '-p', $node->port,
		  '-U', 'refresher', '-d', 'postgres', '-c', "SELECT heroku_resolver_refresh('$app')" ],
		'>', \$outs[$i], '2>&1');
}
$_->finish for @runs;
is(join('', @outs), "0\n" x 4, '(7) four concurrent calls all succeed');
is(mock_count($path), 1, '(7) within the same second they share one request');

# a change made between two calls of the same second is seen by the second
($out, $err) = as_role('refresher', qq{
SELECT 'a:' || heroku_resolver_refresh('$app');
\\! /usr/bin/python3 $ENV{HR_MOCKCTL} set-var $app DATABASE_URL @{[url_of('two.example.com')]}
SELECT clock_timestamp() AS t1 \\gset
SELECT 'b:' || heroku_resolver_refresh('$app');
SELECT 'waited:' || (clock_timestamp() - :'t1' >= interval '0.5 s');
});
like($out, qr/^a:0\nb:1\nwaited:true$/,
	'(7) a change right after a call is seen by the next call, which waited for its turn')
  or diag($err);
like($node->safe_psql('postgres', "SELECT heroku_dblink_url('$app')"), qr/host='two\.example\.com'/,
	'(7) and the cache holds the new URL');

# ---- 9: heroku_resolver_cache() shows others' entries only to the privileged
$node->safe_psql('postgres', 'SELECT heroku_resolver_invalidate()');
my $shared = 'sec-shared-app';
mock('put-app', $_, '--var', 'DATABASE_URL=' . url_of("$_.example.com"))
  for 'sec-alice-app', 'sec-sam-app', $shared;
as_role('alice', "SELECT heroku_dblink_url('sec-alice-app'); SELECT heroku_dblink_url('$shared')");
as_role('sam', "SELECT heroku_dblink_url('sec-sam-app'); SELECT heroku_dblink_url('$shared')");
my $list = q{SELECT string_agg(app || '@' || host, ',' ORDER BY app COLLATE "C")
	FROM heroku_resolver_cache() WHERE app LIKE 'sec-%-app'};
my $all = 'sec-alice-app@sec-alice-app.example.com,sec-sam-app@sec-sam-app.example.com,'
  . "$shared\@$shared.example.com,$shared\@$shared.example.com";
($out, $err) = as_role('alice', $list);
is($out, "sec-alice-app\@sec-alice-app.example.com,$shared\@$shared.example.com",
	"(9) alice sees her own entries only, not sam's (nor his of the app they share)")
  or diag($err);
($out, $err) = as_role('sam', $list);
is($out, "sec-sam-app\@sec-sam-app.example.com,$shared\@$shared.example.com",
	"(9) sam sees his own only")
  or diag($err);
($out, $err) = as_role('nokey', "SELECT count(*) FROM heroku_resolver_cache()");
is("$out|$err", '0|', '(9) a role without a token sees none, without an error');
($out, $err) = as_role('stats', $list);
is($out, $all, '(9) a member of pg_read_all_stats sees every token\'s entries') or diag($err);
is($node->safe_psql('postgres', $list), $all, '(9) so does a superuser');
$node->safe_psql('postgres', 'SELECT heroku_resolver_invalidate()');

# ---- 10: a refused heroku.api_key never reaches the server log
my $canary = 'HRKU-aaaaaaaa-LeakCanary';
my %forms = (
	'ALTER ROLE ... SET' => "ALTER ROLE alice SET heroku.api_key = '${canary}1'",
	'ALTER ROLE ... IN DATABASE ... SET' =>
	  "ALTER ROLE alice IN DATABASE postgres SET heroku.api_key = '${canary}2'",
	'ALTER DATABASE ... SET' => "ALTER DATABASE postgres SET heroku.api_key = '${canary}3'",
	'ALTER SYSTEM SET' => "ALTER SYSTEM SET heroku.api_key = '${canary}4'",
	'a function\'s SET clause' =>
	  "CREATE FUNCTION sec_f() RETURNS int LANGUAGE sql SET heroku.api_key = '${canary}5' AS 'SELECT 1'",
	'EXECUTE in a DO block' =>
	  "DO \$\$BEGIN EXECUTE 'ALTER ROLE alice SET heroku.api_key = ''${canary}6'''; END\$\$");
for my $form (sort keys %forms)
{
	my $offset = -s $node->logfile;
	($out, $err) = as_role('postgres', $forms{$form});
	like($err, qr/ERROR:  heroku\.api_key may only be set in a session/, "(10) $form is refused");
	my $log = slurp_file($node->logfile, $offset);
	like($log, qr/ERROR:  heroku\.api_key may only be set in a session/,
		"(10) $form: the refusal is logged");
	unlike($log, qr/\Q$canary\E/, "(10) $form: the token is not in the server log");
	unlike($err, qr/\Q$canary\E/, "(10) $form: nor in the error the client gets");
}

# SET by a role that may not set it: the core's refusal
my $offset = -s $node->logfile;
($out, $err) = as_role('alice', "SET heroku.api_key = '${canary}7'");
like($err, qr/permission denied to set parameter "heroku\.api_key"/, '(10) SET by a non-superuser is refused');
my $log = slurp_file($node->logfile, $offset);
like($log, qr/permission denied to set parameter "heroku\.api_key"/, '(10) that refusal is logged');
unlike($log, qr/\Q$canary\E/, '(10) without the statement that carried the token');
($out, $err) = as_role('alice', "SET heroku.api_key_file = '/nonexistent'");
$log = slurp_file($node->logfile, $offset);
like($log, qr/STATEMENT:  SET heroku\.api_key_file/,
	'(10) other refused statements are still logged with their statement');

# the configuration file: refused on reload, the token not logged
$offset = -s $node->logfile;
$node->append_conf('postgresql.conf', "heroku.api_key = '${canary}8'");
$node->reload;
ok($node->poll_query_until('postgres',
		"SELECT pg_read_file('" . $node->logfile . "', $offset, 100000) ~ 'may only be set in a session'"),
	'(10) a token in the configuration file is refused on reload');
$log = slurp_file($node->logfile, $offset);
unlike($log, qr/\Q$canary\E/, '(10) the configuration file\'s token is not in the server log');

my $whole = slurp_file($node->logfile);
unlike($whole, qr/\Q$canary\E|\Q$pw\E/, 'no token and no password anywhere in the server log');

mock('delete-app', $_) for $app, 'sec-alice-app', 'sec-sam-app', $shared;
$node->stop;
done_testing();
