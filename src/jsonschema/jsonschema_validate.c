/*-------------------------------------------------------------------------
 *
 * jsonschema_validate.c
 *		Validate a jsonb instance against a compiled schema (JsNode graph).
 *
 * Owns: keyword semantics, the dynamic scope for $dynamicRef, annotation
 * tracking for unevaluatedItems / unevaluatedProperties, detection of
 * $ref cycles that make no progress through the instance, and the error
 * list in "basic" output form (instance pointer, schema pointer, keyword,
 * message).
 *
 * Two modes share one walk: boolean mode stops at the first failure;
 * collecting mode (celerysalt_validation_errors) goes on and records one
 * error per failing keyword.  Inside anyOf / oneOf / not / if / contains
 * collection is switched off and a single summary error is recorded.
 *
 * All memory is palloc'd in the caller's context (the per-tuple context of
 * a scan), nothing is retained.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"

#include "jsonschema_int.h"

static bool validate_value(JsSchema *s, JsonbValue *instance,
									JsFormatMode formats, List **errors);

typedef struct PathSeg
{
	const char *key;			/* NULL: array index */
	int			len;
	int			index;
} PathSeg;

typedef struct VCtx
{
	JsSchema   *s;
	bool		assert_formats;
	JsFormatMode formats;		/* which reading of the date/time formats */
	bool		collect;
	List	   *errors;
	PathSeg    *path;
	int			depth;
	int			maxdepth;
	JsResource **scope;
	int			nscope;
	int			maxscope;
	int			inplace;
	int			inplace_limit;
	int64		work;			/* steps taken: validate() calls */
	int64		work_limit;
	Numeric		zero;			/* for multipleOf, made on first use */
	PathSeg		path_local[32]; /* initial path and scope storage: no */
	JsResource *scope_local[16];	/* palloc per call for shallow input */
} VCtx;

/* Annotation results for one instance location: evaluated props / items */
typedef struct Eval
{
	int			n;
	bool	   *seen;
} Eval;

static bool validate(VCtx *V, JsNode *n, JsonbValue *inst, Eval *ev);

/* celerysalt.validation_work_limit */
int			JsonschemaWorkLimit = JSONSCHEMA_DEFAULT_WORK_LIMIT;

/*
 * Raise the 54000 of a validation (what = "validation") or compilation
 * ("compilation") that took more than celerysalt.validation_work_limit
 * steps; location is the schema location being evaluated.
 */
void
JsonschemaWorkLimitExceeded(const char *what, const char *location)
{
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("JSON Schema %s exceeded the work limit of %d steps",
					what, JsonschemaWorkLimit),
			 errdetail("At schema location \"%s\": the limit was reached here.", location),
			 strcmp(what, "validation") == 0 ?
			 errhint("Subschemas applied to the same value again and again (through $ref, anyOf, oneOf, allOf, "
					 "not, if, properties) multiply the work: simplify the schema, or have a superuser raise "
					 "celerysalt.validation_work_limit.") :
			 errhint("Very many $id and anchors make compilation slow: split the schema, or have a superuser "
					 "raise celerysalt.validation_work_limit.")));
}

/* ---- paths and errors ---- */

static void
grow_path(VCtx *V)
{
	if (V->path == V->path_local)
	{
		V->path = palloc(sizeof(PathSeg) * V->maxdepth * 2);
		memcpy(V->path, V->path_local, sizeof(PathSeg) * V->maxdepth);
	}
	else
		V->path = repalloc(V->path, sizeof(PathSeg) * V->maxdepth * 2);
	V->maxdepth *= 2;
}

/*
 * The instance path only serves error messages: it is kept in collecting
 * mode only.  V->collect never changes between a push and its pop (the
 * places that switch it off restore it before popping), so they pair up.
 */
static inline void
push_key(VCtx *V, const char *key, int len)
{
	if (!V->collect)
		return;
	if (unlikely(V->depth >= V->maxdepth))
		grow_path(V);
	V->path[V->depth].key = key;
	V->path[V->depth].len = len;
	V->depth++;
}

static inline void
push_index(VCtx *V, int i)
{
	if (!V->collect)
		return;
	if (unlikely(V->depth >= V->maxdepth))
		grow_path(V);
	V->path[V->depth].key = NULL;
	V->path[V->depth].index = i;
	V->depth++;
}

static inline void
pop(VCtx *V)
{
	if (V->collect)
		V->depth--;
	Assert(V->depth >= 0);
}

static char *
instance_pointer(VCtx *V)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < V->depth; i++)
	{
		if (V->path[i].key)
			JbvAppendPointerToken(&buf, V->path[i].key, V->path[i].len);
		else
			appendStringInfo(&buf, "/%d", V->path[i].index);
	}
	return buf.data;
}

static void
add_error(VCtx *V, JsNode *n, const char *keyword, const char *fmt,...)
	pg_attribute_printf(4, 5);

static void
add_error(VCtx *V, JsNode *n, const char *keyword, const char *fmt,...)
{
	JsError    *e;
	va_list		ap;

	if (!V->collect)
		return;
	e = palloc(sizeof(JsError));
	va_start(ap, fmt);
	e->message = JbvFormatVA(fmt, ap);
	va_end(ap);
	e->path = instance_pointer(V);
	if (keyword)
	{
		StringInfoData sp;

		initStringInfo(&sp);
		appendStringInfoString(&sp, n->location);
		JbvAppendPointerToken(&sp, keyword, strlen(keyword));
		e->schema_path = sp.data;
	}
	else
		e->schema_path = pstrdup(n->location);
	e->keyword = keyword ? keyword : "false";
	V->errors = lappend(V->errors, e);
}

/* ---- annotations ---- */

static Eval *
eval_new(JsonbValue *inst)
{
	Eval	   *e = palloc(sizeof(Eval));

	e->n = JsonContainerSize(inst->val.binary.data);
	e->seen = palloc0(sizeof(bool) * (e->n + 1));
	return e;
}

static inline void
eval_reset(Eval *e)
{
	memset(e->seen, 0, sizeof(bool) * e->n);
}

static inline void
eval_merge(Eval *into, Eval *from)
{
	int			i;

	for (i = 0; i < into->n; i++)
		into->seen[i] |= from->seen[i];
}

/*
 * A subschema that is nothing but {"$ref": ...} (pydantic's way to use a
 * model or enum) behaves exactly like its target when both are in the same
 * resource (same dynamic scope): skip it.  A few hops at most, so a $ref
 * cycle still reaches the cycle check in apply_inplace.
 */
static inline JsNode *
follow_refs(JsNode *n)
{
	int			hops;

	for (hops = 0; hops < 4; hops++)
	{
		if (n->kw != JSK_REF || n->boolean >= 0 ||
			n->ref_node->resource != n->resource)
			break;
		n = n->ref_node;
	}
	return n;
}

/* Does inst have one of the JS_T_* types? ("integer" accepts 1.0) */
static pg_attribute_always_inline bool
type_matches(uint8 types, JsonbValue *inst)
{
	switch (inst->type)
	{
		case jbvNull:
			return (types & JS_T_NULL) != 0;
		case jbvBool:
			return (types & JS_T_BOOLEAN) != 0;
		case jbvString:
			return (types & JS_T_STRING) != 0;
		case jbvNumeric:
			if (types & JS_T_NUMBER)
				return true;
			return (types & JS_T_INTEGER) && JbvIsInteger(inst->val.numeric);
		default:
			return (types & (JsonContainerIsObject(inst->val.binary.data) ?
							 JS_T_OBJECT : JS_T_ARRAY)) != 0;
	}
}

static bool check_number(VCtx *V, JsNode *n, JsonbValue *inst);
static bool check_string(VCtx *V, JsNode *n, JsonbValue *inst);

/* x compared with bound: <0, 0, >0 (x decoded by the caller) */
static pg_attribute_always_inline int
bound_cmp(const JbvNumParts *x, Numeric xnum, Numeric bound)
{
	JbvNumParts	b;

	if (JbvNumDecode(bound, &b))
		return JbvNumPartsCmp(x, &b);
	return JbvNumCmpSlow(xnum, bound);
}

