/*-------------------------------------------------------------------------
 *
 * jsonschema_regex.c
 *		Regular expressions for "pattern", "patternProperties" and the
 *		"regex" format: ECMA-262 syntax translated to PostgreSQL's ARE
 *		dialect and run by PostgreSQL's own regex engine (which checks for
 *		interrupts, so pathological patterns stay cancellable).
 *
 * Translation (ECMA-262 -> ARE), done on pg_wchar code points:
 *	\d \D \w \W		ASCII classes [0-9], [A-Za-z0-9_] (ECMA semantics, not locale)
 *	\s \S			ECMA white space and line terminators, listed explicitly
 *	\b \B			word boundary \y \Y (inside [...], \b is backspace)
 *	.				any character except \n \r U+2028 U+2029
 *	\p{L} \p{Lu} \p{Ll} \p{N} \p{Nd} (and long names), \P{...}
 *					[[:alpha:]] [[:upper:]] [[:lower:]] [[:digit:]] of the
 *					database's LC_CTYPE
 *	\xHH \uHHHH \u{H...} \cX \0 \t \n \v \f \r	literal code points
 *	(?<name>...)	plain capturing group
 *	\k<name>		numbered back reference \N to that group
 * Anything else ARE understands the same way is passed through.
 *
 * Simple patterns (the usual "^[0-9]{5}$", "^[A-Z]{3}-\d+$": a sequence of
 * literals and character classes with quantifiers, no groups or
 * alternation, see "the simple-pattern fast path" below) are also compiled
 * for a small matcher, linear in the string, that skips the regex engine's
 * set-up cost.  Both matchers check for interrupts.  Unsupported: other
 * \p classes, \D \S \W \P inside a bracket expression.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_collation.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"

#include "jsonschema_int.h"

typedef struct WBuf
{
	pg_wchar   *data;
	int			len;
	int			cap;
} WBuf;

static void
wput(WBuf *b, pg_wchar c)
{
	if (b->len >= b->cap)
	{
		b->cap = b->cap ? b->cap * 2 : 64;
		b->data = b->data ? repalloc(b->data, b->cap * sizeof(pg_wchar)) :
			palloc(b->cap * sizeof(pg_wchar));
	}
	b->data[b->len++] = c;
}

static void
wputs(WBuf *b, const char *s)
{
	while (*s)
		wput(b, (pg_wchar) (unsigned char) *s++);
}

/* put a code point as a literal: escape it if ARE would treat it specially */
static void
wput_literal(WBuf *b, pg_wchar c, bool in_class)
{
	if (c < 128 && strchr(in_class ? "\\]^-[" : "\\^$.|?*+()[]{}", (int) c) != NULL && c != 0)
		wput(b, '\\');
	if (c == 0)
	{
		wputs(b, "\\x0");
		return;
	}
	wput(b, c);
}

static const pg_wchar ecma_space[] = {
	0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0xA0, 0x1680,
	0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008,
	0x2009, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF, 0
};

static void
put_space_members(WBuf *b)
{
	const pg_wchar *p;

	for (p = ecma_space; *p; p++)
		wput(b, *p);
}

static bool
is_syntax_char(pg_wchar c)
{
	return c < 128 && c != 0 && strchr("^$\\.*+?()[]{}|/", (int) c) != NULL;
}

/*
 * State of one translation (translate and its helpers): the input, the
 * position of the next code point, what is open, and the output.
 */
typedef struct TranslateState
{
	const pg_wchar *in;
	int			n;				/* length of in */
	int			i;				/* next code point to read */
	bool		strict;			/* reject identity escapes of non-syntax
								 * characters */
	bool		in_class;		/* inside a bracket expression */
	int			depth;			/* open parentheses */
	int			ngroups;		/* capturing groups opened so far */
	struct
	{
		const pg_wchar *s;		/* NULL: an unnamed group */
		int			len;
	}			names[64];		/* names of the first 64 capturing groups */
	WBuf	   *out;
	const char *err;			/* set when a helper returns false */
} TranslateState;

#define UNSUPPORTED_IN_CLASS \
	"\\D, \\S, \\W and \\P are not supported inside a character class"

/* Record a syntax error for translate's caller; always returns false. */
static bool
translate_fail(TranslateState *st, const char *err)
{
	st->err = err;
	return false;
}

