/* The socket API's route table and the shared status rendering (api.c). */
#pragma once

#include <stddef.h>

#include <jansson.h>

struct agent;
struct http_route;

const struct http_route *agent_routes(size_t *ret_n);
/* GET /v1/management/license's body; caller holds a->lock (read). */
json_t *agent_license_status_json(struct agent *a);
