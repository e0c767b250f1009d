# The event log (issue 17): events are delivered in batches by snapshot and
# marked delivered by one position per finished batch, never deleted one by
# one.  As a plain application role holding only celerysalt_publisher:
#  - a transaction that commits after later ones is delivered, not passed
#    over (commits arrive out of event_id order), its events together and
#    in order; a rolled-back one never;
#  - many concurrent transactions: every event delivered exactly once;
#  - finishing costs one position row per batch, not per event, and the
#    log's rows are not deleted or updated (no dead rows);
#  - a transaction held open does not hold back delivery;
#  - retention: a delivered partition is truncated (celerysalt_events then
#    empty, the bookkeeping trimmed), a partition a transaction published
#    into and keeps open is not.
# Needs the real RabbitMQ on 127.0.0.1:5672 (guest/guest).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('log');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'celerysalt'
celerysalt.broker_url = 'amqp://guest:guest\@127.0.0.1:5672//'
celerysalt.unroutable = 'drop'
celerysalt.poll_interval = '200ms'
celerysalt.batch_size = 100
celerysalt.delivered_retention = '1h'
celerysalt.outbox_rotation = '1s'
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION celerysalt;
	CREATE ROLE app LOGIN;
	GRANT celerysalt_publisher TO app;
	GRANT CREATE ON SCHEMA public TO app;});
ok($node->poll_query_until('postgres', 'SELECT broker_connected FROM celerysalt_status'),
	'worker connected to RabbitMQ');

sub sq { return $node->safe_psql('postgres', $_[0]); }
sub as_app { return $node->safe_psql('postgres', $_[0], extra_params => [ '-U', 'app' ]); }
sub delivered { return sq("SELECT count(*) FROM celerysalt_events WHERE topic = '$_[0]'"); }

# ------------------------------------------------- a late commit is not passed over
my $long = $node->background_psql('postgres', extra_params => [ '-U', 'app' ]);
$long->query_safe(q{BEGIN; SELECT celerysalt_publish('log.late', '{"n": 1}')});
as_app(q{SELECT celerysalt_publish('log.early', '{"n": 2}')});
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM celerysalt_events WHERE topic = 'log.early'"),
	'a later transaction is delivered while an earlier one is open');
is(delivered('log.late'), '0', 'the open transaction\'s event is not delivered');
is(sq("SELECT count(*) FROM _celerysalt_outbox WHERE topic = 'log.late'"), '0',
	'nor shown as waiting before it commits');
$long->query_safe(q{SELECT celerysalt_publish('log.late', '{"n": 3}'); COMMIT});
ok($node->poll_query_until('postgres', "SELECT count(*) = 2 FROM celerysalt_events WHERE topic = 'log.late'"),
	'the late commit is delivered (its events were enqueued before the other one\'s)');
is(sq("SELECT string_agg(payload->>'n', ',' ORDER BY event_id) FROM celerysalt_events WHERE topic = 'log.late'"),
	'1,3', 'both of its events');
is(sq("SELECT count(*) FROM _celerysalt_outbox"), '0', 'nothing waits');

as_app(q{BEGIN; SELECT celerysalt_publish('log.rolled_back', '{}'); ROLLBACK;});
as_app(q{SELECT celerysalt_publish('log.marker', '{}')});
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM celerysalt_events WHERE topic = 'log.marker'"),
	'marker delivered');
is(delivered('log.rolled_back'), '0', 'a rolled-back event is never delivered');

# ---------------------------------------- concurrent transactions, exactly once each
my $positions_before = sq('SELECT count(*) FROM _celerysalt_log_position');
my @sessions;
for my $s (1 .. 4)
{
	my $bg = $node->background_psql('postgres', extra_params => [ '-U', 'app' ]);
	$bg->query_safe("BEGIN; SELECT count(celerysalt_publish('log.many', jsonb_build_object('s', $s, 'i', g))) FROM generate_series(1, 250) g");
	push @sessions, $bg;
}
# commit in reverse order of their first publish
$_->query_safe('COMMIT') for reverse @sessions;
$_->quit for @sessions;
as_app(q{SELECT count(celerysalt_publish('log.many', jsonb_build_object('s', 0, 'i', g))) FROM generate_series(1, 1000) g});
ok($node->poll_query_until('postgres', "SELECT count(*) = 2000 FROM celerysalt_events WHERE topic = 'log.many'"),
	'2,000 events of five transactions delivered');
is(sq("SELECT count(DISTINCT id) FROM celerysalt_events WHERE topic = 'log.many'"), '2000', 'each once');
is(sq("SELECT count(*) FROM celerysalt_events WHERE delivered_at IS NULL OR delivered_at < enqueued_at"), '0',
	'every delivered event has its delivery time, after its enqueue');
cmp_ok(sq("SELECT count(DISTINCT delivered_at) FROM celerysalt_events WHERE topic = 'log.many'"), '>', 1,
	'(from the position that first covered it: batches finish at different times)');
is(sq("SELECT bool_and(ok) FROM (SELECT array_agg((payload->>'i')::int ORDER BY event_id) = array_agg((payload->>'i')::int ORDER BY (payload->>'i')::int) AS ok"
	  . " FROM celerysalt_events WHERE topic = 'log.many' GROUP BY payload->>'s') x"),
	't', 'each transaction\'s events in order');
