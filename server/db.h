/* tpmlic-server's database: opening (SQLite file or PostgreSQL URI), the
 * numbered schema migrations, and the rows of licenses, activations, flags
 * and transfers, each query written once over sql.h. The schema is
 * described in docs/server.md. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "cert/cert.h"
#include "server/sql.h"

#define SRV_SCHEMA_VERSION 5
#define SRV_ID_HEX         32 /* activation IDs and epochs: 16 random bytes in hex */
#define SRV_TRANSFER_DAYS  30 /* a transfer keeps the seat for the new computer this long */

/* Opens the database spec names (sql.h: a SQLite path or a PostgreSQL
 * URI) and runs the missing migrations, each in its own transaction under
 * the backend's lock (SQLite's write lock; a PostgreSQL advisory lock), so
 * that two servers starting at once do not both run a step. create:
 * SQLite creates a missing file (-ENOENT otherwise). -EPROTO for a schema
 * newer than this program; other failures -EIO. err: one line. */
int srv_db_open(const char *spec, bool create, struct srv_db **ret, char *err, size_t errlen);
void srv_db_close(struct srv_db *db);
static inline void srv_db_closep(struct srv_db **db) {
    srv_db_close(*db);
}
/* The schema version of an open database; negative errno on failure. */
int srv_db_version(struct srv_db *db);

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
    int64_t terms;           /* bumped whenever a term that certificates carry changes */
    uint32_t max_transfers;  /* transfers to a new computer allowed in the license's life */
    uint32_t transfers_used; /* ... and made */
    uint32_t cull_days; /* online activations not seen for this many days are culled; 0 never */
    uint64_t pool_alert_secs; /* pool_low webhook when the free seconds fall below; 0 never */
    struct cert_tpm_trust tpm_trust; /* which TPMs it accepts (its certificates carry it) */
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
    struct cert_counter counter; /* counter.value: the base of its certificate now */
    uint32_t tick_secs;
    char epoch[SRV_ID_HEX + 1]; /* "" for offline activations */
    uint64_t secs_granted;      /* over the activation's life; its certificate has secs_granted -
                                   prior_secs */
    uint64_t prior_secs;        /* consumed under earlier bases (docs/online.md, a new base) */
    uint64_t consumed_secs;     /* the highest reported, prior_secs included */
    uint64_t final_secs;        /* closed: the final consumption the pool keeps */
    uint64_t returned_secs;     /* closed: what went back to the pool */
    uint64_t last_counter;      /* the highest counter reported */
    int64_t terms;              /* the license's terms in its last certificate */
    time_t created, last_seen, closed;
    char closed_reason[16]; /* deactivated, revoked, transferred, culled; "" while active */
    char hostname[129];
    uint64_t last_tpm_clock;  /* ms, the TPM clock of the last request that sent one */
    time_t last_tpm_clock_at; /* when that was */
    unsigned nflags;          /* flags raised against it */
    unsigned nflags_open;     /* ... and not cleared */
};

/* The pool of a license (docs/online.md, pool arithmetic). free is 0 when
 * committed exceeds allocated (the allocation was lowered). */
struct srv_pool {
    uint64_t allocated, committed, free;
    unsigned active;
    unsigned reserved; /* seats held by open transfers */
};

/* -ENOENT when there is none. lock: the row is locked until the end of
 * the transaction (FOR UPDATE; SQLite holds the whole database). */
int srv_license_get(struct srv_db *db, const char *code, bool lock, struct srv_license *ret);
int srv_license_get_by_id(struct srv_db *db, int64_t id, bool lock, struct srv_license *ret);
/* -EEXIST when the code is taken. Sets l->id. */
int srv_license_insert(struct srv_db *db, struct srv_license *l);
/* Writes every column of l (by l->id). */
int srv_license_update(struct srv_db *db, const struct srv_license *l);
int srv_license_delete(struct srv_db *db, int64_t id);
/* The pool of l as the database holds it now (kept on the license row by
 * triggers); lock: lock the license row first (before changing the pool). */
