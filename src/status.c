/*-------------------------------------------------------------------------
 *
 * status.c
 *		SQL access to the delivery workers' shared state: the functions behind
 *		the celerysalt_status view (this database) and the
 *		celerysalt_cluster_status view (every database of the cluster, with
 *		the reason when one has no worker).
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"
#include "conninfo.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_database.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "broker.h"
#include "guc.h"
#include "dbslot.h"

PG_FUNCTION_INFO_V1(_celerysalt_worker_state);
PG_FUNCTION_INFO_V1(_celerysalt_cluster_state);

/*
 * _celerysalt_worker_state() RETURNS record
 *		The current database's worker: pid, broker_connected, broker (URL
 *		without passwords), delivered_total, dead_lettered_total,
 *		last_delivery_at, last_error, last_error_at, worker_started_at,
 *		returned_total and broker_node (the node connected to, without
 *		password); 0.1.0's definition ends before returned_total.
 */
Datum
_celerysalt_worker_state(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[11];
	bool		nulls[11] = {0};
	DatabaseSlot *slot;

	RequirePreload();
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	slot = DbslotFind(MyDatabaseId);
	values[2] = CStringGetTextDatum(ConninfoRedactAmqp(celerysalt_broker_url));
	if (slot == NULL)
	{
		for (int i = 0; i < 11; i++)
			nulls[i] = (i != 2);
		values[1] = BoolGetDatum(false);
		nulls[1] = false;
	}
	else
	{
		DbslotState st;

		DbslotReadState(slot, &st);
		values[0] = Int32GetDatum(st.worker_pid);
		nulls[0] = (st.worker_pid == 0);
		values[1] = BoolGetDatum(st.broker_connected && st.worker_pid != 0);
		values[3] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->delivered_total));
		values[4] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->dead_lettered_total));
		values[5] = TimestampTzGetDatum(st.last_delivery_at);
		nulls[5] = (st.last_delivery_at == 0);
		values[6] = CStringGetTextDatum(st.last_error);
		nulls[6] = (st.last_error[0] == '\0');
		values[7] = TimestampTzGetDatum(st.last_error_at);
		nulls[7] = (st.last_error_at == 0);
		values[8] = TimestampTzGetDatum(st.worker_started_at);
		nulls[8] = (st.worker_pid == 0 || st.worker_started_at == 0);
		values[9] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->returned_total));
		values[10] = CStringGetTextDatum(st.broker_node);
		nulls[10] = !(st.broker_connected && st.worker_pid != 0 && st.broker_node[0] != '\0');
	}
	/* 0.1.0's definition has no returned_total: fill what it declares */
	if (desc->natts < 9 || desc->natts > 11)
		elog(ERROR, "_celerysalt_worker_state: unexpected result type");
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/*
 * Why database db has no running worker; NULL when it has one.  served: it
 * is listed in celerysalt.databases; st: its slot's state (slot non-NULL).
 */
static const char *
no_worker_reason(Form_pg_database db, bool served, DatabaseSlot *slot, const DbslotState *st)
{
	if (db->datistemplate || !db->datallowconn)
		return "does not accept connections";
	if (!served)
		return "not listed in celerysalt.databases";
	if (slot == NULL)
	{
		int			used = 0;

		for (int i = 0; i < celerysalt_shared->ndatabases; i++)
			used += (celerysalt_shared->databases[i].dboid != InvalidOid);
		if (used >= celerysalt_shared->ndatabases)
			return "no free slot: every one of celerysalt.max_databases is in use";
		return "not visited yet: the launcher comes when a transaction there creates the extension or publishes, at a reload, and every minute";
	}
	if (st->worker_pid != 0)
		return NULL;
	if (st->extension_missing)
		return "extension celerysalt not installed";
	if (st->start_failed)
		return "no background worker slot free: raise max_worker_processes";
	return "worker not running: starting, or restarting after a failure (see the server log)";
}

/*
 * _celerysalt_cluster_state() RETURNS SETOF record
 *		One row per database of the cluster: database, served (listed in
 *		celerysalt.databases), worker_pid, broker_connected, delivered_total,
 *		dead_lettered_total, returned_total, last_delivery_at, last_error,
 *		last_error_at, reason (why it has no worker, NULL when it has one),
 *		broker_node (the broker node its worker is connected to).
 */
Datum
_celerysalt_cluster_state(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;

	RequirePreload();
	InitMaterializedSRF(fcinfo, 0);
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tuple);
		DatabaseSlot *slot = DbslotFind(db->oid);
		Datum		values[12];
		bool		nulls[12] = {0};
		const char *reason;
		bool		served;
		DbslotState st;

		if (db->datistemplate)
			continue;
		served = GucDatabaseIsServed(NameStr(db->datname));
		if (slot != NULL)
			DbslotReadState(slot, &st);
		reason = no_worker_reason(db, served, slot, &st);
		values[0] = CStringGetTextDatum(NameStr(db->datname));
		values[1] = BoolGetDatum(served);
		for (int i = 2; i < 12; i++)
			nulls[i] = true;
		if (slot != NULL)
		{
			values[2] = Int32GetDatum(st.worker_pid);
			nulls[2] = (st.worker_pid == 0);
			values[3] = BoolGetDatum(st.broker_connected && st.worker_pid != 0);
			nulls[3] = false;
			values[4] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->delivered_total));
			values[5] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->dead_lettered_total));
			values[6] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->returned_total));
			nulls[4] = nulls[5] = nulls[6] = false;
			values[7] = TimestampTzGetDatum(st.last_delivery_at);
			nulls[7] = (st.last_delivery_at == 0);
			values[8] = CStringGetTextDatum(st.last_error);
			nulls[8] = (st.last_error[0] == '\0');
			values[9] = TimestampTzGetDatum(st.last_error_at);
			nulls[9] = (st.last_error_at == 0);
			values[11] = CStringGetTextDatum(st.broker_node);
			nulls[11] = !(st.broker_connected && st.worker_pid != 0 && st.broker_node[0] != '\0');
		}
		values[10] = reason ? CStringGetTextDatum(reason) : (Datum) 0;
		nulls[10] = (reason == NULL);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	return (Datum) 0;
}
