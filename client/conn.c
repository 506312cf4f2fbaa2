/* One HTTP/1.1 connection to tpmlicd over AF_UNIX (conn.h). Written for the
 * agent's answers (libmicrohttpd with buffer responses: always
 * Content-Length), strict about everything else: a chunked answer is
 * refused with a message, sizes are capped before anything is allocated.
 *
 * An exchange is four steps, each its own function: send the request, read
 * the status line and headers (read_head, parse_status_line, parse_headers),
 * check the body's size against the cap, then read the body (read_body). */
#include "client/conn.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"

uint64_t client_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Milliseconds left until deadline, rounded up; 0 when it has passed. */
static int ms_left(uint64_t deadline) {
    uint64_t now = client_now_ns();
    uint64_t ms;
    if (now >= deadline)
        return 0;
    ms = (deadline - now + 999999) / 1000000;
    return ms > 1000000 ? 1000000 : (int)ms;
}

/* Waits for events on fd until deadline: 0 when ready, -ETIMEDOUT. */
static int wait_fd(int fd, short events, uint64_t deadline) {
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int ms = ms_left(deadline);
        int r;
        if (ms == 0)
            return -ETIMEDOUT;
        r = poll(&p, 1, ms);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -errno;
    }
}

void client_conn_close(struct client_conn *c) {
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->reused = false;
}

int client_conn_open(struct client_conn *c, const char *path, uint64_t deadline, char *err,
                     size_t errlen) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    _cleanup_close_ int fd = -1;
    int r;

    if (strlen(path) >= sizeof(a.sun_path)) {
        snprintf(err, errlen, "socket path is too long (%zu bytes, at most %zu): %.80s...",
                 strlen(path), sizeof(a.sun_path) - 1, path);
        return -ENAMETOOLONG;
    }
    memcpy(a.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        r = -errno;
        snprintf(err, errlen, "cannot create a socket: %s", strerror(-r));
        return r;
    }
    for (;;) {
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
            break;
        r = -errno;
        if (r == -EINTR)
            continue;
        if (r == -EAGAIN) {
            /* the agent's listen backlog is full: try again shortly */
            if (ms_left(deadline) == 0) {
                snprintf(err, errlen, "tpmlicd at %s did not accept the connection in time", path);
                return -ETIMEDOUT;
            }
            usleep(2000);
            continue;
        }
        if (r == -EINPROGRESS) {
            int so = 0;
            socklen_t sl = sizeof(so);
            r = wait_fd(fd, POLLOUT, deadline);
            if (r == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl) < 0)
                r = -errno;
            else if (r == 0 && so)
                r = -so;
            if (r == 0)
                break;
        }
        if (r == -ETIMEDOUT)
            snprintf(err, errlen, "tpmlicd at %s did not accept the connection in time", path);
        else
            snprintf(err, errlen, "cannot connect to tpmlicd at %s: %s", path, strerror(-r));
        return r;
    }
    c->fd = TAKE_FD(fd);
    c->reused = false;
    return 0;
}

bool client_conn_stale(const struct client_conn *c) {
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    int r;
    do
        r = poll(&p, 1, 0);
    while (r < 0 && errno == EINTR);
    /* anything readable on an idle connection is EOF, an error, or bytes
     * that belong to no request: in every case the connection is done */
    return r != 0;
}

/* ---- sending ------------------------------------------------------------------- */

static int send_all(struct client_conn *c, const char *p, size_t n, uint64_t deadline) {
    while (n) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            int r = wait_fd(c->fd, POLLOUT, deadline);
            if (r < 0)
                return r;
            continue;
        }
        return w < 0 ? -errno : -EPIPE;
    }
    return 0;
}

/* A request the agent cannot have read whole may be sent again; one that
 * timed out half-written may not (the agent may still read the rest). */
static int send_request(struct client_conn *c, const char *req, size_t reqlen, uint64_t deadline,
                        enum client_stage *stage, char *err, size_t errlen) {
    int r = send_all(c, req, reqlen, deadline);
    if (r == -ETIMEDOUT) {
        *stage = CLIENT_FAILED;
        snprintf(err, errlen, "tpmlicd did not take the request in time");
    } else if (r < 0)
        snprintf(err, errlen, "sending to tpmlicd failed: %s", strerror(-r));
    return r;
}

/* ---- receiving ----------------------------------------------------------------- */

struct rbuf {
    char *p; /* NUL-terminated after len bytes */
    size_t len, size;
};

/* Reads what is there into b (growing it up to cap bytes), waiting for it
 * until deadline. 0, -ECONNRESET at EOF, -EFBIG when b is full. */
