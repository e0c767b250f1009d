/*-------------------------------------------------------------------------
 *
 * celerysalt.h
 *		Declarations shared between the files of the celerysalt extension.
 *
 * Each file under src/ owns one responsibility; this header is the list of
 * what they offer each other.  Nothing here includes a client library's
 * headers, so any file may include it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CELERYSALT_H
#define CELERYSALT_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

/* Topics are AMQP routing keys: a short string. */
#define CELERYSALT_MAX_TOPIC_LEN	255
/* Limits of the other names an event carries (event.c). */
#define CELERYSALT_MAX_VERSION_LEN	64
#define CELERYSALT_MAX_TASK_LEN		255
#define CELERYSALT_MAX_CORRELATION_ID_LEN	255

/* The outbox rotates through this many partitions (outbox.c). */
#define CELERYSALT_OUTBOX_SLOTS		3

/* ---- guc.c ---- */
extern char *celerysalt_broker_url;
extern char *celerysalt_broker_password_file;
extern char *celerysalt_exchange;
extern char *celerysalt_dispatcher_tasks;
extern char *celerysalt_databases;
extern char *celerysalt_redis_url;
extern char *celerysalt_redis_password_file;
extern char *celerysalt_redis_key_prefix;
extern char *celerysalt_rpc_task;
extern int	celerysalt_batch_size;
extern int	celerysalt_poll_interval_ms;
extern int	celerysalt_broker_timeout_ms;
extern int	celerysalt_reconnect_max_delay_ms;
extern int	celerysalt_max_payload_size;
extern int	celerysalt_max_payload_depth;
extern int	celerysalt_delivered_retention_s;
extern int	celerysalt_outbox_rotation_s;
extern int	celerysalt_max_databases;
extern bool celerysalt_require_registration;
extern char *celerysalt_service_name;
extern int	celerysalt_follow_action_errors;

/* celerysalt.follow_action_errors */
typedef enum FollowErrors
{
	FOLLOW_ERRORS_ERROR,
	FOLLOW_ERRORS_DEAD_LETTER
} FollowErrors;

/* celerysalt.service_name is shorter than this */
#define CELERYSALT_MAX_SERVICE_LEN	NAMEDATALEN

extern void GucDefineAll(void);

/* ---- dbslot.c ---- */

/*
 * Per-database delivery state, shared by the database's worker (writer),
 * publishing backends (they read the insert slot and set the latch) and the
 * status view.  Fields below "mutex" are protected by it; the atomics are not.
 */
typedef struct DatabaseSlot
{
	Oid			dboid;			/* InvalidOid = free slot */
	pid_t		worker_pid;		/* 0 while no worker runs */
	Latch	   *worker_latch;	/* set to wake the worker */
	pg_atomic_uint32 insert_slot;	/* outbox partition publishers use */
	pg_atomic_uint64 delivered_total;
	pg_atomic_uint64 dead_lettered_total;

	slock_t		mutex;
	bool		broker_connected;
	bool		extension_missing;	/* last probe found no extension */
	TimestampTz paused_until;	/* launcher leaves the db alone until then */
	TimestampTz worker_started_at;
	TimestampTz last_delivery_at;
	TimestampTz last_error_at;
	char		last_error[256];
} DatabaseSlot;

typedef struct CelerysaltShared
{
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	int			ndatabases;		/* length of databases[] */
	DatabaseSlot databases[FLEXIBLE_ARRAY_MEMBER];
} CelerysaltShared;

extern CelerysaltShared *celerysalt_shared;

extern void DbslotInstallHooks(void);
extern DatabaseSlot *DbslotFind(Oid dboid);
extern DatabaseSlot *DbslotClaim(Oid dboid);
extern void DbslotSetWorkerError(DatabaseSlot *slot, const char *message);
extern void DbslotWakeLauncher(void);


extern bool celerysalt_preloaded;
extern void RequirePreload(void);

/* ---- catalog.c ---- */
extern Oid	CatalogExtensionSchema(bool missing_ok);
extern char *CatalogQualifiedName(const char *relname);

