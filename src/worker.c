/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The delivery worker of one database: read committed events from the
 *		log in batches by snapshot, publish them to RabbitMQ with publisher
 *		confirms, and only then record the delivered position (one row per
 *		finished batch, nothing per event).  Also rotates log partitions and
 *		truncates delivered ones after celerysalt.delivered_retention, and
 *		dead-letters events the broker refuses for good.  The loop, the
 *		window of batches, the broker back-off and the counters live here;
 *		the SQL it runs is outbox_drain.c's.
 *
 * The worker never waits idle for the broker while it has work: it keeps a
 * window of up to celerysalt.publish_window batches between their read and
 * their finish.  While the broker confirms the older ones (confirms stream
 * in, matched to batches by delivery tag: broker.c), the worker reads,
 * builds and publishes the next one, and finishes (records the position
 * after each, one transaction for all batches confirmed meanwhile) those
 * confirmed in full, oldest first.  Reads go on from where the last one
 * stopped (read_pos), finishes record where the confirmed ones end
 * (done_pos); a batch never spans two snapshots, and every batch's
 * position is recorded, so each delivered event has its delivered_at.  Order: the log is read in (txid, event_id) order and
 * published in that order on one channel, so the events of one transaction
 * reach a queue together and in order.
 *
 * No transaction is open while the worker talks to the broker, so it never
 * holds back the xmin horizon nor blocks DROP EXTENSION.  If it dies, loses
 * its connection or sees a refusal (nack, channel closed) before a batch's
 * position was recorded, that batch and every later one of the window is
 * read from done_pos and published again (after restart or reconnect): at
 * least once, at most one window (celerysalt.publish_window x
 * celerysalt.batch_size events) of duplicates.
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"

#include "access/transam.h"
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
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "broker.h"
#include "broker_failover.h"
#include "guc.h"
#include "dbslot.h"
#include "catalog.h"
#include "event.h"
#include "message.h"
#include "outbox_drain.h"
#include "processes.h"

#define RECONNECT_MIN_MS		100
/* After a subscriber registers: retry unroutable events 1, 2, 4, 8, 16, 32 s later. */
#define REQUEUE_BURST			6
/* A single event refused this many times in a row is dead-lettered. */
#define MAX_REJECTIONS			2
/* the largest celerysalt.publish_window (guc.c) */
#define MAX_WINDOW				16
/* outbox maintenance while batches are in flight, at most this often */
#define HOUSEKEEPING_EVERY_MS	1000

/* One batch of events between its read from the outbox and its finish. */
typedef struct Batch
{
	MemoryContext cxt;			/* everything below; reset when it leaves */
	OutboxEvent *events;
	int			nevents;
	int			per_event;		/* messages per event (dispatcher tasks) */
	BrokerBatch confirms;		/* what the broker said about each message */
	DrainPosition pos_after;	/* the position once this batch is delivered */
} Batch;

typedef struct WorkerState
{
	DatabaseSlot *dbslot;
	char	   *dbname;
	ResourceOwner owner;		/* for work outside transactions (SHA-1) */
	MemoryContext finish_cxt;	/* reset after every finish */
	BrokerConnection *broker;

	/* the window: batches read and not finished, oldest first, in a ring */
	Batch		window[MAX_WINDOW];
	int			window_head;	/* ring index of the oldest */
	int			window_count;
	bool		more_to_read;	/* the outbox may hold events not read yet */
	TimestampTz progress_at;	/* last confirm, or first publish awaiting one */
	bool		reconnect_pending;	/* new broker settings: once the window is empty */
	TimestampTz housekeeping_at;

	/* the log: how far read (window included), how far recorded delivered */
	DrainPosition read_pos;
	DrainPosition done_pos;

	/* broker outage handling */
	TimestampTz reconnect_at;
	int			reconnect_delay_ms;
	bool		outage_logged;	/* a failure was logged since the last connect */
	char		connected_node[256];	/* the node last connected to (redacted) */

	/* settings that force a reconnect when changed */
	char	   *conn_signature;

	/* dead-lettering: after a rejected batch, publish one event at a time */
	int			isolate_remaining;
	int64		rejected_event_id;
	int			rejected_count;

	/* log partitions */
	bool		slot_clean[CELERYSALT_OUTBOX_SLOTS];	/* truncated, unused */
	bool		slot_dirty[CELERYSALT_OUTBOX_SLOTS];	/* may hold events */
	TimestampTz rotated_at;

	bool		connected_once; /* a later connect is a reconnect */

	/* unroutable events: when to move them back into the outbox */
	TimestampTz requeue_at;
	int			requeue_burst;	/* quick retries left after a registration */
} WorkerState;

