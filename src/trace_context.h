/*-------------------------------------------------------------------------
 *
 * trace_context.h
 *		What a valid W3C Trace Context value is (trace_context.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef CELERYSALT_TRACE_CONTEXT_H
#define CELERYSALT_TRACE_CONTEXT_H

#include "celerysalt.h"

/* "00-" 32 hex "-" 16 hex "-" 2 hex: the only version this build writes */
#define TRACEPARENT_LEN			55
/* what OpenTelemetry's Python propagator reads at most */
#define TRACESTATE_MAX_LEN		8192
#define TRACESTATE_MAX_MEMBERS	32

extern char *TraceparentProblem(const char *value);
extern char *TracestateProblem(const char *value);

#endif							/* CELERYSALT_TRACE_CONTEXT_H */
