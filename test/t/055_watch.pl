#!/usr/bin/perl
# heroku-pg-resolve watch: a rotation reaches a service file and a preloaded cluster's cache
# through a Heroku webhook (the mock POSTs signed notifications to the watcher) and through the
# release feed alone; every refusal of the webhook receiver leaves everything as it was; a storm
# of events costs at most about one API request a second; the watcher survives a cluster that is
# down and an API outage, reloads its secrets on SIGHUP and exits 0 on SIGTERM; nothing secret is
# ever in its output.
#
# The clusters are told with the extension's own heroku_resolver_refresh(app), by a role that is
# no superuser and has EXECUTE on that function only. The main cluster keeps a URL in its cache
# for an hour and has neither its own feed nor its refresher, so a long-lived session there sees a
# rotation at once only if the watcher's call revalidated the cache. Passwords are compared by
# their md5 in SQL: none is ever printed or put in a query.
#
# Runs as the postgres OS user with $HR_TEST_DIR/env.sh sourced (test/run-tests.sh does both).
# Listens on 127.0.0.1, ports HR_WATCH_PORT (default 25390) to HR_WATCH_PORT + 4.
use strict;
use warnings;

use Cwd qw(abs_path);
use Digest::MD5 qw(md5_hex);
use Digest::SHA qw(hmac_sha256);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Socket::INET;
use IPC::Run qw(run start timeout);
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(time sleep);
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use HrTest;

need_env(qw(HR_TEST_DIR HEROKU_MOCK_URL HR_API_KEY_FILE HR_MOCKCTL HR_ROTATE HR_PYTHON));

my $REPO = abs_path(dirname(__FILE__) . '/../..');
my $TMPBASE = $ENV{TESTDIR} || "$ENV{HR_TEST_DIR}/tap";
mkdir $TMPBASE unless -d $TMPBASE;
my $TMP = tempdir('watch_XXXXXX', DIR => $TMPBASE, CLEANUP => 1);
my $PORT = $ENV{HR_WATCH_PORT} || 25390;
my $JSON = JSON::PP->new->utf8->canonical;

# ------------------------------------------------------------------ helpers

sub slurp
{
	my ($path) = @_;
	open my $fh, '<:raw', $path or return undef;
	local $/;
	my $text = <$fh>;
	close $fh;
	return $text;
}

sub spew
{
	my ($path, $text) = @_;
	open my $fh, '>:raw', $path or die "cannot write $path: $!\n";
	print $fh $text;
	close $fh or die "cannot write $path: $!\n";
	chmod 0600, $path;
	return;
}

