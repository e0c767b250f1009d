/*-------------------------------------------------------------------------
 *
 * outbox.h
 *		Enqueueing events and the commit-time wake-up (outbox.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef CELERYSALT_OUTBOX_H
#define CELERYSALT_OUTBOX_H

#include "celerysalt.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

extern void OutboxWakeAfterCommitPrepared(void);

extern pg_uuid_t *OutboxEnqueue(const char *topic, Jsonb *payload,
								const char *version, const char *correlation_id);

#endif							/* CELERYSALT_OUTBOX_H */
