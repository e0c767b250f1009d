/*-------------------------------------------------------------------------
 *
 * guc.h
 *		Every celerysalt.* setting (guc.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef CELERYSALT_GUC_H
#define CELERYSALT_GUC_H

#include "celerysalt.h"

extern char *celerysalt_broker_url;
extern char *celerysalt_broker_password_file;
extern char *celerysalt_exchange;
extern char *celerysalt_dispatcher_tasks;
extern char *celerysalt_databases;
extern char *celerysalt_redis_url;
extern bool celerysalt_redis_url_trusted;
extern char *celerysalt_redis_password_file;
extern char *celerysalt_redis_key_prefix;
extern char *celerysalt_rpc_task;
extern int	celerysalt_batch_size;
extern int	celerysalt_publish_window;
extern int	celerysalt_poll_interval_ms;
extern int	celerysalt_broker_timeout_ms;
extern int	celerysalt_reconnect_max_delay_ms;
extern int	celerysalt_max_payload_size;
extern int	celerysalt_max_payload_depth;
extern int	celerysalt_delivered_retention_s;
extern int	celerysalt_outbox_rotation_s;
extern int	celerysalt_unroutable_retry_s;
extern int	celerysalt_unroutable_retention_s;
extern int	celerysalt_max_databases;
extern bool celerysalt_require_registration;
extern bool celerysalt_track_metrics;
extern char *celerysalt_service_name;
extern char *celerysalt_traceparent;
extern char *celerysalt_tracestate;
extern int	celerysalt_follow_action_errors;
extern int	celerysalt_format_dialect;
extern char *celerysalt_broker_tls_ca_file;
extern char *celerysalt_broker_tls_cert_file;
extern char *celerysalt_broker_tls_key_file;
extern int	celerysalt_broker_tls_verify;
extern char *celerysalt_redis_tls_ca_file;
extern char *celerysalt_redis_tls_cert_file;
extern char *celerysalt_redis_tls_key_file;
extern int	celerysalt_redis_tls_verify;

/* celerysalt.format_dialect */
typedef enum FormatDialect
{
	FORMAT_DIALECT_PYDANTIC,	/* date-time, time, duration as pydantic 2 reads them */
	FORMAT_DIALECT_RFC3339		/* as RFC 3339 (JSON Schema) defines them */
} FormatDialect;

/* celerysalt.follow_action_errors */
typedef enum FollowErrors
{
	FOLLOW_ERRORS_ERROR,
	FOLLOW_ERRORS_DEAD_LETTER
} FollowErrors;

/* celerysalt.unroutable */
typedef enum UnroutableEvents
{
	UNROUTABLE_KEEP,			/* mandatory; returned events wait and are sent again */
	UNROUTABLE_DROP				/* not mandatory: the broker drops them */
} UnroutableEvents;
extern int	celerysalt_unroutable;


/*
 * The trace context in effect (celerysalt.traceparent, checked when set),
 * NULL when unset; the tracestate only counts with a traceparent.
 */
static inline const char *
GucTraceparent(void)
{
	return celerysalt_traceparent && celerysalt_traceparent[0] ? celerysalt_traceparent : NULL;
}

static inline const char *
GucTracestate(void)
{
	return GucTraceparent() && celerysalt_tracestate && celerysalt_tracestate[0] ?
		celerysalt_tracestate : NULL;
}

extern void GucDefineAll(void);
extern bool GucDatabaseIsServed(const char *name);

#endif							/* CELERYSALT_GUC_H */
