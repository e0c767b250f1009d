/*-------------------------------------------------------------------------
 *
 * schema_diff.c
 *		Compatibility rules of the schema registry: a structural diff of two
 *		JSON Schemas (as pydantic v2's model_json_schema() writes them) that
 *		reports every change with its verdict in both directions.
 *
 *	_celerysalt_schema_diff(old jsonb, new jsonb)
 *		RETURNS TABLE (path, schema_path, change, old_value, new_value,
 *					   backward, forward, description)
 *
 * "backward" is true when consumers holding the new schema still accept
 * events written under the old one; "forward" when consumers holding the
 * old schema accept events written under the new one.  The rules follow
 * what pydantic accepts rather than what an arbitrary JSON document could
 * contain: a model without additionalProperties ignores unknown keys, and a
 * pydantic producer never sends a key its model does not declare, so adding
 * an optional property to an open model is compatible both ways (Confluent
 * rejects it).  docs/registry.md has the rule table; SQL callers combine the
 * two verdicts according to the topic's compatibility mode.
 *
 * Local references ("#/$defs/Name", "#/definitions/Name", any JSON Pointer)
 * are followed in each document; every pair of subschemas is compared once,
 * which also stops recursive models.  Keywords the rules do not understand
 * (allOf with several members, not, if/then/else, patternProperties, ...)
 * are compared for equality and any difference is reported as
 * incompatible both ways.
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/numeric.h"
#include "jbv.h"

PG_FUNCTION_INFO_V1(_celerysalt_schema_diff);

/* Instance types, as bits; "number" covers both numeric bits. */
#define T_NULL		0x01
#define T_BOOL		0x02
#define T_OBJECT	0x04
#define T_ARRAY		0x08
#define T_INTEGER	0x10
#define T_FRACTION	0x20		/* numbers that are not integers */
#define T_STRING	0x40
#define T_NUMBER	(T_INTEGER | T_FRACTION)
#define T_ALL		0x7f

#define DIFF_MAX_DEPTH	64

/* A subschema and where it sits in its document. */
typedef struct SchemaNode
{
	JsonbValue	v;				/* jbvBinary object, or jbvBool */
	const char *ptr;			/* JSON Pointer in its document */
} SchemaNode;

typedef struct Diff
{
	Jsonb	   *doc[2];			/* 0 = old, 1 = new */
	ReturnSetInfo *rsinfo;
	List	   *seen;			/* "oldptr\001newptr" of compared pairs */
	int			depth;
} Diff;

enum
{
	OLD = 0,
	NEW = 1
};

/* Keywords the rules below understand, or that never affect validation. */
static const char *const handled_keywords[] = {
	"type", "enum", "const", "format", "pattern", "multipleOf", "uniqueItems",
	"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
	"minLength", "maxLength", "minItems", "maxItems",
	"minProperties", "maxProperties",
	"default", "properties", "required", "additionalProperties",
	"unevaluatedProperties", "items", "prefixItems", "anyOf", "oneOf", "$ref",
	"title", "description", "examples", "$comment", "deprecated", "readOnly",
	"writeOnly", "$schema", "$id", "$defs", "definitions", "discriminator",
	"contentEncoding", "contentMediaType",
	NULL
};

/* ---------------------------------------------------------------- jsonb */

static bool
is_object(const JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
}

/* The member key of object v into *out; false when v is no object or lacks it. */
static bool
get_key(const JsonbValue *v, const char *key, JsonbValue *out)
{
	return JbvObjectMember(v, key, out);
}

static int
array_size(const JsonbValue *v)
{
	return JbvIsArray(v) ? (int) JsonContainerSize(v->val.binary.data) : 0;
}

static JsonbValue *
array_elem(const JsonbValue *v, int i)
{
	return getIthJsonbValueFromContainer(v->val.binary.data, i);
}

/* The keys of object v, in storage order, palloc'd. */
static List *
object_keys(const JsonbValue *v)
{
	List	   *keys = NIL;
	JsonbIterator *it;
	JsonbValue	tok;
	JsonbIteratorToken r;

	if (!is_object(v))
		return NIL;
	it = JsonbIteratorInit(v->val.binary.data);
	while ((r = JsonbIteratorNext(&it, &tok, true)) != WJB_DONE)
		if (r == WJB_KEY)
			keys = lappend(keys, pnstrdup(tok.val.string.val, tok.val.string.len));
	return keys;
}

/* The strings of array v (other elements skipped), palloc'd. */
static List *
string_elems(const JsonbValue *v)
{
	List	   *out = NIL;

	for (int i = 0; i < array_size(v); i++)
	{
		JsonbValue *e = array_elem(v, i);

		if (e->type == jbvString)
			out = lappend(out, pnstrdup(e->val.string.val, e->val.string.len));
	}
	return out;
}

