/*-------------------------------------------------------------------------
 *
 * conninfo.c
 *		Connection information for RabbitMQ and Redis, and keeping its
 *		secrets secret: amqp:// URLs (one node, or several joined by ";")
 *		read as kombu and py-amqp read them, redis:// URLs as redis-py parses
 *		them, password files, masking of passwords in URLs and texts, and
 *		the emit_log_hook that keeps them out of the server log.  Reads no
 *		setting: the settings' check hooks (guc.c), the broker client and
 *		the result-backend client call it.
 *
 * ConninfoRedactText replaces the password of every URL in a text with "***".  The
 * emit_log_hook applies it to every part of every message (message, detail,
 * hint, context, internal query) and to the statement text PostgreSQL logs
 * after an error ("STATEMENT:"), so a password typed in SQL (ALTER SYSTEM,
 * a refused SET, a log_statement line) or logged by PostgreSQL on reload
 * ("parameter ... changed to ...") reaches the log as "***".
 *
 * The hook is installed in _PG_init, so with shared_preload_libraries it
 * runs in the postmaster too, which is the process that logs reloads.  It
 * only runs for messages that go to the server log: messages that only a
 * client sees must not carry a password in the first place (guc.c never
 * repeats an unparsable URL, and shows a parsed one masked).
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"

#include <errno.h>

#include "mb/pg_wchar.h"
#include "storage/fd.h"

#include "tcop/tcopprot.h"
#include "utils/elog.h"
#include "utils/memutils.h"

#include "conninfo.h"

static emit_log_hook_type prev_emit_log_hook = NULL;

/* The redacted copy debug_query_string points to, if any (TopMemoryContext). */
static char *redacted_query = NULL;

#define REDACTED	"***"

static bool
is_scheme_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
}

static bool
is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_redis_scheme(const char *s, int len)
{
	return (len == 5 && pg_strncasecmp(s, "redis", 5) == 0) ||
		(len == 6 && pg_strncasecmp(s, "rediss", 6) == 0);
}

/*
 * The schemes kombu reads as RabbitMQ: pyamqp and librabbitmq are its
 * aliases of amqp, amqps is amqp over TLS.
 */
static const char *const amqp_schemes[] = {"amqp", "amqps", "pyamqp", "librabbitmq"};

/*
 * If one of amqp_schemes followed by "://" starts at s (and ends before
 * end), the length of both, and the scheme's name in *name (if not NULL);
 * else 0.  The scheme is read case-insensitively, as urllib does.
 */
static int
amqp_scheme_at(const char *s, const char *end, const char **name)
{
	for (size_t i = 0; i < lengthof(amqp_schemes); i++)
	{
		int			len = strlen(amqp_schemes[i]);

		if (end - s >= len + 3 && pg_strncasecmp(s, amqp_schemes[i], len) == 0 &&
			strncmp(s + len, "://", 3) == 0)
		{
			if (name != NULL)
				*name = amqp_schemes[i];
			return len + 3;
		}
	}
	return 0;
}

static bool
is_known_scheme(const char *s, int len)
{
	if (is_redis_scheme(s, len))
		return true;
	for (size_t i = 0; i < lengthof(amqp_schemes); i++)
		if (len == (int) strlen(amqp_schemes[i]) && pg_strncasecmp(s, amqp_schemes[i], len) == 0)
			return true;
	return false;
}

/*
 * Append s[0..len) to buf with the password of the URL in it replaced.
 *
 * A URL here is a scheme followed by ":/" (or one of the amqp or redis
 * schemes followed by ":" alone, which the parsers refuse but a user may
 * type), then the user information up to the LAST "@" of the piece.  The
 * password is everything after the first ":" of the user information; for
 * redis:// and rediss:// user information without ":" is a password too.
 * Taking the last "@" and the first ":" masks at least what any parser
 * (kombu, redis-py, this file's) would take as the password, also for
 * URLs that none of them accepts.
 *
 * With strict, a piece whose password would span a line break or a
 * semicolon is not taken as one URL (it is a quoted piece of code, like a
 * DO body): return false and append nothing; the caller splits it further.
 * A quote does not end a password: the parsers accept ' and " in one (as
 * '' inside a SQL literal), so the span is masked with them.
 */
