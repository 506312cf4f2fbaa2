/* libtpmlic (include/tpmlic/client.h): handles, their pool of kept-alive
 * connections, the retry rule, and the service calls (their answers are
 * decoded in answer.c, the HTTP exchange is conn.c's).
 * Only the functions marked TPMLIC_API in the header are exported (the
 * library is compiled with -fvisibility=hidden). */
#include "tpmlic/client.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "client/answer.h"
#include "client/conn.h"
#include "common/macro.h"

struct tpmlic {
    char *path;
    atomic_int timeout_ms;
    pthread_mutex_t lock;
    pthread_cond_t freed; /* a connection went back to the pool */
    struct client_conn idle[TPMLIC_MAX_CONNECTIONS];
    size_t nidle;
    size_t nopen; /* idle plus in use by a call */
};

static void set_error(struct tpmlic_error *e, int status, const char *msg) {
    if (!e)
        return;
    e->status = status;
    snprintf(e->message, sizeof(e->message), "%s", msg);
}

const char *tpmlic_version(void) {
    return TPMLIC_VERSION;
}

const char *tpmlic_socket_path(const struct tpmlic *h) {
    return h->path;
}

int tpmlic_set_timeout(struct tpmlic *h, int timeout_ms) {
    if (!h || timeout_ms <= 0)
        return -EINVAL;
    atomic_store(&h->timeout_ms, timeout_ms);
    return 0;
}

/* ---- the pool --------------------------------------------------------------- */

/* Takes an idle connection (most recently used first), or a free slot for a
 * new one (fd -1); waits while all TPMLIC_MAX_CONNECTIONS are in use. */
static int pool_take(struct tpmlic *h, uint64_t deadline, struct client_conn *ret) {
    struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000ull),
                          .tv_nsec = (long)(deadline % 1000000000ull)};
    int r = 0;

    pthread_mutex_lock(&h->lock);
    while (h->nidle == 0 && h->nopen >= TPMLIC_MAX_CONNECTIONS) {
        r = pthread_cond_timedwait(&h->freed, &h->lock, &ts);
        if (r == ETIMEDOUT) {
            pthread_mutex_unlock(&h->lock);
            return -ETIMEDOUT;
        }
    }
    if (h->nidle > 0)
        *ret = h->idle[--h->nidle];
    else {
        h->nopen++;
        *ret = (struct client_conn){.fd = -1};
    }
    pthread_mutex_unlock(&h->lock);
    return 0;
}

/* Gives a connection back; a closed one gives its slot back. */
static void pool_put(struct tpmlic *h, struct client_conn *c) {
    pthread_mutex_lock(&h->lock);
    if (c->fd >= 0)
        h->idle[h->nidle++] = *c;
    else
        h->nopen--;
    pthread_cond_signal(&h->freed);
    pthread_mutex_unlock(&h->lock);
}

int tpmlic_connect(const char *socket_path, struct tpmlic **ret_handle,
                   struct tpmlic_error *ret_error) {
    struct tpmlic *h;
    pthread_condattr_t ca;
    struct client_conn c = {.fd = -1};
    char err[sizeof(ret_error->message)];
    const char *path = socket_path;
    int r;

    if (!ret_handle) {
        set_error(ret_error, 0, "tpmlic_connect: ret_handle is NULL");
        return -EINVAL;
    }
    if (!path || !*path)
        path = secure_getenv(TPMLIC_SOCKET_ENV);
    if (!path || !*path)
        path = TPMLIC_DEFAULT_SOCKET;
    h = calloc(1, sizeof(*h));
    if (!h || !(h->path = strdup(path))) {
        free(h);
        set_error(ret_error, 0, "out of memory");
        return -ENOMEM;
    }
    atomic_init(&h->timeout_ms, TPMLIC_DEFAULT_TIMEOUT_MS);
    pthread_mutex_init(&h->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->freed, &ca);
    pthread_condattr_destroy(&ca);

    r = client_conn_open(&c, h->path, client_now_ns() + TPMLIC_DEFAULT_TIMEOUT_MS * 1000000ull, err,
                         sizeof(err));
    if (r < 0) {
        set_error(ret_error, 0, err);
        tpmlic_close(h);
        return r;
    }
    h->idle[h->nidle++] = c;
    h->nopen = 1;
    *ret_handle = h;
    return 0;
}

void tpmlic_close(struct tpmlic *h) {
    if (!h)
        return;
    for (size_t i = 0; i < h->nidle; i++)
        client_conn_close(&h->idle[i]);
    pthread_cond_destroy(&h->freed);
    pthread_mutex_destroy(&h->lock);
    free(h->path);
    free(h);
}

