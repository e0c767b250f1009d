/*-------------------------------------------------------------------------
 *
 * jsonschema_uri.c
 *		A small RFC 3986 URI-reference resolver (section 5.2) used for
 *		$id / $ref / $dynamicRef base URI handling.  No network access:
 *		resolution is purely textual.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "jsonschema_int.h"

typedef struct UriParts
{
	char	   *scheme;			/* NULL if absent */
	char	   *authority;		/* NULL if absent */
	char	   *path;			/* never NULL */
	char	   *query;			/* NULL if absent */
	char	   *fragment;		/* NULL if absent */
} UriParts;

static char *
substr(const char *s, int len)
{
	return pnstrdup(s, len);
}

/* RFC 3986 appendix B, done by hand */
static void
uri_parse(const char *s, UriParts *u)
{
	const char *p = s;
	const char *q;

	memset(u, 0, sizeof(UriParts));

	/* scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" */
	q = p;
	if ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z'))
	{
		while ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
			   (*q >= '0' && *q <= '9') || *q == '+' || *q == '-' || *q == '.')
			q++;
		if (*q == ':')
		{
			u->scheme = substr(p, q - p);
			p = q + 1;
		}
	}

	if (p[0] == '/' && p[1] == '/')
	{
		p += 2;
		q = p;
		while (*q && *q != '/' && *q != '?' && *q != '#')
			q++;
		u->authority = substr(p, q - p);
		p = q;
	}

	q = p;
	while (*q && *q != '?' && *q != '#')
		q++;
	u->path = substr(p, q - p);
	p = q;

	if (*p == '?')
	{
		p++;
		q = p;
		while (*q && *q != '#')
			q++;
		u->query = substr(p, q - p);
		p = q;
	}
	if (*p == '#')
		u->fragment = pstrdup(p + 1);
}

/* RFC 3986 5.2.4 */
static char *
remove_dot_segments(const char *path)
{
	StringInfoData out;
	char	   *buf = pstrdup(path);
	char	   *in = buf;

	initStringInfo(&out);
	while (*in)
	{
		if (strncmp(in, "../", 3) == 0)
			in += 3;
		else if (strncmp(in, "./", 2) == 0)
			in += 2;
		else if (strncmp(in, "/./", 3) == 0)
			in += 2;
		else if (strcmp(in, "/.") == 0)
		{
			in += 1;
			*in = '/';
		}
		else if (strncmp(in, "/../", 4) == 0 || strcmp(in, "/..") == 0)
		{
			char	   *last;

			if (in[3] == '/')
				in += 3;
			else
			{
				in += 2;
				*in = '/';
			}
			/* back to the last '/': linear overall, as what it passes is cut */
			last = out.data + out.len;
			while (last > out.data && last[-1] != '/')
				last--;
			out.len = last > out.data ? last - out.data - 1 : 0;
			out.data[out.len] = '\0';
		}
		else if (strcmp(in, ".") == 0 || strcmp(in, "..") == 0)
			break;
		else
		{
			char	   *q = in;

			if (*q == '/')
				q++;
			while (*q && *q != '/')
				q++;
			appendBinaryStringInfo(&out, in, q - in);
			in = q;
		}
	}
	return out.data;
}

static char *
merge_paths(const UriParts *base, const char *ref_path)
{
	const char *slash;

	if (base->authority != NULL && base->path[0] == '\0')
		return psprintf("/%s", ref_path);
	slash = strrchr(base->path, '/');
	if (slash == NULL)
		return pstrdup(ref_path);
	return psprintf("%.*s%s", (int) (slash - base->path + 1), base->path, ref_path);
}

static char *
uri_recompose(const UriParts *u)
{
	StringInfoData buf;

	initStringInfo(&buf);
	if (u->scheme)
		appendStringInfo(&buf, "%s:", u->scheme);
	if (u->authority)
		appendStringInfo(&buf, "//%s", u->authority);
	appendStringInfoString(&buf, u->path);
	if (u->query)
		appendStringInfo(&buf, "?%s", u->query);
	if (u->fragment)
		appendStringInfo(&buf, "#%s", u->fragment);
	return buf.data;
}

/*
 * Resolve reference 'ref' against base URI 'base' (RFC 3986 5.2.2).  The
 * result is palloc'd in the current memory context.
 */
char *
JsonschemaUriResolve(const char *base, const char *ref)
{
	UriParts	b,
				r,
				t;

	uri_parse(ref, &r);
	uri_parse(base ? base : "", &b);
	memset(&t, 0, sizeof(t));

	if (r.scheme)
	{
		t.scheme = r.scheme;
		t.authority = r.authority;
		t.path = remove_dot_segments(r.path);
		t.query = r.query;
	}
	else
	{
		if (r.authority)
		{
			t.authority = r.authority;
			t.path = remove_dot_segments(r.path);
			t.query = r.query;
		}
		else
		{
			if (r.path[0] == '\0')
			{
				t.path = b.path;
				t.query = r.query ? r.query : b.query;
			}
			else
			{
				if (r.path[0] == '/')
					t.path = remove_dot_segments(r.path);
				else
				{
					char	   *m = merge_paths(&b, r.path);

					/* keep relative paths of a relative base relative */
					if (b.scheme == NULL && b.authority == NULL && m[0] != '/')
						t.path = m;
					else
						t.path = remove_dot_segments(m);
				}
				t.query = r.query;
			}
			t.authority = b.authority;
		}
		t.scheme = b.scheme;
	}
	t.fragment = r.fragment;
	return uri_recompose(&t);
}

/*
 * Split uri at '#': returns the part before (palloc'd), sets *fragment to
 * the part after or NULL when there is no '#'.
 */
char *
JsonschemaUriStripFragment(const char *uri, char **fragment)
{
	const char *hash = strchr(uri, '#');

	if (hash == NULL)
	{
		if (fragment)
			*fragment = NULL;
		return pstrdup(uri);
	}
	if (fragment)
		*fragment = pstrdup(hash + 1);
	return pnstrdup(uri, hash - uri);
}

/* Decode %XX escapes (invalid escapes are kept as they are) */
char *
JsonschemaPercentDecode(const char *s)
{
	StringInfoData buf;

	initStringInfo(&buf);
	while (*s)
	{
		if (s[0] == '%' && JbvHexValue(s[1]) >= 0 && JbvHexValue(s[2]) >= 0)
		{
			appendStringInfoChar(&buf, (char) (JbvHexValue(s[1]) * 16 + JbvHexValue(s[2])));
			s += 3;
		}
		else
			appendStringInfoChar(&buf, *s++);
	}
	return buf.data;
}

