/*-------------------------------------------------------------------------
 *
 * redis.c
 *		The Celery result backend's Redis: connections (redis:// over TCP,
 *		rediss:// over TLS, never TCP instead), GET, EXISTS, SUBSCRIBE /
 *		UNSUBSCRIBE and pub/sub messages.  The link owns its socket and
 *		OpenSSL session; hiredis formats the commands and parses the replies
 *		(Debian 12's hiredis 0.14 has no TLS).  Every socket is non-blocking
 *		and every wait sleeps on the backend's latch and the socket together
 *		with the caller's deadline, so query cancel, statement_timeout and
 *		termination end it at once and nothing outlives the deadline: the
 *		TLS handshake included.
 *
 * Library and server errors come back as text without credentials; the
 * caller decides the SQLSTATE.  A link whose state is uncertain after an
 * error must be dropped with RedisDisconnect.
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "redis.h"
#include "guc.h"
#include "tls.h"

/* TCP keepalive as hiredis's redisEnableKeepAlive sets it */
#define KEEPALIVE_IDLE_S	15
#define READ_CHUNK			16384	/* one TLS record's plaintext at most */
#define READ_MAX			(64 * READ_CHUNK)	/* per call, then wait again */

struct RedisLink
{
	int			fd;
	SSL		   *ssl;			/* rediss://; NULL for redis:// */
	bool		broken;			/* an I/O failed: no TLS close, drop it */
	redisReader *reader;		/* hiredis's RESP parser */
	StringInfoData out;			/* commands not yet sent (TopMemoryContext) */
	int			out_sent;		/* bytes of out already sent */
	bool		heard;			/* the server has sent something */
};

/* ------------------------------------------------------------------------
 * I/O.  The link owns its socket (and, for rediss://, its OpenSSL session)
 * and uses hiredis only to format commands and parse replies, so plain and
 * TLS links share one code path.  Every socket is non-blocking: each round
 * trip writes what the socket takes and sleeps in WaitLatchOrSocket until
 * the socket is ready, the latch is set or the caller's deadline passes, so
 * cancel, statement_timeout and termination end it at once and no wait
 * outlives the deadline (as postgres_fdw does for libpq).  A read takes
 * everything the socket has, so no decrypted data waits inside OpenSSL
 * while the caller sleeps on the socket.  Functions returning int return 1
 * on success, 0 when the deadline passed (the link's state is then
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
						   link->fd, remaining, PG_WAIT_EXTENSION);
	if (rc & WL_LATCH_SET)
	{
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	return true;
}

/* Mark the link unusable and say why (what failed, with the socket's or TLS's reason). */
static int
link_failed(RedisLink *link, StringInfo error, const char *what, int ssl_ret)
{
	int			saved_errno = errno;

	link->broken = true;
	appendStringInfo(error, "%s: ", what);
	if (link->ssl != NULL)
	{
		errno = saved_errno;
		TlsAppendFailure(error, link->ssl, ssl_ret);

		/*
		 * TLS 1.3 finishes the handshake before the server checks the
		 * client's certificate; a server that requires one sends an alert
		 * and closes, and the connection reset of our first command can
		 * overtake the alert.  Say what the likely cause is.
		 */
		if (!link->heard && SSL_get_certificate(link->ssl) == NULL &&
			(saved_errno == ECONNRESET || saved_errno == EPIPE))
			appendStringInfoString(error, " (the server closed the connection before its first answer: "
								   "it may require a client certificate, celerysalt.redis_tls_cert_file)");
	}
	else
		appendStringInfoString(error, saved_errno != 0 ? strerror(saved_errno) : "closed by server");
	return -1;
}

/*
 * Send what the output buffer holds, without blocking.  1 when all is sent,
 * 0 when the socket would block (*wait_event: what to wait for), -1 on a
 * failure.
 */
static int
link_send(RedisLink *link, int *wait_event, StringInfo error)
{
	while (link->out_sent < link->out.len)
	{
		int			left = link->out.len - link->out_sent;
		const char *p = link->out.data + link->out_sent;

		if (link->ssl != NULL)
		{
			int			n;

			ERR_clear_error();
			n = SSL_write(link->ssl, p, left);
			if (n > 0)
			{
				link->out_sent += n;
				continue;
			}
			switch (SSL_get_error(link->ssl, n))
			{
				case SSL_ERROR_WANT_WRITE:
					*wait_event = WL_SOCKET_WRITEABLE;
					return 0;
				case SSL_ERROR_WANT_READ:
					*wait_event = WL_SOCKET_READABLE;
					return 0;
				default:
					return link_failed(link, error, "could not write to Redis", n);
			}
		}
		else
		{
			ssize_t		n = send(link->fd, p, left, MSG_NOSIGNAL);

			if (n > 0)
			{
				link->out_sent += n;
				continue;
			}
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			{
				*wait_event = WL_SOCKET_WRITEABLE;
				return 0;
			}
			return link_failed(link, error, "could not write to Redis", 0);
		}
	}
	resetStringInfo(&link->out);
	link->out_sent = 0;
	return 1;
}

