/* The socket API's routes (SPEC section 6, docs/api.md): the one table of
 * (method, path, permission, handler) and a thin handler per route that
 * reads the body strictly, makes one domain call and renders the answer.
 * With http.c, the only agent files that see HTTP types. */
#pragma once

#include <stdatomic.h>
#include <stddef.h>

struct http_response;
struct http_route;
struct http_server;
struct ledger;
struct tpmio;
struct validator;

/* What the handlers reach (http_server_config.userdata). The pointers are
 * borrowed and outlive the HTTP server. */
struct routes_ctx {
    struct ledger *ledger;
    struct validator *validator;
    struct tpmio *tpm;
    struct http_server *http; /* for the request counters on /metrics; may be NULL */
    int state_fd;             /* the state directory: the proxy settings */
    atomic_uint_fast64_t checks_allowed;
    atomic_uint_fast64_t checks_denied;
};

const struct http_route *agent_routes(size_t *ret_n);

/* The request-body readers of the routes, for the fuzzer and the unit tests:
 * reads body (len bytes, body[len] == 0) as the handler of (method, path)
 * does before its one domain call. 0 when the handler would go on; -EINVAL
 * with resp filled (a 400) when it would answer that; -ENOENT for a route
 * that reads no body. For POST /v1/management/license/network only the
 * JSON object: agent_netconf_set() reads the rest. The caller clears resp
 * (json_decref(resp->json), free(resp->text)). */
int agent_routes_read_body(const char *method, const char *path, const char *body, size_t len,
                           struct http_response *resp);
