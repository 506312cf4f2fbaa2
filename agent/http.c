/* The agent's HTTP/1.1 server on its UNIX socket (http.h): the only file
 * that talks to libmicrohttpd. Per connection: the peer's credentials, read
 * once when it connects, and a body buffer reused by its requests. Per
 * request: route lookup and permission on the first handler call, body
 * collection, the handler on the last call. Responses are queued on a later
 * call than the first one, because MHD closes the connection after a
 * response queued "early"; that is exactly what 413 and refusals of a
 * request with a body want (the body is never read), and what nothing else
 * wants (keep-alive).
 *
 * Fair limits live in one place, "limits" below: a table of connections per
 * uid and the list of live connections, under one lock taken when a
 * connection opens or closes and by the sweep thread that enforces the
 * header timeout, never per request (a request only stores its deadline,
 * an atomic). */
#include "agent/http.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <systemd/sd-daemon.h>

#include "common/macro.h"

#define INLINE_BODY     1024   /* most bodies (a check) fit the connection itself */
#define PEER_GROUPS_MAX 65536u /* NGROUPS_MAX of Linux */
#define DEFAULT_TEXT    "text/plain; charset=utf-8"
#define JSON_TYPE       "application/json"
#define DRAIN_LIMIT     (1024u * 1024u) /* body of a refused request read and dropped */

enum job_state { JOB_NONE, JOB_RUNNING, JOB_DONE };

struct uid_count {
    uid_t uid;
    unsigned count; /* 0: the slot is free */
};

struct conn;

/* Who holds which connections. Open addressing with linear probing: never
 * more uids than connections, and nslots >= 2 * max_connections. */
struct limits {
    pthread_mutex_t lock; /* guards all below */
    pthread_cond_t cond;  /* wakes the sweep thread to stop */
    struct uid_count *slots;
    size_t nslots; /* a power of two */
    unsigned admitted;
    struct conn *live; /* the admitted connections, for the sweep */
    bool stop;
    pthread_t sweeper;
    bool sweeper_started;
};

struct http_server {
    struct MHD_Daemon *daemon;
    struct http_server_config cfg; /* defaults filled in */
    char **allow;                  /* per route: the Allow value of its path */

    atomic_uint_fast64_t requests;
    atomic_uint_fast64_t responses_4xx;
    atomic_uint_fast64_t responses_5xx;
    atomic_uint_fast64_t connections_total;
    atomic_uint_fast64_t connections_refused;
    atomic_uint_fast64_t connections_too_slow;
    atomic_uint connections_open;
    struct limits lim;

    pthread_mutex_t lock; /* guards the three below */
    pthread_cond_t cond;
    unsigned blocking_running;
    bool stopping;
};

/* One per connection, the MHD socket context. */
struct conn {
    struct http_server *server;
    struct MHD_Connection *mhd;
    struct http_peer peer;
    int fd;
    bool admitted;                /* counted in the limits (and in their list) */
    struct conn *prev, *next;     /* in limits.live */
    _Atomic uint64_t deadline_ns; /* CLOCK_MONOTONIC; 0: none (a handler runs, an answer goes) */

    /* The request in progress; reset when the next one starts. */
    const struct http_route *route;
    bool refused;     /* resp holds the refusal, to send on the last call */
    bool close_after; /* ... with Connection: close */
    size_t clen;      /* Content-Length, 0 when none */
    size_t drained;   /* body bytes of a refused request, read and dropped */
    struct http_response resp;
    char *body; /* inline_body or heap */
    size_t body_len, body_cap;
    enum job_state job;
    struct http_request job_req;

    char inline_body[INLINE_BODY];
    gid_t groups[]; /* peer.groups points here */
};

/* The request context of a request whose connection had no context (out of
 * memory at accept time). */
static char no_conn_marker;

/* ---- responses ------------------------------------------------------------ */

static void response_clear(struct http_response *r) {
    json_decref(r->json);
    free(r->text);
    *r = (struct http_response){0};
}

/* Replaces what is not printable ASCII with '?': for request-derived text
 * put into messages, and for messages jansson refuses (not UTF-8). */
static void sanitize(char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            *s = '?';
}

