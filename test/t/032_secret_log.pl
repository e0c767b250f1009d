# Issue 12, item 7(c): a URL password typed in SQL or written to the
# configuration never reaches the server log (log_statement lines, STATEMENT:
# lines after errors, duration lines, CONTEXT lines, the postmaster's
# "parameter ... changed to" on reload) nor a client's error message, also
# when the URL cannot be parsed.  Statements come from a plain role (CREATE
# on public, nothing else), from that role once granted SET on redis_url,
# and from a superuser for ALTER SYSTEM/DATABASE/ROLE.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes ();

my $node = PostgreSQL::Test::Cluster->new('secret_log');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'celerysalt'
celerysalt.broker_url = 'amqp://guest:guest\@127.0.0.1:5672//'
celerysalt.poll_interval = '200ms'
celerysalt.reconnect_max_delay = '500ms'
log_statement = 'all'
log_min_error_statement = error
log_min_duration_statement = 0
log_error_verbosity = verbose
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION celerysalt;
CREATE ROLE plain LOGIN;
GRANT CREATE ON SCHEMA public TO plain;
CREATE ROLE setter LOGIN;
GRANT CREATE ON SCHEMA public TO setter;
GRANT SET ON PARAMETER celerysalt.redis_url TO setter;
});

my @secrets;

# Run $sql as $user; return psql's exit code; the password must not be in
# what the client gets back (stdout, stderr with every error field).
sub run_as
{
	my ($user, $sql, $secret, $what) = @_;
	push @secrets, $secret;
	my ($ret, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql",
		extra_params => [ '-U', $user ]);
	# psql itself quotes its own query text under "LINE n:" for a syntax
	# error position: that comes from the client, not from the server.
	(my $from_server = $err) =~ s/^LINE \d+: .*\n//mg;
	unlike($out . $from_server, qr/\Q$secret\E/, "$what: the client does not see the password");
	return ($ret, $err);
}

my ($ret, $err);

# A plain role tries both settings: refused, and both statements are logged.
($ret, $err) = run_as('plain', "SET celerysalt.broker_url = 'amqp://u:PlainSet1\@h//'",
	'PlainSet1', 'plain: SET broker_url');
like($err, qr/55P02/, 'plain: SET broker_url refused');
($ret, $err) = run_as('plain', "SET celerysalt.redis_url = 'redis://:PlainSet2\@h:6379/0'",
	'PlainSet2', 'plain: SET redis_url');
like($err, qr/42501: permission denied to set parameter/, 'plain: SET redis_url refused');

# A role allowed to set redis_url, with URLs that do not parse: the error
# does not repeat the value.
($ret, $err) = run_as('setter', "SET celerysalt.redis_url = 'amqp:/guest:Unparsable3\@host'",
	'Unparsable3', 'setter: SET unparsable URL');
like($err, qr/22023: invalid value for parameter "celerysalt\.redis_url"\n/, 'setter: unparsable URL gives 22023 without the value');
($ret, $err) = run_as('setter', "SET celerysalt.redis_url = 'redis://:Unparsable4\@host:99999/0'",
	'Unparsable4', 'setter: SET URL with a bad port');
like($err, qr/DETAIL:  The Redis URL has an invalid port/, 'setter: detail says why');

