#!/usr/bin/perl
# heroku-pg-resolve watch --metrics-listen (issue 20, item 4): Prometheus text at GET /metrics on
# a listener of its own, read by a real parser (python3-prometheus-client's text parser), with
# the counter values expected after known events (an applied webhook, a refused one, a rotation
# written to the env file, an on-change run, feed listings, API requests) and the time gauges;
# the webhook paths are not on the metrics listener nor the reverse; a metrics port in use ends
# the watcher with exit status 71 and a clear message; slow scrapers are cut at the deadline for a
# whole request (--request-timeout), with a log line, and scrapes are answered again.
#
# Runs as the postgres OS user with $HR_TEST_DIR/env.sh sourced (test/run-tests.sh does both).
# Listens on 127.0.0.1, ports HR_WATCH_PORT + 11 and + 12 (default 25401, 25402).
use strict;
use warnings;

use Digest::SHA qw(hmac_sha256);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use IPC::Run qw(start run);
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use Test::More;
use Time::HiRes qw(sleep time);
use FindBin;
use lib $FindBin::Bin;
use HrTest;

need_env(qw(HR_TEST_DIR HEROKU_MOCK_URL HR_API_KEY_FILE HR_MOCKCTL));

my $TMPBASE = $ENV{TESTDIR} || "$ENV{HR_TEST_DIR}/tap";
mkdir $TMPBASE unless -d $TMPBASE;
my $TMP = tempdir('watchmetrics_XXXXXX', DIR => $TMPBASE, CLEANUP => 1);
my $MPORT = ($ENV{HR_WATCH_PORT} || 25390) + 11;
my $HPORT = ($ENV{HR_WATCH_PORT} || 25390) + 12;
my $APP = 'wmetrics-a';
my $DEADLINE = 2;    # --request-timeout, in seconds
my $CLI = pg_resolve_cli();
my $SECRET = webhook_secret("$TMP/secret");

my $app = mock_call('PUT', "/__mock/apps/$APP",
	{ config_vars => { DATABASE_URL => 'postgres://u:m-1@127.0.0.1:5432/d' } });
my $APP_ID = $app->{id} // die "the mock gave no app id\n";