/* \d \D \w \W \s \S: ASCII digit and word classes, ECMA white space */
static bool
translate_class_escape(TranslateState *st, pg_wchar e)
{
	WBuf	   *out = st->out;

	switch (e)
	{
		case 'd':
			wputs(out, st->in_class ? "0-9" : "[0-9]");
			break;
		case 'D':
			if (st->in_class)
				return translate_fail(st, UNSUPPORTED_IN_CLASS);
			wputs(out, "[^0-9]");
			break;
		case 'w':
			wputs(out, st->in_class ? "A-Za-z0-9_" : "[A-Za-z0-9_]");
			break;
		case 'W':
			if (st->in_class)
				return translate_fail(st, UNSUPPORTED_IN_CLASS);
			wputs(out, "[^A-Za-z0-9_]");
			break;
		case 's':
			if (!st->in_class)
				wput(out, '[');
			put_space_members(out);
			if (!st->in_class)
				wput(out, ']');
			break;
		case 'S':
			if (st->in_class)
				return translate_fail(st, UNSUPPORTED_IN_CLASS);
			wputs(out, "[^");
			put_space_members(out);
			wput(out, ']');
			break;
	}
	return true;
}

/* \t \n \v \f \r \0 \cX \xHH: one literal code point */
static bool
translate_literal_escape(TranslateState *st, pg_wchar e)
{
	const pg_wchar *in = st->in;
	int			i = st->i;
	int			n = st->n;

	switch (e)
	{
		case 't':
			wput_literal(st->out, 0x09, st->in_class);
			break;
		case 'n':
			wput_literal(st->out, 0x0A, st->in_class);
			break;
		case 'v':
			wput_literal(st->out, 0x0B, st->in_class);
			break;
		case 'f':
			wput_literal(st->out, 0x0C, st->in_class);
			break;
		case 'r':
			wput_literal(st->out, 0x0D, st->in_class);
			break;
		case '0':
			if (i < n && in[i] >= '0' && in[i] <= '9')
				return translate_fail(st, "invalid octal escape");
			wput_literal(st->out, 0, st->in_class);
			break;
		case 'c':
			if (i < n && ((in[i] >= 'a' && in[i] <= 'z') ||
						  (in[i] >= 'A' && in[i] <= 'Z')))
			{
				wput_literal(st->out, in[i] % 32, st->in_class);
				st->i++;
			}
			else
				return translate_fail(st, "invalid control escape");
			break;
		case 'x':
			if (i + 1 < n && JbvHexValue(in[i]) >= 0 && JbvHexValue(in[i + 1]) >= 0)
			{
				wput_literal(st->out, JbvHexValue(in[i]) * 16 + JbvHexValue(in[i + 1]),
							 st->in_class);
				st->i += 2;
			}
			else
				return translate_fail(st, "invalid \\x escape");
			break;
	}
	return true;
}

/* The value of the four hexadecimal digits at p, or -1 if one is not. */
static int
hex4_value(const pg_wchar *p)
{
	if (JbvHexValue(p[0]) < 0 || JbvHexValue(p[1]) < 0 ||
		JbvHexValue(p[2]) < 0 || JbvHexValue(p[3]) < 0)
		return -1;
	return (JbvHexValue(p[0]) << 12) | (JbvHexValue(p[1]) << 8) |
		(JbvHexValue(p[2]) << 4) | JbvHexValue(p[3]);
}

/* \u{H...} or \uHHHH (two of them for a surrogate pair): one code point */
static bool
translate_unicode_escape(TranslateState *st)
{
	const pg_wchar *in = st->in;
	int			n = st->n;
	pg_wchar	v = 0;

	if (st->i < n && in[st->i] == '{')
	{
		int			nd = 0;

		st->i++;
		while (st->i < n && JbvHexValue(in[st->i]) >= 0 && nd < 7)
		{
			v = v * 16 + JbvHexValue(in[st->i]);
			st->i++;
			nd++;
		}
		if (st->i >= n || in[st->i] != '}' || nd == 0 || v > 0x10FFFF)
			return translate_fail(st, "invalid \\u{...} escape");
		st->i++;
	}
	else if (st->i + 3 < n && hex4_value(in + st->i) >= 0)
	{
		v = hex4_value(in + st->i);
		st->i += 4;
		/* a surrogate pair written as two escapes */
		if (v >= 0xD800 && v <= 0xDBFF && st->i + 5 < n && in[st->i] == '\\' &&
			in[st->i + 1] == 'u' && hex4_value(in + st->i + 2) >= 0)
		{
			pg_wchar	lo = hex4_value(in + st->i + 2);

			if (lo >= 0xDC00 && lo <= 0xDFFF)
			{
				v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
				st->i += 6;
			}
		}
	}
	else
		return translate_fail(st, "invalid \\u escape");
	wput_literal(st->out, v, st->in_class);
	return true;
}

