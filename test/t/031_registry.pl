# The registry of the FDW helpers (issue 11, items 2 and 9).
#
# A registered server is known by its OID and its owner, a user mapping the
# extension made by its OID.  None of these is ever written to, whether by
# heroku_fdw_refresh(), heroku_fdw_refresh_all() or the background refresher
# (which runs as a superuser):
#   - a server dropped and made again under the registered name by a role
#     with nothing but USAGE on postgres_fdw, with the event trigger that
#     forgets dropped servers firing or bypassed;
#   - a user mapping dropped and made again by its own role;
#   - a registered server whose owner changed.
# The registry follows a renamed server, keeps its registrations through the
# 1.1 -> 1.2 upgrade and through a dump and restore, and a database owner who
# is not a superuser can pg_dump a database that has the extension.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use HrTest;

need_env(qw(HEROKU_MOCK_URL HR_API_KEY_FILE HR_MOCKCTL));
my $mock_url = $ENV{HEROKU_MOCK_URL};

# The app's passwords are made up (nothing connects to its hosts); they are
# only ever searched for, never printed.
my $app = 'registry-app';
my @pw = ('RegistrySecretPw4711', 'RegistrySecretPw4712');
my $round = 0;

# A rotation and a failover: the next refresh has something to write.
sub rotate
{
	$round++;
	mock('set-var', $app, 'DATABASE_URL',
		"postgres://ruser:$pw[$round % 2]\@db$round.example:5432/rdb");
}

mock('put-app', $app, '--var', "DATABASE_URL=postgres://ruser:$pw[0]\@db0.example:5432/rdb");

my $node = PostgreSQL::Test::Cluster->new('registry');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'heroku_resolver'
heroku.watch_interval = 0
heroku.api_url = '$mock_url'
heroku.allow_local_hosts = on
heroku.api_key_file = '$ENV{HR_API_KEY_FILE}'
heroku.netrc_file = '/dev/null'
heroku.cache_ttl = 0
heroku.refresh_interval = 0
heroku.database = 'postgres'
});
$node->start;

