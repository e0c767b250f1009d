/*-------------------------------------------------------------------------
 *
 * follow_rules.c
 *		Follow-action rules: reading them from jsonb, turning column values
 *		into JSON, comparing, and checking a rule when it is created
 *		(celerysalt_follow_action_check, behind celerysalt_follow_action_rule).
 *
 * The row trigger (follow.c) reads rules in place, without copying them;
 * everything here that the trigger calls reports problems as a
 * FollowFailure instead of raising an error, so that the trigger can either
 * fail the statement or record the failure (celerysalt.follow_action_errors).
 * The creation-time check raises errors.
 *
 * Comparison semantics (docs/follow-actions.md): a column value becomes
 * JSON the way to_jsonb() makes it (SQL NULL becomes JSON null); values are
 * equal when they have the same JSON type and value, numbers compared
 * numerically, strings byte by byte, arrays and objects structurally.
 *
 *-------------------------------------------------------------------------
 */
#include "follow.h"
#include "jbv.h"
#include "event.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/syscache.h"

static FollowPersist parse_persist(JsonbValue *v);

static FollowOp parse_operator(const char *name, int len);


PG_FUNCTION_INFO_V1(celerysalt_follow_action_check);

typedef struct OperatorName
{
	const char *name;
	FollowOp	op;
} OperatorName;

static const OperatorName operator_names[] = {
	{"eql", FOLLOW_OP_EQL},
	{"not_eql", FOLLOW_OP_NOT_EQL},
	{"updated", FOLLOW_OP_UPDATED},
	{"deleted", FOLLOW_OP_DELETED},
	{"changed_from", FOLLOW_OP_CHANGED_FROM},
	{"changed_to", FOLLOW_OP_CHANGED_TO},
	{"gt", FOLLOW_OP_GT},
	{"gte", FOLLOW_OP_GTE},
	{"lt", FOLLOW_OP_LT},
	{"lte", FOLLOW_OP_LTE},
	{"in", FOLLOW_OP_IN},
	{"not_in", FOLLOW_OP_NOT_IN},
	{"is_null", FOLLOW_OP_IS_NULL},
	{"is_not_null", FOLLOW_OP_IS_NOT_NULL},
};

#define OPERATOR_LIST "eql, not_eql, updated, deleted, changed_from, changed_to, gt, gte, lt, lte, in, not_in, is_null, is_not_null"

/* Members a rule may have (celerysalt_follow_action_check rejects others). */
static const char *const rule_members[] = {
	"field_name", "operator", "value", "from", "to", "topic", "payload",
	"version", "persist", "name"
};

/*
 * parse_operator
 *		The operator named by name (len bytes, not NUL-terminated), or
 *		FOLLOW_OP_INVALID.
 */
static FollowOp
parse_operator(const char *name, int len)
{
	for (size_t i = 0; i < lengthof(operator_names); i++)
	{
		const char *n = operator_names[i].name;

		if ((int) strlen(n) == len && memcmp(n, name, len) == 0)
			return operator_names[i].op;
	}
	return FOLLOW_OP_INVALID;
}

/*
 * parse_persist
 *		The persist mode a rule's "persist" member gives; NULL (absent) means
 *		"True".  FOLLOW_PERSIST_INVALID for anything else.
 */
static FollowPersist
parse_persist(JsonbValue *v)
{
	if (v == NULL)
		return FOLLOW_PERSIST_TRUE;
	if (v->type == jbvBool)
		return v->val.boolean ? FOLLOW_PERSIST_TRUE : FOLLOW_PERSIST_FALSE;
	if (JbvStringIs(v, "True"))
		return FOLLOW_PERSIST_TRUE;
	if (JbvStringIs(v, "False"))
		return FOLLOW_PERSIST_FALSE;
	if (JbvStringIs(v, "ForceFalse"))
		return FOLLOW_PERSIST_FORCE_FALSE;
	return FOLLOW_PERSIST_INVALID;
}

/*
 * FollowGetMember
 *		The member key of object obj, or NULL.  The result is palloc'd in the
 *		current context and points into obj.
 */
JsonbValue *
FollowGetMember(JsonbContainer *obj, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	return findJsonbValueFromContainer(obj, JB_FOBJECT, &k);
}

