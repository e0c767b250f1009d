/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The delivery worker of one database: read committed events from the
 *		outbox in enqueue order, publish them to RabbitMQ in batches with
 *		publisher confirms, and only then delete them (logging them in
 *		celerysalt_events).  Also rotates and truncates outbox partitions,
 *		applies the delivered-log retention and dead-letters events the
 *		broker refuses for good.  The loop, the broker back-off and the
 *		counters live here; the SQL it runs is outbox_drain.c's.
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
#include "broker_failover.h"
#include "guc.h"
#include "dbslot.h"
#include "catalog.h"
#include "event.h"
#include "message.h"
#include "outbox_drain.h"
#include "processes.h"

#define RECONNECT_MIN_MS		100
#define RETENTION_EVERY_MS		(60 * 1000)
#define RETENTION_CHUNK			10000
/* After a subscriber registers: retry unroutable events 1, 2, 4, 8, 16, 32 s later. */
#define REQUEUE_BURST			6
/* A single event refused this many times in a row is dead-lettered. */
#define MAX_REJECTIONS			2

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
	bool		outage_logged;	/* a failure was logged since the last connect */
	char		connected_node[256];	/* the node last connected to (redacted) */

	/* settings that force a reconnect when changed */
	char	   *conn_signature;

	/* dead-lettering: after a rejected batch, publish one event at a time */
	int			isolate_remaining;
	int64		rejected_event_id;
	int			rejected_count;

	/* outbox partitions */
	bool		slot_clean[CELERYSALT_OUTBOX_SLOTS];	/* truncated, unused */
	bool		slot_dirty[CELERYSALT_OUTBOX_SLOTS];	/* may hold dead rows */
	TimestampTz rotated_at;
	TimestampTz retention_at;

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

	set_connected(false);
	DbslotSetWorkerError(ws.dbslot, message);
	BrokerAbort(ws.broker);
	ws.broker = NULL;

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
 * Remove a confirmed batch from the outbox and count it: events with
 * returned[i] (NULL: none) no queue received, and wait in
 * celerysalt_unroutable; the others were delivered.
 */
static void
finish_batch(OutboxEvent *events, int n, const bool *returned)
{
	int			nreturned = 0;

	if (!DrainFinish(events, n, returned, celerysalt_delivered_retention_s > 0))
		exit_extension_gone();
	for (int i = 0; i < n; i++)
	{
		ws.slot_dirty[events[i].slot] = true;
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

/* Delete delivered-log rows past celerysalt.delivered_retention. */
static void
apply_retention(void)
{
	TimestampTz now = GetCurrentTimestamp();
	int64		deleted;

	if (now < ws.retention_at)
		return;
	ws.retention_at = TimestampTzPlusMilliseconds(now, RETENTION_EVERY_MS);
	deleted = DrainRetain(celerysalt_delivered_retention_s, RETENTION_CHUNK);
	if (deleted < 0)
		exit_extension_gone();
	if (deleted == RETENTION_CHUNK)
		ws.retention_at = now;	/* more to do: next round */
}

/* Move one event that can never be sent to celerysalt_dead_letters, and say so. */
static void
dead_letter(OutboxEvent *ev, const char *reason)
{
	char		id[37];

	if (!DrainDeadLetter(ev, reason))
		exit_extension_gone();
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
											  events[i].version, events[i].correlation_id,
											  events[i].traceparent, events[i].tracestate);

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
	bool	   *returned_msgs;
	bool	   *returned;
	int			limit = ws.isolate_remaining > 0 ? 1 : celerysalt_batch_size;
	int			n;
	int			nmsgs;
	BrokerStatus status;
	StringInfoData error;
	MemoryContext old;

	if (!ensure_broker())
		return -1;

	n = DrainRead(limit, ws.batch_cxt, &events);
	if (n == DRAIN_GONE)
		exit_extension_gone();
	if (n == 0)
		broker_healthy();
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
	returned_msgs = palloc(sizeof(bool) * nmsgs);
	pgstat_report_activity(STATE_RUNNING, "celerysalt: publishing");
	/* mandatory: an event no queue receives comes back instead of vanishing */
	status = BrokerPublishBatch(ws.broker, msgs, nmsgs,
								celerysalt_unroutable == UNROUTABLE_KEEP, returned_msgs, &error);
	pgstat_report_activity(STATE_IDLE, NULL);
	MemoryContextSwitchTo(old);

	switch (status)
	{
		case BROKER_OK:
		case BROKER_RETURNED:
			/* an event is unroutable if any of its messages came back */
			returned = NULL;
			if (status == BROKER_RETURNED)
			{
				int			per_event = nmsgs / n;

				returned = palloc0(sizeof(bool) * n);
				for (int m = 0; m < nmsgs; m++)
					returned[m / per_event] |= returned_msgs[m];
			}
			broker_healthy();
			finish_batch(events, n, returned);	/* exits if the extension is gone */
			if (ws.isolate_remaining > 0)
				ws.isolate_remaining--;
			ws.rejected_count = 0;
			return n;

		case BROKER_FAILED:
			/* lost the node: this batch goes to the next one */
			broker_failed(error.data, true);
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
			broker_failed(error.data, false);
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
		rc = DrainTruncateIfEmpty(s);
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
		/* new broker settings: reconnect now, with them */
		BrokerDisconnect(ws.broker);
		ws.broker = NULL;
		set_connected(false);
		ws.connected_node[0] = '\0';	/* a new node is no failover */
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
		requeue_unroutable();

		if (ws.broker == NULL)
			timeout = Min(timeout, Max(1, TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
																		   ws.reconnect_at)));
		timeout = Min(timeout, celerysalt_outbox_rotation_s * 1000L);
		timeout = Min(timeout, Max(1, TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
																	  ws.requeue_at)));

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