/* The only search_path under which SQL runs with more than the user's rights. */
#define CATALOG_SAFE_SEARCH_PATH "pg_catalog, pg_temp"
extern void CatalogPinProcessSearchPath(void);
extern int	CatalogPushSafeSearchPath(void);
extern void CatalogPopSearchPath(int level);

/* ---- event_name.c, event.c ---- */

/*
 * The two upward calls of the layered layout (docs/architecture.md): hooks
 * defined here, low, and set by the registry (registry.c) at load time.
 */
/* A plug point for the schema registry: called by the event intake for
 * every event (publish, follow actions, RPC requests) before it is enqueued.  It may raise an error, and it may
 * return a different version to stamp into the message. */
typedef const char *(*PublishValidator) (const char *topic, Jsonb *payload,
										 const char *version);
extern PublishValidator celerysalt_publish_validator;

/* A plug point for the schema registry: called by celerysalt_call with the
 * handler's response (is_error: a business error object) before it is
 * returned; it may raise an error. */
typedef void (*RpcResponseValidator) (const char *topic, const char *version,
									  Jsonb *response, bool is_error);
extern RpcResponseValidator celerysalt_rpc_response_validator;


typedef enum EventNameKind
{
	EVENT_NAME_TOPIC,
	EVENT_NAME_VERSION,
	EVENT_NAME_TASK,
	EVENT_NAME_CORRELATION_ID
} EventNameKind;

extern char *EventNameProblem(EventNameKind kind, const char *value, char **detail);
extern void EventCheckName(EventNameKind kind, const char *value);
extern char *EventNameProblemSentence(EventNameKind kind, const char *value);
extern List *EventNameSplitTasks(const char *list);
extern char *EventPayloadProblem(Jsonb *payload, int *sqlstate, char **detail,
								 const char **hint);
extern void EventCheckPayload(Jsonb *payload);
extern const char *EventIntake(const char *topic, Jsonb *payload, const char *version,
							   const char *correlation_id);
extern char *EventRowProblem(const char *topic, Jsonb *payload, const char *version,
							 const char *correlation_id);

/* ---- outbox.c ---- */
extern void OutboxRequestCommitWake(void);
extern void OutboxWakeAfterCommitPrepared(void);

extern pg_uuid_t *OutboxEnqueue(const char *topic, Jsonb *payload,
								const char *version, const char *correlation_id);

/* ---- rpc.c ---- */


/* ---- message.c ---- */

/* One Celery protocol-2 task message, as the Python libraries send it. */
typedef struct CeleryMessage
{
	const char *task;			/* dispatcher task name */
	char		task_id[37];	/* lowercase hyphenated UUID */
	const char *routing_key;	/* the topic */
	StringInfoData body;		/* [[payload string], {routing_key}, embed] */
	StringInfoData argsrepr;	/* cosmetic, as Celery's saferepr */
	StringInfoData kwargsrepr;
	char		expires[40];	/* ISO-8601 or "" */
	int			expiration_ms;	/* AMQP per-message TTL, 0 = none */
	uint8		priority;
} CeleryMessage;

typedef struct EventMeta
{
	bool		is_rpc;
	const char *version;		/* may be NULL */
	const char *correlation_id; /* may be NULL */
} EventMeta;

extern void MessageAppendPayload(StringInfo out, Jsonb *payload,
								 const EventMeta *meta);
extern void MessageBuild(CeleryMessage *msg, const char *task,
						 const pg_uuid_t *event_id, int task_index,
						 const char *topic, const char *payload_json);
extern void MessageFormatExpires(TimestampTz when, char *out, size_t outlen);
extern void MessageUuidToString(const pg_uuid_t *uuid, char *out);
extern void MessageDeriveTaskId(const pg_uuid_t *event_id, const char *task,
								pg_uuid_t *out);

/* ---- worker.c / launcher.c ---- */
PGDLLEXPORT void CelerysaltLauncherMain(Datum main_arg);
PGDLLEXPORT void CelerysaltWorkerMain(Datum main_arg);
extern void LauncherRegister(void);
extern void WorkerStopForDatabase(Oid dboid);

/* ---- follow.c ---- */

/* ---- registry.c ---- */
extern void RegistryInit(void);

#endif							/* CELERYSALT_H */
