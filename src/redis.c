/*-------------------------------------------------------------------------
 *
 * redis.c
 *		hiredis: connections to the Celery result backend, GET, EXISTS,
 *		SUBSCRIBE / UNSUBSCRIBE and pub/sub messages.  Every context is non-blocking and
 *		every wait sleeps on the backend's latch and the socket together with
 *		the caller's deadline, so query cancel, statement_timeout and
 *		termination end it at once and nothing outlives the deadline.
 *
 * Library and server errors come back as text without credentials; the
 * caller decides the SQLSTATE.  A link whose state is uncertain after an
 * error must be dropped with RedisDisconnect.
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"

#include <poll.h>
#include <sys/socket.h>

#include <hiredis/hiredis.h>

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "redis.h"
#include "guc.h"

struct RedisLink
{
	redisContext *ctx;
};

/* ------------------------------------------------------------------------
 * I/O.  Every context is non-blocking: each round trip writes what the
 * socket takes and sleeps in WaitLatchOrSocket until the socket is ready,
 * the latch is set or the caller's deadline passes, so cancel,
 * statement_timeout and termination end it at once and no wait outlives
 * the deadline (as postgres_fdw does for libpq).  Functions returning int
 * return 1 on success, 0 when the deadline passed (the link's state is then
 * unknown: drop it), -1 on a failure described in error.
 * ------------------------------------------------------------------------
 */

/*
 * Sleep until the link's socket has `event` (WL_SOCKET_READABLE or
 * WL_SOCKET_WRITEABLE), the latch is set or deadline passes; false once the
 * deadline has passed.  Serves interrupts (may not return).
 */
