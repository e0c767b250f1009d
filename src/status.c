/*-------------------------------------------------------------------------
 *
 * status.c
 *		SQL access to the delivery worker's shared state: the function behind
 *		the celerysalt_status view.
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"
#include "conninfo.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "broker.h"
#include "guc.h"
#include "dbslot.h"

PG_FUNCTION_INFO_V1(_celerysalt_worker_state);

/*
 * _celerysalt_worker_state() RETURNS record
 *		The current database's worker: pid, broker_connected, broker (URL
 *		without password), delivered_total, dead_lettered_total,
 *		last_delivery_at, last_error, last_error_at, worker_started_at,
 *		returned_total (absent in 0.1.0's definition).
 */
Datum
_celerysalt_worker_state(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[10];
	bool		nulls[10] = {0};
	DatabaseSlot *slot;

	RequirePreload();
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	slot = DbslotFind(MyDatabaseId);
	values[2] = CStringGetTextDatum(ConninfoRedactAmqp(celerysalt_broker_url));
	if (slot == NULL)
	{
		for (int i = 0; i < 10; i++)
			nulls[i] = (i != 2);
		values[1] = BoolGetDatum(false);
		nulls[1] = false;
	}
	else
	{
		pid_t		pid;
		bool		connected;
		TimestampTz last_delivery_at;
		TimestampTz last_error_at;
		TimestampTz started_at;
		char		last_error[sizeof(slot->last_error)];

		SpinLockAcquire(&slot->mutex);
		pid = slot->worker_pid;
		connected = slot->broker_connected;
		last_delivery_at = slot->last_delivery_at;
		last_error_at = slot->last_error_at;
		started_at = slot->worker_started_at;
		memcpy(last_error, slot->last_error, sizeof(last_error));
		SpinLockRelease(&slot->mutex);

		values[0] = Int32GetDatum(pid);
		nulls[0] = (pid == 0);
		values[1] = BoolGetDatum(connected && pid != 0);
		values[3] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->delivered_total));
		values[4] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->dead_lettered_total));
		values[5] = TimestampTzGetDatum(last_delivery_at);
		nulls[5] = (last_delivery_at == 0);
		values[6] = CStringGetTextDatum(last_error);
		nulls[6] = (last_error[0] == '\0');
		values[7] = TimestampTzGetDatum(last_error_at);
		nulls[7] = (last_error_at == 0);
		values[8] = TimestampTzGetDatum(started_at);
		nulls[8] = (pid == 0 || started_at == 0);
		values[9] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->returned_total));
	}
	/* 0.1.0's definition has no returned_total: fill what it declares */
	if (desc->natts < 9 || desc->natts > 10)
		elog(ERROR, "_celerysalt_worker_state: unexpected result type");
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
