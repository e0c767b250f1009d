/*-------------------------------------------------------------------------
 *
 * event.h
 *		The event intake, valid names and the registry hooks (event.c, event_name.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef CELERYSALT_EVENT_H
#define CELERYSALT_EVENT_H

#include "celerysalt.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"

/*
 * The two upward calls of the layered layout (docs/architecture.md): hooks
 * defined here, low, and set by the registry (registry.c) at load time.
 */
/* A plug point for the schema registry: called by the event intake for
 * every event (publish, follow actions, RPC requests) before it is enqueued.  It may raise an error, and it may
 * return a different version to stamp into the message. */
typedef const char *(*PublishValidator) (const char *topic, Jsonb *payload,
										 const char *version);
extern PublishValidator celerysalt_publish_validator;

/* A plug point for the schema registry: called by celerysalt_call with the
 * handler's response (is_error: a business error object) before it is
 * returned; it may raise an error. */
typedef void (*RpcResponseValidator) (const char *topic, const char *version,
									  Jsonb *response, bool is_error);
extern RpcResponseValidator celerysalt_rpc_response_validator;


typedef enum EventNameKind
{
	EVENT_NAME_TOPIC,
	EVENT_NAME_VERSION,
	EVENT_NAME_TASK,
	EVENT_NAME_CORRELATION_ID
} EventNameKind;

extern void EventCheckName(EventNameKind kind, const char *value);
extern char *EventNameProblemSentence(EventNameKind kind, const char *value);
extern List *EventNameSplitTasks(const char *list);
extern void EventCheckPayload(Jsonb *payload);
extern const char *EventIntake(const char *topic, Jsonb *payload, const char *version,
							   const char *correlation_id);
extern char *EventRowProblem(const char *topic, Jsonb *payload, const char *version,
							 const char *correlation_id, const char *traceparent,
							 const char *tracestate);

#endif							/* CELERYSALT_EVENT_H */
