# Issue 18: the repository is all a user has.
#  - no file refers to a place outside the repository: no ../shared, no
#    absolute path under /work/ (the machine the project was written on);
#  - every file name ending in .md that any file mentions exists, relative to
#    the repository or to the mentioning file;
#  - every #anchor given with such a name (docs/wire-format.md#headers), and
#    every ](#anchor) link inside a Markdown file, is a heading of that file
#    (GitHub's slugs);
#  - every path of the repository that README.md or docs/*.md names in
#    backquotes (`src/rpc.c`, `test/valgrind.sh`) exists;
#  - README.md names every docs/*.md.
# Reads the tree it runs in (make installcheck runs from the top directory);
# needs no server.
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Find;
use PostgreSQL::Test::Utils;
use Test::More;

# what the build and the tests leave behind, and git's own files
my $skip_dir = qr{^\./(?:\.git|tmp_check|tmp_check_iso|results|output_iso|log|artifacts)$|/tmp_check$|/__pycache__$|\.egg-info$};
my @files;
find(
	{
		no_chdir => 1,
		wanted => sub {
			if (-d $_)
			{
				$File::Find::prune = 1 if $_ =~ $skip_dir;
				return;
			}
			return if $_ eq './.git' || /\.(?:o|so|bc|a|pyc|diffs|out\.tmp)$/ || !-f $_ || -B $_;
			push @files, $_;
		}
	},
	'.');
@files = sort map { s{^\./}{}r } @files;
ok(@files > 100, 'the tree has files (' . scalar(@files) . ')');
my %exists = map { $_ => 1 } @files;
my $self = 'test/t/072_docs_self_contained.pl';

# GitHub's heading anchors: lower case, punctuation other than - and _ dropped,
# spaces as -, duplicates numbered
my %slugs;
sub slugs_of
{
	my ($md) = @_;
	return $slugs{$md} //= do
	{
		my (%s, %n);
		my $in_code = 0;
		for (split /\n/, slurp_file($md))
		{
			$in_code = !$in_code if /^```/;
			next if $in_code || !/^#{1,6}\s+(.*?)\s*#*\s*$/;
			(my $slug = lc $1) =~ s/[^\w\- ]//g;
			$slug =~ s/ /-/g;
			$slug .= '-' . $n{$slug} if $n{$slug}++;
			$s{$slug} = 1;
		}
		\%s;
	};
}

# a mentioned file: relative to the repository, or to the mentioning file
sub resolve
{
	my ($from, $name) = @_;
	return $name if $exists{$name};
	# a bare name: the one file of that name (python.md for docs/python.md)
	if ($name !~ m{/})
	{
		my @same = grep { m{(?:^|/)\Q$name\E$} } keys %exists;
		return $same[0] if @same == 1;
	}
	my $rel = dirname($from) . "/$name";
	1 while $rel =~ s{(?:^|/)(?!\.\./)[^/]+/\.\./}{/};
	$rel =~ s{^/|^\./}{};
	$rel =~ s{/\./}{/}g;
	return $exists{$rel} ? $rel : undef;
}

my (%outside, %dangling, %anchor);
for my $f (@files)
{
	next if $f eq $self;
	my $text = slurp_file($f);
	# the one exception: the locator of the JSON Schema Test Suite, test data
	# its maintainers keep outside the repository, looks where the machines
	# this project is tested on keep it (and downloads it elsewhere)
	$text =~ s{(?:\.\./)+shared\S*|/work/\S*}{}g if $f eq 'test/jsonschema/locate_suite.sh';
	my $line = 0;
	for my $l (split /\n/, $text)
	{
		$line++;
		push @{ $outside{"$f:$line"} }, $1 while $l =~ m{((?:\.\./)+shared\b\S*|/work/\S*)}g;
		while ($l =~ m{(?<![\w/.\-])((?:\.\.?/)*(?:[\w\-]+/)*[\w\-.]+\.md)\b(?:#([\w\-]+))?}g)
		{
			my ($name, $frag) = ($1, $2);
			my $target = resolve($f, $name);
			if (!defined $target)
			{
				push @{ $dangling{"$f:$line"} }, $name;
				next;
			}
			push @{ $anchor{"$f:$line"} }, "$name#$frag" if defined $frag && !slugs_of($target)->{$frag};
		}
		if ($f =~ /\.md$/)
		{
			while ($l =~ /\]\(#([\w\-]+)\)/g)
			{
				push @{ $anchor{"$f:$line"} }, "#$1" unless slugs_of($f)->{$1};
			}
		}
	}
}
is_deeply(\%outside, {}, 'no file refers to ../shared or to /work/')
  or diag(explain(\%outside));
is_deeply(\%dangling, {}, 'every .md file a file mentions exists')
  or diag(explain(\%dangling));
is_deeply(\%anchor, {}, 'every #anchor after a .md name, and every ](#anchor), is a heading')
  or diag(explain(\%anchor));

# paths of the repository named in the docs
my @docs = ('README.md', sort glob('docs/*.md'));
my %missing;
for my $doc (@docs)
{
	for my $path (slurp_file($doc) =~ m{`((?:src|sql|test|docs|python|bench|demo|expected)/[^`\s]+)`}g)
	{
		# patterns and placeholders: sql/install/NN_*.sql, sql/<topic>.sql
		next if $path =~ /[*<>{}]|\bNN(?:\b|_)|\.\.\.|…|\bX\.Y/;
		(my $p = $path) =~ s{/$}{};
		$p =~ s{[:#].*$}{};    # file:line, file#anchor
		$missing{"$doc: $path"} = 1 unless $exists{$p} || grep { index($_, "$p/") == 0 } @files;
	}
}
is_deeply([ sort keys %missing ], [], 'every repository path README.md and docs/ name exists')
  or diag(explain([ sort keys %missing ]));

my $readme = slurp_file('README.md');
for my $doc (sort glob('docs/*.md'))
{
	ok(index($readme, $doc) >= 0, "README.md names $doc");
}

done_testing();
