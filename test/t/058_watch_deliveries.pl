#!/usr/bin/perl
# heroku-pg-resolve watch --listen with deliveries shaped as Heroku sends them (issue 19, item 3):
# the bodies follow Heroku's published api:release examples (heroku/webhooks-docs,
# docs/event-examples/api-release-create.json and api-release-update.json), with and without
# webhook_metadata; the signature is what authenticates, so a Content-Type with parameters or
# none at all is accepted (any other type is still 415); a release whose release phase still
# runs (status "pending") is applied on the update event that says "succeeded", and a failed
# one changes nothing and costs no API request.
#
# Runs as the postgres OS user with $HR_TEST_DIR/env.sh sourced (test/run-tests.sh does both).
# Listens on 127.0.0.1, port HR_WATCH_PORT + 6 (default 25396).
use strict;
use warnings;

use Digest::SHA qw(hmac_sha256);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use IPC::Run qw(start);
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use HrTest;

need_env(qw(HR_TEST_DIR HEROKU_MOCK_URL HR_API_KEY_FILE HR_MOCKCTL));

my $TMPBASE = $ENV{TESTDIR} || "$ENV{HR_TEST_DIR}/tap";
mkdir $TMPBASE unless -d $TMPBASE;
my $TMP = tempdir('watchdeliv_XXXXXX', DIR => $TMPBASE, CLEANUP => 1);
my $PORT = ($ENV{HR_WATCH_PORT} || 25390) + 6;
my $APP = 'wdeliv-a';
my $CLI = pg_resolve_cli();

my $SECRET = webhook_secret("$TMP/secret");

my $app = mock_call('PUT', "/__mock/apps/$APP",
	{ config_vars => { DATABASE_URL => 'postgres://u:p-1@127.0.0.1:5432/d' } });
my $APP_ID = $app->{id} // die "the mock gave no app id\n";

# A release event as Heroku's examples show it: $action create or update, data.status $status;
# webhook_metadata unless $bare.
my $NEV = 0;
sub release_event
{
	my ($action, $status, $bare) = @_;
	my $n = ++$NEV;
	my $user = { email => 'heroku-postgresql@addons.heroku.com', id => 'f87b5e7e-4631-46cc-9912-9fcdbbb6c985' };
	my $ev = {
		action => $action,
		actor => $user,
		created_at => '2016-10-26T22:50:29Z',
		id => sprintf('b6a68e77-8c13-41c8-b30c-%012d', $n),
		data => {
			addon_plan_names => ['heroku-postgresql:hobby-dev'],
			app => { id => $APP_ID, name => $APP },
			created_at => '2016-10-26T22:50:29Z',
			description => 'Update DATABASE by heroku-postgresql',
			status => $status,
			id => sprintf('5f1463a4-0210-43ba-b906-%012d', $n),
			slug => undef,
			updated_at => '2016-10-26T22:50:29Z',
			user => $user,
			version => 3 + $n,
			current => JSON::PP::true,
		},
		previous_data => ($action eq 'update' ? { status => 'pending' } : {}),
		published_at => undef,
		resource => 'release',
		sequence => undef,
		updated_at => '2016-10-26T22:50:29Z',
		version => 'application/vnd.heroku+json; version=3',
	};
	$ev->{webhook_metadata} = {
		attempt => { id => sprintf('a0000000-0000-4000-8000-%012d', $n) },
		delivery => { id => sprintf('d0000000-0000-4000-8000-%012d', $n) },
		event => { id => $ev->{id}, include => 'api:release' },
		webhook => { id => 'c0000000-0000-4000-8000-000000000001' },
	} unless $bare;
	return encode_json($ev);
}

