/*-------------------------------------------------------------------------
 *
 * trace_context.c
 *		The one definition of a valid W3C Trace Context value
 *		(https://www.w3.org/TR/trace-context/): the traceparent and tracestate
 *		an event carries to OpenTelemetry's Celery instrumentation, checked
 *		by the settings celerysalt.traceparent and celerysalt.tracestate and
 *		by the worker for rows moved into the outbox by hand.
 *
 * Strict on purpose: what passes here is what OpenTelemetry's propagators
 * accept, so a value that would be ignored on the far side is refused where
 * it is set, with a reason, instead of silently starting a new trace.
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"

#include "trace_context.h"

static inline bool
is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* Whether the n characters at p are lowercase hex digits; *all_zero too. */
static bool
lower_hex_run(const char *p, int n, bool *all_zero)
{
	*all_zero = true;
	for (int i = 0; i < n; i++)
	{
		if (!is_lower_hex(p[i]))
			return false;
		if (p[i] != '0')
			*all_zero = false;
	}
	return true;
}

/*
 * TraceparentProblem
 *		NULL when value is a traceparent of version 00,
 *		"00-<32 hex trace-id>-<16 hex parent-id>-<2 hex trace-flags>" in
 *		lowercase with neither id all zeros.  Else a palloc'd sentence saying
 *		what is wrong (without repeating the value).
 */
char *
TraceparentProblem(const char *value)
{
	size_t		len = strlen(value);
	bool		zero;

	if (len != TRACEPARENT_LEN)
		return psprintf("The value has %zu characters; a traceparent of version 00 has %d.",
						len, TRACEPARENT_LEN);
	if (!lower_hex_run(value, 2, &zero))
		return pstrdup("The version is not two lowercase hex digits.");
	if (value[0] != '0' || value[1] != '0')
		return pstrdup("Only version 00 of traceparent is supported.");
	if (value[2] != '-' || value[35] != '-' || value[52] != '-')
		return pstrdup("The four fields must be separated by \"-\".");
	if (!lower_hex_run(value + 3, 32, &zero))
		return pstrdup("The trace-id is not 32 lowercase hex digits.");
	if (zero)
		return pstrdup("The trace-id is all zeros, which W3C Trace Context defines as invalid.");
	if (!lower_hex_run(value + 36, 16, &zero))
		return pstrdup("The parent-id is not 16 lowercase hex digits.");
	if (zero)
		return pstrdup("The parent-id is all zeros, which W3C Trace Context defines as invalid.");
	if (!lower_hex_run(value + 53, 2, &zero))
		return pstrdup("The trace-flags are not two lowercase hex digits.");
	return NULL;
}

/* lcalpha / DIGIT / "_" / "-" / "*" / "/": the characters after a key's first */
static inline bool
is_key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		c == '_' || c == '-' || c == '*' || c == '/';
}

/*
 * Whether [p, p + n) is a tracestate key: simple-key (lcalpha, then up to
 * 255 key characters) or multi-tenant-key (tenant-id "@" system-id: a
 * lowercase letter or digit and up to 240 key characters, then a lowercase
 * letter and up to 13).
 */
static bool
valid_key(const char *p, int n)
{
	const char *at = memchr(p, '@', n);
	int			tenant_len = at ? (int) (at - p) : n;

	if (tenant_len < 1 || tenant_len > (at ? 241 : 256))
		return false;
	if (!(p[0] >= 'a' && p[0] <= 'z') && !(at && p[0] >= '0' && p[0] <= '9'))
		return false;
	for (int i = 1; i < tenant_len; i++)
		if (!is_key_char(p[i]))
			return false;
	if (at)
	{
		const char *sys = at + 1;
		int			sys_len = n - tenant_len - 1;

		if (sys_len < 1 || sys_len > 14 || !(sys[0] >= 'a' && sys[0] <= 'z'))
			return false;
		for (int i = 1; i < sys_len; i++)
			if (!is_key_char(sys[i]))
				return false;
	}
	return true;
}

/*
 * Whether [p, p + n) is a tracestate value: 1 to 256 printable ASCII
 * characters other than "," and "=", not ending in a space.
 */
static bool
valid_value(const char *p, int n)
{
	if (n < 1 || n > 256 || p[n - 1] == ' ')
		return false;
	for (int i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] > 0x7e || p[i] == ',' || p[i] == '=')
			return false;
	return true;
}

/*
 * TracestateProblem
 *		NULL when value is a W3C tracestate list: comma-separated key=value
 *		members (optional spaces or tabs around each, empty members allowed),
 *		at most 32 of them, no key twice, at most 8192 bytes in all.  Else a
 *		palloc'd sentence saying what is wrong.
 */
char *
TracestateProblem(const char *value)
{
	size_t		len = strlen(value);
	const char *keys[TRACESTATE_MAX_MEMBERS];
	int			key_lens[TRACESTATE_MAX_MEMBERS];
	int			nmembers = 0;
	const char *p = value;

	if (len > TRACESTATE_MAX_LEN)
		return psprintf("The value has %zu bytes; at most %d are accepted.",
						len, TRACESTATE_MAX_LEN);
	for (int position = 1;; position++)
	{
		const char *start = p;
		const char *end;
		const char *eq;

		while (*p && *p != ',')
			p++;
		end = p;
		while (start < end && (*start == ' ' || *start == '\t'))
			start++;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (start < end)
		{
			if (nmembers == TRACESTATE_MAX_MEMBERS)
				return psprintf("The list has more than %d members.", TRACESTATE_MAX_MEMBERS);
			eq = memchr(start, '=', end - start);
			if (eq == NULL || !valid_key(start, (int) (eq - start)))
				return psprintf("Member %d does not start with a key and \"=\": a key is a lowercase letter "
								"followed by up to 255 of a-z, 0-9, _, -, *, /, or tenant@system.",
								position);
			if (!valid_value(eq + 1, (int) (end - eq - 1)))
				return psprintf("The value of member %d is not 1 to 256 printable ASCII characters "
								"without \",\" and \"=\".", position);
			for (int i = 0; i < nmembers; i++)
				if (key_lens[i] == eq - start && memcmp(keys[i], start, key_lens[i]) == 0)
					return psprintf("Member %d repeats the key of an earlier member.", position);
			keys[nmembers] = start;
			key_lens[nmembers] = (int) (eq - start);
			nmembers++;
		}
		if (*p == '\0')
			break;
		p++;
	}
	return NULL;
}
