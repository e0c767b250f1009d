/*-------------------------------------------------------------------------
 *
 * broker.h
 *		The RabbitMQ client (broker.c): connection to one node (which one is
 *		broker_failover.c's), batches published without waiting and
 *		confirmed as the broker's answers stream in, one-message publishing
 *		for RPC.  Callers never see librabbitmq-c types.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CELERYSALT_BROKER_H
#define CELERYSALT_BROKER_H

#include "celerysalt.h"
#include "conninfo.h"
#include "message.h"


typedef enum BrokerStatus
{
	BROKER_OK,					/* no failure */
	BROKER_FAILED,				/* connection lost or timed out: retry later */
	BROKER_REJECTED				/* broker refused a message (nack, channel
								 * error): the connection must be reopened */
} BrokerStatus;

typedef struct BrokerConnection BrokerConnection;

/*
 * A batch of messages published with BrokerPublishAsync, confirmed message
 * by message as BrokerPoll reads the broker's answers.  The caller owns it;
 * the connection links it (next) while some message of it is unconfirmed.
 * Callers read unconfirmed, nacked, returned and nreturned.
 */
typedef struct BrokerBatch
{
	CeleryMessage *msgs;		/* task ids identify returned messages */
	int			nmsgs;
	uint64		first_tag;		/* delivery tag of msgs[0] */
	int			unconfirmed;	/* neither acked nor nacked yet */
	bool		nacked;			/* the broker refused at least one */
	bool	   *returned;		/* [nmsgs] came back: no queue was bound */
	int			nreturned;
	/* private to broker.c */
	bool	   *confirmed;		/* [nmsgs] acked or nacked */
	int			confirmed_upto; /* msgs[0 .. confirmed_upto - 1] confirmed */
	struct BrokerBatch *next;
} BrokerBatch;

extern BrokerConnection *BrokerConnect(const AmqpUrl *node, StringInfo error);
extern void BrokerDisconnect(BrokerConnection *conn);
extern void BrokerAbort(BrokerConnection *conn);
extern BrokerStatus BrokerPublishAsync(BrokerConnection *conn, BrokerBatch *batch,
									   CeleryMessage *msgs, int nmsgs,
									   bool mandatory, StringInfo error);
extern BrokerStatus BrokerPoll(BrokerConnection *conn, int *confirmed,
							   StringInfo error);
extern bool BrokerAwaitingConfirms(BrokerConnection *conn);
extern bool BrokerConnectionAlive(BrokerConnection *conn);
extern bool BrokerSend(BrokerConnection *conn, CeleryMessage *msg, bool mandatory,
					   StringInfo error);
extern int	BrokerSocket(BrokerConnection *conn);
extern BrokerStatus BrokerReadEvents(BrokerConnection *conn, bool *returned,
									 StringInfo error);
extern bool BrokerSettle(BrokerConnection *conn, StringInfo error);

#endif							/* CELERYSALT_BROKER_H */
