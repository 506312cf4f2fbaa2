/* Answers fed to the client's exchange (client_feed.h). */
#include "tests/lib/client_feed.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/macro.h"

struct writer {
    int fd;
    const char *p;
    size_t len;
    bool keep_open;
};

/* Writes what did not fit the socket's buffer at once, as the exchange
 * reads it; stops when the client end closes (EPIPE). */
static void *write_rest(void *arg) {
    struct writer *w = arg;
    int fl = fcntl(w->fd, F_GETFL);
    fcntl(w->fd, F_SETFL, fl & ~O_NONBLOCK);
    while (w->len > 0) {
        ssize_t n = send(w->fd, w->p, w->len, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        w->p += n;
        w->len -= (size_t)n;
    }
    if (!w->keep_open)
        shutdown(w->fd, SHUT_WR);
    return NULL;
}

int client_feed(const void *answer, size_t len, bool head_req, bool keep_open, int timeout_ms,
                struct client_answer *ret, enum client_stage *ret_stage, char *err, size_t errlen) {
    static const char get[] = "GET /v1/status HTTP/1.1\r\nHost: localhost\r\n\r\n";
    static const char head[] = "HEAD /v1/status HTTP/1.1\r\nHost: localhost\r\n\r\n";
    _cleanup_close_ int agent = -1;
    struct client_conn c = {.fd = -1};
    struct writer w = {.p = answer, .len = len, .keep_open = keep_open};
    pthread_t t;
    bool threaded = false;
    int sv[2], r;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
        return -errno;
    c.fd = sv[0];
    agent = w.fd = sv[1];
    /* what fits the socket's buffer is written now; the rest by a thread
     * while the exchange reads */
    while (w.len > 0) {
        ssize_t n = send(agent, w.p, w.len, MSG_NOSIGNAL);
        if (n < 0)
            break;
        w.p += n;
        w.len -= (size_t)n;
    }
    if (w.len > 0) {
        if (errno != EAGAIN || pthread_create(&t, NULL, write_rest, &w) != 0) {
            r = -errno;
            client_conn_close(&c);
            return r;
        }
        threaded = true;
    } else if (!keep_open)
        shutdown(agent, SHUT_WR);
    r = client_conn_exchange(
        &c, head_req ? head : get, head_req ? sizeof(head) - 1 : sizeof(get) - 1, head_req,
        client_now_ns() + (uint64_t)timeout_ms * 1000000u, ret, ret_stage, err, errlen);
    client_conn_close(&c);
    if (threaded)
        pthread_join(t, NULL);
    return r;
}
