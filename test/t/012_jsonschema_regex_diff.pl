# Differential test of the "pattern" keyword against PostgreSQL's ~
# (test/jsonschema/regex_diff.sql): >= 100,000 generated pattern x string
# pairs from fixed seeds on the syntax both dialects read alike, which is
# the validator's simple-pattern fast path.  0 disagreements allowed.  Runs
# as a plain login role; the database's LC_CTYPE is C so that \w and \d
# are ASCII in PostgreSQL too, as in ECMA-262.
# JSONSCHEMA_REGEX_PATTERNS raises the count (default 5000 x 20 strings).
use strict;
use warnings;

use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $script = dirname(__FILE__) . '/../jsonschema/regex_diff.sql';
my $patterns = $ENV{JSONSCHEMA_REGEX_PATTERNS} // 5000;
my $strings = 20;

my $node = PostgreSQL::Test::Cluster->new('jsonschema_regex_diff');
$node->init(extra => [ '--encoding=UTF8', '--locale=C' ]);
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION celerysalt;
	CREATE ROLE regex_tester LOGIN;
});

my $total = 0;
for my $seed (0.11, 0.42)
{
	my ($ret, $out, $err) = $node->psql('postgres', undef,
		extra_params => [ '-q', '-U', 'regex_tester', '-v', "seed=$seed", '-v', "patterns=$patterns",
			'-v', "strings=$strings", '-f', $script ]);
	is($ret, 0, "seed $seed: script ran") or diag($err);
	my ($pairs, $matches, $disagree) =
	  $out =~ /summary\s*\|\s*pairs (\d+) patterns \d+ matches (\d+) disagreements (\d+)/;
	ok(defined $pairs, "seed $seed: summary printed") or diag($out);
	next unless defined $pairs;
	is($pairs, $patterns * $strings, "seed $seed: every pair compared");
	is($disagree, 0, "seed $seed: pattern keyword and ~ agree on all $pairs pairs") or diag($out);
	# neither all-match nor no-match: the generator builds matching strings
	ok($matches > $pairs / 10 && $matches < $pairs * 9 / 10, "seed $seed: $matches matches")
	  or diag($out);
	$total += $pairs;
}
cmp_ok($total, '>=', 100000, "$total pairs in all");

$node->stop;
done_testing();
