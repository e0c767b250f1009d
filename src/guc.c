/*-------------------------------------------------------------------------
 *
 * guc.c
 *		Every celerysalt.* configuration parameter and its check hooks.
 *
 * Parameters are defined whether or not the library is preloaded, so that
 * SET and postgresql.conf entries are validated either way.  docs/
 * configuration.md has one row per parameter defined here.
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"
#include "conninfo.h"

#include <limits.h>

#include "access/parallel.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "tcop/tcopprot.h"
#include "utils/backend_status.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/varlena.h"

#include "broker.h"
#include "jbv.h"
#include "jsonschema/jsonschema.h"
#include "redis.h"
#include "guc.h"
#include "tls.h"
#include "event.h"
#include "trace_context.h"

char	   *celerysalt_broker_url = NULL;
char	   *celerysalt_broker_password_file = NULL;
char	   *celerysalt_exchange = NULL;
char	   *celerysalt_dispatcher_tasks = NULL;
char	   *celerysalt_databases = NULL;
char	   *celerysalt_redis_url = NULL;
bool		celerysalt_redis_url_trusted = false;
char	   *celerysalt_redis_password_file = NULL;
char	   *celerysalt_redis_key_prefix = NULL;
char	   *celerysalt_rpc_task = NULL;
int			celerysalt_batch_size = 500;
int			celerysalt_publish_window = 4;
int			celerysalt_poll_interval_ms = 1000;
int			celerysalt_broker_timeout_ms = 5000;
int			celerysalt_reconnect_max_delay_ms = 30000;
int			celerysalt_max_payload_size = 1024 * 1024;
int			celerysalt_max_payload_depth = 64;
int			celerysalt_delivered_retention_s = 24 * 3600;
int			celerysalt_outbox_rotation_s = 10;
int			celerysalt_unroutable = UNROUTABLE_KEEP;
int			celerysalt_unroutable_retry_s = 60;
int			celerysalt_unroutable_retention_s = 7 * 24 * 3600;
int			celerysalt_max_databases = 32;
int			celerysalt_follow_action_errors = FOLLOW_ERRORS_ERROR;
bool		celerysalt_track_metrics = true;
bool		celerysalt_require_registration = false;
int			celerysalt_format_dialect = FORMAT_DIALECT_PYDANTIC;
char	   *celerysalt_service_name = NULL;
char	   *celerysalt_traceparent = NULL;
char	   *celerysalt_tracestate = NULL;
char	   *celerysalt_broker_tls_ca_file = NULL;
char	   *celerysalt_broker_tls_cert_file = NULL;
char	   *celerysalt_broker_tls_key_file = NULL;
int			celerysalt_broker_tls_verify = TLS_VERIFY_FULL;
char	   *celerysalt_redis_tls_ca_file = NULL;
char	   *celerysalt_redis_tls_cert_file = NULL;
char	   *celerysalt_redis_tls_key_file = NULL;
int			celerysalt_redis_tls_verify = TLS_VERIFY_FULL;

static const struct config_enum_entry tls_verify_options[] = {
	{"full", TLS_VERIFY_FULL, false},
	{"ca", TLS_VERIFY_CA, false},
	{"none", TLS_VERIFY_NONE, false},
	{NULL, 0, false}
};

static const struct config_enum_entry format_dialect_options[] = {
	{"pydantic", FORMAT_DIALECT_PYDANTIC, false},
	{"rfc3339", FORMAT_DIALECT_RFC3339, false},
	{NULL, 0, false}
};

static const struct config_enum_entry unroutable_options[] = {
	{"keep", UNROUTABLE_KEEP, false},
	{"drop", UNROUTABLE_DROP, false},
	{NULL, 0, false}
};

static const struct config_enum_entry follow_errors_options[] = {
	{"error", FOLLOW_ERRORS_ERROR, false},
	{"dead_letter", FOLLOW_ERRORS_DEAD_LETTER, false},
	{NULL, 0, false}
};

/*
 * URL settings that may carry a password: broker_url and redis_url.
 *
 * PostgreSQL shows a setting's value to every member of
 * pg_read_all_settings (SHOW, current_setting, pg_settings), keeps
 * per-database and per-role values in the world-readable
 * pg_db_role_setting, and serializes values into parallel workers.  So the
 * value PostgreSQL holds is the URL with its password replaced by "***",
 * and the URL with the real password lives in the check hook's "extra",
 * which guc.c keeps with every value it holds (reset value, SET stack,
 * transaction rollback) and hands to the assign hook: that is where
 * celerysalt_broker_url and celerysalt_redis_url point, and what the worker
 * and celerysalt_call use.
 *
 * A password is accepted only from the server's configuration
 * (postgresql.conf, ALTER SYSTEM's postgresql.auto.conf, the command line):
 * values from ALTER DATABASE/ROLE ... SET (checked with PGC_S_TEST when
 * stored, applied with PGC_S_GLOBAL/DATABASE/USER/DATABASE_USER), from a
 * function's SET clause, the connection request or SET are refused, even
 * for superusers, because other roles can read them.
 *
 * The masked value comes back to the check hook only in a parallel worker
 * (RestoreGUCState).  Each process remembers which real URL it saw for each
 * masked one; parallel workers are forked from the postmaster, which saw
 * the configuration file, so they find it there.
 */