static bool
string_member(List *list, const char *s)
{
	ListCell   *lc;

	foreach(lc, list)
		if (strcmp((const char *) lfirst(lc), s) == 0)
			return true;
	return false;
}

static bool
numeric_less(const JsonbValue *a, const JsonbValue *b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp,
											 NumericGetDatum(a->val.numeric),
											 NumericGetDatum(b->val.numeric))) < 0;
}

static bool
value_member(List *list, const JsonbValue *v)
{
	ListCell   *lc;

	foreach(lc, list)
		if (JbvEqual((JsonbValue *) lfirst(lc), v))
			return true;
	return false;
}

/*
 * A short JSON rendering of v for descriptions: longer than 80 bytes, it is
 * cut after at most 76 bytes at a character boundary (never inside a
 * multibyte character: the text ends up in error details) and gets " ...".
 */
static char *
value_text(const JsonbValue *v)
{
	Jsonb	   *jb = JsonbValueToJsonb((JsonbValue *) v);
	char	   *s = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	int			len = strlen(s);

	if (len > 80)
		strcpy(s + pg_mbcliplen(s, len, 76), " ...");
	return s;
}

static char *
append_pointer(const char *base, const char *token)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, base);
	JbvAppendPointerToken(&buf, token, strlen(token));
	return buf.data;
}

/*
 * The value at JSON Pointer frag (already without '#') in document doc, into
 * *out.  Percent-encoding and ~0/~1 escapes are decoded.
 */
static bool
resolve_pointer(Jsonb *doc, const char *frag, JsonbValue *out)
{
	JsonbValue	cur;
	const char *p = frag;

	cur.type = jbvBinary;
	cur.val.binary.data = &doc->root;
	cur.val.binary.len = VARSIZE(doc) - VARHDRSZ;
	if (*p != '\0' && *p != '/')
		return false;
	while (*p == '/')
	{
		StringInfoData tok;
		JsonbValue	next;

		initStringInfo(&tok);
		for (p++; *p && *p != '/'; p++)
		{
			if (*p == '~' && p[1] == '0')
				appendStringInfoChar(&tok, '~'), p++;
			else if (*p == '~' && p[1] == '1')
				appendStringInfoChar(&tok, '/'), p++;
			else if (*p == '%' && isxdigit((unsigned char) p[1]) &&
					 isxdigit((unsigned char) p[2]))
			{
				char		hex[3] = {p[1], p[2], 0};

				appendStringInfoChar(&tok, (char) strtol(hex, NULL, 16));
				p += 2;
			}
			else
				appendStringInfoChar(&tok, *p);
		}
		if (is_object(&cur))
		{
			if (!JbvFindKey(cur.val.binary.data, tok.data, tok.len, &next))
				return false;
		}
		else if (JbvIsArray(&cur))
		{
			char	   *end;
			long		i = strtol(tok.data, &end, 10);
			JsonbValue *e;

			if (tok.len == 0 || *end != '\0' || i < 0 || i >= array_size(&cur))
				return false;
			e = array_elem(&cur, (int) i);
			next = *e;
		}
		else
			return false;
		cur = next;
	}
	*out = cur;
	return true;
}

/* -------------------------------------------------------------- schemas */

/*
 * Follow local $ref and single-member allOf wrappers (older pydantic
 * versions wrap a described $ref in allOf) until n is the subschema that
 * carries the structure.  An unresolvable reference leaves n as it is.
 */
static void
resolve(Diff *d, int side, SchemaNode *n)
{
	for (int hops = 0; hops < 32; hops++)
	{
		JsonbValue	ref,
					all,
					tmp;

		if (get_key(&n->v, "$ref", &ref) && ref.type == jbvString &&
			ref.val.string.len >= 1 && ref.val.string.val[0] == '#')
		{
			char	   *frag = pnstrdup(ref.val.string.val + 1, ref.val.string.len - 1);

			if (!resolve_pointer(d->doc[side], frag, &tmp) ||
				(!is_object(&tmp) && tmp.type != jbvBool))
				return;
			n->v = tmp;
			n->ptr = frag;
			continue;
		}
		if (get_key(&n->v, "allOf", &all) && array_size(&all) == 1 &&
			!get_key(&n->v, "properties", &tmp) && !get_key(&n->v, "type", &tmp))
		{
			n->v = *array_elem(&all, 0);
			n->ptr = psprintf("%s/allOf/0", n->ptr);
			continue;
		}
		return;
	}
}

static int
type_bit(const char *name, int len)
{
#define IS(s) (len == (int) strlen(s) && memcmp(name, s, len) == 0)
	if (IS("null"))
		return T_NULL;
	if (IS("boolean"))
		return T_BOOL;
	if (IS("object"))
		return T_OBJECT;
	if (IS("array"))
		return T_ARRAY;
	if (IS("integer"))
		return T_INTEGER;
	if (IS("number"))
		return T_NUMBER;
	if (IS("string"))
		return T_STRING;
#undef IS
	return 0;
}

