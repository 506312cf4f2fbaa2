/* HTTPS for tpmlic-server: the only file that talks to libmicrohttpd. One
 * MHD daemon per listener (appliances; optionally a second one for the
 * admin API, /metrics and /health), each a pool of threads (epoll, TLS
 * through GnuTLS). A request takes a database connection from a pool of
 * as many connections as threads, and goes to logic.c (the appliance
 * protocol, answers signed here), api.c (the admin API) or the health and
 * metrics handlers. On SQLite, writes are serialised by one mutex in the
 * process (and SQLite's lock against other processes); on PostgreSQL the
 * decisions lock rows and run side by side: see docs/server.md.
 *
 * Limits (docs/server.md): 16 KiB bodies (413), open connections per
 * client address and in all (refused when accepted, before TLS), an idle
 * timeout, a token bucket per client address for activations (429).
 * Unknown paths 404, other methods 405 with Allow. Every request is logged
 * in one line with its client address (the X-Forwarded-For client when the
 * peer is a trusted proxy), and a license code shortened to its last
 * characters; never a token. */
#include "server/http.h"

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

#include "common/json.h"
#include "common/licensecode.h"
#include "common/log.h"
#include "common/macro.h"
#include "server/api.h"
#include "server/server.h"

#define DRAIN_LIMIT    (1024u * 1024u) /* body of a refused request read and dropped */
#define JSON_TYPE      "application/json"
#define METRICS_TYPE   "text/plain; version=0.0.4; charset=utf-8"
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
#define RATE_ADDRS     65536 /* client addresses the activation rate remembers */
#define WARN_EVERY     60    /* seconds between warnings about refused connections */

struct listener {
    struct srv_http *s;
    struct MHD_Daemon *daemon;
    bool appliances; /* /v1/activate, validate, deactivate */
    bool admin;      /* /admin/v1, /metrics */
};

struct srv_http {
    struct listener pub, adm;
    EVP_PKEY *key;
    pthread_mutex_t *write_lock;
    uint64_t window_secs;
    const char *ek_ca_dir;
    struct srv_metrics *m;
    const struct srv_cidrs *trusted;

    pthread_mutex_t pool_lock; /* guards dbs[] and used[] */
    pthread_cond_t pool_cond;
    struct srv_db **dbs;
    bool *used;
    unsigned ndbs;

    pthread_mutex_t inflight_lock;
    pthread_cond_t inflight_cond;
    unsigned inflight; /* requests whose headers are in and that are not done */

    struct srv_conns conns;
    struct srv_rate rate;
    unsigned max_per_ip, max_connections;

    pthread_mutex_t warn_lock;
    time_t warned;
    unsigned refused_since;
};

/* One per request (MHD's req_cls). */
struct req {
    struct listener *l;
    const struct srv_route *route;
    const char *params[SRV_API_PARAMS];
    char parambuf[512];
    char allow[64];
    int status;      /* != 0: refused before the handler (404, 405, 413) */
    char error[200]; /* its message */
    char *body;
    size_t len;
    size_t drained;
    bool close;
    struct timespec t0;
    char client[2 * SRV_ADDR_STRLEN + 8]; /* "192.0.2.7" or "192.0.2.7 via=10.0.0.2" */
    struct srv_addr client_addr;
};

/* ---- the database pool ---------------------------------------------------------- */

static struct srv_db *db_acquire(struct srv_http *s, unsigned *ret_slot) {
    struct srv_db *db = NULL;
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

static double elapsed(const struct req *q) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - q->t0.tv_sec) + (double)(t.tv_nsec - q->t0.tv_nsec) / 1e9;
}

static enum srv_route_kind kind_of(const struct req *q) {
    return q->route ? q->route->kind : SRV_ROUTE_OTHER;
}

/* One line per request, and its metrics. what: "ok", "refused REASON",
 * "error: ...". */
_printf_(5, 6) static void finish(struct req *q, const char *method, const char *url, int status,
                                  const char *fmt, ...) {
    char what[400];
    va_list ap;
    double t = elapsed(q);

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    srv_metrics_request(q->l->s->m, kind_of(q), status, t);
    log_info("%s %.80s %d %s client=%s (%.1f ms)", method, url, status, what, q->client, t * 1e3);
}

