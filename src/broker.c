/*-------------------------------------------------------------------------
 *
 * broker.c
 *		librabbitmq-c: connect and log in with timeouts, put the channel in
 *		confirm mode, declare the exchange exactly as the Python libraries do,
 *		publish batches of Celery messages without waiting and match the
 *		broker's confirms and returns to them as they stream in (the
 *		worker's window), publish one message at a time (RPC), and turn
 *		library and broker failures into text without credentials.  An
 *		amqps:// URL is opened over TLS (tls.c, the celerysalt.broker_tls_*
 *		settings), never over plain TCP; amqp:// ignores those settings.
 *
 * Every blocking library call is bounded by celerysalt.broker_timeout.  The
 * worker's path never blocks on a confirm: it waits on BrokerSocket together
 * with its latch.  The RPC path's BrokerSettle waits in slices of at most
 * 100 ms with CHECK_FOR_INTERRUPTS in between.  Either way a shutdown
 * request is served promptly.
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"

#include <errno.h>
#include <netdb.h>
#include <unistd.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>

#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "broker.h"
#include "guc.h"
#include "message.h"
#include "tls.h"

#define BROKER_CHANNEL		1
#define BROKER_FRAME_MAX	131072
#define WAIT_SLICE_MS		100

struct BrokerConnection
{
	amqp_connection_state_t state;
	uint64		next_tag;		/* delivery tag of the next publish */
	uint64		confirmed_through;	/* BrokerSend: every tag up to here acked */
	/* BrokerPublishAsync: batches with unconfirmed messages, oldest first */
	BrokerBatch *pending_head;
	BrokerBatch *pending_tail;
	uint64		return_cursor;	/* tag after the last message returned */
	bool		return_header_next; /* a basic.return's header frame follows */
	char		origin[128];	/* Celery "origin" header */
};

/* Describe a failed library call or server exception into error. */
static void
describe_reply(StringInfo error, const char *what, amqp_rpc_reply_t reply)
{
	switch (reply.reply_type)
	{
		case AMQP_RESPONSE_NORMAL:
			appendStringInfo(error, "%s: no error", what);
			break;
		case AMQP_RESPONSE_NONE:
			appendStringInfo(error, "%s: no reply from the broker", what);
			break;
		case AMQP_RESPONSE_LIBRARY_EXCEPTION:
			appendStringInfo(error, "%s: %s", what,
							 amqp_error_string2(reply.library_error));
			break;
		case AMQP_RESPONSE_SERVER_EXCEPTION:
			if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD)
			{
				amqp_connection_close_t *m = reply.reply.decoded;

				appendStringInfo(error, "%s: broker closed the connection: %u %.*s",
								 what, m->reply_code, (int) m->reply_text.len,
								 (char *) m->reply_text.bytes);
			}
			else if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD)
			{
				amqp_channel_close_t *m = reply.reply.decoded;

				appendStringInfo(error, "%s: broker closed the channel: %u %.*s",
								 what, m->reply_code, (int) m->reply_text.len,
								 (char *) m->reply_text.bytes);
			}
			else
				appendStringInfo(error, "%s: unexpected broker method 0x%08x",
								 what, reply.reply.id);
			break;
	}
}

/*
 * librabbitmq reports any failed connect as "a socket error occurred" and
 * leaves errno at EINPROGRESS: connect once more ourselves, briefly, to say
 * why (refused, unreachable, ...).
 */
static void
append_connect_errno(StringInfo error, const char *host, int port)
{
	struct addrinfo hints;
	struct addrinfo *res = NULL;
	char		service[16];
	int			err = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(service, sizeof(service), "%d", port);
	if (getaddrinfo(host, service, &hints, &res) != 0 || res == NULL)
	{
		appendStringInfoString(error, " (the host name could not be resolved)");
		return;
	}
	{
		int			fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);

		if (fd >= 0)
		{
			if (connect(fd, res->ai_addr, res->ai_addrlen) != 0)
			{
				err = errno;
				if (err == EINPROGRESS)
				{
					struct pollfd pfd = {.fd = fd,.events = POLLOUT};
					socklen_t	len = sizeof(err);

					err = ETIMEDOUT;
					if (poll(&pfd, 1, Min(celerysalt_broker_timeout_ms, 1000)) > 0)
						getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
				}
			}
			close(fd);
		}
	}
	freeaddrinfo(res);
	if (err != 0)
		appendStringInfo(error, " (%s)", strerror(err));
}

