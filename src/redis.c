/*-------------------------------------------------------------------------
 *
 * redis.c
 *		hiredis: connections to the Celery result backend with timeouts,
 *		GET, SUBSCRIBE / UNSUBSCRIBE, and waits for a pub/sub message that
 *		sleep on the backend's latch and the socket together, so query cancel,
 *		statement_timeout and termination end them at once.
 *
 * Library and server errors come back as text without credentials; the
 * caller decides the SQLSTATE.  A link whose state is uncertain after an
 * error must be dropped with RedisDisconnect.
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"

#include <poll.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "redis.h"

struct RedisLink
{
	redisContext *ctx;
};

/*
 * RedisParseUrl
 *		redis://[[user]:password@]host[:port][/db].  Strings are palloc'd.
 *		On failure *error says why without repeating the URL.
 */
bool
RedisParseUrl(const char *url, RedisUrl *out, char **error)
{
	const char *p;
	const char *at;
	const char *hostend;
	const char *slash;

	memset(out, 0, sizeof(*out));
	out->port = 6379;
	if (strncmp(url, "redis://", 8) != 0)
	{
		*error = strncmp(url, "rediss://", 9) == 0
			? "TLS (rediss://) is not supported by this build."
			: "The Redis URL must start with redis://.";
		return false;
	}
	p = url + 8;
	slash = strchr(p, '/');
	at = strchr(p, '@');
	if (at != NULL && (slash == NULL || at < slash))
	{
		const char *colon = memchr(p, ':', at - p);

		if (colon == NULL)
			out->password = pnstrdup(p, at - p);
		else
		{
			if (colon > p)
				out->user = pnstrdup(p, colon - p);
			out->password = pnstrdup(colon + 1, at - colon - 1);
		}
		p = at + 1;
	}
	hostend = slash ? slash : p + strlen(p);
	{
		const char *colon = memchr(p, ':', hostend - p);

		if (colon != NULL)
		{
			char	   *end;
			long		port = strtol(colon + 1, &end, 10);

			if (end != hostend || port < 1 || port > 65535)
			{
				*error = "The Redis URL has an invalid port.";
				return false;
			}
			out->port = (int) port;
			out->host = pnstrdup(p, colon - p);
		}
		else
			out->host = pnstrdup(p, hostend - p);
	}
	if (out->host[0] == '\0')
		out->host = pstrdup("127.0.0.1");
	if (slash != NULL && slash[1] != '\0')
	{
		char	   *end;
		long		db = strtol(slash + 1, &end, 10);

		if (*end != '\0' || db < 0 || db > 1000000)
		{
			*error = "The Redis URL has an invalid database number.";
			return false;
		}
		out->db = (int) db;
	}
	return true;
}

/* The URL with any password replaced by "***". */
char *
RedisRedactedUrl(const char *url)
{
	const char *start = strstr(url, "://");
	const char *at;
	const char *colon;

	if (start == NULL)
		return pstrdup(url);
	start += 3;
	at = strchr(start, '@');
	if (at == NULL)
		return pstrdup(url);
	colon = memchr(start, ':', at - start);
	if (colon == NULL)
		return psprintf("%.*s***%s", (int) (start - url), url, at);
	return psprintf("%.*s:***%s", (int) (colon - url), url, at);
}

static void
set_timeval(struct timeval *tv, int ms)
{
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
}

/* Run one command synchronously; NULL with error text on failure. */
static redisReply *
command_argv(RedisLink *link, int argc, const char **argv, StringInfo error)
{
	redisReply *reply = redisCommandArgv(link->ctx, argc, argv, NULL);

	if (reply == NULL)
	{
		appendStringInfo(error, "Redis command %s failed: %s", argv[0],
						 link->ctx->errstr[0] ? link->ctx->errstr : "connection lost");
		return NULL;
	}
	if (reply->type == REDIS_REPLY_ERROR)
	{
		/* AUTH errors never contain the password, only the server's text */
		appendStringInfo(error, "Redis refused %s: %s", argv[0], reply->str);
		freeReplyObject(reply);
		return NULL;
	}
	return reply;
}

/*
 * RedisConnect
 *		Connect to celerysalt.redis_url, authenticate, and SELECT its
 *		database when select_db (pub/sub ignores databases).  Returns NULL
 *		with error set when Redis cannot be used.  Free with RedisDisconnect.
 */
