/*-------------------------------------------------------------------------
 *
 * rpc.c
 *		celerysalt_call(): send an RPC request to a celery-salt or tchu-tchu
 *		handler and wait for its answer in the Celery Redis result backend
 *		(../shared/wire-protocol.md §3.6), and celerysalt_call_envelope(),
 *		which returns every outcome as data instead of raising.
 *
 * The request is published at once, outside the caller's transaction: the
 * caller is waiting for the answer, so it cannot wait for its own commit.
 * Order: SUBSCRIBE the result channel and publish the request (mandatory,
 * so an unroutable one comes back) without waiting for either; wait for the
 * subscription, GET the key once (an answer published before the
 * subscription took effect is not missed), then wait on the Redis and the
 * broker sockets together for the result message or a basic.return.  The
 * publisher confirm and the UNSUBSCRIBE reply are consumed at the start of
 * the next call, off the critical path.  The request carries expires / expiration equal to the
 * timeout, so a worker that picks it up late never runs it.
 *
 * Broker and Redis connections are cached per backend and dropped whenever
 * their state is uncertain (an error or an interrupted wait).
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "pgstat.h"
#include "datatype/timestamp.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "broker.h"
#include "redis.h"

PG_FUNCTION_INFO_V1(celerysalt_call);
PG_FUNCTION_INFO_V1(celerysalt_call_envelope);

RpcResponseValidator celerysalt_rpc_response_validator = NULL;

/* SQLSTATEs of remote outcomes (docs/errors.md). */
#define ERRCODE_RPC_BUSINESS_ERROR	MAKE_SQLSTATE('C','R','0','0','1')
#define ERRCODE_RPC_HANDLER_ERROR	MAKE_SQLSTATE('C','R','0','0','2')
#define ERRCODE_RPC_NO_HANDLERS		MAKE_SQLSTATE('C','R','0','0','3')
#define ERRCODE_RPC_UNROUTABLE		MAKE_SQLSTATE('C','R','0','0','4')
#define ERRCODE_RPC_NOT_REGISTERED	MAKE_SQLSTATE('C','R','0','0','5')
#define ERRCODE_RPC_REVOKED			MAKE_SQLSTATE('C','R','0','0','6')
#define ERRCODE_RPC_REMOTE_FAILURE	MAKE_SQLSTATE('C','R','0','0','7')
#define ERRCODE_RPC_TIMEOUT			MAKE_SQLSTATE('C','R','0','0','8')

#define MAX_TIMEOUT_MS	(24 * 3600 * 1000)
#define RPC_PRIORITY	9		/* as celery-salt's SaltEvent.call() */

typedef enum RpcOutcome
{
	RPC_PENDING = 0,			/* no final result yet */
	RPC_SUCCESS,
	RPC_BUSINESS_ERROR,
	RPC_HANDLER_ERROR,
	RPC_NO_HANDLERS,
	RPC_UNROUTABLE,
	RPC_NOT_REGISTERED,
	RPC_REVOKED,
	RPC_REMOTE_FAILURE,
	RPC_TIMEOUT
} RpcOutcome;

static const char *const outcome_names[] = {
	"pending", "success", "business_error", "handler_error", "no_handlers",
	"unroutable", "not_registered", "revoked", "remote_failure", "timeout"
};

typedef struct RpcResult
{
	RpcOutcome	outcome;
	Jsonb	   *response;		/* success, business_error: the handler's value */
	char	   *error;			/* text of the remote error, if any */
	char		task_id[37];
} RpcResult;

/* Per-backend connection cache. */
static BrokerConnection *rpc_broker = NULL;
static char *rpc_broker_signature = NULL;
static RedisLink *rpc_sub = NULL;	/* subscribed only during a call */
static RedisLink *rpc_cmd = NULL;
static char *rpc_redis_signature = NULL;

static void
drop_redis(void)
{
	RedisDisconnect(rpc_sub);
	RedisDisconnect(rpc_cmd);
	rpc_sub = rpc_cmd = NULL;
}