static int
value_type(const JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return T_NULL;
		case jbvBool:
			return T_BOOL;
		case jbvString:
			return T_STRING;
		case jbvNumeric:
			{
				char	   *s = DatumGetCString(DirectFunctionCall1(numeric_out,
																	NumericGetDatum(v->val.numeric)));

				return strpbrk(s, ".eE") ? T_FRACTION : T_INTEGER;
			}
		case jbvBinary:
			return is_object(v) ? T_OBJECT : T_ARRAY;
		default:
			return T_ALL;
	}
}

/* The instance types a (resolved) subschema can accept. */
static int
types_of(Diff *d, int side, const SchemaNode *n, int depth)
{
	JsonbValue	t,
				u;

	if (n->v.type == jbvBool)
		return n->v.val.boolean ? T_ALL : 0;
	if (!is_object(&n->v) || depth > 8)
		return T_ALL;
	if (get_key(&n->v, "type", &t))
	{
		int			bits = 0;

		if (t.type == jbvString)
			return type_bit(t.val.string.val, t.val.string.len);
		for (int i = 0; i < array_size(&t); i++)
		{
			JsonbValue *e = array_elem(&t, i);

			if (e->type == jbvString)
				bits |= type_bit(e->val.string.val, e->val.string.len);
		}
		return bits;
	}
	if ((get_key(&n->v, "anyOf", &u) || get_key(&n->v, "oneOf", &u)) && JbvIsArray(&u))
	{
		int			bits = 0;

		for (int i = 0; i < array_size(&u); i++)
		{
			SchemaNode		b = {*array_elem(&u, i), n->ptr};

			resolve(d, side, &b);
			bits |= types_of(d, side, &b, depth + 1);
		}
		return bits;
	}
	if (get_key(&n->v, "const", &t))
		return value_type(&t);
	if (get_key(&n->v, "enum", &t) && JbvIsArray(&t))
	{
		int			bits = 0;

		for (int i = 0; i < array_size(&t); i++)
			bits |= value_type(array_elem(&t, i));
		return bits;
	}
	return T_ALL;
}

static char *
types_text(int bits)
{
	StringInfoData buf;

	if (bits == T_ALL)
		return pstrdup("any");
	if (bits == 0)
		return pstrdup("nothing");
	initStringInfo(&buf);
#define ADD(bit, s) do { if (bits & (bit)) appendStringInfo(&buf, "%s%s", buf.len ? "|" : "", s); } while (0)
	ADD(T_OBJECT, "object");
	ADD(T_ARRAY, "array");
	ADD(T_STRING, "string");
	if ((bits & T_NUMBER) == T_NUMBER)
		ADD(T_NUMBER, "number");
	else
		ADD(T_INTEGER, "integer");
	ADD(T_BOOL, "boolean");
	ADD(T_NULL, "null");
#undef ADD
	return buf.data;
}

/* The alternatives of a resolved subschema: its anyOf/oneOf members, or itself. */
static List *
branches_of(Diff *d, int side, SchemaNode *n)
{
	JsonbValue	u;
	List	   *out = NIL;

	if ((get_key(&n->v, "anyOf", &u) || get_key(&n->v, "oneOf", &u)) &&
		array_size(&u) > 0)
	{
		const char *kw = get_key(&n->v, "anyOf", &u) ? "anyOf" : "oneOf";

		for (int i = 0; i < array_size(&u); i++)
		{
			SchemaNode	   *b = palloc(sizeof(SchemaNode));

			b->v = *array_elem(&u, i);
			b->ptr = psprintf("%s/%s/%d", n->ptr, kw, i);
			resolve(d, side, b);
			out = lappend(out, b);
		}
		return out;
	}
	return list_make1(n);
}

/* ---------------------------------------------------------------- output */

static void
emit(Diff *d, const char *path, const SchemaNode *o, const SchemaNode *n,
	 const char *change, bool backward, bool forward,
	 const JsonbValue *oldval, const JsonbValue *newval, const char *description)
{
	Datum		values[8];
	bool		nulls[8] = {false};

	values[0] = CStringGetTextDatum(path);
	values[1] = CStringGetTextDatum(n ? n->ptr : o->ptr);
	values[2] = CStringGetTextDatum(change);
	if (oldval)
		values[3] = JsonbPGetDatum(JsonbValueToJsonb((JsonbValue *) oldval));
	else
		nulls[3] = true;
	if (newval)
		values[4] = JsonbPGetDatum(JsonbValueToJsonb((JsonbValue *) newval));
	else
		nulls[4] = true;
	values[5] = BoolGetDatum(backward);
	values[6] = BoolGetDatum(forward);
	values[7] = CStringGetTextDatum(description);
	tuplestore_putvalues(d->rsinfo->setResult, d->rsinfo->setDesc, values, nulls);
}

