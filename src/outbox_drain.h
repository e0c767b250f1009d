/*-------------------------------------------------------------------------
 *
 * outbox_drain.h
 *		The delivery worker's SQL (outbox_drain.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef CELERYSALT_OUTBOX_DRAIN_H
#define CELERYSALT_OUTBOX_DRAIN_H

#include "celerysalt.h"

#include "datatype/timestamp.h"
#include "storage/itemptr.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

/* One event read from the outbox. */
typedef struct OutboxEvent
{
	int64		event_id;
	pg_uuid_t	id;
	char	   *topic;
	Jsonb	   *payload;
	char	   *version;
	char	   *correlation_id;
	char	   *traceparent;	/* NULL when published without one */
	char	   *tracestate;
	int16		slot;
	ItemPointerData ctid;		/* in its partition: deleted by ctid */
	TimestampTz enqueued_at;
} OutboxEvent;

/* DrainRead's result when the extension is not installed */
#define DRAIN_GONE	(-2)

/* A row's place in the outbox (partition and ctid) as one sortable number. */
static inline uint64
DrainEventKey(const OutboxEvent *ev)
{
	return ((uint64) (uint16) ev->slot << 48) |
		((uint64) ItemPointerGetBlockNumberNoCheck(&ev->ctid) << 16) |
		(uint64) ItemPointerGetOffsetNumberNoCheck(&ev->ctid);
}

extern Oid	DrainBegin(void);
extern void DrainEnd(void);
extern int	DrainRead(int limit, const uint64 *skip, int nskip, MemoryContext cxt,
					  OutboxEvent **events_out);
extern void DrainSortKeys(uint64 *keys, int n);
extern bool DrainFinish(OutboxEvent *events, int n, const bool *returned,
						bool log_events);
extern int64 DrainRequeueUnroutable(int slot, int retention_s, bool requeue,
									 int64 *expired);
extern bool DrainDeadLetter(OutboxEvent *ev, const char *reason);
extern int	DrainTruncateIfEmpty(int slot);
extern int64 DrainRetain(int retention_s, int chunk);

#endif							/* CELERYSALT_OUTBOX_DRAIN_H */
