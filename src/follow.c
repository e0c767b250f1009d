/*-------------------------------------------------------------------------
 *
 * follow.c
 *		The follow-action row trigger: on UPDATE, evaluate the rules stored in
 *		the row's rules column (on_change_rules) against the old and new
 *		row, enqueue an event in the outbox for every rule that matches, and
 *		rewrite the rules column for persist "False" / "ForceFalse", all in
 *		the UPDATE's own transaction.  Also celerysalt.follow_action_errors
 *		and the failure log celerysalt_follow_action_failures.
 *
 * The trigger is a BEFORE INSERT OR UPDATE FOR EACH ROW trigger (INSERT only
 * vets who stores rules) created by celerysalt_attach_follow_actions() (sql/install/40_follow.sql) with the
 * rules column's name as its argument.  Its name sorts after ordinary
 * trigger names, so it sees the row as other BEFORE triggers left it.
 * Rules are read in place from the old row; reading and comparing them is
 * follow_rules.c's job, building a firing rule's payload follow_payload.c's.
 * docs/follow-actions.md has the semantics.
 *
 * Per relation we cache the rules column, the primary key and how each
 * column becomes JSON; a relcache invalidation marks the entry stale.
 * Everything per row is allocated in the per-tuple context the executor
 * calls triggers in.
 *
 *-------------------------------------------------------------------------
 */
#include "follow.h"
#include "guc.h"
#include "dbslot.h"
#include "catalog.h"
#include "event.h"
#include "outbox.h"

#include "access/detoast.h"
#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(_celerysalt_follow_actions_trigger);

/* ---------------------------------------------------------- relation cache */

typedef struct FollowRelCache
{
	Oid			relid;			/* hash key */
	bool		valid;
	MemoryContext cxt;			/* owns columns and names below */
	char		rules_column[NAMEDATALEN];
	AttrNumber	rules_attnum;
	int			natts;
	FollowColumn *columns;		/* [natts], filled lazily */
	int			npk;			/* primary key columns, 0 = none */
	AttrNumber	pk[INDEX_MAX_KEYS];
	char	   *relname;		/* for messages */
	char	   *qualname;		/* schema.table, for the default payload */

	/*
	 * The rules value of the last row and its parsed rules.  In a bulk
	 * UPDATE rows usually carry byte-identical rules: then the next row
	 * reuses them.  Lives in rules_cxt, a child of cxt.
	 */
	MemoryContext rules_cxt;
	Jsonb	   *last_rules;
	struct ParsedRule *last_parsed;
	struct varlena *last_image; /* last_rules as stored in the row (maybe
								 * compressed), when stored in line */

	/*
	 * Whether acl_user may SELECT each column (by attnum - 1): 0 not yet
	 * checked, 1 yes, -1 no.  Reset when the user changes, when role
	 * memberships change (acl_generation) and, with the entry, when the
	 * table's privileges change (a relcache invalidation).
	 */
	Oid			acl_user;
	uint64		acl_generation;
	int8	   *col_readable;
} FollowRelCache;

/* One rule of a rules array, read once. */
typedef struct ParsedRule
{
	JsonbValue *elem;			/* the array element */
	bool		readable;		/* rule and attnum are valid ... */
	FollowFailure failure;		/* ... or why not */
	FollowRule	rule;
	AttrNumber	attnum;			/* column named by field_name */
	FollowPayloadReads reads;	/* the other columns it reads: its payload's */
} ParsedRule;

static HTAB *follow_cache = NULL;
static FollowRelCache *follow_cache_last = NULL;	/* entry of the last call */
static MemoryContext follow_cache_cxt = NULL;
static int	follow_depth = 0;	/* trigger calls in progress */
static uint64 follow_acl_generation = 0;	/* bumped when memberships change */

static void
follow_cache_invalidate(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS seq;
	FollowRelCache *entry;

	if (follow_cache == NULL)
		return;
	if (OidIsValid(relid))
	{
		entry = hash_search(follow_cache, &relid, HASH_FIND, NULL);
		if (entry != NULL)
			entry->valid = false;
		return;
	}
	hash_seq_init(&seq, follow_cache);
	while ((entry = hash_seq_search(&seq)) != NULL)
		entry->valid = false;
}

/* Role memberships changed: every cached column privilege is stale. */
static void
follow_acl_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	follow_acl_generation++;
}

/*
 * The cache entry of rel, (re)built when stale.  Raises an error when the
 * rules column does not exist or is not jsonb: the trigger was set up for
 * a table that has changed since.
 */