static WorkerState ws;

static void
worker_detach(int code, Datum arg)
{
	DatabaseSlot *slot = ws.dbslot;

	/* confirms awaited would only delay a polite close: drop it */
	if (ws.broker != NULL && BrokerAwaitingConfirms(ws.broker))
		BrokerAbort(ws.broker);
	else
		BrokerDisconnect(ws.broker);
	ws.broker = NULL;
	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	slot->worker_pid = 0;
	slot->worker_latch = NULL;
	slot->broker_connected = false;
	slot->broker_node[0] = '\0';
	SpinLockRelease(&slot->mutex);
}

/* The settings a connection depends on, as one string. */
static char *
connection_signature(void)
{
	return psprintf("%s\n%s\n%s\n%s\n%s\n%s\n%d", celerysalt_broker_url,
					celerysalt_broker_password_file, celerysalt_exchange,
					celerysalt_broker_tls_ca_file, celerysalt_broker_tls_cert_file,
					celerysalt_broker_tls_key_file, celerysalt_broker_tls_verify);
}

/* Show in the status views whether (and to which node) the worker is connected. */
static void
set_connected(bool connected)
{
	const char *node = connected ? BrokerFailoverNode() : "";

	SpinLockAcquire(&ws.dbslot->mutex);
	ws.dbslot->broker_connected = connected;
	strlcpy(ws.dbslot->broker_node, node, sizeof(ws.dbslot->broker_node));
	SpinLockRelease(&ws.dbslot->mutex);
}

/*
 * Record a broker failure: status view, one log line per change of state
 * of each node (not per retry), then the next attempt.  node_failed: the
 * node could not be reached or dropped the connection, so the next node of
 * celerysalt.broker_url is tried, at once while some node of this round
 * has not failed yet (kombu's failover); otherwise (a refusal by a working
 * node, or every node failed) after a capped exponential backoff.
 */
static void
broker_failed(const char *message, bool node_failed)
{
	int			nnodes = BrokerFailoverNodeCount();
	char	   *node = pstrdup(BrokerFailoverNode());
	bool		new_error;
	bool		pause;

	Assert(ws.broker == NULL);	/* the caller dropped (or never had) the connection */
	DbslotSetWorkerError(ws.dbslot, message);

	new_error = BrokerFailoverErrorIsNew(message);
	pause = node_failed ? BrokerFailoverNext() : true;
	if (pause)
		ws.reconnect_delay_ms = ws.reconnect_delay_ms == 0 ? RECONNECT_MIN_MS
			: Min(ws.reconnect_delay_ms * 2, celerysalt_reconnect_max_delay_ms);

	if (new_error && nnodes == 1)
		ereport(LOG,
				(errmsg("celerysalt cannot deliver events: %s", message),
				 errdetail("Events stay in the outbox; the worker retries with a pause of up to %d ms.",
						   celerysalt_reconnect_max_delay_ms)));
	else if (new_error && !pause)
		ereport(LOG,
				(errmsg("celerysalt cannot deliver events: %s", message),
				 errdetail("Broker node %s. Events stay in the outbox; the worker tries node %s now.",
						   node, BrokerFailoverNode())));
	else if (new_error)
		ereport(LOG,
				(errmsg("celerysalt cannot deliver events: %s", message),
				 errdetail("Broker node %s. Events stay in the outbox; the worker tries node %s after a pause of %d ms.",
						   node, BrokerFailoverNode(), ws.reconnect_delay_ms)));
	ws.outage_logged |= new_error;
	pfree(node);

	ws.reconnect_at = pause ? TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														  ws.reconnect_delay_ms)
		: 0;
}

/*
 * The connection works: a batch was confirmed, or there was nothing to
 * publish.  Only then do the backoff and the node's logged failure start
 * afresh: a node that accepts connections but never confirms (a quorum
 * queue that lost its majority) is retried with a growing pause and logged
 * once, not at every attempt.
 */