static void
drop_broker(void)
{
	BrokerAbort(rpc_broker);
	rpc_broker = NULL;
}

/* Whether *signature differs from current; stores current if so. */
static bool
settings_changed(char **signature, char *current)
{
	if (*signature != NULL && strcmp(*signature, current) == 0)
	{
		pfree(current);
		return false;
	}
	if (*signature != NULL)
		pfree(*signature);
	*signature = MemoryContextStrdup(TopMemoryContext, current);
	pfree(current);
	return true;
}

static void
ensure_connections(void)
{
	StringInfoData error;

	initStringInfo(&error);

	/* settle the previous call's confirm, then make sure the link is sound */
	if (settings_changed(&rpc_broker_signature,
						 psprintf("%s\n%s\n%s", celerysalt_broker_url,
								  celerysalt_broker_password_file, celerysalt_exchange)) ||
		(rpc_broker != NULL &&
		 (!BrokerSettle(rpc_broker, &error) || !BrokerConnectionAlive(rpc_broker))))
		drop_broker();
	resetStringInfo(&error);
	if (rpc_broker == NULL)
	{
		rpc_broker = BrokerConnect(&error);
		if (rpc_broker == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
					 errmsg("could not connect to the broker for an RPC call"),
					 errdetail_internal("%s", error.data),
					 errhint("Check celerysalt.broker_url and that RabbitMQ is running.")));
	}

	if (settings_changed(&rpc_redis_signature,
						 psprintf("%s\n%s", celerysalt_redis_url, celerysalt_redis_password_file)) ||
		(rpc_cmd != NULL && !RedisLinkAlive(rpc_cmd, true)) ||
		(rpc_sub != NULL && !RedisLinkAlive(rpc_sub, false)))
		drop_redis();
	if (rpc_cmd == NULL)
		rpc_cmd = RedisConnect(true, &error);
	if (rpc_cmd != NULL && rpc_sub == NULL)
		rpc_sub = RedisConnect(false, &error);
	if (rpc_cmd == NULL || rpc_sub == NULL)
	{
		drop_redis();
		ereport(ERROR,
				(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
				 errmsg("could not connect to Redis for an RPC call"),
				 errdetail_internal("%s", error.data),
				 errhint("Check celerysalt.redis_url: it must name the workers' result backend.")));
	}
	pfree(error.data);
}

/* ---------------------------------------------------------------- results */

static bool
get_key(JsonbContainer *c, const char *key, JsonbValue *out)
{
	if (c == NULL || !JsonContainerIsObject(c))
		return false;
	return getKeyJsonValueFromContainer(c, key, strlen(key), out) != NULL;
}

static bool
string_is(JsonbValue *v, const char *s)
{
	return v->type == jbvString && v->val.string.len == (int) strlen(s) &&
		memcmp(v->val.string.val, s, v->val.string.len) == 0;
}

/* A value as text: strings without quotes, anything else as JSON. */
static char *
value_text(JsonbValue *v)
{
	Jsonb	   *j;

	if (v->type == jbvString)
		return pnstrdup(v->val.string.val, v->val.string.len);
	j = JsonbValueToJsonb(v);
	return JsonbToCString(NULL, &j->root, VARSIZE(j));
}

static void push_decoded(JsonbParseState **state, JsonbIteratorToken tok, JsonbValue *v);

/*
 * A kombu typed object {"__type__": T, "__value__": V} (tchu-tchu
 * responders, wire-protocol.md §2.7) as the plain JSON value it stands for.
 */