struct extra_header {
    const char *name, *value;
};

/* Answers are wiped when libmicrohttpd is done with them: one may carry a
 * token or a webhook secret (shown once). */
static void wipe_free(void *p) {
    free_secret_str(p);
}

static enum MHD_Result send_body(struct MHD_Connection *c, unsigned status, char *body,
                                 const char *type, bool close, const struct extra_header *extra,
                                 size_t nextra) {
    struct MHD_Response *mr;
    enum MHD_Result ret;

    if (!body)
        return MHD_NO;
    mr = MHD_create_response_from_buffer_with_free_callback(strlen(body), body, wipe_free);
    if (!mr) {
        free(body);
        return MHD_NO;
    }
    if (MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, type) != MHD_YES ||
        (close && MHD_add_response_header(mr, MHD_HTTP_HEADER_CONNECTION, "close") != MHD_YES)) {
        MHD_destroy_response(mr);
        return MHD_NO;
    }
    for (size_t i = 0; i < nextra; i++)
        if (extra[i].value &&
            MHD_add_response_header(mr, extra[i].name, extra[i].value) != MHD_YES) {
            MHD_destroy_response(mr);
            return MHD_NO;
        }
    ret = MHD_queue_response(c, status, mr);
    MHD_destroy_response(mr);
    return ret;
}

static char *dump(json_t *o) {
    return o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
}

static enum MHD_Result send_error(struct MHD_Connection *c, struct req *q, const char *method,
                                  const char *url, unsigned status, const char *msg) {
    _cleanup_(json_decrefp) json_t *o = json_pack("{s:s, s:i}", "error", msg, "code", status);
    struct extra_header allow = {MHD_HTTP_HEADER_ALLOW, status == 405 ? q->allow : NULL};
    finish(q, method, url, (int)status, "error: %s", msg);
    return send_body(c, status, dump(o), JSON_TYPE, q->close, &allow, 1);
}

/* ---- the appliance protocol -------------------------------------------------------- */

static enum srv_request request_of(enum srv_route_kind k) {
    return k == SRV_ROUTE_ACTIVATE   ? SRV_REQ_ACTIVATE
           : k == SRV_ROUTE_VALIDATE ? SRV_REQ_VALIDATE
                                     : SRV_REQ_DEACTIVATE;
}

/* Runs the request through logic.c and sends the (signed) answer. */
static enum MHD_Result answer(struct srv_http *s, struct MHD_Connection *c, struct req *q,
                              const char *method, const char *url) {
    _cleanup_(json_decrefp) json_t *request = NULL;
    _cleanup_free_ char *jws = NULL;
    struct srv_reply reply = {0};
    struct srv_ctx ctx = {.key = s->key,
                          .now = time(NULL),
                          .write_lock = s->write_lock,
                          .window_secs = s->window_secs,
                          .ek_ca_dir = s->ek_ca_dir};
    enum srv_request type = request_of(q->route->kind);
    char hint[LICENSE_CODE_LOG_BUFLEN], msg[200];
    unsigned slot, retry = 0;
    char *body;
    int r;

    if (type == SRV_REQ_ACTIVATE &&
        !srv_rate_take(&s->rate, &q->client_addr,
                       (uint64_t)q->t0.tv_sec * 1000 + (uint64_t)q->t0.tv_nsec / 1000000, &retry)) {
        char after[16];
        struct extra_header h = {"Retry-After", after};
        _cleanup_(json_decrefp) json_t *o = NULL;
        snprintf(after, sizeof(after), "%u", retry);
        snprintf(msg, sizeof(msg), "too many activations from this address: try again in %u s",
                 retry);
        o = json_pack("{s:s, s:i}", "error", msg, "code", 429);
        atomic_fetch_add(&s->m->rate_limited, 1);
        finish(q, method, url, 429, "error: %s", msg);
        return send_body(c, 429, dump(o), JSON_TYPE, false, &h, 1);
    }
    if (!q->len || cj_load_object(q->body, q->len, false, &request, msg, sizeof(msg)) < 0) {
        char m2[240];
        srv_metrics_decision(s->m, type, "malformed");
        /* "not JSON" for text that does not parse; a JSON array says so */
        snprintf(m2, sizeof(m2), "%s%s",
                 q->len && strncmp(msg, "malformed", 9) ? "" : "the body is not JSON: ",
                 q->len ? msg : "it is empty");
        return send_error(c, q, method, url, 400, m2);
    }
    ctx.db = db_acquire(s, &slot);
    r = srv_handle(&ctx, type, request, &reply);
    db_release(s, slot);
    if (r < 0) {
        atomic_fetch_add(&s->m->db_errors, 1);
        log_error("%s %s: %s: %s", method, url,
                  r == -EFBIG ? "signing the license certificate failed" : "the database failed",
                  strerror(-r));
        return send_error(c, q, method, url, r == -EBUSY ? 503 : 500,
                          r == -EBUSY   ? "the database is busy: try again"
                          : r == -EFBIG ? "internal error: the license certificate would not fit "
                                          "the appliance's TPM (the server log says why)"
                                        : "internal error: the database failed");
    }
    srv_metrics_decision(s->m, type, reply.reason);
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
    finish(q, method, url, reply.status, "%s%s%s license=%s activation=%.8s",
           reply.reason[0] ? "refused" : "ok", reply.reason[0] ? " " : "", reply.reason,
           license_code_for_log(reply.license, hint), reply.activation[0] ? reply.activation : "-");
    body = NULL;
    if (asprintf(&body, "{\"answer\":\"%s\"}", jws) < 0)
        return MHD_NO;
    return send_body(c, (unsigned)reply.status, body, JSON_TYPE, false, NULL, 0);
}

