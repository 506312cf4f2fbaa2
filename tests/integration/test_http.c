/* Integration tests for agent/http.c: a real server on a real UNIX socket in
 * a temporary directory, real clients (libcurl, raw sockets for malformed
 * and slow requests), real unprivileged peers (forked children that switch
 * to uid 65534 with chosen groups; needs root and fails loudly without). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "agent/http.h"
#include "common/macro.h"

#define SERVICE_GID 4242u
#define ADMIN_GID   4343u
#define NOBODY      65534u
#define TIMEOUT     2u

/* ---- the server under test ------------------------------------------------- */

static void h_status(void *u, const struct http_request *req, struct http_response *resp) {
    http_respond_json(resp, 200,
                      json_pack("{s:b, s:I, s:i}", "ok", 1, "uid", (json_int_t)req->peer->uid,
                                "ngroups", req->peer->ngroups));
}

static void h_check(void *u, const struct http_request *req, struct http_response *resp) {
    json_t *body;
    if (http_parse_json_object(req, true, &body, resp) < 0)
        return;
    http_respond_json(resp, 200,
                      json_pack("{s:b, s:i}", "allowed", 1, "keys", (int)json_object_size(body)));
    json_decref(body);
}

static void h_strict(void *u, const struct http_request *req, struct http_response *resp) {
    json_t *body;
    if (http_parse_json_object(req, false, &body, resp) < 0)
        return;
    http_respond_json(resp, 200, json_pack("{s:b}", "ok", 1));
    json_decref(body);
}

static void h_echo(void *u, const struct http_request *req, struct http_response *resp) {
    bool terminated = req->body ? req->body[req->body_len] == '\0' : true;
    http_respond_json(
        resp, 200,
        json_pack("{s:I, s:b}", "len", (json_int_t)req->body_len, "terminated", terminated));
}

static void h_admin(void *u, const struct http_request *req, struct http_response *resp) {
    http_respond_json(resp, 200, json_pack("{s:b, s:s}", "admin", 1, "method", req->method));
}

static void h_metrics(void *u, const struct http_request *req, struct http_response *resp) {
    http_respond_text(resp, 200, HTTP_CONTENT_TYPE_PROMETHEUS,
                      strdup("# TYPE tpmlic_up gauge\ntpmlic_up 1\n"));
}

static void h_sleep(void *u, const struct http_request *req, struct http_response *resp) {
    usleep(1500 * 1000);
    http_respond_json(resp, 200, json_pack("{s:b}", "slept", 1));
}

static void h_broken(void *u, const struct http_request *req, struct http_response *resp) {
}

static const struct http_route routes[] = {
    {"GET", "/v1/status", HTTP_PERM_SERVICE, h_status, 0},
    {"POST", "/v1/check", HTTP_PERM_SERVICE, h_check, 0},
    {"POST", "/v1/strict", HTTP_PERM_SERVICE, h_strict, 0},
    {"POST", "/v1/echo", HTTP_PERM_SERVICE, h_echo, 0},
    {"GET", "/v1/management/license", HTTP_PERM_ADMIN, h_admin, 0},
    {"POST", "/v1/management/license", HTTP_PERM_ADMIN, h_admin, 0},
    {"DELETE", "/v1/management/license", HTTP_PERM_ADMIN, h_admin, 0},
    {"GET", "/metrics", HTTP_PERM_SERVICE, h_metrics, 0},
    {"GET", "/v1/sleep", HTTP_PERM_SERVICE, h_sleep, 0},
    {"GET", "/v1/blocking", HTTP_PERM_SERVICE, h_sleep, HTTP_ROUTE_BLOCKING},
    {"GET", "/v1/broken", HTTP_PERM_SERVICE, h_broken, 0},
};

