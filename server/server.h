/* server/: tpmlic-server, the reference license server (docs/server.md).
 * The protocol it speaks is docs/online.md.
 *
 *   db.c     the SQLite database: open, pragmas, numbered migrations, rows
 *   logic.c  the decisions: what to answer a request, given the database
 *   http.c   libmicrohttpd with TLS: the only file that talks to MHD
 *   admin.c  the admin commands (license ..., offline sign)
 *   main.c   command line, serve
 *
 * Return convention: 0 (or a count) on success, a negative errno on
 * failure. Licensing outcomes travel in the answers, not in errnos. Only
 * main.c, admin.c and http.c log. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <sqlite3.h>

#include "cert/cert.h"

#define SRV_PROG               "tpmlic-server"
#define SRV_SCHEMA_VERSION     3
#define SRV_BODY_MAX           (16 * 1024) /* docs/online.md: requests of at most 16 KiB */
#define SRV_VALIDATE_AFTER     86400
#define SRV_DEFAULT_CACHE_SECS 3600
#define SRV_DEFAULT_TICK_SECS  60
#define SRV_BUSY_TIMEOUT_MS    5000
#define SRV_ID_HEX             32 /* activation IDs and epochs: 16 random bytes in hex */

/* ---- db.c ---------------------------------------------------------------- */

/* Opens (create: creates when missing) the database at path, sets WAL, the
 * busy timeout, foreign keys and synchronous=FULL, and runs the migrations
 * up to SRV_SCHEMA_VERSION, each in its own transaction. -ENOENT when the
 * file is missing and !create; -EPROTO for a schema newer than this program
 * knows; other failures -EIO. err gets one line for a person. */
int srv_db_open(const char *path, bool create, sqlite3 **ret, char *err, size_t errlen);
void srv_db_close(sqlite3 *db);
static inline void srv_db_closep(sqlite3 **db) {
    srv_db_close(*db);
}
/* The schema version of an open database (PRAGMA user_version). */
int srv_db_version(sqlite3 *db);

/* BEGIN IMMEDIATE (the write lock at once: no deferred upgrade that could
 * fail with SQLITE_BUSY half-way), COMMIT, ROLLBACK. -EBUSY when the lock
 * was not had within the busy timeout. */
int srv_db_begin(sqlite3 *db);
int srv_db_commit(sqlite3 *db);
void srv_db_rollback(sqlite3 *db);

struct srv_license {
    int64_t id;
    char code[CERT_TEXT_MAX + 1];
    char product[CERT_TEXT_MAX + 1];
    long long customer_id;
    enum cert_license_type type;
    time_t expiry; /* 0: none (perpetual) */
    char features[CERT_FEATURES_MAX][CERT_FEATURE_MAX + 1];
    size_t nfeatures;
    uint64_t secs_allocated;
    uint64_t cache_secs;
    uint32_t tick_secs;
    uint32_t max_activations;
    bool offline_allowed;
    bool suspended;
    int64_t terms; /* bumped whenever a term that certificates carry changes */
    time_t created, updated;
};

enum srv_kind { SRV_ONLINE, SRV_OFFLINE };
enum srv_state { SRV_ACTIVE, SRV_CLOSED };

struct srv_activation {
    char id[CERT_TEXT_MAX + 1];
    int64_t license_id;
    enum srv_kind kind;
    enum srv_state state;
    char computer_id[HWID_ID_STRLEN];
    struct hwid_digests hwid;
    struct cert_counter counter; /* counter.value: the base */
    uint32_t tick_secs;
    char epoch[SRV_ID_HEX + 1]; /* "" for offline activations */
    uint64_t secs_granted;
    uint64_t consumed_secs; /* the last reported */
    uint64_t final_secs;    /* closed: the final consumption the pool keeps */
    uint64_t returned_secs; /* closed: what went back to the pool */
    uint64_t last_counter;  /* the highest counter reported */
    int64_t terms;          /* the license's terms in its last certificate */
    time_t created, last_seen, closed;
    unsigned nflags;
};

/* The pool of a license (docs/online.md, pool arithmetic). free is 0 when
 * committed exceeds allocated (the allocation was lowered). */
struct srv_pool {
    uint64_t allocated, committed, free;
    unsigned active;
};

/* -ENOENT when there is none. */
int srv_license_get(sqlite3 *db, const char *code, struct srv_license *ret);
int srv_license_get_by_id(sqlite3 *db, int64_t id, struct srv_license *ret);
/* -EEXIST when the code is taken. Sets l->id. */
int srv_license_insert(sqlite3 *db, struct srv_license *l);
/* Writes every column of l (by l->id). */
int srv_license_update(sqlite3 *db, const struct srv_license *l);
int srv_license_delete(sqlite3 *db, int64_t id);
int srv_pool_get(sqlite3 *db, const struct srv_license *l, struct srv_pool *ret);