static void
broker_healthy(void)
{
	ws.reconnect_delay_ms = 0;
	BrokerFailoverHealthy();
}

/* Connect if needed and due.  Returns whether a connection is ready. */
static bool
ensure_broker(void)
{
	StringInfoData error;
	const char *node;

	if (ws.broker != NULL)
		return true;
	if (GetCurrentTimestamp() < ws.reconnect_at)
		return false;

	initStringInfo(&error);
	ws.broker = BrokerFailoverConnect(&error);
	if (ws.broker == NULL)
	{
		broker_failed(error.data, true);
		pfree(error.data);
		return false;
	}
	pfree(error.data);

	node = BrokerFailoverNode();
	if (ws.outage_logged ||
		(ws.connected_node[0] != '\0' && strcmp(ws.connected_node, node) != 0))
	{
		if (BrokerFailoverNodeCount() == 1)
			ereport(LOG,
					(errmsg("celerysalt connected to the broker again; delivering the waiting events")));
		else
			ereport(LOG,
					(errmsg("celerysalt connected to the broker again; delivering the waiting events"),
					 errdetail("Broker node %s.", node)));
	}
	strlcpy(ws.connected_node, node, sizeof(ws.connected_node));
	ws.outage_logged = false;
	/* the backoff is reset by broker_healthy: connecting is not delivering */
	if (ws.connected_once)
		pg_atomic_fetch_add_u64(&ws.dbslot->reconnects_total, 1);
	ws.connected_once = true;
	set_connected(true);
	DbslotSetWorkerError(ws.dbslot, NULL);
	return true;
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
 * Record confirmed events as delivered (positions: the position after each
 * of their batches, in order) and count them: events with returned[i]
 * (NULL: none) no queue received, and wait in celerysalt_unroutable; the
 * others were delivered.
 */
static void
finish_batch(OutboxEvent *events, int n, const bool *returned, DrainPosition *const *positions,
			 int npositions)
{
	int			nreturned = 0;
	int64		seq = ws.done_pos.seq + 1;

	if (!DrainFinish(events, n, returned, positions, npositions, seq))
		exit_extension_gone();
	DrainPositionCopy(&ws.done_pos, positions[npositions - 1], TopMemoryContext);
	ws.done_pos.seq = seq + npositions - 1;
	for (int i = 0; i < n; i++)
	{
		if (returned != NULL && returned[i])
		{
			if (nreturned == 0)
				ereport(LOG,
						(errmsg("celerysalt: no queue is bound for topic \"%s\"; its event waits in celerysalt_unroutable",
								events[i].topic),
						 errdetail("It is sent again when a subscriber registers, every celerysalt.unroutable_retry_interval, "
								   "and becomes a dead letter after celerysalt.unroutable_retention.")));
			nreturned++;
		}
	}
	if (celerysalt_track_metrics)
	{
		TimestampTz now = GetCurrentTimestamp();

		for (int i = 0; i < n; i++)
			if (returned == NULL || !returned[i])
				DbslotObserve(&ws.dbslot->delivery_latency, now - events[i].enqueued_at);
	}
	pg_atomic_fetch_add_u64(&ws.dbslot->delivered_total, n - nreturned);
	if (nreturned > 0)
		pg_atomic_fetch_add_u64(&ws.dbslot->returned_total, nreturned);
	SpinLockAcquire(&ws.dbslot->mutex);
	ws.dbslot->last_delivery_at = GetCurrentTimestamp();
	SpinLockRelease(&ws.dbslot->mutex);
}

/*
 * Move unroutable events back into the outbox (to be published again) and
 * dead-letter those past celerysalt.unroutable_retention: every
 * celerysalt.unroutable_retry_interval, and in a quick burst after a
 * subscriber registered (celerysalt_retry_unroutable).
 */
static void
requeue_unroutable(void)
{
	TimestampTz now = GetCurrentTimestamp();
	int64		requeued;
	int64		expired;

	if (pg_atomic_exchange_u32(&ws.dbslot->retry_unroutable, 0) != 0)
	{
		ws.requeue_burst = REQUEUE_BURST;
		ws.requeue_at = now;
	}
	if (now < ws.requeue_at)
		return;
	/* with celerysalt.unroutable = drop they only wait for their dead-lettering */
	requeued = DrainRequeueUnroutable((int) pg_atomic_read_u32(&ws.dbslot->insert_slot),
									  celerysalt_unroutable_retention_s,
									  celerysalt_unroutable == UNROUTABLE_KEEP, &expired);
	if (requeued < 0)
		exit_extension_gone();
	if (requeued > 0)
	{
		ws.slot_dirty[pg_atomic_read_u32(&ws.dbslot->insert_slot)] = true;
		SetLatch(MyLatch);		/* deliver them now */
	}
	if (expired > 0)
	{
		pg_atomic_fetch_add_u64(&ws.dbslot->dead_lettered_total, expired);
		ereport(WARNING,
				(errmsg("celerysalt moved " INT64_FORMAT " events no queue received to celerysalt_dead_letters", expired),
				 errdetail("They waited longer than celerysalt.unroutable_retention.")));
	}
	if (ws.requeue_burst > 0)
	{
		ws.requeue_burst--;
		ws.requeue_at = TimestampTzPlusMilliseconds(now, 1000L << (REQUEUE_BURST - 1 - ws.requeue_burst));
	}
	else
		ws.requeue_at = TimestampTzPlusMilliseconds(now, celerysalt_unroutable_retry_s * 1000L);
}

/*
 * Move one event that can never be sent to celerysalt_dead_letters, and say
 * so.  pos: the position right after it, to record when no batch of the
 * window will (NULL: a later finish records it).
 */
static void
dead_letter(OutboxEvent *ev, const char *reason, DrainPosition *pos)
{
	char		id[37];
	int64		seq = ws.done_pos.seq + 1;

	if (!DrainDeadLetter(ev, reason, pos, seq))
		exit_extension_gone();
	if (pos != NULL)
	{
		DrainPositionCopy(&ws.done_pos, pos, TopMemoryContext);
		ws.done_pos.seq = seq;
	}
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
											  events[i].version, events[i].correlation_id,
											  events[i].traceparent, events[i].tracestate);

		if (problem != NULL)
			dead_letter(&events[i], problem, NULL);
		else
			events[kept++] = events[i];
	}
	return kept;
}

