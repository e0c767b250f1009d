/*-------------------------------------------------------------------------
 *
 * rpc.c
 *		celerysalt_call(): send an RPC request to a celery-salt or tchu-tchu
 *		handler and wait for its answer in the Celery Redis result backend
 *		(docs/wire-format.md#rpc-results-in-redis), and celerysalt_call_envelope(),
 *		which returns every outcome as data instead of raising.
 *
 * The request is published at once, outside the caller's transaction: the
 * caller is waiting for the answer, so it cannot wait for its own commit.
 * Order: SUBSCRIBE the result channel and publish the request (mandatory,
 * so an unroutable one comes back) without waiting for either; wait for the
 * subscription, GET the key once (an answer published before the
 * subscription took effect is not missed), then wait on the Redis and the
 * broker sockets together for the result message or a basic.return.  An
 * answer that came by pub/sub is looked up once more in celerysalt.redis_url's
 * database: Celery stores the key before it publishes, and pub/sub ignores
 * database numbers, so a missing key means celerysalt.redis_url is not the
 * service's result backend (CR010), a setup that otherwise works until an
 * answer is stored before the subscription takes effect.  The
 * publisher confirm and the UNSUBSCRIBE reply are consumed at the start of
 * the next call, off the critical path.  The request carries expires / expiration equal to the
 * timeout, so a worker that picks it up late never runs it.
 *
 * Every step is bounded by the call's deadline: Redis I/O is non-blocking
 * (redis.c) and the broker client's own limits are lowered to what is left
 * of the call, so a stalled Redis or broker gives CR008 at the deadline, and
 * cancel, statement_timeout and termination act at once.  Records that are
 * not final (STARTED, PENDING, RETRY) only mean more waiting.  Every answer
 * is checked before use (UTF-8, server encoding, JSON jsonb can hold,
 * finite numbers): a malformed one is CR007 naming its JSON path.
 *
 * Broker and Redis connections are cached per backend and dropped whenever
 * their state is uncertain (an error, an interrupted wait, or a Redis step
 * that did not finish in time, whose late reply must not reach the next
 * call).
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"
#include "jbv.h"
#include "conninfo.h"

#include "common/int.h"
#include "common/jsonapi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
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
#include "broker_failover.h"
#include "redis.h"
#include "guc.h"
#include "event.h"
#include "message.h"
#include "dbslot.h"
#include "rpc.h"

PG_FUNCTION_INFO_V1(celerysalt_call);
PG_FUNCTION_INFO_V1(celerysalt_call_envelope);

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
	bool		malformed;		/* remote_failure: the answer itself is unusable */
	bool		elsewhere;		/* the answer came by pub/sub, its key is not in
								 * celerysalt.redis_url's database */
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

/*
 * The broker client bounds its waits by celerysalt.broker_timeout, and
 * librabbitmq's connect and login cannot be interrupted: while settling or
 * (re)connecting for a call, lower that bound to what is left of the call,
 * so the broker cannot hold a call past its deadline either.  Returns the
 * milliseconds left (0: the deadline has passed).
 */
static int
lower_broker_timeout(TimestampTz deadline)
{
	long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);

	if (left <= 0)
		return 0;
	if (left < celerysalt_broker_timeout_ms)
		celerysalt_broker_timeout_ms = (int) left;
	return (int) left;
}

/* The outcome of a call whose deadline passed before it could start. */
static void
timed_out_before_sending(RpcResult *res, const char *what)
{
	res->outcome = RPC_TIMEOUT;
	res->error = psprintf("%s; the request was not sent", what);
}

/*
 * ensure_connections
 *		Make sure the cached broker and Redis links are sound, (re)connecting
 *		as needed within the call's deadline.  Raises class 08 when a service
 *		cannot be used; returns false with res->outcome RPC_TIMEOUT when the
 *		deadline passed first.
 */
