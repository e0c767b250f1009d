/*-------------------------------------------------------------------------
 *
 * broker_failover.h
 *		Which node of celerysalt.broker_url to connect to, and the next one
 *		when it fails (broker_failover.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef CELERYSALT_BROKER_FAILOVER_H
#define CELERYSALT_BROKER_FAILOVER_H

#include "broker.h"

extern BrokerConnection *BrokerFailoverConnect(StringInfo error);
extern bool BrokerFailoverNext(void);
extern int	BrokerFailoverNodeCount(void);
extern const char *BrokerFailoverNode(void);
extern bool BrokerFailoverErrorIsNew(const char *message);
extern void BrokerFailoverHealthy(void);

#endif							/* CELERYSALT_BROKER_FAILOVER_H */
