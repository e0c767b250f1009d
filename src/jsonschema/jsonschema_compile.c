/*-------------------------------------------------------------------------
 *
 * jsonschema_compile.c
 *		Compile a JSON Schema document (jsonb) into a graph of JsNode.
 *
 * Owns: draft and vocabulary detection ($schema, $vocabulary), schema
 * resources ($id) and anchors ($anchor, $dynamicAnchor, draft-07 "#name"
 * ids), keyword parsing with type checks, and $ref / $dynamicRef
 * resolution against the document itself, the caller's registry of extra
 * documents and the embedded metaschemas.  Nothing is fetched over the
 * network.
 *
 * Everything is allocated in the JsSchema's own memory context, created as
 * a child of the caller's current context; the cache (jsonschema_sql.c)
 * re-parents it under CacheMemoryContext once compilation succeeded, so a
 * compile error simply frees it with the failed statement.
 *
 * Errors: with raise = true the first problem is reported with
 * ereport(ERROR) and a DETAIL naming the schema location; with
 * raise = false problems are collected in JsSchema.errors and compilation
 * goes on (celerysalt_schema_errors).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "jsonschema_int.h"

typedef struct UriEntry
{
	char	   *uri;
	JsResource *res;
} UriEntry;

typedef struct NodeMapEntry
{
	JsonbContainer *key;
	JsNode	   *node;
} NodeMapEntry;

typedef struct CompileCtx
{
	JsSchema   *s;
	bool		raise;
	HTAB	   *nodemap;		/* schema object container -> JsNode */
	List	   *uris;			/* of UriEntry: every known resource URI */
	List	   *pending;		/* nodes whose $ref/$dynamicRef is unresolved */
	int			default_draft;
	int			ndocs;
	int64		work;			/* steps, for celerysalt.validation_work_limit */
	const char *loc;			/* schema location being compiled, for its error */
} CompileCtx;

/* What the enclosing schema passes down */
typedef struct Scope
{
	const char *base;
	JsResource *res;
	int			draft;
	uint32		vocab;
} Scope;

#define IS2020(sc) ((sc)->draft == JS_DRAFT2020)

static JsNode *compile_node(CompileCtx *ctx, JsonbValue *json, Scope *sc,
							const char *loc);

/*
 * Count steps of the compilation (schema objects, resources and anchors
 * compared in the lists) against celerysalt.validation_work_limit, and let
 * interrupts through.
 */
static inline void
compile_work(CompileCtx *ctx, int steps)
{
	ctx->work += steps;
	if (unlikely(ctx->work > JsonschemaWorkLimit))
		JsonschemaWorkLimitExceeded("compilation", ctx->loc ? ctx->loc : "");
	CHECK_FOR_INTERRUPTS();
}

/*
 * Report a problem in the schema at location loc (a JSON pointer, possibly
 * prefixed by a document URI).
 */
static void
schema_error(CompileCtx *ctx, const char *loc, const char *fmt,...)
	pg_attribute_printf(3, 4);

static void
schema_error(CompileCtx *ctx, const char *loc, const char *fmt,...)
{
	va_list		ap;
	char	   *msg;

	va_start(ap, fmt);
	msg = JbvFormatVA(fmt, ap);
	va_end(ap);

	if (ctx->raise)
		ereport(ERROR,
				(errcode(JSONSCHEMA_ERRCODE_INVALID_SCHEMA),
				 errmsg("invalid JSON Schema"),
				 errdetail("At schema location \"%s\": %s.", loc, msg)));
	else
	{
		JsError    *e = palloc0(sizeof(JsError));

		e->path = NULL;
		e->schema_path = pstrdup(loc);
		e->keyword = NULL;
		e->message = msg;
		ctx->s->errors = lappend(ctx->s->errors, e);
	}
}

static void
unsupported_error(CompileCtx *ctx, const char *loc, const char *what)
{
	if (ctx->raise)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("unsupported JSON Schema dialect"),
				 errdetail("At schema location \"%s\": %s.", loc, what),
				 errhint("Supported dialects are draft 2020-12 and draft-07.")));
	schema_error(ctx, loc, "%s", what);
}

static char *
loc_key(const char *loc, const char *key, int len)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, loc);
	JbvAppendPointerToken(&buf, key, len);
	return buf.data;
}

static char *
loc_index(const char *loc, int i)
{
	return psprintf("%s/%d", loc, i);
}

static bool
is_object(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
}

static bool
is_array(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data);
}