static void
set_failure(FollowFailure *failure, int sqlerrcode, const char *fmt,...)
	pg_attribute_printf(3, 4);

static void
set_failure(FollowFailure *failure, int sqlerrcode, const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	failure->message = JbvFormatVA(fmt, args);
	va_end(args);
	failure->sqlerrcode = sqlerrcode;
}

/* A short, printable excerpt of a string for messages. */
static char *
excerpt(const char *s, int len)
{
	return pnstrdup(s, Min(len, 63));
}

static bool rule_operands(const FollowRule *rule, JsonbValue **value,
						  JsonbValue **other, FollowFailure *failure);
static int	alternatives(JsonbValue *spec, JsonbValue **alts);

/*
 * FollowReadRule
 *		Read the members of rule elem that every evaluation needs
 *		(field_name, operator, persist).  Returns false and fills failure
 *		when the rule cannot be read.
 */
bool
FollowReadRule(JsonbValue *elem, FollowRule *rule, FollowFailure *failure)
{
	JsonbValue *v;

	if (elem->type != jbvBinary || !JsonContainerIsObject(elem->val.binary.data))
	{
		set_failure(failure, ERRCODE_INVALID_PARAMETER_VALUE,
					"The rule is not a JSON object.");
		return false;
	}
	rule->obj = elem->val.binary.data;

	v = FollowGetMember(rule->obj, "field_name");
	if (v == NULL || v->type != jbvString || v->val.string.len == 0)
	{
		set_failure(failure, ERRCODE_INVALID_PARAMETER_VALUE,
					"The rule has no \"field_name\" string.");
		return false;
	}
	rule->field = v->val.string.val;
	rule->field_len = v->val.string.len;

	v = FollowGetMember(rule->obj, "operator");
	if (v == NULL || v->type != jbvString)
	{
		set_failure(failure, ERRCODE_INVALID_PARAMETER_VALUE,
					"The rule has no \"operator\" string.");
		return false;
	}
	rule->op = parse_operator(v->val.string.val, v->val.string.len);
	if (rule->op == FOLLOW_OP_INVALID)
	{
		set_failure(failure, ERRCODE_INVALID_PARAMETER_VALUE,
					"The operator \"%s\" is unknown; known operators are " OPERATOR_LIST ".",
					excerpt(v->val.string.val, v->val.string.len));
		return false;
	}

	rule->persist = parse_persist(FollowGetMember(rule->obj, "persist"));
	if (rule->persist == FOLLOW_PERSIST_INVALID)
	{
		set_failure(failure, ERRCODE_INVALID_PARAMETER_VALUE,
					"The persist value is not \"True\", \"False\", \"ForceFalse\", true or false.");
		return false;
	}

	/* operands are checked only when the rule is evaluated */
	rule->operands_ok = rule_operands(rule, &rule->value, &rule->other,
									  &rule->operands_failure);
	rule->nvalue_alts = alternatives(rule->value, &rule->value_alts);
	rule->nother_alts = alternatives(rule->other, &rule->other_alts);
	return true;
}

/*
 * FollowFindColumn
 *		The attribute number of the live column called name (len bytes), or
 *		InvalidAttrNumber.
 */
int
FollowFindColumn(TupleDesc tupdesc, const char *name, int len)
{
	if (len <= 0 || len >= NAMEDATALEN)
		return InvalidAttrNumber;
	for (int i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);
		const char *attname = NameStr(att->attname);

		if (att->attisdropped || attname[0] != name[0])
			continue;
		if (strncmp(attname, name, len) == 0 && attname[len] == '\0')
			return i + 1;
	}
	return InvalidAttrNumber;
}

/*
 * FollowColumnInit
 *		Decide how values of type typid become JSON.  For types without a
 *		fast path, set up a call of to_jsonb(typid) whose FmgrInfo lives in
 *		cxt (the caller's cache).
 */
