/*-------------------------------------------------------------------------
 *
 * outbox_drain.c
 *		The delivery worker's SQL.  Events are never deleted one by one:
 *		the log (_celerysalt_log) is read in batches by snapshot, as PgQ
 *		does, and what was delivered is one position per finished batch
 *		(_celerysalt_log_position).  Also: events no queue received go to
 *		celerysalt_unroutable and back into the log later, those that can
 *		never be sent to celerysalt_dead_letters (both are remembered in
 *		_celerysalt_log_undelivered), and delivered partitions are
 *		truncated after celerysalt.delivered_retention.  Each call is one
 *		transaction; plans are saved for the extension's schema.
 *
 * Batches: a batch is the events of the transactions that committed
 * between two snapshots, lo and hi (visible in hi, not in lo).  Commits
 * arrive out of event_id order, but a snapshot says exactly which
 * transactions had committed, so no event committed late is passed over.
 * A batch is read in (txid, event_id) order through the log's index, in
 * chunks of celerysalt.batch_size, by txid intervals that leave out what
 * lo already saw and what was still running at hi: the cursor says how far.
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

/*
 * The newest position this process loaded or recorded: another one in the
 * table means another session wrote positions (a restore of a dump).
 */
static int64 recorded_seq = -1;

/* saved plans, valid for plans_schema */
static Oid	plans_schema = InvalidOid;
static SPIPlanPtr read_plan = NULL;
static SPIPlanPtr position_plan = NULL;

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
 * A saved plan, prepared on first use.  All plans are forgotten when the
 * extension's schema changes (dropped and created again).
 */
static SPIPlanPtr
saved_plan(SPIPlanPtr *plan, Oid schema, const char *sql, int nargs, Oid *argtypes)
{
	if (plans_schema != schema)
	{
		if (read_plan)
			SPI_freeplan(read_plan);
		if (position_plan)
			SPI_freeplan(position_plan);
		read_plan = position_plan = NULL;
		plans_schema = schema;
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
 * A position belongs to one installation of the extension: if it was
 * dropped and created again meanwhile, the worker starts afresh (the
 * launcher restarts it) rather than record a stale position.
 */
static void
check_position_schema(const DrainPosition *pos, Oid schema)
{
	if (pos->schema != schema)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("celerysalt worker restarts: the extension was installed again")));
}

/* ------------------------------------------------------------------------
 * Snapshots and positions
 * ------------------------------------------------------------------------
 */

static int
xid_cmp(const void *a, const void *b)
{
	uint64		x = *(const uint64 *) a;
	uint64		y = *(const uint64 *) b;

	return x < y ? -1 : x > y;
}

static bool
snapshot_running(const LogSnapshot *snap, uint64 txid)
{
	return snap->nxip > 0 &&
		bsearch(&txid, snap->xip, snap->nxip, sizeof(uint64), xid_cmp) != NULL;
}

static void
snapshot_reserve(LogSnapshot *snap, int nxip, MemoryContext cxt)
{
	if (snap->xip_capacity < nxip || snap->xip == NULL)
	{
		snap->xip_capacity = Max(nxip, 8);
		snap->xip = MemoryContextAlloc(cxt, sizeof(uint64) * snap->xip_capacity);
	}
}

static void
snapshot_copy(LogSnapshot *dst, const LogSnapshot *src, MemoryContext cxt)
{
	snapshot_reserve(dst, src->nxip, cxt);
	dst->xmin = src->xmin;
	dst->xmax = src->xmax;
	dst->nxip = src->nxip;
	if (src->nxip > 0)
		memcpy(dst->xip, src->xip, sizeof(uint64) * src->nxip);
}

/* Read pg_snapshot's text form ("xmin:xmax:xip,xip,...") into snap. */
static void
snapshot_parse(LogSnapshot *snap, const char *text, MemoryContext cxt)
{
	const char *p = text;
	char	   *end;
	int			n = 1;

	for (const char *c = text; *c; c++)
		n += (*c == ',');
	snapshot_reserve(snap, n, cxt);
	snap->nxip = 0;
	snap->xmin = strtou64(p, &end, 10);
	if (*end != ':')
		goto bad;
	snap->xmax = strtou64(end + 1, &end, 10);
	if (*end != ':')
		goto bad;
	p = end + 1;
	while (*p)
	{
		snap->xip[snap->nxip++] = strtou64(p, &end, 10);
		if (end == p || (*end != ',' && *end != '\0'))
			goto bad;
		p = *end ? end + 1 : end;
	}
	if (snap->nxip > 1)
		qsort(snap->xip, snap->nxip, sizeof(uint64), xid_cmp);
	return;
bad:
	elog(ERROR, "could not read snapshot \"%s\"", text);
}

