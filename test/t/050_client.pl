#!/usr/bin/perl
# The client side: the heroku-pg-resolve command (every mode, token sources, exit codes, the
# service file) and libheroku_resolver through the example program, built with pkg-config
# from the installed library, across a credential rotation.
#
# Runs as the postgres OS user with $HR_TEST_DIR/env.sh sourced (test/run-tests.sh does both).
# Nothing secret is ever printed: outputs that hold a password are compared with ok(), and
# every text shown in a diagnostic has the secrets masked first.
use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Socket::INET;
use IPC::Run qw(run start pump finish timeout);
use JSON::PP;
use Time::HiRes qw(time);
use Test::More;

my $REPO = abs_path(dirname(__FILE__) . '/../..');

for my $v (qw(HR_TEST_DIR HEROKU_MOCK_URL HEROKU_MOCK_TLS_URL HR_TEST_CA HR_EXPIRED_CA
	HR_API_KEY_FILE HR_READONLY_KEY_FILE HR_NETRC_FILE HR_REMOTE_PORT HR_REMOTE2_PORT
	HR_REMOTE_SOCK HR_REMOTE2_SOCK HR_MOCKCTL HR_ROTATE HR_PYTHON HR_MYAPP_ID))
{
	die "$v is not set: source \$HR_TEST_DIR/env.sh (after test/testenv.sh start)\n"
	  unless $ENV{$v};
}

my $TMPBASE = $ENV{TESTDIR} || "$ENV{HR_TEST_DIR}/tap";
mkdir $TMPBASE unless -d $TMPBASE;
my $TMP = tempdir('client_XXXXXX', DIR => $TMPBASE, CLEANUP => 1);
my $EMPTY_HOME = tempdir(DIR => $TMP);

# ------------------------------------------------------------------ helpers

sub slurp
{
	my ($path) = @_;
	open my $fh, '<:raw', $path or die "cannot read $path: $!\n";
	local $/;
	my $text = <$fh>;
	close $fh;
	return $text;
}