sub first_line { my ($l) = (slurp($_[0]) // '') =~ /^\s*([^\r\n]*?)\s*(?:\r?\n|\z)/; return $l }


# ---- secrets: every one this file knows of is looked for in every output
my %SECRETS;
sub add_secret { $SECRETS{$_} = 1 for grep { defined && length >= 6 } @_; return }
sub has_secret { my ($t) = @_; return grep { index($t // '', $_) >= 0 } keys %SECRETS }
sub mask
{
	my ($t) = @_;
	$t //= '';
	$t =~ s/\Q$_\E/<secret>/g for sort { length($b) <=> length($a) } keys %SECRETS;
	return $t;
}

my $TOKEN = first_line($ENV{HR_API_KEY_FILE});
my $HOOK_SECRET = 'whsec-' . join('', map { sprintf '%02x', int(rand(256)) } 1 .. 16);
my $AUTH_VALUE = 'Bearer hook-' . join('', map { sprintf '%02x', int(rand(256)) } 1 .. 12);
my $DB_PASSWORD = 'dbpw-' . join('', map { sprintf '%02x', int(rand(256)) } 1 .. 10);
add_secret($TOKEN, $HOOK_SECRET, $AUTH_VALUE, $DB_PASSWORD);

sub current_urls
{
	my $state = decode_json(slurp("$ENV{HR_TEST_DIR}/db-state.json"));
	for my $app (keys %$state)
	{
		my $url = $state->{$app}{url};
		add_secret($url);
		add_secret($1) if $url =~ m{://[^:/@]*:([^@]*)@};
	}
	return { map { $_ => $state->{$_}{url} } keys %$state };
}
my $URLS = current_urls();

sub mockctl
{
	my @args = @_;
	my ($out, $err) = ('', '');
	run([ $ENV{HR_PYTHON}, $ENV{HR_MOCKCTL}, @args ], \undef, \$out, \$err, timeout(60))
	  or die "mockctl $args[0] failed: " . mask($err) . "\n";
	chomp $out;
	return $out;
}


my $PWN = 0;
# Give app a new DATABASE_URL in the mock (one release); returns the password.
sub set_url
{
	my ($app) = @_;
	my $pw = 'pw' . (++$PWN) . '-' . join('', map { sprintf '%02x', int(rand(256)) } 1 .. 8);
	add_secret($pw);
	mock_call('PATCH', "/__mock/apps/$app/config-vars",
		{ DATABASE_URL => "postgres://${app}_u:$pw\@127.0.0.1:5432/${app}_db" });
	return $pw;
}

sub config_var_requests { return mockctl('counts', '--path', "/apps/$_[0]/config-vars") }

sub rotate
{
	my ($out, $err) = ('', '');
	run([ 'bash', $ENV{HR_ROTATE}, @_ ], \undef, \$out, \$err, timeout(120))
	  or die "rotate.sh @_ failed: " . mask($err) . "\n";
	$URLS = current_urls();
	return;
}

sub section_value
{
	my ($file, $name, $key) = @_;
	my $text = slurp($file) // '';
	return undef unless $text =~ /^\[\Q$name\E\]\n((?:[^\[].*\n?)*)/m;
	my ($v) = $1 =~ /^\Q$key\E=(.*)$/m;
	return $v;
}

# ---- the command
my $CLI = pg_resolve_cli();

my $SECRET_FILE = "$TMP/hook-secret";
spew($SECRET_FILE, "$HOOK_SECRET\n");
my $AUTH_FILE = "$TMP/hook-auth";
spew($AUTH_FILE, "$AUTH_VALUE\n");
my $ALL_ERR = '';

sub base_env
{
	my %env = %ENV;
	delete @env{qw(HEROKU_API_KEY PGSERVICEFILE)};
	$env{HEROKU_API_URL} = $ENV{HEROKU_MOCK_URL};
	$env{HOME} = $TMP;
	return %env;
}

# Run watch to its end (start-up errors): exit status and stderr.
sub watch_run
{
	my (%o) = @_;
	local %ENV = (base_env(), %{ $o{env} // {} });
	my @args = ('watch', ($o{no_key} ? () : ('--api-key-file', $ENV{HR_API_KEY_FILE})), @{ $o{args} });
	my ($out, $err) = ('', '');
	run([ $CLI, @args ], \undef, \$out, \$err, timeout(30));
	$ALL_ERR .= $err;
	return { rc => $? >> 8, out => $out, err => $err };
}

# Start a watcher in the background; its stderr goes to a file.
my $NW = 0;
sub watch_start
{
	my (@args) = @_;
	my %w = (err => "$TMP/watch-" . (++$NW) . '.err');
	my %extra;
	if ($args[0] eq 'env')
	{
		shift @args;
		%extra = %{ shift @args };
	}
	local %ENV = (base_env(), %extra);
	$w{h} = start([ $CLI, 'watch', '--api-key-file', $ENV{HR_API_KEY_FILE}, @args ],
		'<', \undef, '>', "$TMP/watch-$NW.out", '2>', $w{err});
	my $up = wait_until(sub { (slurp($w{err}) // '') =~ /watching \d+ app/ || !$w{h}->pumpable }, 30);
	ok($up && $w{h}->pumpable, "watcher $NW started") or diag(mask(slurp($w{err})));
	return \%w;
}

sub watch_log { return slurp($_[0]{err}) // '' }

# SIGTERM, then its exit status.
sub watch_stop
{
	my ($w) = @_;
	$w->{h}->signal('TERM');
	my $t0 = time;
	$w->{h}->finish;
	$ALL_ERR .= watch_log($w);
	return ($w->{h}->result(0), time - $t0);
}

# ---- HTTP to the watcher
sub sign { return encode_base64(hmac_sha256($_[0], $_[1] // $HOOK_SECRET), '') }

my $NEV = 0;
sub release_body
{
	my (%o) = @_;
	return encode_json({
			action => 'create',
			resource => $o{resource} // 'release',
			data => { app => { map { defined $o{$_} ? ($_ => $o{$_}) : () } qw(id name) }, version => 1 },
			webhook_metadata => { delivery => { id => $o{delivery} // sprintf('d0000000-0000-4000-8000-%012d', ++$NEV) } } });
}

# A request to the watcher: method, path, body, headers; returns [status, body].
sub hook
{
	my (%o) = @_;
	my $body = $o{body} // '';
	my %h = ('Content-Type' => 'application/json', %{ $o{headers} // {} });
	$h{'Heroku-Webhook-Hmac-SHA256'} = sign($body, $o{secret}) if !exists $o{headers}{'Heroku-Webhook-Hmac-SHA256'} && !$o{unsigned};
	delete $h{'Content-Type'} unless defined $h{'Content-Type'};
	my $res = HTTP::Tiny->new(timeout => 30)->request($o{method} // 'POST',
		"http://127.0.0.1:$o{port}" . ($o{path} // '/webhooks/heroku'),
		{ headers => \%h, ($o{method} // 'POST') eq 'GET' ? () : (content => $body) });
	return [ $res->{status}, $res->{content} ];
}

# Raw bytes to the watcher, the answer's status line (or '' when it hung up).
sub raw_status
{
	my ($port, $bytes) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 10)
	  or return '';
	local $SIG{PIPE} = 'IGNORE';
	print $s $bytes;
	my $line = '';
	eval {
		local $SIG{ALRM} = sub { die "timeout\n" };
		alarm 20;
		$line = <$s> // '';
		alarm 0;
	};
	close $s;
	return $line =~ m{^HTTP/1\.\d (\d{3})} ? $1 : '';
}

# Send requests at once, each on its own connection; their statuses. As Heroku's deliveries do,
# they come from several addresses (127.0.0.2 to 127.0.0.11): at most 8 connections of one
# address are let in at once.
sub concurrent
{
	my ($port, @reqs) = @_;
	my $n = 0;
	my @socks = map {
		my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 10,
			LocalAddr => '127.0.0.' . (2 + $n++ % 10));
		print $s $_ if $s;
		$s;
	} @reqs;
	my @status;
	for my $s (@socks)
	{
		my $line = $s ? (<$s> // '') : '';
		push @status, $line =~ m{^HTTP/1\.\d (\d{3})} ? $1 : 'none';
		close $s if $s;
	}
	return @status;
}

sub raw_post
{
	my ($body, %h) = @_;
	$h{'Content-Type'} //= 'application/json';
	$h{'Heroku-Webhook-Hmac-SHA256'} //= sign($body);
	return "POST /webhooks/heroku HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
	  . join('', map { "$_: $h{$_}\r\n" } sort keys %h)
	  . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
}

# ------------------------------------------------------------------ set-up

mockctl('clear-faults');
mockctl('rate-limit', '4500');
my $hook_settings = decode_json(mockctl('webhook-settings'));
mockctl('webhook-settings', '--backoff', '0.3', '--attempts', '3', '--timeout', '15');
mockctl('clear-deliveries');
my @WEBHOOKS;

# Two apps of this file's own: their URLs are changed with the mock alone.
my %START_PW = (myapp => ($URLS->{myapp} =~ m{://[^:]*:([^@]*)@})[0]);
for my $app (qw(watch-a watch-b))
{
	eval { mockctl('delete-app', $app) };    # left by an interrupted run: its webhooks go too
	mock_call('PUT', "/__mock/apps/$app", { config_vars => {} });
	$START_PW{$app} = set_url($app);
}
# webhooks of an interrupted run to this file's ports
for my $h (@{ decode_json(mockctl('webhooks', '--app', 'myapp')) })
{
	mockctl('remove-webhook', 'myapp', $h->{id}) if $h->{url} =~ m{^http://127\.0\.0\.1:\d+/webhooks/heroku$};
}

# The clusters: "main" (the notified one) and "down" (stopped and started again). Both preload
# the extension (one cache for the whole cluster), keep a URL an hour, and neither poll their
# own feed nor run the refresher: only heroku_resolver_refresh() brings a rotation into their
# cache before the hour is up. track_functions counts the function's calls.
my $CLUSTER_CONF = qq{
shared_preload_libraries = 'heroku_resolver'
heroku.api_url = '$ENV{HEROKU_MOCK_URL}'
heroku.api_key_file = '$ENV{HR_API_KEY_FILE}'
heroku.netrc_file = '/dev/null'
heroku.allow_local_hosts = on
heroku.cache_ttl = '1h'
heroku.watch_interval = 0
heroku.refresh_interval = 0
track_functions = 'all'
};
# The watcher's role: LOGIN and EXECUTE on heroku_resolver_refresh(), nothing else (the grant
# the README and the man page name). Its password makes a --db conninfo that holds one.
my $WATCHER_SQL = qq{
CREATE EXTENSION heroku_resolver;
CREATE ROLE watcher LOGIN PASSWORD '$DB_PASSWORD';
GRANT EXECUTE ON FUNCTION heroku_resolver_refresh(text, text) TO watcher;
};
my $node = PostgreSQL::Test::Cluster->new('watch_main');
$node->init;
$node->append_conf('postgresql.conf', $CLUSTER_CONF);
$node->start;
$node->safe_psql('postgres', $WATCHER_SQL . 'CREATE EXTENSION postgres_fdw; CREATE EXTENSION dblink;');
# a foreign server of myapp that the watcher's role made, so it is that role's to refresh
$node->safe_psql('postgres', q{
GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO watcher;
GRANT EXECUTE ON FUNCTION heroku_fdw_create_server(name, text, text, name, regrole) TO watcher;
SET ROLE watcher;
SELECT heroku_fdw_create_server('watch_myapp', 'myapp');
RESET ROLE;
REVOKE EXECUTE ON FUNCTION heroku_fdw_create_server(name, text, text, name, regrole) FROM watcher;
});
my $down = PostgreSQL::Test::Cluster->new('watch_down');
$down->init;
$down->append_conf('postgresql.conf', $CLUSTER_CONF);
$down->start;
$down->safe_psql('postgres', $WATCHER_SQL);

my $MAIN_DB = $node->connstr('postgres') . " user=watcher password=$DB_PASSWORD";
my $DOWN_DB = $down->connstr('postgres') . ' user=watcher';

# A long-lived session of the main cluster.
my $S = $node->background_psql('postgres');
my $ORDERS = q{SELECT n FROM dblink(heroku_dblink_url('myapp'), 'SELECT count(*) FROM orders') AS t(n bigint)};

# The md5 of the password of app's URL as the session resolves it (from the cache while fresh).
sub cached_pw
{
	my ($app) = @_;
	return $S->query_safe("SELECT md5(substring(heroku_dblink_url('$app') from \$\$password='([^']*)'\$\$))");
}

# What each heroku_resolver_refresh(app) the watcher ran on cluster n returned, from its log.
sub refreshed
{
	my ($w, $n, $app) = @_;
	my $port = $n->port;
	return watch_log($w) =~ /^heroku-pg-resolve watch: cluster \S*:\Q$port\E\/postgres: heroku_resolver_refresh\('\Q$app\E'\) = (\d+),/mg;
}

sub refreshes { return scalar(my @r = refreshed(@_)) }
sub last_refresh { my @r = refreshed(@_); return $r[-1] // -1 }

is($node->safe_psql('postgres', 'SELECT preload, worker_state FROM heroku_resolver_status()'), 't|off',
	'the cluster preloads the extension and neither polls its own feed nor refreshes');
is($S->query_safe($ORDERS), 3, 'a long-lived session reads myapp through dblink');
for my $app (qw(myapp watch-a watch-b))
{
	is(cached_pw($app), md5_hex($START_PW{$app}), "the session has $app in the cluster's cache");
}

my $SVC = "$TMP/pg_service.conf";
spew($SVC, "# kept by hand\n[mine]\nhost=elsewhere.example\ndbname=x\n\n");

# ------------------------------------------------------------------ start-up errors

my $r = watch_run(args => ['--help'], no_key => 1);
is($r->{rc}, 0, 'watch --help: exit status 0');
my ($codes) = $r->{out} =~ /^Exit status:\n(.*)\z/ms;
my %WATCH_CODES = map { $_ => 1 } ($codes // '') =~ /^\s+(\d+)\s/mg;
my ($man_exit) = (slurp("$REPO/doc/heroku-pg-resolve.1") // '') =~ /^\.SH EXIT STATUS\n(.*?)^\.SH /ms;
my %MAN_CODES = map { $_ => 1 } ($man_exit // '') =~ /^\.B (\d+)$/mg;
ok(!grep({ !$MAN_CODES{$_} } keys %WATCH_CODES), 'every exit status of watch --help is in the man page')
  or diag(join ',', sort keys %WATCH_CODES);

for my $case (
	[ 'nothing to watch', 64, [] ],
	[ 'an argument', 64, [ '--service', 'a=watch-a', 'extra' ] ],
	[ 'a bad service spec', 64, [ '--service', 'watch-a' ] ],
	[ 'a bad app name', 64, [ '--service', 'a=Watch_A' ] ],
	[ 'a bad config var', 64, [ '--service', 'a=watch-a:BAD-VAR' ] ],
	[ 'a service twice', 64, [ '--service', 'a=watch-a', '--service', 'a=watch-b' ] ],
	[ '--listen without a secret', 64, [ '--app', 'watch-a', '--listen', "127.0.0.1:$PORT" ] ],
	[ '--interval 0 without --listen', 64, [ '--app', 'watch-a', '--interval', '0' ] ],
	[ 'an interval without a unit', 78, [ '--app', 'watch-a', '--interval', '30' ] ],
	[ 'a bad --listen', 78, [ '--app', 'watch-a', '--listen', 'nowhere', '--webhook-secret-file', $SECRET_FILE ] ],
	[ 'a bad --db', 78, [ '--app', 'watch-a', '--db', "host=x password=$DB_PASSWORD '" ] ],
	[ 'an unreadable secret file', 78, [ '--app', 'watch-a', '--listen', "127.0.0.1:$PORT", '--webhook-secret-file', "$TMP/none" ] ],
	[ 'an unknown app', 66, [ '--service', "a=no-such-app", '--service-file', "$TMP/x.conf" ] ],
	[ 'a config var that is no URL', 65, [ '--service', "a=myapp:REDIS_URL", '--service-file', "$TMP/x.conf" ] ],
	[ 'a service file in no directory', 73, [ '--service', 'a=watch-a', '--service-file', "$TMP/no/dir.conf" ] ])
{
	my ($name, $code, $args) = @$case;
	$r = watch_run(args => $args);
	is($r->{rc}, $code, "start-up error, $name: exit status $code") or diag(mask($r->{err}));
	like($r->{err}, qr/^heroku-pg-resolve: error: .*\nhint: \S/m, "start-up error, $name: says why, with a hint");
}
$r = watch_run(args => [ '--service', 'a=watch-a' ], no_key => 1);
is($r->{rc}, 77, 'start-up error, no token: exit status 77');
{
	my $busy = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $PORT + 4, Listen => 1, ReuseAddr => 1)
	  or die "cannot bind port " . ($PORT + 4) . ": $!\n";
	$r = watch_run(args => [ '--app', 'watch-a', '--listen', '127.0.0.1:' . ($PORT + 4), '--webhook-secret-file', $SECRET_FILE ]);
	is($r->{rc}, 71, 'start-up error, the port is taken: exit status 71');
	close $busy;
}
ok(!has_secret($ALL_ERR), 'start-up errors: no secret in any message');

# ------------------------------------------------------------------ webhooks

my $HOOK = "http://127.0.0.1:$PORT/webhooks/heroku";
for my $app (qw(myapp watch-a))
{
	my $id = mock_call('POST', "/__mock/apps/$app/webhooks",
		{ url => $HOOK, level => 'sync', secret => $HOOK_SECRET, include => ['api:release'] })->{id};
	push @WEBHOOKS, [ $app, $id ];
}

my $W = watch_start('--service', 'my=myapp', '--service', 'wa=watch-a', '--service-file', $SVC,
	'--db', $MAIN_DB, '--interval', '0', '--listen', "127.0.0.1:$PORT", '--webhook-secret-file', $SECRET_FILE);
my $my_pw = (($URLS->{myapp} =~ m{://[^:]*:([^@]*)@})[0]);
is(section_value($SVC, 'my', 'password'), $my_pw, 'at start: [my] is written with the current password');
like(slurp($SVC), qr/\A# kept by hand\n\[mine\]\nhost=elsewhere\.example\ndbname=x\n\n/, 'at start: the other section is kept');

# a real rotation of myapp: the mock POSTs the release to the watcher
mockctl('clear-deliveries');
my $t0 = time;
rotate('myapp');
my $new_pw = (($URLS->{myapp} =~ m{://[^:]*:([^@]*)@})[0]);
mockctl('wait-deliveries', '1', '--app', 'myapp', '--timeout', '30');
my $dl = decode_json(mockctl('deliveries', '--app', 'myapp'));
is($dl->[0]{status}, 'succeeded', 'webhook: the delivery of the rotation succeeded');
is($dl->[0]{attempts}[0]{code}, 200, 'webhook: answered 200 at the first attempt');
is(section_value($SVC, 'my', 'password'), $new_pw, 'webhook: [my] has the new password once the delivery was answered');
{
	local $ENV{PGSERVICEFILE} = $SVC;
	my ($out, $err) = ('', '');
	run([ 'psql', '-X', '-At', '-d', 'service=my', '-c', 'SELECT current_user, count(*) FROM orders' ],
		\undef, \$out, \$err, timeout(60));
	is($out, "app_user|3\n", 'webhook: psql service=my connects with the rotated credentials') or diag(mask($err));
}
like(watch_log($W), qr/app myapp: changed \(webhook\): rewrote \[my\].*; \d+ ms/, 'webhook: one log line says what changed and how long it took');
# the delivery was answered once every cluster had run heroku_resolver_refresh('myapp')
is(last_refresh($W, $node, 'myapp'), 2,
	'webhook: the cluster\'s heroku_resolver_refresh(\'myapp\') changed its cache entry and the role\'s server (2)');
{
	my $cv = config_var_requests('myapp');
	is($S->query_safe($ORDERS), 3, 'webhook: the long-lived session\'s next dblink call works with the rotated password');
	is(cached_pw('myapp'), md5_hex($new_pw), 'webhook: the cluster\'s cache holds the new password');
	is(config_var_requests('myapp'), $cv, 'webhook: the session asked the API nothing: the watcher refreshed the cache');
}
is($node->safe_psql('postgres', q{SELECT md5(substring(array_to_string(umoptions, ',') from 'password=([^,]*)'))
	FROM pg_user_mappings WHERE srvname = 'watch_myapp'}), md5_hex($new_pw),
	'webhook: the user mapping of the watcher\'s role\'s server has it too');
like(slurp($SVC), qr/\A# kept by hand\n\[mine\]\nhost=elsewhere\.example\ndbname=x\n\n/, 'webhook: the other section is kept');

# ---- every refusal: nothing changes
my $svc_before = slurp($SVC);
my $calls_before = refreshes($W, $node, 'watch-a');
my $req_before = config_var_requests('watch-a');
my $good = release_body(name => 'watch-a');
my @refusals = (
	[ 'no signature', 401, { body => $good, unsigned => 1 } ],
	[ 'a wrong signature', 401, { body => $good, secret => 'not-the-secret' } ],
	[ 'a signature of another body', 401, { body => $good, headers => { 'Heroku-Webhook-Hmac-SHA256' => sign($good . ' ') } } ],
	[ 'an empty signature', 401, { body => $good, headers => { 'Heroku-Webhook-Hmac-SHA256' => '' } } ],
	[ 'GET on the hook path', 405, { method => 'GET' } ],
	[ 'PUT on the hook path', 405, { method => 'PUT', body => $good } ],
	[ 'another path', 404, { path => '/webhooks/other', body => $good } ],
	[ 'a text/plain body', 415, { body => $good, headers => { 'Content-Type' => 'text/plain' } } ],
	[ 'bad JSON', 400, { body => '{"resource": "release", ' } ],
	[ 'a JSON array', 400, { body => '[]' } ],
	[ 'a release without an app', 400, { body => '{"resource":"release","data":{}}' } ],
	[ 'another resource', 202, { body => release_body(name => 'watch-a', resource => 'build') } ],
	[ 'an app not watched', 202, { body => release_body(name => 'other-app') } ],
	[ 'an app id not watched', 202, { body => release_body(id => '00000000-0000-4000-8000-000000000000') } ]);
for my $c (@refusals)
{
	my ($name, $want, $o) = @$c;
	my $res = hook(port => $PORT, %$o);
	is($res->[0], $want, "refusal, $name: $want");
}
is(raw_status($PORT, "POST /webhooks/heroku HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
		. 'Content-Length: ' . (1024 * 1024 + 1) . "\r\n\r\n"), '413', 'refusal, a body over 1 MiB (Content-Length): 413');
{
	my $chunk = 'x' x 65536;
	my $chunked = join('', map { sprintf("%x\r\n%s\r\n", length $chunk, $chunk) } 1 .. 17) . "0\r\n\r\n";
	is(raw_status($PORT, "POST /webhooks/heroku HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
			. "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n$chunked"), '413',
		'refusal, a chunked body over 1 MiB: 413');
}
is(slurp($SVC), $svc_before, 'refusals: the service file is unchanged');
is(config_var_requests('watch-a'), $req_before, 'refusals: no API request was made');
is(refreshes($W, $node, 'watch-a'), $calls_before, 'refusals: no cluster was notified');

# ---- a replayed delivery
my $replayed = release_body(name => 'watch-a', delivery => 'aaaaaaaa-0000-4000-8000-000000000001');
is(hook(port => $PORT, body => $replayed)->[0], 200, 'replay: the first delivery is applied (200)');
my $after_first = config_var_requests('watch-a');
is($after_first, $req_before + 1, 'replay: the first delivery made one API request');
sleep 1.1;
my $res = hook(port => $PORT, body => $replayed);
ok($res->[0] == 200 && $res->[1] =~ /duplicate/, 'replay: the same delivery id again is acknowledged (200) and ignored');
is(config_var_requests('watch-a'), $after_first, 'replay: no API request for it');
is(slurp($SVC), $svc_before, 'replay: the service file is unchanged');

# ---- a storm: 100 events, two waves of 50 connections
sleep 1.1;
my $storm_before = config_var_requests('watch-a');
my $ts = time;
my @statuses;
for my $wave (1, 2)
{
	push @statuses, concurrent($PORT, map { raw_post(release_body(name => 'watch-a')) } 1 .. 50);
}
my $storm_secs = time - $ts;
my $storm_requests = config_var_requests('watch-a') - $storm_before;
is(scalar(grep { $_ eq '200' } @statuses), 100, 'storm: all 100 events answered 200')
  or diag(join ' ', @statuses);
ok($storm_requests >= 1 && $storm_requests <= int($storm_secs) + 2,
	sprintf('storm: %d API requests in %.1f s (at most about one a second)', $storm_requests, $storm_secs));
is(slurp($SVC), $svc_before, 'storm: nothing changed, nothing rewritten');

# ---- the change itself: a new URL for watch-a
my $wa_pw = set_url('watch-a');
ok(wait_until(sub { (section_value($SVC, 'wa', 'password') // '') eq $wa_pw }, 10),
	'webhook: a new URL of watch-a reaches [wa]');
ok(wait_until(sub { refreshes($W, $node, 'watch-a') > $calls_before }, 10), 'webhook: and the cluster');
{
	my $cv = config_var_requests('watch-a');
	is(last_refresh($W, $node, 'watch-a'), 1, 'webhook: whose heroku_resolver_refresh(\'watch-a\') changed its cache entry');
	is(cached_pw('watch-a'), md5_hex($wa_pw), 'webhook: the long-lived session gets the new password from the cache');
	is(config_var_requests('watch-a'), $cv, 'webhook: without asking the API itself');
}
is(section_value($SVC, 'my', 'password'), $new_pw, 'webhook: [my] is untouched by watch-a\'s change');

# ---- /healthz
$res = hook(port => $PORT, method => 'GET', path => '/healthz');
my $health = eval { decode_json($res->[1]) } // {};
ok($res->[0] == 200 && $health->{status} eq 'ok', '/healthz: 200, status ok');
is(join(',', sort map { $_->{app} } @{ $health->{apps} // [] }), 'myapp,watch-a', '/healthz: the apps watched');
ok(($health->{last_event}{app} // '') eq 'watch-a' && exists $health->{feed}, '/healthz: the last event and the feed');
ok(!has_secret($res->[1]) && $res->[1] !~ /password|conninfo/i, '/healthz: no secret');
is(hook(port => $PORT, method => 'POST', path => '/healthz', body => '{}')->[0], 405, '/healthz: POST is 405');

# ---- SIGHUP: a new secret
my $old_secret = $HOOK_SECRET;
$HOOK_SECRET = 'whsec2-' . join('', map { sprintf '%02x', int(rand(256)) } 1 .. 16);
add_secret($HOOK_SECRET);
spew($SECRET_FILE, "$HOOK_SECRET\n");
$W->{h}->signal('HUP');
ok(wait_until(sub { watch_log($W) =~ /SIGHUP: token and webhook secret read again/ }, 10), 'SIGHUP: the secrets are read again');
sleep 1.1;
is(hook(port => $PORT, body => release_body(name => 'watch-a'), secret => $old_secret)->[0], 401, 'SIGHUP: the old secret is refused');
is(hook(port => $PORT, body => release_body(name => 'watch-a'))->[0], 200, 'SIGHUP: the new secret is accepted');
my ($rc, $secs) = watch_stop($W);
is($rc, 0, 'SIGTERM: exit status 0');
like(watch_log($W), qr/stopped$/m, 'SIGTERM: logs that it stopped');
# the --db conninfo held the watcher role's password
unlike(watch_log($W), qr/\Q$DB_PASSWORD\E/, 'a --db with a password: its password is never in the log');
for my $h (@WEBHOOKS) { mock_call('DELETE', "/__mock/apps/$h->[0]/webhooks/$h->[1]", {}) }
@WEBHOOKS = ();

# ------------------------------------------------------------------ --webhook-authorization-file

$W = watch_start('--app', 'watch-b', '--interval', '0', '--listen', '127.0.0.1:' . ($PORT + 1),
	'--webhook-secret-file', $SECRET_FILE, '--webhook-authorization-file', $AUTH_FILE);
my $wb = release_body(name => 'watch-b');
is(hook(port => $PORT + 1, body => $wb)->[0], 401, 'authorization: a signed event without Authorization is 401');
is(hook(port => $PORT + 1, body => $wb, headers => { Authorization => 'Bearer wrong' })->[0], 401,
	'authorization: a wrong Authorization is 401');
is(hook(port => $PORT + 1, body => $wb, headers => { Authorization => $AUTH_VALUE })->[0], 200,
	'authorization: the right one is 200');
is(hook(port => $PORT + 1, body => $wb, headers => { Authorization => $AUTH_VALUE }, secret => 'nope')->[0], 401,
	'authorization: and still needs the signature');
($rc) = watch_stop($W);
is($rc, 0, 'authorization: exit status 0');

# ------------------------------------------------------------------ the feed alone (paged)

{
	my $svc2 = "$TMP/feed.conf";
	$W = watch_start('env', { HEROKU_PG_RESOLVE_FEED_PAGE => 2 }, '--service', 'wb=watch-b',
		'--service-file', $svc2, '--db', $MAIN_DB, '--interval', '300ms');
	mockctl('reset-counts');
	sleep 1;
	my $polls = mockctl('counts', '--key', 'GET /apps');
	my $nm = mockctl('not-modified');
	ok($polls >= 3, "feed: GET /apps is polled, page by page ($polls requests in 1 s)");
	ok($nm >= $polls - 3, "feed: a quiet feed is answered 304 ($nm of $polls)");
	my $wb_pw = set_url('watch-b');
	ok(wait_until(sub { (section_value($svc2, 'wb', 'password') // '') eq $wb_pw }, 10),
		'feed: a new URL of watch-b reaches the service file without any webhook');
	ok(wait_until(sub { refreshes($W, $node, 'watch-b') >= 1 }, 10), 'feed: and the cluster');
	like(watch_log($W), qr/app watch-b: changed \(feed\): rewrote \[wb\]/, 'feed: logged');
	{
		my $cv = config_var_requests('watch-b');
		is(last_refresh($W, $node, 'watch-b'), 1, 'feed: the cluster\'s heroku_resolver_refresh(\'watch-b\') changed its cache entry');
		is(cached_pw('watch-b'), md5_hex($wb_pw), 'feed: the long-lived session gets the new password from the cache');
		is(config_var_requests('watch-b'), $cv, 'feed: without asking the API itself');
	}
	# ---- two releases within one second around a listing: released_at has whole seconds, so
	# the second leaves the page as it was (a 304); once that second has passed, the watcher
	# looks at the app once more. The mock's clock is frozen for the second.
	{
		sleep 1.1;    # a second of its own, after watch-b's last release
		my $checks = () = watch_log($W) =~ /check failed/g;
		mockctl('clock', 'freeze');
		my $r1 = eval { set_url('watch-b') };
		ok(defined $r1 && wait_until(sub { (section_value($svc2, 'wb', 'password') // '') eq $r1 }, 10),
			'same second: the first release arrives');
		my $polled = mockctl('counts', '--key', 'GET /apps');
		my $r2 = eval { set_url('watch-b') };    # the same released_at
		wait_until(sub { mockctl('counts', '--key', 'GET /apps') >= $polled + 8 }, 10);
		is(section_value($svc2, 'wb', 'password'), $r1, 'same second: while it lasts, the listing shows no change');
		mockctl('clock', 'thaw');
		my $t0 = time;
		ok(defined $r2 && wait_until(sub { (section_value($svc2, 'wb', 'password') // '') eq $r2 }, 5),
			'same second: once it has passed, the second release arrives');
		cmp_ok(time - $t0, '<=', 2, 'same second: within an interval (300ms) and a round trip');
		is(scalar(() = watch_log($W) =~ /check failed/g), $checks, 'same second: with no check failing first');
	}
	my $unrelated = config_var_requests('watch-a');
	set_url('watch-a');
	sleep 1;
	is(config_var_requests('watch-a'), $unrelated, 'feed: an app not watched costs no config-vars request');

	# ---- an API outage: old entries kept, logged, recovered
	my $before = slurp($svc2);
	mockctl('fault', 'status', '--status', '503', '--count', '100000');
	my $pw2 = set_url('watch-b');
	ok(wait_until(sub { watch_log($W) =~ /feed: the Heroku API failed while listing apps \(HTTP 503\b/ }, 10), 'outage: the feed failure is logged');
	is(slurp($svc2), $before, 'outage: the old entry is kept');
	mockctl('clear-faults');
	ok(wait_until(sub { (section_value($svc2, 'wb', 'password') // '') eq $pw2 }, 15),
		'outage: once the API is back, the change made meanwhile is applied');

	# a failed check is retried by the watcher itself
	mockctl('fault', 'status', '--status', '503', '--path', '/config-vars$', '--count', '2');
	my $pw3 = set_url('watch-b');
	ok(wait_until(sub { watch_log($W) =~ /app watch-b: check failed \(feed\).*retrying in 1 s/ }, 10),
		'outage: a failed check is logged with its retry');
	ok(wait_until(sub { (section_value($svc2, 'wb', 'password') // '') eq $pw3 }, 15),
		'outage: and retried until it works');
	mockctl('clear-faults');
	($rc) = watch_stop($W);
	is($rc, 0, 'feed: exit status 0');
}

# ------------------------------------------------------------------ a large account
# 5,000 apps of a team, about 1 kB each as Heroku's app objects are: a page of 1000 is over
# 1 MiB, and the feed must still list them all (default page size).
{
	mockctl('bulk-apps', 'largeaccount', '5000');
	my $svc4 = "$TMP/large.conf";
	my $WL = watch_start('--service', 'wb=watch-b', '--service-file', $svc4, '--interval', '1s');
	my $pw = set_url('watch-b');
	ok(wait_until(sub { (section_value($svc4, 'wb', 'password') // '') eq $pw }, 30),
		'large account: a release among 5,000 apps reaches the service file through the feed');
	my ($listed) = watch_log($WL) =~ /feed: \d+ of (\d+) apps released/;
	cmp_ok($listed // 0, '>=', 5000, 'large account: the feed lists every app');
	unlike(watch_log($WL), qr/feed: .*larger than/, 'large account: no page is refused for its size');
	my ($rc) = watch_stop($WL);
	is($rc, 0, 'large account: exit status 0');
	mockctl('delete-bulk-apps', 'largeaccount');
}

# ------------------------------------------------------------------ a cluster that is down

{
	my $svc3 = "$TMP/down.conf";
	my $hook3 = "http://127.0.0.1:" . ($PORT + 2) . '/webhooks/heroku';
	my $id = mock_call('POST', '/__mock/apps/watch-a/webhooks',
		{ url => $hook3, level => 'sync', secret => $HOOK_SECRET, include => ['api:release'] })->{id};
	push @WEBHOOKS, [ 'watch-a', $id ];
	$down->stop;
	$W = watch_start('--service', 'wa=watch-a', '--service-file', $svc3, '--db', $DOWN_DB,
		'--db', $MAIN_DB, '--interval', '0', '--listen', '127.0.0.1:' . ($PORT + 2),
		'--webhook-secret-file', $SECRET_FILE);
	mockctl('clear-deliveries');
	my $t = time;
	my $pw = set_url('watch-a');
	ok(wait_until(sub { (section_value($svc3, 'wa', 'password') // '') eq $pw }, 5),
		'cluster down: the service file is rewritten all the same');
	ok(wait_until(sub { refreshes($W, $node, 'watch-a') >= 1 }, 5), 'cluster down: the other cluster is notified all the same');
	ok(time - $t < 5, sprintf('cluster down: neither waited for it (%.1f s)', time - $t));
	is(cached_pw('watch-a'), md5_hex($pw), 'cluster down: the other cluster\'s cache has the new password');
	mockctl('wait-deliveries', '1', '--app', 'watch-a', '--timeout', '60');
	my $d = decode_json(mockctl('deliveries', '--app', 'watch-a'));
	ok((grep { ($_->{code} // 0) == 503 } @{ $d->[0]{attempts} }), 'cluster down: the webhook is answered 503 (not applied everywhere)');
	my $down_port = $down->port;
	like(watch_log($W), qr/cluster \S*:$down_port\/postgres: could not notify app watch-a: .*retrying in \d+ s/,
		'cluster down: logged, with its retry');
	is(refreshes($W, $down, 'watch-a'), 0, 'cluster down: not notified while down');
	$down->start;
	ok(wait_until(sub { refreshes($W, $down, 'watch-a') >= 1 }, 70), 'cluster down: once up again, it is notified');
	ok($down->poll_query_until('postgres',
			q{SELECT coalesce(sum(calls), 0) > 0 FROM pg_stat_user_functions WHERE funcname = 'heroku_resolver_refresh'}),
		'cluster down: heroku_resolver_refresh() ran there (pg_stat_user_functions)');
	($rc) = watch_stop($W);
	is($rc, 0, 'cluster down: exit status 0');
	for my $h (@WEBHOOKS) { mock_call('DELETE', "/__mock/apps/$h->[0]/webhooks/$h->[1]", {}) }
	@WEBHOOKS = ();
}

# ------------------------------------------------------------------ clean-up, leaks
eval { mockctl('clock', 'thaw') };
eval { mockctl('delete-bulk-apps', 'largeaccount') };

END
{
	for my $h (@WEBHOOKS)
	{
		eval { mock_call('DELETE', "/__mock/apps/$h->[0]/webhooks/$h->[1]", {}) };
	}
	eval { mockctl('clear-faults') };
}
for my $app (qw(watch-a watch-b)) { mockctl('delete-app', $app) }
mockctl('webhook-settings', '--backoff', $hook_settings->{backoff}, '--attempts', $hook_settings->{max_attempts},
	'--timeout', $hook_settings->{timeout});
ok(!has_secret($ALL_ERR), 'no token, secret or password in any output of the watcher')
  or diag(mask(join "\n", grep { has_secret($_) } split /\n/, $ALL_ERR));
$S->quit;
$node->stop;
$down->stop;

done_testing();