/* pg_snapshot's text form of snap. */
static char *
snapshot_text(const LogSnapshot *snap)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, UINT64_FORMAT ":" UINT64_FORMAT ":", snap->xmin, snap->xmax);
	for (int i = 0; i < snap->nxip; i++)
		appendStringInfo(&buf, "%s" UINT64_FORMAT, i > 0 ? "," : "", snap->xip[i]);
	return buf.data;
}

/* Copy src into dst, dst's arrays (re)allocated in cxt when too small. */
void
DrainPositionCopy(DrainPosition *dst, const DrainPosition *src, MemoryContext cxt)
{
	dst->schema = src->schema;
	dst->seq = src->seq;
	snapshot_copy(&dst->lo, &src->lo, cxt);
	snapshot_copy(&dst->hi, &src->hi, cxt);
	dst->cursor_txid = src->cursor_txid;
	dst->cursor_event_id = src->cursor_event_id;
}

/*
 * DrainLoadPosition
 *		Read the newest recorded position into pos (arrays in cxt).  false
 *		when the extension is not installed.
 */
bool
DrainLoadPosition(DrainPosition *pos, MemoryContext cxt)
{
	Oid			schema = DrainBegin();
	bool		isnull;
	int			rc;

	if (!OidIsValid(schema))
	{
		DrainEnd();
		return false;
	}
	rc = SPI_execute(psprintf("SELECT seq, lo::pg_catalog.text, hi::pg_catalog.text, cursor_txid, cursor_event_id"
							  " FROM %s ORDER BY seq DESC LIMIT 1",
							  CatalogQualifiedName("_celerysalt_log_position")), true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("celerysalt's delivered position is missing"),
				 errhint("Reinstall the extension: DROP EXTENSION celerysalt; CREATE EXTENSION celerysalt.")));
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		pos->schema = schema;
		pos->seq = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		recorded_seq = pos->seq;
		snapshot_parse(&pos->lo, SPI_getvalue(tup, desc, 2), cxt);
		snapshot_parse(&pos->hi, SPI_getvalue(tup, desc, 3), cxt);
		pos->cursor_txid = DatumGetUInt64(SPI_getbinval(tup, desc, 4, &isnull));
		pos->cursor_event_id = DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));
	}
	DrainEnd();
	return true;
}