static bool
typed_value(JsonbContainer *c, JsonbValue *out)
{
	JsonbValue	type;
	JsonbValue	value;

	if (!JsonContainerIsObject(c) || JsonContainerSize(c) != 2 ||
		!get_key(c, "__type__", &type) || !get_key(c, "__value__", &value) ||
		type.type != jbvString)
		return false;

	if (string_is(&type, "decimal") && value.type == jbvString)
	{
		char	   *text = pnstrdup(value.val.string.val, value.val.string.len);

		out->type = jbvNumeric;
		out->val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in,
															   CStringGetDatum(text),
															   ObjectIdGetDatum(InvalidOid),
															   Int32GetDatum(-1)));
		return true;
	}
	if ((string_is(&type, "datetime") || string_is(&type, "date") ||
		 string_is(&type, "time") || string_is(&type, "bytes")) &&
		value.type == jbvString)
	{
		*out = value;
		return true;
	}
	if (string_is(&type, "uuid"))
	{
		JsonbValue	hex;

		if (value.type == jbvBinary && get_key(value.val.binary.data, "hex", &hex) &&
			hex.type == jbvString && hex.val.string.len == 32)
		{
			const char *h = hex.val.string.val;

			out->type = jbvString;
			out->val.string.val = psprintf("%.8s-%.4s-%.4s-%.4s-%.12s",
										   h, h + 8, h + 12, h + 16, h + 20);
			out->val.string.len = 36;
			return true;
		}
		if (value.type == jbvString)
		{
			*out = value;
			return true;
		}
	}
	return false;
}

/* Push container c, decoded; returns the finished container value. */
static JsonbValue *
push_container(JsonbParseState **state, JsonbContainer *c)
{
	JsonbIterator *it = JsonbIteratorInit(c);
	JsonbValue	v;
	JsonbIteratorToken tok;
	JsonbValue *last = NULL;

	check_stack_depth();
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_VALUE || tok == WJB_ELEM)
			push_decoded(state, tok, &v);
		else
			last = pushJsonbValue(state, tok,
								  (tok == WJB_KEY || tok == WJB_BEGIN_ARRAY) ? &v : NULL);
	}
	return last;
}

static void
push_decoded(JsonbParseState **state, JsonbIteratorToken tok, JsonbValue *v)
{
	if (v->type == jbvBinary)
	{
		JsonbValue	decoded;

		if (typed_value(v->val.binary.data, &decoded))
			push_decoded(state, tok, &decoded);
		else
			push_container(state, v->val.binary.data);
		return;
	}
	pushJsonbValue(state, tok, v);
}

/* v with kombu typed objects replaced, as a Jsonb. */
static Jsonb *
decode_response(JsonbValue *v)
{
	JsonbParseState *state = NULL;
	JsonbValue	decoded;

	if (v->type != jbvBinary)
		return JsonbValueToJsonb(v);
	if (typed_value(v->val.binary.data, &decoded))
		return decode_response(&decoded);
	return JsonbValueToJsonb(push_container(&state, v->val.binary.data));
}

/*
 * Interpret a Celery result record (wire-protocol.md §3.3, §3.6 step 5)
 * into res.  Leaves res->outcome RPC_PENDING when it is not final.
 */