static void respond_errorv(struct http_response *resp, int status, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void respond_errorv(struct http_response *resp, int status, const char *fmt, va_list ap) {
    char msg[1024];
    json_t *j;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    j = json_pack("{s:s, s:i}", "error", msg, "code", status);
    if (!j) {
        sanitize(msg);
        j = json_pack("{s:s, s:i}", "error", msg, "code", status);
    }
    response_clear(resp);
    resp->status = status;
    resp->json = j; /* NULL (out of memory) gives the static 500 */
}

void http_respond_error(struct http_response *resp, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    respond_errorv(resp, status, fmt, ap);
    va_end(ap);
}

void http_respond_json(struct http_response *resp, int status, json_t *body) {
    response_clear(resp);
    resp->status = status;
    resp->json = body;
}

void http_respond_text(struct http_response *resp, int status, const char *content_type,
                       char *text) {
    response_clear(resp);
    resp->status = status;
    resp->text = text;
    resp->content_type = content_type;
}

static void count_response(struct http_server *s, unsigned status) {
    atomic_fetch_add_explicit(&s->requests, 1, memory_order_relaxed);
    if (status >= 500)
        atomic_fetch_add_explicit(&s->responses_5xx, 1, memory_order_relaxed);
    else if (status >= 400)
        atomic_fetch_add_explicit(&s->responses_4xx, 1, memory_order_relaxed);
}

static enum MHD_Result queue_static_500(struct http_server *s, struct MHD_Connection *c,
                                        const char *body) {
    struct MHD_Response *mr;
    enum MHD_Result ret;

    mr = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    if (!mr)
        return MHD_NO;
    if (MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, JSON_TYPE) != MHD_YES) {
        MHD_destroy_response(mr);
        return MHD_NO;
    }
    ret = MHD_queue_response(c, MHD_HTTP_INTERNAL_SERVER_ERROR, mr);
    MHD_destroy_response(mr);
    count_response(s, MHD_HTTP_INTERNAL_SERVER_ERROR);
    return ret;
}

/* Queues r and clears it; close: and then close the connection. */
static enum MHD_Result queue(struct http_server *s, struct MHD_Connection *c,
                             struct http_response *r, bool close) {
    struct MHD_Response *mr;
    enum MHD_Result ret;
    const char *ctype;
    char *body;
    size_t len;

    if (r->status < 100 || r->status > 999 || (!r->json && !r->text)) {
        response_clear(r);
        return queue_static_500(s, c,
                                "{\"error\":\"internal error: the handler gave no answer\","
                                "\"code\":500}");
    }
    if (r->json) {
        body = json_dumps(r->json, JSON_COMPACT);
        ctype = JSON_TYPE;
    } else {
        body = TAKE_PTR(r->text);
        ctype = r->content_type ? r->content_type : DEFAULT_TEXT;
    }
    if (!body) {
        response_clear(r);
        return queue_static_500(s, c, "{\"error\":\"out of memory\",\"code\":500}");
    }
    len = strlen(body);
    mr = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!mr) {
        free(body);
        response_clear(r);
        return MHD_NO;
    }
    if (MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) != MHD_YES ||
        (r->allow && MHD_add_response_header(mr, MHD_HTTP_HEADER_ALLOW, r->allow) != MHD_YES) ||
        (close && MHD_add_response_header(mr, MHD_HTTP_HEADER_CONNECTION, "close") != MHD_YES)) {
        MHD_destroy_response(mr);
        response_clear(r);
        return MHD_NO;
    }
    ret = MHD_queue_response(c, (unsigned)r->status, mr);
    MHD_destroy_response(mr);
    count_response(s, (unsigned)r->status);
    response_clear(r);
    return ret;
}

/* ---- JSON bodies ----------------------------------------------------------- */

static const char *json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    default:
        return "an object";
    }
}

int http_parse_json_object(const struct http_request *req, bool allow_empty, json_t **ret,
                           struct http_response *resp) {
    json_error_t err;
    json_t *v;
    bool blank = true;

    for (size_t i = 0; i < req->body_len; i++) {
        char ch = req->body[i];
        if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n') {
            blank = false;
            break;
        }
    }
    if (blank) {
        if (!allow_empty) {
            http_respond_error(resp, 400, "the request body is empty: a JSON object is expected");
            return -EINVAL;
        }
        v = json_object();
        if (!v) {
            http_respond_error(resp, 500, "out of memory");
            return -ENOMEM;
        }
        *ret = v;
        return 0;
    }
    v = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (!v) {
        http_respond_error(resp, 400, "malformed JSON at line %d column %d: %s", err.line,
                           err.column, err.text);
        return -EINVAL;
    }
    if (!json_is_object(v)) {
        http_respond_error(resp, 400, "the request body must be a JSON object, not %s",
                           json_kind(v));
        json_decref(v);
        return -EINVAL;
    }
    *ret = v;
    return 0;
}

/* ---- permissions ----------------------------------------------------------- */

bool http_peer_in_group(const struct http_peer *p, gid_t gid) {
    if (!p->known)
        return false;
    if (p->gid == gid)
        return true;
    for (int i = 0; i < p->ngroups; i++)
        if (p->groups[i] == gid)
            return true;
    return false;
}

static bool permitted(const struct http_server *s, const struct http_peer *p, enum http_perm perm) {
    const struct http_server_config *c = &s->cfg;

    if (!p->known)
        return false;
    if (p->uid == 0)
        return true;
    /* Operators may also ask what services ask (tpmlicctl status). */
    if (c->have_admin_gid && http_peer_in_group(p, c->admin_gid))
        return true;
    return perm == HTTP_PERM_SERVICE && c->have_service_gid &&
           http_peer_in_group(p, c->service_gid);
}

