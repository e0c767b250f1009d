/*-------------------------------------------------------------------------
 *
 * follow_payload.c
 *		The payload-template language of follow-action rules, both halves:
 *		checking a template when a rule is created
 *		(celerysalt_follow_action_check) and expanding it for each row that
 *		fires the rule (the row trigger).  One placeholder table serves both,
 *		so that what the check accepts is exactly what the expansion knows.
 *
 * A template is any JSON object.  An object with exactly one member whose
 * name starts with "$" is a placeholder:
 *		{"$new": "column"}	the column's value in the new row
 *		{"$old": "column"}	the column's value in the old row
 *		{"$pk": true}		the row's primary key (an object for a composite key)
 *		{"$literal": value}	value itself, unexpanded
 * A rule without a payload gets the default {"table", "pk", "field", "old",
 * "new"}.  Values become JSON as to_jsonb() makes them (follow_rules.c).
 * docs/follow-actions.md is the user's description.
 *
 * The expansion reads the row through the callbacks of a FollowPayloadRow,
 * which the trigger fills: this file knows nothing of tuples or caches.
 *
 *-------------------------------------------------------------------------
 */
#include "follow.h"
#include "jbv.h"

#include "miscadmin.h"
#include "utils/rel.h"

/* The placeholders; anything else starting with "$" is unknown. */
static const struct
{
	const char *name;
	FollowPlaceholder kind;
}			placeholders[] = {
	{"$new", FOLLOW_PH_NEW},
	{"$old", FOLLOW_PH_OLD},
	{"$pk", FOLLOW_PH_PK},
	{"$literal", FOLLOW_PH_LITERAL},
};

#define PLACEHOLDER_LIST "$new, $old, $pk and $literal"

/* The placeholder a member name stands for (FOLLOW_PH_UNKNOWN if none). */
static FollowPlaceholder
placeholder_named(const JsonbValue *key)
{
	for (size_t i = 0; i < lengthof(placeholders); i++)
		if (JbvStringIs(key, placeholders[i].name))
			return placeholders[i].kind;
	return FOLLOW_PH_UNKNOWN;
}

/*
 * FollowPlaceholderOf
 *		Whether obj is a placeholder: an object with exactly one member whose
 *		name starts with "$".  FOLLOW_PH_NONE when it is not; else its kind,
 *		with key and arg filled (pointing into obj).
 */
FollowPlaceholder
FollowPlaceholderOf(JsonbContainer *obj, JsonbValue *key, JsonbValue *arg)
{
	JsonbIterator *it;
	JsonbValue	v;

	if (!JsonContainerIsObject(obj) || JsonContainerSize(obj) != 1)
		return FOLLOW_PH_NONE;
	it = JsonbIteratorInit(obj);
	(void) JsonbIteratorNext(&it, &v, true);	/* WJB_BEGIN_OBJECT */
	if (JsonbIteratorNext(&it, key, true) != WJB_KEY ||
		key->val.string.len == 0 || key->val.string.val[0] != '$')
		return FOLLOW_PH_NONE;
	(void) JsonbIteratorNext(&it, arg, true);	/* WJB_VALUE */
	return placeholder_named(key);
}

/* A short, printable excerpt of a string for messages. */
static char *
excerpt(const char *s, int len)
{
	return pnstrdup(s, Min(len, 63));
}

/* ------------------------------------------------------------------------
 * Creation-time check
 * ------------------------------------------------------------------------
 */