static void
interpret_record(const char *text, RpcResult *res)
{
	Jsonb	   *record = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
	JsonbContainer *root = &record->root;
	JsonbValue	status;
	JsonbValue	result;

	if (!get_key(root, "status", &status) || status.type != jbvString)
		return;
	if (!get_key(root, "result", &result))
		result.type = jbvNull;

	if (string_is(&status, "SUCCESS"))
	{
		JsonbValue	dstatus;
		JsonbValue	results;
		JsonbValue *first;
		JsonbValue	hstatus;
		JsonbValue	value;

		if (result.type != jbvBinary || !JsonContainerIsObject(result.val.binary.data))
		{
			/* not a dispatcher dict: returned as is */
			res->outcome = RPC_SUCCESS;
			res->response = decode_response(&result);
			return;
		}
		if (get_key(result.val.binary.data, "status", &dstatus) &&
			string_is(&dstatus, "no_handlers"))
		{
			res->outcome = RPC_NO_HANDLERS;
			return;
		}
		if (!get_key(result.val.binary.data, "results", &results) ||
			results.type != jbvBinary || !JsonContainerIsArray(results.val.binary.data) ||
			JsonContainerSize(results.val.binary.data) == 0)
		{
			res->outcome = RPC_REMOTE_FAILURE;
			res->error = "the dispatcher returned no handler result";
			return;
		}
		first = getIthJsonbValueFromContainer(results.val.binary.data, 0);
		if (first->type != jbvBinary || !get_key(first->val.binary.data, "status", &hstatus))
		{
			res->outcome = RPC_REMOTE_FAILURE;
			res->error = "the dispatcher returned a malformed handler result";
			return;
		}
		if (string_is(&hstatus, "success"))
		{
			JsonbValue	code;
			JsonbValue	message;

			if (!get_key(first->val.binary.data, "result", &value))
				value.type = jbvNull;
			res->response = decode_response(&value);
			res->outcome = RPC_SUCCESS;
			if (value.type == jbvBinary && JsonContainerIsObject(value.val.binary.data) &&
				((get_key(value.val.binary.data, "error_code", &code) && code.type != jbvNull) ||
				 get_key(value.val.binary.data, "error_message", &message)))
				res->outcome = RPC_BUSINESS_ERROR;
			return;
		}
		if (string_is(&hstatus, "error"))
		{
			res->outcome = RPC_HANDLER_ERROR;
			res->error = get_key(first->val.binary.data, "error", &value)
				? value_text(&value) : "(no error text)";
			return;
		}
		res->outcome = RPC_REMOTE_FAILURE;
		res->error = "the request was dispatched as a broadcast, not run as RPC";
		return;
	}
	if (string_is(&status, "FAILURE") || string_is(&status, "REVOKED"))
	{
		JsonbValue	exc_type;
		JsonbValue	exc_message;
		char	   *type_text = "";
		char	   *message_text = "";

		if (result.type == jbvBinary)
		{
			if (get_key(result.val.binary.data, "exc_type", &exc_type))
				type_text = value_text(&exc_type);
			if (get_key(result.val.binary.data, "exc_message", &exc_message))
				message_text = value_text(&exc_message);
		}
		res->error = psprintf("%s: %s", type_text, message_text);
		if (string_is(&status, "REVOKED"))
			res->outcome = RPC_REVOKED;
		else if (strcmp(type_text, "NotRegistered") == 0)
			res->outcome = RPC_NOT_REGISTERED;
		else
			res->outcome = RPC_REMOTE_FAILURE;
	}
	/* PENDING, STARTED, RETRY: not final */
}

/* ------------------------------------------------------------------ call */

static int
interval_to_ms(Interval *timeout)
{
	int64		usecs = timeout->time +
		((int64) timeout->day + (int64) timeout->month * DAYS_PER_MONTH) * USECS_PER_DAY;

	if (usecs < 1000 || usecs > (int64) MAX_TIMEOUT_MS * 1000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("RPC timeout must be between 1 millisecond and 1 day")));
	return (int) (usecs / 1000);
}

/* Raise a connection failure during a call (the links are dropped by the caller). */
static void
call_failed(const char *what, StringInfo error)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg("%s", what),
			 errdetail_internal("%s", error->data)));
}

/*
 * Wait for the answer: the result message on the subscribed Redis link, or
 * a basic.return of the request on the broker link, whichever comes first,
 * sleeping on both sockets and the latch.
 */
