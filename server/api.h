/* The routes tpmlic-server serves, and the admin REST API behind
 * /admin/v1: the route table (method, path, the token scope it needs, what
 * serves it), and one thin handler per admin route that reads the request
 * strictly (cj_*), makes one call to ops.c and renders its JSON. No HTTP
 * library types: http.c hands a request over as plain data. The reference
 * is docs/openapi.yaml, which a test checks against this table. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "server/db.h"
#include "server/metrics.h"
#include "server/tokens.h"

#define SRV_API_PREFIX "/admin/v1"
#define SRV_API_PARAMS 2

struct srv_api_request {
    const char *method;
    const char *path; /* without the query */
    json_t *query;    /* the query parameters as an object of strings */
    const char *body; /* NULL or len bytes */
    size_t len;
    const char *authorization; /* the Authorization header, or NULL */
};

struct srv_api_env {
    struct srv_db *db;
    EVP_PKEY *key;
    time_t now;
    pthread_mutex_t *write_lock; /* SQLite under serve */
    const char *ek_ca_dir;       /* offline signing: the EK trust store, or NULL */
};

struct srv_api_response {
    int status;
    json_t *body;
    char allow[64];   /* 405: the methods the path has */
    char token[24];   /* the token's ID for the log ("" when none) */
    char actor[96];   /* "token:ID (NAME)" for the audit log */
    bool auth_failed; /* 401: WWW-Authenticate goes with it */
};
/* Frees the answer, wiping a token or secret it carried. */
void srv_api_response_clear(struct srv_api_response *r);

struct srv_route {
    const char *method;
    const char *path; /* "{name}" matches one segment */
    enum srv_route_kind kind;
    enum srv_scope scope; /* admin routes: the scope a token needs */
    int (*handler)(const struct srv_api_env *env, const struct srv_api_request *req,
                   const char *const *params, struct srv_api_response *ret);
    const char *summary;
};
extern const struct srv_route srv_routes[];
extern const size_t srv_nroutes;

/* The route for method and path: NULL when the path is unknown, else the
 * route (method matched) with *method_ok, or any route of that path with
 * !*method_ok (allow then lists the path's methods). params get the
 * path's {names} (pointers into buf, which holds at least strlen(path) +
 * 1). */
const struct srv_route *srv_route_find(const char *method, const char *path, bool *method_ok,
                                       char *allow, size_t allowlen, char *buf, size_t buflen,
                                       const char **params);

/* Answers one admin API request (the route found by srv_route_find): the
 * token, its scope, the query parameters and the body checked, the
 * operation run. Always fills *ret. */
void srv_api_handle(const struct srv_api_env *env, const struct srv_route *route,
                    const char *const *params, const struct srv_api_request *req,
                    struct srv_api_response *ret);

/* The request-body readers of the admin API, for the fuzzer and the unit
 * tests: body text -> the operation's input, or -EINVAL with msg. */
int srv_api_parse_body(const char *route_path, const char *method, const char *body, size_t len,
                       char *msg, size_t msglen);