sub spew
{
	my ($path, $text, $mode) = @_;
	open my $fh, '>:raw', $path or die "cannot write $path: $!\n";
	print $fh $text;
	close $fh or die "cannot write $path: $!\n";
	chmod($mode // 0600, $path);
	return;
}

sub first_line
{
	my ($text) = slurp($_[0]) =~ /^\s*([^\r\n]*?)\s*(?:\r?\n|\z)/;
	return $text;
}

sub pct_decode
{
	my ($s) = @_;
	$s =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge;
	return $s;
}

# postgres://user:password@host:port/dbname?query -> hash (decoded), undef if not that shape
sub parse_url
{
	my ($url) = @_;
	return undef
	  unless defined $url
	  && $url =~ m{^postgres(?:ql)?://([^:@/]*)(?::([^@/]*))?@([^/?:]+):(\d+)/([^?]*)(?:\?(.*))?\z}s;
	my %u = (
		user => pct_decode($1),
		password => pct_decode($2 // ''),
		raw_password => $2 // '',
		host => $3,
		port => $4,
		dbname => pct_decode($5));
	for my $kv (split /&/, $6 // '')
	{
		my ($k, $v) = split /=/, $kv, 2;
		$u{ pct_decode($k) } = pct_decode($v // '');
	}
	return \%u;
}

# keyword='value' ... (libpq quoting) -> list of [keyword, value], undef if malformed
sub parse_conninfo
{
	my ($s) = @_;
	my @pairs;
	$s =~ s/\n\z//;
	while ($s =~ /\G\s*([a-z_]+)='((?:[^'\\]|\\.)*)'/gcs)
	{
		my ($k, $v) = ($1, $2);
		$v =~ s/\\(.)/$1/gs;
		push @pairs, [ $k, $v ];
	}
	return undef unless (pos($s) // 0) == length($s) && @pairs;
	return \@pairs;
}

sub pairs_hash { return { map { $_->[0] => $_->[1] } @{ $_[0] } } }

# ---- secrets: known ones are masked in every diagnostic and looked for in every output

my %SECRETS;

sub add_secret
{
	for my $s (@_)
	{
		next unless defined $s && length($s) >= 8;
		$SECRETS{$s} = 1;
		(my $esc = $s) =~ s/(['\\])/\\$1/g;
		$SECRETS{$esc} = 1;
	}
	return;
}

sub mask
{
	my ($text) = @_;
	$text //= '';
	for my $s (sort { length($b) <=> length($a) } keys %SECRETS)
	{
		$text =~ s/\Q$s\E/<secret>/g;
	}
	return $text;
}

sub has_secret
{
	my ($text) = @_;
	return scalar grep { index($text // '', $_) >= 0 } keys %SECRETS;
}

my $TOKEN = first_line($ENV{HR_API_KEY_FILE});
my $RO_TOKEN = first_line($ENV{HR_READONLY_KEY_FILE});
my $BAD_TOKEN = 'HRKU-' . join('', map { sprintf '%02x', int(rand(256)) } 1 .. 24);
add_secret($TOKEN, $RO_TOKEN, $BAD_TOKEN);

# The URLs the mock serves now (rotate.sh keeps db-state.json in step with the mock).
sub current_urls
{
	my $state = JSON::PP->new->utf8->decode(slurp("$ENV{HR_TEST_DIR}/db-state.json"));
	my %urls;
	for my $app (keys %$state)
	{
		my $url = $state->{$app}{url};
		my $u = parse_url($url) or die "db-state.json: unexpected URL shape for $app\n";
		add_secret($url, $u->{password}, $u->{raw_password});
		$urls{$app} = $url;
	}
	return \%urls;
}
my $URLS = current_urls();

# mock-data.json holds other secrets (REDIS_URL's password): mask them too.
{
	my $data = JSON::PP->new->utf8->decode(slurp("$ENV{HR_TEST_DIR}/mock-data.json"));
	for my $app (values %{ $data->{apps} })
	{
		for my $v (grep { defined } values %{ $app->{config_vars} })
		{
			add_secret($v);
			add_secret($1) if $v =~ m{://[^:/@]*:([^@]*)@};
		}
	}
}

sub token_file
{
	my ($token) = @_;
	my $path = "$TMP/key-" . int(rand(1e9));
	spew($path, "$token\n");
	return $path;
}
my $BAD_KEY_FILE = token_file($BAD_TOKEN);

# A TCP port on 127.0.0.1 where nothing listens.
sub closed_port
{
	my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1)
	  or die "cannot bind: $!\n";
	my $port = $s->sockport;
	close $s;
	return $port;
}

# ---- running things

my $CLI;
{
	for my $dir (split /:/, $ENV{PATH})
	{
		if (-x "$dir/heroku-pg-resolve")
		{
			$CLI = "$dir/heroku-pg-resolve";
			last;
		}
	}
	$CLI = $ENV{HR_PG_RESOLVE} if $ENV{HR_PG_RESOLVE};
	$CLI //= "$REPO/client/heroku-pg-resolve";
	die "heroku-pg-resolve not found on PATH nor in $REPO/client (make install)\n" unless -x $CLI;
}

my %SEEN_CODES;    # every exit status the command itself returned
my $ALL_OUTPUT = '';    # every stderr (and non-secret stdout), checked for secrets at the end

# Run the command: args => [...], env => {NAME => value or undef to unset}, no_key => 1 to
# give no --api-key-file, secret_out => 1 when stdout holds a password, child => 1 when the
# exit status is an --exec child's.
sub cli
{
	my (%o) = @_;
	local %ENV = %ENV;
	delete @ENV{qw(HEROKU_API_KEY PGSERVICEFILE HEROKU_API_URL)};
	my %env = (HOME => $EMPTY_HOME, HEROKU_API_URL => $ENV{HEROKU_MOCK_URL}, %{ $o{env} // {} });
	while (my ($k, $v) = each %env)
	{
		if (defined $v) { $ENV{$k} = $v }
		else { delete $ENV{$k} }
	}
	my @args = @{ $o{args} };
	unshift @args, '--api-key-file', $ENV{HR_API_KEY_FILE} unless $o{no_key};
	my ($in, $out, $err) = ($o{stdin} // '', '', '');
	my $t0 = time;
	run([ $CLI, @args ], \$in, \$out, \$err, timeout($o{timeout} // 60));
	my $rc = ($? & 127) ? 128 + ($? & 127) : $? >> 8;
	$SEEN_CODES{$rc} = 1 unless $o{child};
	$ALL_OUTPUT .= $err;
	$ALL_OUTPUT .= $out unless $o{secret_out};
	return { rc => $rc, out => $out, err => $err, secs => time - $t0 };
}

# A failed run: exit status, one "error:" line then one "hint:" line, the reason, no secret.
sub is_error
{
	my ($r, $code, $re, $name) = @_;
	is($r->{rc}, $code, "$name: exit status $code");
	my $err = mask($r->{err});
	my @lines = split /\n/, $err;
	ok(@lines == 2 && $lines[0] =~ /^heroku-pg-resolve: error: \S/ && $lines[1] =~ /^hint: \S/,
		"$name: one error line and one hint line on stderr")
	  or diag($err);
	like($err, $re, "$name: says why") if $re;
	ok(!has_secret($r->{out} . $r->{err}) && $r->{out} eq '', "$name: nothing on stdout, no secret");
	return;
}

sub mockctl
{
	my @args = @_;
	my ($out, $err) = ('', '');
	run([ $ENV{HR_PYTHON}, $ENV{HR_MOCKCTL}, @args ], \undef, \$out, \$err, timeout(60))
	  or die "mockctl @args failed: " . mask($err) . "\n";
	chomp $out;
	return $out;
}

sub config_var_requests { return mockctl('counts', '--path', '/config-vars') }

# A fault whose body holds a secret: POSTed directly, so that it never is on a command line.
sub stale_body_fault
{
	my ($body, $count) = @_;
	my $res = HTTP::Tiny->new(timeout => 30)->post(
		"$ENV{HEROKU_MOCK_URL}/__mock/faults",
		{
			headers => { 'Content-Type' => 'application/json' },
			content => encode_json(
				{ kind => 'body', body => $body, path => '/config-vars$', count => $count })
		});
	die "could not add a body fault: $res->{status}\n" unless $res->{success};
	return;
}

sub rotate
{
	my @args = @_;
	my ($out, $err) = ('', '');
	run([ 'bash', $ENV{HR_ROTATE}, @args ], \undef, \$out, \$err, timeout(120))
	  or die "rotate.sh @args failed: " . mask($err) . "\n";
	$URLS = current_urls();
	return;
}

# psql as postgres over a remote's socket (peer authentication): the truth to compare with.
sub remote_sql
{
	my ($port, $sql) = @_;
	my $sock = $port == $ENV{HR_REMOTE_PORT} ? $ENV{HR_REMOTE_SOCK} : $ENV{HR_REMOTE2_SOCK};
	my ($out, $err) = ('', '');
	run([ 'psql', '-X', '-At', '-h', $sock, '-p', $port, '-d', 'appdb', '-c', $sql ],
		\undef, \$out, \$err, timeout(60))
	  or die "psql on port $port failed: $err\n";
	chomp $out;
	return $out;
}

my $WHO_SQL = 'SELECT current_user, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), '
  . 'inet_server_port(), (SELECT count(*) FROM orders)';

# Connect with a URL the way libpq reads it, without the URL on any command line: psql starts
# on the local cluster and \connect's to the URL given on stdin.
sub psql_url
{
	my ($url) = @_;
	my $in = "\\connect '$url'\n$WHO_SQL;\n";
	my ($out, $err) = ('', '');
	run([ 'psql', '-X', '-At', '-q', '-v', 'ON_ERROR_STOP=1', '-d', 'postgres' ],
		\$in, \$out, \$err, timeout(60));
	chomp $out;
	return ($out, mask($err));
}

# psql "service=NAME" with only the service file to go by.
sub psql_service
{
	my ($file, $name) = @_;
	local %ENV = %ENV;
	delete @ENV{qw(PGHOST PGPORT PGUSER PGDATABASE PGSERVICE)};
	$ENV{PGSERVICEFILE} = $file;
	my ($out, $err) = ('', '');
	run([ 'psql', '-X', '-At', '-d', "service=$name", '-c', $WHO_SQL ],
		\undef, \$out, \$err, timeout(60));
	chomp $out;
	return ($out, mask($err));
}

# What a service section should hold for a conninfo output: keyword=value lines, in order.
sub block_of
{
	my ($pairs) = @_;
	return join '', map { "$_->[0]=$_->[1]\n" } @$pairs;
}

sub file_mode { return (stat($_[0]))[2] & 07777 }

# A clean mock: no fault left by an earlier test file, a full rate-limit pool.
mockctl('clear-faults');
mockctl('rate-limit', '4500');

# ------------------------------------------------------------------ version, help, man page

my ($control_version) = slurp("$REPO/heroku_resolver.control") =~ /^default_version\s*=\s*'([^']+)'/m;
ok(defined $control_version, 'the control file has a default_version');
for my $opt ('--version', '-V')
{
	my $r = cli(args => [$opt], no_key => 1);
	is($r->{rc}, 0, "$opt: exit status 0");
	my ($v) = $r->{out} =~ /^heroku-pg-resolve\b.*\s(\S+)\n\z/;
	is($v, $control_version, "$opt prints the control file's default_version");
}

my $help = cli(args => ['--help'], no_key => 1);
is($help->{rc}, 0, '--help: exit status 0');
like($help->{out}, qr/--service NAME.*--exec.*--api-key-file.*--timeout.*--min-sslmode/s,
	'--help describes the modes and options');
my ($help_codes_text) = $help->{out} =~ /^Exit status:\n(.*)\z/ms;
my %HELP_CODES = map { $_ => 1 } ($help_codes_text // '') =~ /^\s+(\d+)\s/mg;
ok(keys(%HELP_CODES) >= 10, '--help lists the exit codes');

my ($mandir) = qx(pg_config --mandir 2>/dev/null) =~ /(\S+)/;
my $man = "$REPO/doc/heroku-pg-resolve.1";
ok(defined $mandir && -f "$mandir/man1/heroku-pg-resolve.1"
	  && slurp("$mandir/man1/heroku-pg-resolve.1") eq slurp($man),
	'the man page is installed under pg_config --mandir');
my ($man_exit) = slurp($man) =~ /^\.SH EXIT STATUS\n(.*?)^\.SH /ms;
my %MAN_CODES = map { $_ => 1 } ($man_exit // '') =~ /^\.B (\d+)$/mg;
is(join(',', sort { $a <=> $b } keys %MAN_CODES), join(',', sort { $a <=> $b } keys %HELP_CODES),
	'the man page and --help list the same exit codes');

# ------------------------------------------------------------------ conninfo and URL modes

my $my = parse_url($URLS->{myapp});

my $r = cli(args => ['myapp'], secret_out => 1);
is($r->{rc}, 0, 'conninfo mode: exit status 0');
my $ci = parse_conninfo($r->{out});
ok($ci, 'conninfo mode prints one keyword=value conninfo line');
my $cih = pairs_hash($ci // []);
is(join(' ', map { $_->[0] } @{ $ci // [] }), 'host port dbname user password sslmode',
	'conninfo: the expected keywords, in order');
ok(($cih->{host} // '') eq $my->{host} && ($cih->{port} // '') eq $my->{port}
	  && ($cih->{dbname} // '') eq $my->{dbname} && ($cih->{user} // '') eq $my->{user},
	'conninfo: host, port, dbname and user are those of the mock\'s DATABASE_URL');
ok(($cih->{password} // '') eq $my->{password}, 'conninfo: the password is the mock\'s');
is($cih->{sslmode}, 'require', 'conninfo: sslmode=require added');
my $MYAPP_PAIRS = $ci;

my $rv = cli(args => [ 'myapp', 'DATABASE_URL' ], secret_out => 1);
ok($rv->{rc} == 0 && $rv->{out} eq $r->{out}, 'CONFIG_VAR defaults to DATABASE_URL');

$r = cli(args => [ '--url', 'myapp' ], secret_out => 1);
is($r->{rc}, 0, '--url: exit status 0');
my $u = parse_url($r->{out} =~ s/\n\z//r);
ok($u && $r->{out} =~ /\n\z/ && $r->{out} !~ /\n./, '--url prints one postgres:// URL line');
ok($u && $u->{password} eq $my->{password} && $u->{user} eq $my->{user}
	  && $u->{host} eq $my->{host} && $u->{port} eq $my->{port} && $u->{dbname} eq $my->{dbname},
	'--url: the URL names the mock\'s user, password, host, port and database');
is($u && $u->{sslmode}, 'require', '--url: ?sslmode=require added');
my ($who, $why) = psql_url($r->{out} =~ s/\n\z//r);
my $remote_rows = remote_sql($ENV{HR_REMOTE_PORT}, 'SELECT count(*) FROM orders');
is($who, "$my->{user}|t|$ENV{HR_REMOTE_PORT}|$remote_rows",
	'--url: libpq connects with the URL, over TLS, to the remote') or diag($why);

# quirky-app: a password with quotes, a backslash, a space, @:/%#? and non-ASCII
my $q = parse_url($URLS->{'quirky-app'});
$r = cli(args => ['quirky-app'], secret_out => 1);
my $QUIRKY_PAIRS = parse_conninfo($r->{out}) // [];
my $qci = pairs_hash($QUIRKY_PAIRS);
ok($r->{rc} == 0 && ($qci->{password} // '') eq $q->{password} && $qci->{user} eq $q->{user},
	'quirky-app: the conninfo carries the awkward password exactly');
$r = cli(args => [ '--url', 'quirky-app' ], secret_out => 1);
my $qu = parse_url($r->{out} =~ s/\n\z//r);
ok($r->{rc} == 0 && $qu && $qu->{password} eq $q->{password}, 'quirky-app: so does the URL');
($who, $why) = psql_url($r->{out} =~ s/\n\z//r);
like($who, qr/^\Q$q->{user}\E\|t\|$ENV{HR_REMOTE_PORT}\|\d+$/, 'quirky-app: libpq connects with the URL')
  or diag($why);

# other config vars, other apps, an app id
$r = cli(args => [ 'myapp', 'HEROKU_POSTGRESQL_VIOLET_URL' ], secret_out => 1);
ok($r->{rc} == 0 && $r->{out} eq $rv->{out}, 'HEROKU_POSTGRESQL_VIOLET_URL gives the same database');
$r = cli(args => [ 'myapp', 'HEROKU_POSTGRESQL_VIOLET' ], secret_out => 1);
ok($r->{rc} == 0 && $r->{out} eq $rv->{out}, 'the attachment name HEROKU_POSTGRESQL_VIOLET finds its _URL');
$r = cli(args => [ $ENV{HR_MYAPP_ID} ], secret_out => 1);
ok($r->{rc} == 0 && $r->{out} eq $rv->{out}, 'an app id works like the app name');
$r = cli(args => [ '--url', 'other-app' ], secret_out => 1);
my $o = parse_url($URLS->{'other-app'});
my $ou = parse_url($r->{out} =~ s/\n\z//r);
ok($r->{rc} == 0 && $ou && $ou->{port} eq $ENV{HR_REMOTE2_PORT} && $ou->{password} eq $o->{password},
	'other-app resolves to remote2');
($who, $why) = psql_url($r->{out} =~ s/\n\z//r);
is($who, "$o->{user}|t|$ENV{HR_REMOTE2_PORT}|" . remote_sql($ENV{HR_REMOTE2_PORT}, 'SELECT count(*) FROM orders'),
	'other-app: libpq connects to remote2') or diag($why);

# --min-sslmode
$r = cli(args => [ '--min-sslmode', 'verify-full', 'myapp' ], secret_out => 1);
is($r->{rc} == 0 && pairs_hash(parse_conninfo($r->{out}) // [])->{sslmode}, 'verify-full',
	'--min-sslmode verify-full raises sslmode');
$r = cli(args => [ '--url', '--min-sslmode', 'verify-ca', 'myapp' ], secret_out => 1);
like(mask($r->{out}), qr/\?sslmode=verify-ca\n\z/, '--min-sslmode applies to the URL too');
is_error(cli(args => [ '--min-sslmode', 'disable', 'myapp' ]), 78, qr/min-sslmode/, '--min-sslmode disable');

# --timeout: bare milliseconds, ms, s
for my $t ('3000', '3000ms', '3s')
{
	mockctl('fault', 'delay', '--seconds', '1', '--path', '/config-vars$', '--count', '1');
	$r = cli(args => [ '--timeout', $t, 'myapp' ], secret_out => 1);
	ok($r->{rc} == 0 && $r->{out} eq $rv->{out}, "--timeout $t waits for a 1 s answer");
}
mockctl('clear-faults');
mockctl('fault', 'delay', '--seconds', '3', '--path', '/config-vars$', '--count', '1');
$r = cli(args => [ '--timeout', '500ms', 'myapp' ]);
is_error($r, 69, qr/timed out after 500 ms.*\nhint: .*--timeout/s, '--timeout 500ms against a 3 s answer');
ok($r->{secs} < 2.5, '--timeout 500ms gives up in time');
mockctl('clear-faults');
for my $t ('0', 'abc', '5m', '-1', '')
{
	is_error(cli(args => [ '--timeout', $t, 'myapp' ]), 78, qr/--timeout/, "--timeout '$t'");
}

# ------------------------------------------------------------------ token sources and order

my $netrc_home = tempdir(DIR => $TMP);
spew("$netrc_home/.netrc", slurp($ENV{HR_NETRC_FILE}), 0600);
my $bad_netrc = "$TMP/bad.netrc";
spew($bad_netrc, "machine 127.0.0.1 login test\@example.com password $BAD_TOKEN\n");
my $other_host_netrc = "$TMP/other-host.netrc";
spew($other_host_netrc, "machine api.heroku.com login test\@example.com password $TOKEN\n");
my $both_netrc = "$TMP/both.netrc";
spew($both_netrc, "machine api.heroku.com login x\@example.com password $BAD_TOKEN\n"
	  . "machine 127.0.0.1 login test\@example.com password $TOKEN\n");

my @token_cases = (
	[ 'api key file alone', [ '--api-key-file', $ENV{HR_API_KEY_FILE} ], {}, 0 ],
	[ 'HEROKU_API_KEY alone', [], { HEROKU_API_KEY => $TOKEN }, 0 ],
	[ '~/.netrc alone', [], { HOME => $netrc_home }, 0 ],
	[ '--netrc-file alone', [ '--netrc-file', $ENV{HR_NETRC_FILE} ], {}, 0 ],
	[ 'netrc entry chosen by the API host', [ '--netrc-file', $both_netrc ], {}, 0 ],
	[ 'key file over HEROKU_API_KEY (good file)', [ '--api-key-file', $ENV{HR_API_KEY_FILE} ],
		{ HEROKU_API_KEY => $BAD_TOKEN }, 0 ],
	[ 'key file over HEROKU_API_KEY (bad file)', [ '--api-key-file', $BAD_KEY_FILE ],
		{ HEROKU_API_KEY => $TOKEN }, 77 ],
	[ 'key file over HEROKU_API_KEY (read-only file)', [ '--api-key-file', $ENV{HR_READONLY_KEY_FILE} ],
		{ HEROKU_API_KEY => $TOKEN }, 77 ],
	[ 'HEROKU_API_KEY over netrc (good env)', [ '--netrc-file', $bad_netrc ],
		{ HEROKU_API_KEY => $TOKEN }, 0 ],
	[ 'HEROKU_API_KEY over netrc (bad env)', [], { HEROKU_API_KEY => $BAD_TOKEN, HOME => $netrc_home }, 77 ],
	[ 'key file over netrc (bad file)', [ '--api-key-file', $BAD_KEY_FILE ], { HOME => $netrc_home }, 77 ],
);
for my $c (@token_cases)
{
	my ($name, $args, $env, $want) = @$c;
	$r = cli(args => [ @$args, 'myapp' ], env => $env, no_key => 1, secret_out => 1);
	if ($want == 0)
	{
		ok($r->{rc} == 0 && $r->{out} eq $rv->{out}, "token: $name resolves")
		  or diag("exit $r->{rc}: " . mask($r->{err}));
	}
	else
	{
		is_error($r, $want, qr/rejected the token|permission denied/, "token: $name");
	}
}
is_error(cli(args => ['myapp'], no_key => 1), 77, qr/no Heroku API token.*\nhint: .*machine 127\.0\.0\.1/s,
	'no token anywhere');
is_error(cli(args => [ '--netrc-file', $other_host_netrc, 'myapp' ], no_key => 1), 77,
	qr/no Heroku API token/, 'a netrc entry for another host is not used');
is_error(cli(args => [ '--api-key-file', "$TMP/no-such-key", 'myapp' ], no_key => 1), 78,
	qr/no-such-key/, 'missing --api-key-file');
is_error(cli(args => [ '--netrc-file', "$TMP/no-such-netrc", 'myapp' ], no_key => 1), 78,
	qr/no-such-netrc/, 'missing --netrc-file');

# ------------------------------------------------------------------ exit codes

# usage
is_error(cli(args => []), 64, qr/no app/, 'no argument');
is_error(cli(args => [ '--no-such-option', 'myapp' ]), 64, qr/unknown option "--no-such-option"/, 'unknown option');
is_error(cli(args => [ 'myapp', 'DATABASE_URL', 'extra' ]), 64, qr/too many/, 'extra argument');
is_error(cli(args => [ 'myapp', '--timeout' ]), 64, qr/needs a value/, 'option without its value');
is_error(cli(args => [ '--url', '--exec', 'myapp', '--', 'true' ]), 64, qr/exclude/, '--url with --exec');
is_error(cli(args => [ '--url', '--service', 's', 'myapp' ]), 64, qr/exclude/, '--url with --service');
is_error(cli(args => [ '--service-file', "$TMP/x.conf", 'myapp' ]), 64, qr/--service-file needs --service/,
	'--service-file without --service');
is_error(cli(args => [ '--exec', 'myapp' ]), 64, qr/--exec needs/, '--exec without a command');
is_error(cli(args => ['My_App']), 64, qr/invalid Heroku app name/, 'invalid app name');
is_error(cli(args => [ 'myapp', 'BAD-VAR' ]), 64, qr/invalid config var name/, 'invalid config var name');
is_error(cli(args => [ '--service', 'a]b', 'myapp' ]), 64, qr/invalid service name/, 'invalid service name');

# configuration
is_error(cli(args => [ '--api-url', 'ftp://127.0.0.1/', 'myapp' ]), 78, qr/must use https/, '--api-url ftp://');
is_error(cli(args => [ '--api-url', 'http://example.com', 'myapp' ]), 78, qr/must use https/,
	'--api-url plain http to a remote host');
is_error(cli(args => ['myapp'], env => { HEROKU_API_URL => 'not a url' }), 78, qr/invalid Heroku API URL/,
	'invalid HEROKU_API_URL');
is_error(cli(args => [ '--ca-file', "$TMP/no-such-ca.pem", 'myapp' ]), 78, qr/CA file/, 'missing --ca-file');

# data and not found
is_error(cli(args => [ 'myapp', 'REDIS_URL' ]), 65, qr/not a postgres/, 'a config var that is not a postgres URL');
is_error(cli(args => [ 'myapp', 'NULL_VAR' ]), 66, qr/is null/, 'a null config var');
is_error(cli(args => [ 'myapp', 'NO_SUCH_VAR' ]), 66, qr/not set/, 'an absent config var');
is_error(cli(args => ['no-such-app']), 66, qr/not found/, 'an unknown app');

# API answers, from the mock's faults
my @faults = (
	[ 'HTTP 401', [ 'status', '--status', '401' ], 77, qr/rejected the token/ ],
	[ 'HTTP 402', [ 'status', '--status', '402' ], 77, qr/permission denied/ ],
	[ 'HTTP 403', [ 'status', '--status', '403' ], 77, qr/permission denied/ ],
	[ 'HTTP 404', [ 'status', '--status', '404' ], 66, qr/not found/ ],
	[ 'HTTP 429', [ 'status', '--status', '429', '--retry-after', '30' ], 69, qr/rate limit.*\nhint: .*30 s/s ],
	[ 'HTTP 500', [ 'status', '--status', '500' ], 69, qr/failed.*\nhint: .*retry later/s ],
	[ 'HTTP 503 with an HTML body', [ 'status', '--status', '503', '--no-json' ], 69, qr/failed/ ],
	[ 'a body that is not JSON', [ 'body', '--body', '<html>oops</html>', '--content-type', 'text/html' ],
		65, qr/invalid answer/ ],
	[ 'an oversized body', [ 'oversize', '--size', '2000000' ], 65, qr/invalid answer/ ],
	[ 'a redirect', [ 'redirect', '--location', 'http://127.0.0.1:1/' ], 65, qr/unexpected answer|redirect/ ],
	[ 'a dropped connection', ['drop'], 69, qr/could not reach/ ],
);
for my $f (@faults)
{
	my ($name, $spec, $code, $re) = @$f;
	mockctl('fault', @$spec, '--path', '/config-vars$', '--count', '1');
	is_error(cli(args => ['myapp']), $code, $re, "API fault: $name");
	mockctl('clear-faults');
}
my $closed = closed_port();
is_error(cli(args => [ '--api-url', "http://127.0.0.1:$closed", 'myapp' ]), 69, qr/could not reach/,
	'API unreachable');
$r = cli(args => [ '--api-url', $ENV{HEROKU_MOCK_URL}, 'myapp' ],
	env => { HEROKU_API_URL => "http://127.0.0.1:$closed" }, secret_out => 1);
ok($r->{rc} == 0 && $r->{out} eq $rv->{out}, '--api-url wins over HEROKU_API_URL');

# TLS to the mock
$r = cli(args => [ '--api-url', $ENV{HEROKU_MOCK_TLS_URL}, '--ca-file', $ENV{HR_TEST_CA}, 'myapp' ],
	secret_out => 1);
ok($r->{rc} == 0 && $r->{out} eq $rv->{out}, 'https to the mock with --ca-file') or diag(mask($r->{err}));
$r = cli(args => [ '--ca-file', $ENV{HR_TEST_CA}, 'myapp' ], env => { HEROKU_API_URL => $ENV{HEROKU_MOCK_TLS_URL} },
	secret_out => 1);
ok($r->{rc} == 0 && $r->{out} eq $rv->{out}, 'https to the mock through HEROKU_API_URL');
is_error(cli(args => [ '--api-url', $ENV{HEROKU_MOCK_TLS_URL}, 'myapp' ]), 69, qr/certificate/,
	'https without the test CA');
is_error(cli(args => [ '--api-url', $ENV{HEROKU_MOCK_TLS_URL}, '--ca-file', $ENV{HR_EXPIRED_CA}, 'myapp' ]),
	69, qr/certificate|SSL/, 'https with another CA');

# ------------------------------------------------------------------ --service

my $BLOCK = block_of($MYAPP_PAIRS);
my $sdir = tempdir(DIR => $TMP);

# a missing file is created, mode 0600, and psql connects with it over TLS
my $sfile = "$sdir/new.conf";
$r = cli(args => [ '--service', 'hr_new', 'myapp' ], env => { PGSERVICEFILE => $sfile });
is($r->{rc}, 0, '--service with a missing file: exit status 0') or diag(mask($r->{err}));
ok($r->{out} eq '' && $r->{err} eq '', '--service is silent on success');
ok(-f $sfile && slurp($sfile) eq "[hr_new]\n$BLOCK", 'the new file holds exactly the section');
is(sprintf('%04o', file_mode($sfile)), '0600', 'the service file is mode 0600');
($who, $why) = psql_service($sfile, 'hr_new');
is($who, "$my->{user}|t|$ENV{HR_REMOTE_PORT}|$remote_rows", 'psql "service=hr_new" connects over TLS')
  or diag($why);

# ~/.pg_service.conf by default; --service-file over PGSERVICEFILE
my $home = tempdir(DIR => $TMP);
$r = cli(args => [ '--service', 'hr_home', 'myapp' ], env => { HOME => $home });
ok($r->{rc} == 0 && -f "$home/.pg_service.conf" && slurp("$home/.pg_service.conf") eq "[hr_home]\n$BLOCK",
	'without PGSERVICEFILE the file is ~/.pg_service.conf');
$r = cli(args => [ '--service', 'hr_opt', '--service-file', "$sdir/opt.conf", 'myapp' ],
	env => { PGSERVICEFILE => "$sdir/env.conf" });
ok($r->{rc} == 0 && -f "$sdir/opt.conf" && !-e "$sdir/env.conf", '--service-file wins over PGSERVICEFILE');

# an existing section is replaced in place; every other byte stays
my $before = "# services, kept by hand\n\n[other]\nhost=db.example.com\n# a comment in other\nport=5432\n\n";
my $head = "[hr_svc]  \n# managed by heroku-pg-resolve\n";
my $old_settings = "host=old.example.com\nport=1\n";
my $kept = "  # an indented comment\n\n";
my $after = "[after]\r\ndbname=x\r\n\n[hr_svc]\nhost=duplicate.example.com\n# last line, no newline";
$sfile = "$sdir/existing.conf";
spew($sfile, $before . $head . $old_settings . "password=old\n" . $kept . $after, 0644);
$r = cli(args => [ '--service', 'hr_svc', 'myapp' ], env => { PGSERVICEFILE => $sfile });
is($r->{rc}, 0, 'replace a section: exit status 0') or diag(mask($r->{err}));
my $expected = $before . $head . $BLOCK . $kept . $after;
ok(slurp($sfile) eq $expected,
	'only the setting lines of the first [hr_svc] changed; other sections, comments and blank lines are byte for byte the same');
is(sprintf('%04o', file_mode($sfile)), '0600', 'a 0644 service file becomes 0600');
($who, $why) = psql_service($sfile, 'hr_svc');
is($who, "$my->{user}|t|$ENV{HR_REMOTE_PORT}|$remote_rows", 'psql "service=hr_svc" connects with the replaced section')
  or diag($why);
my $inode = (stat($sfile))[1];
$r = cli(args => [ '--service', 'hr_svc', 'myapp' ], env => { PGSERVICEFILE => $sfile });
ok($r->{rc} == 0 && slurp($sfile) eq $expected, 'idempotent: a second run leaves the same bytes');

# an absent section is appended after a blank line
for my $c ([ 'ends with a newline', "[a]\nhost=x\n" ], [ 'no final newline', "[a]\nhost=x" ],
	[ 'ends with a blank line', "[a]\nhost=x\n\n" ])
{
	my ($name, $text) = @$c;
	my $f = "$sdir/append-" . length($text) . '.conf';
	spew($f, $text);
	$r = cli(args => [ '--service', 'hr_app', 'myapp' ], env => { PGSERVICEFILE => $f });
	my $sep = $text =~ /\n\n\z/ ? '' : $text =~ /\n\z/ ? "\n" : "\n\n";
	ok($r->{rc} == 0 && slurp($f) eq "$text$sep\[hr_app]\n$BLOCK", "append a section ($name)");
	$r = cli(args => [ '--service', 'hr_app', 'myapp' ], env => { PGSERVICEFILE => $f });
	ok($r->{rc} == 0 && slurp($f) eq "$text$sep\[hr_app]\n$BLOCK", "append a section ($name): idempotent");
}

# the awkward password through a service file
$r = cli(args => [ '--service', 'hr_quirky', 'quirky-app' ], env => { PGSERVICEFILE => $sfile });
ok($r->{rc} == 0 && slurp($sfile) eq "$expected\n\n[hr_quirky]\n" . block_of($QUIRKY_PAIRS),
	'a second section appended (after the unended last line); the rest kept');
($who, $why) = psql_service($sfile, 'hr_quirky');
like($who, qr/^\Q$q->{user}\E\|t\|$ENV{HR_REMOTE_PORT}\|\d+$/, 'psql "service=hr_quirky" connects with the awkward password')
  or diag($why);

# a symbolic link is followed
my $target = "$sdir/target.conf";
spew($target, "# target\n");
symlink($target, "$sdir/link.conf") or die "symlink: $!\n";
$r = cli(args => [ '--service', 'hr_link', 'myapp' ], env => { PGSERVICEFILE => "$sdir/link.conf" });
ok($r->{rc} == 0 && -l "$sdir/link.conf" && slurp($target) eq "# target\n\n[hr_link]\n$BLOCK",
	'a symbolic link stays; its target gets the section');

# a link is followed only when the caller (or root) owns it, and in a sticky world-writable
# directory only when the caller owns it: another user could have planted it there
SKIP:
{
	skip 'HR_PLANTED_LINKS not set (test/testenv.sh start as root makes them)', 22
	  unless $ENV{HR_PLANTED_LINKS};
	my $pl = $ENV{HR_PLANTED_LINKS};
	my $ptarget = "$pl/target.conf";
	my $orig = slurp($ptarget);
	# a link of the caller's own that leads to a planted one
	symlink("$pl/sticky/foreign.conf", "$sdir/chain.conf") or die "symlink: $!\n";
	for my $c (
		[ "$pl/sticky/foreign.conf", "$pl/sticky/foreign.conf", 'another user\'s link in a sticky world-writable directory' ],
		[ "$pl/sticky/root.conf", "$pl/sticky/root.conf", 'root\'s link in a sticky world-writable directory' ],
		[ "$pl/plain/foreign.conf", "$pl/plain/foreign.conf", 'another user\'s link in a plain directory' ],
		[ "$sdir/chain.conf", "$pl/sticky/foreign.conf", 'an own link to another user\'s link' ])
	{
		my ($file, $named, $name) = @$c;
		$r = cli(args => [ '--service', 'hr_planted', '--service-file', $file, 'myapp' ]);
		is_error($r, 73, qr/refusing to follow the symbolic link "\Q$named\E"/, "service file: $name");
		ok(slurp($ptarget) eq $orig && !-e "$ptarget.lock", "service file: $name: the target is untouched");
	}
	$r = cli(args => [ '--service', 'hr_planted', '--service-file', "$pl/plain/root.conf", 'myapp' ]);
	ok($r->{rc} == 0 && slurp($ptarget) eq "$orig\n[hr_planted]\n$BLOCK",
		'service file: root\'s link in a plain directory is followed') or diag(mask($r->{err}));
	my $own_target = "$sdir/own-target.conf";
	spew($own_target, "# own\n");
	my $own = "$pl/sticky/own-$$.conf";
	symlink($own_target, $own) or die "symlink: $!\n";
	$r = cli(args => [ '--service', 'hr_own', '--service-file', $own, 'myapp' ]);
	ok($r->{rc} == 0 && -l $own && slurp($own_target) eq "# own\n\n[hr_own]\n$BLOCK",
		'service file: the caller\'s own link in a sticky world-writable directory is followed')
	  or diag(mask($r->{err}));
	unlink $own;
}

# failures: missing directory, unreadable file
$r = cli(args => [ '--service', 'hr_x', 'myapp' ], env => { PGSERVICEFILE => "$sdir/no/such/dir/pg_service.conf" });
is_error($r, 73, qr/directory "[^"]*no\/such\/dir" does not exist/, 'service file in a missing directory');
ok(!-e "$sdir/no", 'the missing directory is not created');
SKIP:
{
	skip 'root reads any file', 5 if $> == 0;
	my $f = "$sdir/unreadable.conf";
	spew($f, "[keep]\nhost=x\n");
	chmod 0000, $f;
	is_error(cli(args => [ '--service', 'hr_x', 'myapp' ], env => { PGSERVICEFILE => $f }), 73,
		qr/could not read service file/, 'unreadable service file');
	chmod 0600, $f;
	ok(slurp($f) eq "[keep]\nhost=x\n", 'the unreadable file was left alone');
}

# two (and more) writers at once leave a well-formed file with every section
my $cfile = "$sdir/concurrent.conf";
spew($cfile, $before);
my @names = map { "hr_w$_" } 1 .. 6;
my $final;
for my $round (1 .. 2)
{
	my @h;
	{
		local %ENV = %ENV;
		delete @ENV{qw(HEROKU_API_KEY HEROKU_API_URL)};
		$ENV{PGSERVICEFILE} = $cfile;
		$ENV{HOME} = $EMPTY_HOME;
		for my $n (@names)
		{
			my ($out, $err) = ('', '');
			push @h, [ start([ $CLI, '--api-url', $ENV{HEROKU_MOCK_URL}, '--api-key-file', $ENV{HR_API_KEY_FILE},
					'--service', $n, 'myapp' ], \undef, \$out, \$err, timeout(120)), \$err ];
		}
	}
	my $all_ok = 1;
	for my $h (@h)
	{
		$h->[0]->finish;
		$all_ok = 0 if $h->[0]->result(0);
		$ALL_OUTPUT .= ${ $h->[1] };
	}
	ok($all_ok, "concurrent writers, round $round: all succeeded");
	my $text = slurp($cfile);
	my $rest = substr($text, 0, length($before)) eq $before ? substr($text, length($before)) : undef;
	my @found = defined $rest ? $rest =~ /^\[(hr_w\d)\]\n/mg : ();
	ok(defined $rest && $rest =~ /\A(?:\n?\[hr_w\d\]\n\Q$BLOCK\E)+\z/ && join(',', sort @found) eq join(',', @names),
		"concurrent writers, round $round: the file is well formed, with each section once")
	  or diag('sections found: ' . join(',', @found));
	if ($round == 2)
	{
		ok($text eq $final, 'concurrent writers, round 2: nothing changed');
	}
	$final = $text;
}

# ------------------------------------------------------------------ --exec

$r = cli(args => [ '--exec', 'myapp', '--', 'sh', '-c', 'exit 7' ], child => 1);
is($r->{rc}, 7, '--exec: the exit status is the command\'s');
$r = cli(args => [ '--exec', 'myapp', '--', 'true' ], child => 1);
is($r->{rc}, 0, '--exec: the exit status 0 is the command\'s');

my $envfile = "$TMP/exec-env";
$r = cli(
	args => [ '--exec', 'myapp', '--', $^X, '-e',
		'open(my $f, ">", $ARGV[0]) or die; print $f $ENV{DATABASE_URL}; close $f; print "mark=$ENV{HR_MARK}\n"',
		$envfile ],
	env => { HR_MARK => 'kept' }, child => 1);
my $url_out = cli(args => [ '--url', 'myapp' ], secret_out => 1)->{out} =~ s/\n\z//r;
is($r->{rc}, 0, '--exec: a perl child ran');
ok(-f $envfile && slurp($envfile) eq $url_out, '--exec: DATABASE_URL is the URL form');
is($r->{out}, "mark=kept\n", '--exec: the rest of the environment is passed on');

# the account-wide token stays with heroku-pg-resolve: the command gets DATABASE_URL, not it
my $env_probe = 'print join(",", exists $ENV{HEROKU_API_KEY} ? "HEROKU_API_KEY" : "no key",'
  . ' $ENV{DATABASE_URL} ? "url" : "no url", $ENV{HR_MARK} // "no mark"), "\n"';
$r = cli(args => [ '--exec', 'myapp', '--', $^X, '-e', $env_probe ],
	env => { HEROKU_API_KEY => $TOKEN, HR_MARK => 'kept' }, no_key => 1, child => 1);
is($r->{rc} . ' ' . $r->{out}, "0 no key,url,kept\n",
	'--exec: HEROKU_API_KEY, the token used, is not passed to the command');
$r = cli(args => [ '--exec', 'myapp', '--', $^X, '-e', $env_probe ],
	env => { HEROKU_API_KEY => $BAD_TOKEN, HR_MARK => 'kept' }, child => 1);
is($r->{rc} . ' ' . $r->{out}, "0 no key,url,kept\n",
	'--exec: HEROKU_API_KEY is not passed to the command when the token came from --api-key-file');

$r = cli(args => [ '--exec', 'myapp', 'HEROKU_POSTGRESQL_VIOLET', '--', $^X, '-e',
		'open(my $p, "|-", "psql", "-X", "-At", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres") or die;'
		  . 'print $p "\\\\connect \x27$ENV{DATABASE_URL}\x27\n' . $WHO_SQL . ';\n"; close $p; exit($? >> 8)' ],
	child => 1);
is($r->{rc} . ' ' . $r->{out}, "0 $my->{user}|t|$ENV{HR_REMOTE_PORT}|$remote_rows\n",
	'--exec with a CONFIG_VAR: the command connects with DATABASE_URL, over TLS') or diag(mask($r->{err}));

$r = cli(args => [ '--exec', 'myapp', '--', 'printf', '%s|', 'a', 'b c', '--url', '--', '-x' ], child => 1);
is($r->{out}, 'a|b c|--url|--|-x|', '--exec: the command\'s arguments pass untouched');

is_error(cli(args => [ '--exec', 'myapp', '--', "$TMP/no-such-command" ]), 127, qr/could not run/,
	'--exec: a missing command');
is_error(cli(args => [ '--exec', 'myapp', '--', 'hr-no-such-command-on-path' ]), 127, qr/could not run/,
	'--exec: a command not on PATH');
spew("$TMP/not-executable", "#!/bin/sh\nexit 0\n", 0644);
is_error(cli(args => [ '--exec', 'myapp', '--', "$TMP/not-executable" ]), 126, qr/Permission denied/,
	'--exec: a command that cannot be run');
my $marker = "$TMP/exec-marker";
is_error(cli(args => [ '--api-key-file', $BAD_KEY_FILE, '--exec', 'myapp', '--', 'touch', $marker ], no_key => 1),
	77, qr/rejected the token/, '--exec: an API error');
ok(!-e $marker, '--exec: the command does not run when resolving fails');

# ------------------------------------------------------------------ the library: example program

my $example = "$TMP/example";
{
	local %ENV = %ENV;
	delete $ENV{PKG_CONFIG_PATH};
	my ($flags, $err) = ('', '');
	ok(run([ 'pkg-config', '--cflags', '--libs', 'heroku_resolver' ], \undef, \$flags, \$err),
		'pkg-config --cflags --libs heroku_resolver works with the default search path')
	  or diag($err);
	my ($mv) = ('');
	run([ 'pkg-config', '--modversion', 'heroku_resolver' ], \undef, \$mv, \$err);
	is($mv =~ s/\s+\z//r, $control_version, 'pkg-config --modversion is the control file\'s version');
	my ($libdir) = ('');
	run([ 'pkg-config', '--variable=libdir', 'heroku_resolver' ], \undef, \$libdir, \$err);
	$libdir =~ s/\s+\z//;
	my $dyn = '';
	run([ 'readelf', '-d', "$libdir/libheroku_resolver.so" ], \undef, \$dyn, \$err);
	like($dyn, qr/SONAME.*\[libheroku_resolver\.so\.\d+\]/, 'the library has a versioned SONAME');
	my ($soname) = $dyn =~ /SONAME.*\[(libheroku_resolver\.so\.\d+)\]/;
	ok($soname && -l "$libdir/$soname" && readlink("$libdir/$soname") =~ /^libheroku_resolver\.so\.\d+\.\d+$/,
		'the SONAME is a link to the versioned file');
	my ($out, $cerr) = ('', '');
	ok(run([ 'cc', '-Wall', '-Wextra', '-Werror', '-o', $example, "$REPO/client/example.c",
				split(' ', $flags) ], \undef, \$out, \$cerr, timeout(120)),
		'the example program builds warning-free against the installed library') or diag($cerr);
}

# Run the example with the token in its environment; returns the harness and its buffers.
sub start_example
{
	my (@args) = @_;
	local %ENV = %ENV;
	$ENV{HEROKU_API_URL} = $ENV{HEROKU_MOCK_URL};
	$ENV{HEROKU_API_KEY} = $TOKEN;
	$ENV{HOME} = $EMPTY_HOME;
	my %io = (in => '', out => '', err => '');
	my $h = start([ $example, @args ], \$io{in}, \$io{out}, \$io{err}, timeout(120));
	return ($h, \%io);
}

# Wait for the example's n-th output line (or its end).
sub example_line
{
	my ($h, $io, $n) = @_;
	eval {
		pump $h while $h->pumpable && (() = $io->{out} =~ /\n/g) < $n;
		1;
	};
	my @lines = split /\n/, $io->{out};
	return $lines[ $n - 1 ] // '';
}

SKIP:
{
	skip 'the example program did not build', 12 unless -x $example;
	my $port = $ENV{HR_REMOTE_PORT};
	my $other = $ENV{HR_REMOTE2_PORT};

	# a plain connection: one request, no retry
	mockctl('reset-counts');
	my ($h, $io) = start_example('myapp');
	my $line = example_line($h, $io, 1);
	$h->finish;
	is($line, "user=$my->{user} database=$my->{dbname} port=$port ssl=t retried=0",
		'example: connects over TLS without a retry') or diag(mask($io->{err}));
	is(config_var_requests(), 1, 'example: one config-vars request');

	# a long-running program across a rotation: the kept value fails, one retry heals it
	mockctl('reset-counts');
	($h, $io) = start_example('myapp');
	my $l1 = example_line($h, $io, 1);
	rotate('myapp');
	$io->{in} .= "\n";
	my $l2 = example_line($h, $io, 2);
	$io->{in} .= "\n";
	my $l3 = example_line($h, $io, 3);
	$h->finish;
	is($l1, "user=$my->{user} database=$my->{dbname} port=$port ssl=t retried=0", 'rotation: first connection');
	is($l2, "user=$my->{user} database=$my->{dbname} port=$port ssl=t retried=1",
		'rotation: the reconnection after the rotation retried once and connected')
	  or diag(mask($io->{err}));
	is($l3, "user=$my->{user} database=$my->{dbname} port=$port ssl=t retried=0",
		'rotation: the next reconnection uses the healed value');
	is($h->result(0), 0, 'rotation: the example exits 0');
	is(config_var_requests(), 2, 'rotation: exactly two config-vars requests (the first and the retry)');

	# a failover: the database moves to remote2
	($h, $io) = start_example('myapp');
	$l1 = example_line($h, $io, 1);
	rotate('myapp', '--failover');
	my $moved = 1;
	$io->{in} .= "\n";
	$l2 = example_line($h, $io, 2);
	$h->finish;
	is($l2, "user=$my->{user} database=$my->{dbname} port=$other ssl=t retried=1",
		'failover: the reconnection follows the database to remote2') or diag(mask($io->{err}));

	# no kept value, but the API first answers with the old URL (as during a propagation)
	my $stale = $URLS->{myapp};
	rotate('myapp', '--failover');
	$moved = 0;
	mockctl('reset-counts');
	stale_body_fault(encode_json({ DATABASE_URL => $stale }), 1);
	($h, $io) = start_example('myapp');
	$line = example_line($h, $io, 1);
	$h->finish;
	mockctl('clear-faults');
	is($line, "user=$my->{user} database=$my->{dbname} port=$port ssl=t retried=1",
		'a stale first answer: hr_connect resolves again and connects') or diag(mask($io->{err}));
	is(config_var_requests(), 2, 'a stale first answer: exactly two config-vars requests');

	# the retry's resolution fails: NULL with the API's error
	($h, $io) = start_example('myapp');
	$l1 = example_line($h, $io, 1);
	rotate('myapp');
	mockctl('fault', 'status', '--status', '500', '--path', '/config-vars$', '--count', '1');
	$io->{in} .= "\n";
	$l2 = example_line($h, $io, 2);
	$h->finish;
	mockctl('clear-faults');
	ok($h->result(0) == 1 && $l2 eq '' && mask($io->{err}) =~ /the Heroku API failed/,
		'the retry\'s resolution fails: the error is the API\'s') or diag(mask($io->{err}));
	ok(!has_secret($io->{out} . $io->{err}), 'the example prints no secret');
	rotate('myapp', '--failover') if $moved;
}

# ------------------------------------------------------------------ hostile config var values
# The client applies the extension's keyword allow-list and socket ban (hosts on this machine
# stay allowed: a developer's own set-up), and says which keyword, never its value.
{
	my $hpw = 'ClientHostilePw4711';
	add_secret($hpw);
	my @hostile = (
		[ 'passfile', "postgres://u:$hpw\@db.example.com/d?passfile=%2Ftmp%2Fhostile-pass", qr/"passfile".*not allowed/ ],
		[ 'service', "postgres://u:$hpw\@db.example.com/d?service=hostile-svc", qr/"service".*not allowed/ ],
		[ 'sslkey', "postgres://u:$hpw\@db.example.com/d?sslkey=%2Ftmp%2Fhostile.key", qr/"sslkey".*not allowed/ ],
		[ 'options', "postgres://u:$hpw\@db.example.com/d?options=-c%20hostile%3Don", qr/"options".*not allowed/ ],
		[ 'socket in a host list', "postgres://u:$hpw\@db.example.com,%2Fvar%2Frun%2Fpostgresql/d", qr/Unix socket/ ],
		[ 'empty host list element', "postgres://u:$hpw\@db.example.com,:5432/d", qr/Unix socket/ ],
	);
	for my $h (@hostile)
	{
		my ($what, $url, $re) = @$h;
		mockctl('set-var', 'myapp', 'HOSTILE_URL', $url);
		for my $mode ([], ['--url'])
		{
			my $r = cli(args => [ @$mode, 'myapp', 'HOSTILE_URL' ]);
			my $name = "hostile config var, $what" . (@$mode ? ' (--url)' : '');
			is_error($r, 65, $re, $name);
			unlike($r->{err}, qr/hostile-|\/tmp\/|\/var\/run/, "$name: the value is not shown");
		}
	}
	mockctl('set-var', 'myapp', 'HOSTILE_URL', "postgres://u:$hpw\@127.0.0.1:5432/d");
	my $r = cli(args => [ 'myapp', 'HOSTILE_URL' ], secret_out => 1);
	ok($r->{rc} == 0 && $r->{out} =~ /host='?127\.0\.0\.1'?/,
		'hostile config var: a host on this machine is allowed on the client side') or diag(mask($r->{err}));
	mockctl('unset-var', 'myapp', 'HOSTILE_URL');
}

# ------------------------------------------------------------------ leaks and exit code list

ok(!has_secret($ALL_OUTPUT), 'no token or password in any stderr (nor in stdout outside the resolve modes)');
my @unlisted = grep { !$HELP_CODES{$_} } sort { $a <=> $b } keys %SEEN_CODES;
ok(!@unlisted, 'every exit status seen is listed in --help and the man page')
  or diag('not listed: ' . join(',', @unlisted));

done_testing();
