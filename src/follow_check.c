/*-------------------------------------------------------------------------
 *
 * follow_check.c
 *		Checking a follow-action rule when it is created:
 *		celerysalt_follow_action_check(rule jsonb, tbl regclass DEFAULT NULL),
 *		behind celerysalt_follow_action_rule() and the rules columns' CHECK
 *		constraints.
 *
 * The trigger (follow.c) tolerates a bad rule at run time by failing the
 * statement or recording the failure; this check refuses it up front, with
 * an error that names the member at fault.  Reading a rule and its
 * operands is follow_rules.c's, the payload template follow_payload.c's:
 * both halves use the same code, so what the check accepts is what the
 * trigger does.
 *
 *-------------------------------------------------------------------------
 */
#include "follow.h"
#include "jbv.h"
#include "event.h"

#include "access/relation.h"
#include "catalog/pg_type.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

PG_FUNCTION_INFO_V1(celerysalt_follow_action_check);

/* Members a rule may have; others are refused (a misspelt one would be ignored). */
static const char *const rule_members[] = {
	"field_name", "operator", "value", "from", "to", "topic", "payload",
	"version", "persist", "name"
};

/*
 * Members the TchuFollowActions mixin stores that have no meaning here: the
 * check accepts them with a NOTICE saying so, and the trigger ignores them.
 */
static const struct
{
	const char *name;
	const char *why;
}			ignored_members[] = {
	{"event_authorization",
	 "celerysalt does not use TchuFollowActions' event_authorization; put authorization fields in the payload."},
};

/* A short, printable excerpt of a string for messages. */
static char *
excerpt(const char *s, int len)
{
	return pnstrdup(s, Min(len, 63));
}

/* The member key of rule, or NULL when it is absent or JSON null. */
static JsonbValue *
member(Jsonb *rule, const char *key)
{
	JsonbValue *v = FollowGetMember(&rule->root, key);

	return (v == NULL || v->type == jbvNull) ? NULL : v;
}

/* Refuse members a rule does not have; say which ones are ignored. */
static void
check_member_names(Jsonb *rule)
{
	JsonbIterator *it = JsonbIteratorInit(&rule->root);
	JsonbValue	v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		bool		known = false;

		if (tok != WJB_KEY)
			continue;
		for (size_t i = 0; i < lengthof(rule_members); i++)
			known |= JbvStringIs(&v, rule_members[i]);
		for (size_t i = 0; i < lengthof(ignored_members) && !known; i++)
			if (JbvStringIs(&v, ignored_members[i].name))
			{
				ereport(NOTICE,
						(errmsg("follow-action rule member \"%s\" is ignored",
								ignored_members[i].name),
						 errdetail("%s", ignored_members[i].why)));
				known = true;
			}
		if (!known)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("follow-action rule has the unknown member \"%s\"",
							excerpt(v.val.string.val, v.val.string.len)),
					 errhint("Rule members are field_name, operator, value, from, to, topic, payload, version, persist and name.")));
	}
}

/* field_name, operator and persist: present (the first two) and well formed. */
static void
check_required(Jsonb *rule)
{
	JsonbValue *v;

	/* required members first, so that the message names what is missing */
	if (member(rule, "field_name") == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("follow-action rule has no field_name"),
				 errhint("Name the column whose change the rule follows.")));
	if (member(rule, "operator") == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("follow-action rule has no operator"),
				 errhint("Operators are " FOLLOW_OPERATOR_LIST ".")));
	if (member(rule, "topic") == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("follow-action rule has no topic"),
				 errhint("Give the topic the event is published to, such as \"order.paid\".")));

	v = member(rule, "field_name");
	if (v->type != jbvString || v->val.string.len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("follow-action rule field_name must be a non-empty string")));
	v = member(rule, "operator");
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("follow-action rule operator must be a string")));
	if (FollowParseOperator(v->val.string.val, v->val.string.len) == FOLLOW_OP_INVALID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown follow-action operator \"%s\"",
						excerpt(v->val.string.val, v->val.string.len)),
				 errhint("Operators are " FOLLOW_OPERATOR_LIST ".")));
	if (FollowParsePersist(FollowGetMember(&rule->root, "persist")) == FOLLOW_PERSIST_INVALID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid follow-action persist value"),
				 errdetail("persist must be \"True\", \"False\", \"ForceFalse\", true or false."),
				 errhint("Use \"True\" to keep the rule, \"False\" to remove it once it fired, \"ForceFalse\" to remove it at the next UPDATE.")));
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

/*
 * Raise an error when a rule operand can never equal a value of column
 * attnum of rel: its JSON type differs from the one the column's values
 * have.  Lists are checked element by element.
 */
static void
check_operand_type(Relation rel, int attnum, const char *what,
				   const JsonbValue *v, bool list)
{
	const char *coltype;
	const char *vtype;

	if (v == NULL)
		return;
	if (list && JbvIsArray(v))
	{
		JsonbContainer *c = v->val.binary.data;

		for (int i = 0; i < (int) JsonContainerSize(c); i++)
			check_operand_type(rel, attnum, what,
							   getIthJsonbValueFromContainer(c, i), false);
		return;
	}
	coltype = column_json_type(rel, attnum);
	vtype = JbvTypeName(v);
	if (strcmp(vtype, "integer") == 0)
		vtype = "number";
	if (coltype == NULL || strcmp(vtype, "null") == 0 || strcmp(coltype, vtype) == 0)
		return;
	/* to_jsonb() makes strings of numeric and float NaN and infinities */
	if (strcmp(coltype, "number") == 0 &&
		(JbvStringIs(v, "NaN") || JbvStringIs(v, "Infinity") || JbvStringIs(v, "-Infinity")))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("follow-action rule %s can never match column \"%s\"",
					what, NameStr(TupleDescAttr(RelationGetDescr(rel), attnum - 1)->attname)),
			 errdetail("The column's values become JSON %ss, the rule's %s is a JSON %s.",
					   coltype, what, vtype),
			 errhint("Values compare as JSON: a number never equals a string (write 5, not \"5\").")));
}