/* ----------------------------------------------------------------- rules */

static void compare(Diff *d, const SchemaNode *o, const SchemaNode *n, const char *path);

static bool
is_closed(const SchemaNode *n)
{
	JsonbValue	ap;

	return (get_key(&n->v, "additionalProperties", &ap) && ap.type == jbvBool &&
			!ap.val.boolean) ||
		(get_key(&n->v, "unevaluatedProperties", &ap) && ap.type == jbvBool &&
		 !ap.val.boolean);
}

static void
compare_default(Diff *d, const SchemaNode *o, const SchemaNode *n, const char *path)
{
	JsonbValue	od,
				nd;
	bool		ho = get_key(&o->v, "default", &od);
	bool		hn = get_key(&n->v, "default", &nd);

	if (ho && hn && !JbvEqual(&od, &nd))
		emit(d, path, o, n, "default_changed", true, true, &od, &nd,
			 psprintf("default changed from %s to %s", value_text(&od), value_text(&nd)));
	else if (!ho && hn)
		emit(d, path, o, n, "default_added", true, true, NULL, &nd,
			 psprintf("default %s added", value_text(&nd)));
	else if (ho && !hn)
		emit(d, path, o, n, "default_removed", true, true, &od, NULL,
			 psprintf("default %s removed", value_text(&od)));
}

/* The allowed values of a subschema (enum, or const as one value). */
static bool
allowed_values(const SchemaNode *n, JsonbValue *raw, List **values)
{
	*values = NIL;
	if (get_key(&n->v, "enum", raw) && JbvIsArray(raw))
	{
		for (int i = 0; i < array_size(raw); i++)
			*values = lappend(*values, array_elem(raw, i));
		return true;
	}
	if (get_key(&n->v, "const", raw))
	{
		JsonbValue *c = palloc(sizeof(JsonbValue));

		*c = *raw;
		*values = list_make1(c);
		return true;
	}
	return false;
}

static void
compare_enum(Diff *d, const SchemaNode *o, const SchemaNode *n, const char *path)
{
	JsonbValue	oraw,
				nraw;
	List	   *ov,
			   *nv;
	bool		ho = allowed_values(o, &oraw, &ov);
	bool		hn = allowed_values(n, &nraw, &nv);
	bool		lost = false,
				gained = false;
	ListCell   *lc;

	if (!ho && !hn)
		return;
	if (!ho)
	{
		emit(d, path, o, n, "enum_added", false, true, NULL, &nraw,
			 psprintf("values restricted to %s", value_text(&nraw)));
		return;
	}
	if (!hn)
	{
		emit(d, path, o, n, "enum_removed", true, false, &oraw, NULL,
			 psprintf("restriction to %s removed", value_text(&oraw)));
		return;
	}
	foreach(lc, ov)
		if (!value_member(nv, lfirst(lc)))
			lost = true;
	foreach(lc, nv)
		if (!value_member(ov, lfirst(lc)))
			gained = true;
	if (lost && gained)
		emit(d, path, o, n, "enum_changed", false, false, &oraw, &nraw,
			 psprintf("allowed values changed from %s to %s", value_text(&oraw), value_text(&nraw)));
	else if (lost)
		emit(d, path, o, n, "enum_narrowed", false, true, &oraw, &nraw,
			 psprintf("allowed values narrowed from %s to %s", value_text(&oraw), value_text(&nraw)));
	else if (gained)
		emit(d, path, o, n, "enum_extended", true, false, &oraw, &nraw,
			 psprintf("allowed values extended from %s to %s", value_text(&oraw), value_text(&nraw)));
}

/*
 * A keyword whose presence restricts the instance and whose absence does
 * not (format, pattern): added = tightened, removed = relaxed, any other
 * difference = changed.
 */
static void
compare_restriction(Diff *d, const SchemaNode *o, const SchemaNode *n, const char *path,
					const char *kw, const char *added, const char *removed,
					const char *changed)
{
	JsonbValue	ov,
				nv;
	bool		ho = get_key(&o->v, kw, &ov);
	bool		hn = get_key(&n->v, kw, &nv);

	if (ho && hn && !JbvEqual(&ov, &nv))
		emit(d, path, o, n, changed, false, false, &ov, &nv,
			 psprintf("%s changed from %s to %s", kw, value_text(&ov), value_text(&nv)));
	else if (!ho && hn)
		emit(d, path, o, n, added, false, true, NULL, &nv,
			 psprintf("%s %s added", kw, value_text(&nv)));
	else if (ho && !hn)
		emit(d, path, o, n, removed, true, false, &ov, NULL,
			 psprintf("%s %s removed", kw, value_text(&ov)));
}

