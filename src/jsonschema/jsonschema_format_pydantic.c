/*-------------------------------------------------------------------------
 *
 * jsonschema_format_pydantic.c
 *		The "format" checkers for date-time, time and duration as pydantic 2
 *		validates a datetime, time and timedelta field from JSON (pydantic-
 *		core's speedate), for schemas that came from model_json_schema().
 *
 * pydantic writes "format": "date-time" for a datetime field, yet accepts
 * (and, for a naive datetime, sends) strings RFC 3339 refuses: no offset,
 * a space instead of "T", a Unix timestamp; a timedelta is written back as
 * "PT1H0.5S" or "-P1D".  These checkers accept what pydantic 2.14
 * (pydantic-core 2.50) accepts, as observed by running it (the strings are
 * in test/integration/test_format_dialect.py, which compares both):
 *
 *	date-time	YYYY-MM-DD (year 1..9999, a real date), optionally followed by
 *				"T", "t", " " or "_" and a time; or a Unix timestamp:
 *				[+-]digits[.digits] (seconds, or milliseconds past 2e10) in
 *				years 1..9999
 *	time		HH:MM[:SS[(.|,)digits]] (no leap second), then optionally
 *				Z, z, +HH:MM, +HHMM (offset below 24:00)
 *	duration	[+-] then ISO 8601 P[nY][nM][nW][nD][T[nH][nM][nS]] with the
 *				units in any order and repeated, a fraction (.|,) only on
 *				the last number, "T" possibly last; or :MM:SS, H:MM:SS or
 *				HH:MM[:SS] with any number of hours; or "N days, HH:MM:SS"
 *				(d, day, days; comma, space and the time optional, hours
 *				below 24); at most 999,999,999 days in all
 *
 * The strict checkers (RFC 3339) stay in jsonschema_format.c; which one runs
 * is the caller's choice (JsFormatMode), never a setting read here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"

#include "jsonschema_int.h"

#define ISDIGIT(c) ((c) >= '0' && (c) <= '9')

#define PYD_MAX_DAYS		INT64CONST(999999999)
#define PYD_MAX_U32			INT64CONST(4294967295)
/* Unix timestamps in milliseconds: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z */
#define PYD_MIN_MS			INT64CONST(62135596800000)
#define PYD_MAX_MS			INT64CONST(253402300799999)

