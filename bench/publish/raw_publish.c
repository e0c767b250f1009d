/*
 * raw_publish.c - the baseline of bench/publish: librabbitmq-c publishing
 * the same Celery protocol-2 messages as celerysalt's worker (same
 * properties, same 19-entry headers table, same body layout, built per
 * message as src/message.c + src/broker.c do), persistent, to the topic
 * exchange, with publisher confirms awaited after every batch.
 *
 *   raw_publish HOST PORT EXCHANGE ROUTING_KEY COUNT BATCH PAYLOAD_JSON [MANDATORY [CORK]]
 *
 * PAYLOAD_JSON is the payload string the extension would put in args[0]
 * (already including _tchu_meta).  MANDATORY 1 publishes with the mandatory
 * flag, as the worker does with celerysalt.unroutable = keep (default 0).
 * CORK 1 holds the socket's output (TCP_CORK) while a batch is written, as
 * the worker does, so that the batch leaves in full segments (default 0:
 * librabbitmq pushes every message on its own).  Prints one JSON line:
 *   {"messages": N, "seconds": S, "rate": R, "cpu_seconds": C}
 * Timing starts at the first publish (the connection is set up before, as
 * the extension's worker keeps its connection) and ends when the last
 * confirm arrives.
 *
 * Build: gcc -O2 -o raw_publish raw_publish.c -lrabbitmq
 */
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHANNEL 1

typedef struct
{
	char	   *data;
	size_t		len;
	size_t		cap;
} Buf;

static void
buf_reserve(Buf *b, size_t more)
{
	if (b->len + more + 1 > b->cap)
	{
		while (b->len + more + 1 > b->cap)
			b->cap = b->cap ? b->cap * 2 : 1024;
		b->data = realloc(b->data, b->cap);
		if (!b->data)
			abort();
	}
}