void
FollowColumnInit(FollowColumn *col, Oid typid, MemoryContext cxt)
{
	Oid			base = getBaseType(typid);

	switch (base)
	{
		case BOOLOID:
			col->kind = FOLLOW_KIND_BOOL;
			return;
		case INT2OID:
			col->kind = FOLLOW_KIND_INT2;
			return;
		case INT4OID:
			col->kind = FOLLOW_KIND_INT4;
			return;
		case INT8OID:
			col->kind = FOLLOW_KIND_INT8;
			return;
		case NUMERICOID:
			col->kind = FOLLOW_KIND_NUMERIC;
			break;				/* NaN and infinities take the generic path */
		case TEXTOID:
		case VARCHAROID:
			col->kind = FOLLOW_KIND_TEXT;
			return;
		case JSONBOID:
			col->kind = FOLLOW_KIND_JSONB;
			return;
		default:
			col->kind = FOLLOW_KIND_GENERIC;
			break;
	}

	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		/* to_jsonb(anyelement) learns the argument type from fn_expr */
		fmgr_info_cxt(F_TO_JSONB, &col->to_jsonb, cxt);
		col->to_jsonb.fn_expr = (Node *)
			makeFuncExpr(F_TO_JSONB, JSONBOID,
						 list_make1(makeNullConst(typid, -1, InvalidOid)),
						 InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
		MemoryContextSwitchTo(old);
	}
}

/* Store the root of jsonb jb in out: a scalar, or the container. */
static void
jsonb_to_value(Jsonb *jb, JsonbValue *out)
{
	if (JB_ROOT_IS_SCALAR(jb))
		JsonbExtractScalar(&jb->root, out);
	else
	{
		out->type = jbvBinary;
		out->val.binary.data = &jb->root;
		out->val.binary.len = VARSIZE(jb) - VARHDRSZ;
	}
}

/*
 * FollowDatumToValue
 *		The JSON value of a column value, as to_jsonb() makes it; SQL NULL
 *		becomes JSON null.  Allocates in the current context; out may point
 *		into the (detoasted) datum.
 */
void
FollowDatumToValue(FollowColumn *col, Datum value, bool isnull, JsonbValue *out)
{
	if (isnull)
	{
		out->type = jbvNull;
		return;
	}
	switch (col->kind)
	{
		case FOLLOW_KIND_BOOL:
			out->type = jbvBool;
			out->val.boolean = DatumGetBool(value);
			return;
		case FOLLOW_KIND_INT2:
			out->type = jbvNumeric;
			out->val.numeric = int64_to_numeric(DatumGetInt16(value));
			return;
		case FOLLOW_KIND_INT4:
			out->type = jbvNumeric;
			out->val.numeric = int64_to_numeric(DatumGetInt32(value));
			return;
		case FOLLOW_KIND_INT8:
			out->type = jbvNumeric;
			out->val.numeric = int64_to_numeric(DatumGetInt64(value));
			return;
		case FOLLOW_KIND_NUMERIC:
			{
				Numeric		n = DatumGetNumeric(value);

				if (!numeric_is_nan(n) && !numeric_is_inf(n))
				{
					out->type = jbvNumeric;
					out->val.numeric = n;
					return;
				}
				break;			/* to_jsonb makes a string of it */
			}
		case FOLLOW_KIND_TEXT:
			{
				text	   *t = DatumGetTextPP(value);

				out->type = jbvString;
				out->val.string.val = VARDATA_ANY(t);
				out->val.string.len = VARSIZE_ANY_EXHDR(t);
				return;
			}
		case FOLLOW_KIND_JSONB:
			jsonb_to_value(DatumGetJsonbP(value), out);
			return;
		case FOLLOW_KIND_GENERIC:
		case FOLLOW_KIND_UNSET:
			break;
	}
	Assert(col->to_jsonb.fn_oid == F_TO_JSONB);
	jsonb_to_value(DatumGetJsonbP(FunctionCall1(&col->to_jsonb, value)), out);
}

static int
numeric_compare(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp,
											 NumericGetDatum(a),
											 NumericGetDatum(b)));
}

/*
 * Order two JSON values for gt/gte/lt/lte.  Returns false when they are not
 * both numbers or both strings (such a rule never matches).
 */