/*
 * The field and the operands: the column exists in rel (when given), the
 * operands fit the operator and can match the column's values.
 */
static void
check_field_and_operands(Jsonb *rulejb, Relation rel)
{
	JsonbValue	elem;
	FollowRule	rule;
	FollowFailure failure;
	JsonbValue *value;
	JsonbValue *other;
	int			attnum = InvalidAttrNumber;

	elem.type = jbvBinary;
	elem.val.binary.data = &rulejb->root;
	elem.val.binary.len = VARSIZE(rulejb) - VARHDRSZ;
	if (!FollowReadRule(&elem, &rule, &failure))
		elog(ERROR, "follow-action rule could not be read: %s", failure.message);

	if (rel != NULL &&
		(attnum = FollowFindColumn(RelationGetDescr(rel), rule.field,
								   rule.field_len)) == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" named by the follow-action rule does not exist in table \"%s\"",
						excerpt(rule.field, rule.field_len), RelationGetRelationName(rel))));

	if (!FollowRuleOperands(&rule, &value, &other, &failure))
		ereport(ERROR,
				(errcode(failure.sqlerrcode),
				 errmsg("invalid follow-action rule"),
				 errdetail_internal("%s", failure.message)));
	if (value == NULL && FollowGetMember(rule.obj, "value") != NULL)
		ereport(NOTICE,
				(errmsg("follow-action rule member \"value\" is ignored"),
				 errdetail("The operator takes no value; a null value, as TchuFollowActions stores, means none.")));
	if (attnum != InvalidAttrNumber)
	{
		bool		list = !(rule.op == FOLLOW_OP_GT || rule.op == FOLLOW_OP_GTE ||
							 rule.op == FOLLOW_OP_LT || rule.op == FOLLOW_OP_LTE);

		check_operand_type(rel, attnum, "value", value, list);
		check_operand_type(rel, attnum,
						   rule.op == FOLLOW_OP_CHANGED_FROM ? "to" : "from", other, true);
	}
}

/* topic, version and name; returns the topic, and the version in *version. */
static char *
check_names(Jsonb *rule, const char **version)
{
	JsonbValue *topic = member(rule, "topic");
	JsonbValue *v;
	char	   *topic_str;

	if (topic->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("follow-action rule topic must be a string")));
	topic_str = pnstrdup(topic->val.string.val, topic->val.string.len);
	EventCheckName(EVENT_NAME_TOPIC, topic_str);

	*version = NULL;
	if ((v = member(rule, "version")) != NULL)
	{
		if (v->type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("follow-action rule version must be a string")));
		*version = pnstrdup(v->val.string.val, v->val.string.len);
		EventCheckName(EVENT_NAME_VERSION, *version);
	}

	if ((v = member(rule, "name")) != NULL &&
		(v->type != jbvString || v->val.string.len > 255))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("follow-action rule name must be a string of at most 255 bytes")));
	return topic_str;
}

/*
 * The payload template; a constant payload is the event's payload, checked
 * as a publish would check it (shape, size, the registered schema).
 */
static void
check_payload(Jsonb *rule, Relation rel, const char *topic, const char *version)
{
	JsonbValue *payload = member(rule, "payload");
	Jsonb	   *pjb;

	if (payload == NULL)
		return;
	switch (FollowPayloadCheck(payload, rel))
	{
		case FOLLOW_PAYLOAD_CONSTANT:
			pjb = JsonbValueToJsonb(payload);
			EventCheckPayload(pjb);
			if (celerysalt_publish_validator != NULL)
				(void) celerysalt_publish_validator(topic, pjb, version);
			break;
		case FOLLOW_PAYLOAD_TEMPLATE:
			EventCheckPayload(JsonbValueToJsonb(payload));	/* shape and size */
			break;
		case FOLLOW_PAYLOAD_WHOLE:
			break;
	}
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
	Jsonb	   *rule;
	Relation	rel = NULL;
	char	   *topic;
	const char *version;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("follow-action rule must not be null")));
	rule = PG_GETARG_JSONB_P(0);
	if (!PG_ARGISNULL(1))
		rel = relation_open(PG_GETARG_OID(1), AccessShareLock);

	if (JB_ROOT_IS_SCALAR(rule) || !JB_ROOT_IS_OBJECT(rule))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("follow-action rule must be a JSON object"),
				 errhint("Build rules with celerysalt_follow_action_rule().")));

	check_member_names(rule);
	check_required(rule);
	check_field_and_operands(rule, rel);
	topic = check_names(rule, &version);
	check_payload(rule, rel, topic, version);

	if (rel != NULL)
		relation_close(rel, AccessShareLock);
	PG_RETURN_JSONB_P(rule);
}