/* True if a and b are positive numbers and b is a multiple of a. */
static bool
divides(const JsonbValue *a, const JsonbValue *b)
{
	Datum		zero = NumericGetDatum(int64_to_numeric(0));
	Datum		rem;

	if (a->type != jbvNumeric || b->type != jbvNumeric ||
		numeric_is_nan(a->val.numeric) || numeric_is_nan(b->val.numeric) ||
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a->val.numeric), zero)) <= 0)
		return false;
	rem = DirectFunctionCall2(numeric_mod, NumericGetDatum(b->val.numeric),
							  NumericGetDatum(a->val.numeric));
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, rem, zero)) == 0;
}

static void
compare_bounds(Diff *d, const SchemaNode *o, const SchemaNode *n, const char *path)
{
	static const struct
	{
		const char *kw;
		bool		lower;
	}			bounds[] = {
		{"minimum", true}, {"exclusiveMinimum", true}, {"minLength", true},
		{"minItems", true}, {"minProperties", true},
		{"maximum", false}, {"exclusiveMaximum", false}, {"maxLength", false},
		{"maxItems", false}, {"maxProperties", false},
	};
	JsonbValue	ov,
				nv;

	for (int i = 0; i < (int) lengthof(bounds); i++)
	{
		const char *kw = bounds[i].kw;
		bool		ho = get_key(&o->v, kw, &ov);
		bool		hn = get_key(&n->v, kw, &nv);

		if (!ho && !hn)
			continue;
		if (!ho)
			emit(d, path, o, n, "constraint_tightened", false, true, NULL, &nv,
				 psprintf("%s %s added", kw, value_text(&nv)));
		else if (!hn)
			emit(d, path, o, n, "constraint_relaxed", true, false, &ov, NULL,
				 psprintf("%s %s removed", kw, value_text(&ov)));
		else if (ov.type != jbvNumeric || nv.type != jbvNumeric)
		{
			if (!JbvEqual(&ov, &nv))
				emit(d, path, o, n, "constraint_changed", false, false, &ov, &nv,
					 psprintf("%s changed from %s to %s", kw, value_text(&ov), value_text(&nv)));
		}
		else if (numeric_less(&ov, &nv) || numeric_less(&nv, &ov))
		{
			bool		raised = numeric_less(&ov, &nv);
			bool		tightened = raised == bounds[i].lower;

			emit(d, path, o, n, tightened ? "constraint_tightened" : "constraint_relaxed",
				 !tightened, tightened, &ov, &nv,
				 psprintf("%s %s from %s to %s", kw, raised ? "raised" : "lowered",
						  value_text(&ov), value_text(&nv)));
		}
	}

	/* multipleOf: a multiple of the old divisor relaxes, a divisor of it tightens */
	{
		bool		ho = get_key(&o->v, "multipleOf", &ov);
		bool		hn = get_key(&n->v, "multipleOf", &nv);

		if (ho && hn && !JbvEqual(&ov, &nv))
		{
			const char *change = "constraint_changed";

			if (divides(&nv, &ov))
				change = "constraint_relaxed";
			else if (divides(&ov, &nv))
				change = "constraint_tightened";
			emit(d, path, o, n, change,
				 strcmp(change, "constraint_relaxed") == 0,
				 strcmp(change, "constraint_tightened") == 0, &ov, &nv,
				 psprintf("multipleOf changed from %s to %s", value_text(&ov), value_text(&nv)));
		}
		else if (!ho && hn)
			emit(d, path, o, n, "constraint_tightened", false, true, NULL, &nv,
				 psprintf("multipleOf %s added", value_text(&nv)));
		else if (ho && !hn)
			emit(d, path, o, n, "constraint_relaxed", true, false, &ov, NULL,
				 psprintf("multipleOf %s removed", value_text(&ov)));
	}

	/* uniqueItems: only true restricts */
	{
		bool		ou = get_key(&o->v, "uniqueItems", &ov) && ov.type == jbvBool && ov.val.boolean;
		bool		nu = get_key(&n->v, "uniqueItems", &nv) && nv.type == jbvBool && nv.val.boolean;

		if (!ou && nu)
			emit(d, path, o, n, "constraint_tightened", false, true, NULL, &nv,
				 pstrdup("uniqueItems required"));
		else if (ou && !nu)
			emit(d, path, o, n, "constraint_relaxed", true, false, &ov, NULL,
				 pstrdup("uniqueItems no longer required"));
	}
}