/* Check one placeholder against table rel (NULL: no table to check). */
static void
check_placeholder(FollowPlaceholder kind, JsonbValue *key, JsonbValue *arg,
				  Relation rel)
{
	switch (kind)
	{
		case FOLLOW_PH_NEW:
		case FOLLOW_PH_OLD:
			if (arg->type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("payload placeholder \"%s\" must name a column",
								excerpt(key->val.string.val, key->val.string.len)),
						 errhint("Write {\"$new\": \"column\"} or {\"$old\": \"column\"}.")));
			if (rel != NULL &&
				FollowFindColumn(RelationGetDescr(rel), arg->val.string.val,
								 arg->val.string.len) == InvalidAttrNumber)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("column \"%s\" named by the follow-action payload placeholder does not exist in table \"%s\"",
								excerpt(arg->val.string.val, arg->val.string.len),
								RelationGetRelationName(rel))));
			return;
		case FOLLOW_PH_PK:
			if (arg->type != jbvBool || !arg->val.boolean)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("payload placeholder \"$pk\" must have the value true"),
						 errhint("Write {\"$pk\": true}.")));
			if (rel != NULL && !OidIsValid(RelationGetPrimaryKeyIndex(rel)))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
						 errmsg("table \"%s\" has no primary key for payload placeholder \"$pk\"",
								RelationGetRelationName(rel))));
			return;
		case FOLLOW_PH_LITERAL:
			return;
		case FOLLOW_PH_UNKNOWN:
		case FOLLOW_PH_NONE:
			break;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown payload placeholder \"%s\"",
					excerpt(key->val.string.val, key->val.string.len)),
			 errhint("Placeholders are " PLACEHOLDER_LIST "; wrap a literal object whose only member starts with \"$\" in {\"$literal\": ...}.")));
}

/* Check container c of a template, recursively; true if it has a placeholder. */
static bool
check_container(JsonbContainer *c, Relation rel)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbValue	key;
	JsonbValue	arg;
	JsonbIteratorToken tok;
	FollowPlaceholder kind;
	bool		found = false;

	check_stack_depth();

	if ((kind = FollowPlaceholderOf(c, &key, &arg)) != FOLLOW_PH_NONE)
	{
		check_placeholder(kind, &key, &arg, rel);
		return true;
	}

	it = JsonbIteratorInit(c);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY && JsonContainerSize(c) > 1 &&
			placeholder_named(&v) != FOLLOW_PH_UNKNOWN)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("payload placeholder \"%s\" must be the only member of its object",
							excerpt(v.val.string.val, v.val.string.len)),
					 errhint("Write {\"key\": {\"$new\": \"column\"}} rather than {\"$new\": \"column\", \"key\": ...}.")));
		if ((tok == WJB_VALUE || tok == WJB_ELEM) && v.type == jbvBinary)
			found |= check_container(v.val.binary.data, rel);
	}
	return found;
}

/*
 * FollowPayloadCheck
 *		Raise an error unless payload (a rule's "payload" member, not null)
 *		is a valid template for table rel (NULL: columns are not checked).
 *		Returns FOLLOW_PAYLOAD_CONSTANT when it has no placeholder (the
 *		payload is then the event's payload as it stands),
 *		FOLLOW_PAYLOAD_WHOLE when it is one placeholder standing for the
 *		whole payload, FOLLOW_PAYLOAD_TEMPLATE otherwise.
 */
FollowPayloadShape
FollowPayloadCheck(const JsonbValue *payload, Relation rel)
{
	JsonbValue	key;
	JsonbValue	arg;

	if (payload->type != jbvBinary || !JsonContainerIsObject(payload->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("follow-action rule payload must be a JSON object"),
				 errhint("Take values from the row with {\"$new\": \"column\"}, {\"$old\": \"column\"} and {\"$pk\": true}.")));
	if (!check_container(payload->val.binary.data, rel))
		return FOLLOW_PAYLOAD_CONSTANT;
	if (FollowPlaceholderOf(payload->val.binary.data, &key, &arg) != FOLLOW_PH_NONE)
		return FOLLOW_PAYLOAD_WHOLE;
	return FOLLOW_PAYLOAD_TEMPLATE;
}

/* ------------------------------------------------------------------------
 * What a template reads, for the trigger's column-privilege check
 * ------------------------------------------------------------------------
 */

