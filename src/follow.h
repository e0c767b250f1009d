/*-------------------------------------------------------------------------
 *
 * follow.h
 *		What the follow-action files share, bottom up: follow_rules.c
 *		(reading and comparing rules), follow_payload.c (the payload-template
 *		language), then follow_check.c (checking a rule when it is created)
 *		and follow.c (the row trigger).  Only these four files include it.
 *
 * docs/follow-actions.md describes the rule format and its semantics.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CELERYSALT_FOLLOW_H
#define CELERYSALT_FOLLOW_H

#include "celerysalt.h"

#include "access/tupdesc.h"
#include "fmgr.h"
#include "utils/jsonb.h"
#include "utils/relcache.h"
#include "jbv.h"

typedef enum FollowOp
{
	FOLLOW_OP_INVALID = 0,
	FOLLOW_OP_EQL,
	FOLLOW_OP_NOT_EQL,
	FOLLOW_OP_UPDATED,
	FOLLOW_OP_DELETED,
	FOLLOW_OP_CHANGED_FROM,
	FOLLOW_OP_CHANGED_TO,
	FOLLOW_OP_GT,
	FOLLOW_OP_GTE,
	FOLLOW_OP_LT,
	FOLLOW_OP_LTE,
	FOLLOW_OP_IN,
	FOLLOW_OP_NOT_IN,
	FOLLOW_OP_IS_NULL,
	FOLLOW_OP_IS_NOT_NULL
} FollowOp;

typedef enum FollowPersist
{
	FOLLOW_PERSIST_INVALID = 0,
	FOLLOW_PERSIST_TRUE,		/* "True" or true: keep the rule */
	FOLLOW_PERSIST_FALSE,		/* "False" or false: remove it once it fired */
	FOLLOW_PERSIST_FORCE_FALSE	/* "ForceFalse": remove it at the next UPDATE */
} FollowPersist;

/* Why a rule could not be evaluated or published. */
typedef struct FollowFailure
{
	int			sqlerrcode;
	char	   *message;		/* palloc'd, one line */
} FollowFailure;

/*
 * A rule as the trigger reads it, pointing into the rules column's jsonb
 * (nothing is copied).  value/from/to are NULL when the member is absent.
 */
typedef struct FollowRule
{
	JsonbContainer *obj;		/* the rule object */
	const char *field;			/* field_name, not NUL-terminated */
	int			field_len;
	FollowOp	op;
	FollowPersist persist;
	JsonbValue *value;			/* "value" */
	JsonbValue *other;			/* "to" of changed_from, "from" of changed_to */
	bool		operands_ok;	/* value and other fit the operator ... */
	FollowFailure operands_failure; /* ... or why not */

	/*
	 * The values value and other stand for, read once when the rule is read
	 * (a list is its elements, anything else itself): evaluation compares
	 * against these arrays instead of walking the jsonb each row.
	 */
	JsonbValue *value_alts;
	int			nvalue_alts;
	JsonbValue *other_alts;
	int			nother_alts;
} FollowRule;

/*
 * How one column's values become JSON (follow_rules.c fills it lazily and
 * keeps it in the trigger's relation cache).
 */
typedef enum FollowKind
{
	FOLLOW_KIND_UNSET = 0,
	FOLLOW_KIND_BOOL,
	FOLLOW_KIND_INT2,
	FOLLOW_KIND_INT4,
	FOLLOW_KIND_INT8,
	FOLLOW_KIND_NUMERIC,
	FOLLOW_KIND_TEXT,			/* text, varchar: the string itself */
	FOLLOW_KIND_JSONB,
	FOLLOW_KIND_GENERIC			/* to_jsonb() */
} FollowKind;

typedef struct FollowColumn
{
	FollowKind	kind;
	FmgrInfo	to_jsonb;		/* set up for FOLLOW_KIND_GENERIC only */
} FollowColumn;

/* The operators, for messages. */
#define FOLLOW_OPERATOR_LIST "eql, not_eql, updated, deleted, changed_from, changed_to, gt, gte, lt, lte, in, not_in, is_null, is_not_null"