static FollowRelCache *
follow_cache_entry(Relation rel, const char *rules_column)
{
	Oid			relid = RelationGetRelid(rel);
	TupleDesc	tupdesc = RelationGetDescr(rel);
	FollowRelCache *entry;
	bool		found;
	MemoryContext cxt;
	int			attnum;
	Oid			pkoid;

	/* a bulk UPDATE calls the trigger for one relation many times */
	entry = follow_cache_last;
	if (entry != NULL && entry->relid == relid && entry->valid &&
		entry->natts == tupdesc->natts && strcmp(entry->rules_column, rules_column) == 0)
		return entry;

	if (follow_cache == NULL)
	{
		HASHCTL		ctl;

		follow_cache_cxt = AllocSetContextCreate(CacheMemoryContext,
												 "celerysalt follow-action cache",
												 ALLOCSET_SMALL_SIZES);
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(FollowRelCache);
		ctl.hcxt = follow_cache_cxt;
		follow_cache = hash_create("celerysalt follow-action relations", 16, &ctl,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		CacheRegisterRelcacheCallback(follow_cache_invalidate, (Datum) 0);
		CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, follow_acl_invalidate, (Datum) 0);
	}

	entry = hash_search(follow_cache, &relid, HASH_ENTER, &found);
	if (!found)
	{
		entry->valid = false;
		entry->cxt = NULL;
	}
	follow_cache_last = entry;	/* dynahash entries never move */
	if (entry->valid && entry->natts == tupdesc->natts &&
		strcmp(entry->rules_column, rules_column) == 0)
		return entry;

	attnum = FollowFindColumn(tupdesc, rules_column, strlen(rules_column));
	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("follow-action rules column \"%s\" does not exist in table \"%s\"",
						rules_column, RelationGetRelationName(rel)),
				 errhint("Run celerysalt_attach_follow_actions() again with the rules column's name, or celerysalt_detach_follow_actions().")));
	if (TupleDescAttr(tupdesc, attnum - 1)->atttypid != JSONBOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("follow-action rules column \"%s\" of table \"%s\" is not of type jsonb",
						rules_column, RelationGetRelationName(rel))));

	/*
	 * A new context for the new entry.  The old one may still be in use by a
	 * call further up the stack (a nested UPDATE of the same table): free it
	 * only when no other call is running.
	 */
	cxt = AllocSetContextCreate(follow_cache_cxt, "celerysalt follow-action relation",
								ALLOCSET_SMALL_SIZES);
	if (entry->cxt != NULL && follow_depth <= 1)
		MemoryContextDelete(entry->cxt);
	entry->cxt = cxt;
	entry->valid = false;

	strlcpy(entry->rules_column, rules_column, NAMEDATALEN);
	entry->rules_attnum = attnum;
	entry->natts = tupdesc->natts;
	entry->columns = MemoryContextAllocZero(cxt, sizeof(FollowColumn) * tupdesc->natts);
	entry->col_readable = MemoryContextAllocZero(cxt, sizeof(int8) * tupdesc->natts);
	entry->acl_user = InvalidOid;
	entry->relname = MemoryContextStrdup(cxt, RelationGetRelationName(rel));
	entry->qualname = MemoryContextStrdup(cxt,
										  psprintf("%s.%s",
												   get_namespace_name(RelationGetNamespace(rel)),
												   RelationGetRelationName(rel)));
	entry->rules_cxt = AllocSetContextCreate(cxt, "celerysalt follow-action rules",
											 ALLOCSET_SMALL_SIZES);
	entry->last_rules = NULL;
	entry->last_parsed = NULL;
	entry->last_image = NULL;
	entry->npk = 0;
	pkoid = RelationGetPrimaryKeyIndex(rel);
	if (OidIsValid(pkoid))
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(pkoid));
		Form_pg_index index;

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for index %u", pkoid);
		index = (Form_pg_index) GETSTRUCT(tup);
		for (int i = 0; i < index->indnkeyatts; i++)
			entry->pk[entry->npk++] = index->indkey.values[i];
		ReleaseSysCache(tup);
	}
	entry->valid = true;
	return entry;
}

/* ------------------------------------------------------------- row access */

/* What one trigger call works with. */
typedef struct FollowCall
{
	Relation	rel;
	TupleDesc	tupdesc;
	FollowRelCache *entry;
	HeapTuple	oldtup;
	HeapTuple	newtup;
	TupleTableSlot *oldslot;	/* the same rows in the executor's slots: */
	TupleTableSlot *newslot;	/* columns are deformed once, on demand */
	int			rule_index;		/* rule being processed, for messages */
	int			row_changed;	/* -1 unknown, else bool */
} FollowCall;

/*
 * Column attnum of the old or new row.  The slots deform a row only as far
 * as the columns asked for, once per row.
 */
static inline Datum
row_attr(FollowCall *call, bool new_row, int attnum, bool *isnull)
{
	return slot_getattr(new_row ? call->newslot : call->oldslot, attnum, isnull);
}

/*
 * Whether two non-null values of column att are the same value: what
 * datum_image_eq() answers, without detoasting when it can be avoided —
 * two plain in-line varlenas are compared directly, two identical
 * compressed images or two pointers to the same TOAST value are equal.
 */
static inline bool
same_image(Datum a, Datum b, Form_pg_attribute att)
{
	if (att->attlen == -1)
	{
		Pointer		pa = DatumGetPointer(a);
		Pointer		pb = DatumGetPointer(b);

		if (pa == pb)
			return true;
		if (!VARATT_IS_EXTERNAL(pa) && !VARATT_IS_COMPRESSED(pa) &&
			!VARATT_IS_EXTERNAL(pb) && !VARATT_IS_COMPRESSED(pb))
		{
			Size		len = VARSIZE_ANY_EXHDR(pa);

			return len == VARSIZE_ANY_EXHDR(pb) &&
				memcmp(VARDATA_ANY(pa), VARDATA_ANY(pb), len) == 0;
		}
		if (VARATT_IS_COMPRESSED(pa) && VARATT_IS_COMPRESSED(pb) &&
			VARSIZE(pa) == VARSIZE(pb) && memcmp(pa, pb, VARSIZE(pa)) == 0)
			return true;
		if (VARATT_IS_EXTERNAL_ONDISK(pa) && VARATT_IS_EXTERNAL_ONDISK(pb))
		{
			struct varatt_external ea;
			struct varatt_external eb;

			/* both rows exist: the same TOAST value id is the same value */
			VARATT_EXTERNAL_GET_POINTER(ea, pa);
			VARATT_EXTERNAL_GET_POINTER(eb, pb);
			if (ea.va_toastrelid == eb.va_toastrelid && ea.va_valueid == eb.va_valueid)
				return true;
		}
	}
	return datum_image_eq(a, b, att->attbyval, att->attlen);
}

