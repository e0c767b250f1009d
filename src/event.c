/*-------------------------------------------------------------------------
 *
 * event.c
 *		The one intake of events: what a valid topic, version, task name and
 *		payload are, for every path that sends something to the broker
 *		(celerysalt_publish, follow actions, celerysalt_call) and for the
 *		worker, which checks rows moved into the outbox by hand the same way.
 *
 * Each check exists in two forms: Event*Problem() returns NULL or a
 * description of what is wrong (the worker dead-letters such rows instead of
 * failing), Event*Check() raises 22023 / 54000 with that description.
 *
 * What a valid name is lives in event_name.c (the settings use it too).
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"

#include "miscadmin.h"
#include "utils/builtins.h"
#include "guc.h"
#include "event.h"
#include "jbv.h"
#include "trace_context.h"

static char *payload_problem(Jsonb *payload, int *sqlstate, char **detail,
								 const char **hint);

/* The hooks the registry sets (celerysalt.h). */
PublishValidator celerysalt_publish_validator = NULL;
RpcResponseValidator celerysalt_rpc_response_validator = NULL;

/*
 * Depth of nesting of a jsonb container (1 for a flat object or array)
 * exceeds limit?  Only containers are visited: scalars are skipped by their
 * JEntry, never decoded.  The offsets are computed as jsonb_util.c's
 * getJsonbOffset() does, in one pass over the entries.
 */
static bool
depth_exceeds(const JsonbContainer *c, int depth, int limit)
{
	uint32		count = JsonContainerSize(c);
	bool		is_object = JsonContainerIsObject(c);
	uint32		nentries = is_object ? count * 2 : count;
	const char *base = (const char *) &c->children[nentries];
	uint32		offset = 0;

	if (depth > limit)
		return true;
	check_stack_depth();
	CHECK_FOR_INTERRUPTS();
	for (uint32 i = 0; i < nentries; i++)
	{
		JEntry		entry = c->children[i];
		uint32		start = offset;

		offset = JBE_HAS_OFF(entry) ? JBE_OFFLENFLD(entry) : offset + JBE_OFFLENFLD(entry);
		if (JBE_ISCONTAINER(entry) && (!is_object || i >= count) &&
			depth_exceeds((const JsonbContainer *) (base + INTALIGN(start)), depth + 1, limit))
			return true;
	}
	return false;
}

/*
 * payload_problem
 *		NULL when payload is a publishable event payload: a JSON object within
 *		celerysalt.max_payload_size and celerysalt.max_payload_depth that does
 *		not carry the reserved member _tchu_meta.  Else a palloc'd primary
 *		error message; *detail and *hint get sentences (or NULL) and
 *		*sqlstate the error code that fits.
 */
static char *
payload_problem(Jsonb *payload, int *sqlstate, char **detail, const char **hint)
{
	JsonbValue	member;

	*sqlstate = ERRCODE_INVALID_PARAMETER_VALUE;
	*hint = NULL;
	if (!JB_ROOT_IS_OBJECT(payload) || JB_ROOT_IS_SCALAR(payload))
	{
		*detail = psprintf("The payload is a JSON %s.",
						   JB_ROOT_IS_SCALAR(payload) ? "scalar" : "array");
		*hint = "Wrap the value in an object, for example jsonb_build_object('data', value).";
		return pstrdup("event payload must be a JSON object");
	}

	*sqlstate = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
	if (VARSIZE(payload) > (Size) celerysalt_max_payload_size)
	{
		*detail = psprintf("The payload takes %zu bytes; celerysalt.max_payload_size is %d bytes.",
						   (Size) VARSIZE(payload), celerysalt_max_payload_size);
		return pstrdup("event payload is too large");
	}
	if (depth_exceeds(&payload->root, 1, celerysalt_max_payload_depth))
	{
		*detail = psprintf("Objects and arrays nest more than %d levels deep (celerysalt.max_payload_depth); "
						   "consumers in Python fail to decode deeply nested documents.",
						   celerysalt_max_payload_depth);
		*hint = "Flatten the payload, or ask a superuser to raise celerysalt.max_payload_depth.";
		return pstrdup("event payload is nested too deeply");
	}

	*sqlstate = ERRCODE_INVALID_PARAMETER_VALUE;
	if (JbvFindKey(&payload->root, "_tchu_meta", strlen("_tchu_meta"), &member))
	{
		*detail = pstrdup("celerysalt writes _tchu_meta itself, from the version and correlation_id arguments.");
		*hint = "Pass version and correlation_id as arguments of celerysalt_publish.";
		return pstrdup("event payload must not contain the member \"_tchu_meta\"");
	}
	*detail = NULL;
	return NULL;
}

