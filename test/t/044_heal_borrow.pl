# Nobody borrows the worker's power (security pass 2, items 1, 3 and 4).
# The background worker runs as the bootstrap superuser in heroku.database,
# here a database owned by a role that is not a superuser:
#   - a heroku_fdw_refresh(text) planted in the extension's schema (public,
#     which that owner may CREATE in) is never what healing runs;
#   - a search_path set with ALTER DATABASE, with a type and cast of the
#     owner's, never reaches what the refresher runs;
#   - a role with no grant on a server cannot make the worker spend API
#     requests on it, nor can a function merely named dblink...; a role
#     that may use the server gets one healing request a minute when
#     nothing changed, charged to it in role_requests;
#   - the heal queue frees its slots, drops its oldest entry with a LOG
#     line when full, and takes nothing from other databases.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use FindBin;
use lib $FindBin::Bin;
use HrTest;

need_env(qw(HEROKU_MOCK_URL HR_API_KEY_FILE HR_MOCKCTL HR_REPO));
my $app = 'myapp';
my $path = "/apps/$app/config-vars";

my $node = preloaded_node('borrow', $ENV{HEROKU_MOCK_URL}, qq{
heroku.database = 'victim'
heroku.watch_interval = 0
heroku.allow_local_hosts = on
heroku.api_key_file = '$ENV{HR_API_KEY_FILE}'
max_connections = 40
});
$node->start;
$node->safe_psql('postgres', q{
CREATE ROLE dbowner LOGIN;
CREATE ROLE nobody LOGIN;
CREATE ROLE user1 LOGIN;
CREATE DATABASE victim OWNER dbowner;
CREATE DATABASE other;
});
# the worker connects to victim at start
$node->restart;

for my $db (qw(victim other))
{
	$node->safe_psql($db, q{
CREATE EXTENSION dblink;
CREATE EXTENSION postgres_fdw;
CREATE EXTENSION heroku_resolver;
});
}
$node->safe_psql('victim', qq{
SELECT heroku_fdw_create_server(s, '$app', fdw => 'dblink_fdw')
  FROM unnest(ARRAY['heal_a', 'heal_b', 'heal_c', 'heal_d']) s;
GRANT USAGE ON FOREIGN SERVER heal_c, heal_d TO user1;
SELECT heroku_fdw_add_user_mapping(s, 'user1') FROM unnest(ARRAY['heal_c', 'heal_d']) s;
});

# A statement that names $server through dblink and fails to connect
# elsewhere (a refused port): class 08, as $role in $db.
sub fail_on
{
	my ($db, $role, $server) = @_;
	my ($ret, $out, $err) = $node->psql($db, qq{
SET ROLE $role;
SELECT * FROM dblink('$server', 'select 1') AS t(x int)
 WHERE (SELECT dblink_connect('host=127.0.0.1 port=1 dbname=x password=x connect_timeout=2')) IS NULL;
});
	return $err;
}

# Wait up to $secs for the server log (from $offset) to match $re.
sub log_wait
{
	my ($re, $offset, $secs) = @_;
	my $t0 = time;
	while (time - $t0 < $secs)
	{
		return 1 if slurp_file($node->logfile, $offset) =~ $re;
		usleep(100_000);
	}
	return 0;
}

sub is_super
{
	return $node->safe_psql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = '$_[0]'");
}

# ---- item 3: a role with no grant on the server spends nothing
mock('reset-counts');
my $t0 = time;
my $err = '';
$err = fail_on('victim', 'nobody', 'heal_b') while time - $t0 < 4;
like($err, qr/could not establish connection/, 'no grants: the statement fails to connect (class 08)');
usleep(1_500_000);
is(mock_count($path), 0, 'no grants: 4 s of failing statements naming a registered server cost no API request');

# ---- item 3: a function whose name starts with dblink is not dblink
$node->safe_psql('victim', q{
CREATE FUNCTION public.dblink_mine(text, text) RETURNS SETOF record LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'no' USING ERRCODE = '08006'; END $$;
GRANT EXECUTE ON FUNCTION public.dblink_mine(text, text) TO user1;
});
mock('reset-counts');
my $offset = -s $node->logfile;
(undef, undef, $err) = $node->psql('victim',
	q{SET ROLE user1; SELECT * FROM public.dblink_mine('heal_d', 'select 1') AS t(x int)});
like($err, qr/ERROR:  no/, 'a function named dblink_mine raises class 08');
ok(!log_wait(qr/healed foreign server "heal_d"/, $offset, 3),
	'a function merely named dblink... gets no healing');
is(mock_count($path), 0, 'and costs no API request');

# ---- item 3: a role that may use the server: one healing request a minute, charged to it
mock('reset-counts');
$offset = -s $node->logfile;
$t0 = time;
my $n = 0;
while (time - $t0 < 5) { fail_on('victim', 'user1', 'heal_c'); $n++; }
ok(log_wait(qr/healed foreign server "heal_c"/, $offset, 5), 'USAGE and a mapping: the server is healed');
usleep(1_000_000);
my $spent = mock_count($path);
note("user1: $n failing statements in 5 s cost $spent config-vars request(s)");
cmp_ok($spent, '<=', 1, 'healing with no change: at most one request for the server in a minute');
my $charged = $node->safe_psql('victim',
	q{SELECT coalesce((role_requests->>'user1')::int, 0) FROM heroku_resolver_status()});