/* n ASCII digits at s (s has at least n bytes) -> value, or -1 */
static int
pyd_digits(const char *s, int n)
{
	int			v = 0;

	for (int i = 0; i < n; i++)
	{
		if (!ISDIGIT(s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* At s[*i]: one or more digits of a fraction; advances *i past them. */
static bool
pyd_fraction_digits(const char *s, int len, int *i)
{
	int			start = *i;

	while (*i < len && ISDIGIT(s[*i]))
	{
		if (unlikely((*i & 0xFFFF) == 0xFFFF))
			CHECK_FOR_INTERRUPTS();
		(*i)++;
	}
	return *i > start;
}

/* YYYY-MM-DD, a real date of years 1..9999, in exactly len = 10 bytes */
static bool
pyd_date(const char *s)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int			y,
				m,
				d;

	if (s[4] != '-' || s[7] != '-')
		return false;
	y = pyd_digits(s, 4);
	m = pyd_digits(s + 5, 2);
	d = pyd_digits(s + 8, 2);
	if (y < 1 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return false;
	if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return false;
	return true;
}

/*
 * A time of day at s[0..len): HH:MM[:SS[(.|,)digits]] and, when
 * with_offset, an optional Z / z / +HH:MM / +HHMM; nothing may follow.
 */
static bool
pyd_time(const char *s, int len, bool with_offset)
{
	int			i;
	int			h,
				mi;

	if (len < 5 || s[2] != ':')
		return false;
	h = pyd_digits(s, 2);
	mi = pyd_digits(s + 3, 2);
	if (h < 0 || h > 23 || mi < 0 || mi > 59)
		return false;
	i = 5;
	if (i < len && s[i] == ':')
	{
		int			sec;

		if (len - i < 3 || (sec = pyd_digits(s + i + 1, 2)) < 0 || sec > 59)
			return false;
		i += 3;
		if (i < len && (s[i] == '.' || s[i] == ','))
		{
			i++;
			if (!pyd_fraction_digits(s, len, &i))
				return false;
		}
	}
	if (i == len)
		return true;
	if (!with_offset)
		return false;
	if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == len)
		return true;
	if (s[i] == '+' || s[i] == '-')
	{
		int			oh,
					om;

		if (len - i == 6 && s[i + 3] == ':')
		{
			oh = pyd_digits(s + i + 1, 2);
			om = pyd_digits(s + i + 4, 2);
		}
		else if (len - i == 5)
		{
			oh = pyd_digits(s + i + 1, 2);
			om = pyd_digits(s + i + 3, 2);
		}
		else
			return false;
		return oh >= 0 && oh <= 23 && om >= 0 && om <= 59;
	}
	return false;
}

/*
 * A Unix timestamp: [+-]digits[.[digits]] or [+-].digits, seconds, or
 * milliseconds when above 2e10; it must fall in years 1..9999.
 */
static bool
pyd_timestamp(const char *s, int len)
{
	int			i = 0;
	bool		negative = false;
	int			ndigits = 0;
	int64		ipart = 0;
	int			sig = 0;
	bool		frac_nonzero = false;

	if (i < len && (s[i] == '+' || s[i] == '-'))
		negative = s[i++] == '-';
	for (; i < len && ISDIGIT(s[i]); i++)
	{
		if (unlikely((i & 0xFFFF) == 0xFFFF))
			CHECK_FOR_INTERRUPTS();
		ndigits++;
		if (sig > 0 || s[i] != '0')
		{
			/* beyond 15 significant digits every value is out of range */
			if (++sig > 15)
				return false;
			ipart = ipart * 10 + (s[i] - '0');
		}
	}
	if (i < len && s[i] == '.')
	{
		for (i++; i < len && ISDIGIT(s[i]); i++)
		{
			if (unlikely((i & 0xFFFF) == 0xFFFF))
				CHECK_FOR_INTERRUPTS();
			ndigits++;
			if (s[i] != '0')
				frac_nonzero = true;
		}
	}
	if (i != len || ndigits == 0)
		return false;
	if (negative)
		return ipart < PYD_MIN_MS || (ipart == PYD_MIN_MS && !frac_nonzero);
	return ipart <= PYD_MAX_MS;
}

/*
 * JsonschemaPydanticDateTime
 *		Would pydantic 2 accept s as a datetime?
 */
bool
JsonschemaPydanticDateTime(const char *s, int len)
{
	if (len >= 10 && s[4] == '-')
	{
		if (!pyd_date(s))
			return false;
		if (len == 10)
			return true;
		if (s[10] != 'T' && s[10] != 't' && s[10] != ' ' && s[10] != '_')
			return false;
		return pyd_time(s + 11, len - 11, true);
	}
	return pyd_timestamp(s, len);
}

/*
 * JsonschemaPydanticTime
 *		Would pydantic 2 accept s as a time?
 */
bool
JsonschemaPydanticTime(const char *s, int len)
{
	return pyd_time(s, len, true);
}

/* digits at s[*i] -> *value (false past 2^32 - 1, as speedate's u32) */
static bool
pyd_number(const char *s, int len, int *i, int64 *value)
{
	int			start = *i;

	*value = 0;
	while (*i < len && ISDIGIT(s[*i]))
	{
		*value = *value * 10 + (s[*i] - '0');
		if (*value > PYD_MAX_U32)
			return false;
		(*i)++;
	}
	return *i > start;
}

/* ISO 8601 after the "P" (at s[i]); speedate's reading */
static bool
pyd_iso_duration(const char *s, int len, int i)
{
	bool		got_t = false;
	bool		any = false;
	bool		had_fraction = false;
	int64		days = 0;
	int64		seconds = 0;

	while (i < len)
	{
		int64		value;
		int64		mult;
		double		fraction = 0;

		if (s[i] == 'T')
		{
			if (got_t)
				return false;
			got_t = true;
			i++;
			continue;
		}
		if (had_fraction || !pyd_number(s, len, &i, &value))
			return false;
		if (i < len && (s[i] == '.' || s[i] == ','))
		{
			double		scale = 0.1;

			had_fraction = true;
			for (i++; i < len && ISDIGIT(s[i]); i++)
			{
				if (unlikely((i & 0xFFFF) == 0xFFFF))
					CHECK_FOR_INTERRUPTS();
				fraction += (s[i] - '0') * scale;
				scale /= 10;
			}
		}
		if (i >= len)
			return false;
		if (got_t)
			mult = s[i] == 'H' ? 3600 : s[i] == 'M' ? 60 : s[i] == 'S' ? 1 : 0;
		else
			mult = s[i] == 'Y' ? 365 : s[i] == 'M' ? 30 : s[i] == 'W' ? 7 : s[i] == 'D' ? 1 : 0;
		if (mult == 0)
			return false;
		i++;
		if (got_t)
		{
			seconds += value * mult + (int64) (fraction * mult);
			if (seconds > PYD_MAX_U32)
				return false;
		}
		else
		{
			days += value * mult + (int64) (fraction * mult);
			if (days > PYD_MAX_U32)
				return false;
		}
		any = true;
	}
	return any && days + seconds / 86400 <= PYD_MAX_DAYS;
}

/*
 * A clock duration at s[i..len): H:MM:SS, HH:MM or HH:MM:SS, a fraction
 * after the seconds; hours unbounded unless max_hour >= 0.  Adds the
 * seconds to *seconds.
 */
static bool
pyd_clock(const char *s, int len, int i, int max_hour, int64 *seconds)
{
	int64		hours = 0;
	int			start = i;
	int			mi;

	/* the hours may be missing (":MM:SS"), as speedate reads them */
	if ((i < len && ISDIGIT(s[i]) && !pyd_number(s, len, &i, &hours)) ||
		i >= len || s[i] != ':')
		return false;
	if (i == start)
		hours = 0;
	if (max_hour >= 0 && (i - start > 2 || hours > max_hour))
		return false;
	if (len - i < 3 || (mi = pyd_digits(s + i + 1, 2)) < 0 || mi > 59)
		return false;
	i += 3;
	if (i < len && s[i] == ':')
	{
		int			sec;

		if (len - i < 3 || (sec = pyd_digits(s + i + 1, 2)) < 0 || sec > 59)
			return false;
		i += 3;
		if (i < len && (s[i] == '.' || s[i] == ','))
		{
			i++;
			if (!pyd_fraction_digits(s, len, &i))
				return false;
		}
	}
	else if (i - 3 - start < 2)
		return false;			/* H:MM and :MM need their seconds */
	*seconds += hours * 3600;
	return i == len;
}

/*
 * JsonschemaPydanticDuration
 *		Would pydantic 2 accept s as a timedelta?
 */
bool
JsonschemaPydanticDuration(const char *s, int len)
{
	int			i = 0;
	int64		days;
	int64		seconds = 0;

	if (i < len && (s[i] == '+' || s[i] == '-'))
		i++;
	if (i < len && s[i] == 'P')
		return pyd_iso_duration(s, len, i + 1);

	/* a clock, or days: the first non-digit decides */
	{
		int			j = i;

		/* more than 10 digits overflow either way: no need to look further */
		while (j < len && ISDIGIT(s[j]) && j - i <= 10)
			j++;
		if (j < len && s[j] == ':')
			return pyd_clock(s, len, i, -1, &seconds) &&
				seconds / 86400 <= PYD_MAX_DAYS;
	}
	if (!pyd_number(s, len, &i, &days) || days > PYD_MAX_DAYS)
		return false;
	if (i < len && s[i] == ' ')
		i++;
	if (i >= len || (s[i] != 'd' && s[i] != 'D'))
		return false;
	i++;
	if (i < len && (s[i] == 'a' || s[i] == 'A'))
	{
		if (i + 1 >= len || s[i + 1] != (s[i] == 'a' ? 'y' : 'Y'))
			return false;
		i += 2;
		if (i < len && (s[i] == 's' || s[i] == 'S'))
			i++;
	}
	if (i < len && s[i] == ',')
		i++;
	if (i < len && s[i] == ' ')
		i++;
	if (i == len)
		return true;
	return pyd_clock(s, len, i, 23, &seconds);
}