/*
 * Build the Celery messages of events: one per configured dispatcher task
 * and event, in the current memory context.
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
		OutboxEvent *ev = &events[i];
		/* a tracestate travels only with its traceparent */
		const char *tracestate = ev->traceparent ? ev->tracestate : NULL;
		EventMeta	meta = {false, ev->version ? ev->version : "v1",
		ev->correlation_id, ev->traceparent, tracestate};
		ListCell   *lc;

		resetStringInfo(&payload);
		MessageAppendPayload(&payload, ev->payload, &meta);
		foreach(lc, tasks)
		{
			MessageBuild(&msgs[m], lfirst(lc), &ev->id,
						 foreach_current_index(lc), ev->topic, payload.data);
			msgs[m].traceparent = ev->traceparent;
			msgs[m].tracestate = tracestate;
			m++;
		}
	}
	*nmsgs = m;
	return msgs;
}

/* ------------------------------------------------------------------------
 * The window of batches
 * ------------------------------------------------------------------------
 */

/* The i-th oldest batch of the window (i == window_count: the next free one). */
static inline Batch *
window_at(int i)
{
	return &ws.window[(ws.window_head + i) % MAX_WINDOW];
}

/* Batches the window may hold now: one while looking for a refused event. */
static inline int
window_limit(void)
{
	return ws.isolate_remaining > 0 ? 1 : Min(celerysalt_publish_window, MAX_WINDOW);
}

/* A batch leaves the window: its memory goes (the batch is the oldest). */
static void
window_pop(void)
{
	Batch	   *b = window_at(0);

	MemoryContextReset(b->cxt);
	b->events = NULL;
	b->nevents = 0;
	memset(&b->pos_after, 0, sizeof(b->pos_after));
	ws.window_head = (ws.window_head + 1) % MAX_WINDOW;
	ws.window_count--;
}

/* Batches at the head of the window that the broker confirmed in full, none refused. */
static int
window_confirmed(void)
{
	int			k = 0;

	while (k < ws.window_count && window_at(k)->confirms.unconfirmed == 0 &&
		   !window_at(k)->confirms.nacked)
		k++;
	return k;
}

/*
 * Finish the k oldest batches of the window, confirmed in full: one
 * transaction removes them from the outbox (finish_batch); an event is
 * unroutable if any of its messages came back.
 */
