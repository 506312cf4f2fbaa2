/* libtpmlic's reading of tpmlicd's JSON answers into the structs of
 * include/tpmlic/client.h, through the strict field readers of
 * common/json.h: one JSON object, no duplicate keys, every field the
 * library uses checked for its type and range and for fitting its buffer.
 * Fields the library does not use are ignored (the agent may add some).
 * Internal to the library; no symbol here is exported. Each decoder returns
 * 0, or -EPROTO with msg saying which field is wrong, and writes its output
 * only on success. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "tpmlic/client.h"

/* The errno for an answer's HTTP status (tpmlic_errno_from_status); body
 * (len bytes, may be NULL) tells a refused caller from a refusing license
 * on 403. */
int client_status_errno(int status, const char *body, size_t len);

/* For an answer that is not 2xx: its errno, and in msg the agent's "error"
 * text, or "tpmlicd answered HTTP N: <the start of the body>". 0 for 2xx. */
int client_answer_error(int status, const char *body, size_t len, char *msg, size_t msglen);

/* A 2xx answer's body as one JSON object (a new reference in *ret). */
int client_decode_object(const char *body, size_t len, json_t **ret, char *msg, size_t msglen);

/* POST /v1/usage/reserve: lease, seconds, expires_in. */
int client_decode_lease(json_t *o, struct tpmlic_lease *ret, char *msg, size_t msglen);
/* POST /v1/usage/commit: charged, returned. */
int client_decode_commit(json_t *o, uint64_t *ret_charged, uint64_t *ret_returned, char *msg,
                         size_t msglen);
/* GET /v1/status. */
int client_decode_status(json_t *o, struct tpmlic_status *ret, char *msg, size_t msglen);