/*
 * Whether the rules value d, as stored in the row, is byte for byte the
 * one whose parsed rules the relation's cache holds (in-line values only:
 * a TOAST pointer is not a lasting identity).
 */
static inline bool
cached_image(FollowRelCache *entry, Datum d)
{
	Pointer		p = DatumGetPointer(d);

	return entry->last_image != NULL && !VARATT_IS_EXTERNAL(p) &&
		VARSIZE_ANY(p) == VARSIZE_ANY(entry->last_image) &&
		memcmp(p, entry->last_image, VARSIZE_ANY(p)) == 0;
}

static FollowColumn *
column_info(FollowCall *call, int attnum)
{
	FollowColumn *col = &call->entry->columns[attnum - 1];

	if (col->kind == FOLLOW_KIND_UNSET)
		FollowColumnInit(col, TupleDescAttr(call->tupdesc, attnum - 1)->atttypid,
						 call->entry->cxt);
	return col;
}

/* The JSON value of column attnum in the old or new row. */
static void
column_value(FollowCall *call, int attnum, bool new_row, JsonbValue *out)
{
	bool		isnull;
	Datum		d = row_attr(call, new_row, attnum, &isnull);

	FollowDatumToValue(column_info(call, attnum), d, isnull, out);
}

/*
 * Whether column attnum differs between the old and the new row as JSON.
 * Fills oldv and newv when it does.
 */
static bool
column_changed(FollowCall *call, int attnum, JsonbValue *oldv, JsonbValue *newv)
{
	Form_pg_attribute att = TupleDescAttr(call->tupdesc, attnum - 1);
	bool		oldnull;
	bool		newnull;
	Datum		o = row_attr(call, false, attnum, &oldnull);
	Datum		n = row_attr(call, true, attnum, &newnull);
	FollowColumn *col;

	if (oldnull && newnull)
		return false;
	if (!oldnull && !newnull && same_image(o, n, att))
		return false;
	col = column_info(call, attnum);
	FollowDatumToValue(col, o, oldnull, oldv);
	FollowDatumToValue(col, n, newnull, newv);
	return !FollowValuesEqual(oldv, newv);
}

/* Whether any column but the rules column changed (binary comparison). */
static bool
row_changed(FollowCall *call)
{
	if (call->row_changed >= 0)
		return call->row_changed;
	call->row_changed = 0;
	for (int i = 1; i <= call->tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(call->tupdesc, i - 1);
		bool		oldnull;
		bool		newnull;
		Datum		o;
		Datum		n;

		if (att->attisdropped || i == call->entry->rules_attnum)
			continue;
		o = row_attr(call, false, i, &oldnull);
		n = row_attr(call, true, i, &newnull);
		if (oldnull != newnull ||
			(!oldnull && !same_image(o, n, att)))
		{
			call->row_changed = 1;
			break;
		}
	}
	return call->row_changed;
}

/* Push the primary key of the new row: its value, or an object for a
 * composite key.  False when the table has none. */
static bool
push_pk(FollowCall *call, JsonbParseState **st, JsonbIteratorToken seq)
{
	FollowRelCache *entry = call->entry;
	JsonbValue	v;

	if (entry->npk == 0)
		return false;
	if (entry->npk == 1)
	{
		column_value(call, entry->pk[0], true, &v);
		pushJsonbValue(st, seq, &v);
		return true;
	}
	pushJsonbValue(st, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < entry->npk; i++)
	{
		JsonbValue	key;

		key.type = jbvString;
		key.val.string.val = NameStr(TupleDescAttr(call->tupdesc, entry->pk[i] - 1)->attname);
		key.val.string.len = strlen(key.val.string.val);
		pushJsonbValue(st, WJB_KEY, &key);
		column_value(call, entry->pk[i], true, &v);
		pushJsonbValue(st, WJB_VALUE, &v);
	}
	pushJsonbValue(st, WJB_END_OBJECT, NULL);
	return true;
}

/* The row's key for the failure log: {pk column: value, ...} or {"ctid": ...}. */
static Jsonb *
row_key(FollowCall *call)
{
	JsonbParseState *st = NULL;
	JsonbValue	key;
	JsonbValue	v;
	JsonbValue *res;

	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	key.type = jbvString;
	if (call->entry->npk == 0)
	{
		key.val.string.val = "ctid";
		key.val.string.len = 4;
		pushJsonbValue(&st, WJB_KEY, &key);
		v.type = jbvString;
		v.val.string.val = psprintf("(%u,%u)",
									ItemPointerGetBlockNumber(&call->oldtup->t_self),
									ItemPointerGetOffsetNumber(&call->oldtup->t_self));
		v.val.string.len = strlen(v.val.string.val);
		pushJsonbValue(&st, WJB_VALUE, &v);
	}
	for (int i = 0; i < call->entry->npk; i++)
	{
		AttrNumber	a = call->entry->pk[i];

		key.val.string.val = NameStr(TupleDescAttr(call->tupdesc, a - 1)->attname);
		key.val.string.len = strlen(key.val.string.val);
		pushJsonbValue(&st, WJB_KEY, &key);
		column_value(call, a, false, &v);
		pushJsonbValue(&st, WJB_VALUE, &v);
	}
	res = pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(res);
}

