/* HTTPS for tpmlic-server: the only file that talks to libmicrohttpd. A
 * pool of MHD threads (epoll, TLS through GnuTLS) runs the requests; each
 * takes a SQLite connection from a pool of as many connections as threads,
 * parses the body, asks logic.c for the answer and signs it. Writes are
 * serialised by one mutex in the process (and SQLite's lock against other
 * processes): see docs/server.md, concurrency.
 *
 * Limits: 16 KiB bodies (413), a connection limit, a per-connection idle
 * timeout; unknown paths 404, other methods than POST 405. Every request
 * is logged in one line, with a license code shortened to 4 characters. */
#include "server/server.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "common/log.h"
#include "common/macro.h"

#define DRAIN_LIMIT    (1024u * 1024u) /* body of a refused request read and dropped */
#define JSON_TYPE      "application/json"
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

static const struct route {
    const char *path;
    enum srv_request type;
} routes[] = {
    {"/v1/activate", SRV_REQ_ACTIVATE},
    {"/v1/validate", SRV_REQ_VALIDATE},
    {"/v1/deactivate", SRV_REQ_DEACTIVATE},
};

struct srv_http {
    struct MHD_Daemon *daemon;
    EVP_PKEY *key;
    pthread_mutex_t write_lock;

    pthread_mutex_t pool_lock; /* guards dbs[] and used[] */
    pthread_cond_t pool_cond;
    sqlite3 **dbs;
    bool *used;
    unsigned ndbs;

    atomic_uint inflight; /* requests whose headers are in and that are not done */
};

/* One per request (MHD's req_cls). */
struct req {
    const struct route *route;
    int status;      /* != 0: refused before the handler (404, 405, 413) */
    char error[160]; /* its message */
    char *body;
    size_t len;
    size_t drained;
    bool close;
    struct timespec t0;
};

/* ---- the database pool ---------------------------------------------------------- */

static sqlite3 *db_acquire(struct srv_http *s, unsigned *ret_slot) {
    sqlite3 *db = NULL;
    pthread_mutex_lock(&s->pool_lock);
    for (;;) {
        for (unsigned i = 0; i < s->ndbs; i++)
            if (!s->used[i]) {
                s->used[i] = true;
                db = s->dbs[i];
                *ret_slot = i;
                break;
            }
        if (db)
            break;
        pthread_cond_wait(&s->pool_cond, &s->pool_lock);
    }
    pthread_mutex_unlock(&s->pool_lock);
    return db;
}

static void db_release(struct srv_http *s, unsigned slot) {
    pthread_mutex_lock(&s->pool_lock);
    s->used[slot] = false;
    pthread_cond_signal(&s->pool_cond);
    pthread_mutex_unlock(&s->pool_lock);
}

/* ---- responses -------------------------------------------------------------------- */

static double elapsed_ms(const struct req *q) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - q->t0.tv_sec) * 1e3 + (double)(t.tv_nsec - q->t0.tv_nsec) / 1e6;
}

static enum MHD_Result send_body(struct MHD_Connection *c, unsigned status, char *body, bool close,
                                 bool allow_post) {
    struct MHD_Response *mr;
    enum MHD_Result ret;

    if (!body)
        return MHD_NO;
    mr = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!mr) {
        free(body);
        return MHD_NO;
    }
    if (MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, JSON_TYPE) != MHD_YES ||
        (allow_post && MHD_add_response_header(mr, MHD_HTTP_HEADER_ALLOW, "POST") != MHD_YES) ||
        (close && MHD_add_response_header(mr, MHD_HTTP_HEADER_CONNECTION, "close") != MHD_YES)) {
        MHD_destroy_response(mr);
        return MHD_NO;
    }
    ret = MHD_queue_response(c, status, mr);
    MHD_destroy_response(mr);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, struct req *q, const char *method,
                                  const char *url, unsigned status, const char *msg) {
    _cleanup_(json_decrefp) json_t *o = json_pack("{s:s, s:i}", "error", msg, "code", status);
    log_info("%s %.64s %u error: %s (%.1f ms)", method, url, status, msg, elapsed_ms(q));
    return send_body(c, status, o ? json_dumps(o, JSON_COMPACT) : NULL, q->close, status == 405);
}

