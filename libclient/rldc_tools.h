/*
 * rldc_tools.h - what rld's own tools (rlctl), linked with the static librld (rld_static),
 * reach inside an rld_client: the segment it maps, so that they read limits through the
 * same code as the daemon (common/limitstat.h, common/metrics.h). Not part of the API:
 * librld.so does not export it.
 */
#ifndef RLD_LIBCLIENT_RLDC_TOOLS_H
#define RLD_LIBCLIENT_RLDC_TOOLS_H

#include "rld.h"
#include "segment.h"

/* C's mapping of its instance's segment (slot_count 0 while a fail-open client is detached). */
const rldi_seg *rldc_client_seg(const rld_client *c);

#endif
