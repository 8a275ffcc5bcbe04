#!/usr/bin/perl
# heroku-pg-resolve watch --listen with its default limits (issue 18, items 5 and 8):
#
# - slow clients: 70 connections from 127.0.0.1, each sending a header line every 2 s, do not
#   shut out a signed delivery from another address (127.0.0.2), answered within 2 s while they
#   run; at most 8 of them are let in (per client address), and those are cut at the request
#   deadline (10 s), not before and not long after;
# - refusals: 2,000 requests with a wrong signature make at most one log line a second (plus
#   one), whose counts add up to 2,000; those still counted at SIGTERM are logged before
#   "stopped".
#
# Runs as the postgres OS user with $HR_TEST_DIR/env.sh sourced (test/run-tests.sh does both).
# Listens on 127.0.0.1, port HR_WATCH_PORT + 5 (default 25395); connects from 127.0.0.1 to
# 127.0.0.3 (the loopback network is all local).
use strict;
use warnings;

use Digest::SHA qw(hmac_sha256);
use Errno qw(EAGAIN EINPROGRESS EWOULDBLOCK);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use IPC::Run qw(start);
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time sleep);
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use HrTest;

need_env(qw(HR_TEST_DIR HEROKU_MOCK_URL HR_API_KEY_FILE HR_MOCKCTL));

my $TMPBASE = $ENV{TESTDIR} || "$ENV{HR_TEST_DIR}/tap";
mkdir $TMPBASE unless -d $TMPBASE;
my $TMP = tempdir('watchlisten_XXXXXX', DIR => $TMPBASE, CLEANUP => 1);
my $PORT = ($ENV{HR_WATCH_PORT} || 25390) + 5;
my $APP = 'wlisten-a';
my $DEADLINE = 10;      # the default --request-timeout
my $PER_ADDRESS = 8;    # the default --max-connections-per-address
$SIG{PIPE} = 'IGNORE';

my $CLI = pg_resolve_cli();




my $SECRET = webhook_secret("$TMP/secret");

eval { mock('delete-app', $APP) };
mock_call('PUT', "/__mock/apps/$APP", { config_vars => { DATABASE_URL => 'postgres://u:p-1@127.0.0.1:5432/d' } });