/* Runs the request through logic.c and sends the (signed) answer. */
static enum MHD_Result answer(struct srv_http *s, struct MHD_Connection *c, struct req *q,
                              const char *method, const char *url) {
    _cleanup_(json_decrefp) json_t *request = NULL;
    _cleanup_free_ char *jws = NULL;
    struct srv_reply reply = {0};
    struct srv_ctx ctx = {.key = s->key, .now = time(NULL), .write_lock = &s->write_lock};
    char hint[16], msg[200];
    json_error_t jerr;
    unsigned slot;
    char *body;
    int r;

    request = q->len ? json_loadb(q->body, q->len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!request) {
        snprintf(msg, sizeof(msg), "the body is not JSON: %s", q->len ? jerr.text : "it is empty");
        return send_error(c, q, method, url, 400, msg);
    }
    ctx.db = db_acquire(s, &slot);
    r = srv_handle(&ctx, q->route->type, request, &reply);
    db_release(s, slot);
    if (r < 0) {
        log_error("%s %s: the database failed: %s", method, url, strerror(-r));
        return send_error(c, q, method, url, r == -EBUSY ? 503 : 500,
                          r == -EBUSY ? "the database is busy: try again"
                                      : "internal error: the database failed");
    }
    if (!reply.signed_answer) {
        const char *e = json_string_value(json_object_get(reply.body, "error"));
        enum MHD_Result ret = send_error(c, q, method, url, (unsigned)reply.status, e ? e : "?");
        srv_reply_clear(&reply);
        return ret;
    }
    r = cert_answer_sign(reply.body, s->key, &jws);
    srv_reply_clear(&reply);
    if (r < 0) {
        log_error("%s %s: cannot sign the answer: %s", method, url, strerror(-r));
        return send_error(c, q, method, url, 500, "internal error: cannot sign the answer");
    }
    srv_code_hint(reply.license, hint);
    log_info("%s %s %d %s%s%s license=%s activation=%.8s (%.1f ms)", method, url, reply.status,
             reply.reason[0] ? "refused" : "ok", reply.reason[0] ? " " : "", reply.reason, hint,
             reply.activation[0] ? reply.activation : "-", elapsed_ms(q));
    body = NULL;
    if (asprintf(&body, "{\"answer\":\"%s\"}", jws) < 0)
        return MHD_NO;
    return send_body(c, (unsigned)reply.status, body, false, false);
}

/* ---- MHD callbacks --------------------------------------------------------------------- */

static size_t content_length(struct MHD_Connection *c) {
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    char *end;
    unsigned long long n;

    if (!v)
        return 0;
    errno = 0;
    n = strtoull(v, &end, 10);
    return errno || *end ? SIZE_MAX : (size_t)n;
}