static bool
ensure_connections(TimestampTz deadline, RpcResult *res)
{
	StringInfoData error;
	int			saved_timeout = celerysalt_broker_timeout_ms;
	volatile bool in_time = true;
	bool		timed_out = false;

	initStringInfo(&error);

	PG_TRY();
	{
		/* settle the previous call's confirm, then make sure the link is sound */
		if (settings_changed(&rpc_broker_signature,
							 psprintf("%s\n%s\n%s\n%s\n%s\n%s\n%d", celerysalt_broker_url,
									  celerysalt_broker_password_file, celerysalt_exchange,
									  celerysalt_broker_tls_ca_file, celerysalt_broker_tls_cert_file,
									  celerysalt_broker_tls_key_file, celerysalt_broker_tls_verify)))
			drop_broker();
		if (rpc_broker != NULL && lower_broker_timeout(deadline) == 0)
			drop_broker();
		else if (rpc_broker != NULL &&
				 (!BrokerSettle(rpc_broker, &error) || !BrokerConnectionAlive(rpc_broker)))
		{
			/* the node dropped the link: the next one is tried first */
			drop_broker();
			(void) BrokerFailoverNext();
		}
		resetStringInfo(&error);

		/*
		 * Each node of celerysalt.broker_url once, in order from the one
		 * that worked last, within what is left of the call.
		 */
		for (int tried = 0; rpc_broker == NULL && tried < BrokerFailoverNodeCount(); tried++)
		{
			if (lower_broker_timeout(deadline) == 0)
				break;
			if (tried > 0)
				appendStringInfoString(&error, "; ");
			rpc_broker = BrokerFailoverConnect(&error);
			if (rpc_broker == NULL)
				(void) BrokerFailoverNext();
			CHECK_FOR_INTERRUPTS();
		}
		/* a failure in the last moments is the lowered bound running out */
		if (rpc_broker == NULL)
			in_time = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline) > 50;
	}
	PG_FINALLY();
	{
		celerysalt_broker_timeout_ms = saved_timeout;
	}
	PG_END_TRY();
	if (!in_time)
	{
		timed_out_before_sending(res, "the broker could not be reached before the call's deadline");
		return false;
	}
	if (rpc_broker == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
				 errmsg("could not connect to the broker for an RPC call"),
				 errdetail_internal("%s", error.data),
				 errhint("Check celerysalt.broker_url (for amqps://, also the celerysalt.broker_tls_* settings) and that RabbitMQ is running.")));

	if (settings_changed(&rpc_redis_signature,
						 psprintf("%s\n%s\n%s\n%s\n%s\n%d", celerysalt_redis_url,
								  celerysalt_redis_password_file, celerysalt_redis_tls_ca_file,
								  celerysalt_redis_tls_cert_file, celerysalt_redis_tls_key_file,
								  celerysalt_redis_tls_verify)) ||
		(rpc_cmd != NULL && !RedisLinkAlive(rpc_cmd, true)) ||
		(rpc_sub != NULL && !RedisLinkAlive(rpc_sub, false)))
		drop_redis();
	if (rpc_cmd == NULL)
		rpc_cmd = RedisConnect(true, deadline, &error, &timed_out);
	if (rpc_cmd != NULL && rpc_sub == NULL)
		rpc_sub = RedisConnect(false, deadline, &error, &timed_out);
	if (rpc_cmd == NULL || rpc_sub == NULL)
	{
		drop_redis();
		if (timed_out)
		{
			timed_out_before_sending(res, error.data);
			return false;
		}
		ereport(ERROR,
				(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
				 errmsg("could not connect to Redis for an RPC call"),
				 errdetail_internal("%s", error.data),
				 errhint("Check celerysalt.redis_url (for rediss://, also the celerysalt.redis_tls_* settings): it must name the workers' result backend.")));
	}
	pfree(error.data);
	return true;
}

/* ---------------------------------------------------------------- results */