/* \p{...} \P{...} (e is 'p' or 'P'): a POSIX class of LC_CTYPE */
static bool
translate_property_escape(TranslateState *st, pg_wchar e)
{
	const pg_wchar *in = st->in;
	int			n = st->n;
	int			start;
	char		name[32];
	int			len;
	const char *cls;

	if (st->i >= n || in[st->i] != '{')
		return translate_fail(st, "invalid \\p escape");
	start = ++st->i;
	while (st->i < n && in[st->i] != '}')
		st->i++;
	if (st->i >= n || st->i - start >= (int) sizeof(name))
		return translate_fail(st, "invalid \\p escape");
	for (len = 0; len < st->i - start; len++)
		name[len] = (char) in[start + len];
	name[len] = '\0';
	st->i++;
	if (strcmp(name, "L") == 0 || strcmp(name, "Letter") == 0)
		cls = "[:alpha:]";
	else if (strcmp(name, "Lu") == 0 || strcmp(name, "Uppercase_Letter") == 0)
		cls = "[:upper:]";
	else if (strcmp(name, "Ll") == 0 || strcmp(name, "Lowercase_Letter") == 0)
		cls = "[:lower:]";
	else if (strcmp(name, "N") == 0 || strcmp(name, "Nd") == 0 ||
			 strcmp(name, "Number") == 0 ||
			 strcmp(name, "Decimal_Number") == 0 ||
			 strcmp(name, "digit") == 0)
		cls = "[:digit:]";
	else
		return translate_fail(st, "unsupported Unicode property class");
	if (st->in_class)
	{
		if (e == 'P')
			return translate_fail(st, UNSUPPORTED_IN_CLASS);
		wputs(st->out, cls);
	}
	else
	{
		wputs(st->out, e == 'P' ? "[^" : "[");
		wputs(st->out, cls);
		wput(st->out, ']');
	}
	return true;
}

/* \k<name>: the numbered back reference to that named group */
static bool
translate_named_backref(TranslateState *st)
{
	const pg_wchar *in = st->in;
	int			n = st->n;
	int			start,
				g;
	char		num[16];

	if (st->i >= n || in[st->i] != '<')
		return translate_fail(st, "invalid named back reference");
	start = ++st->i;
	while (st->i < n && in[st->i] != '>')
		st->i++;
	if (st->i >= n)
		return translate_fail(st, "invalid named back reference");
	for (g = 0; g < st->ngroups && g < (int) lengthof(st->names); g++)
		if (st->names[g].s != NULL && st->names[g].len == st->i - start &&
			memcmp(st->names[g].s, in + start, (st->i - start) * sizeof(pg_wchar)) == 0)
			break;
	st->i++;
	if (g >= st->ngroups || g >= (int) lengthof(st->names))
		return translate_fail(st, "named back reference to an unknown group");
	snprintf(num, sizeof(num), "\\%d", g + 1);
	wputs(st->out, num);
	return true;
}

/* any other escape: a back reference \1..\9 or an escaped literal */
static bool
translate_identity_escape(TranslateState *st, pg_wchar e)
{
	if (e >= '1' && e <= '9' && !st->in_class)
	{
		/* back reference: ARE has the same syntax */
		wput(st->out, '\\');
		wput(st->out, e);
	}
	else if (is_syntax_char(e) || (e == '-' && st->in_class))
		wput_literal(st->out, e, st->in_class);
	else if ((e < 128 && isalnum((int) e)) || st->strict)
		return translate_fail(st, "invalid escape sequence");
	else
		wput_literal(st->out, e, st->in_class);
	return true;
}

/* a backslash escape at in[i], inside or outside a bracket expression */
static bool
translate_escape(TranslateState *st)
{
	pg_wchar	e;

	if (st->i + 1 >= st->n)
		return translate_fail(st, "pattern ends with a backslash");
	e = st->in[st->i + 1];
	st->i += 2;
	switch (e)
	{
		case 'd':
		case 'D':
		case 'w':
		case 'W':
		case 's':
		case 'S':
			return translate_class_escape(st, e);
		case 'b':
			if (st->in_class)
				wput_literal(st->out, 0x08, true);
			else
				wputs(st->out, "\\y");
			return true;
		case 'B':
			if (st->in_class)
				return translate_fail(st, "invalid escape \\B in a character class");
			wputs(st->out, "\\Y");
			return true;
		case 't':
		case 'n':
		case 'v':
		case 'f':
		case 'r':
		case '0':
		case 'c':
		case 'x':
			return translate_literal_escape(st, e);
		case 'u':
			return translate_unicode_escape(st);
		case 'p':
		case 'P':
			return translate_property_escape(st, e);
		case 'k':
			return translate_named_backref(st);
		default:
			return translate_identity_escape(st, e);
	}
}