/* ---- health, metrics ------------------------------------------------------------------ */

static enum MHD_Result health(struct srv_http *s, struct MHD_Connection *c, struct req *q,
                              const char *method, const char *url) {
    _cleanup_(json_decrefp) json_t *o = NULL;
    unsigned slot;
    struct srv_db *db = db_acquire(s, &slot);
    int r = srv_db_ping(db);
    char err[200];

    snprintf(err, sizeof(err), "%s", r < 0 ? srv_db_errmsg(db) : "");
    db_release(s, slot);
    o = json_pack("{s:s, s:s, s:s}", "status", r < 0 ? "unavailable" : "ok", "database",
                  r < 0 ? "unavailable" : "ok", "version", TPMLIC_VERSION);
    if (r < 0)
        log_warn("health: the database does not answer: %s", err);
    finish(q, method, url, r < 0 ? 503 : 200, "%s", r < 0 ? "database unavailable" : "ok");
    return send_body(c, r < 0 ? 503 : 200, dump(o), JSON_TYPE, false, NULL, 0);
}

static void metrics_db(struct srv_db *db, struct srv_metrics_db *d) {
    memset(d, 0, sizeof(*d));
    d->db_up = srv_sql_scalar(db, "SELECT COUNT(*) FROM licenses", &d->licenses, 0) == 0 &&
               srv_sql_scalar(db, "SELECT COALESCE(SUM(active_activations), 0) FROM licenses",
                              &d->activations_active, 0) == 0 &&
               srv_sql_scalar(db,
                              "SELECT COUNT(*) FROM activations WHERE state = 'active' AND "
                              "EXISTS (SELECT 1 FROM flags WHERE flags.activation_id = "
                              "activations.id AND flags.cleared = 0)",
                              &d->activations_flagged, 0) == 0 &&
               srv_delivery_pending(db, &d->deliveries_pending) == 0;
}

static enum MHD_Result metrics(struct srv_http *s, struct MHD_Connection *c, struct req *q,
                               const char *method, const char *url) {
    struct srv_metrics_db d;
    unsigned slot;
    struct srv_db *db = db_acquire(s, &slot);
    char *text;

    metrics_db(db, &d);
    db_release(s, slot);
    atomic_store(&s->m->connections_open, srv_conns_total(&s->conns));
    /* this scrape counts before the text is made */
    finish(q, method, url, 200, "ok");
    text = srv_metrics_render(s->m, &d);
    return send_body(c, 200, text, METRICS_TYPE, false, NULL, 0);
}

/* ---- the admin API ---------------------------------------------------------------------- */

struct query_state {
    json_t *o;
    const char *duplicate;
};

