/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The delivery worker of one database: read committed events from the
 *		outbox in enqueue order, publish them to RabbitMQ in batches with
 *		publisher confirms, and only then delete them (logging them in
 *		celerysalt_events).  Also rotates and truncates outbox partitions,
 *		applies the delivered-log retention and dead-letters events the
 *		broker refuses for good.
 *
 * No transaction is open while the worker talks to the broker, so it never
 * holds back the xmin horizon nor blocks DROP EXTENSION.  If it dies after
 * the broker confirmed a batch but before the DELETE committed, that batch
 * is published again after restart: at least once, at most one batch of
 * duplicates.
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "storage/itemptr.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "broker.h"
#include "guc.h"
#include "dbslot.h"
#include "catalog.h"
#include "event.h"
#include "message.h"
#include "processes.h"

#define RECONNECT_MIN_MS		100
#define RETENTION_EVERY_MS		(60 * 1000)
#define RETENTION_CHUNK			10000
/* A single event refused this many times in a row is dead-lettered. */
#define MAX_REJECTIONS			2

typedef struct OutboxEvent
{
	int64		event_id;
	pg_uuid_t	id;
	char	   *topic;
	Jsonb	   *payload;
	char	   *version;
	char	   *correlation_id;
	int16		slot;
	ItemPointerData ctid;		/* in its partition: deleted by ctid */
} OutboxEvent;

typedef struct WorkerState
{
	DatabaseSlot *dbslot;
	char	   *dbname;
	ResourceOwner owner;		/* for work outside transactions (SHA-1) */
	MemoryContext batch_cxt;	/* reset after every batch */
	BrokerConnection *broker;

	/* broker outage handling */
	TimestampTz reconnect_at;
	int			reconnect_delay_ms;
	char		logged_error[256];	/* last error logged, "" = healthy */

	/* settings that force a reconnect when changed */
	char	   *conn_signature;

	/* dead-lettering: after a rejected batch, publish one event at a time */
	int			isolate_remaining;
	int64		rejected_event_id;
	int			rejected_count;

	/* saved plans, valid for plans_schema */
	Oid			plans_schema;
	SPIPlanPtr	read_plan;
	SPIPlanPtr	finish_plans[CELERYSALT_OUTBOX_SLOTS][2];	/* [slot][log it?] */

	/* outbox partitions */
	bool		slot_clean[CELERYSALT_OUTBOX_SLOTS];	/* truncated, unused */
	bool		slot_dirty[CELERYSALT_OUTBOX_SLOTS];	/* may hold dead rows */
	TimestampTz rotated_at;
	TimestampTz retention_at;
} WorkerState;

static WorkerState ws;

static void
worker_detach(int code, Datum arg)
{
	DatabaseSlot *slot = ws.dbslot;

	BrokerDisconnect(ws.broker);
	ws.broker = NULL;
	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	slot->worker_pid = 0;
	slot->worker_latch = NULL;
	slot->broker_connected = false;
	SpinLockRelease(&slot->mutex);
}

/* The settings a connection depends on, as one string. */
static char *
connection_signature(void)
{
	return psprintf("%s\n%s\n%s", celerysalt_broker_url,
					celerysalt_broker_password_file, celerysalt_exchange);
}

static void
set_connected(bool connected)
{
	SpinLockAcquire(&ws.dbslot->mutex);
	ws.dbslot->broker_connected = connected;
	SpinLockRelease(&ws.dbslot->mutex);
}

/*
 * Record a broker failure: status view, one log line per change of state
 * (not per retry), capped exponential backoff.
 */
static void
broker_failed(const char *message)
{
	set_connected(false);
	DbslotSetWorkerError(ws.dbslot, message);
	BrokerAbort(ws.broker);
	ws.broker = NULL;

	if (strncmp(ws.logged_error, message, sizeof(ws.logged_error) - 1) != 0)
	{
		ereport(LOG,
				(errmsg("celerysalt cannot deliver events: %s", message),
				 errdetail("Events stay in the outbox; the worker retries with a pause of up to %d ms.",
						   celerysalt_reconnect_max_delay_ms)));
		strlcpy(ws.logged_error, message, sizeof(ws.logged_error));
	}

	ws.reconnect_delay_ms = ws.reconnect_delay_ms == 0 ? RECONNECT_MIN_MS
		: Min(ws.reconnect_delay_ms * 2, celerysalt_reconnect_max_delay_ms);
	ws.reconnect_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												  ws.reconnect_delay_ms);
}

