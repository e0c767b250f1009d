# Validation can always be stopped (security issue 12, item 3): with
# statement_timeout = 1s each pathological case ends within 1.5 s with
# 57014 (or 54000 from celerysalt.validation_work_limit), and
# pg_terminate_backend ends a running one within 1 s:
#  - an unanchored regex ("a*b") against a long string;
#  - 40 nested {"anyOf": [{"$ref": next}, {"$ref": next}]} validating 1,
#    via celerysalt_validate and via a schema registered by an admin, then
#    celerysalt_publish as a publisher (validate-on-publish).
# The attackers are plain login roles: "anyone" holds no celerysalt role,
# "pub" only celerysalt_publisher; both have CREATE on public.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

my $node = PostgreSQL::Test::Cluster->new('validator_interrupts');
$node->init(extra => [ '--encoding=UTF8', '--locale=C' ]);
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'celerysalt'
celerysalt.databases = 'no_such_database'
});
$node->start;

my $nested = q{(SELECT jsonb_build_object('$ref', '#/$defs/n0', '$defs',
    jsonb_object_agg('n' || i, CASE WHEN i = 40 THEN '{"type": "string"}'::jsonb
      ELSE jsonb_build_object('anyOf', jsonb_build_array(
             jsonb_build_object('$ref', '#/$defs/n' || (i + 1)),
             jsonb_build_object('$ref', '#/$defs/n' || (i + 1)))) END))
  FROM generate_series(0, 40) i)};

$node->safe_psql('postgres', qq{
	CREATE EXTENSION celerysalt;
	CREATE ROLE anyone LOGIN;
	CREATE ROLE pub LOGIN IN ROLE celerysalt_publisher;
	CREATE ROLE admin LOGIN IN ROLE celerysalt_admin;
	GRANT CREATE ON SCHEMA public TO anyone, pub;
	SET ROLE admin;
	SELECT celerysalt_register_schema('attack.nested', $nested, 'v1');
});
is($node->safe_psql('postgres', "SELECT length(($nested)::text) < 3000"), 't', 'the schema is under 3 KB');
is($node->safe_psql('postgres', q{SELECT rolsuper OR pg_has_role('pub', 'celerysalt_admin', 'MEMBER')
	FROM pg_roles WHERE rolname = 'pub'}), 'f', 'the publisher is neither superuser nor admin');

my %cases = (
	# each match took about 20 s, uninterruptible, before the fix; now the
	# statement is long only because it runs a million of them
	'regex a*b against 240k characters' => [ 'anyone',
		q{SELECT count(*) FILTER (WHERE celerysalt_validate('{"pattern": "a*b"}', s))
		    FROM (SELECT to_jsonb(repeat('a', 240000)) AS s OFFSET 0) AS long_string,
		         generate_series(1, 1000000) g} ],
	'nested anyOf/$ref via celerysalt_validate' => [ 'anyone',
		"SELECT celerysalt_validate($nested, '1')" ],
	'nested anyOf/$ref via celerysalt_validation_errors' => [ 'anyone',
		"SELECT celerysalt_validation_errors($nested, '1')" ],
	'nested anyOf/$ref via celerysalt_publish (registered schema)' => [ 'pub',
		q{SELECT celerysalt_publish('attack.nested', '{"a": 1}', 'v1')} ],
);

# statement_timeout: 57014 (or the work limit's 54000) within 1.5 s
for my $name (sort keys %cases)
{
	my ($role, $sql) = @{ $cases{$name} };
	my $t0 = time;
	my $timed_out = 0;
	# the client gives up after 20 s (a backend that ignores cancel runs on)
	my ($ret, $out, $err) = $node->psql('postgres', "SET statement_timeout = '1s'; $sql",
		extra_params => [ '-U', $role, '-v', 'VERBOSITY=verbose' ],
		timeout => 20, timed_out => \$timed_out);
	$err .= ' (client timed out)' if $timed_out;
	my $elapsed = time - $t0;
	like($err, qr/ERROR:\s+(57014|54000)/, "$name: stopped with 57014 or 54000") or diag($err);
	cmp_ok($elapsed, '<', 1.5, sprintf("%s: ended after %.2f s", $name, $elapsed));
}

# pg_terminate_backend ends a running validation within 1 s
for my $name (sort keys %cases)
{
	my ($role, $sql) = @{ $cases{$name} };
	my $bg = $node->background_psql('postgres', on_error_stop => 0,
		extra_params => [ '-U', $role ]);
	my $pid = $bg->query_safe('SELECT pg_backend_pid()');
	$bg->{stdin} .= "$sql;\n";
	$bg->{run}->pump_nb();
	ok($node->poll_query_until('postgres',
		"SELECT state = 'active' FROM pg_stat_activity WHERE pid = $pid"),
		"$name: running");
	sleep 0.3;
	my $t0 = time;
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
	my $gone = 0;
	while (time - $t0 < 5)
	{
		if ($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $pid") eq '0')
		{
			$gone = 1;
			last;
		}
		sleep 0.02;
	}
	my $elapsed = time - $t0;
	ok($gone && $elapsed < 1, sprintf("%s: terminated after %.2f s", $name, $elapsed));
	eval { $bg->quit; };
}

# the server is fine afterwards (no crash recovery happened)
is($node->safe_psql('postgres', q{SELECT celerysalt_validate('{"type": "integer"}', '1')}), 't',
	'server alive');
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|server process .* was terminated/, 'no backend crashed');

$node->stop;
done_testing();
