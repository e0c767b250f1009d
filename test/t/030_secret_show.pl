# Issue 12, item 7(a): members of pg_read_all_settings (here pg_monitor, not
# superuser) read broker_url and redis_url with the password shown as "***"
# wherever the value is shown (SHOW, SHOW ALL, current_setting, pg_settings
# setting/reset_val/boot_val), cannot read pg_file_settings, and the worker
# still logs in to the real RabbitMQ (127.0.0.1:5672, guest/guest) with the
# real password.  Parallel workers, which get the shown value, still start.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $redis_secret = 'S3cretRedisPw030';
my $node = PostgreSQL::Test::Cluster->new('secret_show');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'celerysalt'
celerysalt.broker_url = 'amqp://guest:guest\@127.0.0.1:5672//'
celerysalt.redis_url = 'redis://:$redis_secret\@127.0.0.1:6379/0'
celerysalt.poll_interval = '200ms'
celerysalt.reconnect_max_delay = '500ms'
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION celerysalt;
CREATE ROLE mon LOGIN;
GRANT pg_monitor TO mon;
});

# Every way a pg_monitor member can see a setting.
my $as_mon = q{
SHOW celerysalt.broker_url;
SHOW celerysalt.redis_url;
SELECT current_setting('celerysalt.broker_url'), current_setting('celerysalt.redis_url');
SELECT name, setting, reset_val, boot_val FROM pg_settings WHERE name LIKE 'celerysalt.%url' ORDER BY name;
};

sub no_secret
{
	my ($text, $what) = @_;
	unlike($text, qr/:guest\@/, "$what: no broker password");
	unlike($text, qr/\Q$redis_secret\E/, "$what: no Redis password");
}

sub check_shown
{
	my ($label) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $as_mon,
		extra_params => [ '-U', 'mon' ]);
	is($ret, 0, "$label: pg_monitor member reads the settings") or diag($err);
	like($out, qr{^amqp://guest:\*\*\*\@127\.0\.0\.1:5672//$}m, "$label: SHOW broker_url masked");
	like($out, qr{^redis://:\*\*\*\@127\.0\.0\.1:6379/0$}m, "$label: SHOW redis_url masked");
	like($out,
		qr{^celerysalt\.broker_url\|amqp://guest:\*\*\*\@127\.0\.0\.1:5672//\|amqp://guest:\*\*\*\@127\.0\.0\.1:5672//\|amqp://guest\@127\.0\.0\.1:5672//$}m,
		"$label: pg_settings setting, reset_val and boot_val of broker_url masked");
	like($out,
		qr{^celerysalt\.redis_url\|redis://:\*\*\*\@127\.0\.0\.1:6379/0\|redis://:\*\*\*\@127\.0\.0\.1:6379/0\|}m,
		"$label: pg_settings of redis_url masked");
	no_secret($out . $err, "$label: SHOW, current_setting, pg_settings");

	($ret, $out, $err) = $node->psql('postgres', 'SHOW ALL', extra_params => [ '-U', 'mon' ]);
	like($out, qr{^celerysalt\.broker_url\|amqp://guest:\*\*\*\@}m, "$label: SHOW ALL lists broker_url masked");
	no_secret($out, "$label: SHOW ALL");

	($ret, $out, $err) = $node->psql('postgres',
		'SELECT name, setting FROM pg_file_settings', extra_params => [ '-U', 'mon' ]);
	like($err, qr/permission denied/, "$label: pg_file_settings is not readable by pg_monitor");
	no_secret($out, "$label: pg_file_settings");
}

check_shown('postgresql.conf');

# The worker logs in with the real password: "***" would be refused.
ok($node->poll_query_until('postgres', 'SELECT broker_connected FROM celerysalt_status'),
	'worker connected to RabbitMQ with the password from postgresql.conf');
no_secret($node->safe_psql('postgres', 'SELECT broker, last_error FROM celerysalt_status'),
	'celerysalt_status');

# A superuser's session value and RESET come back to the masked file value.
is($node->safe_psql('postgres', q{
SET celerysalt.redis_url = 'redis://127.0.0.1:6379/1';
RESET celerysalt.redis_url;
SHOW celerysalt.redis_url;
}), 'redis://:***@127.0.0.1:6379/0', 'RESET restores the configured value, masked');

# Parallel workers receive the shown value and must still start.
my $plan = $node->safe_psql('postgres', q{
SET force_parallel_mode = on;
SET parallel_setup_cost = 0;
SET max_parallel_workers_per_gather = 1;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT count(*) FROM pg_class WHERE current_setting('celerysalt.broker_url') IS NOT NULL;
}, extra_params => [ '-U', 'mon' ]);
like($plan, qr/Workers Launched: 1/, 'a parallel worker starts with the masked settings');

# ALTER SYSTEM with a password, then reload: still masked, worker still in.
$node->safe_psql('postgres',
	"ALTER SYSTEM SET celerysalt.broker_url = 'amqp://guest:guest\@127.0.0.1:5672//'");
$node->reload;
check_shown('after ALTER SYSTEM and reload');

# pg_stat_activity (pg_read_all_stats, part of pg_monitor) shows each
# session's current or last statement: a superuser's ALTER SYSTEM with a
# password, or a refused SET, must not be readable there.
my $admin = $node->background_psql('postgres', on_error_stop => 0);
$admin->query_safe("SET application_name = 'admin030'");
$admin->query("ALTER SYSTEM SET celerysalt.redis_url = 'redis://:$redis_secret\@127.0.0.1:6379/0'");
my $activity = $node->safe_psql('postgres',
	"SELECT query FROM pg_stat_activity WHERE application_name = 'admin030'",
	extra_params => [ '-U', 'mon' ]);
like($activity, qr{ALTER SYSTEM SET celerysalt\.redis_url = 'redis://:\*\*\*\@}, 'pg_stat_activity shows ALTER SYSTEM masked');
no_secret($activity, 'pg_stat_activity after ALTER SYSTEM');
$admin->query("SET celerysalt.redis_url = 'redis://:${redis_secret}x\@127.0.0.1:6379/0'");
$activity = $node->safe_psql('postgres',
	"SELECT query FROM pg_stat_activity WHERE application_name = 'admin030'",
	extra_params => [ '-U', 'mon' ]);
like($activity, qr{^SET celerysalt\.redis_url = 'redis://:\*\*\*\@}, 'pg_stat_activity shows a refused SET masked');
no_secret($activity, 'pg_stat_activity after a refused SET');
$admin->quit;

$node->restart;
check_shown('after restart');
ok($node->poll_query_until('postgres', 'SELECT broker_connected FROM celerysalt_status'),
	'worker connected after restart');

done_testing();