#define SECRET_CACHE_SIZE	8

typedef struct UrlSetting
{
	const char *name;			/* celerysalt.broker_url */
	const char *password_file;	/* its password-file setting */
	const char *form;			/* "amqp://user@host:port//" */
	/* parse url; on success *password is NULL or the non-empty password */
	bool		(*parse) (const char *url, char **password, char **error);
	/* url with every password in it masked */
	char	   *(*redact) (const char *url);
	char	   *masked[SECRET_CACHE_SIZE];	/* TopMemoryContext, newest first */
	char	   *real[SECRET_CACHE_SIZE];
} UrlSetting;

/*
 * A broker URL may list several nodes, each with its own password: report
 * the first one given, or "***" if any node's is (a masked value given
 * back).
 */
static bool
parse_broker_url(const char *url, char **password, char **error)
{
	AmqpUrl    *nodes;
	int			n;

	nodes = ConninfoParseAmqpNodes(url, &n, error);
	if (nodes == NULL)
		return false;
	*password = NULL;
	for (int i = 0; i < n; i++)
	{
		if (!nodes[i].has_password)
			continue;
		if (*password == NULL || strcmp(nodes[i].password, "***") == 0)
			*password = nodes[i].password;
	}
	return true;
}

static bool
parse_redis_url(const char *url, char **password, char **error)
{
	RedisUrl	u;

	*error = NULL;
	if (!ConninfoParseRedis(url, &u, error))
	{
		if (*error == NULL)
			*error = "The Redis URL is not valid.";
		return false;
	}
	*password = (u.password != NULL && u.password[0] != '\0') ? u.password : NULL;
	return true;
}

static UrlSetting broker_url_setting = {
	"celerysalt.broker_url", "celerysalt.broker_password_file",
	"amqp[s]://user@host:port/vhost (vhost \"/\" is written //; join a cluster's nodes with \";\")",
	parse_broker_url, ConninfoRedactAmqp
};
static UrlSetting redis_url_setting = {
	"celerysalt.redis_url", "celerysalt.redis_password_file",
	"redis[s]://host:port/db", parse_redis_url, ConninfoRedactUrl
};

/* The GUC variables: what PostgreSQL shows, password masked. */
static char *broker_url_shown = NULL;
static char *redis_url_shown = NULL;

static const char *
secret_lookup(UrlSetting *s, const char *masked)
{
	for (int i = 0; i < SECRET_CACHE_SIZE && s->masked[i]; i++)
		if (strcmp(s->masked[i], masked) == 0)
			return s->real[i];
	return NULL;
}

