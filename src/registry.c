/*-------------------------------------------------------------------------
 *
 * registry.c
 *		The schema registry's C side: validate-on-publish (the publish
 *		validator hook), its per-backend cache of registered schemas, publish
 *		counters, conflict detection and the registry's settings.
 *
 * Registration itself, the catalog views, compatibility enforcement and
 * code generation are SQL and PL/pgSQL (sql/install/30_registry.sql); the
 * compatibility rules are in schema_diff.c.
 *
 * Cache.  The first publish of a topic in a backend reads the topic's
 * active versions from celerysalt_schemas (latest first) into a hash table
 * under CacheMemoryContext; later publishes of that topic do one hash
 * lookup and one call of the validator, whose compiled-schema cache is
 * keyed by the schema bytes.  Topics without a registered schema are cached
 * too (an entry without versions), so unregistered topics also cost one
 * lookup.  A statement trigger on celerysalt_schemas sends a relcache
 * invalidation for the table at every change; our relcache callback only
 * bumps a counter, and the next lookup that sees a changed counter drops
 * the whole cache.  Invalidation messages are transactional, so other
 * backends see the change when the registering transaction commits, and a
 * rolled back registration invalidates the registering backend too.  When
 * the registry tables do not exist (the extension is not installed in this
 * database) the callback treats every relcache invalidation as relevant, so
 * CREATE EXTENSION is noticed.
 *
 * Reading the registry and writing publish counters run as the owner of
 * the registry tables (as referential-integrity checks do), so a role that
 * may publish needs no privilege on them.  The SQL is fully qualified and
 * uses OPERATOR(pg_catalog.=), so the caller's search_path cannot redirect
 * it.
 *
 * Publish counters.  Each backend counts the events it publishes per
 * (topic, service) in the current transaction and, just before commit,
 * appends one row per pair to _celerysalt_publish_stats.  Concurrent
 * publishers never update a shared row; the catalog view sums the rows and
 * celerysalt_registry_compact() folds them.
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "jbv.h"
#include "jsonschema/jsonschema.h"
#include "guc.h"
#include "catalog.h"
#include "event.h"
#include "registry.h"
#include "dbslot.h"

/* An RPC answer that breaks its registered response_schema / error_schema (docs/errors.md). */

PG_FUNCTION_INFO_V1(celerysalt_validate_event);
PG_FUNCTION_INFO_V1(celerysalt_event_errors);
PG_FUNCTION_INFO_V1(_celerysalt_registry_changed);
PG_FUNCTION_INFO_V1(_celerysalt_check_names);
PG_FUNCTION_INFO_V1(_celerysalt_schema_first_difference);

#define REGISTRY_MAX_CACHED_TOPICS	4096
#define REGISTRY_MAX_DETAIL_ERRORS	50
#define REGISTRY_SERVICE_LEN		CELERYSALT_MAX_SERVICE_LEN

/* ---- settings ---- */

/* ---- the cache ---- */
typedef struct RegistryVersion
{
	char	   *version;
	Jsonb	   *schema;
	bool		deprecated;
	char	   *deprecated_reason;	/* NULL unless deprecated */
	LocalTransactionId warned_lxid; /* the deprecation warning was given */
	bool		rpc;			/* mode = 'rpc' */
	Jsonb	   *response_schema;	/* NULL unless registered */
	Jsonb	   *error_schema;	/* NULL unless registered */
	/* compiled on first use, in registry_cxt (freed with the cache) */
	JsSchema   *compiled;
	JsSchema   *compiled_response;
	JsSchema   *compiled_error;
} RegistryVersion;

typedef struct RegistryTopic
{
	char		topic[CELERYSALT_MAX_TOPIC_LEN + 1];	/* hash key */
	int			nversions;		/* 0: no schema registered */
	RegistryVersion *versions;	/* latest first */
} RegistryTopic;

static MemoryContext registry_cxt = NULL;
static HTAB *registry_topics = NULL;
static uint64 registry_inval_count = 1;
static uint64 registry_built_at = 0;
static Oid	registry_nsp = InvalidOid;
static Oid	registry_relid = InvalidOid;	/* celerysalt_schemas */
static Oid	registry_owner = InvalidOid;

/* ---- publish counters of the current transaction ---- */
typedef struct PublishCountKey
{
	char		topic[CELERYSALT_MAX_TOPIC_LEN + 1];
	char		service[REGISTRY_SERVICE_LEN];
} PublishCountKey;

