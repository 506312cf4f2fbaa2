/* libtpmlic's transport: one HTTP/1.1 keep-alive connection to tpmlicd over
 * AF_UNIX, with a deadline on every step (poll), Content-Length bodies and
 * no pipelining. Internal to the library; no symbol here is exported. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLIENT_HEADER_MAX (16u * 1024u)        /* status line and headers of an answer */
#define CLIENT_BODY_MAX   (4u * 1024u * 1024u) /* an answer's body */

struct client_conn {
    int fd;      /* -1: not connected */
    bool reused; /* has carried a whole exchange: a failure may mean it went stale */
};

/* How far an exchange got before it failed: decides whether it may be
 * repeated on a new connection. */
enum client_stage {
    CLIENT_NOT_SENT,  /* the agent cannot have seen the whole request */
    CLIENT_SENT_LOST, /* sent; the connection closed before any byte of the answer */
    CLIENT_FAILED,    /* anything else (timeout, garbled answer): never repeated */
};

struct client_answer {
    int status;
    char *body; /* NUL-terminated, malloc()ed; at most CLIENT_BODY_MAX bytes */
    size_t body_len;
    bool close; /* the agent will close the connection after it */
};

uint64_t client_now_ns(void);

/* Connects to path before deadline (CLOCK_MONOTONIC ns). */
int client_conn_open(struct client_conn *c, const char *path, uint64_t deadline, char *err,
                     size_t errlen);
void client_conn_close(struct client_conn *c);
/* True when an idle connection was closed by the agent (EOF or bytes
 * nobody asked for are waiting): do not send on it. */
bool client_conn_stale(const struct client_conn *c);

/* Sends the request (req, reqlen bytes) and reads the whole answer: its
 * status line and headers (at most CLIENT_HEADER_MAX bytes; 1xx interim
 * answers skipped), then a body of Content-Length bytes (checked against
 * CLIENT_BODY_MAX before it is read), none for head_req (a HEAD request),
 * 204 and 304, or up to the end of the connection without Content-Length.
 * -EPROTO for what is not such an answer (chunked included), -EFBIG over a
 * cap. On failure *ret_stage says how far it got; the connection must be
 * closed. */
int client_conn_exchange(struct client_conn *c, const char *req, size_t reqlen, bool head_req,
                         uint64_t deadline, struct client_answer *ret, enum client_stage *ret_stage,
                         char *err, size_t errlen);
