# Without shared_preload_libraries the extension installs, but nothing
# delivers and the follow-action trigger could not fire: attaching follow
# actions is refused at once with 55000 and the hint, instead of every
# firing UPDATE failing later.  As a plain role holding celerysalt_publisher.
# Every setting is defined once a session has loaded the library, including
# celerysalt.max_databases, which sizes shared memory (PGC_POSTMASTER when
# preloaded): without the preload it is a sighup setting with the same range
# and default that SET cannot change.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('nopreload');
$node->init;
$node->start;
$node->safe_psql('postgres', q{CREATE EXTENSION celerysalt;
	CREATE ROLE app IN ROLE celerysalt_publisher;
	GRANT CREATE ON SCHEMA public TO app;});
my ($stdout, $stderr);
my $rc = $node->psql('postgres', q{SET ROLE app;
	CREATE TABLE orders (id int PRIMARY KEY, status text, on_change_rules jsonb NOT NULL DEFAULT '[]');
	\set VERBOSITY verbose
	SELECT celerysalt_attach_follow_actions('orders');}, stdout => \$stdout, stderr => \$stderr);
isnt($rc, 0, 'attaching follow actions fails without the preloaded library');
like($stderr, qr/ERROR:  55000: /, 'with SQLSTATE 55000');
like($stderr, qr/HINT:  .*shared_preload_libraries/, 'and a hint naming shared_preload_libraries') or diag($stderr);
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_trigger WHERE tgname = 'zz_celerysalt_follow_actions'}),
	'0', 'no trigger was created');

# --- every setting is defined once the library is loaded (SHOW as a
# superuser: some are superuser-only); max_databases as the plain role
my @gucs = do
{
	open my $fh, '<', 'src/guc.c' or die "src/guc.c: $!";
	local $/;
	my $c = <$fh>;
	$c =~ /DefineCustom\w+Variable\(\s*"(celerysalt\.\w+)"/g;
};
ok(@gucs > 20, 'src/guc.c defines the settings');
my $loaded = q{SET ROLE app; SELECT celerysalt_validate('true', '1');};
for my $guc (@gucs)
{
	my ($rc, $out, $err) = $node->psql('postgres', "SELECT celerysalt_validate('true', '1'); SHOW $guc;");
	is($rc, 0, "without preload, SHOW $guc works once the library is loaded") or diag($err);
}
is($node->safe_psql('postgres', "$loaded SHOW celerysalt.max_databases;"), "t\n32",
	'max_databases shows its default without preload');
is($node->safe_psql('postgres', qq{$loaded SELECT min_val, max_val, boot_val, context
	FROM pg_settings WHERE name = 'celerysalt.max_databases';}), "t\n1|1024|32|sighup",
	'with the range and default of the preloaded setting, as a sighup setting');
$rc = $node->psql('postgres', "$loaded SET celerysalt.max_databases = 8;",
	stdout => \$stdout, stderr => \$stderr);
like($stderr, qr/cannot be changed now/, 'SET of max_databases is refused') or diag($stderr);
$rc = $node->psql('postgres', q{SELECT celerysalt_validate('true', '1');
	\set VERBOSITY verbose
	ALTER SYSTEM SET celerysalt.max_databases = 0;}, stdout => \$stdout, stderr => \$stderr);
like($stderr, qr/ERROR:  22023: .*celerysalt\.max_databases/, 'ALTER SYSTEM checks its range') or diag($stderr);
# a value in the configuration file is taken (and checked) at reload, no error
$node->append_conf('postgresql.conf', "celerysalt.max_databases = 8\n");
$node->reload;
is($node->safe_psql('postgres', "$loaded SHOW celerysalt.max_databases;"), "t\n8",
	'a value from postgresql.conf is shown');
$node->restart;
is($node->safe_psql('postgres', "$loaded SHOW celerysalt.max_databases;"), "t\n8",
	'and after a restart without preload');
unlike(slurp_file($node->logfile), qr/FATAL|PANIC/, 'no FATAL in the server log');

$node->stop;
done_testing();