/* a code point other than a backslash inside a bracket expression */
static void
translate_class_member(TranslateState *st)
{
	const pg_wchar *in = st->in;
	pg_wchar	c = in[st->i];

	if (c == ']')
		st->in_class = false;
	if (c == '[' && st->i + 1 < st->n &&
		(in[st->i + 1] == ':' || in[st->i + 1] == '.' || in[st->i + 1] == '='))
	{
		/* ECMA has no POSIX classes: a literal '[' */
		wputs(st->out, "\\[");
		st->i++;
		return;
	}
	wput(st->out, c);
	st->i++;
}

/* '[' opening a bracket expression; [] and [^] are complete atoms */
static void
translate_class_open(TranslateState *st)
{
	WBuf	   *out = st->out;

	st->in_class = true;
	wput(out, '[');
	st->i++;
	if (st->i < st->n && st->in[st->i] == '^')
	{
		wput(out, '^');
		st->i++;
	}
	if (st->i < st->n && st->in[st->i] == ']')
	{
		/* ECMA: [] matches nothing, [^] anything */
		if (out->data[out->len - 1] == '^')
		{
			out->len -= 2;
			wputs(out, "(?:.|\\n)");
		}
		else
		{
			out->len -= 1;
			wputs(out, "(?!a)a");
		}
		st->in_class = false;
		st->i++;
	}
}

/* (?<name>: a capturing group numbered like any other, name remembered */
static bool
translate_named_group(TranslateState *st)
{
	const pg_wchar *in = st->in;
	int			n = st->n;
	int			start = st->i + 3;

	st->i = start;
	while (st->i < n && in[st->i] != '>' &&
		   (in[st->i] == '_' || in[st->i] == '$' ||
			(in[st->i] < 128 && isalnum((int) in[st->i])) || in[st->i] >= 128))
		st->i++;
	if (st->i >= n || in[st->i] != '>' || st->i == start ||
		(in[start] < 128 && isdigit((int) in[start])))
		return translate_fail(st, "invalid group name");
	if (st->ngroups < (int) lengthof(st->names))
	{
		st->names[st->ngroups].s = in + start;
		st->names[st->ngroups].len = st->i - start;
	}
	st->ngroups++;
	st->i++;
	wput(st->out, '(');
	return true;
}

/* '(' opening a group: capturing, (?: (?= (?! (?<= (?<! or (?<name> */
static bool
translate_group_open(TranslateState *st)
{
	const pg_wchar *in = st->in;
	int			i = st->i;
	int			n = st->n;

	st->depth++;
	if (i + 1 < n && in[i + 1] == '?')
	{
		if (i + 2 < n && (in[i + 2] == ':' || in[i + 2] == '=' || in[i + 2] == '!'))
		{
			wput(st->out, '(');
			wput(st->out, '?');
			wput(st->out, in[i + 2]);
			st->i += 3;
		}
		else if (i + 3 < n && in[i + 2] == '<' && (in[i + 3] == '=' || in[i + 3] == '!'))
		{
			wputs(st->out, "(?<");
			wput(st->out, in[i + 3]);
			st->i += 4;
		}
		else if (i + 2 < n && in[i + 2] == '<')
			return translate_named_group(st);
		else
			return translate_fail(st, "invalid group");
	}
	else
	{
		if (st->ngroups < (int) lengthof(st->names))
			st->names[st->ngroups].s = NULL;
		st->ngroups++;
		wput(st->out, '(');
		st->i++;
	}
	return true;
}

/*
 * Translate an ECMA-262 pattern (in[0..n)) into ARE.  strict: reject
 * identity escapes of non-syntax characters (ECMA "u" mode, for the
 * "regex" format).  Returns false with *err set on a syntax error or an
 * unsupported construct.
 */
static bool
translate(const pg_wchar *in, int n, bool strict, WBuf *out, const char **err)
{
	TranslateState st;

	st.in = in;
	st.n = n;
	st.i = 0;
	st.strict = strict;
	st.in_class = false;
	st.depth = 0;
	st.ngroups = 0;
	st.out = out;
	st.err = NULL;

	while (st.i < n)
	{
		pg_wchar	c = in[st.i];
		bool		ok = true;

		if (c == '\\')
			ok = translate_escape(&st);
		else if (st.in_class)
			translate_class_member(&st);
		else if (c == '[')
			translate_class_open(&st);
		else if (c == '.')
		{
			wputs(out, "[^\n\r");
			wput(out, 0x2028);
			wput(out, 0x2029);
			wput(out, ']');
			st.i++;
		}
		else if (c == '(')
			ok = translate_group_open(&st);
		else if (c == ')')
		{
			if (st.depth == 0)
				ok = translate_fail(&st, "unmatched parenthesis");
			else
			{
				st.depth--;
				wput(out, ')');
				st.i++;
			}
		}
		else
		{
			wput(out, c);
			st.i++;
		}
		if (!ok)
		{
			*err = st.err;
			return false;
		}
	}
	if (st.in_class)
	{
		*err = "unterminated character class";
		return false;
	}
	if (st.depth != 0)
	{
		*err = "unmatched parenthesis";
		return false;
	}
	return true;
}


