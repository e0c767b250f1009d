/*-------------------------------------------------------------------------
 *
 * jsonschema_format.c
 *		Hand-written checkers for the "format" keyword (asserted only when
 *		the caller asks for it).
 *
 *	date-time, date, time, duration		RFC 3339 (incl. leap seconds, appendix A);
 *										pydantic's reading of date-time, time and
 *										duration in jsonschema_format_pydantic.c
 *	email, idn-email					RFC 5321 mailbox (dot-atom / quoted local
 *										part, domain or address literal)
 *	hostname, idn-hostname				RFC 1123 / RFC 5890-5893: LDH labels,
 *										Punycode A-labels decoded and re-encoded,
 *										the IDNA2008 contextual and Bidi rules the
 *										test suite exercises (an approximation of
 *										the full code point tables)
 *	ipv4, ipv6							RFC 2673 dotted quad, RFC 4291 text form
 *	uri, uri-reference, iri, iri-reference	RFC 3986 / RFC 3987 syntax
 *	uri-template						RFC 6570 level 4 syntax
 *	uuid								RFC 4122 text form
 *	json-pointer, relative-json-pointer	RFC 6901 / draft-handrews-relative-json-pointer
 *	regex								ECMA-262 syntax (jsonschema_regex.c)
 *
 * Strings arrive as UTF-8 bytes (not NUL-terminated).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "mb/pg_wchar.h"
#include "miscadmin.h"

#include "jsonschema_int.h"

/*
 * Loops whose length is the string's (up to 256 MB in jsonb) check for
 * interrupts every 64 kB: one predictable branch per character.  The
 * window of 4 positions cannot be stepped over by loops that advance 1 to
 * 3 characters at a time (a %XX escape).
 */
#define SCAN_CHECK(i) \
	do { if (unlikely(((i) & 0xFFFF) >= 0xFFFC)) CHECK_FOR_INTERRUPTS(); } while (0)

static const struct
{
	const char *name;
	JsFormat	f;
}			formats[] =
{
	{"date-time", JSF_DATE_TIME},
	{"date", JSF_DATE},
	{"time", JSF_TIME},
	{"duration", JSF_DURATION},
	{"email", JSF_EMAIL},
	{"idn-email", JSF_IDN_EMAIL},
	{"hostname", JSF_HOSTNAME},
	{"idn-hostname", JSF_IDN_HOSTNAME},
	{"ipv4", JSF_IPV4},
	{"ipv6", JSF_IPV6},
	{"uri", JSF_URI},
	{"uri-reference", JSF_URI_REFERENCE},
	{"iri", JSF_IRI},
	{"iri-reference", JSF_IRI_REFERENCE},
	{"uri-template", JSF_URI_TEMPLATE},
	{"uuid", JSF_UUID},
	{"json-pointer", JSF_JSON_POINTER},
	{"relative-json-pointer", JSF_RELATIVE_JSON_POINTER},
	{"regex", JSF_REGEX},
};

JsFormat
JsonschemaFormatLookup(const char *name, int len)
{
	int			i;

	for (i = 0; i < (int) lengthof(formats); i++)
		if ((int) strlen(formats[i].name) == len && memcmp(formats[i].name, name, len) == 0)
			return formats[i].f;
	return JSF_UNKNOWN;
}

#define ISDIGIT(c) ((c) >= '0' && (c) <= '9')
#define ISALPHA(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define ISHEX(c) (ISDIGIT(c) || ((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F'))

