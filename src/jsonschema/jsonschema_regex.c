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
 * Anything else ARE understands the same way is passed through.
 *
 * Simple patterns (the usual "^[0-9]{5}$", "^[A-Z]{3}-\d+$": a sequence of
 * literals and character classes with quantifiers, no groups or
 * alternation, see "the simple-pattern fast path" below) are also compiled
 * for a small matcher, linear in the string, that skips the regex engine's
 * set-up cost.  Both matchers check for interrupts.  Unsupported:
 * \k<name>, other \p classes, \D \S \W \P inside a bracket expression.
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
 * Translate an ECMA-262 pattern (in[0..n)) into ARE.  strict: reject
 * identity escapes of non-syntax characters (ECMA "u" mode, for the
 * "regex" format).  Returns false with *err set on a syntax error or an
 * unsupported construct.
 */
static bool
translate(const pg_wchar *in, int n, bool strict, WBuf *out, const char **err)
{
	int			i = 0;
	bool		in_class = false;
	int			depth = 0;
	int			ngroups = 0;
	struct
	{
		const pg_wchar *s;
		int			len;
	}			names[64];

	while (i < n)
	{
		pg_wchar	c = in[i];

		if (c == '\\')
		{
			pg_wchar	e;

			if (i + 1 >= n)
			{
				*err = "pattern ends with a backslash";
				return false;
			}
			e = in[i + 1];
			i += 2;
			switch (e)
			{
				case 'd':
					wputs(out, in_class ? "0-9" : "[0-9]");
					break;
				case 'D':
					if (in_class)
						goto unsupported_in_class;
					wputs(out, "[^0-9]");
					break;
				case 'w':
					wputs(out, in_class ? "A-Za-z0-9_" : "[A-Za-z0-9_]");
					break;
				case 'W':
					if (in_class)
						goto unsupported_in_class;
					wputs(out, "[^A-Za-z0-9_]");
					break;
				case 's':
					if (!in_class)
						wput(out, '[');
					put_space_members(out);
					if (!in_class)
						wput(out, ']');
					break;
				case 'S':
					if (in_class)
						goto unsupported_in_class;
					wputs(out, "[^");
					put_space_members(out);
					wput(out, ']');
					break;
				case 'b':
					if (in_class)
						wput_literal(out, 0x08, true);
					else
						wputs(out, "\\y");
					break;
				case 'B':
					if (in_class)
					{
						*err = "invalid escape \\B in a character class";
						return false;
					}
					wputs(out, "\\Y");
					break;
				case 't':
					wput_literal(out, 0x09, in_class);
					break;
				case 'n':
					wput_literal(out, 0x0A, in_class);
					break;
				case 'v':
					wput_literal(out, 0x0B, in_class);
					break;
				case 'f':
					wput_literal(out, 0x0C, in_class);
					break;
				case 'r':
					wput_literal(out, 0x0D, in_class);
					break;
				case '0':
					if (i < n && in[i] >= '0' && in[i] <= '9')
					{
						*err = "invalid octal escape";
						return false;
					}
					wput_literal(out, 0, in_class);
					break;
				case 'c':
					if (i < n && ((in[i] >= 'a' && in[i] <= 'z') ||
								  (in[i] >= 'A' && in[i] <= 'Z')))
					{
						wput_literal(out, in[i] % 32, in_class);
						i++;
					}
					else
					{
						*err = "invalid control escape";
						return false;
					}
					break;
				case 'x':
					if (i + 1 < n && JbvHexValue(in[i]) >= 0 && JbvHexValue(in[i + 1]) >= 0)
					{
						wput_literal(out, JbvHexValue(in[i]) * 16 + JbvHexValue(in[i + 1]), in_class);
						i += 2;
					}
					else
					{
						*err = "invalid \\x escape";
						return false;
					}
					break;
				case 'u':
					if (i < n && in[i] == '{')
					{
						pg_wchar	v = 0;
						int			nd = 0;

						i++;
						while (i < n && JbvHexValue(in[i]) >= 0 && nd < 7)
						{
							v = v * 16 + JbvHexValue(in[i]);
							i++;
							nd++;
						}
						if (i >= n || in[i] != '}' || nd == 0 || v > 0x10FFFF)
						{
							*err = "invalid \\u{...} escape";
							return false;
						}
						i++;
						wput_literal(out, v, in_class);
					}
					else if (i + 3 < n && JbvHexValue(in[i]) >= 0 && JbvHexValue(in[i + 1]) >= 0 &&
							 JbvHexValue(in[i + 2]) >= 0 && JbvHexValue(in[i + 3]) >= 0)
					{
						pg_wchar	v = (JbvHexValue(in[i]) << 12) | (JbvHexValue(in[i + 1]) << 8) |
							(JbvHexValue(in[i + 2]) << 4) | JbvHexValue(in[i + 3]);

						i += 4;
						/* a surrogate pair written as two escapes */
						if (v >= 0xD800 && v <= 0xDBFF && i + 5 < n && in[i] == '\\' &&
							in[i + 1] == 'u' && JbvHexValue(in[i + 2]) >= 0 &&
							JbvHexValue(in[i + 3]) >= 0 && JbvHexValue(in[i + 4]) >= 0 &&
							JbvHexValue(in[i + 5]) >= 0)
						{
							pg_wchar	lo = (JbvHexValue(in[i + 2]) << 12) | (JbvHexValue(in[i + 3]) << 8) |
								(JbvHexValue(in[i + 4]) << 4) | JbvHexValue(in[i + 5]);

							if (lo >= 0xDC00 && lo <= 0xDFFF)
							{
								v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
								i += 6;
							}
						}
						wput_literal(out, v, in_class);
					}
					else
					{
						*err = "invalid \\u escape";
						return false;
					}
					break;
				case 'p':
				case 'P':
					{
						int			start;
						char		name[32];
						int			len;
						const char *cls;

						if (i >= n || in[i] != '{')
						{
							*err = "invalid \\p escape";
							return false;
						}
						start = ++i;
						while (i < n && in[i] != '}')
							i++;
						if (i >= n || i - start >= (int) sizeof(name))
						{
							*err = "invalid \\p escape";
							return false;
						}
						for (len = 0; len < i - start; len++)
							name[len] = (char) in[start + len];
						name[len] = '\0';
						i++;
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
						{
							*err = "unsupported Unicode property class";
							return false;
						}
						if (in_class)
						{
							if (e == 'P')
								goto unsupported_in_class;
							wputs(out, cls);
						}
						else
						{
							wputs(out, e == 'P' ? "[^" : "[");
							wputs(out, cls);
							wput(out, ']');
						}
					}
					break;
				case 'k':
					{
						int			start,
									g;

						if (i >= n || in[i] != '<')
						{
							*err = "invalid named back reference";
							return false;
						}
						start = ++i;
						while (i < n && in[i] != '>')
							i++;
						if (i >= n)
						{
							*err = "invalid named back reference";
							return false;
						}
						for (g = 0; g < ngroups && g < (int) lengthof(names); g++)
							if (names[g].s != NULL && names[g].len == i - start &&
								memcmp(names[g].s, in + start, (i - start) * sizeof(pg_wchar)) == 0)
								break;
						i++;
						if (g >= ngroups || g >= (int) lengthof(names))
						{
							*err = "named back reference to an unknown group";
							return false;
						}
						{
							char		num[16];

							snprintf(num, sizeof(num), "\\%d", g + 1);
							wputs(out, num);
						}
					}
					break;
				default:
					if (e >= '1' && e <= '9' && !in_class)
					{
						/* back reference: ARE has the same syntax */
						wput(out, '\\');
						wput(out, e);
					}
					else if (is_syntax_char(e) || (e == '-' && in_class))
						wput_literal(out, e, in_class);
					else if ((e < 128 && isalnum((int) e)) || strict)
					{
						*err = "invalid escape sequence";
						return false;
					}
					else
						wput_literal(out, e, in_class);
					break;
			}
			continue;
		}

		if (in_class)
		{
			if (c == ']')
				in_class = false;
			if (c == '[' && i + 1 < n && (in[i + 1] == ':' || in[i + 1] == '.' || in[i + 1] == '='))
			{
				/* ECMA has no POSIX classes: a literal '[' */
				wputs(out, "\\[");
				i++;
				continue;
			}
			wput(out, c);
			i++;
			continue;
		}

		switch (c)
		{
			case '[':
				in_class = true;
				wput(out, '[');
				i++;
				if (i < n && in[i] == '^')
				{
					wput(out, '^');
					i++;
				}
				if (i < n && in[i] == ']')
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
					in_class = false;
					i++;
				}
				break;
			case '.':
				wputs(out, "[^\n\r");
				wput(out, 0x2028);
				wput(out, 0x2029);
				wput(out, ']');
				i++;
				break;
			case '(':
				depth++;
				if (i + 1 < n && in[i + 1] == '?')
				{
					if (i + 2 < n && (in[i + 2] == ':' || in[i + 2] == '=' || in[i + 2] == '!'))
					{
						wput(out, '(');
						wput(out, '?');
						wput(out, in[i + 2]);
						i += 3;
					}
					else if (i + 3 < n && in[i + 2] == '<' && (in[i + 3] == '=' || in[i + 3] == '!'))
					{
						wputs(out, "(?<");
						wput(out, in[i + 3]);
						i += 4;
					}
					else if (i + 2 < n && in[i + 2] == '<')
					{
						/* named group: numbered like any capture, name remembered */
						int			start = i + 3;

						i = start;
						while (i < n && in[i] != '>' &&
							   (in[i] == '_' || in[i] == '$' || (in[i] < 128 && isalnum((int) in[i])) ||
								in[i] >= 128))
							i++;
						if (i >= n || in[i] != '>' || i == start || (in[start] < 128 && isdigit((int) in[start])))
						{
							*err = "invalid group name";
							return false;
						}
						if (ngroups < (int) lengthof(names))
						{
							names[ngroups].s = in + start;
							names[ngroups].len = i - start;
						}
						ngroups++;
						i++;
						wput(out, '(');
					}
					else
					{
						*err = "invalid group";
						return false;
					}
				}
				else
				{
					if (ngroups < (int) lengthof(names))
						names[ngroups].s = NULL;
					ngroups++;
					wput(out, '(');
					i++;
				}
				break;
			case ')':
				if (depth == 0)
				{
					*err = "unmatched parenthesis";
					return false;
				}
				depth--;
				wput(out, ')');
				i++;
				break;
			default:
				wput(out, c);
				i++;
				break;
		}
	}
	if (in_class)
	{
		*err = "unterminated character class";
		return false;
	}
	if (depth != 0)
	{
		*err = "unmatched parenthesis";
		return false;
	}
	return true;

