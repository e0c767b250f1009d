# pg_dump keeps the log (_celerysalt_log and _celerysalt_log_position are
# configuration tables), but what it says is told by transaction ids, which
# mean nothing in another cluster.  Restored into a cluster whose
# transaction counter is behind the old one's (a new cluster, the usual
# target), taken as they are, the events delivered before the dump would
# show as waiting and be published again once the counter passed their ids,
# and the events that were waiting would only be sent then.
#
# The worker notices that another session wrote delivered positions (the
# restore) when it next starts a batch or records one, restarts, and adopts
# the restored log (positions in its cluster's future): the checks below.
# With a plain pg_restore (not --single-transaction; TAP 065 restores in one
# transaction), as a user restores by default.
# Needs the real RabbitMQ on 127.0.0.1:5672 (guest/guest).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $conf = qq{
shared_preload_libraries = 'celerysalt'
celerysalt.broker_url = 'amqp://guest:guest\@127.0.0.1:5672//'
celerysalt.unroutable = 'drop'
celerysalt.poll_interval = '100ms'
};
my $old = PostgreSQL::Test::Cluster->new('old');
$old->init;
$old->append_conf('postgresql.conf', $conf);
$old->start;
my $new = PostgreSQL::Test::Cluster->new('new');
$new->init;
$new->append_conf('postgresql.conf', $conf);
$new->start;

my $burn = q{CREATE PROCEDURE pg_temp.burn(n int) LANGUAGE plpgsql
	AS $$ BEGIN FOR i IN 1 .. n LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$;
	CALL pg_temp.burn(3000);};

# the old cluster: 3,000 transactions on, 5 events delivered, then 3 waiting
$old->safe_psql('postgres', 'CREATE EXTENSION celerysalt');
$old->safe_psql('postgres', $burn);
ok($old->poll_query_until('postgres', 'SELECT broker_connected FROM celerysalt_status'), 'old: worker connected');
$old->safe_psql('postgres', q{SELECT celerysalt_publish('dump.delivered', jsonb_build_object('n', g)) FROM generate_series(1, 5) g});
ok($old->poll_query_until('postgres', "SELECT count(*) = 5 FROM celerysalt_events WHERE topic = 'dump.delivered'"),
	'old: 5 events delivered');
$old->safe_psql('postgres', q{ALTER SYSTEM SET celerysalt.broker_url = 'amqp://guest:guest@127.0.0.1:1//'; SELECT pg_reload_conf()});
ok($old->poll_query_until('postgres', 'SELECT NOT broker_connected FROM celerysalt_status'), 'old: broker gone');
$old->safe_psql('postgres', q{SELECT celerysalt_publish('dump.waiting', jsonb_build_object('n', g)) FROM generate_series(1, 3) g});
is($old->safe_psql('postgres', 'SELECT pending FROM celerysalt_status'), '3', 'old: 3 events wait');

my $dump = $PostgreSQL::Test::Utils::tmp_check . '/celerysalt.dump';
$old->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $old->connstr('postgres') ], 'pg_dump');
$old->stop;

# the new cluster: restored, then one event published there
$new->safe_psql('postgres', 'CREATE DATABASE restored');
$new->command_ok([ 'pg_restore', '-d', $new->connstr('restored'), $dump ], 'pg_restore');
ok($new->poll_query_until('restored', 'SELECT broker_connected FROM celerysalt_status'), 'new: worker connected');
for my $n (1 .. 2)
{
	$new->safe_psql('restored', qq{SELECT celerysalt_publish('dump.new', '{"n": $n}')});
	ok($new->poll_query_until('restored', "SELECT count(*) = $n FROM celerysalt_events WHERE topic = 'dump.new'"),
		"new: event $n published after the restore is delivered");
}

# a few seconds, not the default timeout: these are expected to fail for now
sub soon
{
	my ($sql) = @_;
	for (1 .. 50)
	{
		return 1 if $new->safe_psql('restored', $sql) eq 't';
		usleep(100_000);
	}
	return 0;
}

{
	ok(soon("SELECT count(*) = 3 FROM celerysalt_events WHERE topic = 'dump.waiting'"),
		'new: the events that waited are delivered');
	is($new->safe_psql('restored', "SELECT count(*) FROM celerysalt_events WHERE topic = 'dump.delivered'"), '5',
		'new: the events delivered before the dump are still shown as delivered');
	is($new->safe_psql('restored', "SELECT count(*) FROM _celerysalt_outbox WHERE topic = 'dump.delivered'"), '0',
		'new: and not as waiting');

}

# once the new cluster's transaction counter passes the old one's
$new->safe_psql('restored', $burn);
$new->safe_psql('restored', q{SELECT celerysalt_publish('dump.marker', '{}')});
ok(soon("SELECT count(*) = 1 FROM celerysalt_events WHERE topic = 'dump.marker'"), 'new: marker delivered');

{
	is($new->safe_psql('restored', 'SELECT delivered_total FROM celerysalt_status'), '6',
		'new: delivered in the new cluster: the 2 new events, the marker and the 3 that waited (not the 5 old ones again)');
}

$new->stop;
done_testing();
