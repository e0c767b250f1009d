# Randomized JSON Schema test (test/jsonschema/fuzz.sql): random schemas,
# valid and malformed, against random instances.  Fails on a crash, on an
# undocumented SQLSTATE, or when celerysalt_validate() and
# celerysalt_validation_errors() disagree.  Several seeds, a few seconds in
# all; JSONSCHEMA_FUZZ_ITERATIONS raises the count (e.g. under ASan).
use strict;
use warnings;

use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $script = dirname(__FILE__) . '/../jsonschema/fuzz.sql';
my $iterations = $ENV{JSONSCHEMA_FUZZ_ITERATIONS} // 1500;

my $node = PostgreSQL::Test::Cluster->new('jsonschema_fuzz');
$node->init(extra => [ '--encoding=UTF8', '--locale=C.UTF-8' ]);
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION celerysalt');

for my $seed (0.11, 0.42, 0.77)
{
	my ($ret, $out, $err) = $node->psql('postgres', undef,
		extra_params => [ '-q', '-v', "seed=$seed", '-v', "iterations=$iterations", '-f', $script ]);
	is($ret, 0, "fuzz seed $seed: script ran") or diag($err);
	unlike($out, qr/\b(mismatch|sqlstate)\b/, "fuzz seed $seed: no disagreement, no unexpected SQLSTATE")
	  or diag($out);
	my ($summary) = $out =~ /summary\s*\|\s*(.*)/;
	note("seed $seed: " . ($summary // 'no summary'));
}

# the server survived all of it
is($node->safe_psql('postgres', 'SELECT celerysalt_validate(\'{"type": "integer"}\', \'1\')'), 't', 'server alive');
$node->stop;
done_testing();
