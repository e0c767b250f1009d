/*-------------------------------------------------------------------------
 *
 * follow.h
 *		What follow.c (the row trigger) and follow_rules.c (reading,
 *		comparing and checking rules) share.  Only these two files include
 *		it.
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

/*
 * A rule as the trigger reads it, pointing into the rules column's jsonb
 * (nothing is copied).  value/from/to are NULL when the member is absent.
 */
/* Why a rule could not be evaluated or published. */
typedef struct FollowFailure
{
	int			sqlerrcode;
	char	   *message;		/* palloc'd, one line */
} FollowFailure;

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

/* ---- follow_rules.c ---- */
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
extern bool FollowIsPlaceholder(JsonbContainer *obj, JsonbValue *key,
								JsonbValue *arg);

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