static enum MHD_Result query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value) {
    struct query_state *st = cls;
    if (json_object_get(st->o, key)) {
        st->duplicate = key;
        return MHD_NO;
    }
    json_object_set_new(st->o, key, json_string(value ? value : ""));
    return MHD_YES;
}

static enum MHD_Result admin(struct srv_http *s, struct MHD_Connection *c, struct req *q,
                             const char *method, const char *url) {
    _cleanup_(json_decrefp) json_t *query = json_object();
    struct query_state st = {.o = query};
    struct srv_api_response resp;
    struct srv_api_env env = {
        .key = s->key, .now = time(NULL), .write_lock = s->write_lock, .ek_ca_dir = s->ek_ca_dir};
    struct srv_api_request req = {.method = method,
                                  .path = url,
                                  .query = query,
                                  .body = q->body,
                                  .len = q->len,
                                  .authorization = MHD_lookup_connection_value(
                                      c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION)};
    struct extra_header h = {MHD_HTTP_HEADER_WWW_AUTHENTICATE, NULL};
    unsigned slot;
    const char *e;

    if (!query)
        return MHD_NO;
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, query_arg, &st);
    if (st.duplicate || json_object_size(query) > 32) {
        char msg[120];
        snprintf(msg, sizeof(msg), "query parameter '%.40s' is given twice",
                 st.duplicate ? st.duplicate : "?");
        return send_error(c, q, method, url, 400, msg);
    }
    env.db = db_acquire(s, &slot);
    srv_api_handle(&env, q->route, q->params, &req, &resp);
    db_release(s, slot);
    if (resp.auth_failed) {
        h.value = "Bearer realm=\"tpmlic-server\"";
        atomic_fetch_add(&s->m->auth_failures, 1);
    }
    if (resp.status >= 500)
        atomic_fetch_add(&s->m->db_errors, 1);
    e = json_string_value(json_object_get(resp.body, "error"));
    finish(q, method, url, resp.status, "%s%s token=%s", e ? "error: " : "ok", e ? e : "",
           resp.token[0] ? resp.token : "-");
    {
        enum MHD_Result ret =
            send_body(c, (unsigned)resp.status, dump(resp.body), JSON_TYPE, false, &h, 1);
        srv_api_response_clear(&resp);
        return ret;
    }
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

static bool peer_address(struct MHD_Connection *c, struct srv_addr *ret) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    return ci && ci->client_addr && srv_addr_from_sockaddr(ci->client_addr, ret) == 0;
}

/* Who the client is: the peer, or the client a trusted proxy names. */
static void client_of(struct srv_http *s, struct MHD_Connection *c, struct req *q) {
    struct srv_addr peer = {0};
    char a[SRV_ADDR_STRLEN], p[SRV_ADDR_STRLEN];

    if (!peer_address(c, &peer)) {
        snprintf(q->client, sizeof(q->client), "?");
        return;
    }
    if (srv_client_address(&peer,
                           MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Forwarded-For"),
                           s->trusted, &q->client_addr)) {
        srv_addr_format(&q->client_addr, a);
        srv_addr_format(&peer, p);
        snprintf(q->client, sizeof(q->client), "%s via=%s", a, p);
    } else {
        srv_addr_format(&peer, a);
        snprintf(q->client, sizeof(q->client), "%s", a);
    }
}

/* The paths this listener serves, for a 404. */
static const char *paths_here(const struct listener *l) {
    if (l->appliances && l->admin)
        return "no such path: the paths are /v1/activate, /v1/validate, /v1/deactivate, /health, "
               "/metrics and the admin API under /admin/v1";
    if (l->appliances)
        return "no such path: the paths are /v1/activate, /v1/validate, /v1/deactivate and "
               "/health";
    return "no such path: the paths are /health, /metrics and the admin API under /admin/v1";
}

