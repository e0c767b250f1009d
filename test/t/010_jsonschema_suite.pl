# The official JSON Schema Test Suite (draft2020-12 and draft7: required
# tests, optional/format with format assertion on, other optional tests for
# information) run against celerysalt_validate().  The work is done by
# test/jsonschema/run_suite.pl, which loads every case with one COPY and
# validates them in one query; this wrapper provides the server.
#
# The suite is test data kept outside the repository, at the commit in
# test/jsonschema/suite.commit: test/jsonschema/locate_suite.sh finds it
# (JSONSCHEMA_TEST_SUITE, a copy beside the checkout, or a download).
use strict;
use warnings;

use File::Basename qw(dirname);
use IPC::Run qw(run);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $locate = dirname(__FILE__) . '/../jsonschema/locate_suite.sh';
my $suite = `bash $locate`;
chomp $suite;
# never skipped: a missing suite fails the run, with locate_suite.sh's reason
BAIL_OUT("JSON Schema Test Suite not found: see test/jsonschema/locate_suite.sh") unless $? == 0 && -d "$suite/tests";
note('suite commit ' . (-f "$suite/COMMIT" ? slurp_file("$suite/COMMIT") : 'unknown'));

my $runner = dirname(__FILE__) . '/../jsonschema/run_suite.pl';

my $node = PostgreSQL::Test::Cluster->new('jsonschema_suite');
# UTF-8 and a Unicode-aware LC_CTYPE, as the suite has non-ASCII cases.
$node->init(extra => [ '--encoding=UTF8', '--locale=C.UTF-8' ]);
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION celerysalt');

my $psql = $node->config_data('--bindir') . '/psql';
my ($out, $err) = ('', '');
my $t0 = time;
my $ok = run([ 'perl', $runner, '--suite', $suite, '--',
			   $psql, '-d', $node->connstr('postgres') ], '>', \$out, '2>', \$err);
my $elapsed = time - $t0;

note($out);
diag($err) if $err ne '';
# the per-draft pass rates, always shown
diag($_) for grep { /cases:/ } split /\n/, $out;
diag("suite run took ${elapsed}s");

like($out, qr/^draft2020-12\s+required\s+\d+ cases:.* 0 unexpected failures$/m,
	 'draft2020-12 required: no unexpected failures');
like($out, qr/^draft2020-12\s+format\s+\d+ cases:.* 0 unexpected failures$/m,
	 'draft2020-12 optional/format (asserted): no unexpected failures');
like($out, qr/^draft7\s+required\s+\d+ cases:.* 0 unexpected failures$/m,
	 'draft7 required: no unexpected failures');
like($out, qr/^draft7\s+format\s+\d+ cases:.* 0 unexpected failures$/m,
	 'draft7 optional/format (asserted): no unexpected failures');
ok($ok, 'run_suite.pl exits 0');

$node->stop;
done_testing();
