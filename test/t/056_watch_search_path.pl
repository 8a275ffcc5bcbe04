#!/usr/bin/perl
# heroku-pg-resolve watch --db runs the extension's own heroku_resolver_refresh(), never a function
# a role of the cluster planted for it (issue 18, item 2).
#
# A database owner that is no superuser plants a heroku_resolver_refresh(text, text) that records
# its call and makes that owner a superuser, in the two places an unqualified call would find it
# first: in a schema named after the watcher's role ("$user", first in the default search_path),
# and, in a second database, in a schema it puts first with ALTER DATABASE ... SET search_path.
# The watcher connects as a superuser (as the README's example once did), so a planted function
# that ran would succeed. After a change of the app, each database must have run the real
# function (pg_stat_user_functions, by its OID) and never the planted one.
#
# Runs as the postgres OS user with $HR_TEST_DIR/env.sh sourced (test/run-tests.sh does both).
use strict;
use warnings;

use File::Temp qw(tempdir);
use IPC::Run qw(start);
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(time sleep);
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use HrTest;

need_env(qw(HR_TEST_DIR HEROKU_MOCK_URL HR_API_KEY_FILE HR_MOCKCTL));

my $TMPBASE = $ENV{TESTDIR} || "$ENV{HR_TEST_DIR}/tap";
mkdir $TMPBASE unless -d $TMPBASE;
my $TMP = tempdir('watchpath_XXXXXX', DIR => $TMPBASE, CLEANUP => 1);
my $APP = 'wpath-a';

my $CLI = pg_resolve_cli();




# A new DATABASE_URL for the app in the mock (one release).
my $N = 0;
sub set_url
{
	my $pw = 'pw' . (++$N) . '-' . join('', map { sprintf '%02x', int(rand(256)) } 1 .. 8);
	mock_call('PATCH', "/__mock/apps/$APP/config-vars",
		{ DATABASE_URL => "postgres://u:$pw\@127.0.0.1:5432/d" });
	return;
}

eval { mock('delete-app', $APP) };
mock_call('PUT', "/__mock/apps/$APP", { config_vars => {} });
set_url();

my $node = preloaded_node('watch_path', $ENV{HEROKU_MOCK_URL}, qq{
heroku.api_key_file = '$ENV{HR_API_KEY_FILE}'
heroku.allow_local_hosts = on
heroku.watch_interval = 0
heroku.refresh_interval = 0
track_functions = 'all'
});
$node->start;
my $su = $node->safe_psql('postgres', 'SELECT current_user');
is($node->safe_psql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = '$su'"), 't',
	"the watcher connects as $su, a superuser");

# The planted function: records its call, and makes its owner a superuser.
my $PLANT = q{
CREATE TABLE public.planted_calls (who name, at timestamptz DEFAULT now());
GRANT INSERT ON public.planted_calls TO PUBLIC;
CREATE FUNCTION SCHEMA_.heroku_resolver_refresh(app text DEFAULT NULL, config_var text DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.planted_calls (who) VALUES (current_user);
	EXECUTE 'ALTER ROLE dbowner SUPERUSER';
	RETURN 0;
END $$;
};

$node->safe_psql('postgres', q{
CREATE ROLE dbowner LOGIN;
CREATE DATABASE d_user OWNER dbowner;
CREATE DATABASE d_path OWNER dbowner;
});
# d_user: the extension in public; the owner's schema named after the watcher's role, and an
# overload of its own beside the real function in public (the owner may CREATE there)
$node->safe_psql('d_user', 'CREATE EXTENSION heroku_resolver');
my $plant_user = $PLANT =~ s/SCHEMA_/"$su"/r;
$node->safe_psql('d_user', qq{
SET ROLE dbowner;
CREATE SCHEMA "$su";
$plant_user
CREATE FUNCTION public.heroku_resolver_refresh(app text) RETURNS integer
LANGUAGE sql AS \$\$ INSERT INTO public.planted_calls (who) VALUES (current_user) RETURNING 0 \$\$;
});
# d_path: the extension in a schema of its own; the owner's schema first in the database's
# search_path
$node->safe_psql('d_path', 'CREATE SCHEMA heroku; CREATE EXTENSION heroku_resolver SCHEMA heroku');
my $plant_path = $PLANT =~ s/SCHEMA_/planted/r;
$node->safe_psql('d_path', qq{
SET ROLE dbowner;
CREATE SCHEMA planted;
$plant_path
ALTER DATABASE d_path SET search_path = planted, heroku, public;
});
is($node->safe_psql('d_path', 'SELECT pg_catalog.current_schemas(false)'), '{planted,heroku,public}',
	'd_path: a new session has the owner\'s schema first');
is($node->safe_psql('d_user', 'SELECT pg_catalog.current_schemas(false)'), "{$su,public}",
	"d_user: a new session of $su has the owner's schema \"$su\" first");

my %REAL = (d_user => 'public.heroku_resolver_refresh(text,text)', d_path => 'heroku.heroku_resolver_refresh(text,text)');
my %PLANTED = (d_user => qq{"$su".heroku_resolver_refresh(text,text)}, d_path => 'planted.heroku_resolver_refresh(text,text)');

# calls of a function of db, as the statistics count them
sub calls
{
	my ($db, $fn) = @_;
	return $node->safe_psql($db, "SELECT coalesce(sum(calls), 0) FROM pg_catalog.pg_stat_user_functions WHERE funcid = '$fn'::pg_catalog.regprocedure");
}

my $err = "$TMP/watch.err";
my $h;
{
	local %ENV = %ENV;
	delete @ENV{qw(HEROKU_API_KEY PGSERVICEFILE)};
	$ENV{HEROKU_API_URL} = $ENV{HEROKU_MOCK_URL};
	$h = start([ $CLI, 'watch', '--api-key-file', $ENV{HR_API_KEY_FILE}, '--app', $APP, '--interval', '300ms',
			'--db', $node->connstr('d_user'), '--db', $node->connstr('d_path') ],
		'<', \undef, '>', "$TMP/watch.out", '2>', $err);
}
ok(wait_until(sub { (slurp_raw($err) // '') =~ /watching 1 app/ || !$h->pumpable }, 30) && $h->pumpable, 'the watcher started')
  or diag((slurp_raw($err) // ''));
sleep 1;
set_url();
for my $db (qw(d_user d_path))
{
	ok(wait_until(sub { (slurp_raw($err) // '') =~ m{cluster \S+/$db: (heroku_resolver_refresh|could not notify)} }, 20),
		"$db: the watcher told the cluster of the change");
}
$h->signal('TERM');
$h->finish;
my $log = (slurp_raw($err) // '');

for my $db (qw(d_user d_path))
{
	like($log, qr{cluster \S+/$db: heroku_resolver_refresh\('\Q$APP\E'\) = \d+,}, "$db: the call succeeded");
	ok(wait_until(sub { calls($db, $REAL{$db}) >= 1 }, 10), "$db: the extension's heroku_resolver_refresh() ran");
	is(calls($db, $PLANTED{$db}), 0, "$db: the planted function never ran");
	is($node->safe_psql($db, 'SELECT count(*) FROM public.planted_calls'), 0, "$db: no planted call recorded");
}
is(calls('d_user', 'public.heroku_resolver_refresh(text)'), 0, 'd_user: the one-argument overload never ran');
is($node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'dbowner'}), 'f',
	'the database owner is still no superuser');
unlike($log, qr/could not notify/, 'no notification failed');

mock('delete-app', $APP);
$node->stop;
done_testing();
