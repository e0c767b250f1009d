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
 * A latency histogram in shared memory, Prometheus style: cumulative counts
 * are computed when read; each bucket counts observations up to its bound.
 */
#define DBSLOT_LATENCY_BUCKETS 13	/* the bounds in DbslotLatencyBoundsUs */
typedef struct DbslotHistogram
{
	pg_atomic_uint64 buckets[DBSLOT_LATENCY_BUCKETS + 1];	/* last: above all */
	pg_atomic_uint64 count;
	pg_atomic_uint64 sum_us;
} DbslotHistogram;

#define DBSLOT_ERROR_LEN 256		/* last_error, NUL included */
#define DBSLOT_NODE_LEN 256		/* broker_node, NUL included */

/* RPC outcomes counted per database (rpc.c's RpcOutcome, pending excluded). */
#define DBSLOT_RPC_OUTCOMES 9

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

	/* metrics (celerysalt_metrics()), all since the server started */
	pg_atomic_uint64 worker_starts_total;
	pg_atomic_uint64 reconnects_total;
	pg_atomic_uint64 validation_failures_total;	/* publish intake, 23514 */
	pg_atomic_uint64 follow_fired_total;
	pg_atomic_uint64 follow_failed_total;
	pg_atomic_uint64 rpc_calls_total[DBSLOT_RPC_OUTCOMES];
	DbslotHistogram rpc_duration;
	DbslotHistogram delivery_latency;	/* enqueue to broker confirm */

	slock_t		mutex;
	bool		broker_connected;
	char		broker_node[DBSLOT_NODE_LEN];	/* the node connected to, password
												 * masked; "" when not connected */
	bool		extension_missing;	/* last probe found no extension */
	bool		start_failed;	/* the launcher found no background worker
								 * slot (max_worker_processes) */
	bool		schema_follows_owner;	/* the extension's schema belongs to
										 * pg_database_owner (public) */
	TimestampTz paused_until;	/* launcher leaves the db alone until then */
	TimestampTz worker_started_at;
	TimestampTz last_delivery_at;
	TimestampTz last_error_at;
	char		last_error[DBSLOT_ERROR_LEN];
} DatabaseSlot;

/* DbslotReadState's copy of a slot's mutex-protected fields. */
typedef struct DbslotState
{
	pid_t		worker_pid;
	bool		broker_connected;
	char		broker_node[DBSLOT_NODE_LEN];
	bool		extension_missing;
	bool		start_failed;
	TimestampTz worker_started_at;
	TimestampTz last_delivery_at;
	TimestampTz last_error_at;
	char		last_error[DBSLOT_ERROR_LEN];
} DbslotState;

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
extern void DbslotReadState(DatabaseSlot *slot, DbslotState *state);
extern void DbslotWakeLauncher(void);
extern const int64 DbslotLatencyBoundsUs[DBSLOT_LATENCY_BUCKETS];
extern void DbslotObserve(DbslotHistogram *h, int64 us);
extern void DbslotCount(size_t offset);

/* DbslotCount(DBSLOT_COUNTER(follow_fired_total)): one more in this database's slot */
#define DBSLOT_COUNTER(field) offsetof(DatabaseSlot, field)


extern bool celerysalt_preloaded;
extern void RequirePreload(void);

#endif							/* CELERYSALT_DBSLOT_H */
