# Issue 12, item 7(b): a URL password must never be stored where other roles
# read it.  ALTER DATABASE/ROLE ... SET (stored in the world-readable
# pg_db_role_setting), a function's SET clause (pg_proc.proconfig), SET and
# SET LOCAL refuse broker_url and redis_url values that hold a password, for
# the database owner who was granted SET on the parameter and for superusers
# alike, with 42501 and a hint towards the password-file settings.  A value
# stored before (e.g. by an older version) is refused when a session starts.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('secret_db_role');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'celerysalt'
celerysalt.broker_url = 'amqp://guest:guest\@127.0.0.1:5672//'
});
$node->start;
$node->safe_psql('postgres', q{
CREATE ROLE owner LOGIN;
CREATE ROLE plain LOGIN;
CREATE DATABASE appdb OWNER owner;
GRANT SET ON PARAMETER celerysalt.redis_url TO owner;
});
# appdb's owner is not a superuser, so its public schema is refused
# (docs/security.md): the extension goes into a schema of its own.
$node->safe_psql('appdb', 'CREATE SCHEMA celerysalt; CREATE EXTENSION celerysalt SCHEMA celerysalt');

my @secrets;

# Run $sql as $user in appdb; it must fail with 42501, a hint naming the
# password file, and without the password in what the client sees.
sub refused
{
	my ($user, $sql, $secret, $what) = @_;
	push @secrets, $secret;
	my ($ret, $out, $err) = $node->psql('appdb', "\\set VERBOSITY verbose\n$sql",
		extra_params => [ '-U', $user ]);
	isnt($ret, 0, "$what: refused");
	like($err, qr/ERROR:  42501: a password in parameter "celerysalt\.redis_url" can only be set in the server's configuration file/,
		"$what: 42501");
	like($err, qr/HINT:  .*celerysalt\.redis_password_file/, "$what: hint names the password file");
	unlike($err . $out, qr/\Q$secret\E/, "$what: the client does not see the password");
}

refused('owner', "ALTER DATABASE appdb SET celerysalt.redis_url = 'redis://:DbOwnerPw1\@127.0.0.1:6379/0'",
	'DbOwnerPw1', 'owner: ALTER DATABASE SET');
refused('owner', "ALTER ROLE owner SET celerysalt.redis_url = 'redis://user:RoleOwnPw2\@127.0.0.1:6379/0'",
	'RoleOwnPw2', 'owner: ALTER ROLE (itself) SET');
refused('owner', "ALTER ROLE owner IN DATABASE appdb SET celerysalt.redis_url = 'redis://:RoleDbPw3\@127.0.0.1/0'",
	'RoleDbPw3', 'owner: ALTER ROLE IN DATABASE SET');
refused('owner', "SET celerysalt.redis_url = 'redis://:SessionPw4\@127.0.0.1:6379/0'",
	'SessionPw4', 'owner: SET');
refused('owner', "BEGIN; SET LOCAL celerysalt.redis_url = 'redis://:LocalPw5\@127.0.0.1:6379/0'",
	'LocalPw5', 'owner: SET LOCAL');
refused('owner', "SELECT set_config('celerysalt.redis_url', 'redis://:SetConfigPw6\@127.0.0.1:6379/0', false)",
	'SetConfigPw6', 'owner: set_config()');
refused('owner', "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET celerysalt.redis_url = 'redis://:FuncPw7\@h/0' AS 'SELECT 1'",
	'FuncPw7', 'owner: CREATE FUNCTION ... SET');
# Refused for superusers too: the stored value would be world-readable.
refused('postgres', "ALTER DATABASE appdb SET celerysalt.redis_url = 'redis://:SuperDbPw8\@127.0.0.1:6379/0'",
	'SuperDbPw8', 'superuser: ALTER DATABASE SET');
refused('postgres', "ALTER ROLE plain SET celerysalt.redis_url = 'redis://:SuperRolePw9\@127.0.0.1:6379/0'",
	'SuperRolePw9', 'superuser: ALTER ROLE SET');

# broker_url is a sighup setting: never per database or per role.
my ($ret, $out, $err) = $node->psql('appdb',
	"\\set VERBOSITY verbose\nALTER DATABASE appdb SET celerysalt.broker_url = 'amqp://u:BrokerDbPw10\@h//'");
like($err, qr/55P02: parameter "celerysalt\.broker_url" cannot be changed now/, 'broker_url: ALTER DATABASE SET refused');
push @secrets, 'BrokerDbPw10';

# A URL without a password is fine in all these places.
$node->safe_psql('appdb', "ALTER DATABASE appdb SET celerysalt.redis_url = 'redis://127.0.0.1:6379/2'",
	extra_params => [ '-U', 'owner' ]);
is($node->safe_psql('appdb', 'SHOW celerysalt.redis_url'), 'redis://127.0.0.1:6379/2',
	'a URL without password is still accepted per database');

# Nothing readable by a plain role holds a password.
my $catalog = $node->safe_psql('appdb',
	'SELECT setconfig::text FROM pg_db_role_setting UNION ALL SELECT proconfig::text FROM pg_proc WHERE proconfig IS NOT NULL',
	extra_params => [ '-U', 'plain' ]);
unlike($catalog, qr/\Q$_\E/, "pg_db_role_setting/pg_proc: no $_") for @secrets;
like($catalog, qr{redis://127\.0\.0\.1:6379/2}, 'the accepted setting is there');

# A value stored before this check existed is refused when it is applied,
# with a WARNING, and the setting keeps the server's value.
$node->safe_psql('postgres', q{
UPDATE pg_db_role_setting
   SET setconfig = '{celerysalt.redis_url=redis://:LegacyPw11@127.0.0.1:6379/3}'
 WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = 'appdb') AND setrole = 0;
});
push @secrets, 'LegacyPw11';
# The query docs/configuration.md gives to find such values.
is($node->safe_psql('postgres', q{
SELECT d.datname, s.setrole::regrole, s.setconfig
  FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase
 WHERE array_to_string(s.setconfig, ' ') ~ 'celerysalt\.(broker|redis)_url=\S*:\S*@';
}), 'appdb|-|{celerysalt.redis_url=redis://:LegacyPw11@127.0.0.1:6379/3}', 'the documented query finds it');
($ret, $out, $err) = $node->psql('appdb', 'SHOW celerysalt.redis_url');
is($out, 'redis://127.0.0.1:6379/0', 'a stored value with a password is not applied');
like($err, qr/WARNING:  a password in parameter "celerysalt\.redis_url" can only be set in the server's configuration file/,
	'the session start warns about it');
unlike($err, qr/LegacyPw11/, 'the warning does not show the password');
$ret = $node->psql('appdb', 'SELECT 1', extra_params => [ '-U', 'owner' ]);
is($ret, 0, 'the owner can still connect');

my $log = slurp_file($node->logfile);
unlike($log, qr/\Q$_\E/, "server log: no $_") for @secrets;

done_testing();