static void
set_timeval(struct timeval *tv, int ms)
{
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
}

/* The TLS options of amqps:// URLs: the celerysalt.broker_tls_* settings. */
static void
broker_tls_options(TlsOptions *opts)
{
	opts->ca_file = celerysalt_broker_tls_ca_file;
	opts->cert_file = celerysalt_broker_tls_cert_file;
	opts->key_file = celerysalt_broker_tls_key_file;
	opts->verify = (TlsVerify) celerysalt_broker_tls_verify;
	opts->settings = "celerysalt.broker_tls";
}

/*
 * broker_open_socket
 *		Open the transport of state to url's node within tv: TCP for
 *		amqp://, TLS for amqps:// (never TCP instead), with the
 *		celerysalt.broker_tls_* settings.  The TLS handshake, verification
 *		included, ends before this returns, so a server that fails
 *		verification never sees the login.  False with the reason in error
 *		(the caller destroys state, which owns the socket).
 */
static bool
broker_open_socket(amqp_connection_state_t state, const AmqpUrl *url,
				   struct timeval *tv, StringInfo error)
{
	amqp_socket_t *socket;
	int			rc;

	if (url->tls)
	{
		TlsOptions	opts;

		broker_tls_options(&opts);
		socket = amqp_ssl_socket_new(state);
		if (socket == NULL)
		{
			appendStringInfoString(error, "could not create a TLS socket");
			return false;
		}

		/*
		 * One OpenSSL set-up for the broker and Redis (tls.c): the chain and,
		 * for "full", the host name are verified by OpenSSL inside the
		 * handshake, which also knows IP addresses (librabbitmq-c's own
		 * host name check, run after the handshake, knows only DNS names).
		 * Its peer check stays on as a second look at the result.
		 */
		if (!TlsConfigureContext(amqp_ssl_socket_get_context(socket), &opts, url->host_written, error))
			return false;
		amqp_ssl_socket_set_verify_peer(socket, opts.verify != TLS_VERIFY_NONE);
		amqp_ssl_socket_set_verify_hostname(socket, false);
	}
	else
	{
		socket = amqp_tcp_socket_new(state);
		if (socket == NULL)
		{
			appendStringInfoString(error, "could not create a socket");
			return false;
		}
	}

	rc = amqp_socket_open_noblock(socket, url->host, url->port, tv);
	if (rc != AMQP_STATUS_OK)
	{
		appendStringInfo(error, "could not connect to broker at %s:%d: ", url->host_written, url->port);
		if (rc == AMQP_STATUS_SSL_CONNECTION_FAILED || rc == AMQP_STATUS_SSL_ERROR ||
			rc == AMQP_STATUS_SSL_PEER_VERIFY_FAILED)
			TlsAppendFailure(error, NULL, 0);
		else
		{
			appendStringInfoString(error, amqp_error_string2(rc));
			if (rc == AMQP_STATUS_SOCKET_ERROR)
				append_connect_errno(error, url->host, url->port);
		}
		return false;
	}
	return true;
}

/*
 * BrokerConnect
 *		Open a connection to one broker node (broker_failover.c picks it) with
 *		the password of celerysalt.broker_password_file if set, else the
 *		node's, with channel 1 in confirm mode and the exchange declared.
 *		Returns NULL and describes the failure in error (no credentials)
 *		when the node cannot be used.  The connection is malloc'd: free it
 *		with BrokerDisconnect.
 */
