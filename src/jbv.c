/*-------------------------------------------------------------------------
 *
 * jbv.c
 *		Allocation-free access to jsonb containers, JSON equality, canonical
 *		hashing, type names, JSON pointers and the small string helpers the
 *		validator, follow actions, the registry and the compatibility diff
 *		share.
 *
 * The exported jsonb API (getIthJsonbValueFromContainer, iterators) pallocs
 * a JsonbValue per call; validation touches every value, so we read the
 * JEntry array directly, exactly like jsonb_util.c's fillJsonbValue.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"

#include "jbv.h"

/*
 * JbvObjectMember
 *		Member key of v into *out (pointing into v): false when v is not an
 *		object or has no such member.
 */
bool
JbvObjectMember(const JsonbValue *v, const char *key, JsonbValue *out)
{
	return v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data) &&
		JbvFindKey(v->val.binary.data, key, strlen(key), out);
}

/*
 * The value of a whole jsonb datum: a scalar for a scalar root, else a
 * jbvBinary pointing at the root container.  *out points into jb.
 */
void
JbvRootValue(Jsonb *jb, JsonbValue *out)
{
	if (JB_ROOT_IS_SCALAR(jb))
		JbvGetElem(&jb->root, 0, out);
	else
	{
		out->type = jbvBinary;
		out->val.binary.data = &jb->root;
		out->val.binary.len = VARSIZE(jb) - VARHDRSZ;
	}
}

/* Element i of an array container (also works on the raw-scalar root). */
void
JbvGetElem(JsonbContainer *c, int i, JsonbValue *out)
{
	int			n = JsonContainerSize(c);
	char	   *base = (char *) &c->children[n];

	JbvFillValue(c, i, base, getJsonbOffset(c, i), out);
}

/* Pair i of an object container. */
void
JbvGetPair(JsonbContainer *c, int i, JsonbValue *key, JsonbValue *val)
{
	int			n = JsonContainerSize(c);
	char	   *base = (char *) &c->children[n * 2];

	JbvFillValue(c, i, base, getJsonbOffset(c, i), key);
	JbvFillValue(c, i + n, base, getJsonbOffset(c, i + n), val);
}

/* Start a sequential walk of an array or object container. */
void
JbvIterInit(JbvIter *it, JsonbContainer *c)
{
	it->c = c;
	it->n = JsonContainerSize(c);
	it->i = 0;
	it->object = JsonContainerIsObject(c);
	it->koff = 0;
	if (it->object)
	{
		it->base = (char *) &c->children[it->n * 2];
		it->voff = it->n > 0 ? JbvOffset(c, it->n) : 0;
	}
	else
	{
		it->base = (char *) &c->children[it->n];
		it->voff = 0;
	}
}

/*
 * Binary search for a key in an object container; true and *out filled
 * when found.  No allocation.
 */
bool
JbvFindKey(JsonbContainer *c, const char *key, int len, JsonbValue *out)
{
	int			n = JsonContainerSize(c);
	char	   *base = (char *) &c->children[n * 2];
	int			lo = 0,
				hi = n;

	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;
		uint32		off = getJsonbOffset(c, mid);
		uint32		klen = getJsonbLength(c, mid);
		int			cmp = JbvKeyCmp(base + off, klen, key, len);

		if (cmp == 0)
		{
			JbvFillValue(c, mid + n, base, getJsonbOffset(c, mid + n), out);
			return true;
		}
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

const char *
JbvTypeName(const JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvBool:
			return "boolean";
		case jbvString:
			return "string";
		case jbvNumeric:
			return JbvIsInteger(v->val.numeric) ? "integer" : "number";
		case jbvBinary:
			return JsonContainerIsObject(v->val.binary.data) ? "object" : "array";
		default:
			return "unknown";
	}
}

/*
 * The slow paths of JbvIsInteger / JbvNumCmp (jsonschema.h):
 * numerics the direct reader does not handle.
 */
bool
JbvIsIntegerSlow(Numeric n)
{
	return DatumGetInt32(DirectFunctionCall1(numeric_min_scale,
											 NumericGetDatum(n))) == 0;
}

int
JbvNumCmpSlow(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp,
											 NumericGetDatum(a),
											 NumericGetDatum(b)));
}

/*
 * JbvFormatVA
 *		fmt with args, palloc'd: the message builder of the variadic error
 *		helpers (validator, compiler, follow-action rules).
 */
char *
JbvFormatVA(const char *fmt, va_list args)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (;;)
	{
		va_list		copy;
		int			needed;

		va_copy(copy, args);
		needed = appendStringInfoVA(&buf, fmt, copy);
		va_end(copy);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	return buf.data;
}

