/*-------------------------------------------------------------------------
 *
 * outbox.c
 *		celerysalt_publish(): check the event, enqueue it in the caller's
 *		transaction and wake the database's worker when that transaction
 *		commits.
 *
 * Events go to the partitioned table _celerysalt_outbox, into the partition
 * ("slot") the worker currently advertises in shared memory.  The worker
 * rotates slots and truncates drained ones, so dead rows never pile up
 * even while another transaction holds back the xmin horizon (see
 * docs/architecture.md).
 *
 * OutboxEnqueue is the only way into the outbox, and it writes with the
 * rights of the outbox's owner (the extension's owner), after the caller
 * ran the intake (event.c): publishers and the roles whose UPDATEs fire
 * follow actions need no privilege on the outbox or its sequence, so no
 * event can skip the checks.
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "port/pg_bswap.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "storage/proc.h"
#include "commands/dbcommands.h"
#include "guc.h"
#include "dbslot.h"
#include "catalog.h"
#include "event.h"
#include "outbox.h"

static void request_commit_wake(void);

PG_FUNCTION_INFO_V1(celerysalt_publish);
PG_FUNCTION_INFO_V1(celerysalt_wake);
PG_FUNCTION_INFO_V1(celerysalt_retry_unroutable);
PG_FUNCTION_INFO_V1(_celerysalt_installed);

/*
 * The saved INSERT, the outbox it writes to and the outbox's owner.
 * outbox_relid is cleared by a relcache invalidation of that table (DROP
 * EXTENSION drops it, a change of owner invalidates it), so the extension's
 * catalog entry is only looked up again after such a change, not on every
 * publish.
 */
static SPIPlanPtr insert_plan = NULL;
static Oid	outbox_relid = InvalidOid;
static Oid	outbox_owner = InvalidOid;
static bool relcache_callback_registered = false;

/* Commit-time wake-up state of this backend. */
static bool xact_callback_registered = false;
static bool wake_at_commit = false;

static void
outbox_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_at_commit)
			{
				DatabaseSlot *slot = DbslotFind(MyDatabaseId);
				Latch	   *latch = slot ? slot->worker_latch : NULL;

				if (latch != NULL)
					SetLatch(latch);
				else
				{
					/* no worker yet: the database needs one now */
					if (slot != NULL)
					{
						SpinLockAcquire(&slot->mutex);
						slot->extension_missing = false;
						SpinLockRelease(&slot->mutex);
					}
					DbslotWakeLauncher();
				}
			}
			wake_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/*
			 * A prepared transaction's events become visible at COMMIT
			 * PREPARED, which wakes the worker (OutboxWakeAfterCommitPrepared).
			 */
			wake_at_commit = false;
			break;
		default:
			break;
	}
}

/*
 * request_commit_wake
 *		Arrange for this database's worker to be woken when the current
 *		transaction commits (nothing happens if it aborts).
 */
static void
request_commit_wake(void)
{
	if (!xact_callback_registered)
	{
		RegisterXactCallback(outbox_xact_callback, NULL);
		xact_callback_registered = true;
	}
	wake_at_commit = true;
}

/*
 * OutboxWakeAfterCommitPrepared
 *		Called for COMMIT PREPARED (launcher.c's utility hook): the prepared
 *		transaction may have published, and COMMIT PREPARED runs in the
 *		database it was prepared in.  Wake this database's worker when the
 *		command's own transaction commits, if the database has one (without a
 *		worker it has no extension, or the launcher starts one anyway).
 */
void
OutboxWakeAfterCommitPrepared(void)
{
	DatabaseSlot *slot = DbslotFind(MyDatabaseId);

	if (slot != NULL && slot->worker_latch != NULL)
		request_commit_wake();
}

/* A random (version 4) UUID. */
static void
random_uuid(pg_uuid_t *uuid)
{
	if (!pg_strong_random(uuid->data, UUID_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random event id")));
	uuid->data[6] = (uuid->data[6] & 0x0f) | 0x40;
	uuid->data[8] = (uuid->data[8] & 0x3f) | 0x80;
}

static void
outbox_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == outbox_relid)
		outbox_relid = InvalidOid;
}