typedef struct PublishCount
{
	PublishCountKey key;
	int64		published;
	TimestampTz first;
	TimestampTz last;
} PublishCount;

static MemoryContext counts_cxt = NULL;
static HTAB *pending_counts = NULL;
static bool xact_callback_registered = false;

static const char *registry_publish_validator(const char *topic, Jsonb *payload,
											  const char *version);

/* ------------------------------------------------------------- settings */

/* ---------------------------------------------------------------- cache */

static void
registry_relcache_callback(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || !OidIsValid(registry_relid) || relid == registry_relid)
		registry_inval_count++;
}

/*
 * Drop everything cached and find the registry again.  Counts as built for
 * the current invalidation counter before it touches the catalogs, so an
 * invalidation that arrives meanwhile causes another reset next time.
 */
static void
registry_reset(void)
{
	HASHCTL		ctl;
	HeapTuple	tup;

	if (registry_cxt == NULL)
		registry_cxt = AllocSetContextCreate(CacheMemoryContext,
											 "celerysalt registry cache",
											 ALLOCSET_DEFAULT_SIZES);
	else
		MemoryContextReset(registry_cxt);
	registry_topics = NULL;
	registry_relid = InvalidOid;
	registry_owner = InvalidOid;
	registry_built_at = registry_inval_count;

	registry_nsp = CatalogExtensionSchema(true);
	if (!OidIsValid(registry_nsp))
		return;
	registry_relid = get_relname_relid("celerysalt_schemas", registry_nsp);
	if (!OidIsValid(registry_relid))
		return;
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(registry_relid));
	if (!HeapTupleIsValid(tup))
	{
		registry_relid = InvalidOid;
		return;
	}
	registry_owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);

	ctl.keysize = CELERYSALT_MAX_TOPIC_LEN + 1;
	ctl.entrysize = sizeof(RegistryTopic);
	ctl.hcxt = registry_cxt;
	registry_topics = hash_create("celerysalt registry topics", 64, &ctl,
								  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

/* A version's sort key: its numeric parts (digits, no leading zeros). */
#define VERSION_MAX_PARTS	16
typedef struct VersionOrder
{
	int			index;			/* in registration order */
	int			nparts;
	const char *parts[VERSION_MAX_PARTS];
	int			lens[VERSION_MAX_PARTS];
} VersionOrder;

/*
 * The key of celery-salt's compare_versions, as _celerysalt_version_key
 * computes it: strip spaces, drop one leading v/V; a version that is not
 * dot-separated digits has no parts (orders first); trailing zero parts are
 * dropped (v1 = v1.0).  Sets key->parts (pointers into version), key->lens
 * and key->nparts.  Parts past VERSION_MAX_PARTS are ignored.
 */
static void
version_key(const char *version, VersionOrder *key)
{
	const char *p = version;
	const char *end = version + strlen(version);
	int			n = 0;
	int			last_nonzero = 0;

	while (*p == ' ')
		p++;
	while (end > p && end[-1] == ' ')
		end--;
	key->nparts = 0;
	if (p < end && (*p == 'v' || *p == 'V'))
		p++;
	if (p == end)
		return;
	while (p < end)
	{
		const char *q = p;

		while (q < end && *q >= '0' && *q <= '9')
			q++;
		if (q == p || (q < end && (*q != '.' || q + 1 == end)))
			return;				/* not digits and dots: no parts */
		while (p < q - 1 && *p == '0')
			p++;				/* leading zeros */
		if (n < VERSION_MAX_PARTS)
		{
			key->parts[n] = p;
			key->lens[n] = q - p;
			n++;
			if (!(q - p == 1 && *p == '0'))
				last_nonzero = n;
		}
		p = q < end ? q + 1 : q;
	}
	key->nparts = last_nonzero;
}

/* Latest version first; equal versions in registration order. */
static int
version_order_cmp(const void *a, const void *b)
{
	const VersionOrder *x = a;
	const VersionOrder *y = b;

	for (int i = 0; i < x->nparts && i < y->nparts; i++)
	{
		int			c = x->lens[i] != y->lens[i] ? x->lens[i] - y->lens[i] :
			memcmp(x->parts[i], y->parts[i], x->lens[i]);

		if (c != 0)
			return -c;
	}
	if (x->nparts != y->nparts)
		return y->nparts - x->nparts;
	return x->index - y->index;
}

/* Read the active versions of topic, latest first, into registry_cxt. */
static RegistryTopic *
registry_load(const char *topic)
{
	const char *nsp = quote_identifier(get_namespace_name(registry_nsp));
	char	   *sql;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	CatalogOwnerSection owner_section;
	int			rc;
	RegistryVersion *versions = NULL;
	int			n;
	RegistryTopic *entry;
	bool		found;

	sql = psprintf("SELECT version, schema, deprecated_at IS NOT NULL, deprecated_reason,"
				   "       mode OPERATOR(pg_catalog.=) 'rpc', response_schema, error_schema"
				   "  FROM %s.celerysalt_schemas"
				   " WHERE topic OPERATOR(pg_catalog.=) $1 AND active"
				   " ORDER BY id",
				   nsp);
	args[0] = CStringGetTextDatum(topic);

	SPI_connect();
	CatalogEnterOwnerSection(registry_owner, &owner_section);
	rc = SPI_execute_with_args(sql, 1, argtypes, args, NULL, true, 0);
	CatalogLeaveOwnerSection(&owner_section);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read the schema registry: %s", SPI_result_code_string(rc));

	n = (int) SPI_processed;
	if (n > 0)
		versions = MemoryContextAllocZero(registry_cxt, sizeof(RegistryVersion) * n);
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d;
		MemoryContext old;

		old = MemoryContextSwitchTo(registry_cxt);
		versions[i].version = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
		d = SPI_getbinval(tup, desc, 2, &isnull);
		versions[i].schema = DatumGetJsonbPCopy(d);
		versions[i].deprecated = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
		d = SPI_getbinval(tup, desc, 4, &isnull);
		versions[i].deprecated_reason = isnull ? NULL : TextDatumGetCString(d);
		versions[i].rpc = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
		d = SPI_getbinval(tup, desc, 6, &isnull);
		versions[i].response_schema = isnull ? NULL : DatumGetJsonbPCopy(d);
		d = SPI_getbinval(tup, desc, 7, &isnull);
		versions[i].error_schema = isnull ? NULL : DatumGetJsonbPCopy(d);
		versions[i].warned_lxid = InvalidLocalTransactionId;
		MemoryContextSwitchTo(old);
	}
	SPI_finish();

	/*
	 * Latest first, in celery-salt's version order (as the SQL function
	 * _celerysalt_version_key orders them), ties by registration.  Sorted
	 * here, not by calling that function from this SQL: a role that may
	 * create objects beside it could make the call ambiguous.
	 */
	if (n > 1)
	{
		VersionOrder *order = palloc(sizeof(VersionOrder) * n);
		RegistryVersion *sorted = MemoryContextAlloc(registry_cxt, sizeof(RegistryVersion) * n);

		for (int i = 0; i < n; i++)
		{
			order[i].index = i;
			version_key(versions[i].version, &order[i]);
		}
		qsort(order, n, sizeof(VersionOrder), version_order_cmp);
		for (int i = 0; i < n; i++)
			sorted[i] = versions[order[i].index];
		pfree(versions);
		versions = sorted;
	}

	entry = hash_search(registry_topics, topic, HASH_ENTER, &found);
	entry->nversions = n;
	entry->versions = versions;
	return entry;
}