/* minimum, maximum, exclusiveMinimum, exclusiveMaximum; no error recorded */
static pg_noinline bool
number_bounds_ok(JsNode *n, Numeric x)
{
	uint64		kw = n->kw;
	JbvNumParts	p;

	if (!JbvNumDecode(x, &p))
		return !(((kw & JSK_MINIMUM) && JbvNumCmpSlow(x, n->minimum) < 0) ||
				 ((kw & JSK_MAXIMUM) && JbvNumCmpSlow(x, n->maximum) > 0) ||
				 ((kw & JSK_EXMINIMUM) && JbvNumCmpSlow(x, n->exminimum) <= 0) ||
				 ((kw & JSK_EXMAXIMUM) && JbvNumCmpSlow(x, n->exmaximum) >= 0));
	if ((kw & JSK_MINIMUM) && bound_cmp(&p, x, n->minimum) < 0)
		return false;
	if ((kw & JSK_MAXIMUM) && bound_cmp(&p, x, n->maximum) > 0)
		return false;
	if ((kw & JSK_EXMINIMUM) && bound_cmp(&p, x, n->exminimum) <= 0)
		return false;
	if ((kw & JSK_EXMAXIMUM) && bound_cmp(&p, x, n->exmaximum) >= 0)
		return false;
	return true;
}

/* JSON equality, with the common string case inline */
static pg_attribute_always_inline bool
values_equal(JsonbValue *a, JsonbValue *b)
{
	if (a->type == jbvString)
		return b->type == jbvString && a->val.string.len == b->val.string.len &&
			JbvBytesEqual(a->val.string.val, b->val.string.val, a->val.string.len);
	return JbvEqual(a, b);
}

/*
 * A scalar instance against a node without in-place applicators and
 * unevaluated* (so no annotations and no dynamic scope are involved): the
 * assertions only, without the machinery of validate().  Records no error;
 * callers use it when not collecting or to confirm success.
 */
static pg_attribute_always_inline bool
scalar_ok(VCtx *V, JsNode *n, JsonbValue *inst)
{
	uint64		kw = n->kw;
	bool		saved;
	bool		ok;

	if ((kw & JSK_TYPE) && !type_matches(n->types, inst))
		return false;
	if ((kw & JSK_CONST) && !values_equal(inst, &n->constval))
		return false;
	if (kw & JSK_ENUM)
	{
		int			i;

		for (i = 0; i < n->nenum; i++)
			if (values_equal(inst, &n->enumvals[i]))
				break;
		if (i == n->nenum)
			return false;
	}
	if (inst->type == jbvNumeric)
	{
		Numeric		x = inst->val.numeric;

		if (!(kw & JSK_NUMERIC_KW))
			return true;
		/* the bounds without error machinery; check_number() for multipleOf */
		if (!(kw & JSK_MULTIPLEOF))
			return number_bounds_ok(n, x);
		saved = V->collect;
		V->collect = false;
		ok = check_number(V, n, inst);
		V->collect = saved;
		return ok;
	}
	if (inst->type == jbvString)
	{
		if (!(kw & (V->assert_formats ? JSK_STRING_KW : (JSK_STRING_KW & ~JSK_FORMAT))))
			return true;
		/* length bounds that the byte length settles, and pattern, inline */
		if (!(kw & JSK_FORMAT) || !V->assert_formats)
		{
			int			len = inst->val.string.len;

			if (!(((kw & JSK_MAXLENGTH) && len > n->maxlength) ||
				  ((kw & JSK_MINLENGTH) && (len + 3) / 4 < n->minlength)))
				return !(kw & JSK_PATTERN) ||
					JsonschemaRegexMatch(n->pattern, inst->val.string.val, len);
		}
		saved = V->collect;
		V->collect = false;
		ok = check_string(V, n, inst);
		V->collect = saved;
		return ok;
	}
	return true;
}

/*
 * Answer for a subschema without walking it, when that is possible:
 * boolean schemas, {"type": ...} alone, and scalar instances against
 * nodes without in-place applicators.  Returns -1 when the full walk is
 * needed (also to record the error in collecting mode).
 */
static pg_attribute_always_inline int
quick_leaf(VCtx *V, JsNode *n, JsonbValue *inst)
{
	if (n->boolean >= 0)
		return n->boolean == 1 ? 1 : (V->collect ? -1 : 0);
	if (n->kw == JSK_TYPE)
	{
		if (type_matches(n->types, inst))
			return 1;
		return V->collect ? -1 : 0;
	}
	if (inst->type != jbvBinary && !(n->kw & JSK_INPLACE_KW) && !n->has_unevaluated)
	{
		if (scalar_ok(V, n, inst))
			return 1;
		return V->collect ? -1 : 0;
	}
	return -1;
}

/*
 * quick_leaf, plus schemas that are only an anyOf (pydantic's optional
 * fields: {"anyOf": [{...}, {"type": "null"}]}) whose branches all have a
 * quick answer.
 */
static pg_attribute_always_inline int
quick_answer(VCtx *V, JsNode *n, JsonbValue *inst)
{
	int			i;
	int			q;

	if (!n->quick_anyof)
		return quick_leaf(V, n, inst);
	for (i = 0; i < n->nanyof; i++)
	{
		q = quick_leaf(V, follow_refs(n->anyof[i]), inst);
		if (q == 1)
			return 1;
		if (q < 0)
			return -1;
	}
	return V->collect ? -1 : 0;
}

/*
 * Apply an in-place applicator's subschema to the same instance.  With
 * annotation tracking (evp), its annotations are merged on success only.
 */
static bool
apply_inplace(VCtx *V, JsNode *child, JsonbValue *inst, Eval *evp,
			  Eval **scratch)
{
	bool		ok;
	int			q;

	/*
	 * No follow_refs() here: a $ref cycle is detected by counting these
	 * calls, and the node it reports must stay the same.
	 */
	q = quick_answer(V, child, inst);
	if (q >= 0)
		return q == 1;

	check_stack_depth();
	CHECK_FOR_INTERRUPTS();
	V->inplace++;
	if (V->inplace > V->inplace_limit)
		ereport(ERROR,
				(errcode(JSONSCHEMA_ERRCODE_INVALID_SCHEMA),
				 errmsg("invalid JSON Schema"),
				 errdetail("At schema location \"%s\": the schema refers to itself without descending into the instance.",
						   child->location)));
	if (evp == NULL)
		ok = validate(V, child, inst, NULL);
	else
	{
		if (*scratch == NULL)
			*scratch = eval_new(inst);
		else
			eval_reset(*scratch);
		ok = validate(V, child, inst, *scratch);
		if (ok)
			eval_merge(evp, *scratch);
	}
	V->inplace--;
	return ok;
}

static bool object_props_fast(VCtx *V, JsNode *n, JsonbContainer *c, int cnt);
static bool array_items_fast(VCtx *V, JsNode *n, JsonbContainer *c, int cnt);

/* Validate a child instance (property value or array item). */
static pg_attribute_always_inline bool
apply_child(VCtx *V, JsNode *child, JsonbValue *inst)
{
	int			saved = V->inplace;
	bool		ok;
	int			q;

	child = follow_refs(child);
	q = quick_answer(V, child, inst);
	if (q >= 0)
		return q == 1;

	/*
	 * A plain model (type, properties, required, additionalProperties) on
	 * an object or array, in boolean mode and the same dynamic scope: what
	 * validate() would do, without its generic preamble.
	 */
	if (child->plain_object && !V->collect && inst->type == jbvBinary &&
		V->nscope > 0 && V->scope[V->nscope - 1] == child->resource)
	{
		JsonbContainer *c = inst->val.binary.data;

		if (!JsonContainerIsObject(c))
			return !(child->kw & JSK_TYPE) || (child->types & JS_T_ARRAY);
		if ((child->kw & JSK_TYPE) && !(child->types & JS_T_OBJECT))
			return false;
		if (child->nkeys == 0 && !(child->kw & JSK_ADDITIONALPROPS))
			return true;
		check_stack_depth();
		CHECK_FOR_INTERRUPTS();
		return object_props_fast(V, child, c, JsonContainerSize(c));
	}

	/* the same for a plain list (type, items, minItems, maxItems) */
	if (child->plain_array && !V->collect && inst->type == jbvBinary &&
		V->nscope > 0 && V->scope[V->nscope - 1] == child->resource)
	{
		JsonbContainer *c = inst->val.binary.data;

		if (!JsonContainerIsArray(c))
			return !(child->kw & JSK_TYPE) || (child->types & JS_T_OBJECT);
		if ((child->kw & JSK_TYPE) && !(child->types & JS_T_ARRAY))
			return false;
		check_stack_depth();
		CHECK_FOR_INTERRUPTS();
		return array_items_fast(V, child, c, JsonContainerSize(c));
	}
	V->inplace = 0;
	ok = validate(V, child, inst, NULL);
	V->inplace = saved;
	return ok;
}

