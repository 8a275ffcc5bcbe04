#!/usr/bin/perl
# heroku-pg-resolve watch --pgbouncer FILE --pgbouncer-admin CONNINFO (issue 20, item 1), against
# the real PgBouncer of Debian (test/pgbouncer.sh runs it as this OS user on a private port, in
# front of the TLS-only "remote" cluster, server_tls_sslmode = require):
# - a PgBouncer whose server_tls_sslmode is weaker than require: the watcher does not start (78),
#   says which setting, and writes nothing; an unwritable FILE: 73;
# - FILE: one [databases] line per --service, mode 0640, its group kept, the current password;
# - 8 clients in loops through PgBouncer while test/rotate.sh rotates the password as Heroku does
#   and a signed webhook tells the watcher: at most 1 failed query per client, none 2 s after the
#   webhook was answered;
# - PgBouncer down: the service file and FILE still written, the failure logged and retried with
#   back-off, /healthz degraded and naming the pgbouncer sink; PgBouncer back: caught up;
# - no password in any log.
#
# Runs as the postgres OS user with $HR_TEST_DIR/env.sh sourced (test/run-tests.sh does both).
# Listens on 127.0.0.1, ports HR_WATCH_PORT + 9 (the webhook), + 10 and + 11 (PgBouncers).
use strict;
use warnings;

use Digest::SHA qw(hmac_sha256);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Socket::INET;
use IPC::Run qw(run start);
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time sleep);
use URI::Escape qw(uri_unescape);
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use HrTest;

need_env(qw(HR_TEST_DIR HEROKU_MOCK_URL HR_API_KEY_FILE HR_MOCKCTL HR_REMOTE_PORT));
plan(skip_all => 'pgbouncer is not installed (test/install-deps.sh installs it)')
  unless -x '/usr/sbin/pgbouncer';

my $TMPBASE = $ENV{TESTDIR} || "$ENV{HR_TEST_DIR}/tap";
mkdir $TMPBASE unless -d $TMPBASE;
my $TMP = tempdir('watchpgb_XXXXXX', DIR => $TMPBASE, CLEANUP => 1);
my $BASE = $ENV{HR_WATCH_PORT} || 25390;
my ($PORT, $PGB_PORT, $WEAK_PORT) = ($BASE + 9, $BASE + 10, $BASE + 11);
my $CLI = pg_resolve_cli();
my $PGB_SH = "$FindBin::Bin/../pgbouncer.sh";
my $APP = 'myapp';

my $SECRET = webhook_secret("$TMP/secret");

# The client loop (bench/pgloop.c), built here.
my $LOOP = "$TMP/pgloop";
my $incdir = `pg_config --includedir`;
chomp $incdir;
run([ 'cc', '-O2', "-I$incdir", '-o', $LOOP, "$FindBin::Bin/../../bench/pgloop.c", '-lpq' ])
  or die "could not build pgloop\n";