struct fixture {
    char dir[64];
    char sock[128];
    int fd;
    struct http_server *srv;
    struct http_server_config cfg;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* As root (CI), the groups are ones nobody has and root passes anyway. Run
 * as another user, the runner's own group stands in for both, so that all
 * but the tests that need root pass (those fail, saying why). */
static void default_config(struct fixture *f) {
    bool root = geteuid() == 0;
    f->cfg = (struct http_server_config){
        .listen_fd = f->fd,
        .routes = routes,
        .nroutes = ARRAY_SIZE(routes),
        .service_gid = root ? SERVICE_GID : getegid(),
        .admin_gid = root ? ADMIN_GID : getegid(),
        .have_service_gid = true,
        .have_admin_gid = true,
        .max_connections = 256,
        .timeout_secs = TIMEOUT,
        .threads = 4,
    };
}

static void restart(struct fixture *f) {
    http_server_stop(f->srv);
    f->srv = NULL;
    assert_int_equal(http_server_start(&f->cfg, &f->srv), 0);
}

static int setup(void **state) {
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/tpmlic-http-XXXXXX");
    if (!mkdtemp(f->dir) || chmod(f->dir, 0755) < 0)
        return -1;
    snprintf(f->sock, sizeof(f->sock), "%s/tpmlicd.sock", f->dir);
    /* 0666: the unprivileged children must reach it; permission is the
     * server's business, not the file mode's, in these tests. */
    if (http_listen_unix(f->sock, 0666, (gid_t)-1, &f->fd) < 0)
        return -1;
    default_config(f);
    if (http_server_start(&f->cfg, &f->srv) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fixture *f = *state;
    char cmd[128];
    if (!f)
        return 0;
    http_server_stop(f->srv);
    if (f->fd >= 0)
        close(f->fd);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

/* ---- a libcurl client ------------------------------------------------------ */

struct reply {
    long status;
    char body[8192];
    size_t body_len;
    char ctype[128];
    char allow[128];
    bool conn_close;
    long connects;
};

static size_t on_body(char *p, size_t sz, size_t n, void *u) {
    struct reply *r = u;
    size_t len = sz * n, room = sizeof(r->body) - 1 - r->body_len;
    memcpy(r->body + r->body_len, p, len < room ? len : room);
    r->body_len += len < room ? len : room;
    r->body[r->body_len] = '\0';
    return len;
}

static void header_value(const char *line, size_t len, char *out, size_t outlen) {
    const char *v = memchr(line, ':', len);
    size_t n;
    if (!v)
        return;
    for (v++; *v == ' '; v++)
        ;
    n = len - (size_t)(v - line);
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n'))
        n--;
    snprintf(out, outlen, "%.*s", (int)n, v);
}

static size_t on_header(char *p, size_t sz, size_t n, void *u) {
    struct reply *r = u;
    size_t len = sz * n;
    if (len > 13 && strncasecmp(p, "Content-Type:", 13) == 0)
        header_value(p, len, r->ctype, sizeof(r->ctype));
    else if (len > 6 && strncasecmp(p, "Allow:", 6) == 0)
        header_value(p, len, r->allow, sizeof(r->allow));
    else if (len > 11 && strncasecmp(p, "Connection:", 11) == 0 && strcasestr(p, "close"))
        r->conn_close = true;
    return len;
}

/* One request on handle h (reused: keep-alive). */
static void req_on(CURL *h, const char *sock, const char *method, const char *path,
                   const char *body, size_t body_len, struct reply *r) {
    char url[256];
    CURLcode rc;

    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "http://localhost%s", path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, sock);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        if (strcmp(method, "GET") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    rc = curl_easy_perform(h);
    if (rc != CURLE_OK)
        fprintf(stderr, "curl %s %s: %s\n", method, path, curl_easy_strerror(rc));
    assert_int_equal(rc, CURLE_OK);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &r->connects);
}

static void req(const char *sock, const char *method, const char *path, const char *body,
                struct reply *r) {
    CURL *h = curl_easy_init();
    assert_non_null(h);
    req_on(h, sock, method, path, body, body ? strlen(body) : 0, r);
    curl_easy_cleanup(h);
}

/* The error body: {"error": "...", "code": status}; returns the message. */
static const char *error_of(const struct reply *r, char *buf, size_t len) {
    json_error_t e;
    json_t *j = json_loads(r->body, 0, &e);
    assert_non_null(j);
    assert_true(json_is_string(json_object_get(j, "error")));
    assert_int_equal(json_integer_value(json_object_get(j, "code")), r->status);
    assert_int_equal(json_object_size(j), 2);
    snprintf(buf, len, "%s", json_string_value(json_object_get(j, "error")));
    json_decref(j);
    assert_string_equal(r->ctype, "application/json");
    return buf;
}

/* ---- a raw client (no allocation: usable in forked children) -------------- */

static int raw_connect(const char *sock) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

struct raw_reply {
    int status;
    char data[16384]; /* head and body */
    size_t len;
    const char *body;
    size_t body_len;
};

/* Reads one response. 0; -ECONNRESET when the server closed the connection
 * before a whole response; -ETIMEDOUT. */
static int raw_read(int fd, int timeout_ms, struct raw_reply *r) {
    char *end = NULL;
    size_t want = SIZE_MAX;

    memset(r, 0, sizeof(*r));
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t n;
        if (r->len >= want)
            break;
        if (poll(&p, 1, timeout_ms) <= 0)
            return -ETIMEDOUT;
        n = read(fd, r->data + r->len, sizeof(r->data) - 1 - r->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -ECONNRESET;
        r->len += (size_t)n;
        r->data[r->len] = '\0';
        if (!end && (end = strstr(r->data, "\r\n\r\n"))) {
            const char *cl = strcasestr(r->data, "\r\nContent-Length:");
            size_t blen = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
            want = (size_t)(end + 4 - r->data) + blen;
            r->body = end + 4;
            r->body_len = blen;
            r->status = atoi(r->data + 9);
        }
        if (r->len == sizeof(r->data) - 1)
            return -EMSGSIZE;
    }
    return 0;
}

/* Is fd closed by the server within timeout_ms? */
static bool closed_within(int fd, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char c;
    if (poll(&p, 1, timeout_ms) <= 0)
        return false;
    return read(fd, &c, 1) <= 0;
}

/* ---- plain answers --------------------------------------------------------- */

static void json_ok(void **state) {
    struct fixture *f = *state;
    struct reply r;
    json_t *j;

    req(f->sock, "GET", "/v1/status", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ctype, "application/json");
    j = json_loads(r.body, 0, NULL);
    assert_non_null(j);
    assert_true(json_is_true(json_object_get(j, "ok")));
    assert_int_equal(json_integer_value(json_object_get(j, "uid")), getuid());
    json_decref(j);

    req(f->sock, "POST", "/v1/check", "{\"feature\": \"enhanced\"}", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"allowed\":true,\"keys\":1}");
}

static void keep_alive_reuses_connection(void **state) {
    struct fixture *f = *state;
    struct http_stats before, after;
    CURL *h = curl_easy_init();
    struct reply r;
    int fd;
    struct raw_reply rr;
    const char *get = "GET /v1/status HTTP/1.1\r\nHost: localhost\r\n\r\n";

    assert_non_null(h);
    http_server_stats(f->srv, &before);
    req_on(h, f->sock, "GET", "/v1/status", NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.connects, 1);
    assert_false(r.conn_close);
    for (int i = 0; i < 5; i++) {
        const char *b = "{\"feature\":\"x\"}";
        if (i % 2)
            req_on(h, f->sock, "GET", "/v1/status", NULL, 0, &r);
        else
            req_on(h, f->sock, "POST", "/v1/check", b, strlen(b), &r);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.connects, 0); /* reused */
        assert_false(r.conn_close);
    }
    /* Errors without a body keep the connection too. */
    req_on(h, f->sock, "GET", "/nope", NULL, 0, &r);
    assert_int_equal(r.status, 404);
    assert_int_equal(r.connects, 0);
    assert_false(r.conn_close);
    req_on(h, f->sock, "GET", "/v1/status", NULL, 0, &r);
    assert_int_equal(r.connects, 0);
    curl_easy_cleanup(h);
    http_server_stats(f->srv, &after);
    assert_int_equal(after.connections_total - before.connections_total, 1);
    assert_int_equal(after.requests - before.requests, 8);

    /* The same with a raw client: several requests on one socket. */
    fd = raw_connect(f->sock);
    assert_true(fd >= 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(write_all(fd, get, strlen(get)), 0);
        assert_int_equal(raw_read(fd, 5000, &rr), 0);
        assert_int_equal(rr.status, 200);
        assert_null(strcasestr(rr.data, "Connection: close"));
    }
    close(fd);
}

static void unknown_path_404(void **state) {
    struct fixture *f = *state;
    struct reply r;
    char msg[512];

    req(f->sock, "GET", "/v1/nope", NULL, &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(error_of(&r, msg, sizeof(msg)), "no such endpoint: GET /v1/nope");
    req(f->sock, "POST", "/v1/status/", "{}", &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(error_of(&r, msg, sizeof(msg)), "no such endpoint: POST /v1/status/");
    /* Query strings are not part of the path. */
    req(f->sock, "GET", "/v1/status?x=1", NULL, &r);
    assert_int_equal(r.status, 200);
}

static void wrong_method_405(void **state) {
    struct fixture *f = *state;
    struct reply r;
    char msg[512];

    req(f->sock, "DELETE", "/v1/status", NULL, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "GET");
    assert_string_equal(error_of(&r, msg, sizeof(msg)),
                        "method DELETE is not allowed on /v1/status; allowed: GET");
    req(f->sock, "PUT", "/v1/management/license", "{}", &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "GET, POST, DELETE");
    assert_string_equal(
        error_of(&r, msg, sizeof(msg)),
        "method PUT is not allowed on /v1/management/license; allowed: GET, POST, DELETE");
}

static void body_limit(void **state) {
    struct fixture *f = *state;
    size_t max = HTTP_DEFAULT_MAX_BODY;
    char *big = malloc(max + 2);
    CURL *h = curl_easy_init();
    struct reply r;
    char msg[512];
    json_t *j;

    assert_non_null(big);
    assert_non_null(h);
    memset(big, 'a', max + 1);
    big[max + 1] = '\0';

    req_on(h, f->sock, "POST", "/v1/echo", big, max, &r);
    assert_int_equal(r.status, 200);
    j = json_loads(r.body, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(j, "len")), max);
    assert_true(json_is_true(json_object_get(j, "terminated")));
    json_decref(j);

    req_on(h, f->sock, "POST", "/v1/echo", big, max + 1, &r);
    assert_int_equal(r.status, 413);
    assert_true(r.conn_close);
    assert_string_equal(error_of(&r, msg, sizeof(msg)),
                        "request body of 65537 bytes is larger than the limit of 65536 bytes");
    curl_easy_cleanup(h);
    free(big);
}

/* A client that announces a huge body gets 413 at once, before it sends
 * it, and the connection is closed: the body is never read. */
static void body_limit_not_read(void **state) {
    struct fixture *f = *state;
    const char *head = "POST /v1/echo HTTP/1.1\r\nHost: localhost\r\n"
                       "Content-Length: 1000000000\r\n\r\n";
    const char *expect = "POST /v1/echo HTTP/1.1\r\nHost: localhost\r\n"
                         "Content-Length: 100000\r\nExpect: 100-continue\r\n\r\n";
    struct raw_reply rr;
    char chunk[4096];
    int fd = raw_connect(f->sock);

    assert_true(fd >= 0);
    assert_int_equal(write_all(fd, head, strlen(head)), 0);
    memset(chunk, 'x', sizeof(chunk));
    /* The agent may already have answered and closed: EPIPE is fine. */
    int w = write_all(fd, chunk, sizeof(chunk));
    assert_true(w == 0 || w == -EPIPE);
    assert_int_equal(raw_read(fd, 5000, &rr), 0);
    assert_int_equal(rr.status, 413);
    assert_true(closed_within(fd, 5000));
    close(fd);

    /* One that waits for "100 Continue" gets the 413 instead, at once. */
    fd = raw_connect(f->sock);
    assert_true(fd >= 0);
    assert_int_equal(write_all(fd, expect, strlen(expect)), 0);
    assert_int_equal(raw_read(fd, 5000, &rr), 0);
    assert_int_equal(rr.status, 413);
    assert_true(closed_within(fd, 5000));
    close(fd);
}

static int send_chunks(int fd, int n) {
    static char chunk[8192 + 16];
    int r = 0;
    snprintf(chunk, sizeof(chunk), "2000\r\n");
    memset(chunk + 6, 'y', 8192);
    memcpy(chunk + 6 + 8192, "\r\n", 2);
    for (int i = 0; i < n && r == 0; i++)
        r = write_all(fd, chunk, 6 + 8192 + 2);
    return r;
}

static void chunked_bodies(void **state) {
    struct fixture *f = *state;
    const char *ok = "POST /v1/check HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
                     "\r\n5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n";
    const char *head =
        "POST /v1/echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n";
    struct raw_reply rr;
    int fd = raw_connect(f->sock);

    assert_true(fd >= 0);
    assert_int_equal(write_all(fd, ok, strlen(ok)), 0);
    assert_int_equal(raw_read(fd, 5000, &rr), 0);
    assert_int_equal(rr.status, 200);
    close(fd);

    /* Past the limit in a chunked body (128 KiB): 413, then closed. */
    fd = raw_connect(f->sock);
    assert_true(fd >= 0);
    assert_int_equal(write_all(fd, head, strlen(head)), 0);
    assert_int_equal(send_chunks(fd, 16), 0);
    assert_int_equal(write_all(fd, "0\r\n\r\n", 5), 0);
    assert_int_equal(raw_read(fd, 5000, &rr), 0);
    assert_int_equal(rr.status, 413);
    assert_true(closed_within(fd, 5000));
    close(fd);

    /* A chunked body that goes on and on: closed without an answer. */
    fd = raw_connect(f->sock);
    assert_true(fd >= 0);
    assert_int_equal(write_all(fd, head, strlen(head)), 0);
    (void)send_chunks(fd, 1000); /* fails with EPIPE once closed */
    assert_int_equal(raw_read(fd, 5000, &rr), -ECONNRESET);
    close(fd);
}

static void malformed_json(void **state) {
    struct fixture *f = *state;
    struct reply r;
    char msg[512];

    req(f->sock, "POST", "/v1/check", "{\"feature\": ", &r);
    assert_int_equal(r.status, 400);
    error_of(&r, msg, sizeof(msg));
    assert_true(strncmp(msg, "malformed JSON at line 1 column ", 32) == 0);

    req(f->sock, "POST", "/v1/check", "{\"a\": 1, \"a\": 2}", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(error_of(&r, msg, sizeof(msg)), "duplicate object key"));

    req(f->sock, "POST", "/v1/check", "[1, 2]", &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(error_of(&r, msg, sizeof(msg)),
                        "the request body must be a JSON object, not an array");
    req(f->sock, "POST", "/v1/check", "\"s\"", &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(error_of(&r, msg, sizeof(msg)),
                        "the request body must be a JSON object, not a string");

    req(f->sock, "POST", "/v1/check", "{} {}", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(error_of(&r, msg, sizeof(msg)), "end of file expected"));

    /* Invalid UTF-8 in the input, echoed by jansson's message: still JSON. */
    req(f->sock, "POST", "/v1/check", "{\"a\": \"\xff\"}", &r);
    assert_int_equal(r.status, 400);
    error_of(&r, msg, sizeof(msg));

    /* Empty body: allowed where the handler says so. */
    req(f->sock, "POST", "/v1/check", "", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"allowed\":true,\"keys\":0}");
    req(f->sock, "POST", "/v1/check", " \n", &r);
    assert_int_equal(r.status, 200);
    req(f->sock, "POST", "/v1/strict", "", &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(error_of(&r, msg, sizeof(msg)),
                        "the request body is empty: a JSON object is expected");
    req(f->sock, "POST", "/v1/strict", "{\"x\": [1, {\"y\": null}]}", &r);
    assert_int_equal(r.status, 200);
}

/* The parser on its own: the exact message. */
static void parse_json_messages(void **state) {
    struct http_response resp = {0};
    struct http_peer peer = {.known = true};
    struct http_request rq = {.method = "POST", .path = "/x", .peer = &peer};
    json_t *j = NULL;

    rq.body = "{\"a\": x}";
    rq.body_len = strlen(rq.body);
    assert_int_equal(http_parse_json_object(&rq, false, &j, &resp), -EINVAL);
    assert_null(j);
    assert_int_equal(resp.status, 400);
    assert_string_equal(json_string_value(json_object_get(resp.json, "error")),
                        "malformed JSON at line 1 column 7: invalid token near 'x'");
    assert_int_equal(json_integer_value(json_object_get(resp.json, "code")), 400);

    /* A NUL byte inside the body is not the end of it. */
    rq.body = "{\"a\": 1}\0junk";
    rq.body_len = 13;
    assert_int_equal(http_parse_json_object(&rq, false, &j, &resp), -EINVAL);
    assert_int_equal(resp.status, 400);

    rq.body = "{\"a\": 1}";
    rq.body_len = strlen(rq.body);
    assert_int_equal(http_parse_json_object(&rq, false, &j, &resp), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "a")), 1);
    json_decref(j);
    json_decref(resp.json);
}

static void malformed_http_400(void **state) {
    struct fixture *f = *state;
    const char *bad[] = {
        "GET /v1/status HTTP/1.1\r\nHost: localhost\r\nno colon here\r\n\r\n",
        "POST /v1/check HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n",
    };
    struct raw_reply rr;
    struct reply r;

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        int fd = raw_connect(f->sock);
        assert_true(fd >= 0);
        assert_int_equal(write_all(fd, bad[i], strlen(bad[i])), 0);
        assert_int_equal(raw_read(fd, 5000, &rr), 0);
        assert_int_equal(rr.status, 400);
        close(fd);
    }
    /* A line that is no request at all: MHD closes without answering. */
    {
        int fd = raw_connect(f->sock);
        assert_true(fd >= 0);
        assert_int_equal(write_all(fd, "GARBAGE\r\n\r\n", 11), 0);
        assert_int_equal(raw_read(fd, 5000, &rr), -ECONNRESET);
        close(fd);
    }
    req(f->sock, "GET", "/v1/status", NULL, &r);
    assert_int_equal(r.status, 200);
}

static void text_response(void **state) {
    struct fixture *f = *state;
    struct reply r;

    req(f->sock, "GET", "/metrics", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ctype, "text/plain; version=0.0.4; charset=utf-8");
    assert_string_equal(r.body, "# TYPE tpmlic_up gauge\ntpmlic_up 1\n");
}

static void handler_without_answer_500(void **state) {
    struct fixture *f = *state;
    struct reply r;
    char msg[512];
    struct http_stats st;

    req(f->sock, "GET", "/v1/broken", NULL, &r);
    assert_int_equal(r.status, 500);
    assert_string_equal(error_of(&r, msg, sizeof(msg)),
                        "internal error: the handler gave no answer");
    http_server_stats(f->srv, &st);
    assert_int_equal(st.responses_5xx, 1);
}

/* Every connection the server counted is counted down again. */
static void wait_all_closed(struct fixture *f) {
    struct http_stats st;

    http_server_stats(f->srv, &st);
    for (int i = 0; i < 300 && st.connections_open; i++) {
        usleep(10000);
        http_server_stats(f->srv, &st);
    }
    assert_int_equal(st.connections_open, 0);
}

static void stats_count(void **state) {
    struct fixture *f = *state;
    struct http_stats st;
    struct reply r;

    req(f->sock, "GET", "/v1/status", NULL, &r);
    req(f->sock, "GET", "/v1/nope", NULL, &r);
    req(f->sock, "POST", "/v1/check", "[", &r);
    http_server_stats(f->srv, &st);
    assert_int_equal(st.requests, 3);
    assert_int_equal(st.responses_4xx, 2);
    assert_int_equal(st.responses_5xx, 0);
    assert_int_equal(st.connections_total, 3);
    wait_all_closed(f);
}

/* ---- slow clients, slow handlers, many clients ------------------------------- */

static void slow_client_dropped_and_harmless(void **state) {
    struct fixture *f = *state;
    const char *half = "GET /v1/status HTTP/1.1\r\nHost: loc";
    struct reply r;
    double t0, t;
    int fd = raw_connect(f->sock);

    assert_true(fd >= 0);
    assert_int_equal(write_all(fd, half, strlen(half)), 0);
    t0 = now_s();
    for (int i = 0; i < 20; i++) {
        req(f->sock, "GET", "/v1/status", NULL, &r);
        assert_int_equal(r.status, 200);
    }
    assert_true(now_s() - t0 < 1.0);
    assert_true(closed_within(fd, (TIMEOUT + 3) * 1000));
    t = now_s() - t0;
    fprintf(stderr, "half a request dropped after %.2f s (timeout %u s)\n", t, TIMEOUT);
    assert_true(t >= TIMEOUT - 0.5);
    close(fd);
}

static size_t on_discard(char *p, size_t sz, size_t n, void *u) {
    return sz * n;
}

struct bg {
    const char *sock;
    const char *path;
    long status;
};

/* In a thread of its own: no cmocka assertion here. */
static void *bg_request(void *arg) {
    struct bg *b = arg;
    char url[256];
    CURL *h = curl_easy_init();

    b->status = -1;
    if (!h)
        return NULL;
    snprintf(url, sizeof(url), "http://localhost%s", b->path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, b->sock);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_discard);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &b->status);
    curl_easy_cleanup(h);
    return NULL;
}

