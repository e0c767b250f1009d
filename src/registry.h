/*-------------------------------------------------------------------------
 *
 * registry.h
 *		The schema registry: load-time set-up of its hooks (registry.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef CELERYSALT_REGISTRY_H
#define CELERYSALT_REGISTRY_H

#include "celerysalt.h"

extern void RegistryInit(void);

#endif							/* CELERYSALT_REGISTRY_H */
