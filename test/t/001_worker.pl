# The launcher and the per-database worker: start, serve only databases with
# the extension, stop for DROP DATABASE and DROP EXTENSION without hanging,
# come back after a crash, stay idle on a hot standby.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'celerysalt'
celerysalt.poll_interval = '200ms'
restart_after_crash = on
});
$node->start;

ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'celerysalt launcher'"),
	'launcher runs');

# No extension anywhere: no worker stays up.
sleep 1;
is($node->safe_psql('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'celerysalt worker'"),
	'0', 'no worker without the extension');

# CREATE EXTENSION starts the database's worker at commit.
$node->safe_psql('postgres', 'CREATE DATABASE app');
$node->safe_psql('app', 'CREATE EXTENSION celerysalt');
ok($node->poll_query_until('app',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'celerysalt worker' AND datname = 'app'"),
	'worker started by CREATE EXTENSION');
ok($node->poll_query_until('app', "SELECT worker_pid IS NOT NULL FROM celerysalt_status"),
	'status view shows the worker');

# SIGHUP reaches the worker (reload of a setting it uses).
$node->safe_psql('app', "ALTER SYSTEM SET celerysalt.batch_size = 123");
$node->reload;
ok($node->poll_query_until('app', "SELECT current_setting('celerysalt.batch_size') = '123'"),
	'reload applied');

# A killed worker is restarted (postmaster crash-restarts, launcher restarts it).
my $pid = $node->safe_psql('app', "SELECT worker_pid FROM celerysalt_status");
kill 'KILL', $pid;
ok($node->poll_query_until('app',
	"SELECT worker_pid IS NOT NULL AND worker_pid <> $pid FROM celerysalt_status"),
	'worker restarted after SIGKILL');

# DROP EXTENSION does not hang and the worker goes away.
my $t0 = time;
$node->safe_psql('app', 'DROP EXTENSION celerysalt');
ok(time - $t0 < 10, 'DROP EXTENSION returned promptly');
ok($node->poll_query_until('app',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'celerysalt worker' AND datname = 'app'"),
	'worker exits after DROP EXTENSION');

# Re-create, then DROP DATABASE must not fail with "being accessed by other users".
$node->safe_psql('app', 'CREATE EXTENSION celerysalt');
ok($node->poll_query_until('app',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'celerysalt worker' AND datname = 'app'"),
	'worker back after CREATE EXTENSION');
$t0 = time;
my ($ret, $out, $err) = $node->psql('postgres', 'DROP DATABASE app');
is($ret, 0, 'DROP DATABASE succeeds while a worker served it') or diag($err);
ok(time - $t0 < 10, 'DROP DATABASE returned promptly');

# Publishing requires preload: a server without it says so (55000).
my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init;
$plain->start;
$plain->safe_psql('postgres', 'CREATE EXTENSION celerysalt');
($ret, $out, $err) = $plain->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT celerysalt_publish('a.b', '{}')");
like($err, qr/55000: celerysalt must be loaded via shared_preload_libraries/, 'publish without preload: 55000');
$plain->stop;

# A hot standby runs no celerysalt process.
$node->safe_psql('postgres', 'CREATE EXTENSION celerysalt');
$node->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'b1', has_streaming => 1);
$standby->start;
$node->wait_for_catchup($standby);
sleep 1;
is($standby->safe_psql('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'celerysalt%'"),
	'0', 'standby is idle');
$standby->stop;

# Clean shutdown with a worker running.
$node->stop('fast');
like(slurp_file($node->logfile), qr/database system is shut down/, 'clean shutdown');

done_testing();
