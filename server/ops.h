/* The administrative operations of tpmlic-server, written once for both
 * callers: the admin commands (admin.c, argv in, text or JSON out) and the
 * admin REST API (api.c, JSON in and out). Each operation checks its
 * input, runs in one transaction, writes its audit entry (audit.h) and its
 * webhook events in that transaction, and returns the result as a JSON
 * document (the API's answer, the CLI's --json output, the audit log's
 * before and after). No HTTP types, no printing.
 *
 * Errors: a negative errno and a struct srv_operr saying why:
 *   -EINVAL  a value is wrong (CLI exit 2, HTTP 400); field names it
 *   -ENOENT  no such license, activation, token or webhook (1, 404)
 *   -EEXIST  it exists already (1, 409)
 *   -EPERM   refused by a rule (1, 409): active activations in the way,
 *            no transfer left, an expiry in the past, an offline signing
 *            refused (reason: its token) ...
 *   -EBADMSG a document given is malformed (an activation certificate)
 *            (1, 400)
 *   other    the database failed (1, 500; -EBUSY 503) */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "server/db.h"
#include "server/tokens.h"

/* Who acts and when. actor goes to the audit log: "cli:USER",
 * "token:ID (NAME)", "system:cull". */
struct srv_op {
    struct srv_db *db;
    time_t now;
    const char *actor;
    EVP_PKEY *key;         /* offline signing only */
    const char *ek_ca_dir; /* offline signing: the EK trust store (tpm_trust), or NULL */
    /* SQLite under serve: the process's writer lock (logic.h), or NULL */
    pthread_mutex_t *write_lock;
};

struct srv_operr {
    char field[32];  /* the input field at fault ("tick_secs"), "" when none */
    char reason[32]; /* a refusal's token (offline signing), "" when none */
    char msg[384];   /* "%F" stands for the field's name (see srv_operr_text) */
};

/* How a caller names a field: the CLI as an option (--tick-secs), the API
 * as a JSON field ('tick_secs'). */
enum srv_field_style { SRV_FIELD_OPTION, SRV_FIELD_JSON };
/* The message with %F replaced by the field's name in that style. */
void srv_operr_text(const struct srv_operr *e, enum srv_field_style style, char *out,
                    size_t outlen);

/* The rule of a numeric term: text (the CLI) or v (the API) checked
 * against it. field: customer_id, secs_allocated, cache_secs, tick_secs,
 * max_activations, max_transfers, cull_days, pool_alert_secs, secs_granted. */
int srv_term_parse(const char *field, const char *text, uint64_t *ret, struct srv_operr *err);
int srv_term_check(const char *field, uint64_t v, struct srv_operr *err);

/* ---- licenses ---------------------------------------------------------------------- */

/* A license's terms as given: the has_ flags (and NULL strings) say which. */
struct srv_license_input {
    const char *code;    /* create only */
    const char *product; /* NULL: not given */
    bool has_customer_id, has_type, has_expiry, has_features, has_secs_allocated, has_cache_secs,
        has_tick_secs, has_max_activations, has_offline_allowed, has_max_transfers, has_cull_days,
        has_pool_alert_secs, has_tpm_trust;
    uint64_t customer_id;
    enum cert_license_type type;
    time_t expiry; /* 0: none */
    const char *features[CERT_FEATURES_MAX + 1];
    size_t nfeatures;
    uint64_t secs_allocated, cache_secs, tick_secs, max_activations, max_transfers, cull_days,
        pool_alert_secs;
    bool offline_allowed;
    struct cert_tpm_trust tpm_trust;
};

/* The JSON of a license and its pool (what list, show, create ... give). */
json_t *srv_license_json(const struct srv_license *l, const struct srv_pool *p, time_t now);
/* The JSON of an activation; flags: its flags (stolen), or NULL. */
json_t *srv_activation_json(const struct srv_activation *a, const char *license_code,
                            json_t *flags);

int srv_op_license_create(struct srv_op *op, const struct srv_license_input *in, json_t **ret,
                          struct srv_operr *err);
/* *terms_changed: a term that certificates carry changed (appliances get
 * a new certificate at their next validation). */
