/*-------------------------------------------------------------------------
 *
 * jbv.h
 *		Reading jsonb without allocating: container access, key lookup,
 *		JSON equality and hashing, type names, JSON pointers, numerics
 *		(jbv.c).  Used by the JSON Schema validator, follow actions, the
 *		registry and the compatibility diff.
 *
 * What is copied from PostgreSQL 15's src/backend/utils/adt/jsonb_util.c
 * (fillJsonbValue, getJsonbOffset, lengthCompareJsonbStringValue) and
 * numeric.c (the short/long header layout of NumericData) carries the
 * banner "copied from PostgreSQL 15" below and in jbv.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CELERYSALT_JBV_H
#define CELERYSALT_JBV_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

/* Sequential access to the children of an array or object container */
typedef struct JbvIter
{
	JsonbContainer *c;
	char	   *base;
	int			n;
	int			i;
	uint32		koff;
	uint32		voff;
	bool		object;
} JbvIter;

/* Is v the JSON string s? */
static inline bool
JbvStringIs(const JsonbValue *v, const char *s)
{
	return v->type == jbvString && v->val.string.len == (int) strlen(s) &&
		memcmp(v->val.string.val, s, v->val.string.len) == 0;
}

/* Is v a JSON array (not a raw scalar's pseudo-array)? */
static inline bool
JbvIsArray(const JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data) &&
		!JsonContainerIsScalar(v->val.binary.data);
}

/* jbv.c */
extern bool JbvObjectMember(const JsonbValue *v, const char *key, JsonbValue *out);
extern void JbvIterInit(JbvIter *it, JsonbContainer *c);
extern void JbvRootValue(Jsonb *jb, JsonbValue *out);
extern void JbvGetElem(JsonbContainer *c, int i, JsonbValue *out);
extern void JbvGetPair(JsonbContainer *c, int i, JsonbValue *key,
							  JsonbValue *val);
extern bool JbvFindKey(JsonbContainer *c, const char *key, int len,
							  JsonbValue *out);
extern bool JbvEqual(const JsonbValue *a, const JsonbValue *b);
extern uint32 JbvHash(const JsonbValue *v);
extern const char *JbvTypeName(const JsonbValue *v);
extern bool JbvIsIntegerSlow(Numeric n);
extern int	JbvNumCmpSlow(Numeric a, Numeric b);
extern int64 JbvStrLen(const char *s, int len);
extern char *JbvFormatVA(const char *fmt, va_list args) pg_attribute_printf(1, 0);
extern void JbvAppendPointerToken(StringInfo buf, const char *s, int len);
extern char *JbvValueToText(const JsonbValue *v, int maxlen);


/* ---- copied from PostgreSQL 15 (jsonb_util.c, numeric.c), made inline ---- */

/*
 * Fill *out with child 'index' of container c, whose data starts at
 * base_addr + offset.
 */
static pg_attribute_always_inline void
JbvFillValue(JsonbContainer *c, int index, char *base_addr, uint32 offset,
		   JsonbValue *out)
{
	JEntry		entry = c->children[index];
	uint32		len;

	if (JBE_HAS_OFF(entry))
		len = JBE_OFFLENFLD(entry) - offset;
	else
		len = JBE_OFFLENFLD(entry);

	if (JBE_ISNULL(entry))
		out->type = jbvNull;
	else if (JBE_ISSTRING(entry))
	{
		out->type = jbvString;
		out->val.string.val = base_addr + offset;
		out->val.string.len = len;
	}
	else if (JBE_ISNUMERIC(entry))
	{
		out->type = jbvNumeric;
		out->val.numeric = (Numeric) (base_addr + INTALIGN(offset));
	}
	else if (JBE_ISBOOL_TRUE(entry))
	{
		out->type = jbvBool;
		out->val.boolean = true;
	}
	else if (JBE_ISBOOL_FALSE(entry))
	{
		out->type = jbvBool;
		out->val.boolean = false;
	}
	else
	{
		Assert(JBE_ISCONTAINER(entry));
		out->type = jbvBinary;
		out->val.binary.data = (JsonbContainer *) (base_addr + INTALIGN(offset));
		out->val.binary.len = len - (INTALIGN(offset) - offset);
	}
}

/*
 * Offset of child index's data in container c: getJsonbOffset() of
 * jsonb_util.c, inline (it runs for every object the validator visits).
 */
static inline uint32
JbvOffset(const JsonbContainer *c, int index)
{
	uint32		offset = 0;
	int			i;

	for (i = index - 1; i >= 0; i--)
	{
		offset += JBE_OFFLENFLD(c->children[i]);
		if (JBE_HAS_OFF(c->children[i]))
			break;
	}
	return offset;
}

/*
 * Next pair (objects: key and value) or element (arrays: into *val, key
 * untouched) of a JbvIter.  false at the end.
 */
static pg_attribute_always_inline bool
JbvIterNext(JbvIter *it, JsonbValue *key, JsonbValue *val)
{
	if (it->i >= it->n)
		return false;
	if (it->object)
	{
		JbvFillValue(it->c, it->i, it->base, it->koff, key);
		JbvFillValue(it->c, it->i + it->n, it->base, it->voff, val);
		JBE_ADVANCE_OFFSET(it->koff, it->c->children[it->i]);
		JBE_ADVANCE_OFFSET(it->voff, it->c->children[it->i + it->n]);
	}
	else
	{
		JbvFillValue(it->c, it->i, it->base, it->koff, val);
		JBE_ADVANCE_OFFSET(it->koff, it->c->children[it->i]);
	}
	it->i++;
	return true;
}