/*
 * registry_lookup
 *		The cached registration state of topic, loading it on first use.
 *		NULL when the registry tables do not exist in this database.  The
 *		result is valid until the next call.  The caller must be in a
 *		transaction; topic must have at most CELERYSALT_MAX_TOPIC_LEN bytes.
 */
static RegistryTopic *
registry_lookup(const char *topic)
{
	RegistryTopic *entry;

	if (registry_built_at != registry_inval_count)
		registry_reset();
	if (!OidIsValid(registry_relid))
		return NULL;

	entry = hash_search(registry_topics, topic, HASH_FIND, NULL);
	if (entry != NULL)
		return entry;

	if (hash_get_num_entries(registry_topics) >= REGISTRY_MAX_CACHED_TOPICS)
	{
		registry_reset();
		if (!OidIsValid(registry_relid))
			return NULL;
	}
	return registry_load(topic);
}

/* "v1, v2, v10", the versions of entry, oldest first. */
static char *
versions_list(RegistryTopic *entry)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = entry->nversions - 1; i >= 0; i--)
		appendStringInfo(&buf, "%s%s", buf.len ? ", " : "", entry->versions[i].version);
	return buf.data;
}

/* The hint naming the registered topics, from SQL. */
static char *
topics_hint(void)
{
	char	   *sql = psprintf("SELECT %s._celerysalt_topics_hint()",
							   quote_identifier(get_namespace_name(registry_nsp)));
	char	   *hint = NULL;
	CatalogOwnerSection owner_section;
	int			rc;

	SPI_connect();
	CatalogEnterOwnerSection(registry_owner, &owner_section);
	rc = SPI_execute(sql, true, 1);
	CatalogLeaveOwnerSection(&owner_section);
	if (rc == SPI_OK_SELECT && SPI_processed == 1)
	{
		char	   *s = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (s)
		{
			hint = SPI_palloc(strlen(s) + 1);
			strcpy(hint, s);
		}
	}
	SPI_finish();
	return hint ? hint : pstrdup("");
}

