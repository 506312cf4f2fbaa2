/* libFuzzer harness for the agent's HTTP layer (agent/http.c) as a client
 * meets it: once per process the real server (libmicrohttpd, its epoll
 * thread, the blocking-handler threads) starts on a UNIX socket in a
 * temporary directory with a small route table of its own (no ledger, no
 * TPM) and small limits, so that 413, 431, refusals and drained bodies are
 * in reach. Each input is the raw bytes a client sends on one connection
 * (request line, headers, body, pipelined requests); the harness writes
 * them, half-closes, reads the answer to the end and closes.
 *
 * The first byte picks who connects (the connecting thread's effective
 * uid, gid and groups, which the server reads with SO_PEERCRED and
 * SO_PEERGROUPS; only when the harness runs as root): root, a member of the
 * service group, a member of the admin group through a supplementary group,
 * or neither. Checked besides the sanitizers: what comes back is HTTP/1.x,
 * and the connection ends (within 10 s: the server closes an idle one
 * after 3).
 *
 * libmicrohttpd is not instrumented: coverage guidance comes from http.c
 * and the handlers. */
#include <errno.h>
#include <linux/sockios.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SERVICE_GID 60001u
#define ADMIN_GID   60002u
#define OTHER_UID   60003u
#define OTHER_GID   60004u
#define WAIT_MS     10000

static char dir[64];
static struct sockaddr_un addr = {.sun_family = AF_UNIX};
static struct http_server *server;
static bool as_root, show;

/* ---- the route table --------------------------------------------------------- */

static void get_json(void *ud, const struct http_request *req, struct http_response *resp) {
    http_respond_json(resp, 200, json_pack("{s:s, s:b}", "path", req->path, "ok", true));
}

/* the body back, as the agent's handlers read bodies */
static void echo_object(void *ud, const struct http_request *req, struct http_response *resp) {
    json_t *o = NULL;

    if (http_parse_json_object(req, true, &o, resp) < 0)
        return;
    http_respond_json(resp, 200, o);
}

static void text(void *ud, const struct http_request *req, struct http_response *resp) {
    char *t = strdup("# metrics\nup 1\n");
    if (!t)
        return http_respond_error(resp, 500, "out of memory");
    http_respond_text(resp, 200, HTTP_CONTENT_TYPE_PROMETHEUS, t);
}

/* the request's bytes in an error message: not always UTF-8 */
static void error_with_body(void *ud, const struct http_request *req, struct http_response *resp) {
    http_respond_error(resp, 409, "refused: %.*s", (int)(req->body_len > 600 ? 600 : req->body_len),
                       req->body ? req->body : "");
}

static void no_answer(void *ud, const struct http_request *req, struct http_response *resp) {
}

static const struct http_route routes[] = {
    {"GET", "/v1/status", HTTP_PERM_SERVICE, get_json, 0},
    {"POST", "/v1/check", HTTP_PERM_SERVICE, echo_object, 0},
    {"POST", "/v1/usage/reserve", HTTP_PERM_SERVICE, echo_object, HTTP_ROUTE_BLOCKING},
    {"GET", "/metrics", HTTP_PERM_SERVICE, text, 0},
    {"GET", "/v1/management/license", HTTP_PERM_ADMIN, get_json, 0},
    {"POST", "/v1/management/license", HTTP_PERM_ADMIN, error_with_body, HTTP_ROUTE_BLOCKING},
    {"PUT", "/v1/management/license", HTTP_PERM_ADMIN, echo_object, 0},
    {"DELETE", "/v1/management/license", HTTP_PERM_ADMIN, no_answer, HTTP_ROUTE_BLOCKING},
};

/* The calling thread's credentials alone (raw system calls: glibc's
 * wrappers would change every thread's). Only as root. */
static bool become(unsigned who) {
    static const gid_t admin[] = {OTHER_GID, ADMIN_GID};

    switch (who) {
    case 1: /* the service group as primary group */
        return !syscall(SYS_setgroups, 0, NULL) && !syscall(SYS_setresgid, -1, SERVICE_GID, -1) &&
               !syscall(SYS_setresuid, -1, OTHER_UID, -1);
    case 2: /* the admin group as a supplementary group */
        return !syscall(SYS_setgroups, 2, admin) && !syscall(SYS_setresgid, -1, OTHER_GID, -1) &&
               !syscall(SYS_setresuid, -1, OTHER_UID, -1);
    case 3: /* neither */
        return !syscall(SYS_setgroups, 0, NULL) && !syscall(SYS_setresgid, -1, OTHER_GID, -1) &&
               !syscall(SYS_setresuid, -1, OTHER_UID, -1);
    default:
        return true;
    }
}