/*
 * Read what the socket has into the reply parser, without blocking.  1 when
 * nothing more can be read now (*wait_event: what to wait for before the
 * next read), -1 on a failure or when the server closed the connection.
 * (A TLS read may need to write, after a key update: *wait_event is then
 * WL_SOCKET_WRITEABLE.)
 */
static int
link_recv(RedisLink *link, int *wait_event, StringInfo error)
{
	char		buf[READ_CHUNK];
	int			total = 0;

	*wait_event = WL_SOCKET_READABLE;
	while (total < READ_MAX || (link->ssl != NULL && SSL_pending(link->ssl) > 0))
	{
		int			n;

		if (link->ssl != NULL)
		{
			ERR_clear_error();
			errno = 0;
			n = SSL_read(link->ssl, buf, sizeof(buf));
			if (n <= 0)
			{
				switch (SSL_get_error(link->ssl, n))
				{
					case SSL_ERROR_WANT_READ:
						return 1;
					case SSL_ERROR_WANT_WRITE:
						*wait_event = WL_SOCKET_WRITEABLE;
						return 1;
					case SSL_ERROR_ZERO_RETURN:
						link->broken = true;
						appendStringInfoString(error, "lost the Redis connection: closed by server");
						return -1;
					default:
						return link_failed(link, error, "lost the Redis connection", n);
				}
			}
		}
		else
		{
			ssize_t		got = recv(link->fd, buf, sizeof(buf), 0);

			if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
				return 1;
			if (got <= 0)
			{
				if (got == 0)
					errno = 0;
				return link_failed(link, error, "lost the Redis connection", 0);
			}
			n = (int) got;
		}
		link->heard = true;
		if (redisReaderFeed(link->reader, buf, n) != REDIS_OK)
		{
			link->broken = true;
			appendStringInfo(error, "could not read from Redis: %s", link->reader->errstr);
			return -1;
		}
		total += n;
	}
	return 1;
}