/* Record pos as the delivered position, numbered seq, in the open transaction. */
static void
record_position(Oid schema, const DrainPosition *pos, int64 seq)
{
	Oid			argtypes[6] = {INT8OID, TEXTOID, TEXTOID, XID8OID, XID8OID, INT8OID};
	Datum		values[6];
	SPIPlanPtr	plan;
	int			rc;

	check_position_schema(pos, schema);
	plan = plans_schema == schema ? position_plan : NULL;
	if (plan == NULL)
		plan = saved_plan(&position_plan, schema,
						  psprintf("INSERT INTO %s (seq, lo, hi, hi_xmax, cursor_txid, cursor_event_id, finished_at)"
								   " VALUES ($1, CAST($2 AS pg_catalog.pg_snapshot), CAST($3 AS pg_catalog.pg_snapshot),"
								   " $4, $5, $6, pg_catalog.clock_timestamp())",
								   CatalogQualifiedName("_celerysalt_log_position")),
						  6, argtypes);
	values[0] = Int64GetDatum(seq);
	values[1] = CStringGetTextDatum(snapshot_text(&pos->lo));
	values[2] = CStringGetTextDatum(snapshot_text(&pos->hi));
	values[3] = UInt64GetDatum(pos->hi.xmax);
	values[4] = UInt64GetDatum(pos->cursor_txid);
	values[5] = Int64GetDatum(pos->cursor_event_id);
	rc = SPI_execute_plan(plan, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not record the delivered position: %s", SPI_result_code_string(rc));
	recorded_seq = seq;
}

/* ------------------------------------------------------------------------
 * Reading batches
 * ------------------------------------------------------------------------
 */

/*
 * The first txid interval [*from, *to) of pos's batch that holds txids >=
 * t: a transaction lo saw running and hi saw finished, or a stretch of
 * [lo.xmax, hi.xmax) between the transactions hi saw running.  false when
 * the batch has no txid >= t.
 */
static bool
batch_interval(const DrainPosition *pos, uint64 t, uint64 *from, uint64 *to)
{
	uint64		start;

	for (int i = 0; i < pos->lo.nxip; i++)
	{
		uint64		x = pos->lo.xip[i];

		if (x >= t && !snapshot_running(&pos->hi, x))
		{
			*from = x;
			*to = x + 1;
			return true;
		}
	}
	start = Max(t, pos->lo.xmax);
	while (start < pos->hi.xmax && snapshot_running(&pos->hi, start))
		start++;
	if (start >= pos->hi.xmax)
		return false;
	*from = start;
	*to = pos->hi.xmax;
	for (int i = 0; i < pos->hi.nxip; i++)
		if (pos->hi.xip[i] > start)
		{
			*to = pos->hi.xip[i];
			break;
		}
	return true;
}

/*
 * Stop (the launcher restarts the worker, which loads the position again)
 * when the newest recorded position is not the one this process knows:
 * another session wrote positions, as a restore of a dump does, and their
 * transaction ids may be another cluster's (DrainAdoptRestoredLog).
 */
static void
check_positions_unchanged(void)
{
	bool		isnull;
	Datum		newest;
	int			rc = SPI_execute(psprintf("SELECT pg_catalog.max(seq) FROM %s",
										  CatalogQualifiedName("_celerysalt_log_position")), true, 1);

	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the delivered position: %s", SPI_result_code_string(rc));
	newest = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull || DatumGetInt64(newest) != recorded_seq)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("celerysalt worker restarts: another session changed the delivered position"),
				 errdetail("It is " INT64_FORMAT "; the worker recorded " INT64_FORMAT " last.",
						   isnull ? (int64) -1 : DatumGetInt64(newest), recorded_seq),
				 errhint("A restored dump does this; docs/architecture.md, \"Restoring a dump\".")));
}

/* Start the next batch: what committed between the last batch's hi and now. */
static void
begin_batch(DrainPosition *pos, MemoryContext cxt)
{
	int			rc;

	check_positions_unchanged();
	rc = SPI_execute("SELECT pg_catalog.pg_current_snapshot()::pg_catalog.text", true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not take a snapshot: %s", SPI_result_code_string(rc));
	snapshot_copy(&pos->lo, &pos->hi, cxt);
	snapshot_parse(&pos->hi, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), cxt);
	pos->cursor_txid = 0;
	pos->cursor_event_id = PG_INT64_MIN;
}

/*
 * A read holds at most about READ_PAYLOAD_BYTES of payloads (the worker
 * keeps up to celerysalt.publish_window reads, with their messages, in
 * memory), fetched READ_FIRST_ROWS rows first and then as many as the
 * payloads seen so far say will fit: 500 events of 1 MB would otherwise
 * take the worker's memory into gigabytes.  One event is read whatever its
 * size.
 */
#define READ_PAYLOAD_BYTES	(8 * 1024 * 1024)
#define READ_FIRST_ROWS		8

/* Copy the events SPI_tuptable holds into events[*n...], in cxt; returns their payloads' bytes. */
static Size
take_rows(OutboxEvent *events, int *n, MemoryContext cxt)
{
	TupleDesc	desc = SPI_tuptable->tupdesc;
	MemoryContext old = MemoryContextSwitchTo(cxt);
	Size		bytes = 0;

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		OutboxEvent *ev = &events[(*n)++];
		bool		isnull;
		Datum		d;

		ev->event_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		ev->id = *DatumGetUUIDP(SPI_getbinval(tup, desc, 2, &isnull));
		ev->topic = TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull));
		ev->payload = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 4, &isnull));
		d = SPI_getbinval(tup, desc, 5, &isnull);
		ev->version = isnull ? NULL : TextDatumGetCString(d);
		d = SPI_getbinval(tup, desc, 6, &isnull);
		ev->correlation_id = isnull ? NULL : TextDatumGetCString(d);
		ev->slot = DatumGetInt16(SPI_getbinval(tup, desc, 7, &isnull));
		ev->enqueued_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 8, &isnull));
		d = SPI_getbinval(tup, desc, 9, &isnull);
		ev->traceparent = isnull ? NULL : TextDatumGetCString(d);
		d = SPI_getbinval(tup, desc, 10, &isnull);
		ev->tracestate = isnull ? NULL : TextDatumGetCString(d);
		ev->txid = DatumGetUInt64(SPI_getbinval(tup, desc, 11, &isnull));
		bytes += VARSIZE(ev->payload);
	}
	MemoryContextSwitchTo(old);
	return bytes;
}

