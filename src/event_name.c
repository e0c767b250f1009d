/*-------------------------------------------------------------------------
 *
 * event_name.c
 *		The one definition of a valid topic, version, task name and
 *		correlation id, used by the event intake (event.c), the registry, the
 *		follow-action rule checker and the settings that name tasks.
 *
 * Names are what the Python side compares as strings and RabbitMQ routes on:
 * 1 to N bytes of server-encoded text, no wildcard (for topics), and no
 * character a reader cannot see or tell apart: Unicode white space, control
 * and format characters (U+00A0, U+200B, U+202E, U+FEFF, U+2028, U+0085,
 * ...) and the full-width and small forms of the AMQP wildcards.
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"

#include "mb/pg_wchar.h"
#include "nodes/pg_list.h"
#include "event.h"

static char *name_problem(EventNameKind kind, const char *value, char **detail);

/* Largest code point of the Unicode ranges below, sorted by start. */
typedef struct CodeRange
{
	pg_wchar	first;
	pg_wchar	last;
} CodeRange;

/*
 * Unicode 15: White_Space, general categories Cc and Cf, the line and
 * paragraph separators (Zl, Zp), and the lookalikes of '#' and '*'
 * (U+FE5F, U+FE61, U+FF03, U+FF0A).  Sorted, non-overlapping.
 */
static const CodeRange invisible_ranges[] = {
	{0x0000, 0x0020}, {0x007F, 0x00A0}, {0x00AD, 0x00AD},
	{0x0600, 0x0605}, {0x061C, 0x061C}, {0x06DD, 0x06DD}, {0x070F, 0x070F},
	{0x0890, 0x0891}, {0x08E2, 0x08E2}, {0x1680, 0x1680}, {0x180E, 0x180E},
	{0x2000, 0x200F}, {0x2028, 0x202F}, {0x205F, 0x2064}, {0x2066, 0x206F},
	{0x3000, 0x3000}, {0xFE5F, 0xFE5F}, {0xFE61, 0xFE61}, {0xFEFF, 0xFEFF},
	{0xFF03, 0xFF03}, {0xFF0A, 0xFF0A}, {0xFFF9, 0xFFFB},
	{0x110BD, 0x110BD}, {0x110CD, 0x110CD}, {0x13430, 0x1343F},
	{0x1BCA0, 0x1BCA3}, {0x1D173, 0x1D17A}, {0xE0001, 0xE0001},
	{0xE0020, 0xE007F},
};

static bool
is_invisible(pg_wchar c)
{
	int			lo = 0;
	int			hi = lengthof(invisible_ranges) - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;

		if (c < invisible_ranges[mid].first)
			hi = mid - 1;
		else if (c > invisible_ranges[mid].last)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

static const char *const name_labels[] = {
	[EVENT_NAME_TOPIC] = "topic",
	[EVENT_NAME_VERSION] = "version",
	[EVENT_NAME_TASK] = "task name",
	[EVENT_NAME_CORRELATION_ID] = "correlation_id",
};

static const int name_limits[] = {
	[EVENT_NAME_TOPIC] = CELERYSALT_MAX_TOPIC_LEN,
	[EVENT_NAME_VERSION] = CELERYSALT_MAX_VERSION_LEN,
	[EVENT_NAME_TASK] = CELERYSALT_MAX_TASK_LEN,
	[EVENT_NAME_CORRELATION_ID] = CELERYSALT_MAX_CORRELATION_ID_LEN,
};

/*
 * name_problem
 *		NULL when value is a valid name of this kind.  Else a palloc'd primary
 *		error message, and in *detail a sentence with the particulars.
 */
static char *
name_problem(EventNameKind kind, const char *value, char **detail)
{
	const char *label = name_labels[kind];
	size_t		len = strlen(value);
	const char *wildcard;
	const unsigned char *utf8;

	*detail = NULL;
	if (len == 0)
		return psprintf("event %s must not be empty", label);
	if (len > (size_t) name_limits[kind])
	{
		*detail = kind == EVENT_NAME_TOPIC ?
			psprintf("The topic has %zu bytes; AMQP routing keys have at most %d.",
					 len, CELERYSALT_MAX_TOPIC_LEN) :
			psprintf("The %s has %zu bytes; at most %d are allowed.",
					 label, len, name_limits[kind]);
		return psprintf("event %s is too long", label);
	}
	if (kind == EVENT_NAME_TOPIC && (wildcard = strpbrk(value, "*#")) != NULL)
	{
		*detail = pstrdup("Wildcards only have a meaning in subscriptions; an event is published to one concrete topic.");
		return psprintf("event topic \"%s\" contains the wildcard \"%c\"", value, *wildcard);
	}

	/* check code points, in UTF-8 whatever the server encoding */
	utf8 = (const unsigned char *) pg_server_to_any(value, (int) len, PG_UTF8);
	for (const unsigned char *p = utf8; *p; p += pg_utf_mblen(p))
	{
		pg_wchar	c = utf8_to_unicode(p);

		if (is_invisible(c))
		{
			*detail = psprintf("It contains U+%04X at byte %d.", (unsigned int) c, (int) (p - utf8));
			return psprintf("event %s contains white space or a control or format character", label);
		}
	}
	return NULL;
}

/*
 * EventCheckName
 *		Raise 22023 unless value is a valid name of this kind.
 */
void
EventCheckName(EventNameKind kind, const char *value)
{
	char	   *detail;
	char	   *problem = name_problem(kind, value, &detail);

	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg_internal("%s", problem),
				 detail ? errdetail_internal("%s", detail) : 0,
				 kind == EVENT_NAME_TOPIC ?
				 errhint("Publish to a topic such as \"user.created\".") :
				 errhint("A %s has 1 to %d bytes, without white space, control or format characters.",
						 name_labels[kind], name_limits[kind])));
}

/*
 * EventNameProblemSentence
 *		The problem of a name as one line (message: detail), or NULL; for
 *		the worker's dead letters and for the settings' check hooks.
 */
char *
EventNameProblemSentence(EventNameKind kind, const char *value)
{
	char	   *detail;
	char	   *problem = name_problem(kind, value, &detail);

	if (problem == NULL)
		return NULL;
	return detail ? psprintf("%s: %s", problem, detail) : problem;
}

/*
 * EventNameSplitTasks
 *		Split a comma-separated list of task names into a List of palloc'd
 *		strings, trimming white space.  Returns NIL if any name is not a
 *		valid task name (event_name.c).
 */
List *
EventNameSplitTasks(const char *list)
{
	List	   *names = NIL;
	const char *p = list;

	for (;;)
	{
		const char *start;
		const char *end;

		while (*p == ' ' || *p == '\t')
			p++;
		start = p;
		while (*p && *p != ',')
			p++;
		end = p;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		{
			char	   *name = pnstrdup(start, end - start);
			char	   *detail;

			if (name_problem(EVENT_NAME_TASK, name, &detail) != NULL)
			{
				list_free_deep(names);
				return NIL;
			}
			pfree(name);
		}
		names = lappend(names, pnstrdup(start, end - start));
		if (*p == '\0')
			break;
		p++;
	}
	return names;
}
