# Helpers shared by the TAP tests: the test environment's variables and the
# mock Heroku API's control CLI (test/mockctl.py).
package HrTest;

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter 'import';
use File::Basename qw(dirname);
use HTTP::Tiny;
use IPC::Run ();
use JSON::PP qw(encode_json decode_json);
use PostgreSQL::Test::Cluster;
use Test::More ();
use Time::HiRes ();

our @EXPORT = qw(need_env mock mock_out mock_count mock_call preloaded_node pg_resolve_cli
  slurp_raw wait_until webhook_secret prometheus_samples);

my $PY = '/usr/bin/python3';

# Skip the whole file unless test/run-tests.sh set these variables.
sub need_env
{
	for my $v (@_)
	{
		Test::More::plan(skip_all => "$v not set: run through test/run-tests.sh")
		  unless $ENV{$v};
	}
	return;
}

# mockctl ARGS...: dies when it fails.
sub mock
{
	system($PY, $ENV{HR_MOCKCTL}, @_) == 0 or die "mockctl @_ failed";
	return;
}

# mockctl ARGS...: what it printed, without the trailing newline.
sub mock_out
{
	my $out = '';
	IPC::Run::run([ $PY, $ENV{HR_MOCKCTL}, @_ ], \undef, \$out)
	  or die "mockctl @_ failed";
	chomp $out;
	return $out;
}

# API requests the mock answered (whose path contains $path, if given), of
# the mock at $url (default: HEROKU_MOCK_URL).
sub mock_count
{
	my ($path, $url) = @_;
	return mock_out(($url ? ('--url', $url) : ()), 'counts', ($path ? ('--path', $path) : ()));
}

# A new cluster (initialised, not started) that preloads the extension and
# asks the API at $api_url with no netrc; $conf: more postgresql.conf lines.
sub preloaded_node
{
	my ($name, $api_url, $conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'heroku_resolver'
heroku.api_url = '$api_url'
heroku.netrc_file = '/dev/null'
$conf});
	return $node;
}

# A control request with a body that may hold a secret (never on a command
# line); the answer's JSON, if any.
sub mock_call
{
	my ($method, $path, $body) = @_;
	my $res = HTTP::Tiny->new(timeout => 30)->request($method, "$ENV{HEROKU_MOCK_URL}$path",
		{ headers => { 'Content-Type' => 'application/json' }, content => encode_json($body) });
	die "mock $method $path: $res->{status}\n" unless $res->{success};
	return length($res->{content} // '') ? decode_json($res->{content}) : undef;
}

# The heroku-pg-resolve command under test: HR_PG_RESOLVE, the first in
# PATH, or the checkout's build.
sub pg_resolve_cli
{
	return $ENV{HR_PG_RESOLVE} if $ENV{HR_PG_RESOLVE};
	for my $dir (split /:/, $ENV{PATH} // '')
	{
		return "$dir/heroku-pg-resolve" if -x "$dir/heroku-pg-resolve";
	}
	return abs_path(dirname(__FILE__) . '/../..') . '/client/heroku-pg-resolve';
}

# A file's bytes, or undef when it cannot be read.
sub slurp_raw
{
	my ($path) = @_;
	open my $fh, '<:raw', $path or return undef;
	local $/;
	my $text = <$fh>;
	close $fh;
	return $text;
}

# Poll $cond every 50 ms for $secs (default 20) seconds; its last value.
sub wait_until
{
	my ($cond, $secs) = @_;
	my $end = Time::HiRes::time() + ($secs // 20);
	while (Time::HiRes::time() < $end)
	{
		my $v = $cond->();
		return $v if $v;
		Time::HiRes::sleep(0.05);
	}
	return $cond->();
}

# A random webhook secret, written to $path (0600) for --webhook-secret-file; returns it.
sub webhook_secret
{
	my ($path) = @_;
	my $secret = 'whsec-' . join('', map { sprintf '%02x', int(rand(256)) } 1 .. 16);
	open my $fh, '>', $path or die "$path: $!\n";
	print $fh "$secret\n";
	close $fh;
	chmod 0600, $path;
	return $secret;
}

# Prometheus text as the real parser (python3-prometheus-client) reads it:
# { "name{label=value,...}" => value, "TYPE family" => type }, or undef and
# the parser's error.
my $PROM_PARSER = <<'PY';
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        labels = ",".join("%s=%s" % kv for kv in sorted(s.labels.items()))
        out["%s{%s}" % (s.name, labels)] = s.value
    out["TYPE " + fam.name] = fam.type
print(json.dumps(out))
PY

sub prometheus_samples
{
	my ($text) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ $PY, '-c', $PROM_PARSER ], \$text, \$out, \$err) or return (undef, $err);
	return (decode_json($out), '');
}

1;