BrokerConnection *
BrokerConnect(const AmqpUrl *url, StringInfo error)
{
	const char *password;
	amqp_connection_state_t state;
	struct timeval tv;
	amqp_rpc_reply_t reply;
	BrokerConnection *conn;
	int			fd;
	char		host[128];

	password = url->password;
	if (celerysalt_broker_password_file && celerysalt_broker_password_file[0])
	{
		password = ConninfoReadSecretFile(celerysalt_broker_password_file, "broker", error);
		if (password == NULL)
			return NULL;
	}

	state = amqp_new_connection();
	if (state == NULL)
	{
		appendStringInfoString(error, "could not allocate a broker connection");
		return NULL;
	}
	set_timeval(&tv, celerysalt_broker_timeout_ms);
	if (!broker_open_socket(state, url, &tv, error))
	{
		amqp_destroy_connection(state);
		return NULL;
	}

	/* Writes must not block forever if the broker stops reading. */
	fd = amqp_get_sockfd(state);
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	amqp_set_handshake_timeout(state, &tv);
	amqp_set_rpc_timeout(state, &tv);

	reply = amqp_login(state, url->vhost, 0, BROKER_FRAME_MAX, 0,
					   AMQP_SASL_METHOD_PLAIN, url->user, password);
	if (reply.reply_type != AMQP_RESPONSE_NORMAL)
	{
		appendStringInfo(error, "could not log in to broker at %s:%d as user \"%s\"",
						 url->host_written, url->port, url->user);
		/* TLS 1.3 reports a refused client certificate only now */
		if (url->tls && reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
			reply.library_error == AMQP_STATUS_SSL_ERROR)
		{
			appendStringInfoString(error, ": ");
			TlsAppendFailure(error, NULL, 0);
		}
		else
			describe_reply(error, "", reply);
		amqp_destroy_connection(state);
		return NULL;
	}

	amqp_channel_open(state, BROKER_CHANNEL);
	reply = amqp_get_rpc_reply(state);
	if (reply.reply_type == AMQP_RESPONSE_NORMAL)
	{
		amqp_confirm_select(state, BROKER_CHANNEL);
		reply = amqp_get_rpc_reply(state);
	}
	if (reply.reply_type == AMQP_RESPONSE_NORMAL)
	{
		/* exactly kombu's Exchange(name, type="topic", durable=True) */
		amqp_exchange_declare(state, BROKER_CHANNEL,
							  amqp_cstring_bytes(celerysalt_exchange),
							  amqp_cstring_bytes("topic"),
							  0, 1, 0, 0, amqp_empty_table);
		reply = amqp_get_rpc_reply(state);
	}
	if (reply.reply_type != AMQP_RESPONSE_NORMAL)
	{
		describe_reply(error, psprintf("could not set up channel on broker %s:%d (exchange \"%s\")",
									   url->host_written, url->port, celerysalt_exchange),
					   reply);
		amqp_connection_close(state, AMQP_REPLY_SUCCESS);
		amqp_destroy_connection(state);
		return NULL;
	}

	conn = MemoryContextAllocZero(TopMemoryContext, sizeof(BrokerConnection));
	conn->state = state;
	conn->next_tag = 1;
	conn->confirmed_through = 0;
	if (gethostname(host, sizeof(host)) != 0)
		strlcpy(host, "localhost", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	snprintf(conn->origin, sizeof(conn->origin), "celerysalt%d@%s", MyProcPid, host);
	return conn;
}

/*
 * BrokerDisconnect
 *		Close a healthy connection politely (connection.close, bounded by the
 *		timeouts) and free it; NULL is fine.
 */
void
BrokerDisconnect(BrokerConnection *conn)
{
	if (conn == NULL)
		return;
	amqp_connection_close(conn->state, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(conn->state);
	pfree(conn);
}

/*
 * BrokerAbort
 *		Drop a connection that failed, without the close handshake: a broker
 *		that stalled would make a polite close wait a whole timeout again.
 */
void
BrokerAbort(BrokerConnection *conn)
{
	if (conn == NULL)
		return;
	amqp_destroy_connection(conn->state);
	pfree(conn);
}

static inline amqp_table_entry_t
entry_utf8(const char *key, const char *value)
{
	amqp_table_entry_t e;

	e.key = amqp_cstring_bytes(key);
	e.value.kind = AMQP_FIELD_KIND_UTF8;
	e.value.value.bytes = amqp_cstring_bytes(value);
	return e;
}

static inline amqp_table_entry_t
entry_void(const char *key)
{
	amqp_table_entry_t e;

	e.key = amqp_cstring_bytes(key);
	e.value.kind = AMQP_FIELD_KIND_VOID;
	return e;
}

static inline amqp_table_entry_t
entry_i32(const char *key, int32 value)
{
	amqp_table_entry_t e;

	e.key = amqp_cstring_bytes(key);
	e.value.kind = AMQP_FIELD_KIND_I32;
	e.value.value.i32 = value;
	return e;
}

/*
 * Publish one message with Celery's protocol-2 properties and headers
 * (docs/wire-format.md#properties, #headers).  Returns the library status.
 */
static int
publish_one(BrokerConnection *conn, CeleryMessage *msg, bool mandatory)
{
	static amqp_field_value_t timelimit_values[2] = {
		{.kind = AMQP_FIELD_KIND_VOID}, {.kind = AMQP_FIELD_KIND_VOID}
	};
	amqp_table_entry_t headers[21];
	amqp_basic_properties_t props;
	amqp_bytes_t body;
	int			n = 0;

	headers[n++] = entry_utf8("lang", "py");
	headers[n++] = entry_utf8("task", msg->task);
	headers[n++] = entry_utf8("id", msg->task_id);
	headers[n++] = entry_void("shadow");
	headers[n++] = entry_void("eta");
	headers[n++] = msg->expires[0] ? entry_utf8("expires", msg->expires) : entry_void("expires");
	headers[n++] = entry_void("group");
	headers[n++] = entry_void("group_index");
	headers[n++] = entry_i32("retries", 0);
	headers[n].key = amqp_cstring_bytes("timelimit");
	headers[n].value.kind = AMQP_FIELD_KIND_ARRAY;
	headers[n].value.value.array.num_entries = 2;
	headers[n].value.value.array.entries = timelimit_values;
	n++;
	headers[n++] = entry_utf8("root_id", msg->task_id);
	headers[n++] = entry_void("parent_id");
	headers[n++] = entry_utf8("argsrepr", msg->argsrepr.data);
	headers[n++] = entry_utf8("kwargsrepr", msg->kwargsrepr.data);
	headers[n++] = entry_utf8("origin", conn->origin);
	headers[n++] = entry_void("ignore_result");
	headers[n++] = entry_i32("replaced_task_nesting", 0);
	headers[n++] = entry_void("stamped_headers");
	headers[n].key = amqp_cstring_bytes("stamps");
	headers[n].value.kind = AMQP_FIELD_KIND_TABLE;
	headers[n].value.value.table.num_entries = 0;
	headers[n].value.value.table.entries = NULL;
	n++;

	/*
	 * The W3C trace context, as top-level headers: a protocol-2 worker
	 * copies every header into the task request, where OpenTelemetry's
	 * Celery instrumentation extracts traceparent and tracestate (it injects
	 * them at the same place, after Celery's own headers).
	 */
	if (msg->traceparent != NULL)
	{
		headers[n++] = entry_utf8("traceparent", msg->traceparent);
		if (msg->tracestate != NULL)
			headers[n++] = entry_utf8("tracestate", msg->tracestate);
	}
	Assert(n <= lengthof(headers));

	memset(&props, 0, sizeof(props));
	props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG |
		AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
		AMQP_BASIC_PRIORITY_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG;
	props.content_type = amqp_cstring_bytes("application/json");
	props.content_encoding = amqp_cstring_bytes("utf-8");
	props.delivery_mode = 2;
	props.priority = msg->priority;
	props.correlation_id = amqp_cstring_bytes(msg->task_id);
	props.headers.num_entries = n;
	props.headers.entries = headers;
	if (msg->expiration_ms > 0)
	{
		char	   *expiration = psprintf("%d", msg->expiration_ms);

		props._flags |= AMQP_BASIC_EXPIRATION_FLAG;
		props.expiration = amqp_cstring_bytes(expiration);
	}

	body.len = msg->body.len;
	body.bytes = msg->body.data;
	return amqp_basic_publish(conn->state, BROKER_CHANNEL,
							  amqp_cstring_bytes(celerysalt_exchange),
							  amqp_cstring_bytes(msg->routing_key),
							  mandatory, 0, &props, body);
}

/*
 * Whether a librabbitmq-c status means the connection is unusable (retry
 * later), as opposed to a message it could not send (bad AMQP data, a
 * table too large, an invalid parameter), which no retry can fix.
 */
static bool
connection_failure(int status)
{
	switch (status)
	{
		case AMQP_STATUS_BAD_AMQP_DATA:
		case AMQP_STATUS_INVALID_PARAMETER:
		case AMQP_STATUS_TABLE_TOO_BIG:
		case AMQP_STATUS_UNKNOWN_CLASS:
		case AMQP_STATUS_UNKNOWN_METHOD:
			return false;
		default:
			return true;
	}
}

/* The batch holding delivery tag tag, or NULL. */
static BrokerBatch *
batch_of_tag(BrokerConnection *conn, uint64 tag)
{
	for (BrokerBatch *b = conn->pending_head; b != NULL; b = b->next)
		if (tag >= b->first_tag && tag < b->first_tag + b->nmsgs)
			return b;
	return NULL;
}

/*
 * Mark as returned the unconfirmed message whose task id is correlation_id.
 * The broker returns a channel's messages in the order they were published,
 * so the search starts at the message after the last one returned and wraps
 * around once.
 */
static void
mark_returned(BrokerConnection *conn, amqp_bytes_t correlation_id)
{
	BrokerBatch *start = batch_of_tag(conn, conn->return_cursor);
	int			from = 0;

	if (start != NULL)
		from = (int) (conn->return_cursor - start->first_tag);
	else
		start = conn->pending_head;

	/* from the cursor to the end, then from the beginning up to the cursor */
	for (int pass = 0; pass < 2; pass++)
	{
		for (BrokerBatch *b = pass == 0 ? start : conn->pending_head; b != NULL; b = b->next)
		{
			int			lo = (pass == 0 && b == start) ? from : 0;
			int			hi = (pass == 1 && b == start) ? from : b->nmsgs;

			for (int i = lo; i < hi; i++)
			{
				const char *id = b->msgs[i].task_id;

				if (b->confirmed[i] || correlation_id.len != strlen(id) ||
					memcmp(correlation_id.bytes, id, correlation_id.len) != 0)
					continue;
				if (!b->returned[i])
				{
					b->returned[i] = true;
					b->nreturned++;
				}
				conn->return_cursor = b->first_tag + i + 1;
				return;
			}
			if (pass == 1 && b == start)
				return;
		}
	}
}

/* Confirm message i of batch b (acked, or refused when nack). */
static inline void
confirm_one(BrokerBatch *b, int i, bool nack)
{
	if (b->confirmed[i])
		return;
	b->confirmed[i] = true;
	b->unconfirmed--;
	if (nack)
		b->nacked = true;
}

/*
 * Apply a basic.ack or basic.nack to the batches awaiting confirms, and drop
 * the batches it completes from the connection's list.  Returns how many
 * messages it confirmed.
 */
static int
apply_confirm(BrokerConnection *conn, uint64 tag, bool multiple, bool nack)
{
	BrokerBatch **link = &conn->pending_head;
	BrokerBatch *prev = NULL;
	int			confirmed = 0;

	while (*link != NULL)
	{
		BrokerBatch *b = *link;
		int			before = b->unconfirmed;

		if (b->first_tag > tag)
			break;
		if (multiple)
		{
			/* every tag up to this one; confirmed_upto only moves forward */
			int			upto = (int) Min(tag - b->first_tag, (uint64) b->nmsgs - 1);

			for (int i = b->confirmed_upto; i <= upto; i++)
				confirm_one(b, i, nack);
		}
		else if (tag - b->first_tag < (uint64) b->nmsgs)
			confirm_one(b, (int) (tag - b->first_tag), nack);
		while (b->confirmed_upto < b->nmsgs && b->confirmed[b->confirmed_upto])
			b->confirmed_upto++;
		confirmed += before - b->unconfirmed;

		if (b->unconfirmed == 0)
		{
			*link = b->next;	/* complete: the caller has it all */
			b->next = NULL;
			if (conn->pending_tail == b)
				conn->pending_tail = prev;
			continue;
		}
		prev = b;
		link = &b->next;
	}
	return confirmed;
}

/* Hold back (TCP_CORK) or release the connection's output. */
static void
set_cork(BrokerConnection *conn, bool on)
{
	int			fd = amqp_get_sockfd(conn->state);
	int			value = on ? 1 : 0;

	if (fd >= 0)
		(void) setsockopt(fd, IPPROTO_TCP, TCP_CORK, &value, sizeof(value));
}

/*
 * BrokerPublishAsync
 *		Publish nmsgs messages as one batch without waiting for confirms.
 *		The caller owns batch and keeps it, msgs and the memory that was
 *		current at this call until batch->unconfirmed is 0 or the connection
 *		is dropped; BrokerPoll fills in what the broker says about each
 *		message.  With mandatory, a message no queue is bound for comes back
 *		(batch->returned).  On BROKER_FAILED (connection unusable) or
 *		BROKER_REJECTED (a message the library cannot encode) the caller must
 *		drop the connection: delivery tags are no longer in step.
 */
BrokerStatus
BrokerPublishAsync(BrokerConnection *conn, BrokerBatch *batch,
				   CeleryMessage *msgs, int nmsgs, bool mandatory, StringInfo error)
{
	memset(batch, 0, sizeof(*batch));
	batch->msgs = msgs;
	batch->nmsgs = nmsgs;
	batch->first_tag = conn->next_tag;
	batch->unconfirmed = nmsgs;
	batch->confirmed = palloc0(sizeof(bool) * nmsgs);
	batch->returned = palloc0(sizeof(bool) * nmsgs);
	if (nmsgs == 0)
		return BROKER_OK;

	/* listed before sending: the broker may confirm the first ones at once */
	if (conn->pending_tail != NULL)
		conn->pending_tail->next = batch;
	else
		conn->pending_head = batch;
	conn->pending_tail = batch;

	/*
	 * librabbitmq writes each message in three send() calls and pushes it
	 * out on its own; corked, the batch leaves in full segments, which
	 * costs fewer packets here and fewer socket reads in the broker.
	 */
	if (nmsgs > 1)
		set_cork(conn, true);
	for (int i = 0; i < nmsgs; i++)
	{
		int			rc = publish_one(conn, &msgs[i], mandatory);

		if (rc != AMQP_STATUS_OK)
		{
			appendStringInfo(error, "could not publish to broker: %s",
							 amqp_error_string2(rc));
			/* a message the library cannot encode is refused, not an outage */
			return connection_failure(rc) ? BROKER_FAILED : BROKER_REJECTED;
		}
		conn->next_tag++;
	}
	if (nmsgs > 1)
		set_cork(conn, false);	/* sends what is left at once */
	return BROKER_OK;
}

/*
 * BrokerPoll
 *		Consume every frame the broker has sent so far, without blocking:
 *		confirms (single or multiple, acks and nacks) and returned mandatory
 *		messages are recorded in the batches of BrokerPublishAsync; a batch
 *		leaves the connection's list once every message of it is confirmed.
 *		*confirmed gets how many messages were confirmed.  BROKER_OK unless
 *		the connection failed (BROKER_FAILED) or the broker closed the
 *		channel (BROKER_REJECTED); a nack is not an error here, the batch
 *		says so.  Wait for BrokerSocket to be readable between calls.
 */
BrokerStatus
BrokerPoll(BrokerConnection *conn, int *confirmed, StringInfo error)
{
	BrokerStatus status = BROKER_OK;

	*confirmed = 0;
	for (;;)
	{
		amqp_frame_t frame;
		struct timeval tv = {0, 0};
		int			rc = amqp_simple_wait_frame_noblock(conn->state, &frame, &tv);

		if (rc == AMQP_STATUS_TIMEOUT)
			break;
		if (rc != AMQP_STATUS_OK)
		{
			appendStringInfo(error, "lost the broker connection while awaiting confirms: %s",
							 amqp_error_string2(rc));
			return BROKER_FAILED;
		}
		if (frame.frame_type == AMQP_FRAME_HEADER && conn->return_header_next)
		{
			/* the returned message's properties: its correlation id is its task id */
			amqp_basic_properties_t *p = frame.payload.properties.decoded;

			conn->return_header_next = false;
			if (p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG)
				mark_returned(conn, p->correlation_id);
			continue;
		}
		if (frame.frame_type != AMQP_FRAME_METHOD)
			continue;			/* body of a returned message */

		switch (frame.payload.method.id)
		{
			case AMQP_BASIC_RETURN_METHOD:
				/* a mandatory message no queue was bound for; its ack follows */
				conn->return_header_next = true;
				break;
			case AMQP_BASIC_ACK_METHOD:
				{
					amqp_basic_ack_t *ack = frame.payload.method.decoded;

					*confirmed += apply_confirm(conn, ack->delivery_tag, ack->multiple, false);
					break;
				}
			case AMQP_BASIC_NACK_METHOD:
				{
					amqp_basic_nack_t *nack = frame.payload.method.decoded;

					*confirmed += apply_confirm(conn, nack->delivery_tag, nack->multiple, true);
					break;
				}
			case AMQP_CHANNEL_CLOSE_METHOD:
				{
					amqp_channel_close_t *m = frame.payload.method.decoded;
					amqp_channel_close_ok_t ok;

					appendStringInfo(error, "broker closed the channel: %u %.*s",
									 m->reply_code, (int) m->reply_text.len,
									 (char *) m->reply_text.bytes);
					amqp_send_method(conn->state, BROKER_CHANNEL,
									 AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
					status = BROKER_REJECTED;
					goto done;
				}
			case AMQP_CONNECTION_CLOSE_METHOD:
				{
					amqp_connection_close_t *m = frame.payload.method.decoded;
					amqp_connection_close_ok_t ok;

					appendStringInfo(error, "broker closed the connection: %u %.*s",
									 m->reply_code, (int) m->reply_text.len,
									 (char *) m->reply_text.bytes);
					amqp_send_method(conn->state, 0,
									 AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
					status = BROKER_FAILED;
					goto done;
				}
			default:
				break;
		}
	}
done:
	amqp_maybe_release_buffers(conn->state);
	return status;
}

/* Whether messages published with BrokerPublishAsync await confirms. */
bool
BrokerAwaitingConfirms(BrokerConnection *conn)
{
	return conn->pending_head != NULL;
}

/*
 * BrokerConnectionAlive
 *		Whether a cached, idle connection still looks usable: the broker sends
 *		nothing unasked on an idle confirm channel, so readable data or a
 *		hang-up means it closed the connection.
 */
bool
BrokerConnectionAlive(BrokerConnection *conn)
{
	struct pollfd pfd;

	if (amqp_data_in_buffer(conn->state) || amqp_frames_enqueued(conn->state))
		return false;
	pfd.fd = amqp_get_sockfd(conn->state);
	pfd.events = POLLIN;
	pfd.revents = 0;
	if (pfd.fd < 0)
		return false;
	if (poll(&pfd, 1, 0) != 0)
		return false;			/* readable, hung up or error */
	return true;
}

/* ------------------------------------------------------------------------
 * One message at a time, without blocking (RPC): BrokerSend publishes,
 * BrokerReadEvents consumes whatever confirms and returns have arrived, so
 * the caller can wait on the broker's socket and others together.
 * ------------------------------------------------------------------------
 */

/*
 * BrokerSend
 *		Publish one message without waiting for its confirm.  The connection
 *		must have no unconfirmed message (see BrokerSettle).
 */
bool
BrokerSend(BrokerConnection *conn, CeleryMessage *msg, bool mandatory, StringInfo error)
{
	int			rc = publish_one(conn, msg, mandatory);

	if (rc != AMQP_STATUS_OK)
	{
		appendStringInfo(error, "could not publish to broker: %s", amqp_error_string2(rc));
		return false;
	}
	conn->next_tag++;
	return true;
}

/* The socket to wait on for BrokerReadEvents. */
int
BrokerSocket(BrokerConnection *conn)
{
	return amqp_get_sockfd(conn->state);
}

/*
 * BrokerReadEvents
 *		Consume every frame already received, without blocking: confirms
 *		advance the connection, a basic.return sets *returned.  BROKER_OK
 *		unless the connection or channel failed or a message was nacked.
 */
BrokerStatus
BrokerReadEvents(BrokerConnection *conn, bool *returned, StringInfo error)
{
	for (;;)
	{
		amqp_frame_t frame;
		struct timeval tv = {0, 0};
		int			rc = amqp_simple_wait_frame_noblock(conn->state, &frame, &tv);

		if (rc == AMQP_STATUS_TIMEOUT)
			return BROKER_OK;
		if (rc != AMQP_STATUS_OK)
		{
			appendStringInfo(error, "lost the broker connection: %s", amqp_error_string2(rc));
			return BROKER_FAILED;
		}
		if (frame.frame_type != AMQP_FRAME_METHOD)
			continue;
		switch (frame.payload.method.id)
		{
			case AMQP_BASIC_ACK_METHOD:
				{
					amqp_basic_ack_t *ack = frame.payload.method.decoded;

					/* one message in flight at a time: acks come in order */
					if (ack->delivery_tag > conn->confirmed_through)
						conn->confirmed_through = ack->delivery_tag;
					break;
				}
			case AMQP_BASIC_RETURN_METHOD:
				*returned = true;
				break;
			case AMQP_BASIC_NACK_METHOD:
				appendStringInfoString(error, "broker rejected (nacked) the message");
				return BROKER_REJECTED;
			case AMQP_CHANNEL_CLOSE_METHOD:
			case AMQP_CONNECTION_CLOSE_METHOD:
				appendStringInfoString(error, "broker closed the channel");
				return BROKER_FAILED;
			default:
				break;
		}
	}
}

/*
 * BrokerSettle
 *		Wait (bounded by celerysalt.broker_timeout) until every message sent
 *		with BrokerSend is confirmed, discarding returns of earlier calls.
 *		False if the connection should be dropped.
 */
bool
BrokerSettle(BrokerConnection *conn, StringInfo error)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   celerysalt_broker_timeout_ms);

	while (conn->confirmed_through + 1 < conn->next_tag)
	{
		bool		returned = false;
		long		remaining;
		struct pollfd pfd;

		if (BrokerReadEvents(conn, &returned, error) != BROKER_OK)
			return false;
		if (conn->confirmed_through + 1 >= conn->next_tag)
			break;
		remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (remaining <= 0)
		{
			appendStringInfoString(error, "timed out waiting for a broker confirm");
			return false;
		}
		CHECK_FOR_INTERRUPTS();
		pfd.fd = amqp_get_sockfd(conn->state);
		pfd.events = POLLIN;
		pfd.revents = 0;
		(void) poll(&pfd, 1, Min(remaining, WAIT_SLICE_MS));
	}
	return true;
}