/* ---- leaf summaries (what a node answers for each kind of entry) ---- */

typedef enum LeafAnswer
{
	LEAF_PASS,					/* accepted outright */
	LEAF_FAIL,					/* rejected outright */
	LEAF_CHECK,					/* scalar_ok() of one node decides */
	LEAF_WALK					/* apply_child() decides */
} LeafAnswer;

/* The JS_T_* types that accept an entry of kind (one JS_KIND_* bit). */
static uint8
kind_types(uint8 kind)
{
	switch (kind)
	{
		case JS_KIND_STRING:
			return JS_T_STRING;
		case JS_KIND_NUMERIC:
			return JS_T_NUMBER | JS_T_INTEGER;
		case JS_KIND_FALSE:
		case JS_KIND_TRUE:
			return JS_T_BOOLEAN;
		case JS_KIND_NULL:
			return JS_T_NULL;
		default:
			return JS_T_OBJECT | JS_T_ARRAY;
	}
}

/*
 * What node n (boolean mode) answers for an instance of kind: scalar kinds
 * against nodes without in-place applicators, exactly as quick_leaf() would;
 * anything else is left to the walk.  *check is the node for LEAF_CHECK.
 * Nested anyOf is followed a few levels (a $ref cycle through anyOf is
 * left to the walk, which reports it).
 */
static LeafAnswer
leaf_answer(JsNode *n, uint8 kind, bool formats, JsNode **check, int depth)
{
	uint64		kw = n->kw;
	uint64		applicable;

	*check = n;
	if (n->boolean >= 0)
		return n->boolean == 1 ? LEAF_PASS : LEAF_FAIL;
	if (n->quick_anyof)
	{
		bool		walk = false;
		int			nchecks = 0;

		if (depth >= 4)
			return LEAF_WALK;
		for (int i = 0; i < n->nanyof; i++)
		{
			JsNode	   *b;

			switch (leaf_answer(follow_refs(n->anyof[i]), kind, formats, &b, depth + 1))
			{
				case LEAF_PASS:
					return LEAF_PASS;
				case LEAF_FAIL:
					break;
				case LEAF_CHECK:
					*check = b;
					nchecks++;
					break;
				case LEAF_WALK:
					walk = true;
					break;
			}
		}
		if (walk || nchecks > 1)
			return LEAF_WALK;
		return nchecks == 1 ? LEAF_CHECK : LEAF_FAIL;
	}
	if (n->has_unevaluated || (kw & JSK_INPLACE_KW))
		return LEAF_WALK;
	if ((kw & JSK_TYPE) && !(n->types & kind_types(kind)))
		return LEAF_FAIL;
	if (kind == JS_KIND_CONTAINER)
		return kw == 0 ? LEAF_PASS : LEAF_WALK;
	switch (kind)
	{
		case JS_KIND_STRING:
			applicable = JSK_CONST | JSK_ENUM | JSK_MAXLENGTH | JSK_MINLENGTH | JSK_PATTERN |
				(formats ? JSK_FORMAT : 0);
			break;
		case JS_KIND_NUMERIC:
			applicable = JSK_CONST | JSK_ENUM | JSK_NUMERIC_KW;
			/* "integer" without "number": 1.5 is rejected */
			if ((kw & JSK_TYPE) && !(n->types & JS_T_NUMBER))
				return LEAF_CHECK;
			break;
		default:
			applicable = JSK_CONST | JSK_ENUM;
			break;
	}
	return (kw & applicable) ? LEAF_CHECK : LEAF_PASS;
}

/* Fill n's leaf_* fields (once). */
static pg_noinline void
leaf_summarize(JsNode *n)
{
	n->leaf_walk = 0;
	for (int formats = 0; formats <= 1; formats++)
	{
		n->leaf_pass[formats] = 0;
		n->leaf_check[formats] = 0;
		for (int t = 0; t < JS_NKINDS; t++)
		{
			uint8		kind = (uint8) (1 << t);
			JsNode	   *check;

			switch (leaf_answer(n, kind, formats, &check, 0))
			{
				case LEAF_PASS:
					n->leaf_pass[formats] |= kind;
					break;
				case LEAF_FAIL:
					break;
				case LEAF_CHECK:
					/* the checking node does not depend on formats */
					n->leaf_check[formats] |= kind;
					n->leaf_node[t] = check;
					break;
				case LEAF_WALK:
					n->leaf_walk |= kind;
					break;
			}
		}
	}
	n->leaf_state = 1;
}

/*
 * A member value or array item of entry type entry (value filled from base
 * + off only when needed) against child, in boolean mode: the leaf summary
 * settles scalars without decoding them; the rest goes to apply_child().
 */
static pg_attribute_always_inline bool
apply_entry(VCtx *V, JsNode *child, JsonbContainer *c, int index, char *base,
			uint32 off)
{
	uint8		kind = JS_KIND_OF(c->children[index]);
	int			formats = V->assert_formats ? 1 : 0;
	JsonbValue	v;

	if (unlikely(child->leaf_state == 0))
		leaf_summarize(child);
	if (kind & child->leaf_pass[formats])
		return true;
	if (kind & child->leaf_check[formats])
	{
		JbvFillValue(c, index, base, off, &v);
		return scalar_ok(V, child->leaf_node[(c->children[index] & JENTRY_TYPEMASK) >> 28], &v);
	}
	if (kind & child->leaf_walk)
	{
		JbvFillValue(c, index, base, off, &v);
		return apply_child(V, child, &v);
	}
	return false;
}

static JsNode *
dynamic_target(VCtx *V, JsNode *n)
{
	int			i;

	if (n->dynref_anchor == NULL)
		return n->dynref_node;
	for (i = 0; i < V->nscope; i++)
	{
		ListCell   *lc;

		foreach(lc, V->scope[i]->anchors)
		{
			JsAnchor   *a = lfirst(lc);

			if (a->dynamic && strcmp(a->name, n->dynref_anchor) == 0)
				return a->node;
		}
	}
	return n->dynref_node;
}

static const char *
types_text(uint8 types)
{
	StringInfoData buf;
	static const char *names[] = {"null", "boolean", "object", "array", "number", "string", "integer"};
	int			i;
	int			cnt = 0;

	initStringInfo(&buf);
	for (i = 0; i < 7; i++)
		if (types & (1 << i))
		{
			if (cnt++)
				appendStringInfoString(&buf, " or ");
			appendStringInfoString(&buf, names[i]);
		}
	return buf.data;
}

/* ---- numbers ---- */