static void
compare_object(Diff *d, const SchemaNode *o, const SchemaNode *n, const char *path)
{
	JsonbValue	op,
				np,
				oreq,
				nreq,
				oap,
				nap;
	bool		hop = get_key(&o->v, "properties", &op);
	bool		hnp = get_key(&n->v, "properties", &np);
	List	   *ro = get_key(&o->v, "required", &oreq) ? string_elems(&oreq) : NIL;
	List	   *rn = get_key(&n->v, "required", &nreq) ? string_elems(&nreq) : NIL;
	bool		oclosed = is_closed(o);
	bool		nclosed = is_closed(n);
	List	   *names = NIL;
	ListCell   *lc;
	bool		hoap,
				hnap;

	if (!hop && !hnp && ro == NIL && rn == NIL &&
		!get_key(&o->v, "additionalProperties", &oap) &&
		!get_key(&n->v, "additionalProperties", &nap) &&
		!get_key(&o->v, "unevaluatedProperties", &oap) &&
		!get_key(&n->v, "unevaluatedProperties", &nap))
		return;

	/* every property name either side mentions, old ones first */
	foreach(lc, list_concat(list_concat(hop ? object_keys(&op) : NIL, ro),
							list_concat(hnp ? object_keys(&np) : NIL, rn)))
		if (!string_member(names, lfirst(lc)))
			names = lappend(names, lfirst(lc));

	foreach(lc, names)
	{
		const char *name = lfirst(lc);
		JsonbValue	ov,
					nv;
		bool		in_o = hop && get_key(&op, name, &ov);
		bool		in_n = hnp && get_key(&np, name, &nv);
		bool		req_o = string_member(ro, name);
		bool		req_n = string_member(rn, name);
		char	   *ppath = append_pointer(path, name);
		SchemaNode		on = {{0}},
					nn = {{0}};

		on.ptr = append_pointer(append_pointer(o->ptr, "properties"), name);
		nn.ptr = append_pointer(append_pointer(n->ptr, "properties"), name);
		if (in_o)
			on.v = ov;
		else
			on.v.type = jbvBool, on.v.val.boolean = true;
		if (in_n)
			nn.v = nv;
		else
			nn.v.type = jbvBool, nn.v.val.boolean = true;

		if (!in_o && !req_o)
		{
			if (req_n)
				emit(d, ppath, NULL, &nn, "property_added_required", false, !oclosed,
					 NULL, in_n ? &nv : NULL,
					 psprintf("required property \"%s\" added", name));
			else
				emit(d, ppath, NULL, &nn, "property_added_optional", true, !oclosed,
					 NULL, in_n ? &nv : NULL,
					 psprintf("optional property \"%s\" added", name));
			continue;
		}
		if (!in_n && !req_n)
		{
			if (req_o)
				emit(d, ppath, &on, NULL, "property_removed_required", false, false,
					 in_o ? &ov : NULL, NULL,
					 psprintf("required property \"%s\" removed", name));
			else
				emit(d, ppath, &on, NULL, "property_removed_optional", !nclosed, true,
					 in_o ? &ov : NULL, NULL,
					 psprintf("optional property \"%s\" removed", name));
			continue;
		}
		if (req_o && !req_n)
			emit(d, ppath, &on, &nn, "property_made_optional", true, false, NULL, NULL,
				 psprintf("property \"%s\" is no longer required", name));
		else if (!req_o && req_n)
			emit(d, ppath, &on, &nn, "property_made_required", false, true, NULL, NULL,
				 psprintf("property \"%s\" is now required", name));
		compare(d, &on, &nn, ppath);
	}

	/* additionalProperties: false closes the model (pydantic extra='forbid') */
	if (oclosed && !nclosed)
		emit(d, path, o, n, "additional_properties_allowed", true, false, NULL, NULL,
			 pstrdup("unknown properties are no longer rejected"));
	else if (!oclosed && nclosed)
		emit(d, path, o, n, "additional_properties_forbidden", false, true, NULL, NULL,
			 pstrdup("unknown properties are now rejected"));
	hoap = get_key(&o->v, "additionalProperties", &oap) && oap.type != jbvBool;
	hnap = get_key(&n->v, "additionalProperties", &nap) && nap.type != jbvBool;
	if (hoap || hnap)
	{
		SchemaNode		a = {{0}},
					b = {{0}};

		a.ptr = append_pointer(o->ptr, "additionalProperties");
		b.ptr = append_pointer(n->ptr, "additionalProperties");
		if (hoap)
			a.v = oap;
		else
			a.v.type = jbvBool, a.v.val.boolean = !oclosed;
		if (hnap)
			b.v = nap;
		else
			b.v.type = jbvBool, b.v.val.boolean = !nclosed;
		if (!(oclosed || nclosed))
			compare(d, &a, &b, append_pointer(path, "*"));
	}
}