static bool served_here(const struct listener *l, const struct srv_route *r) {
    switch (r->kind) {
    case SRV_ROUTE_ACTIVATE:
    case SRV_ROUTE_VALIDATE:
    case SRV_ROUTE_DEACTIVATE:
        return l->appliances;
    case SRV_ROUTE_ADMIN:
    case SRV_ROUTE_METRICS:
        return l->admin;
    default:
        return true;
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls) {
    struct listener *l = cls;
    struct srv_http *s = l->s;
    struct req *q = *req_cls;

    if (!q) {
        size_t clen = content_length(c);
        bool method_ok = false;

        q = calloc(1, sizeof(*q));
        if (!q)
            return MHD_NO;
        *req_cls = q;
        q->l = l;
        pthread_mutex_lock(&s->inflight_lock);
        s->inflight++;
        pthread_mutex_unlock(&s->inflight_lock);
        clock_gettime(CLOCK_MONOTONIC, &q->t0);
        client_of(s, c, q);
        q->route = srv_route_find(method, url, &method_ok, q->allow, sizeof(q->allow), q->parambuf,
                                  sizeof(q->parambuf), q->params);
        if (q->route && !served_here(l, q->route))
            q->route = NULL;
        if (!q->route) {
            q->status = 404;
            snprintf(q->error, sizeof(q->error), "%s", paths_here(l));
        } else if (!method_ok) {
            q->status = 405;
            snprintf(q->error, sizeof(q->error), "method %.16s not allowed: use %s", method,
                     q->allow);
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
    switch (q->route->kind) {
    case SRV_ROUTE_HEALTH:
        return health(s, c, q, method, url);
    case SRV_ROUTE_METRICS:
        return metrics(s, c, q, method, url);
    case SRV_ROUTE_ADMIN:
        return admin(s, c, q, method, url);
    default:
        return answer(s, c, q, method, url);
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe) {
    struct srv_http *s = ((struct listener *)cls)->s;
    struct req *q = *req_cls;

    if (!q)
        return;
    if (q->body)
        secure_wipe(q->body, q->len);
    free(q->body);
    free(q);
    *req_cls = NULL;
    pthread_mutex_lock(&s->inflight_lock);
    if (--s->inflight == 0)
        pthread_cond_broadcast(&s->inflight_cond);
    pthread_mutex_unlock(&s->inflight_lock);
}

/* Refused connections are counted, and told in the log at most once a
 * minute (a flood must not flood the log too). */
static void refused(struct srv_http *s, const struct sockaddr *addr, int why) {
    time_t now = time(NULL);
    unsigned n;

    atomic_fetch_add(why == -EUSERS ? &s->m->refused_per_address : &s->m->refused_total, 1);
    pthread_mutex_lock(&s->warn_lock);
    n = ++s->refused_since;
    if (now - s->warned < WARN_EVERY) {
        pthread_mutex_unlock(&s->warn_lock);
        return;
    }
    s->warned = now;
    s->refused_since = 0;
    pthread_mutex_unlock(&s->warn_lock);
    {
        struct srv_addr a;
        char text[SRV_ADDR_STRLEN] = "?";
        if (srv_addr_from_sockaddr(addr, &a) == 0)
            srv_addr_format(&a, text);
        log_warn(
            "refusing connections: %u since the last warning; the latest from %s (%s)", n, text,
            why == -EUSERS ? "it has --max-connections-per-ip open" : "--max-connections are open");
    }
}

static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen) {
    struct srv_http *s = ((struct listener *)cls)->s;
    struct srv_addr a;
    int r;

    if (srv_addr_from_sockaddr(addr, &a) < 0)
        return MHD_YES;
    r = srv_conns_admit(&s->conns, &a);
    if (r < 0) {
        refused(s, addr, r);
        return MHD_NO;
    }
    return MHD_YES;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
    struct srv_http *s = ((struct listener *)cls)->s;
    struct srv_addr a;

    if (!peer_address(c, &a))
        return;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        srv_conns_open(&s->conns, &a);
    else if (toe == MHD_CONNECTION_NOTIFY_CLOSED)
        srv_conns_close(&s->conns, &a);
}

/* ---- start and stop ---------------------------------------------------------------- */

static void http_free(struct srv_http *s) {
    if (!s)
        return;
    for (unsigned i = 0; s->dbs && i < s->ndbs; i++)
        srv_db_close(s->dbs[i]);
    free(s->dbs);
    free(s->used);
    srv_conns_destroy(&s->conns);
    srv_rate_destroy(&s->rate);
    pthread_mutex_destroy(&s->pool_lock);
    pthread_cond_destroy(&s->pool_cond);
    pthread_mutex_destroy(&s->inflight_lock);
    pthread_cond_destroy(&s->inflight_cond);
    pthread_mutex_destroy(&s->warn_lock);
    free(s);
}

static struct MHD_Daemon *start_daemon(struct listener *l, int fd,
                                       const struct srv_http_config *cfg) {
    return MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TLS | MHD_USE_ITC, 0, on_accept,
        l, on_request, l, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_HTTPS_MEM_CERT,
        cfg->tls_cert_pem, MHD_OPTION_HTTPS_MEM_KEY, cfg->tls_key_pem, MHD_OPTION_HTTPS_PRIORITIES,
        TLS_PRIORITIES, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->threads,
        /* our own limit refuses first; MHD's is the backstop */
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)(cfg->max_connections + cfg->threads),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->timeout_secs, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, l, MHD_OPTION_NOTIFY_CONNECTION, on_connection, l, MHD_OPTION_END);
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
    pthread_mutex_init(&s->pool_lock, NULL);
    pthread_cond_init(&s->pool_cond, NULL);
    pthread_mutex_init(&s->inflight_lock, NULL);
    pthread_cond_init(&s->inflight_cond, NULL);
    pthread_mutex_init(&s->warn_lock, NULL);
    s->key = cfg->key;
    s->write_lock = cfg->write_lock;
    s->window_secs = cfg->window_secs;
    s->ek_ca_dir = cfg->ek_ca_dir;
    s->m = cfg->metrics;
    s->trusted = cfg->trusted_proxies;
    s->max_per_ip = cfg->max_connections_per_ip;
    s->max_connections = cfg->max_connections;
    s->ndbs = cfg->threads * (cfg->admin_fd >= 0 ? 2 : 1);
    s->dbs = calloc(s->ndbs, sizeof(*s->dbs));
    s->used = calloc(s->ndbs, sizeof(*s->used));
    if (!s->dbs || !s->used ||
        srv_conns_init(&s->conns, cfg->max_connections_per_ip, cfg->max_connections) < 0 ||
        srv_rate_init(&s->rate, cfg->activation_rate, cfg->activation_burst, RATE_ADDRS) < 0) {
        http_free(s);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < s->ndbs; i++) {
        r = srv_db_open(cfg->db_spec, false, &s->dbs[i], err, errlen);
        if (r < 0) {
            http_free(s);
            return r;
        }
    }
    s->pub = (struct listener){.s = s, .appliances = true, .admin = cfg->admin_fd < 0};
    s->adm = (struct listener){.s = s, .appliances = false, .admin = true};
    s->pub.daemon = start_daemon(&s->pub, cfg->listen_fd, cfg);
    if (s->pub.daemon && cfg->admin_fd >= 0)
        s->adm.daemon = start_daemon(&s->adm, cfg->admin_fd, cfg);
    if (!s->pub.daemon || (cfg->admin_fd >= 0 && !s->adm.daemon)) {
        snprintf(err, errlen,
                 "libmicrohttpd cannot start (TLS certificate and key unusable by GnuTLS, or "
                 "out of resources)");
        if (s->pub.daemon)
            MHD_stop_daemon(s->pub.daemon);
        http_free(s);
        return -EIO;
    }
    *ret = s;
    return 0;
}

void srv_http_stop(struct srv_http *s, unsigned grace_secs) {
    struct timespec deadline;

    if (!s)
        return;
    /* Stop accepting; connections already open are still served. The
     * listening sockets stay the caller's. */
    MHD_quiesce_daemon(s->pub.daemon);
    if (s->adm.daemon)
        MHD_quiesce_daemon(s->adm.daemon);
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += grace_secs;
    pthread_mutex_lock(&s->inflight_lock);
    while (s->inflight > 0 &&
           pthread_cond_timedwait(&s->inflight_cond, &s->inflight_lock, &deadline) == 0)
        ;
    if (s->inflight > 0)
        log_warn("stopping with %u request(s) still under way", s->inflight);
    pthread_mutex_unlock(&s->inflight_lock);
    MHD_stop_daemon(s->pub.daemon);
    if (s->adm.daemon)
        MHD_stop_daemon(s->adm.daemon);
    http_free(s);
}