static bool
check_number(VCtx *V, JsNode *n, JsonbValue *inst)
{
	Numeric		x = inst->val.numeric;
	bool		ok = true;

	if ((n->kw & JSK_MINIMUM) && JbvNumCmp(x, n->minimum) < 0)
	{
		add_error(V, n, "minimum", "%s is less than the minimum of %s",
				  numeric_normalize(x), numeric_normalize(n->minimum));
		ok = false;
	}
	if ((n->kw & JSK_MAXIMUM) && JbvNumCmp(x, n->maximum) > 0)
	{
		add_error(V, n, "maximum", "%s is greater than the maximum of %s",
				  numeric_normalize(x), numeric_normalize(n->maximum));
		ok = false;
	}
	if ((n->kw & JSK_EXMINIMUM) && JbvNumCmp(x, n->exminimum) <= 0)
	{
		add_error(V, n, "exclusiveMinimum", "%s is less than or equal to the exclusive minimum of %s",
				  numeric_normalize(x), numeric_normalize(n->exminimum));
		ok = false;
	}
	if ((n->kw & JSK_EXMAXIMUM) && JbvNumCmp(x, n->exmaximum) >= 0)
	{
		add_error(V, n, "exclusiveMaximum", "%s is greater than or equal to the exclusive maximum of %s",
				  numeric_normalize(x), numeric_normalize(n->exmaximum));
		ok = false;
	}
	if (n->kw & JSK_MULTIPLEOF)
	{
		Numeric		r = DatumGetNumeric(DirectFunctionCall2(numeric_mod,
															NumericGetDatum(x),
															NumericGetDatum(n->multipleof)));

		if (V->zero == NULL)
			V->zero = int64_to_numeric(0);
		if (JbvNumCmp(r, V->zero) != 0)
		{
			add_error(V, n, "multipleOf", "%s is not a multiple of %s",
					  numeric_normalize(x), numeric_normalize(n->multipleof));
			ok = false;
		}
	}
	return ok;
}

/* ---- strings ---- */

static bool
check_string(VCtx *V, JsNode *n, JsonbValue *inst)
{
	const char *s = inst->val.string.val;
	int			len = inst->val.string.len;
	bool		ok = true;

	/*
	 * A string of len bytes has between len/4 and len code points: count
	 * them only when those bounds do not settle the question.
	 */
	if ((n->kw & (JSK_MINLENGTH | JSK_MAXLENGTH)) &&
		(((n->kw & JSK_MAXLENGTH) && len > n->maxlength) ||
		 ((n->kw & JSK_MINLENGTH) && (len + 3) / 4 < n->minlength)))
	{
		int64		chars = JbvStrLen(s, len);

		if ((n->kw & JSK_MINLENGTH) && chars < n->minlength)
		{
			add_error(V, n, "minLength", "string is shorter than %lld characters",
					  (long long) n->minlength);
			ok = false;
		}
		if ((n->kw & JSK_MAXLENGTH) && chars > n->maxlength)
		{
			add_error(V, n, "maxLength", "string is longer than %lld characters",
					  (long long) n->maxlength);
			ok = false;
		}
		if (!ok && !V->collect)
			return false;
	}
	if ((n->kw & JSK_PATTERN) && !JsonschemaRegexMatch(n->pattern, s, len))
	{
		add_error(V, n, "pattern", "string does not match pattern \"%s\"", n->pattern->source);
		ok = false;
	}
	if ((n->kw & JSK_FORMAT) && V->assert_formats &&
		!JsonschemaFormatCheck(n->format, s, len, V->formats))
	{
		add_error(V, n, "format", "string is not a valid \"%s\"", n->format_name);
		ok = false;
	}
	return ok;
}

/* ---- arrays ---- */

typedef struct HashIdx
{
	uint32		hash;
	int			index;
} HashIdx;

static int
hashidx_cmp(const void *a, const void *b)
{
	const HashIdx *x = a;
	const HashIdx *y = b;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return x->index - y->index;
}

/* uniqueItems in O(n log n): sort by canonical hash, compare equal hashes */
static bool
check_unique(VCtx *V, JsNode *n, JsonbContainer *c)
{
	int			cnt = JsonContainerSize(c);
	HashIdx    *h;
	JsonbValue *vals;
	JbvIter		it;
	JsonbValue	dummy;
	int			i,
				j;

	if (cnt < 2)
		return true;
	h = palloc(sizeof(HashIdx) * cnt);
	vals = palloc(sizeof(JsonbValue) * cnt);
	JbvIterInit(&it, c);
	for (i = 0; JbvIterNext(&it, &dummy, &vals[i]); i++)
	{
		if ((i & 1023) == 0)
			CHECK_FOR_INTERRUPTS();
		h[i].hash = JbvHash(&vals[i]);
		h[i].index = i;
	}
	qsort(h, cnt, sizeof(HashIdx), hashidx_cmp);
	for (i = 0; i < cnt; i = j)
	{
		for (j = i + 1; j < cnt && h[j].hash == h[i].hash; j++)
			;
		if (j - i > 1)
		{
			int			a,
						b;

			for (a = i; a < j; a++)
				for (b = a + 1; b < j; b++)
				{
					CHECK_FOR_INTERRUPTS();
					if (JbvEqual(&vals[h[a].index], &vals[h[b].index]))
					{
						int			x = Min(h[a].index, h[b].index);
						int			y = Max(h[a].index, h[b].index);

						add_error(V, n, "uniqueItems", "array items %d and %d are equal", x, y);
						return false;
					}
				}
		}
	}
	return true;
}

/* An array keyword failed: stop in boolean mode, go on when collecting */
#define AFAIL() do { ok = false; if (!V->collect) return false; } while (0)

/* prefixItems and items: every item against its subschema */
static bool
check_items(VCtx *V, JsNode *n, JsonbContainer *c, Eval *evp)
{
	JbvIter		it;
	JsonbValue	e,
				dummy;
	int			i;
	bool		ok = true;

	/* remember the $ref target of "items" (same answer, one node less) */
	if ((n->kw & JSK_ITEMS) && unlikely(n->items->kw == JSK_REF))
		n->items = follow_refs(n->items);

	JbvIterInit(&it, c);
	for (i = 0; JbvIterNext(&it, &dummy, &e); i++)
	{
		JsNode	   *child;

		if ((i & 255) == 255)
			CHECK_FOR_INTERRUPTS();
		if (i < n->nprefixitems)
			child = n->prefixitems[i];
		else if (n->kw & JSK_ITEMS)
			child = n->items;
		else
			break;
		push_index(V, i);
		if (!apply_child(V, child, &e))
		{
			pop(V);
			AFAIL();
			continue;
		}
		pop(V);
		if (evp)
			evp->seen[i] = true;
	}
	return ok;
}

/* contains with minContains / maxContains: one summary error each */
static bool
check_contains(VCtx *V, JsNode *n, JsonbContainer *c, Eval *evp)
{
	JbvIter		it;
	JsonbValue	e,
				dummy;
	int			i;
	int64		matches = 0;
	int64		mincontains = (n->kw & JSK_MINCONTAINS) ? n->mincontains : 1;
	bool		need_all = evp != NULL || (n->kw & JSK_MAXCONTAINS);
	bool		saved = V->collect;
	bool		ok = true;

	V->collect = false;
	JbvIterInit(&it, c);
	for (i = 0; JbvIterNext(&it, &dummy, &e); i++)
	{
		if ((i & 255) == 255)
			CHECK_FOR_INTERRUPTS();
		push_index(V, i);
		if (apply_child(V, n->contains, &e))
		{
			matches++;
			if (evp)
				evp->seen[i] = true;
		}
		pop(V);
		if (!need_all && matches >= mincontains)
			break;
	}
	V->collect = saved;
	if (matches < mincontains)
	{
		if (n->kw & JSK_MINCONTAINS)
			add_error(V, n, "minContains", "array contains fewer than %lld matching items",
					  (long long) mincontains);
		else
			add_error(V, n, "contains", "array does not contain a matching item");
		AFAIL();
	}
	if ((n->kw & JSK_MAXCONTAINS) && matches > n->maxcontains)
	{
		add_error(V, n, "maxContains", "array contains more than %lld matching items",
				  (long long) n->maxcontains);
		AFAIL();
	}
	return ok;
}