my $NEV = 0;
sub release
{
	my $body = encode_json({ action => 'create', resource => 'release', data => { app => { name => $APP }, version => 1 },
			webhook_metadata => { delivery => { id => sprintf('e0000000-0000-4000-8000-%012d', ++$NEV) } } });
	return "POST /webhooks/heroku HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
	  . "Content-Type: application/json\r\nHeroku-Webhook-Hmac-SHA256: " . encode_base64(hmac_sha256($body, $SECRET), '')
	  . "\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
}

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
ok(wait_until(sub { (slurp_raw($err) // '') =~ /watching 1 app/ || !$h->pumpable }, 30) && $h->pumpable, 'the watcher started')
  or diag((slurp_raw($err) // ''));

# ------------------------------------------------------------------ slow clients

# 70 connections from 127.0.0.1 that send a request line, then a header line every 2 s; a signed
# delivery from 127.0.0.2 a second into it. Returns when every slow connection is closed or after
# the deadline and 5 s.
my (@slow, %opened, %closed);
my $sel = IO::Select->new;
my $t0 = time;
for my $i (0 .. 69)
{
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $PORT, LocalAddr => '127.0.0.1', Timeout => 5);
	if (!$s)
	{
		$closed{$i} = time;
		next;
	}
	$opened{$i} = time;
	syswrite($s, "POST /webhooks/heroku HTTP/1.1\r\nHost: 127.0.0.1\r\n");
	$slow[$i] = $s;
	$sel->add([ $s, $i ]);
}
my ($good, $good_sent, $good_answered, $good_status, $good_buf) = (undef, undef, undef, '', '');
my $next_line = time + 2;
while (time < $t0 + $DEADLINE + 5 && (keys %closed < 70 || !defined $good_answered))
{
	if (!defined $good && time >= $t0 + 1)
	{
		$good = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $PORT, LocalAddr => '127.0.0.2',
			Blocking => 0);
		$good_sent = time;
		$sel->add([ $good, 'good' ]) if $good;
	}
	if ($good && !defined $good_answered && $good_buf eq '' && $good->connected)
	{
		$good_buf = release();
		syswrite($good, $good_buf);
	}
	if (time >= $next_line)
	{
		for my $i (grep { !$closed{$_} && $slow[$_] } 0 .. 69)
		{
			$closed{$i} = time unless defined syswrite($slow[$i], "X-Slow-$i: " . int(time) . "\r\n");
		}
		$next_line += 2;
	}
	for my $ready ($sel->can_read(0.05))
	{
		my ($s, $i) = @$ready;
		my $buf = '';
		my $n = sysread($s, $buf, 4096);
		next if !defined $n && ($! == EAGAIN || $! == EWOULDBLOCK);
		if ($i eq 'good')
		{
			$good_status .= $buf;
			if (!defined $good_answered && $good_status =~ m{^HTTP/1\.\d (\d{3})})
			{
				$good_answered = time;
				$good_status = $1;
			}
			$sel->remove($s) if !$n;
			next;
		}
		if (!$n)
		{
			$closed{$i} //= time;
			$sel->remove($s);
		}
	}
}
my @lived = map { $closed{$_} - $opened{$_} } grep { $opened{$_} && $closed{$_} } 0 .. 69;
my @let_in = grep { $_ > 1.5 } @lived;
is($good_status, '200', 'slow clients: a signed delivery from another address is answered 200');
ok(defined $good_answered && $good_answered - $good_sent < 2,
	sprintf('slow clients: within 2 s (%s)', defined $good_answered ? sprintf('%.3f s', $good_answered - $good_sent) : 'no answer'));
is(scalar(keys %closed), 70, sprintf('slow clients: all 70 connections were closed within %d s', $DEADLINE + 5));
ok(@let_in >= 1 && @let_in <= $PER_ADDRESS,
	sprintf('slow clients: at most %d of one address were let in (%d)', $PER_ADDRESS, scalar @let_in));
ok(@let_in && !grep({ $_ < $DEADLINE - 0.5 || $_ > $DEADLINE + 2 } @let_in),
	sprintf('slow clients: those were cut at the %d s deadline (%s s)', $DEADLINE, join(' ', map { sprintf '%.1f', $_ } @let_in)));
like((slurp_raw($err) // ''), qr/^heroku-pg-resolve watch: webhook from 127\.0\.0\.1: cut: the request was not whole by its deadline: 10\.0 s$/m,
	'slow clients: the cut is logged');
close $_ for grep { defined } @slow, $good;

# ------------------------------------------------------------------ refusals, aggregated

# Requests with a wrong signature over kept-alive connections from 127.0.0.3, each written at
# once; how many were answered 401, and how long they took.
sub bad_requests
{
	my ($count) = @_;
	my $body = '{"resource":"release"}';
	my $req = "POST /webhooks/heroku HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
	  . "Heroku-Webhook-Hmac-SHA256: AAAA\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
	my $t = time;
	my $refused = 0;
	my $s;
	for (1 .. $count)
	{
		$s //= IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $PORT, LocalAddr => '127.0.0.3', Timeout => 10)
		  or last;
		my ($head, $rest) = ('', '');
		if (syswrite($s, $req))
		{
			while ($head !~ /\r\n\r\n/)
			{
				my $n = sysread($s, $head, 4096, length $head);
				last if !$n;
			}
		}
		($head, $rest) = split /\r\n\r\n/, $head, 2;
		$head //= '';
		my ($status) = $head =~ m{^HTTP/1\.1 (\d{3})};
		my ($len) = $head =~ /^Content-Length: (\d+)\r?$/mi;
		if (defined $status && defined $len)
		{
			$rest //= '';
			while (length $rest < $len)
			{
				last if !sysread($s, $rest, $len - length $rest, length $rest);
			}
			$refused++ if $status == 401;
		}
		# closed, or to be closed: a new connection for the next one
		if (!defined $rest || $head =~ /^Connection: close/mi)
		{
			close $s;
			undef $s;
		}
	}
	close $s if $s;
	return ($refused, time - $t);
}

# The lines about refused signatures after offset in the log, and the requests they count.
my $SIG_LINE = qr/refused: missing or wrong signature or authorization \(401\)$/;
sub signature_lines
{
	my ($offset) = @_;
	my @lines = grep { /$SIG_LINE/ } split /\n/, substr((slurp_raw($err) // ''), $offset);
	my $total = 0;
	for (@lines)
	{
		if (/^heroku-pg-resolve watch: webhook from 127\.0\.0\.3: refused/) { $total += 1 }
		elsif (/^heroku-pg-resolve watch: webhook: (\d+) more requests? like this in the last [\d.]+ s, the last from 127\.0\.0\.3: refused/) { $total += $1 }
		else { diag("unexpected line: $_") }
	}
	return (scalar @lines, $total);
}

sleep 1.1;
my $offset = length (slurp_raw($err) // '');
my ($refused, $secs) = bad_requests(2000);
is($refused, 2000, sprintf('refusals: 2,000 requests with a wrong signature, all 401 (in %.1f s)', $secs));
ok(wait_until(sub { (signature_lines($offset))[1] >= 2000 }, 3), 'refusals: all of them are logged within a second');
my ($lines, $total) = signature_lines($offset);
is($total, 2000, 'refusals: the counts of the lines add up to 2,000');
ok($lines <= int($secs) + 2, sprintf('refusals: in %d lines, at most one a second plus one (%.1f s)', $lines, $secs));

# at exit: what was counted and not yet logged is
sleep 1.1;
$offset = length (slurp_raw($err) // '');
($refused) = bad_requests(50);
$h->signal('TERM');
$h->finish;
is($h->result(0), 0, 'SIGTERM: exit status 0');
($lines, $total) = signature_lines($offset);
is($total, 50, 'SIGTERM: the 50 refusals just before it are all counted in the log');
ok($lines <= 2, "SIGTERM: in at most 2 lines ($lines)");
like(substr((slurp_raw($err) // ''), $offset), qr/more requests like this.*\n(?s:.*)stopped$/, 'SIGTERM: logged before "stopped"');

mock('delete-app', $APP);
done_testing();
