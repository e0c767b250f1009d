/*-------------------------------------------------------------------------
 *
 * celerysalt.h
 *		What every file of the extension shares: postgres.h, the limits of
 *		the names an event carries and the SQLSTATEs of remote outcomes.
 *		Each component has its own header (guc.h, dbslot.h, catalog.h,
 *		event.h, outbox.h, message.h, processes.h, registry.h, conninfo.h,
 *		tls.h, broker.h, redis.h, follow.h, jsonschema.h).
 *
 *-------------------------------------------------------------------------
 */
#ifndef CELERYSALT_H
#define CELERYSALT_H

#include "postgres.h"

/* Topics are AMQP routing keys: a short string. */
#define CELERYSALT_MAX_TOPIC_LEN	255
/* Limits of the other names an event carries (event_name.c). */
#define CELERYSALT_MAX_VERSION_LEN	64
#define CELERYSALT_MAX_TASK_LEN		255
#define CELERYSALT_MAX_CORRELATION_ID_LEN	255
/* celerysalt.service_name is shorter than this */
#define CELERYSALT_MAX_SERVICE_LEN	NAMEDATALEN

/* The outbox rotates through this many partitions (outbox.c). */
#define CELERYSALT_OUTBOX_SLOTS		3

/* SQLSTATEs of remote outcomes of celerysalt_call (docs/errors.md). */
#define ERRCODE_RPC_BUSINESS_ERROR	MAKE_SQLSTATE('C','R','0','0','1')
#define ERRCODE_RPC_HANDLER_ERROR	MAKE_SQLSTATE('C','R','0','0','2')
#define ERRCODE_RPC_NO_HANDLERS		MAKE_SQLSTATE('C','R','0','0','3')
#define ERRCODE_RPC_UNROUTABLE		MAKE_SQLSTATE('C','R','0','0','4')
#define ERRCODE_RPC_NOT_REGISTERED	MAKE_SQLSTATE('C','R','0','0','5')
#define ERRCODE_RPC_REVOKED			MAKE_SQLSTATE('C','R','0','0','6')
#define ERRCODE_RPC_REMOTE_FAILURE	MAKE_SQLSTATE('C','R','0','0','7')
#define ERRCODE_RPC_TIMEOUT			MAKE_SQLSTATE('C','R','0','0','8')
#define ERRCODE_RPC_INVALID_RESPONSE	MAKE_SQLSTATE('C','R','0','0','9')
/* not an outcome: celerysalt.redis_url is not the services' result backend */
#define ERRCODE_RPC_RESULT_BACKEND_MISMATCH	MAKE_SQLSTATE('C','R','0','1','0')

#endif							/* CELERYSALT_H */