static void
window_finish(int k)
{
	MemoryContext old;
	OutboxEvent *events;
	bool	   *returned;
	DrainPosition **positions;
	bool		any_returned = false;
	int			total = 0;
	int			e = 0;

	if (k <= 0)
		return;
	for (int i = 0; i < k; i++)
		total += window_at(i)->nevents;
	old = MemoryContextSwitchTo(ws.finish_cxt);
	events = palloc(sizeof(OutboxEvent) * total);
	returned = palloc0(sizeof(bool) * total);
	positions = palloc(sizeof(DrainPosition *) * k);
	for (int i = 0; i < k; i++)
	{
		Batch	   *b = window_at(i);

		positions[i] = &b->pos_after;
		memcpy(&events[e], b->events, sizeof(OutboxEvent) * b->nevents);
		if (b->confirms.nreturned > 0)
		{
			for (int m = 0; m < b->confirms.nmsgs; m++)
				returned[e + m / b->per_event] |= b->confirms.returned[m];
			any_returned = true;
		}
		e += b->nevents;
	}
	MemoryContextSwitchTo(old);

	broker_healthy();
	/* exits if the extension is gone */
	finish_batch(events, total, any_returned ? returned : NULL, positions, k);
	for (int i = 0; i < k; i++)
		window_pop();
	MemoryContextReset(ws.finish_cxt);
	ws.isolate_remaining = Max(0, ws.isolate_remaining - k);
	ws.rejected_count = 0;
}

/*
 * The broker connection failed (BROKER_FAILED) or the broker refused a
 * message (BROKER_REJECTED: a nack, a closed channel, a message the library
 * cannot encode).  Finish the batches confirmed in full before the first
 * other one and forget the rest: their events stay in the outbox and are
 * read and published again after the reconnect (at most one window of
 * duplicates).  An outage backs off; a refusal of a batch of several events
 * reconnects at once and publishes that batch one event at a time to find
 * the culprit, and an event refused MAX_REJECTIONS times in a row on its own
 * is dead-lettered.
 */
static void
window_failed(BrokerStatus status, const char *message)
{
	int			done = window_confirmed();
	Batch	   *culprit = done < ws.window_count ? window_at(done) : NULL;

	/* the connection links the batches about to be forgotten: drop it first */
	set_connected(false);
	BrokerAbort(ws.broker);
	ws.broker = NULL;
	ws.more_to_read = true;

	window_finish(done);		/* culprit keeps its slot and memory */

	if (status == BROKER_REJECTED && culprit != NULL && culprit->nevents > 1)
	{
		/*
		 * The channel is closed, not the broker gone: reconnect at once and
		 * publish this batch one event at a time.
		 */
		DbslotSetWorkerError(ws.dbslot, message);
		ws.isolate_remaining = culprit->nevents;
		SetLatch(MyLatch);
	}
	else
	{
		/* an outage, or a single event refused: back off like an outage */
		broker_failed(message, status == BROKER_FAILED);
		if (status == BROKER_REJECTED && culprit != NULL)
		{
			if (ws.rejected_event_id == culprit->events[0].event_id)
				ws.rejected_count++;
			else
			{
				ws.rejected_event_id = culprit->events[0].event_id;
				ws.rejected_count = 1;
			}
			if (ws.rejected_count >= MAX_REJECTIONS)
			{
				/* the oldest batch left, of this one event: record past it */
				dead_letter(&culprit->events[0], message, &culprit->pos_after);
				ws.rejected_count = 0;
				if (ws.isolate_remaining > 0)
					ws.isolate_remaining--;
			}
		}
	}

	while (ws.window_count > 0)
		window_pop();
	/* read again what was not recorded delivered */
	DrainPositionCopy(&ws.read_pos, &ws.done_pos, TopMemoryContext);
}

/*
 * Take in what the broker has sent (confirms, returns) without waiting.
 * A refusal or a lost connection fails the window; so does a broker that
 * confirmed nothing for celerysalt.broker_timeout while messages wait.
 */