static char *
vstr(JsonbValue *v)
{
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static bool
lookup(JsonbValue *obj, const char *key, JsonbValue *out)
{
	if (!is_object(obj))
		return false;
	return JbvFindKey(obj->val.binary.data, key, strlen(key), out);
}

/* ---------------------------------------------------------------------
 * Resources
 * ---------------------------------------------------------------------
 */

static JsResource *
find_resource(CompileCtx *ctx, const char *uri)
{
	ListCell   *lc;

	compile_work(ctx, list_length(ctx->uris));
	foreach(lc, ctx->uris)
	{
		UriEntry   *e = lfirst(lc);

		if (strcmp(e->uri, uri) == 0)
			return e->res;
	}
	return NULL;
}

static void
index_resource(CompileCtx *ctx, const char *uri, JsResource *res)
{
	UriEntry   *e;

	if (find_resource(ctx, uri) != NULL)
		return;
	e = palloc(sizeof(UriEntry));
	e->uri = pstrdup(uri);
	e->res = res;
	ctx->uris = lappend(ctx->uris, e);
}

static JsResource *
new_resource(CompileCtx *ctx, const char *uri, JsonbValue *json,
			 const char *loc, Scope *sc)
{
	JsResource *r = palloc0(sizeof(JsResource));

	r->uri = pstrdup(uri);
	r->json = *json;
	r->location = pstrdup(loc);
	r->draft = sc->draft;
	r->vocab = sc->vocab;
	ctx->s->resources = lappend(ctx->s->resources, r);
	return r;
}

static JsAnchor *
find_anchor(CompileCtx *ctx, JsResource *r, const char *name)
{
	ListCell   *lc;

	compile_work(ctx, list_length(r->anchors));
	foreach(lc, r->anchors)
	{
		JsAnchor   *a = lfirst(lc);

		if (strcmp(a->name, name) == 0)
			return a;
	}
	return NULL;
}

static bool
valid_anchor_name(const char *s)
{
	if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
		return false;
	for (s++; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
			  (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			return false;
	return true;
}

static void
add_anchor(CompileCtx *ctx, JsResource *r, const char *name, bool dynamic,
		   JsNode *node, const char *loc)
{
	JsAnchor   *a = find_anchor(ctx, r, name);

	if (a != NULL)
	{
		if (a->node != node)
			schema_error(ctx, loc, "duplicate anchor \"%s\"", name);
		else if (dynamic)
			a->dynamic = true;
		return;
	}
	a = palloc0(sizeof(JsAnchor));
	a->name = pstrdup(name);
	a->dynamic = dynamic;
	a->node = node;
	r->anchors = lappend(r->anchors, a);
}

/* ---------------------------------------------------------------------
 * Keyword value parsing
 * ---------------------------------------------------------------------
 */

/* a non-negative integer keyword (1.0 counts); huge values saturate */
static bool
get_count(CompileCtx *ctx, JsonbValue *v, const char *loc, int64 *out)
{
	bool		err = false;
	int32		i;

	if (v->type != jbvNumeric || !JbvIsInteger(v->val.numeric))
	{
		schema_error(ctx, loc, "value must be a non-negative integer");
		return false;
	}
	if (DatumGetBool(DirectFunctionCall2(numeric_lt, NumericGetDatum(v->val.numeric),
										 NumericGetDatum(int64_to_numeric(0)))))
	{
		schema_error(ctx, loc, "value must be a non-negative integer");
		return false;
	}
	i = numeric_int4_opt_error(v->val.numeric, &err);
	*out = err ? PG_INT64_MAX : (int64) i;
	return true;
}

static Numeric
get_number(CompileCtx *ctx, JsonbValue *v, const char *loc)
{
	if (v->type != jbvNumeric)
	{
		schema_error(ctx, loc, "value must be a number");
		return NULL;
	}
	return v->val.numeric;
}

static int
type_bit(const char *s, int len)
{
	static const struct
	{
		const char *name;
		int			bit;
	}			types[] =
	{
		{"null", JS_T_NULL},
		{"boolean", JS_T_BOOLEAN},
		{"object", JS_T_OBJECT},
		{"array", JS_T_ARRAY},
		{"number", JS_T_NUMBER},
		{"string", JS_T_STRING},
		{"integer", JS_T_INTEGER},
	};
	int			i;

	for (i = 0; i < (int) lengthof(types); i++)
		if ((int) strlen(types[i].name) == len && memcmp(types[i].name, s, len) == 0)
			return types[i].bit;
	return 0;
}

static int
prop_cmp(const void *a, const void *b)
{
	const JsProp *pa = a;
	const JsProp *pb = b;

	return JbvKeyCmp(pa->name, pa->len, pb->name, pb->len);
}

/*
 * n->keys: the union of "properties" and "required" (both sorted in jsonb
 * key order), so the validator matches an object's members against both
 * in one merge pass.
 */
static void
merge_keys(JsNode *n)
{
	int			pi = 0,
				ri = 0,
				k = 0;

	if (n->nproperties == 0 && n->nrequired == 0)
		return;
	n->keys = palloc0(sizeof(JsKey) * (n->nproperties + n->nrequired));
	while (pi < n->nproperties || ri < n->nrequired)
	{
		JsKey	   *key = &n->keys[k++];
		int			cmp;

		if (pi >= n->nproperties)
			cmp = 1;
		else if (ri >= n->nrequired)
			cmp = -1;
		else
			cmp = JbvKeyCmp(n->properties[pi].name, n->properties[pi].len,
								   n->required[ri].name, n->required[ri].len);
		if (cmp <= 0)
		{
			key->name = n->properties[pi].name;
			key->len = n->properties[pi].len;
			key->node = n->properties[pi].node;
			pi++;
		}
		else
		{
			key->name = n->required[ri].name;
			key->len = n->required[ri].len;
		}
		if (cmp >= 0)
		{
			key->required = true;
			ri++;
		}
	}
	n->nkeys = k;
}

/* array of unique strings -> sorted JsProp array */
static bool
get_string_set(CompileCtx *ctx, JsonbValue *v, const char *loc,
			   JsProp **out, int *nout)
{
	JsonbContainer *c;
	int			n,
				i;
	JsProp	   *p;

	if (!is_array(v))
	{
		schema_error(ctx, loc, "value must be an array of strings");
		return false;
	}
	c = v->val.binary.data;
	n = JsonContainerSize(c);
	p = palloc0(sizeof(JsProp) * (n + 1));
	for (i = 0; i < n; i++)
	{
		JsonbValue	e;

		JbvGetElem(c, i, &e);
		if (e.type != jbvString)
		{
			schema_error(ctx, loc_index(loc, i), "value must be a string");
			return false;
		}
		p[i].name = e.val.string.val;
		p[i].len = e.val.string.len;
	}
	qsort(p, n, sizeof(JsProp), prop_cmp);
	for (i = 1; i < n; i++)
		if (prop_cmp(&p[i - 1], &p[i]) == 0)
		{
			schema_error(ctx, loc, "array items must be unique");
			return false;
		}
	*out = p;
	*nout = n;
	return true;
}

static JsNode *
sub(CompileCtx *ctx, JsonbValue *v, Scope *sc, const char *loc, const char *kw)
{
	return compile_node(ctx, v, sc, loc_key(loc, kw, strlen(kw)));
}

/* non-empty array of schemas */
static bool
get_schema_array(CompileCtx *ctx, JsonbValue *v, Scope *sc, const char *loc,
				 JsNode ***out, int *nout, bool allow_empty)
{
	JsonbContainer *c;
	int			n,
				i;

	if (!is_array(v) || (!allow_empty && JsonContainerSize(v->val.binary.data) == 0))
	{
		schema_error(ctx, loc, "value must be a non-empty array of schemas");
		return false;
	}
	c = v->val.binary.data;
	n = JsonContainerSize(c);
	*out = palloc0(sizeof(JsNode *) * (n + 1));
	for (i = 0; i < n; i++)
	{
		JsonbValue	e;

		JbvGetElem(c, i, &e);
		(*out)[i] = compile_node(ctx, &e, sc, loc_index(loc, i));
	}
	*nout = n;
	return true;
}

/* object of schemas -> sorted JsProp array (jsonb keys are already sorted) */
static bool
get_schema_map(CompileCtx *ctx, JsonbValue *v, Scope *sc, const char *loc,
			   JsProp **out, int *nout)
{
	JsonbContainer *c;
	int			n,
				i;

	if (!is_object(v))
	{
		schema_error(ctx, loc, "value must be an object");
		return false;
	}
	c = v->val.binary.data;
	n = JsonContainerSize(c);
	*out = palloc0(sizeof(JsProp) * (n + 1));
	for (i = 0; i < n; i++)
	{
		JsonbValue	k,
					e;

		JbvGetPair(c, i, &k, &e);
		(*out)[i].name = k.val.string.val;
		(*out)[i].len = k.val.string.len;
		(*out)[i].node = compile_node(ctx, &e, sc,
									  loc_key(loc, k.val.string.val, k.val.string.len));
	}
	*nout = n;
	return true;
}

static void
scan_defs(CompileCtx *ctx, JsonbValue *v, Scope *sc, const char *loc)
{
	JsProp	   *defs;
	int			n;

	(void) get_schema_map(ctx, v, sc, loc, &defs, &n);
}

static JsRegex *
compile_regex(CompileCtx *ctx, const char *pattern, int len, const char *loc)
{
	char	   *err = NULL;
	JsRegex    *re = JsonschemaRegexCompile(pattern, len, &err);

	if (re == NULL)
	{
		schema_error(ctx, loc, "invalid regular expression: %s", err);
		return NULL;
	}
	ctx->s->regexes = lappend(ctx->s->regexes, re);
	return re;
}

/* ---------------------------------------------------------------------
 * Keywords
 * ---------------------------------------------------------------------
 */

typedef enum KwId
{
	KW_IGNORED = 0,
	KW_SCHEMA, KW_ID, KW_ANCHOR, KW_DYNANCHOR, KW_REF, KW_DYNREF, KW_DEFS,
	KW_DEFINITIONS, KW_VOCABULARY,
	KW_TYPE, KW_ENUM, KW_CONST, KW_MULTIPLEOF, KW_MAXIMUM, KW_EXMAXIMUM,
	KW_MINIMUM, KW_EXMINIMUM, KW_MAXLENGTH, KW_MINLENGTH, KW_PATTERN,
	KW_FORMAT, KW_MAXITEMS, KW_MINITEMS, KW_UNIQUEITEMS, KW_MAXCONTAINS,
	KW_MINCONTAINS, KW_MAXPROPERTIES, KW_MINPROPERTIES, KW_REQUIRED,
	KW_DEPREQUIRED,
	KW_ALLOF, KW_ANYOF, KW_ONEOF, KW_NOT, KW_IF, KW_THEN, KW_ELSE,
	KW_DEPSCHEMAS, KW_PREFIXITEMS, KW_ITEMS, KW_ADDITIONALITEMS, KW_CONTAINS,
	KW_PROPERTIES, KW_PATTERNPROPS, KW_ADDITIONALPROPS, KW_PROPERTYNAMES,
	KW_DEPENDENCIES, KW_UNEVALITEMS, KW_UNEVALPROPS
} KwId;

#define D7		0x1
#define D2020	0x2
#define DBOTH	(D7 | D2020)

static const struct
{
	const char *name;
	KwId		id;
	int			drafts;
	uint32		vocab;			/* 2020-12 vocabulary that must be on */
}			keywords[] =
{
	{"$schema", KW_SCHEMA, DBOTH, JS_VOCAB_CORE},
	{"$id", KW_ID, DBOTH, JS_VOCAB_CORE},
	{"$anchor", KW_ANCHOR, D2020, JS_VOCAB_CORE},
	{"$dynamicAnchor", KW_DYNANCHOR, D2020, JS_VOCAB_CORE},
	{"$ref", KW_REF, DBOTH, JS_VOCAB_CORE},
	{"$dynamicRef", KW_DYNREF, D2020, JS_VOCAB_CORE},
	{"$defs", KW_DEFS, D2020, JS_VOCAB_CORE},
	{"definitions", KW_DEFINITIONS, DBOTH, JS_VOCAB_CORE},
	{"$vocabulary", KW_VOCABULARY, D2020, JS_VOCAB_CORE},
	{"type", KW_TYPE, DBOTH, JS_VOCAB_VALIDATION},
	{"enum", KW_ENUM, DBOTH, JS_VOCAB_VALIDATION},
	{"const", KW_CONST, DBOTH, JS_VOCAB_VALIDATION},
	{"multipleOf", KW_MULTIPLEOF, DBOTH, JS_VOCAB_VALIDATION},
	{"maximum", KW_MAXIMUM, DBOTH, JS_VOCAB_VALIDATION},
	{"exclusiveMaximum", KW_EXMAXIMUM, DBOTH, JS_VOCAB_VALIDATION},
	{"minimum", KW_MINIMUM, DBOTH, JS_VOCAB_VALIDATION},
	{"exclusiveMinimum", KW_EXMINIMUM, DBOTH, JS_VOCAB_VALIDATION},
	{"maxLength", KW_MAXLENGTH, DBOTH, JS_VOCAB_VALIDATION},
	{"minLength", KW_MINLENGTH, DBOTH, JS_VOCAB_VALIDATION},
	{"pattern", KW_PATTERN, DBOTH, JS_VOCAB_VALIDATION},
	{"format", KW_FORMAT, DBOTH, JS_VOCAB_FORMAT_ANNOTATION | JS_VOCAB_FORMAT_ASSERTION},
	{"maxItems", KW_MAXITEMS, DBOTH, JS_VOCAB_VALIDATION},
	{"minItems", KW_MINITEMS, DBOTH, JS_VOCAB_VALIDATION},
	{"uniqueItems", KW_UNIQUEITEMS, DBOTH, JS_VOCAB_VALIDATION},
	{"maxContains", KW_MAXCONTAINS, D2020, JS_VOCAB_VALIDATION},
	{"minContains", KW_MINCONTAINS, D2020, JS_VOCAB_VALIDATION},
	{"maxProperties", KW_MAXPROPERTIES, DBOTH, JS_VOCAB_VALIDATION},
	{"minProperties", KW_MINPROPERTIES, DBOTH, JS_VOCAB_VALIDATION},
	{"required", KW_REQUIRED, DBOTH, JS_VOCAB_VALIDATION},
	{"dependentRequired", KW_DEPREQUIRED, D2020, JS_VOCAB_VALIDATION},
	{"allOf", KW_ALLOF, DBOTH, JS_VOCAB_APPLICATOR},
	{"anyOf", KW_ANYOF, DBOTH, JS_VOCAB_APPLICATOR},
	{"oneOf", KW_ONEOF, DBOTH, JS_VOCAB_APPLICATOR},
	{"not", KW_NOT, DBOTH, JS_VOCAB_APPLICATOR},
	{"if", KW_IF, DBOTH, JS_VOCAB_APPLICATOR},
	{"then", KW_THEN, DBOTH, JS_VOCAB_APPLICATOR},
	{"else", KW_ELSE, DBOTH, JS_VOCAB_APPLICATOR},
	{"dependentSchemas", KW_DEPSCHEMAS, D2020, JS_VOCAB_APPLICATOR},
	{"prefixItems", KW_PREFIXITEMS, D2020, JS_VOCAB_APPLICATOR},
	{"items", KW_ITEMS, DBOTH, JS_VOCAB_APPLICATOR},
	{"additionalItems", KW_ADDITIONALITEMS, D7, JS_VOCAB_APPLICATOR},
	{"contains", KW_CONTAINS, DBOTH, JS_VOCAB_APPLICATOR},
	{"properties", KW_PROPERTIES, DBOTH, JS_VOCAB_APPLICATOR},
	{"patternProperties", KW_PATTERNPROPS, DBOTH, JS_VOCAB_APPLICATOR},
	{"additionalProperties", KW_ADDITIONALPROPS, DBOTH, JS_VOCAB_APPLICATOR},
	{"propertyNames", KW_PROPERTYNAMES, DBOTH, JS_VOCAB_APPLICATOR},
	{"dependencies", KW_DEPENDENCIES, D7, JS_VOCAB_APPLICATOR},
	{"unevaluatedItems", KW_UNEVALITEMS, D2020, JS_VOCAB_UNEVALUATED},
	{"unevaluatedProperties", KW_UNEVALPROPS, D2020, JS_VOCAB_UNEVALUATED},
};

static KwId
keyword_id(const char *s, int len, Scope *sc)
{
	int			i;

	for (i = 0; i < (int) lengthof(keywords); i++)
	{
		if ((int) strlen(keywords[i].name) != len ||
			memcmp(keywords[i].name, s, len) != 0)
			continue;
		if (!(keywords[i].drafts & (IS2020(sc) ? D2020 : D7)))
			return KW_IGNORED;
		if (IS2020(sc) && (keywords[i].vocab & sc->vocab) == 0)
			return KW_IGNORED;
		return keywords[i].id;
	}
	return KW_IGNORED;
}

static JsNode *
bool_node(CompileCtx *ctx, bool value, Scope *sc, const char *loc)
{
	JsNode	   *n = palloc0(sizeof(JsNode));

	n->boolean = value ? 1 : 0;
	n->resource = sc->res;
	n->base = (char *) sc->base;
	n->location = pstrdup(loc);
	ctx->s->nnodes++;
	return n;
}

/*
 * Keyword families.  parse_keyword() dispatches each keyword of a schema
 * object to the helper of its family; every helper reports a bad value with
 * schema_error() at kloc (the keyword's location) and sets n's JSK_* bit
 * only for a usable value.
 */

/* $ref / $dynamicRef: kept as text, resolved by resolve_pending() */
static void
parse_reference(CompileCtx *ctx, JsNode *n, KwId id, JsonbValue *v,
				const char *kloc)
{
	if (v->type != jbvString)
	{
		schema_error(ctx, kloc, "value must be a string");
		return;
	}
	if (id == KW_REF)
	{
		n->ref = vstr(v);
		n->kw |= JSK_REF;
	}
	else
	{
		n->dynref = vstr(v);
		n->kw |= JSK_DYNREF;
	}
	ctx->pending = list_append_unique_ptr(ctx->pending, n);
}

/* "type": one type name or an array of unique type names */
static void
parse_type(CompileCtx *ctx, JsNode *n, JsonbValue *v, const char *kloc)
{
	if (v->type == jbvString)
	{
		n->types = type_bit(v->val.string.val, v->val.string.len);
		if (n->types == 0)
			schema_error(ctx, kloc, "unknown type \"%s\"", vstr(v));
	}
	else if (is_array(v))
	{
		JsonbContainer *c = v->val.binary.data;
		int			i;

		for (i = 0; i < (int) JsonContainerSize(c); i++)
		{
			JsonbValue	e;
			int			bit;

			JbvGetElem(c, i, &e);
			bit = e.type == jbvString ?
				type_bit(e.val.string.val, e.val.string.len) : 0;
			if (bit == 0)
				schema_error(ctx, loc_index(kloc, i),
							 "value must be one of the type names");
			else if (n->types & bit)
				schema_error(ctx, kloc, "type names must be unique");
			n->types |= bit;
		}
	}
	else
	{
		schema_error(ctx, kloc, "value must be a type name or an array of type names");
		return;
	}
	n->kw |= JSK_TYPE;
}

/* Validation keywords for any instance: type, enum, const */
static void
parse_any_keyword(CompileCtx *ctx, JsNode *n, KwId id, JsonbValue *v,
				  const char *kloc)
{
	switch (id)
	{
		case KW_TYPE:
			parse_type(ctx, n, v, kloc);
			break;
		case KW_ENUM:
			if (!is_array(v))
				schema_error(ctx, kloc, "value must be an array");
			else
			{
				JsonbContainer *c = v->val.binary.data;
				int			i;

				n->nenum = JsonContainerSize(c);
				n->enumvals = palloc0(sizeof(JsonbValue) * (n->nenum + 1));
				for (i = 0; i < n->nenum; i++)
					JbvGetElem(c, i, &n->enumvals[i]);
				n->kw |= JSK_ENUM;
			}
			break;
		case KW_CONST:
			n->constval = *v;
			n->kw |= JSK_CONST;
			break;
		default:
			break;
	}
}

/* Validation keywords for numbers: multipleOf and the four bounds */
static void
parse_number_keyword(CompileCtx *ctx, JsNode *n, KwId id, JsonbValue *v,
					 const char *kloc)
{
	switch (id)
	{
		case KW_MULTIPLEOF:
			if ((n->multipleof = get_number(ctx, v, kloc)) != NULL)
			{
				if (JbvNumCmp(n->multipleof, int64_to_numeric(0)) <= 0)
					schema_error(ctx, kloc, "value must be strictly greater than 0");
				else
					n->kw |= JSK_MULTIPLEOF;
			}
			break;
		case KW_MAXIMUM:
			if ((n->maximum = get_number(ctx, v, kloc)) != NULL)
				n->kw |= JSK_MAXIMUM;
			break;
		case KW_EXMAXIMUM:
			if ((n->exmaximum = get_number(ctx, v, kloc)) != NULL)
				n->kw |= JSK_EXMAXIMUM;
			break;
		case KW_MINIMUM:
			if ((n->minimum = get_number(ctx, v, kloc)) != NULL)
				n->kw |= JSK_MINIMUM;
			break;
		case KW_EXMINIMUM:
			if ((n->exminimum = get_number(ctx, v, kloc)) != NULL)
				n->kw |= JSK_EXMINIMUM;
			break;
		default:
			break;
	}
}

/* Validation keywords for strings: maxLength, minLength, pattern, format */
static void
parse_string_keyword(CompileCtx *ctx, JsNode *n, KwId id, JsonbValue *v,
					 const char *kloc)
{
	switch (id)
	{
		case KW_MAXLENGTH:
			if (get_count(ctx, v, kloc, &n->maxlength))
				n->kw |= JSK_MAXLENGTH;
			break;
		case KW_MINLENGTH:
			if (get_count(ctx, v, kloc, &n->minlength))
				n->kw |= JSK_MINLENGTH;
			break;
		case KW_PATTERN:
			if (v->type != jbvString)
				schema_error(ctx, kloc, "value must be a string");
			else if ((n->pattern = compile_regex(ctx, v->val.string.val,
												 v->val.string.len, kloc)) != NULL)
				n->kw |= JSK_PATTERN;
			break;
		case KW_FORMAT:
			if (v->type != jbvString)
				schema_error(ctx, kloc, "value must be a string");
			else
			{
				n->format = JsonschemaFormatLookup(v->val.string.val, v->val.string.len);
				n->format_name = vstr(v);
				if (n->format != JSF_UNKNOWN)
					n->kw |= JSK_FORMAT;
			}
			break;
		default:
			break;
	}
}

/*
 * Validation keywords for arrays: maxItems, minItems, uniqueItems,
 * maxContains, minContains
 */
static void
parse_array_keyword(CompileCtx *ctx, JsNode *n, KwId id, JsonbValue *v,
					const char *kloc)
{
	switch (id)
	{
		case KW_MAXITEMS:
			if (get_count(ctx, v, kloc, &n->maxitems))
				n->kw |= JSK_MAXITEMS;
			break;
		case KW_MINITEMS:
			if (get_count(ctx, v, kloc, &n->minitems))
				n->kw |= JSK_MINITEMS;
			break;
		case KW_UNIQUEITEMS:
			if (v->type != jbvBool)
				schema_error(ctx, kloc, "value must be a boolean");
			else if (v->val.boolean)
				n->kw |= JSK_UNIQUEITEMS;
			break;
		case KW_MAXCONTAINS:
			if (get_count(ctx, v, kloc, &n->maxcontains))
				n->kw |= JSK_MAXCONTAINS;
			break;
		case KW_MINCONTAINS:
			if (get_count(ctx, v, kloc, &n->mincontains))
				n->kw |= JSK_MINCONTAINS;
			break;
		default:
			break;
	}
}

/*
 * dependentRequired, or draft-07 "dependencies" (id): an object of property
 * name -> required names, where "dependencies" also allows a subschema
 */
static void
parse_dependencies(CompileCtx *ctx, JsNode *n, KwId id, JsonbValue *v,
				   Scope *sc, const char *kloc)
{
	JsonbContainer *c;
	int			cnt;
	int			i;

	if (!is_object(v))
	{
		schema_error(ctx, kloc, "value must be an object");
		return;
	}
	c = v->val.binary.data;
	cnt = JsonContainerSize(c);
	n->deprequired = palloc0(sizeof(JsProp) * (cnt + 1));
	if (id == KW_DEPENDENCIES)
		n->depschemas = palloc0(sizeof(JsProp) * (cnt + 1));
	for (i = 0; i < cnt; i++)
	{
		JsonbValue	k,
					e;
		JsProp	   *req;
		int			nreq;
		char	   *eloc;

		JbvGetPair(c, i, &k, &e);
		eloc = loc_key(kloc, k.val.string.val, k.val.string.len);
		if (id == KW_DEPENDENCIES && !is_array(&e))
		{
			JsProp	   *p = &n->depschemas[n->ndepschemas++];

			p->name = k.val.string.val;
			p->len = k.val.string.len;
			p->node = compile_node(ctx, &e, sc, eloc);
			n->kw |= JSK_DEPSCHEMAS;
			continue;
		}
		if (get_string_set(ctx, &e, eloc, &req, &nreq))
		{
			JsProp	   *p = &n->deprequired[n->ndeprequired++];
			int			j;

			p->name = k.val.string.val;
			p->len = k.val.string.len;
			p->nreq = nreq;
			p->req = palloc(sizeof(char *) * (nreq + 1));
			p->reqlen = palloc(sizeof(int) * (nreq + 1));
			for (j = 0; j < nreq; j++)
			{
				p->req[j] = req[j].name;
				p->reqlen[j] = req[j].len;
			}
			n->kw |= JSK_DEPREQUIRED;
		}
	}
}

/*
 * Validation keywords for objects: maxProperties, minProperties, required,
 * dependentRequired (and draft-07 "dependencies")
 */
static void
parse_object_keyword(CompileCtx *ctx, JsNode *n, KwId id, JsonbValue *v,
					 Scope *sc, const char *kloc)
{
	switch (id)
	{
		case KW_MAXPROPERTIES:
			if (get_count(ctx, v, kloc, &n->maxproperties))
				n->kw |= JSK_MAXPROPERTIES;
			break;
		case KW_MINPROPERTIES:
			if (get_count(ctx, v, kloc, &n->minproperties))
				n->kw |= JSK_MINPROPERTIES;
			break;
		case KW_REQUIRED:
			if (get_string_set(ctx, v, kloc, &n->required, &n->nrequired) &&
				n->nrequired > 0)
				n->kw |= JSK_REQUIRED;
			break;
		case KW_DEPREQUIRED:
		case KW_DEPENDENCIES:
			parse_dependencies(ctx, n, id, v, sc, kloc);
			break;
		default:
			break;
	}
}

/*
 * Applicators to the instance itself: allOf, anyOf, oneOf, not, if, then,
 * else, dependentSchemas
 */
static void
parse_inplace_applicator(CompileCtx *ctx, JsNode *n, KwId id, JsonbValue *v,
						 Scope *sc, const char *kloc)
{
	switch (id)
	{
		case KW_ALLOF:
			if (get_schema_array(ctx, v, sc, kloc, &n->allof, &n->nallof, false))
				n->kw |= JSK_ALLOF;
			break;
		case KW_ANYOF:
			if (get_schema_array(ctx, v, sc, kloc, &n->anyof, &n->nanyof, false))
				n->kw |= JSK_ANYOF;
			break;
		case KW_ONEOF:
			if (get_schema_array(ctx, v, sc, kloc, &n->oneof, &n->noneof, false))
				n->kw |= JSK_ONEOF;
			break;
		case KW_NOT:
			n->not = compile_node(ctx, v, sc, kloc);
			n->kw |= JSK_NOT;
			break;
		case KW_IF:
			n->if_ = compile_node(ctx, v, sc, kloc);
			n->kw |= JSK_IF;
			break;
		case KW_THEN:
			n->then_ = compile_node(ctx, v, sc, kloc);
			n->kw |= JSK_THEN;
			break;
		case KW_ELSE:
			n->else_ = compile_node(ctx, v, sc, kloc);
			n->kw |= JSK_ELSE;
			break;
		case KW_DEPSCHEMAS:
			if (get_schema_map(ctx, v, sc, kloc, &n->depschemas, &n->ndepschemas))
				n->kw |= JSK_DEPSCHEMAS;
			break;
		default:
			break;
	}
}

/* "patternProperties": a regex and a subschema per member */
static void
parse_pattern_props(CompileCtx *ctx, JsNode *n, JsonbValue *v, Scope *sc,
					const char *kloc)
{
	JsonbContainer *c;
	int			cnt;
	int			i;

	if (!is_object(v))
	{
		schema_error(ctx, kloc, "value must be an object");
		return;
	}
	c = v->val.binary.data;
	cnt = JsonContainerSize(c);
	n->patternprops = palloc0(sizeof(JsPatternProp) * (cnt + 1));
	for (i = 0; i < cnt; i++)
	{
		JsonbValue	k,
					e;
		char	   *eloc;
		JsRegex    *re;

		JbvGetPair(c, i, &k, &e);
		eloc = loc_key(kloc, k.val.string.val, k.val.string.len);
		re = compile_regex(ctx, k.val.string.val, k.val.string.len, eloc);
		if (re == NULL)
			continue;
		n->patternprops[n->npatternprops].re = re;
		n->patternprops[n->npatternprops].node = compile_node(ctx, &e, sc, eloc);
		n->npatternprops++;
	}
	n->kw |= JSK_PATTERNPROPS;
}

/*
 * Applicators to array items and object members: prefixItems, items
 * (with draft-07 additionalItems), contains, properties, patternProperties,
 * additionalProperties, propertyNames, unevaluatedItems,
 * unevaluatedProperties
 */
static void
parse_child_applicator(CompileCtx *ctx, JsNode *n, KwId id, JsonbValue *v,
					   Scope *sc, const char *loc, const char *kloc,
					   JsonbValue *additional_items)
{
	switch (id)
	{
		case KW_PREFIXITEMS:
			if (get_schema_array(ctx, v, sc, kloc, &n->prefixitems, &n->nprefixitems, false))
				n->kw |= JSK_PREFIXITEMS;
			break;
		case KW_ITEMS:
			if (!IS2020(sc) && is_array(v))
			{
				/* draft-07 tuple form: prefixItems + additionalItems */
				if (get_schema_array(ctx, v, sc, kloc, &n->prefixitems, &n->nprefixitems, true))
					n->kw |= JSK_PREFIXITEMS;
				if (additional_items != NULL)
				{
					n->items = sub(ctx, additional_items, sc, loc, "additionalItems");
					n->kw |= JSK_ITEMS;
				}
			}
			else
			{
				n->items = compile_node(ctx, v, sc, kloc);
				n->kw |= JSK_ITEMS;
			}
			break;
		case KW_ADDITIONALITEMS:
			/* handled with "items" */
			break;
		case KW_CONTAINS:
			n->contains = compile_node(ctx, v, sc, kloc);
			n->kw |= JSK_CONTAINS;
			break;
		case KW_PROPERTIES:
			if (get_schema_map(ctx, v, sc, kloc, &n->properties, &n->nproperties))
				n->kw |= JSK_PROPERTIES;
			break;
		case KW_PATTERNPROPS:
			parse_pattern_props(ctx, n, v, sc, kloc);
			break;
		case KW_ADDITIONALPROPS:
			n->additionalprops = compile_node(ctx, v, sc, kloc);
			n->kw |= JSK_ADDITIONALPROPS;
			break;
		case KW_PROPERTYNAMES:
			n->propertynames = compile_node(ctx, v, sc, kloc);
			n->kw |= JSK_PROPERTYNAMES;
			break;
		case KW_UNEVALITEMS:
			n->unevalitems = compile_node(ctx, v, sc, kloc);
			n->kw |= JSK_UNEVALITEMS;
			n->has_unevaluated = true;
			break;
		case KW_UNEVALPROPS:
			n->unevalprops = compile_node(ctx, v, sc, kloc);
			n->kw |= JSK_UNEVALPROPS;
			n->has_unevaluated = true;
			break;
		default:
			break;
	}
}

/*
 * Parse one keyword of node n: dispatch on its family.  Every keyword id is
 * listed here, so that -Wswitch catches a new one left out.
 */
static void
parse_keyword(CompileCtx *ctx, JsNode *n, KwId id, const char *kw, JsonbValue *v,
			  Scope *sc, const char *loc, JsonbValue *additional_items)
{
	char	   *kloc = loc_key(loc, kw, strlen(kw));

	switch (id)
	{
		case KW_IGNORED:
		case KW_SCHEMA:
		case KW_ID:
		case KW_ANCHOR:
		case KW_DYNANCHOR:
		case KW_VOCABULARY:
			/* read by compile_node() and document_dialect(), or ignored */
			break;
		case KW_REF:
		case KW_DYNREF:
			parse_reference(ctx, n, id, v, kloc);
			break;
		case KW_DEFS:
		case KW_DEFINITIONS:
			scan_defs(ctx, v, sc, kloc);
			break;
		case KW_TYPE:
		case KW_ENUM:
		case KW_CONST:
			parse_any_keyword(ctx, n, id, v, kloc);
			break;
		case KW_MULTIPLEOF:
		case KW_MAXIMUM:
		case KW_EXMAXIMUM:
		case KW_MINIMUM:
		case KW_EXMINIMUM:
			parse_number_keyword(ctx, n, id, v, kloc);
			break;
		case KW_MAXLENGTH:
		case KW_MINLENGTH:
		case KW_PATTERN:
		case KW_FORMAT:
			parse_string_keyword(ctx, n, id, v, kloc);
			break;
		case KW_MAXITEMS:
		case KW_MINITEMS:
		case KW_UNIQUEITEMS:
		case KW_MAXCONTAINS:
		case KW_MINCONTAINS:
			parse_array_keyword(ctx, n, id, v, kloc);
			break;
		case KW_MAXPROPERTIES:
		case KW_MINPROPERTIES:
		case KW_REQUIRED:
		case KW_DEPREQUIRED:
		case KW_DEPENDENCIES:
			parse_object_keyword(ctx, n, id, v, sc, kloc);
			break;
		case KW_ALLOF:
		case KW_ANYOF:
		case KW_ONEOF:
		case KW_NOT:
		case KW_IF:
		case KW_THEN:
		case KW_ELSE:
		case KW_DEPSCHEMAS:
			parse_inplace_applicator(ctx, n, id, v, sc, kloc);
			break;
		case KW_PREFIXITEMS:
		case KW_ITEMS:
		case KW_ADDITIONALITEMS:
		case KW_CONTAINS:
		case KW_PROPERTIES:
		case KW_PATTERNPROPS:
		case KW_ADDITIONALPROPS:
		case KW_PROPERTYNAMES:
		case KW_UNEVALITEMS:
		case KW_UNEVALPROPS:
			parse_child_applicator(ctx, n, id, v, sc, loc, kloc, additional_items);
			break;
	}
}

/*
 * The $id (value v) of node n, compiled from json at loc: registers the
 * resource it names, or fills the document's placeholder one, and makes it
 * sc's resource and base URI; a draft-07 "#name" fragment is an anchor.
 */
static void
parse_id(CompileCtx *ctx, JsNode *n, JsonbValue *json, JsonbValue *v,
		 Scope *sc, const char *loc)
{
	char	   *id;
	char	   *frag;
	char	   *resolved;
	char	   *uri;

	if (v->type != jbvString)
	{
		schema_error(ctx, loc_key(loc, "$id", 3), "value must be a string");
		return;
	}
	id = vstr(v);
	resolved = JsonschemaUriResolve(sc->base, id);
	uri = JsonschemaUriStripFragment(resolved, &frag);

	if (IS2020(sc) && frag != NULL && frag[0] != '\0')
		schema_error(ctx, loc_key(loc, "$id", 3),
					 "$id must not contain a non-empty fragment");
	else if (id[0] != '#')
	{
		JsResource *r = find_resource(ctx, uri);

		if (r != NULL && r->node != NULL && r->node != n)
			schema_error(ctx, loc_key(loc, "$id", 3),
						 "duplicate resource identifier \"%s\"", uri);
		else if (r != NULL)
		{
			/* the document's own placeholder resource */
			r->node = n;
			r->json = *json;
			sc->res = r;
			sc->base = r->uri;
		}
		else
		{
			r = new_resource(ctx, uri, json, loc, sc);
			r->node = n;
			index_resource(ctx, uri, r);
			sc->res = r;
			sc->base = r->uri;
		}
	}
	if (!IS2020(sc) && frag != NULL && frag[0] != '\0')
	{
		if (!valid_anchor_name(frag))
			schema_error(ctx, loc_key(loc, "$id", 3), "invalid anchor name \"%s\"", frag);
		else
			add_anchor(ctx, sc->res, frag, false, n, loc);
	}
}

/* The 2020-12 $anchor and $dynamicAnchor of node n (object c) at loc */
static void
parse_anchors(CompileCtx *ctx, JsNode *n, JsonbContainer *c, Scope *sc,
			  const char *loc)
{
	JsonbValue	v;

	if (JbvFindKey(c, "$anchor", 7, &v))
	{
		if (v.type != jbvString || !valid_anchor_name(vstr(&v)))
			schema_error(ctx, loc_key(loc, "$anchor", 7), "value must be a valid anchor name");
		else
			add_anchor(ctx, sc->res, vstr(&v), false, n, loc);
	}
	if (JbvFindKey(c, "$dynamicAnchor", 14, &v))
	{
		if (v.type != jbvString || !valid_anchor_name(vstr(&v)))
			schema_error(ctx, loc_key(loc, "$dynamicAnchor", 14), "value must be a valid anchor name");
		else
			add_anchor(ctx, sc->res, vstr(&v), true, n, loc);
	}
}

/*
 * Compile the subschema json found at loc.  A subschema already compiled
 * (reached again through a $ref pointer) is returned as it is.
 */
static JsNode *
compile_node(CompileCtx *ctx, JsonbValue *json, Scope *outer, const char *loc)
{
	JsNode	   *n;
	JsonbContainer *c;
	NodeMapEntry *me;
	bool		found;
	Scope		sc = *outer;
	JsonbValue	v;
	int			cnt,
				i;
	bool		has_ref_draft7 = false;
	JsonbValue	additional_items;
	bool		has_additional_items = false;

	check_stack_depth();
	ctx->loc = loc;
	compile_work(ctx, 1);

	if (json->type == jbvBool)
		return bool_node(ctx, json->val.boolean, &sc, loc);
	if (!is_object(json))
	{
		schema_error(ctx, loc, "a schema must be an object or a boolean");
		return bool_node(ctx, true, &sc, loc);
	}

	c = json->val.binary.data;
	me = hash_search(ctx->nodemap, &c, HASH_ENTER, &found);
	if (found)
		return me->node;

	n = palloc0(sizeof(JsNode));
	me->node = n;
	n->boolean = -1;
	n->container = c;
	n->location = pstrdup(loc);
	ctx->s->nnodes++;

	if (!IS2020(&sc) && JbvFindKey(c, "$ref", 4, &v))
		has_ref_draft7 = true;

	/* $id first: it changes the base URI for everything else */
	if (!has_ref_draft7 && JbvFindKey(c, "$id", 3, &v))
		parse_id(ctx, n, json, &v, &sc, loc);
	n->resource = sc.res;
	n->base = (char *) sc.base;

	if (IS2020(&sc))
		parse_anchors(ctx, n, c, &sc, loc);

	if (has_ref_draft7)
	{
		/* draft-07: all other keywords beside $ref are ignored */
		JbvFindKey(c, "$ref", 4, &v);
		parse_keyword(ctx, n, KW_REF, "$ref", &v, &sc, loc, NULL);
		return n;
	}

	if (!IS2020(&sc) && JbvFindKey(c, "additionalItems", 15, &additional_items))
		has_additional_items = true;

	cnt = JsonContainerSize(c);
	for (i = 0; i < cnt; i++)
	{
		JsonbValue	k;
		KwId		id;
		char	   *kw;

		JbvGetPair(c, i, &k, &v);
		id = keyword_id(k.val.string.val, k.val.string.len, &sc);
		if (id == KW_IGNORED)
			continue;
		kw = vstr(&k);
		parse_keyword(ctx, n, id, kw, &v, &sc, loc,
					  has_additional_items ? &additional_items : NULL);
	}
	merge_keys(n);
	n->quick_anyof = (n->kw == JSK_ANYOF);
	n->plain_object = !n->has_unevaluated &&
		(n->kw & ~(JSK_TYPE | JSK_PROPERTIES | JSK_REQUIRED | JSK_ADDITIONALPROPS)) == 0;
	n->plain_array = !n->has_unevaluated && (n->kw & JSK_ITEMS) &&
		(n->kw & ~(JSK_TYPE | JSK_ITEMS | JSK_MINITEMS | JSK_MAXITEMS)) == 0;
	return n;
}

/* ---------------------------------------------------------------------
 * Documents and $ref resolution
 * ---------------------------------------------------------------------
 */

static int
draft_of_uri(const char *s)
{
	if (strcmp(s, "https://json-schema.org/draft/2020-12/schema") == 0 ||
		strcmp(s, "https://json-schema.org/draft/2020-12/schema#") == 0)
		return JS_DRAFT2020;
	if (strcmp(s, "http://json-schema.org/draft-07/schema") == 0 ||
		strcmp(s, "http://json-schema.org/draft-07/schema#") == 0 ||
		strcmp(s, "https://json-schema.org/draft-07/schema") == 0 ||
		strcmp(s, "https://json-schema.org/draft-07/schema#") == 0)
		return JS_DRAFT7;
	return 0;
}

static bool
find_document(CompileCtx *ctx, const char *uri, JsonbValue *out)
{
	Jsonb	   *doc;

	if (ctx->s->registry != NULL && !JB_ROOT_IS_SCALAR(ctx->s->registry) &&
		JB_ROOT_IS_OBJECT(ctx->s->registry))
	{
		if (JbvFindKey(&ctx->s->registry->root, uri, strlen(uri), out))
			return true;
	}
	doc = JsonschemaBuiltinDocument(uri);
	if (doc != NULL)
	{
		JbvRootValue(doc, out);
		return true;
	}
	return false;
}

/*
 * Work out draft and vocabularies from a document's $schema.  Returns
 * false (after reporting) if the dialect is not supported.
 */
static bool
document_dialect(CompileCtx *ctx, JsonbValue *root, const char *loc,
				 int *draft, uint32 *vocab, int depth)
{
	JsonbValue	v;
	char	   *ms;
	int			d;
	JsonbValue	meta;
	JsonbValue	vocabs;

	*vocab = JS_VOCAB_DEFAULT;
	if (!lookup(root, "$schema", &v))
		return true;
	if (v.type != jbvString)
	{
		schema_error(ctx, loc_key(loc, "$schema", 7), "value must be a string");
		return false;
	}
	ms = vstr(&v);
	d = draft_of_uri(ms);
	if (d != 0)
	{
		*draft = d;
		return true;
	}
	if (strstr(ms, "json-schema.org/") != NULL)
	{
		unsupported_error(ctx, loc_key(loc, "$schema", 7),
						  psprintf("dialect \"%s\" is not supported", ms));
		return false;
	}
	/* a custom metaschema: it must be in the registry */
	{
		char	   *uri = JsonschemaUriStripFragment(ms, NULL);

		if (depth > 8 || !find_document(ctx, uri, &meta) || !is_object(&meta))
		{
			unsupported_error(ctx, loc_key(loc, "$schema", 7),
							  psprintf("unknown metaschema \"%s\"", ms));
			return false;
		}
	}
	if (!document_dialect(ctx, &meta, loc, draft, vocab, depth + 1))
		return false;
	if (*draft == JS_DRAFT2020 && lookup(&meta, "$vocabulary", &vocabs) &&
		is_object(&vocabs))
	{
		JsonbContainer *c = vocabs.val.binary.data;
		int			i;

		*vocab = 0;
		for (i = 0; i < (int) JsonContainerSize(c); i++)
		{
			JsonbValue	k,
						e;
			char	   *name;
			static const struct
			{
				const char *suffix;
				uint32		bit;
			}			vocabs_known[] =
			{
				{"core", JS_VOCAB_CORE},
				{"applicator", JS_VOCAB_APPLICATOR},
				{"unevaluated", JS_VOCAB_UNEVALUATED},
				{"validation", JS_VOCAB_VALIDATION},
				{"meta-data", JS_VOCAB_METADATA},
				{"format-annotation", JS_VOCAB_FORMAT_ANNOTATION},
				{"format-assertion", JS_VOCAB_FORMAT_ASSERTION},
				{"content", JS_VOCAB_CONTENT},
			};
			int			j;
			bool		known = false;

			JbvGetPair(c, i, &k, &e);
			name = vstr(&k);
			for (j = 0; j < (int) lengthof(vocabs_known); j++)
			{
				char	   *full = psprintf("https://json-schema.org/draft/2020-12/vocab/%s",
											vocabs_known[j].suffix);

				if (strcmp(full, name) == 0)
				{
					*vocab |= vocabs_known[j].bit;
					known = true;
				}
			}
			if (!known && e.type == jbvBool && e.val.boolean)
			{
				unsupported_error(ctx, loc_key(loc, "$schema", 7),
								  psprintf("required vocabulary \"%s\" is not supported", name));
				return false;
			}
		}
		*vocab |= JS_VOCAB_CORE;
	}
	return true;
}

/*
 * Compile a whole document retrieved as 'uri'.  Returns its root resource.
 */
static JsResource *
compile_document(CompileCtx *ctx, JsonbValue *root, const char *uri,
				 const char *loc)
{
	Scope		sc;
	JsResource *r;
	JsNode	   *n;

	sc.draft = ctx->default_draft;
	sc.vocab = JS_VOCAB_DEFAULT;
	if (is_object(root))
		(void) document_dialect(ctx, root, loc, &sc.draft, &sc.vocab, 0);
	if (ctx->ndocs == 0)
	{
		ctx->default_draft = sc.draft;
		ctx->s->draft = sc.draft;
	}
	ctx->ndocs++;

	r = new_resource(ctx, uri, root, loc, &sc);
	sc.res = r;
	sc.base = r->uri;
	index_resource(ctx, uri, r);
	n = compile_node(ctx, root, &sc, loc);
	if (r->node == NULL)
		r->node = n;
	if (n->resource != NULL && n->resource != r)
	{
		ListCell   *lc;

		/* the retrieval URI names the resource the root's $id created */
		compile_work(ctx, list_length(ctx->uris));
		foreach(lc, ctx->uris)
		{
			UriEntry   *e = lfirst(lc);

			if (e->res == r)
				e->res = n->resource;
		}
		return n->resource;
	}
	return r;
}

static JsNode *
resolve_pointer(CompileCtx *ctx, JsResource *r, const char *ptr,
				const char *refloc, const char *ref)
{
	JsonbValue	cur = r->json;
	const char *p = ptr;
	StringInfoData tok;
	Scope		sc;

	if (*p != '/')
		goto fail;
	initStringInfo(&tok);
	while (*p == '/')
	{
		p++;
		resetStringInfo(&tok);
		while (*p && *p != '/')
		{
			if (p[0] == '~' && p[1] == '0')
			{
				appendStringInfoChar(&tok, '~');
				p += 2;
			}
			else if (p[0] == '~' && p[1] == '1')
			{
				appendStringInfoChar(&tok, '/');
				p += 2;
			}
			else
				appendStringInfoChar(&tok, *p++);
		}
		if (is_object(&cur))
		{
			JsonbValue	next;

			if (!JbvFindKey(cur.val.binary.data, tok.data, tok.len, &next))
				goto fail;
			cur = next;
		}
		else if (is_array(&cur))
		{
			char	   *end;
			long		idx;

			if (tok.len == 0 || (tok.len > 1 && tok.data[0] == '0'))
				goto fail;
			idx = strtol(tok.data, &end, 10);
			if (*end != '\0' || idx < 0 ||
				idx >= (long) JsonContainerSize(cur.val.binary.data))
				goto fail;
			JbvGetElem(cur.val.binary.data, (int) idx, &cur);
		}
		else
			goto fail;
	}

	if (is_object(&cur))
	{
		JsonbContainer *c = cur.val.binary.data;
		NodeMapEntry *me = hash_search(ctx->nodemap, &c, HASH_FIND, NULL);

		if (me != NULL)
			return me->node;
	}
	if (cur.type != jbvBool && !is_object(&cur))
		goto fail;
	sc.base = r->uri;
	sc.res = r;
	sc.draft = r->draft;
	sc.vocab = r->vocab;
	return compile_node(ctx, &cur, &sc, psprintf("%s%s", r->location, ptr));

fail:
	schema_error(ctx, refloc, "could not resolve reference \"%s\"", ref);
	return NULL;
}

/*
 * Resolve a $ref / $dynamicRef of node n.  *dynamic_anchor is set to the
 * anchor name when the static target is a $dynamicAnchor.
 */
static JsNode *
resolve_ref(CompileCtx *ctx, JsNode *n, const char *ref, const char *kw,
			char **dynamic_anchor)
{
	char	   *refloc = loc_key(n->location, kw, strlen(kw));
	char	   *full = JsonschemaUriResolve(n->base, ref);
	char	   *frag;
	char	   *uri = JsonschemaUriStripFragment(full, &frag);
	JsResource *r = find_resource(ctx, uri);

	if (dynamic_anchor)
		*dynamic_anchor = NULL;
	if (r == NULL)
	{
		JsonbValue	doc;

		if (!find_document(ctx, uri, &doc))
		{
			schema_error(ctx, refloc, "could not resolve reference \"%s\" (remote documents are not fetched)", ref);
			return NULL;
		}
		r = compile_document(ctx, &doc, uri, psprintf("%s#", uri));
		if (find_resource(ctx, uri) == NULL)
			index_resource(ctx, uri, r);
		r = find_resource(ctx, uri);
	}
	if (frag == NULL || frag[0] == '\0')
		return r->node;
	frag = JsonschemaPercentDecode(frag);
	if (frag[0] == '/')
		return resolve_pointer(ctx, r, frag, refloc, ref);
	else
	{
		JsAnchor   *a = find_anchor(ctx, r, frag);

		if (a == NULL)
		{
			schema_error(ctx, refloc, "could not resolve reference \"%s\"", ref);
			return NULL;
		}
		if (a->dynamic && dynamic_anchor)
			*dynamic_anchor = a->name;
		return a->node;
	}
}

static void
resolve_pending(CompileCtx *ctx)
{
	int			i;

	for (i = 0; i < list_length(ctx->pending); i++)
	{
		JsNode	   *n = list_nth(ctx->pending, i);

		ctx->loc = n->location;
		compile_work(ctx, 1);
		if (n->ref && n->ref_node == NULL)
		{
			n->ref_node = resolve_ref(ctx, n, n->ref, "$ref", NULL);
			if (n->ref_node == NULL)
				n->kw &= ~JSK_REF;
		}
		if (n->dynref && n->dynref_node == NULL)
		{
			n->dynref_node = resolve_ref(ctx, n, n->dynref, "$dynamicRef",
										 &n->dynref_anchor);
			if (n->dynref_node == NULL)
				n->kw &= ~JSK_DYNREF;
		}
	}
}

static void
free_regexes(void *arg)
{
	JsSchema   *s = (JsSchema *) arg;
	ListCell   *lc;

	foreach(lc, s->regexes)
		JsonschemaRegexFree((JsRegex *) lfirst(lc));
	s->regexes = NIL;
}

/*
 * Compile schema (and make registry's documents available to $ref).  The
 * result lives in a new memory context, child of 'parent'.
 */
JsSchema *
JsonschemaCompile(Jsonb *schema, Jsonb *registry, MemoryContext parent,
				  bool raise)
{
	MemoryContext cxt;
	MemoryContext old;
	JsSchema   *s;
	CompileCtx	ctx;
	HASHCTL		hctl;
	JsonbValue	root;
	MemoryContextCallback *cb;
	JsResource *r;

	cxt = AllocSetContextCreate(parent, "celerysalt JSON Schema",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);

	s = palloc0(sizeof(JsSchema));
	s->cxt = cxt;
	cb = palloc0(sizeof(MemoryContextCallback));
	cb->func = free_regexes;
	cb->arg = s;
	MemoryContextRegisterResetCallback(cxt, cb);

	s->schema = palloc(VARSIZE(schema));
	memcpy(s->schema, schema, VARSIZE(schema));
	if (registry != NULL)
	{
		s->registry = palloc(VARSIZE(registry));
		memcpy(s->registry, registry, VARSIZE(registry));
	}

	memset(&ctx, 0, sizeof(ctx));
	ctx.s = s;
	ctx.raise = raise;
	ctx.default_draft = JS_DRAFT2020;
	memset(&hctl, 0, sizeof(hctl));
	hctl.keysize = sizeof(JsonbContainer *);
	hctl.entrysize = sizeof(NodeMapEntry);
	hctl.hcxt = cxt;
	ctx.nodemap = hash_create("celerysalt JSON Schema nodes", 64, &hctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	JbvRootValue(s->schema, &root);
	r = compile_document(&ctx, &root, "", "");
	s->root = r->node;
	resolve_pending(&ctx);

	hash_destroy(ctx.nodemap);
	MemoryContextSwitchTo(old);
	return s;
}

void
JsonschemaFree(JsSchema *s)
{
	MemoryContextDelete(s->cxt);
}

/*
 * JsonschemaKeep
 *		Move a compiled schema's memory under owner, so that it is freed
 *		with owner (JsonschemaCompile leaves it under the caller's context,
 *		which an error frees).
 */
void
JsonschemaKeep(JsSchema *s, MemoryContext owner)
{
	MemoryContextSetParent(s->cxt, owner);
}
