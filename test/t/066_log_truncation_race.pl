# Truncating a delivered log partition must never take an event that waits
# with it.  A publisher reads the insert slot from shared memory and only
# then locks that partition, so one that read it just before a rotation
# appends to the partition the worker is about to truncate.  The worker
# holds the partition's exclusive lock when it looks for waiting events,
# but that look must see every transaction that committed before the lock
# was granted, not only those that had committed when its transaction
# began.
#
# The interleaving is forced with locks a superuser takes, standing in for
# the scheduler: the publisher (a plain role holding only
# celerysalt_publisher) is held between reading the slot and inserting, and
# the worker between starting its transaction and locking the partition;
# the publisher then commits inside that gap.
# Needs the real RabbitMQ on 127.0.0.1:5672 (guest/guest).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('race');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'celerysalt'
celerysalt.broker_url = 'amqp://guest:guest\@127.0.0.1:5672//'
celerysalt.unroutable = 'drop'
celerysalt.poll_interval = '100ms'
celerysalt.delivered_retention = 0
celerysalt.outbox_rotation = '1s'
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION celerysalt;
	CREATE ROLE app LOGIN;
	GRANT celerysalt_publisher TO app;});
ok($node->poll_query_until('postgres', 'SELECT broker_connected FROM celerysalt_status'),
	'worker connected to RabbitMQ');

sub sq { return $node->safe_psql('postgres', $_[0]); }

my $worker = sq('SELECT worker_pid FROM celerysalt_status');

# An event delivered into the current partition (an empty partition is
# never truncated), then every partition held, so that the publisher blocks
# on the current one: the same, unless a rotation came in between (retry).
my (@part, $app, $app_pid, $slot);
for my $try (1 .. 5)
{
	my $id = sq("SELECT celerysalt_publish('race.early', jsonb_build_object('try', $try))");
	my $early = sq("SELECT slot FROM _celerysalt_log WHERE id = '$id'");
	for my $s (0 .. 2)
	{
		$part[$s] = $node->background_psql('postgres');
		$part[$s]->query_safe("BEGIN; LOCK _celerysalt_log_$s IN SHARE MODE");
	}
	$app = $node->background_psql('postgres', extra_params => [ '-U', 'app' ]);
	$app_pid = $app->query_safe('SELECT pg_backend_pid()');
	$app->query_until(qr/publishing/, "\\echo publishing\nSELECT celerysalt_publish('race.late', '{}');\n");
	$node->poll_query_until('postgres', "SELECT count(*) = 1 FROM pg_locks WHERE pid = $app_pid AND NOT granted")
	  or die 'the publisher does not wait for its partition';
	$slot = sq("SELECT right(c.relname, 1) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
		  . " WHERE l.pid = $app_pid AND NOT l.granted");
	last if $slot eq $early;
	$_->query_safe('COMMIT') for @part;
	$_->quit for @part, $app;
	sq("SELECT pg_sleep(0.2)");
}
like($slot, qr/^[012]$/, "the publisher read insert slot $slot and waits for its partition");
ok($node->poll_query_until('postgres', "SELECT count(*) > 0 FROM celerysalt_events WHERE topic = 'race.early'"
	  . " AND id IN (SELECT id FROM _celerysalt_log WHERE slot = $slot)"),
	"an earlier event in partition $slot is delivered");
$part[$_]->query_safe('COMMIT') for grep { $_ != $slot } 0 .. 2;

# once the worker has rotated away from that slot, it tries to truncate it
# (and cannot while the publisher waits); hold it inside that try
my $slots = $node->background_psql('postgres');
$slots->query_safe('BEGIN; LOCK _celerysalt_log_slots IN ACCESS EXCLUSIVE MODE');
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_locks WHERE pid = $worker AND NOT granted"
	  . " AND relation = '_celerysalt_log_slots'::regclass"),
	'the worker is inside a truncation try (its transaction begun, the partition not locked yet)');

# the publisher appends to that partition and commits
$part[$slot]->query_safe('COMMIT');
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $app_pid AND state <> 'idle'"),
	'the publisher committed');
is(sq("SELECT count(*) FROM _celerysalt_log WHERE topic = 'race.late' AND slot = $slot"), '1',
	"its event is in partition $slot");

# let the worker go on: it delivers the event, then (retention 0)
# truncates the partition
my $delivered = sq('SELECT delivered_total FROM celerysalt_status');
$slots->query_safe('COMMIT');
ok($node->poll_query_until('postgres', "SELECT NOT EXISTS (SELECT FROM _celerysalt_log WHERE topic = 'race.late')"),
	"partition $slot is truncated");
is(sq('SELECT delivered_total FROM celerysalt_status') - $delivered, 1,
	'the event was delivered first, not truncated away');

$_->quit for @part, $app, $slots;
$node->stop;
done_testing();
