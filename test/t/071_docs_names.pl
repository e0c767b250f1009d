# Issue 18: the names in the docs are the names in the catalog and the code.
#  - every celerysalt.* setting named in README.md or docs/ exists (SHOW),
#    and every setting src/guc.c defines has a row in docs/configuration.md;
#  - every celerysalt_* name in README.md or docs/ is a function, table,
#    view, role or type of the extension (or one of the few non-SQL names
#    below); where the docs give an argument list, its parameter names
#    (`name =>`, `name type`, `name DEFAULT`, or a list of bare names) are
#    the function's, and a list of types is one of its signatures;
#  - every SQLSTATE in docs/errors.md is raised by the code (src/*.c,
#    src/jsonschema/*.c, sql/install/*.sql), and every SQLSTATE the code
#    raises (every ERRCODE_* constant it uses other than in a comparison,
#    USING ERRCODE, the CR00x codes) is listed in docs/errors.md.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('docs_names');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'celerysalt'\ncelerysalt.unroutable = 'drop'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION celerysalt');

my @docs = ('README.md', sort glob('docs/*.md'));
my %text = map { $_ => slurp_file($_) } @docs;
my @code = (sort(glob('src/*.c'), glob('src/*.h'), glob('src/jsonschema/*.c'), glob('src/jsonschema/*.h')),
	sort glob('sql/install/*.sql'));
my $code = join("\n", map { slurp_file($_) } @code);