static void slow_handler_does_not_stall_others(void **state) {
    struct fixture *f = *state;
    struct bg b = {f->sock, "/v1/sleep", 0};
    pthread_t t;
    struct reply r;
    double t0;

    assert_int_equal(pthread_create(&t, NULL, bg_request, &b), 0);
    usleep(200 * 1000); /* the sleeping handler is running */
    t0 = now_s();
    for (int i = 0; i < 20; i++) {
        req(f->sock, "GET", "/v1/status", NULL, &r);
        assert_int_equal(r.status, 200);
    }
    assert_true(now_s() - t0 < 0.5);
    pthread_join(t, NULL);
    assert_int_equal(b.status, 200);
}

/* With one worker thread, a BLOCKING handler still leaves the worker free:
 * a connection that the same worker serves is answered meanwhile. */
static void blocking_route_runs_aside(void **state) {
    struct fixture *f = *state;
    const char *get = "GET /v1/status HTTP/1.1\r\nHost: localhost\r\n\r\n";
    struct bg b = {f->sock, "/v1/blocking", 0};
    struct raw_reply rr;
    pthread_t t;
    double t0;
    int fd;

    f->cfg.threads = 1;
    restart(f);
    fd = raw_connect(f->sock);
    assert_true(fd >= 0);
    assert_int_equal(write_all(fd, get, strlen(get)), 0);
    assert_int_equal(raw_read(fd, 5000, &rr), 0);

    assert_int_equal(pthread_create(&t, NULL, bg_request, &b), 0);
    usleep(200 * 1000);
    t0 = now_s();
    for (int i = 0; i < 10; i++) {
        assert_int_equal(write_all(fd, get, strlen(get)), 0);
        assert_int_equal(raw_read(fd, 5000, &rr), 0);
        assert_int_equal(rr.status, 200);
    }
    assert_true(now_s() - t0 < 0.5);
    pthread_join(t, NULL);
    assert_int_equal(b.status, 200);
    close(fd);

    /* Stopping waits for a running BLOCKING handler and its answer. */
    assert_int_equal(pthread_create(&t, NULL, bg_request, &b), 0);
    usleep(200 * 1000);
    http_server_stop(f->srv);
    f->srv = NULL;
    pthread_join(t, NULL);
    assert_int_equal(b.status, 200);
}