/* ---- the simple-pattern fast path ----
 *
 * A simple pattern is an optional ^, a sequence of atoms, an optional $.
 * An atom is an ASCII literal or escape, ".", \d \w \D \W, or a bracket
 * expression of ASCII members, ranges, \d and \w (optionally negated),
 * with at most one greedy quantifier (? * + {n} {n,} {n,m}).  Anything
 * else (groups, alternation, lazy quantifiers, non-ASCII pattern text,
 * \s, \b, ...) goes to PostgreSQL's engine.
 *
 * Two matchers, both linear in the string and exact (no greedy guessing):
 *
 * - fixed length: ^...$ whose atoms all have fixed counts and ASCII-only
 *   classes ("^[0-9]{5}$"): the string must have that many bytes, each in
 *   its position's set;
 * - otherwise the atoms are expanded into at most 63 positions (x{2,3} is
 *   x x x?, x+ is x with a loop) and run as a bit-parallel NFA (Shift-And
 *   extended with optional and repeatable positions, Navarro and Raffinot):
 *   bit b of the state is set when the first b positions can have matched
 *   the input read so far.  Each character costs a table lookup and a few
 *   word operations; patterns with more positions use the engine.
 */

typedef struct SimpleAtom
{
	uint8		set[16];		/* ASCII members, bit per character */
	bool		nonascii;		/* does a non-ASCII character match? */
	bool		dot;			/* ".": but not U+2028, U+2029 */
	int			min;
	int			max;			/* -1: unbounded */
} SimpleAtom;

#define SIMPLE_MAX_POS	63		/* positions; states are bits 0..npos */

typedef struct SimpleRe
{
	bool		anchor_start;
	bool		anchor_end;
	int			fixed_len;		/* ^...$ of ASCII atoms with fixed counts:
								 * the only length that matches; else -1 */
	int			natoms;
	SimpleAtom *atoms;			/* for the fixed-length matcher */

	/* the bit-parallel NFA (fixed_len < 0) */
	uint64		start;			/* state before any input: closure of bit 0 */
	uint64		accept;			/* bit npos */
	uint64		opt;			/* bit b: position b may be skipped */
	uint64		loop;			/* bit b + 1: position b may repeat */
	uint64		nonascii;		/* bit b: position b takes any non-ASCII
								 * character but U+2028, U+2029 */
	uint64		lineterm;		/* bit b: position b takes U+2028, U+2029 */
	uint64		ascii[128];		/* bit b: position b takes this character */
} SimpleRe;

#define SET_ADD(a, c) ((a)->set[(c) >> 3] |= (uint8) (1 << ((c) & 7)))
#define SET_HAS(a, c) (((a)->set[(c) >> 3] & (1 << ((c) & 7))) != 0)

/* characters between two interrupt checks of the matchers */
#define SIMPLE_CHECK_INTERVAL	65536

static void
set_range(SimpleAtom *a, int lo, int hi)
{
	int			c;

	for (c = lo; c <= hi; c++)
		SET_ADD(a, c);
}

static void
set_word(SimpleAtom *a)
{
	set_range(a, 'a', 'z');
	set_range(a, 'A', 'Z');
	set_range(a, '0', '9');
	SET_ADD(a, '_');
}

static void
set_negate(SimpleAtom *a)
{
	int			k;

	for (k = 0; k < 16; k++)
		a->set[k] = ~a->set[k];
	a->nonascii = true;
}

/* \d or \w, inside or outside [...]; false if e is neither */
static bool
simple_class_escape(SimpleAtom *a, char e)
{
	switch (e)
	{
		case 'd':
			set_range(a, '0', '9');
			return true;
		case 'w':
			set_word(a);
			return true;
		default:
			return false;
	}
}

/* the character a literal escape stands for, or -1 */
static int
simple_literal_escape(char e)
{
	if (e == 't')
		return '\t';
	if (e == 'n')
		return '\n';
	if (e == 'r')
		return '\r';
	if (e == 'f')
		return '\f';
	if (e == 'v')
		return '\v';
	if (strchr("^$\\.*+?()[]{}|/-", e) != NULL && e != '\0')
		return (unsigned char) e;
	return -1;
}

/* The state after the epsilon moves: skip optional positions. */
static pg_attribute_always_inline uint64
simple_closure(uint64 state, uint64 opt)
{
	for (;;)
	{
		uint64		next = state | ((state & opt) << 1);

		if (next == state)
			return state;
		state = next;
	}
}

/* Position in a simple pattern being parsed: p[i..len) is still to read. */
typedef struct SimpleScan
{
	const char *p;
	int			len;
	int			i;
} SimpleScan;

