/*-------------------------------------------------------------------------
 *
 * jsonschema_sql.c
 *		SQL-callable JSON Schema functions and the per-backend cache of
 *		compiled schemas.
 *
 *	celerysalt_validate(schema, instance [, assert_formats [, resources]])
 *	celerysalt_validation_errors(schema, instance, assert_formats, resources)
 *	celerysalt_schema_errors(schema, resources)
 *	celerysalt_schema_is_valid(schema, resources)
 *
 * Cache: compiled schemas are kept per backend, keyed by the exact bytes of
 * the schema jsonb (plus the resources document, if any): a hash and a
 * memcmp.  At most JSONSCHEMA_CACHE_SIZE entries, least recently used
 * evicted; each lives in its own memory context under a cache context that
 * is a child of CacheMemoryContext.  On top of that, fn_extra remembers
 * the last schema seen by a call site, so a scan with a constant schema
 * neither hashes nor compares it again.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "fmgr.h"
#include "nodes/primnodes.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "jsonschema_int.h"

#define JSONSCHEMA_CACHE_SIZE	64

typedef struct CacheEntry
{
	JsSchema   *s;				/* NULL: free slot */
	uint32		hash;
	uint64		id;				/* unique, to validate fn_extra references */
	uint64		last_used;
} CacheEntry;

static MemoryContext cache_cxt = NULL;
static CacheEntry cache[JSONSCHEMA_CACHE_SIZE];
static uint64 cache_clock = 0;
static uint64 cache_next_id = 1;

/* What a call site remembers in fn_extra */
typedef struct CallCache
{
	Jsonb	   *schema;			/* copy of the last schema, in fn_mcxt */
	Jsonb	   *registry;		/* copy, or NULL */
	Jsonb	   *schema_ptr;		/* the datum pointer seen last */
	bool		schema_is_const;	/* the schema argument is a Const */
	int			slot;
	uint64		id;
} CallCache;

static bool
same_bytes(Jsonb *a, Jsonb *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return VARSIZE(a) == VARSIZE(b) && memcmp(a, b, VARSIZE(a)) == 0;
}

static uint32
key_hash(Jsonb *schema, Jsonb *registry)
{
	uint32		h = hash_bytes((unsigned char *) schema, VARSIZE(schema));

	if (registry)
		h = hash_combine(h, hash_bytes((unsigned char *) registry, VARSIZE(registry)));
	return h;
}

/*
 * The compiled form of schema (with registry), from the cache or freshly
 * compiled (raising an error for a malformed schema).  *slot_out and
 * *id_out identify the cache entry.
 */
static JsSchema *
cache_lookup(Jsonb *schema, Jsonb *registry, int *slot_out, uint64 *id_out)
{
	uint32		h = key_hash(schema, registry);
	int			i;
	int			victim = 0;
	JsSchema   *s;

	for (i = 0; i < JSONSCHEMA_CACHE_SIZE; i++)
	{
		CacheEntry *e = &cache[i];

		if (e->s != NULL && e->hash == h &&
			same_bytes(e->s->schema, schema) && same_bytes(e->s->registry, registry))
		{
			e->last_used = ++cache_clock;
			*slot_out = i;
			*id_out = e->id;
			return e->s;
		}
	}

	if (cache_cxt == NULL)
		cache_cxt = AllocSetContextCreate(CacheMemoryContext,
										  "celerysalt JSON Schema cache",
										  ALLOCSET_SMALL_SIZES);

	/* compile under the current context: an error frees it */
	s = JsonschemaCompile(schema, registry, CurrentMemoryContext, true);
	s->hash = h;

	for (i = 0; i < JSONSCHEMA_CACHE_SIZE; i++)
	{
		if (cache[i].s == NULL)
		{
			victim = i;
			break;
		}
		if (cache[i].last_used < cache[victim].last_used)
			victim = i;
	}
	if (cache[victim].s != NULL)
	{
		JsonschemaFree(cache[victim].s);
		cache[victim].s = NULL;
	}
	MemoryContextSetParent(s->cxt, cache_cxt);
	cache[victim].s = s;
	cache[victim].hash = h;
	cache[victim].id = cache_next_id++;
	cache[victim].last_used = ++cache_clock;
	*slot_out = victim;
	*id_out = cache[victim].id;
	return s;
}

