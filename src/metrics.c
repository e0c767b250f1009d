/*-------------------------------------------------------------------------
 *
 * metrics.c
 *		celerysalt_metrics(): the current database's delivery, follow-action
 *		and RPC metrics in the Prometheus text exposition format (version
 *		0.0.4), for a scraper such as postgres_exporter or sql_exporter
 *		(docs/metrics.md has the series and ready configurations).
 *
 * Counters and histograms come from the database's shared-memory slot
 * (dbslot.h), kept since the server started; gauges read the tables.  A
 * scrape every 15 s must stay cheap during a 10-million-event backlog, so
 * nothing scans a large table: the outbox and celerysalt_unroutable are
 * counted exactly up to SMALL_TABLE_ROWS rows, beyond that estimated from a
 * 1% block sample (celerysalt_outbox_pending_estimated says which), and the
 * oldest pending event is found through the event_id index.
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "commands/dbcommands.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "dbslot.h"
#include "rpc.h"

PG_FUNCTION_INFO_V1(celerysalt_metrics);

/* Up to this many rows a table is counted exactly. */
#define SMALL_TABLE_ROWS	100000

/* Append s as a Prometheus label value (\, " and newline escaped). */
static void
append_label_value(StringInfo out, const char *s)
{
	for (; *s; s++)
	{
		if (*s == '\\' || *s == '"')
			appendStringInfoChar(out, '\\');
		if (*s == '\n')
		{
			appendStringInfoString(out, "\\n");
			continue;
		}
		appendStringInfoChar(out, *s);
	}
}

