/*-------------------------------------------------------------------------
 *
 * launcher.c
 *		The launcher: one static background worker that starts a delivery
 *		worker (worker.c) for every database that has the extension, restarts
 *		workers that failed, and stops a database's worker before DROP
 *		DATABASE so it never hangs.  Its utility hook also wakes the
 *		database's worker after COMMIT PREPARED (a prepared transaction's
 *		events become visible then).
 *
 * The launcher connects to no database and reads pg_database, a shared
 * catalog.  A worker started in a database without the extension notes it
 * in its DatabaseSlot and exits; that database is probed again only when a
 * transaction in it runs CREATE EXTENSION or publishes (both wake the
 * launcher at commit).  It starts after recovery, so a hot standby runs no
 * worker.
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"

#include <signal.h>

#include "access/htup_details.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "utils/acl.h"
#include "catalog/namespace.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"
#include "guc.h"
#include "dbslot.h"
#include "catalog.h"
#include "outbox.h"
#include "processes.h"

static void stop_worker_for_database(Oid dboid);

/* How long the launcher sleeps when nothing is due. */
#define LAUNCHER_NAP_MS			(60 * 1000)
/* Restart delay after a worker failed: doubles up to the maximum. */
#define RESTART_MIN_MS			1000
#define RESTART_MAX_MS			(60 * 1000)
/* A worker that ran this long resets the restart delay. */
#define STABLE_RUN_MS			(60 * 1000)
/* How long DROP DATABASE keeps the launcher away from the database. */
#define DROPDB_PAUSE_MS			(30 * 1000)

typedef struct LaunchedWorker
{
	BackgroundWorkerHandle *handle;
	TimestampTz started_at;
	TimestampTz restart_at;
	int			restart_delay_ms;
} LaunchedWorker;

typedef struct DatabaseEntry
{
	Oid			oid;
	char		name[NAMEDATALEN];
} DatabaseEntry;

static ProcessUtility_hook_type prev_process_utility = NULL;

static void launcher_process_utility(PlannedStmt *pstmt, const char *queryString,
									 bool readOnlyTree, ProcessUtilityContext context,
									 ParamListInfo params, QueryEnvironment *queryEnv,
									 DestReceiver *dest, QueryCompletion *qc);

/*
 * LauncherRegister
 *		Register the launcher and the utility hook.  Called from _PG_init
 *		while shared_preload_libraries is processed.
 */
void
LauncherRegister(void)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = 5;
	strlcpy(bgw.bgw_library_name, "celerysalt", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, "CelerysaltLauncherMain", BGW_MAXLEN);
	strlcpy(bgw.bgw_name, "celerysalt launcher", BGW_MAXLEN);
	strlcpy(bgw.bgw_type, "celerysalt launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&bgw);

	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = launcher_process_utility;
}

/* The databases that should have a worker, palloc'd; *count is set. */
static DatabaseEntry *
list_databases(int *count)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;
	DatabaseEntry *entries;
	int			n = 0;
	int			cap = 16;

	entries = palloc(sizeof(DatabaseEntry) * cap);
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tuple);

		if (!db->datallowconn || db->datistemplate ||
			db->datconnlimit == DATCONNLIMIT_INVALID_DB)
			continue;
		if (!GucDatabaseIsServed(NameStr(db->datname)))
			continue;
		if (n == cap)
		{
			cap *= 2;
			entries = repalloc(entries, sizeof(DatabaseEntry) * cap);
		}
		entries[n].oid = db->oid;
		strlcpy(entries[n].name, NameStr(db->datname), NAMEDATALEN);
		n++;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
	*count = n;
	return entries;
}

static bool
start_worker(DatabaseEntry *db, LaunchedWorker *lw)
{
	BackgroundWorker bgw;
	pid_t		pid;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher restarts it */
	strlcpy(bgw.bgw_library_name, "celerysalt", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, "CelerysaltWorkerMain", BGW_MAXLEN);
	snprintf(bgw.bgw_name, BGW_MAXLEN, "celerysalt worker for database %s", db->name);
	strlcpy(bgw.bgw_type, "celerysalt worker", BGW_MAXLEN);
	bgw.bgw_main_arg = ObjectIdGetDatum(db->oid);
	bgw.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&bgw, &lw->handle))
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start celerysalt worker for database \"%s\"", db->name),
				 errhint("Raise max_worker_processes.")));
		lw->handle = NULL;
		return false;
	}
	lw->started_at = GetCurrentTimestamp();
	(void) WaitForBackgroundWorkerStartup(lw->handle, &pid);
	return true;
}

/*
 * Make sure db has a worker if it should.  Returns the time of the next
 * restart due for it, or 0.
 */
