# Upgrades: installing the previous release and running ALTER EXTENSION
# celerysalt UPDATE must give exactly the catalog a fresh CREATE EXTENSION
# gives.  The previous release's install script is kept, frozen, in
# sql/releases/; every change to sql/install/ needs its twin in the upgrade
# script sql/releases/celerysalt--<previous>--<current>.sql, or this test
# fails and shows the difference.
#
# The catalog is described object by object, without OIDs (ACL items
# sorted: the order of GRANTs means nothing): the extension's
# members; functions (definition, owner, ACL, settings); relations (kind,
# ACL, options, partition bounds, columns in order with types, defaults,
# NOT NULL and ACLs; constraints, indexes, triggers, view definitions,
# policies); sequences' parameters; types; comments; the schema's ACL; the
# extension's configuration tables; and the rows of every member table.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $control = slurp_file('celerysalt.control');
my ($current) = $control =~ /^default_version = '([^']+)'/m
  or die "no default_version in celerysalt.control";
my @releases = sort map { m{celerysalt--([0-9.]+)\.sql$} ? ($1) : () } glob('sql/releases/celerysalt--*.sql');
ok(@releases > 0, 'sql/releases holds the install script of at least one released version');

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'celerysalt'\n");
$node->start;

my $describe = q{
WITH ext AS (SELECT oid, extnamespace, extconfig, extcondition FROM pg_extension WHERE extname = 'celerysalt'),
members AS (
	SELECT d.classid, d.objid FROM pg_depend d, ext
	 WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'),
rels AS (
	SELECT c.oid, c.relname, c.relkind FROM pg_class c, ext
	 WHERE c.relnamespace = ext.extnamespace AND c.relkind <> 't')
SELECT line FROM (
	SELECT 'member ' || pg_describe_object(classid, objid, 0) AS line FROM members
	UNION ALL
	SELECT 'schema acl ' || coalesce((SELECT pg_catalog.string_agg(x::text, ',' ORDER BY x::text) FROM pg_catalog.unnest(n.nspacl) x), '-') FROM pg_namespace n, ext WHERE n.oid = ext.extnamespace
	UNION ALL
	SELECT 'config ' || c::regclass::text || ' where ' || coalesce(ext.extcondition[i], '')
	  FROM ext, unnest(ext.extconfig) WITH ORDINALITY AS u(c, i)
	UNION ALL
	SELECT 'function ' || p.oid::regprocedure::text || E'\n' || pg_get_functiondef(p.oid)
	       || E'\n  owner ' || p.proowner::regrole::text || ' acl ' || coalesce((SELECT pg_catalog.string_agg(x::text, ',' ORDER BY x::text) FROM pg_catalog.unnest(p.proacl) x), '-')
	  FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
	 WHERE p.prokind IN ('f', 'p', 'w')
	UNION ALL
	SELECT 'aggregate ' || p.oid::regprocedure::text || ' acl ' || coalesce((SELECT pg_catalog.string_agg(x::text, ',' ORDER BY x::text) FROM pg_catalog.unnest(p.proacl) x), '-')
	  FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
	 WHERE p.prokind = 'a'
	UNION ALL
	SELECT 'relation ' || r.relname || ' kind ' || r.relkind::text || ' owner ' || c.relowner::regrole::text
	       || ' acl ' || coalesce((SELECT pg_catalog.string_agg(x::text, ',' ORDER BY x::text) FROM pg_catalog.unnest(c.relacl) x), '-') || ' options ' || coalesce(c.reloptions::text, '-')
	       || ' persistence ' || c.relpersistence::text
	       || coalesce(' partition of ' || (SELECT i.inhparent::regclass::text FROM pg_inherits i WHERE i.inhrelid = c.oid)
	                   || ' ' || pg_get_expr(c.relpartbound, c.oid), '')
	  FROM rels r JOIN pg_class c ON c.oid = r.oid
	UNION ALL
	SELECT 'column ' || r.relname || ' #' || row_number() OVER (PARTITION BY r.oid ORDER BY a.attnum)
	       || ' ' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
	       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
	       || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
	       || CASE a.attgenerated WHEN 's' THEN ' generated' ELSE '' END
	       || CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END
	       || ' collation ' || a.attcollation::regcollation::text
	       || ' acl ' || coalesce((SELECT pg_catalog.string_agg(x::text, ',' ORDER BY x::text) FROM pg_catalog.unnest(a.attacl) x), '-')
	  FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
	  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
	UNION ALL
	SELECT 'constraint ' || r.relname || ' ' || co.conname || ' ' || pg_get_constraintdef(co.oid)
	  FROM rels r JOIN pg_constraint co ON co.conrelid = r.oid
	UNION ALL
	SELECT 'index ' || pg_get_indexdef(i.indexrelid)
	  FROM rels r JOIN pg_index i ON i.indrelid = r.oid
	UNION ALL
	SELECT 'trigger ' || pg_get_triggerdef(t.oid) || ' enabled ' || t.tgenabled::text
	  FROM rels r JOIN pg_trigger t ON t.tgrelid = r.oid AND NOT t.tgisinternal
	UNION ALL
	SELECT 'view ' || r.relname || E'\n' || pg_get_viewdef(r.oid)
	  FROM rels r WHERE r.relkind IN ('v', 'm')
	UNION ALL
	SELECT 'policy ' || r.relname || ' ' || po.polname || ' ' || po.polcmd::text || ' '
	       || coalesce(pg_get_expr(po.polqual, po.polrelid), '') || ' / '
	       || coalesce(pg_get_expr(po.polwithcheck, po.polrelid), '')
	  FROM rels r JOIN pg_policy po ON po.polrelid = r.oid
	UNION ALL
	SELECT 'rls ' || r.relname || ' ' || c.relrowsecurity || ' ' || c.relforcerowsecurity
	  FROM rels r JOIN pg_class c ON c.oid = r.oid WHERE r.relkind IN ('r', 'p')
	UNION ALL
	SELECT 'sequence ' || r.relname || ' ' || format_type(s.seqtypid, NULL) || ' start ' || s.seqstart
	       || ' increment ' || s.seqincrement || ' min ' || s.seqmin || ' max ' || s.seqmax
	       || ' cache ' || s.seqcache || ' cycle ' || s.seqcycle
	  FROM rels r JOIN pg_sequence s ON s.seqrelid = r.oid
	UNION ALL
	SELECT 'type ' || t.oid::regtype::text || ' ' || t.typtype::text
	       || coalesce(' labels ' || (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
	                                     FROM pg_enum e WHERE e.enumtypid = t.oid), '')
	       || coalesce(' base ' || nullif(t.typbasetype, 0)::regtype::text, '')
	       || ' acl ' || coalesce((SELECT pg_catalog.string_agg(x::text, ',' ORDER BY x::text) FROM pg_catalog.unnest(t.typacl) x), '-')
	  FROM pg_type t JOIN members m ON m.classid = 'pg_type'::regclass AND m.objid = t.oid
	UNION ALL
	SELECT 'comment ' || pg_describe_object(d.classoid, d.objoid, d.objsubid) || ': ' || d.description
	  FROM pg_description d
	 WHERE (d.classoid, d.objoid) IN (SELECT classid, objid FROM members)
	    OR (d.classoid = 'pg_class'::regclass AND d.objoid IN (SELECT oid FROM rels))
	UNION ALL
	SELECT 'event trigger ' || e.evtname || ' ' || e.evtevent || ' ' || e.evtfoid::regproc::text
	       || ' ' || coalesce(e.evttags::text, '-') || ' ' || e.evtenabled::text
	  FROM pg_event_trigger e JOIN members m ON m.classid = 'pg_event_trigger'::regclass AND m.objid = e.oid
) described ORDER BY line
};

# The rows of every member table, as text, in a stable order.
my $rows = q{
SELECT string_agg(format('SELECT %L || '' '' || coalesce((SELECT string_agg(t::text, '' '' ORDER BY t::text) FROM %s t), ''-'')',
                         c.oid::regclass::text, c.oid::regclass), ' UNION ALL ' ORDER BY c.oid::regclass::text)
  FROM pg_class c JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
  JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'celerysalt'
 WHERE c.relkind IN ('r', 'p')
};

sub catalog
{
	my ($db) = @_;
	my $lines = $node->safe_psql($db, $describe);
	my $query = $node->safe_psql($db, $rows);
	$lines .= "\n" . $node->safe_psql($db, $query) if $query ne '';
	return $lines;
}

$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION celerysalt');
is($node->safe_psql('fresh', q{SELECT extversion FROM pg_extension WHERE extname = 'celerysalt'}),
	$current, "a fresh install is version $current");
my $fresh = catalog('fresh');
ok(length($fresh) > 10000 && $fresh =~ /^function /m && $fresh =~ /^column /m && $fresh =~ /^view /m,
	'the description covers functions, columns and views');

for my $previous (grep { $_ ne $current } @releases)
{
	my $db = 'from_' . ($previous =~ s/\./_/gr);
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, "CREATE EXTENSION celerysalt VERSION '$previous'");
	is($node->safe_psql($db, q{SELECT extversion FROM pg_extension WHERE extname = 'celerysalt'}),
		$previous, "version $previous installs from sql/releases");
	$node->safe_psql($db, 'ALTER EXTENSION celerysalt UPDATE');
	is($node->safe_psql($db, q{SELECT extversion FROM pg_extension WHERE extname = 'celerysalt'}),
		$current, "ALTER EXTENSION celerysalt UPDATE goes from $previous to $current");
	my $updated = catalog($db);

	# a readable difference: the lines only one side has
	my %in_fresh = map { $_ => 1 } split /\n/, $fresh;
	my %in_updated = map { $_ => 1 } split /\n/, $updated;
	my @missing = grep { !$in_updated{$_} } split /\n/, $fresh;
	my @extra = grep { !$in_fresh{$_} } split /\n/, $updated;
	ok(@missing == 0 && @extra == 0, "updated from $previous, the catalog is the fresh install's")
	  or diag(join("\n", (map { "only in fresh install:   $_" } @missing[0 .. ($#missing < 40 ? $#missing : 39)]),
			(map { "only after the update:   $_" } @extra[0 .. ($#extra < 40 ? $#extra : 39)])));

	# the updated installation works: publish, and the worker sees the outbox
	is($node->safe_psql($db, q{
		BEGIN;
		SELECT count(*) FROM celerysalt_publish('upgrade.checked', '{"ok": true}');
		SELECT count(*) FROM _celerysalt_outbox WHERE topic = 'upgrade.checked';
		ROLLBACK;}), "1\n1", 'an updated installation accepts a publish');
}

# The check can fail: a catalog change made by hand shows as a difference.
$node->safe_psql('fresh', q{COMMENT ON TABLE celerysalt_dead_letters IS 'changed by hand'});
isnt(catalog('fresh'), $fresh, 'a change to the catalog changes the description');

$node->stop;
done_testing();