int srv_op_license_update(struct srv_op *op, const char *code, const struct srv_license_input *in,
                          json_t **ret, bool *terms_changed, struct srv_operr *err);
int srv_op_license_suspend(struct srv_op *op, const char *code, bool suspend, json_t **ret,
                           struct srv_operr *err);
/* {"code", "deleted", "active_activations_deleted"} */
int srv_op_license_delete(struct srv_op *op, const char *code, bool force, json_t **ret,
                          struct srv_operr *err);
int srv_op_license_list(struct srv_op *op, json_t **ret, struct srv_operr *err);
/* The license with "activations" (each with its flags) and "transfers"
 * (open ones). */
int srv_op_license_show(struct srv_op *op, const char *code, json_t **ret, struct srv_operr *err);

/* Signs an activation certificate (text as the appliance wrote it) as an
 * offline activation. secs_granted UINT64_MAX: every free second.
 * {"activation", "existing", "license_certificate"}. */
int srv_op_offline_sign(struct srv_op *op, const char *text, size_t len, uint64_t secs_granted,
                        json_t **ret, struct srv_operr *err);

/* ---- activations ---------------------------------------------------------------- */

struct srv_activation_query {
    const char *license; /* a code, NULL: every license */
    const char *state, *kind, *computer_id;
    bool flagged;
    unsigned not_seen_days; /* last seen more than this many days ago */
    unsigned limit, offset;
};
int srv_op_activation_list(struct srv_op *op, const struct srv_activation_query *q, json_t **ret,
                           struct srv_operr *err);
int srv_op_activation_show(struct srv_op *op, const char *id, json_t **ret, struct srv_operr *err);
/* Closes an active activation at once: its seat is free, its appliance is
 * refused (not_active) at its next validation. Its grant stays committed
 * (the server cannot check what the appliance used of it). */
int srv_op_activation_revoke(struct srv_op *op, const char *id, json_t **ret,
                             struct srv_operr *err);
/* Rehosting (an RMA): closes the activation like revoke and reserves its
 * seat for to_computer_id for SRV_TRANSFER_DAYS; counted against the
 * license's max_transfers. */
int srv_op_activation_transfer(struct srv_op *op, const char *id, const char *to_computer_id,
                               json_t **ret, struct srv_operr *err);
/* Clears the activation's open flags (they stay in its history). */
int srv_op_activation_clear_flags(struct srv_op *op, const char *id, json_t **ret,
                                  struct srv_operr *err);
/* Closes online activations not seen for their license's cull_days (one
 * license, or every license when code is NULL); dry_run: only lists them.
 * {"dry_run", "culled": [{license, activation, computer_id, last_seen}]} */
int srv_op_cull(struct srv_op *op, const char *code, bool dry_run, json_t **ret,
                struct srv_operr *err);

/* ---- tokens, webhooks, the audit log ----------------------------------------------- */

/* {"id", "name", "scope", "created", "token"}: the token is shown once. */
int srv_op_token_create(struct srv_op *op, enum srv_scope scope, const char *name, json_t **ret,
                        struct srv_operr *err);
int srv_op_token_list(struct srv_op *op, json_t **ret, struct srv_operr *err);
int srv_op_token_revoke(struct srv_op *op, const char *id, json_t **ret, struct srv_operr *err);

/* url: https://..., or http:// to a loopback address; events: names from
 * srv_events. The answer carries the signing secret, once. */
int srv_op_webhook_create(struct srv_op *op, const char *url, const char *const *events,
                          size_t nevents, const char *description, json_t **ret,
                          struct srv_operr *err);
int srv_op_webhook_list(struct srv_op *op, json_t **ret, struct srv_operr *err);
int srv_op_webhook_delete(struct srv_op *op, int64_t id, json_t **ret, struct srv_operr *err);
int srv_op_delivery_list(struct srv_op *op, int64_t webhook_id, const char *state, unsigned limit,
                         json_t **ret, struct srv_operr *err);

struct srv_audit_query {
    time_t since, until;
    const char *actor, *action, *target;
    int64_t before_id;
    unsigned limit;
};
int srv_op_audit_list(struct srv_op *op, const struct srv_audit_query *q, json_t **ret,
                      struct srv_operr *err);
