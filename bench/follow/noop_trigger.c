/*
 * noop_trigger.c
 *		The cheapest possible C row trigger, for the follow-action benchmark:
 *		it returns the new row unchanged.  The difference between it and no
 *		trigger is what PostgreSQL itself charges for calling any row trigger.
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "fmgr.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(bench_noop_trigger);

Datum
bench_noop_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	return PointerGetDatum(trigdata->tg_newtuple);
}