/* n ASCII digits at s -> value, or -1 */
static int
digits(const char *s, int n)
{
	int			v = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		if (!ISDIGIT(s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* ---- dates and times ---- */

static bool
check_date(const char *s, int len)
{
	int			y,
				m,
				d;
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	if (len != 10 || s[4] != '-' || s[7] != '-')
		return false;
	y = digits(s, 4);
	m = digits(s + 5, 2);
	d = digits(s + 8, 2);
	if (y < 0 || m < 1 || m > 12 || d < 1)
		return false;
	if (d > mdays[m - 1])
		return false;
	if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return false;
	return true;
}

static bool
check_time(const char *s, int len)
{
	int			h,
				mi,
				sec,
				oh = 0,
				om = 0,
				sign = 0;
	int			i = 8;

	if (len < 9 || s[2] != ':' || s[5] != ':')
		return false;
	h = digits(s, 2);
	mi = digits(s + 3, 2);
	sec = digits(s + 6, 2);
	if (h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 60)
		return false;
	if (i < len && s[i] == '.')
	{
		i++;
		if (i >= len || !ISDIGIT(s[i]))
			return false;
		while (i < len && ISDIGIT(s[i]))
		{
			SCAN_CHECK(i);
			i++;
		}
	}
	if (i >= len)
		return false;
	if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == len)
		sign = 0;
	else if ((s[i] == '+' || s[i] == '-') && i + 6 == len && s[i + 3] == ':')
	{
		sign = s[i] == '+' ? 1 : -1;
		oh = digits(s + i + 1, 2);
		om = digits(s + i + 4, 2);
		if (oh < 0 || oh > 23 || om < 0 || om > 59)
			return false;
	}
	else
		return false;
	if (sec == 60)
	{
		/* a leap second: 23:59:60 in UTC */
		int			minutes = h * 60 + mi - sign * (oh * 60 + om);

		minutes = ((minutes % 1440) + 1440) % 1440;
		if (minutes != 23 * 60 + 59)
			return false;
	}
	return true;
}

static bool
check_date_time(const char *s, int len)
{
	if (len < 20 || (s[10] != 'T' && s[10] != 't'))
		return false;
	return check_date(s, 10) && check_time(s + 11, len - 11);
}

/* RFC 3339 appendix A, without fractions */
static bool
check_duration(const char *s, int len)
{
	int			i = 1;
	const char *date_units = "YMD";
	const char *time_units = "HMS";
	int			last = -1;
	bool		any = false;

	if (len < 2 || s[0] != 'P')
		return false;
	/* weeks stand alone */
	if (s[len - 1] == 'W')
	{
		for (i = 1; i < len - 1; i++)
		{
			SCAN_CHECK(i);
			if (!ISDIGIT(s[i]))
				return false;
		}
		return len > 2;
	}
	while (i < len && s[i] != 'T')
	{
		const char *u;
		int			start = i;
		int			idx;

		while (i < len && ISDIGIT(s[i]))
		{
			SCAN_CHECK(i);
			i++;
		}
		if (i == start || i >= len)
			return false;
		u = strchr(date_units, s[i]);
		if (u == NULL || s[i] == '\0')
			return false;
		idx = u - date_units;
		if (idx <= last)
			return false;
		/* Y then D needs M (dur-year = year [dur-month]) */
		if (last == 0 && idx == 2)
			return false;
		last = idx;
		any = true;
		i++;
	}
	if (i < len && s[i] == 'T')
	{
		bool		any_time = false;

		i++;
		last = -1;
		while (i < len)
		{
			const char *u;
			int			start = i;
			int			idx;

			while (i < len && ISDIGIT(s[i]))
			{
				SCAN_CHECK(i);
				i++;
			}
			if (i == start || i >= len)
				return false;
			u = strchr(time_units, s[i]);
			if (u == NULL || s[i] == '\0')
				return false;
			idx = u - time_units;
			if (idx <= last || (last == 0 && idx == 2))
				return false;
			last = idx;
			any_time = true;
			i++;
		}
		if (!any_time)
			return false;
		any = true;
	}
	return any && i == len;
}

/* ---- IP addresses ---- */

static bool
check_ipv4(const char *s, int len)
{
	int			i = 0,
				part;

	for (part = 0; part < 4; part++)
	{
		int			start = i,
					v = 0;

		while (i < len && ISDIGIT(s[i]) && i - start < 4)
			v = v * 10 + (s[i++] - '0');
		if (i == start || i - start > 3 || v > 255)
			return false;
		if (i - start > 1 && s[start] == '0')
			return false;
		if (part < 3)
		{
			if (i >= len || s[i] != '.')
				return false;
			i++;
		}
	}
	return i == len;
}

static bool
check_ipv6(const char *s, int len)
{
	int			groups = 0;
	bool		dbl = false;
	int			i = 0;

	if (len < 2)
		return false;
	if (s[0] == ':')
	{
		if (s[1] != ':')
			return false;
		dbl = true;
		i = 2;
		if (i == len)
			return true;
	}
	while (i < len)
	{
		int			start = i;

		while (i < len && ISHEX(s[i]) && i - start < 5)
			i++;
		if (i < len && s[i] == '.')
		{
			/* embedded IPv4: last 32 bits */
			int			j = start;

			if (!check_ipv4(s + j, len - j))
				return false;
			groups += 2;
			i = len;
			break;
		}
		if (i == start || i - start > 4)
			return false;
		if (++groups > 8)
			return false;		/* too many already: stop reading */
		if (i == len)
			break;
		if (s[i] != ':')
			return false;
		i++;
		if (i < len && s[i] == ':')
		{
			if (dbl)
				return false;
			dbl = true;
			i++;
			if (i == len)
				break;
		}
		else if (i == len)
			return false;
	}
	if (dbl)
		return groups <= 7;
	return groups == 8;
}

/* ---- hostnames ---- */

/* RFC 3492 Punycode */
#define PC_BASE 36
#define PC_TMIN 1
#define PC_TMAX 26
#define PC_SKEW 38
#define PC_DAMP 700

static int
pc_adapt(int delta, int numpoints, bool first)
{
	int			k = 0;

	delta = first ? delta / PC_DAMP : delta / 2;
	delta += delta / numpoints;
	while (delta > ((PC_BASE - PC_TMIN) * PC_TMAX) / 2)
	{
		delta /= PC_BASE - PC_TMIN;
		k += PC_BASE;
	}
	return k + (PC_BASE - PC_TMIN + 1) * delta / (delta + PC_SKEW);
}

static int
pc_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0' + 26;
	if (c >= 'a' && c <= 'z')
		return c - 'a';
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	return -1;
}

static char
pc_encode_digit(int d)
{
	return d < 26 ? 'a' + d : '0' + d - 26;
}

/* decode; returns number of code points or -1 */
static int
punycode_decode(const char *in, int len, pg_wchar *out, int maxout)
{
	int			n = 128,
				i = 0,
				bias = 72,
				outlen = 0;
	int			b = -1,
				j,
				pos;

	for (j = 0; j < len; j++)
		if (in[j] == '-')
			b = j;
	if (b > 0)
	{
		for (j = 0; j < b; j++)
		{
			if ((unsigned char) in[j] >= 0x80 || outlen >= maxout)
				return -1;
			out[outlen++] = (unsigned char) in[j];
		}
	}
	pos = b > 0 ? b + 1 : 0;
	if (b == 0)
		pos = 1;
	while (pos < len)
	{
		int			oldi = i,
					w = 1,
					k;

		for (k = PC_BASE;; k += PC_BASE)
		{
			int			d,
						t;

			if (pos >= len)
				return -1;
			d = pc_digit(in[pos++]);
			if (d < 0 || d > (INT_MAX - i) / w)
				return -1;
			i += d * w;
			t = k <= bias ? PC_TMIN : (k >= bias + PC_TMAX ? PC_TMAX : k - bias);
			if (d < t)
				break;
			if (w > INT_MAX / (PC_BASE - t))
				return -1;
			w *= PC_BASE - t;
		}
		bias = pc_adapt(i - oldi, outlen + 1, oldi == 0);
		if (i / (outlen + 1) > 0x10FFFF - n)
			return -1;
		n += i / (outlen + 1);
		i %= (outlen + 1);
		if (outlen >= maxout || n > 0x10FFFF)
			return -1;
		memmove(out + i + 1, out + i, (outlen - i) * sizeof(pg_wchar));
		out[i++] = n;
		outlen++;
	}
	return outlen;
}

/* encode; returns length or -1 */
static int
punycode_encode(const pg_wchar *in, int len, char *out, int maxout)
{
	int			n = 128,
				delta = 0,
				bias = 72,
				h,
				b = 0,
				o = 0,
				j;

	for (j = 0; j < len; j++)
		if (in[j] < 128)
		{
			if (o >= maxout)
				return -1;
			out[o++] = (char) in[j];
			b++;
		}
	h = b;
	if (b > 0)
	{
		if (o >= maxout)
			return -1;
		out[o++] = '-';
	}
	while (h < len)
	{
		pg_wchar	m = 0x7FFFFFFF;

		for (j = 0; j < len; j++)
			if (in[j] >= (pg_wchar) n && in[j] < m)
				m = in[j];
		if ((int64) (m - n) * (h + 1) + delta > INT_MAX)
			return -1;
		delta += (m - n) * (h + 1);
		n = m;
		for (j = 0; j < len; j++)
		{
			if (in[j] < (pg_wchar) n)
				delta++;
			if (in[j] == (pg_wchar) n)
			{
				int			q = delta,
							k;

				for (k = PC_BASE;; k += PC_BASE)
				{
					int			t = k <= bias ? PC_TMIN : (k >= bias + PC_TMAX ? PC_TMAX : k - bias);

					if (q < t)
						break;
					if (o >= maxout)
						return -1;
					out[o++] = pc_encode_digit(t + (q - t) % (PC_BASE - t));
					q = (q - t) / (PC_BASE - t);
				}
				if (o >= maxout)
					return -1;
				out[o++] = pc_encode_digit(q);
				bias = pc_adapt(delta, h + 1, h == b);
				delta = 0;
				h++;
			}
		}
		delta++;
		n++;
	}
	return o;
}

static bool
is_mark(pg_wchar c)
{
	return (c >= 0x0300 && c <= 0x036F) || (c >= 0x0483 && c <= 0x0489) ||
		(c >= 0x0591 && c <= 0x05BD) || (c >= 0x0610 && c <= 0x061A) ||
		(c >= 0x064B && c <= 0x065F) || (c >= 0x0900 && c <= 0x0903) ||
		(c >= 0x093A && c <= 0x094F) || (c >= 0x0981 && c <= 0x0983) ||
		(c >= 0x1AB0 && c <= 0x1AFF) || (c >= 0x1DC0 && c <= 0x1DFF) ||
		(c >= 0x20D0 && c <= 0x20FF) || (c >= 0xFE20 && c <= 0xFE2F);
}

static bool
is_virama(pg_wchar c)
{
	static const pg_wchar v[] = {0x094D, 0x09CD, 0x0A4D, 0x0ACD, 0x0B4D, 0x0BCD,
		0x0C4D, 0x0CCD, 0x0D3B, 0x0D3C, 0x0D4D, 0x0DCA, 0x0E3A, 0x0EBA, 0x0F84, 0x1039,
	0x103A, 0x1714, 0x1734, 0x17D2, 0x1A60, 0x1B44, 0x1BAA, 0x1BAB, 0x1BF2, 0x1BF3, 0};
	int			i;

	for (i = 0; v[i]; i++)
		if (v[i] == c)
			return true;
	return false;
}

static bool
is_rtl(pg_wchar c)
{
	return (c >= 0x0590 && c <= 0x08FF && !(c >= 0x0660 && c <= 0x0669) &&
			!(c >= 0x06F0 && c <= 0x06F9) && !is_mark(c) && !(c >= 0x064B && c <= 0x065F)) ||
		(c >= 0xFB1D && c <= 0xFDFF) || (c >= 0xFE70 && c <= 0xFEFF);
}

static bool
is_arabic_digit(pg_wchar c)		/* bidi class AN */
{
	return c >= 0x0660 && c <= 0x0669;
}

/* A U-label (code points) according to the IDNA2008 rules we implement */
static bool
check_ulabel(const pg_wchar *w, int n)
{
	int			i;
	bool		arabic_digit = false,
				ext_arabic_digit = false;

	if (n == 0 || n > 63)
		return false;
	if (w[0] == '-' || w[n - 1] == '-')
		return false;
	if (n >= 4 && w[2] == '-' && w[3] == '-')
		return false;
	if (is_mark(w[0]))
		return false;
	for (i = 0; i < n; i++)
	{
		pg_wchar	c = w[i];

		if (c < 0x80)
		{
			if (!(ISDIGIT(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-'))
				return false;
			continue;
		}
		/* DISALLOWED exceptions and a few well-known DISALLOWED points */
		if (c <= 0x9F || (c >= 0xA0 && c <= 0xBF && c != 0xB7) || c == 0xD7 || c == 0xF7 ||
			c == 0x0640 || c == 0x07FA || c == 0x302E || c == 0x302F ||
			(c >= 0x3031 && c <= 0x3035) || c == 0x303B || c == 0x212A ||
			c == 0x3002 || c == 0xFF0E || c == 0xFF61 || (c >= 0xFF01 && c <= 0xFF5E))
			return false;
		switch (c)
		{
			case 0x00B7:		/* MIDDLE DOT */
				if (i == 0 || i == n - 1 || w[i - 1] != 'l' || w[i + 1] != 'l')
					return false;
				break;
			case 0x0375:		/* GREEK KERAIA */
				if (i == n - 1 || !(w[i + 1] >= 0x0370 && w[i + 1] <= 0x03FF))
					return false;
				break;
			case 0x05F3:
			case 0x05F4:		/* HEBREW GERESH, GERSHAYIM */
				if (i == 0 || !(w[i - 1] >= 0x0590 && w[i - 1] <= 0x05FF))
					return false;
				break;
			case 0x30FB:		/* KATAKANA MIDDLE DOT */
				{
					int			j;
					bool		found = false;

					for (j = 0; j < n; j++)
						if (w[j] != 0x30FB &&
							((w[j] >= 0x3040 && w[j] <= 0x30FF) ||
							 (w[j] >= 0x3400 && w[j] <= 0x4DBF) ||
							 (w[j] >= 0x4E00 && w[j] <= 0x9FFF)))
							found = true;
					if (!found)
						return false;
				}
				break;
			case 0x200D:		/* ZERO WIDTH JOINER */
				if (i == 0 || !is_virama(w[i - 1]))
					return false;
				break;
			case 0x200C:		/* ZERO WIDTH NON-JOINER */
				if (i == 0 || (!is_virama(w[i - 1]) &&
							   !(i < n - 1 && w[i - 1] >= 0x0620 && w[i - 1] <= 0x06FF &&
								 w[i + 1] >= 0x0620 && w[i + 1] <= 0x06FF)))
					return false;
				break;
		}
		if (c >= 0x0660 && c <= 0x0669)
			arabic_digit = true;
		if (c >= 0x06F0 && c <= 0x06F9)
			ext_arabic_digit = true;
	}
	if (arabic_digit && ext_arabic_digit)
		return false;
	return true;
}

/* RFC 5893 Bidi rule, for a label of a domain that contains RTL labels */
static bool
check_bidi_label(const pg_wchar *w, int n)
{
	int			i;
	bool		has_en = false,
				has_an = false;

	if (is_rtl(w[0]))
	{
		for (i = 0; i < n; i++)
		{
			if (ISDIGIT(w[i]) || (w[i] >= 0x06F0 && w[i] <= 0x06F9))
				has_en = true;
			if (is_arabic_digit(w[i]))
				has_an = true;
			if (w[i] < 0x80 && ISALPHA(w[i]))
				return false;
		}
		return !(has_en && has_an);
	}
	/* LTR label: must start with L, and contain no R, AL or AN */
	if (ISDIGIT(w[0]) || w[0] == '-')
		return false;
	for (i = 0; i < n; i++)
		if (is_rtl(w[i]) || is_arabic_digit(w[i]))
			return false;
	return true;
}

static bool
label_has_rtl(const pg_wchar *w, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (is_rtl(w[i]) || is_arabic_digit(w[i]))
			return true;
	return false;
}

static bool
is_label_sep(pg_wchar c, bool idn)
{
	return c == '.' || (idn && (c == 0x3002 || c == 0xFF0E || c == 0xFF61));
}

/*
 * The common case of check_hostname(): an ASCII name whose labels are not
 * A-labels (no "--" at positions 3-4), answered without decoding.  Returns
 * 1 or 0, or -1 when the full check must decide.
 */
static int
ascii_hostname(const char *s, int len)
{
	int			start = 0;

	for (int i = 0; i <= len; i++)
	{
		unsigned char c = i < len ? (unsigned char) s[i] : '.';
		const char *lab = s + start;
		int			l = i - start;

		if (c >= 0x80)
			return -1;
		if (c != '.')
			continue;
		if (l == 0 || l > 63)
			return 0;
		if (l >= 4 && lab[2] == '-' && lab[3] == '-')
			return -1;			/* an A-label, or invalid: the full check says */
		if (lab[0] == '-' || lab[l - 1] == '-')
			return 0;
		for (int j = 0; j < l; j++)
			if (!(ISDIGIT(lab[j]) || ISALPHA(lab[j]) || lab[j] == '-'))
				return 0;
		start = i + 1;
	}
	return len <= 253 ? 1 : 0;
}

/*
 * hostname (idn = false: ASCII only, A-labels checked by decoding) or
 * idn-hostname (U-labels allowed, checked and measured in A-label form).
 */
static bool
check_hostname(const char *s, int len, bool idn)
{
	pg_wchar   *w;
	int			n,
				i,
				start;
	int			total = 0;
	bool		bidi = false;
	int			pass;
	int			quick;

	/* A-label form has at most 253 octets; U-labels at most 1024 bytes here */
	if (len > 1024)
		return false;
	quick = ascii_hostname(s, len);
	if (quick >= 0)
		return quick == 1;
	if (len == 0 || len > 1024)
		return false;
	w = palloc((len + 1) * sizeof(pg_wchar));
	n = pg_mb2wchar_with_len(s, w, len);
	if (!idn)
		for (i = 0; i < n; i++)
			if (w[i] >= 0x80)
				return false;

	/* pass 0: labels and lengths, find whether it is a Bidi domain; pass 1: Bidi */
	for (pass = 0; pass < 2; pass++)
	{
		start = 0;
		total = 0;
		for (i = 0; i <= n; i++)
		{
			pg_wchar	decoded[64];
			const pg_wchar *lab;
			int			lablen;
			int			alen;
			bool		ascii = true;
			int			j;

			if (i < n && !is_label_sep(w[i], idn))
				continue;
			lab = w + start;
			lablen = i - start;
			if (lablen == 0)
				return false;
			for (j = 0; j < lablen; j++)
				if (lab[j] >= 0x80)
					ascii = false;
			if (ascii && lablen >= 4 && (lab[0] == 'x' || lab[0] == 'X') &&
				(lab[1] == 'n' || lab[1] == 'N') && lab[2] == '-' && lab[3] == '-')
			{
				/* A-label: decode, check, re-encode to itself */
				char		buf[64];
				char		re[64];
				int			dn,
							rn;

				if (lablen > 63)
					return false;
				for (j = 4; j < lablen; j++)
					buf[j - 4] = (char) lab[j];
				dn = punycode_decode(buf, lablen - 4, decoded, 63);
				if (dn <= 0)
					return false;
				rn = punycode_encode(decoded, dn, re, 63);
				if (rn != lablen - 4)
					return false;
				for (j = 0; j < rn; j++)
					if (re[j] != (char) (lab[j + 4] | ((lab[j + 4] >= 'A' && lab[j + 4] <= 'Z') ? 0x20 : 0)))
						return false;
				{
					bool		all_ascii = true;

					for (j = 0; j < dn; j++)
						if (decoded[j] >= 0x80)
							all_ascii = false;
					if (all_ascii)
						return false;
				}
				if (!check_ulabel(decoded, dn))
					return false;
				lab = decoded;
				lablen = dn;
				alen = i - start;
			}
			else if (ascii)
			{
				if (lablen > 63)
					return false;
				for (j = 0; j < lablen; j++)
					if (!(ISDIGIT(lab[j]) || ISALPHA(lab[j]) || lab[j] == '-'))
						return false;
				if (lab[0] == '-' || lab[lablen - 1] == '-')
					return false;
				if (lablen >= 4 && lab[2] == '-' && lab[3] == '-')
					return false;
				alen = lablen;
			}
			else
			{
				char		enc[80];

				if (!check_ulabel(lab, lablen))
					return false;
				alen = punycode_encode(lab, lablen, enc, 59);
				if (alen < 0)
					return false;
				alen += 4;
			}
			if (pass == 0 && label_has_rtl(lab, lablen))
				bidi = true;
			if (pass == 1 && !check_bidi_label(lab, lablen))
				return false;
			total += alen + 1;
			start = i + 1;
		}
		if (total - 1 > 253)
			return false;
		if (!bidi)
			break;
	}
	return true;
}

/* ---- email ---- */

static bool
is_atext(unsigned char c, bool idn)
{
	return ISALPHA(c) || ISDIGIT(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL) ||
		(idn && c >= 0x80);
}

static bool
check_email(const char *s, int len, bool idn)
{
	int			i = 0;
	int			at;

	if (len == 0)
		return false;
	if (s[0] == '"')
	{
		i = 1;
		while (i < len && s[i] != '"')
		{
			unsigned char c = s[i];

			if (i > 64 * 4)
				return false;	/* the local part is too long anyway */

			if (c == '\\')
			{
				if (i + 1 >= len)
					return false;
				i += 2;
				continue;
			}
			if (c < 0x20 && c != '\t')
				return false;
			if (c >= 0x80 && !idn)
				return false;
			i++;
		}
		if (i >= len)
			return false;
		i++;
		if (i >= len || s[i] != '@')
			return false;
	}
	else
	{
		bool		prev_dot = true;

		while (i < len && s[i] != '@')
		{
			unsigned char c = s[i];

			if (i > 64 * 4)
				return false;	/* the local part is too long anyway */
			if (c == '.')
			{
				if (prev_dot)
					return false;
				prev_dot = true;
			}
			else if (is_atext(c, idn))
				prev_dot = false;
			else
				return false;
			i++;
		}
		if (i >= len || prev_dot)
			return false;
	}
	at = i;
	if (at == 0 || at > 64 * 4)
		return false;
	s += at + 1;
	len -= at + 1;
	if (len == 0)
		return false;
	if (s[0] == '[')
	{
		if (s[len - 1] != ']')
			return false;
		if (len > 6 && strncmp(s + 1, "IPv6:", 5) == 0)
			return check_ipv6(s + 6, len - 7);
		return check_ipv4(s + 1, len - 2);
	}
	return check_hostname(s, len, idn);
}

/* ---- URIs ---- */

static bool
is_unreserved(unsigned char c)
{
	return ISALPHA(c) || ISDIGIT(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static bool
is_subdelim(unsigned char c)
{
	return c != 0 && strchr("!$&'()*+,;=", c) != NULL;
}

/*
 * Check chars s[0..len) each being unreserved / sub-delim / pct-encoded /
 * one of 'extra' (or non-ASCII when iri).
 */
static bool
check_chars(const char *s, int len, const char *extra, bool iri)
{
	int			i;

	for (i = 0; i < len; i++)
	{
		unsigned char c = s[i];

		SCAN_CHECK(i);
		if (c == '%')
		{
			if (i + 2 >= len)
				return false;
			if (!ISHEX(s[i + 1]) || !ISHEX(s[i + 2]))
				return false;
			i += 2;
			continue;
		}
		if (is_unreserved(c) || is_subdelim(c) || (extra && c != 0 && strchr(extra, c)))
			continue;
		if (iri && c >= 0x80)
			continue;
		return false;
	}
	return true;
}

static bool
check_authority(const char *s, int len, bool iri)
{
	const char *at = NULL;
	const char *host;
	int			hostlen;
	int			i;

	for (i = 0; i < len; i++)
	{
		SCAN_CHECK(i);
		if (s[i] == '@')
		{
			if (at)
				return false;
			at = s + i;
		}
	}
	if (at)
	{
		if (!check_chars(s, at - s, ":", iri))
			return false;
		host = at + 1;
	}
	else
		host = s;
	hostlen = len - (host - s);
	if (hostlen > 0 && host[0] == '[')
	{
		const char *close = memchr(host, ']', hostlen);
		int			iplen;

		if (close == NULL)
			return false;
		iplen = close - host - 1;
		if (iplen > 0 && (host[1] == 'v' || host[1] == 'V'))
		{
			/* IPvFuture */
			int			j = 2;

			while (j < iplen + 1 && ISHEX(host[j]))
			{
				SCAN_CHECK(j);
				j++;
			}
			if (j == 2 || j >= iplen + 1 || host[j] != '.')
				return false;
			if (!check_chars(host + j + 1, iplen - j, ":", false) || iplen - j < 1)
				return false;
		}
		else if (!check_ipv6(host + 1, iplen))
			return false;
		hostlen -= (close - host + 1);
		host = close + 1;
		if (hostlen > 0 && host[0] != ':')
			return false;
	}
	else
	{
		const char *colon = memchr(host, ':', hostlen);
		int			reglen = colon ? colon - host : hostlen;

		if (!check_chars(host, reglen, NULL, iri))
			return false;
		host += reglen;
		hostlen -= reglen;
	}
	if (hostlen > 0)
	{
		/* :port */
		for (i = 1; i < hostlen; i++)
		{
			SCAN_CHECK(i);
			if (!ISDIGIT(host[i]))
				return false;
		}
	}
	return true;
}

/*
 * URI (need_scheme) or URI-reference; iri allows non-ASCII characters.
 */
static bool
check_uri(const char *s, int len, bool need_scheme, bool iri)
{
	int			i = 0;
	int			pathstart;
	int			pathend;
	bool		has_scheme = false;
	const char *q;

	/* scheme */
	if (len > 0 && ISALPHA(s[0]))
	{
		i = 1;
		while (i < len && (ISALPHA(s[i]) || ISDIGIT(s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.'))
		{
			SCAN_CHECK(i);
			i++;
		}
		if (i < len && s[i] == ':')
		{
			has_scheme = true;
			i++;
		}
		else
			i = 0;
	}
	if (need_scheme && !has_scheme)
		return false;

	pathstart = i;
	if (len - i >= 2 && s[i] == '/' && s[i + 1] == '/')
	{
		int			a = i + 2;
		int			e = a;

		while (e < len && s[e] != '/' && s[e] != '?' && s[e] != '#')
		{
			SCAN_CHECK(e);
			e++;
		}
		if (!check_authority(s + a, e - a, iri))
			return false;
		pathstart = e;
	}
	pathend = pathstart;
	while (pathend < len && s[pathend] != '?' && s[pathend] != '#')
	{
		SCAN_CHECK(pathend);
		pathend++;
	}
	if (!check_chars(s + pathstart, pathend - pathstart, ":@/", iri))
		return false;
	if (!has_scheme && pathstart == 0)
	{
		/* relative-path reference: no ':' in the first segment */
		q = s;
		while (q < s + pathend && *q != '/')
		{
			SCAN_CHECK(q - s);
			if (*q == ':')
				return false;
			q++;
		}
	}
	i = pathend;
	if (i < len && s[i] == '?')
	{
		int			e = i + 1;

		while (e < len && s[e] != '#')
		{
			SCAN_CHECK(e);
			e++;
		}
		if (!check_chars(s + i + 1, e - i - 1, ":@/?", iri))
			return false;
		i = e;
	}
	if (i < len && s[i] == '#')
	{
		if (!check_chars(s + i + 1, len - i - 1, ":@/?", iri))
			return false;
	}
	return true;
}

/* RFC 6570 */
static bool
check_uri_template(const char *s, int len)
{
	int			i = 0;

	while (i < len)
	{
		unsigned char c = s[i];

		SCAN_CHECK(i);
		if (c == '{')
		{
			int			e = i + 1;
			bool		first = true;

			if (e < len && strchr("+#./;?&", s[e]) && s[e] != '\0')
				e++;
			for (;;)
			{
				int			vstart = e;
				bool		prev_dot = true;

				/* varname: varchar *( ["."] varchar ) */
				while (e < len)
				{
					SCAN_CHECK(e);
					if (ISALPHA(s[e]) || ISDIGIT(s[e]) || s[e] == '_')
						prev_dot = false;
					else if (s[e] == '%' && e + 2 < len && ISHEX(s[e + 1]) && ISHEX(s[e + 2]))
					{
						prev_dot = false;
						e += 2;
					}
					else if (s[e] == '.' && !prev_dot)
						prev_dot = true;
					else
						break;
					e++;
				}
				if (e == vstart || prev_dot)
					return false;
				if (e < len && s[e] == ':')
				{
					int			d = ++e;

					while (e < len && ISDIGIT(s[e]))
					{
						SCAN_CHECK(e);
						e++;
					}
					if (e == d || e - d > 4 || s[d] == '0')
						return false;
				}
				else if (e < len && s[e] == '*')
					e++;
				if (e < len && s[e] == ',')
				{
					e++;
					first = false;
					continue;
				}
				break;
			}
			(void) first;
			if (e >= len || s[e] != '}')
				return false;
			i = e + 1;
			continue;
		}
		if (c == '}' || c <= 0x20 || c == 0x7F || c == '"' || c == '<' || c == '>' ||
			c == '\\' || c == '^' || c == '`' || c == '|')
			return false;
		if (c == '%')
		{
			if (i + 2 >= len || !ISHEX(s[i + 1]) || !ISHEX(s[i + 2]))
				return false;
			i += 3;
			continue;
		}
		i++;
	}
	return true;
}

/* ---- the rest ---- */

/* 1 for the hexadecimal digits (a table: no branch per character) */
static const uint8 hex_digit[256] = {
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
	['8'] = 1, ['9'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
};

static bool
check_uuid(const char *s, int len)
{
	const unsigned char *u = (const unsigned char *) s;
	uint8		ok = 1;

	if (len != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-')
		return false;
	for (int i = 0; i < 36; i++)
		if (i != 8 && i != 13 && i != 18 && i != 23)
			ok &= hex_digit[u[i]];
	return ok != 0;
}

static bool
check_json_pointer(const char *s, int len)
{
	int			i;

	if (len > 0 && s[0] != '/')
		return false;
	for (i = 0; i < len; i++)
	{
		SCAN_CHECK(i);
		if (s[i] == '~' && (i + 1 >= len || (s[i + 1] != '0' && s[i + 1] != '1')))
			return false;
	}
	return true;
}

static bool
check_relative_json_pointer(const char *s, int len)
{
	int			i = 0;

	while (i < len && ISDIGIT(s[i]))
	{
		SCAN_CHECK(i);
		i++;
	}
	if (i == 0 || (i > 1 && s[0] == '0'))
		return false;
	if (i < len && s[i] == '#')
		return i + 1 == len;
	return check_json_pointer(s + i, len - i);
}

/*
 * Does s satisfy format f?  Unknown formats always do.  mode (not
 * JS_FORMATS_ANNOTATE) picks RFC 3339 or pydantic's reading of date-time,
 * time and duration.
 */
bool
JsonschemaFormatCheck(JsFormat f, const char *s, int len, JsFormatMode mode)
{
	switch (f)
	{
		case JSF_UNKNOWN:
			return true;
		case JSF_DATE_TIME:
			if (mode == JS_FORMATS_PYDANTIC)
				return JsonschemaPydanticDateTime(s, len);
			return check_date_time(s, len);
		case JSF_DATE:
			return check_date(s, len);
		case JSF_TIME:
			if (mode == JS_FORMATS_PYDANTIC)
				return JsonschemaPydanticTime(s, len);
			return check_time(s, len);
		case JSF_DURATION:
			if (mode == JS_FORMATS_PYDANTIC)
				return JsonschemaPydanticDuration(s, len);
			return check_duration(s, len);
		case JSF_EMAIL:
			return check_email(s, len, false);
		case JSF_IDN_EMAIL:
			return check_email(s, len, true);
		case JSF_HOSTNAME:
			return check_hostname(s, len, false);
		case JSF_IDN_HOSTNAME:
			return check_hostname(s, len, true);
		case JSF_IPV4:
			return check_ipv4(s, len);
		case JSF_IPV6:
			return check_ipv6(s, len);
		case JSF_URI:
			return check_uri(s, len, true, false);
		case JSF_URI_REFERENCE:
			return check_uri(s, len, false, false);
		case JSF_IRI:
			return check_uri(s, len, true, true);
		case JSF_IRI_REFERENCE:
			return check_uri(s, len, false, true);
		case JSF_URI_TEMPLATE:
			return check_uri_template(s, len);
		case JSF_UUID:
			return check_uuid(s, len);
		case JSF_JSON_POINTER:
			return check_json_pointer(s, len);
		case JSF_RELATIVE_JSON_POINTER:
			return check_relative_json_pointer(s, len);
		case JSF_REGEX:
			return JsonschemaRegexIsEcma(s, len);
	}
	return true;
}