static void
pump(void)
{
	StringInfoData error;
	BrokerStatus status;
	int			confirmed;

	if (ws.broker == NULL || !BrokerAwaitingConfirms(ws.broker))
		return;
	initStringInfo(&error);
	status = BrokerPoll(ws.broker, &confirmed, &error);
	if (status != BROKER_OK)
	{
		window_failed(status, error.data);
		pfree(error.data);
		return;
	}
	if (confirmed > 0)
		ws.progress_at = GetCurrentTimestamp();
	for (int i = 0; i < ws.window_count; i++)
		if (window_at(i)->confirms.nacked)
		{
			appendStringInfo(&error, "broker rejected (nacked) messages of a batch of %d",
							 window_at(i)->confirms.nmsgs);
			window_failed(BROKER_REJECTED, error.data);
			pfree(error.data);
			return;
		}
	if (BrokerAwaitingConfirms(ws.broker) &&
		TimestampDifferenceExceeds(ws.progress_at, GetCurrentTimestamp(),
								   celerysalt_broker_timeout_ms))
	{
		int			waiting = 0;

		for (int i = 0; i < ws.window_count; i++)
			waiting += window_at(i)->confirms.unconfirmed;
		appendStringInfo(&error, "timed out after %d ms waiting for the broker to confirm %d messages",
						 celerysalt_broker_timeout_ms, waiting);
		window_failed(BROKER_FAILED, error.data);
	}
	pfree(error.data);
}

/*
 * Read the next batch from the outbox, leaving out the events already in
 * the window; dead-letter what can never be sent; build its messages and
 * publish them without waiting for confirms.  Returns the number of events
 * read (0: the outbox holds no more; more_to_read is cleared when nothing
 * more can be read now), or -1 when nothing can be published
 * now (broker down or failed, outbox locked).
 */
static int
publish_next_batch(void)
{
	int			limit = ws.isolate_remaining > 0 ? 1 : celerysalt_batch_size;
	MemoryContext caller = CurrentMemoryContext;
	Batch	   *b;
	OutboxEvent *events;
	CeleryMessage *msgs;
	int			n;
	int			nmsgs;
	bool		more;
	bool		was_waiting;
	BrokerStatus status;
	StringInfoData error;

	if (!ensure_broker())
		return -1;

	b = window_at(ws.window_count);
	if (b->cxt == NULL)
		b->cxt = AllocSetContextCreate(TopMemoryContext, "celerysalt batch",
									   ALLOCSET_DEFAULT_SIZES);

	/* (transactions end in TopMemoryContext: switch to the batch's after each) */
	n = DrainRead(limit, &ws.read_pos, b->cxt, &events, &more);
	if (n == DRAIN_GONE)
		exit_extension_gone();
	if (n >= 0 && !more)
		ws.more_to_read = false;
	if (n == 0 && ws.window_count == 0)
		broker_healthy();		/* connected, nothing waits: a good state */
	if (n <= 0)
	{
		/* nothing to publish: empty or locked */
		MemoryContextSwitchTo(caller);
		MemoryContextReset(b->cxt);
		b->nevents = 0;
		return n;
	}
	DrainPositionCopy(&b->pos_after, &ws.read_pos, b->cxt);
	MemoryContextSwitchTo(b->cxt);
	b->nevents = dead_letter_unsendable(events, n);
	b->events = events;
	if (b->nevents == 0)
	{
		/*
		 * All dead-lettered: nothing to publish, but the position after them
		 * is recorded in turn, as an empty batch of the window.
		 */
		MemoryContextSwitchTo(caller);
		memset(&b->confirms, 0, sizeof(b->confirms));
		b->per_event = 1;
		ws.window_count++;
		return n;
	}

	/* task ids for further dispatchers use pg_cryptohash: needs an owner */
	CurrentResourceOwner = ws.owner;
	msgs = build_messages(events, b->nevents, &nmsgs);
	CurrentResourceOwner = NULL;
	b->per_event = nmsgs / b->nevents;

	pgstat_report_activity(STATE_RUNNING, "celerysalt: publishing");
	was_waiting = BrokerAwaitingConfirms(ws.broker);
	MemoryContextSwitchTo(caller);
	initStringInfo(&error);
	/* the confirm arrays live with the batch */
	MemoryContextSwitchTo(b->cxt);
	/* mandatory: an event no queue receives comes back instead of vanishing */
	status = BrokerPublishAsync(ws.broker, &b->confirms, msgs, nmsgs,
								celerysalt_unroutable == UNROUTABLE_KEEP, &error);
	MemoryContextSwitchTo(caller);
	ws.window_count++;
	if (!was_waiting)
		ws.progress_at = GetCurrentTimestamp();	/* the confirm clock starts */
	if (status != BROKER_OK)
	{
		window_failed(status, error.data);
		n = -1;
	}
	pfree(error.data);
	return n;
}