static void refuse_permission(const struct http_server *s, const struct http_peer *p,
                              const char *method, const char *path, enum http_perm perm,
                              struct http_response *resp) {
    const struct http_server_config *c = &s->cfg;
    const char *svc = c->service_group, *adm = c->admin_group;
    char who[256];

    if (!p->known) {
        http_respond_error(resp, 403,
                           "permission denied: %s %s: the caller's credentials could not be read",
                           method, path);
        return;
    }
    if (perm == HTTP_PERM_ADMIN) {
        if (c->have_admin_gid)
            snprintf(who, sizeof(who), "root or membership of group %s", adm);
        else
            snprintf(who, sizeof(who), "root (group %s does not exist)", adm);
    } else if (c->have_service_gid && c->have_admin_gid) {
        snprintf(who, sizeof(who), "root or membership of group %s or %s", svc, adm);
    } else if (c->have_service_gid) {
        snprintf(who, sizeof(who), "root or membership of group %s", svc);
    } else if (c->have_admin_gid) {
        snprintf(who, sizeof(who), "root or membership of group %s (group %s does not exist)", adm,
                 svc);
    } else {
        snprintf(who, sizeof(who), "root (groups %s and %s do not exist)", svc, adm);
    }
    http_respond_error(resp, 403, "permission denied: %s %s needs %s", method, path, who);
}

/* ---- routing --------------------------------------------------------------- */

/* Decides on the first call what needs no body: which route, and whether
 * the peer may call it. Returns the route, or NULL with resp filled. */
static const struct http_route *route_request(struct http_server *s, const struct http_peer *p,
                                              const char *method, const char *path,
                                              struct http_response *resp) {
    const struct http_route *path_match = NULL;
    size_t path_idx = 0;

    for (size_t i = 0; i < s->cfg.nroutes; i++) {
        const struct http_route *r = &s->cfg.routes[i];
        if (strcmp(r->path, path) != 0)
            continue;
        if (strcmp(r->method, method) == 0) {
            if (!permitted(s, p, r->perm)) {
                refuse_permission(s, p, method, path, r->perm, resp);
                return NULL;
            }
            return r;
        }
        if (!path_match) {
            path_match = r;
            path_idx = i;
        }
    }
    char m[32], pa[256];
    snprintf(m, sizeof(m), "%s", method);
    snprintf(pa, sizeof(pa), "%s", path);
    sanitize(m);
    sanitize(pa);
    if (!path_match) {
        http_respond_error(resp, 404, "no such endpoint: %s %s", m, pa);
        return NULL;
    }
    http_respond_error(resp, 405, "method %s is not allowed on %s; allowed: %s", m, pa,
                       s->allow[path_idx]);
    resp->allow = s->allow[path_idx];
    return NULL;
}

static int build_allow(struct http_server *s) {
    const struct http_server_config *c = &s->cfg;

    s->allow = calloc(c->nroutes, sizeof(char *));
    if (!s->allow)
        return -ENOMEM;
    for (size_t i = 0; i < c->nroutes; i++) {
        size_t len = 0;
        for (size_t j = 0; j < c->nroutes; j++)
            if (strcmp(c->routes[j].path, c->routes[i].path) == 0)
                len += strlen(c->routes[j].method) + 2;
        s->allow[i] = calloc(1, len + 1);
        if (!s->allow[i])
            return -ENOMEM;
        for (size_t j = 0; j < c->nroutes; j++) {
            if (strcmp(c->routes[j].path, c->routes[i].path) != 0)
                continue;
            if (s->allow[i][0])
                strcat(s->allow[i], ", ");
            strcat(s->allow[i], c->routes[j].method);
        }
    }
    return 0;
}

/* ---- limits ------------------------------------------------------------------ */

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void set_deadline(struct conn *c, unsigned secs) {
    atomic_store_explicit(&c->deadline_ns, secs ? mono_ns() + (uint64_t)secs * 1000000000u : 0,
                          memory_order_relaxed);
}

/* May use the reserved connections. */
static bool privileged(const struct http_server *s, const struct http_peer *p) {
    return p->known &&
           (p->uid == 0 || (s->cfg.have_admin_gid && http_peer_in_group(p, s->cfg.admin_gid)));
}

static size_t uid_hash(const struct limits *l, uid_t uid) {
    return ((size_t)uid * 0x9e3779b1u) & (l->nslots - 1);
}

/* The slot of uid, or the free slot where it goes. Under lim.lock. */
static struct uid_count *uid_slot(struct limits *l, uid_t uid) {
    size_t i = uid_hash(l, uid);

    while (l->slots[i].count && l->slots[i].uid != uid)
        i = (i + 1) & (l->nslots - 1);
    return &l->slots[i];
}

/* Frees slot i, moving back the entries of its probe run that belong
 * before it (no tombstones). Under lim.lock. */
static void uid_slot_free(struct limits *l, size_t i) {
    size_t mask = l->nslots - 1, j = i;

    for (;;) {
        size_t k;
        j = (j + 1) & mask;
        if (!l->slots[j].count)
            break;
        k = uid_hash(l, l->slots[j].uid);
        /* j's entry may move to i when its home k is not in (i, j], cyclically */
        if (i <= j ? (k <= i || k > j) : (k <= i && k > j)) {
            l->slots[i] = l->slots[j];
            i = j;
        }
    }
    l->slots[i].count = 0;
}

enum admission { ADMITTED, OVER_UID_LIMIT, OVER_SHARED_LIMIT };