/* ------------------------------------------------------------- payloads */

static void
payload_column_value(void *arg, int attnum, bool new_row, JsonbValue *out)
{
	column_value((FollowCall *) arg, attnum, new_row, out);
}

static bool
payload_push_pk(void *arg, JsonbParseState **st, JsonbIteratorToken seq)
{
	return push_pk((FollowCall *) arg, st, seq);
}

/* The payload of a firing rule (follow_payload.c builds it from the row). */
static Jsonb *
build_payload(FollowCall *call, const FollowRule *rule, const JsonbValue *oldv,
			  const JsonbValue *newv, FollowFailure *failure)
{
	FollowPayloadRow row;

	row.tupdesc = call->tupdesc;
	row.qualname = call->entry->qualname;
	row.arg = call;
	row.column_value = payload_column_value;
	row.push_pk = payload_push_pk;
	return FollowPayloadBuild(&row, rule, oldv, newv, failure);
}

/* ------------------------------------------------------ failures and events */

static SPIPlanPtr failure_plan = NULL;
static Oid	failure_plan_schema = InvalidOid;

/* Insert one row into celerysalt_follow_action_failures. */
static void
record_failure(FollowCall *call, JsonbValue *elem, int sqlerrcode,
			   const char *reason, const char *topic, Jsonb *payload)
{
	Oid			argtypes[9] = {OIDOID, TEXTOID, JSONBOID, INT4OID, JSONBOID,
	TEXTOID, JSONBOID, TEXTOID, TEXTOID};
	Datum		values[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	Oid			schema;
	Oid			owner;
	CatalogOwnerSection owner_section;
	int			rc;

	values[0] = ObjectIdGetDatum(RelationGetRelid(call->rel));
	values[1] = CStringGetTextDatum(call->entry->qualname);
	values[2] = JsonbPGetDatum(row_key(call));
	values[3] = Int32GetDatum(call->rule_index);
	nulls[3] = call->rule_index >= 0 ? ' ' : 'n';
	if (elem != NULL)
		values[4] = JsonbPGetDatum(JsonbValueToJsonb(elem));
	else
		nulls[4] = 'n';
	if (topic != NULL)
		values[5] = CStringGetTextDatum(topic);
	else
		nulls[5] = 'n';
	if (payload != NULL)
		values[6] = JsonbPGetDatum(payload);
	else
		nulls[6] = 'n';
	values[7] = CStringGetTextDatum(unpack_sql_state(sqlerrcode));
	values[8] = CStringGetTextDatum(reason);

	SPI_connect();
	schema = CatalogExtensionSchema(false);
	owner = CatalogRelationOwner(get_relname_relid("celerysalt_follow_action_failures", schema));
	if (failure_plan == NULL || failure_plan_schema != schema)
	{
		char	   *sql;

		if (failure_plan != NULL)
			SPI_freeplan(failure_plan);
		failure_plan = NULL;
		sql = psprintf("INSERT INTO %s (table_oid, table_name, row_key, rule_index, rule,"
					   " topic, payload, sqlstate, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
					   CatalogQualifiedName("celerysalt_follow_action_failures"));
		failure_plan = SPI_prepare(sql, 9, argtypes);
		if (failure_plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(failure_plan);
		failure_plan_schema = schema;
	}
	/* the updating role needs no privilege on the failure log */
	CatalogEnterOwnerSection(owner, &owner_section);
	rc = SPI_execute_plan(failure_plan, values, nulls, false, 0);
	CatalogLeaveOwnerSection(&owner_section);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not record a follow-action failure: %s", SPI_result_code_string(rc));
	SPI_finish();
}

/*
 * A rule could not be evaluated or published: fail the statement, or
 * record the failure and warn, as celerysalt.follow_action_errors says.
 */
static void
rule_failed(FollowCall *call, JsonbValue *elem, int sqlerrcode,
			const char *reason, const char *topic, Jsonb *payload)
{
	/*
	 * An UPDATE that changes nothing but the rules column evaluates no rule,
	 * so that broken rules can always be repaired or removed.
	 */
	if (!row_changed(call))
		return;

	DbslotCount(DBSLOT_COUNTER(follow_failed_total));
	if (celerysalt_follow_action_errors == FOLLOW_ERRORS_ERROR)
		ereport(ERROR,
				(errcode(sqlerrcode),
				 call->rule_index >= 0 ?
				 errmsg("cannot evaluate follow-action rule %d of table \"%s\"",
						call->rule_index, call->entry->relname) :
				 errmsg("cannot evaluate the follow-action rules of table \"%s\"",
						call->entry->relname),
				 errdetail_internal("%s", reason),
				 errhint("Fix or remove the rule (celerysalt_follow_action_check() shows what is wrong), "
						 "or set celerysalt.follow_action_errors to 'dead_letter' to record such failures instead.")));

	record_failure(call, elem, sqlerrcode, reason, topic, payload);
	ereport(WARNING,
			(errcode(sqlerrcode),
			 call->rule_index >= 0 ?
			 errmsg("follow-action rule %d of table \"%s\" failed; recorded in celerysalt_follow_action_failures",
					call->rule_index, call->entry->relname) :
			 errmsg("follow-action rules of table \"%s\" failed; recorded in celerysalt_follow_action_failures",
					call->entry->relname),
			 errdetail_internal("%s", reason)));
}

/* Check and enqueue one event; raises errors. */
static void
enqueue_event(const char *topic, Jsonb *payload, const char *version)
{
	RequirePreload();
	version = EventIntake(topic, payload, version, NULL);
	(void) OutboxEnqueue(topic, payload, version, NULL);
}

static char *
member_string(const FollowRule *rule, const char *name, bool *bad)
{
	JsonbValue *v = FollowGetMember(rule->obj, name);

	*bad = false;
	if (v == NULL || v->type == jbvNull)
		return NULL;
	if (v->type != jbvString)
	{
		*bad = true;
		return NULL;
	}
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * Publish the event of a rule that matched.  Returns true when it was
 * enqueued; false when the failure was recorded instead (dead_letter).
 */
static bool
fire_rule(FollowCall *call, JsonbValue *elem, const FollowRule *rule,
		  const JsonbValue *oldv, const JsonbValue *newv)
{
	FollowFailure failure;
	bool		bad;
	char	   *topic;
	char	   *version;
	Jsonb	   *payload;
	MemoryContext oldcxt;
	ResourceOwner oldowner;
	volatile bool ok = true;

	topic = member_string(rule, "topic", &bad);
	if (topic == NULL)
	{
		rule_failed(call, elem, bad ? ERRCODE_INVALID_PARAMETER_VALUE : ERRCODE_NULL_VALUE_NOT_ALLOWED,
					bad ? "The rule's topic is not a string." : "The rule has no topic.",
					NULL, NULL);
		return false;
	}
	version = member_string(rule, "version", &bad);
	if (bad || (version != NULL && (strlen(version) == 0 || strlen(version) > 64)))
	{
		rule_failed(call, elem, ERRCODE_INVALID_PARAMETER_VALUE,
					"The rule's version is not a string of 1 to 64 bytes.", topic, NULL);
		return false;
	}
	payload = build_payload(call, rule, oldv, newv, &failure);
	if (payload == NULL)
	{
		rule_failed(call, elem, failure.sqlerrcode, failure.message, topic, NULL);
		return false;
	}

	if (celerysalt_follow_action_errors == FOLLOW_ERRORS_ERROR)
	{
		enqueue_event(topic, payload, version);
		DbslotCount(DBSLOT_COUNTER(follow_fired_total));
		return true;
	}

	/* dead_letter: publish in a subtransaction and record what fails */
	oldcxt = CurrentMemoryContext;
	oldowner = CurrentResourceOwner;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		enqueue_event(topic, payload, version);
		DbslotCount(DBSLOT_COUNTER(follow_fired_total));
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;

		/*
		 * A cancel (statement_timeout included) or a failed assertion is not
		 * a failure of the rule: like PL/pgSQL's OTHERS, never swallow it.
		 */
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
			edata->sqlerrcode == ERRCODE_ASSERT_FAILURE)
			ReThrowError(edata);
		ok = false;

		rule_failed(call, elem, edata->sqlerrcode,
					edata->detail ? psprintf("%s: %s", edata->message, edata->detail)
					: edata->message,
					topic, payload);
		FreeErrorData(edata);
	}
	PG_END_TRY();
	return ok;
}

static void
follow_error_context(void *arg)
{
	FollowCall *call = (FollowCall *) arg;

	if (call->rule_index >= 0)
		errcontext("follow-action rule %d of table \"%s\"",
				   call->rule_index, call->entry->relname);
}

/* ------------------------------------------------------------- the trigger */

/* Whether the current user may SELECT column attnum (cached per relation). */
static bool
column_readable(FollowCall *call, AttrNumber attnum)
{
	FollowRelCache *entry = call->entry;
	Oid			user = GetUserId();
	int8	   *r;

	if (entry->acl_user != user || entry->acl_generation != follow_acl_generation)
	{
		memset(entry->col_readable, 0, sizeof(int8) * entry->natts);
		entry->acl_user = user;
		entry->acl_generation = follow_acl_generation;
	}
	r = &entry->col_readable[attnum - 1];
	if (*r == 0)	/* a table grant covers every column, or a column grant */
		*r = (pg_class_aclcheck(entry->relid, user, ACL_SELECT) == ACLCHECK_OK ||
			  pg_attribute_aclcheck(entry->relid, attnum, user, ACL_SELECT) == ACLCHECK_OK) ? 1 : -1;
	return *r > 0;
}

/*
 * NULL when the current user may SELECT every column rule pr reads, else
 * the name of one it may not: a rule must not reveal, in an event or an
 * error, a value its writer cannot read.
 */
static const char *
unreadable_column(FollowCall *call, const ParsedRule *pr)
{
	AttrNumber	bad = InvalidAttrNumber;

	if (!column_readable(call, pr->attnum))
		bad = pr->attnum;
	for (int i = 0; i < pr->reads.ncolumns && bad == InvalidAttrNumber; i++)
		if (!column_readable(call, pr->reads.columns[i]))
			bad = pr->reads.columns[i];
	for (int i = 0; pr->reads.pk && i < call->entry->npk && bad == InvalidAttrNumber; i++)
		if (!column_readable(call, call->entry->pk[i]))
			bad = call->entry->pk[i];
	if (bad == InvalidAttrNumber)
		return NULL;
	return NameStr(TupleDescAttr(call->tupdesc, bad - 1)->attname);
}

/*
 * Read element i of rules array c into out (allocating in the current
 * context; out points into c).
 */
static void
parse_rule(FollowCall *call, JsonbContainer *c, int i, ParsedRule *out)
{
	out->elem = getIthJsonbValueFromContainer(c, i);
	out->readable = FollowReadRule(out->elem, &out->rule, &out->failure);
	if (!out->readable)
		return;
	out->attnum = FollowFindColumn(call->tupdesc, out->rule.field, out->rule.field_len);
	FollowPayloadColumns(FollowGetMember(out->rule.obj, "payload"), call->tupdesc,
						 &out->reads);
	if (out->attnum == InvalidAttrNumber)
	{
		out->readable = false;
		out->failure.sqlerrcode = ERRCODE_UNDEFINED_COLUMN;
		out->failure.message =
			psprintf("The rule's field_name \"%.*s\" names no column of the table.",
					 Min(out->rule.field_len, 63), out->rule.field);
	}
}

/*
 * The parsed rules of rules value rules (n elements, detoasted from image,
 * the value as stored in the row), from the relation's cache when the
 * previous row had byte-identical rules.  The cache is left alone by nested
 * calls (the outer call may be using it).
 */
static ParsedRule *
parse_rules_cached(FollowCall *call, Datum image, Jsonb *rules, int n)
{
	FollowRelCache *entry = call->entry;
	MemoryContext old;
	ParsedRule *parsed;
	Jsonb	   *copy;
	Pointer		raw = DatumGetPointer(image);

	if (follow_depth > 1)
	{
		parsed = palloc(sizeof(ParsedRule) * n);
		for (int i = 0; i < n; i++)
			parse_rule(call, &rules->root, i, &parsed[i]);
		return parsed;
	}
	if (entry->last_rules != NULL &&
		VARSIZE(entry->last_rules) == VARSIZE(rules) &&
		memcmp(entry->last_rules, rules, VARSIZE(rules)) == 0)
		return entry->last_parsed;

	MemoryContextReset(entry->rules_cxt);
	entry->last_rules = NULL;
	entry->last_image = NULL;
	old = MemoryContextSwitchTo(entry->rules_cxt);
	copy = palloc(VARSIZE(rules));
	memcpy(copy, rules, VARSIZE(rules));
	parsed = palloc(sizeof(ParsedRule) * n);
	for (int i = 0; i < n; i++)
		parse_rule(call, &copy->root, i, &parsed[i]);
	if (!VARATT_IS_EXTERNAL(raw))
	{
		entry->last_image = palloc(VARSIZE_ANY(raw));
		memcpy(entry->last_image, raw, VARSIZE_ANY(raw));
	}
	MemoryContextSwitchTo(old);
	entry->last_parsed = parsed;
	entry->last_rules = copy;
	return parsed;
}

/* Whether the rules value holds no rules: null, [] or {}. */
static bool
rules_empty(Jsonb *rules)
{
	if (JB_ROOT_IS_SCALAR(rules))
	{
		JsonbValue	v;

		JsonbExtractScalar(&rules->root, &v);
		return v.type == jbvNull;
	}
	return JB_ROOT_COUNT(rules) == 0;
}

/*
 * Raise 42501 unless the current user may store the rules of newrules that
 * oldrules (NULL for an INSERT) does not hold: a stored rule fires later,
 * in the session of whoever updates the row, and publishes with that
 * role's rights, so whoever writes it must be allowed to publish
 * (celerysalt_publisher) and to read every column it reads.  Malformed
 * rules are left to the evaluation, which reports them.
 */
static void
check_rules_author(FollowCall *call, Jsonb *newrules, Jsonb *oldrules)
{
	Oid			publisher;
	bool		publisher_checked = false;
	int			n;

	if (!JB_ROOT_IS_ARRAY(newrules) || JB_ROOT_IS_SCALAR(newrules) ||
		(n = JB_ROOT_COUNT(newrules)) == 0 || superuser())
		return;
	for (int i = 0; i < n; i++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(&newrules->root, i);
		bool		known = false;
		ParsedRule	pr;
		const char *denied;

		/* known: the old rules hold at least as many copies as the new ones */
		if (oldrules != NULL && JB_ROOT_IS_ARRAY(oldrules) && !JB_ROOT_IS_SCALAR(oldrules))
		{
			int			new_copies = 0;
			int			old_copies = 0;

			for (int j = 0; j <= i; j++)
				new_copies += FollowValuesEqual(e, getIthJsonbValueFromContainer(&newrules->root, j));
			for (int j = 0; j < (int) JB_ROOT_COUNT(oldrules); j++)
				old_copies += FollowValuesEqual(e, getIthJsonbValueFromContainer(&oldrules->root, j));
			known = new_copies <= old_copies;
		}
		if (known)
			continue;

		/* who may publish does not depend on the rule: ask once */
		if (!publisher_checked)
		{
			publisher = get_role_oid("celerysalt_publisher", true);
			publisher_checked = true;
			if (!OidIsValid(publisher) || !has_privs_of_role(GetUserId(), publisher))
				ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to store follow-action rule %d of table \"%s\"",
							i, call->entry->relname),
					 errdetail("A stored rule publishes events when the row is updated; only members of celerysalt_publisher may store one."),
					 errhint("GRANT celerysalt_publisher TO the role that writes the rules.")));
		}
		call->rule_index = i;
		parse_rule(call, &newrules->root, i, &pr);
		call->rule_index = -1;
		if (pr.readable && (denied = unreadable_column(call, &pr)) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to store follow-action rule %d of table \"%s\"",
							i, call->entry->relname),
					 errdetail("The rule reads column \"%s\", which the current user may not SELECT.",
							   denied)));
	}
}