int srv_activation_get(sqlite3 *db, const char *id, struct srv_activation *ret);
/* The active activation of this license on this appliance (computer ID and
 * counter name), -ENOENT when none. */
int srv_activation_find(sqlite3 *db, int64_t license_id, const char *computer_id,
                        const struct cert_counter *counter, struct srv_activation *ret);
int srv_activation_insert(sqlite3 *db, const struct srv_activation *a,
                          const struct cert_activation *req);
/* Writes the changing columns: state, epoch, grant, consumption, counter,
 * terms, last_seen, closed. */
int srv_activation_update(sqlite3 *db, const struct srv_activation *a);
int srv_flag_add(sqlite3 *db, const char *activation_id, time_t when, const char *reason,
                 const char *detail);

/* Every license (by code) / every activation of a license (active first);
 * *ret malloc'ed. Flags of an activation as a JSON array of {time, reason,
 * detail}. */
int srv_license_list(sqlite3 *db, struct srv_license **ret, size_t *ret_n);
int srv_activation_list(sqlite3 *db, int64_t license_id, struct srv_activation **ret,
                        size_t *ret_n);
int srv_flag_list(sqlite3 *db, const char *activation_id, json_t **ret);

/* features joined with ',' (names cannot contain one) */
void srv_features_join(const char features[][CERT_FEATURE_MAX + 1], size_t n, char *out,
                       size_t outlen);

/* ---- logic.c ------------------------------------------------------------- */

enum srv_request {
    SRV_REQ_ACTIVATE,
    SRV_REQ_VALIDATE,
    SRV_REQ_DEACTIVATE,
};
const char *srv_request_name(enum srv_request r); /* "activate", ... */

struct srv_ctx {
    sqlite3 *db;
    EVP_PKEY *key; /* the vendor's Ed25519 private key */
    time_t now;
    /* serve: one writer at a time within the process (optional; SQLite's
     * own lock and busy timeout serialise against other processes) */
    pthread_mutex_t *write_lock;
};

/* What to send. signed_answer: body is the payload to sign and send as
 * {"answer": JWS}; otherwise body is the whole (unsigned) error object. */
struct srv_reply {
    int status;
    bool signed_answer;
    json_t *body;
    char reason[32];                    /* refusal reason, "" for ok */
    char license[CERT_TEXT_MAX + 1];    /* the code asked for (for a shortened log line) */
    char activation[CERT_TEXT_MAX + 1]; /* the activation concerned, "" when none */
};
void srv_reply_clear(struct srv_reply *r);

/* Decides the answer to one request (request: the parsed JSON body, NULL
 * when the body was not JSON). Returns 0 with *ret filled (an ok, a refusal
 * or a 400), or a negative errno when the database failed (-EBUSY: locked
 * beyond the busy timeout); nothing is changed then. */
int srv_handle(const struct srv_ctx *ctx, enum srv_request type, json_t *request,
               struct srv_reply *ret);

/* Offline signing (tpmlic-server offline sign): records an offline
 * activation of the license the activation certificate names and signs its
 * license certificate. granted: seconds for the appliance (UINT64_MAX: all
 * free seconds of the pool). Returns 0 with *ret_jws, 1 when refused (msg
 * says why, reason the token), negative errno on failure. */
int srv_offline_sign(const struct srv_ctx *ctx, const struct cert_activation *act, uint64_t granted,
                     char **ret_jws, char *reason, size_t reasonlen, char *msg, size_t msglen);

/* Shortened license code for logs: the first 4 characters and "...". */
void srv_code_hint(const char *code, char out[16]);

/* ---- http.c -------------------------------------------------------------- */

struct srv_http_config {
    int listen_fd;
    const char *tls_cert_pem; /* certificate (chain) and key, PEM text */
    const char *tls_key_pem;
    const char *db_path;
    EVP_PKEY *key;
    unsigned threads;
    unsigned max_connections;
    unsigned timeout_secs;
};
struct srv_http;
/* Starts serving on cfg->listen_fd (not taken over). -ENOTSUP when
 * libmicrohttpd has no TLS. */
int srv_http_start(const struct srv_http_config *cfg, struct srv_http **ret, char *err,
                   size_t errlen);
/* Stops accepting, waits up to grace_secs for requests under way to be
 * answered, then stops. */
void srv_http_stop(struct srv_http *s, unsigned grace_secs);

/* ---- admin.c ------------------------------------------------------------- */

int srv_cmd_license(int argc, char **argv);
int srv_cmd_offline(int argc, char **argv);

/* ---- main.c (shared by the commands) -------------------------------------- */

#define SRV_EXIT_REFUSED 1
#define SRV_EXIT_USAGE   2
int srv_refuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int srv_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int srv_load_private_key(const char *path, EVP_PKEY **ret);