/* Counts c in, or says which limit it is over (and *ret_held, what its
 * uid holds). Connections whose credentials are unknown count as one
 * ordinary caller, uid -1. */
static enum admission admit(struct http_server *s, struct conn *c, unsigned *ret_held) {
    struct limits *l = &s->lim;
    bool priv = privileged(s, &c->peer);
    unsigned shared = s->cfg.max_connections - s->cfg.reserved_connections;
    enum admission a = ADMITTED;
    struct uid_count *u;

    pthread_mutex_lock(&l->lock);
    u = uid_slot(l, c->peer.uid);
    *ret_held = u->count;
    if (c->peer.uid != 0 && u->count >= s->cfg.max_per_uid)
        a = OVER_UID_LIMIT;
    else if (!priv && l->admitted >= shared)
        a = OVER_SHARED_LIMIT;
    if (a == ADMITTED) {
        if (!u->count)
            u->uid = c->peer.uid;
        u->count++;
        l->admitted++;
        c->admitted = true;
        c->next = l->live;
        if (l->live)
            l->live->prev = c;
        l->live = c;
    }
    pthread_mutex_unlock(&l->lock);
    return a;
}

/* Counts c out: on every close, whatever ended it (NOTIFY_CLOSED). */
static void release(struct http_server *s, struct conn *c) {
    struct limits *l = &s->lim;
    struct uid_count *u;

    if (!c->admitted)
        return;
    pthread_mutex_lock(&l->lock);
    u = uid_slot(l, c->peer.uid);
    if (u->count && --u->count == 0)
        uid_slot_free(l, (size_t)(u - l->slots));
    l->admitted--;
    if (c->prev)
        c->prev->next = c->next;
    else
        l->live = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->admitted = false;
    pthread_mutex_unlock(&l->lock);
}

/* Answers 503 on a connection just accepted, before anything is read, and
 * shuts it down: MHD then sees the end of the stream and closes it. A fresh
 * socket's buffer takes the answer whole; if not, the close is the answer. */
static void refuse_connection(struct http_server *s, struct conn *c, enum admission a,
                              unsigned held) {
    struct http_response r = {0};
    _cleanup_free_ char *body = NULL;
    char buf[1024];
    int n;

    if (a == OVER_UID_LIMIT)
        http_respond_error(&r, 503,
                           "connection limit reached: uid %u already holds %u connections, the "
                           "limit per caller; close some or retry later",
                           (unsigned)c->peer.uid, held);
    else
        http_respond_error(&r, 503,
                           "connection limit reached: the %u connections open to callers other "
                           "than root and group %s are all taken; retry later",
                           s->cfg.max_connections - s->cfg.reserved_connections,
                           s->cfg.admin_group);
    body = r.json ? json_dumps(r.json, JSON_COMPACT) : NULL;
    response_clear(&r);
    atomic_fetch_add_explicit(&s->connections_refused, 1, memory_order_relaxed);
    count_response(s, 503);
    if (body) {
        n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 503 Service Unavailable\r\nContent-Type: " JSON_TYPE
                     "\r\nContent-Length: %zu\r\nConnection: close\r\nRetry-After: 1\r\n\r\n%s",
                     strlen(body), body);
        if (n > 0 && (size_t)n < sizeof(buf))
            (void)!send(c->fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    shutdown(c->fd, SHUT_RDWR);
}

/* The header timeout: closes (shuts down) every admitted connection past
 * its deadline. MHD's own timeout is for idleness, which a client that
 * trickles a byte now and then never is. The list is under the lock that
 * NOTIFY_CLOSED takes before MHD closes a socket, so every fd seen here is
 * still that connection's. */
static void *sweep_main(void *arg) {
    struct http_server *s = arg;
    struct limits *l = &s->lim;
    /* a quarter of the header timeout, within 0.1 to 1 s */
    uint64_t period = (uint64_t)s->cfg.header_timeout_secs * 250000000u;

    if (period > 1000000000u)
        period = 1000000000u;
    if (period < 100000000u)
        period = 100000000u;
    pthread_mutex_lock(&l->lock);
    while (!l->stop) {
        struct timespec ts;
        uint64_t now, t;

        t = mono_ns() + period;
        ts.tv_sec = (time_t)(t / 1000000000u);
        ts.tv_nsec = (long)(t % 1000000000u);
        pthread_cond_timedwait(&l->cond, &l->lock, &ts);
        if (l->stop)
            break;
        now = mono_ns();
        for (struct conn *c = l->live; c; c = c->next) {
            uint64_t d = atomic_load_explicit(&c->deadline_ns, memory_order_relaxed);
            if (!d || d > now)
                continue;
            atomic_store_explicit(&c->deadline_ns, 0, memory_order_relaxed);
            /* counted first: whoever sees the close sees it counted */
            atomic_fetch_add_explicit(&s->connections_too_slow, 1, memory_order_relaxed);
            shutdown(c->fd, SHUT_RDWR);
        }
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

static void limits_init(struct limits *l) {
    pthread_condattr_t ca;

    pthread_mutex_init(&l->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cond, &ca);
    pthread_condattr_destroy(&ca);
}

static int limits_alloc(struct http_server *s) {
    struct limits *l = &s->lim;
    size_t n = 4;

    while (n < 2 * (size_t)s->cfg.max_connections + 1)
        n *= 2;
    l->slots = calloc(n, sizeof(*l->slots));
    if (!l->slots)
        return -ENOMEM;
    l->nslots = n;
    return 0;
}

static int limits_start(struct http_server *s) {
    int r = pthread_create(&s->lim.sweeper, NULL, sweep_main, s);
    if (r != 0)
        return -r;
    s->lim.sweeper_started = true;
    return 0;
}

static void limits_stop(struct http_server *s) {
    struct limits *l = &s->lim;

    if (!l->sweeper_started)
        return;
    pthread_mutex_lock(&l->lock);
    l->stop = true;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
    pthread_join(l->sweeper, NULL);
    l->sweeper_started = false;
}

/* ---- connections ----------------------------------------------------------- */

static void body_release(struct conn *c) {
    if (c->body != c->inline_body)
        free(c->body);
    c->body = c->inline_body;
    c->body_cap = sizeof(c->inline_body);
    c->body_len = 0;
}

/* Reads the peer's credentials: once per connection. A peer whose groups
 * cannot be read keeps its primary gid only (refusals, never grants). */
static struct conn *conn_new(struct http_server *s, struct MHD_Connection *mc) {
    const union MHD_ConnectionInfo *ci;
    struct ucred uc = {0};
    socklen_t len = sizeof(uc);
    gid_t small[64];
    _cleanup_free_ gid_t *big = NULL;
    const gid_t *groups = small;
    size_t ngroups = 0;
    bool known = false;
    struct conn *c;
    int fd;

    ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    fd = ci ? ci->connect_fd : -1;
    if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == 0 && len == sizeof(uc)) {
        known = true;
        len = sizeof(small);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, small, &len) == 0) {
            ngroups = len / sizeof(gid_t);
        } else if (errno == ERANGE && len <= PEER_GROUPS_MAX * sizeof(gid_t)) {
            big = malloc(len);
            if (big && getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, big, &len) == 0) {
                groups = big;
                ngroups = len / sizeof(gid_t);
            }
        }
    }
    c = calloc(1, sizeof(*c) + ngroups * sizeof(gid_t));
    if (!c)
        return NULL;
    c->server = s;
    c->mhd = mc;
    c->fd = fd;
    if (ngroups)
        memcpy(c->groups, groups, ngroups * sizeof(gid_t));
    c->peer = (struct http_peer){
        .pid = uc.pid,
        .uid = known ? uc.uid : (uid_t)-1,
        .gid = known ? uc.gid : (gid_t)-1,
        .groups = c->groups,
        .ngroups = (int)ngroups,
        .known = known,
    };
    body_release(c);
    return c;
}