/*
 * EventCheckPayload
 *		Raise an error unless payload is publishable (see payload_problem).
 */
void
EventCheckPayload(Jsonb *payload)
{
	int			sqlstate;
	char	   *detail;
	const char *hint;
	char	   *problem = payload_problem(payload, &sqlstate, &detail, &hint);

	if (problem != NULL)
		ereport(ERROR,
				(errcode(sqlstate),
				 errmsg_internal("%s", problem),
				 detail ? errdetail_internal("%s", detail) : 0,
				 hint ? errhint("%s", hint) : 0));
}

/*
 * EventIntake
 *		Check an event about to be sent (topic, payload, optional version
 *		and correlation_id) and run the publish hook (the registry: validate,
 *		stamp the version).  Returns the version to send.  Raises errors.
 */
const char *
EventIntake(const char *topic, Jsonb *payload, const char *version,
			const char *correlation_id)
{
	EventCheckName(EVENT_NAME_TOPIC, topic);
	EventCheckPayload(payload);
	if (version != NULL)
		EventCheckName(EVENT_NAME_VERSION, version);
	if (correlation_id != NULL)
		EventCheckName(EVENT_NAME_CORRELATION_ID, correlation_id);
	if (celerysalt_publish_validator != NULL)
	{
		version = celerysalt_publish_validator(topic, payload, version);
		/* the version the registry stamps comes from a table: check it too */
		if (version != NULL)
			EventCheckName(EVENT_NAME_VERSION, version);
	}
	return version;
}

/*
 * EventRowProblem
 *		For the worker: NULL when an outbox row can be sent, else why it never
 *		can be (the row is then dead-lettered with that reason).  The publish
 *		hook is not run: rows in the outbox were validated when enqueued, or
 *		moved there by hand on purpose.  The trace context (NULL: none) was
 *		checked when its setting was set; a row written by hand is checked
 *		here, so no message carries a value the consumer would misread.
 */
char *
EventRowProblem(const char *topic, Jsonb *payload, const char *version,
				const char *correlation_id, const char *traceparent,
				const char *tracestate)
{
	char	   *problem;
	char	   *detail;
	const char *hint;
	int			sqlstate;

	if ((problem = EventNameProblemSentence(EVENT_NAME_TOPIC, topic)) != NULL)
		return problem;
	if ((problem = payload_problem(payload, &sqlstate, &detail, &hint)) != NULL)
		return detail ? psprintf("%s: %s", problem, detail) : problem;
	if (version != NULL && (problem = EventNameProblemSentence(EVENT_NAME_VERSION, version)) != NULL)
		return problem;
	if (correlation_id != NULL &&
		(problem = EventNameProblemSentence(EVENT_NAME_CORRELATION_ID, correlation_id)) != NULL)
		return problem;
	if (traceparent != NULL && (problem = TraceparentProblem(traceparent)) != NULL)
		return psprintf("invalid traceparent: %s", problem);
	if (tracestate != NULL && (problem = TracestateProblem(tracestate)) != NULL)
		return psprintf("invalid tracestate: %s", problem);
	return NULL;
}