static bool
values_order(const JsonbValue *a, const JsonbValue *b, int *cmp)
{
	if (a->type == jbvNumeric && b->type == jbvNumeric)
	{
		*cmp = numeric_compare(a->val.numeric, b->val.numeric);
		return true;
	}
	if (a->type == jbvString && b->type == jbvString)
	{
		int			len = Min(a->val.string.len, b->val.string.len);
		int			c = memcmp(a->val.string.val, b->val.string.val, len);

		if (c == 0)
			c = (a->val.string.len > b->val.string.len) - (a->val.string.len < b->val.string.len);
		*cmp = c;
		return true;
	}
	return false;
}

static bool
is_array(const JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data) &&
		!JsonContainerIsScalar(v->val.binary.data);
}

/*
 * The values spec stands for, in a palloc'd array: the elements of a list
 * (a one-element list means its element, so [[1, 2]] matches the array
 * [1, 2]), or spec itself.  Returns how many; 0 for no spec.
 */
static int
alternatives(JsonbValue *spec, JsonbValue **alts)
{
	int			n;

	*alts = NULL;
	if (spec == NULL)
		return 0;
	if (!is_array(spec))
	{
		*alts = spec;
		return 1;
	}
	n = JsonContainerSize(spec->val.binary.data);
	*alts = palloc(sizeof(JsonbValue) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(spec->val.binary.data, i);

		(*alts)[i] = *e;
		pfree(e);
	}
	return n;
}

/* Whether target equals one of the n alternatives alts. */
static inline bool
value_in(const JsonbValue *target, const JsonbValue *alts, int n)
{
	for (int i = 0; i < n; i++)
		if (FollowValuesEqual(target, &alts[i]))
			return true;
	return false;
}

static const char *
op_name(FollowOp op)
{
	for (size_t i = 0; i < lengthof(operator_names); i++)
		if (operator_names[i].op == op)
			return operator_names[i].name;
	return "?";
}

/*
 * The operands of a rule: value and the optional other end of a
 * transition ("to" for changed_from, "from" for changed_to).  Returns false
 * and fills failure when they do not fit the operator.
 */
static bool
rule_operands(const FollowRule *rule, JsonbValue **value, JsonbValue **other,
			  FollowFailure *failure)
{
	const char *name = op_name(rule->op);

	*value = FollowGetMember(rule->obj, "value");
	*other = NULL;

	switch (rule->op)
	{
		case FOLLOW_OP_UPDATED:
		case FOLLOW_OP_DELETED:
		case FOLLOW_OP_IS_NULL:
		case FOLLOW_OP_IS_NOT_NULL:
			if (*value != NULL)
			{
				set_failure(failure, ERRCODE_INVALID_PARAMETER_VALUE,
							"The operator \"%s\" takes no value.", name);
				return false;
			}
			break;
		case FOLLOW_OP_IN:
		case FOLLOW_OP_NOT_IN:
			if (*value == NULL || !is_array(*value) ||
				JsonContainerSize((*value)->val.binary.data) == 0)
			{
				set_failure(failure, ERRCODE_INVALID_PARAMETER_VALUE,
							"The operator \"%s\" needs a value that is a non-empty JSON array.", name);
				return false;
			}
			break;
		case FOLLOW_OP_GT:
		case FOLLOW_OP_GTE:
		case FOLLOW_OP_LT:
		case FOLLOW_OP_LTE:
			if (*value == NULL ||
				((*value)->type != jbvNumeric && (*value)->type != jbvString))
			{
				set_failure(failure, ERRCODE_INVALID_PARAMETER_VALUE,
							"The operator \"%s\" needs a value that is a JSON number or string.", name);
				return false;
			}
			break;
		case FOLLOW_OP_CHANGED_FROM:
		case FOLLOW_OP_CHANGED_TO:
			*other = FollowGetMember(rule->obj,
									 rule->op == FOLLOW_OP_CHANGED_FROM ? "to" : "from");
			/* FALLTHROUGH */
		case FOLLOW_OP_EQL:
		case FOLLOW_OP_NOT_EQL:
			if (*value == NULL)
			{
				set_failure(failure, ERRCODE_INVALID_PARAMETER_VALUE,
							"The operator \"%s\" needs a value.", name);
				return false;
			}
			break;
		case FOLLOW_OP_INVALID:
			set_failure(failure, ERRCODE_INVALID_PARAMETER_VALUE,
						"The operator is unknown.");
			return false;
	}
	return true;
}