/* The array keywords of n (JSK_ARRAY_KW) on array inst */
static bool
check_array(VCtx *V, JsNode *n, JsonbValue *inst, Eval *evp)
{
	JsonbContainer *c = inst->val.binary.data;
	int			cnt = JsonContainerSize(c);
	bool		ok = true;

	if ((n->kw & JSK_MINITEMS) && cnt < n->minitems)
	{
		add_error(V, n, "minItems", "array has fewer than %lld items", (long long) n->minitems);
		AFAIL();
	}
	if ((n->kw & JSK_MAXITEMS) && cnt > n->maxitems)
	{
		add_error(V, n, "maxItems", "array has more than %lld items", (long long) n->maxitems);
		AFAIL();
	}
	if ((n->kw & JSK_UNIQUEITEMS) && !check_unique(V, n, c))
		AFAIL();
	if ((n->kw & (JSK_PREFIXITEMS | JSK_ITEMS)) && !check_items(V, n, c, evp))
		AFAIL();
	if ((n->kw & JSK_CONTAINS) && !check_contains(V, n, c, evp))
		AFAIL();
	return ok;
}

/* ---- objects ---- */

/*
 * One step of the merge of an object's members (in jsonb key order) with
 * n->keys: advances *ki past the schema keys that sort before key, counts a
 * matching required key, and returns the member's subschema (the matching
 * property's, else dflt: additionalProperties or NULL).
 */
static pg_attribute_always_inline JsNode *
match_member(JsNode *n, int *ki, const char *key, uint32 klen, JsNode *dflt,
			 int *found_required)
{
	while (*ki < n->nkeys)
	{
		JsKey	   *k = &n->keys[*ki];
		int			cmp = JbvKeyCmp(k->name, k->len, key, klen);

		if (cmp > 0)
			break;
		(*ki)++;
		if (cmp == 0)
		{
			*found_required += k->required;
			if (k->node == NULL)
				return dflt;
			/* remember the $ref target (same answer, one node less) */
			if (unlikely(k->node->kw == JSK_REF))
				k->node = follow_refs(k->node);
			return k->node;
		}
	}
	return dflt;
}

/*
 * object_props_fast() for objects without a layout: one merge of the
 * object's keys with n->keys, reading JEntries directly, values decoded
 * only when a subschema applies.  Without additionalProperties it stops
 * once the schema's keys are exhausted, as the remaining members match
 * nothing.
 */
static bool
object_props_merge(VCtx *V, JsNode *n, JsonbContainer *c, int cnt, char *base,
				   uint32 voff)
{
	uint32		koff = 0;
	int			nkeys = n->nkeys;
	JsNode	   *addl = (n->kw & JSK_ADDITIONALPROPS) ? n->additionalprops : NULL;
	int			ki = 0;
	int			found_required = 0;
	int			i;

	for (i = 0; i < cnt && (ki < nkeys || addl != NULL); i++)
	{
		JEntry		ke = c->children[i];
		JEntry		ve = c->children[i + cnt];
		uint32		klen = JBE_HAS_OFF(ke) ? JBE_OFFLENFLD(ke) - koff : JBE_OFFLENFLD(ke);
		JsNode	   *child;

		if ((i & 255) == 255)
			CHECK_FOR_INTERRUPTS();
		child = match_member(n, &ki, base + koff, klen, addl, &found_required);
		if (child != NULL && !apply_entry(V, child, c, i + cnt, base, voff))
			return false;
		JBE_ADVANCE_OFFSET(koff, ke);
		JBE_ADVANCE_OFFSET(voff, ve);
	}
	return found_required == n->nrequired;
}

/*
 * The members of an object matched against a node's properties once, for
 * every object with exactly the same keys in the same order: the keys'
 * JEntries and bytes identify the key sequence.
 */
typedef struct JsLayout
{
	int			cnt;			/* members */
	uint32		keybytes;		/* bytes of all keys */
	bool		required_ok;	/* every required key is present */
	JEntry	   *key_entries;	/* [cnt] */
	char	   *key_bytes;		/* [keybytes] */
	JsNode	  **child;			/* [cnt] subschema of each member, or NULL */
	uint8	   *pass[2];		/* [cnt] kinds accepted outright, by formats */
} JsLayout;

/*
 * Layouts are kept for objects up to this size (bigger ones are merged), and
 * up to a memory budget per compiled schema: hostile input cannot make a
 * cached schema grow without bound.
 */
#define JS_LAYOUT_MAX_MEMBERS	256
#define JS_LAYOUT_MAX_KEYBYTES	8192
#define JS_LAYOUT_BUDGET		(256 * 1024)

static inline Size
layout_size(int cnt, uint32 keybytes)
{
	return sizeof(JsLayout) + (Size) cnt * (sizeof(JEntry) + sizeof(JsNode *) + 2) + keybytes;
}

/*
 * The layout of n for an object of cnt members whose keys are these: the
 * key JEntries settle the keys' lengths (so *keybytes, where the values
 * start, is the layout's), then the key bytes must match.
 */
static JsLayout *
find_layout(JsNode *n, JsonbContainer *c, int cnt, const char *base, uint32 *keybytes)
{
	for (int j = 0; j < n->nlayouts; j++)
	{
		JsLayout   *L = n->layouts[j];

		if (L->cnt == cnt &&
			memcmp(L->key_entries, c->children, sizeof(JEntry) * cnt) == 0 &&
			memcmp(L->key_bytes, base, L->keybytes) == 0)
		{
			*keybytes = L->keybytes;
			return L;
		}
	}
	return NULL;
}

/*
 * Match the members of c against n's properties (n->keys, in jsonb key
 * order, merged with required) and additionalProperties, and keep the
 * result as a new layout of n.
 */
static JsLayout *
add_layout(VCtx *V, JsNode *n, JsonbContainer *c, int cnt, const char *base,
		   uint32 keybytes)
{
	MemoryContext old = MemoryContextSwitchTo(V->s->cxt);
	JsNode	   *addl = (n->kw & JSK_ADDITIONALPROPS) ? n->additionalprops : NULL;
	JsLayout   *L = palloc(sizeof(JsLayout));
	uint32		koff = 0;
	int			ki = 0;
	int			found_required = 0;

	L->cnt = cnt;
	L->keybytes = keybytes;
	L->key_entries = palloc(sizeof(JEntry) * Max(cnt, 1));
	memcpy(L->key_entries, c->children, sizeof(JEntry) * cnt);
	L->key_bytes = palloc(Max(keybytes, 1));
	memcpy(L->key_bytes, base, keybytes);
	L->child = palloc(sizeof(JsNode *) * Max(cnt, 1));
	L->pass[0] = palloc(Max(cnt, 1));
	L->pass[1] = palloc(Max(cnt, 1));
	MemoryContextSwitchTo(old);

	for (int i = 0; i < cnt; i++)
	{
		JEntry		ke = c->children[i];
		uint32		klen = JBE_HAS_OFF(ke) ? JBE_OFFLENFLD(ke) - koff : JBE_OFFLENFLD(ke);
		JsNode	   *child = match_member(n, &ki, base + koff, klen, addl, &found_required);

		L->child[i] = child;
		if (child == NULL)
			L->pass[0][i] = L->pass[1][i] = 0xFF;
		else
		{
			if (child->leaf_state == 0)
				leaf_summarize(child);
			L->pass[0][i] = child->leaf_pass[0];
			L->pass[1][i] = child->leaf_pass[1];
		}
		JBE_ADVANCE_OFFSET(koff, ke);
	}
	L->required_ok = found_required == n->nrequired;
	V->s->layout_bytes += layout_size(cnt, keybytes);

	/* published only once complete */
	n->layouts[n->nlayouts] = L;
	n->nlayouts++;
	return L;
}

/*
 * properties + required + additionalProperties in boolean mode, for a node
 * without patternProperties, propertyNames and annotation tracking (the
 * usual pydantic model), no instance path kept (nothing is reported).  The
 * keys are matched once per distinct key sequence (a layout); members whose
 * entry kind the subschema accepts outright are not even decoded.
 */
