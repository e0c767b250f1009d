/*-------------------------------------------------------------------------
 *
 * catalog.h
 *		The extension's schema, qualified names and the safe search_path (catalog.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef CELERYSALT_CATALOG_H
#define CELERYSALT_CATALOG_H

#include "celerysalt.h"

extern Oid	CatalogExtensionSchema(bool missing_ok);
extern char *CatalogQualifiedName(const char *relname);

/* The only search_path under which SQL runs with more than the user's rights. */
#define CATALOG_SAFE_SEARCH_PATH "pg_catalog, pg_temp"
extern void CatalogPinProcessSettings(void);
extern int	CatalogPushSafeSearchPath(void);
extern void CatalogPopSearchPath(int level);

/*
 * An owner section: SQL run with the rights of the owner of the extension's
 * tables, under the safe search_path, as a restricted operation (what
 * SECURITY DEFINER does for a SQL function).  An error inside unwinds it
 * with the (sub)transaction.
 */
typedef struct CatalogOwnerSection
{
	Oid			saved_userid;
	int			saved_sec_context;
	int			guc_level;
} CatalogOwnerSection;
extern Oid	CatalogRelationOwner(Oid relid);
extern void CatalogEnterOwnerSection(Oid owner, CatalogOwnerSection *section);
extern void CatalogLeaveOwnerSection(CatalogOwnerSection *section);

extern char *CatalogSchemaProblem(Oid nsp, bool check_creators);
extern bool CatalogSchemaFollowsDatabaseOwner(Oid nsp);

#endif							/* CELERYSALT_CATALOG_H */