# --- settings
my %defined = map { $_ => 1 } slurp_file('src/guc.c') =~ /DefineCustom\w+Variable\(\s*"(celerysalt\.\w+)"/g;
ok(keys %defined > 20, 'src/guc.c defines the settings');
my %named;
for my $doc (@docs)
{
	# not a call of the Python package (celerysalt.attach(...)), a file
	# (celerysalt.so, celerysalt.control) or a mail domain
	$named{$1}{$doc} = 1
	  while $text{$doc} =~ /(?<![\w.\/@])(celerysalt\.(?!so\b|control\b|invalid\b)[a-z_]+[a-z])(?![\w(])/g;
}
for my $guc (sort keys %named)
{
	my ($rc, $out, $err) = $node->psql('postgres', "SHOW $guc");
	is($rc, 0, "setting $guc named in " . join(', ', sort keys %{ $named{$guc} }) . ' exists');
}
my %row = map { $_ => 1 } $text{'docs/configuration.md'} =~ /^\| `(celerysalt\.\w+)` \|/mg;
ok($row{$_}, "setting $_ has a row in docs/configuration.md") for sort keys %defined;

# --- each row of docs/configuration.md against pg_settings: type and unit,
# default, range, context; the byte and name limits of string settings
# against what ALTER SYSTEM accepts.  README's table against the same.
my %base = (ms => 1, s => 1000, min => 60_000, h => 3_600_000, d => 86_400_000,
	B => 1, kB => 1024, MB => 1024**2, GB => 1024**3);
# a documented value ("1s", "10min", "1MB", "500") in the setting's unit
sub in_unit
{
	my ($v, $unit) = @_;
	my ($n, $u) = $v =~ /^(-?\d+)\s*([a-zA-Z]*)$/ or return "unparsable '$v'";
	return $n if $u eq '';
	return "unknown unit in '$v'" unless $base{$u} && ($unit eq 'ms' || $unit eq 's' || $unit eq 'B');
	my $f = $base{$u} / ($unit eq 's' ? 1000 : 1);
	return $n * $f;
}
sub default_of
{
	my ($cell) = @_;
	return '' if $cell =~ /^empty\b/;
	return $1 if $cell =~ /^`([^`]*)`/;
	return (split /[\s,]/, $cell)[0];
}
sub alter_system
{
	my ($guc, $value) = @_;
	(my $lit = $value) =~ s/'/''/g;
	my ($rc, $out, $err) = $node->psql('postgres',
		"\\set VERBOSITY verbose\nALTER SYSTEM SET $guc = '$lit';\nALTER SYSTEM RESET $guc;");
	return $rc == 0 && $err !~ /ERROR/ ? 'ok' : $err =~ /ERROR:  (\w{5}):/ ? $1 : $err;
}
my %setting;
for (split /\n/, $node->safe_psql('postgres', q{
	SELECT concat_ws(E'\x1f', name, vartype, coalesce(unit, ''), coalesce(min_val, ''),
	                 coalesce(max_val, ''), coalesce(boot_val, ''), context,
	                 coalesce(array_to_string(enumvals, ','), ''))
	  FROM pg_settings WHERE name LIKE 'celerysalt.%'}))
{
	my @f = split /\x1f/, $_, -1;
	$setting{ $f[0] } = { vartype => $f[1], unit => $f[2], min => $f[3], max => $f[4],
		boot => $f[5], context => $f[6], enumvals => $f[7] };
}
my %doc_type;
for my $line ($text{'docs/configuration.md'} =~ /^(\| `celerysalt\.\w+` \|.*)$/mg)
{
	my (undef, @cell) = map { s/^\s+|\s+$//gr } split /(?<!\\)\|/, $line;
	my ($name, $type, $default, $range, $context) = @cell;
	$name =~ s/`//g;
	my $s = $setting{$name};
	ok($s, "$name of docs/configuration.md is in pg_settings") or next;
	$doc_type{$name} = $type;
	my ($word) = $type =~ /^(\w+)/;
	my %unit = (ms => 'ms', s => 's', bytes => 'B');
	my $vartype = $unit{$word} || $word =~ /^(integer|levels)$/ ? 'integer'
	  : $word =~ /^(string|path|list)$/ ? 'string' : $word;
	is($s->{vartype}, $vartype, "$name: documented type '$type' is $vartype");
	is($s->{unit}, $unit{$word} // '', "$name: documented unit '$word'");
	if ($vartype eq 'enum')
	{
		is(join(',', $type =~ /`([^`]+)`/g), $s->{enumvals}, "$name: documented values are the enum's");
	}
	my $d = default_of($default);
	is($vartype eq 'integer' ? in_unit($d, $s->{unit}) : $d, $s->{boot}, "$name: documented default '$default'");
	my ($ctx) = $context =~ /^(\w+)/;
	is($ctx, $s->{context}, "$name: documented context '$context'");
	if ($vartype eq 'integer')
	{
		my ($lo, $hi) = $range =~ /^`([^`]+)` – `([^`]+)`/;
		ok(defined $hi, "$name: range '$range' gives a minimum and a maximum") or next;
		is(in_unit($lo, $s->{unit}), $s->{min}, "$name: documented minimum '$lo'");
		is(in_unit($hi, $s->{unit}), $s->{max}, "$name: documented maximum '$hi'");
	}
	elsif ($vartype eq 'string' && $range =~ /`\d/)
	{
		my ($lo, $hi, $what);
		if ($range =~ /^`(\d+)` – `(\d+)` (bytes|names)$/) { ($lo, $hi, $what) = ($1, $2, $3) }
		elsif ($range =~ /^< `(\d+)` bytes$/) { ($lo, $hi, $what) = (0, $1 - 1, 'bytes') }
		elsif ($range =~ /^exactly `(\d+)` names?$/) { ($lo, $hi, $what) = ($1, $1, 'names') }
		ok(defined $what, "$name: range '$range' is understood") or next;
		my $make = $what eq 'bytes' ? sub { 'x' x $_[0] }
		  : sub { join(',', map { "celery_salt.task$_" } 1 .. $_[0]) };
		is(alter_system($name, $make->($hi)), 'ok', "$name: $hi $what are accepted");
		is(alter_system($name, $make->($hi + 1)), '22023', "$name: " . ($hi + 1) . " $what are refused");
		is(alter_system($name, $make->($lo - 1)), '22023', "$name: " . ($lo - 1) . " $what are refused")
		  if $lo > 0;
	}
	else
	{
		is($range, '—', "$name: a $vartype setting without a range says '—'")
		  unless $vartype eq 'string';
	}
}
# README's table: name(s) | default(s) | meaning
for my $line ($text{'README.md'} =~ /^(\| `celerysalt\.\w+`.*)$/mg)
{
	my (undef, $names, $defaults) = map { s/^\s+|\s+$//gr } split /(?<!\\)\|/, $line;
	my @n = $names =~ /`(celerysalt\.\w+)`/g;
	my @d = @n > 1 ? split(/,\s*/, $defaults) : ($defaults);
	@d = (@d) x @n if @d == 1;
	is(scalar @d, scalar @n, "README: one default per setting in '$names'") or next;
	for my $i (0 .. $#n)
	{
		my $s = $setting{ $n[$i] } or next;
		my $v = default_of($d[$i]);
		is($s->{vartype} eq 'integer' ? in_unit($v, $s->{unit}) : $v, $s->{boot},
			"README: default of $n[$i] '$d[$i]'");
	}
}

# --- SQL names
my %object;
$object{$_} = 'function' for split /\n/, $node->safe_psql('postgres', q{
	SELECT DISTINCT p.proname FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass
	  AND d.objid = p.oid AND d.deptype = 'e' JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'celerysalt'});
$object{$_} = 'relation' for split /\n/, $node->safe_psql('postgres', q{
	SELECT c.relname FROM pg_class c JOIN pg_depend d ON d.classid = 'pg_class'::regclass
	  AND d.objid = c.oid AND d.deptype = 'e' JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'celerysalt'});
$object{$_} = 'type' for split /\n/, $node->safe_psql('postgres', q{
	SELECT t.typname FROM pg_type t JOIN pg_depend d ON d.classid = 'pg_type'::regclass
	  AND d.objid = t.oid AND d.deptype = 'e' JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'celerysalt'});
$object{$_} = 'role' for split /\n/, $node->safe_psql('postgres',
	q{SELECT rolname FROM pg_roles WHERE rolname LIKE 'celerysalt\_%'});
# names that are not SQL objects: the Python package and the Prometheus series
my %not_sql = map { $_ => 1 } qw(celerysalt_pg);
# and the C symbols the docs name (hooks between source files)
$not_sql{$_} = 1 for $code =~ /^\w[\w ]*\b(celerysalt_\w+)\s*=/mg;
my $series = qr/^celerysalt_\w+_(total|seconds|bytes|events|info|connected|up|pending|count|age_seconds)$/;
my %metric = map { $_ => 1 } $text{'docs/metrics.md'} =~ /`(celerysalt_\w+)`/g;

my %params;
for (split /\n/, $node->safe_psql('postgres', q{
	SELECT p.proname, coalesce(array_to_string(p.proargnames, ','), '') FROM pg_proc p
	  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
	  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'celerysalt'}))
{
	my ($f, $names) = split /\|/, $_, 2;
	$params{$f}{$_} = 1 for split /,/, $names;
}

my $type = qr/(?:text|jsonb|json|uuid|interval|regclass|name|boolean|bigint|integer|timestamp with time zone|text\[\])/;
my %seen;
for my $doc (@docs)
{
	my $t = $text{$doc};
	while ($t =~ /(?<![\w.\/])(celerysalt_[a-z_]*[a-z])\b/g)
	{
		my $n = $1;
		next if $seen{"$doc $n"}++;
		ok($object{$n} || $not_sql{$n} || ($metric{$n} && $doc eq 'docs/metrics.md') || $n =~ $series,
			"$doc: $n exists");
	}
	while ($t =~ /(?<![\w.\/])(celerysalt_[a-z_]*[a-z])\(([^()]*)\)/g)
	{
		my ($f, $list) = ($1, $2);
		next unless ($object{$f} // '') eq 'function';
		my @args = map { s/^\s+|\s+$//gr } split /,/, $list;
		next if !@args || grep { /\.\.\.|…/ } @args;
		if (!grep { !/^$type$/ } @args)
		{
			my $ok = $node->safe_psql('postgres', "SELECT to_regprocedure('$f($list)') IS NOT NULL");
			is($ok, 't', "$doc: $f($list) is a signature");
			next;
		}
		# a list of bare names is a signature when it says so: a declaration
		# (`name type`, `name DEFAULT`) among them, RETURNS after it, or a
		# heading; otherwise its names are an example's variables
		my $after = substr($t, pos($t), 9);
		my ($line) = substr($t, 0, pos($t)) =~ /([^\n]*)\z/;
		my $bare = !grep { !/^[a-z_]+(\s.*)?$/ } @args;
		$bare &&= (grep { /^[a-z_]+\s+\S/ } @args) || $after =~ /^ RETURNS/ || $line =~ /^#/;
		for my $arg (@args)
		{
			my $p;
			if ($arg =~ /^([a-z_]+)\s*=>/) { $p = $1 }
			elsif ($bare && $arg =~ /^([a-z_]+)(\s|$)/) { $p = $1 }
			next unless defined $p;
			ok($params{$f}{$p}, "$doc: $f has a parameter \"$p\"")
			  or diag("$f($list); its parameters: " . join(', ', sort keys %{ $params{$f} }));
		}
	}
}

# --- SQLSTATEs
sub sqlstate_of
{
	my ($const) = @_;
	# the server headers we were built with (a private copy's pg_config
	# points into the copy, which has none)
	my ($file) = grep { -f } map { "$_/utils/errcodes.h" }
	  ($node->config_data('--includedir-server'), '/usr/include/postgresql/15/server');
	my $h = slurp_file($file);
	my %map;
	$map{$1} = join('', $2, $3, $4, $5, $6)
	  while $h =~ /#define (ERRCODE_\w+)\s+MAKE_SQLSTATE\('(.)','(.)','(.)','(.)','(.)'\)/g;
	return \%map;
}
my $pgmap = sqlstate_of();
my %local;
$local{$1} = join('', $2, $3, $4, $5, $6)
  while $code =~ /#define (\w*ERRCODE_\w+)\s+MAKE_SQLSTATE\('(.)','(.)','(.)','(.)','(.)'\)/g;
$local{$1} = $pgmap->{$2} // $local{$2} while $code =~ /#define (\w*ERRCODE_\w+)\s+(ERRCODE_\w+)\s*$/mg;
my %map = (%$pgmap, %local);

my %raised;
# every error-code constant the code uses, except in comparisons (==, !=)
# and the names its own #defines introduce
(my $uses = $code) =~ s/^#define \w+//mg;
for my $c ($uses =~ /(?<![=!]=)(?<![=!]= )(?<!\w)(\w*ERRCODE_[A-Z_0-9]+)\b/g)
{
	ok(defined $map{$c}, "$c is a known error code") or next;
	$raised{ $map{$c} } = $c;
}
for my $name ($code =~ /USING ERRCODE\s*=\s*'(\w+)'/gi)
{
	my $c = 'ERRCODE_' . uc $name;
	ok(defined $map{$c}, "condition $name is known") or next;
	$raised{ $map{$c} } = $c;
}
# raised by PostgreSQL inside the code's calls (docs/errors.md names them)
my %through = (
	'54001' => qr/check_stack_depth\(\)/,          # nesting deeper than max_stack_depth
	'57014' => qr/CHECK_FOR_INTERRUPTS\(\)/,       # cancel, statement_timeout
	'42P01' => qr/\bregclass\b/,                   # regclass input of an unknown table
	'22P05' => qr/pg_any_to_server|pg_unicode_to_server/,   # untranslatable character
	'55P02' => qr/PGC_POSTMASTER|PGC_SIGHUP/,      # a setting that cannot be set per database/role
	'42501' => qr/ERRCODE_INSUFFICIENT_PRIVILEGE/);

my %listed;
$listed{$_} = 1 for $text{'docs/errors.md'} =~ /^\|[^\n]*?`([0-9A-Z]{5})`/mg;
$listed{$_} = 1 for map { /`([0-9A-Z]{5})`/g } $text{'docs/errors.md'} =~ /^\| (`[0-9A-Z]{5}`(?:, `[0-9A-Z]{5}`)*) \|/mg;
ok(keys %listed > 20, 'docs/errors.md lists SQLSTATEs');
for my $s (sort keys %listed)
{
	ok($raised{$s} || ($through{$s} && $code =~ $through{$s}), "SQLSTATE $s of docs/errors.md is raised by the code");
}
for my $s (sort keys %raised)
{
	ok($listed{$s}, "SQLSTATE $s ($raised{$s}) raised by the code is listed in docs/errors.md");
}

$node->stop;
done_testing();
