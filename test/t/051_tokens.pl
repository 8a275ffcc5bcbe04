#!/usr/bin/perl
# Tokens as users have them: an HRKU- key, a legacy API key (a UUID) and an OAuth access token
# (base64url), each pasted with white space around it (`export HEROKU_API_KEY="$(heroku
# auth:token)"` keeps no newline, but an editor or a copy does), work from every source:
# HEROKU_API_KEY, a netrc entry and the key file for the heroku-pg-resolve command, and
# heroku.api_key, HEROKU_API_KEY in the server's environment and the key file for the extension.
# The mock takes a token only as issued, so an untrimmed one would be refused (401). The
# cache is keyed by the digest of the trimmed token: the same token with or without blanks
# shares its entries. The hints for a missing token name `heroku auth:token` and
# HEROKU_NETRC_WRITE=true (current `heroku login` keeps the token in the OS credential store).
#
# Runs as the postgres OS user with $HR_TEST_DIR/env.sh sourced (test/run-tests.sh does both).
# No token is ever printed.
use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IPC::Run qw(run timeout);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use HrTest;

need_env(qw(HR_TEST_DIR HEROKU_MOCK_URL HR_API_KEY_FILE HR_UUID_KEY_FILE HR_OAUTH_KEY_FILE
	HR_MOCKCTL));

my $REPO = abs_path(dirname(__FILE__) . '/../..');
my $TMPBASE = $ENV{TESTDIR} || "$ENV{HR_TEST_DIR}/tap";
mkdir $TMPBASE unless -d $TMPBASE;
my $TMP = tempdir('tokens_XXXXXX', DIR => $TMPBASE, CLEANUP => 1);

sub first_line
{
	my ($path) = @_;
	open my $fh, '<', $path or die "cannot read $path: $!\n";
	my $line = <$fh>;
	close $fh;
	$line =~ s/\s+\z//;
	return $line;
}

sub spew
{
	my ($path, $text) = @_;
	open my $fh, '>:raw', $path or die "cannot write $path: $!\n";
	print $fh $text;
	close $fh;
	chmod 0600, $path;
	return;
}

my %TOKENS = (
	'HRKU- key' => first_line($ENV{HR_API_KEY_FILE}),
	'UUID key' => first_line($ENV{HR_UUID_KEY_FILE}),
	'OAuth token' => first_line($ENV{HR_OAUTH_KEY_FILE}));
like($TOKENS{'HRKU- key'}, qr/^HRKU-/, 'the environment has an HRKU- key');
like($TOKENS{'UUID key'}, qr/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
	'a legacy API key (a UUID)');
like($TOKENS{'OAuth token'}, qr/^[A-Za-z0-9_-]{40,}$/, 'and an OAuth access token (base64url)');
my @SECRETS = values %TOKENS;

sub has_secret
{
	my ($text) = @_;
	return scalar grep { index($text, $_) >= 0 } @SECRETS;
}

# ------------------------------------------------------------ the command
my $CLI;
for my $dir (split /:/, $ENV{PATH})
{
	if (-x "$dir/heroku-pg-resolve") { $CLI = "$dir/heroku-pg-resolve"; last }
}
$CLI = $ENV{HR_PG_RESOLVE} if $ENV{HR_PG_RESOLVE};
$CLI //= "$REPO/client/heroku-pg-resolve";
my $ALL = '';

# run the command for myapp's URL with this environment and these options: exit status, stderr
sub cli
{
	my ($env, @args) = @_;
	local %ENV = %ENV;
	delete @ENV{qw(HEROKU_API_KEY PGSERVICEFILE)};
	$ENV{HEROKU_API_URL} = $ENV{HEROKU_MOCK_URL};
	$ENV{HOME} = $TMP;
	%ENV = (%ENV, %$env);
	my ($out, $err) = ('', '');
	run([ $CLI, '--url', @args, 'myapp' ], \undef, \$out, \$err, timeout(60));
	$ALL .= $err;
	return ($? >> 8, $out, $err);
}

