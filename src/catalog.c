/*-------------------------------------------------------------------------
 *
 * catalog.c
 *		Finding the extension's own objects: its OID, its schema and
 *		schema-qualified, quoted names for the SQL the C code runs.
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
#include "utils/lsyscache.h"
#include "utils/rel.h"

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