static void many_connections(void **state) {
    struct fixture *f = *state;
    enum { N = 200 };
    const char *get = "GET /v1/status HTTP/1.1\r\nHost: localhost\r\n\r\n";
    static int fds[N];
    int answered = 0, refused = 0;
    struct raw_reply rr;
    struct reply r;

    for (int i = 0; i < N; i++) {
        fds[i] = raw_connect(f->sock);
        assert_true(fds[i] >= 0);
    }
    for (int i = 0; i < N; i++)
        if (write_all(fds[i], get, strlen(get)) < 0)
            refused++, fds[i] = (close(fds[i]), -1);
    for (int i = 0; i < N; i++) {
        int rc;
        if (fds[i] < 0)
            continue;
        rc = raw_read(fds[i], 10000, &rr);
        if (rc == 0 && rr.status == 200)
            answered++;
        else if (rc == -ECONNRESET)
            refused++;
        else
            fail_msg("connection %d: %d, status %d", i, rc, rr.status);
        close(fds[i]);
    }
    fprintf(stderr, "%d connections at once: %d answered, %d refused\n", N, answered, refused);
    assert_int_equal(answered + refused, N);
    assert_true(answered >= 64);
    req(f->sock, "GET", "/v1/status", NULL, &r);
    assert_int_equal(r.status, 200);
    wait_all_closed(f);
}

