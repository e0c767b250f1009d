/*-------------------------------------------------------------------------
 *
 * broker_failover.c
 *		The nodes of celerysalt.broker_url ("amqp://a//;amqp://b//", kombu's
 *		failover form) and which one this process uses: the node it is
 *		connected to, or will try next.  kombu's default strategy,
 *		round-robin: a node that fails (cannot be reached, or drops the
 *		connection) hands over to the next one in the list, the last to the
 *		first; the node that worked last is kept until it fails.  A round
 *		is complete when every node has failed once since the last
 *		successful connect: only then should the caller pause (kombu waits
 *		between rounds, never between the nodes of one round).
 *
 * The state is per process: the delivery worker has one, each backend that
 * runs celerysalt_call another.  The nodes are parsed again (and the
 * first one is current again) whenever the setting's value changes.  With
 * a single node this is the behaviour celerysalt always had.
 *
 * celerysalt_broker_nodes(url) shows how a URL is read into nodes.
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "broker_failover.h"
#include "conninfo.h"
#include "guc.h"

typedef struct FailoverNode
{
	AmqpUrl		url;
	char		logged_error[256];	/* the last failure reported for this node */
} FailoverNode;

static MemoryContext failover_cxt = NULL;
static char *nodes_url = NULL;	/* the celerysalt_broker_url they come from */
static FailoverNode *nodes = NULL;
static int	nnodes = 0;
static int	current = 0;		/* the node in use or to try next */
static int	failed_in_round = 0;	/* failures since the last connect */

/*
 * Make the node list that of the current celerysalt.broker_url.  False
 * with the reason in error if it does not parse (the setting's check hook
 * makes that unexpected).
 */
static bool
load_nodes(StringInfo error)
{
	MemoryContext old;
	AmqpUrl    *urls;
	char	   *parse_error = NULL;
	int			n;

	if (nodes_url != NULL && strcmp(nodes_url, celerysalt_broker_url) == 0)
		return true;
	if (failover_cxt == NULL)
		failover_cxt = AllocSetContextCreate(TopMemoryContext, "celerysalt broker nodes",
											 ALLOCSET_SMALL_SIZES);
	MemoryContextReset(failover_cxt);
	nodes_url = NULL;
	nodes = NULL;
	nnodes = current = failed_in_round = 0;

	old = MemoryContextSwitchTo(failover_cxt);
	urls = ConninfoParseAmqpNodes(celerysalt_broker_url, &n, &parse_error);
	if (urls != NULL)
	{
		nodes = palloc0(sizeof(FailoverNode) * n);
		for (int i = 0; i < n; i++)
			nodes[i].url = urls[i];
		nnodes = n;
		nodes_url = pstrdup(celerysalt_broker_url);
	}
	MemoryContextSwitchTo(old);
	if (urls == NULL)
	{
		appendStringInfoString(error, parse_error);
		return false;
	}
	return true;
}

/*
 * BrokerFailoverConnect
 *		Connect to the current node (BrokerConnect).  On success the node
 *		stays current and a new round begins; on failure the caller, once it
 *		has reported the error, moves on with BrokerFailoverNext.
 */
BrokerConnection *
BrokerFailoverConnect(StringInfo error)
{
	BrokerConnection *conn;

	if (!load_nodes(error))
		return NULL;
	conn = BrokerConnect(&nodes[current].url, error);
	if (conn != NULL)
		failed_in_round = 0;
	return conn;
}

/*
 * BrokerFailoverNext
 *		The current node failed (could not be reached, or its connection was
 *		lost): make the next one current.  Returns true when this completes
 *		a round, every node having failed since the last connect: the caller
 *		should pause before the next attempt.
 */
bool
BrokerFailoverNext(void)
{
	if (nnodes == 0)
		return true;
	current = (current + 1) % nnodes;
	if (++failed_in_round < nnodes)
		return false;
	failed_in_round = 0;
	return true;
}

/* How many nodes celerysalt.broker_url lists (1 until it is first parsed). */
int
BrokerFailoverNodeCount(void)
{
	StringInfoData ignored;

	initStringInfo(&ignored);
	(void) load_nodes(&ignored);
	pfree(ignored.data);
	return Max(nnodes, 1);
}

/*
 * The current node's URL with its password masked (the node in use, or the
 * one to try next), for logs and the status views; the setting's text if it
 * does not parse.  Valid until the setting changes.
 */
const char *
BrokerFailoverNode(void)
{
	if (nnodes == 0)
		return ConninfoRedactAmqp(celerysalt_broker_url);
	return nodes[current].url.redacted;
}

/*
 * BrokerFailoverErrorIsNew
 *		Whether message differs from the failure last reported for the
 *		current node, which it becomes: so a node that stays down is logged
 *		once, not at every attempt, until BrokerFailoverHealthy.
 */
bool
BrokerFailoverErrorIsNew(const char *message)
{
	FailoverNode *node;

	if (nnodes == 0)
		return true;
	node = &nodes[current];
	if (strncmp(node->logged_error, message, sizeof(node->logged_error) - 1) == 0)
		return false;
	strlcpy(node->logged_error, message, sizeof(node->logged_error));
	return true;
}

PG_FUNCTION_INFO_V1(celerysalt_broker_nodes);

/*
 * celerysalt_broker_nodes(url text) RETURNS SETOF record
 *		How celerysalt reads a broker URL: one row per node, in the order they
 *		are tried: node, scheme, hostname, port, virtual_host, userid,
 *		has_password, url (the node's URL with its password masked).  Never
 *		returns a password, and an invalid URL's error never repeats it.
 */
Datum
celerysalt_broker_nodes(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *url = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *error = NULL;
	AmqpUrl    *urls;
	int			n;

	InitMaterializedSRF(fcinfo, 0);
	urls = ConninfoParseAmqpNodes(url, &n, &error);
	if (urls == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid broker URL"),
				 errdetail("%s", error),
				 errhint("Use the form amqp://user@host:port/vhost (vhost \"/\" is written //) and join "
						 "the nodes of a cluster with \";\".")));
	for (int i = 0; i < n; i++)
	{
		Datum		values[8];
		bool		nulls[8] = {0};

		values[0] = Int32GetDatum(i + 1);
		values[1] = CStringGetTextDatum(urls[i].scheme);
		values[2] = CStringGetTextDatum(urls[i].host);
		values[3] = Int32GetDatum(urls[i].port);
		values[4] = CStringGetTextDatum(urls[i].vhost);
		values[5] = CStringGetTextDatum(urls[i].user);
		values[6] = BoolGetDatum(urls[i].has_password);
		values[7] = CStringGetTextDatum(urls[i].redacted);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * BrokerFailoverHealthy
 *		The current node works (it confirmed a publish, or had nothing to
 *		confirm): its next failure is reported again.
 */
void
BrokerFailoverHealthy(void)
{
	if (nnodes > 0)
		nodes[current].logged_error[0] = '\0';
}