RedisLink *
RedisConnect(bool select_db, StringInfo error)
{
	RedisUrl	url;
	char	   *parse_error = NULL;
	struct timeval tv;
	redisContext *ctx;
	RedisLink  *link;

	if (!RedisParseUrl(celerysalt_redis_url, &url, &parse_error))
	{
		appendStringInfoString(error, parse_error);
		return NULL;
	}
	if (celerysalt_redis_password_file && celerysalt_redis_password_file[0])
	{
		url.password = GucReadSecretFile(celerysalt_redis_password_file, "Redis", error);
		if (url.password == NULL)
			return NULL;
	}

	set_timeval(&tv, celerysalt_broker_timeout_ms);
	ctx = redisConnectWithTimeout(url.host, url.port, tv);
	if (ctx == NULL || ctx->err)
	{
		appendStringInfo(error, "could not connect to Redis at %s:%d: %s",
						 url.host, url.port, ctx ? ctx->errstr : "out of memory");
		if (ctx)
			redisFree(ctx);
		return NULL;
	}
	redisSetTimeout(ctx, tv);
	redisEnableKeepAlive(ctx);

	link = MemoryContextAllocZero(TopMemoryContext, sizeof(RedisLink));
	link->ctx = ctx;

	if (url.password != NULL)
	{
		const char *argv[3] = {"AUTH", url.user ? url.user : url.password, url.password};
		redisReply *reply = command_argv(link, url.user ? 3 : 2, argv, error);

		if (reply == NULL)
		{
			RedisDisconnect(link);
			return NULL;
		}
		freeReplyObject(reply);
	}
	if (select_db && url.db != 0)
	{
		char		db[16];
		const char *argv[2] = {"SELECT", db};
		redisReply *reply;

		snprintf(db, sizeof(db), "%d", url.db);
		reply = command_argv(link, 2, argv, error);
		if (reply == NULL)
		{
			RedisDisconnect(link);
			return NULL;
		}
		freeReplyObject(reply);
	}
	return link;
}

void
RedisDisconnect(RedisLink *link)
{
	if (link == NULL)
		return;
	redisFree(link->ctx);
	pfree(link);
}

/*
 * Whether a cached link still looks usable.  With expect_silence (a command
 * link between calls) anything to read means the server closed it; a
 * pub/sub link may legitimately hold replies an earlier call left behind.
 */
bool
RedisLinkAlive(RedisLink *link, bool expect_silence)
{
	struct pollfd pfd;

	if (link->ctx->err)
		return false;
	if (!expect_silence)
		return true;
	pfd.fd = link->ctx->fd;
	pfd.events = POLLIN;
	pfd.revents = 0;
	return poll(&pfd, 1, 0) == 0;
}

/*
 * Wait until a complete reply is available or the deadline passes,
 * sleeping on the latch and the socket.  Returns 1 with *reply set, 0 on
 * timeout, -1 on a connection error (error set).  Interrupts are served.
 */