static void
compare_array(Diff *d, const SchemaNode *o, const SchemaNode *n, const char *path)
{
	JsonbValue	oi,
				ni,
				ot,
				nt;
	bool		hoi = get_key(&o->v, "items", &oi);
	bool		hni = get_key(&n->v, "items", &ni);
	bool		hot,
				hnt;

	/* draft-07 tuple form: items is an array */
	hot = get_key(&o->v, "prefixItems", &ot);
	hnt = get_key(&n->v, "prefixItems", &nt);
	if (hoi && JbvIsArray(&oi))
		ot = oi, hot = true, hoi = false;
	if (hni && JbvIsArray(&ni))
		nt = ni, hnt = true, hni = false;

	if (hot || hnt)
	{
		int			on = hot ? array_size(&ot) : 0;
		int			nn = hnt ? array_size(&nt) : 0;

		if (on != nn)
			emit(d, path, o, n, "tuple_length_changed", false, false,
				 hot ? &ot : NULL, hnt ? &nt : NULL,
				 psprintf("tuple length changed from %d to %d", on, nn));
		for (int i = 0; i < Min(on, nn); i++)
		{
			SchemaNode		a = {*array_elem(&ot, i), psprintf("%s/prefixItems/%d", o->ptr, i)};
			SchemaNode		b = {*array_elem(&nt, i), psprintf("%s/prefixItems/%d", n->ptr, i)};

			compare(d, &a, &b, psprintf("%s/%d", path, i));
		}
	}
	if (hoi || hni)
	{
		SchemaNode		a = {{0}},
					b = {{0}};

		a.ptr = append_pointer(o->ptr, "items");
		b.ptr = append_pointer(n->ptr, "items");
		if (hoi)
			a.v = oi;
		else
			a.v.type = jbvBool, a.v.val.boolean = true;
		if (hni)
			b.v = ni;
		else
			b.v.type = jbvBool, b.v.val.boolean = true;
		compare(d, &a, &b, append_pointer(path, "*"));
	}
}

static void
compare_other_keywords(Diff *d, const SchemaNode *o, const SchemaNode *n, const char *path)
{
	List	   *keys = list_concat(object_keys(&o->v), object_keys(&n->v));
	List	   *done = NIL;
	ListCell   *lc;

	foreach(lc, keys)
	{
		const char *kw = lfirst(lc);
		JsonbValue	ov,
					nv;
		bool		ho,
					hn;
		int			i;

		for (i = 0; handled_keywords[i]; i++)
			if (strcmp(handled_keywords[i], kw) == 0)
				break;
		if (handled_keywords[i] || string_member(done, kw))
			continue;
		done = lappend(done, (char *) kw);
		ho = get_key(&o->v, kw, &ov);
		hn = get_key(&n->v, kw, &nv);
		if (ho && hn && JbvEqual(&ov, &nv))
			continue;
		emit(d, path, o, n, "unsupported_keyword_changed", false, false,
			 ho ? &ov : NULL, hn ? &nv : NULL,
			 psprintf("keyword \"%s\" %s; its effect is not analysed", kw,
					  !ho ? "added" : !hn ? "removed" : "changed"));
	}
}

/* Compare two resolved subschemas that are not unions. */
static void
compare_single(Diff *d, const SchemaNode *o, const SchemaNode *n, const char *path)
{
	char	   *key = psprintf("%s\001%s", o->ptr, n->ptr);

	if (string_member(d->seen, key))
		return;
	d->seen = lappend(d->seen, key);

	compare_enum(d, o, n, path);
	compare_restriction(d, o, n, path, "format",
						"format_added", "format_removed", "format_changed");
	compare_restriction(d, o, n, path, "pattern",
						"constraint_tightened", "constraint_relaxed", "constraint_changed");
	compare_bounds(d, o, n, path);
	compare_object(d, o, n, path);
	compare_array(d, o, n, path);
	compare_other_keywords(d, o, n, path);
}

/* Annotation-only keywords: an object made of these accepts everything. */
static bool
is_unrestricted(const SchemaNode *n)
{
	static const char *const annotations[] = {
		"title", "description", "default", "examples", "$comment", "deprecated",
		"readOnly", "writeOnly", NULL
	};
	ListCell   *lc;

	if (n->v.type == jbvBool)
		return n->v.val.boolean;
	if (!is_object(&n->v))
		return false;
	foreach(lc, object_keys(&n->v))
	{
		int			i;

		for (i = 0; annotations[i]; i++)
			if (strcmp(annotations[i], lfirst(lc)) == 0)
				break;
		if (!annotations[i])
			return false;
	}
	return true;
}

/* At least one side is true, false or unrestricted (e.g. {}). */
static void
compare_booleans(Diff *d, const SchemaNode *o, const SchemaNode *n, const char *path)
{
	bool		oall = is_unrestricted(o);
	bool		nall = is_unrestricted(n);
	bool		onone = o->v.type == jbvBool && !o->v.val.boolean;
	bool		nnone = n->v.type == jbvBool && !n->v.val.boolean;
	const JsonbValue *ov = o->v.type == jbvBool ? &o->v : NULL;
	const JsonbValue *nv = n->v.type == jbvBool ? &n->v : NULL;

	if ((oall && nall) || (onone && nnone))
		return;
	if (oall || nnone)
		emit(d, path, o, n, "schema_restricted", false, true, ov, nv,
			 pstrdup(nnone ? "no value is accepted any more" :
					 "a schema now restricts values that were unrestricted"));
	else
		emit(d, path, o, n, "schema_relaxed", true, false, ov, nv,
			 pstrdup(nall ? "values are no longer restricted" :
					 "values that were refused are now accepted"));
}