static void conn_free(struct conn *c) {
    if (!c)
        return;
    response_clear(&c->resp);
    body_release(c);
    free(c);
}

static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    struct http_server *s = cls;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        struct conn *c;
        unsigned held;
        enum admission a;

        atomic_fetch_add_explicit(&s->connections_open, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->connections_total, 1, memory_order_relaxed);
        *socket_context = c = conn_new(s, mc);
        if (!c)
            return;
        set_deadline(c, s->cfg.header_timeout_secs);
        a = admit(s, c, &held);
        if (a != ADMITTED)
            refuse_connection(s, c, a, held);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (*socket_context)
            release(s, *socket_context);
        conn_free(*socket_context);
        *socket_context = NULL;
        atomic_fetch_sub_explicit(&s->connections_open, 1, memory_order_relaxed);
    }
}

/* The request is over (answered, or the client went away). */
static void on_completed(void *cls, struct MHD_Connection *mc, void **req_cls,
                         enum MHD_RequestTerminationCode toe) {
    struct http_server *s = cls;
    struct conn *c = *req_cls;

    if (!c || *req_cls == &no_conn_marker)
        return;
    if (c->job != JOB_NONE) {
        pthread_mutex_lock(&s->lock);
        s->blocking_running--;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
    }
    /* The next request's headers: a connection that stays silent is MHD's
     * to close (idle); one that starts a request late still gets the
     * header timeout to finish it. */
    set_deadline(c, s->cfg.timeout_secs + s->cfg.header_timeout_secs);
    response_clear(&c->resp);
    body_release(c); /* an idle connection holds no big buffer */
    c->route = NULL;
    c->refused = c->close_after = false;
    c->job = JOB_NONE;
    *req_cls = NULL;
}

/* Appends to the request body: 0, -E2BIG past max_body, -ENOMEM. */
static int body_append(struct conn *c, size_t max_body, const char *data, size_t n) {
    size_t need = c->body_len + n + 1;

    if (c->body_len + n > max_body)
        return -E2BIG;
    if (need > c->body_cap) {
        size_t cap = c->body_cap * 2;
        char *nb;
        if (cap < need)
            cap = need;
        if (c->clen + 1 > cap && c->clen <= max_body)
            cap = c->clen + 1; /* the announced size, at once */
        if (cap > max_body + 1)
            cap = max_body + 1;
        nb = c->body == c->inline_body ? malloc(cap) : realloc(c->body, cap);
        if (!nb)
            return -ENOMEM;
        if (c->body == c->inline_body)
            memcpy(nb, c->body, c->body_len);
        c->body = nb;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, data, n);
    c->body_len += n;
    c->body[c->body_len] = '\0';
    return 0;
}