/*
 * The version of entry that version names: NULL or "latest" = the latest.
 * Raises 42704 when there is no such version.
 */
static RegistryVersion *
registry_find_version(const char *topic, RegistryTopic *entry, const char *version)
{
	if (version == NULL || strcmp(version, "latest") == 0)
		return &entry->versions[0];
	for (int i = 0; i < entry->nversions; i++)
		if (strcmp(entry->versions[i].version, version) == 0)
			return &entry->versions[i];
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("topic \"%s\" has no registered schema version \"%s\"", topic, version),
			 errhint("Registered versions: %s.", versions_list(entry))));
	return NULL;				/* keep compiler quiet */
}

static void
raise_unregistered(const char *topic, bool publishing)
{
	char	   *hint = OidIsValid(registry_relid) ? topics_hint() : "";

	if (publishing)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("topic \"%s\" has no registered schema", topic),
				 errdetail("celerysalt.require_registration is on, so only registered topics can be published."),
				 errhint("Register the schema with celerysalt_register_schema() first. %s", hint)));
	else
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("topic \"%s\" has no registered schema", topic),
				 errhint("%s", hint)));
}

/*
 * Validate instance against schema (formats asserted, date and time formats
 * read as celerysalt.format_dialect says), compiling it into *compiled (in
 * registry_cxt) on first use.  Returns whether it is valid; when not and
 * errors is given, *errors is the validator's error array.  The validator
 * is called in C: no catalog lookup, nothing a role can drop.
 */
static bool
check_against(JsSchema **compiled, Jsonb *schema, Jsonb *instance, Jsonb **errors)
{
	List	   *problems = NIL;
	JsFormatMode formats = celerysalt_format_dialect == FORMAT_DIALECT_RFC3339 ?
		JS_FORMATS_RFC3339 : JS_FORMATS_PYDANTIC;

	if (*compiled == NULL)
	{
		JsSchema   *s = JsonschemaCompile(schema, NULL, CurrentMemoryContext, true);

		JsonschemaKeep(s, registry_cxt);
		*compiled = s;
	}
	if (JsonschemaValidate(*compiled, instance, formats, NULL))
		return true;
	if (errors)
	{
		(void) JsonschemaValidate(*compiled, instance, formats, &problems);
		*errors = JsonschemaErrorsToJsonb(problems, true);
	}
	return false;
}

/*
 * True if payload is valid against version v of the topic, with formats
 * asserted.  When it is not and errors is not NULL, *errors receives the
 * validator's error array.
 */
static bool
registry_check_payload(RegistryVersion *v, Jsonb *payload, Jsonb **errors)
{
	return check_against(&v->compiled, v->schema, payload, errors);
}

/* A text member of a validator error object, or "". */
static char *
error_member(JsonbValue *obj, const char *key)
{
	JsonbValue	v;

	if (JbvObjectMember(obj, key, &v) && v.type == jbvString)
		return pnstrdup(v.val.string.val, v.val.string.len);
	return pstrdup("");
}