/*
 * A commit that set the latch since the last wait: take it now, so that
 * its events are read in this round (before a finish and its WAL flush)
 * rather than after the next wait.  ResetLatch before the read: a commit
 * after it sets the latch again.
 */
static void
take_wakeup(void)
{
	if (MyLatch->is_set)
	{
		ResetLatch(MyLatch);
		ws.more_to_read = true;
	}
}

/*
 * Publish batches while the window has room and the outbox may hold more.
 * Returns false when delivery cannot go on now (broker down, outbox locked).
 */
static bool
fill_window(void)
{
	while (ws.more_to_read && !ws.reconnect_pending && ws.window_count < window_limit())
	{
		int			n = publish_next_batch();	/* clears more_to_read */

		if (n < 0)
			return false;
		pump();					/* keep the receive buffer drained */
		CHECK_FOR_INTERRUPTS();
	}
	return true;
}

/*
 * Log maintenance: move publishers to a clean partition every
 * celerysalt.outbox_rotation (when one is), and truncate partitions whose
 * events were all delivered celerysalt.delivered_retention ago.  TRUNCATE
 * needs an exclusive lock; it is only tried conditionally, so a transaction
 * that published long ago and is still open just postpones it.
 */
static void
maintain_outbox(void)
{
	uint32		current = pg_atomic_read_u32(&ws.dbslot->insert_slot);
	TimestampTz now = GetCurrentTimestamp();

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
		int			rc;

		if (s == (int) current || !ws.slot_dirty[s])
			continue;
		rc = DrainTruncateIfDelivered(s, celerysalt_delivered_retention_s);
		if (rc < 0)
			exit_extension_gone();
		if (rc > 0)
		{
			ws.slot_dirty[s] = false;
			ws.slot_clean[s] = true;
		}
	}
}

static void
reload_config(void)
{
	char	   *signature;

	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	/* a shorter celerysalt.unroutable_retry_interval applies at once */
	ws.requeue_at = Min(ws.requeue_at,
						TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													celerysalt_unroutable_retry_s * 1000L));
	signature = connection_signature();
	if (strcmp(signature, ws.conn_signature) != 0)
	{
		/* new broker settings: reconnect with them once the window is confirmed */
		ws.reconnect_pending = true;
		pfree(ws.conn_signature);
		ws.conn_signature = signature;
	}
	else
		pfree(signature);
}

/* Reconnect for new broker settings, once no batch awaits its confirms. */
static void
reconnect_if_pending(void)
{
	if (!ws.reconnect_pending || ws.window_count > 0)
		return;
	BrokerDisconnect(ws.broker);
	ws.broker = NULL;
	set_connected(false);
	ws.connected_node[0] = '\0';	/* a new node is no failover */
	ws.reconnect_at = 0;
	ws.reconnect_delay_ms = 0;
	ws.reconnect_pending = false;
	ws.more_to_read = true;
}

/*
 * Outbox maintenance, retention and unroutable events: whenever the window
 * is empty, and at most every HOUSEKEEPING_EVERY_MS while it is not.
 */
static void
housekeeping(void)
{
	TimestampTz now = GetCurrentTimestamp();

	if (ws.window_count > 0 && now < ws.housekeeping_at)
		return;
	ws.housekeeping_at = TimestampTzPlusMilliseconds(now, HOUSEKEEPING_EVERY_MS);
	maintain_outbox();
	requeue_unroutable();
}

