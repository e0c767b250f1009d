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
			pg_atomic_init_u64(&slot->delivered_total, 0);
			pg_atomic_init_u64(&slot->dead_lettered_total, 0);
			pg_atomic_init_u64(&slot->returned_total, 0);
			pg_atomic_init_u32(&slot->retry_unroutable, 0);
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
			slot->extension_missing = false;
			slot->start_failed = false;
			slot->paused_until = 0;
			slot->last_delivery_at = 0;
			slot->last_error_at = 0;
			slot->last_error[0] = '\0';
			SpinLockRelease(&slot->mutex);
			pg_atomic_write_u32(&slot->insert_slot, 0);
			pg_atomic_write_u64(&slot->delivered_total, 0);
			pg_atomic_write_u64(&slot->dead_lettered_total, 0);
			pg_atomic_write_u64(&slot->returned_total, 0);
			pg_atomic_write_u32(&slot->retry_unroutable, 0);
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
