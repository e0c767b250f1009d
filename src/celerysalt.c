/*-------------------------------------------------------------------------
 *
 * celerysalt.c
 *		Module entry point: preload check, parameters, shared memory and the
 *		launcher registration.  Nothing else lives here.
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"

#include "fmgr.h"
#include "miscadmin.h"

PG_MODULE_MAGIC;

PGDLLEXPORT void _PG_init(void);

/* True when loaded through shared_preload_libraries. */
bool		celerysalt_preloaded = false;

void
_PG_init(void)
{
	GucDefineAll();
	RedactInstallHook();
	RegistryInit();

	if (!process_shared_preload_libraries_in_progress)
		return;

	celerysalt_preloaded = true;
	ShmemInstallHooks();
	LauncherRegister();
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
