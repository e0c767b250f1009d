/*-------------------------------------------------------------------------
 *
 * outbox_drain.h
 *		The delivery worker's SQL (outbox_drain.c): reading the log in
 *		batches by snapshot, recording the delivered position, and the
 *		log's partitions, unroutable events and dead letters.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CELERYSALT_OUTBOX_DRAIN_H
#define CELERYSALT_OUTBOX_DRAIN_H

#include "celerysalt.h"

#include "datatype/timestamp.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

/* One event read from the log. */
typedef struct OutboxEvent
{
	int64		event_id;
	uint64		txid;			/* the publishing transaction */
	pg_uuid_t	id;
	char	   *topic;
	Jsonb	   *payload;
	char	   *version;
	char	   *correlation_id;
	char	   *traceparent;	/* NULL when published without one */
	char	   *tracestate;
	int16		slot;
	TimestampTz enqueued_at;
} OutboxEvent;

/*
 * A snapshot of the transactions that had committed (pg_snapshot): txid is
 * visible when below xmin, or below xmax and not in xip (sorted).
 */
typedef struct LogSnapshot
{
	uint64		xmin;
	uint64		xmax;
	int			nxip;
	int			xip_capacity;
	uint64	   *xip;
} LogSnapshot;

/*
 * Where delivery stands in the log.  An event is past the position when its
 * transaction is visible in lo, or visible in hi and (txid, event_id) <=
 * (cursor_txid, cursor_event_id): the batch of the transactions that
 * committed between lo and hi is read in (txid, event_id) order, which
 * keeps a transaction's events together and in order.  cursor_txid >=
 * hi.xmax: that batch is done.  seq numbers the recorded positions.
 */
typedef struct DrainPosition
{
	Oid			schema;			/* the installation of the extension it is of */
	int64		seq;
	LogSnapshot lo;
	LogSnapshot hi;
	uint64		cursor_txid;
	int64		cursor_event_id;
} DrainPosition;

/* DrainRead's result when the extension is not installed */
#define DRAIN_GONE	(-2)

extern Oid	DrainBegin(void);
extern void DrainEnd(void);
extern void DrainPositionCopy(DrainPosition *dst, const DrainPosition *src, MemoryContext cxt);
extern bool DrainLoadPosition(DrainPosition *pos, MemoryContext cxt);
extern int	DrainRead(int limit, DrainPosition *pos, MemoryContext cxt, OutboxEvent **events_out,
					  bool *more);
extern bool DrainFinish(OutboxEvent *events, int n, const bool *returned,
						DrainPosition *const *positions, int npositions, int64 seq);
extern int64 DrainRequeueUnroutable(int slot, int retention_s, bool requeue,
									 int64 *expired);
extern bool DrainDeadLetter(OutboxEvent *ev, const char *reason, DrainPosition *pos, int64 seq);
extern int	DrainTruncateIfDelivered(int slot, int retention_s);
extern bool DrainAdoptRestoredLog(int64 *delivered, int64 *waiting);

#endif							/* CELERYSALT_OUTBOX_DRAIN_H */
