# A database left out of celerysalt.databases: publishing there warns, once
# per transaction, that no worker will deliver its events (they wait in the
# outbox), instead of letting them pile up silently.  As a plain role
# holding celerysalt_publisher.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('unserved');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'celerysalt'
celerysalt.databases = 'served'
celerysalt.broker_url = 'amqp://guest:guest\@127.0.0.1:1/%2F'
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

$node->stop;
done_testing();