/* # HELP and # TYPE lines of a metric family. */
static void
family(StringInfo out, const char *name, const char *type, const char *help)
{
	appendStringInfo(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample: name{database="...", extra} value. */
static void
sample(StringInfo out, const char *name, const char *db, const char *extra, double value)
{
	appendStringInfo(out, "%s{database=\"", name);
	append_label_value(out, db);
	appendStringInfoChar(out, '"');
	if (extra != NULL)
		appendStringInfo(out, ",%s", extra);
	appendStringInfo(out, "} %.17g\n", value);
}

static void
counter(StringInfo out, const char *name, const char *help, const char *db, pg_atomic_uint64 *v)
{
	family(out, name, "counter", help);
	sample(out, name, db, NULL, (double) pg_atomic_read_u64(v));
}

/* A histogram in seconds from a DbslotHistogram in microseconds. */
static void
histogram(StringInfo out, const char *name, const char *help, const char *db, DbslotHistogram *h)
{
	uint64		cumulative = 0;
	char		le[64];

	family(out, name, "histogram", help);
	for (int b = 0; b <= DBSLOT_LATENCY_BUCKETS; b++)
	{
		cumulative += pg_atomic_read_u64(&h->buckets[b]);
		if (b < DBSLOT_LATENCY_BUCKETS)
			snprintf(le, sizeof(le), "le=\"%g\"", DbslotLatencyBoundsUs[b] / 1e6);
		else
			strlcpy(le, "le=\"+Inf\"", sizeof(le));
		appendStringInfo(out, "%s_bucket{database=\"", name);
		append_label_value(out, db);
		appendStringInfo(out, "\",%s} " UINT64_FORMAT "\n", le, cumulative);
	}
	appendStringInfo(out, "%s_sum{database=\"", name);
	append_label_value(out, db);
	appendStringInfo(out, "\"} %.6f\n", pg_atomic_read_u64(&h->sum_us) / 1e6);
	appendStringInfo(out, "%s_count{database=\"", name);
	append_label_value(out, db);
	appendStringInfo(out, "\"} " UINT64_FORMAT "\n", pg_atomic_read_u64(&h->count));
}

/* The value of a one-column query's first row as a double (no row or NULL: -1). */
static double
query_double(const char *sql)
{
	bool		isnull;
	Datum		d;

	if (SPI_execute(sql, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "celerysalt_metrics: could not run \"%s\"", sql);
	if (SPI_processed == 0)
		return -1;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? -1 : DatumGetFloat8(d);
}

/*
 * Rows of table per topic into out as family name: exact when the table
 * holds at most SMALL_TABLE_ROWS rows, else estimated from a 1% block
 * sample (of the table, or the view sampled that samples it).  Returns
 * the total; *estimated says which.
 */
static double
rows_by_topic(StringInfo out, const char *table, const char *sampled, const char *name,
			  const char *db, bool *estimated)
{
	const char *qualified = CatalogQualifiedName(table);
	double		n;
	double		total = 0;
	char	   *sql;

	n = query_double(psprintf("SELECT pg_catalog.count(*)::pg_catalog.float8 FROM"
							  " (SELECT 1 FROM %s LIMIT %d) x", qualified, SMALL_TABLE_ROWS + 1));
	*estimated = n > SMALL_TABLE_ROWS;
	sql = *estimated
		? psprintf("SELECT topic, (pg_catalog.count(*) OPERATOR(pg_catalog.*) 100)::pg_catalog.float8"
				   " FROM %s GROUP BY topic ORDER BY topic",
				   sampled ? CatalogQualifiedName(sampled)
				   : psprintf("%s TABLESAMPLE SYSTEM (1)", qualified))
		: psprintf("SELECT topic, pg_catalog.count(*)::pg_catalog.float8 FROM %s"
				   " GROUP BY topic ORDER BY topic", qualified);
	if (SPI_execute(sql, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "celerysalt_metrics: could not count %s", table);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		char	   *topic = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		double		count = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[i],
														 SPI_tuptable->tupdesc, 2, &isnull));
		StringInfoData label;

		initStringInfo(&label);
		appendStringInfoString(&label, "topic=\"");
		append_label_value(&label, topic);
		appendStringInfoChar(&label, '"');
		sample(out, name, db, label.data, count);
		total += count;
	}
	return *estimated ? total : n;
}

/*
 * celerysalt_metrics() RETURNS text
 *		The current database's metrics, Prometheus text format.
 */
Datum
celerysalt_metrics(PG_FUNCTION_ARGS)
{
	DatabaseSlot *slot;
	const char *db = get_database_name(MyDatabaseId);
	StringInfoData out;
	StringInfoData by_topic;
	double		pending;
	double		unroutable;
	double		oldest;
	bool		pending_estimated;
	bool		unroutable_estimated;
	pid_t		pid = 0;
	bool		connected = false;

	RequirePreload();
	slot = DbslotFind(MyDatabaseId);
	initStringInfo(&out);
	initStringInfo(&by_topic);

	SPI_connect();
	family(&by_topic, "celerysalt_outbox_pending_events_by_topic", "gauge",
		   "Events committed and not yet confirmed by the broker, per topic.");
	pending = rows_by_topic(&by_topic, "_celerysalt_outbox", "_celerysalt_outbox_sample",
							"celerysalt_outbox_pending_events_by_topic", db, &pending_estimated);
	family(&by_topic, "celerysalt_unroutable_events_by_topic", "gauge",
		   "Events the broker returned because no queue was bound for their topic, waiting to be sent again, per topic.");
	unroutable = rows_by_topic(&by_topic, "celerysalt_unroutable", NULL,
							   "celerysalt_unroutable_events_by_topic", db, &unroutable_estimated);
	oldest = query_double(psprintf("SELECT pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()"
								   " OPERATOR(pg_catalog.-) enqueued_at) FROM %s ORDER BY txid, event_id LIMIT 1",
								   CatalogQualifiedName("_celerysalt_outbox")));
	SPI_finish();

	family(&out, "celerysalt_outbox_pending_events", "gauge",
		   "Events committed and not yet confirmed by the broker.");
	sample(&out, "celerysalt_outbox_pending_events", db, NULL, pending);
	family(&out, "celerysalt_outbox_pending_estimated", "gauge",
		   "1 when the pending counts are estimated from a 1% sample (more than 100000 events), else 0.");
	sample(&out, "celerysalt_outbox_pending_estimated", db, NULL, pending_estimated ? 1 : 0);
	family(&out, "celerysalt_outbox_oldest_pending_age_seconds", "gauge",
		   "Age of the oldest pending event, 0 when none is pending.");
	sample(&out, "celerysalt_outbox_oldest_pending_age_seconds", db, NULL, oldest < 0 ? 0 : oldest);
	family(&out, "celerysalt_unroutable_events", "gauge",
		   "Events the broker returned because no queue was bound for their topic, waiting to be sent again.");
	sample(&out, "celerysalt_unroutable_events", db, NULL, unroutable);
	appendStringInfoString(&out, by_topic.data);

	if (slot != NULL)
	{
		DbslotState st;

		DbslotReadState(slot, &st);
		pid = st.worker_pid;
		connected = st.broker_connected;
	}
	family(&out, "celerysalt_worker_up", "gauge", "1 when the database's delivery worker runs.");
	sample(&out, "celerysalt_worker_up", db, NULL, pid != 0 ? 1 : 0);
	family(&out, "celerysalt_broker_connected", "gauge", "1 when the worker holds a working broker connection.");
	sample(&out, "celerysalt_broker_connected", db, NULL, pid != 0 && connected ? 1 : 0);

	if (slot != NULL)
	{
		counter(&out, "celerysalt_events_delivered_total",
				"Events confirmed by the broker and routed to at least one queue.", db, &slot->delivered_total);
		counter(&out, "celerysalt_events_dead_lettered_total",
				"Events moved to celerysalt_dead_letters.", db, &slot->dead_lettered_total);
		counter(&out, "celerysalt_events_returned_unroutable_total",
				"Events the broker returned because no queue was bound for their topic.", db, &slot->returned_total);
		counter(&out, "celerysalt_publish_validation_failures_total",
				"Publishes refused because the payload broke the registered schema (23514).", db,
				&slot->validation_failures_total);
		counter(&out, "celerysalt_follow_action_firings_total",
				"Follow-action rules that matched and enqueued their event.", db, &slot->follow_fired_total);
		counter(&out, "celerysalt_follow_action_failures_total",
				"Follow-action rules that could not be evaluated or published.", db, &slot->follow_failed_total);
		counter(&out, "celerysalt_broker_reconnects_total",
				"Broker connections the worker opened after its first.", db, &slot->reconnects_total);
		counter(&out, "celerysalt_worker_starts_total",
				"Delivery worker starts (restarts are this minus one).", db, &slot->worker_starts_total);

		family(&out, "celerysalt_rpc_calls_total", "counter", "celerysalt_call calls by outcome.");
		for (int i = 0; i < DBSLOT_RPC_OUTCOMES; i++)
		{
			char		label[64];

			snprintf(label, sizeof(label), "outcome=\"%s\"", RpcOutcomeName(i));
			sample(&out, "celerysalt_rpc_calls_total", db, label,
				   (double) pg_atomic_read_u64(&slot->rpc_calls_total[i]));
		}
		histogram(&out, "celerysalt_rpc_duration_seconds",
				  "Duration of celerysalt_call calls that reached an outcome.", db, &slot->rpc_duration);
		histogram(&out, "celerysalt_delivery_latency_seconds",
				  "Time from enqueue to the broker's confirm, per delivered event.", db, &slot->delivery_latency);
	}

	PG_RETURN_TEXT_P(cstring_to_text(out.data));
}
