/*-------------------------------------------------------------------------
 *
 * dbslot.h
 *		Shared memory: per-database slots, the launcher latch, RequirePreload (dbslot.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef CELERYSALT_DBSLOT_H
#define CELERYSALT_DBSLOT_H

#include "celerysalt.h"
#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "datatype/timestamp.h"

/*
 * Per-database delivery state, shared by the database's worker (writer),
 * publishing backends (they read the insert slot and set the latch) and the
 * status view.  Fields below "mutex" are protected by it; the atomics are not.
 */
typedef struct DatabaseSlot
{
	Oid			dboid;			/* InvalidOid = free slot */
	pid_t		worker_pid;		/* 0 while no worker runs */
	Latch	   *worker_latch;	/* set to wake the worker */
	pg_atomic_uint32 insert_slot;	/* outbox partition publishers use */
	pg_atomic_uint64 delivered_total;
	pg_atomic_uint64 dead_lettered_total;
	pg_atomic_uint64 returned_total;	/* events parked as unroutable */
	pg_atomic_uint32 retry_unroutable;	/* set: send them again soon */

	slock_t		mutex;
	bool		broker_connected;
	bool		extension_missing;	/* last probe found no extension */
	bool		start_failed;	/* the launcher found no background worker
								 * slot (max_worker_processes) */
	bool		schema_follows_owner;	/* the extension's schema belongs to
										 * pg_database_owner (public) */
	TimestampTz paused_until;	/* launcher leaves the db alone until then */
	TimestampTz worker_started_at;
	TimestampTz last_delivery_at;
	TimestampTz last_error_at;
	char		last_error[256];
} DatabaseSlot;

typedef struct CelerysaltShared
{
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	int			ndatabases;		/* length of databases[] */
	DatabaseSlot databases[FLEXIBLE_ARRAY_MEMBER];
} CelerysaltShared;

extern CelerysaltShared *celerysalt_shared;

extern void DbslotInstallHooks(void);
extern DatabaseSlot *DbslotFind(Oid dboid);
extern DatabaseSlot *DbslotClaim(Oid dboid);
extern void DbslotSetWorkerError(DatabaseSlot *slot, const char *message);
extern void DbslotWakeLauncher(void);


extern bool celerysalt_preloaded;
extern void RequirePreload(void);

#endif							/* CELERYSALT_DBSLOT_H */