/* At the connection limit, MHD stops accepting: further clients wait in
 * the listen backlog (not answered, not refused) until a slot frees, and
 * are served then. Never more than the limit open at once. */
static void connection_limit(void **state) {
    struct fixture *f = *state;
    enum { N = 20, LIMIT = 8 };
    const char *get = "GET /v1/status HTTP/1.1\r\nHost: localhost\r\n\r\n";
    int fds[N];
    struct raw_reply rr;
    struct http_stats st;

    f->cfg.max_connections = LIMIT;
    f->cfg.threads = 1;
    f->cfg.timeout_secs = 30; /* nothing frees a slot by itself */
    restart(f);
    for (int i = 0; i < N; i++) {
        fds[i] = raw_connect(f->sock);
        assert_true(fds[i] >= 0);
        assert_int_equal(write_all(fds[i], get, strlen(get)), 0);
    }
    for (int i = 0; i < LIMIT; i++) {
        assert_int_equal(raw_read(fds[i], 5000, &rr), 0);
        assert_int_equal(rr.status, 200);
    }
    for (int i = LIMIT; i < N; i++)
        assert_int_equal(raw_read(fds[i], i == LIMIT ? 500 : 0, &rr), -ETIMEDOUT);
    http_server_stats(f->srv, &st);
    assert_int_equal(st.connections_open, LIMIT);

    for (int i = 0; i < LIMIT; i++)
        close(fds[i]);
    for (int i = LIMIT; i < N; i++) {
        assert_int_equal(raw_read(fds[i], 5000, &rr), 0);
        assert_int_equal(rr.status, 200);
        close(fds[i]);
    }
}

/* ---- who may call what --------------------------------------------------------- */

/* In a child: become uid with primary gid and groups, then ask path.
 * Returns the status (and the message in msg). Only syscalls after fork. */
static int as_uid_tail(struct fixture *f, uid_t uid, gid_t gid, const gid_t *groups, int ngroups,
                       const char *method, const char *path, const char *tail, char *msg,
                       size_t msglen) {
    int p[2], st;
    pid_t pid;
    char out[1024] = "";
    ssize_t n, got = 0;

    if (geteuid() != 0)
        fail_msg("this test must run as root (CI does): it switches to uid %u", NOBODY);
    assert_int_equal(pipe(p), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct raw_reply rr;
        char rq[512];
        int fd, len;
        close(p[0]);
        if (setgroups((size_t)ngroups, groups) < 0 || setresgid(gid, gid, gid) < 0 ||
            setresuid(uid, uid, uid) < 0 || geteuid() != uid)
            _exit(2);
        fd = raw_connect(f->sock);
        if (fd < 0)
            _exit(3);
        len =
            snprintf(rq, sizeof(rq), "%s %s HTTP/1.1\r\nHost: localhost\r\n%s", method, path, tail);
        /* A connection refused when it opened may be closed before the
         * request is out: its answer is read all the same. */
        (void)write_all(fd, rq, (size_t)len);
        if (raw_read(fd, 5000, &rr) < 0)
            _exit(4);
        len = snprintf(out, sizeof(out), "%d %.*s", rr.status, (int)rr.body_len, rr.body);
        if (write_all(p[1], out, (size_t)len) < 0)
            _exit(5);
        _exit(0);
    }
    close(p[1]);
    while ((n = read(p[0], out + got, sizeof(out) - 1 - (size_t)got)) > 0)
        got += n;
    out[got] = '\0';
    close(p[0]);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    if (msg) {
        const char *b = strchr(out, ' ');
        json_t *j = json_loads(b ? b + 1 : "", 0, NULL);
        snprintf(msg, msglen, "%s",
                 j && json_is_string(json_object_get(j, "error"))
                     ? json_string_value(json_object_get(j, "error"))
                     : "");
        json_decref(j);
    }
    return atoi(out);
}

static int as_user_tail(struct fixture *f, gid_t gid, const gid_t *groups, int ngroups,
                        const char *method, const char *path, const char *tail, char *msg,
                        size_t msglen) {
    return as_uid_tail(f, NOBODY, gid, groups, ngroups, method, path, tail, msg, msglen);
}

static int as_user(struct fixture *f, gid_t gid, const gid_t *groups, int ngroups,
                   const char *method, const char *path, char *msg, size_t msglen) {
    return as_user_tail(f, gid, groups, ngroups, method, path, "\r\n", msg, msglen);
}

static int as_uid(struct fixture *f, uid_t uid, const gid_t *groups, int ngroups,
                  const char *method, const char *path, char *msg, size_t msglen) {
    return as_uid_tail(f, uid, uid, groups, ngroups, method, path, "\r\n", msg, msglen);
}

static void permissions_by_group(void **state) {
    struct fixture *f = *state;
    const gid_t none[] = {100}, svc[] = {100, SERVICE_GID}, adm[] = {ADMIN_GID};
    char msg[512];

    /* No group: nothing. */
    assert_int_equal(as_user(f, NOBODY, none, 1, "GET", "/v1/status", msg, sizeof(msg)), 403);
    assert_string_equal(msg, "permission denied: GET /v1/status needs root or membership of "
                             "group tpmlic or tpmlic-admin");
    assert_int_equal(
        as_user(f, NOBODY, none, 1, "POST", "/v1/management/license", msg, sizeof(msg)), 403);
    assert_string_equal(msg, "permission denied: POST /v1/management/license needs root or "
                             "membership of group tpmlic-admin");
    assert_int_equal(as_user(f, NOBODY, NULL, 0, "GET", "/metrics", NULL, 0), 403);

    /* Service group, as a supplementary group: service yes, management no. */
    assert_int_equal(as_user(f, NOBODY, svc, 2, "GET", "/v1/status", NULL, 0), 200);
    assert_int_equal(as_user(f, NOBODY, svc, 2, "GET", "/metrics", NULL, 0), 200);
    assert_int_equal(as_user(f, NOBODY, svc, 2, "GET", "/v1/management/license", NULL, 0), 403);
    /* ... and as the primary group. */
    assert_int_equal(as_user(f, SERVICE_GID, NULL, 0, "GET", "/v1/status", NULL, 0), 200);
    assert_int_equal(as_user(f, SERVICE_GID, NULL, 0, "DELETE", "/v1/management/license", NULL, 0),
                     403);

    /* Admin group: management, and service too. */
    assert_int_equal(as_user(f, NOBODY, adm, 1, "GET", "/v1/management/license", NULL, 0), 200);
    assert_int_equal(as_user(f, NOBODY, adm, 1, "DELETE", "/v1/management/license", NULL, 0), 200);
    assert_int_equal(as_user(f, NOBODY, adm, 1, "GET", "/v1/status", NULL, 0), 200);
    assert_int_equal(as_user(f, ADMIN_GID, NULL, 0, "GET", "/v1/management/license", NULL, 0), 200);

    /* Unknown paths and wrong methods are told apart for anyone. */
    assert_int_equal(as_user(f, NOBODY, NULL, 0, "GET", "/v1/nope", NULL, 0), 404);

    /* Root: everything, with no group at all. */
    {
        struct reply r;
        req(f->sock, "GET", "/v1/management/license", NULL, &r);
        assert_int_equal(r.status, 200);
        req(f->sock, "DELETE", "/v1/management/license", NULL, &r);
        assert_int_equal(r.status, 200);
        req(f->sock, "GET", "/v1/status", NULL, &r);
        assert_int_equal(r.status, 200);
    }
}