static bool expects_continue(struct MHD_Connection *c) {
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
    return v && strcasecmp(v, "100-continue") == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls) {
    struct srv_http *s = cls;
    struct req *q = *req_cls;

    if (!q) {
        size_t clen = content_length(c);

        q = calloc(1, sizeof(*q));
        if (!q)
            return MHD_NO;
        *req_cls = q;
        atomic_fetch_add(&s->inflight, 1);
        clock_gettime(CLOCK_MONOTONIC, &q->t0);
        for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
            if (strcmp(url, routes[i].path) == 0)
                q->route = &routes[i];
        if (!q->route) {
            q->status = 404;
            snprintf(q->error, sizeof(q->error),
                     "no such path: the paths are /v1/activate, "
                     "/v1/validate and /v1/deactivate");
        } else if (strcmp(method, MHD_HTTP_METHOD_POST) != 0) {
            q->status = 405;
            snprintf(q->error, sizeof(q->error), "method %.16s not allowed: use POST", method);
        } else if (clen > SRV_BODY_MAX) {
            q->status = 413;
            q->close = true;
            snprintf(q->error, sizeof(q->error), "request body larger than the limit of %d bytes",
                     SRV_BODY_MAX);
        }
        /* A client waiting for "100 Continue" has sent no body, and a body
         * too big to drain is never read: answer now (MHD then closes). */
        if (q->status && (clen > DRAIN_LIMIT || expects_continue(c))) {
            q->close = true;
            return send_error(c, q, method, url, (unsigned)q->status, q->error);
        }
        return MHD_YES;
    }

    if (*upload_data_size) {
        size_t n = *upload_data_size;

        *upload_data_size = 0;
        if (!q->status) {
            if (q->len + n > SRV_BODY_MAX) {
                /* chunked, or a Content-Length that lied */
                q->status = 413;
                q->close = true;
                snprintf(q->error, sizeof(q->error),
                         "request body larger than the limit of %d bytes", SRV_BODY_MAX);
                free(q->body);
                q->body = NULL;
                q->drained = q->len;
                q->len = 0;
            } else {
                char *b = realloc(q->body, q->len + n + 1);
                if (!b)
                    return MHD_NO;
                memcpy(b + q->len, upload_data, n);
                q->body = b;
                q->len += n;
                return MHD_YES;
            }
        }
        q->drained += n;
        return q->drained > DRAIN_LIMIT ? MHD_NO : MHD_YES;
    }

    if (q->status)
        return send_error(c, q, method, url, (unsigned)q->status, q->error);
    return answer(s, c, q, method, url);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe) {
    struct srv_http *s = cls;
    struct req *q = *req_cls;

    if (!q)
        return;
    free(q->body);
    free(q);
    *req_cls = NULL;
    atomic_fetch_sub(&s->inflight, 1);
}

/* ---- start and stop ---------------------------------------------------------------- */

static void http_free(struct srv_http *s) {
    if (!s)
        return;
    for (unsigned i = 0; s->dbs && i < s->ndbs; i++)
        srv_db_close(s->dbs[i]);
    free(s->dbs);
    free(s->used);
    pthread_mutex_destroy(&s->write_lock);
    pthread_mutex_destroy(&s->pool_lock);
    pthread_cond_destroy(&s->pool_cond);
    free(s);
}

int srv_http_start(const struct srv_http_config *cfg, struct srv_http **ret, char *err,
                   size_t errlen) {
    struct srv_http *s;
    int r;

    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        snprintf(err, errlen, "this libmicrohttpd was built without TLS support");
        return -ENOTSUP;
    }
    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    pthread_mutex_init(&s->write_lock, NULL);
    pthread_mutex_init(&s->pool_lock, NULL);
    pthread_cond_init(&s->pool_cond, NULL);
    s->key = cfg->key;
    s->ndbs = cfg->threads;
    s->dbs = calloc(s->ndbs, sizeof(*s->dbs));
    s->used = calloc(s->ndbs, sizeof(*s->used));
    if (!s->dbs || !s->used) {
        http_free(s);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < s->ndbs; i++) {
        r = srv_db_open(cfg->db_path, false, &s->dbs[i], err, errlen);
        if (r < 0) {
            http_free(s);
            return r;
        }
    }
    s->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TLS | MHD_USE_ITC, 0, NULL, NULL,
        on_request, s, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)cfg->listen_fd,
        MHD_OPTION_HTTPS_MEM_CERT, cfg->tls_cert_pem, MHD_OPTION_HTTPS_MEM_KEY, cfg->tls_key_pem,
        MHD_OPTION_HTTPS_PRIORITIES, TLS_PRIORITIES, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)cfg->threads, MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->timeout_secs, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(err, errlen,
                 "libmicrohttpd cannot start (TLS certificate and key unusable by GnuTLS, or "
                 "out of resources)");
        http_free(s);
        return -EIO;
    }
    *ret = s;
    return 0;
}

void srv_http_stop(struct srv_http *s, unsigned grace_secs) {
    if (!s)
        return;
    /* Stop accepting; connections already open are still served. The
     * listening socket stays the caller's. */
    MHD_quiesce_daemon(s->daemon);
    for (unsigned i = 0; i < grace_secs * 100 && atomic_load(&s->inflight) > 0; i++)
        usleep(10000);
    if (atomic_load(&s->inflight) > 0)
        log_warn("stopping with %u request(s) still under way", atomic_load(&s->inflight));
    MHD_stop_daemon(s->daemon);
    http_free(s);
}
