# Security issue, item 1: no object a non-superuser creates can run with
# more rights than its own.
#
# A database owned by an ordinary role refuses the extension in its public
# schema (the owner could rename the schema and put its own objects under
# the extension's names).  In a database a superuser owns, the attacker is an
# ordinary login role with CREATE on public that holds celerysalt_admin.  It
# shadows, in public, every operator and function that the SQL of the C code
# (src/*.c) and the extension's SQL functions name: exact copies of every
# pg_catalog signature, which win once public comes first in the database's
# search_path (the test sets that, the worst case), and, for every operator,
# better matches for the common argument types (the `*(integer, interval)`
# attack).  At the end the database is given to the attacker, which renames
# public and puts a view calling its function in place of the outbox: the
# worker must stop instead of reading it.  Each shadow records who ran it and tries
# ALTER ROLE attacker SUPERUSER.  Then the worker delivers, retains,
# dead-letters and rotates, a superuser's UPDATE fires a follow action, a
# superuser and the attacker publish (celerysalt_publish runs as its caller),
# and the attacker calls every SECURITY DEFINER function.  None of its objects
# may have run as anyone but itself, and it must still not be superuser.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('shadow');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'celerysalt'
celerysalt.poll_interval = '100ms'
celerysalt.outbox_rotation = '1s'
celerysalt.delivered_retention = '1h'
celerysalt.reconnect_max_delay = '1s'
# no queue is bound for this test's topics: the broker drops its events
# until the unroutable section below turns on the default, keep
celerysalt.unroutable = 'drop'
});
$node->start;

# Test-side queries see only pg_catalog (a client option beats the database
# setting the attacker makes): the shadows in public never apply to them.
sub sq
{
	my ($sql) = @_;
	local $ENV{PGOPTIONS} = '-c search_path=pg_catalog';
	return $node->safe_psql('shadowdb', $sql);
}
sub poll
{
	my ($sql) = @_;
	local $ENV{PGOPTIONS} = '-c search_path=pg_catalog';
	return $node->poll_query_until('shadowdb', $sql);
}
sub as_attacker {
	my ($sql, %opt) = @_;
	return $node->psql('shadowdb', $sql, extra_params => ['-U', 'attacker', '-v', 'ON_ERROR_STOP=0'], %opt);
}

$node->safe_psql('postgres', q{
	CREATE ROLE attacker LOGIN;
	CREATE DATABASE ownerdb OWNER attacker;
	CREATE DATABASE shadowdb;
});
my ($rc, $out, $err) = $node->psql('ownerdb', 'CREATE EXTENSION celerysalt',
	extra_params => ['-v', 'VERBOSITY=verbose']);
like($err, qr/42501: celerysalt must be installed in a schema that only superusers control.*\n.*DETAIL:  Schema "public" is controlled by role "attacker"/,
	'CREATE EXTENSION refuses the public schema of a database a plain role owns');
$node->safe_psql('shadowdb', q{
	CREATE EXTENSION celerysalt;
	GRANT celerysalt_admin TO attacker;
	GRANT CREATE ON SCHEMA public TO attacker;
});
ok($node->poll_query_until('shadowdb', 'SELECT worker_pid IS NOT NULL FROM celerysalt_status'),
	'worker runs');
is(sq("SELECT rolsuper FROM pg_roles WHERE rolname = 'attacker'"), 'f', 'attacker is not superuser');
is(sq("SELECT has_schema_privilege('attacker', 'public', 'CREATE')"), 't', 'attacker may create in public');

# ---------------------------------------------------------------- what to shadow
# SQL texts: string literals of src/*.c (adjacent literals joined) that look
# like SQL, and the bodies of the extension's SQL and PL/pgSQL functions.
my @sql;
for my $file (glob('src/*.c'))
{
	my $code = slurp_file($file);
	while ($code =~ /((?:"(?:[^"\\\n]|\\.)*"\s*)+)/g)
	{
		my $lit = join('', $1 =~ /"((?:[^"\\\n]|\\.)*)"/g);
		push @sql, $lit if $lit =~ /\b(SELECT|INSERT|DELETE|UPDATE|TRUNCATE|WITH)\b/;
	}
}
push @sql, split(/\x1e/, sq(qq{SELECT string_agg(p.prosrc, chr(30))
	FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
	JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'celerysalt'
	JOIN pg_language l ON l.oid = p.prolang WHERE l.lanname IN ('sql', 'plpgsql')}));