static int
read_reply(RedisLink *link, TimestampTz deadline, redisReply **reply, StringInfo error)
{
	for (;;)
	{
		void	   *r = NULL;
		long		remaining;
		int			events;

		if (redisGetReplyFromReader(link->ctx, &r) != REDIS_OK)
		{
			appendStringInfo(error, "could not read from Redis: %s", link->ctx->errstr);
			return -1;
		}
		if (r != NULL)
		{
			*reply = r;
			return 1;
		}

		remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (remaining <= 0)
			return 0;
		events = WaitLatchOrSocket(MyLatch,
								   WL_LATCH_SET | WL_SOCKET_READABLE | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								   link->ctx->fd, remaining, PG_WAIT_EXTENSION);
		if (events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
		if (events & WL_SOCKET_READABLE)
		{
			if (redisBufferRead(link->ctx) != REDIS_OK)
			{
				appendStringInfo(error, "lost the Redis connection: %s",
								 link->ctx->errstr[0] ? link->ctx->errstr : "closed by server");
				return -1;
			}
		}
	}
}

/* Send a command built with redisAppendCommandArgv, entirely. */
static bool
flush_command(RedisLink *link, StringInfo error)
{
	int			done = 0;

	while (!done)
	{
		if (redisBufferWrite(link->ctx, &done) != REDIS_OK)
		{
			appendStringInfo(error, "could not write to Redis: %s", link->ctx->errstr);
			return false;
		}
	}
	return true;
}

/* Is reply a pub/sub array whose kind is `kind` (and channel, if given)? */
static bool
pubsub_reply_is(redisReply *reply, const char *kind, const char *channel)
{
	return reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
		reply->element[0]->type == REDIS_REPLY_STRING &&
		strcmp(reply->element[0]->str, kind) == 0 &&
		(channel == NULL ||
		 (reply->element[1]->type == REDIS_REPLY_STRING &&
		  strcmp(reply->element[1]->str, channel) == 0));
}

/* SUBSCRIBE channel, without waiting for the confirmation. */
bool
RedisSubscribeSend(RedisLink *link, const char *channel, StringInfo error)
{
	const char *argv[2] = {"SUBSCRIBE", channel};

	redisAppendCommandArgv(link->ctx, 2, argv, NULL);
	return flush_command(link, error);
}

/*
 * RedisSubscribeAwait
 *		Wait for the confirmation of SUBSCRIBE channel, skipping what an
 *		earlier call left behind (its UNSUBSCRIBE confirmation, messages of
 *		its channel).
 */
bool
RedisSubscribeAwait(RedisLink *link, const char *channel, TimestampTz deadline,
					StringInfo error)
{
	for (;;)
	{
		redisReply *reply = NULL;
		int			rc = read_reply(link, deadline, &reply, error);
		bool		done;

		if (rc == 0)
			appendStringInfoString(error, "timed out waiting for Redis to confirm SUBSCRIBE");
		if (rc <= 0)
			return false;
		done = pubsub_reply_is(reply, "subscribe", channel);
		freeReplyObject(reply);
		if (done)
			return true;
	}
}

/* UNSUBSCRIBE from everything, without waiting (RedisSubscribeAwait skips the reply). */
bool
RedisUnsubscribeSend(RedisLink *link, StringInfo error)
{
	const char *argv[1] = {"UNSUBSCRIBE"};

	redisAppendCommandArgv(link->ctx, 1, argv, NULL);
	return flush_command(link, error);
}

int
RedisSocket(RedisLink *link)
{
	return link->ctx->fd;
}

/*
 * RedisReadMessage
 *		Without blocking, look for a pub/sub message on channel among the
 *		replies received so far; with readable, first read what the socket
 *		has (only then: the socket blocks).  Returns 1 with *message
 *		(palloc'd), 0 if none yet, -1 on a connection error.
 */
int
RedisReadMessage(RedisLink *link, const char *channel, bool readable,
				 char **message, StringInfo error)
{
	if (readable && redisBufferRead(link->ctx) != REDIS_OK)
	{
		appendStringInfo(error, "lost the Redis connection: %s",
						 link->ctx->errstr[0] ? link->ctx->errstr : "closed by server");
		return -1;
	}
	for (;;)
	{
		void	   *r = NULL;
		redisReply *reply;

		if (redisGetReplyFromReader(link->ctx, &r) != REDIS_OK)
		{
			appendStringInfo(error, "could not read from Redis: %s", link->ctx->errstr);
			return -1;
		}
		if (r == NULL)
			return 0;
		reply = r;
		if (pubsub_reply_is(reply, "message", channel) &&
			reply->element[2]->type == REDIS_REPLY_STRING)
		{
			*message = pnstrdup(reply->element[2]->str, reply->element[2]->len);
			freeReplyObject(reply);
			return 1;
		}
		freeReplyObject(reply);
	}
}

/*
 * RedisGet
 *		GET key: the value palloc'd, or NULL when the key does not exist (or
 *		on failure, then *failed is set and error describes it).
 */
char *
RedisGet(RedisLink *link, const char *key, StringInfo error, bool *failed)
{
	const char *argv[2] = {"GET", key};
	redisReply *reply = command_argv(link, 2, argv, error);
	char	   *value = NULL;

	*failed = (reply == NULL);
	if (reply == NULL)
		return NULL;
	if (reply->type == REDIS_REPLY_STRING)
		value = pnstrdup(reply->str, reply->len);
	freeReplyObject(reply);
	return value;
}