static void
await_outcome(WaitEventSet *set, const char *channel, TimestampTz deadline,
			  RpcResult *res, StringInfo error)
{
	int			redis_fd = RedisSocket(rpc_sub);
	bool		redis_readable = false;
	bool		broker_readable = true;	/* frames may be buffered already */

	while (res->outcome == RPC_PENDING)
	{
		WaitEvent	events[4];
		long		remaining;
		int			n;
		char	   *value = NULL;
		int			rc;

		if (broker_readable)
		{
			bool		returned = false;

			if (BrokerReadEvents(rpc_broker, &returned, error) != BROKER_OK)
			{
				drop_broker();
				call_failed("lost the broker connection during an RPC call", error);
			}
			if (returned)
			{
				res->outcome = RPC_UNROUTABLE;
				break;
			}
		}
		rc = RedisReadMessage(rpc_sub, channel, redis_readable, &value, error);
		if (rc < 0)
			call_failed("lost the Redis connection while waiting for the RPC result", error);
		if (rc > 0)
		{
			interpret_record(value, res);
			continue;
		}

		remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (remaining <= 0)
		{
			res->outcome = RPC_TIMEOUT;
			break;
		}
		redis_readable = broker_readable = false;
		n = WaitEventSetWait(set, remaining, events, lengthof(events), PG_WAIT_EXTENSION);
		for (int i = 0; i < n; i++)
		{
			if (events[i].events & WL_LATCH_SET)
			{
				ResetLatch(MyLatch);
				CHECK_FOR_INTERRUPTS();
			}
			else if (events[i].fd == redis_fd)
				redis_readable = true;
			else
				broker_readable = true;
		}
	}
}

/*
 * The conversation of one call: SUBSCRIBE (not awaited), publish (not
 * awaited), wait for the subscription, GET once, then await the outcome.
 * On an error or interrupt the Redis links are dropped: their state is
 * unknown.
 */
static void
converse(CeleryMessage *msg, const char *channel, TimestampTz deadline,
		 RpcResult *res)
{
	StringInfoData error;
	WaitEventSet *volatile set = NULL;

	initStringInfo(&error);

	PG_TRY();
	{
		bool		failed;
		char	   *value;

		if (!RedisSubscribeSend(rpc_sub, channel, &error))
			call_failed("could not subscribe to the RPC result in Redis", &error);
		if (!BrokerSend(rpc_broker, msg, true, &error))
		{
			drop_broker();
			call_failed("could not send the RPC request to the broker", &error);
		}
		if (!RedisSubscribeAwait(rpc_sub, channel, deadline, &error))
			call_failed("could not subscribe to the RPC result in Redis", &error);

		/* an answer written before the subscription took effect */
		value = RedisGet(rpc_cmd, channel, &error, &failed);
		if (failed)
			call_failed("could not read the RPC result from Redis", &error);
		if (value != NULL)
			interpret_record(value, res);

		if (res->outcome == RPC_PENDING)
		{
			set = CreateWaitEventSet(CurrentMemoryContext, 4);
			AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
			AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
			AddWaitEventToSet(set, WL_SOCKET_READABLE, RedisSocket(rpc_sub), NULL, NULL);
			AddWaitEventToSet(set, WL_SOCKET_READABLE, BrokerSocket(rpc_broker), NULL, NULL);
			await_outcome(set, channel, deadline, res, &error);
			FreeWaitEventSet(set);
			set = NULL;
		}

		/* the next call skips its confirmation */
		if (!RedisUnsubscribeSend(rpc_sub, &error))
			drop_redis();
	}
	PG_CATCH();
	{
		if (set != NULL)
			FreeWaitEventSet(set);
		drop_redis();
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * Raise 42501 unless the session may send to celerysalt.rpc_task: any role
 * may pick one of the configured dispatcher tasks (celerysalt.dispatcher_tasks,
 * set by a superuser), only a superuser may name another task.  Without this,
 * any caller could run any Celery task of any service with the broker's
 * credentials.
 */
static void
check_rpc_task(void)
{
	List	   *allowed = MessageSplitTaskNames(celerysalt_dispatcher_tasks);
	ListCell   *lc;

	foreach(lc, allowed)
		if (strcmp(lfirst(lc), celerysalt_rpc_task) == 0)
			return;
	if (superuser())
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("celerysalt.rpc_task \"%s\" is not one of celerysalt.dispatcher_tasks",
					celerysalt_rpc_task),
			 errdetail("celerysalt.dispatcher_tasks is \"%s\".", celerysalt_dispatcher_tasks),
			 errhint("Set celerysalt.rpc_task to one of those tasks, or ask a superuser to add the task to celerysalt.dispatcher_tasks.")));
}