static SPIPlanPtr
prepare_insert(void)
{
	Oid			argtypes[9] = {INT2OID, UUIDOID, TEXTOID, JSONBOID, TEXTOID, TEXTOID,
	TIMESTAMPTZOID, TEXTOID, TEXTOID};
	char	   *sql;
	SPIPlanPtr	plan;

	sql = psprintf("INSERT INTO %s (slot, event_id, id, topic, payload, version, correlation_id, enqueued_at,"
				   " traceparent, tracestate)"
				   " VALUES ($1, pg_catalog.nextval('%s'), $2, $3, $4, $5, $6, $7, $8, $9)",
				   CatalogQualifiedName("_celerysalt_outbox"),
				   CatalogQualifiedName("_celerysalt_event_seq"));
	plan = SPI_prepare(sql, 9, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	pfree(sql);
	return plan;
}

/*
 * Warn, once per transaction, when this database is left out of
 * celerysalt.databases: no worker will deliver what it publishes until it
 * is listed again, and the events would otherwise pile up silently.
 */
static void
warn_if_unserved(void)
{
	static LocalTransactionId checked_lxid = InvalidLocalTransactionId;

	if (checked_lxid == MyProc->lxid)
		return;
	checked_lxid = MyProc->lxid;
	if (!GucDatabaseIsServed(get_database_name(MyDatabaseId)))
		ereport(WARNING,
				(errmsg("database \"%s\" is not in celerysalt.databases: no worker delivers its events",
						get_database_name(MyDatabaseId)),
				 errdetail("The events wait in the outbox until the database is served again."),
				 errhint("Add the database to celerysalt.databases and reload the configuration.")));
}

/*
 * OutboxEnqueue
 *		Insert one event the caller ran through EventIntake into the outbox
 *		in the current transaction, as the outbox's owner, and arrange the
 *		commit-time wake-up.  The event keeps the trace context in effect
 *		now (celerysalt.traceparent and .tracestate, checked when they were
 *		set; NULL columns when unset), whichever path enqueues it: publish,
 *		follow action, replay.  Returns the event id, palloc'd in the
 *		caller's context.
 */
pg_uuid_t *
OutboxEnqueue(const char *topic, Jsonb *payload, const char *version,
			  const char *correlation_id)
{
	pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));
	Datum		values[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', 'n', 'n'};
	DatabaseSlot *dbslot = DbslotFind(MyDatabaseId);
	Oid			schema;
	CatalogOwnerSection owner_section;
	int			rc;

	random_uuid(id);

	SPI_connect();
	if (!OidIsValid(outbox_relid))
	{
		if (!relcache_callback_registered)
		{
			CacheRegisterRelcacheCallback(outbox_relcache_callback, (Datum) 0);
			relcache_callback_registered = true;
		}
		schema = CatalogExtensionSchema(false);
		if (insert_plan != NULL)
			SPI_freeplan(insert_plan);
		insert_plan = NULL;
		insert_plan = prepare_insert();
		outbox_relid = get_relname_relid("_celerysalt_outbox", schema);
		if (!OidIsValid(outbox_relid))
			elog(ERROR, "the celerysalt outbox table is missing");
		outbox_owner = CatalogRelationOwner(outbox_relid);
	}

	values[0] = Int16GetDatum(dbslot ? (int16) pg_atomic_read_u32(&dbslot->insert_slot) : 0);
	values[1] = UUIDPGetDatum(id);
	values[2] = CStringGetTextDatum(topic);
	values[3] = JsonbPGetDatum(payload);
	values[4] = version ? CStringGetTextDatum(version) : (Datum) 0;
	nulls[4] = version ? ' ' : 'n';
	values[5] = correlation_id ? CStringGetTextDatum(correlation_id) : (Datum) 0;
	nulls[5] = correlation_id ? ' ' : 'n';
	values[6] = TimestampTzGetDatum(GetCurrentTimestamp());
	values[7] = values[8] = (Datum) 0;
	if (GucTraceparent() != NULL)
	{
		values[7] = CStringGetTextDatum(GucTraceparent());
		nulls[7] = ' ';
		if (GucTracestate() != NULL)
		{
			values[8] = CStringGetTextDatum(GucTracestate());
			nulls[8] = ' ';
		}
	}

	CatalogEnterOwnerSection(outbox_owner, &owner_section);
	rc = SPI_execute_plan(insert_plan, values, nulls, false, 0);
	CatalogLeaveOwnerSection(&owner_section);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not enqueue event: %s", SPI_result_code_string(rc));
	SPI_finish();

	warn_if_unserved();

	request_commit_wake();
	return id;
}

/*
 * celerysalt_publish(topic text, payload jsonb, version text, correlation_id text)
 *		RETURNS uuid
 */
Datum
celerysalt_publish(PG_FUNCTION_ARGS)
{
	char	   *topic;
	Jsonb	   *payload;
	const char *version = NULL;
	const char *correlation_id = NULL;

	RequirePreload();

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("event topic must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("event payload must not be null")));

	topic = text_to_cstring(PG_GETARG_TEXT_PP(0));
	payload = PG_GETARG_JSONB_P(1);
	if (!PG_ARGISNULL(2))
		version = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (!PG_ARGISNULL(3))
		correlation_id = text_to_cstring(PG_GETARG_TEXT_PP(3));
	version = EventIntake(topic, payload, version, correlation_id);

	PG_RETURN_UUID_P(OutboxEnqueue(topic, payload, version, correlation_id));
}

/*
 * celerysalt_wake() RETURNS void
 *		Wake the worker when the current transaction commits, e.g. after
 *		rows were moved into the outbox by hand.
 */
Datum
celerysalt_wake(PG_FUNCTION_ARGS)
{
	RequirePreload();
	request_commit_wake();
	PG_RETURN_VOID();
}

/*
 * celerysalt_retry_unroutable() RETURNS void
 *		Ask the worker to move the events no queue received back into the
 *		outbox now and a few times in the next minute (a new subscriber's
 *		queue is usually bound shortly after it registers).  Takes effect
 *		when the current transaction commits.
 */
Datum
celerysalt_retry_unroutable(PG_FUNCTION_ARGS)
{
	DatabaseSlot *dbslot;

	RequirePreload();
	dbslot = DbslotFind(MyDatabaseId);
	if (dbslot != NULL)
		pg_atomic_write_u32(&dbslot->retry_unroutable, 1);
	request_commit_wake();
	PG_RETURN_VOID();
}

/*
 * _celerysalt_installed() RETURNS void
 *		Called by the install script: refuses a schema that roles other than
 *		superusers control (CatalogSchemaProblem); once CREATE EXTENSION
 *		commits, the launcher starts this database's worker.
 */
Datum
_celerysalt_installed(PG_FUNCTION_ARGS)
{
	char	   *problem = CatalogSchemaProblem(CatalogExtensionSchema(false), true);

	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("celerysalt must be installed in a schema that only superusers control"),
				 errdetail_internal("%s", problem),
				 errhint("Install it in a schema of its own: CREATE SCHEMA celerysalt; CREATE EXTENSION celerysalt SCHEMA celerysalt; "
						 "then add the schema to search_path, for example ALTER DATABASE ... SET search_path = \"$user\", public, celerysalt. "
						 "See docs/security.md.")));
	if (celerysalt_preloaded)
		request_commit_wake();
	PG_RETURN_VOID();
}