/*
 * The rules one UPDATE works with: the old row's (*oldrules) and the new
 * row's (*newrules, the same pointer when this UPDATE leaves them alone),
 * and, when the relation's cache already holds them parsed, *parsed.
 * False when there is nothing to evaluate.
 */
static bool
rules_of_update(FollowCall *call, Datum olddatum, Datum newdatum,
				Jsonb **oldrules, Jsonb **newrules, ParsedRule **parsed)
{
	Form_pg_attribute rules_att = TupleDescAttr(call->tupdesc,
												call->entry->rules_attnum - 1);

	*parsed = NULL;
	if (follow_depth <= 1 && cached_image(call->entry, olddatum) &&
		same_image(olddatum, newdatum, rules_att))
	{
		/*
		 * The usual row of a bulk UPDATE: the rules of the previous row,
		 * untouched by this UPDATE.  Nothing to detoast or parse.
		 */
		*oldrules = *newrules = call->entry->last_rules;
		*parsed = call->entry->last_parsed;
		return true;
	}
	*oldrules = DatumGetJsonbP(olddatum);
	if (rules_empty(*oldrules))
		return false;
	if (same_image(olddatum, newdatum, rules_att))
		*newrules = *oldrules;
	else
	{
		*newrules = DatumGetJsonbP(newdatum);
		if (rules_empty(*newrules))
			return false;
	}
	return true;
}

