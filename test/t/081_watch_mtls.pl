#!/usr/bin/perl
# heroku-pg-resolve watch --service-option NAME:KEY=VALUE (issue 21: mutual TLS in the watcher),
# with real parts: the test env's "mtls" cluster wants a client certificate signed by its own CA
# (clientcert=verify-ca) on top of the password, and the mock's private-app points at it.
# - bad input (a missing file, a key open to others, an unknown KEY, a weaker sslmode, a NAME
#   that is not a --service, a certificate without its key or with another key, --pgbouncer
#   without its admin console): exit 78 naming the file or option, no key material;
# - without the options the service entry cannot connect; with them psql "service=priv"
#   (PGSERVICEFILE) and psql "$PRIV_URL" (from the env file) connect, and again after
#   test/rotate.sh private-app once the feed (--interval 300ms) brought the new password;
# - a client certificate ending in 10 days: a log line naming the service and the file, and the
#   gauge heroku_pg_resolve_client_cert_expiry_seconds between 9 and 11 days, read by
#   python3-prometheus-client's parser; a certificate far from its end: no line;
# - a real PgBouncer (test/pgbouncer.sh) whose global server_tls_* files are not the service's:
#   the watcher refuses (78) naming server_tls_cert_file and writes no line; when the console
#   answers only later, the refusal is logged and still no line is written; a PgBouncer with
#   the same files: the line is written and a client connects through it;
# - no password, token or key material in any log or message.
#
# Runs as the postgres OS user with $HR_TEST_DIR/env.sh sourced (test/run-tests.sh does both).
# Listens on 127.0.0.1, ports HR_WATCH_PORT + 5 (metrics), + 6 and + 7 (PgBouncers).
use strict;
use warnings;

use File::Copy;
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IPC::Run qw(run start);
use JSON::PP;
use Time::HiRes qw(sleep time);
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use HrTest;

need_env(qw(HR_TEST_DIR HEROKU_MOCK_URL HR_API_KEY_FILE HR_MTLS_PORT HR_TEST_CA
	HR_CLIENT_CERT HR_CLIENT_KEY HR_CLIENT_SHORT_CERT HR_CLIENT_SHORT_KEY));

my $TMPBASE = $ENV{TESTDIR} || "$ENV{HR_TEST_DIR}/tap";
mkdir $TMPBASE unless -d $TMPBASE;
my $TMP = tempdir('watchmtls_XXXXXX', DIR => $TMPBASE, CLEANUP => 1);
my $CLI = pg_resolve_cli();
my $BASE = $ENV{HR_WATCH_PORT} || 25390;
my ($MPORT, $PGB_PORT, $PGB2_PORT) = ($BASE + 5, $BASE + 6, $BASE + 7);
my $APP = 'private-app';
my ($cert, $key, $root) = @ENV{qw(HR_CLIENT_CERT HR_CLIENT_KEY HR_TEST_CA)};
my ($short_cert, $short_key) = @ENV{qw(HR_CLIENT_SHORT_CERT HR_CLIENT_SHORT_KEY)};
my @FILES = ('--service-option', "priv:sslcert=$cert", '--service-option', "priv:sslkey=$key",
	'--service-option', "priv:sslrootcert=$root");