static void
secret_remember(UrlSetting *s, const char *masked, const char *real)
{
	int			i;

	for (i = 0; i < SECRET_CACHE_SIZE - 1 && s->masked[i]; i++)
		if (strcmp(s->masked[i], masked) == 0)
			break;
	/* drop entry i (a match, or the oldest), shift the newer ones down */
	if (s->masked[i])
	{
		pfree(s->masked[i]);
		pfree(s->real[i]);
	}
	for (; i > 0; i--)
	{
		s->masked[i] = s->masked[i - 1];
		s->real[i] = s->real[i - 1];
	}
	s->masked[0] = MemoryContextStrdup(TopMemoryContext, masked);
	s->real[0] = MemoryContextStrdup(TopMemoryContext, real);
}

/* A malloc'd copy, as guc.c frees values and extras with free(). */
static char *
guc_copy(const char *s)
{
	char	   *copy = malloc(strlen(s) + 1);

	if (copy != NULL)
		strcpy(copy, s);
	return copy;
}

/*
 * pg_stat_activity shows the statement a backend runs, and after it the last
 * one, to members of pg_read_all_stats (so pg_monitor): when the statement
 * being run carries a URL password (ALTER SYSTEM, a refused SET), report it
 * redacted there.  (debug_query_string may already be redacted by the log
 * hook, so report it whether or not ConninfoRedactText changes it.)  The raw text is
 * visible there from the start of the statement until this check runs.
 */
static void
redact_reported_activity(void)
{
	if (MyBackendType == B_BACKEND && pgstat_track_activities &&
		debug_query_string != NULL &&
		MyBEEntry != NULL && MyBEEntry->st_state == STATE_RUNNING)
		pgstat_report_activity(STATE_RUNNING, ConninfoRedactText(debug_query_string));
}

/* Where a password may come from: the server's own configuration. */
static bool
source_may_hold_password(GucSource source)
{
	return source <= PGC_S_ARGV;
}

static bool
check_url_setting(UrlSetting *s, char **newval, void **extra, GucSource source)
{
	char	   *password = NULL;
	char	   *error = NULL;
	const char *real = *newval;
	char	   *masked = NULL;
	char	   *shown;

	if (*newval == NULL || !s->parse(*newval, &password, &error))
	{
		/* Never repeat a value that did not parse: it may hold a password. */
		GUC_check_errmsg("invalid value for parameter \"%s\"", s->name);
		GUC_check_errdetail("%s", error ? error : "The URL must not be empty.");
		GUC_check_errhint("Use the form %s and put a password in the file %s names.",
						  s->form, s->password_file);
		return false;
	}
	if (password != NULL)
	{
		redact_reported_activity();
		masked = s->redact(*newval);
		if (strcmp(password, "***") == 0)
		{
			/* the masked value given back: only a parallel worker does that */
			real = IsParallelWorker() ? secret_lookup(s, masked) : NULL;
			if (real == NULL && IsParallelWorker())
				real = masked;	/* parallel workers never connect */
			if (real == NULL)
			{
				GUC_check_errmsg("invalid value for parameter \"%s\": \"%s\"",
								 s->name, masked);
				GUC_check_errdetail("\"***\" stands for a password that is not shown; it cannot be set.");
				GUC_check_errhint("Set the URL in postgresql.conf or with ALTER SYSTEM, "
								  "or put the password in the file %s names.",
								  s->password_file);
				return false;
			}
		}
		else if (strcmp(masked, *newval) == 0)
		{
			/* cannot happen: the redaction masks what the parsers take */
			GUC_check_errmsg("invalid value for parameter \"%s\"", s->name);
			GUC_check_errdetail("The password in the URL cannot be located.");
			return false;
		}
		else if (!source_may_hold_password(source))
		{
			GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
			GUC_check_errmsg("a password in parameter \"%s\" can only be set in the server's configuration file",
							 s->name);
			GUC_check_errdetail("Per-database, per-role, per-function and session settings can be read by other roles; "
								"the URL given was \"%s\".", masked);
			GUC_check_errhint("Remove the password from the URL and put it in the file %s names, "
							  "or set the URL in postgresql.conf or with ALTER SYSTEM.",
							  s->password_file);
			return false;
		}
		else
			secret_remember(s, masked, *newval);
	}

	/*
	 * extra: a trust mark, then the real URL; the value PostgreSQL keeps and
	 * shows: masked.  A URL is trusted when it comes from the server's own
	 * configuration or a superuser set it in its own session: only then do
	 * the password files apply to it (a role granted SET on the setting must
	 * not point the password at a server of its choice, neither with SET
	 * nor with a per-database or per-role value that a superuser's session
	 * then applies).
	 */
	{
		bool		trusted = source_may_hold_password(source) ||
			((source == PGC_S_SESSION || source == PGC_S_CLIENT) && superuser());
		char	   *marked = psprintf("%c%s", trusted ? 'T' : 'U', real);

		*extra = guc_copy(marked);
		pfree(marked);
	}
	if (*extra == NULL)
	{
		GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
		GUC_check_errmsg("out of memory");
		return false;
	}
	if (masked != NULL && strcmp(masked, *newval) != 0)
	{
		shown = guc_copy(masked);
		if (shown == NULL)
		{
			free(*extra);
			*extra = NULL;
			GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
			GUC_check_errmsg("out of memory");
			return false;
		}
		free(*newval);
		*newval = shown;
	}
	if (masked != NULL)
		pfree(masked);
	return true;
}

