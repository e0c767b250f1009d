# Security issue, item 2: who may execute what.  The functions PUBLIC and
# each celerysalt role may execute, read from the catalog with no exclusion
# filter, must be exactly the lists in docs/security.md; then the boundaries
# are tried as plain login roles in a database where they may create in
# public.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('privileges');
$node->init;
# no queue is bound for this test's topics: the broker drops its events
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'celerysalt'\ncelerysalt.unroutable = 'drop'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE privdb');
$node->safe_psql('privdb', q{
	CREATE EXTENSION celerysalt;
	CREATE ROLE app_plain LOGIN;
	CREATE ROLE app_publisher LOGIN IN ROLE celerysalt_publisher;
	GRANT CREATE ON SCHEMA public TO app_plain, app_publisher;
});

# The docs: one fenced block per grantee, ```text privileges:<grantee>.
my $doc = slurp_file('docs/security.md');
my %documented;
while ($doc =~ /```text privileges:(\S+)\n(.*?)```/gs)
{
	$documented{$1} = join("\n", sort grep { /\S/ } split /\n/, $2);
}
ok(keys %documented == 4, 'docs/security.md lists the functions of PUBLIC and the three roles');

# The catalog: every function of the extension and who holds EXECUTE on it
# directly (roles also inherit from the roles they are members of; the docs
# list direct grants, and say which role includes which).
for my $grantee ('PUBLIC', 'celerysalt_reader', 'celerysalt_publisher', 'celerysalt_admin')
{
	my $oid = $grantee eq 'PUBLIC' ? '0' : "'$grantee'::regrole";
	my $actual = $node->safe_psql('privdb', qq{
		SELECT p.oid::regprocedure
		  FROM pg_proc p
		  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
		  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'celerysalt',
		       LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
		 WHERE a.grantee = $oid AND a.privilege_type = 'EXECUTE'
		 ORDER BY 1});
	$actual = join("\n", sort split /\n/, $actual);
	is($actual, $documented{$grantee} // '', "functions $grantee may execute match docs/security.md")
	  or append_to_file("$PostgreSQL::Test::Utils::log_path/privileges_$grantee.txt", "$actual\n");
}

# A plain role, with CREATE on public: no RPC, no follow actions, no publish.
for my $sql (
	q{SELECT celerysalt_call('x.y', '{}')},
	q{SELECT celerysalt_call_envelope('x.y', '{}')},
	q{CREATE TABLE t_plain (id int PRIMARY KEY, on_change_rules jsonb); SELECT celerysalt_attach_follow_actions('t_plain')},
	q{SELECT celerysalt_detach_follow_actions('pg_class')},
	q{SELECT celerysalt_publish('x.y', '{}')})
{
	my ($rc, $out, $err) = $node->psql('privdb', $sql, extra_params => ['-U', 'app_plain']);
	like($err, qr/permission denied for function/, "plain role refused: $sql");
}

# A publisher may call RPC only through the configured dispatcher tasks.
my ($rc, $out, $err) = $node->psql('privdb',
	q{SET celerysalt.rpc_task = 'evil.task'; SELECT celerysalt_call('x.y', '{}', '1s')},
	extra_params => ['-U', 'app_publisher', '-v', 'VERBOSITY=verbose']);
like($err, qr/42501: celerysalt.rpc_task "evil.task" is not one of celerysalt.dispatcher_tasks/,
	'publisher cannot send RPC requests to another task');
($rc, $out, $err) = $node->psql('privdb',
	q{CREATE TABLE t_pub (id int PRIMARY KEY, on_change_rules jsonb); SELECT celerysalt_attach_follow_actions('t_pub')},
	extra_params => ['-U', 'app_publisher']);
is($rc, 0, 'publisher attaches follow actions to its own table') or diag($err);

# A role granted SET on celerysalt.redis_url cannot send the Redis password
# file's password to a server of its choice.
my $pwfile = $node->basedir . '/redis.pw';
append_to_file($pwfile, "not-for-you\n");
chmod 0600, $pwfile;
$node->safe_psql('postgres', "ALTER SYSTEM SET celerysalt.redis_password_file = '$pwfile'");
$node->reload;
$node->safe_psql('postgres', 'GRANT SET ON PARAMETER celerysalt.redis_url TO app_publisher');
($rc, $out, $err) = $node->psql('privdb',
	q{SET celerysalt.redis_url = 'redis://127.0.0.1:1/0'; SELECT celerysalt_call('x.y', '{}', '2s')},
	extra_params => ['-U', 'app_publisher']);
like($err, qr/celerysalt\.redis_password_file applies only to a celerysalt\.redis_url from the server's configuration or set by a superuser/,
	'a session URL set by a non-superuser gets no password from the password file');
unlike($err, qr/not-for-you/, '... and the error does not show it');
# nor with a per-database URL applied in a superuser's session
$node->safe_psql('postgres', q{ALTER DATABASE privdb SET celerysalt.redis_url = 'redis://127.0.0.1:1/0'});
($rc, $out, $err) = $node->psql('privdb', q{SELECT celerysalt_call('x.y', '{}', '2s')});
like($err, qr/celerysalt\.redis_password_file applies only to/,
	'a per-database URL gets no password from the file, even in a superuser\'s session');
$node->safe_psql('postgres', 'ALTER DATABASE privdb RESET celerysalt.redis_url');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET celerysalt.redis_password_file');
$node->reload;

# A role that may not drop a database cannot stop its worker by trying to
# (DROP DATABASE fails on permissions after the utility hook ran).
ok($node->poll_query_until('privdb', 'SELECT worker_pid IS NOT NULL FROM celerysalt_status'), 'worker runs');
my $pid = $node->safe_psql('privdb', 'SELECT worker_pid FROM celerysalt_status');
($rc, $out, $err) = $node->psql('postgres', 'DROP DATABASE privdb', extra_params => ['-U', 'app_plain']);
like($err, qr/must be owner of database privdb/, 'a plain role cannot drop the database');
sleep 1;
is($node->safe_psql('privdb', 'SELECT worker_pid FROM celerysalt_status'), $pid,
	'... and its worker kept running');

# Settings a database owner could give the worker's database do not reach
# the worker: read-only transactions and a 1 ms statement_timeout.
my $bootstrap = $node->safe_psql('postgres', 'SELECT rolname FROM pg_roles WHERE oid = 10');
$node->safe_psql('postgres', q{ALTER DATABASE privdb SET default_transaction_read_only = on;
	ALTER DATABASE privdb SET statement_timeout = '1ms';
	ALTER DATABASE privdb SET session_authorization = 'app_plain'});
{
	local $ENV{PGOPTIONS} = "-c default_transaction_read_only=off -c statement_timeout=0 -c session_authorization=$bootstrap";
	$node->safe_psql('privdb', "SELECT pg_terminate_backend($pid)");
	ok($node->poll_query_until('privdb',
		"SELECT worker_pid IS NOT NULL AND worker_pid <> $pid FROM celerysalt_status"), 'worker restarted');
	$node->safe_psql('privdb', q{SELECT celerysalt_publish('priv.readonly', '{"n": 1}')});
	ok($node->poll_query_until('privdb',
		q{SELECT count(*) = 1 FROM celerysalt_events WHERE topic = 'priv.readonly'}),
		'the worker delivers despite the database\'s read-only default, statement_timeout and session_authorization');
}

$node->stop;
done_testing();
