# Without shared_preload_libraries the extension installs, but nothing
# delivers and the follow-action trigger could not fire: attaching follow
# actions is refused at once with 55000 and the hint, instead of every
# firing UPDATE failing later.  As a plain role holding celerysalt_publisher.
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
$node->stop;
done_testing();