# Every password, token and key line seen, only ever compared.
my %secrets;
sub remember_secrets
{
	my $state = decode_json(slurp_raw("$ENV{HR_TEST_DIR}/db-state.json"));
	for my $app (keys %$state)
	{
		$secrets{$1} = 1 if $state->{$app}{url} =~ m{^postgres://[^:/@]*:([^@]*)@};
	}
	$secrets{ slurp_raw($ENV{HR_API_KEY_FILE}) =~ s/\s+//gr } = 1;
	for my $k ($key, $short_key)
	{
		$secrets{$1} = 1 if slurp_raw($k) =~ /^([A-Za-z0-9+\/=]{40,})$/m;
	}
	return;
}
sub has_secret
{
	my ($text) = @_;
	return 1 if $text =~ /PRIVATE KEY/;
	for my $s (keys %secrets)
	{
		return 1 if length($s) >= 8 && index($text, $s) >= 0;
	}
	return 0;
}
remember_secrets();

# The watcher with these arguments; its stderr file and handle.  None outlives the test.
my (@WATCHERS, $NW);
END { $_->kill_kill for grep { $_->pumpable } @WATCHERS; }
sub watch_env
{
	delete @ENV{qw(HEROKU_API_KEY PGSERVICEFILE)};
	$ENV{HEROKU_API_URL} = $ENV{HEROKU_MOCK_URL};
	return;
}
sub watch_start
{
	my ($ready, @args) = @_;
	local %ENV = %ENV;
	watch_env();
	my $err = "$TMP/watch-" . (++$NW) . '.err';
	push @WATCHERS, start([ $CLI, 'watch', '--api-key-file', $ENV{HR_API_KEY_FILE}, '--interval', '300ms', @args ],
		'<', \undef, '>', "$TMP/watch-$NW.out", '2>', $err);
	my $h = $WATCHERS[-1];
	wait_until(sub { (slurp_raw($err) // '') =~ $ready || !$h->pumpable }, 30);
	return ($h, $err);
}
sub watch_stop
{
	my ($h, $err) = @_;
	$h->signal('TERM');
	$h->finish;
	my $log = slurp_raw($err) // '';
	is($h->result(0), 0, "watcher $err stops with exit status 0 on SIGTERM") or diag($log);
	ok(!has_secret($log), "watcher log $err holds no password, token or key") or diag($log);
	return $log;
}

# The watcher is up: its log says so and it still runs.
sub started
{
	my ($h, $err) = @_;
	return (slurp_raw($err) // '') =~ /watching \d+ app/ && $h->pumpable;
}

# One start that must fail: (exit status, stderr).
sub watch_fail
{
	my (@args) = @_;
	local %ENV = %ENV;
	watch_env();
	my ($out, $err) = ('', '');
	run([ $CLI, 'watch', '--api-key-file', $ENV{HR_API_KEY_FILE}, '--interval', '1s', @args ],
		\undef, \$out, \$err, IPC::Run::timeout(30));
	return ($? >> 8, $err);
}

# psql through a service entry, or a URL: (exit status, stdout, stderr).
sub psql
{
	my ($conn, $service_file) = @_;
	local %ENV = %ENV;
	delete @ENV{qw(PGSERVICEFILE PGSSLCERT PGSSLKEY PGSSLROOTCERT PGSSLMODE PGPASSWORD)};
	$ENV{PGSERVICEFILE} = $service_file if $service_file;
	my ($out, $err) = ('', '');
	run([ 'psql', '-X', '-A', '-t', '-d', $conn, '-c', 'SELECT count(*) FROM orders' ],
		'<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(30));
	chomp $out;
	return ($? >> 8, $out, $err);
}

# The env file's PRIV_URL.
sub env_url
{
	my ($file) = @_;
	my ($url) = (slurp_raw($file) // '') =~ /^PRIV_URL='([^']*)'$/m;
	return $url // '';
}

# ------------------------------------------------------------------ bad input
my $open_key = "$TMP/open.key";
copy($key, $open_key) or die "copy: $!";
chmod 0644, $open_key;
my @svc = ('--service', "priv=$APP", '--service-file', "$TMP/bad.conf");
for my $case (
	[ 'a missing file', [ '--service-option', "priv:sslcert=$TMP/nope.crt", '--service-option', "priv:sslkey=$key" ],
		qr/could not read client certificate file "\Q$TMP\E\/nope\.crt"/ ],
	[ 'a key open to others (0644)', [ '--service-option', "priv:sslcert=$cert", '--service-option', "priv:sslkey=$open_key" ],
		qr/private key file "\Q$open_key\E" has group or world access/ ],
	[ 'an unknown KEY', [ '--service-option', 'priv:sslpassword=x' ], qr/unknown KEY "sslpassword"/ ],
	[ 'a weaker sslmode', [ '--service-option', 'priv:sslmode=prefer' ], qr/sslmode "prefer" is weaker/ ],
	[ 'an sslmode below --min-sslmode', [ '--min-sslmode', 'verify-full', '--service-option', 'priv:sslmode=verify-ca' ],
		qr/sslmode "verify-ca" is weaker/ ],
	[ 'a NAME that is not a --service', [ '--service-option', "other:sslrootcert=$root" ],
		qr/"other" is not a --service name/ ],
	[ 'a certificate without its key', [ '--service-option', "priv:sslcert=$cert" ], qr/needs its key \(sslkey\)/ ],
	[ 'a certificate with another key', [ '--service-option', "priv:sslcert=$short_cert", '--service-option', "priv:sslkey=$key" ],
		qr/certificate "\Q$short_cert\E" does not match key "\Q$key\E"/ ],
	[ 'no NAME:KEY=VALUE', [ '--service-option', "sslcert=$cert" ], qr/invalid --service-option/ ],
	[ '--pgbouncer without --pgbouncer-admin', [ @FILES, '--pgbouncer', "$TMP/pgb.ini" ],
		qr/needs --pgbouncer-admin: PgBouncer's TLS files are global \(server_tls_\*\)/ ])
{
	my ($name, $args, $msg) = @$case;
	my ($st, $err) = watch_fail(@svc, @$args);
	is($st, 78, "$name: exit status 78");
	like($err, $msg, "$name: the message names the file or option") or diag($err);
	ok(!has_secret($err), "$name: no key material or password in the message");
}
ok(!-e "$TMP/bad.conf" && !-e "$TMP/pgb.ini", 'bad input wrote no file');

# ------------------------------------------------------- without the options
my ($h, $err) = watch_start(qr/watching \d+ app|error/, '--service', "priv=$APP", '--service-file', "$TMP/plain.conf");
ok(started($h, $err), 'a watcher without --service-option starts');
my ($st, $out, $perr) = psql('service=priv', "$TMP/plain.conf");
isnt($st, 0, 'without the options its service entry cannot connect');
like($perr, qr/requires a valid client certificate/, '... the cluster wants a client certificate');
watch_stop($h, $err);

# ----------------------------------------------------------- with the options
my $SVC = "$TMP/pg_service.conf";
my $ENVF = "$TMP/app.env";
($h, $err) = watch_start(qr/watching \d+ app|error/, '--service', "priv=$APP", '--service', "short=$APP",
	'--service-file', $SVC, '--env-file', $ENVF, @FILES,
	'--service-option', "short:sslcert=$short_cert", '--service-option', "short:sslkey=$short_key",
	'--service-option', "short:sslrootcert=$root", '--service-option', 'short:sslmode=verify-full',
	'--metrics-listen', "127.0.0.1:$MPORT");
ok(started($h, $err), 'the watcher with --service-option starts') or diag(slurp_raw($err));
my $svc_text = slurp_raw($SVC) // '';
my ($priv) = $svc_text =~ /^\[priv\]\n((?:[^\[].*\n)*)/m;
$priv //= '';
like($priv, qr/^sslcert=\Q$cert\E$/m, 'the service entry has sslcert');
like($priv, qr/^sslkey=\Q$key\E$/m, '... sslkey');
like($priv, qr/^sslrootcert=\Q$root\E$/m, '... sslrootcert');
like($priv, qr/^sslmode=verify-ca$/m, '... and sslmode verify-ca (a root certificate is set)');
my $url = env_url($ENVF);
(my $enc_cert = $cert) =~ s{/}{%2F}g;
like($url, qr/[?&]sslcert=\Q$enc_cert\E(&|$)/, 'the env file URL has sslcert, percent-encoded');
like($url, qr/[?&]sslmode=verify-ca(&|$)/, '... and sslmode=verify-ca');
like($url, qr/[?&]sslkey=[^&]*client\.key(&|$)/, '... and sslkey');
like($url, qr/[?&]sslrootcert=[^&]*ca\.crt(&|$)/, '... and sslrootcert');

($st, $out, $perr) = psql('service=priv', $SVC);
is("$st/$out", '0/7', 'psql "service=priv" connects to the mtls cluster') or diag($perr);
($st, $out, $perr) = psql($url);
is("$st/$out", '0/7', 'psql "$PRIV_URL" from the env file connects') or diag($perr);
my ($short) = $svc_text =~ /^\[short\]\n((?:[^\[].*\n)*)/m;
like($short // '', qr/^sslmode=verify-full$/m, 'sslmode=verify-full is kept over a root certificate\'s verify-ca');
($st, $out, $perr) = psql('service=short', $SVC);
is("$st/$out", '0/7', '... and that service (the 10-day certificate) connects too') or diag($perr);

# the expiry: a log line for the 10-day certificate only, and the gauge
my $log = slurp_raw($err) // '';
like($log, qr/service "short": client certificate \Q$short_cert\E expires in (9|10) days/,
	'a log line names the service and the file of the certificate within 30 days');
unlike($log, qr/service "priv": client certificate/, 'none for the certificate far from its end');
my $res = HTTP::Tiny->new(timeout => 10)->get("http://127.0.0.1:$MPORT/metrics");
my ($parsed, $pe) = $res->{success} ? prometheus_samples($res->{content}) : (undef, 'no answer');
$parsed //= {};
is($parsed->{'TYPE heroku_pg_resolve_client_cert_expiry_seconds'}, 'gauge',
	'the real parser reads heroku_pg_resolve_client_cert_expiry_seconds as a gauge') or diag($pe . ($res->{content} // ''));
my $g = $parsed->{'heroku_pg_resolve_client_cert_expiry_seconds{service=short}'} // -1;
ok($g > 9 * 86400 && $g < 11 * 86400, "the 10-day certificate's gauge is between 9 and 11 days ($g s)");
ok(($parsed->{'heroku_pg_resolve_client_cert_expiry_seconds{service=priv}'} // 0) > 30 * 86400,
	'the other certificate is more than 30 days from its end');

# a rotation, seen by the feed
my $old = $url;
my $out_rot = '';
run([ 'bash', "$FindBin::Bin/../rotate.sh", $APP ], '<', \undef, '>&', \$out_rot) or die "rotate: $out_rot\n";
remember_secrets();
ok(wait_until(sub { my $u = env_url($ENVF); $u ne '' && $u ne $old }, 30), 'the rotation reaches the env file');
$url = env_url($ENVF);
like($url, qr/[?&]sslcert=\Q$enc_cert\E(&|$)/, '... which still has the files');
($st, $out, $perr) = psql('service=priv', $SVC);
is("$st/$out", '0/7', 'psql "service=priv" connects after the rotation') or diag($perr);
($st, $out, $perr) = psql($url);
is("$st/$out", '0/7', 'psql "$PRIV_URL" connects after the rotation') or diag($perr);
($st, $out, $perr) = psql($old);
isnt($st, 0, 'the old URL no longer does (the password was rotated)');
watch_stop($h, $err);

# ---------------------------------------------------------------- PgBouncer
SKIP:
{
	skip('pgbouncer is not installed (test/install-deps.sh installs it)', 14) unless -x '/usr/sbin/pgbouncer';
	my %PGB_PIDS;
	my $pgbouncer = sub {
		my ($what, $dir, $port, $extra) = @_;
		local %ENV = %ENV;
		@ENV{qw(HR_PGB_DIR HR_PGB_PORT HR_PGB_SSLMODE HR_PGB_EXTRA)} = ($dir, $port, 'verify-ca', $extra // '');
		my $o = '';
		run([ 'bash', "$FindBin::Bin/../pgbouncer.sh", $what ], '<', \undef, '>&', \$o) or die "pgbouncer.sh $what: $o\n";
		$PGB_PIDS{$dir} = $what eq 'start' ? (slurp_raw("$dir/pgbouncer.pid") // '') =~ s/\s+//gr : undef;
		return;
	};
	my $admin = sub { "host=$_[0] port=$_[1] dbname=pgbouncer user=pgbadmin passfile=$_[0]/admin.pgpass" };

	# a PgBouncer without TLS files: refused at start, no line written
	my $P1 = "$TMP/pgb1";
	$pgbouncer->('start', $P1, $PGB_PORT);
	my ($s, $e) = watch_fail(@svc, @FILES, '--pgbouncer', "$P1/databases.ini",
		'--pgbouncer-admin', $admin->($P1, $PGB_PORT));
	is($s, 78, 'PgBouncer whose server_tls_cert_file is not the service\'s: exit 78');
	like($e, qr/server_tls_cert_file is "", not service "priv"'s sslcert "\Q$cert\E"/,
		'... the message names PgBouncer\'s global server_tls_cert_file') or diag($e);
	like($e, qr/server_tls_ca_file, server_tls_cert_file, server_tls_key_file/, '... and the global server_tls_* settings');
	is(-s "$P1/databases.ini" // 0, 0, '... and no line is written');
	ok(!has_secret($e), '... no key material or password in the message');

	# the console answers only later: the refusal is logged, still no line
	$pgbouncer->('stop', $P1, $PGB_PORT);
	($h, $err) = watch_start(qr/watching \d+ app|error/, @svc, @FILES, '--pgbouncer', "$P1/databases.ini",
		'--pgbouncer-admin', $admin->($P1, $PGB_PORT));
	ok(started($h, $err), 'with the console unreachable at start the watcher starts');
	$pgbouncer->('start', $P1, $PGB_PORT);
	ok(wait_until(sub { (slurp_raw($err) // '') =~ /pgbouncer: PgBouncer's TLS files are global: its server_tls_cert_file/ }, 30),
		'once it answers, the refusal is logged naming server_tls_cert_file') or diag(slurp_raw($err));
	is(-s "$P1/databases.ini" // 0, 0, '... and no line is written');
	watch_stop($h, $err);
	$pgbouncer->('stop', $P1, $PGB_PORT);

	# a PgBouncer with the same files: the line works
	my $P2 = "$TMP/pgb2";
	$pgbouncer->('start', $P2, $PGB2_PORT,
		"server_tls_ca_file = $root\nserver_tls_cert_file = $cert\nserver_tls_key_file = $key\n");
	($h, $err) = watch_start(qr/pgbouncer: wrote|pgbouncer: .*retrying|error/, @svc, @FILES, '--pgbouncer', "$P2/databases.ini",
		'--pgbouncer-admin', $admin->($P2, $PGB2_PORT));
	like(slurp_raw($err) // '', qr/pgbouncer: wrote/, 'a PgBouncer with the same server_tls_* files: the line is written');
	my ($o2, $e2) = ('', '');
	run([ 'psql', '-X', '-A', '-t', '-d', "host=127.0.0.1 port=$PGB2_PORT user=client passfile=$P2/client.pgpass dbname=priv",
		'-c', 'SELECT count(*) FROM orders' ], '<', \undef, '>', \$o2, '2>', \$e2, IPC::Run::timeout(30));
	chomp $o2;
	is($o2, '7', '... and a client reaches the mtls cluster through PgBouncer') or diag($e2);
	watch_stop($h, $err);
	$pgbouncer->('stop', $P2, $PGB2_PORT);
}

done_testing();