static bool
get_key(JsonbContainer *c, const char *key, JsonbValue *out)
{
	return c != NULL && JsonContainerIsObject(c) && JbvFindKey(c, key, strlen(key), out);
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

/* A JSON pointer for messages: the empty pointer (the root) as "/". */
static const char *
shown_path(StringInfo path)
{
	return path->len == 0 ? "/" : path->data;
}

/* Record that the answer cannot be used (CR007, returned as data by the envelope). */
static void
set_malformed(RpcResult *res, char *why)
{
	res->outcome = RPC_REMOTE_FAILURE;
	res->malformed = true;
	res->error = why;
	res->response = NULL;
}

/*
 * A frame of scan_answer's container stack: the key or index the scan is
 * at, so a problem can be named by its JSON pointer.
 */
typedef struct ScanFrame
{
	bool		object;
	bool		expect_key;
	int			index;
	const char *key;
	int			key_len;
} ScanFrame;

static void
scan_path(ScanFrame *frames, int depth, StringInfo path)
{
	for (int i = 0; i < depth; i++)
	{
		if (frames[i].object)
		{
			if (!frames[i].expect_key && frames[i].key != NULL)
				JbvAppendPointerToken(path, frames[i].key, frames[i].key_len);
		}
		else
			appendStringInfo(path, "/%d", frames[i].index);
	}
}

/*
 * scan_answer
 *		Look, in one pass over the JSON text of an answer, for what jsonb
 *		cannot hold faithfully: the bare NaN / Infinity / -Infinity that
 *		Python's json module writes for non-finite floats, and \u0000 in a
 *		string.  Returns NULL or the problem, naming its JSON pointer.  Only a
 *		diagnosis: the text is parsed properly afterwards.
 */
static char *
scan_answer(const char *text)
{
	int			cap = 32;
	int			depth = 0;
	ScanFrame  *frames = palloc(cap * sizeof(ScanFrame));
	const char *p = text;
	StringInfoData path;

	initStringInfo(&path);
	while (*p)
	{
		ScanFrame  *top = depth > 0 ? &frames[depth - 1] : NULL;

		switch (*p)
		{
			case '"':
				{
					const char *start = ++p;

					while (*p && *p != '"')
					{
						if (*p == '\\' && p[1] == 'u' && strncmp(p + 2, "0000", 4) == 0)
						{
							scan_path(frames, depth, &path);
							return psprintf("a string holds \\u0000, which PostgreSQL's jsonb cannot store, at JSON path %s of the Celery result record",
											shown_path(&path));
						}
						if (*p == '\\' && p[1])
							p++;
						p++;
					}
					if (top != NULL && top->object && top->expect_key)
					{
						top->key = start;
						top->key_len = p - start;
					}
					if (*p)
						p++;
					continue;
				}
			case '{':
			case '[':
				if (depth == cap)
				{
					cap *= 2;
					frames = repalloc(frames, cap * sizeof(ScanFrame));
				}
				frames[depth].object = (*p == '{');
				frames[depth].expect_key = true;
				frames[depth].index = 0;
				frames[depth].key = NULL;
				frames[depth].key_len = 0;
				depth++;
				break;
			case '}':
			case ']':
				if (depth > 0)
					depth--;
				break;
			case ':':
				if (top != NULL)
					top->expect_key = false;
				break;
			case ',':
				if (top != NULL)
				{
					top->expect_key = true;
					top->index++;
				}
				break;
			case 'N':
			case 'I':
			case '-':
				if (*p == '-' && p[1] != 'I')
					break;
				scan_path(frames, depth, &path);
				return psprintf("a non-finite number (%s) at JSON path %s of the Celery result record: JSON has no NaN or Infinity, and PostgreSQL's jsonb cannot store them",
								strncmp(p, "NaN", 3) == 0 ? "NaN" : (*p == '-' ? "-Infinity" : "Infinity"),
								shown_path(&path));
			default:
				break;
		}
		p++;
	}
	return NULL;
}

/*
 * answer_text
 *		The bytes of a Redis reply as a server-encoded, valid JSON text, or
 *		NULL after set_malformed: the reply must be UTF-8 (as JSON on the
 *		wire is) without NUL bytes, must convert to the database encoding,
 *		and must be JSON jsonb can store.
 */
static char *
answer_text(const char *bytes, size_t len, RpcResult *res)
{
	int			valid;
	char	   *text;
	char	   *problem;
	JsonLexContext *lex;
	JsonParseErrorType parsed;

	if (len > (size_t) (MaxAllocSize - 1))
	{
		set_malformed(res, pstrdup("the answer is larger than 1 GB"));
		return NULL;
	}
	valid = pg_encoding_verifymbstr(PG_UTF8, bytes, (int) len);
	if (valid < (int) len)
	{
		set_malformed(res, psprintf("the answer is not valid UTF-8 (%s at byte %d of %zu)",
									bytes[valid] == '\0' ? "a NUL byte" : "an invalid byte sequence",
									valid, len));
		return NULL;
	}
	/* raises 22P05 for a character the database encoding lacks */
	text = pg_any_to_server(bytes, (int) len, PG_UTF8);

	problem = scan_answer(text);
	if (problem != NULL)
	{
		set_malformed(res, problem);
		return NULL;
	}
	lex = makeJsonLexContextCstringLen(text, strlen(text), GetDatabaseEncoding(), true);
	parsed = pg_parse_json(lex, &nullSemAction);
	if (parsed != JSON_SUCCESS)
	{
		set_malformed(res, psprintf("the answer is not valid JSON: %s",
									json_errdetail(parsed, lex)));
		return NULL;
	}
	return text;
}

/*
 * Decoding a handler's value into the Jsonb returned to the caller, with
 * kombu typed objects replaced; path is the JSON pointer of the value being
 * decoded in the Celery result record, for messages.  A value that cannot
 * be represented marks res malformed and the decoding stops.
 */
typedef struct Decoder
{
	RpcResult  *res;
	StringInfoData path;
} Decoder;

static void push_decoded(Decoder *d, JsonbParseState **state, JsonbIteratorToken tok,
						 JsonbValue *v);

/* Whether text is a plain decimal number: [+-]digits[.digits][e[+-]digits]. */
static bool
decimal_syntax(const char *text, int len)
{
	int			i = 0;
	int			digits = 0;

	if (i < len && (text[i] == '+' || text[i] == '-'))
		i++;
	while (i < len && text[i] >= '0' && text[i] <= '9')
		i++, digits++;
	if (i < len && text[i] == '.')
	{
		i++;
		while (i < len && text[i] >= '0' && text[i] <= '9')
			i++, digits++;
	}
	if (digits == 0)
		return false;
	if (i < len && (text[i] == 'e' || text[i] == 'E'))
	{
		int			exp_digits = 0;

		i++;
		if (i < len && (text[i] == '+' || text[i] == '-'))
			i++;
		while (i < len && text[i] >= '0' && text[i] <= '9')
			i++, exp_digits++;
		if (exp_digits == 0 || exp_digits > 6)
			return false;
	}
	return i == len;
}

/*
 * A kombu typed object {"__type__": T, "__value__": V} (tchu-tchu
 * responders, docs/wire-format.md#result-records) as the plain JSON value it
 * stands for.
 * A decimal that is not a finite number marks the answer malformed.
 */
static bool
typed_value(Decoder *d, JsonbContainer *c, JsonbValue *out)
{
	JsonbValue	type;
	JsonbValue	value;

	if (!JsonContainerIsObject(c) || JsonContainerSize(c) != 2 ||
		!get_key(c, "__type__", &type) || !get_key(c, "__value__", &value) ||
		type.type != jbvString)
		return false;

	if (JbvStringIs(&type, "decimal") && value.type == jbvString)
	{
		char	   *text = pnstrdup(value.val.string.val, value.val.string.len);

		if (!decimal_syntax(text, strlen(text)))
		{
			set_malformed(d->res,
						  psprintf("a decimal that is not a finite number (NaN, Infinity or not a number at all) at JSON path %s of the Celery result record: PostgreSQL's jsonb cannot store it",
								   shown_path(&d->path)));
			return false;
		}
		out->type = jbvNumeric;
		out->val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in,
															   CStringGetDatum(text),
															   ObjectIdGetDatum(InvalidOid),
															   Int32GetDatum(-1)));
		Assert(!numeric_is_nan(out->val.numeric) && !numeric_is_inf(out->val.numeric));
		return true;
	}
	if ((JbvStringIs(&type, "datetime") || JbvStringIs(&type, "date") ||
		 JbvStringIs(&type, "time") || JbvStringIs(&type, "bytes")) &&
		value.type == jbvString)
	{
		*out = value;
		return true;
	}
	if (JbvStringIs(&type, "uuid"))
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
push_container(Decoder *d, JsonbParseState **state, JsonbContainer *c)
{
	JsonbIterator *it = JsonbIteratorInit(c);
	JsonbValue	v;
	JsonbIteratorToken tok;
	JsonbValue *last = NULL;
	int			base_len = d->path.len;
	int			index = 0;

	check_stack_depth();
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (d->res->malformed)
			return NULL;
		if (tok == WJB_KEY)
		{
			d->path.len = base_len;
			d->path.data[base_len] = '\0';
			JbvAppendPointerToken(&d->path, v.val.string.val, v.val.string.len);
		}
		else if (tok == WJB_ELEM)
		{
			d->path.len = base_len;
			d->path.data[base_len] = '\0';
			appendStringInfo(&d->path, "/%d", index++);
		}
		if (tok == WJB_VALUE || tok == WJB_ELEM)
			push_decoded(d, state, tok, &v);
		else
			last = pushJsonbValue(state, tok,
								  (tok == WJB_KEY || tok == WJB_BEGIN_ARRAY) ? &v : NULL);
	}
	d->path.len = base_len;
	d->path.data[base_len] = '\0';
	return last;
}

