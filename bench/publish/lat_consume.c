/*
 * lat_consume.c - the consumer of bench/publish's latency variant (d):
 * librabbitmq-c on an exclusive, auto-delete, server-named queue bound to
 * the topic exchange, no_ack, recording when every message arrived.  It does
 * what bench.py's py-amqp consumer does for ~1/10 of the CPU, so that the
 * bench's own consumer takes less of the machine's 2 cores from the path it
 * measures.
 *
 *   lat_consume HOST PORT EXCHANGE ROUTING_KEY
 *
 * Prints "ready" once the queue is bound and consuming.  Consumes until its
 * standard input is closed, then until the broker has been quiet for 0.5 s
 * (at most 30 s more), and prints one line per message:
 *   CORRELATION_ID MONOTONIC_SECONDS
 * The correlation_id is the task id, which the extension sets to the uuid
 * celerysalt_publish returned; the time is CLOCK_MONOTONIC right after the
 * message was read, comparable with Python's time.monotonic() in any process
 * of the machine.
 *
 * Build: gcc -O2 -o lat_consume lat_consume.c -lrabbitmq
 */
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define CHANNEL 1
#define ID_LEN 48

typedef struct
{
	char		id[ID_LEN];
	double		t;
} Arrival;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
die_reply(const char *what, amqp_rpc_reply_t r)
{
	if (r.reply_type == AMQP_RESPONSE_NORMAL)
		return;
	fprintf(stderr, "lat_consume: %s failed (reply type %d, %s)\n", what,
			r.reply_type, r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION ?
			amqp_error_string2(r.library_error) : "server exception");
	exit(1);
}

/* True once standard input is closed (or readable: any input means stop). */
static int
stop_asked(void)
{
	struct pollfd p = {.fd = 0, .events = POLLIN};

	return poll(&p, 1, 0) > 0;
}

int
main(int argc, char **argv)
{
	amqp_connection_state_t conn;
	amqp_socket_t *sock;
	amqp_queue_declare_ok_t *q;
	amqp_bytes_t queue;
	Arrival    *arr = NULL;
	size_t		n = 0,
				cap = 0;
	int			stopping = 0;
	double		drain_end = 0;

	if (argc != 5)
	{
		fprintf(stderr, "usage: lat_consume HOST PORT EXCHANGE ROUTING_KEY\n");
		return 2;
	}
	conn = amqp_new_connection();
	sock = amqp_tcp_socket_new(conn);
	if (amqp_socket_open(sock, argv[1], atoi(argv[2])) != AMQP_STATUS_OK)
	{
		fprintf(stderr, "lat_consume: cannot connect to %s:%s\n", argv[1], argv[2]);
		return 1;
	}
	die_reply("login", amqp_login(conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest"));
	amqp_channel_open(conn, CHANNEL);
	die_reply("channel.open", amqp_get_rpc_reply(conn));
	q = amqp_queue_declare(conn, CHANNEL, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
	die_reply("queue.declare", amqp_get_rpc_reply(conn));
	queue = amqp_bytes_malloc_dup(q->queue);
	amqp_queue_bind(conn, CHANNEL, queue, amqp_cstring_bytes(argv[3]), amqp_cstring_bytes(argv[4]),
					amqp_empty_table);
	die_reply("queue.bind", amqp_get_rpc_reply(conn));
	amqp_basic_consume(conn, CHANNEL, queue, amqp_empty_bytes, 0, 1, 0, amqp_empty_table);
	die_reply("basic.consume", amqp_get_rpc_reply(conn));
	printf("ready\n");
	fflush(stdout);

	for (;;)
	{
		amqp_envelope_t env;
		amqp_rpc_reply_t r;
		struct timeval tv;

		if (!stopping && stop_asked())
		{
			stopping = 1;
			drain_end = now() + 30;
		}
		if (stopping && now() >= drain_end)
			break;
		tv.tv_sec = 0;
		tv.tv_usec = stopping ? 500000 : 200000;
		amqp_maybe_release_buffers(conn);
		r = amqp_consume_message(conn, &env, &tv, 0);
		if (r.reply_type == AMQP_RESPONSE_NORMAL)
		{
			double		t = now();
			amqp_basic_properties_t *p = &env.message.properties;

			if (n == cap)
			{
				cap = cap ? cap * 2 : 65536;
				arr = realloc(arr, cap * sizeof(Arrival));
				if (!arr)
					abort();
			}
			arr[n].id[0] = '\0';
			if (p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG)
			{
				size_t		len = p->correlation_id.len < ID_LEN - 1 ? p->correlation_id.len : ID_LEN - 1;

				memcpy(arr[n].id, p->correlation_id.bytes, len);
				arr[n].id[len] = '\0';
			}
			arr[n++].t = t;
			amqp_destroy_envelope(&env);
		}
		else if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
				 r.library_error == AMQP_STATUS_TIMEOUT)
		{
			if (stopping)
				break;			/* quiet for 0.5 s: everything is in */
		}
		else if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
				 r.library_error == AMQP_STATUS_UNEXPECTED_STATE)
		{
			amqp_frame_t f;

			/* a frame that is not a delivery: read it and go on */
			if (amqp_simple_wait_frame(conn, &f) != AMQP_STATUS_OK)
				die_reply("wait_frame", r);
		}
		else
			die_reply("consume", r);
	}
	for (size_t i = 0; i < n; i++)
		printf("%s %.9f\n", arr[i].id[0] ? arr[i].id : "-", arr[i].t);
	fflush(stdout);
	amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(conn);
	return 0;
}
