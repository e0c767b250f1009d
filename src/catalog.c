/*-------------------------------------------------------------------------
 *
 * catalog.c
 *		Finding the extension's own objects: its OID, its schema and
 *		schema-qualified, quoted names for the SQL the C code runs; and the
 *		search_path that SQL runs under.
 *
 * Every SQL text in C qualifies its operators and functions, and every
 * process or section that runs it with more rights than the session's user
 * (the background workers, SECURITY DEFINER functions, the registry's and
 * follow actions' owner sections) pins search_path to
 * CATALOG_SAFE_SEARCH_PATH first, so that no object a user creates in a
 * schema of its own (public, for example) can be picked instead of the
 * built-in one: see docs/security.md.
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "catalog.h"

/*
 * CatalogExtensionSchema
 *		The namespace OID celerysalt is installed in.  Raises an error when
 *		the extension is not installed, unless missing_ok (then InvalidOid).
 *		The caller must be inside a transaction.
 */
Oid
CatalogExtensionSchema(bool missing_ok)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tuple;
	Oid			schema = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("celerysalt"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
		schema = ((Form_pg_extension) GETSTRUCT(tuple))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	if (!OidIsValid(schema) && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("extension \"celerysalt\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION celerysalt.")));
	return schema;
}

/*
 * CatalogQualifiedName
 *		"schema"."relname" for an object of the extension, palloc'd in the
 *		current memory context.
 */
char *
CatalogQualifiedName(const char *relname)
{
	Oid			schema = CatalogExtensionSchema(false);

	return quote_qualified_identifier(get_namespace_name(schema), relname);
}

/*
 * CatalogPinProcessSearchPath
 *		For background processes: fix search_path to CATALOG_SAFE_SEARCH_PATH
 *		for the life of the process, above any per-database or per-role
 *		setting (which BackgroundWorkerInitializeConnection applied) and any
 *		later reload of the configuration files.
 */
void
CatalogPinProcessSearchPath(void)
{
	SetConfigOption("search_path", CATALOG_SAFE_SEARCH_PATH, PGC_SUSET, PGC_S_OVERRIDE);
}

/*
 * CatalogPushSafeSearchPath
 *		In a backend: set search_path to CATALOG_SAFE_SEARCH_PATH until
 *		CatalogPopSearchPath(level) with the level returned here (or the end
 *		of the (sub)transaction, on error).  Used around SQL run with the
 *		extension owner's rights.
 */
int
CatalogPushSafeSearchPath(void)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("search_path", CATALOG_SAFE_SEARCH_PATH,
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	return level;
}

/* CatalogPopSearchPath: undo CatalogPushSafeSearchPath. */
void
CatalogPopSearchPath(int level)
{
	AtEOXact_GUC(true, level);
}
