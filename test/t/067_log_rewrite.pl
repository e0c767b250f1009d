# An event the broker returned (no queue bound) goes to celerysalt_unroutable
# even when its log partition was rewritten between its read and its
# finish.  VACUUM FULL moves rows (dropping the dead ones of rolled-back
# publishes), and a database owner who is not a superuser may run it on the
# whole database, the extension's tables included (or on the log's
# partitions, when it may use the extension's schema); the worker holds no
# lock while the broker has a batch.  The finish must find the events it read by
# what they are, not by where they were.
#
# The worker is held inside its finish by a lock a superuser takes (standing
# in for a slow broker); the publisher holds only celerysalt_publisher.
# Needs the real RabbitMQ on 127.0.0.1:5672 (guest/guest).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('rewrite');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'celerysalt'
celerysalt.broker_url = 'amqp://guest:guest\@127.0.0.1:5672//'
celerysalt.unroutable = 'keep'
celerysalt.poll_interval = '100ms'
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE ROLE owner LOGIN;
	CREATE ROLE app LOGIN;
	CREATE DATABASE shop OWNER owner;});
$node->safe_psql('shop', q{
	CREATE SCHEMA celerysalt;
	CREATE EXTENSION celerysalt SCHEMA celerysalt;
	GRANT celerysalt_publisher TO app;
	GRANT celerysalt_reader TO owner;});
ok($node->poll_query_until('shop', 'SELECT broker_connected FROM celerysalt.celerysalt_status'),
	'worker connected to RabbitMQ');

sub sq { return $node->safe_psql('shop', $_[0]); }
sub as_app { return $node->safe_psql('shop', $_[0], extra_params => [ '-U', 'app' ]); }

my $worker = sq('SELECT worker_pid FROM celerysalt.celerysalt_status');
# let the first requeue round pass (it would wait for the lock below too)
sq('SELECT pg_sleep(0.5)');

# dead rows ahead of the events: a rolled-back publish
as_app(q{BEGIN; SELECT count(celerysalt.celerysalt_publish('rewrite.rolled_back', '{}')) FROM generate_series(1, 200); ROLLBACK;});

# hold the worker in the finish of the next batch
my $hold = $node->background_psql('shop');
$hold->query_safe('BEGIN; LOCK celerysalt.celerysalt_unroutable IN ACCESS EXCLUSIVE MODE');
as_app(q{SELECT celerysalt.celerysalt_publish('rewrite.nobody_listens', jsonb_build_object('n', g)) FROM generate_series(1, 2) g});
ok($node->poll_query_until('shop',
	"SELECT count(*) = 1 FROM pg_locks WHERE pid = $worker AND NOT granted"
	  . " AND relation = 'celerysalt.celerysalt_unroutable'::regclass"),
	'the broker returned the batch and the worker is finishing it');

# the database owner rewrites the log
my ($ret, $out, $err) = $node->psql('shop',
	'VACUUM FULL celerysalt._celerysalt_log_0, celerysalt._celerysalt_log_1, celerysalt._celerysalt_log_2',
	extra_params => [ '-U', 'owner' ]);
is($ret, 0, 'the database owner ran VACUUM FULL on the log') or diag($err);
$hold->query_safe('COMMIT');
$hold->quit;

ok($node->poll_query_until('shop',
	"SELECT count(*) = 2 FROM celerysalt.celerysalt_unroutable WHERE topic = 'rewrite.nobody_listens'"),
	'both returned events wait in celerysalt_unroutable');
is(sq("SELECT count(*) FROM celerysalt.celerysalt_events WHERE topic = 'rewrite.nobody_listens'"), '0',
	'neither is shown as delivered');

$node->stop;
done_testing();