static int read_some(struct client_conn *c, struct rbuf *b, size_t cap, uint64_t deadline) {
    ssize_t r;
    if (b->len + 1 >= b->size) {
        size_t ns = b->size ? b->size * 2 : 2048;
        char *np;
        if (ns > cap + 1)
            ns = cap + 1;
        if (b->len + 1 >= ns)
            return -EFBIG;
        np = realloc(b->p, ns);
        if (!np)
            return -ENOMEM;
        b->p = np;
        b->size = ns;
    }
    /* nothing of the answer yet: it takes the agent a while, so wait
     * before reading rather than read, find nothing and wait */
    if (b->len == 0) {
        int w = wait_fd(c->fd, POLLIN, deadline);
        if (w < 0)
            return w;
    }
    for (;;) {
        r = recv(c->fd, b->p + b->len, b->size - 1 - b->len, MSG_DONTWAIT);
        if (r > 0) {
            b->len += (size_t)r;
            b->p[b->len] = '\0';
            return 0;
        }
        if (r == 0)
            return -ECONNRESET;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            int w = wait_fd(c->fd, POLLIN, deadline);
            if (w < 0)
                return w;
            continue;
        }
        return -errno;
    }
}

/* The message for a read that failed; silent says that not one byte of the
 * answer had come, which leaves the stage at CLIENT_SENT_LOST. */
static int read_failed(int r, bool silent, enum client_stage *stage, char *err, size_t errlen) {
    if (r == -ECONNRESET && silent) {
        snprintf(err, errlen,
                 "tpmlicd closed the connection without answering (it may have stopped, or "
                 "processed the request and then stopped)");
        return r;
    }
    *stage = CLIENT_FAILED;
    if (r == -ECONNRESET)
        snprintf(err, errlen, "tpmlicd closed the connection in mid-answer");
    else if (r == -ETIMEDOUT)
        snprintf(err, errlen, "tpmlicd did not answer in time");
    else
        snprintf(err, errlen, "reading tpmlicd's answer failed: %s", strerror(-r));
    return r;
}

/* What the client needs of an answer's head. */
struct head {
    int status;
    size_t len;      /* status line, headers and the blank line */
    size_t body_len; /* when !to_eof */
    bool to_eof;     /* no Content-Length: the body ends with the connection */
    bool close;      /* the agent will close the connection after the answer */
};

/* "HTTP/1.1 200 OK\r\n" (or HTTP/1.0, reason optional): the status. */
static int parse_status_line(const char *p, size_t len, struct head *h, char *err, size_t errlen) {
    if (len < 12 || (strncmp(p, "HTTP/1.1 ", 9) && strncmp(p, "HTTP/1.0 ", 9)) || p[9] < '1' ||
        p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9' ||
        (p[12] != ' ' && p[12] != '\r')) {
        snprintf(err, errlen, "the answer is not HTTP/1.x: '%.40s'", p);
        return -EPROTO;
    }
    h->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    h->close = p[7] == '0'; /* HTTP/1.0 closes unless it says keep-alive */
    return 0;
}

static bool token_eq(const char *v, size_t len, const char *tok) {
    return len == strlen(tok) && strncasecmp(v, tok, len) == 0;
}

/* The headers the client reads, each at most once. */
enum { HDR_CONNECTION, HDR_TRANSFER_ENCODING, HDR_CONTENT_LENGTH, HDR_MAX };
static const char *const header_names[HDR_MAX] = {"Connection", "Transfer-Encoding",
                                                  "Content-Length"};

/* The header lines of p[0..len) (after the status line, up to the blank
 * line): Connection, Transfer-Encoding and Content-Length into *h, with
 * the body's length checked against CLIENT_BODY_MAX. Other headers are
 * skipped. head_req: the answer to a HEAD request, which has no body. */
static int parse_headers(const char *p, size_t len, bool head_req, struct head *h, char *err,
                         size_t errlen) {
    const char *end = p + len - 2, *line = (const char *)memmem(p, len, "\r\n", 2) + 2;
    const char *val[HDR_MAX] = {NULL};
    size_t vlen[HDR_MAX] = {0};

    for (; line < end;) {
        const char *eol = memmem(line, (size_t)(end - line), "\r\n", 2);
        if (!eol)
            eol = end;
        for (int i = 0; i < HDR_MAX; i++) {
            size_t nl = strlen(header_names[i]);
            const char *v, *ve = eol;
            if ((size_t)(eol - line) <= nl || line[nl] != ':' ||
                strncasecmp(line, header_names[i], nl) != 0)
                continue;
            if (val[i]) {
                snprintf(err, errlen, "the answer repeats the header %s", header_names[i]);
                return -EPROTO;
            }
            for (v = line + nl + 1; v < ve && (*v == ' ' || *v == '\t'); v++)
                ;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            val[i] = v;
            vlen[i] = (size_t)(ve - v);
        }
        line = eol + 2;
    }

    if (val[HDR_CONNECTION])
        h->close = token_eq(val[HDR_CONNECTION], vlen[HDR_CONNECTION], "close");
    if (val[HDR_TRANSFER_ENCODING] &&
        !token_eq(val[HDR_TRANSFER_ENCODING], vlen[HDR_TRANSFER_ENCODING], "identity")) {
        snprintf(err, errlen,
                 "tpmlicd answered with Transfer-Encoding: %.*s, which libtpmlic does not read (it "
                 "expects Content-Length)",
                 (int)(vlen[HDR_TRANSFER_ENCODING] > 40 ? 40 : vlen[HDR_TRANSFER_ENCODING]),
                 val[HDR_TRANSFER_ENCODING]);
        return -EPROTO;
    }
    h->body_len = 0;
    h->to_eof = false;
    if (head_req || h->status == 204 || h->status == 304)
        return 0;
    if (!val[HDR_CONTENT_LENGTH]) {
        h->to_eof = h->close = true;
        return 0;
    }
    if (vlen[HDR_CONTENT_LENGTH] == 0 || vlen[HDR_CONTENT_LENGTH] > 9 ||
        strspn(val[HDR_CONTENT_LENGTH], "0123456789") < vlen[HDR_CONTENT_LENGTH]) {
        snprintf(err, errlen, "the answer's Content-Length is not a number");
        return -EPROTO;
    }
    h->body_len = strtoul(val[HDR_CONTENT_LENGTH], NULL, 10);
    if (h->body_len > CLIENT_BODY_MAX) {
        snprintf(err, errlen, "the answer's body of %zu bytes is over the limit of %u", h->body_len,
                 CLIENT_BODY_MAX);
        return -EFBIG;
    }
    return 0;
}