static bool
check_broker_url(char **newval, void **extra, GucSource source)
{
	return check_url_setting(&broker_url_setting, newval, extra, source);
}

static void
assign_broker_url(const char *newval, void *extra)
{
	celerysalt_broker_url = (char *) extra + 1;	/* a file setting: always trusted */
}

static bool
check_redis_url(char **newval, void **extra, GucSource source)
{
	return check_url_setting(&redis_url_setting, newval, extra, source);
}

static void
assign_redis_url(const char *newval, void *extra)
{
	celerysalt_redis_url = (char *) extra + 1;
	celerysalt_redis_url_trusted = ((char *) extra)[0] == 'T';
}

static bool
check_task_name(char **newval, void **extra, GucSource source)
{
	List	   *names;
	bool		ok;

	if (*newval == NULL)
		return false;
	names = EventNameSplitTasks(*newval);
	ok = list_length(names) == 1;
	list_free_deep(names);
	if (!ok)
	{
		GUC_check_errdetail("Give exactly one Celery task name.");
		return false;
	}
	return true;
}

static bool
check_exchange(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || **newval == '\0' || strlen(*newval) > 127)
	{
		GUC_check_errdetail("The exchange name must have between 1 and 127 bytes.");
		return false;
	}
	return true;
}

static bool
check_dispatcher_tasks(char **newval, void **extra, GucSource source)
{
	List	   *names;
	bool		ok;

	if (*newval == NULL)
		return false;
	names = EventNameSplitTasks(*newval);
	ok = names != NIL && list_length(names) <= 8;
	list_free_deep(names);
	if (!ok)
	{
		GUC_check_errdetail("List between 1 and 8 comma-separated Celery task names.");
		return false;
	}
	return true;
}


static bool
check_service_name(char **newval, void **extra, GucSource source)
{
	if (*newval && strlen(*newval) >= CELERYSALT_MAX_SERVICE_LEN)
	{
		GUC_check_errdetail("The service name must be shorter than %d bytes.",
							CELERYSALT_MAX_SERVICE_LEN);
		return false;
	}
	return true;
}