/* Connect if needed and due.  Returns whether a connection is ready. */
static bool
ensure_broker(void)
{
	StringInfoData error;

	if (ws.broker != NULL)
		return true;
	if (GetCurrentTimestamp() < ws.reconnect_at)
		return false;

	initStringInfo(&error);
	ws.broker = BrokerConnect(&error);
	if (ws.broker == NULL)
	{
		broker_failed(error.data);
		pfree(error.data);
		return false;
	}
	pfree(error.data);

	if (ws.logged_error[0] != '\0')
		ereport(LOG,
				(errmsg("celerysalt connected to the broker again; delivering the waiting events")));
	ws.logged_error[0] = '\0';
	ws.reconnect_delay_ms = 0;
	set_connected(true);
	DbslotSetWorkerError(ws.dbslot, NULL);
	return true;
}

/*
 * Open a transaction with a snapshot and SPI.  Returns the extension's
 * schema, or InvalidOid if the extension is gone (the transaction is then
 * still open: close it with end_xact).
 */
static Oid
begin_xact(void)
{
	Oid			schema;
	char	   *problem;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	schema = CatalogExtensionSchema(true);

	/*
	 * The SQL below names the extension's objects by schema: stop rather
	 * than run it when a role other than a superuser has come to control
	 * that schema (the database changed owner to such a role), since that
	 * role could rename it and put its own objects in its place.
	 */
	if (OidIsValid(schema) && (problem = CatalogSchemaProblem(schema, false)) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("celerysalt worker stops: the extension's schema is not under superusers' control"),
				 errdetail_internal("%s", problem),
				 errhint("Move the extension to a schema of its own (docs/security.md), or revoke the grant.")));
	return schema;
}

static void
end_xact(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* The extension was dropped: stop until a CREATE EXTENSION wakes us. */
static void
exit_extension_gone(void)
{
	SpinLockAcquire(&ws.dbslot->mutex);
	ws.dbslot->extension_missing = true;
	SpinLockRelease(&ws.dbslot->mutex);
	ereport(LOG,
			(errmsg("celerysalt worker stops: the extension is not installed in database \"%s\"",
					ws.dbname)));
	proc_exit(0);
}

/*
 * A saved plan, prepared on first use.  All plans are forgotten when the
 * extension's schema changes (dropped and created again).
 */
static SPIPlanPtr
saved_plan(SPIPlanPtr *plan, Oid schema, const char *sql, int nargs, Oid *argtypes)
{
	if (ws.plans_schema != schema)
	{
		if (ws.read_plan)
			SPI_freeplan(ws.read_plan);
		ws.read_plan = NULL;
		for (int s = 0; s < CELERYSALT_OUTBOX_SLOTS; s++)
			for (int l = 0; l < 2; l++)
			{
				if (ws.finish_plans[s][l])
					SPI_freeplan(ws.finish_plans[s][l]);
				ws.finish_plans[s][l] = NULL;
			}
		ws.plans_schema = schema;
	}
	if (*plan == NULL)
	{
		*plan = SPI_prepare(sql, nargs, argtypes);
		if (*plan == NULL)
			elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
		SPI_keepplan(*plan);
	}
	return *plan;
}

/*
 * Read up to limit committed events in enqueue order into ws.batch_cxt.
 * Returns the number read, or -1 when the outbox is locked (DROP EXTENSION
 * under way).
 */
static int
read_batch(int limit, OutboxEvent **events_out)
{
	Oid			schema = begin_xact();
	Oid			outbox;
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1];
	SPIPlanPtr	plan;
	int			rc;
	OutboxEvent *events;

	if (!OidIsValid(schema))
	{
		end_xact();
		exit_extension_gone();
	}
	outbox = get_relname_relid("_celerysalt_outbox", schema);
	if (!OidIsValid(outbox) || !ConditionalLockRelationOid(outbox, AccessShareLock))
	{
		end_xact();
		return -1;
	}

	pgstat_report_activity(STATE_RUNNING, "celerysalt: reading outbox");
	plan = ws.plans_schema == schema ? ws.read_plan : NULL;
	if (plan == NULL)
		plan = saved_plan(&ws.read_plan, schema,
						  psprintf("SELECT event_id, id, topic, payload, version, correlation_id, slot, ctid"
								   " FROM %s ORDER BY event_id LIMIT $1",
								   CatalogQualifiedName("_celerysalt_outbox")),
						  1, argtypes);
	values[0] = Int32GetDatum(limit);
	rc = SPI_execute_plan(plan, values, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read the outbox: %s", SPI_result_code_string(rc));

	events = MemoryContextAlloc(ws.batch_cxt, sizeof(OutboxEvent) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		OutboxEvent *ev = &events[i];
		MemoryContext old;
		bool		isnull;
		Datum		d;

		old = MemoryContextSwitchTo(ws.batch_cxt);
		ev->event_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		ev->id = *DatumGetUUIDP(SPI_getbinval(tup, desc, 2, &isnull));
		ev->topic = TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull));
		ev->payload = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 4, &isnull));
		d = SPI_getbinval(tup, desc, 5, &isnull);
		ev->version = isnull ? NULL : TextDatumGetCString(d);
		d = SPI_getbinval(tup, desc, 6, &isnull);
		ev->correlation_id = isnull ? NULL : TextDatumGetCString(d);
		ev->slot = DatumGetInt16(SPI_getbinval(tup, desc, 7, &isnull));
		ev->ctid = *(ItemPointer) DatumGetPointer(SPI_getbinval(tup, desc, 8, &isnull));
		MemoryContextSwitchTo(old);
	}
	rc = (int) SPI_processed;
	end_xact();
	*events_out = events;
	return rc;
}