static void
collect_reads(const JsonbValue *tv, TupleDesc tupdesc, FollowPayloadReads *reads)
{
	JsonbContainer *c;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbValue	key;
	JsonbValue	arg;
	JsonbIteratorToken tok;
	AttrNumber	attnum;

	check_stack_depth();
	if (tv->type != jbvBinary)
		return;
	c = tv->val.binary.data;
	switch (FollowPlaceholderOf(c, &key, &arg))
	{
		case FOLLOW_PH_NONE:
			break;
		case FOLLOW_PH_PK:
			reads->pk = true;
			return;
		case FOLLOW_PH_NEW:
		case FOLLOW_PH_OLD:
			if (arg.type == jbvString &&
				(attnum = FollowFindColumn(tupdesc, arg.val.string.val,
										   arg.val.string.len)) != InvalidAttrNumber)
			{
				reads->columns = reads->columns
					? repalloc(reads->columns, sizeof(AttrNumber) * (reads->ncolumns + 1))
					: palloc(sizeof(AttrNumber));
				reads->columns[reads->ncolumns++] = attnum;
			}
			return;
		case FOLLOW_PH_LITERAL:
		case FOLLOW_PH_UNKNOWN:
			return;
	}
	it = JsonbIteratorInit(c);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		if (tok == WJB_VALUE || tok == WJB_ELEM)
			collect_reads(&v, tupdesc, reads);
}

/*
 * FollowPayloadColumns
 *		The columns of tupdesc that template payload (NULL or JSON null: the
 *		default payload) reads: its $new and $old columns, and whether it
 *		reads the primary key.  Unknown columns are left to the expansion,
 *		which reports them.
 */
void
FollowPayloadColumns(const JsonbValue *payload, TupleDesc tupdesc,
					 FollowPayloadReads *reads)
{
	reads->columns = NULL;
	reads->ncolumns = 0;
	reads->pk = false;
	if (payload == NULL || payload->type == jbvNull)
		reads->pk = true;		/* the default payload has "pk" */
	else
		collect_reads(payload, tupdesc, reads);
}

/* ------------------------------------------------------------------------
 * Expansion, per row
 * ------------------------------------------------------------------------
 */

static bool expand(const FollowPayloadRow *row, JsonbParseState **st,
				   JsonbIteratorToken seq, JsonbValue *tv, FollowFailure *failure);

/* Push the value a placeholder stands for. */
static bool
expand_placeholder(const FollowPayloadRow *row, JsonbParseState **st,
				   JsonbIteratorToken seq, FollowPlaceholder kind,
				   JsonbValue *key, JsonbValue *arg, FollowFailure *failure)
{
	int			attnum;
	JsonbValue	v;

	switch (kind)
	{
		case FOLLOW_PH_NEW:
		case FOLLOW_PH_OLD:
			if (arg->type != jbvString ||
				(attnum = FollowFindColumn(row->tupdesc, arg->val.string.val,
										   arg->val.string.len)) == InvalidAttrNumber)
			{
				failure->sqlerrcode = ERRCODE_UNDEFINED_COLUMN;
				failure->message = psprintf("The payload placeholder %.*s names no column of the table.",
											key->val.string.len, key->val.string.val);
				return false;
			}
			row->column_value(row->arg, attnum, kind == FOLLOW_PH_NEW, &v);
			pushJsonbValue(st, seq, &v);
			return true;
		case FOLLOW_PH_PK:
			if (!row->push_pk(row->arg, st, seq))
			{
				failure->sqlerrcode = ERRCODE_INVALID_COLUMN_REFERENCE;
				failure->message = pstrdup("The payload uses $pk but the table has no primary key.");
				return false;
			}
			return true;
		case FOLLOW_PH_LITERAL:
			pushJsonbValue(st, seq, arg);
			return true;
		case FOLLOW_PH_UNKNOWN:
		case FOLLOW_PH_NONE:
			break;
	}
	failure->sqlerrcode = ERRCODE_INVALID_PARAMETER_VALUE;
	failure->message = psprintf("The payload has the unknown placeholder \"%.*s\".",
								Min(key->val.string.len, 63), key->val.string.val);
	return false;
}