/*
 * Compare subschema o (old document) with n (new document) at instance
 * location path: defaults, then types and nullability, then each pair of
 * alternatives of the same type.
 */
static void
compare(Diff *d, const SchemaNode *o, const SchemaNode *n, const char *path)
{
	SchemaNode		ro = *o,
				rn = *n;
	int			ot,
				nt;
	List	   *ob,
			   *nb;
	static const int categories[] = {T_OBJECT, T_ARRAY, T_STRING, T_NUMBER, T_BOOL};

	check_stack_depth();
	CHECK_FOR_INTERRUPTS();
	if (d->depth >= DIFF_MAX_DEPTH)
		return;
	d->depth++;

	if (is_object(&o->v) && is_object(&n->v))
		compare_default(d, o, n, path);
	resolve(d, OLD, &ro);
	resolve(d, NEW, &rn);

	if (ro.v.type == jbvBool || rn.v.type == jbvBool ||
		is_unrestricted(&ro) || is_unrestricted(&rn))
	{
		compare_booleans(d, &ro, &rn, path);
		d->depth--;
		return;
	}

	ot = types_of(d, OLD, &ro, 0);
	nt = types_of(d, NEW, &rn, 0);
	if (ot != nt)
	{
		int			added = nt & ~ot;
		int			removed = ot & ~nt;
		JsonbValue	a,
					b;

		a.type = jbvString;
		a.val.string.val = types_text(ot);
		a.val.string.len = strlen(a.val.string.val);
		b.type = jbvString;
		b.val.string.val = types_text(nt);
		b.val.string.len = strlen(b.val.string.val);
		if (removed == 0)
			emit(d, path, &ro, &rn, added == T_NULL ? "made_nullable" : "type_widened",
				 true, false, &a, &b,
				 psprintf("type widened from %s to %s", a.val.string.val, b.val.string.val));
		else if (added == 0)
			emit(d, path, &ro, &rn, removed == T_NULL ? "made_non_nullable" : "type_narrowed",
				 false, true, &a, &b,
				 psprintf("type narrowed from %s to %s", a.val.string.val, b.val.string.val));
		else
			emit(d, path, &ro, &rn, "type_changed", false, false, &a, &b,
				 psprintf("type changed from %s to %s", a.val.string.val, b.val.string.val));
	}

	ob = branches_of(d, OLD, &ro);
	nb = branches_of(d, NEW, &rn);
	if (list_length(ob) == 1 && list_length(nb) == 1)
		compare_single(d, linitial(ob), linitial(nb), path);
	else
	{
		/* pair the alternatives by the type they accept (Optional[X] vs X, unions) */
		for (int c = 0; c < (int) lengthof(categories); c++)
		{
			SchemaNode	   *oc = NULL,
					   *nc = NULL;
			ListCell   *lc;

			foreach(lc, ob)
				if (types_of(d, OLD, lfirst(lc), 0) & categories[c])
				{
					oc = lfirst(lc);
					break;
				}
			foreach(lc, nb)
				if (types_of(d, NEW, lfirst(lc), 0) & categories[c])
				{
					nc = lfirst(lc);
					break;
				}
			if (oc && nc)
				compare_single(d, oc, nc, path);
		}
	}
	d->depth--;
}

/*
 * _celerysalt_schema_diff(old jsonb, new jsonb) RETURNS TABLE (...)
 *		Every change from schema old to schema new, with its verdicts.
 */
Datum
_celerysalt_schema_diff(PG_FUNCTION_ARGS)
{
	Diff		d = {0};
	SchemaNode		o,
				n;

	InitMaterializedSRF(fcinfo, 0);
	d.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	d.doc[OLD] = PG_GETARG_JSONB_P(0);
	d.doc[NEW] = PG_GETARG_JSONB_P(1);

	if (!resolve_pointer(d.doc[OLD], "", &o.v) || !resolve_pointer(d.doc[NEW], "", &n.v))
		PG_RETURN_NULL();
	/* a scalar root (true/false) is a raw-scalar array in jsonb */
	if (JB_ROOT_IS_SCALAR(d.doc[OLD]))
		o.v = *array_elem(&o.v, 0);
	if (JB_ROOT_IS_SCALAR(d.doc[NEW]))
		n.v = *array_elem(&n.v, 0);
	o.ptr = "";
	n.ptr = "";
	compare(&d, &o, &n, "");
	PG_RETURN_NULL();
}
