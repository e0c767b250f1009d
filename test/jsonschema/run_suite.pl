#!/usr/bin/perl
# Run the official JSON Schema Test Suite against celerysalt_validate().
#
#   perl test/jsonschema/run_suite.pl [--suite DIR] [--exclusions FILE] -- psql args...
#
# Every test file of tests/draft2020-12 and tests/draft7 (required), their
# optional/format/ files (with format assertion on) and the other optional/
# files (informational) are loaded into temporary tables with one COPY,
# expanded with json_array_elements and validated in one query.  Documents
# of remotes/ are passed as the "resources" argument (served under
# http://localhost:1234/), never fetched.  Cases listed in the exclusions
# file are expected to fail (reason given there); cases whose JSON jsonb
# cannot hold (\u0000) are counted as unrepresentable.
#
# Prints the pass rate per draft and category; exits 1 on any unexpected
# failure of a required or format case.
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Find;
use Getopt::Long;

my $here = dirname(__FILE__);
my $suite = $ENV{JSONSCHEMA_TEST_SUITE} // `bash $here/locate_suite.sh`;
chomp $suite;
my $exclusions = "$here/suite_exclusions.txt";
my $verbose = 0;
GetOptions('suite=s' => \$suite, 'exclusions=s' => \$exclusions, 'verbose' => \$verbose)
  or die "bad options\n";
my @psql = @ARGV ? @ARGV : ('psql');

die "test suite not found at $suite\n" unless -d "$suite/tests";

sub slurp { my ($f) = @_; open my $fh, '<:raw', $f or die "$f: $!"; local $/; my $c = <$fh>; close $fh; return $c; }
# jsonb (and the json parser behind json_array_elements) cannot hold \u0000:
# mark it with a sentinel the SQL recognises as "unrepresentable".
sub mark_nul { my ($s) = @_; $s =~ s/(?<!\\)((?:\\\\)*)\\u0000/$1\\uffff\\ufffe/g; return $s; }
sub copy_escape { my ($s) = @_; $s = mark_nul($s); $s =~ s/\\/\\\\/g; $s =~ s/\n/\\n/g; $s =~ s/\r/\\r/g; $s =~ s/\t/\\t/g; return $s; }

my $sql = "\\set ON_ERROR_STOP 1\nSET client_min_messages = warning;\n";
$sql .= "CREATE TEMP TABLE suite_files (draft text, file text, category text, content text);\n";
$sql .= "COPY suite_files FROM STDIN;\n";
for my $draft ('draft2020-12', 'draft7') {
	my $dir = "$suite/tests/$draft";
	for my $f (sort glob("$dir/*.json")) {
		(my $name = $f) =~ s{^\Q$dir\E/}{};
		$sql .= join("\t", $draft, $name, 'required', copy_escape(slurp($f))) . "\n";
	}
	for my $f (sort glob("$dir/optional/format/*.json")) {
		(my $name = $f) =~ s{^\Q$dir\E/}{};
		$sql .= join("\t", $draft, $name, 'format', copy_escape(slurp($f))) . "\n";
	}
	for my $f (sort glob("$dir/optional/*.json")) {
		(my $name = $f) =~ s{^\Q$dir\E/}{};
		$sql .= join("\t", $draft, $name, 'optional', copy_escape(slurp($f))) . "\n";
	}
}
$sql .= "\\.\n";

my @remotes;
find({ wanted => sub { push @remotes, $File::Find::name if -f $_ && /\.json$/ }, no_chdir => 1 }, "$suite/remotes");
$sql .= "CREATE TEMP TABLE suite_remotes (uri text, content text);\nCOPY suite_remotes FROM STDIN;\n";
for my $f (sort @remotes) {
	(my $rel = $f) =~ s{^\Q$suite\E/remotes/}{};
	$sql .= join("\t", "http://localhost:1234/$rel", copy_escape(slurp($f))) . "\n";
}
$sql .= "\\.\n";

$sql .= <<'SQL';
CREATE TEMP TABLE suite_cases AS
SELECT f.draft, f.file, f.category, g.ord::int AS gi, t.ord::int AS ti,
       g.grp->>'description' AS gdesc, t.tst->>'description' AS tdesc,
       (g.grp->'schema')::text AS schema_text, (t.tst->'data')::text AS data_text,
       (t.tst->>'valid')::bool AS valid
  FROM suite_files f,
       json_array_elements(f.content::json) WITH ORDINALITY AS g(grp, ord),
       json_array_elements(g.grp->'tests') WITH ORDINALITY AS t(tst, ord);