/*
 * Remove delivered events from their outbox partitions, by ctid (a TID
 * scan: no index, no plan that depends on the batch), and log them in
 * celerysalt_events when retention is on — one transaction.
 */
static void
finish_batch(OutboxEvent *events, int n)
{
	Oid			argtypes[1] = {TIDARRAYOID};
	bool		log_events = celerysalt_delivered_retention_s > 0;
	Oid			schema;

	schema = begin_xact();
	if (!OidIsValid(schema))
	{
		end_xact();
		exit_extension_gone();
	}
	pgstat_report_activity(STATE_RUNNING, "celerysalt: finishing batch");

	for (int s = 0; s < CELERYSALT_OUTBOX_SLOTS; s++)
	{
		Datum	   *tids = palloc(sizeof(Datum) * n);
		int			ntids = 0;
		char		partition[NAMEDATALEN];
		SPIPlanPtr	plan;
		Datum		values[1];
		int			rc;

		for (int i = 0; i < n; i++)
			if (events[i].slot == s)
				tids[ntids++] = PointerGetDatum(&events[i].ctid);
		if (ntids == 0)
			continue;

		snprintf(partition, sizeof(partition), "_celerysalt_outbox_%d", s);
		plan = ws.plans_schema == schema ? ws.finish_plans[s][log_events] : NULL;
		if (plan == NULL)
		{
			char	   *sql;

			if (log_events)
				sql = psprintf("WITH d AS (DELETE FROM %s WHERE ctid OPERATOR(pg_catalog.=) ANY($1) RETURNING *)"
							   " INSERT INTO %s (id, event_id, topic, version, correlation_id, payload,"
							   " enqueued_at, delivered_at, size)"
							   " SELECT id, event_id, topic, version, correlation_id, payload, enqueued_at,"
							   " pg_catalog.clock_timestamp(), pg_catalog.pg_column_size(payload) FROM d",
							   CatalogQualifiedName(partition),
							   CatalogQualifiedName("celerysalt_events"));
			else
				sql = psprintf("DELETE FROM %s WHERE ctid OPERATOR(pg_catalog.=) ANY($1)",
							   CatalogQualifiedName(partition));
			plan = saved_plan(&ws.finish_plans[s][log_events], schema, sql, 1, argtypes);
		}
		values[0] = PointerGetDatum(construct_array(tids, ntids, TIDOID, sizeof(ItemPointerData),
													false, TYPALIGN_SHORT));
		rc = SPI_execute_plan(plan, values, NULL, false, 0);
		if ((rc != SPI_OK_INSERT && rc != SPI_OK_DELETE) || SPI_processed != (uint64) ntids)
			elog(ERROR, "could not finish a delivered batch: %s, %llu of %d rows",
				 SPI_result_code_string(rc), (unsigned long long) SPI_processed, ntids);
		ws.slot_dirty[s] = true;
	}
	end_xact();

	pg_atomic_fetch_add_u64(&ws.dbslot->delivered_total, n);
	SpinLockAcquire(&ws.dbslot->mutex);
	ws.dbslot->last_delivery_at = GetCurrentTimestamp();
	SpinLockRelease(&ws.dbslot->mutex);
}

