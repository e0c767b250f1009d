/*-------------------------------------------------------------------------
 *
 * outbox_drain.c
 *		The delivery worker's SQL: read committed events from the outbox,
 *		remove delivered ones (logging them in celerysalt_events), park the
 *		ones no queue received in celerysalt_unroutable and move them back
 *		later, move those that can never be sent to celerysalt_dead_letters,
 *		truncate drained partitions and apply the delivered log's retention.  Each call is
 *		one transaction; plans are saved for the extension's schema.
 *
 * Runs as the worker's bootstrap superuser, with search_path pinned
 * (CatalogPinProcessSettings): every operator and function in the SQL text
 * is qualified, every computed value a parameter, and each transaction
 * first checks that only superusers control the extension's schema
 * (docs/security.md).
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "outbox_drain.h"

/* Where events leave the outbox for, by ctid (move_by_ctid). */
typedef enum DrainTarget
{
	DRAIN_DELETE,				/* delivered, no log */
	DRAIN_LOG,					/* delivered, into celerysalt_events */
	DRAIN_PARK,					/* returned unroutable, into celerysalt_unroutable */
	DRAIN_NTARGETS
} DrainTarget;

/* saved plans, valid for plans_schema */
static Oid	plans_schema = InvalidOid;
static SPIPlanPtr read_plan = NULL;
static SPIPlanPtr move_plans[CELERYSALT_OUTBOX_SLOTS][DRAIN_NTARGETS];

/*
 * Open a transaction with a snapshot and SPI.  Returns the extension's
 * schema, or InvalidOid if the extension is gone (the transaction is then
 * still open: close it with DrainEnd).
 */
Oid
DrainBegin(void)
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

/* Commit the transaction DrainBegin opened. */
void
DrainEnd(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * A saved plan, prepared on first use, with cursor_options (0, or
 * CURSOR_OPT_CUSTOM_PLAN to plan each execution with its parameter values).
 * All plans are forgotten when the extension's schema changes (dropped and
 * created again).
 */
static SPIPlanPtr
saved_plan(SPIPlanPtr *plan, Oid schema, const char *sql, int nargs, Oid *argtypes,
		   int cursor_options)
{
	if (plans_schema != schema)
	{
		if (read_plan)
			SPI_freeplan(read_plan);
		read_plan = NULL;
		for (int s = 0; s < CELERYSALT_OUTBOX_SLOTS; s++)
			for (int t = 0; t < DRAIN_NTARGETS; t++)
			{
				if (move_plans[s][t])
					SPI_freeplan(move_plans[s][t]);
				move_plans[s][t] = NULL;
			}
		plans_schema = schema;
	}
	if (*plan == NULL)
	{
		*plan = SPI_prepare_cursor(sql, nargs, argtypes, cursor_options);
		if (*plan == NULL)
			elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
		SPI_keepplan(*plan);
	}
	return *plan;
}

static int
key_cmp(const void *a, const void *b)
{
	uint64		x = *(const uint64 *) a;
	uint64		y = *(const uint64 *) b;

	return x < y ? -1 : x > y;
}

/*
 * DrainRead
 *		Read up to limit committed events in enqueue order into cxt, leaving
 *		out the nskip rows whose DrainEventKey is in skip (sorted ascending):
 *		the worker's batches still in flight, which are still in the outbox
 *		and, as commits arrive out of event_id order, may lie anywhere among
 *		the rows read.  Returns the number read, -1 when the outbox is locked
 *		(DROP EXTENSION under way), DRAIN_GONE when the extension is not
 *		installed.
 */