/* How long the worker may sleep (ms): the nearest deadline. */
static long
wait_timeout(void)
{
	TimestampTz now = GetCurrentTimestamp();
	long		timeout = celerysalt_poll_interval_ms;

	if (ws.broker == NULL)
		timeout = Min(timeout, TimestampDifferenceMilliseconds(now, ws.reconnect_at));
	else if (BrokerAwaitingConfirms(ws.broker))
		timeout = Min(timeout, TimestampDifferenceMilliseconds(now,
															   TimestampTzPlusMilliseconds(ws.progress_at,
																						   celerysalt_broker_timeout_ms)));
	if (ws.window_count > 0)
		timeout = Min(timeout, TimestampDifferenceMilliseconds(now, ws.housekeeping_at));
	timeout = Min(timeout, celerysalt_outbox_rotation_s * 1000L);
	timeout = Min(timeout, TimestampDifferenceMilliseconds(now, ws.requeue_at));
	return Max(1, timeout);
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
	ws.finish_cxt = AllocSetContextCreate(TopMemoryContext, "celerysalt finish",
										  ALLOCSET_DEFAULT_SIZES);
	ws.more_to_read = true;		/* events may have waited for this worker */
	ws.owner = ResourceOwnerCreate(NULL, "celerysalt worker");

	SpinLockAcquire(&ws.dbslot->mutex);
	ws.dbslot->worker_pid = MyProcPid;
	ws.dbslot->worker_latch = MyLatch;
	ws.dbslot->extension_missing = false;
	ws.dbslot->worker_started_at = GetCurrentTimestamp();
	SpinLockRelease(&ws.dbslot->mutex);
	before_shmem_exit(worker_detach, (Datum) 0);
	pg_atomic_fetch_add_u64(&ws.dbslot->worker_starts_total, 1);

	/* A database without the extension needs no worker. */
	if (!OidIsValid(DrainBegin()))
	{
		DrainEnd();
		SpinLockAcquire(&ws.dbslot->mutex);
		ws.dbslot->extension_missing = true;
		SpinLockRelease(&ws.dbslot->mutex);
		proc_exit(0);
	}
	ws.dbname = MemoryContextStrdup(TopMemoryContext, get_database_name(MyDatabaseId));
	{
		bool		follows = CatalogSchemaFollowsDatabaseOwner(CatalogExtensionSchema(false));

		SpinLockAcquire(&ws.dbslot->mutex);
		ws.dbslot->schema_follows_owner = follows;
		SpinLockRelease(&ws.dbslot->mutex);
	}
	DrainEnd();
	if (!DrainLoadPosition(&ws.done_pos, TopMemoryContext))
		exit_extension_gone();
	if (ws.done_pos.hi.xmax > U64FromFullTransactionId(ReadNextFullTransactionId()))
	{
		/* the position lies in this cluster's future: restored from another one */
		int64		delivered;
		int64		waiting;

		if (!DrainAdoptRestoredLog(&delivered, &waiting) ||
			!DrainLoadPosition(&ws.done_pos, TopMemoryContext))
			exit_extension_gone();
		ereport(LOG,
				(errmsg("celerysalt adopted an event log restored from another cluster: " INT64_FORMAT " delivered events kept, " INT64_FORMAT " waiting events to deliver",
						delivered, waiting),
				 errdetail("Its transaction ids were ahead of this cluster's (pg_dump and restore); docs/architecture.md, \"Restoring a dump\".")));
	}
	DrainPositionCopy(&ws.read_pos, &ws.done_pos, TopMemoryContext);
	ereport(LOG, (errmsg("celerysalt worker started for database \"%s\"", ws.dbname)));

	for (;;)
	{
		int			events = WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH;
		pgsocket	sock = PGINVALID_SOCKET;
		int			rc;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
			reload_config();

		/*
		 * Take in the broker's confirms; keep the broker busy first (publish
		 * into the room the window has), then do the database work for the
		 * batches it confirmed, then publish into the room that made.
		 */
		pump();
		take_wakeup();
		fill_window();
		window_finish(window_confirmed());
		take_wakeup();
		fill_window();
		reconnect_if_pending();
		housekeeping();

		/* sleep until a commit, a frame from the broker or the next deadline */
		if (ws.broker != NULL && BrokerAwaitingConfirms(ws.broker))
		{
			events |= WL_SOCKET_READABLE;
			sock = BrokerSocket(ws.broker);
			pgstat_report_activity(STATE_RUNNING, "celerysalt: publishing");
		}
		else
			pgstat_report_activity(STATE_IDLE, NULL);
		rc = WaitLatchOrSocket(MyLatch, events, sock, wait_timeout(), PG_WAIT_EXTENSION);
		if (rc & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			ws.more_to_read = true;
		}
		if (rc & WL_TIMEOUT)
			ws.more_to_read = true; /* the safety net of celerysalt.poll_interval */
	}
}
