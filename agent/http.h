/* The agent's HTTP/1.1 server on its UNIX socket (libmicrohttpd): one table
 * maps (method, path) to a permission and a handler; the caller's uid, gid
 * and groups come from SO_PEERCRED/SO_PEERGROUPS, read once per connection;
 * request bodies are capped; answers are JSON (or text for /metrics).
 * docs/socket-api-transport.md specifies what clients see.
 *
 * Threads: handlers run on the server's worker threads (a pool of
 * `threads`, each with its own poll() loop) and MAY BE CALLED CONCURRENTLY,
 * for the same or different routes: a handler locks whatever state it
 * shares. A handler that can take long (TPM, network) is marked
 * HTTP_ROUTE_BLOCKING: it then runs on a thread of its own while the
 * connection is suspended, so it stalls no other connection. Other handlers
 * must return in microseconds: while one runs, the other connections of its
 * worker thread wait.
 *
 * Fair limits: when a connection opens, its uid is counted in one table.
 * A caller (uid) holding max_per_uid connections, or an ordinary caller
 * when all but the reserved_connections are open, is answered 503 at once,
 * before its request is read, and closed. Root is not limited per uid, and
 * root and the admin group may use the reserved connections: one caller
 * cannot keep the others, or the operator, out. A request whose headers
 * (then whose body) do not arrive within header_timeout_secs is dropped,
 * however slowly it trickles in.
 *
 * The library does not log. Its libmicrohttpd calls stay in http.c. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#define HTTP_DEFAULT_MAX_CONNECTIONS 256u
#define HTTP_DEFAULT_TIMEOUT_SECS    30u
#define HTTP_DEFAULT_MAX_BODY        (64u * 1024u)
#define HTTP_DEFAULT_THREADS         2u
#define HTTP_DEFAULT_CONN_MEMORY     (32u * 1024u)
#define HTTP_DEFAULT_MAX_BLOCKING    16u
#define HTTP_DEFAULT_MAX_PER_UID     32u
#define HTTP_DEFAULT_RESERVED        8u /* or a quarter of max_connections, when less */
#define HTTP_DEFAULT_HEADER_TIMEOUT  10u

enum http_perm {
    HTTP_PERM_SERVICE, /* root, the service group, or the admin group */
    HTTP_PERM_ADMIN,   /* root or the admin group */
};

/* The caller, as the kernel saw it when it connected. groups points into
 * storage owned by the connection; valid while the handler runs. */
struct http_peer {
    pid_t pid;
    uid_t uid;
    gid_t gid;
    const gid_t *groups; /* supplementary groups */
    int ngroups;
    bool known; /* false: SO_PEERCRED failed; every route refuses such a peer */
};

/* What a handler gets. body is NUL-terminated (body[body_len] == 0) and
 * may contain NUL bytes; NULL when the request had none. All pointers are
 * valid only during the handler call. */
struct http_request {
    const char *method;
    const char *path; /* without the query string, %-decoded */
    const char *body;
    size_t body_len;
    const struct http_peer *peer;
};

/* What a handler fills, best through the http_respond_*() helpers. The
 * server frees json and text after sending. Exactly one of json and text is
 * set; neither gives a 500. content_type: for text only, default
 * "text/plain; charset=utf-8"; JSON is always "application/json". allow: a
 * static string for an Allow header, or NULL. */
struct http_response {
    int status;
    json_t *json;
    char *text;
    const char *content_type;
    const char *allow;
};

typedef void (*http_handler_fn)(void *userdata, const struct http_request *req,
                                struct http_response *resp);

#define HTTP_ROUTE_BLOCKING 0x1u /* may take long: run off the polling threads */

struct http_route {
    const char *method; /* "GET", "POST", ... exact, upper case */
    const char *path;   /* exact match */
    enum http_perm perm;
    http_handler_fn handler;
    unsigned flags; /* HTTP_ROUTE_* */
};

/* Zero in a number means the HTTP_DEFAULT_* value. The routes, the group
 * names and userdata must outlive the server. */
