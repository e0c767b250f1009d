# pg_dump and restore (pg_restore --single-transaction) of a database whose
# event log holds delivered and waiting events.  The log and its delivered
# position carry the source cluster's transaction ids:
#  - restored into a younger cluster (lower transaction ids, the position in
#    its future), the worker adopts the log: delivered events stay delivered,
#    waiting ones are delivered once, new events are not taken for delivered;
#  - restored into a cluster further ahead (here: another database of the
#    source), the restored position holds as it is.
# Events are published by a plain role holding only celerysalt_publisher.
# Needs the real RabbitMQ on 127.0.0.1:5672 (guest/guest).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $conf = qq{
shared_preload_libraries = 'celerysalt'
celerysalt.broker_url = 'amqp://guest:guest\@127.0.0.1:5672//'
celerysalt.unroutable = 'drop'
celerysalt.poll_interval = '200ms'
fsync = off
};

my $source = PostgreSQL::Test::Cluster->new('source');
$source->init;
$source->append_conf('postgresql.conf', $conf);
$source->start;
# the source is ahead: a few thousand transaction ids
$source->safe_psql('postgres', q{DO $$BEGIN FOR i IN 1..3000 LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END$$});
$source->safe_psql('postgres', q{
	CREATE EXTENSION celerysalt;
	CREATE ROLE app LOGIN;
	GRANT celerysalt_publisher TO app;});
ok($source->poll_query_until('postgres', 'SELECT broker_connected FROM celerysalt_status'), 'source worker connected');
sub publish
{
	my ($node, $db, $topic, $n) = @_;
	$node->safe_psql($db, "SELECT count(celerysalt_publish('$topic', jsonb_build_object('i', g))) FROM generate_series(1, $n) g",
		extra_params => [ '-U', 'app' ]);
}
publish($source, 'postgres', 'dump.delivered', 5);
ok($source->poll_query_until('postgres', "SELECT count(*) = 5 FROM celerysalt_events"), 'five events delivered in the source');
# cut the broker: the next events wait
$source->safe_psql('postgres', "ALTER SYSTEM SET celerysalt.broker_url = 'amqp://guest:guest\@127.0.0.1:1//'");
$source->reload;
ok($source->poll_query_until('postgres', 'SELECT NOT broker_connected FROM celerysalt_status'), 'source worker disconnected');
publish($source, 'postgres', 'dump.waiting', 3);
sleep 1;
is($source->safe_psql('postgres', 'SELECT pending FROM celerysalt_status'), '3', 'three events wait in the source');

my $dump = $source->basedir . '/db.dump';
$source->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $source->connstr('postgres') ], 'pg_dump');

# ------------------------------------------------------------ a younger cluster
my $target = PostgreSQL::Test::Cluster->new('target');
$target->init;
$target->append_conf('postgresql.conf', $conf);
$target->start;
$target->safe_psql('postgres', 'CREATE ROLE app LOGIN');
$target->command_ok([ 'pg_restore', '--single-transaction', '-d', $target->connstr('postgres'), $dump ],
	'pg_restore --single-transaction into a younger cluster');
ok($target->poll_query_until('postgres', 'SELECT count(*) = 8 FROM celerysalt_events'),
	'the waiting events are delivered, the delivered ones kept');
# role memberships are the cluster's (pg_dumpall --globals-only), not the database's
$target->safe_psql('postgres', 'GRANT celerysalt_publisher TO app');
ok($target->wait_for_log(qr/celerysalt adopted an event log restored from another cluster: 5 delivered events kept, 3 waiting events to deliver/),
	'the worker says it adopted the restored log');
is($target->safe_psql('postgres', 'SELECT delivered_total FROM celerysalt_status'), '3',
	'only the three waiting events were published');
is($target->safe_psql('postgres', "SELECT count(*) FROM celerysalt_events WHERE topic = 'dump.delivered' AND delivered_at IS NOT NULL"),
	'5', 'the delivered ones keep their delivery time');
publish($target, 'postgres', 'dump.new', 2);
ok($target->poll_query_until('postgres', "SELECT count(*) = 2 FROM celerysalt_events WHERE topic = 'dump.new'"),
	'new events in the target are delivered');
is($target->safe_psql('postgres', 'SELECT delivered_total FROM celerysalt_status'), '5', 'each once');
is($target->safe_psql('postgres', 'SELECT count(DISTINCT id) FROM celerysalt_events'), '10', 'ten events, each once in the log');

# ------------------------------------- a database of a cluster further ahead
$source->safe_psql('postgres', "ALTER SYSTEM RESET celerysalt.broker_url");
$source->reload;
$source->safe_psql('postgres', 'CREATE DATABASE copy');
$source->command_ok([ 'pg_restore', '--single-transaction', '-d', $source->connstr('copy'), $dump ],
	'pg_restore --single-transaction into another database of the source');
ok($source->poll_query_until('copy', 'SELECT count(*) = 8 FROM celerysalt_events'),
	'there too the waiting events are delivered');
is($source->safe_psql('copy', 'SELECT delivered_total FROM celerysalt_status'), '3', 'and only they');
publish($source, 'copy', 'dump.new', 1);
ok($source->poll_query_until('copy', "SELECT count(*) = 1 FROM celerysalt_events WHERE topic = 'dump.new'"),
	'a new event is delivered');
ok(!$source->log_contains(qr/adopted an event log/), 'a position behind this cluster needs no adoption');

$target->stop;
$source->stop;
done_testing();