# psql as $role in $db: its output, or "ERROR <SQLSTATE>"; never dies.
sub val
{
	my ($db, $sql, $role) = @_;
	my ($ret, $out, $err) = $node->psql($db, "\\set VERBOSITY verbose\n$sql",
		extra_params => [ '-U', $role // 'postgres' ]);
	return $err =~ /ERROR:  ([0-9A-Z]{5}):/ ? "ERROR $1" : $out;
}

# The same, with what went to stderr (WARNINGs).
sub val_err
{
	my ($db, $sql, $role) = @_;
	my ($ret, $out, $err) = $node->psql($db, "\\set VERBOSITY verbose\n$sql",
		extra_params => [ '-U', $role // 'postgres' ]);
	return ($err =~ /ERROR:  ([0-9A-Z]{5}):/ ? "ERROR $1" : $out, $err);
}

# What the catalogs hold for the server of that name and its user mappings
# (the mappings' options only as a digest).
sub catalog_of
{
	my ($db, $server) = @_;
	return $node->safe_psql($db, qq{
SELECT s.oid, s.xmin, s.srvowner::regrole, s.srvoptions,
       (SELECT string_agg(u.oid || '/' || u.umuser::regrole || '/' || u.xmin || '/'
                          || md5(u.umoptions::text), ',' ORDER BY u.oid)
          FROM pg_user_mapping u WHERE u.umserver = s.oid)
  FROM pg_foreign_server s WHERE s.srvname = '$server'});
}

# 1 if an option of the server of that name or of one of its user mappings
# holds one of the app's passwords.
sub holds_password
{
	my ($db, $server) = @_;
	my $opts = $node->safe_psql($db, qq{
SELECT coalesce(s.srvoptions::text, '')
       || (SELECT coalesce(string_agg(u.umoptions::text, ','), '')
             FROM pg_user_mapping u WHERE u.umserver = s.oid)
  FROM pg_foreign_server s WHERE s.srvname = '$server'});
	return (grep { index($opts, $_) >= 0 } @pw) ? 1 : 0;
}

# mallory, who has USAGE on postgres_fdw and nothing else, makes a server of
# that name with a user mapping for herself and one for postgres.
sub mallory_server
{
	my ($server) = @_;
	$node->safe_psql('postgres', qq{
CREATE SERVER $server FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'evil.example', dbname 'loot');
CREATE USER MAPPING FOR mallory SERVER $server OPTIONS (user 'm', password 'mallory-own');
CREATE USER MAPPING FOR postgres SERVER $server OPTIONS (user 'p', password 'planted');
}, extra_params => [ '-U', 'mallory' ]);
}

sub rows_named
{
	my ($db, $server) = @_;
	return val($db, "SELECT count(*) FROM heroku_fdw_registry WHERE server = '$server'");
}

$node->safe_psql('postgres', q{
CREATE EXTENSION postgres_fdw;
CREATE EXTENSION heroku_resolver;
CREATE ROLE mallory LOGIN;
GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO mallory;
CREATE ROLE reader LOGIN;
SELECT heroku_fdw_create_server('good_db', 'registry-app');
});

# ------------------------------------ a server dropped and made again
$node->safe_psql('postgres', q{
SELECT heroku_fdw_create_server('prod_db', 'registry-app');
SELECT heroku_fdw_add_user_mapping('prod_db', 'mallory');
});
is(val('postgres', q{SELECT roles FROM heroku_fdw_servers WHERE server = 'prod_db'}),
	'{postgres,mallory}', 'prod_db is registered with mappings for postgres and mallory');
is(holds_password('postgres', 'prod_db'), 1, '... which hold the app\'s password');

$node->safe_psql('postgres', 'DROP SERVER prod_db CASCADE');
is(rows_named('postgres', 'prod_db'), '0',
	'DROP SERVER forgets the registration at once (event trigger on sql_drop)');

mallory_server('prod_db');
my $before = catalog_of('postgres', 'prod_db');
rotate();
my ($out, $err) = val_err('postgres', 'SELECT heroku_fdw_refresh_all()');
is($out, '1', 'refresh_all, after a role with only USAGE on postgres_fdw made prod_db again, refreshes good_db only');
is(catalog_of('postgres', 'prod_db'), $before,
	'... and writes nothing into the new prod_db or its user mappings');
is(holds_password('postgres', 'prod_db'), 0, '... which hold none of the app\'s passwords');
is(val('postgres', q{SELECT heroku_fdw_refresh('prod_db')}), 'ERROR 42704',
	'heroku_fdw_refresh of the new prod_db: 42704, it is not registered');
is(val('postgres', q{SELECT heroku_fdw_add_user_mapping('prod_db', 'reader')}), 'ERROR 42704',
	'heroku_fdw_add_user_mapping to it: 42704');
is(val('postgres', q{SELECT heroku_fdw_unregister('prod_db')}), 'ERROR 42704',
	'heroku_fdw_unregister of it: 42704');
is(catalog_of('postgres', 'prod_db'), $before, 'none of them wrote into it');
is(holds_password('postgres', 'prod_db'), 0, '... nor put a password there');

# ----------------------- the same with the event trigger bypassed: a dead row
$node->safe_psql('postgres', q{
SELECT heroku_fdw_create_server('prod2', 'registry-app');
SELECT heroku_fdw_add_user_mapping('prod2', 'mallory');
SET session_replication_role = replica;
DROP SERVER prod2 CASCADE;
});
is(val('postgres', q{SELECT server_exists FROM heroku_fdw_servers WHERE server = 'prod2'}), 'f',
	'a server dropped while event triggers do not fire stays in the registry, dead');
is(val('postgres', q{SELECT heroku_fdw_refresh('prod2')}), 'ERROR 42704',
	'heroku_fdw_refresh of a dropped server: 42704');
mallory_server('prod2');
$before = catalog_of('postgres', 'prod2');
rotate();
is(val('postgres', q{SELECT heroku_fdw_refresh('prod2')}), 'ERROR 42704',
	'heroku_fdw_refresh of the new prod2 made by mallory: 42704');
($out, $err) = val_err('postgres', 'SELECT heroku_fdw_refresh_all()');
is($out, '1', 'refresh_all refreshes good_db only');
like($err,
	qr/WARNING:  01000: forgetting foreign server "prod2" of Heroku app "registry-app": it was dropped/,
	'... skips the dead row with a WARNING naming the server and the app');
is(catalog_of('postgres', 'prod2'), $before,
	'... writes nothing into the server now named prod2 or its user mappings');
is(holds_password('postgres', 'prod2'), 0, '... which hold none of the app\'s passwords');
is(rows_named('postgres', 'prod2'), '0', '... and forgets the dead row');

# --------------------- a registered user mapping dropped and made again
$node->safe_psql('postgres', q{
SELECT heroku_fdw_create_server('prod3', 'registry-app');
SELECT heroku_fdw_add_user_mapping('prod3', 'mallory');
GRANT USAGE ON FOREIGN SERVER prod3 TO mallory;
DROP USER MAPPING FOR mallory SERVER prod3;
});
$node->safe_psql('postgres',
	q{CREATE USER MAPPING FOR mallory SERVER prod3 OPTIONS (user 'm', password 'mallory-own')},
	extra_params => [ '-U', 'mallory' ]);
my $um_sql = q{SELECT u.oid, u.xmin, md5(u.umoptions::text) FROM pg_user_mapping u
  JOIN pg_foreign_server s ON s.oid = u.umserver
 WHERE s.srvname = 'prod3' AND u.umuser = 'mallory'::regrole};
$before = $node->safe_psql('postgres', $um_sql);
rotate();
is(val('postgres', q{SELECT heroku_fdw_refresh('prod3')}), 't',
	'refresh of a server whose registered mapping for mallory was dropped, and made again by mallory');
is($node->safe_psql('postgres', $um_sql), $before, '... leaves mallory\'s own mapping alone');
is(val('postgres', q{SELECT roles FROM heroku_fdw_servers WHERE server = 'prod3'}), '{postgres}',
	'... and mallory leaves the registry\'s roles');

# ------------------------------------------- a server that changed hands
$node->safe_psql('postgres', q{
SELECT heroku_fdw_create_server('prod4', 'registry-app');
ALTER SERVER prod4 OWNER TO mallory;
});
$node->safe_psql('postgres', q{
ALTER SERVER prod4 OPTIONS (SET host 'evil.example');
CREATE USER MAPPING FOR mallory SERVER prod4 OPTIONS (user 'm', password 'mallory-own');
}, extra_params => [ '-U', 'mallory' ]);
$before = catalog_of('postgres', 'prod4');
rotate();
is(val('postgres', q{SELECT heroku_fdw_refresh('prod4')}), 'ERROR 42704',
	'heroku_fdw_refresh of a registered server whose owner changed: 42704');
($out, $err) = val_err('postgres', 'SELECT heroku_fdw_refresh_all()');
like($err,
	qr/WARNING:  01000: forgetting foreign server "prod4" of Heroku app "registry-app": its owner changed/,
	'refresh_all skips it with a WARNING naming the server and the app');
is(catalog_of('postgres', 'prod4'), $before, 'nothing was written into it or its user mappings');
is(rows_named('postgres', 'prod4'), '0', '... and the registry forgot it');

# ---------------------------------------------- a server that was renamed
$node->safe_psql('postgres', q{
SELECT heroku_fdw_create_server('prod5', 'registry-app');
ALTER SERVER prod5 RENAME TO prod5_renamed;
});
is(val('postgres', q{SELECT string_agg(server, ',') FROM heroku_fdw_servers WHERE server LIKE 'prod5%'}),
	'prod5_renamed', 'the registry follows a renamed server');
mallory_server('prod5');
$before = catalog_of('postgres', 'prod5');
rotate();
is(val('postgres', q{SELECT heroku_fdw_refresh('prod5')}), 'ERROR 42704',
	'a server made under the old name is not registered: 42704');
is(val('postgres', q{SELECT heroku_fdw_refresh('prod5_renamed')}), 't',
	'the renamed server is refreshed under its new name');
is(catalog_of('postgres', 'prod5'), $before, '... and nothing is written into the new prod5');

# ------------------------- a server owner who is not a superuser drops it
$node->safe_psql('postgres', q{
CREATE ROLE owner1 LOGIN;
GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO owner1;
GRANT EXECUTE ON FUNCTION heroku_fdw_create_server(name, text, text, name, regrole) TO owner1;
});
$node->safe_psql('postgres', q{
SELECT heroku_fdw_create_server('owned', 'registry-app');
DROP SERVER owned CASCADE;
}, extra_params => [ '-U', 'owner1' ]);
is(rows_named('postgres', 'owned'), '0',
	'a registered server dropped by its owner who is not a superuser is forgotten too');
# Dead registrations of owner1's (dropped while event triggers did not
# fire), with mallory's servers under their names now.
$node->safe_psql('postgres', q{
GRANT EXECUTE ON FUNCTION heroku_fdw_refresh_all(), heroku_fdw_unregister(name) TO owner1, mallory;
});
$node->safe_psql('postgres', q{
SELECT heroku_fdw_create_server('owned2', 'registry-app');
SELECT heroku_fdw_create_server('owned3', 'registry-app');
}, extra_params => [ '-U', 'owner1' ]);
$node->safe_psql('postgres', q{
SET session_replication_role = replica;
DROP SERVER owned2, owned3 CASCADE;
});
mallory_server('owned2');
mallory_server('owned3');
is(val('postgres', q{SELECT heroku_fdw_unregister('owned2')}, 'mallory'), 'ERROR 42704',
	'unregister by the owner of a server made under the name of another\'s dead registration: 42704');
($out, $err) = val_err('postgres', q{SELECT heroku_fdw_refresh_all()}, 'mallory');
is($out, '0', '... her refresh_all leaves it alone');
is(rows_named('postgres', 'owned2'), '1', '... so it stays');
is(val('postgres', q{SELECT heroku_fdw_unregister('owned2')}, 'owner1'), '',
	'the role that registered it, not a superuser, unregisters it by name');
is(rows_named('postgres', 'owned2'), '0', '... and it is gone');
($out, $err) = val_err('postgres', q{SELECT heroku_fdw_refresh_all()}, 'owner1');
like($err,
	qr/WARNING:  01000: forgetting foreign server "owned3" of Heroku app "registry-app": it was dropped/,
	'its refresh_all forgets the other one with a WARNING');
is(rows_named('postgres', 'owned3'), '0', '... row and all');

# --------------------------------------------------- upgrade 1.1 -> 1.2
# What 1.1's heroku_fdw_create_server and heroku_fdw_add_user_mapping
# left, made by hand (1.1's SQL functions would call the new library).
$node->safe_psql('postgres', 'CREATE DATABASE upgrade');
$node->safe_psql('upgrade', q{
CREATE EXTENSION postgres_fdw;
CREATE EXTENSION heroku_resolver VERSION '1.1';
CREATE SERVER up_live FOREIGN DATA WRAPPER postgres_fdw
	OPTIONS (host 'old.example', port '5432', dbname 'rdb', sslmode 'require');
CREATE USER MAPPING FOR postgres SERVER up_live OPTIONS (user 'ruser', password 'old');
CREATE USER MAPPING FOR mallory SERVER up_live OPTIONS (user 'ruser', password 'old');
INSERT INTO heroku_fdw_registry (server, app, config_var, roles, server_options, mapping_options)
VALUES ('up_live', 'registry-app', 'DATABASE_URL', '{postgres,mallory}',
        '{host,port,dbname,sslmode}', '{user,password}'),
       ('up_gone', 'registry-app', 'DATABASE_URL', '{postgres}',
        '{host,port,dbname,sslmode}', '{user,password}');
ALTER EXTENSION heroku_resolver UPDATE TO '1.2';
});
is(val('upgrade', q{
SELECT r.server, r.server_oid = s.oid, r.server_owner,
       r.mapping_oids = (SELECT array_agg(u.umid ORDER BY x.n)
                           FROM unnest(r.roles) WITH ORDINALITY AS x(role, n)
                           JOIN pg_user_mappings u ON u.srvid = s.oid AND u.umuser = x.role),
       cardinality(r.mapping_oids)
  FROM heroku_fdw_registry r LEFT JOIN pg_foreign_server s ON s.srvname = r.server
 ORDER BY 1}),
	"up_gone||||0\nup_live|t|postgres|t|2",
	'the 1.1 -> 1.2 upgrade fills the server\'s OID and owner and its mappings\' OIDs from the catalogs');
is(val('upgrade', q{SELECT heroku_fdw_refresh('up_live')}), 't',
	'the upgraded registration is refreshed');
is(holds_password('upgrade', 'up_live'), 1, '... and its mappings get the password');
($out, $err) = val_err('upgrade', 'SELECT heroku_fdw_refresh_all()');
like($err,
	qr/WARNING:  01000: forgetting foreign server "up_gone" of Heroku app "registry-app": it was dropped/,
	'a registration whose server was gone before the upgrade is forgotten by refresh_all');
is(rows_named('upgrade', 'up_gone'), '0', '... row and all');

# ----------------------------------- pg_dump by a non-superuser database owner
my $tempdir = PostgreSQL::Test::Utils::tempdir;
$node->safe_psql('postgres', q{
CREATE ROLE dbowner LOGIN;
CREATE ROLE dbowner2 LOGIN;
CREATE DATABASE owned_db OWNER dbowner;
});
$node->safe_psql('owned_db', q{
CREATE EXTENSION postgres_fdw;
CREATE EXTENSION heroku_resolver;
SELECT heroku_fdw_create_server('dumped_db', 'registry-app');
});
# 1.3's mutual TLS settings (heroku_tls_files) are superusers' alone, to read and to dump: the
# owner leaves their rows out, as the documentation says
my @owner_dump = ('--exclude-table-data', '*.heroku_tls_files');
$node->command_ok(
	[ 'pg_dump', '-U', 'dbowner', @owner_dump, '-d', 'owned_db', '-f', "$tempdir/owned_db.sql" ],
	'the owner of a database with the extension, not a superuser, can pg_dump it');
ok(slurp_file("$tempdir/owned_db.sql") =~
	  /^COPY public\.heroku_fdw_registry \(server, app,[^\n]*\) FROM stdin;\ndumped_db\tregistry-app\t/m,
	'... with the registry\'s rows');
$node->safe_psql('postgres', 'ALTER DATABASE owned_db OWNER TO dbowner2');
$node->command_ok(
	[ 'pg_dump', '-U', 'dbowner2', @owner_dump, '-d', 'owned_db', '-f', "$tempdir/owned_db2.sql" ],
	'after ALTER DATABASE ... OWNER TO, the new owner can pg_dump it');
is(val('owned_db', q{SELECT has_table_privilege('dbowner', 'heroku_fdw_registry', 'SELECT'),
       has_table_privilege('mallory', 'heroku_fdw_registry', 'SELECT')}),
	'f|f', '... and the former owner and other roles cannot read the registry');

# ------------------------------------------------------- and its restore
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', 'restored', '-f', "$tempdir/owned_db.sql" ],
	'the dump restores into another database');
is(val('restored', q{SELECT server, server_exists FROM heroku_fdw_servers}), 'dumped_db|t',
	'the restored registration names the restored server');
is(val('restored', q{SELECT heroku_fdw_refresh('dumped_db')}), 't',
	'... is refreshed (the dump had the mapping without its options)');
is(val('restored', q{
SELECT r.server_oid = s.oid, r.mapping_oids = ARRAY[u.umid]
  FROM heroku_fdw_registry r JOIN pg_foreign_server s ON s.srvname = r.server
  JOIN pg_user_mappings u ON u.srvid = s.oid}),
	't|t', '... and is bound to the OIDs of the restored database');

# ------------------------------------------------ the background refresher
$node->safe_psql('postgres', q{
SELECT heroku_fdw_create_server('prod6', 'registry-app');
SELECT heroku_fdw_add_user_mapping('prod6', 'mallory');
SET session_replication_role = replica;
DROP SERVER prod6 CASCADE;
});
mallory_server('prod6');
$before = catalog_of('postgres', 'prod6');
rotate();
my $log_offset = -s $node->logfile;
my $t0 = $node->safe_psql('postgres', 'SELECT now()');
$node->append_conf('postgresql.conf', "heroku.refresh_interval = '500ms'");
$node->reload;
$node->poll_query_until('postgres',
	"SELECT worker_last_run > '$t0' FROM heroku_resolver_status()")
  or die 'the refresher never ran';
is(catalog_of('postgres', 'prod6'), $before,
	'the background refresher writes nothing into a server made again under a registered name');
is(holds_password('postgres', 'prod6'), 0, '... which holds none of the app\'s passwords');
is(val('postgres', q{SELECT host FROM heroku_fdw_servers WHERE server = 'good_db'}), "db$round.example",
	'... while it refreshes the registered servers');
like(substr(slurp_file($node->logfile), $log_offset),
	qr/WARNING:  forgetting foreign server "prod6" of Heroku app "registry-app": it was dropped/,
	'... and logs a WARNING naming the server and the app');
is(rows_named('postgres', 'prod6'), '0', '... and forgets the dead row');

# ---------------------------------------------------------------- the end
is(val('upgrade', 'DROP EXTENSION heroku_resolver; SELECT count(*) FROM pg_event_trigger'), '0',
	'DROP EXTENSION takes its event trigger along');
my $log = slurp_file($node->logfile);
ok(!(grep { index($log, $_) >= 0 } @pw), 'no password in the server log');

mock('delete-app', $app);
$node->stop;
done_testing();