/* an escape outside [...]: \d \w \D \W or a literal; false if not simple */
static bool
simple_parse_escape(SimpleAtom *a, SimpleScan *sc)
{
	const char *p = sc->p;
	int			i = sc->i;
	int			lit;

	if (i + 1 >= sc->len)
		return false;
	if (simple_class_escape(a, p[i + 1]))
		;
	else if (p[i + 1] == 'D' || p[i + 1] == 'W')
	{
		simple_class_escape(a, p[i + 1] == 'D' ? 'd' : 'w');
		set_negate(a);
	}
	else if ((lit = simple_literal_escape(p[i + 1])) >= 0)
		SET_ADD(a, lit);
	else
		return false;
	sc->i += 2;
	return true;
}

/* ".": every character but \n \r (and U+2028, U+2029: see SimpleAtom.dot) */
static void
simple_parse_dot(SimpleAtom *a)
{
	set_range(a, 0, 127);
	a->set['\n' >> 3] &= ~(1 << ('\n' & 7));
	a->set['\r' >> 3] &= ~(1 << ('\r' & 7));
	a->nonascii = true;
	a->dot = true;
}

/* a bracket expression, sc->i at its '['; false if not simple */
static bool
simple_parse_bracket(SimpleAtom *a, SimpleScan *sc)
{
	const char *p = sc->p;
	int			len = sc->len;
	int			i = sc->i + 1;
	bool		negate = false;

	if (i < len && p[i] == '^')
	{
		negate = true;
		i++;
	}
	if (i < len && p[i] == ']')
		return false;
	while (i < len && p[i] != ']')
	{
		int			lo,
					hi;

		if ((unsigned char) p[i] >= 0x80 || p[i] == '[')
			return false;
		if (p[i] == '\\')
		{
			if (i + 1 >= len)
				return false;
			if (simple_class_escape(a, p[i + 1]))
			{
				i += 2;
				continue;
			}
			if ((lo = simple_literal_escape(p[i + 1])) < 0)
				return false;
			i += 2;
		}
		else
			lo = (unsigned char) p[i++];
		hi = lo;
		if (i + 1 < len && p[i] == '-' && p[i + 1] != ']')
		{
			if (p[i + 1] == '\\' || (unsigned char) p[i + 1] >= 0x80 || p[i + 1] == '[')
				return false;
			hi = (unsigned char) p[i + 1];
			if (hi < lo)
				return false;
			i += 2;
		}
		set_range(a, lo, hi);
	}
	if (i >= len)
		return false;
	i++;
	if (negate)
		set_negate(a);
	sc->i = i;
	return true;
}

/* {n} {n,} {n,m}, sc->i at its '{', into a->min, a->max; false if not simple */
static bool
simple_parse_braces(SimpleAtom *a, SimpleScan *sc)
{
	const char *p = sc->p;
	int			len = sc->len;
	int			i = sc->i + 1;
	int			n = 0,
				m;

	if (i >= len || !isdigit((unsigned char) p[i]))
		return false;
	while (i < len && isdigit((unsigned char) p[i]) && n < 100000)
		n = n * 10 + (p[i++] - '0');
	m = n;
	if (i < len && p[i] == ',')
	{
		i++;
		if (i < len && p[i] == '}')
			m = -1;
		else
		{
			m = 0;
			if (i >= len || !isdigit((unsigned char) p[i]))
				return false;
			while (i < len && isdigit((unsigned char) p[i]) && m < 100000)
				m = m * 10 + (p[i++] - '0');
			if (m < n)
				return false;
		}
	}
	if (i >= len || p[i] != '}')
		return false;
	sc->i = i + 1;
	a->min = n;
	a->max = m;
	return true;
}

/* an atom's quantifier, if any, into a->min, a->max; false if not simple */
static bool
simple_parse_quantifier(SimpleAtom *a, SimpleScan *sc)
{
	const char *p = sc->p;

	a->min = a->max = 1;
	if (sc->i >= sc->len)
		return true;
	if (p[sc->i] == '?' || p[sc->i] == '*' || p[sc->i] == '+')
	{
		a->min = p[sc->i] == '+' ? 1 : 0;
		a->max = p[sc->i] == '?' ? 1 : -1;
		sc->i++;
	}
	else if (p[sc->i] == '{')
	{
		if (!simple_parse_braces(a, sc))
			return false;
	}
	if (sc->i < sc->len &&
		(p[sc->i] == '?' || p[sc->i] == '*' || p[sc->i] == '+' || p[sc->i] == '{'))
		return false;			/* lazy or stacked quantifiers */
	return true;
}