static TimestampTz
supervise(DatabaseEntry *db, LaunchedWorker *lw, TimestampTz now)
{
	DatabaseSlot *slot = DbslotClaim(db->oid);
	bool		missing;
	TimestampTz paused_until;
	pid_t		pid;

	if (slot == NULL)
	{
		ereport(LOG,
				(errmsg("celerysalt cannot serve database \"%s\": all %d slots are in use",
						db->name, celerysalt_max_databases),
				 errhint("Raise celerysalt.max_databases.")));
		return 0;
	}

	if (lw->handle != NULL)
	{
		BgwHandleStatus status = GetBackgroundWorkerPid(lw->handle, &pid);

		if (status == BGWH_STARTED || status == BGWH_NOT_YET_STARTED)
			return 0;
		/* It stopped.  Deliberately (no extension, dropped) or not? */
		pfree(lw->handle);
		lw->handle = NULL;
		SpinLockAcquire(&slot->mutex);
		missing = slot->extension_missing;
		SpinLockRelease(&slot->mutex);
		if (!missing)
		{
			if (TimestampDifferenceExceeds(lw->started_at, now, STABLE_RUN_MS))
				lw->restart_delay_ms = RESTART_MIN_MS;
			else
				lw->restart_delay_ms = Min(Max(lw->restart_delay_ms * 2, RESTART_MIN_MS),
										   RESTART_MAX_MS);
			lw->restart_at = TimestampTzPlusMilliseconds(now, lw->restart_delay_ms);
		}
	}

	SpinLockAcquire(&slot->mutex);
	missing = slot->extension_missing;
	paused_until = slot->paused_until;
	SpinLockRelease(&slot->mutex);

	if (missing)
		return 0;
	if (paused_until > now)
		return paused_until;
	if (lw->restart_at > now)
		return lw->restart_at;
	if (!start_worker(db, lw))
	{
		SpinLockAcquire(&slot->mutex);
		slot->start_failed = true;
		SpinLockRelease(&slot->mutex);
		lw->restart_at = TimestampTzPlusMilliseconds(now, RESTART_MAX_MS);
		return lw->restart_at;
	}
	SpinLockAcquire(&slot->mutex);
	slot->start_failed = false;
	SpinLockRelease(&slot->mutex);
	return 0;
}

/*
 * Stop the workers of databases no longer served (celerysalt.databases
 * changed at reload, or a database stopped accepting connections); their
 * slots are then released with those of dropped databases.
 */
static void
stop_unlisted(DatabaseEntry *dbs, int ndbs, LaunchedWorker *workers)
{
	for (int i = 0; i < celerysalt_shared->ndatabases; i++)
	{
		DatabaseSlot *slot = &celerysalt_shared->databases[i];
		LaunchedWorker *lw = &workers[i];
		bool		listed = false;
		pid_t		pid = 0;	/* not set while the worker is not yet started */

		if (slot->dboid == InvalidOid || lw->handle == NULL)
			continue;
		for (int j = 0; j < ndbs && !listed; j++)
			listed = (dbs[j].oid == slot->dboid);
		if (listed)
			continue;
		if (GetBackgroundWorkerPid(lw->handle, &pid) == BGWH_STOPPED)
		{
			pfree(lw->handle);
			memset(lw, 0, sizeof(LaunchedWorker));
			continue;
		}
		ereport(LOG,
				(errmsg("celerysalt stops the worker of a database celerysalt.databases no longer lists (pid %d)",
						(int) pid)));
		TerminateBackgroundWorker(lw->handle);
	}
}

/* Free the slots of databases that no longer exist or are no longer served. */
static void
release_dropped(DatabaseEntry *dbs, int ndbs, LaunchedWorker *workers)
{
	for (int i = 0; i < celerysalt_shared->ndatabases; i++)
	{
		DatabaseSlot *slot = &celerysalt_shared->databases[i];
		bool		exists = false;

		if (slot->dboid == InvalidOid || slot->worker_pid != 0)
			continue;
		for (int j = 0; j < ndbs; j++)
			if (dbs[j].oid == slot->dboid)
				exists = true;
		if (!exists && workers[i].handle == NULL)
		{
			memset(&workers[i], 0, sizeof(LaunchedWorker));
			slot->dboid = InvalidOid;
		}
	}
}

static void
launcher_detach(int code, Datum arg)
{
	celerysalt_shared->launcher_latch = NULL;
	celerysalt_shared->launcher_pid = 0;
}

