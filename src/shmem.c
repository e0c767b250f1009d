/*-------------------------------------------------------------------------
 *
 * shmem.c
 *		Shared memory: one DatabaseSlot per served database (worker latch,
 *		outbox insert slot, counters and broker state for the status view)
 *		and the launcher's latch.
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

CelerysaltShared *celerysalt_shared = NULL;

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
			SpinLockInit(&slot->mutex);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

void
ShmemInstallHooks(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shmem_startup;
}

/*
 * ShmemFindDatabase
 *		The slot serving dboid, or NULL.  Lock-free: a slot's dboid only
 *		changes when the launcher claims a free one.
 */
DatabaseSlot *
ShmemFindDatabase(Oid dboid)
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
 * ShmemClaimDatabase
 *		The slot for dboid, claiming a free one if needed; NULL when all are
 *		taken.  Only the launcher calls this, so claims never race.
 */
DatabaseSlot *
ShmemClaimDatabase(Oid dboid)
{
	DatabaseSlot *slot = ShmemFindDatabase(dboid);

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
			slot->paused_until = 0;
			slot->last_delivery_at = 0;
			slot->last_error_at = 0;
			slot->last_error[0] = '\0';
			SpinLockRelease(&slot->mutex);
			pg_atomic_write_u32(&slot->insert_slot, 0);
			pg_atomic_write_u64(&slot->delivered_total, 0);
			pg_atomic_write_u64(&slot->dead_lettered_total, 0);
			pg_write_barrier();
			slot->dboid = dboid;
			return slot;
		}
	}
	return NULL;
}

/* Record the worker's latest error (NULL clears it) for the status view. */
void
ShmemSetWorkerError(DatabaseSlot *slot, const char *message)
{
	SpinLockAcquire(&slot->mutex);
	if (message == NULL)
		slot->last_error[0] = '\0';
	else
	{
		strlcpy(slot->last_error, message, sizeof(slot->last_error));
		slot->last_error_at = GetCurrentTimestamp();
	}
	SpinLockRelease(&slot->mutex);
}

/* Wake the launcher, e.g. because a database now needs a worker. */
void
ShmemWakeLauncher(void)
{
	Latch	   *latch;

	if (celerysalt_shared == NULL)
		return;
	latch = celerysalt_shared->launcher_latch;
	if (latch != NULL)
		SetLatch(latch);
}