/* one atom (ASCII, not the final $) and its quantifier; false if not simple */
static bool
simple_parse_atom(SimpleAtom *a, SimpleScan *sc)
{
	unsigned char c = sc->p[sc->i];

	if (c == '\\')
	{
		if (!simple_parse_escape(a, sc))
			return false;
	}
	else if (c == '.')
	{
		simple_parse_dot(a);
		sc->i++;
	}
	else if (c == '[')
	{
		if (!simple_parse_bracket(a, sc))
			return false;
	}
	else if (strchr("^$*+?(){}|", c) != NULL)
		return false;
	else
	{
		SET_ADD(a, c);
		sc->i++;
	}
	return simple_parse_quantifier(a, sc);
}

/* re->fixed_len: the only length ^...$ of fixed-count ASCII atoms matches, or -1 */
static void
simple_set_fixed_len(SimpleRe *re)
{
	int			i;

	re->fixed_len = (re->anchor_start && re->anchor_end) ? 0 : -1;
	for (i = 0; i < re->natoms && re->fixed_len >= 0; i++)
	{
		SimpleAtom *a = &re->atoms[i];

		if (a->min != a->max || a->nonascii || a->min > 65536 ||
			re->fixed_len > (1 << 24))
			re->fixed_len = -1;
		else
			re->fixed_len += a->min;
	}
}

/*
 * The bit-parallel NFA of re's atoms: x{n,m} is n positions, then m-n
 * optional ones.  False if that takes more than SIMPLE_MAX_POS positions.
 */
static bool
simple_build_nfa(SimpleRe *re)
{
	int			npos = 0;
	int			i;

	for (i = 0; i < re->natoms; i++)
	{
		SimpleAtom *a = &re->atoms[i];
		int			count = a->max < 0 ? Max(a->min, 1) : a->max;
		int			k;

		if (count > SIMPLE_MAX_POS - npos)
			return false;
		for (k = 0; k < count; k++)
		{
			uint64		bit = UINT64CONST(1) << npos;
			int			ch;

			for (ch = 0; ch < 128; ch++)
				if (SET_HAS(a, ch))
					re->ascii[ch] |= bit;
			if (a->nonascii)
			{
				re->nonascii |= bit;
				if (!a->dot)
					re->lineterm |= bit;
			}
			if (k >= a->min)
				re->opt |= bit;
			npos++;
		}
		if (a->max < 0)
			re->loop |= UINT64CONST(1) << npos;
	}
	re->accept = UINT64CONST(1) << npos;
	re->start = simple_closure(1, re->opt);
	return true;
}

/*
 * Parse a simple pattern into atoms and build its matcher; NULL when the
 * pattern is not simple or too long for both matchers.
 */
static SimpleRe *
simple_compile(const char *p, int len)
{
	SimpleRe   *re = palloc0(sizeof(SimpleRe));
	SimpleAtom *atoms = palloc0(sizeof(SimpleAtom) * (len + 1));
	int			natoms = 0;
	SimpleScan	sc;

	sc.p = p;
	sc.len = len;
	sc.i = 0;
	if (len > 0 && p[0] == '^')
	{
		re->anchor_start = true;
		sc.i = 1;
	}
	while (sc.i < len)
	{
		unsigned char c = p[sc.i];

		if (c >= 0x80)
			return NULL;
		if (c == '$' && sc.i == len - 1)
		{
			re->anchor_end = true;
			break;
		}
		if (!simple_parse_atom(&atoms[natoms], &sc))
			return NULL;
		natoms++;
	}
	re->natoms = natoms;
	re->atoms = atoms;

	/* the fixed-length matcher, when it applies; else the NFA */
	simple_set_fixed_len(re);
	if (re->fixed_len >= 0)
		return re;
	if (!simple_build_nfa(re))
		return NULL;
	return re;
}

/* fixed-length matcher: one byte per atom repetition, each in its set */
static bool
simple_match_fixed(const SimpleRe *re, const unsigned char *s, int len)
{
	int			pos = 0;
	int			k;

	if (len != re->fixed_len)
		return false;
	for (k = 0; k < re->natoms; k++)
	{
		const SimpleAtom *a = &re->atoms[k];
		int			j;

		for (j = 0; j < a->min; j++, pos++)
			if (s[pos] >= 0x80 || !SET_HAS(a, s[pos]))
				return false;
		if ((k & 1023) == 1023)
			CHECK_FOR_INTERRUPTS();
	}
	return true;
}