/*
 * FollowRuleMatches
 *		Whether rule matches a change of its field from oldv to newv (the
 *		caller has established that they differ).  Returns false and fills
 *		failure when the rule's operands do not fit its operator.
 */
bool
FollowRuleMatches(const FollowRule *rule, const JsonbValue *oldv,
				  const JsonbValue *newv, bool *matches, FollowFailure *failure)
{
	const JsonbValue *value = rule->value;
	const JsonbValue *values = rule->value_alts;
	int			nvalues = rule->nvalue_alts;
	const JsonbValue *others = rule->other_alts;
	int			nothers = rule->nother_alts;
	int			cmp;

	if (!rule->operands_ok)
	{
		*failure = rule->operands_failure;
		return false;
	}

	switch (rule->op)
	{
		case FOLLOW_OP_EQL:
			*matches = value_in(newv, values, nvalues);
			break;
		case FOLLOW_OP_NOT_EQL:
			*matches = !value_in(newv, values, nvalues);
			break;
		case FOLLOW_OP_UPDATED:
			*matches = true;
			break;
		case FOLLOW_OP_DELETED:
			*matches = newv->type == jbvNull ||
				(newv->type == jbvString && newv->val.string.len == 0);
			break;
		case FOLLOW_OP_CHANGED_FROM:
			*matches = value_in(oldv, values, nvalues) &&
				(others == NULL || value_in(newv, others, nothers));
			break;
		case FOLLOW_OP_CHANGED_TO:
			*matches = value_in(newv, values, nvalues) &&
				(others == NULL || value_in(oldv, others, nothers));
			break;
		case FOLLOW_OP_GT:
			*matches = values_order(newv, value, &cmp) && cmp > 0;
			break;
		case FOLLOW_OP_GTE:
			*matches = values_order(newv, value, &cmp) && cmp >= 0;
			break;
		case FOLLOW_OP_LT:
			*matches = values_order(newv, value, &cmp) && cmp < 0;
			break;
		case FOLLOW_OP_LTE:
			*matches = values_order(newv, value, &cmp) && cmp <= 0;
			break;
		case FOLLOW_OP_IN:
			*matches = value_in(newv, values, nvalues);
			break;
		case FOLLOW_OP_NOT_IN:
			*matches = !value_in(newv, values, nvalues);
			break;
		case FOLLOW_OP_IS_NULL:
			*matches = newv->type == jbvNull;
			break;
		case FOLLOW_OP_IS_NOT_NULL:
			*matches = newv->type != jbvNull;
			break;
		case FOLLOW_OP_INVALID:
			return false;
	}
	return true;
}

/*
 * FollowIsPlaceholder
 *		Whether obj is a payload placeholder: an object with exactly one
 *		member whose name starts with "$".  Fills key and arg (pointing into
 *		obj) when it is.
 */
bool
FollowIsPlaceholder(JsonbContainer *obj, JsonbValue *key, JsonbValue *arg)
{
	JsonbIterator *it;
	JsonbValue	v;

	if (!JsonContainerIsObject(obj) || JsonContainerSize(obj) != 1)
		return false;
	it = JsonbIteratorInit(obj);
	(void) JsonbIteratorNext(&it, &v, true);	/* WJB_BEGIN_OBJECT */
	if (JsonbIteratorNext(&it, key, true) != WJB_KEY ||
		key->val.string.len == 0 || key->val.string.val[0] != '$')
		return false;
	(void) JsonbIteratorNext(&it, arg, true);	/* WJB_VALUE */
	return true;
}

/* ------------------------------------------------------------------------
 * Creation-time checks: celerysalt_follow_action_check(rule, tbl)
 * ------------------------------------------------------------------------
 */

/* What the check knows about the table the rule is for (may be absent). */
typedef struct CheckTable
{
	Relation	rel;			/* NULL when no table was given */
	const char *relname;
} CheckTable;

static int
check_column(CheckTable *tbl, const char *what, const char *name, int len)
{
	int			attnum;

	if (tbl->rel == NULL)
		return InvalidAttrNumber;
	attnum = FollowFindColumn(RelationGetDescr(tbl->rel), name, len);
	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" named by the follow-action %s does not exist in table \"%s\"",
						excerpt(name, len), what, tbl->relname)));
	return attnum;
}

