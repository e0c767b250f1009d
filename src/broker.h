/*-------------------------------------------------------------------------
 *
 * broker.h
 *		The RabbitMQ client (broker.c): connection to one node, confirmed
 *		batch publish.  Callers never see librabbitmq-c types; which node to
 *		connect to is broker_failover.c's.
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
	BROKER_OK,					/* every message confirmed */
	BROKER_FAILED,				/* connection lost or timed out: retry later */
	BROKER_REJECTED,			/* broker refused the batch (nack, channel
								 * error): the connection must be reopened */
	BROKER_RETURNED				/* a mandatory message was unroutable */
} BrokerStatus;

typedef struct BrokerConnection BrokerConnection;

extern BrokerConnection *BrokerConnect(const AmqpUrl *node, StringInfo error);
extern void BrokerDisconnect(BrokerConnection *conn);
extern void BrokerAbort(BrokerConnection *conn);
extern BrokerStatus BrokerPublishBatch(BrokerConnection *conn,
									   CeleryMessage *msgs, int nmsgs,
									   bool mandatory, bool *returned_msgs,
									   StringInfo error);
extern bool BrokerConnectionAlive(BrokerConnection *conn);
extern bool BrokerSend(BrokerConnection *conn, CeleryMessage *msg, bool mandatory,
					   StringInfo error);
extern int	BrokerSocket(BrokerConnection *conn);
extern BrokerStatus BrokerReadEvents(BrokerConnection *conn, bool *returned,
									 StringInfo error);
extern bool BrokerSettle(BrokerConnection *conn, StringInfo error);

#endif							/* CELERYSALT_BROKER_H */
