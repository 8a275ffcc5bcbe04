#!/usr/bin/perl
# heroku-pg-resolve watch --env-file and --on-change (issue 20, items 2, 3 and 5): the env file's
# lines and mode, and no write when nothing changed; --on-change run once per real change of a
# service's URL, never for a release that changed no URL, coalesced while it runs, without
# HEROKU_API_KEY, killed (its process group) at --on-change-timeout, retried with back-off, and
# a command that is not found said so; bad input (an unwritable env file) ends the watcher with
# exit status 73.  Changes are made through the mock's control API and seen by the feed.
#
# Runs as the postgres OS user with $HR_TEST_DIR/env.sh sourced (test/run-tests.sh does both).
# Listens on nothing.
use strict;
use warnings;

use File::Temp qw(tempdir);
use IPC::Run qw(start run);
use Test::More;
use Time::HiRes qw(sleep time);
use FindBin;
use lib $FindBin::Bin;
use HrTest;

need_env(qw(HR_TEST_DIR HEROKU_MOCK_URL HR_API_KEY_FILE HR_MOCKCTL));

my $TMPBASE = $ENV{TESTDIR} || "$ENV{HR_TEST_DIR}/tap";
mkdir $TMPBASE unless -d $TMPBASE;
my $TMP = tempdir('watchenv_XXXXXX', DIR => $TMPBASE, CLEANUP => 1);
my $CLI = pg_resolve_cli();
my $APP = 'wenv-a';
my $TOKEN = slurp_raw($ENV{HR_API_KEY_FILE});
$TOKEN =~ s/\s+//g;
my $NPW = 0;

# Set the app's DATABASE_URL to a new password (with characters a quote or a shell would take).
sub set_url
{
	my ($pw) = @_;
	mock_call('PATCH', "/__mock/apps/$APP/config-vars",
		{ DATABASE_URL => "postgres://u1:$pw\@127.0.0.1:5432/d1" });
	return;
}

mock_call('PUT', "/__mock/apps/$APP",
	{ config_vars => { DATABASE_URL => 'postgres://u1:first-pw@127.0.0.1:5432/d1', OTHER => 'x' } });