static void
push_decoded(Decoder *d, JsonbParseState **state, JsonbIteratorToken tok, JsonbValue *v)
{
	if (v->type == jbvBinary)
	{
		JsonbValue	decoded;

		if (typed_value(d, v->val.binary.data, &decoded))
			push_decoded(d, state, tok, &decoded);
		else if (!d->res->malformed)
			push_container(d, state, v->val.binary.data);
		return;
	}
	pushJsonbValue(state, tok, v);
}

/*
 * v, found at JSON pointer `at` of the record, with kombu typed objects
 * replaced, as a Jsonb; NULL after set_malformed.
 */
static Jsonb *
decode_response(RpcResult *res, JsonbValue *v, const char *at)
{
	Decoder		d;
	JsonbParseState *state = NULL;
	JsonbValue	decoded;
	JsonbValue *out;

	d.res = res;
	initStringInfo(&d.path);
	appendStringInfoString(&d.path, at);
	if (v->type != jbvBinary)
		return JsonbValueToJsonb(v);
	if (typed_value(&d, v->val.binary.data, &decoded))
		return decoded.type == jbvBinary ? decode_response(res, &decoded, at)
			: JsonbValueToJsonb(&decoded);
	if (res->malformed)
		return NULL;
	out = push_container(&d, &state, v->val.binary.data);
	return res->malformed ? NULL : JsonbValueToJsonb(out);
}