/* Reads until b holds a whole head (at most CLIENT_HEADER_MAX bytes) and
 * parses it; 1xx interim answers are dropped. */
static int read_head(struct client_conn *c, struct rbuf *b, bool head_req, uint64_t deadline,
                     struct head *h, enum client_stage *stage, char *err, size_t errlen) {
    size_t scanned = 0;
    int r;

    for (;;) {
        const char *blank = NULL;
        while (!(blank = b->len ? memmem(b->p + scanned, b->len - scanned, "\r\n\r\n", 4) : NULL)) {
            if (b->len >= CLIENT_HEADER_MAX) {
                *stage = CLIENT_FAILED;
                snprintf(err, errlen, "the answer's headers are longer than %u bytes",
                         CLIENT_HEADER_MAX);
                return -EPROTO;
            }
            scanned = b->len > 3 ? b->len - 3 : 0;
            r = read_some(c, b, CLIENT_HEADER_MAX, deadline);
            if (r < 0)
                return read_failed(r, b->len == 0 && *stage == CLIENT_SENT_LOST, stage, err,
                                   errlen);
        }
        *stage = CLIENT_FAILED;
        h->len = (size_t)(blank - b->p) + 4;
        r = parse_status_line(b->p, h->len, h, err, errlen);
        if (r < 0)
            return r;
        if (h->status >= 200)
            return parse_headers(b->p, h->len, head_req, h, err, errlen);
        memmove(b->p, b->p + h->len, b->len - h->len + 1);
        b->len -= h->len;
        scanned = 0;
    }
}

/* Reads the rest of the body behind the head in b. */
static int read_body(struct client_conn *c, struct rbuf *b, struct head *h, uint64_t deadline,
                     enum client_stage *stage, char *err, size_t errlen) {
    size_t total = h->len + h->body_len;
    int r;

    if (h->to_eof) {
        /* room for one byte over the cap, so that a body of exactly the
         * cap is told from a longer one by the end that follows it */
        while ((r = read_some(c, b, h->len + CLIENT_BODY_MAX + 1, deadline)) == 0)
            ;
        if (r == -EFBIG || (r == -ECONNRESET && b->len - h->len > CLIENT_BODY_MAX)) {
            snprintf(err, errlen, "the answer's body is over the limit of %u bytes",
                     CLIENT_BODY_MAX);
            return -EFBIG;
        }
        if (r != -ECONNRESET)
            return read_failed(r, false, stage, err, errlen);
        h->body_len = b->len - h->len;
        return 0;
    }
    if (b->size < total + 1) {
        char *np = realloc(b->p, total + 1);
        if (!np) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        b->p = np;
        b->size = total + 1;
    }
    while (b->len < total) {
        r = read_some(c, b, total, deadline);
        if (r < 0)
            return read_failed(r, false, stage, err, errlen);
    }
    if (b->len > total)
        h->close = true; /* bytes nobody asked for: this connection is done */
    return 0;
}

int client_conn_exchange(struct client_conn *c, const char *req, size_t reqlen, bool head_req,
                         uint64_t deadline, struct client_answer *ret, enum client_stage *ret_stage,
                         char *err, size_t errlen) {
    struct rbuf b = {0};
    struct head h = {0};
    int r;

    *ret_stage = CLIENT_NOT_SENT;
    r = send_request(c, req, reqlen, deadline, ret_stage, err, errlen);
    if (r < 0)
        return r;
    *ret_stage = CLIENT_SENT_LOST;
    r = read_head(c, &b, head_req, deadline, &h, ret_stage, err, errlen);
    if (r == 0)
        r = read_body(c, &b, &h, deadline, ret_stage, err, errlen);
    if (r < 0) {
        free(b.p);
        return r;
    }
    /* the body moves to the front of the buffer, which the caller then owns */
    memmove(b.p, b.p + h.len, h.body_len);
    b.p[h.body_len] = '\0';
    *ret = (struct client_answer){
        .status = h.status, .body = b.p, .body_len = h.body_len, .close = h.close};
    c->reused = true;
    return 0;
}