static bool
object_props_fast(VCtx *V, JsNode *n, JsonbContainer *c, int cnt)
{
	char	   *base = (char *) &c->children[cnt * 2];
	uint32		voff;
	JsLayout   *L;
	const uint8 *pass;

	L = find_layout(n, c, cnt, base, &voff);
	if (L == NULL)
	{
		voff = cnt > 0 ? JbvOffset(c, cnt) : 0;
		if (n->nlayouts < JS_MAX_LAYOUTS && cnt <= JS_LAYOUT_MAX_MEMBERS &&
			voff <= JS_LAYOUT_MAX_KEYBYTES &&
			V->s->layout_bytes + layout_size(cnt, voff) <= JS_LAYOUT_BUDGET)
			L = add_layout(V, n, c, cnt, base, voff);
		else
			return object_props_merge(V, n, c, cnt, base, voff);
	}
	if (!L->required_ok)
		return false;
	pass = L->pass[V->assert_formats ? 1 : 0];
	for (int i = 0; i < cnt; i++)
	{
		JEntry		ve = c->children[i + cnt];

		if ((i & 255) == 255)
			CHECK_FOR_INTERRUPTS();
		if (!(JS_KIND_OF(ve) & pass[i]) &&
			!apply_entry(V, L->child[i], c, i + cnt, base, voff))
			return false;
		JBE_ADVANCE_OFFSET(voff, ve);
	}
	return true;
}

/*
 * minItems, maxItems and items of a plain_array node in boolean mode, like
 * check_array() without the instance path (nothing is reported).
 */
static bool
array_items_fast(VCtx *V, JsNode *n, JsonbContainer *c, int cnt)
{
	char	   *base = (char *) &c->children[cnt];
	uint32		off = 0;
	JsNode	   *items;
	int			i;

	if ((n->kw & JSK_MINITEMS) && cnt < n->minitems)
		return false;
	if ((n->kw & JSK_MAXITEMS) && cnt > n->maxitems)
		return false;
	/* remember the $ref target of "items" (same answer, one node less) */
	if (unlikely(n->items->kw == JSK_REF))
		n->items = follow_refs(n->items);
	items = n->items;
	for (i = 0; i < cnt; i++)
	{
		JEntry		e = c->children[i];

		if ((i & 255) == 255)
			CHECK_FOR_INTERRUPTS();
		if (!apply_entry(V, items, c, i, base, off))
			return false;
		JBE_ADVANCE_OFFSET(off, e);
	}
	return true;
}

/* An object keyword failed: stop in boolean mode, go on when collecting */
#define OFAIL() do { ok = false; if (!V->collect) return false; } while (0)

/* propertyNames on the member name k: one summary error at the member */
static bool
check_property_name(VCtx *V, JsNode *n, JsonbValue *k)
{
	bool		saved = V->collect;
	bool		pn_ok;

	V->collect = false;
	pn_ok = apply_child(V, n->propertynames, k);
	V->collect = saved;
	if (!pn_ok)
	{
		push_key(V, k->val.string.val, k->val.string.len);
		add_error(V, n, "propertyNames", "property name \"%.*s\" is invalid",
				  Min(k->val.string.len, 100), k->val.string.val);
		pop(V);
	}
	return pn_ok;
}

/*
 * patternProperties on the member key: its value v against the subschema of
 * every matching pattern; sets *matched when one matches.
 */
static bool
check_pattern_props(VCtx *V, JsNode *n, const char *key, int klen,
					JsonbValue *v, bool *matched)
{
	int			j;
	bool		pp_ok = true;

	/* every member against every pattern: count them as steps */
	V->work += n->npatternprops;
	if (unlikely(V->work > V->work_limit))
		JsonschemaWorkLimitExceeded("validation", n->location);
	CHECK_FOR_INTERRUPTS();
	for (j = 0; j < n->npatternprops; j++)
	{
		if (!JsonschemaRegexMatch(n->patternprops[j].re, key, klen))
			continue;
		*matched = true;
		if (!apply_child(V, n->patternprops[j].node, v))
		{
			pp_ok = false;
			if (!V->collect)
				break;
		}
	}
	return pp_ok;
}

/* In collecting mode: one error per required property missing from c */
static void
report_missing_required(VCtx *V, JsNode *n, JsonbContainer *c)
{
	int			j;

	for (j = 0; j < n->nrequired; j++)
	{
		JsonbValue	tmp;

		if (!JbvFindKey(c, n->required[j].name, n->required[j].len, &tmp))
			add_error(V, n, "required", "required property \"%.*s\" is missing",
					  Min(n->required[j].len, 100), n->required[j].name);
	}
}

/*
 * The general walk over the members of c: properties, required,
 * propertyNames, patternProperties, additionalProperties, with errors and
 * annotations (evp)
 */
static bool
check_members(VCtx *V, JsNode *n, JsonbContainer *c, Eval *evp)
{
	JbvIter		it;
	JsonbValue	k,
				v;
	int			i,
				ki = 0,
				found_required = 0;
	bool		ok = true;

	JbvIterInit(&it, c);
	for (i = 0; JbvIterNext(&it, &k, &v); i++)
	{
		const char *key = k.val.string.val;
		int			klen = k.val.string.len;
		bool		matched = false;
		JsNode	   *prop = NULL;

		if ((i & 255) == 255)
			CHECK_FOR_INTERRUPTS();

		/* properties and required: merge with the sorted list */
		while (ki < n->nkeys)
		{
			int			cmp = JbvKeyCmp(n->keys[ki].name, n->keys[ki].len,
										key, klen);

			if (cmp > 0)
				break;
			ki++;
			if (cmp == 0)
			{
				found_required += n->keys[ki - 1].required;
				prop = n->keys[ki - 1].node;
				break;
			}
		}

		if ((n->kw & JSK_PROPERTYNAMES) && !check_property_name(V, n, &k))
			OFAIL();

		push_key(V, key, klen);
		if (prop != NULL)
		{
			matched = true;
			if (!apply_child(V, prop, &v))
			{
				pop(V);
				OFAIL();
				continue;
			}
		}
		if (n->npatternprops > 0 &&
			!check_pattern_props(V, n, key, klen, &v, &matched))
		{
			pop(V);
			OFAIL();
			continue;
		}
		if (!matched && (n->kw & JSK_ADDITIONALPROPS))
		{
			matched = true;
			if (n->additionalprops->boolean == 0)
			{
				add_error(V, n, "additionalProperties",
						  "additional property \"%.*s\" is not allowed",
						  Min(klen, 100), key);
				pop(V);
				OFAIL();
				continue;
			}
			if (!apply_child(V, n->additionalprops, &v))
			{
				pop(V);
				OFAIL();
				continue;
			}
		}
		pop(V);
		if (matched && evp)
			evp->seen[i] = true;
	}

	if (found_required < n->nrequired)
	{
		if (V->collect)
			report_missing_required(V, n, c);
		OFAIL();
	}
	return ok;
}

/* dependentRequired (draft-07 "dependencies" of names) on the members of c */
static bool
check_dependent_required(VCtx *V, JsNode *n, JsonbContainer *c)
{
	bool		ok = true;
	int			i;

	for (i = 0; i < n->ndeprequired; i++)
	{
		JsProp	   *p = &n->deprequired[i];
		JsonbValue	tmp;
		int			j;

		if (!JbvFindKey(c, p->name, p->len, &tmp))
			continue;
		for (j = 0; j < p->nreq; j++)
			if (!JbvFindKey(c, p->req[j], p->reqlen[j], &tmp))
			{
				add_error(V, n, n->resource->draft == JS_DRAFT7 ? "dependencies" : "dependentRequired",
						  "property \"%.*s\" is required when \"%.*s\" is present",
						  Min(p->reqlen[j], 100), p->req[j], Min(p->len, 100), p->name);
				OFAIL();
			}
	}
	return ok;
}

/*
 * The object keywords of n (JSK_OBJECT_KW) on object inst: in boolean mode
 * without annotations, patternProperties or propertyNames the fast member
 * match (object_props_fast), else the general walk (check_members)
 */