static bool
table_has_primary_key(Relation rel)
{
	return OidIsValid(RelationGetPrimaryKeyIndex(rel));
}

/* Check a payload template (recursively); see docs/follow-actions.md. */
static void
check_template(JsonbContainer *c, CheckTable *tbl, int depth)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	JsonbValue	key;
	JsonbValue	arg;

	check_stack_depth();

	if (FollowIsPlaceholder(c, &key, &arg))
	{
		if (JbvStringIs(&key, "$new") || JbvStringIs(&key, "$old"))
		{
			if (arg.type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("payload placeholder \"%s\" must name a column",
								excerpt(key.val.string.val, key.val.string.len)),
						 errhint("Write {\"$new\": \"column\"} or {\"$old\": \"column\"}.")));
			check_column(tbl, "payload placeholder", arg.val.string.val, arg.val.string.len);
			return;
		}
		if (JbvStringIs(&key, "$pk"))
		{
			if (arg.type != jbvBool || !arg.val.boolean)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("payload placeholder \"$pk\" must have the value true"),
						 errhint("Write {\"$pk\": true}.")));
			if (tbl->rel != NULL && !table_has_primary_key(tbl->rel))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
						 errmsg("table \"%s\" has no primary key for payload placeholder \"$pk\"",
								tbl->relname)));
			return;
		}
		if (JbvStringIs(&key, "$literal"))
			return;
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown payload placeholder \"%s\"",
						excerpt(key.val.string.val, key.val.string.len)),
				 errhint("Placeholders are $new, $old, $pk and $literal; wrap a literal object whose only member starts with \"$\" in {\"$literal\": ...}.")));
	}

	it = JsonbIteratorInit(c);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY && JsonContainerSize(c) > 1 &&
			v.val.string.len > 0 && v.val.string.val[0] == '$' &&
			(JbvStringIs(&v, "$new") || JbvStringIs(&v, "$old") ||
			 JbvStringIs(&v, "$pk") || JbvStringIs(&v, "$literal")))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("payload placeholder \"%s\" must be the only member of its object",
							excerpt(v.val.string.val, v.val.string.len)),
					 errhint("Write {\"key\": {\"$new\": \"column\"}} rather than {\"$new\": \"column\", \"key\": ...}.")));
		if ((tok == WJB_VALUE || tok == WJB_ELEM) && v.type == jbvBinary)
			check_template(v.val.binary.data, tbl, depth + 1);
	}
}

/* Whether the payload template contains any placeholder. */
static bool
template_has_placeholder(JsonbContainer *c)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbValue	key;
	JsonbValue	arg;
	JsonbIteratorToken tok;

	if (FollowIsPlaceholder(c, &key, &arg))
		return true;
	it = JsonbIteratorInit(c);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		if ((tok == WJB_VALUE || tok == WJB_ELEM) && v.type == jbvBinary &&
			template_has_placeholder(v.val.binary.data))
			return true;
	return false;
}

/* The JSON type a column's values always have, or NULL when it varies. */
static const char *
column_json_type(Relation rel, int attnum)
{
	Oid			typid = getBaseType(TupleDescAttr(RelationGetDescr(rel), attnum - 1)->atttypid);

	switch (typid)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case NUMERICOID:
		case FLOAT4OID:
		case FLOAT8OID:
			return "number";	/* NaN and infinities aside */
		case BOOLOID:
			return "boolean";
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
		case NAMEOID:
		case UUIDOID:
		case DATEOID:
		case TIMEOID:
		case TIMETZOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
		case INTERVALOID:
			return "string";
		default:
			if (type_is_enum(typid))
				return "string";
			return NULL;
	}
}

static const char *
value_json_type(const JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvString:
			return "string";
		case jbvNumeric:
			return "number";
		case jbvBool:
			return "boolean";
		default:
			return JsonContainerIsArray(v->val.binary.data) ? "array" : "object";
	}
}

/*
 * Raise an error when a rule operand can never equal a value of the
 * column: its JSON type differs from the one the column's values have.
 * Lists are checked element by element.
 */