struct http_server_config {
    int listen_fd; /* a listening AF_UNIX stream socket; not taken over, see start */
    const struct http_route *routes;
    size_t nroutes;
    void *userdata; /* passed to every handler */
    gid_t service_gid;
    gid_t admin_gid;
    bool have_service_gid; /* false: the group does not exist, only root passes */
    bool have_admin_gid;
    const char *service_group; /* names for 403 messages; NULL: "tpmlic" */
    const char *admin_group;   /* NULL: "tpmlic-admin" */
    unsigned max_connections;  /* open at once; more wait in the listen backlog */
    unsigned timeout_secs;     /* a connection idle this long is closed */
    size_t max_body;           /* request bodies above this get 413 */
    unsigned threads;          /* worker threads, each with its own poll() loop */
    size_t conn_memory;        /* per connection, for the request line, headers, buffers */
    unsigned max_blocking;     /* HTTP_ROUTE_BLOCKING handlers at once; more get 503 */
    bool no_turbo;             /* do not use MHD_USE_TURBO (bench comparisons) */
    /* Fair limits. max_per_uid: connections one uid may hold at once (root:
     * no limit of its own). reserved_connections: of max_connections, those
     * only root and the admin group may take; below max_connections.
     * header_timeout_secs: a request's headers must be in this long after
     * the connection opened (after the previous answer: timeout_secs plus
     * this, the idle time first), its body this long after its headers. */
    unsigned max_per_uid;
    unsigned reserved_connections;
    unsigned header_timeout_secs;
};

struct http_server;

/* Starts serving on a duplicate of cfg->listen_fd: the caller keeps its fd
 * and closes it when it likes (the socket keeps listening while either is
 * open). Returns 0, -EINVAL for a bad config (duplicate route, no routes, a
 * limit below threads, a reserve not below the limit), -ENOMEM, or -EIO
 * when libmicrohttpd refused. */
int http_server_start(const struct http_server_config *cfg, struct http_server **ret);

/* Waits for running BLOCKING handlers, closes every connection, joins the
 * threads and frees the server. Accepts NULL. */
void http_server_stop(struct http_server *s);

struct http_stats {
    uint64_t requests;      /* answered by this layer (not MHD's own 400/431s) */
    uint64_t responses_4xx; /* among them */
    uint64_t responses_5xx;
    uint64_t connections_total;
    uint64_t connections_refused;  /* over the per-uid or the ordinary callers' limit: 503 */
    uint64_t connections_too_slow; /* closed by the header timeout */
    unsigned connections_open;
};

/* A consistent-enough snapshot of the counters (atomics, no lock). */
void http_server_stats(const struct http_server *s, struct http_stats *ret);

/* Creates, binds and listens on a UNIX socket at path (CLOEXEC). An existing
 * socket file is replaced only when nothing listens on it: -EADDRINUSE when
 * something does (another agent), -EEXIST when path is not a socket. Missing
 * parent directories are created with mode 0755. The socket gets mode and,
 * unless gid is (gid_t)-1, group gid before it starts listening. Returns 0
 * and the fd in *ret_fd, or a negative errno (-ENAMETOOLONG: path too long
 * for sun_path). */
int http_listen_unix(const char *path, mode_t mode, gid_t gid, int *ret_fd);

/* The socket that systemd passed (socket activation), when exactly one
 * AF_UNIX stream socket in listening state was passed; unsets LISTEN_FDS so
 * children do not inherit it. -ENOENT when none was passed, -EINVAL when
 * what was passed is something else (or more than one). */
int http_listen_systemd(int *ret_fd);

/* Resolves a group name (or a decimal gid) to a gid with getgrnam_r.
 * -ENOENT when no such group exists. */
int http_resolve_group(const char *name, gid_t *ret_gid);

/* Fills resp with {"error": "<message>", "code": status}. Replaces what resp
 * held. */
void http_respond_error(struct http_response *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Fills resp with the JSON value body (takes its reference, also on failure). */
void http_respond_json(struct http_response *resp, int status, json_t *body);
/* Fills resp with text (takes it; malloc'ed) and content_type (static string,
 * NULL for "text/plain; charset=utf-8"). For Prometheus:
 * HTTP_CONTENT_TYPE_PROMETHEUS. */
void http_respond_text(struct http_response *resp, int status, const char *content_type,
                       char *text);
#define HTTP_CONTENT_TYPE_PROMETHEUS "text/plain; version=0.0.4; charset=utf-8"

/* Parses req's body as one JSON object, strictly: duplicate keys, trailing
 * data and a top level that is not an object are refused. An empty body
 * (nothing or only whitespace) gives an empty object when allow_empty, an
 * error otherwise. On success returns 0 and the object in *ret (caller
 * decrefs). On failure returns -EINVAL and fills resp with a 400 that says
 * what is wrong and where ("malformed JSON at line 1 column 7: ..."). */
int http_parse_json_object(const struct http_request *req, bool allow_empty, json_t **ret,
                           struct http_response *resp);

/* true when gid is the peer's primary group or one of its supplementary groups. */
bool http_peer_in_group(const struct http_peer *p, gid_t gid);
