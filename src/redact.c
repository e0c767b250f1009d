/*-------------------------------------------------------------------------
 *
 * redact.c
 *		Keeps URL passwords out of the server log and out of error texts.
 *
 * RedactText replaces the password of every URL in a text with "***".  The
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

#include "tcop/tcopprot.h"
#include "utils/elog.h"
#include "utils/memutils.h"

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

static bool
is_known_scheme(const char *s, int len)
{
	return is_redis_scheme(s, len) ||
		(len == 4 && pg_strncasecmp(s, "amqp", 4) == 0) ||
		(len == 5 && pg_strncasecmp(s, "amqps", 5) == 0);
}

/*
 * Append s[0..len) to buf with the password of the URL in it replaced.
 *
 * A URL here is a scheme followed by ":/" (or one of amqp, amqps, redis,
 * rediss followed by ":" alone, which the parsers refuse but a user may
 * type), then the user information up to the LAST "@" of the piece.  The
 * password is everything after the first ":" of the user information; for
 * redis:// and rediss:// user information without ":" is a password too.
 * Taking the last "@" and the first ":" masks at least what any parser
 * (librabbitmq-c, kombu, redis-py) would take as the password, also for
 * URLs that none of them accepts.
 *
 * With strict, a piece whose password would span a line break, a quote or a
 * semicolon is not taken as one URL (it is a quoted piece of code, like a
 * DO body): return false and append nothing; the caller splits it further.
 */
static bool
append_masked(StringInfo buf, const char *s, int len, bool strict)
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
			if (*p == '\n' || *p == '\r' || *p == '\'' || *p == '"' || *p == ';')
				return false;
	}
	appendBinaryStringInfo(buf, s, userinfo - s);
	appendStringInfoString(buf, REDACTED);
	appendBinaryStringInfo(buf, at, end - at);
	return true;
}

/*
 * If a quoted piece (SQL string or identifier, dollar-quoted string, or a
 * double-quoted value in a message) starts at p, return its end (just after
 * the closing quote) and set *body and *bodylen; else NULL.  A quote only opens
 * a piece at the start or after a character that is not a letter or digit
 * (so the apostrophe of "couldn't" does not), or after an E prefix.
 */
static const char *
quoted_piece(const char *text, const char *p, const char **body, int *bodylen)
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
		close = strstr(t + 1, tag);
		pfree(tag);
		if (close == NULL)
			return NULL;
		*body = t + 1;
		*bodylen = close - (t + 1);
		return close + (t - p + 1);
	}
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
	return NULL;
}

/*
 * RedactText
 *		text with the password of every URL in it replaced by "***",
 *		palloc'd; or text itself when it holds no URL with a password.
 *		A quoted piece is masked as one URL (a password may hold spaces
 *		there) unless it looks like code, in which case it is redacted as a
 *		text of its own; the rest word by word.
 */
char *
RedactText(const char *text)
{
	StringInfoData buf;
	const char *p = text;

	if (text == NULL || strchr(text, '@') == NULL)
		return (char *) text;
	initStringInfo(&buf);
	while (*p)
	{
		const char *body;
		int			bodylen;
		const char *end = quoted_piece(text, p, &body, &bodylen);

		if (end != NULL)
		{
			appendBinaryStringInfo(&buf, p, body - p);
			if (!append_masked(&buf, body, bodylen, true))
			{
				char	   *inner = pnstrdup(body, bodylen);

				appendStringInfoString(&buf, RedactText(inner));
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
 * RedactUrl
 *		One URL with its password replaced by "***", palloc'd.
 */
char *
RedactUrl(const char *url)
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
		*field = RedactText(*field);
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
		const char *redacted = RedactText(debug_query_string);

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
RedactInstallHook(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = redact_emit_log_hook;
}