/* A refused request with a body is answered before its body is read. */
static void refused_body_not_read(void **state) {
    struct fixture *f = *state;
    const gid_t none[] = {100};
    const char *tail = "Content-Length: 100000000\r\n\r\n{\"license\": ";
    char msg[512];

    assert_int_equal(
        as_user_tail(f, NOBODY, none, 1, "POST", "/v1/management/license", tail, msg, sizeof(msg)),
        403);
    assert_string_equal(msg, "permission denied: POST /v1/management/license needs root or "
                             "membership of group tpmlic-admin");
}

static void missing_groups_only_root(void **state) {
    struct fixture *f = *state;
    const gid_t both[] = {SERVICE_GID, ADMIN_GID};
    char msg[512];
    struct reply r;

    f->cfg.have_admin_gid = false;
    restart(f);
    assert_int_equal(as_user(f, NOBODY, both, 2, "GET", "/v1/management/license", msg, sizeof(msg)),
                     403);
    assert_string_equal(msg, "permission denied: GET /v1/management/license needs root (group "
                             "tpmlic-admin does not exist)");
    assert_int_equal(as_user(f, NOBODY, both, 2, "GET", "/v1/status", NULL, 0), 200);
    req(f->sock, "GET", "/v1/management/license", NULL, &r);
    assert_int_equal(r.status, 200);

    f->cfg.have_service_gid = false;
    f->cfg.service_group = "appsvc";
    restart(f);
    assert_int_equal(as_user(f, NOBODY, both, 2, "GET", "/v1/status", msg, sizeof(msg)), 403);
    assert_string_equal(msg, "permission denied: GET /v1/status needs root (groups appsvc and "
                             "tpmlic-admin do not exist)");
    req(f->sock, "GET", "/v1/status", NULL, &r);
    assert_int_equal(r.status, 200);
}

/* ---- fair limits ------------------------------------------------------------------ */

/* A caller in a child process that opens up to n connections as uid (with
 * groups), asks GET /v1/status on each and keeps those answered 200. It
 * reports how many it holds, how many were refused with 503 and how many
 * ended otherwise, then holds them until the parent writes to release. */
struct holder {
    pid_t pid;
    int release;
    int held, refused, other;
};

static void holder_start(struct fixture *f, uid_t uid, const gid_t *groups, int ngroups, int n,
                         struct holder *h) {
    const char *get = "GET /v1/status HTTP/1.1\r\nHost: localhost\r\n\r\n";
    int rep[2], rel[2];
    char out[128] = "";
    ssize_t got = 0, k;

    if (geteuid() != 0)
        fail_msg("this test must run as root (CI does): it switches to uid %u", (unsigned)uid);
    assert_int_equal(pipe(rep), 0);
    assert_int_equal(pipe(rel), 0);
    h->pid = fork();
    assert_true(h->pid >= 0);
    if (h->pid == 0) {
        struct raw_reply rr;
        int held = 0, refused = 0, other = 0, len;
        char c;

        close(rep[0]);
        close(rel[1]);
        if (setgroups((size_t)ngroups, groups) < 0 || setresgid(uid, uid, uid) < 0 ||
            setresuid(uid, uid, uid) < 0 || geteuid() != uid)
            _exit(2);
        for (int i = 0; i < n; i++) {
            int fd = raw_connect(f->sock);
            if (fd < 0) {
                other++;
                continue;
            }
            (void)write_all(fd, get, strlen(get));
            if (raw_read(fd, 5000, &rr) == 0 && rr.status == 200) {
                held++;
                continue; /* kept open */
            }
            if (rr.status == 503 && strstr(rr.data, "connection limit reached") &&
                strstr(rr.data, "Connection: close"))
                refused++;
            else
                other++;
            close(fd);
        }
        len = snprintf(out, sizeof(out), "%d %d %d\n", held, refused, other);
        if (write_all(rep[1], out, (size_t)len) < 0)
            _exit(3);
        /* a byte, not the end of the pipe: later children hold its other end too */
        (void)!read(rel[0], &c, 1);
        _exit(0);
    }
    close(rep[1]);
    close(rel[0]);
    h->release = rel[1];
    while (got < (ssize_t)sizeof(out) - 1 && (k = read(rep[0], out + got, 1)) > 0)
        if (out[got++] == '\n')
            break;
    close(rep[0]);
    assert_int_equal(sscanf(out, "%d %d %d", &h->held, &h->refused, &h->other), 3);
    fprintf(stderr, "uid %u asked %d connections: %d held, %d refused (503), %d otherwise\n",
            (unsigned)uid, n, h->held, h->refused, h->other);
}