my $positions = sq('SELECT count(*) FROM _celerysalt_log_position') - $positions_before;
cmp_ok($positions, '<=', 40, "finishing 2,000 events (batch_size 100) recorded $positions positions, not one per event");
is(sq("SELECT coalesce(sum(n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables WHERE relname LIKE '\\_celerysalt\\_log\\__'"),
	'0', 'no log row was updated or deleted');
is(sq('SELECT count(*) FROM _celerysalt_outbox'), '0', 'nothing waits');

# the worker restarts from the recorded position: nothing delivered again
$node->restart;
ok($node->poll_query_until('postgres', 'SELECT broker_connected FROM celerysalt_status'), 'worker back after a restart');
as_app(q{SELECT celerysalt_publish('log.restart2', '{}')});
ok($node->poll_query_until('postgres', "SELECT delivered_total = 1 FROM celerysalt_status"),
	'after a restart it delivers the new event only (2,000 delivered ones in the log)');


# ------------------------------------------- an open transaction holds nothing back
my $held = $node->background_psql('postgres', extra_params => [ '-U', 'app' ]);
$held->query_safe(q{BEGIN; SELECT celerysalt_publish('log.held', '{}')});
my $held_pid = $held->query_safe('SELECT pg_backend_pid()');
# the partition it wrote into: the one it holds a lock on
my $held_slot = sq("SELECT right(c.relname, 1) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
	  . " WHERE l.pid = $held_pid AND c.relname LIKE '\\_celerysalt\\_log\\__'");
like($held_slot, qr/^[012]$/, "the open transaction wrote into partition $held_slot");
# publish (once per poll) until publishers have moved to another partition
ok($node->poll_query_until('postgres',
	"SELECT celerysalt_publish('log.after_held', '{}') IS NULL"
	  . " OR (SELECT count(*) > 0 FROM _celerysalt_log WHERE topic = 'log.after_held' AND slot <> $held_slot)"),
	'publishers rotate to another partition');
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM _celerysalt_outbox WHERE topic = 'log.after_held'"),
	'delivery goes on while a publishing transaction stays open');

# ---------------------------------------------------------------- retention
my %relfile = map { $_ => sq("SELECT relfilenode FROM pg_class WHERE relname = '_celerysalt_log_$_'") } 0 .. 2;
sq("ALTER SYSTEM SET celerysalt.delivered_retention = 0");
$node->reload;
ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM celerysalt_events WHERE topic <> 'log.held' AND topic <> 'log.after_held'"
	  . " AND (SELECT slot FROM _celerysalt_log l WHERE l.id = celerysalt_events.id) <> $held_slot"),
	'delivered partitions are truncated once the retention is over');
ok($node->poll_query_until('postgres',
	"SELECT count(*) > 0 FROM pg_class WHERE relname IN ('_celerysalt_log_0', '_celerysalt_log_1', '_celerysalt_log_2')"
	  . " AND relfilenode <> ALL (ARRAY[$relfile{0}, $relfile{1}, $relfile{2}]::oid[])"),
	'(a new relfilenode: TRUNCATE)');
is(sq("SELECT relfilenode FROM pg_class WHERE relname = '_celerysalt_log_$held_slot'"), $relfile{$held_slot},
	'the partition an open transaction published into is kept');
$held->query_safe('COMMIT');
$held->quit;
ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM _celerysalt_log WHERE topic = 'log.held'"),
	'once it commits, its event is delivered and its partition truncated in turn');
ok($node->poll_query_until('postgres', 'SELECT count(*) = 0 FROM celerysalt_events'), 'the log is empty');
ok($node->poll_query_until('postgres', 'SELECT count(*) <= 2 FROM _celerysalt_log_position'),
	'the positions no event needs are trimmed');
is(sq('SELECT count(*) FROM _celerysalt_log_undelivered'), '0', 'no undelivered marks are left');

# ------------------------------------------------ big events: bounded memory
# 300 events of 900 kB wait (broker cut), then go out (retention 0 by now:
# counted, not looked up): a read holds about
# 8 MB of payloads, so the worker's peak memory stays far below the 270 MB
# of events (before the bound one read took 300 of them, over 500 MB).
sq("ALTER SYSTEM SET celerysalt.broker_url = 'amqp://guest:guest\@127.0.0.1:1//'");
$node->reload;
ok($node->poll_query_until('postgres', 'SELECT NOT broker_connected FROM celerysalt_status'), 'broker cut');
as_app(q{SELECT count(celerysalt_publish('log.big', jsonb_build_object('i', g, 'blob', repeat('x', 900000)))) FROM generate_series(1, 100) g})
  for 1 .. 3;
my $worker_pid = sq('SELECT worker_pid FROM celerysalt_status');
my $before = sq('SELECT delivered_total FROM celerysalt_status');
sq("ALTER SYSTEM RESET celerysalt.broker_url");
$node->reload;
ok($node->poll_query_until('postgres', "SELECT delivered_total = $before + 300 AND pending = 0 FROM celerysalt_status"),
	'300 events of 900 kB delivered');
my ($peak_kb) = slurp_file("/proc/$worker_pid/status") =~ /^VmHWM:\s+(\d+) kB/m;
cmp_ok($peak_kb, '<', 300 * 1024, "the worker's peak memory stayed at $peak_kb kB");

$node->stop;
done_testing();