# POST $body to the receiver, signed, with Content-Type $ct (undef: no such header); the status.
sub deliver
{
	my ($body, $ct) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $PORT, Timeout => 10)
	  or die "connect: $!\n";
	my $req = "POST /webhooks/heroku HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
	  . (defined $ct ? "Content-Type: $ct\r\n" : '')
	  . 'Heroku-Webhook-Hmac-SHA256: ' . encode_base64(hmac_sha256($body, $SECRET), '') . "\r\n"
	  . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
	print $s $req;
	local $/;
	my $answer = <$s> // '';
	close $s;
	my ($status) = $answer =~ m{^HTTP/1\.[01] (\d{3})};
	return $status // 'none';
}

sub requests { return mock_count("/apps/$APP/config-vars") }

my $err = "$TMP/watch.err";
my $h;
{
	local %ENV = %ENV;
	delete @ENV{qw(HEROKU_API_KEY PGSERVICEFILE)};
	$ENV{HEROKU_API_URL} = $ENV{HEROKU_MOCK_URL};
	$h = start([ $CLI, 'watch', '--api-key-file', $ENV{HR_API_KEY_FILE}, '--app', $APP, '--interval', '0',
			'--listen', "127.0.0.1:$PORT", '--webhook-secret-file', "$TMP/secret" ],
		'<', \undef, '>', "$TMP/watch.out", '2>', $err);
}
ok(wait_until(sub { (slurp_raw($err) // '') =~ /watching 1 app/ || !$h->pumpable }, 30) && $h->pumpable,
	'the watcher started')
  or diag(slurp_raw($err) // '');

# ---- Content-Type: parameters, none, another
for my $case (
	[ 'application/json; charset=utf-8', 0, 'application/json with a charset' ],
	[ 'Application/JSON', 0, 'application/json in other case' ],
	[ undef, 0, 'no Content-Type, with webhook_metadata' ],
	[ undef, 1, 'no Content-Type, without webhook_metadata' ])
{
	my ($ct, $bare, $what) = @$case;
	my $before = requests();
	is(deliver(release_event('create', 'succeeded', $bare), $ct), '200', "$what: applied (200)");
	is(requests() - $before, 1, "$what: the config vars were asked for once");
}
my $before = requests();
is(deliver(release_event('create', 'succeeded'), 'text/plain'), '415', 'text/plain: 415');
is(deliver(release_event('create', 'succeeded'), 'application/x-www-form-urlencoded'), '415',
	'a form: 415');
is(requests() - $before, 0, 'and neither asked the API');

# ---- a release phase: pending on create, succeeded on update
$before = requests();
is(deliver(release_event('create', 'pending'), 'application/json'), '202',
	'a pending release: accepted and ignored (202)');
is(requests() - $before, 0, 'a pending release: no API request');
is(deliver(release_event('update', 'succeeded'), 'application/json'), '200',
	'its update event that says succeeded: applied');
is(requests() - $before, 1, 'its update event: the config vars were asked for');

# ---- a failed release changes nothing (Heroku's api-release-update example)
$before = requests();
is(deliver(release_event('update', 'failed', 1), undef), '202', 'a failed release: ignored (202)');
is(deliver(release_event('create', 'pending', 1), undef), '202', 'a pending one without metadata: ignored');
is(requests() - $before, 0, 'a failed or pending release: no API request');

# ---- a wrong signature is still refused, whatever the Content-Type
{
	my $body = release_event('create', 'succeeded');
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $PORT, Timeout => 10) or die "connect: $!\n";
	print $s "POST /webhooks/heroku HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
	  . "Heroku-Webhook-Hmac-SHA256: AAAA\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
	local $/;
	my ($status) = (<$s> // '') =~ m{^HTTP/1\.[01] (\d{3})};
	is($status, '401', 'no Content-Type and a wrong signature: 401');
}

$h->signal('TERM');
$h->finish;
my $log = slurp_raw($err) // '';
ok($log =~ /ignored until it succeeds: a release pending or failed/, 'the ignored releases are logged as such');
ok($log !~ /p-1\@/, 'no password in the log');
done_testing();
