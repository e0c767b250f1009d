/*-------------------------------------------------------------------------
 *
 * dbslot.c
 *		Shared memory: one DatabaseSlot per served database (worker latch,
 *		outbox insert slot, counters and broker state for the status view)
 *		and the launcher's latch; and whether the library was preloaded
 *		(RequirePreload), since everything here exists only then.
 *
 * Slots are claimed by the launcher before it starts a database's worker
 * and looked up by publishing backends by database OID.  A slot stays
 * claimed for the database's lifetime so counters survive worker restarts.
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"
#include "guc.h"
#include "dbslot.h"

CelerysaltShared *celerysalt_shared = NULL;

/* True when loaded through shared_preload_libraries. */
bool		celerysalt_preloaded = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void zero_counters(DatabaseSlot *slot, bool init);

static Size
shared_size(void)
{
	return add_size(offsetof(CelerysaltShared, databases),
					mul_size(celerysalt_max_databases, sizeof(DatabaseSlot)));
}

static void
shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(shared_size());
}

static void
shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	celerysalt_shared = ShmemInitStruct("celerysalt", shared_size(), &found);
	if (!found)
	{
		memset(celerysalt_shared, 0, shared_size());
		celerysalt_shared->ndatabases = celerysalt_max_databases;
		for (int i = 0; i < celerysalt_max_databases; i++)
		{
			DatabaseSlot *slot = &celerysalt_shared->databases[i];

			pg_atomic_init_u32(&slot->insert_slot, 0);
			pg_atomic_init_u32(&slot->retry_unroutable, 0);
			zero_counters(slot, true);
			SpinLockInit(&slot->mutex);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

void
DbslotInstallHooks(void)
{
	celerysalt_preloaded = true;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shmem_startup;
}

/*
 * DbslotFind
 *		The slot serving dboid, or NULL.  Lock-free: a slot's dboid only
 *		changes when the launcher claims a free one.
 */
DatabaseSlot *
DbslotFind(Oid dboid)
{
	if (celerysalt_shared == NULL)
		return NULL;
	for (int i = 0; i < celerysalt_shared->ndatabases; i++)
	{
		DatabaseSlot *slot = &celerysalt_shared->databases[i];

		if (slot->dboid == dboid)
			return slot;
	}
	return NULL;
}

/* Set one 64-bit counter to 0 (init: the first use of the memory). */
static inline void
zero_u64(pg_atomic_uint64 *v, bool init)
{
	if (init)
		pg_atomic_init_u64(v, 0);
	else
		pg_atomic_write_u64(v, 0);
}

/*
 * Set every counter and histogram of a slot to 0: when shared memory is
 * created (init) and when the launcher claims the slot for a database.
 */
static void
zero_counters(DatabaseSlot *slot, bool init)
{
	pg_atomic_uint64 *counters[] = {
		&slot->delivered_total, &slot->dead_lettered_total, &slot->returned_total,
		&slot->worker_starts_total, &slot->reconnects_total,
		&slot->validation_failures_total, &slot->follow_fired_total,
		&slot->follow_failed_total,
	};
	DbslotHistogram *hists[] = {&slot->rpc_duration, &slot->delivery_latency};

	for (int i = 0; i < (int) lengthof(counters); i++)
		zero_u64(counters[i], init);
	for (int i = 0; i < DBSLOT_RPC_OUTCOMES; i++)
		zero_u64(&slot->rpc_calls_total[i], init);
	for (int h = 0; h < (int) lengthof(hists); h++)
	{
		for (int b = 0; b <= DBSLOT_LATENCY_BUCKETS; b++)
			zero_u64(&hists[h]->buckets[b], init);
		zero_u64(&hists[h]->count, init);
		zero_u64(&hists[h]->sum_us, init);
	}
}

/*
 * DbslotClaim
 *		The slot for dboid, claiming a free one if needed; NULL when all are
 *		taken.  Only the launcher calls this, so claims never race.
 */
DatabaseSlot *
DbslotClaim(Oid dboid)
{
	DatabaseSlot *slot = DbslotFind(dboid);

	if (slot != NULL)
		return slot;
	for (int i = 0; i < celerysalt_shared->ndatabases; i++)
	{
		slot = &celerysalt_shared->databases[i];
		if (slot->dboid == InvalidOid)
		{
			SpinLockAcquire(&slot->mutex);
			slot->worker_pid = 0;
			slot->worker_latch = NULL;
			slot->broker_connected = false;
			slot->broker_node[0] = '\0';
			slot->extension_missing = false;
			slot->start_failed = false;
			slot->paused_until = 0;
			slot->last_delivery_at = 0;
			slot->last_error_at = 0;
			slot->last_error[0] = '\0';
			SpinLockRelease(&slot->mutex);
			pg_atomic_write_u32(&slot->insert_slot, 0);
			pg_atomic_write_u32(&slot->retry_unroutable, 0);
			zero_counters(slot, false);
			pg_write_barrier();
			slot->dboid = dboid;
			return slot;
		}
	}
	return NULL;
}

/* Record the worker's latest error (NULL clears it) for the status view. */
void
DbslotSetWorkerError(DatabaseSlot *slot, const char *message)
{
	SpinLockAcquire(&slot->mutex);
	if (message == NULL)
	{
		slot->last_error[0] = '\0';
		slot->last_error_at = 0;
	}
	else
	{
		strlcpy(slot->last_error, message, sizeof(slot->last_error));
		slot->last_error_at = GetCurrentTimestamp();
	}
	SpinLockRelease(&slot->mutex);
}

/* Wake the launcher, e.g. because a database now needs a worker. */
void
DbslotWakeLauncher(void)
{
	Latch	   *latch;

	if (celerysalt_shared == NULL)
		return;
	latch = celerysalt_shared->launcher_latch;
	if (latch != NULL)
		SetLatch(latch);
}

/*
 * RequirePreload
 *		Raise an error when a function that needs the worker is called in a
 *		server that did not preload the library.
 */
void
RequirePreload(void)
{
	if (!celerysalt_preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("celerysalt must be loaded via shared_preload_libraries"),
				 errhint("Add celerysalt to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/* The upper bounds of the latency buckets, in microseconds (1 ms to 10 s). */
const int64 DbslotLatencyBoundsUs[DBSLOT_LATENCY_BUCKETS] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000
};

/* Count one observation of us microseconds in h (celerysalt.track_metrics on). */
void
DbslotObserve(DbslotHistogram *h, int64 us)
{
	int			b = 0;

	if (!celerysalt_track_metrics)
		return;
	if (us < 0)
		us = 0;
	while (b < DBSLOT_LATENCY_BUCKETS && us > DbslotLatencyBoundsUs[b])
		b++;
	pg_atomic_fetch_add_u64(&h->buckets[b], 1);
	pg_atomic_fetch_add_u64(&h->count, 1);
	pg_atomic_fetch_add_u64(&h->sum_us, (uint64) us);
}

/*
 * Add one to the counter at offset (DBSLOT_COUNTER) of the current
 * database's slot, if it has one and celerysalt.track_metrics is on.
 * Counters are monotonic: a rolled-back transaction's increments stay, as
 * Prometheus expects.
 */
void
DbslotCount(size_t offset)
{
	DatabaseSlot *slot;

	if (!celerysalt_track_metrics)
		return;
	slot = DbslotFind(MyDatabaseId);
	if (slot != NULL)
		pg_atomic_fetch_add_u64((pg_atomic_uint64 *) ((char *) slot + offset), 1);
}

/*
 * DbslotReadState
 *		A consistent copy of the mutex-protected fields of slot, for the
 *		status views and the metrics.
 */
void
DbslotReadState(DatabaseSlot *slot, DbslotState *state)
{
	SpinLockAcquire(&slot->mutex);
	state->worker_pid = slot->worker_pid;
	state->broker_connected = slot->broker_connected;
	memcpy(state->broker_node, slot->broker_node, sizeof(state->broker_node));
	state->extension_missing = slot->extension_missing;
	state->start_failed = slot->start_failed;
	state->worker_started_at = slot->worker_started_at;
	state->last_delivery_at = slot->last_delivery_at;
	state->last_error_at = slot->last_error_at;
	memcpy(state->last_error, slot->last_error, sizeof(state->last_error));
	SpinLockRelease(&slot->mutex);
}