/* Push template value tv (at position seq), replacing placeholders. */
static bool
expand(const FollowPayloadRow *row, JsonbParseState **st, JsonbIteratorToken seq,
	   JsonbValue *tv, FollowFailure *failure)
{
	JsonbContainer *c;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbValue	key;
	JsonbValue	arg;
	JsonbIteratorToken tok;
	FollowPlaceholder kind;

	check_stack_depth();

	if (tv->type != jbvBinary)
	{
		pushJsonbValue(st, seq, tv);
		return true;
	}
	c = tv->val.binary.data;
	if ((kind = FollowPlaceholderOf(c, &key, &arg)) != FOLLOW_PH_NONE)
		return expand_placeholder(row, st, seq, kind, &key, &arg, failure);

	it = JsonbIteratorInit(c);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		switch (tok)
		{
			case WJB_BEGIN_OBJECT:
			case WJB_END_OBJECT:
			case WJB_BEGIN_ARRAY:
			case WJB_END_ARRAY:
				pushJsonbValue(st, tok, NULL);
				break;
			case WJB_KEY:
				pushJsonbValue(st, WJB_KEY, &v);
				break;
			case WJB_VALUE:
			case WJB_ELEM:
				if (!expand(row, st, tok, &v, failure))
					return false;
				break;
			case WJB_DONE:
				break;
		}
	}
	return true;
}

/* Push the key "name" of an object being built. */
static void
push_key(JsonbParseState **st, const char *name)
{
	JsonbValue	key;

	key.type = jbvString;
	key.val.string.val = (char *) name;
	key.val.string.len = strlen(name);
	pushJsonbValue(st, WJB_KEY, &key);
}

/* The default payload {"table", "pk", "field", "old", "new"}. */
static Jsonb *
default_payload(const FollowPayloadRow *row, const FollowRule *rule,
				const JsonbValue *oldv, const JsonbValue *newv)
{
	JsonbParseState *st = NULL;
	JsonbValue	v;

	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	push_key(&st, "table");
	v.type = jbvString;
	v.val.string.val = (char *) row->qualname;
	v.val.string.len = strlen(row->qualname);
	pushJsonbValue(&st, WJB_VALUE, &v);
	push_key(&st, "pk");
	if (!row->push_pk(row->arg, &st, WJB_VALUE))
	{
		v.type = jbvNull;
		pushJsonbValue(&st, WJB_VALUE, &v);
	}
	push_key(&st, "field");
	v.type = jbvString;
	v.val.string.val = (char *) rule->field;
	v.val.string.len = rule->field_len;
	pushJsonbValue(&st, WJB_VALUE, &v);
	push_key(&st, "old");
	pushJsonbValue(&st, WJB_VALUE, unconstify(JsonbValue *, oldv));
	push_key(&st, "new");
	pushJsonbValue(&st, WJB_VALUE, unconstify(JsonbValue *, newv));
	return JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL));
}

/*
 * FollowPayloadBuild
 *		The payload of a firing rule for the row: its template with the
 *		placeholders replaced, or the default payload.  NULL, with failure
 *		filled, when it cannot be built or is not an object.
 */
Jsonb *
FollowPayloadBuild(const FollowPayloadRow *row, const FollowRule *rule,
				   const JsonbValue *oldv, const JsonbValue *newv,
				   FollowFailure *failure)
{
	JsonbParseState *st = NULL;
	JsonbValue *tmpl = FollowGetMember(rule->obj, "payload");
	JsonbValue *root;
	Jsonb	   *wrapped;

	if (tmpl == NULL || tmpl->type == jbvNull)
		return default_payload(row, rule, oldv, newv);

	/* Build [payload] so that a placeholder may stand for the whole payload. */
	pushJsonbValue(&st, WJB_BEGIN_ARRAY, NULL);
	if (!expand(row, &st, WJB_ELEM, tmpl, failure))
		return NULL;
	wrapped = JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_ARRAY, NULL));
	root = getIthJsonbValueFromContainer(&wrapped->root, 0);
	if (root->type != jbvBinary || !JsonContainerIsObject(root->val.binary.data))
	{
		failure->sqlerrcode = ERRCODE_INVALID_PARAMETER_VALUE;
		failure->message = pstrdup("The payload is not a JSON object once its placeholders are replaced.");
		return NULL;
	}
	return JsonbValueToJsonb(root);
}
