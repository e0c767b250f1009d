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

#include <limits.h>

#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/guc.h"

#include "broker.h"
#include "jsonschema.h"
#include "redis.h"

char	   *celerysalt_broker_url = NULL;
char	   *celerysalt_broker_password_file = NULL;
char	   *celerysalt_exchange = NULL;
char	   *celerysalt_dispatcher_tasks = NULL;
char	   *celerysalt_databases = NULL;
char	   *celerysalt_redis_url = NULL;
char	   *celerysalt_redis_password_file = NULL;
char	   *celerysalt_redis_key_prefix = NULL;
char	   *celerysalt_rpc_task = NULL;
int			celerysalt_batch_size = 500;
int			celerysalt_poll_interval_ms = 1000;
int			celerysalt_broker_timeout_ms = 5000;
int			celerysalt_reconnect_max_delay_ms = 30000;
int			celerysalt_max_payload_size = 1024 * 1024;
int			celerysalt_max_payload_depth = 64;
int			celerysalt_delivered_retention_s = 24 * 3600;
int			celerysalt_outbox_rotation_s = 10;
int			celerysalt_max_databases = 32;

static bool
check_broker_url(char **newval, void **extra, GucSource source)
{
	BrokerUrl	url;
	char	   *error = NULL;

	if (*newval == NULL || **newval == '\0')
	{
		GUC_check_errdetail("The broker URL must not be empty.");
		return false;
	}
	if (!BrokerParseUrl(*newval, &url, &error))
	{
		/* The message never repeats the URL: it may hold a password. */
		GUC_check_errdetail("%s", error);
		GUC_check_errhint("Use the form amqp://user@host:port/vhost.");
		return false;
	}
	return true;
}

static bool
check_redis_url(char **newval, void **extra, GucSource source)
{
	RedisUrl	url;
	char	   *error = NULL;

	if (*newval == NULL || !RedisParseUrl(*newval, &url, &error))
	{
		GUC_check_errdetail("%s", error ? error : "The Redis URL must not be empty.");
		GUC_check_errhint("Use the form redis://host:port/db.");
		return false;
	}
	return true;
}

static bool
check_task_name(char **newval, void **extra, GucSource source)
{
	List	   *names;
	bool		ok;

	if (*newval == NULL)
		return false;
	names = MessageSplitTaskNames(*newval);
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
	names = MessageSplitTaskNames(*newval);
	ok = names != NIL && list_length(names) <= 8;
	list_free_deep(names);
	if (!ok)
	{
		GUC_check_errdetail("List between 1 and 8 comma-separated Celery task names.");
		return false;
	}
	return true;
}

/*
 * GucReadSecretFile
 *		The first line of the file a *_password_file setting names, palloc'd,
 *		or NULL with a message in error.  what names the secret in that message.
 */
char *
GucReadSecretFile(const char *path, const char *what, StringInfo error)
{
	FILE	   *f = AllocateFile(path, "r");
	char		line[1024];
	size_t		len;

	if (f == NULL)
	{
		appendStringInfo(error, "could not open %s password file \"%s\": %m", what, path);
		return NULL;
	}
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';
	FreeFile(f);
	len = strlen(line);
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		line[--len] = '\0';
	return pstrdup(line);
}

void
GucDefineAll(void)
{
	DefineCustomStringVariable("celerysalt.broker_url",
							   "Sets the RabbitMQ server events are delivered to.",
							   "amqp://user[:password]@host[:port]/vhost; prefer "
							   "celerysalt.broker_password_file for the password.",
							   &celerysalt_broker_url,
							   "amqp://guest:guest@127.0.0.1:5672/%2F",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL,
							   check_broker_url, NULL, NULL);

	DefineCustomStringVariable("celerysalt.broker_password_file",
							   "Sets a file whose first line is the broker password.",
							   "When set, it overrides any password in celerysalt.broker_url.",
							   &celerysalt_broker_password_file,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
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
							   &celerysalt_redis_url,
							   "redis://127.0.0.1:6379/0",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL,
							   check_redis_url, NULL, NULL);

	DefineCustomStringVariable("celerysalt.redis_password_file",
							   "Sets a file whose first line is the Redis password.",
							   NULL,
							   &celerysalt_redis_password_file,
							   "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY,
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
							"Sets how many events the worker publishes before it awaits the broker's confirms.",
							NULL,
							&celerysalt_batch_size,
							500, 1, 10000,
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
							"Sets the time limit for connecting to the broker and for each confirm wait.",
							NULL,
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
							"Sets how long delivered events stay in celerysalt_events for replay.",
							"0 keeps no log of delivered events.",
							&celerysalt_delivered_retention_s,
							24 * 3600, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("celerysalt.outbox_rotation",
							"Sets how often publishing moves on to the next outbox partition.",
							"Drained partitions are truncated, so the outbox never holds more "
							"dead rows than a few rotations produce.",
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

	/* A PGC_POSTMASTER parameter can only be defined at server start. */
	if (process_shared_preload_libraries_in_progress)
		DefineCustomIntVariable("celerysalt.max_databases",
								"Sets how many databases can have a delivery worker at the same time.",
								NULL,
								&celerysalt_max_databases,
								32, 1, 1024,
								PGC_POSTMASTER, 0,
								NULL, NULL, NULL);

	FollowDefineGucs();
	RegistryDefineGucs();
	MarkGUCPrefixReserved("celerysalt");
}
