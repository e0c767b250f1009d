/*-------------------------------------------------------------------------
 *
 * follow_rules.c
 *		Follow-action rules: reading them from jsonb, turning column values
 *		into JSON, and comparing.  The lowest follow-action layer: the
 *		payload templates (follow_payload.c), the creation-time check
 *		(follow_check.c) and the trigger (follow.c) build on it.
 *
 * The row trigger (follow.c) reads rules in place, without copying them;
 * everything here that the trigger calls reports problems as a
 * FollowFailure instead of raising an error, so that the trigger can either
 * fail the statement or record the failure (celerysalt.follow_action_errors).
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

/*
 * FollowParseOperator
 *		The operator named by name (len bytes, not NUL-terminated), or
 *		FOLLOW_OP_INVALID.
 */
FollowOp
FollowParseOperator(const char *name, int len)
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
 * FollowParsePersist
 *		The persist mode a rule's "persist" member gives; NULL (absent) means
 *		"True".  FOLLOW_PERSIST_INVALID for anything else.
 */
FollowPersist
FollowParsePersist(JsonbValue *v)
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
	rule->op = FollowParseOperator(v->val.string.val, v->val.string.len);
	if (rule->op == FOLLOW_OP_INVALID)
	{
		set_failure(failure, ERRCODE_INVALID_PARAMETER_VALUE,
					"The operator \"%s\" is unknown; known operators are " FOLLOW_OPERATOR_LIST ".",
					excerpt(v->val.string.val, v->val.string.len));
		return false;
	}

	rule->persist = FollowParsePersist(FollowGetMember(rule->obj, "persist"));
	if (rule->persist == FOLLOW_PERSIST_INVALID)
	{
		set_failure(failure, ERRCODE_INVALID_PARAMETER_VALUE,
					"The persist value is not \"True\", \"False\", \"ForceFalse\", true or false.");
		return false;
	}

	/* operands are checked only when the rule is evaluated */
	rule->operands_ok = FollowRuleOperands(rule, &rule->value, &rule->other,
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
	if (!JbvIsArray(spec))
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
 * FollowRuleOperands
 *		The operands of a rule: value and the optional other end of a
 * transition ("to" for changed_from, "from" for changed_to).  Returns false
 * and fills failure when they do not fit the operator.
 */
bool
FollowRuleOperands(const FollowRule *rule, JsonbValue **value, JsonbValue **other,
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
			/* TchuFollowActions always stores "value": null means none */
			if (*value != NULL && (*value)->type == jbvNull)
				*value = NULL;
			if (*value != NULL)
			{
				set_failure(failure, ERRCODE_INVALID_PARAMETER_VALUE,
							"The operator \"%s\" takes no value.", name);
				return false;
			}
			break;
		case FOLLOW_OP_IN:
		case FOLLOW_OP_NOT_IN:
			if (*value == NULL || !JbvIsArray(*value) ||
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
			/* a one-element list is its element, as for every operator */
			if (*value != NULL && JbvIsArray(*value) &&
				JsonContainerSize((*value)->val.binary.data) == 1)
				*value = getIthJsonbValueFromContainer((*value)->val.binary.data, 0);
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