/*
 * Run one RPC call into res.  Raises for bad input and for broker or
 * Redis failures (class 08); every remote outcome is returned in res.
 */
static void
rpc_execute(FunctionCallInfo fcinfo, RpcResult *res, const char **topic_out,
			const char **version_out)
{
	char	   *topic;
	Jsonb	   *payload;
	int			timeout_ms;
	const char *version = NULL;
	pg_uuid_t	task_uuid;
	char	   *channel;
	TimestampTz deadline;
	StringInfoData payload_json;
	CeleryMessage msg;
	EventMeta	meta;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("RPC topic, payload and timeout must not be null")));
	topic = text_to_cstring(PG_GETARG_TEXT_PP(0));
	payload = PG_GETARG_JSONB_P(1);
	timeout_ms = interval_to_ms(PG_GETARG_INTERVAL_P(2));
	if (!PG_ARGISNULL(3))
		version = text_to_cstring(PG_GETARG_TEXT_PP(3));
	version = EventIntake(topic, payload, version, NULL);
	*topic_out = topic;
	*version_out = version;

	memset(res, 0, sizeof(*res));
	if (!pg_strong_random(task_uuid.data, UUID_LEN))
		elog(ERROR, "could not generate a random task id");
	task_uuid.data[6] = (task_uuid.data[6] & 0x0f) | 0x40;
	task_uuid.data[8] = (task_uuid.data[8] & 0x3f) | 0x80;

	check_rpc_task();
	meta.is_rpc = true;
	meta.version = version ? version : "v1";
	meta.correlation_id = NULL;
	initStringInfo(&payload_json);
	MessageAppendPayload(&payload_json, payload, &meta);
	MessageBuild(&msg, celerysalt_rpc_task, &task_uuid, 0, topic, payload_json.data);
	strlcpy(res->task_id, msg.task_id, sizeof(res->task_id));
	msg.priority = RPC_PRIORITY;
	msg.expiration_ms = timeout_ms;
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	MessageFormatExpires(deadline, msg.expires, sizeof(msg.expires));
	channel = psprintf("%s%scelery-task-meta-%s", celerysalt_redis_key_prefix,
					   celerysalt_redis_key_prefix[0] ? "_" : "", msg.task_id);

	ensure_connections();
	converse(&msg, channel, deadline, res);

	if (celerysalt_rpc_response_validator != NULL &&
		(res->outcome == RPC_SUCCESS || res->outcome == RPC_BUSINESS_ERROR))
		celerysalt_rpc_response_validator(topic, version, res->response,
										  res->outcome == RPC_BUSINESS_ERROR);
}

/*
 * celerysalt_call(topic text, payload jsonb, timeout interval, version text)
 *		RETURNS jsonb: the handler's response, or an error per outcome.
 */