static void
raise_invalid(int sqlerrcode, const char *what, const char *topic, const char *version,
			  Jsonb *errors)
{
	StringInfoData detail;
	int			n = 0;
	int			total = 0;

	initStringInfo(&detail);
	if (JB_ROOT_IS_ARRAY(errors) && !JB_ROOT_IS_SCALAR(errors))
	{
		total = JB_ROOT_COUNT(errors);
		for (n = 0; n < total && n < REGISTRY_MAX_DETAIL_ERRORS; n++)
		{
			JsonbValue *e = getIthJsonbValueFromContainer(&errors->root, n);
			char	   *path = error_member(e, "path");

			appendStringInfo(&detail, "\n%s: %s", path[0] ? path : "(root)",
							 error_member(e, "message"));
		}
	}
	if (total > n)
		appendStringInfo(&detail, "\n... and %d more.", total - n);
	ereport(ERROR,
			(errcode(sqlerrcode),
			 errmsg("%s does not match the %s of topic \"%s\" version \"%s\"",
					what, sqlerrcode == ERRCODE_CHECK_VIOLATION ? "schema" :
					strcmp(what, "RPC error") == 0 ? "error_schema" : "response_schema",
					topic, version),
			 errdetail_internal("%d validation error%s:%s", total, total == 1 ? "" : "s",
								detail.data),
			 sqlerrcode == ERRCODE_CHECK_VIOLATION ?
			 errhint("celerysalt_event_errors(topic, payload, version) lists the errors as JSON.") :
			 errhint("The handler's answer breaks the contract registered for this topic.")));
}

static void
raise_invalid_payload(const char *topic, const char *version, Jsonb *errors)
{
	DbslotCount(DBSLOT_COUNTER(validation_failures_total));
	raise_invalid(ERRCODE_CHECK_VIOLATION, "event payload", topic, version, errors);
}

/* ------------------------------------------------------- publish counts */

static void
counts_flush(void)
{
	HTAB	   *counts = pending_counts;
	HASH_SEQ_STATUS seq;
	PublishCount *c;
	Oid			nsp;
	Oid			relid;
	Oid			owner;
	HeapTuple	tup;
	char	   *sql;
	Oid			argtypes[5] = {TEXTOID, TEXTOID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	CatalogOwnerSection owner_section;

	pending_counts = NULL;
	if (counts == NULL)
		return;

	nsp = CatalogExtensionSchema(true);
	relid = OidIsValid(nsp) ? get_relname_relid("_celerysalt_publish_stats", nsp) : InvalidOid;
	if (!OidIsValid(relid))
		goto done;				/* the extension went away in this transaction */
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		goto done;
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);

	sql = psprintf("INSERT INTO %s (topic, service, published, first_published_at, last_published_at)"
				   " VALUES ($1, $2, $3, $4, $5)",
				   quote_qualified_identifier(get_namespace_name(nsp), "_celerysalt_publish_stats"));
	SPI_connect();
	/* after the last statement: no snapshot is active any more */
	PushActiveSnapshot(GetTransactionSnapshot());
	CatalogEnterOwnerSection(owner, &owner_section);
	hash_seq_init(&seq, counts);
	while ((c = hash_seq_search(&seq)) != NULL)
	{
		Datum		args[5];
		int			rc;

		args[0] = CStringGetTextDatum(c->key.topic);
		args[1] = CStringGetTextDatum(c->key.service);
		args[2] = Int64GetDatum(c->published);
		args[3] = TimestampTzGetDatum(c->first);
		args[4] = TimestampTzGetDatum(c->last);
		rc = SPI_execute_with_args(sql, 5, argtypes, args, NULL, false, 0);
		if (rc != SPI_OK_INSERT)
			elog(ERROR, "could not record publish counts: %s", SPI_result_code_string(rc));
	}
	CatalogLeaveOwnerSection(&owner_section);
	PopActiveSnapshot();
	SPI_finish();
done:
	MemoryContextReset(counts_cxt);
}

static void
registry_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (pending_counts != NULL)
				counts_flush();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PREPARE:
			if (pending_counts != NULL)
			{
				pending_counts = NULL;
				MemoryContextReset(counts_cxt);
			}
			break;
		default:
			break;
	}
}