# The same errors caught in PL/pgSQL: what the caller can read holds no password.
($ret, $err) = run_as('setter', q{
DO $$
DECLARE m text; d text; h text;
BEGIN
    BEGIN
        SET celerysalt.redis_url = 'amqp:/guest:Caught5@host';
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
        RAISE NOTICE 'caught: % / % / %', m, d, h;
    END;
    BEGIN
        PERFORM set_config('celerysalt.redis_url', 'redis://:Caught6@h:6379/0', false);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
        RAISE NOTICE 'caught: % / % / %', m, d, h;
    END;
END $$;
}, 'Caught5', 'setter: errors caught in PL/pgSQL');
push @secrets, 'Caught6';
unlike($err, qr/Caught6/, 'setter: refused password caught in PL/pgSQL: not shown');
like($err, qr/caught: invalid value for parameter "celerysalt\.redis_url" \//, 'setter: the caught message is the one without value');

# A password with a space, in a dollar-quoted string; an error with CONTEXT.
($ret, $err) = run_as('setter',
	"SELECT set_config('celerysalt.redis_url', \$x\$redis://:Dollar Quoted7\@h:6379/0\$x\$, false)",
	'Quoted7', 'setter: dollar-quoted URL');
($ret, $err) = run_as('setter', q{
CREATE FUNCTION public.set_it() RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
    PERFORM set_config('celerysalt.redis_url', 'redis://u:InContext8@h:6379/0', false);
END $f$;
SELECT public.set_it();
}, 'InContext8', 'setter: error inside a function (CONTEXT)');
like($err, qr/CONTEXT:/, 'setter: the error has a CONTEXT line');
# Quotes in a password: the URL parsers take them, so the log must mask them too
# (a SQL literal doubles the single quote).
($ret, $err) = run_as('plain', q{SET celerysalt.redis_url = 'redis://:Pa"ss10Word@127.0.0.1:6379/0'},
	'Pa"ss10Word', 'plain role: double quote in the password');
($ret, $err) = run_as('plain', q{SET celerysalt.redis_url = $$redis://:Pa'ss11Word@127.0.0.1:6379/0$$},
	"Pa'ss11Word", 'plain role: single quote in the password, dollar-quoted');
($ret, $err) = run_as('plain', q{SET celerysalt.broker_url = 'amqp://guest:Pa''ss12Word@127.0.0.1:1//'},
	"ss12Word", 'plain role: doubled single quote in the password');
($ret, $err) = run_as('setter', "SET celerysalt.redis_url = 'redis://:Syntax9\@h:6379/0' garbage",
	'Syntax9', 'setter: syntax error');
like($err, qr/42601/, 'setter: syntax error reported');

# Superuser: ALTER DATABASE/ROLE are refused (031 covers why), an unparsable
# ALTER SYSTEM is refused, SET is refused.
($ret, $err) = run_as('postgres', "ALTER DATABASE postgres SET celerysalt.redis_url = 'redis://:AlterDb10\@h:6379/0'",
	'AlterDb10', 'superuser: ALTER DATABASE');
isnt($ret, 0, 'superuser: ALTER DATABASE refused');
($ret, $err) = run_as('postgres', "ALTER ROLE plain SET celerysalt.redis_url = 'redis://:AlterRole11\@h:6379/0'",
	'AlterRole11', 'superuser: ALTER ROLE');
isnt($ret, 0, 'superuser: ALTER ROLE refused');
($ret, $err) = run_as('postgres', "ALTER SYSTEM SET celerysalt.broker_url = 'amqp:/guest:AlterSysBad12\@host'",
	'AlterSysBad12', 'superuser: ALTER SYSTEM with an unparsable URL');
like($err, qr/22023: invalid value for parameter "celerysalt\.broker_url"\n/, 'superuser: unparsable ALTER SYSTEM refused');
($ret, $err) = run_as('postgres', "SET celerysalt.redis_url = 'redis://:SuperSet13\@h:6379/0'",
	'SuperSet13', 'superuser: SET');
isnt($ret, 0, 'superuser: SET with a password refused');

# A list of nodes (broker failover) that does not parse: no node's password
# is repeated.
($ret, $err) = run_as('postgres',
	"ALTER SYSTEM SET celerysalt.broker_url = 'amqp://a:MultiBad15\@h1//;amqp://b:MultiBad16\@h2:x//'",
	'MultiBad1', 'superuser: ALTER SYSTEM with an unparsable node list');
like($err, qr/22023: invalid value for parameter "celerysalt\.broker_url"\nDETAIL:  Node 2 of the broker URL has an invalid port/,
	'superuser: unparsable node list refused, naming the node');

# ALTER SYSTEM with a wrong password and a second node that is down: logged
# statement, and the reload's "parameter ... changed to" line with each
# node's password masked; then back, a successful reload.
ok($node->poll_query_until('postgres', 'SELECT broker_connected FROM celerysalt_status'),
	'worker connected');
($ret, $err) = run_as('postgres',
	"ALTER SYSTEM SET celerysalt.broker_url = 'amqp://guest:WrongPw14\@localhost:5672//;amqp://u2:SecondPw17\@127.0.0.1:1//'",
	'WrongPw14', 'superuser: ALTER SYSTEM');
push @secrets, 'SecondPw17';
is($ret, 0, 'superuser: ALTER SYSTEM with a password accepted');
$node->reload;
# (the first node refuses the login, the second one is down: last_error
# shows whichever failed last)
ok($node->poll_query_until('postgres',
	"SELECT last_error LIKE '%127.0.0.1:1:%' FROM celerysalt_status"),
	'the worker tried both nodes');
like(slurp_file($node->logfile), qr/celerysalt cannot deliver events: could not log in to broker at localhost:5672 as user "guest"/,
	'the worker uses the new (wrong) password');
# (log_statement off for this one, so the duration line repeats the statement)
($ret, $err) = run_as('postgres',
	"SET log_statement = 'none';\nALTER SYSTEM SET celerysalt.broker_url = 'amqp://guest:guest\@127.0.0.1:5672//'",
	'guest:guest', 'superuser: ALTER SYSTEM back');
$node->reload;
ok($node->poll_query_until('postgres', 'SELECT broker_connected FROM celerysalt_status'),
	'worker connected again after a successful reload');

# A statement built to make the log redaction quadratic (1 MB of distinct
# dollar-quote tags that never close, each searched to the end of the text)
# is logged, masked, in linear time: the redaction runs in the log hook,
# where the statement can no longer be cancelled.
{
	my $tags = join(' ', map { "\$t$_\$" } 1 .. 150000);
	my $t0 = [ Time::HiRes::gettimeofday() ];
	($ret, $err) = run_as('plain', "SELECT length('amqp://u:Dollar7\@h//') /* $tags */",
		'Dollar7', 'plain: a 1 MB statement of unclosed dollar quotes');
	my $elapsed = Time::HiRes::tv_interval($t0);
	is($ret, 0, 'plain: the 1 MB statement runs');
	cmp_ok($elapsed, '<', 20, "plain: ... and is logged without a quadratic redaction (${elapsed}s)");
}

my $log = slurp_file($node->logfile);
like($log, qr/parameter "celerysalt\.broker_url" changed to "amqp:\/\/guest:\*\*\*\@localhost:5672\/\/;amqp:\/\/u2:\*\*\*\@127\.0\.0\.1:1\/\/"/,
	'the reload line is there, every node masked');
like($log, qr/DETAIL:  Broker node amqp:\/\/u2:\*\*\*\@127\.0\.0\.1:1\/\/\. Events stay in the outbox; the worker tries node amqp:\/\/guest:\*\*\*\@localhost:5672\/\/ after a pause/,
	'the worker names the failing node, masked');
like($log, qr/statement: ALTER SYSTEM SET celerysalt\.broker_url = 'amqp:\/\/guest:\*\*\*\@localhost/,
	'the log_statement line is there, masked');
like($log, qr/STATEMENT:  SET celerysalt\.redis_url = 'amqp:\/guest:\*\*\*\@host'/,
	'the STATEMENT line of a failed SET is there, masked');
like($log, qr/^\s+SET celerysalt\.redis_url = 'amqp:\/guest:\*\*\*\@host';$/m,
	'a DO body is masked URL by URL');
like($log, qr/CONTEXT:  SQL statement "SELECT set_config\('celerysalt\.redis_url', 'redis:\/\/u:\*\*\*\@h:6379\/0', false\)"/,
	'the CONTEXT line is there, masked');
like($log, qr/duration: .* statement: ALTER SYSTEM SET celerysalt\.broker_url = 'amqp:\/\/guest:\*\*\*\@127/,
	'the duration line is there, masked');
for my $secret (@secrets)
{
	my @lines = grep { /\Q$secret\E/ } split /\n/, $log;
	is(scalar(@lines), 0, "server log: no $secret") or diag(join("\n", @lines));
}
unlike($log, qr/:guest\@/, 'server log: no guest password');

done_testing();