int srv_pool_get(struct srv_db *db, const struct srv_license *l, time_t now, bool lock,
                 struct srv_pool *ret);

/* lock as above (validate and deactivate lock the activation row). */
int srv_activation_get(struct srv_db *db, const char *id, bool lock, struct srv_activation *ret);
/* The active activation of this license on this appliance (computer ID and
 * counter name), locked; -ENOENT when none. */
int srv_activation_find(struct srv_db *db, int64_t license_id, const char *computer_id,
                        const struct cert_counter *counter, struct srv_activation *ret);
int srv_activation_insert(struct srv_db *db, const struct srv_activation *a,
                          const struct cert_activation *req);
/* Writes the changing columns: state, epoch, grant, consumption, counter,
 * terms, last_seen, closed, closed_reason. -ENOENT when the row is gone. */
int srv_activation_update(struct srv_db *db, const struct srv_activation *a);
int srv_flag_add(struct srv_db *db, const char *activation_id, time_t when, const char *reason,
                 const char *detail);
/* Marks the activation's open flags cleared; the number cleared. */
int srv_flags_clear(struct srv_db *db, const char *activation_id, time_t when, const char *by);

/* Activations, filtered (every field optional: 0 / NULL / "" = any). */
struct srv_activation_filter {
    int64_t license_id; /* 0: every license */
    const char *state;  /* "active" or "closed" */
    const char *kind;   /* "online" or "offline" */
    const char *computer_id;
    int flagged;            /* 1: with open flags, 0: any */
    time_t seen_before;     /* last seen before this time */
    unsigned limit, offset; /* limit 0: no limit */
};
/* *ret malloc'ed; active first, then by creation. */
int srv_activation_list(struct srv_db *db, const struct srv_activation_filter *f,
                        struct srv_activation **ret, size_t *ret_n);
/* Every license (by code); *ret malloc'ed. */
int srv_license_list(struct srv_db *db, struct srv_license **ret, size_t *ret_n);
/* Flags of an activation as a JSON array of {time, reason, detail,
 * cleared, cleared_by}. */
int srv_flag_list(struct srv_db *db, const char *activation_id, json_t **ret);

/* Transfers (rehosting to a new computer). An open transfer holds a seat
 * for to_computer_id until it activates or SRV_TRANSFER_DAYS pass. */
int srv_transfer_add(struct srv_db *db, int64_t license_id, const char *from_activation,
                     const char *to_computer_id, time_t now);
/* The open transfer of this license to computer_id: marks it used by
 * activation_id; 0 when there was one, -ENOENT when not. */
int srv_transfer_use(struct srv_db *db, int64_t license_id, const char *computer_id,
                     const char *activation_id, time_t now);
/* Open transfers of a license as a JSON array of {from_activation,
 * to_computer_id, created, expires}. */
int srv_transfer_list(struct srv_db *db, int64_t license_id, time_t now, json_t **ret);

/* The rows of st (prepared and bound) as a JSON array in *ret: row()
 * makes each element (a new reference), or returns NULL with *err set (a
 * query it ran failed; -ENOMEM when it sets none). */
typedef json_t *(*srv_row_json_fn)(struct srv_stmt *st, void *arg, int *err);
int srv_sql_json_rows(struct srv_stmt *st, srv_row_json_fn row, void *arg, json_t **ret);
/* The one element of arr (which it takes), -ENOENT when it has not exactly
 * one: a row looked up by its key. */
int srv_json_single(json_t *arr, json_t **ret);
/* A time as RFC 3339 text, or JSON null for 0 (never). */
json_t *srv_time_json(time_t t);

/* features joined with ',' (names cannot contain one) */
void srv_features_join(const char features[][CERT_FEATURE_MAX + 1], size_t n, char *out,
                       size_t outlen);