-- The suite's draft7 schemas carry no $schema: name the dialect explicitly
-- (the default dialect is 2020-12).
CREATE FUNCTION pg_temp.run_case(schema text, data text, fmt bool, remotes jsonb, draft7 bool)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    detail text;
    s jsonb := schema::jsonb;
BEGIN
    IF draft7 AND jsonb_typeof(s) = 'object' AND NOT s ? '$schema' THEN
        s := s || '{"$schema": "http://json-schema.org/draft-07/schema#"}';
    END IF;
    RETURN celerysalt_validate(s, data::jsonb, fmt, remotes)::text;
EXCEPTION WHEN others THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN 'error ' || SQLSTATE || ': ' ||
        translate(SQLERRM || ' ' || coalesce(detail, ''), E'\n\t', '  ');
END $$;

\pset format unaligned
\pset fieldsep '\t'
\pset tuples_only on
WITH remotes AS (
    SELECT jsonb_object_agg(uri, content::jsonb) AS doc FROM suite_remotes
)
SELECT c.draft, c.category, c.file, c.gi, c.ti,
       replace(c.gdesc, E'\t', ' '), replace(c.tdesc, E'\t', ' '),
       CASE
           WHEN strpos(c.schema_text, '\uffff\ufffe') > 0 OR strpos(c.data_text, '\uffff\ufffe') > 0
               THEN 'unrepresentable'
           ELSE pg_temp.run_case(c.schema_text, c.data_text, c.category = 'format', r.doc,
                                 c.draft = 'draft7')
       END,
       c.valid
  FROM suite_cases c, remotes r
 ORDER BY c.draft, c.category, c.file, c.gi, c.ti;
SQL

# exclusions: draft <TAB> file <TAB> group description <TAB> test description or * <TAB> reason
my %excluded;
if (open my $ex, '<', $exclusions) {
	while (<$ex>) {
		chomp;
		next if /^\s*(#|$)/;
		my ($d, $f, $g, $t, $reason) = split /\t/;
		$excluded{"$d\t$f\t$g\t$t"} = $reason // '';
	}
}

my $tmp = "/tmp/jsonschema_suite_$$.sql";
open my $out, '>:raw', $tmp or die "$tmp: $!";
print $out $sql;
close $out;
open my $res, '-|', @psql, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', $tmp or die "psql: $!";
my (%stats, @unexpected, @fixed);
my $rows = 0;
while (my $line = <$res>) {
	chomp $line;
	my ($draft, $cat, $file, $gi, $ti, $gdesc, $tdesc, $got, $valid) = split /\t/, $line, -1;
	next unless defined $valid;
	$rows++;
	my $key = "$draft\t$cat";
	$stats{$key}{total}++;
	if ($got eq 'unrepresentable') { $stats{$key}{unrepresentable}++; next; }
	my $want = $valid eq 't' ? 'true' : 'false';
	my $pass = $got eq $want;
	my $ex = $excluded{"$draft\t$file\t$gdesc\t$tdesc"} // $excluded{"$draft\t$file\t$gdesc\t*"};
	if ($pass) {
		$stats{$key}{pass}++;
		push @fixed, "$draft $file: $gdesc / $tdesc" if defined $ex;
	} elsif (defined $ex) {
		$stats{$key}{excluded}++;
	} else {
		$stats{$key}{fail}++;
		push @unexpected, "[$cat] $draft $file #$gi.$ti: $gdesc / $tdesc: expected $want, got $got"
		  if $cat ne 'optional' || $verbose;
	}
}
close $res;
my $psql_status = $?;
unlink $tmp;
die "psql failed (status $psql_status)\n" if $psql_status != 0 || $rows == 0;

my $fail = 0;
for my $key (sort keys %stats) {
	my $s = $stats{$key};
	my ($draft, $cat) = split /\t/, $key;
	my $run = $s->{total} - ($s->{unrepresentable} // 0);
	printf "%-13s %-9s %4d cases: %4d passed (%.1f%% of representable), %d excluded, %d unrepresentable, %d %s\n",
	  $draft, $cat, $s->{total}, $s->{pass} // 0, $run ? 100.0 * ($s->{pass} // 0) / $run : 100,
	  $s->{excluded} // 0, $s->{unrepresentable} // 0, $s->{fail} // 0,
	  $cat eq 'optional' ? 'failures (informational)' : 'unexpected failures';
	$fail += $s->{fail} // 0 if $cat ne 'optional';
}
print "UNEXPECTED: $_\n" for @unexpected;
print "NOW PASSING (remove from exclusions): $_\n" for @fixed;
exit($fail ? 1 : 0);