static void
buf_add(Buf *b, const char *s, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void
buf_str(Buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* JSON string escaping, ASCII input (as src/message.c append_json_string). */
static void
buf_json_string(Buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	buf_add(b, "\"", 1);
	for (const unsigned char *p = (const unsigned char *) s; *p;)
	{
		if (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
		{
			const unsigned char *run = p;

			while (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
				p++;
			buf_add(b, (const char *) run, p - run);
			continue;
		}
		if (*p == '"')
			buf_add(b, "\\\"", 2);
		else if (*p == '\\')
			buf_add(b, "\\\\", 2);
		else
		{
			char		u[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 0xf]};

			buf_add(b, u, 6);
		}
		p++;
	}
	buf_add(b, "\"", 1);
}

/* Python str repr, as src/message.c append_python_repr (max 1024). */
static void
buf_python_repr(Buf *b, const char *s)
{
	char		quote = (strchr(s, '\'') && !strchr(s, '"')) ? '"' : '\'';
	size_t		start = b->len;

	buf_add(b, &quote, 1);
	for (const char *p = s; *p; p++)
	{
		if (b->len - start >= 1024)
		{
			buf_str(b, "...");
			break;
		}
		if (*p == '\\' || *p == quote)
			buf_add(b, "\\", 1);
		buf_add(b, p, 1);
	}
	buf_add(b, &quote, 1);
}

static uint64_t rng_state = 88172645463325252ULL;

static uint64_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void
random_uuid(char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char d[16];
	uint64_t	a = rng(),
				c = rng();
	int			pos = 0;

	memcpy(d, &a, 8);
	memcpy(d + 8, &c, 8);
	d[6] = (d[6] & 0x0f) | 0x40;
	d[8] = (d[8] & 0x3f) | 0x80;
	for (int i = 0; i < 16; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[pos++] = '-';
		out[pos++] = hex[d[i] >> 4];
		out[pos++] = hex[d[i] & 0xf];
	}
	out[pos] = '\0';
}

static amqp_table_entry_t
e_utf8(const char *k, const char *v)
{
	amqp_table_entry_t e;

	e.key = amqp_cstring_bytes(k);
	e.value.kind = AMQP_FIELD_KIND_UTF8;
	e.value.value.bytes = amqp_cstring_bytes(v);
	return e;
}

static amqp_table_entry_t
e_void(const char *k)
{
	amqp_table_entry_t e;

	e.key = amqp_cstring_bytes(k);
	e.value.kind = AMQP_FIELD_KIND_VOID;
	return e;
}

static amqp_table_entry_t
e_i32(const char *k, int32_t v)
{
	amqp_table_entry_t e;

	e.key = amqp_cstring_bytes(k);
	e.value.kind = AMQP_FIELD_KIND_I32;
	e.value.value.i32 = v;
	return e;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double
cpu_now(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void
die_reply(const char *what, amqp_rpc_reply_t r)
{
	if (r.reply_type == AMQP_RESPONSE_NORMAL)
		return;
	fprintf(stderr, "raw_publish: %s failed (reply type %d, %s)\n", what,
			r.reply_type, r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION ?
			amqp_error_string2(r.library_error) : "server exception");
	exit(1);
}

int
main(int argc, char **argv)
{
	const char *host,
			   *exchange,
			   *rkey,
			   *payload;
	int			port;
	long		count,
				batch;
	int			mandatory = 0;
	int			cork = 0;
	int			on = 1,
				off = 0;
	amqp_connection_state_t conn;
	amqp_socket_t *sock;
	amqp_field_value_t timelimit[2] = {{.kind = AMQP_FIELD_KIND_VOID}, {.kind = AMQP_FIELD_KIND_VOID}};
	char		origin[128],
				hostname[64];
	Buf			body = {0},
				argsrepr = {0},
				kwargsrepr = {0};
	uint64_t	next_tag = 1;
	double		t0,
				t1,
				c0,
				c1;

	if (argc < 8 || argc > 10)
	{
		fprintf(stderr, "usage: raw_publish HOST PORT EXCHANGE ROUTING_KEY COUNT BATCH PAYLOAD_JSON [MANDATORY [CORK]]\n");
		return 2;
	}
	if (argc >= 9)
		mandatory = atoi(argv[8]) != 0;
	if (argc >= 10)
		cork = atoi(argv[9]) != 0;
	host = argv[1];
	port = atoi(argv[2]);
	exchange = argv[3];
	rkey = argv[4];
	count = atol(argv[5]);
	batch = atol(argv[6]);
	payload = argv[7];
	rng_state ^= (uint64_t) getpid() << 32 ^ (uint64_t) time(NULL);

	conn = amqp_new_connection();
	sock = amqp_tcp_socket_new(conn);
	if (amqp_socket_open(sock, host, port) != AMQP_STATUS_OK)
	{
		fprintf(stderr, "raw_publish: cannot connect to %s:%d\n", host, port);
		return 1;
	}
	die_reply("login", amqp_login(conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest"));
	amqp_channel_open(conn, CHANNEL);
	die_reply("channel.open", amqp_get_rpc_reply(conn));
	amqp_confirm_select(conn, CHANNEL);
	die_reply("confirm.select", amqp_get_rpc_reply(conn));
	amqp_exchange_declare(conn, CHANNEL, amqp_cstring_bytes(exchange), amqp_cstring_bytes("topic"),
						  0, 1, 0, 0, amqp_empty_table);
	die_reply("exchange.declare", amqp_get_rpc_reply(conn));

	gethostname(hostname, sizeof(hostname));
	hostname[sizeof(hostname) - 1] = '\0';
	snprintf(origin, sizeof(origin), "celerysalt%d@%s", (int) getpid(), hostname);

	t0 = now();
	c0 = cpu_now();
	for (long sent = 0; sent < count;)
	{
		long		n = count - sent < batch ? count - sent : batch;
		uint64_t	first = next_tag,
					last = next_tag + n - 1,
					acked = first - 1;
		char	   *seen = calloc(n, 1);

		if (cork)
			setsockopt(amqp_get_sockfd(conn), IPPROTO_TCP, TCP_CORK, &on, sizeof(on));
		for (long i = 0; i < n; i++)
		{
			char		id[37];
			amqp_table_entry_t h[19];
			amqp_basic_properties_t props;
			int			k = 0,
						rc;

			random_uuid(id);
			body.len = argsrepr.len = kwargsrepr.len = 0;
			buf_str(&body, "[[");
			buf_json_string(&body, payload);
			buf_str(&body, "], {\"routing_key\": ");
			buf_json_string(&body, rkey);
			buf_str(&body, "}, {\"callbacks\": null, \"errbacks\": null, \"chain\": null, \"chord\": null}]");
			buf_str(&argsrepr, "[");
			buf_python_repr(&argsrepr, payload);
			buf_str(&argsrepr, "]");
			buf_str(&kwargsrepr, "{'routing_key': ");
			buf_python_repr(&kwargsrepr, rkey);
			buf_str(&kwargsrepr, "}");

			h[k++] = e_utf8("lang", "py");
			h[k++] = e_utf8("task", "celery_salt.dispatch_event");
			h[k++] = e_utf8("id", id);
			h[k++] = e_void("shadow");
			h[k++] = e_void("eta");
			h[k++] = e_void("expires");
			h[k++] = e_void("group");
			h[k++] = e_void("group_index");
			h[k++] = e_i32("retries", 0);
			h[k].key = amqp_cstring_bytes("timelimit");
			h[k].value.kind = AMQP_FIELD_KIND_ARRAY;
			h[k].value.value.array.num_entries = 2;
			h[k].value.value.array.entries = timelimit;
			k++;
			h[k++] = e_utf8("root_id", id);
			h[k++] = e_void("parent_id");
			h[k++] = e_utf8("argsrepr", argsrepr.data);
			h[k++] = e_utf8("kwargsrepr", kwargsrepr.data);
			h[k++] = e_utf8("origin", origin);
			h[k++] = e_void("ignore_result");
			h[k++] = e_i32("replaced_task_nesting", 0);
			h[k++] = e_void("stamped_headers");
			h[k].key = amqp_cstring_bytes("stamps");
			h[k].value.kind = AMQP_FIELD_KIND_TABLE;
			h[k].value.value.table.num_entries = 0;
			h[k].value.value.table.entries = NULL;
			k++;

			memset(&props, 0, sizeof(props));
			props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG |
				AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
				AMQP_BASIC_PRIORITY_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG;
			props.content_type = amqp_cstring_bytes("application/json");
			props.content_encoding = amqp_cstring_bytes("utf-8");
			props.delivery_mode = 2;
			props.priority = 0;
			props.correlation_id = amqp_cstring_bytes(id);
			props.headers.num_entries = k;
			props.headers.entries = h;

			rc = amqp_basic_publish(conn, CHANNEL, amqp_cstring_bytes(exchange),
									amqp_cstring_bytes(rkey), mandatory, 0, &props,
									(amqp_bytes_t) {.len = body.len, .bytes = body.data});
			if (rc != AMQP_STATUS_OK)
			{
				fprintf(stderr, "raw_publish: publish failed: %s\n", amqp_error_string2(rc));
				return 1;
			}
		}
		next_tag += n;
		if (cork)
			setsockopt(amqp_get_sockfd(conn), IPPROTO_TCP, TCP_CORK, &off, sizeof(off));

		while (acked < last)
		{
			amqp_frame_t f;
			struct timeval tv = {5, 0};
			int			rc = amqp_simple_wait_frame_noblock(conn, &f, &tv);
			uint64_t	tag;
			int			multiple;

			if (rc != AMQP_STATUS_OK)
			{
				fprintf(stderr, "raw_publish: waiting for confirms: %s\n", amqp_error_string2(rc));
				return 1;
			}
			if (f.frame_type != AMQP_FRAME_METHOD)
				continue;
			if (f.payload.method.id == AMQP_BASIC_ACK_METHOD)
			{
				amqp_basic_ack_t *a = f.payload.method.decoded;

				tag = a->delivery_tag;
				multiple = a->multiple;
			}
			else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD)
			{
				fprintf(stderr, "raw_publish: broker nacked a message\n");
				return 1;
			}
			else
				continue;
			if (tag < first || tag > last)
				continue;
			if (multiple)
			{
				if (tag > acked)
					acked = tag;
			}
			else
				seen[tag - first] = 1;
			while (acked < last && seen[acked + 1 - first])
				acked++;
		}
		free(seen);
		amqp_maybe_release_buffers(conn);
		sent += n;
	}
	t1 = now();
	c1 = cpu_now();

	printf("{\"messages\": %ld, \"seconds\": %.6f, \"rate\": %.1f, \"cpu_seconds\": %.4f, \"body_bytes\": %zu}\n",
		   count, t1 - t0, count / (t1 - t0), c1 - c0, body.len);
	amqp_channel_close(conn, CHANNEL, AMQP_REPLY_SUCCESS);
	amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(conn);
	return 0;
}