int
DrainRead(int limit, const uint64 *skip, int nskip, MemoryContext cxt,
		  OutboxEvent **events_out)
{
	Oid			schema = DrainBegin();
	Oid			outbox;
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1];
	SPIPlanPtr	plan;
	int			rc;
	int			n = 0;
	OutboxEvent *events;

	if (!OidIsValid(schema))
	{
		DrainEnd();
		return DRAIN_GONE;
	}
	outbox = get_relname_relid("_celerysalt_outbox", schema);
	if (!OidIsValid(outbox) || !ConditionalLockRelationOid(outbox, AccessShareLock))
	{
		DrainEnd();
		return -1;
	}

	pgstat_report_activity(STATE_RUNNING, "celerysalt: reading outbox");
	plan = plans_schema == schema ? read_plan : NULL;
	if (plan == NULL)
		plan = saved_plan(&read_plan, schema,
						  psprintf("SELECT event_id, id, topic, payload, version, correlation_id, slot, ctid, enqueued_at,"
								   " traceparent, tracestate"
								   " FROM %s ORDER BY event_id LIMIT $1",
								   CatalogQualifiedName("_celerysalt_outbox")),
						  1, argtypes, 0);
	/* every row in flight is still there: limit new ones lie within limit + nskip */
	values[0] = Int32GetDatum(limit + nskip);
	rc = SPI_execute_plan(plan, values, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read the outbox: %s", SPI_result_code_string(rc));

	events = MemoryContextAlloc(cxt, sizeof(OutboxEvent) * Max(Min(SPI_processed, (uint64) limit), 1));
	for (uint64 i = 0; i < SPI_processed && n < limit; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		OutboxEvent *ev = &events[n];
		MemoryContext old;
		bool		isnull;
		Datum		d;

		ev->slot = DatumGetInt16(SPI_getbinval(tup, desc, 7, &isnull));
		ev->ctid = *(ItemPointer) DatumGetPointer(SPI_getbinval(tup, desc, 8, &isnull));
		if (nskip > 0)
		{
			uint64		key = DrainEventKey(ev);

			if (bsearch(&key, skip, nskip, sizeof(uint64), key_cmp) != NULL)
				continue;
		}

		old = MemoryContextSwitchTo(cxt);
		ev->event_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		ev->id = *DatumGetUUIDP(SPI_getbinval(tup, desc, 2, &isnull));
		ev->topic = TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull));
		ev->payload = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 4, &isnull));
		d = SPI_getbinval(tup, desc, 5, &isnull);
		ev->version = isnull ? NULL : TextDatumGetCString(d);
		d = SPI_getbinval(tup, desc, 6, &isnull);
		ev->correlation_id = isnull ? NULL : TextDatumGetCString(d);
		ev->enqueued_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 9, &isnull));
		d = SPI_getbinval(tup, desc, 10, &isnull);
		ev->traceparent = isnull ? NULL : TextDatumGetCString(d);
		d = SPI_getbinval(tup, desc, 11, &isnull);
		ev->tracestate = isnull ? NULL : TextDatumGetCString(d);
		MemoryContextSwitchTo(old);
		n++;
	}
	DrainEnd();
	*events_out = events;
	return n;
}

/* Sort keys of DrainEventKey for DrainRead's skip. */
void
DrainSortKeys(uint64 *keys, int n)
{
	qsort(keys, n, sizeof(uint64), key_cmp);
}

/* The statement moving the rows of outbox partition `partition` to target. */
static char *
move_sql(const char *partition, DrainTarget target)
{
	const char *from = CatalogQualifiedName(partition);

	switch (target)
	{
		case DRAIN_DELETE:
			return psprintf("DELETE FROM %s WHERE ctid OPERATOR(pg_catalog.=) ANY($1)", from);
		case DRAIN_LOG:
			return psprintf("WITH d AS (DELETE FROM %s WHERE ctid OPERATOR(pg_catalog.=) ANY($1) RETURNING *)"
							" INSERT INTO %s (id, event_id, topic, version, correlation_id, payload,"
							" enqueued_at, delivered_at, size, traceparent, tracestate)"
							" SELECT id, event_id, topic, version, correlation_id, payload, enqueued_at,"
							" pg_catalog.clock_timestamp(), pg_catalog.pg_column_size(payload),"
							" traceparent, tracestate FROM d",
							from, CatalogQualifiedName("celerysalt_events"));
		case DRAIN_PARK:
			return psprintf("WITH d AS (DELETE FROM %s WHERE ctid OPERATOR(pg_catalog.=) ANY($1) RETURNING *)"
							" INSERT INTO %s AS u (id, event_id, topic, version, correlation_id, payload,"
							" enqueued_at, returned_at, traceparent, tracestate)"
							" SELECT id, event_id, topic, version, correlation_id, payload, enqueued_at,"
							" pg_catalog.clock_timestamp(), traceparent, tracestate FROM d"
							" ON CONFLICT (id) DO UPDATE SET returned_at = EXCLUDED.returned_at",
							from, CatalogQualifiedName("celerysalt_unroutable"));
		case DRAIN_NTARGETS:
			break;
	}
	elog(ERROR, "unknown drain target %d", (int) target);
	return NULL;
}

/*
 * Move the events with take[i] (all when take is NULL) out of their outbox
 * partitions to target, by ctid (a TID scan: no index, no plan that
 * depends on the batch), in the open transaction.
 */