/* Count one event of topic published in this transaction. */
static void
counts_note(const char *topic)
{
	PublishCountKey key;
	PublishCount *c;
	bool		found;
	TimestampTz now = GetCurrentTimestamp();

	if (pending_counts == NULL)
	{
		HASHCTL		ctl;

		if (counts_cxt == NULL)
			counts_cxt = AllocSetContextCreate(TopMemoryContext,
											   "celerysalt publish counts",
											   ALLOCSET_SMALL_SIZES);
		if (!xact_callback_registered)
		{
			RegisterXactCallback(registry_xact_callback, NULL);
			xact_callback_registered = true;
		}
		ctl.keysize = sizeof(PublishCountKey);
		ctl.entrysize = sizeof(PublishCount);
		ctl.hcxt = counts_cxt;
		pending_counts = hash_create("celerysalt publish counts", 16, &ctl,
									 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}

	memset(&key, 0, sizeof(key));
	strlcpy(key.topic, topic, sizeof(key.topic));
	if (celerysalt_service_name && celerysalt_service_name[0])
		strlcpy(key.service, celerysalt_service_name, sizeof(key.service));
	else
	{
		/* the database of a backend never changes: look its name up once */
		static char *dbname = NULL;

		if (dbname == NULL)
		{
			char	   *db = get_database_name(MyDatabaseId);

			dbname = MemoryContextStrdup(TopMemoryContext, db ? db : "postgres");
		}
		strlcpy(key.service, dbname, sizeof(key.service));
	}
	c = hash_search(pending_counts, &key, HASH_ENTER, &found);
	if (!found)
	{
		c->published = 0;
		c->first = now;
	}
	c->published++;
	c->last = now;
}

/* ------------------------------------------------------------- the hook */

/*
 * registry_publish_validator
 *		The PublishValidator: validate payload against the registered schema
 *		of (topic, version or latest), warn about a deprecated version, count
 *		the event, and return the version to stamp into _tchu_meta (palloc'd
 *		in the caller's context).  Topics without a registered schema pass
 *		unchanged unless celerysalt.require_registration is on.
 */
static const char *
registry_publish_validator(const char *topic, Jsonb *payload, const char *version)
{
	RegistryTopic *entry = registry_lookup(topic);
	RegistryVersion *v;
	Jsonb	   *errors = NULL;

	if (entry == NULL || entry->nversions == 0)
	{
		if (celerysalt_require_registration)
			raise_unregistered(topic, true);
		if (entry != NULL)
			counts_note(topic);
		return version;
	}

	v = registry_find_version(topic, entry, version);
	if (!registry_check_payload(v, payload, &errors))
		raise_invalid_payload(topic, v->version, errors);

	if (v->deprecated && v->warned_lxid != MyProc->lxid)
	{
		v->warned_lxid = MyProc->lxid;
		ereport(WARNING,
				(errcode(ERRCODE_WARNING_DEPRECATED_FEATURE),
				 errmsg("schema version \"%s\" of topic \"%s\" is deprecated", v->version, topic),
				 errdetail("Reason: %s", v->deprecated_reason ? v->deprecated_reason : "none given."),
				 entry->versions[0].deprecated ? 0 :
				 errhint("The latest version is \"%s\".", entry->versions[0].version)));
	}

	counts_note(topic);
	return pstrdup(v->version);
}

/*
 * registry_rpc_response_validator
 *		The RpcResponseValidator: when the topic's version is registered with
 *		mode 'rpc' and a response_schema (or, for a business error, an
 *		error_schema), the handler's answer must satisfy it, formats asserted.
 */
static void
registry_rpc_response_validator(const char *topic, const char *version,
								Jsonb *response, bool is_error)
{
	RegistryTopic *entry = registry_lookup(topic);
	RegistryVersion *v;
	Jsonb	   *schema;
	Jsonb	   *errors;

	if (entry == NULL || entry->nversions == 0)
		return;
	v = registry_find_version(topic, entry, version);
	schema = is_error ? v->error_schema : v->response_schema;
	if (!v->rpc || schema == NULL)
		return;
	if (!check_against(is_error ? &v->compiled_error : &v->compiled_response,
					   schema, response, &errors))
		raise_invalid(ERRCODE_RPC_INVALID_RESPONSE, is_error ? "RPC error" : "RPC response",
					  topic, v->version, errors);
}

/*
 * RegistryInit
 *		Install the publish validator and the cache invalidation callback.
 *		Called from _PG_init in every backend that loads the library.
 */
void
RegistryInit(void)
{
	celerysalt_publish_validator = registry_publish_validator;
	celerysalt_rpc_response_validator = registry_rpc_response_validator;
	CacheRegisterRelcacheCallback(registry_relcache_callback, (Datum) 0);
}

/* ------------------------------------------------------ SQL functions */

/*
 * celerysalt_validate_event(topic text, payload jsonb, version text DEFAULT 'latest')
 *		RETURNS boolean
 *		Whether payload is valid against the registered schema, formats
 *		asserted.  Unknown topic or version: error 42704.
 */
Datum
celerysalt_validate_event(PG_FUNCTION_ARGS)
{
	char	   *topic = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Jsonb	   *payload = PG_GETARG_JSONB_P(1);
	char	   *version = text_to_cstring(PG_GETARG_TEXT_PP(2));
	RegistryTopic *entry = NULL;
	RegistryVersion *v;

	if (strlen(topic) <= CELERYSALT_MAX_TOPIC_LEN)
		entry = registry_lookup(topic);
	if (entry == NULL || entry->nversions == 0)
		raise_unregistered(topic, false);
	v = registry_find_version(topic, entry, version);
	PG_RETURN_BOOL(registry_check_payload(v, payload, NULL));
}

/*
 * celerysalt_event_errors(topic text, payload jsonb, version text DEFAULT 'latest')
 *		RETURNS jsonb
 *		Why payload is invalid against the registered schema, checked as
 *		celerysalt_validate_event checks it: [] when valid.  NULL version
 *		means the latest; NULL topic or payload gives NULL.  Unknown topic or
 *		version: error 42704.
 */
Datum
celerysalt_event_errors(PG_FUNCTION_ARGS)
{
	char	   *topic;
	Jsonb	   *payload;
	char	   *version = NULL;
	RegistryTopic *entry = NULL;
	RegistryVersion *v;
	Jsonb	   *errors = NULL;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	topic = text_to_cstring(PG_GETARG_TEXT_PP(0));
	payload = PG_GETARG_JSONB_P(1);
	if (!PG_ARGISNULL(2))
		version = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (strlen(topic) <= CELERYSALT_MAX_TOPIC_LEN)
		entry = registry_lookup(topic);
	if (entry == NULL || entry->nversions == 0)
		raise_unregistered(topic, false);
	v = registry_find_version(topic, entry, version);
	if (registry_check_payload(v, payload, &errors))
		PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum("[]")));
	PG_RETURN_JSONB_P(errors);
}

