/*-------------------------------------------------------------------------
 *
 * redis.h
 *		The Redis client (redis.c) used to read Celery results: connect,
 *		GET, EXISTS, SUBSCRIBE and waits for a published message, all non-blocking
 *		and bounded by the caller's deadline.  Functions returning int give
 *		1 on success, 0 when the deadline passed, -1 on a failure.  Callers
 *		never see hiredis types.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CELERYSALT_REDIS_H
#define CELERYSALT_REDIS_H

#include "celerysalt.h"
#include "conninfo.h"

#include "datatype/timestamp.h"


typedef struct RedisLink RedisLink;

extern RedisLink *RedisConnect(bool select_db, TimestampTz deadline, StringInfo error,
							   bool *timed_out);
extern void RedisDisconnect(RedisLink *link);
extern bool RedisLinkAlive(RedisLink *link, bool expect_silence);
extern int	RedisSubscribeSend(RedisLink *link, const char *channel,
							   TimestampTz deadline, StringInfo error);
extern int	RedisSubscribeAwait(RedisLink *link, const char *channel,
								TimestampTz deadline, StringInfo error);
extern bool RedisUnsubscribeSend(RedisLink *link, StringInfo error);
extern int	RedisSocket(RedisLink *link);
extern int	RedisReadMessage(RedisLink *link, const char *channel, bool readable,
							 char **message, size_t *len, StringInfo error);
extern int	RedisGet(RedisLink *link, const char *key, TimestampTz deadline,
					 char **value, size_t *len, StringInfo error);
extern int	RedisExists(RedisLink *link, const char *key, TimestampTz deadline,
						bool *exists, StringInfo error);

#endif							/* CELERYSALT_REDIS_H */