/* Move one event the broker refuses for good to celerysalt_dead_letters. */
static void
dead_letter(OutboxEvent *ev, const char *reason)
{
	Oid			argtypes[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	char	   *sql;
	char		id[37];
	int			rc;

	if (!OidIsValid(begin_xact()))
	{
		end_xact();
		exit_extension_gone();
	}
	values[0] = Int64GetDatum(ev->event_id);
	values[1] = CStringGetTextDatum(reason);
	sql = psprintf("WITH d AS (DELETE FROM %s WHERE event_id OPERATOR(pg_catalog.=) $1 RETURNING *)"
				   " INSERT INTO %s (id, event_id, topic, version, correlation_id, payload,"
				   " enqueued_at, failed_at, reason)"
				   " SELECT id, event_id, topic, version, correlation_id, payload, enqueued_at,"
				   " pg_catalog.clock_timestamp(), $2 FROM d",
				   CatalogQualifiedName("_celerysalt_outbox"),
				   CatalogQualifiedName("celerysalt_dead_letters"));
	rc = SPI_execute_with_args(sql, 2, argtypes, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not dead-letter an event: %s", SPI_result_code_string(rc));
	end_xact();

	ws.slot_dirty[ev->slot] = true;
	pg_atomic_fetch_add_u64(&ws.dbslot->dead_lettered_total, 1);
	MessageUuidToString(&ev->id, id);
	ereport(WARNING,
			(errmsg("celerysalt moved event %s on topic \"%s\" to celerysalt_dead_letters",
					id, ev->topic),
			 errdetail_internal("%s", reason)));
}

/*
 * Check every event read as celerysalt_publish checks it (rows can be moved
 * into the outbox by hand), and dead-letter, with the reason, those that can
 * never be sent: a refusal is not an outage, and must not hold up the events
 * behind it.  Returns how many events remain, compacted to the front.
 */
static int
dead_letter_unsendable(OutboxEvent *events, int n)
{
	int			kept = 0;

	for (int i = 0; i < n; i++)
	{
		char	   *problem = EventRowProblem(events[i].topic, events[i].payload,
											  events[i].version, events[i].correlation_id);

		if (problem != NULL)
			dead_letter(&events[i], problem);
		else
			events[kept++] = events[i];
	}
	return kept;
}

/*
 * Build the Celery messages of events: one per configured dispatcher task
 * and event, in ws.batch_cxt.
 */
static CeleryMessage *
build_messages(OutboxEvent *events, int n, int *nmsgs)
{
	List	   *tasks = EventNameSplitTasks(celerysalt_dispatcher_tasks);
	int			ntasks = list_length(tasks);
	CeleryMessage *msgs = palloc(sizeof(CeleryMessage) * n * ntasks);
	StringInfoData payload;
	int			m = 0;

	initStringInfo(&payload);
	for (int i = 0; i < n; i++)
	{
		EventMeta	meta = {false, events[i].version ? events[i].version : "v1",
		events[i].correlation_id};
		ListCell   *lc;

		resetStringInfo(&payload);
		MessageAppendPayload(&payload, events[i].payload, &meta);
		foreach(lc, tasks)
			MessageBuild(&msgs[m++], lfirst(lc), &events[i].id,
						 foreach_current_index(lc), events[i].topic, payload.data);
	}
	*nmsgs = m;
	return msgs;
}

/*
 * Deliver one batch.  Returns the number of events delivered or moved to
 * the dead-letter table, 0 when the outbox is empty, -1 when delivery is
 * not possible right now (broker down, outbox locked).
 */
static int
deliver_batch(void)
{
	OutboxEvent *events;
	CeleryMessage *msgs;
	int			limit = ws.isolate_remaining > 0 ? 1 : celerysalt_batch_size;
	int			n;
	int			nmsgs;
	BrokerStatus status;
	StringInfoData error;
	MemoryContext old;

	if (!ensure_broker())
		return -1;

	n = read_batch(limit, &events);
	if (n <= 0)
		return n;
	n = dead_letter_unsendable(events, n);
	if (n == 0)
		return 1;				/* all dead-lettered: look again at once */

	old = MemoryContextSwitchTo(ws.batch_cxt);
	/* task ids for further dispatchers use pg_cryptohash: needs an owner */
	CurrentResourceOwner = ws.owner;
	msgs = build_messages(events, n, &nmsgs);
	CurrentResourceOwner = NULL;
	initStringInfo(&error);
	pgstat_report_activity(STATE_RUNNING, "celerysalt: publishing");
	status = BrokerPublishBatch(ws.broker, msgs, nmsgs, false, &error);
	pgstat_report_activity(STATE_IDLE, NULL);
	MemoryContextSwitchTo(old);

	switch (status)
	{
		case BROKER_OK:
			finish_batch(events, n);
			if (ws.isolate_remaining > 0)
				ws.isolate_remaining--;
			ws.rejected_count = 0;
			return n;

		case BROKER_FAILED:
		case BROKER_RETURNED:	/* not mandatory: cannot happen */
			broker_failed(error.data);
			return -1;

		case BROKER_REJECTED:
			/*
			 * The channel is closed, not the broker gone.  The first time,
			 * reconnect at once and publish this batch one event at a time
			 * to find the culprit; a refusal of a single event backs off
			 * like an outage, so a broker that refuses everything is not
			 * asked ten times a second.
			 */
			if (n > 1)
			{
				set_connected(false);
				DbslotSetWorkerError(ws.dbslot, error.data);
				BrokerAbort(ws.broker);
				ws.broker = NULL;
				SetLatch(MyLatch);
				ws.isolate_remaining = n;
				return -1;
			}
			broker_failed(error.data);
			if (ws.rejected_event_id == events[0].event_id)
				ws.rejected_count++;
			else
			{
				ws.rejected_event_id = events[0].event_id;
				ws.rejected_count = 1;
			}
			if (ws.rejected_count >= MAX_REJECTIONS)
			{
				dead_letter(&events[0], error.data);
				ws.rejected_count = 0;
				if (ws.isolate_remaining > 0)
					ws.isolate_remaining--;
				return 1;
			}
			return -1;
	}
	return -1;
}

/*
 * Outbox maintenance: move publishers to a clean partition every
 * celerysalt.outbox_rotation, and truncate partitions that were drained.
 * TRUNCATE needs an exclusive lock; it is only tried conditionally, so a
 * transaction that published long ago and is still open just postpones it.
 */
static void
maintain_outbox(void)
{
	uint32		current = pg_atomic_read_u32(&ws.dbslot->insert_slot);
	TimestampTz now = GetCurrentTimestamp();
	Oid			schema;

	if (TimestampDifferenceExceeds(ws.rotated_at, now, celerysalt_outbox_rotation_s * 1000))
	{
		bool		rotated = false;

		for (int step = 1; step < CELERYSALT_OUTBOX_SLOTS && !rotated; step++)
		{
			uint32		next = (current + step) % CELERYSALT_OUTBOX_SLOTS;

			if (ws.slot_clean[next])
			{
				pg_atomic_write_u32(&ws.dbslot->insert_slot, next);
				ws.slot_clean[next] = false;
				ws.slot_dirty[current] = true;
				current = next;
				rotated = true;
			}
		}
		if (!rotated)
			elog(DEBUG1, "celerysalt: no truncated outbox partition to rotate to; staying on %u", current);
		ws.rotated_at = now;
	}

	for (int s = 0; s < CELERYSALT_OUTBOX_SLOTS; s++)
	{
		char		relname[NAMEDATALEN];
		Oid			part;
		int			rc;

		if (s == (int) current || !ws.slot_dirty[s])
			continue;
		schema = begin_xact();
		if (!OidIsValid(schema))
		{
			end_xact();
			exit_extension_gone();
		}
		snprintf(relname, sizeof(relname), "_celerysalt_outbox_%d", s);
		part = get_relname_relid(relname, schema);
		if (OidIsValid(part) && ConditionalLockRelationOid(part, AccessExclusiveLock))
		{
			char	   *qname = CatalogQualifiedName(relname);

			rc = SPI_execute(psprintf("SELECT 1 FROM %s LIMIT 1", qname), true, 1);
			if (rc == SPI_OK_SELECT && SPI_processed == 0)
			{
				rc = SPI_execute(psprintf("TRUNCATE %s", qname), false, 0);
				if (rc != SPI_OK_UTILITY)
					elog(ERROR, "could not truncate %s: %s", qname, SPI_result_code_string(rc));
				ws.slot_dirty[s] = false;
				ws.slot_clean[s] = true;
			}
			else
				elog(DEBUG1, "celerysalt: outbox partition %d still holds events; truncation postponed", s);
		}
		else
			elog(DEBUG1, "celerysalt: outbox partition %d is locked; truncation postponed", s);
		end_xact();
	}
}

/* Delete delivered-log rows past celerysalt.delivered_retention. */
static void
apply_retention(void)
{
	TimestampTz now = GetCurrentTimestamp();
	Oid			argtypes[1];
	Datum		values[1];
	int			rc;

	if (now < ws.retention_at)
		return;
	ws.retention_at = TimestampTzPlusMilliseconds(now, RETENTION_EVERY_MS);

	if (!OidIsValid(begin_xact()))
	{
		end_xact();
		exit_extension_gone();
	}
	/* the cut-off is a parameter: no arithmetic in the SQL text */
	argtypes[0] = TIMESTAMPTZOID;
	values[0] = TimestampTzGetDatum(TimestampTzPlusMilliseconds(now,
																-(int64) celerysalt_delivered_retention_s * 1000));
	rc = SPI_execute_with_args(psprintf("DELETE FROM %s WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY("
										"SELECT ctid FROM %s WHERE delivered_at OPERATOR(pg_catalog.<) $1"
										" LIMIT %d))",
										CatalogQualifiedName("celerysalt_events"),
										CatalogQualifiedName("celerysalt_events"),
										RETENTION_CHUNK),
							   1, argtypes, values, NULL, false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "could not apply the delivered-event retention: %s",
			 SPI_result_code_string(rc));
	if (SPI_processed == RETENTION_CHUNK)
		ws.retention_at = now;	/* more to do: next round */
	end_xact();
}

static void
reload_config(void)
{
	char	   *signature;

	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	signature = connection_signature();
	if (strcmp(signature, ws.conn_signature) != 0)
	{
		/* new broker settings: reconnect now, with them */
		BrokerDisconnect(ws.broker);
		ws.broker = NULL;
		set_connected(false);
		ws.reconnect_at = 0;
		ws.reconnect_delay_ms = 0;
		pfree(ws.conn_signature);
		ws.conn_signature = signature;
	}
	else
		pfree(signature);
}

void
CelerysaltWorkerMain(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	/* runs as the bootstrap superuser: nothing a user creates may be found */
	CatalogPinProcessSettings();
	pgstat_report_appname("celerysalt worker");

	memset(&ws, 0, sizeof(ws));
	ws.dbslot = DbslotFind(dboid);
	if (ws.dbslot == NULL)
		proc_exit(0);			/* the launcher released the slot meanwhile */
	for (int s = 0; s < CELERYSALT_OUTBOX_SLOTS; s++)
		ws.slot_dirty[s] = true;	/* unknown after a restart */
	ws.rotated_at = GetCurrentTimestamp();
	ws.conn_signature = MemoryContextStrdup(TopMemoryContext, connection_signature());
	ws.batch_cxt = AllocSetContextCreate(TopMemoryContext, "celerysalt batch",
										 ALLOCSET_DEFAULT_SIZES);
	ws.owner = ResourceOwnerCreate(NULL, "celerysalt worker");

	SpinLockAcquire(&ws.dbslot->mutex);
	ws.dbslot->worker_pid = MyProcPid;
	ws.dbslot->worker_latch = MyLatch;
	ws.dbslot->extension_missing = false;
	ws.dbslot->worker_started_at = GetCurrentTimestamp();
	SpinLockRelease(&ws.dbslot->mutex);
	before_shmem_exit(worker_detach, (Datum) 0);

	/* A database without the extension needs no worker. */
	if (!OidIsValid(begin_xact()))
	{
		end_xact();
		SpinLockAcquire(&ws.dbslot->mutex);
		ws.dbslot->extension_missing = true;
		SpinLockRelease(&ws.dbslot->mutex);
		proc_exit(0);
	}
	ws.dbname = MemoryContextStrdup(TopMemoryContext, get_database_name(MyDatabaseId));
	end_xact();
	ereport(LOG, (errmsg("celerysalt worker started for database \"%s\"", ws.dbname)));

	for (;;)
	{
		long		timeout = celerysalt_poll_interval_ms;
		int			n;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
			reload_config();

		/* drain: keep going while full batches come back */
		do
		{
			n = deliver_batch();
			MemoryContextReset(ws.batch_cxt);
			CHECK_FOR_INTERRUPTS();
		} while (n > 0 && (n == celerysalt_batch_size || ws.isolate_remaining > 0));

		maintain_outbox();
		apply_retention();

		if (ws.broker == NULL)
			timeout = Min(timeout, Max(1, TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
																		   ws.reconnect_at)));
		timeout = Min(timeout, celerysalt_outbox_rotation_s * 1000L);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