/*
 * Is the schema argument a Const?  Then the same pointer means the same
 * contents for as long as the FmgrInfo lives.  (A Param is not enough:
 * PL/pgSQL re-executes a cached expression with new parameter values.)
 */
static bool
schema_arg_is_const(FmgrInfo *flinfo)
{
	Node	   *expr = flinfo->fn_expr;
	List	   *args;

	if (expr == NULL)
		return false;
	if (IsA(expr, FuncExpr))
		args = ((FuncExpr *) expr)->args;
	else
		return false;
	return list_length(args) > 0 && IsA(linitial(args), Const);
}

/*
 * Compiled schema for a call site, using fn_extra to skip the cache lookup
 * when the same schema comes again.  schema_stable: the argument is a
 * Const or Param, so an unchanged pointer means unchanged contents.
 */
static JsSchema *
get_schema(FunctionCallInfo fcinfo, Jsonb *schema, Jsonb *registry)
{
	CallCache  *cc = (CallCache *) fcinfo->flinfo->fn_extra;
	JsSchema   *s;
	MemoryContext old;

	if (cc != NULL && cc->schema != NULL &&
		cache[cc->slot].s != NULL && cache[cc->slot].id == cc->id &&
		same_bytes(cc->registry, registry))
	{
		if ((cc->schema_ptr == schema && cc->schema_is_const) ||
			same_bytes(cc->schema, schema))
		{
			cc->schema_ptr = schema;
			cache[cc->slot].last_used = ++cache_clock;
			return cache[cc->slot].s;
		}
	}

	if (cc == NULL)
	{
		cc = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(CallCache));
		cc->schema_is_const = schema_arg_is_const(fcinfo->flinfo);
		fcinfo->flinfo->fn_extra = cc;
	}
	s = cache_lookup(schema, registry, &cc->slot, &cc->id);

	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	if (cc->schema)
		pfree(cc->schema);
	if (cc->registry)
		pfree(cc->registry);
	cc->schema = palloc(VARSIZE(schema));
	memcpy(cc->schema, schema, VARSIZE(schema));
	cc->registry = NULL;
	if (registry)
	{
		cc->registry = palloc(VARSIZE(registry));
		memcpy(cc->registry, registry, VARSIZE(registry));
	}
	cc->schema_ptr = schema;
	MemoryContextSwitchTo(old);
	return s;
}

static Jsonb *
opt_registry(FunctionCallInfo fcinfo, int argno)
{
	Jsonb	   *r;

	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return NULL;
	r = PG_GETARG_JSONB_P(argno);
	if (JB_ROOT_IS_SCALAR(r) || !JB_ROOT_IS_OBJECT(r))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("resources must be a JSON object mapping URIs to schemas")));
	if (JB_ROOT_COUNT(r) == 0)
		return NULL;
	return r;
}

PG_FUNCTION_INFO_V1(celerysalt_validate);

/*
 * celerysalt_validate(schema, instance [, assert_formats [, resources]])
 * STRICT: all arguments non-NULL.
 */
Datum
celerysalt_validate(PG_FUNCTION_ARGS)
{
	Jsonb	   *schema = PG_GETARG_JSONB_P(0);
	Jsonb	   *instance = PG_GETARG_JSONB_P(1);
	bool		assert_formats = PG_NARGS() > 2 ? PG_GETARG_BOOL(2) : false;
	Jsonb	   *registry = opt_registry(fcinfo, 3);
	JsSchema   *s = get_schema(fcinfo, schema, registry);

	/* IMMUTABLE: always RFC 3339, never a setting (docs/jsonschema.md) */
	PG_RETURN_BOOL(JsonschemaValidate(s, instance,
									  assert_formats ? JS_FORMATS_RFC3339 : JS_FORMATS_ANNOTATE,
									  NULL));
}

PG_FUNCTION_INFO_V1(celerysalt_validation_errors);

/*
 * celerysalt_validation_errors(schema, instance, assert_formats, resources)
 * Not strict (resources may be NULL); NULL schema or instance gives NULL.
 */