/*
 * DrainRead
 *		Read up to limit events past pos, in order, into cxt, and move pos to
 *		the last one read.  When pos's batch is done, the next one starts
 *		(a new snapshot), unless events of the done one were read: the events
 *		read are then all of one batch, so that the position recorded after
 *		them (DrainFinish) has them between its lo and hi, which is how
 *		celerysalt_events finds their delivered_at.  *more: whether more may
 *		be read now (the limit or a batch's end was reached).  Returns the
 *		number read, -1 when the log is locked (DROP EXTENSION under way),
 *		DRAIN_GONE when the extension is not installed.
 */
int
DrainRead(int limit, DrainPosition *pos, MemoryContext cxt, OutboxEvent **events_out, bool *more)
{
	Oid			schema = DrainBegin();
	Oid			log;
	Oid			argtypes[4] = {XID8OID, INT8OID, XID8OID, INT4OID};
	MemoryContext pos_cxt = GetMemoryChunkContext(pos->hi.xip);
	SPIPlanPtr	plan;
	bool		new_batch = false;
	int			n = 0;
	Size		bytes = 0;
	OutboxEvent *events;

	*more = false;
	if (!OidIsValid(schema))
	{
		DrainEnd();
		return DRAIN_GONE;
	}
	check_position_schema(pos, schema);
	log = get_relname_relid("_celerysalt_log", schema);
	if (!OidIsValid(log) || !ConditionalLockRelationOid(log, AccessShareLock))
	{
		DrainEnd();
		return -1;
	}

	pgstat_report_activity(STATE_RUNNING, "celerysalt: reading outbox");
	plan = plans_schema == schema ? read_plan : NULL;
	if (plan == NULL)
		plan = saved_plan(&read_plan, schema,
						  psprintf("SELECT event_id, id, topic, payload, version, correlation_id, slot, enqueued_at,"
								   " traceparent, tracestate, txid"
								   " FROM %s WHERE ROW(txid, event_id) OPERATOR(pg_catalog.>) ROW($1, $2)"
								   " AND txid OPERATOR(pg_catalog.<) $3"
								   " ORDER BY txid, event_id LIMIT $4",
								   CatalogQualifiedName("_celerysalt_log")),
						  4, argtypes);
	events = MemoryContextAlloc(cxt, sizeof(OutboxEvent) * limit);

	while (n < limit)
	{
		uint64		from;
		uint64		to;
		Datum		values[4];
		int			asked;
		int			rc;

		if (pos->cursor_txid >= pos->hi.xmax)
		{
			/* this batch is done: the next one, once per call, alone */
			if (n > 0)
				*more = true;
			if (new_batch || n > 0)
				break;
			begin_batch(pos, pos_cxt);
			new_batch = true;
			continue;
		}
		if (!batch_interval(pos, pos->cursor_txid, &from, &to))
		{
			pos->cursor_txid = pos->hi.xmax;
			pos->cursor_event_id = PG_INT64_MIN;
			continue;
		}
		/* the events of [from, to) after the cursor, as many as fit */
		asked = limit - n;
		if (n == 0)
			asked = Min(asked, READ_FIRST_ROWS);
		else
		{
			Size		fit = (READ_PAYLOAD_BYTES - bytes) / Max(bytes / (Size) n, 1);

			asked = (int) Min((Size) asked, Max(fit, 1));
		}
		values[0] = UInt64GetDatum(from);
		values[1] = Int64GetDatum(from == pos->cursor_txid ? pos->cursor_event_id : PG_INT64_MIN);
		values[2] = UInt64GetDatum(to);
		values[3] = Int32GetDatum(asked);
		rc = SPI_execute_plan(plan, values, NULL, true, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "could not read the outbox: %s", SPI_result_code_string(rc));
		bytes += take_rows(events, &n, cxt);
		if (SPI_processed < (uint64) asked)
		{
			/* that interval is done */
			pos->cursor_txid = to;
			pos->cursor_event_id = PG_INT64_MIN;
		}
		else
		{
			pos->cursor_txid = events[n - 1].txid;
			pos->cursor_event_id = events[n - 1].event_id;
		}
		SPI_freetuptable(SPI_tuptable);
		if (bytes >= READ_PAYLOAD_BYTES)
		{
			*more = true;		/* full by size */
			break;
		}
	}
	DrainEnd();
	if (n == limit)
		*more = true;
	*events_out = events;
	return n;
}