/* ---- follow_rules.c ---- */
extern FollowOp FollowParseOperator(const char *name, int len);
extern FollowPersist FollowParsePersist(JsonbValue *v);
extern bool FollowRuleOperands(const FollowRule *rule, JsonbValue **value,
							   JsonbValue **other, FollowFailure *failure);
extern JsonbValue *FollowGetMember(JsonbContainer *obj, const char *key);
extern bool FollowReadRule(JsonbValue *elem, FollowRule *rule,
						   FollowFailure *failure);
extern int	FollowFindColumn(TupleDesc tupdesc, const char *name, int len);
extern void FollowColumnInit(FollowColumn *col, Oid typid, MemoryContext cxt);
extern void FollowDatumToValue(FollowColumn *col, Datum value, bool isnull,
							   JsonbValue *out);
extern bool FollowRuleMatches(const FollowRule *rule, const JsonbValue *oldv,
							  const JsonbValue *newv, bool *matches,
							  FollowFailure *failure);

/* ---- follow_payload.c: the payload-template language ---- */
typedef enum FollowPlaceholder
{
	FOLLOW_PH_NONE = 0,			/* not a placeholder */
	FOLLOW_PH_NEW,				/* {"$new": "column"} */
	FOLLOW_PH_OLD,				/* {"$old": "column"} */
	FOLLOW_PH_PK,				/* {"$pk": true} */
	FOLLOW_PH_LITERAL,			/* {"$literal": value} */
	FOLLOW_PH_UNKNOWN			/* {"$anything else": ...} */
} FollowPlaceholder;

typedef enum FollowPayloadShape
{
	FOLLOW_PAYLOAD_CONSTANT,	/* no placeholder: the payload as it stands */
	FOLLOW_PAYLOAD_WHOLE,		/* one placeholder is the whole payload */
	FOLLOW_PAYLOAD_TEMPLATE		/* an object with placeholders inside */
} FollowPayloadShape;

/* The columns a template reads (palloc'd), for the privilege check. */
typedef struct FollowPayloadReads
{
	AttrNumber *columns;		/* $new and $old columns */
	int			ncolumns;
	bool		pk;				/* $pk, or the default payload */
} FollowPayloadReads;

/* The row a payload is built from, as the trigger presents it. */
typedef struct FollowPayloadRow
{
	TupleDesc	tupdesc;
	const char *qualname;		/* schema.table, for the default payload */
	void	   *arg;			/* passed to the callbacks */
	/* the JSON value of column attnum of the new or old row */
	void		(*column_value) (void *arg, int attnum, bool new_row,
								 JsonbValue *out);
	/* push the new row's primary key at seq; false when there is none */
	bool		(*push_pk) (void *arg, JsonbParseState **st,
							JsonbIteratorToken seq);
} FollowPayloadRow;

extern FollowPlaceholder FollowPlaceholderOf(JsonbContainer *obj,
											 JsonbValue *key, JsonbValue *arg);
extern FollowPayloadShape FollowPayloadCheck(const JsonbValue *payload,
											 Relation rel);
extern void FollowPayloadColumns(const JsonbValue *payload, TupleDesc tupdesc,
								 FollowPayloadReads *reads);
extern Jsonb *FollowPayloadBuild(const FollowPayloadRow *row,
								 const FollowRule *rule,
								 const JsonbValue *oldv, const JsonbValue *newv,
								 FollowFailure *failure);

/*
 * FollowValuesEqual
 *		JSON equality: same type and value; numbers numerically (1 = 1.0),
 *		strings byte by byte, arrays and objects structurally (object member
 *		order never matters).  Strings, the common case, are compared here.
 */
static inline bool
FollowValuesEqual(const JsonbValue *a, const JsonbValue *b)
{
	if (a->type == jbvString && b->type == jbvString)
		return a->val.string.len == b->val.string.len &&
			memcmp(a->val.string.val, b->val.string.val, a->val.string.len) == 0;
	if (a->type != b->type && a->type != jbvBinary && b->type != jbvBinary)
		return false;
	return JbvEqual(a, b);
}

#endif							/* CELERYSALT_FOLLOW_H */