Datum
celerysalt_validation_errors(PG_FUNCTION_ARGS)
{
	Jsonb	   *schema;
	Jsonb	   *instance;
	bool		assert_formats;
	Jsonb	   *registry;
	JsSchema   *s;
	List	   *errors = NIL;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	schema = PG_GETARG_JSONB_P(0);
	instance = PG_GETARG_JSONB_P(1);
	assert_formats = PG_NARGS() > 2 && !PG_ARGISNULL(2) ? PG_GETARG_BOOL(2) : false;
	registry = opt_registry(fcinfo, 3);
	s = get_schema(fcinfo, schema, registry);

	(void) JsonschemaValidate(s, instance,
							  assert_formats ? JS_FORMATS_RFC3339 : JS_FORMATS_ANNOTATE,
							  &errors);
	PG_RETURN_JSONB_P(JsonschemaErrorsToJsonb(errors, true));
}

/*
 * All problems of a schema: its validation against the metaschema of its
 * dialect, then what only the compiler finds (bad regular expressions,
 * unresolvable references, unsupported dialects).
 */
static List *
schema_problems(Jsonb *schema, Jsonb *registry)
{
	JsSchema   *compiled;
	List	   *result = NIL;
	ListCell   *lc;
	JsonbValue	root;
	const char *meta_uri = NULL;
	Jsonb	   *meta = NULL;

	compiled = JsonschemaCompile(schema, registry, CurrentMemoryContext, false);

	JbvRootValue(schema, &root);
	if (root.type == jbvBinary && JsonContainerIsObject(root.val.binary.data))
	{
		JsonbValue	v;

		if (JbvFindKey(root.val.binary.data, "$schema", 7, &v) &&
			v.type == jbvString)
		{
			char	   *ms = JsonschemaUriStripFragment(pnstrdup(v.val.string.val,
																 v.val.string.len), NULL);

			meta = JsonschemaBuiltinDocument(ms);
			if (meta == NULL && registry != NULL)
			{
				JsonbValue	doc;

				if (JbvFindKey(&registry->root, ms, strlen(ms), &doc))
					meta = JsonbValueToJsonb(&doc);
			}
		}
	}
	if (meta == NULL && compiled->errors == NIL)
	{
		meta_uri = JsonschemaMetaschemaUri(compiled->draft);
		meta = JsonschemaBuiltinDocument(meta_uri);
	}
	else if (meta == NULL)
	{
		meta_uri = JsonschemaMetaschemaUri(JS_DRAFT2020);
		meta = JsonschemaBuiltinDocument(meta_uri);
	}

	if (meta != NULL)
	{
		int			slot;
		uint64		id;
		JsSchema   *ms = cache_lookup(meta, registry, &slot, &id);
		List	   *merrs = NIL;

		(void) JsonschemaValidate(ms, schema, JS_FORMATS_ANNOTATE, &merrs);
		foreach(lc, merrs)
		{
			JsError    *e = lfirst(lc);
			JsError    *o = palloc0(sizeof(JsError));

			o->schema_path = e->path;
			o->keyword = e->keyword;
			o->message = psprintf("%s (metaschema keyword \"%s\")", e->message, e->keyword);
			result = lappend(result, o);
		}
	}

	foreach(lc, compiled->errors)
	{
		JsError    *e = lfirst(lc);
		ListCell   *lc2;
		bool		dup = false;

		foreach(lc2, result)
		{
			JsError    *o = lfirst(lc2);

			if (strcmp(o->schema_path, e->schema_path) == 0)
				dup = true;
		}
		if (!dup)
		{
			/* copy out: compiled->errors live in compiled's context */
			JsError    *o = palloc0(sizeof(JsError));

			o->path = e->path ? pstrdup(e->path) : NULL;
			o->schema_path = pstrdup(e->schema_path);
			o->keyword = e->keyword ? pstrdup(e->keyword) : NULL;
			o->message = pstrdup(e->message);
			result = lappend(result, o);
		}
	}
	JsonschemaFree(compiled);
	return result;
}

PG_FUNCTION_INFO_V1(celerysalt_schema_errors);

Datum
celerysalt_schema_errors(PG_FUNCTION_ARGS)
{
	Jsonb	   *schema;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	schema = PG_GETARG_JSONB_P(0);
	PG_RETURN_JSONB_P(JsonschemaErrorsToJsonb(schema_problems(schema, opt_registry(fcinfo, 1)),
											  false));
}

PG_FUNCTION_INFO_V1(celerysalt_schema_is_valid);

Datum
celerysalt_schema_is_valid(PG_FUNCTION_ARGS)
{
	Jsonb	   *schema;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	schema = PG_GETARG_JSONB_P(0);
	PG_RETURN_BOOL(schema_problems(schema, opt_registry(fcinfo, 1)) == NIL);
}