/* ---- handlers that may block ------------------------------------------------ */

static void *job_main(void *arg) {
    struct conn *c = arg;
    struct http_server *s = c->server;

    c->route->handler(s->cfg.userdata, &c->job_req, &c->resp);
    c->job = JOB_DONE;
    /* The count drops when the answer is sent (on_completed): stopping
     * waits for that, so the daemon outlives this call. */
    MHD_resume_connection(c->mhd);
    return NULL;
}

static enum MHD_Result start_job(struct http_server *s, struct conn *c) {
    pthread_attr_t attr;
    pthread_t t;
    bool busy;
    int r;

    pthread_mutex_lock(&s->lock);
    busy = s->stopping || s->blocking_running >= s->cfg.max_blocking;
    if (!busy)
        s->blocking_running++;
    pthread_mutex_unlock(&s->lock);
    if (busy) {
        http_respond_error(&c->resp, 503, "busy: too many long requests at once; retry later");
        return queue(s, c->mhd, &c->resp, false);
    }

    c->job = JOB_RUNNING;
    MHD_suspend_connection(c->mhd);
    r = pthread_attr_init(&attr);
    if (r == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        r = pthread_create(&t, &attr, job_main, c);
        pthread_attr_destroy(&attr);
    }
    if (r != 0) {
        http_respond_error(&c->resp, 503, "busy: cannot start a thread: %s", strerror(r));
        c->job = JOB_DONE;
        MHD_resume_connection(c->mhd);
    }
    return MHD_YES;
}

/* ---- the request handler ----------------------------------------------------- */

static bool parse_size(const char *v, size_t *ret) {
    char *end;
    unsigned long long n;

    if (!v || *v < '0' || *v > '9')
        return false;
    errno = 0;
    n = strtoull(v, &end, 10);
    if (errno || *end || n > SIZE_MAX)
        return false;
    *ret = (size_t)n;
    return true;
}

static bool expects_continue(struct MHD_Connection *mc) {
    const char *v = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
    return v && strcasecmp(v, "100-continue") == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls) {
    struct http_server *s = cls;
    struct conn *c = *req_cls;

    if (!c) {
        /* First call: headers are in, the body (if any) is not. */
        const union MHD_ConnectionInfo *ci;

        ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        c = ci ? ci->socket_context : NULL;
        if (!c) {
            *req_cls = &no_conn_marker;
            return queue_static_500(s, mc, "{\"error\":\"out of memory\",\"code\":500}");
        }
        if (!c->admitted)
            return MHD_NO; /* refused when it opened; read from what was buffered */
        set_deadline(c, s->cfg.header_timeout_secs); /* for the body */
        *req_cls = c;
        response_clear(&c->resp);
        body_release(c);
        c->job = JOB_NONE;
        c->refused = c->close_after = false;
        c->drained = 0;
        c->clen = 0;
        parse_size(MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH),
                   &c->clen);

        c->route = route_request(s, &c->peer, method, url, &c->resp);
        if (c->route && c->clen > s->cfg.max_body) {
            c->route = NULL;
            c->close_after = true;
            http_respond_error(&c->resp, 413,
                               "request body of %zu bytes is larger than the limit of %zu bytes",
                               c->clen, s->cfg.max_body);
        }
        if (!c->route) {
            c->refused = true;
            /* A client that waits for "100 Continue" has sent no body: the
             * answer goes now, and MHD closes the connection. So it does
             * for a body too big to drain, which is never read. A smaller
             * body is drained (read, not kept) so that the client, busy
             * sending it, does not miss the answer. */
            if (c->clen > DRAIN_LIMIT || expects_continue(mc))
                return queue(s, mc, &c->resp, true);
        }
        return MHD_YES;
    }
    if (c == (void *)&no_conn_marker)
        return MHD_NO;

    if (*upload_data_size) {
        size_t n = *upload_data_size;
        int r;

        *upload_data_size = 0;
        if (!c->refused) {
            r = body_append(c, s->cfg.max_body, upload_data, n);
            if (r == 0)
                return MHD_YES;
            /* Past the limit in a chunked body, or out of memory. */
            c->refused = c->close_after = true;
            c->drained = c->body_len;
            body_release(c);
            if (r == -E2BIG)
                http_respond_error(&c->resp, 413, "request body larger than the limit of %zu bytes",
                                   s->cfg.max_body);
            else
                http_respond_error(&c->resp, 500, "out of memory");
        }
        c->drained += n;
        /* A refused chunked body beyond what is worth draining: MHD cannot
         * answer in the middle of a body, so close without an answer. */
        return c->drained > DRAIN_LIMIT ? MHD_NO : MHD_YES;
    }

    /* Last call: the whole request is in. */
    set_deadline(c, 0);
    if (c->refused || c->job == JOB_DONE)
        return queue(s, mc, &c->resp, c->close_after);
    if (c->job == JOB_RUNNING)
        return MHD_YES; /* cannot happen: suspended */

    c->job_req = (struct http_request){
        .method = method,
        .path = url,
        .body = c->body_len ? c->body : NULL,
        .body_len = c->body_len,
        .peer = &c->peer,
    };
    if (c->route->flags & HTTP_ROUTE_BLOCKING)
        return start_job(s, c);
    c->route->handler(s->cfg.userdata, &c->job_req, &c->resp);
    return queue(s, mc, &c->resp, false);
}