cmp_ok($charged, '>=', 1, 'the healing request is charged to user1 in role_requests');

# ---- item 1: a heroku_fdw_refresh(text) planted by the database owner
$node->safe_psql('victim', q{
SET ROLE dbowner;
CREATE TABLE public.pwned (what text, who text);
CREATE FUNCTION public.heroku_fdw_refresh(text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.pwned VALUES ('heal', current_user);
  EXECUTE 'ALTER ROLE dbowner SUPERUSER';
  RETURN true;
END $$;
});
$offset = -s $node->logfile;
fail_on('victim', 'postgres', 'heal_a');
ok(log_wait(qr/healed foreign server "heal_a"/, $offset, 10),
	'planted function: the worker healed heal_a');
is($node->safe_psql('victim', q{SELECT count(*) FROM public.pwned WHERE what = 'heal'}), '0',
	'planted function: healing never ran heroku_fdw_refresh(text) of the owner');
is(is_super('dbowner'), 'f', 'planted function: the database owner is not a superuser');

# ---- item 4: the heal queue; the worker keeps still while it fills
$node->safe_psql('postgres', q{ALTER SYSTEM SET heroku.heal = off; SELECT pg_reload_conf()});
usleep(500_000);
$node->safe_psql('other', qq{
SELECT heroku_fdw_create_server('o' || i, '$app', fdw => 'dblink_fdw') FROM generate_series(1, 34) i;
});
$node->safe_psql('victim', qq{
SELECT heroku_fdw_create_server('q' || i, '$app', fdw => 'dblink_fdw') FROM generate_series(1, 34) i;
});
sub fail_many
{
	my ($db, $prefix, $count) = @_;
	my $sql = "SET heroku.heal = on;\n";
	$sql .= qq{SELECT * FROM dblink('$prefix$_', 'select 1') AS t(x int) WHERE (SELECT dblink_connect('host=127.0.0.1 port=1 dbname=x connect_timeout=2')) IS NULL;\n}
	  for 1 .. $count;
	$node->psql($db, $sql, on_error_stop => 0);
	return;
}
$offset = -s $node->logfile;
fail_many('other', 'o', 34);
fail_many('victim', 'q', 34);
my $log = slurp_file($node->logfile, $offset);
# (ok, not like: a failure would print the whole log)
ok($log !~ /dropped foreign server "o\d+"/, 'heal queue: servers of another database are not queued');
ok($log =~ /heal queue is full: dropped foreign server "q1"/,
	'heal queue: full, it drops its oldest entry with a LOG line naming the server');
ok($log =~ /heal queue is full: dropped foreign server "q2"/, 'heal queue: then the next oldest');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET heroku.heal; SELECT pg_reload_conf()});
ok(log_wait(qr/healed foreign server "q34"/, $offset, 15), 'heal queue: the newest server is healed');
ok(log_wait(qr/healed foreign server "q3"/, $offset, 5), 'heal queue: and the oldest one kept');
$log = slurp_file($node->logfile, $offset);
ok($log !~ /healed foreign server "q1"/, 'heal queue: the dropped one is not');
$offset = -s $node->logfile;
fail_many('victim', 'q', 1);
ok(log_wait(qr/healed foreign server "q1"/, $offset, 5),
	'heal queue: slots are freed when taken (a new failure is queued and healed)');

# ---- item 1: the refresher under a search_path the database owner set
$node->safe_psql('victim', q{
SET ROLE dbowner;
CREATE SCHEMA evil;
CREATE TYPE evil.text AS (x int);
CREATE FUNCTION evil.pwn(name) RETURNS evil.text LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.pwned VALUES ('cast', current_user);
  EXECUTE 'ALTER ROLE dbowner SUPERUSER';
  RETURN ROW(1)::evil.text;
END $$;
CREATE CAST (name AS evil.text) WITH FUNCTION evil.pwn(name);
ALTER DATABASE victim SET search_path = evil, pg_catalog, public;
});
$node->append_conf('postgresql.conf', "heroku.refresh_interval = '1s'\n");
$node->restart;
$offset = -s $node->logfile;
system('bash', "$ENV{HR_REPO}/test/rotate.sh", $app) == 0 or die 'rotate.sh failed';
ok(log_wait(qr/refresher updated foreign server/, $offset, 15),
	'search_path: the refresher ran after a rotation');
is($node->safe_psql('victim', q{SELECT count(*) FROM public.pwned WHERE what = 'cast'}), '0',
	'search_path: the refresher never ran the owner\'s cast');
is(is_super('dbowner'), 'f', 'search_path: the database owner is not a superuser');

$node->stop;
done_testing();