/*
 * celerysalt.traceparent and celerysalt.tracestate: empty means none; any
 * other value must be what OpenTelemetry's W3C propagator accepts
 * (trace_context.c), so a bad value fails the SET, not a publish later and
 * not silently on the consumer's side.  The value is never repeated in the
 * message: it comes from the application and may be anything.
 */
static bool
check_trace_setting(const char *name, const char *value, char *(*problem_of) (const char *),
					const char *form)
{
	char	   *problem;

	if (value == NULL || value[0] == '\0')
		return true;
	problem = problem_of(value);
	if (problem == NULL)
		return true;
	GUC_check_errmsg("invalid value for parameter \"%s\"", name);
	GUC_check_errdetail("%s", problem);
	GUC_check_errhint("%s", form);
	pfree(problem);
	return false;
}

static bool
check_traceparent(char **newval, void **extra, GucSource source)
{
	return check_trace_setting("celerysalt.traceparent", *newval, TraceparentProblem,
							   "A traceparent is 00-<32 hex trace-id>-<16 hex parent-id>-<2 hex trace-flags> "
							   "in lowercase, as OpenTelemetry's propagator writes it; an empty value sets none.");
}

static bool
check_tracestate(char **newval, void **extra, GucSource source)
{
	return check_trace_setting("celerysalt.tracestate", *newval, TracestateProblem,
							   "A tracestate is a comma-separated list of key=value members, as "
							   "OpenTelemetry's propagator writes it; an empty value sets none.");
}

