/*-------------------------------------------------------------------------
 *
 * message.c
 *		The Celery / celery-salt / tchu-tchu message envelope
 *		(docs/wire-format.md: #body, #payload-and-_tchu_meta,
 *		#one-message-per-dispatcher-task).  Pure: builds bytes, does no I/O.
 *
 * The payload is written the way Python's json.dumps writes it
 * (separators ", " and ": ", ensure_ascii, surrogate pairs), followed by
 * the _tchu_meta member.  That string becomes args[0] of the task and is
 * escaped once more inside the body [[payload], {"routing_key": topic},
 * embed].  jsonb keeps object keys sorted by length then bytes, so member
 * order is jsonb's, not the order the caller wrote: consumers decode JSON
 * and do not depend on it.
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"

#include "common/cryptohash.h"
#include "mb/pg_wchar.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/numeric.h"
#include "utils/varlena.h"
#include "message.h"

static void derive_task_id(const pg_uuid_t *event_id, const char *task,
								pg_uuid_t *out);

/* argsrepr/kwargsrepr are truncated like Celery's saferepr. */
#define REPR_MAX	1024

static const char hexdigits[] = "0123456789abcdef";

/* Append one UTF-16 code unit as \uXXXX (lowercase, as Python). */
static inline void
append_u_escape(StringInfo out, unsigned int unit)
{
	char		buf[6] = {'\\', 'u',
		hexdigits[(unit >> 12) & 0xf], hexdigits[(unit >> 8) & 0xf],
	hexdigits[(unit >> 4) & 0xf], hexdigits[unit & 0xf]};

	appendBinaryStringInfo(out, buf, 6);
}

/*
 * Append s (UTF-8, len bytes) as a JSON string with Python's ensure_ascii
 * escaping.  The input is valid UTF-8: PostgreSQL checked it.
 */
static void
append_json_string(StringInfo out, const char *s, int len)
{
	const unsigned char *p = (const unsigned char *) s;
	const unsigned char *end = p + len;

	appendStringInfoChar(out, '"');
	while (p < end)
	{
		unsigned char c = *p;

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
		{
			const unsigned char *run = p;

			while (p < end && *p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
				p++;
			appendBinaryStringInfo(out, (const char *) run, p - run);
			continue;
		}
		if (c < 0x80)
		{
			switch (c)
			{
				case '"':
					appendBinaryStringInfo(out, "\\\"", 2);
					break;
				case '\\':
					appendBinaryStringInfo(out, "\\\\", 2);
					break;
				case '\n':
					appendBinaryStringInfo(out, "\\n", 2);
					break;
				case '\r':
					appendBinaryStringInfo(out, "\\r", 2);
					break;
				case '\t':
					appendBinaryStringInfo(out, "\\t", 2);
					break;
				case '\b':
					appendBinaryStringInfo(out, "\\b", 2);
					break;
				case '\f':
					appendBinaryStringInfo(out, "\\f", 2);
					break;
				default:
					append_u_escape(out, c);
					break;
			}
			p++;
		}
		else
		{
			int			n = pg_utf_mblen(p);
			pg_wchar	cp;

			if (p + n > end)
				n = end - p;
			cp = utf8_to_unicode(p);
			if (cp >= 0x10000)
			{
				cp -= 0x10000;
				append_u_escape(out, 0xd800 + (cp >> 10));
				append_u_escape(out, 0xdc00 + (cp & 0x3ff));
			}
			else
				append_u_escape(out, cp);
			p += n;
		}
	}
	appendStringInfoChar(out, '"');
}

static void
append_scalar(StringInfo out, JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			appendBinaryStringInfo(out, "null", 4);
			break;
		case jbvBool:
			if (v->val.boolean)
				appendBinaryStringInfo(out, "true", 4);
			else
				appendBinaryStringInfo(out, "false", 5);
			break;
		case jbvString:
			append_json_string(out, v->val.string.val, v->val.string.len);
			break;
		case jbvNumeric:
			appendStringInfoString(out,
								   DatumGetCString(DirectFunctionCall1(numeric_out,
																	   NumericGetDatum(v->val.numeric))));
			break;
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) v->type);
	}
}