Datum
celerysalt_call(PG_FUNCTION_ARGS)
{
	RpcResult	res;
	const char *topic;
	const char *version;

	rpc_execute(fcinfo, &res, &topic, &version);

	switch (res.outcome)
	{
		case RPC_SUCCESS:
			PG_RETURN_JSONB_P(res.response);
		case RPC_BUSINESS_ERROR:
			{
				JsonbValue	code;
				char	   *code_text = "error";

				if (get_key(&res.response->root, "error_code", &code) && code.type == jbvString)
					code_text = pnstrdup(code.val.string.val, code.val.string.len);
				ereport(ERROR,
						(errcode(ERRCODE_RPC_BUSINESS_ERROR),
						 errmsg("RPC \"%s\" returned the error \"%s\"", topic, code_text),
						 errdetail_internal("%s", JsonbToCString(NULL, &res.response->root,
																 VARSIZE(res.response))),
						 errhint("celerysalt_call_envelope returns errors as data.")));
			}
			break;
		case RPC_HANDLER_ERROR:
			ereport(ERROR,
					(errcode(ERRCODE_RPC_HANDLER_ERROR),
					 errmsg("RPC handler for \"%s\" raised an exception", topic),
					 errdetail_internal("%s", res.error)));
			break;
		case RPC_NO_HANDLERS:
			ereport(ERROR,
					(errcode(ERRCODE_RPC_NO_HANDLERS),
					 errmsg("no handler for RPC topic \"%s\"", topic),
					 errdetail("A worker received the request but has no handler for this topic%s.",
							   version ? " and version" : ""),
					 errhint("Check the service's @subscribe topics and versions.")));
			break;
		case RPC_UNROUTABLE:
			ereport(ERROR,
					(errcode(ERRCODE_RPC_UNROUTABLE),
					 errmsg("RPC request to \"%s\" is unroutable", topic),
					 errdetail("No queue is bound to this topic on exchange \"%s\".",
							   celerysalt_exchange),
					 errhint("Start the service that handles this topic.")));
			break;
		case RPC_NOT_REGISTERED:
			ereport(ERROR,
					(errcode(ERRCODE_RPC_NOT_REGISTERED),
					 errmsg("the worker serving \"%s\" does not know the task \"%s\"",
							topic, celerysalt_rpc_task),
					 errdetail_internal("%s", res.error),
					 errhint("Set celerysalt.rpc_task to celery_salt.dispatch_event or tchu_tchu.dispatch_event, whichever library the service uses.")));
			break;
		case RPC_REVOKED:
			ereport(ERROR,
					(errcode(ERRCODE_RPC_REVOKED),
					 errmsg("RPC request to \"%s\" was revoked before it ran", topic),
					 errdetail_internal("%s", res.error)));
			break;
		case RPC_REMOTE_FAILURE:
			ereport(ERROR,
					(errcode(ERRCODE_RPC_REMOTE_FAILURE),
					 errmsg("RPC request to \"%s\" failed in the worker", topic),
					 errdetail_internal("%s", res.error)));
			break;
		case RPC_TIMEOUT:
		case RPC_PENDING:
			ereport(ERROR,
					(errcode(ERRCODE_RPC_TIMEOUT),
					 errmsg("RPC request to \"%s\" got no answer within the timeout", topic),
					 errdetail("The request expires with the timeout, so a worker that takes it later will not run it."),
					 errhint("Check that the service handling this topic is running.")));
			break;
	}
	PG_RETURN_NULL();
}

/*
 * celerysalt_call_envelope(topic, payload, timeout, version) RETURNS jsonb
 *		{"outcome": ..., "task_id": ..., "response": ..., "error": ...}
 */
Datum
celerysalt_call_envelope(PG_FUNCTION_ARGS)
{
	RpcResult	res;
	const char *topic;
	const char *version;
	JsonbParseState *state = NULL;
	JsonbValue	v;
	JsonbValue *out;

	rpc_execute(fcinfo, &res, &topic, &version);

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
#define PUSH_KEY(k) do { v.type = jbvString; v.val.string.val = (char *) (k); \
		v.val.string.len = strlen(k); pushJsonbValue(&state, WJB_KEY, &v); } while (0)
#define PUSH_STR(s) do { v.type = jbvString; v.val.string.val = (char *) (s); \
		v.val.string.len = strlen(s); pushJsonbValue(&state, WJB_VALUE, &v); } while (0)
	PUSH_KEY("outcome");
	PUSH_STR(outcome_names[res.outcome]);
	PUSH_KEY("task_id");
	PUSH_STR(res.task_id);
	PUSH_KEY("response");
	if (res.response != NULL)
	{
		v.type = jbvBinary;
		v.val.binary.data = &res.response->root;
		v.val.binary.len = VARSIZE(res.response) - VARHDRSZ;
		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	else
	{
		v.type = jbvNull;
		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	PUSH_KEY("error");
	if (res.error != NULL)
		PUSH_STR(res.error);
	else
	{
		v.type = jbvNull;
		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	out = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
#undef PUSH_KEY
#undef PUSH_STR
	PG_RETURN_JSONB_P(JsonbValueToJsonb(out));
}