static bool
check_object(VCtx *V, JsNode *n, JsonbValue *inst, Eval *evp)
{
	JsonbContainer *c = inst->val.binary.data;
	int			cnt = JsonContainerSize(c);
	bool		ok = true;

	if ((n->kw & JSK_MINPROPERTIES) && cnt < n->minproperties)
	{
		add_error(V, n, "minProperties", "object has fewer than %lld properties",
				  (long long) n->minproperties);
		OFAIL();
	}
	if ((n->kw & JSK_MAXPROPERTIES) && cnt > n->maxproperties)
	{
		add_error(V, n, "maxProperties", "object has more than %lld properties",
				  (long long) n->maxproperties);
		OFAIL();
	}

	if (!V->collect && evp == NULL &&
		!(n->kw & (JSK_PATTERNPROPS | JSK_PROPERTYNAMES)))
	{
		if ((n->nkeys > 0 || (n->kw & JSK_ADDITIONALPROPS)) &&
			!object_props_fast(V, n, c, cnt))
			return false;
	}
	else if (n->kw & (JSK_REQUIRED | JSK_PROPERTIES | JSK_PATTERNPROPS |
					  JSK_ADDITIONALPROPS | JSK_PROPERTYNAMES) || evp != NULL)
	{
		if (!check_members(V, n, c, evp))
			OFAIL();
	}

	if ((n->kw & JSK_DEPREQUIRED) && !check_dependent_required(V, n, c))
		OFAIL();
	return ok;
}

/* ---- the node ---- */

/* A keyword of the node failed: stop in boolean mode, go on when collecting */
#define KFAIL() do { ok = false; if (!V->collect) return false; } while (0)

/* Push resource res on the dynamic scope (for $dynamicRef) */
static inline void
push_scope(VCtx *V, JsResource *res)
{
	if (unlikely(V->nscope >= V->maxscope))
	{
		if (V->scope == V->scope_local)
		{
			V->scope = palloc(sizeof(JsResource *) * V->maxscope * 2);
			memcpy(V->scope, V->scope_local, sizeof(JsResource *) * V->maxscope);
		}
		else
			V->scope = repalloc(V->scope, sizeof(JsResource *) * V->maxscope * 2);
		V->maxscope *= 2;
	}
	V->scope[V->nscope++] = res;
}

/* The JS_T_* base type of inst, without the integer test */
static inline int
instance_type(JsonbValue *inst)
{
	switch (inst->type)
	{
		case jbvNull:
			return JS_T_NULL;
		case jbvBool:
			return JS_T_BOOLEAN;
		case jbvString:
			return JS_T_STRING;
		case jbvNumeric:
			return JS_T_NUMBER;
		default:
			return JsonContainerIsObject(inst->val.binary.data) ? JS_T_OBJECT : JS_T_ARRAY;
	}
}

/* type, const and enum: the keywords for an instance of any type */
static bool
check_any_type(VCtx *V, JsNode *n, JsonbValue *inst, int itype)
{
	uint64		kw = n->kw;
	bool		ok = true;

	if (kw & JSK_TYPE)
	{
		bool		type_ok = (n->types & itype) != 0;

		if (!type_ok && itype == JS_T_NUMBER && (n->types & JS_T_INTEGER))
			type_ok = JbvIsInteger(inst->val.numeric);
		if (!type_ok)
		{
			add_error(V, n, "type", "expected %s, got %s", types_text(n->types),
					  JbvTypeName(inst));
			KFAIL();
		}
	}
	if ((kw & JSK_CONST) && !JbvEqual(inst, &n->constval))
	{
		add_error(V, n, "const", "value must be %s", JbvValueToText(&n->constval, 100));
		KFAIL();
	}
	if (kw & JSK_ENUM)
	{
		int			i;

		for (i = 0; i < n->nenum; i++)
			if (JbvEqual(inst, &n->enumvals[i]))
				break;
		if (i == n->nenum)
		{
			add_error(V, n, "enum", "value %s is not one of the allowed values",
					  JbvValueToText(inst, 100));
			KFAIL();
		}
	}
	return ok;
}

/* anyOf: one summary error; with annotations (evp) every subschema is tried */
static bool
check_anyof(VCtx *V, JsNode *n, JsonbValue *inst, Eval *evp, Eval **scratch)
{
	bool		saved = V->collect;
	int			matched = 0;
	int			i;

	V->collect = false;
	for (i = 0; i < n->nanyof; i++)
		if (apply_inplace(V, n->anyof[i], inst, evp, scratch))
		{
			matched++;
			if (evp == NULL)
				break;
		}
	V->collect = saved;
	if (matched == 0)
	{
		add_error(V, n, "anyOf", "value does not match any of the %d subschemas of anyOf",
				  n->nanyof);
		return false;
	}
	return true;
}

/* oneOf: exactly one subschema matches; its annotations are kept (evp) */
static bool
check_oneof(VCtx *V, JsNode *n, JsonbValue *inst, Eval *evp, Eval **scratch)
{
	bool		saved = V->collect;
	int			matched = 0;
	int			first = -1,
				second = -1;
	Eval	   *keep = NULL;
	int			i;

	V->collect = false;
	for (i = 0; i < n->noneof; i++)
	{
		Eval	   *sub = NULL;

		if (evp)
			sub = eval_new(inst);
		if (apply_inplace(V, n->oneof[i], inst, sub, scratch))
		{
			matched++;
			if (first < 0)
			{
				first = i;
				keep = sub;
			}
			else
			{
				second = i;
				break;
			}
		}
	}
	V->collect = saved;
	if (matched != 1)
	{
		if (matched == 0)
			add_error(V, n, "oneOf", "value does not match any of the %d subschemas of oneOf",
					  n->noneof);
		else
			add_error(V, n, "oneOf", "value matches subschemas %d and %d of oneOf, expected exactly one",
					  first, second);
		return false;
	}
	else if (evp && keep)
		eval_merge(evp, keep);
	return true;
}

/* not: the subschema must fail; one summary error */
static bool
check_not(VCtx *V, JsNode *n, JsonbValue *inst, Eval **scratch)
{
	bool		saved = V->collect;
	bool		r;

	V->collect = false;
	r = apply_inplace(V, n->not, inst, NULL, scratch);
	V->collect = saved;
	if (r)
	{
		add_error(V, n, "not", "value must not be valid against the \"not\" subschema");
		return false;
	}
	return true;
}

/* if / then / else: "if" decides silently which of the other two applies */
static bool
check_conditional(VCtx *V, JsNode *n, JsonbValue *inst, Eval *evp, Eval **scratch)
{
	bool		saved = V->collect;
	bool		r;

	V->collect = false;
	r = apply_inplace(V, n->if_, inst, evp, scratch);
	V->collect = saved;
	if (r && (n->kw & JSK_THEN))
		return apply_inplace(V, n->then_, inst, evp, scratch);
	else if (!r && (n->kw & JSK_ELSE))
		return apply_inplace(V, n->else_, inst, evp, scratch);
	return true;
}

/*
 * The applicators to the instance itself (JSK_INPLACE_KW), in this order:
 * $ref, $dynamicRef, allOf, anyOf, oneOf, not, if, dependentSchemas.
 * Inlined into validate(): a separate frame would lengthen every $ref step.
 */
static pg_attribute_always_inline bool
apply_inplace_keywords(VCtx *V, JsNode *n, JsonbValue *inst, int itype, Eval *evp)
{
	uint64		kw = n->kw;
	Eval	   *scratch = NULL;
	bool		ok = true;
	int			i;

	if ((kw & JSK_REF) && !apply_inplace(V, n->ref_node, inst, evp, &scratch))
		KFAIL();
	if ((kw & JSK_DYNREF) &&
		!apply_inplace(V, dynamic_target(V, n), inst, evp, &scratch))
		KFAIL();
	if (kw & JSK_ALLOF)
	{
		for (i = 0; i < n->nallof; i++)
			if (!apply_inplace(V, n->allof[i], inst, evp, &scratch))
				KFAIL();
	}
	if ((kw & JSK_ANYOF) && !check_anyof(V, n, inst, evp, &scratch))
		KFAIL();
	if ((kw & JSK_ONEOF) && !check_oneof(V, n, inst, evp, &scratch))
		KFAIL();
	if ((kw & JSK_NOT) && !check_not(V, n, inst, &scratch))
		KFAIL();
	if ((kw & JSK_IF) && !check_conditional(V, n, inst, evp, &scratch))
		KFAIL();
	if ((kw & JSK_DEPSCHEMAS) && itype == JS_T_OBJECT)
	{
		JsonbContainer *c = inst->val.binary.data;

		for (i = 0; i < n->ndepschemas; i++)
		{
			JsonbValue	tmp;

			if (JbvFindKey(c, n->depschemas[i].name, n->depschemas[i].len, &tmp) &&
				!apply_inplace(V, n->depschemas[i].node, inst, evp, &scratch))
				KFAIL();
		}
	}
	return ok;
}

