# Private and Shield databases over mutual TLS, with real parts: the test
# environment's "mtls" cluster wants a client certificate signed by its own CA
# (clientcert=verify-ca) on top of the password, and the mock's private-app
# points at it.  Without the files a connection fails; with them (set by a
# superuser through heroku_tls_set, or given to the command and the library)
# dblink, postgres_fdw (also for a non-superuser), dblink_fdw, psql through a
# service entry written by the command, and the library connect, through a
# rotation.  The files never come from a config var.  Bad input, the expiry
# warnings (a client certificate that ends in 10 days), pg_dump, and no
# password or key material in any message or log.
use strict;
use warnings;

use File::Copy;
use JSON::PP;
use IPC::Run qw(run timeout);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use HrTest;

need_env(qw(HEROKU_MOCK_URL HR_API_KEY_FILE HR_ROTATE HR_TEST_DIR HR_MTLS_PORT HR_TEST_CA
	HR_CLIENT_CERT HR_CLIENT_KEY HR_CLIENT_SHORT_CERT HR_CLIENT_SHORT_KEY HR_CLIENT_CA));
my $mock_url = $ENV{HEROKU_MOCK_URL};
my ($cert, $key, $root) = @ENV{qw(HR_CLIENT_CERT HR_CLIENT_KEY HR_TEST_CA)};
my ($short_cert, $short_key) = @ENV{qw(HR_CLIENT_SHORT_CERT HR_CLIENT_SHORT_KEY)};
my $TMP = PostgreSQL::Test::Utils::tempdir;

# Every password and key seen during the test, only ever compared.
my %secrets;

