/* One HTTP/1.1 connection to tpmlicd over AF_UNIX (conn.h). Written for the
 * agent's answers (libmicrohttpd with buffer responses: always
 * Content-Length), strict about everything else: a chunked answer is
 * refused with a message, sizes are capped before anything is allocated. */
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

/* Case-insensitive header lookup in [hdr, end): the value's start and
 * length, or NULL. Refuses a header that occurs twice. */
static const char *header(const char *hdr, const char *end, const char *name, size_t *ret_len,
                          bool *dup) {
    size_t nl = strlen(name);
    const char *found = NULL, *p = hdr;
    size_t flen = 0;

    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!eol)
            eol = end;
        if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            if (found)
                *dup = true;
            found = v;
            flen = (size_t)(ve - v);
        }
        p = eol + 2;
    }
    *ret_len = flen;
    return found;
}

static bool token_eq(const char *v, size_t len, const char *tok) {
    return len == strlen(tok) && strncasecmp(v, tok, len) == 0;
}

struct rbuf {
    char *p;
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

int client_conn_exchange(struct client_conn *c, const char *req, size_t reqlen, bool head,
                         uint64_t deadline, struct client_answer *ret, enum client_stage *ret_stage,
                         char *err, size_t errlen) {
    struct rbuf b = {0};
    _cleanup_free_ char *owned = NULL;
    const char *hdr_end, *v;
    size_t hlen, vlen, body_len = 0, total;
    bool dup = false, close_after = false, to_eof = false;
    int status = 0, r;

    *ret_stage = CLIENT_NOT_SENT;
    r = send_all(c, req, reqlen, deadline);
    if (r < 0) {
        if (r == -ETIMEDOUT) {
            *ret_stage = CLIENT_FAILED;
            snprintf(err, errlen, "tpmlicd did not take the request in time");
        } else
            snprintf(err, errlen, "sending to tpmlicd failed: %s", strerror(-r));
        return r;
    }

    *ret_stage = CLIENT_SENT_LOST;
    for (;;) {
        /* the head of an answer; 1xx interim answers are skipped */
        for (;;) {
            hdr_end = b.p ? memmem(b.p, b.len, "\r\n\r\n", 4) : NULL;
            if (hdr_end)
                break;
            if (b.len >= CLIENT_HEADER_MAX) {
                r = -EPROTO;
                snprintf(err, errlen, "the answer's headers are longer than %u bytes",
                         CLIENT_HEADER_MAX);
                goto fail;
            }
            r = read_some(c, &b, CLIENT_HEADER_MAX, deadline);
            if (r < 0) {
                if (r == -ECONNRESET && b.len == 0 && *ret_stage == CLIENT_SENT_LOST)
                    snprintf(err, errlen,
                             "tpmlicd closed the connection without answering (it may have "
                             "stopped, or processed the request and then stopped)");
                else if (r == -ECONNRESET)
                    snprintf(err, errlen, "tpmlicd closed the connection in mid-answer");
                else if (r == -ETIMEDOUT)
                    snprintf(err, errlen, "tpmlicd did not answer in time");
                else
                    snprintf(err, errlen, "reading tpmlicd's answer failed: %s", strerror(-r));
                if (!(r == -ECONNRESET && b.len == 0 && *ret_stage == CLIENT_SENT_LOST))
                    *ret_stage = CLIENT_FAILED;
                goto out;
            }
        }
        *ret_stage = CLIENT_FAILED;
        hlen = (size_t)(hdr_end - b.p) + 4;
        if (b.len < 12 || (strncmp(b.p, "HTTP/1.1 ", 9) && strncmp(b.p, "HTTP/1.0 ", 9)) ||
            b.p[9] < '1' || b.p[9] > '5' || b.p[10] < '0' || b.p[10] > '9' || b.p[11] < '0' ||
            b.p[11] > '9' || (b.p[12] != ' ' && b.p[12] != '\r')) {
            r = -EPROTO;
            snprintf(err, errlen, "the answer is not HTTP/1.x: '%.40s'", b.p);
            goto fail;
        }
        status = (b.p[9] - '0') * 100 + (b.p[10] - '0') * 10 + (b.p[11] - '0');
        if (status >= 200)
            break;
        memmove(b.p, b.p + hlen, b.len - hlen + 1);
        b.len -= hlen;
    }
    close_after = b.p[7] == '0';
    {
        const char *first = (const char *)memmem(b.p, hlen, "\r\n", 2) + 2, *end = b.p + hlen - 2;
        v = header(first, end, "Connection", &vlen, &dup);
        if (v)
            close_after = token_eq(v, vlen, "close");
        v = header(first, end, "Transfer-Encoding", &vlen, &dup);
        if (v && !token_eq(v, vlen, "identity")) {
            r = -EPROTO;
            snprintf(err, errlen,
                     "tpmlicd answered with Transfer-Encoding: %.*s, which libtpmlic does not "
                     "read (it expects Content-Length)",
                     (int)(vlen > 40 ? 40 : vlen), v);
            goto fail;
        }
        v = header(first, end, "Content-Length", &vlen, &dup);
        if (dup) {
            r = -EPROTO;
            snprintf(err, errlen, "the answer repeats a header");
            goto fail;
        }
        if (head || status == 204 || status == 304)
            body_len = 0;
        else if (v) {
            if (vlen == 0 || vlen > 9 || strspn(v, "0123456789") < vlen) {
                r = -EPROTO;
                snprintf(err, errlen, "the answer's Content-Length is not a number");
                goto fail;
            }
            body_len = strtoul(v, NULL, 10);
            if (body_len > CLIENT_BODY_MAX) {
                r = -EFBIG;
                snprintf(err, errlen, "the answer's body of %zu bytes is over the limit of %u",
                         body_len, CLIENT_BODY_MAX);
                goto fail;
            }
        } else
            to_eof = close_after = true; /* no length: the body ends with the connection */
    }

    if (to_eof) {
        for (;;) {
            r = read_some(c, &b, hlen + CLIENT_BODY_MAX, deadline);
            if (r == -ECONNRESET)
                break;
            if (r < 0) {
                snprintf(err, errlen, "reading tpmlicd's answer failed: %s", strerror(-r));
                goto out;
            }
        }
        body_len = b.len - hlen;
    } else {
        total = hlen + body_len;
        while (b.len < total) {
            if (b.size < total + 1) {
                char *np = realloc(b.p, total + 1);
                if (!np) {
                    r = -ENOMEM;
                    snprintf(err, errlen, "out of memory");
                    goto out;
                }
                b.p = np;
                b.size = total + 1;
            }
            r = read_some(c, &b, total, deadline);
            if (r < 0) {
                if (r == -ECONNRESET)
                    snprintf(err, errlen, "tpmlicd closed the connection in mid-answer");
                else if (r == -ETIMEDOUT)
                    snprintf(err, errlen, "tpmlicd did not answer in time");
                else
                    snprintf(err, errlen, "reading tpmlicd's answer failed: %s", strerror(-r));
                goto out;
            }
        }
        if (b.len > total)
            close_after = true; /* bytes nobody asked for: this connection is done */
    }

    owned = malloc(body_len + 1);
    if (!owned) {
        r = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    memcpy(owned, b.p + hlen, body_len);
    owned[body_len] = '\0';
    ret->status = status;
    ret->body = TAKE_PTR(owned);
    ret->body_len = body_len;
    ret->close = close_after;
    c->reused = true;
    free(b.p);
    return 0;

fail:
    *ret_stage = CLIENT_FAILED;
out:
    free(b.p);
    return r;
}