/*
 * _celerysalt_registry_changed() RETURNS trigger
 *		Statement trigger of celerysalt_schemas: invalidate every backend's
 *		registry cache when the registering transaction commits.
 */
Datum
_celerysalt_registry_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "_celerysalt_registry_changed: not called as a trigger");
	CacheInvalidateRelcacheByRelid(RelationGetRelid(trigdata->tg_relation));
	PG_RETURN_POINTER(NULL);
}

/*
 * _celerysalt_check_names(topic text, version text) RETURNS void
 *		Raise 22023 unless topic is a publishable topic and version (unless
 *		NULL) a usable version label (event.c's definitions), not "latest".
 */
Datum
_celerysalt_check_names(PG_FUNCTION_ARGS)
{
	char	   *version;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("topic must not be null")));
	EventCheckName(EVENT_NAME_TOPIC, text_to_cstring(PG_GETARG_TEXT_PP(0)));
	if (PG_ARGISNULL(1))
		PG_RETURN_VOID();		/* only the topic to check */
	version = text_to_cstring(PG_GETARG_TEXT_PP(1));
	EventCheckName(EVENT_NAME_VERSION, version);
	if (pg_strcasecmp(version, "latest") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"latest\" cannot be used as a schema version"),
				 errdetail("\"latest\" always names the highest registered version."),
				 errhint("Use versions such as \"v1\", \"v2\" or \"v1.2\".")));
	PG_RETURN_VOID();
}

/* ---- first difference of two JSON documents ---- */

static JsonbValue *
keyed_values(JsonbContainer *c, int *n, JsonbValue **vals)
{
	int			count = JsonContainerSize(c);
	JsonbValue *keys = palloc(sizeof(JsonbValue) * Max(count, 1));
	JsonbIterator *it = JsonbIteratorInit(c);
	JsonbValue	tok;
	JsonbIteratorToken r;
	int			i = 0;

	*vals = palloc(sizeof(JsonbValue) * Max(count, 1));
	while ((r = JsonbIteratorNext(&it, &tok, true)) != WJB_DONE)
	{
		if (r == WJB_KEY)
			keys[i] = tok;
		else if (r == WJB_VALUE)
			(*vals)[i++] = tok;
	}
	*n = i;
	return keys;
}

/* jsonb's key order: shorter first, then bytewise */
static int
key_cmp(const JsonbValue *a, const JsonbValue *b)
{
	if (a->val.string.len != b->val.string.len)
		return a->val.string.len < b->val.string.len ? -1 : 1;
	return memcmp(a->val.string.val, b->val.string.val, a->val.string.len);
}

/*
 * Find the first place where a and b differ (in jsonb's key order, then
 * array order).  Returns false if they are equal; otherwise path holds the
 * JSON Pointer and *da / *db the differing values (NULL where missing).
 */
