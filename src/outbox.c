/*-------------------------------------------------------------------------
 *
 * outbox.c
 *		celerysalt_publish(): check the event, enqueue it in the caller's
 *		transaction and wake the database's worker when that transaction
 *		commits.
 *
 * Events are appended to the partitioned log _celerysalt_log, into the
 * partition ("slot") the worker currently advertises in shared memory, with
 * the publishing transaction's id (txid), by which the worker's delivered
 * position tells waiting events from delivered ones.  Nothing is deleted
 * per event: the worker truncates partitions it has delivered (see
 * docs/architecture.md).
 *
 * OutboxEnqueue is the only way into the outbox, after the caller ran the
 * intake (event.c).  It inserts the row itself, as logical replication's
 * apply does, without SQL: no plan, no privilege check, no search_path, so
 * publishers and the roles whose UPDATEs fire follow actions need no
 * privilege on the outbox or its sequence, and no event can skip the checks.
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "port/pg_bswap.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"
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
 * The outbox's columns OutboxEnqueue fills, by name: a partition's own
 * column numbers are looked up once (a partition may order its columns
 * differently from the parent; other columns are left NULL).
 */
typedef enum OutboxColumn
{
	OC_SLOT,
	OC_EVENT_ID,
	OC_ID,
	OC_TOPIC,
	OC_PAYLOAD,
	OC_VERSION,
	OC_CORRELATION_ID,
	OC_ENQUEUED_AT,
	OC_TRACEPARENT,
	OC_TRACESTATE,
	OC_TXID,
	OC_NCOLUMNS
} OutboxColumn;

static const char *const outbox_column_names[OC_NCOLUMNS] = {
	"slot", "event_id", "id", "topic", "payload", "version", "correlation_id", "enqueued_at",
	"traceparent", "tracestate", "txid"
};

/*
 * Where events go: the outbox partition of each slot, its column numbers,
 * and the sequence of event ids.  Cleared by a relcache invalidation of the
 * outbox or one of its partitions (DROP EXTENSION, ALTER TABLE, a change of
 * owner), so the catalog is only read again after such a change, not on
 * every publish.
 */
typedef struct OutboxTarget
{
	bool		valid;
	Oid			parent_relid;
	Oid			sequence_relid;
	Oid			partition_relid[CELERYSALT_OUTBOX_SLOTS];
	AttrNumber	attnum[CELERYSALT_OUTBOX_SLOTS][OC_NCOLUMNS];
} OutboxTarget;

static OutboxTarget target;
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

/*
 * A random (version 4) UUID.  pg_strong_random costs about as much for 16
 * bytes as for 4 kB (OpenSSL's locking and parameter handling dominate), so
 * the bytes come from a buffer refilled once every 256 event ids.  The
 * buffer is filled in this backend, after fork: no two processes share it.
 */
#define UUID_RANDOM_BUFFER	(256 * UUID_LEN)

static void
random_uuid(pg_uuid_t *uuid)
{
	static unsigned char buffer[UUID_RANDOM_BUFFER];
	static int	used = UUID_RANDOM_BUFFER;

	if (used == UUID_RANDOM_BUFFER)
	{
		if (!pg_strong_random(buffer, UUID_RANDOM_BUFFER))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate a random event id")));
		used = 0;
	}
	memcpy(uuid->data, buffer + used, UUID_LEN);
	used += UUID_LEN;
	uuid->data[6] = (uuid->data[6] & 0x0f) | 0x40;
	uuid->data[8] = (uuid->data[8] & 0x3f) | 0x80;
}

static void
outbox_relcache_callback(Datum arg, Oid relid)
{
	if (!target.valid)
		return;
	if (relid == InvalidOid || relid == target.parent_relid || relid == target.sequence_relid)
		target.valid = false;
	for (int i = 0; i < CELERYSALT_OUTBOX_SLOTS; i++)
		if (relid == target.partition_relid[i])
			target.valid = false;
}

/* The relation called name in the extension's schema; an error if missing. */
static Oid
outbox_relation(Oid schema, const char *name)
{
	Oid			relid = get_relname_relid(name, schema);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("the celerysalt outbox table \"%s\" is missing", name),
				 errhint("Reinstall the extension: DROP EXTENSION celerysalt; CREATE EXTENSION celerysalt.")));
	return relid;
}

/* Fill target from the catalog. */
static void
outbox_target_load(void)
{
	Oid			schema = CatalogExtensionSchema(false);

	if (!relcache_callback_registered)
	{
		CacheRegisterRelcacheCallback(outbox_relcache_callback, (Datum) 0);
		relcache_callback_registered = true;
	}
	target.valid = false;
	target.parent_relid = outbox_relation(schema, "_celerysalt_log");
	target.sequence_relid = outbox_relation(schema, "_celerysalt_event_seq");
	for (int i = 0; i < CELERYSALT_OUTBOX_SLOTS; i++)
	{
		char		name[NAMEDATALEN];
		Oid			relid;

		snprintf(name, sizeof(name), "_celerysalt_log_%d", i);
		relid = outbox_relation(schema, name);
		if (get_rel_relkind(relid) != RELKIND_RELATION)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("the celerysalt outbox partition \"%s\" is not a table", name),
					 errhint("Reinstall the extension: DROP EXTENSION celerysalt; CREATE EXTENSION celerysalt.")));
		target.partition_relid[i] = relid;
		for (int c = 0; c < OC_NCOLUMNS; c++)
		{
			AttrNumber	attnum = get_attnum(relid, outbox_column_names[c]);

			if (attnum == InvalidAttrNumber)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("the celerysalt outbox table \"%s\" has no column \"%s\"",
								name, outbox_column_names[c]),
						 errhint("Reinstall the extension: DROP EXTENSION celerysalt; CREATE EXTENSION celerysalt.")));
			target.attnum[i][c] = attnum;
		}
	}
	target.valid = true;
}

