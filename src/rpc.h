/*-------------------------------------------------------------------------
 *
 * rpc.h
 *		What rpc.c (celerysalt_call) shares: the names of its outcomes, for
 *		the metrics (metrics.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef CELERYSALT_RPC_H
#define CELERYSALT_RPC_H

#include "celerysalt.h"

extern const char *RpcOutcomeName(int index);

#endif							/* CELERYSALT_RPC_H */