/*
 * Append the members of the top-level object (without braces), Python
 * style.  Returns whether any member was written.
 */
static bool
append_members(StringInfo out, Jsonb *payload)
{
	JsonbIterator *it = JsonbIteratorInit(&payload->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			depth = 0;
	bool		need_sep = false;	/* a ", " precedes the next element */
	bool		wrote = false;

	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		switch (tok)
		{
			case WJB_BEGIN_OBJECT:
			case WJB_BEGIN_ARRAY:
				if (depth > 0)
				{
					if (need_sep)
						appendBinaryStringInfo(out, ", ", 2);
					appendStringInfoChar(out, tok == WJB_BEGIN_OBJECT ? '{' : '[');
				}
				depth++;
				need_sep = false;
				break;
			case WJB_END_OBJECT:
			case WJB_END_ARRAY:
				depth--;
				if (depth > 0)
					appendStringInfoChar(out, tok == WJB_END_OBJECT ? '}' : ']');
				need_sep = true;
				break;
			case WJB_KEY:
				if (need_sep)
					appendBinaryStringInfo(out, ", ", 2);
				append_json_string(out, v.val.string.val, v.val.string.len);
				appendBinaryStringInfo(out, ": ", 2);
				need_sep = false;	/* the member's value follows directly */
				wrote = true;
				break;
			case WJB_ELEM:
				if (need_sep)
					appendBinaryStringInfo(out, ", ", 2);
				/* FALLTHROUGH */
			case WJB_VALUE:
				append_scalar(out, &v);
				need_sep = true;
				break;
			default:
				break;
		}
	}
	return wrote;
}

/*
 * MessageAppendPayload
 *		Append the payload object with _tchu_meta as its last member, as
 *		celery-salt's dumps_message writes it: is_rpc, version,
 *		correlation_id, then the W3C trace context, which celery-salt's own
 *		publisher injects there when an OpenTelemetry span is current.
 */
void
MessageAppendPayload(StringInfo out, Jsonb *payload, const EventMeta *meta)
{
	appendStringInfoChar(out, '{');
	if (append_members(out, payload))
		appendBinaryStringInfo(out, ", ", 2);
	appendStringInfoString(out, meta->is_rpc ? "\"_tchu_meta\": {\"is_rpc\": true"
						   : "\"_tchu_meta\": {\"is_rpc\": false");
	if (meta->version)
	{
		appendBinaryStringInfo(out, ", \"version\": ", 13);
		append_json_string(out, meta->version, strlen(meta->version));
	}
	if (meta->correlation_id)
	{
		appendBinaryStringInfo(out, ", \"correlation_id\": ", 20);
		append_json_string(out, meta->correlation_id, strlen(meta->correlation_id));
	}
	if (meta->traceparent)
	{
		appendBinaryStringInfo(out, ", \"traceparent\": ", 17);
		append_json_string(out, meta->traceparent, strlen(meta->traceparent));
		if (meta->tracestate)
		{
			appendBinaryStringInfo(out, ", \"tracestate\": ", 16);
			append_json_string(out, meta->tracestate, strlen(meta->tracestate));
		}
	}
	appendBinaryStringInfo(out, "}}", 2);
}

/* Append s as a Python str repr (single quotes unless s has one and no "). */
static void
append_python_repr(StringInfo out, const char *s, int maxlen)
{
	char		quote = (strchr(s, '\'') && !strchr(s, '"')) ? '"' : '\'';
	int			start = out->len;

	appendStringInfoChar(out, quote);
	for (const char *p = s; *p; p++)
	{
		if (out->len - start >= maxlen)
		{
			appendStringInfoString(out, "...");
			break;
		}
		if (*p == '\\' || *p == quote)
			appendStringInfoChar(out, '\\');
		appendStringInfoChar(out, *p);
	}
	appendStringInfoChar(out, quote);
}