/*
 * Insert one row into the outbox partition of slot, as logical
 * replication's apply does (ExecSimpleRelationInsert), without planning or
 * running an INSERT statement.  Nothing here checks privileges or reads
 * search_path: the caller is the only way into the outbox, and no SQL is
 * involved.  Index expressions and triggers someone added would run as the
 * current user.
 */
static void
outbox_insert(int slot, const Datum *values, const bool *nulls)
{
	Relation	rel = table_open(target.partition_relid[slot], RowExclusiveLock);
	TupleDesc	desc;
	EState	   *estate;
	RangeTblEntry *rte;
	ResultRelInfo *rri;
	TupleTableSlot *tts;
	bool		triggers;

	/*
	 * Taking the lock processed invalidations: if the outbox changed since
	 * target was filled (ALTER EXTENSION UPDATE, a drop and re-create),
	 * read the catalog again, now that no change can run beside us.
	 */
	if (!target.valid)
	{
		table_close(rel, RowExclusiveLock);
		outbox_target_load();
		rel = table_open(target.partition_relid[slot], RowExclusiveLock);
	}
	desc = RelationGetDescr(rel);
#ifdef USE_ASSERT_CHECKING
	for (int c = 0; c < OC_NCOLUMNS; c++)
		Assert(target.attnum[slot][c] <= desc->natts &&
			   !TupleDescAttr(desc, target.attnum[slot][c] - 1)->attisdropped);
#endif
	estate = CreateExecutorState();
	rte = makeNode(RangeTblEntry);
	rri = makeNode(ResultRelInfo);
	triggers = rel->trigdesc != NULL;

	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(rel);
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	ExecInitRangeTable(estate, list_make1(rte));
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	estate->es_output_cid = GetCurrentCommandId(true);

	tts = ExecInitExtraTupleSlot(estate, desc, &TTSOpsVirtual);
	ExecClearTuple(tts);
	for (int i = 0; i < desc->natts; i++)
	{
		tts->tts_values[i] = (Datum) 0;
		tts->tts_isnull[i] = true;
	}
	for (int c = 0; c < OC_NCOLUMNS; c++)
	{
		AttrNumber	attnum = target.attnum[slot][c];

		tts->tts_values[attnum - 1] = values[c];
		tts->tts_isnull[attnum - 1] = nulls[c];
	}
	ExecStoreVirtualTuple(tts);

	ExecOpenIndices(rri, false);
	if (triggers || (desc->constr != NULL && desc->constr->has_generated_stored))
	{
		/* what someone added to the table, run as an INSERT would */
		if (triggers)
			AfterTriggerBeginQuery();
		ExecSimpleRelationInsert(rri, estate, tts);
		if (triggers)
			AfterTriggerEndQuery(estate);
	}
	else
	{
		/*
		 * ExecSimpleRelationInsert without the partition check, which costs
		 * as much as the rest: the partition is the one of slot's key value.
		 */
		if (desc->constr != NULL)
			ExecConstraints(rri, tts, estate);
		simple_table_tuple_insert(rel, tts);
		if (rri->ri_NumIndices > 0)
			list_free(ExecInsertIndexTuples(rri, tts, estate, false, false, NULL, NIL));
	}
	ExecCloseIndices(rri);
	ExecResetTupleTable(estate->es_tupleTable, false);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
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
	Datum		values[OC_NCOLUMNS] = {0};
	bool		nulls[OC_NCOLUMNS] = {false};
	DatabaseSlot *dbslot = DbslotFind(MyDatabaseId);
	int			slot = dbslot ? (int) pg_atomic_read_u32(&dbslot->insert_slot) : 0;

	random_uuid(id);
	if (!target.valid)
		outbox_target_load();
	if (slot < 0 || slot >= CELERYSALT_OUTBOX_SLOTS)
		slot = 0;

	values[OC_SLOT] = Int16GetDatum((int16) slot);
	values[OC_EVENT_ID] = Int64GetDatum(nextval_internal(target.sequence_relid, false));
	values[OC_ID] = UUIDPGetDatum(id);
	values[OC_TOPIC] = CStringGetTextDatum(topic);
	values[OC_PAYLOAD] = JsonbPGetDatum(payload);
	values[OC_VERSION] = version ? CStringGetTextDatum(version) : (Datum) 0;
	nulls[OC_VERSION] = version == NULL;
	values[OC_CORRELATION_ID] = correlation_id ? CStringGetTextDatum(correlation_id) : (Datum) 0;
	nulls[OC_CORRELATION_ID] = correlation_id == NULL;
	values[OC_ENQUEUED_AT] = TimestampTzGetDatum(GetCurrentTimestamp());
	/* the top-level transaction: the one pg_current_snapshot() lists */
	values[OC_TXID] = FullTransactionIdGetDatum(GetTopFullTransactionId());
	nulls[OC_TRACEPARENT] = nulls[OC_TRACESTATE] = true;

	if (GucTraceparent() != NULL)
	{
		values[OC_TRACEPARENT] = CStringGetTextDatum(GucTraceparent());
		nulls[OC_TRACEPARENT] = false;
		if (GucTracestate() != NULL)
		{
			values[OC_TRACESTATE] = CStringGetTextDatum(GucTracestate());
			nulls[OC_TRACESTATE] = false;
		}
	}

	outbox_insert(slot, values, nulls);

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
