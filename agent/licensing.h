/* Online licensing (SPEC sections 7 and 8, docs/online.md): activation and
 * removal through the management API, and the validation thread that
 * validates at start, every 24 h, when seconds run low, and on the back-off
 * schedule after a failure, keeping the grace bookkeeping in the TPM. */
#pragma once

#include <stdbool.h>

struct agent;
struct http_request;
struct http_response;

/* Starts the validation thread; agent_online_stop joins it. */
int agent_online_start(struct agent *a);
void agent_online_stop(struct agent *a);
/* Asks for a validation now, without waiting for it (refill: services never
 * wait on the network). */
void agent_online_poke(struct agent *a);
/* Is this license validated online (an online activation, not in offline
 * mode, with a server configured)? Caller holds a->lock. */
bool agent_online_applies(const struct agent *a);

void agent_post_license(void *ud, const struct http_request *req, struct http_response *resp);
void agent_delete_license(void *ud, const struct http_request *req, struct http_response *resp);