static bool become_root_again(void) {
    return !syscall(SYS_setresuid, -1, 0, -1) && !syscall(SYS_setresgid, -1, 0, -1) &&
           !syscall(SYS_setgroups, 0, NULL);
}

static void cleanup(void) {
    http_server_stop(server);
    unlink(addr.sun_path);
    rmdir(dir);
}

static void start(void) {
    struct http_server_config cfg = {
        .routes = routes,
        .nroutes = sizeof(routes) / sizeof(routes[0]),
        .service_gid = SERVICE_GID,
        .admin_gid = ADMIN_GID,
        .have_service_gid = true,
        .have_admin_gid = true,
        .max_connections = 8,
        .timeout_secs = 3,
        .max_body = 4096,
        .threads = 1,
        .conn_memory = 8192,
        .max_blocking = 2,
    };
    int fd;

    snprintf(dir, sizeof(dir), "/tmp/fuzz-agent-http.XXXXXX");
    if (!mkdtemp(dir) || chmod(dir, 0755) < 0) /* the other peers must reach the socket */
        abort();
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/api.sock", dir);
    if (http_listen_unix(addr.sun_path, 0666, (gid_t)-1, &fd) < 0)
        abort();
    cfg.listen_fd = fd;
    if (http_server_start(&cfg, &server) < 0)
        abort();
    close(fd); /* the server serves on its own duplicate */
    /* root that may change its credentials (not in every container) */
    as_root = geteuid() == 0;
    if (as_root) {
        bool ok = become(3);
        if (!become_root_again())
            abort();
        as_root = ok;
        if (!ok)
            fprintf(stderr, "fuzz_agent_http: cannot change credentials: every peer is root\n");
    }
    show = getenv("TPMLIC_FUZZ_SHOW") != NULL;
    atexit(cleanup);
}

/* ---- one connection ------------------------------------------------------------ */

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char answer[64] = "";
    size_t got = 0, sent = 0;
    long long deadline, sent_at = now_ms();
    bool eof = false, shut = false;
    int fd;

    if (size < 1 || size > 256 * 1024)
        return 0;
    if (!server)
        start();
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        abort();
    if (as_root && !become(data[0] & 3))
        abort();
    if (connect(fd, (const struct sockaddr *)&addr, sizeof(addr)) < 0 && errno != EINPROGRESS &&
        errno != EAGAIN)
        abort();
    if (as_root && (data[0] & 3) && !become_root_again())
        abort();
    data++, size--;

    /* write everything, reading meanwhile (a refusal may come before the
     * body is out), then half-close and read to the end */
    deadline = now_ms() + WAIT_MS;
    while (!eof) {
        struct pollfd p = {.fd = fd, .events = POLLIN | (sent < size ? POLLOUT : 0)};
        long long left = deadline - now_ms();
        char buf[4096];
        ssize_t n;

        if (left <= 0) {
            fprintf(stderr, "the agent's HTTP server neither answered nor closed in %d ms\n",
                    WAIT_MS);
            abort();
        }
        if (sent == size && !shut) {
            /* libmicrohttpd polls edge-triggered and takes a short read as
             * "nothing more for now": an end of input that arrives with the
             * last bytes goes unseen until its timeout. Half-close once it
             * has read everything (or has stopped reading). */
            int queued = 0;
            if (ioctl(fd, SIOCOUTQ, &queued) == 0 && queued > 0 && now_ms() < sent_at + 200) {
                p.events = POLLIN;
                left = 1;
            } else {
                shutdown(fd, SHUT_WR);
                shut = true;
            }
        }
        if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
            abort();
        if (p.revents & POLLOUT) {
            n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != EINTR)
                sent = size; /* closed on us (EPIPE, ECONNRESET): read what came */
            if (sent == size)
                sent_at = now_ms();
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            n = recv(fd, buf, sizeof(buf), 0);
            if (n > 0) {
                if (got < sizeof(answer))
                    memcpy(answer + got, buf,
                           (size_t)n < sizeof(answer) - got ? (size_t)n : sizeof(answer) - got);
                got += (size_t)n;
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                eof = true;
            }
        }
    }
    close(fd);
    if (show) /* TPMLIC_FUZZ_SHOW=1: the status line, to see what a seed reaches */
        fprintf(stderr, "answer: %.*s\n", (int)strcspn(answer, "\r\n"), got ? answer : "(none)");
    if (got >= 7 && memcmp(answer, "HTTP/1.", 7) != 0)
        abort();
    return 0;
}