void
MessageUuidToString(const pg_uuid_t *uuid, char *out)
{
	int			pos = 0;

	for (int i = 0; i < UUID_LEN; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[pos++] = '-';
		out[pos++] = hexdigits[uuid->data[i] >> 4];
		out[pos++] = hexdigits[uuid->data[i] & 0xf];
	}
	out[pos] = '\0';
}

/*
 * derive_task_id
 *		A name-based (version 5, SHA-1) UUID with the event id as namespace
 *		and the task name as name: the same event always yields the same
 *		task id for a given dispatcher, so a redelivery reuses it.
 */
static void
derive_task_id(const pg_uuid_t *event_id, const char *task, pg_uuid_t *out)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA1);
	uint8		digest[20];

	if (ctx == NULL ||
		pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, event_id->data, UUID_LEN) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) task, strlen(task)) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not compute a SHA-1 digest");
	pg_cryptohash_free(ctx);

	memcpy(out->data, digest, UUID_LEN);
	out->data[6] = (out->data[6] & 0x0f) | 0x50;
	out->data[8] = (out->data[8] & 0x3f) | 0x80;
}

/*
 * MessageBuild
 *		Fill msg for one dispatcher task.  task_index is the task's position
 *		in celerysalt.dispatcher_tasks: the first task's id is the event id
 *		itself (so celery-task-meta-<event id> is its result), the others are
 *		derived with derive_task_id.  payload_json comes from
 *		MessageAppendPayload.  Everything is palloc'd in the current context.
 */
void
MessageBuild(CeleryMessage *msg, const char *task, const pg_uuid_t *event_id,
			 int task_index, const char *topic, const char *payload_json)
{
	pg_uuid_t	task_uuid;
	int			topic_len = strlen(topic);

	memset(msg, 0, sizeof(*msg));
	msg->task = task;
	msg->routing_key = topic;
	if (task_index == 0)
		task_uuid = *event_id;
	else
		derive_task_id(event_id, task, &task_uuid);
	MessageUuidToString(&task_uuid, msg->task_id);

	initStringInfo(&msg->body);
	appendBinaryStringInfo(&msg->body, "[[", 2);
	append_json_string(&msg->body, payload_json, strlen(payload_json));
	appendBinaryStringInfo(&msg->body, "], {\"routing_key\": ", 19);
	append_json_string(&msg->body, topic, topic_len);
	appendStringInfoString(&msg->body,
						   "}, {\"callbacks\": null, \"errbacks\": null, \"chain\": null, \"chord\": null}]");

	initStringInfo(&msg->argsrepr);
	appendStringInfoChar(&msg->argsrepr, '[');
	append_python_repr(&msg->argsrepr, payload_json, REPR_MAX);
	appendStringInfoChar(&msg->argsrepr, ']');

	initStringInfo(&msg->kwargsrepr);
	appendStringInfoString(&msg->kwargsrepr, "{'routing_key': ");
	append_python_repr(&msg->kwargsrepr, topic, REPR_MAX);
	appendStringInfoChar(&msg->kwargsrepr, '}');
}

/*
 * MessageFormatExpires
 *		when as Celery writes the expires header: ISO-8601 in UTC with
 *		microseconds and an explicit offset, "2026-11-23T03:17:33.522716+00:00".
 */
void
MessageFormatExpires(TimestampTz when, char *out, size_t outlen)
{
	pg_time_t	secs = timestamptz_to_time_t(when);
	int			usecs = (int) (when - time_t_to_timestamptz(secs));
	struct pg_tm *tm = pg_gmtime(&secs);

	if (usecs < 0)
		usecs = 0;
	snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%06d+00:00",
			 tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday,
			 tm->tm_hour, tm->tm_min, tm->tm_sec, usecs);
}

