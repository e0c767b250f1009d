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
#include "access/xact.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/acl.h"
#include "utils/syscache.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_database.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
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
 * CatalogPinProcessSettings
 *		For background processes: fix search_path to CATALOG_SAFE_SEARCH_PATH
 *		and the settings a database owner could otherwise set for the worker
 *		with ALTER DATABASE ... SET (read-only transactions, a tiny
 *		statement_timeout, another role, asynchronous commits) to what the
 *		worker needs, for the life of the process, above any per-database or
 *		per-role setting (which BackgroundWorkerInitializeConnection applied)
 *		and any later reload of the configuration files.
 */
void
CatalogPinProcessSettings(void)
{
	static const char *const pinned[][2] = {
		{"search_path", CATALOG_SAFE_SEARCH_PATH},
		{"role", "none"},
		{"default_transaction_read_only", "off"},
		{"default_transaction_isolation", "read committed"},
		{"default_transaction_deferrable", "off"},
		{"statement_timeout", "0"},
		{"lock_timeout", "0"},
		{"idle_in_transaction_session_timeout", "0"},
		{"synchronous_commit", "on"},
		{"exit_on_error", "off"},
		{"transform_null_equals", "off"},
	};

	for (int i = 0; i < (int) lengthof(pinned); i++)
		SetConfigOption(pinned[i][0], pinned[i][1], PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * A per-database session_authorization would make the worker run as
	 * another role: back to the bootstrap superuser it connected as.
	 */
	if (OidIsValid(MyDatabaseId) && GetSessionUserId() != BOOTSTRAP_SUPERUSERID)
	{
		StartTransactionCommand();
		SetConfigOption("session_authorization",
						GetUserNameFromId(BOOTSTRAP_SUPERUSERID, false),
						PGC_SUSET, PGC_S_OVERRIDE);
		CommitTransactionCommand();
	}
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
	int			level;

	/*
	 * Already pinned (a SECURITY DEFINER function's SET clause, the
	 * background processes): nothing to change.  This keeps the cost off
	 * celerysalt_publish, whose every call would otherwise set search_path
	 * twice.
	 */
	if (namespace_search_path != NULL &&
		strcmp(namespace_search_path, CATALOG_SAFE_SEARCH_PATH) == 0)
		return -1;
	level = NewGUCNestLevel();

	(void) set_config_option("search_path", CATALOG_SAFE_SEARCH_PATH,
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	return level;
}

/* CatalogPopSearchPath: undo CatalogPushSafeSearchPath (-1: it changed nothing). */
void
CatalogPopSearchPath(int level)
{
	if (level >= 0)
		AtEOXact_GUC(true, level);
}

/*
 * CatalogRelationOwner
 *		The owner of relation relid (an error if it does not exist).
 */
Oid
CatalogRelationOwner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * CatalogEnterOwnerSection
 *		Run what follows as owner (the owner of the extension's tables),
 *		under CATALOG_SAFE_SEARCH_PATH, as a security-restricted operation,
 *		until CatalogLeaveOwnerSection(section).  Only for SQL the C code
 *		wrote, on values it has already checked.
 */
void
CatalogEnterOwnerSection(Oid owner, CatalogOwnerSection *section)
{
	GetUserIdAndSecContext(&section->saved_userid, &section->saved_sec_context);
	SetUserIdAndSecContext(owner, section->saved_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	section->guc_level = CatalogPushSafeSearchPath();
}

/* CatalogLeaveOwnerSection: back to the user and settings of before. */
void
CatalogLeaveOwnerSection(CatalogOwnerSection *section)
{
	CatalogPopSearchPath(section->guc_level);
	SetUserIdAndSecContext(section->saved_userid, section->saved_sec_context);
}

/*
 * CatalogSchemaProblem
 *		NULL when only superusers control schema nsp: its owner is a
 *		superuser (pg_database_owner stands for the database's owner) and,
 *		with check_creators, no other role may create objects in it (what
 *		is created before CREATE EXTENSION can bind into its views).  Else a
 *		palloc'd sentence saying who else controls it.  The extension's SQL names its objects
 *		by schema: whoever owns the schema could rename it and put other
 *		objects under the old name, and whoever may create in it could add
 *		objects the extension's own SQL would find, both run by the delivery
 *		worker as a superuser (docs/security.md).
 */
char *
CatalogSchemaProblem(Oid nsp, bool check_creators)
{
	HeapTuple	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
	Form_pg_namespace form;
	Oid			owner;
	Oid			dbowner = InvalidOid;
	char	   *name;
	bool		isnull;
	Datum		acldatum;
	char	   *problem = NULL;

	if (!HeapTupleIsValid(tup))
		return pstrdup("The schema no longer exists.");
	form = (Form_pg_namespace) GETSTRUCT(tup);
	name = pstrdup(NameStr(form->nspname));
	{
		HeapTuple	dbtup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(MyDatabaseId));

		if (HeapTupleIsValid(dbtup))
		{
			dbowner = ((Form_pg_database) GETSTRUCT(dbtup))->datdba;
			ReleaseSysCache(dbtup);
		}
	}
	owner = form->nspowner == ROLE_PG_DATABASE_OWNER ? dbowner : form->nspowner;
	if (!superuser_arg(owner))
		problem = psprintf("Schema \"%s\" is controlled by role \"%s\", which is not a superuser.",
						   name, GetUserNameFromId(owner, false));

	acldatum = SysCacheGetAttr(NAMESPACEOID, tup, Anum_pg_namespace_nspacl, &isnull);
	if (problem == NULL && check_creators && !isnull)
	{
		Acl		   *acl = DatumGetAclP(acldatum);
		AclItem    *items;

/* ARR_DATA_PTR (array.h) mixes signedness; -Wextra flags it */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
		items = ACL_DAT(acl);
#pragma GCC diagnostic pop

		for (int i = 0; i < (int) ACL_NUM(acl) && problem == NULL; i++)
		{
			Oid			grantee = items[i].ai_grantee;

			if ((ACLITEM_GET_PRIVS(items[i]) & ACL_CREATE) == 0)
				continue;
			if (grantee == ROLE_PG_DATABASE_OWNER)
				grantee = dbowner;
			if (grantee == ACL_ID_PUBLIC)
				problem = psprintf("Every role may create objects in schema \"%s\".", name);
			else if (!superuser_arg(grantee))
				problem = psprintf("Role \"%s\", which is not a superuser, may create objects in schema \"%s\".",
								   GetUserNameFromId(grantee, false), name);
		}
	}
	ReleaseSysCache(tup);
	return problem;
}

/*
 * CatalogSchemaFollowsDatabaseOwner
 *		Whether schema nsp belongs to pg_database_owner (public on
 *		PostgreSQL 15): giving the database to another role gives it the
 *		schema too.
 */
bool
CatalogSchemaFollowsDatabaseOwner(Oid nsp)
{
	HeapTuple	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
	bool		follows = false;

	if (HeapTupleIsValid(tup))
	{
		follows = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner == ROLE_PG_DATABASE_OWNER;
		ReleaseSysCache(tup);
	}
	return follows;
}