/*
 * Which rules of newrules to evaluate (evaluate[i]) and their parsed form:
 * those of the old row that the new row still has.  A rule added by this
 * UPDATE does not fire on it, nor does one it removes.
 */
static ParsedRule *
rules_to_evaluate(FollowCall *call, Datum olddatum, Jsonb *oldrules,
				  Jsonb *newrules, ParsedRule *parsed, bool *evaluate, int n)
{
	int			nold;

	if (newrules == oldrules)
	{
		memset(evaluate, true, sizeof(bool) * n);
		return parsed != NULL ? parsed : parse_rules_cached(call, olddatum, oldrules, n);
	}
	nold = JB_ROOT_COUNT(oldrules);
	parsed = palloc(sizeof(ParsedRule) * n);
	for (int i = 0; i < n; i++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(&newrules->root, i);

		evaluate[i] = false;
		for (int j = 0; j < nold && !evaluate[i]; j++)
			evaluate[i] = FollowValuesEqual(e, getIthJsonbValueFromContainer(&oldrules->root, j));
		if (evaluate[i])
			parse_rule(call, &newrules->root, i, &parsed[i]);
	}
	return parsed;
}

/*
 * Evaluate the rules marked in evaluate, fire those that match, and mark in
 * drop those the UPDATE removes (persist "False" after firing, "ForceFalse"
 * on any change of the row).
 */