static void
move_by_ctid(Oid schema, OutboxEvent *events, const bool *take, int n, DrainTarget target)
{
	Oid			argtypes[1] = {TIDARRAYOID};

	for (int s = 0; s < CELERYSALT_OUTBOX_SLOTS; s++)
	{
		Datum	   *tids = palloc(sizeof(Datum) * n);
		int			ntids = 0;
		char		partition[NAMEDATALEN];
		SPIPlanPtr	plan;
		Datum		values[1];
		int			rc;

		for (int i = 0; i < n; i++)
			if (events[i].slot == s && (take == NULL || take[i]))
				tids[ntids++] = PointerGetDatum(&events[i].ctid);
		if (ntids == 0)
			continue;

		snprintf(partition, sizeof(partition), "_celerysalt_outbox_%d", s);
		plan = plans_schema == schema ? move_plans[s][target] : NULL;
		/*
		 * Planned for each array of ctids: a generic plan is made once, often
		 * right after the partition was truncated, when a sequential scan
		 * looks cheapest, and then compares every row of the partition with
		 * every ctid of the array (worse with every batch finished at once).
		 * With the array known the planner takes a TID scan, or a seq scan
		 * with a hashed ctid test for a partition of a few rows.
		 */
		if (plan == NULL)
			plan = saved_plan(&move_plans[s][target], schema, move_sql(partition, target),
							  1, argtypes, CURSOR_OPT_CUSTOM_PLAN);
		values[0] = PointerGetDatum(construct_array(tids, ntids, TIDOID, sizeof(ItemPointerData),
													false, TYPALIGN_SHORT));
		rc = SPI_execute_plan(plan, values, NULL, false, 0);
		if ((rc != SPI_OK_INSERT && rc != SPI_OK_DELETE) || SPI_processed != (uint64) ntids)
			elog(ERROR, "could not move a delivered batch out of the outbox: %s, %llu of %d rows",
				 SPI_result_code_string(rc), (unsigned long long) SPI_processed, ntids);
	}
}

/*
 * DrainFinish
 *		One transaction for a batch the broker confirmed: events with
 *		returned[i] (returned_msgs NULL: none) go to celerysalt_unroutable,
 *		the others are removed from the outbox and, when log_events, logged
 *		in celerysalt_events.  false when the extension is not installed.
 */
bool
DrainFinish(OutboxEvent *events, int n, const bool *returned, bool log_events)
{
	Oid			schema;

	schema = DrainBegin();
	if (!OidIsValid(schema))
	{
		DrainEnd();
		return false;
	}
	pgstat_report_activity(STATE_RUNNING, "celerysalt: finishing batch");
	if (returned == NULL)
		move_by_ctid(schema, events, NULL, n, log_events ? DRAIN_LOG : DRAIN_DELETE);
	else
	{
		bool	   *delivered = palloc(sizeof(bool) * n);

		for (int i = 0; i < n; i++)
			delivered[i] = !returned[i];
		move_by_ctid(schema, events, delivered, n, log_events ? DRAIN_LOG : DRAIN_DELETE);
		move_by_ctid(schema, events, returned, n, DRAIN_PARK);
	}
	DrainEnd();
	return true;
}

/*
 * DrainRequeueUnroutable
 *		One transaction: dead-letter the unroutable events enqueued more than
 *		retention_s ago, and, when requeue, move the others back into outbox
 *		partition slot (keeping their ids, so they are read first and carry
 *		the same task ids).  Returns how many went back, or -1 when the extension is not
 *		installed; *expired gets how many were dead-lettered.
 */