static void holder_end(struct holder *h) {
    int st;

    assert_int_equal(write(h->release, "x", 1), 1);
    close(h->release);
    assert_int_equal(waitpid(h->pid, &st, 0), h->pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* One uid asking for 300 connections gets its 16; the others are answered
 * 503 at once and closed. Another uid and root are answered meanwhile, and
 * once the first closes its connections it gets its 16 again. */
static void per_uid_limit(void **state) {
    struct fixture *f = *state;
    const gid_t svc[] = {SERVICE_GID};
    enum { PER_UID = 16, N = 300 };
    struct holder h;
    struct http_stats st;
    struct reply r;
    char msg[512];
    double t0;

    f->cfg.max_per_uid = PER_UID;
    f->cfg.timeout_secs = 30; /* nothing frees a slot by itself */
    restart(f);
    holder_start(f, NOBODY, svc, 1, N, &h);
    assert_int_equal(h.held, PER_UID);
    assert_int_equal(h.refused, N - PER_UID);
    assert_int_equal(h.other, 0);

    assert_int_equal(as_uid(f, NOBODY, svc, 1, "GET", "/v1/status", msg, sizeof(msg)), 503);
    assert_string_equal(msg, "connection limit reached: uid 65534 already holds 16 connections, "
                             "the limit per caller; close some or retry later");
    assert_int_equal(as_uid(f, NOBODY - 1, svc, 1, "GET", "/v1/status", NULL, 0), 200);
    t0 = now_s();
    req(f->sock, "GET", "/v1/status", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(now_s() - t0 < 1.0);
    http_server_stats(f->srv, &st);
    assert_int_equal(st.connections_refused, N - PER_UID + 1);
    holder_end(&h);
    wait_all_closed(f);

    /* The second wave: counted down on close, so counted up again. */
    holder_start(f, NOBODY, svc, 1, 2 * PER_UID, &h);
    assert_int_equal(h.held, PER_UID);
    assert_int_equal(h.refused, PER_UID);
    holder_end(&h);
    wait_all_closed(f);
}

/* A caller that may hold everything ordinary callers may (all but the
 * reserve) shuts out other ordinary callers, never root or the admin group,
 * and none of them waits for it. */
static void reserve_for_root_and_admins(void **state) {
    struct fixture *f = *state;
    const gid_t svc[] = {SERVICE_GID}, adm[] = {ADMIN_GID};
    enum { MAX = 40, RESERVED = 8, N = 100 };
    struct holder h;
    struct reply r;
    char msg[512];
    double t0;

    f->cfg.max_connections = MAX;
    f->cfg.reserved_connections = RESERVED;
    f->cfg.max_per_uid = N;
    f->cfg.threads = 2;
    f->cfg.timeout_secs = 30;
    restart(f);
    holder_start(f, NOBODY, svc, 1, N, &h);
    assert_int_equal(h.held, MAX - RESERVED);
    assert_int_equal(h.refused, N - (MAX - RESERVED));

    t0 = now_s();
    assert_int_equal(as_uid(f, NOBODY - 1, svc, 1, "GET", "/v1/status", msg, sizeof(msg)), 503);
    assert_string_equal(msg, "connection limit reached: the 32 connections open to callers other "
                             "than root and group tpmlic-admin are all taken; retry later");
    assert_int_equal(as_uid(f, NOBODY - 2, adm, 1, "GET", "/v1/management/license", NULL, 0), 200);
    for (int i = 0; i < 5; i++) {
        req(f->sock, "GET", "/v1/status", NULL, &r);
        assert_int_equal(r.status, 200);
    }
    assert_true(now_s() - t0 < 2.0);
    holder_end(&h);
    wait_all_closed(f);
    assert_int_equal(as_uid(f, NOBODY - 1, svc, 1, "GET", "/v1/status", NULL, 0), 200);

    holder_start(f, NOBODY, svc, 1, N, &h);
    assert_int_equal(h.held, MAX - RESERVED);
    holder_end(&h);
    wait_all_closed(f);
}

/* Uids that share a slot of the server's table (uid and uid + 256 do, with
 * 100 connections), counted apart: each holds its own 2, and when some
 * close theirs the others' counts stay theirs. */
static void uids_counted_apart(void **state) {
    struct fixture *f = *state;
    const gid_t svc[] = {SERVICE_GID};
    enum { K = 10, BASE = 20000, STRIDE = 256 };
    struct holder h[K];
    struct http_stats st;
    char msg[512], want[512];

    f->cfg.max_connections = 100;
    f->cfg.max_per_uid = 2;
    f->cfg.threads = 2;
    f->cfg.timeout_secs = 30;
    restart(f);
    for (int k = 0; k < K; k++) {
        holder_start(f, BASE + k * STRIDE, svc, 1, 3, &h[k]);
        assert_int_equal(h[k].held, 2);
        assert_int_equal(h[k].refused, 1);
    }
    for (int k = 1; k < K; k += 2)
        holder_end(&h[k]);
    http_server_stats(f->srv, &st);
    for (int i = 0; i < 300 && st.connections_open != K; i++) {
        usleep(10000);
        http_server_stats(f->srv, &st);
    }
    assert_int_equal(st.connections_open, K);
    for (int k = 0; k < K; k++) {
        uid_t uid = BASE + k * STRIDE;
        if (k % 2) {
            assert_int_equal(as_uid(f, uid, svc, 1, "GET", "/v1/status", NULL, 0), 200);
            continue;
        }
        assert_int_equal(as_uid(f, uid, svc, 1, "GET", "/v1/status", msg, sizeof(msg)), 503);
        snprintf(want, sizeof(want),
                 "connection limit reached: uid %u already holds 2 connections, the limit per "
                 "caller; close some or retry later",
                 (unsigned)uid);
        assert_string_equal(msg, want);
    }
    for (int k = 0; k < K; k += 2)
        holder_end(&h[k]);
    wait_all_closed(f);
    for (int k = K - 1; k >= 0; k--) {
        holder_start(f, BASE + k * STRIDE, svc, 1, 3, &h[k]);
        assert_int_equal(h[k].held, 2);
    }
    for (int k = 0; k < K; k++)
        holder_end(&h[k]);
    wait_all_closed(f);
}

/* Writes s one byte every step_ms until the server closes the connection;
 * the seconds that took, or -1 when it did not within limit_s. */
static double trickle_until_closed(int fd, const char *s, int step_ms, double limit_s) {
    double t0 = now_s();

    for (size_t i = 0; now_s() - t0 < limit_s; i++) {
        if (write(fd, s + i % strlen(s), 1) < 0)
            return now_s() - t0;
        if (closed_within(fd, step_ms))
            return now_s() - t0;
    }
    return -1;
}

/* MHD's timeout is for idleness: a client that sends a byte now and then is
 * never idle. The header timeout drops it whatever it sends: headers that
 * do not end, a body that does not end. An idle keep-alive connection is
 * not a slow request: it stays for the idle timeout. */
static void header_timeout_drops_trickle(void **state) {
    struct fixture *f = *state;
    const char *get = "GET /v1/status HTTP/1.1\r\nHost: localhost\r\n\r\n";
    const char *post = "POST /v1/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n";
    struct raw_reply rr;
    struct http_stats st;
    struct reply r;
    double t;
    int fd;

    f->cfg.header_timeout_secs = 1;
    f->cfg.timeout_secs = 30;
    restart(f);

    /* Headers trickled in from the start. */
    fd = raw_connect(f->sock);
    assert_true(fd >= 0);
    assert_int_equal(write_all(fd, "GET /v1/status HTTP/1.1\r\nX-Slow: ", 33), 0);
    t = trickle_until_closed(fd, "abcdefgh", 100, 5.0);
    req(f->sock, "GET", "/v1/status", NULL, &r);
    assert_int_equal(r.status, 200);
    fprintf(stderr, "trickled headers dropped after %.2f s (header timeout 1 s)\n", t);
    assert_true(t >= 0.8 && t < 2.5);
    close(fd);

    /* A body trickled in after its headers. */
    fd = raw_connect(f->sock);
    assert_true(fd >= 0);
    assert_int_equal(write_all(fd, post, strlen(post)), 0);
    t = trickle_until_closed(fd, "x", 100, 5.0);
    fprintf(stderr, "trickled body dropped after %.2f s\n", t);
    assert_true(t >= 0.8 && t < 2.5);
    close(fd);

    /* Idle between requests for longer than the header timeout: kept. */
    fd = raw_connect(f->sock);
    assert_true(fd >= 0);
    assert_int_equal(write_all(fd, get, strlen(get)), 0);
    assert_int_equal(raw_read(fd, 5000, &rr), 0);
    assert_int_equal(rr.status, 200);
    assert_false(closed_within(fd, 1800));
    assert_int_equal(write_all(fd, get, strlen(get)), 0);
    assert_int_equal(raw_read(fd, 5000, &rr), 0);
    assert_int_equal(rr.status, 200);
    close(fd);

    http_server_stats(f->srv, &st);
    assert_int_equal(st.connections_too_slow, 2);
    wait_all_closed(f);

    /* Kept alive: silent, the idle timeout closes it (not counted as
     * slow); a request started late gets the header timeout on top. */
    f->cfg.timeout_secs = 2;
    restart(f);
    fd = raw_connect(f->sock);
    assert_true(fd >= 0);
    assert_int_equal(write_all(fd, get, strlen(get)), 0);
    assert_int_equal(raw_read(fd, 5000, &rr), 0);
    assert_true(closed_within(fd, 4000));
    close(fd);
    http_server_stats(f->srv, &st);
    assert_int_equal(st.connections_too_slow, 0);
    fd = raw_connect(f->sock);
    assert_true(fd >= 0);
    assert_int_equal(write_all(fd, get, strlen(get)), 0);
    assert_int_equal(raw_read(fd, 5000, &rr), 0);
    t = trickle_until_closed(fd, "GET /v1/status HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa", 100,
                             6.0);
    fprintf(stderr, "a request trickled after an answer dropped after %.2f s (idle 2 s + 1 s)\n",
            t);
    assert_true(t >= 2.7 && t < 4.5);
    close(fd);
    http_server_stats(f->srv, &st);
    assert_int_equal(st.connections_too_slow, 1);
}

/* ---- sockets ---------------------------------------------------------------------- */

static void listen_unix_refuses_live_replaces_stale(void **state) {
    struct fixture *f = *state;
    char path[160];
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    struct reply r;
    int fd = -1, s;

    /* Our server listens on f->sock: another agent must not take it. */
    assert_int_equal(http_listen_unix(f->sock, 0660, (gid_t)-1, &fd), -EADDRINUSE);
    req(f->sock, "GET", "/v1/status", NULL, &r);
    assert_int_equal(r.status, 200);

    /* A stale socket file (its process gone) is replaced. */
    snprintf(path, sizeof(path), "%s/stale.sock", f->dir);
    assert_true(strlen(path) < sizeof(a.sun_path));
    memcpy(a.sun_path, path, strlen(path) + 1);
    s = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s, 1), 0);
    close(s);
    assert_int_equal(access(path, F_OK), 0);
    assert_int_equal(http_listen_unix(path, 0660, (gid_t)-1, &fd), 0);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    s = raw_connect(path);
    assert_true(s >= 0);
    close(s);
    close(fd);

    /* Not a socket: left alone. */
    snprintf(path, sizeof(path), "%s/file", f->dir);
    s = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    assert_true(s >= 0);
    close(s);
    assert_int_equal(http_listen_unix(path, 0660, (gid_t)-1, &fd), -EEXIST);
    assert_int_equal(access(path, F_OK), 0);

    /* Too long for sun_path. */
    memset(path, 'x', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    assert_int_equal(http_listen_unix(path, 0660, (gid_t)-1, &fd), -ENAMETOOLONG);
}

static void listen_unix_mode_group_parents(void **state) {
    struct fixture *f = *state;
    char path[160], dir[128];
    struct stat st;
    mode_t old;
    int fd = -1, r;

    if (geteuid() != 0)
        fail_msg("this test must run as root (CI does): it sets the socket's group");
    snprintf(dir, sizeof(dir), "%s/run/tpmlic", f->dir);
    snprintf(path, sizeof(path), "%s/tpmlicd.sock", dir);
    old = umask(077); /* the parent must still be 0755, the socket 0660 */
    r = http_listen_unix(path, 0660, SERVICE_GID, &fd);
    umask(old);
    assert_int_equal(r, 0);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0660);
    assert_int_equal(st.st_gid, SERVICE_GID);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    snprintf(dir, sizeof(dir), "%s/run", f->dir);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    close(fd);
}

/* Socket activation: LISTEN_FDS/LISTEN_PID with the socket at fd 3. */
static void listen_systemd(void **state) {
    struct fixture *f = *state;
    char pid[32];
    int saved, fd = -1, s;

    unsetenv("LISTEN_FDS");
    assert_int_equal(http_listen_systemd(&fd), -ENOENT);

    saved = fcntl(3, F_DUPFD_CLOEXEC, 10); /* whatever fd 3 is now */
    snprintf(pid, sizeof(pid), "%d", (int)getpid());

    assert_int_equal(dup2(f->fd, 3), 3);
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "1", 1);
    assert_int_equal(http_listen_systemd(&fd), 0);
    assert_int_equal(fd, 3);
    assert_null(getenv("LISTEN_FDS"));

    /* A datagram socket is not ours to serve. */
    s = socket(AF_UNIX, SOCK_DGRAM, 0);
    assert_int_equal(dup2(s, 3), 3);
    close(s);
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "1", 1);
    assert_int_equal(http_listen_systemd(&fd), -EINVAL);

    if (saved >= 0) {
        dup2(saved, 3);
        close(saved);
    } else {
        close(3);
    }
}