/* ---- start and stop ------------------------------------------------------------ */

static int check_routes(const struct http_server_config *c) {
    if (!c->routes || c->nroutes == 0)
        return -EINVAL;
    for (size_t i = 0; i < c->nroutes; i++) {
        const struct http_route *r = &c->routes[i];
        if (!r->method || !*r->method || !r->path || r->path[0] != '/' || !r->handler ||
            (r->perm != HTTP_PERM_SERVICE && r->perm != HTTP_PERM_ADMIN))
            return -EINVAL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->routes[j].path, r->path) == 0 &&
                strcmp(c->routes[j].method, r->method) == 0)
                return -EINVAL;
    }
    return 0;
}

static void server_free(struct http_server *s) {
    if (!s)
        return;
    if (s->allow)
        for (size_t i = 0; i < s->cfg.nroutes; i++)
            free(s->allow[i]);
    free(s->allow);
    free(s->lim.slots);
    pthread_cond_destroy(&s->lim.cond);
    pthread_mutex_destroy(&s->lim.lock);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

int http_server_start(const struct http_server_config *cfg, struct http_server **ret) {
    struct http_server *s;
    unsigned flags;
    int fd, r;

    if (!cfg || !ret || cfg->listen_fd < 0)
        return -EINVAL;
    r = check_routes(cfg);
    if (r < 0)
        return r;
    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    limits_init(&s->lim);
    s->cfg = *cfg;
#define DEFAULT(f, v)                                                                              \
    if (!s->cfg.f)                                                                                 \
    s->cfg.f = (v)
    DEFAULT(max_connections, HTTP_DEFAULT_MAX_CONNECTIONS);
    DEFAULT(timeout_secs, HTTP_DEFAULT_TIMEOUT_SECS);
    DEFAULT(max_body, HTTP_DEFAULT_MAX_BODY);
    DEFAULT(threads, HTTP_DEFAULT_THREADS);
    DEFAULT(conn_memory, HTTP_DEFAULT_CONN_MEMORY);
    DEFAULT(max_blocking, HTTP_DEFAULT_MAX_BLOCKING);
    DEFAULT(max_per_uid, HTTP_DEFAULT_MAX_PER_UID);
    DEFAULT(header_timeout_secs, HTTP_DEFAULT_HEADER_TIMEOUT);
    DEFAULT(reserved_connections, s->cfg.max_connections / 4 < HTTP_DEFAULT_RESERVED
                                      ? s->cfg.max_connections / 4
                                      : HTTP_DEFAULT_RESERVED);
    DEFAULT(service_group, "tpmlic");
    DEFAULT(admin_group, "tpmlic-admin");
#undef DEFAULT
    if (s->cfg.max_connections < s->cfg.threads ||
        s->cfg.reserved_connections >= s->cfg.max_connections) {
        server_free(s);
        return -EINVAL;
    }
    r = build_allow(s);
    if (r == 0)
        r = limits_alloc(s);
    if (r < 0) {
        server_free(s);
        return r;
    }

    /* MHD closes the socket it serves on when it stops, and on some of its
     * failure paths: give it a duplicate so the caller's fd stays its own. */
    fd = fcntl(cfg->listen_fd, F_DUPFD_CLOEXEC, 3);
    if (fd < 0) {
        r = -errno;
        server_free(s);
        return r;
    }
    /* poll(), not epoll: libmicrohttpd 0.9.75's MHD_quiesce_daemon() races
     * an epoll worker that removes the listening socket from its epoll set
     * at the same moment, and the loser aborts the process ("Failed to
     * remove listen FD from epoll set"; seen at a stop in test_http). The
     * poll() side of quiesce only signals the workers. */
    flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME;
    if (!s->cfg.no_turbo)
        flags |= MHD_USE_TURBO;
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->cfg.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->cfg.timeout_secs,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)s->cfg.conn_memory, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)s->cfg.threads, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (!s->daemon) {
        /* Whether MHD closed fd is not known here; a leak beats closing
         * someone else's descriptor. Start failures end the program. */
        server_free(s);
        return -EIO;
    }
    r = limits_start(s);
    if (r < 0) {
        http_server_stop(s);
        return r;
    }
    *ret = s;
    return 0;
}