static bool
append_masked_one(StringInfo buf, const char *s, int len, bool strict)
{
	const char *end = s + len;
	const char *at = NULL;
	const char *userinfo = NULL;
	const char *colon;
	bool		redis = false;

	for (const char *p = s; p < end; p++)
		if (*p == '@')
			at = p;
	if (at != NULL)
	{
		/* the first scheme separator before the "@" */
		for (const char *p = s; p < at && userinfo == NULL; p++)
		{
			const char *start = p;

			if (*p != ':')
				continue;
			while (start > s && is_scheme_char(start[-1]))
				start--;
			while (start < p && !is_alpha(*start))
				start++;
			if (start == p)
				continue;
			if (p[1] == '/' || is_known_scheme(start, p - start))
			{
				redis = is_redis_scheme(start, p - start);
				userinfo = p + 1;
				while (userinfo < at && *userinfo == '/')
					userinfo++;
			}
		}
	}
	if (userinfo != NULL)
	{
		colon = memchr(userinfo, ':', at - userinfo);
		if (colon != NULL)
			userinfo = colon + 1;
		else if (!redis || userinfo == at)
			userinfo = NULL;
	}
	if (userinfo == NULL)
	{
		appendBinaryStringInfo(buf, s, len);
		return true;
	}
	if (strict)
	{
		for (const char *p = userinfo; p < at; p++)
			if (*p == '\n' || *p == '\r' || *p == ';')
				return false;
	}
	appendBinaryStringInfo(buf, s, userinfo - s);
	appendStringInfoString(buf, REDACTED);
	appendBinaryStringInfo(buf, at, end - at);
	return true;
}


/*
 * The ";" of s[0..end) at or after p that starts the next node of an amqp
 * node list: one followed (after spaces) by an amqp scheme and "://"; end
 * if there is none.
 */
static const char *
next_node_split(const char *p, const char *end)
{
	for (; p < end; p++)
	{
		const char *q = p + 1;

		if (*p != ';')
			continue;
		while (q < end && (*q == ' ' || *q == '\t'))
			q++;
		if (amqp_scheme_at(q, end, NULL) > 0)
			return p;
	}
	return end;
}

/*
 * Whether node s[0..end) (starting with its scheme, after any spaces) reads
 * as a URL of its own: it has user information ("@"), or its authority has
 * no ":" or only a numeric port after it.  A node like "amqp://user:pass"
 * is rather the start of a password holding ";amqp://".
 */