int64
DrainRequeueUnroutable(int slot, int retention_s, bool requeue, int64 *expired)
{
	Oid			argtypes[2] = {INT2OID, INT4OID};
	Datum		values[2];
	int64		requeued;
	int			rc;

	*expired = 0;
	if (!OidIsValid(DrainBegin()))
	{
		DrainEnd();
		return -1;
	}
	values[0] = Int16GetDatum((int16) slot);
	values[1] = Int32GetDatum(retention_s);
	rc = SPI_execute_with_args(
		psprintf("WITH d AS (DELETE FROM %s WHERE enqueued_at OPERATOR(pg_catalog.<)"
				 " (pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-)"
				 " pg_catalog.make_interval(secs => $2)) RETURNING *)"
				 " INSERT INTO %s (id, event_id, topic, version, correlation_id, payload,"
				 " enqueued_at, failed_at, reason, traceparent, tracestate)"
				 " SELECT id, event_id, topic, version, correlation_id, payload, enqueued_at,"
				 " pg_catalog.clock_timestamp(),"
				 " pg_catalog.format('no queue was bound for topic %%s within celerysalt.unroutable_retention (%%s s); last returned at %%s',"
				 " topic, $2, returned_at), traceparent, tracestate FROM d",
				 CatalogQualifiedName("celerysalt_unroutable"),
				 CatalogQualifiedName("celerysalt_dead_letters")),
		2, argtypes, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not dead-letter expired unroutable events: %s", SPI_result_code_string(rc));
	*expired = (int64) SPI_processed;
	if (!requeue)
	{
		DrainEnd();
		return 0;
	}
	rc = SPI_execute_with_args(
		psprintf("WITH d AS (DELETE FROM %s RETURNING *)"
				 " INSERT INTO %s (slot, event_id, id, topic, payload, version, correlation_id, enqueued_at,"
				 " traceparent, tracestate)"
				 " SELECT $1, event_id, id, topic, payload, version, correlation_id, enqueued_at,"
				 " traceparent, tracestate FROM d",
				 CatalogQualifiedName("celerysalt_unroutable"),
				 CatalogQualifiedName("_celerysalt_outbox")),
		1, argtypes, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not requeue unroutable events: %s", SPI_result_code_string(rc));
	requeued = (int64) SPI_processed;
	DrainEnd();
	return requeued;
}

/*
 * DrainDeadLetter
 *		Move one event that can never be sent to celerysalt_dead_letters,
 *		with the reason.  false when the extension is not installed.
 */
bool
DrainDeadLetter(OutboxEvent *ev, const char *reason)
{
	Oid			argtypes[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	char	   *sql;
	int			rc;

	if (!OidIsValid(DrainBegin()))
	{
		DrainEnd();
		return false;
	}
	values[0] = Int64GetDatum(ev->event_id);
	values[1] = CStringGetTextDatum(reason);
	sql = psprintf("WITH d AS (DELETE FROM %s WHERE event_id OPERATOR(pg_catalog.=) $1 RETURNING *)"
				   " INSERT INTO %s (id, event_id, topic, version, correlation_id, payload,"
				   " enqueued_at, failed_at, reason, traceparent, tracestate)"
				   " SELECT id, event_id, topic, version, correlation_id, payload, enqueued_at,"
				   " pg_catalog.clock_timestamp(), $2, traceparent, tracestate FROM d",
				   CatalogQualifiedName("_celerysalt_outbox"),
				   CatalogQualifiedName("celerysalt_dead_letters"));
	rc = SPI_execute_with_args(sql, 2, argtypes, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not dead-letter an event: %s", SPI_result_code_string(rc));
	DrainEnd();
	return true;
}

/*
 * DrainTruncateIfEmpty
 *		TRUNCATE outbox partition slot if it holds no event and its lock can
 *		be taken at once (a transaction that published long ago and is still
 *		open just postpones it).  Returns 1 when truncated, 0 when not now,
 *		-1 when the extension is not installed.
 */
int
DrainTruncateIfEmpty(int slot)
{
	char		relname[NAMEDATALEN];
	Oid			schema = DrainBegin();
	Oid			part;
	int			rc;
	int			truncated = 0;

	if (!OidIsValid(schema))
	{
		DrainEnd();
		return -1;
	}
	snprintf(relname, sizeof(relname), "_celerysalt_outbox_%d", slot);
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
			truncated = 1;
		}
		else
			elog(DEBUG1, "celerysalt: outbox partition %d still holds events; truncation postponed", slot);
	}
	else
		elog(DEBUG1, "celerysalt: outbox partition %d is locked; truncation postponed", slot);
	DrainEnd();
	return truncated;
}

/*
 * DrainRetain
 *		Delete up to chunk delivered-log rows older than retention_s seconds.
 *		Returns how many, or -1 when the extension is not installed.
 */
int64
DrainRetain(int retention_s, int chunk)
{
	TimestampTz now = GetCurrentTimestamp();
	Oid			argtypes[1];
	Datum		values[1];
	int			rc;
	int64		deleted;

	if (!OidIsValid(DrainBegin()))
	{
		DrainEnd();
		return -1;
	}
	/* the cut-off is a parameter: no arithmetic in the SQL text */
	argtypes[0] = TIMESTAMPTZOID;
	values[0] = TimestampTzGetDatum(TimestampTzPlusMilliseconds(now, -(int64) retention_s * 1000));
	rc = SPI_execute_with_args(psprintf("DELETE FROM %s WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY("
										"SELECT ctid FROM %s WHERE delivered_at OPERATOR(pg_catalog.<) $1"
										" LIMIT %d))",
										CatalogQualifiedName("celerysalt_events"),
										CatalogQualifiedName("celerysalt_events"),
										chunk),
							   1, argtypes, values, NULL, false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "could not apply the delivered-event retention: %s",
			 SPI_result_code_string(rc));
	deleted = (int64) SPI_processed;
	DrainEnd();
	return deleted;
}
