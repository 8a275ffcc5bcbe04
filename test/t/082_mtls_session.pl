# Mutual TLS as a pooled application sees it: one long-lived session of a
# preloaded server with default settings (a 60 s cache) keeps resolving
# private-app while other sessions set, unset and replace its files, drop and
# make the extension again, and update the extension from 1.2 (no table) to
# 1.3.  A backend remembers where the files' table is (src/pg_tls.c); each
# answer must still carry the files as they are now, and dblink must connect
# with them from that same session.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use HrTest;

need_env(qw(HEROKU_MOCK_URL HR_API_KEY_FILE HR_MTLS_PORT HR_TEST_CA HR_CLIENT_CERT HR_CLIENT_KEY));
my ($cert, $key, $root) = @ENV{qw(HR_CLIENT_CERT HR_CLIENT_KEY HR_TEST_CA)};

my $node = preloaded_node('mtls_session', $ENV{HEROKU_MOCK_URL}, qq{
heroku.allow_local_hosts = on
heroku.api_key_file = '$ENV{HR_API_KEY_FILE}'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION dblink; CREATE EXTENSION heroku_resolver');

my $set = "SELECT heroku_tls_set('private-app', sslcert => '$cert', sslkey => '$key', sslrootcert => '$root')";
my $set_root = "SELECT heroku_tls_set('private-app', sslrootcert => '$root')";
# which of the three files the answer names, in the long-lived session
my $files_sql = q{SELECT concat_ws(',',
	CASE WHEN u LIKE '%sslcert=%' THEN 'cert' END,
	CASE WHEN u LIKE '%sslkey=%' THEN 'key' END,
	CASE WHEN u LIKE '%sslrootcert=%' THEN 'root' END,
	CASE WHEN u ~ 'sslmode=''?verify-ca' THEN 'verify-ca' END)
	FROM heroku_dblink_url('private-app') u};
my $count_sql = q{SELECT n FROM dblink(heroku_dblink_url('private-app'), 'SELECT count(*) FROM orders') AS t(n bigint)};

my $bg = $node->background_psql('postgres', on_error_stop => 0);
my $pid = $bg->query_safe('SELECT pg_backend_pid()');
sub files_now { return $bg->query($files_sql); }

is(files_now(), '', 'no files set: the answer names none');
$node->safe_psql('postgres', $set);
is(files_now(), 'cert,key,root,verify-ca', 'set in another session: the next answer in the long-lived one carries all three');
is($bg->query($count_sql), '7', '... and dblink connects with them from that session');
$node->safe_psql('postgres', "SELECT heroku_tls_unset('private-app')");
is(files_now(), '', 'unset in another session: the next answer names none');
$node->safe_psql('postgres', $set_root);
is(files_now(), 'root,verify-ca', 'set again with the root only: the answer follows');

# the table dropped with the extension and made again (a new OID)
$node->safe_psql('postgres', "DROP EXTENSION heroku_resolver; CREATE EXTENSION heroku_resolver; $set");
is(files_now(), 'cert,key,root,verify-ca', 'extension dropped and made again elsewhere: the new table is read');
is($bg->query($count_sql), '7', '... and dblink connects');

# 1.2 has no table: the session forgets the dropped one, and remembers "none"
# until the update makes one
$node->safe_psql('postgres', "DROP EXTENSION heroku_resolver; CREATE EXTENSION heroku_resolver VERSION '1.2'");
is(files_now(), '', 'dropped and made again as 1.2: no files (the old table is forgotten)');
$node->safe_psql('postgres', "ALTER EXTENSION heroku_resolver UPDATE TO '1.3'; $set");
is(files_now(), 'cert,key,root,verify-ca', 'updated to 1.3 and set in another session: the long-lived session reads the new table');

# the same, inside the long-lived session itself
$bg->query_safe("DROP EXTENSION heroku_resolver; CREATE EXTENSION heroku_resolver; $set_root");
is(files_now(), 'root,verify-ca', 'dropped, made and set in the same session: its next answer follows');

is($bg->query('SELECT pg_backend_pid()'), $pid, 'all in one backend');
$bg->quit;
unlike(slurp_file($node->logfile), qr/TRAP|server process .* was terminated/, 'no assertion failure or crash in the server log');
$node->stop;
done_testing();