/*
 * Interpret a Celery result record (docs/wire-format.md#result-records),
 * the bytes of a Redis reply, into res.  Leaves res->outcome RPC_PENDING
 * when it is not final (PENDING, STARTED, RETRY).  A reply that is not
 * server-encoded JSON text jsonb can hold is a malformed remote failure.
 */
static void
interpret_record(const char *bytes, size_t len, RpcResult *res)
{
	char	   *text = answer_text(bytes, len, res);
	Jsonb	   *record;
	JsonbContainer *root;
	JsonbValue	status;
	JsonbValue	result;

	if (text == NULL)
		return;
	record = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
	root = &record->root;
	if (!get_key(root, "status", &status) || status.type != jbvString)
		return;
	if (!get_key(root, "result", &result))
		result.type = jbvNull;

	if (JbvStringIs(&status, "SUCCESS"))
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
			res->response = decode_response(res, &result, "/result");
			return;
		}
		if (get_key(result.val.binary.data, "status", &dstatus) &&
			JbvStringIs(&dstatus, "no_handlers"))
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
		if (JbvStringIs(&hstatus, "success"))
		{
			JsonbValue	code;
			JsonbValue	message;

			if (!get_key(first->val.binary.data, "result", &value))
				value.type = jbvNull;
			res->outcome = RPC_SUCCESS;
			res->response = decode_response(res, &value, "/result/results/0/result");
			if (res->malformed)
				return;
			if (value.type == jbvBinary && JsonContainerIsObject(value.val.binary.data) &&
				((get_key(value.val.binary.data, "error_code", &code) && code.type != jbvNull) ||
				 get_key(value.val.binary.data, "error_message", &message)))
				res->outcome = RPC_BUSINESS_ERROR;
			return;
		}
		if (JbvStringIs(&hstatus, "error"))
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
	if (JbvStringIs(&status, "FAILURE") || JbvStringIs(&status, "REVOKED"))
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
		if (JbvStringIs(&status, "REVOKED"))
			res->outcome = RPC_REVOKED;
		else if (strcmp(type_text, "NotRegistered") == 0)
			res->outcome = RPC_NOT_REGISTERED;
		else
			res->outcome = RPC_REMOTE_FAILURE;
	}
	/* PENDING, STARTED, RETRY: not final, keep waiting until the deadline */
}

