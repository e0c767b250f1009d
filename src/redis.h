/*-------------------------------------------------------------------------
 *
 * redis.h
 *		The Redis client (redis.c) used to read Celery results: connect,
 *		GET, SUBSCRIBE and interruptible waits for a published message.
 *		Callers never see hiredis types.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CELERYSALT_REDIS_H
#define CELERYSALT_REDIS_H

#include "celerysalt.h"

typedef struct RedisUrl
{
	char	   *host;
	int			port;
	int			db;
	char	   *user;			/* NULL unless given (Redis 6 ACL) */
	char	   *password;		/* NULL unless given; never printed */
} RedisUrl;

typedef struct RedisLink RedisLink;

extern bool RedisParseUrl(const char *url, RedisUrl *out, char **error);
extern char *RedisRedactedUrl(const char *url);
extern RedisLink *RedisConnect(bool select_db, StringInfo error);
extern void RedisDisconnect(RedisLink *link);
extern bool RedisLinkAlive(RedisLink *link, bool expect_silence);
extern bool RedisSubscribeSend(RedisLink *link, const char *channel, StringInfo error);
extern bool RedisSubscribeAwait(RedisLink *link, const char *channel,
								TimestampTz deadline, StringInfo error);
extern bool RedisUnsubscribeSend(RedisLink *link, StringInfo error);
extern int	RedisSocket(RedisLink *link);
extern int	RedisReadMessage(RedisLink *link, const char *channel, bool readable,
							 char **message, StringInfo error);
extern char *RedisGet(RedisLink *link, const char *key, StringInfo error,
					  bool *failed);

#endif							/* CELERYSALT_REDIS_H */
