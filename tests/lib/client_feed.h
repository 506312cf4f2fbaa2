/* Feeds bytes to libtpmlic's HTTP exchange (client/conn.c) as the agent's
 * answer, over a real socketpair: for the unit tests and the fuzz harness
 * of the client's answer parser. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "client/conn.h"

/* Sends a GET (a HEAD with head_req) on one end of a socketpair whose other
 * end has answered with the len bytes at answer, then closed (unless
 * keep_open: the exchange then waits for more until timeout_ms). The
 * result of client_conn_exchange; on success *ret holds the answer (free
 * ret->body). What does not fit the socket's buffer is written by a thread
 * while the exchange reads. -errno when the socketpair cannot be had. */
int client_feed(const void *answer, size_t len, bool head_req, bool keep_open, int timeout_ms,
                struct client_answer *ret, enum client_stage *ret_stage, char *err, size_t errlen);