/* ------------------------------------------------------------------ call */

/*
 * The timeout in milliseconds: between 1 ms and 1 day, computed without
 * overflow (months count 30 days, as interval comparison does).
 */
static int
interval_to_ms(Interval *timeout)
{
	int64		days;
	int64		usecs;

	if (pg_mul_s64_overflow((int64) timeout->month, DAYS_PER_MONTH, &days) ||
		pg_add_s64_overflow(days, (int64) timeout->day, &days) ||
		pg_mul_s64_overflow(days, USECS_PER_DAY, &usecs) ||
		pg_add_s64_overflow(usecs, timeout->time, &usecs) ||
		usecs < 1000 || usecs > (int64) MAX_TIMEOUT_MS * 1000)
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
 * sleeping on both sockets and the latch until the deadline.  A record
 * that is not final (STARTED with task_track_started, PENDING, RETRY) only
 * means more waiting.
 */
static void
await_outcome(WaitEventSet *set, const char *channel, TimestampTz deadline,
			  RpcResult *res, StringInfo error)
{
	int			redis_fd = RedisSocket(rpc_sub);
	bool		redis_readable = false;
	bool		broker_readable = true;	/* frames may be buffered already */

	for (;;)
	{
		WaitEvent	events[4];
		long		remaining;
		int			n;

		if (broker_readable)
		{
			bool		returned = false;
			BrokerStatus status = BrokerReadEvents(rpc_broker, &returned, error);

			if (status != BROKER_OK)
			{
				drop_broker();
				if (status == BROKER_FAILED)
					(void) BrokerFailoverNext();	/* the next call tries another node first */
				call_failed("lost the broker connection during an RPC call", error);
			}
			if (returned)
			{
				res->outcome = RPC_UNROUTABLE;
				return;
			}
		}
		/* every message received so far (the socket is read once, non-blocking) */
		for (;;)
		{
			char	   *value = NULL;
			size_t		len = 0;
			int			rc = RedisReadMessage(rpc_sub, channel, redis_readable,
											  &value, &len, error);

			redis_readable = false;
			if (rc < 0)
				call_failed("lost the Redis connection while waiting for the RPC result", error);
			if (rc == 0)
				break;
			interpret_record(value, len, res);
			if (res->outcome != RPC_PENDING)
				return;
		}

		remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (remaining <= 0)
		{
			res->outcome = RPC_TIMEOUT;
			return;
		}
		broker_readable = false;
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
 * awaited), wait for the subscription, GET once, then await the outcome,
 * every Redis step bounded by the deadline.  If Redis does not answer a
 * step in time, the outcome is a timeout and the Redis links are dropped
 * (a late reply must not reach the next call); on an error or interrupt
 * they are dropped too: their state is unknown.
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
		char	   *value = NULL;
		size_t		len = 0;
		bool		key_seen = false;	/* the key exists in our database */
		int			rc;

		rc = RedisSubscribeSend(rpc_sub, channel, deadline, &error);
		if (rc < 0)
			call_failed("could not subscribe to the RPC result in Redis", &error);
		if (rc > 0 && !BrokerSend(rpc_broker, msg, true, &error))
		{
			drop_broker();
			(void) BrokerFailoverNext();	/* the next call tries another node first */
			call_failed("could not send the RPC request to the broker", &error);
		}
		if (rc > 0)
		{
			rc = RedisSubscribeAwait(rpc_sub, channel, deadline, &error);
			if (rc < 0)
				call_failed("could not subscribe to the RPC result in Redis", &error);
		}
		/* an answer written before the subscription took effect */
		if (rc > 0)
		{
			rc = RedisGet(rpc_cmd, channel, deadline, &value, &len, &error);
			if (rc < 0)
				call_failed("could not read the RPC result from Redis", &error);
			key_seen = (rc > 0 && value != NULL);
		}
		if (key_seen)
			interpret_record(value, len, res);

		if (rc > 0 && res->outcome == RPC_PENDING)
		{
			set = CreateWaitEventSet(CurrentMemoryContext, 4);
			AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
			AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
			AddWaitEventToSet(set, WL_SOCKET_READABLE, RedisSocket(rpc_sub), NULL, NULL);
			AddWaitEventToSet(set, WL_SOCKET_READABLE, BrokerSocket(rpc_broker), NULL, NULL);
			await_outcome(set, channel, deadline, res, &error);
			FreeWaitEventSet(set);
			set = NULL;

			/*
			 * An answer that came by pub/sub: Celery stored the key before
			 * publishing it, so it must be in our database too.
			 */
			if (!key_seen && res->outcome != RPC_TIMEOUT && res->outcome != RPC_UNROUTABLE)
			{
				bool		exists = false;
				int			grc = RedisExists(rpc_cmd, channel, deadline, &exists, &error);

				if (grc < 0)
					call_failed("could not read the RPC result from Redis", &error);
				if (grc == 0)
					drop_redis();	/* the deadline came first: keep the answer */
				else if (!exists)
					res->elsewhere = true;
			}
		}

		if (rc == 0)
		{
			/* Redis did not answer a step in time */
			res->outcome = RPC_TIMEOUT;
			res->error = "Redis did not answer in time";
			drop_redis();
		}
		/* the next call skips its confirmation */
		else if (rpc_sub != NULL && !RedisUnsubscribeSend(rpc_sub, &error))
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
 * Raise CR010: the answer of the call came by pub/sub, which Redis delivers
 * whatever database the subscriber selected, but its key is not in the
 * database celerysalt.redis_url names.  Such a setup works until an answer
 * is stored before the subscription takes effect; that call then times out
 * (CR008), so it fails every time instead, naming both settings.  The URL is
 * never shown (it may hold a password): only its database number.
 */
static void
raise_backend_mismatch(const char *topic, const char *channel, RpcResult *res)
{
	RedisUrl	url;
	char	   *parse_error = NULL;
	int			db = ConninfoParseRedis(celerysalt_redis_url, &url, &parse_error) ? url.db : 0;

	ereport(ERROR,
			(errcode(ERRCODE_RPC_RESULT_BACKEND_MISMATCH),
			 errmsg("the service answering RPC \"%s\" stores its results in another Redis database than celerysalt.redis_url",
					topic),
			 errdetail("The answer (outcome \"%s\") arrived on the Redis channel \"%s\", which reaches subscribers "
					   "whatever database they selected, but database %d of celerysalt.redis_url has no key of that name. "
					   "The request was run; its answer is not returned, because with these settings a call fails "
					   "with CR008 whenever the answer is stored before the subscription takes effect.",
					   outcome_names[res->outcome], channel, db),
			 errhint("Set celerysalt.redis_url to the service's Celery result_backend URL (the same database number), "
					 "and celerysalt.redis_key_prefix to its global_keyprefix.")));
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
	List	   *allowed = EventNameSplitTasks(celerysalt_dispatcher_tasks);
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
 * RpcOutcomeName
 *		The label of outcome (an RpcOutcome without RPC_PENDING, counted as
 *		index outcome - 1) in metrics: success, business_error, ...
 */
const char *
RpcOutcomeName(int index)
{
	StaticAssertStmt(lengthof(outcome_names) == DBSLOT_RPC_OUTCOMES + 1,
					 "DBSLOT_RPC_OUTCOMES must match RpcOutcome");
	return index >= 0 && index < DBSLOT_RPC_OUTCOMES ? outcome_names[index + 1] : "?";
}

/* Count a finished call and its duration in this database's metrics. */
static void
count_outcome(RpcOutcome outcome, TimestampTz started)
{
	DatabaseSlot *slot = DbslotFind(MyDatabaseId);

	if (slot == NULL || outcome == RPC_PENDING || !celerysalt_track_metrics)
		return;
	pg_atomic_fetch_add_u64(&slot->rpc_calls_total[outcome - 1], 1);
	DbslotObserve(&slot->rpc_duration, GetCurrentTimestamp() - started);
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
	TimestampTz started;

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
	/* the caller's trace context (checked when set), as the outbox keeps it */
	meta.traceparent = GucTraceparent();
	meta.tracestate = GucTracestate();
	initStringInfo(&payload_json);
	MessageAppendPayload(&payload_json, payload, &meta);
	MessageBuild(&msg, celerysalt_rpc_task, &task_uuid, 0, topic, payload_json.data);
	msg.traceparent = meta.traceparent;
	msg.tracestate = meta.tracestate;
	strlcpy(res->task_id, msg.task_id, sizeof(res->task_id));
	msg.priority = RPC_PRIORITY;
	msg.expiration_ms = timeout_ms;
	started = GetCurrentTimestamp();
	deadline = TimestampTzPlusMilliseconds(started, timeout_ms);
	MessageFormatExpires(deadline, msg.expires, sizeof(msg.expires));
	channel = psprintf("%s%scelery-task-meta-%s", celerysalt_redis_key_prefix,
					   celerysalt_redis_key_prefix[0] ? "_" : "", msg.task_id);

	if (ensure_connections(deadline, res))
		converse(&msg, channel, deadline, res);
	count_outcome(res->outcome, started);
	if (res->elsewhere)
		raise_backend_mismatch(topic, channel, res);

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
			if (res.malformed)
				ereport(ERROR,
						(errcode(ERRCODE_RPC_REMOTE_FAILURE),
						 errmsg("the answer to RPC request \"%s\" is malformed", topic),
						 errdetail_internal("%s", res.error),
						 errhint("The service's handler must return JSON values PostgreSQL can store: finite numbers, strings without NUL characters, UTF-8 text.")));
			ereport(ERROR,
					(errcode(ERRCODE_RPC_REMOTE_FAILURE),
					 errmsg("RPC request to \"%s\" failed in the worker", topic),
					 errdetail_internal("%s", res.error)));
			break;
		case RPC_TIMEOUT:
		case RPC_PENDING:
			if (res.error != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_RPC_TIMEOUT),
						 errmsg("RPC request to \"%s\" got no answer within the timeout", topic),
						 errdetail_internal("%s.", res.error),
						 errhint("Check that Redis and the broker are reachable and responsive.")));
			ereport(ERROR,
					(errcode(ERRCODE_RPC_TIMEOUT),
					 errmsg("RPC request to \"%s\" got no answer within the timeout", topic),
					 errdetail("The request expires with the timeout, so a worker that takes it later will not run it."),
					 errhint("Check that the service handling this topic is running, and that celerysalt.redis_url names its Celery result_backend.")));
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
