# Issue 18: the docs' SQL examples run as written.  Every fenced ```sql block
# of README.md and docs/*.md is run on a fresh cluster with the library
# preloaded (no queue is bound, so celerysalt.unroutable = 'drop'; the broker
# at 127.0.0.1:5672 is real).
#
# The blocks of one document run in one psql session, in document order, as
# the superuser, in a database of their own: docs_<file name>, created by
# this test, or the database a block names with db:NAME.  The extension is
# installed there first unless a block of the document installs it itself
# (the docs assume README's Quick start).  A block that needs tables or roles
# creates them, in a visible block of the document before it.
#
# The info string after ```sql may carry, separated by spaces:
#   norun          not run: the block needs what a test cluster lacks (a live
#                  Celery responder for celerysalt_call) or is a template
#                  with placeholders.  Keep these few; say why next to them.
#   error:SQLSTATE the block's last statement fails with this SQLSTATE; the
#                  session goes on
#   role:NAME      run as NAME (SET ROLE ... RESET ROLE around the block)
#   db:NAME        the document runs in database NAME
#   step:NAME      a step of test/integration/test_python_docs.py (which runs
#                  docs/python.md against live services); run here too
#                  unless marked norun
# The same convention is in docs/contributing.md.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('docs_sql');
$node->init;
# no queue is bound for the docs' topics: the broker drops their events
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'celerysalt'\ncelerysalt.unroutable = 'drop'\n");
$node->start;

my @docs = ('README.md', sort glob('docs/*.md'));
my %known = map { $_ => 1 } qw(norun error role db step);

for my $doc (@docs)
{
	my $text = slurp_file($doc);
	my @blocks;
	while ($text =~ /^```sql([^\n]*)\n(.*?)^```[ \t]*$/gms)
	{
		my ($info, $body) = ($1, $2);
		my %attr;
		for my $word (split ' ', $info)
		{
			my ($k, $v) = split /:/, $word, 2;
			ok($known{$k}, "$doc: info string word \"$word\" is known") or next;
			$attr{$k} = $v // 1;
		}
		push @blocks, { attr => \%attr, body => $body };
	}
	next unless @blocks;
	my @run = grep { !$_->{attr}{norun} } @blocks;
	next unless @run;

	(my $db = "docs_$doc") =~ s{^docs_docs/}{docs_};
	$db =~ s/\.md$//;
	$db =~ s/\W/_/g;
	$db = lc $db;
	for (@run) { $db = $_->{attr}{db} if $_->{attr}{db} }
	$node->safe_psql('postgres', qq{CREATE DATABASE "$db"});
	$node->safe_psql($db, 'CREATE EXTENSION celerysalt')
	  unless grep { $_->{body} =~ /^\s*CREATE EXTENSION celerysalt\b/mi } @run;

	# One script: a marker before each block, the SQLSTATE after an
	# expected failure.
	my $script = "\\set ON_ERROR_STOP 1\n";
	my $n = 0;
	for my $blk (@run)
	{
		$n++;
		my $at = $blk->{attr};
		$script .= "\\echo \@\@block $n\n";
		$script .= "SET ROLE $at->{role};\n" if $at->{role};
		$script .= "\\set ON_ERROR_STOP 0\n" if $at->{error};
		$script .= $blk->{body};
		$script .= "\\echo \@\@sqlstate $n :SQLSTATE\n\\set ON_ERROR_STOP 1\n" if $at->{error};
		$script .= "RESET ROLE;\n" if $at->{role};
	}
	$script .= "\\echo \@\@done\n";

	my ($stdout, $stderr);
	my $rc = $node->psql($db, $script,
		stdout => \$stdout, stderr => \$stderr,
		extra_params => ['-v', 'VERBOSITY=verbose']);
	my ($reached) = $stdout =~ /.*\@\@block (\d+)/s;
	is($rc, 0, "$doc: its " . scalar(@run) . " SQL block(s) run")
	  or diag("failed in block " . ($reached // '?') . ":\n" . $run[($reached // 1) - 1]{body} . "\n$stderr");
	like($stdout, qr/\@\@done/, "$doc: every block ran");

	$n = 0;
	for my $blk (@run)
	{
		$n++;
		next unless $blk->{attr}{error};
		my ($got) = $stdout =~ /\@\@sqlstate $n (\S+)/;
		is($got, $blk->{attr}{error}, "$doc: block $n fails with $blk->{attr}{error}");
	}
	# the rest of the blocks report no error either
	my @unexpected = grep { /^psql:.*ERROR:/ } split /\n/, $stderr;
	my $expected = grep { $_->{attr}{error} } @run;
	ok(@unexpected <= $expected, "$doc: no error beyond the expected ones")
	  or diag($stderr);
}

$node->stop;
done_testing();