static bool
plausible_node(const char *s, const char *end)
{
	const char *auth;
	const char *auth_end;
	const char *colon;

	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	auth = s + amqp_scheme_at(s, end, NULL);
	if (memchr(s, '@', end - s) != NULL)
		return true;
	auth_end = auth;
	while (auth_end < end && *auth_end != '/' && *auth_end != '?' && *auth_end != '#')
		auth_end++;
	if (auth < auth_end && *auth == '[')
	{
		const char *close = memchr(auth, ']', auth_end - auth);

		if (close == NULL)
			return false;
		auth = close + 1;
	}
	colon = memchr(auth, ':', auth_end - auth);
	if (colon == NULL)
		return true;
	for (const char *p = colon + 1; p < auth_end; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

/*
 * Append s[0..len) to buf with the password of every node masked, when the
 * piece holds an amqp node list (kombu's failover form
 * "amqp://u:p@a//;amqp://u:q@b//"): kombu splits such a list at every ";",
 * so no password of it holds one, and each node is masked on its own.
 * Returns -1 (nothing appended) when the piece is not such a list or a
 * node of it does not read as a URL of its own: the caller then masks the
 * piece as one URL, from the first password to the last "@", which hides
 * more.  Otherwise as append_masked_one.
 */
static int
append_masked_list(StringInfo buf, const char *s, int len, bool strict)
{
	const char *end = s + len;
	const char *first = NULL;
	const char *node;
	StringInfoData out;

	/* the piece's first "scheme://" must be an amqp one */
	for (const char *p = s; p + 3 <= end && first == NULL; p++)
	{
		const char *start = p;

		if (p[0] != ':' || p[1] != '/' || p[2] != '/')
			continue;
		while (start > s && is_scheme_char(start[-1]))
			start--;
		while (start < p && !is_alpha(*start))
			start++;
		if (start == p || amqp_scheme_at(start, end, NULL) == 0)
			return -1;
		first = start;
	}
	if (first == NULL || next_node_split(first, end) == end)
		return -1;
	for (node = first;;)
	{
		const char *split = next_node_split(node, end);

		if (!plausible_node(node, split))
			return -1;
		if (split == end)
			break;
		node = split + 1;
	}

	initStringInfo(&out);
	appendBinaryStringInfo(&out, s, first - s);
	for (node = first;;)
	{
		const char *split = next_node_split(node, end);

		if (!append_masked_one(&out, node, split - node, strict))
		{
			pfree(out.data);
			return 0;
		}
		if (split == end)
			break;
		appendStringInfoChar(&out, ';');
		node = split + 1;
	}
	appendBinaryStringInfo(buf, out.data, out.len);
	pfree(out.data);
	return 1;
}

/*
 * Append s[0..len) to buf with the password of the URL in it, or of each
 * node of an amqp node list, replaced by "***".  With strict, see
 * append_masked_one.
 */
static bool
append_masked(StringInfo buf, const char *s, int len, bool strict)
{
	int			rc = append_masked_list(buf, s, len, strict);

	if (rc >= 0)
		return rc == 1;
	return append_masked_one(buf, s, len, strict);
}

/*
 * What one redaction pass remembers so that its work stays linear in the
 * text, whatever the text (it runs in the log hook, where a statement cannot
 * be cancelled): where a quote of each kind was found to have no closing
 * quote (a later one of the same kind has none either), and how many bytes
 * the search for dollar-quote closings may still read (distinct tags that
 * never close would make it quadratic; past the budget a "$" opens nothing,
 * and the words inside are still masked one by one).  Nested quoted pieces
 * are redacted with a pass of their own, to MAX_QUOTE_DEPTH.
 */
#define MAX_QUOTE_DEPTH		8

typedef struct RedactScan
{
	const char *end;			/* of the text */
	const char *unclosed[2][2];	/* [quote is '"'][backslash escapes] */
	size_t		dollar_budget;
} RedactScan;

/* The first occurrence of needle (len bytes) in the len_hay bytes at hay, or NULL. */
static const char *
find_within(const char *hay, size_t len_hay, const char *needle, size_t len)
{
	for (const char *h = hay; len_hay >= len && (size_t) (h - hay) <= len_hay - len; h++)
	{
		h = memchr(h, needle[0], len_hay - len - (h - hay) + 1);
		if (h == NULL)
			return NULL;
		if (memcmp(h, needle, len) == 0)
			return h;
	}
	return NULL;
}

/*
 * If a quoted piece (SQL string or identifier, dollar-quoted string, or a
 * double-quoted value in a message) starts at p, return its end (just after
 * the closing quote) and set *body and *bodylen; else NULL.  A quote only opens
 * a piece at the start or after a character that is not a letter or digit
 * (so the apostrophe of "couldn't" does not), or after an E prefix.
 */
static const char *
quoted_piece(RedactScan *scan, const char *text, const char *p, const char **body, int *bodylen)
{
	char		q = *p;
	bool		backslash = false;
	const char *prev = p > text ? p - 1 : NULL;

	if (q != '\'' && q != '"' && q != '$')
		return NULL;
	if (prev != NULL && (is_alpha(*prev) || (*prev >= '0' && *prev <= '9') || *prev == '_'))
	{
		/* E'...' with backslash escapes */
		if (q == '\'' && (*prev == 'E' || *prev == 'e') &&
			(prev == text || !is_scheme_char(prev[-1])))
			backslash = true;
		else
			return NULL;
	}
	if (q == '$')
	{
		const char *t = p + 1;
		const char *close;
		char	   *tag;

		while (*t && (is_alpha(*t) || *t == '_' || (t > p + 1 && *t >= '0' && *t <= '9')))
			t++;
		if (*t != '$')
			return NULL;
		tag = pnstrdup(p, t - p + 1);
		close = find_within(t + 1, Min((size_t) (scan->end - (t + 1)), scan->dollar_budget),
							tag, t - p + 1);
		pfree(tag);
		/* charge what was read: up to the closing tag, or all it could */
		scan->dollar_budget -= close ? (size_t) (close - (t + 1))
			: Min((size_t) (scan->end - (t + 1)), scan->dollar_budget);
		if (close == NULL)
			return NULL;
		*body = t + 1;
		*bodylen = close - (t + 1);
		return close + (t - p + 1);
	}
	if (scan->unclosed[q == '"'][backslash] != NULL && p > scan->unclosed[q == '"'][backslash])
		return NULL;			/* an earlier one found no closing quote after it */
	for (const char *c = p + 1; *c; c++)
	{
		if (backslash && *c == '\\' && c[1] != '\0')
			c++;
		else if (*c == q)
		{
			if (c[1] == q)
				c++;			/* doubled quote */
			else
			{
				*body = p + 1;
				*bodylen = c - (p + 1);
				return c + 1;
			}
		}
	}
	scan->unclosed[q == '"'][backslash] = p;
	return NULL;
}

/*
 * ConninfoRedactText
 *		text with the password of every URL in it replaced by "***",
 *		palloc'd; or text itself when it holds no URL with a password.
 *		A quoted piece is masked as one URL (a password may hold spaces
 *		there) unless it looks like code, in which case it is redacted as a
 *		text of its own; the rest word by word.
 */
static char *redact_text(const char *text, int depth);

char *
ConninfoRedactText(const char *text)
{
	return redact_text(text, 0);
}

static char *
redact_text(const char *text, int depth)
{
	StringInfoData buf;
	const char *p = text;
	RedactScan	scan = {NULL, {{NULL}}, 0};

	if (text == NULL || strchr(text, '@') == NULL)
		return (char *) text;
	scan.end = text + strlen(text);
	scan.dollar_budget = 4 * (scan.end - text) + 1024;
	initStringInfo(&buf);
	while (*p)
	{
		const char *body;
		int			bodylen;
		const char *end = depth < MAX_QUOTE_DEPTH ? quoted_piece(&scan, text, p, &body, &bodylen) : NULL;

		if (end != NULL)
		{
			appendBinaryStringInfo(&buf, p, body - p);
			if (!append_masked(&buf, body, bodylen, true))
			{
				char	   *inner = pnstrdup(body, bodylen);

				appendStringInfoString(&buf, redact_text(inner, depth + 1));
			}
			appendBinaryStringInfo(&buf, body + bodylen, end - (body + bodylen));
			p = end;
		}
		else if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' ||
				 *p == '\'' || *p == '"')
			appendStringInfoChar(&buf, *p++);
		else
		{
			const char *w = p++;

			while (*p && !(*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' ||
						   *p == '\'' || *p == '"'))
				p++;
			append_masked(&buf, w, p - w, false);
		}
	}
	if (strcmp(buf.data, text) == 0)
	{
		pfree(buf.data);
		return (char *) text;
	}
	return buf.data;
}

/*
 * ConninfoRedactUrl
 *		One URL with its password replaced by "***", palloc'd.
 */
char *
ConninfoRedactUrl(const char *url)
{
	StringInfoData buf;

	initStringInfo(&buf);
	append_masked(&buf, url, strlen(url), false);
	return buf.data;
}

static void
redact_field(char **field)
{
	if (*field != NULL)
		*field = ConninfoRedactText(*field);
}

static void
redact_emit_log_hook(ErrorData *edata)
{
	redact_field(&edata->message);
	redact_field(&edata->detail);
	redact_field(&edata->detail_log);
	redact_field(&edata->hint);
	redact_field(&edata->context);
	redact_field(&edata->internalquery);

	/*
	 * elog.c prints debug_query_string after "STATEMENT:" (and in csvlog
	 * and jsonlog).  It is only read for logging (and copied for parallel
	 * workers) and is set anew for every statement, so point it to a
	 * redacted copy for the rest of this statement.
	 */
	if (debug_query_string != NULL && debug_query_string != redacted_query &&
		strchr(debug_query_string, '@') != NULL)
	{
		const char *redacted = ConninfoRedactText(debug_query_string);

		if (redacted != debug_query_string)
		{
			char	   *copy = MemoryContextAllocExtended(TopMemoryContext,
														  strlen(redacted) + 1,
														  MCXT_ALLOC_NO_OOM);

			if (copy == NULL)
				edata->hide_stmt = true;
			else
			{
				strcpy(copy, redacted);
				if (redacted_query != NULL)
					pfree(redacted_query);
				redacted_query = copy;
				debug_query_string = redacted_query;
			}
		}
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

void
ConninfoInstallLogHook(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = redact_emit_log_hook;
}

/* ------------------------------------------------------ percent-decoding */

/* Value of hex digit c, or -1. */
static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * s[0..len) percent-decoded, palloc'd, as Python's urllib.parse.unquote does
 * it (a '%' not followed by two hex digits stays as it is).  NULL if it
 * decodes to a NUL byte, which no Redis name or password can hold here.
 */
static char *
percent_decode(const char *s, size_t len)
{
	char	   *out = palloc(len + 1);
	size_t		n = 0;

	for (size_t i = 0; i < len; i++)
	{
		if (s[i] == '%' && i + 2 < len &&
			hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0)
		{
			out[n] = (char) (hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
			if (out[n] == '\0')
				return NULL;
			n++;
			i += 2;
		}
		else
			out[n++] = s[i];
	}
	out[n] = '\0';
	return out;
}

/* ------------------------------------------------------------ amqp:// */

#define AMQP_PORT			5672
#define AMQPS_PORT			5671

/*
 * s[0..len) percent-decoded into *out, palloc'd; false (with *error saying
 * what of who is wrong) when it decodes to a NUL byte or to bytes that are
 * not UTF-8 (Python's unquote, which kombu uses, would replace them).
 */
static bool
decode_part(const char *s, size_t len, char **out, const char *who, const char *what,
			char **error)
{
	*out = percent_decode(s, len);
	if (*out == NULL)
	{
		*error = psprintf("%s has an encoded NUL byte in its %s.", who, what);
		return false;
	}
	if (pg_encoding_verifymbstr(PG_UTF8, *out, strlen(*out)) != (int) strlen(*out))
	{
		*error = psprintf("%s has bytes in its %s that are not UTF-8 once percent-decoded.", who, what);
		return false;
	}
	return true;
}

/*
 * Parse one node's URL s[0..end) as kombu's url_to_parts reads it (urllib
 * with http semantics), then fill in what it leaves out as py-amqp does:
 *
 *	scheme://[user[:password]@][host][:port][/vhost][?query][#fragment]
 *
 * The authority ends at the first "/", "?" or "#"; the user information runs
 * up to its LAST "@" and splits at its first ":"; user, password, host and
 * vhost are percent-decoded; the vhost is the path without its first "/"
 * ("//" and "/%2F" are "/").  An empty or absent user or password is
 * "guest", an empty host "localhost", which py-amqp connects to as
 * 127.0.0.1; port 0 or none and an empty vhost are not given
 * (out->port_given, out->vhost_given) and take the defaults: 5672 (5671 for
 * amqps) and "/".  who names the node in error messages.
 */
static bool
parse_amqp_node(const char *s, const char *end, const char *who, AmqpUrl *out,
				char **error)
{
	const char *scheme;
	const char *auth;
	const char *auth_end;
	const char *at = NULL;
	const char *host;
	const char *host_end;
	const char *port_text = NULL;
	const char *p;
	int			len;

	memset(out, 0, sizeof(*out));
	for (p = s; p < end; p++)
		if ((unsigned char) *p <= ' ' || *p == '\x7f')
		{
			*error = psprintf("%s holds a space or a control character (percent-encode it, a space as %%20).", who);
			return false;
		}
	len = amqp_scheme_at(s, end, &scheme);
	if (len == 0)
	{
		*error = psprintf("%s must start with amqp://, amqps://, pyamqp:// or librabbitmq:// (celerysalt delivers to RabbitMQ; "
						  "each node of a \";\" list is a whole URL).", who);
		return false;
	}
	out->scheme = pstrdup(scheme);
	out->redacted = ConninfoRedactUrl(pnstrdup(s, end - s));
	auth = s + len;
	for (auth_end = auth; auth_end < end; auth_end++)
		if (*auth_end == '/' || *auth_end == '?' || *auth_end == '#')
			break;

	/* user information: up to the last "@", split at its first ":" */
	for (p = auth; p < auth_end; p++)
		if (*p == '@')
			at = p;
	host = auth;
	if (at != NULL)
	{
		const char *colon = memchr(auth, ':', at - auth);
		const char *user_end = colon ? colon : at;

		if (!decode_part(auth, user_end - auth, &out->user, who, "user name", error))
			return false;
		if (colon != NULL && !decode_part(colon + 1, at - colon - 1, &out->password, who, "password", error))
			return false;
		host = at + 1;
	}
	if (out->user == NULL || out->user[0] == '\0')
		out->user = pstrdup("guest");
	out->has_password = out->password != NULL && out->password[0] != '\0';
	if (!out->has_password)
		out->password = pstrdup("guest");

	/*
	 * host[:port] or [v6]:port.  urllib refuses an authority with "[" but no
	 * "]" or the reverse, wherever they are (also in a password).
	 */
	if ((memchr(auth, '[', auth_end - auth) != NULL) != (memchr(auth, ']', auth_end - auth) != NULL))
	{
		*error = psprintf("%s has an unbalanced \"[\" or \"]\" (write an IPv6 host as [address]:port, "
						  "and percent-encode them in a password as %%5B, %%5D).", who);
		return false;
	}
	if (memchr(auth, '[', auth_end - auth) != NULL)
	{
		/* brackets anywhere in the authority: urllib wants [v6] as host */
		const char *close = host < auth_end ? memchr(host, ']', auth_end - host) : NULL;
		bool		colon = false;

		p = host;
		if (close != NULL && *host == '[')
			for (p = host + 1; p < close && *p != '%'; p++)
			{
				if (*p == ':')
					colon = true;
				else if (!isxdigit((unsigned char) *p) && *p != '.')
					break;
			}
		if (close == NULL || *host != '[' || !colon || (p < close && *p != '%') ||
			(close + 1 < auth_end && close[1] != ':'))
		{
			*error = psprintf("%s has an invalid IPv6 host (write [address]:port, and percent-encode "
							  "\"[\" and \"]\" in a password as %%5B, %%5D).", who);
			return false;
		}
		if (close + 1 < auth_end)
			port_text = close + 2;
		host_end = close;
		host++;
	}
	else
	{
		host_end = memchr(host, ':', auth_end - host);
		if (host_end == NULL)
			host_end = auth_end;
		else
			port_text = host_end + 1;
	}
	if (port_text != NULL && port_text < auth_end)
	{
		long		port = 0;

		for (p = port_text; p < auth_end; p++)
		{
			if (*p < '0' || *p > '9' || port > 65535)
				break;
			port = port * 10 + (*p - '0');
		}
		if (p != auth_end || port > 65535)
		{
			*error = psprintf("%s has an invalid port (or an unencoded \"/\", \"?\", \"#\" or \";\" in its password: "
							  "percent-encode them as %%2F, %%3F, %%23, %%3B).", who);
			return false;
		}
		out->port = (int) port;
		out->port_given = port != 0;	/* kombu reads port 0 as none */
	}
	/* amqps:// (default port 5671): the broker client opens TLS, never TCP */
	out->tls = strcmp(scheme, "amqps") == 0;
	if (!out->port_given)
		out->port = out->tls ? AMQPS_PORT : AMQP_PORT;

	/* urllib lowers the host name (not an IPv6 zone), then kombu decodes it */
	{
		char	   *lowered = pnstrdup(host, host_end - host);

		for (char *c = lowered; *c && *c != '%'; c++)
			*c = pg_ascii_tolower((unsigned char) *c);
		if (!decode_part(lowered, strlen(lowered), &out->host, who, "host", error))
			return false;
	}
	/* TLS verifies the name as written; py-amqp connects to localhost as 127.0.0.1 */
	out->host_written = out->host[0] == '\0' ? pstrdup("localhost") : out->host;
	if (out->host[0] == '\0' || strcmp(out->host, "localhost") == 0)
		out->host = pstrdup("127.0.0.1");

	/* path: the vhost; query: kombu's connection options */
	p = auth_end;
	if (p < end && *p == '/')
	{
		const char *path = p + 1;

		while (p < end && *p != '?' && *p != '#')
			p++;
		if (!decode_part(path, p - path, &out->vhost, who, "virtual host", error))
			return false;
		out->vhost_given = out->vhost[0] != '\0';
	}
	if (p < end && *p == '?' && p + 1 < end && p[1] != '#')
	{
		*error = psprintf("%s has query parameters (\"?...\"), which celerysalt does not read; remove them "
						  "(the celerysalt.broker_* settings configure the connection).", who);
		return false;
	}
	if (!out->vhost_given)
		out->vhost = pstrdup("/");
	return true;
}

/*
 * ConninfoParseAmqpNodes
 *		The nodes of a broker URL, as kombu's Connection reads it: the URL is
 *		split at every ";" into nodes tried in turn (failover), each a whole
 *		URL with its own scheme (spaces around a node are ignored).  A node
 *		after the first that names no port or no virtual host takes those
 *		of the node before it, as kombu carries them over when it switches
 *		to the next node; user and password are never carried over.
 *
 *		Returns a palloc'd array of *nnodes nodes (strings palloc'd too;
 *		has_password says whether the URL gave a node a non-empty password,
 *		else its password is "guest", as kombu's), or NULL with *error set to
 *		a message that does not repeat the URL (it may hold passwords).
 *		An amqps:// node (port 5671 unless given) is TLS (out->tls).
 */
AmqpUrl *
ConninfoParseAmqpNodes(const char *url, int *nnodes, char **error)
{
	AmqpUrl    *nodes;
	int			n = 1;
	int			i = 0;
	const char *p = url;

	for (const char *c = url; *c; c++)
		n += (*c == ';');
	nodes = palloc0(sizeof(AmqpUrl) * n);
	for (;;)
	{
		const char *end = strchr(p, ';');
		const char *start = p;
		const char *who = n == 1 ? "The broker URL" : psprintf("Node %d of the broker URL", i + 1);

		if (end == NULL)
			end = p + strlen(p);
		p = end;
		while (start < end && (*start == ' ' || *start == '\t'))
			start++;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (start == end)
		{
			*error = n == 1 ? "The broker URL must not be empty."
				: psprintf("%s is empty (a stray \";\").", who);
			return NULL;
		}
		if (!parse_amqp_node(start, end, who, &nodes[i], error))
			return NULL;
		if (i > 0 && !nodes[i].port_given)
			nodes[i].port = nodes[i - 1].port;
		if (i > 0 && !nodes[i].vhost_given)
			nodes[i].vhost = nodes[i - 1].vhost;
		i++;
		if (*p == '\0')
			break;
		p++;
	}
	*nnodes = n;
	return nodes;
}

/* The URL with the password of every node replaced by "***", for logs and views. */
char *
ConninfoRedactAmqp(const char *url)
{
	return ConninfoRedactUrl(url);
}

/* ----------------------------------------------------------- redis:// */

/* A database number (decimal text, already decoded); -1 if invalid. */
static int
parse_db(const char *text)
{
	char	   *end;
	long		db;

	if (text[0] < '0' || text[0] > '9')
		return -1;
	errno = 0;
	db = strtol(text, &end, 10);
	if (errno != 0 || *end != '\0' || db > 1000000)
		return -1;
	return (int) db;
}

/*
 * One of redis-py's TLS query parameters of a rediss:// URL (name[0..len),
 * value decoded, NULL if it decoded to a NUL byte) into out; false with
 * *error set, which repeats no part of the URL.  ssl_cert_reqs takes
 * Python's names too, as Celery's documentation writes them.
 */
static bool
tls_parameter(RedisUrl *out, const char *name, size_t len, char *value, char **error)
{
#define NAME_IS(n) (len == strlen(n) && strncmp(name, n, len) == 0)
	if (value == NULL)
	{
		*error = "A TLS parameter of the Redis URL contains an encoded NUL byte.";
		return false;
	}
	if (NAME_IS("ssl_cert_reqs"))
	{
		if (pg_strcasecmp(value, "required") == 0 || pg_strcasecmp(value, "cert_required") == 0 ||
			pg_strcasecmp(value, "optional") == 0 || pg_strcasecmp(value, "cert_optional") == 0)
			out->tls_verify = TLS_VERIFY_FULL;
		else if (pg_strcasecmp(value, "none") == 0 || pg_strcasecmp(value, "cert_none") == 0)
			out->tls_verify = TLS_VERIFY_NONE;
		else
		{
			*error = "The Redis URL's ssl_cert_reqs must be required, optional or none (or CERT_REQUIRED, CERT_OPTIONAL, CERT_NONE).";
			return false;
		}
	}
	else if (NAME_IS("ssl_check_hostname"))
	{
		/* redis-py's to_bool: these are false, anything else is true */
		out->tls_check_hostname =
			!(pg_strcasecmp(value, "0") == 0 || pg_strcasecmp(value, "f") == 0 ||
			  pg_strcasecmp(value, "false") == 0 || pg_strcasecmp(value, "n") == 0 ||
			  pg_strcasecmp(value, "no") == 0);
	}
	else if (NAME_IS("ssl_ca_certs") || NAME_IS("ssl_certfile") || NAME_IS("ssl_keyfile"))
	{
		if (value[0] == '\0')
		{
			*error = "The Redis URL's ssl_ca_certs, ssl_certfile and ssl_keyfile must name a file.";
			return false;
		}
		if (NAME_IS("ssl_ca_certs"))
			out->tls_ca_file = value;
		else if (NAME_IS("ssl_certfile"))
			out->tls_cert_file = value;
		else
			out->tls_key_file = value;
	}
	else if (NAME_IS("ssl_password"))
	{
		*error = "The Redis URL has ssl_password: private keys protected by a passphrase are not supported (and a passphrase does not belong in a URL).";
		return false;
	}
	else
	{
		*error = "The Redis URL has a TLS parameter that is not supported: use ssl_cert_reqs, ssl_check_hostname, ssl_ca_certs, ssl_certfile, ssl_keyfile, or the celerysalt.redis_tls_* settings.";
		return false;
	}
	return true;
#undef NAME_IS
}

/*
 * ConninfoParseRedis
 *		redis[s]://[[user]:password@]host[:port][/db][?db=N], parsed as redis-py
 *		parses it (urllib.parse): the authority ends at the first '/', '?' or
 *		'#'; the user information runs up to the LAST '@' of the authority and
 *		splits at its first ':' into user name and password; user name,
 *		password, host and database are percent-decoded (a password holding
 *		'@', ':', '/', '?' or '#' is written %40, %3A, %2F, %3F, %23); a
 *		"db" query parameter overrides the path; rediss:// (TLS) takes
 *		redis-py's TLS parameters ssl_cert_reqs, ssl_check_hostname,
 *		ssl_ca_certs, ssl_certfile and ssl_keyfile (the ssl_* parameters are
 *		refused with redis://, and others than these with rediss://); other
 *		query parameters (redis-py connection options) are ignored.  [::1] is
 *		an IPv6 host.
 *
 *		Strings are palloc'd.  On failure *error says why, never repeating
 *		any part of the URL.
 */
bool
ConninfoParseRedis(const char *url, RedisUrl *out, char **error)
{
	const char *auth;
	const char *auth_end;
	const char *host;
	const char *at = NULL;
	const char *port_text = NULL;
	const char *host_end;
	const char *p;
	bool		db_in_query = false;

	memset(out, 0, sizeof(*out));
	out->port = 6379;
	out->tls_verify = -1;
	out->tls_check_hostname = -1;
	if (strncmp(url, "redis://", 8) == 0)
		auth = url + 8;
	else if (strncmp(url, "rediss://", 9) == 0)
	{
		out->tls = true;
		auth = url + 9;
	}
	else
	{
		*error = "The Redis URL must start with redis:// or rediss://.";
		return false;
	}
	auth_end = auth + strcspn(auth, "/?#");

	for (p = auth; p < auth_end; p++)
		if (*p == '@')
			at = p;
	host = auth;
	if (at != NULL)
	{
		const char *colon = memchr(auth, ':', at - auth);

		if (colon == NULL)
		{
			*error = "The Redis URL has user information without a colon: write redis://:password@host or redis://user:password@host, and percent-encode @ : / ? # in the password (%40 %3A %2F %3F %23).";
			return false;
		}
		if (colon > auth)
		{
			out->user = percent_decode(auth, colon - auth);
			if (out->user == NULL)
			{
				*error = "The Redis URL's user name contains an encoded NUL byte.";
				return false;
			}
		}
		if (at > colon + 1)
		{
			out->password = percent_decode(colon + 1, at - colon - 1);
			if (out->password == NULL)
			{
				*error = "The Redis URL's password contains an encoded NUL byte.";
				return false;
			}
		}
		host = at + 1;
	}

	/* host[:port] or [v6]:port */
	if (host < auth_end && *host == '[')
	{
		const char *close = memchr(host, ']', auth_end - host);

		if (close == NULL || (close + 1 < auth_end && close[1] != ':'))
		{
			*error = "The Redis URL has an invalid IPv6 host (write [address]:port).";
			return false;
		}
		host_end = close;
		host++;
		if (close + 1 < auth_end)
			port_text = close + 2;
	}
	else
	{
		host_end = memchr(host, ':', auth_end - host);
		if (host_end == NULL)
			host_end = auth_end;
		else
			port_text = host_end + 1;
	}
	if (port_text != NULL && port_text < auth_end)
	{
		long		port = 0;

		for (p = port_text; p < auth_end; p++)
		{
			if (*p < '0' || *p > '9' || port > 65535)
				break;
			port = port * 10 + (*p - '0');
		}
		if (p != auth_end || port < 1 || port > 65535)
		{
			*error = "The Redis URL has an invalid port (or an unencoded '/', '?' or '#' in its password: percent-encode them as %2F, %3F, %23).";
			return false;
		}
		out->port = (int) port;
	}
	out->host = percent_decode(host, host_end - host);
	if (out->host == NULL || strchr(out->host, '@') != NULL)
	{
		*error = "The Redis URL has an invalid host.";
		return false;
	}
	if (out->host[0] == '\0')
		out->host = pstrdup("127.0.0.1");

	/* query: db=N overrides the path; the rest are client options */
	p = auth_end + strcspn(auth_end, "?#");
	if (*p == '?')
	{
		const char *q = p + 1;
		const char *q_end = q + strcspn(q, "#");

		while (q < q_end)
		{
			const char *amp = memchr(q, '&', q_end - q);
			const char *item_end = amp ? amp : q_end;
			const char *eq = memchr(q, '=', item_end - q);
			size_t		name_len = (eq ? eq : item_end) - q;

			if ((name_len == 8 && strncmp(q, "password", 8) == 0) ||
				(name_len == 8 && strncmp(q, "username", 8) == 0))
			{
				*error = "The Redis URL has a user name or password in its query string: write redis://user:password@host, or use celerysalt.redis_password_file.";
				return false;
			}
			if (name_len > 4 && strncmp(q, "ssl_", 4) == 0)
			{
				char	   *value = eq ? percent_decode(eq + 1, item_end - eq - 1) : pstrdup("");

				if (!out->tls)
				{
					*error = "The Redis URL has TLS parameters (ssl_...) but the scheme redis://: write rediss:// for TLS.";
					return false;
				}
				if (!tls_parameter(out, q, name_len, value, error))
					return false;
			}
			else if (name_len == 2 && strncmp(q, "db", 2) == 0 && eq != NULL && eq + 1 < item_end)
			{
				char	   *text = percent_decode(eq + 1, item_end - eq - 1);

				out->db = text ? parse_db(text) : -1;
				if (out->db < 0)
				{
					*error = "The Redis URL has an invalid database number.";
					return false;
				}
				db_in_query = true;
			}
			q = amp ? amp + 1 : q_end;
		}
	}

	/* path: /db */
	if (!db_in_query && *auth_end == '/')
	{
		const char *path = auth_end + 1;
		size_t		len = strcspn(path, "?#");
		char	   *text = percent_decode(path, len);

		if (text == NULL)
		{
			*error = "The Redis URL has an invalid database number.";
			return false;
		}
		/* redis-py drops every '/' of the path */
		{
			char	   *w = text;

			for (char *r = text; *r; r++)
				if (*r != '/')
					*w++ = *r;
			*w = '\0';
		}
		if (text[0] != '\0')
		{
			out->db = parse_db(text);
			if (out->db < 0)
			{
				*error = "The Redis URL has an invalid database number.";
				return false;
			}
		}
	}
	return true;
}

/* ------------------------------------------------------ password files */

/*
 * ConninfoReadSecretFile
 *		The first line of the file a *_password_file setting names, palloc'd,
 *		or NULL with a message in error.  what names the secret in that message.
 */
char *
ConninfoReadSecretFile(const char *path, const char *what, StringInfo error)
{
	FILE	   *f = AllocateFile(path, "r");
	char		line[1024];
	size_t		len;

	if (f == NULL)
	{
		appendStringInfo(error, "could not open %s password file \"%s\": %m", what, path);
		return NULL;
	}
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';
	FreeFile(f);
	len = strlen(line);
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		line[--len] = '\0';
	return pstrdup(line);
}