/* unevaluatedProperties: the members of object inst not marked in evp */
static bool
check_unevaluated_props(VCtx *V, JsNode *n, JsonbValue *inst, Eval *evp)
{
	JbvIter		it;
	JsonbValue	k = {0},
				v;
	int			i;
	bool		ok = true;

	JbvIterInit(&it, inst->val.binary.data);
	for (i = 0; JbvIterNext(&it, &k, &v); i++)
	{
		if (evp->seen[i])
			continue;
		push_key(V, k.val.string.val, k.val.string.len);
		if (n->unevalprops->boolean == 0)
		{
			add_error(V, n, "unevaluatedProperties",
					  "unevaluated property \"%.*s\" is not allowed",
					  Min(k.val.string.len, 100), k.val.string.val);
			pop(V);
			KFAIL();
			continue;
		}
		if (!apply_child(V, n->unevalprops, &v))
		{
			pop(V);
			KFAIL();
			continue;
		}
		pop(V);
		evp->seen[i] = true;
	}
	return ok;
}

/* unevaluatedItems: the items of array inst not marked in evp */
static bool
check_unevaluated_items(VCtx *V, JsNode *n, JsonbValue *inst, Eval *evp)
{
	JbvIter		it;
	JsonbValue	e,
				dummy;
	int			i;
	bool		ok = true;

	JbvIterInit(&it, inst->val.binary.data);
	for (i = 0; JbvIterNext(&it, &dummy, &e); i++)
	{
		if (evp->seen[i])
			continue;
		push_index(V, i);
		if (n->unevalitems->boolean == 0)
		{
			add_error(V, n, "unevaluatedItems", "unevaluated item %d is not allowed", i);
			pop(V);
			KFAIL();
			continue;
		}
		if (!apply_child(V, n->unevalitems, &e))
		{
			pop(V);
			KFAIL();
			continue;
		}
		pop(V);
		evp->seen[i] = true;
	}
	return ok;
}

/*
 * Validate inst against node n: the keyword families in a fixed order (any
 * type, the instance's own type, in-place applicators, unevaluated*).  ev,
 * if not NULL, receives the annotations of a successful validation.
 */
static bool
validate(VCtx *V, JsNode *n, JsonbValue *inst, Eval *ev)
{
	bool		ok = true;
	bool		pushed = false;
	Eval	   *evp = ev;
	uint64		kw;
	int			itype;

#define FAIL() do { ok = false; if (!V->collect) goto done; } while (0)

	/*
	 * Every step of the walk: the work limit stops exponential schemas (a
	 * $ref graph fanning out through anyOf and the like), the interrupt
	 * check lets a cancel or terminate through meanwhile.
	 */
	if (unlikely(++V->work > V->work_limit))
		JsonschemaWorkLimitExceeded("validation", n->location);
	CHECK_FOR_INTERRUPTS();

	if (n->boolean >= 0)
	{
		if (n->boolean == 0)
		{
			add_error(V, n, NULL, "no value is allowed here (false schema)");
			return false;
		}
		return true;
	}

	kw = n->kw;

	if (V->nscope == 0 || V->scope[V->nscope - 1] != n->resource)
	{
		push_scope(V, n->resource);
		pushed = true;
	}

	itype = instance_type(inst);
	if (itype & (JS_T_OBJECT | JS_T_ARRAY))
	{
		/* recursion through the instance; apply_inplace checks the rest */
		check_stack_depth();
		if (n->has_unevaluated)
			evp = eval_new(inst);
	}

	if ((kw & (JSK_TYPE | JSK_CONST | JSK_ENUM)) &&
		!check_any_type(V, n, inst, itype))
		FAIL();

	switch (itype)
	{
		case JS_T_NUMBER:
			if ((kw & JSK_NUMERIC_KW) && !check_number(V, n, inst))
				FAIL();
			break;
		case JS_T_STRING:
			if ((kw & JSK_STRING_KW) && !check_string(V, n, inst))
				FAIL();
			break;
		case JS_T_ARRAY:
			if ((kw & JSK_ARRAY_KW) && !check_array(V, n, inst, evp))
				FAIL();
			break;
		case JS_T_OBJECT:
			if ((kw & JSK_OBJECT_KW) && !check_object(V, n, inst, evp))
				FAIL();
			break;
	}

	if ((kw & JSK_INPLACE_KW) && !apply_inplace_keywords(V, n, inst, itype, evp))
		FAIL();

	/* unevaluated*: after every other keyword of this schema */
	if ((kw & JSK_UNEVALPROPS) && itype == JS_T_OBJECT &&
		!check_unevaluated_props(V, n, inst, evp))
		FAIL();
	if ((kw & JSK_UNEVALITEMS) && itype == JS_T_ARRAY &&
		!check_unevaluated_items(V, n, inst, evp))
		FAIL();

	if (ok && evp != ev && ev != NULL)
		eval_merge(ev, evp);

done:
	if (pushed)
		V->nscope--;
	return ok;
}

/*
 * Validate instance against s.  With errors != NULL, collect every error
 * (JsError, palloc'd in the current context) into *errors.
 */
static bool
validate_value(JsSchema *s, JsonbValue *instance, JsFormatMode formats,
						List **errors)
{
	VCtx		V;
	bool		ok;

	memset(&V, 0, offsetof(VCtx, path_local));
	V.s = s;
	V.assert_formats = formats != JS_FORMATS_ANNOTATE;
	V.formats = formats;
	V.collect = errors != NULL;
	V.maxdepth = lengthof(V.path_local);
	V.path = V.path_local;
	V.maxscope = lengthof(V.scope_local);
	V.scope = V.scope_local;
	V.inplace_limit = s->nnodes * 2 + 32;
	V.work_limit = JsonschemaWorkLimit;

	/* the dynamic scope starts at the root resource (as validate() would) */
	if (s->root->resource != NULL)
		V.scope[V.nscope++] = s->root->resource;
	ok = apply_child(&V, s->root, instance);
	if (errors)
		*errors = V.errors;
	return ok;
}

bool
JsonschemaValidate(JsSchema *s, Jsonb *instance, JsFormatMode formats,
				   List **errors)
{
	JsonbValue	v;

	JbvRootValue(instance, &v);
	return validate_value(s, &v, formats, errors);
}

/* The output array: [{"path", "schema_path", "keyword", "message"}, ...] */
Jsonb *
JsonschemaErrorsToJsonb(List *errors, bool with_path)
{
	JsonbParseState *st = NULL;
	JsonbValue *res;
	ListCell   *lc;

	pushJsonbValue(&st, WJB_BEGIN_ARRAY, NULL);
	foreach(lc, errors)
	{
		JsError    *e = lfirst(lc);
		JsonbValue	k,
					v;

#define PUSH_STR(name, value) \
		do { \
			k.type = jbvString; k.val.string.val = (name); k.val.string.len = strlen(name); \
			pushJsonbValue(&st, WJB_KEY, &k); \
			if ((value) == NULL) v.type = jbvNull; \
			else { v.type = jbvString; v.val.string.val = (char *) (value); \
				   v.val.string.len = strlen(value); } \
			pushJsonbValue(&st, WJB_VALUE, &v); \
		} while (0)

		pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
		if (with_path)
			PUSH_STR("path", e->path);
		PUSH_STR("schema_path", e->schema_path);
		if (with_path)
			PUSH_STR("keyword", e->keyword);
		PUSH_STR("message", e->message);
		pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	}
	res = pushJsonbValue(&st, WJB_END_ARRAY, NULL);
	return JsonbValueToJsonb(res);
}