sub scrape
{
	my $res = HTTP::Tiny->new(timeout => 10)->get("http://127.0.0.1:$MPORT/metrics");
	return ($res, undef) unless $res->{success};
	my ($samples, $err) = prometheus_samples($res->{content});
	return ($res, $samples // { error => $err });
}

sub deliver
{
	my ($n, $key) = @_;
	my $body = encode_json({ resource => 'release', action => 'create', id => "e$n",
		data => { status => 'succeeded', app => { id => $APP_ID, name => $APP } },
		webhook_metadata => { delivery => { id => sprintf('d0000000-0000-4000-8000-%012d', $n) } } });
	my $res = HTTP::Tiny->new(timeout => 20)->post("http://127.0.0.1:$HPORT/webhooks/heroku",
		{ headers => { 'Content-Type' => 'application/json',
			'Heroku-Webhook-Hmac-SHA256' => encode_base64(hmac_sha256($body, $key), '') },
		  content => $body });
	return $res->{status};
}

my $err = "$TMP/watch.err";
my $h;
{
	local %ENV = %ENV;
	delete @ENV{qw(HEROKU_API_KEY PGSERVICEFILE)};
	$ENV{HEROKU_API_URL} = $ENV{HEROKU_MOCK_URL};
	$h = start([ $CLI, 'watch', '--api-key-file', $ENV{HR_API_KEY_FILE}, '--service', "m=$APP",
			'--service-file', "$TMP/svc.conf", '--env-file', "$TMP/m.env", '--on-change', 'true',
			'--interval', '1h', '--listen', "127.0.0.1:$HPORT", '--webhook-secret-file', "$TMP/secret",
			'--metrics-listen', "127.0.0.1:$MPORT", '--request-timeout', "${DEADLINE}s" ],
		'<', \undef, '>', "$TMP/watch.out", '2>', $err);
}
ok(wait_until(sub { (slurp_raw($err) // '') =~ /watching 1 app/ || !$h->pumpable }, 30) && $h->pumpable,
	'the watcher started') or diag(slurp_raw($err) // '');

my ($res, $m) = scrape();
is($res->{status}, 200, 'GET /metrics answers 200');
like($res->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4}, 'in the text format 0.0.4');
ok($m && !$m->{error}, 'the real parser reads it') or diag(explain($m));
is($m->{'TYPE heroku_pg_resolve_webhooks'}, 'counter', 'webhooks are a counter');
is($m->{'heroku_pg_resolve_sink_writes_total{sink=env_file}'}, 1, 'one env file write at start');
is($m->{'heroku_pg_resolve_sink_writes_total{sink=service_file}'}, 1, 'one service file write at start');
is($m->{'heroku_pg_resolve_api_requests_total{status=200}'}, 2, 'two API requests (the feed, the config vars), answered 200');
is($m->{'heroku_pg_resolve_feed_listings_total{result=ok}'}, 1, 'one feed listing');
is($m->{'heroku_pg_resolve_on_change_runs_total{result=ok}'}, 0, 'no on-change run yet');
is($m->{'heroku_pg_resolve_last_change_timestamp_seconds{}'}, 0, 'no change yet');
cmp_ok($m->{'heroku_pg_resolve_last_successful_check_timestamp_seconds{}'}, '>', time - 60,
	'the last successful check is now');

mock_call('PATCH', "/__mock/apps/$APP/config-vars", { DATABASE_URL => 'postgres://u:m-2@127.0.0.1:5432/d' });
is(deliver(1, $SECRET), 200, 'a signed webhook is applied');
is(deliver(2, 'wrong'), 401, 'a badly signed one is refused');
ok(wait_until(sub { (slurp_raw($err) // '') =~ /on-change for m done/ }, 10), 'on-change ran');
($res, $m) = scrape();
is($m->{'heroku_pg_resolve_webhooks_total{result=applied}'}, 1, 'webhooks{applied} = 1');
is($m->{'heroku_pg_resolve_webhooks_total{result=unauthorized}'}, 1, 'webhooks{unauthorized} = 1');
is($m->{'heroku_pg_resolve_api_requests_total{status=200}'}, 3, 'the webhook\'s check: a third API request answered 200');
is($m->{'heroku_pg_resolve_sink_writes_total{sink=env_file}'}, 2, 'the rotation: a second env file write');
is($m->{'heroku_pg_resolve_sink_failures_total{sink=env_file}'}, 0, 'no env file failure');
is($m->{'heroku_pg_resolve_on_change_runs_total{result=ok}'}, 1, 'on_change_runs{ok} = 1');
cmp_ok($m->{'heroku_pg_resolve_last_change_timestamp_seconds{}'}, '>', time - 60, 'the last change is now');
unlike(HTTP::Tiny->new->get("http://127.0.0.1:$MPORT/metrics")->{content}, qr/m-1|m-2/, 'no password in the metrics');

is(HTTP::Tiny->new->get("http://127.0.0.1:$MPORT/healthz")->{status}, 404, 'no /healthz on the metrics listener');
is(HTTP::Tiny->new->post("http://127.0.0.1:$MPORT/webhooks/heroku", { content => '{}' })->{status}, 404,
	'no webhook path on the metrics listener');
is(HTTP::Tiny->new->get("http://127.0.0.1:$HPORT/metrics")->{status}, 404, 'no /metrics on the webhook listener');
is(HTTP::Tiny->new->post("http://127.0.0.1:$MPORT/metrics", { content => 'x' })->{status}, 405, 'POST /metrics: 405');

# a metrics port in use
{
	local %ENV = %ENV;
	delete @ENV{qw(HEROKU_API_KEY PGSERVICEFILE)};
	$ENV{HEROKU_API_URL} = $ENV{HEROKU_MOCK_URL};
	my ($out, $e2) = ('', '');
	run([ $CLI, 'watch', '--api-key-file', $ENV{HR_API_KEY_FILE}, '--app', $APP, '--interval', '1h',
			'--metrics-listen', "127.0.0.1:$MPORT" ], \undef, \$out, \$e2);
	is($? >> 8, 71, 'a metrics port in use: exit status 71');
	like($e2, qr/could not listen on 127\.0\.0\.1:\d+ for metrics: Address already in use/, 'and a clear message')
	  or diag($e2);
}

# Slow scrapers: 8 connections (the limit of one address) that send a request line, then a header
# line every half second, for up to 15 s. The idle timeout (10 s) never ends them: the deadline
# for a whole request does, and a scrape is answered again.
{
	local $SIG{PIPE} = 'IGNORE';
	my (@slow, %closed);
	my $t0 = time;
	for my $i (0 .. 7)
	{
		my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $MPORT, Timeout => 5)
		  or die "connect: $!";
		syswrite($s, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n");
		push @slow, $s;
	}
	my $sel = IO::Select->new(@slow);
	while (time < $t0 + 15 && keys %closed < 8)
	{
		for my $i (grep { !$closed{$_} } 0 .. 7)
		{
			$closed{$i} = time unless defined syswrite($slow[$i], "X-Slow-$i: " . int(time) . "\r\n");
		}
		for my $s ($sel->can_read(0.5))
		{
			my ($i) = grep { $slow[$_] == $s } 0 .. 7;
			my $n = sysread($s, my $buf, 4096);
			if (!$n)
			{
				$closed{$i} //= time;
				$sel->remove($s);
			}
		}
	}
	my @held = map { defined $closed{$_} ? $closed{$_} - $t0 : 15 } 0 .. 7;
	is(scalar(keys %closed), 8, 'slow scrapers: all 8 connections were closed by the watcher within 15 s');
	ok(!(grep { $_ < $DEADLINE - 0.5 } @held), sprintf('slow scrapers: none before the %d s deadline (%s s)',
		$DEADLINE, join(' ', map { sprintf '%.1f', $_ } @held)));
	close $_ for @slow;
	ok(wait_until(sub { (slurp_raw($err) // '') =~
		/^heroku-pg-resolve watch: metrics from 127\.0\.0\.1: cut: the request was not whole by its deadline: 2\.0 s$/m }, 5),
		'slow scrapers: the cut is logged, naming the metrics listener');
	($res, $m) = scrape();
	is($res->{status}, 200, 'slow scrapers: a scrape is answered again');
	ok(!defined $m->{'heroku_pg_resolve_webhooks_total{result=cut_deadline}'},
		'slow scrapers: not counted as webhooks');
}

$h->signal('TERM');
$h->finish;
is($h->result(0), 0, 'the watcher stops with 0');
done_testing();
