/*-------------------------------------------------------------------------
 *
 * message.h
 *		The Celery / celery-salt / tchu-tchu message envelope, pure (message.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef CELERYSALT_MESSAGE_H
#define CELERYSALT_MESSAGE_H

#include "celerysalt.h"
#include "lib/stringinfo.h"
#include "datatype/timestamp.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

/* One Celery protocol-2 task message, as the Python libraries send it. */
typedef struct CeleryMessage
{
	const char *task;			/* dispatcher task name */
	char		task_id[37];	/* lowercase hyphenated UUID */
	const char *routing_key;	/* the topic */
	StringInfoData body;		/* [[payload string], {routing_key}, embed] */
	StringInfoData argsrepr;	/* cosmetic, as Celery's saferepr */
	StringInfoData kwargsrepr;
	char		expires[40];	/* ISO-8601 or "" */
	int			expiration_ms;	/* AMQP per-message TTL, 0 = none */
	uint8		priority;
	const char *traceparent;	/* W3C trace context headers, or NULL */
	const char *tracestate;		/* NULL unless traceparent is set */
} CeleryMessage;

typedef struct EventMeta
{
	bool		is_rpc;
	const char *version;		/* may be NULL */
	const char *correlation_id; /* may be NULL */
	const char *traceparent;	/* may be NULL */
	const char *tracestate;		/* may be NULL; written only with traceparent */
} EventMeta;

extern void MessageAppendPayload(StringInfo out, Jsonb *payload,
								 const EventMeta *meta);
extern void MessageBuild(CeleryMessage *msg, const char *task,
						 const pg_uuid_t *event_id, int task_index,
						 const char *topic, const char *payload_json);
extern void MessageFormatExpires(TimestampTz when, char *out, size_t outlen);
extern void MessageUuidToString(const pg_uuid_t *uuid, char *out);

#endif							/* CELERYSALT_MESSAGE_H */
