/* The socket API's route table and the shared status rendering (api.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct agent;
struct http_route;

const struct http_route *agent_routes(size_t *ret_n);
/* GET /v1/management/license's body; caller holds a->lock (read). */
json_t *agent_license_status_json(struct agent *a);
/* Offline mode: an offline activation, or switched on. Caller holds a->lock. */
bool agent_offline_mode(const struct agent *a);