/* ------------------------------------------------------------------------
 * Finishing batches
 * ------------------------------------------------------------------------
 */

/*
 * Copy the log rows of events with take[i] into a table, partition by
 * partition, and remember them as not delivered; in the open transaction.
 * Rows are found by (txid, event_id) through the log's index, not by the
 * ctid they were read at: VACUUM FULL (which a database owner may run) can
 * move them while the broker has them.  The statement is insert_head
 * (INSERT ... SELECT ... FROM), the partition, then insert_tail (ON
 * CONFLICT ...), joined as text, never used as a format (names and reasons
 * may hold a %); $3 is reason (NULL: the statement has no $3).
 */
static void
set_aside(OutboxEvent *events, const bool *take, int n, const char *insert_head,
		  const char *insert_tail, const char *reason)
{
	Oid			argtypes[3] = {XID8ARRAYOID, INT8ARRAYOID, TEXTOID};
	const char *keys = "ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS k(k_txid, k_event_id)";

	for (int s = 0; s < CELERYSALT_OUTBOX_SLOTS; s++)
	{
		Datum	   *txids = palloc(sizeof(Datum) * n);
		Datum	   *event_ids = palloc(sizeof(Datum) * n);
		int			nkeys = 0;
		char		partition[NAMEDATALEN];
		Datum		values[3];
		int			rc;

		for (int i = 0; i < n; i++)
			if (events[i].slot == s && take[i])
			{
				txids[nkeys] = UInt64GetDatum(events[i].txid);
				event_ids[nkeys++] = Int64GetDatum(events[i].event_id);
			}
		if (nkeys == 0)
			continue;
		snprintf(partition, sizeof(partition), "_celerysalt_log_%d", s);
		values[0] = PointerGetDatum(construct_array(txids, nkeys, XID8OID, sizeof(uint64),
													FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[1] = PointerGetDatum(construct_array(event_ids, nkeys, INT8OID, sizeof(int64),
													FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		if (reason != NULL)
			values[2] = CStringGetTextDatum(reason);
		rc = SPI_execute_with_args(psprintf("%s %s l JOIN %s ON l.txid OPERATOR(pg_catalog.=) k.k_txid"
											" AND l.event_id OPERATOR(pg_catalog.=) k.k_event_id %s",
											insert_head, CatalogQualifiedName(partition), keys, insert_tail),
								   reason != NULL ? 3 : 2,
								   argtypes, values, NULL, false, 0);
		if (rc != SPI_OK_INSERT)
			elog(ERROR, "could not set events aside: %s", SPI_result_code_string(rc));
		rc = SPI_execute_with_args(psprintf("INSERT INTO %s (txid, event_id) SELECT k_txid, k_event_id FROM %s"
											" ON CONFLICT DO NOTHING",
											CatalogQualifiedName("_celerysalt_log_undelivered"), keys),
								   2, argtypes, values, NULL, false, 0);
		if (rc != SPI_OK_INSERT)
			elog(ERROR, "could not set events aside: %s", SPI_result_code_string(rc));
	}
}

/*
 * DrainFinish
 *		One transaction for batches the broker confirmed: the events with
 *		returned[i] (returned NULL: none) go to celerysalt_unroutable, and
 *		the position after each batch, positions[0 .. npositions - 1] in
 *		order, is recorded as position seq, seq + 1, ...  (each tells when
 *		its batch was delivered).  No work per delivered event.  false when
 *		the extension is not installed.
 */
bool
DrainFinish(OutboxEvent *events, int n, const bool *returned, DrainPosition *const *positions,
			int npositions, int64 seq)
{
	Oid			schema;

	schema = DrainBegin();
	if (!OidIsValid(schema))
	{
		DrainEnd();
		return false;
	}
	pgstat_report_activity(STATE_RUNNING, "celerysalt: finishing batch");
	if (npositions > 0)
		check_positions_unchanged();
	if (returned != NULL)
		set_aside(events, returned, n,
				  psprintf("INSERT INTO %s AS u (id, event_id, topic, version, correlation_id, payload,"
						   " enqueued_at, returned_at, traceparent, tracestate)"
						   " SELECT id, event_id, topic, version, correlation_id, payload, enqueued_at,"
						   " pg_catalog.clock_timestamp(), traceparent, tracestate FROM",
						   CatalogQualifiedName("celerysalt_unroutable")),
				  "ON CONFLICT (id) DO UPDATE SET returned_at = EXCLUDED.returned_at", NULL);
	for (int i = 0; i < npositions; i++)
		record_position(schema, positions[i], seq + i);
	DrainEnd();
	return true;
}

/*
 * DrainDeadLetter
 *		Copy one event that can never be sent to celerysalt_dead_letters,
 *		with the reason, and, when pos is given, record it as position seq
 *		(the event was the last of the batch: nothing else will pass it).
 *		Done twice (the worker died before the batch finished), the second
 *		time changes nothing.  false when the extension is not installed.
 */
bool
DrainDeadLetter(OutboxEvent *ev, const char *reason, DrainPosition *pos, int64 seq)
{
	Oid			schema = DrainBegin();
	bool		take = true;

	if (!OidIsValid(schema))
	{
		DrainEnd();
		return false;
	}
	if (pos != NULL)
		check_positions_unchanged();
	set_aside(ev, &take, 1,
			  psprintf("INSERT INTO %s (id, event_id, topic, version, correlation_id, payload,"
					   " enqueued_at, failed_at, reason, traceparent, tracestate)"
					   " SELECT id, event_id, topic, version, correlation_id, payload, enqueued_at,"
					   " pg_catalog.clock_timestamp(), $3, traceparent, tracestate FROM",
					   CatalogQualifiedName("celerysalt_dead_letters")),
			  "ON CONFLICT (id) DO NOTHING", reason);
	if (pos != NULL)
		record_position(schema, pos, seq);
	DrainEnd();
	return true;
}

/*
 * DrainRequeueUnroutable
 *		One transaction: dead-letter the unroutable events enqueued more than
 *		retention_s ago, and, when requeue, move the others back into the log
 *		(partition slot), keeping their ids and event ids (the same task ids),
 *		as events of this transaction.  Returns how many went back, or -1
 *		when the extension is not installed; *expired gets how many were
 *		dead-lettered.
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
				 " traceparent, tracestate, txid)"
				 " SELECT $1, event_id, id, topic, payload, version, correlation_id, enqueued_at,"
				 " traceparent, tracestate, pg_catalog.pg_current_xact_id() FROM d",
				 CatalogQualifiedName("celerysalt_unroutable"),
				 CatalogQualifiedName("_celerysalt_log")),
		1, argtypes, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not requeue unroutable events: %s", SPI_result_code_string(rc));
	requeued = (int64) SPI_processed;
	DrainEnd();
	return requeued;
}

/* ------------------------------------------------------------------------
 * Partitions
 * ------------------------------------------------------------------------
 */

/*
 * Forget the positions and undelivered marks no event left in the log
 * needs, in the open transaction: a position covers an event only if its
 * hi.xmax is above the event's txid.
 */
static void
trim_bookkeeping(void)
{
	Oid			argtypes[1] = {XID8OID};
	Datum		values[1];
	bool		isnull;
	int			rc;

	rc = SPI_execute(psprintf("SELECT pg_catalog.min(txid) FROM %s WHERE txid OPERATOR(pg_catalog.>) '0'::pg_catalog.xid8",
							  CatalogQualifiedName("_celerysalt_log")), true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the log's oldest transaction: %s", SPI_result_code_string(rc));
	values[0] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		values[0] = UInt64GetDatum(PG_UINT64_MAX);
	rc = SPI_execute_with_args(psprintf("DELETE FROM %s WHERE hi_xmax OPERATOR(pg_catalog.<=) $1"
										" AND seq OPERATOR(pg_catalog.<) (SELECT pg_catalog.max(seq) FROM %s)",
										CatalogQualifiedName("_celerysalt_log_position"),
										CatalogQualifiedName("_celerysalt_log_position")),
							   1, argtypes, values, NULL, false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "could not trim the delivered positions: %s", SPI_result_code_string(rc));
	rc = SPI_execute_with_args(psprintf("DELETE FROM %s WHERE txid OPERATOR(pg_catalog.<) $1",
										CatalogQualifiedName("_celerysalt_log_undelivered")),
							   1, argtypes, values, NULL, false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "could not trim the undelivered marks: %s", SPI_result_code_string(rc));
}

/* The partition of slot values[0] is empty again: forget when it was drained. */
static void
clear_drained(const char *slots, Oid *argtypes, Datum *values)
{
	int			rc = SPI_execute_with_args(psprintf("UPDATE %s SET drained_at = NULL WHERE slot OPERATOR(pg_catalog.=) $1",
													slots),
										   1, argtypes, values, NULL, false, 0);

	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "could not record log partition %d as empty: %s",
			 (int) DatumGetInt16(values[0]), SPI_result_code_string(rc));
}

/*
 * DrainTruncateIfDelivered
 *		TRUNCATE log partition slot (not the one publishers append to) once
 *		no event in it waits and retention_s has passed since that was first
 *		seen (_celerysalt_log_slots.drained_at).  The partition's lock is only
 *		taken when it can be at once: a transaction that published into it
 *		and is still open just postpones this.  Returns 1 when truncated (or
 *		empty), 0 when not now, -1 when the extension is not installed.
 */
int
DrainTruncateIfDelivered(int slot, int retention_s)
{
	char		relname[NAMEDATALEN];
	Oid			schema = DrainBegin();
	Oid			argtypes[2] = {INT2OID, INT4OID};
	Datum		values[2];
	const char *slots;
	Oid			part;
	bool		drained;
	bool		due;
	bool		isnull;
	int			rc;

	if (!OidIsValid(schema))
	{
		DrainEnd();
		return -1;
	}
	slots = CatalogQualifiedName("_celerysalt_log_slots");
	values[0] = Int16GetDatum((int16) slot);
	values[1] = Int32GetDatum(retention_s);
	rc = SPI_execute_with_args(psprintf("SELECT drained_at IS NOT NULL, COALESCE(drained_at OPERATOR(pg_catalog.<=)"
										" (pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => $2)), false)"
										" FROM %s WHERE slot OPERATOR(pg_catalog.=) $1", slots),
							   2, argtypes, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the state of log partition %d: %s", slot, SPI_result_code_string(rc));
	drained = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	due = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (drained && !due)
	{
		DrainEnd();
		return 0;
	}

	snprintf(relname, sizeof(relname), "_celerysalt_log_%d", slot);
	part = get_relname_relid(relname, schema);
	if (!OidIsValid(part) || !ConditionalLockRelationOid(part, AccessExclusiveLock))
	{
		elog(DEBUG1, "celerysalt: log partition %d is locked; truncation postponed", slot);
		DrainEnd();
		return 0;
	}

	/*
	 * Look with a snapshot taken now that the lock is held, not the one the
	 * transaction began with: a publisher that read this slot before the
	 * rotation may have appended to the partition and committed in between,
	 * and its events must count as waiting.
	 */
	PopActiveSnapshot();
	PushActiveSnapshot(GetTransactionSnapshot());
	/* empty (never used since its truncation): nothing to truncate */
	rc = SPI_execute(psprintf("SELECT 1 FROM %s LIMIT 1", CatalogQualifiedName(relname)), true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not look into log partition %d: %s", slot, SPI_result_code_string(rc));
	if (SPI_processed == 0)
	{
		if (drained)
			clear_drained(slots, argtypes, values);
		DrainEnd();
		return 1;
	}
	/* does an event wait?  Every publisher into it has finished: we hold its lock */
	rc = SPI_execute_with_args(psprintf("SELECT 1 FROM %s WHERE slot OPERATOR(pg_catalog.=) $1 LIMIT 1",
										CatalogQualifiedName("_celerysalt_outbox")),
							   1, argtypes, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not look into log partition %d: %s", slot, SPI_result_code_string(rc));
	if (SPI_processed > 0 || !drained)
	{
		/*
		 * Events wait (a publisher that read the slot just before the
		 * rotation): not drained.  Drained only now: count from now.
		 */
		bool		waiting = SPI_processed > 0;

		rc = SPI_execute_with_args(psprintf("UPDATE %s SET drained_at = %s WHERE slot OPERATOR(pg_catalog.=) $1",
											slots, waiting ? "NULL" : "pg_catalog.clock_timestamp()"),
								   1, argtypes, values, NULL, false, 0);
		if (rc != SPI_OK_UPDATE)
			elog(ERROR, "could not record the state of log partition %d: %s", slot, SPI_result_code_string(rc));
		if (waiting || retention_s > 0)
		{
			DrainEnd();
			return 0;
		}
	}

	{
		char	   *qname = CatalogQualifiedName(relname);

		rc = SPI_execute(psprintf("TRUNCATE %s", qname), false, 0);
		if (rc != SPI_OK_UTILITY)
			elog(ERROR, "could not truncate %s: %s", qname, SPI_result_code_string(rc));
	}
	clear_drained(slots, argtypes, values);
	trim_bookkeeping();
	DrainEnd();
	return 1;
}

/* ------------------------------------------------------------------------
 * A log restored from another cluster
 * ------------------------------------------------------------------------
 */

/*
 * DrainAdoptRestoredLog
 *		The log and its position came from another cluster (pg_dump restored
 *		into a cluster whose transaction ids are lower: the position lies in
 *		this cluster's future).  Their transaction ids mean nothing here, so,
 *		in one transaction: events the restored position says were delivered
 *		stay delivered (txid 0, their delivered_at kept), those not delivered
 *		become events of this transaction (so they are delivered once), the
 *		undelivered marks go with their rows (their events are in
 *		celerysalt_unroutable or celerysalt_dead_letters), and the position
 *		starts afresh.  Returns false when the extension is not installed;
 *		*delivered and *waiting get the counts.
 */
bool
DrainAdoptRestoredLog(int64 *delivered, int64 *waiting)
{
	const char *log;
	const char *position;
	const char *undelivered;

	*delivered = *waiting = 0;
	if (!OidIsValid(DrainBegin()))
	{
		DrainEnd();
		return false;
	}
	log = CatalogQualifiedName("_celerysalt_log");
	position = CatalogQualifiedName("_celerysalt_log_position");
	undelivered = CatalogQualifiedName("_celerysalt_log_undelivered");
	if (SPI_execute(psprintf("DELETE FROM %s l USING %s u WHERE l.txid OPERATOR(pg_catalog.=) u.txid"
							 " AND l.event_id OPERATOR(pg_catalog.=) u.event_id", log, undelivered),
					false, 0) != SPI_OK_DELETE ||
		SPI_execute(psprintf("DELETE FROM %s", undelivered), false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not adopt the restored log's undelivered events");
	if (SPI_execute(psprintf("UPDATE %s l SET txid = '0'::pg_catalog.xid8, delivered_at = e.delivered_at FROM %s e"
							 " WHERE e.id OPERATOR(pg_catalog.=) l.id AND e.event_id OPERATOR(pg_catalog.=) l.event_id"
							 " AND l.txid OPERATOR(pg_catalog.<>) '0'::pg_catalog.xid8",
							 log, CatalogQualifiedName("celerysalt_events")), false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not adopt the restored log's delivered events");
	*delivered = (int64) SPI_processed;
	if (SPI_execute(psprintf("UPDATE %s SET txid = pg_catalog.pg_current_xact_id()"
							 " WHERE txid OPERATOR(pg_catalog.<>) '0'::pg_catalog.xid8", log),
					false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not adopt the restored log's waiting events");
	*waiting = (int64) SPI_processed;
	if (SPI_execute(psprintf("DELETE FROM %s", position), false, 0) != SPI_OK_DELETE ||
		SPI_execute(psprintf("INSERT INTO %s (seq, lo, hi, hi_xmax, cursor_txid, cursor_event_id, finished_at)"
							 " VALUES (0, '1:1:', '1:1:', '1', '1', -9223372036854775808, '-infinity')",
							 position), false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not start the restored log's position afresh");
	DrainEnd();
	return true;
}