static bool
first_difference(JsonbValue *a, JsonbValue *b, StringInfo path,
				 JsonbValue **da, JsonbValue **db)
{
	bool		aobj = a->type == jbvBinary && JsonContainerIsObject(a->val.binary.data);
	bool		bobj = b->type == jbvBinary && JsonContainerIsObject(b->val.binary.data);
	bool		aarr = a->type == jbvBinary && JsonContainerIsArray(a->val.binary.data);
	bool		barr = b->type == jbvBinary && JsonContainerIsArray(b->val.binary.data);

	check_stack_depth();
	if (aobj && bobj)
	{
		int			na,
					nb,
					i = 0,
					j = 0;
		JsonbValue *va,
				   *vb;
		JsonbValue *ka = keyed_values(a->val.binary.data, &na, &va);
		JsonbValue *kb = keyed_values(b->val.binary.data, &nb, &vb);

		while (i < na || j < nb)
		{
			int			c = i >= na ? 1 : j >= nb ? -1 : key_cmp(&ka[i], &kb[j]);

			if (c < 0)
			{
				JbvAppendPointerToken(path, ka[i].val.string.val, ka[i].val.string.len);
				*da = &va[i];
				*db = NULL;
				return true;
			}
			if (c > 0)
			{
				JbvAppendPointerToken(path, kb[j].val.string.val, kb[j].val.string.len);
				*da = NULL;
				*db = &vb[j];
				return true;
			}
			{
				int			save = path->len;

				JbvAppendPointerToken(path, ka[i].val.string.val, ka[i].val.string.len);
				if (first_difference(&va[i], &vb[j], path, da, db))
					return true;
				path->len = save;
				path->data[save] = '\0';
			}
			i++, j++;
		}
		return false;
	}
	if (aarr && barr)
	{
		int			na = JsonContainerSize(a->val.binary.data);
		int			nb = JsonContainerSize(b->val.binary.data);

		for (int i = 0; i < Max(na, nb); i++)
		{
			int			save = path->len;

			appendStringInfo(path, "/%d", i);
			if (i >= na || i >= nb)
			{
				*da = i < na ? getIthJsonbValueFromContainer(a->val.binary.data, i) : NULL;
				*db = i < nb ? getIthJsonbValueFromContainer(b->val.binary.data, i) : NULL;
				return true;
			}
			if (first_difference(getIthJsonbValueFromContainer(a->val.binary.data, i),
								 getIthJsonbValueFromContainer(b->val.binary.data, i),
								 path, da, db))
				return true;
			path->len = save;
			path->data[save] = '\0';
		}
		return false;
	}
	if (a->type != jbvBinary && b->type != jbvBinary && JbvEqual(a, b))
		return false;
	*da = a;
	*db = b;
	return true;
}

static void
root_value(Jsonb *jb, JsonbValue *out)
{
	if (JB_ROOT_IS_SCALAR(jb))
		*out = *getIthJsonbValueFromContainer(&jb->root, 0);
	else
	{
		out->type = jbvBinary;
		out->val.binary.data = &jb->root;
		out->val.binary.len = VARSIZE(jb) - VARHDRSZ;
	}
}

/*
 * _celerysalt_schema_first_difference(registered jsonb, given jsonb,
 *		OUT path text, OUT registered_value jsonb, OUT given_value jsonb)
 *		The JSON Pointer of the first difference (NULLs when equal).
 */
Datum
_celerysalt_schema_first_difference(PG_FUNCTION_ARGS)
{
	Jsonb	   *a = PG_GETARG_JSONB_P(0);
	Jsonb	   *b = PG_GETARG_JSONB_P(1);
	JsonbValue	va,
				vb;
	JsonbValue *da = NULL,
			   *db = NULL;
	StringInfoData path;
	TupleDesc	desc;
	Datum		values[3];
	bool		nulls[3] = {true, true, true};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	desc = BlessTupleDesc(desc);

	root_value(a, &va);
	root_value(b, &vb);
	initStringInfo(&path);
	if (first_difference(&va, &vb, &path, &da, &db))
	{
		values[0] = CStringGetTextDatum(path.data);
		nulls[0] = false;
		if (da)
		{
			values[1] = JsonbPGetDatum(JsonbValueToJsonb(da));
			nulls[1] = false;
		}
		if (db)
		{
			values[2] = JsonbPGetDatum(JsonbValueToJsonb(db));
			nulls[2] = false;
		}
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
