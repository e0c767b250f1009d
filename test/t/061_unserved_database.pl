# Which databases have a worker, and why not (issue 16, item 2).  A database
# left out of celerysalt.databases: publishing there warns, once per
# transaction, that no worker will deliver its events (they wait in the
# outbox).  celerysalt_cluster_status shows every database with the reason
# it has no worker, read by a plain role holding celerysalt_reader; changes
# of the list apply at reload in both directions; an exhausted
# max_worker_processes is named.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('unserved');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'celerysalt'
celerysalt.databases = 'served, bare'
celerysalt.broker_url = 'amqp://guest:guest\@127.0.0.1:1//'
});
$node->start;
for my $db ('served', 'unserved')
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, q{CREATE EXTENSION celerysalt;
		DO $$ BEGIN CREATE ROLE app_pub IN ROLE celerysalt_publisher; EXCEPTION WHEN duplicate_object THEN NULL; END $$;});
}

my ($stdout, $stderr);
$node->psql('unserved', q{SET ROLE app_pub;
	BEGIN;
	SELECT celerysalt_publish('unserved.a', '{}');
	SELECT celerysalt_publish('unserved.b', '{}');
	COMMIT;}, stdout => \$stdout, stderr => \$stderr);
my @warnings = $stderr =~ /WARNING:  database "unserved" is not in celerysalt\.databases/g;
is(scalar @warnings, 1, 'one warning per transaction in a database left out of celerysalt.databases')
  or diag($stderr);
like($stderr, qr/HINT:  Add the database to celerysalt\.databases/, 'the warning says how to fix it');
is($node->safe_psql('unserved', 'SELECT pending FROM celerysalt_status'), '2', 'the events wait in the outbox');

$node->psql('served', q{SET ROLE app_pub; SELECT celerysalt_publish('served.a', '{}')},
	stdout => \$stdout, stderr => \$stderr);
unlike($stderr, qr/WARNING/, 'no warning in a served database');

# the cluster-wide view, as a reader
$node->safe_psql('postgres', 'CREATE DATABASE bare');    # served, but without the extension
$node->reload;    # a reload wakes the launcher, which then visits the new database
$node->safe_psql('served', 'CREATE ROLE watcher IN ROLE celerysalt_reader');
sub cluster
{
	return $node->safe_psql('served', q{SET ROLE watcher;
		SELECT database, served, worker_pid IS NOT NULL, coalesce(reason, '-')
		  FROM celerysalt_cluster_status WHERE database IN ('served', 'unserved', 'bare') ORDER BY 1});
}
sub poll_cluster
{
	my ($want) = @_;
	my $got;
	for (1 .. 300)
	{
		$got = cluster();
		return $got if $got eq $want;
		$node->safe_psql('bare', 'SELECT 1');    # nothing to do but wait
		select(undef, undef, undef, 0.1);
	}
	return $got;
}
is(poll_cluster("bare|t|f|extension celerysalt not installed\nserved|t|t|-\nunserved|f|f|not listed in celerysalt.databases"),
	"bare|t|f|extension celerysalt not installed\nserved|t|t|-\nunserved|f|f|not listed in celerysalt.databases",
	'every database with its worker, or the reason it has none');

# list changes apply at reload, in both directions
$node->append_conf('postgresql.conf', "celerysalt.databases = 'unserved, bare'\n");
$node->reload;
is(poll_cluster("bare|t|f|extension celerysalt not installed\nserved|f|f|not listed in celerysalt.databases\nunserved|t|t|-"),
	"bare|t|f|extension celerysalt not installed\nserved|f|f|not listed in celerysalt.databases\nunserved|t|t|-",
	'removing a database stops its worker; adding one starts it');
ok($node->poll_query_until('unserved', q{SELECT last_error ~ 'connect' FROM celerysalt_status}),
	'the new worker tries to deliver the events that waited (the broker is unreachable here)');

# no background worker slot left: the reason names max_worker_processes
$node->append_conf('postgresql.conf', "celerysalt.databases = ''\nmax_worker_processes = 2\n");
$node->restart;
my $reasons = '';
for (1 .. 300)
{
	$reasons = $node->safe_psql('served', q{SELECT string_agg(database || ': ' || coalesce(reason, 'running'), ', ' ORDER BY database)
		FROM celerysalt_cluster_status WHERE database IN ('served', 'unserved', 'postgres')});
	last if $reasons =~ /max_worker_processes/;
	select(undef, undef, undef, 0.1);
}
like($reasons, qr/raise max_worker_processes/, 'an exhausted max_worker_processes is named') or diag($reasons);

$node->stop;
done_testing();