void http_server_stop(struct http_server *s) {
    MHD_socket fd;

    if (!s)
        return;
    limits_stop(s);
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    while (s->blocking_running > 0)
        pthread_cond_wait(&s->cond, &s->lock);
    pthread_mutex_unlock(&s->lock);
    /* Quiesced first, MHD does not shutdown() the listening socket on
     * stop, which would stop the caller's descriptor listening too (and
     * systemd's, under socket activation). */
    fd = MHD_quiesce_daemon(s->daemon);
    MHD_stop_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    server_free(s);
}

void http_server_stats(const struct http_server *s, struct http_stats *ret) {
    struct http_server *m = (struct http_server *)s; /* atomics loads take non-const */

    *ret = (struct http_stats){
        .requests = atomic_load_explicit(&m->requests, memory_order_relaxed),
        .responses_4xx = atomic_load_explicit(&m->responses_4xx, memory_order_relaxed),
        .responses_5xx = atomic_load_explicit(&m->responses_5xx, memory_order_relaxed),
        .connections_total = atomic_load_explicit(&m->connections_total, memory_order_relaxed),
        .connections_refused = atomic_load_explicit(&m->connections_refused, memory_order_relaxed),
        .connections_too_slow =
            atomic_load_explicit(&m->connections_too_slow, memory_order_relaxed),
        .connections_open = atomic_load_explicit(&m->connections_open, memory_order_relaxed),
    };
}

/* ---- sockets ------------------------------------------------------------------- */

/* mkdir -p for the directories above path, new ones with mode 0755 (not
 * left to the umask: the socket's users must be able to reach it). */
static int make_parents(const char *path) {
    char buf[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char *p;

    snprintf(buf, sizeof(buf), "%s", path);
    p = strrchr(buf, '/');
    if (!p || p == buf)
        return 0;
    *p = '\0';
    for (p = buf + 1;; p++) {
        bool last = *p == '\0';
        if (*p != '/' && !last)
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) == 0) {
            if (chmod(buf, 0755) < 0)
                return -errno;
        } else if (errno != EEXIST) {
            return -errno;
        }
        if (last)
            return 0;
        *p = '/';
    }
}

/* Is something listening at addr? 1 yes, 0 no (a stale file), <0 error. */
static int probe_listener(const struct sockaddr_un *addr) {
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0)
        return -errno;
    if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0)
        return 1;
    if (errno == EAGAIN || errno == EINPROGRESS)
        return 1; /* listening, backlog full */
    if (errno == ECONNREFUSED)
        return 0;
    if (errno == ENOENT)
        return 0; /* vanished meanwhile */
    return -errno;
}

int http_listen_unix(const char *path, mode_t mode, gid_t gid, int *ret_fd) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    _cleanup_close_ int fd = -1;
    struct stat st;
    int r;

    if (!path || !*path || !ret_fd)
        return -EINVAL;
    if (strlen(path) >= sizeof(addr.sun_path))
        return -ENAMETOOLONG;
    memcpy(addr.sun_path, path, strlen(path) + 1);

    r = make_parents(path);
    if (r < 0)
        return r;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        if (errno != EADDRINUSE)
            return -errno;
        if (lstat(path, &st) < 0)
            return -errno;
        if (!S_ISSOCK(st.st_mode))
            return -EEXIST;
        r = probe_listener(&addr);
        if (r < 0)
            return r;
        if (r > 0)
            return -EADDRINUSE;
        /* Stale: its agent is gone. (Two agents starting at the very same
         * moment could both get here; the unit runs one.) */
        if (unlink(path) < 0 && errno != ENOENT)
            return -errno;
        if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
            return -errno;
    }
    /* Mode and group before listen(): until then nobody can connect. */
    if (chmod(path, mode) < 0 || (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0)) {
        r = -errno;
        unlink(path);
        return r;
    }
    if (listen(fd, SOMAXCONN) < 0) {
        r = -errno;
        unlink(path);
        return r;
    }
    *ret_fd = TAKE_FD(fd);
    return 0;
}

int http_listen_systemd(int *ret_fd) {
    int n, r, fd = SD_LISTEN_FDS_START;

    if (!ret_fd)
        return -EINVAL;
    n = sd_listen_fds(1);
    if (n < 0)
        return n;
    if (n == 0)
        return -ENOENT;
    if (n != 1)
        return -EINVAL;
    r = sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0);
    if (r < 0)
        return r;
    if (r == 0)
        return -EINVAL;
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return -errno;
    *ret_fd = fd;
    return 0;
}

int http_resolve_group(const char *name, gid_t *ret_gid) {
    struct group gr, *res = NULL;
    size_t size = 1024;
    int r;

    if (!name || !*name || !ret_gid)
        return -EINVAL;
    for (;;) {
        _cleanup_free_ char *buf = malloc(size);
        if (!buf)
            return -ENOMEM;
        r = getgrnam_r(name, &gr, buf, size, &res);
        if (r == ERANGE && size < (1u << 20)) {
            size *= 2;
            continue;
        }
        if (r != 0)
            return -r;
        break;
    }
    if (!res) {
        size_t gid;
        if (parse_size(name, &gid) && gid < (gid_t)-1) {
            *ret_gid = (gid_t)gid;
            return 0;
        }
        return -ENOENT;
    }
    *ret_gid = res->gr_gid;
    return 0;
}