my $NW = 0;
sub watch_start
{
	my (@args) = @_;
	my %w = (err => "$TMP/watch-" . (++$NW) . '.err');
	local %ENV = %ENV;
	delete @ENV{qw(PGSERVICEFILE)};
	$ENV{HEROKU_API_URL} = $ENV{HEROKU_MOCK_URL};
	# the token is in the watcher's environment: the command must not get it
	$ENV{HEROKU_API_KEY} = $TOKEN;
	$w{h} = start([ $CLI, 'watch', @args ], '<', \undef, '>', "$TMP/watch-$NW.out", '2>', $w{err});
	my $up = wait_until(sub { (slurp_raw($w{err}) // '') =~ /watching \d+ app/ || !$w{h}->pumpable }, 30);
	ok($up && $w{h}->pumpable, "watcher $NW started") or diag(slurp_raw($w{err}) // '');
	return \%w;
}

sub watch_stop
{
	my ($w) = @_;
	$w->{h}->signal('TERM');
	$w->{h}->finish;
	unlike(slurp_raw($w->{err}) // '', qr/\Q$TOKEN\E|first-pw|pw-\d/, "watcher log $NW holds no token or password");
	return $w->{h}->result(0);
}

sub lines { my $t = slurp_raw($_[0]) // ''; return scalar(() = $t =~ /\n/g) }
sub requests { return mock_count("/apps/$APP/config-vars") }

# --- bad input, before anything runs
{
	local %ENV = %ENV;
	$ENV{HEROKU_API_URL} = $ENV{HEROKU_MOCK_URL};
	for my $case (
		[ '--env-file without --service', 64, [ '--app', $APP, '--env-file', "$TMP/x.env" ], qr/need --service/ ],
		[ 'a service name with no variable name', 64,
			[ '--service', "a.b=$APP", '--service-file', "$TMP/x.conf", '--env-file', "$TMP/x.env" ], qr/no environment variable name/ ],
		[ 'a bad --on-change-timeout', 78,
			[ '--service', "a=$APP", '--service-file', "$TMP/x.conf", '--on-change', 'true', '--on-change-timeout', 'soon' ], qr/invalid --on-change-timeout/ ],
		[ 'an env file in no directory', 73,
			[ '--service', "a=$APP", '--service-file', "$TMP/x.conf", '--env-file', "$TMP/no/dir.env" ], qr/could not write env file .*does not exist/ ])
	{
		my ($name, $code, $args, $msg) = @$case;
		my ($out, $err) = ('', '');
		run([ $CLI, 'watch', '--api-key-file', $ENV{HR_API_KEY_FILE}, '--interval', '1s', @$args ], \undef, \$out, \$err);
		is($? >> 8, $code, "$name: exit status $code");
		like($err, $msg, "$name: a clear message") or diag($err);
	}
}

# --- the env file and on-change, through changes
my $ENV_FILE = "$TMP/app.env";
my $RUNS = "$TMP/runs";
my $SLEEP = "$TMP/sleep";
my $CMD = qq{echo "\$HEROKU_PG_RESOLVE_CHANGED" >> '$RUNS'; env > '$TMP/cmd-env'; }
  . qq{sleep "\$(cat '$SLEEP' 2>/dev/null || echo 0)"};
my $W = watch_start('--service', "app-db=$APP", '--service-file', "$TMP/svc.conf", '--env-file', $ENV_FILE,
	'--on-change', $CMD, '--interval', '200ms');

my $text = slurp_raw($ENV_FILE) // '';
like($text, qr/^APP_DB_URL='postgres:\/\/u1:first-pw\@127\.0\.0\.1:5432\/d1\?sslmode=require'$/m,
	'the env file holds APP_DB_URL, single-quoted, with sslmode=require');
is(scalar(() = $text =~ /^[A-Z]/mg), 1, 'one variable line');
is((stat $ENV_FILE)[2] & 07777, 0600, 'the env file is mode 0600');
ok(!-e $RUNS, 'no on-change run at start (the env file did not exist: nothing changed for a consumer)');

# a release that changes another var only: a check, and no write, no run
my $ino = (stat $ENV_FILE)[1];
my $mtime = (stat $ENV_FILE)[9];
my $before = requests();
mock_call('PATCH', "/__mock/apps/$APP/config-vars", { OTHER => 'y' });
ok(wait_until(sub { requests() > $before }, 20), 'a release of another var: the app is checked');
sleep(1.0);
is((stat $ENV_FILE)[1], $ino, 'no change: the env file is not replaced');
is((stat $ENV_FILE)[9], $mtime, 'no change: the env file is not touched');
ok(!-e $RUNS, 'no change: no on-change run');

# a real change: the file, then one run naming the service, without the token
my $pw = q{pw-1'$HOME "x"};
set_url($pw);
ok(wait_until(sub { lines($RUNS) >= 1 }, 20), 'a rotation: on-change ran');
$text = slurp_raw($ENV_FILE) // '';
like($text, qr/^APP_DB_URL='postgres:\/\/u1:pw-1%27%24HOME%20%22x%22\@127\.0\.0\.1:5432\/d1\?sslmode=require'$/m,
	'the new URL, percent-encoded: no quote, $ or space in the value');
my ($sh_out, $sh_err) = ('', '');
run([ 'sh', '-c', qq{set -a; . '$ENV_FILE'; printf %s "\$APP_DB_URL"} ], \undef, \$sh_out, \$sh_err);
like($sh_out, qr/^postgres:\/\/u1:pw-1%27%24HOME%20%22x%22\@/, 'a POSIX shell reads the value literally');
is((stat $ENV_FILE)[2] & 07777, 0600, 'still mode 0600 after the rotation');
sleep(1.0);
is(slurp_raw($RUNS), "app-db\n", 'exactly one run, HEROKU_PG_RESOLVE_CHANGED=app-db');
my $cmd_env = slurp_raw("$TMP/cmd-env") // '';
unlike($cmd_env, qr/^HEROKU_API_KEY=/m, 'the command has no HEROKU_API_KEY');
unlike($cmd_env, qr/\Q$TOKEN\E/, 'the token is nowhere in its environment');
like($cmd_env, qr/^HEROKU_PG_RESOLVE_CHANGED=app-db$/m, 'HEROKU_PG_RESOLVE_CHANGED is set');

# coalescing: two changes while a run takes 4 s make one more run, not two
open my $sf, '>', $SLEEP or die;
print $sf "4\n";
close $sf;
my $n0 = lines($RUNS);
set_url('pw-2');
ok(wait_until(sub { lines($RUNS) > $n0 }, 20), 'a change starts a run (4 s long)');
for my $p ('pw-3', 'pw-4')
{
	my $was = slurp_raw($ENV_FILE);
	set_url($p);
	ok(wait_until(sub { (slurp_raw($ENV_FILE) // '') ne $was }, 20), "change to $p written while the command runs");
}
unlink $SLEEP;
ok(wait_until(sub { lines($RUNS) >= $n0 + 2 }, 20), 'one more run after the first');
sleep(2.0);
is(lines($RUNS) - $n0, 2, 'two changes during a run were coalesced into one more run');
like(slurp_raw($W->{err}), qr/a run is in progress; one more run follows it/, 'the log says a run follows');
is(watch_stop($W), 0, 'watcher stops with 0');

# --- a restart with an env file holding an older URL: that is a change for its consumer
set_url('pw-5');
unlink $RUNS;
$W = watch_start('--service', "app-db=$APP", '--service-file', "$TMP/svc.conf", '--env-file', $ENV_FILE,
	'--on-change', $CMD, '--interval', '200ms');
ok(wait_until(sub { lines($RUNS) >= 1 }, 20), 'at start, an env file with an older URL makes a run');
watch_stop($W);

# --- timeout (the process group killed), retry with back-off
my $PIDF = "$TMP/bg.pid";
$W = watch_start('--service', "app-db=$APP", '--service-file', "$TMP/svc.conf",
	'--on-change', qq{echo run >> '$TMP/truns'; sleep 30 & echo \$! > '$PIDF'; wait},
	'--on-change-timeout', '500ms', '--interval', '200ms');
set_url('pw-6');
ok(wait_until(sub { slurp_raw($W->{err}) =~ /killed after the timeout of 0\.5 s/ }, 20), 'the timeout is logged')
  or diag(slurp_raw($W->{err}));
my $bg = slurp_raw($PIDF) // '';
chomp $bg;
ok($bg && wait_until(sub { !kill(0, $bg) }, 5), 'the command\'s background child was killed with its group');
ok(wait_until(sub { lines("$TMP/truns") >= 3 }, 20), 'the failed run is retried');
my $log = slurp_raw($W->{err});
like($log, qr/retrying in 1 s.*retrying in 2 s/s, 'with back-off: 1 s, then 2 s');
watch_stop($W);

# --- a failing command, and a command that is not found
$W = watch_start('--service', "app-db=$APP", '--service-file', "$TMP/svc.conf",
	'--on-change', 'exit 3', '--interval', '200ms');
set_url('pw-7');
ok(wait_until(sub { slurp_raw($W->{err}) =~ /on-change for app-db failed .*exit status 3; retrying in 1 s/ }, 20),
	'a failing command is logged with its status and retried') or diag(slurp_raw($W->{err}));
watch_stop($W);
$W = watch_start('--service', "app-db=$APP", '--service-file', "$TMP/svc.conf",
	'--on-change', 'no-such-command-hr20', '--interval', '200ms');
set_url('pw-8');
ok(wait_until(sub { slurp_raw($W->{err}) =~ /exit status 127: command not found/ }, 20),
	'a command not found is said so') or diag(slurp_raw($W->{err}));
watch_stop($W);

done_testing();