static void resolve_group(void **state) {
    gid_t g = 1;

    assert_int_equal(http_resolve_group("root", &g), 0);
    assert_int_equal(g, 0);
    assert_int_equal(http_resolve_group("4242", &g), 0);
    assert_int_equal(g, 4242);
    assert_int_equal(http_resolve_group("no-such-group-tpmlic", &g), -ENOENT);
}

static void bad_config(void **state) {
    struct fixture *f = *state;
    struct http_server *s = NULL;
    struct http_route dup[] = {
        {"GET", "/a", HTTP_PERM_SERVICE, h_status, 0},
        {"GET", "/a", HTTP_PERM_ADMIN, h_status, 0},
    };
    struct http_server_config c = f->cfg;

    c.routes = dup;
    c.nroutes = 2;
    assert_int_equal(http_server_start(&c, &s), -EINVAL);
    c.nroutes = 0;
    assert_int_equal(http_server_start(&c, &s), -EINVAL);
    c = f->cfg;
    c.max_connections = 2;
    assert_int_equal(http_server_start(&c, &s), -EINVAL);
    c = f->cfg;
    c.max_connections = 16;
    c.reserved_connections = 16; /* nothing left for ordinary callers */
    assert_int_equal(http_server_start(&c, &s), -EINVAL);
    assert_null(s);
    http_server_stop(NULL);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(json_ok),
        T(keep_alive_reuses_connection),
        T(unknown_path_404),
        T(wrong_method_405),
        T(body_limit),
        T(body_limit_not_read),
        T(chunked_bodies),
        T(malformed_json),
        cmocka_unit_test(parse_json_messages),
        T(malformed_http_400),
        T(text_response),
        T(handler_without_answer_500),
        T(stats_count),
        T(slow_client_dropped_and_harmless),
        T(slow_handler_does_not_stall_others),
        T(blocking_route_runs_aside),
        T(many_connections),
        T(connection_limit),
        T(permissions_by_group),
        T(refused_body_not_read),
        T(missing_groups_only_root),
        T(per_uid_limit),
        T(reserve_for_root_and_admins),
        T(uids_counted_apart),
        T(header_timeout_drops_trickle),
        T(listen_unix_refuses_live_replaces_stale),
        T(listen_unix_mode_group_parents),
        T(listen_systemd),
        cmocka_unit_test(resolve_group),
        T(bad_config),
    };
    int r;

    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    r = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return r;
}