void
GucDefineAll(void)
{
	DefineCustomStringVariable("celerysalt.broker_url",
							   "Sets the RabbitMQ server events are delivered to.",
							   "amqp://user[:password]@host[:port]/vhost, as Celery's broker_url (vhost \"/\" is "
							   "written //); the nodes of a cluster joined by \";\" are tried in turn. Prefer "
							   "celerysalt.broker_password_file for the password.",
							   &broker_url_shown,
							   "amqp://guest@127.0.0.1:5672//",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   check_broker_url, assign_broker_url, NULL);

	DefineCustomStringVariable("celerysalt.broker_password_file",
							   "Sets a file whose first line is the broker password.",
							   "When set, it overrides any password in celerysalt.broker_url.",
							   &celerysalt_broker_password_file,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	/*
	 * TLS of amqps:// (broker) and rediss:// (RPC's Redis), one set per
	 * service as Celery has broker_use_ssl and redis_backend_use_ssl: the
	 * two often trust different CAs and present different client
	 * certificates.  Each applies only to a URL whose scheme asks for TLS.
	 * The file settings are superuser-only, as the password files are.
	 */
	DefineCustomStringVariable("celerysalt.broker_tls_ca_file",
							   "Sets the file of CA certificates that RabbitMQ servers' TLS certificates are verified against.",
							   "Used with amqps:// URLs; empty means the system's CA store.",
							   &celerysalt_broker_tls_ca_file,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("celerysalt.broker_tls_cert_file",
							   "Sets the TLS client certificate presented to RabbitMQ servers.",
							   "Used with amqps:// URLs; empty means no client certificate.",
							   &celerysalt_broker_tls_cert_file,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("celerysalt.broker_tls_key_file",
							   "Sets the private key file of the TLS client certificate presented to RabbitMQ servers.",
							   "Empty means the key is in the certificate file; group and others must not be able to read it.",
							   &celerysalt_broker_tls_key_file,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomEnumVariable("celerysalt.broker_tls_verify",
							 "Sets what is verified of a RabbitMQ server's TLS certificate.",
							 "full: a chain to a trusted CA and the host name; ca: the chain only; "
							 "none: nothing (encrypted, not authenticated).",
							 &celerysalt_broker_tls_verify,
							 TLS_VERIFY_FULL,
							 tls_verify_options,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("celerysalt.exchange",
							   "Sets the topic exchange events are published to.",
							   NULL,
							   &celerysalt_exchange,
							   "tchu_events",
							   PGC_SIGHUP, 0,
							   check_exchange, NULL, NULL);

	DefineCustomStringVariable("celerysalt.dispatcher_tasks",
							   "Sets the Celery task names each event is sent to, one message per name.",
							   "celery_salt.dispatch_event reaches celery-salt workers, "
							   "tchu_tchu.dispatch_event reaches tchu-tchu workers.",
							   &celerysalt_dispatcher_tasks,
							   "celery_salt.dispatch_event",
							   PGC_SIGHUP, GUC_LIST_INPUT,
							   check_dispatcher_tasks, NULL, NULL);

	DefineCustomStringVariable("celerysalt.redis_url",
							   "Sets the Redis server and database where Celery workers store results (their result_backend).",
							   "Used by celerysalt_call; prefer celerysalt.redis_password_file for a password.",
							   &redis_url_shown,
							   "redis://127.0.0.1:6379/0",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY,
							   check_redis_url, assign_redis_url, NULL);

	DefineCustomStringVariable("celerysalt.redis_password_file",
							   "Sets a file whose first line is the Redis password.",
							   NULL,
							   &celerysalt_redis_password_file,
							   "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	/* as celerysalt.redis_url: a superuser may set them per session */
	DefineCustomStringVariable("celerysalt.redis_tls_ca_file",
							   "Sets the file of CA certificates that Redis servers' TLS certificates are verified against.",
							   "Used with rediss:// URLs; empty means the system's CA store.",
							   &celerysalt_redis_tls_ca_file,
							   "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("celerysalt.redis_tls_cert_file",
							   "Sets the TLS client certificate presented to Redis servers.",
							   "Used with rediss:// URLs; empty means no client certificate.",
							   &celerysalt_redis_tls_cert_file,
							   "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("celerysalt.redis_tls_key_file",
							   "Sets the private key file of the TLS client certificate presented to Redis servers.",
							   "Empty means the key is in the certificate file; group and others must not be able to read it.",
							   &celerysalt_redis_tls_key_file,
							   "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomEnumVariable("celerysalt.redis_tls_verify",
							 "Sets what is verified of a Redis server's TLS certificate.",
							 "full: a chain to a trusted CA and the host name; ca: the chain only; "
							 "none: nothing (encrypted, not authenticated).",
							 &celerysalt_redis_tls_verify,
							 TLS_VERIFY_FULL,
							 tls_verify_options,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("celerysalt.redis_key_prefix",
							   "Sets the prefix of Celery result keys (result_backend_transport_options global_keyprefix).",
							   "Celery joins a non-empty prefix and the key with \"_\".",
							   &celerysalt_redis_key_prefix,
							   "",
							   PGC_USERSET, 0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("celerysalt.rpc_task",
							   "Sets the dispatcher task name celerysalt_call sends requests to.",
							   "celery_salt.dispatch_event for celery-salt services, "
							   "tchu_tchu.dispatch_event for tchu-tchu services.",
							   &celerysalt_rpc_task,
							   "celery_salt.dispatch_event",
							   PGC_USERSET, 0,
							   check_task_name, NULL, NULL);

	DefineCustomStringVariable("celerysalt.databases",
							   "Sets the databases whose events are delivered; empty means every database.",
							   NULL,
							   &celerysalt_databases,
							   "",
							   PGC_SIGHUP, GUC_LIST_INPUT,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("celerysalt.batch_size",
							"Sets how many events the worker reads from the outbox and publishes as one batch.",
							NULL,
							&celerysalt_batch_size,
							500, 1, 10000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("celerysalt.publish_window",
							"Sets how many batches the worker keeps between reading them and removing them from the outbox.",
							"While the broker confirms one batch the worker publishes the next ones. "
							"After a crash or a lost connection at most this many batches are published again.",
							&celerysalt_publish_window,
							4, 1, 16,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("celerysalt.poll_interval",
							"Sets how long the worker sleeps when no commit woke it.",
							"Commits that publish wake the worker at once; this is only a safety net.",
							&celerysalt_poll_interval_ms,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("celerysalt.broker_timeout",
							"Sets the time limit for connecting to the broker and for each of its confirms.",
							"The worker drops a connection on which the broker confirmed nothing for this long while messages wait.",
							&celerysalt_broker_timeout_ms,
							5000, 100, 600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("celerysalt.reconnect_max_delay",
							"Sets the longest pause between two attempts to reach the broker.",
							"The pause doubles from 100ms after each failure up to this value.",
							&celerysalt_reconnect_max_delay_ms,
							30000, 100, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("celerysalt.max_payload_size",
							"Sets the largest payload celerysalt_publish accepts.",
							"Measured as the size of the jsonb value.",
							&celerysalt_max_payload_size,
							1024 * 1024, 64, INT_MAX / 2,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("celerysalt.max_payload_depth",
							"Sets how deeply objects and arrays may nest in a payload.",
							"Applies to celerysalt_publish, follow-action events and RPC requests. "
							"Python's json module fails on documents nested about 1,000 levels deep.",
							&celerysalt_max_payload_depth,
							64, 1, 900,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("celerysalt.delivered_retention",
							"Sets how long, at least, delivered events stay in celerysalt_events for replay.",
							"A log partition is truncated once all its events were delivered this long ago; "
							"0 truncates it as soon as they are delivered.",
							&celerysalt_delivered_retention_s,
							24 * 3600, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("celerysalt.unroutable",
							 "Sets what happens to an event no queue is bound for.",
							 "keep publishes mandatory: an event the broker returns waits in "
							 "celerysalt_unroutable and is sent again; drop publishes as plain AMQP "
							 "does, and the broker discards it.",
							 &celerysalt_unroutable,
							 UNROUTABLE_KEEP,
							 unroutable_options,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("celerysalt.unroutable_retry_interval",
							"Sets how often the worker sends again the events no queue received.",
							"Events are published mandatory; one the broker returns because no "
							"queue is bound for its topic waits in celerysalt_unroutable.  A "
							"subscriber's registration also sends them again at once.",
							&celerysalt_unroutable_retry_s,
							60, 1, 24 * 3600,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("celerysalt.unroutable_retention",
							"Sets how long an event no queue received is kept before it becomes a dead letter.",
							"Counted from the event's enqueue time.",
							&celerysalt_unroutable_retention_s,
							7 * 24 * 3600, 1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("celerysalt.outbox_rotation",
							"Sets how often publishing moves on to an empty log partition.",
							"Delivered partitions are truncated after celerysalt.delivered_retention "
							"and then take publishing again.",
							&celerysalt_outbox_rotation_s,
							10, 1, 3600,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	/*
	 * SUSET: the limit protects the server from the schemas publishers send
	 * or register, so they must not raise it themselves (GRANT SET ON
	 * PARAMETER delegates it).
	 */
	DefineCustomIntVariable("celerysalt.validation_work_limit",
							"Sets how many steps one JSON Schema validation or schema compilation may take.",
							"A step is one subschema applied to one value; schemas whose anyOf, oneOf, "
							"allOf, $ref, not or if multiply the work stop with SQLSTATE 54000.",
							&JsonschemaWorkLimit,
							JSONSCHEMA_DEFAULT_WORK_LIMIT, 1000, INT_MAX,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	/*
	 * It sizes shared memory, so it is PGC_POSTMASTER; but PostgreSQL refuses
	 * (FATAL) a PGC_POSTMASTER parameter defined after server start.  A
	 * backend that loads the library without preloading has no shared memory
	 * and no worker for it to size: it defines the parameter as PGC_SIGHUP
	 * (same range and default; SET is refused, postgresql.conf and ALTER
	 * SYSTEM are checked), so SHOW and typos behave as for every other one.
	 */
	DefineCustomIntVariable("celerysalt.max_databases",
							"Sets how many databases can have a delivery worker at the same time.",
							"Each worker also takes one of max_worker_processes.  Takes effect at "
							"server start, with celerysalt in shared_preload_libraries.",
							&celerysalt_max_databases,
							32, 1, 1024,
							process_shared_preload_libraries_in_progress ? PGC_POSTMASTER : PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("celerysalt.follow_action_errors",
							 "Sets what happens when a follow-action rule cannot be evaluated or its event cannot be published.",
							 "error fails the UPDATE; dead_letter records the failure in "
							 "celerysalt_follow_action_failures, raises a WARNING and lets the UPDATE go on.",
							 &celerysalt_follow_action_errors,
							 FOLLOW_ERRORS_ERROR,
							 follow_errors_options,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("celerysalt.require_registration",
							 "Sets whether events may only be published to topics with a registered schema.",
							 "When off, events of unregistered topics are published unvalidated.",
							 &celerysalt_require_registration,
							 false,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	/*
	 * SUSET like require_registration: validate-on-publish protects the
	 * subscribers, so a publisher must not loosen it for itself.
	 */
	DefineCustomEnumVariable("celerysalt.format_dialect",
							 "Sets how the registry reads the date-time, time and duration formats.",
							 "pydantic accepts what a pydantic 2 subscriber accepts (timestamps without "
							 "an offset, a space before the time, timedelta strings); rfc3339 follows "
							 "RFC 3339 strictly.",
							 &celerysalt_format_dialect,
							 FORMAT_DIALECT_PYDANTIC,
							 format_dialect_options,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("celerysalt.track_metrics",
							 "Collects the latency histograms and the follow-action, validation and RPC counters.",
							 "These are the series celerysalt_metrics() adds to what celerysalt_status shows; "
							 "the status counters are kept either way.",
							 &celerysalt_track_metrics,
							 true,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("celerysalt.service_name",
							   "Sets the service name publish counts are recorded under.",
							   "Empty means the name of the current database.",
							   &celerysalt_service_name,
							   "",
							   PGC_USERSET, 0,
							   check_service_name, NULL, NULL);

	/*
	 * USERSET: the trace context belongs to the transaction that publishes;
	 * applications set it with SET LOCAL or set_config(..., true).
	 */
	DefineCustomStringVariable("celerysalt.traceparent",
							   "Sets the W3C traceparent the events of this transaction carry.",
							   "Events and RPC requests carry it in their message headers, where "
							   "OpenTelemetry's Celery instrumentation continues the trace; empty means none.",
							   &celerysalt_traceparent,
							   "",
							   PGC_USERSET, GUC_NOT_IN_SAMPLE,
							   check_traceparent, NULL, NULL);

	DefineCustomStringVariable("celerysalt.tracestate",
							   "Sets the W3C tracestate sent with celerysalt.traceparent.",
							   "Only sent when celerysalt.traceparent is set; empty means none.",
							   &celerysalt_tracestate,
							   "",
							   PGC_USERSET, GUC_NOT_IN_SAMPLE,
							   check_tracestate, NULL, NULL);
	MarkGUCPrefixReserved("celerysalt");
}

/*
 * GucDatabaseIsServed
 *		Whether database name is listed in celerysalt.databases (an empty
 *		list serves every database).  An invalid list serves none, and says
 *		so in the log.
 */
bool
GucDatabaseIsServed(const char *name)
{
	char	   *raw;
	List	   *names;
	ListCell   *lc;
	bool		served = false;

	if (celerysalt_databases == NULL || celerysalt_databases[0] == '\0')
		return true;
	raw = pstrdup(celerysalt_databases);
	if (!SplitIdentifierString(raw, ',', &names))
	{
		ereport(LOG,
				(errmsg("celerysalt.databases is not a valid list; serving no database")));
		return false;
	}
	foreach(lc, names)
		if (strcmp((char *) lfirst(lc), name) == 0)
			served = true;
	list_free(names);
	pfree(raw);
	return served;
}
