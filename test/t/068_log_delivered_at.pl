# Every delivered event has its delivered_at in celerysalt_events (and so is
# found by celerysalt_replay_since): the position recorded after its batch
# must have it between its snapshots lo and hi.  A read that finished one
# snapshot's batch and went on into the next, or a finish of several
# batches that recorded only the last position, left the earlier events
# covered by lo alone: delivered, with a NULL delivered_at.
#
# The worker is held inside a read, after its snapshot, by a lock a
# superuser takes on an unused partition (standing in for the scheduler),
# while a second transaction commits; batch_size 2 splits the first one.
# The publisher holds only celerysalt_publisher.
# Needs the real RabbitMQ on 127.0.0.1:5672 (guest/guest).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('delivered_at');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'celerysalt'
celerysalt.broker_url = 'amqp://guest:guest\@127.0.0.1:5672//'
celerysalt.unroutable = 'drop'
celerysalt.poll_interval = '100ms'
celerysalt.batch_size = 2
celerysalt.outbox_rotation = '1h'
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION celerysalt;
	CREATE ROLE app LOGIN;
	GRANT celerysalt_publisher TO app;});
ok($node->poll_query_until('postgres', 'SELECT broker_connected FROM celerysalt_status'),
	'worker connected to RabbitMQ');

sub sq { return $node->safe_psql('postgres', $_[0]); }
sub as_app { return $node->safe_psql('postgres', $_[0], extra_params => [ '-U', 'app' ]); }

my $worker = sq('SELECT worker_pid FROM celerysalt_status');
my $id = as_app(q{SELECT celerysalt_publish('at.first', '{}')});
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM celerysalt_events WHERE topic = 'at.first'"),
	'a first event is delivered');
my $slot = sq("SELECT slot FROM _celerysalt_log WHERE id = '$id'");
my $other = ($slot + 1) % 3;

# the worker's next read will wait for this (unused) partition
my $hold = $node->background_psql('postgres');
$hold->query_safe("BEGIN; LOCK _celerysalt_log_$other IN ACCESS EXCLUSIVE MODE");
as_app(q{SELECT count(celerysalt_publish('at.a', jsonb_build_object('n', g))) FROM generate_series(1, 3) g});
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_locks WHERE pid = $worker AND NOT granted"
	  . " AND relation = '_celerysalt_log_$other'::regclass"),
	'the worker reads transaction a (three events) and waits');
as_app(q{SELECT celerysalt_publish('at.b', '{"n": 1}')});
$hold->query_safe('COMMIT');
$hold->quit;

ok($node->poll_query_until('postgres', "SELECT count(*) = 4 FROM celerysalt_events WHERE topic IN ('at.a', 'at.b')"),
	'a and b are delivered');
is(sq("SELECT string_agg(topic || ':' || (payload->>'n') || ':' || (delivered_at IS NOT NULL), ' ' ORDER BY event_id)"
	  . " FROM celerysalt_events WHERE topic IN ('at.a', 'at.b')"),
	'at.a:1:true at.a:2:true at.a:3:true at.b:1:true', 'each has its delivered_at');
is(sq("SELECT count(*) FROM celerysalt_events WHERE delivered_at < enqueued_at"), '0',
	'never before it was enqueued');
is(sq("SELECT celerysalt_replay_since(now() - interval '1 hour', NULL, 'at.a')"), '3',
	'celerysalt_replay_since finds all three');

$node->stop;
done_testing();