/* Length in characters (code points in a UTF-8 database) */
int64
JbvStrLen(const char *s, int len)
{
	if (GetDatabaseEncoding() == PG_UTF8)
	{
		int64		n = 0;
		int			i;

		for (i = 0; i < len; i++)
		{
			if (unlikely((i & 0xFFFF) == 0xFFFF))
				CHECK_FOR_INTERRUPTS();
			if (((unsigned char) s[i] & 0xC0) != 0x80)
				n++;
		}
		return n;
	}
	return pg_mbstrlen_with_len(s, len);
}

static bool
containers_equal(JsonbContainer *a, JsonbContainer *b)
{
	int			n = JsonContainerSize(a);
	int			i;

	if (JsonContainerIsObject(a) != JsonContainerIsObject(b) ||
		n != (int) JsonContainerSize(b))
		return false;

	check_stack_depth();
	CHECK_FOR_INTERRUPTS();

	if (JsonContainerIsObject(a))
	{
		for (i = 0; i < n; i++)
		{
			JsonbValue	ka,
						va,
						kb,
						vb;

			JbvGetPair(a, i, &ka, &va);
			JbvGetPair(b, i, &kb, &vb);
			if (ka.val.string.len != kb.val.string.len ||
				memcmp(ka.val.string.val, kb.val.string.val, ka.val.string.len) != 0)
				return false;
			if (!JbvEqual(&va, &vb))
				return false;
		}
	}
	else
	{
		for (i = 0; i < n; i++)
		{
			JsonbValue	ea,
						eb;

			JbvGetElem(a, i, &ea);
			JbvGetElem(b, i, &eb);
			if (!JbvEqual(&ea, &eb))
				return false;
		}
	}
	return true;
}

/* JSON equality: numbers by value (1 == 1.0), objects regardless of order */
bool
JbvEqual(const JsonbValue *a, const JsonbValue *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type)
	{
		case jbvNull:
			return true;
		case jbvBool:
			return a->val.boolean == b->val.boolean;
		case jbvString:
			return a->val.string.len == b->val.string.len &&
				memcmp(a->val.string.val, b->val.string.val, a->val.string.len) == 0;
		case jbvNumeric:
			return JbvNumCmp(a->val.numeric, b->val.numeric) == 0;
		case jbvBinary:
			return containers_equal(a->val.binary.data, b->val.binary.data);
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) a->type);
	}
	return false;
}

/* A hash consistent with JbvEqual */
uint32
JbvHash(const JsonbValue *v)
{
	uint32		h = 0;

	if (v->type != jbvBinary)
	{
		JsonbHashScalarValue(v, &h);
		return h;
	}
	else
	{
		JsonbContainer *c = v->val.binary.data;
		int			n = JsonContainerSize(c);
		int			i;

		check_stack_depth();
		CHECK_FOR_INTERRUPTS();
		if (JsonContainerIsObject(c))
		{
			h = 0x5bd1e995;
			for (i = 0; i < n; i++)
			{
				JsonbValue	k,
							val;

				JbvGetPair(c, i, &k, &val);
				h = hash_combine(h, JbvHash(&k));
				h = hash_combine(h, JbvHash(&val));
			}
		}
		else
		{
			h = 0x9e3779b9;
			for (i = 0; i < n; i++)
			{
				JsonbValue	e;

				JbvGetElem(c, i, &e);
				h = hash_combine(h, JbvHash(&e));
			}
		}
	}
	return h;
}

/* Append s as one JSON Pointer reference token, "/" included (RFC 6901) */
void
JbvAppendPointerToken(StringInfo buf, const char *s, int len)
{
	int			i;

	appendStringInfoChar(buf, '/');
	for (i = 0; i < len; i++)
	{
		if (s[i] == '~')
			appendBinaryStringInfo(buf, "~0", 2);
		else if (s[i] == '/')
			appendBinaryStringInfo(buf, "~1", 2);
		else
			appendStringInfoChar(buf, s[i]);
	}
}

/* A short JSON rendering of a value for messages, cut at about maxlen bytes */
char *
JbvValueToText(const JsonbValue *v, int maxlen)
{
	StringInfoData buf;
	char	   *s;

	initStringInfo(&buf);
	if (v->type == jbvBinary)
		JsonbToCString(&buf, v->val.binary.data, v->val.binary.len);
	else
	{
		Jsonb	   *jb = JsonbValueToJsonb((JsonbValue *) v);

		JsonbToCString(&buf, &jb->root, VARSIZE(jb));
	}
	s = buf.data;
	if (buf.len > maxlen)
	{
		int			cut = pg_mbcliplen(s, buf.len, maxlen);

		s[cut] = '\0';
		s = psprintf("%s...", s);
	}
	return s;
}