unsupported_in_class:
	*err = "\\D, \\S, \\W and \\P are not supported inside a character class";
	return false;
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
	int			npos;
	int			i = 0;

	if (len > 0 && p[0] == '^')
	{
		re->anchor_start = true;
		i = 1;
	}
	while (i < len)
	{
		SimpleAtom *a = &atoms[natoms];
		unsigned char c = p[i];

		if (c >= 0x80)
			return NULL;
		if (c == '$' && i == len - 1)
		{
			re->anchor_end = true;
			break;
		}
		if (c == '\\')
		{
			int			lit;

			if (i + 1 >= len)
				return NULL;
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
				return NULL;
			i += 2;
		}
		else if (c == '.')
		{
			set_range(a, 0, 127);
			a->set['\n' >> 3] &= ~(1 << ('\n' & 7));
			a->set['\r' >> 3] &= ~(1 << ('\r' & 7));
			a->nonascii = true;
			a->dot = true;
			i++;
		}
		else if (c == '[')
		{
			bool		negate = false;

			i++;
			if (i < len && p[i] == '^')
			{
				negate = true;
				i++;
			}
			if (i < len && p[i] == ']')
				return NULL;
			while (i < len && p[i] != ']')
			{
				int			lo,
							hi;

				if ((unsigned char) p[i] >= 0x80 || p[i] == '[')
					return NULL;
				if (p[i] == '\\')
				{
					if (i + 1 >= len)
						return NULL;
					if (simple_class_escape(a, p[i + 1]))
					{
						i += 2;
						continue;
					}
					if ((lo = simple_literal_escape(p[i + 1])) < 0)
						return NULL;
					i += 2;
				}
				else
					lo = (unsigned char) p[i++];
				hi = lo;
				if (i + 1 < len && p[i] == '-' && p[i + 1] != ']')
				{
					if (p[i + 1] == '\\' || (unsigned char) p[i + 1] >= 0x80 || p[i + 1] == '[')
						return NULL;
					hi = (unsigned char) p[i + 1];
					if (hi < lo)
						return NULL;
					i += 2;
				}
				set_range(a, lo, hi);
			}
			if (i >= len)
				return NULL;
			i++;
			if (negate)
				set_negate(a);
		}
		else if (strchr("^$*+?(){}|", c) != NULL)
			return NULL;
		else
		{
			SET_ADD(a, c);
			i++;
		}

		/* quantifier */
		a->min = a->max = 1;
		if (i < len)
		{
			if (p[i] == '?' || p[i] == '*' || p[i] == '+')
			{
				a->min = p[i] == '+' ? 1 : 0;
				a->max = p[i] == '?' ? 1 : -1;
				i++;
			}
			else if (p[i] == '{')
			{
				int			n = 0,
							m;

				i++;
				if (i >= len || !isdigit((unsigned char) p[i]))
					return NULL;
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
							return NULL;
						while (i < len && isdigit((unsigned char) p[i]) && m < 100000)
							m = m * 10 + (p[i++] - '0');
						if (m < n)
							return NULL;
					}
				}
				if (i >= len || p[i] != '}')
					return NULL;
				i++;
				a->min = n;
				a->max = m;
			}
			if (i < len && (p[i] == '?' || p[i] == '*' || p[i] == '+' || p[i] == '{'))
				return NULL;	/* lazy or stacked quantifiers */
		}
		natoms++;
	}
	re->natoms = natoms;
	re->atoms = atoms;

	/* the fixed-length matcher, when it applies */
	re->fixed_len = (re->anchor_start && re->anchor_end) ? 0 : -1;
	for (i = 0; i < natoms && re->fixed_len >= 0; i++)
	{
		SimpleAtom *a = &atoms[i];

		if (a->min != a->max || a->nonascii || a->min > 65536 ||
			re->fixed_len > (1 << 24))
			re->fixed_len = -1;
		else
			re->fixed_len += a->min;
	}
	if (re->fixed_len >= 0)
		return re;

	/* else the NFA: x{n,m} is n positions, then m-n optional ones */
	npos = 0;
	for (i = 0; i < natoms; i++)
	{
		SimpleAtom *a = &atoms[i];
		int			count = a->max < 0 ? Max(a->min, 1) : a->max;
		int			k;

		if (count > SIMPLE_MAX_POS - npos)
			return NULL;
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