ok(@sql > 20, 'found ' . scalar(@sql) . ' SQL texts in the code and the extension');

my (%ops, %funcs);
for my $s (@sql)
{
	$s =~ s/'(?:[^']|'')*'//g;    # string literals
	$s =~ s/%[sdu]//g;            # printf placeholders
	$s =~ s/--[^\n]*//g;
	$ops{$1} = 1 while $s =~ /([-+*\/<>=~!@#%^&|?]+)/g;
	$funcs{lc $1} = 1 while $s =~ /\b([A-Za-z_][A-Za-z0-9_]*)\s*\(/g;
}
my $oplist = join(',', map { my $o = $_; $o =~ s/'/''/g; "'$o'" } sort keys %ops);
my $fnlist = join(',', map { "'$_'" } sort keys %funcs);
note("operators: " . join(' ', sort keys %ops));
ok(exists $ops{'='} && exists $ops{'<'}, 'the derived operators include = and <');

# -------------------------------------------------------------- the shadows
my $body = q{LANGUAGE plpgsql AS $f$ BEGIN
	INSERT INTO public.shadow_hits VALUES ('%s', current_user);
	BEGIN EXECUTE 'ALTER ROLE attacker SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END;
	RETURN %s; END $f$;};
my @script = ('CREATE TABLE public.shadow_hits (obj text, by_user name);',
	'GRANT ALL ON public.shadow_hits TO PUBLIC;');
my $n = 0;
# exact copies of pg_catalog's operators with these names
for my $row (split /\n/, sq(qq{SELECT concat_ws(chr(9), oprname, oprleft::regtype, oprright::regtype, oprresult::regtype)
	FROM pg_operator WHERE oprnamespace = 'pg_catalog'::regnamespace AND oprname IN ($oplist)
	AND oprleft <> 0 AND oprright <> 0}))
{
	my ($op, $l, $r, $res) = split /\t/, $row;
	$n++;
	push @script, sprintf("CREATE FUNCTION public.shadow_%d(%s, %s) RETURNS %s $body", $n, $l, $r, $res, "op $op($l,$r)", 'NULL'),
	  "CREATE OPERATOR public.$op (FUNCTION = public.shadow_$n, LEFTARG = $l, RIGHTARG = $r);";
}
# better matches than pg_catalog's for common argument types
my @types = qw(smallint integer bigint numeric "double precision" text "character varying" name
  boolean jsonb uuid "timestamp with time zone" interval tid oid);
for my $op (sort keys %ops)
{
	my $res = sq(qq{SELECT oprresult::regtype FROM pg_operator WHERE oprname = '$op'
		AND oprnamespace = 'pg_catalog'::regnamespace AND oprleft <> 0 LIMIT 1});
	next if $res eq '' || $res =~ /any/;
	for my $l (@types)
	{
		for my $r (@types)
		{
			$n++;
			push @script, sprintf("CREATE FUNCTION public.shadow_%d(%s, %s) RETURNS %s $body", $n, $l, $r, $res, "op $op($l,$r)", 'NULL'),
			  "CREATE OPERATOR public.$op (FUNCTION = public.shadow_$n, LEFTARG = $l, RIGHTARG = $r);";
		}
	}
}
# exact copies of pg_catalog's functions with these names
for my $row (split /\n/, sq(qq{SELECT concat_ws(chr(9), p.proname, pg_get_function_identity_arguments(p.oid), p.prorettype::regtype, p.proretset)
	FROM pg_proc p WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname IN ($fnlist)
	AND p.prokind IN ('f', 'a') AND p.pronargs > 0}))
{
	my ($fn, $args, $res, $setof) = split /\t/, $row;
	next if $args =~ /\b(internal|cstring|"any"|variadic)\b/i;
	push @script, sprintf("CREATE FUNCTION public.%s(%s) RETURNS %s%s $body", $fn, $args,
		$setof eq 't' ? 'SETOF ' : '', $res, "fn $fn($args)", $setof eq 't' ? '' : 'NULL');
}
($rc, $out, $err) = as_attacker(join("\n", @script));
my $nops = sq("SELECT count(*) FROM pg_operator WHERE oprnamespace = 'public'::regnamespace");
my $nfns = sq("SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND p.proowner = 'attacker'::regrole");
ok($nops > 1000, "attacker created $nops shadow operators");
ok($nfns > $nops, "attacker created $nfns shadow functions");

# public before pg_catalog for every session of the database, the worker's
# included (it restarts to pick the setting up): the worst case.
$node->safe_psql('postgres', 'ALTER DATABASE shadowdb SET search_path = public, pg_catalog');
my $pid = sq('SELECT worker_pid FROM public.celerysalt_status');
sq("SELECT pg_terminate_backend($pid)");
ok(poll("SELECT worker_pid IS NOT NULL AND worker_pid <> $pid FROM public.celerysalt_status"),
	'worker reconnected under the attacker\'s database settings');

# Positive control: in its own session the shadows do run (as the attacker).
as_attacker(q{SELECT 2 * interval '1 second', 1 = 1});
ok(sq("SELECT count(*) > 0 FROM public.shadow_hits WHERE by_user = 'attacker'"),
	'shadows are effective in the attacker\'s own session');
sq('DELETE FROM public.shadow_hits');

# -------------------------------------------------------------- the worker's work
my %relfile = map { $_ => sq("SELECT relfilenode FROM pg_class WHERE relname = '_celerysalt_log_$_'") } 0 .. 2;

# deliver
# (five statements: the attacker's own generate_series is a shadow too)
($rc, $out, $err) = as_attacker(join('', map { qq{SELECT celerysalt_publish('shadow.event', '{"n": $_}');\n} } 1 .. 5));
is($err, '', 'attacker publishes') or diag($err);
ok(poll(
	"SELECT count(*) OPERATOR(pg_catalog.=) 5 FROM public.celerysalt_events WHERE topic OPERATOR(pg_catalog.=) 'shadow.event'"),
	'events delivered')
  or diag(sq(q{SELECT backend_type, state, wait_event_type, wait_event, query FROM pg_stat_activity WHERE backend_type LIKE 'celerysalt%'}),
	sq(q{SELECT pending, broker_connected, last_error FROM public.celerysalt_status}),
	sq(q{SELECT topic, count(*) FROM public.celerysalt_events GROUP BY 1}), $out, $err);

# dead-letter: rows moved into the outbox by hand that can never be sent
# (a 300-byte topic, a scalar payload), followed by a good one
sq(q{INSERT INTO public._celerysalt_outbox (slot, event_id, id, topic, payload, enqueued_at)
	SELECT 0, nextval('public._celerysalt_event_seq'), gen_random_uuid(), t, p, now()
	FROM (VALUES (1, repeat('x', 300), '{"a": 1}'::jsonb), (2, 'shadow.scalar', '42'), (3, 'shadow.after', '{"b": 2}')) v(i, t, p)
	ORDER BY i;
	SELECT public.celerysalt_wake()});
ok(poll(
	"SELECT count(*) OPERATOR(pg_catalog.=) 2 FROM public.celerysalt_dead_letters"),
	'the two unsendable rows are dead-lettered');
like(sq("SELECT string_agg(reason, ' | ' ORDER BY event_id) FROM public.celerysalt_dead_letters"),
	qr/topic is too long.*300 bytes.*\|.*must be a JSON object/s, 'dead letters say why');
ok(poll(
	"SELECT count(*) OPERATOR(pg_catalog.=) 1 FROM public.celerysalt_events WHERE topic OPERATOR(pg_catalog.=) 'shadow.after'"),
	'the event behind them is delivered');

# rotate: publishers move to another (empty) partition every second
# (publish once per poll until an event lands in another one)
ok(poll(
	"SELECT public.celerysalt_publish('shadow.rotate', '{}') IS NULL"
	  . " OR (SELECT count(DISTINCT slot) OPERATOR(pg_catalog.>) 1 FROM public._celerysalt_log)"),
	'log partitions rotated');

# follow action fired by a superuser's UPDATE of the attacker's table
($rc, $out, $err) = as_attacker(q{
	CREATE TABLE public.shadow_t (id int PRIMARY KEY, status text, on_change_rules jsonb NOT NULL DEFAULT '[]');
	SELECT celerysalt_attach_follow_actions('public.shadow_t');
	INSERT INTO public.shadow_t VALUES (1, 'new', '[{"field_name": "status", "operator": "eql", "value": "paid", "topic": "shadow.paid"}]');});
is($err, '', 'attacker attaches follow actions') or diag($err);
$node->safe_psql('shadowdb', "UPDATE public.shadow_t SET status = 'paid' WHERE id OPERATOR(pg_catalog.=) 1");
ok(poll(
	"SELECT count(*) OPERATOR(pg_catalog.=) 1 FROM public.celerysalt_events WHERE topic OPERATOR(pg_catalog.=) 'shadow.paid'"),
	'the follow action\'s event is delivered');

# celerysalt_publish runs as its caller: a superuser publishing under the
# database's search_path (public, with every shadow, first) and the attacker
# publishing run none of the shadows with more rights than the attacker's;
# a registered topic makes the registry read its tables (as their owner)
$node->safe_psql('shadowdb', q{SELECT celerysalt_register_schema('shadow.invoker', '{"type": "object"}'::jsonb, version => 'v1')});
$node->safe_psql('shadowdb', q{SELECT celerysalt_publish('shadow.invoker', '{"x": 1}', 'v1', 'c1')});
($rc, $out, $err) = as_attacker(q{SELECT celerysalt_publish('shadow.invoker', '{"x": 2}', 'v1', 'c2')});
is($err, '', 'attacker publishes') or diag($err);
ok(poll(
	"SELECT count(*) OPERATOR(pg_catalog.=) 2 FROM public.celerysalt_events WHERE topic OPERATOR(pg_catalog.=) 'shadow.invoker'"),
	'both events are delivered');

# unroutable: with the default (keep), an event no queue is bound for is
# parked, moved back into the outbox every second, and dead-lettered once
# its retention is over: the worker's three statements for it, shadowed
sq("ALTER SYSTEM SET celerysalt.unroutable = 'keep'");
sq("ALTER SYSTEM SET celerysalt.unroutable_retry_interval = '1s'");
$node->reload;
sleep 1;
($rc, $out, $err) = as_attacker(q{SELECT celerysalt_publish('shadow.parked', '{"p": 1}')});
is($err, '', 'attacker publishes to a topic no queue is bound for') or diag($err);
ok(poll(
	"SELECT count(*) OPERATOR(pg_catalog.=) 1 FROM public.celerysalt_unroutable WHERE topic OPERATOR(pg_catalog.=) 'shadow.parked'"
	  . " AND returned_at OPERATOR(pg_catalog.>) (enqueued_at OPERATOR(pg_catalog.+) interval '1500 ms')"),
	'the unroutable event is parked, sent again and parked again');
sq("ALTER SYSTEM SET celerysalt.unroutable_retention = '1s'");
$node->reload;
ok(poll(
	"SELECT count(*) OPERATOR(pg_catalog.=) 1 FROM public.celerysalt_dead_letters WHERE topic OPERATOR(pg_catalog.=) 'shadow.parked'"
	  . " AND reason OPERATOR(pg_catalog.~) 'no queue was bound'"),
	'past its retention it becomes a dead letter');
sq("ALTER SYSTEM SET celerysalt.unroutable = 'drop'");
$node->reload;

# retain: with delivered_retention = 1s, a restarted worker applies it at once
sq("ALTER SYSTEM SET celerysalt.delivered_retention = '1s'");
$node->reload;
sleep 1.5;
$pid = sq('SELECT worker_pid FROM public.celerysalt_status');
sq("SELECT pg_terminate_backend($pid)");
ok(poll(
	"SELECT count(*) OPERATOR(pg_catalog.=) 0 FROM public.celerysalt_events"),
	'retention removed the delivered events');
ok(poll(
	"SELECT count(*) OPERATOR(pg_catalog.>) 0 FROM pg_class WHERE relname IN ('_celerysalt_log_0', '_celerysalt_log_1', '_celerysalt_log_2')"
	  . " AND relfilenode OPERATOR(pg_catalog.<>) ALL (ARRAY[$relfile{0}, $relfile{1}, $relfile{2}]::oid[])"),
	'by truncating delivered partitions');

# every SECURITY DEFINER function, called by the attacker
my %calls = (
	'_celerysalt_topics_hint' => q{SELECT _celerysalt_topics_hint()},
	'celerysalt_track_publisher' => q{SELECT celerysalt_track_publisher('shadow.definer', 'svc', '1.0', 'm', 'C')},
	'celerysalt_track_subscriber' => q{SELECT celerysalt_track_subscriber('shadow.definer', 'svc', 'handler')},
	'celerysalt_registry_compact' => q{SELECT celerysalt_registry_compact()},
	'celerysalt_catalog_dot' => q{SELECT celerysalt_catalog_dot()},
	'celerysalt_metrics' => q{SELECT celerysalt_metrics()},
);
my @definers = split /\n/, sq(q{SELECT p.proname || '|' || coalesce(array_to_string(p.proconfig, ','), '')
	FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
	JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'celerysalt'
	WHERE p.prosecdef ORDER BY 1});
ok(@definers >= 5, scalar(@definers) . ' SECURITY DEFINER functions');
for my $d (@definers)
{
	my ($name, $config) = split /\|/, $d, 2;
	is($config, 'search_path=pg_catalog, pg_temp', "$name pins search_path");
	ok(exists $calls{$name}, "$name has a call in this test") or next;
	($rc, $out, $err) = as_attacker($calls{$name});
	is($err, '', "attacker calls $name") or diag($err);
}

# the database cannot be given to the attacker, nor the schema ...
($rc, $out, $err) = $node->psql('postgres', 'ALTER DATABASE shadowdb OWNER TO attacker');
like($err, qr/cannot give the schema of extension celerysalt to role "attacker", which is not a superuser/,
	'ALTER DATABASE ... OWNER TO a plain role is refused (from another database)');
($rc, $out, $err) = $node->psql('shadowdb', 'ALTER DATABASE shadowdb OWNER TO attacker');
like($err, qr/cannot give the schema of extension celerysalt/, '... and from the database itself');
($rc, $out, $err) = $node->psql('shadowdb', 'ALTER SCHEMA public OWNER TO attacker');
like($err, qr/cannot give the schema of extension celerysalt/, 'ALTER SCHEMA ... OWNER TO a plain role is refused');

# ... but if it changes hands some other way (here: the catalog edited by
# hand), the new owner renames public and puts a view calling its function
# where the worker reads the outbox: the worker must stop
$node->safe_psql('postgres',
	"UPDATE pg_database SET datdba = 'attacker'::regrole WHERE datname = 'shadowdb'");
($rc, $out, $err) = as_attacker(q{
	ALTER SCHEMA public RENAME TO celerysalt_moved;
	CREATE SCHEMA public;
	CREATE FUNCTION public.pwn() RETURNS bigint LANGUAGE plpgsql AS $f$ BEGIN
		INSERT INTO celerysalt_moved.shadow_hits VALUES ('renamed public', current_user);
		BEGIN EXECUTE 'ALTER ROLE attacker SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END;
		RETURN 1; END $f$;
	CREATE VIEW public._celerysalt_log AS
	  SELECT s.e AS event_id, NULL::uuid AS id, NULL::text AS topic, NULL::jsonb AS payload,
	         NULL::text AS version, NULL::text AS correlation_id, NULL::smallint AS slot, NULL::tid AS ctid,
	         NULL::timestamptz AS enqueued_at, NULL::text AS traceparent, NULL::text AS tracestate,
	         NULL::xid8 AS txid
	    FROM (SELECT public.pwn() AS e) s;
	CREATE VIEW public._celerysalt_outbox AS SELECT * FROM public._celerysalt_log;});
is($err, '', 'the new owner renames public and plants a view') or diag($err);
ok(eval { $node->wait_for_log(qr/celerysalt worker stops: the extension's schema is not under superusers' control/); 1 },
	'the worker stops instead of reading it');
sleep 1;

# ---------------------------------------------------------------- verdict
is(sq("SELECT coalesce(string_agg(DISTINCT obj || ' as ' || by_user, '; '), '') FROM celerysalt_moved.shadow_hits WHERE by_user <> 'attacker'"),
	'', 'no shadow ran as anyone but the attacker');
is(sq("SELECT rolsuper FROM pg_roles WHERE rolname = 'attacker'"), 'f', 'attacker is still not superuser');

$node->stop;
done_testing();