sub remember_secrets
{
	my $state = decode_json(slurp_file("$ENV{HR_TEST_DIR}/db-state.json"));
	for my $app (keys %$state)
	{
		next unless $state->{$app}{url} =~ m{^postgres://[^:/@]*:([^@]*)@};
		$secrets{$1} = 1;
	}
	my $token = slurp_file($ENV{HR_API_KEY_FILE}) =~ s/\s+$//r;
	$secrets{$token} = 1;
	for my $k ($key, $short_key)
	{
		# a line of the key's base64 body
		my ($line) = slurp_file($k) =~ /^([A-Za-z0-9+\/=]{40,})$/m;
		$secrets{$line} = 1 if $line;
	}
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

sub rotate
{
	system('bash', $ENV{HR_ROTATE}, @_) == 0 or die "rotate.sh @_ failed";
	remember_secrets();
}

remember_secrets();

my $node = PostgreSQL::Test::Cluster->new('mtls');
$node->init;
$node->append_conf('postgresql.conf', qq{
heroku.api_url = '$mock_url'
heroku.allow_local_hosts = on
heroku.api_key_file = '$ENV{HR_API_KEY_FILE}'
heroku.cache_ttl = 0
log_min_messages = debug1
log_min_error_statement = error
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION postgres_fdw;
CREATE EXTENSION dblink;
CREATE EXTENSION heroku_resolver;
CREATE ROLE alice LOGIN PASSWORD 'alice-is-not-a-secret';
GRANT EXECUTE ON FUNCTION heroku_tls_set(text, text, text, text, text) TO alice;
GRANT EXECUTE ON FUNCTION heroku_tls_unset(text, text) TO alice;
GRANT EXECUTE ON FUNCTION heroku_dblink_url(text, text) TO alice;
GRANT EXECUTE ON FUNCTION dblink(text, text) TO alice;
});

my $count_sql = q{SELECT n FROM dblink(heroku_dblink_url('private-app'), 'SELECT count(*) FROM orders') AS t(n bigint)};

# --------------------------------------------------------- without the files
my ($ret, $out, $err) = $node->psql('postgres', $count_sql);
my $e;
isnt($ret, 0, 'without mutual TLS files dblink cannot reach the private database');
like($err, qr/connection requires a valid client certificate/, '... the server wants a client certificate');
ok(!has_secret($err), '... and the error holds no password');

# ------------------------------------------------------------- bad input
sub sql_error
{
	my ($sql, $user) = @_;
	my ($r, $o, $e) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql",
		extra_params => [ $user ? ('-U', $user) : () ]);
	return $r == 0 ? 'no error' : $e;
}

my $open_key = "$TMP/open.key";
copy($key, $open_key) or die "copy: $!";
chmod 0644, $open_key;
my $closed = "$TMP/closed.crt";
copy($cert, $closed) or die "copy: $!";
chmod 0000, $closed;

my @bad = (
	[ "SELECT heroku_tls_set('private-app', sslcert => '$cert', sslkey => '$key')", 'alice',
		qr/ERROR:  42501: permission denied for function heroku_tls_set/, 'a non-superuser with EXECUTE' ],
	[ "SELECT heroku_tls_unset('private-app')", 'alice',
		qr/ERROR:  42501: permission denied for function heroku_tls_unset/, 'unset by a non-superuser' ],
	[ "SELECT heroku_tls_set(NULL, sslrootcert => '$root')", undef,
		qr/ERROR:  22004: argument "app" must not be null/, 'a NULL app' ],
	[ "SELECT heroku_tls_set('private-app')", undef,
		qr/ERROR:  22023: heroku_tls_set needs sslcert and sslkey, or sslrootcert/, 'no file at all' ],
	[ "SELECT heroku_tls_set('private-app', sslcert => '$TMP/missing.crt', sslkey => '$key')", undef,
		qr/ERROR:  58P01: could not read client certificate file "\Q$TMP\E\/missing.crt": No such file/,
		'a missing certificate: 58P01 naming the path' ],
	[ "SELECT heroku_tls_set('private-app', sslrootcert => '$TMP/missing-root.crt')", undef,
		qr/ERROR:  58P01: .*"\Q$TMP\E\/missing-root.crt"/, 'a missing root certificate' ],
	[ "SELECT heroku_tls_set('private-app', sslcert => '$cert', sslkey => '$open_key')", undef,
		qr/ERROR:  22023: private key file "\Q$open_key\E" has group or world access/,
		'a key readable by others, refused as libpq would' ],
	[ "SELECT heroku_tls_set('private-app', sslcert => '$closed', sslkey => '$key')", undef,
		qr/ERROR:  42501: could not read client certificate file "\Q$closed\E": Permission denied/,
		'an unreadable file' ],
	[ "SELECT heroku_tls_set('private-app', sslcert => '$cert', sslkey => '$short_key')", undef,
		qr/ERROR:  22023: client certificate "\Q$cert\E" does not match private key "\Q$short_key\E"/,
		'a certificate that does not match its key' ],
	[ "SELECT heroku_tls_set('private-app', sslcert => '$cert')", undef,
		qr/ERROR:  22023: a client certificate needs its key/, 'a certificate without its key' ],
	[ "SELECT heroku_tls_set('private-app', sslcert => 'client.crt', sslkey => 'client.key')", undef,
		qr/ERROR:  22023: client certificate file "client.crt" is not an absolute path/, 'a relative path' ],
	[ "SELECT heroku_tls_set('private-app', sslrootcert => '$key')", undef,
		qr/ERROR:  22023: root certificate file "\Q$key\E" holds no PEM certificate/, 'a key as root certificate' ],
	[ "SELECT heroku_tls_set('Bad App', sslrootcert => '$root')", undef,
		qr/ERROR:  22023: /, 'an invalid app name' ],
	[ "SELECT * FROM heroku_tls", 'alice', qr/ERROR:  42501: permission denied for view heroku_tls/,
		'the view is for superusers' ],
	[ "SELECT * FROM heroku_tls_files", 'alice', qr/ERROR:  42501: permission denied for table heroku_tls_files/,
		'the table is no more readable than the view' ],
);
for my $b (@bad)
{
	my ($sql, $user, $re, $what) = @$b;
	my $e = sql_error($sql, $user);
	like($e, $re, "bad input: $what");
	ok(!has_secret($e), "... no secret in the message ($what)");
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM heroku_tls_files'), 0, 'bad input stored nothing');
is($node->safe_psql('postgres', q{SELECT heroku_tls_unset('private-app')}), 'f',
	'heroku_tls_unset with nothing to remove returns false');

# -------------------------------------------------------- the files set
$node->safe_psql('postgres',
	"SELECT heroku_tls_set('private-app', sslcert => '$cert', sslkey => '$key', sslrootcert => '$root')");
is($node->safe_psql('postgres', $count_sql), 7, 'with the files set, dblink(heroku_dblink_url()) reaches the private database');
is($node->safe_psql('postgres', $count_sql, extra_params => [ '-U', 'alice' ]), 7,
	'... also for a non-superuser granted heroku_dblink_url (password and certificate)');
my $ci = $node->safe_psql('postgres', q{SELECT heroku_dblink_url('private-app')});
like($ci, qr/sslmode='verify-ca' sslcert='\Q$cert\E' sslkey='\Q$key\E' sslrootcert='\Q$root\E'/,
	'heroku_dblink_url carries the three files and sslmode verify-ca');
my $url = $node->safe_psql('postgres', q{SELECT heroku_database_url('private-app')});
like($url, qr/\?sslmode=verify-ca&sslcert=[^&]+&sslkey=[^&]+&sslrootcert=[^&]+$/,
	'heroku_database_url carries them as URL parameters');
is($node->safe_psql('postgres', q{SET heroku.min_sslmode = 'verify-full'; SELECT heroku_dblink_url('private-app') ~ $$sslmode='verify-full'$$}),
	't', 'heroku.min_sslmode still applies above verify-ca');
is($node->safe_psql('postgres', q{SET heroku.min_sslmode = 'verify-full';} . $count_sql), 7,
	'... and verify-full connects (the server certificate names 127.0.0.1)');
unlike($node->safe_psql('postgres', q{SELECT heroku_dblink_url('myapp')}), qr/sslcert/,
	'another app gets no files');
is($node->safe_psql('postgres',
	q{SELECT app || '|' || coalesce(config_var, '-') || '|' || (not_after > now() + interval '300 days') FROM heroku_tls}),
	'private-app|-|true', 'the heroku_tls view lists the files and the client certificate\'s not_after');

is($node->safe_psql('postgres',
	q{SELECT heroku_dblink_connect('c', 'private-app'); SELECT n FROM dblink('c', 'SELECT count(*) FROM orders') AS t(n bigint)}),
	"OK\n7", 'heroku_dblink_connect() carries the files too');

# a root certificate that does not verify the server
$node->safe_psql('postgres',
	"SELECT heroku_tls_set('private-app', sslcert => '$cert', sslkey => '$key', sslrootcert => '$ENV{HR_CLIENT_CA}')");
$e = sql_error($count_sql);
like($e, qr/certificate verify failed/, 'a root certificate that does not verify the server: the connection fails');
ok(!has_secret($e), '... with no password in the message');
$node->safe_psql('postgres',
	"SELECT heroku_tls_set('private-app', sslcert => '$cert', sslkey => '$key', sslrootcert => '$root')");

# a row for the config var wins over the app's row
$node->safe_psql('postgres',
	"SELECT heroku_tls_set('private-app', 'OTHER_URL', sslrootcert => '$root')");
is($node->safe_psql('postgres', q{SELECT count(*) FROM heroku_tls WHERE app = 'private-app'}), 2,
	'a second row for one config var');
like($node->safe_psql('postgres', q{SELECT heroku_dblink_url('private-app')}), qr/sslcert=/,
	'DATABASE_URL still takes the app\'s row');
is($node->safe_psql('postgres', q{SELECT heroku_tls_unset('private-app', 'OTHER_URL')}), 't',
	'heroku_tls_unset of one config var returns true');

# ------------------------- a look-alike table that is not the extension's is never read
$node->safe_psql('postgres', q{CREATE ROLE dbowner LOGIN; CREATE DATABASE old OWNER dbowner});
$node->safe_psql('old', q{CREATE EXTENSION dblink; CREATE EXTENSION heroku_resolver VERSION '1.2'});
$node->safe_psql('old', qq{
CREATE TABLE heroku_tls_files (app text, config_var text, sslcert text, sslkey text, sslrootcert text);
INSERT INTO heroku_tls_files VALUES ('private-app', NULL, '$cert', '$key', '$root');
}, extra_params => [ '-U', 'dbowner' ]);
unlike($node->safe_psql('old', q{SET heroku.cache_ttl = 0; SELECT heroku_dblink_url('private-app')}), qr/sslcert/,
	'a table of that name made by a database owner under extension 1.2 is not read');

# ---------------------------------------------- a config var never names the files
mock_call('POST', '/__mock/faults', { kind => 'body', path => '^/apps/private-app/config-vars', count => 1,
	body => encode_json({ DATABASE_URL => "postgres://u:secretpw1234\@127.0.0.1:$ENV{HR_MTLS_PORT}/appdb?sslcert=/etc/passwd&sslkey=/etc/shadow" }) });
$secrets{'secretpw1234'} = 1;
$e = sql_error(q{SELECT heroku_dblink_url('private-app')});
like($e, qr/ERROR:  22023: .*sslcert/, 'a config var naming sslcert is refused (22023)');
ok(!has_secret($e), '... with no password in the message');

# ------------------------------------------------ postgres_fdw and dblink_fdw
$node->safe_psql('postgres', q{
SELECT heroku_fdw_create_server('priv', 'private-app');
CREATE FOREIGN TABLE orders (id int, amount numeric) SERVER priv;
SELECT heroku_fdw_add_user_mapping('priv', 'alice');
GRANT USAGE ON FOREIGN SERVER priv TO alice;
GRANT SELECT ON orders TO alice;
SELECT heroku_fdw_create_server('privlink', 'private-app', fdw => 'dblink_fdw');
SELECT heroku_fdw_add_user_mapping('privlink', 'alice');
GRANT USAGE ON FOREIGN SERVER privlink TO alice;
});
my $srv_sql = q{SELECT array_to_string(array(SELECT o FROM unnest(srvoptions) o WHERE o ~ '^ssl' ORDER BY 1), ' ')
	FROM pg_foreign_server WHERE srvname = };
my $want_opts = "sslcert=$cert sslkey=$key sslmode=verify-ca sslrootcert=$root";
is($node->safe_psql('postgres', "$srv_sql 'priv'"), $want_opts,
	'heroku_fdw_create_server puts the files on the postgres_fdw server');
is($node->safe_psql('postgres', "$srv_sql 'privlink'"), $want_opts, '... and on the dblink_fdw server');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_user_mapping m, unnest(m.umoptions) o WHERE o ~ '^ssl'}), 0,
	'... never on a user mapping');
