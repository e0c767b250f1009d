/*-------------------------------------------------------------------------
 *
 * conninfo.c
 *		Connection information for RabbitMQ and Redis, and keeping its
 *		secrets secret: amqp:// URLs parsed as librabbitmq-c (and kombu)
 *		parse them, redis:// URLs as redis-py parses them, password files,
 *		masking of passwords in URLs and texts, and the emit_log_hook that
 *		keeps them out of the server log.  Reads no setting: the settings'
 *		check hooks (guc.c), the broker client and the result-backend client
 *		call it.
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

#include <amqp.h>

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
 * ConninfoRedactText
 *		text with the password of every URL in it replaced by "***",
 *		palloc'd; or text itself when it holds no URL with a password.
 *		A quoted piece is masked as one URL (a password may hold spaces
 *		there) unless it looks like code, in which case it is redacted as a
 *		text of its own; the rest word by word.
 */
char *
ConninfoRedactText(const char *text)
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

				appendStringInfoString(&buf, ConninfoRedactText(inner));
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

/* ------------------------------------------------------------ amqp:// */

/*
 * ConninfoParseAmqp
 *		Split an amqp:// or amqps:// URL as librabbitmq-c (which connects)
 *		splits it; out->tls for amqps://.
 *		Strings in *out are palloc'd.  out->has_password says whether the URL
 *		gave a non-empty password (else librabbitmq-c's default, "guest", is
 *		in out->password, as kombu does).  On failure returns false with
 *		*error set to a message that does not repeat the URL (it may hold a
 *		password).
 */
bool
ConninfoParseAmqp(const char *url, AmqpUrl *out, char **error)
{
	struct amqp_connection_info info;
	struct amqp_connection_info defaults;
	char	   *copy = pstrdup(url);
	int			rc;

	amqp_default_connection_info(&defaults);
	amqp_default_connection_info(&info);
	rc = amqp_parse_url(copy, &info);
	if (rc != AMQP_STATUS_OK)
	{
		*error = "The broker URL is not a valid amqp:// or amqps:// URL.";
		return false;
	}
	out->host = pstrdup(info.host);
	out->port = info.port;
	out->vhost = pstrdup(info.vhost);
	out->user = pstrdup(info.user);
	out->password = pstrdup(info.password);
	/* the parser leaves the default's pointer unless the URL gave one */
	out->has_password = info.password != defaults.password && info.password[0] != '\0';
	/* amqps:// (default port 5671): the broker client opens TLS, never TCP */
	out->tls = info.ssl != 0;
	pfree(copy);
	return true;
}

/* The URL with any password replaced by "***", for logs and views. */
char *
ConninfoRedactAmqp(const char *url)
{
	return ConninfoRedactUrl(url);
}

/* ----------------------------------------------------------- redis:// */

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