/* the NFA over s[0..len) (valid UTF-8), "search" semantics */
static bool
simple_match_nfa(const SimpleRe *re, const unsigned char *s, int len)
{
	uint64		state = re->start;
	uint64		accept = re->accept;
	uint64		opt = re->opt;
	uint64		loop = re->loop;
	bool		search_end = !re->anchor_end;
	int			pos = 0;
	int			next_check = SIMPLE_CHECK_INTERVAL;

	if (search_end && (state & accept))
		return true;
	while (pos < len)
	{
		unsigned char c = s[pos];
		uint64		takes;

		if (c < 0x80)
		{
			takes = re->ascii[c];
			pos++;
		}
		else
		{
			/* U+2028 and U+2029 are E2 80 A8 and E2 80 A9 */
			if (c == 0xE2 && pos + 2 < len && s[pos + 1] == 0x80 &&
				(s[pos + 2] == 0xA8 || s[pos + 2] == 0xA9))
				takes = re->lineterm;
			else
				takes = re->nonascii;
			pos += pg_utf_mblen(s + pos);
		}
		/* advance past a position, or loop on a repeatable one */
		state = ((state | ((state & loop) >> 1)) & takes) << 1;
		if (opt)
			state = simple_closure(state, opt);
		if (!re->anchor_start)
			state |= re->start;
		else if (state == 0)
			return false;
		if (search_end && (state & accept))
			return true;
		if (unlikely(pos >= next_check))
		{
			CHECK_FOR_INTERRUPTS();
			next_check = pos + SIMPLE_CHECK_INTERVAL;
		}
	}
	return (state & accept) != 0;
}

static bool
simple_match(const SimpleRe *re, const char *str, int len)
{
	if (re->fixed_len >= 0)
		return simple_match_fixed(re, (const unsigned char *) str, len);
	return simple_match_nfa(re, (const unsigned char *) str, len);
}

static bool
compile_wchars(regex_t *re, const char *pattern, int len, bool strict,
			   char **errmsg)
{
	pg_wchar   *w = palloc((len + 1) * sizeof(pg_wchar));
	int			wlen = pg_mb2wchar_with_len(pattern, w, len);
	WBuf		out = {0};
	const char *terr = NULL;
	int			plen;
	int			rc;

	if (!translate(w, wlen, strict, &out, &terr))
	{
		*errmsg = pstrdup(terr);
		return false;
	}
	plen = out.len;
	wput(&out, 0);				/* out.data is never NULL */
	rc = pg_regcomp(re, out.data, plen, REG_ADVANCED | REG_NOSUB,
					DEFAULT_COLLATION_OID);
	pfree(w);
	if (rc != REG_OKAY)
	{
		char		buf[256];

		/* REG_CANCEL: the engine saw a pending interrupt */
		CHECK_FOR_INTERRUPTS();
		pg_regerror(rc, re, buf, sizeof(buf));
		*errmsg = pstrdup(buf);
		return false;
	}
	return true;
}

/*
 * Compile an ECMA-262 pattern.  The JsRegex is palloc'd in the current
 * context; the engine's own storage is malloc'd and must be released with
 * JsonschemaRegexFree.  Returns NULL with *errmsg set if it does not compile.
 */
JsRegex *
JsonschemaRegexCompile(const char *pattern, int len, char **errmsg)
{
	JsRegex    *r = palloc0(sizeof(JsRegex));

	if (!compile_wchars(&r->re, pattern, len, false, errmsg))
	{
		pfree(r);
		return NULL;
	}
	r->source = pnstrdup(pattern, len);
	if (GetDatabaseEncoding() == PG_UTF8)
		r->simple = simple_compile(pattern, len);
	return r;
}

void
JsonschemaRegexFree(JsRegex *r)
{
	pg_regfree(&r->re);
}

/* Does the pattern match anywhere in s (ECMA "search" semantics)? */
bool
JsonschemaRegexMatch(JsRegex *r, const char *s, int len)
{
	pg_wchar	stackbuf[256];
	pg_wchar   *w = stackbuf;
	int			wlen;
	int			rc;

	if (r->simple)
		return simple_match(r->simple, s, len);
	if (len + 1 > (int) lengthof(stackbuf))
		w = palloc((len + 1) * sizeof(pg_wchar));
	wlen = pg_mb2wchar_with_len(s, w, len);
	rc = pg_regexec(&r->re, w, wlen, 0, NULL, 0, NULL, 0);
	if (w != stackbuf)
		pfree(w);
	if (rc == REG_OKAY)
		return true;
	if (rc == REG_NOMATCH)
		return false;
	{
		char		buf[256];

		CHECK_FOR_INTERRUPTS();
		pg_regerror(rc, &r->re, buf, sizeof(buf));
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_REGULAR_EXPRESSION),
				 errmsg("regular expression failed: %s", buf)));
	}
	return false;
}

/* Is s a valid ECMA-262 regular expression (format "regex")? */
bool
JsonschemaRegexIsEcma(const char *s, int len)
{
	regex_t		re;
	char	   *err;

	if (!compile_wchars(&re, s, len, true, &err))
		return false;
	pg_regfree(&re);
	return true;
}