# pgbouncer.sh start|stop with its own directory and port; $sslmode for server_tls_sslmode.
# Whatever happens, no PgBouncer of this test outlives it.
my %PGB_PIDS;
END { kill 'TERM', grep { $_ } values %PGB_PIDS; }
sub pgbouncer
{
	my ($what, $dir, $port, $sslmode) = @_;
	local %ENV = %ENV;
	@ENV{qw(HR_PGB_DIR HR_PGB_PORT HR_PGB_SSLMODE)} = ($dir, $port, $sslmode // 'require');
	my $out = '';
	run([ 'bash', $PGB_SH, $what ], '<', \undef, '>&', \$out) or die "pgbouncer.sh $what: $out\n";
	$PGB_PIDS{$dir} = $what eq 'start' ? (slurp_raw("$dir/pgbouncer.pid") // '') =~ s/\s+//gr : undef;
	return;
}
my $PGB = "$TMP/pgb";
my $FILE = "$PGB/databases.ini";
my $ADMIN = "host=$PGB port=$PGB_PORT dbname=pgbouncer user=pgbadmin passfile=$PGB/admin.pgpass";
my $CLIENT = "host=127.0.0.1 port=$PGB_PORT user=client passfile=$PGB/client.pgpass dbname=$APP connect_timeout=5";

# The watcher with these extra arguments; its handle.  None outlives the test.
my @WATCHERS;
END { $_->kill_kill for grep { $_->pumpable } @WATCHERS; }
sub watcher
{
	my ($err, @args) = @_;
	local %ENV = %ENV;
	delete @ENV{qw(HEROKU_API_KEY PGSERVICEFILE)};
	$ENV{HEROKU_API_URL} = $ENV{HEROKU_MOCK_URL};
	push @WATCHERS, start([ $CLI, 'watch', '--api-key-file', $ENV{HR_API_KEY_FILE}, '--service', "$APP=$APP",
			'--service-file', "$TMP/pg_service.conf", @args ],
		'<', \undef, '>', "$TMP/watch.out", '2>', $err);
	return $WATCHERS[-1];
}

# An app's current password (default the app's), from the test env's state (as the mock
# serves it).
sub current_password
{
	my ($app) = @_;
	my $state = decode_json(slurp_raw("$ENV{HR_TEST_DIR}/db-state.json"));
	my ($pw) = $state->{ $app // $APP }{url} =~ m{^postgres://[^:]+:([^@]+)@};
	return uri_unescape($pw);
}

# A signed api:release webhook for the app; the status and the time the answer came.
my $NEV = 0;
sub deliver
{
	my $n = ++$NEV;
	my $body = encode_json({ action => 'create', resource => 'release',
			id => sprintf('b6a68e77-8c13-41c8-b30c-%012d', $n),
			data => { app => { id => $ENV{HR_MYAPP_ID}, name => $APP }, status => 'succeeded',
				version => 100 + $n } });
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $PORT, Timeout => 20)
	  or die "connect: $!\n";
	print $s "POST /webhooks/heroku HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
	  . "Content-Type: application/json\r\n"
	  . 'Heroku-Webhook-Hmac-SHA256: ' . encode_base64(hmac_sha256($body, $SECRET), '') . "\r\n"
	  . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
	local $/;
	my $answer = <$s> // '';
	my $at = time();
	close $s;
	my ($status) = $answer =~ m{^HTTP/1\.[01] (\d{3})};
	return ($status // 'none', $at);
}

sub rotate
{
	my $out = '';
	run([ 'bash', "$FindBin::Bin/../rotate.sh", $APP ], '<', \undef, '>&', \$out) or die "rotate: $out\n";
	return;
}

sub healthz
{
	my $r = HTTP::Tiny->new(timeout => 10)->get("http://127.0.0.1:$PORT/healthz");
	return $r->{success} ? decode_json($r->{content}) : {};
}

my @logs;

# ---- a PgBouncer that would talk to the server without TLS: no start
{
	my $weak = "$TMP/pgbweak";
	pgbouncer('start', $weak, $WEAK_PORT, 'prefer');
	my $err = "$TMP/weak.err";
	push @logs, $err;
	my $h = watcher($err, '--interval', '1min', '--pgbouncer', "$weak/absent.ini", '--pgbouncer-admin',
		"host=$weak port=$WEAK_PORT dbname=pgbouncer user=pgbadmin passfile=$weak/admin.pgpass");
	$h->finish;
	is($h->result(0), 78, 'server_tls_sslmode = prefer: exit 78');
	like(slurp_raw($err) // '', qr/server_tls_sslmode is "prefer", weaker than require/,
		'the message names server_tls_sslmode and its value');
	ok(!-e "$weak/absent.ini" && !-e "$TMP/pg_service.conf", 'and nothing was written');
	pgbouncer('stop', $weak, $WEAK_PORT);
}

# ---- an unwritable FILE: 73 at start
{
	my $err = "$TMP/unwritable.err";
	push @logs, $err;
	my $h = watcher($err, '--interval', '1min', '--pgbouncer', "$TMP/no/such/dir/db.ini");
	$h->finish;
	is($h->result(0), 73, 'a --pgbouncer FILE in a missing directory: exit 73');
	like(slurp_raw($err) // '', qr/--pgbouncer: .*does not exist/, 'with a message that says why');
}

# ---- the file, and a rotation under 8 clients
pgbouncer('start', $PGB, $PGB_PORT);
# a group an operator gave the file (one of ours other than the primary, if any)
my ($gid0, @groups) = split ' ', $);
my ($group) = (grep({ $_ != $gid0 } @groups), $gid0);
chown(-1, $group, $FILE) or die "chgrp $FILE: $!\n";
chmod(0600, $FILE) or die "chmod $FILE: $!\n";    # the watcher makes it 0640
my $err = "$TMP/watch.err";
push @logs, $err;
# quirky-app's password has a quote, a backslash, a space, '#', '%', '"' and a non-ASCII letter
my $h = watcher($err, '--interval', '0', '--listen', "127.0.0.1:$PORT", '--webhook-secret-file',
	"$TMP/secret", '--service', 'quirky=quirky-app', '--pgbouncer', $FILE, '--pgbouncer-admin', $ADMIN);
ok(wait_until(sub { (slurp_raw($err) // '') =~ /SHOW DATABASES agrees/ || !$h->pumpable }, 30)
	  && $h->pumpable, 'the watcher started and PgBouncer took the file')
  or diag(slurp_raw($err) // '');

my @st = stat($FILE);
is(sprintf('%04o', $st[2] & 07777), '0640', 'FILE is mode 0640');
is($st[5], $group, 'FILE kept the group it was given');
my $pw = current_password();
(my $qpw = $pw) =~ s/'/''/g;
(my $quirky = current_password('quirky-app')) =~ s/'/''/g;
is(slurp_raw($FILE),
	"; written by heroku-pg-resolve watch --pgbouncer: do not edit\n"
	  . "$APP = host='127.0.0.1' port='$ENV{HR_REMOTE_PORT}' dbname='appdb' user='app_user' password='$qpw'\n"
	  . "quirky = host='127.0.0.1' port='$ENV{HR_REMOTE_PORT}' dbname='appdb' user='quirky_user' password='$quirky'\n",
	'FILE holds one [databases] line per service with the current credentials, single-quoted');
my $q = '';
run([ $LOOP, $CLIENT =~ s/dbname=\S+/dbname=quirky/r, 50, 0.2 ], '<', \undef, '>', \$q);
like($q, qr/^\S+ ok$/m, 'PgBouncer logs in with the quirky password as the file quotes it');

my @clients = map {
	start([ $LOOP, $CLIENT, 50, 10 ], '<', \undef, '>', "$TMP/client$_.out", '2>', '/dev/null')
} 1 .. 8;
sleep 2.5;
rotate();
my ($status, $answered) = deliver();
is($status, '200', 'the webhook after the rotation: 200');
$_->finish for @clients;

my ($worst, $late, $short) = (0, 0, 0);
for my $i (1 .. 8)
{
	my @q = map { [ split ' ' ] } split /\n/, slurp_raw("$TMP/client$i.out") // '';
	my @fail = grep { $_->[1] eq 'fail' } @q;
	$worst = @fail if @fail > $worst;
	$late += grep { $_->[0] > $answered + 2 } @fail;
	$short++ if (grep { $_->[1] eq 'ok' && $_->[0] > $answered + 2 } @q) < 10;
}
cmp_ok($worst, '<=', 1, 'at most 1 failed query per client through the rotation');
note("the most failed queries of one client: $worst");
is($late, 0, 'no failed query 2 s after the webhook was answered');
is($short, 0, 'every client kept querying through PgBouncer after it');
isnt(current_password(), $pw, 'the password was rotated');
like(slurp_raw($FILE) // '', qr/password='\Q${\ do { (my $x = current_password()) =~ s!'!''!g; $x }}\E'/,
	'FILE holds the new password');
is((stat($FILE))[5], $group, 'FILE still has its group after the rewrite');
like(slurp_raw($err) // '', qr/pgbouncer: wrote \Q$FILE\E, RELOAD, SHOW DATABASES agrees, KILL and RESUME of "$APP";/,
	'the write, RELOAD, KILL and RESUME of the database and the check are logged');

# ---- PgBouncer down: the other sink still written, retried with back-off, /healthz says so
pgbouncer('stop', $PGB, $PGB_PORT);
rotate();
($status) = deliver();
is($status, '200', 'PgBouncer down: the webhook is still applied (200)');
my $newpw = current_password();
ok(wait_until(sub { index(slurp_raw("$TMP/pg_service.conf") // '', "\npassword=$newpw\n") >= 0 }, 5),
	'the other sink, the service file, was written with the new password');
ok(wait_until(sub { (slurp_raw($err) // '') =~ /pgbouncer: PgBouncer's admin console .* is unreachable.*retrying in 2 s/ }, 10),
	'the failure is logged and retried with back-off (1 s, then 2 s)');
my $hz = healthz();
is($hz->{status}, 'degraded', '/healthz: degraded');
ok(!$hz->{sinks}{pgbouncer}{ok} && ($hz->{sinks}{pgbouncer}{error} // '') =~ /admin console/,
	'/healthz names the pgbouncer sink and why it fails')
  or diag(encode_json($hz));
(my $qnew = $newpw) =~ s/'/''/g;
ok(index(slurp_raw($FILE) // '', "password='$qnew'") >= 0, 'FILE was written all the same');
pgbouncer('start', $PGB, $PGB_PORT);
ok(wait_until(sub { healthz()->{sinks}{pgbouncer}{ok} }, 70), 'PgBouncer back: the sink caught up');
my $ok = '';
run([ $LOOP, $CLIENT, 50, 0.2 ], '<', \undef, '>', \$ok);
like($ok, qr/ ok$/m, 'and clients get through with the new password');

$h->signal('TERM');
$h->finish;
is($h->result(0), 0, 'the watcher stopped cleanly');
pgbouncer('stop', $PGB, $PGB_PORT);

# ---- no password in any log
my @secrets = grep { length } split /\n/, slurp_raw("$ENV{HR_TEST_DIR}/secrets.history") // '';
push @secrets, $pw, $newpw, current_password('quirky-app');
my $leaks = 0;
for my $f (@logs, "$PGB/pgbouncer.log", "$TMP/pgbweak/pgbouncer.log", map { "$TMP/client$_.out" } 1 .. 8)
{
	my $text = slurp_raw($f) // next;
	for my $s (@secrets)
	{
		$leaks++, diag("a password in $f") if index($text, $s) >= 0;
	}
}
is($leaks, 0, 'no password in the watcher\'s, PgBouncer\'s or the clients\' logs');
done_testing();
