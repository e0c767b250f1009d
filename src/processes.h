/*-------------------------------------------------------------------------
 *
 * processes.h
 *		The launcher and the per-database delivery worker (launcher.c, worker.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef CELERYSALT_PROCESSES_H
#define CELERYSALT_PROCESSES_H

#include "celerysalt.h"
#include "fmgr.h"

PGDLLEXPORT void CelerysaltLauncherMain(Datum main_arg);
PGDLLEXPORT void CelerysaltWorkerMain(Datum main_arg);
extern void LauncherRegister(void);

#endif							/* CELERYSALT_PROCESSES_H */