void
CelerysaltLauncherMain(Datum main_arg)
{
	LaunchedWorker *workers;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	CatalogPinProcessSettings();

	celerysalt_shared->launcher_pid = MyProcPid;
	celerysalt_shared->launcher_latch = MyLatch;
	before_shmem_exit(launcher_detach, (Datum) 0);

	/* indexed like celerysalt_shared->databases[] */
	workers = MemoryContextAllocZero(TopMemoryContext,
									 sizeof(LaunchedWorker) * celerysalt_shared->ndatabases);

	for (;;)
	{
		DatabaseEntry *dbs;
		int			ndbs;
		TimestampTz now = GetCurrentTimestamp();
		TimestampTz next = 0;
		long		nap_ms = LAUNCHER_NAP_MS;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		dbs = list_databases(&ndbs);
		for (int i = 0; i < ndbs; i++)
		{
			DatabaseSlot *slot = DbslotClaim(dbs[i].oid);
			TimestampTz due;

			if (slot == NULL)
				continue;
			due = supervise(&dbs[i], &workers[slot - celerysalt_shared->databases], now);
			if (due != 0 && (next == 0 || due < next))
				next = due;
		}
		stop_unlisted(dbs, ndbs, workers);
		release_dropped(dbs, ndbs, workers);
		pfree(dbs);

		if (next != 0)
			nap_ms = Max(10, Min(nap_ms, TimestampDifferenceMilliseconds(now, next)));

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 nap_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * stop_worker_for_database
 *		Stop dboid's worker and keep the launcher away from the database for
 *		a while, waiting up to 5 s for the worker to exit.  Used before DROP
 *		DATABASE, which fails while another backend is connected.
 */
static void
stop_worker_for_database(Oid dboid)
{
	DatabaseSlot *slot = DbslotFind(dboid);
	pid_t		pid;

	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	slot->paused_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), DROPDB_PAUSE_MS);
	pid = slot->worker_pid;
	SpinLockRelease(&slot->mutex);
	if (pid == 0)
		return;

	kill(pid, SIGTERM);
	for (int i = 0; i < 500 && slot->worker_pid == pid; i++)
	{
		CHECK_FOR_INTERRUPTS();
		pg_usleep(10 * 1000L);
	}
}

/*
 * The extension's SQL names its objects by schema, and its SECURITY DEFINER
 * functions run as a superuser: refuse to hand the extension's schema to a
 * role that is not a superuser, directly (ALTER SCHEMA ... OWNER TO) or by
 * giving away a database whose public schema holds it (ALTER DATABASE ...
 * OWNER TO).  That role could rename the schema and put its own objects
 * under the extension's names (docs/security.md).
 */
static void
refuse_unsafe_owner_change(AlterOwnerStmt *stmt)
{
	Oid			newowner;
	bool		unsafe = false;

	if (stmt->objectType != OBJECT_DATABASE && stmt->objectType != OBJECT_SCHEMA)
		return;
	newowner = get_rolespec_oid(stmt->newowner, true);
	if (!OidIsValid(newowner) || superuser_arg(newowner))
		return;

	if (stmt->objectType == OBJECT_SCHEMA)
	{
		Oid			nsp = get_namespace_oid(strVal(stmt->object), true);
		Oid			ext = IsTransactionState() ? CatalogExtensionSchema(true) : InvalidOid;

		unsafe = OidIsValid(nsp) && nsp == ext;
	}
	else
	{
		Oid			dboid = get_database_oid(strVal(stmt->object), true);

		if (dboid == MyDatabaseId)
		{
			Oid			ext = CatalogExtensionSchema(true);

			unsafe = OidIsValid(ext) && CatalogSchemaFollowsDatabaseOwner(ext);
		}
		else if (OidIsValid(dboid) && celerysalt_shared != NULL)
		{
			DatabaseSlot *slot = DbslotFind(dboid);

			if (slot != NULL)
			{
				SpinLockAcquire(&slot->mutex);
				unsafe = !slot->extension_missing && slot->schema_follows_owner;
				SpinLockRelease(&slot->mutex);
			}
		}
	}
	if (unsafe)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot give the schema of extension celerysalt to role \"%s\", which is not a superuser",
						GetUserNameFromId(newowner, false)),
				 errdetail("Its owner could rename the schema and put its own objects under the extension's names."),
				 errhint("Move the extension to a schema of its own first (docs/security.md).")));
}

static void
launcher_process_utility(PlannedStmt *pstmt, const char *queryString,
						 bool readOnlyTree, ProcessUtilityContext context,
						 ParamListInfo params, QueryEnvironment *queryEnv,
						 DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	if (celerysalt_shared != NULL && IsA(parsetree, DropdbStmt))
	{
		Oid			dboid = get_database_oid(((DropdbStmt *) parsetree)->dbname, true);

		/*
		 * Only for a DROP DATABASE that can succeed: the caller owns the
		 * database (or is superuser), it is not the current one, and no
		 * transaction block is open.  Anyone else would just stop the
		 * database's delivery (security issue, finding F2).
		 */
		if (OidIsValid(dboid) && dboid != MyDatabaseId && !IsTransactionBlock() &&
			pg_database_ownercheck(dboid, GetUserId()))
			stop_worker_for_database(dboid);
	}

	if (IsA(parsetree, AlterOwnerStmt))
		refuse_unsafe_owner_change((AlterOwnerStmt *) parsetree);

	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);

	if (celerysalt_shared != NULL && IsA(parsetree, TransactionStmt) &&
		((TransactionStmt *) parsetree)->kind == TRANS_STMT_COMMIT_PREPARED)
		OutboxWakeAfterCommitPrepared();
}