static void
check_operand_type(CheckTable *tbl, int attnum, const char *member,
				   const JsonbValue *v, bool list)
{
	const char *coltype;
	const char *vtype;

	if (tbl->rel == NULL || v == NULL)
		return;
	if (list && is_array(v))
	{
		JsonbContainer *c = v->val.binary.data;

		for (int i = 0; i < (int) JsonContainerSize(c); i++)
			check_operand_type(tbl, attnum, member,
							   getIthJsonbValueFromContainer(c, i), false);
		return;
	}
	coltype = column_json_type(tbl->rel, attnum);
	vtype = value_json_type(v);
	if (coltype == NULL || strcmp(vtype, "null") == 0 || strcmp(coltype, vtype) == 0)
		return;
	/* to_jsonb() makes strings of numeric and float NaN and infinities */
	if (strcmp(coltype, "number") == 0 &&
		(JbvStringIs(v, "NaN") || JbvStringIs(v, "Infinity") || JbvStringIs(v, "-Infinity")))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("follow-action rule %s can never match column \"%s\"",
					member, NameStr(TupleDescAttr(RelationGetDescr(tbl->rel), attnum - 1)->attname)),
			 errdetail("The column's values become JSON %ss, the rule's %s is a JSON %s.",
					   coltype, member, vtype),
			 errhint("Values compare as JSON: a number never equals a string (write 5, not \"5\").")));
}

static void
check_version(const JsonbValue *v)
{
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("follow-action rule version must be a string")));
	EventCheckName(EVENT_NAME_VERSION, pnstrdup(v->val.string.val, v->val.string.len));
}

/*
 * celerysalt_follow_action_check(rule jsonb, tbl regclass DEFAULT NULL)
 *		RETURNS jsonb
 *
 * Raise an error unless rule is a valid follow-action rule (for table tbl
 * when given: then its columns must exist and its values must be able to
 * match them); return the rule unchanged.
 */
