# Helpers shared by the TAP tests: the test environment's variables and the
# mock Heroku API's control CLI (test/mockctl.py).
package HrTest;

use strict;
use warnings;

use Exporter 'import';
use IPC::Run ();
use PostgreSQL::Test::Cluster;
use Test::More ();

our @EXPORT = qw(need_env mock mock_out mock_count preloaded_node);

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

1;