/* ---- one request -------------------------------------------------------------- */

int tpmlic_errno_from_status(int status, const char *body) {
    return client_status_errno(status, body, body ? strlen(body) : 0);
}

/* Method and path go into the request line as they are: no spaces or
 * control characters, the path absolute. */
static bool token_ok(const char *s, bool path) {
    if (!s || !*s || strlen(s) > 2048 || (path && *s != '/'))
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return false;
    return true;
}

/* The request with its headers, malloc()ed. */
static char *build_request(const char *method, const char *path, const char *body,
                           size_t *ret_len) {
    char *req = NULL;
    int n;
    if (body)
        n = asprintf(&req,
                     "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, path, strlen(body), body);
    else if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        n = asprintf(&req, "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n", method,
                     path);
    else
        n = asprintf(&req, "%s %s HTTP/1.1\r\nHost: localhost\r\n\r\n", method, path);
    if (n < 0)
        return NULL;
    *ret_len = (size_t)n;
    return req;
}

/* Sends one request on a pooled connection and reads the answer. A
 * connection that was closed while idle is replaced before sending; one that
 * breaks under the request is replaced and the request sent again once if
 * the agent cannot have seen it, or if it changes nothing (repeatable). */
static int exchange(struct tpmlic *h, const char *method, const char *path, const char *body,
                    bool repeatable, struct client_answer *ret, struct tpmlic_error *ret_error) {
    uint64_t deadline = client_now_ns() + (uint64_t)atomic_load(&h->timeout_ms) * 1000000ull;
    _cleanup_free_ char *req = NULL;
    struct client_conn c;
    enum client_stage stage = CLIENT_FAILED;
    char err[sizeof(ret_error->message)];
    size_t reqlen = 0;
    bool head = strcmp(method, "HEAD") == 0;
    int r;

    if (!token_ok(method, false) || !token_ok(path, true)) {
        set_error(ret_error, 0,
                  "the method or path is empty or holds spaces or control characters");
        return -EINVAL;
    }
    req = build_request(method, path, body, &reqlen);
    if (!req) {
        set_error(ret_error, 0, "out of memory");
        return -ENOMEM;
    }
    r = pool_take(h, deadline, &c);
    if (r < 0) {
        set_error(ret_error, 0, "all connections of this handle stayed busy until the timeout");
        return r;
    }
    if (c.fd >= 0 && client_conn_stale(&c))
        client_conn_close(&c);
    for (int attempt = 0;; attempt++) {
        bool reused;
        if (c.fd < 0) {
            r = client_conn_open(&c, h->path, deadline, err, sizeof(err));
            if (r < 0)
                break;
        }
        reused = c.reused;
        r = client_conn_exchange(&c, req, reqlen, head, deadline, ret, &stage, err, sizeof(err));
        if (r == 0) {
            if (ret->close)
                client_conn_close(&c);
            pool_put(h, &c);
            return 0;
        }
        client_conn_close(&c);
        if (attempt > 0 || !reused ||
            !(stage == CLIENT_NOT_SENT || (stage == CLIENT_SENT_LOST && repeatable)))
            break;
    }
    if (r < 0 && stage == CLIENT_SENT_LOST && !repeatable && r == -ECONNRESET)
        snprintf(err, sizeof(err),
                 "the connection to tpmlicd broke after the request was sent; it is not sent "
                 "again because the agent may have processed it");
    pool_put(h, &c);
    set_error(ret_error, 0, err);
    return r;
}

/* An answer that is not 2xx becomes an errno and the agent's message. */
static int answer_errno(const struct client_answer *a, struct tpmlic_error *ret_error) {
    char msg[sizeof(ret_error->message)];
    int r = client_answer_error(a->status, a->body, a->body_len, msg, sizeof(msg));
    if (r < 0)
        set_error(ret_error, a->status, msg);
    return r;
}

/* Sends a JSON body, decodes a JSON answer: 0 and *ret_json (a 2xx object),
 * or a negative errno. */
static int call_json(struct tpmlic *h, const char *method, const char *path, json_t *body,
                     bool repeatable, json_t **ret_json, struct tpmlic_error *ret_error) {
    _cleanup_free_ char *text = NULL;
    struct client_answer a = {0};
    char msg[sizeof(ret_error->message)];
    int r;

    if (body && !(text = json_dumps(body, JSON_COMPACT))) {
        set_error(ret_error, 0, "out of memory");
        return -ENOMEM;
    }
    r = exchange(h, method, path, text, repeatable, &a, ret_error);
    if (r < 0)
        return r;
    r = answer_errno(&a, ret_error);
    if (r == 0) {
        r = client_decode_object(a.body, a.body_len, ret_json, msg, sizeof(msg));
        if (r < 0)
            set_error(ret_error, a.status, msg);
    }
    free(a.body);
    return r;
}

int tpmlic_request(struct tpmlic *h, const char *method, const char *path, const char *json_body,
                   int *ret_http_status, char **ret_body, struct tpmlic_error *ret_error) {
    struct client_answer a = {0};
    int r;

    if (!h || !ret_http_status) {
        set_error(ret_error, 0, "tpmlic_request: handle or ret_http_status is NULL");
        return -EINVAL;
    }
    r = exchange(h, method, path, json_body,
                 method && (!strcmp(method, "GET") || !strcmp(method, "HEAD")), &a, ret_error);
    if (r < 0)
        return r;
    *ret_http_status = a.status;
    if (ret_body)
        *ret_body = a.body;
    else
        free(a.body);
    return 0;
}

/* ---- the service calls ------------------------------------------------------- */

int tpmlic_check(struct tpmlic *h, const char *feature, struct tpmlic_error *ret_error) {
    struct client_answer a = {0};
    _cleanup_free_ char *body = NULL;
    int r;

    if (!h) {
        set_error(ret_error, 0, "tpmlic_check: handle is NULL");
        return -EINVAL;
    }
    if (feature) {
        json_auto_t *j = json_pack("{s:s}", "feature", feature);
        if (!j || !(body = json_dumps(j, JSON_COMPACT))) {
            set_error(ret_error, 0, "out of memory");
            return -ENOMEM;
        }
    }
    /* a check changes nothing: repeatable after a broken connection */
    r = exchange(h, "POST", "/v1/check", body ? body : "{}", true, &a, ret_error);
    if (r < 0)
        return r;
    r = answer_errno(&a, ret_error);
    free(a.body);
    return r;
}

int tpmlic_reserve(struct tpmlic *h, uint32_t seconds, const char *feature,
                   struct tpmlic_lease *ret_lease, struct tpmlic_error *ret_error) {
    json_auto_t *body = NULL, *ans = NULL;
    char msg[sizeof(ret_error->message)];
    int r;

    if (!h || !ret_lease) {
        set_error(ret_error, 0, "tpmlic_reserve: handle or ret_lease is NULL");
        return -EINVAL;
    }
    body = json_pack("{s:I, s:s*}", "seconds", (json_int_t)seconds, "feature", feature);
    if (!body) {
        set_error(ret_error, 0, "out of memory");
        return -ENOMEM;
    }
    r = call_json(h, "POST", "/v1/usage/reserve", body, false, &ans, ret_error);
    if (r < 0)
        return r;
    r = client_decode_lease(ans, ret_lease, msg, sizeof(msg));
    if (r < 0)
        set_error(ret_error, 200, msg);
    return r;
}

int tpmlic_commit(struct tpmlic *h, const char *lease_id, uint64_t used, uint64_t *ret_charged,
                  uint64_t *ret_returned, struct tpmlic_error *ret_error) {
    json_auto_t *body = NULL, *ans = NULL;
    char msg[sizeof(ret_error->message)];
    uint64_t charged, returned;
    int r;

    if (!h || !lease_id || used > INT64_MAX) {
        set_error(ret_error, 0, "tpmlic_commit: handle or lease is NULL, or used is too large");
        return -EINVAL;
    }
    body = json_pack("{s:s, s:I}", "lease", lease_id, "used", (json_int_t)used);
    if (!body) {
        set_error(ret_error, 0, "out of memory");
        return -ENOMEM;
    }
    r = call_json(h, "POST", "/v1/usage/commit", body, false, &ans, ret_error);
    if (r < 0)
        return r;
    r = client_decode_commit(ans, &charged, &returned, msg, sizeof(msg));
    if (r < 0) {
        set_error(ret_error, 200, msg);
        return r;
    }
    if (ret_charged)
        *ret_charged = charged;
    if (ret_returned)
        *ret_returned = returned;
    return 0;
}

int tpmlic_status(struct tpmlic *h, struct tpmlic_status *ret_status,
                  struct tpmlic_error *ret_error) {
    json_auto_t *ans = NULL;
    char msg[sizeof(ret_error->message)];
    int r;

    if (!h || !ret_status) {
        set_error(ret_error, 0, "tpmlic_status: handle or ret_status is NULL");
        return -EINVAL;
    }
    r = call_json(h, "GET", "/v1/status", NULL, true, &ans, ret_error);
    if (r < 0)
        return r;
    r = client_decode_status(ans, ret_status, msg, sizeof(msg));
    if (r < 0)
        set_error(ret_error, 200, msg);
    return r;
}