/* Queue one command in the output buffer. */
static void
append_command(RedisLink *link, int argc, const char **argv)
{
	char	   *cmd = NULL;
	int			len = redisFormatCommandArgv(&cmd, argc, argv, NULL);

	if (len < 0 || cmd == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	appendBinaryStringInfo(&link->out, cmd, len);
	redisFreeCommand(cmd);
}

/* A complete reply already parsed, if any: 1 with *reply, 0 none, -1 protocol error. */
static int
next_reply(RedisLink *link, redisReply **reply, StringInfo error)
{
	void	   *r = NULL;

	if (redisReaderGetReply(link->reader, &r) != REDIS_OK)
	{
		link->broken = true;
		appendStringInfo(error, "could not read from Redis: %s", link->reader->errstr);
		return -1;
	}
	*reply = r;
	return r != NULL;
}

/* Write the output buffer entirely. */
static int
flush_output(RedisLink *link, TimestampTz deadline, StringInfo error)
{
	for (;;)
	{
		int			event = WL_SOCKET_WRITEABLE;
		int			rc = link_send(link, &event, error);

		if (rc != 0)
			return rc;
		if (!wait_socket(link, event, deadline))
			return 0;
	}
}

/* Wait until a complete reply is available; *reply is the caller's to free. */
static int
read_reply(RedisLink *link, TimestampTz deadline, redisReply **reply, StringInfo error)
{
	int			event = WL_SOCKET_READABLE;

	for (;;)
	{
		int			rc = next_reply(link, reply, error);

		if (rc != 0)
			return rc;
		if (!wait_socket(link, event, deadline))
			return 0;
		/* non-blocking: a wakeup without data reads nothing */
		if (link_recv(link, &event, error) < 0)
			return -1;
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

	append_command(link, argc, argv);
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

/*
 * Connect the link's socket to host:port within deadline: each address the
 * name resolves to in turn (non-blocking), keeping the first that accepts.
 * TCP_NODELAY and keepalive as hiredis sets them.
 */
static int
connect_socket(RedisLink *link, const char *host, int port, TimestampTz deadline,
			   StringInfo error)
{
	struct addrinfo hints;
	struct addrinfo *res = NULL;
	char		service[16];
	int			gai;
	volatile int err = 0;
	volatile int result = -1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(service, sizeof(service), "%d", port);
	gai = getaddrinfo(host, service, &hints, &res);
	if (gai != 0)
	{
		appendStringInfo(error, "%s", gai_strerror(gai));
		return -1;
	}
	PG_TRY();
	{
		for (struct addrinfo *ai = res; ai != NULL && result < 0; ai = ai->ai_next)
		{
			int			fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

			if (fd < 0)
			{
				err = errno;
				continue;
			}
			link->fd = fd;
			if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
				result = 1;
			else if (errno != EINPROGRESS)
				err = errno;
			else
			{
				/* wait for the connect to finish */
				for (;;)
				{
					struct pollfd pfd = {.fd = fd,.events = POLLOUT};
					int			so_error = 0;
					socklen_t	len = sizeof(so_error);

					if (poll(&pfd, 1, 0) > 0)
					{
						if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0)
							so_error = errno;
						err = so_error;
						if (so_error == 0)
							result = 1;
						break;
					}
					if (!wait_socket(link, WL_SOCKET_WRITEABLE, deadline))
					{
						result = 0;
						break;
					}
				}
			}
			if (result < 0)
			{
				close(fd);
				link->fd = -1;
			}
		}
	}
	PG_FINALLY();
	{
		freeaddrinfo(res);
	}
	PG_END_TRY();

	if (result > 0)
	{
		int			on = 1;
		int			idle = KEEPALIVE_IDLE_S;
		int			interval = Max(KEEPALIVE_IDLE_S / 3, 1);
		int			count = 3;

		(void) setsockopt(link->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
		(void) setsockopt(link->fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
		(void) setsockopt(link->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
		(void) setsockopt(link->fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
		(void) setsockopt(link->fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
	}
	else if (result < 0)
		appendStringInfoString(error, strerror(err != 0 ? err : ECONNREFUSED));
	return result;
}

/*
 * The TLS handshake of a rediss:// link, within deadline; the server's
 * certificate is verified inside it (tls.c), so a server that fails
 * verification never gets a command (no AUTH).
 */
static int
tls_handshake(RedisLink *link, const TlsOptions *opts, const char *host,
			  TimestampTz deadline, StringInfo error)
{
	link->ssl = TlsNewSession(opts, host, link->fd, error);
	if (link->ssl == NULL)
	{
		link->broken = true;
		return -1;
	}
	for (;;)
	{
		int			rc;

		ERR_clear_error();
		errno = 0;
		rc = SSL_connect(link->ssl);
		if (rc == 1)
			return 1;
		switch (SSL_get_error(link->ssl, rc))
		{
			case SSL_ERROR_WANT_READ:
				if (!wait_socket(link, WL_SOCKET_READABLE, deadline))
					return 0;
				break;
			case SSL_ERROR_WANT_WRITE:
				if (!wait_socket(link, WL_SOCKET_WRITEABLE, deadline))
					return 0;
				break;
			default:
				link->broken = true;
				TlsAppendFailure(error, link->ssl, rc);
				return -1;
		}
	}
}

/*
 * The TLS options of a rediss:// URL: the celerysalt.redis_tls_* settings,
 * overridden by the URL's own redis-py parameters (ssl_cert_reqs sets full
 * or none, ssl_check_hostname=false then lowers full to ca; ssl_ca_certs,
 * ssl_certfile, ssl_keyfile name the files).
 */
static void
redis_tls_options(const RedisUrl *url, TlsOptions *opts)
{
	opts->ca_file = url->tls_ca_file ? url->tls_ca_file : celerysalt_redis_tls_ca_file;
	opts->cert_file = url->tls_cert_file ? url->tls_cert_file : celerysalt_redis_tls_cert_file;
	opts->key_file = url->tls_key_file ? url->tls_key_file : celerysalt_redis_tls_key_file;
	if (url->tls_cert_file != NULL && url->tls_key_file == NULL)
		opts->key_file = NULL;	/* the URL's certificate file holds its key */
	opts->verify = (TlsVerify) celerysalt_redis_tls_verify;
	if (url->tls_verify >= 0)
		opts->verify = (TlsVerify) url->tls_verify;
	if (url->tls_check_hostname >= 0 && opts->verify != TLS_VERIFY_NONE)
		opts->verify = url->tls_check_hostname ? TLS_VERIFY_FULL : TLS_VERIFY_CA;
	opts->settings = "celerysalt.redis_tls";
}

/*
 * RedisConnect
 *		Connect to celerysalt.redis_url (over TLS for rediss://, never plain
 *		TCP then), authenticate, and SELECT its database when select_db
 *		(pub/sub ignores databases), all within deadline and at most
 *		celerysalt.broker_timeout.  Returns NULL with error set when Redis
 *		cannot be used; *timed_out tells whether it was deadline (not
 *		broker_timeout) that ran out.  Interrupts are served: the half-open
 *		connection is freed on that path too.  Free the link with
 *		RedisDisconnect.
 */
RedisLink *
RedisConnect(bool select_db, TimestampTz deadline, StringInfo error, bool *timed_out)
{
	RedisUrl	url;
	char	   *parse_error = NULL;
	RedisLink  *volatile link;
	TimestampTz connect_deadline;
	TlsOptions	tls;
	volatile bool ok = false;
	MemoryContext old;

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
	if (url.tls)
	{
		redis_tls_options(&url, &tls);

		/*
		 * As for the password file: a client certificate, and files named by
		 * the URL, only for a URL from the configuration or a superuser.
		 */
		if (!celerysalt_redis_url_trusted &&
			((tls.cert_file != NULL && tls.cert_file[0] != '\0') ||
			 url.tls_ca_file != NULL))
		{
			appendStringInfoString(error, "a TLS client certificate (celerysalt.redis_tls_cert_file) and the files a URL "
								   "names (ssl_ca_certs, ssl_certfile, ssl_keyfile) apply only to a celerysalt.redis_url "
								   "from the server's configuration or set by a superuser; this session's URL was set otherwise");
			return NULL;
		}
	}
	connect_deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												   celerysalt_broker_timeout_ms);
	if (deadline < connect_deadline)
		connect_deadline = deadline;

	old = MemoryContextSwitchTo(TopMemoryContext);
	link = palloc0(sizeof(RedisLink));
	link->fd = -1;
	initStringInfo(&link->out);
	MemoryContextSwitchTo(old);
	link->reader = redisReaderCreate();
	if (link->reader == NULL)
	{
		RedisDisconnect(link);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	}

	PG_TRY();
	{
		int			rc;
		redisReply *reply = NULL;
		bool		said_something = false;
		StringInfoData why;

		initStringInfo(&why);
		rc = connect_socket(link, url.host, url.port, connect_deadline, &why);
		if (rc > 0 && url.tls)
			rc = tls_handshake(link, &tls, url.host, connect_deadline, &why);

		if (rc > 0 && url.password != NULL)
		{
			const char *argv[3] = {"AUTH", url.user ? url.user : url.password, url.password};

			rc = round_trip(link, url.user ? 3 : 2, argv, connect_deadline, &reply, &why,
							url.password);
			if (reply)
				freeReplyObject(reply);
			said_something = true;
		}
		if (rc > 0 && select_db && url.db != 0)
		{
			char		db[16];
			const char *argv[2] = {"SELECT", db};

			snprintf(db, sizeof(db), "%d", url.db);
			reply = NULL;
			rc = round_trip(link, 2, argv, connect_deadline, &reply, &why, NULL);
			if (reply)
				freeReplyObject(reply);
			said_something = true;
		}

		/*
		 * With TLS 1.3 a server that refuses the client certificate says so
		 * after the handshake: make sure of the link now, so that the
		 * failure is a connection failure and not a broken call.
		 */
		if (rc > 0 && url.tls && !said_something)
		{
			const char *argv[1] = {"PING"};

			reply = NULL;
			rc = round_trip(link, 1, argv, connect_deadline, &reply, &why, NULL);
			if (reply)
				freeReplyObject(reply);
		}
		if (rc < 0)
			appendStringInfo(error, "could not connect to Redis at %s:%d: %s",
							 url.host, url.port, why.data);
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
	if (link->ssl != NULL)
	{
		/* close_notify without waiting for the server's; never after a failure */
		if (!link->broken)
			(void) SSL_shutdown(link->ssl);
		SSL_free(link->ssl);
		ERR_clear_error();
	}
	if (link->fd >= 0)
		close(link->fd);
	if (link->reader != NULL)
		redisReaderFree(link->reader);
	if (link->out.data != NULL)
		pfree(link->out.data);
	pfree(link);
}

/*
 * Whether a cached link still looks usable.  With expect_silence (a command
 * link between calls) anything to read means the server closed it; a
 * pub/sub link may legitimately hold replies an earlier call left behind.
 * What arrives is read, not peeked at: a TLS server may send records that
 * carry no data (session tickets), which only a read tells apart.
 */
bool
RedisLinkAlive(RedisLink *link, bool expect_silence)
{
	StringInfoData ignored;
	redisReply *reply = NULL;
	int			event;
	bool		alive;

	if (link->broken)
		return false;
	if (!expect_silence)
		return true;
	initStringInfo(&ignored);
	alive = link_recv(link, &event, &ignored) > 0 &&
		next_reply(link, &reply, &ignored) == 0 &&
		link->reader->pos == link->reader->len;
	if (reply != NULL)
		freeReplyObject(reply);
	pfree(ignored.data);
	return alive;
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

	append_command(link, 2, argv);
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
	int			event;

	append_command(link, 1, argv);
	return link_send(link, &event, error) >= 0;
}

int
RedisSocket(RedisLink *link)
{
	return link->fd;
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
	int			event;

	if (readable && link_recv(link, &event, error) < 0)
		return -1;
	for (;;)
	{
		redisReply *reply = NULL;
		int			rc = next_reply(link, &reply, error);

		if (rc <= 0)
			return rc;
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