static void
evaluate_rules(FollowCall *call, ParsedRule *parsed, const bool *evaluate,
			   bool *drop, int n)
{
	AttrNumber	last_attnum = InvalidAttrNumber;
	bool		last_changed = false;
	JsonbValue	oldv;
	JsonbValue	newv;

	for (int i = 0; i < n; i++)
	{
		ParsedRule *pr = &parsed[i];
		FollowFailure failure;
		bool		matches;
		const char *denied;

		if (!evaluate[i])
			continue;
		call->rule_index = i;
		if (!pr->readable)
		{
			rule_failed(call, pr->elem, pr->failure.sqlerrcode, pr->failure.message, NULL, NULL);
			continue;
		}
		if ((denied = unreadable_column(call, pr)) != NULL)
		{
			rule_failed(call, pr->elem, ERRCODE_INSUFFICIENT_PRIVILEGE,
						psprintf("The rule reads column \"%s\", which the current user may not SELECT.",
								 denied),
						NULL, NULL);
			continue;
		}

		if (pr->rule.persist == FOLLOW_PERSIST_FORCE_FALSE && row_changed(call))
			drop[i] = true;

		/* consecutive rules on the same column compare it once */
		if (pr->attnum != last_attnum)
		{
			last_attnum = pr->attnum;
			last_changed = column_changed(call, pr->attnum, &oldv, &newv);
		}
		if (!last_changed)
			continue;
		if (!FollowRuleMatches(&pr->rule, &oldv, &newv, &matches, &failure))
		{
			rule_failed(call, pr->elem, failure.sqlerrcode, failure.message, NULL, NULL);
			continue;
		}
		if (!matches)
			continue;
		if (fire_rule(call, pr->elem, &pr->rule, &oldv, &newv) &&
			pr->rule.persist == FOLLOW_PERSIST_FALSE)
			drop[i] = true;
	}
	call->rule_index = -1;
}

/* The new row with the rules marked in drop removed from its rules column. */
static HeapTuple
without_dropped_rules(FollowCall *call, Jsonb *newrules, const bool *drop, int n)
{
	JsonbParseState *st = NULL;
	JsonbValue *res;
	Datum		value;
	bool		isnull = false;
	int			col = call->entry->rules_attnum;

	pushJsonbValue(&st, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < n; i++)
		if (!drop[i])
			pushJsonbValue(&st, WJB_ELEM,
						   getIthJsonbValueFromContainer(&newrules->root, i));
	res = pushJsonbValue(&st, WJB_END_ARRAY, NULL);
	value = JsonbPGetDatum(JsonbValueToJsonb(res));
	return heap_modify_tuple_by_cols(call->newtup, call->tupdesc, 1, &col, &value, &isnull);
}

/*
 * Evaluate the rules of one UPDATE.  Returns the tuple the UPDATE should
 * store: call->newtup, or a copy with a rewritten rules column.
 */