static bool
wait_socket(RedisLink *link, int event, TimestampTz deadline)
{
	long		remaining;
	int			rc;

	CHECK_FOR_INTERRUPTS();
	remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
	if (remaining <= 0)
		return false;
	rc = WaitLatchOrSocket(MyLatch,
						   WL_LATCH_SET | event | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						   link->ctx->fd, remaining, PG_WAIT_EXTENSION);
	if (rc & WL_LATCH_SET)
	{
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	return true;
}

/* Write the context's output buffer entirely. */
static int
flush_output(RedisLink *link, TimestampTz deadline, StringInfo error)
{
	for (;;)
	{
		int			done = 0;

		if (redisBufferWrite(link->ctx, &done) != REDIS_OK)
		{
			appendStringInfo(error, "could not write to Redis: %s", link->ctx->errstr);
			return -1;
		}
		if (done)
			return 1;
		if (!wait_socket(link, WL_SOCKET_WRITEABLE, deadline))
			return 0;
	}
}

/* Wait until a complete reply is available; *reply is the caller's to free. */
static int
read_reply(RedisLink *link, TimestampTz deadline, redisReply **reply, StringInfo error)
{
	for (;;)
	{
		void	   *r = NULL;

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
		if (!wait_socket(link, WL_SOCKET_READABLE, deadline))
			return 0;
		/* non-blocking: a wakeup without data reads nothing */
		if (redisBufferRead(link->ctx) != REDIS_OK)
		{
			appendStringInfo(error, "lost the Redis connection: %s",
							 link->ctx->errstr[0] ? link->ctx->errstr : "closed by server");
			return -1;
		}
	}
}

/*
 * Copy a server error text into error, hiding secret if it occurs there
 * (Redis never repeats AUTH arguments today; this keeps it that way).
 */
static void
append_server_error(StringInfo error, const char *what, const char *text, size_t len,
					const char *secret)
{
	char	   *copy = pnstrdup(text, len);

	if (!pg_verify_mbstr(GetDatabaseEncoding(), copy, strlen(copy), true))
		copy = pstrdup("(a reply that is not valid text)");
	if (secret != NULL && secret[0] != '\0')
	{
		char	   *hit;

		while ((hit = strstr(copy, secret)) != NULL)
			copy = psprintf("%.*s***%s", (int) (hit - copy), copy, hit + strlen(secret));
	}
	appendStringInfo(error, "Redis refused %s: %s", what, copy);
}

/*
 * One command, one reply.  An error reply is a failure (its text in error,
 * with secret hidden).  *reply is the caller's to free.
 */
static int
round_trip(RedisLink *link, int argc, const char **argv, TimestampTz deadline,
		   redisReply **reply, StringInfo error, const char *secret)
{
	int			rc;

	if (redisAppendCommandArgv(link->ctx, argc, argv, NULL) != REDIS_OK)
	{
		appendStringInfo(error, "could not queue the Redis command %s", argv[0]);
		return -1;
	}
	rc = flush_output(link, deadline, error);
	if (rc <= 0)
		return rc;
	rc = read_reply(link, deadline, reply, error);
	if (rc <= 0)
		return rc;
	if ((*reply)->type == REDIS_REPLY_ERROR)
	{
		append_server_error(error, argv[0], (*reply)->str, (*reply)->len, secret);
		freeReplyObject(*reply);
		*reply = NULL;
		return -1;
	}
	return 1;
}

/* Wait for a non-blocking connect to finish. */
static int
await_connected(RedisLink *link, TimestampTz deadline, StringInfo error)
{
	for (;;)
	{
		struct pollfd pfd;
		int			err = 0;
		socklen_t	len = sizeof(err);

		pfd.fd = link->ctx->fd;
		pfd.events = POLLOUT;
		pfd.revents = 0;
		if (poll(&pfd, 1, 0) > 0)
		{
			if (getsockopt(link->ctx->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
				err = errno;
			if (err != 0)
			{
				appendStringInfoString(error, strerror(err));
				return -1;
			}
			return 1;
		}
		if (!wait_socket(link, WL_SOCKET_WRITEABLE, deadline))
			return 0;
	}
}

/*
 * RedisConnect
 *		Connect to celerysalt.redis_url, authenticate, and SELECT its
 *		database when select_db (pub/sub ignores databases), all within
 *		deadline and at most celerysalt.broker_timeout.  Returns NULL with
 *		error set when Redis cannot be used; *timed_out tells whether it was
 *		deadline (not broker_timeout) that ran out.  Interrupts are served:
 *		the half-open connection is freed on that path too.  Free the link
 *		with RedisDisconnect.
 */
RedisLink *
RedisConnect(bool select_db, TimestampTz deadline, StringInfo error, bool *timed_out)
{
	RedisUrl	url;
	char	   *parse_error = NULL;
	redisContext *ctx;
	RedisLink  *volatile link;
	TimestampTz connect_deadline;
	volatile bool ok = false;

	*timed_out = false;
	if (!ConninfoParseRedis(celerysalt_redis_url, &url, &parse_error))
	{
		appendStringInfoString(error, parse_error);
		return NULL;
	}
	if (celerysalt_redis_password_file && celerysalt_redis_password_file[0])
	{
		if (!celerysalt_redis_url_trusted)
		{
			appendStringInfoString(error, "celerysalt.redis_password_file applies only to a celerysalt.redis_url "
								   "from the server's configuration or set by a superuser; this session's URL "
								   "was set otherwise, so no password is sent with it");
			return NULL;
		}
		url.password = ConninfoReadSecretFile(celerysalt_redis_password_file, "Redis", error);
		if (url.password == NULL)
			return NULL;
	}
	connect_deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												   celerysalt_broker_timeout_ms);
	if (deadline < connect_deadline)
		connect_deadline = deadline;

	ctx = redisConnectNonBlock(url.host, url.port);
	if (ctx == NULL || ctx->err)
	{
		appendStringInfo(error, "could not connect to Redis at %s:%d: %s",
						 url.host, url.port, ctx ? ctx->errstr : "out of memory");
		if (ctx)
			redisFree(ctx);
		return NULL;
	}
	link = MemoryContextAllocZero(TopMemoryContext, sizeof(RedisLink));
	link->ctx = ctx;

	PG_TRY();
	{
		int			rc;
		redisReply *reply = NULL;
		StringInfoData why;

		initStringInfo(&why);
		rc = await_connected(link, connect_deadline, &why);
		if (rc < 0)
			appendStringInfo(error, "could not connect to Redis at %s:%d: %s",
							 url.host, url.port, why.data);
		if (rc > 0)
			redisEnableKeepAlive(ctx);

		if (rc > 0 && url.password != NULL)
		{
			const char *argv[3] = {"AUTH", url.user ? url.user : url.password, url.password};

			rc = round_trip(link, url.user ? 3 : 2, argv, connect_deadline, &reply, error,
							url.password);
			if (reply)
				freeReplyObject(reply);
		}
		if (rc > 0 && select_db && url.db != 0)
		{
			char		db[16];
			const char *argv[2] = {"SELECT", db};

			snprintf(db, sizeof(db), "%d", url.db);
			reply = NULL;
			rc = round_trip(link, 2, argv, connect_deadline, &reply, error, NULL);
			if (reply)
				freeReplyObject(reply);
		}
		if (rc == 0)
		{
			*timed_out = (connect_deadline == deadline);
			if (*timed_out)
				appendStringInfo(error, "Redis at %s:%d did not answer before the call's deadline",
								 url.host, url.port);
			else
				appendStringInfo(error, "Redis at %s:%d did not answer within celerysalt.broker_timeout (%d ms)",
								 url.host, url.port, celerysalt_broker_timeout_ms);
		}
		ok = (rc > 0);
	}
	PG_CATCH();
	{
		RedisDisconnect(link);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (!ok)
	{
		RedisDisconnect(link);
		return NULL;
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

/* Is reply a pub/sub array whose kind is `kind` (and channel, if given)? */
static bool
pubsub_reply_is(redisReply *reply, const char *kind, const char *channel)
{
	return reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
		reply->element[0]->type == REDIS_REPLY_STRING &&
		strcmp(reply->element[0]->str, kind) == 0 &&
		(channel == NULL ||
		 (reply->element[1]->type == REDIS_REPLY_STRING &&
		  reply->element[1]->len == strlen(channel) &&
		  memcmp(reply->element[1]->str, channel, reply->element[1]->len) == 0));
}

/* SUBSCRIBE channel, without waiting for the confirmation. */
int
RedisSubscribeSend(RedisLink *link, const char *channel, TimestampTz deadline,
				   StringInfo error)
{
	const char *argv[2] = {"SUBSCRIBE", channel};

	if (redisAppendCommandArgv(link->ctx, 2, argv, NULL) != REDIS_OK)
	{
		appendStringInfoString(error, "could not queue the Redis command SUBSCRIBE");
		return -1;
	}
	return flush_output(link, deadline, error);
}

/*
 * RedisSubscribeAwait
 *		Wait for the confirmation of SUBSCRIBE channel, skipping what an
 *		earlier call left behind (its UNSUBSCRIBE confirmation, messages of
 *		its channel).
 */
int
RedisSubscribeAwait(RedisLink *link, const char *channel, TimestampTz deadline,
					StringInfo error)
{
	for (;;)
	{
		redisReply *reply = NULL;
		int			rc = read_reply(link, deadline, &reply, error);
		bool		done;

		if (rc <= 0)
			return rc;
		if (reply->type == REDIS_REPLY_ERROR)
		{
			append_server_error(error, "SUBSCRIBE", reply->str, reply->len, NULL);
			freeReplyObject(reply);
			return -1;
		}
		done = pubsub_reply_is(reply, "subscribe", channel);
		freeReplyObject(reply);
		if (done)
			return 1;
	}
}

/*
 * RedisUnsubscribeSend
 *		UNSUBSCRIBE from everything without waiting: what the socket does not
 *		take now goes out before the next command, and RedisSubscribeAwait
 *		skips the reply.
 */
bool
RedisUnsubscribeSend(RedisLink *link, StringInfo error)
{
	const char *argv[1] = {"UNSUBSCRIBE"};
	int			done = 0;

	if (redisAppendCommandArgv(link->ctx, 1, argv, NULL) != REDIS_OK ||
		redisBufferWrite(link->ctx, &done) != REDIS_OK)
	{
		appendStringInfo(error, "could not write to Redis: %s", link->ctx->errstr);
		return false;
	}
	return true;
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
 *		has.  Returns 1 with *message (palloc'd, NUL-terminated, *len bytes:
 *		exactly what Redis sent, not yet checked as text), 0 if none yet, -1
 *		on a connection error.
 */
int
RedisReadMessage(RedisLink *link, const char *channel, bool readable,
				 char **message, size_t *len, StringInfo error)
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
			*len = reply->element[2]->len;
			*message = palloc(*len + 1);
			memcpy(*message, reply->element[2]->str, *len);
			(*message)[*len] = '\0';
			freeReplyObject(reply);
			return 1;
		}
		freeReplyObject(reply);
	}
}

/*
 * RedisGet
 *		GET key within deadline: 1 with *value (palloc'd, NUL-terminated,
 *		*len bytes, exactly as stored, not yet checked as text) or NULL when
 *		the key does not exist.
 */
int
RedisGet(RedisLink *link, const char *key, TimestampTz deadline,
		 char **value, size_t *len, StringInfo error)
{
	const char *argv[2] = {"GET", key};
	redisReply *reply = NULL;
	int			rc = round_trip(link, 2, argv, deadline, &reply, error, NULL);

	*value = NULL;
	*len = 0;
	if (rc <= 0)
		return rc;
	if (reply->type == REDIS_REPLY_STRING)
	{
		*len = reply->len;
		*value = palloc(*len + 1);
		memcpy(*value, reply->str, *len);
		(*value)[*len] = '\0';
	}
	freeReplyObject(reply);
	return 1;
}

/*
 * RedisExists
 *		EXISTS key within deadline: 1 with *exists set, 0 when the deadline
 *		passed, -1 on a failure described in error.
 */
int
RedisExists(RedisLink *link, const char *key, TimestampTz deadline, bool *exists,
			StringInfo error)
{
	const char *argv[2] = {"EXISTS", key};
	redisReply *reply = NULL;
	int			rc = round_trip(link, 2, argv, deadline, &reply, error, NULL);

	*exists = false;
	if (rc <= 0)
		return rc;
	if (reply->type != REDIS_REPLY_INTEGER)
	{
		appendStringInfoString(error, "Redis answered EXISTS with something other than an integer");
		freeReplyObject(reply);
		return -1;
	}
	*exists = reply->integer > 0;
	freeReplyObject(reply);
	return 1;
}
