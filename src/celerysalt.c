/*-------------------------------------------------------------------------
 *
 * celerysalt.c
 *		Module entry point (_PG_init): settings, the log redaction hook and
 *		the registry's hooks; when preloading, shared memory and the
 *		launcher registration.  The top of the call graph: nothing calls
 *		into this file.
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"
#include "conninfo.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "guc.h"
#include "dbslot.h"
#include "processes.h"
#include "registry.h"

PG_MODULE_MAGIC;

PGDLLEXPORT void _PG_init(void);

void
_PG_init(void)
{
	GucDefineAll();
	ConninfoInstallLogHook();
	RegistryInit();

	if (!process_shared_preload_libraries_in_progress)
		return;

	DbslotInstallHooks();	/* and marks the library preloaded */
	LauncherRegister();
}