static HeapTuple
follow_row(FollowCall *call)
{
	AttrNumber	rules_attnum = call->entry->rules_attnum;
	bool		oldnull;
	bool		newnull;
	Datum		olddatum;
	Datum		newdatum;
	Jsonb	   *oldrules;
	Jsonb	   *newrules;
	ParsedRule *parsed;
	int			n;
	bool		evaluate_buf[32];
	bool		drop_buf[32];
	bool	   *evaluate;
	bool	   *drop;

	olddatum = row_attr(call, false, rules_attnum, &oldnull);
	newdatum = row_attr(call, true, rules_attnum, &newnull);
	/* rules this UPDATE writes run later with an updater's rights: vet them */
	if (!newnull &&
		(oldnull || !same_image(olddatum, newdatum,
								TupleDescAttr(call->tupdesc, rules_attnum - 1))))
		check_rules_author(call, DatumGetJsonbP(newdatum),
						   oldnull ? NULL : DatumGetJsonbP(olddatum));
	if (oldnull)
		return call->newtup;	/* no rules before this UPDATE */
	if (newnull)
		return call->newtup;	/* this UPDATE removes every rule */
	if (!rules_of_update(call, olddatum, newdatum, &oldrules, &newrules, &parsed))
		return call->newtup;

	if (!JB_ROOT_IS_ARRAY(newrules) || JB_ROOT_IS_SCALAR(newrules) ||
		!JB_ROOT_IS_ARRAY(oldrules) || JB_ROOT_IS_SCALAR(oldrules))
	{
		JsonbValue	whole;

		if (newrules != oldrules)
			return call->newtup;	/* this UPDATE replaces the rules */
		whole.type = jbvBinary;
		whole.val.binary.data = &oldrules->root;
		whole.val.binary.len = VARSIZE(oldrules) - VARHDRSZ;
		call->rule_index = -1;
		rule_failed(call, &whole, ERRCODE_INVALID_PARAMETER_VALUE,
					psprintf("The rules column \"%s\" does not hold a JSON array of rules.",
							 call->entry->rules_column),
					NULL, NULL);
		return call->newtup;
	}

	n = JB_ROOT_COUNT(newrules);
	evaluate = n <= (int) lengthof(evaluate_buf) ? evaluate_buf : palloc(sizeof(bool) * n);
	drop = n <= (int) lengthof(drop_buf) ? drop_buf : palloc(sizeof(bool) * n);
	memset(drop, false, sizeof(bool) * n);
	parsed = rules_to_evaluate(call, olddatum, oldrules, newrules, parsed, evaluate, n);
	evaluate_rules(call, parsed, evaluate, drop, n);

	for (int i = 0; i < n; i++)
		if (drop[i])
			return without_dropped_rules(call, newrules, drop, n);
	return call->newtup;
}

/*
 * _celerysalt_follow_actions_trigger() RETURNS trigger
 *		BEFORE INSERT OR UPDATE FOR EACH ROW; argument: the rules column's
 *		name.  INSERT only vets who stores rules; UPDATE evaluates them.
 */
Datum
_celerysalt_follow_actions_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	FollowCall	call;
	ErrorContextCallback errcb;
	volatile HeapTuple result = NULL;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("_celerysalt_follow_actions_trigger: must be called as trigger")));
	if (!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!(TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) || TRIGGER_FIRED_BY_INSERT(trigdata->tg_event)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("_celerysalt_follow_actions_trigger: must be called BEFORE INSERT OR UPDATE FOR EACH ROW"),
				 errhint("Use celerysalt_attach_follow_actions() to create the trigger.")));
	if (trigdata->tg_trigger->tgnargs != 1)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("_celerysalt_follow_actions_trigger: must be called with the rules column as its only argument")));

	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
	{
		/* an inserted row's rules fire at a later UPDATE: vet their author */
		bool		isnull;
		Datum		d;

		call.rel = trigdata->tg_relation;
		call.tupdesc = RelationGetDescr(call.rel);
		call.rule_index = -1;
		call.entry = follow_cache_entry(call.rel, trigdata->tg_trigger->tgargs[0]);
		d = slot_getattr(trigdata->tg_trigslot, call.entry->rules_attnum, &isnull);
		if (!isnull)
			check_rules_author(&call, DatumGetJsonbP(d), NULL);
		return PointerGetDatum(trigdata->tg_trigtuple);
	}

	call.rel = trigdata->tg_relation;
	call.tupdesc = RelationGetDescr(call.rel);
	call.oldtup = trigdata->tg_trigtuple;
	call.newtup = trigdata->tg_newtuple;
	call.oldslot = trigdata->tg_trigslot;
	call.newslot = trigdata->tg_newslot;
	call.rule_index = -1;
	call.row_changed = -1;
	if (call.oldslot == NULL || call.newslot == NULL)
		elog(ERROR, "_celerysalt_follow_actions_trigger: the executor passed no tuple slots");

	follow_depth++;
	PG_TRY();
	{
		call.entry = follow_cache_entry(call.rel, trigdata->tg_trigger->tgargs[0]);

		errcb.callback = follow_error_context;
		errcb.arg = &call;
		errcb.previous = error_context_stack;
		error_context_stack = &errcb;

		result = follow_row(&call);

		error_context_stack = errcb.previous;
	}
	PG_FINALLY();
	{
		follow_depth--;
	}
	PG_END_TRY();

	return PointerGetDatum(result);
}