is($node->safe_psql('postgres', 'SELECT count(*) FROM orders'), 7, 'postgres_fdw reaches the private database');
is($node->safe_psql('postgres', 'SELECT count(*) FROM orders', extra_params => [ '-U', 'alice' ]), 7,
	'... so does a non-superuser through its user mapping (password and certificate)');
is($node->safe_psql('postgres', q{SELECT n FROM dblink('privlink', 'SELECT count(*) FROM orders') AS t(n bigint)},
		extra_params => [ '-U', 'alice' ]), 7,
	'a non-superuser reaches it through the dblink_fdw server');

# ------------------------------------------------------------------ rotation
rotate('private-app');
($ret, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM orders');
isnt($ret, 0, 'after a rotation the stored password fails');
is($node->safe_psql('postgres', $count_sql), 7, 'dblink(heroku_dblink_url()) connects after the rotation');
is($node->safe_psql('postgres', q{SELECT heroku_fdw_refresh('priv'), heroku_fdw_refresh('privlink')}), 't|t',
	'heroku_fdw_refresh after the rotation');
is($node->safe_psql('postgres', "$srv_sql 'priv'"), $want_opts, '... keeps the files on the server');
is($node->safe_psql('postgres', 'SELECT count(*) FROM orders', extra_params => [ '-U', 'alice' ]), 7,
	'... and the non-superuser connects again');
is($node->safe_psql('postgres', q{SELECT n FROM dblink('privlink', 'SELECT count(*) FROM orders') AS t(n bigint)},
		extra_params => [ '-U', 'alice' ]), 7, '... through dblink_fdw too');
rotate('private-app');
$node->safe_psql('postgres', 'SELECT heroku_fdw_refresh_all()');
is($node->safe_psql('postgres', "$srv_sql 'priv'"), $want_opts, 'heroku_fdw_refresh_all keeps them too');
is($node->safe_psql('postgres', 'SELECT count(*) FROM orders'), 7, '... and connects');

# ------------------------------------------------------------------ pg_dump
my $dump = `pg_dump -h '@{[ $node->host ]}' -p @{[ $node->port ]} -U postgres --data-only postgres`;
like($dump, qr/private-app\t\\N\t\Q$cert\E\t\Q$key\E\t\Q$root\E/, 'pg_dump keeps the rows of heroku_tls_files');

# ------------------------------------------------------------------ expiry
$node->safe_psql('postgres',
	"SELECT heroku_tls_set('private-app', sslcert => '$short_cert', sslkey => '$short_key', sslrootcert => '$root')");
($ret, $out, $err) = $node->psql('postgres', "$count_sql; $count_sql;");
is($out, "7\n7", 'a client certificate ending in 10 days still connects');
my @warnings = $err =~ /WARNING:  client certificate "\Q$short_cert\E" of Heroku app "private-app" expires on/g;
is(scalar(@warnings), 1, '... with one WARNING in the backend, naming the file and the app');
like($err, qr/DETAIL:  (9|10) days are left/, '... saying how many days are left');
is($node->safe_psql('postgres', q{SELECT not_after < now() + interval '11 days' FROM heroku_tls}), 't',
	'heroku_tls shows its near end');

# -------------------------------------------------------------- unset
is($node->safe_psql('postgres', q{SELECT heroku_tls_unset('private-app')}), 't', 'heroku_tls_unset returns true');
$node->safe_psql('postgres', q{SELECT heroku_fdw_refresh('priv')});
is($node->safe_psql('postgres', "$srv_sql 'priv'"), 'sslmode=require', 'a refresh takes the files off the server');
($ret, $out, $err) = $node->psql('postgres', $count_sql);
like($err, qr/connection requires a valid client certificate/, 'and without them the private database refuses again');

# ------------------------------------------------ the command and a service entry
my $cli = pg_resolve_cli();
my $sfile = "$TMP/pg_service.conf";
sub cli
{
	my (@args) = @_;
	local %ENV = %ENV;
	$ENV{HEROKU_API_URL} = $mock_url;
	my ($o, $e2) = ('', '');
	run([ $cli, '--api-key-file', $ENV{HR_API_KEY_FILE}, @args ], \undef, \$o, \$e2, timeout(60));
	return ($? >> 8, $o, $e2);
}
sub psql_service
{
	local %ENV = %ENV;
	$ENV{PGSERVICEFILE} = $sfile;
	delete @ENV{qw(PGHOST PGPORT PGUSER PGDATABASE PGSSLCERT PGSSLKEY PGSSLROOTCERT)};
	my ($o, $e2) = ('', '');
	run([ 'psql', '-X', '-A', '-t', '-d', 'service=mtls', '-c', 'SELECT count(*) FROM orders' ],
		\undef, \$o, \$e2, timeout(60));
	return ($? >> 8, $o =~ s/\s+\z//r, $e2);
}
my @files = ('--sslcert', $cert, '--sslkey', $key, '--sslrootcert', $root);
my ($rc, $o, $e2) = cli('--service', 'mtls', '--service-file', $sfile, 'private-app');
is($rc, 0, 'command: a service entry without the files');
like((psql_service())[2], qr/requires a valid client certificate/, '... psql through it is refused');
($rc, $o, $e2) = cli('--service', 'mtls', '--service-file', $sfile, @files, 'private-app');
is($rc, 0, 'command: --sslcert --sslkey --sslrootcert into the service entry');
my $entry = slurp_file($sfile);
like($entry, qr/^sslmode=verify-ca\nsslcert=\Q$cert\E\nsslkey=\Q$key\E\nsslrootcert=\Q$root\E$/m,
	'... the entry names the files, with sslmode verify-ca');
is((psql_service())[1], 7, '... psql through the entry reaches the private database');
rotate('private-app');
isnt((psql_service())[0], 0, 'after a rotation the entry\'s password fails');
cli('--service', 'mtls', '--service-file', $sfile, @files, 'private-app');
is((psql_service())[1], 7, '... and the command run again heals it');
($rc, $o, $e2) = cli('--url', @files, 'private-app');
like($o, qr/\?sslmode=verify-ca&sslcert=.*&sslkey=.*&sslrootcert=/, 'command --url: the files as URL parameters');

my @cli_bad = (
	[ [ '--sslcert', "$TMP/missing.crt", '--sslkey', $key ], qr/could not read client certificate file "\Q$TMP\E\/missing.crt"/, 'a missing file' ],
	[ [ '--sslcert', $cert, '--sslkey', $open_key ], qr/private key file "\Q$open_key\E" has group or world access/, 'a key readable by others' ],
	[ [ '--sslcert', $cert ], qr/a client certificate needs its key/, 'a certificate without its key' ],
	[ [ '--sslrootcert', 'ca.crt' ], qr/root certificate file "ca.crt" is not an absolute path/, 'a relative path' ],
);
for my $b (@cli_bad)
{
	($rc, $o, $e2) = cli(@{ $b->[0] }, 'private-app');
	is($rc, 78, "command: $b->[2] exits 78");
	like($e2, $b->[1], "... naming the file ($b->[2])");
	ok(!has_secret("$o$e2"), "... no secret in the output ($b->[2])");
}

# ---------------------------------------------------------------- the library
my $example = "$TMP/example";
my ($flags, $cerr) = ('', '');
run([ 'pkg-config', '--cflags', '--libs', 'heroku_resolver' ], \undef, \$flags, \$cerr);
ok(run([ 'cc', '-o', $example, "$FindBin::Bin/../../client/example.c", split(' ', $flags) ],
		\undef, \$o, \$cerr, timeout(120)), 'the example program builds against the installed library')
  or diag($cerr);
{
	local %ENV = %ENV;
	$ENV{HEROKU_API_URL} = $mock_url;
	$ENV{HEROKU_API_KEY} = slurp_file($ENV{HR_API_KEY_FILE}) =~ s/\s+$//r;
	@ENV{qw(HEROKU_PG_SSLCERT HEROKU_PG_SSLKEY HEROKU_PG_SSLROOTCERT)} = ($cert, $key, $root);
	my %io = (in => '', out => '', err => '');
	my $h = IPC::Run::start([ $example, 'private-app' ], \$io{in}, \$io{out}, \$io{err}, timeout(120));
	my $line = sub {
		my ($n) = @_;
		eval { IPC::Run::pump($h) while $h->pumpable && (() = $io{out} =~ /\n/g) < $n; 1 };
		return (split /\n/, $io{out})[ $n - 1 ] // '';
	};
	is($line->(1), "user=mtls_user database=appdb port=$ENV{HR_MTLS_PORT} ssl=t retried=0",
		'library: hr_connect_tls reaches the private database') or diag($io{err});
	rotate('private-app');
	$io{in} .= "\n";
	is($line->(2), "user=mtls_user database=appdb port=$ENV{HR_MTLS_PORT} ssl=t retried=1",
		'library: after a rotation it resolves again and connects, with the files');
	$h->finish;
	ok(!has_secret("$io{out}$io{err}"), 'library: no secret in its output');

	$ENV{HEROKU_PG_SSLKEY} = $open_key;
	%io = (in => '', out => '', err => '');
	run([ $example, 'private-app' ], \undef, \$io{out}, \$io{err}, timeout(60));
	like($io{err}, qr/private key file "\Q$open_key\E" has group or world access/,
		'library: a key readable by others is refused before any request');
}

# ---------------------------------------- the background worker's expiry LOG line
my $wnode = preloaded_node('mtls_worker', $mock_url, qq{
heroku.allow_local_hosts = on
heroku.api_key_file = '$ENV{HR_API_KEY_FILE}'
heroku.watch_interval = 0
heroku.refresh_interval = '1s'
heroku.database = 'postgres'
});
$wnode->start;
$wnode->safe_psql('postgres', qq{
CREATE EXTENSION postgres_fdw;
CREATE EXTENSION heroku_resolver;
SELECT heroku_tls_set('private-app', sslcert => '$short_cert', sslkey => '$short_key', sslrootcert => '$root');
SELECT heroku_fdw_create_server('wk', 'private-app');
CREATE FOREIGN TABLE wk_orders (id int) SERVER wk OPTIONS (table_name 'orders');
});
ok($wnode->wait_for_log(qr/LOG:  client certificate "\Q$short_cert\E" of Heroku app "private-app" expires on/),
	'the background refresher logs a client certificate that ends within 30 days');
rotate('private-app');
ok(wait_until(sub { my @r = $wnode->psql('postgres', 'SELECT count(*) FROM wk_orders'); $r[0] == 0 && $r[1] eq '7' }, 30),
	'the refresher carries the rotated password onto the server and keeps the files');
is($wnode->safe_psql('postgres', "$srv_sql 'wk'"),
	"sslcert=$short_cert sslkey=$short_key sslmode=verify-ca sslrootcert=$root", '... which are still on it');
$wnode->stop;
ok(!has_secret(slurp_file($wnode->logfile)), 'the worker node\'s log holds no password and no key material');

# -------------------------------------------------- nothing secret in the log
$node->stop;
ok(!has_secret(slurp_file($node->logfile)), 'the server log holds no password and no key material');

done_testing();