Datum
celerysalt_follow_action_check(PG_FUNCTION_ARGS)
{
	Jsonb	   *rulejb;
	JsonbValue	elem;
	FollowRule	rule;
	FollowFailure failure;
	JsonbValue *topic;
	JsonbValue *payload;
	JsonbValue *version;
	JsonbValue *name;
	JsonbValue *value;
	JsonbValue *other;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbValue	arg;
	JsonbIteratorToken tok;
	CheckTable	tbl = {NULL, NULL};
	int			attnum = InvalidAttrNumber;
	char	   *topic_str;
	const char *version_str = NULL;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("follow-action rule must not be null")));
	rulejb = PG_GETARG_JSONB_P(0);

	if (!PG_ARGISNULL(1))
	{
		tbl.rel = relation_open(PG_GETARG_OID(1), AccessShareLock);
		tbl.relname = RelationGetRelationName(tbl.rel);
	}

	if (JB_ROOT_IS_SCALAR(rulejb) || !JB_ROOT_IS_OBJECT(rulejb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("follow-action rule must be a JSON object"),
				 errhint("Build rules with celerysalt_follow_action_rule().")));

	/* no unknown members: a misspelt one would be ignored by the trigger */
	it = JsonbIteratorInit(&rulejb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		bool		known = false;

		if (tok != WJB_KEY)
			continue;
		for (size_t i = 0; i < lengthof(rule_members); i++)
			if (JbvStringIs(&v, rule_members[i]))
				known = true;
		if (!known)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("follow-action rule has the unknown member \"%s\"",
							excerpt(v.val.string.val, v.val.string.len)),
					 errhint("Rule members are field_name, operator, value, from, to, topic, payload, version, persist and name.")));
	}

	/* required members first, so that the message names what is missing */
	if (FollowGetMember(&rulejb->root, "field_name") == NULL ||
		FollowGetMember(&rulejb->root, "field_name")->type == jbvNull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("follow-action rule has no field_name"),
				 errhint("Name the column whose change the rule follows.")));
	if (FollowGetMember(&rulejb->root, "operator") == NULL ||
		FollowGetMember(&rulejb->root, "operator")->type == jbvNull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("follow-action rule has no operator"),
				 errhint("Operators are " OPERATOR_LIST ".")));
	topic = FollowGetMember(&rulejb->root, "topic");
	if (topic == NULL || topic->type == jbvNull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("follow-action rule has no topic"),
				 errhint("Give the topic the event is published to, such as \"order.paid\".")));

	v = *FollowGetMember(&rulejb->root, "field_name");
	if (v.type != jbvString || v.val.string.len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("follow-action rule field_name must be a non-empty string")));
	v = *FollowGetMember(&rulejb->root, "operator");
	if (v.type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("follow-action rule operator must be a string")));
	if (parse_operator(v.val.string.val, v.val.string.len) == FOLLOW_OP_INVALID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown follow-action operator \"%s\"",
						excerpt(v.val.string.val, v.val.string.len)),
				 errhint("Operators are " OPERATOR_LIST ".")));
	if (parse_persist(FollowGetMember(&rulejb->root, "persist")) == FOLLOW_PERSIST_INVALID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid follow-action persist value"),
				 errdetail("persist must be \"True\", \"False\", \"ForceFalse\", true or false."),
				 errhint("Use \"True\" to keep the rule, \"False\" to remove it once it fired, \"ForceFalse\" to remove it at the next UPDATE.")));

	elem.type = jbvBinary;
	elem.val.binary.data = &rulejb->root;
	elem.val.binary.len = VARSIZE(rulejb) - VARHDRSZ;
	if (!FollowReadRule(&elem, &rule, &failure))
		elog(ERROR, "follow-action rule could not be read: %s", failure.message);
	attnum = check_column(&tbl, "rule", rule.field, rule.field_len);

	if (!rule_operands(&rule, &value, &other, &failure))
		ereport(ERROR,
				(errcode(failure.sqlerrcode),
				 errmsg("invalid follow-action rule"),
				 errdetail_internal("%s", failure.message)));
	if (attnum != InvalidAttrNumber)
	{
		bool		list = !(rule.op == FOLLOW_OP_GT || rule.op == FOLLOW_OP_GTE ||
							 rule.op == FOLLOW_OP_LT || rule.op == FOLLOW_OP_LTE);

		check_operand_type(&tbl, attnum, "value", value, list);
		check_operand_type(&tbl, attnum,
						   rule.op == FOLLOW_OP_CHANGED_FROM ? "to" : "from", other, true);
	}

	if (topic->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("follow-action rule topic must be a string")));
	topic_str = pnstrdup(topic->val.string.val, topic->val.string.len);
	EventCheckName(EVENT_NAME_TOPIC, topic_str);

	version = FollowGetMember(&rulejb->root, "version");
	if (version != NULL && version->type != jbvNull)
	{
		check_version(version);
		version_str = pnstrdup(version->val.string.val, version->val.string.len);
	}

	name = FollowGetMember(&rulejb->root, "name");
	if (name != NULL && name->type != jbvNull &&
		(name->type != jbvString || name->val.string.len > 255))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("follow-action rule name must be a string of at most 255 bytes")));

	payload = FollowGetMember(&rulejb->root, "payload");
	if (payload != NULL && payload->type != jbvNull)
	{
		Jsonb	   *pjb;

		if (payload->type != jbvBinary || !JsonContainerIsObject(payload->val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("follow-action rule payload must be a JSON object"),
					 errhint("Take values from the row with {\"$new\": \"column\"}, {\"$old\": \"column\"} and {\"$pk\": true}.")));
		check_template(payload->val.binary.data, &tbl, 0);
		pjb = JsonbValueToJsonb(payload);
		if (!template_has_placeholder(payload->val.binary.data))
		{
			/* a constant payload is the event's payload: check it fully */
			EventCheckPayload(pjb);
			if (celerysalt_publish_validator != NULL)
				(void) celerysalt_publish_validator(topic_str, pjb, version_str);
		}
		else if (!FollowIsPlaceholder(payload->val.binary.data, &v, &arg))
			EventCheckPayload(pjb);	/* shape and size of the template */
	}

	if (tbl.rel != NULL)
		relation_close(tbl.rel, AccessShareLock);

	PG_RETURN_JSONB_P(rulejb);
}