my %PADS = ('a trailing newline' => [ '', "\n" ], 'blanks around' => [ " \t", " \r\n" ]);
for my $form (sort keys %TOKENS)
{
	my $tok = $TOKENS{$form};
	for my $pad (sort keys %PADS)
	{
		my ($pre, $post) = @{ $PADS{$pad} };
		my ($rc, $out) = cli({ HEROKU_API_KEY => "$pre$tok$post" });
		ok($rc == 0 && $out =~ m{^postgres://}, "command: HEROKU_API_KEY, $form, $pad");
		spew("$TMP/key", "$pre$tok$post");
		($rc, $out) = cli({}, '--api-key-file', "$TMP/key");
		ok($rc == 0 && $out =~ m{^postgres://}, "command: key file, $form, $pad");
	}
	# a netrc password may be quoted, blanks and all
	spew("$TMP/netrc", qq{machine 127.0.0.1\r\n  login test\@example.com\r\n  password " $tok\t"\r\n});
	my ($rc, $out) = cli({}, '--netrc-file', "$TMP/netrc");
	ok($rc == 0 && $out =~ m{^postgres://}, "command: netrc (quoted, CRLF), $form");
}
my ($rc, $out, $err) = cli({ HEROKU_API_KEY => " \n " });
is($rc, 77, 'command: a HEROKU_API_KEY of blanks only is no token');
like($err, qr/hint: .*`heroku auth:token`.*HEROKU_NETRC_WRITE=true/,
	'command: the hint names heroku auth:token and HEROKU_NETRC_WRITE=true');
ok(!has_secret($ALL), 'command: no token in any output');

# ------------------------------------------------------------ the extension
my $node = preloaded_node('tokens', $ENV{HEROKU_MOCK_URL}, qq{
heroku.allow_local_hosts = on
heroku.watch_interval = 0
heroku.refresh_interval = 0
});
{
	# HEROKU_API_KEY in the server's environment, with a newline, as a unit file may give it
	local $ENV{HEROKU_API_KEY} = "$TOKENS{'OAuth token'}\n";
	$node->start;
}
$node->safe_psql('postgres', 'CREATE EXTENSION heroku_resolver');

# run SQL in a session of its own; $key: its heroku.api_key, given in the connection's options
# (backslash-escaped blanks), never in the text of a query, which the server logs
sub q_tok
{
	my ($sql, $key) = @_;
	my ($stdout, $stderr) = ('', '');
	local $ENV{PGOPTIONS} = defined $key ? '-c heroku.api_key=' . ($key =~ s/([ \t\\])/\\$1/gr) : '';
	my $ok = run([ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres') ],
		'<', \$sql, '>', \$stdout, '2>', \$stderr, timeout(60));
	$ALL .= $stderr;
	chomp $stdout;
	return ($ok, $stdout, $stderr);
}

my $get = q{SELECT heroku_dblink_url('myapp') LIKE 'host=%' AS ok;};
my ($ok, $res, $stderr) = q_tok("SET heroku.cache_ttl = 0; $get");
is("$ok|$res", '1|t', 'extension: HEROKU_API_KEY in the server\'s environment, with a newline');
for my $form (sort keys %TOKENS)
{
	($ok, $res) = q_tok("SET heroku.cache_ttl = 0; $get", "  $TOKENS{$form}\t ");
	is("$ok|$res", "1|t", "extension: heroku.api_key, $form, blanks around");
	spew("$TMP/srvkey", "\t$TOKENS{$form} \r\n");
	chmod 0644, "$TMP/srvkey";
	($ok, $res) = q_tok("SET heroku.cache_ttl = 0; SET heroku.api_key_file = '$TMP/srvkey'; $get");
	is("$ok|$res", "1|t", "extension: key file, $form, blanks around");
}

# the cache key is the digest of the trimmed token: with blanks or without, one entry
mock('reset-counts');
($ok, $res) = q_tok($get, " $TOKENS{'UUID key'} ");
my ($ok2, $res2) = q_tok($get, $TOKENS{'UUID key'});
is("$ok|$res|$ok2|$res2", '1|t|1|t', 'extension: the same token with and without blanks');
is(mock_count('/apps/myapp/config-vars'), 1, 'extension: shares one cache entry (one request)');

$node->stop('fast');
{
	local $ENV{HEROKU_API_KEY};
	delete $ENV{HEROKU_API_KEY};
	$node->start;
}
($ok, $res, $stderr) = q_tok("SET heroku.cache_ttl = 0; $get");
like($stderr, qr/HINT:  .*"heroku auth:token" prints the Heroku CLI's token; "heroku login" writes netrc only with HEROKU_NETRC_WRITE=true/,
	'extension: the hint for a missing token names heroku auth:token and HEROKU_NETRC_WRITE=true');
ok(!has_secret($ALL . slurp_file($node->logfile)), 'extension: no token in any output or the server log');
$node->stop('fast');
done_testing();
