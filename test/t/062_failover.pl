# Database failover (issue 16, item 5): events committed on a primary with a
# synchronous streaming standby are delivered after the standby is promoted.
# The standby runs no celerysalt process while it is in recovery (the
# launcher starts when recovery ends); at promotion its launcher starts a
# worker, which drains the outbox the primary left.  0 lost, each event in
# the delivered log once.  The events are published by a plain role holding
# celerysalt_publisher.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $events = 1000;
my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
# the primary cannot reach a broker: everything it commits waits in its outbox
$primary->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'celerysalt'
celerysalt.broker_url = 'amqp://guest:guest\@127.0.0.1:1//'
celerysalt.unroutable = 'drop'
celerysalt.poll_interval = '100ms'
});
$primary->start;
$primary->safe_psql('postgres', q{CREATE EXTENSION celerysalt; CREATE ROLE app LOGIN IN ROLE celerysalt_publisher});
$primary->backup('base');

my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
# the standby's broker is the real one (127.0.0.1:5672 guest/guest); no
# queue is bound for the test topic, so the broker drops what it confirms
$standby->append_conf('postgresql.conf', qq{
celerysalt.broker_url = 'amqp://guest:guest\@127.0.0.1:5672//'
});
$standby->start;
$primary->append_conf('postgresql.conf', "synchronous_standby_names = 'standby'\n");
$primary->reload;
ok($primary->poll_query_until('postgres',
	q{SELECT sync_state = 'sync' FROM pg_stat_replication WHERE application_name = 'standby'}),
	'the standby replicates synchronously');

# publish in 10 transactions of 100, as the plain role
for my $t (0 .. 9)
{
	$primary->safe_psql('postgres', qq{SET ROLE app;
		SELECT count(celerysalt_publish('failover.event', jsonb_build_object('n', i)))
		  FROM generate_series($t * 100 + 1, $t * 100 + 100) i});
}
is($primary->safe_psql('postgres', 'SELECT pending FROM celerysalt_status'), $events,
	'the primary holds every event (its broker is unreachable)');
is($standby->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'celerysalt%'}),
	'0', 'the standby runs no celerysalt process while in recovery');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM _celerysalt_outbox'), $events,
	'the standby has the outbox');

# the primary fails; the standby is promoted and delivers
$primary->stop('immediate');
$standby->promote;
ok($standby->poll_query_until('postgres', qq{SELECT count(*) = $events FROM celerysalt_events WHERE topic = 'failover.event'}),
	'after promotion the new primary delivers every event')
  or diag($standby->safe_psql('postgres', 'SELECT * FROM celerysalt_status'));
is($standby->safe_psql('postgres', q{SELECT count(DISTINCT payload->>'n') || '/' || count(*) FROM celerysalt_events}),
	"$events/$events", 'each event once in the delivered log, none lost');
is($standby->safe_psql('postgres', 'SELECT pending FROM celerysalt_status'), '0', 'the outbox is drained');

$standby->stop;
done_testing();