/* The value of a hexadecimal digit (char or pg_wchar), or -1. */
static inline int
JbvHexValue(pg_wchar c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Are the len bytes at a and b equal?  Inline: keys are short. */
static inline bool
JbvBytesEqual(const char *a, const char *b, int len)
{
	uint64		x,
				y;

	for (; len >= 8; a += 8, b += 8, len -= 8)
	{
		memcpy(&x, a, 8);
		memcpy(&y, b, 8);
		if (x != y)
			return false;
	}
	if (len >= 4)
	{
		uint32		x4,
					y4;

		memcpy(&x4, a, 4);
		memcpy(&y4, b, 4);
		if (x4 != y4)
			return false;
		a += 4, b += 4, len -= 4;
	}
	for (; len > 0; a++, b++, len--)
		if (*a != *b)
			return false;
	return true;
}

/* jsonb's key order: shorter first, then bytewise (sign of the result only) */
static inline int
JbvKeyCmp(const char *a, int alen, const char *b, int blen)
{
	if (alen != blen)
		return alen < blen ? -1 : 1;
	if (JbvBytesEqual(a, b, alen))
		return 0;
	return memcmp(a, b, alen);
}

/*
 * Direct reads of the numeric on-disk format (stable since PostgreSQL 9.1,
 * mirrored from numeric.c): base-10000 digits, no leading or trailing zero
 * digits, a weight.  jsonb never stores NaN or infinities.  Inline: the
 * validator runs them for every number with "integer", minimum, maximum.
 */
#define JBV_NUM_SIGN_MASK	0xC000
#define JBV_NUM_NEG			0x4000
#define JBV_NUM_SHORT		0x8000
#define JBV_NUM_SPECIAL		0xC000
#define JBV_NUM_SHORT_SIGN_MASK			0x2000
#define JBV_NUM_SHORT_WEIGHT_SIGN_MASK	0x0040
#define JBV_NUM_SHORT_WEIGHT_MASK		0x003F

typedef struct JbvNumParts
{
	bool		neg;
	int			weight;
	int			ndigits;
	const int16 *digits;
} JbvNumParts;

static pg_attribute_always_inline bool
JbvNumDecode(Numeric n, JbvNumParts *p)
{
	const char *data = VARDATA_ANY(n);
	int			len = VARSIZE_ANY_EXHDR(n);
	uint16		header;

	memcpy(&header, data, sizeof(uint16));
	if ((header & JBV_NUM_SIGN_MASK) == JBV_NUM_SPECIAL)
		return false;
	if ((header & JBV_NUM_SIGN_MASK) == JBV_NUM_SHORT)
	{
		p->neg = (header & JBV_NUM_SHORT_SIGN_MASK) != 0;
		p->weight = (header & JBV_NUM_SHORT_WEIGHT_SIGN_MASK) ?
			(int) (~JBV_NUM_SHORT_WEIGHT_MASK | (header & JBV_NUM_SHORT_WEIGHT_MASK)) :
			(int) (header & JBV_NUM_SHORT_WEIGHT_MASK);
		p->digits = (const int16 *) (data + sizeof(uint16));
		p->ndigits = (len - sizeof(uint16)) / sizeof(int16);
	}
	else
	{
		int16		weight;

		memcpy(&weight, data + sizeof(uint16), sizeof(int16));
		p->neg = (header & JBV_NUM_SIGN_MASK) == JBV_NUM_NEG;
		p->weight = weight;
		p->digits = (const int16 *) (data + 2 * sizeof(uint16));
		p->ndigits = (len - 2 * sizeof(uint16)) / sizeof(int16);
	}
	return true;
}

/* Is the numeric a mathematical integer (1.0 is)? */
static pg_attribute_always_inline bool
JbvIsInteger(Numeric n)
{
	JbvNumParts	p;

	if (JbvNumDecode(n, &p))
		return p.ndigits == 0 || p.weight >= p.ndigits - 1;
	return JbvIsIntegerSlow(n);
}

/* Comparison of two decoded numerics: <0, 0, >0 */
static pg_attribute_always_inline int
JbvNumPartsCmp(const JbvNumParts *x, const JbvNumParts *y)
{
	int			sx = x->ndigits == 0 ? 0 : (x->neg ? -1 : 1);
	int			sy = y->ndigits == 0 ? 0 : (y->neg ? -1 : 1);
	int			cmp = 0;
	int			i;

	if (sx != sy)
		return sx < sy ? -1 : 1;
	if (sx == 0)
		return 0;
	/* same sign, both non-zero: compare absolute values */
	if (x->weight != y->weight)
		cmp = x->weight > y->weight ? 1 : -1;
	else
	{
		for (i = 0; i < x->ndigits && i < y->ndigits; i++)
			if (x->digits[i] != y->digits[i])
			{
				cmp = x->digits[i] > y->digits[i] ? 1 : -1;
				break;
			}
		if (cmp == 0 && x->ndigits != y->ndigits)
			cmp = x->ndigits > y->ndigits ? 1 : -1;
	}
	return sx > 0 ? cmp : -cmp;
}

/* numeric comparison: <0, 0, >0 */
static pg_attribute_always_inline int
JbvNumCmp(Numeric a, Numeric b)
{
	JbvNumParts	x,
				y;

	if (JbvNumDecode(a, &x) && JbvNumDecode(b, &y))
		return JbvNumPartsCmp(&x, &y);
	return JbvNumCmpSlow(a, b);
}

#endif							/* CELERYSALT_JBV_H */
